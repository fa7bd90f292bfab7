static __attribute__((noinline)) int scale(int v, int f) { return v * f + (v >> 3); }
int use_scale(int v) { return scale(v, 7) + scale(v + 1, 7); }
