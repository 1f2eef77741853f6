/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/config.h"

/* A schema exercising every type, flag and rule of the engine. */
struct item {
	char *name;
	int kind;             /* 0 a, 1 b */
	int64_t only_a;
	char *only_b;
	struct config_list aliases;   /* kind b: may be absent, never empty */
};

struct tconf {
	char *name;
	bool flag;
	int64_t count;
	uint64_t size;
	uint64_t wait_ms;
	int color;
	struct config_addr addr;
	struct config_addr url;
	struct config_list tags;      /* char * */
	struct config_list hosts;     /* struct config_addr, comma-split */
	struct config_map props;
	struct {
		uint64_t limit;
		char *label;
	} inner;
	struct config_list items;     /* struct item */
	char *password;
	struct config_secrets secrets;
};

static const char *const colors[] = { "red", "green", "blue", NULL };
static const char *const kinds[] = { "a", "b", NULL };

static const struct config_key elem_tag = { .type = CONFIG_STRING, .flags = CONFIG_NONEMPTY };
static const struct config_key elem_host = { .type = CONFIG_ADDR,
	.schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE) };

static const struct config_key item_keys[] = {
	{ "name", CONFIG_STRING, offsetof(struct item, name), .flags = CONFIG_REQUIRED },
	{ "kind", CONFIG_ENUM, offsetof(struct item, kind), .flags = CONFIG_REQUIRED, .names = kinds },
	{ "only_a", CONFIG_INT, offsetof(struct item, only_a), .def = "7", .only = 1u << 0,
	  .required_when = 0 },
	{ "only_b", CONFIG_STRING, offsetof(struct item, only_b), .only = 1u << 1,
	  .required_when = 1u << 1 },
	{ "aliases", CONFIG_LIST, offsetof(struct item, aliases),
	  .flags = CONFIG_SCALAR_AS_LIST | CONFIG_NONEMPTY, .elem = &elem_tag, .only = 1u << 1 },
	{ NULL },
};
static const struct config_key elem_item = { .type = CONFIG_SECTION, .keys = item_keys,
	.size = sizeof(struct item), .discriminator = "kind" };

#define O(f) offsetof(struct tconf, f)
static const struct config_key inner_keys[] = {
	{ "limit", CONFIG_SIZE, O(inner.limit) - O(inner), .def = "1MiB", .min = 1024, .max = 1 << 30,
	  .help = "A bounded size." },
	{ "label", CONFIG_STRING, O(inner.label) - O(inner), .flags = CONFIG_REQUIRED },
	{ NULL },
};

static const struct config_key tkeys[] = {
	{ "name", CONFIG_STRING, O(name), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "The name." },
	{ "flag", CONFIG_BOOL, O(flag), .def = "false" },
	{ "count", CONFIG_INT, O(count), .def = "3", .min = 1, .max = 10 },
	{ "size", CONFIG_SIZE, O(size), .def = "64KiB" },
	{ "wait", CONFIG_DURATION, O(wait_ms), .def = "250ms", .min = 10, .max = 3600000 },
	{ "color", CONFIG_ENUM, O(color), .def = "green", .names = colors },
	{ "addr", CONFIG_ADDR, O(addr), .def = "127.0.0.1:80", .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE) },
	{ "url", CONFIG_ADDR, O(url), .flags = CONFIG_PORT_ZERO,
	  .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_UDP) | CONFIG_SCHEMES(CONFIG_SCHEME_TCP) |
	      CONFIG_SCHEMES(CONFIG_SCHEME_UNIX) },
	{ "tags", CONFIG_LIST, O(tags), .flags = CONFIG_SCALAR_AS_LIST, .elem = &elem_tag, .def = "x" },
	{ "hosts", CONFIG_LIST, O(hosts), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_SPLIT_COMMAS,
	  .elem = &elem_host },
	{ "props", CONFIG_MAP, O(props), .help = "Free-form pairs." },
	{ "inner", CONFIG_SECTION, O(inner), .keys = inner_keys },
	{ "items", CONFIG_LIST, O(items), .elem = &elem_item },
	{ "password", CONFIG_STRING, O(password), .flags = CONFIG_SECRET },
	{ NULL },
};

static void
tvalidate(struct config_check *c, void *obj)
{
	struct tconf *t = obj;

	if (t->flag && t->count > 5)
		config_error(c, "count", "must be at most 5 when flag is set");
	if (strcmp(t->name, "absent-path") == 0)
		config_error(c, "inner.nowhere", "reported at the nearest present key");
}

static const struct config_schema tschema = {
	.name = "test", .keys = tkeys, .size = sizeof(struct tconf), .validate = tvalidate,
	.secrets = CONFIG_SECRETS_AT(struct tconf, secrets),
};

/* Loads yaml; returns the error output (caller frees) and the result code. */
static char *
load(const char *yaml, struct tconf *t, int *rc)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *err = open_memstream(&out, &outlen);

	assert_non_null(err);
	*rc = config_load_string(&tschema, "t.yaml", yaml, strlen(yaml), t, err);
	fclose(err);
	return out;
}

/* Asserts that yaml fails with exactly the expected error output. */
static void
expect_errors(const char *yaml, const char *expected)
{
	struct tconf t;
	int rc;
	char *out = load(yaml, &t, &rc);

	assert_int_equal(rc, -EINVAL);
	assert_string_equal(out, expected);
	free(out);
	config_free(&tschema, &t);
}

#define MIN "name: n\ninner: {label: l}\n"

