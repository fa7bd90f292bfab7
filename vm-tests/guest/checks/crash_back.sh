# Third boot of the crash-loop test: the boot before ended cleanly, so the
# bundle held back after the crash comes back.
P=cmdline_demo
STATE=/var/lib/suture
cmdline=$(cat /proc/cmdline)
mount_state
boot_pass
grep -q "boot re-apply: re-applied $P" /tmp/boot.log || fail "$P was not re-applied after a clean boot"
expect "$(cat $S/$P/enabled)" 1 "re-applied after the clean boot"
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline is the fixed one"
out=$(patchd status) || fail "status failed"
echo "$out"
case "$out" in *"$P: applied (kernel: enabled)"*) ;; *) fail "status does not show $P applied" ;; esac
patchd audit verify || fail "the audit log does not verify"
patchd revert --all || fail "revert failed"
umount $STATE || fail "cannot unmount the state disk"
echo "ok: the held bundle came back after a clean boot"
