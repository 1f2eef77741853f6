/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/relay_config.h"
#include "relay/route.h"

/*
 * Counting allocations: this program's malloc family wraps glibc's, so a
 * render that allocates is seen. AddressSanitizer brings its own allocator,
 * so the count is taken only without it.
 */
#ifndef __SANITIZE_ADDRESS__
#define COUNT_ALLOCATIONS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static volatile int counting;
static volatile size_t allocations;

void *
malloc(size_t n)
{
	allocations += counting;
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	allocations += counting;
	return __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	allocations += counting;
	return __libc_realloc(p, n);
}

void
free(void *p)
{
	__libc_free(p);
}
#endif

#define S(str) ((struct pbslice){ (const uint8_t *)(str), sizeof(str) - 1 })

static const char line[] = "203.0.113.9 - alice [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200";

enum { F_USER, F_SLICE, F_INT, F_NEG, F_NUM, F_TENTH, F_BIG, F_NAN, F_TRUE, F_FALSE,
	F_JSON, F_NULL, F_BAD_SLICE, F_DUP, NF };

static struct event_field fields[NF];
static struct event ev;

static void
sample(void)
{
	memset(&ev, 0, sizeof(ev));
	memset(fields, 0, sizeof(fields));
	ev.ts = UINT64_C(1795341600123456000);
	ev.host = S("web-01");
	ev.stream = S("nginx.access");
	ev.source = S("/var/log/nginx/access.log");
	ev.message = S(line);
	fields[F_USER] = (struct event_field){ .key = S("user_id"), .type = EVENT_TEXT,
		.v.text = S("u-42") };
	fields[F_SLICE] = (struct event_field){ .key = S("remote_user"), .type = EVENT_SLICE,
		.v.slice = { 14, 5 } };
	fields[F_INT] = (struct event_field){ .key = S("status"), .type = EVENT_INTEGER,
		.v.integer = 200 };
	fields[F_NEG] = (struct event_field){ .key = S("min"), .type = EVENT_INTEGER,
		.v.integer = INT64_MIN };
	fields[F_NUM] = (struct event_field){ .key = S("rt"), .type = EVENT_NUMBER,
		.v.number = 0.125 };
	fields[F_TENTH] = (struct event_field){ .key = S("tenth"), .type = EVENT_NUMBER,
		.v.number = 0.1 };
	fields[F_BIG] = (struct event_field){ .key = S("big"), .type = EVENT_NUMBER,
		.v.number = 1e21 };
	fields[F_NAN] = (struct event_field){ .key = S("nan"), .type = EVENT_NUMBER,
		.v.number = __builtin_nan("") };
	fields[F_TRUE] = (struct event_field){ .key = S("cached"), .type = EVENT_BOOLEAN,
		.v.boolean = true };
	fields[F_FALSE] = (struct event_field){ .key = S("gzip"), .type = EVENT_BOOLEAN,
		.v.boolean = false };
	fields[F_JSON] = (struct event_field){ .key = S("tags"), .type = EVENT_JSON,
		.v.json = S("[\"a\",1]") };
	fields[F_NULL] = (struct event_field){ .key = S("referer"), .type = EVENT_NULL };
	fields[F_BAD_SLICE] = (struct event_field){ .key = S("bad"), .type = EVENT_SLICE,
		.v.slice = { 60, 100 } };
	fields[F_DUP] = (struct event_field){ .key = S("user_id"), .type = EVENT_TEXT,
		.v.text = S("second") };
	ev.fields = fields;
	ev.nfields = NF;
}

/* Compiles tmpl, renders it for the sample event into a 512-byte buffer. */
static const char *
render(enum route_kind kind, const char *tmpl, const char *agent, size_t *len)
{
	static char out[512];
	struct route *rt;
	char why[256];
	size_t n;

	sample();
	assert_int_equal(route_compile(tmpl, kind, &rt, why, sizeof(why)), 0);
	assert_int_equal(route_render(rt, &ev, agent, out, sizeof(out), &n), 0);
	assert_int_equal(out[n], '\0');
	route_free(rt);
	if (len != NULL)
		*len = n;
	return out;
}

