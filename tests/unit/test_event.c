/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pb_decode.h>

#include "proto/event.h"
#include "proto/logferry.pb.h"

#define S(str) ((struct pbslice){ (const uint8_t *)(str), sizeof(str) - 1 })

static const char line[] =
    "203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"";

/* An NGINX event with one field of every type. */
static void
sample(struct event *ev, struct event_field *f)
{
	memset(ev, 0, sizeof(*ev));
	memset(f, 0, 7 * sizeof(*f));
	ev->ts = UINT64_C(1795341600123456000);
	ev->host = S("web-01");
	ev->stream = S("nginx.access");
	ev->source = S("/var/log/nginx/access.log");
	ev->message = S(line);
	f[0].key = S("remote_addr");
	f[0].type = EVENT_SLICE;
	f[0].v.slice.offset = 0;
	f[0].v.slice.length = 11;
	f[1].key = S("status");
	f[1].type = EVENT_INTEGER;
	f[1].v.integer = 200;
	f[2].key = S("request_time");
	f[2].type = EVENT_NUMBER;
	f[2].v.number = 0.125;
	f[3].key = S("cached");
	f[3].type = EVENT_BOOLEAN;
	f[3].v.boolean = true;
	f[4].key = S("user");
	f[4].type = EVENT_TEXT;
	f[4].v.text = S("alice");
	f[5].key = S("tags");
	f[5].type = EVENT_JSON;
	f[5].v.json = S("[\"a\",1]");
	f[6].key = S("referer");
	f[6].type = EVENT_NULL;
	ev->fields = f;
	ev->nfields = 7;
}

static void
assert_slice(struct pbslice got, struct pbslice want)
{
	assert_int_equal(got.len, want.len);
	if (want.len)
		assert_memory_equal(got.ptr, want.ptr, want.len);
}

static void
assert_same_event(const struct event *got, const struct event *want)
{
	assert_int_equal(got->ts, want->ts);
	assert_slice(got->host, want->host);
	assert_slice(got->stream, want->stream);
	assert_slice(got->source, want->source);
	assert_slice(got->message, want->message);
	assert_int_equal(got->nfields, want->nfields);
	for (size_t i = 0; i < want->nfields; i++) {
		const struct event_field *g = &got->fields[i], *w = &want->fields[i];

		assert_slice(g->key, w->key);
		assert_int_equal(g->type, w->type);
		switch (w->type) {
		case EVENT_TEXT: assert_slice(g->v.text, w->v.text); break;
		case EVENT_JSON: assert_slice(g->v.json, w->v.json); break;
		case EVENT_INTEGER: assert_int_equal(g->v.integer, w->v.integer); break;
		case EVENT_NUMBER: assert_true(g->v.number == w->v.number); break;
		case EVENT_BOOLEAN: assert_int_equal(g->v.boolean, w->v.boolean); break;
		case EVENT_SLICE:
			assert_int_equal(g->v.slice.offset, w->v.slice.offset);
			assert_int_equal(g->v.slice.length, w->v.slice.length);
			break;
		case EVENT_NULL: break;
		}
	}
}

static void
test_every_field_type_round_trips(void **state)
{
	struct event ev, got;
	struct event_field f[7], gf[8];
	struct event_reader r;
	struct buf b;

	(void)state;
	sample(&ev, f);
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), 0);
	event_reader_init(&r, b.data, b.len, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_same_event(&got, &ev);
	assert_int_equal(event_reader_next(&r, &got), 0);
	buf_free(&b);
}

static void
test_decoded_bytes_point_into_the_input(void **state)
{
	struct event ev, got;
	struct event_field f[7], gf[8];
	struct event_reader r;
	struct buf b;

	(void)state;
	sample(&ev, f);
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), 0);
	event_reader_init(&r, b.data, b.len, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_true(got.message.ptr > b.data && got.message.ptr + got.message.len <= b.data + b.len);
	assert_true(got.host.ptr > b.data && got.host.ptr < b.data + b.len);
	assert_true(gf[0].key.ptr > b.data && gf[0].key.ptr < b.data + b.len);
	assert_true(gf[4].v.text.ptr > b.data && gf[4].v.text.ptr < b.data + b.len);
	buf_free(&b);
}

static void
test_concatenated_lists_read_as_one_list(void **state)
{
	struct event ev, got;
	struct event_field f[7], gf[8];
	struct event_reader r;
	struct buf one, all;
	int n = 0, rc;

	(void)state;
	sample(&ev, f);
	buf_init(&one, 1 << 20);
	buf_init(&all, 1 << 20);
	for (int i = 0; i < 3; i++) {
		buf_reset(&one);
		ev.ts = (uint64_t)i + 1;
		assert_int_equal(event_encode(&ev, &one), 0);
		assert_int_equal(buf_append(&all, one.data, one.len), 0);
	}
	event_reader_init(&r, all.data, all.len, gf, 8);
	while ((rc = event_reader_next(&r, &got)) == 1) {
		/* Every element has the same size here: its Event ends where the element does. */
		const uint8_t *element_end = all.data + (size_t)(n + 1) * one.len;

		assert_int_equal(got.ts, (uint64_t)++n);
		/* raw is the Event inside its element: tag and length in front, nothing after. */
		assert_true(got.raw.len > 0 && got.raw.len < one.len && one.len - got.raw.len <= 6);
		assert_ptr_equal(got.raw.ptr + got.raw.len, element_end);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 3);
	buf_free(&one);
	buf_free(&all);
}

