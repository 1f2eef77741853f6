/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/nginx_parse.h"
#include "common/parser.h"
#include "proto/event.h"

#define NS UINT64_C(1000000000)

/* The example line of docs/architecture.md. */
static const char design_line[] =
    "203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"";

/* A line with every field present. */
static const char full_line[] =
    "2001:db8::1 - alice [29/Feb/2024:23:59:59 -0100] \"POST /api/v1/items?id=7 HTTP/2.0\" 201 18 "
    "\"https://example.com/form\" \"Mozilla/5.0 (X11; Linux x86_64)\"";

static int
parse_str(const char *line, struct parsed *out)
{
	return nginx_parse((const uint8_t *)line, strlen(line), out);
}

static const struct event_field *
find_field(const struct parsed *p, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < p->nfields; i++)
		if (p->fields[i].key.len == klen && memcmp(p->fields[i].key.ptr, key, klen) == 0)
			return &p->fields[i];
	return NULL;
}

/* key is a slice of line at offset off whose bytes are want. */
static void
assert_slice_at(const char *line, const struct parsed *p, const char *key, size_t off,
    const char *want)
{
	const struct event_field *f = find_field(p, key);

	assert_non_null(f);
	assert_int_equal(f->type, EVENT_SLICE);
	assert_int_equal(f->v.slice.offset, off);
	assert_int_equal(f->v.slice.length, strlen(want));
	assert_memory_equal(line + off, want, strlen(want));
}

/* key is a slice of line whose bytes are want (the first occurrence in line). */
static void
assert_slice_is(const char *line, const struct parsed *p, const char *key, const char *want)
{
	const char *at = strstr(line, want);

	assert_non_null(at);
	assert_slice_at(line, p, key, (size_t)(at - line), want);
}

static void
assert_integer(const struct parsed *p, const char *key, int64_t want)
{
	const struct event_field *f = find_field(p, key);

	assert_non_null(f);
	assert_int_equal(f->type, EVENT_INTEGER);
	assert_int_equal(f->v.integer, want);
}

/* Every slice lies in line[0, len) and every key is one of the known ones. */
static void
assert_slices_inside(const struct parsed *p, size_t len)
{
	for (size_t i = 0; i < p->nfields; i++) {
		const struct event_field *f = &p->fields[i];

		assert_true(f->key.len > 0);
		if (f->type == EVENT_SLICE) {
			assert_true(f->v.slice.offset <= len);
			assert_true(f->v.slice.length <= len - f->v.slice.offset);
		} else {
			assert_int_equal(f->type, EVENT_INTEGER);
		}
	}
}

static void
expect_error(const char *line, const char *msg)
{
	struct parsed p;

	parser_init(&p, 0);
	if (parse_str(line, &p) != -EINVAL)
		fail_msg("parsed: %s", line);
	assert_non_null(p.error);
	if (strcmp(p.error, msg) != 0)
		fail_msg("%s\n  gave: %s\n  want: %s", line, p.error, msg);
	assert_int_equal(p.nfields, 0);
	assert_int_equal(p.ts, 0);
	parser_free(&p);
}

static uint64_t
ts_of(const char *time_local)
{
	char line[256];
	struct parsed p;
	uint64_t ts;

	snprintf(line, sizeof(line), "10.0.0.1 - - [%s] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\"",
	    time_local);
	parser_init(&p, 0);
	if (parse_str(line, &p) != 0)
		fail_msg("%s: %s", time_local, p.error);
	assert_slice_is(line, &p, "time_local", time_local);
	ts = p.ts;
	parser_free(&p);
	return ts;
}

static void
test_design_example_gives_every_field_at_its_offset_and_the_utc_time(void **state)
{
	const char *l = design_line;
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(l, &p), 0);
	assert_null(p.error);
	assert_int_equal(p.ts, UINT64_C(1795341600) * NS);
	assert_null(p.host.ptr);
	assert_int_equal(p.host.len, 0);
	/* remote_user and http_referer are `-`: absent. */
	assert_int_equal(p.nfields, 9);
	assert_slice_at(l, &p, "remote_addr", 0, "203.0.113.9");
	assert_slice_at(l, &p, "time_local", 17, "22/Nov/2026:10:00:00 +0000");
	assert_slice_at(l, &p, "request", 46, "GET / HTTP/1.1");
	assert_slice_at(l, &p, "method", 46, "GET");
	assert_slice_at(l, &p, "path", 50, "/");
	assert_slice_at(l, &p, "protocol", 52, "HTTP/1.1");
	assert_integer(&p, "status", 200);
	assert_integer(&p, "body_bytes_sent", 612);
	assert_slice_at(l, &p, "http_user_agent", 75, "curl/8.0");
	assert_null(find_field(&p, "remote_user"));
	assert_null(find_field(&p, "http_referer"));
	parser_free(&p);
}