static void
test_every_type_is_parsed_into_its_c_type(void **state)
{
	struct tconf t;
	int rc;
	char *out;

	(void)state;
	out = load("name: svc\nflag: yes\ncount: 4\nsize: 2MiB\nwait: 2m\ncolor: blue\n"
	    "addr: '[::1]:7540'\nurl: unix:///run/x.sock\ntags: [a, b]\n"
	    "hosts: 'k1:9092, k2:9093'\nprops: {compression.type: lz4, linger.ms: 5}\n"
	    "inner: {limit: 4KiB, label: here}\n"
	    "items:\n  - {name: one, kind: a, only_a: 9}\n  - {name: two, kind: b, only_b: x}\n",
	    &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_string_equal(t.name, "svc");
	assert_true(t.flag);
	assert_int_equal(t.count, 4);
	assert_int_equal(t.size, 2 << 20);
	assert_int_equal(t.wait_ms, 120000);
	assert_int_equal(t.color, 2);
	assert_int_equal(t.addr.scheme, CONFIG_SCHEME_NONE);
	assert_string_equal(t.addr.host, "::1");
	assert_int_equal(t.addr.port, 7540);
	assert_string_equal(t.addr.text, "[::1]:7540");
	assert_int_equal(t.url.scheme, CONFIG_SCHEME_UNIX);
	assert_string_equal(t.url.path, "/run/x.sock");
	assert_null(t.url.host);
	assert_int_equal(t.tags.n, 2);
	assert_string_equal(((char **)t.tags.items)[1], "b");
	assert_int_equal(t.hosts.n, 2);
	assert_string_equal(((struct config_addr *)t.hosts.items)[1].host, "k2");
	assert_int_equal(((struct config_addr *)t.hosts.items)[1].port, 9093);
	assert_int_equal(t.props.n, 2);
	assert_string_equal(t.props.items[0].key, "compression.type");
	assert_string_equal(t.props.items[0].value, "lz4");
	assert_string_equal(t.props.items[1].value, "5");
	assert_int_equal(t.inner.limit, 4096);
	assert_string_equal(t.inner.label, "here");
	assert_int_equal(t.items.n, 2);
	assert_int_equal(((struct item *)t.items.items)[0].only_a, 9);
	assert_string_equal(((struct item *)t.items.items)[1].only_b, "x");
	free(out);
	config_free(&tschema, &t);
}

static void
test_absent_and_null_keys_take_their_defaults(void **state)
{
	struct tconf t;
	int rc;
	char *out;

	(void)state;
	out = load(MIN "count: ~\nsize:\nitems: [{name: i, kind: a}]\n", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_false(t.flag);
	assert_int_equal(t.count, 3);
	assert_int_equal(t.size, 64 << 10);
	assert_int_equal(t.wait_ms, 250);
	assert_int_equal(t.color, 1);
	assert_string_equal(t.addr.host, "127.0.0.1");
	assert_int_equal(t.addr.port, 80);
	assert_null(t.url.text);
	assert_int_equal(t.tags.n, 1);
	assert_string_equal(((char **)t.tags.items)[0], "x");
	assert_int_equal(t.inner.limit, 1 << 20);
	assert_int_equal(((struct item *)t.items.items)[0].only_a, 7);
	free(out);
	config_free(&tschema, &t);
}

static void
test_scalar_is_accepted_as_a_list_of_one(void **state)
{
	struct tconf t;
	int rc;
	char *out = load(MIN "tags: solo\nhosts: k1:9092\n", &t, &rc);

	(void)state;
	assert_int_equal(rc, 0);
	assert_int_equal(t.tags.n, 1);
	assert_string_equal(((char **)t.tags.items)[0], "solo");
	assert_int_equal(t.hosts.n, 1);
	free(out);
	config_free(&tschema, &t);
}

static void
test_unknown_key_suggests_the_nearest_name(void **state)
{
	(void)state;
	expect_errors(MIN "colour: red\n", "t.yaml:3: colour: unknown key (did you mean color?)\n");
	expect_errors(MIN "inner2: {}\n", "t.yaml:3: inner2: unknown key (did you mean inner?)\n");
	expect_errors("name: n\ninner: {label: l, limitt: 1MiB}\n",
	    "t.yaml:2: inner.limitt: unknown key (did you mean limit?)\n");
	expect_errors(MIN "zzzzzz: 1\n", "t.yaml:3: zzzzzz: unknown key\n");
}

static void
test_wrong_scalar_values_say_what_is_expected(void **state)
{
	(void)state;
	expect_errors(MIN "flag: maybe\n", "t.yaml:3: flag: 'maybe' is not a boolean: use true or false\n");
	expect_errors(MIN "count: 3x\n", "t.yaml:3: count: '3x' is not an integer\n");
	expect_errors(MIN "size: 64MB\n",
	    "t.yaml:3: size: '64MB' is not a size: use a whole number with B, KiB, MiB or GiB (e.g. 64MiB)\n");
	expect_errors(MIN "size: 1.5MiB\n",
	    "t.yaml:3: size: '1.5MiB' is not a size: use a whole number with B, KiB, MiB or GiB (e.g. 64MiB)\n");
	expect_errors(MIN "wait: 30\n",
	    "t.yaml:3: wait: '30' is not a duration: use a whole number with ms, s, m or h (e.g. 30s)\n");
	expect_errors(MIN "wait: 5d\n",
	    "t.yaml:3: wait: '5d' is not a duration: use a whole number with ms, s, m or h (e.g. 30s)\n");
	expect_errors(MIN "color: pink\n", "t.yaml:3: color: 'pink' is not one of: red, green, blue\n");
}

static void
test_values_out_of_bounds_name_the_bound(void **state)
{
	(void)state;
	expect_errors(MIN "count: 0\n", "t.yaml:3: count: 0 is below the minimum of 1\n");
	expect_errors(MIN "count: 11\n", "t.yaml:3: count: 11 is above the maximum of 10\n");
	expect_errors(MIN "count: 99999999999999999999\n",
	    "t.yaml:3: count: '99999999999999999999' is not an integer\n");
	expect_errors(MIN "wait: 5ms\n", "t.yaml:3: wait: 5ms is below the minimum of 10ms\n");
	expect_errors(MIN "wait: 2h\n", "t.yaml:3: wait: 2h is above the maximum of 1h\n");
	expect_errors("name: n\ninner: {label: l, limit: 512B}\n",
	    "t.yaml:2: inner.limit: 512B is below the minimum of 1KiB\n");
	expect_errors("name: n\ninner: {label: l, limit: 2GiB}\n",
	    "t.yaml:2: inner.limit: 2GiB is above the maximum of 1GiB\n");
	expect_errors(MIN "size: 99999999999TiB\n",
	    "t.yaml:3: size: '99999999999TiB' is not a size: use a whole number with B, KiB, MiB or GiB (e.g. 64MiB)\n");
}

static void
test_addresses_are_checked(void **state)
{
	(void)state;
	expect_errors(MIN "addr: localhost\n",
	    "t.yaml:3: addr: 'localhost' is not host:port: the port is missing\n");
	expect_errors(MIN "addr: ':80'\n", "t.yaml:3: addr: ':80' is not host:port: the host is missing\n");
	expect_errors(MIN "addr: h:0\n", "t.yaml:3: addr: 'h:0' has an invalid port: use 1 to 65535\n");
	expect_errors(MIN "addr: h:70000\n", "t.yaml:3: addr: 'h:70000' has an invalid port: use 1 to 65535\n");
	expect_errors(MIN "addr: ::1:80\n",
	    "t.yaml:3: addr: '::1:80' is not host:port: write an IPv6 address as [addr]:port\n");
	expect_errors(MIN "addr: tcp://h:80\n",
	    "t.yaml:3: addr: 'tcp://h:80' is not a valid address: expected host:port\n");
	expect_errors(MIN "url: h:80\n",
	    "t.yaml:3: url: 'h:80' is not a valid address: expected udp://host:port, tcp://host:port, unix:///path\n");
	expect_errors(MIN "url: unix://relative\n",
	    "t.yaml:3: url: 'unix://relative' is not a valid socket: expected unix:///absolute/path of at most 107 bytes\n");
	expect_errors(MIN "hosts: 'k1:9092,,k2:1'\n",
	    "t.yaml:3: hosts[1]: '' is not host:port: the port is missing\n");
}

static void
test_port_zero_is_allowed_only_where_flagged(void **state)
{
	struct tconf t;
	int rc;
	char *out = load(MIN "url: tcp://127.0.0.1:0\n", &t, &rc);

	(void)state;
	assert_int_equal(rc, 0);
	assert_int_equal(t.url.port, 0);
	free(out);
	config_free(&tschema, &t);
}

static void
test_wrong_node_kinds_are_reported(void **state)
{
	(void)state;
	expect_errors(MIN "count: [1, 2]\n", "t.yaml:3: count: expected a single value, not a list\n");
	expect_errors(MIN "tags: {a: b}\n", "t.yaml:3: tags: expected a list, not a mapping\n");
	expect_errors("name: n\ninner: 5\n",
	    "t.yaml:2: inner: expected a mapping, not a single value\n");
	expect_errors(MIN "props: [a]\n", "t.yaml:3: props: expected a mapping, not a list\n");
	expect_errors(MIN "props: {a: [1]}\n", "t.yaml:3: props.a: expected a single value, not a list\n");
	expect_errors("- a\n- b\n", "t.yaml:1: (top level): expected a mapping, not a list\n");
}

static void
test_missing_required_keys_are_reported_at_their_parent(void **state)
{
	(void)state;
	expect_errors("inner: {label: l}\n", "t.yaml:1: name: missing: this key is required\n");
	expect_errors("name: n\ninner:\n  limit: 4KiB\n",
	    "t.yaml:2: inner.label: missing: this key is required\n");
	expect_errors("", "t.yaml:1: name: missing: this key is required\n");
	expect_errors(MIN "items:\n  - {kind: a}\n", "t.yaml:4: items[0].name: missing: this key is required\n");
}

static void
test_discriminator_restricts_and_requires_keys(void **state)
{
	(void)state;
	expect_errors(MIN "items:\n  - {name: x, kind: b}\n",
	    "t.yaml:4: items[0].only_b: missing: required when kind is b\n");
	expect_errors(MIN "items:\n  - {name: x, kind: b, only_b: y, only_a: 1}\n",
	    "t.yaml:4: items[0].only_a: only valid when kind is a\n");
	expect_errors(MIN "items:\n  - name: x\n    kind: a\n    only_b: y\n",
	    "t.yaml:6: items[0].only_b: only valid when kind is b\n");
}

static void
test_duplicate_keys_name_the_first_line(void **state)
{
	(void)state;
	expect_errors(MIN "count: 1\ncount: 2\n", "t.yaml:4: count: duplicate key (first set on line 3)\n");
	expect_errors(MIN "props: {a: 1, a: 2}\n", "t.yaml:3: props.a: duplicate key\n");
}

static void
test_empty_string_is_refused_where_nonempty(void **state)
{
	(void)state;
	expect_errors("name: ''\ninner: {label: l}\n", "t.yaml:1: name: must not be empty\n");
	expect_errors(MIN "tags: ['']\n", "t.yaml:3: tags[0]: must not be empty\n");
}

static void
test_yaml_syntax_error_gives_its_line(void **state)
{
	(void)state;
	expect_errors("name: n\ninner: {label: l\ncount: 1\n",
	    "t.yaml:3: YAML syntax error: did not find expected ',' or '}' while parsing a flow mapping\n");
	expect_errors("name: n\n  bad: indent\n",
	    "t.yaml:2: YAML syntax error: mapping values are not allowed in this context\n");
}

static void
test_all_errors_are_reported_in_one_run(void **state)
{
	(void)state;
	expect_errors("count: 0\ncolor: pink\nbogus: 1\n",
	    "t.yaml:1: count: 0 is below the minimum of 1\n"
	    "t.yaml:2: color: 'pink' is not one of: red, green, blue\n"
	    "t.yaml:3: bogus: unknown key\n"
	    "t.yaml:1: name: missing: this key is required\n");
}

static void
test_validator_errors_locate_the_key_or_its_parent(void **state)
{
	(void)state;
	expect_errors(MIN "flag: true\ncount: 8\n",
	    "t.yaml:4: count: must be at most 5 when flag is set\n");
	expect_errors("name: absent-path\ninner:\n  label: l\n",
	    "t.yaml:2: inner.nowhere: reported at the nearest present key\n");
}

static void
test_unreadable_file_is_reported_with_errno(void **state)
{
	struct tconf t;
	char *out = NULL;
	size_t len = 0;
	FILE *err = open_memstream(&out, &len);

	(void)state;
	assert_int_equal(config_load_file(&tschema, "/nonexistent/x.yaml", &t, err), -ENOENT);
	fclose(err);
	assert_string_equal(out,
	    "/nonexistent/x.yaml: cannot read the configuration: No such file or directory\n");
	free(out);
	config_free(&tschema, &t);
}

static void
test_too_many_errors_stop_being_printed(void **state)
{
	struct tconf t;
	char yaml[8192];
	size_t n = 0;
	int rc, lines = 0;
	char *out;

	(void)state;
	n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, MIN);
	for (int i = 0; i < 80; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "bogus%d: 1\n", i);
	out = load(yaml, &t, &rc);
	assert_int_equal(rc, -EINVAL);
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 50);
	assert_non_null(strstr(out, "t.yaml: too many errors, giving up\n"));
	free(out);
	config_free(&tschema, &t);
}

