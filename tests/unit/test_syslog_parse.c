/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/parser.h"
#include "agent/syslog_parse.h"
#include "proto/event.h"

/* 2026-11-25T12:00:00Z, the receive time of most tests. */
#define NOW UINT64_C(1795608000000000000)
#define SCRATCH (64 * 1024)

static struct parsed P;
static const char *line;   /* what P was parsed from */
static const struct tz *zone;   /* of RFC 3164 times; NULL (UTC) but in the zone tests */

static int
parse_at(const char *s, uint64_t now)
{
	line = s;
	return syslog_parse((const uint8_t *)s, strlen(s), now, zone, &P);
}

static int
parse(const char *s)
{
	return parse_at(s, NOW);
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
field(const char *key)
{
	for (size_t i = 0; i < P.nfields; i++)
		if (P.fields[i].key.len == strlen(key) &&
		    memcmp(P.fields[i].key.ptr, key, P.fields[i].key.len) == 0)
			return &P.fields[i];
	return NULL;
}

/* The field's string, a slice resolved against the line. */
static void
assert_text(const char *key, const char *want, enum event_value_type type)
{
	const struct event_field *f = field(key);
	const uint8_t *p;
	size_t n;

	if (f == NULL)
		fail_msg("no field %s in %s", key, line);
	assert_int_equal(f->type, type);
	if (type == EVENT_SLICE) {
		assert_true(f->v.slice.offset + (size_t)f->v.slice.length <= strlen(line));
		p = (const uint8_t *)line + f->v.slice.offset;
		n = f->v.slice.length;
	} else {
		p = f->v.text.ptr;
		n = f->v.text.len;
	}
	if (n != strlen(want) || memcmp(p, want, n) != 0)
		fail_msg("%s: got \"%.*s\", want \"%s\"", key, (int)n, (const char *)p, want);
}

static void
assert_slice(const char *key, const char *want)
{
	assert_text(key, want, EVENT_SLICE);
}

static void
assert_integer(const char *key, int64_t want)
{
	const struct event_field *f = field(key);

	if (f == NULL)
		fail_msg("no field %s in %s", key, line);
	assert_int_equal(f->type, EVENT_INTEGER);
	assert_int_equal(f->v.integer, want);
}

static void
assert_absent(const char *key)
{
	if (field(key) != NULL)
		fail_msg("unexpected field %s in %s", key, line);
}

static void
assert_host(const char *want)
{
	assert_int_equal(P.host.len, strlen(want));
	if (P.host.len)
		assert_memory_equal(P.host.ptr, want, P.host.len);
}

static void
assert_pri(int facility, const char *fname, int severity, const char *sname)
{
	assert_integer("facility", facility);
	assert_text("facility_name", fname, EVENT_TEXT);
	assert_integer("severity", severity);
	assert_text("severity_name", sname, EVENT_TEXT);
}

/* ------------------------------------------------------ RFC 5424, 6.5 */

static void
test_rfc5424_example_1_strips_the_bom_and_omits_nil_values(void **state)
{
	(void)state;
	assert_int_equal(parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - "
	    "ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"), 0);
	assert_null(P.error);
	assert_int_equal(P.ts, UINT64_C(1065910455003000000));
	assert_host("mymachine.example.com");
	assert_pri(4, "auth", 2, "crit");
	assert_slice("hostname", "mymachine.example.com");
	assert_slice("app_name", "su");
	assert_absent("procid");
	assert_slice("msgid", "ID47");
	assert_slice("message", "'su root' failed for lonvick on /dev/pts/8");
	assert_int_equal(P.nfields, 8);
}

static void
test_rfc5424_example_2_applies_the_time_offset(void **state)
{
	(void)state;
	assert_int_equal(parse("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc "
	    "8710 - - %% It's time to make the do-nuts."), 0);
	assert_int_equal(P.ts, UINT64_C(1061727255000003000));
	assert_pri(20, "local4", 5, "notice");
	assert_slice("hostname", "192.0.2.1");
	assert_slice("app_name", "myproc");
	assert_slice("procid", "8710");
	assert_absent("msgid");
	assert_slice("message", "%% It's time to make the do-nuts.");
}

static void
test_rfc5424_example_3_structured_data_becomes_sd_fields(void **state)
{
	(void)state;
	assert_int_equal(parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog "
	    "- ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] "
	    "\xef\xbb\xbf" "An application event log entry..."), 0);
	assert_int_equal(P.ts, UINT64_C(1065910455003000000));
	assert_slice("app_name", "evntslog");
	assert_slice("sd.exampleSDID@32473.iut", "3");
	assert_slice("sd.exampleSDID@32473.eventSource", "Application");
	assert_slice("sd.exampleSDID@32473.eventID", "1011");
	assert_slice("message", "An application event log entry...");
	/* The message comes last, after the structured data. */
	assert_memory_equal(P.fields[P.nfields - 1].key.ptr, "message", 7);
}

static void
test_rfc5424_example_4_two_sd_elements_and_no_message(void **state)
{
	(void)state;
	assert_int_equal(parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog "
	    "- ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
	    "[examplePriority@32473 class=\"high\"]"), 0);
	assert_slice("sd.exampleSDID@32473.eventID", "1011");
	assert_slice("sd.examplePriority@32473.class", "high");
	assert_absent("message");
}

