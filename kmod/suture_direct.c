// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_direct.c - redirect replaced functions with ftrace direct calls
 *
 * The call site at a replaced function's entry calls one of the
 * trampolines of suture_tramp.S, which returns straight into the newest
 * active replacement (or back into the original when none is active):
 * no register save, no handler. Each function redirected this way owns one
 * trampoline and its slot while its ftrace_ops is registered.
 *
 * This is the default path. The ftrace handler path of suture_redirect.c
 * is the fallback: with the module parameter direct=0, when the kernel
 * lacks direct calls, when every trampoline is taken, and for a function
 * another direct-call user (a BPF trampoline) or an IPMODIFY user (the
 * kernel's livepatch) already holds; ftrace lets neither share a function
 * with a direct call that has no ops_func.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/ftrace.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/version.h>
#include "suture_internal.h"
#include "suture_tramp.h"

unsigned long suture_tramp_slots[SUTURE_NR_TRAMPS];
unsigned long __percpu *suture_tramp_calls[SUTURE_NR_TRAMPS];
int suture_tramp_counting;

/* Trampolines owned by a registered fops, or unregistered and not yet
 * quiet (a task preempted inside may still read the slot): suture_mutex. */
static DECLARE_BITMAP(suture_tramps_used, SUTURE_NR_TRAMPS);

#ifdef CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS
static bool suture_direct_wanted = true;
#else
static bool suture_direct_wanted;
#endif
module_param_named(direct, suture_direct_wanted, bool, 0644);
MODULE_PARM_DESC(direct, "redirect with ftrace direct calls (default: on where the kernel has them); 0: the ftrace handler path, for functions attached from then on");

#ifdef CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS
/*
 * 6.5 renamed the ops-based direct-call functions (register_ftrace_direct_multi
 * became register_ftrace_direct, the per-address API went) and gave the
 * unregistration a free_filters argument. They are functions, so only the
 * version tells which set the headers declare.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
#define suture_ftrace_direct_register register_ftrace_direct_multi
#define suture_ftrace_direct_unregister(ops, addr) \
	unregister_ftrace_direct_multi(ops, addr)
#else
#define suture_ftrace_direct_register register_ftrace_direct
#define suture_ftrace_direct_unregister(ops, addr) \
	unregister_ftrace_direct(ops, addr, false)
#endif

/**
 * suture_direct_register() - redirect a function through a trampoline
 * @fops: new, with old_addr, func_stack and calls set; ops zeroed
 *
 * Context: suture_mutex held; sleeps.
 * Return: 0 (fops->tramp set); -ENOSPC when direct calls are off or every
 * trampoline is taken; -EBUSY when another ftrace user holds the function
 * in a way a direct call cannot share; another negative errno. On error
 * fops->ops is zeroed again and fops->tramp is -1.
 */
int suture_direct_register(struct suture_fops *fops)
{
	unsigned int i;
	int ret;

	lockdep_assert_held(&suture_mutex);
	fops->tramp = -1;
	if (!READ_ONCE(suture_direct_wanted))
		return -ENOSPC;
	i = find_first_zero_bit(suture_tramps_used, SUTURE_NR_TRAMPS);
	if (i >= SUTURE_NR_TRAMPS)
		return -ENOSPC;

	WRITE_ONCE(suture_tramp_slots[i], 0);
	suture_tramp_calls[i] = fops->calls;
	ret = ftrace_set_filter_ip(&fops->ops, fops->old_addr, 0, 0);
	if (ret)
		goto err;
	ret = suture_ftrace_direct_register(&fops->ops, suture_tramp_addrs[i]);
	if (ret) {
		ftrace_free_filter(&fops->ops);
		goto err;
	}
	__set_bit(i, suture_tramps_used);
	fops->tramp = i;
	return 0;
err:
	/* ftrace_free_filter() leaves the ops unusable for a second filter. */
	memset(&fops->ops, 0, sizeof(fops->ops));
	return ret;
}

/**
 * suture_direct_unregister() - stop calling a function's trampoline
 * @fops: registered by suture_direct_register()
 *
 * The trampoline stays taken until suture_direct_release_quiet(): a task
 * preempted inside it may still read its slot.
 * Context: suture_mutex held; sleeps.
 */
void suture_direct_unregister(struct suture_fops *fops)
{
	int ret;

	lockdep_assert_held(&suture_mutex);
	ret = suture_ftrace_direct_unregister(&fops->ops, suture_tramp_addrs[fops->tramp]);
	if (ret)
		pr_warn("%pS: cannot unregister the direct call: %d\n",
			(void *)fops->old_addr, ret);
	ftrace_free_filter(&fops->ops);
	WRITE_ONCE(suture_tramp_slots[fops->tramp], 0);
}

/**
 * suture_direct_release_quiet() - free trampolines no task can be inside
 * @tramps: trampolines unregistered by suture_direct_unregister()
 *
 * Waits for RCU-tasks: a task preempted inside a trampoline is not in a
 * quiescent state until it has left it (it then ran only the return).
 * Context: suture_mutex held; sleeps.
 */
void suture_direct_release_quiet(const unsigned long *tramps)
{
	lockdep_assert_held(&suture_mutex);
	if (bitmap_empty(tramps, SUTURE_NR_TRAMPS))
		return;
	synchronize_rcu_tasks();
	bitmap_andnot(suture_tramps_used, suture_tramps_used, tramps, SUTURE_NR_TRAMPS);
}
#else /* !CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS */
int suture_direct_register(struct suture_fops *fops)
{
	fops->tramp = -1;
	return -ENOSPC;
}

void suture_direct_unregister(struct suture_fops *fops)
{
}

void suture_direct_release_quiet(const unsigned long *tramps)
{
}
#endif

/**
 * suture_direct_update() - point a trampoline at the newest active replacement
 * @fops: redirected by direct call
 *
 * Context: inside stop_machine(), after the active flags changed: no task
 * runs, so the new slot takes effect at once for every caller.
 */
void suture_direct_update(struct suture_fops *fops)
{
	struct suture_func *func;
	unsigned long target = 0;

	list_for_each_entry(func, &fops->func_stack, stack_node) {
		if (func->active) {
			target = (unsigned long)func->new_func;
			break;
		}
	}
	WRITE_ONCE(suture_tramp_slots[fops->tramp], target);
}

/**
 * suture_direct_tramp() - the code of a function's trampoline
 * @fops: redirected by direct call
 * @size: set to the trampoline's size (an upper bound)
 *
 * Return: the trampoline's address.
 */
unsigned long suture_direct_tramp(const struct suture_fops *fops, unsigned long *size)
{
	unsigned long addr = suture_tramp_addrs[fops->tramp];

	/* The next trampoline starts after this one's end and its alignment. */
	if (fops->tramp + 1 < SUTURE_NR_TRAMPS)
		*size = suture_tramp_addrs[fops->tramp + 1] - addr;
	else
		*size = 64;
	return addr;
}

/* The count_calls parameter's setter mirrors it here for the trampolines. */
void suture_direct_set_counting(bool on)
{
	WRITE_ONCE(suture_tramp_counting, on);
}