static void
test_dump_reloads_to_the_same_configuration(void **state)
{
	struct tconf t, t2;
	char *dump1 = NULL, *dump2 = NULL, *out;
	size_t l1 = 0, l2 = 0;
	FILE *f;
	int rc;

	(void)state;
	out = load("name: \"q\\\"uote\"\nflag: on\nwait: 90s\nurl: udp://[::1]:514\n"
	    "hosts: [a:1, b:2]\nprops: {x: '1'}\ninner: {label: l}\n"
	    "items:\n  - {name: one, kind: a}\n  - {name: two, kind: b, only_b: z}\n", &t, &rc);
	assert_int_equal(rc, 0);
	free(out);
	f = open_memstream(&dump1, &l1);
	config_dump(&tschema, &t, f);
	fclose(f);
	assert_non_null(strstr(dump1, "wait: 90s\n"));
	assert_non_null(strstr(dump1, "name: \"q\\\"uote\"\n"));
	out = load(dump1, &t2, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	free(out);
	f = open_memstream(&dump2, &l2);
	config_dump(&tschema, &t2, f);
	fclose(f);
	assert_string_equal(dump1, dump2);
	free(dump1);
	free(dump2);
	config_free(&tschema, &t);
	config_free(&tschema, &t2);
}

/*
 * An optional section left out of the file (inner, whose label is
 * required) is left out of the dump too: written as "inner:" with no
 * label, the dump would not load again.
 */
static void
test_dump_leaves_out_an_optional_section_that_was_not_given(void **state)
{
	struct tconf t, t2;
	char *dump = NULL, *out;
	size_t len = 0;
	FILE *f;
	int rc;

	(void)state;
	out = load("name: n\n", &t, &rc);
	assert_int_equal(rc, 0);
	free(out);
	f = open_memstream(&dump, &len);
	config_dump(&tschema, &t, f);
	fclose(f);
	assert_null(strstr(dump, "inner:"));
	out = load(dump, &t2, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	free(out);
	free(dump);
	config_free(&tschema, &t);
	config_free(&tschema, &t2);
}

/* What a reload compares: every key, list element and map entry; written differently is the same. */
static void
test_value_equal_compares_every_key_element_and_entry(void **state)
{
	/* One key a line; each change below replaces the line of its key. */
	static const char *const base[] = {
		"name: n\n", "flag: on\n", "wait: 90s\n", "url: udp://[::1]:514\n",
		"hosts: [a:1, b:2]\n", "props: {x: '1'}\n", "inner: {label: l}\n",
		"items: [{name: one, kind: a}]\n", "color: green\n",
	};
	static const struct { size_t line; const char *yaml; } changed[] = {
		{ 1, "flag: off\n" }, { 2, "wait: 91s\n" }, { 3, "url: udp://[::1]:515\n" },
		{ 4, "hosts: [a:1]\n" }, { 4, "hosts: [b:2, a:1]\n" }, { 5, "props: {x: '2'}\n" },
		{ 5, "props: {y: '1'}\n" }, { 6, "inner: {label: m}\n" },
		{ 6, "inner: {label: l, limit: 2MiB}\n" }, { 7, "items: [{name: one, kind: a, only_a: 8}]\n" },
		{ 7, "items: [{name: one, kind: a}, {name: two, kind: a}]\n" }, { 8, "color: red\n" },
	};
	const struct config_key whole = { .type = CONFIG_SECTION, .keys = tkeys,
	    .size = sizeof(struct tconf) };
	struct tconf t, t2;
	char yaml[1024], *out;
	size_t len;
	int rc;

	(void)state;
	len = 0;
	for (size_t l = 0; l < sizeof(base) / sizeof(base[0]); l++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len, "%s", base[l]);
	out = load(yaml, &t, &rc);
	assert_int_equal(rc, 0);
	free(out);
	/* The same settings, spelled otherwise and with defaults written out. */
	out = load("name: n\nflag: true\nwait: 90000ms\nurl: udp://[::1]:514\nhosts: a:1,b:2\n"
	    "props: {x: '1'}\ninner: {label: l, limit: 1MiB}\n"
	    "items: [{name: one, kind: a, only_a: 7}]\n", &t2, &rc);
	assert_int_equal(rc, 0);
	free(out);
	assert_true(config_value_equal(&whole, &t, &t2));
	config_free(&tschema, &t2);
	for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
		len = 0;
		for (size_t l = 0; l < sizeof(base) / sizeof(base[0]); l++)
			len += (size_t)snprintf(yaml + len, sizeof(yaml) - len, "%s",
			    l == changed[i].line ? changed[i].yaml : base[l]);
		out = load(yaml, &t2, &rc);
		assert_int_equal(rc, 0);
		free(out);
		if (config_value_equal(&whole, &t, &t2))
			fail_msg("'%s' is not seen as a change", changed[i].yaml);
		config_free(&tschema, &t2);
	}
	config_free(&tschema, &t);
}

static void
test_reference_lists_every_key_with_type_default_and_help(void **state)
{
	char *ref = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&ref, &len);

	(void)state;
	config_reference(&tschema, f);
	fclose(f);
	assert_non_null(strstr(ref, ".TP\n.B name\n(string, required)\nThe name.\n"));
	assert_non_null(strstr(ref, ".B inner.limit\n(size, 1KiB to 1GiB, default 1MiB)\nA bounded size.\n"));
	assert_non_null(strstr(ref, ".B color\n(one of red, green, blue, default green)\n"));
	assert_non_null(strstr(ref, ".B items[].only_b\n(string, required when kind is b, only when kind is b)\n"));
	free(ref);
}

