/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
	/* Fields all of the shape read in one pass (slices, integers): the same, and no write past the room. */
	buf_reset(&b);
	for (int i = 2; i < 7; i++)
		f[i] = f[i % 2];
	assert_int_equal(event_encode(&ev, &b), 0);
	memset(gf, 0x5a, sizeof(gf));
	event_reader_init(&r, b.data, b.len, gf, 2);
	assert_int_equal(event_reader_next(&r, &got), -E2BIG);
	assert_string_equal(r.why, "too many fields in one event");
	assert_int_equal(gf[2].key_id, 0x5a5a5a5a);
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
	/* EventList{events: Event{host: "h", 15: 7, fields: Field{key: "k", 9: 1, integer: -1}}, 3: 5} */
	const uint8_t bytes[] = {
		0x0a, 0x0e,
		0x12, 0x01, 'h',
		0x78, 0x07,
		0x32, 0x07, 0x0a, 0x01, 'k', 0x48, 0x01, 0x18, 0x01,
		0x18, 0x05,
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

/*
 * The tests' own protobuf writing, independent of proto/event.c: a varint
 * and a length-delimited field appended at b[*n].
 */
static void
put_varint(uint8_t *b, size_t *n, uint64_t v)
{
	while (v >= 0x80) {
		b[(*n)++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[(*n)++] = (uint8_t)v;
}

static void
put_bytes(uint8_t *b, size_t *n, unsigned field, const void *p, size_t len)
{
	put_varint(b, n, (uint64_t)field << 3 | 2);
	put_varint(b, n, len);
	memcpy(b + *n, p, len);
	*n += len;
}

/* A writer into a caller's buffer, for the bytes event_encode must produce. */
struct ref {
	uint8_t *b;
	size_t n;
};

static void
ref_varint(struct ref *r, uint64_t v)
{
	put_varint(r->b, &r->n, v);
}

static void
ref_bytes(struct ref *r, unsigned field, const uint8_t *p, size_t len)
{
	put_bytes(r->b, &r->n, field, p, len);
}

/*
 * Event { message, Field { key or key_id, text } }, origin or host when
 * origin is 0, as proto/logferry.proto lays it out with minimal varints.
 */
static void
ref_event(struct ref *out, const struct event *ev, unsigned key_id, unsigned origin)
{
	struct ref body = { malloc(ev->message.len + ev->fields[0].v.text.len + 64), 0 };
	struct ref field = { malloc(ev->fields[0].v.text.len + 32), 0 };

	assert_non_null(body.b);
	assert_non_null(field.b);
	if (origin) {
		body.b[body.n++] = 7 << 3;
		ref_varint(&body, origin);
	} else {
		ref_bytes(&body, 2, ev->host.ptr, ev->host.len);
	}
	if (ev->message.len)
		ref_bytes(&body, 5, ev->message.ptr, ev->message.len);
	if (key_id) {
		field.b[field.n++] = 8 << 3;
		ref_varint(&field, key_id);
	} else {
		ref_bytes(&field, 1, ev->fields[0].key.ptr, ev->fields[0].key.len);
	}
	ref_bytes(&field, 2, ev->fields[0].v.text.ptr, ev->fields[0].v.text.len);
	ref_bytes(&body, 6, field.b, field.n);
	ref_bytes(out, 1, body.b, body.n);
	free(body.b);
	free(field.b);
}

/*
 * encode writes ev as want, whether the buffer has room to spare (allocated
 * before or not) or exactly the event's bytes, and refuses a byte short
 * with the buffer unchanged.
 */
static void
assert_encodes_in_every_room(int (*encode)(const struct event *, const uint16_t *, unsigned,
    struct buf *), const struct event *ev, const uint16_t *ids, unsigned origin,
    const struct ref *want)
{
	struct buf b;

	for (int room = 0; room < 4; room++) {
		buf_init(&b, room == 0 || room == 3 ? 8u << 20 : want->n - (room == 2));
		if (room == 3)
			assert_int_equal(buf_reserve(&b, want->n + 4096), 0);
		assert_int_equal(encode(ev, ids, origin, &b), room == 2 ? -EMSGSIZE : 0);
		if (room == 2) {
			assert_int_equal(b.len, 0);
		} else {
			assert_int_equal(b.len, want->n);
			assert_memory_equal(b.data, want->b, want->n);
		}
		buf_free(&b);
	}
}

/*
 * Every length crossing a varint's width (1, 2, 3 bytes) is written in
 * the fewest bytes, whether the buffer has room to spare (allocated or
 * not yet) or exactly the event's bytes, and one byte less is refused
 * with the buffer unchanged.
 */
static void
test_encoded_lengths_are_minimal_varints_at_every_boundary(void **state)
{
	static const size_t lens[] = { 0, 1, 100, 105, 106, 107, 108, 109, 110, 111, 112, 113,
		114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129,
		130, 16360, 16365, 16366, 16367, 16368, 16369, 16370, 16371, 16372, 16373, 16374,
		16375, 16376, 16377, 16378, 16379, 16380, 16381, 16382, 16383, 16384, 16385,
		2097140, 2097150, 2097151, 2097152 };
	const size_t n = sizeof(lens) / sizeof(lens[0]);
	uint8_t *big = malloc(2097152);
	struct ref want = { malloc(2 * 2097152 + 256), 0 };
	struct event ev = { 0 };
	struct event_field f = { .key = S("k"), .type = EVENT_TEXT };
	uint16_t id = 300;

	(void)state;
	assert_non_null(big);
	assert_non_null(want.b);
	memset(big, 'x', 2097152);
	ev.host = S("h");
	ev.fields = &f;
	ev.nfields = 1;
	for (size_t mi = 0; mi < n; mi++) {
		for (size_t ti = 0; ti < n; ti++) {
			/* The 2 MiB values with small others, and all the small ones together. */
			if (lens[mi] > 20000 && lens[ti] > 130)
				continue;
			ev.message = (struct pbslice){ big, lens[mi] };
			f.v.text = (struct pbslice){ big, lens[ti] };
			for (int ids = 0; ids < 2; ids++) {
				want.n = 0;
				ref_event(&want, &ev, ids ? id : 0, ids ? 5 : 0);
				assert_encodes_in_every_room(event_encode_ids, &ev, ids ? &id : NULL,
				    ids ? 5 : 0, &want);
			}
		}
	}
	free(big);
	free(want.b);
}

/*
 * A slice field by id, as a parser's are, in the bytes of the proto: ids
 * of 1 and 2 bytes, offsets and lengths absent (0), of 1, 2 and 5 bytes.
 */
static void
test_slice_fields_by_id_are_encoded_as_the_proto_says(void **state)
{
	static const uint32_t vals[] = { 0, 1, 127, 128, 16383, 16384, UINT32_MAX };
	static const uint16_t ids[] = { 1, 2, 126, 127, 128, 300, 4095 };
	struct event ev = { 0 };
	struct event_field f[2] = { { .type = EVENT_SLICE }, { .type = EVENT_SLICE } };
	uint8_t want[128], body_b[64], field_b[32], slice_b[16];
	struct buf b;

	(void)state;
	f[0].key = S("a");
	f[1].key = S("b");
	ev.fields = f;
	ev.nfields = 2;
	buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		for (size_t o = 0; o < sizeof(vals) / sizeof(vals[0]); o++) {
			for (size_t l = 0; l < sizeof(vals) / sizeof(vals[0]); l++) {
				uint16_t key_ids[2] = { ids[i], 0 };
				struct ref body = { body_b, 0 }, field = { field_b, 0 };

				f[0].v.slice.offset = f[1].v.slice.offset = vals[o];
				f[0].v.slice.length = f[1].v.slice.length = vals[l];
				/* Field 1 by id, field 2 by name: Field { key, Slice { offset, length } }. */
				for (int k = 0; k < 2; k++) {
					struct ref slice = { slice_b, 0 };

					field.n = 0;
					if (vals[o]) {
						slice.b[slice.n++] = 1 << 3;
						ref_varint(&slice, vals[o]);
					}
					if (vals[l]) {
						slice.b[slice.n++] = 2 << 3;
						ref_varint(&slice, vals[l]);
					}
					if (k == 0) {
						field.b[field.n++] = 8 << 3;
						ref_varint(&field, ids[i]);
					} else {
						ref_bytes(&field, 1, (const uint8_t *)"b", 1);
					}
					ref_bytes(&field, 6, slice.b, slice.n);
					ref_bytes(&body, 6, field.b, field.n);
				}
				/* EventList { events: the body }, its length 1 byte. */
				memcpy(want + 2, body.b, body.n);
				want[0] = 1 << 3 | 2;
				want[1] = (uint8_t)body.n;
				buf_reset(&b);
				assert_int_equal(event_encode_ids(&ev, key_ids, 0, &b), 0);
				assert_int_equal(b.len, 2 + body.n);
				assert_memory_equal(b.data, want, 2 + body.n);
			}
		}
	}
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

/* ------------------------------------------------ format 2, built by hand */

/* A protobuf message under construction, for lists no encoder writes. */
struct pb {
	uint8_t b[2048];
	size_t n;
};

static void
pb_varint(struct pb *m, uint64_t v)
{
	put_varint(m->b, &m->n, v);
}

static void
pb_uint(struct pb *m, unsigned field, uint64_t v)
{
	pb_varint(m, (uint64_t)field << 3);
	pb_varint(m, v);
}

static void
pb_bytes(struct pb *m, unsigned field, const void *p, size_t len)
{
	put_bytes(m->b, &m->n, field, p, len);
}

static void
pb_str(struct pb *m, unsigned field, const char *s)
{
	pb_bytes(m, field, s, strlen(s));
}

static void
pb_sub(struct pb *m, unsigned field, const struct pb *sub)
{
	pb_bytes(m, field, sub->b, sub->n);
}

/* Dict.keys: DictKey { id, name }. */
static void
dict_key(struct pb *dict, unsigned id, const char *name)
{
	struct pb k = { .n = 0 };

	pb_uint(&k, 1, id);
	pb_str(&k, 2, name);
	pb_sub(dict, 1, &k);
}

/* Dict.origins: DictOrigin { id, host, stream, source }. */
static void
dict_origin(struct pb *dict, unsigned id, const char *host, const char *stream, const char *source)
{
	struct pb o = { .n = 0 };

	pb_uint(&o, 1, id);
	pb_str(&o, 2, host);
	pb_str(&o, 3, stream);
	pb_str(&o, 4, source);
	pb_sub(dict, 2, &o);
}

/* An Event.fields element with key_id and an integer value. */
static void
ev_int_field(struct pb *ev, unsigned key_id, int64_t v)
{
	struct pb f = { .n = 0 };

	pb_uint(&f, 8, key_id);
	pb_uint(&f, 3, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
	pb_sub(ev, 6, &f);
}

/* An event of origin origin (0: none) with one field key_id = v. */
static void
list_event(struct pb *list, unsigned origin, unsigned key_id, int64_t v, const char *host)
{
	struct pb ev = { .n = 0 };

	pb_str(&ev, 5, "msg");
	if (host != NULL)
		pb_str(&ev, 2, host);
	if (key_id)
		ev_int_field(&ev, key_id, v);
	if (origin)
		pb_uint(&ev, 7, origin);
	pb_sub(list, 1, &ev);
}

static void
test_format2_names_and_origin_resolve_through_the_dict(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	uint64_t n;
	const char *why;

	(void)state;
	dict_key(&dict, 1, "status");
	dict_key(&dict, 4095, "bytes_sent");
	dict_origin(&dict, 1023, "web-01", "nginx.access", "/var/log/nginx/access.log");
	pb_sub(&list, 2, &dict);
	list_event(&list, 1023, 1, 200, NULL);
	list_event(&list, 0, 4095, 612, "literal");
	assert_int_equal(event_list_count(list.b, list.n, &n, &why), 0);
	assert_int_equal(n, 2);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("web-01"));
	assert_slice(got.stream, S("nginx.access"));
	assert_slice(got.source, S("/var/log/nginx/access.log"));
	assert_slice(got.message, S("msg"));
	assert_true(got.host.ptr > list.b && got.host.ptr < list.b + list.n);
	assert_int_equal(got.nfields, 1);
	assert_slice(gf[0].key, S("status"));
	assert_int_equal(gf[0].type, EVENT_INTEGER);
	assert_int_equal(gf[0].v.integer, 200);
	assert_true(got.dict_refs);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("literal"));
	assert_int_equal(got.stream.len, 0);
	assert_slice(gf[0].key, S("bytes_sent"));
	assert_int_equal(gf[0].v.integer, 612);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

static void
test_format2_bad_or_undefined_ids_are_malformed_events(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;

	(void)state;
	/* Before any Dict: nothing is defined. */
	list_event(&list, 0, 1, 1, NULL);
	dict_key(&dict, 1, "status");
	dict_origin(&dict, 1, "h", "s", "src");
	pb_sub(&list, 2, &dict);
	list_event(&list, 0, 4096, 1, NULL);
	list_event(&list, 0, 2, 1, NULL);
	list_event(&list, 1024, 0, 0, NULL);
	list_event(&list, 2, 0, 0, NULL);
	list_event(&list, 1, 1, 7, NULL);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "key id with no Dict before it");
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "key id outside 1..4095");
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "key id the Dict does not define");
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "origin id outside 1..1023");
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "origin id the Dict does not define");
	/* The bad ones cost only themselves. */
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("h"));
	assert_slice(gf[0].key, S("status"));
	assert_int_equal(gf[0].v.integer, 7);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

