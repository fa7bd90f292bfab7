int a(int x) { static int n; if (x) { static int n; n++; return n; } return n++; }
int b(int x) { static int n; return n += x; }
