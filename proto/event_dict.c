/* SPDX-License-Identifier: Apache-2.0 */
/* event_dict: format 2's names and origins table (see event_dict.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/event_dict.h"

/* Open addressing, at most half full: ids are bounded, so are these. */
#define EVENT_DICT_KEY_SLOTS 8192
#define EVENT_DICT_ORIGIN_SLOTS 2048
/*
 * Parsers pass the same key pointers with every event: a pointer and
 * length seen before skips the hashing. The bytes are still compared (a
 * JSON source's keys live in its reused line buffer) unless the event has
 * static_keys: a string literal at that address is the name the hint saw
 * (no other buffer is ever at a literal's address), which spares NGINX's
 * 11 comparisons per event.
 */
#define EVENT_DICT_KEY_CACHE 256
#define EVENT_DICT_ORIGIN_CACHE 64
/* Events with more fields than this are written with literal names. */
#define EVENT_DICT_MAX_FIELDS 512
/*
 * Key sets remembered (struct event's key_set), and a remembered set's
 * most fields: NGINX combined makes 16 lists of at most 11 keys.
 */
#define EVENT_DICT_SETS 32
#define EVENT_DICT_SET_FIELDS 32

struct event_dict_key_hint {
	const uint8_t *ptr;
	size_t len;
	unsigned id;
};

struct event_dict_origin_hint {
	const uint8_t *ptr[3];
	size_t len[3];
	unsigned id;
};

/*
 * A key set's ids and the bits they set in event_dict_used's keys, word by
 * word: what the lookups of its keys one by one give, every time, as an
 * id never changes once given and a name that got none (table full) never
 * gets one later (the arena and the ids only fill up).
 */
struct event_dict_set {
	const void *key_set;                                /* NULL: empty */
	size_t nfields;
	uint16_t ids[EVENT_DICT_SET_FIELDS];
	unsigned nwords;
	uint16_t word[EVENT_DICT_SET_FIELDS];
	uint64_t bits[EVENT_DICT_SET_FIELDS];
};

struct event_dict {
	struct pbslice keys[EVENT_MAX_KEY_ID + 1];          /* into arena */
	struct pbslice origins[EVENT_MAX_ORIGIN_ID + 1][3];
	unsigned nkeys, norigins;                           /* ids given so far */
	uint16_t key_slots[EVENT_DICT_KEY_SLOTS];           /* an id, 0: empty */
	uint16_t origin_slots[EVENT_DICT_ORIGIN_SLOTS];
	struct event_dict_key_hint key_hints[EVENT_DICT_KEY_CACHE];
	struct event_dict_origin_hint origin_hints[EVENT_DICT_ORIGIN_CACHE];
	uint16_t ids[EVENT_DICT_MAX_FIELDS];                /* one event's key ids */
	/*
	 * The last two keys each field position had: a source's events list
	 * the same names in the same order, so most keys are found here with
	 * one comparison and no hashing (bench_codec, the agent's callgrind).
	 * Two, as a left-out field ("-" in NGINX) shifts the names after it by
	 * one: with one, 3 of 10 NGINX fields missed (agent, callgrind).
	 */
	struct event_dict_key_hint at[EVENT_DICT_MAX_FIELDS][2];
	/*
	 * Events of a parser that names its lists of keys skip the hints:
	 * 11 of them per NGINX event were about 250 instructions (callgrind).
	 */
	struct event_dict_set sets[EVENT_DICT_SETS];
	/*
	 * The last event's origin_gen and its origin id: the lines of a read
	 * buffer have the same one, found with one comparison.
	 */
	uint64_t gen;
	unsigned gen_origin;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	int format;                                         /* EVENT_FORMAT_2 or _3 */
};

struct event_dict *
event_dict_new(size_t arena_bytes)
{
	struct event_dict *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	if ((d->arena = malloc(arena_bytes > 0 ? arena_bytes : 1)) == NULL) {
		free(d);
		return NULL;
	}
	d->arena_cap = arena_bytes;
	d->format = EVENT_FORMAT_2;
	return d;
}

