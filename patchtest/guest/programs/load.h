/* The runner shared by the programs of patchtest's default load
 * (patchtest/guest/load.sh runs them): `PROGRAM EXERCISER...` runs each
 * named exerciser once, in a child of its own under an alarm, so that one
 * that fails or hangs costs its round nothing but its time limit;
 * `NAME=ARG` passes ARG (a path, ...) to an exerciser that takes one. An
 * exerciser returns 0 when it did what it meant to; failures are reported
 * on stderr (the load discards it; run a program by hand to see them) and
 * in the exit status, which the load ignores: reaching kernel code is the
 * point, not the outcome of the calls.
 *
 * patchtest embeds these sources and compiles them on the host with
 * `-static` (the guest has busybox and no C library). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct exerciser {
	const char *name;
	int (*run)(const char *arg);
	/* The child's time limit; 0 for an exerciser that must finish what it
	 * started (it ignores SIGTERM and has no alarm) and bounds itself. */
	unsigned seconds;
};

/* The parameter of an exerciser that takes no argument. */
#define NO_ARG const char *no_arg __attribute__((unused))

#define WARN(...) fprintf(stderr, __VA_ARGS__)
#define FAIL(what) (WARN("%s: %s\n", (what), strerror(errno)), 1)

/* Wall-clock milliseconds since an arbitrary start. */
static inline long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Writes `text` to the file `path`; 0 or -1 with errno. */
static inline int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static int run_one(const struct exerciser *e, const char *arg)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return FAIL("fork");
	if (pid == 0) {
		if (e->seconds) {
			alarm(e->seconds);
		} else {
			signal(SIGTERM, SIG_IGN);
			signal(SIGINT, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
		}
		_exit(e->run(arg) ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return FAIL("waitpid");
	if (WIFSIGNALED(status)) {
		WARN("%s: killed by signal %d\n", e->name, WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status) != 0;
}

static inline int run_exercisers(int argc, char **argv, const struct exerciser *list, size_t n)
{
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s EXERCISER...; exercisers:", argv[0]);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %s", list[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		const char *arg = strchr(argv[a], '=');
		size_t len = arg ? (size_t)(arg - argv[a]) : strlen(argv[a]);
		size_t i;

		for (i = 0; i < n && (strlen(list[i].name) != len || strncmp(list[i].name, argv[a], len) != 0); i++)
			;
		if (i == n) {
			WARN("%s: no exerciser %s\n", argv[0], argv[a]);
			failed++;
			continue;
		}
		if (run_one(&list[i], arg ? arg + 1 : NULL)) {
			WARN("%s: %s failed\n", argv[0], argv[a]);
			failed++;
		}
	}
	return failed ? 1 : 0;
}

#define RUN(list) run_exercisers(argc, argv, (list), sizeof(list) / sizeof((list)[0]))
