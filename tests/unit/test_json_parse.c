/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json_parse.h"
#include "common/parser.h"
#include "proto/event.h"

#define NS UINT64_C(1000000000)
/* 2024-11-22T10:00:00Z, NGINX's $msec of the examples. */
#define T2024 UINT64_C(1732269600)
/* 2026-11-22T10:00:00Z */
#define T2026 UINT64_C(1795341600)
#define SCRATCH (64 * 1024)

static struct parsed P;
static const char *line;   /* what P was parsed from */

/* Valid lines: the truncation, mutation and round-trip tests use them all. */
static const char *const valid[] = {
	("{\"ts\":\"1732269600.123\",\"remote_addr\":\"203.0.113.9\",\"request\":\"GET / HTTP/1.1\","
	    "\"status\":200,\"body_bytes_sent\":612,\"request_time\":0.005,"
	    "\"http_user_agent\":\"curl/8.0 \\\"x\\\"\",\"upstream\":null}"),
	("{\"s\":\"t\\u00e9\\n\",\"i\":-7,\"r\":2.5,\"t\":true,\"f\":false,\"n\":null,"
	    "\"o\":{\"b\":[1,2,{\"c\":null}]},\"a\":[],\"e\":{}}"),
	"{\"ts\":\"2026-11-22T10:00:00.123456+01:00\",\"level\":\"info\",\"msg\":\"\\ud83d\\ude00\"}",
	"{\"ts\":1732269600123,\"\":\"\",\"nul\":\"a\\u0000b\"}",
	"{}",
};

/* -------------------------------------------------------------- helpers */

static int
parse(const char *s)
{
	line = s;
	return json_parse((const uint8_t *)s, strlen(s), &P);
}

/* Parses an exact-size heap copy of s[0, len), so ASan sees any read past it. */
static int
parse_copy(const void *s, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, len);
	line = "(copy)";
	r = json_parse(copy, len, &P);
	free(copy);
	return r;
}

static int
setup(void **state)
{
	(void)state;
	parser_init(&P, SCRATCH);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	parser_free(&P);
	return 0;
}

static const struct event_field *
field_n(const char *key, size_t klen)
{
	for (size_t i = 0; i < P.nfields; i++)
		if (P.fields[i].key.len == klen && memcmp(P.fields[i].key.ptr, key, klen) == 0)
			return &P.fields[i];
	fail_msg("no field %.*s in %s", (int)klen, key, line);
	return NULL;
}

static const struct event_field *
field(const char *key)
{
	return field_n(key, strlen(key));
}

/* Bytes of the field's text (TEXT or JSON), of length n. */
static void
assert_bytes(const char *key, enum event_value_type type, const void *want, size_t n)
{
	const struct event_field *f = field(key);
	const struct pbslice *s = type == EVENT_TEXT ? &f->v.text : &f->v.json;

	assert_int_equal(f->type, type);
	if (s->len != n || (n > 0 && memcmp(s->ptr, want, n) != 0))
		fail_msg("%s: got \"%.*s\", want \"%.*s\"", key, (int)s->len,
		    (const char *)s->ptr, (int)n, (const char *)want);
}

static void
assert_text(const char *key, const char *want)
{
	assert_bytes(key, EVENT_TEXT, want, strlen(want));
}

static void
assert_json(const char *key, const char *want)
{
	assert_bytes(key, EVENT_JSON, want, strlen(want));
}

static void
assert_integer(const char *key, int64_t want)
{
	const struct event_field *f = field(key);

	assert_int_equal(f->type, EVENT_INTEGER);
	assert_int_equal(f->v.integer, want);
}

static void
assert_key_at(size_t i, const char *key)
{
	assert_true(i < P.nfields);
	if (P.fields[i].key.len != strlen(key) ||
	    memcmp(P.fields[i].key.ptr, key, P.fields[i].key.len) != 0)
		fail_msg("field %zu: got key \"%.*s\", want \"%s\"", i, (int)P.fields[i].key.len,
		    (const char *)P.fields[i].key.ptr, key);
}

/* A failed parse: -EINVAL, no fields, no time, and an error that starts with want. */
static void
assert_failed(int r, const char *want)
{
	assert_int_equal(r, -EINVAL);
	assert_non_null(P.error);
	assert_int_equal(P.nfields, 0);
	assert_int_equal(P.ts, 0);
	assert_null(P.host.ptr);
	if (strncmp(P.error, want, strlen(want)) != 0)
		fail_msg("%s\n  gave: %s\n  want: %s...", line, P.error, want);
}

