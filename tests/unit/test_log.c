/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
/* 2026-11-25T01:20:31Z, from `date -u -d 2026-11-25T01:20:31Z +%s`. */
#define FAKE_EPOCH_S UINT64_C(1795569631)
#define FAKE_STAMP "2026-11-25T01:20:31.123Z"

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static FILE *cap_file;
static char *cap_buf;
static size_t cap_len;

static int setup(void **state)
{
	(void)state;
	cap_buf = NULL;
	cap_len = 0;
	cap_file = open_memstream(&cap_buf, &cap_len);
	if (cap_file == NULL)
		return -1;
	/* log_init also forgets rate-limit state left by earlier tests. */
	log_init("logferry-agent", LOG_LEVEL_DEBUG);
	log_set_output(cap_file);
	fake_now = FAKE_EPOCH_S * NS_PER_S + 123 * NS_PER_MS;
	log_set_clock(fake_clock);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_output(NULL);
	log_set_clock(NULL);
	fclose(cap_file);
	free(cap_buf);
	cap_file = NULL;
	cap_buf = NULL;
	return 0;
}

/* Everything logged so far in this test. */
static const char *captured(void)
{
	fflush(cap_file);
	return cap_buf != NULL ? cap_buf : "";
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* Line idx (0-based) of the capture, without its newline. */
static const char *line_at(size_t idx)
{
	static char line[2 * LOG_LINE_MAX];
	const char *s = captured(), *end;

	while (idx-- > 0) {
		s = strchr(s, '\n');
		assert_non_null(s);
		s++;
	}
	end = strchr(s, '\n');
	assert_non_null(end);
	assert_true((size_t)(end - s) < sizeof(line));
	memcpy(line, s, (size_t)(end - s));
	line[end - s] = '\0';
	return line;
}

/* "level: message" part of line idx, after "<stamp> <prog>[<pid>]: ". */
static const char *body_at(size_t idx)
{
	const char *line = line_at(idx);
	const char *p = strstr(line, "]: ");

	assert_non_null(p);
	return p + 3;
}

static const char *expected_prefix(const char *stamp)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s logferry-agent[%ld]: ", stamp, (long)getpid());
	return buf;
}

static void test_line_has_utc_timestamp_program_pid_and_level(void **state)
{
	char want[512];

	(void)state;
	log_error("disk full on %s", "/var/log");

	snprintf(want, sizeof(want), "%serror: disk full on /var/log\n", expected_prefix(FAKE_STAMP));
	assert_string_equal(captured(), want);
}

static void test_milliseconds_are_zero_padded_and_truncated_not_rounded(void **state)
{
	(void)state;
	fake_now = FAKE_EPOCH_S * NS_PER_S + 5 * NS_PER_MS;
	log_info("a");
	fake_now = FAKE_EPOCH_S * NS_PER_S + 999999999;
	log_info("b");

	assert_true(strncmp(line_at(0), "2026-11-25T01:20:31.005Z ", 25) == 0);
	assert_true(strncmp(line_at(1), "2026-11-25T01:20:31.999Z ", 25) == 0);
}

static void test_each_level_is_named_in_its_line(void **state)
{
	(void)state;
	log_error("e");
	log_warn("w");
	log_info("i");
	log_debug("d");

	assert_int_equal(count_lines(captured()), 4);
	assert_string_equal(body_at(0), "error: e");
	assert_string_equal(body_at(1), "warn: w");
	assert_string_equal(body_at(2), "info: i");
	assert_string_equal(body_at(3), "debug: d");
}

static void test_level_filter_discards_debug_at_info(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_INFO);
	log_debug("hidden %d", 1);
	log_info("shown");
	log_warn("also shown");

	assert_int_equal(count_lines(captured()), 2);
	assert_string_equal(body_at(0), "info: shown");
	assert_string_equal(body_at(1), "warn: also shown");
}

static void test_filtered_messages_do_not_use_up_the_burst(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 2 * LOG_DEFAULT_BURST; i++) {
		log_set_level(i < LOG_DEFAULT_BURST ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG);
		log_debug("tick %d", i);
	}

	assert_int_equal(count_lines(captured()), LOG_DEFAULT_BURST);
	assert_string_equal(body_at(0), "debug: tick 10");
}