static void
test_full_line_gives_eleven_fields_in_nginx_order(void **state)
{
	static const char *const order[] = { "remote_addr", "remote_user", "time_local",
		"request", "method", "path", "protocol", "status", "body_bytes_sent",
		"http_referer", "http_user_agent" };
	const char *l = full_line;
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(l, &p), 0);
	assert_int_equal(p.nfields, 11);
	for (size_t i = 0; i < 11; i++) {
		assert_int_equal(p.fields[i].key.len, strlen(order[i]));
		assert_memory_equal(p.fields[i].key.ptr, order[i], strlen(order[i]));
	}
	assert_slice_is(l, &p, "remote_addr", "2001:db8::1");
	assert_slice_is(l, &p, "remote_user", "alice");
	assert_slice_is(l, &p, "time_local", "29/Feb/2024:23:59:59 -0100");
	assert_slice_is(l, &p, "request", "POST /api/v1/items?id=7 HTTP/2.0");
	assert_slice_is(l, &p, "method", "POST");
	assert_slice_is(l, &p, "path", "/api/v1/items?id=7");
	assert_slice_is(l, &p, "protocol", "HTTP/2.0");
	assert_integer(&p, "status", 201);
	assert_integer(&p, "body_bytes_sent", 18);
	assert_slice_is(l, &p, "http_referer", "https://example.com/form");
	assert_slice_is(l, &p, "http_user_agent", "Mozilla/5.0 (X11; Linux x86_64)");
	/* 2024-02-29 23:59:59 -01:00 is 2024-03-01 00:59:59 UTC. */
	assert_int_equal(p.ts, (UINT64_C(1709164800) + 86400 + 3599) * NS);
	parser_free(&p);
}

static void
test_time_zone_offsets_convert_to_utc(void **state)
{
	(void)state;
	assert_int_equal(ts_of("22/Nov/2026:10:00:00 +0100"), UINT64_C(1795338000) * NS);
	assert_int_equal(ts_of("22/Nov/2026:10:00:00 -0530"), UINT64_C(1795361400) * NS);
	assert_int_equal(ts_of("22/Nov/2026:10:00:00 -0000"), UINT64_C(1795341600) * NS);
	/* Across a year boundary: 2026-12-31 23:59:59 -01:00 is 2027-01-01 00:59:59Z. */
	assert_int_equal(ts_of("31/Dec/2026:23:59:59 -0100"), UINT64_C(1798765199) * NS);
	assert_int_equal(ts_of("01/Jan/1970:00:00:00 +0000"), 0);
	assert_int_equal(ts_of("01/Jan/1970:01:00:01 +0100"), NS);
}

static void
test_leap_days_are_valid_only_in_leap_years(void **state)
{
	(void)state;
	assert_int_equal(ts_of("29/Feb/2024:00:00:00 +0000"), UINT64_C(1709164800) * NS);
	assert_int_equal(ts_of("29/Feb/2000:12:34:56 +0000"), UINT64_C(951827696) * NS);
	assert_int_equal(ts_of("01/Mar/2024:00:00:00 +0000"),
	    (UINT64_C(1709164800) + 86400) * NS);
	expect_error("10.0.0.1 - - [29/Feb/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\"",
	    "nginx_combined: bad time_local");
	expect_error("10.0.0.1 - - [29/Feb/2100:00:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\"",
	    "nginx_combined: bad time_local");
	expect_error("10.0.0.1 - - [31/Apr/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\"",
	    "nginx_combined: bad time_local");
}

static void
test_times_outside_what_ts_holds_parse_with_ts_zero(void **state)
{
	(void)state;
	assert_int_equal(ts_of("31/Dec/1969:23:59:59 +0000"), 0);
	assert_int_equal(ts_of("01/Jan/1970:00:30:00 +0100"), 0);
	assert_int_equal(ts_of("01/Jan/0000:00:00:00 +0000"), 0);
	assert_int_equal(ts_of("21/Jul/2554:23:34:33 +0000"), UINT64_C(18446744073) * NS);
	assert_int_equal(ts_of("21/Jul/2554:23:34:34 +0000"), 0);
	assert_int_equal(ts_of("31/Dec/9999:23:59:59 -2359"), 0);
}

static void
test_dash_values_are_omitted_and_others_kept(void **state)
{
	const char *l = "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\"";
	const char *k = "10.0.0.1 - bob smith [22/Nov/2026:10:00:00 +0000] \"-\" 400 0 \"--\" \"-x\"";
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(l, &p), 0);
	assert_int_equal(p.nfields, 8);
	assert_null(find_field(&p, "remote_user"));
	assert_null(find_field(&p, "http_referer"));
	assert_null(find_field(&p, "http_user_agent"));
	/* Only a lone `-` means absent; a user name may hold spaces. */
	assert_int_equal(parse_str(k, &p), 0);
	assert_slice_is(k, &p, "remote_user", "bob smith");
	assert_slice_is(k, &p, "http_referer", "--");
	assert_slice_is(k, &p, "http_user_agent", "-x");
	/* A request of `-` is kept: request is never omitted. */
	assert_slice_at(k, &p, "request", 51, "-");
	parser_free(&p);
}