static void
expect_error(const char *s, const char *want)
{
	assert_failed(parse(s), want);
}

/* The ts a line {"ts":<ts>,"x":1} gets; the line must parse and keep both fields. */
static uint64_t
ts_of(const char *ts)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "{\"ts\":%s,\"x\":1}", ts);
	if (parse(buf) != 0)
		fail_msg("%s: %s", buf, P.error);
	assert_int_equal(P.nfields, 2);
	assert_key_at(0, "ts");
	return P.ts;
}

static void
assert_ts(const char *ts, uint64_t want)
{
	uint64_t got = ts_of(ts);

	if (got != want)
		fail_msg("ts %s: got %ju, want %ju", ts, (uintmax_t)got, (uintmax_t)want);
}

/* ---------------------------------------------------------------- types */

static void
test_members_keep_their_json_types(void **state)
{
	const struct event_field *f;

	(void)state;
	assert_int_equal(parse(valid[1]), 0);
	assert_null(P.error);
	assert_int_equal(P.nfields, 9);
	assert_int_equal(P.ts, 0);
	assert_text("s", "t\xc3\xa9\n");
	assert_integer("i", -7);
	f = field("r");
	assert_int_equal(f->type, EVENT_NUMBER);
	assert_true(f->v.number == 2.5);
	f = field("t");
	assert_int_equal(f->type, EVENT_BOOLEAN);
	assert_true(f->v.boolean);
	f = field("f");
	assert_int_equal(f->type, EVENT_BOOLEAN);
	assert_false(f->v.boolean);
	assert_int_equal(field("n")->type, EVENT_NULL);
	assert_json("o", "{\"b\":[1,2,{\"c\":null}]}");
	assert_json("a", "[]");
	assert_json("e", "{}");
}

static void
test_integers_span_int64_and_reals_keep_their_value(void **state)
{
	const struct event_field *f;

	(void)state;
	assert_int_equal(parse("{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
	    "\"zero\":0,\"e\":1e3,\"neg\":-0.5,\"tiny\":5e-324}"), 0);
	assert_integer("max", INT64_MAX);
	assert_integer("min", INT64_MIN);
	assert_integer("zero", 0);
	/* An exponent makes a real, even when the value is whole. */
	f = field("e");
	assert_int_equal(f->type, EVENT_NUMBER);
	assert_true(f->v.number == 1000.0);
	assert_true(field("neg")->v.number == -0.5);
	assert_true(field("tiny")->v.number == 5e-324);
}

static void
test_integer_beyond_int64_is_an_error(void **state)
{
	(void)state;
	/* jansson decides: it has no bigger integers, and refuses the line. */
	expect_error("{\"id\":9223372036854775808}", "json: invalid JSON at column ");
	expect_error("{\"id\":18446744073709551615}", "json: invalid JSON at column ");
	expect_error("{\"r\":1e400}", "json: invalid JSON at column ");
}

static void
test_nested_values_are_compact_json_in_the_line_order(void **state)
{
	(void)state;
	assert_int_equal(parse("{ \"o\" : { \"z\" : [ 1 , 2.5 , \"a\\u00e9\\n\\\"\" ] ,\n"
	    "\t\"a\" : { } , \"m\" : [ true , false , null ] , \"s\" : \"/\" } ,"
	    " \"arr\" : [ { \"b\" : 1 , \"a\" : 2 } , [ [ ] ] ] }"), 0);
	assert_int_equal(P.nfields, 2);
	/* Strings are UTF-8 and re-escaped only where JSON requires it. */
	assert_json("o", "{\"z\":[1,2.5,\"a\xc3\xa9\\n\\\"\"],\"a\":{},"
	    "\"m\":[true,false,null],\"s\":\"/\"}");
	assert_json("arr", "[{\"b\":1,\"a\":2},[[]]]");
	/* A NUL inside a nested string stays escaped. */
	assert_int_equal(parse("{\"o\":[\"a\\u0000b\"]}"), 0);
	assert_json("o", "[\"a\\u0000b\"]");
}

static void
test_nested_reals_are_written_with_17_digits(void **state)
{
	(void)state;
	/* jansson's %.17g: exact, so a reader gets the same double back. */
	assert_int_equal(parse("{\"o\":[0.1,2.5,1e3,-0.0]}"), 0);
	assert_json("o", "[0.10000000000000001,2.5,1000.0,-0.0]");
}

