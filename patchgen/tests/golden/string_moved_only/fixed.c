extern int puts(const char *);
void first(int x) { if (x) puts("first, fixed"); else puts("first: zero"); }
void second(void) { puts("second"); }