static void
test_sd_values_with_escapes_are_unescaped_into_scratch(void **state)
{
	(void)state;
	assert_int_equal(parse("<13>1 - h a - - [x@1 q=\"b\\\"c\" s=\"x\\\\y\" r=\"p\\]q\" "
	    "n=\"keep\\n\" e=\"\" mix=\"\\\\\\\"\\]\\\\\"] m"), 0);
	assert_int_equal(P.ts, 0);
	assert_text("sd.x@1.q", "b\"c", EVENT_TEXT);
	assert_text("sd.x@1.s", "x\\y", EVENT_TEXT);
	assert_text("sd.x@1.r", "p]q", EVENT_TEXT);
	assert_text("sd.x@1.mix", "\\\"]\\", EVENT_TEXT);
	/* Only \" \\ \] are escapes: other backslashes stay, and so does the slice. */
	assert_slice("sd.x@1.n", "keep\\n");
	assert_slice("sd.x@1.e", "");
	assert_slice("message", "m");
	for (size_t i = 0; i < P.nfields; i++) {
		const struct event_field *f = &P.fields[i];

		if (f->type == EVENT_TEXT && f->key.len > 3 && memcmp(f->key.ptr, "sd.", 3) == 0) {
			assert_true(f->v.text.ptr >= P.scratch.data);
			assert_true(f->v.text.ptr + f->v.text.len <= P.scratch.data + P.scratch.len);
		}
	}
}

static void
test_repeated_sd_param_keeps_the_first_value(void **state)
{
	(void)state;
	assert_int_equal(parse("<13>1 - h a - - [x@1 k=\"1\" k=\"2\" j=\"3\"][y@1 k=\"4\"]"), 0);
	assert_slice("sd.x@1.k", "1");
	assert_slice("sd.x@1.j", "3");
	assert_slice("sd.y@1.k", "4");
	assert_int_equal(P.nfields, 4 + 2 + 3);
}

/* ------------------------------------------------- util-linux logger */

/*
 * Captured from util-linux 2.38.1:
 *   logger --no-act -s -n 127.0.0.1 -P 55514 -d --rfc5424 -t myapp -p local3.warning \
 *       --sd-id test@32473 --sd-param 'a="b\"c"' hello
 */
static void
test_logger_rfc5424_with_sd_param(void **state)
{
	(void)state;
	assert_int_equal(parse("<156>1 2026-11-25T02:00:18.079819+00:00 vm myapp - - "
	    "[timeQuality tzKnown=\"1\" isSynced=\"0\"][test@32473 a=\"b\\\"c\"] hello"), 0);
	assert_int_equal(P.ts, UINT64_C(1795572018079819000));
	assert_pri(19, "local3", 4, "warning");
	assert_host("vm");
	assert_slice("app_name", "myapp");
	assert_absent("procid");
	assert_absent("msgid");
	assert_slice("sd.timeQuality.tzKnown", "1");
	assert_slice("sd.timeQuality.isSynced", "0");
	assert_text("sd.test@32473.a", "b\"c", EVENT_TEXT);
	assert_slice("message", "hello");
}

static void
test_logger_rfc5424_variants(void **state)
{
	(void)state;
	/* --rfc5424=notq,notime -t x hello */
	assert_int_equal(parse("<13>1 - vm x - - - hello"), 0);
	assert_int_equal(P.ts, 0);
	assert_pri(1, "user", 5, "notice");
	assert_slice("app_name", "x");
	assert_slice("message", "hello");
	/* --rfc5424 --msgid ID47 -i -t app 'with msgid' */
	assert_int_equal(parse("<13>1 2026-11-25T02:00:18.064579+00:00 vm app 12736 ID47 "
	    "[timeQuality tzKnown=\"1\" isSynced=\"0\"] with msgid"), 0);
	assert_slice("procid", "12736");
	assert_slice("msgid", "ID47");
	assert_slice("message", "with msgid");
	/* --sd-id a@1 --sd-param 'k="v\]x\\y"' --sd-id b@2 --sd-param 'z="1"' -t app sd2 */
	assert_int_equal(parse("<13>1 2026-11-25T02:00:20.100041+00:00 vm app - - "
	    "[timeQuality tzKnown=\"1\" isSynced=\"0\"][a@1 k=\"v\\]x\\\\y\"][b@2 z=\"1\"] sd2"), 0);
	assert_text("sd.a@1.k", "v]x\\y", EVENT_TEXT);
	assert_slice("sd.b@2.z", "1");
	assert_slice("message", "sd2");
	/* --rfc5424=notq -p kern.emerg -t app nq */
	assert_int_equal(parse("<8>1 2026-11-25T02:00:20.103811+00:00 vm app - - - nq"), 0);
	assert_pri(1, "user", 0, "emerg");
	/* <0> is kern.emerg */
	assert_int_equal(parse("<0>1 2026-11-25T02:00:20Z vm app - - - k"), 0);
	assert_pri(0, "kern", 0, "emerg");
	assert_int_equal(parse("<191>1 2026-11-25T02:00:20Z vm app - - - k"), 0);
	assert_pri(23, "local7", 7, "debug");
}

