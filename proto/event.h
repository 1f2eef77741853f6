/* SPDX-License-Identifier: Apache-2.0 */
/*
 * event: the Event record of proto/logferry.proto, encoded and decoded by
 * hand, straight on the buffer (nanopb's streams cost ten times more here).
 *
 * The agent encodes each event once, into a reused buffer, as one element
 * of an EventList; serialized EventLists concatenate into one EventList,
 * which is what spool segments and Batch payloads are. The relay reads an
 * EventList in one pass: every bytes value (host, message, field keys and
 * values) is a pointer into the input, nothing is copied or allocated.
 */
#ifndef LOGFERRY_EVENT_H
#define LOGFERRY_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/pbslice.h"

/*
 * How an EventList is written (proto/logferry.proto, docs/architecture.md
 * "Event formats"): 1, every event self-contained; 2, names and origins
 * through per-segment tables; 3, format 2 with an event's slice and
 * integer fields packed (Event.packed_fields). A spool segment and a
 * Batch each have one.
 */
#define EVENT_FORMAT_1 1
#define EVENT_FORMAT_2 2
#define EVENT_FORMAT_3 3

/* Format 2's largest ids (proto/logferry.proto Dict). */
#define EVENT_MAX_KEY_ID 4095
#define EVENT_MAX_ORIGIN_ID 1023

enum event_value_type {
	EVENT_NULL = 0,
	EVENT_TEXT,      /* v.text */
	EVENT_INTEGER,   /* v.integer */
	EVENT_NUMBER,    /* v.number */
	EVENT_BOOLEAN,   /* v.boolean */
	EVENT_SLICE,     /* v.slice: a string that is part of the message */
	EVENT_JSON,      /* v.json: an array or object as JSON text */
};

struct event_field {
	struct pbslice key;
	enum event_value_type type;
	uint32_t key_id;              /* decoding: format 2's or 3's key id, resolved into key; ignored by the encoders */
	union {
		struct pbslice text;
		int64_t integer;
		double number;
		bool boolean;
		struct {
			uint32_t offset;
			uint32_t length;
		} slice;
		struct pbslice json;
	} v;
};

struct event {
	uint64_t ts;                  /* nanoseconds since the epoch, UTC */
	struct pbslice host, stream, source, message;
	struct event_field *fields;   /* decoding: the reader's array */
	size_t nfields;
	struct pbslice raw;           /* decoding: the serialized Event itself (format protobuf); ignored by event_encode */
	bool dict_refs;               /* decoding: names or origin came from the list's Dict, so raw alone is not the event */
	/*
	 * Encoding: every field key is a string literal (bytes that never
	 * change while the process runs), so proto/event_dict.c may know a
	 * key by its pointer and length alone. false whenever a key may live
	 * in a buffer that is reused (JSON, syslog SD, processors' keys).
	 */
	bool static_keys;
	/*
	 * Encoding, with static_keys: NULL, or the identity of the event's
	 * list of keys (pointers, lengths, order) as its parser numbers them:
	 * events with the same key_set have the same keys, so
	 * proto/event_dict.c looks their ids up once per key set. The address
	 * of a static object of the parser's, one per list (nginx_parse.c).
	 */
	const void *key_set;
	/*
	 * Encoding: 0, or a number from event_origin_gen standing for host,
	 * stream and source's bytes at their addresses: events with the same
	 * origin_gen have the same origin, so proto/event_dict.c knows it
	 * without comparing its bytes (about 100 instructions per event,
	 * callgrind; a path freed and another allocated at its address gets a
	 * new number). 0 wherever one of them may be other bytes at the same
	 * address (a host read from the line, a processor's rewrite).
	 */
	uint64_t origin_gen;
	/*
	 * Decoding: nonzero when every field's key is its key_id's name in
	 * one Dict (no literal key, no id 0): that Dict's serial, never
	 * reused (another Dict, or the same bytes in another list or reader,
	 * has another). Events with the same key_dict and the same key ids
	 * have the same names, so a consumer may compare ids, not bytes
	 * (event_json_cached). 0 otherwise.
	 */
	uint64_t key_dict;
	/*
	 * Decoding: nonzero when host, stream and source are all the origin
	 * origin_id's of one Dict (none of the event's own): that Dict's
	 * serial, as key_dict. Events with the same origin_dict and origin_id
	 * have the same host, stream and source. 0 otherwise.
	 */
	uint64_t origin_dict;
	uint32_t origin_id;
};

