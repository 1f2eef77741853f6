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

#include <cmocka.h>

#include "proto/event.h"
#include "proto/event_dict.h"

#define S(str) ((struct pbslice){ (const uint8_t *)(str), sizeof(str) - 1 })

static void
assert_slice(struct pbslice got, struct pbslice want)
{
	assert_int_equal(got.len, want.len);
	if (want.len)
		assert_memory_equal(got.ptr, want.ptr, want.len);
}

/* An event of host, with fields named names[0..n) holding i. */
static void
make_event(struct event *ev, struct event_field *f, const char *host, const char **names, size_t n)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts = 1;
	ev->host = (struct pbslice){ (const uint8_t *)host, strlen(host) };
	ev->stream = S("nginx.access");
	ev->source = S("/var/log/nginx/access.log");
	ev->message = S("GET / 200");
	for (size_t i = 0; i < n; i++) {
		f[i] = (struct event_field){ .type = EVENT_INTEGER, .v.integer = (int64_t)i };
		f[i].key = (struct pbslice){ (const uint8_t *)names[i], strlen(names[i]) };
	}
	ev->fields = f;
	ev->nfields = n;
}

/* The Dict of used, then list's events, read back one by one against want[]. */
static void
assert_reads_back(const struct event_dict *d, const struct event_dict_used *used,
    const struct buf *events, const struct event *want, size_t n)
{
	struct buf all;
	struct event got;
	struct event_field gf[16];
	struct event_reader r;

	buf_init(&all, 1 << 24);
	assert_int_equal(event_dict_write(d, used, &all), 0);
	assert_int_equal(buf_append(&all, events->data, events->len), 0);
	event_reader_init(&r, all.data, all.len, gf, 16);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(event_reader_next(&r, &got), 1);
		assert_slice(got.host, want[i].host);
		assert_slice(got.stream, want[i].stream);
		assert_slice(got.source, want[i].source);
		assert_int_equal(got.nfields, want[i].nfields);
		for (size_t j = 0; j < got.nfields; j++) {
			assert_slice(gf[j].key, want[i].fields[j].key);
			assert_int_equal(gf[j].v.integer, want[i].fields[j].v.integer);
		}
	}
	assert_int_equal(event_reader_next(&r, &got), 0);
	buf_free(&all);
}

static void
test_repeated_names_and_origin_are_written_once_and_read_back(void **state)
{
	const char *names[] = { "remote_addr", "status", "body_bytes_sent" };
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used used;
	struct event ev[2];
	struct event_field f[2][3];
	struct buf b, plain;
	char copy[3][32];
	const char *copies[3];

	(void)state;
	memset(&used, 0, sizeof(used));
	assert_non_null(d);
	buf_init(&b, 1 << 20);
	buf_init(&plain, 1 << 20);
	/* The second event's names are other copies of the same strings. */
	for (int i = 0; i < 3; i++) {
		snprintf(copy[i], sizeof(copy[i]), "%s", names[i]);
		copies[i] = copy[i];
	}
	make_event(&ev[0], f[0], "web-01", names, 3);
	make_event(&ev[1], f[1], "web-01", copies, 3);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(event_dict_encode(d, &ev[i], &used, &b), 0);
		assert_int_equal(event_encode(&ev[i], &plain), 0);
	}
	/* Names and origin are not in the events at all. */
	assert_null(memmem(b.data, b.len, "body_bytes_sent", 15));
	assert_null(memmem(b.data, b.len, "web-01", 6));
	assert_true(b.len + 2 * 50 < plain.len);
	assert_reads_back(d, &used, &b, ev, 2);
	buf_free(&b);
	buf_free(&plain);
	event_dict_free(d);
}

/*
 * Events whose names shift by one when a field is left out (NGINX's "-"),
 * in turn, keep each name's id, and a name's bytes rewritten in the same
 * place (a JSON source's reused line buffer) are a new name, whichever
 * position and event saw that pointer before.
 */
