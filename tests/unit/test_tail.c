/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tail: real files in a mkdtemp() directory, followed by a real uv loop.
 *
 * Every test runs the loop until what it waits for has happened or a
 * generous deadline has passed, so the tests assert what happens, never how
 * fast. Intervals are small (scan and stat 30 ms, flush_timeout 100 ms,
 * rotate_wait 200 ms) so that the waits are short when all goes well.
 *
 * Every line handed over is checked as it comes: its end_offset must follow
 * the previous line of its file (or be a restart at 0), and the lines of a
 * file, each with its "\n" (none after a split piece or a partial line),
 * must concatenate to the file's bytes from where tail started.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>
#include <zlib.h>
#include <zstd.h>

#include "agent/tail.h"
#include "common/log.h"
#include "tests/unit/log_capture.h"

#define DEADLINE_MS 10000
#define BIG_DEADLINE_MS 120000
#define MAX_RECS 512   /* files one test follows */
#define MAX_LINES 4096
#define LINE_COPY 256
#define MIB (1024 * 1024)

#define FNV_BASIS UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

/* What tail handed over of one file (by dev and inode). */
struct rec {
	uint64_t dev, ino;
	char path[PATH_MAX];        /* f->path at the last callback */
	struct tail_id id;          /* f->id at the last line */
	bool started;
	uint64_t base;              /* offset of the first byte handed over (since a restart) */
	uint64_t end;               /* end_offset of the last line */
	uint64_t hash, hashed;      /* FNV-1a and length of lines (+ "\n") since base */
	unsigned lines, splits, partials, restarts;
	bool released;
	unsigned after_release;     /* lines after the release: must stay 0 */
	char bad[256];              /* the first line that did not follow the one before */
};

struct line {
	size_t rec;
	char text[LINE_COPY];       /* the first bytes, NUL-terminated */
	size_t len;
	unsigned flags;
	uint64_t end;
	uint64_t at_ms;             /* uv_hrtime in ms when handed over */
	bool piece;                 /* f->piece was set: */
	struct tail_piece pc;       /* its copy */
	uint64_t path_gen;          /* f->path_gen */
	uint64_t read_ns;           /* f->read_ns */
};

struct h;
typedef int (*line_hook)(struct h *h, const struct tail_file_info *f, const uint8_t *p,
    size_t len, unsigned flags, uint64_t end);

struct h {
	uv_loop_t loop;
	bool loop_closed;
	uv_timer_t timer;
	bool timer_fired;
	char dir[64];
	char pathv[4][PATH_MAX];
	const char *paths[4];
	char exclv[4][PATH_MAX];
	const char *excl[4];
	struct tail_options o;
	struct tail *t;

	struct rec recs[MAX_RECS];
	size_t nrecs;
	struct line lines[MAX_LINES];
	size_t nlines;              /* lines handed over (only MAX_LINES are kept) */
	unsigned flushes, lines_since_flush, releases, unflushed_at_release;
	unsigned position_calls, done, after_stop;
	bool stopped;
	uint64_t max_open;          /* highest files_open seen from a callback */

	/* What the position callback answers. */
	bool pos_have;
	uint64_t pos_off;
	struct tail_id pos_stored;
	struct tail_id pos_asked;
	/* What the stored callback lists (a restart's spool). */
	struct tail_id stored_id[4];
	const char *stored_path[4];
	uint64_t stored_off[4];
	size_t nstored;

	line_hook hook;             /* runs first; nonzero is returned as is */
	unsigned hook_count;
	bool hook_allow;
	uint64_t snap;
	size_t snap_rec;
	uint64_t hook_ino;

	/* The skipped callback: positions stored without a line. */
	unsigned skips;
	uint64_t skip_off[MAX_RECS];
	uint64_t skip_ino[MAX_RECS];
};

/* Runs the loop until cond holds or the deadline passes; true if it holds. */
#define WAIT_FOR_MS(h, cond, ms) __extension__ ({					\
	uint64_t deadline_ = uv_hrtime() + (uint64_t)(ms) * UINT64_C(1000000);		\
	while (!(cond) && uv_hrtime() < deadline_)					\
		uv_run(&(h)->loop, UV_RUN_ONCE);					\
	(cond) ? true : false;								\
})
#define WAIT_FOR(h, cond) WAIT_FOR_MS(h, cond, DEADLINE_MS)
#define RUN_UNTIL(h, cond) assert_true(WAIT_FOR(h, cond))

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* ---------------------------------------------------------------- files */

static void
h_path(const struct h *h, char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", h->dir, name);
}

static void
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		assert_true(w > 0);
		c += w;
		n -= (size_t)w;
	}
}

static void
put_bytes(struct h *h, const char *name, const void *p, size_t n, int flags)
{
	char path[PATH_MAX];
	int fd;

	h_path(h, path, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
	assert_true(fd >= 0);
	write_all(fd, p, n);
	assert_int_equal(close(fd), 0);
}

/* Creates (or empties) name with data. */
static void
put(struct h *h, const char *name, const char *data)
{
	put_bytes(h, name, data, strlen(data), O_TRUNC);
}

/* Appends data to name. */
static void
add(struct h *h, const char *name, const char *data)
{
	put_bytes(h, name, data, strlen(data), O_APPEND);
}

static void
ident(struct h *h, const char *name, uint64_t *dev, uint64_t *ino)
{
	char path[PATH_MAX];
	struct stat st;

	h_path(h, path, name);
	assert_int_equal(stat(path, &st), 0);
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
}

/* The fingerprint's FNV basis tail uses for file name: mixed with its birth time, if any. */
static uint64_t
seed_of(struct h *h, const char *name)
{
	char path[PATH_MAX];
	struct statx stx;
	uint8_t b[12];

	h_path(h, path, name);
	if (statx(AT_FDCWD, path, 0, STATX_BTIME, &stx) != 0 || !(stx.stx_mask & STATX_BTIME))
		return FNV_BASIS;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)stx.stx_btime.tv_sec >> (8 * i));
	for (int i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(stx.stx_btime.tv_nsec >> (8 * i));
	return fnv(FNV_BASIS, b, sizeof(b));
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	(void)chmod(path, 0700);
	return remove(path) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- callbacks */

static struct rec *
rec_find(struct h *h, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < h->nrecs; i++)
		if (h->recs[i].dev == dev && h->recs[i].ino == ino)
			return &h->recs[i];
	return NULL;
}

static struct rec *
rec_for(struct h *h, const struct tail_file_info *f)
{
	struct rec *r = rec_find(h, f->id.dev, f->id.ino);

	if (r == NULL) {
		if (h->nrecs == MAX_RECS)
			abort();
		r = &h->recs[h->nrecs++];
		r->dev = f->id.dev;
		r->ino = f->id.ino;
		r->hash = FNV_BASIS;
	}
	snprintf(r->path, sizeof(r->path), "%s", f->path);
	return r;
}

static void
rec_line(struct h *h, struct rec *r, const uint8_t *p, size_t len, unsigned flags,
    uint64_t end)
{
	size_t adv = len + ((flags & (TAIL_LINE_SPLIT | TAIL_LINE_PARTIAL)) ? 0 : 1);
	uint64_t start = end - adv;

	if (end < adv) {
		snprintf(r->bad, sizeof(r->bad), "end_offset %llu below the line's %zu bytes",
		    (unsigned long long)end, adv);
	} else if (!r->started) {
		r->started = true;
		r->base = start;
	} else if (start != r->end) {
		if (start == 0) {
			r->restarts++;
			r->base = 0;
			r->hash = FNV_BASIS;
			r->hashed = 0;
		} else if (r->bad[0] == '\0') {
			snprintf(r->bad, sizeof(r->bad),
			    "line at %llu after a line that ended at %llu",
			    (unsigned long long)start, (unsigned long long)r->end);
		}
	}
	r->hash = fnv(r->hash, p, len);
	r->hashed += len;
	if (adv > len) {
		r->hash = fnv(r->hash, "\n", 1);
		r->hashed++;
	}
	r->end = end;
	r->lines++;
	if (flags & TAIL_LINE_SPLIT)
		r->splits++;
	if (flags & TAIL_LINE_PARTIAL)
		r->partials++;
	if (r->released)
		r->after_release++;

	if (h->nlines < MAX_LINES) {
		struct line *l = &h->lines[h->nlines];
		size_t n = len < LINE_COPY - 1 ? len : LINE_COPY - 1;

		l->rec = (size_t)(r - h->recs);
		memcpy(l->text, p, n);
		l->text[n] = '\0';
		l->len = len;
		l->flags = flags;
		l->end = end;
		l->at_ms = now_ms();
		l->piece = false;
	}
	h->nlines++;
}

static int
cb_position(void *ctx, const struct tail_id *id, uint64_t *offset, struct tail_id *stored)
{
	struct h *h = ctx;

	if (h->stopped)
		h->after_stop++;
	h->position_calls++;
	h->pos_asked = *id;
	if (!h->pos_have)
		return -ENOENT;
	*offset = h->pos_off;
	*stored = h->pos_stored;
	return 0;
}

/* The position of a file is its stored entry, when the harness has one for it. */
static int
cb_position_stored(void *ctx, const struct tail_id *id, uint64_t *offset, struct tail_id *stored)
{
	struct h *h = ctx;

	for (size_t i = 0; i < h->nstored; i++) {
		if (h->stored_id[i].dev == id->dev && h->stored_id[i].ino == id->ino) {
			h->position_calls++;
			*offset = h->stored_off[i];
			*stored = h->stored_id[i];
			return 0;
		}
	}
	return cb_position(ctx, id, offset, stored);
}

static int
cb_stored(void *ctx, int (*fn)(void *fctx, const struct tail_id *id, const char *path,
    uint64_t offset), void *fctx)
{
	struct h *h = ctx;
	int r;

	if (h->stopped)
		h->after_stop++;
	for (size_t i = 0; i < h->nstored; i++)
		if ((r = fn(fctx, &h->stored_id[i], h->stored_path[i], h->stored_off[i])) != 0)
			return r;
	return 0;
}

static int
cb_line(void *ctx, const struct tail_file_info *f, const uint8_t *line, size_t len,
    unsigned flags, uint64_t end_offset)
{
	struct h *h = ctx;
	struct tail_stats s;
	struct rec *r;
	int ret;

	if (h->stopped)
		h->after_stop++;
	tail_get_stats(h->t, &s);
	if (s.files_open > h->max_open)
		h->max_open = s.files_open;
	if (h->hook != NULL && (ret = h->hook(h, f, line, len, flags, end_offset)) != 0)
		return ret;
	assert_int_equal(f->path_len, strlen(f->path));
	r = rec_for(h, f);
	r->id = f->id;
	rec_line(h, r, line, len, flags, end_offset);
	if (f->piece != NULL && h->nlines <= MAX_LINES) {
		h->lines[h->nlines - 1].piece = true;
		h->lines[h->nlines - 1].pc = *f->piece;
	}
	if (h->nlines <= MAX_LINES) {
		h->lines[h->nlines - 1].path_gen = f->path_gen;
		h->lines[h->nlines - 1].read_ns = f->read_ns;
	}
	h->lines_since_flush++;
	return 0;
}

