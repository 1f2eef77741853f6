/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/journal_source: a journal entry's fields into an event. */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/journal_source.h"

static void
add(struct journal_entry *e, const char *datum)
{
	assert_int_equal(journal_entry_add(e, datum, strlen(datum)), 0);
}

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
assert_text(const struct event *ev, const char *key, const char *want)
{
	const struct event_field *f = field(ev, key);

	assert_non_null(f);
	assert_int_equal(f->type, EVENT_TEXT);
	assert_int_equal(f->v.text.len, strlen(want));
	assert_memory_equal(f->v.text.ptr, want, strlen(want));
}

static void
assert_integer(const struct event *ev, const char *key, int64_t want)
{
	const struct event_field *f = field(ev, key);

	assert_non_null(f);
	assert_int_equal(f->type, EVENT_INTEGER);
	assert_int_equal(f->v.integer, want);
}

static void
test_message_host_time_and_fields_lower_cased(void **state)
{
	struct journal_entry e;
	struct event ev;

	(void)state;
	journal_entry_init(&e, 1024);
	add(&e, "_BOOT_ID=0123456789abcdef0123456789abcdef");
	add(&e, "MESSAGE=Started nginx.service.");
	add(&e, "PRIORITY=6");
	add(&e, "SYSLOG_IDENTIFIER=systemd");
	add(&e, "SYSLOG_FACILITY=3");
	add(&e, "_PID=1");
	add(&e, "_SYSTEMD_UNIT=init.scope");
	add(&e, "_HOSTNAME=web-02");
	add(&e, "_CMDLINE=/sbin/init");
	add(&e, "UNIT=nginx.service");
	add(&e, "NOEQUALS");
	journal_entry_event(&e, 1700000000123456000ull, "agent-host", "sys", "journal", &ev);
	assert_int_equal(ev.ts, 1700000000123456000ull);
	assert_int_equal(ev.message.len, strlen("Started nginx.service."));
	assert_memory_equal(ev.message.ptr, "Started nginx.service.", ev.message.len);
	assert_int_equal(ev.host.len, 6);
	assert_memory_equal(ev.host.ptr, "web-02", 6);
	assert_memory_equal(ev.stream.ptr, "sys", 3);
	assert_memory_equal(ev.source.ptr, "journal", 7);
	assert_integer(&ev, "priority", 6);
	assert_integer(&ev, "syslog_facility", 3);
	assert_integer(&ev, "_pid", 1);
	assert_text(&ev, "syslog_identifier", "systemd");
	assert_text(&ev, "_systemd_unit", "init.scope");
	assert_text(&ev, "unit", "nginx.service");
	/* Trusted fields other than _PID and _SYSTEMD_UNIT stay out; _HOSTNAME is the host. */
	assert_null(field(&ev, "_boot_id"));
	assert_null(field(&ev, "_cmdline"));
	assert_null(field(&ev, "_hostname"));
	assert_null(field(&ev, "message"));
	assert_int_equal(ev.nfields, 6);

	/* The next entry starts afresh; without _HOSTNAME the agent's host is the host. */
	journal_entry_reset(&e);
	add(&e, "MESSAGE=two");
	add(&e, "PRIORITY=high");
	journal_entry_event(&e, 1, "agent-host", "sys", "journal", &ev);
	assert_memory_equal(ev.host.ptr, "agent-host", 10);
	assert_text(&ev, "priority", "high");
	assert_int_equal(ev.nfields, 1);
	journal_entry_free(&e);
}