static void
test_shifted_and_rewritten_names_each_keep_their_own_id(void **state)
{
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used used;
	char line[3][24];
	/* line[0] at a position that last had it (0, 1, 4), or had it before the last (3). */
	const char *sets[6][3] = {
		{ line[0], "status", "agent" },
		{ line[0], "status", "agent" },
		{ "remote_addr", line[0], "status" },
		{ line[0], "status", "agent" },
		{ "remote_addr", line[0], "status" },
		{ line[1], line[2], "status" },
	};
	struct event ev[6];
	struct event_field f[6][3];
	char kept[6][3][16];
	const char *names[6][3];
	struct buf b;

	(void)state;
	memset(&used, 0, sizeof(used));
	assert_non_null(d);
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 6; i++) {
		/* line[] holds other bytes at each event, in the same places. */
		snprintf(line[0], sizeof(line[0]), "user_%d", i);
		snprintf(line[1], sizeof(line[1]), "k%d", i % 2);
		snprintf(line[2], sizeof(line[2]), "user_%d", i + 1);
		for (int j = 0; j < 3; j++) {
			snprintf(kept[i][j], sizeof(kept[i][j]), "%.15s", sets[i][j]);
			names[i][j] = kept[i][j];
		}
		make_event(&ev[i], f[i], "web-01", sets[i], 3);
		assert_int_equal(event_dict_encode(d, &ev[i], &used, &b), 0);
		/* What the events must read back as: the bytes when encoded. */
		make_event(&ev[i], f[i], "web-01", names[i], 3);
	}
	assert_reads_back(d, &used, &b, ev, 6);
	buf_free(&b);
	event_dict_free(d);
}

/*
 * An origin whose bytes are rewritten in place (a file's path freed and
 * another allocated at its address) is a new origin, whichever byte
 * changed, for host, stream and source of every length up to 40 bytes.
 */
static void
test_an_origin_rewritten_at_the_same_address_is_a_new_origin(void **state)
{
	static const char *names[] = { "status" };
	char text[48], kept[2][48];

	(void)state;
	for (size_t len = 1; len <= 40; len++) {
		struct event_dict *d = event_dict_new(1 << 16);

		assert_non_null(d);
		for (size_t pos = 0; pos < len; pos++) {
			for (int which = 0; which < 3; which++) {
				struct event_dict_used used;
				struct event ev[2], want[2];
				struct event_field f[2][1], wf[2][1];
				struct pbslice *o[2];
				struct buf b;

				memset(&used, 0, sizeof(used));
				buf_init(&b, 1 << 16);
				memset(text, 'a', sizeof(text));
				for (int i = 0; i < 2; i++) {
					if (i == 1)
						text[pos] = 'b';
					memcpy(kept[i], text, len);
					make_event(&ev[i], f[i], "web-01", names, 1);
					make_event(&want[i], wf[i], "web-01", names, 1);
					o[0] = which == 0 ? &ev[i].host : which == 1 ? &ev[i].stream :
					    &ev[i].source;
					o[1] = which == 0 ? &want[i].host : which == 1 ? &want[i].stream :
					    &want[i].source;
					*o[0] = (struct pbslice){ (const uint8_t *)text, len };
					*o[1] = (struct pbslice){ (const uint8_t *)kept[i], len };
					assert_int_equal(event_dict_encode(d, &ev[i], &used, &b), 0);
				}
				assert_reads_back(d, &used, &b, want, 2);
				buf_free(&b);
			}
		}
		event_dict_free(d);
	}
}

static void
test_dict_holds_only_the_entries_used(void **state)
{
	const char *a[] = { "alpha" }, *z[] = { "zulu" };
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used first, second;
	struct event ev[2];
	struct event_field f[2][1];
	struct buf b1, b2, dict;

	(void)state;
	memset(&first, 0, sizeof(first));
	memset(&second, 0, sizeof(second));
	buf_init(&b1, 1 << 20);
	buf_init(&b2, 1 << 20);
	buf_init(&dict, 1 << 20);
	make_event(&ev[0], f[0], "host-a", a, 1);
	make_event(&ev[1], f[1], "host-z", z, 1);
	assert_int_equal(event_dict_encode(d, &ev[0], &first, &b1), 0);
	assert_int_equal(event_dict_encode(d, &ev[1], &second, &b2), 0);
	assert_int_equal(event_dict_write(d, &second, &dict), 0);
	assert_null(memmem(dict.data, dict.len, "alpha", 5));
	assert_null(memmem(dict.data, dict.len, "host-a", 6));
	assert_non_null(memmem(dict.data, dict.len, "zulu", 4));
	assert_reads_back(d, &second, &b2, &ev[1], 1);
	/* Used sets add up, as a segment's blocks do. */
	event_dict_used_add(&first, &second);
	assert_int_equal(buf_append(&b1, b2.data, b2.len), 0);
	assert_reads_back(d, &first, &b1, ev, 2);
	buf_free(&b1);
	buf_free(&b2);
	buf_free(&dict);
	event_dict_free(d);
}

