// SPDX-License-Identifier: GPL-2.0-only
/*
 * klp_bench.c - the kernel's own livepatch replacing suture_bench_fn1, in the
 * style of samples/livepatch, as the benchmark's baseline.
 */
#include <linux/livepatch.h>
#include <linux/module.h>

static noinline u64 livepatch_suture_bench_fn1(u64 x)
{
	return x + 2;
}

static struct klp_func funcs[] = {
	{
		.old_name = "suture_bench_fn1",
		.new_func = livepatch_suture_bench_fn1,
	}, { }
};

static struct klp_object objs[] = {
	{
		.name = "suture_bench",
		.funcs = funcs,
	}, { }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init klp_bench_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit klp_bench_exit(void)
{
}

module_init(klp_bench_init);
module_exit(klp_bench_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
