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

#include "agent/nginx_format.h"
#include "common/parser.h"
#include "proto/event.h"
#include "tests/unit/parsed_fixture.h"

#define NS UINT64_C(1000000000)

/* Debian's nginx.conf `main`, extended with the timings people add. */
static const char main_format[] =
    "log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
    "                '$status $body_bytes_sent \"$http_referer\" '\n"
    "                '\"$http_user_agent\" \"$http_x_forwarded_for\" '\n"
    "                '$request_time $upstream_response_time $upstream_addr';";

static const char main_line[] =
    "192.0.2.7 - bob [22/Nov/2026:10:00:00 +0100] \"GET /api?q=1 HTTP/1.1\" 200 1234 "
    "\"https://example.com/\" \"curl/8.0\" \"198.51.100.1, 10.0.0.2\" 0.012 0.004, 0.010 "
    "127.0.0.1:8081, 127.0.0.1:8082\n";

static struct nginx_format *
compile_ok(const char *text)
{
	struct nginx_format *f = NULL;
	char err[256] = "";
	int rc = nginx_format_compile(text, &f, err, sizeof(err));

	if (rc != 0)
		fail_msg("compile failed: %d %s", rc, err);
	assert_non_null(f);
	return f;
}

static void
assert_compile_error(const char *text, const char *want)
{
	struct nginx_format *f = NULL;
	char err[256] = "";

	assert_int_equal(nginx_format_compile(text, &f, err, sizeof(err)), -EINVAL);
	assert_null(f);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' does not say '%s'", err, want);
}

static int
parse_str(const struct nginx_format *f, const char *line, struct parsed *out)
{
	return nginx_format_parse(f, (const uint8_t *)line, strlen(line), out);
}

/* A string that is a slice of the line. */
#define assert_slice(line, p, key, want) assert_parsed_string(line, p, key, want, EVENT_SLICE)

