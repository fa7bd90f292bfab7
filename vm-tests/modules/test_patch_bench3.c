// SPDX-License-Identifier: GPL-2.0-only
/* fn3 alone: the benchmark enables it with direct=0, the ftrace handler path. */
#define BENCH_FIRST 3
#define BENCH_NR_FUNCS 1
#include "test_patch_bench.h"