static void
cb_flush(void *ctx)
{
	struct h *h = ctx;

	if (h->stopped)
		h->after_stop++;
	h->flushes++;
	h->lines_since_flush = 0;
}

static void
cb_release(void *ctx, const struct tail_file_info *f)
{
	struct h *h = ctx;

	if (h->stopped)
		h->after_stop++;
	h->releases++;
	h->unflushed_at_release += h->lines_since_flush;
	rec_for(h, f)->released = true;
}

static void
cb_done(void *ctx)
{
	struct h *h = ctx;

	h->done++;
}

static const struct tail_callbacks callbacks = {
	.position = cb_position_stored,
	.line = cb_line,
	.flush = cb_flush,
	.release = cb_release,
	.stored = cb_stored,
};

/* ---------------------------------------------------------------- harness */

static void
timer_cb(uv_timer_t *t)
{
	struct h *h = t->data;

	h->timer_fired = true;
}

/* A harness in dir (a new mkdtemp directory when dir is NULL) with its own loop. */
static struct h *
h_new(const char *dir)
{
	struct h *h = calloc(1, sizeof(*h));

	if (h == NULL)
		abort();
	if (dir != NULL) {
		snprintf(h->dir, sizeof(h->dir), "%s", dir);
	} else {
		snprintf(h->dir, sizeof(h->dir), "/tmp/test_tail.XXXXXX");
		if (mkdtemp(h->dir) == NULL)
			abort();
	}
	if (uv_loop_init(&h->loop) != 0)
		abort();
	uv_timer_init(&h->loop, &h->timer);
	h->timer.data = h;
	h_path(h, h->pathv[0], "*.log");
	h->paths[0] = h->pathv[0];
	h->o.name = "test";
	h->o.paths = h->paths;
	h->o.npaths = 1;
	h->o.exclude = h->excl;
	h->o.max_line = 4096;
	h->o.scan_interval_ms = 30;
	h->o.stat_interval_ms = 30;
	h->o.flush_timeout_ms = 100;
	h->o.rotate_wait_ms = 200;
	return h;
}

/* Closes the loop; returns uv_loop_close's result (0: every handle was closed). */
static int
h_close_loop(struct h *h)
{
	int r;

	if (h->loop_closed)
		return 0;
	if (h->t != NULL && !h->stopped) {
		h->stopped = true;
		tail_stop(h->t, cb_done, h);
		(void)WAIT_FOR(h, h->done > 0);
	}
	uv_close((uv_handle_t *)&h->timer, NULL);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&h->loop);
	h->loop_closed = true;
	return r;
}

static int
h_free(struct h *h, bool remove_dir)
{
	int r = h_close_loop(h);

	if (remove_dir)
		(void)nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(h);
	return r;
}

static int
setup(void **state)
{
	*state = h_new(NULL);
	return 0;
}

static int
teardown(void **state)
{
	return h_free(*state, true) == 0 ? 0 : -1;
}

static void
h_start(struct h *h)
{
	assert_int_equal(tail_start(&h->loop, &h->o, &callbacks, h, &h->t), 0);
}

static void
run_for(struct h *h, uint64_t ms)
{
	h->timer_fired = false;
	uv_timer_start(&h->timer, timer_cb, ms, 0);
	RUN_UNTIL(h, h->timer_fired);
}

static struct tail_stats
stats(struct h *h)
{
	struct tail_stats s;

	tail_get_stats(h->t, &s);
	return s;
}

/* Stops the tail and checks that done came once, no callback after tail_stop, no handle left. */
static void
h_stop_and_check(struct h *h)
{
	h->stopped = true;
	tail_stop(h->t, cb_done, h);
	assert_int_equal(h->done, 0);   /* from the loop, never from tail_stop */
	RUN_UNTIL(h, h->done > 0);
	run_for(h, 10);
	assert_int_equal(h->done, 1);
	assert_int_equal(h->after_stop, 0);
	assert_int_equal(h_close_loop(h), 0);
}

/* The record of the file now named name, or NULL. */
static struct rec *
rec_of(struct h *h, const char *name)
{
	uint64_t dev, ino;

	ident(h, name, &dev, &ino);
	return rec_find(h, dev, ino);
}

/* The k-th kept line of r. */
static const struct line *
line_of(struct h *h, const struct rec *r, unsigned k)
{
	size_t n = h->nlines < MAX_LINES ? h->nlines : MAX_LINES;

	for (size_t i = 0; i < n; i++)
		if (h->lines[i].rec == (size_t)(r - h->recs) && k-- == 0)
			return &h->lines[i];
	return NULL;
}

static void
expect_line(struct h *h, const struct rec *r, unsigned k, const char *text, unsigned flags,
    uint64_t end)
{
	const struct line *l = line_of(h, r, k);

	assert_non_null(l);
	assert_string_equal(l->text, text);
	assert_int_equal(l->len, strlen(text));
	assert_int_equal(l->flags, flags);
	assert_int_equal(l->end, end);
}

/* The lines of r, each with its newline, are the bytes of file name from r->base on. */
static void
expect_rec_is_file(struct h *h, const struct rec *r, const char *name)
{
	char path[PATH_MAX];
	uint8_t *b = malloc(MIB);
	uint64_t hash = FNV_BASIS, len = 0;
	ssize_t n;
	int fd;

	assert_non_null(r);
	assert_string_equal(r->bad, "");
	h_path(h, path, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(lseek(fd, (off_t)r->base, SEEK_SET) == (off_t)r->base);
	while ((n = read(fd, b, MIB)) > 0) {
		hash = fnv(hash, b, (size_t)n);
		len += (uint64_t)n;
	}
	assert_int_equal(n, 0);
	close(fd);
	free(b);
	assert_int_equal(r->hashed, len);
	assert_true(r->hash == hash);
	assert_int_equal(r->end, r->base + len);
}

/* ---------------------------------------------------------------- tests */

static void
test_existing_file_is_read_from_beginning(void **state)
{
	struct h *h = *state;
	const char *data = "one\ntwo\nthree\n";
	struct rec *r;
	uint64_t dev, ino;

	put(h, "a.log", data);
	ident(h, "a.log", &dev, &ino);
	h_start(h);
	assert_int_equal(h->nlines, 0);   /* reading starts on the next loop turn */
	RUN_UNTIL(h, h->nlines == 3);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "one", 0, 4);
	expect_line(h, r, 1, "two", 0, 8);
	expect_line(h, r, 2, "three", 0, 14);
	expect_rec_is_file(h, r, "a.log");
	/* The position callback is asked about the very file, with its fingerprint. */
	assert_int_equal(h->position_calls, 1);
	assert_true(h->pos_asked.dev == dev && h->pos_asked.ino == ino);
	assert_int_equal(h->pos_asked.fp_len, strlen(data));
	assert_true(h->pos_asked.fp_hash == fnv(seed_of(h, "a.log"), data, strlen(data)));
	assert_memory_equal(&r->id, &h->pos_asked, sizeof(r->id));
	/* Lines are followed by a flush before the loop waits again. */
	assert_true(h->flushes >= 1);
	assert_int_equal(h->lines_since_flush, 0);
	assert_int_equal(stats(h).lines, 3);
	assert_int_equal(stats(h).bytes, strlen(data));
	assert_int_equal(stats(h).files_open, 1);
	h_stop_and_check(h);
}

static void
test_start_at_end_skips_existing_lines_but_reads_new_ones(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "old1\nold2\n");
	h->o.start_at_end = true;
	h_start(h);
	run_for(h, 100);
	assert_int_equal(h->nlines, 0);
	add(h, "a.log", "new1\n");
	RUN_UNTIL(h, h->nlines == 1);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "new1", 0, 15);
	assert_int_equal(r->base, 10);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_start_at_end_reads_files_found_later_from_beginning(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "old\n");
	h->o.start_at_end = true;
	h_start(h);
	put(h, "b.log", "b1\nb2\n");
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "b.log");
	expect_line(h, r, 0, "b1", 0, 3);
	expect_line(h, r, 1, "b2", 0, 6);
	assert_null(rec_of(h, "a.log"));
	h_stop_and_check(h);
}

static void
test_appended_lines_arrive(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	add(h, "a.log", "b\n");
	RUN_UNTIL(h, h->nlines == 2);
	add(h, "a.log", "c\nd");
	add(h, "a.log", "\n");
	RUN_UNTIL(h, h->nlines == 4);
	r = rec_of(h, "a.log");
	expect_line(h, r, 1, "b", 0, 4);
	expect_line(h, r, 2, "c", 0, 6);
	expect_line(h, r, 3, "d", 0, 8);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).partial_lines, 0);
	h_stop_and_check(h);
}

static void
test_rename_rotation_reads_old_file_to_end_then_new_file(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *old, *cur;
	uint64_t dev, ino;

	h_path(h, h->pathv[0], "app.log");
	put(h, "app.log", "1\n2\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	ident(h, "app.log", &dev, &ino);
	/* logrotate: a last line, rename, create. */
	add(h, "app.log", "3\n");
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "4\n5\n");
	RUN_UNTIL(h, h->releases == 1 && (cur = rec_of(h, "app.log")) != NULL && cur->lines == 2);
	old = rec_find(h, dev, ino);
	assert_non_null(old);
	assert_int_equal(old->lines, 3);
	expect_line(h, old, 2, "3", 0, 6);
	expect_rec_is_file(h, old, "app.log.1");
	assert_true(old->released);
	assert_int_equal(old->after_release, 0);
	assert_int_equal(h->unflushed_at_release, 0);
	cur = rec_of(h, "app.log");
	assert_int_equal(cur->base, 0);
	expect_line(h, cur, 0, "4", 0, 2);
	expect_rec_is_file(h, cur, "app.log");
	assert_int_equal(stats(h).rotations, 1);
	assert_int_equal(stats(h).files_open, 1);
	assert_int_equal(stats(h).truncations, 0);
	h_stop_and_check(h);
}

static void
test_rotation_old_file_still_written_after_rename_is_read(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *old, *cur;
	uint64_t dev, ino;
	int w;

	h_path(h, h->pathv[0], "app.log");
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	w = open(from, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(w >= 0);
	write_all(w, "1\n", 2);
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	ident(h, "app.log", &dev, &ino);
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "new\n");
	/* Once the new file is read, tail knows the old one was renamed away. */
	RUN_UNTIL(h, (cur = rec_of(h, "app.log")) != NULL && cur->lines == 1);
	/* The writer has not reopened its log yet. */
	write_all(w, "late\n", 5);
	RUN_UNTIL(h, h->releases == 1);
	old = rec_find(h, dev, ino);
	assert_int_equal(old->lines, 2);
	expect_line(h, old, 1, "late", 0, 7);
	expect_rec_is_file(h, old, "app.log.1");
	assert_int_equal(old->after_release, 0);
	assert_true(old->released);
	expect_rec_is_file(h, rec_of(h, "app.log"), "app.log");
	close(w);
	h_stop_and_check(h);
}

