// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_target.c - kernel functions for the VM tests to patch
 *
 * /proc/suture_target        read: "value N" from suture_target_value()
 * /proc/suture_target_busy   write "hold": a kthread sleeps inside
 *                            suture_target_sleep() until "release" is written;
 *                            read: "sleeping" or "idle"
 * /proc/suture_target_wait   write "hold", then a read sleeps (interruptibly,
 *                            in the reader's task) inside suture_target_wait()
 *                            until "release" is written; it returns
 *                            "wait N" with N from suture_target_wait()
 * suture_target_notrace()    a function without an ftrace site
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/wait.h>
#include "targets.h"

/*
 * noipa, not only noinline: gcc-14 (6.12's compiler) propagates a
 * noinline function's constant return value into its callers, which then
 * never call it, so redirecting it would change nothing. A real kernel
 * function's callers are as the kernel was built; these must really call.
 */
#define suture_target_fn noinline __attribute__((__noipa__))

suture_target_fn int suture_target_value(void)
{
	return 1;
}

static DECLARE_WAIT_QUEUE_HEAD(suture_target_wq);
static bool suture_target_released;
static bool suture_target_sleeping;

suture_target_fn void suture_target_sleep(void)
{
	WRITE_ONCE(suture_target_sleeping, true);
	wait_event_interruptible(suture_target_wq, READ_ONCE(suture_target_released));
	WRITE_ONCE(suture_target_sleeping, false);
}

/*
 * The same sleep, for test_patch_busy's replacement of suture_target_sleep():
 * a thread then sleeps inside the replacement.
 */
suture_target_fn void suture_target_hold(void)
{
	WRITE_ONCE(suture_target_sleeping, true);
	wait_event_interruptible(suture_target_wq, READ_ONCE(suture_target_released));
	WRITE_ONCE(suture_target_sleeping, false);
}

static DECLARE_WAIT_QUEUE_HEAD(suture_target_wait_wq);
static bool suture_target_wait_held;

/* Return: 1, or -ERESTARTSYS when woken by a signal (or a park). */
suture_target_fn int suture_target_wait(void)
{
	if (wait_event_interruptible(suture_target_wait_wq,
				     !READ_ONCE(suture_target_wait_held)))
		return -ERESTARTSYS;
	return 1;
}

notrace suture_target_fn int suture_target_notrace(void)
{
	return 3;
}

static int suture_target_thread(void *unused)
{
	suture_target_sleep();
	return 0;
}

static int suture_target_show(struct seq_file *m, void *v)
{
	seq_printf(m, "value %d\n", suture_target_value());
	return 0;
}

static int suture_target_busy_show(struct seq_file *m, void *v)
{
	seq_puts(m, READ_ONCE(suture_target_sleeping) ? "sleeping\n" : "idle\n");
	return 0;
}

static int suture_target_busy_open(struct inode *inode, struct file *file)
{
	return single_open(file, suture_target_busy_show, NULL);
}

static ssize_t suture_target_busy_write(struct file *file, const char __user *ubuf,
					size_t count, loff_t *ppos)
{
	char buf[16] = {};
	struct task_struct *t;

	if (copy_from_user(buf, ubuf, min(count, sizeof(buf) - 1)))
		return -EFAULT;
	if (!strncmp(buf, "hold", 4)) {
		WRITE_ONCE(suture_target_released, false);
		t = kthread_run(suture_target_thread, NULL, "suture_busy");
		if (IS_ERR(t))
			return PTR_ERR(t);
	} else if (!strncmp(buf, "release", 7)) {
		WRITE_ONCE(suture_target_released, true);
		wake_up_all(&suture_target_wq);
	} else {
		return -EINVAL;
	}
	return count;
}

static const struct proc_ops suture_target_busy_ops = {
	.proc_open = suture_target_busy_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = suture_target_busy_write,
};

static ssize_t suture_target_wait_read(struct file *file, char __user *ubuf,
				       size_t count, loff_t *ppos)
{
	char buf[16];
	int ret, len;

	if (*ppos)
		return 0;
	ret = suture_target_wait();
	if (ret < 0)
		return ret;	/* the read restarts (no signal handler runs) */
	len = scnprintf(buf, sizeof(buf), "wait %d\n", ret);
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static ssize_t suture_target_wait_write(struct file *file, const char __user *ubuf,
					size_t count, loff_t *ppos)
{
	char buf[16] = {};

	if (copy_from_user(buf, ubuf, min(count, sizeof(buf) - 1)))
		return -EFAULT;
	if (!strncmp(buf, "hold", 4)) {
		WRITE_ONCE(suture_target_wait_held, true);
	} else if (!strncmp(buf, "release", 7)) {
		WRITE_ONCE(suture_target_wait_held, false);
		wake_up_all(&suture_target_wait_wq);
	} else {
		return -EINVAL;
	}
	return count;
}

static const struct proc_ops suture_target_wait_ops = {
	.proc_read = suture_target_wait_read,
	.proc_write = suture_target_wait_write,
	.proc_lseek = noop_llseek,
};

static int __init suture_target_init(void)
{
	/* Referenced so that it is kept and has a symbol. */
	pr_debug("notrace function returns %d\n", suture_target_notrace());
	if (!proc_create_single("suture_target", 0444, NULL, suture_target_show))
		return -ENOMEM;
	if (!proc_create("suture_target_busy", 0644, NULL, &suture_target_busy_ops))
		goto err_target;
	if (!proc_create("suture_target_wait", 0644, NULL, &suture_target_wait_ops))
		goto err_busy;
	return 0;

err_busy:
	remove_proc_entry("suture_target_busy", NULL);
err_target:
	remove_proc_entry("suture_target", NULL);
	return -ENOMEM;
}

static void __exit suture_target_exit(void)
{
	WRITE_ONCE(suture_target_released, true);
	wake_up_all(&suture_target_wq);
	WRITE_ONCE(suture_target_wait_held, false);
	wake_up_all(&suture_target_wait_wq);
	remove_proc_entry("suture_target_wait", NULL);
	remove_proc_entry("suture_target_busy", NULL);
	remove_proc_entry("suture_target", NULL);
}

module_init(suture_target_init);
module_exit(suture_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("suture VM tests: functions to patch");
