# Runs last: raises lockdown to integrity (it cannot be lowered again) and
# checks that patchd refuses, before touching the kernel, a module it would
# have to link (linking strips the signature), and reports the kernel's own
# refusal of an unsigned module plainly.
[ -e /sys/kernel/security/lockdown ] || fail "no /sys/kernel/security/lockdown"
echo integrity >/sys/kernel/security/lockdown
echo "lockdown: $(cat /sys/kernel/security/lockdown)"
out=$(patchd load-module $M/test_patch_cmdline.ko 2>&1) && fail "a module needing links loaded under lockdown"
echo "patchd: $out"
case "$out" in *"lockdown is \`integrity\`"*) ;; *) fail "patchd did not name the lockdown" ;; esac
loaded test_patch_cmdline && fail "test_patch_cmdline is loaded"
dmesg -c >/dev/null
rmmod suture_bench || fail "rmmod suture_bench"
out=$(patchd load-module $M/suture_bench.ko 2>&1) && fail "an unsigned module loaded under lockdown"
echo "patchd: $out"
case "$out" in *lockdown*) ;; *) fail "patchd's error does not point at lockdown" ;; esac
loaded suture_bench && fail "suture_bench is loaded"
echo "kernel: $(dmesg | grep -i lockdown)"
