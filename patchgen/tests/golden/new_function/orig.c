int calc(int x) { return x + 1; }
