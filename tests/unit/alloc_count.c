/* SPDX-License-Identifier: Apache-2.0 */
/* Counting wrappers of the malloc family for unit tests (see alloc_count.h). */
#include "autoconfig.h"

#include <stddef.h>

#include "tests/unit/alloc_count.h"

static unsigned long alloc_count_calls;
static bool alloc_count_failing;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

void *
__wrap_malloc(size_t n)
{
	alloc_count_calls++;
	return alloc_count_failing ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	alloc_count_calls++;
	return alloc_count_failing ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
	alloc_count_calls++;
	return alloc_count_failing ? NULL : __real_realloc(p, n);
}

void
alloc_fail(bool fail)
{
	alloc_count_failing = fail;
}

unsigned long
alloc_count(void)
{
	return alloc_count_calls;
}
