/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/spool: commits, positions, recovery, limits. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>
#include <lmdb.h>
#include <zstd.h>

#include "agent/spool.h"
#include "tests/unit/alloc_count.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "tests/unit/spool_fixture.h"

struct fixture {
	char root[64];
	char dir[96];
	uv_loop_t loop;
	struct spool *s;
	int writable_calls;
	int closed;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->root, "/tmp/test_spool.XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	snprintf(fx->dir, sizeof(fx->dir), "%s/spool", fx->root);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	assert_int_equal(uv_loop_close(&fx->loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void
on_writable(void *ctx)
{
	((struct fixture *)ctx)->writable_calls++;
}

static void
on_closed(void *ctx)
{
	((struct fixture *)ctx)->closed = 1;
}

static void
open_spool(struct fixture *fx, const struct spool_options *o)
{
	assert_int_equal(spool_open(&fx->loop, o, on_writable, fx, &fx->s), 0);
}

static void
close_spool(struct fixture *fx)
{
	fx->closed = 0;
	spool_close(fx->s, on_closed, fx);
	while (!fx->closed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	fx->s = NULL;
}

/* An event whose message is "line <n>" and whose ts is n. */
static int
append_line(struct fixture *fx, uint64_t n)
{
	char msg[64];
	struct event ev = { 0 };

	snprintf(msg, sizeof(msg), "line %08llu", (unsigned long long)n);
	ev.ts = n;
	ev.message.ptr = (const uint8_t *)msg;
	ev.message.len = strlen(msg);
	ev.stream.ptr = (const uint8_t *)"test";
	ev.stream.len = 4;
	return spool_append(fx->s, &ev, NULL);
}

/* Appends lines first..first+n-1, waiting for room when the spool says so. */
static void
append_lines(struct fixture *fx, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		int rc;

		while ((rc = append_line(fx, i)) == -EAGAIN)
			uv_run(&fx->loop, UV_RUN_ONCE);
		assert_int_equal(rc, 0);
	}
}

/* Reads every stored event back; checks messages are "line <first..>" in order. */
struct reader {
	uint64_t events, segments, next_line, first_seq, expect_seq;
	uint32_t max_seg_events;
	size_t max_seg_bytes;
	bool check_lines;
	struct buf raw;
};

static int
read_segment(void *ctx, const struct spool_segment *seg)
{
	struct reader *r = ctx;
	struct event_reader er;
	struct event_field fields[8];
	struct event ev;
	uint32_t n = 0;
	int rc;

	if (r->segments == 0)
		r->first_seq = seg->first_seq;
	else
		assert_int_equal(seg->first_seq, r->expect_seq);
	r->expect_seq = seg->first_seq + seg->events;
	assert_int_equal(spool_segment_decompress(seg, &r->raw), 0);
	event_reader_init(&er, r->raw.data, r->raw.len, fields, 8);
	while ((rc = event_reader_next(&er, &ev)) == 1) {
		if (r->check_lines) {
			char want[64];

			snprintf(want, sizeof(want), "line %08llu", (unsigned long long)r->next_line);
			assert_int_equal(ev.message.len, strlen(want));
			assert_memory_equal(ev.message.ptr, want, strlen(want));
			assert_int_equal(ev.ts, r->next_line);
			assert_true(ev.ts >= seg->ts_oldest && ev.ts <= seg->ts_newest);
		}
		/* spool_fixture_write_format's field, format 2's: the line's number. */
		if (ev.nfields > 0) {
			struct pbslice num;

			assert_int_equal(ev.nfields, 1);
			assert_int_equal(fields[0].key.len, 1);
			assert_memory_equal(fields[0].key.ptr, "n", 1);
			assert_int_equal(event_field_string(&ev, &fields[0], &num), 0);
			assert_int_equal(num.len, 8);
			assert_memory_equal(num.ptr, ev.message.ptr + 5, 8);
		}
		r->next_line++;
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, seg->events);
	if (seg->events > r->max_seg_events)
		r->max_seg_events = seg->events;
	if (seg->uncompressed > r->max_seg_bytes)
		r->max_seg_bytes = seg->uncompressed;
	r->events += n;
	r->segments++;
	return 0;
}

static void
read_all(const char *dir, uint64_t from, struct reader *r, uint64_t first_line)
{
	struct spool_view *v;
	const char *why;

	memset(r, 0, sizeof(*r));
	r->next_line = first_line;
	r->check_lines = true;
	buf_init(&r->raw, 64 << 20);
	assert_int_equal(spool_view_open(dir, &v), 0);
	assert_int_equal(spool_view_segments(v, from, read_segment, r, &why), 0);
	spool_view_close(v);
	buf_free(&r->raw);
}

static void
test_committed_events_are_read_back_in_order_after_reopen(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	append_lines(fx, 0, 20000);
	close_spool(fx);
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 20000);
	assert_int_equal(r.first_seq, 1);
	assert_true(r.max_seg_events <= o.segment_max_events);
}

static void
test_sequence_numbers_continue_after_reopen(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;
	struct spool_view *v;

	spool_options_default(&o, fx->dir);
	for (int round = 0; round < 3; round++) {
		open_spool(fx, &o);
		for (uint64_t i = 0; i < 100; i++)
			assert_int_equal(append_line(fx, round * 100 + i), 0);
		close_spool(fx);
	}
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 300);
	assert_int_equal(r.expect_seq, 301);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_next_seq(v), 301);
	spool_view_close(v);
}

static void
test_segments_respect_max_events_and_bytes(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;

	spool_options_default(&o, fx->dir);
	o.segment_max_events = 100;
	o.block_bytes = 512;
	o.segment_max_bytes = 1000;
	open_spool(fx, &o);
	append_lines(fx, 0, 1000);
	close_spool(fx);
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 1000);
	assert_true(r.max_seg_events <= 100);
	/* A segment may pass max_bytes by at most one block. */
	assert_true(r.max_seg_bytes <= 1000 + 512 + 64);
	assert_true(r.segments >= 30);
}

struct positions {
	int n;
	struct spool_file last;
	char path[256];
};

static int
collect_file(void *ctx, const struct spool_file *f)
{
	struct positions *p = ctx;

	p->n++;
	p->last = *f;
	snprintf(p->path, sizeof(p->path), "%s", f->path);
	p->last.path = p->path;
	return 0;
}

