int a(int x) { static char buf[16]; buf[x & 15]++; return buf[0]; }
int b(int x) { static char buf[16]; buf[x & 7] += 2; return buf[1]; }
