/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/jsonw and proto/event_json: output parsed back with jansson. */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/base64.h"
#include "common/jsonw.h"
#include "proto/event_json.h"

#define S(str) ((struct pbslice){ (const uint8_t *)(str), sizeof(str) - 1 })

static json_t *
parse(const struct buf *b)
{
	json_error_t err;
	json_t *j = json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, &err);

	if (j == NULL)
		fail_msg("not JSON: %s: %.*s", err.text, (int)b->len, (const char *)b->data);
	return j;
}

static void
test_strings_are_escaped_and_read_back_the_same(void **state)
{
	static const char in[] = "quote\" back\\ nl\n tab\t ctl\x01 del\x7f caf\xc3\xa9 \xf0\x9f\x98\x80";
	struct buf b;
	json_t *j;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(jsonw_string(&b, (const uint8_t *)in, sizeof(in) - 1), 0);
	j = parse(&b);
	assert_string_equal(json_string_value(j), in);
	json_decref(j);
	buf_free(&b);
}

/* jsonw_string of in[0, n), valid UTF-8, parses back as the same n bytes. */
static void
assert_string_reads_back(struct buf *b, const uint8_t *in, size_t n)
{
	json_t *j;

	buf_reset(b);
	assert_int_equal(jsonw_string(b, in, n), 0);
	j = parse(b);
	assert_int_equal(json_string_length(j), n);
	assert_memory_equal(json_string_value(j), in, n);
	json_decref(j);
}

/*
 * Every byte value at every offset of a long plain run: the 8-byte scan
 * must stop wherever the byte loop would, so each byte below 0x20, '"',
 * '\\' and each byte of a 2-byte UTF-8 sequence reads back the same.
 */
static void
test_every_special_byte_at_every_offset_reads_back(void **state)
{
	uint8_t in[40];
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	for (int c = 1; c < 0x80; c++)
		for (size_t at = 0; at + 2 <= sizeof(in); at++) {
			memset(in, 'a', sizeof(in));
			in[at] = (uint8_t)c;
			/* And a 2-byte sequence (U+00E9) elsewhere, in the same 8 bytes or not. */
			in[(at + 5) % (sizeof(in) - 1)] = 0xc3;
			in[(at + 5) % (sizeof(in) - 1) + 1] = 0xa9;
			if (in[at] != c)
				continue;   /* overwritten: that case is another's */
			assert_string_reads_back(&b, in, sizeof(in));
		}
	buf_free(&b);
}

/*
 * Two bytes that are special, or just beside it (0x1f then 0x20: the 8-byte
 * test's borrow), in every pair of places of one 8-byte run and across two:
 * each found where it is, none skipped, the text read back the same.
 */
static void
test_two_special_bytes_in_one_8_byte_run_read_back(void **state)
{
	static const uint8_t near[] = { 0x01, 0x1f, 0x20, 0x21, '"', '#', '\\', ']', 0x7f, 0xc3 };
	uint8_t in[24];
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	for (size_t x = 0; x < sizeof(near); x++)
		for (size_t y = 0; y < sizeof(near); y++)
			for (size_t at = 0; at < 8; at++)
				for (size_t d = 1; d <= 9; d++) {
					memset(in, 'a', sizeof(in));
					in[at] = near[x];
					in[at + d] = near[y];
					/* 0xc3 opens U+00E9: its second byte follows, where nothing else is. */
					if (near[x] == 0xc3) {
						if (d == 1)
							continue;
						in[at + 1] = 0xa9;
					}
					if (near[y] == 0xc3)
						in[at + d + 1] = 0xa9;
					assert_string_reads_back(&b, in, sizeof(in));
				}
	buf_free(&b);
}

