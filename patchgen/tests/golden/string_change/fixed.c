extern int puts(const char *);
void greet(void) { puts("hello, world"); }
void other(void) { puts("other"); }