static void
test_inotify_alone_brings_appended_lines(void **state)
{
	struct h *h = *state;
	struct rec *r;

	/* No scan or stat tick within the test's deadline: only inotify can tell. */
	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	put(h, "a.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	add(h, "a.log", "b\n");
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 1, "b", 0, 4);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_inotify_alone_notices_a_rename_rotation(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *cur = NULL;

	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	h_path(h, h->pathv[0], "app.log");
	put(h, "app.log", "1\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	put(h, "app.log.new", "2\n");
	assert_int_equal(rename(from, to), 0);
	h_path(h, from, "app.log.new");
	h_path(h, to, "app.log");
	assert_int_equal(rename(from, to), 0);
	/* The rename event makes tail scan at once, which finds the new file. */
	RUN_UNTIL(h, (cur = rec_of(h, "app.log")) != NULL && cur->lines == 1);
	RUN_UNTIL(h, h->releases == 1);
	expect_rec_is_file(h, cur, "app.log");
	h_stop_and_check(h);
}

/* a.log with a line, renamed to name (a matching one) once read, then a line more: its rec. */
static struct rec *
rename_within_globs(struct h *h, const char *name, char *to)
{
	char from[PATH_MAX];

	put(h, "a.log", "1\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	h_path(h, from, "a.log");
	h_path(h, to, name);
	assert_int_equal(rename(from, to), 0);
	run_for(h, 100);
	add(h, name, "2\n");
	RUN_UNTIL(h, h->nlines == 2);
	return rec_of(h, name);
}

static void
test_rename_within_globs_only_changes_the_path(void **state)
{
	struct h *h = *state;
	char to[PATH_MAX];
	struct rec *r = rename_within_globs(h, "b.log", to);

	expect_line(h, r, 1, "2", 0, 4);
	assert_string_equal(r->path, to);
	expect_rec_is_file(h, r, "b.log");
	assert_int_equal(r->restarts, 0);
	assert_int_equal(h->releases, 0);
	assert_int_equal(stats(h).files_seen, 1);
	assert_int_equal(stats(h).rotations, 0);
	h_stop_and_check(h);
}

/* A line's info names the file with its length, also after a rename to a longer name. */
static void
test_a_rename_to_a_longer_name_gives_the_lines_after_it_that_name_and_length(void **state)
{
	struct h *h = *state;
	char to[PATH_MAX];

	/* cb_line checks path_len against the path of every line. */
	assert_string_equal(rename_within_globs(h, "a-much-longer-name.log", to)->path, to);
	h_stop_and_check(h);
}

/*
 * A name's path_gen is nonzero, the same for its lines, and new after a
 * rename (the new name may be at the old one's address); another file's
 * differs.
 */
static void
test_a_rename_gives_the_lines_after_it_a_new_path_gen(void **state)
{
	struct h *h = *state;
	char to[PATH_MAX];

	rename_within_globs(h, "b.log", to);
	put(h, "c.log", "x\ny\n");
	RUN_UNTIL(h, h->nlines == 4);
	for (size_t i = 0; i < 4; i++) {
		const struct line *l = &h->lines[i];
		const char *path = h->recs[l->rec].path;
		bool c = strcmp(path + strlen(path) - 5, "c.log") == 0;

		assert_true(l->path_gen != 0);
		for (size_t j = 0; j < i; j++) {
			const struct line *k = &h->lines[j];

			if (k->rec != l->rec || !c)
				/* Another file, or a.log's line "1" then b.log's "2". */
				assert_true(k->path_gen != l->path_gen);
			else
				assert_true(k->path_gen == l->path_gen);
		}
	}
	h_stop_and_check(h);
}

static void
test_copytruncate_restarts_at_zero(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX];
	struct rec *r;

	put(h, "a.log", "aaa\nbbb\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	h_path(h, path, "a.log");
	assert_int_equal(truncate(path, 0), 0);
	RUN_UNTIL(h, stats(h).truncations == 1);
	add(h, "a.log", "c\n");
	RUN_UNTIL(h, h->nlines == 3);
	r = rec_of(h, "a.log");
	expect_line(h, r, 2, "c", 0, 2);
	assert_int_equal(r->restarts, 1);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).truncations, 1);
	assert_int_equal(stats(h).rotations, 0);
	h_stop_and_check(h);
}

static void
test_copytruncate_followed_at_once_by_new_writes_restarts_at_zero(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "aaa\nbbb\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	/* Truncated and written again past the old position before tail looks. */
	put(h, "a.log", "XXXXXXXXXXXX\nYYY\n");
	RUN_UNTIL(h, h->nlines == 4);
	r = rec_of(h, "a.log");
	expect_line(h, r, 2, "XXXXXXXXXXXX", 0, 13);
	expect_line(h, r, 3, "YYY", 0, 17);
	assert_int_equal(r->restarts, 1);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).truncations, 1);
	/* The id handed over is the new content's. */
	assert_int_equal(r->id.fp_len, 17);
	assert_true(r->id.fp_hash == fnv(seed_of(h, "a.log"), "XXXXXXXXXXXX\nYYY\n", 17));
	h_stop_and_check(h);
}

static void
test_inode_reuse_with_other_content_is_a_new_file(void **state)
{
	struct h *h = *state;
	struct rec *r;
	uint64_t dev, ino;

	put(h, "a.log", "new1\nnew2\n");
	ident(h, "a.log", &dev, &ino);
	/* A position stored for this dev and inode, but for another file's content. */
	h->pos_have = true;
	h->pos_off = 5;
	h->pos_stored = (struct tail_id){ .dev = dev, .ino = ino, .fp_len = 10,
	    .fp_hash = fnv(FNV_BASIS, "old1\nold2\n", 10) };
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "new1", 0, 5);
	expect_line(h, r, 1, "new2", 0, 10);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_position_resumes_at_committed_offset(void **state)
{
	struct h *h = *state;
	struct rec *r;
	uint64_t dev, ino;

	put(h, "a.log", "l1\nl2\nl3\n");
	ident(h, "a.log", &dev, &ino);
	/* Stored when the file held only its first line: the fingerprint was shorter. */
	h->pos_have = true;
	h->pos_off = 3;
	h->pos_stored = (struct tail_id){ .dev = dev, .ino = ino, .fp_len = 3,
	    .fp_hash = fnv(FNV_BASIS, "l1\n", 3) };
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	run_for(h, 100);
	assert_int_equal(h->nlines, 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "l2", 0, 6);
	expect_line(h, r, 1, "l3", 0, 9);
	assert_int_equal(r->base, 3);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(r->id.fp_len, 9);
	h_stop_and_check(h);
}

static void
test_position_beyond_size_restarts_at_zero(void **state)
{
	struct h *h = *state;
	struct rec *r;
	uint64_t dev, ino;

	put(h, "a.log", "a\nb\n");
	ident(h, "a.log", &dev, &ino);
	h->pos_have = true;
	h->pos_off = 100;
	h->pos_stored = (struct tail_id){ .dev = dev, .ino = ino, .fp_len = 4,
	    .fp_hash = fnv(FNV_BASIS, "a\nb\n", 4) };
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "a", 0, 2);
	expect_line(h, r, 1, "b", 0, 4);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_long_line_is_split_in_max_line_pieces(void **state)
{
	struct h *h = *state;
	size_t n = 3 * MIB;
	char *big = malloc(n + 1);
	const struct line *l;
	struct rec *r;

	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\n';
	put_bytes(h, "a.log", big, n + 1, O_TRUNC);
	add(h, "a.log", "short\n");
	free(big);
	h->o.max_line = MIB;
	h_start(h);
	RUN_UNTIL(h, h->nlines == 4);
	r = rec_of(h, "a.log");
	for (unsigned k = 0; k < 3; k++) {
		l = line_of(h, r, k);
		assert_int_equal(l->len, MIB);
		assert_int_equal(l->flags, k < 2 ? TAIL_LINE_SPLIT : 0);
		assert_int_equal(l->end, (k + 1) * MIB + (k == 2 ? 1 : 0));
		/* Each piece starts where the one before ended. */
		assert_int_equal(l->text[0], 'a' + (k * MIB) % 26);
	}
	expect_line(h, r, 3, "short", 0, n + 7);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).split_lines, 1);
	assert_int_equal(stats(h).lines, 4);
	h_stop_and_check(h);
}

static void
test_line_of_exactly_max_line_is_not_split_even_with_a_small_quantum(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "12345678\n123456789\nab\n");
	h->o.max_line = 8;
	h->o.read_quantum = 3;
	h_start(h);
	RUN_UNTIL(h, h->nlines == 4);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "12345678", 0, 9);
	expect_line(h, r, 1, "12345678", TAIL_LINE_SPLIT, 17);
	expect_line(h, r, 2, "9", 0, 19);
	expect_line(h, r, 3, "ab", 0, 22);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).split_lines, 1);
	h_stop_and_check(h);
}

/* CLOCK_REALTIME_COARSE in ns. */
static uint64_t
coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A line's read_ns is the coarse clock when its bytes were read: a line
 * and a partial last line flushed later, each within the time the test
 * ran.
 */
static void
test_each_line_has_the_time_its_bytes_were_read(void **state)
{
	struct h *h = *state;
	uint64_t before, after;

	put(h, "a.log", "full\npart");
	before = coarse_ns();
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	after = coarse_ns();
	for (size_t i = 0; i < 2; i++) {
		assert_true(h->lines[i].read_ns >= before);
		assert_true(h->lines[i].read_ns <= after);
	}
	/* The partial line waited flush_timeout (100 ms) after the first was read. */
	assert_true(h->lines[1].read_ns >= h->lines[0].read_ns + 50 * 1000000u);
	h_stop_and_check(h);
}

static void
test_partial_line_flushed_after_timeout(void **state)
{
	struct h *h = *state;
	const struct line *l;
	struct rec *r;
	uint64_t written;

	put(h, "a.log", "full\npart");
	written = now_ms();
	h_start(h);
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "full", 0, 5);
	expect_line(h, r, 1, "part", TAIL_LINE_PARTIAL, 9);
	/* Not before the file has been quiet for flush_timeout (100 ms; slack for rounding). */
	l = line_of(h, r, 1);
	assert_true(l->at_ms - written >= 90);
	assert_int_equal(stats(h).partial_lines, 1);
	/* What completes it later is a line of its own. */
	add(h, "a.log", "ial\n");
	RUN_UNTIL(h, h->nlines == 3);
	expect_line(h, r, 2, "ial", 0, 13);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_partial_line_completed_before_timeout_is_one_line(void **state)
{
	struct h *h = *state;
	struct rec *r;

	h->o.flush_timeout_ms = 60000;
	put(h, "a.log", "first\nhel");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	run_for(h, 100);
	assert_int_equal(h->nlines, 1);
	add(h, "a.log", "lo\n");
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 1, "hello", 0, 12);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).partial_lines, 0);
	h_stop_and_check(h);
}

static void
test_glob_picks_up_new_file(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	put(h, "b.log", "b1\nb2\n");
	RUN_UNTIL(h, h->nlines == 3);
	r = rec_of(h, "b.log");
	expect_line(h, r, 0, "b1", 0, 3);
	expect_rec_is_file(h, r, "b.log");
	assert_int_equal(stats(h).files_seen, 2);
	assert_int_equal(stats(h).files_open, 2);
	h_stop_and_check(h);
}