static const char *
key(const char *tmpl)
{
	return render(ROUTE_KEY, tmpl, "agent-7", NULL);
}

static const char *
topic(const char *tmpl)
{
	return render(ROUTE_TOPIC, tmpl, "agent-7", NULL);
}

static void
test_literals_and_event_variables(void **state)
{
	(void)state;
	assert_string_equal(topic("logs.${stream}"), "logs.nginx.access");
	assert_string_equal(key("${host}"), "web-01");
	assert_string_equal(key("${agent}"), "agent-7");
	assert_string_equal(key("${source}"), "/var/log/nginx/access.log");
	assert_string_equal(key("a${stream}b${host}c${agent}d"), "anginx.accessbweb-01cagent-7d");
	assert_string_equal(key("plain text"), "plain text");
	assert_string_equal(key("${host}${host}"), "web-01web-01");
	assert_string_equal(render(ROUTE_KEY, "[${agent}]", NULL, NULL), "[]");
}

static void
test_fields_of_every_type_as_text(void **state)
{
	(void)state;
	assert_string_equal(key("${fields.user_id}"), "u-42");     /* the first of two */
	assert_string_equal(key("${fields.remote_user}"), "alice");
	assert_string_equal(key("${fields.status}"), "200");
	assert_string_equal(key("${fields.min}"), "-9223372036854775808");
	assert_string_equal(key("${fields.rt}"), "0.125");
	assert_string_equal(key("${fields.tenth}"), "0.1");
	assert_string_equal(key("${fields.big}"), "1e+21");
	assert_string_equal(key("${fields.nan}"), "nan");
	assert_string_equal(key("${fields.cached}"), "true");
	assert_string_equal(key("${fields.gzip}"), "false");
	assert_string_equal(key("${fields.tags}"), "[\"a\",1]");
	assert_string_equal(key("<${fields.referer}>"), "<>");
	assert_string_equal(key("<${fields.bad}>"), "<>");
	assert_string_equal(key("<${fields.missing}>"), "<>");
	assert_string_equal(key("<${fields.user}>"), "<>");          /* no prefix match */
}

static void
test_key_bytes_are_kept_as_they_are(void **state)
{
	static const uint8_t bin[] = { 'a', 0, 0xff, '/', ' ' };
	char out[16];
	struct route *rt;
	char why[64];
	size_t n;

	(void)state;
	assert_string_equal(key("${fields.tags} é/${host}"), "[\"a\",1] é/web-01");
	sample();
	fields[F_USER].v.text = (struct pbslice){ bin, sizeof(bin) };
	assert_int_equal(route_compile("${fields.user_id}", ROUTE_KEY, &rt, why, sizeof(why)), 0);
	assert_int_equal(route_render(rt, &ev, NULL, out, sizeof(out), &n), 0);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(out, bin, sizeof(bin));
	route_free(rt);
}

/* Topics are rendered as they are: never renamed, never cut, never replaced. */
static void
test_topics_render_unchanged_whatever_their_bytes(void **state)
{
	(void)state;
	assert_string_equal(topic("logs/${source}"), "logs//var/log/nginx/access.log");
	assert_string_equal(topic("a b\tc:d@e"), "a b\tc:d@e");
	assert_string_equal(topic("caf\xc3\xa9"), "caf\xc3\xa9");
	assert_string_equal(topic("${fields.big}"), "1e+21");
	assert_string_equal(topic("${fields.missing}"), "");
	assert_string_equal(topic("logs.${fields.missing}"), "logs.");
}

