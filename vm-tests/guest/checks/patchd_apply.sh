# patchd apply/status/revert with a real signed bundle of the cmdline demo
# fix (vm-tests/fixes/cmdline_demo.patch, built by patchgen and signed with
# the run's test key, whose public half is the trust store
# /etc/suture/keys/test.pub). Then two bundles patchd must refuse before
# anything is loaded: one byte flipped, and one for another build-id.
# Earlier checks load and unload modules; the companion module may or may
# not be loaded, and apply must cope with either.
P=cmdline_demo
B=/suture/bundles
STATE=/var/lib/suture
apply() {
	patchd apply --kmod "$M/suture.ko" --state-dir "$STATE" "$@"
}
status() {
	patchd status --state-dir "$STATE" "$@"
}
cmdline=$(cat /proc/cmdline)
if loaded $P; then
	echo "note: $P left loaded by an earlier check; removing it"
	[ -e "$S/$P/enabled" ] && echo 0 >"$S/$P/enabled"
	rmmod $P || fail "cannot remove the stale $P"
fi
ls -ln /etc/suture/keys
echo "companion loaded before apply: $(loaded suture && echo yes || echo no)"

apply "$B/$P.bundle" || fail "patchd apply failed"
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline with the bundle applied"
expect "$(cat $S/$P/enabled)" 1 "the patch is enabled in sysfs"
[ -f "$STATE/applied/$P.bundle" ] || fail "no copy of the applied bundle in $STATE/applied"
out=$(status) || fail "patchd status failed"
echo "$out"
case "$out" in *"$P: applied (kernel: enabled)"*) ;; *) fail "status does not show $P applied and enabled" ;; esac
case "$out" in *"functions: cmdline_proc_show"*"cves: CVE-2099-0001"*) ;; *) fail "status lacks functions or CVEs" ;; esac
status --json | grep -q '"kernel_state": "enabled"' || fail "status --json does not show the patch enabled"
out=$(apply "$B/$P.bundle") || fail "applying the same bundle again failed"
case "$out" in *"applied already"*) ;; *) fail "a second apply was not a no-op: $out" ;; esac

patchd revert --state-dir "$STATE" $P || fail "patchd revert failed"
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after revert"
loaded $P && fail "$P is still loaded after revert"
[ -e "$STATE/applied/$P.bundle" ] && fail "the bundle copy is still kept after revert"
out=$(status) || fail "patchd status failed"
echo "$out"
case "$out" in *"applied bundles: none"*) ;; *) fail "status is not empty after revert" ;; esac

modules_before=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')
out=$(apply "$B/$P.flipped.bundle" 2>&1)
rc=$?
echo "flipped byte (exit $rc): $(echo "$out" | tail -n 1)"
expect $rc 5 "a bundle with a flipped byte: exit 5 (rejected)"
case "$out" in *"rejected"*"sha256 of the bundle's module"*) ;; *) fail "the error does not name the digest mismatch" ;; esac
out=$(apply "$B/$P.otherbuild.bundle" 2>&1)
rc=$?
echo "other build-id (exit $rc): $(echo "$out" | tail -n 1)"
expect $rc 4 "a bundle for another build-id: exit 4 (wrong kernel)"
case "$out" in *"build-id"*"but this machine runs $(uname -r) with build-id"*) ;; *) fail "the error does not name both kernels" ;; esac
expect "$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')" "$modules_before" "nothing loaded by the refused bundles"
loaded $P && fail "$P was loaded from a refused bundle"
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline unchanged by the refused bundles"

patchd audit verify --state-dir "$STATE" || fail "the audit log does not verify"
cut -c1-200 "$STATE/audit.log"
