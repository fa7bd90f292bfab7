# 200 enable/disable cycles while a reader per vCPU reads the patched file:
# every read is the old or the new text, nothing else.
P=test_patch_cmdline
CYCLES=200
cmdline=$(cat /proc/cmdline)
load $P
rm -f /tmp/stop /tmp/bad.* /tmp/reads.*
ncpu=$(grep -c ^processor /proc/cpuinfo)
r=0
while [ $r -lt "$ncpu" ]; do
	(
		n=0
		while [ ! -e /tmp/stop ]; do
			out=$(cat /proc/cmdline)
			case "$out" in
			"$cmdline"|"suture: patched cmdline") ;;
			*) echo "$out" >>/tmp/bad.$r ;;
			esac
			n=$((n + 1))
		done
		echo $n >/tmp/reads.$r
	) &
	r=$((r + 1))
done
i=0
start=$(date +%s)
while [ $i -lt $CYCLES ]; do
	set_enabled $P 1
	set_enabled $P 0
	i=$((i + 1))
done
end=$(date +%s)
touch /tmp/stop
wait
cat /tmp/bad.* 2>/dev/null && fail "a reader saw something else"
reads=$(cat /tmp/reads.* | awk '{ s += $1 } END { print s }')
echo "cycles: $CYCLES in $((end - start)) s; reads: $reads by $ncpu readers; refusals: $(cat $S/$P/busy_refusals)"
[ "$reads" -gt 0 ] || fail "the readers read nothing"
expect "$(cat /proc/cmdline)" "$cmdline" "original after the cycles"
rmmod $P || fail "rmmod failed"
