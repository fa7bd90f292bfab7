/* A notrace static that reads a runtime constant (6.12) changes: it is carried
 * with its caller, and the constant tables pointing into it are no use of its
 * address. */
extern unsigned long USER_PTR_MAX;
#define runtime_const_ptr(sym) ({					\
	unsigned long __ret;						\
	asm("mov %1,%0\n1:\n"						\
	    ".pushsection runtime_ptr_" #sym ",\"a\"\n\t"		\
	    ".long 1b - %c2 - .\n"					\
	    ".popsection"						\
	    : "=r"(__ret)						\
	    : "i"(0x0123456789abcdefull), "i"(sizeof(long)));		\
	__ret; })

static __attribute__((noinline, no_instrument_function)) int in_range(unsigned long p)
{
	return p < runtime_const_ptr(USER_PTR_MAX);
}

int check(unsigned long p)
{
	return in_range(p) ? 0 : -14;
}