static void
test_binary_values_are_base64_and_marked(void **state)
{
	static const char bin[] = "DATA=\x01\x02\xff" "a";
	static const char badmsg[] = "MESSAGE=\x1b[31mred\x1b[0m";
	struct journal_entry e;
	struct event ev;
	const struct event_field *f;

	(void)state;
	journal_entry_init(&e, 1024);
	assert_int_equal(journal_entry_add(&e, bin, sizeof(bin) - 1), 0);
	add(&e, badmsg);
	add(&e, "TEXT=tab\tand\nnewline are text: é");
	/* The mark comes last, so that it stays if the fields must go (pipeline_emit). */
	assert_int_equal(journal_entry_event(&e, 1, "h", "s", "journal", &ev), 1);
	assert_memory_equal(ev.fields[ev.nfields - 1].key.ptr, "message_binary", 14);
	assert_text(&ev, "data", "AQL/YQ==");
	assert_non_null(f = field(&ev, "data_binary"));
	assert_int_equal(f->type, EVENT_BOOLEAN);
	assert_true(f->v.boolean);
	assert_int_equal(ev.message.len, strlen("G1szMW1yZWQbWzBt"));
	assert_memory_equal(ev.message.ptr, "G1szMW1yZWQbWzBt", ev.message.len);
	assert_non_null(f = field(&ev, "message_binary"));
	assert_true(f->v.boolean);
	assert_text(&ev, "text", "tab\tand\nnewline are text: é");
	assert_null(field(&ev, "text_binary"));
	assert_int_equal(e.binary, 2);
	journal_entry_free(&e);
}

static void
test_long_values_are_cut_at_a_character_and_marked_truncated(void **state)
{
	char datum[400];
	struct journal_entry e;
	struct event ev;
	const struct event_field *f;

	(void)state;
	journal_entry_init(&e, 256);
	/* 255 ASCII bytes then "é": the cut at 256 would split it. */
	strcpy(datum, "MESSAGE=");
	memset(datum + 8, 'a', 255);
	strcpy(datum + 8 + 255, "\xc3\xa9tail");
	add(&e, datum);
	journal_entry_event(&e, 1, "h", "s", "journal", &ev);
	assert_int_equal(ev.message.len, 255);
	assert_non_null(f = field(&ev, "truncated"));
	assert_true(f->v.boolean);
	assert_null(field(&ev, "message_binary"));
	journal_entry_free(&e);
}

static void
test_fields_past_the_bound_are_dropped_and_counted(void **state)
{
	struct journal_entry e;
	struct event ev;
	const struct event_field *f;
	char datum[32];

	(void)state;
	journal_entry_init(&e, 1024);
	add(&e, "MESSAGE=many");
	for (int i = 0; i < JOURNAL_MAX_FIELDS + 5; i++) {
		snprintf(datum, sizeof(datum), "F%d=%d", i, i);
		add(&e, datum);
	}
	journal_entry_event(&e, 1, "h", "s", "journal", &ev);
	assert_non_null(f = field(&ev, "fields_dropped"));
	assert_int_equal(f->type, EVENT_INTEGER);
	assert_int_equal(f->v.integer, 5);
	assert_text(&ev, "f0", "0");
	journal_entry_free(&e);
}

/* Large fields fill half the entry's bound, the same whether MESSAGE comes first or last. */
static void
test_large_fields_leave_room_for_the_message_wherever_it_comes(void **state)
{
	static char big[4200];
	struct journal_entry e;
	struct event ev;
	const struct event_field *f;
	int64_t dropped[2];

	(void)state;
	journal_entry_init(&e, 4096);
	for (int last = 0; last < 2; last++) {
		journal_entry_reset(&e);
		memset(big, 'm', sizeof(big) - 1);
		memcpy(big, "MESSAGE=", 8);
		if (!last)
			add(&e, big);
		for (int i = 0; i < 20; i++) {
			memset(big, 'v', sizeof(big) - 1);
			memcpy(big, "F00=", 4);
			big[1] = (char)('0' + i / 10);
			big[2] = (char)('0' + i % 10);
			add(&e, big);
		}
		if (last) {
			memset(big, 'm', sizeof(big) - 1);
			memcpy(big, "MESSAGE=", 8);
			add(&e, big);
		}
		journal_entry_event(&e, 1, "h", "s", "journal", &ev);
		assert_int_equal(ev.message.len, 4096);
		assert_non_null(f = field(&ev, "truncated"));
		assert_non_null(f = field(&ev, "fields_dropped"));
		dropped[last] = f->v.integer;
		assert_true(dropped[last] > 0 && dropped[last] < 20);
	}
	assert_int_equal(dropped[0], dropped[1]);
	journal_entry_free(&e);
}