static void
test_positions_are_committed_with_their_events(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_file f = { .dev = 8, .ino = 1234, .fp_len = 1024, .fp_hash = 0xfeed,
	    .path = "/var/log/nginx/access.log" };
	struct spool_file got;
	char path[64];
	struct positions p = { 0 };
	struct spool_view *v;

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	for (uint64_t i = 0; i < 10; i++) {
		struct event ev = { .ts = i, .message = { (const uint8_t *)"x", 1 } };

		f.offset = (i + 1) * 14;
		assert_int_equal(spool_append(fx->s, &ev, &f), 0);
	}
	/* Another file, then the first again under a new name (renamed). */
	f.ino = 99;
	f.offset = 7;
	assert_int_equal(spool_set_position(fx->s, &f), 0);
	f.ino = 1234;
	f.offset = 200;
	f.path = "/var/log/nginx/access.log.1";
	assert_int_equal(spool_set_position(fx->s, &f), 0);
	close_spool(fx);

	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_files(v, collect_file, &p), 0);
	spool_view_close(v);
	assert_int_equal(p.n, 2);

	open_spool(fx, &o);
	assert_int_equal(spool_get_position(fx->s, 8, 1234, &got, path, sizeof(path)), 0);
	assert_int_equal(got.offset, 200);
	assert_int_equal(got.fp_len, 1024);
	assert_int_equal(got.fp_hash, 0xfeed);
	assert_string_equal(got.path, "/var/log/nginx/access.log.1");
	assert_int_equal(spool_get_position(fx->s, 8, 99, &got, path, sizeof(path)), 0);
	assert_int_equal(got.offset, 7);
	assert_int_equal(spool_get_position(fx->s, 8, 5, &got, path, sizeof(path)), -ENOENT);
	close_spool(fx);
}

/*
 * A position's path_len is taken as its path's length (a file source knows
 * it: no strlen per event); 0 means "count it". A stored position comes
 * back with its length.
 */
static void
test_a_position_with_its_path_length_stores_that_many_bytes_of_its_path(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_file f = { .dev = 8, .ino = 1, .offset = 2, .path = "/var/log/a.log.1",
	    .path_len = 14 };
	struct event ev = { .ts = 1, .message = { (const uint8_t *)"x", 1 } };
	struct spool_file got;
	char path[64];

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	assert_int_equal(spool_append(fx->s, &ev, &f), 0);
	f.ino = 2;
	f.path_len = 0;
	assert_int_equal(spool_append(fx->s, &ev, &f), 0);
	close_spool(fx);
	open_spool(fx, &o);
	assert_int_equal(spool_get_position(fx->s, 8, 1, &got, path, sizeof(path)), 0);
	assert_string_equal(got.path, "/var/log/a.log");
	assert_int_equal(got.path_len, 14);
	assert_int_equal(spool_get_position(fx->s, 8, 2, &got, path, sizeof(path)), 0);
	assert_string_equal(got.path, "/var/log/a.log.1");
	assert_int_equal(got.path_len, 16);
	close_spool(fx);
}

/*
 * Each event's record of the same file replaces the one before it in the
 * hand-off block: every part of the last one is what is committed, the
 * path of the same length and the fingerprint included, with values
 * using all 8 bytes.
 */
static void
test_last_record_of_a_file_is_committed_whole(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_file f = { .dev = UINT64_C(0x8877665544332211),
	    .ino = UINT64_C(0xf1e2d3c4b5a69788), .fp_len = 1024, .fp_hash = 0xfeed,
	    .path = "/var/log/a.log" };
	struct spool_file got;
	char path[64];
	struct event ev = { .ts = 1, .message = { (const uint8_t *)"x", 1 } };

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	f.offset = 14;
	assert_int_equal(spool_append(fx->s, &ev, &f), 0);
	f.offset = UINT64_C(0x0102030405060708);
	f.fp_len = 0xfffffffe;
	f.fp_hash = UINT64_C(0xdeadbeefcafef00d);
	f.path = "/var/log/b.log";
	assert_int_equal(spool_append(fx->s, &ev, &f), 0);
	close_spool(fx);

	open_spool(fx, &o);
	assert_int_equal(spool_get_position(fx->s, f.dev, f.ino, &got, path, sizeof(path)), 0);
	assert_true(got.offset == UINT64_C(0x0102030405060708));
	assert_int_equal(got.fp_len, 0xfffffffe);
	assert_true(got.fp_hash == UINT64_C(0xdeadbeefcafef00d));
	assert_string_equal(got.path, "/var/log/b.log");
	close_spool(fx);
}

struct cursors {
	int n;
	char name[64], cursor[256];
};

static int
collect_cursor(void *ctx, const char *name, const char *cursor)
{
	struct cursors *c = ctx;

	c->n++;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->cursor, sizeof(c->cursor), "%s", cursor);
	return 0;
}