static void test_set_level_is_reported_by_get_level(void **state)
{
	(void)state;
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG); /* from log_init */
	log_set_level(LOG_LEVEL_WARN);
	assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
}

static void test_level_parse_accepts_known_names_and_round_trips(void **state)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	enum log_level lvl;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		assert_int_equal(log_level_parse(names[i], &lvl), 0);
		assert_int_equal(lvl, (enum log_level)i);
		assert_string_equal(log_level_name(lvl), names[i]);
	}
}

static void test_level_parse_rejects_unknown_name(void **state)
{
	static const char *const bad[] = {"", "ERROR", "Info", "warning", "trace", "debug "};
	enum log_level lvl = LOG_LEVEL_WARN;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(log_level_parse(bad[i], &lvl), -EINVAL);
		assert_int_equal(lvl, LOG_LEVEL_WARN); /* untouched on error */
	}
	assert_int_equal(log_level_parse(NULL, &lvl), -EINVAL);
}

static void test_level_name_of_out_of_range_value_is_unknown(void **state)
{
	(void)state;
	assert_string_equal(log_level_name((enum log_level)4), "unknown");
}

static void test_log_init_copies_progname(void **state)
{
	char name[] = "logferry-relay";

	(void)state;
	log_init(name, LOG_LEVEL_INFO);
	memcpy(name, "XXXXXXXXXXXXXX", sizeof(name) - 1);
	log_info("a");
	log_init(NULL, LOG_LEVEL_INFO); /* keeps the name */
	log_info("b");

	assert_non_null(strstr(line_at(0), " logferry-relay["));
	assert_non_null(strstr(line_at(1), " logferry-relay["));
}

static void log_peer_timeout(int i)
{
	log_warn("peer %d timed out", i);
}

static void test_repeated_message_is_suppressed_after_burst_and_counted(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 15; i++)
		log_peer_timeout(i);
	assert_int_equal(count_lines(captured()), 10);
	assert_string_equal(body_at(9), "warn: peer 9 timed out");

	fake_now += (LOG_DEFAULT_INTERVAL_MS + 1) * NS_PER_MS;
	log_peer_timeout(15);

	assert_int_equal(count_lines(captured()), 12);
	assert_string_equal(body_at(10), "warn: 5 similar messages suppressed, the last: peer 14 timed out");
	assert_string_equal(body_at(11), "warn: peer 15 timed out");
	/* The report is stamped when it is written, not when suppression began. */
	assert_true(strncmp(line_at(10), "2026-11-25T01:20:36.124Z ", 25) == 0);
}

static void test_new_interval_allows_a_full_burst_again(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 11; i++)
		log_peer_timeout(i);
	fake_now += LOG_DEFAULT_INTERVAL_MS * NS_PER_MS; /* exactly one interval */
	for (i = 0; i < 11; i++)
		log_peer_timeout(100 + i);

	/* 10 + report + 10; the 11th of the second window is held back. */
	assert_int_equal(count_lines(captured()), 21);
	assert_string_equal(body_at(10), "warn: 1 similar messages suppressed, the last: peer 10 timed out");
	assert_string_equal(body_at(20), "warn: peer 109 timed out");
}

static void test_flush_reports_pending_suppressed(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 12; i++)
		log_info("queue full, dropping batch %d", i);
	assert_int_equal(count_lines(captured()), 10);

	log_flush_suppressed();
	assert_int_equal(count_lines(captured()), 11);
	assert_string_equal(body_at(10), "info: 2 similar messages suppressed, the last: queue full, dropping batch 11");

	log_flush_suppressed(); /* already reported */
	assert_int_equal(count_lines(captured()), 11);
}

static void test_distinct_call_sites_are_limited_independently(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 15; i++) {
		log_info("site A %d", i);
		if (i % 5 == 0)
			log_info("site B %d", i);
	}

	assert_int_equal(count_lines(captured()), 13); /* 10 from A, 3 from B */
	log_flush_suppressed();
	assert_int_equal(count_lines(captured()), 14);
	assert_string_equal(body_at(13), "info: 5 similar messages suppressed, the last: site A 14");
}

