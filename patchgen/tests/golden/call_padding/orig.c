/* 6.12 (CONFIG_CALL_PADDING, CONFIG_X86_KERNEL_IBT): 16 bytes of padding
 * before every function entry, then ENDBR, then the ftrace call. */
static int helper(int x) { return x + 1; }
int __attribute__((noinline)) compute(int x) { return helper(x) * 3; }
int other(int x) { return x - 7; }