static void
test_exclude_glob_is_not_read(void **state)
{
	struct h *h = *state;

	h_path(h, h->pathv[0], "*");
	snprintf(h->exclv[0], PATH_MAX, "*.gz");
	h_path(h, h->exclv[1], "skip-*");
	h->excl[0] = h->exclv[0];
	h->excl[1] = h->exclv[1];
	h->o.nexclude = 2;
	put(h, "a.log", "a\n");
	put(h, "a.log.1.gz", "gz\n");
	put(h, "skip-me.log", "skip\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	put(h, "c.txt", "c\n");
	RUN_UNTIL(h, h->nlines == 2);
	run_for(h, 100);
	assert_int_equal(h->nlines, 2);
	assert_non_null(rec_of(h, "a.log"));
	assert_non_null(rec_of(h, "c.txt"));
	assert_int_equal(stats(h).files_seen, 2);
	h_stop_and_check(h);
}

static int
hook_pause_on_2(struct h *h, const struct tail_file_info *f, const uint8_t *p, size_t len,
    unsigned flags, uint64_t end)
{
	(void)f;
	(void)flags;
	(void)end;
	if (len == 1 && p[0] == '2') {
		h->hook_count++;
		if (!h->hook_allow)
			return -EAGAIN;
	}
	return 0;
}

static void
test_paused_file_resumes_at_same_line(void **state)
{
	struct h *h = *state;
	struct rec *r;

	h->hook = hook_pause_on_2;
	put(h, "a.log", "1\n2\n3\n");
	h_start(h);
	RUN_UNTIL(h, h->hook_count == 1);
	run_for(h, 150);
	add(h, "a.log", "4\n");
	run_for(h, 150);
	/* Paused: nothing more is handed over, not even the refused line again. */
	assert_int_equal(h->nlines, 1);
	assert_int_equal(h->hook_count, 1);
	h->hook_allow = true;
	tail_resume(h->t);
	RUN_UNTIL(h, h->nlines == 4);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "1", 0, 2);
	expect_line(h, r, 1, "2", 0, 4);
	expect_line(h, r, 2, "3", 0, 6);
	expect_line(h, r, 3, "4", 0, 8);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static int
hook_pause_ino(struct h *h, const struct tail_file_info *f, const uint8_t *p, size_t len,
    unsigned flags, uint64_t end)
{
	(void)p;
	(void)len;
	(void)flags;
	(void)end;
	if (f->id.ino == h->hook_ino && !h->hook_allow) {
		h->hook_count++;
		return -EAGAIN;
	}
	return 0;
}

static void
test_file_rotated_while_paused_is_read_to_end_after_resume(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *old, *cur = NULL;
	uint64_t dev;

	h_path(h, h->pathv[0], "app.log");
	put(h, "app.log", "1\n2\n");
	ident(h, "app.log", &dev, &h->hook_ino);
	h->hook = hook_pause_ino;
	h_start(h);
	RUN_UNTIL(h, h->hook_count == 1);
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "new\n");
	add(h, "app.log.1", "3\n");
	RUN_UNTIL(h, (cur = rec_of(h, "app.log")) != NULL && cur->lines == 1);
	/* Well past rotate_wait: a paused file is not let go. */
	run_for(h, 400);
	assert_int_equal(h->releases, 0);
	assert_int_equal(h->hook_count, 1);
	h->hook_allow = true;
	tail_resume(h->t);
	RUN_UNTIL(h, h->releases == 1);
	old = rec_find(h, dev, h->hook_ino);
	assert_int_equal(old->lines, 3);
	expect_rec_is_file(h, old, "app.log.1");
	assert_int_equal(old->after_release, 0);
	h_stop_and_check(h);
}

static int
hook_refuse_2_but_resume(struct h *h, const struct tail_file_info *f, const uint8_t *p,
    size_t len, unsigned flags, uint64_t end)
{
	(void)f;
	(void)flags;
	(void)end;
	if (len == 1 && p[0] == '2' && h->hook_count++ == 0) {
		/* Room came back before this callback returned. */
		tail_resume(h->t);
		return -EAGAIN;
	}
	return 0;
}