static void
test_a_full_table_writes_names_literally_and_still_reads_back(void **state)
{
	enum { N = 300 };
	/* Room for a few names only. */
	struct event_dict *d = event_dict_new(64);
	struct event_dict_used used;
	static char names[N][16];
	static const char *np[N];
	static struct event ev[N];
	static struct event_field f[N][1];
	struct buf b;

	(void)state;
	memset(&used, 0, sizeof(used));
	buf_init(&b, 1 << 24);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "field_%d", i % 1000);
		np[i] = names[i];
		make_event(&ev[i], f[i], i % 2 ? "odd-host" : "even-host", &np[i], 1);
		assert_int_equal(event_dict_encode(d, &ev[i], &used, &b), 0);
	}
	assert_non_null(memmem(b.data, b.len, "field_299", 9));
	assert_reads_back(d, &used, &b, ev, N);
	buf_free(&b);
	event_dict_free(d);
}

static void
test_more_than_4095_names_and_1023_origins_fall_back_to_literals(void **state)
{
	enum { N = 5000 };
	struct event_dict *d = event_dict_new(1 << 20);
	struct event_dict_used used;
	static char names[N][16], hosts[N][16];
	static const char *np[N];
	static struct event ev[N];
	static struct event_field f[N][1];
	struct buf b;

	(void)state;
	memset(&used, 0, sizeof(used));
	buf_init(&b, 1 << 24);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "k%d", i);
		snprintf(hosts[i], sizeof(hosts[i]), "h%d", i);
		np[i] = names[i];
		make_event(&ev[i], f[i], hosts[i], &np[i], 1);
		assert_int_equal(event_dict_encode(d, &ev[i], &used, &b), 0);
	}
	assert_reads_back(d, &used, &b, ev, N);
	buf_free(&b);
	event_dict_free(d);
}

/* An NGINX event's kinds of fields: slices of the message and integers. */
static void
make_nginx_event(struct event *ev, struct event_field *f)
{
	static const char *names[] = { "remote_addr", "request", "request_method", "status",
		"body_bytes_sent" };

	make_event(ev, f, "web-01", names, 5);
	ev->message = S("10.0.0.1 GET / HTTP/1.1 200 612");
	f[0].type = EVENT_SLICE;
	f[0].v.slice.offset = 0;
	f[0].v.slice.length = 8;
	f[1].type = EVENT_SLICE;
	f[1].v.slice.offset = 9;
	f[1].v.slice.length = 14;
	f[2].type = EVENT_SLICE;
	f[2].v.slice.offset = 9;
	f[2].v.slice.length = 3;
	f[3].v.integer = 200;
	f[4].v.integer = 612;
}

/* ev encoded by a table of format (2 or 3), after its Dict, read back into *got. */
static void
encode_in_format(const struct event *ev, int format, struct buf *events, struct buf *all,
    struct event *got, struct event_field *gf)
{
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used used;
	struct event_reader r;

	memset(&used, 0, sizeof(used));
	assert_non_null(d);
	event_dict_set_format(d, format);
	buf_reset(events);
	buf_reset(all);
	assert_int_equal(event_dict_encode(d, ev, &used, events), 0);
	assert_int_equal(event_dict_write(d, &used, all), 0);
	assert_int_equal(buf_append(all, events->data, events->len), 0);
	event_reader_init(&r, all->data, all->len, gf, 16);
	assert_int_equal(event_reader_next(&r, got), 1);
	assert_int_equal(event_reader_next(&r, got + 1), 0);
	event_dict_free(d);
}

