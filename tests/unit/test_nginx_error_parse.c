/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/nginx_error_parse.h"
#include "common/parser.h"
#include "common/tz.h"
#include "proto/event.h"
#include "tests/unit/parsed_fixture.h"

#define NS UINT64_C(1000000000)

/* What NGINX 1.22 writes when an upstream refuses the connection. */
static const char upstream_line[] =
    "2026/11/22 10:00:00 [error] 4242#4243: *17 connect() failed (111: Connection refused) "
    "while connecting to upstream, client: 127.0.0.1, server: localhost, "
    "request: \"GET /dead?a=\"b\" HTTP/1.1\", upstream: \"http://127.0.0.1:9/dead?a=\"b\"\", "
    "host: \"127.0.0.1:8080\", referrer: \"http://x/\"\n";

static int
parse_str(const char *line, const struct tz *zone, struct parsed *out)
{
	return nginx_error_parse((const uint8_t *)line, strlen(line), zone, out);
}

/* A string that is a slice of the line. */
#define assert_slice(line, p, key, want) assert_parsed_string(line, p, key, want, EVENT_SLICE)

static void
test_upstream_error_gives_every_context_field(void **state)
{
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(upstream_line, NULL, &p), 0);
	assert_null(p.error);
	assert_slice(upstream_line, &p, "level", "error");
	assert_parsed_integer(&p, "pid", 4242);
	assert_parsed_integer(&p, "tid", 4243);
	assert_parsed_integer(&p, "connection", 17);
	assert_slice(upstream_line, &p, "message",
	    "connect() failed (111: Connection refused) while connecting to upstream");
	assert_slice(upstream_line, &p, "client", "127.0.0.1");
	assert_slice(upstream_line, &p, "server", "localhost");
	assert_slice(upstream_line, &p, "request", "GET /dead?a=\"b\" HTTP/1.1");
	assert_slice(upstream_line, &p, "method", "GET");
	assert_slice(upstream_line, &p, "path", "/dead?a=\"b\"");
	assert_slice(upstream_line, &p, "protocol", "HTTP/1.1");
	assert_slice(upstream_line, &p, "upstream", "http://127.0.0.1:9/dead?a=\"b\"");
	assert_slice(upstream_line, &p, "host", "127.0.0.1:8080");
	assert_slice(upstream_line, &p, "referrer", "http://x/");
	assert_int_equal(p.nfields, 14);
	assert_int_equal(p.ts, UINT64_C(1795341600) * NS);
	parser_free(&p);
}

static void
test_time_is_read_in_the_given_zone(void **state)
{
	struct tz *zone;
	struct parsed p;

	(void)state;
	assert_int_equal(tz_load("CET-1CEST,M3.5.0,M10.5.0/3", &zone), 0);
	parser_init(&p, 0);
	assert_int_equal(parse_str(upstream_line, zone, &p), 0);
	/* 10:00 in November is CET, UTC+1. */
	assert_int_equal(p.ts, UINT64_C(1795338000) * NS);
	parser_free(&p);
	tz_free(zone);
}

static void
test_lines_without_connection_or_context_keep_the_message(void **state)
{
	static const char notice[] =
	    "2026/11/22 10:00:00 [notice] 4242#4242: using the \"epoll\" event method";
	static const char info[] =
	    "2026/11/22 10:00:01 [info] 4243#4243: *3 client 127.0.0.1 closed keepalive connection";
	static const char server_empty[] =
	    "2026/11/22 10:00:02 [error] 4243#4243: *4 open() \"/srv/x, client: y\" failed (2: No such "
	    "file or directory), client: ::1, server: , request: \"GET /x HTTP/1.1\", host: \"h\"";
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(notice, NULL, &p), 0);
	assert_slice(notice, &p, "level", "notice");
	assert_slice(notice, &p, "message", "using the \"epoll\" event method");
	assert_null(parsed_field(&p, "connection"));
	assert_null(parsed_field(&p, "client"));
	assert_int_equal(p.nfields, 4);

	assert_int_equal(parse_str(info, NULL, &p), 0);
	assert_parsed_integer(&p, "connection", 3);
	assert_slice(info, &p, "message", "client 127.0.0.1 closed keepalive connection");

	assert_int_equal(parse_str(server_empty, NULL, &p), 0);
	assert_slice(server_empty, &p, "message",
	    "open() \"/srv/x, client: y\" failed (2: No such file or directory)");
	assert_slice(server_empty, &p, "client", "::1");
	assert_null(parsed_field(&p, "server"));
	assert_slice(server_empty, &p, "request", "GET /x HTTP/1.1");
	assert_slice(server_empty, &p, "host", "h");
	parser_free(&p);
}

static void
test_lines_that_are_not_error_log_lines_are_einval(void **state)
{
	static const char *const bad[] = {
		"",
		"2026/11/22 10:00:00",
		"2026/13/22 10:00:00 [error] 1#1: x",
		"2026/11/22 10:00:00 error] 1#1: x",
		"2026/11/22 10:00:00 [error 1#1: x",
		"2026/11/22 10:00:00 [error] 1: x",
		"2026/11/22 10:00:00 [error] 1#1 x",
		"2026/11/22 24:00:00 [error] 1#1: x",
		"192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"-\"",
	};
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_str(bad[i], NULL, &p) != -EINVAL)
			fail_msg("'%s' parsed", bad[i]);
		assert_non_null(p.error);
		assert_int_equal(p.nfields, 0);
		assert_int_equal(p.ts, 0);
	}
	parser_free(&p);
}

static int
parse_utc(void *ctx, const uint8_t *line, size_t len, struct parsed *out)
{
	(void)ctx;
	return nginx_error_parse(line, len, NULL, out);
}

static void
test_truncated_lines_never_read_past_the_end(void **state)
{
	(void)state;
	assert_prefixes_stay_inside(upstream_line, parse_utc, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upstream_error_gives_every_context_field),
		cmocka_unit_test(test_time_is_read_in_the_given_zone),
		cmocka_unit_test(test_lines_without_connection_or_context_keep_the_message),
		cmocka_unit_test(test_lines_that_are_not_error_log_lines_are_einval),
		cmocka_unit_test(test_truncated_lines_never_read_past_the_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
