/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_parse: one JSON object per line into fields (see json_parse.h).
 * jansson builds the object; its members are copied into scratch in order.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/json_parse.h"
#include "common/civil.h"

#define JSON_STR(x) JSON_STR_(x)
#define JSON_STR_(x) #x

/* Where empty keys and values point when scratch has no memory yet. */
static const uint8_t json_empty[1];

static int
json_fail(struct parsed *out, const char *why)
{
	out->ts = 0;
	out->host.ptr = NULL;
	out->host.len = 0;
	out->nfields = 0;
	out->error = why;
	return -EINVAL;
}

/* Appends to scratch: 0 or -EMSGSIZE (the line pays); out of memory aborts. */
static int
json_put(struct buf *b, const void *p, size_t n)
{
	int r = buf_append(b, p, n);

	if (r == -ENOMEM)
		abort();
	return r;
}

/*
 * jansson's message, with where it stopped, as out->error in scratch (or
 * a static text if scratch's cap is too small for it).
 */
static int
json_fail_syntax(struct parsed *out, const json_error_t *err)
{
	char msg[64 + JSON_ERROR_TEXT_LENGTH];
	int n;

	/* jansson says nothing when its allocations fail mid-parse. */
	if (err->text[0] == '\0')
		return json_fail(out, "json: invalid JSON");
	/* An embedded newline (JSON whitespace) restarts jansson's columns. */
	if (err->line > 1)
		n = snprintf(msg, sizeof(msg), "json: invalid JSON at line %d column %d: %s",
		    err->line, err->column, err->text);
	else
		n = snprintf(msg, sizeof(msg), "json: invalid JSON at column %d: %s",
		    err->column, err->text);
	if (n < 0)
		return json_fail(out, "json: invalid JSON");
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	/* jansson quotes the bytes it stopped at: keep control bytes out of logs. */
	for (int i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?';
	buf_reset(&out->scratch);
	if (json_put(&out->scratch, msg, (size_t)n + 1) != 0)
		return json_fail(out, "json: invalid JSON");
	return json_fail(out, (const char *)out->scratch.data);
}

/* ---------------------------------------------------------------- ts */

/*
 * Nanoseconds in the unit of a timestamp whose whole part is whole. The
 * thresholds sit where each unit's range starts in 1973: 1e11 s is the
 * year 5138, 1e11 ms, 1e14 us and 1e17 ns are all 1973-03-03.
 */
static uint64_t
json_ts_unit(uint64_t whole)
{
	if (whole < UINT64_C(100000000000))
		return 1000000000;
	if (whole < UINT64_C(100000000000000))
		return 1000000;
	if (whole < UINT64_C(100000000000000000))
		return 1000;
	return 1;
}

/* whole * unit + frac_ns, or 0 (no usable time) past what a uint64_t holds. */
static uint64_t
json_ts_ns(uint64_t whole, uint64_t unit, uint64_t frac_ns)
{
	uint64_t ns;

	if (__builtin_mul_overflow(whole, unit, &ns) || __builtin_add_overflow(ns, frac_ns, &ns))
		return 0;
	return ns;
}

static uint64_t
json_ts_real(double v)
{
	uint64_t whole, unit, us;

	/* 2^64: also refuses NaN, which jansson never makes anyway. */
	if (!(v >= 0) || v >= 18446744073709551616.0)
		return 0;
	whole = (uint64_t)v;
	unit = json_ts_unit(whole);
	/*
	 * v - whole is exact (Sterbenz; or v is integral past 2^53). A double
	 * of a current time in seconds is good to about 0.2 us: keep whole
	 * microseconds, so 1732269600.123 is .123000000, not .122999906.
	 */
	us = (uint64_t)((v - (double)whole) * (double)(unit / 1000) + 0.5);
	return json_ts_ns(whole, unit, us * 1000);
}

/*
 * A string of digits, with an optional "." and more digits: a number in
 * the unit its magnitude says, read exactly (fraction digits finer than a
 * nanosecond are dropped). false if s is anything else.
 */
static bool
json_ts_decimal(const uint8_t *s, size_t len, uint64_t *ns)
{
	uint64_t whole = 0, unit, frac = 0, scale;
	size_t i = 0;

	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(s[i] - '0'), &whole))
			return false;
	if (i == 0)
		return false;
	unit = json_ts_unit(whole);
	if (i < len) {
		if (s[i++] != '.' || i == len)
			return false;
		for (scale = unit / 10; i < len; i++, scale /= 10) {
			if (s[i] < '0' || s[i] > '9')
				return false;
			frac += (uint64_t)(s[i] - '0') * scale;
		}
	}
	*ns = json_ts_ns(whole, unit, frac);
	return true;
}

