/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "relay/memtrim.h"

#ifdef HAVE_JEMALLOC
/*
 * jemalloc's, declared here rather than from <jemalloc/jemalloc.h> and weak:
 * the relay links jemalloc, but unit tests that link the relay's library
 * without it still link, and then glibc's trim is the one that applies.
 */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));
/* MALLCTL_ARENAS_ALL of jemalloc 5: every arena. */
#define MEMTRIM_ARENAS_ALL 4096
#endif

void
memtrim_init(struct memtrim *m)
{
	memset(m, 0, sizeof(*m));
}

bool
memtrim_due(struct memtrim *m, uint64_t open)
{
	bool falling = open < m->last;
	uint64_t drop;

	m->last = open;
	if (open > m->peak)
		m->peak = open;
	drop = m->peak - open;
	if (falling || drop < MEMTRIM_MIN_DROP || drop < m->peak / MEMTRIM_PART_OF_PEAK)
		return false;
	m->peak = open;
	return true;
}

int
memtrim_release(void)
{
#ifdef HAVE_JEMALLOC
	if (mallctl != NULL) {
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "arena.%d.purge", MEMTRIM_ARENAS_ALL);
		/* This thread's cache holds freed blocks too; they go back to the arenas first. */
		if ((rc = mallctl("thread.tcache.flush", NULL, NULL, NULL, 0)) != 0 && rc != ENOENT)
			return -rc;
		rc = mallctl(name, NULL, NULL, NULL, 0);
		return rc != 0 ? -rc : 0;
	}
#endif
	/* Its result says whether anything was returned, which is no error either way. */
	(void)malloc_trim(0);
	return 0;
}