static void
assert_topic_refused(const char *name, size_t len, const char *why_expected)
{
	char why[256];

	assert_int_equal(route_topic_check(name, len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, why_expected);
}

static void
test_topic_check_refuses_what_kafka_refuses_and_says_why(void **state)
{
	char name[300], why[64];

	(void)state;
	assert_int_equal(route_topic_check("Az09._-", 7, why, sizeof(why)), 0);
	assert_int_equal(route_topic_check("...", 3, why, sizeof(why)), 0);
	assert_topic_refused("", 0, "topic is empty");
	assert_topic_refused(".", 1, "topic '.' is not a valid name");
	assert_topic_refused("..", 2, "topic '..' is not a valid name");
	assert_topic_refused("mobile.a/b", 10,
	    "topic 'mobile.a/b' has a byte outside [A-Za-z0-9._-]");
	assert_topic_refused("caf\xc3\xa9", 5,
	    "topic 'caf\\xc3\\xa9' has a byte outside [A-Za-z0-9._-]");
	assert_topic_refused("a\0b", 3, "topic 'a\\x00b' has a byte outside [A-Za-z0-9._-]");
	memset(name, 'x', sizeof(name));
	assert_int_equal(route_topic_check(name, ROUTE_TOPIC_MAX, why, sizeof(why)), 0);
	assert_int_equal(route_topic_check(name, ROUTE_TOPIC_MAX + 1, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "topic of 250 bytes or more is longer than Kafka's 249");
}

/* Every byte value, first, inside and last in a topic: taken exactly when it is one of [A-Za-z0-9._-]. */
static void
test_topic_check_takes_exactly_the_bytes_kafka_takes_anywhere(void **state)
{
	char name[3], why[80];

	(void)state;
	for (int c = 0; c < 256; c++) {
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

		for (int at = 0; at < 3; at++) {
			memset(name, 'k', sizeof(name));
			name[at] = (char)c;
			assert_int_equal(route_topic_check(name, sizeof(name), why, sizeof(why)),
			    ok ? 0 : -EINVAL);
			if (!ok)
				assert_non_null(strstr(why, "has a byte outside [A-Za-z0-9._-]"));
		}
	}
}

static void
test_topic_show_escapes_and_cuts(void **state)
{
	char out[16];

	(void)state;
	route_topic_show("a/b\n\xff", 5, out, sizeof(out));
	assert_string_equal(out, "a/b\\x0a\\xff");
	route_topic_show("0123456789abcdefghij", 20, out, sizeof(out));
	assert_string_equal(out, "0123456789abcde");
	/* An escape is never cut in half. */
	route_topic_show("0123456789abc\x01", 14, out, sizeof(out));
	assert_string_equal(out, "0123456789abc");
}

static void
test_missing_or_empty_values_render_their_default(void **state)
{
	(void)state;
	assert_string_equal(topic("ios.${fields.event_type:-unknown}"), "ios.unknown");
	assert_string_equal(topic("ios.${fields.user_id:-unknown}"), "ios.u-42");
	assert_string_equal(topic("${fields.referer:-none}"), "none");       /* null */
	assert_string_equal(topic("${fields.bad:-none}"), "none");           /* bad slice */
	assert_string_equal(topic("${fields.status:-0}"), "200");
	assert_string_equal(key("${agent:-anonymous}"), "agent-7");
	assert_string_equal(render(ROUTE_KEY, "${agent:-anonymous}", NULL, NULL), "anonymous");
	assert_string_equal(key("${host:-}x"), "web-01x");
	assert_string_equal(key("<${fields.missing:-}>"), "<>");
	assert_string_equal(key("${fields.missing:-a b/c:-d}"), "a b/c:-d");
	sample();
	ev.host = (struct pbslice){ NULL, 0 };
	{
		struct route *rt;
		char why[64], out[32];
		size_t n;

		assert_int_equal(route_compile("${host:-unknown}", ROUTE_KEY, &rt, why, sizeof(why)), 0);
		assert_int_equal(route_render(rt, &ev, NULL, out, sizeof(out), &n), 0);
		assert_string_equal(out, "unknown");
		route_free(rt);
	}
}

/* A topic longer than Kafka's limit renders whole (or -ENOBUFS), and the check refuses it. */
static void
test_long_topics_are_not_cut_but_refused(void **state)
{
	char stream[400], out[ROUTE_TOPIC_BUF], why[128];
	struct route *rt;
	size_t n;

	(void)state;
	sample();
	memset(stream, 'x', sizeof(stream));
	ev.stream = (struct pbslice){ (const uint8_t *)stream, sizeof(stream) };
	assert_int_equal(route_compile("logs.${stream}", ROUTE_TOPIC, &rt, why, sizeof(why)), 0);
	assert_int_equal(route_render(rt, &ev, NULL, out, sizeof(out), &n), -ENOBUFS);
	assert_int_equal(n, ROUTE_TOPIC_MAX + 1);
	assert_int_equal(route_topic_check(out, n, why, sizeof(why)), -EINVAL);
	route_free(rt);
}

static void
test_output_never_exceeds_the_buffer(void **state)
{
	char out[64];
	struct route *rt;
	char why[64];
	size_t n;

	(void)state;
	sample();
	assert_int_equal(route_compile("${source}|${host}", ROUTE_KEY, &rt, why, sizeof(why)), 0);
	for (size_t size = 1; size <= 40; size++) {
		memset(out, '#', sizeof(out));
		assert_int_equal(route_render(rt, &ev, NULL, out, size, &n),
		    size > 32 ? 0 : -ENOBUFS);
		assert_int_equal(n, size > 32 ? 32 : size - 1);
		assert_int_equal(out[n], '\0');
		assert_memory_equal(out, "/var/log/nginx/access.log|web-01", n);
		for (size_t i = size; i < sizeof(out); i++)
			assert_int_equal(out[i], '#');
	}
	route_free(rt);
	/* A number cut in the middle. */
	assert_int_equal(route_compile("${fields.min}", ROUTE_KEY, &rt, why, sizeof(why)), 0);
	assert_int_equal(route_render(rt, &ev, NULL, out, 5, &n), -ENOBUFS);
	assert_string_equal(out, "-922");
	route_free(rt);
}

/*
 * Literals and values of every length to 40 bytes, into buffers of every
 * size to 48: the first size - 1 bytes of the text, NUL-terminated, *len
 * their count, -ENOBUFS when cut, and no byte written past the buffer.
 */
static void
test_values_of_every_length_fill_buffers_of_every_size_exactly(void **state)
{
	char host[41], tmpl[64], want[128], out[64], why[64];
	struct route *rt;
	size_t n;

	(void)state;
	sample();
	for (size_t i = 0; i < sizeof(host); i++)
		host[i] = (char)('a' + i % 26);
	for (size_t hl = 0; hl <= 40; hl++) {
		size_t wl;

		ev.host = (struct pbslice){ (const uint8_t *)host, hl };
		/* A literal of hl % 17 bytes, the host, then a literal of 1 byte. */
		snprintf(tmpl, sizeof(tmpl), "%.*s${host}-", (int)(hl % 17), "0123456789abcdefg");
		wl = (size_t)snprintf(want, sizeof(want), "%.*s%.*s-", (int)(hl % 17),
		    "0123456789abcdefg", (int)hl, host);
		assert_int_equal(route_compile(tmpl, ROUTE_KEY, &rt, why, sizeof(why)), 0);
		for (size_t size = 1; size <= 48; size++) {
			size_t keep = wl < size - 1 ? wl : size - 1;

			memset(out, '#', sizeof(out));
			assert_int_equal(route_render(rt, &ev, NULL, out, size, &n),
			    wl <= size - 1 ? 0 : -ENOBUFS);
			assert_int_equal(n, keep);
			assert_memory_equal(out, want, keep);
			assert_int_equal(out[keep], '\0');
			for (size_t k = size; k < sizeof(out); k++)
				assert_int_equal(out[k], '#');
		}
		route_free(rt);
	}
}

static void
test_empty_key_template_means_no_key(void **state)
{
	struct route *rt;
	char why[64], out[8];
	size_t n = 99;

	(void)state;
	sample();
	assert_int_equal(route_compile("", ROUTE_KEY, &rt, why, sizeof(why)), 0);
	assert_true(route_is_empty(rt));
	assert_int_equal(route_render(rt, &ev, "a", out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	route_free(rt);
	assert_int_equal(route_compile("${host}", ROUTE_KEY, &rt, why, sizeof(why)), 0);
	assert_false(route_is_empty(rt));
	route_free(rt);
}

/* route_compile and --check (relay_config_check_template) agree, words included. */
static void
test_compile_agrees_with_the_config_check(void **state)
{
	static const char *const templates[] = {
		"logs.${stream}", "${host}", "${agent}", "${source}", "${fields.user_id}",
		"${fields.a.b}", "", "plain", "$", "$x", "${", "${stream", "${streem}",
		"${fields.}", "${fields}", "${}", "a$${host}", "${host}$", "${host}}",
		"${ host}", "{$host}", "${fields.x}${fields.y}", "${fields.x:-unknown}",
		"${host:-}", "${stream:-a.b}", "${fields.:-x}", "${streem:-x}", "${host:x}",
		"${host-x}", "${:-x}", "${fields.x:-a",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(templates) / sizeof(templates[0]); i++) {
		char why1[256] = "", why2[256] = "";
		struct route *rt = NULL;
		int r1 = relay_config_check_template(templates[i], why1, sizeof(why1));
		int r2 = route_compile(templates[i], ROUTE_TOPIC, &rt, why2, sizeof(why2));

		assert_int_equal(r1, r2);
		assert_string_equal(why1, why2);
		if (r2 == 0)
			route_free(rt);
		else
			assert_int_equal(r2, -EINVAL);
	}
}

/* ------------------------------------------------------------ route tables */

/* A configuration built by hand: routes, default and allowed_topics. */
static struct relay_config tcfg;
static struct relay_route troutes[4];
static struct relay_allowed_topics tallow[3];

static struct config_map_entry *
entries(size_t n, const char *const *kv)
{
	static struct config_map_entry e[64][4];
	static size_t next;
	struct config_map_entry *m = e[next++ % 64];

	for (size_t i = 0; i < n; i++)
		m[i] = (struct config_map_entry){ (char *)kv[2 * i], (char *)kv[2 * i + 1], 0 };
	return m;
}

#define MATCH(...) ((struct config_map){						\
		sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(char *) / 2,		\
		entries(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(char *) / 2,	\
		    (const char *const[]){ __VA_ARGS__ }) })
#define LIST(...) ((struct config_list){						\
		sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(char *),		\
		(void *)(const char *[]){ __VA_ARGS__ } })

