# A kernel thread sleeps inside a replaced function: enabling is refused with
# -EBUSY and nothing changes (for both functions of the patch); after the
# thread leaves, enabling succeeds.
P=test_patch_busy
load $P
echo hold >/proc/suture_target_busy
i=0
until [ "$(cat /proc/suture_target_busy)" = sleeping ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never slept"; usleep 10000
done
expect "$(cat /proc/suture_target)" "value 1" "value before"
err=$(echo 1 2>&1 >$S/$P/enabled) && fail "enable succeeded while a thread sleeps inside"
echo "refused: $err"
case "$err" in *busy*) ;; *) fail "expected EBUSY, got: $err" ;; esac
expect "$(cat $S/$P/enabled)" 0 "still disabled"
expect "$(active_count $P)" 0 "no function switched"
expect "$(cat /proc/suture_target)" "value 1" "value unchanged"
expect "$(cat $S/$P/busy_refusals)" 1 "one refusal counted"
busy=$(cat $S/$P/last_busy)
echo "last_busy: $busy"
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
rmmod $P || fail "rmmod failed"
