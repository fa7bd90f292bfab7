# Registrations that must fail with a clear kernel message, leaving nothing
# registered or loaded: wrong name, wrong size, not a function start, notrace.
P=test_patch_bad
cmdline=$(cat /proc/cmdline)
for mode in name size offset notrace; do
	case $mode in
	name) want="not the start of version_proc_show" ;;
	size) want="bytes in the running kernel" ;;
	offset) want="cmdline_proc_show+0x4" ;;
	notrace) want="has no ftrace call site" ;;
	esac
	dmesg -c >/dev/null
	out=$(patchd load-module $M/$P.ko mode=$mode 2>&1) && fail "mode=$mode: the bad patch loaded"
	msg=$(dmesg | grep "suture: $P")
	echo "mode=$mode: patchd: $(echo "$out" | tail -n 1)"
	echo "mode=$mode: kernel: $msg"
	case "$msg" in *"$want"*) ;; *) fail "mode=$mode: kernel message lacks '$want'" ;; esac
	[ -e $S/$P ] && fail "mode=$mode: $S/$P exists"
	loaded $P && fail "mode=$mode: module left loaded"
	expect "$(cat /proc/cmdline)" "$cmdline" "mode=$mode: /proc/cmdline unchanged"
done
# The same module without a defect registers: the refusals above were the checks'.
load $P mode=ok
[ -d $S/$P ] || fail "mode=ok did not register"
rmmod $P || fail "rmmod failed"