/* logger --rfc3164 over the network: host present. */
static void
test_logger_rfc3164_tag_with_and_without_pid(void **state)
{
	(void)state;
	/* --rfc3164 -t myapp -p auth.err hello world */
	assert_int_equal(parse("<35>Nov 25 02:00:18 vm myapp: hello world"), 0);
	assert_int_equal(P.ts, UINT64_C(1795572018000000000));
	assert_pri(4, "auth", 3, "err");
	assert_host("vm");
	assert_slice("hostname", "vm");
	assert_slice("app_name", "myapp");
	assert_absent("procid");
	assert_absent("msgid");
	assert_slice("message", "hello world");
	/* --rfc3164 -i -t myapp -p user.notice hi */
	assert_int_equal(parse("<13>Nov 25 02:00:18 vm myapp[12734]: hi"), 0);
	assert_slice("app_name", "myapp");
	assert_slice("procid", "12734");
	assert_slice("message", "hi");
	/* --rfc3164 -p local7.debug -t 'with space' sp: no TAG to be found */
	assert_int_equal(parse("<191>Nov 25 02:00:20 vm with space: sp"), 0);
	assert_host("vm");
	assert_absent("app_name");
	assert_slice("message", "with space: sp");
}

/* What logger, glibc and BSD syslog write to /dev/log: no host. */
static void
test_local_socket_messages_have_no_host(void **state)
{
	(void)state;
	assert_int_equal(parse("<13>Nov 25 02:00:18 myapp[12734]: hi"), 0);
	assert_host("");
	assert_absent("hostname");
	assert_slice("app_name", "myapp");
	assert_slice("procid", "12734");
	assert_slice("message", "hi");
	assert_int_equal(parse("<13>Nov 25 02:00:18 myapp: hi there"), 0);
	assert_absent("hostname");
	assert_slice("app_name", "myapp");
	assert_slice("message", "hi there");
	/* A PRI and no timestamp at all. */
	assert_int_equal(parse("<13>myapp[7]: bare"), 0);
	assert_int_equal(P.ts, 0);
	assert_slice("app_name", "myapp");
	assert_slice("procid", "7");
	assert_slice("message", "bare");
	assert_int_equal(parse("<13>just words"), 0);
	assert_absent("app_name");
	assert_slice("message", "just words");
	/* Line ends and NULs that framings leave are not content. */
	assert_int_equal(parse("<13>Nov 25 02:00:18 app: x\r\n"), 0);
	assert_slice("message", "x");
}

/* --------------------------------------------------- /var/log/syslog */

static void
test_syslog_file_lines_traditional_and_high_precision(void **state)
{
	(void)state;
	assert_int_equal(parse("Nov 25 01:20:31 web-01 sshd[811]: Accepted publickey for root"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631000000000));
	assert_absent("facility");
	assert_absent("severity");
	assert_host("web-01");
	assert_slice("app_name", "sshd");
	assert_slice("procid", "811");
	assert_slice("message", "Accepted publickey for root");
	assert_int_equal(P.nfields, 4);
	/* Space-padded day. */
	assert_int_equal(parse("Nov  5 01:02:03 web-01 kernel: [   12.3] usb 1-1: new device"), 0);
	assert_int_equal(P.ts, UINT64_C(1793840523000000000));
	assert_slice("app_name", "kernel");
	assert_slice("message", "[   12.3] usb 1-1: new device");
	/* rsyslog's RSYSLOG_FileFormat. */
	assert_int_equal(parse("2026-11-25T01:20:31.123456+00:00 web-01 CRON[42]: (root) CMD (x)"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631123456000));
	assert_host("web-01");
	assert_slice("app_name", "CRON");
	assert_slice("procid", "42");
	assert_slice("message", "(root) CMD (x)");
	/* The same with an offset, and rsyslog forwarding with a PRI. */
	assert_int_equal(parse("2026-11-25T06:50:31+05:30 web-01 app: m"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631000000000));
	assert_int_equal(parse("<86>2026-11-25T01:20:31.123456Z web-01 app: m"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631123456000));
	assert_pri(10, "authpriv", 6, "info");
	/* A line with nothing after the host, and one with no TAG. */
	assert_int_equal(parse("Nov 25 01:20:31 web-01"), 0);
	assert_host("web-01");
	assert_absent("message");
	assert_int_equal(parse("Nov 25 01:20:31 web-01 -- MARK --"), 0);
	assert_absent("app_name");
	assert_slice("message", "-- MARK --");
}

/* ------------------------------------- RFC 3164 as real senders write it */

/* rsyslog's testbench (tests/testsuites/date*.parse1): all read as "Mar 7 19:06:53". */
static void
test_rsyslog_date_variants_are_read_whole(void **state)
{
	static const struct { const char *in; uint64_t ts; } cases[] = {
		/* Single-digit day, without and with its padding space. */
		{ "<38>Mar 7 19:06:53 example tag: testmessage", UINT64_C(1804446413000000000) },
		{ "<38>Mar  7 19:06:53 example tag: testmessage", UINT64_C(1804446413000000000) },
		/* A space before the date. */
		{ "<38> Mar  7 19:06:53 example tag: testmessage", UINT64_C(1804446413000000000) },
		/* A colon after the time. */
		{ "<38>Mar 7 19:06:53: example tag: testmessage", UINT64_C(1804446413000000000) },
		/* A year inside the timestamp: that year, not the one nearest now. */
		{ "<38>Mar 7 2008 19:06:53 example tag: testmessage", UINT64_C(1204916813000000000) },
		{ "<38>Mar 7 2008 19:06:53: example tag: testmessage", UINT64_C(1204916813000000000) },
		{ "Mar  7 2008 19:06:53 example tag: testmessage", UINT64_C(1204916813000000000) },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i].in) != 0)
			fail_msg("%s: %s", cases[i].in, P.error);
		assert_null(P.error);
		if (P.ts != cases[i].ts)
			fail_msg("%s: ts %ju, want %ju", cases[i].in, (uintmax_t)P.ts,
			    (uintmax_t)cases[i].ts);
		if (cases[i].in[0] == '<')
			assert_pri(4, "auth", 6, "info");
		assert_host("example");
		assert_slice("hostname", "example");
		assert_slice("app_name", "tag");
		assert_slice("message", "testmessage");
	}
}