static void test_burst_zero_disables_limiting(void **state)
{
	int i;

	(void)state;
	log_set_ratelimit(0, 5000);
	for (i = 0; i < 100; i++)
		log_info("unlimited %d", i);
	log_flush_suppressed();

	assert_int_equal(count_lines(captured()), 100);
}

static void test_custom_ratelimit_uses_burst_and_interval_ms(void **state)
{
	int i;

	(void)state;
	log_set_ratelimit(3, 1000);
	for (i = 0; i < 5; i++)
		log_info("custom %d", i);
	assert_int_equal(count_lines(captured()), 3);

	fake_now += 1000 * NS_PER_MS;
	log_info("custom %d", 5);
	assert_int_equal(count_lines(captured()), 5);
	assert_string_equal(body_at(3), "info: 2 similar messages suppressed, the last: custom 4");
	assert_string_equal(body_at(4), "info: custom 5");
}

static void test_set_ratelimit_reports_pending_counts_first(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 13; i++)
		log_info("before change %d", i);
	log_set_ratelimit(0, 0);

	assert_int_equal(count_lines(captured()), 11);
	assert_string_equal(body_at(10), "info: 3 similar messages suppressed, the last: before change 12");
}

static void test_evicted_call_site_reports_pending_suppressed(void **state)
{
	/* Distinct pointers are distinct keys; far more than the table holds. */
	static char fmts[1024][16];
	const char *report = "warn: 5 similar messages suppressed, the last: victim 14";
	size_t i, reports = 0, lines;

	(void)state;
	for (i = 0; i < 15; i++)
		log_warn("victim %d", (int)i);
	for (i = 0; i < 1024; i++) {
		snprintf(fmts[i], sizeof(fmts[i]), "key %zu %%s", i);
		log_msg(LOG_LEVEL_INFO, fmts[i], "x");
	}

	lines = count_lines(captured());
	assert_int_equal(lines, 10 + 1024 + 1);
	for (i = 0; i < lines; i++)
		reports += strcmp(body_at(i), report) == 0;
	assert_int_equal(reports, 1);

	log_flush_suppressed(); /* the count went with the eviction */
	assert_int_equal(count_lines(captured()), lines);
}

static void test_clock_stepping_backwards_starts_a_new_window(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 15; i++)
		log_peer_timeout(i);
	fake_now -= 3600 * NS_PER_S;
	log_peer_timeout(15);

	assert_int_equal(count_lines(captured()), 12);
	assert_string_equal(body_at(10), "warn: 5 similar messages suppressed, the last: peer 14 timed out");
	assert_string_equal(body_at(11), "warn: peer 15 timed out");
}

static void test_newline_in_message_is_escaped(void **state)
{
	const char *peer = "bob\n2026-11-25T01:20:31.123Z logferry-agent[1]: error: forged";

	(void)state;
	log_warn("login from %s", peer);

	assert_int_equal(count_lines(captured()), 1);
	assert_string_equal(body_at(0),
			    "warn: login from bob\\n2026-11-25T01:20:31.123Z logferry-agent[1]: error: forged");
}

static void test_control_characters_are_escaped_and_utf8_passes_through(void **state)
{
	(void)state;
	log_info("%s", "a\tb\rc\x1b[31md\x7f" "e\x01 caf\xc3\xa9 back\\slash");

	assert_int_equal(count_lines(captured()), 1);
	assert_string_equal(body_at(0), "info: a\\tb\\rc\\x1b[31md\\x7fe\\x01 caf\xc3\xa9 back\\slash");
}

static void test_suppressed_report_line_is_escaped_too(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 11; i++)
		log_info("two\nlines %d", i);
	log_flush_suppressed();

	assert_int_equal(count_lines(captured()), 11);
	assert_string_equal(body_at(10), "info: 1 similar messages suppressed, the last: two\\nlines 10");
}

static void log_relay_refused(const char *relay, int attempt)
{
	log_warn("relay %s: no connection (refused); attempt %d", relay, attempt);
}

