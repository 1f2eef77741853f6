/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/multiline: lines gathered into events. */
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

#include "agent/multiline.h"

#define MS UINT64_C(1000000)
#define DATE "^[0-9]{4}-[0-9]{2}-[0-9]{2}"

struct fed {
	char events[8][1024];
	uint64_t ends[8];
	bool truncated[8];
	size_t n;
};

/* r and m for one pattern (start or continuation), events up to max_bytes. */
static void
make(struct multiline_rule *r, struct multiline *m, const char *start, const char *continuation,
    size_t max_bytes)
{
	char err[128];

	assert_int_equal(multiline_rule_init(r, start, continuation, err, sizeof(err)), 0);
	multiline_init(m, r, max_bytes);
}

static void
unmake(struct multiline_rule *r, struct multiline *m)
{
	multiline_free(m);
	multiline_rule_free(r);
}

static void
ship(struct multiline *m, struct fed *out)
{
	assert_true(out->n < 8);
	memcpy(out->events[out->n], m->buf, m->len);
	out->events[out->n][m->len] = '\0';
	out->ends[out->n] = m->end;
	out->truncated[out->n++] = m->truncated;
	multiline_clear(m);
}

/* Feeds lines as file_source does; what is pending at the end stays pending. */
static void
feed(struct multiline *m, const char *const *lines, struct fed *out)
{
	uint64_t end = 0;

	for (size_t i = 0; lines[i] != NULL; i++) {
		size_t len = strlen(lines[i]);

		end += len + 1;
		if (multiline_pending(m) && !multiline_continues(m, (const uint8_t *)lines[i], len))
			ship(m, out);
		assert_int_equal(multiline_add(m, (const uint8_t *)lines[i], len, false, i * MS, end), 0);
	}
}

static void
test_start_pattern_gathers_a_java_trace_until_the_next_timestamp(void **state)
{
	static const char *const lines[] = {
		"2026-12-07 01:02:03,456 ERROR [main] c.e.App - request failed",
		"java.lang.IllegalStateException: order 42 has no lines",
		"\tat com.example.Order.total(Order.java:88)",
		"\tat com.example.App.main(App.java:12)",
		"Caused by: java.lang.NullPointerException",
		"\tat com.example.Line.price(Line.java:31)",
		"\t... 12 more",
		"2026-12-07 01:02:04,001 INFO [main] c.e.App - next",
		NULL,
	};
	struct multiline_rule r;
	struct multiline m;
	struct fed out = { 0 };

	(void)state;
	make(&r, &m, DATE, NULL, 4096);
	feed(&m, lines, &out);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.events[0],
	    "2026-12-07 01:02:03,456 ERROR [main] c.e.App - request failed\n"
	    "java.lang.IllegalStateException: order 42 has no lines\n"
	    "\tat com.example.Order.total(Order.java:88)\n"
	    "\tat com.example.App.main(App.java:12)\n"
	    "Caused by: java.lang.NullPointerException\n"
	    "\tat com.example.Line.price(Line.java:31)\n"
	    "\t... 12 more");
	/* Its position is the one after its last line, not after the next start. */
	assert_int_equal(out.ends[0], strlen(out.events[0]) + 1);
	assert_true(multiline_pending(&m));
	assert_int_equal(m.lines, 1);
	unmake(&r, &m);
}

static void
test_continuation_pattern_appends_indented_lines_to_the_line_before(void **state)
{
	static const char *const lines[] = {
		"Traceback (most recent call last):",
		"  File \"app.py\", line 3, in <module>",
		"    main()",
		"ValueError: bad",
		"  during handling",
		NULL,
	};
	struct multiline_rule r;
	struct multiline m;
	struct fed out = { 0 };

	(void)state;
	make(&r, &m, NULL, "^[[:space:]]", 4096);
	feed(&m, lines, &out);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.events[0], "Traceback (most recent call last):\n"
	    "  File \"app.py\", line 3, in <module>\n    main()");
	assert_int_equal(m.lines, 2);
	assert_memory_equal(m.buf, "ValueError: bad\n  during handling", m.len);
	unmake(&r, &m);
}

static void
test_joined_lines_lose_their_carriage_return(void **state)
{
	struct multiline_rule r;
	struct multiline m;

	(void)state;
	make(&r, &m, NULL, "^ ", 4096);
	assert_int_equal(multiline_add(&m, (const uint8_t *)"a\r", 2, false, 0, 3), 0);
	assert_true(multiline_continues(&m, (const uint8_t *)" b\r", 3));
	assert_int_equal(multiline_add(&m, (const uint8_t *)" b\r", 3, false, 0, 7), 0);
	assert_int_equal(m.len, 4);
	assert_memory_equal(m.buf, "a\n b", 4);
	unmake(&r, &m);
}

