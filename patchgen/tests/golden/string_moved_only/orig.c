extern int puts(const char *);
void first(int x) { if (x) puts("first"); }
void second(void) { puts("second"); }