static void
test_format3_packs_an_nginx_event_and_it_reads_back(void **state)
{
	struct event ev, got[2];
	struct event_field f[5], gf2[16], gf3[16];
	struct buf e2, e3, all;

	(void)state;
	buf_init(&e2, 1 << 20);
	buf_init(&e3, 1 << 20);
	buf_init(&all, 1 << 20);
	make_nginx_event(&ev, f);
	encode_in_format(&ev, EVENT_FORMAT_2, &e2, &all, &got[0], gf2);
	encode_in_format(&ev, EVENT_FORMAT_3, &e3, &all, &got[0], gf3);
	/*
	 * Event.packed_fields (8, bytes), 17 bytes of 5 entries, instead of
	 * the 42 bytes of 5 Field messages.
	 */
	assert_non_null(memmem(e3.data, e3.len, "\x42\x11", 2));
	assert_int_equal(e3.len + 42 - 19, e2.len);
	assert_int_equal(got[0].nfields, 5);
	for (int i = 0; i < 5; i++) {
		assert_slice(gf3[i].key, f[i].key);
		assert_int_equal(gf3[i].type, f[i].type);
	}
	assert_int_equal(gf3[2].v.slice.offset, 9);
	assert_int_equal(gf3[2].v.slice.length, 3);
	assert_int_equal(gf3[4].v.integer, 612);
	buf_free(&e2);
	buf_free(&e3);
	buf_free(&all);
}

static void
test_format3_event_with_text_json_bool_or_double_is_not_packed(void **state)
{
	static const enum event_value_type other[] = { EVENT_TEXT, EVENT_JSON, EVENT_BOOLEAN,
		EVENT_NUMBER, EVENT_NULL };
	struct event ev, got[2];
	struct event_field f[5], gf[16];
	struct buf e2, e3, all;

	(void)state;
	buf_init(&e2, 1 << 20);
	buf_init(&e3, 1 << 20);
	buf_init(&all, 1 << 20);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		make_nginx_event(&ev, f);
		f[4].type = other[i];
		if (other[i] == EVENT_TEXT || other[i] == EVENT_JSON)
			f[4].v.text = S("[1]");
		else if (other[i] == EVENT_NUMBER)
			f[4].v.number = 0.5;
		else if (other[i] == EVENT_BOOLEAN)
			f[4].v.boolean = true;
		encode_in_format(&ev, EVENT_FORMAT_2, &e2, &all, &got[0], gf);
		encode_in_format(&ev, EVENT_FORMAT_3, &e3, &all, &got[0], gf);
		/* Written as format 2 writes it, byte for byte. */
		assert_int_equal(e3.len, e2.len);
		assert_memory_equal(e3.data, e2.data, e2.len);
		assert_int_equal(gf[4].type, other[i]);
	}
	buf_free(&e2);
	buf_free(&e3);
	buf_free(&all);
}

/*
 * A parser's key table and one identity per list of keys it makes (as
 * nginx_parse.c's): the lists below leave keys out and add one that is
 * new to the table mid-stream.
 */
static const struct pbslice set_keys[] = { S("remote_addr"), S("remote_user"), S("request"),
	S("status"), S("body_bytes_sent"), S("http_referer"), S("late_key") };
static const char set_ids[5];
static const unsigned set_lists[][8] = {
	/* the key indexes of each list, ending with 99 */
	{ 0, 2, 3, 4, 99 },
	{ 0, 1, 2, 3, 4, 5, 99 },
	{ 0, 2, 3, 4, 5, 99 },
	{ 0, 6, 2, 3, 4, 99 },
	{ 99 },
};

/* Event i of a stream whose lists go in turn, every list's identity given when by_set. */
static void
make_set_event(struct event *ev, struct event_field *f, unsigned list, unsigned i, bool by_set)
{
	size_t n = 0;

	memset(ev, 0, sizeof(*ev));
	ev->ts = 1000 + i;
	ev->host = S("web-01");
	ev->stream = S("nginx.access");
	ev->source = S("/var/log/nginx/access.log");
	ev->message = S("10.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl\"");
	for (const unsigned *k = set_lists[list]; *k != 99; k++, n++) {
		memset(&f[n], 0, sizeof(f[n]));
		f[n].key = set_keys[*k];
		if (*k == 3 || *k == 4) {
			f[n].type = EVENT_INTEGER;
			f[n].v.integer = (int64_t)(i * 7 + n);
		} else {
			f[n].type = EVENT_SLICE;
			f[n].v.slice.offset = (uint32_t)(n * 3 + i % 5);
			f[n].v.slice.length = (uint32_t)(n + 1);
		}
	}
	ev->fields = f;
	ev->nfields = n;
	ev->static_keys = true;
	ev->key_set = by_set ? &set_ids[list] : NULL;
}

