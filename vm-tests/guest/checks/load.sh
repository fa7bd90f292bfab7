# The companion module and the test targets load through patchd's link step.
load suture
[ -d "$S" ] || fail "$S missing after loading the companion module"
load suture_target
load suture_bench
echo "loaded: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
grep -q "stack_trace_save_tsk" /proc/kallsyms || fail "no stack_trace_save_tsk in kallsyms"
echo "ok: companion and targets loaded"
