/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/source: a line of any format becomes an event. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/source.h"
#include "proto/event_dict.h"

#define NOW UINT64_C(1795341600000000000)

static const struct event_field *
field(const struct event *ev, const char *key)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].key.len == strlen(key) &&
		    memcmp(ev->fields[i].key.ptr, key, strlen(key)) == 0)
			return &ev->fields[i];
	return NULL;
}

static void
make(struct source_line *sl, const char *format)
{
	struct agent_source cfg = { .name = "web" };
	const struct parser_type *p = parser_type_named(format);

	assert_non_null(p);
	assert_int_equal(source_line_init(sl, &cfg, p, "host-a", 4096), 0);
}

static void
test_parsed_line_takes_its_time_and_fields(void **state)
{
	static const char line[] = "203.0.113.9 - - [22/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" "
	    "200 612 \"-\" \"curl/8.0\"\r";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	source_line_event(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, "/var/log/a", &ev);
	assert_int_equal(ev.ts, NOW + UINT64_C(1000000000));
	assert_int_equal(ev.message.len, sizeof(line) - 2);   /* without the CR */
	assert_memory_equal(ev.stream.ptr, "web", 3);
	assert_memory_equal(ev.host.ptr, "host-a", 6);
	assert_memory_equal(ev.source.ptr, "/var/log/a", 10);
	assert_non_null(field(&ev, "status"));
	assert_null(field(&ev, "parse_error"));
	source_line_free(&sl);
}

static void
test_line_that_does_not_parse_keeps_its_message_and_a_parse_error(void **state)
{
	static const char line[] = "garbage \0 with a NUL and \xff\xfe bytes";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	source_line_event(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, "/var/log/a", &ev);
	assert_int_equal(ev.ts, NOW);
	assert_int_equal(ev.message.len, sizeof(line) - 1);
	assert_memory_equal(ev.message.ptr, line, sizeof(line) - 1);
	assert_int_equal(ev.nfields, 1);
	assert_non_null(field(&ev, "parse_error"));
	assert_int_equal(field(&ev, "parse_error")->type, EVENT_TEXT);
	assert_int_equal(sl.parse_errors, 1);
	source_line_free(&sl);
}

static void
test_syslog_line_with_a_bad_header_keeps_its_priority_and_a_parse_error(void **state)
{
	static const char line[] = "<13>1 2026-11-25 01:20:31Z h a - - - m";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "syslog");
	source_line_event(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, "/var/log/a", &ev);
	assert_int_equal(ev.ts, NOW);
	assert_int_equal(field(&ev, "facility")->v.integer, 1);
	assert_int_equal(field(&ev, "severity")->v.integer, 5);
	assert_non_null(field(&ev, "message"));
	assert_non_null(field(&ev, "parse_error"));
	assert_int_equal(sl.parse_errors, 1);
	source_line_free(&sl);
}

static void
test_split_piece_carries_id_index_and_count_and_is_not_parsed(void **state)
{
	static const char piece[] = "{\"a\":1, \"cut here";
	const struct source_piece pc = { .id = "801:2a:00000000deadbeef:4096", .index = 1,
	    .count = 3 };
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "json");
	source_line_piece(&sl, (const uint8_t *)piece, sizeof(piece) - 1, &pc, 0, NOW, "f", &ev);
	assert_int_equal(ev.message.len, sizeof(piece) - 1);
	assert_int_equal(ev.nfields, 4);
	assert_true(field(&ev, "split")->v.boolean);
	assert_int_equal(field(&ev, "split_id")->type, EVENT_TEXT);
	assert_int_equal(field(&ev, "split_id")->v.text.len, strlen(pc.id));
	assert_memory_equal(field(&ev, "split_id")->v.text.ptr, pc.id, strlen(pc.id));
	assert_int_equal(field(&ev, "split_index")->type, EVENT_INTEGER);
	assert_int_equal(field(&ev, "split_index")->v.integer, 1);
	assert_int_equal(field(&ev, "split_count")->type, EVENT_INTEGER);
	assert_int_equal(field(&ev, "split_count")->v.integer, 3);
	assert_null(field(&ev, "parse_error"));
	assert_null(field(&ev, "a"));
	source_line_free(&sl);
}

