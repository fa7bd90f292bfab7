static int helper(int x) { return x + 1; }
int __attribute__((noinline)) compute(int x) { return helper(x) * 2; }
int other(int x) { return x - 7; }
