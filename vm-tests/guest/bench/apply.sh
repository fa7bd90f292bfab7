# Benchmark of patchd apply and revert, and of the idle daemon (prints
# @@SUTURE-FIGURE lines; the host computes and prints the table:
# vm-tests/src/bin/suture-apply-bench.rs). Sourced, after lib.sh, by the
# checks the host generates, which set:
#   BIN        the patchd to run (the debug or the release build)
#   LABEL      debug or release: names the figures
#   ROUNDS     apply/revert rounds of each bundle
#   IDLE_SECS  how long the daemon is watched while idle
# and call bench_applies or bench_daemon.
#
# Times come from the guest's clock: busybox sh's $EPOCHREALTIME and ts(1)
# stamps (microseconds; busybox date has no %N). patchd logs without time,
# so its stderr goes through `ts` and the phases are read from the stamps
# of its log lines.
B=/suture/bundles
STATE=/var/lib/suture
MARK="suture: one-function benchmark fix applied"

figure() {
	echo "@@SUTURE-FIGURE $1 $2"
}

# us_between T0 T1: microseconds between two SECONDS.MICROSECONDS stamps,
# in integer arithmetic (an awk double loses the last digits of an epoch).
us_between() {
	echo $(((${2%.*} - ${1%.*}) * 1000000 + (1${2#*.} - 1${1#*.})))
}

# stamp LOG TEXT: the stamp of the first line of LOG that contains TEXT
stamp() {
	grep -m1 -F -- "$2" "$1" | cut -d' ' -f1
}

# timed LOG ARGS...: runs `$BIN ARGS` with its log stamped into LOG; sets
# t_start and t_end; returns patchd's exit status.
timed() {
	log=$1
	shift
	t_start=$EPOCHREALTIME
	(
		set -o pipefail
		"$BIN" "$@" 2>&1 >/dev/null | ts '%.s' >"$log"
	)
	rc=$?
	t_end=$EPOCHREALTIME
	return $rc
}

# phase KEY LOG FROM TO: a figure for the time between two log lines
# (FROM or TO "start"/"end": the command's start or end)
phase() {
	case $3 in start) from=$t_start ;; *) from=$(stamp "$2" "$3") ;; esac
	case $4 in end) to=$t_end ;; *) to=$(stamp "$2" "$4") ;; esac
	[ -n "$from" ] && [ -n "$to" ] || { cat "$2"; fail "no '$3' or '$4' line in patchd's log"; }
	figure "$1" "$(us_between "$from" "$to")"
}

# busy_retries LOG: how often the switch was refused and retried
busy_retries() {
	grep -c "refused with EBUSY" "$1"
}

# apply_once KIND ID: apply $B/ID.bundle, check it took effect, read the
# pause of the enable
apply_once() {
	kind=$1
	id=$2
	log=/tmp/apply-$LABEL-$id.log
	timed "$log" apply --kmod "$M/suture.ko" --state-dir "$STATE" "$B/$id.bundle" ||
		{ cat "$log"; fail "$BIN apply $id failed"; }
	k=${LABEL}_$kind
	figure "apply_$k" "$(us_between "$t_start" "$t_end")"
	phase "apply_verify_$k" "$log" start ": verified "
	phase "apply_linkload_$k" "$log" ": verified " ": loaded bundle="
	# patchd logs each symbol it linked once the module is linked; both
	# bundles have some (the first apply's lines are the companion's).
	phase "apply_link_$k" "$log" ": verified " ": linked symbol "
	phase "apply_load_$k" "$log" ": linked symbol " ": loaded bundle="
	phase "apply_enable_$k" "$log" ": loaded bundle=" ": enabled patch="
	phase "apply_record_$k" "$log" ": enabled patch=" end
	figure "busy_$k" "$(busy_retries "$log")"
	expect "$(cat "$S/$id/enabled")" 1 "$id enabled"
	figure "pause_$k" "$(cat "$S/$id/last_pause_ns")"
	figure "walked_$k" "$(cat "$S/$id/last_walked")"
	case $id in
	bench_one) grep -qF "$MARK" /proc/version || fail "/proc/version lacks the fix's line" ;;
	*) expect "$(active_count "$id")" 20 "functions of $id redirecting" ;;
	esac
}

# revert_once KIND ID
revert_once() {
	kind=$1
	id=$2
	log=/tmp/revert-$LABEL-$id.log
	timed "$log" revert --state-dir "$STATE" "$id" ||
		{ cat "$log"; fail "$BIN revert $id failed"; }
	k=${LABEL}_$kind
	figure "revert_$k" "$(us_between "$t_start" "$t_end")"
	phase "revert_disable_$k" "$log" start ": disabled patch="
	phase "revert_unload_$k" "$log" ": disabled patch=" ": unloaded patch="
	phase "revert_record_$k" "$log" ": unloaded patch=" end
	figure "busy_revert_$k" "$(busy_retries "$log")"
	loaded "$id" && fail "$id still loaded after revert"
	grep -qF "$MARK" /proc/version && fail "/proc/version still has the fix's line"
	return 0
}