/* rsyslog's empty.parse1, weird.parse1, malformed1.parse1: a header and nothing after it. */
static void
test_rsyslog_empty_messages_keep_the_header(void **state)
{
	(void)state;
	assert_int_equal(parse("<14>Jan  6 2009 15:22:26 localhost \n"), 0);
	assert_null(P.error);
	assert_int_equal(P.ts, UINT64_C(1231255346000000000));
	assert_pri(1, "user", 6, "info");
	assert_host("localhost");
	assert_absent("app_name");
	assert_absent("message");
	assert_int_equal(parse("<14>Aug 30 23:00:05 X4711 "), 0);
	assert_int_equal(P.ts, UINT64_C(1788130805000000000));
	assert_host("X4711");
	assert_absent("message");
	assert_int_equal(parse("<14>Aug 30 23:00:05 "), 0);
	assert_int_equal(P.ts, UINT64_C(1788130805000000000));
	assert_host("");
	assert_absent("message");
	assert_int_equal(parse("<14>Aug 30 23:00:05"), 0);
	assert_pri(1, "user", 6, "info");
	assert_int_equal(parse("<14>2010-08-30T23:00:05Z "), 0);
	assert_host("");
	assert_absent("message");
	assert_int_equal(parse("<14>"), 0);
	assert_pri(1, "user", 6, "info");
	assert_absent("message");
	assert_int_equal(parse("<131>Oct  8 23:05:06 10.321.1.123 05\",result_code=200,b"), 0);
	assert_int_equal(P.ts, UINT64_C(1791500706000000000));
	assert_pri(16, "local0", 3, "err");
	assert_host("10.321.1.123");
	assert_slice("message", "05\",result_code=200,b");
	/* RFC 5424 with neither structured data nor message, and every NILVALUE. */
	assert_int_equal(parse("<13>1 - - - - - -"), 0);
	assert_pri(1, "user", 5, "notice");
	assert_int_equal(P.nfields, 4);
	assert_int_equal(parse("<13>1 - - - - - - "), 0);
	assert_int_equal(P.nfields, 4);
}

/* rsyslog's rfc5424-3.parse1: RFC 5424's example 4 with a space after one "=". */
static void
test_sd_param_with_spaces_around_the_value_is_read_leniently(void **state)
{
	(void)state;
	assert_int_equal(parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
	    "[exampleSDID@32473 iut=\"3\" eventSource= \"Application\" eventID=\"1011\"]"
	    "[examplePriority@32473 class=\"high\"]"), 0);
	assert_null(P.error);
	assert_pri(20, "local4", 5, "notice");
	assert_host("mymachine.example.com");
	assert_slice("app_name", "evntslog");
	assert_slice("msgid", "ID47");
	assert_slice("sd.exampleSDID@32473.iut", "3");
	assert_slice("sd.exampleSDID@32473.eventSource", "Application");
	assert_slice("sd.exampleSDID@32473.eventID", "1011");
	assert_slice("sd.examplePriority@32473.class", "high");
	/* Spaces on both sides of the "=", and before the "]". */
	assert_int_equal(parse("<13>1 - h a - - [x@1 a = \"b\"  c=\"d\" ] m"), 0);
	assert_null(P.error);
	assert_slice("sd.x@1.a", "b");
	assert_slice("sd.x@1.c", "d");
	assert_slice("message", "m");
}

/* A header we cannot read still leaves the priority, and the rest as the message. */
static void
test_priority_is_kept_when_the_header_is_malformed(void **state)
{
	static const struct { const char *in, *why, *msg; } cases[] = {
		{ "<13>1 2026-11-25 01:20:31Z h a - - - m", "syslog: bad RFC 5424 timestamp",
		  "1 2026-11-25 01:20:31Z h a - - - m" },
		{ "<13>1 - h a - - [x@1 a=b] m", "syslog: SD-PARAM value is not quoted",
		  "1 - h a - - [x@1 a=b] m" },
		{ "<13>1 - h a - - [y@1 k=\"v\\\"w\"][x@1 a=\"b", "syslog: structured data is not closed",
		  "1 - h a - - [y@1 k=\"v\\\"w\"][x@1 a=\"b" },
		{ "<13>Nov 32 01:20:31 h a: m", "syslog: bad RFC 3164 timestamp",
		  "Nov 32 01:20:31 h a: m" },
		{ "<13>2026-11-25T01:20:31Zh a: m", "syslog: bad RFC 3339 timestamp",
		  "2026-11-25T01:20:31Zh a: m" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].in);

		if (r != 0 || P.error == NULL || strcmp(P.error, cases[i].why) != 0)
			fail_msg("%s: got %d \"%s\", want 0 \"%s\"", cases[i].in, r,
			    P.error ? P.error : "(null)", cases[i].why);
		assert_pri(1, "user", 5, "notice");
		assert_slice("message", cases[i].msg);
		assert_int_equal(P.nfields, 5);
		assert_int_equal(P.ts, 0);
		assert_int_equal(P.host.len, 0);
	}
}

