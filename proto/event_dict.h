/* SPDX-License-Identifier: Apache-2.0 */
/*
 * event_dict: the writer's side of event format 2 (docs/architecture.md
 * "Event formats"): an append-only table giving field names and origins
 * (host, stream, source) ids, and the encoding of events with them.
 *
 * One thread (the agent's loop) adds and encodes; entries never change
 * once added, so another thread may read the entries whose ids it was
 * handed (through a mutex) to write a Dict of them. Bounded: at most
 * EVENT_MAX_KEY_ID keys, EVENT_MAX_ORIGIN_ID origins and arena_bytes of
 * names, allocated once; beyond that, a name or origin is written
 * literally, as format 1 writes every one, which format 2 allows.
 */
#ifndef LOGFERRY_EVENT_DICT_H
#define LOGFERRY_EVENT_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/event.h"

/* The ids some events use: bit id of word id / 64. */
struct event_dict_used {
	uint64_t keys[(EVENT_MAX_KEY_ID + 64) / 64];
	uint64_t origins[(EVENT_MAX_ORIGIN_ID + 64) / 64];
};

struct event_dict;

/* A table whose names take at most arena_bytes; NULL when out of memory. */
struct event_dict *event_dict_new(size_t arena_bytes);

void event_dict_free(struct event_dict *d);

/*
 * The event format event_dict_encode writes: EVENT_FORMAT_2 (a new
 * table's) or EVENT_FORMAT_3 (fields packed where they can be).
 */
void event_dict_set_format(struct event_dict *d, int format);

/*
 * Appends ev to out as one element of a format-2 EventList, its keys and
 * origin by id where the table has or takes them, and sets their bits in
 * used. Returns what event_encode returns; on error out is unchanged (the
 * table may have taken ev's names, and used their ids: a Dict then holds
 * an entry no event uses, which costs only its bytes).
 */
int event_dict_encode(struct event_dict *d, const struct event *ev, struct event_dict_used *used,
    struct buf *out);

/*
 * Appends to out the Dict (an EventList element) of the entries set in
 * used, which must be ids d gave. Returns 0, -EMSGSIZE or -ENOMEM.
 */
int event_dict_write(const struct event_dict *d, const struct event_dict_used *used,
    struct buf *out);

/* dst |= src. */
void event_dict_used_add(struct event_dict_used *dst, const struct event_dict_used *src);

#endif