/* The request of line is kept and split (or not) as wanted. */
static void
expect_request(const char *request, const char *method, const char *path,
    const char *protocol)
{
	char line[512];
	struct parsed p;
	size_t at;

	snprintf(line, sizeof(line), "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"%s\" 400 0 \"-\" \"-\"",
	    request);
	at = strlen("10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"");
	parser_init(&p, 0);
	if (parse_str(line, &p) != 0)
		fail_msg("%s: %s", request, p.error);
	assert_slice_at(line, &p, "request", at, request);
	if (method == NULL) {
		assert_null(find_field(&p, "method"));
		assert_null(find_field(&p, "path"));
		assert_null(find_field(&p, "protocol"));
		assert_int_equal(p.nfields, 5);
	} else {
		assert_slice_at(line, &p, "method", at, method);
		assert_slice_at(line, &p, "path", at + strlen(method) + 1, path);
		assert_slice_at(line, &p, "protocol", at + strlen(request) - strlen(protocol),
		    protocol);
		assert_int_equal(p.nfields, 8);
	}
	parser_free(&p);
}

static void
test_request_is_split_only_when_it_is_method_target_protocol(void **state)
{
	(void)state;
	expect_request("GET / HTTP/1.1", "GET", "/", "HTTP/1.1");
	expect_request("OPTIONS * HTTP/1.0", "OPTIONS", "*", "HTTP/1.0");
	expect_request("PROPFIND /dav/ HTTP/3.0", "PROPFIND", "/dav/", "HTTP/3.0");
	/* A target with a raw space is kept whole, up to the protocol. */
	expect_request("GET /a b HTTP/1.1", "GET", "/a b", "HTTP/1.1");
	expect_request("-", NULL, NULL, NULL);
	expect_request("", NULL, NULL, NULL);
	expect_request("GET /", NULL, NULL, NULL);                  /* HTTP/0.9: no protocol */
	expect_request("GET / HTTP/1.1 x", NULL, NULL, NULL);
	expect_request("GET / HTTP/11", NULL, NULL, NULL);
	expect_request("GET / http/1.1", NULL, NULL, NULL);
	expect_request("GET  HTTP/1.1", NULL, NULL, NULL);          /* empty target */
	expect_request(" / HTTP/1.1", NULL, NULL, NULL);            /* empty method */
	expect_request("G(T / HTTP/1.1", NULL, NULL, NULL);         /* not a token */
	/* What NGINX writes for a TLS handshake sent to a plain port. */
	expect_request("\\x16\\x03\\x01\\x00\\xA5\\x01\\x00\\x00\\xA1\\x03\\x03", NULL, NULL, NULL);
	expect_request("\\x16\\x03\\x01 / HTTP/1.1", NULL, NULL, NULL);
}

static void
test_raw_binary_bytes_in_a_request_stay_a_slice(void **state)
{
	static const char l[] = "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"\x16\x03\x01\0\xff\xfe / x\" 400 0 \"-\" \"\xc3\x28\"";
	const size_t len = sizeof(l) - 1;
	const struct event_field *f;
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(nginx_parse((const uint8_t *)l, len, &p), 0);
	f = find_field(&p, "request");
	assert_non_null(f);
	assert_int_equal(f->v.slice.offset, 43);
	assert_int_equal(f->v.slice.length, 10);
	assert_memory_equal(l + 43, "\x16\x03\x01\0\xff\xfe / x", 10);
	assert_null(find_field(&p, "method"));
	f = find_field(&p, "http_user_agent");
	assert_non_null(f);
	assert_int_equal(f->v.slice.length, 2);
	parser_free(&p);
}

static void
test_a_path_of_one_mib_is_one_slice(void **state)
{
	const char *head = "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET /";
	const char *tail = " HTTP/1.1\" 414 0 \"-\" \"scanner\"";
	size_t hl = strlen(head), tl = strlen(tail), pl = (size_t)1 << 20;
	size_t len = hl + pl + tl;
	uint8_t *line = malloc(len);
	const struct event_field *f;
	struct parsed p;

	(void)state;
	assert_non_null(line);
	memcpy(line, head, hl);
	memset(line + hl, 'a', pl);
	memcpy(line + hl + pl, tail, tl);
	parser_init(&p, 0);
	assert_int_equal(nginx_parse(line, len, &p), 0);
	f = find_field(&p, "path");
	assert_non_null(f);
	assert_int_equal(f->v.slice.offset, hl - 1);
	assert_int_equal(f->v.slice.length, pl + 1);
	f = find_field(&p, "request");
	assert_non_null(f);
	assert_int_equal(f->v.slice.length, 5 + pl + 9);
	assert_integer(&p, "status", 414);
	assert_slices_inside(&p, len);
	parser_free(&p);
	free(line);
}

static void
test_escaped_quotes_end_nothing_and_stay_as_written(void **state)
{
	const char *l = "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET /?q=\\x22x\\x22 HTTP/1.1\" 200 5 "
	    "\"-\" \"Evil \\x22agent\\x22 \\\\ 1.0\"";
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(l, &p), 0);
	assert_slice_is(l, &p, "path", "/?q=\\x22x\\x22");
	assert_slice_is(l, &p, "http_user_agent", "Evil \\x22agent\\x22 \\\\ 1.0");
	parser_free(&p);
}

