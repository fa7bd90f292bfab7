// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_bench.c - functions whose call cost the benchmark measures
 *
 * write "N K" to /proc/suture_bench: N dependent calls of suture_bench_fnK()
 * (K is 0 to 3; 4 calls suture_bench_far(), 5 suture_bench_hop()), timed; read: "calls N ns T" of
 * the last run. The benchmark
 * redirects fn0 with suture's direct call, fn3 with suture's ftrace handler
 * (direct=0) and fn1 with the kernel's livepatch, and leaves fn2 alone, so
 * the four are measured in turns in one boot; fn4..19 are patched with the
 * others by the 20-function patch.
 */
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/objtool.h>
#include <asm/linkage.h>
#include <asm/unwind_hints.h>
#include "targets.h"

#define BENCH_FN(n) \
	noinline __attribute__((__noipa__)) u64 suture_bench_fn##n(u64 x) \
	{ return x + n + 1; }
BENCH_FUNCS(BENCH_FN)

/*
 * A control, patched by nothing: the same trivial function, alone in a page
 * of its own, so its call and return cross pages. Under QEMU TCG a jump to
 * another page cannot be chained to the code before it and costs a lookup,
 * which a redirect into another module always pays at least once.
 */
noinline __attribute__((__noipa__, __aligned__(4096), __section__(".text.suture_bench_far")))
static u64 suture_bench_far(u64 x)
{
	return x + 5;
}

/*
 * A second control, patched by nothing: the shortest redirect an ftrace
 * direct call allows. suture_bench_hop()'s first instruction calls, as a
 * direct call site does, code alone in another page that drops that return
 * address and is itself the replacement body: one page crossing, no
 * trampoline in between. What a redirect could cost at best under TCG.
 */
u64 suture_bench_hop(u64 x);
asm(".pushsection .text.suture_bench_hop_body, \"ax\"\n\t"
    ".balign 4096\n\t"
    ".type suture_bench_hop_body, @function\n"
    "suture_bench_hop_body:\n\t"
    ANNOTATE_NOENDBR
    "lea 8(%rsp), %rsp\n\t"
    UNWIND_HINT_FUNC
    "lea 7(%rdi), %rax\n\t"
    ASM_RET
    ".size suture_bench_hop_body, . - suture_bench_hop_body\n\t"
    ".popsection\n\t"
    ".pushsection .text\n\t"
    ".balign 16\n\t"
    ".type suture_bench_hop, @function\n"
    "suture_bench_hop:\n\t"
    ANNOTATE_NOENDBR
    "call suture_bench_hop_body\n\t"
    "lea 7(%rdi), %rax\n\t"
    ASM_RET
    ".size suture_bench_hop, . - suture_bench_hop\n\t"
    ".popsection");

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
	char buf[32] = {};
	unsigned int k;

	if (count >= sizeof(buf) || copy_from_user(buf, ubuf, count))
		return -EINVAL;
	if (sscanf(buf, "%llu %u", &n, &k) != 2)
		return -EINVAL;
	if (k > 5)
		return -EINVAL;
	/* Direct calls: an indirect one would add a retpoline to every figure. */
	start = ktime_get_ns();
	if (k == 0)
		for (i = 0; i < n; i++)
			x = suture_bench_fn0(x);
	else if (k == 1)
		for (i = 0; i < n; i++)
			x = suture_bench_fn1(x);
	else if (k == 2)
		for (i = 0; i < n; i++)
			x = suture_bench_fn2(x);
	else if (k == 3)
		for (i = 0; i < n; i++)
			x = suture_bench_fn3(x);
	else if (k == 4)
		for (i = 0; i < n; i++)
			x = suture_bench_far(x);
	else
		for (i = 0; i < n; i++)
			x = suture_bench_hop(x);
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
