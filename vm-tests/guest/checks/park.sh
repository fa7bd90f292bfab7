# User tasks asleep in a function being switched are moved out of it without
# a signal (kmod/suture_park.c), with hand-written modules only, so it runs
# on every kernel line: N readers of /proc/suture_target_wait sleep inside
# suture_target_wait; enabling test_patch_park succeeds at the first attempt,
# every reader is held at the user-mode boundary during the switch, and its
# read restarts into the replacement ("wait 2"); none sees an error.
P=test_patch_park
N=20
D=/tmp/park
mkdir -p $D
param() { cat /sys/module/suture/parameters/$1; }
# sleeping_in NAME: how many threads sleep with NAME as their wait channel
sleeping_in() {
	n=0
	for w in /proc/[0-9]*/task/[0-9]*/wchan; do
		[ "$(cat "$w" 2>/dev/null)" = "$1" ] && n=$((n + 1))
	done
	echo $n
}
# done_readers: how many readers have written their output
done_readers() {
	n=0
	for f in $D/out.*; do [ -s "$f" ] && n=$((n + 1)); done
	echo $n
}
load $P
echo hold >/proc/suture_target_wait
i=0
while [ $i -lt $N ]; do
	cat /proc/suture_target_wait >$D/out.$i 2>$D/err.$i &
	i=$((i + 1))
done
i=0
until [ "$(sleeping_in suture_target_wait)" -ge $N ]; do
	i=$((i + 1))
	[ $i -lt 500 ] || { echo release >/proc/suture_target_wait; fail "only $(sleeping_in suture_target_wait) readers sleep in suture_target_wait"; }
	usleep 20000
done
echo "$N readers sleep in suture_target_wait"
moved=$(param sleepers_moved)
restarted=$(param sleepers_restarted)
if ! echo 1 >$S/$P/enabled; then
	echo release >/proc/suture_target_wait
	fail "enable refused while readers sleep in suture_target_wait (last_busy: $(cat $S/$P/last_busy))"
fi
expect "$(cat $S/$P/busy_refusals)" 0 "enabled at the first attempt"
echo "pause $(cat $S/$P/last_pause_ns) ns, $(cat $S/$P/last_walked) of $(cat $S/$P/last_threads) threads walked in the stop"
i=0
until [ "$(done_readers)" -ge $N ]; do
	i=$((i + 1))
	[ $i -lt 500 ] || { echo release >/proc/suture_target_wait; fail "only $(done_readers) of $N readers returned after the switch"; }
	usleep 20000
done
wait
expect $(($(param sleepers_moved) - moved)) $N "sleepers moved"
expect $(($(param sleepers_restarted) - restarted)) $N "reads restarted"
i=0
good=0
while [ $i -lt $N ]; do
	if [ "$(cat $D/out.$i)" = "wait 2" ] && [ ! -s $D/err.$i ]; then
		good=$((good + 1))
	else
		echo "reader $i: '$(cat $D/out.$i)' $(cat $D/err.$i)"
	fi
	i=$((i + 1))
done
expect $good $N "readers that read 'wait 2' from the replacement, without an error"
echo release >/proc/suture_target_wait
set_enabled $P 0
rmmod $P || fail "rmmod $P failed"
