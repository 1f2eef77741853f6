/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent/redact: hash (RFC 4231 vectors), mask_ip, drop and
 * regex, each failing closed. Key files are written in a mkdtemp() directory.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
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

#include "agent/processors.h"
#include "agent/redact.h"
#include "tests/unit/alloc_count.h"

static char dir[64];

static int
make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/logferry-test-redact-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
remove_dir(void **state)
{
	char path[128];
	const char *names[] = { "key", "short", "long", "nl", "open", "other", "fifo" };

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	return rmdir(dir);
}

/* Writes data[0, len) to dir/name with mode; returns the path (static). */
static const char *
key_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	return path;
}

static void
hash_rule(struct redact *r, const char *path)
{
	struct redact_options o = { .method = REDACT_HASH, .key_file = path };
	char err[256];

	assert_int_equal(redact_init(r, &o, err, sizeof(err)), 0);
}

/* Initialising a rule that must fail: returns its message (static). */
static const char *
init_error(const struct redact_options *o)
{
	static char err[256];
	struct redact r;

	err[0] = '\0';
	assert_true(redact_init(&r, o, err, sizeof(err)) < 0);
	assert_true(err[0] != '\0');
	return err;
}

static void
test_hash_is_hmac_sha256_of_rfc4231_test_cases_1_and_6(void **state)
{
	uint8_t key1[20], key6[131];
	struct redact r;
	char out[REDACT_HASH_LEN + 1];
	static const char data6[] = "Test Using Larger Than Block-Size Key - Hash Key First";

	(void)state;
	memset(key1, 0x0b, sizeof(key1));
	hash_rule(&r, key_file("key", key1, sizeof(key1), 0600));
	assert_int_equal(redact_hash(&r, (const uint8_t *)"Hi There", 8, out), 0);
	assert_string_equal(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* The state is reset for each value: the same input, the same hash. */
	assert_int_equal(redact_hash(&r, (const uint8_t *)"Hi There", 8, out), 0);
	assert_string_equal(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	redact_free(&r);

	memset(key6, 0xaa, sizeof(key6));
	hash_rule(&r, key_file("key", key6, sizeof(key6), 0600));
	assert_int_equal(redact_hash(&r, (const uint8_t *)data6, strlen(data6), out), 0);
	assert_string_equal(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	redact_free(&r);
	redact_free(&r);
}

static void
test_hosts_sharing_a_key_hash_alike_and_another_key_differs(void **state)
{
	struct redact a, b, c;
	char ha[REDACT_HASH_LEN + 1], hb[REDACT_HASH_LEN + 1], hc[REDACT_HASH_LEN + 1];
	const uint8_t *v = (const uint8_t *)"alice@example.com";

	(void)state;
	hash_rule(&a, key_file("key", "0123456789abcdef0123456789abcdef", 32, 0600));
	hash_rule(&b, key_file("key", "0123456789abcdef0123456789abcdef", 32, 0600));
	hash_rule(&c, key_file("key", "0123456789abcdef0123456789abcdeF", 32, 0600));
	assert_int_equal(redact_hash(&a, v, 17, ha), 0);
	assert_int_equal(redact_hash(&b, v, 17, hb), 0);
	assert_int_equal(redact_hash(&c, v, 17, hc), 0);
	assert_string_equal(ha, hb);
	assert_string_not_equal(ha, hc);
	assert_int_equal(strspn(ha, "0123456789abcdef"), REDACT_HASH_LEN);
	redact_free(&a);
	redact_free(&b);
	redact_free(&c);
}

static void
test_key_file_trailing_newline_is_not_part_of_the_key(void **state)
{
	struct redact a, b;
	char ha[REDACT_HASH_LEN + 1], hb[REDACT_HASH_LEN + 1];

	(void)state;
	hash_rule(&a, key_file("nl", "0123456789abcdef0123\n", 21, 0600));
	hash_rule(&b, key_file("key", "0123456789abcdef0123", 20, 0600));
	assert_int_equal(redact_hash(&a, (const uint8_t *)"x", 1, ha), 0);
	assert_int_equal(redact_hash(&b, (const uint8_t *)"x", 1, hb), 0);
	assert_string_equal(ha, hb);
	redact_free(&a);
	redact_free(&b);
}

static void
test_key_file_missing_short_long_or_not_a_file_is_refused_naming_it(void **state)
{
	struct redact_options o = { .method = REDACT_HASH };
	char path[128], big[REDACT_KEY_MAX + 1];
	const char *err;

	(void)state;
	snprintf(path, sizeof(path), "%s/absent", dir);
	o.key_file = path;
	err = init_error(&o);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file or directory"));

	o.key_file = key_file("short", "fifteen-bytes!!", 15, 0600);
	err = init_error(&o);
	assert_non_null(strstr(err, o.key_file));
	assert_non_null(strstr(err, "15 bytes"));
	assert_non_null(strstr(err, "openssl rand"));
	assert_null(strstr(err, "fifteen"));

	/* Fifteen bytes and a newline are still fifteen bytes of key. */
	o.key_file = key_file("short", "fifteen-bytes!!\n", 16, 0600);
	assert_non_null(strstr(init_error(&o), "15 bytes"));

	memset(big, 'k', sizeof(big));
	o.key_file = key_file("long", big, sizeof(big), 0600);
	err = init_error(&o);
	assert_non_null(strstr(err, o.key_file));
	assert_non_null(strstr(err, "larger than 1024 bytes"));
	assert_null(strstr(err, "kkkk"));

	o.key_file = dir;
	err = init_error(&o);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "not a regular file"));

	/* A FIFO would block the configuration load: refused, not opened for reading. */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	o.key_file = path;
	assert_non_null(strstr(init_error(&o), "not a regular file"));

	o.key_file = NULL;
	assert_non_null(strstr(init_error(&o), "key_file"));
}

static void
test_key_file_readable_by_every_user_is_flagged(void **state)
{
	struct redact r;

	(void)state;
	hash_rule(&r, key_file("open", "0123456789abcdef0123", 20, 0644));
	assert_true(r.key_exposed);
	redact_free(&r);
	hash_rule(&r, key_file("other", "0123456789abcdef0123", 20, 0640));
	assert_false(r.key_exposed);
	redact_free(&r);
}

static void
assert_masked(const char *in, const char *want)
{
	char out[REDACT_IP_MAX];

	assert_int_equal(redact_mask_ip((const uint8_t *)in, strlen(in), out), 0);
	assert_string_equal(out, want);
}

static void
assert_not_an_address(const void *in, size_t len)
{
	char out[REDACT_IP_MAX];

	assert_int_equal(redact_mask_ip(in, len, out), -EINVAL);
	assert_string_equal(out, "");
}

static void
test_mask_ip_keeps_ipv4_slash_24_and_ipv6_slash_48(void **state)
{
	(void)state;
	assert_masked("192.0.2.77", "192.0.2.0");
	assert_masked("10.1.2.255", "10.1.2.0");
	assert_masked("2001:db8:abcd:12:34:56:78:9a", "2001:db8:abcd::");
	assert_masked("2001:db8:abcd:ffff::1", "2001:db8:abcd::");
	assert_masked("::1", "::");
	/* A mapped IPv4 address keeps what its IPv4 form keeps. */
	assert_masked("::ffff:192.0.2.77", "::ffff:192.0.2.0");
}

static void
test_mask_ip_refuses_what_is_not_exactly_an_address(void **state)
{
	(void)state;
	assert_not_an_address("alice@example.com", 17);
	assert_not_an_address("192.0.2.77:443", 14);
	assert_not_an_address(" 192.0.2.77", 11);
	assert_not_an_address("192.0.2.777", 11);
	assert_not_an_address("fe80::1%eth0", 12);
	assert_not_an_address("192.0.2.7\0" "7", 11);
	assert_not_an_address("", 0);
	assert_not_an_address("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa", 49);
	/* The length is the value's: a NUL-less slice is not read past. */
	assert_masked("192.0.2.1", "192.0.2.0");
	{
		char out[REDACT_IP_MAX];

		assert_int_equal(redact_mask_ip((const uint8_t *)"192.0.2.15", 9, out), 0);
		assert_string_equal(out, "192.0.2.0");
	}
}

static void
regex_rule(struct redact *r, const char *pattern, const char *replacement)
{
	struct redact_options o = { .method = REDACT_REGEX, .pattern = pattern,
		.replacement = replacement };
	char err[256];

	assert_int_equal(redact_init(r, &o, err, sizeof(err)), 0);
}

/* r over in (its strlen) into a cap-byte buffer; returns the result (static). */
static const char *
rewrite(const struct redact *r, const char *in, size_t cap, int want_rc, size_t want_matches)
{
	static char out[512];
	size_t outlen = 99, matches = 99;

	assert_true(cap < sizeof(out));
	memset(out, 'Z', sizeof(out));
	assert_int_equal(redact_regex(r, (const uint8_t *)in, strlen(in), (uint8_t *)out, cap,
	    &outlen, &matches), want_rc);
	assert_true(outlen <= cap);
	/* Past the result, nothing of in: untouched or wiped. */
	for (size_t i = outlen; i < cap; i++)
		assert_true(out[i] == 'Z' || out[i] == '\0');
	assert_int_equal(out[cap], 'Z');
	out[outlen] = '\0';
	if (want_rc == 0)
		assert_int_equal(matches, want_matches);
	return out;
}

#define EMAIL "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+"

static void
test_regex_replaces_every_match_in_the_message(void **state)
{
	struct redact r;

	(void)state;
	regex_rule(&r, EMAIL, NULL);
	assert_string_equal(rewrite(&r, "login alice@example.com from bob@x.org ok", 200, 0, 2),
	    "login [REDACTED] from [REDACTED] ok");
	assert_string_equal(rewrite(&r, "alice@example.com", 200, 0, 1), "[REDACTED]");
	assert_string_equal(rewrite(&r, "nothing to hide", 200, 0, 0), "nothing to hide");
	assert_string_equal(rewrite(&r, "", 200, 0, 0), "");
	redact_free(&r);

	regex_rule(&r, EMAIL, "<email>");
	assert_string_equal(rewrite(&r, "to a@b.c", 200, 0, 1), "to <email>");
	redact_free(&r);
	regex_rule(&r, EMAIL, "");
	assert_string_equal(rewrite(&r, "to a@b.c!", 200, 0, 1), "to !");
	redact_free(&r);
}

static void
test_regex_empty_matches_end_and_hide_nothing(void **state)
{
	struct redact r;

	(void)state;
	regex_rule(&r, "[0-9]*", "#");
	assert_string_equal(rewrite(&r, "ab12c3", 200, 0, 2), "ab#c#");
	assert_string_equal(rewrite(&r, "abc", 200, 0, 0), "abc");
	redact_free(&r);
	regex_rule(&r, "^|$", "#");
	assert_string_equal(rewrite(&r, "abc", 200, 0, 0), "abc");
	redact_free(&r);
}

static void
test_regex_anchor_matches_only_at_the_start_of_the_message(void **state)
{
	struct redact r;

	(void)state;
	regex_rule(&r, "^a", "#");
	assert_string_equal(rewrite(&r, "aaa", 200, 0, 1), "#aa");
	redact_free(&r);
	regex_rule(&r, "a$", "#");
	assert_string_equal(rewrite(&r, "aaa", 200, 0, 1), "aa#");
	redact_free(&r);
}

static void
test_regex_reads_only_the_value_bytes_nul_included(void **state)
{
	struct redact r;
	uint8_t out[64];
	size_t outlen, matches;
	static const uint8_t in[] = "x\0secret@example.com|tail@example.com";

	(void)state;
	regex_rule(&r, EMAIL, "#");
	/* The value ends before "|tail...": that match is not the value's. */
	assert_int_equal(redact_regex(&r, in, 20, out, sizeof(out), &outlen, &matches), 0);
	assert_int_equal(matches, 1);
	assert_int_equal(outlen, 3);
	assert_memory_equal(out, "x\0#", 3);
	redact_free(&r);
}

static void
test_regex_result_past_its_bound_fails_closed_to_the_marker(void **state)
{
	struct redact r;

	(void)state;
	regex_rule(&r, "@", "[a long replacement]");
	/* 10 bytes fit as they are; with the replacement they would not. */
	assert_string_equal(rewrite(&r, "a@b@c@d@ef", 40, -EMSGSIZE, 0), REDACT_FAILED_MARK);
	/* A bound below the marker itself still shows no clear text. */
	assert_string_equal(rewrite(&r, "a@b@c@d@ef", 5, -EMSGSIZE, 0), "[reda");
	/* Without a match the text is copied, and a text past the bound fails too. */
	assert_string_equal(rewrite(&r, "no match here, but long", 20, -EMSGSIZE, 0),
	    REDACT_FAILED_MARK);
	redact_free(&r);
}

static void
test_regex_without_output_measures_the_result_however_long(void **state)
{
	struct redact r;
	size_t outlen = 0, matches = 0;
	static const char in[] = "to a@b.c and d@e.f";

	(void)state;
	regex_rule(&r, EMAIL, "[a long replacement]");
	assert_int_equal(redact_regex(&r, (const uint8_t *)in, strlen(in), NULL, 0, &outlen,
	    &matches), 0);
	assert_int_equal(matches, 2);
	assert_int_equal(outlen, strlen("to [a long replacement] and [a long replacement]"));
	assert_int_equal(redact_regex(&r, (const uint8_t *)"none", 4, NULL, 0, &outlen,
	    &matches), 0);
	assert_int_equal(matches, 0);
	assert_int_equal(outlen, 4);
	redact_free(&r);
}

static void
test_regex_that_does_not_compile_is_refused_naming_it(void **state)
{
	struct redact_options o = { .method = REDACT_REGEX, .pattern = "([a-z" };
	const char *err;

	(void)state;
	err = init_error(&o);
	assert_non_null(strstr(err, "'([a-z'"));
	assert_non_null(strstr(err, "POSIX extended regex"));
	o.pattern = NULL;
	assert_non_null(strstr(init_error(&o), "pattern"));
}

static void
test_method_names_parse_and_print(void **state)
{
	enum redact_method m;

	(void)state;
	assert_int_equal(redact_method_parse("hash", &m), 0);
	assert_int_equal(m, REDACT_HASH);
	assert_int_equal(redact_method_parse("mask_ip", &m), 0);
	assert_int_equal(m, REDACT_MASK_IP);
	assert_int_equal(redact_method_parse("drop", &m), 0);
	assert_int_equal(m, REDACT_DROP);
	assert_int_equal(redact_method_parse("regex", &m), 0);
	assert_int_equal(m, REDACT_REGEX);
	assert_int_equal(redact_method_parse("sha256", &m), -EINVAL);
	assert_string_equal(redact_method_name(REDACT_MASK_IP), "mask_ip");
}

/* An event "user=alice@example.com ip=192.0.2.77" with fields of each type. */
#define MSG "user=alice@example.com ip=192.0.2.77"

static struct event_field
field(const char *key, enum event_value_type type)
{
	struct event_field f = { .key = { (const uint8_t *)key, strlen(key) }, .type = type };

	return f;
}

static struct event_field
slice_field(const char *key, uint32_t offset, uint32_t length)
{
	struct event_field f = field(key, EVENT_SLICE);

	f.v.slice.offset = offset;
	f.v.slice.length = length;
	return f;
}

static struct event_field
text_field(const char *key, const char *text)
{
	struct event_field f = field(key, EVENT_TEXT);

	f.v.text.ptr = (const uint8_t *)text;
	f.v.text.len = strlen(text);
	return f;
}

static struct event
event(void)
{
	struct event ev = { .message = { (const uint8_t *)MSG, strlen(MSG) } };

	return ev;
}

static void
assert_text(const struct event_field *f, const char *key, const char *text)
{
	assert_int_equal(f->type, EVENT_TEXT);
	assert_int_equal(f->key.len, strlen(key));
	assert_memory_equal(f->key.ptr, key, f->key.len);
	assert_int_equal(f->v.text.len, strlen(text));
	assert_memory_equal(f->v.text.ptr, text, f->v.text.len);
}

static void
test_field_hash_takes_a_slice_as_its_string_and_an_integer_as_its_decimal(void **state)
{
	struct redact r;
	struct event ev = event();
	struct event_field f, res;
	uint8_t out[REDACT_HASH_LEN];
	char want[REDACT_HASH_LEN + 1];
	bool failed = true;

	(void)state;
	hash_rule(&r, key_file("key", "0123456789abcdef0123456789abcdef", 32, 0600));
	f = slice_field("user", 5, 17);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_SET);
	assert_false(failed);
	assert_int_equal(redact_hash(&r, (const uint8_t *)"alice@example.com", 17, want), 0);
	assert_text(&res, "user", want);
	/* The same value as TEXT hashes the same: joins across sources hold. */
	f = text_field("user", "alice@example.com");
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_SET);
	assert_text(&res, "user", want);

	f = field("user_id", EVENT_INTEGER);
	f.v.integer = -42;
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_SET);
	assert_int_equal(redact_hash(&r, (const uint8_t *)"-42", 3, want), 0);
	assert_text(&res, "user_id", want);

	f = field("tags", EVENT_JSON);
	f.v.json.ptr = (const uint8_t *)"[\"a\"]";
	f.v.json.len = 5;
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_SET);
	assert_int_equal(redact_hash(&r, (const uint8_t *)"[\"a\"]", 5, want), 0);
	assert_text(&res, "tags", want);
	redact_free(&r);
}

