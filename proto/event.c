/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "proto/event.h"

/* Field numbers of proto/logferry.proto. */
enum {
	EVENTLIST_EVENTS = 1, EVENTLIST_DICTS,
	EVENT_TS = 1, EVENT_HOST, EVENT_STREAM, EVENT_SOURCE, EVENT_MESSAGE, EVENT_FIELDS,
	EVENT_ORIGIN, EVENT_PACKED_FIELDS,
	FIELD_KEY = 1, FIELD_TEXT, FIELD_INTEGER, FIELD_NUMBER, FIELD_BOOLEAN,
	FIELD_SLICE, FIELD_JSON, FIELD_KEY_ID,
	SLICE_OFFSET = 1, SLICE_LENGTH,
	DICT_KEYS = 1, DICT_ORIGINS,
	/* DictKey and DictOrigin alike: the id, then the bytes values (event_load_entry). */
	DICTKEY_ID = 1, DICTKEY_NAME,
	DICTORIGIN_ID = 1, DICTORIGIN_HOST, DICTORIGIN_STREAM, DICTORIGIN_SOURCE,
	/* Format 3: the kind of an Event.packed_fields entry, its head's low 2 bits (2, 3: reserved). */
	PACKED_SLICE = 0, PACKED_INTEGER,
};
_Static_assert(DICTORIGIN_ID == DICTKEY_ID && DICTORIGIN_HOST == DICTKEY_NAME,
    "event_load_entry reads DictKey and DictOrigin alike");

/* ---------------------------------------------------------------- sizes */

static size_t
event_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A length-delimited field of tag number < 16 holding len bytes. */
static size_t
event_len_size(size_t len)
{
	return 1 + event_varint_size(len) + len;
}

/* Proto3 omits empty bytes fields. */
static size_t
event_bytes_size(const struct pbslice *b)
{
	return b->len ? event_len_size(b->len) : 0;
}

static size_t
event_slice_size(uint32_t offset, uint32_t length)
{
	return (offset ? 1 + event_varint_size(offset) : 0) +
	    (length ? 1 + event_varint_size(length) : 0);
}

