/* Exercisers of memory management for patchtest's default load (class mm
 * of patchtest/guest/load.sh):
 *
 *   userfault   a thread faults on a page registered with userfaultfd
 *               (missing mode) and sleeps in handle_userfault until the
 *               page is filled with UFFDIO_COPY
 *   process-vm  process_vm_readv and process_vm_writev on a child's memory
 *               and on our own (process_vm_rw_core)
 *   swapon      swapon(2) of a path that does not exist, by the 64-bit and
 *               the 32-bit (int 0x80) system call: both entry points run
 *               and fail with ENOENT, nothing is enabled
 *   mmap        anonymous memory mapped, touched, protected, remapped,
 *               locked, advised away and unmapped
 */
#include "load.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

/* --- userfault --- */

static volatile char *fault_at;

static void *toucher(void *arg)
{
	(void)arg;
	return (void *)(long)fault_at[0]; /* faults: sleeps until filled */
}

static int ex_userfault(NO_ARG)
{
	long page = sysconf(_SC_PAGESIZE);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	struct uffd_msg msg;
	struct pollfd pfd;
	pthread_t thread;
	char *area, *source;
	int uffd, rc = 0;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return FAIL("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api) != 0) {
		rc = FAIL("UFFDIO_API");
		close(uffd);
		return rc;
	}
	area = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	source = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || source == MAP_FAILED) {
		close(uffd);
		return FAIL("mmap");
	}
	memset(source, 0x5a, page);
	reg.range.start = (unsigned long)area;
	reg.range.len = page;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
		rc = FAIL("UFFDIO_REGISTER");
		close(uffd);
		return rc;
	}
	fault_at = area;
	if (pthread_create(&thread, NULL, toucher, NULL) != 0) {
		close(uffd);
		return FAIL("pthread_create");
	}
	pfd.fd = uffd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 3000) == 1 && read(uffd, &msg, sizeof(msg)) == sizeof(msg) &&
	    msg.event == UFFD_EVENT_PAGEFAULT) {
		struct uffdio_copy copy = {
			.dst = msg.arg.pagefault.address & ~(unsigned long)(page - 1),
			.src = (unsigned long)source,
			.len = page,
		};

		if (ioctl(uffd, UFFDIO_COPY, &copy) != 0)
			rc = FAIL("UFFDIO_COPY");
	} else {
		WARN("userfault: no fault reported\n");
		rc = 1;
	}
	/* Closing the descriptor wakes a thread still waiting, if any. */
	close(uffd);
	pthread_join(thread, NULL);
	munmap(area, page);
	munmap(source, page);
	return rc;
}

/* --- process-vm --- */

static int ex_process_vm(NO_ARG)
{
	static char theirs[8192] = "patchtest process_vm";
	char mine[8192];
	struct iovec local = { mine, sizeof(mine) }, remote = { theirs, sizeof(theirs) };
	int rc = 0, in[2];
	pid_t pid;

	/* A child with the same addresses, waiting for us to finish. */
	if (pipe(in) != 0)
		return FAIL("pipe");
	pid = fork();
	if (pid < 0)
		return FAIL("fork");
	if (pid == 0) {
		char c;

		close(in[1]);
		(void)!read(in[0], &c, 1);
		_exit(0);
	}
	close(in[0]);
	for (int i = 0; i < 8; i++) {
		if (process_vm_readv(pid, &local, 1, &remote, 1, 0) < 0)
			rc = FAIL("process_vm_readv");
		if (process_vm_writev(pid, &local, 1, &remote, 1, 0) < 0)
			rc = FAIL("process_vm_writev");
		if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) < 0)
			rc = FAIL("process_vm_readv self");
	}
	close(in[1]);
	waitpid(pid, NULL, 0);
	return rc;
}

/* --- swapon --- */

static const char missing[] = "/nonexistent/patchtest-swap";

static int ex_swapon(NO_ARG)
{
	char *low;
	long rc;

	if (syscall(SYS_swapon, missing, 0) == 0 || errno != ENOENT)
		WARN("swapon: %s\n", strerror(errno));
	/* The 32-bit system call takes 32-bit pointers: the path below 4 GiB. */
	low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED)
		return FAIL("mmap below 4 GiB");
	memcpy(low, missing, sizeof(missing));
	/* i386 swapon is system call 87. */
	__asm__ volatile("int $0x80"
			 : "=a"(rc)
			 : "a"(87L), "b"(low), "c"(0L)
			 : "memory", "r8", "r9", "r10", "r11");
	if (rc != -ENOENT)
		WARN("swapon (32-bit): %ld\n", rc);
	munmap(low, 4096);
	return 0;
}

/* --- mmap --- */

static int ex_mmap(NO_ARG)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = 64 * page;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	if (p == MAP_FAILED)
		return FAIL("mmap");
	memset(p, 1, len);
	mprotect(p, len / 2, PROT_READ);
	mprotect(p, len / 2, PROT_READ | PROT_WRITE);
	if (mlock(p, 4 * page) == 0)
		munlock(p, 4 * page);
	madvise(p, len / 4, MADV_DONTNEED);
	madvise(p + len / 4, len / 4, MADV_FREE);
	q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		q = p;
	else
		len *= 2;
	memset(q, 2, len);
	msync(q, len, MS_ASYNC);
	munmap(q, len);
	return 0;
}

static const struct exerciser exercisers[] = {
	{ "userfault", ex_userfault, 10 },
	{ "process-vm", ex_process_vm, 10 },
	{ "swapon", ex_swapon, 10 },
	{ "mmap", ex_mmap, 10 },
};

int main(int argc, char **argv)
{
	return RUN(exercisers);
}