static void
test_field_that_cannot_be_hashed_is_removed_and_marked_failed(void **state)
{
	struct redact r;
	struct event ev = event();
	struct event_field f, res;
	uint8_t out[REDACT_HASH_LEN];
	bool failed = false;

	(void)state;
	hash_rule(&r, key_file("key", "0123456789abcdef0123456789abcdef", 32, 0600));
	f = field("vip", EVENT_BOOLEAN);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_true(failed);
	failed = false;
	f = field("score", EVENT_NUMBER);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_true(failed);
	failed = false;
	f = slice_field("user", 30, 17);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_true(failed);
	failed = false;
	f = slice_field("user", 5, 17);
	assert_int_equal(redact_field(&r, &ev, &f, out, REDACT_HASH_LEN - 1, &res, &failed),
	    REDACT_REMOVE);
	assert_true(failed);
	/* A null has nothing to hide. */
	failed = true;
	f = field("user", EVENT_NULL);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_KEEP);
	assert_false(failed);
	redact_free(&r);
}

static void
test_field_mask_ip_masks_an_address_and_removes_anything_else(void **state)
{
	struct redact r;
	struct redact_options o = { .method = REDACT_MASK_IP };
	struct event ev = event();
	struct event_field f, res;
	uint8_t out[REDACT_IP_MAX];
	char err[128];
	bool failed = true;

	(void)state;
	assert_int_equal(redact_init(&r, &o, err, sizeof(err)), 0);
	f = slice_field("ip", 26, 10);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_SET);
	assert_false(failed);
	assert_text(&res, "ip", "192.0.2.0");
	f = slice_field("ip", 5, 17);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_true(failed);
	failed = false;
	f = field("ip", EVENT_INTEGER);
	f.v.integer = 3221226061;
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_true(failed);
	redact_free(&r);
}