static void
test_last_piece_keeps_its_cr_and_a_flushed_one_is_also_partial(void **state)
{
	static const char piece[] = "end of it\r";
	const struct source_piece pc = { .id = "x", .index = 2, .count = 3 };
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "raw");
	source_line_piece(&sl, (const uint8_t *)piece, sizeof(piece) - 1, &pc, SOURCE_PARTIAL, NOW,
	    "f", &ev);
	/* Pieces put back together are the line: nothing is taken out of one. */
	assert_int_equal(ev.message.len, sizeof(piece) - 1);
	assert_int_equal(ev.nfields, 5);
	assert_true(field(&ev, "partial")->v.boolean);
	assert_int_equal(field(&ev, "split_index")->v.integer, 2);
	source_line_free(&sl);
}

static void
test_multiline_event_cut_at_max_bytes_is_marked_after_its_parse_error(void **state)
{
	static const char msg[] = "not json\n\tat x";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "json");
	source_line_event(&sl, (const uint8_t *)msg, sizeof(msg) - 1,
	    SOURCE_PARTIAL | SOURCE_MULTILINE_TRUNCATED, NOW, "f", &ev);
	assert_int_equal(ev.nfields, 3);
	assert_non_null(field(&ev, "parse_error"));
	assert_true(field(&ev, "partial")->v.boolean);
	assert_int_equal(field(&ev, "multiline_truncated")->type, EVENT_BOOLEAN);
	assert_true(field(&ev, "multiline_truncated")->v.boolean);
	assert_int_equal(ev.message.len, sizeof(msg) - 1);
	source_line_free(&sl);
}

static void
test_partial_line_is_parsed_and_marked(void **state)
{
	static const char line[] = "{\"user\":\"bob\",\"ts\":1795341600.5}";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "json");
	source_line_event(&sl, (const uint8_t *)line, sizeof(line) - 1, SOURCE_PARTIAL, NOW, "f", &ev);
	assert_true(field(&ev, "partial")->v.boolean);
	assert_non_null(field(&ev, "user"));
	assert_int_equal(ev.ts, NOW + UINT64_C(500000000));
	source_line_free(&sl);
}

/*
 * One source, line after line: each event has the fields of its own line,
 * whatever the line before had (parsed, partial, not parsed).
 */
static void
test_each_line_gets_only_its_own_fields_whatever_came_before(void **state)
{
	static const char good[] = "203.0.113.9 - - [22/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" "
	    "200 612 \"-\" \"curl/8.0\"";
	static const char bad[] = "not a line of nginx";
	static const struct { const char *line; unsigned marks; size_t nfields; bool partial, error; }
	    seq[] = {
		{ good, 0, 9, false, false }, { good, SOURCE_PARTIAL, 10, true, false },
		{ good, 0, 9, false, false }, { bad, 0, 1, false, true },
		{ good, 0, 9, false, false }, { bad, SOURCE_PARTIAL, 2, true, true },
		{ good, 0, 9, false, false },
	};
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		source_line_event(&sl, (const uint8_t *)seq[i].line, strlen(seq[i].line), seq[i].marks,
		    NOW, "/var/log/a", &ev);
		assert_int_equal(ev.nfields, seq[i].nfields);
		assert_int_equal(field(&ev, "partial") != NULL, seq[i].partial);
		assert_int_equal(field(&ev, "parse_error") != NULL, seq[i].error);
		assert_int_equal(field(&ev, "status") != NULL, !seq[i].error);
		assert_int_equal(ev.ts, seq[i].error ? NOW : NOW + UINT64_C(1000000000));
	}
	assert_int_equal(sl.parse_errors, 2);
	source_line_free(&sl);
}

