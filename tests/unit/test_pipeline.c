/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent/pipeline: a real spool in a temporary directory on a
 * real loop, read back as stored.
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
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agent/pipeline.h"
#include "agent/processors.h"
#include "agent/redact.h"
#include "agent/spool.h"
#include "common/buf.h"
#include "proto/event.h"
#include "tests/unit/spool_fixture.h"

#define EVENT_MAX 4096              /* the spool's largest event, in encoded bytes */
#define WHY "event too large with its fields"

struct fixture {
	char root[64];
	char dir[96];
	uv_loop_t loop;
	struct spool *spool;
	struct pipeline pipe;
	bool committed, closed;
	int status;
	char fields[8][512];         /* each stored event's fields as "key=value;" */
	char messages[8][64];
	char streams[8][64];
	size_t n;
};

static void
on_writable(void *ctx)
{
	(void)ctx;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct spool_options o;

	assert_non_null(fx);
	strcpy(fx->root, "/tmp/test_pipeline.XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	snprintf(fx->dir, sizeof(fx->dir), "%s/spool", fx->root);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	spool_options_default(&o, fx->dir);
	o.commit_interval_ms = 1;
	o.event_max_bytes = EVENT_MAX;
	assert_int_equal(spool_open(&fx->loop, &o, on_writable, fx, &fx->spool), 0);
	pipeline_init(&fx->pipe, fx->spool, WHY, NULL);
	*state = fx;
	return 0;
}

static void
on_closed(void *ctx)
{
	((struct fixture *)ctx)->closed = true;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	if (fx->spool != NULL) {
		spool_close(fx->spool, on_closed, fx);
		while (!fx->closed)
			uv_run(&fx->loop, UV_RUN_ONCE);
	}
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void
on_committed(void *ctx, int status)
{
	struct fixture *fx = ctx;

	fx->committed = true;
	fx->status = status;
}

/* Waits until what was handed over is committed. */
static void
commit(struct fixture *fx)
{
	fx->committed = false;
	spool_flush(fx->spool);
	assert_int_equal(spool_when_committed(fx->spool, on_committed, fx), 0);
	while (!fx->committed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_int_equal(fx->status, 0);
}

static int
collect(void *ctx, const struct spool_segment *seg)
{
	struct fixture *fx = ctx;
	struct event_field fields[8];
	struct event_reader er;
	struct event ev;
	struct buf raw;
	int rc;

	buf_init(&raw, 1 << 20);
	assert_int_equal(spool_segment_decompress(seg, &raw), 0);
	event_reader_init(&er, raw.data, raw.len, fields, 8);
	while ((rc = event_reader_next(&er, &ev)) == 1) {
		char *out = fx->fields[fx->n];

		assert_true(fx->n < 8);
		snprintf(fx->messages[fx->n], sizeof(fx->messages[0]), "%.*s", (int)ev.message.len,
		    (const char *)ev.message.ptr);
		snprintf(fx->streams[fx->n], sizeof(fx->streams[0]), "%.*s", (int)ev.stream.len,
		    (const char *)ev.stream.ptr);
		for (size_t i = 0; i < ev.nfields; i++) {
			const struct event_field *f = &ev.fields[i];
			size_t used = strlen(out);
			struct pbslice s;

			if (f->type == EVENT_BOOLEAN) {
				snprintf(out + used, 512 - used, "%.*s=%s;", (int)f->key.len,
				    (const char *)f->key.ptr, f->v.boolean ? "true" : "false");
				continue;
			}
			assert_int_equal(event_field_string(&ev, f, &s), 0);
			snprintf(out + used, 512 - used, "%.*s=%.*s;", (int)f->key.len,
			    (const char *)f->key.ptr, s.len > 64 ? 64 : (int)s.len, (const char *)s.ptr);
		}
		fx->n++;
	}
	assert_int_equal(rc, 0);
	buf_free(&raw);
	return 0;
}

/* Closes the spool and reads back every stored event. */
static void
read_back(struct fixture *fx)
{
	struct spool_view *v;
	const char *why;

	spool_close(fx->spool, on_closed, fx);
	while (!fx->closed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	fx->spool = NULL;
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_segments(v, 0, collect, fx, &why), 0);
	spool_view_close(v);
}

static void
text_field(struct event_field *f, const char *key, const char *value, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->key = (struct pbslice){ (const uint8_t *)key, strlen(key) };
	f->type = EVENT_TEXT;
	f->v.text = (struct pbslice){ (const uint8_t *)value, len };
}

static void
event_make(struct event *ev, const char *message, size_t len, struct event_field *fields,
    size_t nfields)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts = UINT64_C(1795341600000000000);
	ev->host = (struct pbslice){ (const uint8_t *)"h", 1 };
	ev->stream = (struct pbslice){ (const uint8_t *)"s", 1 };
	ev->source = (struct pbslice){ (const uint8_t *)"/var/log/a.log", 14 };
	ev->message = (struct pbslice){ (const uint8_t *)message, len };
	ev->fields = fields;
	ev->nfields = nfields;
}

static void
test_an_event_that_fits_is_spooled_whole_with_its_position(void **state)
{
	struct fixture *fx = *state;
	struct spool_file pos = { .dev = 1, .ino = 2, .offset = 6, .path = "/var/log/a.log" };
	struct spool_file got;
	struct event_field f[1];
	struct event ev;
	char path[64];

	text_field(&f[0], "user", "ann", 3);
	event_make(&ev, "hello", 5, f, 1);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, &pos), 0);
	commit(fx);
	assert_int_equal(spool_get_position(fx->spool, 1, 2, &got, path, sizeof(path)), 0);
	assert_int_equal(got.offset, 6);
	read_back(fx);
	assert_int_equal(fx->n, 1);
	assert_string_equal(fx->messages[0], "hello");
	assert_string_equal(fx->fields[0], "user=ann;");
	assert_int_equal(fx->pipe.fields_dropped, 0);
	assert_int_equal(fx->pipe.dropped, 0);
}