static void
test_field_drop_removes_any_value(void **state)
{
	struct redact r;
	struct redact_options o = { .method = REDACT_DROP };
	struct event ev = event();
	struct event_field f = text_field("password", "hunter2"), res;
	uint8_t out[8];
	char err[128];
	bool failed = true;

	(void)state;
	assert_int_equal(redact_init(&r, &o, err, sizeof(err)), 0);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_false(failed);
	f = field("password", EVENT_BOOLEAN);
	assert_int_equal(redact_field(&r, &ev, &f, out, sizeof(out), &res, &failed), REDACT_REMOVE);
	assert_false(failed);
	redact_free(&r);
}

/* ------------------------------------------------------------ the stage */

static const struct processor_context ctx = {
	.host = "web-01", .agent_id = "web-01", .source = "app", .config_file = "agent.yaml",
};

/* A list of up to 4 redact processors, as the configuration makes them. */
struct rlist {
	struct agent_processor p[4];
	struct config_list list;
};

static struct agent_processor *
rlist_add(struct rlist *l, const char *field, enum redact_method method)
{
	struct agent_processor *p = &l->p[l->list.n];

	assert_true(l->list.n < 4);
	memset(p, 0, sizeof(*p));
	p->type = PROCESSOR_REDACT;
	p->field = (char *)field;
	p->method = (int)method;
	l->list.items = l->p;
	l->list.n++;
	return p;
}

