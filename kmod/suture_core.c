// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_core.c - the suture companion module: patch registration, enable
 * and disable
 *
 * Patch modules register a struct suture_patch; user space enables and
 * disables it through sysfs. A patch is switched wholly or not at all, and
 * every failure undoes exactly what was done before it. This module never
 * reads a bundle and never resolves symbols itself: patchd links both this
 * module and the patch modules before they are loaded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include "suture_internal.h"

DEFINE_MUTEX(suture_mutex);

/* Registered patches, oldest first; protected by suture_mutex. */
static LIST_HEAD(suture_patches);

#define suture_for_each_func(patch, func) \
	for ((func) = (patch)->funcs; (func)->old_name; (func)++)

/**
 * suture_symbol_extent() - the symbol containing an address
 * @addr:	any address
 * @name:	receives the symbol name
 * @name_len:	size of @name
 * @offset:	receives @addr's offset in the symbol
 * @size:	receives the symbol's size
 *
 * Uses sprint_symbol(), which is exported, because kallsyms_lookup_size_offset()
 * is not.
 * Return: 0, or -ENOENT when kallsyms knows no symbol at @addr.
 */
int suture_symbol_extent(unsigned long addr, char *name, size_t name_len,
			 unsigned long *offset, unsigned long *size)
{
	char buf[KSYM_SYMBOL_LEN];
	char *plus;

	/* "name+0xoff/0xsize [module]", or a bare hex address when unknown */
	sprint_symbol(buf, addr);
	plus = strchr(buf, '+');
	if (!plus)
		return -ENOENT;
	*plus = '\0';
	if (sscanf(plus + 1, "0x%lx/0x%lx", offset, size) != 2)
		return -ENOENT;
	strscpy(name, buf, name_len);
	return 0;
}

static unsigned int suture_nr_funcs(struct suture_patch *patch)
{
	struct suture_func *func;
	unsigned int n = 0;

	suture_for_each_func(patch, func)
		n++;
	return n;
}

static struct suture_patch *suture_find_patch(const char *name)
{
	struct suture_patch *patch;

	list_for_each_entry(patch, &suture_patches, list)
		if (!strcmp(patch->name, name))
			return patch;
	return NULL;
}

/*
 * Unregisters ftrace_ops left without a func, later and in one go: a
 * revert returns after one grace period instead of one per function.
 */
static void suture_reap_work_fn(struct work_struct *work)
{
	mutex_lock(&suture_mutex);
	suture_redirect_reap();
	mutex_unlock(&suture_mutex);
}
static DECLARE_DELAYED_WORK(suture_reap_work, suture_reap_work_fn);

/*
 * Takes every func of @patch off its stack. On return no task can be sent
 * to or still be about to enter a replacement of @patch, so the patch
 * module may go; ftrace_ops left empty are unregistered by the reap work.
 */
static void suture_detach_funcs(struct suture_patch *patch)
{
	struct suture_func *func;
	bool unlinked = false;

	suture_for_each_func(patch, func) {
		if (func->fops) {
			suture_redirect_unlink(func);
			unlinked = true;
		}
	}
	if (!unlinked)
		return;
	suture_redirect_sync();
	mod_delayed_work(system_wq, &suture_reap_work, HZ);
}

/*
 * The length of the x86 padding at @p (at most @left bytes), or 0 if it is
 * none: int3, a zero byte (a zero-filled gap), nop, and the long nops of
 * the assembler and the linker (prefixes 0x66 and 0x2e, then 0x90 or
 * 0x0f 0x1f with its operand). patchgen and the bundle crate apply the
 * same rule (suture_bundle::link_record::is_padding).
 */
