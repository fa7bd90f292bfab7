/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture_tramp.S - direct-call trampolines
 *
 * With ftrace direct calls, the call instruction at a replaced function's
 * entry calls trampoline i instead of ftrace's: the stack then holds the
 * return address into the old function (just past the call site) and,
 * above it, the caller's. Trampoline i reads suture_tramp_slots[i]:
 *   - 0 (no active replacement): it returns, and the old function runs;
 *   - otherwise it overwrites the return address with the replacement's
 *     address and returns into it, so the replacement runs as if the
 *     caller had called it, with the arguments untouched.
 * No register is saved, no handler is called. The slots are written only
 * inside stop_machine() (suture_direct_update()), so a switch stays one
 * atomic flip. r10 and r11 are free at a function's entry: neither carries
 * an argument in the kernel's calling convention (rax does, for variadic
 * functions, so it is left alone).
 *
 * Entering the replacement with a return rather than an indirect jump
 * needs no ENDBR at its start (IBT kernels), no retpoline and no RSB
 * bookkeeping beyond ftrace's own return-based path; the trampolines are
 * ordinary functions to objtool, which gives them ORC entries, so stacks
 * of tasks preempted inside one unwind through it.
 *
 * When suture_tramp_counting is set (module parameter count_calls), a
 * redirected call also increments this CPU's counter of the function.
 */
#include <linux/linkage.h>
#include "suture_tramp.h"

#define SUTURE_TRAMP(name)						\
	SYM_FUNC_START(name);						\
	movq	suture_tramp_slots + 8 * suture_tramp_i(%rip), %r11;	\
	testq	%r11, %r11;						\
	jz	2f;							\
	cmpl	$0, suture_tramp_counting(%rip);			\
	jne	3f;							\
1:	movq	%r11, (%rsp);						\
2:	RET;								\
3:	movq	suture_tramp_calls + 8 * suture_tramp_i(%rip), %r10;	\
	incq	%gs:(%r10);						\
	jmp	1b;							\
	SYM_FUNC_END(name);						\
	.pushsection .rodata;						\
	.quad	name;							\
	.popsection;							\
	.set	suture_tramp_i, suture_tramp_i + 1

#define SUTURE_TRAMP10(p)						\
	SUTURE_TRAMP(suture_tramp##p##0); SUTURE_TRAMP(suture_tramp##p##1); \
	SUTURE_TRAMP(suture_tramp##p##2); SUTURE_TRAMP(suture_tramp##p##3); \
	SUTURE_TRAMP(suture_tramp##p##4); SUTURE_TRAMP(suture_tramp##p##5); \
	SUTURE_TRAMP(suture_tramp##p##6); SUTURE_TRAMP(suture_tramp##p##7); \
	SUTURE_TRAMP(suture_tramp##p##8); SUTURE_TRAMP(suture_tramp##p##9)

#define SUTURE_TRAMP100(p)						\
	SUTURE_TRAMP10(p##0); SUTURE_TRAMP10(p##1); SUTURE_TRAMP10(p##2); \
	SUTURE_TRAMP10(p##3); SUTURE_TRAMP10(p##4); SUTURE_TRAMP10(p##5); \
	SUTURE_TRAMP10(p##6); SUTURE_TRAMP10(p##7); SUTURE_TRAMP10(p##8); \
	SUTURE_TRAMP10(p##9)

	.set	suture_tramp_i, 0

	.pushsection .rodata
	.balign	8
SYM_DATA_START(suture_tramp_addrs)
	.popsection

	.text
	SUTURE_TRAMP100(_0)
	SUTURE_TRAMP100(_1)
	SUTURE_TRAMP100(_2)
	SUTURE_TRAMP100(_3)
	SUTURE_TRAMP100(_4)

	.pushsection .rodata
SYM_DATA_END(suture_tramp_addrs)
	.popsection

	.if suture_tramp_i - SUTURE_NR_TRAMPS
	.error "SUTURE_NR_TRAMPS does not match the trampolines built"
	.endif
