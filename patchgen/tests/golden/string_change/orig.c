extern int puts(const char *);
void greet(void) { puts("hello"); }
void other(void) { puts("other"); }