/* ---------------------------------------------------------------- time */

static void
test_year_less_timestamps_take_the_year_closest_to_now(void **state)
{
	(void)state;
	/* Read just after new year: last December. */
	assert_int_equal(parse_at("Dec 31 23:59:50 h a: x", UINT64_C(1798761610000000000)), 0);
	assert_int_equal(P.ts, UINT64_C(1798761590000000000));
	/* A sender whose clock runs ahead, seen just before new year: next January. */
	assert_int_equal(parse_at("Jan  1 00:00:05 h a: x", UINT64_C(1798761599000000000)), 0);
	assert_int_equal(P.ts, UINT64_C(1798761605000000000));
	/* February 29th exists only in the leap year near now. */
	assert_int_equal(parse_at("Feb 29 12:00:00 h a: x", UINT64_C(1835481600000000000)), 0);
	assert_int_equal(P.ts, UINT64_C(1835438400000000000));
	assert_int_equal(parse_at("Feb 29 12:00:00 h a: x", UINT64_C(1781481600000000000)), -EINVAL);
	assert_string_equal(P.error, "syslog: bad RFC 3164 timestamp");
	/* Fractions are kept when a sender writes them. */
	assert_int_equal(parse("Nov 25 01:20:31.5 h a: x"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631500000000));
}

/* RFC 3164 times are the sender's local time: read in the zone given, DST included. */
static void
test_rfc3164_times_are_read_in_the_given_zone_with_dst(void **state)
{
	struct tz *ny;

	(void)state;
	assert_int_equal(tz_load("EST5EDT,M3.2.0,M11.1.0", &ny), 0);
	zone = ny;
	/* Winter: EST, UTC-5. */
	assert_int_equal(parse("Nov 25 01:20:31 web-01 sshd[811]: x"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631000000000) + UINT64_C(5) * 3600 * 1000000000);
	assert_int_equal(parse("<13>Nov 25 01:20:31.5 h a: x"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631500000000) + UINT64_C(5) * 3600 * 1000000000);
	/* Summer: EDT, UTC-4. */
	assert_int_equal(parse("<13>Jul  4 12:00:00 h a: x"), 0);
	assert_int_equal(P.ts, UINT64_C(1783166400000000000) + UINT64_C(4) * 3600 * 1000000000);
	/* A year in the timestamp: 2008-03-07 was still EST (DST began on the 9th). */
	assert_int_equal(parse("<38>Mar 7 2008 19:06:53 example tag: x"), 0);
	assert_int_equal(P.ts, UINT64_C(1204916813000000000) + UINT64_C(5) * 3600 * 1000000000);
	/* Times with an offset keep it, whatever the zone. */
	assert_int_equal(parse("<13>1 2026-11-25T01:20:31Z h a - - - m"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631000000000));
	assert_int_equal(parse("2026-11-25T01:20:31.123456+00:00 web-01 CRON[42]: x"), 0);
	assert_int_equal(P.ts, UINT64_C(1795569631123456000));
	/* Just after new year in New York (05:00:10Z), last December's 23:59:50 local. */
	assert_int_equal(parse_at("Dec 31 23:59:50 h a: x", UINT64_C(1798779610000000000)), 0);
	assert_int_equal(P.ts, UINT64_C(1798779590000000000));
	zone = NULL;
	tz_free(ny);
}

static void
test_rfc3339_offsets_and_fractions(void **state)
{
	static const struct { const char *ts; uint64_t want; } cases[] = {
		{ "2026-11-25T01:20:31Z", UINT64_C(1795569631000000000) },
		{ "2026-11-25T01:20:31z", UINT64_C(1795569631000000000) },
		{ "2026-11-25T01:20:31+00:00", UINT64_C(1795569631000000000) },
		{ "2026-11-25T01:20:31-00:00", UINT64_C(1795569631000000000) },
		{ "2026-11-25T06:50:31+05:30", UINT64_C(1795569631000000000) },
		{ "2026-11-24T15:20:31-10:00", UINT64_C(1795569631000000000) },
		{ "2026-11-25T01:20:31.1Z", UINT64_C(1795569631100000000) },
		{ "2026-11-25T01:20:31.000001Z", UINT64_C(1795569631000001000) },
		{ "2026-11-25T01:20:31.123456789Z", UINT64_C(1795569631123456789) },
		{ "2028-02-29T00:00:00Z", UINT64_C(1835395200000000000) },
		{ "1970-01-01T00:00:01Z", UINT64_C(1000000000) },
		/* Outside what a uint64 of nanoseconds holds: no usable time. */
		{ "1969-12-31T23:59:59Z", 0 },
		{ "9999-12-31T23:59:59Z", 0 },
	};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "<13>1 %s h a - - - m", cases[i].ts);
		assert_int_equal(parse(buf), 0);
		if (P.ts != cases[i].want)
			fail_msg("%s: got %ju", cases[i].ts, (uintmax_t)P.ts);
	}
}

/* ----------------------------------------------------------- malformed */