void
event_dict_set_format(struct event_dict *d, int format)
{
	d->format = format;
}

void
event_dict_free(struct event_dict *d)
{
	if (d == NULL)
		return;
	free(d->arena);
	free(d);
}

/* FNV-1a 64, continued from h. */
static uint64_t
event_dict_hash(uint64_t h, const struct pbslice *b)
{
	for (size_t i = 0; i < b->len; i++)
		h = (h ^ b->ptr[i]) * 0x100000001b3ull;
	return h;
}

#define EVENT_DICT_FNV 0xcbf29ce484222325ull

/*
 * Names are mostly 4 to 16 bytes: two overlapping loads compare them
 * without a call (memcmp was a fifth of the encoding, bench_codec). A
 * file's path (often 17 to 32 bytes) takes four, a short host name a byte
 * loop: the origin's two memcmp calls were about 50 instructions per
 * event (the agent, callgrind).
 */
static inline __attribute__((always_inline)) bool
event_dict_same(const struct pbslice *a, const struct pbslice *b)
{
	size_t n = a->len;

	if (n != b->len)
		return false;
	if (n > 16 && n <= 32) {
		uint64_t x[4], y[4];

		memcpy(&x[0], a->ptr, 8);
		memcpy(&y[0], b->ptr, 8);
		memcpy(&x[1], a->ptr + 8, 8);
		memcpy(&y[1], b->ptr + 8, 8);
		memcpy(&x[2], a->ptr + n - 16, 8);
		memcpy(&y[2], b->ptr + n - 16, 8);
		memcpy(&x[3], a->ptr + n - 8, 8);
		memcpy(&y[3], b->ptr + n - 8, 8);
		return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
	}
	if (n < 4) {
		for (size_t i = 0; i < n; i++)
			if (a->ptr[i] != b->ptr[i])
				return false;
		return true;
	}
	if (n >= 8 && n <= 16) {
		uint64_t x[2], y[2];

		memcpy(&x[0], a->ptr, 8);
		memcpy(&y[0], b->ptr, 8);
		memcpy(&x[1], a->ptr + n - 8, 8);
		memcpy(&y[1], b->ptr + n - 8, 8);
		return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
	}
	if (n >= 4 && n < 8) {
		uint32_t x[2], y[2];

		memcpy(&x[0], a->ptr, 4);
		memcpy(&y[0], b->ptr, 4);
		memcpy(&x[1], a->ptr + n - 4, 4);
		memcpy(&y[1], b->ptr + n - 4, 4);
		return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
	}
	return memcmp(a->ptr, b->ptr, n) == 0;
}

/* A copy of b in the arena, or false when the arena is full. */
static bool
event_dict_keep(struct event_dict *d, const struct pbslice *b, struct pbslice *out)
{
	if (b->len > d->arena_cap - d->arena_len)
		return false;
	if (b->len > 0)
		memcpy(d->arena + d->arena_len, b->ptr, b->len);
	out->ptr = d->arena + d->arena_len;
	out->len = b->len;
	d->arena_len += b->len;
	return true;
}

/*
 * A hint's slot for a name at ptr: a parser's names are string constants
 * side by side, whose addresses differ in their low bits only, which
 * (ptr >> 3) ^ len mapped to the same slots (the agent hashed a name for
 * 3 in 10 fields of NGINX events, whose sets of names vary, callgrind).
 */
static inline size_t
event_dict_ptr_slot(const uint8_t *ptr, size_t len, size_t slots)
{
	return (size_t)((((uint64_t)(uintptr_t)ptr + len) * 0x9e3779b97f4a7c15ull) >> 40) % slots;
}