static void
test_an_event_too_large_with_its_fields_goes_with_why_and_its_marks_alone(void **state)
{
	struct fixture *fx = *state;
	static char big[EVENT_MAX];
	struct event_field f[3];
	struct event ev;

	memset(big, 'x', sizeof(big));
	text_field(&f[0], "body", big, sizeof(big));
	text_field(&f[1], "user", "ann", 3);
	memset(&f[2], 0, sizeof(f[2]));
	f[2].key = (struct pbslice){ (const uint8_t *)"truncated", 9 };
	f[2].type = EVENT_BOOLEAN;
	f[2].v.boolean = true;
	event_make(&ev, "hello", 5, f, 3);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 1, NULL), 0);
	/* A source without marks: its event keeps the why alone. */
	event_make(&ev, "again", 5, f, 2);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	assert_int_equal(fx->pipe.fields_dropped, 2);
	assert_int_equal(fx->pipe.dropped, 0);
	read_back(fx);
	assert_int_equal(fx->n, 2);
	assert_string_equal(fx->messages[0], "hello");
	assert_string_equal(fx->fields[0], "parse_error=" WHY ";truncated=true;");
	assert_string_equal(fx->messages[1], "again");
	assert_string_equal(fx->fields[1], "parse_error=" WHY ";");
}

static void
test_an_event_refused_even_without_fields_is_counted_and_its_position_still_advances(
    void **state)
{
	struct fixture *fx = *state;
	struct spool_file pos = { .dev = 1, .ino = 2, .offset = 9000, .path = "/var/log/a.log" };
	struct spool_file got;
	static char big[2 * EVENT_MAX];
	struct event ev;
	char path[64];

	memset(big, 'x', sizeof(big));
	event_make(&ev, big, sizeof(big), NULL, 0);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, &pos), -EMSGSIZE);
	assert_int_equal(fx->pipe.dropped, 1);
	assert_int_equal(fx->pipe.fields_dropped, 0);
	/* The position goes with the next commit, which an event makes. */
	event_make(&ev, "next", 4, NULL, 0);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	commit(fx);
	assert_int_equal(spool_get_position(fx->spool, 1, 2, &got, path, sizeof(path)), 0);
	assert_int_equal(got.offset, 9000);
	read_back(fx);
	assert_int_equal(fx->n, 1);
	assert_string_equal(fx->messages[0], "next");
}