static void
test_malformed_messages_get_their_specific_error(void **state)
{
	static const struct { const char *in, *why; } cases[] = {
		{ "", "syslog: no timestamp or PRI" },
		{ "just some text", "syslog: no timestamp or PRI" },
		{ "November rain", "syslog: no timestamp or PRI" },
		{ "<", "syslog: PRI is not closed" },
		{ "<13", "syslog: PRI is not closed" },
		{ "<>1 - - - - - -", "syslog: PRI is empty" },
		{ "<1x>", "syslog: PRI is not a number" },
		{ "<html>", "syslog: PRI is not a number" },
		{ "<1234>x", "syslog: PRI has more than 3 digits" },
		{ "<192>x", "syslog: PRI above 191" },
		{ "<999>x", "syslog: PRI above 191" },
		{ "<13>1 2026-13-25T01:20:31Z h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-02-29T01:20:31Z h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T24:00:00Z h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T01:20:31 h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T01:20:31.Z h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T01:20:31.1234567890Z h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T01:20:31+0100 h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T01:20:31+24:00 h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25 01:20:31Z h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 2026-11-25T01:20:31Zx h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 Nov 25 01:20:31 h a - - -", "syslog: bad RFC 5424 timestamp" },
		{ "<13>1 -", "syslog: RFC 5424 header is truncated" },
		{ "<13>1 - h a - -", "syslog: RFC 5424 header is truncated" },
		{ "<13>1 - h a - - ", "syslog: RFC 5424 header is truncated" },
		{ "<13>1 - h  a - - -", "syslog: empty field in RFC 5424 header" },
		{ "<13>1 - h a - - x", "syslog: structured data is neither - nor [" },
		{ "<13>1 - h a - - [x@1 a=\"b\"", "syslog: structured data is not closed" },
		{ "<13>1 - h a - - [x@1 a=\"b", "syslog: structured data is not closed" },
		{ "<13>1 - h a - - [x@1 a=\"b\\\"]", "syslog: structured data is not closed" },
		{ "<13>1 - h a - - [x@1", "syslog: structured data is not closed" },
		{ "<13>1 - h a - - [x@1 a", "syslog: structured data is not closed" },
		{ "<13>1 - h a - - [x@1 a=", "syslog: structured data is not closed" },
		{ "<13>1 - h a - - [] m", "syslog: empty SD-ID" },
		{ "<13>1 - h a - - [ a=\"b\"] m", "syslog: empty SD-ID" },
		{ "<13>1 - h a - - [x\"y a=\"b\"] m", "syslog: bad character in SD-ID" },
		{ "<13>1 - h a - - [x@1 a=\"b\"c=\"d\"] m", "syslog: no space between SD-PARAMs" },
		{ "<13>1 - h a - - [x@1 =\"b\"] m", "syslog: empty SD-PARAM name" },
		{ "<13>1 - h a - - [x@1 a] m", "syslog: SD-PARAM without =" },
		{ "<13>1 - h a - - [x@1 a b] m", "syslog: SD-PARAM without =" },
		{ "<13>1 - h a - - [x@1 a\"=\"b\"] m", "syslog: bad character in SD-PARAM name" },
		{ "<13>1 - h a - - [x@1 a\x01=\"b\"] m", "syslog: bad character in SD-PARAM name" },
		{ "<13>1 - h a - - [x@1 a=b] m", "syslog: SD-PARAM value is not quoted" },
		{ "<13>1 - h a - - [x@1 a=\"b\"]m", "syslog: no space after structured data" },
		{ "<13>1 - h a - - -m", "syslog: no space after structured data" },
		{ "<13>Nov 32 01:20:31 h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "<13>Nov 31 01:20:31 h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "<13>Nov 25 1:20:31 h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "Nov 25 01:20 h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "Nov 25 01:20:61 h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "Nov 25 01:20:31h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "Nov  0 01:20:31 h a: m", "syslog: bad RFC 3164 timestamp" },
		{ "2026-11-25 01:20:31 h a: m", "syslog: bad RFC 3339 timestamp" },
		{ "2026-11-25T01:20:31.123456 h a: m", "syslog: bad RFC 3339 timestamp" },
		{ "<13>2026-11-25T01:20:31Zh a: m", "syslog: bad RFC 3339 timestamp" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].in);
		/* A line whose PRI was read keeps it (and the rest as its message). */
		bool pri = cases[i].in[0] == '<' && strncmp(cases[i].why, "syslog: PRI", 11) != 0;

		if (r != (pri ? 0 : -EINVAL) || P.error == NULL || strcmp(P.error, cases[i].why) != 0)
			fail_msg("%s: got %d \"%s\", want \"%s\"", cases[i].in, r,
			    P.error ? P.error : "(null)", cases[i].why);
		if (pri) {
			assert_integer("facility", 1);
			assert_slice("message", strchr(cases[i].in, '>') + 1);
		} else {
			assert_int_equal(P.nfields, 0);
		}
		assert_int_equal(P.ts, 0);
		assert_int_equal(P.host.len, 0);
	}
	/* A failure does not stick to the next line. */
	assert_int_equal(parse("<13>1 - h a - - - m"), 0);
	assert_null(P.error);
}

/* ------------------------------------------------------------- hostile */

