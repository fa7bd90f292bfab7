# A patch of two kernel functions, observed from user space before, after
# enable and after disable; the patch module cannot go while enabled.
P=test_patch_cmdline
cmdline=$(cat /proc/cmdline)
version=$(cat /proc/version)
load $P
expect "$(cat $S/$P/enabled)" 0 "registered patch starts disabled"
expect "$(cat /proc/cmdline)" "$cmdline" "registration alone changes nothing"
cat $S/$P/functions
set_enabled $P 1
expect "$(cat $S/$P/enabled)" 1 "enabled"
expect "$(cat /proc/cmdline)" "suture: patched cmdline" "/proc/cmdline after enable"
expect "$(cat /proc/version)" "suture: patched version" "/proc/version after enable"
expect "$(active_count $P)" 2 "both functions active"
# The default path: ftrace direct calls into suture's trampolines.
expect "$(path_of $P cmdline_proc_show)" direct "cmdline_proc_show redirected by direct call"
expect "$(path_of $P version_proc_show)" direct "version_proc_show redirected by direct call"
echo "pause: $(cat $S/$P/last_pause_ns) ns"
rmmod $P 2>/dev/null && fail "rmmod of an enabled patch module succeeded"
loaded $P || fail "the enabled patch module is gone"
echo "ok: rmmod refused while enabled"
set_enabled $P 0
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after disable"
expect "$(cat /proc/version)" "$version" "/proc/version after disable"
expect "$(active_count $P)" 0 "no function active"
set_enabled $P 1
expect "$(cat /proc/cmdline)" "suture: patched cmdline" "/proc/cmdline after re-enable"
set_enabled $P 0
rmmod $P || fail "rmmod of the disabled patch module failed"
[ -e $S/$P ] && fail "$S/$P still exists after rmmod"
expect "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after rmmod"