/* jsonw_append of every length up to 70, at every alignment: those bytes, nothing past them. */
static void
test_appends_of_every_small_length_copy_exactly_their_bytes(void **state)
{
	uint8_t src[80];
	struct buf b;

	(void)state;
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	buf_init(&b, 256);
	for (size_t n = 0; n <= 70; n++)
		for (size_t at = 0; at < 4; at++) {
			buf_reset(&b);
			assert_int_equal(buf_reserve(&b, 200), 0);
			memset(b.data, 0xee, 200);
			b.len = at;
			assert_int_equal(jsonw_append(&b, src + at, n), 0);
			assert_int_equal(b.len, at + n);
			assert_memory_equal(b.data + at, src + at, n);
			for (size_t k = at + n; k < 200; k++)
				assert_int_equal(b.data[k], 0xee);
			for (size_t k = 0; k < at; k++)
				assert_int_equal(b.data[k], 0xee);
		}
	/* Beyond the buffer's bound: refused, unchanged, as buf_append. */
	buf_free(&b);
	buf_init(&b, 8);
	assert_int_equal(jsonw_append(&b, src, 9), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_invalid_utf8_becomes_replacement_characters(void **state)
{
	/* A lone continuation byte, a truncated sequence, an overlong '/', a surrogate, 0xff. */
	static const char in[] = "a\x80" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e\xff";
	struct buf b;
	json_t *j;
	const char *s;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(jsonw_string(&b, (const uint8_t *)in, sizeof(in) - 1), 0);
	j = parse(&b);
	s = json_string_value(j);
	assert_non_null(s);
	assert_non_null(strstr(s, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c"));
	assert_null(strchr(s, '\xff'));
	json_decref(j);
	buf_free(&b);
}

static void
test_string_says_whether_it_replaced_bytes_in_the_same_pass(void **state)
{
	static const char *const valid[] = { "", "plain", "quote\" nl\n ctl\x01", "caf\xc3\xa9 \xf0\x9f\x98\x80" };
	static const char *const invalid[] = { "\xff", "a\x80", "caf\xe9", "b\xc3", "\xed\xa0\x80", "ok\xf0\x9f\x98" };
	struct buf b, plain;
	bool replaced;

	(void)state;
	buf_init(&b, 4096);
	buf_init(&plain, 4096);
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		replaced = true;
		buf_reset(&b);
		assert_int_equal(jsonw_string_replaced(&b, (const uint8_t *)valid[i], strlen(valid[i]),
		    &replaced), 0);
		assert_false(replaced);
		assert_true(jsonw_utf8_valid((const uint8_t *)valid[i], strlen(valid[i])));
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		replaced = false;
		buf_reset(&b);
		buf_reset(&plain);
		assert_int_equal(jsonw_string_replaced(&b, (const uint8_t *)invalid[i],
		    strlen(invalid[i]), &replaced), 0);
		assert_true(replaced);
		assert_false(jsonw_utf8_valid((const uint8_t *)invalid[i], strlen(invalid[i])));
		/* The same text as jsonw_string writes. */
		assert_int_equal(jsonw_cstring(&plain, invalid[i]), 0);
		assert_int_equal(b.len, plain.len);
		assert_memory_equal(b.data, plain.data, b.len);
	}
	buf_free(&b);
	buf_free(&plain);
}

static void
test_cut_costs_what_jsonw_string_writes_and_keeps_utf8_whole(void **state)
{
	static const uint8_t in[] = "ab\"\\\n\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xe2\x82z\x7f";
	size_t n = sizeof(in) - 1, cost, len;
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 16);
	assert_int_equal(jsonw_string(&b, in, n), 0);
	/* The whole string costs what jsonw_string writes between the quotes. */
	assert_int_equal(jsonw_cut(in, n, SIZE_MAX, true, &cost), n);
	assert_int_equal(cost, b.len - 2);
	assert_int_equal(jsonw_cut(in, n, SIZE_MAX, false, &cost), n);
	assert_int_equal(cost, n);
	/* At every budget, the prefix's escaped form is a prefix of the whole one. */
	for (size_t budget = 0; budget <= b.len; budget++) {
		struct buf part;

		buf_init(&part, 1 << 16);
		len = jsonw_cut(in, n, budget, true, &cost);
		assert_true(cost <= budget);
		assert_int_equal(jsonw_string(&part, in, len), 0);
		assert_int_equal(part.len - 2, cost);
		assert_memory_equal(part.data + 1, b.data + 1, cost);
		buf_free(&part);
	}
	/*
	 * Unescaped, the cut is the longest prefix within budget that does not
	 * end inside é (6-7), € (8-10) or the emoji (11-14); the broken
	 * sequence at 16-17 goes byte by byte.
	 */
	for (size_t budget = 0; budget <= n; budget++) {
		size_t want = budget;

		while (want == 7 || want == 9 || want == 10 || want == 12 || want == 13 || want == 14)
			want--;
		assert_int_equal(jsonw_cut(in, n, budget, false, &cost), want);
		assert_int_equal(cost, want);
	}
	buf_free(&b);
}

static void
test_numbers_and_times(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(jsonw_time(&b, UINT64_C(1795341600123456789)), 0);
	assert_int_equal(b.len, strlen("\"2026-11-22T10:00:00.123456Z\""));
	assert_memory_equal(b.data, "\"2026-11-22T10:00:00.123456Z\"", b.len);
	buf_reset(&b);
	assert_int_equal(jsonw_time(&b, UINT64_C(951868799000000000)), 0);   /* leap day */
	assert_memory_equal(b.data, "\"2000-02-29T23:59:59.000000Z\"", b.len);
	buf_reset(&b);
	assert_int_equal(jsonw_double(&b, 0.1), 0);
	assert_memory_equal(b.data, "0.1", 3);
	buf_reset(&b);
	assert_int_equal(jsonw_double(&b, 1.0 / 0.0), 0);
	assert_memory_equal(b.data, "null", 4);
	buf_reset(&b);
	assert_int_equal(jsonw_int(&b, INT64_MIN), 0);
	assert_memory_equal(b.data, "-9223372036854775808", b.len);
	buf_free(&b);
}


/* The UTF-8 sequence at p as RFC 3629 has it: its length, or 0 (a byte at a time). */
static size_t
ref_utf8_len(const uint8_t *p, size_t n)
{
	size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
	uint32_t cp = p[0] & (0x7f >> len);

	if (p[0] < 0xc2 || p[0] > 0xf4 || n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < (len == 2 ? 0x80u : len == 3 ? 0x800u : 0x10000u) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Notes p[at, at + len) in m as jsonw_string_marked does: touching ranges merged. */
static void
ref_mark(struct jsonw_marks *m, size_t at, size_t len)
{
	if (m->n > JSONW_MARKS_MAX)
		return;
	if (m->n > 0 && m->range[m->n - 1].end == at) {
		m->range[m->n - 1].end = (uint32_t)(at + len);
	} else if (m->n == JSONW_MARKS_MAX) {
		m->n++;
	} else {
		m->range[m->n].start = (uint32_t)at;
		m->range[m->n].end = (uint32_t)(at + len);
		m->n++;
	}
}

/* The JSON string of p[0, n) written a byte at a time, as the design words it. */
static void
ref_string(const uint8_t *p, size_t n, struct buf *out, bool *replaced, struct jsonw_marks *m)
{
	char t[8];

	*replaced = false;
	m->n = 0;
	assert_int_equal(buf_append(out, "\"", 1), 0);
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t len = 1;

		if (c == '"' || c == '\\') {
			snprintf(t, sizeof(t), "\\%c", c);
		} else if (c == '\n' || c == '\r' || c == '\t') {
			snprintf(t, sizeof(t), "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		} else if (c < 0x20) {
			snprintf(t, sizeof(t), "\\u%04x", c);
		} else if (c < 0x80) {
			assert_int_equal(buf_append(out, &c, 1), 0);
			i++;
			continue;
		} else if ((len = ref_utf8_len(p + i, n - i)) != 0) {
			assert_int_equal(buf_append(out, p + i, len), 0);
			ref_mark(m, i, len);
			i += len;
			continue;
		} else {
			len = 1;
			snprintf(t, sizeof(t), "\xef\xbf\xbd");
			*replaced = true;
		}
		assert_int_equal(buf_append(out, t, strlen(t)), 0);
		ref_mark(m, i, len);
		i += len;
	}
	assert_int_equal(buf_append(out, "\"", 1), 0);
}

/*
 * Strings of every kind of byte, in every order, of every length to 80:
 * jsonw_string and jsonw_string_marked write the bytes a byte-at-a-time
 * writer does, say the same about replacement and mark the same ranges,
 * with room to spare (the 8-byte stores) and with just enough (a byte less
 * is refused).
 */
static void
test_strings_are_the_bytes_a_byte_at_a_time_writer_writes(void **state)
{
	static const uint8_t alphabet[] = { 'a', 'Z', ' ', '~', 0x7f, '"', '\\', '\n', '\r',
		'\t', 0x01, 0x1f, 0x00, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff,
		0xed, 0xa0, 0xc0, 0xf5 };
	uint32_t seed = 12345;
	uint8_t in[80];
	struct buf got, want, tight;
	struct jsonw_marks gm, wm;
	bool grep, wrep;

	(void)state;
	buf_init(&got, 4096);
	buf_init(&want, 4096);
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)round % (sizeof(in) + 1);
		/* Mostly plain runs, some of one special kind: both paths of the scan. */
		unsigned plain = round % 3 == 0 ? 0 : round % 3 == 1 ? 60 : 95;

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (seed >> 16) % 100 < plain ? (uint8_t)('a' + (seed >> 8) % 26) :
			    alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		buf_reset(&want);
		assert_int_equal(buf_append(&want, "x", 1), 0);
		ref_string(in, n, &want, &wrep, &wm);
		buf_reset(&got);
		assert_int_equal(buf_append(&got, "x", 1), 0);
		assert_int_equal(jsonw_string_marked(&got, in, n, &grep, &gm), 0);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len);
		assert_int_equal(grep, wrep);
		assert_int_equal(gm.n, wm.n);
		if (wm.n <= JSONW_MARKS_MAX)
			assert_memory_equal(gm.range, wm.range, wm.n * sizeof(wm.range[0]));
		buf_reset(&got);
		assert_int_equal(jsonw_string(&got, in, n), 0);
		assert_int_equal(got.len, want.len - 1);
		assert_memory_equal(got.data, want.data + 1, got.len);
		/* Room for exactly the string, then for a byte less. */
		buf_init(&tight, want.len - 1);
		assert_int_equal(jsonw_string(&tight, in, n), 0);
		assert_int_equal(tight.len, want.len - 1);
		assert_memory_equal(tight.data, want.data + 1, tight.len);
		buf_free(&tight);
		buf_init(&tight, want.len - 2);
		assert_int_not_equal(jsonw_string(&tight, in, n), 0);
		buf_free(&tight);
	}
	buf_free(&got);
	buf_free(&want);
}

/* Integers of every digit count, both signs and both ends: what printf writes, after what was there. */
static void
test_integers_of_every_digit_count_are_what_printf_writes(void **state)
{
	int64_t v[64];
	size_t nv = 0;
	char want[48];
	struct buf b, tight;

	(void)state;
	for (uint64_t p = 1, k = 0; k < 19; k++, p *= 10) {
		v[nv++] = (int64_t)p - 1;
		v[nv++] = (int64_t)p;
		v[nv++] = -(int64_t)p - 1;
	}
	v[nv++] = INT64_MAX;
	v[nv++] = INT64_MIN;
	v[nv++] = INT64_MIN + 1;
	buf_init(&b, 4096);
	for (size_t i = 0; i < nv; i++) {
		int n = snprintf(want, sizeof(want), "%" PRId64, v[i]);

		buf_reset(&b);
		assert_int_equal(buf_append(&b, "[", 1), 0);
		assert_int_equal(jsonw_int(&b, v[i]), 0);
		assert_int_equal(b.len, (size_t)n + 1);
		assert_memory_equal(b.data + 1, want, (size_t)n);
		/* Room for exactly the digits, then for one less. */
		buf_init(&tight, (size_t)n);
		assert_int_equal(jsonw_int(&tight, v[i]), 0);
		assert_int_equal(tight.len, (size_t)n);
		assert_memory_equal(tight.data, want, (size_t)n);
		buf_free(&tight);
		buf_init(&tight, (size_t)n - 1);
		assert_int_equal(jsonw_int(&tight, v[i]), -EMSGSIZE);
		assert_int_equal(tight.len, 0);
		buf_free(&tight);
	}
	buf_reset(&b);
	assert_int_equal(jsonw_uint(&b, UINT64_MAX), 0);
	assert_memory_equal(b.data, "18446744073709551615", b.len);
	buf_free(&b);
}

/* What a thread's jsonw_time writes, in order: its first time first. */
static const struct { uint64_t ns; const char *text; } thread_times[] = {
	{ UINT64_C(999), "\"1970-01-01T00:00:00.000000Z\"" },
	{ UINT64_C(999999999), "\"1970-01-01T00:00:00.999999Z\"" },
	{ UINT64_C(1000000000), "\"1970-01-01T00:00:01.000000Z\"" },
	{ UINT64_C(1795341600999999999), "\"2026-11-22T10:00:00.999999Z\"" },
	{ UINT64_C(1795341601000000000), "\"2026-11-22T10:00:01.000000Z\"" },
	{ UINT64_C(1795341600999998000), "\"2026-11-22T10:00:00.999998Z\"" },
	{ UINT64_C(1795341601000000999), "\"2026-11-22T10:00:01.000000Z\"" },
	{ UINT64_C(1795341601010203040), "\"2026-11-22T10:00:01.010203Z\"" },
	{ UINT64_C(1795345199999999999), "\"2026-11-22T10:59:59.999999Z\"" },
	{ UINT64_C(1795345200000000000), "\"2026-11-22T11:00:00.000000Z\"" },
	{ UINT64_C(18446744073709551615), "\"2554-07-21T23:34:33.709551Z\"" },
	{ UINT64_C(0), "\"1970-01-01T00:00:00.000000Z\"" },
};

static void *
thread_times_write(void *arg)
{
	struct buf b;
	size_t *bad = arg;

	buf_init(&b, 64);
	for (size_t i = 0; i < sizeof(thread_times) / sizeof(thread_times[0]); i++) {
		buf_reset(&b);
		if (jsonw_time(&b, thread_times[i].ns) != 0 || b.len != strlen(thread_times[i].text) ||
		    memcmp(b.data, thread_times[i].text, b.len) != 0) {
			*bad = i + 1;
			break;
		}
	}
	buf_free(&b);
	return NULL;
}

/*
 * A thread's first time (in 1970's first second, where nothing was written
 * before it), then times on both sides of second, hour and era boundaries,
 * forth and back: each as if it were the first written.
 */
static void
test_a_new_threads_times_across_second_boundaries_are_each_right(void **state)
{
	pthread_t t;
	size_t bad = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, thread_times_write, &bad), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (bad != 0)
		fail_msg("time %zu (%s) written wrong", bad - 1, thread_times[bad - 1].text);
	/* And on this thread, after the times of the tests before. */
	thread_times_write(&bad);
	assert_int_equal(bad, 0);
}

