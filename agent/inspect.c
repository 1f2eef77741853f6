/* SPDX-License-Identifier: Apache-2.0 */
/* inspect: --spool-stats and --spool-dump (see inspect.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/decompress.h"
#include "agent/inspect.h"
#include "agent/spool.h"
#include "agent/tail.h"
#include "common/daemon.h"
#include "common/jsonw.h"
#include "proto/event_json.h"

struct inspect_totals {
	uint64_t events, segments, raw, packed, oldest, newest, first_seq;
};

static int
inspect_count(void *ctx, const struct spool_segment *seg)
{
	struct inspect_totals *t = ctx;

	if (t->segments == 0)
		t->first_seq = seg->first_seq;
	t->events += seg->events;
	t->segments++;
	t->raw += seg->uncompressed;
	t->packed += seg->payload_len;
	if (seg->ts_oldest != 0 && (t->oldest == 0 || seg->ts_oldest < t->oldest))
		t->oldest = seg->ts_oldest;
	if (seg->ts_newest > t->newest)
		t->newest = seg->ts_newest;
	return 0;
}

/* The compression of the file at path, from its magic bytes (plain when it cannot be read). */
static enum decompress_format
inspect_format(const char *path)
{
	uint8_t head[4];
	ssize_t n = 0;
	FILE *in;

	if ((in = fopen(path, "rb")) != NULL) {
		n = (ssize_t)fread(head, 1, sizeof(head), in);
		(void)fclose(in);
	}
	return decompress_detect(head, n > 0 ? (size_t)n : 0);
}

static int
inspect_file(void *ctx, const struct spool_file *f)
{
	FILE *out = ctx;
	struct stat st;
	enum decompress_format fmt;

	if (f->offset & TAIL_POS_DONE) {
		fprintf(out, "  %s: archive read to its end, %" PRIu64 " bytes decompressed [dev %"
		    PRIu64 " inode %" PRIu64 "]\n", f->path, f->offset & ~TAIL_POS_DONE, f->dev,
		    f->ino);
		return 0;
	}
	if ((fmt = inspect_format(f->path)) != DECOMPRESS_NONE) {
		fprintf(out, "  %s: %s archive being read, offset %" PRIu64 " of its decompressed "
		    "bytes [dev %" PRIu64 " inode %" PRIu64 "]\n", f->path,
		    decompress_format_name(fmt), f->offset, f->dev, f->ino);
		return 0;
	}
	fprintf(out, "  %s: offset %" PRIu64, f->path, f->offset);
	if (stat(f->path, &st) == 0 && (uint64_t)st.st_dev == f->dev &&
	    (uint64_t)st.st_ino == f->ino)
		fprintf(out, ", size %jd, %" PRIu64 " bytes to read", (intmax_t)st.st_size,
		    (uint64_t)st.st_size > f->offset ? (uint64_t)st.st_size - f->offset : 0);
	else
		fprintf(out, " (no longer at this path)");
	fprintf(out, " [dev %" PRIu64 " inode %" PRIu64 "]\n", f->dev, f->ino);
	return 0;
}

static int
inspect_cursor(void *ctx, const char *name, const char *cursor)
{
	fprintf(ctx, "  %s: %s\n", name, cursor);
	return 0;
}

/* Opens the configured spool read-only; prints why not. */
static int
inspect_open(const struct agent_config *cfg, char *dir, size_t len, struct spool_view **v)
{
	int r;

	if (agent_spool_dir(cfg, dir, len) != 0) {
		fprintf(stderr, "data_dir %s: path too long\n", cfg->data_dir);
		return -ENAMETOOLONG;
	}
	if ((r = spool_view_open(dir, v)) == -ENOENT)
		fprintf(stderr, "no spool in %s: the agent has not run with this data_dir yet\n", dir);
	else if (r == -EBADMSG)
		fprintf(stderr, "the spool in %s is damaged (see the message above): nothing read\n",
		    dir);
	else if (r != 0)
		fprintf(stderr, "cannot read the spool in %s (see the message above)\n", dir);
	return r;
}

static void
inspect_time(FILE *out, const char *what, uint64_t ns)
{
	struct buf b;

	buf_init(&b, 64);
	if (ns != 0 && jsonw_time(&b, ns) == 0)
		fprintf(out, "%s: %.*s\n", what, (int)b.len - 2, (const char *)b.data + 1);
	else
		fprintf(out, "%s: -\n", what);
	buf_free(&b);
}