static void
test_journal_cursor_is_committed_with_its_events_apart_from_file_positions(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_file f = { .dev = 8, .ino = 1234, .offset = 14, .path = "/var/log/a.log" };
	struct positions p = { 0 };
	struct cursors c = { 0 };
	struct spool_view *v;
	struct reader r;
	struct event ev10 = { .ts = 10 };
	char cursor[256];

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	assert_int_equal(spool_get_cursor(fx->s, "journal", cursor, sizeof(cursor)), -ENOENT);
	for (uint64_t i = 0; i < 10; i++) {
		struct event ev = { .ts = i };
		char msg[64], cur[64];

		snprintf(msg, sizeof(msg), "line %08llu", (unsigned long long)i);
		ev.message.ptr = (const uint8_t *)msg;
		ev.message.len = strlen(msg);
		/* Cursors of different lengths: each replaces the one before. */
		snprintf(cur, sizeof(cur), "s=abc;i=%llx", (unsigned long long)(i * 100));
		assert_int_equal(spool_append_cursor(fx->s, &ev, "journal", cur), 0);
	}
	/* A file's event and position beside them. */
	ev10.message.ptr = (const uint8_t *)"line 00000010";
	ev10.message.len = 13;
	assert_int_equal(spool_append(fx->s, &ev10, &f), 0);
	assert_int_equal(spool_set_cursor(fx->s, "other", "s=def;i=1"), 0);
	close_spool(fx);

	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 11);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	/* File sources never see a cursor as a file. */
	assert_int_equal(spool_view_files(v, collect_file, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(spool_view_cursors(v, collect_cursor, &c), 0);
	spool_view_close(v);
	assert_int_equal(c.n, 2);

	open_spool(fx, &o);
	assert_int_equal(spool_get_cursor(fx->s, "journal", cursor, sizeof(cursor)), 0);
	assert_string_equal(cursor, "s=abc;i=384");
	assert_int_equal(spool_get_cursor(fx->s, "other", cursor, sizeof(cursor)), 0);
	assert_string_equal(cursor, "s=def;i=1");
	/* Too small a buffer is an error, never a cut cursor. */
	assert_int_equal(spool_get_cursor(fx->s, "journal", cursor, 5), -ENAMETOOLONG);
	assert_int_equal(spool_get_cursor(fx->s, "journal.x", cursor, sizeof(cursor)), -ENOENT);
	close_spool(fx);
}

static void
cursor_child_committed(void *ctx, int status)
{
	int *fd = ctx;

	assert_int_equal(status, 0);
	assert_int_equal(write(*fd, "c", 1), 1);
}

/*
 * A writer killed with SIGKILL at any moment leaves a spool whose cursor
 * names exactly the last event it holds: events and cursor are committed
 * in one transaction, never one without the other.
 */
static void
test_journal_cursor_and_its_events_survive_kill_together(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;
	char cursor[64], want[64], c;
	int pfd[2], status;
	pid_t pid;

	spool_options_default(&o, fx->dir);
	o.commit_interval_ms = 2;
	assert_int_equal(pipe(pfd), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		close(pfd[0]);
		open_spool(fx, &o);
		for (uint64_t i = 0;; i++) {
			char msg[64], cur[64];
			struct event ev = { .ts = i };
			int rc;

			snprintf(msg, sizeof(msg), "line %08llu", (unsigned long long)i);
			snprintf(cur, sizeof(cur), "i=%llu", (unsigned long long)i);
			ev.message.ptr = (const uint8_t *)msg;
			ev.message.len = strlen(msg);
			while ((rc = spool_append_cursor(fx->s, &ev, "journal", cur)) == -EAGAIN)
				uv_run(&fx->loop, UV_RUN_ONCE);
			assert_int_equal(rc, 0);
			if (i % 500 == 0)
				assert_int_equal(spool_when_committed(fx->s, cursor_child_committed,
				    &pfd[1]), 0);
			uv_run(&fx->loop, UV_RUN_NOWAIT);
		}
	}
	close(pfd[1]);
	/* Killed in the middle of appending, after a few commits. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pfd[0]);

	read_all(fx->dir, 0, &r, 0);
	assert_true(r.events >= 2001);
	open_spool(fx, &o);
	assert_int_equal(spool_get_cursor(fx->s, "journal", cursor, sizeof(cursor)), 0);
	snprintf(want, sizeof(want), "i=%llu", (unsigned long long)(r.events - 1));
	assert_string_equal(cursor, want);
	close_spool(fx);
}

struct seglist {
	size_t n;
	uint64_t first[256];
	uint32_t events[256];
};

static int
list_segment(void *ctx, const struct spool_segment *seg)
{
	struct seglist *l = ctx;

	if (l->n < 256) {
		l->first[l->n] = seg->first_seq;
		l->events[l->n] = seg->events;
		l->n++;
	}
	return 0;
}

static void
list_segments(const char *dir, struct seglist *l)
{
	struct spool_view *v;
	const char *why;

	l->n = 0;
	assert_int_equal(spool_view_open(dir, &v), 0);
	assert_int_equal(spool_view_segments(v, 0, list_segment, l, &why), 0);
	spool_view_close(v);
}

static void
test_delete_removes_whole_segments_in_range(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;
	struct spool_stats st;
	struct seglist l;
	uint64_t gone;

	spool_options_default(&o, fx->dir);
	o.segment_max_events = 10;
	open_spool(fx, &o);
	for (uint64_t i = 0; i < 100; i++) {
		int rc;

		while ((rc = append_line(fx, i)) == -EAGAIN)
			uv_run(&fx->loop, UV_RUN_ONCE);
		assert_int_equal(rc, 0);
		/* Several blocks, so that there are several segments. */
		if (i % 7 == 6)
			spool_flush(fx->s);
	}
	spool_flush(fx->s);
	do {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		spool_get_stats(fx->s, &st);
	} while (st.events_committed < 100);
	assert_int_equal(st.events_stored, 100);
	list_segments(fx->dir, &l);
	assert_true(l.n >= 10);
	gone = l.events[0] + l.events[1] + l.events[2];
	/* The first three, by a range that ends inside the fourth's key space. */
	assert_int_equal(spool_delete(fx->s, l.first[0], l.first[3]), 0);
	do {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		spool_get_stats(fx->s, &st);
	} while (st.segments_deleted < 3);
	/* The backlog gauge follows the deletes, and starts from the disk at the next open. */
	assert_int_equal(st.events_deleted, gone);
	assert_int_equal(st.events_stored, 100 - gone);
	close_spool(fx);
	open_spool(fx, &o);
	spool_get_stats(fx->s, &st);
	assert_int_equal(st.events_stored, 100 - gone);
	close_spool(fx);
	read_all(fx->dir, 0, &r, gone);
	assert_int_equal(r.events, 100 - gone);
	assert_int_equal(r.first_seq, l.first[3]);
	/* Reading from the middle of a segment starts with that segment. */
	read_all(fx->dir, l.first[4] + 1, &r, l.first[4] - 1);
	assert_int_equal(r.first_seq, l.first[4]);
}

static void
test_full_spool_refuses_appends_until_deletes_free_room(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_stats st;
	unsigned seed = 7;
	uint64_t taken, range[2] = { 0, 0 };

	spool_options_default(&o, fx->dir);
	o.max_size = 4 << 20;
	o.block_bytes = 64 << 10;
	o.segment_max_bytes = 128 << 10;
	o.queue_blocks = 2;
	open_spool(fx, &o);
	/* Incompressible events until the spool stays full. */
	taken = spool_fixture_fill(fx->s, &fx->loop, &seed);
	spool_get_stats(fx->s, &st);
	assert_true(st.full);
	assert_true(st.disk_used <= o.max_size);
	assert_true(taken * 4000 > (2u << 20));
	assert_true(taken * 4000 < o.max_size + 4 * (64 << 10));
	assert_int_equal(spool_fixture_append_noise(fx->s, &seed), -EAGAIN);
	assert_false(spool_room(fx->s, 100, 1));

	/* What the shipper would do on Acks: delete everything committed. */
	spool_fixture_committed_range(fx->dir, range);
	fx->writable_calls = 0;
	assert_int_equal(spool_delete(fx->s, range[0], range[1]), 0);
	while (fx->writable_calls == 0)
		uv_run(&fx->loop, UV_RUN_ONCE);
	/* The writer hands blocks back one by one: each is a writable call. */
	while (!spool_room(fx->s, 64 << 10, 10))
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_false(spool_room(fx->s, 10 << 20, 10));
	assert_int_equal(spool_fixture_append_noise(fx->s, &seed), 0);
	close_spool(fx);
}

