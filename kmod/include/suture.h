/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture.h - the interface between patch modules and the suture companion module
 *
 * A patch module describes its replacements in a static struct suture_patch,
 * registers it from its init function and unregisters it from its exit
 * function. Registration checks every replacement and creates
 * /sys/kernel/suture/<name>/; it does not redirect anything. patchd (or an
 * operator) then writes 1 to /sys/kernel/suture/<name>/enabled to switch all
 * the functions of the patch at once, and 0 to switch them back.
 *
 * old_addr is written as the address of the replaced function, e.g.
 * (unsigned long)&cmdline_proc_show; the module is built with
 * KBUILD_MODPOST_WARN=1 and the undefined symbol is linked by patchd before
 * the module is loaded (docs/kmod-interface.md).
 */
#ifndef _SUTURE_H
#define _SUTURE_H

#include <linux/kobject.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/completion.h>
#include <linux/types.h>

/*
 * The interface version of this header; a bundle records the version its
 * patch module was built against (patchgen's KMOD_INTERFACE).
 */
#define SUTURE_INTERFACE_VERSION 1

/*
 * A replaced function's kallsyms size (up to the next symbol) is its ELF
 * size plus less than this many bytes of alignment padding: the link
 * contract's size allowance, which patchgen and patchd apply too
 * (suture_bundle::link_record::SIZE_ALLOWANCE).
 */
#define SUTURE_SIZE_ALLOWANCE 16

struct suture_fops;

/**
 * struct suture_func - one function replaced by a patch
 * @old_name:	symbol name of the replaced function
 * @old_addr:	its address in the running kernel
 * @old_size:	its ELF symbol size (st_size) in the build the patch was
 *		made from; the running kernel's kallsyms size must be the
 *		same up to alignment padding, else it is another build
 * @new_func:	the replacement, inside the patch module
 *
 * The remaining fields belong to the companion module.
 */
struct suture_func {
	const char *old_name;
	unsigned long old_addr;
	unsigned long old_size;
	void *new_func;

	/* private */
	struct list_head stack_node;	/* on fops->func_stack, newest first */
	struct suture_fops *fops;
	unsigned long new_size;
	bool active;			/* read locklessly by the ftrace handler */
};

/**
 * struct suture_patch - a set of functions switched together
 * @mod:	the patch module (THIS_MODULE)
 * @name:	name under /sys/kernel/suture/; NULL means the module's name
 * @funcs:	array of replacements terminated by an entry whose
 *		old_name is NULL
 *
 * The remaining fields belong to the companion module.
 */
struct suture_patch {
	struct module *mod;
	const char *name;
	struct suture_func *funcs;

	/* private */
	struct list_head list;		/* on suture_patches */
	struct kobject kobj;		/* /sys/kernel/suture/<name> */
	struct completion kobj_released;
	bool registered;
	bool enabled;
	u64 last_pause_ns;		/* of the last successful or refused switch */
	unsigned int last_threads;	/* threads checked by it */
	unsigned int last_walked;	/* of which walked inside the stop */
	unsigned long busy_refusals;
	char last_busy[128];		/* what blocked the last refused switch */
};

int suture_register_patch(struct suture_patch *patch);
int suture_unregister_patch(struct suture_patch *patch);

#endif /* _SUTURE_H */
