# The files the Debian packages installed (suture-vm-packaged puts them at
# their paths): /usr/sbin/patchd, which is also the guest's only patchd,
# with the packaged /etc/suture/patchd.toml and the companion module DKMS
# built in a clean Debian 12 root. Every default: no --kmod, no --state-dir.
P=cmdline_demo
B=/suture/bundles
PATCHD=/usr/sbin/patchd
[ -x $PATCHD ] || fail "no packaged $PATCHD"
[ -f /etc/suture/patchd.toml ] || fail "no packaged /etc/suture/patchd.toml"
dkms=$(ls /lib/modules/$(uname -r)/updates/dkms/suture.ko* 2>/dev/null)
[ -n "$dkms" ] || fail "no DKMS-built companion module for $(uname -r)"
echo "DKMS-built companion: $dkms"
cmp -s $PATCHD /suture/bin/patchd || fail "the guest's patchd is not the packaged one"
loaded suture && fail "the companion module is loaded before the first apply"
cmdline=$(cat /proc/cmdline)

$PATCHD apply "$B/$P.bundle" || fail "the packaged patchd's apply failed"
loaded suture || fail "the companion module was not loaded"
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline with the bundle applied"
out=$($PATCHD status) || fail "patchd status failed"
echo "$out"
case "$out" in *"$P: applied (kernel: enabled)"*) ;; *) fail "status does not show $P applied" ;; esac
case "$out" in *"redirect: direct call (1)"*) ;; *) fail "status does not say the function is redirected by direct call" ;; esac
$PATCHD status --check >/dev/null
expect "$?" 0 "status --check: OK"
out=$($PATCHD report) || fail "patchd report failed"
echo "$out"
case "$out" in *"CVE-2099-0001"*) ;; *) fail "the report does not list the bundle's CVE" ;; esac
case "$out" in *"open CVEs: none"*) ;; *) fail "the report shows an open CVE while the bundle is applied" ;; esac
$PATCHD revert $P || fail "the packaged patchd's revert failed"
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after revert"
loaded $P && fail "$P is still loaded after revert"
out=$($PATCHD report) || fail "patchd report after revert failed"
echo "$out"
case "$out" in *"currently applied: none"*) ;; *) fail "the report still shows the bundle applied" ;; esac
case "$out" in *"CVE-2099-0001: reverted ($P)"*) ;; *) fail "the report does not show CVE-2099-0001 open since the revert" ;; esac
echo "ok: the packaged patchd applied, reported and reverted the bundle"
