static __attribute__((no_instrument_function, noinline)) int helper(int x) { return x * 3; }
__attribute__((section(".init.text"), cold)) int boot_setup(int x) { return helper(x) + 2; }
int run(int x) { return x + 1; }