/* Compiles l with an arena of arena bytes; NULL and *err set when it does not compile. */
static struct processors *
rchain(const struct rlist *l, size_t arena, const char **err)
{
	static struct processors_error e;
	const struct config_list *lists[] = { &l->list };
	struct processors *c = NULL;

	if (processors_compile(lists, 1, &ctx, arena, &c, &e) != 0) {
		assert_null(c);
		*err = e.msg;
		return NULL;
	}
	assert_non_null(c);
	return c;
}

static struct processors *
rchain_ok(const struct rlist *l, size_t arena)
{
	const char *err = NULL;
	struct processors *c = rchain(l, arena, &err);

	if (c == NULL)
		fail_msg("compile: %s", err);
	return c;
}

/* Runs c on ev (which it keeps), counted as the door does; returns what the spool would get. */
static const struct event *
rrun(struct processors *c, const struct event *ev)
{
	const struct event *out = NULL;
	size_t marks = 0;

	assert_int_equal(processors_run(c, ev, 0, &out, &marks), PROCESSORS_KEEP);
	processors_count(c);
	return out;
}

/* The value of field key in ev as text ("" for a non-text type), NULL when absent. */
static const char *
value_of(const struct event *ev, const char *key)
{
	static char out[256];

	for (size_t i = 0; i < ev->nfields; i++) {
		const struct event_field *f = &ev->fields[i];
		struct pbslice v;

		if (f->key.len != strlen(key) || memcmp(f->key.ptr, key, f->key.len) != 0)
			continue;
		out[0] = '\0';
		if (event_field_string(ev, f, &v) == 0)
			snprintf(out, sizeof(out), "%.*s", (int)v.len, (const char *)v.ptr);
		return out;
	}
	return NULL;
}