/* ---------------------------------------------------------------- multiline */

/* An entry of app.service's stdout stream (or without _STREAM_ID when sid is NULL). */
static void
entry(struct journal_entry *e, const char *sid, const char *pid, const char *ident,
    const char *msg)
{
	char datum[512];

	journal_entry_reset(e);
	if (sid != NULL) {
		snprintf(datum, sizeof(datum), "_STREAM_ID=%s", sid);
		add(e, datum);
	}
	snprintf(datum, sizeof(datum), "_PID=%s", pid);
	add(e, datum);
	if (ident != NULL) {
		snprintf(datum, sizeof(datum), "SYSLOG_IDENTIFIER=%s", ident);
		add(e, datum);
	}
	add(e, "_COMM=java");
	add(e, "_SYSTEMD_UNIT=app.service");
	snprintf(datum, sizeof(datum), "MESSAGE=%s", msg);
	add(e, datum);
}

static void
test_same_stream_is_the_stream_id_else_the_pid_and_identifier(void **state)
{
	struct journal_entry a, b;

	(void)state;
	journal_entry_init(&a, 1024);
	journal_entry_init(&b, 1024);
	entry(&a, "5b1c", "7", "app", "x");
	entry(&b, "5b1c", "8", "other", "y");
	assert_true(journal_entry_same_stream(&a, &b));
	/* stdout and stderr of one process are two streams. */
	entry(&b, "9f00", "7", "app", "y");
	assert_false(journal_entry_same_stream(&a, &b));
	entry(&b, NULL, "7", "app", "y");
	assert_false(journal_entry_same_stream(&a, &b));
	/* Without _STREAM_ID (syslog(3), sd_journal_print): the process and its identifier. */
	entry(&a, NULL, "7", "app", "x");
	assert_true(journal_entry_same_stream(&a, &b));
	entry(&b, NULL, "8", "app", "y");
	assert_false(journal_entry_same_stream(&a, &b));
	entry(&b, NULL, "7", "cron", "y");
	assert_false(journal_entry_same_stream(&a, &b));
	/* No SYSLOG_IDENTIFIER: _COMM names the process (both "java" here). */
	entry(&a, NULL, "7", NULL, "x");
	entry(&b, NULL, "7", NULL, "y");
	assert_true(journal_entry_same_stream(&a, &b));
	journal_entry_free(&a);
	journal_entry_free(&b);
}

/* A journal source's gatherer: the rule, an entry being read, the pending event. */
struct ml_fixture {
	struct multiline_rule rule;
	struct journal_ml ml;
	struct journal_entry *e;
};

static void
ml_setup(struct ml_fixture *f, const char *start, const char *continuation, size_t max_bytes)
{
	char err[128];

	assert_int_equal(multiline_rule_init(&f->rule, start, continuation, err, sizeof(err)), 0);
	assert_int_equal(journal_ml_init(&f->ml, &f->rule, max_bytes, 1024), 0);
	assert_non_null(f->e = malloc(sizeof(*f->e)));
	journal_entry_init(f->e, 1024);
}

static void
ml_teardown(struct ml_fixture *f)
{
	journal_entry_free(f->e);
	free(f->e);
	journal_ml_free(&f->ml);
	multiline_rule_free(&f->rule);
}

/*
 * Reads one entry as the source does: ships the pending event first when
 * the entry does not continue it (returns 1 then, ev set), then adds it.
 */
