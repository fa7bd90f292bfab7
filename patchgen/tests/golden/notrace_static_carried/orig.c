static __attribute__((no_instrument_function, noinline)) int helper(int x) { return x * 3; }
int use_helper(int x) { return helper(x) + 1; }
int other(int x) { return x - 1; }
