#define STR2(x) #x
#define STR(x) STR2(x)
extern void report(const char *);
int other(int x)
{
	return x + 1;
}
int checked(int x) { if (x > 100) report("case.c:" STR(__LINE__) " too big"); return x; }