static void
mobile_config(void)
{
	/* Static: a compound literal here would die with this call. */
	static const char *absent[] = { "fields.event_type" };

	memset(&tcfg, 0, sizeof(tcfg));
	memset(troutes, 0, sizeof(troutes));
	tcfg.kafka.topic = "logs.${stream}";
	tcfg.kafka.key = "${host}";
	/* One topic per event type, keyed by user; a field required by its absence. */
	troutes[0] = (struct relay_route){ .match = MATCH("stream", "mobile*",
	    "fields.event_type", "*"), .topic = "mobile.${fields.event_type}",
	    .key = "${fields.user_id:-none}" };
	troutes[1] = (struct relay_route){ .match = MATCH("stream", "mobile*"),
	    .absent = { 1, (void *)absent }, .topic = "mobile.${fields.event_type:-unknown}" };
	troutes[2] = (struct relay_route){ .match = MATCH("host", "db-*", "agent", "agent-?"),
	    .topic = "db" };
	tcfg.kafka.routes = (struct config_list){ 3, troutes };
}

static struct route_table *
table(void)
{
	struct route_table *t = NULL;
	char path[64], why[256];

	if (route_table_new(&tcfg, &t, path, sizeof(path), why, sizeof(why)) != 0)
		fail_msg("%s: %s", path, why);
	return t;
}

