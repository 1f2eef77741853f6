/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent/processors (the chain and its stage types) and the
 * helpers of agent/processor.h that stages share.
 */
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

#include "agent/processors.h"
#include "common/buf.h"
#include "common/metrics.h"
#include "proto/event.h"
#include "tests/unit/alloc_count.h"

#define ARENA 4096

static const struct processor_context ctx = {
	.host = "web-01", .agent_id = "agent-7", .source = "nginx", .config_file = "agent.yaml",
};

/* Up to 8 processors of a list, built by hand as the configuration would. */
struct plist {
	struct agent_processor p[8];
	struct config_map_entry entries[8][8];
	struct agent_condition conds[8][8];
	char *names[8][8];
	struct config_list list;
};

static struct agent_processor *
plist_add(struct plist *l, int type)
{
	struct agent_processor *p = &l->p[l->list.n];

	assert_true(l->list.n < 8);
	memset(p, 0, sizeof(*p));
	p->type = type;
	l->list.items = l->p;
	l->list.n++;
	return p;
}

/* An add_fields processor with n name/value pairs. */
static void
plist_add_fields(struct plist *l, size_t n, const char *const *kv)
{
	size_t i = l->list.n;
	struct agent_processor *p = plist_add(l, PROCESSOR_ADD_FIELDS);

	for (size_t k = 0; k < n; k++) {
		l->entries[i][k].key = (char *)kv[2 * k];
		l->entries[i][k].value = (char *)kv[2 * k + 1];
	}
	p->values.items = l->entries[i];
	p->values.n = n;
}

/* A drop or keep processor: conditions as "field op value" strings, op one of
 * equals, prefix, present, absent, lt, le, gt, ge (value ignored for the last four's first two). */
static void
plist_filter(struct plist *l, int type, size_t n, const char *const *conds)
{
	size_t i = l->list.n;
	struct agent_processor *p = plist_add(l, type);

	for (size_t k = 0; k < n; k++) {
		struct agent_condition *c = &l->conds[i][k];
		const char *const *w = &conds[3 * k];

		memset(c, 0, sizeof(*c));
		c->field = (char *)w[0];
		if (strcmp(w[1], "equals") == 0)
			c->equals = (char *)w[2];
		else if (strcmp(w[1], "prefix") == 0)
			c->prefix = (char *)w[2];
		else if (strcmp(w[1], "present") == 0)
			c->present = true;
		else if (strcmp(w[1], "absent") == 0)
			c->absent = true;
		else if (strcmp(w[1], "lt") == 0)
			c->lt = (char *)w[2];
		else if (strcmp(w[1], "le") == 0)
			c->le = (char *)w[2];
		else if (strcmp(w[1], "gt") == 0)
			c->gt = (char *)w[2];
		else if (strcmp(w[1], "ge") == 0)
			c->ge = (char *)w[2];
		else
			fail_msg("unknown operator %s", w[1]);
	}
	p->when.items = l->conds[i];
	p->when.n = n;
}

static struct processors *
chain_of(const struct plist *own, const struct plist *global)
{
	const struct config_list *lists[] = { own != NULL ? &own->list : NULL,
	    global != NULL ? &global->list : NULL };
	struct processors_error e;
	struct processors *c = NULL;

	if (processors_compile(lists, 2, &ctx, ARENA, &c, &e) != 0)
		fail_msg("compile: %s", e.msg);
	assert_non_null(c);
	return c;
}

static void
text_field(struct event_field *f, const char *key, const char *value)
{
	memset(f, 0, sizeof(*f));
	f->key = (struct pbslice){ (const uint8_t *)key, strlen(key) };
	f->type = EVENT_TEXT;
	f->v.text = (struct pbslice){ (const uint8_t *)value, strlen(value) };
}

static void
event_make(struct event *ev, const char *message, struct event_field *fields, size_t n)
{
	memset(ev, 0, sizeof(*ev));
	ev->host = (struct pbslice){ (const uint8_t *)"h", 1 };
	ev->stream = (struct pbslice){ (const uint8_t *)"access", 6 };
	ev->message = (struct pbslice){ (const uint8_t *)message, strlen(message) };
	ev->fields = fields;
	ev->nfields = n;
}

/* The fields of ev as "key=value;" (text values; integers and booleans as JSON). */
static const char *
fields_of(const struct event *ev)
{
	static char out[1024];
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct event_field *f = &ev->fields[i];
		struct pbslice s = { (const uint8_t *)"?", 1 };
		char num[32];

		if (f->type == EVENT_INTEGER) {
			snprintf(num, sizeof(num), "%lld", (long long)f->v.integer);
			s = (struct pbslice){ (const uint8_t *)num, strlen(num) };
		} else if (f->type == EVENT_BOOLEAN) {
			s = (struct pbslice){ (const uint8_t *)(f->v.boolean ? "true" : "false"),
			    f->v.boolean ? 4 : 5 };
		} else if (f->type != EVENT_NUMBER) {
			assert_int_equal(event_field_string(ev, f, &s), 0);
		}
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%.*s=%.*s;",
		    (int)f->key.len, (const char *)f->key.ptr, (int)s.len, (const char *)s.ptr);
	}
	return out;
}

