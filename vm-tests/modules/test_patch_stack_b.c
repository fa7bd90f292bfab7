// SPDX-License-Identifier: GPL-2.0-only
#define STACK_TAG "B"
#include "test_patch_stack.h"
