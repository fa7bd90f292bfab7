# The main job, in the guest: a real fix from Debian's 6.1 stable updates,
# "prctl: fix PR_SET_MM_AUXV losing the forced AT_NULL terminator"
# (kernel/sys.c, prctl_set_auxv), built into a signed bundle by
# `patchgen build` on the host (scripts/demo), is applied to the running
# kernel by patchd without a reboot, shown working, and reverted.
# auxv_short sets a one-entry auxiliary vector with prctl(PR_SET_MM_AUXV)
# and counts what /proc/self/auxv then shows before AT_NULL: stale entries
# of the old vector with the bug, exactly the one entry with the fix.
B=$(ls /suture/bundles/*.bundle | head -n 1)
[ -n "$B" ] || fail "no bundle in /suture/bundles"
run() {
	echo "\$ $*"
	"$@"
}
auxv_short() {
	/suture/files/auxv_short
}
echo "kernel: $(uname -r) (build-id from /sys/kernel/notes)"
echo
echo "--- 1. the bug in the running kernel:"
run auxv_short && fail "the running kernel does not show the bug"
echo
echo "--- 2. verify and apply the bundle (no reboot):"
run patchd verify "$B" || fail "verify failed"
run patchd apply --kmod "$M/suture.ko" "$B" || fail "apply failed"
echo
echo "--- 3. the same test on the patched kernel:"
run auxv_short || fail "the fix is applied but the bug is still there"
echo
run patchd status || fail "status failed"
echo
echo "--- 4. revert, and the bug is back:"
run patchd revert --all || fail "revert failed"
run auxv_short && fail "the fix is still active after revert"
echo
run patchd audit verify || fail "audit verify failed"
echo "demo: bug shown, fixed live, reverted"