/* Runs c on ev, which it must keep, counted as the door does; returns the processed event. */
static const struct event *
run_keep(struct processors *c, const struct event *ev, size_t nmarks, size_t *marks_out)
{
	const struct event *out = NULL;
	size_t marks = 0;

	assert_int_equal(processors_run(c, ev, nmarks, &out, &marks), PROCESSORS_KEEP);
	processors_count(c);
	assert_non_null(out);
	if (marks_out != NULL)
		*marks_out = marks;
	return out;
}

/* ------------------------------------------------------------ the chain */

static void
test_empty_lists_compile_to_no_chain(void **state)
{
	struct plist own = { 0 }, global = { 0 };
	const struct config_list *lists[] = { &own.list, &global.list, NULL };
	struct processors_error e;
	struct processors *c = (struct processors *)&own;

	(void)state;
	assert_int_equal(processors_compile(lists, 3, &ctx, ARENA, &c, &e), 0);
	assert_null(c);
	processors_free(NULL);
}

static void
test_the_source_list_runs_before_the_global_one(void **state)
{
	static const char *const own_kv[] = { "env", "staging", "team", "web" };
	static const char *const global_kv[] = { "env", "prod" };
	struct plist own = { 0 }, global = { 0 };
	struct event_field f[1];
	struct processors *c;
	struct event ev;

	(void)state;
	plist_add_fields(&own, 2, own_kv);
	plist_add_fields(&global, 1, global_kv);
	c = chain_of(&own, &global);
	text_field(&f[0], "user", "ann");
	event_make(&ev, "GET /", f, 1);
	/* The global stage came last: its value is the one that stays. */
	assert_string_equal(fields_of(run_keep(c, &ev, 0, NULL)), "user=ann;env=prod;team=web;");
	/* The source's event is not written to: the chain works on its own copy. */
	assert_int_equal(ev.nfields, 1);
	processors_free(c);
}

static void
test_an_event_with_more_fields_than_processors_take_is_an_error_and_counted(void **state)
{
	static const char *const kv[] = { "env", "prod" };
	static struct event_field f[PROCESSORS_MAX_INPUT_FIELDS + 1];
	struct plist own = { 0 };
	struct processors_stats st;
	const struct event *out = NULL;
	struct processors *c;
	struct event ev;
	size_t marks;

	(void)state;
	plist_add_fields(&own, 1, kv);
	c = chain_of(&own, NULL);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		text_field(&f[i], "k", "v");
	event_make(&ev, "m", f, sizeof(f) / sizeof(f[0]));
	assert_int_equal(processors_run(c, &ev, 0, &out, &marks), -E2BIG);
	processors_count(c);
	processors_get_stats(c, PROCESSOR_ADD_FIELDS, &st);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.passed, 0);
	processors_free(c);
}

static void
test_stats_count_each_type_of_stage(void **state)
{
	static const char *const kv[] = { "env", "prod" };
	struct plist own = { 0 }, global = { 0 };
	struct processors_stats st;
	struct processors *c;
	struct event ev;

	(void)state;
	plist_add_fields(&own, 1, kv);
	plist_add_fields(&global, 1, kv);
	c = chain_of(&own, &global);
	event_make(&ev, "m", NULL, 0);
	run_keep(c, &ev, 0, NULL);
	run_keep(c, &ev, 0, NULL);
	processors_get_stats(c, PROCESSOR_ADD_FIELDS, &st);
	/* Two stages of the type, two events each. */
	assert_int_equal(st.passed, 4);
	assert_true(processors_has(c, PROCESSOR_ADD_FIELDS));
	processors_free(c);
}

/* ------------------------------------------------------------ add_fields */

static void
test_add_fields_overwrites_a_field_the_event_has_in_its_place(void **state)
{
	static const char *const kv[] = { "env", "prod" };
	struct plist own = { 0 };
	struct event_field f[3];
	struct processors *c;
	struct event ev;

	(void)state;
	plist_add_fields(&own, 1, kv);
	c = chain_of(&own, NULL);
	text_field(&f[0], "a", "1");
	text_field(&f[1], "env", "dev");
	text_field(&f[2], "b", "2");
	event_make(&ev, "m", f, 3);
	assert_string_equal(fields_of(run_keep(c, &ev, 0, NULL)), "a=1;env=prod;b=2;");
	processors_free(c);
}

