// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_direct.c - redirect replaced functions with ftrace direct calls
 *
 * The call site at a replaced function's entry calls one of the
 * trampolines of suture_tramp.S, which jumps straight to the newest active
 * replacement (or back into the original when none is active): no
 * register save, no handler. Each function redirected this way owns one
 * trampoline while its ftrace_ops is registered; the trampoline's jumps
 * are rewritten inside stop_machine() at every switch.
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
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/ftrace.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/version.h>
#include "suture_internal.h"
#include "suture_tramp.h"

unsigned long __percpu *suture_tramp_calls[SUTURE_NR_TRAMPS];

/* Whether the active trampolines' jmp1 goes to count: suture_mutex. */
static bool suture_tramp_counting;

/*
 * Trampolines owned by a registered fops, or unregistered and not yet
 * quiet (a task preempted inside may still be about to jump): suture_mutex.
 */
static DECLARE_BITMAP(suture_tramps_used, SUTURE_NR_TRAMPS);

/*
 * A writable alias of the trampolines' text (suture_direct_map()), while a
 * writer holds suture_mutex; NULL otherwise. Module text is read-only and
 * text_poke() is not exported, so the alias is made with vmap() of the
 * same pages, as text_poke() itself does, and removed after each write.
 */
static void *suture_tramp_alias;
static unsigned long suture_tramp_base;

#ifdef CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS
static bool suture_direct_wanted = true;
#else
static bool suture_direct_wanted;
#endif
module_param_named(direct, suture_direct_wanted, bool, 0644);
MODULE_PARM_DESC(direct, "redirect with ftrace direct calls (default: on where the kernel has them); 0: the ftrace handler path, for functions attached from then on");

#define SUTURE_JMP_SIZE 5

/* The end of a trampoline's code that runs (the RET after jmp2 never does). */
static unsigned long suture_tramp_end(unsigned int i)
{
	return suture_tramp_insns[i].start + suture_tramp_insns[i].jmp2 + SUTURE_JMP_SIZE;
}

/**
 * suture_direct_map() - make the trampolines' text writable through an alias
 *
 * Context: suture_mutex held; sleeps. Undo with suture_direct_unmap().
 * Return: 0, -ENOMEM, or -EFAULT when the text is not in vmalloc space.
 */
int suture_direct_map(void)
{
	unsigned long start = suture_tramp_insns[0].start & PAGE_MASK;
	unsigned long end = PAGE_ALIGN(suture_tramp_end(SUTURE_NR_TRAMPS - 1));
	unsigned int i, n = (end - start) >> PAGE_SHIFT;
	struct page **pages;

	lockdep_assert_held(&suture_mutex);
	if (WARN_ON_ONCE(suture_tramp_alias))
		return -EBUSY;
	pages = kmalloc_array(n, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		pages[i] = vmalloc_to_page((void *)(start + i * PAGE_SIZE));
		if (!pages[i]) {
			kfree(pages);
			return -EFAULT;
		}
	}
	suture_tramp_alias = vmap(pages, n, VM_MAP, PAGE_KERNEL);
	kfree(pages);
	if (!suture_tramp_alias)
		return -ENOMEM;
	suture_tramp_base = start;
	return 0;
}

/**
 * suture_direct_unmap() - remove the alias of suture_direct_map()
 *
 * Flushes the lazily unmapped alias at once: no writable mapping of code
 * outlives the write.
 * Context: suture_mutex held; sleeps.
 */
void suture_direct_unmap(void)
{
	lockdep_assert_held(&suture_mutex);
	if (!suture_tramp_alias)
		return;
	vunmap(suture_tramp_alias);
	vm_unmap_aliases();
	suture_tramp_alias = NULL;
}

static bool suture_jmp_reaches(unsigned long insn, unsigned long target)
{
	long rel = (long)(target - (insn + SUTURE_JMP_SIZE));

	return rel == (s32)rel;
}

