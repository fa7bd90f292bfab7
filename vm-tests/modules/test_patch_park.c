// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_patch_park.c - replaces suture_target_wait, where user tasks reading
 * /proc/suture_target_wait sleep: enabling moves them out (the companion's
 * park), and their restarted reads enter the replacement, which does not
 * wait.
 */
#include <linux/module.h>
#include "test_patch.h"
#include "sizes.h"
#include "targets.h"

static int new_suture_target_wait(void)
{
	return 2;
}

static struct suture_func funcs[] = {
	{
		.old_name = "suture_target_wait",
		.old_addr = (unsigned long)&suture_target_wait,
		.old_size = SIZE_suture_target_wait,
		.new_func = new_suture_target_wait,
	}, { }
};

SUTURE_TEST_PATCH(0);