bench_applies() {
	mkdir -p /var/lib
	echo "$LABEL patchd: $BIN, $(wc -c <"$BIN") bytes"
	# The first apply loads the companion module as well: measured once,
	# on its own.
	if loaded suture; then
		rmmod suture || fail "cannot unload the companion module"
	fi
	apply_once first bench_one
	revert_once first bench_one
	figure "threads_$LABEL" "$(ls /proc/*/task | grep -c '^[0-9]')"
	# Then the companion stays loaded, as on a server after its first
	# patch. The bundles take turns, so drift hits both alike.
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		apply_once one bench_one
		revert_once one bench_one
		apply_once twenty bench_twenty
		revert_once twenty bench_twenty
		r=$((r + 1))
	done
	# How much of the link step is the kernel producing /proc/kallsyms
	# (which patchd reads once per module it links).
	i=0
	while [ $i -lt 3 ]; do
		a=$EPOCHREALTIME
		cat /proc/kallsyms >/dev/null
		figure "kallsyms_read_$LABEL" "$(us_between "$a" "$EPOCHREALTIME")"
		i=$((i + 1))
	done
	figure "kallsyms_lines_$LABEL" "$(wc -l </proc/kallsyms)"
	echo "last apply log (20 functions):"
	cat "/tmp/apply-$LABEL-bench_twenty.log"
	echo "ok: $ROUNDS rounds"
}

# cpu_ticks PID: utime + stime of the whole process, in clock ticks
# (fields 14 and 15 of /proc/PID/stat; counted after the ") " that ends
# the command name, which may hold spaces)
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# status_field PID NAME: a number of /proc/PID/status
status_field() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# switches PID: voluntary and involuntary context switches: how often the
# process went to sleep or was preempted
switches() {
	echo $(($(status_field "$1" voluntary_ctxt_switches) + $(status_field "$1" nonvoluntary_ctxt_switches)))
}

# oncpu_ns PID: nanoseconds the main thread spent on a CPU (the first
# field of /proc/PID/schedstat; empty without CONFIG_SCHED_INFO)
oncpu_ns() {
	[ -r "/proc/$1/schedstat" ] && cut -d' ' -f1 "/proc/$1/schedstat"
}

bench_daemon() {
	mkdir -p /var/lib
	watch=/tmp/bench-watch-$LABEL
	log=/tmp/daemon-$LABEL.log
	t0=$EPOCHREALTIME
	"$BIN" daemon --no-repository --watch-dir "$watch" --state-dir "$STATE" --kmod "$M/suture.ko" 2>"$log" &
	pid=$!
	i=0
	until grep -q "ready: watching" "$log"; do
		kill -0 $pid 2>/dev/null || { cat "$log"; fail "the daemon exited before it was ready"; }
		i=$((i + 1))
		[ $i -lt 6000 ] || { cat "$log"; fail "the daemon was not ready within 120 s"; }
		usleep 20000
	done
	figure "daemon_ready_$LABEL" "$(us_between "$t0" "$EPOCHREALTIME")"
	# Let the start-up pass settle before the window opens.
	sleep 1
	figure "daemon_start_ticks_$LABEL" "$(cpu_ticks $pid)"
	a=$EPOCHREALTIME
	ticks_a=$(cpu_ticks $pid)
	ns_a=$(oncpu_ns $pid)
	sw_a=$(switches $pid)
	sleep "$IDLE_SECS"
	ticks_b=$(cpu_ticks $pid)
	ns_b=$(oncpu_ns $pid)
	sw_b=$(switches $pid)
	b=$EPOCHREALTIME
	figure "daemon_window_us_$LABEL" "$(us_between "$a" "$b")"
	figure "daemon_ticks_$LABEL" "$((ticks_b - ticks_a))"
	# On-CPU time of the main thread only: the daemon has no other thread
	# without metrics.listen (the Threads figure shows it).
	[ -n "$ns_a" ] && [ -n "$ns_b" ] && figure "daemon_oncpu_ns_$LABEL" "$((ns_b - ns_a))"
	figure "daemon_switches_$LABEL" "$((sw_b - sw_a))"
	figure "daemon_threads_$LABEL" "$(status_field $pid Threads)"
	figure "daemon_rss_kib_$LABEL" "$(status_field $pid VmRSS)"
	figure "daemon_hwm_kib_$LABEL" "$(status_field $pid VmHWM)"
	kill -TERM $pid
	wait $pid
	expect $? 0 "the daemon exits 0 on SIGTERM"
	cat "$log"
	grep -q "stopping on SIGTERM" "$log" || fail "the daemon did not log its stop"
}
