# A kernel thread sleeps inside a replaced function: enabling is refused with
# -EBUSY and nothing changes (for both functions of the patch); after the
# thread leaves, enabling succeeds. Run twice: with the survey (the refusal
# comes from the walk before the stop) and with survey=0 (from the walk
# inside stop_machine). Then a thread sleeps inside the replacement, reached
# through the direct-call trampoline: its stack shows the replacement under
# the caller (the unwinder goes through the redirect; the original is not
# there), and disabling is refused until it leaves.
P=test_patch_busy
load $P
refusals=0
for survey in 1 0; do
	echo $survey >/sys/module/suture/parameters/survey
	echo "--- survey=$survey"
	echo hold >/proc/suture_target_busy
	i=0
	until [ "$(cat /proc/suture_target_busy)" = sleeping ]; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never slept"; usleep 10000
	done
	expect "$(cat /proc/suture_target)" "value 1" "value before"
	err=$(echo 1 2>&1 >$S/$P/enabled) && fail "enable succeeded while a thread sleeps inside"
	echo "refused: $err"
	case "$err" in *busy*) ;; *) fail "expected EBUSY, got: $err" ;; esac
	refusals=$((refusals + 1))
	expect "$(cat $S/$P/enabled)" 0 "still disabled"
	expect "$(active_count $P)" 0 "no function switched"
	expect "$(cat /proc/suture_target)" "value 1" "value unchanged"
	expect "$(cat $S/$P/busy_refusals)" $refusals "refusal counted"
	busy=$(cat $S/$P/last_busy)
	echo "last_busy: $busy (pause $(cat $S/$P/last_pause_ns) ns)"
	case "$busy" in *suture_busy*suture_target_sleep*) ;; *) fail "last_busy does not name the thread and function" ;; esac
	echo release >/proc/suture_target_busy
	i=0
	until [ "$(cat /proc/suture_target_busy)" = idle ]; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never woke"; usleep 10000
	done
	usleep 100000
	echo 1 >$S/$P/enabled || fail "enable failed after the thread left"
	expect "$(cat /proc/suture_target)" "value 2" "value after enable"
	expect "$(active_count $P)" 2 "both functions switched"
	set_enabled $P 0
	expect "$(cat /proc/suture_target)" "value 1" "value after disable"
done
echo 1 >/sys/module/suture/parameters/survey

echo "--- a thread inside the replacement"
set_enabled $P 1
expect "$(path_of $P suture_target_sleep)" direct "suture_target_sleep redirected by direct call"
echo hold >/proc/suture_target_busy
i=0
until [ "$(cat /proc/suture_target_busy)" = sleeping ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never slept"; usleep 10000
done
pid=
for d in /proc/[0-9]*; do
	[ "$(cat $d/comm 2>/dev/null)" = suture_busy ] && pid=${d#/proc/}
done
[ -n "$pid" ] || fail "no suture_busy thread"
stack=$(cat /proc/$pid/stack)
echo "$stack"
case "$stack" in
*suture_target_hold*new_suture_target_sleep*suture_target_thread*) ;;
*) fail "the stack does not show hold, the replacement and its caller in order" ;;
esac
case "$stack" in *" suture_target_sleep+"*) fail "the original function shows in the stack" ;; esac
echo "ok: the replacement and its caller on the stack"
err=$(echo 0 2>&1 >$S/$P/enabled) && fail "disable succeeded while a thread sleeps inside the replacement"
echo "refused: $err"
busy=$(cat $S/$P/last_busy)
echo "last_busy: $busy"
case "$busy" in *suture_busy*new_suture_target_sleep*) ;; *) fail "last_busy does not name the thread and the replacement" ;; esac
expect "$(cat $S/$P/enabled)" 1 "still enabled"
expect "$(cat /proc/suture_target)" "value 2" "still the new value"
echo release >/proc/suture_target_busy
i=0
until [ "$(cat /proc/suture_target_busy)" = idle ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never woke"; usleep 10000
done
set_enabled $P 0
expect "$(cat /proc/suture_target)" "value 1" "disabled once the thread left"
rmmod $P || fail "rmmod failed"
