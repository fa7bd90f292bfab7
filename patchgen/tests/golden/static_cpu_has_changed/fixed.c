/* static_cpu_has(): the test is in .altinstr_aux, shared by all functions */
extern char caps[32];
static inline __attribute__((always_inline)) int has(int bit)
{
	asm goto("jmp 6f\n"
		 ".pushsection .altinstr_aux,\"ax\"\n"
		 "6:\n testb %[bitnum], %P[cap](%%rip)\n jnz %l[yes]\n jmp %l[no]\n .popsection\n"
		 : : [bitnum] "i"(1 << (bit & 7)), [cap] "i"(&caps[bit >> 3]) : : yes, no);
	return 0;
yes:
	return 1;
no:
	return 0;
}
int third(int x) { return x * 3; }
int first(int x) { return has(1) ? x + 1 : x; }
int second(int x) { return has(10) ? x + 2 : x; }