/* The topic and key t picks for the sample event as changed by the caller, and the route index. */
static size_t
pick(const struct route_table *t, const char *agent, char *tp, char *kp)
{
	const struct route *rt, *rk;
	size_t idx, n;

	route_table_pick(t, &ev, agent, &rt, &rk, &idx);
	assert_int_equal(route_render(rt, &ev, agent, tp, 256, &n), 0);
	assert_int_equal(route_render(rk, &ev, agent, kp, 256, &n), 0);
	return idx;
}

static void
test_first_route_whose_match_holds_is_used(void **state)
{
	struct route_table *t;
	char tp[256], kp[256];

	(void)state;
	mobile_config();
	t = table();
	assert_int_equal(route_table_routes(t), 3);
	sample();
	ev.stream = S("mobile.ios");
	fields[F_DUP] = (struct event_field){ .key = S("event_type"), .type = EVENT_TEXT,
		.v.text = S("click") };
	assert_int_equal(pick(t, "agent-7", tp, kp), 0);
	assert_string_equal(tp, "mobile.click");
	assert_string_equal(kp, "u-42");
	/* Without event_type: the second route, whose topic has a default. */
	fields[F_DUP].key = S("other");
	assert_int_equal(pick(t, "agent-7", tp, kp), 1);
	assert_string_equal(tp, "mobile.unknown");
	/* A route without key takes kafka.key. */
	assert_string_equal(kp, "web-01");
	/* Every condition of a match must hold. */
	ev.stream = S("db");
	ev.host = S("db-01");
	assert_int_equal(pick(t, "agent-7", tp, kp), 2);
	assert_string_equal(tp, "db");
	assert_int_equal(pick(t, "agent-77", tp, kp), 3);
	assert_string_equal(tp, "logs.db");
	assert_int_equal(pick(t, NULL, tp, kp), 3);
	route_table_free(t);
}

