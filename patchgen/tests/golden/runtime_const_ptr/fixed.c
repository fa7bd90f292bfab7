/* 6.12's runtime_const_ptr (arch/x86/include/asm/runtime-const.h), as every
 * access_ok reads USER_PTR_MAX: an immediate that boot code writes into
 * vmlinux through the runtime_ptr_USER_PTR_MAX table. */
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

int range_ok(unsigned long p, unsigned long n)
{
	return p + n >= p && p + n <= runtime_const_ptr(USER_PTR_MAX);
}

int user_ok(unsigned long p)
{
	return p <= runtime_const_ptr(USER_PTR_MAX);
}
