/* SPDX-License-Identifier: Apache-2.0 */
/* file_source: tail -> parse -> spool for one file source (see file_source.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "agent/file_source.h"
#include "agent/multiline.h"
#include "agent/pipeline.h"
#include "agent/source.h"
#include "agent/tail.h"
#include "common/daemon.h"
#include "common/log.h"

/* The lines of one file gathered into an event (multiline). */
struct file_source_ml {
	struct file_source_ml *next;
	struct tail_id id;
	char *path;                  /* owned: the file's name at its last line */
	bool released;               /* tail is done with the file: free once shipped */
	struct multiline m;
};

struct file_source {
	const struct agent_source *cfg;
	struct spool *spool;
	struct pipeline pipe;
	struct tail *tail;
	struct source_line sl;
	bool multiline;              /* cfg has a multiline rule: rule, files and timer are set */
	struct multiline_rule rule;
	struct file_source_ml *files;  /* files with lines read since the last check, most
	                                  recent first */
	uv_timer_t timer;            /* ships events no line followed within flush_timeout */
	struct multiline_stats ml_st;
	void (*done)(void *ctx);
	void *done_ctx;
};

static int
file_source_position(void *ctx, const struct tail_id *id, uint64_t *offset,
    struct tail_id *stored)
{
	struct file_source *fs = ctx;
	struct spool_file f;
	char path[PATH_MAX];
	int r;

	if ((r = spool_get_position(fs->spool, id->dev, id->ino, &f, path, sizeof(path))) != 0)
		return r == -ENOENT ? -ENOENT : r;
	*offset = f.offset;
	stored->dev = f.dev;
	stored->ino = f.ino;
	stored->fp_len = f.fp_len;
	stored->fp_hash = f.fp_hash;
	return 0;
}

struct file_source_each {
	int (*fn)(void *fctx, const struct tail_id *id, const char *path, uint64_t offset);
	void *fctx;
};

static int
file_source_each_one(void *ctx, const struct spool_file *f)
{
	struct file_source_each *e = ctx;
	struct tail_id id = { .dev = f->dev, .ino = f->ino, .fp_len = f->fp_len,
	    .fp_hash = f->fp_hash };

	return e->fn(e->fctx, &id, f->path, f->offset);
}

static int
file_source_stored(void *ctx, int (*fn)(void *fctx, const struct tail_id *id, const char *path,
    uint64_t offset), void *fctx)
{
	struct file_source *fs = ctx;
	struct file_source_each e = { fn, fctx };

	return spool_each_position(fs->spool, file_source_each_one, &e);
}

static void
file_source_pos(const struct tail_file_info *f, uint64_t offset, struct spool_file *pos)
{
	pos->dev = f->id.dev;
	pos->ino = f->id.ino;
	pos->fp_len = f->id.fp_len;
	pos->fp_hash = f->id.fp_hash;
	pos->offset = offset;
	pos->path = f->path;
	pos->path_len = f->path_len;
}

/* One line (or piece) as one event. */
static int
file_source_single(struct file_source *fs, const struct tail_file_info *f, const uint8_t *line,
    size_t len, unsigned flags, uint64_t end_offset)
{
	struct spool_file pos;
	struct event ev;
	unsigned marks = 0;
	int r;

	if (flags & TAIL_LINE_PARTIAL)
		marks |= SOURCE_PARTIAL;
	if (f->piece != NULL) {
		struct source_piece pc = { .id = f->piece->id, .index = f->piece->index,
		    .count = f->piece->count };

		source_line_piece(&fs->sl, line, len, &pc, marks, f->read_ns, f->path, &ev);
	} else {
		/* Received when read: tail's clock, once per read buffer. */
		source_line_event_n(&fs->sl, line, len, marks, f->read_ns, f->path, f->path_len,
		    f->path_gen, &ev);
	}
	file_source_pos(f, end_offset, &pos);
	/* Without its fields, a line loses its partial mark too: the line alone is kept. */
	if ((r = pipeline_emit(&fs->pipe, &ev, 0, &pos)) == -EAGAIN)
		return -EAGAIN;
	if (r != 0)
		log_error("source %s: %s: line ending at offset %" PRIu64 " cannot be spooled (%s); "
		    "skipped", fs->cfg->name, f->path, end_offset, strerror(-r));
	return 0;
}

