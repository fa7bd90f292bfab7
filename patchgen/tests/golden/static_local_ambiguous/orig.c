int a(int x) { static int n; if (x) { n++; } return n; }
int b(int x) { static int n; return n += x; }