static void
test_add_fields_replaces_host_agent_id_and_source_once_at_compile(void **state)
{
	static const char *const kv[] = {
		"host_name", "${host}", "agent", "${agent_id}", "where", "${source}@${host}",
		"plain", "no $ variable {here}",
	};
	struct plist own = { 0 };
	struct processors *c;
	struct event ev;

	(void)state;
	plist_add_fields(&own, 4, kv);
	c = chain_of(&own, NULL);
	event_make(&ev, "m", NULL, 0);
	assert_string_equal(fields_of(run_keep(c, &ev, 0, NULL)),
	    "host_name=web-01;agent=agent-7;where=nginx@web-01;plain=no $ variable {here};");
	processors_free(c);
}

static void
test_add_fields_with_an_unknown_variable_does_not_compile_and_names_it(void **state)
{
	static const char *const bad[] = { "dc", "${datacenter}" };
	static const char *const open[] = { "dc", "par-${host" };
	struct plist own = { 0 }, own2 = { 0 };
	const struct config_list *lists[] = { &own.list };
	struct processors_error e;
	struct processors *c = NULL;

	(void)state;
	plist_add_fields(&own, 1, bad);
	plist_add_fields(&own, 1, bad);
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_null(c);
	assert_int_equal(e.list, 0);
	assert_int_equal(e.index, 0);
	assert_string_equal(e.msg, "values.dc: '${datacenter}' is not one of ${host}, ${agent_id} "
	    "or ${source}");
	plist_add_fields(&own2, 1, open);
	lists[0] = &own2.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "values.dc: 'par-${host' has a ${ without its }");
}

static void
test_add_fields_adds_before_the_source_marks_which_stay_last(void **state)
{
	static const char *const kv[] = { "env", "prod" };
	struct plist own = { 0 };
	struct event_field f[2];
	const struct event *out;
	struct processors *c;
	struct event ev;
	size_t marks;

	(void)state;
	plist_add_fields(&own, 1, kv);
	c = chain_of(&own, NULL);
	text_field(&f[0], "user", "ann");
	memset(&f[1], 0, sizeof(f[1]));
	f[1].key = (struct pbslice){ (const uint8_t *)"partial", 7 };
	f[1].type = EVENT_BOOLEAN;
	f[1].v.boolean = true;
	event_make(&ev, "m", f, 2);
	out = run_keep(c, &ev, 1, &marks);
	assert_string_equal(fields_of(out), "user=ann;env=prod;partial=true;");
	assert_int_equal(marks, 1);
	processors_free(c);
}

/* ------------------------------------------------------------ drop, keep */

static void
int_field(struct event_field *f, const char *key, int64_t v)
{
	memset(f, 0, sizeof(*f));
	f->key = (struct pbslice){ (const uint8_t *)key, strlen(key) };
	f->type = EVENT_INTEGER;
	f->v.integer = v;
}

/*
 * The verdict of c on an event of these fields, message "GET /health" and
 * stream "access", counted as the door does.
 */
static int
verdict(struct processors *c, struct event_field *f, size_t n)
{
	const struct event *out;
	struct event ev;
	size_t marks;
	int r;

	event_make(&ev, "GET /health", f, n);
	r = processors_run(c, &ev, 0, &out, &marks);
	processors_count(c);
	return r;
}

static void
test_drop_drops_an_event_that_meets_every_condition(void **state)
{
	static const char *const when[] = { "level", "equals", "debug", "path", "prefix", "/int" };
	struct plist own = { 0 };
	struct processors_stats st;
	struct event_field f[2];
	struct processors *c;

	(void)state;
	plist_filter(&own, PROCESSOR_DROP, 2, when);
	c = chain_of(&own, NULL);
	text_field(&f[0], "level", "debug");
	text_field(&f[1], "path", "/internal/x");
	assert_int_equal(verdict(c, f, 2), PROCESSORS_DROP);
	/* One condition not met: kept. */
	text_field(&f[1], "path", "/api");
	assert_int_equal(verdict(c, f, 2), PROCESSORS_KEEP);
	/* A field missing meets no condition but absent. */
	assert_int_equal(verdict(c, f, 1), PROCESSORS_KEEP);
	processors_get_stats(c, PROCESSOR_DROP, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.passed, 2);
	processors_free(c);
}

static void
test_keep_drops_an_event_that_misses_a_condition(void **state)
{
	static const char *const when[] = { "user_id", "present", "", "debug", "absent", "" };
	struct plist own = { 0 };
	struct event_field f[2];
	struct processors *c;

	(void)state;
	plist_filter(&own, PROCESSOR_KEEP, 2, when);
	c = chain_of(&own, NULL);
	text_field(&f[0], "user_id", "u1");
	text_field(&f[1], "debug", "1");
	assert_int_equal(verdict(c, f, 1), PROCESSORS_KEEP);
	assert_int_equal(verdict(c, f, 2), PROCESSORS_DROP);
	assert_int_equal(verdict(c, &f[1], 1), PROCESSORS_DROP);
	processors_free(c);
}

