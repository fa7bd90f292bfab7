// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_patch_bad.c - a patch whose registration must fail; mode= picks the
 * defect: name (wrong name), size (wrong size), offset (not a function
 * start), notrace (a function without an ftrace site), ok (no defect).
 */
#include <linux/module.h>
#include <linux/seq_file.h>
#include "test_patch.h"
#include "sizes.h"
#include "targets.h"

int cmdline_proc_show(struct seq_file *m, void *v);

static char *mode = "ok";
module_param(mode, charp, 0444);

static int new_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "suture: bad patch\n");
	return 0;
}

static int new_suture_target_notrace(void)
{
	return 4;
}

static struct suture_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.old_addr = (unsigned long)&cmdline_proc_show,
		.old_size = SIZE_cmdline_proc_show,
		.new_func = new_cmdline_proc_show,
	}, { }, { }
};

static int bad_prepare(void)
{
	if (!strcmp(mode, "name")) {
		funcs[0].old_name = "version_proc_show";
	} else if (!strcmp(mode, "size")) {
		funcs[0].old_size += 64;
	} else if (!strcmp(mode, "offset")) {
		funcs[0].old_addr += 4;
	} else if (!strcmp(mode, "notrace")) {
		funcs[1].old_name = "suture_target_notrace";
		funcs[1].old_addr = (unsigned long)&suture_target_notrace;
		funcs[1].old_size = SIZE_suture_target_notrace;
		funcs[1].new_func = new_suture_target_notrace;
	} else if (strcmp(mode, "ok")) {
		return -EINVAL;
	}
	return 0;
}

SUTURE_TEST_PATCH(bad_prepare());

