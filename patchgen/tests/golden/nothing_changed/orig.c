int a(int x) { return x * 5; }
/* a comment */
int b(int x) { return a(x) + 1; }
