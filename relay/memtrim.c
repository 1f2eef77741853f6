/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

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
	atomic_init(&m->peak, 0);
	m->last = 0;
}

void
memtrim_opened(struct memtrim *m, uint64_t open)
{
	uint64_t peak = atomic_load_explicit(&m->peak, memory_order_relaxed);

	while (open > peak &&
	    !atomic_compare_exchange_weak_explicit(&m->peak, &peak, open, memory_order_relaxed,
	    memory_order_relaxed))
		;
}

bool
memtrim_due(struct memtrim *m, uint64_t open)
{
	bool falling = open < m->last;
	uint64_t peak, drop;

	m->last = open;
	memtrim_opened(m, open);
	peak = atomic_load_explicit(&m->peak, memory_order_relaxed);
	drop = peak - open;
	if (falling || drop < MEMTRIM_MIN_DROP || drop < peak / MEMTRIM_PART_OF_PEAK)
		return false;
	/*
	 * The next peak counts from here. A connection accepted between the
	 * load and this store is forgotten by the peak, but counted by the
	 * next sample if it is still open: at worst one connection's memory.
	 */
	atomic_store_explicit(&m->peak, open, memory_order_relaxed);
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
