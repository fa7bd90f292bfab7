// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_consistency.c - switch a patch only when no task is inside it
 *
 * The switch happens inside stop_machine(): every other CPU spins with
 * interrupts off, so no task runs while we walk every thread's stack and,
 * only if none has a return address inside a function being switched, flip
 * the active flags of all the patch's functions at once. A refusal changes
 * nothing. This must never sleep or allocate: it runs with interrupts off.
 *
 * stack_trace_save_tsk() is not exported; patchd links it (docs/kmod-interface.md).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/ktime.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/stacktrace.h>
#include <linux/stop_machine.h>
#include "suture_internal.h"

#define SUTURE_MAX_STACK_ENTRIES 128

struct suture_switch_ctx {
	struct suture_patch *patch;
	const struct suture_range *ranges;
	unsigned int nr_ranges;
	bool enable;
	u64 pause_ns;
	/* Set when refused. */
	pid_t busy_pid;
	char busy_comm[TASK_COMM_LEN];
	unsigned long busy_addr;
};

/* Used only inside the stop_machine() callback; serialised by suture_mutex. */
static unsigned long suture_stack_entries[SUTURE_MAX_STACK_ENTRIES];

static bool suture_in_ranges(unsigned long addr, const struct suture_range *ranges,
			     unsigned int nr_ranges)
{
	unsigned int i;

	for (i = 0; i < nr_ranges; i++)
		if (addr >= ranges[i].start && addr - ranges[i].start < ranges[i].size)
			return true;
	return false;
}

/* Return: the first return address of @task inside a range, or 0. */
static unsigned long suture_task_busy_addr(struct task_struct *task,
					   const struct suture_range *ranges,
					   unsigned int nr_ranges)
{
	unsigned int nr, i;

	nr = stack_trace_save_tsk(task, suture_stack_entries,
				  SUTURE_MAX_STACK_ENTRIES, 0);
	for (i = 0; i < nr; i++)
		if (suture_in_ranges(suture_stack_entries[i], ranges, nr_ranges))
			return suture_stack_entries[i];
	return 0;
}

static int suture_switch_cb(void *data)
{
	struct suture_switch_ctx *ctx = data;
	struct task_struct *g, *t;
	struct suture_func *func;
	u64 start = ktime_get_ns();
	unsigned long addr;

	/* Every other CPU is stopped with interrupts off: the list is stable. */
	for_each_process_thread(g, t) {
		if (t == current)
			continue;
		addr = suture_task_busy_addr(t, ctx->ranges, ctx->nr_ranges);
		if (addr) {
			ctx->busy_pid = task_pid_nr(t);
			memcpy(ctx->busy_comm, t->comm, TASK_COMM_LEN);
			ctx->busy_addr = addr;
			ctx->pause_ns = ktime_get_ns() - start;
			return -EBUSY;
		}
	}

	/* Pairs with the READ_ONCE() in suture_ftrace_handler(). */
	for (func = ctx->patch->funcs; func->old_name; func++)
		WRITE_ONCE(func->active, ctx->enable);

	ctx->pause_ns = ktime_get_ns() - start;
	return 0;
}

/**
 * suture_switch() - enable or disable every function of a patch at once
 * @patch:	the patch, its funcs attached to their fops
 * @ranges:	code that no task may be executing or returning into
 * @nr_ranges:	number of @ranges
 * @enable:	the new state of every func of @patch
 *
 * Context: suture_mutex held; sleeps.
 * Return: 0, or -EBUSY when a task is inside one of @ranges (nothing
 * changed; @patch->last_busy says which task and where).
 */
int suture_switch(struct suture_patch *patch, const struct suture_range *ranges,
		  unsigned int nr_ranges, bool enable)
{
	struct suture_switch_ctx ctx = {
		.patch = patch,
		.ranges = ranges,
		.nr_ranges = nr_ranges,
		.enable = enable,
	};
	int ret;

	lockdep_assert_held(&suture_mutex);

	ret = stop_machine(suture_switch_cb, &ctx, NULL);
	patch->last_pause_ns = ctx.pause_ns;
	if (ret == -EBUSY) {
		patch->busy_refusals++;
		snprintf(patch->last_busy, sizeof(patch->last_busy),
			 "pid %d comm %s at %pS", ctx.busy_pid, ctx.busy_comm,
			 (void *)ctx.busy_addr);
		pr_info("%s: %s refused: %s\n", patch->name,
			enable ? "enable" : "disable", patch->last_busy);
	}
	return ret;
}
