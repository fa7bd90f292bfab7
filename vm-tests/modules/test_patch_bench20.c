// SPDX-License-Identifier: GPL-2.0-only
#define BENCH_NR_FUNCS 20
#include "test_patch_bench.h"