static void test_suppression_report_shows_the_last_formatted_message(void **state)
{
	int i;

	(void)state;
	for (i = 1; i <= 13; i++)
		log_relay_refused(i % 2 ? "relay-a:7540" : "relay-b:7540", i);
	log_flush_suppressed();

	assert_int_equal(count_lines(captured()), 11);
	assert_string_equal(body_at(10), "warn: 3 similar messages suppressed, the last: "
			    "relay relay-a:7540: no connection (refused); attempt 13");
	assert_null(strstr(captured(), "%s"));
}

static void test_suppression_report_of_a_long_message_is_cut_with_ellipsis(void **state)
{
	char big[LOG_LINE_MAX];
	const char *body;
	int i;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 11; i++)
		log_info("big %d %s", i, big);
	log_flush_suppressed();

	assert_int_equal(count_lines(captured()), 11);
	body = body_at(10);
	assert_true(strncmp(body, "info: 1 similar messages suppressed, the last: big 10 xxx", 57) == 0);
	assert_string_equal(body + strlen(body) - 4, "x...");
}

static void test_message_that_fits_is_not_truncated(void **state)
{
	char msg[3001];

	(void)state;
	memset(msg, 'y', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	log_info("%s", msg);

	assert_int_equal(strlen(body_at(0)), strlen("info: ") + 3000);
}

static void test_overlong_message_is_truncated_with_ellipsis(void **state)
{
	static char big[10001];
	const char *out;
	size_t len, prefix_len = strlen(expected_prefix(FAKE_STAMP));

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	log_info("%s", big);

	out = captured();
	len = strlen(out);
	assert_int_equal(count_lines(out), 1);
	assert_true(len <= LOG_LINE_MAX);
	assert_true(len > LOG_LINE_MAX - 8); /* the space is used, not wasted */
	assert_true(strncmp(out, expected_prefix(FAKE_STAMP), prefix_len) == 0);
	assert_string_equal(out + len - 5, "x...\n");
}

static void test_truncation_never_splits_an_escape_sequence(void **state)
{
	static char nl[3001];
	const char *body;
	size_t i, n;

	(void)state;
	memset(nl, '\n', sizeof(nl) - 1);
	log_info("%s", nl);

	body = body_at(0) + strlen("info: ");
	n = strlen(body);
	assert_true(n > 3 && strcmp(body + n - 3, "...") == 0);
	assert_int_equal((n - 3) % 2, 0);
	for (i = 0; i < n - 3; i += 2)
		assert_true(body[i] == '\\' && body[i + 1] == 'n');
}

static void test_truncation_never_splits_utf8_sequence(void **state)
{
	static char msg[8000];
	const char *body;
	size_t pad, i, n;

	(void)state;
	/* Vary the alignment so at least one run cuts through a character. */
	for (pad = 0; pad < 3; pad++) {
		memset(msg, 'a', pad);
		for (i = 0; i < 2000; i++)
			memcpy(msg + pad + 3 * i, "\xe2\x82\xac", 3); /* U+20AC, 3 bytes */
		msg[pad + 6000] = '\0';
		log_info("%s", msg);

		body = body_at(pad) + strlen("info: ") + pad;
		n = strlen(body);
		assert_true(n > 3 && strcmp(body + n - 3, "...") == 0);
		assert_int_equal((n - 3) % 3, 0);
		for (i = 0; i < n - 3; i += 3)
			assert_memory_equal(body + i, "\xe2\x82\xac", 3);
	}
}

/* Stands in for anything the logger calls before formatting that sets errno. */
static uint64_t errno_clobbering_clock(void)
{
	errno = EBADF;
	return fake_now;
}

static void test_errno_is_preserved_and_percent_m_reports_callers_errno(void **state)
{
	char want[128];
	FILE *ro;

	(void)state;
	log_set_clock(errno_clobbering_clock);
	errno = ENOENT;
	log_error("open config: %m");
	assert_int_equal(errno, ENOENT);
	snprintf(want, sizeof(want), "error: open config: %s", strerror(ENOENT));
	assert_string_equal(body_at(0), want);

	log_set_level(LOG_LEVEL_ERROR);
	errno = EAGAIN;
	log_debug("filtered");
	assert_int_equal(errno, EAGAIN);

	/* A failing write sets errno inside the logger; the caller must not see it. */
	log_set_clock(fake_clock);
	ro = fopen("/dev/null", "r");
	assert_non_null(ro);
	log_set_output(ro);
	errno = ENOENT;
	log_error("write fails");
	assert_int_equal(errno, ENOENT);
	log_set_output(cap_file);
	fclose(ro);
}

static void test_null_clock_restores_realtime_clock(void **state)
{
	struct timespec before, after;
	struct tm tm;
	time_t logged;
	const char *rest;

	(void)state;
	log_set_clock(NULL);
	/* Not time(): it reads the coarse clock, which can lag a second edge. */
	clock_gettime(CLOCK_REALTIME, &before);
	log_info("now");
	clock_gettime(CLOCK_REALTIME, &after);

	memset(&tm, 0, sizeof(tm));
	rest = strptime(line_at(0), "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(rest);
	assert_true(rest[0] == '.' && rest[4] == 'Z' && rest[5] == ' ');
	logged = timegm(&tm);
	assert_true(logged >= before.tv_sec && logged <= after.tv_sec);
}

static void test_default_output_is_stderr(void **state)
{
	FILE *tmp = tmpfile();
	char line[512], want[512];
	int saved;

	(void)state;
	assert_non_null(tmp);
	log_set_output(NULL);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	log_error("to stderr");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);

	rewind(tmp);
	assert_non_null(fgets(line, sizeof(line), tmp));
	fclose(tmp);
	snprintf(want, sizeof(want), "%serror: to stderr\n", expected_prefix(FAKE_STAMP));
	assert_string_equal(line, want);
	assert_string_equal(captured(), "");
}

#define THREADS 4
#define LINES_PER_THREAD 500
#define PAYLOAD_LEN 300

static void *log_from_thread(void *arg)
{
	int t = (int)(intptr_t)arg, i;
	char payload[PAYLOAD_LEN + 1];

	memset(payload, 'a' + t, PAYLOAD_LEN);
	payload[PAYLOAD_LEN] = '\0';
	for (i = 0; i < LINES_PER_THREAD; i++)
		log_info("thread %d seq %d %s", t, i, payload);
	return NULL;
}

static void test_threads_never_interleave_lines(void **state)
{
	static unsigned char seen[THREADS][LINES_PER_THREAD];
	pthread_t tid[THREADS];
	FILE *f = tmpfile();
	char *line = NULL, payload[PAYLOAD_LEN + 1];
	size_t cap = 0, lines = 0;
	const char *prefix = expected_prefix(FAKE_STAMP);
	size_t prefix_len = strlen(prefix);
	ssize_t n;
	int t;

	(void)state;
	assert_non_null(f);
	memset(seen, 0, sizeof(seen));
	log_set_output(f);
	log_set_ratelimit(0, 0);
	for (t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&tid[t], NULL, log_from_thread, (void *)(intptr_t)t), 0);
	for (t = 0; t < THREADS; t++)
		pthread_join(tid[t], NULL);
	log_set_output(cap_file);

	rewind(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		int th = -1, seq = -1, used = 0;

		lines++;
		assert_true(strncmp(line, prefix, prefix_len) == 0);
		assert_int_equal(sscanf(line + prefix_len, "info: thread %d seq %d %n", &th, &seq, &used), 2);
		assert_true(th >= 0 && th < THREADS && seq >= 0 && seq < LINES_PER_THREAD);
		memset(payload, 'a' + th, PAYLOAD_LEN);
		payload[PAYLOAD_LEN] = '\0';
		assert_true((size_t)n == prefix_len + (size_t)used + PAYLOAD_LEN + 1);
		assert_memory_equal(line + prefix_len + used, payload, PAYLOAD_LEN);
		assert_int_equal(line[n - 1], '\n');
		assert_int_equal(seen[th][seq], 0);
		seen[th][seq] = 1;
	}
	free(line);
	fclose(f);
	assert_int_equal(lines, THREADS * LINES_PER_THREAD);
}

