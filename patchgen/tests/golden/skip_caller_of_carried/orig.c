static __attribute__((no_instrument_function, noinline)) int helper(int x) { return x * 3; }
int run(int x) { return helper(x) + 1; }
int rare(int x) { return helper(x) - 1; }
