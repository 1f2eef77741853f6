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

static void
test_topic_characters_kafka_refuses_become_underscores(void **state)
{
	(void)state;
	assert_string_equal(topic("logs/${source}"), "logs__var_log_nginx_access.log");
	assert_string_equal(topic("${fields.tags}"), "__a__1_");
	assert_string_equal(topic("a b\tc:d@e"), "a_b_c_d_e");
	/* Each byte of a UTF-8 character: é is two. */
	assert_string_equal(topic("caf\xc3\xa9"), "caf__");
	assert_string_equal(topic("Az09._-"), "Az09._-");
	assert_string_equal(topic("${fields.rt}"), "0.125");
	assert_string_equal(topic("${fields.big}"), "1e_21");
}

static void
test_empty_and_dot_topics_go_to_the_fallback(void **state)
{
	(void)state;
	assert_string_equal(topic("${fields.missing}"), ROUTE_UNROUTED_TOPIC);
	assert_string_equal(topic("${fields.referer}"), ROUTE_UNROUTED_TOPIC);
	assert_string_equal(topic("."), ROUTE_UNROUTED_TOPIC);
	assert_string_equal(topic(".${fields.missing}."), ROUTE_UNROUTED_TOPIC);
	assert_string_equal(topic("..."), "...");
	assert_string_equal(topic("logs.${fields.missing}"), "logs.");
	sample();
	/* An event without a stream, under the default template's shape. */
	assert_string_equal(render(ROUTE_TOPIC, "${agent}", NULL, NULL), ROUTE_UNROUTED_TOPIC);
}

static void
test_long_topics_are_cut_at_kafkas_limit(void **state)
{
	char stream[400], out[512];
	struct route *rt;
	char why[64];
	size_t n;

	(void)state;
	sample();
	memset(stream, 'x', sizeof(stream));
	ev.stream = (struct pbslice){ (const uint8_t *)stream, sizeof(stream) };
	assert_int_equal(route_compile("logs.${stream}", ROUTE_TOPIC, &rt, why, sizeof(why)), 0);
	assert_int_equal(route_render(rt, &ev, NULL, out, sizeof(out), &n), 0);
	assert_int_equal(n, ROUTE_TOPIC_MAX);
	assert_int_equal(strlen(out), ROUTE_TOPIC_MAX);
	assert_memory_equal(out, "logs.xxx", 8);
	/* A buffer smaller than Kafka's limit is the caller's: -ENOBUFS, cut, terminated. */
	assert_int_equal(route_render(rt, &ev, NULL, out, 10, &n), -ENOBUFS);
	assert_int_equal(n, 9);
	assert_string_equal(out, "logs.xxxx");
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
		"${ host}", "{$host}", "${fields.x}${fields.y}",
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
		cmocka_unit_test(test_topic_characters_kafka_refuses_become_underscores),
		cmocka_unit_test(test_empty_and_dot_topics_go_to_the_fallback),
		cmocka_unit_test(test_long_topics_are_cut_at_kafkas_limit),
		cmocka_unit_test(test_output_never_exceeds_the_buffer),
		cmocka_unit_test(test_empty_key_template_means_no_key),
		cmocka_unit_test(test_compile_agrees_with_the_config_check),
		cmocka_unit_test(test_rendering_allocates_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