/* ---- journald and JSON lines (issue 16, item 7) ---- */

static void test_journal_lines_start_with_the_syslog_priority_and_have_no_timestamp(void **state)
{
	(void)state;
	log_set_style(LOG_FORMAT_TEXT, true);
	log_error("disk full on %s", "/var/log");
	log_warn("slow");
	log_info("started");
	log_debug("detail");
	assert_string_equal(captured(),
	    "<3>error: disk full on /var/log\n"
	    "<4>warn: slow\n"
	    "<6>info: started\n"
	    "<7>debug: detail\n");
}

static void test_journal_suppression_report_keeps_the_priority(void **state)
{
	int i;

	(void)state;
	log_set_style(LOG_FORMAT_TEXT, true);
	log_set_ratelimit(1, 1000);
	for (i = 0; i < 3; i++)
		log_warn("peer %d refused", i);
	log_flush_suppressed();
	assert_string_equal(captured(),
	    "<4>warn: peer 0 refused\n"
	    "<4>warn: 2 similar messages suppressed, the last: peer 2 refused\n");
}

static void test_text_style_is_the_default_again_after_log_init(void **state)
{
	char want[512];

	(void)state;
	log_set_style(LOG_FORMAT_JSON, true);
	log_init("logferry-agent", LOG_LEVEL_DEBUG);
	log_error("plain");
	snprintf(want, sizeof(want), "%serror: plain\n", expected_prefix(FAKE_STAMP));
	assert_string_equal(captured(), want);
}