/*
 * A hand-off queue without room for a request (spool_room false, or every
 * block with the writer) is not a full spool: /health, the metric and the
 * HTTP source's 503 "the spool is full" must not say so while the spool
 * is empty.
 */
static void
test_busy_hand_off_queue_is_not_reported_full(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_stats st;

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	assert_false(spool_room(fx->s, (o.queue_blocks + 1) * o.block_bytes, 1));
	spool_get_stats(fx->s, &st);
	assert_false(st.full);
	assert_int_equal(st.events_stored, 0);
	/* The writable callback still follows the refusal. */
	fx->writable_calls = 0;
	append_lines(fx, 0, 1);
	spool_flush(fx->s);
	while (fx->writable_calls == 0)
		uv_run(&fx->loop, UV_RUN_ONCE);
	close_spool(fx);
}

/*
 * The drain after a full spool: acks arrive one batch at a time, each
 * deleting a segment or two in its own commit while the map is at its
 * limit. Every delete must be applied (not dropped on MDB_MAP_FULL), the
 * spool must empty and take events again, over several fill-drain rounds
 * (free pages scattered by earlier rounds).
 */
static void
test_full_spool_drains_by_small_deletes_and_fills_again(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_stats st;
	struct seglist l;
	unsigned seed = 11;

	spool_options_default(&o, fx->dir);
	o.max_size = 4 << 20;
	o.block_bytes = 64 << 10;
	o.segment_max_bytes = 128 << 10;
	o.queue_blocks = 2;
	open_spool(fx, &o);
	for (int round = 0; round < 4; round++) {
		uint64_t taken = spool_fixture_fill(fx->s, &fx->loop, &seed), deleted;

		spool_get_stats(fx->s, &st);
		assert_true(st.full);
		assert_true(taken * 4000 > (2u << 20));
		list_segments(fx->dir, &l);
		assert_true(l.n > 8);
		deleted = st.segments_deleted;
		/* One ack per segment, each applied before the next arrives. */
		for (size_t i = 0; i < l.n; i++) {
			int waits = 0;

			assert_int_equal(spool_delete(fx->s, l.first[i], l.first[i] + l.events[i]), 0);
			do {
				uv_run(&fx->loop, UV_RUN_NOWAIT);
				usleep(1000);
				spool_get_stats(fx->s, &st);
			} while (st.segments_deleted < deleted + i + 1 && ++waits < 10000);
			/* Applied within 10 s, not dropped or retried forever. */
			assert_true(st.segments_deleted >= deleted + i + 1);
			assert_int_equal(st.commit_errors, 0);
		}
		/* Segments sealed while the spool was full are committed now: they go too. */
		spool_get_stats(fx->s, &st);
		for (int waits = 0; st.events_stored != 0; waits++) {
			uint64_t range[2];

			assert_true(waits < 10000);
			spool_fixture_committed_range(fx->dir, range);
			assert_int_equal(spool_delete(fx->s, range[0], range[1]), 0);
			uv_run(&fx->loop, UV_RUN_NOWAIT);
			usleep(1000);
			spool_get_stats(fx->s, &st);
		}
		assert_int_equal(st.commit_errors, 0);
		while (spool_fixture_append_noise(fx->s, &seed) == -EAGAIN)
			uv_run(&fx->loop, UV_RUN_ONCE);
	}
	close_spool(fx);
}

static void
test_broken_spool_is_moved_aside_and_a_new_one_starts(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_stats st;
	struct spool_view *v;
	char path[160];
	uint8_t junk[16384];
	int fd, found = 0;
	DIR *d;
	struct dirent *e;

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	assert_int_equal(append_line(fx, 1), 0);
	close_spool(fx);
	/* Garbage over the meta pages. */
	memset(junk, 0xa5, sizeof(junk));
	snprintf(path, sizeof(path), "%s/data.mdb", fx->dir);
	assert_true((fd = open(path, O_WRONLY)) >= 0);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	close(fd);

	open_spool(fx, &o);
	spool_get_stats(fx->s, &st);
	assert_int_equal(st.moved_aside, 1);
	assert_int_equal(append_line(fx, 2), 0);
	close_spool(fx);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_moved_aside(v), 1);
	assert_int_equal(spool_view_next_seq(v), 2);
	spool_view_close(v);
	assert_non_null(d = opendir(fx->root));
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "spool.broken-", 13) == 0)
			found++;
	closedir(d);
	assert_int_equal(found, 1);
}

/* A spool of n incompressible events in fx->dir, closed; returns the bytes its pages use. */
static uint64_t
make_noise_spool(struct fixture *fx, const struct spool_options *o, int n)
{
	struct spool_view *v;
	unsigned seed = 5;
	uint64_t used, size;

	open_spool(fx, o);
	for (int i = 0; i < n; i++) {
		int rc;

		while ((rc = spool_fixture_append_noise(fx->s, &seed)) == -EAGAIN)
			uv_run(&fx->loop, UV_RUN_ONCE);
		assert_int_equal(rc, 0);
	}
	close_spool(fx);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_usage(v, &used, &size), 0);
	spool_view_close(v);
	return used;
}

/*
 * The root page of the segments table, found as LMDB finds it: the newer
 * meta page names the main table's root, a leaf whose "segments" node
 * holds that table's MDB_db (64-bit layout).
 */
static uint64_t
segments_root(const char *dir)
{
	char path[160];
	uint8_t meta[2][160], page[4096];
	uint64_t txn[2], main_root, root = 0;
	uint16_t lower;
	int fd, m;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	assert_int_equal(pread(fd, meta[0], 160, 0), 160);
	assert_int_equal(pread(fd, meta[1], 160, 4096), 160);
	memcpy(&txn[0], meta[0] + 144, 8);
	memcpy(&txn[1], meta[1] + 144, 8);
	m = txn[1] > txn[0];
	memcpy(&main_root, meta[m] + 128, 8);
	assert_int_equal(pread(fd, page, sizeof(page), (off_t)main_root * 4096), 4096);
	close(fd);
	memcpy(&lower, page + 12, 2);
	for (int i = 0; i < (lower - 16) / 2; i++) {
		uint16_t off, ksize;

		memcpy(&off, page + 16 + 2 * i, 2);
		memcpy(&ksize, page + off + 6, 2);
		if (ksize == 8 && memcmp(page + off + 8, "segments", 8) == 0)
			memcpy(&root, page + off + 8 + 8 + 40, 8);
	}
	assert_true(root > 1);
	return root;
}

