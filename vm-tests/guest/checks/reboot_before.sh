# First boot of the reboot test: patchd's state directory is an ext4 file
# system on a virtio disk image; a bundle is applied, then the guest powers
# off cleanly (the host boots it again with the same disk: reboot_after).
P=cmdline_demo
STATE=/var/lib/suture
mount_state
[ -e $STATE/state.json ] && fail "the state disk is not fresh"
patchd apply --kmod "$M/suture.ko" /suture/bundles/$P.bundle || fail "apply failed"
expect "$(cat $S/$P/enabled)" 1 "applied before the reboot"
patchd status || fail "status failed"
# What patchd-shutdown.service runs as the machine stops: without it the
# next boot would be taken for one after a crash, and the crash-loop guard
# would hold the bundle back instead of re-applying it.
patchd shutdown || fail "shutdown failed"
sync
umount $STATE || fail "cannot unmount the state disk"
echo "ok: applied, state on the disk"