/*
 * One Field, as its bytes: what protobuf says it decodes to (rc 1), or
 * why it is malformed. The encoders write a key (id or literal) then one
 * value; every other order, repetition and width must read the same.
 */
struct field_shape {
	const char *what;
	uint8_t b[16];
	size_t n;
	int rc;
	const char *why;
	const char *key;
	enum event_value_type type;
	uint32_t off, len;            /* slice */
	int64_t integer;
	const char *text;
};

static const struct field_shape field_shapes[] = {
	{ "id, slice", { 0x40, 0x01, 0x32, 0x04, 0x08, 0x03, 0x10, 0x04 }, 8, 1, NULL,
	    "k1", EVENT_SLICE, 3, 4, 0, NULL },
	{ "two-byte id, empty slice", { 0x40, 0xc8, 0x01, 0x32, 0x00 }, 5, 1, NULL,
	    "k200", EVENT_SLICE, 0, 0, 0, NULL },
	{ "id of a longer varint than needed", { 0x40, 0x81, 0x00, 0x32, 0x00 }, 5, 1, NULL,
	    "k1", EVENT_SLICE, 0, 0, 0, NULL },
	{ "slice length alone", { 0x40, 0x01, 0x32, 0x02, 0x10, 0x05 }, 6, 1, NULL,
	    "k1", EVENT_SLICE, 0, 5, 0, NULL },
	{ "slice length before offset", { 0x40, 0x01, 0x32, 0x04, 0x10, 0x05, 0x08, 0x02 }, 8, 1,
	    NULL, "k1", EVENT_SLICE, 2, 5, 0, NULL },
	{ "slice offset twice: the last", { 0x40, 0x01, 0x32, 0x04, 0x08, 0x01, 0x08, 0x02 }, 8, 1,
	    NULL, "k1", EVENT_SLICE, 2, 0, 0, NULL },
	{ "slice offset of 5 bytes", { 0x40, 0x01, 0x32, 0x06, 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f },
	    10, 1, NULL, "k1", EVENT_SLICE, UINT32_MAX, 0, 0, NULL },
	{ "slice with an unknown field", { 0x40, 0x01, 0x32, 0x04, 0x08, 0x01, 0x18, 0x07 }, 8, 1,
	    NULL, "k1", EVENT_SLICE, 1, 0, 0, NULL },
	{ "value before key", { 0x32, 0x02, 0x08, 0x01, 0x40, 0x01 }, 6, 1, NULL,
	    "k1", EVENT_SLICE, 1, 0, 0, NULL },
	{ "literal key before an id: the literal", { 0x0a, 0x01, 'x', 0x40, 0x01, 0x32, 0x00 }, 7,
	    1, NULL, "x", EVENT_SLICE, 0, 0, 0, NULL },
	{ "id before a literal key: the literal", { 0x40, 0x01, 0x0a, 0x01, 'y', 0x32, 0x00 }, 7,
	    1, NULL, "y", EVENT_SLICE, 0, 0, 0, NULL },
	{ "slice then integer: the integer", { 0x40, 0x01, 0x32, 0x00, 0x18, 0x04 }, 6, 1, NULL,
	    "k1", EVENT_INTEGER, 0, 0, 2, NULL },
	{ "integer then text: the text", { 0x40, 0x01, 0x18, 0x04, 0x12, 0x01, 'z' }, 7, 1, NULL,
	    "k1", EVENT_TEXT, 0, 0, 0, "z" },
	{ "literal key, slice", { 0x0a, 0x02, 'k', 'k', 0x32, 0x02, 0x08, 0x05 }, 8, 1, NULL,
	    "kk", EVENT_SLICE, 5, 0, 0, NULL },
	{ "literal key, text", { 0x0a, 0x01, 'a', 0x12, 0x03, 'b', 'c', 'd' }, 8, 1, NULL,
	    "a", EVENT_TEXT, 0, 0, 0, "bcd" },
	{ "id, empty text", { 0x40, 0x01, 0x12, 0x00 }, 4, 1, NULL,
	    "k1", EVENT_TEXT, 0, 0, 0, "" },
	{ "id alone: null", { 0x40, 0x01 }, 2, 1, NULL, "k1", EVENT_NULL, 0, 0, 0, NULL },
	{ "id, negative integer", { 0x40, 0x01, 0x18, 0x03 }, 4, 1, NULL,
	    "k1", EVENT_INTEGER, 0, 0, -2, NULL },
	{ "id, integer of 10 bytes", { 0x40, 0x01, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0x01 }, 13, 1, NULL, "k1", EVENT_INTEGER, 0, 0, INT64_MIN, NULL },
	{ "id, integer, unknown field", { 0x40, 0x01, 0x18, 0x04, 0x48, 0x01 }, 6, 1, NULL,
	    "k1", EVENT_INTEGER, 0, 0, 2, NULL },
	{ "slice longer than its field", { 0x40, 0x01, 0x32, 0x05, 0x08, 0x01 }, 6, -EPROTO,
	    "length beyond the end of its message", NULL, 0, 0, 0, 0, NULL },
	{ "id cut short", { 0x40 }, 1, -EPROTO, "truncated varint", NULL, 0, 0, 0, 0, NULL },
	{ "id of a length-delimited type", { 0x42, 0x01, 0x00 }, 3, -EPROTO, "wrong wire type", NULL, 0, 0, 0, 0, NULL },
	{ "slice offset of 4 GiB", { 0x40, 0x01, 0x32, 0x06, 0x08, 0x80, 0x80, 0x80, 0x80, 0x10 },
	    10, -EPROTO, "slice bound above 4 GiB", NULL, 0, 0, 0, 0, NULL },
	{ "text longer than its field", { 0x40, 0x01, 0x12, 0x05, 'a' }, 5, -EPROTO,
	    "length beyond the end of its message", NULL, 0, 0, 0, 0, NULL },
	{ "key id the Dict does not define", { 0x40, 0x02, 0x32, 0x00 }, 4, -EPROTO,
	    "key id the Dict does not define", NULL, 0, 0, 0, 0, NULL },
	{ "key id 0: no key", { 0x40, 0x00, 0x32, 0x00 }, 4, 1, NULL,
	    "", EVENT_SLICE, 0, 0, 0, NULL },
};

