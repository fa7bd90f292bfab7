// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_consistency.c - switch a patch only when no task is inside it
 *
 * The switch happens inside stop_machine(): every other CPU spins with
 * interrupts off, so no task runs while we check every thread's stack and,
 * only if none has a return address inside a function being switched, flip
 * the active flags of all the patch's functions at once. A refusal changes
 * nothing. The callback must never sleep or allocate.
 *
 * To keep the pause short, every stack is first walked before the stop
 * (the "survey"), noting each thread's context-switch count. A thread that
 * was not running then and whose count is unchanged inside the stop has not
 * run since, so its stack is the one surveyed; only the threads that ran in
 * between (and new ones) are walked inside the stop. A thread found inside a
 * function by the survey and still not run since refuses the switch without
 * a stop at all.
 *
 * stack_trace_save_tsk() is not exported; patchd links it (docs/kmod-interface.md).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/ktime.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/bsearch.h>
#include <linux/mm.h>
#include <linux/sort.h>
#include <linux/stacktrace.h>
#include <linux/stop_machine.h>
#include <asm/sync_core.h>
#include "suture_internal.h"

#define SUTURE_MAX_STACK_ENTRIES 128

/* What the survey saw of one thread. */
struct suture_seen {
	struct task_struct *task;
	pid_t pid;
	bool stale;		/* it ran during its walk: walk again in the stop */
	unsigned long switches;	/* nvcsw + nivcsw when walked */
	unsigned long busy_addr; /* a return address inside a range, or 0 */
};

struct suture_survey {
	struct suture_seen *seen;	/* sorted by task */
	unsigned int nr;
};

struct suture_switch_ctx {
	struct suture_patch *patch;
	const struct suture_survey *survey;
	const struct suture_range *ranges;
	unsigned int nr_ranges;
	bool enable;
	u64 pause_ns;
	unsigned int nr_walked;		/* stacks walked inside the stop */
	unsigned int sleepers_moved;	/* sleeping tasks parked before the stop */
	unsigned int nr_threads;
	/* Set when refused. */
	pid_t busy_pid;
	char busy_comm[TASK_COMM_LEN];
	unsigned long busy_addr;
};

/*
 * survey=0 walks every stack inside the stop, as without the survey; it is
 * there to measure the survey against (the benchmark) and as a fallback.
 */
static bool suture_survey_enabled = true;
module_param_named(survey, suture_survey_enabled, bool, 0644);
MODULE_PARM_DESC(survey, "walk stacks before stop_machine() and only re-walk threads that ran since (default: on)");

/* Used by the survey and the stop_machine() callback; serialised by suture_mutex. */
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

static unsigned long suture_switches(struct task_struct *t)
{
	return READ_ONCE(t->nvcsw) + READ_ONCE(t->nivcsw);
}

static int suture_seen_cmp(const void *a, const void *b)
{
	const struct suture_seen *x = a, *y = b;

	if (x->task == y->task)
		return 0;
	return x->task < y->task ? -1 : 1;
}

static int suture_seen_key_cmp(const void *key, const void *elt)
{
	const struct suture_seen *seen = elt;

	if (key == seen->task)
		return 0;
	return key < (const void *)seen->task ? -1 : 1;
}

/*
 * Walks every thread's stack without stopping the machine.
 * Return: 0 (survey filled, possibly partially), -ENOMEM.
 */
static int suture_survey_take(struct suture_survey *survey,
			      const struct suture_range *ranges,
			      unsigned int nr_ranges)
{
	struct task_struct *g, *t;
	unsigned int cap = 0;
	unsigned long before;

	survey->seen = NULL;
	survey->nr = 0;
	if (!READ_ONCE(suture_survey_enabled))
		return 0;

	rcu_read_lock();
	for_each_process_thread(g, t)
		cap++;
	rcu_read_unlock();

	/* Threads created after the count are not surveyed: walked in the stop. */
	survey->seen = kvmalloc_array(cap + 64, sizeof(*survey->seen), GFP_KERNEL);
	if (!survey->seen)
		return -ENOMEM;
	cap += 64;

	rcu_read_lock();
	for_each_process_thread(g, t) {
		struct suture_seen *seen;

		if (survey->nr == cap)
			break;
		seen = &survey->seen[survey->nr++];
		seen->task = t;
		seen->pid = task_pid_nr(t);
		before = suture_switches(t);
		seen->busy_addr = 0;
		/* A running thread's saved stack is stale: walk it in the stop. */
		seen->stale = t == current || READ_ONCE(t->on_cpu);
		if (!seen->stale)
			seen->busy_addr = suture_task_busy_addr(t, ranges, nr_ranges);
		seen->switches = suture_switches(t);
		if (seen->switches != before || READ_ONCE(t->on_cpu))
			seen->stale = true;
	}
	rcu_read_unlock();

	sort(survey->seen, survey->nr, sizeof(*survey->seen), suture_seen_cmp, NULL);
	return 0;
}