/* Writes len random bytes at off in the spool's data file. */
static void
damage(const char *dir, off_t off, size_t len)
{
	char path[160];
	uint8_t junk[4096];
	unsigned seed = 3;
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_true((fd = open(path, O_WRONLY)) >= 0);
	for (size_t done = 0; done < len; done += sizeof(junk)) {
		size_t n = len - done < sizeof(junk) ? len - done : sizeof(junk);

		for (size_t i = 0; i < n; i++)
			junk[i] = (uint8_t)rand_r(&seed);
		assert_int_equal(pwrite(fd, junk, n, off + (off_t)done), (ssize_t)n);
	}
	close(fd);
}

/*
 * The view refuses a damaged spool without crashing (-EBADMSG), and the
 * spool is then moved aside and replaced, counted, and takes events.
 */
static void
expect_moved_aside(struct fixture *fx, const struct spool_options *o, uint64_t count)
{
	struct spool_view *v;
	struct spool_stats st;
	char why[256];
	int found = 0;
	DIR *d;
	struct dirent *e;

	assert_int_equal(spool_check(fx->dir, why, sizeof(why)), -EBADMSG);
	assert_int_equal(spool_view_open(fx->dir, &v), -EBADMSG);
	open_spool(fx, o);
	spool_get_stats(fx->s, &st);
	assert_int_equal(st.moved_aside, count);
	assert_int_equal(st.events_stored, 0);
	assert_int_equal(append_line(fx, 1), 0);
	close_spool(fx);
	assert_int_equal(spool_check(fx->dir, why, sizeof(why)), 0);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_moved_aside(v), count);
	spool_view_close(v);
	/* The count survives a restart. */
	open_spool(fx, o);
	spool_get_stats(fx->s, &st);
	assert_int_equal(st.moved_aside, count);
	close_spool(fx);
	assert_non_null(d = opendir(fx->root));
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "spool.broken-", 13) == 0)
			found++;
	closedir(d);
	assert_int_equal(found, count);
}

static void
test_truncated_spool_is_detected_before_mapping_and_moved_aside(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	char path[160];
	uint64_t used;

	spool_options_default(&o, fx->dir);
	used = make_noise_spool(fx, &o, 2000);
	assert_true(used > (4u << 20));
	/* Half of what its pages hold: reading the rest would be a SIGBUS. */
	snprintf(path, sizeof(path), "%s/data.mdb", fx->dir);
	assert_int_equal(truncate(path, (off_t)(used / 2)), 0);
	expect_moved_aside(fx, &o, 1);
}

static void
test_random_bytes_in_a_tree_page_are_detected_without_a_crash(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;

	spool_options_default(&o, fx->dir);
	make_noise_spool(fx, &o, 500);
	damage(fx->dir, (off_t)(segments_root(fx->dir) * 4096), 4096);
	expect_moved_aside(fx, &o, 1);
}

static void
test_broken_meta_page_is_detected_and_moved_aside(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;

	spool_options_default(&o, fx->dir);
	make_noise_spool(fx, &o, 100);
	/* The second meta page only: LMDB would refuse the file, not choose the first. */
	damage(fx->dir, 4096, 4096);
	expect_moved_aside(fx, &o, 1);
	/* Damaged again: the count goes on. */
	make_noise_spool(fx, &o, 10);
	damage(fx->dir, 0, 64);
	expect_moved_aside(fx, &o, 2);
}

/*
 * Changes byte `at` of segment `first`'s stored value (at < 0: its middle,
 * inside the zstd frame), through LMDB, in a process of its own.
 */
static void
change_segment_byte(const char *dir, uint64_t first, long at)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		uint8_t kb[8], *p;
		MDB_val k = { 8, kb }, v;

		for (int i = 0; i < 8; i++)
			kb[i] = (uint8_t)(first >> (56 - 8 * i));
		if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 4) != 0 ||
		    mdb_env_set_mapsize(env, 1ull << 30) != 0 ||
		    mdb_env_open(env, dir, 0, 0640) != 0 ||
		    mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
		    mdb_dbi_open(txn, "segments", 0, &dbi) != 0 ||
		    mdb_get(txn, dbi, &k, &v) != 0 || (p = malloc(v.mv_size)) == NULL)
			_exit(1);
		memcpy(p, v.mv_data, v.mv_size);
		p[at < 0 ? v.mv_size / 2 : (size_t)at] ^= 0xff;
		v.mv_data = p;
		if (mdb_put(txn, dbi, &k, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
			_exit(1);
		mdb_env_close(env);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Stores 10 segments, changes byte `at` of the second, and checks that the open deletes it alone. */
static void
change_is_deleted_alone_at_open(struct fixture *fx, long at)
{
	struct spool_options o;
	struct spool_stats st;
	struct seglist l;

	spool_options_default(&o, fx->dir);
	o.segment_max_events = 10;
	open_spool(fx, &o);
	for (uint64_t i = 0; i < 100; i += 10) {
		append_lines(fx, i, 10);
		spool_flush(fx->s);
	}
	close_spool(fx);
	list_segments(fx->dir, &l);
	assert_true(l.n >= 3);
	change_segment_byte(fx->dir, l.first[1], at);
	open_spool(fx, &o);
	spool_get_stats(fx->s, &st);
	assert_int_equal(st.moved_aside, 0);
	assert_int_equal(st.segments_damaged, 1);
	assert_int_equal(st.events_stored, 100 - l.events[1]);
	close_spool(fx);
	list_segments(fx->dir, &l);
	assert_int_equal(l.first[1], 21);
}

/* A wrong magic number in the second segment's header, through LMDB. */
static void
test_damaged_segment_is_deleted_alone(void **state)
{
	change_is_deleted_alone_at_open(*state, 0);
}

static void
test_event_larger_than_the_limit_is_refused(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	static uint8_t big[70000];
	struct event ev = { 0 };

	spool_options_default(&o, fx->dir);
	o.event_max_bytes = 65536;
	open_spool(fx, &o);
	ev.message.ptr = big;
	ev.message.len = sizeof(big);
	assert_int_equal(spool_append(fx->s, &ev, NULL), -EMSGSIZE);
	assert_int_equal(append_line(fx, 1), 0);
	/* Also behind other events in a block. */
	assert_int_equal(spool_append(fx->s, &ev, NULL), -EMSGSIZE);
	ev.message.len = 60000;
	assert_int_equal(spool_append(fx->s, &ev, NULL), 0);
	close_spool(fx);
}

static void
test_relaxed_sync_commits_the_same(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;

	spool_options_default(&o, fx->dir);
	o.sync_always = false;
	open_spool(fx, &o);
	append_lines(fx, 0, 5000);
	close_spool(fx);
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 5000);
}

static void
test_group_commit_happens_without_close(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct spool_stats st;
	struct reader r;

	spool_options_default(&o, fx->dir);
	o.commit_interval_ms = 20;
	open_spool(fx, &o);
	assert_int_equal(append_line(fx, 0), 0);
	assert_int_equal(append_line(fx, 1), 0);
	/* The loop turn hands the block over; the writer commits after 20 ms. */
	do {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(1000);
		spool_get_stats(fx->s, &st);
	} while (st.events_committed < 2);
	assert_int_equal(st.commits, 1);
	/* Readable by another reader while the spool is open. */
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 2);
	close_spool(fx);
}