int
inspect_stats(const struct agent_config *cfg, FILE *out)
{
	struct inspect_totals t = { 0 };
	struct spool_view *v;
	char dir[PATH_MAX];
	const char *why;
	uint64_t used, size;
	int r;

	if (inspect_open(cfg, dir, sizeof(dir), &v) != 0)
		return DAEMON_EXIT_FAILURE;
	if ((r = spool_view_segments(v, 0, inspect_count, &t, &why)) != 0) {
		fprintf(stderr, "spool %s: %s\n", dir, why != NULL ? why : "cannot be read");
		spool_view_close(v);
		return DAEMON_EXIT_FAILURE;
	}
	if (spool_view_usage(v, &used, &size) != 0) {
		fprintf(stderr, "spool %s: cannot read its usage (see the message above)\n", dir);
		spool_view_close(v);
		return DAEMON_EXIT_FAILURE;
	}
	fprintf(out, "spool: %s\n", dir);
	fprintf(out, "events: %" PRIu64 "\n", t.events);
	fprintf(out, "segments: %" PRIu64 "\n", t.segments);
	fprintf(out, "first sequence: %" PRIu64 "\n", t.segments != 0 ? t.first_seq : 0);
	fprintf(out, "next sequence: %" PRIu64 "\n", spool_view_next_seq(v));
	fprintf(out, "bytes: %" PRIu64 " uncompressed, %" PRIu64 " compressed\n", t.raw, t.packed);
	fprintf(out, "disk: %" PRIu64 " bytes used of %" PRIu64 " (spool.max_size), file %" PRIu64
	    " bytes\n", used, cfg->spool.max_size, size);
	inspect_time(out, "oldest event", t.oldest);
	inspect_time(out, "newest event", t.newest);
	fprintf(out, "moved aside: %" PRIu64 "\n", spool_view_moved_aside(v));
	fprintf(out, "damaged segments deleted: %" PRIu64 "\n", spool_view_segments_damaged(v));
	fprintf(out, "files:\n");
	spool_view_files(v, inspect_file, out);
	fprintf(out, "journal cursors:\n");
	spool_view_cursors(v, inspect_cursor, out);
	spool_view_close(v);
	return DAEMON_EXIT_OK;
}

struct inspect_dumper {
	FILE *out;
	const char *agent;
	struct buf raw, line;
	struct event_field fields[256];
	const char *why;
	uint64_t damaged;             /* segments skipped */
};

static int
inspect_dump_segment(void *ctx, const struct spool_segment *seg)
{
	struct inspect_dumper *d = ctx;
	struct event_reader er;
	struct event ev;
	uint64_t seq = seg->first_seq;
	char extra[40];
	int r;

	if (spool_segment_decompress(seg, &d->raw) != 0) {
		/* One damaged segment: say so, and show the others. */
		fprintf(stderr, "segment %" PRIu64 " (%" PRIu32 " events) is damaged: it does not "
		    "decompress; skipped\n", seg->first_seq, seg->events);
		d->damaged++;
		return 0;
	}
	event_reader_init(&er, d->raw.data, d->raw.len, d->fields, 256);
	while ((r = event_reader_next(&er, &ev)) == 1) {
		buf_reset(&d->line);
		snprintf(extra, sizeof(extra), "\"seq\":%" PRIu64, seq++);
		if (event_json(&ev, d->agent, extra, &d->line) != 0 ||
		    buf_append(&d->line, "\n", 1) != 0) {
			d->why = "out of memory";
			return -ENOMEM;
		}
		if (fwrite(d->line.data, 1, d->line.len, d->out) != d->line.len)
			return -EIO;
	}
	if (r != 0) {
		d->why = er.why;
		return -EIO;
	}
	return 0;
}

int
inspect_dump(const struct agent_config *cfg, FILE *out)
{
	struct inspect_dumper d = { .out = out, .agent = cfg->id };
	struct spool_view *v;
	char dir[PATH_MAX];
	const char *why = NULL;
	int r;

	if (inspect_open(cfg, dir, sizeof(dir), &v) != 0)
		return DAEMON_EXIT_FAILURE;
	buf_init(&d.raw, SIZE_MAX);
	buf_init(&d.line, SIZE_MAX);
	r = spool_view_segments(v, 0, inspect_dump_segment, &d, &why);
	spool_view_close(v);
	buf_free(&d.raw);
	buf_free(&d.line);
	if (fflush(out) != 0 || r != 0) {
		fprintf(stderr, "spool %s: dump stopped: %s\n", dir,
		    d.why != NULL ? d.why : why != NULL ? why : strerror(r < 0 ? -r : EIO));
		return DAEMON_EXIT_FAILURE;
	}
	if (d.damaged != 0) {
		fprintf(stderr, "spool %s: %" PRIu64 " damaged segment(s) skipped\n", dir, d.damaged);
		return DAEMON_EXIT_FAILURE;
	}
	return DAEMON_EXIT_OK;
}

int
inspect_stats_command(const char *config_file, void *config)
{
	(void)config_file;
	return inspect_stats(config, stdout);
}

int
inspect_dump_command(const char *config_file, void *config)
{
	(void)config_file;
	return inspect_dump(config, stdout);
}
