int f(int x) { return x + 2; }
int g(int x) { return x - 1; }