static void
test_numeric_conditions_take_numbers_and_text_that_is_a_number(void **state)
{
	static const char *const when[] = { "status", "ge", "500", "rt", "lt", "0.25" };
	struct plist own = { 0 };
	struct event_field f[2];
	struct processors *c;

	(void)state;
	plist_filter(&own, PROCESSOR_DROP, 2, when);
	c = chain_of(&own, NULL);
	int_field(&f[0], "status", 503);
	memset(&f[1], 0, sizeof(f[1]));
	f[1].key = (struct pbslice){ (const uint8_t *)"rt", 2 };
	f[1].type = EVENT_NUMBER;
	f[1].v.number = 0.125;
	assert_int_equal(verdict(c, f, 2), PROCESSORS_DROP);
	f[1].v.number = 0.25;
	assert_int_equal(verdict(c, f, 2), PROCESSORS_KEEP);
	/* Text that parses whole as a number compares as one; other text never does. */
	text_field(&f[0], "status", "500");
	text_field(&f[1], "rt", "0.2");
	assert_int_equal(verdict(c, f, 2), PROCESSORS_DROP);
	text_field(&f[0], "status", "500x");
	assert_int_equal(verdict(c, f, 2), PROCESSORS_KEEP);
	int_field(&f[0], "status", 499);
	assert_int_equal(verdict(c, f, 2), PROCESSORS_KEEP);
	processors_free(c);
}

static void
test_equals_compares_numbers_as_numbers_and_booleans_as_written(void **state)
{
	static const char *const when[] = { "status", "equals", "404", "cached", "equals", "true" };
	struct plist own = { 0 };
	struct event_field f[2];
	struct processors *c;

	(void)state;
	plist_filter(&own, PROCESSOR_DROP, 2, when);
	c = chain_of(&own, NULL);
	int_field(&f[0], "status", 404);
	memset(&f[1], 0, sizeof(f[1]));
	f[1].key = (struct pbslice){ (const uint8_t *)"cached", 6 };
	f[1].type = EVENT_BOOLEAN;
	f[1].v.boolean = true;
	assert_int_equal(verdict(c, f, 2), PROCESSORS_DROP);
	f[1].v.boolean = false;
	assert_int_equal(verdict(c, f, 2), PROCESSORS_KEEP);
	processors_free(c);
}

static void
test_conditions_name_the_message_the_stream_and_the_host(void **state)
{
	static const char *const when[] = { "message", "prefix", "GET /health", "stream", "equals",
	    "access", "host", "equals", "h" };
	static const char *const other[] = { "stream", "equals", "error" };
	struct plist own = { 0 }, own2 = { 0 };
	struct processors *c;

	(void)state;
	plist_filter(&own, PROCESSOR_DROP, 3, when);
	c = chain_of(&own, NULL);
	assert_int_equal(verdict(c, NULL, 0), PROCESSORS_DROP);
	processors_free(c);
	plist_filter(&own2, PROCESSOR_DROP, 1, other);
	c = chain_of(&own2, NULL);
	assert_int_equal(verdict(c, NULL, 0), PROCESSORS_KEEP);
	processors_free(c);
}

static void
test_a_condition_with_no_operator_two_or_a_bad_number_does_not_compile(void **state)
{
	static const char *const bad[] = { "status", "ge", "five" };
	struct plist none = { 0 }, two = { 0 }, nan = { 0 };
	const struct config_list *lists[1];
	struct processors_error e;
	struct processors *c = NULL;

	(void)state;
	plist_filter(&none, PROCESSOR_DROP, 1, (const char *const[]){ "x", "present", "" });
	none.conds[0][0].present = false;
	lists[0] = &none.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "when[0]: 'x' needs one of equals, prefix, present, absent, "
	    "lt, le, gt or ge");
	plist_filter(&two, PROCESSOR_KEEP, 1, (const char *const[]){ "x", "equals", "1" });
	two.conds[0][0].prefix = "2";
	lists[0] = &two.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "when[0]: 'x' has more than one of equals, prefix, present, "
	    "absent, lt, le, gt and ge: write one condition for each");
	plist_filter(&nan, PROCESSOR_DROP, 1, bad);
	lists[0] = &nan.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "when[0].ge: 'five' is not a number");
	assert_null(c);
}

/* ------------------------------------------------------------ rename, remove */

/* A rename (map of n old/new pairs) processor. */
static void
plist_rename(struct plist *l, size_t n, const char *const *kv)
{
	size_t i = l->list.n;
	struct agent_processor *p = plist_add(l, PROCESSOR_RENAME);

	for (size_t k = 0; k < n; k++) {
		l->entries[i][k].key = (char *)kv[2 * k];
		l->entries[i][k].value = (char *)kv[2 * k + 1];
	}
	p->map.items = l->entries[i];
	p->map.n = n;
}