static void
test_members_keep_the_order_of_the_line(void **state)
{
	static const char *const keys[] = {
		"zeta", "alpha", "mu", "b", "a", "ts", "yy", "c", "beta", "x1", "x0", "_",
	};
	char buf[1024];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\":%zu", i ? "," : "",
		    keys[i], i);
	snprintf(buf + n, sizeof(buf) - n, "}");
	assert_int_equal(parse(buf), 0);
	assert_int_equal(P.nfields, sizeof(keys) / sizeof(keys[0]));
	for (size_t i = 0; i < P.nfields; i++) {
		assert_key_at(i, keys[i]);
		assert_int_equal(P.fields[i].type, EVENT_INTEGER);
		assert_int_equal(P.fields[i].v.integer, (int64_t)i);
	}
}

static void
test_repeated_key_keeps_its_first_place_and_last_value(void **state)
{
	(void)state;
	/* jansson decides: the second value replaces the first in place. */
	assert_int_equal(parse("{\"a\":1,\"b\":\"x\",\"a\":\"last\"}"), 0);
	assert_int_equal(P.nfields, 2);
	assert_key_at(0, "a");
	assert_key_at(1, "b");
	assert_text("a", "last");
}

static void
test_escapes_are_decoded(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"esc\":\"\\n\\t\\r\\b\\f\\\"\\\\\\/\",\"e\\u0301\":\"\\u00e9\","
	    "\"smile\":\"\\ud83d\\ude00\",\"raw\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
	    "\"ctl\":\"\\u001b[0m\"}"), 0);
	assert_text("esc", "\n\t\r\b\f\"\\/");
	/* Keys are decoded too. */
	assert_text("e\xcc\x81", "\xc3\xa9");
	/* A surrogate pair is one 4-byte UTF-8 character. */
	assert_text("smile", "\xf0\x9f\x98\x80");
	assert_text("raw", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_text("ctl", "\x1b[0m");
	/* A lone surrogate is not a character: jansson refuses it. */
	expect_error("{\"s\":\"\\ud83d\"}", "json: invalid JSON at column ");
	expect_error("{\"s\":\"\\ude00x\"}", "json: invalid JSON at column ");
}

static void
test_escaped_nul_is_kept_in_values_but_refused_in_keys(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"nul\":\"a\\u0000b\",\"only\":\"\\u0000\"}"), 0);
	assert_bytes("nul", EVENT_TEXT, "a\0b", 3);
	assert_bytes("only", EVENT_TEXT, "\0", 1);
	expect_error("{\"a\\u0000b\":1}", "json: invalid JSON at column ");
}

static void
test_empty_keys_and_strings_are_fields(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"\":\"\"}"), 0);
	assert_int_equal(P.nfields, 1);
	assert_int_equal(P.fields[0].key.len, 0);
	assert_non_null(P.fields[0].key.ptr);
	assert_text("", "");
	assert_non_null(P.fields[0].v.text.ptr);
}

/* ----------------------------------------------------------------- time */

static void
test_ts_number_of_seconds_keeps_the_fraction_to_the_microsecond(void **state)
{
	(void)state;
	assert_ts("1732269600.123", T2024 * NS + 123000000);
	assert_ts("1732269600.5", T2024 * NS + 500000000);
	assert_ts("1732269600.000001", T2024 * NS + 1000);
	/* Past what a double holds of a current time: rounded to the microsecond. */
	assert_ts("1732269600.123456789", T2024 * NS + 123457000);
	assert_ts("1732269600.9999999", (T2024 + 1) * NS);
	assert_ts("1.7322696e9", UINT64_C(1732269600) * NS);
	/* The ts stays a field with its own type. */
	ts_of("1732269600.123");
	assert_int_equal(field("ts")->type, EVENT_NUMBER);
}