/* key's id, taken now if need be; 0: written literally (table full). */
static unsigned
event_dict_key(struct event_dict *d, const struct pbslice *key, bool fixed)
{
	struct event_dict_key_hint *hint = &d->key_hints[event_dict_ptr_slot(key->ptr, key->len,
	    EVENT_DICT_KEY_CACHE)];
	size_t slot;
	unsigned id;

	if (hint->id != 0 && hint->ptr == key->ptr && hint->len == key->len &&
	    (fixed || event_dict_same(&d->keys[hint->id], key)))
		return hint->id;
	slot = event_dict_hash(EVENT_DICT_FNV, key) % EVENT_DICT_KEY_SLOTS;
	while ((id = d->key_slots[slot]) != 0 && !event_dict_same(&d->keys[id], key))
		slot = (slot + 1) % EVENT_DICT_KEY_SLOTS;
	if (id == 0) {
		if (d->nkeys == EVENT_MAX_KEY_ID || !event_dict_keep(d, key, &d->keys[d->nkeys + 1]))
			return 0;
		id = ++d->nkeys;
		d->key_slots[slot] = (uint16_t)id;
	}
	*hint = (struct event_dict_key_hint){ key->ptr, key->len, id };
	return id;
}

/* The origin id of ev's host, stream and source; 0: literal (none, or table full). */
static unsigned
event_dict_origin(struct event_dict *d, const struct event *ev)
{
	const struct pbslice o[3] = { ev->host, ev->stream, ev->source };
	struct event_dict_origin_hint *hint;
	uint64_t h = EVENT_DICT_FNV;
	size_t slot;
	unsigned id;

	if (o[0].len == 0 && o[1].len == 0 && o[2].len == 0)
		return 0;
	hint = &d->origin_hints[(((uintptr_t)o[0].ptr ^ (uintptr_t)o[1].ptr ^
	    (uintptr_t)o[2].ptr) >> 3) % EVENT_DICT_ORIGIN_CACHE];
	if (hint->id != 0) {
		bool same = true;

		for (int i = 0; i < 3 && same; i++)
			same = hint->ptr[i] == o[i].ptr && hint->len[i] == o[i].len &&
			    event_dict_same(&d->origins[hint->id][i], &o[i]);
		if (same)
			return hint->id;
	}
	for (int i = 0; i < 3; i++)
		h = event_dict_hash(h * 31 + o[i].len, &o[i]);
	slot = h % EVENT_DICT_ORIGIN_SLOTS;
	while ((id = d->origin_slots[slot]) != 0 && !(event_dict_same(&d->origins[id][0], &o[0]) &&
	    event_dict_same(&d->origins[id][1], &o[1]) && event_dict_same(&d->origins[id][2], &o[2])))
		slot = (slot + 1) % EVENT_DICT_ORIGIN_SLOTS;
	if (id == 0) {
		size_t mark = d->arena_len;
		struct pbslice *e;

		if (d->norigins == EVENT_MAX_ORIGIN_ID)
			return 0;
		e = d->origins[d->norigins + 1];
		for (int i = 0; i < 3; i++) {
			if (!event_dict_keep(d, &o[i], &e[i])) {
				d->arena_len = mark;
				return 0;
			}
		}
		id = ++d->norigins;
		d->origin_slots[slot] = (uint16_t)id;
	}
	*hint = (struct event_dict_origin_hint){ { o[0].ptr, o[1].ptr, o[2].ptr },
	    { o[0].len, o[1].len, o[2].len }, id };
	return id;
}

/* Bit 0 (no id) may be set too: a Dict starts at id 1. */
#define EVENT_DICT_SET(bits, id) ((bits)[(id) / 64] |= UINT64_C(1) << ((id) % 64))

/* The slot of key_set (the address of a parser's object) in d->sets. */
static inline struct event_dict_set *
event_dict_set_of(struct event_dict *d, const void *key_set)
{
	return &d->sets[(((uint64_t)(uintptr_t)key_set * 0x9e3779b97f4a7c15ull) >> 40) %
	    EVENT_DICT_SETS];
}