/* nanopb's generated descriptors agree with the hand-written codec. */
struct nano_count {
	int events, fields;
	struct pbslice message;
};

static bool
nano_field(pb_istream_t *s, const pb_field_t *field, void **arg)
{
	struct nano_count *c = *arg;

	(void)field;
	c->fields++;
	return pb_read(s, NULL, s->bytes_left);
}

static bool
nano_event(pb_istream_t *s, const pb_field_t *field, void **arg)
{
	struct nano_count *c = *arg;
	logferry_Event e = logferry_Event_init_zero;

	(void)field;
	c->events++;
	pbslice_bind_decode(&e.message, &c->message);
	e.fields.funcs.decode = nano_field;
	e.fields.arg = c;
	return pb_decode(s, logferry_Event_fields, &e) && e.ts == UINT64_C(1795341600123456000);
}

static void
test_encoding_matches_the_proto_definition(void **state)
{
	struct event ev;
	struct event_field f[7];
	struct nano_count c = { 0 };
	logferry_EventList list = logferry_EventList_init_zero;
	pb_istream_t is;
	struct buf b;

	(void)state;
	sample(&ev, f);
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), 0);
	assert_int_equal(event_encode(&ev, &b), 0);
	list.events.funcs.decode = nano_event;
	list.events.arg = &c;
	is = pb_istream_from_buffer(b.data, b.len);
	assert_true(pb_decode(&is, logferry_EventList_fields, &list));
	assert_int_equal(c.events, 2);
	assert_int_equal(c.fields, 14);
	assert_slice(c.message, S(line));
	buf_free(&b);
}

static void
test_zero_values_keep_their_type(void **state)
{
	struct event ev = { 0 }, got;
	struct event_field f[3], gf[3];
	struct event_reader r;
	struct buf b;

	(void)state;
	memset(f, 0, sizeof(f));
	f[0].key = S("n");
	f[0].type = EVENT_INTEGER;
	f[1].key = S("b");
	f[1].type = EVENT_BOOLEAN;
	f[2].key = S("t");
	f[2].type = EVENT_TEXT;
	ev.fields = f;
	ev.nfields = 3;
	buf_init(&b, 1024);
	assert_int_equal(event_encode(&ev, &b), 0);
	event_reader_init(&r, b.data, b.len, gf, 3);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_same_event(&got, &ev);
	buf_free(&b);
}

static void
test_more_fields_than_room_is_refused(void **state)
{
	struct event ev, got;
	struct event_field f[7], gf[3];
	struct event_reader r;
	struct buf b;

	(void)state;
	sample(&ev, f);
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), 0);
	event_reader_init(&r, b.data, b.len, gf, 3);
	assert_int_equal(event_reader_next(&r, &got), -E2BIG);
	assert_string_equal(r.why, "too many fields in one event");
	assert_int_equal(event_reader_next(&r, &got), 0);
	buf_free(&b);
}

static void
test_bad_event_is_skipped_and_the_next_one_read(void **state)
{
	struct event ev, small = { .ts = 42 }, got;
	struct event_field f[7], gf[3];
	struct event_reader r;
	struct buf b;
	uint64_t n = 0;
	const char *why;

	(void)state;
	sample(&ev, f);
	small.host = (struct pbslice){ (const uint8_t *)"h", 1 };
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), 0);      /* 7 fields: too many for gf */
	assert_int_equal(event_encode(&small, &b), 0);
	assert_int_equal(event_list_count(b.data, b.len, &n, &why), 0);
	assert_int_equal(n, 2);
	event_reader_init(&r, b.data, b.len, gf, 3);
	assert_int_equal(event_reader_next(&r, &got), -E2BIG);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_null(r.why);
	assert_int_equal(got.ts, 42);
	assert_int_equal(event_reader_next(&r, &got), 0);
	/* A cut list: the count refuses its framing. */
	assert_int_equal(event_list_count(b.data, b.len - 1, &n, &why), -EPROTO);
	assert_non_null(why);
	buf_free(&b);
}

static void
test_every_truncation_is_refused(void **state)
{
	struct event ev, got;
	struct event_field f[7], gf[8];
	struct event_reader r;
	struct buf b;

	(void)state;
	sample(&ev, f);
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), 0);
	for (size_t len = 1; len < b.len; len++) {
		/* An exact-size copy: a read past the end is an ASan error. */
		uint8_t *cut = malloc(len);

		memcpy(cut, b.data, len);
		event_reader_init(&r, cut, len, gf, 8);
		assert_int_equal(event_reader_next(&r, &got), -EPROTO);
		assert_non_null(r.why);
		free(cut);
	}
	buf_free(&b);
}

