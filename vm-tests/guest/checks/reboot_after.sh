# Second boot of the reboot test, with the disk of reboot_before: the
# kernel is fresh (the patch is gone), the state says applied. What
# patchd-boot.service runs at boot, `patchd daemon --once --no-repository`,
# must re-apply it from the copy in the state directory.
P=cmdline_demo
STATE=/var/lib/suture
cmdline=$(cat /proc/cmdline)
mount_state
[ -e $STATE/state.json ] || fail "the state disk has no state.json"
loaded $P && fail "$P is loaded in a fresh boot"
expect "$cmdline" "${cmdline% suture-fixed}" "the fresh kernel shows the original /proc/cmdline"
boot_pass
grep -q "boot re-apply: re-applied $P" /tmp/boot.log || fail "no re-apply in the log"
expect "$(cat $S/$P/enabled)" 1 "re-applied at boot"
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline is the fixed one after the reboot"
out=$(patchd status) || fail "status failed"
echo "$out"
case "$out" in *"$P: applied (kernel: enabled)"*) ;; *) fail "status does not show $P applied" ;; esac
patchd audit verify || fail "the audit log does not verify"
patchd revert --all || fail "revert failed"
umount $STATE || fail "cannot unmount the state disk"
echo "ok: the patch came back at boot"