struct waited {
	int calls;
	int status[4];
	uint64_t committed_then[4];
	struct spool *s;
};

static void
on_committed(void *ctx, int status)
{
	struct waited *w = ctx;
	struct spool_stats st;

	spool_get_stats(w->s, &st);
	w->committed_then[w->calls] = st.events_committed;
	w->status[w->calls++] = status;
}

static int
count_segment(void *ctx, const struct spool_segment *seg)
{
	*(uint64_t *)ctx += seg->events;
	return 0;
}

static void
test_when_committed_calls_back_after_the_commit_in_order(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct waited w = { 0 };
	uint64_t n = 0;
	const char *why;

	spool_options_default(&o, fx->dir);
	o.commit_interval_ms = 50;
	open_spool(fx, &o);
	w.s = fx->s;
	append_lines(fx, 0, 3);
	assert_int_equal(spool_when_committed(fx->s, on_committed, &w), 0);
	append_lines(fx, 3, 2);
	assert_int_equal(spool_when_committed(fx->s, on_committed, &w), 0);
	/* Never from inside the call. */
	assert_int_equal(w.calls, 0);
	while (w.calls < 2)
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_int_equal(w.status[0], 0);
	assert_true(w.committed_then[0] >= 3);
	assert_int_equal(w.status[1], 0);
	assert_true(w.committed_then[1] >= 5);
	/* The running spool reads what it committed. */
	assert_int_equal(spool_segments(fx->s, 0, count_segment, &n, &why), 0);
	assert_int_equal(n, 5);
	/* Nothing appended since: called back at once (on the next loop turn). */
	assert_int_equal(spool_when_committed(fx->s, on_committed, &w), 0);
	while (w.calls < 3)
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_int_equal(w.status[2], 0);
	close_spool(fx);
}

/*
 * Stores 3 segments of 10 lines, changes byte `at` of the second one
 * (change_segment_byte) while the spool runs, then checks that the read
 * skips it, counts it and has it deleted.
 */
static void
change_while_running_is_skipped_and_deleted(struct fixture *fx, long at)
{
	struct spool_options o;
	struct spool_stats st;
	struct seglist l;
	uint64_t n = 0;
	const char *why;

	spool_options_default(&o, fx->dir);
	o.segment_max_events = 10;
	open_spool(fx, &o);
	for (uint64_t i = 0; i < 30; i += 10) {
		append_lines(fx, i, 10);
		spool_flush(fx->s);
	}
	do {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		spool_get_stats(fx->s, &st);
	} while (st.events_committed < 30);
	list_segments(fx->dir, &l);
	assert_int_equal(l.n, 3);
	change_segment_byte(fx->dir, l.first[1], at);
	assert_int_equal(spool_segments(fx->s, 0, count_segment, &n, &why), 0);
	assert_int_equal(n, 20);
	spool_get_stats(fx->s, &st);
	assert_int_equal(st.segments_damaged, 1);
	do {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(1000);
		spool_get_stats(fx->s, &st);
	} while (st.segments_deleted < 1);
	close_spool(fx);
	list_segments(fx->dir, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.first[1], 21);
}

/*
 * A header damaged while the agent runs (the disk changed under it): the
 * shipper's read skips the segment, reports it and has it deleted, instead
 * of failing every read from then on.
 */
static void
test_segment_damaged_while_running_is_skipped_and_deleted(void **state)
{
	change_while_running_is_skipped_and_deleted(*state, 0);
}

/*
 * A byte changed inside a format-3 segment's zstd frame while the agent
 * runs: the shipper's read finds the frame's CRC-32C wrong, reports the
 * segment, skips and deletes it, as one with a damaged header.
 */
static void
test_segment_whose_frame_changed_while_running_is_skipped_and_deleted(void **state)
{
	change_while_running_is_skipped_and_deleted(*state, -1);
}

/* The same change found when the agent opens its spool: that segment alone goes. */
static void
test_segment_whose_frame_changed_is_deleted_alone_at_open(void **state)
{
	change_is_deleted_alone_at_open(*state, -1);
}

static void
test_view_of_a_missing_spool_is_enoent(void **state)
{
	struct fixture *fx = *state;
	struct spool_view *v;

	assert_int_equal(spool_view_open(fx->dir, &v), -ENOENT);
}

/* ------------------------------------------------------------ event formats */

struct formats {
	int n;
	uint8_t format[64];
	uint64_t first_seq[64];
};

static int
collect_format(void *ctx, const struct spool_segment *seg)
{
	struct formats *f = ctx;

	assert_true(f->n < 64);
	f->first_seq[f->n] = seg->first_seq;
	f->format[f->n++] = seg->event_format;
	return 0;
}

/*
 * A spool of an agent before format 3, of event format `format`, takes 50
 * more events after an upgrade: its segment reads as it was, the new ones
 * are format 3, and the meta record says 3.
 */
