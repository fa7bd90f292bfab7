/* Exercisers of the core kernel for patchtest's default load (classes
 * kernel, hotplug, bpf and audit of patchtest/guest/load.sh):
 *
 *   cputimers  CPU-time clocks: clock_nanosleep and periodic POSIX timers
 *              on the process and thread clocks while a thread spins
 *              (do_cpu_nanosleep, posix_cpu_timer_set/rearm/del, ...)
 *   futex      a thread exits holding a robust mutex: the kernel walks its
 *              robust list (handle_futex_death) and wakes the waiter
 *   ptrace     a child traced syscall by syscall (PTRACE_SYSCALL:
 *              syscall_trace_enter, ptrace_stop, ...)
 *   bpf        a socket-filter program that reserves and submits a BPF
 *              ring buffer record, run by BPF_PROG_TEST_RUN
 *   audit      audit enabled with one syscall rule for a child's getppid,
 *              then the rule and audit removed again (audit_log_exit, ...)
 *   hotplug    the last CPU offline and online again, and the hotplug
 *              state table read (cpuhp callbacks, tick and clockevents
 *              hand-over); it brings the CPU back whatever signal comes
 */
#include "load.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* --- cputimers --- */

static atomic_int spin_stop;
static volatile sig_atomic_t ticks;

static void *spinner(void *arg)
{
	(void)arg;
	while (!atomic_load(&spin_stop))
		;
	return NULL;
}

static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

/* A periodic timer of `clock` (1 ms interval) that delivers SIGUSR1: each
 * delivery rearms it. Spins on this thread until two ticks or 300 ms. */
static int periodic_timer(clockid_t clock)
{
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
	struct itimerspec its = { { 0, 1000000 }, { 0, 1000000 } };
	timer_t t;
	long long end = now_ms() + 300;

	if (timer_create(clock, &ev, &t) != 0)
		return FAIL("timer_create");
	ticks = 0;
	if (timer_settime(t, 0, &its, NULL) != 0) {
		timer_delete(t);
		return FAIL("timer_settime");
	}
	while (ticks < 2 && now_ms() < end)
		;
	timer_gettime(t, &its);
	timer_delete(t);
	return 0;
}

static int ex_cputimers(NO_ARG)
{
	struct sigaction sa = { .sa_handler = on_tick };
	struct timespec rel = { 0, 2000000 }, now;
	pthread_t thread;
	int rc = 0;

	sigaction(SIGUSR1, &sa, NULL);
	atomic_store(&spin_stop, 0);
	if (pthread_create(&thread, NULL, spinner, NULL) != 0)
		return FAIL("pthread_create");
	/* The process clock advances while the spinner runs. */
	if (clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, 0, &rel, NULL) != 0)
		rc = FAIL("clock_nanosleep");
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now) == 0) {
		now.tv_nsec += 2000000;
		if (now.tv_nsec >= 1000000000) {
			now.tv_sec++;
			now.tv_nsec -= 1000000000;
		}
		clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, &now, NULL);
	}
	rc |= periodic_timer(CLOCK_PROCESS_CPUTIME_ID);
	atomic_store(&spin_stop, 1);
	pthread_join(thread, NULL);
	rc |= periodic_timer(CLOCK_THREAD_CPUTIME_ID);
	return rc;
}

/* --- futex --- */

static pthread_mutex_t robust;

static void *die_holding(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&robust);
	return NULL; /* exits with the mutex held */
}

static int ex_futex(NO_ARG)
{
	pthread_mutexattr_t attr;
	pthread_t thread;
	int rc = 0;

	for (int i = 0; i < 4; i++) {
		pthread_mutexattr_init(&attr);
		pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(&robust, &attr);
		if (pthread_create(&thread, NULL, die_holding, NULL) != 0)
			return FAIL("pthread_create");
		pthread_join(thread, NULL);
		/* The kernel marked the owner dead when the thread exited. */
		if (pthread_mutex_lock(&robust) == EOWNERDEAD)
			pthread_mutex_consistent(&robust);
		else
			rc = 1;
		pthread_mutex_unlock(&robust);
		pthread_mutex_destroy(&robust);
		pthread_mutexattr_destroy(&attr);
	}
	if (rc)
		WARN("futex: the owner's death was not reported\n");
	return rc;
}

/* --- ptrace --- */

static int ex_ptrace(NO_ARG)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return FAIL("fork");
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		for (int i = 0; i < 16; i++)
			getppid();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return FAIL("ptrace: the child did not stop");
	}
	/* The child dies with the tracer, never left stopped. */
	ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)(PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD));
	for (int i = 0; i < 200; i++) {
		if (ptrace(PTRACE_SYSCALL, pid, NULL, NULL) != 0)
			break;
		if (waitpid(pid, &status, 0) != pid || WIFEXITED(status) || WIFSIGNALED(status))
			return 0;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

/* --- bpf --- */

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

static int ex_bpf(NO_ARG)
{
	union bpf_attr attr;
	char log[4096] = "", packet[64] = { 0 };
	int map, prog, rc = 0;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_RINGBUF;
	attr.max_entries = 4096;
	map = bpf(BPF_MAP_CREATE, &attr);
	if (map < 0)
		return FAIL("bpf: ring buffer map");
	/* r0 = bpf_ringbuf_reserve(map, 8, 0); if (r0) bpf_ringbuf_submit(r0, 0);
	 * return 0; */
	struct bpf_insn insns[] = {
		INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map),
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 8),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_reserve),
		INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 3, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_submit),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (unsigned long)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (unsigned long)"GPL";
	attr.log_buf = (unsigned long)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	prog = bpf(BPF_PROG_LOAD, &attr);
	if (prog < 0) {
		rc = FAIL("bpf: program load");
		WARN("%s\n", log);
		close(map);
		return rc;
	}
	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = prog;
	attr.test.data_in = (unsigned long)packet;
	attr.test.data_size_in = sizeof(packet);
	attr.test.repeat = 16;
	if (bpf(BPF_PROG_TEST_RUN, &attr) != 0)
		rc = FAIL("bpf: test run");
	close(prog);
	close(map);
	return rc;
}