/* Points the jmp rel32 at @insn to @target, through the alias. */
static void suture_jmp_set(unsigned long insn, unsigned long target)
{
	s32 rel = (s32)(target - (insn + SUTURE_JMP_SIZE));

	memcpy(suture_tramp_alias + (insn + 1 - suture_tramp_base), &rel, sizeof(rel));
}

/**
 * suture_direct_reaches() - whether a trampoline can jump to @target
 * @fops: redirected by direct call
 * @target: a replacement
 *
 * Always true for kernel and module text, which x86-64 keeps within 2 GiB
 * of each other; checked all the same.
 */
bool suture_direct_reaches(const struct suture_fops *fops, unsigned long target)
{
	const struct suture_tramp_insns *t = &suture_tramp_insns[fops->tramp];

	return suture_jmp_reaches(t->start + t->jmp1, target) &&
	       suture_jmp_reaches(t->start + t->jmp2, target);
}

/**
 * suture_direct_update() - point a trampoline at the newest active
 *			    replacement, or back into the original
 * @fops: redirected by direct call
 *
 * Context: suture_direct_map() done; inside suture_stop_all() after the
 * active flags changed (no CPU runs the trampoline while it is written),
 * or before the trampoline is first called.
 */
void suture_direct_update(struct suture_fops *fops)
{
	const struct suture_tramp_insns *t = &suture_tramp_insns[fops->tramp];
	unsigned long target = fops->resume;
	struct suture_func *func;
	bool active = false;

	if (WARN_ON_ONCE(!suture_tramp_alias))
		return;
	list_for_each_entry(func, &fops->func_stack, stack_node) {
		if (func->active) {
			target = (unsigned long)func->new_func;
			active = true;
			break;
		}
	}
	suture_jmp_set(t->start + t->jmp2, target);
	suture_jmp_set(t->start + t->jmp1,
		       active && suture_tramp_counting ? t->start + t->count : target);
}

/**
 * suture_direct_set_counting() - whether active trampolines count calls
 * @on: from now on
 *
 * Takes effect for each trampoline at its next suture_direct_update().
 * Context: suture_mutex held.
 */
void suture_direct_set_counting(bool on)
{
	lockdep_assert_held(&suture_mutex);
	suture_tramp_counting = on;
}

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

#define SUTURE_ENDBR64 0xfa1e0ff3	/* f3 0f 1e fa, read as a u32 */
#define SUTURE_ENDBR_POISON 0x001f0f66	/* osp nopl (%rax): a sealed ENDBR */
#define SUTURE_CALL_OPCODE 0xe8

/*
 * The ftrace call site of the function at @addr: after its ENDBR if it has
 * one, or after the 4-byte nop that IBT kernels put in place of an ENDBR
 * nothing calls indirectly (ftrace_location() knows, but is not exported).
 */
static unsigned long suture_ftrace_site(unsigned long addr)
{
	u32 insn;

	if (!copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)) &&
	    (insn == SUTURE_ENDBR64 || insn == SUTURE_ENDBR_POISON))
		return addr + sizeof(insn);
	return addr;
}

/* Writes a new trampoline's jumps: back into the original. */
static int suture_direct_prepare(struct suture_fops *fops)
{
	int ret;

	ret = suture_direct_map();
	if (ret)
		return ret;
	suture_direct_update(fops);
	suture_direct_unmap();
	return 0;
}

/**
 * suture_direct_register() - redirect a function through a trampoline
 * @fops: new, with old_addr, func_stack and calls set; ops zeroed
 * @new_func: the replacement about to be attached
 *
 * The trampoline sends every call back into the original until a switch
 * activates a replacement.
 * Context: suture_mutex held; sleeps.
 * Return: 0 (fops->tramp set); -ENOSPC when direct calls are off or every
 * trampoline is taken; -EBUSY when another ftrace user holds the function
 * in a way a direct call cannot share; another negative errno. On error
 * fops->ops is zeroed again and fops->tramp is -1.
 */
