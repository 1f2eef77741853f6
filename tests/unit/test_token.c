/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/token: the token file, lookup by digest, rate limits, Bearer. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/token.h"

#define TOK_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOK_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TOK_C "cccccccccccccccccccccccccccccccc"
#define SEC UINT64_C(1000000000)

static char err[512];

static struct token_set *
parse_ok(const char *text)
{
	struct token_set *s = NULL;
	int r = token_set_parse("tokens", text, strlen(text), 100, &s, err, sizeof(err));

	if (r != 0)
		fail_msg("parse failed (%d): %s", r, err);
	return s;
}

static void
expect_error(const char *text, size_t max, const char *why)
{
	struct token_set *s = NULL;

	assert_int_equal(token_set_parse("tokens", text, strlen(text), max, &s, err, sizeof(err)),
	    -EINVAL);
	assert_null(s);
	if (strstr(err, why) == NULL)
		fail_msg("error '%s' does not say '%s'", err, why);
}

static struct token_sender *
find(const struct token_set *s, const char *tok)
{
	return token_set_find(s, (const uint8_t *)tok, strlen(tok));
}

static void
test_token_file_maps_tokens_to_senders_and_skips_comments(void **state)
{
	struct token_set *s = parse_ok("# senders\n\n" TOK_A " app-1\r\n  " TOK_B "\tdmp.eu_2  \n"
	    "   # indented comment\n" TOK_C " app-1");

	(void)state;
	assert_int_equal(token_set_count(s), 3);
	assert_string_equal(token_sender_name(find(s, TOK_A)), "app-1");
	assert_string_equal(token_sender_name(find(s, TOK_B)), "dmp.eu_2");
	/* Two tokens of one sender (a rotation) are one sender, with one set of buckets. */
	assert_ptr_equal(find(s, TOK_A), find(s, TOK_C));
	token_set_free(s);
}

static void
test_token_unknown_or_malformed_token_finds_nobody(void **state)
{
	struct token_set *s = parse_ok(TOK_A " app\n");

	(void)state;
	assert_null(find(s, TOK_B));
	assert_null(find(s, "short"));
	assert_null(find(s, TOK_A "x"));
	assert_null(find(s, ""));
	token_set_free(s);
}

static void
test_token_file_errors_name_the_line_and_the_fix(void **state)
{
	(void)state;
	expect_error(TOK_A " app\nshort app2\n", 100, "tokens:2: the token is 5 bytes");
	expect_error(TOK_A "\n", 100, "tokens:1: a line is TOKEN NAME");
	expect_error(TOK_A " app extra\n", 100, "tokens:1: a line is TOKEN NAME");
	expect_error(TOK_A " app/1\n", 100, "tokens:1: the name 'app/1'");
	expect_error(TOK_A " a\n" TOK_B " b\n# c\n" TOK_A " c\n", 100,
	    "tokens:4: the same token as line 1");
	expect_error(TOK_A " a\n" TOK_B " b\n" TOK_C " c\n", 2, "tokens:3: more than 2 tokens");
	expect_error(TOK_A "\x01 a\n", 100, "not printable");
}

static void
test_token_limit_admits_a_burst_then_refuses_with_retry_after(void **state)
{
	struct token_set *s = parse_ok(TOK_A " app\n");
	struct token_sender *t = find(s, TOK_A);
	const struct token_limits lim = { .events_per_s = 100, .events_burst = 200 };
	uint64_t retry = 0;

	(void)state;
	assert_true(token_admit(t, &lim, 150, 1000, 10 * SEC, &retry));
	assert_true(token_admit(t, &lim, 50, 1000, 10 * SEC, &retry));
	assert_false(token_admit(t, &lim, 10, 1000, 10 * SEC, &retry));
	/* 10 events at 100/s: 100 ms. */
	assert_in_range(retry, 100, 101);
	assert_false(token_admit(t, &lim, 10, 1000, 10 * SEC + 50000000, &retry));
	assert_true(token_admit(t, &lim, 10, 1000, 10 * SEC + 100000000, &retry));
	token_set_free(s);
}

static void
test_token_request_larger_than_the_burst_passes_only_when_the_bucket_is_full(void **state)
{
	struct token_set *s = parse_ok(TOK_A " app\n");
	struct token_sender *t = find(s, TOK_A);
	const struct token_limits lim = { .bytes_per_s = 1000 };
	uint64_t retry = 0;

	(void)state;
	assert_true(token_admit(t, &lim, 1, 5000, SEC, &retry));
	/* The bucket is 4000 in debt: it takes 5 s to be full again. */
	assert_false(token_admit(t, &lim, 1, 5000, 2 * SEC, &retry));
	assert_in_range(retry, 4000, 4001);
	assert_true(token_admit(t, &lim, 1, 5000, 6 * SEC, &retry));
	token_set_free(s);
}

