/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture_tramp.S - direct-call trampolines
 *
 * With ftrace direct calls, the call instruction at a replaced function's
 * entry calls trampoline i instead of ftrace's: the stack then holds the
 * return address into the old function (just past the call site) and,
 * above it, the caller's. Trampoline i drops the first and jumps on:
 *
 *	lea	8(%rsp), %rsp
 *	jmp	T		(jmp1)
 *   count:
 *	incq	%gs:(this function's per-CPU call counter)
 *	jmp	T		(jmp2)
 *
 * so T runs as if the caller had called it, with every register as the
 * caller left it. T is the newest active replacement, or the old
 * function's code after its call site when none is active; jmp1 goes to
 * count instead while calls are counted (module parameter count_calls).
 * suture_direct.c writes the two rel32 displacements, inside
 * stop_machine() with every CPU stopped (suture_stop_all()), so a switch
 * stays one atomic flip and the hot path is two instructions with no
 * memory load, no register save, no indirect branch (so no retpoline and
 * no ENDBR needed at T on IBT kernels) and no return.
 *
 * To objtool each trampoline is code whose entry is a function's entry
 * and which, after the lea, is at a function's entry again: the hints give
 * it ORC entries, so the stack of a task preempted inside one unwinds
 * through it (the stack check relies on that). The displacements
 * assembled here point at the next instruction and at the RET: objtool
 * follows them; they are rewritten before a trampoline is first called.
 *
 * suture_tramp_insns has, per trampoline: its start, and the offsets of
 * jmp1, count and jmp2 in it (offsets, not addresses: objtool on IBT
 * kernels wants every code address in data to be an ENDBR).
 */
#include <linux/linkage.h>
#include <asm/unwind_hints.h>
#include "suture_tramp.h"

#define SUTURE_TRAMP(name)						\
	SYM_CODE_START(name);						\
	UNWIND_HINT_FUNC;						\
	ENDBR;								\
	leaq	8(%rsp), %rsp;						\
	UNWIND_HINT_FUNC;						\
1:	.byte	0xe9;							\
	.long	2f - 1b - 5;						\
2:	movq	suture_tramp_calls + 8 * suture_tramp_i(%rip), %r10;	\
	incq	%gs:(%r10);						\
3:	.byte	0xe9;							\
	.long	4f - 3b - 5;						\
4:	RET;								\
	SYM_CODE_END(name);						\
	.pushsection .rodata;						\
	.quad	name;						\
	.long	1b - name, 2b - name, 3b - name, 0;			\
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
SYM_DATA_START(suture_tramp_insns)
	.popsection

	.text
	SUTURE_TRAMP100(_0)
	SUTURE_TRAMP100(_1)
	SUTURE_TRAMP100(_2)
	SUTURE_TRAMP100(_3)
	SUTURE_TRAMP100(_4)

	.pushsection .rodata
SYM_DATA_END(suture_tramp_insns)
	.popsection

	.if suture_tramp_i - SUTURE_NR_TRAMPS
	.error "SUTURE_NR_TRAMPS does not match the trampolines built"
	.endif
