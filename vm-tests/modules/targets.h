/* SPDX-License-Identifier: GPL-2.0-only */
/* targets.h - functions of the test-target modules that the test patches replace. */
#ifndef _SUTURE_TEST_TARGETS_H
#define _SUTURE_TEST_TARGETS_H

#include <linux/types.h>
#include "bench_funcs.h"

int suture_target_value(void);
void suture_target_sleep(void);
void suture_target_hold(void);
int suture_target_wait(void);
int suture_target_notrace(void);

#define BENCH_PROTO(n) u64 suture_bench_fn##n(u64 x);
BENCH_FUNCS(BENCH_PROTO)

#endif
