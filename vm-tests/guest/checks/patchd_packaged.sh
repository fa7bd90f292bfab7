# patchd as the Debian packages set it up: every default (no --kmod, no
# --state-dir), the trust store in /etc/suture/keys, and the companion
# module only where DKMS puts it, compressed as Debian 13's DKMS does
# (/lib/modules/RELEASE/updates/dkms/suture.ko.xz, written by the host;
# nothing at the fallback /usr/lib/suture/suture.ko). patchd must find it,
# decompress it, link and load it, then apply, report and revert a bundle.
# Runs after patchd_apply, which leaves the state empty and the companion
# loaded with no patch: it is unloaded first so this apply has to load it.
P=cmdline_demo
B=/suture/bundles
dkms=/lib/modules/$(uname -r)/updates/dkms/suture.ko.xz
[ -f "$dkms" ] || fail "no $dkms in the guest"
[ -e /usr/lib/suture/suture.ko ] && fail "/usr/lib/suture/suture.ko exists: the DKMS lookup would not be proven"
if loaded suture; then
	rmmod suture || fail "cannot unload the companion module left by earlier checks"
fi
cmdline=$(cat /proc/cmdline)

patchd apply "$B/$P.bundle" || fail "patchd apply with the defaults failed"
loaded suture || fail "the companion module was not loaded from $dkms"
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline with the bundle applied"
out=$(patchd status) || fail "patchd status failed"
echo "$out"
case "$out" in *"$P: applied (kernel: enabled)"*) ;; *) fail "status does not show $P applied" ;; esac
out=$(patchd report) || fail "patchd report failed"
echo "$out"
case "$out" in *"CVE-2099-0001"*) ;; *) fail "the report does not list the bundle's CVE" ;; esac
patchd revert $P || fail "patchd revert failed"
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after revert"
if loaded $P; then fail "$P is still loaded after revert"; fi