/* Every field within its bounds: slices in the line, texts in scratch or static. */
static void
check_bounds(const uint8_t *msg, size_t len, int r)
{
	if (r != 0) {
		assert_int_equal(r, -EINVAL);
		assert_non_null(P.error);
		assert_true(P.error[0] != '\0');
		return;
	}
	/* Parsed in part: what was not understood is said. */
	if (P.error != NULL)
		assert_true(P.error[0] != '\0');
	assert_true(P.nfields <= PARSER_MAX_FIELDS);
	if (P.host.len) {
		assert_true(P.host.ptr >= msg && P.host.ptr + P.host.len <= msg + len);
	}
	for (size_t i = 0; i < P.nfields; i++) {
		const struct event_field *f = &P.fields[i];

		assert_non_null(f->key.ptr);
		assert_true(f->key.len > 0);
		/* Keys are string literals or in scratch: read them all (ASan checks). */
		for (size_t k = 0; k < f->key.len; k++)
			assert_true(f->key.ptr[k] > ' ');
		switch (f->type) {
		case EVENT_SLICE:
			assert_true((size_t)f->v.slice.offset + f->v.slice.length <= len);
			break;
		case EVENT_TEXT:
			assert_true(f->v.text.len == 0 || f->v.text.ptr != NULL);
			if (f->key.len > 3 && memcmp(f->key.ptr, "sd.", 3) == 0)
				assert_true(f->v.text.ptr >= P.scratch.data && f->v.text.ptr +
				    f->v.text.len <= P.scratch.data + P.scratch.len);
			break;
		case EVENT_INTEGER:
			break;
		default:
			fail_msg("field %zu has type %d", i, f->type);
		}
	}
}

static int
parse_copy(const char *s, size_t n, uint64_t now)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(n ? n : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, n);
	r = syslog_parse(copy, n, now, zone, &P);
	check_bounds(copy, n, r);
	free(copy);
	return r;
}

static const char *const valid[] = {
	"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
	    "\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
	"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
	    "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
	    "[examplePriority@32473 class=\"high\"] m",
	"<156>1 2026-11-25T02:00:18.079819+00:00 vm myapp - - "
	    "[timeQuality tzKnown=\"1\" isSynced=\"0\"][test@32473 a=\"b\\\"c\"] hello",
	"<13>1 2026-11-25T02:00:20.100041-07:30 vm app 1 2 [a@1 k=\"v\\]x\\\\y\"][b@2 z=\"1\"] sd2",
	"<35>Nov 25 02:00:18 vm myapp[12734]: hello world",
	"<13>Nov  5 02:00:18.25 myapp: hi",
	"Nov 25 01:20:31 web-01 sshd[811]: Accepted publickey for root",
	"2026-11-25T01:20:31.123456+00:00 web-01 CRON[42]: (root) CMD (x)",
	"<13>app[1]: no time",
};

static void
test_truncation_at_every_length_stays_in_bounds(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		size_t len = strlen(valid[i]);

		assert_int_equal(parse_copy(valid[i], len, NOW), 0);
		for (size_t n = 0; n < len; n++)
			(void)parse_copy(valid[i], n, NOW);
	}
}

static void
test_random_and_mutated_bytes_stay_in_bounds(void **state)
{
	static const char alphabet[] = "<>[]\"\\= -:.0123456789TZ+1aN\xef\xbb\xbf\n";
	char bytes[300];
	unsigned seed = 11;

	(void)state;
	for (int iter = 0; iter < 200000; iter++) {
		size_t len;

		if (iter % 3 == 0) {
			/* Any bytes at all. */
			len = (size_t)(rand_r(&seed) % (int)sizeof(bytes));
			for (size_t i = 0; i < len; i++)
				bytes[i] = (char)rand_r(&seed);
		} else {
			/* A valid message with a few bytes changed into syntax. */
			const char *v = valid[rand_r(&seed) % (int)(sizeof(valid) / sizeof(valid[0]))];

			len = strlen(v);
			memcpy(bytes, v, len);
			for (int k = rand_r(&seed) % 4; k >= 0; k--)
				bytes[rand_r(&seed) % (int)len] = iter % 3 == 1 ?
				    alphabet[rand_r(&seed) % (int)(sizeof(alphabet) - 1)] :
				    (char)rand_r(&seed);
		}
		(void)parse_copy(bytes, len, (uint64_t)rand_r(&seed) * 1000000000u);
	}
}

static void
test_sixty_sd_elements_fill_the_fields_and_keep_the_message(void **state)
{
	char *s = malloc(8192), *p = s;

	(void)state;
	assert_non_null(s);
	p += sprintf(p, "<13>1 - h a - - ");
	for (int i = 0; i < 60; i++)
		p += sprintf(p, "[e%d@1 a=\"%d\" b=\"x\\\"%d\"]", i, i, i);
	sprintf(p, " the message");
	assert_int_equal(parse(s), 0);
	assert_int_equal(P.nfields, PARSER_MAX_FIELDS);
	assert_slice("sd.e0@1.a", "0");
	assert_text("sd.e0@1.b", "x\"0", EVENT_TEXT);
	assert_slice("message", "the message");
	assert_memory_equal(P.fields[PARSER_MAX_FIELDS - 1].key.ptr, "message", 7);
	check_bounds((const uint8_t *)s, strlen(s), 0);
	free(s);
}