/* A processor of type with a fields list of n names. */
static struct agent_processor *
plist_names(struct plist *l, int type, size_t n, const char *const *names)
{
	size_t i = l->list.n;
	struct agent_processor *p = plist_add(l, type);

	for (size_t k = 0; k < n; k++)
		l->names[i][k] = (char *)names[k];
	p->fields.items = l->names[i];
	p->fields.n = n;
	return p;
}

static void
test_rename_renames_in_place_and_overwrites_a_field_of_the_new_name(void **state)
{
	static const char *const kv[] = { "usr", "user_id", "lvl", "level", "nope", "x" };
	struct plist own = { 0 };
	struct event_field f[4];
	struct processors *c;
	struct event ev;

	(void)state;
	plist_rename(&own, 3, kv);
	c = chain_of(&own, NULL);
	text_field(&f[0], "usr", "u1");
	text_field(&f[1], "level", "old");
	text_field(&f[2], "lvl", "info");
	text_field(&f[3], "z", "1");
	event_make(&ev, "m", f, 4);
	assert_string_equal(fields_of(run_keep(c, &ev, 0, NULL)), "user_id=u1;level=info;z=1;");
	processors_free(c);
}

static void
test_remove_removes_every_field_listed(void **state)
{
	static const char *const names[] = { "password", "debug" };
	struct plist own = { 0 };
	struct event_field f[4];
	struct processors *c;
	struct event ev;

	(void)state;
	plist_names(&own, PROCESSOR_REMOVE, 2, names);
	c = chain_of(&own, NULL);
	text_field(&f[0], "user", "u1");
	text_field(&f[1], "password", "s3cret");
	text_field(&f[2], "debug", "1");
	text_field(&f[3], "password", "again");
	event_make(&ev, "m", f, 4);
	assert_string_equal(fields_of(run_keep(c, &ev, 0, NULL)), "user=u1;");
	processors_free(c);
}

static void
test_rename_then_global_stages_see_the_new_name(void **state)
{
	static const char *const kv[] = { "uid", "user_id" };
	static const char *const names[] = { "user_id" };
	struct plist own = { 0 }, global = { 0 };
	struct event_field f[2];
	struct processors *c;
	struct event ev;

	(void)state;
	plist_rename(&own, 1, kv);
	plist_names(&global, PROCESSOR_REMOVE, 1, names);
	c = chain_of(&own, &global);
	text_field(&f[0], "uid", "u1");
	text_field(&f[1], "a", "1");
	event_make(&ev, "m", f, 2);
	assert_string_equal(fields_of(run_keep(c, &ev, 0, NULL)), "a=1;");
	processors_free(c);
}

/* ------------------------------------------------------------ require */

/* A require processor: n names, then m name/type pairs, and a dead-letter stream. */
static void
plist_require(struct plist *l, size_t n, const char *const *names, size_t m,
    const char *const *types, const char *stream)
{
	size_t i = l->list.n;
	struct agent_processor *p = plist_names(l, PROCESSOR_REQUIRE, n, names);

	for (size_t k = 0; k < m; k++) {
		l->entries[i][k].key = (char *)types[2 * k];
		l->entries[i][k].value = (char *)types[2 * k + 1];
	}
	p->types.items = l->entries[i];
	p->types.n = m;
	p->dead_letter_stream = (char *)stream;
}

static const char *
stream_of(const struct event *ev)
{
	static char out[64];

	snprintf(out, sizeof(out), "%.*s", (int)ev->stream.len, (const char *)ev->stream.ptr);
	return out;
}

static void
test_require_dead_letters_an_event_missing_a_field_with_the_reason_and_its_stream(void **state)
{
	static const char *const names[] = { "event_type", "user_id" };
	struct plist own = { 0 };
	struct processors_stats st;
	struct event_field f[2];
	const struct event *out;
	struct processors *c;
	struct event ev;

	(void)state;
	plist_require(&own, 2, names, 0, NULL, "dead_letter");
	c = chain_of(&own, NULL);
	text_field(&f[0], "event_type", "click");
	text_field(&f[1], "user_id", "u1");
	event_make(&ev, "m", f, 2);
	out = run_keep(c, &ev, 0, NULL);
	assert_string_equal(stream_of(out), "access");
	assert_string_equal(fields_of(out), "event_type=click;user_id=u1;");
	event_make(&ev, "m", f, 1);
	out = run_keep(c, &ev, 0, NULL);
	assert_string_equal(stream_of(out), "dead_letter");
	assert_string_equal(fields_of(out), "event_type=click;logferry_stream=access;"
	    "logferry_error=missing field user_id;");
	processors_get_stats(c, PROCESSOR_REQUIRE, &st);
	assert_int_equal(st.passed, 1);
	assert_int_equal(st.dead_lettered, 1);
	processors_free(c);
}

