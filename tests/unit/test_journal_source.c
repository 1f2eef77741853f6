/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/journal_source: a journal entry's fields into an event. */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_host_time_and_fields_lower_cased),
		cmocka_unit_test(test_binary_values_are_base64_and_marked),
		cmocka_unit_test(test_long_values_are_cut_at_a_character_and_marked_truncated),
		cmocka_unit_test(test_fields_past_the_bound_are_dropped_and_counted),
		cmocka_unit_test(test_large_fields_leave_room_for_the_message_wherever_it_comes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