static unsigned int suture_padding_insn(const u8 *p, unsigned int left)
{
	unsigned int i = 0, mod, rm, len;

	if (left && (p[0] == 0xcc || p[0] == 0x00))
		return 1;
	while (i < left && i < 8 && (p[i] == 0x66 || p[i] == 0x2e))
		i++;
	if (i < left && p[i] == 0x90)
		return i + 1;
	if (i + 2 >= left || p[i] != 0x0f || p[i + 1] != 0x1f)
		return 0;
	mod = p[i + 2] >> 6;
	rm = p[i + 2] & 7;
	len = i + 3;
	/* A SIB byte; with mod 0 and base 5 it is followed by a disp32. */
	if (mod != 3 && rm == 4) {
		if (len >= left)
			return 0;
		if (mod == 0 && (p[len] & 7) == 5)
			rm = 5;
		len++;
	}
	if (mod == 1)
		len += 1;
	else if (mod == 2 || (mod == 0 && rm == 5))
		len += 4;
	return len <= left ? len : 0;
}

/*
 * Whether the @len bytes of kernel text at @addr are only padding: what
 * lies between a function's end and the next symbol when alignment leaves
 * 16 bytes or more (object boundaries, call padding on 6.12).
 */
static bool suture_is_padding(unsigned long addr, unsigned long len)
{
	u8 buf[64];
	unsigned long done = 0;

	while (done < len) {
		unsigned int chunk = min_t(unsigned long, len - done, sizeof(buf));
		unsigned int at = 0, n;

		if (copy_from_kernel_nofault(buf, (void *)(addr + done), chunk))
			return false;
		/* An instruction cut by the chunk's end is read again whole. */
		while (at < chunk) {
			n = suture_padding_insn(buf + at, chunk - at);
			if (!n) {
				if (chunk == sizeof(buf) && at > 0 && chunk - at < 16)
					break;
				return false;
			}
			at += n;
		}
		done += at;
	}
	return true;
}

/* Checks one replacement against the running kernel; changes nothing. */
static int suture_check_func(struct suture_patch *patch, struct suture_func *func)
{
	char name[KSYM_NAME_LEN];
	unsigned long offset, size;
	struct suture_func *other;
	int ret;

	if (!func->old_addr || !func->new_func) {
		pr_err("%s: %s: old address or new function missing: link the patch module with patchd before loading it\n",
		       patch->name, func->old_name);
		return -EINVAL;
	}
	if (!within_module_core((unsigned long)func->new_func, patch->mod)) {
		pr_err("%s: %s: the replacement %px is not in the patch module's core text\n",
		       patch->name, func->old_name, func->new_func);
		return -EINVAL;
	}
	for (other = patch->funcs; other != func; other++) {
		if (other->old_addr == func->old_addr) {
			pr_err("%s: %s is replaced twice in one patch\n",
			       patch->name, func->old_name);
			return -EINVAL;
		}
	}

	ret = suture_symbol_extent(func->old_addr, name, sizeof(name), &offset, &size);
	if (ret) {
		pr_err("%s: %s: no kernel symbol at %px: the patch was linked for another kernel\n",
		       patch->name, func->old_name, (void *)func->old_addr);
		return -EINVAL;
	}
	if (strcmp(name, func->old_name) || offset) {
		pr_err("%s: %s: address %px is %s+0x%lx, not the start of %s: the patch was built or linked for another kernel\n",
		       patch->name, func->old_name, (void *)func->old_addr, name,
		       offset, func->old_name);
		return -EINVAL;
	}
	/*
	 * kallsyms measures up to the next symbol, so it includes the padding
	 * that aligns the next function; the ELF size does not. Where that is
	 * 16 bytes or more, every byte of it must be padding.
	 */
	if (size < func->old_size ||
	    (size - func->old_size >= SUTURE_SIZE_ALLOWANCE &&
	     !suture_is_padding(func->old_addr + func->old_size, size - func->old_size))) {
		pr_err("%s: %s is %lu bytes in the running kernel, the patch expects %lu: it was built for another kernel build\n",
		       patch->name, func->old_name, size, func->old_size);
		return -EINVAL;
	}

	ret = suture_redirect_check_site(func->old_addr);
	if (ret) {
		pr_err("%s: %s has no ftrace call site (notrace or not instrumented): it cannot be redirected (%d)\n",
		       patch->name, func->old_name, ret);
		return ret;
	}

	ret = suture_symbol_extent((unsigned long)func->new_func, name,
				   sizeof(name), &offset, &func->new_size);
	if (ret || offset) {
		pr_err("%s: %s: the replacement %px is not the start of a function\n",
		       patch->name, func->old_name, func->new_func);
		return -EINVAL;
	}
	return 0;
}