static int
ml_read(struct ml_fixture *f, const char *sid, const char *msg, struct event *ev,
    char *shipped_cursor)
{
	entry(f->e, sid, "7", "app", msg);
	if (!journal_ml_pending(&f->ml) || journal_ml_continues(&f->ml, f->e))
		return 0;
	/* ev points into the pending event until the source clears it, once spooled. */
	journal_ml_event(&f->ml, "h", "s", "journal", ev);
	strcpy(shipped_cursor, journal_ml_cursor(&f->ml));
	return 1;
}

static void
assert_message(const struct event *ev, const char *want)
{
	assert_int_equal(ev->message.len, strlen(want));
	assert_memory_equal(ev->message.ptr, want, strlen(want));
}

static void
test_entries_of_one_stream_join_with_the_first_entry_fields_and_the_last_cursor(void **state)
{
	struct ml_fixture f;
	struct event ev;
	char cur[64];

	(void)state;
	ml_setup(&f, "^[0-9]{4}-", NULL, 4096);
	assert_false(journal_ml_pending(&f.ml));
	assert_int_equal(ml_read(&f, "s1", "2026-12-07 ERROR boom", &ev, cur), 0);
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 1000, "c1", 1), 0);
	assert_true(journal_ml_pending(&f.ml));
	assert_int_equal(ml_read(&f, "s1", "java.lang.IllegalStateException: no", &ev, cur), 0);
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 2000, "c2", 2), 0);
	assert_int_equal(ml_read(&f, "s1", "\tat a.B.c(B.java:1)", &ev, cur), 0);
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 3000, "c3", 3), 0);
	/* The next record: the event before is whole, with the last entry's cursor. */
	assert_int_equal(ml_read(&f, "s1", "2026-12-07 INFO next", &ev, cur), 1);
	assert_message(&ev, "2026-12-07 ERROR boom\njava.lang.IllegalStateException: no\n"
	    "\tat a.B.c(B.java:1)");
	assert_string_equal(cur, "c3");
	assert_int_equal(ev.ts, 1000);
	assert_int_equal(journal_ml_entries(&f.ml), 3);
	assert_text(&ev, "syslog_identifier", "app");
	assert_text(&ev, "_systemd_unit", "app.service");
	assert_integer(&ev, "_pid", 7);
	assert_null(field(&ev, "multiline_truncated"));
	assert_null(field(&ev, "truncated"));
	journal_ml_clear(&f.ml);
	assert_false(journal_ml_pending(&f.ml));
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 4000, "c4", 4), 0);
	/* A single entry pending goes as it is, message and fields alike. */
	journal_ml_event(&f.ml, "h", "s", "journal", &ev);
	assert_message(&ev, "2026-12-07 INFO next");
	assert_string_equal(journal_ml_cursor(&f.ml), "c4");
	assert_text(&ev, "syslog_identifier", "app");
	ml_teardown(&f);
}

static void
test_an_entry_of_another_stream_does_not_continue_the_event(void **state)
{
	struct ml_fixture f;
	struct event ev;
	char cur[64];

	(void)state;
	ml_setup(&f, NULL, "^[[:space:]]", 4096);
	ml_read(&f, "s1", "Exception in thread \"main\" java.lang.Error", &ev, cur);
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 1, "c1", 1), 0);
	/* Indented, so the rule would continue it: but another unit's. */
	assert_int_equal(ml_read(&f, "s2", "\tindented cron output", &ev, cur), 1);
	assert_message(&ev, "Exception in thread \"main\" java.lang.Error");
	assert_string_equal(cur, "c1");
	journal_ml_clear(&f.ml);
	ml_teardown(&f);
}

