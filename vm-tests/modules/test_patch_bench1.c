// SPDX-License-Identifier: GPL-2.0-only
#define BENCH_NR_FUNCS 1
#include "test_patch_bench.h"
