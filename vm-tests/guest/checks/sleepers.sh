# Functions that tasks always sleep in: fixes to do_wait, pipe_read and
# futex_wait (vm-tests/fixes/sleep_*.patch, built by patchgen), each applied
# by patchd while 50 tasks sleep inside the function (for do_wait also pid
# 1 and this shell). The companion module moves the sleepers out: a
# signal-less wake-up, each held at the user-mode boundary until the switch
# is done (kmod/suture_park.c). Their system calls restart into the patched
# function and complete with the right results; no program sees EINTR
# (sleepers counts every EINTR it gets, the module every interrupted call).
STATE=/var/lib/suture-sleepers
N=50
D=/tmp/sleepers
mkdir -p $D
param() { cat /sys/module/suture/parameters/$1; }
# in_function NAME: how many threads sleep with NAME as their wait channel
in_function() {
	n=0
	for w in /proc/[0-9]*/task/[0-9]*/wchan; do
		[ "$(cat "$w" 2>/dev/null)" = "$1" ] && n=$((n + 1))
	done
	echo $n
}
wait_sleeping() {
	i=0
	until [ "$(in_function "$1")" -ge "$2" ]; do
		i=$((i + 1))
		[ $i -lt 500 ] || fail "only $(in_function "$1") threads sleep in $1, expected $2"
		usleep 20000
	done
	echo "$(in_function "$1") threads sleep in $1"
}
# calls PATCH FUNCTION: calls the companion sent to the replacement
calls() { awk -v f="$2" '$1 == f { print $8 }' "$S/$1/functions"; }
# apply_with_sleepers PATCH FUNCTION: apply; the sleepers must be moved
apply_with_sleepers() {
	moved=$(param sleepers_moved)
	interrupted=$(param sleepers_interrupted)
	out=$(patchd apply --kmod "$M/suture.ko" --state-dir $STATE "/suture/bundles/$1.bundle" 2>&1) ||
		fail "patchd apply $1 with tasks sleeping in $2 failed: $out"
	expect "$(cat $S/$1/enabled)" 1 "$1 enabled while tasks sleep in $2"
	# Count the calls into the replacement: the restarted calls must be there.
	echo 1 >/sys/module/suture/parameters/count_calls
	expect "$(active_count $1)" 1 "$2 redirected"
	now=$(param sleepers_moved)
	echo "$1: moved $((now - moved)) sleeping tasks; pause $(cat $S/$1/last_pause_ns) ns; busy refusals $(cat $S/$1/busy_refusals)"
	[ $((now - moved)) -ge $N ] || fail "$1: only $((now - moved)) tasks were moved out of $2"
	expect "$(param sleepers_interrupted)" "$interrupted" "no moved task had its system call interrupted"
}
revert_fix() {
	patchd revert --state-dir $STATE "$1" || fail "patchd revert $1 failed"
	loaded "$1" && fail "$1 still loaded after revert"
	echo "ok: $1 reverted"
}

# spawn MODE: N `sleepers MODE` programs, each on its own FIFO
spawn() {
	i=0
	while [ $i -lt $N ]; do
		mkfifo $D/$1$i
		sleepers $1 $D/$1$i $D/$1$i.out &
		i=$((i + 1))
	done
}
# feed MODE: a line to each program's FIFO, then wait for them all
feed() {
	i=0
	while [ $i -lt $N ]; do
		echo "line-$i" >$D/$1$i
		i=$((i + 1))
	done
	wait
}
# outputs MODE EXPECTED: every program wrote EXPECTED ("%i" is its number)
outputs() {
	i=0
	while [ $i -lt $N ]; do
		want=$(echo "$2" | sed "s/%i/$i/")
		expect "$(cat $D/$1$i.out)" "$want" "$1 program $i" >/dev/null
		i=$((i + 1))
	done
	echo "ok: $N $1 programs: $2"
}

# --- do_wait: 50 parents wait for children blocked on a FIFO; pid 1 waits
# for this check, and this shell for patchd.
P=sleep_do_wait
spawn wait
wait_sleeping do_wait $((N + 1))
apply_with_sleepers $P do_wait
feed wait
outputs wait "status 7 eintr 0"
[ "$(calls $P do_wait)" -ge $N ] || fail "the restarted waits did not go through the new do_wait ($(calls $P do_wait) calls)"
echo "ok: $(calls $P do_wait) calls through the new do_wait"
revert_fix $P

# --- pipe_read: 50 readers block on empty pipes.
P=sleep_pipe_read
spawn read
wait_sleeping pipe_read $N
apply_with_sleepers $P pipe_read
feed read
outputs read "data line-%i eintr 0"
[ "$(calls $P pipe_read)" -ge $N ] || fail "the restarted reads did not go through the new pipe_read"
revert_fix $P

# --- futex_wait: 50 threads of one process wait on a futex.
P=sleep_futex_wait
sleepers futex $N $D/futex.out &
pid=$!
wait_sleeping futex_wait_queue $N
apply_with_sleepers $P futex_wait
kill -USR1 $pid
wait $pid || fail "the futex waiters failed"
expect "$(cat $D/futex.out)" "woken $N eintr 0" "every futex waiter woken by the value, no EINTR"
[ "$(calls $P futex_wait)" -ge $N ] || fail "the restarted waits did not go through the new futex_wait"
revert_fix $P
patchd audit verify --state-dir $STATE || fail "the audit log does not verify"
echo 0 >/sys/module/suture/parameters/count_calls
echo "moved in all: $(param sleepers_moved); restarted $(param sleepers_restarted); interrupted $(param sleepers_interrupted)"