static void
test_require_checks_the_type_of_a_field_when_asked(void **state)
{
	static const char *const types[] = { "user_id", "string", "count", "integer",
	    "ratio", "number", "ok", "boolean" };
	struct plist own = { 0 };
	struct event_field f[4];
	const struct event *out;
	struct processors *c;
	struct event ev;

	(void)state;
	plist_require(&own, 0, NULL, 4, types, "bad");
	c = chain_of(&own, NULL);
	text_field(&f[0], "user_id", "u1");
	int_field(&f[1], "count", 3);
	/* An integer is a number too. */
	int_field(&f[2], "ratio", 1);
	memset(&f[3], 0, sizeof(f[3]));
	f[3].key = (struct pbslice){ (const uint8_t *)"ok", 2 };
	f[3].type = EVENT_BOOLEAN;
	event_make(&ev, "m", f, 4);
	assert_string_equal(stream_of(run_keep(c, &ev, 0, NULL)), "access");
	text_field(&f[1], "count", "3");
	out = run_keep(c, &ev, 0, NULL);
	assert_string_equal(stream_of(out), "bad");
	assert_non_null(strstr(fields_of(out), "logferry_error=field count is not an integer;"));
	/* Missing, with a type asked: missing is the reason. */
	event_make(&ev, "m", &f[2], 2);
	assert_non_null(strstr(fields_of(run_keep(c, &ev, 0, NULL)),
	    "logferry_error=missing field user_id;"));
	processors_free(c);
}

static void
test_a_dead_letter_still_runs_later_stages_is_not_dropped_and_not_judged_again(void **state)
{
	static const char *const first[] = { "user_id" };
	static const char *const second[] = { "event_type" };
	static const char *const secret[] = { "password" };
	static const char *const debug[] = { "level", "equals", "debug" };
	static const char *const keep[] = { "user_id", "present", "" };
	struct plist own = { 0 }, global = { 0 };
	struct processors_stats st;
	struct event_field f[2];
	const struct event *out;
	struct processors *c;
	struct event ev;

	(void)state;
	plist_require(&own, 1, first, 0, NULL, "dead_letter");
	plist_require(&own, 1, second, 0, NULL, "other");
	plist_filter(&own, PROCESSOR_DROP, 1, debug);
	plist_filter(&global, PROCESSOR_KEEP, 1, keep);
	plist_names(&global, PROCESSOR_REMOVE, 1, secret);
	c = chain_of(&own, &global);
	text_field(&f[0], "level", "debug");
	text_field(&f[1], "password", "s3cret");
	event_make(&ev, "m", f, 2);
	out = run_keep(c, &ev, 0, NULL);
	assert_string_equal(stream_of(out), "dead_letter");
	assert_string_equal(fields_of(out), "level=debug;logferry_stream=access;"
	    "logferry_error=missing field user_id;");
	processors_get_stats(c, PROCESSOR_REQUIRE, &st);
	assert_int_equal(st.dead_lettered, 1);
	assert_int_equal(st.passed, 1);
	processors_get_stats(c, PROCESSOR_DROP, &st);
	assert_int_equal(st.dropped, 0);
	processors_get_stats(c, PROCESSOR_KEEP, &st);
	assert_int_equal(st.dropped, 0);
	processors_free(c);
}

static void
test_require_without_fields_or_with_an_unknown_type_or_stream_does_not_compile(void **state)
{
	static const char *const types[] = { "n", "float" };
	static const char *const names[] = { "a" };
	struct plist empty = { 0 }, badtype = { 0 }, badstream = { 0 };
	const struct config_list *lists[1];
	struct processors_error e;
	struct processors *c = NULL;

	(void)state;
	plist_require(&empty, 0, NULL, 0, NULL, "dead_letter");
	lists[0] = &empty.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "require needs fields, types or both");
	plist_require(&badtype, 0, NULL, 1, types, "dead_letter");
	lists[0] = &badtype.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "types.n: 'float' is not one of string, integer, number, "
	    "boolean");
	plist_require(&badstream, 1, names, 0, NULL, "dead letter");
	lists[0] = &badstream.list;
	assert_int_equal(processors_compile(lists, 1, &ctx, ARENA, &c, &e), -EINVAL);
	assert_string_equal(e.msg, "dead_letter_stream: 'dead letter' may contain only letters, "
	    "digits, '.', '_' and '-'");
	assert_null(c);
}

/* ------------------------------------------------------------ metrics */