static void
test_full_scratch_keeps_raw_values_and_drops_keys(void **state)
{
	struct parsed small;
	const char *s = "<13>1 - h a - - [x@1 a=\"1\\\"2\" b=\"3\"] m";

	(void)state;
	/* Room for one key ("sd.x@1.a", 8 bytes) and not for the unescaped value. */
	parser_init(&small, 10);
	assert_int_equal(syslog_parse((const uint8_t *)s, strlen(s), NOW, NULL, &small), 0);
	assert_int_equal(small.nfields, 4 + 2 + 2);
	assert_memory_equal(small.fields[6].key.ptr, "sd.x@1.a", 8);
	assert_int_equal(small.fields[6].type, EVENT_SLICE);
	assert_int_equal(small.fields[6].v.slice.length, 4);
	assert_memory_equal(s + small.fields[6].v.slice.offset, "1\\\"2", 4);
	assert_memory_equal(small.fields[7].key.ptr, "message", 7);
	parser_free(&small);
	parser_free(NULL);
}

static void
test_huge_messages_and_repeated_escapes(void **state)
{
	size_t n = 64 * 1024, len;
	char *s = malloc(n + 1), *p;

	(void)state;
	assert_non_null(s);
	/* A 64 KiB SD value made of escapes. */
	p = s + sprintf(s, "<13>1 - h a - - [x@1 v=\"");
	for (int k = 0; (size_t)(p - s) < n - 16; k++) {
		p[0] = '\\';
		p[1] = k % 3 ? '\\' : ']';
		p += 2;
	}
	p += sprintf(p, "\"] m");
	len = (size_t)(p - s);
	assert_int_equal(parse_copy(s, len, NOW), 0);
	assert_int_equal(field("sd.x@1.v")->type, EVENT_TEXT);
	assert_true(field("sd.x@1.v")->v.text.len < len / 2 + 1);
	/* A 64 KiB message of NULs and invalid UTF-8. */
	p = s + sprintf(s, "<13>Nov 25 02:00:18 h a: ");
	for (size_t k = (size_t)(p - s); k < n; k++)
		s[k] = k % 2 ? '\0' : '\xff';
	assert_int_equal(parse_copy(s, n, NOW), 0);
	/* The last byte is a NUL, and trailing NULs are not content. */
	assert_int_equal(field("message")->v.slice.length, n - 25 - 1);
	free(s);
}

static void
test_parsed_is_reused_across_lines(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(parse("<13>1 - h a - - [x@1 a=\"\\\"\"] m"), 0);
		assert_text("sd.x@1.a", "\"", EVENT_TEXT);
		assert_int_equal(P.scratch.len, strlen("sd.x@1.a") + 1);
		assert_int_equal(parse("Nov 25 01:20:31 h a: x"), 0);
		assert_int_equal(P.nfields, 3);
		assert_int_equal(P.scratch.len, 0);
	}
}

/* ----------------------------------------------------------- round trip */

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
		ev.host = P.host;
		ev.message = (struct pbslice){ (const uint8_t *)s, strlen(s) };
		ev.fields = P.fields;
		ev.nfields = P.nfields;
		buf_init(&b, 1 << 20);
		assert_int_equal(event_encode(&ev, &b), 0);
		event_reader_init(&r, b.data, b.len, gf, PARSER_MAX_FIELDS);
		assert_int_equal(event_reader_next(&r, &got), 1);
		assert_int_equal(got.ts, P.ts);
		assert_int_equal(got.host.len, P.host.len);
		assert_int_equal(got.nfields, P.nfields);
		for (size_t k = 0; k < P.nfields; k++) {
			struct pbslice want, have;

			assert_int_equal(got.fields[k].key.len, P.fields[k].key.len);
			assert_memory_equal(got.fields[k].key.ptr, P.fields[k].key.ptr,
			    P.fields[k].key.len);
			assert_int_equal(got.fields[k].type, P.fields[k].type);
			if (P.fields[k].type == EVENT_INTEGER) {
				assert_int_equal(got.fields[k].v.integer, P.fields[k].v.integer);
				continue;
			}
			assert_int_equal(event_field_string(&ev, &P.fields[k], &want), 0);
			assert_int_equal(event_field_string(&got, &got.fields[k], &have), 0);
			assert_int_equal(have.len, want.len);
			if (want.len)
				assert_memory_equal(have.ptr, want.ptr, want.len);
		}
		assert_int_equal(event_reader_next(&r, &got), 0);
		buf_free(&b);
	}
}

/* ---------------------------------------------------------- throughput */


int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rfc5424_example_1_strips_the_bom_and_omits_nil_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc5424_example_2_applies_the_time_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc5424_example_3_structured_data_becomes_sd_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc5424_example_4_two_sd_elements_and_no_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sd_values_with_escapes_are_unescaped_into_scratch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repeated_sd_param_keeps_the_first_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logger_rfc5424_with_sd_param, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logger_rfc5424_variants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logger_rfc3164_tag_with_and_without_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_socket_messages_have_no_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syslog_file_lines_traditional_and_high_precision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_year_less_timestamps_take_the_year_closest_to_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rsyslog_date_variants_are_read_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rsyslog_empty_messages_keep_the_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sd_param_with_spaces_around_the_value_is_read_leniently, setup, teardown),
		cmocka_unit_test_setup_teardown(test_priority_is_kept_when_the_header_is_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc3164_times_are_read_in_the_given_zone_with_dst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc3339_offsets_and_fractions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_messages_get_their_specific_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_at_every_length_stays_in_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_and_mutated_bytes_stay_in_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sixty_sd_elements_fill_the_fields_and_keep_the_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_scratch_keeps_raw_values_and_drops_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_messages_and_repeated_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parsed_is_reused_across_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fields_round_trip_through_event_encode, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
