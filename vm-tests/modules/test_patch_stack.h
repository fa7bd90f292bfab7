/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * test_patch_stack.h - one patch of cmdline_proc_show for the stacking test;
 * the including file defines STACK_TAG.
 */
#include <linux/module.h>
#include <linux/seq_file.h>
#include "test_patch.h"
#include "sizes.h"

int cmdline_proc_show(struct seq_file *m, void *v);

static int new_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "suture: stacked patch " STACK_TAG "\n");
	return 0;
}

static struct suture_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.old_addr = (unsigned long)&cmdline_proc_show,
		.old_size = SIZE_cmdline_proc_show,
		.new_func = new_cmdline_proc_show,
	}, { }
};

SUTURE_TEST_PATCH(0);