/*
 * Every part of strings with escapes, UTF-8, bytes that are not UTF-8 and
 * more marked ranges than are kept: jsonw_part writes what jsonw_string
 * writes for the same bytes.
 */
static void
test_a_part_of_a_marked_string_comes_out_as_jsonw_string_writes_it(void **state)
{
	static const char *const in[] = {
		"203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl\"",
		"plain ascii only",
		"caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3 \xff tab\t nl\n back\\ \x01\x7f",
		"\"a\"b\"c\"d\"e\"f\"g\"h\"i\"j\"k\"l\"m\"n\"o\"p\"q\"r\"s\"t\"u\"v\"w\"x\"y\"z\"0\"1\"2\"3\"4\"5\"6\"7\"",
		"",
	};
	struct buf whole, part, want;
	struct jsonw_marks m;
	bool replaced;

	(void)state;
	buf_init(&whole, 4096);
	buf_init(&part, 4096);
	buf_init(&want, 4096);
	for (size_t t = 0; t < sizeof(in) / sizeof(in[0]); t++) {
		const uint8_t *p = (const uint8_t *)in[t];
		size_t n = strlen(in[t]);

		buf_reset(&whole);
		assert_int_equal(jsonw_string_marked(&whole, p, n, &replaced, &m), 0);
		buf_reset(&want);
		assert_int_equal(jsonw_string(&want, p, n), 0);
		assert_int_equal(whole.len, want.len);
		assert_memory_equal(whole.data, want.data, want.len);
		for (size_t off = 0; off <= n; off++)
			for (size_t len = 0; off + len <= n; len++) {
				buf_reset(&part);
				buf_reset(&want);
				assert_int_equal(jsonw_part(&part, p, off, len, &m), 0);
				assert_int_equal(jsonw_string(&want, p + off, len), 0);
				assert_int_equal(part.len, want.len);
				assert_memory_equal(part.data, want.data, want.len);
			}
	}
	/* More ranges than are kept: unknown, and every part is scanned. */
	buf_reset(&whole);
	assert_int_equal(jsonw_string_marked(&whole, (const uint8_t *)in[3], strlen(in[3]),
	    &replaced, &m), 0);
	assert_true(m.n > JSONW_MARKS_MAX);
	buf_free(&whole);
	buf_free(&part);
	buf_free(&want);
}


/*
 * Parts of marked strings taken in rising order (an event's slices, as
 * parsers write them), falling and at random, all through one cursor:
 * jsonw_part_at writes what jsonw_string writes for each, whatever part
 * came before, in buffers with room and with just enough.
 */