/* A field added behind a parsed line's (syslog's `truncated`) keeps them all, for that event only. */
static void
test_a_field_added_after_a_parsed_line_keeps_its_fields_for_that_event_only(void **state)
{
	static const char good[] = "203.0.113.9 - - [22/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" "
	    "200 612 \"-\" \"curl/8.0\"";
	struct event_field *f;
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	source_line_event(&sl, (const uint8_t *)good, strlen(good), 0, NOW, "/var/log/a", &ev);
	assert_non_null(f = source_line_add_field(&sl, &ev));
	f->key.ptr = (const uint8_t *)"truncated";
	f->key.len = 9;
	f->type = EVENT_BOOLEAN;
	f->v.boolean = true;
	assert_int_equal(ev.nfields, 10);
	assert_int_equal(field(&ev, "status")->v.integer, 200);
	assert_non_null(field(&ev, "remote_addr"));
	assert_true(field(&ev, "truncated")->v.boolean);
	source_line_event(&sl, (const uint8_t *)good, strlen(good), 0, NOW, "/var/log/a", &ev);
	assert_int_equal(ev.nfields, 9);
	assert_null(field(&ev, "truncated"));
	source_line_free(&sl);
}

static void
test_raw_format_has_no_fields_and_syslog_names_the_host(void **state)
{
	static const char raw[] = "anything at all";
	static const char sys[] = "<34>1 2026-11-22T10:00:00Z mail-7 su - ID47 - hello";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "raw");
	source_line_event(&sl, (const uint8_t *)raw, sizeof(raw) - 1, 0, NOW, "f", &ev);
	assert_int_equal(ev.nfields, 0);
	assert_int_equal(ev.ts, NOW);
	source_line_free(&sl);
	make(&sl, "syslog");
	source_line_event(&sl, (const uint8_t *)sys, sizeof(sys) - 1, 0, NOW, "f", &ev);
	assert_int_equal(ev.host.len, 6);
	assert_memory_equal(ev.host.ptr, "mail-7", 6);
	source_line_free(&sl);
}

static void
test_the_formats_are_the_configuration_names_in_table_order(void **state)
{
	size_t n = 0;

	(void)state;
	for (; parser_names[n] != NULL; n++) {
		assert_true(n < parser_types_n);
		assert_string_equal(parser_types[n]->name, parser_names[n]);
		assert_ptr_equal(parser_type_named(parser_names[n]), parser_types[n]);
	}
	assert_int_equal(n, parser_types_n);
	assert_ptr_equal(parser_type_named("syslog"), &parser_syslog);
	assert_null(parser_type_named("apache"));
}

static int
refuse_compile(const struct parser_config *cfg, void **state, char *err, size_t errlen)
{
	(void)cfg;
	*state = NULL;
	snprintf(err, errlen, "unknown variable $nope");
	return -EINVAL;
}

static int compiled_frees;

static int
count_compile(const struct parser_config *cfg, void **state, char *err, size_t errlen)
{
	(void)cfg;
	(void)err;
	(void)errlen;
	*state = &compiled_frees;
	return 0;
}

static int
count_parse(void *state, const uint8_t *line, size_t len, uint64_t now_ns, struct parsed *out)
{
	(void)line;
	(void)now_ns;
	parser_reset(out);
	out->fields[0].key = (struct pbslice){ (const uint8_t *)"len", 3 };
	out->fields[0].type = EVENT_INTEGER;
	out->fields[0].v.integer = (int64_t)len + (state == &compiled_frees ? 1000 : 0);
	out->nfields = 1;
	return 0;
}

static void
count_free(void *state)
{
	if (state == &compiled_frees)
		compiled_frees++;
}