static void
assert_spool_upgraded_and_read(struct fixture *fx, int format)
{
	struct spool_options o;
	struct reader r;
	struct formats f = { 0 };
	struct spool_view *v;
	const char *why;

	spool_fixture_write_format(fx->dir, 50, format);
	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	append_lines(fx, 50, 50);
	close_spool(fx);
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 100);
	assert_int_equal(r.first_seq, 1);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_format(v), 3);
	assert_int_equal(spool_view_segments(v, 0, collect_format, &f, &why), 0);
	spool_view_close(v);
	assert_true(f.n >= 2);
	assert_int_equal(f.format[0], format);
	assert_int_equal(f.first_seq[1], 51);
	for (int i = 1; i < f.n; i++)
		assert_int_equal(f.format[i], EVENT_FORMAT_3);
}

static void
test_format1_spool_is_upgraded_at_open_and_its_segments_still_read(void **state)
{
	assert_spool_upgraded_and_read(*state, EVENT_FORMAT_1);
}

static void
test_format2_spool_is_upgraded_to_3_at_open_and_its_segments_still_read(void **state)
{
	assert_spool_upgraded_and_read(*state, EVENT_FORMAT_2);
}

/* Appends an event of host and stream with fields named names[0..n). */
static void
append_named(struct fixture *fx, uint64_t ts, const char *host, const char **names, size_t n)
{
	struct event_field f[8];
	struct event ev = { .ts = ts, .message = { (const uint8_t *)"msg", 3 } };
	int rc;

	ev.host = (struct pbslice){ (const uint8_t *)host, strlen(host) };
	ev.stream = (struct pbslice){ (const uint8_t *)"nginx.access", 12 };
	for (size_t i = 0; i < n; i++) {
		f[i] = (struct event_field){ .type = EVENT_INTEGER, .v.integer = (int64_t)(ts + i) };
		f[i].key = (struct pbslice){ (const uint8_t *)names[i], strlen(names[i]) };
	}
	ev.fields = f;
	ev.nfields = n;
	while ((rc = spool_append(fx->s, &ev, NULL)) == -EAGAIN)
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_int_equal(rc, 0);
}

/* Checks every stored event against what append_named wrote; counts them. */
struct named {
	uint64_t events;
	int segments, zulu_only;
	struct buf raw;
};

static int
check_named(void *ctx, const struct spool_segment *seg)
{
	struct named *nm = ctx;
	struct event_reader er;
	struct event_field fields[8];
	struct event ev;
	int rc;

	assert_int_equal(seg->event_format, EVENT_FORMAT_3);
	/* As the splitting shipper reads it: format 1, events first. */
	assert_int_equal(spool_segment_decompress(seg, &nm->raw), 0);
	assert_int_equal(nm->raw.data[0], 0x0a);
	assert_int_equal(spool_segment_stored(seg, &nm->raw), 0);
	/* As stored: the segment's Dict first (EventList.dicts, length-delimited). */
	assert_int_equal(nm->raw.data[0], 0x12);
	/* A segment of host-z's events only has their names, not host-a's. */
	if (seg->first_seq > 10) {
		assert_null(memmem(nm->raw.data, nm->raw.len, "alpha", 5));
		assert_null(memmem(nm->raw.data, nm->raw.len, "host-a", 6));
		assert_non_null(memmem(nm->raw.data, nm->raw.len, "zulu", 4));
		nm->zulu_only++;
	}
	event_reader_init(&er, nm->raw.data, nm->raw.len, fields, 8);
	while ((rc = event_reader_next(&er, &ev)) == 1) {
		assert_int_equal(ev.host.len, 6);
		assert_memory_equal(ev.host.ptr, ev.ts < 10 ? "host-a" : "host-z", 6);
		assert_int_equal(ev.stream.len, 12);
		assert_int_equal(ev.nfields, 2);
		for (size_t i = 0; i < ev.nfields; i++) {
			const char *want = ev.ts < 10 ? (i ? "alpha_2" : "alpha") :
			    (i ? "zulu_2" : "zulu");

			assert_int_equal(fields[i].key.len, strlen(want));
			assert_memory_equal(fields[i].key.ptr, want, strlen(want));
			assert_int_equal(fields[i].v.integer, (int64_t)(ev.ts + i));
		}
		nm->events++;
	}
	assert_int_equal(rc, 0);
	nm->segments++;
	return 0;
}

static void
read_named(const char *dir, struct named *nm)
{
	struct spool_view *v;
	const char *why;

	memset(nm, 0, sizeof(*nm));
	buf_init(&nm->raw, 64 << 20);
	assert_int_equal(spool_view_open(dir, &v), 0);
	assert_int_equal(spool_view_segments(v, 0, check_named, nm, &why), 0);
	spool_view_close(v);
	buf_free(&nm->raw);
}

static void
test_new_segments_are_format3_with_a_dict_of_only_the_entries_used(void **state)
{
	struct fixture *fx = *state;
	const char *a[] = { "alpha", "alpha_2" }, *z[] = { "zulu", "zulu_2" };
	struct spool_options o;
	struct named nm;

	spool_options_default(&o, fx->dir);
	o.segment_max_events = 10;
	o.block_bytes = 64;
	open_spool(fx, &o);
	for (uint64_t i = 0; i < 20; i++)
		append_named(fx, i, i < 10 ? "host-a" : "host-z", i < 10 ? a : z, 2);
	close_spool(fx);
	read_named(fx->dir, &nm);
	assert_int_equal(nm.events, 20);
	/* At most 10 events a segment: the last one is host-z's alone. */
	assert_true(nm.zulu_only >= 1);
}

static void
test_full_name_table_falls_back_to_literals_and_reads_back(void **state)
{
	struct fixture *fx = *state;
	struct spool_options o;
	struct reader r;

	spool_options_default(&o, fx->dir);
	/* Room for no name: every event's stream ("test") goes literally. */
	o.dict_bytes = 2;
	open_spool(fx, &o);
	append_lines(fx, 0, 3000);
	close_spool(fx);
	read_all(fx->dir, 0, &r, 0);
	assert_int_equal(r.events, 3000);
}

/* Stores lines 0..99 with the default options, then hands the stored segments to fn. */
static int
view_100_lines(struct fixture *fx, int (*fn)(void *, const struct spool_segment *), void *ctx)
{
	struct spool_options o;
	struct spool_view *v;
	const char *why = NULL;
	int r;

	spool_options_default(&o, fx->dir);
	open_spool(fx, &o);
	append_lines(fx, 0, 100);
	close_spool(fx);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	r = spool_view_segments(v, 0, fn, ctx, &why);
	spool_view_close(v);
	return r;
}

