// SPDX-License-Identifier: Apache-2.0 OR MIT
/*
 * timerslack_fork: prints the timer slack a child inherits from a
 * SCHED_FIFO parent with SCHED_RESET_ON_FORK, and the default it should
 * get back. Exits 0 when the child's slack is the default (kernel fixed by
 * "sched: restore timer_slack_ns when resetting RT policy on fork"), 1
 * when it is not, 2 when the test could not run.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	struct sched_param param = { .sched_priority = 1 };
	long slack_default = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	pid_t child;
	int status;

	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param)) {
		perror("sched_setscheduler");
		return 2;
	}
	child = fork();
	if (child < 0) {
		perror("fork");
		return 2;
	}
	if (child == 0) {
		long slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);

		printf("child of a SCHED_RESET_ON_FORK real-time task: timer slack %ld ns (default %ld ns)\n",
		       slack, slack_default);
		fflush(stdout);
		_exit(slack == slack_default ? 0 : 1);
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
		return 2;
	return WEXITSTATUS(status);
}
