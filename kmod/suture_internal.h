/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture_internal.h - shared between the companion module's files
 */
#ifndef _SUTURE_INTERNAL_H
#define _SUTURE_INTERNAL_H

#include <linux/ftrace.h>
#include <linux/mutex.h>
#include "include/suture.h"

/*
 * suture_mutex serialises registration, enable, disable and unregistration,
 * and protects suture_patches and the fops list. The ftrace handler never
 * takes it: it walks fops->func_stack under RCU (preemption is disabled by
 * ftrace_test_recursion_trylock()) and reads func->active with READ_ONCE().
 */
extern struct mutex suture_mutex;

/**
 * struct suture_fops - the ftrace_ops of one replaced function
 * @ops:	registered with IPMODIFY on exactly one address
 * @old_addr:	that address
 * @func_stack:	every suture_func replacing old_addr, newest first; the
 *		first active one wins
 * @node:	on the list of all fops
 * @calls:	calls sent to a replacement, per CPU (lossless and cheap on
 *		the hot path; summed when read)
 * @tramp:	the direct-call trampoline it owns (suture_direct.c), or -1
 *		when @ops is the IPMODIFY handler's (suture_redirect.c)
 * @resume:	with a trampoline: where the original continues after its
 *		ftrace call site
 */
struct suture_fops {
	struct ftrace_ops ops;
	unsigned long old_addr;
	struct list_head func_stack;
	struct list_head node;
	unsigned long __percpu *calls;
	int tramp;
	unsigned long resume;
};

/* suture_core.c: the work behind the exports of suture_abi.c */
int suture_do_register_patch(struct suture_patch *patch);
int suture_do_unregister_patch(struct suture_patch *patch);

/* suture_redirect.c */
int suture_redirect_attach(struct suture_func *func);
void suture_redirect_unlink(struct suture_func *func);
void suture_redirect_sync(void);
void suture_redirect_reap(void);
int suture_redirect_check_site(unsigned long addr);
unsigned long suture_redirect_current_target(struct suture_func *func,
					     unsigned long *size);
unsigned long suture_redirect_calls(const struct suture_func *func);
void suture_redirect_update(struct suture_func *func);
bool suture_redirect_tramp(const struct suture_func *func, unsigned long *start,
			   unsigned long *size);
const char *suture_redirect_path(const struct suture_func *func);

bool suture_redirect_any_direct(const struct suture_patch *patch);

/* suture_direct.c */
int suture_direct_register(struct suture_fops *fops, unsigned long new_func);
void suture_direct_unregister(struct suture_fops *fops);
void suture_direct_release_quiet(const unsigned long *tramps);
int suture_direct_map(void);
void suture_direct_unmap(void);
bool suture_direct_reaches(const struct suture_fops *fops, unsigned long target);
void suture_direct_update(struct suture_fops *fops);
unsigned long suture_direct_tramp(const struct suture_fops *fops, unsigned long *size);
void suture_direct_set_counting(bool on);

/* suture_consistency.c */

/* An address range that no task may be inside while a switch happens. */
struct suture_range {
	unsigned long start;
	unsigned long size;
};

int suture_switch(struct suture_patch *patch, const struct suture_range *ranges,
		  unsigned int nr_ranges, bool enable);
int suture_stop_all(int (*fn)(void *data), void *data);

/* suture_park.c: sleeping user tasks held at the user-mode boundary */
struct suture_parking {
	struct task_struct **tasks;	/* referenced */
	struct suture_park **parks;	/* queued task_works, NULL where none */
	unsigned int nr;
};

bool suture_parkable(struct task_struct *t);
unsigned int suture_park_tasks(struct suture_parking *parking,
			       struct task_struct **tasks, unsigned int nr);
void suture_park_release(struct suture_parking *parking);
void suture_park_exit(void);

/* suture_core.c */
int suture_symbol_extent(unsigned long addr, char *name, size_t name_len,
			 unsigned long *offset, unsigned long *size);

/* suture_sysfs.c */
int suture_sysfs_init(void);
void suture_sysfs_exit(void);
int suture_sysfs_add_patch(struct suture_patch *patch);
void suture_sysfs_del_patch(struct suture_patch *patch);
int suture_enable_patch(struct suture_patch *patch);
int suture_disable_patch(struct suture_patch *patch);

#endif /* _SUTURE_INTERNAL_H */
