/* SPDX-License-Identifier: Apache-2.0 */
/*
 * event_json: an event as the JSON record of docs/architecture.md "Kafka record":
 * {"ts","host","agent","stream","source","message","fields":{...}}, with
 * slices resolved against the message and every string valid UTF-8. A
 * message that is not valid UTF-8 also comes as "message_b64", its bytes in
 * base64, right after "message".
 */
#ifndef LOGFERRY_EVENT_JSON_H
#define LOGFERRY_EVENT_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/event.h"

/*
 * Appends ev's record to out. agent may be NULL (the member is left out).
 * extra, when not NULL, is raw JSON members inserted after "agent" (e.g.
 * "\"seq\":42"). Returns 0, or -EMSGSIZE when out cannot hold it (its cap,
 * or no memory); out is then restored to its previous length.
 */
int event_json(const struct event *ev, const char *agent, const char *extra, struct buf *out);

/* How event_json_as names the members of "fields". */
enum event_json_names {
	EVENT_JSON_NAMES_ORIGINAL,    /* as the event has them */
	/*
	 * Hive/Parquet column names: ASCII letters lower-cased, digits and '_'
	 * kept, each run of other bytes one '_'; a '_' before a name that would
	 * start with a digit or be empty; a name already taken in the record
	 * gets the first of _2, _3, ... not taken yet, in field order.
	 */
	EVENT_JSON_NAMES_HIVE,
};

/*
 * The most fields EVENT_JSON_NAMES_HIVE renders, as many as the relay
 * decodes in one event: the names taken are kept in a table on the stack,
 * so that a record costs no allocation.
 */
#define EVENT_JSON_HIVE_MAX_FIELDS 1024

/*
 * event_json with its field names as names says. Returns 0, -EMSGSIZE (as
 * event_json), or -E2BIG for Hive names of more than
 * EVENT_JSON_HIVE_MAX_FIELDS fields; out is then restored.
 */
int event_json_as(const struct event *ev, const char *agent, const char *extra,
    enum event_json_names names, struct buf *out);

/*
 * What event_json_cached keeps from the records before: the members
 * before "message" (host, agent, stream, source) of the last one, and the
 * field names of the last EVENT_JSON_CACHE_SETS different sets of names,
 * rendered, beside the bytes they were rendered from. A connection's
 * events mostly repeat them (one source's events share host, stream and
 * source), but a parser leaves out what a line does not have (NGINX's
 * "-" user or referer), so one source's events come with a few sets of
 * names in turn; comparing the bytes costs less than writing them again.
 * One per thread; bounded: EVENT_JSON_CACHE_BYTES per buffer,
 * EVENT_JSON_CACHE_FIELDS names (an event beyond is written uncached).
 */
#define EVENT_JSON_CACHE_BYTES 4096
#define EVENT_JSON_CACHE_FIELDS 64
#define EVENT_JSON_CACHE_SETS 8
struct event_json_names_set {
	bool ok;
	enum event_json_names names;
	size_t nnames;
	uint32_t key_len[EVENT_JSON_CACHE_FIELDS];
	uint32_t name_end[EVENT_JSON_CACHE_FIELDS];   /* in rendered, after name i's ':' */
	struct buf keys_from, rendered;   /* the keys; the names as the record has them */
	/*
	 * The Dict (struct event's key_dict) whose ids key_id[] name these
	 * keys, 0: none. An event of that Dict is matched by its ids, not its
	 * names' bytes.
	 */
	uint64_t dict;
	uint32_t key_id[EVENT_JSON_CACHE_FIELDS];
};
struct event_json_cache {
	bool head_ok, has_agent;
	size_t host_len, stream_len, source_len, agent_len;
	struct buf head_from, head;   /* host, stream, source and agent; ,"host":...,"message": */
	/* The origin (struct event's origin_dict, origin_id) head's host, stream and source are; 0: none. */
	uint64_t origin_dict;
	uint32_t origin_id;
	struct event_json_names_set set[EVENT_JSON_CACHE_SETS];
	unsigned last;                /* the set the last record used */
	unsigned victim;              /* the next set to render into, round robin */
};

/* An empty cache (allocates nothing yet). */
void event_json_cache_init(struct event_json_cache *c);
/* Frees c's memory; c is empty and usable again. */
void event_json_cache_free(struct event_json_cache *c);

/*
 * event_json_as(ev, agent, NULL, names, out), the same bytes, with what c
 * kept from the records before. Same returns.
 */
int event_json_cached(const struct event *ev, const char *agent, enum event_json_names names,
    struct event_json_cache *c, struct buf *out);

#endif