static void
test_token_both_limits_must_admit_and_a_refusal_takes_nothing(void **state)
{
	struct token_set *s = parse_ok(TOK_A " app\n");
	struct token_sender *t = find(s, TOK_A);
	const struct token_limits lim = { .events_per_s = 10, .bytes_per_s = 100 };
	const struct token_limits events_only = { .events_per_s = 10 };
	uint64_t retry = 0;

	(void)state;
	/* A full byte bucket lets a request above its burst through, and goes 900 in debt. */
	assert_true(token_admit(t, &lim, 9, 1000, SEC, &retry));
	/* One event is left, but the bytes refuse: 950 bytes at 100/s. */
	for (int i = 0; i < 5; i++)
		assert_false(token_admit(t, &lim, 1, 50, SEC, &retry));
	assert_in_range(retry, 9500, 9501);
	/* The refusals took no event: the one left is still there. */
	assert_true(token_admit(t, &events_only, 1, 0, SEC, &retry));
	assert_false(token_admit(t, &events_only, 1, 0, SEC, &retry));
	token_set_free(s);
}

static void
test_token_no_limit_always_admits(void **state)
{
	struct token_set *s = parse_ok(TOK_A " app\n");
	const struct token_limits lim = { 0 };
	uint64_t retry = 0;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_true(token_admit(find(s, TOK_A), &lim, 1000000, 1u << 30, SEC, &retry));
	token_set_free(s);
}

static void
test_token_reload_carries_a_senders_buckets_by_name(void **state)
{
	struct token_set *old = parse_ok(TOK_A " app\n" TOK_B " other\n");
	struct token_set *fresh = parse_ok(TOK_C " app\n");
	const struct token_limits lim = { .events_per_s = 10 };
	uint64_t retry = 0;

	(void)state;
	assert_true(token_admit(find(old, TOK_A), &lim, 10, 0, SEC, &retry));
	token_set_carry(fresh, old);
	token_set_free(old);
	/* app's new token finds app's bucket empty: the reload did not reset the limit. */
	assert_false(token_admit(find(fresh, TOK_C), &lim, 1, 0, SEC, &retry));
	token_set_free(fresh);
}

static void
test_token_bearer_takes_the_token_of_an_authorization_value(void **state)
{
	const uint8_t *tok;
	size_t len;

	(void)state;
	assert_int_equal(token_bearer("Bearer abc", 10, &tok, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(tok, "abc", 3);
	assert_int_equal(token_bearer("  bearer   xyz  ", 16, &tok, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(tok, "xyz", 3);
	assert_int_equal(token_bearer("Basic abc", 9, &tok, &len), -EINVAL);
	assert_int_equal(token_bearer("Bearer", 6, &tok, &len), -EINVAL);
	assert_int_equal(token_bearer("Bearer  ", 8, &tok, &len), -EINVAL);
	assert_int_equal(token_bearer("Bearerabc", 9, &tok, &len), -EINVAL);
	assert_int_equal(token_bearer("Bearer a b", 10, &tok, &len), -EINVAL);
}

static void
test_token_file_readable_by_everyone_is_refused(void **state)
{
	char path[] = "/tmp/test_token_XXXXXX";
	struct token_set *s = NULL;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, TOK_A " app\n", sizeof(TOK_A " app\n") - 1),
	    (ssize_t)(sizeof(TOK_A " app\n") - 1));
	close(fd);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(token_set_load(path, 100, &s, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod 0640"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(token_set_load(path, 100, &s, err, sizeof(err)), 0);
	assert_string_equal(token_sender_name(find(s, TOK_A)), "app");
	token_set_free(s);
	unlink(path);
	assert_int_equal(token_set_load(path, 100, &s, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot open the token file"));
}

static void
test_token_ready_tells_without_taking(void **state)
{
	struct token_set *s = parse_ok(TOK_A " app\n");
	struct token_sender *t = find(s, TOK_A);
	const struct token_limits lim = { .events_per_s = 10, .events_burst = 2 };
	uint64_t retry = 0;

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_true(token_ready(t, &lim, 2, 0, SEC, &retry));
	assert_true(token_admit(t, &lim, 2, 0, SEC, &retry));
	assert_false(token_ready(t, &lim, 1, 0, SEC, &retry));
	assert_in_range(retry, 100, 101);
	/* The sender is found again by name, as after a reload. */
	assert_ptr_equal(token_set_sender(s, "app"), t);
	assert_null(token_set_sender(s, "other"));
	token_set_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_file_maps_tokens_to_senders_and_skips_comments),
		cmocka_unit_test(test_token_unknown_or_malformed_token_finds_nobody),
		cmocka_unit_test(test_token_file_errors_name_the_line_and_the_fix),
		cmocka_unit_test(test_token_limit_admits_a_burst_then_refuses_with_retry_after),
		cmocka_unit_test(test_token_request_larger_than_the_burst_passes_only_when_the_bucket_is_full),
		cmocka_unit_test(test_token_both_limits_must_admit_and_a_refusal_takes_nothing),
		cmocka_unit_test(test_token_no_limit_always_admits),
		cmocka_unit_test(test_token_reload_carries_a_senders_buckets_by_name),
		cmocka_unit_test(test_token_bearer_takes_the_token_of_an_authorization_value),
		cmocka_unit_test(test_token_file_readable_by_everyone_is_refused),
		cmocka_unit_test(test_token_ready_tells_without_taking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
