// SPDX-License-Identifier: GPL-2.0-only
/*
 * suture_park.c - move sleeping user tasks out of the functions being switched
 *
 * A task asleep inside a function being switched blocks the switch: its
 * stack holds a return address into the function. Many functions where
 * security fixes land always have sleepers (do_wait: pid 1 and every shell;
 * pipe_read, futex_wait, n_tty_read: idle programs), so waiting for them to
 * leave never ends. The kernel's livepatch moves such tasks with a fake
 * signal (klp_send_signals()); we do the same, and then hold them at a point
 * that is outside every kernel function, until the switch is done:
 *
 * 1. Each blocker must be a user task (not a kernel thread, not an io_uring
 *    worker, not exiting) in an interruptible sleep. Only if every blocker
 *    the survey found is such a task is anything done; otherwise nobody is
 *    disturbed and the switch is refused, naming the blocker.
 * 2. A task_work is queued on each with TWA_SIGNAL: the kernel sets
 *    TIF_NOTIFY_SIGNAL and wakes the task from its interruptible sleep, as
 *    a signal would, but no signal is queued. The sleeping code sees
 *    signal_pending() and unwinds to the syscall exit with its usual
 *    "interrupted" return value.
 * 3. On the way back to user mode, get_signal() runs the task_work before
 *    it looks at the syscall's return value: our callback records that value
 *    and parks the task (an interruptible wait on our queue). Its stack is
 *    now the syscall exit path and this file, so the switch can go ahead.
 * 4. After the switch (done or refused) the tasks are released. With no
 *    signal to deliver, arch_do_signal_or_restart() restarts a syscall that
 *    returned -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND or
 *    -ERESTART_RESTARTBLOCK: the program never sees the interruption, and
 *    the restarted call enters the function again, patched if the switch
 *    was done. do_wait, pipe_read, n_tty_read, futex_wait, nanosleep, poll
 *    and most blocking calls return those. A few return -EINTR even without
 *    a handler (epoll_wait, or socket calls with a receive timeout); a
 *    program in one of those sees EINTR, as under the kernel's livepatch.
 *    The callback counts both kinds (parameters sleepers_restarted and
 *    sleepers_interrupted under /sys/module/suture/parameters/).
 *
 * A task that does not come to the park within park_timeout_ms (it went
 * back to sleep, or it sleeps uninterruptibly now) stays a blocker: the
 * next survey finds it and the switch is refused as before. A real signal
 * ends a task's park early. Parked tasks hold no kernel locks: they are at
 * the user-mode boundary.
 *
 * task_work_cancel() is not exported; patchd links it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/module.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/task_work.h>
#include <linux/wait.h>
#include <asm/syscall.h>
#include "suture_internal.h"

static bool suture_wake_sleepers = true;
module_param_named(wake_sleepers, suture_wake_sleepers, bool, 0644);
MODULE_PARM_DESC(wake_sleepers, "move user tasks sleeping in a function being switched out of it (default: on)");

static unsigned int suture_park_timeout_ms = 1000;
module_param_named(park_timeout_ms, suture_park_timeout_ms, uint, 0644);
MODULE_PARM_DESC(park_timeout_ms, "how long a switch waits for woken sleepers to leave (default: 1000)");

static atomic_long_t suture_sleepers_moved = ATOMIC_LONG_INIT(0);
static atomic_long_t suture_sleepers_restarted = ATOMIC_LONG_INIT(0);
static atomic_long_t suture_sleepers_interrupted = ATOMIC_LONG_INIT(0);

static int suture_counter_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(kp->arg));
}

static const struct kernel_param_ops suture_counter_ops = {
	.get = suture_counter_get,
};

module_param_cb(sleepers_moved, &suture_counter_ops, &suture_sleepers_moved, 0444);
MODULE_PARM_DESC(sleepers_moved, "sleeping tasks moved out of switched functions");
module_param_cb(sleepers_restarted, &suture_counter_ops, &suture_sleepers_restarted, 0444);
MODULE_PARM_DESC(sleepers_restarted, "of those, tasks whose system call restarted transparently");
module_param_cb(sleepers_interrupted, &suture_counter_ops, &suture_sleepers_interrupted, 0444);
MODULE_PARM_DESC(sleepers_interrupted, "of those, tasks whose system call returned interrupted (e.g. EINTR)");

/* Tasks wait here while a switch holds them; the switcher waits for arrivals. */
static DECLARE_WAIT_QUEUE_HEAD(suture_release_wq);
static DECLARE_WAIT_QUEUE_HEAD(suture_arrive_wq);
static bool suture_park_hold;		/* WRITE_ONCE under suture_mutex */
static atomic_t suture_park_arrived = ATOMIC_INIT(0);
static bool suture_park_used;		/* a park was ever queued: see suture_park_exit() */

