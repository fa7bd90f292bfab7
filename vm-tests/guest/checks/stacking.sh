# Two patches of one function: the newest enabled one wins; disabling it
# falls back to the one below.
cmdline=$(cat /proc/cmdline)
load test_patch_stack_a
load test_patch_stack_b
set_enabled test_patch_stack_a 1
expect "$(cat /proc/cmdline)" "suture: stacked patch A" "A alone"
set_enabled test_patch_stack_b 1
expect "$(cat /proc/cmdline)" "suture: stacked patch B" "B enabled over A"
set_enabled test_patch_stack_b 0
expect "$(cat /proc/cmdline)" "suture: stacked patch A" "B disabled: back to A"
set_enabled test_patch_stack_b 1
expect "$(cat /proc/cmdline)" "suture: stacked patch B" "B again over A"
set_enabled test_patch_stack_a 0
expect "$(cat /proc/cmdline)" "suture: stacked patch B" "A disabled below B: B stays"
set_enabled test_patch_stack_a 1
expect "$(cat /proc/cmdline)" "suture: stacked patch A" "A re-enabled: now the newest"
set_enabled test_patch_stack_a 0
expect "$(cat /proc/cmdline)" "suture: stacked patch B" "A disabled: back to B"
set_enabled test_patch_stack_b 0
expect "$(cat /proc/cmdline)" "$cmdline" "both disabled: original"
rmmod test_patch_stack_b test_patch_stack_a || fail "rmmod failed"
