extern void report_failure(int) __attribute__((cold, noreturn));
extern int puts(const char *);
int check(int x) {
	if (__builtin_expect(x < 0, 0)) { puts("negative value"); report_failure(x); }
	return x * 2;
}