static void
test_counters_render_per_source_and_type_of_stage(void **state)
{
	static const char *const kv[] = { "env", "prod" };
	static const char *const when[] = { "level", "equals", "debug" };
	struct plist a = { 0 }, b = { 0 };
	struct processors *chains[3];
	const char *names[] = { "web", "none", "app" };
	struct metrics_writer w = { 0 };
	struct event_field f[1];
	struct buf out;
	struct event ev;

	(void)state;
	plist_add_fields(&a, 1, kv);
	plist_filter(&a, PROCESSOR_DROP, 1, when);
	plist_add_fields(&b, 1, kv);
	chains[0] = chain_of(&a, NULL);
	chains[1] = NULL;
	chains[2] = chain_of(&b, NULL);
	text_field(&f[0], "level", "debug");
	event_make(&ev, "m", f, 1);
	assert_int_equal(verdict(chains[0], f, 1), PROCESSORS_DROP);
	buf_init(&out, 1 << 16);
	w.out = &out;
	processors_render(&w, chains, names, 3);
	assert_int_equal(w.err, 0);
	assert_int_equal(buf_append(&out, "", 1), 0);
	assert_non_null(strstr((char *)out.data,
	    "# TYPE logferry_processor_events_passed_total counter\n"
	    "logferry_processor_events_passed_total{source=\"web\",processor=\"add_fields\"} 1\n"
	    "logferry_processor_events_passed_total{source=\"web\",processor=\"drop\"} 0\n"
	    "logferry_processor_events_passed_total{source=\"app\",processor=\"add_fields\"} 0\n"));
	assert_non_null(strstr((char *)out.data,
	    "logferry_processor_events_dropped_total{source=\"web\",processor=\"drop\"} 1\n"));
	assert_null(strstr((char *)out.data, "none"));
	buf_free(&out);
	processors_free(chains[0]);
	processors_free(chains[2]);
}

/* ------------------------------------------------------------ the hot path */

static void
test_running_every_type_of_stage_allocates_nothing(void **state)
{
	static const char *const kv[] = { "env", "prod", "node", "${host}" };
	static const char *const ren[] = { "usr", "user_id" };
	static const char *const gone[] = { "password" };
	static const char *const need[] = { "user_id" };
	static const char *const types[] = { "status", "integer" };
	static const char *const drop[] = { "status", "ge", "500", "path", "prefix", "/health" };
	static const char *const keep[] = { "message", "prefix", "GET" };
	struct plist own = { 0 }, global = { 0 };
	struct event_field f[4];
	const struct event *out;
	struct processors *c;
	unsigned long before;
	struct event ev;
	size_t marks;

	(void)state;
	plist_add_fields(&own, 2, kv);
	plist_rename(&own, 1, ren);
	plist_names(&own, PROCESSOR_REMOVE, 1, gone);
	plist_filter(&global, PROCESSOR_DROP, 2, drop);
	plist_filter(&global, PROCESSOR_KEEP, 1, keep);
	plist_require(&global, 1, need, 1, types, "dead_letter");
	c = chain_of(&own, &global);
	before = alloc_count();
	/* The compile allocated: the wrappers are in place, and count. */
	assert_true(before > 0);
	for (int i = 0; i < 1000; i++) {
		text_field(&f[0], "usr", "u1");
		int_field(&f[1], "status", i % 3 == 0 ? 503 : 200);
		text_field(&f[2], "path", i % 2 == 0 ? "/health" : "/api");
		text_field(&f[3], "password", "s3cret");
		/* Kept, dropped and dead-lettered events in turn. */
		event_make(&ev, "GET /", f, i % 5 == 0 ? 3 : 4);
		if (i % 7 == 0)
			f[0].key = (struct pbslice){ (const uint8_t *)"uid", 3 };
		assert_true(processors_run(c, &ev, 0, &out, &marks) >= 0);
		processors_count(c);
	}
	assert_int_equal(alloc_count() - before, 0);
	processors_free(c);
}

/* ------------------------------------------------------------ helpers */

static void
pe_init(struct processor_event *pe, struct event_field *fields, size_t max, uint8_t *arena,
    size_t cap)
{
	memset(pe, 0, sizeof(*pe));
	pe->ev.fields = fields;
	pe->max_fields = max;
	pe->arena = arena;
	pe->arena_cap = cap;
}

static void
test_unslice_keeps_slice_values_right_when_the_message_is_rewritten(void **state)
{
	static const char msg[] = "GET /a from 10.1.2.3";
	static const char masked[] = "GET /a from 10.1.2.0";
	struct event_field fields[4];
	struct processor_event pe;
	uint8_t arena[64];
	struct pbslice s;

	(void)state;
	pe_init(&pe, fields, 4, arena, sizeof(arena));
	pe.ev.message = (struct pbslice){ (const uint8_t *)msg, strlen(msg) };
	memset(&fields[0], 0, sizeof(fields[0]));
	fields[0].key = (struct pbslice){ (const uint8_t *)"ip", 2 };
	fields[0].type = EVENT_SLICE;
	fields[0].v.slice.offset = 12;
	fields[0].v.slice.length = 8;
	pe.ev.nfields = 1;
	assert_int_equal(processor_event_set_message(&pe, (const uint8_t *)masked,
	    strlen(masked)), 0);
	assert_int_equal(fields[0].type, EVENT_TEXT);
	assert_int_equal(event_field_string(&pe.ev, &fields[0], &s), 0);
	assert_int_equal(s.len, 8);
	assert_memory_equal(s.ptr, "10.1.2.3", 8);
	assert_memory_equal(pe.ev.message.ptr, masked, strlen(masked));
}