static void
test_resume_during_the_refusing_callback_is_not_lost(void **state)
{
	struct h *h = *state;

	h->hook = hook_refuse_2_but_resume;
	put(h, "a.log", "1\n2\n3\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 3);
	assert_int_equal(h->hook_count, 2);
	expect_rec_is_file(h, rec_of(h, "a.log"), "a.log");
	h_stop_and_check(h);
}

static int
hook_snap_big(struct h *h, const struct tail_file_info *f, const uint8_t *p, size_t len,
    unsigned flags, uint64_t end)
{
	struct rec *big = &h->recs[h->snap_rec];

	(void)f;
	(void)flags;
	(void)end;
	if (len == 2 && memcmp(p, "s3", 2) == 0)
		h->snap = h->nrecs > h->snap_rec ? big->hashed : 0;
	return 0;
}

static void
test_busy_file_does_not_starve_another(void **state)
{
	struct h *h = *state;
	size_t line = 128, size = 50 * (size_t)MIB;   /* whole lines in every MiB */
	char *chunk = malloc(MIB);
	struct rec *big;

	assert_non_null(chunk);
	for (size_t i = 0; i < MIB; i++)
		chunk[i] = (i + 1) % line == 0 ? '\n' : (char)('A' + i % 26);
	put_bytes(h, "big.log", "", 0, O_TRUNC);
	for (size_t i = 0; i < size / MIB; i++)
		put_bytes(h, "big.log", chunk, MIB, O_APPEND);
	free(chunk);
	put(h, "small.log", "s1\ns2\ns3\n");
	h->hook = hook_snap_big;
	h->snap = UINT64_MAX;
	h->snap_rec = 0;     /* big.log sorts first, so it is read (and recorded) first */
	h_start(h);
	RUN_UNTIL(h, h->snap != UINT64_MAX);
	big = rec_of(h, "big.log");
	assert_non_null(big);
	assert_int_equal(big - h->recs, 0);
	/* small.log's lines came while big.log was far from done. */
	assert_true(h->snap < size);
	assert_true(WAIT_FOR_MS(h, big->hashed == size, BIG_DEADLINE_MS));
	expect_rec_is_file(h, big, "big.log");
	expect_rec_is_file(h, rec_of(h, "small.log"), "small.log");
	assert_int_equal(big->lines, size / line);
	h_stop_and_check(h);
}

static void
test_deleted_file_is_read_to_end_and_released(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX];
	uint64_t dev, ino;
	struct rec *r;

	put(h, "a.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	ident(h, "a.log", &dev, &ino);
	add(h, "a.log", "b\npartial");
	h_path(h, path, "a.log");
	assert_int_equal(unlink(path), 0);
	RUN_UNTIL(h, h->releases == 1);
	r = rec_find(h, dev, ino);
	assert_int_equal(r->lines, 3);
	expect_line(h, r, 1, "b", 0, 4);
	/* The partial last line comes first, and is flushed, before the release. */
	expect_line(h, r, 2, "partial", TAIL_LINE_PARTIAL, 11);
	assert_true(r->released);
	assert_int_equal(r->after_release, 0);
	assert_int_equal(h->unflushed_at_release, 0);
	assert_string_equal(r->bad, "");
	assert_int_equal(stats(h).rotations, 1);
	assert_int_equal(stats(h).partial_lines, 1);
	assert_int_equal(stats(h).files_open, 0);
	h_stop_and_check(h);
}

static void
test_crlf_is_kept_in_line(void **state)
{
	struct h *h = *state;
	struct rec *r;

	put(h, "a.log", "a\r\nb\r\n\r\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 3);
	r = rec_of(h, "a.log");
	expect_line(h, r, 0, "a\r", 0, 3);
	expect_line(h, r, 1, "b\r", 0, 6);
	expect_line(h, r, 2, "\r", 0, 8);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static int
hook_pause_all(struct h *h, const struct tail_file_info *f, const uint8_t *p, size_t len,
    unsigned flags, uint64_t end)
{
	(void)f;
	(void)p;
	(void)len;
	(void)flags;
	(void)end;
	h->hook_count++;
	return h->hook_allow ? 0 : -EAGAIN;
}

static void
test_files_wait_for_a_descriptor_while_every_open_one_is_busy(void **state)
{
	struct h *h = *state;

	h->o.max_files = 2;
	h->hook = hook_pause_all;
	put(h, "a.log", "a\n");
	put(h, "b.log", "b\n");
	put(h, "c.log", "c\n");
	h_start(h);
	/* Paused files are not at their end: their descriptors are not taken from them. */
	RUN_UNTIL(h, h->hook_count == 2);
	run_for(h, 100);
	assert_int_equal(stats(h).files_open, 2);
	assert_int_equal(stats(h).files_waiting, 1);
	h->hook_allow = true;
	tail_resume(h->t);
	RUN_UNTIL(h, h->nlines == 3);
	expect_rec_is_file(h, rec_of(h, "c.log"), "c.log");
	assert_true(h->max_open <= 2);
	RUN_UNTIL(h, stats(h).files_waiting == 0);
	h_stop_and_check(h);
}

static void
test_files_wait_warning_comes_once_not_at_every_scan(void **state)
{
	struct h *h = *state;
	struct log_capture lc;
	const char *p;
	unsigned n = 0;

	log_capture_start(&lc, "test_tail", "TEST_TAIL_LOG");
	h->o.max_files = 1;
	h->hook = hook_pause_all;
	put(h, "a.log", "a\n");
	put(h, "b.log", "b\n");
	h_start(h);
	RUN_UNTIL(h, h->hook_count >= 1);
	/* Ten scans or so, each of which finds b.log waiting. */
	run_for(h, 300);
	assert_int_equal(stats(h).files_waiting, 1);
	for (p = log_capture_text(&lc); (p = strstr(p, "matching file(s) wait")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	log_capture_expect(&lc, "max_open_files");
	h->hook_allow = true;
	tail_resume(h->t);
	RUN_UNTIL(h, h->nlines == 2);
	h_stop_and_check(h);
	log_capture_stop(&lc);
}

static void
test_directory_matching_the_glob_is_not_followed(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX];

	h_path(h, path, "dir.log");
	assert_int_equal(mkdir(path, 0755), 0);
	put(h, "a.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	run_for(h, 100);
	assert_int_equal(stats(h).files_open, 1);
	assert_int_equal(stats(h).errors, 0);
	h_stop_and_check(h);
}

#define CHILD_CHECK(c) do {							\
	if (!(c)) {								\
		fprintf(stderr, "child: %s failed at line %d\n", #c, __LINE__);	\
		return 1;							\
	}									\
} while (0)

/* Runs in a child that is not root (root reads anything). Returns its exit status. */
static int
unreadable_child(const char *dir)
{
	char bad[PATH_MAX], *logs = NULL;
	size_t logs_len = 0;
	FILE *log = open_memstream(&logs, &logs_len);
	struct h *h;
	uint64_t dev, ino;
	int r;

	if (geteuid() == 0)
		CHILD_CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0);
	h = h_new(dir);
	put(h, "good.log", "g1\n");
	put(h, "bad.log", "secret\n");
	h_path(h, bad, "bad.log");
	CHILD_CHECK(chmod(bad, 0) == 0);
	CHILD_CHECK(log != NULL);
	log_set_output(log);
	h_start(h);
	CHILD_CHECK(WAIT_FOR(h, h->nlines == 1 && stats(h).errors >= 1));
	/* Counted and tried again at each scan; the other file goes on. */
	CHILD_CHECK(WAIT_FOR(h, stats(h).errors >= 2));
	add(h, "good.log", "g2\n");
	CHILD_CHECK(WAIT_FOR(h, h->nlines == 2));
	CHILD_CHECK(rec_of(h, "good.log") != NULL && rec_of(h, "good.log")->lines == 2);
	/* Once it may be read, it is. */
	CHILD_CHECK(chmod(bad, 0644) == 0);
	CHILD_CHECK(WAIT_FOR(h, h->nlines == 3));
	ident(h, "bad.log", &dev, &ino);
	CHILD_CHECK(rec_find(h, dev, ino) != NULL);
	h->stopped = true;
	tail_stop(h->t, cb_done, h);
	CHILD_CHECK(WAIT_FOR(h, h->done == 1));
	log_set_output(NULL);
	fclose(log);
	fputs(logs, stderr);
	/* The message says what failed, on which file, and what to do. */
	CHILD_CHECK(strstr(logs, "cannot open") != NULL);
	CHILD_CHECK(strstr(logs, bad) != NULL);
	CHILD_CHECK(strstr(logs, "Permission denied") != NULL);
	CHILD_CHECK(strstr(logs, "may read it") != NULL);
	free(logs);
	r = h_free(h, false);
	CHILD_CHECK(r == 0);
	return 0;
}

static void
test_unreadable_file_is_reported_and_others_go_on(void **state)
{
	char dir[] = "/tmp/test_tail.XXXXXX";
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0777), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unreadable_child(dir));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_fingerprint_grows_while_the_file_is_small(void **state)
{
	struct h *h = *state;
	char more[2001], path[PATH_MAX], head[TAIL_FINGERPRINT_MAX];
	struct rec *r;
	int fd;

	put(h, "a.log", "ab\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	r = rec_of(h, "a.log");
	assert_int_equal(r->id.fp_len, 3);
	assert_true(r->id.fp_hash == fnv(seed_of(h, "a.log"), "ab\n", 3));
	for (size_t i = 0; i < 2000; i++)
		more[i] = i % 50 == 49 ? '\n' : 'x';
	more[2000] = '\0';
	add(h, "a.log", more);
	RUN_UNTIL(h, h->nlines == 41);
	h_path(h, path, "a.log");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, head, sizeof(head)), sizeof(head));
	close(fd);
	assert_int_equal(r->id.fp_len, TAIL_FINGERPRINT_MAX);
	assert_true(r->id.fp_hash == fnv(seed_of(h, "a.log"), head, sizeof(head)));
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
check_cb(uv_check_t *c)
{
	(*(unsigned *)c->data)++;
}

static void
test_quiet_files_do_not_spin_the_loop(void **state)
{
	struct h *h = *state;
	unsigned iterations = 0;
	uv_check_t check;

	h->o.flush_timeout_ms = 60000;
	put(h, "a.log", "done\n");
	put(h, "b.log", "a partial line");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	run_for(h, 50);
	uv_check_init(&h->loop, &check);
	check.data = &iterations;
	uv_check_start(&check, check_cb);
	run_for(h, 300);
	uv_close((uv_handle_t *)&check, NULL);
	/*
	 * Timers (scan and stat every 30 ms) wake the loop about 20 times in
	 * 300 ms; a file scheduled again and again would take thousands.
	 */
	assert_true(iterations < 100);
	assert_int_equal(h->nlines, 1);
	h_stop_and_check(h);
}

static int
hook_stop_on_2(struct h *h, const struct tail_file_info *f, const uint8_t *p, size_t len,
    unsigned flags, uint64_t end)
{
	(void)f;
	(void)flags;
	(void)end;
	if (len == 1 && p[0] == '2') {
		tail_stop(h->t, cb_done, h);
		h->stopped = true;
	}
	return 0;
}

static void
test_stop_from_a_line_callback_ends_callbacks(void **state)
{
	struct h *h = *state;

	h->hook = hook_stop_on_2;
	put(h, "a.log", "1\n2\n3\n4\n");
	put(h, "b.log", "b1\nb2\n");
	h_start(h);
	RUN_UNTIL(h, h->done == 1);
	run_for(h, 50);
	assert_int_equal(h->after_stop, 0);
	assert_int_equal(h->done, 1);
	assert_int_equal(h_close_loop(h), 0);
}

/* q.log's lines are refused; tail stops at big.log's 100th line, halfway through a turn. */
static int
hook_pause_q_stop_in_big(struct h *h, const struct tail_file_info *f, const uint8_t *p,
    size_t len, unsigned flags, uint64_t end)
{
	(void)p;
	(void)len;
	(void)flags;
	(void)end;
	if (strstr(f->path, "/q.log") != NULL) {
		h->hook_count++;
		return -EAGAIN;
	}
	if (strstr(f->path, "/big.log") != NULL && ++h->snap == 100) {
		h->stopped = true;
		tail_stop(h->t, cb_done, h);
	}
	return 0;
}

static void
test_stop_frees_everything(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX], tmp[PATH_MAX], *chunk = malloc(MIB);
	struct rec *big;
	size_t i;

	/* Files in every state: partial line pending, paused, rotated away, mid-read. */
	put(h, "p.log", "x\npartial");
	put(h, "q.log", "q1\n");
	put(h, "d.log", "d1\n");
	h->o.flush_timeout_ms = 60000;
	h->o.rotate_wait_ms = 60000;
	h->o.read_quantum = 4096;
	h->hook = hook_pause_q_stop_in_big;
	h_start(h);
	RUN_UNTIL(h, h->hook_count >= 1 && rec_of(h, "p.log") != NULL &&
	    rec_of(h, "d.log") != NULL);
	h_path(h, path, "d.log");
	assert_int_equal(unlink(path), 0);
	run_for(h, 100);
	assert_int_equal(stats(h).files_open, 3);
	assert_non_null(chunk);
	for (i = 0; i < MIB; i++)
		chunk[i] = i % 64 == 63 ? '\n' : 'z';
	put_bytes(h, "big.log.tmp", "", 0, O_TRUNC);
	for (i = 0; i < 4; i++)
		put_bytes(h, "big.log.tmp", chunk, MIB, O_APPEND);
	free(chunk);
	/* Appears whole, so that tail is still reading it when it stops. */
	h_path(h, tmp, "big.log.tmp");
	h_path(h, path, "big.log");
	assert_int_equal(rename(tmp, path), 0);
	RUN_UNTIL(h, h->done == 1);
	run_for(h, 50);
	assert_int_equal(h->done, 1);
	assert_int_equal(h->after_stop, 0);
	big = rec_of(h, "big.log");
	assert_int_equal(big->lines, 100);
	assert_int_equal(big->end, 100 * 64);
	assert_int_equal(h->releases, 0);
	/* The partial line was not handed over: its position stays before it. */
	assert_int_equal(rec_of(h, "p.log")->partials, 0);
	assert_int_equal(rec_of(h, "p.log")->end, 2);
	assert_int_equal(h_close_loop(h), 0);
}

static void
test_start_rejects_bad_options(void **state)
{
	struct h *h = *state;
	struct tail_callbacks nolines = callbacks;
	struct tail_options o;
	struct tail *t = NULL;

	nolines.line = NULL;
	o = h->o;
	o.max_line = 0;
	assert_int_equal(tail_start(&h->loop, &o, &callbacks, h, &t), -EINVAL);
	o = h->o;
	o.npaths = 0;
	assert_int_equal(tail_start(&h->loop, &o, &callbacks, h, &t), -EINVAL);
	o = h->o;
	o.scan_interval_ms = 0;
	assert_int_equal(tail_start(&h->loop, &o, &callbacks, h, &t), -EINVAL);
	o = h->o;
	o.nexclude = 1;
	o.exclude = NULL;
	assert_int_equal(tail_start(&h->loop, &o, &callbacks, h, &t), -EINVAL);
	assert_int_equal(tail_start(&h->loop, &h->o, &nolines, h, &t), -EINVAL);
	assert_null(t);
	assert_int_equal(h_close_loop(h), 0);
}

/* ---------------------------------------------------------------- rotation (issue 14, item 4) */

static void
test_new_file_at_a_rotated_path_is_followed_at_once_while_the_old_one_is_read(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *old = NULL, *cur = NULL;
	uint64_t dev, ino;
	int w;

	/* No scan within the test: only the directory's events can bring the new file. */
	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	h->o.rotate_wait_ms = 60000;
	h_path(h, h->pathv[0], "app.log");
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	w = open(from, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(w >= 0);
	write_all(w, "1\n", 2);
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	ident(h, "app.log", &dev, &ino);
	assert_int_equal(rename(from, to), 0);
	/* The rename's own scan runs before the writer creates the new file. */
	run_for(h, 100);
	put(h, "app.log", "new1\n");
	write_all(w, "late\n", 5);
	RUN_UNTIL(h, (cur = rec_of(h, "app.log")) != NULL && cur->lines == 1 &&
	    (old = rec_find(h, dev, ino)) != NULL && old->lines == 2);
	/* Both at the same time: the old file is not let go before the new one is read. */
	assert_int_equal(h->releases, 0);
	assert_int_equal(stats(h).files_open, 2);
	expect_rec_is_file(h, old, "app.log.1");
	expect_rec_is_file(h, cur, "app.log");
	close(w);
	h_stop_and_check(h);
}

static void
test_many_rotations_between_scans_lose_nothing(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX], name[32], text[32];
	struct rec *r;
	const unsigned n = 8;

	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	h_path(h, h->pathv[0], "app.log");
	h_path(h, from, "app.log");
	put(h, "app.log", "0-a\n");
	h_start(h);
	for (unsigned k = 0; k < n; k++) {
		RUN_UNTIL(h, (r = rec_of(h, "app.log")) != NULL && r->lines == 1);
		snprintf(text, sizeof(text), "%u-b\n", k);
		add(h, "app.log", text);
		snprintf(name, sizeof(name), "app.log.%u", k);
		h_path(h, to, name);
		assert_int_equal(rename(from, to), 0);
		run_for(h, 20);
		snprintf(text, sizeof(text), "%u-a\n", k + 1);
		put(h, "app.log", text);
	}
	RUN_UNTIL(h, h->nlines == 2 * n + 1 && h->releases == n);
	for (unsigned k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "app.log.%u", k);
		r = rec_of(h, name);
		assert_non_null(r);
		assert_int_equal(r->lines, 2);
		expect_rec_is_file(h, r, name);
	}
	expect_rec_is_file(h, rec_of(h, "app.log"), "app.log");
	assert_int_equal(stats(h).files_seen, n + 1);
	h_stop_and_check(h);
}

static void
test_file_rotated_away_before_it_was_opened_is_followed_under_its_new_name(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *r;

	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	h_path(h, h->pathv[0], "app.log");
	h_path(h, from, "app.log");
	put(h, "app.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	/* Two rotations before the loop runs again: b's file is never at app.log when looked at. */
	h_path(h, to, "app.log.1");
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "b1\nb2\n");
	h_path(h, to, "app.log.2");
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "c\n");
	RUN_UNTIL(h, h->nlines == 4 && h->releases == 2);
	r = rec_of(h, "app.log.2");
	assert_non_null(r);
	expect_line(h, r, 0, "b1", 0, 3);
	expect_rec_is_file(h, r, "app.log.2");
	assert_true(r->released);
	expect_rec_is_file(h, rec_of(h, "app.log"), "app.log");
	expect_rec_is_file(h, rec_of(h, "app.log.1"), "app.log.1");
	h_stop_and_check(h);
}