/* Remembers ids, the ids of ev's keys, as ev->key_set's. */
static void
event_dict_set_keep(struct event_dict *d, const struct event *ev, const uint16_t *ids)
{
	struct event_dict_set *st = event_dict_set_of(d, ev->key_set);

	st->key_set = ev->key_set;
	st->nfields = ev->nfields;
	st->nwords = 0;
	for (size_t i = 0; i < ev->nfields; i++) {
		unsigned w = ids[i] / 64, j;

		st->ids[i] = ids[i];
		for (j = 0; j < st->nwords && st->word[j] != w; j++)
			continue;
		if (j == st->nwords) {
			st->word[j] = (uint16_t)w;
			st->bits[j] = 0;
			st->nwords++;
		}
		st->bits[j] |= UINT64_C(1) << (ids[i] % 64);
	}
}

int
event_dict_encode(struct event_dict *d, const struct event *ev, struct event_dict_used *used,
    struct buf *out)
{
	const uint16_t *ids = NULL;
	struct event_dict_set *st = NULL;
	unsigned origin;
	int r;

	/*
	 * The same number, the same bytes: the same id (or the same 0 of a
	 * full table, which only fills up).
	 */
	if (ev->origin_gen != 0 && ev->origin_gen == d->gen) {
		origin = d->gen_origin;
	} else {
		origin = event_dict_origin(d, ev);
		if (ev->origin_gen != 0) {
			d->gen = ev->origin_gen;
			d->gen_origin = origin;
		}
	}
	if (ev->static_keys && ev->key_set != NULL && ev->nfields <= EVENT_DICT_SET_FIELDS) {
		st = event_dict_set_of(d, ev->key_set);
		if (st->key_set == ev->key_set && st->nfields == ev->nfields) {
			for (unsigned j = 0; j < st->nwords; j++)
				used->keys[st->word[j]] |= st->bits[j];
			ids = st->ids;
			goto encode;
		}
	}
	/* Marked before encoding: an event that fails leaves at most unused entries. */
	if (ev->nfields <= EVENT_DICT_MAX_FIELDS) {
		for (size_t i = 0; i < ev->nfields; i++) {
			const struct pbslice *k = &ev->fields[i].key;
			struct event_dict_key_hint *h = d->at[i];
			unsigned id = 0;

			if (h[0].id != 0 && h[0].ptr == k->ptr && h[0].len == k->len &&
			    (ev->static_keys || event_dict_same(&d->keys[h[0].id], k))) {
				id = h[0].id;
			} else if (h[1].id != 0 && h[1].ptr == k->ptr && h[1].len == k->len &&
			    (ev->static_keys || event_dict_same(&d->keys[h[1].id], k))) {
				id = h[1].id;
			} else if (k->len > 0) {
				id = event_dict_key(d, k, ev->static_keys);
				h[1] = h[0];
				h[0] = (struct event_dict_key_hint){ k->ptr, k->len, id };
			}
			d->ids[i] = (uint16_t)id;
			EVENT_DICT_SET(used->keys, id);
		}
		ids = d->ids;
		if (st != NULL)
			event_dict_set_keep(d, ev, ids);
	}
encode:
	if (origin)
		EVENT_DICT_SET(used->origins, origin);
	if ((r = d->format == EVENT_FORMAT_3 ? event_encode_packed(ev, ids, origin, out) :
	    event_encode_ids(ev, ids, origin, out)) != 0)
		return r;
	return 0;
}

int
event_dict_write(const struct event_dict *d, const struct event_dict_used *used,
    struct buf *out)
{
	return event_encode_dict(d->keys, used->keys, (const struct pbslice (*)[3])d->origins,
	    used->origins, out);
}

void
event_dict_used_add(struct event_dict_used *dst, const struct event_dict_used *src)
{
	for (size_t i = 0; i < sizeof(dst->keys) / sizeof(dst->keys[0]); i++)
		dst->keys[i] |= src->keys[i];
	for (size_t i = 0; i < sizeof(dst->origins) / sizeof(dst->origins[0]); i++)
		dst->origins[i] |= src->origins[i];
}
