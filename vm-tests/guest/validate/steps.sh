# The steps of one bundle's validation by patchtest (vm-tests/src/validate.rs),
# sourced by the checks the host generates: NAME.prepare, NAME.before,
# NAME.apply, NAME.applied, NAME.revert, NAME.reverted, NAME.log. The host
# puts each bundle under $V/NAME/: bundle, id, functions (old names, one a
# line), load_classes, and optionally test and test_name. A step's exit
# status is its result; 125 means it was skipped. Lines that start with
# "patchtest-" carry figures to the host.
V=/suture/validate
STATE=/var/lib/suture
T=/sys/kernel/tracing
SKIPPED=125

# The kernel log and taint of a bundle start here; kprobes count how often
# the load reaches each replaced function (counted at the old function's
# entry, where ftrace calls the redirect).
step_prepare() {
	d=$V/$1
	cat /proc/sys/kernel/tainted >"$d/taint_before"
	dmesg -c >/dev/null
	echo "bundle $(cat "$d/id"), replaces: $(tr '\n' ' ' <"$d/functions")"
	patchd verify "$d/bundle" || exit $?
	[ -d $T/events ] || mount -t tracefs nodev $T 2>/dev/null
	i=0
	: >"$d/probes"
	while read -r f; do
		i=$((i + 1))
		n=$(awk -v f="$f" '$3 == f && NF == 3' /proc/kallsyms | wc -l)
		if [ "$n" -ne 1 ]; then
			echo "note: $f is in kallsyms $n times; its calls are not counted"
		elif echo "p:patchtest/f$i $f" >>$T/kprobe_events 2>/dev/null; then
			echo "f$i $f" >>"$d/probes"
		else
			echo "note: no kprobe on $f; its calls are not counted"
		fi
	done <"$d/functions"
	if [ -s "$d/probes" ]; then
		echo 1 >$T/events/patchtest/enable || echo "note: cannot enable the kprobes"
	fi
	exit 0
}

# step_test NAME PHASE: run the bundle's test script.
step_test() {
	d=$V/$1
	echo "# $2: sh $(cat "$d/test_name")"
	sh "$d/test"
	rc=$?
	echo "patchtest-test-status $rc"
	exit $rc
}

# hits NAME: "FUNC COUNT" for each counted function.
hits() {
	[ -s "$V/$1/probes" ] || return 0
	while read -r ev f; do
		echo "$f $(awk -v e="$ev" '$1 == e { print $2 }' $T/kprobe_profile)"
	done <"$V/$1/probes"
}

# One loader per vCPU, each in its own process group, pinned to its CPU.
load_start() {
	d=$V/$1
	: >"$d/loaders"
	[ -f $V/no_load ] && return 0
	cpus=$(nproc)
	cpu=0
	while [ $cpu -lt "$cpus" ]; do
		rm -f "/tmp/patchtest-rounds.$cpu"
		taskset -c $cpu setsid sh $V/load.sh $cpu $(cat "$d/load_classes") </dev/null >/dev/null 2>&1 &
		echo "$cpu $!" >>"$d/loaders"
		cpu=$((cpu + 1))
	done
	echo "load: $cpus loader(s) ($(cat "$d/load_classes"))"
}

# Stops the loaders; fails if one of them died on its own.
load_stop() {
	d=$V/$1
	rc=0
	rounds=0
	while read -r cpu pid; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "FAIL: the load on cpu $cpu exited before it was stopped"
			rc=1
		fi
		kill -TERM "-$pid" 2>/dev/null
		r=$(cat "/tmp/patchtest-rounds.$cpu" 2>/dev/null)
		rounds=$((rounds + ${r:-0}))
	done <"$d/loaders"
	[ -s "$d/loaders" ] && echo "patchtest-load-rounds $rounds"
	return $rc
}

step_apply() {
	d=$V/$1
	load_start "$1"
	hits "$1" >"$d/hits_start"
	patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$d/bundle"
	rc=$?
	[ $rc -eq 0 ] && touch "$d/applied"
	patchd status --state-dir $STATE
	exit $rc
}

step_revert() {
	d=$V/$1
	rc=$SKIPPED
	if [ -f "$d/applied" ]; then
		patchd revert --state-dir $STATE "$(cat "$d/id")"
		rc=$?
		patchd status --state-dir $STATE
	else
		echo "skipped: the bundle was not applied"
	fi
	hits "$1" >"$d/hits_end"
	load_stop "$1" || { [ $rc -eq 0 ] && rc=1; }
	while read -r f end; do
		start=$(awk -v f="$f" '$1 == f { print $2 }' "$d/hits_start")
		echo "patchtest-hits $f $((end - ${start:-0}))"
	done <"$d/hits_end"
	exit $rc
}

# The bundle's kernel log and new taint; removes its kprobes.
step_log() {
	d=$V/$1
	if [ -s "$d/probes" ]; then
		echo 0 >$T/events/patchtest/enable
		while read -r ev f; do
			echo "-:patchtest/$ev" >>$T/kprobe_events
		done <"$d/probes"
	fi
	before=$(cat "$d/taint_before")
	now=$(cat /proc/sys/kernel/tainted)
	echo "patchtest-taint $before $now"
	echo "--- kernel log since prepare:"
	dmesg -c
	echo "---"
	# O (4096, out-of-tree) and E (8192, unsigned) come with any patch
	# module; the host names the letters of anything else.
	[ $((now & ~before & ~12288)) -eq 0 ]
}
