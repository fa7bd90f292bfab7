/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture_tramp.h - the direct-call trampolines (suture_tramp.S), shared by
 * the assembly and the C that drives them (suture_direct.c)
 */
#ifndef _SUTURE_TRAMP_H
#define _SUTURE_TRAMP_H

/*
 * How many functions can be redirected by direct calls at once; the ones
 * beyond take the ftrace handler path. Each trampoline is 32 bytes of
 * text (48 on 6.12, with ENDBR and alignment).
 */
#define SUTURE_NR_TRAMPS 500

#ifndef __ASSEMBLY__
#include <linux/types.h>
#include <linux/percpu.h>

/* In suture_direct.c: the per-CPU call counter each trampoline increments. */
extern unsigned long __percpu *suture_tramp_calls[SUTURE_NR_TRAMPS];

/* In suture_tramp.S: where each trampoline's parts are. */
struct suture_tramp_insns {
	unsigned long start;	/* the trampoline, called by the call site */
	u32 jmp1;		/* offset of: jmp rel32 to the target, or to count */
	u32 count;		/* offset of: increment the counter, then jmp2 */
	u32 jmp2;		/* offset of: jmp rel32 to the target */
	u32 pad;
};
extern const struct suture_tramp_insns suture_tramp_insns[SUTURE_NR_TRAMPS];
#endif

#endif /* _SUTURE_TRAMP_H */
