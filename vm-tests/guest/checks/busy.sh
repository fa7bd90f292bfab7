# A kernel thread sleeps inside a replaced function: enabling is refused with
# -EBUSY and nothing changes (for both functions of the patch); after the
# thread leaves, enabling succeeds. Run twice: with the survey (the refusal
# comes from the walk before the stop) and with survey=0 (from the walk
# inside stop_machine).
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
rmmod $P || fail "rmmod failed"