struct suture_park {
	struct callback_head work;
};

/* Whether a syscall return value makes arch_do_signal_or_restart() restart it. */
static bool suture_restarts(long error)
{
	return error == -ERESTARTSYS || error == -ERESTARTNOINTR ||
	       error == -ERESTARTNOHAND || error == -ERESTART_RESTARTBLOCK;
}

/* Runs in the woken task, on its way back to user mode (or at its exit). */
static void suture_park_fn(struct callback_head *work)
{
	struct pt_regs *regs = current_pt_regs();
	bool in_syscall = syscall_get_nr(current, regs) != -1;

	kfree(container_of(work, struct suture_park, work));
	atomic_long_inc(&suture_sleepers_moved);
	if (in_syscall && suture_restarts(syscall_get_error(current, regs)))
		atomic_long_inc(&suture_sleepers_restarted);
	else
		atomic_long_inc(&suture_sleepers_interrupted);

	atomic_inc(&suture_park_arrived);
	wake_up(&suture_arrive_wq);
	if (!(current->flags & PF_EXITING))
		wait_event_interruptible(suture_release_wq, !READ_ONCE(suture_park_hold));
	/*
	 * The reference taken when the work was queued. The few instructions
	 * after it are covered by the synchronize_rcu_tasks() of module exit.
	 */
	module_put(THIS_MODULE);
}

/**
 * suture_parkable() - whether a blocker can be moved out by a park
 * @t: a task found inside a range by the survey, not running since
 */
bool suture_parkable(struct task_struct *t)
{
	unsigned int state = READ_ONCE(t->__state);

	if (!READ_ONCE(suture_wake_sleepers))
		return false;
	if (t->flags & (PF_KTHREAD | PF_IO_WORKER | PF_EXITING))
		return false;
	return (state & TASK_INTERRUPTIBLE) && !(state & TASK_UNINTERRUPTIBLE);
}

/**
 * suture_park_tasks() - wake sleepers and hold them at the user-mode boundary
 * @parking:	filled with the tasks held; pass to suture_park_release()
 * @tasks:	the blockers, each parkable; their references move to @parking
 * @nr:		number of @tasks
 *
 * Waits until every task has come to the park, or park_timeout_ms.
 * Context: suture_mutex held; sleeps.
 * Return: how many tasks came to the park.
 */
unsigned int suture_park_tasks(struct suture_parking *parking,
			       struct task_struct **tasks, unsigned int nr)
{
	unsigned int i, queued = 0;

	lockdep_assert_held(&suture_mutex);
	parking->tasks = tasks;
	parking->parks = kcalloc(nr, sizeof(*parking->parks), GFP_KERNEL);
	parking->nr = nr;
	if (!parking->parks)
		return 0;

	atomic_set(&suture_park_arrived, 0);
	WRITE_ONCE(suture_park_hold, true);
	WRITE_ONCE(suture_park_used, true);
	for (i = 0; i < nr; i++) {
		struct suture_park *park = kzalloc(sizeof(*park), GFP_KERNEL);

		if (!park)
			break;
		init_task_work(&park->work, suture_park_fn);
		__module_get(THIS_MODULE);
		if (task_work_add(tasks[i], &park->work, TWA_SIGNAL)) {
			/* Exiting: it leaves on its own. */
			module_put(THIS_MODULE);
			kfree(park);
			continue;
		}
		parking->parks[i] = park;
		queued++;
	}
	wait_event_timeout(suture_arrive_wq,
			   atomic_read(&suture_park_arrived) >= queued,
			   msecs_to_jiffies(READ_ONCE(suture_park_timeout_ms)));
	return atomic_read(&suture_park_arrived);
}

/**
 * suture_park_release() - let every parked task go, cancel parks not reached
 * @parking: from suture_park_tasks(), or zeroed
 *
 * Context: suture_mutex held.
 */
void suture_park_release(struct suture_parking *parking)
{
	unsigned int i;

	if (!parking->tasks)
		return;
	WRITE_ONCE(suture_park_hold, false);
	wake_up_all(&suture_release_wq);
	for (i = 0; i < parking->nr; i++) {
		struct suture_park *park = parking->parks ? parking->parks[i] : NULL;

		/* Not run yet (the task slept on): it is ours to free again. */
		if (park && task_work_cancel(parking->tasks[i], &park->work)) {
			kfree(park);
			module_put(THIS_MODULE);
		}
		put_task_struct(parking->tasks[i]);
	}
	kfree(parking->parks);
	kfree(parking->tasks);
	memset(parking, 0, sizeof(*parking));
}

/* Module exit: no park callback may still be returning into our code. */
void suture_park_exit(void)
{
	if (READ_ONCE(suture_park_used))
		synchronize_rcu_tasks();
}
