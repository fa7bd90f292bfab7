static __attribute__((noinline)) int clamp(int x) { return x > 100 ? 100 : x; }
int calc(int x) { return clamp(x) + 1; }
