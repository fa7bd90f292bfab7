// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_redirect.c - redirect calls to replaced functions with ftrace
 *
 * One ftrace_ops per replaced function, shared by every patch that
 * replaces it; a call goes to the newest active replacement, or to the
 * original when none is active. The ops is a direct call to a trampoline
 * of our own where ftrace allows it (suture_direct.c), else an IPMODIFY
 * handler (here) that sets the instruction pointer. Both run on every call
 * of a replaced function and must stay cheap.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ftrace.h>
#include <linux/jump_label.h>
#include <linux/list.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include "suture_internal.h"
#include "suture_tramp.h"

/* All suture_fops, protected by suture_mutex. */
static LIST_HEAD(suture_fops_list);

/*
 * Counting redirected calls (the calls column of a patch's functions file)
 * costs on every call of a replaced function, so it is off unless asked
 * for; the static key makes the off state a no-op in the handler.
 */
static DEFINE_STATIC_KEY_FALSE(suture_count_calls);

static int suture_update_all_direct(void *data)
{
	struct suture_fops *fops;

	list_for_each_entry(fops, &suture_fops_list, node)
		if (fops->tramp >= 0)
			suture_direct_update(fops);
	return 0;
}

/*
 * Points every active trampoline's first jump at its counting code, or
 * past it: one stop of every CPU, as a switch.
 */
static int suture_redirect_recount(bool on)
{
	struct suture_fops *fops;
	bool any = false;
	int ret = 0;

	mutex_lock(&suture_mutex);
	suture_direct_set_counting(on);
	list_for_each_entry(fops, &suture_fops_list, node)
		any |= fops->tramp >= 0;
	if (any) {
		ret = suture_direct_map();
		if (!ret) {
			suture_stop_all(suture_update_all_direct, NULL);
			suture_direct_unmap();
		}
	}
	mutex_unlock(&suture_mutex);
	return ret;
}

static int suture_count_calls_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int ret = kstrtobool(val, &on);

	if (ret)
		return ret;
	if (on)
		static_branch_enable(&suture_count_calls);
	else
		static_branch_disable(&suture_count_calls);
	return suture_redirect_recount(on);
}

static int suture_count_calls_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%c\n", static_key_enabled(&suture_count_calls) ? 'Y' : 'N');
}

static const struct kernel_param_ops suture_count_calls_ops = {
	.set = suture_count_calls_set,
	.get = suture_count_calls_get,
};
module_param_cb(count_calls, &suture_count_calls_ops, NULL, 0644);
MODULE_PARM_DESC(count_calls, "count the calls redirected to each replacement (the calls column of functions); off by default, it costs on every call");

/*
 * The setter of the instruction pointer in ftrace_regs was renamed between
 * the two kernel lines we build for (6.1: ftrace_instruction_pointer_set,
 * 6.12: ftrace_regs_set_instruction_pointer). Both are macros on x86, so
 * test for the new one rather than guess the release that renamed it.
 */
#ifndef ftrace_regs_set_instruction_pointer
#define ftrace_regs_set_instruction_pointer ftrace_instruction_pointer_set
#endif

static void notrace suture_ftrace_handler(unsigned long ip,
					  unsigned long parent_ip,
					  struct ftrace_ops *ops,
					  struct ftrace_regs *fregs)
{
	struct suture_fops *fops = container_of(ops, struct suture_fops, ops);
	struct suture_func *func;
	int bit;

	/*
	 * Disables preemption, which is what makes the RCU walk below safe:
	 * detach waits with synchronize_rcu() before a func leaves the stack
	 * for good.
	 */
	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0)
		return;

	list_for_each_entry_rcu(func, &fops->func_stack, stack_node) {
		/*
		 * Pairs with the WRITE_ONCE() in suture_switch_cb(), which
		 * runs while every other CPU spins in stop_machine(), so a
		 * caller sees either the old or the new set, never a mix.
		 */
		if (READ_ONCE(func->active)) {
			ftrace_regs_set_instruction_pointer(fregs,
							    (unsigned long)func->new_func);
			if (static_branch_unlikely(&suture_count_calls))
				this_cpu_inc(*fops->calls);
			break;
		}
	}

	ftrace_test_recursion_unlock(bit);
}

static struct suture_fops *suture_fops_find(unsigned long old_addr)
{
	struct suture_fops *fops;

	list_for_each_entry(fops, &suture_fops_list, node)
		if (fops->old_addr == old_addr)
			return fops;
	return NULL;
}

/**
 * suture_redirect_check_site() - check that an address is an ftrace site
 * @addr: the start of a function
 *
 * Sets a filter on a scratch ftrace_ops that is never registered, so nothing
 * is traced. The ops is freshly allocated each time: ftrace_free_filter()
 * frees the filter hashes without resetting them, so an ops may be filtered
 * and freed only once.
 *
 * Return: 0, or -EOPNOTSUPP when @addr has no ftrace site (a notrace or
 * non-instrumented function), or another negative errno.
 */
