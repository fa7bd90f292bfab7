# A fix to fs/proc/cmdline.c built by `patchgen build` (vm-tests/fixes/
# cmdline_demo.patch): the module links (patchgen's records for the static
# cmdline_proc_show and saved_command_line) and loads with patchd, and
# enabling it changes what /proc/cmdline shows; disabling restores it.
P=cmdline_demo
cmdline=$(cat /proc/cmdline)
load $P
cat $S/$P/functions
set_enabled $P 1
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline with the fix"
set_enabled $P 0
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after disable"
rmmod $P || fail "rmmod $P"