/*
 * Spools e's event with the position after its last line. Returns 0 (also
 * when the spool refused it: logged, counted by the pipeline, and skipped),
 * or -EAGAIN: the spool is full, the event stays gathered.
 */
static int
file_source_ml_ship(struct file_source *fs, struct file_source_ml *e, bool by_timeout)
{
	struct tail_file_info f = { .path = e->path, .id = e->id };
	struct spool_file pos;
	struct event ev;
	unsigned marks = 0;
	int r;

	if (e->m.partial)
		marks |= SOURCE_PARTIAL;
	if (e->m.truncated)
		marks |= SOURCE_MULTILINE_TRUNCATED;
	source_line_event(&fs->sl, e->m.buf, e->m.len, marks, e->m.first_ns, e->path, &ev);
	file_source_pos(&f, e->m.end, &pos);
	if ((r = pipeline_emit(&fs->pipe, &ev, 0, &pos)) == -EAGAIN)
		return -EAGAIN;
	if (r != 0) {
		log_error("source %s: %s: event of %" PRIu32 " lines ending at offset %" PRIu64
		    " cannot be spooled (%s); skipped", fs->cfg->name, e->path, e->m.lines,
		    e->m.end, strerror(-r));
	} else {
		multiline_count(&fs->ml_st, &e->m, by_timeout);
	}
	multiline_clear(&e->m);
	return 0;
}

static void
file_source_ml_free(struct file_source_ml *e)
{
	multiline_free(&e->m);
	free(e->path);
	free(e);
}

/* The gathered lines of file id, created empty when there are none (NULL: no memory). */
static struct file_source_ml *
file_source_ml_of(struct file_source *fs, const struct tail_file_info *f)
{
	struct file_source_ml **pp, *e;

	for (pp = &fs->files; (e = *pp) != NULL; pp = &e->next)
		if (e->id.dev == f->id.dev && e->id.ino == f->id.ino && !e->released)
			break;
	if (e != NULL) {
		/* Most recent first: a busy file is found at once among many idle ones. */
		*pp = e->next;
	} else {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return NULL;
		multiline_init(&e->m, &fs->rule, fs->cfg->multiline.max_bytes);
	}
	e->next = fs->files;
	fs->files = e;
	if (e->path == NULL || strcmp(e->path, f->path) != 0) {
		char *p = strdup(f->path);

		if (p == NULL) {
			fs->files = e->next;
			file_source_ml_free(e);
			return NULL;
		}
		free(e->path);
		e->path = p;
	}
	e->id = f->id;
	return e;
}

static void file_source_ml_timer(uv_timer_t *t);
static void file_source_closed(uv_handle_t *h);

/*
 * Ships the events whose last line is flush_timeout old (and those of
 * released files), then sets the timer for the next one due. Stops at a
 * full spool: file_source_resume calls it again.
 */
static void
file_source_ml_check(struct file_source *fs)
{
	uint64_t now = source_now_ns(), timeout = fs->cfg->multiline.flush_timeout_ms * 1000000;
	uint64_t next = UINT64_MAX, left;
	struct file_source_ml **pp = &fs->files, *e;
	bool shipped = false;

	while ((e = *pp) != NULL) {
		if (multiline_pending(&e->m) && (e->released || multiline_due(&e->m, now, timeout))) {
			if (file_source_ml_ship(fs, e, !e->released) != 0)
				break;
			shipped = true;
		}
		/* Only files with an event in progress keep memory between two checks. */
		if (!multiline_pending(&e->m)) {
			*pp = e->next;
			file_source_ml_free(e);
			continue;
		}
		/* A clock set back must not hold an event longer than flush_timeout. */
		left = now < e->m.last_ns ? timeout : e->m.last_ns + timeout - now;
		if (left < next)
			next = left;
		pp = &e->next;
	}
	if (shipped)
		spool_flush(fs->spool);
	/* It fails only on a closing handle: the source is stopping, its events are dropped. */
	if (e == NULL && next != UINT64_MAX)
		(void)uv_timer_start(&fs->timer, file_source_ml_timer, next / 1000000 + 1, 0);
}

static void
file_source_ml_timer(uv_timer_t *t)
{
	file_source_ml_check(t->data);
}

