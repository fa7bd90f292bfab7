# First boot of the crash-loop test: a bundle is applied with patchd's state
# on the ext4 disk, then the kernel crashes (sysrq c) while it is applied,
# so no clean shutdown is recorded. patchd fsyncs its state and audit log,
# so nothing else is needed for them to be on the disk.
P=cmdline_demo
STATE=/var/lib/suture
mount_state
[ -e $STATE/state.json ] && fail "the state disk is not fresh"
patchd apply --kmod "$M/suture.ko" /suture/bundles/$P.bundle || fail "apply failed"
expect "$(cat $S/$P/enabled)" 1 "applied before the crash"
# The marker through the kernel log at a level the console prints: the
# console writes it before the panic, while output still in the tty's
# buffer may be lost with the crash.
sleep 1
echo "<2>@@SUTURE-CRASHING" >/dev/kmsg
echo c >/proc/sysrq-trigger
fail "the kernel did not crash"
