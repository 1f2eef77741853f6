/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/jsonw and proto/event_json: output parsed back with jansson. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

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
	json_t *j;

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
			buf_reset(&b);
			assert_int_equal(jsonw_string(&b, in, sizeof(in)), 0);
			j = parse(&b);
			assert_int_equal(json_string_length(j), sizeof(in));
			assert_memory_equal(json_string_value(j), in, sizeof(in));
			json_decref(j);
		}
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings_are_escaped_and_read_back_the_same),
		cmocka_unit_test(test_every_special_byte_at_every_offset_reads_back),
		cmocka_unit_test(test_invalid_utf8_becomes_replacement_characters),
		cmocka_unit_test(test_cut_costs_what_jsonw_string_writes_and_keeps_utf8_whole),
		cmocka_unit_test(test_numbers_and_times),
		cmocka_unit_test(test_event_record_has_design_members_and_resolved_slices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