/* A source without multiline: tail's line callback, each line an event. */
static int
file_source_line_single(void *ctx, const struct tail_file_info *f, const uint8_t *line,
    size_t len, unsigned flags, uint64_t end_offset)
{
	return file_source_single(ctx, f, line, len, flags, end_offset);
}

/* A source with multiline: tail's line callback, lines gathered into events. */
static int
file_source_line(void *ctx, const struct tail_file_info *f, const uint8_t *line, size_t len,
    unsigned flags, uint64_t end_offset)
{
	struct file_source *fs = ctx;
	struct file_source_ml *e;
	int r;

	if ((e = file_source_ml_of(fs, f)) == NULL) {
		log_error("source %s: %s: no memory to gather the lines of an event; the line ending "
		    "at offset %" PRIu64 " goes alone", fs->cfg->name, f->path, end_offset);
		return file_source_single(fs, f, line, len, flags, end_offset);
	}
	/*
	 * The event before is whole when this line does not continue it, or
	 * when the file started again (truncated: the offset went back), or
	 * when this is a piece of a line too long to join.
	 */
	if (multiline_pending(&e->m) && (f->piece != NULL || end_offset <= e->m.end ||
	    !multiline_continues(&e->m, line, len)) &&
	    (r = file_source_ml_ship(fs, e, false)) != 0)
		return r;
	if (f->piece != NULL)
		return file_source_single(fs, f, line, len, flags, end_offset);
	if (multiline_add(&e->m, line, len, (flags & TAIL_LINE_PARTIAL) != 0, source_now_ns(),
	    end_offset) != 0) {
		log_error("source %s: %s: no memory to gather the lines of an event; the event "
		    "before is shipped as it is and the line ending at offset %" PRIu64 " goes alone",
		    fs->cfg->name, f->path, end_offset);
		if (multiline_pending(&e->m) && (r = file_source_ml_ship(fs, e, false)) != 0)
			return r;
		return file_source_single(fs, f, line, len, flags, end_offset);
	}
	if (!uv_is_active((uv_handle_t *)&fs->timer))
		file_source_ml_check(fs);
	return 0;
}

/* The gathered lines of the file f is, or NULL. */
static struct file_source_ml *
file_source_ml_find(struct file_source *fs, const struct tail_file_info *f)
{
	struct file_source_ml *e;

	for (e = fs->files; e != NULL; e = e->next)
		if (e->id.dev == f->id.dev && e->id.ino == f->id.ino && !e->released)
			return e;
	return NULL;
}

static void
file_source_release(void *ctx, const struct tail_file_info *f)
{
	struct file_source *fs = ctx;
	struct file_source_ml *e;

	if (!fs->multiline || (e = file_source_ml_find(fs, f)) == NULL)
		return;
	/* Nothing follows the last line of a released file: its event is whole. */
	e->released = true;
	file_source_ml_check(fs);
}

static void
file_source_skipped(void *ctx, const struct tail_file_info *f, uint64_t offset)
{
	struct file_source *fs = ctx;
	struct file_source_ml *e;
	struct spool_file pos;
	int r;

	/*
	 * An archive read to its end is stored as done: its last event must be
	 * in the spool first. With a full spool, the position stays that of
	 * its last event shipped, and a restart reads the archive on from there.
	 */
	if ((offset & TAIL_POS_DONE) && fs->multiline && (e = file_source_ml_find(fs, f)) != NULL &&
	    multiline_pending(&e->m)) {
		if (file_source_ml_ship(fs, e, false) != 0) {
			log_warn("source %s: %s: read to its end, but its last event waits for room in "
			    "the spool; if the agent restarts before, the archive is read again from "
			    "that event", fs->cfg->name, f->path);
			return;
		}
		spool_flush(fs->spool);
	}

	file_source_pos(f, offset, &pos);
	if ((r = spool_set_position(fs->spool, &pos)) != 0)
		log_warn("source %s: %s: cannot store its start position (%s); if the agent "
		    "restarts before the file's next line, lines in between are skipped",
		    fs->cfg->name, f->path, strerror(-r));
}

static void
file_source_flush(void *ctx)
{
	struct file_source *fs = ctx;

	spool_flush(fs->spool);
}

/*
 * Raises the soft descriptor limit to the hard one (allowed without
 * privilege), and returns how many files this source may keep open: its
 * max_open_files, but at most half the limit, the rest being for the
 * spool, connections and other sources.
 */