static const char *
message_of(const struct event *ev)
{
	static char out[512];

	snprintf(out, sizeof(out), "%.*s", (int)ev->message.len, (const char *)ev->message.ptr);
	return out;
}

static void
redact_stats_of(struct processors *c, struct redact_stats *st)
{
	processors_get_type_stats(c, PROCESSOR_REDACT, st);
}

#define KEY32 "0123456789abcdef0123456789abcdef"

static void
test_stage_hashes_masks_and_drops_the_fields_it_names(void **state)
{
	struct rlist l = { 0 };
	struct processors *c;
	struct event_field f[5];
	struct event ev = event();
	const struct event *out;
	struct redact_stats st;
	struct redact r;
	char want[REDACT_HASH_LEN + 1];

	(void)state;
	rlist_add(&l, "email", REDACT_HASH)->key_file = (char *)key_file("key", KEY32, 32, 0600);
	rlist_add(&l, NULL, REDACT_MASK_IP)->fields = (struct config_list){
		.items = (char *[]){ "ip", "client_ip" }, .n = 2 };
	rlist_add(&l, "user", REDACT_DROP);
	c = rchain_ok(&l, 4096);
	f[0] = slice_field("email", 5, 17);
	f[1] = slice_field("ip", 26, 10);
	f[2] = text_field("client_ip", "unknown");
	f[3] = text_field("user", "alice");
	f[4] = text_field("path", "/login");
	ev.fields = f;
	ev.nfields = 5;
	out = rrun(c, &ev);

	hash_rule(&r, key_file("key", KEY32, 32, 0600));
	assert_int_equal(redact_hash(&r, (const uint8_t *)"alice@example.com", 17, want), 0);
	redact_free(&r);
	assert_int_equal(out->nfields, 3);
	assert_string_equal(value_of(out, "email"), want);
	assert_string_equal(value_of(out, "ip"), "192.0.2.0");
	assert_null(value_of(out, "client_ip"));
	assert_null(value_of(out, "user"));
	assert_string_equal(value_of(out, "path"), "/login");
	/* The message is another stage's business (regex): here it is as it was. */
	assert_string_equal(message_of(out), MSG);
	redact_stats_of(c, &st);
	assert_int_equal(st.redacted, 3);
	assert_int_equal(st.failed, 1);
	processors_free(c);
}

