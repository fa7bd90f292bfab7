/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture_tramp.h - the direct-call trampolines (suture_tramp.S), shared by
 * the assembly and the C that drives them (suture_direct.c)
 */
#ifndef _SUTURE_TRAMP_H
#define _SUTURE_TRAMP_H

/*
 * How many functions can be redirected by direct calls at once; the ones
 * beyond take the ftrace handler path. Each trampoline is 32 bytes or
 * less of text (48 with 6.12's call padding).
 */
#define SUTURE_NR_TRAMPS 500

#ifndef __ASSEMBLY__
#include <linux/types.h>
#include <linux/percpu.h>

/* In suture_direct.c, read by every trampoline. */
extern unsigned long suture_tramp_slots[SUTURE_NR_TRAMPS];
extern unsigned long __percpu *suture_tramp_calls[SUTURE_NR_TRAMPS];
extern int suture_tramp_counting;

/* In suture_tramp.S: the address of each trampoline. */
extern const unsigned long suture_tramp_addrs[SUTURE_NR_TRAMPS];
#endif

#endif /* _SUTURE_TRAMP_H */