static void
test_trailing_cr_and_lf_are_ignored(void **state)
{
	char l[256];
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	for (int i = 0; i < 3; i++) {
		snprintf(l, sizeof(l), "%s%s", design_line, i == 0 ? "\r" : i == 1 ? "\r\n" : "\n");
		assert_int_equal(parse_str(l, &p), 0);
		assert_slice_at(l, &p, "http_user_agent", 75, "curl/8.0");
		assert_int_equal(p.nfields, 9);
	}
	parser_free(&p);
}

static void
test_fields_after_the_user_agent_are_ignored(void **state)
{
	const char *l = "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"ua\" "
	    "0.004 \"10.0.0.9:8080\" rt=0.1";
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(l, &p), 0);
	assert_int_equal(p.nfields, 9);
	assert_slice_is(l, &p, "http_user_agent", "ua");
	assert_int_equal(parse_str("10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"ua\" ", &p), 0);
	parser_free(&p);
}

static void
test_numbers_are_integers_up_to_int64_max(void **state)
{
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str("1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 000 9223372036854775807 \"-\" \"-\"", &p), 0);
	assert_integer(&p, "status", 0);
	assert_integer(&p, "body_bytes_sent", INT64_MAX);
	assert_int_equal(parse_str("1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 499 0000000000000000001 \"-\" \"-\"", &p), 0);
	assert_integer(&p, "status", 499);
	assert_integer(&p, "body_bytes_sent", 1);
	parser_free(&p);
}

/* RFC 9110's tchar, spelled out apart from the parser's own test. */
static bool
rfc9110_tchar(unsigned c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL);
}

static void
test_a_method_byte_splits_the_request_exactly_when_it_is_a_token_character(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 256; c++) {
		uint8_t req[] = "GxT / HTTP/1.1";
		const uint8_t *m = NULL, *proto = NULL;
		bool split;

		req[1] = (uint8_t)c;
		split = nginx_request_parts(req, req + sizeof(req) - 1, &m, &proto);
		if (c == ' ') {
			/* "G" is the method and "T /" the target. */
			assert_true(split);
			assert_ptr_equal(m, req + 1);
			continue;
		}
		if (split != rfc9110_tchar(c))
			fail_msg("byte 0x%02x: split %d", c, split);
		if (split) {
			assert_ptr_equal(m, req + 3);
			assert_ptr_equal(proto, req + 5);
		}
	}
}

/* status takes up to 9 digits and body_bytes_sent 19, wherever the line ends. */
static void
test_numbers_of_the_most_digits_and_one_more_anywhere_in_the_line(void **state)
{
	static const struct {
		const char *tail, *error;
	} cases[] = {
		{ " 123456789 1 \"-\" \"-\"", NULL },
		{ " 1234567890 1 \"-\" \"-\"", "nginx_combined: status is not a number" },
		{ " 123456789", "nginx_combined: status is not a number" },
		{ " 1234567890", "nginx_combined: status is not a number" },
		{ " 123456789 ", "nginx_combined: body_bytes_sent is not a number" },
		{ " 200 1234567890123456789 \"-\" \"-\"", NULL },
		{ " 200 12345678901234567890 \"-\" \"-\"", "nginx_combined: body_bytes_sent is too large" },
		{ " 200 9223372036854775808 \"-\" \"-\"", "nginx_combined: body_bytes_sent is too large" },
		{ " 200 1234567890123456789", "nginx_combined: missing '\"' before http_referer" },
		{ " 200 12345678901234567890", "nginx_combined: body_bytes_sent is too large" },
		{ " 200 123456789012345678x", "nginx_combined: body_bytes_sent is not a number" },
		{ " 200 1", "nginx_combined: missing '\"' before http_referer" },
		{ " 2 1 \"-\" \"-\"", NULL },
		{ " x 1 \"-\" \"-\"", "nginx_combined: status is not a number" },
		{ " 200 x \"-\" \"-\"", "nginx_combined: body_bytes_sent is not a number" },
		{ " 200", "nginx_combined: status is not a number" },
		{ " 200 ", "nginx_combined: body_bytes_sent is not a number" },
	};
	struct parsed p;
	char line[256];

	(void)state;
	parser_init(&p, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(line, sizeof(line), "1 - - [22/Nov/2026:10:00:00 +0000] \"-\"%s",
		    cases[i].tail);
		int r = nginx_parse((const uint8_t *)line, (size_t)n, &p);

		if (cases[i].error == NULL) {
			if (r != 0)
				fail_msg("%s: %s", line, p.error);
		} else if (r != -EINVAL || p.error == NULL || strcmp(p.error, cases[i].error) != 0) {
			fail_msg("%s: %d %s", line, r, p.error != NULL ? p.error : "(none)");
		}
	}
	parser_free(&p);
}

/*
 * body_bytes_sent of every count of digits to 20, each digit of each
 * place, followed by the referer, the line's end or a byte next to the
 * digits ('/' and ':') or one whose value plus 6 carries (0xca): its value,
 * or the error the count or the byte gives.
 */
