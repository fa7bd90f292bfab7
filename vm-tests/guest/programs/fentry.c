// SPDX-License-Identifier: GPL-2.0-only
/*
 * fentry - attach a BPF fentry program to a kernel function while a
 * command runs, then say how often the program ran.
 *
 *   fentry FUNCTION -- COMMAND [ARG...]
 *
 * The program (r0 = 0; exit) is loaded for FUNCTION's BTF id in
 * /sys/kernel/btf/vmlinux and attached with BPF_RAW_TRACEPOINT_OPEN, which
 * makes the kernel build a BPF trampoline: an ftrace direct call on the
 * function, as suture's own redirect is. Prints "fentry: attached", runs
 * COMMAND, prints "fentry: runs N" (bpf_stats), and exits with COMMAND's
 * status. If the attach fails it prints "fentry: attach failed: ERRNO-NAME"
 * and exits 3 without running COMMAND. The guest has no libbpf or bpftool:
 * this is the bpf(2) system call by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* The whole of a file, or NULL. */
static unsigned char *slurp(const char *path, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	unsigned char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);
	ssize_t r;

	if (fd < 0 || !buf)
		return NULL;
	while ((r = read(fd, buf + n, cap - n)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				return NULL;
		}
	}
	close(fd);
	*len = n;
	return r < 0 ? NULL : buf;
}

/* Bytes of kind-specific data after a struct btf_type. */
static long btf_extra(const struct btf_type *t)
{
	unsigned int vlen = BTF_INFO_VLEN(t->info);

	switch (BTF_INFO_KIND(t->info)) {
	case BTF_KIND_INT:
	case BTF_KIND_VAR:
	case BTF_KIND_DECL_TAG:
		return 4;
	case BTF_KIND_ARRAY:
		return sizeof(struct btf_array);
	case BTF_KIND_STRUCT:
	case BTF_KIND_UNION:
		return vlen * sizeof(struct btf_member);
	case BTF_KIND_ENUM:
		return vlen * sizeof(struct btf_enum);
	case BTF_KIND_ENUM64:
		return vlen * sizeof(struct btf_enum64);
	case BTF_KIND_FUNC_PROTO:
		return vlen * sizeof(struct btf_param);
	case BTF_KIND_DATASEC:
		return vlen * sizeof(struct btf_var_secinfo);
	case BTF_KIND_PTR:
	case BTF_KIND_FWD:
	case BTF_KIND_TYPEDEF:
	case BTF_KIND_VOLATILE:
	case BTF_KIND_CONST:
	case BTF_KIND_RESTRICT:
	case BTF_KIND_FUNC:
	case BTF_KIND_FLOAT:
	case BTF_KIND_TYPE_TAG:
		return 0;
	default:
		return -1;
	}
}

/* The BTF id of the function @name in vmlinux, or 0. */
static uint32_t btf_func_id(const char *name)
{
	const struct btf_header *h;
	const unsigned char *types, *end;
	const char *strs;
	unsigned char *btf;
	uint32_t id = 1;
	size_t len;

	btf = slurp("/sys/kernel/btf/vmlinux", &len);
	if (!btf || len < sizeof(*h))
		return 0;
	h = (const struct btf_header *)btf;
	if (h->magic != BTF_MAGIC || h->hdr_len + h->str_off + h->str_len > len)
		return 0;
	types = btf + h->hdr_len + h->type_off;
	end = types + h->type_len;
	strs = (const char *)btf + h->hdr_len + h->str_off;
	while (types + sizeof(struct btf_type) <= end) {
		const struct btf_type *t = (const struct btf_type *)types;
		long extra = btf_extra(t);

		if (extra < 0)
			return 0;
		if (BTF_INFO_KIND(t->info) == BTF_KIND_FUNC && t->name_off < h->str_len &&
		    !strcmp(strs + t->name_off, name))
			return id;
		types += sizeof(*t) + extra;
		id++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* r0 = 0; exit */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct bpf_prog_info info;
	union bpf_attr attr;
	int prog, link, stats, status;
	uint32_t id;
	pid_t pid;

	if (argc < 4 || strcmp(argv[2], "--")) {
		fprintf(stderr, "usage: fentry FUNCTION -- COMMAND [ARG...]\n");
		return 2;
	}
	id = btf_func_id(argv[1]);
	if (!id) {
		fprintf(stderr, "fentry: no function %s in /sys/kernel/btf/vmlinux\n", argv[1]);
		return 2;
	}

	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	stats = sys_bpf(BPF_ENABLE_STATS, &attr);
	if (stats < 0) {
		perror("fentry: BPF_ENABLE_STATS");
		return 2;
	}

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_TRACING;
	attr.expected_attach_type = BPF_TRACE_FENTRY;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (uintptr_t)"GPL";
	attr.attach_btf_id = id;
	prog = sys_bpf(BPF_PROG_LOAD, &attr);
	if (prog < 0) {
		perror("fentry: BPF_PROG_LOAD");
		return 2;
	}

	memset(&attr, 0, sizeof(attr));
	attr.raw_tracepoint.prog_fd = prog;
	link = sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &attr);
	if (link < 0) {
		printf("fentry: attach failed: %s\n", strerror(errno));
		fflush(stdout);
		return 3;
	}
	printf("fentry: attached\n");
	fflush(stdout);

	pid = fork();
	if (pid < 0) {
		perror("fentry: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[3], argv + 3);
		perror("fentry: exec");
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("fentry: waitpid");
		return 2;
	}

	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = prog;
	attr.info.info_len = sizeof(info);
	attr.info.info = (uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) {
		perror("fentry: BPF_OBJ_GET_INFO_BY_FD");
		return 2;
	}
	printf("fentry: runs %llu\n", (unsigned long long)info.run_cnt);
	close(link);
	close(prog);
	close(stats);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
