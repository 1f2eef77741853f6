/* SPDX-License-Identifier: Apache-2.0 */
/*
 * alloc_count: counts the allocations a unit test's program makes, for
 * tests that prove a hot path makes none. The program links with
 * -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc, so that
 * logferry's code calls the wrappers of alloc_count.c.
 */
#ifndef LOGFERRY_ALLOC_COUNT_H
#define LOGFERRY_ALLOC_COUNT_H

#include <stdbool.h>

/* Calls of malloc, calloc and realloc so far. */
unsigned long alloc_count(void);

/*
 * From now on every malloc, calloc and realloc fails (returns NULL) while
 * fail is true: for tests that prove what running out of memory does. Only
 * the calling thread should allocate meanwhile.
 */
void alloc_fail(bool fail);

#endif