static void
test_body_bytes_sent_of_every_length_reads_its_value_or_fails(void **state)
{
	/* Past 1: the line ends, or a byte that is no digit, then the line ends or goes on. */
	static const char *after[] = { " \"-\" \"-\"", "", "/", ":", "x", "/ \"-\" \"-\"",
		": \"-\" \"-\"", "\xca \"-\" \"-\"", "\xff\xff\xff\xff\xff\xff\xff\xff" };
	struct parsed p;
	char line[256], num[32];

	(void)state;
	parser_init(&p, 0);
	for (size_t nd = 1; nd <= 20; nd++) {
		for (int d = 0; d < 10; d++) {
			for (size_t a = 0; a < sizeof(after) / sizeof(after[0]); a++) {
				unsigned long long want;
				const struct event_field *f;
				int n, r;

				/* Digit d at every place in turn, 9s elsewhere (and a 1 first). */
				for (size_t i = 0; i < nd; i++)
					num[i] = (char)(i == 0 && nd > 1 ? '1' : i % 10 == (size_t)d ? '0' + d : '9');
				num[nd] = '\0';
				n = snprintf(line, sizeof(line), "1 - - [22/Nov/2026:10:00:00 +0000] \"-\" "
				    "200 %s%s", num, after[a]);
				r = nginx_parse((const uint8_t *)line, (size_t)n, &p);
				want = strtoull(num, NULL, 10);
				if (nd == 20 || (nd == 19 && want > INT64_MAX)) {
					assert_int_equal(r, -EINVAL);
					assert_string_equal(p.error, "nginx_combined: body_bytes_sent is too large");
				} else if (a >= 2) {
					assert_int_equal(r, -EINVAL);
					assert_string_equal(p.error, "nginx_combined: body_bytes_sent is not a number");
				} else if (a == 1) {
					assert_int_equal(r, -EINVAL);
					assert_string_equal(p.error, "nginx_combined: missing '\"' before http_referer");
				} else {
					assert_int_equal(r, 0);
					assert_non_null(f = find_field(&p, "body_bytes_sent"));
					assert_int_equal(f->v.integer, want);
				}
			}
		}
	}
	parser_free(&p);
}

/* A remote_user of "-" is left out; "-x", "x-", "[-" or "-[" are kept. */
static void
test_remote_user_dash_and_near_dashes(void **state)
{
	static const struct {
		const char *user, *want;
	} cases[] = {
		{ "-", NULL }, { "--", "--" }, { "-x", "-x" }, { "x-", "x-" }, { "[-", "[-" }, { "-x[", "-x[" },
		{ "-[", "-[" }, { "a b", "a b" },
	};
	struct parsed p;
	char line[256];

	(void)state;
	parser_init(&p, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct event_field *f;

		snprintf(line, sizeof(line), "1 - %s [22/Nov/2026:10:00:00 +0000] \"-\" 200 1 \"-\" \"-\"",
		    cases[i].user);
		if (parse_str(line, &p) != 0)
			fail_msg("%s: %s", line, p.error);
		f = find_field(&p, "remote_user");
		if (cases[i].want == NULL) {
			assert_null(f);
			continue;
		}
		assert_non_null(f);
		assert_int_equal(f->v.slice.length, strlen(cases[i].want));
		assert_memory_equal(line + f->v.slice.offset, cases[i].want, strlen(cases[i].want));
	}
	parser_free(&p);
}

static void
test_each_malformed_line_gives_einval_and_its_message(void **state)
{
	static const struct {
		const char *line, *error;
	} cases[] = {
		{ "", "nginx_combined: empty line" },
		{ "\r\n", "nginx_combined: empty line" },
		{ " - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: empty remote_addr" },
		{ "10.0.0.1", "nginx_combined: missing ' - ' after remote_addr" },
		{ "10.0.0.1 ", "nginx_combined: missing ' - ' after remote_addr" },
		{ "10.0.0.1 -", "nginx_combined: missing ' - ' after remote_addr" },
		{ "10.0.0.1 x - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: missing ' - ' after remote_addr" },
		{ "10.0.0.1 - - 22/Nov/2026:10:00:00 +0000 \"-\" 200 0 \"-\" \"-\"", "nginx_combined: missing '[' before time_local" },
		{ "10.0.0.1 - -[22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: missing '[' before time_local" },
		{ "10.0.0.1 - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: missing '[' before time_local" },
		{ "10.0.0.1 - - [", "nginx_combined: missing ']' after time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000 \"-\" 200 0 \"-\" \"-\"", "nginx_combined: missing ']' after time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000 ] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [2026-11-22T10:00:00+00:00] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [00/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [31/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2O26:10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:24:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:60:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:60 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 *0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +2400] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0060] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026 10:00:00 +0000] \"-\" 200 0 \"-\" \"-\"", "nginx_combined: bad time_local" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000]", "nginx_combined: missing '\"' before request" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] GET / HTTP/1.1 200 0", "nginx_combined: missing '\"' before request" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000]\"-\" 200 0 \"-\" \"-\"", "nginx_combined: missing '\"' before request" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1 200 0", "nginx_combined: missing '\"' after request" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\"", "nginx_combined: missing ' ' after request" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\"200 0 \"-\" \"-\"", "nginx_combined: missing ' ' after request" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" ", "nginx_combined: status is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200", "nginx_combined: status is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" - 0 \"-\" \"-\"", "nginx_combined: status is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 2x0 0 \"-\" \"-\"", "nginx_combined: status is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" -200 0 \"-\" \"-\"", "nginx_combined: status is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 1234567890 0 \"-\" \"-\"", "nginx_combined: status is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 ", "nginx_combined: body_bytes_sent is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 - \"-\" \"-\"", "nginx_combined: body_bytes_sent is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 \"-\" \"-\"", "nginx_combined: body_bytes_sent is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 61x \"-\" \"-\"", "nginx_combined: body_bytes_sent is not a number" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 9223372036854775808 \"-\" \"-\"", "nginx_combined: body_bytes_sent is too large" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 99999999999999999999 \"-\" \"-\"", "nginx_combined: body_bytes_sent is too large" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0", "nginx_combined: missing '\"' before http_referer" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 -", "nginx_combined: missing '\"' before http_referer" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-", "nginx_combined: missing '\"' after http_referer" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\"", "nginx_combined: missing '\"' before http_user_agent" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" curl", "nginx_combined: missing '\"' before http_user_agent" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"curl/8.0", "nginx_combined: missing '\"' after http_user_agent" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"curl\"x", "nginx_combined: unexpected bytes after http_user_agent" },
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"-\" 200 0 \"-\" \"curl\"\"", "nginx_combined: unexpected bytes after http_user_agent" },
		/* NGINX's `main`-less `common` format is not combined. */
		{ "10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612", "nginx_combined: missing '\"' before http_referer" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].line, cases[i].error);
}