/* out->ts from the "ts" member, or 0 if it is none of json_parse.h's forms. */
static uint64_t
json_ts(const json_t *v)
{
	const uint8_t *s;
	size_t len, used;
	uint64_t whole, ns;

	switch (json_typeof(v)) {
	case JSON_INTEGER:
		if (json_integer_value(v) < 0)
			return 0;
		whole = (uint64_t)json_integer_value(v);
		return json_ts_ns(whole, json_ts_unit(whole), 0);
	case JSON_REAL:
		return json_ts_real(json_real_value(v));
	case JSON_STRING:
		s = (const uint8_t *)json_string_value(v);
		len = json_string_length(v);
		if (json_ts_decimal(s, len, &ns))
			return ns;
		if (civil_rfc3339(s, len, &used, &ns) == 0 && used == len)
			return ns;
		return 0;
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ members */

/*
 * json_dump_callback's sink: scratch. Once scratch refuses a write it
 * refuses every later one, and the caller trusts only d->r: jansson
 * ignores the sink's answer for object keys (dump.c, up to 2.14 at
 * least), so it would go on past a missing key and report success.
 */
struct json_dump {
	struct buf *b;
	int r;
};

static int
json_dump_put(const char *p, size_t n, void *arg)
{
	struct json_dump *d = arg;

	if (d->r == 0)
		d->r = json_put(d->b, p, n);
	return d->r == 0 ? 0 : -1;
}

/* Appends v's compact JSON text to b. Returns 0 or -EMSGSIZE. */
static int
json_put_text(struct buf *b, const json_t *v)
{
	struct json_dump d = { b, 0 };
	int r = json_dump_callback(v, json_dump_put, &d, JSON_COMPACT);

	if (d.r != 0)
		return d.r;
	/* Not refused by scratch: jansson ran out of memory. */
	if (r != 0)
		abort();
	return 0;
}

/*
 * Fills f from v; bytes go to scratch, at *off (an offset: scratch may
 * move while later members are appended). Returns 0 or -EMSGSIZE.
 */
static int
json_member(struct buf *b, json_t *v, struct event_field *f, size_t *off)
{
	int r;

	*off = b->len;
	switch (json_typeof(v)) {
	case JSON_STRING:
		f->type = EVENT_TEXT;
		f->v.text.len = json_string_length(v);
		return json_put(b, json_string_value(v), f->v.text.len);
	case JSON_INTEGER:
		f->type = EVENT_INTEGER;
		f->v.integer = json_integer_value(v);
		return 0;
	case JSON_REAL:
		f->type = EVENT_NUMBER;
		f->v.number = json_real_value(v);
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		f->type = EVENT_BOOLEAN;
		f->v.boolean = json_is_true(v);
		return 0;
	case JSON_NULL:
		f->type = EVENT_NULL;
		return 0;
	case JSON_OBJECT:
	case JSON_ARRAY:
		f->type = EVENT_JSON;
		if ((r = json_put_text(b, v)) != 0)
			return r;
		f->v.json.len = b->len - *off;
		return 0;
	}
	abort();
}

/* ---------------------------------------------------------------- API */

int
json_parse(const uint8_t *line, size_t len, struct parsed *out)
{
	size_t key[PARSER_MAX_FIELDS], val[PARSER_MAX_FIELDS], n = 0;
	struct buf *b = &out->scratch;
	const uint8_t *base;
	const char *why;
	json_error_t err;
	json_t *root;
	void *it;

	parser_reset(out);
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* A BOM starts the first line of files some Windows tools write (RFC 8259 8.1). */
	if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	if (len == 0)
		return json_fail(out, "json: empty line");
	/*
	 * JSON_DECODE_ANY: a scalar or an array gets our message below, not
	 * a syntax error. JSON_ALLOW_NUL: NGINX escapes a NUL in a header as
	 * \u0000, and a field is counted bytes, so the line need not pay.
	 */
	root = json_loadb((const char *)line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (root == NULL)
		return json_fail_syntax(out, &err);
	if (!json_is_object(root)) {
		why = "json: not a JSON object";
		goto fail;
	}
	if (json_object_size(root) > PARSER_MAX_FIELDS) {
		why = "json: more than " JSON_STR(PARSER_MAX_FIELDS) " members";
		goto fail;
	}
	/* jansson keeps an object's members in the order they were read. */
	for (it = json_object_iter(root); it != NULL; it = json_object_iter_next(root, it)) {
		/* jansson refuses NUL in keys: strlen is the length (2.13 has no iter_key_len). */
		const char *k = json_object_iter_key(it);
		json_t *v = json_object_iter_value(it);
		struct event_field *f = &out->fields[n];

		f->key.len = strlen(k);
		key[n] = b->len;
		if (json_put(b, k, f->key.len) != 0 || json_member(b, v, f, &val[n]) != 0) {
			why = "json: keys and values exceed the scratch cap";
			goto fail;
		}
		if (f->key.len == 2 && memcmp(k, "ts", 2) == 0)
			out->ts = json_ts(v);
		n++;
	}
	json_decref(root);

	/* Scratch has stopped growing (and moving): its offsets become pointers. */
	base = b->data != NULL ? b->data : json_empty;
	for (size_t i = 0; i < n; i++) {
		struct event_field *f = &out->fields[i];

		f->key.ptr = base + key[i];
		if (f->type == EVENT_TEXT)
			f->v.text.ptr = base + val[i];
		else if (f->type == EVENT_JSON)
			f->v.json.ptr = base + val[i];
	}
	out->nfields = n;
	return 0;

fail:
	json_decref(root);
	return json_fail(out, why);
}