static void
test_fields_of_every_shape_decode_as_protobuf_says(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(field_shapes) / sizeof(field_shapes[0]); i++) {
		const struct field_shape *s = &field_shapes[i];
		struct pb list = { .n = 0 }, dict = { .n = 0 }, ev = { .n = 0 };
		struct event got;
		struct event_field gf[2];
		struct event_reader r;

		print_message("%s\n", s->what);
		dict_key(&dict, 1, "k1");
		dict_key(&dict, 200, "k200");
		pb_sub(&list, 2, &dict);
		pb_str(&ev, 5, "0123456789");
		pb_bytes(&ev, 6, s->b, s->n);
		pb_sub(&list, 1, &ev);
		event_reader_init(&r, list.b, list.n, gf, 2);
		assert_int_equal(event_reader_next(&r, &got), s->rc);
		if (s->rc != 1) {
			assert_string_equal(r.why, s->why);
			assert_int_equal(event_reader_next(&r, &got), 0);
			continue;
		}
		assert_int_equal(got.nfields, 1);
		/* Only a name from the Dict makes the event more than its own bytes. */
		assert_int_equal(got.dict_refs, strcmp(s->key, "k1") == 0 || strcmp(s->key, "k200") == 0);
		assert_int_equal(gf[0].key.len, strlen(s->key));
		assert_memory_equal(gf[0].key.ptr != NULL ? gf[0].key.ptr : (const uint8_t *)"",
		    s->key, strlen(s->key));
		assert_int_equal(gf[0].type, s->type);
		switch (s->type) {
		case EVENT_SLICE:
			assert_int_equal(gf[0].v.slice.offset, s->off);
			assert_int_equal(gf[0].v.slice.length, s->len);
			break;
		case EVENT_INTEGER:
			assert_true(gf[0].v.integer == s->integer);
			break;
		case EVENT_TEXT:
			assert_slice(gf[0].v.text, (struct pbslice){ (const uint8_t *)s->text,
			    strlen(s->text) });
			break;
		default:
			break;
		}
		assert_int_equal(event_reader_next(&r, &got), 0);
	}
}

static void
test_format2_malformed_dict_fails_only_the_events_that_use_it(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	uint64_t n;
	const char *why;

	(void)state;
	dict_key(&dict, 1, "a");
	dict_key(&dict, 5000, "too far");
	pb_sub(&list, 2, &dict);
	list_event(&list, 0, 1, 1, NULL);
	list_event(&list, 0, 0, 0, "plain");
	assert_int_equal(event_list_count(list.b, list.n, &n, &why), 0);
	assert_int_equal(n, 2);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "Dict key id outside 1..4095");
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("plain"));
	assert_false(got.dict_refs);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

static void
test_format2_a_later_dict_replaces_the_tables(void **state)
{
	struct pb list = { .n = 0 }, a = { .n = 0 }, b = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;

	(void)state;
	dict_key(&a, 1, "first");
	dict_origin(&a, 1, "h", "s", "src");
	dict_key(&b, 1, "second");
	pb_sub(&list, 2, &a);
	list_event(&list, 1, 1, 1, NULL);
	pb_sub(&list, 2, &b);
	list_event(&list, 0, 1, 2, NULL);
	list_event(&list, 1, 0, 0, NULL);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("first"));
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("second"));
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "origin id the Dict does not define");
	assert_int_equal(event_reader_next(&r, &got), 0);
}

static void
test_format2_event_fields_override_the_origins(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 }, ev = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;

	(void)state;
	dict_origin(&dict, 3, "h", "s", "src");
	pb_sub(&list, 2, &dict);
	/* The origin before the event's own stream: order does not matter. */
	pb_uint(&ev, 7, 3);
	pb_str(&ev, 3, "own.stream");
	pb_sub(&list, 1, &ev);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("h"));
	assert_slice(got.stream, S("own.stream"));
	assert_slice(got.source, S("src"));
}

static void
test_format2_concatenated_segments_each_read_with_their_dict(void **state)
{
	struct pb one = { .n = 0 }, two = { .n = 0 }, d1 = { .n = 0 }, d2 = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	uint8_t all[4096];

	(void)state;
	dict_key(&d1, 1, "status");
	dict_origin(&d1, 1, "web-01", "nginx.access", "/a.log");
	pb_sub(&one, 2, &d1);
	list_event(&one, 1, 1, 200, NULL);
	list_event(&one, 1, 1, 404, NULL);
	dict_key(&d2, 1, "pid");
	dict_origin(&d2, 1, "web-02", "app", "/b.log");
	pb_sub(&two, 2, &d2);
	list_event(&two, 1, 1, 42, NULL);
	memcpy(all, one.b, one.n);
	memcpy(all + one.n, two.b, two.n);
	event_reader_init(&r, all, one.n + two.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("web-01"));
	assert_slice(gf[0].key, S("status"));
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_int_equal(gf[0].v.integer, 404);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("web-02"));
	assert_slice(got.source, S("/b.log"));
	assert_slice(gf[0].key, S("pid"));
	assert_int_equal(gf[0].v.integer, 42);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

static void
test_format2_readers_interleaved_on_one_thread_keep_their_own_dict(void **state)
{
	struct pb one = { .n = 0 }, two = { .n = 0 }, d1 = { .n = 0 }, d2 = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r1, r2;

	(void)state;
	dict_key(&d1, 1, "one");
	dict_key(&d2, 1, "two");
	pb_sub(&one, 2, &d1);
	pb_sub(&two, 2, &d2);
	for (int i = 0; i < 3; i++) {
		list_event(&one, 0, 1, i, NULL);
		list_event(&two, 0, 1, i, NULL);
	}
	event_reader_init(&r1, one.b, one.n, gf, 4);
	event_reader_init(&r2, two.b, two.n, gf, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(event_reader_next(&r1, &got), 1);
		assert_slice(gf[0].key, S("one"));
		assert_int_equal(event_reader_next(&r2, &got), 1);
		assert_slice(gf[0].key, S("two"));
	}
}