static void
test_rotated_name_matching_the_glob_is_not_read_twice(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct rec *old, *cur = NULL;
	uint64_t dev, ino;

	h_path(h, h->pathv[0], "app.log*");
	put(h, "app.log", "1\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	ident(h, "app.log", &dev, &ino);
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "2\n");
	RUN_UNTIL(h, (cur = rec_of(h, "app.log")) != NULL && cur->lines == 1);
	/* Several scans see the old file under its new name. */
	run_for(h, 300);
	old = rec_find(h, dev, ino);
	assert_int_equal(old->lines, 1);
	assert_int_equal(old->restarts, 0);
	expect_rec_is_file(h, old, "app.log.1");
	assert_int_equal(h->nlines, 2);
	assert_int_equal(stats(h).files_seen, 2);
	h_stop_and_check(h);
}

/*
 * The position callback of the files opened by one read of directory
 * events: when a.log is opened, the writer rotates app.log (created in the
 * same read, not looked at yet) and creates the next one, so the name the
 * tail looks at next already holds the next file.
 */
static int
cb_position_rotating(void *ctx, const struct tail_id *id, uint64_t *offset,
    struct tail_id *stored)
{
	struct h *h = ctx;
	char from[PATH_MAX], to[PATH_MAX];
	uint64_t dev, ino;

	ident(h, "a.log", &dev, &ino);
	if (h->hook_count == 0 && id->ino == ino) {
		h->hook_count++;
		h_path(h, from, "app.log");
		h_path(h, to, "app.log.1");
		assert_int_equal(rename(from, to), 0);
		put(h, "app.log", "g2\n");
	}
	return cb_position(ctx, id, offset, stored);
}

static const struct tail_callbacks callbacks_rotating = {
	.position = cb_position_rotating,
	.line = cb_line,
	.flush = cb_flush,
	.release = cb_release,
	.stored = cb_stored,
};

static void
test_file_created_and_rotated_away_before_its_event_was_handled_is_read(void **state)
{
	struct h *h = *state;
	struct rec *r;

	/* No scan within the test: only the directory's events can bring the files. */
	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	assert_int_equal(tail_start(&h->loop, &h->o, &callbacks_rotating, h, &h->t), 0);
	/* Both creations in one read of events, a.log's first. */
	put(h, "a.log", "a\n");
	put(h, "app.log", "g1-1\ng1-2\n");
	RUN_UNTIL(h, h->nlines == 4 && h->releases == 1);
	assert_int_equal(h->hook_count, 1);
	r = rec_of(h, "app.log.1");
	assert_non_null(r);
	expect_line(h, r, 0, "g1-1", 0, 5);
	expect_rec_is_file(h, r, "app.log.1");
	assert_true(r->released);
	expect_rec_is_file(h, rec_of(h, "app.log"), "app.log");
	expect_rec_is_file(h, rec_of(h, "a.log"), "a.log");
	assert_int_equal(stats(h).files_seen, 3);
	h_stop_and_check(h);
}

static void
test_more_rotations_in_one_read_of_events_than_pending_names_lose_nothing(void **state)
{
	struct h *h = *state;
	char from[PATH_MAX], to[PATH_MAX], name[32], text[32];
	const unsigned n = 300;   /* more than the tail's names per read (256) */
	struct rec *r;

	h->o.scan_interval_ms = 60000;
	h->o.stat_interval_ms = 60000;
	h_path(h, h->pathv[0], "app.log");
	h_path(h, from, "app.log");
	h_start(h);
	/* All before the loop runs: one callback reads every event, the renames first. */
	for (unsigned k = 0; k < n; k++) {
		snprintf(text, sizeof(text), "%u\n", k);
		put(h, "app.log", text);
		snprintf(name, sizeof(name), "app.log.%u", k);
		h_path(h, to, name);
		assert_int_equal(rename(from, to), 0);
	}
	put(h, "app.log", "last\n");
	RUN_UNTIL(h, h->nlines == n + 1 && h->releases == n);
	for (unsigned k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "app.log.%u", k);
		r = rec_of(h, name);
		assert_non_null(r);
		expect_rec_is_file(h, r, name);
	}
	expect_rec_is_file(h, rec_of(h, "app.log"), "app.log");
	h_stop_and_check(h);
}

/* A first run of tail over name that reads its first line; *id is what it would store. */
static void
first_run(struct h *h, const char *name, const char *first, struct tail_id *id)
{
	put(h, name, first);
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	*id = rec_of(h, name)->id;
	h_stop_and_check(h);
}

static void
test_restart_finds_a_stored_file_renamed_while_stopped(void **state)
{
	struct h *h = *state, *h2;
	char from[PATH_MAX], to[PATH_MAX];
	struct tail_id id;
	struct rec *old = NULL, *cur = NULL;

	first_run(h, "app.log", "1\n", &id);
	/* While the agent is stopped: last lines, then rotation (app.log.1 is not under *.log). */
	add(h, "app.log", "2\n3\n");
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	assert_int_equal(rename(from, to), 0);
	put(h, "app.log", "new\n");

	h2 = h_new(h->dir);
	h2->stored_id[0] = id;
	h2->stored_path[0] = from;
	h2->stored_off[0] = 2;
	h2->nstored = 1;
	h_start(h2);
	RUN_UNTIL(h2, (old = rec_find(h2, id.dev, id.ino)) != NULL && old->lines == 2 &&
	    (cur = rec_of(h2, "app.log")) != NULL && cur->lines == 1 && h2->releases == 1);
	assert_int_equal(old->base, 2);
	expect_line(h2, old, 0, "2", 0, 4);
	expect_line(h2, old, 1, "3", 0, 6);
	expect_rec_is_file(h2, old, "app.log.1");
	assert_true(old->released);
	expect_rec_is_file(h2, cur, "app.log");
	h_stop_and_check(h2);
	assert_int_equal(h_free(h2, false), 0);
}

static bool
birth(struct h *h, const char *name, struct statx_timestamp *ts)
{
	char path[PATH_MAX];
	struct statx stx;

	h_path(h, path, name);
	if (statx(AT_FDCWD, path, 0, STATX_BTIME, &stx) != 0 || !(stx.stx_mask & STATX_BTIME))
		return false;
	*ts = stx.stx_btime;
	return true;
}

static void
test_inode_reuse_beginning_with_the_old_content_is_read_from_its_start(void **state)
{
	struct h *h = *state, *h2;
	char path[PATH_MAX];
	struct statx_timestamp b1, b2 = { 0 };
	struct tail_id id;
	struct rec *r;
	uint64_t dev, ino;

	first_run(h, "a.log", "same\n", &id);
	if (!birth(h, "a.log", &b1)) {
		skip();   /* no birth time on this file system: content is all there is */
		return;
	}
	h_path(h, path, "a.log");
	/* The file is replaced by one that starts with the same line. */
	do {
		assert_int_equal(unlink(path), 0);
		put(h, "a.log", "same\nmore\n");
		assert_true(birth(h, "a.log", &b2));
	} while (b2.tv_sec == b1.tv_sec && b2.tv_nsec == b1.tv_nsec);
	ident(h, "a.log", &dev, &ino);
	/* The stored identity of the old file, as if the new one had its inode. */
	id.dev = dev;
	id.ino = ino;
	h2 = h_new(h->dir);
	h2->stored_id[0] = id;
	h2->stored_path[0] = path;
	h2->stored_off[0] = 5;
	h2->nstored = 1;
	h_start(h2);
	RUN_UNTIL(h2, h2->nlines == 2);
	r = rec_of(h2, "a.log");
	expect_line(h2, r, 0, "same", 0, 5);
	expect_line(h2, r, 1, "more", 0, 10);
	expect_rec_is_file(h2, r, "a.log");
	h_stop_and_check(h2);
	assert_int_equal(h_free(h2, false), 0);
}

/* ---------------------------------------------------------------- split lines (issue 14, item 6) */

/* Line k of r is piece index of count, of the line starting at start, with id. */
static void
expect_piece(struct h *h, const struct rec *r, unsigned k, uint32_t index, uint32_t count,
    uint64_t start, const char *id)
{
	const struct line *l = line_of(h, r, k);

	assert_non_null(l);
	assert_true(l->piece);
	assert_int_equal(l->pc.index, index);
	assert_int_equal(l->pc.count, count);
	assert_int_equal(l->pc.start, start);
	assert_string_equal(l->pc.id, id);
}

static void
test_every_piece_of_a_split_line_carries_its_id_index_and_count(void **state)
{
	struct h *h = *state;
	size_t n = 3 * 4096 + 100;
	char *big = malloc(n + 1), id[96];
	struct rec *r;

	assert_non_null(big);
	memset(big, 'z', n);
	big[n] = '\n';
	put(h, "a.log", "first\n");
	put_bytes(h, "a.log", big, n + 1, O_APPEND);
	add(h, "a.log", "short\n");
	free(big);
	h->o.read_quantum = 1000;   /* the newline is far beyond one read */
	h_start(h);
	RUN_UNTIL(h, h->nlines == 6);
	r = rec_of(h, "a.log");
	assert_false(line_of(h, r, 0)->piece);
	snprintf(id, sizeof(id), "%s", line_of(h, r, 1)->pc.id);
	/* Identity and offset make the id: another line or file has another. */
	assert_non_null(strstr(id, ":6"));
	for (unsigned k = 0; k < 4; k++)
		expect_piece(h, r, 1 + k, k, 4, 6, id);
	assert_int_equal(line_of(h, r, 4)->len, 100);
	assert_int_equal(line_of(h, r, 4)->flags, 0);
	assert_false(line_of(h, r, 5)->piece);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(stats(h).split_lines, 1);
	h_stop_and_check(h);
}

