struct ops { int (*run)(int); };
static __attribute__((no_instrument_function, noinline)) int helper(int x) { return x * 5; }
const struct ops my_ops = { .run = helper };
int use_helper(int x) { return helper(x) + 1; }
