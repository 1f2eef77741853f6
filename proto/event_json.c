/* SPDX-License-Identifier: Apache-2.0 */
/* event_json: an event as a JSON record (see event_json.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/base64.h"
#include "common/jsonw.h"
#include "proto/event_json.h"

/* Inline in both loops over the fields, as it was in the one before Hive names. */
/* marks: where ev's message needed more than a copy (jsonw_string_marked); at: jsonw_part_at's. */
static inline __attribute__((always_inline)) int
event_json_field(const struct event *ev, const struct event_field *f,
    const struct jsonw_marks *marks, size_t *at, struct buf *out)
{
	switch (f->type) {
	case EVENT_TEXT:
		return jsonw_string(out, f->v.text.ptr, f->v.text.len);
	case EVENT_SLICE:
		/* Outside the message: null, as event_field_string refuses it (checked here, inline). */
		if (f->v.slice.offset > ev->message.len ||
		    f->v.slice.length > ev->message.len - f->v.slice.offset)
			return jsonw_raw(out, "null");
		/* The message was scanned as it was written: its clean parts are copied. */
		return jsonw_part_at(out, ev->message.ptr, f->v.slice.offset, f->v.slice.length,
		    marks, at);
	case EVENT_INTEGER:
		return jsonw_int(out, f->v.integer);
	case EVENT_NUMBER:
		return jsonw_double(out, f->v.number);
	case EVENT_BOOLEAN:
		return jsonw_raw(out, f->v.boolean ? "true" : "false");
	case EVENT_JSON:
		/* JSON text written by the agent's parser; kept as a string if it is not one. */
		if (f->v.json.len == 0)
			return jsonw_raw(out, "null");
		if (f->v.json.ptr[0] == '{' || f->v.json.ptr[0] == '[')
			return buf_append(out, f->v.json.ptr, f->v.json.len);
		return jsonw_string(out, f->v.json.ptr, f->v.json.len);
	default:
		return jsonw_raw(out, "null");
	}
}

/* Appends ",\"message_b64\":\"...\"": the bytes of a message that is not UTF-8. */
static int
event_json_b64(struct buf *out, const struct pbslice *m)
{
	int r;

	if ((r = jsonw_raw(out, ",\"message_b64\":\"")) != 0 ||
	    (r = buf_reserve(out, BASE64_LEN(m->len) + 1)) != 0)
		return r;
	base64_encode(m->ptr, m->len, out->data + out->len);
	out->len += BASE64_LEN(m->len);
	return buf_append(out, "\"", 1);
}