static void
test_parts_through_one_cursor_in_any_order_come_out_as_jsonw_string_writes_them(void **state)
{
	static const char *const in[] = {
		"203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl\"",
		"plain ascii only, long enough for parts of every length to 32 bytes and more",
		"caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3 \xff tab\t nl\n back\\ \x01\x7f \"q\" end",
		"\"a\"b\"c\"d\"e\"f\"g\"h\"i\"j\"k\"l\"m\"n\"o\"p\"q\"r\"s\"t\"u\"v\"w\"x\"y\"z\"0\"1\"2\"3\"4\"5\"6\"7\"",
		"",
	};
	uint32_t seed = 99;
	struct buf part, want, tight;
	struct jsonw_marks m;
	bool replaced;

	(void)state;
	buf_init(&part, 4096);
	buf_init(&want, 4096);
	for (size_t t = 0; t < sizeof(in) / sizeof(in[0]); t++) {
		const uint8_t *p = (const uint8_t *)in[t];
		size_t n = strlen(in[t]);

		buf_reset(&part);
		assert_int_equal(jsonw_string_marked(&part, p, n, &replaced, &m), 0);
		for (int order = 0; order < 3; order++) {
			size_t at = 0;

			for (int k = 0; k < 2000; k++) {
				size_t off, len;

				seed = seed * 1103515245u + 12345u;
				off = n == 0 ? 0 : order == 0 ? (size_t)k * n / 2000 :
				    order == 1 ? n - 1 - (size_t)k * n / 2000 : (seed >> 8) % n;
				len = n == 0 ? 0 : (seed >> 4) % (n - off + 1);
				buf_reset(&part);
				buf_reset(&want);
				assert_int_equal(jsonw_part_at(&part, p, off, len, &m, &at), 0);
				assert_int_equal(jsonw_string(&want, p + off, len), 0);
				assert_int_equal(part.len, want.len);
				assert_memory_equal(part.data, want.data, want.len);
				buf_init(&tight, want.len);
				assert_int_equal(jsonw_part_at(&tight, p, off, len, &m, &at), 0);
				assert_int_equal(tight.len, want.len);
				assert_memory_equal(tight.data, want.data, want.len);
				buf_free(&tight);
			}
		}
	}
	buf_free(&part);
	buf_free(&want);
}

/* Times of one second and of others, in any order: each as if it were the first written. */
static void
test_times_of_the_same_second_and_of_others_are_each_right(void **state)
{
	static const struct { uint64_t ns; const char *text; } t[] = {
		{ UINT64_C(1795341600123456000), "\"2026-11-22T10:00:00.123456Z\"" },
		{ UINT64_C(1795341600999999999), "\"2026-11-22T10:00:00.999999Z\"" },
		{ UINT64_C(1795341600000000000), "\"2026-11-22T10:00:00.000000Z\"" },
		{ UINT64_C(1795341601000001000), "\"2026-11-22T10:00:01.000001Z\"" },
		{ UINT64_C(1795341600000007000), "\"2026-11-22T10:00:00.000007Z\"" },
		{ UINT64_C(0), "\"1970-01-01T00:00:00.000000Z\"" },
		{ UINT64_C(999), "\"1970-01-01T00:00:00.000000Z\"" },
		{ UINT64_C(951782400000000000), "\"2000-02-29T00:00:00.000000Z\"" },
	};
	struct buf b;

	(void)state;
	buf_init(&b, 64);
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			buf_reset(&b);
			assert_int_equal(jsonw_time(&b, t[i].ns), 0);
			assert_int_equal(b.len, strlen(t[i].text));
			assert_memory_equal(b.data, t[i].text, b.len);
		}
	buf_free(&b);
}

static void
test_event_record_has_design_members_and_resolved_slices(void **state)
{
	static const char line[] = "203.0.113.9 - - \xff";
	struct event_field f[4] = { 0 };
	struct event ev = { 0 };
	struct buf b;
	json_t *j, *fields;

	(void)state;
	ev.ts = UINT64_C(1795341600123456000);
	ev.host = S("web-01");
	ev.stream = S("nginx.access");
	ev.source = S("/var/log/nginx/access.log");
	ev.message = S(line);
	f[0].key = S("remote_addr");
	f[0].type = EVENT_SLICE;
	f[0].v.slice.offset = 0;
	f[0].v.slice.length = 11;
	f[1].key = S("status");
	f[1].type = EVENT_INTEGER;
	f[1].v.integer = 200;
	f[2].key = S("tags");
	f[2].type = EVENT_JSON;
	f[2].v.json = S("[1,2]");
	f[3].key = S("bad_slice");
	f[3].type = EVENT_SLICE;
	f[3].v.slice.offset = 10;
	f[3].v.slice.length = 100;
	ev.fields = f;
	ev.nfields = 4;
	buf_init(&b, 4096);
	assert_int_equal(event_json(&ev, "web-01", "\"seq\":7", &b), 0);
	j = parse(&b);
	assert_string_equal(json_string_value(json_object_get(j, "ts")), "2026-11-22T10:00:00.123456Z");
	assert_string_equal(json_string_value(json_object_get(j, "agent")), "web-01");
	assert_int_equal(json_integer_value(json_object_get(j, "seq")), 7);
	assert_string_equal(json_string_value(json_object_get(j, "stream")), "nginx.access");
	assert_non_null(json_string_value(json_object_get(j, "message")));
	fields = json_object_get(j, "fields");
	assert_string_equal(json_string_value(json_object_get(fields, "remote_addr")), "203.0.113.9");
	assert_int_equal(json_integer_value(json_object_get(fields, "status")), 200);
	assert_int_equal(json_array_size(json_object_get(fields, "tags")), 2);
	assert_true(json_is_null(json_object_get(fields, "bad_slice")));
	json_decref(j);
	/* A buffer too small: refused, and restored. */
	buf_free(&b);
	buf_init(&b, 64);
	assert_int_equal(event_json(&ev, NULL, NULL, &b), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}


/*
 * Slices of a message with escapes, UTF-8 and invalid bytes, each slice
 * starting and ending everywhere: the record is the one its fields give as
 * text (the bytes a slice resolves to), byte for byte.
 */
static void
test_slices_of_the_message_come_out_as_the_same_text_fields(void **state)
{
	static const char line[] = "ip \"GET /caf\xc3\xa9 HTTP\" \xff tab\there \\ \xe2\x82\xac end";
	struct event_field f[3], tf[3];
	struct event ev, tev;
	struct buf b, want;
	size_t n = sizeof(line) - 1;

	(void)state;
	buf_init(&b, 8192);
	buf_init(&want, 8192);
	memset(&ev, 0, sizeof(ev));
	ev.host = S("web-01");
	ev.message = S(line);
	ev.fields = f;
	ev.nfields = 3;
	for (size_t off = 0; off <= n; off++)
		for (size_t len = 0; off + len <= n; len++) {
			memset(f, 0, sizeof(f));
			f[0].key = S("a");
			f[0].type = EVENT_SLICE;
			f[0].v.slice.offset = (uint32_t)off;
			f[0].v.slice.length = (uint32_t)len;
			f[1] = f[0];
			f[1].key = S("b");
			f[1].v.slice.offset = (uint32_t)(n - len - off / 2 > n ? 0 : n - len - off / 2);
			f[2] = f[0];
			f[2].key = S("c");
			f[2].v.slice.length = (uint32_t)(n - off + 1);   /* past the end: null */
			tev = ev;
			tev.fields = tf;
			for (int i = 0; i < 3; i++) {
				tf[i] = f[i];
				if (event_field_string(&ev, &f[i], &tf[i].v.text) == 0)
					tf[i].type = EVENT_TEXT;
				else
					tf[i].type = EVENT_NULL;
			}
			for (int hive = 0; hive <= 1; hive++) {
				enum event_json_names names = hive ? EVENT_JSON_NAMES_HIVE :
				    EVENT_JSON_NAMES_ORIGINAL;

				buf_reset(&b);
				buf_reset(&want);
				assert_int_equal(event_json_as(&ev, "a", NULL, names, &b), 0);
				assert_int_equal(event_json_as(&tev, "a", NULL, names, &want), 0);
				assert_int_equal(b.len, want.len);
				assert_memory_equal(b.data, want.data, want.len);
			}
		}
	buf_free(&b);
	buf_free(&want);
}

/* An event with the given message and n text fields named keys[i], each of value "v". */
static void
event_with(struct event *ev, struct event_field *f, const char *message, const char *const *keys,
    size_t n)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts = UINT64_C(1795341600123456000);
	ev->host = S("web-01");
	ev->stream = S("app");
	ev->source = S("/var/log/app.json");
	ev->message = (struct pbslice){ (const uint8_t *)message, strlen(message) };
	for (size_t i = 0; i < n; i++) {
		memset(&f[i], 0, sizeof(f[i]));
		f[i].key = (struct pbslice){ (const uint8_t *)keys[i], strlen(keys[i]) };
		f[i].type = EVENT_TEXT;
		f[i].v.text = S("v");
	}
	ev->fields = f;
	ev->nfields = n;
}

