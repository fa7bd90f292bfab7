# The main job, in the guest: a signed bundle made by `patchgen build` from
# vm-tests/fixes/cmdline_demo.patch is applied to the running kernel with
# patchd (no reboot), shown, and reverted.
B=/suture/bundles/cmdline_demo.bundle
run() {
	echo "# $*"
	"$@"
}
echo "kernel: $(uname -r), build-id from /sys/kernel/notes"
run cat /proc/cmdline
run patchd verify "$B" || fail "verify failed"
run patchd apply --kmod "$M/suture.ko" "$B" || fail "apply failed"
run cat /proc/cmdline
run patchd status || fail "status failed"
run patchd revert cmdline_demo || fail "revert failed"
run cat /proc/cmdline
run patchd audit verify || fail "audit verify failed"