static void
test_stage_regex_rewrites_the_message_and_its_slices_keep_their_values(void **state)
{
	struct rlist l = { 0 };
	struct processors *c;
	struct event_field f[2];
	struct event ev = event();
	const struct event *out;
	struct redact_stats st;

	(void)state;
	rlist_add(&l, NULL, REDACT_REGEX)->pattern = EMAIL;
	rlist_add(&l, NULL, REDACT_REGEX)->pattern = "[0-9]{1,3}([.][0-9]{1,3}){3}";
	l.p[1].replacement = "[ip]";
	c = rchain_ok(&l, 4096);
	f[0] = slice_field("user", 5, 17);
	f[1] = slice_field("ip", 26, 10);
	ev.fields = f;
	ev.nfields = 2;
	out = rrun(c, &ev);
	assert_string_equal(message_of(out), "user=[REDACTED] ip=[ip]");
	/* Fields the message held keep their values: hiding them is their own stage's work. */
	assert_int_equal(out->fields[0].type, EVENT_TEXT);
	assert_string_equal(value_of(out, "user"), "alice@example.com");
	assert_string_equal(value_of(out, "ip"), "192.0.2.77");
	redact_stats_of(c, &st);
	assert_int_equal(st.redacted, 2);
	assert_int_equal(st.failed, 0);

	/* Without a match nothing changes, nothing is copied. */
	ev.message = (struct pbslice){ (const uint8_t *)"nothing here", 12 };
	ev.nfields = 0;
	out = rrun(c, &ev);
	assert_ptr_equal(out->message.ptr, ev.message.ptr);
	processors_free(c);
}