static void
test_a_failed_line_leaves_no_fields_of_the_previous_one(void **state)
{
	struct parsed p;

	(void)state;
	parser_init(&p, 1024);
	assert_int_equal(parse_str(full_line, &p), 0);
	assert_int_equal(p.nfields, 11);
	assert_int_equal(parse_str("garbage", &p), -EINVAL);
	assert_int_equal(p.nfields, 0);
	assert_int_equal(p.ts, 0);
	assert_int_equal(parse_str(design_line, &p), 0);
	assert_null(p.error);
	assert_int_equal(p.nfields, 9);
	parser_reset(&p);
	assert_int_equal(p.nfields, 0);
	assert_null(p.error);
	assert_int_equal(p.ts, 0);
	assert_int_equal(p.scratch.max, 1024);
	parser_free(&p);
	parser_free(NULL);
}

/*
 * Each prefix of a valid line, in an exact-size allocation (so that ASan
 * sees any read past it): an error with a message, or for the whole line
 * (and the line without its last byte when that is a CR) the fields.
 */
static void
check_every_truncation(const char *whole, size_t wlen)
{
	struct parsed p;

	parser_init(&p, 0);
	for (size_t n = 0; n <= wlen; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		int rc;

		assert_non_null(copy);
		memcpy(copy, whole, n);
		rc = nginx_parse(copy, n, &p);
		if (rc == 0) {
			assert_null(p.error);
			assert_true(p.nfields >= 6);
			assert_slices_inside(&p, n);
		} else {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(p.error);
			assert_int_equal(p.nfields, 0);
		}
		if (n == wlen)
			assert_int_equal(rc, 0);
		else if (whole[wlen - 1] != '\r' || n < wlen - 1)
			assert_int_equal(rc, -EINVAL);
		free(copy);
	}
	parser_free(&p);
}

static void
test_every_truncation_of_a_valid_line_fails_cleanly_in_bounds(void **state)
{
	static const char cr[] = "1.2.3.4 - u [01/Jan/2025:00:00:00 -0000] \"GET /x HTTP/1.0\" 304 0 \"r\" \"a\"\r";

	(void)state;
	check_every_truncation(design_line, sizeof(design_line) - 1);
	check_every_truncation(full_line, sizeof(full_line) - 1);
	check_every_truncation(cr, sizeof(cr) - 1);
}

static void
test_random_and_mutated_bytes_never_crash_or_escape_the_line(void **state)
{
	const size_t flen = sizeof(full_line) - 1;
	unsigned seed = 42;
	struct parsed p;
	int ok = 0;

	(void)state;
	parser_init(&p, 0);
	for (int iter = 0; iter < 200000; iter++) {
		size_t len;
		uint8_t *line;
		int rc;

		if (iter % 2) {
			/* Random bytes, biased towards the format's punctuation. */
			static const char alpha[] = " -[]\"/:+0123456789NovHTTP\\\r";

			len = (size_t)(rand_r(&seed) % 300);
			line = malloc(len ? len : 1);
			assert_non_null(line);
			for (size_t i = 0; i < len; i++)
				line[i] = rand_r(&seed) % 2 ? (uint8_t)rand_r(&seed) :
				    (uint8_t)alpha[rand_r(&seed) % (int)(sizeof(alpha) - 1)];
		} else {
			/* A valid line with a few bytes changed and maybe cut short. */
			len = flen - (size_t)(rand_r(&seed) % 4 == 0 ? rand_r(&seed) % (int)flen : 0);
			line = malloc(len ? len : 1);
			assert_non_null(line);
			memcpy(line, full_line, len);
			for (int k = rand_r(&seed) % 3; k >= 0 && len > 0; k--)
				line[rand_r(&seed) % (int)len] = (uint8_t)rand_r(&seed);
		}
		rc = nginx_parse(line, len, &p);
		if (rc == 0) {
			ok++;
			assert_null(p.error);
			assert_slices_inside(&p, len);
		} else {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(p.error);
			assert_int_equal(strncmp(p.error, "nginx_combined: ", 16), 0);
		}
		free(line);
	}
	/* The mutations leave many lines valid: the success path was exercised. */
	assert_true(ok > 1000);
	parser_free(&p);
}