static void
test_ts_integer_unit_follows_its_magnitude(void **state)
{
	(void)state;
	assert_ts("1732269600", T2024 * NS);
	assert_ts("1732269600123", T2024 * NS + 123000000);
	assert_ts("1732269600123456", T2024 * NS + 123456000);
	assert_ts("1732269600123456789", T2024 * NS + 123456789);
	assert_int_equal(field("ts")->type, EVENT_INTEGER);
	/* The thresholds: 1e11 ms, 1e14 us and 1e17 ns are all 1973-03-03T09:46:40Z. */
	assert_ts("100000000000", UINT64_C(100000000) * NS);
	assert_ts("100000000000000", UINT64_C(100000000) * NS);
	assert_ts("100000000000000000", UINT64_C(100000000) * NS);
	/* Just below them: year 5138 in the larger unit, past 2554, no time. */
	assert_ts("99999999999", 0);
	assert_ts("99999999999999", 0);
	assert_ts("99999999999999999", 0);
	/* The last second a uint64_t of nanoseconds holds, 2554-07-21T23:34:33Z. */
	assert_ts("18446744073", UINT64_C(18446744073) * NS);
	assert_ts("18446744074", 0);
	assert_ts("9223372036854775807", UINT64_C(9223372036854775807));
	/* Reals follow the same thresholds: milliseconds with a fraction. */
	assert_ts("1732269600123.5", T2024 * NS + 123500000);
	assert_ts("1.732269600123e12", T2024 * NS + 123000000);
	assert_ts("0", 0);
	assert_ts("1", NS);
}

static void
test_ts_string_of_a_number_is_read_exactly(void **state)
{
	(void)state;
	/* NGINX's $msec. */
	assert_ts("\"1732269600.123\"", T2024 * NS + 123000000);
	assert_int_equal(field("ts")->type, EVENT_TEXT);
	assert_ts("\"1732269600\"", T2024 * NS);
	assert_ts("\"1732269600.123456789\"", T2024 * NS + 123456789);
	/* Digits finer than the nanosecond are dropped. */
	assert_ts("\"1732269600.1234567899\"", T2024 * NS + 123456789);
	assert_ts("\"1732269600123\"", T2024 * NS + 123000000);
	assert_ts("\"1732269600123.456789\"", T2024 * NS + 123456789);
	assert_ts("\"1732269600123456\"", T2024 * NS + 123456000);
	assert_ts("\"1732269600123456.7\"", T2024 * NS + 123456700);
	assert_ts("\"1732269600123456789\"", T2024 * NS + 123456789);
	assert_ts("\"1732269600123456789.9\"", T2024 * NS + 123456789);
}

static void
test_ts_rfc3339_strings_with_z_offsets_and_space(void **state)
{
	(void)state;
	assert_ts("\"2026-11-22T10:00:00Z\"", T2026 * NS);
	assert_ts("\"2026-11-22T10:00:00.123456Z\"", T2026 * NS + 123456000);
	assert_ts("\"2026-11-22T10:00:00.123456789z\"", T2026 * NS + 123456789);
	assert_ts("\"2026-11-22T11:00:00+01:00\"", T2026 * NS);
	assert_ts("\"2026-11-22T04:30:00.5-05:30\"", T2026 * NS + 500000000);
	assert_ts("\"2026-11-22 10:00:00Z\"", T2026 * NS);
	assert_ts("\"2026-11-22 11:00:00.1+01:00\"", T2026 * NS + 100000000);
	assert_ts("\"2026-11-22t10:00:00+00:00\"", T2026 * NS);
	/* NGINX's $time_iso8601. */
	assert_ts("\"2026-11-22T10:00:00+00:00\"", T2026 * NS);
}

static void
test_unreadable_ts_leaves_zero_and_keeps_the_field(void **state)
{
	static const char *const bad[] = {
		"\"yesterday\"", "\"\"", "\" 1732269600\"", "\"1732269600 \"", "\"+1732269600\"",
		"\"-1732269600\"", "\"1732269600.\"", "\".5\"", "\"1.5e9\"", "\"1732269600,5\"",
		"\"1732269600.1x\"", "\"99999999999999999999999\"",
		"\"2026-11-22T10:00:00\"", "\"2026-11-22T10:00:00Zjunk\"",
		"\"2026-11-22T10:00:00+0100\"", "\"2026-02-30T10:00:00Z\"",
		"\"2026-11-22T24:00:00Z\"", "\"2026-11-22T10:00:00.Z\"",
		"\"2026-11-22T10:00:00.1234567891Z\"", "\"22/Nov/2026:10:00:00 +0000\"",
		/* Before 1970 or after 2554: no uint64 of nanoseconds. */
		"\"1969-12-31T23:59:59Z\"", "\"2600-01-01T00:00:00Z\"", "\"99999999999\"",
		"-1", "-1.5", "-0.0001", "99999999999", "99999999999.5", "1e300",
		"true", "false", "null", "{}", "[1732269600]", "{\"s\":1732269600}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_ts(bad[i], 0);
	/* A key that only looks like ts is not one. */
	assert_int_equal(parse("{\"TS\":1732269600,\"ts \":1732269600,\"t\":1}"), 0);
	assert_int_equal(P.ts, 0);
	assert_int_equal(P.nfields, 3);
	/* A nested ts is a value of its object, not the event's time. */
	assert_int_equal(parse("{\"o\":{\"ts\":1732269600}}"), 0);
	assert_int_equal(P.ts, 0);
}

static void
test_repeated_ts_uses_the_last_value(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"ts\":1,\"ts\":1732269600}"), 0);
	assert_int_equal(P.nfields, 1);
	assert_int_equal(P.ts, T2024 * NS);
}