static void
test_the_arena_and_the_fields_are_bounded(void **state)
{
	struct event_field fields[2];
	struct processor_event pe;
	struct event_field v = { .type = EVENT_BOOLEAN };
	uint8_t arena[8], *p;

	(void)state;
	pe_init(&pe, fields, 2, arena, sizeof(arena));
	assert_int_equal(processor_event_alloc(&pe, 6, &p), 0);
	assert_int_equal(processor_event_alloc(&pe, 3, &p), -ENOSPC);
	assert_int_equal(processor_event_set_text(&pe, processor_slice("k"),
	    (const uint8_t *)"abc", 3), -ENOSPC);
	assert_int_equal(processor_event_set_text(&pe, processor_slice("k"),
	    (const uint8_t *)"ab", 2), 0);
	assert_int_equal(processor_event_set(&pe, processor_slice("b"), &v), 0);
	assert_int_equal(processor_event_set(&pe, processor_slice("c"), &v), -ENOSPC);
	/* Setting one it has replaces it: no room needed. */
	assert_int_equal(processor_event_set(&pe, processor_slice("k"), &v), 0);
	assert_int_equal(pe.ev.nfields, 2);
}

static void
test_remove_takes_every_field_of_the_name_and_counts_a_mark_removed(void **state)
{
	struct event_field fields[4];
	struct processor_event pe;
	uint8_t arena[8];

	(void)state;
	pe_init(&pe, fields, 4, arena, sizeof(arena));
	text_field(&fields[0], "x", "1");
	text_field(&fields[1], "y", "2");
	text_field(&fields[2], "x", "3");
	text_field(&fields[3], "partial", "true");
	pe.ev.nfields = 4;
	pe.nmarks = 1;
	assert_int_equal(processor_event_remove(&pe, "x", 1), 2);
	assert_int_equal(pe.nmarks, 1);
	assert_string_equal(fields_of(&pe.ev), "y=2;partial=true;");
	assert_int_equal(processor_event_remove(&pe, "partial", 7), 1);
	assert_int_equal(pe.nmarks, 0);
	assert_int_equal(processor_event_remove(&pe, "nope", 4), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_lists_compile_to_no_chain),
		cmocka_unit_test(test_the_source_list_runs_before_the_global_one),
		cmocka_unit_test(
		    test_an_event_with_more_fields_than_processors_take_is_an_error_and_counted),
		cmocka_unit_test(test_stats_count_each_type_of_stage),
		cmocka_unit_test(test_add_fields_overwrites_a_field_the_event_has_in_its_place),
		cmocka_unit_test(test_add_fields_replaces_host_agent_id_and_source_once_at_compile),
		cmocka_unit_test(
		    test_add_fields_with_an_unknown_variable_does_not_compile_and_names_it),
		cmocka_unit_test(test_add_fields_adds_before_the_source_marks_which_stay_last),
		cmocka_unit_test(test_drop_drops_an_event_that_meets_every_condition),
		cmocka_unit_test(test_keep_drops_an_event_that_misses_a_condition),
		cmocka_unit_test(test_numeric_conditions_take_numbers_and_text_that_is_a_number),
		cmocka_unit_test(test_equals_compares_numbers_as_numbers_and_booleans_as_written),
		cmocka_unit_test(test_conditions_name_the_message_the_stream_and_the_host),
		cmocka_unit_test(test_a_condition_with_no_operator_two_or_a_bad_number_does_not_compile),
		cmocka_unit_test(test_rename_renames_in_place_and_overwrites_a_field_of_the_new_name),
		cmocka_unit_test(test_remove_removes_every_field_listed),
		cmocka_unit_test(test_rename_then_global_stages_see_the_new_name),
		cmocka_unit_test(
		    test_require_dead_letters_an_event_missing_a_field_with_the_reason_and_its_stream),
		cmocka_unit_test(test_require_checks_the_type_of_a_field_when_asked),
		cmocka_unit_test(
		    test_a_dead_letter_still_runs_later_stages_is_not_dropped_and_not_judged_again),
		cmocka_unit_test(
		    test_require_without_fields_or_with_an_unknown_type_or_stream_does_not_compile),
		cmocka_unit_test(test_counters_render_per_source_and_type_of_stage),
		cmocka_unit_test(test_running_every_type_of_stage_allocates_nothing),
		cmocka_unit_test(test_unslice_keeps_slice_values_right_when_the_message_is_rewritten),
		cmocka_unit_test(test_the_arena_and_the_fields_are_bounded),
		cmocka_unit_test(test_remove_takes_every_field_of_the_name_and_counts_a_mark_removed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
