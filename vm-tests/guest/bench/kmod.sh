# Benchmark of the companion module (prints @@SUTURE-FIGURE lines; the host
# computes and prints the table: vm-tests/src/bin/suture-kmod-bench.rs).
# Needs checks/load first.
CALLS=1000000
REPS=5
CYCLES=10

calls_ns() {
	echo $CALLS >/proc/suture_bench
	set -- $(cat /proc/suture_bench)
	echo "$4"
}

figure() {
	echo "@@SUTURE-FIGURE $1 $2"
}

run_calls() {
	i=0
	while [ $i -lt $REPS ]; do
		figure "$1" "$CALLS $(calls_ns)"
		i=$((i + 1))
	done
}

# (a) unpatched
calls_ns >/dev/null
run_calls call_unpatched

# (b) redirected by suture
load test_patch_bench1
set_enabled test_patch_bench1 1
run_calls call_suture
set_enabled test_patch_bench1 0
# (b') loaded but disabled: our ftrace_ops stays registered, the handler
# finds no active replacement
run_calls call_suture_disabled
rmmod test_patch_bench1 || fail "rmmod test_patch_bench1"
run_calls call_unpatched_after

# (c) redirected by the kernel's own livepatch
t0=$(date +%s)
load klp_bench
i=0
until [ "$(cat /sys/kernel/livepatch/klp_bench/transition)" = 0 ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "livepatch transition did not finish"; usleep 100000
done
figure klp_enable_s "$(($(date +%s) - t0))"
run_calls call_livepatch
echo 0 >/sys/kernel/livepatch/klp_bench/enabled
i=0
while [ -e /sys/kernel/livepatch/klp_bench ] && [ "$(cat /sys/kernel/livepatch/klp_bench/transition)" != 0 ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "livepatch disable did not finish"; usleep 100000
done
usleep 500000
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
kill $(jobs -p) 2>/dev/null
echo "ok: benchmark done"
