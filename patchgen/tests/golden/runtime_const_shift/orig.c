/* 6.12's runtime_const_shift_right_32 (arch/x86/include/asm/runtime-const.h),
 * as d_hash() shifts by d_hash_shift: a shift count that boot code writes
 * into vmlinux through runtime_shift_d_hash_shift. */
#define runtime_const_shift_right_32(val, sym) ({			\
	unsigned int __ret = (val);					\
	asm("shrl $12,%k0\n1:\n"					\
	    ".pushsection runtime_shift_" #sym ",\"a\"\n\t"		\
	    ".long 1b - 1 - .\n"					\
	    ".popsection"						\
	    : "+r"(__ret));						\
	__ret; })

unsigned int bucket(unsigned int hash)
{
	return runtime_const_shift_right_32(hash, d_hash_shift);
}