int suture_redirect_check_site(unsigned long addr)
{
	struct ftrace_ops *probe;
	int ret;

	probe = kzalloc(sizeof(*probe), GFP_KERNEL);
	if (!probe)
		return -ENOMEM;
	ret = ftrace_set_filter_ip(probe, addr, 0, 0);
	ftrace_free_filter(probe);
	kfree(probe);
	if (ret == -ENOENT || ret == -EINVAL)
		return -EOPNOTSUPP;
	return ret;
}

/*
 * Registers @fops as an IPMODIFY handler on its function.
 * Return: 0, -EEXIST when another ftrace user (such as the kernel's own
 * livepatch) already modifies the instruction pointer of this function,
 * or another negative errno; on error nothing is registered.
 */
static int suture_handler_register(struct suture_fops *fops, const char *name)
{
	int ret;

	fops->tramp = -1;
	fops->ops.func = suture_ftrace_handler;
	fops->ops.flags = FTRACE_OPS_FL_DYNAMIC | FTRACE_OPS_FL_IPMODIFY |
			  FTRACE_OPS_FL_PERMANENT;
#ifndef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
	fops->ops.flags |= FTRACE_OPS_FL_SAVE_REGS;
#endif

	ret = ftrace_set_filter_ip(&fops->ops, fops->old_addr, 0, 0);
	if (ret) {
		pr_err("%s: cannot set an ftrace filter on %pS: %d\n",
		       name, (void *)fops->old_addr, ret);
		return ret;
	}
	ret = register_ftrace_function(&fops->ops);
	if (ret) {
		pr_err("%s: cannot register an ftrace handler on %pS: %d%s\n",
		       name, (void *)fops->old_addr, ret,
		       ret == -EBUSY ? " (another ftrace user, e.g. livepatch, already redirects it)" : "");
		ftrace_free_filter(&fops->ops);
		return ret == -EBUSY ? -EEXIST : ret;
	}
	return 0;
}

/**
 * suture_redirect_attach() - put a func on top of the stack of its function
 * @func: inactive
 *
 * Registers the function's ftrace_ops if this is its first func (a direct
 * call where ftrace allows one, else the handler); moves @func
 * to the top if it is attached already (a patch enabled again becomes the
 * newest). The handler ignores inactive funcs, so nothing is redirected
 * until the switch.
 * Context: suture_mutex held; sleeps.
 * Return: 0, -EEXIST when another ftrace user (such as the kernel's own
 * livepatch) already modifies the instruction pointer of this function, or
 * another negative errno.
 */
int suture_redirect_attach(struct suture_func *func)
{
	struct suture_fops *fops;
	int ret;

	lockdep_assert_held(&suture_mutex);

	if (func->fops) {
		if (list_first_entry(&func->fops->func_stack, struct suture_func,
				     stack_node) == func)
			return 0;
		/* No reader may follow @func's old links into its new place. */
		list_del_rcu(&func->stack_node);
		synchronize_rcu();
		list_add_rcu(&func->stack_node, &func->fops->func_stack);
		return 0;
	}

	fops = suture_fops_find(func->old_addr);
	if (fops) {
		/* A new fops's trampoline was checked when it was registered. */
		if (fops->tramp >= 0 &&
		    !suture_direct_reaches(fops, (unsigned long)func->new_func)) {
			pr_err("%s: the replacement %px is out of a jump's reach of the trampoline\n",
			       func->old_name, func->new_func);
			return -ERANGE;
		}
		goto add;
	}

	fops = kzalloc(sizeof(*fops), GFP_KERNEL);
	if (!fops)
		return -ENOMEM;
	fops->calls = alloc_percpu(unsigned long);
	if (!fops->calls) {
		ret = -ENOMEM;
		goto err_free;
	}
	fops->old_addr = func->old_addr;
	INIT_LIST_HEAD(&fops->func_stack);

	ret = suture_direct_register(fops, (unsigned long)func->new_func);
	if (!ret)
		goto registered;
	if (ret != -ENOSPC)
		pr_info("%s: no direct call (%d%s): using the ftrace handler\n",
			func->old_name, ret,
			ret == -EBUSY ? ", another ftrace user holds the function" : "");
	ret = suture_handler_register(fops, func->old_name);
	if (ret)
		goto err_free;
registered:
	list_add(&fops->node, &suture_fops_list);
add:
	func->fops = fops;
	func->active = false;
	list_add_rcu(&func->stack_node, &fops->func_stack);
	return 0;

err_free:
	free_percpu(fops->calls);
	kfree(fops);
	return ret;
}

/**
 * suture_redirect_unlink() - take an inactive func off its stack
 * @func: attached and inactive
 *
 * No new call is sent to @func's replacement once this returns, but a
 * handler or a task preempted in the ftrace trampoline may still be about
 * to: call suture_redirect_sync() before the patch module's memory goes.
 * An ftrace_ops left with no func stays registered (its handler lets the
 * original run) until suture_redirect_reap() takes it out: one
 * unregistration costs an RCU-tasks grace period of its own, so doing it
 * here, per function, made a 20-function revert 20 times slower.
 * Context: suture_mutex held.
 */
