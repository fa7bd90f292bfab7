# Demo: a patch module replaces cmdline_proc_show and version_proc_show in the
# running kernel; shows the files before, with the patch enabled, and after.
P=test_patch_cmdline
echo "kernel: $(uname -r)"
echo "--- before:"
echo "\$ cat /proc/cmdline"; cat /proc/cmdline
echo "\$ cat /proc/version"; cat /proc/version
load $P
echo "\$ echo 1 > $S/$P/enabled"
set_enabled $P 1
echo "\$ cat /proc/cmdline"; cat /proc/cmdline
echo "\$ cat /proc/version"; cat /proc/version
echo "\$ cat $S/$P/functions"; cat $S/$P/functions
echo "stop_machine pause: $(cat $S/$P/last_pause_ns) ns"
echo "\$ echo 0 > $S/$P/enabled"
set_enabled $P 0
echo "\$ cat /proc/cmdline"; cat /proc/cmdline
rmmod $P