static void
test_fields_read_back_the_same_after_event_encode(void **state)
{
	const char *lines[] = { design_line, full_line };
	struct event_field got_fields[PARSER_MAX_FIELDS];
	struct parsed p;
	struct buf b;

	(void)state;
	parser_init(&p, 0);
	buf_init(&b, 1 << 20);
	for (size_t li = 0; li < 2; li++) {
		const char *l = lines[li];
		struct event ev = { 0 }, got;
		struct event_reader r;

		assert_int_equal(parse_str(l, &p), 0);
		ev.ts = p.ts;
		ev.host = (struct pbslice){ (const uint8_t *)"web-01", 6 };
		ev.message = (struct pbslice){ (const uint8_t *)l, strlen(l) };
		ev.fields = p.fields;
		ev.nfields = p.nfields;
		buf_reset(&b);
		assert_int_equal(event_encode(&ev, &b), 0);
		event_reader_init(&r, b.data, b.len, got_fields, PARSER_MAX_FIELDS);
		assert_int_equal(event_reader_next(&r, &got), 1);
		assert_int_equal(got.ts, p.ts);
		assert_int_equal(got.message.len, strlen(l));
		assert_memory_equal(got.message.ptr, l, strlen(l));
		assert_int_equal(got.nfields, p.nfields);
		for (size_t i = 0; i < p.nfields; i++) {
			const struct event_field *w = &p.fields[i], *g = &got.fields[i];

			assert_int_equal(g->key.len, w->key.len);
			assert_memory_equal(g->key.ptr, w->key.ptr, w->key.len);
			assert_int_equal(g->type, w->type);
			if (w->type == EVENT_INTEGER) {
				assert_int_equal(g->v.integer, w->v.integer);
			} else {
				struct pbslice ws, gs;

				assert_int_equal(event_field_string(&ev, w, &ws), 0);
				assert_int_equal(event_field_string(&got, g, &gs), 0);
				assert_int_equal(gs.len, ws.len);
				assert_memory_equal(gs.ptr, ws.ptr, ws.len);
				/* The decoded value lies in the decoded message. */
				assert_true(gs.ptr >= got.message.ptr &&
				    gs.ptr + gs.len <= got.message.ptr + got.message.len);
			}
		}
		assert_int_equal(event_reader_next(&r, &got), 0);
	}
	buf_free(&b);
	parser_free(&p);
}

/* Parses the line of time_local with p, reused from line to line as a source does. */
static int
parse_time_with(struct parsed *p, const char *time_local, size_t tlen)
{
	uint8_t line[256];
	static const char head[] = "10.0.0.1 - - [", tail[] = "] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\"";
	size_t n = 0;

	memcpy(line, head, sizeof(head) - 1);
	n += sizeof(head) - 1;
	memcpy(line + n, time_local, tlen);
	n += tlen;
	memcpy(line + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	return nginx_parse(line, n, p);
}

/*
 * Lines of one second share their time text, so a parser may remember the
 * last one it converted: whatever changes in the text, the second, the
 * zone or the date, changes the time.
 */
static void
test_one_parser_gives_each_line_the_time_of_its_own_text(void **state)
{
	static const char *const times[] = {
		"22/Nov/2026:10:00:00 +0000", "22/Nov/2026:10:00:00 +0000",
		"22/Nov/2026:10:00:01 +0000", "22/Nov/2026:10:00:01 +0100",
		"22/Nov/2026:10:00:01 -0100", "22/Nov/2026:10:00:01 -0130",
		"22/Nov/2026:10:01:01 -0130", "22/Nov/2026:11:01:01 -0130",
		"23/Nov/2026:11:01:01 -0130", "23/Dec/2026:11:01:01 -0130",
		"23/Dec/2027:11:01:01 -0130", "22/Nov/2026:10:00:00 +0000",
	};
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		assert_int_equal(parse_time_with(&p, times[i], strlen(times[i])), 0);
		if (p.ts != ts_of(times[i]))
			fail_msg("%s after %s: %" PRIu64 ", want %" PRIu64, times[i],
			    i > 0 ? times[i - 1] : "nothing", p.ts, ts_of(times[i]));
	}
	parser_free(&p);
}

/* A time that is not valid is refused, whatever valid time the parser saw before. */
static void
test_an_invalid_time_after_a_valid_one_is_refused(void **state)
{
	static const char *const bad[] = {
		"22/Nov/2026:10:00:00 +01x0", "22/Nov/2026:10:00:00 +0160",
		"22/Nov/2026:10:00:60 +0100", "22/Nov/2026:10:00:00 *0100",
		"31/Nov/2026:10:00:00 +0100", "22/Nov/2026:10:00:00 +0100",
	};
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	for (size_t i = 0; i + 1 < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_time_with(&p, bad[5], strlen(bad[5])), 0);
		assert_int_equal(p.ts, ts_of(bad[5]));
		if (parse_time_with(&p, bad[i], strlen(bad[i])) != -EINVAL)
			fail_msg("%s after %s: parsed", bad[i], bad[5]);
		assert_string_equal(p.error, "nginx_combined: bad time_local");
		assert_int_equal(p.ts, 0);
	}
	parser_free(&p);
}