/* The journal's position is a cursor: the same door, the same rules. */
static void
test_a_cursor_advances_with_its_event_and_past_one_refused(void **state)
{
	struct fixture *fx = *state;
	static char big[2 * EVENT_MAX];
	struct event ev;
	char cursor[64];

	event_make(&ev, "entry", 5, NULL, 0);
	assert_int_equal(pipeline_emit_cursor(&fx->pipe, &ev, 0, "sys", "s=1;i=1"), 0);
	commit(fx);
	assert_int_equal(spool_get_cursor(fx->spool, "sys", cursor, sizeof(cursor)), 0);
	assert_string_equal(cursor, "s=1;i=1");
	memset(big, 'x', sizeof(big));
	event_make(&ev, big, sizeof(big), NULL, 0);
	assert_int_equal(pipeline_emit_cursor(&fx->pipe, &ev, 0, "sys", "s=1;i=2"), -EMSGSIZE);
	assert_int_equal(fx->pipe.dropped, 1);
	event_make(&ev, "next", 4, NULL, 0);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	commit(fx);
	assert_int_equal(spool_get_cursor(fx->spool, "sys", cursor, sizeof(cursor)), 0);
	assert_string_equal(cursor, "s=1;i=2");
	read_back(fx);
	assert_int_equal(fx->n, 2);
}

/* The chain of the n stages p (a configuration that outlives it: static). */
static struct processors *
chain_compile(struct agent_processor *p, size_t n)
{
	static const struct processor_context ctx = { "h", "a", "s", "agent.yaml" };
	const struct config_list list = { n, p };
	const struct config_list *lists[] = { &list };
	struct processors_error e;
	struct processors *c = NULL;

	assert_int_equal(processors_compile(lists, 1, &ctx, 4096, &c, &e), 0);
	assert_non_null(c);
	return c;
}

static struct config_map_entry env_prod[] = { { "env", "prod", 0 } };

/* A chain of one add_fields stage setting env: prod. */
static struct processors *
chain_env_prod(void)
{
	static struct agent_processor p = {
		.type = PROCESSOR_ADD_FIELDS, .values = { 1, env_prod },
	};

	return chain_compile(&p, 1);
}

static void
test_the_source_chain_runs_at_the_door_before_the_spool(void **state)
{
	struct fixture *fx = *state;
	struct processors *c = chain_env_prod();
	struct event_field f[1];
	struct event ev;

	pipeline_init(&fx->pipe, fx->spool, WHY, c);
	text_field(&f[0], "user", "ann", 3);
	event_make(&ev, "hello", 5, f, 1);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	read_back(fx);
	assert_int_equal(fx->n, 1);
	assert_string_equal(fx->fields[0], "user=ann;env=prod;");
	processors_free(c);
}

/*
 * A chain's keys are not the source's: the names add_fields takes from a
 * configuration (here changed in place, as one reloaded at the same
 * address would be) are compared by their bytes even when the source's
 * event said its own keys were string literals.
 */
static void
test_keys_a_chain_adds_are_read_by_their_bytes_whatever_the_source_said(void **state)
{
	struct fixture *fx = *state;
	static char name[] = "env";
	static struct config_map_entry values[] = { { name, "prod", 0 } };
	static struct agent_processor p = {
		.type = PROCESSOR_ADD_FIELDS, .values = { 1, values },
	};
	struct processors *c = chain_compile(&p, 1);
	struct event_field f[1];
	struct event ev;

	pipeline_init(&fx->pipe, fx->spool, WHY, c);
	text_field(&f[0], "user", "ann", 3);
	event_make(&ev, "hello", 5, f, 1);
	ev.static_keys = true;
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	memcpy(name, "eny", 3);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	read_back(fx);
	assert_int_equal(fx->n, 2);
	assert_string_equal(fx->fields[0], "user=ann;env=prod;");
	assert_string_equal(fx->fields[1], "user=ann;eny=prod;");
	processors_free(c);
}

static void
test_the_too_large_fallback_applies_to_the_processed_event_and_keeps_its_marks(void **state)
{
	struct fixture *fx = *state;
	struct processors *c = chain_env_prod();
	static char big[EVENT_MAX];
	struct event_field f[2];
	struct event ev;

	pipeline_init(&fx->pipe, fx->spool, WHY, c);
	memset(big, 'x', sizeof(big));
	text_field(&f[0], "body", big, sizeof(big));
	memset(&f[1], 0, sizeof(f[1]));
	f[1].key = (struct pbslice){ (const uint8_t *)"truncated", 9 };
	f[1].type = EVENT_BOOLEAN;
	f[1].v.boolean = true;
	event_make(&ev, "hello", 5, f, 2);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 1, NULL), 0);
	assert_int_equal(fx->pipe.fields_dropped, 1);
	read_back(fx);
	assert_int_equal(fx->n, 1);
	/* The mark, not the field the chain added last, is what stays. */
	assert_string_equal(fx->fields[0], "parse_error=" WHY ";truncated=true;");
	processors_free(c);
}