static void
test_size_and_duration_helpers_round_trip(void **state)
{
	char b[32];
	uint64_t v;

	(void)state;
	assert_int_equal(config_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_size("3GiB", &v), 0);
	assert_int_equal(v, UINT64_C(3) << 30);
	assert_int_equal(config_parse_size("17000000000000000000TiB", &v), -ERANGE);
	assert_int_equal(config_parse_size("-1", &v), -EINVAL);
	assert_int_equal(config_parse_duration("0", &v), 0);
	assert_int_equal(config_parse_duration("1500ms", &v), 0);
	assert_int_equal(v, 1500);
	config_format_size(UINT64_C(64) << 20, b, sizeof(b));
	assert_string_equal(b, "64MiB");
	config_format_size(1000, b, sizeof(b));
	assert_string_equal(b, "1000B");
	config_format_size(0, b, sizeof(b));
	assert_string_equal(b, "0B");
	config_format_duration(1800000, b, sizeof(b));
	assert_string_equal(b, "30m");
	config_format_duration(1500, b, sizeof(b));
	assert_string_equal(b, "1500ms");
	config_format_duration(0, b, sizeof(b));
	assert_string_equal(b, "0");
}


/* ------------------------------------------------- environment variables */

static void
test_env_variables_are_substituted_in_values(void **state)
{
	struct tconf t;
	int rc;
	char *out;

	(void)state;
	setenv("LF_T_NAME", "web-1", 1);
	setenv("LF_T_COUNT", "4", 1);
	setenv("LF_T_PORT", "8080", 1);
	out = load("name: ${LF_T_NAME}\ncount: ${LF_T_COUNT}\naddr: \"127.0.0.1:${LF_T_PORT}\"\n"
	    "tags: [\"a-${LF_T_NAME}-b\", '${LF_T_NAME}']\nprops: {k: \"${LF_T_NAME}\"}\n"
	    "inner: {label: \"${LF_T_NAME}${LF_T_COUNT}\"}\n", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_string_equal(t.name, "web-1");
	assert_int_equal(t.count, 4);
	assert_int_equal(t.addr.port, 8080);
	assert_string_equal(((char **)t.tags.items)[0], "a-web-1-b");
	assert_string_equal(((char **)t.tags.items)[1], "web-1");
	assert_string_equal(t.props.items[0].value, "web-1");
	assert_string_equal(t.inner.label, "web-14");
	free(out);
	config_free(&tschema, &t);
}

static void
test_env_default_applies_when_unset_or_empty(void **state)
{
	struct tconf t;
	int rc;
	char *out;

	(void)state;
	unsetenv("LF_T_UNSET");
	setenv("LF_T_EMPTY", "", 1);
	setenv("LF_T_NAME", "set", 1);
	out = load("name: ${LF_T_UNSET:-fallback}\ncount: ${LF_T_EMPTY:-6}\n"
	    "inner: {label: \"${LF_T_NAME:-unused}/${LF_T_UNSET:-}/${LF_T_EMPTY}\"}\n", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_string_equal(t.name, "fallback");
	assert_int_equal(t.count, 6);
	assert_string_equal(t.inner.label, "set//");
	free(out);
	config_free(&tschema, &t);
}

static void
test_env_variable_without_default_is_an_error_at_its_line(void **state)
{
	(void)state;
	unsetenv("LF_T_UNSET");
	unsetenv("HOSTNAME_LF_T");
	expect_errors(MIN "flag: true\nprops:\n  a: \"x ${LF_T_UNSET} y\"\ntags: [ok, \"${HOSTNAME_LF_T}\"]\n",
	    "t.yaml:5: props.a: environment variable LF_T_UNSET is not set: set it, or give a "
	    "default with ${LF_T_UNSET:-value}\n"
	    "t.yaml:6: tags[1]: environment variable HOSTNAME_LF_T is not set: set it, or give a "
	    "default with ${HOSTNAME_LF_T:-value}\n");
}

static void
test_env_reference_that_is_not_closed_is_an_error(void **state)
{
	(void)state;
	expect_errors(MIN "tags: \"${LF_T_NAME\"\n",
	    "t.yaml:3: tags: '${LF_T_NAME' is not a variable reference: write ${NAME} or "
	    "${NAME:-default}, or $${ for a literal ${\n");
	expect_errors(MIN "tags: \"${LF_T_NAME-x}\"\n",
	    "t.yaml:3: tags: '${LF_T_NAME-x}' is not a variable reference: write ${NAME} or "
	    "${NAME:-default}, or $${ for a literal ${\n");
}

static void
test_double_dollar_brace_is_a_literal_dollar_brace(void **state)
{
	struct tconf t;
	int rc;
	char *out;

	(void)state;
	setenv("HOME", "/root", 1);
	out = load("name: \"$${HOME} costs $$5 and $1\"\ninner: {label: l}\n", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_string_equal(t.name, "${HOME} costs $$5 and $1");
	free(out);
	config_free(&tschema, &t);
}

static void
test_topic_template_placeholders_are_not_environment_variables(void **state)
{
	struct tconf t;
	int rc;
	char *out;

	(void)state;
	/* Lower case names belong to the relay's templates, even when the environment has them. */
	setenv("stream", "from-env", 1);
	out = load("name: \"logs.${stream}.${fields.app}\"\ninner: {label: \"${host}\"}\n", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_string_equal(t.name, "logs.${stream}.${fields.app}");
	assert_string_equal(t.inner.label, "${host}");
	free(out);
	config_free(&tschema, &t);
	unsetenv("stream");
}

static void
test_env_variables_are_not_expanded_in_comments_or_keys(void **state)
{
	(void)state;
	unsetenv("LF_T_UNSET");
	/* A comment may mention a variable; a key is never one. */
	expect_errors(MIN "# ${LF_T_UNSET} is documented here\n${LF_T_UNSET}: 1\n",
	    "t.yaml:4: ${LF_T_UNSET}: unknown key\n");
}


/* --------------------------------------------------- include directory */

/* A fresh directory for one test's files (the caller removes it with rm_tree). */
static char *
make_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	char *dir;

	assert_true(asprintf(&dir, "%s/lf-config-XXXXXX", tmp && tmp[0] ? tmp : "/tmp") > 0);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void
make_subdir(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void
rm_tree(char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

/* Loads dir/name from disk; returns the error output with dir replaced by "D". */
static char *
load_file(const char *dir, const char *name, struct tconf *t, int *rc)
{
	char path[512], *out = NULL, *res, *p, *q;
	size_t outlen = 0, dlen = strlen(dir);
	FILE *err = open_memstream(&out, &outlen);

	assert_non_null(err);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*rc = config_load_file(&tschema, path, t, err);
	fclose(err);
	res = calloc(1, outlen + 1);
	assert_non_null(res);
	for (p = out, q = res; *p; ) {
		if (strncmp(p, dir, dlen) == 0) {
			*q++ = 'D';
			p += dlen;
		} else {
			*q++ = *p++;
		}
	}
	free(out);
	return res;
}

/* Asserts that dir/t.yaml fails to load with exactly the expected output. */
static void
expect_file_errors(const char *dir, const char *expected)
{
	struct tconf t;
	int rc;
	char *out = load_file(dir, "t.yaml", &t, &rc);

	assert_int_equal(rc, -EINVAL);
	assert_string_equal(out, expected);
	free(out);
	config_free(&tschema, &t);
}

/* A main file t.yaml (name, inner.label and count: 2) with an empty t.d beside it. */
static void
write_main_with_include_dir(const char *dir)
{
	write_file(dir, "t.yaml", "name: main\ninner: {label: l}\ncount: 2\n");
	make_subdir(dir, "t.d");
}

static void
test_include_dir_appends_sources_and_overrides_scalars(void **state)
{
	char *dir = make_dir(), *out;
	struct tconf t;
	int rc;

	(void)state;
	write_file(dir, "t.yaml", "name: main\ncount: 2\ntags: [a, b]\nprops: {x: '1', y: '2'}\n"
	    "inner: {label: l, limit: 2KiB}\nitems:\n  - {name: one, kind: a}\n");
	make_subdir(dir, "t.d");
	/* Applied in name order: 10-a, then 20-b; other names are not configuration. */
	write_file(dir, "t.d/20-b.yaml", "count: 5\nitems:\n  - {name: three, kind: a}\n");
	write_file(dir, "t.d/10-a.yaml", "count: 4\ntags: [c]\nprops: {y: '3', z: '4'}\n"
	    "inner: {limit: 4KiB}\nitems:\n  - {name: two, kind: b, only_b: z}\n");
	write_file(dir, "t.d/README", "not: yaml: at all\n");
	write_file(dir, "t.d/30-c.yaml.dpkg-old", "count: 1\n");
	write_file(dir, "t.d/.40-hidden.yaml", "count: 1\n");
	write_file(dir, "t.d/50-empty.yaml", "# nothing here yet\n");
	out = load_file(dir, "t.yaml", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	assert_string_equal(t.name, "main");
	assert_int_equal(t.count, 5);
	assert_int_equal(t.tags.n, 1);
	assert_string_equal(((char **)t.tags.items)[0], "c");
	assert_int_equal(t.props.n, 3);
	assert_string_equal(t.props.items[0].key, "x");
	assert_string_equal(t.props.items[1].value, "3");
	assert_string_equal(t.props.items[2].value, "4");
	assert_string_equal(t.inner.label, "l");
	assert_int_equal(t.inner.limit, 4096);
	assert_int_equal(t.items.n, 3);
	assert_string_equal(((struct item *)t.items.items)[0].name, "one");
	assert_string_equal(((struct item *)t.items.items)[1].name, "two");
	assert_string_equal(((struct item *)t.items.items)[1].only_b, "z");
	assert_string_equal(((struct item *)t.items.items)[2].name, "three");
	free(out);
	config_free(&tschema, &t);
	rm_tree(dir);
}

static void
test_include_error_names_the_included_file_and_line(void **state)
{
	char *dir = make_dir(), *out;
	struct tconf t;
	int rc;

	(void)state;
	write_main_with_include_dir(dir);
	write_file(dir, "t.d/10-a.yaml", "# overrides\nflag: true\ncount: 8\n");
	write_file(dir, "t.d/20-b.yaml", "items:\n  - name: x\n    kind: c\n  - {name: y}\n");
	write_file(dir, "t.d/30-c.yaml", "bogus: 1\ninner:\n  limit: 1\n");
	expect_file_errors(dir,
	    "D/t.d/30-c.yaml:3: inner.limit: 1 is below the minimum of 1KiB\n"
	    "D/t.d/20-b.yaml:3: items[0].kind: 'c' is not one of: a, b\n"
	    "D/t.d/20-b.yaml:4: items[1].kind: missing: this key is required\n"
	    "D/t.d/30-c.yaml:1: bogus: unknown key\n");
	/* Once the values parse, the validator's errors point into the included file too. */
	write_file(dir, "t.d/20-b.yaml", "\n");
	write_file(dir, "t.d/30-c.yaml", "\n");
	expect_file_errors(dir, "D/t.d/10-a.yaml:3: count: must be at most 5 when flag is set\n");
	/* A syntax error names the included file; the others are still read. */
	write_file(dir, "t.d/20-b.yaml", "items: [\n");
	write_file(dir, "t.d/30-c.yaml", "count: [\n");
	out = load_file(dir, "t.yaml", &t, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(out, "D/t.d/20-b.yaml:2: YAML syntax error: "));
	assert_non_null(strstr(out, "D/t.d/30-c.yaml:2: YAML syntax error: "));
	free(out);
	config_free(&tschema, &t);
	rm_tree(dir);
}

static void
test_duplicate_key_within_an_include_is_reported(void **state)
{
	char *dir = make_dir();

	(void)state;
	write_main_with_include_dir(dir);
	/* Overriding the main file is the point; saying it twice in one file is a slip. */
	write_file(dir, "t.d/a.yaml", "count: 3\nprops: {x: '1'}\ncount: 4\nprops: {x: '2'}\n");
	expect_file_errors(dir,
	    "D/t.d/a.yaml:3: count: duplicate key (first set on line 1)\n"
	    "D/t.d/a.yaml:4: props: duplicate key (first set on line 2)\n");
	rm_tree(dir);
}

static void
test_include_dir_missing_is_fine_and_unreadable_is_reported(void **state)
{
	char *dir = make_dir(), *out;
	char path[600];
	struct tconf t;
	int rc;

	(void)state;
	write_file(dir, "t.yaml", "name: main\ninner: {label: l}\n");
	out = load_file(dir, "t.yaml", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	free(out);
	config_free(&tschema, &t);
	/* A .yml main file has its drop-ins in the same .d directory. */
	write_file(dir, "u.yml", "name: main\ninner: {label: l}\n");
	make_subdir(dir, "u.d");
	write_file(dir, "u.d/a.yaml", "name: from-u.d\n");
	out = load_file(dir, "u.yml", &t, &rc);
	assert_string_equal(out, "");
	assert_string_equal(t.name, "from-u.d");
	free(out);
	config_free(&tschema, &t);
	/* A .d that is not a directory, and an include that cannot be read, are errors. */
	write_file(dir, "t.d", "oops\n");
	expect_file_errors(dir, "D/t.d: cannot read the include directory: Not a directory\n");
	snprintf(path, sizeof(path), "%s/t.d", dir);
	assert_int_equal(unlink(path), 0);
	make_subdir(dir, "t.d");
	snprintf(path, sizeof(path), "%s/t.d/10-gone.yaml", dir);
	assert_int_equal(symlink("/nonexistent/x.yaml", path), 0);
	expect_file_errors(dir, "D/t.d/10-gone.yaml: cannot read the configuration: "
	    "No such file or directory\n");
	rm_tree(dir);
}


/* ------------------------------------------------------ secrets from files */

static void
write_secret(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[512];

	write_file(dir, name, text);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_secret_from_file_fills_a_string_key(void **state)
{
	char *dir = make_dir(), *out, yaml[2048];
	struct tconf t;
	int rc;

	(void)state;
	write_secret(dir, "pw", "s3cret\n", 0600);
	write_secret(dir, "name", "two lines\n\n", 0640);
	setenv("LF_T_DIR", dir, 1);
	snprintf(yaml, sizeof(yaml), "name: {file: %s/name}\ninner: {label: l}\n"
	    "props:\n  sasl.password: {file: \"${LF_T_DIR}/pw\"}\n  plain: x\n"
	    "password: {file: %s/pw}\ntags: [{file: %s/pw}]\n", dir, dir, dir);
	write_file(dir, "t.yaml", yaml);
	out = load_file(dir, "t.yaml", &t, &rc);
	assert_string_equal(out, "");
	assert_int_equal(rc, 0);
	/* One trailing newline is the file's end of line, not part of the value. */
	assert_string_equal(t.name, "two lines\n");
	assert_string_equal(t.props.items[0].value, "s3cret");
	assert_string_equal(t.props.items[1].value, "x");
	assert_string_equal(t.password, "s3cret");
	assert_string_equal(((char **)t.tags.items)[0], "s3cret");
	free(out);
	config_free(&tschema, &t);
	rm_tree(dir);
}

static void
test_secret_file_errors_name_the_file_and_why(void **state)
{
	char *dir = make_dir(), yaml[2048];

	(void)state;
	write_secret(dir, "open", "s3cret", 0644);
	snprintf(yaml, sizeof(yaml), MIN "password: {file: %s/missing}\n"
	    "props: {a: {file: pw}, b: {file: [x]}, c: {file: %s/open}}\n", dir, dir);
	write_file(dir, "t.yaml", yaml);
	expect_file_errors(dir,
	    "D/t.yaml:3: password: cannot read D/missing: No such file or directory\n"
	    "D/t.yaml:4: props.a: 'pw' is not an absolute path: write {file: /path/to/the/secret}\n"
	    "D/t.yaml:4: props.b: expected {file: /path/to/the/secret}, not a list\n"
	    "D/t.yaml:4: props.c: warning: D/open is readable by every user: chmod o-r D/open\n");
	rm_tree(dir);
}

static void
test_password_key_refuses_a_literal_value(void **state)
{
	(void)state;
	setenv("LF_T_NAME", "hunter2", 1);
	expect_errors(MIN "password: ${LF_T_NAME}\n",
	    "t.yaml:3: password: is a password, and passwords stay out of the configuration "
	    "file: write password: {file: /path} naming a file only logferry can read\n");
}

static void
test_dump_prints_the_file_of_a_secret_never_its_value(void **state)
{
	char *dir = make_dir(), *out, *dump = NULL, yaml[2048];
	size_t len = 0;
	struct tconf t, t2;
	FILE *f;
	int rc;

	(void)state;
	write_secret(dir, "pw", "s3cret\n", 0600);
	snprintf(yaml, sizeof(yaml), MIN "props: {k: {file: %s/pw}, plain: x}\npassword: {file: %s/pw}\n"
	    "tags: [a, {file: %s/pw}]\n", dir, dir, dir);
	write_file(dir, "t.yaml", yaml);
	out = load_file(dir, "t.yaml", &t, &rc);
	assert_string_equal(out, "");
	free(out);
	f = open_memstream(&dump, &len);
	config_dump(&tschema, &t, f);
	fclose(f);
	assert_null(strstr(dump, "s3cret"));
	snprintf(yaml, sizeof(yaml), "password: {file: \"%s/pw\"}\n", dir);
	assert_non_null(strstr(dump, yaml));
	snprintf(yaml, sizeof(yaml), "  \"k\": {file: \"%s/pw\"}\n  \"plain\": \"x\"\n", dir);
	assert_non_null(strstr(dump, yaml));
	snprintf(yaml, sizeof(yaml), "tags: [\"a\", {file: \"%s/pw\"}]\n", dir);
	assert_non_null(strstr(dump, yaml));
	/* And it reads back to the same values. */
	out = load(dump, &t2, &rc);
	assert_string_equal(out, "");
	assert_string_equal(t2.password, "s3cret");
	assert_string_equal(t2.props.items[0].value, "s3cret");
	free(out);
	free(dump);
	config_free(&tschema, &t);
	config_free(&tschema, &t2);
	rm_tree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_is_parsed_into_its_c_type),
		cmocka_unit_test(test_absent_and_null_keys_take_their_defaults),
		cmocka_unit_test(test_scalar_is_accepted_as_a_list_of_one),
		cmocka_unit_test(test_unknown_key_suggests_the_nearest_name),
		cmocka_unit_test(test_wrong_scalar_values_say_what_is_expected),
		cmocka_unit_test(test_values_out_of_bounds_name_the_bound),
		cmocka_unit_test(test_addresses_are_checked),
		cmocka_unit_test(test_port_zero_is_allowed_only_where_flagged),
		cmocka_unit_test(test_wrong_node_kinds_are_reported),
		cmocka_unit_test(test_missing_required_keys_are_reported_at_their_parent),
		cmocka_unit_test(test_discriminator_restricts_and_requires_keys),
		cmocka_unit_test(test_duplicate_keys_name_the_first_line),
		cmocka_unit_test(test_empty_string_is_refused_where_nonempty),
		cmocka_unit_test(test_yaml_syntax_error_gives_its_line),
		cmocka_unit_test(test_all_errors_are_reported_in_one_run),
		cmocka_unit_test(test_validator_errors_locate_the_key_or_its_parent),
		cmocka_unit_test(test_unreadable_file_is_reported_with_errno),
		cmocka_unit_test(test_too_many_errors_stop_being_printed),
		cmocka_unit_test(test_dump_reloads_to_the_same_configuration),
		cmocka_unit_test(test_dump_leaves_out_an_optional_section_that_was_not_given),
		cmocka_unit_test(test_value_equal_compares_every_key_element_and_entry),
		cmocka_unit_test(test_reference_lists_every_key_with_type_default_and_help),
		cmocka_unit_test(test_size_and_duration_helpers_round_trip),
		cmocka_unit_test(test_env_variables_are_substituted_in_values),
		cmocka_unit_test(test_env_default_applies_when_unset_or_empty),
		cmocka_unit_test(test_env_variable_without_default_is_an_error_at_its_line),
		cmocka_unit_test(test_env_reference_that_is_not_closed_is_an_error),
		cmocka_unit_test(test_double_dollar_brace_is_a_literal_dollar_brace),
		cmocka_unit_test(test_topic_template_placeholders_are_not_environment_variables),
		cmocka_unit_test(test_env_variables_are_not_expanded_in_comments_or_keys),
		cmocka_unit_test(test_include_dir_appends_sources_and_overrides_scalars),
		cmocka_unit_test(test_include_error_names_the_included_file_and_line),
		cmocka_unit_test(test_include_dir_missing_is_fine_and_unreadable_is_reported),
		cmocka_unit_test(test_duplicate_key_within_an_include_is_reported),
		cmocka_unit_test(test_secret_from_file_fills_a_string_key),
		cmocka_unit_test(test_secret_file_errors_name_the_file_and_why),
		cmocka_unit_test(test_password_key_refuses_a_literal_value),
		cmocka_unit_test(test_dump_prints_the_file_of_a_secret_never_its_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