/* The survey's entry for @t if it is still valid, else NULL. */
static const struct suture_seen *suture_survey_find(const struct suture_survey *survey,
						    struct task_struct *t)
{
	const struct suture_seen *seen;

	seen = bsearch(t, survey->seen, survey->nr, sizeof(*seen), suture_seen_key_cmp);
	if (!seen || seen->stale || seen->pid != task_pid_nr(t) ||
	    seen->switches != suture_switches(t))
		return NULL;
	return seen;
}

static int suture_switch_cb(void *data)
{
	struct suture_switch_ctx *ctx = data;
	const struct suture_seen *seen;
	struct task_struct *g, *t;
	struct suture_func *func;
	u64 start = ktime_get_ns();
	unsigned long addr;

	/* Every other CPU is stopped with interrupts off: the list is stable. */
	for_each_process_thread(g, t) {
		if (t == current)
			continue;
		ctx->nr_threads++;
		seen = suture_survey_find(ctx->survey, t);
		if (seen) {
			addr = seen->busy_addr;
		} else {
			addr = suture_task_busy_addr(t, ctx->ranges, ctx->nr_ranges);
			ctx->nr_walked++;
		}
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
	/* Then the trampolines' slots, from the new flags of every patch. */
	for (func = ctx->patch->funcs; func->old_name; func++)
		suture_redirect_update(func);

	ctx->pause_ns = ktime_get_ns() - start;
	return 0;
}

/* A surveyed thread inside a range that has not run since: refuse now. */
static bool suture_survey_refuses(const struct suture_survey *survey,
				  struct suture_switch_ctx *ctx)
{
	unsigned int i;

	rcu_read_lock();
	for (i = 0; i < survey->nr; i++) {
		const struct suture_seen *seen = &survey->seen[i];

		if (!seen->busy_addr || seen->stale)
			continue;
		/* It may have exited: dereference it only if it is alive. */
		if (pid_task(find_pid_ns(seen->pid, &init_pid_ns), PIDTYPE_PID) != seen->task ||
		    suture_switches(seen->task) != seen->switches)
			continue;
		ctx->busy_pid = seen->pid;
		memcpy(ctx->busy_comm, seen->task->comm, TASK_COMM_LEN);
		ctx->busy_addr = seen->busy_addr;
		rcu_read_unlock();
		return true;
	}
	rcu_read_unlock();
	return false;
}

/*
 * The tasks the survey found inside a range and not run since, with a
 * reference each, if every one of them can be parked (suture_park.c).
 * Return: their number (then *@tasks is set, free with the parking), 0 when
 * some blocker cannot be moved or memory is short.
 */
static unsigned int suture_survey_sleepers(const struct suture_survey *survey,
					   struct task_struct ***tasks)
{
	struct task_struct **found;
	unsigned int i, nr = 0;
	bool all = true;

	found = kcalloc(survey->nr, sizeof(*found), GFP_KERNEL);
	if (!found)
		return 0;
	rcu_read_lock();
	for (i = 0; i < survey->nr && all; i++) {
		const struct suture_seen *seen = &survey->seen[i];
		struct task_struct *t;

		if (!seen->busy_addr || seen->stale)
			continue;
		t = pid_task(find_pid_ns(seen->pid, &init_pid_ns), PIDTYPE_PID);
		if (t != seen->task || suture_switches(t) != seen->switches)
			continue;	/* gone, or ran since: the stop walks it */
		if (!suture_parkable(t)) {
			all = false;
			break;
		}
		get_task_struct(t);
		found[nr++] = t;
	}
	rcu_read_unlock();
	if (all && nr) {
		*tasks = found;
		return nr;
	}
	for (i = 0; i < nr; i++)
		put_task_struct(found[i]);
	kfree(found);
	return 0;
}

/*
 * Refuses the switch if the survey found a blocker; first moves the
 * blockers out if they are all sleeping user tasks, and looks again.
 * Context: suture_mutex held; sleeps.
 * Return: true when refused (ctx says by whom), false when the stop may
 * go ahead (@survey is then the one taken after the move).
 */
static bool suture_refused_before_stop(struct suture_survey *survey,
				       struct suture_switch_ctx *ctx,
				       struct suture_parking *parking)
{
	const struct suture_range *ranges = ctx->ranges;
	unsigned int nr_ranges = ctx->nr_ranges, nr, came;
	struct task_struct **tasks;

	if (!suture_survey_refuses(survey, ctx))
		return false;
	nr = suture_survey_sleepers(survey, &tasks);
	if (!nr)
		return true;
	came = suture_park_tasks(parking, tasks, nr);
	pr_info("%s: %s: moved %u of %u sleeping tasks out of the way\n",
		ctx->patch->name, ctx->enable ? "enable" : "disable", came, nr);
	ctx->sleepers_moved = came;
	kvfree(survey->seen);
	if (suture_survey_take(survey, ranges, nr_ranges))
		return true;	/* no memory: ctx still names the first blocker */
	return suture_survey_refuses(survey, ctx);
}

struct suture_stop_all_ctx {
	int (*fn)(void *data);
	void *data;
	atomic_t cpus;
	bool done;
};

static int suture_stop_all_cb(void *data)
{
	struct suture_stop_all_ctx *ctx = data;
	int ret = 0;

	if (atomic_inc_return(&ctx->cpus) == 1) {
		ret = ctx->fn(ctx->data);
		smp_store_release(&ctx->done, true);
	} else {
		while (!smp_load_acquire(&ctx->done))
			cpu_relax();
	}
	/* Code may have changed under this CPU (the trampolines' jumps). */
	sync_core();
	return ret;
}

/**
 * suture_stop_all() - run @fn with every other CPU stopped
 * @fn: runs on one CPU with interrupts off; must not sleep
 * @data: its argument
 *
 * stop_machine() on every online CPU: one runs @fn while the others wait
 * for it, then each executes a serializing instruction before it goes
 * back, as cross-modified code requires.
 * Context: sleeps.
 * Return: what @fn returned.
 */
int suture_stop_all(int (*fn)(void *data), void *data)
{
	struct suture_stop_all_ctx ctx = { .fn = fn, .data = data };

	atomic_set(&ctx.cpus, 0);
	return stop_machine(suture_stop_all_cb, &ctx, cpu_online_mask);
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
	struct suture_parking parking = {};
	struct suture_survey survey;
	bool mapped = false;
	struct suture_switch_ctx ctx = {
		.patch = patch,
		.survey = &survey,
		.ranges = ranges,
		.nr_ranges = nr_ranges,
		.enable = enable,
	};
	int ret;

	lockdep_assert_held(&suture_mutex);

	ret = suture_survey_take(&survey, ranges, nr_ranges);
	if (ret)
		return ret;
	if (suture_redirect_any_direct(patch)) {
		ret = suture_direct_map();
		if (ret) {
			kvfree(survey.seen);
			return ret;
		}
		mapped = true;
	}
	if (suture_refused_before_stop(&survey, &ctx, &parking))
		ret = -EBUSY;	/* no stop needed: pause 0 */
	else
		ret = suture_stop_all(suture_switch_cb, &ctx);
	if (mapped)
		suture_direct_unmap();
	/* Parked tasks go back to user mode: their syscalls restart. */
	suture_park_release(&parking);
	kvfree(survey.seen);
	patch->last_pause_ns = ctx.pause_ns;
	patch->last_walked = ctx.nr_walked;
	patch->last_threads = ctx.nr_threads;
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