static void
test_format2_reading_resumes_at_an_offset_with_the_saved_dict(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	struct pbslice saved;
	size_t off;

	(void)state;
	dict_key(&dict, 1, "status");
	pb_sub(&list, 2, &dict);
	list_event(&list, 0, 1, 200, NULL);
	list_event(&list, 0, 1, 500, NULL);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	off = (size_t)(r.p - list.b);
	saved = r.dict;
	event_reader_init(&r, list.b + off, list.n - off, gf, 4);
	event_reader_set_dict(&r, saved);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("status"));
	assert_int_equal(gf[0].v.integer, 500);
}

static void
test_format2_event_encodes_again_self_contained(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 };
	struct event got, again;
	struct event_field gf[4], af[4];
	struct event_reader r;
	struct buf b;

	(void)state;
	dict_key(&dict, 1, "status");
	dict_origin(&dict, 1, "h", "s", "src");
	pb_sub(&list, 2, &dict);
	list_event(&list, 1, 1, 200, NULL);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode(&got, &b), 0);
	event_reader_init(&r, b.data, b.len, af, 4);
	assert_int_equal(event_reader_next(&r, &again), 1);
	assert_false(again.dict_refs);
	assert_same_event(&again, &got);
	buf_free(&b);
}

static void
test_format2_encoded_event_reads_back_through_its_dict(void **state)
{
	static struct pbslice keys[EVENT_MAX_KEY_ID + 1], origins[EVENT_MAX_ORIGIN_ID + 1][3];
	uint64_t key_used[64] = { 0 }, origin_used[16] = { 0 };
	uint16_t ids[7] = { 1, 0, 4095, 0, 0, 0, 2 };
	struct event ev, got;
	struct event_field f[7], gf[8];
	struct event_reader r;
	struct buf b, plain;

	(void)state;
	sample(&ev, f);
	keys[1] = f[0].key;
	keys[2] = f[6].key;
	keys[3] = S("never used");
	keys[4095] = f[2].key;
	origins[1023][0] = ev.host;
	origins[1023][1] = ev.stream;
	origins[1023][2] = ev.source;
	key_used[0] = UINT64_C(1) << 1 | UINT64_C(1) << 2;
	key_used[4095 / 64] = UINT64_C(1) << (4095 % 64);
	origin_used[1023 / 64] = UINT64_C(1) << (1023 % 64);
	buf_init(&b, 1 << 20);
	buf_init(&plain, 1 << 20);
	assert_int_equal(event_encode_dict(keys, key_used, origins, origin_used, &b), 0);
	assert_int_equal(event_encode_ids(&ev, ids, 1023, &b), 0);
	assert_int_equal(event_encode_ids(&ev, NULL, 0, &b), 0);
	assert_int_equal(event_encode(&ev, &plain), 0);
	event_reader_init(&r, b.data, b.len, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_true(got.dict_refs);
	assert_same_event(&got, &ev);
	/* Without ids the event is format 1's, byte for byte. */
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_false(got.dict_refs);
	assert_same_event(&got, &ev);
	assert_true(got.raw.len < plain.len);
	assert_memory_equal(got.raw.ptr, plain.data + plain.len - got.raw.len, got.raw.len);
	assert_int_equal(event_reader_next(&r, &got), 0);
	/* Only the entries marked used are in the Dict. */
	assert_null(memmem(b.data, b.len, "never used", 10));
	buf_free(&b);
	buf_free(&plain);
}

/*
 * The Dict lists every used id on each edge of its bitmap's 64-bit words,
 * in id order, and never id 0 (no key or origin has it) even with its bit
 * set: the writer walks the words, not every id (issue 19 item 2).
 */
static void
test_dict_lists_used_ids_on_word_edges_in_order_and_never_id_0(void **state)
{
	static struct pbslice keys[EVENT_MAX_KEY_ID + 1], origins[EVENT_MAX_ORIGIN_ID + 1][3];
	static const unsigned kid[] = { 1, 63, 64, 127, 128, 2047, 4032, 4094, 4095 };
	static const unsigned oid[] = { 1, 63, 64, 1022, 1023 };
	static char kname[sizeof(kid) / sizeof(kid[0])][16];
	static char oname[sizeof(oid) / sizeof(oid[0])][16];
	uint64_t key_used[64] = { 0 }, origin_used[16] = { 0 };
	const uint8_t *at = NULL, *p;
	struct buf b;

	(void)state;
	keys[0] = S("key id zero");
	origins[0][0] = S("origin id zero");
	key_used[0] = origin_used[0] = 1;
	for (size_t i = 0; i < sizeof(kid) / sizeof(kid[0]); i++) {
		snprintf(kname[i], sizeof(kname[i]), "key%u.", kid[i]);
		keys[kid[i]] = (struct pbslice){ (const uint8_t *)kname[i], strlen(kname[i]) };
		key_used[kid[i] / 64] |= UINT64_C(1) << (kid[i] % 64);
	}
	for (size_t i = 0; i < sizeof(oid) / sizeof(oid[0]); i++) {
		snprintf(oname[i], sizeof(oname[i]), "host%u.", oid[i]);
		origins[oid[i]][0] = (struct pbslice){ (const uint8_t *)oname[i], strlen(oname[i]) };
		origin_used[oid[i] / 64] |= UINT64_C(1) << (oid[i] % 64);
	}
	buf_init(&b, 1 << 20);
	assert_int_equal(event_encode_dict(keys, key_used, origins, origin_used, &b), 0);
	for (size_t i = 0; i < sizeof(kid) / sizeof(kid[0]); i++) {
		assert_non_null(p = memmem(b.data, b.len, kname[i], strlen(kname[i])));
		assert_true(at == NULL || p > at);
		at = p;
	}
	for (size_t i = 0; i < sizeof(oid) / sizeof(oid[0]); i++) {
		assert_non_null(p = memmem(b.data, b.len, oname[i], strlen(oname[i])));
		assert_true(p > at);
		at = p;
	}
	assert_null(memmem(b.data, b.len, "id zero", 7));
	buf_free(&b);
}

static void
test_format2_list_converts_to_format1_event_by_event(void **state)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	struct buf out;
	uint64_t n;
	const char *why;

	(void)state;
	dict_key(&dict, 1, "status");
	dict_origin(&dict, 1, "h", "s", "src");
	pb_sub(&list, 2, &dict);
	list_event(&list, 1, 1, 200, NULL);
	list_event(&list, 0, 0, 0, "plain");
	list_event(&list, 0, 9, 1, NULL);        /* undefined: stays one malformed event */
	buf_init(&out, 1 << 20);
	assert_int_equal(event_list_format1(list.b, list.n, &out), 0);
	/* The first element is an event (field 1), not a Dict (field 2). */
	assert_int_equal(out.data[0], 0x0a);
	assert_int_equal(event_list_count(out.data, out.len, &n, &why), 0);
	assert_int_equal(n, 3);
	event_reader_init(&r, out.data, out.len, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_false(got.dict_refs);
	assert_slice(got.host, S("h"));
	assert_slice(got.source, S("src"));
	assert_slice(gf[0].key, S("status"));
	assert_int_equal(gf[0].v.integer, 200);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("plain"));
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_int_equal(event_reader_next(&r, &got), 0);
	buf_free(&out);
}

/* ------------------------------------------------ format 3, built by hand */