static int
decompress_without_memory_cb(void *ctx, const struct spool_segment *seg)
{
	struct buf out;
	int *rc = ctx;

	buf_init(&out, 64 << 20);
	alloc_fail(true);
	*rc = spool_segment_decompress(seg, &out);
	alloc_fail(false);
	buf_free(&out);
	return 1;
}

/* The shipper retries a segment it could not read for want of memory; damage it drops. */
static void
test_decompressing_without_memory_says_out_of_memory_not_damage(void **state)
{
	int rc = 1;

	assert_int_equal(view_100_lines(*state, decompress_without_memory_cb, &rc), 1);
	assert_int_equal(rc, -ENOMEM);
}

/* What changing each byte of a stored payload in turn gave. */
struct changed {
	size_t silent;     /* decompressed into other events */
	size_t accepted;   /* not refused as damaged (-EIO) */
};

/*
 * Changes each byte of the stored payload in turn: none may decompress
 * into other events. LMDB keeps no checksum of its pages, so the frame's
 * checksum (zstd's content checksum in formats 1 and 2, the CRC-32C frame in
 * format 3) is what refuses a segment changed on disk rather than ship
 * altered events.
 */
static int
changed_bytes_cb(void *ctx, const struct spool_segment *seg)
{
	struct spool_segment bad = *seg;
	struct buf orig, out;
	uint8_t *copy = malloc(seg->payload_len);
	struct changed *ch = ctx;

	assert_non_null(copy);
	buf_init(&orig, 64 << 20);
	buf_init(&out, 64 << 20);
	assert_int_equal(spool_segment_stored(seg, &orig), 0);
	memcpy(copy, seg->payload, seg->payload_len);
	bad.payload = copy;
	for (size_t i = 0; i < seg->payload_len; i++) {
		int r;

		copy[i] ^= 0x20;
		if ((r = spool_segment_stored(&bad, &out)) != -EIO)
			ch->accepted++;
		if (r == 0 && (out.len != orig.len || memcmp(out.data, orig.data, out.len) != 0))
			ch->silent++;
		copy[i] ^= 0x20;
	}
	buf_free(&orig);
	buf_free(&out);
	free(copy);
	return 0;
}

static void
test_a_byte_changed_in_a_stored_segment_never_decompresses_to_other_events(void **state)
{
	struct changed ch = { 0, 0 };

	assert_int_equal(view_100_lines(*state, changed_bytes_cb, &ch), 0);
	assert_int_equal(ch.silent, 0);
}

/* Format-2 segments, as agents before format 3 stored them, keep zstd's content checksum. */
static void
test_a_byte_changed_in_a_stored_format2_segment_never_decompresses_to_other_events(void **state)
{
	struct fixture *fx = *state;
	struct spool_view *v;
	const char *why = NULL;
	struct changed ch = { 0, 0 };

	spool_fixture_write_format(fx->dir, 100, 2);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	assert_int_equal(spool_view_segments(v, 0, changed_bytes_cb, &ch, &why), 0);
	spool_view_close(v);
	assert_int_equal(ch.silent, 0);
}

/* Format 3: every byte of the payload changed in turn is refused as damage. */
static void
test_every_byte_changed_in_a_stored_format3_segment_is_refused_as_damage(void **state)
{
	struct changed ch = { 0, 0 };

	assert_int_equal(view_100_lines(*state, changed_bytes_cb, &ch), 0);
	assert_int_equal(ch.accepted, 0);
}

/*
 * A format-3 payload: a zstd frame without content checksum (XXH64 of the
 * uncompressed bytes cost 7 % of the compression), then a skippable frame
 * (magic 0x184D2A50, size 4) holding the CRC-32C of the frame's bytes.
 */
static int
crc_frame_cb(void *ctx, const struct spool_segment *seg)
{
	const uint8_t *p = seg->payload;
	size_t n = ZSTD_findFrameCompressedSize(p, seg->payload_len);
	uint32_t crc;

	(void)ctx;
	assert_false(ZSTD_isError(n));
	/* The frame header descriptor's bit 2: Content_Checksum_flag. */
	assert_int_equal(p[4] & 0x04, 0);
	assert_int_equal(seg->payload_len, n + 12);
	assert_memory_equal(p + n, "\x50\x2a\x4d\x18\x04\x00\x00\x00", 8);
	crc = crc32c(p, n);
	assert_int_equal(p[n + 8] | p[n + 9] << 8 | p[n + 10] << 16 | (uint32_t)p[n + 11] << 24, crc);
	return 0;
}

static void
test_format3_segment_is_a_frame_without_content_checksum_then_its_crc32c_in_a_skippable_frame(void **state)
{
	assert_int_equal(view_100_lines(*state, crc_frame_cb, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_committed_events_are_read_back_in_order_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_numbers_continue_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segments_respect_max_events_and_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_positions_are_committed_with_their_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_position_with_its_path_length_stores_that_many_bytes_of_its_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_record_of_a_file_is_committed_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_cursor_is_committed_with_its_events_apart_from_file_positions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_cursor_and_its_events_survive_kill_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_removes_whole_segments_in_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_spool_refuses_appends_until_deletes_free_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_hand_off_queue_is_not_reported_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_spool_drains_by_small_deletes_and_fills_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_spool_is_moved_aside_and_a_new_one_starts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_spool_is_detected_before_mapping_and_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_bytes_in_a_tree_page_are_detected_without_a_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_meta_page_is_detected_and_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_segment_is_deleted_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_damaged_while_running_is_skipped_and_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_larger_than_the_limit_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relaxed_sync_commits_the_same, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_happens_without_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_when_committed_calls_back_after_the_commit_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_of_a_missing_spool_is_enoent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format1_spool_is_upgraded_at_open_and_its_segments_still_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format2_spool_is_upgraded_to_3_at_open_and_its_segments_still_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_segments_are_format3_with_a_dict_of_only_the_entries_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_name_table_falls_back_to_literals_and_reads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decompressing_without_memory_says_out_of_memory_not_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_byte_changed_in_a_stored_segment_never_decompresses_to_other_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_byte_changed_in_a_stored_format2_segment_never_decompresses_to_other_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_byte_changed_in_a_stored_format3_segment_is_refused_as_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format3_segment_is_a_frame_without_content_checksum_then_its_crc32c_in_a_skippable_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_whose_frame_changed_while_running_is_skipped_and_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_whose_frame_changed_is_deleted_alone_at_open, setup, teardown),
	};

	log_init("test_spool", LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