static size_t
event_zigzag(int64_t v)
{
	return (size_t)(((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* Size of one Field message's contents, or 0 with *bad set for an unknown type. */
static size_t
event_field_size(const struct event_field *f, bool *bad)
{
	size_t n = event_bytes_size(&f->key);

	switch (f->type) {
	case EVENT_NULL: return n;
	/* Oneof members are always written, even when empty or zero. */
	case EVENT_TEXT: return n + event_len_size(f->v.text.len);
	case EVENT_INTEGER: return n + 1 + event_varint_size(event_zigzag(f->v.integer));
	case EVENT_NUMBER: return n + 1 + 8;
	case EVENT_BOOLEAN: return n + 2;
	case EVENT_SLICE: return n + event_len_size(event_slice_size(f->v.slice.offset,
	    f->v.slice.length));
	case EVENT_JSON: return n + event_len_size(f->v.json.len);
	}
	*bad = true;
	return 0;
}

/* As event_field_size, the key as key_id when that is nonzero (format 2). */
static inline __attribute__((always_inline)) size_t
event_field_size_id(const struct event_field *f, unsigned key_id, bool *bad)
{
	size_t n = event_field_size(f, bad);

	return key_id ? n - event_bytes_size(&f->key) + 1 + event_varint_size(key_id) : n;
}

/*
 * key_ids NULL: every key literal; origin 0: host, stream and source
 * literal. Inlined, so that event_encode's constants leave format 1 as it
 * was (bench_codec).
 */
/* Field sizes event_size keeps for the writes after it (more fields: computed again). */
#define EVENT_SIZES_KEPT 64

static inline __attribute__((always_inline)) size_t
event_size(const struct event *ev, const uint16_t *key_ids, unsigned origin, size_t *sizes,
    bool *bad)
{
	size_t n = (ev->ts ? 1 + 8 : 0) + event_bytes_size(&ev->message);

	if (origin)
		n += 1 + event_varint_size(origin);
	else
		n += event_bytes_size(&ev->host) + event_bytes_size(&ev->stream) +
		    event_bytes_size(&ev->source);
	for (size_t i = 0; i < ev->nfields; i++) {
		size_t f = event_field_size_id(&ev->fields[i], key_ids ? key_ids[i] : 0, bad);

		if (i < EVENT_SIZES_KEPT)
			sizes[i] = f;
		n += event_len_size(f);
	}
	return n;
}

/* --------------------------------------------------------------- encode */

/*
 * The codec writes and reads the buffer directly: nanopb's streams cost a
 * function call per write and per varint byte, ten times the work itself
 * on this path (bench/bench_codec).
 */
enum { WT_VARINT = 0, WT_64BIT = 1, WT_LEN = 2, WT_32BIT = 5 };

static uint8_t *
event_put_varint(uint8_t *p, uint64_t v)
{
	/* Ids, offsets and lengths mostly take 1 or 2 bytes: written without the loop. */
	if (v < 0x80) {
		*p = (uint8_t)v;
		return p + 1;
	}
	if (v < 0x4000) {
		p[0] = (uint8_t)(v | 0x80);
		p[1] = (uint8_t)(v >> 7);
		return p + 2;
	}
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Every field number of logferry.proto's events is below 16: one tag byte. */
static uint8_t *
event_put_tag(uint8_t *p, unsigned field, unsigned wt)
{
	*p++ = (uint8_t)(field << 3 | wt);
	return p;
}

static uint8_t *
event_put_fixed64(uint8_t *p, unsigned field, uint64_t v)
{
	p = event_put_tag(p, field, WT_64BIT);
	/* Little-endian in one store: the byte loop was 57 instructions of every event's ts. */
	v = htole64(v);
	memcpy(p, &v, 8);
	return p + 8;
}

static uint8_t *
event_put_bytes(uint8_t *p, unsigned field, const struct pbslice *b, bool always)
{
	if (b->len == 0 && !always)
		return p;
	p = event_put_varint(event_put_tag(p, field, WT_LEN), b->len);
	if (b->len > 0)
		memcpy(p, b->ptr, b->len);
	return p + b->len;
}

/* An Event's fields before its fields: ts, origin (or host, stream, source), message. */
static inline __attribute__((always_inline)) uint8_t *
event_put_head(uint8_t *p, const struct event *ev, unsigned origin)
{
	if (ev->ts)
		p = event_put_fixed64(p, EVENT_TS, ev->ts);
	if (origin) {
		p = event_put_varint(event_put_tag(p, EVENT_ORIGIN, WT_VARINT), origin);
	} else {
		p = event_put_bytes(p, EVENT_HOST, &ev->host, false);
		p = event_put_bytes(p, EVENT_STREAM, &ev->stream, false);
		p = event_put_bytes(p, EVENT_SOURCE, &ev->source, false);
	}
	p = event_put_bytes(p, EVENT_MESSAGE, &ev->message, false);
	return p;
}

/* A Slice field (at most 14 bytes: its length is always 1 byte). */
static inline __attribute__((always_inline)) uint8_t *
event_put_slice(uint8_t *q, const struct event_field *f)
{
	uint8_t *s;

	q = event_put_tag(q, FIELD_SLICE, WT_LEN);
	s = q++;
	if (f->v.slice.offset)
		q = event_put_varint(event_put_tag(q, SLICE_OFFSET, WT_VARINT),
		    f->v.slice.offset);
	if (f->v.slice.length)
		q = event_put_varint(event_put_tag(q, SLICE_LENGTH, WT_VARINT),
		    f->v.slice.length);
	*s = (uint8_t)(q - s - 1);
	return q;
}

static inline __attribute__((always_inline)) uint8_t *
event_put_field(uint8_t *p, const struct event_field *f, unsigned key_id, size_t size)
{
	uint64_t bits;

	p = event_put_varint(event_put_tag(p, EVENT_FIELDS, WT_LEN), size);
	if (key_id)
		p = event_put_varint(event_put_tag(p, FIELD_KEY_ID, WT_VARINT), key_id);
	else
		p = event_put_bytes(p, FIELD_KEY, &f->key, false);
	switch (f->type) {
	case EVENT_NULL:
		return p;
	case EVENT_TEXT:
		return event_put_bytes(p, FIELD_TEXT, &f->v.text, true);
	case EVENT_INTEGER:
		return event_put_varint(event_put_tag(p, FIELD_INTEGER, WT_VARINT),
		    event_zigzag(f->v.integer));
	case EVENT_NUMBER:
		memcpy(&bits, &f->v.number, sizeof(bits));
		return event_put_fixed64(p, FIELD_NUMBER, bits);
	case EVENT_BOOLEAN:
		p = event_put_tag(p, FIELD_BOOLEAN, WT_VARINT);
		*p++ = f->v.boolean ? 1 : 0;
		return p;
	case EVENT_SLICE:
		return event_put_slice(p, f);
	case EVENT_JSON:
		return event_put_bytes(p, FIELD_JSON, &f->v.json, true);
	}
	return p;
}

/*
 * Reserves an EventList `events` element of size bytes in out and writes
 * its tag and length: where its contents go, or NULL with *r set.
 */
static uint8_t *
event_begin(struct buf *out, size_t size, size_t *total, int *r)
{
	if (size > UINT32_MAX) {
		*r = -EMSGSIZE;
		return NULL;
	}
	*total = 1 + event_varint_size(size) + size;
	if ((*r = buf_reserve(out, *total)) != 0)
		return NULL;
	return event_put_varint(event_put_tag(out->data + out->len, EVENTLIST_EVENTS, WT_LEN),
	    size);
}

/*
 * The exact path: every size computed before the writes, so that it needs
 * no more room than the event's own bytes. For a buffer without the
 * one-pass path's slack (a block nearly full, a cap of the event's size),
 * and for the errors.
 */
static __attribute__((noinline)) int
event_encode_exact(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out)
{
	bool bad = false;
	size_t sizes[EVENT_SIZES_KEPT];
	size_t size = event_size(ev, key_ids, origin, sizes, &bad), total;
	uint8_t *start, *p;
	int r;

	if (bad)
		return -EINVAL;
	if ((p = event_begin(out, size, &total, &r)) == NULL)
		return r;
	start = out->data + out->len;
	p = event_put_head(p, ev, origin);
	for (size_t i = 0; i < ev->nfields; i++) {
		unsigned id = key_ids ? key_ids[i] : 0;

		p = event_put_field(p, &ev->fields[i], id, i < EVENT_SIZES_KEPT ? sizes[i] :
		    event_field_size_id(&ev->fields[i], id, &bad));
	}
	/* The sizes and the writes must agree to the byte, or memory is corrupt. */
	if ((size_t)(p - start) != total)
		abort();
	out->len += total;
	return 0;
}

/*
 * The one-pass path's room: ev's bytes with every varint at its widest
 * (a length 5 bytes, an id 5, an integer 10) and every optional field
 * present, but the bytes of names and values, which are taken from a
 * budget as they are written (event_take): no loop over the fields first.
 */
#define EVENT_BOUND_FIXED 64     /* list tag and length, ts, origin or the 3 tags and lengths, message's */
#define EVENT_BOUND_FIELD 32     /* Field tag and length, key's, value's, or the widest fixed value */

/* Takes n bytes of *budget; false (and *err set) when it has fewer. */
static inline __attribute__((always_inline)) bool
event_take(size_t *budget, size_t n, int *err)
{
	if (n > *budget) {
		*err = -EMSGSIZE;
		return false;
	}
	*budget -= n;
	return true;
}

/*
 * A length written after its contents: at holds 1 byte reserved for it and
 * then the n bytes of contents. Moves them to make room when the length
 * needs more than 1 byte; returns the end.
 */
static __attribute__((noinline)) uint8_t *
event_put_len_after(uint8_t *at, size_t n)
{
	size_t k = event_varint_size(n);

	memmove(at + k, at + 1, n);
	event_put_varint(at, n);
	return at + k + n;
}

/*
 * One Field, its length written after its contents, in the bytes
 * event_put_field writes; its name's and value's bytes taken from *budget.
 * Sets *err to -EINVAL for an unknown type, -EMSGSIZE beyond the budget.
 */
static inline __attribute__((always_inline)) uint8_t *
event_put_field_1pass(uint8_t *p, const struct event_field *f, unsigned key_id, size_t *budget,
    int *err)
{
	uint8_t *len = p + 1, *q = p + 2;
	uint64_t bits;
	size_t n;

	*p = (uint8_t)(EVENT_FIELDS << 3 | WT_LEN);
	/*
	 * A parser's usual field, a slice named by a 1-byte id: its Field is
	 * at most 16 bytes, so both lengths are 1 byte (no switch, no check:
	 * bench_codec, callgrind).
	 */
	if (f->type == EVENT_SLICE && key_id - 1 < 0x7f) {
		q[0] = (uint8_t)(FIELD_KEY_ID << 3 | WT_VARINT);
		q[1] = (uint8_t)key_id;
		q = event_put_slice(q + 2, f);
		*len = (uint8_t)(q - len - 1);
		return q;
	}
	if (key_id)
		q = event_put_varint(event_put_tag(q, FIELD_KEY_ID, WT_VARINT), key_id);
	else if (event_take(budget, f->key.len, err))
		q = event_put_bytes(q, FIELD_KEY, &f->key, false);
	else
		return q;
	switch (f->type) {
	case EVENT_NULL:
		break;
	case EVENT_TEXT:
		if (!event_take(budget, f->v.text.len, err))
			return q;
		q = event_put_bytes(q, FIELD_TEXT, &f->v.text, true);
		break;
	case EVENT_INTEGER:
		q = event_put_varint(event_put_tag(q, FIELD_INTEGER, WT_VARINT),
		    event_zigzag(f->v.integer));
		break;
	case EVENT_NUMBER:
		memcpy(&bits, &f->v.number, sizeof(bits));
		q = event_put_fixed64(q, FIELD_NUMBER, bits);
		break;
	case EVENT_BOOLEAN:
		q = event_put_tag(q, FIELD_BOOLEAN, WT_VARINT);
		*q++ = f->v.boolean ? 1 : 0;
		break;
	case EVENT_SLICE:
		q = event_put_slice(q, f);
		break;
	case EVENT_JSON:
		if (!event_take(budget, f->v.json.len, err))
			return q;
		q = event_put_bytes(q, FIELD_JSON, &f->v.json, true);
		break;
	default:
		*err = -EINVAL;
		return q;
	}
	n = (size_t)(q - len - 1);
	if (n < 0x80) {
		*len = (uint8_t)n;
		return q;
	}
	return event_put_len_after(len, n);
}

/*
 * Ends a one-pass event whose contents start after its tag and reserved
 * bytes of length at start and end at p: its length written, the contents
 * moved when the length takes another width, out's length moved past it.
 */
static inline __attribute__((always_inline)) void
event_end(struct buf *out, uint8_t *start, size_t reserved, const uint8_t *p, size_t room)
{
	const uint8_t *body = start + 1 + reserved;
	size_t size = (size_t)(p - body), lsize = event_varint_size(size);

	if (lsize != reserved)
		memmove(start + 1 + lsize, body, size);
	event_put_varint(event_put_tag(start, EVENTLIST_EVENTS, WT_LEN), size);
	/* The room must hold, or memory is corrupt. */
	if (1 + lsize + size > room)
		abort();
	out->len += 1 + lsize + size;
}

/*
 * One pass: the event written where a length as wide as its room's leaves
 * room for it, each Field's length after its contents, then the event's
 * length, the event moved when that takes another width. The
 * size-then-write path (event_encode_exact) cost a third more (bench_codec,
 * callgrind), and takes over when the buffer lacks the room or an error
 * is found (its result is then the result); both write the same bytes
 * (test_event's boundary test holds them to the minimal varints).
 */
static inline __attribute__((always_inline)) int
event_encode_with(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out)
{
	uint64_t need = EVENT_BOUND_FIXED + (uint64_t)ev->host.len + ev->stream.len +
	    ev->source.len + ev->message.len + (uint64_t)ev->nfields * EVENT_BOUND_FIELD;
	size_t room, budget, reserved;
	uint8_t *start, *p;
	int err = 0;

	/* cap never exceeds max (common/buf.h): room below cap needs no call. */
	if (need > UINT32_MAX || (need > out->cap - out->len && buf_reserve(out, need) != 0))
		return event_encode_exact(ev, key_ids, origin, out);
	/* An event is at most 4 GiB: so is what the budget lets it take. */
	room = out->cap - out->len < UINT32_MAX ? out->cap - out->len : UINT32_MAX;
	budget = room - need;
	reserved = event_varint_size(need);
	start = out->data + out->len;
	p = event_put_head(start + 1 + reserved, ev, origin);
	for (size_t i = 0; i < ev->nfields && err == 0; i++)
		p = event_put_field_1pass(p, &ev->fields[i], key_ids ? key_ids[i] : 0, &budget,
		    &err);
	if (err != 0)
		return event_encode_exact(ev, key_ids, origin, out);
	event_end(out, start, reserved, p, room);
	return 0;
}

uint64_t
event_origin_gen(void)
{
	static uint64_t last;

	/* Sources may run on more than one thread: each number is handed out once. */
	return __atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
}

int
event_encode(const struct event *ev, struct buf *out)
{
	return event_encode_with(ev, NULL, 0, out);
}

int
event_encode_ids(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out)
{
	return event_encode_with(ev, key_ids, origin, out);
}

/* ------------------------------------------------------ format 3's packing */

/* A packed entry's widest: a key id (2 bytes), a head (6: a delta within +-2^33), a length (5). */
#define EVENT_PACK_ENTRY_MAX 16

static uint64_t
event_zigzag64(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/*
 * ev's fields as Event.packed_fields entries into pk; their length, or 0
 * when a field cannot be packed (neither a slice nor an integer, or no id).
 */
static size_t
event_pack(const struct event *ev, const uint16_t *key_ids, uint8_t *pk)
{
	uint8_t *p = pk;
	int64_t end = 0;
	/* In locals: a byte stored through p may alias ev, so ev->nfields was loaded at every field. */
	const struct event_field *f = ev->fields, *fend = f + ev->nfields;

	for (; f < fend; f++, key_ids++) {
		unsigned id = *key_ids;

		if (f->type == EVENT_SLICE) {
			/*
			 * From the previous slice's end: a parser's slices mostly
			 * follow each other (a 1-byte delta); a part of the one
			 * before (method in request) makes it negative.
			 */
			uint64_t head = event_zigzag64((int64_t)f->v.slice.offset - end) << 2 |
			    PACKED_SLICE, len = f->v.slice.length;

			end = (int64_t)f->v.slice.offset + f->v.slice.length;
			/*
			 * A parser's usual entry, a 1-byte id, head and length:
			 * one test of the three (the agent, callgrind: about 3
			 * instructions less per field).
			 */
			if (id - 1 < 0x7f && (head | len) < 0x80) {
				p[0] = (uint8_t)id;
				p[1] = (uint8_t)head;
				p[2] = (uint8_t)len;
				p += 3;
				continue;
			}
			if (id == 0)
				return 0;
			p = event_put_varint(event_put_varint(event_put_varint(p, id), head), len);
		} else if (f->type == EVENT_INTEGER && id != 0) {
			p = event_put_varint(p, id);
			*p++ = PACKED_INTEGER;
			p = event_put_varint(p, event_zigzag64(f->v.integer));
		} else {
			return 0;
		}
	}
	return (size_t)(p - pk);
}

/*
 * The exact path of format 3: the entries packed on the stack first (a
 * kilobyte at most), which gives the event's exact size, then one
 * reservation and one write. For a buffer without the one-pass path's
 * room, whose result it then is.
 */
static __attribute__((noinline)) int
event_encode_packed_exact(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out)
{
	uint8_t pk[EVENT_PACK_MAX_FIELDS * EVENT_PACK_ENTRY_MAX], *start, *p;
	size_t plen, size, total;
	int r;

	if ((plen = event_pack(ev, key_ids, pk)) == 0)
		return event_encode_ids(ev, key_ids, origin, out);
	size = (ev->ts ? 1 + 8 : 0) + event_bytes_size(&ev->message) + event_len_size(plen);
	if (origin)
		size += 1 + event_varint_size(origin);
	else
		size += event_bytes_size(&ev->host) + event_bytes_size(&ev->stream) +
		    event_bytes_size(&ev->source);
	if ((p = event_begin(out, size, &total, &r)) == NULL)
		return r;
	start = out->data + out->len;
	p = event_put_head(p, ev, origin);
	p = event_put_varint(event_put_tag(p, EVENT_PACKED_FIELDS, WT_LEN), plen);
	memcpy(p, pk, plen);
	p += plen;
	/* The sizes and the writes must agree to the byte, or memory is corrupt. */
	if ((size_t)(p - start) != total)
		abort();
	out->len += total;
	return 0;
}

/* Event.packed_fields' tag and widest length (EVENT_PACK_MAX_FIELDS entries: 2 bytes). */
#define EVENT_PACK_BOUND_HEAD 3
_Static_assert(EVENT_PACK_MAX_FIELDS * EVENT_PACK_ENTRY_MAX < 0x4000,
    "packed_fields' length takes at most 2 bytes");

/*
 * One pass, as event_encode_with: the entries packed in place, behind a
 * 1-byte length (moved when it takes 2), the event behind a length as wide
 * as its room's (moved when it takes another width). Packing on the stack
 * and copying, with a reservation of the exact size, cost about 100
 * instructions more per NGINX event (the agent, callgrind).
 */
int
event_encode_packed(const struct event *ev, const uint16_t *key_ids, unsigned origin,
    struct buf *out)
{
	uint64_t need;
	size_t room, reserved, plen;
	uint8_t *start, *p, *len;

	if (key_ids == NULL || ev->nfields == 0 || ev->nfields > EVENT_PACK_MAX_FIELDS)
		return event_encode_ids(ev, key_ids, origin, out);
	need = EVENT_BOUND_FIXED + EVENT_PACK_BOUND_HEAD + (uint64_t)ev->host.len +
	    ev->stream.len + ev->source.len + ev->message.len +
	    (uint64_t)ev->nfields * EVENT_PACK_ENTRY_MAX;
	/* cap never exceeds max (common/buf.h): room below cap needs no call. */
	if (need > UINT32_MAX || (need > out->cap - out->len && buf_reserve(out, need) != 0))
		return event_encode_packed_exact(ev, key_ids, origin, out);
	room = out->cap - out->len;
	reserved = event_varint_size(need);
	start = out->data + out->len;
	p = event_put_head(start + 1 + reserved, ev, origin);
	*p = (uint8_t)(EVENT_PACKED_FIELDS << 3 | WT_LEN);
	len = p + 1;
	if ((plen = event_pack(ev, key_ids, len + 1)) == 0)
		return event_encode_ids(ev, key_ids, origin, out);
	if (plen < 0x80) {
		*len = (uint8_t)plen;
		p = len + 1 + plen;
	} else {
		p = event_put_len_after(len, plen);
	}
	event_end(out, start, reserved, p, room);
	return 0;
}

static size_t
event_dict_key_size(unsigned id, const struct pbslice *name)
{
	return 1 + event_varint_size(id) + event_bytes_size(name);
}

static size_t
event_dict_origin_size(unsigned id, const struct pbslice o[3])
{
	return 1 + event_varint_size(id) + event_bytes_size(&o[0]) + event_bytes_size(&o[1]) +
	    event_bytes_size(&o[2]);
}

/*
 * The statement after it, for each id whose bit is set in used (ids 1..max),
 * in order. Word by word, the lowest set bit at a time: testing each of the
 * 5,118 ids cost the spool writer 100,000 instructions per segment sealed,
 * for the dozen a source uses (callgrind, issue 19 item 2).
 */
#define EVENT_EACH_ID(used, max, id) \
	for (unsigned w_ = 0; w_ <= (max) / 64; w_++) \
		for (uint64_t m_ = (used)[w_] & (w_ == 0 ? ~UINT64_C(1) : ~UINT64_C(0)); \
		    m_ != 0; m_ &= m_ - 1) \
			for (unsigned id = w_ * 64 + (unsigned)__builtin_ctzll(m_), once_ = 1; \
			    once_ != 0 && id <= (max); once_ = 0)

int
event_encode_dict(const struct pbslice *keys, const uint64_t *key_used,
    const struct pbslice (*origins)[3], const uint64_t *origin_used, struct buf *out)
{
	size_t size = 0, total;
	uint8_t *start, *p;
	int r;

	EVENT_EACH_ID(key_used, EVENT_MAX_KEY_ID, id)
		size += event_len_size(event_dict_key_size(id, &keys[id]));
	EVENT_EACH_ID(origin_used, EVENT_MAX_ORIGIN_ID, id)
		size += event_len_size(event_dict_origin_size(id, origins[id]));
	if (size > UINT32_MAX)
		return -EMSGSIZE;
	total = 1 + event_varint_size(size) + size;
	if ((r = buf_reserve(out, total)) != 0)
		return r;
	start = p = out->data + out->len;
	p = event_put_varint(event_put_tag(p, EVENTLIST_DICTS, WT_LEN), size);
	EVENT_EACH_ID(key_used, EVENT_MAX_KEY_ID, id) {
		p = event_put_varint(event_put_tag(p, DICT_KEYS, WT_LEN),
		    event_dict_key_size(id, &keys[id]));
		p = event_put_varint(event_put_tag(p, DICTKEY_ID, WT_VARINT), id);
		p = event_put_bytes(p, DICTKEY_NAME, &keys[id], false);
	}
	EVENT_EACH_ID(origin_used, EVENT_MAX_ORIGIN_ID, id) {
		p = event_put_varint(event_put_tag(p, DICT_ORIGINS, WT_LEN),
		    event_dict_origin_size(id, origins[id]));
		p = event_put_varint(event_put_tag(p, DICTORIGIN_ID, WT_VARINT), id);
		p = event_put_bytes(p, DICTORIGIN_HOST, &origins[id][0], false);
		p = event_put_bytes(p, DICTORIGIN_STREAM, &origins[id][1], false);
		p = event_put_bytes(p, DICTORIGIN_SOURCE, &origins[id][2], false);
	}
	if ((size_t)(p - start) != total)
		abort();
	out->len += total;
	return 0;
}

/* --------------------------------------------------------------- decode */

/* A read position inside one message; why is set on the first error. */
struct event_cur {
	const uint8_t *p, *end;
	const char **why;
	bool refs;                   /* an Event's: a field of it has a key_id */
	bool lit;                    /* an Event's: a field of it has a literal key or no key id */
};

static bool
event_fail(struct event_cur *c, const char *why)
{
	if (*c->why == NULL)
		*c->why = why;
	return false;
}

/* event_get_varint's way for a varint of more than one byte. */
static __attribute__((noinline)) bool
event_get_varint_long(struct event_cur *c, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (c->p == c->end)
			return event_fail(c, "truncated varint");
		b = *c->p++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return event_fail(c, "varint longer than 10 bytes");
}

/*
 * Tags and most lengths fit in one byte, and an NGINX event has about 100
 * varints: that case is inline where it is read (a call each was a third
 * of the relay's decoding, bench_codec).
 */
static inline __attribute__((always_inline)) bool
event_get_varint(struct event_cur *c, uint64_t *v)
{
	if (c->p != c->end && *c->p < 0x80) {
		*v = *c->p++;
		return true;
	}
	/* Lengths of 128 bytes to 16 KiB (an Event, its message): 4 in 10 of the calls above. */
	if (c->end - c->p >= 2 && c->p[1] < 0x80) {
		*v = (uint64_t)(c->p[0] & 0x7f) | (uint64_t)c->p[1] << 7;
		c->p += 2;
		return true;
	}
	return event_get_varint_long(c, v);
}

/* Inline: every event has its ts (a call and a loop were 70 instructions of an event's 2,150). */
static inline __attribute__((always_inline)) bool
event_get_fixed64(struct event_cur *c, uint64_t *v)
{
	uint64_t x;

	if (c->end - c->p < 8)
		return event_fail(c, "truncated 64-bit value");
	memcpy(&x, c->p, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	c->p += 8;
	*v = x;
	return true;
}

/* A length-delimited value, as a pointer into the input. */
static inline __attribute__((always_inline)) bool
event_get_bytes(struct event_cur *c, struct pbslice *out)
{
	uint64_t len;

	if (!event_get_varint(c, &len))
		return false;
	if (len > (uint64_t)(c->end - c->p))
		return event_fail(c, "length beyond the end of its message");
	out->ptr = c->p;
	out->len = (size_t)len;
	c->p += len;
	return true;
}

/* Enters a length-delimited submessage: *sub reads it, *c moves past it. */
static inline __attribute__((always_inline)) bool
event_enter(struct event_cur *c, struct event_cur *sub)
{
	struct pbslice b;

	if (!event_get_bytes(c, &b))
		return false;
	sub->p = b.ptr;
	sub->end = b.ptr + b.len;
	sub->why = c->why;
	return true;
}

static inline __attribute__((always_inline)) bool
event_get_tag(struct event_cur *c, unsigned *field, unsigned *wt)
{
	uint64_t v;

	if (!event_get_varint(c, &v))
		return false;
	if ((v >> 3) == 0 || (v >> 3) > UINT32_MAX)
		return event_fail(c, "invalid field number");
	*field = (unsigned)(v >> 3);
	*wt = (unsigned)(v & 7);
	return true;
}

static bool
event_skip(struct event_cur *c, unsigned wt)
{
	struct pbslice b;
	uint64_t v;

	switch (wt) {
	case WT_VARINT: return event_get_varint(c, &v);
	case WT_64BIT: return event_get_fixed64(c, &v);
	case WT_LEN: return event_get_bytes(c, &b);
	case WT_32BIT:
		if (c->end - c->p < 4)
			return event_fail(c, "truncated 32-bit value");
		c->p += 4;
		return true;
	}
	return event_fail(c, "invalid wire type");
}

static bool
event_expect(struct event_cur *c, unsigned got, unsigned want)
{
	return got == want || event_fail(c, "wrong wire type");
}

static bool
event_get_slice(struct event_cur *c, struct event_field *f)
{
	struct event_cur sub;
	unsigned field, wt;
	uint64_t v;

	if (!event_enter(c, &sub))
		return false;
	f->v.slice.offset = 0;
	f->v.slice.length = 0;
	while (sub.p < sub.end) {
		if (!event_get_tag(&sub, &field, &wt))
			return false;
		if (field == SLICE_OFFSET || field == SLICE_LENGTH) {
			if (!event_expect(&sub, wt, WT_VARINT) || !event_get_varint(&sub, &v))
				return false;
			if (v > UINT32_MAX)
				return event_fail(&sub, "slice bound above 4 GiB");
			*(field == SLICE_OFFSET ? &f->v.slice.offset : &f->v.slice.length) =
			    (uint32_t)v;
		} else if (!event_skip(&sub, wt)) {
			return false;
		}
	}
	return true;
}

/* event_get_small's way for 3 and 4 bytes. */
static __attribute__((noinline)) bool
event_get_small_long(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
	const uint8_t *p = *pp;
	uint32_t x = 0;

	for (unsigned shift = 0; shift < 28 && p != end; shift += 7) {
		uint8_t b = *p++;

		x |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*v = x;
			return true;
		}
	}
	return false;
}

/* A varint of at most 4 bytes (28 bits) ending before end; false for any other. */
static inline __attribute__((always_inline)) bool
event_get_small(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
	const uint8_t *p = *pp;
	size_t left = (size_t)(end - p);

	if (left >= 1 && p[0] < 0x80) {
		*v = p[0];
		*pp = p + 1;
		return true;
	}
	/* Offsets in a line of 128 bytes or more, ids above 127. */
	if (left >= 2 && p[1] < 0x80) {
		*v = (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
		*pp = p + 2;
		return true;
	}
	return event_get_small_long(pp, end, v);
}

#define EVENT_TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))

/*
 * A Field as the encoders write it: a key id or literal key, then no value,
 * a slice (offset, then length, each left out when 0), an integer or a
 * text, nothing after, and every number small. One pass, with no checks
 * that shape makes needless: an NGINX event's 11 fields cost a third of
 * what event_get_field's loop took (bench_codec). False for any other
 * shape, which event_get_field reads (clearing *f first: this may have
 * written part of it).
 */
static inline __attribute__((always_inline)) bool
event_get_field_common(const uint8_t *p, const uint8_t *end, struct event_field *f,
    bool *refs, bool *lit)
{
	bool by_id;
	uint32_t n, v;
	uint8_t tag;

	if (p == end)
		return false;
	tag = *p++;
	by_id = tag == EVENT_TAG(FIELD_KEY_ID, WT_VARINT);
	f->key.ptr = NULL;
	f->key.len = 0;
	f->key_id = 0;
	if (by_id) {
		if (!event_get_small(&p, end, &f->key_id))
			return false;
	} else if (tag == EVENT_TAG(FIELD_KEY, WT_LEN)) {
		if (!event_get_small(&p, end, &n) || n > (size_t)(end - p))
			return false;
		f->key.ptr = p;
		f->key.len = n;
		p += n;
	} else {
		return false;
	}
	memset(&f->v, 0, sizeof(f->v));
	if (p == end) {
		f->type = EVENT_NULL;
	} else {
		tag = *p++;
		if (tag == EVENT_TAG(FIELD_SLICE, WT_LEN)) {
			/* The slice ends the field. */
			if (!event_get_small(&p, end, &n) || n != (size_t)(end - p))
				return false;
			f->type = EVENT_SLICE;
			if (p != end && *p == EVENT_TAG(SLICE_OFFSET, WT_VARINT) &&
			    (++p, !event_get_small(&p, end, &f->v.slice.offset)))
				return false;
			if (p != end && *p == EVENT_TAG(SLICE_LENGTH, WT_VARINT) &&
			    (++p, !event_get_small(&p, end, &f->v.slice.length)))
				return false;
			if (p != end)
				return false;
		} else if (tag == EVENT_TAG(FIELD_INTEGER, WT_VARINT)) {
			if (!event_get_small(&p, end, &v) || p != end)
				return false;
			f->type = EVENT_INTEGER;
			f->v.integer = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
		} else if (tag == EVENT_TAG(FIELD_TEXT, WT_LEN)) {
			if (!event_get_small(&p, end, &n) || n != (size_t)(end - p))
				return false;
			f->type = EVENT_TEXT;
			f->v.text.ptr = p;
			f->v.text.len = n;
		} else {
			return false;
		}
	}
	*refs |= by_id;
	*lit |= f->key_id == 0;
	return true;
}

static bool
event_get_field(struct event_cur *c, struct event_field *f)
{
	struct event_cur sub;
	unsigned field, wt;
	uint64_t u;
	bool ok;

	if (!event_enter(c, &sub))
		return false;
	if (event_get_field_common(sub.p, sub.end, f, &c->refs, &c->lit))
		return true;
	memset(f, 0, sizeof(*f));
	while (sub.p < sub.end) {
		if (!event_get_tag(&sub, &field, &wt))
			return false;
		switch (field) {
		case FIELD_KEY:
			ok = event_expect(&sub, wt, WT_LEN) && event_get_bytes(&sub, &f->key);
			break;
		case FIELD_TEXT:
			f->type = EVENT_TEXT;
			ok = event_expect(&sub, wt, WT_LEN) && event_get_bytes(&sub, &f->v.text);
			break;
		case FIELD_INTEGER:
			f->type = EVENT_INTEGER;
			ok = event_expect(&sub, wt, WT_VARINT) && event_get_varint(&sub, &u);
			/* zigzag */
			f->v.integer = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
			break;
		case FIELD_NUMBER:
			f->type = EVENT_NUMBER;
			ok = event_expect(&sub, wt, WT_64BIT) && event_get_fixed64(&sub, &u);
			memcpy(&f->v.number, &u, sizeof(u));
			break;
		case FIELD_BOOLEAN:
			f->type = EVENT_BOOLEAN;
			ok = event_expect(&sub, wt, WT_VARINT) && event_get_varint(&sub, &u);
			f->v.boolean = u != 0;
			break;
		case FIELD_SLICE:
			f->type = EVENT_SLICE;
			ok = event_expect(&sub, wt, WT_LEN) && event_get_slice(&sub, f);
			break;
		case FIELD_JSON:
			f->type = EVENT_JSON;
			ok = event_expect(&sub, wt, WT_LEN) && event_get_bytes(&sub, &f->v.json);
			break;
		case FIELD_KEY_ID:
			ok = event_expect(&sub, wt, WT_VARINT) && event_get_varint(&sub, &u);
			/* Any id above 4095 is refused alike: kept above it. */
			f->key_id = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
			c->refs = true;
			break;
		default:
			/* Unknown to this version: skipped, so newer agents still work. */
			ok = event_skip(&sub, wt);
			break;
		}
		if (!ok)
			return false;
	}
	/* A literal key is the name even beside an id (event_resolve). */
	c->lit |= f->key_id == 0 || f->key.ptr != NULL;
	return true;
}

/* ------------------------------------------------------ format 2's tables */

/*
 * A Dict's entries by id, for the reader to resolve Field.key_id and
 * Event.origin in constant time. One per thread, allocated at its first
 * format-2 list (112 KiB: a reader is often on the stack, and copied, so
 * the tables cannot be in it): they hold the Dict of the reader that last
 * used them (serial) and are loaded again from the Dict's bytes when
 * another reader's turn comes, which readers interleaved on one thread
 * (rare) pay and a lone reader does not.
 */
struct event_tables {
	uint64_t serial;            /* the reader's r->serial these were loaded for; 0: none */
	const char *why;            /* that Dict was malformed: why */
	uint64_t key_set[(EVENT_MAX_KEY_ID + 64) / 64];
	uint64_t origin_set[(EVENT_MAX_ORIGIN_ID + 64) / 64];
	struct pbslice keys[EVENT_MAX_KEY_ID + 1];
	struct pbslice origins[EVENT_MAX_ORIGIN_ID + 1][3];   /* host, stream, source */
};

static __thread struct event_tables *event_tls;
static pthread_key_t event_tls_key;
static pthread_once_t event_tls_once = PTHREAD_ONCE_INIT;
/* Serials tell Dicts apart across readers and threads: never reused. */
static _Atomic uint64_t event_serials;

static void
event_tls_free(void *t)
{
	free(t);
}

static void
event_tls_key_create(void)
{
	/* Without the key the tables of an ending thread leak: 112 KiB per thread, bounded. */
	(void)pthread_key_create(&event_tls_key, event_tls_free);
}

static void
event_dict_use(struct event_reader *r, const uint8_t *p, size_t len)
{
	r->dict.ptr = p;
	r->dict.len = len;
	r->serial = atomic_fetch_add_explicit(&event_serials, 1, memory_order_relaxed) + 1;
}

void
event_reader_set_dict(struct event_reader *r, struct pbslice dict)
{
	if (dict.ptr == NULL) {
		r->dict = dict;
		r->serial = 0;
		return;
	}
	event_dict_use(r, dict.ptr, dict.len);
}

/*
 * Reads one DictKey or DictOrigin: both are an id (field 1) and nv bytes
 * values (fields 2 .. nv + 1) into v, unknown fields skipped. False for a
 * malformed entry.
 */
static bool
event_load_entry(struct event_cur *c, uint64_t *id, struct pbslice *v, unsigned nv)
{
	struct event_cur sub;
	unsigned field, wt;

	*id = 0;
	memset(v, 0, nv * sizeof(*v));
	if (!event_enter(c, &sub))
		return false;
	while (sub.p < sub.end) {
		if (!event_get_tag(&sub, &field, &wt))
			return false;
		if (field == DICTKEY_ID) {
			if (!event_expect(&sub, wt, WT_VARINT) || !event_get_varint(&sub, id))
				return false;
		} else if (field >= DICTKEY_NAME && field < DICTKEY_NAME + nv) {
			if (!event_expect(&sub, wt, WT_LEN) ||
			    !event_get_bytes(&sub, &v[field - DICTKEY_NAME]))
				return false;
		} else if (!event_skip(&sub, wt)) {
			return false;
		}
	}
	return true;
}

static bool
event_load_key(struct event_tables *t, struct event_cur *c)
{
	struct pbslice name;
	uint64_t id;

	if (!event_load_entry(c, &id, &name, 1))
		return false;
	if (id == 0 || id > EVENT_MAX_KEY_ID)
		return event_fail(c, "Dict key id outside 1..4095");
	t->keys[id] = name;
	t->key_set[id / 64] |= UINT64_C(1) << (id % 64);
	return true;
}

static bool
event_load_origin(struct event_tables *t, struct event_cur *c)
{
	struct pbslice o[3];
	uint64_t id;

	if (!event_load_entry(c, &id, o, 3))
		return false;
	if (id == 0 || id > EVENT_MAX_ORIGIN_ID)
		return event_fail(c, "Dict origin id outside 1..1023");
	memcpy(t->origins[id], o, sizeof(o));
	t->origin_set[id / 64] |= UINT64_C(1) << (id % 64);
	return true;
}

/* Fills t from dict's bytes; a malformed Dict leaves t->why set and nothing defined. */
static void
event_load_dict(struct event_tables *t, struct pbslice dict)
{
	const char *why = NULL;
	struct event_cur c = { dict.ptr, dict.ptr + dict.len, &why, false, false };
	unsigned field, wt;
	bool ok = true;

	memset(t->key_set, 0, sizeof(t->key_set));
	memset(t->origin_set, 0, sizeof(t->origin_set));
	while (ok && c.p < c.end) {
		if (!event_get_tag(&c, &field, &wt))
			break;
		if (field == DICT_KEYS)
			ok = event_expect(&c, wt, WT_LEN) && event_load_key(t, &c);
		else if (field == DICT_ORIGINS)
			ok = event_expect(&c, wt, WT_LEN) && event_load_origin(t, &c);
		else
			ok = event_skip(&c, wt);
	}
	t->why = why;
	if (why != NULL) {
		memset(t->key_set, 0, sizeof(t->key_set));
		memset(t->origin_set, 0, sizeof(t->origin_set));
	}
}

/* The thread's tables holding r's current Dict, or NULL with r->why set and *rc. */
static struct event_tables *
event_tables_for(struct event_reader *r, bool key, int *rc)
{
	struct event_tables *t = event_tls;

	*rc = -EPROTO;
	if (r->dict.ptr == NULL) {
		r->why = key ? "key id with no Dict before it" : "origin id with no Dict before it";
		return NULL;
	}
	if (t == NULL) {
		(void)pthread_once(&event_tls_once, event_tls_key_create);
		if ((t = malloc(sizeof(*t))) == NULL) {
			r->why = "no memory for the format-2 tables";
			*rc = -ENOMEM;
			return NULL;
		}
		t->serial = 0;
		(void)pthread_setspecific(event_tls_key, t);
		event_tls = t;
	}
	if (t->serial != r->serial) {
		event_load_dict(t, r->dict);
		t->serial = r->serial;
	}
	if (t->why != NULL) {
		r->why = t->why;
		return NULL;
	}
	return t;
}

#define EVENT_HAS(set, id) ((set)[(id) / 64] & UINT64_C(1) << ((id) % 64))

/*
 * The thread's tables holding r's Dict, loaded if need be, or NULL where
 * event_tables_for would allocate them or fail: what is left unresolved
 * then is resolved, or refused with its reason, by event_resolve, in the
 * order it always was.
 */
static inline struct event_tables *
event_tables_ready(struct event_reader *r)
{
	struct event_tables *t = event_tls;

	if (t == NULL || r->dict.ptr == NULL)
		return NULL;
	if (t->serial != r->serial) {
		event_load_dict(t, r->dict);
		t->serial = r->serial;
	}
	return t->why == NULL ? t : NULL;
}

/*
 * Resolves the key ids of ev's fields (a literal key, when there is one
 * too, is the key) and its origin (the event's own host, stream and
 * source, ptr set: present, override the origin's) through the tables of
 * the current Dict, found once per event. Returns 0, or -EPROTO/-ENOMEM
 * with r->why set.
 */
static int
event_resolve(struct event_reader *r, struct event *ev, uint64_t origin, bool keys)
{
	struct pbslice *own[3] = { &ev->host, &ev->stream, &ev->source };
	struct event_field *f = ev->fields, *end = keys ? ev->fields + ev->nfields : ev->fields;
	struct event_tables *t = NULL;
	int rc = -EPROTO;

	/* Through locals: stores to ev and r inside the loop cost a fifth of it (bench_codec). */
	for (; f < end; f++) {
		uint32_t id = f->key_id;

		if (id == 0 || f->key.ptr != NULL)
			continue;
		if (id > EVENT_MAX_KEY_ID) {
			r->why = "key id outside 1..4095";
			goto refused;
		}
		if (t == NULL && (t = event_tables_ready(r)) == NULL &&
		    (t = event_tables_for(r, true, &rc)) == NULL)
			goto refused;
		if (!EVENT_HAS(t->key_set, id)) {
			r->why = "key id the Dict does not define";
			goto refused;
		}
		f->key = t->keys[id];
	}
	/* Only a key id, or an origin, refers to the Dict (packed fields set it when they resolved theirs). */
	ev->dict_refs |= t != NULL || origin != 0;
	if (origin == 0)
		return 0;
	if (origin > EVENT_MAX_ORIGIN_ID) {
		r->why = "origin id outside 1..1023";
		return -EPROTO;
	}
	if (t == NULL && (t = event_tables_ready(r)) == NULL &&
	    (t = event_tables_for(r, false, &rc)) == NULL)
		return rc;
	if (!EVENT_HAS(t->origin_set, origin)) {
		r->why = "origin id the Dict does not define";
		return -EPROTO;
	}
	if (own[0]->ptr == NULL && own[1]->ptr == NULL && own[2]->ptr == NULL) {
		/* All three the origin's: events of the same origin_dict and origin_id share them. */
		ev->host = t->origins[origin][0];
		ev->stream = t->origins[origin][1];
		ev->source = t->origins[origin][2];
		ev->origin_dict = r->serial;
		ev->origin_id = (uint32_t)origin;
		return 0;
	}
	for (int i = 0; i < 3; i++)
		if (own[i]->ptr == NULL)
			*own[i] = t->origins[origin][i];
	return 0;
refused:
	ev->dict_refs = true;
	return rc;
}

void
event_reader_init(struct event_reader *r, const uint8_t *data, size_t len,
    struct event_field *fields, size_t max_fields)
{
	r->p = data;
	r->end = data + len;
	r->fields = fields;
	r->max_fields = max_fields;
	r->why = NULL;
	r->dict.ptr = NULL;
	r->dict.len = 0;
	r->serial = 0;
}

static int
event_packed_bad(struct event_cur *c, const char *why)
{
	event_fail(c, why);
	return -EPROTO;
}

/*
 * Format 3: one Event.packed_fields value, its entries appended to ev's
 * fields in order (slice offsets from 0 again in each value). Bounds as
 * a Slice's: within 4 GiB here, within the message where a slice is
 * resolved (event_field_string). Returns 0, -EPROTO or -E2BIG, r->why set.
 */
/*
 * The varint at p if it has 1 or 2 bytes before end: its value, and *n
 * its bytes; *n is 0 for any other. Nothing leaves registers.
 */
static inline __attribute__((always_inline)) uint32_t
event_peek_small(const uint8_t *p, const uint8_t *end, size_t *n)
{
	if (end - p >= 1 && p[0] < 0x80) {
		*n = 1;
		return p[0];
	}
	if (end - p >= 2 && p[1] < 0x80) {
		*n = 2;
		return (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
	}
	*n = 0;
	return 0;
}

static int
event_get_packed(struct event_reader *r, struct event_cur *c, unsigned wt, struct event *ev)
{
	struct event_field *fields = r->fields;
	size_t nf = ev->nfields, max = r->max_fields;
	struct event_tables *t;
	struct event_cur sub;
	const uint8_t *p, *stop;
	int64_t end = 0;
	bool pending = false, resolved = false;
	const char *bad;
	int rc = -EPROTO;

	if (!event_expect(c, wt, WT_LEN) || !event_enter(c, &sub))
		return -EPROTO;
	/*
	 * Keys resolved here, through locals, in the loop that reads them: a
	 * second pass over the fields (event_resolve) and stores to sub, ev
	 * and r were a third of a format-3 event's decoding (bench_codec).
	 */
	t = event_tables_ready(r);
	p = sub.p;
	stop = sub.end;
	while (p < stop) {
		struct event_field *f;
		uint64_t id, head, v;
		size_t n1, n2 = 0, n3 = 0;
		int64_t offset;

		if (nf == max) {
			r->why = "too many fields in one event";
			rc = -E2BIG;
			goto out;
		}
		/*
		 * All three 1 byte (an NGINX event's id, delta and length mostly
		 * are): one test, not three peeks. Each of the three otherwise
		 * mostly 1 or 2 bytes; any other, or an error, the general way.
		 */
		if (stop - p >= 3 && (p[0] | p[1] | p[2]) < 0x80) {
			id = p[0];
			head = p[1];
			v = p[2];
			p += 3;
		} else {
			id = event_peek_small(p, stop, &n1);
			if (n1 != 0)
				head = event_peek_small(p + n1, stop, &n2);
			if (n2 != 0)
				v = event_peek_small(p + n1 + n2, stop, &n3);
			if (n3 != 0) {
				p += n1 + n2 + n3;
			} else {
				sub.p = p;
				if (!event_get_varint(&sub, &id) || !event_get_varint(&sub, &head) ||
				    !event_get_varint(&sub, &v))
					goto out;
				p = sub.p;
			}
		}
		if (id == 0) {
			bad = "packed field with key id 0";
			goto bad;
		}
		f = &fields[nf++];
		/* Any id above 4095 is refused alike (event_resolve): kept above it. */
		f->key_id = id > UINT32_MAX ? UINT32_MAX : (uint32_t)id;
		if (t != NULL && id <= EVENT_MAX_KEY_ID && EVENT_HAS(t->key_set, id)) {
			f->key = t->keys[id];
			resolved = true;
		} else {
			f->key.ptr = NULL;
			f->key.len = 0;
			pending = true;
		}
		switch (head & 3) {
		case PACKED_SLICE:
			/* head >> 2 < 2^62: the delta and the sum stay well inside int64. */
			offset = end + ((int64_t)(head >> 3) ^ -(int64_t)(head >> 2 & 1));
			if (offset < 0 || offset > UINT32_MAX) {
				bad = "packed slice offset outside 0..4 GiB";
				goto bad;
			}
			if (v > UINT32_MAX) {
				bad = "packed slice length above 4 GiB";
				goto bad;
			}
			f->type = EVENT_SLICE;
			f->v.slice.offset = (uint32_t)offset;
			f->v.slice.length = (uint32_t)v;
			end = offset + (int64_t)v;
			break;
		case PACKED_INTEGER:
			if (head != PACKED_INTEGER) {
				bad = "packed integer with a nonzero head";
				goto bad;
			}
			f->type = EVENT_INTEGER;
			f->v.integer = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
			break;
		default:
			bad = "packed field of a reserved kind";
			goto bad;
		}
	}
	/* Every packed field names its key by id: those not resolved here are event_resolve's. */
	ev->dict_refs |= resolved;
	c->refs |= pending;
	rc = 0;
	goto out;
bad:
	rc = event_packed_bad(&sub, bad);
out:
	ev->nfields = nf;
	return rc;
}

/* Decodes one Event message's contents into ev. */
static int
event_decode(struct event_reader *r, struct event_cur *c, struct event *ev)
{
	struct pbslice *bytes[] = {
		[EVENT_HOST] = &ev->host, [EVENT_STREAM] = &ev->stream,
		[EVENT_SOURCE] = &ev->source, [EVENT_MESSAGE] = &ev->message,
	};
	unsigned field, wt;
	uint64_t origin = 0;
	bool ok;
	int rc;

	memset(ev, 0, sizeof(*ev));
	ev->fields = r->fields;
	while (c->p < c->end) {
		/* A field of under 128 bytes in the encoders' shape: without the steps below. */
		size_t n = c->end - c->p >= 2 ? c->p[1] : 0x80;

		if (c->p[0] == EVENT_TAG(EVENT_FIELDS, WT_LEN) && n < 0x80 &&
		    n <= (size_t)(c->end - c->p) - 2 && ev->nfields < r->max_fields &&
		    event_get_field_common(c->p + 2, c->p + 2 + n, &r->fields[ev->nfields], &c->refs,
		    &c->lit)) {
			ev->nfields++;
			c->p += 2 + n;
			continue;
		}
		if (!event_get_tag(c, &field, &wt))
			return -EPROTO;
		switch (field) {
		case EVENT_TS:
			ok = event_expect(c, wt, WT_64BIT) && event_get_fixed64(c, &ev->ts);
			break;
		case EVENT_HOST:
		case EVENT_STREAM:
		case EVENT_SOURCE:
		case EVENT_MESSAGE:
			ok = event_expect(c, wt, WT_LEN) && event_get_bytes(c, bytes[field]);
			break;
		case EVENT_FIELDS:
			if (ev->nfields == r->max_fields) {
				r->why = "too many fields in one event";
				return -E2BIG;
			}
			ok = event_expect(c, wt, WT_LEN) &&
			    event_get_field(c, &r->fields[ev->nfields++]);
			break;
		case EVENT_ORIGIN:
			ok = event_expect(c, wt, WT_VARINT) && event_get_varint(c, &origin);
			break;
		case EVENT_PACKED_FIELDS:
			if ((rc = event_get_packed(r, c, wt, ev)) != 0)
				return rc;
			ok = true;
			break;
		default:
			ok = event_skip(c, wt);
			break;
		}
		if (!ok)
			return -EPROTO;
	}
	/* Format 2's references, resolved once the whole event is read. */
	if ((c->refs || origin != 0) && (rc = event_resolve(r, ev, origin, c->refs)) != 0)
		return rc;
	/* Every key by id (packed ones always are), each resolved through r's current Dict. */
	if (!c->lit)
		ev->key_dict = r->serial;
	return 1;
}

int
event_reader_next(struct event_reader *r, struct event *ev)
{
	struct event_cur c = { r->p, r->end, &r->why, false, false }, sub;
	const uint8_t *start;
	unsigned field, wt;
	int rc;

	r->why = NULL;
	while (c.p < c.end) {
		if (!event_get_tag(&c, &field, &wt))
			goto malformed;
		if (field != EVENTLIST_EVENTS) {
			struct pbslice d;

			if (field != EVENTLIST_DICTS) {
				/* Not an event: skipped, as protobuf readers do. */
				if (!event_skip(&c, wt))
					goto malformed;
				continue;
			}
			/* Read when an event refers to it: a list may not need it at all. */
			if (!event_expect(&c, wt, WT_LEN) || !event_get_bytes(&c, &d))
				goto malformed;
			event_dict_use(r, d.ptr, d.len);
			continue;
		}
		if (!event_expect(&c, wt, WT_LEN) || !event_enter(&c, &sub))
			goto malformed;
		r->p = c.p;
		start = sub.p;
		sub.refs = false;
		sub.lit = false;
		/* A bad event leaves the reader past it: the list's framing is sound. */
		if ((rc = event_decode(r, &sub, ev)) < 0)
			return rc;
		/* Set after event_decode, which clears *ev: the Event's bytes, for pass-through. */
		ev->raw.ptr = start;
		ev->raw.len = (size_t)(sub.end - start);
		return rc;
	}
	r->p = r->end;
	return 0;
malformed:
	r->p = r->end;
	return -EPROTO;
}

int
event_list_count(const uint8_t *data, size_t len, uint64_t *count, const char **why)
{
	struct event_cur c = { data, data + len, why, false, false };
	struct pbslice b;
	unsigned field, wt;
	uint64_t n = 0;

	*why = NULL;
	while (c.p < c.end) {
		if (!event_get_tag(&c, &field, &wt))
			return -EPROTO;
		if (field == EVENTLIST_DICTS && !event_expect(&c, wt, WT_LEN))
			return -EPROTO;
		if (field != EVENTLIST_EVENTS) {
			if (!event_skip(&c, wt))
				return -EPROTO;
			continue;
		}
		if (!event_expect(&c, wt, WT_LEN) || !event_get_bytes(&c, &b))
			return -EPROTO;
		n++;
	}
	*count = n;
	return 0;
}

/* Fields of one event event_list_format1 can re-encode (its reader's array, on the stack). */
#define EVENT_CONVERT_FIELDS 256

int
event_list_format1(const uint8_t *data, size_t len, struct buf *out)
{
	struct event_field fields[EVENT_CONVERT_FIELDS];
	struct event_reader r;
	struct event ev;
	size_t before = out->len;
	uint64_t n;
	const char *why;
	int rc;

	if (event_list_count(data, len, &n, &why) != 0)
		return -EPROTO;
	event_reader_init(&r, data, len, fields, EVENT_CONVERT_FIELDS);
	for (;;) {
		const uint8_t *start = r.p;

		if ((rc = event_reader_next(&r, &ev)) == 0)
			return 0;
		if (rc == 1 && ev.dict_refs) {
			rc = event_encode(&ev, out);
		} else {
			/*
			 * Self-contained, or malformed: its bytes as they are, so that
			 * it stays one event (a malformed one for the reader too).
			 */
			struct event_cur c = { start, r.p, &why, false, false };
			const uint8_t *element;
			unsigned field, wt;

			/* Past any Dict in front of it: the event's own element. */
			do {
				element = c.p;
				if (!event_get_tag(&c, &field, &wt) || !event_skip(&c, wt))
					goto bad;
			} while (field != EVENTLIST_EVENTS);
			rc = buf_append(out, element, (size_t)(c.p - element));
		}
		if (rc != 0) {
			out->len = before;
			return rc;
		}
	}
bad:
	out->len = before;
	return -EPROTO;
}

int
event_field_string(const struct event *ev, const struct event_field *f,
    struct pbslice *out)
{
	if (f->type == EVENT_TEXT) {
		*out = f->v.text;
		return 0;
	}
	if (f->type != EVENT_SLICE)
		return -EINVAL;
	if (f->v.slice.offset > ev->message.len ||
	    f->v.slice.length > ev->message.len - f->v.slice.offset)
		return -EPROTO;
	/* An event without a message has a NULL one: no arithmetic on it. */
	out->ptr = ev->message.ptr != NULL ? ev->message.ptr + f->v.slice.offset : NULL;
	out->len = f->v.slice.length;
	return 0;
}
