// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_patch_busy.c - replaces suture_target_sleep (where a kthread may be
 * sleeping) and suture_target_value together: the switch must be refused
 * for both while the thread sleeps, and succeed for both after it woke.
 * The replacement sleeps the same way, so a thread can be inside it too.
 */
#include <linux/module.h>
#include "test_patch.h"
#include "sizes.h"
#include "targets.h"


static noinline void new_suture_target_sleep(void)
{
	suture_target_hold();
	/* Not a tail call: this frame stays on the sleeping thread's stack. */
	barrier();
}

static int new_suture_target_value(void)
{
	return 2;
}

static struct suture_func funcs[] = {
	{
		.old_name = "suture_target_value",
		.old_addr = (unsigned long)&suture_target_value,
		.old_size = SIZE_suture_target_value,
		.new_func = new_suture_target_value,
	}, {
		.old_name = "suture_target_sleep",
		.old_addr = (unsigned long)&suture_target_sleep,
		.old_size = SIZE_suture_target_sleep,
		.new_func = new_suture_target_sleep,
	}, { }
};

SUTURE_TEST_PATCH(0);
