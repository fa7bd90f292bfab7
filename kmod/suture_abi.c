// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_abi.c - the two functions patch modules call
 *
 * Exported from a file that sees only the public header: with modversions,
 * the version (CRC) of each export is computed from the types visible where
 * it is exported. Here those are exactly what patch modules are built
 * against (include/suture.h, where struct suture_fops is only declared), so
 * the companion's private structures can change without making the kernel
 * refuse patch modules that were built against an earlier companion.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include "include/suture.h"

/* In suture_core.c (declared again in suture_internal.h). */
int suture_do_register_patch(struct suture_patch *patch);
int suture_do_unregister_patch(struct suture_patch *patch);

/**
 * suture_register_patch() - make a patch known, disabled
 * @patch: static in the calling patch module; see struct suture_patch
 *
 * Checks every function: its address must be the start of a kernel function
 * with the expected name and size and an ftrace call site. Creates
 * /sys/kernel/suture/<name>/. Redirects nothing.
 * Context: process context, typically the patch module's init function.
 * Return: 0 or a negative errno; on error nothing was registered.
 */
int suture_register_patch(struct suture_patch *patch)
{
	return suture_do_register_patch(patch);
}
EXPORT_SYMBOL_GPL(suture_register_patch);

/**
 * suture_unregister_patch() - forget a disabled patch
 * @patch: registered with suture_register_patch()
 *
 * Context: process context, typically the patch module's exit function,
 * which cannot run while the patch is enabled (enabling holds a reference
 * on the patch module).
 * Return: 0; -EBUSY if the patch is enabled; -EINVAL if it is not registered.
 */
int suture_unregister_patch(struct suture_patch *patch)
{
	return suture_do_unregister_patch(patch);
}
EXPORT_SYMBOL_GPL(suture_unregister_patch);
