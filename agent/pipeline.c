/* SPDX-License-Identifier: Apache-2.0 */
/* pipeline: the one door from a source into the spool (see pipeline.h). */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>

#include "agent/pipeline.h"

void
pipeline_init(struct pipeline *p, struct spool *spool, const char *why, struct processors *chain)
{
	memset(p, 0, sizeof(*p));
	p->spool = spool;
	p->chain = chain;
	p->why = why;
}

/* ev with a parse_error field and its last nmarks fields alone, into *raw. */
static void
pipeline_raw(struct pipeline *p, const struct event *ev, size_t nmarks, struct event *raw)
{
	struct event_field *f = p->raw;

	if (nmarks > PIPELINE_MAX_MARKS)
		nmarks = PIPELINE_MAX_MARKS;
	if (nmarks > ev->nfields)
		nmarks = ev->nfields;
	*raw = *ev;
	raw->static_keys = false;
	memset(&f[0], 0, sizeof(f[0]));
	f[0].key = (struct pbslice){ (const uint8_t *)"parse_error", 11 };
	f[0].type = EVENT_TEXT;
	f[0].v.text = (struct pbslice){ (const uint8_t *)p->why, strlen(p->why) };
	if (nmarks > 0)
		memcpy(&f[1], &ev->fields[ev->nfields - nmarks], nmarks * sizeof(f[0]));
	raw->fields = f;
	raw->nfields = 1 + nmarks;
}

/* Where the source is after an event: a file's position, a named cursor, or nowhere. */
struct pipeline_at {
	const struct spool_file *file;
	const char *name, *cursor;
};

static int
pipeline_append(struct pipeline *p, const struct event *ev, const struct pipeline_at *at)
{
	if (at->cursor != NULL)
		return spool_append_cursor(p->spool, ev, at->name, at->cursor);
	return spool_append(p->spool, ev, at->file);
}

static int
pipeline_advance(struct pipeline *p, const struct pipeline_at *at)
{
	if (at->cursor != NULL)
		return spool_set_cursor(p->spool, at->name, at->cursor);
	if (at->file != NULL)
		return spool_set_position(p->spool, at->file);
	return 0;
}

/* What follows the spool's answer r to ev (other than 0 and -EAGAIN). */
static int
pipeline_refused(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct pipeline_at *at, int r)
{
	struct event raw;

	if (r == -EMSGSIZE) {
		/* Fields can make an event larger than its message; the message alone may fit. */
		pipeline_raw(p, ev, nmarks, &raw);
		if ((r = pipeline_append(p, &raw, at)) == 0)
			p->fields_dropped++;
	}
	if (r == 0 || r == -EAGAIN)
		return r;
	/* Its position still advances, or the source would stall on it forever. */
	if (pipeline_advance(p, at) == -EAGAIN)
		return -EAGAIN;
	p->dropped++;
	return r;
}

static int
pipeline_through(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct pipeline_at *at)
{
	const struct event *done;
	struct event own;
	size_t marks;
	int r;

	if (p->chain != NULL) {
		/* A drop or a failure (logged by the chain) leaves nothing to spool. */
		if (processors_run(p->chain, ev, nmarks, &done, &marks) != PROCESSORS_KEEP)
			return pipeline_advance(p, at) == -EAGAIN ? -EAGAIN : 0;
		nmarks = marks;
		/*
		 * The chain's keys (a configuration's, its arena's) are no
		 * literals, and its origin may not be the source's (require's
		 * dead-letter stream).
		 */
		own = *done;
		own.static_keys = false;
		own.origin_gen = 0;
		ev = &own;
	}
	r = pipeline_append(p, ev, at);
	if (r == 0 || r == -EAGAIN)
		return r;
	return pipeline_refused(p, ev, nmarks, at, r);
}

static int
pipeline_door(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct pipeline_at *at)
{
	int r = pipeline_through(p, ev, nmarks, at);

	/*
	 * -EAGAIN: nothing taken, and the source offers the same event again,
	 * which the chain runs again: its stages count it then, once.
	 */
	if (r != -EAGAIN && p->chain != NULL)
		processors_count(p->chain);
	return r;
}

int
pipeline_emit_rest(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct spool_file *pos, int r)
{
	const struct pipeline_at at = { pos, NULL, NULL };

	if (p->chain == NULL)
		return pipeline_refused(p, ev, nmarks, &at, r);
	return pipeline_door(p, ev, nmarks, &at);
}

int
pipeline_emit_cursor(struct pipeline *p, const struct event *ev, size_t nmarks,
    const char *name, const char *cursor)
{
	const struct pipeline_at at = { NULL, name, cursor };

	return pipeline_door(p, ev, nmarks, &at);
}