static void
test_event_beyond_max_bytes_is_cut_marked_and_its_later_lines_dropped(void **state)
{
	struct multiline_rule r;
	struct multiline m;

	(void)state;
	make(&r, &m, NULL, "^\t", 10);
	assert_int_equal(multiline_add(&m, (const uint8_t *)"head", 4, false, 0, 5), 0);
	assert_int_equal(multiline_add(&m, (const uint8_t *)"\tat x.y", 7, false, 0, 13), 0);
	assert_true(m.truncated);
	assert_int_equal(m.len, 10);
	assert_memory_equal(m.buf, "head\n\tat x", 10);
	assert_true(multiline_continues(&m, (const uint8_t *)"\tat z", 5));
	assert_int_equal(multiline_add(&m, (const uint8_t *)"\tat z", 5, false, 0, 19), 0);
	assert_int_equal(m.len, 10);
	assert_int_equal(m.end, 19);
	assert_int_equal(m.lines, 3);
	multiline_clear(&m);
	assert_false(multiline_pending(&m));
	assert_false(m.truncated);
	unmake(&r, &m);
}

static void
test_pending_event_is_due_once_its_last_line_is_flush_timeout_old(void **state)
{
	struct multiline_rule r;
	struct multiline m;

	(void)state;
	make(&r, &m, DATE, NULL, 4096);
	assert_false(multiline_due(&m, 5000 * MS, 1000 * MS));
	assert_int_equal(multiline_add(&m, (const uint8_t *)"x", 1, false, 100 * MS, 2), 0);
	assert_int_equal(multiline_add(&m, (const uint8_t *)"y", 1, true, 900 * MS, 3), 0);
	assert_true(m.partial);
	assert_int_equal(m.first_ns, 100 * MS);
	assert_false(multiline_due(&m, 1899 * MS, 1000 * MS));
	assert_true(multiline_due(&m, 1900 * MS, 1000 * MS));
	unmake(&r, &m);
}

static void
test_rule_needs_exactly_one_pattern_that_compiles(void **state)
{
	struct multiline_rule r;
	char err[128];

	(void)state;
	assert_int_equal(multiline_rule_init(&r, "^a", "^b", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "start or continuation"));
	assert_int_equal(multiline_rule_init(&r, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "start or continuation"));
	assert_int_equal(multiline_rule_init(&r, "^[0-9", NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "^[0-9"));
}

static void
test_line_with_a_nul_byte_is_matched_whole(void **state)
{
	struct multiline_rule r;
	struct multiline m;

	(void)state;
	make(&r, &m, NULL, "x$", 4096);
	assert_int_equal(multiline_add(&m, (const uint8_t *)"a", 1, false, 0, 2), 0);
	assert_true(multiline_continues(&m, (const uint8_t *)"a\0x", 3));
	assert_false(multiline_continues(&m, (const uint8_t *)"x\0a", 3));
	unmake(&r, &m);
}

/*
 * A line that ends at the end of its buffer, with no NUL after it (a full
 * read buffer): matching reads nothing past it, in a sanitizer build too,
 * whose regexec interceptor reads to a NUL whatever REG_STARTEND says.
 */
static void
test_line_ending_at_its_buffer_end_is_matched_without_reading_past_it(void **state)
{
	struct multiline_rule r;
	struct multiline m;
	size_t n = 5000;
	uint8_t *line = malloc(n);

	(void)state;
	assert_non_null(line);
	memset(line, ' ', n);
	line[n - 1] = 'x';
	make(&r, &m, NULL, "^[[:space:]]", 4096);
	assert_int_equal(multiline_add(&m, (const uint8_t *)"a", 1, false, 0, 2), 0);
	assert_true(multiline_continues(&m, line, n));
	line[0] = 'y';
	assert_false(multiline_continues(&m, line, n));
	unmake(&r, &m);
	free(line);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_pattern_gathers_a_java_trace_until_the_next_timestamp),
		cmocka_unit_test(test_continuation_pattern_appends_indented_lines_to_the_line_before),
		cmocka_unit_test(test_joined_lines_lose_their_carriage_return),
		cmocka_unit_test(test_event_beyond_max_bytes_is_cut_marked_and_its_later_lines_dropped),
		cmocka_unit_test(test_pending_event_is_due_once_its_last_line_is_flush_timeout_old),
		cmocka_unit_test(test_rule_needs_exactly_one_pattern_that_compiles),
		cmocka_unit_test(test_line_with_a_nul_byte_is_matched_whole),
		cmocka_unit_test(test_line_ending_at_its_buffer_end_is_matched_without_reading_past_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