int suture_direct_register(struct suture_fops *fops, unsigned long new_func)
{
	unsigned long site;
	unsigned int i;
	u8 opcode;
	int ret;

	lockdep_assert_held(&suture_mutex);
	fops->tramp = -1;
	if (!READ_ONCE(suture_direct_wanted))
		return -ENOSPC;
	i = find_first_zero_bit(suture_tramps_used, SUTURE_NR_TRAMPS);
	if (i >= SUTURE_NR_TRAMPS)
		return -ENOSPC;

	site = suture_ftrace_site(fops->old_addr);
	fops->resume = site + MCOUNT_INSN_SIZE;
	fops->tramp = i;
	if (!suture_direct_reaches(fops, fops->resume) ||
	    !suture_direct_reaches(fops, new_func) ||
	    !suture_direct_reaches(fops, suture_tramp_insns[i].start + suture_tramp_insns[i].count)) {
		ret = -ERANGE;
		goto err;
	}
	ret = suture_direct_prepare(fops);
	if (ret)
		goto err;
	suture_tramp_calls[i] = fops->calls;

	ret = ftrace_set_filter_ip(&fops->ops, fops->old_addr, 0, 0);
	if (ret)
		goto err_ops;
	ret = suture_ftrace_direct_register(&fops->ops, suture_tramp_insns[i].start);
	if (ret) {
		ftrace_free_filter(&fops->ops);
		goto err_ops;
	}
	/*
	 * The site is a call now (to the trampoline, or to ftrace's when
	 * another ftrace user shares the function): if it is not, resume
	 * would be wrong.
	 */
	if (copy_from_kernel_nofault(&opcode, (void *)site, 1) ||
	    opcode != SUTURE_CALL_OPCODE) {
		pr_err("%pS: the ftrace call site is not at %px: no direct call\n",
		       (void *)fops->old_addr, (void *)site);
		suture_ftrace_direct_unregister(&fops->ops, suture_tramp_insns[i].start);
		ftrace_free_filter(&fops->ops);
		synchronize_rcu_tasks();
		ret = -EOPNOTSUPP;
		goto err_ops;
	}
	__set_bit(i, suture_tramps_used);
	return 0;
err_ops:
	/* ftrace_free_filter() leaves the ops unusable for a second filter. */
	memset(&fops->ops, 0, sizeof(fops->ops));
err:
	fops->tramp = -1;
	return ret;
}

/**
 * suture_direct_unregister() - stop calling a function's trampoline
 * @fops: registered by suture_direct_register()
 *
 * The trampoline stays taken until suture_direct_release_quiet(): a task
 * preempted inside it may still be about to jump.
 * Context: suture_mutex held; sleeps.
 */
void suture_direct_unregister(struct suture_fops *fops)
{
	int ret;

	lockdep_assert_held(&suture_mutex);
	ret = suture_ftrace_direct_unregister(&fops->ops,
					      suture_tramp_insns[fops->tramp].start);
	if (ret)
		pr_warn("%pS: cannot unregister the direct call: %d\n",
			(void *)fops->old_addr, ret);
	ftrace_free_filter(&fops->ops);
}

/**
 * suture_direct_release_quiet() - free trampolines no task can be inside
 * @tramps: trampolines unregistered by suture_direct_unregister()
 *
 * Waits for RCU-tasks: a task preempted inside a trampoline is not in a
 * quiescent state until it has left it.
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
int suture_direct_register(struct suture_fops *fops, unsigned long new_func)
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
 * suture_direct_tramp() - the code of a function's trampoline
 * @fops: redirected by direct call
 * @size: set to the size of the part that runs
 *
 * Return: the trampoline's address.
 */
unsigned long suture_direct_tramp(const struct suture_fops *fops, unsigned long *size)
{
	unsigned long start = suture_tramp_insns[fops->tramp].start;

	*size = suture_tramp_end(fops->tramp) - start;
	return start;
}