/* --------------------------------------------------------- line framing */

static void
test_trailing_crlf_and_whitespace_are_ignored(void **state)
{
	static const char *const lines[] = {
		"{\"a\":1}", "{\"a\":1}\n", "{\"a\":1}\r\n", "{\"a\":1}\r", "  {\"a\":1}  \t\r\n",
		"{\"a\":1}\n\n", "\r\n{\"a\":1}",
		/* A UTF-8 BOM, as on the first line of a file some editors wrote. */
		"\xef\xbb\xbf{\"a\":1}\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (parse_copy(lines[i], strlen(lines[i])) != 0)
			fail_msg("%zu: %s", i, P.error);
		assert_int_equal(P.nfields, 1);
		assert_integer("a", 1);
	}
}

static void
test_empty_and_blank_lines_are_errors(void **state)
{
	(void)state;
	assert_failed(json_parse(NULL, 0, &P), "json: empty line");
	expect_error("", "json: empty line");
	expect_error("\n", "json: empty line");
	expect_error("\r\n", "json: empty line");
	expect_error(" ", "json: invalid JSON at column ");
	expect_error("   \t  ", "json: invalid JSON at column ");
	expect_error("\n\n", "json: invalid JSON at ");
}

static void
test_non_object_is_an_error(void **state)
{
	static const char *const lines[] = {
		"[]", "[{\"a\":1}]", "1", "-2.5", "\"text\"", "null", "true", "false",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		expect_error(lines[i], "json: not a JSON object");
	/* No error message leaks between lines. */
	assert_int_equal(parse("{}"), 0);
	assert_null(P.error);
	assert_int_equal(P.nfields, 0);
}

static void
test_syntax_errors_say_where(void **state)
{
	(void)state;
	expect_error("{\"a\":1,}", "json: invalid JSON at column 8: string or '}' expected near '}'");
	expect_error("{\"a\":1} x", "json: invalid JSON at column 9: end of file expected near 'x'");
	expect_error("{\"a\" 1}", "json: invalid JSON at column 6: ':' expected near '1'");
	expect_error("{'a':1}", "json: invalid JSON at column 2: ");
	expect_error("{\"a\":tru}", "json: invalid JSON at column ");
	expect_error("{\"a\":01}", "json: invalid JSON at column ");
	expect_error("{\"a\":NaN}", "json: invalid JSON at column ");
	expect_error("{\"a\":1}{\"b\":2}", "json: invalid JSON at column ");
	/* Columns count characters of the line; a newline inside restarts them. */
	expect_error("{\"\xc3\xa9\":1,}", "json: invalid JSON at column 8: ");
	expect_error("{\n\"a\":1,}", "json: invalid JSON at line 2 column 7: ");
}

static void
test_error_text_has_no_control_bytes(void **state)
{
	(void)state;
	expect_error("{\"a\":1} \x1b[31m", "json: invalid JSON at column ");
	for (const char *p = P.error; *p != '\0'; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void
test_invalid_utf8_is_an_error(void **state)
{
	static const char *const lines[] = {
		"{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xc3(\"}", "{\"a\":\"\xe2\x82\"}",
		"{\"a\":\"\xed\xa0\x80\"}",          /* an encoded surrogate */
		"{\"a\":\"\xc0\xaf\"}",              /* an overlong "/" */
		"{\"a\":\"\xf4\x90\x80\x80\"}",      /* past U+10FFFF */
		"{\"\xff\":1}", "{\"a\":1}\xff", "\xef\xbb{\"a\":1}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_failed(parse_copy(lines[i], strlen(lines[i])), "json: invalid JSON");
}

static void
test_raw_nul_and_control_bytes_are_errors(void **state)
{
	static const char nul_in_string[] = "{\"a\":\"x\0y\"}";
	static const char nul_after[] = "{\"a\":1}\0";
	static const char nul_before[] = "\0{\"a\":1}";
	static const char tab_in_string[] = "{\"a\":\"x\ty\"}";

	(void)state;
	assert_failed(parse_copy(nul_in_string, sizeof(nul_in_string) - 1), "json: invalid JSON");
	assert_failed(parse_copy(nul_after, sizeof(nul_after) - 1), "json: invalid JSON");
	assert_failed(parse_copy(nul_before, sizeof(nul_before) - 1), "json: invalid JSON");
	assert_failed(parse_copy(tab_in_string, sizeof(tab_in_string) - 1), "json: invalid JSON");
}

static void
test_truncation_at_every_length_is_an_error(void **state)
{
	(void)state;
	for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
		size_t len = strlen(valid[v]);

		assert_int_equal(parse_copy(valid[v], len), 0);
		for (size_t n = 0; n < len; n++) {
			int r = parse_copy(valid[v], n);

			if (r != -EINVAL)
				fail_msg("%.*s: %d", (int)n, valid[v], r);
			assert_failed(r, "json: ");
		}
	}
}

static void
test_random_and_mutated_bytes_never_crash(void **state)
{
	static const char alphabet[] = "{}[]\":,\\ u0123456789.eE+-tfnrlsaTZ\xc3\xa9\xff\n";
	char bytes[300];
	unsigned seed = 7;

	(void)state;
	for (int iter = 0; iter < 100000; iter++) {
		size_t len;
		int r;

		if (iter % 3 == 0) {
			len = (size_t)(rand_r(&seed) % (int)sizeof(bytes));
			for (size_t i = 0; i < len; i++)
				bytes[i] = (char)rand_r(&seed);
		} else {
			const char *v = valid[rand_r(&seed) % (int)(sizeof(valid) / sizeof(valid[0]))];

			len = strlen(v);
			memcpy(bytes, v, len);
			for (int k = rand_r(&seed) % 4; k >= 0; k--)
				bytes[rand_r(&seed) % (int)len] = iter % 3 == 1 ?
				    alphabet[rand_r(&seed) % (int)(sizeof(alphabet) - 1)] :
				    (char)rand_r(&seed);
		}
		r = parse_copy(bytes, len);
		if (r != 0) {
			assert_failed(r, "json: ");
			continue;
		}
		for (size_t i = 0; i < P.nfields; i++) {
			const struct event_field *f = &P.fields[i];

			assert_true(f->key.len <= P.scratch.len);
			if (f->type == EVENT_TEXT || f->type == EVENT_JSON)
				assert_true(f->v.text.ptr + f->v.text.len <=
				    P.scratch.data + P.scratch.len);
		}
	}
}

/* --------------------------------------------------------------- limits */

static void
test_64_members_fit_and_65_are_an_error(void **state)
{
	char buf[2048];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < PARSER_MAX_FIELDS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%c\"k%d\":%d", i ? ',' : '{',
		    i, i);
	snprintf(buf + n, sizeof(buf) - n, "}");
	assert_int_equal(parse(buf), 0);
	assert_int_equal(P.nfields, PARSER_MAX_FIELDS);
	assert_key_at(PARSER_MAX_FIELDS - 1, "k63");
	snprintf(buf + n, sizeof(buf) - n, ",\"k64\":64}");
	expect_error(buf, "json: more than 64 members");
	assert_string_equal(P.error, "json: more than 64 members");
	/* Members are counted once jansson has merged repeated keys. */
	snprintf(buf + n, sizeof(buf) - n, ",\"k0\":64}");
	assert_int_equal(parse(buf), 0);
	assert_int_equal(P.nfields, PARSER_MAX_FIELDS);
}

static void
test_scratch_too_small_is_an_error_not_a_crash(void **state)
{
	/*
	 * Keys and values need 1 + 3 + 1 + 27 + 1 = 33 bytes of scratch. The
	 * nested key is long: jansson goes on writing after a key that did
	 * not fit, which must not give a shorter text.
	 */
	static const char l[] = "{\"a\":\"bcd\",\"e\":{\"f\":[1,2],\"long_key\":null},\"g\":1}";
	const size_t need = 33;
	struct parsed small;

	(void)state;
	for (size_t cap = 0; cap <= need + 8; cap++) {
		int r;

		parser_init(&small, cap);
		r = json_parse((const uint8_t *)l, sizeof(l) - 1, &small);
		if (cap < need) {
			assert_int_equal(r, -EINVAL);
			assert_string_equal(small.error, "json: keys and values exceed the scratch cap");
			assert_int_equal(small.nfields, 0);
		} else {
			assert_int_equal(r, 0);
			assert_int_equal(small.nfields, 3);
			assert_int_equal(small.scratch.len, need);
			assert_int_equal(small.fields[1].v.json.len, 27);
			assert_memory_equal(small.fields[1].v.json.ptr,
			    "{\"f\":[1,2],\"long_key\":null}", 27);
		}
		assert_true(small.scratch.cap <= cap);
		/* A syntax error's text falls back to a static one when it does not fit. */
		r = json_parse((const uint8_t *)"{", 1, &small);
		assert_int_equal(r, -EINVAL);
		assert_non_null(small.error);
		assert_true(strncmp(small.error, "json: invalid JSON", 18) == 0);
		parser_free(&small);
	}
	/* Members without bytes need no scratch at all. */
	parser_init(&small, 0);
	assert_int_equal(json_parse((const uint8_t *)"{\"\":1,\"\":true}", 14, &small), 0);
	assert_int_equal(small.nfields, 1);
	assert_non_null(small.fields[0].key.ptr);
	assert_int_equal(json_parse((const uint8_t *)"{\"\":\"\"}", 7, &small), 0);
	assert_non_null(small.fields[0].v.text.ptr);
	parser_free(&small);
}

static void
test_long_strings_and_deep_nesting(void **state)
{
	size_t n = 40000, len = 0;
	char *buf = malloc(n + 64);

	(void)state;
	assert_non_null(buf);
	len += (size_t)sprintf(buf, "{\"big\":\"");
	memset(buf + len, 'x', n);
	len += n;
	len += (size_t)sprintf(buf + len, "\",\"ts\":1}");
	assert_int_equal(parse_copy(buf, len), 0);
	assert_int_equal(field("big")->v.text.len, n);
	assert_int_equal(P.ts, NS);
	/* Past the 64 KiB of scratch: this line pays, the next one parses. */
	buf = realloc(buf, 2 * n + 64);
	assert_non_null(buf);
	len = (size_t)sprintf(buf, "{\"a\":\"");
	memset(buf + len, 'x', n);
	len += n;
	len += (size_t)sprintf(buf + len, "\",\"b\":\"");
	memset(buf + len, 'y', n);
	len += n;
	len += (size_t)sprintf(buf + len, "\"}");
	assert_failed(parse_copy(buf, len), "json: keys and values exceed the scratch cap");
	assert_int_equal(parse("{\"a\":1}"), 0);
	/* jansson stops at 2048 levels; a nested value up to there is text. */
	len = 0;
	len += (size_t)sprintf(buf, "{\"d\":");
	for (int i = 0; i < 2000; i++)
		buf[len++] = '[';
	for (int i = 0; i < 2000; i++)
		buf[len++] = ']';
	buf[len++] = '}';
	assert_int_equal(parse_copy(buf, len), 0);
	assert_int_equal(field("d")->v.json.len, 4000);
	len = 0;
	len += (size_t)sprintf(buf, "{\"d\":");
	for (int i = 0; i < 3000; i++)
		buf[len++] = '[';
	for (int i = 0; i < 3000; i++)
		buf[len++] = ']';
	buf[len++] = '}';
	assert_failed(parse_copy(buf, len), "json: invalid JSON");
	free(buf);
}

/* ---------------------------------------------------------- real lines */

static void
test_nginx_escape_json_line(void **state)
{
	/*
	 * log_format j escape=json '{"ts":"$msec","remote_addr":"$remote_addr",'
	 *     '"request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,'
	 *     '"request_time":$request_time,"http_user_agent":"$http_user_agent"}';
	 */
	(void)state;
	assert_int_equal(parse(valid[0]), 0);
	assert_int_equal(P.ts, T2024 * NS + 123000000);
	assert_int_equal(P.nfields, 8);
	assert_key_at(0, "ts");
	assert_text("ts", "1732269600.123");
	assert_text("remote_addr", "203.0.113.9");
	assert_text("request", "GET / HTTP/1.1");
	assert_integer("status", 200);
	assert_integer("body_bytes_sent", 612);
	assert_true(field("request_time")->v.number == 0.005);
	assert_text("http_user_agent", "curl/8.0 \"x\"");
	assert_int_equal(field("upstream")->type, EVENT_NULL);
	assert_null(P.host.ptr);
}

static void
test_parsed_is_reused_across_lines(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(parse(valid[1]), 0);
		assert_int_equal(P.nfields, 9);
		expect_error("{\"a\":}", "json: invalid JSON at column 6: ");
		assert_int_equal(parse(valid[2]), 0);
		assert_int_equal(P.nfields, 3);
		assert_int_equal(P.ts, (T2026 - 3600) * NS + 123456000);
		assert_text("msg", "\xf0\x9f\x98\x80");
		assert_int_equal(P.scratch.len, strlen("tslevelmsg") +
		    strlen("2026-11-22T10:00:00.123456+01:00") + strlen("info") + 4);
		assert_int_equal(parse("{}"), 0);
		assert_int_equal(P.nfields, 0);
		assert_int_equal(P.scratch.len, 0);
	}
}

static void
test_fields_round_trip_through_event_encode(void **state)
{
	struct event ev = { 0 }, got;
	struct event_field gf[PARSER_MAX_FIELDS];
	struct event_reader r;
	struct buf b;

	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const char *s = valid[i];

		assert_int_equal(parse(s), 0);
		ev.ts = P.ts;
		ev.message = (struct pbslice){ (const uint8_t *)s, strlen(s) };
		ev.fields = P.fields;
		ev.nfields = P.nfields;
		buf_init(&b, 1 << 20);
		assert_int_equal(event_encode(&ev, &b), 0);
		event_reader_init(&r, b.data, b.len, gf, PARSER_MAX_FIELDS);
		assert_int_equal(event_reader_next(&r, &got), 1);
		assert_int_equal(got.ts, P.ts);
		assert_int_equal(got.nfields, P.nfields);
		for (size_t k = 0; k < P.nfields; k++) {
			const struct event_field *w = &P.fields[k], *h = &got.fields[k];

			assert_int_equal(h->key.len, w->key.len);
			if (w->key.len)
				assert_memory_equal(h->key.ptr, w->key.ptr, w->key.len);
			assert_int_equal(h->type, w->type);
			switch (w->type) {
			case EVENT_TEXT:
			case EVENT_JSON:
				assert_int_equal(h->v.text.len, w->v.text.len);
				if (w->v.text.len)
					assert_memory_equal(h->v.text.ptr, w->v.text.ptr, w->v.text.len);
				break;
			case EVENT_INTEGER:
				assert_int_equal(h->v.integer, w->v.integer);
				break;
			case EVENT_NUMBER:
				assert_memory_equal(&h->v.number, &w->v.number, sizeof(double));
				break;
			case EVENT_BOOLEAN:
				assert_int_equal(h->v.boolean, w->v.boolean);
				break;
			case EVENT_NULL:
				break;
			default:
				fail_msg("unexpected type %d", (int)w->type);
			}
		}
		assert_int_equal(event_reader_next(&r, &got), 0);
		buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_members_keep_their_json_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_integers_span_int64_and_reals_keep_their_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_integer_beyond_int64_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_values_are_compact_json_in_the_line_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_reals_are_written_with_17_digits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_members_keep_the_order_of_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repeated_key_keeps_its_first_place_and_last_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escapes_are_decoded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaped_nul_is_kept_in_values_but_refused_in_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_keys_and_strings_are_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_number_of_seconds_keeps_the_fraction_to_the_microsecond, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_integer_unit_follows_its_magnitude, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_string_of_a_number_is_read_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_rfc3339_strings_with_z_offsets_and_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_ts_leaves_zero_and_keeps_the_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repeated_ts_uses_the_last_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trailing_crlf_and_whitespace_are_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_blank_lines_are_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_object_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_errors_say_where, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_text_has_no_control_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_nul_and_control_bytes_are_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_at_every_length_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_and_mutated_bytes_never_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_64_members_fit_and_65_are_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch_too_small_is_an_error_not_a_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_strings_and_deep_nesting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nginx_escape_json_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parsed_is_reused_across_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fields_round_trip_through_event_encode, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
