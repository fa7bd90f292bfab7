# Benchmark of the companion module (prints @@SUTURE-FIGURE lines; the host
# computes and prints the table: vm-tests/src/bin/suture-kmod-bench.rs).
# Needs checks/load first.
CALLS=1000000
ROUNDS=7
CYCLES=10

# calls_ns K: ns for CALLS dependent calls of suture_bench_fnK
calls_ns() {
	echo "$CALLS $1" >/proc/suture_bench
	set -- $(cat /proc/suture_bench)
	echo "$4"
}

figure() {
	echo "@@SUTURE-FIGURE $1 $2"
}

# Call cost: fn0 redirected by suture's direct call, fn3 by suture's ftrace
# handler (loaded with direct=0), fn1 by the kernel's livepatch, fn2
# unpatched; measured in turns so that drift hits all four alike.
calls_ns 2 >/dev/null
figure call_before "$CALLS $(calls_ns 0)"
echo 0 >/sys/module/suture/parameters/direct
load test_patch_bench3
set_enabled test_patch_bench3 1
echo 1 >/sys/module/suture/parameters/direct
load test_patch_bench1
set_enabled test_patch_bench1 1
expect "$(path_of test_patch_bench1 suture_bench_fn0)" direct "fn0 redirected by direct call"
expect "$(path_of test_patch_bench3 suture_bench_fn3)" ftrace "fn3 redirected by the ftrace handler"
t0=$(date +%s)
load klp_bench
i=0
until [ "$(cat /sys/kernel/livepatch/klp_bench/transition)" = 0 ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "livepatch transition did not finish"; usleep 100000
done
figure klp_enable_s "$(($(date +%s) - t0))"
r=0
while [ $r -lt $ROUNDS ]; do
	figure call_unpatched "$CALLS $(calls_ns 2)"
	figure call_far "$CALLS $(calls_ns 4)"
	figure call_hop "$CALLS $(calls_ns 5)"
	figure call_suture "$CALLS $(calls_ns 0)"
	figure call_suture_ftrace "$CALLS $(calls_ns 3)"
	figure call_livepatch "$CALLS $(calls_ns 1)"
	r=$((r + 1))
done
# Loaded but disabled: the direct call still goes through the trampoline,
# which returns into the original; the handler finds no active replacement.
set_enabled test_patch_bench1 0
set_enabled test_patch_bench3 0
r=0
while [ $r -lt $ROUNDS ]; do
	figure call_suture_disabled "$CALLS $(calls_ns 0)"
	figure call_suture_ftrace_disabled "$CALLS $(calls_ns 3)"
	r=$((r + 1))
done
rmmod test_patch_bench3 || fail "rmmod test_patch_bench3"
rmmod test_patch_bench1 || fail "rmmod test_patch_bench1"
figure call_after_rmmod "$CALLS $(calls_ns 0)"
echo 0 >/sys/kernel/livepatch/klp_bench/enabled
i=0
while [ -e /sys/kernel/livepatch/klp_bench ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "livepatch disable did not finish"; usleep 100000
done
rmmod klp_bench || fail "rmmod klp_bench"

# stop_machine pause with 200 extra sleeping tasks
i=0
while [ $i -lt 200 ]; do
	sleep 3600 &
	i=$((i + 1))
done
threads=$(ls /proc/*/task | grep -c '^[0-9]')
figure threads "$threads"
for p in test_patch_bench1 test_patch_bench20; do
	load $p
	# survey=0 (every stack walked inside the stop) is the baseline
	for survey in 0 1; do
		echo $survey >/sys/module/suture/parameters/survey
		i=0
		while [ $i -lt $CYCLES ]; do
			set_enabled $p 1
			figure "pause_enable_${p}_survey$survey" "$(cat $S/$p/last_pause_ns)"
			figure "walked_enable_${p}_survey$survey" "$(cat $S/$p/last_walked)"
			set_enabled $p 0
			figure "pause_disable_${p}_survey$survey" "$(cat $S/$p/last_pause_ns)"
			i=$((i + 1))
		done
	done
	rmmod $p || fail "rmmod $p"
done
echo 1 >/sys/module/suture/parameters/survey
kill $(jobs -p) 2>/dev/null
echo "ok: benchmark done"
