# A real fix from Debian's 6.1 stable updates (6.1.176-1 -> 6.1.190-1):
# kernel/workqueue.c's static check_flush_dependency(), which holds a
# WARN_ONCE, must not dereference worker->current_pwq when it is NULL.
# Built by patchgen into a signed bundle (vm-tests/fixes/
# workqueue_flush_dependency.patch); applied with patchd while work is
# flushed (every flush_work() passes through the function), then reverted.
P=workqueue_flush_dependency
B=/suture/bundles/$P.bundle
STATE=/var/lib/suture-real-fix
flush_load() {
	i=0
	while [ $i -lt 30 ]; do
		sync
		echo 1 >/proc/sys/vm/drop_caches
		i=$((i + 1))
	done
}
patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$B" || fail "patchd apply failed"
expect "$(cat $S/$P/enabled)" 1 "the fix is enabled"
grep -q "^check_flush_dependency " $S/$P/functions || fail "check_flush_dependency is not replaced"
expect "$(active_count $P)" 1 "one function redirected"
flush_load
patchd status --state-dir $STATE || fail "status failed"
patchd revert --state-dir $STATE $P || fail "patchd revert failed"
loaded $P && fail "$P still loaded after revert"
flush_load
echo "ok: applied, exercised and reverted"
