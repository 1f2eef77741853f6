/* SPDX-License-Identifier: Apache-2.0 */
/*
 * memtrim: gives the memory of closed agent connections back to the system
 * (docs/performance.md "Idle agents on one relay").
 *
 * An idle agent costs the relay about 20 KiB resident (the touched part of
 * mbedtls's two 16.5 KiB record buffers, its context and the peer's
 * certificate, our state). When thousands leave at once (a network cut, a
 * fleet restart), mbedtls wipes each connection's record buffers as it
 * frees them, which makes them wholly resident for a moment (10,000
 * agents: about 480 MiB), and the allocator keeps the freed pages: glibc's
 * malloc returns only the top of each arena's heap, and jemalloc's dirty
 * pages decay only while the arena keeps allocating. So a relay that once
 * held 10,000 agents would keep their memory for good.
 *
 * memtrim_due decides, from the number of open connections sampled about
 * once a second, when to ask: the count fell by a large part of its peak
 * since the last trim, and stopped falling (the storm is over, so one
 * trim covers it). The peak is raised at every accepted connection
 * (memtrim_opened), not only at the samples: agents that came and went
 * between two samples left their memory behind all the same. memtrim_release asks the allocator the relay is built
 * with: jemalloc purges every arena, glibc trims every arena. Neither is
 * ever on a connection's path: one call per mass disconnect.
 */
#ifndef LOGFERRY_MEMTRIM_H
#define LOGFERRY_MEMTRIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A trim is due once at least this many connections closed since the peak... */
#define MEMTRIM_MIN_DROP 256
/* ...and at least this part of the peak (1/MEMTRIM_PART_OF_PEAK). */
#define MEMTRIM_PART_OF_PEAK 4

struct memtrim {
	_Atomic uint64_t peak;   /* most connections open since the last trim */
	uint64_t last;           /* open at the previous sample (the sampler's own) */
};

void memtrim_init(struct memtrim *m);

/* Any thread, at each accepted connection: `open` counts it. */
void memtrim_opened(struct memtrim *m, uint64_t open);

/*
 * One sample of the number of open connections. Returns true when a trim
 * is due now (and starts counting the next peak from `open`).
 */
bool memtrim_due(struct memtrim *m, uint64_t open);

/*
 * Returns freed memory to the system: jemalloc's arena.<all>.purge when the
 * relay is linked with it (HAVE_JEMALLOC), else glibc's malloc_trim(0).
 * Returns 0, or a negative errno from jemalloc's mallctl.
 */
int memtrim_release(void);

#endif