/* Writes ev through c and alone into b and want: the same bytes. */
static void
assert_cached_as_written(struct event_json_cache *c, const struct event *ev, const char *agent,
    enum event_json_names names, struct buf *b, struct buf *want)
{
	buf_reset(b);
	buf_reset(want);
	assert_int_equal(event_json_cached(ev, agent, names, c, b), 0);
	assert_int_equal(event_json_as(ev, agent, NULL, names, want), 0);
	assert_int_equal(b->len, want->len);
	assert_memory_equal(b->data, want->data, want->len);
}

/* b's text as a C string (NUL after its end, not counted in its length). */
static const char *
cstr(struct buf *b)
{
	assert_int_equal(buf_reserve(b, 1), 0);
	b->data[b->len] = '\0';
	return (const char *)b->data;
}

/*
 * The names of the record's fields, in order, joined with spaces (fits in
 * out); every value is "v". Read from the text: the order is the record's.
 */
static void
field_names(struct buf *b, char *out, size_t size)
{
	json_t *j = parse(b);
	const char *p = strstr(cstr(b), "\"fields\":{");
	size_t used = 0, count = 0;

	assert_non_null(p);
	p += strlen("\"fields\":{");
	out[0] = '\0';
	while (*p == '"') {
		const char *end = strstr(p + 1, "\":\"v\"");
		int w;

		assert_non_null(end);
		w = snprintf(out + used, size - used, "%s%.*s", used > 0 ? " " : "",
		    (int)(end - p - 1), p + 1);
		assert_true(w > 0 && (size_t)w < size - used);
		used += (size_t)w;
		count++;
		p = end + strlen("\":\"v\"");
		if (*p == ',')
			p++;
	}
	assert_string_equal(p, "}}");
	/* Every name once: collisions were resolved. */
	assert_int_equal(json_object_size(json_object_get(j, "fields")), count);
	json_decref(j);
}

static void
assert_hive_names(const char *const *keys, size_t n, const char *want)
{
	struct event_field f[16];
	struct event ev;
	struct buf b;
	char names[1024];

	assert_true(n <= 16);
	event_with(&ev, f, "m", keys, n);
	buf_init(&b, 1 << 16);
	assert_int_equal(event_json_as(&ev, NULL, NULL, EVENT_JSON_NAMES_HIVE, &b), 0);
	field_names(&b, names, sizeof(names));
	assert_string_equal(names, want);
	buf_free(&b);
}

static void
test_hive_names_are_lower_case_letters_digits_and_underscores(void **state)
{
	static const char *const keys[] = {
		"sd.meta@1.user-name",     /* the example */
		"HTTP_User_Agent",
		"caf\xc3\xa9 au lait",     /* a UTF-8 character is one run of two bytes */
		"a--b..c",                 /* a run of other bytes is one '_' */
		"__REALTIME_TIMESTAMP",    /* underscores are kept as they are */
		"tab\there\x01",
		"x\xff",
	};

	(void)state;
	assert_hive_names(keys, 7, "sd_meta_1_user_name http_user_agent caf_au_lait a_b_c "
	    "__realtime_timestamp tab_here_ x_");
}

static void
test_hive_names_that_would_start_with_a_digit_or_be_empty_start_with_underscore(void **state)
{
	static const char *const keys[] = { "1st", "", "2", "-3d", "@timestamp" };

	(void)state;
	/* "-3d" maps to "_3d": it starts with '_' already. */
	assert_hive_names(keys, 5, "_1st _ _2 _3d _timestamp");
}

static void
test_hive_name_collisions_take_the_first_free_suffix_in_field_order(void **state)
{
	static const char *const keys[] = {
		"user.name", "User-Name", "USER_NAME", "user_name_2", "user name", "",  "_", "a", "A",
		"a_2",
	};

	(void)state;
	/*
	 * The first keeps the name; a later one takes _2, _3, ... the first
	 * not taken by then, so a real field named like a suffix gets its own.
	 */
	assert_hive_names(keys, 10, "user_name user_name_2 user_name_3 user_name_2_2 user_name_4 "
	    "_ __2 a a_2 a_2_2");
}

static void
test_original_names_are_left_as_they_are(void **state)
{
	static const char *const keys[] = { "sd.meta@1.user-name", "Status", "status" };
	struct event_field f[3];
	struct event ev;
	struct buf b, old;

	(void)state;
	event_with(&ev, f, "m", keys, 3);
	buf_init(&b, 4096);
	buf_init(&old, 4096);
	assert_int_equal(event_json_as(&ev, "a", NULL, EVENT_JSON_NAMES_ORIGINAL, &b), 0);
	assert_int_equal(event_json(&ev, "a", NULL, &old), 0);
	assert_int_equal(b.len, old.len);
	assert_memory_equal(b.data, old.data, b.len);
	assert_non_null(strstr(cstr(&b),
	    "\"fields\":{\"sd.meta@1.user-name\":\"v\",\"Status\":\"v\",\"status\":\"v\"}"));
	buf_free(&b);
	buf_free(&old);
}