static void
test_long_line_without_its_newline_waits_for_it(void **state)
{
	struct h *h = *state;
	char big[2 * 4096 + 50];
	struct rec *r;

	memset(big, 'q', sizeof(big));
	h->o.flush_timeout_ms = 60000;
	put_bytes(h, "a.log", big, sizeof(big), O_TRUNC);
	h_start(h);
	/* Its count is not known yet: no piece goes before the newline is there. */
	run_for(h, 100);
	assert_int_equal(h->nlines, 0);
	add(h, "a.log", "end\n");
	RUN_UNTIL(h, h->nlines == 3);
	r = rec_of(h, "a.log");
	expect_piece(h, r, 0, 0, 3, 0, line_of(h, r, 0)->pc.id);
	expect_piece(h, r, 2, 2, 3, 0, line_of(h, r, 0)->pc.id);
	assert_int_equal(line_of(h, r, 2)->len, 53);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_rotated_files_last_long_line_is_flushed_in_counted_pieces(void **state)
{
	struct h *h = *state;
	char big[2 * 4096 + 50], from[PATH_MAX], to[PATH_MAX];
	uint64_t dev, ino;
	struct rec *r;

	memset(big, 'q', sizeof(big));
	h->o.flush_timeout_ms = 60000;
	h_path(h, h->pathv[0], "app.log");
	put(h, "app.log", "a\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	ident(h, "app.log", &dev, &ino);
	put_bytes(h, "app.log", big, sizeof(big), O_APPEND);
	h_path(h, from, "app.log");
	h_path(h, to, "app.log.1");
	assert_int_equal(rename(from, to), 0);
	RUN_UNTIL(h, h->releases == 1);
	r = rec_find(h, dev, ino);
	assert_int_equal(r->lines, 4);
	expect_piece(h, r, 1, 0, 3, 2, line_of(h, r, 1)->pc.id);
	expect_piece(h, r, 3, 2, 3, 2, line_of(h, r, 1)->pc.id);
	assert_int_equal(line_of(h, r, 1)->flags, TAIL_LINE_SPLIT);
	assert_int_equal(line_of(h, r, 3)->flags, TAIL_LINE_PARTIAL);
	assert_int_equal(line_of(h, r, 3)->len, 50);
	expect_rec_is_file(h, r, "app.log.1");
	assert_int_equal(h->unflushed_at_release, 0);
	h_stop_and_check(h);
}

/* ---------------------------------------------------------------- open files (issue 14, item 5) */

static void
test_more_files_than_max_files_are_all_read_with_at_most_max_files_open(void **state)
{
	struct h *h = *state;
	char name[32], text[32];
	const unsigned n = 12;

	h->o.max_files = 3;
	for (unsigned k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "f%02u.log", k);
		snprintf(text, sizeof(text), "line of %u\n", k);
		put(h, name, text);
	}
	h_start(h);
	RUN_UNTIL(h, h->nlines == n);
	for (unsigned k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "f%02u.log", k);
		expect_rec_is_file(h, rec_of(h, name), name);
	}
	assert_true(h->max_open <= 3);
	assert_true(stats(h).files_open <= 3);
	/* Lines added to files closed for others are read too, from where they were. */
	for (unsigned k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "f%02u.log", k);
		add(h, name, "more\n");
	}
	RUN_UNTIL(h, h->nlines == 2 * n);
	for (unsigned k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "f%02u.log", k);
		assert_int_equal(rec_of(h, name)->lines, 2);
		expect_rec_is_file(h, rec_of(h, name), name);
	}
	assert_true(h->max_open <= 3);
	assert_int_equal(stats(h).files_seen, n);
	assert_int_equal(h->releases, 0);
	h_stop_and_check(h);
}

static void
test_idle_file_is_closed_after_close_inactive_and_reopened_where_it_was(void **state)
{
	struct h *h = *state;
	struct rec *r;

	h->o.close_inactive_ms = 100;
	put(h, "a.log", "1\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	RUN_UNTIL(h, stats(h).files_open == 0);
	add(h, "a.log", "2\n");
	RUN_UNTIL(h, h->nlines == 2);
	r = rec_of(h, "a.log");
	expect_line(h, r, 1, "2", 0, 4);
	expect_rec_is_file(h, r, "a.log");
	assert_int_equal(r->restarts, 0);
	assert_int_equal(stats(h).files_seen, 1);
	assert_int_equal(h->position_calls, 1);   /* known by identity, not asked again */
	h_stop_and_check(h);
}

static void
test_closed_file_rewritten_is_read_again_from_its_start(void **state)
{
	struct h *h = *state;
	struct rec *r;

	h->o.close_inactive_ms = 100;
	put(h, "a.log", "old line\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	RUN_UNTIL(h, stats(h).files_open == 0);
	/* Same inode, other first bytes, longer: the stored offset would land inside. */
	put(h, "a.log", "NEW LINE\nsecond\n");
	RUN_UNTIL(h, h->nlines == 3);
	r = rec_of(h, "a.log");
	expect_line(h, r, 1, "NEW LINE", 0, 9);
	expect_line(h, r, 2, "second", 0, 16);
	assert_int_equal(r->restarts, 1);
	expect_rec_is_file(h, r, "a.log");
	h_stop_and_check(h);
}

static void
test_closed_file_deleted_is_forgotten(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX];

	h->o.close_inactive_ms = 100;
	put(h, "a.log", "1\n");
	h_start(h);
	RUN_UNTIL(h, h->nlines == 1);
	RUN_UNTIL(h, stats(h).files_open == 0);
	h_path(h, path, "a.log");
	assert_int_equal(unlink(path), 0);
	put(h, "b.log", "b\n");
	RUN_UNTIL(h, h->nlines == 2);
	run_for(h, 100);
	/*
	 * Forgotten: never failed on, b.log read once. (b.log may itself be
	 * closed by now: close_inactive is 100 ms, and a loaded machine
	 * stretches run_for, so the number open is 0 or 1. b.log may also
	 * have a.log's inode, and is then known by its fingerprint.)
	 */
	assert_true(stats(h).files_open <= 1);
	assert_int_equal(stats(h).errors, 0);
	assert_int_equal(h->nlines, 2);
	h_stop_and_check(h);
}

/* ---------------------------------------------------------------- compressed archives */

static void
cb_skipped(void *ctx, const struct tail_file_info *f, uint64_t offset)
{
	struct h *h = ctx;

	if (h->stopped)
		h->after_stop++;
	if (h->skips < MAX_RECS) {
		h->skip_off[h->skips] = offset;
		h->skip_ino[h->skips] = f->id.ino;
	}
	h->skips++;
}

static const struct tail_callbacks callbacks_archives = {
	.position = cb_position_stored,
	.line = cb_line,
	.flush = cb_flush,
	.release = cb_release,
	.stored = cb_stored,
	.skipped = cb_skipped,
};

/* The position stored for the file named name by the skipped callback, or UINT64_MAX. */
static uint64_t
skip_of(struct h *h, const char *name)
{
	uint64_t dev, ino, off = UINT64_MAX;

	ident(h, name, &dev, &ino);
	for (unsigned i = 0; i < h->skips && i < MAX_RECS; i++)
		if (h->skip_ino[i] == ino)
			off = h->skip_off[i];
	return off;
}

/* n lines "<tag> line <i>\n" in *len bytes, written plain to plain_name too. */
static char *
archive_text(struct h *h, const char *plain_name, const char *tag, unsigned n, size_t *len)
{
	size_t cap = (size_t)n * 48 + 1, used = 0;
	char *p = malloc(cap);

	assert_non_null(p);
	for (unsigned i = 0; i < n; i++)
		used += (size_t)snprintf(p + used, cap - used, "%s line %u\n", tag, i);
	put_bytes(h, plain_name, p, used, O_TRUNC);
	*len = used;
	return p;
}

static void
put_gzip(struct h *h, const char *name, const char *p, size_t len)
{
	char path[PATH_MAX];
	gzFile gz;

	h_path(h, path, name);
	assert_non_null(gz = gzopen(path, "wb"));
	assert_int_equal(gzwrite(gz, p, (unsigned)len), (int)len);
	assert_int_equal(gzclose(gz), Z_OK);
}

static void
put_zstd(struct h *h, const char *name, const char *p, size_t len)
{
	size_t cap = ZSTD_compressBound(len), n;
	uint8_t *z = malloc(cap);

	assert_non_null(z);
	n = ZSTD_compress(z, cap, p, len, 3);
	assert_false(ZSTD_isError(n));
	put_bytes(h, name, z, n, O_TRUNC);
	free(z);
}

static void
h_archives(struct h *h)
{
	h_path(h, h->pathv[0], "access.log*");
	assert_int_equal(tail_start(&h->loop, &h->o, &callbacks_archives, h, &h->t), 0);
}

static void
test_gzip_and_zstd_files_are_read_decompressed_once_and_marked_done(void **state)
{
	struct h *h = *state;
	size_t glen, zlen;
	char *g = archive_text(h, "plain.2", "gz", 3000, &glen);
	char *z = archive_text(h, "plain.3", "zst", 2000, &zlen);
	struct rec *rg, *rz;

	put_gzip(h, "access.log.2.gz", g, glen);
	/* No .zst in the name: the magic bytes tell. */
	put_zstd(h, "access.log.3", z, zlen);
	h_archives(h);
	RUN_UNTIL(h, h->skips == 2);
	run_for(h, 100);
	rg = rec_of(h, "access.log.2.gz");
	rz = rec_of(h, "access.log.3");
	assert_int_equal(rg->lines, 3000);
	assert_int_equal(rz->lines, 2000);
	expect_rec_is_file(h, rg, "plain.2");
	expect_rec_is_file(h, rz, "plain.3");
	assert_int_equal(rg->end, glen);
	assert_true(skip_of(h, "access.log.2.gz") == (TAIL_POS_DONE | glen));
	assert_true(skip_of(h, "access.log.3") == (TAIL_POS_DONE | zlen));
	assert_int_equal(stats(h).archives_done, 2);
	assert_int_equal(stats(h).archive_errors, 0);
	assert_int_equal(stats(h).files_reading, 0);
	assert_int_equal(h->releases, 0);
	assert_int_equal(h->nlines, 5000);
	h_stop_and_check(h);
	free(g);
	free(z);
}

static void
test_compressed_file_resumes_at_its_stored_decompressed_position(void **state)
{
	struct h *h = *state, *h2;
	size_t len;
	char *g = archive_text(h, "plain.2", "gz", 3000, &len);
	struct tail_id id;
	struct rec *r;
	uint64_t mid;

	put_gzip(h, "access.log.2.gz", g, len);
	h_archives(h);
	RUN_UNTIL(h, h->skips == 1);
	r = rec_of(h, "access.log.2.gz");
	id = r->id;
	mid = line_of(h, r, 999)->end;
	h_stop_and_check(h);

	h2 = h_new(h->dir);
	h2->stored_id[0] = id;
	h2->stored_path[0] = "access.log.2.gz";
	h2->stored_off[0] = mid;
	h2->nstored = 1;
	h_archives(h2);
	RUN_UNTIL(h2, h2->skips == 1);
	r = rec_of(h2, "access.log.2.gz");
	assert_int_equal(r->base, mid);
	assert_int_equal(r->lines, 2000);
	expect_rec_is_file(h2, r, "plain.2");
	h_stop_and_check(h2);
	assert_int_equal(h_free(h2, false), 0);
	free(g);
}

static void
test_compressed_file_stored_as_done_is_not_read_again(void **state)
{
	struct h *h = *state, *h2;
	size_t len;
	char *g = archive_text(h, "plain.2", "gz", 100, &len);
	struct tail_id id;

	put_gzip(h, "access.log.2.gz", g, len);
	h_archives(h);
	RUN_UNTIL(h, h->skips == 1);
	id = rec_of(h, "access.log.2.gz")->id;
	h_stop_and_check(h);

	h2 = h_new(h->dir);
	h2->stored_id[0] = id;
	h2->stored_path[0] = "access.log.2.gz";
	h2->stored_off[0] = TAIL_POS_DONE | len;
	h2->nstored = 1;
	h_archives(h2);
	run_for(h2, 300);
	assert_int_equal(h2->nlines, 0);
	assert_int_equal(h2->skips, 0);
	assert_int_equal(stats(h2).files_reading, 0);
	assert_int_equal(stats(h2).files_open, 0);
	h_stop_and_check(h2);
	assert_int_equal(h_free(h2, false), 0);
	free(g);
}

static void
test_truncated_archive_is_read_to_its_damage_counted_and_left(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX];
	struct log_capture lc;
	size_t len;
	char *g = archive_text(h, "plain.2", "gz", 20000, &len);
	struct stat st;
	struct rec *r;
	unsigned n;

	put_gzip(h, "access.log.2.gz", g, len);
	h_path(h, path, "access.log.2.gz");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
	log_capture_start(&lc, "test_tail", "TEST_TAIL_LOG");
	h_archives(h);
	RUN_UNTIL(h, h->skips == 1);
	r = rec_of(h, "access.log.2.gz");
	n = r->lines;
	assert_true(n > 100 && n < 20000);
	run_for(h, 300);
	assert_int_equal(r->lines, n);
	assert_int_equal(h->skips, 1);
	assert_int_equal(stats(h).archive_errors, 1);
	assert_int_equal(stats(h).files_reading, 0);
	assert_true(skip_of(h, "access.log.2.gz") == (TAIL_POS_DONE | r->end));
	log_capture_expect(&lc, "access.log.2.gz is damaged at compressed offset");
	log_capture_stop(&lc);
	h_stop_and_check(h);
	free(g);
}