static void
test_a_joined_event_beyond_max_bytes_is_cut_and_marked_multiline_truncated(void **state)
{
	struct ml_fixture f;
	struct event ev;
	char cur[64], line[200];
	size_t nmarks;
	const struct event_field *fl;

	(void)state;
	ml_setup(&f, NULL, "^[[:space:]]", 256);
	memset(line, 'x', sizeof(line) - 1);
	line[0] = ' ';
	line[sizeof(line) - 1] = '\0';
	ml_read(&f, "s1", "head", &ev, cur);
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 1, "c1", 1), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ml_read(&f, "s1", line, &ev, cur), 0);
		assert_int_equal(journal_ml_add(&f.ml, &f.e, 2, i == 2 ? "c4" : "c", 2), 0);
	}
	nmarks = journal_ml_event(&f.ml, "h", "s", "journal", &ev);
	assert_int_equal(ev.message.len, 256);
	assert_non_null(fl = field(&ev, "multiline_truncated"));
	assert_true(fl->v.boolean);
	/* The mark is last among the marks, which stay if the fields must go. */
	assert_int_equal(nmarks, 1);
	assert_memory_equal(ev.fields[ev.nfields - 1].key.ptr, "multiline_truncated", 19);
	/* The entries cut away count: the cursor is the last one's. */
	assert_string_equal(journal_ml_cursor(&f.ml), "c4");
	assert_int_equal(journal_ml_entries(&f.ml), 4);
	ml_teardown(&f);
}

static void
test_a_binary_message_or_none_is_never_joined(void **state)
{
	static const char bin[] = "MESSAGE=\tat \x1b[31mred";
	struct ml_fixture f;

	(void)state;
	ml_setup(&f, NULL, "^[[:space:]]", 4096);
	entry(f.e, "s1", "7", "app", "Exception");
	assert_true(journal_ml_joins(f.e));
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 1, "c1", 1), 0);
	entry(f.e, "s1", "7", "app", "x");
	assert_int_equal(journal_entry_add(f.e, bin, sizeof(bin) - 1), 0);
	assert_false(journal_ml_joins(f.e));
	assert_false(journal_ml_continues(&f.ml, f.e));
	journal_entry_reset(f.e);
	add(f.e, "_STREAM_ID=s1");
	assert_false(journal_ml_joins(f.e));
	ml_teardown(&f);
}

/* An entry of an empty MESSAGE alone has nothing in its buffer: it is gathered all the same. */
static void
test_entries_of_empty_messages_are_gathered(void **state)
{
	struct ml_fixture f;
	struct event ev;

	(void)state;
	ml_setup(&f, NULL, "^$", 4096);
	journal_entry_reset(f.e);
	add(f.e, "MESSAGE=");
	assert_true(journal_ml_joins(f.e));
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 1, "c1", 1), 0);
	journal_ml_event(&f.ml, "h", "s", "journal", &ev);
	assert_int_equal(ev.message.len, 0);
	journal_entry_reset(f.e);
	add(f.e, "MESSAGE=");
	assert_true(journal_ml_continues(&f.ml, f.e));
	assert_int_equal(journal_ml_add(&f.ml, &f.e, 2, "c2", 2), 0);
	journal_ml_event(&f.ml, "h", "s", "journal", &ev);
	assert_message(&ev, "\n");
	ml_teardown(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_host_time_and_fields_lower_cased),
		cmocka_unit_test(test_binary_values_are_base64_and_marked),
		cmocka_unit_test(test_long_values_are_cut_at_a_character_and_marked_truncated),
		cmocka_unit_test(test_fields_past_the_bound_are_dropped_and_counted),
		cmocka_unit_test(test_large_fields_leave_room_for_the_message_wherever_it_comes),
		cmocka_unit_test(test_same_stream_is_the_stream_id_else_the_pid_and_identifier),
		cmocka_unit_test(test_entries_of_one_stream_join_with_the_first_entry_fields_and_the_last_cursor),
		cmocka_unit_test(test_an_entry_of_another_stream_does_not_continue_the_event),
		cmocka_unit_test(test_a_joined_event_beyond_max_bytes_is_cut_and_marked_multiline_truncated),
		cmocka_unit_test(test_a_binary_message_or_none_is_never_joined),
		cmocka_unit_test(test_entries_of_empty_messages_are_gathered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
