/* static_branch_likely(): the key is only in __jump_table */
struct static_key { int enabled; };
struct static_key key_a, key_b;
static inline __attribute__((always_inline)) int branch(struct static_key *key)
{
	asm goto("1: .byte 0x0f,0x1f,0x44,0x00,0x00\n"
		 ".pushsection __jump_table, \"aw\"\n"
		 ".balign 8\n"
		 ".long 1b - ., %l[l_yes] - .\n"
		 ".quad %c0 - .\n"
		 ".popsection\n"
		 : : "i"(key) : : l_yes);
	return 0;
l_yes:
	return 1;
}
int f(int x) { return branch(&key_b) ? x + 1 : x; }
int g(int x) { return x * 2; }