static uint64_t
zz(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* A packed slice entry: key id, head (delta from the previous end, kind 0), length. */
static void
packed_slice(struct pb *p, unsigned key_id, int64_t delta, uint64_t length)
{
	pb_varint(p, key_id);
	pb_varint(p, zz(delta) << 2);
	pb_varint(p, length);
}

static void
packed_int(struct pb *p, unsigned key_id, int64_t v)
{
	pb_varint(p, key_id);
	pb_varint(p, 1);
	pb_varint(p, zz(v));
}

/* A Dict naming keys 1 "request", 2 "method", 3 "status", 4 "path". */
static void
format3_dict(struct pb *list)
{
	struct pb dict = { .n = 0 };

	dict_key(&dict, 1, "request");
	dict_key(&dict, 2, "method");
	dict_key(&dict, 3, "status");
	dict_key(&dict, 4, "path");
	pb_sub(list, 2, &dict);
}

/* An event of message "GET /x HTTP/1.1" whose Event.packed_fields is p. */
static void
packed_event(struct pb *list, const struct pb *p)
{
	struct pb ev = { .n = 0 };

	pb_str(&ev, 5, "GET /x HTTP/1.1");
	pb_sub(&ev, 8, p);
	pb_sub(list, 1, &ev);
}

static void
test_format3_packed_fields_read_every_kind_with_negative_deltas(void **state)
{
	struct pb list = { .n = 0 }, p = { .n = 0 };
	struct event got;
	struct event_field gf[8];
	struct event_reader r;
	struct pbslice s;

	(void)state;
	format3_dict(&list);
	packed_slice(&p, 1, 0, 15);          /* request: [0, 15) */
	packed_slice(&p, 2, -15, 3);         /* method: [0, 3), before the previous end */
	packed_int(&p, 3, -200);
	packed_slice(&p, 4, 1, 2);           /* path: [4, 6), after the method's end */
	packed_int(&p, 3, INT64_MAX);
	packed_int(&p, 3, INT64_MIN);
	packed_slice(&p, 1, -6, 0);          /* empty, at 0 */
	packed_event(&list, &p);
	event_reader_init(&r, list.b, list.n, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_true(got.dict_refs);
	assert_int_equal(got.nfields, 7);
	assert_slice(gf[0].key, S("request"));
	assert_int_equal(gf[0].type, EVENT_SLICE);
	assert_int_equal(event_field_string(&got, &gf[0], &s), 0);
	assert_slice(s, S("GET /x HTTP/1.1"));
	assert_slice(gf[1].key, S("method"));
	assert_int_equal(event_field_string(&got, &gf[1], &s), 0);
	assert_slice(s, S("GET"));
	assert_slice(gf[2].key, S("status"));
	assert_int_equal(gf[2].type, EVENT_INTEGER);
	assert_int_equal(gf[2].v.integer, -200);
	assert_slice(gf[3].key, S("path"));
	assert_int_equal(event_field_string(&got, &gf[3], &s), 0);
	assert_slice(s, S("/x"));
	assert_int_equal(gf[4].v.integer, INT64_MAX);
	assert_int_equal(gf[5].v.integer, INT64_MIN);
	assert_int_equal(gf[6].type, EVENT_SLICE);
	assert_int_equal(gf[6].v.slice.offset, 0);
	assert_int_equal(gf[6].v.slice.length, 0);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

/*
 * An event whose every field names its key by id alone carries the
 * identity of the Dict those ids were resolved through (key_dict): the
 * same for the events of one Dict, another after a Dict replaces it and
 * in another list with the same Dict's bytes, and none (0) for an event
 * with a literal key (alone, or beside an id) or with a key id 0.
 */
static void
test_events_named_by_ids_alone_carry_their_dicts_identity(void **state)
{
	struct pb list = { .n = 0 }, other = { .n = 0 }, d2 = { .n = 0 }, p = { .n = 0 };
	struct pb lit = { .n = 0 }, both = { .n = 0 }, f = { .n = 0 }, zero = { .n = 0 };
	struct pb plain = { .n = 0 };
	struct event got;
	struct event_field gf[8];
	struct event_reader r;
	uint64_t first;

	(void)state;
	format3_dict(&list);
	packed_slice(&p, 1, 0, 15);
	packed_int(&p, 3, 200);
	packed_event(&list, &p);
	list_event(&list, 0, 2, 7, NULL);           /* format 2: a Field with a key id */
	/* A literal key beside a field by id. */
	pb_bytes(&f, 1, "lit", 3);
	pb_uint(&f, 3, 2);
	pb_sub(&lit, 6, &f);
	pb_sub(&plain, 6, &f);
	ev_int_field(&lit, 1, 1);
	pb_sub(&list, 1, &lit);
	/* One field with both: its literal key is its name. */
	f.n = 0;
	pb_uint(&f, 8, 1);
	pb_bytes(&f, 1, "own", 3);
	pb_uint(&f, 3, 2);
	pb_sub(&both, 6, &f);
	pb_sub(&list, 1, &both);
	/* Key id 0: no name at all. */
	f.n = 0;
	pb_uint(&f, 8, 0);
	pb_uint(&f, 3, 2);
	pb_sub(&zero, 6, &f);
	pb_sub(&list, 1, &zero);
	/* Another Dict, the same ids. */
	dict_key(&d2, 1, "other");
	dict_key(&d2, 3, "third");
	pb_sub(&list, 2, &d2);
	packed_event(&list, &p);
	event_reader_init(&r, list.b, list.n, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	first = got.key_dict;
	assert_true(first != 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("method"));
	assert_true(got.key_dict == first);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("lit"));
	assert_true(got.key_dict == 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("own"));
	assert_true(got.key_dict == 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_int_equal(gf[0].key.len, 0);
	assert_true(got.key_dict == 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("other"));
	assert_true(got.key_dict != 0 && got.key_dict != first);
	assert_int_equal(event_reader_next(&r, &got), 0);
	/* The first Dict's bytes again, in another list. */
	format3_dict(&other);
	packed_event(&other, &p);
	event_reader_init(&r, other.b, other.n, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(gf[0].key, S("request"));
	assert_true(got.key_dict != 0 && got.key_dict != first);
	/* Format 1: every key literal. */
	other.n = 0;
	pb_sub(&other, 1, &plain);
	event_reader_init(&r, other.b, other.n, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_true(got.key_dict == 0);
}

/*
 * An event whose host, stream and source all come from its origin carries
 * that Dict's serial and the origin's id (origin_dict, origin_id): the
 * same for the events of one Dict and origin, another serial after a Dict
 * replaces it, and none (0) for an event with its own host, stream or
 * source, or without an origin.
 */
static void
test_events_whose_origin_alone_gives_their_host_carry_its_identity(void **state)
{
	struct pb list = { .n = 0 }, d1 = { .n = 0 }, d2 = { .n = 0 }, own = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	uint64_t first;

	(void)state;
	dict_origin(&d1, 1, "h", "s", "src");
	dict_origin(&d1, 2, "h2", "s", "src");
	dict_origin(&d2, 1, "other", "s", "src");
	pb_sub(&list, 2, &d1);
	list_event(&list, 1, 0, 0, NULL);
	list_event(&list, 1, 0, 0, NULL);
	list_event(&list, 2, 0, 0, NULL);
	list_event(&list, 1, 0, 0, "own");      /* its own host */
	pb_uint(&own, 7, 1);
	pb_str(&own, 4, "own.source");
	pb_sub(&list, 1, &own);
	list_event(&list, 0, 0, 0, "plain");
	pb_sub(&list, 2, &d2);
	list_event(&list, 1, 0, 0, NULL);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	first = got.origin_dict;
	assert_true(first != 0);
	assert_int_equal(got.origin_id, 1);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_true(got.origin_dict == first);
	assert_int_equal(got.origin_id, 1);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("h2"));
	assert_true(got.origin_dict == first);
	assert_int_equal(got.origin_id, 2);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("own"));
	assert_true(got.origin_dict == 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.source, S("own.source"));
	assert_true(got.origin_dict == 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("plain"));
	assert_true(got.origin_dict == 0);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_slice(got.host, S("other"));
	assert_true(got.origin_dict != 0 && got.origin_dict != first);
	assert_int_equal(got.origin_id, 1);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

/*
 * Reads a list of two events whose packed entries have varints of 1 to 10
 * bytes (ids past 127, long lengths and deltas, a padded id, INT64_MIN)
 * and a key id its Dict lacks in the second; *bad is 0 when both read as
 * they were written. On a thread of its own, the first list read there.
 */
static void *
read_packed_varints(void *arg)
{
	struct pb list = { .n = 0 }, dict = { .n = 0 }, p = { .n = 0 }, q = { .n = 0 };
	struct event got;
	struct event_field gf[8];
	struct event_reader r;
	int *bad = arg;

	dict_key(&dict, 1, "request");
	dict_key(&dict, 200, "two_byte_id");
	dict_key(&dict, 4095, "last_id");
	pb_sub(&list, 2, &dict);
	packed_slice(&p, 200, 300, 20000);        /* [300, 20300): 2- and 3-byte varints */
	packed_slice(&p, 4095, -20000, 2097152);  /* [300, ...): a 3-byte delta, a 4-byte length */
	packed_int(&p, 1, INT64_MIN);             /* a 10-byte varint */
	/* Key id 1 padded to 5 bytes, a slice of 2^28 at 0. */
	memcpy(p.b + p.n, "\x81\x80\x80\x80\x00", 5);
	p.n += 5;
	pb_varint(&p, zz(-(int64_t)(300 + 2097152)) << 2);
	pb_varint(&p, UINT64_C(1) << 28);
	packed_event(&list, &p);
	packed_slice(&q, 200, 0, 1);
	packed_slice(&q, 7, 0, 1);                /* not in the Dict */
	packed_event(&list, &q);
	event_reader_init(&r, list.b, list.n, gf, 8);
	*bad = 1;
	if (event_reader_next(&r, &got) != 1 || got.nfields != 4 || !got.dict_refs ||
	    gf[0].key.len != 11 || memcmp(gf[0].key.ptr, "two_byte_id", 11) != 0 ||
	    gf[0].key_id != 200 || gf[0].v.slice.offset != 300 || gf[0].v.slice.length != 20000 ||
	    gf[1].key.len != 7 || memcmp(gf[1].key.ptr, "last_id", 7) != 0 ||
	    gf[1].v.slice.offset != 300 || gf[1].v.slice.length != 2097152 ||
	    gf[2].type != EVENT_INTEGER || gf[2].v.integer != INT64_MIN ||
	    gf[2].key.len != 7 || memcmp(gf[2].key.ptr, "request", 7) != 0 ||
	    gf[3].key_id != 1 || gf[3].key.len != 7 || gf[3].type != EVENT_SLICE ||
	    gf[3].v.slice.offset != 0 || gf[3].v.slice.length != UINT32_C(1) << 28)
		return NULL;
	*bad = 2;
	if (event_reader_next(&r, &got) != -EPROTO || r.why == NULL ||
	    strcmp(r.why, "key id the Dict does not define") != 0)
		return NULL;
	*bad = 3;
	if (event_reader_next(&r, &got) != 0)
		return NULL;
	*bad = 0;
	return NULL;
}

/*
 * Packed varints of every length read as written, keys resolved through
 * the Dict, a key id it lacks refused: on a new thread (its tables made
 * by the first event) and again on one whose tables hold another Dict.
 */
static void
test_format3_packed_varints_of_every_length_resolve_on_any_thread(void **state)
{
	pthread_t t;
	int bad = -1;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, read_packed_varints, &bad), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(bad, 0);
	bad = -1;
	read_packed_varints(&bad);
	assert_int_equal(bad, 0);
	bad = -1;
	read_packed_varints(&bad);
	assert_int_equal(bad, 0);
}

/*
 * Entries of three 1-byte varints (the common case: ids, deltas and
 * lengths under 128) at the edges of one byte, mixed with longer ones, and
 * the last one ending the value exactly, read as written; a value that
 * ends inside an entry (2 bytes, or a third byte that goes on) is refused.
 */
static void
test_format3_one_byte_entries_read_as_written_up_to_the_values_end(void **state)
{
	static const uint8_t cut[][3] = { { 0x01, 0x00 }, { 0x01, 0x00, 0x80 }, { 0x01, 0x80, 0x00 } };
	struct pb list = { .n = 0 }, dict = { .n = 0 }, p = { .n = 0 };
	struct event got;
	struct event_field gf[8];
	struct event_reader r;

	(void)state;
	dict_key(&dict, 1, "request");
	dict_key(&dict, 2, "method");
	dict_key(&dict, 3, "status");
	dict_key(&dict, 4, "path");
	dict_key(&dict, 127, "k127");
	pb_sub(&list, 2, &dict);
	packed_slice(&p, 1, 0, 127);       /* 01 00 7f: [0, 127) */
	packed_slice(&p, 127, -16, 1);     /* 7f 7c 01: [111, 112) */
	packed_int(&p, 3, 63);             /* 03 01 7e */
	packed_slice(&p, 4, 0, 128);       /* a 2-byte length: [112, 240) */
	packed_slice(&p, 2, -240, 1);      /* a 2-byte head: [0, 1) */
	packed_slice(&p, 1, 5, 2);         /* 01 28 02, the value's last bytes: [6, 8) */
	packed_event(&list, &p);
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		struct pb q = { .n = 0 };

		packed_slice(&q, 1, 0, 1);
		memcpy(q.b + q.n, cut[i], i == 0 ? 2 : 3);
		q.n += i == 0 ? 2 : 3;
		packed_event(&list, &q);
	}
	event_reader_init(&r, list.b, list.n, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_int_equal(got.nfields, 6);
	assert_slice(gf[0].key, S("request"));
	assert_int_equal(gf[0].v.slice.offset, 0);
	assert_int_equal(gf[0].v.slice.length, 127);
	assert_slice(gf[1].key, S("k127"));
	assert_int_equal(gf[1].key_id, 127);
	assert_int_equal(gf[1].v.slice.offset, 111);
	assert_int_equal(gf[1].v.slice.length, 1);
	assert_int_equal(gf[2].type, EVENT_INTEGER);
	assert_int_equal(gf[2].v.integer, 63);
	assert_slice(gf[3].key, S("path"));
	assert_int_equal(gf[3].v.slice.offset, 112);
	assert_int_equal(gf[3].v.slice.length, 128);
	assert_slice(gf[4].key, S("method"));
	assert_int_equal(gf[4].v.slice.offset, 0);
	assert_int_equal(gf[4].v.slice.length, 1);
	assert_slice(gf[5].key, S("request"));
	assert_int_equal(gf[5].v.slice.offset, 6);
	assert_int_equal(gf[5].v.slice.length, 2);
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
		assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_int_equal(event_reader_next(&r, &got), 0);
}

static void
test_format3_packed_entries_and_field_messages_read_in_byte_order(void **state)
{
	struct pb list = { .n = 0 }, p1 = { .n = 0 }, p2 = { .n = 0 }, ev = { .n = 0 };
	struct event got;
	struct event_field gf[8];
	struct event_reader r;
	struct pbslice s;

	(void)state;
	format3_dict(&list);
	packed_slice(&p1, 2, 0, 3);
	/* Each packed_fields value starts its deltas from 0. */
	packed_slice(&p2, 4, 4, 2);
	pb_str(&ev, 5, "GET /x HTTP/1.1");
	pb_sub(&ev, 8, &p1);
	ev_int_field(&ev, 3, 404);
	pb_sub(&ev, 8, &p2);
	pb_sub(&list, 1, &ev);
	event_reader_init(&r, list.b, list.n, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_int_equal(got.nfields, 3);
	assert_slice(gf[0].key, S("method"));
	assert_int_equal(event_field_string(&got, &gf[0], &s), 0);
	assert_slice(s, S("GET"));
	assert_slice(gf[1].key, S("status"));
	assert_int_equal(gf[1].v.integer, 404);
	assert_slice(gf[2].key, S("path"));
	assert_int_equal(event_field_string(&got, &gf[2], &s), 0);
	assert_slice(s, S("/x"));
	assert_int_equal(event_reader_next(&r, &got), 0);
}

/* One event whose packed_fields is p; returns event_reader_next's result and *why. */
static int
read_packed(const struct pb *p, size_t max_fields, const char **why)
{
	struct pb list = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	int rc;

	format3_dict(&list);
	packed_event(&list, p);
	event_reader_init(&r, list.b, list.n, gf, max_fields);
	rc = event_reader_next(&r, &got);
	*why = r.why;
	/* The list's framing is sound: the reader is past the bad event. */
	assert_int_equal(event_reader_next(&r, &got), 0);
	return rc;
}

static void
test_format3_bad_packed_entries_are_malformed_events(void **state)
{
	static const struct {
		const uint8_t b[24];
		size_t n;
		const char *why;
	} bad[] = {
		/* key id 0 */
		{ { 0, 0, 1 }, 3, "packed field with key id 0" },
		/* key id 5, which the Dict lacks; 4096, beyond any */
		{ { 5, 0, 1 }, 3, "key id the Dict does not define" },
		{ { 0x80, 0x20, 0, 1 }, 4, "key id outside 1..4095" },
		/* kinds 2 and 3 are reserved */
		{ { 1, 2, 1 }, 3, "packed field of a reserved kind" },
		{ { 1, 3, 1 }, 3, "packed field of a reserved kind" },
		/* an integer's head has no delta */
		{ { 3, 5, 2 }, 3, "packed integer with a nonzero head" },
		/* the first slice 1 byte before the message: offset -1 */
		{ { 1, 1 << 2 | 0, 1 }, 3, "packed slice offset outside 0..4 GiB" },
		/* an offset of 2^32 */
		{ { 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0 }, 8,
		    "packed slice offset outside 0..4 GiB" },
		/* a length of 2^32 */
		{ { 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10 }, 7, "packed slice length above 4 GiB" },
		/* truncated: after the key id, after the head, after an integer's head */
		{ { 1 }, 1, "truncated varint" },
		{ { 1, 0 }, 2, "truncated varint" },
		{ { 3, 1 }, 2, "truncated varint" },
		{ { 1, 0, 0x80 }, 3, "truncated varint" },
	};
	struct pb p;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(p.b, bad[i].b, bad[i].n);
		p.n = bad[i].n;
		assert_int_equal(read_packed(&p, 4, &why), -EPROTO);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}
	/* More entries than the reader's array. */
	p.n = 0;
	for (int i = 0; i < 5; i++)
		packed_int(&p, 3, i);
	assert_int_equal(read_packed(&p, 4, &why), -E2BIG);
	assert_string_equal(why, "too many fields in one event");
	/* Within 4 GiB but beyond the message: refused where it is resolved, as a Slice. */
	{
		struct pb list = { .n = 0 };
		struct event got;
		struct event_field gf[4];
		struct event_reader r;
		struct pbslice s;

		p.n = 0;
		packed_slice(&p, 1, 10, 6);
		format3_dict(&list);
		packed_event(&list, &p);
		event_reader_init(&r, list.b, list.n, gf, 4);
		assert_int_equal(event_reader_next(&r, &got), 1);
		assert_int_equal(event_field_string(&got, &gf[0], &s), -EPROTO);
	}
}

static void
test_format3_packed_event_needs_the_wire_type_of_bytes(void **state)
{
	struct pb list = { .n = 0 }, ev = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;

	(void)state;
	format3_dict(&list);
	pb_uint(&ev, 8, 1);
	pb_sub(&list, 1, &ev);
	event_reader_init(&r, list.b, list.n, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), -EPROTO);
	assert_string_equal(r.why, "wrong wire type");
}

/* A value of f's type, which is not a slice nor an integer. */
static void
set_other_value(struct event_field *f)
{
	if (f->type == EVENT_TEXT || f->type == EVENT_JSON)
		f->v.text = S("[1]");
	else if (f->type == EVENT_NUMBER)
		f->v.number = 0.5;
	else if (f->type == EVENT_BOOLEAN)
		f->v.boolean = true;
}

/* An NGINX-like event: overlapping slices and integers, every key by id. */
static void
nginx_like(struct event *ev, struct event_field *f, uint16_t *ids)
{
	static const struct { uint32_t off, len; } sl[] = { { 0, 11 }, { 47, 14 }, { 47, 3 },
		{ 51, 1 }, { 77, 8 } };

	memset(ev, 0, sizeof(*ev));
	memset(f, 0, 8 * sizeof(*f));
	ev->ts = UINT64_C(1795341600123456000);
	ev->host = S("web-01");
	ev->message = S(line);
	for (int i = 0; i < 5; i++) {
		f[i].key = S("s");
		f[i].type = EVENT_SLICE;
		f[i].v.slice.offset = sl[i].off;
		f[i].v.slice.length = sl[i].len;
		ids[i] = (uint16_t)(10 + i);
	}
	f[5].type = f[6].type = f[7].type = EVENT_INTEGER;
	f[5].v.integer = 200;
	f[6].v.integer = -1;
	f[7].v.integer = INT64_MIN;
	ids[5] = 127;
	ids[6] = 128;
	ids[7] = 4095;
	ev->fields = f;
	ev->nfields = 8;
}

static void
test_format3_encoder_packs_slices_and_integers_by_id(void **state)
{
	static struct pbslice keys[EVENT_MAX_KEY_ID + 1], origins[EVENT_MAX_ORIGIN_ID + 1][3];
	uint64_t key_used[64] = { 0 }, origin_used[16] = { 0 };
	struct event ev, got;
	struct event_field f[8], gf[8];
	uint16_t ids[8];
	struct event_reader r;
	struct buf b, f2;
	const uint8_t *pk;

	(void)state;
	nginx_like(&ev, f, ids);
	for (int i = 0; i < 8; i++) {
		keys[ids[i]] = S("k");
		key_used[ids[i] / 64] |= UINT64_C(1) << (ids[i] % 64);
	}
	buf_init(&b, 1 << 20);
	buf_init(&f2, 1 << 20);
	assert_int_equal(event_encode_dict(keys, key_used, origins, origin_used, &b), 0);
	assert_int_equal(event_encode_packed(&ev, ids, 0, &b), 0);
	assert_int_equal(event_encode_ids(&ev, ids, 0, &f2), 0);
	/*
	 * Event.packed_fields (8, bytes) last: request [47, 61) after
	 * remote_addr [0, 11), delta 36 (a 2-byte head); method [47, 50), -14.
	 */
	{
		static const uint8_t want[] = { 10, 0, 11, 11, 0xa0, 0x02, 14, 12, 27 << 2, 3,
			13, 2 << 2, 1, 14, 0xc8, 0x01, 8, 127, 1, 0x90, 0x03, 0x80, 0x01, 1, 1,
			0xff, 0x1f, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };

		pk = b.data + b.len - sizeof(want) - 2;
		assert_int_equal(pk[0], 8 << 3 | 2);
		assert_int_equal(pk[1], sizeof(want));
		assert_memory_equal(pk + 2, want, sizeof(want));
	}
	assert_true(b.len - (size_t)(pk - b.data) < f2.len);
	event_reader_init(&r, b.data, b.len, gf, 8);
	assert_int_equal(event_reader_next(&r, &got), 1);
	for (int i = 0; i < 8; i++)
		f[i].key = keys[ids[i]];
	assert_same_event(&got, &ev);
	assert_int_equal(event_reader_next(&r, &got), 0);
	buf_free(&b);
	buf_free(&f2);
}

static void
test_format3_encoder_writes_field_messages_unless_every_field_packs(void **state)
{
	struct event ev;
	struct event_field f[8];
	uint16_t ids[8];
	struct buf b, f2;
	static const enum event_value_type other[] = { EVENT_TEXT, EVENT_JSON, EVENT_NUMBER,
		EVENT_BOOLEAN, EVENT_NULL };

	(void)state;
	buf_init(&b, 1 << 20);
	buf_init(&f2, 1 << 20);
	for (size_t i = 0; i <= sizeof(other) / sizeof(other[0]); i++) {
		nginx_like(&ev, f, ids);
		if (i < sizeof(other) / sizeof(other[0])) {
			f[3].type = other[i];
			set_other_value(&f[3]);
		} else {
			ids[3] = 0;          /* a key by name */
		}
		buf_reset(&b);
		buf_reset(&f2);
		assert_int_equal(event_encode_packed(&ev, ids, 0, &b), 0);
		assert_int_equal(event_encode_ids(&ev, ids, 0, &f2), 0);
		assert_int_equal(b.len, f2.len);
		assert_memory_equal(b.data, f2.data, b.len);
	}
	/* Errors are event_encode's: an unknown type, the cap. */
	nginx_like(&ev, f, ids);
	f[0].type = (enum event_value_type)99;
	assert_int_equal(event_encode_packed(&ev, ids, 0, &b), -EINVAL);
	buf_free(&b);
	buf_free(&f2);
}

static void
test_format3_encoder_respects_the_cap_and_keeps_out_on_error(void **state)
{
	struct event ev;
	struct event_field f[8];
	uint16_t ids[8];
	struct buf big, b;
	size_t need;

	(void)state;
	nginx_like(&ev, f, ids);
	buf_init(&big, 1 << 20);
	assert_int_equal(event_encode_packed(&ev, ids, 0, &big), 0);
	need = big.len;
	/* Exactly the event's size is enough; a byte less is -EMSGSIZE, out unchanged. */
	buf_init(&b, need);
	assert_int_equal(event_encode_packed(&ev, ids, 0, &b), 0);
	assert_memory_equal(b.data, big.data, need);
	buf_free(&b);
	buf_init(&b, need - 1);
	assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(event_encode_packed(&ev, ids, 0, &b), -EMSGSIZE);
	assert_int_equal(b.len, 1);
	buf_free(&b);
	buf_free(&big);
}

/*
 * Format 3's lengths at each varint width: the event's (its message
 * across 127 and 16383 bytes) and Event.packed_fields' (1 to 64 integer
 * entries of 3 bytes, across 127), the origin by id or the host literal,
 * written in the fewest bytes whether the buffer has room to spare
 * (allocated or not yet) or exactly the event's bytes, and one byte less
 * refused with the buffer unchanged.
 */
static void
test_format3_lengths_are_minimal_varints_at_every_boundary(void **state)
{
	static const size_t lens[] = { 0, 1, 60, 61, 62, 63, 64, 65, 66, 120, 125, 126, 127, 128,
		16300, 16310, 16320, 16330, 16340, 16350, 16360, 16370, 16380, 16383, 16384, 16390 };
	static const size_t counts[] = { 1, 2, 42, 43, 64 };
	static uint8_t big[16390], want_b[32768];
	struct ref want = { want_b, 0 };
	struct event ev = { .host = S("h") };
	struct event_field f[64];
	uint16_t ids[64];

	(void)state;
	memset(big, 'x', sizeof(big));
	ev.fields = f;
	for (int i = 0; i < 64; i++) {
		f[i] = (struct event_field){ .key = S("k"), .type = EVENT_INTEGER, .v.integer = i % 50 };
		ids[i] = (uint16_t)(i + 1);
	}
	for (size_t mi = 0; mi < sizeof(lens) / sizeof(lens[0]); mi++) {
		for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
			for (unsigned origin = 0; origin < 2; origin++) {
				uint8_t body_b[16600], pk_b[256];
				struct ref body = { body_b, 0 }, pk = { pk_b, 0 };

				ev.message = (struct pbslice){ big, lens[mi] };
				ev.nfields = counts[ci];
				if (origin) {
					body.b[body.n++] = 7 << 3;
					ref_varint(&body, 3);
				} else {
					ref_bytes(&body, 2, ev.host.ptr, ev.host.len);
				}
				if (ev.message.len)
					ref_bytes(&body, 5, ev.message.ptr, ev.message.len);
				for (size_t i = 0; i < ev.nfields; i++) {
					ref_varint(&pk, ids[i]);
					ref_varint(&pk, 1);
					ref_varint(&pk, (uint64_t)(i % 50) * 2);
				}
				ref_bytes(&body, 8, pk.b, pk.n);
				want.n = 0;
				ref_bytes(&want, 1, body.b, body.n);
				assert_encodes_in_every_room(event_encode_packed, &ev, ids, origin ? 3 : 0,
				    &want);
			}
		}
	}
}

/*
 * Format 3's entries at each varint width of their parts: key ids across
 * 127, slice heads (deltas either way) and lengths across 127 and 16383,
 * integers across 63, 8191 and 2^20 either side of 0, each entry written
 * in the fewest bytes, as the reference writer writes it.
 */
static void
test_format3_entries_are_minimal_varints_at_every_width(void **state)
{
	static const unsigned ids_at[] = { 1, 2, 126, 127, 128, 129, 300, 4095 };
	static const uint32_t lens[] = { 0, 1, 127, 128, 129, 8000, 16383, 16384, 16385 };
	static const int64_t ints[] = { 0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, -8193,
		1048575, -1048576, 1048576, -1048577, 268435455, INT64_MAX, INT64_MIN };
	/* The first from 0, the start of an event's deltas. */
	static const int64_t deltas[] = { 3000, 0, 1, -1, 15, -16, 16, -17, 2047, -2048, 2048,
		-2049 };
	static uint8_t big[40000], body_b[41000], want_b[41100];
	struct event ev = { .host = S("h"), .message = { big, sizeof(big) } };
	struct event_field f[EVENT_PACK_MAX_FIELDS];
	uint16_t ids[EVENT_PACK_MAX_FIELDS];

	(void)state;
	ev.fields = f;
	for (size_t ii = 0; ii < sizeof(ids_at) / sizeof(ids_at[0]); ii++) {
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			uint8_t pk_b[1024];
			struct ref body = { body_b, 0 }, pk = { pk_b, 0 }, want = { want_b, 0 };
			int64_t end = 0;
			size_t n = 0;

			/* Slices of the length at every delta from the one before, then every integer. */
			for (size_t di = 0; di < sizeof(deltas) / sizeof(deltas[0]); di++, n++) {
				int64_t off = end + deltas[di], d = deltas[di];

				f[n] = (struct event_field){ .key = S("k"), .type = EVENT_SLICE,
				    .v.slice = { (uint32_t)off, lens[li] } };
				ids[n] = (uint16_t)ids_at[ii];
				ref_varint(&pk, ids_at[ii]);
				ref_varint(&pk, (((uint64_t)d << 1) ^ (uint64_t)(d >> 63)) << 2);
				ref_varint(&pk, lens[li]);
				end = off + lens[li];
			}
			for (size_t vi = 0; vi < sizeof(ints) / sizeof(ints[0]); vi++, n++) {
				f[n] = (struct event_field){ .key = S("k"), .type = EVENT_INTEGER,
				    .v.integer = ints[vi] };
				ids[n] = (uint16_t)ids_at[ii];
				ref_varint(&pk, ids_at[ii]);
				ref_varint(&pk, 1);
				ref_varint(&pk, ((uint64_t)ints[vi] << 1) ^ (uint64_t)(ints[vi] >> 63));
			}
			ev.nfields = n;
			ref_bytes(&body, 2, ev.host.ptr, ev.host.len);
			ref_bytes(&body, 5, ev.message.ptr, ev.message.len);
			ref_bytes(&body, 8, pk.b, pk.n);
			ref_bytes(&want, 1, body.b, body.n);
			assert_encodes_in_every_room(event_encode_packed, &ev, ids, 0, &want);
		}
	}
}

static void
test_format3_list_converts_to_format1(void **state)
{
	struct pb list = { .n = 0 }, p = { .n = 0 };
	struct event got;
	struct event_field gf[4];
	struct event_reader r;
	struct buf out;
	struct pbslice s;

	(void)state;
	format3_dict(&list);
	packed_slice(&p, 2, 0, 3);
	packed_int(&p, 3, 200);
	packed_event(&list, &p);
	buf_init(&out, 1 << 20);
	assert_int_equal(event_list_format1(list.b, list.n, &out), 0);
	assert_null(memchr(out.data, 8 << 3 | 2, out.len));
	event_reader_init(&r, out.data, out.len, gf, 4);
	assert_int_equal(event_reader_next(&r, &got), 1);
	assert_false(got.dict_refs);
	assert_int_equal(got.nfields, 2);
	assert_slice(gf[0].key, S("method"));
	assert_int_equal(event_field_string(&got, &gf[0], &s), 0);
	assert_slice(s, S("GET"));
	assert_slice(gf[1].key, S("status"));
	assert_int_equal(gf[1].v.integer, 200);
	assert_int_equal(event_reader_next(&r, &got), 0);
	buf_free(&out);
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
		cmocka_unit_test(test_encoded_lengths_are_minimal_varints_at_every_boundary),
		cmocka_unit_test(test_slice_fields_by_id_are_encoded_as_the_proto_says),
		cmocka_unit_test(test_format2_names_and_origin_resolve_through_the_dict),
		cmocka_unit_test(test_format2_bad_or_undefined_ids_are_malformed_events),
		cmocka_unit_test(test_format2_malformed_dict_fails_only_the_events_that_use_it),
		cmocka_unit_test(test_format2_a_later_dict_replaces_the_tables),
		cmocka_unit_test(test_format2_event_fields_override_the_origins),
		cmocka_unit_test(test_format2_concatenated_segments_each_read_with_their_dict),
		cmocka_unit_test(test_format2_readers_interleaved_on_one_thread_keep_their_own_dict),
		cmocka_unit_test(test_format2_reading_resumes_at_an_offset_with_the_saved_dict),
		cmocka_unit_test(test_format2_event_encodes_again_self_contained),
		cmocka_unit_test(test_format2_encoded_event_reads_back_through_its_dict),
		cmocka_unit_test(test_dict_lists_used_ids_on_word_edges_in_order_and_never_id_0),
		cmocka_unit_test(test_format2_list_converts_to_format1_event_by_event),
		cmocka_unit_test(test_format3_packed_fields_read_every_kind_with_negative_deltas),
		cmocka_unit_test(test_format3_packed_entries_and_field_messages_read_in_byte_order),
		cmocka_unit_test(test_format3_packed_varints_of_every_length_resolve_on_any_thread),
		cmocka_unit_test(test_format3_bad_packed_entries_are_malformed_events),
		cmocka_unit_test(test_format3_packed_event_needs_the_wire_type_of_bytes),
		cmocka_unit_test(test_format3_encoder_packs_slices_and_integers_by_id),
		cmocka_unit_test(test_format3_encoder_writes_field_messages_unless_every_field_packs),
		cmocka_unit_test(test_format3_encoder_respects_the_cap_and_keeps_out_on_error),
		cmocka_unit_test(test_format3_lengths_are_minimal_varints_at_every_boundary),
		cmocka_unit_test(test_format3_entries_are_minimal_varints_at_every_width),
		cmocka_unit_test(test_format3_list_converts_to_format1),
		cmocka_unit_test(test_events_named_by_ids_alone_carry_their_dicts_identity),
		cmocka_unit_test(test_events_whose_origin_alone_gives_their_host_carry_its_identity),
		cmocka_unit_test(test_format3_one_byte_entries_read_as_written_up_to_the_values_end),
		cmocka_unit_test(test_fields_of_every_shape_decode_as_protobuf_says),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