static void
test_a_format_is_compiled_once_per_source_parses_with_its_state_and_is_freed(void **state)
{
	static const struct parser_type counting = { "counting", count_compile, count_parse,
	    count_free, NULL };
	static const struct parser_type refusing = { "refusing", refuse_compile, count_parse,
	    count_free, NULL };
	struct agent_source cfg = { .name = "web" };
	struct source_line sl;
	struct event ev;

	(void)state;
	assert_int_equal(source_line_init(&sl, &cfg, &refusing, "host-a", 4096), -EINVAL);
	assert_int_equal(source_line_init(&sl, &cfg, &counting, "host-a", 4096), 0);
	source_line_event(&sl, (const uint8_t *)"abc", 3, 0, NOW, "f", &ev);
	assert_int_equal(ev.nfields, 1);
	assert_int_equal(ev.fields[0].v.integer, 1003);
	source_line_free(&sl);
	assert_int_equal(compiled_frees, 1);
}

/*
 * A JSON line's names are slices of the line, whose buffer the next line
 * reuses: the same pointer and length then hold another name, which the
 * dictionary must see (it skips its comparison for static keys alone).
 */
static void
test_json_names_in_a_reused_line_buffer_each_read_back_as_written(void **state)
{
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used used;
	struct source_line sl;
	struct event ev, got;
	struct event_field gf[8];
	struct event_reader r;
	struct buf events, all;
	char line[64];
	char want[16];

	(void)state;
	assert_non_null(d);
	memset(&used, 0, sizeof(used));
	buf_init(&events, 1 << 20);
	buf_init(&all, 1 << 20);
	make(&sl, "json");
	for (int i = 0; i < 4; i++) {
		int n = snprintf(line, sizeof(line), "{\"k%d\":%d}", i, i);

		source_line_event(&sl, (const uint8_t *)line, (size_t)n, 0, NOW, "http", &ev);
		assert_false(ev.static_keys);
		assert_int_equal(ev.nfields, 1);
		assert_int_equal(event_dict_encode(d, &ev, &used, &events), 0);
	}
	assert_int_equal(event_dict_write(d, &used, &all), 0);
	assert_int_equal(buf_append(&all, events.data, events.len), 0);
	event_reader_init(&r, all.data, all.len, gf, 8);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(event_reader_next(&r, &got), 1);
		assert_int_equal(got.nfields, 1);
		snprintf(want, sizeof(want), "k%d", i);
		assert_int_equal(gf[0].key.len, 2);
		assert_memory_equal(gf[0].key.ptr, want, 2);
	}
	buf_free(&all);
	buf_free(&events);
	event_dict_free(d);
	source_line_free(&sl);
}

/*
 * NGINX's names are string literals: its events say so, and a failed
 * line's too. An event of the parser's fields alone carries their key set;
 * one with a mark added (partial), a failed line's and a syslog event's
 * have none, as their lists are not the parser's.
 */
static void
test_nginx_events_have_static_keys_and_key_sets_and_syslog_events_do_not(void **state)
{
	static const char ok[] = "203.0.113.9 - - [22/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" "
	    "200 612 \"-\" \"curl/8.0\"";
	static const char sd[] = "<165>1 2026-11-22T10:00:01Z h app - - [x@1 k=\"v\"] m";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	source_line_event(&sl, (const uint8_t *)ok, sizeof(ok) - 1, SOURCE_PARTIAL, NOW, "a", &ev);
	assert_true(ev.static_keys);
	assert_null(ev.key_set);
	source_line_event(&sl, (const uint8_t *)ok, sizeof(ok) - 1, 0, NOW, "a", &ev);
	assert_true(ev.static_keys);
	assert_non_null(ev.key_set);
	assert_ptr_equal(ev.key_set, sl.parsed.key_set);
	source_line_event(&sl, (const uint8_t *)"x", 1, 0, NOW, "a", &ev);
	assert_non_null(field(&ev, "parse_error"));
	assert_null(ev.key_set);
	source_line_free(&sl);
	make(&sl, "syslog");
	source_line_event(&sl, (const uint8_t *)sd, sizeof(sd) - 1, 0, NOW, "a", &ev);
	assert_null(field(&ev, "parse_error"));
	assert_false(ev.static_keys);
	assert_null(ev.key_set);
	source_line_free(&sl);
}

