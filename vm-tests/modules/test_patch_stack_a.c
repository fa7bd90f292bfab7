// SPDX-License-Identifier: GPL-2.0-only
#define STACK_TAG "A"
#include "test_patch_stack.h"
