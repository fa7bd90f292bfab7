static __attribute__((noinline)) int c(int x) { static char buf[16]; buf[x & 3] += 5; return buf[2]; }
int a(int x) { static char buf[16]; buf[x & 15]++; return buf[0] + c(x); }
int b(int x) { static char buf[16]; buf[x & 7] += 2; return buf[1]; }
