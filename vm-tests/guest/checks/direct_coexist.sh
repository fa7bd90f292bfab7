# Other ftrace users on a function suture redirects by direct call. A
# tracer and a kprobe share it: they see the call, and the redirect goes
# on. A BPF trampoline and the kernel's livepatch cannot share it (ftrace
# allows one direct call per function, and no IPMODIFY user beside one
# without an ops_func): when they come second they are refused and the
# redirect goes on; when they come first, suture falls back to its ftrace
# handler for that function (path "ftrace"), beside the BPF program, or
# refuses beside livepatch, as before direct calls.
P=test_patch_cmdline
cmdline=$(cat /proc/cmdline)
patched="suture: patched cmdline"
T=/sys/kernel/tracing
[ -e $T/trace ] || mount -t tracefs nodev $T || fail "cannot mount tracefs"

load $P
set_enabled $P 1
expect "$(path_of $P cmdline_proc_show)" direct "cmdline_proc_show redirected by direct call"

# The function tracer on it.
echo cmdline_proc_show >$T/set_ftrace_filter || fail "cannot filter the tracer"
echo function >$T/current_tracer || fail "cannot start the function tracer"
expect "$(cat /proc/cmdline)" "$patched" "traced: still redirected"
grep -q " cmdline_proc_show <-" $T/trace || fail "the tracer did not see cmdline_proc_show"
echo "ok: the tracer saw the call"
echo nop >$T/current_tracer
echo >$T/set_ftrace_filter
expect "$(cat /proc/cmdline)" "$patched" "tracer off: still redirected"

# A kprobe on its entry (kprobes on an ftrace site use ftrace).
echo 'p:suture_kp cmdline_proc_show' >$T/kprobe_events || fail "cannot add a kprobe"
echo 1 >$T/events/kprobes/suture_kp/enable || fail "cannot enable the kprobe"
expect "$(cat /proc/cmdline)" "$patched" "kprobed: still redirected"
hits=$(awk '$1 == "suture_kp" { print $2 }' $T/kprobe_profile)
[ "${hits:-0}" -ge 1 ] || fail "the kprobe did not fire (hits: '$hits')"
echo "ok: the kprobe fired ($hits)"
echo 0 >$T/events/kprobes/suture_kp/enable
echo '-:suture_kp' >>$T/kprobe_events || fail "cannot remove the kprobe"
expect "$(cat /proc/cmdline)" "$patched" "kprobe removed: still redirected"

# A BPF fentry program after suture: refused.
/suture/bin/fentry cmdline_proc_show -- true
expect "$?" 3 "BPF fentry attach on the redirected function refused"
expect "$(cat /proc/cmdline)" "$patched" "after the refused BPF attach: still redirected"

# The kernel's livepatch after suture: refused.
insmod $M/klp_cmdline.ko 2>/dev/null && fail "a livepatch of the redirected function loaded"
[ -e /sys/kernel/livepatch/klp_cmdline ] && fail "the refused livepatch is registered"
echo "ok: livepatch of the redirected function refused"
expect "$(cat /proc/cmdline)" "$patched" "after the refused livepatch: still redirected"

set_enabled $P 0
expect "$(cat /proc/cmdline)" "$cmdline" "disabled: original"
rmmod $P || fail "rmmod $P"
unhooked cmdline_proc_show

# A BPF fentry program first: suture takes its ftrace handler path, and
# both run.
cat >/tmp/bpf_first.sh <<INNER
. /suture/lib.sh
load $P
set_enabled $P 1
expect "\$(path_of $P cmdline_proc_show)" ftrace "beside a BPF trampoline: the ftrace handler"
expect "\$(cat /proc/cmdline)" "$patched" "redirected beside the BPF program"
set_enabled $P 0
expect "\$(cat /proc/cmdline)" "$cmdline" "disabled beside the BPF program: original"
rmmod $P || fail "rmmod $P"
INNER
out=$(/suture/bin/fentry cmdline_proc_show -- sh /tmp/bpf_first.sh)
rc=$?
echo "$out"
expect "$rc" 0 "suture beside a BPF program that came first"
runs=$(echo "$out" | awk '$1 == "fentry:" && $2 == "runs" { print $3 }')
[ "${runs:-0}" -ge 2 ] || fail "the BPF program did not run on each call (runs: '$runs')"
echo "ok: the BPF program ran $runs times"
unhooked cmdline_proc_show

# The kernel's livepatch first: suture refuses, nothing changes.
insmod $M/klp_cmdline.ko || fail "cannot load the livepatch"
expect "$(cat /proc/cmdline)" "livepatch: patched cmdline" "livepatch alone"
load $P
echo 1 2>/dev/null >$S/$P/enabled && fail "suture enabled over the kernel's livepatch"
expect "$(cat $S/$P/enabled)" 0 "refused beside the kernel's livepatch"
expect "$(path_of $P cmdline_proc_show)" - "nothing attached after the refusal"
expect "$(cat /proc/cmdline)" "livepatch: patched cmdline" "the livepatch still runs"
rmmod $P || fail "rmmod $P"
echo 0 >/sys/kernel/livepatch/klp_cmdline/enabled
i=0
while [ -e /sys/kernel/livepatch/klp_cmdline ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "livepatch disable did not finish"; usleep 100000
done
rmmod klp_cmdline || fail "rmmod klp_cmdline"
unhooked cmdline_proc_show
expect "$(cat /proc/cmdline)" "$cmdline" "everything gone: original"

# And suture by direct call again.
load $P
set_enabled $P 1
expect "$(path_of $P cmdline_proc_show)" direct "direct call again once the others left"
set_enabled $P 0
rmmod $P || fail "rmmod $P"
unhooked cmdline_proc_show