static void
test_stage_regex_past_processor_buffer_fails_closed_to_the_marker(void **state)
{
	struct rlist l = { 0 };
	struct processors *c;
	struct event ev = event();
	const struct event *out;
	struct redact_stats st;
	char msg[300];

	(void)state;
	rlist_add(&l, NULL, REDACT_REGEX)->pattern = "@";
	l.p[0].replacement = "[a long replacement for an at sign]";
	c = rchain_ok(&l, 256);
	memset(msg, '@', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	ev.message = (struct pbslice){ (const uint8_t *)msg, strlen(msg) };
	out = rrun(c, &ev);
	assert_string_equal(message_of(out), REDACT_FAILED_MARK);
	redact_stats_of(c, &st);
	assert_int_equal(st.failed, 1);

	/* A field too: its value becomes the marker, as the message does. */
	{
		struct event_field f[1] = { text_field("note", "a@b@c@d@e@f@g@h@i@j@k") };

		ev.message = (struct pbslice){ (const uint8_t *)"m", 1 };
		ev.fields = f;
		ev.nfields = 1;
		l.p[0].field = "note";
		processors_free(c);
		c = rchain_ok(&l, 256);
		out = rrun(c, &ev);
		assert_string_equal(value_of(out, "note"), REDACT_FAILED_MARK);
		assert_string_equal(message_of(out), "m");
		l.p[0].field = NULL;
		processors_free(c);
		c = rchain_ok(&l, 256);
		ev.message = (struct pbslice){ (const uint8_t *)msg, strlen(msg) };
		ev.nfields = 0;
	}
	/* A message past the room but without a match has nothing to hide: it goes as it is. */
	memset(msg, 'x', sizeof(msg) - 1);
	out = rrun(c, &ev);
	assert_string_equal(message_of(out), msg);
	redact_stats_of(c, &st);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.redacted, 0);
	processors_free(c);
}

static void
test_stage_regex_on_named_fields_leaves_the_message(void **state)
{
	struct rlist l = { 0 };
	struct processors *c;
	struct event_field f[1];
	struct event ev = event();
	const struct event *out;

	(void)state;
	rlist_add(&l, "note", REDACT_REGEX)->pattern = EMAIL;
	c = rchain_ok(&l, 4096);
	f[0] = text_field("note", "write to bob@example.org today");
	ev.fields = f;
	ev.nfields = 1;
	out = rrun(c, &ev);
	assert_string_equal(value_of(out, "note"), "write to [REDACTED] today");
	assert_string_equal(message_of(out), MSG);
	processors_free(c);
}

/* The message of compiling a list of one processor p (set up by the caller). */
static const char *
compile_error(struct rlist *l)
{
	const char *err = NULL;

	assert_null(rchain(l, 4096, &err));
	return err;
}

static void
test_stage_refuses_keys_its_method_does_not_use(void **state)
{
	struct rlist l = { 0 };

	(void)state;
	rlist_add(&l, "ip", REDACT_MASK_IP)->key_file = "/etc/logferry/redact.key";
	assert_string_equal(compile_error(&l), "key_file is for method hash (this one is mask_ip)");
	l.list.n = 0;
	rlist_add(&l, "email", REDACT_HASH)->pattern = "x";
	l.p[0].key_file = (char *)key_file("key", KEY32, 32, 0600);
	assert_string_equal(compile_error(&l), "pattern is for method regex (this one is hash)");
	l.list.n = 0;
	rlist_add(&l, "user", REDACT_DROP)->replacement = "x";
	assert_string_equal(compile_error(&l), "replacement is for method regex (this one is drop)");
	l.list.n = 0;
	rlist_add(&l, NULL, REDACT_HASH);
	assert_string_equal(compile_error(&l), "method hash needs field or fields: the fields to "
	    "redact");
	l.list.n = 0;
	rlist_add(&l, "a", REDACT_DROP)->fields = (struct config_list){
		.items = (char *[]){ "b" }, .n = 1 };
	assert_string_equal(compile_error(&l), "field and fields cannot both be set: one field, "
	    "or a list");
	/* --check run in /etc/logferry and the daemon in / would read different files. */
	l.list.n = 0;
	rlist_add(&l, "email", REDACT_HASH)->key_file = "redact.key";
	assert_string_equal(compile_error(&l), "key_file 'redact.key' is not an absolute path");
	/* Listed twice, a value would be hashed twice: the hash of a hash. */
	l.list.n = 0;
	rlist_add(&l, NULL, REDACT_MASK_IP)->fields = (struct config_list){
		.items = (char *[]){ "ip", "client_ip", "ip" }, .n = 3 };
	assert_string_equal(compile_error(&l), "fields lists ip twice");
	l.list.n = 0;
	rlist_add(&l, NULL, REDACT_REGEX)->pattern = "([a-z";
	assert_non_null(strstr(compile_error(&l), "'([a-z' is not a POSIX extended regex"));
}