/* A parser that has seen no time yet remembers none: 26 zero bytes are no time. */
static void
test_a_new_parser_refuses_a_time_of_zero_bytes(void **state)
{
	static const char zeros[NGINX_TIME_LOCAL_LEN];
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_time_with(&p, zeros, sizeof(zeros)), -EINVAL);
	assert_string_equal(p.error, "nginx_combined: bad time_local");
	parser_free(&p);
}

/*
 * Each list of keys (which of remote_user, the request's parts,
 * http_referer and http_user_agent a line has) has its own key_set, the
 * same for every line of that list; a line that fails has none.
 */
static void
test_lines_with_the_same_keys_share_a_key_set_and_others_do_not(void **state)
{
	enum { N = 32 };
	static char lines[N][256];
	static struct event_field keys[N][PARSER_MAX_FIELDS];
	size_t nkeys[N];
	const void *sets[N];
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	for (unsigned i = 0; i < N; i++) {
		snprintf(lines[i], sizeof(lines[i]),
		    "10.0.0.%u - %s [22/Nov/2026:10:00:00 +0000] \"%s\" 200 %u \"%s\" \"%s\"", i,
		    i & 1 ? "alice" : "-", i & 2 ? "GET /x HTTP/1.1" : "garbage", i * 10,
		    i & 4 ? "https://example.com/" : "-", i & 8 ? "curl/8.0" : "-");
		assert_int_equal(parse_str(lines[i], &p), 0);
		assert_true(p.static_keys);
		assert_non_null(p.key_set);
		sets[i] = p.key_set;
		nkeys[i] = p.nfields;
		memcpy(keys[i], p.fields, p.nfields * sizeof(p.fields[0]));
	}
	for (unsigned i = 0; i < N; i++) {
		for (unsigned j = 0; j < N; j++) {
			bool same = nkeys[i] == nkeys[j];

			for (size_t k = 0; same && k < nkeys[i]; k++)
				same = keys[i][k].key.ptr == keys[j][k].key.ptr &&
				    keys[i][k].key.len == keys[j][k].key.len;
			assert_int_equal(same, (i & 15) == (j & 15));
			assert_int_equal(sets[i] == sets[j], same);
		}
	}
	assert_int_equal(parse_str("10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\"", &p),
	    -EINVAL);
	assert_null(p.key_set);
	parser_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example_gives_every_field_at_its_offset_and_the_utc_time),
		cmocka_unit_test(test_full_line_gives_eleven_fields_in_nginx_order),
		cmocka_unit_test(test_time_zone_offsets_convert_to_utc),
		cmocka_unit_test(test_leap_days_are_valid_only_in_leap_years),
		cmocka_unit_test(test_times_outside_what_ts_holds_parse_with_ts_zero),
		cmocka_unit_test(test_dash_values_are_omitted_and_others_kept),
		cmocka_unit_test(test_request_is_split_only_when_it_is_method_target_protocol),
		cmocka_unit_test(test_raw_binary_bytes_in_a_request_stay_a_slice),
		cmocka_unit_test(test_a_path_of_one_mib_is_one_slice),
		cmocka_unit_test(test_escaped_quotes_end_nothing_and_stay_as_written),
		cmocka_unit_test(test_trailing_cr_and_lf_are_ignored),
		cmocka_unit_test(test_fields_after_the_user_agent_are_ignored),
		cmocka_unit_test(test_numbers_are_integers_up_to_int64_max),
		cmocka_unit_test(test_a_method_byte_splits_the_request_exactly_when_it_is_a_token_character),
		cmocka_unit_test(test_numbers_of_the_most_digits_and_one_more_anywhere_in_the_line),
		cmocka_unit_test(test_body_bytes_sent_of_every_length_reads_its_value_or_fails),
		cmocka_unit_test(test_remote_user_dash_and_near_dashes),
		cmocka_unit_test(test_each_malformed_line_gives_einval_and_its_message),
		cmocka_unit_test(test_a_failed_line_leaves_no_fields_of_the_previous_one),
		cmocka_unit_test(test_every_truncation_of_a_valid_line_fails_cleanly_in_bounds),
		cmocka_unit_test(test_random_and_mutated_bytes_never_crash_or_escape_the_line),
		cmocka_unit_test(test_fields_read_back_the_same_after_event_encode),
		cmocka_unit_test(test_one_parser_gives_each_line_the_time_of_its_own_text),
		cmocka_unit_test(test_an_invalid_time_after_a_valid_one_is_refused),
		cmocka_unit_test(test_a_new_parser_refuses_a_time_of_zero_bytes),
		cmocka_unit_test(test_lines_with_the_same_keys_share_a_key_set_and_others_do_not),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