/**
 * suture_do_register_patch() - make a patch known, disabled
 * @patch: static in the calling patch module; see struct suture_patch
 *
 * Checks every function: its address must be the start of a kernel function
 * with the expected name and size and an ftrace call site. Creates
 * /sys/kernel/suture/<name>/. Redirects nothing.
 * Context: process context, typically the patch module's init function.
 * Return: 0 or a negative errno; on error nothing was registered.
 */
int suture_do_register_patch(struct suture_patch *patch)
{
	struct suture_func *func;
	int ret;

	if (!patch || !patch->mod || !patch->funcs || !patch->funcs[0].old_name)
		return -EINVAL;
	if (!patch->name)
		patch->name = module_name(patch->mod);
	if (!patch->name[0] || strchr(patch->name, '/') ||
	    strlen(patch->name) >= MODULE_NAME_LEN) {
		pr_err("invalid patch name '%s'\n", patch->name);
		return -EINVAL;
	}

	mutex_lock(&suture_mutex);
	if (suture_find_patch(patch->name)) {
		pr_err("%s: a patch with this name is already registered\n", patch->name);
		ret = -EEXIST;
		goto out;
	}
	suture_for_each_func(patch, func) {
		func->active = false;
		func->fops = NULL;
		ret = suture_check_func(patch, func);
		if (ret)
			goto out;
	}
	patch->enabled = false;
	patch->busy_refusals = 0;
	patch->last_pause_ns = 0;
	patch->last_threads = 0;
	patch->last_walked = 0;
	patch->last_busy[0] = '\0';
	ret = suture_sysfs_add_patch(patch);
	if (ret)
		goto out;
	list_add_tail(&patch->list, &suture_patches);
	patch->registered = true;
	pr_info("%s: registered, %u function(s)\n", patch->name, suture_nr_funcs(patch));
out:
	mutex_unlock(&suture_mutex);
	return ret;
}

/**
 * suture_do_unregister_patch() - forget a disabled patch
 * @patch: registered with suture_do_register_patch()
 *
 * Context: process context, typically the patch module's exit function,
 * which cannot run while the patch is enabled (enabling holds a reference
 * on the patch module).
 * Return: 0; -EBUSY if the patch is enabled; -EINVAL if it is not registered.
 */
int suture_do_unregister_patch(struct suture_patch *patch)
{
	mutex_lock(&suture_mutex);
	if (!patch->registered) {
		mutex_unlock(&suture_mutex);
		return -EINVAL;
	}
	if (patch->enabled) {
		mutex_unlock(&suture_mutex);
		pr_err("%s: cannot unregister an enabled patch: disable it first\n",
		       patch->name);
		return -EBUSY;
	}
	suture_detach_funcs(patch);
	list_del(&patch->list);
	patch->registered = false;
	mutex_unlock(&suture_mutex);

	/* Outside the mutex: it waits for sysfs writers, which take it. */
	suture_sysfs_del_patch(patch);
	pr_info("%s: unregistered\n", patch->name);
	return 0;
}

/*
 * Appends the direct-call trampolines of @patch's functions to @ranges
 * (room for one per function after @nr) and returns the new count: a task
 * preempted inside one has read where to go but is not there yet.
 */
static unsigned int suture_add_tramp_ranges(struct suture_patch *patch,
					    struct suture_range *ranges,
					    unsigned int nr)
{
	struct suture_func *func;

	suture_for_each_func(patch, func)
		if (suture_redirect_tramp(func, &ranges[nr].start, &ranges[nr].size))
			nr++;
	return nr;
}

