// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_bench.c - functions whose call cost the benchmark measures
 *
 * write N to /proc/suture_bench: N dependent calls of suture_bench_fn0(),
 * timed; read: "calls N ns T" of the last run. suture_bench_fn1..19 exist to
 * be patched together with fn0 (the 20-function patch).
 */
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include "targets.h"

#define BENCH_FN(n) \
	noinline __attribute__((__noipa__)) u64 suture_bench_fn##n(u64 x) \
	{ return x + n + 1; }
BENCH_FUNCS(BENCH_FN)

static u64 bench_calls, bench_ns, bench_sink;

static int suture_bench_show(struct seq_file *m, void *v)
{
	seq_printf(m, "calls %llu ns %llu\n", bench_calls, bench_ns);
	return 0;
}

static int suture_bench_open(struct inode *inode, struct file *file)
{
	return single_open(file, suture_bench_show, NULL);
}

static ssize_t suture_bench_write(struct file *file, const char __user *ubuf,
				  size_t count, loff_t *ppos)
{
	u64 n, i, x = 0, start;
	int ret;

	ret = kstrtou64_from_user(ubuf, count, 10, &n);
	if (ret)
		return ret;
	start = ktime_get_ns();
	for (i = 0; i < n; i++)
		x = suture_bench_fn0(x);
	bench_ns = ktime_get_ns() - start;
	bench_calls = n;
	bench_sink = x;
	return count;
}

static const struct proc_ops suture_bench_ops = {
	.proc_open = suture_bench_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = suture_bench_write,
};

static int __init suture_bench_init(void)
{
	return proc_create("suture_bench", 0644, NULL, &suture_bench_ops) ? 0 : -ENOMEM;
}

static void __exit suture_bench_exit(void)
{
	remove_proc_entry("suture_bench", NULL);
}

module_init(suture_bench_init);
module_exit(suture_bench_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("suture benchmark: functions to call and patch");
