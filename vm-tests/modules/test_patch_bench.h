/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * test_patch_bench.h - a patch of BENCH_NR_FUNCS benchmark functions from
 * BENCH_FIRST (default 0); the including file defines them.
 */
#include <linux/module.h>
#include "test_patch.h"
#include "sizes.h"
#include "targets.h"

#define BENCH_DECL(n) \
	static noinline u64 new_suture_bench_fn##n(u64 x) { return x + n + 1; }
BENCH_FUNCS(BENCH_DECL)

#define BENCH_ENTRY(n) { \
	.old_name = "suture_bench_fn" #n, \
	.old_addr = (unsigned long)&suture_bench_fn##n, \
	.old_size = SIZE_suture_bench_fn##n, \
	.new_func = new_suture_bench_fn##n, \
},

static struct suture_func all_funcs[] = { BENCH_FUNCS(BENCH_ENTRY) { } };
#ifndef BENCH_FIRST
#define BENCH_FIRST 0
#endif
static struct suture_func funcs[BENCH_NR_FUNCS + 1];

static int bench_prepare(void)
{
	memcpy(funcs, all_funcs + BENCH_FIRST, sizeof(funcs[0]) * BENCH_NR_FUNCS);
	return 0;
}

SUTURE_TEST_PATCH(bench_prepare());