/* Two tables of one arena size and format: one given a shortcut, one not. */
struct twin {
	struct event_dict *fast, *slow;
	struct event_dict_used uf, us;
	struct buf bf, bs;
};

static void
twin_init(struct twin *t, size_t arena, int format)
{
	t->fast = event_dict_new(arena);
	t->slow = event_dict_new(arena);
	assert_non_null(t->fast);
	assert_non_null(t->slow);
	event_dict_set_format(t->fast, format);
	event_dict_set_format(t->slow, format);
	memset(&t->uf, 0, sizeof(t->uf));
	memset(&t->us, 0, sizeof(t->us));
	buf_init(&t->bf, 1 << 20);
	buf_init(&t->bs, 1 << 20);
}

/*
 * Event i, fast into the first table and slow into the second: the same
 * bytes, the same ids marked. A block of its own every other event: the
 * bits are the event's.
 */
static void
twin_encode(struct twin *t, unsigned i, const struct event *fast, const struct event *slow)
{
	if (i % 2 == 0) {
		memset(&t->uf, 0, sizeof(t->uf));
		memset(&t->us, 0, sizeof(t->us));
	}
	assert_int_equal(event_dict_encode(t->fast, fast, &t->uf, &t->bf), 0);
	assert_int_equal(event_dict_encode(t->slow, slow, &t->us, &t->bs), 0);
	assert_int_equal(t->bf.len, t->bs.len);
	assert_memory_equal(t->bf.data, t->bs.data, t->bs.len);
	assert_memory_equal(&t->uf, &t->us, sizeof(t->uf));
}

static void
twin_free(struct twin *t)
{
	buf_free(&t->bf);
	buf_free(&t->bs);
	event_dict_free(t->fast);
	event_dict_free(t->slow);
}

/*
 * Two tables, one given each event's key set and one not (its keys looked
 * up one by one), write the same bytes and mark the same ids used, in
 * formats 2 and 3: with lists changing from event to event, a key new to
 * the table appearing mid-stream, an event without fields, and a table too
 * small for every name (some written literally).
 */
static void
test_events_with_a_key_set_encode_as_events_without_one(void **state)
{
	static const unsigned order[] = { 0, 0, 1, 2, 0, 1, 1, 3, 0, 3, 4, 2, 1, 0, 3, 3 };
	static const size_t arenas[] = { 4096, 40, 0 };
	static const int formats[] = { EVENT_FORMAT_2, EVENT_FORMAT_3 };

	(void)state;
	for (size_t a = 0; a < sizeof(arenas) / sizeof(arenas[0]); a++) {
		for (size_t fm = 0; fm < 2; fm++) {
			struct twin t;

			twin_init(&t, arenas[a], formats[fm]);
			for (unsigned round = 0; round < 3; round++) {
				for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
					struct event ev, plain;
					struct event_field f[8], pf[8];

					make_set_event(&ev, f, order[i], round * 100 + i, true);
					make_set_event(&plain, pf, order[i], round * 100 + i, false);
					twin_encode(&t, i, &ev, &plain);
				}
			}
			/* The small tables did write names literally. */
			if (arenas[a] < 100)
				assert_non_null(memmem(t.bf.data, t.bf.len, "late_key", 8));
			twin_free(&t);
		}
	}
}

/*
 * An origin_gen stands for the bytes: a second event with the same one is
 * given the first one's origin without its bytes being read (its caller
 * promises they did not change), and a new number at the same address is
 * looked up by its bytes.
 */