static void
test_hive_names_of_more_fields_than_the_relay_takes_are_refused(void **state)
{
	enum { N = EVENT_JSON_HIVE_MAX_FIELDS + 1 };
	struct event_field *f = calloc(N, sizeof(*f));
	const char **keys = calloc(N, sizeof(*keys));
	struct event ev;
	struct buf b;

	(void)state;
	assert_non_null(f);
	assert_non_null(keys);
	for (size_t i = 0; i < N; i++)
		keys[i] = "same";
	event_with(&ev, f, "m", keys, N - 1);
	buf_init(&b, 1 << 20);
	/* As many as the relay decodes, every one the same name: each gets its own. */
	assert_int_equal(event_json_as(&ev, NULL, NULL, EVENT_JSON_NAMES_HIVE, &b), 0);
	assert_non_null(strstr(cstr(&b), "\"same_1024\":\"v\"}}"));
	buf_reset(&b);
	ev.nfields = N;
	f[N - 1] = f[0];
	assert_int_equal(event_json_as(&ev, NULL, NULL, EVENT_JSON_NAMES_HIVE, &b), -E2BIG);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	free(f);
	free(keys);
}


/*
 * A run of records that repeat or change their host, stream, source,
 * agent, field names, name mode and field count, with values too long for
 * the cache and more fields than it keeps: event_json_cached writes each
 * exactly as event_json_as does.
 */
