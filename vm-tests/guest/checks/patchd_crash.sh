# kill -9 of patchd at each step of an apply, then a restart: the state is
# consistent with the kernel every time. PATCHD_TEST_KILL_AT=POINT makes
# patchd SIGKILL itself exactly there (patchd/src/killpoint.rs). After each
# kill, the restart (`patchd daemon --once`, what patchd.service runs when it
# starts again; it reconciles) must leave, and `patchd status` (read-only)
# show, either the bundle applied and enabled with the fixed /proc/cmdline,
# or nothing applied, no patch module loaded and the original
# /proc/cmdline: never half applied.
# Then the bundle must apply and revert cleanly.
P=cmdline_demo
B=/suture/bundles/$P.bundle
STATE=/var/lib/suture-crash
cmdline=$(cat /proc/cmdline)
apply() {
	patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$@"
}
if loaded $P; then
	echo "note: $P left loaded by an earlier check; removing it"
	[ -e "$S/$P/enabled" ] && echo 0 >"$S/$P/enabled"
	rmmod $P || fail "cannot remove the stale $P"
fi
for point in apply-transaction-open apply-loading-saved apply-module-loaded \
	apply-enabling-saved apply-enabled apply-applied-saved apply-transaction-closed; do
	PATCHD_TEST_KILL_AT=$point apply "$B" >/tmp/crash.out 2>&1
	rc=$?
	[ $rc -eq 137 ] || { cat /tmp/crash.out; fail "patchd was not killed at $point (exit $rc)"; }
	mkdir -p $STATE/watch
	patchd daemon --once --no-repository --kmod "$M/suture.ko" --state-dir $STATE \
		--watch-dir $STATE/watch 2>/tmp/restart.log ||
		{ cat /tmp/restart.log; fail "the restart after the kill at $point failed"; }
	out=$(patchd status --state-dir $STATE 2>&1) || fail "status after the kill at $point failed: $out"
	if loaded $P; then
		outcome="kept: applied"
		expect "$(cat $S/$P/enabled)" 1 "$point: the loaded patch is enabled"
		case "$out" in *"$P: applied (kernel: enabled)"*) ;; *) fail "$point: loaded, but status says: $out" ;; esac
		expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "$point: /proc/cmdline is the fixed one"
	else
		outcome="rolled back"
		case "$out" in *"applied bundles: none"*) ;; *) fail "$point: not loaded, but status says: $out" ;; esac
		expect "$(cat /proc/cmdline)" "$cmdline" "$point: /proc/cmdline is the original"
		[ -e "$STATE/applied/$P.bundle" ] && fail "$point: a copy of a bundle not applied is kept"
	fi
	echo "kill -9 at $point: $outcome; $(grep -c reconciled /tmp/restart.log) reconciliation(s)"
	grep "reconciled" /tmp/restart.log | sed 's/^/  /'
	patchd audit verify --state-dir $STATE >/dev/null || fail "$point: the audit log does not verify"
	# Recovery: the same bundle applies (or is applied already) and reverts.
	apply "$B" >/dev/null || fail "$point: apply after the restart failed"
	expect "$(cat $S/$P/enabled)" 1 "$point: applied again after the restart"
	patchd revert --state-dir $STATE --all >/dev/null || fail "$point: revert failed"
	loaded $P && fail "$point: $P still loaded after revert"
	expect "$(cat /proc/cmdline)" "$cmdline" "$point: reverted"
done