void suture_redirect_unlink(struct suture_func *func)
{
	lockdep_assert_held(&suture_mutex);

	list_del_rcu(&func->stack_node);
	func->fops = NULL;
}

/**
 * suture_redirect_sync() - wait until no CPU or task can still enter a
 *			    replacement that suture_redirect_unlink() removed
 *
 * Handlers run with preemption disabled: synchronize_rcu() covers them. A
 * task preempted in the ftrace trampoline after the handler chose a
 * replacement has not entered it yet, so no stack check saw it; RCU-tasks
 * waits for it. One wait covers every func unlinked before it.
 * Context: sleeps.
 */
void suture_redirect_sync(void)
{
	synchronize_rcu();
	synchronize_rcu_tasks();
}

/**
 * suture_redirect_reap() - unregister every ftrace_ops left without a func
 *
 * Context: suture_mutex held; sleeps (each unregistration waits for the
 * ops' handlers and trampoline users before it returns, then it is freed).
 */
void suture_redirect_reap(void)
{
	static DECLARE_BITMAP(tramps, SUTURE_NR_TRAMPS);
	struct suture_fops *fops, *tmp;
	LIST_HEAD(gone);

	lockdep_assert_held(&suture_mutex);

	bitmap_zero(tramps, SUTURE_NR_TRAMPS);
	list_for_each_entry_safe(fops, tmp, &suture_fops_list, node) {
		if (!list_empty(&fops->func_stack))
			continue;
		if (fops->tramp >= 0) {
			suture_direct_unregister(fops);
			__set_bit(fops->tramp, tramps);
		} else {
			unregister_ftrace_function(&fops->ops);
			ftrace_free_filter(&fops->ops);
		}
		list_move(&fops->node, &gone);
	}
	/* A task preempted in a trampoline may still count into fops->calls. */
	suture_direct_release_quiet(tramps);
	list_for_each_entry_safe(fops, tmp, &gone, node) {
		list_del(&fops->node);
		free_percpu(fops->calls);
		kfree(fops);
	}
}

/**
 * suture_redirect_current_target() - what a call of the function runs now
 * @func: attached, not yet active
 * @size: set to the size of the code returned
 *
 * Return: the start of the newest active replacement below @func, or of the
 * original function when there is none.
 * Context: suture_mutex held.
 */
unsigned long suture_redirect_current_target(struct suture_func *func,
					     unsigned long *size)
{
	struct suture_func *cur;

	lockdep_assert_held(&suture_mutex);

	list_for_each_entry(cur, &func->fops->func_stack, stack_node) {
		if (cur != func && cur->active) {
			*size = cur->new_size;
			return (unsigned long)cur->new_func;
		}
	}
	*size = func->old_size;
	return func->old_addr;
}

/**
 * suture_redirect_calls() - calls sent to a replacement of a function
 * @func: a func, attached or not
 *
 * Return: the calls the function's handler redirected since it was first
 * attached (to any patch's replacement), or 0 when @func is not attached.
 * Context: suture_mutex held (the fops cannot go away).
 */
unsigned long suture_redirect_calls(const struct suture_func *func)
{
	unsigned long sum = 0;
	int cpu;

	lockdep_assert_held(&suture_mutex);

	if (!func->fops)
		return 0;
	for_each_possible_cpu(cpu)
		sum += *per_cpu_ptr(func->fops->calls, cpu);
	return sum;
}

/**
 * suture_redirect_update() - make the switch of @func take effect
 * @func: attached; its active flag just changed
 *
 * The handler reads the active flags itself; a trampoline's jumps are
 * rewritten to the new target.
 * Context: inside suture_stop_all(), with the trampolines mapped writable.
 */
void suture_redirect_update(struct suture_func *func)
{
	if (func->fops->tramp >= 0)
		suture_direct_update(func->fops);
}

/**
 * suture_redirect_tramp() - the trampoline a call of @func passes through
 * @func: attached
 * @start: set to its address
 * @size: set to its size
 *
 * A task preempted inside it has chosen where to go but is not there yet:
 * the stack check must see it.
 * Return: true when @func is redirected by direct call.
 */
bool suture_redirect_tramp(const struct suture_func *func, unsigned long *start,
			   unsigned long *size)
{
	if (!func->fops || func->fops->tramp < 0)
		return false;
	*start = suture_direct_tramp(func->fops, size);
	return true;
}

/**
 * suture_redirect_path() - how calls of @func are redirected
 * @func: any
 *
 * Return: "direct", "ftrace" (the IPMODIFY handler) or "-" (not attached).
 * Context: suture_mutex held.
 */
const char *suture_redirect_path(const struct suture_func *func)
{
	if (!func->fops)
		return "-";
	return func->fops->tramp >= 0 ? "direct" : "ftrace";
}

/**
 * suture_redirect_any_direct() - whether a switch of @patch writes trampolines
 * @patch: its funcs attached
 *
 * Context: suture_mutex held.
 */
bool suture_redirect_any_direct(const struct suture_patch *patch)
{
	const struct suture_func *func;

	for (func = patch->funcs; func->old_name; func++)
		if (func->fops && func->fops->tramp >= 0)
			return true;
	return false;
}