static void test_journal_stream_is_recognised_by_device_and_inode_of_the_fd(void **state)
{
	FILE *tmp = tmpfile(), *other = tmpfile();
	struct stat st;
	char env[64];

	(void)state;
	assert_non_null(tmp);
	assert_non_null(other);
	assert_int_equal(fstat(fileno(tmp), &st), 0);
	snprintf(env, sizeof(env), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
	assert_true(log_stream_is_journal(fileno(tmp), env));
	assert_false(log_stream_is_journal(fileno(other), env));
	assert_false(log_stream_is_journal(fileno(tmp), NULL));
	assert_false(log_stream_is_journal(fileno(tmp), ""));
	assert_false(log_stream_is_journal(fileno(tmp), "garbage"));
	snprintf(env, sizeof(env), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino + 1);
	assert_false(log_stream_is_journal(fileno(tmp), env));
	snprintf(env, sizeof(env), "%lu:%lux", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
	assert_false(log_stream_is_journal(fileno(tmp), env));
	assert_false(log_stream_is_journal(-1, "1:1"));
	fclose(tmp);
	fclose(other);
}

/*
 * The daemon's own check: stderr (fd 2) of a child is a file named by
 * JOURNAL_STREAM, as systemd sets it up; the child's exit status says what
 * log_stderr_is_journal answered.
 */
static void test_stderr_named_by_journal_stream_is_the_journal(void **state)
{
	FILE *tmp = tmpfile();
	struct stat st;
	char env[64];
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(tmp);
	assert_int_equal(fstat(fileno(tmp), &st), 0);
	snprintf(env, sizeof(env), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
	for (int named = 0; named < 2; named++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (dup2(fileno(tmp), STDERR_FILENO) < 0)
				_exit(3);
			if (named)
				setenv("JOURNAL_STREAM", env, 1);
			else
				unsetenv("JOURNAL_STREAM");
			_exit(log_stderr_is_journal() ? 1 : 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), named);
	}
	fclose(tmp);
}

static void test_json_lines_carry_time_level_program_pid_and_message(void **state)
{
	char want[512];

	(void)state;
	log_set_style(LOG_FORMAT_JSON, false);
	log_error("disk full on %s", "/var/log");
	log_info("started");
	snprintf(want, sizeof(want),
	    "{\"time\":\"2026-11-25T01:20:31.123000Z\",\"level\":\"error\",\"program\":\"logferry-agent\","
	    "\"pid\":%ld,\"message\":\"disk full on /var/log\"}\n"
	    "{\"time\":\"2026-11-25T01:20:31.123000Z\",\"level\":\"info\",\"program\":\"logferry-agent\","
	    "\"pid\":%ld,\"message\":\"started\"}\n", (long)getpid(), (long)getpid());
	assert_string_equal(captured(), want);
}

static void test_json_message_is_escaped(void **state)
{
	(void)state;
	log_set_style(LOG_FORMAT_JSON, false);
	log_warn("peer said \"hi\"\n\\ \x01 caf\xc3\xa9 \xff");
	assert_non_null(strstr(captured(),
	    "\"message\":\"peer said \\\"hi\\\"\\n\\\\ \\u0001 caf\xc3\xa9 \xef\xbf\xbd\"}\n"));
}

static void test_json_under_journal_keeps_the_priority_prefix(void **state)
{
	(void)state;
	log_set_style(LOG_FORMAT_JSON, true);
	log_debug("x");
	assert_true(strncmp(captured(), "<7>{\"time\":\"2026-11-25T01:20:31.123000Z\",\"level\":\"debug\"", 56) == 0);
}

static void test_json_overlong_message_is_cut_and_stays_one_valid_line(void **state)
{
	char *big = malloc(2 * LOG_LINE_MAX);
	const char *out, *msg;
	size_t len;

	(void)state;
	assert_non_null(big);
	/* Quotes cost two bytes each once escaped: the cut must count that. */
	for (size_t i = 0; i < 2 * LOG_LINE_MAX - 1; i++)
		big[i] = i % 2 ? '"' : 'a';
	big[2 * LOG_LINE_MAX - 1] = '\0';
	log_set_style(LOG_FORMAT_JSON, false);
	log_info("%s", big);
	free(big);
	out = captured();
	len = strlen(out);
	assert_int_equal(count_lines(out), 1);
	assert_true(len <= LOG_LINE_MAX);
	assert_int_equal(out[len - 1], '\n');
	assert_int_equal(strncmp(out + len - 6, "...\"}\n", 6), 0);
	msg = strstr(out, "\"message\":\"");
	assert_non_null(msg);
	/* No escape is left half written before the ellipsis. */
	assert_true(out[len - 7] == 'a' || (out[len - 7] == '"' && out[len - 8] == '\\'));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_line_has_utc_timestamp_program_pid_and_level),
		T(test_milliseconds_are_zero_padded_and_truncated_not_rounded),
		T(test_each_level_is_named_in_its_line),
		T(test_level_filter_discards_debug_at_info),
		T(test_filtered_messages_do_not_use_up_the_burst),
		T(test_set_level_is_reported_by_get_level),
		T(test_level_parse_accepts_known_names_and_round_trips),
		T(test_level_parse_rejects_unknown_name),
		T(test_level_name_of_out_of_range_value_is_unknown),
		T(test_log_init_copies_progname),
		T(test_repeated_message_is_suppressed_after_burst_and_counted),
		T(test_new_interval_allows_a_full_burst_again),
		T(test_flush_reports_pending_suppressed),
		T(test_distinct_call_sites_are_limited_independently),
		T(test_burst_zero_disables_limiting),
		T(test_custom_ratelimit_uses_burst_and_interval_ms),
		T(test_set_ratelimit_reports_pending_counts_first),
		T(test_evicted_call_site_reports_pending_suppressed),
		T(test_clock_stepping_backwards_starts_a_new_window),
		T(test_newline_in_message_is_escaped),
		T(test_control_characters_are_escaped_and_utf8_passes_through),
		T(test_suppressed_report_line_is_escaped_too),
		T(test_suppression_report_shows_the_last_formatted_message),
		T(test_suppression_report_of_a_long_message_is_cut_with_ellipsis),
		T(test_message_that_fits_is_not_truncated),
		T(test_overlong_message_is_truncated_with_ellipsis),
		T(test_truncation_never_splits_an_escape_sequence),
		T(test_truncation_never_splits_utf8_sequence),
		T(test_errno_is_preserved_and_percent_m_reports_callers_errno),
		T(test_null_clock_restores_realtime_clock),
		T(test_default_output_is_stderr),
		T(test_threads_never_interleave_lines),
		T(test_journal_lines_start_with_the_syslog_priority_and_have_no_timestamp),
		T(test_journal_suppression_report_keeps_the_priority),
		T(test_text_style_is_the_default_again_after_log_init),
		T(test_journal_stream_is_recognised_by_device_and_inode_of_the_fd),
		T(test_stderr_named_by_journal_stream_is_the_journal),
		T(test_json_lines_carry_time_level_program_pid_and_message),
		T(test_json_message_is_escaped),
		T(test_json_under_journal_keeps_the_priority_prefix),
		T(test_json_overlong_message_is_cut_and_stays_one_valid_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
