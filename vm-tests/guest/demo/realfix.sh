# The main job, in the guest: a real fix from Debian's 6.1 stable updates,
# "sched: restore timer_slack_ns when resetting RT policy on fork"
# (kernel/sched/core.c, sched_fork), built into a signed bundle by
# `patchgen build` on the host (scripts/demo), is applied to the running
# kernel by patchd without a reboot, shown working, and reverted.
# timerslack_fork forks a child from a SCHED_FIFO task with
# SCHED_RESET_ON_FORK and prints the child's timer slack: 0 ns with the bug,
# the default (50000 ns) with the fix.
B=$(ls /suture/bundles/*.bundle | head -n 1)
[ -n "$B" ] || fail "no bundle in /suture/bundles"
run() {
	echo "\$ $*"
	"$@"
}
slack() {
	/suture/files/timerslack_fork
}
echo "kernel: $(uname -r) (build-id from /sys/kernel/notes)"
echo
echo "--- 1. the bug in the running kernel:"
run slack && fail "the running kernel does not show the bug"
echo
echo "--- 2. verify and apply the bundle (no reboot):"
run patchd verify "$B" || fail "verify failed"
run patchd apply --kmod "$M/suture.ko" "$B" || fail "apply failed"
echo
echo "--- 3. the same test on the patched kernel:"
run slack || fail "the fix is applied but the bug is still there"
echo
run patchd status || fail "status failed"
echo
echo "--- 4. revert, and the bug is back:"
run patchd revert --all || fail "revert failed"
run slack && fail "the fix is still active after revert"
echo
run patchd audit verify || fail "audit verify failed"
echo "demo: bug shown, fixed live, reverted"