static void
test_no_route_means_kafka_topic_and_key(void **state)
{
	struct route_table *t;
	char tp[256], kp[256];

	(void)state;
	mobile_config();
	tcfg.kafka.routes.n = 0;
	t = table();
	sample();
	ev.stream = S("mobile.ios");
	assert_int_equal(pick(t, "agent-7", tp, kp), 0);
	assert_string_equal(tp, "logs.mobile.ios");
	assert_string_equal(kp, "web-01");
	assert_false(route_table_uses_fields(t));
	route_table_free(t);
	mobile_config();
	t = table();
	assert_true(route_table_uses_fields(t));
	route_table_free(t);
}

/* Fields of every type match as they render; a null or missing one matches no glob. */
static void
test_match_sees_fields_as_text_and_missing_ones_match_nothing(void **state)
{
	struct route_table *t;
	char tp[256], kp[256];

	(void)state;
	mobile_config();
	troutes[0] = (struct relay_route){ .match = MATCH("fields.status", "2??",
	    "fields.cached", "true", "fields.rt", "0.1*"), .topic = "ok" };
	troutes[1] = (struct relay_route){ .match = MATCH("fields.referer", "*"), .topic = "null" };
	troutes[2] = (struct relay_route){ .match = MATCH("fields.nothere", "*"), .topic = "missing" };
	t = table();
	sample();
	assert_int_equal(pick(t, "a", tp, kp), 0);
	fields[F_INT].v.integer = 500;
	assert_int_equal(pick(t, "a", tp, kp), 3);
	route_table_free(t);
	/* An empty value is matched as "". */
	troutes[0] = (struct relay_route){ .match = MATCH("source", ""), .topic = "nosource" };
	t = table();
	sample();
	ev.source = (struct pbslice){ NULL, 0 };
	assert_int_equal(pick(t, "a", tp, kp), 0);
	route_table_free(t);
}