/*
 * A chain may give an event another origin (require's dead-letter stream):
 * the source's origin_gen stands for its own, which the next event, passed
 * as it is, still has.
 */
static void
test_an_event_a_chain_re_streams_is_not_taken_for_its_origin_gen(void **state)
{
	struct fixture *fx = *state;
	static char *need[] = { "user" };
	static struct agent_processor p = {
		.type = PROCESSOR_REQUIRE, .fields = { 1, need }, .dead_letter_stream = "dead",
	};
	struct processors *c = chain_compile(&p, 1);
	struct event_field f[1];
	struct event ev;

	pipeline_init(&fx->pipe, fx->spool, WHY, c);
	text_field(&f[0], "other", "x", 1);
	event_make(&ev, "no user", 7, f, 1);
	ev.origin_gen = event_origin_gen();
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	text_field(&f[0], "user", "ann", 3);
	ev.message = (struct pbslice){ (const uint8_t *)"user", 4 };
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), 0);
	read_back(fx);
	assert_int_equal(fx->n, 2);
	assert_string_equal(fx->streams[0], "dead");
	assert_string_equal(fx->streams[1], "s");
	processors_free(c);
}

/* add_fields env: prod, then redact dropping user. */
static struct processors *
chain_env_prod_no_user(void)
{
	static struct agent_processor p[] = {
		{ .type = PROCESSOR_ADD_FIELDS, .values = { 1, env_prod } },
		{ .type = PROCESSOR_REDACT, .field = "user", .method = REDACT_DROP },
	};

	return chain_compile(p, 2);
}

/*
 * The spool's "no room now" hands the same event back to the source, which
 * offers it again: the chain's stages count it once, when it goes in, and
 * so do a type's own counters (redact's).
 */
static void
test_an_event_the_full_spool_takes_on_its_retry_is_counted_once_by_the_stages(void **state)
{
	struct fixture *fx = *state;
	struct processors *c = chain_env_prod_no_user();
	struct processors_stats st;
	struct redact_stats rs;
	struct spool_options o;
	struct event_field f[1];
	uint64_t range[2];
	unsigned seed = 7;
	struct event ev;

	/* A small spool, filled until it stays full. */
	spool_close(fx->spool, on_closed, fx);
	while (!fx->closed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	fx->closed = false;
	spool_options_default(&o, fx->dir);
	o.max_size = 4 << 20;
	o.block_bytes = 64 << 10;
	o.segment_max_bytes = 128 << 10;
	o.queue_blocks = 2;
	assert_int_equal(spool_open(&fx->loop, &o, on_writable, fx, &fx->spool), 0);
	assert_true(spool_fixture_fill(fx->spool, &fx->loop, &seed) > 0);
	pipeline_init(&fx->pipe, fx->spool, WHY, c);
	text_field(&f[0], "user", "ann", 3);
	event_make(&ev, "hello", 5, f, 1);
	assert_int_equal(pipeline_emit(&fx->pipe, &ev, 0, NULL), -EAGAIN);

	/* What the shipper does on Acks frees room; the source offers the event again. */
	spool_fixture_committed_range(fx->dir, range);
	assert_int_equal(spool_delete(fx->spool, range[0], range[1]), 0);
	while (pipeline_emit(&fx->pipe, &ev, 0, NULL) == -EAGAIN) {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	processors_get_stats(c, PROCESSOR_ADD_FIELDS, &st);
	assert_int_equal(st.passed, 1);
	assert_int_equal(st.dropped + st.errors + st.dead_lettered, 0);
	processors_get_stats(c, PROCESSOR_REDACT, &st);
	assert_int_equal(st.passed, 1);
	processors_get_type_stats(c, PROCESSOR_REDACT, &rs);
	assert_int_equal(rs.redacted, 1);
	assert_int_equal(rs.failed, 0);
	processors_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_an_event_that_fits_is_spooled_whole_with_its_position,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_an_event_too_large_with_its_fields_goes_with_why_and_its_marks_alone,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_an_event_refused_even_without_fields_is_counted_and_its_position_still_advances,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_cursor_advances_with_its_event_and_past_one_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_keys_a_chain_adds_are_read_by_their_bytes_whatever_the_source_said, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_the_source_chain_runs_at_the_door_before_the_spool,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_event_a_chain_re_streams_is_not_taken_for_its_origin_gen,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_the_too_large_fallback_applies_to_the_processed_event_and_keeps_its_marks,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_an_event_the_full_spool_takes_on_its_retry_is_counted_once_by_the_stages,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