/* --- audit --- */

static int audit_send(int fd, int type, const void *data, size_t len)
{
	struct {
		struct nlmsghdr h;
		char data[sizeof(struct audit_rule_data) + 64];
	} msg;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	char reply[8192];
	struct nlmsghdr *r = (struct nlmsghdr *)reply;
	long long end = now_ms() + 2000;

	memset(&msg, 0, sizeof(msg));
	msg.h.nlmsg_len = NLMSG_LENGTH(len);
	msg.h.nlmsg_type = type;
	msg.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	msg.h.nlmsg_seq = type;
	memcpy(NLMSG_DATA(&msg.h), data, len);
	if (sendto(fd, &msg, msg.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -1;
	/* Wait for the acknowledgement (NLMSG_ERROR, 0 on success). */
	while (now_ms() < end) {
		ssize_t n = recv(fd, reply, sizeof(reply), MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN)
				return -1;
			sleep_ms(1);
			continue;
		}
		if (NLMSG_OK(r, (size_t)n) && r->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = NLMSG_DATA(r);

			errno = -e->error;
			return e->error ? -1 : 0;
		}
	}
	errno = ETIMEDOUT;
	return -1;
}

static int audit_enable(int fd, unsigned enabled)
{
	struct audit_status s = { .mask = AUDIT_STATUS_ENABLED, .enabled = enabled };

	return audit_send(fd, AUDIT_SET, &s, sizeof(s));
}

static int ex_audit(NO_ARG)
{
	struct audit_rule_data rule;
	int fd, rc = 0;
	pid_t pid;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
	if (fd < 0)
		return FAIL("audit: netlink socket");
	/* exit,always for x86-64 getppid. */
	memset(&rule, 0, sizeof(rule));
	rule.flags = AUDIT_FILTER_EXIT;
	rule.action = AUDIT_ALWAYS;
	rule.field_count = 1;
	rule.fields[0] = AUDIT_ARCH;
	rule.fieldflags[0] = AUDIT_EQUAL;
	rule.values[0] = AUDIT_ARCH_X86_64;
	rule.mask[SYS_getppid / 32] |= 1u << (SYS_getppid % 32);
	if (audit_enable(fd, 1) != 0) {
		rc = FAIL("audit: enable");
		close(fd);
		return rc;
	}
	if (audit_send(fd, AUDIT_ADD_RULE, &rule, sizeof(rule)) != 0 && errno != EEXIST)
		rc = FAIL("audit: add rule");
	/* A task forked while audit is on has an audit context. */
	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 4; i++)
			syscall(SYS_getppid);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	audit_send(fd, AUDIT_DEL_RULE, &rule, sizeof(rule));
	if (audit_enable(fd, 0) != 0)
		rc = FAIL("audit: disable");
	close(fd);
	return rc;
}

/* --- hotplug --- */

static int cpu_online(int cpu, int on)
{
	char path[80];

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
	return write_file(path, on ? "1" : "0");
}

static int ex_hotplug(NO_ARG)
{
	char path[80], buf[4096];
	int cpu, fd;

	/* The hotplug state table (states_show). */
	fd = open("/sys/devices/system/cpu/hotplug/states", O_RDONLY);
	if (fd >= 0) {
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
	}
	/* The highest CPU that can go offline (the boot CPU cannot). */
	for (cpu = 63; cpu > 0; cpu--) {
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
		if (access(path, W_OK) == 0)
			break;
	}
	if (cpu == 0) {
		WARN("hotplug: no CPU to take offline\n");
		return 1;
	}
	if (cpu_online(cpu, 0) != 0)
		return FAIL("hotplug: offline");
	/* Back online: a busy hotplug lock can make the write fail for a
	 * while; retried for up to a minute (load.sh's stop tries again). */
	for (int i = 0; cpu_online(cpu, 1) != 0; i++) {
		if (i == 6000)
			return FAIL("hotplug: online");
		sleep_ms(10);
	}
	return 0;
}

static const struct exerciser exercisers[] = {
	{ "cputimers", ex_cputimers, 10 },
	{ "futex", ex_futex, 10 },
	{ "ptrace", ex_ptrace, 10 },
	{ "bpf", ex_bpf, 10 },
	/* Never stopped between enabling audit and disabling it again: its
	 * netlink requests wait 2 s at most. */
	{ "audit", ex_audit, 0 },
	{ "hotplug", ex_hotplug, 0 },
};

int main(int argc, char **argv)
{
	return RUN(exercisers);
}
