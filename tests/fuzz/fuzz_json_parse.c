/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the JSON line parser: any bytes give fields whose keys and values
 * lie in scratch, or -EINVAL with a message. The fields must be the
 * object's members in jansson's order, nested values must be JSON that
 * reads back as itself, the event must encode and read back, and a tiny
 * scratch may only turn a parse into the "scratch cap" error.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/json_parse.h"
#include "common/parser.h"
#include "proto/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SMALL 32

static const char fuzz_full[] = "json: keys and values exceed the scratch cap";

/* s[0, len) lies in b's bytes in use (an empty s may point anywhere). */
static void
fuzz_in_scratch(const struct buf *b, const struct pbslice *s)
{
	volatile uint8_t sink = 0;

	if (s->ptr == NULL)
		abort();
	if (s->len == 0)
		return;
	if (s->ptr < b->data || s->len > b->len || (size_t)(s->ptr - b->data) > b->len - s->len)
		abort();
	for (size_t i = 0; i < s->len; i++)
		sink ^= s->ptr[i];
	(void)sink;
}

static int
fuzz_dump_put(const char *p, size_t n, void *arg)
{
	return buf_append(arg, p, n) == 0 ? 0 : -1;
}

/*
 * A nested value: an object or array whose text jansson writes back the
 * same (its own compact output is a fixed point, reals included: 17
 * digits read back as the same double).
 */
static void
fuzz_check_json_text(const struct pbslice *s)
{
	json_error_t err;
	json_t *v = json_loadb((const char *)s->ptr, s->len, JSON_ALLOW_NUL, &err);
	struct buf again;

	if (v == NULL || (!json_is_object(v) && !json_is_array(v)))
		abort();
	buf_init(&again, s->len);
	if (json_dump_callback(v, fuzz_dump_put, &again, JSON_COMPACT) != 0 ||
	    again.len != s->len || memcmp(again.data, s->ptr, s->len) != 0)
		abort();
	buf_free(&again);
	json_decref(v);
}

static void
fuzz_check(const uint8_t *data, size_t size, const struct parsed *p, int r)
{
	struct event ev = { 0 }, got;
	struct event_field gf[PARSER_MAX_FIELDS];
	struct event_reader rd;
	json_error_t err;
	json_t *root;
	void *it;
	bool has_ts = false;
	struct buf out;

	if (r != 0) {
		if (r != -EINVAL || p->error == NULL || p->error[0] == '\0' || p->nfields != 0 ||
		    p->ts != 0 || strncmp(p->error, "json: ", 6) != 0)
			abort();
		return;
	}
	if (p->error != NULL || p->nfields > PARSER_MAX_FIELDS || p->host.len != 0)
		abort();

	/* The members, in order, as jansson reads the same bytes. */
	if (size > 0 && data[size - 1] == '\n')
		size--;
	if (size > 0 && data[size - 1] == '\r')
		size--;
	if (size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
		data += 3;
		size -= 3;
	}
	root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (root == NULL || !json_is_object(root) || json_object_size(root) != p->nfields)
		abort();
	it = json_object_iter(root);
	for (size_t i = 0; i < p->nfields; i++, it = json_object_iter_next(root, it)) {
		const struct event_field *f = &p->fields[i];
		const char *k = json_object_iter_key(it);
		json_t *v = json_object_iter_value(it);

		fuzz_in_scratch(&p->scratch, &f->key);
		if (f->key.len != strlen(k) || memcmp(f->key.ptr, k, f->key.len) != 0)
			abort();
		has_ts |= strcmp(k, "ts") == 0;
		switch (f->type) {
		case EVENT_TEXT:
			fuzz_in_scratch(&p->scratch, &f->v.text);
			if (!json_is_string(v) || f->v.text.len != json_string_length(v) ||
			    memcmp(f->v.text.ptr, json_string_value(v), f->v.text.len) != 0)
				abort();
			break;
		case EVENT_JSON:
			fuzz_in_scratch(&p->scratch, &f->v.json);
			if (!json_is_object(v) && !json_is_array(v))
				abort();
			fuzz_check_json_text(&f->v.json);
			break;
		case EVENT_INTEGER:
			if (!json_is_integer(v) || json_integer_value(v) != f->v.integer)
				abort();
			break;
		case EVENT_NUMBER:
			if (!json_is_real(v) || memcmp(&f->v.number, &(double){ json_real_value(v) },
			    sizeof(double)) != 0)
				abort();
			break;
		case EVENT_BOOLEAN:
			if (!json_is_boolean(v) || f->v.boolean != json_is_true(v))
				abort();
			break;
		case EVENT_NULL:
			if (!json_is_null(v))
				abort();
			break;
		default:
			abort();
		}
	}
	if (it != NULL || (!has_ts && p->ts != 0))
		abort();
	json_decref(root);

	/* The event encodes, and reads back with the same bytes. */
	ev.ts = p->ts;
	ev.message = (struct pbslice){ data, size };
	ev.fields = (struct event_field *)p->fields;
	ev.nfields = p->nfields;
	buf_init(&out, 1 << 24);
	if (event_encode(&ev, &out) != 0)
		abort();
	event_reader_init(&rd, out.data, out.len, gf, PARSER_MAX_FIELDS);
	if (event_reader_next(&rd, &got) != 1 || got.nfields != p->nfields || got.ts != p->ts)
		abort();
	for (size_t i = 0; i < got.nfields; i++) {
		const struct event_field *w = &p->fields[i], *h = &got.fields[i];

		if (h->type != w->type || h->key.len != w->key.len ||
		    (w->key.len > 0 && memcmp(h->key.ptr, w->key.ptr, w->key.len) != 0))
			abort();
		if ((w->type == EVENT_TEXT || w->type == EVENT_JSON) &&
		    (h->v.text.len != w->v.text.len || (w->v.text.len > 0 &&
		    memcmp(h->v.text.ptr, w->v.text.ptr, w->v.text.len) != 0)))
			abort();
	}
	if (event_reader_next(&rd, &got) != 0)
		abort();
	buf_free(&out);
}

