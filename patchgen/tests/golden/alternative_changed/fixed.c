/* alternative(): the replacement is only in .altinstructions/.altinstr_replacement */
#define ALT(repl) asm volatile("661: nop; nop; nop\n662:\n"				\
	".pushsection .altinstructions,\"a\"\n"						\
	" .long 661b - .\n .long 6641f - .\n .word 3\n .byte 662b-661b\n .byte 6651f-6641f\n"	\
	".popsection\n.pushsection .altinstr_replacement, \"ax\"\n6641: " repl "\n6651:\n.popsection")
int f(int x) { ALT("mfence"); return x + 1; }
int g(int x) { ALT("lfence"); return x * 2; }
