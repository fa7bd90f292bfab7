# 200 enable/disable cycles while a reader per vCPU reads the patched file:
# every read is the old or the new text, nothing else. On each redirect
# path: the direct call (the default), then the ftrace handler (direct=0).
P=test_patch_cmdline
CYCLES=200
cmdline=$(cat /proc/cmdline)
# stress DIRECT PATH: the cycles with the module parameter direct=DIRECT
stress() {
	echo "--- $2"
	unhooked cmdline_proc_show
	echo $1 >/sys/module/suture/parameters/direct
	load $P
	set_enabled $P 1
	expect "$(path_of $P cmdline_proc_show)" "$2" "redirected by the $2 path"
	set_enabled $P 0
	rm -f /tmp/stop /tmp/bad.* /tmp/reads.*
	ncpu=$(grep -c ^processor /proc/cpuinfo)
	r=0
	while [ $r -lt "$ncpu" ]; do
		(
			old=0
			new=0
			while [ ! -e /tmp/stop ]; do
				# read is a shell builtin: no fork, so reads are frequent
				read -r out </proc/cmdline
				case "$out" in
				"$cmdline") old=$((old + 1)) ;;
				"suture: patched cmdline") new=$((new + 1)) ;;
				*) echo "$out" >>/tmp/bad.$r ;;
				esac
			done
			echo "$old $new" >/tmp/reads.$r
		) &
		r=$((r + 1))
	done
	i=0
	start=$(date +%s)
	while [ $i -lt $CYCLES ]; do
		set_enabled $P 1
		usleep 2000
		set_enabled $P 0
		usleep 2000
		i=$((i + 1))
	done
	end=$(date +%s)
	touch /tmp/stop
	wait
	cat /tmp/bad.* 2>/dev/null && fail "a reader saw something else"
	old=$(cat /tmp/reads.* | awk '{ s += $1 } END { print s + 0 }')
	new=$(cat /tmp/reads.* | awk '{ s += $2 } END { print s + 0 }')
	echo "$2: cycles: $CYCLES in $((end - start)) s; reads by $ncpu readers: $old original, $new patched; refusals: $(cat $S/$P/busy_refusals)"
	[ "$old" -gt 0 ] && [ "$new" -gt 0 ] || fail "the readers did not see both the original and the patched text"
	expect "$(cat /proc/cmdline)" "$cmdline" "original after the cycles"
	rmmod $P || fail "rmmod failed"
	unhooked cmdline_proc_show
}

stress 1 direct
stress 0 ftrace
echo 1 >/sys/module/suture/parameters/direct