/* A number for struct event's origin_gen that no other call returns in this process; never 0. */
uint64_t event_origin_gen(void);

/*
 * Appends ev to out as one element of an EventList. Returns 0, -EINVAL for
 * a field with an unknown type, -EMSGSIZE beyond out's cap or 4 GiB, or
 * -ENOMEM; on error out is unchanged.
 */
int event_encode(const struct event *ev, struct buf *out);

/*
 * Format 2 (see proto/event_dict.h, which picks the ids): as event_encode,
 * but field i's key as its id key_ids[i] when that is nonzero (key_ids
 * NULL: every key literal), and host, stream and source as the id origin
 * when it is nonzero (0: literal).
 */
int event_encode_ids(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out);

/*
 * Format 3: as event_encode_ids, but the fields as Event.packed_fields when
 * every one is a slice or an integer with a key id (key_ids[i] nonzero) and
 * there are at most EVENT_PACK_MAX_FIELDS of them; otherwise as
 * event_encode_ids writes them.
 */
#define EVENT_PACK_MAX_FIELDS 64
int event_encode_packed(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out);

/*
 * Appends to out an EventList element `dicts` defining the keys
 * (keys[id], id 1..EVENT_MAX_KEY_ID) and origins (origins[id]: host,
 * stream, source; id 1..EVENT_MAX_ORIGIN_ID) whose bits are set in key_used
 * and origin_used (bit id of word id / 64). Returns 0, -EMSGSIZE or
 * -ENOMEM; on error out is unchanged.
 */
int event_encode_dict(const struct pbslice *keys, const uint64_t *key_used,
    const struct pbslice (*origins)[3], const uint64_t *origin_used, struct buf *out);

/* Reads the events of a serialized EventList, in order. */
struct event_reader {
	const uint8_t *p, *end;
	struct event_field *fields;   /* caller's array, reused for each event */
	size_t max_fields;
	const char *why;              /* after an error: what was malformed */
	/*
	 * Format 2: the current Dict's bytes (ptr NULL before the first), and
	 * which Dict the thread's tables hold (event.c), 0 until one is used.
	 */
	struct pbslice dict;
	uint64_t serial;
};

/* Reads data[0, len); fields (max_fields of them) receives each event's fields. */
void event_reader_init(struct event_reader *r, const uint8_t *data, size_t len,
    struct event_field *fields, size_t max_fields);

/*
 * Makes dict (a Dict's bytes, from r->dict of an earlier reader of the same
 * list) the current one: to resume reading a format-2 list at an offset.
 */
void event_reader_set_dict(struct event_reader *r, struct pbslice dict);

/*
 * Returns 1 and fills *ev (valid while data is, and until the next call,
 * which reuses the field array), 0 at the end of the list, -EPROTO for
 * malformed input (format 2 included: a key or origin id out of range or
 * not defined by the current Dict; format 3's: a bad packed entry), -E2BIG for an event with more than
 * max_fields fields, or -ENOMEM when the thread's format-2 tables (about
 * 112 KiB, allocated at its first format-2 list) cannot be allocated.
 * After an error r->why says what was wrong. An error inside one event
 * leaves the reader past that event, so the next call reads the one after
 * it; an error in the list's own framing ends the list.
 */
int event_reader_next(struct event_reader *r, struct event *ev);

/*
 * Counts the events of a serialized EventList, checking the list's framing
 * (tags and lengths) but not the events inside: a cheap first pass before
 * event_reader_next. Returns 0 and sets *count, or -EPROTO with why set.
 */
int event_list_count(const uint8_t *data, size_t len, uint64_t *count, const char **why);

/*
 * Appends to out the EventList data[0, len) in format 1: each event that
 * refers to a Dict encoded again on its own, the others (and malformed
 * ones, which stay one malformed event each) copied, the Dicts left out.
 * For a peer that reads format 1 only, and to re-frame single events.
 * Returns 0, -EPROTO for a list whose framing is malformed, or
 * event_encode's errors; on error out is unchanged.
 */
int event_list_format1(const uint8_t *data, size_t len, struct buf *out);

/*
 * The string value of a TEXT or SLICE field (a SLICE resolved against the
 * message). Returns 0, -EINVAL for another type, or -EPROTO for a slice
 * outside the message.
 */
int event_field_string(const struct event *ev, const struct event_field *f,
    struct pbslice *out);

#endif