static void
test_cached_records_are_the_bytes_event_json_as_writes(void **state)
{
	static const char *const keys_a[] = { "remote_addr", "Status", "status", "x.y" };
	static const char *const keys_b[] = { "remote_addr", "Status", "status", "x-y" };
	enum { MANY = EVENT_JSON_CACHE_FIELDS + 1 };
	struct event_field f[MANY];
	const char *many[MANY];
	struct event_json_cache c;
	struct event ev;
	struct buf b, want;
	char *longv = malloc(EVENT_JSON_CACHE_BYTES + 10);

	(void)state;
	assert_non_null(longv);
	memset(longv, 'h', EVENT_JSON_CACHE_BYTES + 9);
	longv[EVENT_JSON_CACHE_BYTES + 9] = '\0';
	for (size_t i = 0; i < MANY; i++)
		many[i] = i % 2 ? "k" : "K";
	event_json_cache_init(&c);
	buf_init(&b, 1 << 16);
	buf_init(&want, 1 << 16);
	for (int step = 0; step < 24; step++) {
		enum event_json_names names = step % 8 < 4 ? EVENT_JSON_NAMES_ORIGINAL :
		    EVENT_JSON_NAMES_HIVE;
		const char *agent = step % 3 == 0 ? "agent-1" : step % 3 == 1 ? NULL : "agent-2";

		switch (step % 6) {
		case 0:
		case 1:
			event_with(&ev, f, "m \"q\" caf\xc3\xa9", keys_a, 4);
			break;
		case 2:
			event_with(&ev, f, "m", keys_b, 4);
			ev.stream = S("other\n");
			break;
		case 3:
			event_with(&ev, f, "\xff", keys_b, 3);
			ev.host = (struct pbslice){ (const uint8_t *)longv, strlen(longv) };
			break;
		case 4:
			event_with(&ev, f, "m", many, MANY);
			break;
		default:
			event_with(&ev, f, "m", keys_a, 4);
			ev.source = S("");
			f[1].key = (struct pbslice){ (const uint8_t *)longv, strlen(longv) };
			break;
		}
		f[0].type = EVENT_SLICE;
		f[0].v.slice.offset = 0;
		f[0].v.slice.length = 1;
		assert_cached_as_written(&c, &ev, agent, names, &b, &want);
	}
	/* Too small an output: refused and restored, as event_json_as. */
	event_with(&ev, f, "m", keys_a, 4);
	buf_free(&b);
	buf_init(&b, 40);
	assert_int_equal(event_json_cached(&ev, "a", EVENT_JSON_NAMES_ORIGINAL, &c, &b), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	event_json_cache_free(&c);
	buf_free(&b);
	buf_free(&want);
	free(longv);
}

/*
 * More sets of field names in turn than the cache keeps (a parser leaves
 * out what a line lacks): each record is still the bytes event_json_as
 * writes, whether its set is the last one, one kept, or one that pushed
 * the oldest out; sets of one size that differ in one name stay apart.
 */
/*
 * A name or a host that differs from the cached one in one byte, wherever
 * that byte is and whatever the length (1..40: the short, 8- and 16-byte
 * compares and memcmp's), is rendered again, not taken from the cache.
 */
static void
test_cached_names_and_hosts_that_differ_in_any_one_byte_are_rendered_again(void **state)
{
	char key[41], host[41];
	const char *keys[2] = { "first", key };
	struct event_field f[2];
	struct event_json_cache c;
	struct event ev;
	struct buf b, want;

	(void)state;
	event_json_cache_init(&c);
	buf_init(&b, 4096);
	buf_init(&want, 4096);
	for (size_t len = 1; len < sizeof(key); len++)
		for (size_t at = 0; at < len; at++)
			for (int changed = 0; changed < 2; changed++) {
				memset(key, 'k', len);
				key[len] = '\0';
				memset(host, 'h', len);
				host[len] = '\0';
				if (changed)
					key[at] = host[at] = 'x';
				event_with(&ev, f, "m", keys, 2);
				ev.host = (struct pbslice){ (const uint8_t *)host, len };
				assert_cached_as_written(&c, &ev, "a", EVENT_JSON_NAMES_ORIGINAL, &b,
				    &want);
			}
	event_json_cache_free(&c);
	buf_free(&b);
	buf_free(&want);
}

/* Sets of as many names, of the same total length, in turn: each record has its own names. */
static void
test_sets_of_as_many_names_of_the_same_total_length_are_told_apart(void **state)
{
	static const char *const one[] = { "ab", "c", "status" }, *const other[] = { "a", "bc", "status" };
	struct event_field f[3];
	struct event_json_cache c;
	struct event ev;
	struct buf b, want;

	(void)state;
	event_json_cache_init(&c);
	buf_init(&b, 4096);
	buf_init(&want, 4096);
	for (int i = 0; i < 6; i++) {
		event_with(&ev, f, "m", i % 2 ? other : one, 3);
		assert_cached_as_written(&c, &ev, "a", EVENT_JSON_NAMES_ORIGINAL, &b, &want);
	}
	event_json_cache_free(&c);
	buf_free(&b);
	buf_free(&want);
}

static void
test_cached_records_stay_right_when_sets_of_names_outnumber_the_cache(void **state)
{
	static const char *const keys[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
		"k", "l" };
	enum { SETS = EVENT_JSON_CACHE_SETS + 3 };
	const char *names[12];
	struct event_field f[12];
	struct event_json_cache c;
	struct event ev;
	struct buf b, want;

	(void)state;
	event_json_cache_init(&c);
	buf_init(&b, 1 << 16);
	buf_init(&want, 1 << 16);
	for (int step = 0; step < 6 * SETS; step++) {
		/* Set k: all twelve names but the k-th, in a pattern that revisits kept sets. */
		int k = (step * 7 + step / SETS) % SETS;
		size_t n = 0;

		for (int i = 0; i < 12; i++)
			if (i != k)
				names[n++] = keys[i];
		event_with(&ev, f, "m", names, n);
		assert_cached_as_written(&c, &ev, "agent-1", EVENT_JSON_NAMES_ORIGINAL, &b, &want);
	}
	event_json_cache_free(&c);
	buf_free(&b);
	buf_free(&want);
}

/* ------------------------------------------- records of events read from lists */

/*
 * Appends to out a Dict naming key ids 1..n names[0..n) and, host not
 * NULL, origins 1 (host, "app", "/var/log/app.json") and 2 (host, "app2",
 * the same source).
 */
static void
list_dict(struct buf *out, const char *const *names, size_t n, const char *host)
{
	static struct pbslice keys[EVENT_MAX_KEY_ID + 1];
	static struct pbslice origins[EVENT_MAX_ORIGIN_ID + 1][3];
	uint64_t key_used[(EVENT_MAX_KEY_ID + 64) / 64] = { 0 };
	uint64_t origin_used[(EVENT_MAX_ORIGIN_ID + 64) / 64] = { 0 };

	memset(keys, 0, sizeof(keys));
	for (size_t i = 0; i < n; i++) {
		keys[i + 1] = (struct pbslice){ (const uint8_t *)names[i], strlen(names[i]) };
		key_used[0] |= UINT64_C(1) << (i + 1);
	}
	for (unsigned id = 1; id <= 2 && host != NULL; id++) {
		origins[id][0] = (struct pbslice){ (const uint8_t *)host, strlen(host) };
		origins[id][1] = id == 1 ? S("app") : S("app2");
		origins[id][2] = S("/var/log/app.json");
		origin_used[0] |= UINT64_C(1) << id;
	}
	assert_int_equal(event_encode_dict(keys, key_used, origins, origin_used, out), 0);
}

/*
 * Appends to out an event of n slice fields of "GET /x" keyed keys[i] (ids:
 * packed, as agents send them; NULL: every key literal, format 1), of
 * origin origin (0: its own host, stream and source).
 */
static void
list_event(struct buf *out, const char *const *keys, const uint16_t *ids, size_t n,
    unsigned origin)
{
	struct event_field f[8];
	struct event ev;

	event_with(&ev, f, "GET /x", keys, n);
	for (size_t i = 0; i < n; i++) {
		f[i].type = EVENT_SLICE;
		f[i].v.slice.offset = (uint32_t)i % 3;
		f[i].v.slice.length = 3;
	}
	assert_int_equal(ids != NULL ? event_encode_packed(&ev, ids, origin, out) :
	    event_encode_ids(&ev, NULL, origin, out), 0);
}

/*
 * Reads every event of the lists (in turn, one event of each while any
 * is left: their readers interleaved on this thread) and writes each
 * through c: the bytes event_json_as writes, for names as names says.
 */
static void
assert_lists_cached_as_written(struct event_json_cache *c, const struct buf *lists,
    size_t nlists, enum event_json_names names)
{
	struct event_reader r[4];
	struct event_field f[4][8];
	struct buf b, want;
	bool more = true;

	assert_true(nlists <= 4);
	buf_init(&b, 4096);
	buf_init(&want, 4096);
	for (size_t i = 0; i < nlists; i++)
		event_reader_init(&r[i], lists[i].data, lists[i].len, f[i], 8);
	while (more) {
		more = false;
		for (size_t i = 0; i < nlists; i++) {
			struct event ev;
			int rc = event_reader_next(&r[i], &ev);

			assert_true(rc >= 0);
			if (rc == 0)
				continue;
			more = true;
			assert_cached_as_written(c, &ev, "a", names, &b, &want);
		}
	}
	buf_free(&b);
	buf_free(&want);
}

/*
 * Two lists whose Dicts give the same ids other names of the same lengths
 * (the NGINX names of one agent, the same ids and other names of
 * another's): each record has the names of its own list, read one list
 * after the other or interleaved, with original and Hive names.
 */
static void
test_records_of_lists_whose_dicts_give_the_same_ids_other_names_have_their_own(void **state)
{
	static const char *const one[] = { "status", "method", "path" };
	static const char *const two[] = { "Status", "method", "paths" };
	static const uint16_t ids[] = { 1, 2, 3 };
	struct event_json_cache c;
	struct buf lists[2];

	(void)state;
	event_json_cache_init(&c);
	for (int i = 0; i < 2; i++) {
		buf_init(&lists[i], 4096);
		list_dict(&lists[i], i == 0 ? one : two, 3, NULL);
		for (int k = 0; k < 3; k++)
			list_event(&lists[i], i == 0 ? one : two, ids, 3 - (size_t)(k == 2), 0);
	}
	for (int names = 0; names < 2; names++) {
		assert_lists_cached_as_written(&c, &lists[0], 1, (enum event_json_names)names);
		assert_lists_cached_as_written(&c, &lists[1], 1, (enum event_json_names)names);
		assert_lists_cached_as_written(&c, lists, 2, (enum event_json_names)names);
		assert_lists_cached_as_written(&c, &lists[0], 1, (enum event_json_names)names);
	}
	for (int i = 0; i < 2; i++)
		buf_free(&lists[i]);
	event_json_cache_free(&c);
}

/* NGINX-like names, ids 1..3, for the lists below. */
static const char *const list_names[] = { "status", "method", "path" };
static const uint16_t list_ids[] = { 1, 2, 3 };

/* Writes list's records through a new cache, with both kinds of names, and frees list. */
static void
assert_list_cached_as_written(struct buf *list)
{
	struct event_json_cache c;

	event_json_cache_init(&c);
	assert_lists_cached_as_written(&c, list, 1, EVENT_JSON_NAMES_ORIGINAL);
	assert_lists_cached_as_written(&c, list, 1, EVENT_JSON_NAMES_HIVE);
	event_json_cache_free(&c);
	buf_free(list);
}

/*
 * A Dict that replaces another mid-list with the same ids and other names,
 * then the first Dict's bytes again: the events after each have its names.
 */
static void
test_records_after_a_dict_replaced_mid_list_have_the_new_names(void **state)
{
	static const char *const two[] = { "status", "verb__", "path" };
	struct buf list;

	(void)state;
	buf_init(&list, 4096);
	for (int round = 0; round < 3; round++) {
		const char *const *names = round == 1 ? two : list_names;

		list_dict(&list, names, 3, NULL);
		list_event(&list, names, list_ids, 3, 0);
		list_event(&list, names, list_ids, 2, 0);
		list_event(&list, names, list_ids, 3, 0);
	}
	assert_list_cached_as_written(&list);
}

/*
 * Events with literal names (no ids: as format 1, or the relay's own
 * events) between events named by ids: two literal sets of the same
 * lengths are told apart, and so are literal names and a Dict's.
 */
static void
test_records_of_events_with_literal_names_have_their_own_names(void **state)
{
	static const char *const two[] = { "stat_s", "method", "pa_h" };
	struct buf list;

	(void)state;
	buf_init(&list, 4096);
	list_dict(&list, list_names, 3, NULL);
	list_event(&list, list_names, list_ids, 3, 0);
	list_event(&list, two, NULL, 3, 0);
	list_event(&list, list_names, NULL, 3, 0);
	list_event(&list, two, NULL, 3, 0);
	list_event(&list, list_names, list_ids, 3, 0);
	list_event(&list, two, NULL, 3, 0);
	assert_list_cached_as_written(&list);
}

/*
 * Lists whose Dicts give the same origin ids other hosts (of the same
 * length), events of their own host between, and a Dict replacing
 * another mid-list: each record has its own host, stream and source.
 */
static void
test_records_of_dicts_that_give_the_same_origin_ids_other_hosts_have_their_own(void **state)
{
	struct event_json_cache c;
	struct buf lists[3];

	(void)state;
	event_json_cache_init(&c);
	for (int i = 0; i < 3; i++) {
		buf_init(&lists[i], 4096);
		list_dict(&lists[i], list_names, 3, i == 1 ? "web-02" : "web-03");
		list_event(&lists[i], list_names, list_ids, 3, 1);
		list_event(&lists[i], list_names, list_ids, 3, 1);
		list_event(&lists[i], list_names, list_ids, 3, 2);
		list_event(&lists[i], list_names, list_ids, 3, 0);
		list_event(&lists[i], list_names, list_ids, 3, 1);
	}
	/* The third: the first's Dict, then another with the same ids. */
	list_dict(&lists[2], list_names, 3, "web-04");
	list_event(&lists[2], list_names, list_ids, 3, 1);
	list_event(&lists[2], list_names, list_ids, 3, 2);
	assert_lists_cached_as_written(&c, &lists[0], 1, EVENT_JSON_NAMES_ORIGINAL);
	assert_lists_cached_as_written(&c, &lists[1], 1, EVENT_JSON_NAMES_ORIGINAL);
	assert_lists_cached_as_written(&c, lists, 2, EVENT_JSON_NAMES_ORIGINAL);
	assert_lists_cached_as_written(&c, &lists[2], 1, EVENT_JSON_NAMES_ORIGINAL);
	assert_lists_cached_as_written(&c, lists, 3, EVENT_JSON_NAMES_ORIGINAL);
	for (int i = 0; i < 3; i++)
		buf_free(&lists[i]);
	event_json_cache_free(&c);
}

/* The bytes of base64 member name of j, decoded into out. */
static size_t
b64_member(json_t *j, const char *name, uint8_t *out)
{
	const char *s = json_string_value(json_object_get(j, name));
	size_t n;

	assert_non_null(s);
	assert_int_equal(base64_decode((const uint8_t *)s, strlen(s), out, &n), 0);
	return n;
}

static void
test_a_message_that_is_not_utf8_keeps_its_bytes_in_message_b64(void **state)
{
	static const char *const messages[] = {
		"caf\xe9 latin-1", "\xff", "ok then \xc3", "\xed\xa0\x80 surrogate", "\x80\x81\x82\x83",
	};
	static const char *const keys[] = { "Note" };
	struct event_field f[1];
	struct event ev;
	struct buf b;
	uint8_t dec[64];
	json_t *j;

	(void)state;
	buf_init(&b, 4096);
	for (int hive = 0; hive <= 1; hive++)
		for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
			size_t n;

			event_with(&ev, f, messages[i], keys, 1);
			/* A text field that is not UTF-8 either: only the message carries its bytes. */
			f[0].v.text = ev.message;
			buf_reset(&b);
			assert_int_equal(event_json_as(&ev, "a", NULL,
			    hive ? EVENT_JSON_NAMES_HIVE : EVENT_JSON_NAMES_ORIGINAL, &b), 0);
			j = parse(&b);
			n = b64_member(j, "message_b64", dec);
			assert_int_equal(n, strlen(messages[i]));
			assert_memory_equal(dec, messages[i], n);
			/* Right after message, before fields. */
			assert_non_null(strstr(cstr(&b), "\",\"message_b64\":\""));
			assert_non_null(strstr(cstr(&b), "\",\"fields\":{"));
			assert_true(strstr(cstr(&b), "\"message_b64\"") <
			    strstr(cstr(&b), "\"fields\""));
			assert_int_equal(json_object_size(json_object_get(j, "fields")), 1);
			json_decref(j);
		}
	/* Valid UTF-8, escapes and all: no message_b64. */
	event_with(&ev, f, "caf\xc3\xa9 \"q\"\n\x01", keys, 1);
	buf_reset(&b);
	assert_int_equal(event_json(&ev, "a", NULL, &b), 0);
	j = parse(&b);
	assert_null(json_object_get(j, "message_b64"));
	json_decref(j);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings_are_escaped_and_read_back_the_same),
		cmocka_unit_test(test_every_special_byte_at_every_offset_reads_back),
		cmocka_unit_test(test_two_special_bytes_in_one_8_byte_run_read_back),
		cmocka_unit_test(test_appends_of_every_small_length_copy_exactly_their_bytes),
		cmocka_unit_test(test_invalid_utf8_becomes_replacement_characters),
		cmocka_unit_test(test_string_says_whether_it_replaced_bytes_in_the_same_pass),
		cmocka_unit_test(test_cut_costs_what_jsonw_string_writes_and_keeps_utf8_whole),
		cmocka_unit_test(test_numbers_and_times),
		cmocka_unit_test(test_strings_are_the_bytes_a_byte_at_a_time_writer_writes),
		cmocka_unit_test(test_integers_of_every_digit_count_are_what_printf_writes),
		cmocka_unit_test(test_a_new_threads_times_across_second_boundaries_are_each_right),
		cmocka_unit_test(test_times_of_the_same_second_and_of_others_are_each_right),
		cmocka_unit_test(test_a_part_of_a_marked_string_comes_out_as_jsonw_string_writes_it),
		cmocka_unit_test(test_parts_through_one_cursor_in_any_order_come_out_as_jsonw_string_writes_them),
		cmocka_unit_test(test_event_record_has_design_members_and_resolved_slices),
		cmocka_unit_test(test_slices_of_the_message_come_out_as_the_same_text_fields),
		cmocka_unit_test(test_hive_names_are_lower_case_letters_digits_and_underscores),
		cmocka_unit_test(test_hive_names_that_would_start_with_a_digit_or_be_empty_start_with_underscore),
		cmocka_unit_test(test_hive_name_collisions_take_the_first_free_suffix_in_field_order),
		cmocka_unit_test(test_original_names_are_left_as_they_are),
		cmocka_unit_test(test_hive_names_of_more_fields_than_the_relay_takes_are_refused),
		cmocka_unit_test(test_a_message_that_is_not_utf8_keeps_its_bytes_in_message_b64),
		cmocka_unit_test(test_cached_records_are_the_bytes_event_json_as_writes),
		cmocka_unit_test(test_cached_records_stay_right_when_sets_of_names_outnumber_the_cache),
		cmocka_unit_test(test_sets_of_as_many_names_of_the_same_total_length_are_told_apart),
		cmocka_unit_test(test_cached_names_and_hosts_that_differ_in_any_one_byte_are_rendered_again),
		cmocka_unit_test(test_records_of_lists_whose_dicts_give_the_same_ids_other_names_have_their_own),
		cmocka_unit_test(test_records_after_a_dict_replaced_mid_list_have_the_new_names),
		cmocka_unit_test(test_records_of_events_with_literal_names_have_their_own_names),
		cmocka_unit_test(test_records_of_dicts_that_give_the_same_origin_ids_other_hosts_have_their_own),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
