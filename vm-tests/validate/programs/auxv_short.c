// SPDX-License-Identifier: Apache-2.0 OR MIT
/*
 * auxv_short: replaces the process's saved auxiliary vector with a short
 * one (one entry, no AT_NULL of its own) through prctl(PR_SET_MM_AUXV)
 * and counts the entries /proc/self/auxv then shows before AT_NULL.
 * Exits 0 when it shows exactly the one entry (kernel fixed by "prctl: fix
 * PR_SET_MM_AUXV losing the forced AT_NULL terminator"), 1 when stale
 * entries follow it, 2 when the test could not run. Needs
 * CAP_SYS_RESOURCE.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(void)
{
	unsigned long entry[2] = { AT_UID, 4242 };
	unsigned long auxv[2 * 64];
	ssize_t len;
	int fd, n = 0;

	if (prctl(PR_SET_MM, PR_SET_MM_AUXV, (unsigned long)entry, sizeof(entry), 0)) {
		perror("prctl(PR_SET_MM_AUXV)");
		return 2;
	}
	fd = open("/proc/self/auxv", O_RDONLY);
	if (fd < 0) {
		perror("/proc/self/auxv");
		return 2;
	}
	len = read(fd, auxv, sizeof(auxv));
	close(fd);
	if (len < (ssize_t)sizeof(entry))
		return 2;
	while ((size_t)(2 * n + 1) * sizeof(auxv[0]) < (size_t)len && auxv[2 * n] != AT_NULL)
		n++;
	printf("after setting a 1-entry auxv, /proc/self/auxv shows %d entr%s before AT_NULL\n",
	       n, n == 1 ? "y" : "ies");
	return n == 1 ? 0 : 1;
}