/**
 * suture_enable_patch() - redirect every function of a patch
 * @patch: registered
 *
 * Context: suture_mutex held.
 * Return: 0 (also when already enabled), -EBUSY when a task is inside a
 * function being replaced, or another negative errno; on error nothing
 * changed.
 */
int suture_enable_patch(struct suture_patch *patch)
{
	unsigned int n = suture_nr_funcs(patch), i = 0;
	struct suture_range *ranges;
	struct suture_func *func;
	int ret;

	lockdep_assert_held(&suture_mutex);
	if (patch->enabled)
		return 0;
	/* Held while enabled: the patch module cannot be removed. */
	if (!try_module_get(patch->mod))
		return -ENODEV;
	ranges = kcalloc(2 * n, sizeof(*ranges), GFP_KERNEL);
	if (!ranges) {
		ret = -ENOMEM;
		goto err_put;
	}

	suture_for_each_func(patch, func) {
		ret = suture_redirect_attach(func);
		if (ret)
			goto err_detach;
	}
	/* The code a caller runs today is what no task may be inside. */
	suture_for_each_func(patch, func) {
		ranges[i].start = suture_redirect_current_target(func, &ranges[i].size);
		i++;
	}
	i = suture_add_tramp_ranges(patch, ranges, i);

	ret = suture_switch(patch, ranges, i, true);
	if (ret)
		goto err_detach;

	patch->enabled = true;
	kfree(ranges);
	pr_info("%s: enabled (pause %llu ns, %u of %u threads walked in the stop)\n",
		patch->name, patch->last_pause_ns, patch->last_walked,
		patch->last_threads);
	return 0;

err_detach:
	/* Back to the state after registration: nothing attached. */
	suture_detach_funcs(patch);
	kfree(ranges);
err_put:
	module_put(patch->mod);
	return ret;
}

/**
 * suture_disable_patch() - stop redirecting the functions of a patch
 * @patch: registered
 *
 * Context: suture_mutex held.
 * Return: 0 (also when already disabled), -EBUSY when a task is inside one
 * of the patch's replacements, or another negative errno; on error nothing
 * changed.
 */
int suture_disable_patch(struct suture_patch *patch)
{
	unsigned int n = suture_nr_funcs(patch), i = 0;
	struct suture_range *ranges;
	struct suture_func *func;
	int ret;

	lockdep_assert_held(&suture_mutex);
	if (!patch->enabled)
		return 0;
	ranges = kcalloc(2 * n, sizeof(*ranges), GFP_KERNEL);
	if (!ranges)
		return -ENOMEM;
	suture_for_each_func(patch, func) {
		ranges[i].start = (unsigned long)func->new_func;
		ranges[i].size = func->new_size;
		i++;
	}
	i = suture_add_tramp_ranges(patch, ranges, i);
	ret = suture_switch(patch, ranges, i, false);
	kfree(ranges);
	if (ret)
		return ret;

	/*
	 * The funcs stay attached (inactive, so the handler passes over
	 * them): enabling again costs one stop_machine(), not an ftrace
	 * registration. They leave when the patch is unregistered, before the
	 * patch module's memory goes.
	 */
	patch->enabled = false;
	module_put(patch->mod);
	pr_info("%s: disabled (pause %llu ns, %u of %u threads walked in the stop)\n",
		patch->name, patch->last_pause_ns, patch->last_walked,
		patch->last_threads);
	return 0;
}

static int __init suture_init(void)
{
	return suture_sysfs_init();
}

static void __exit suture_exit(void)
{
	/* Patch modules depend on us: none is loaded now, so none is registered. */
	cancel_delayed_work_sync(&suture_reap_work);
	mutex_lock(&suture_mutex);
	suture_redirect_reap();
	mutex_unlock(&suture_mutex);
	suture_park_exit();
	suture_sysfs_exit();
}

module_init(suture_init);
module_exit(suture_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("suture companion module: redirect kernel functions to live patches");
MODULE_AUTHOR("suture developers");
