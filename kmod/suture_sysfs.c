// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_sysfs.c - /sys/kernel/suture/<patch>/
 *
 *   enabled         rw  0 or 1; write 1 to enable, 0 to disable (-EBUSY on refusal)
 *   functions       r   one line per function (root only: it shows addresses):
 *                       old_name old_addr old_size new_name new_addr new_size
 *                       active calls path (direct, ftrace, or - when not attached)
 *   module          r   the patch module
 *   last_pause_ns   r   time inside stop_machine() of the last switch attempt
 *   last_threads    r   threads checked by the last switch attempt
 *   last_walked     r   of those, threads whose stacks were walked inside the
 *                       stop (the others had not run since the survey)
 *   busy_refusals   r   number of switches refused because a task was inside
 *   last_busy       r   the task and address that blocked the last refusal
 *
 * The layout is documented in docs/kmod-interface.md; patchd depends on it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/kobject.h>
#include <linux/sysfs.h>
#include "suture_internal.h"

static struct kobject *suture_root;

#define to_patch(kobj) container_of(kobj, struct suture_patch, kobj)

static ssize_t enabled_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(to_patch(kobj)->enabled));
}

static ssize_t enabled_store(struct kobject *kobj, struct kobj_attribute *attr,
			     const char *buf, size_t count)
{
	struct suture_patch *patch = to_patch(kobj);
	bool enable;
	int ret;

	ret = kstrtobool(buf, &enable);
	if (ret)
		return ret;

	mutex_lock(&suture_mutex);
	if (!patch->registered)
		ret = -ENODEV;
	else if (enable)
		ret = suture_enable_patch(patch);
	else
		ret = suture_disable_patch(patch);
	mutex_unlock(&suture_mutex);

	return ret ? ret : count;
}

static ssize_t functions_show(struct kobject *kobj, struct kobj_attribute *attr,
			      char *buf)
{
	struct suture_patch *patch = to_patch(kobj);
	char new_name[KSYM_NAME_LEN];
	unsigned long offset, size;
	struct suture_func *func;
	int len = 0;

	mutex_lock(&suture_mutex);
	for (func = patch->funcs; func->old_name; func++) {
		/* The bare name: one whitespace-separated field per column. */
		if (suture_symbol_extent((unsigned long)func->new_func, new_name,
					 sizeof(new_name), &offset, &size))
			strscpy(new_name, "?", sizeof(new_name));
		len += sysfs_emit_at(buf, len, "%s 0x%lx %lu %s 0x%lx %lu %d %lu %s\n",
				     func->old_name, func->old_addr, func->old_size,
				     new_name, (unsigned long)func->new_func,
				     func->new_size, READ_ONCE(func->active),
				     suture_redirect_calls(func),
				     suture_redirect_path(func));
	}
	mutex_unlock(&suture_mutex);
	return len;
}

static ssize_t module_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%s\n", module_name(to_patch(kobj)->mod));
}

static ssize_t last_pause_ns_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(to_patch(kobj)->last_pause_ns));
}

static ssize_t last_threads_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(to_patch(kobj)->last_threads));
}

static ssize_t last_walked_show(struct kobject *kobj,
				struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(to_patch(kobj)->last_walked));
}

static ssize_t busy_refusals_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(to_patch(kobj)->busy_refusals));
}

static ssize_t last_busy_show(struct kobject *kobj, struct kobj_attribute *attr,
			      char *buf)
{
	struct suture_patch *patch = to_patch(kobj);
	ssize_t len;

	mutex_lock(&suture_mutex);
	len = sysfs_emit(buf, "%s\n", patch->last_busy);
	mutex_unlock(&suture_mutex);
	return len;
}

static struct kobj_attribute enabled_attr = __ATTR_RW(enabled);
static struct kobj_attribute functions_attr = __ATTR(functions, 0400, functions_show, NULL);
static struct kobj_attribute module_attr = __ATTR_RO(module);
static struct kobj_attribute last_pause_ns_attr = __ATTR_RO(last_pause_ns);
static struct kobj_attribute last_threads_attr = __ATTR_RO(last_threads);
static struct kobj_attribute last_walked_attr = __ATTR_RO(last_walked);
static struct kobj_attribute busy_refusals_attr = __ATTR_RO(busy_refusals);
static struct kobj_attribute last_busy_attr = __ATTR_RO(last_busy);

static struct attribute *suture_patch_attrs[] = {
	&enabled_attr.attr,
	&functions_attr.attr,
	&module_attr.attr,
	&last_pause_ns_attr.attr,
	&last_threads_attr.attr,
	&last_walked_attr.attr,
	&busy_refusals_attr.attr,
	&last_busy_attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(suture_patch);

static void suture_patch_release(struct kobject *kobj)
{
	complete(&to_patch(kobj)->kobj_released);
}

static struct kobj_type suture_patch_ktype = {
	.release = suture_patch_release,
	.sysfs_ops = &kobj_sysfs_ops,
	.default_groups = suture_patch_groups,
};

/* Context: suture_mutex held. */
int suture_sysfs_add_patch(struct suture_patch *patch)
{
	int ret;

	init_completion(&patch->kobj_released);
	memset(&patch->kobj, 0, sizeof(patch->kobj));
	ret = kobject_init_and_add(&patch->kobj, &suture_patch_ktype, suture_root,
				   "%s", patch->name);
	if (ret) {
		kobject_put(&patch->kobj);
		wait_for_completion(&patch->kobj_released);
	}
	return ret;
}

/*
 * The kobject lives in the patch module's memory: wait until sysfs has let
 * go of it before the module may be freed.
 * Context: suture_mutex NOT held (removal waits for writers of "enabled").
 */
void suture_sysfs_del_patch(struct suture_patch *patch)
{
	kobject_put(&patch->kobj);
	wait_for_completion(&patch->kobj_released);
}

int suture_sysfs_init(void)
{
	suture_root = kobject_create_and_add("suture", kernel_kobj);
	return suture_root ? 0 : -ENOMEM;
}

void suture_sysfs_exit(void)
{
	kobject_put(suture_root);
}
