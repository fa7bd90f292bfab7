# Second boot of the crash-loop test, after the crash of crash_apply: what
# patchd-boot.service runs must hold the bundle back (applied seconds
# before a crash, it may have caused it), say so, and report it; then the
# machine shuts down cleanly (what patchd-shutdown.service runs).
P=cmdline_demo
STATE=/var/lib/suture
cmdline=$(cat /proc/cmdline)
mount_state
boot_pass
grep -q "crash-loop guard: the machine went down without a clean shutdown" /tmp/boot.log ||
	fail "the boot pass does not say the last boot crashed"
grep -q "boot re-apply: $P held back" /tmp/boot.log || fail "the boot pass does not hold $P back"
loaded $P && fail "$P was loaded although held back"
[ -e $S/$P ] && fail "$P is registered although held back"
expect "$(cat /proc/cmdline)" "$cmdline" "the kernel runs unpatched"
out=$(patchd status) || fail "status failed"
echo "$out"
case "$out" in *"crash-loop guard: this boot followed a crash"*) ;; *) fail "status does not say this boot followed a crash" ;; esac
case "$out" in *"$P: held (kernel: not loaded)"*) ;; *) fail "status does not show $P held" ;; esac
case "$out" in *"patchd release $P"*) ;; *) fail "status does not say how to release $P" ;; esac
patchd report --json | tr -d ' \n' | grep -q '"held":\["'$P'"\]' || {
	patchd report --json
	fail "the report does not list $P as held"
}
patchd metrics | grep -q '^suture_patches_held 1$' || fail "the metrics do not count one held bundle"
grep -q '"action":"hold"' $STATE/audit.log || fail "no hold line in the audit log"
patchd audit verify || fail "the audit log does not verify"
patchd shutdown || fail "patchd shutdown failed"
umount $STATE || fail "cannot unmount the state disk"
echo "ok: held back after the crash, reported, clean shutdown recorded"
