// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_patch_cmdline.c - replaces cmdline_proc_show and version_proc_show,
 * two static functions of the kernel image, so the effect shows in
 * /proc/cmdline and /proc/version.
 */
#include <linux/module.h>
#include <linux/seq_file.h>
#include "test_patch.h"
#include "sizes.h"

int cmdline_proc_show(struct seq_file *m, void *v);
int version_proc_show(struct seq_file *m, void *v);

static int new_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "suture: patched cmdline\n");
	return 0;
}

static int new_version_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "suture: patched version\n");
	return 0;
}

static struct suture_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.old_addr = (unsigned long)&cmdline_proc_show,
		.old_size = SIZE_cmdline_proc_show,
		.new_func = new_cmdline_proc_show,
	}, {
		.old_name = "version_proc_show",
		.old_addr = (unsigned long)&version_proc_show,
		.old_size = SIZE_version_proc_show,
		.new_func = new_version_proc_show,
	}, { }
};

SUTURE_TEST_PATCH(0);
