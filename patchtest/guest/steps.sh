# The steps of one bundle's validation by patchtest (patchtest/src/validate/),
# sourced by the checks the host generates: NAME.prepare, NAME.before,
# NAME.apply, NAME.applied, NAME.revert, NAME.reverted, NAME.log. The host
# puts each bundle under $V/NAME/: bundle, id, functions (old names, one a
# line), load_classes, kmods and load_kmods (the modules it patches and
# those its load needs, dependencies first), and optionally test and
# test_name. A step's exit
# status is its result; 125 means it was skipped. Lines that start with
# "patchtest-" carry figures to the host.
V=/suture/validate
STATE=/var/lib/suture
SKIPPED=125

# The kernel log and taint of a bundle start here.
step_prepare() {
	d=$V/$1
	cat /proc/sys/kernel/tainted >"$d/taint_before"
	dmesg -c >/dev/null
	echo "bundle $(cat "$d/id"), replaces: $(tr '\n' ' ' <"$d/functions")"
	# The Debian modules whose code the bundle patches, dependencies
	# first (patchtest puts them in /suture/kmods).
	while read -r m; do
		grep -q "^$m " /proc/modules && continue
		insmod /suture/kmods/*-"$m".ko || { echo "FAIL: cannot load the module $m"; exit 1; }
	done <"$d/kmods"
	patchd verify "$d/bundle"
}

# step_test NAME PHASE: run the bundle's test script.
step_test() {
	d=$V/$1
	echo "# $2: sh $(cat "$d/test_name")"
	PATH=/suture/files:$PATH sh "$d/test"
	rc=$?
	echo "patchtest-test-status $rc"
	exit $rc
}

# calls NAME: "FUNC CALLS" for each function of the bundle's patch: the
# calls the companion module redirected (the 8th column of its functions
# file, counted while its count_calls parameter is on), read while the
# patch is enabled.
calls() {
	f=$S/$(cat "$V/$1/id")/functions
	[ -r "$f" ] && awk '{ print $1, $8 }' "$f"
}

# One loader per vCPU, each in its own process group, pinned to its CPU, at
# nice 10: it keeps every CPU busy in and around the patched code (the
# switch stops them all the same) without starving patchd of its time.
load_start() {
	d=$V/$1
	: >"$d/loaders"
	[ -f $V/no_load ] && return 0
	# The modules the default load's exercisers need (null_blk, loop, ...).
	while read -r m; do
		grep -q "^$m " /proc/modules && continue
		insmod /suture/kmods/*-"$m".ko || echo "load: cannot load the module $m"
	done <"$d/load_kmods"
	cpus=$(nproc)
	cpu=0
	while [ $cpu -lt "$cpus" ]; do
		rm -f "/tmp/patchtest-rounds.$cpu"
		taskset -c $cpu setsid sh $V/load.sh $cpu $(cat "$d/load_classes") </dev/null >/dev/null 2>&1 &
		# busybox has renice, not nice.
		renice -n 10 -p $! >/dev/null
		echo "$cpu $!" >>"$d/loaders"
		cpu=$((cpu + 1))
	done
	echo "load: $cpus loader(s) ($(cat "$d/load_classes"))"
}

# group_running PGID: whether a process of the group is still running
# (zombies left for init to reap do not count).
group_running() {
	g=$1
	for s in /proc/[0-9]*/stat; do
		{ read -r line <"$s"; } 2>/dev/null || continue
		# After "PID (COMM) ": state, parent, process group.
		set -- ${line##*) }
		[ "${3:-}" = "$g" ] && [ "$1" != Z ] && return 0
	done
	return 1
}

# Stops the loaders; fails if one of them died on its own. The default
# load's loaders are then waited for (up to 70 s: an exerciser that must
# finish, the CPU hotplug's, bounds itself to a minute) and what they left
# is undone (load.sh CPU --stop: mounts, loop devices, an offline CPU).
load_stop() {
	d=$V/$1
	stopped_ok=0
	rounds=0
	while read -r cpu pid; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "FAIL: the load on cpu $cpu exited before it was stopped"
			stopped_ok=1
		fi
		kill -TERM "-$pid" 2>/dev/null
		r=$(cat "/tmp/patchtest-rounds.$cpu" 2>/dev/null)
		rounds=$((rounds + ${r:-0}))
	done <"$d/loaders"
	[ -s "$d/loaders" ] && echo "patchtest-load-rounds $rounds"
	if [ -s "$d/load_classes" ]; then
		while read -r cpu pid; do
			waited=0
			while group_running "$pid" && [ $waited -lt 700 ]; do
				usleep 100000
				waited=$((waited + 1))
			done
			group_running "$pid" && echo "load: the loader of cpu $cpu is still running"
			sh $V/load.sh "$cpu" --stop
		done <"$d/loaders"
	fi
	return $stopped_ok
}

step_apply() {
	d=$V/$1
	load_start "$1"
	patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$d/bundle"
	rc=$?
	if [ $rc -eq 0 ]; then
		touch "$d/applied"
		# Counting costs on every redirected call: off unless asked for.
		echo 1 >/sys/module/suture/parameters/count_calls
		calls "$1" >"$d/calls_start"
	fi
	patchd status --state-dir $STATE
	exit $rc
}

# reached NAME: whether every function of the bundle's patch was called
# since it was applied (its count above the one read then).
reached() {
	calls "$1" | while read -r f now; do
		start=$(awk -v f="$f" '$1 == f { print $2 }' "$V/$1/calls_start")
		[ "$now" -gt "${start:-0}" ] || { echo no; break; }
	done | grep -q no && return 1
	return 0
}

step_revert() {
	d=$V/$1
	rc=$SKIPPED
	if [ -f "$d/applied" ]; then
		# Evidence that the new code ran: the load goes on until every
		# replaced function was called, for at most reach_secs.
		reach=$(cat $V/reach_secs 2>/dev/null || echo 0)
		waited=0
		while [ "$waited" -lt "${reach:-0}" ] && ! reached "$1"; do
			sleep 1
			waited=$((waited + 1))
		done
		echo "patchtest-reach-waited $waited"
		calls "$1" >"$d/calls_end"
		patchd revert --state-dir $STATE "$(cat "$d/id")"
		rc=$?
		patchd status --state-dir $STATE
	else
		echo "skipped: the bundle was not applied"
	fi
	load_stop "$1" || { [ $rc -eq 0 ] && rc=1; }
	[ -s "$d/calls_end" ] && while read -r f end; do
		start=$(awk -v f="$f" '$1 == f { print $2 }' "$d/calls_start")
		echo "patchtest-hits $f $((end - ${start:-0}))"
	done <"$d/calls_end"
	exit $rc
}

# The bundle's kernel log and new taint.
step_log() {
	d=$V/$1
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