static void
test_unknown_fields_are_skipped(void **state)
{
	/* EventList{events: Event{host: "h", 15: 7, fields: Field{key: "k", 9: 1, integer: -1}}, 2: 5} */
	const uint8_t bytes[] = {
		0x0a, 0x0e,
		0x12, 0x01, 'h',
		0x78, 0x07,
		0x32, 0x07, 0x0a, 0x01, 'k', 0x48, 0x01, 0x18, 0x01,
		0x10, 0x05,
	};
	struct event got;
	struct event_field gf[2];
	struct event_reader r;

	(void)state;
	event_reader_init(&r, bytes, sizeof(bytes), gf, 2);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("h"));
	assert_int_equal(got.nfields, 1);
	assert_slice(gf[0].key, S("k"));
	assert_int_equal(gf[0].type, EVENT_INTEGER);
	assert_int_equal(gf[0].v.integer, -1);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

static void
test_wrong_wire_type_is_refused(void **state)
{
	/* Event.host (field 2) as a varint. */
	const uint8_t bytes[] = { 0x0a, 0x02, 0x10, 0x01 };
	struct event got;
	struct event_field gf[1];
	struct event_reader r;

	(void)state;
	event_reader_init(&r, bytes, sizeof(bytes), gf, 1);
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "wrong wire type");
}

static void
test_slice_outside_the_message_is_refused(void **state)
{
	struct event ev = { .message = S("short") };
	struct event_field f = { .type = EVENT_SLICE, .v.slice = { 3, 3 } };
	struct event_field t = { .type = EVENT_INTEGER };
	struct pbslice out;

	(void)state;
	assert_int_equal(event_field_string(&ev, &f, &out), -EPROTO);
	f.v.slice.length = 2;
	assert_int_equal(event_field_string(&ev, &f, &out), 0);
	assert_slice(out, S("rt"));
	f.v.slice.offset = UINT32_MAX;
	assert_int_equal(event_field_string(&ev, &f, &out), -EPROTO);
	assert_int_equal(event_field_string(&ev, &t, &out), -EINVAL);
}

static void
test_empty_slice_of_an_event_without_message_is_empty(void **state)
{
	/* Found by fuzz_eventlist: NULL message, slice (0, 0). */
	struct event ev = { .message = { NULL, 0 } };
	struct event_field f = { .type = EVENT_SLICE, .v.slice = { 0, 0 } };
	struct pbslice out = { (const uint8_t *)"x", 1 };

	(void)state;
	assert_int_equal(event_field_string(&ev, &f, &out), 0);
	assert_null(out.ptr);
	assert_int_equal(out.len, 0);
	f.v.slice.length = 1;
	assert_int_equal(event_field_string(&ev, &f, &out), -EPROTO);
}

static void
test_encode_refuses_unknown_types_and_respects_the_cap(void **state)
{
	struct event ev, small = { .message = S(line) };
	struct event_field f[7];
	struct buf b;

	(void)state;
	sample(&ev, f);
	buf_init(&b, 64);
	assert_int_equal(event_encode(&small, &b), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	f[2].type = (enum event_value_type)42;
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&ev, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_random_bytes_never_crash(void **state)
{
	uint8_t bytes[200];
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	unsigned seed = 7;

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(bytes));
		int rc, n = 0;

		for (size_t i = 0; i < len; i++)
			bytes[i] = (uint8_t)rand_r(&seed);
		if (len > 2 && iter % 2) {
			bytes[0] = 0x0a;
			bytes[1] = (uint8_t)(len - 2);
		}
		event_reader_init(&r, bytes, len, gf, 4);
		while ((rc = event_reader_next(&r, &got)) == 1)
			n++;
		assert_true(rc == 0 || rc == -EPROTO || rc == -E2BIG);
		assert_true(n <= (int)len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_field_type_round_trips),
		cmocka_unit_test(test_decoded_bytes_point_into_the_input),
		cmocka_unit_test(test_concatenated_lists_read_as_one_list),
		cmocka_unit_test(test_encoding_matches_the_proto_definition),
		cmocka_unit_test(test_zero_values_keep_their_type),
		cmocka_unit_test(test_more_fields_than_room_is_refused),
		cmocka_unit_test(test_bad_event_is_skipped_and_the_next_one_read),
		cmocka_unit_test(test_every_truncation_is_refused),
		cmocka_unit_test(test_unknown_fields_are_skipped),
		cmocka_unit_test(test_wrong_wire_type_is_refused),
		cmocka_unit_test(test_slice_outside_the_message_is_refused),
		cmocka_unit_test(test_empty_slice_of_an_event_without_message_is_empty),
		cmocka_unit_test(test_encode_refuses_unknown_types_and_respects_the_cap),
		cmocka_unit_test(test_random_bytes_never_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
