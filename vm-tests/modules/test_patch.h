/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * test_patch.h - the registration every test patch module does, as
 * patchgen's generated glue does it: a static patch over the module's
 * funcs[], registered at init, unregistered at exit.
 */
#ifndef _SUTURE_TEST_PATCH_H
#define _SUTURE_TEST_PATCH_H

#include <linux/module.h>
#include "suture.h"

/* Defines the patch over funcs[]; PREPARE runs before registering. */
#define SUTURE_TEST_PATCH(PREPARE)					\
	static struct suture_patch patch = {				\
		.mod = THIS_MODULE,					\
		.funcs = funcs,						\
	};								\
	static int __init test_patch_init(void)				\
	{								\
		int ret = PREPARE;					\
		return ret ? ret : suture_register_patch(&patch);	\
	}								\
	static void __exit test_patch_exit(void)			\
	{								\
		suture_unregister_patch(&patch);			\
	}								\
	module_init(test_patch_init);					\
	module_exit(test_patch_exit);					\
	MODULE_LICENSE("GPL")

#endif