/* Same verdict, fields and time. */
static void
fuzz_same(const struct parsed *a, int ra, const struct parsed *b, int rb)
{
	if (ra != rb || a->ts != b->ts || a->nfields != b->nfields)
		abort();
	if (ra != 0) {
		if (strcmp(a->error, b->error) != 0)
			abort();
		return;
	}
	for (size_t i = 0; i < a->nfields; i++) {
		const struct event_field *x = &a->fields[i], *y = &b->fields[i];

		if (x->type != y->type || x->key.len != y->key.len ||
		    (x->key.len > 0 && memcmp(x->key.ptr, y->key.ptr, x->key.len) != 0))
			abort();
		if ((x->type == EVENT_TEXT || x->type == EVENT_JSON) &&
		    (x->v.text.len != y->v.text.len || (x->v.text.len > 0 &&
		    memcmp(x->v.text.ptr, y->v.text.ptr, x->v.text.len) != 0)))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct parsed p, again, small;
	int r, rs;

	parser_init(&p, 64 * 1024);
	parser_init(&again, 64 * 1024);
	parser_init(&small, FUZZ_SMALL);
	r = json_parse(data, size, &p);
	fuzz_check(data, size, &p, r);

	/* A parsed that held another line gives the same result. */
	(void)json_parse((const uint8_t *)"{\"x\":[1],\"y\":\"zz\"}", 18, &again);
	fuzz_same(&p, r, &again, json_parse(data, size, &again));

	/* A tiny scratch: the same result, or the line pays with the cap error. */
	rs = json_parse(data, size, &small);
	fuzz_check(data, size, &small, rs);
	if (r == 0 && rs != 0) {
		if (strcmp(small.error, fuzz_full) != 0 || p.scratch.len <= FUZZ_SMALL)
			abort();
	} else if (r != 0 && rs == 0) {
		abort();
	} else if (r == 0) {
		fuzz_same(&p, r, &small, rs);
	} else if (strcmp(p.error, small.error) != 0 &&
	    strcmp(small.error, "json: invalid JSON") != 0) {
		/* The same error, but a syntax error's text may not fit in scratch. */
		abort();
	}
	parser_free(&small);
	parser_free(&again);
	parser_free(&p);
	return 0;
}