static void
test_bad_routes_name_the_key_at_fault(void **state)
{
	static struct relay_route many[ROUTE_TABLE_MAX + 1];
	const struct {
		struct relay_route r;
		const char *path, *why;
	} bad[] = {
		{ { .match = MATCH("strem", "x"), .topic = "t" }, "kafka.routes[0].match.strem",
		  "unknown variable strem: use stream, host, agent, source or fields.NAME" },
		{ { .match = MATCH("fields.", "x"), .topic = "t" }, "kafka.routes[0].match.fields.",
		  "unknown variable fields.: use stream, host, agent, source or fields.NAME" },
		{ { .absent = LIST("host"), .topic = "t" }, "kafka.routes[0].absent",
		  "'host' is not a field: absent takes fields.NAME" },
		{ { .topic = "${x}" }, "kafka.routes[0].topic",
		  "unknown variable ${x}: use ${stream}, ${host}, ${agent}, ${source} or "
		  "${fields.NAME} (each may end in :-DEFAULT)" },
		{ { .topic = "t", .key = "${" }, "kafka.routes[0].key", "'${' is not closed with '}'" },
	};

	(void)state;
	mobile_config();
	for (size_t i = 0; i <= ROUTE_TABLE_MAX; i++)
		many[i] = troutes[2];
	tcfg.kafka.routes = (struct config_list){ ROUTE_TABLE_MAX, many };
	route_table_free(table());
	tcfg.kafka.routes.n++;
	{
		struct route_table *t = NULL;
		char path[64], why[256];

		assert_int_equal(route_table_new(&tcfg, &t, path, sizeof(path), why, sizeof(why)),
		    -EINVAL);
		assert_string_equal(path, "kafka.routes");
		assert_string_equal(why, "has 256 routes, more than 255: each event is matched "
		    "against them in order; route on fewer, broader globs");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct route_table *t = NULL;
		char path[64], why[256];

		mobile_config();
		troutes[0] = bad[i].r;
		tcfg.kafka.routes.n = 1;
		assert_int_equal(route_table_new(&tcfg, &t, path, sizeof(path), why, sizeof(why)),
		    -EINVAL);
		assert_null(t);
		assert_string_equal(path, bad[i].path);
		assert_string_equal(why, bad[i].why);
	}
}

static void
test_allowed_topics_bound_each_agent_and_spare_the_dead_letter_topic(void **state)
{
	struct route_table *t;

	(void)state;
	mobile_config();
	t = table();
	assert_false(route_table_restricted(t));
	assert_true(route_table_allowed(t, "x", "__consumer_offsets"));
	route_table_free(t);

	tallow[0] = (struct relay_allowed_topics){ .agents = "mobile-*",
	    .topics = LIST("mobile.*", "logs.mobile") };
	tallow[1] = (struct relay_allowed_topics){ .agents = "*", .topics = LIST("logs.*") };
	tcfg.kafka.allowed_topics = (struct config_list){ 2, tallow };
	tcfg.kafka.dead_letter_topic = "dead";
	t = table();
	assert_true(route_table_restricted(t));
	assert_true(route_table_allowed(t, "mobile-1", "mobile.click"));
	assert_true(route_table_allowed(t, "mobile-1", "logs.x"));       /* the "*" entry */
	assert_false(route_table_allowed(t, "web-1", "mobile.click"));
	assert_true(route_table_allowed(t, "web-1", "logs.web"));
	assert_false(route_table_allowed(t, "web-1", "__consumer_offsets"));
	assert_false(route_table_allowed(t, NULL, "mobile.click"));
	assert_true(route_table_allowed(t, "web-1", "dead"));
	assert_true(route_table_allowed(t, NULL, "dead"));
	route_table_free(t);
}

