/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pipeline: the one door from a source into the spool. Every event a
 * source made goes through pipeline_emit, which holds what all sources
 * must do alike: an event too large for the spool with its fields goes
 * again without them, what the spool refuses even then is counted, and the
 * source's position (a file's offset, a journal cursor) advances past it
 * all the same. The source's processors (processors.h) run here first,
 * once per event, so that what they remove never reaches the spool; the
 * too-large fallback applies to the processed event. Their counters count
 * an event once it is through the door: one the spool had no room for
 * counts when it is offered again and taken.
 */
#ifndef LOGFERRY_PIPELINE_H
#define LOGFERRY_PIPELINE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/processors.h"
#include "agent/spool.h"
#include "proto/event.h"

/* Source marks (truncated, partial) an event keeps when it loses its fields. */
#define PIPELINE_MAX_MARKS 4

struct pipeline {
	struct spool *spool;
	struct processors *chain;    /* borrowed; NULL: no processing */
	const char *why;             /* parse_error of an event spooled without its fields */
	struct event_field raw[1 + PIPELINE_MAX_MARKS];
	uint64_t fields_dropped;     /* events spooled without their fields: too large with them */
	uint64_t dropped;            /* events the spool refused even without fields; skipped */
};

/*
 * Prepares p to hand events to spool through chain (the source's
 * agent_source.chain, borrowed; NULL: none); why (static text) says why
 * fields went.
 */
void pipeline_init(struct pipeline *p, struct spool *spool, const char *why,
    struct processors *chain);

/*
 * Hands ev to the spool with pos, the read position just after it (NULL:
 * the source has none), committed with it, after the chain: an event a
 * stage drops, or one that fails, is not spooled (the chain counts it) and
 * its position advances; that is a 0. The last nmarks (at most
 * PIPELINE_MAX_MARKS) fields of ev are the source's marks: an event too
 * large with its fields goes with a parse_error field saying why and these
 * marks alone. Returns 0 (spooled), -EAGAIN (no room now, nothing taken:
 * offer the same event again after the spool's writable callback), or
 * the spool's error for an event it refused even without fields: counted
 * in dropped, pos stored all the same (or the source would stall on it);
 * the caller logs it, naming what was skipped.
 */
static inline int pipeline_emit(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct spool_file *pos);

/*
 * pipeline_emit past its first step: with a chain, all of it; without,
 * what follows the spool's answer r (neither 0 nor -EAGAIN).
 */
int pipeline_emit_rest(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct spool_file *pos, int r);

/*
 * A file's line with no chain, the most common of all, costs one call when
 * it fits: the call to pipeline_emit was about 25 instructions per line
 * (the agent, callgrind).
 */
static inline int
pipeline_emit(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct spool_file *pos)
{
	int r = 0;

	if (p->chain == NULL && ((r = spool_append(p->spool, ev, pos)) == 0 || r == -EAGAIN))
		return r;
	return pipeline_emit_rest(p, ev, nmarks, pos, r);
}

/*
 * pipeline_emit for a source whose position is a cursor (the journal's):
 * name's cursor, committed with ev, is where the source is after it.
 */
int pipeline_emit_cursor(struct pipeline *p, const struct event *ev, size_t nmarks,
    const char *name, const char *cursor);

#endif
