// SPDX-License-Identifier: Apache-2.0 OR MIT
/*
 * sleepers: tasks that sleep inside a kernel function until told to go on,
 * and that report whether any system call ever returned EINTR to them.
 * Built statically for the test guest (vm-tests/src/programs.rs).
 *
 *   sleepers wait FIFO OUT    fork a child that blocks opening FIFO, reads
 *                             a line and exits 7; waitpid() for it (the
 *                             parent sleeps in do_wait); OUT gets
 *                             "status S eintr E"
 *   sleepers read FIFO OUT    open FIFO read-write and read() from it (sleeps
 *                             in pipe_read); OUT gets "data LINE eintr E"
 *   sleepers futex N OUT      N threads FUTEX_WAIT on one word (they sleep in
 *                             futex_wait) until SIGUSR1 sets it and wakes them;
 *                             OUT gets "woken W eintr E"
 *
 * OUT is written when the sleep ended. Every EINTR is counted: a task moved
 * out of a function by the companion module must never see one here (these
 * calls restart transparently).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int eintr;

static int report(const char *out, const char *text)
{
	FILE *f = fopen(out, "w");

	if (!f || fprintf(f, "%s eintr %d\n", text, atomic_load(&eintr)) < 0 || fclose(f)) {
		perror(out);
		return 1;
	}
	return 0;
}

static int do_wait_mode(const char *fifo, const char *out)
{
	char line[64], text[96];
	int status = 0;
	pid_t child = fork();

	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		int fd = open(fifo, O_RDONLY);

		if (fd < 0)
			_exit(1);
		while (read(fd, line, sizeof(line)) < 0 && errno == EINTR)
			;
		_exit(7);
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			return 1;
		}
		atomic_fetch_add(&eintr, 1);
	}
	snprintf(text, sizeof(text), "status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return report(out, text);
}

static int read_mode(const char *fifo, const char *out)
{
	char line[64] = "", text[96];
	ssize_t n;
	int fd = open(fifo, O_RDWR);

	if (fd < 0) {
		perror(fifo);
		return 1;
	}
	while ((n = read(fd, line, sizeof(line) - 1)) < 0) {
		if (errno != EINTR) {
			perror("read");
			return 1;
		}
		atomic_fetch_add(&eintr, 1);
	}
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	snprintf(text, sizeof(text), "data %s", line);
	return report(out, text);
}

static atomic_int word;
static atomic_int woken;

static void *futex_waiter(void *arg)
{
	(void)arg;
	while (atomic_load(&word) == 0) {
		long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);

		if (r < 0 && errno == EINTR)
			atomic_fetch_add(&eintr, 1);
	}
	atomic_fetch_add(&woken, 1);
	return NULL;
}

static int futex_mode(const char *count, const char *out)
{
	int n = atoi(count), i, sig;
	pthread_t *threads = calloc(n > 0 ? n : 1, sizeof(*threads));
	char text[96];
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	/* Blocked in every thread: only sigwait() below takes it. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (n <= 0 || !threads)
		return 2;
	for (i = 0; i < n; i++)
		if (pthread_create(&threads[i], NULL, futex_waiter, NULL)) {
			perror("pthread_create");
			return 1;
		}
	if (sigwait(&set, &sig))
		return 1;
	atomic_store(&word, 1);
	syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	snprintf(text, sizeof(text), "woken %d", atomic_load(&woken));
	return report(out, text);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "wait"))
		return do_wait_mode(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "read"))
		return read_mode(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "futex"))
		return futex_mode(argv[2], argv[3]);
	fprintf(stderr, "usage: sleepers wait FIFO OUT | read FIFO OUT | futex N OUT\n");
	return 2;
}