static size_t
file_source_max_open(const struct agent_source *cfg)
{
	size_t want = (size_t)cfg->max_open_files;
	uint64_t limit;

	if (daemon_raise_nofile(&limit) != 0)
		return want;
	if (limit != UINT64_MAX && want > limit / 2) {
		log_warn("source %s: max_open_files %zu is above half the open file limit %llu; "
		    "using %llu (raise LimitNOFILE, or ulimit -n, to keep more files open)",
		    cfg->name, want, (unsigned long long)limit, (unsigned long long)(limit / 2));
		want = limit / 2 > 0 ? (size_t)(limit / 2) : 1;
	}
	return want;
}

int
file_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct file_source **out)
{
	static const struct tail_callbacks cb_ml = {
		.position = file_source_position,
		.line = file_source_line,
		.flush = file_source_flush,
		.skipped = file_source_skipped,
		.stored = file_source_stored,
		.release = file_source_release,
	};
	struct tail_callbacks cb = cb_ml;
	struct tail_options o = { 0 };
	struct file_source *fs;
	int r;

	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return -ENOMEM;
	fs->cfg = cfg;
	fs->spool = spool;
	pipeline_init(&fs->pipe, spool, "event too large with its fields", cfg->chain);
	if ((r = source_line_init(&fs->sl, cfg, parser_type_of(cfg->format), host, cfg->max_line)) != 0) {
		free(fs);
		return r;
	}
	if (cfg->multiline.start != NULL || cfg->multiline.continuation != NULL) {
		char err[256];

		/* The config check compiled it already: this fails only without memory. */
		if ((r = multiline_rule_init(&fs->rule, cfg->multiline.start,
		    cfg->multiline.continuation, err, sizeof(err))) != 0) {
			log_error("source %s: multiline: %s", cfg->name, err);
			source_line_free(&fs->sl);
			free(fs);
			return r;
		}
		fs->multiline = true;
		uv_timer_init(loop, &fs->timer);
		fs->timer.data = fs;
	}
	o.name = cfg->name;
	o.paths = (const char *const *)cfg->paths.items;
	o.npaths = cfg->paths.n;
	o.exclude = (const char *const *)cfg->exclude.items;
	o.nexclude = cfg->exclude.n;
	o.start_at_end = cfg->start_at == START_AT_END;
	o.max_line = cfg->max_line;
	o.scan_interval_ms = cfg->scan_interval_ms;
	o.stat_interval_ms = cfg->stat_interval_ms;
	o.flush_timeout_ms = cfg->flush_timeout_ms;
	o.max_files = file_source_max_open(cfg);
	o.close_inactive_ms = cfg->close_inactive_ms;
	/* Without multiline, a line goes straight to its event: one call less per line. */
	if (!fs->multiline)
		cb.line = file_source_line_single;
	if ((r = tail_start(loop, &o, &cb, fs, &fs->tail)) != 0) {
		log_error("source %s: cannot start following files: %s", cfg->name, strerror(-r));
		if (fs->multiline) {
			/* The timer is not started yet: closing it takes one loop turn, free then. */
			fs->done = NULL;
			uv_close((uv_handle_t *)&fs->timer, file_source_closed);
			return r;
		}
		source_line_free(&fs->sl);
		free(fs);
		return r;
	}
	*out = fs;
	return 0;
}

void
file_source_resume(struct file_source *fs)
{
	if (fs->multiline)
		file_source_ml_check(fs);
	tail_resume(fs->tail);
}

void
file_source_get_stats(const struct file_source *fs, struct file_source_stats *st)
{
	tail_get_stats(fs->tail, &st->tail);
	st->parse_errors = fs->sl.parse_errors;
	st->fields_dropped = fs->pipe.fields_dropped;
	st->dropped_unspoolable = fs->pipe.dropped;
	st->multiline_events = fs->ml_st.events;
	st->multiline_flushed = fs->ml_st.flushed;
	st->multiline_truncated = fs->ml_st.truncated;
}