/* A caller that knows its source's length (a file's path) gives it: it is not measured. */
static void
test_a_source_given_with_its_length_is_taken_as_given(void **state)
{
	static const char line[] = "203.0.113.9 - - [22/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" "
	    "200 612 \"-\" \"curl/8.0\"";
	static const char src[] = "/var/log/a.log";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	source_line_event_n(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, src, 10, 0, &ev);
	assert_ptr_equal(ev.source.ptr, src);
	assert_int_equal(ev.source.len, 10);
	assert_non_null(field(&ev, "status"));
	source_line_event(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, src, &ev);
	assert_int_equal(ev.source.len, 14);
	source_line_free(&sl);
}

/*
 * The caller's origin_gen stands for the source's host and stream and its
 * source: kept on the event, unless the line named another host (its bytes
 * are the line's, at an address other lines reuse).
 */
static void
test_an_origin_gen_is_kept_unless_the_line_names_the_host(void **state)
{
	static const char line[] = "203.0.113.9 - - [22/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" "
	    "200 612 \"-\" \"curl/8.0\"";
	static const char sys[] = "<34>1 2026-11-22T10:00:00Z mail-7 su - ID47 - hello";
	static const char src[] = "/var/log/a.log";
	struct source_line sl;
	struct event ev;

	(void)state;
	make(&sl, "nginx_combined");
	source_line_event_n(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, src, 14, 7, &ev);
	assert_int_equal(ev.origin_gen, 7);
	/* Not parsed: the host is still the source's. */
	source_line_event_n(&sl, (const uint8_t *)"x", 1, SOURCE_PARTIAL, NOW, src, 14, 8, &ev);
	assert_non_null(field(&ev, "parse_error"));
	assert_int_equal(ev.origin_gen, 8);
	source_line_event(&sl, (const uint8_t *)line, sizeof(line) - 1, 0, NOW, src, &ev);
	assert_int_equal(ev.origin_gen, 0);
	source_line_free(&sl);
	make(&sl, "syslog");
	source_line_event_n(&sl, (const uint8_t *)sys, sizeof(sys) - 1, 0, NOW, src, 14, 9, &ev);
	assert_memory_equal(ev.host.ptr, "mail-7", 6);
	assert_int_equal(ev.origin_gen, 0);
	source_line_free(&sl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_source_given_with_its_length_is_taken_as_given),
		cmocka_unit_test(test_an_origin_gen_is_kept_unless_the_line_names_the_host),
		cmocka_unit_test(test_json_names_in_a_reused_line_buffer_each_read_back_as_written),
		cmocka_unit_test(test_nginx_events_have_static_keys_and_key_sets_and_syslog_events_do_not),
		cmocka_unit_test(test_parsed_line_takes_its_time_and_fields),
		cmocka_unit_test(test_line_that_does_not_parse_keeps_its_message_and_a_parse_error),
		cmocka_unit_test(test_syslog_line_with_a_bad_header_keeps_its_priority_and_a_parse_error),
		cmocka_unit_test(test_split_piece_carries_id_index_and_count_and_is_not_parsed),
		cmocka_unit_test(test_last_piece_keeps_its_cr_and_a_flushed_one_is_also_partial),
		cmocka_unit_test(test_partial_line_is_parsed_and_marked),
		cmocka_unit_test(test_each_line_gets_only_its_own_fields_whatever_came_before),
		cmocka_unit_test(test_a_field_added_after_a_parsed_line_keeps_its_fields_for_that_event_only),
		cmocka_unit_test(test_multiline_event_cut_at_max_bytes_is_marked_after_its_parse_error),
		cmocka_unit_test(test_raw_format_has_no_fields_and_syslog_names_the_host),
		cmocka_unit_test(test_the_formats_are_the_configuration_names_in_table_order),
		cmocka_unit_test(test_a_format_is_compiled_once_per_source_parses_with_its_state_and_is_freed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