static void
test_main_format_names_fields_after_variables_and_types_them(void **state)
{
	struct nginx_format *f = compile_ok(main_format);
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, main_line, &p), 0);
	assert_null(p.error);
	assert_slice(main_line, &p, "remote_addr", "192.0.2.7");
	assert_slice(main_line, &p, "remote_user", "bob");
	assert_slice(main_line, &p, "time_local", "22/Nov/2026:10:00:00 +0100");
	assert_slice(main_line, &p, "request", "GET /api?q=1 HTTP/1.1");
	assert_slice(main_line, &p, "method", "GET");
	assert_slice(main_line, &p, "path", "/api?q=1");
	assert_slice(main_line, &p, "protocol", "HTTP/1.1");
	assert_parsed_integer(&p, "status", 200);
	assert_parsed_integer(&p, "body_bytes_sent", 1234);
	assert_slice(main_line, &p, "http_referer", "https://example.com/");
	assert_slice(main_line, &p, "http_user_agent", "curl/8.0");
	assert_slice(main_line, &p, "http_x_forwarded_for", "198.51.100.1, 10.0.0.2");
	assert_parsed_number(&p, "request_time", 0.012);
	assert_parsed_json(&p, "upstream_response_time", "[0.004,0.010]");
	assert_parsed_json(&p, "upstream_addr", "[\"127.0.0.1:8081\",\"127.0.0.1:8082\"]");
	assert_int_equal(p.nfields, 15);
	/* 10:00:00 +0100 is 09:00:00 UTC. */
	assert_int_equal(p.ts, UINT64_C(1795338000) * NS);
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_upstream_groups_flatten_into_one_array_with_null_for_dash(void **state)
{
	struct nginx_format *f = compile_ok(
	    "$status $upstream_status \"$upstream_connect_time\" $upstream_addr");
	static const char line[] = "502 502, - : 200 \"0.001, - : 0.000\" 10.0.0.1:80, 10.0.0.2:80 : backend";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_parsed_integer(&p, "status", 502);
	assert_parsed_json(&p, "upstream_status", "[502,null,200]");
	assert_parsed_json(&p, "upstream_connect_time", "[0.001,null,0.000]");
	assert_parsed_json(&p, "upstream_addr", "[\"10.0.0.1:80\",\"10.0.0.2:80\",\"backend\"]");
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_dash_omits_the_field(void **state)
{
	struct nginx_format *f = compile_ok(main_format);
	static const char line[] =
	    "192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 404 0 \"-\" \"-\" \"-\" 0.000 - -";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_null(parsed_field(&p, "remote_user"));
	assert_null(parsed_field(&p, "http_referer"));
	assert_null(parsed_field(&p, "http_user_agent"));
	assert_null(parsed_field(&p, "http_x_forwarded_for"));
	assert_null(parsed_field(&p, "upstream_response_time"));
	assert_null(parsed_field(&p, "upstream_addr"));
	assert_parsed_integer(&p, "status", 404);
	assert_parsed_integer(&p, "body_bytes_sent", 0);
	assert_parsed_number(&p, "request_time", 0.0);
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_escape_default_decodes_hex_escapes_into_text(void **state)
{
	struct nginx_format *f = compile_ok(main_format);
	static const char line[] =
	    "192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET /a\\x22b\\x5C HTTP/1.1\" 200 5 \"-\" "
	    "\"say \\x22hi\\x22\\xC3\\xA9\" \"-\" 0.001 - -";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_parsed_string(line, &p, "request", "GET /a\"b\\ HTTP/1.1", EVENT_TEXT);
	assert_parsed_string(line, &p, "method", "GET", EVENT_TEXT);
	assert_parsed_string(line, &p, "path", "/a\"b\\", EVENT_TEXT);
	assert_parsed_string(line, &p, "protocol", "HTTP/1.1", EVENT_TEXT);
	assert_parsed_string(line, &p, "http_user_agent", "say \"hi\"\xC3\xA9", EVENT_TEXT);
	assert_parsed_integer(&p, "body_bytes_sent", 5);
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_escape_json_decodes_json_escapes_and_keeps_plain_values_as_slices(void **state)
{
	struct nginx_format *f = compile_ok(
	    "log_format j escape=json '{\"addr\":\"$remote_addr\",\"user\":\"$remote_user\",'\n"
	    "  '\"req\":\"$request\",\"status\":$status,\"ua\":\"$http_user_agent\",'\n"
	    "  '\"rt\":$request_time,\"t\":\"$time_iso8601\"}';");
	static const char line[] =
	    "{\"addr\":\"192.0.2.7\",\"user\":\"\",\"req\":\"GET /x HTTP/1.1\",\"status\":200,"
	    "\"ua\":\"a \\\"quoted\\\" \\\\ tab\\t\\u0001\",\"rt\":0.250,\"t\":\"2026-11-22T10:00:00+01:00\"}";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_slice(line, &p, "remote_addr", "192.0.2.7");
	assert_null(parsed_field(&p, "remote_user"));
	assert_slice(line, &p, "request", "GET /x HTTP/1.1");
	assert_slice(line, &p, "path", "/x");
	assert_parsed_integer(&p, "status", 200);
	assert_parsed_string(line, &p, "http_user_agent", "a \"quoted\" \\ tab\t\001", EVENT_TEXT);
	assert_parsed_number(&p, "request_time", 0.25);
	assert_slice(line, &p, "time_iso8601", "2026-11-22T10:00:00+01:00");
	assert_int_equal(p.ts, UINT64_C(1795338000) * NS);
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_braced_variables_and_msec_set_names_and_time(void **state)
{
	struct nginx_format *f = compile_ok("${msec}|${status}ok ${bytes_sent}");
	static const char line[] = "1795338000.123|304ok 17";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_parsed_number(&p, "msec", 1795338000.123);
	assert_parsed_integer(&p, "status", 304);
	assert_parsed_integer(&p, "bytes_sent", 17);
	assert_int_equal(p.ts, UINT64_C(1795338000) * NS + 123000000);
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_lines_that_do_not_match_are_einval_and_name_the_variable(void **state)
{
	struct nginx_format *f = compile_ok(main_format);
	static const char *const bad[] = {
		"",
		"192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" abc 0 \"-\" \"-\" \"-\" 0.0 - -",
		"192.0.2.7 - - [32/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\" \"-\" 0.0 - -",
		"192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\" \"-\" 0.0 -",
		"192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1",
		"192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\" \"-\" 0.0 - - extra",
	};
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_str(f, bad[i], &p), -EINVAL);
		assert_non_null(p.error);
		assert_int_equal(p.nfields, 0);
		assert_int_equal(p.ts, 0);
	}
	assert_int_equal(parse_str(f, bad[1], &p), -EINVAL);
	assert_non_null(strstr(p.error, "$status"));
	assert_int_equal(parse_str(f, bad[2], &p), -EINVAL);
	assert_non_null(strstr(p.error, "$time_local"));
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_compile_errors_say_what_is_wrong(void **state)
{
	(void)state;
	assert_compile_error("$remote_addr$status", "nothing between $remote_addr and $status");
	assert_compile_error("log_format x escape=yaml '$status';", "escape=yaml");
	assert_compile_error("just text", "no variable");
	assert_compile_error("$status $status", "$status twice");
	assert_compile_error("a $ b", "'$' without a variable name");
	assert_compile_error("${status", "unclosed '{'");
	assert_compile_error("log_format x '$status", "unclosed quote");
	assert_compile_error("log_format x '$status' junk ;x", "after ';'");
}

static void
test_more_fields_than_parser_max_fields_is_a_compile_error(void **state)
{
	char text[PARSER_MAX_FIELDS * 8 + 16];
	size_t n = 0;

	(void)state;
	for (int i = 0; i <= PARSER_MAX_FIELDS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "$v%d ", i);
	assert_compile_error(text, "more than");
}

static void
test_request_counts_four_fields_against_parser_max_fields(void **state)
{
	char text[PARSER_MAX_FIELDS * 8 + 16];
	size_t n = snprintf(text, sizeof(text), "$request");
	struct nginx_format *f;
	char err[256];

	(void)state;
	/* 60 more variables and $request's four: PARSER_MAX_FIELDS exactly. */
	for (int i = 0; i < PARSER_MAX_FIELDS - 4; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, " $v%d", i);
	assert_int_equal(nginx_format_compile(text, &f, err, sizeof(err)), 0);
	nginx_format_free(f);
	snprintf(text + n, sizeof(text) - n, " $one_more");
	assert_compile_error(text, "more than 64 fields");
}

static void
test_escape_none_keeps_backslashes_as_written(void **state)
{
	struct nginx_format *f = compile_ok("escape=none '$remote_addr \"$http_user_agent\"'");
	static const char line[] = "192.0.2.7 \"a\\x22b\"";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_slice(line, &p, "http_user_agent", "a\\x22b");
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_full_scratch_keeps_values_as_written_and_says_so(void **state)
{
	struct nginx_format *f = compile_ok(main_format);
	static const char line[] =
	    "192.0.2.7 - - [22/Nov/2026:10:00:00 +0000] \"GET /a\\x22 HTTP/1.1\" 200 5 \"-\" \"-\" \"-\" "
	    "0.001 0.001 10.0.0.1:80";
	struct parsed p;

	(void)state;
	parser_init(&p, 0);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_slice(line, &p, "request", "GET /a\\x22 HTTP/1.1");
	assert_slice(line, &p, "path", "/a\\x22");
	assert_slice(line, &p, "upstream_addr", "10.0.0.1:80");
	assert_non_null(p.error);
	assert_non_null(strstr(p.error, "scratch"));
	parser_free(&p);
	nginx_format_free(f);
}

static void
test_combined_gives_the_fields_of_nginx_combined(void **state)
{
	struct nginx_format *f = compile_ok(
	    "'$remote_addr - $remote_user [$time_local] '\n"
	    "'\"$request\" $status $body_bytes_sent '\n"
	    "'\"$http_referer\" \"$http_user_agent\"'");
	static const char line[] =
	    "203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"";
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	assert_int_equal(parse_str(f, line, &p), 0);
	assert_int_equal(p.nfields, 9);
	assert_slice(line, &p, "remote_addr", "203.0.113.9");
	assert_parsed_integer(&p, "status", 200);
	assert_parsed_integer(&p, "body_bytes_sent", 612);
	assert_slice(line, &p, "http_user_agent", "curl/8.0");
	assert_int_equal(p.ts, UINT64_C(1795341600) * NS);
	parser_free(&p);
	nginx_format_free(f);
}

static int
parse_with_format(void *ctx, const uint8_t *line, size_t len, struct parsed *out)
{
	return nginx_format_parse(ctx, line, len, out);
}

/* Every prefix of a line either fails cleanly or gives fields inside the line. */
static void
test_truncated_lines_never_read_past_the_end(void **state)
{
	struct nginx_format *f = compile_ok(main_format);
	struct nginx_format *j = compile_ok(
	    "escape=json '{\"ua\":\"$http_user_agent\",\"up\":\"$upstream_status\"}'");

	(void)state;
	assert_prefixes_stay_inside(main_line, parse_with_format, f);
	assert_prefixes_stay_inside("{\"ua\":\"a\\\"b\\u00e9\",\"up\":\"502, 200 : -\"}",
	    parse_with_format, j);
	nginx_format_free(f);
	nginx_format_free(j);
}

/* One compiled format and one parser, line after line: each line gets the time of its own text. */
static void
test_one_parser_gives_each_line_the_time_of_its_own_time_local(void **state)
{
	static const struct { const char *line; uint64_t utc; } lines[] = {
		{ "[22/Nov/2026:10:00:00 +0100] 200", 1795338000 },
		{ "[22/Nov/2026:10:00:00 +0100] 200", 1795338000 },
		{ "[22/Nov/2026:10:00:01 +0100] 200", 1795338001 },
		{ "[22/Nov/2026:10:00:01 +0000] 200", 1795341601 },
		{ "[22/Nov/2026:10:00:01 -0100] 200", 1795345201 },
		{ "[23/Nov/2026:10:00:01 -0100] 200", 1795431601 },
	};
	struct nginx_format *f = compile_ok("[$time_local] $status");
	struct parsed p;

	(void)state;
	parser_init(&p, 64 * 1024);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(parse_str(f, lines[i].line, &p), 0);
		assert_int_equal(p.ts, lines[i].utc * NS);
	}
	/* Not a time, after a valid one: the line does not parse. */
	assert_int_equal(parse_str(f, "[22/Nov/2026:10:00:01 -01x0] 200", &p), -EINVAL);
	parser_free(&p);
	nginx_format_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_main_format_names_fields_after_variables_and_types_them),
		cmocka_unit_test(test_upstream_groups_flatten_into_one_array_with_null_for_dash),
		cmocka_unit_test(test_dash_omits_the_field),
		cmocka_unit_test(test_escape_default_decodes_hex_escapes_into_text),
		cmocka_unit_test(test_escape_json_decodes_json_escapes_and_keeps_plain_values_as_slices),
		cmocka_unit_test(test_braced_variables_and_msec_set_names_and_time),
		cmocka_unit_test(test_lines_that_do_not_match_are_einval_and_name_the_variable),
		cmocka_unit_test(test_compile_errors_say_what_is_wrong),
		cmocka_unit_test(test_more_fields_than_parser_max_fields_is_a_compile_error),
		cmocka_unit_test(test_request_counts_four_fields_against_parser_max_fields),
		cmocka_unit_test(test_escape_none_keeps_backslashes_as_written),
		cmocka_unit_test(test_full_scratch_keeps_values_as_written_and_says_so),
		cmocka_unit_test(test_combined_gives_the_fields_of_nginx_combined),
		cmocka_unit_test(test_truncated_lines_never_read_past_the_end),
		cmocka_unit_test(test_one_parser_gives_each_line_the_time_of_its_own_time_local),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