static void
file_source_free(struct file_source *fs)
{
	void (*done)(void *) = fs->done;
	void *done_ctx = fs->done_ctx;
	struct file_source_ml *e;

	/* Events still gathered were not committed: the next start reads their lines again. */
	while ((e = fs->files) != NULL) {
		fs->files = e->next;
		file_source_ml_free(e);
	}
	if (fs->multiline)
		multiline_rule_free(&fs->rule);
	source_line_free(&fs->sl);
	free(fs);
	if (done != NULL)
		done(done_ctx);
}

static void
file_source_closed(uv_handle_t *h)
{
	file_source_free(h->data);
}

static void
file_source_stopped(void *ctx)
{
	struct file_source *fs = ctx;

	if (fs->multiline)
		uv_close((uv_handle_t *)&fs->timer, file_source_closed);
	else
		file_source_free(fs);
}

void
file_source_stop(struct file_source *fs, void (*done)(void *ctx), void *ctx)
{
	fs->done = done;
	fs->done_ctx = ctx;
	tail_stop(fs->tail, file_source_stopped, fs);
}

/* ---------------------------------------------------------------- its type */

#define FILE_F(name, type, member, help) \
	{ "logferry_file_" name, type, help, offsetof(struct file_source_stats, member) }
static const struct metrics_field file_source_fields[] = {
	FILE_F("lines_total", "counter", tail.lines,
	    "Lines read (each piece of a split line counts)."),
	FILE_F("bytes_total", "counter", tail.bytes, "Bytes read, newlines included."),
	FILE_F("files_open", "gauge", tail.files_open, "Files with an open descriptor now."),
	FILE_F("files_seen_total", "counter", tail.files_seen, "Files opened since the start."),
	FILE_F("files_waiting", "gauge", tail.files_waiting,
	    "Files matched but waiting for a descriptor at the last scan (max_open_files)."),
	FILE_F("rotations_total", "counter", tail.rotations,
	    "Renamed or deleted files read to their end and released."),
	FILE_F("truncations_total", "counter", tail.truncations,
	    "Files truncated (copytruncate) and read again from the start."),
	FILE_F("split_lines_total", "counter", tail.split_lines, "Lines longer than max_line."),
	FILE_F("partial_lines_total", "counter", tail.partial_lines,
	    "Last lines sent without a newline after flush_timeout."),
	FILE_F("errors_total", "counter", tail.errors, "open, read and stat failures."),
	FILE_F("archives_total", "counter", tail.archives_done,
	    "Compressed files (gzip, zstd) read to their end, or to their damage."),
	FILE_F("archive_errors_total", "counter", tail.archive_errors,
	    "Compressed files that ended at damage (corrupt or truncated); see the log."),
	FILE_F("files_reading", "gauge", tail.files_reading,
	    "Files with bytes not read yet (0: every matching file is read to its end)."),
	FILE_F("parse_errors_total", "counter", parse_errors,
	    "Lines spooled with a parse_error field."),
	FILE_F("fields_dropped_total", "counter", fields_dropped,
	    "Lines spooled without their fields: too large with them."),
	FILE_F("dropped_total", "counter", dropped_unspoolable,
	    "Lines the spool refused even without fields; skipped."),
	MULTILINE_METRICS(FILE_F, multiline_events, multiline_flushed, multiline_truncated),
};

static uint64_t
file_source_max_message(const struct agent_source *cfg)
{
	bool ml = cfg->multiline.start != NULL || cfg->multiline.continuation != NULL;

	return ml && cfg->multiline.max_bytes > cfg->max_line ? cfg->multiline.max_bytes :
	    cfg->max_line;
}

static int
file_source_type_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct budget *budget, void **out)
{
	(void)budget;
	return file_source_start(loop, cfg, host, spool, (struct file_source **)out);
}

static void
file_source_type_resume(void *src)
{
	file_source_resume(src);
}

static void
file_source_type_stop(void *src, void (*done)(void *ctx), void *ctx)
{
	file_source_stop(src, done, ctx);
}

static void
file_source_type_stats(const void *src, void *st)
{
	file_source_get_stats(src, st);
}

const struct source_type file_source_type = {
	.name = "file",
	.resumes_from_spool = true,
	.max_message = file_source_max_message,
	.start = file_source_type_start,
	.resume = file_source_type_resume,
	.stop = file_source_type_stop,
	.stats = file_source_type_stats,
	.stats_size = sizeof(struct file_source_stats),
	.fields = METRICS_FIELDS(file_source_fields),
};
