/* SPDX-License-Identifier: Apache-2.0 */
/* file_source: tail -> parse -> spool for one file source (see file_source.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/file_source.h"
#include "agent/pipeline.h"
#include "agent/source.h"
#include "agent/tail.h"
#include "common/log.h"

struct file_source {
	const struct agent_source *cfg;
	struct spool *spool;
	struct pipeline pipe;
	struct tail *tail;
	struct source_line sl;
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
}

static int
file_source_line(void *ctx, const struct tail_file_info *f, const uint8_t *line, size_t len,
    unsigned flags, uint64_t end_offset)
{
	struct file_source *fs = ctx;
	struct spool_file pos;
	struct event ev;
	unsigned marks = 0;
	int r;

	if (flags & TAIL_LINE_PARTIAL)
		marks |= SOURCE_PARTIAL;
	if (f->piece != NULL) {
		struct source_piece pc = { .id = f->piece->id, .index = f->piece->index,
		    .count = f->piece->count };

		source_line_piece(&fs->sl, line, len, &pc, marks, source_now_ns(), f->path, &ev);
	} else {
		source_line_event(&fs->sl, line, len, marks, source_now_ns(), f->path, &ev);
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

static void
file_source_skipped(void *ctx, const struct tail_file_info *f, uint64_t offset)
{
	struct file_source *fs = ctx;
	struct spool_file pos;
	int r;

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
	struct rlimit rl;
	size_t want = (size_t)cfg->max_open_files;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("raised the open file limit from %llu to %llu", (unsigned long long)was,
			    (unsigned long long)rl.rlim_cur);
		else if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
			return want;
	}
	if (rl.rlim_cur != RLIM_INFINITY && want > rl.rlim_cur / 2) {
		log_warn("source %s: max_open_files %zu is above half the open file limit %llu; "
		    "using %llu (raise LimitNOFILE, or ulimit -n, to keep more files open)",
		    cfg->name, want, (unsigned long long)rl.rlim_cur,
		    (unsigned long long)(rl.rlim_cur / 2));
		want = rl.rlim_cur / 2 > 0 ? (size_t)(rl.rlim_cur / 2) : 1;
	}
	return want;
}

int
file_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct file_source **out)
{
	static const struct tail_callbacks cb = {
		.position = file_source_position,
		.line = file_source_line,
		.flush = file_source_flush,
		.skipped = file_source_skipped,
		.stored = file_source_stored,
	};
	struct tail_options o = { 0 };
	struct file_source *fs;
	int r;

	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return -ENOMEM;
	fs->cfg = cfg;
	fs->spool = spool;
	pipeline_init(&fs->pipe, spool, "event too large with its fields");
	if ((r = source_line_init(&fs->sl, cfg, parser_type_of(cfg), host, cfg->max_line)) != 0) {
		free(fs);
		return r;
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
	if ((r = tail_start(loop, &o, &cb, fs, &fs->tail)) != 0) {
		log_error("source %s: cannot start following files: %s", cfg->name, strerror(-r));
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
	tail_resume(fs->tail);
}

void
file_source_get_stats(const struct file_source *fs, struct file_source_stats *st)
{
	tail_get_stats(fs->tail, &st->tail);
	st->parse_errors = fs->sl.parse_errors;
	st->fields_dropped = fs->pipe.fields_dropped;
	st->dropped_unspoolable = fs->pipe.dropped;
}

static void
file_source_stopped(void *ctx)
{
	struct file_source *fs = ctx;
	void (*done)(void *) = fs->done;
	void *done_ctx = fs->done_ctx;

	source_line_free(&fs->sl);
	free(fs);
	if (done != NULL)
		done(done_ctx);
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
};

static uint64_t
file_source_max_message(const struct agent_source *cfg)
{
	return cfg->max_line;
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