static void
test_stage_with_a_changed_key_file_is_not_the_same_stage(void **state)
{
	struct rlist l = { 0 };
	struct processors *a, *b, *c;

	(void)state;
	rlist_add(&l, "email", REDACT_HASH)->key_file = (char *)key_file("key", KEY32, 32, 0600);
	a = rchain_ok(&l, 4096);
	b = rchain_ok(&l, 4096);
	assert_true(processors_same(a, b));
	l.p[0].key_file = (char *)key_file("key", KEY32 "!", 33, 0600);
	c = rchain_ok(&l, 4096);
	assert_false(processors_same(a, c));
	processors_free(a);
	processors_free(b);
	processors_free(c);
}

static void
test_redacting_with_every_method_allocates_nothing(void **state)
{
	struct rlist l = { 0 };
	struct processors *c;
	struct event_field f[4];
	struct event ev = event();
	unsigned long before;

	(void)state;
	rlist_add(&l, "email", REDACT_HASH)->key_file = (char *)key_file("key", KEY32, 32, 0600);
	rlist_add(&l, "ip", REDACT_MASK_IP);
	rlist_add(&l, "user", REDACT_DROP);
	rlist_add(&l, NULL, REDACT_REGEX)->pattern = EMAIL;
	c = rchain_ok(&l, 4096);
	before = alloc_count();
	/* The compile allocated: the wrappers are in place, and count. */
	assert_true(before > 0);
	for (int i = 0; i < 1000; i++) {
		f[0] = slice_field("email", 5, 17);
		f[1] = slice_field("ip", 26, i % 2 ? 10 : 4);   /* an address, or none */
		f[2] = text_field("user", "alice");
		f[3] = text_field("note", "x");
		ev.fields = f;
		ev.nfields = 4;
		assert_false(strstr(message_of(rrun(c, &ev)), "@") != NULL);
	}
	assert_int_equal(alloc_count() - before, 0);
	processors_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_is_hmac_sha256_of_rfc4231_test_cases_1_and_6),
		cmocka_unit_test(test_hosts_sharing_a_key_hash_alike_and_another_key_differs),
		cmocka_unit_test(test_key_file_trailing_newline_is_not_part_of_the_key),
		cmocka_unit_test(test_key_file_missing_short_long_or_not_a_file_is_refused_naming_it),
		cmocka_unit_test(test_key_file_readable_by_every_user_is_flagged),
		cmocka_unit_test(test_mask_ip_keeps_ipv4_slash_24_and_ipv6_slash_48),
		cmocka_unit_test(test_mask_ip_refuses_what_is_not_exactly_an_address),
		cmocka_unit_test(test_regex_replaces_every_match_in_the_message),
		cmocka_unit_test(test_regex_empty_matches_end_and_hide_nothing),
		cmocka_unit_test(test_regex_anchor_matches_only_at_the_start_of_the_message),
		cmocka_unit_test(test_regex_reads_only_the_value_bytes_nul_included),
		cmocka_unit_test(test_regex_result_past_its_bound_fails_closed_to_the_marker),
		cmocka_unit_test(test_regex_without_output_measures_the_result_however_long),
		cmocka_unit_test(test_regex_that_does_not_compile_is_refused_naming_it),
		cmocka_unit_test(test_method_names_parse_and_print),
		cmocka_unit_test(test_field_hash_takes_a_slice_as_its_string_and_an_integer_as_its_decimal),
		cmocka_unit_test(test_field_that_cannot_be_hashed_is_removed_and_marked_failed),
		cmocka_unit_test(test_field_mask_ip_masks_an_address_and_removes_anything_else),
		cmocka_unit_test(test_field_drop_removes_any_value),
		cmocka_unit_test(test_stage_hashes_masks_and_drops_the_fields_it_names),
		cmocka_unit_test(test_stage_regex_rewrites_the_message_and_its_slices_keep_their_values),
		cmocka_unit_test(test_stage_regex_past_processor_buffer_fails_closed_to_the_marker),
		cmocka_unit_test(test_stage_regex_on_named_fields_leaves_the_message),
		cmocka_unit_test(test_stage_refuses_keys_its_method_does_not_use),
		cmocka_unit_test(test_stage_with_a_changed_key_file_is_not_the_same_stage),
		cmocka_unit_test(test_redacting_with_every_method_allocates_nothing),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