static void
test_archive_appearing_while_following_is_a_rotated_generation_and_not_read(void **state)
{
	struct h *h = *state;
	size_t len;
	char *g = archive_text(h, "plain.1", "gz", 100, &len);

	put(h, "access.log", "live\n");
	h_archives(h);
	RUN_UNTIL(h, h->nlines == 1);
	/* logrotate's compress of access.log.1, which the agent followed already. */
	put_gzip(h, "access.log.2.gz", g, len);
	RUN_UNTIL(h, h->skips == 1);
	run_for(h, 200);
	assert_int_equal(h->nlines, 1);
	assert_true(skip_of(h, "access.log.2.gz") == TAIL_POS_DONE);
	h_stop_and_check(h);
	free(g);
}

static void
test_archive_written_into_an_empty_new_file_is_not_read_as_lines(void **state)
{
	struct h *h = *state;
	char path[PATH_MAX];
	size_t len;
	char *g = archive_text(h, "plain.1", "gz", 100, &len);

	put(h, "access.log", "live\n");
	h_archives(h);
	RUN_UNTIL(h, h->nlines == 1);
	/* gzip creates its output empty, then writes it: the agent may open it in between. */
	put(h, "access.log.2.gz", "");
	RUN_UNTIL(h, stats(h).files_seen == 2);
	put_gzip(h, "tmp.gz", g, len);
	h_path(h, path, "tmp.gz");
	{
		FILE *in = fopen(path, "rb");
		uint8_t buf[65536];
		size_t n;

		assert_non_null(in);
		n = fread(buf, 1, sizeof(buf), in);
		fclose(in);
		put_bytes(h, "access.log.2.gz", buf, n, O_APPEND);
	}
	RUN_UNTIL(h, h->skips == 1);
	run_for(h, 200);
	assert_int_equal(h->nlines, 1);
	assert_true(skip_of(h, "access.log.2.gz") == TAIL_POS_DONE);
	h_stop_and_check(h);
	free(g);
}

static void
test_more_archives_than_decoders_are_all_read_each_once(void **state)
{
	struct h *h = *state;
	char name[32], plain[32];
	size_t len;
	char *g[6];

	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "access.log.%d.gz", i + 2);
		snprintf(plain, sizeof(plain), "plain.%d", i + 2);
		g[i] = archive_text(h, plain, name, 1000, &len);
		put_gzip(h, name, g[i], len);
	}
	h_archives(h);
	RUN_UNTIL(h, h->skips == 6);
	run_for(h, 100);
	assert_int_equal(h->nlines, 6000);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "access.log.%d.gz", i + 2);
		snprintf(plain, sizeof(plain), "plain.%d", i + 2);
		expect_rec_is_file(h, rec_of(h, name), plain);
		free(g[i]);
	}
	assert_int_equal(stats(h).archives_done, 6);
	assert_int_equal(stats(h).files_open, 0);
	h_stop_and_check(h);
}

static void
test_archive_line_longer_than_the_window_comes_in_counted_pieces(void **state)
{
	struct h *h = *state;
	size_t big = 2 * MIB, len;
	char *p = malloc(big + 64);
	struct rec *r;

	assert_non_null(p);
	len = (size_t)snprintf(p, 64, "first\n");
	memset(p + len, 'x', big);
	len += big;
	len += (size_t)snprintf(p + len, 64, "\nlast\n");
	put_bytes(h, "plain.2", p, len, O_TRUNC);
	put_gzip(h, "access.log.2.gz", p, len);
	h_archives(h);
	RUN_UNTIL(h, h->skips == 1);
	r = rec_of(h, "access.log.2.gz");
	expect_rec_is_file(h, r, "plain.2");
	assert_int_equal(r->lines, 2 + (big + h->o.max_line - 1) / h->o.max_line);
	assert_int_equal(r->splits, big / h->o.max_line - 1);
	assert_int_equal(line_of(h, r, 1)->flags, TAIL_LINE_SPLIT);
	assert_int_equal(line_of(h, r, 1)->end, 6 + h->o.max_line);
	assert_true(line_of(h, r, 1)->piece);
	assert_int_equal(line_of(h, r, 1)->pc.count, (big + h->o.max_line - 1) / h->o.max_line);
	h_stop_and_check(h);
	free(p);
}

static void
test_exclude_glob_keeps_archives_out(void **state)
{
	struct h *h = *state;
	size_t len;
	char *g = archive_text(h, "plain.2", "gz", 100, &len);

	put_gzip(h, "access.log.2.gz", g, len);
	put(h, "access.log", "live\n");
	h_path(h, h->exclv[0], "*.gz");
	h->excl[0] = h->exclv[0];
	h->o.nexclude = 1;
	h_archives(h);
	RUN_UNTIL(h, h->nlines == 1);
	run_for(h, 200);
	assert_int_equal(h->nlines, 1);
	assert_int_equal(h->skips, 0);
	assert_int_equal(stats(h).files_seen, 1);
	h_stop_and_check(h);
	free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_existing_file_is_read_from_beginning),
		T(test_start_at_end_skips_existing_lines_but_reads_new_ones),
		T(test_start_at_end_reads_files_found_later_from_beginning),
		T(test_appended_lines_arrive),
		T(test_rename_rotation_reads_old_file_to_end_then_new_file),
		T(test_rotation_old_file_still_written_after_rename_is_read),
		T(test_inotify_alone_brings_appended_lines),
		T(test_inotify_alone_notices_a_rename_rotation),
		T(test_rename_within_globs_only_changes_the_path),
		T(test_a_rename_to_a_longer_name_gives_the_lines_after_it_that_name_and_length),
		T(test_a_rename_gives_the_lines_after_it_a_new_path_gen),
		T(test_each_line_has_the_time_its_bytes_were_read),
		T(test_copytruncate_restarts_at_zero),
		T(test_copytruncate_followed_at_once_by_new_writes_restarts_at_zero),
		T(test_inode_reuse_with_other_content_is_a_new_file),
		T(test_position_resumes_at_committed_offset),
		T(test_position_beyond_size_restarts_at_zero),
		T(test_long_line_is_split_in_max_line_pieces),
		T(test_line_of_exactly_max_line_is_not_split_even_with_a_small_quantum),
		T(test_partial_line_flushed_after_timeout),
		T(test_partial_line_completed_before_timeout_is_one_line),
		T(test_glob_picks_up_new_file),
		T(test_exclude_glob_is_not_read),
		T(test_paused_file_resumes_at_same_line),
		T(test_resume_during_the_refusing_callback_is_not_lost),
		T(test_file_rotated_while_paused_is_read_to_end_after_resume),
		T(test_busy_file_does_not_starve_another),
		T(test_deleted_file_is_read_to_end_and_released),
		T(test_crlf_is_kept_in_line),
		T(test_files_wait_for_a_descriptor_while_every_open_one_is_busy),
		T(test_files_wait_warning_comes_once_not_at_every_scan),
		T(test_directory_matching_the_glob_is_not_followed),
		cmocka_unit_test(test_unreadable_file_is_reported_and_others_go_on),
		T(test_fingerprint_grows_while_the_file_is_small),
		T(test_quiet_files_do_not_spin_the_loop),
		T(test_stop_from_a_line_callback_ends_callbacks),
		T(test_stop_frees_everything),
		T(test_start_rejects_bad_options),
		T(test_new_file_at_a_rotated_path_is_followed_at_once_while_the_old_one_is_read),
		T(test_many_rotations_between_scans_lose_nothing),
		T(test_rotated_name_matching_the_glob_is_not_read_twice),
		T(test_file_rotated_away_before_it_was_opened_is_followed_under_its_new_name),
		T(test_file_created_and_rotated_away_before_its_event_was_handled_is_read),
		T(test_more_rotations_in_one_read_of_events_than_pending_names_lose_nothing),
		T(test_restart_finds_a_stored_file_renamed_while_stopped),
		T(test_inode_reuse_beginning_with_the_old_content_is_read_from_its_start),
		T(test_every_piece_of_a_split_line_carries_its_id_index_and_count),
		T(test_long_line_without_its_newline_waits_for_it),
		T(test_rotated_files_last_long_line_is_flushed_in_counted_pieces),
		T(test_more_files_than_max_files_are_all_read_with_at_most_max_files_open),
		T(test_idle_file_is_closed_after_close_inactive_and_reopened_where_it_was),
		T(test_closed_file_rewritten_is_read_again_from_its_start),
		T(test_closed_file_deleted_is_forgotten),
		T(test_gzip_and_zstd_files_are_read_decompressed_once_and_marked_done),
		T(test_compressed_file_resumes_at_its_stored_decompressed_position),
		T(test_compressed_file_stored_as_done_is_not_read_again),
		T(test_truncated_archive_is_read_to_its_damage_counted_and_left),
		T(test_archive_appearing_while_following_is_a_rotated_generation_and_not_read),
		T(test_exclude_glob_keeps_archives_out),
		T(test_archive_line_longer_than_the_window_comes_in_counted_pieces),
		T(test_more_archives_than_decoders_are_all_read_each_once),
		T(test_archive_written_into_an_empty_new_file_is_not_read_as_lines),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