/* Hive names: a byte's in a name (lower-cased letter, digit, '_'), 0 for the others. */
static const uint8_t event_json_hive_byte[256] = {
	['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
	['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
	['_'] = '_',
	['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f',
	['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l',
	['M'] = 'm', ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r',
	['S'] = 's', ['T'] = 't', ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x',
	['Y'] = 'y', ['Z'] = 'z',
	['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f',
	['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l',
	['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r',
	['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x',
	['y'] = 'y', ['z'] = 'z',
};

/* "_" and the decimal digits of a suffix, at most (_2 .. _1025). */
#define EVENT_JSON_SUFFIX_MAX 8
/* Twice the fields at most: open addressing stays short. A power of 2. */
#define EVENT_JSON_HIVE_SLOTS (2 * EVENT_JSON_HIVE_MAX_FIELDS)

/*
 * The names of one record's fields so far, as offsets from the record's
 * start into its buffer: offsets, not pointers, as the buffer may move
 * when it grows.
 */
struct event_json_names_taken {
	size_t mask;                              /* slots in use - 1 */
	struct { uint32_t off, len; } slot[EVENT_JSON_HIVE_SLOTS];   /* len 0: free */
};

static uint32_t
event_json_hash(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;     /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Whether name[0, n) is taken; if not, *at is the free slot where it goes. */
static bool
event_json_taken(const struct event_json_names_taken *t, const uint8_t *base,
    const uint8_t *name, size_t n, size_t *at)
{
	size_t i = event_json_hash(name, n) & t->mask;

	for (; t->slot[i].len != 0; i = (i + 1) & t->mask)
		if (t->slot[i].len == n && memcmp(base + t->slot[i].off, name, n) == 0)
			return true;
	*at = i;
	return false;
}

/* Appends key's Hive name, unique in the record begun at start, quoted, and ':'. */
static int
event_json_hive_key(struct buf *out, size_t start, const struct pbslice *key,
    struct event_json_names_taken *t)
{
	uint8_t *name;
	size_t n = 0, at;
	bool run = false;
	int r;

	/* Quotes, ':', a '_' before, a suffix and snprintf's NUL. */
	if ((r = buf_reserve(out, key->len + 4 + EVENT_JSON_SUFFIX_MAX + 1)) != 0)
		return r;
	if (out->len + 1 - start > UINT32_MAX)
		return -EMSGSIZE;
	out->data[out->len] = '"';
	name = out->data + out->len + 1;
	for (size_t i = 0; i < key->len; i++) {
		uint8_t c = event_json_hive_byte[key->ptr[i]];

		if (c != 0)
			name[n++] = c;
		else if (!run)
			name[n++] = '_';
		run = c == 0;
	}
	/* Columns start with a letter or '_' (Avro, and Hive's unquoted identifiers, want it). */
	if (n == 0 || (name[0] >= '0' && name[0] <= '9')) {
		memmove(name + 1, name, n);
		name[0] = '_';
		n++;
	}
	if (event_json_taken(t, out->data + start, name, n, &at)) {
		size_t base = n;

		for (unsigned k = 2;; k++) {
			n = base + (size_t)snprintf((char *)name + base, EVENT_JSON_SUFFIX_MAX + 1,
			    "_%u", k);
			if (!event_json_taken(t, out->data + start, name, n, &at))
				break;
		}
	}
	t->slot[at].off = (uint32_t)(out->len + 1 - start);
	t->slot[at].len = (uint32_t)n;
	name[n] = '"';
	name[n + 1] = ':';
	out->len += n + 3;
	return 0;
}

/* The members of "fields" with Hive names (out of event_json_as: its table is large). */
static __attribute__((noinline)) int
event_json_hive_fields(const struct event *ev, const struct jsonw_marks *marks, size_t start,
    struct buf *out)
{
	struct event_json_names_taken t;
	size_t at = 0;
	int r = 0;

	for (t.mask = 16; t.mask < 2 * ev->nfields; t.mask *= 2)
		;
	memset(t.slot, 0, t.mask * sizeof(t.slot[0]));
	t.mask--;
	for (size_t i = 0; i < ev->nfields && r == 0; i++) {
		if (i > 0)
			r |= jsonw_raw(out, ",");
		r |= event_json_hive_key(out, start, &ev->fields[i].key, &t);
		r |= event_json_field(ev, &ev->fields[i], marks, &at, out);
	}
	return r;
}

/* The message's value, message_b64 when it is not UTF-8, and ,"fields":{ */
static int
event_json_message(const struct event *ev, struct jsonw_marks *marks, struct buf *out)
{
	bool replaced;
	int r;

	r = jsonw_string_marked(out, ev->message.ptr, ev->message.len, &replaced, marks);
	/* U+FFFD lost the bytes: keep them, so that the line can be had back. */
	if (replaced && r == 0)
		r |= event_json_b64(out, &ev->message);
	return r | jsonw_raw(out, ",\"fields\":{");
}

/* Closes the record begun at start, or restores out if r says a part failed. */
static int
event_json_end(struct buf *out, size_t start, int r)
{
	r |= jsonw_raw(out, "}}");
	if (r != 0) {
		out->len = start;
		return -EMSGSIZE;
	}
	return 0;
}

/* The members between "ts" and the message's value: ,"host":...,"message": */
static int
event_json_head(const struct event *ev, const char *agent, const char *extra, struct buf *out)
{
	int r = 0;

	r |= jsonw_raw(out, ",\"host\":");
	r |= jsonw_string(out, ev->host.ptr, ev->host.len);
	if (agent != NULL) {
		r |= jsonw_raw(out, ",\"agent\":");
		r |= jsonw_cstring(out, agent);
	}
	if (extra != NULL) {
		r |= jsonw_raw(out, ",");
		r |= jsonw_raw(out, extra);
	}
	r |= jsonw_raw(out, ",\"stream\":");
	r |= jsonw_string(out, ev->stream.ptr, ev->stream.len);
	r |= jsonw_raw(out, ",\"source\":");
	r |= jsonw_string(out, ev->source.ptr, ev->source.len);
	r |= jsonw_raw(out, ",\"message\":");
	return r;
}

int
event_json_as(const struct event *ev, const char *agent, const char *extra,
    enum event_json_names names, struct buf *out)
{
	size_t start = out->len, at = 0;
	struct jsonw_marks marks;
	int r = 0;

	if (names == EVENT_JSON_NAMES_HIVE && ev->nfields > EVENT_JSON_HIVE_MAX_FIELDS)
		return -E2BIG;
	r |= jsonw_raw(out, "{\"ts\":");
	r |= jsonw_time(out, ev->ts);
	r |= event_json_head(ev, agent, extra, out);
	r |= event_json_message(ev, &marks, out);
	if (names == EVENT_JSON_NAMES_HIVE && r == 0) {
		r |= event_json_hive_fields(ev, &marks, start, out);
	} else {
		for (size_t i = 0; i < ev->nfields && r == 0; i++) {
			if (i > 0)
				r |= jsonw_raw(out, ",");
			r |= jsonw_string(out, ev->fields[i].key.ptr, ev->fields[i].key.len);
			r |= jsonw_raw(out, ":");
			r |= event_json_field(ev, &ev->fields[i], &marks, &at, out);
		}
	}
	return event_json_end(out, start, r);
}

int
event_json(const struct event *ev, const char *agent, const char *extra, struct buf *out)
{
	return event_json_as(ev, agent, extra, EVENT_JSON_NAMES_ORIGINAL, out);
}

/* The first and the last w bytes of p[0, n), n 4..16 (w: 8 from n 8, else 4): all of them. */
static inline void
event_json_ends(const uint8_t *p, size_t n, uint64_t e[2])
{
	uint32_t head, tail;

	if (n >= 8) {
		memcpy(&e[0], p, 8);
		memcpy(&e[1], p + n - 8, 8);
		return;
	}
	memcpy(&head, p, 4);
	memcpy(&tail, p + n - 4, 4);
	e[0] = head;
	e[1] = tail;
}

/*
 * Whether a[0, n) equals b[0, n). Names, hosts and streams are mostly 4 to
 * 16 bytes: compared in two loads each, overlapping, not through memcmp's
 * call (a tenth of a cached record's instructions, bench_kafka).
 */
static inline bool
event_json_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t x[2], y[2];

	if (n < 4 || n > 16)
		return n == 0 || memcmp(a, b, n) == 0;
	event_json_ends(a, n, x);
	event_json_ends(b, n, y);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/* Whether the bytes of p equal from[*off, *off + n); moves *off past them. */
static inline bool
event_json_same(const struct pbslice *p, size_t n, const uint8_t *from, size_t *off)
{
	bool same = p->len == n && event_json_equal(p->ptr, from + *off, n);

	*off += n;
	return same;
}

/* Appends p's bytes to from; returns their length. */
static size_t
event_json_keep(struct buf *from, const void *p, size_t n, int *r)
{
	*r |= buf_append(from, p, n);
	return n;
}

/* c's head for ev and agent, rendered again unless it is the last one's. 0, or -1: not cached. */
static int
event_json_cache_head(struct event_json_cache *c, const struct event *ev, const char *agent)
{
	size_t alen = agent != NULL ? strlen(agent) : 0, off = 0;
	struct pbslice a = { (const uint8_t *)agent, alen };
	int r = 0;

	/* One Dict's origin gives the same host, stream and source: only the agent is compared. */
	if (c->head_ok && ev->origin_dict != 0 && ev->origin_dict == c->origin_dict &&
	    ev->origin_id == c->origin_id && c->has_agent == (agent != NULL)) {
		off = c->host_len + c->stream_len + c->source_len;
		if (event_json_same(&a, c->agent_len, c->head_from.data, &off))
			return 0;
	}
	off = 0;
	c->origin_dict = ev->origin_dict;
	c->origin_id = ev->origin_id;
	if (c->head_ok && c->has_agent == (agent != NULL) &&
	    event_json_same(&ev->host, c->host_len, c->head_from.data, &off) &&
	    event_json_same(&ev->stream, c->stream_len, c->head_from.data, &off) &&
	    event_json_same(&ev->source, c->source_len, c->head_from.data, &off) &&
	    event_json_same(&a, c->agent_len, c->head_from.data, &off))
		return 0;
	buf_reset(&c->head_from);
	buf_reset(&c->head);
	c->host_len = event_json_keep(&c->head_from, ev->host.ptr, ev->host.len, &r);
	c->stream_len = event_json_keep(&c->head_from, ev->stream.ptr, ev->stream.len, &r);
	c->source_len = event_json_keep(&c->head_from, ev->source.ptr, ev->source.len, &r);
	c->agent_len = event_json_keep(&c->head_from, agent, alen, &r);
	c->has_agent = agent != NULL;
	r |= event_json_head(ev, agent, NULL, &c->head);
	c->head_ok = r == 0;
	return c->head_ok ? 0 : -1;
}

/*
 * Whether set holds ev's field names in the form names. Inline in its one
 * caller's loop, through pointers: three calls of it per record were a
 * tenth of a cached record's instructions (bench_kafka).
 */
static inline __attribute__((always_inline)) bool
event_json_set_holds(const struct event_json_names_set *set, const struct event *ev,
    enum event_json_names names)
{
	const struct event_field *f = ev->fields, *end = ev->fields + ev->nfields;
	const uint8_t *from = set->keys_from.data;
	const uint32_t *len = set->key_len;

	if (!set->ok || set->names != names || set->nnames != ev->nfields)
		return false;
	/* One Dict's ids name its keys alike: a third of the bytes' cost (bench_relay.sh). */
	if (ev->key_dict != 0 && ev->key_dict == set->dict) {
		const uint32_t *id = set->key_id;

		for (; f < end; f++, id++)
			if (f->key_id != *id)
				return false;
		return true;
	}
	for (; f < end; f++, len++) {
		if (f->key.len != *len || !event_json_equal(f->key.ptr, from, *len))
			return false;
		from += *len;
	}
	return true;
}

/* Makes set matched by ev's Dict's ids from now on (set holds ev's names). */
static void
event_json_set_ids(struct event_json_names_set *set, const struct event *ev)
{
	set->dict = ev->key_dict;
	if (ev->key_dict != 0)
		for (size_t i = 0; i < ev->nfields; i++)
			set->key_id[i] = ev->fields[i].key_id;
}

/* Renders ev's field names into set. 0, or -1: they do not fit. */
static int
event_json_set_render(struct event_json_names_set *set, const struct event *ev,
    enum event_json_names names)
{
	struct event_json_names_taken t;
	int r = 0;

	buf_reset(&set->keys_from);
	buf_reset(&set->rendered);
	if (names == EVENT_JSON_NAMES_HIVE) {
		for (t.mask = 16; t.mask < 2 * ev->nfields; t.mask *= 2)
			;
		memset(t.slot, 0, t.mask * sizeof(t.slot[0]));
		t.mask--;
	}
	/* Each name as the uncached loops write it: ',' before all but the first, quoted, ':'. */
	for (size_t i = 0; i < ev->nfields && r == 0; i++) {
		const struct pbslice *key = &ev->fields[i].key;

		set->key_len[i] = (uint32_t)event_json_keep(&set->keys_from, key->ptr, key->len, &r);
		if (i > 0)
			r |= jsonw_raw(&set->rendered, ",");
		if (names == EVENT_JSON_NAMES_HIVE) {
			r |= event_json_hive_key(&set->rendered, 0, key, &t);
		} else {
			r |= jsonw_string(&set->rendered, key->ptr, key->len);
			r |= jsonw_raw(&set->rendered, ":");
		}
		set->name_end[i] = (uint32_t)set->rendered.len;
	}
	set->names = names;
	set->nnames = ev->nfields;
	event_json_set_ids(set, ev);
	set->ok = r == 0;
	return set->ok ? 0 : -1;
}

/*
 * The set of c holding ev's field names: the last one used, another one
 * kept, or one rendered now in place of the oldest. NULL: not cached.
 */
static const struct event_json_names_set *
event_json_cache_names(struct event_json_cache *c, const struct event *ev,
    enum event_json_names names)
{
	struct event_json_names_set *set;

	if (ev->nfields > EVENT_JSON_CACHE_FIELDS)
		return NULL;
	/* The last one used first, then the others after it. */
	for (unsigned k = 0; k < EVENT_JSON_CACHE_SETS; k++) {
		unsigned i = (c->last + k) % EVENT_JSON_CACHE_SETS;

		if (event_json_set_holds(&c->set[i], ev, names)) {
			/* Matched by bytes: the ids of ev's Dict match the next ones. */
			if (c->set[i].dict != ev->key_dict && ev->key_dict != 0)
				event_json_set_ids(&c->set[i], ev);
			c->last = i;
			return &c->set[i];
		}
	}
	set = &c->set[c->victim];
	if (event_json_set_render(set, ev, names) != 0)
		return NULL;
	c->last = c->victim;
	c->victim = (c->victim + 1) % EVENT_JSON_CACHE_SETS;
	return set;
}

void
event_json_cache_init(struct event_json_cache *c)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->head_from, EVENT_JSON_CACHE_BYTES);
	buf_init(&c->head, EVENT_JSON_CACHE_BYTES);
	for (unsigned i = 0; i < EVENT_JSON_CACHE_SETS; i++) {
		buf_init(&c->set[i].keys_from, EVENT_JSON_CACHE_BYTES);
		buf_init(&c->set[i].rendered, EVENT_JSON_CACHE_BYTES);
	}
}

void
event_json_cache_free(struct event_json_cache *c)
{
	buf_free(&c->head_from);
	buf_free(&c->head);
	for (unsigned i = 0; i < EVENT_JSON_CACHE_SETS; i++) {
		buf_free(&c->set[i].keys_from);
		buf_free(&c->set[i].rendered);
		c->set[i].ok = false;
	}
	c->head_ok = false;
}

int
event_json_cached(const struct event *ev, const char *agent, enum event_json_names names,
    struct event_json_cache *c, struct buf *out)
{
	size_t start = out->len, prev = 0, at = 0;
	const struct event_json_names_set *set;
	struct jsonw_marks marks;
	int r = 0;

	/* What the cache cannot hold (long values, many fields) is written as before. */
	if (event_json_cache_head(c, ev, agent) != 0 ||
	    (set = event_json_cache_names(c, ev, names)) == NULL)
		return event_json_as(ev, agent, NULL, names, out);
	r |= jsonw_raw(out, "{\"ts\":");
	r |= jsonw_time(out, ev->ts);
	r |= buf_append(out, c->head.data, c->head.len);
	r |= event_json_message(ev, &marks, out);
	for (size_t i = 0; i < ev->nfields && r == 0; i++) {
		r |= jsonw_append(out, set->rendered.data + prev, set->name_end[i] - prev);
		prev = set->name_end[i];
		r |= event_json_field(ev, &ev->fields[i], &marks, &at, out);
	}
	return event_json_end(out, start, r);
}