static void
test_picking_allocates_nothing(void **state)
{
#ifdef COUNT_ALLOCATIONS
	struct route_table *t;
	const struct route *rt, *rk;
	size_t idx;

	(void)state;
	mobile_config();
	t = table();
	sample();
	allocations = 0;
	counting = 1;
	for (int j = 0; j < 100; j++) {
		route_table_pick(t, &ev, "agent-7", &rt, &rk, &idx);
		(void)route_table_allowed(t, "agent-7", "mobile.click");
	}
	counting = 0;
	assert_int_equal(allocations, 0);
	route_table_free(t);
#else
	(void)state;
	skip();
#endif
}

static void
test_rendering_allocates_nothing(void **state)
{
#ifdef COUNT_ALLOCATIONS
	static const char *const templates[] = {
		"logs.${stream}.${host}/${agent}", "${fields.user_id}${fields.rt}${fields.tenth}",
		"${fields.min}${fields.nan}${fields.cached}${fields.tags}${fields.remote_user}",
		"${fields.missing}", "${source}",
	};
	char out[512];
	size_t n;

	(void)state;
	sample();
	for (size_t i = 0; i < sizeof(templates) / sizeof(templates[0]); i++) {
		struct route *t, *k;
		char why[64];

		assert_int_equal(route_compile(templates[i], ROUTE_TOPIC, &t, why, sizeof(why)), 0);
		assert_int_equal(route_compile(templates[i], ROUTE_KEY, &k, why, sizeof(why)), 0);
		allocations = 0;
		counting = 1;
		for (int j = 0; j < 100; j++) {
			route_render(t, &ev, "agent-7", out, sizeof(out), &n);
			route_render(k, &ev, "agent-7", out, sizeof(out), &n);
			route_render(k, &ev, "agent-7", out, 3, &n);
		}
		counting = 0;
		assert_int_equal(allocations, 0);
		route_free(t);
		route_free(k);
	}
	/* The counter does see allocations (volatile: the pair is not optimised away). */
	counting = 1;
	{
		void *volatile p = malloc(16);

		free(p);
	}
	counting = 0;
	assert_int_equal(allocations, 1);
#else
	(void)state;
	skip();
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literals_and_event_variables),
		cmocka_unit_test(test_fields_of_every_type_as_text),
		cmocka_unit_test(test_key_bytes_are_kept_as_they_are),
		cmocka_unit_test(test_topics_render_unchanged_whatever_their_bytes),
		cmocka_unit_test(test_topic_check_refuses_what_kafka_refuses_and_says_why),
		cmocka_unit_test(test_topic_check_takes_exactly_the_bytes_kafka_takes_anywhere),
		cmocka_unit_test(test_topic_show_escapes_and_cuts),
		cmocka_unit_test(test_missing_or_empty_values_render_their_default),
		cmocka_unit_test(test_long_topics_are_not_cut_but_refused),
		cmocka_unit_test(test_output_never_exceeds_the_buffer),
		cmocka_unit_test(test_values_of_every_length_fill_buffers_of_every_size_exactly),
		cmocka_unit_test(test_empty_key_template_means_no_key),
		cmocka_unit_test(test_compile_agrees_with_the_config_check),
		cmocka_unit_test(test_rendering_allocates_nothing),
		cmocka_unit_test(test_first_route_whose_match_holds_is_used),
		cmocka_unit_test(test_no_route_means_kafka_topic_and_key),
		cmocka_unit_test(test_match_sees_fields_as_text_and_missing_ones_match_nothing),
		cmocka_unit_test(test_bad_routes_name_the_key_at_fault),
		cmocka_unit_test(test_allowed_topics_bound_each_agent_and_spare_the_dead_letter_topic),
		cmocka_unit_test(test_picking_allocates_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