static void
test_an_origin_gen_seen_before_is_that_origin_without_its_bytes_compared(void **state)
{
	static const char *names[] = { "status" };
	struct event_dict *d = event_dict_new(1 << 16);
	struct event_dict_used used;
	struct event ev[3], want[3];
	struct event_field f[3][1], wf[3][1];
	char path[] = "/var/log/a.log";
	uint64_t gen = event_origin_gen(), gen2 = event_origin_gen();
	struct buf b;

	(void)state;
	assert_non_null(d);
	assert_true(gen != 0 && gen2 != 0 && gen2 != gen);
	memset(&used, 0, sizeof(used));
	buf_init(&b, 1 << 16);
	for (int i = 0; i < 3; i++) {
		make_event(&ev[i], f[i], "web-01", names, 1);
		make_event(&want[i], wf[i], "web-01", names, 1);
		ev[i].source = (struct pbslice){ (const uint8_t *)path, sizeof(path) - 1 };
		ev[i].origin_gen = i < 2 ? gen : gen2;
		/* Event 1 keeps event 0's number, so it is event 0's origin: a.log. */
		want[i].source = i < 2 ? S("/var/log/a.log") : S("/var/log/b.log");
		if (i == 1)
			path[9] = 'b';
		assert_int_equal(event_dict_encode(d, &ev[i], &used, &b), 0);
	}
	assert_reads_back(d, &used, &b, want, 3);
	buf_free(&b);
	event_dict_free(d);
}

/*
 * Two tables, one given the events' origin_gen and one not (every origin
 * found by its bytes), write the same bytes and mark the same ids used:
 * with origins changing from event to event, a path rewritten at the same
 * address under a new number, events with and without a number, and a
 * table too small for every origin (some written literally).
 */
static void
test_events_with_an_origin_gen_encode_as_events_without_one(void **state)
{
	static const char *names[] = { "status" };
	static const size_t arenas[] = { 1 << 16, 60, 0 };
	static const int formats[] = { EVENT_FORMAT_2, EVENT_FORMAT_3 };
	static const unsigned order[] = { 0, 0, 1, 0, 2, 2, 1, 3, 3, 0, 4, 1, 3 };

	(void)state;
	for (size_t a = 0; a < sizeof(arenas) / sizeof(arenas[0]); a++) {
		for (size_t fm = 0; fm < 2; fm++) {
			char path[2][32];
			uint64_t gens[3] = { event_origin_gen(), event_origin_gen(), event_origin_gen() };
			struct twin t;

			twin_init(&t, arenas[a], formats[fm]);
			snprintf(path[0], sizeof(path[0]), "/var/log/nginx/access.log");
			snprintf(path[1], sizeof(path[1]), "/var/log/nginx/error.log");
			for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
				struct event ev, plain;
				struct event_field f[1];
				unsigned o = order[i];

				if (o == 2) {
					/* Renamed in place: the same address, other bytes, a new number. */
					snprintf(path[0], sizeof(path[0]), "/var/log/nginx/access.1");
					gens[0] = event_origin_gen();
					o = 0;
				}
				make_event(&ev, f, o == 3 ? "web-02" : "web-01", names, 1);
				ev.source = (struct pbslice){ (const uint8_t *)path[o % 2],
				    strlen(path[o % 2]) };
				plain = ev;
				/* Event 4 has no number; web-02's events have their own. */
				ev.origin_gen = o == 4 ? 0 : o == 3 ? gens[2] : gens[o % 2];
				twin_encode(&t, i, &ev, &plain);
			}
			twin_free(&t);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeated_names_and_origin_are_written_once_and_read_back),
		cmocka_unit_test(test_dict_holds_only_the_entries_used),
		cmocka_unit_test(test_an_origin_rewritten_at_the_same_address_is_a_new_origin),
		cmocka_unit_test(test_shifted_and_rewritten_names_each_keep_their_own_id),
		cmocka_unit_test(test_a_full_table_writes_names_literally_and_still_reads_back),
		cmocka_unit_test(test_more_than_4095_names_and_1023_origins_fall_back_to_literals),
		cmocka_unit_test(test_format3_packs_an_nginx_event_and_it_reads_back),
		cmocka_unit_test(test_format3_event_with_text_json_bool_or_double_is_not_packed),
		cmocka_unit_test(test_events_with_a_key_set_encode_as_events_without_one),
		cmocka_unit_test(test_an_origin_gen_seen_before_is_that_origin_without_its_bytes_compared),
		cmocka_unit_test(test_events_with_an_origin_gen_encode_as_events_without_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
