/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tail: follows the files of one `file` source (see tail.h).
 *
 * Every open file is in one state (enum tail_fstate), changed only by
 * tail_file_set_state, which also keeps the file in the queue its state
 * implies: READY files wait in t->ready for a turn of reads, WAITING files
 * (at their end, with a partial last line or a release ahead) in
 * t->waiting with a deadline, PAUSED files in t->paused for tail_resume.
 * IDLE files are in no queue: they are read to their end, and only an
 * inotify event or the stat timer seeing a change makes them READY again,
 * so nothing polls a quiet file.
 *
 * Handles: the tail owns three timers (scan, stat, wake) and an idle handle
 * (which runs the turns of reads while files are READY); each file owns an
 * fs_event handle and is freed in that handle's close callback, so a file
 * pointer stays valid until the loop's close phase, whatever a callback
 * does. The tail is freed after the last close callback once stopping.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/decompress.h"
#include "agent/tail.h"
#include "common/log.h"
#include "proto/event.h"

#define TAIL_DEFAULT_QUANTUM      (256 * 1024)
#define TAIL_DEFAULT_ROTATE_WAIT  5000
#define TAIL_DEFAULT_MAX_FILES    1024
#define TAIL_DEFAULT_CLOSE_INACTIVE (5 * 60 * 1000)
#define TAIL_WARN_INTERVAL        (60 * 1000)   /* between two "files wait" warnings */
#define TAIL_STARVED_SCAN         50            /* ms: a scan soon after a descriptor frees */
#define TAIL_HASH_MIN             64
#define TAIL_SCAN_BUF             (64 * 1024)
#define TAIL_LOOKAHEAD            (16 * 1024 * 1024)   /* per turn, for a long line's newline */
#define TAIL_DECODERS             2             /* compressed files decompressed at a time */

/* tail_file_lines: a long line without its newline yet, or still being looked through. */
#define TAIL_LINES_WAIT  1
#define TAIL_LINES_LATER 2

#define TAIL_FNV_BASIS UINT64_C(0xcbf29ce484222325)
#define TAIL_FNV_PRIME UINT64_C(0x100000001b3)

enum tail_fstate {
	TAIL_F_IDLE,      /* read to its end; waits for an event or a stat tick: in t->idlers */
	TAIL_F_READY,     /* bytes to read or a change to check: in t->ready */
	TAIL_F_WAITING,   /* at its end with a deadline: in t->waiting */
	TAIL_F_PAUSED,    /* a line callback said -EAGAIN: in t->paused */
	TAIL_F_CLOSED,    /* released or stopped; freed by its handle's close callback */
	TAIL_F_SHUT,      /* read to its end, descriptor closed: known by identity, reopened
	                     when a scan sees it change */
	TAIL_F_NSTATES
};

static const char *const tail_fstate_names[TAIL_F_NSTATES] = {
	[TAIL_F_IDLE] = "idle",
	[TAIL_F_READY] = "ready",
	[TAIL_F_WAITING] = "waiting",
	[TAIL_F_PAUSED] = "paused",
	[TAIL_F_CLOSED] = "closed",
	[TAIL_F_SHUT] = "shut",
};

TAILQ_HEAD(tail_fileq, tail_file);

/*
 * A directory that holds (or, for a glob whose directory part is literal,
 * will hold) matching files, watched on the tail's own inotify descriptor
 * (libuv's fs_event gives no rename cookies): its events bring a file
 * created or renamed into a matching name at once, and follow it when it is
 * renamed out of the globs before the events are read.
 */
struct tail_dir {
	LIST_ENTRY(tail_dir) link;
	int wd;
	char *path;
};

/*
 * A name seen by one read of inotify events whose file is looked at once
 * the events are read: created under (or renamed into) a matching name,
 * then perhaps renamed again (moving: IN_MOVED_FROM seen, its IN_MOVED_TO
 * not yet).
 */
struct tail_pending {
	struct tail_dir *d;
	char name[NAME_MAX + 1];
	uint32_t cookie;
	bool moving;
	bool carried;   /* moving when the names were looked at: kept once for its IN_MOVED_TO */
};

/* Names kept while inotify events are read; when more come, these are looked at first. */
#define TAIL_PENDING_MAX 256
#define TAIL_DIR_EVENTS (IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF | \
    IN_MOVE_SELF | IN_ONLYDIR)

/* How tail_file_open starts a file. */
enum tail_open {
	TAIL_OPEN_MATCH,      /* under a matching name */
	TAIL_OPEN_STOPPED,    /* renamed out of the globs while the agent was stopped:
	                         only from its stored position, then to its end */
	TAIL_OPEN_ROTATED,    /* renamed out of the globs before it was opened: from its
	                         stored position or its start, to its end */
};

/* A stored position whose file no longer has its stored name (tail_find_renamed). */
struct tail_renamed {
	uint64_t dev, ino;
	char *dir;
};

struct tail_file {
	struct tail *t;
	struct tail_file *hnext;          /* chain of t->buckets, by (dev, ino) */
	TAILQ_ENTRY(tail_file) link;      /* t->files: every open file */
	TAILQ_ENTRY(tail_file) qlink;     /* t->ready, t->waiting or t->paused, by state */
	uv_fs_event_t ev;
	struct tail_file_info info;       /* info.path == path */
	char *path;
	int fd;
	enum tail_fstate state;
	uint64_t seed;                    /* FNV basis of the fingerprint: from the birth time */
	uint64_t pos;                     /* first byte not consumed */
	uint64_t size;                    /* st_size at the last check */
	struct timespec mtime;            /* st_mtim at the last check */
	uint64_t changed_ms;              /* loop time of the last change seen */
	uint64_t due_ms;                  /* TAIL_F_WAITING: when to look again */
	uint64_t seen_gen;                /* last scan that found it under a matching path */
	bool changed;                     /* an event came: check it before reading */
	bool gone;                        /* no matching path names it any more */
	bool deleted;                     /* st_nlink == 0 */
	struct tail_piece split;          /* the split line being handed over (count 0: none) */
	uint64_t nl_start, nl_clear;      /* bytes [nl_start, +nl_clear) hold no newline */
	bool failed;                      /* a read failed: tried again at the next scan */
	enum decompress_format fmt;       /* not DECOMPRESS_NONE: an archive (positions count
	                                     decompressed bytes; size stays the file's own) */
	struct decompress *dec;           /* while an archive is being read */
	bool dec_wait;                    /* PAUSED until a decoder is free (TAIL_DECODERS) */
	bool archive_done;                /* read to its end: never read again */
	bool sniffed;                     /* its first bytes said it is no archive */
};

struct tail {
	uv_loop_t *loop;
	struct tail_options o;            /* defaults applied; strings below */
	char *name;
	char **paths;
	char **exclude;
	struct tail_callbacks cb;
	void *ctx;

	uv_timer_t scan_timer;
	uv_timer_t stat_timer;
	uv_timer_t wake_timer;            /* the earliest deadline of t->waiting */
	uv_idle_t idle;                   /* runs turns while t->ready is not empty */
	uint64_t wake_due;

	/* The one read buffer: max(read_quantum, max_line + 1) bytes. */
	uint8_t *buf;
	size_t bufsize;
	uint8_t *scanbuf;                 /* TAIL_SCAN_BUF bytes: looking ahead for a newline */

	struct tail_file **buckets;
	size_t nbuckets;                  /* a power of two */
	struct tail_fileq files, ready, waiting, paused;
	struct tail_fileq idlers;         /* IDLE files, the longest idle first */
	size_t nfiles, nready;
	size_t nopen;                     /* files with a descriptor: at most o.max_files */
	size_t nshut;
	size_t ndec;                      /* archives with a decoder: at most TAIL_DECODERS */
	uint64_t warned_ms;               /* when "files wait" was last logged */
	LIST_HEAD(, tail_dir) dirs;
	int ino_fd;                       /* -1: directories are not watched */
	uv_poll_t ino_poll;
	struct tail_pending *pend;        /* TAIL_PENDING_MAX */
	size_t npend;
	bool pend_overflow;

	uint64_t gen;                     /* scans so far */
	uint64_t resume_gen;              /* tail_resume calls so far */
	bool first_scan;
	bool starved;                     /* files wait for a descriptor (max_files) */
	bool starved_scan;                /* a scan is due for them */
	bool unflushed;                   /* lines consumed since the last flush */
	bool stopping;
	unsigned closing;                 /* close callbacks to come */
	void (*done)(void *ctx);
	void *done_ctx;

	struct tail_stats st;
};

static void tail_idle_cb(uv_idle_t *h);
static void tail_wake_cb(uv_timer_t *h);
static void tail_scan_cb(uv_timer_t *h);
static void tail_file_read_failed(struct tail *t, struct tail_file *f, int err);
static void tail_event_cb(uv_fs_event_t *h, const char *filename, int events, int status);
static void tail_file_shut(struct tail *t, struct tail_file *f);
static void tail_archive_turn(struct tail *t, struct tail_file *f);
static void tail_pending_run(struct tail *t);

static uint64_t
tail_fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= TAIL_FNV_PRIME;
	}
	return h;
}

static uint64_t
tail_add_ms(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/*
 * Reads up to len bytes at off. Returns the bytes read (fewer than len only
 * at the end of the file) or a negative errno. A short read of a regular
 * file means its end, so there is no second read to see 0.
 */
static ssize_t
tail_pread(int fd, uint8_t *p, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pread(fd, p, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/*
 * Reads f's bytes at off: its own, or, for an archive, its decompressed
 * ones (the bytes from f->pos on may be read again). Returns tail_pread's
 * values, or -EINPROGRESS when an archive's decompression has not reached
 * off yet (this turn's work is done: go on at the next one).
 */
static ssize_t
tail_file_pread(const struct tail_file *f, uint8_t *p, size_t len, uint64_t off)
{
	if (f->dec != NULL)
		return decompress_pread(f->dec, p, len, off, f->pos);
	return tail_pread(f->fd, p, len, off);
}

/*
 * The FNV basis of the fingerprint of the file open on fd: the basis mixed
 * with the file's birth time, so that a new file that reuses an inode and
 * begins with the old file's bytes is still another file. Where the file
 * system keeps no birth time, the plain basis: the content is all there is.
 */
static uint64_t
tail_seed(int fd)
{
	struct statx stx;
	uint8_t b[12];
	size_t i;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_BTIME, &stx) != 0 ||
	    !(stx.stx_mask & STATX_BTIME))
		return TAIL_FNV_BASIS;
	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)stx.stx_btime.tv_sec >> (8 * i));
	for (i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(stx.stx_btime.tv_nsec >> (8 * i));
	return tail_fnv(TAIL_FNV_BASIS, b, sizeof(b));
}

/* ---------------------------------------------------------------- states */

static bool
tail_fstate_allowed(enum tail_fstate from, enum tail_fstate to)
{
	switch (from) {
	case TAIL_F_IDLE:
		return to == TAIL_F_READY || to == TAIL_F_CLOSED || to == TAIL_F_SHUT;
	case TAIL_F_SHUT:
		return to == TAIL_F_READY || to == TAIL_F_IDLE || to == TAIL_F_CLOSED;
	case TAIL_F_READY:
	case TAIL_F_WAITING:
		return to != TAIL_F_NSTATES;
	case TAIL_F_PAUSED:
		return to == TAIL_F_READY || to == TAIL_F_CLOSED;
	default:
		return false;
	}
}

static void
tail_wake_arm(struct tail *t, uint64_t due)
{
	uint64_t now = uv_now(t->loop);

	if (uv_is_active((uv_handle_t *)&t->wake_timer) && due >= t->wake_due)
		return;
	t->wake_due = due;
	uv_timer_start(&t->wake_timer, tail_wake_cb, due > now ? due - now : 0, 0);
}

/*
 * Moves f to state `to` and to the queue of that state; READY to READY
 * moves it to the back of t->ready. For TAIL_F_WAITING, f->due_ms must be
 * set first. An illegal change is a bug: abort.
 */
static void
tail_file_set_state(struct tail_file *f, enum tail_fstate to)
{
	struct tail *t = f->t;

	if (!tail_fstate_allowed(f->state, to)) {
		log_error("tail %s: %s: illegal state change %s -> %s", t->name, f->path,
		    tail_fstate_names[f->state], tail_fstate_names[to]);
		abort();
	}
	switch (f->state) {
	case TAIL_F_READY:
		TAILQ_REMOVE(&t->ready, f, qlink);
		t->nready--;
		break;
	case TAIL_F_WAITING:
		TAILQ_REMOVE(&t->waiting, f, qlink);
		break;
	case TAIL_F_PAUSED:
		TAILQ_REMOVE(&t->paused, f, qlink);
		break;
	case TAIL_F_IDLE:
		TAILQ_REMOVE(&t->idlers, f, qlink);
		break;
	case TAIL_F_SHUT:
		t->nshut--;
		break;
	default:
		break;
	}
	f->state = to;
	switch (to) {
	case TAIL_F_READY:
		TAILQ_INSERT_TAIL(&t->ready, f, qlink);
		t->nready++;
		uv_idle_start(&t->idle, tail_idle_cb);
		break;
	case TAIL_F_WAITING:
		TAILQ_INSERT_TAIL(&t->waiting, f, qlink);
		tail_wake_arm(t, f->due_ms);
		break;
	case TAIL_F_PAUSED:
		TAILQ_INSERT_TAIL(&t->paused, f, qlink);
		break;
	case TAIL_F_IDLE:
		TAILQ_INSERT_TAIL(&t->idlers, f, qlink);
		break;
	case TAIL_F_SHUT:
		t->nshut++;
		break;
	default:
		break;
	}
}

/* Something may have changed in f: look at it on the next turn. */
static void
tail_file_poke(struct tail_file *f)
{
	f->changed = true;
	if (f->state == TAIL_F_IDLE || f->state == TAIL_F_WAITING)
		tail_file_set_state(f, TAIL_F_READY);
}

/* ---------------------------------------------------------------- files by identity */

static size_t
tail_bucket(const struct tail *t, uint64_t dev, uint64_t ino)
{
	uint64_t h = (ino ^ (dev << 32 | dev >> 32)) * UINT64_C(0x9E3779B97F4A7C15);

	return (size_t)(h >> 32) & (t->nbuckets - 1);
}

static struct tail_file *
tail_lookup(const struct tail *t, uint64_t dev, uint64_t ino)
{
	struct tail_file *f;

	for (f = t->buckets[tail_bucket(t, dev, ino)]; f != NULL; f = f->hnext)
		if (f->info.id.dev == dev && f->info.id.ino == ino)
			return f;
	return NULL;
}

static void
tail_hash_insert(struct tail *t, struct tail_file *f)
{
	struct tail_file **nb, **old = t->buckets, *g, *next;
	size_t oldn = t->nbuckets, i, b;

	/* Keep chains short; if the bigger table cannot be had, longer chains still work. */
	if (t->nfiles >= t->nbuckets && (nb = calloc(oldn * 2, sizeof(*nb))) != NULL) {
		t->buckets = nb;
		t->nbuckets = oldn * 2;
		for (i = 0; i < oldn; i++) {
			for (g = old[i]; g != NULL; g = next) {
				next = g->hnext;
				b = tail_bucket(t, g->info.id.dev, g->info.id.ino);
				g->hnext = nb[b];
				nb[b] = g;
			}
		}
		free(old);
	}
	b = tail_bucket(t, f->info.id.dev, f->info.id.ino);
	f->hnext = t->buckets[b];
	t->buckets[b] = f;
}

static void
tail_hash_remove(struct tail *t, struct tail_file *f)
{
	struct tail_file **pp = &t->buckets[tail_bucket(t, f->info.id.dev, f->info.id.ino)];

	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
}

/*
 * Whether path names f: 1 yes, 0 no (it names another file, or nothing), -1
 * cannot tell (e.g. a directory on the way cannot be searched just now).
 */
static int
tail_path_names(const char *path, const struct tail_file *f)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	return (uint64_t)st.st_dev == f->info.id.dev && (uint64_t)st.st_ino == f->info.id.ino;
}

/* ---------------------------------------------------------------- closing */

static void
tail_finish(struct tail *t)
{
	void (*done)(void *) = t->done;
	void *ctx = t->done_ctx;
	size_t i;

	/* Also called on a tail_start that failed half-way: arrays may be missing. */
	for (i = 0; t->paths != NULL && i < t->o.npaths; i++)
		free(t->paths[i]);
	for (i = 0; t->exclude != NULL && i < t->o.nexclude; i++)
		free(t->exclude[i]);
	free(t->paths);
	free(t->exclude);
	free(t->name);
	free(t->buf);
	free(t->scanbuf);
	free(t->pend);
	free(t->buckets);
	if (t->ino_fd >= 0)
		(void)close(t->ino_fd);
	free(t);
	if (done != NULL)
		done(ctx);
}

static void
tail_closed(struct tail *t)
{
	if (--t->closing == 0 && t->stopping)
		tail_finish(t);
}

static void
tail_handle_closed(uv_handle_t *h)
{
	tail_closed(h->data);
}

static void
tail_file_closed(uv_handle_t *h)
{
	struct tail_file *f = h->data;
	struct tail *t = f->t;

	free(f->path);
	free(f);
	tail_closed(t);
}

/* Forgets f: no callback is made; its memory goes in the close callback. */
static void
tail_file_close(struct tail *t, struct tail_file *f)
{
	tail_file_set_state(f, TAIL_F_CLOSED);
	tail_hash_remove(t, f);
	TAILQ_REMOVE(&t->files, f, link);
	t->nfiles--;
	if (f->fd >= 0) {
		(void)close(f->fd);
		t->nopen--;
	}
	f->fd = -1;
	if (f->dec != NULL) {
		decompress_free(f->dec);
		f->dec = NULL;
		t->ndec--;
	}
	t->closing++;
	uv_close((uv_handle_t *)&f->ev, tail_file_closed);
}

/* ---------------------------------------------------------------- handing over */

static void
tail_flush(struct tail *t)
{
	t->unflushed = false;
	if (t->cb.flush != NULL)
		t->cb.flush(t->ctx);
}

/* Whether the line at f->pos is the next piece of f's split line. */
static bool
tail_in_split(const struct tail *t, const struct tail_file *f)
{
	return f->split.count > 0 &&
	    f->pos == f->split.start + (uint64_t)f->split.index * t->o.max_line;
}

/* The line at f->pos is handed over in count pieces. */
static void
tail_split_begin(struct tail_file *f, uint64_t count)
{
	const struct tail_id *id = &f->info.id;

	snprintf(f->split.id, sizeof(f->split.id), "%" PRIx64 ":%" PRIx64 ":%016" PRIx64 ":%" PRIu64,
	    id->dev, id->ino, id->fp_hash, f->pos);
	f->split.start = f->pos;
	f->split.index = 0;
	f->split.count = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
}

/*
 * f's info.read_ns: the time its lines' bytes were read, taken once per
 * read buffer (per line, the clock was about 25 instructions of each,
 * callgrind); the coarse clock is a few ms behind at worst.
 */
static void
tail_file_read_now(struct tail_file *f)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	f->info.read_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Hands one line (or piece) at f->pos to the caller; adv is the bytes it
 * covers in the file. Returns 0 when it was consumed, -EAGAIN when f stopped
 * (paused, or to be read again), or -ECANCELED when the tail was stopped.
 * Inlined into its two callers: the call was about 30 instructions per
 * line (callgrind).
 */
static inline __attribute__((always_inline)) int
tail_emit(struct tail *t, struct tail_file *f, const uint8_t *p, size_t len, unsigned flags,
    size_t adv)
{
	uint64_t gen = t->resume_gen;
	bool piece = tail_in_split(t, f);
	int r;

	if (!piece)
		f->split.count = 0;
	f->info.piece = piece ? &f->split : NULL;
	r = t->cb.line(t->ctx, &f->info, p, len, flags, f->pos + adv);
	f->info.piece = NULL;
	if (t->stopping)
		return -ECANCELED;
	if (r != 0) {
		/* A tail_resume during the callback cancels the pause it announces. */
		tail_file_set_state(f, t->resume_gen != gen ? TAIL_F_READY : TAIL_F_PAUSED);
		return -EAGAIN;
	}
	f->pos += adv;
	t->unflushed = true;
	t->st.lines++;
	t->st.bytes += adv;
	if (piece) {
		if (f->split.index == 0)
			t->st.split_lines++;
		if (++f->split.index >= f->split.count)
			f->split.count = 0;
	}
	return 0;
}

/*
 * Looks for the newline of the line at f->pos, whose first max_line + 1
 * bytes hold none, through t->scanbuf (t->buf holds the line). Returns 0
 * with *len the line's length, TAIL_LINES_WAIT when the file ends first,
 * TAIL_LINES_LATER when this turn's TAIL_LOOKAHEAD is spent (the look goes
 * on from there at the next turn), or a negative errno.
 */
static int
tail_line_extent(struct tail *t, struct tail_file *f, uint64_t *len)
{
	size_t budget = TAIL_LOOKAHEAD, want;
	const uint8_t *nl;
	ssize_t n;

	if (f->nl_start != f->pos || f->nl_clear < t->o.max_line + 1) {
		f->nl_start = f->pos;
		f->nl_clear = t->o.max_line + 1;
	}
	while (budget > 0) {
		want = budget < TAIL_SCAN_BUF ? budget : TAIL_SCAN_BUF;
		if ((n = tail_file_pread(f, t->scanbuf, want, f->nl_start + f->nl_clear)) < 0)
			return n == -EINPROGRESS ? TAIL_LINES_LATER : (int)n;
		if ((nl = memchr(t->scanbuf, '\n', (size_t)n)) != NULL) {
			*len = f->nl_clear + (uint64_t)(nl - t->scanbuf);
			return 0;
		}
		f->nl_clear += (uint64_t)n;
		if ((size_t)n < want)
			return TAIL_LINES_WAIT;
		budget -= want;
	}
	return TAIL_LINES_LATER;
}

/*
 * Hands over the lines of t->buf[0, len), which holds f's bytes from
 * f->pos: each line ending with a newline, and a piece of max_line bytes
 * wherever max_line + 1 bytes hold no newline and the line's newline is
 * there further on. Stops before an incomplete line. Returns 0,
 * TAIL_LINES_WAIT or TAIL_LINES_LATER (tail_line_extent) for a long line,
 * or tail_emit's error.
 */
static int
tail_file_lines(struct tail *t, struct tail_file *f, size_t len)
{
	const uint8_t *p = t->buf, *end = t->buf + len, *nl;
	size_t avail, look, n, adv;
	uint64_t linelen = 0;
	unsigned flags;
	int r;

	tail_file_read_now(f);
	while (p < end) {
		avail = (size_t)(end - p);
		look = avail <= t->o.max_line ? avail : t->o.max_line + 1;
		if ((nl = memchr(p, '\n', look)) != NULL) {
			n = (size_t)(nl - p);
			adv = n + 1;
			flags = 0;
		} else if (avail > t->o.max_line) {
			if (!tail_in_split(t, f)) {
				if ((r = tail_line_extent(t, f, &linelen)) < 0) {
					tail_file_read_failed(t, f, -r);
					return -EAGAIN;
				}
				if (r > 0)
					return r;
				tail_split_begin(f, (linelen + t->o.max_line - 1) / t->o.max_line);
			}
			n = adv = t->o.max_line;
			flags = TAIL_LINE_SPLIT;
		} else {
			break;
		}
		if ((r = tail_emit(t, f, p, n, flags, adv)) != 0)
			return r;
		p += adv;
	}
	return 0;
}

static void
tail_file_read_failed(struct tail *t, struct tail_file *f, int err)
{
	log_error("tail %s: cannot read %s: %s; trying again at the next scan", t->name, f->path,
	    strerror(err));
	t->st.errors++;
	f->failed = true;
	tail_file_set_state(f, TAIL_F_IDLE);
}

/*
 * Hands over f's partial last line, [pos, end), with TAIL_LINE_PARTIAL;
 * end is f->size, or an archive's decompressed length. Returns 0, -EAGAIN
 * when f must be read again (it changed) or paused, or -ECANCELED.
 */
static int
tail_file_flush_partial(struct tail *t, struct tail_file *f, uint64_t end)
{
	uint64_t left = end - f->pos;
	size_t len;
	ssize_t n;
	int r;

	/* Longer than max_line: in pieces, counted from the bytes there are. */
	if (left > t->o.max_line && !tail_in_split(t, f))
		tail_split_begin(f, (left + t->o.max_line - 1) / t->o.max_line);
	while (f->pos < end) {
		left = end - f->pos;
		len = left > t->o.max_line ? t->o.max_line : (size_t)left;
		if ((n = tail_file_pread(f, t->buf, len, f->pos)) < 0) {
			tail_file_read_failed(t, f, (int)-n);
			return -EAGAIN;
		}
		if ((size_t)n < len || memchr(t->buf, '\n', (size_t)n) != NULL) {
			/* Rewritten under us: read it again the usual way. */
			tail_file_poke(f);
			return -EAGAIN;
		}
		tail_file_read_now(f);
		if ((r = tail_emit(t, f, t->buf, len, len == left ? TAIL_LINE_PARTIAL :
		    TAIL_LINE_SPLIT, len)) != 0)
			return r;
		if (len == left)
			t->st.partial_lines++;
	}
	return 0;
}

/* ---------------------------------------------------------------- changes */

/*
 * Reads f's first bytes: *match says whether its first fp_len bytes still
 * hash to fp_hash; if so, the fingerprint grows to cover min(size,
 * TAIL_FINGERPRINT_MAX) bytes. Returns 0 or a negative errno.
 */
static int
tail_file_fingerprint(struct tail_file *f, bool *match)
{
	uint8_t head[TAIL_FINGERPRINT_MAX];
	struct tail_id *id = &f->info.id;
	uint64_t h;
	ssize_t n;

	if ((n = tail_pread(f->fd, head, sizeof(head), 0)) < 0)
		return (int)n;
	if ((size_t)n < id->fp_len) {
		*match = false;
		return 0;
	}
	h = tail_fnv(f->seed, head, id->fp_len);
	*match = h == id->fp_hash;
	if (*match && (size_t)n > id->fp_len) {
		id->fp_hash = tail_fnv(h, head + id->fp_len, (size_t)n - id->fp_len);
		id->fp_len = (uint32_t)n;
	}
	return 0;
}

/* copytruncate, or a rewrite: the file starts again at 0. */
static void
tail_file_restart(struct tail *t, struct tail_file *f)
{
	bool match;

	log_info("tail %s: %s was truncated or rewritten (copytruncate?); reading it again "
	    "from its start", t->name, f->path);
	t->st.truncations++;
	f->pos = 0;
	f->split.count = 0;
	f->nl_clear = 0;
	f->info.id.fp_len = 0;
	f->info.id.fp_hash = f->seed;
	/* From nothing it always matches; a failed read leaves it to the next check. */
	(void)tail_file_fingerprint(f, &match);
}

/* f is under no matching path any more: read it to its end, then let it go. */
static void
tail_file_gone(struct tail *t, struct tail_file *f)
{
	f->gone = true;
	/* Its writer may go on for a while before it reopens: rotate_wait counts from now. */
	f->changed_ms = uv_now(t->loop);
	log_info("tail %s: %s was %s; reading it to its end before letting it go", t->name,
	    f->path, f->deleted ? "deleted" : "renamed away");
	tail_file_poke(f);
}

/*
 * fstat()s f: notes a delete, a new size or mtime, and a truncation or
 * rewrite (size below the position, or a fingerprint that no longer
 * matches), and makes f READY when there is something new. Calls no
 * callback.
 */
static void
tail_file_check(struct tail *t, struct tail_file *f)
{
	struct stat st;
	uint64_t size;
	bool changed, truncated, match;
	int r;

	/* An archive is read as it was found: it is not followed. */
	if (f->state == TAIL_F_SHUT || f->fmt != DECOMPRESS_NONE)
		return;
	if (fstat(f->fd, &st) != 0) {
		log_error("tail %s: cannot stat %s: %s; trying again at the next stat_interval",
		    t->name, f->path, strerror(errno));
		t->st.errors++;
		return;
	}
	if (st.st_nlink == 0 && !f->deleted) {
		f->deleted = true;
		if (!f->gone)
			tail_file_gone(t, f);
	}
	size = (uint64_t)st.st_size;
	changed = size != f->size || st.st_mtim.tv_sec != f->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != f->mtime.tv_nsec;
	truncated = size < f->pos;
	if (!changed && !truncated)
		return;
	if (!truncated) {
		if ((r = tail_file_fingerprint(f, &match)) < 0) {
			log_error("tail %s: cannot read %s: %s; trying again at the next "
			    "stat_interval", t->name, f->path, strerror(-r));
			t->st.errors++;
			return;
		}
		truncated = !match;
	}
	f->size = size;
	f->mtime = st.st_mtim;
	f->changed_ms = uv_now(t->loop);
	if (truncated)
		tail_file_restart(t, f);
	if (f->state == TAIL_F_IDLE || f->state == TAIL_F_WAITING)
		tail_file_set_state(f, TAIL_F_READY);
}

/*
 * A descriptor can be had (a file went idle or was let go) while files wait
 * for one: scan soon for them. Soon, not at once: many files going idle in
 * a row make one scan, not one each.
 */
static void
tail_starved_scan(struct tail *t)
{
	if (!t->starved || t->starved_scan)
		return;
	t->starved_scan = true;
	uv_timer_start(&t->scan_timer, tail_scan_cb, TAIL_STARVED_SCAN, t->o.scan_interval_ms);
}

/* f was read to its end: idle, or waiting for a partial-line flush or its release. */
static void
tail_file_at_end(struct tail *t, struct tail_file *f)
{
	uint64_t due = UINT64_MAX, release;

	if (f->pos < f->size)
		due = tail_add_ms(f->changed_ms, t->o.flush_timeout_ms);
	if (f->gone) {
		release = tail_add_ms(f->changed_ms, t->o.rotate_wait_ms);
		due = release < due ? release : due;
	}
	if (due == UINT64_MAX) {
		tail_file_set_state(f, TAIL_F_IDLE);
		tail_starved_scan(t);
	} else {
		f->due_ms = due;
		tail_file_set_state(f, TAIL_F_WAITING);
	}
}

/* ---------------------------------------------------------------- release */

static void
tail_file_release(struct tail *t, struct tail_file *f)
{
	if (f->pos < f->size && tail_file_flush_partial(t, f, f->size) != 0)
		return;
	if (t->unflushed) {
		tail_flush(t);
		if (t->stopping)
			return;
	}
	log_info("tail %s: let go of %s, read to its end at offset %" PRIu64, t->name, f->path,
	    f->pos);
	t->st.rotations++;
	if (t->cb.release != NULL) {
		t->cb.release(t->ctx, &f->info);
		if (t->stopping)
			return;
	}
	tail_file_close(t, f);
	tail_starved_scan(t);
}

/* ---------------------------------------------------------------- turns of reads */

/*
 * f was opened with fewer bytes than a magic number (gzip and zstd create
 * their output before they write it): its first bytes say whether it is an
 * archive before any of them is handed over. One that appears while the
 * source is followed is a rotated generation (the rotation rule, tail.h):
 * stored as done and shut. Returns true when f became such an archive.
 */
static bool
tail_file_sniff(struct tail *t, struct tail_file *f)
{
	uint8_t head[4];
	ssize_t n;
	bool match;

	if (f->pos != 0 || (n = tail_pread(f->fd, head, sizeof(head), 0)) <= 0)
		return false;
	if ((f->fmt = decompress_detect(head, (size_t)n)) == DECOMPRESS_NONE) {
		f->sniffed = (size_t)n == sizeof(head) || memchr(head, '\n', (size_t)n) != NULL;
		return false;
	}
	uv_fs_event_stop(&f->ev);
	(void)tail_file_fingerprint(f, &match);
	f->archive_done = true;
	log_info("tail %s: not reading %s (%s): it appeared while the source was followed, so "
	    "it is a rotated generation already read under its plain name (logrotate's "
	    "compress)", t->name, f->path, decompress_format_name(f->fmt));
	if (t->cb.skipped != NULL) {
		t->cb.skipped(t->ctx, &f->info, TAIL_POS_DONE);
		if (t->stopping)
			return true;
	}
	tail_file_set_state(f, TAIL_F_IDLE);
	tail_file_shut(t, f);
	return true;
}

/* One turn of f: at most read_quantum bytes (max_line + 1 for a long line). */
static void
tail_file_turn(struct tail *t, struct tail_file *f)
{
	uint64_t start;
	size_t want, have = 0;
	ssize_t n;
	bool eof;
	int r;

	if (f->fmt != DECOMPRESS_NONE) {
		tail_archive_turn(t, f);
		return;
	}
	/* To the back of the queue first: every other file gets its turn before f's next. */
	tail_file_set_state(f, TAIL_F_READY);
	if (f->changed) {
		f->changed = false;
		tail_file_check(t, f);
	}
	if (!f->sniffed && tail_file_sniff(t, f))
		return;
	start = f->pos;
	want = t->o.read_quantum;
	for (;;) {
		if ((n = tail_pread(f->fd, t->buf + have, want - have, start + have)) < 0) {
			tail_file_read_failed(t, f, (int)-n);
			return;
		}
		have += (size_t)n;
		eof = have < want;
		if ((r = tail_file_lines(t, f, have)) == TAIL_LINES_WAIT) {
			/* A long line waits for its newline like a partial last line. */
			start = f->pos;
			tail_file_check(t, f);
			if (f->pos == start && f->state == TAIL_F_READY &&
			    f->size <= f->nl_start + f->nl_clear)
				tail_file_at_end(t, f);
			return;
		}
		if (r != 0)
			return;
		if (f->pos != start || eof || want > t->o.max_line)
			break;
		/* No newline in a quantum: read on to max_line + 1 bytes (a newline, or a piece). */
		want = t->o.max_line + 1;
	}
	if (!eof)
		return;
	if (start + have != f->size) {
		/* The file moved under the read: check it before its next turn. */
		f->changed = true;
		return;
	}
	tail_file_at_end(t, f);
}

/* ---------------------------------------------------------------- archives */

/* f's decoder is freed: the next archive waiting for one may go on. */
static void
tail_archive_free_decoder(struct tail *t, struct tail_file *f)
{
	struct tail_file *w;

	decompress_free(f->dec);
	f->dec = NULL;
	t->ndec--;
	TAILQ_FOREACH(w, &t->paused, qlink) {
		if (w->dec_wait) {
			w->dec_wait = false;
			tail_file_set_state(w, TAIL_F_READY);
			break;
		}
	}
}

/*
 * Gives f (an archive) a decoder, if one of TAIL_DECODERS is free. Returns
 * 0, or -EAGAIN when f waits (PAUSED) or failed (logged, tried again at
 * the next scan).
 */
static int
tail_archive_decoder(struct tail *t, struct tail_file *f)
{
	int r;

	if (t->ndec >= TAIL_DECODERS) {
		f->dec_wait = true;
		tail_file_set_state(f, TAIL_F_PAUSED);
		return -EAGAIN;
	}
	/* The window holds a turn's read and a long line's look ahead past it. */
	if ((r = decompress_new(f->fd, f->fmt, t->bufsize + TAIL_SCAN_BUF, &f->dec)) != 0) {
		tail_file_read_failed(t, f, -r);
		return -EAGAIN;
	}
	t->ndec++;
	return 0;
}

/*
 * f's decompressed data ended (at its end or at damage): its partial last
 * line goes, its position is stored as done, and it is shut (or let go,
 * when its name went away) without being read again.
 */
static void
tail_archive_done(struct tail *t, struct tail_file *f)
{
	const char *why;
	uint64_t total = 0, at;

	(void)decompress_ended(f->dec, &total);
	if (f->pos < total && tail_file_flush_partial(t, f, total) != 0)
		return;
	if (t->unflushed) {
		tail_flush(t);
		if (t->stopping)
			return;
	}
	if (decompress_damage(f->dec, &at, &why)) {
		t->st.archive_errors++;
		log_error("tail %s: %s is damaged at compressed offset %" PRIu64 " (%s): its "
		    "%" PRIu64 " bytes decompressed before that were read, the rest of it is "
		    "skipped; `%s -t %s` tells more", t->name, f->path, at, why, total,
		    f->fmt == DECOMPRESS_GZIP ? "gzip" : "zstd", f->path);
	} else {
		log_info("tail %s: read %s (%s) to its end: %" PRIu64 " bytes decompressed", t->name,
		    f->path, decompress_format_name(f->fmt), total);
	}
	tail_archive_free_decoder(t, f);
	f->archive_done = true;
	t->st.archives_done++;
	if (t->cb.skipped != NULL) {
		t->cb.skipped(t->ctx, &f->info, f->pos | TAIL_POS_DONE);
		if (t->stopping)
			return;
	}
	if (f->gone) {
		tail_file_close(t, f);
	} else {
		tail_file_set_state(f, TAIL_F_IDLE);
		tail_file_shut(t, f);
	}
	tail_starved_scan(t);
}

/*
 * One turn of f, an archive: one read buffer of decompressed bytes, which
 * holds max_line + 1 bytes, so a turn always hands over a line or a piece.
 */
static void
tail_archive_turn(struct tail *t, struct tail_file *f)
{
	uint64_t total;
	ssize_t n;
	int r;

	tail_file_set_state(f, TAIL_F_READY);
	f->changed = false;
	if (f->dec == NULL && tail_archive_decoder(t, f) != 0)
		return;
	if ((n = tail_file_pread(f, t->buf, t->bufsize, f->pos)) == -EINPROGRESS)
		return;
	if (n < 0) {
		tail_file_read_failed(t, f, (int)-n);
		return;
	}
	r = tail_file_lines(t, f, (size_t)n);
	if (r != 0 && r != TAIL_LINES_WAIT)
		return;
	if ((size_t)n == t->bufsize && r == 0)
		return;
	if (decompress_ended(f->dec, &total))
		tail_archive_done(t, f);
}

static void
tail_idle_cb(uv_idle_t *h)
{
	struct tail *t = h->data;
	struct tail_file *f;
	size_t n = t->nready;

	/* Files that become READY during this turn wait for the next one. */
	while (n-- > 0 && (f = TAILQ_FIRST(&t->ready)) != NULL) {
		tail_file_turn(t, f);
		if (t->stopping)
			return;
	}
	if (t->unflushed) {
		tail_flush(t);
		if (t->stopping)
			return;
	}
	if (TAILQ_EMPTY(&t->ready))
		uv_idle_stop(&t->idle);
}

/* ---------------------------------------------------------------- deadlines */

static void
tail_file_wake(struct tail *t, struct tail_file *f, uint64_t now)
{
	/* Whatever changed since the turn that left f here comes first. */
	tail_file_check(t, f);
	if (f->state != TAIL_F_WAITING)
		return;
	if (f->gone && now >= tail_add_ms(f->changed_ms, t->o.rotate_wait_ms)) {
		tail_file_release(t, f);
		return;
	}
	if (f->pos < f->size && now >= tail_add_ms(f->changed_ms, t->o.flush_timeout_ms) &&
	    tail_file_flush_partial(t, f, f->size) != 0)
		return;
	tail_file_at_end(t, f);
}

static void
tail_wake_cb(uv_timer_t *h)
{
	struct tail *t = h->data;
	struct tail_file *f, *next;
	uint64_t now = uv_now(t->loop);

	/*
	 * Callbacks made here can only resume paused files or stop the tail,
	 * so the next file stays in t->waiting while f is handled.
	 */
	for (f = TAILQ_FIRST(&t->waiting); f != NULL; f = next) {
		next = TAILQ_NEXT(f, qlink);
		if (f->due_ms > now)
			continue;
		tail_file_wake(t, f, now);
		if (t->stopping)
			return;
	}
	if (t->unflushed) {
		tail_flush(t);
		if (t->stopping)
			return;
	}
	TAILQ_FOREACH(f, &t->waiting, qlink)
		tail_wake_arm(t, f->due_ms);
}

/* ---------------------------------------------------------------- events and stat */

static void
tail_event_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct tail_file *f = h->data;
	struct tail *t = f->t;

	(void)filename;
	if (t->stopping || f->state == TAIL_F_CLOSED)
		return;
	if (status < 0) {
		log_warn("tail %s: inotify failed on %s: %s; its changes are seen every "
		    "stat_interval", t->name, f->path, uv_strerror(status));
		return;
	}
	/* Renamed or deleted: a scan tells which, and finds what now has its name. */
	if (events & UV_RENAME)
		uv_timer_start(&t->scan_timer, tail_scan_cb, 0, t->o.scan_interval_ms);
	tail_file_poke(f);
}

static void
tail_stat_cb(uv_timer_t *h)
{
	struct tail *t = h->data;
	struct tail_file *f;
	bool rescan = false;

	uint64_t now = uv_now(t->loop);

	TAILQ_FOREACH(f, &t->files, link) {
		if (f->state == TAIL_F_SHUT)
			continue;
		tail_file_check(t, f);
		if (!f->gone && !rescan && tail_path_names(f->path, f) == 0)
			rescan = true;
	}
	/* close_inactive: t->idlers is in the order files went idle, the longest first. */
	while ((f = TAILQ_FIRST(&t->idlers)) != NULL &&
	    now >= tail_add_ms(f->changed_ms, t->o.close_inactive_ms))
		tail_file_shut(t, f);
	if (rescan)
		uv_timer_start(&t->scan_timer, tail_scan_cb, 0, t->o.scan_interval_ms);
}

/* ---------------------------------------------------------------- scans */

static bool
tail_excluded(const struct tail *t, const char *path)
{
	for (size_t i = 0; i < t->o.nexclude; i++)
		if (fnmatch(t->exclude[i], path, 0) == 0)
			return true;
	return false;
}

/* Whether glob(3) with t's patterns would find path (and exclude would not drop it). */
static bool
tail_matches(const struct tail *t, const char *path)
{
	for (size_t i = 0; i < t->o.npaths; i++)
		if (fnmatch(t->paths[i], path, FNM_PATHNAME | FNM_PERIOD) == 0)
			return !tail_excluded(t, path);
	return false;
}

/* Where a file found by a scan starts, and why (for the log). */
static uint64_t
tail_file_start_at(struct tail *t, struct tail_file *f, const uint8_t *head, size_t hlen,
    const char **why, bool *stored_pos)
{
	struct tail_id stored;
	uint64_t off = 0;
	int r = -ENOENT;

	*stored_pos = false;
	if (t->cb.position != NULL)
		r = t->cb.position(t->ctx, &f->info.id, &off, &stored);
	/*
	 * A position stored before fingerprints had birth times matches on
	 * content alone. An archive's position counts decompressed bytes: its
	 * size says nothing of it.
	 */
	if (r == 0 && stored.fp_len <= hlen && (off <= f->size || f->fmt != DECOMPRESS_NONE) &&
	    (tail_fnv(f->seed, head, stored.fp_len) == stored.fp_hash ||
	    (f->seed != TAIL_FNV_BASIS &&
	    tail_fnv(TAIL_FNV_BASIS, head, stored.fp_len) == stored.fp_hash))) {
		*why = "its stored position";
		*stored_pos = true;
		return off;
	}
	if (r == 0)
		log_info("tail %s: the stored position of %s does not fit the file (another "
		    "file with the same inode, or rewritten); reading it as a new file", t->name,
		    f->path);
	else if (r != -ENOENT)
		log_warn("tail %s: cannot get the stored position of %s: %s; reading it as a "
		    "new file", t->name, f->path, strerror(-r));
	if (f->fmt != DECOMPRESS_NONE && (!t->first_scan || t->o.start_at_end)) {
		/* The rotation rule (tail.h): stored as done, or a restart would read it. */
		*why = t->first_scan ? "start_at: end leaves the archives found at the start "
		    "unread" : "it appeared while the source was followed, so it is a rotated "
		    "generation already read under its plain name (logrotate's compress)";
		if (t->cb.skipped != NULL)
			t->cb.skipped(t->ctx, &f->info, TAIL_POS_DONE);
		return TAIL_POS_DONE;
	}
	if (t->first_scan && t->o.start_at_end) {
		*why = "its end (start_at: end)";
		/* Stored now, or a restart before its first line would skip again. */
		if (t->cb.skipped != NULL && f->size > 0)
			t->cb.skipped(t->ctx, &f->info, f->size);
		return f->size;
	}
	*why = "its start";
	return 0;
}

/* Watches f's inode through its descriptor, so the watch follows it whatever its name. */
static void
tail_file_watch(struct tail *t, struct tail_file *f)
{
	char watch[64];
	int r;

	snprintf(watch, sizeof(watch), "/proc/self/fd/%d", f->fd);
	if (uv_fs_event_start(&f->ev, tail_event_cb, watch, 0) != 0 &&
	    (r = uv_fs_event_start(&f->ev, tail_event_cb, f->path, 0)) != 0)
		log_warn("tail %s: cannot watch %s with inotify: %s; its changes are seen every "
		    "stat_interval instead (raise fs.inotify.max_user_watches if that is the "
		    "limit)", t->name, f->path, uv_strerror(r));
}

/* Closes the descriptor of f, an IDLE file: it stays known by identity and position. */
static void
tail_file_shut(struct tail *t, struct tail_file *f)
{
	uv_fs_event_stop(&f->ev);
	(void)close(f->fd);
	f->fd = -1;
	t->nopen--;
	tail_file_set_state(f, TAIL_F_SHUT);
}

/* Frees a descriptor by shutting the longest idle file. Returns false if none is idle. */
static bool
tail_slot_free(struct tail *t)
{
	struct tail_file *f = TAILQ_FIRST(&t->idlers);

	if (f == NULL)
		return false;
	tail_file_shut(t, f);
	return true;
}

/*
 * Opens f (SHUT) again, at its path, which stat() found as *seen; a
 * descriptor must be free. Its fingerprint tells whether it is still the
 * file it was (read on from f->pos) or was rewritten (read from 0).
 * Returns 0 or a negative errno (f stays SHUT).
 */
static int
tail_file_reopen(struct tail *t, struct tail_file *f, const struct stat *seen)
{
	struct stat st;
	bool match;
	int fd, r;

	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	if (st.st_dev != seen->st_dev || st.st_ino != seen->st_ino) {
		(void)close(fd);
		return -ENOENT;
	}
	f->fd = fd;
	if ((r = tail_file_fingerprint(f, &match)) < 0) {
		f->fd = -1;
		(void)close(fd);
		return r;
	}
	t->nopen++;
	tail_file_watch(t, f);
	tail_file_set_state(f, TAIL_F_IDLE);
	if (!match || (uint64_t)st.st_size < f->pos)
		tail_file_restart(t, f);
	f->size = (uint64_t)st.st_size;
	f->mtime = st.st_mtim;
	f->changed_ms = uv_now(t->loop);
	if (f->pos < f->size)
		tail_file_set_state(f, TAIL_F_READY);
	return 0;
}

/* A descriptor for a file to open: one is free, or the longest idle file gives its own. */
static bool
tail_slot(struct tail *t)
{
	return t->nopen < t->o.max_files || tail_slot_free(t);
}

/*
 * A scan or an inotify event found f (SHUT) at a path, as *st: if it
 * changed since it was shut, opens it again. Returns false when it must
 * wait for a descriptor.
 */
static bool
tail_file_wake_shut(struct tail *t, struct tail_file *f, const struct stat *st)
{
	int r;

	/* An archive read to its end is never read again, whatever happens to it. */
	if (f->archive_done || ((uint64_t)st->st_size == f->size &&
	    st->st_mtim.tv_sec == f->mtime.tv_sec && st->st_mtim.tv_nsec == f->mtime.tv_nsec))
		return true;
	if (!tail_slot(t))
		return false;
	if ((r = tail_file_reopen(t, f, st)) < 0 && r != -ENOENT) {
		log_error("tail %s: cannot open %s again: %s; check that the agent's user may "
		    "read it; trying again at the next scan", t->name, f->path, strerror(-r));
		t->st.errors++;
	}
	return true;
}

/*
 * Opens the file at path, which stat() found as *seen. A renamed file
 * (found by tail_find_renamed under a name outside the globs) is only
 * followed from its stored position, and only to its end. Returns 0 (also
 * when the path changed in between: the next scan sorts that out),
 * -ECANCELED when the tail was stopped, or a negative errno.
 */
static int
tail_file_open(struct tail *t, const char *path, const struct stat *seen, enum tail_open how)
{
	uint8_t head[TAIL_FINGERPRINT_MAX];
	struct tail_file *f;
	struct stat st;
	const char *why;
	bool stored_pos;
	ssize_t n;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto fail;
	}
	if (st.st_dev != seen->st_dev || st.st_ino != seen->st_ino || !S_ISREG(st.st_mode)) {
		r = 0;
		goto fail;
	}
	n = tail_pread(fd, head, (uint64_t)st.st_size < sizeof(head) ? (size_t)st.st_size :
	    sizeof(head), 0);
	if (n < 0) {
		r = (int)n;
		goto fail;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->path = strdup(path)) == NULL) {
		free(f);
		r = -ENOMEM;
		goto fail;
	}
	f->t = t;
	f->fd = fd;
	f->seed = tail_seed(fd);
	f->info.path = f->path;
	f->info.path_len = strlen(f->path);
	f->info.path_gen = event_origin_gen();
	f->info.id.dev = (uint64_t)st.st_dev;
	f->info.id.ino = (uint64_t)st.st_ino;
	f->info.id.fp_len = (uint32_t)n;
	f->info.id.fp_hash = tail_fnv(f->seed, head, (size_t)n);
	f->size = (uint64_t)st.st_size;
	f->mtime = st.st_mtim;
	f->changed_ms = uv_now(t->loop);
	f->seen_gen = t->gen;
	f->state = TAIL_F_SHUT;
	t->nshut++;
	f->fmt = decompress_detect(head, (size_t)n);
	f->sniffed = f->fmt != DECOMPRESS_NONE || (size_t)n >= 4 ||
	    memchr(head, '\n', (size_t)n) != NULL;
	f->pos = tail_file_start_at(t, f, head, (size_t)n, &why, &stored_pos);
	if (f->fmt != DECOMPRESS_NONE && (f->pos & TAIL_POS_DONE)) {
		f->pos &= ~TAIL_POS_DONE;
		f->archive_done = true;
	}
	if (t->stopping || (how == TAIL_OPEN_STOPPED && !stored_pos)) {
		/* A renamed file that is not the stored one is none of this tail's business. */
		r = t->stopping ? -ECANCELED : 0;
		t->nshut--;
		free(f->path);
		free(f);
		goto fail;
	}

	uv_fs_event_init(t->loop, &f->ev);
	f->ev.data = f;
	if (f->fmt == DECOMPRESS_NONE)
		tail_file_watch(t, f);
	t->nopen++;

	tail_hash_insert(t, f);
	TAILQ_INSERT_TAIL(&t->files, f, link);
	t->nfiles++;
	t->st.files_seen++;
	if (f->archive_done) {
		/* Known by identity, so that scans do not open it again; no descriptor. */
		/* Said at every start for every archive read before: debug, not info. */
		if (stored_pos)
			log_debug("tail %s: not reading %s (%s): it was read to its end before",
			    t->name, path, decompress_format_name(f->fmt));
		else
			log_info("tail %s: not reading %s (%s): %s", t->name, path,
			    decompress_format_name(f->fmt), why);
		tail_file_set_state(f, TAIL_F_IDLE);
		tail_file_shut(t, f);
		return 0;
	}
	if (f->fmt != DECOMPRESS_NONE) {
		log_info("tail %s: reading %s (%s) once, decompressed, from %s, offset %" PRIu64
		    "%s", t->name, path, decompress_format_name(f->fmt), why, f->pos, f->pos > 0 ?
		    " (decompressing it from its start up to there first)" : "");
		tail_file_set_state(f, TAIL_F_READY);
		return 0;
	}
	log_info("tail %s: following %s from %s, offset %" PRIu64, t->name, path, why, f->pos);
	tail_file_set_state(f, f->pos < f->size ? TAIL_F_READY : TAIL_F_IDLE);
	if (how != TAIL_OPEN_MATCH) {
		log_info("tail %s: %s was renamed from a matching path %s; reading it to its end",
		    t->name, path, how == TAIL_OPEN_STOPPED ? "while the agent was stopped" :
		    "before it could be opened there");
		tail_file_gone(t, f);
	}
	return 0;
fail:
	(void)close(fd);
	return r;
}

/* A scan found f under path. */
static void
tail_file_seen(struct tail *t, struct tail_file *f, const char *path)
{
	char *p;

	/* A second matching name of the same file (a hard link) changes nothing. */
	if (f->seen_gen == t->gen)
		return;
	f->seen_gen = t->gen;
	if (strcmp(f->path, path) != 0 && tail_path_names(f->path, f) == 0 &&
	    (p = strdup(path)) != NULL) {
		log_info("tail %s: %s was renamed to %s", t->name, f->path, path);
		free(f->path);
		f->path = p;
		f->info.path = p;
		f->info.path_len = strlen(p);
		/* Perhaps at the old name's address: the spool must not take it for that. */
		f->info.path_gen = event_origin_gen();
	}
	if (f->gone && !f->deleted) {
		log_info("tail %s: %s is under a matching path again; following it again",
		    t->name, f->path);
		f->gone = false;
	}
}

static void
tail_scan_path(struct tail *t, const char *path, size_t *waiting)
{
	struct tail_file *f;
	struct stat st;
	int r;

	if (tail_excluded(t, path))
		return;
	if (stat(path, &st) != 0) {
		/* Gone between glob and stat, or a dangling symlink: nothing to read. */
		if (errno == ENOENT)
			return;
		log_warn("tail %s: cannot stat %s: %s; check the permissions of its "
		    "directories; trying again at the next scan", t->name, path, strerror(errno));
		t->st.errors++;
		return;
	}
	/* Directories and devices a glob matches are not logs. */
	if (!S_ISREG(st.st_mode))
		return;
	if ((f = tail_lookup(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino)) != NULL) {
		tail_file_seen(t, f, path);
		if (f->state == TAIL_F_SHUT && !tail_file_wake_shut(t, f, &st))
			(*waiting)++;
		return;
	}
	if (!tail_slot(t)) {
		(*waiting)++;
		return;
	}
	r = tail_file_open(t, path, &st, TAIL_OPEN_MATCH);
	/* Other sources or connections took the descriptors: give one of ours. */
	if ((r == -EMFILE || r == -ENFILE) && tail_slot_free(t))
		r = tail_file_open(t, path, &st, TAIL_OPEN_MATCH);
	if (r == -EMFILE || r == -ENFILE) {
		log_error("tail %s: cannot open %s: %s; raise the open file limit (LimitNOFILE) "
		    "or lower max_open_files; trying again at the next scan", t->name, path,
		    strerror(-r));
		t->st.errors++;
	} else if (r < 0 && r != -ENOENT && r != -ECANCELED) {
		log_error("tail %s: cannot open %s: %s; check that the agent's user may read it; "
		    "trying again at the next scan", t->name, path, strerror(-r));
		t->st.errors++;
	}
}

/* The watched directory of wd, or NULL. */
static struct tail_dir *
tail_dir_of(struct tail *t, int wd)
{
	struct tail_dir *d;

	LIST_FOREACH(d, &t->dirs, link)
		if (d->wd == wd)
			return d;
	return NULL;
}

static struct tail_pending *
tail_pending_find(struct tail *t, const struct tail_dir *d, const char *name)
{
	for (size_t i = 0; i < t->npend; i++)
		if (t->pend[i].d == d && !t->pend[i].moving && strcmp(t->pend[i].name, name) == 0)
			return &t->pend[i];
	return NULL;
}

/*
 * The pending entry of name in d, added if new. When TAIL_PENDING_MAX are
 * pending, they are looked at first: a scan instead would not find the
 * files renamed out of the globs before they were opened. Returns NULL
 * only when all of them wait for their IN_MOVED_TO (a scan follows).
 */
static struct tail_pending *
tail_pending_add(struct tail *t, struct tail_dir *d, const char *name)
{
	struct tail_pending *pe;

	if ((pe = tail_pending_find(t, d, name)) != NULL)
		return pe;
	if (t->npend == TAIL_PENDING_MAX)
		tail_pending_run(t);
	if (t->npend == TAIL_PENDING_MAX) {
		t->pend_overflow = true;
		return NULL;
	}
	pe = &t->pend[t->npend++];
	pe->d = d;
	snprintf(pe->name, sizeof(pe->name), "%s", name);
	pe->moving = false;
	pe->carried = false;
	return pe;
}

/* Whether name in d matches the globs. */
static bool
tail_dir_matches(const struct tail *t, const struct tail_dir *d, const char *name)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", d->path, name);

	return n > 0 && (size_t)n < sizeof(path) && tail_matches(t, path);
}

/* One inotify event of a watched directory, in the order they came. */
static void
tail_ino_event(struct tail *t, const struct inotify_event *e)
{
	struct tail_pending *pe;
	struct tail_dir *d;
	size_t i;

	if (e->mask & IN_Q_OVERFLOW) {
		t->pend_overflow = true;
		return;
	}
	if ((d = tail_dir_of(t, e->wd)) == NULL)
		return;
	if (e->mask & IN_IGNORED) {
		/* Removed or unmounted: a scan watches it again if it comes back. */
		for (i = 0; i < t->npend; i++)
			if (t->pend[i].d == d)
				t->pend[i] = t->pend[--t->npend], i--;
		LIST_REMOVE(d, link);
		free(d->path);
		free(d);
		t->pend_overflow = true;
		return;
	}
	if (e->mask & IN_MOVE_SELF) {
		/* Its path is wrong now: drop the watch (IN_IGNORED follows), a scan sets it again. */
		(void)inotify_rm_watch(t->ino_fd, d->wd);
		return;
	}
	if (e->len == 0 || e->name[0] == '\0')
		return;
	if (e->mask & IN_MOVED_FROM) {
		/*
		 * A matching name renamed away may hold a file never looked at: when
		 * its IN_CREATE was handled after this rename and the creation of the
		 * next file under that name, the tail opened the next file there.
		 * Its new name tells where it went (a known file is left alone there).
		 */
		if ((tail_pending_find(t, d, e->name) != NULL ||
		    tail_dir_matches(t, d, e->name)) &&
		    (pe = tail_pending_add(t, d, e->name)) != NULL) {
			pe->moving = true;
			pe->carried = false;
			pe->cookie = e->cookie;
		}
		return;
	}
	if (e->mask & IN_DELETE) {
		if ((pe = tail_pending_find(t, d, e->name)) != NULL)
			*pe = t->pend[--t->npend];
		return;
	}
	if (e->mask & IN_MOVED_TO) {
		for (i = 0; i < t->npend; i++) {
			pe = &t->pend[i];
			if (pe->moving && pe->cookie == e->cookie) {
				/* The file of a matching name, renamed before it was looked at. */
				pe->d = d;
				snprintf(pe->name, sizeof(pe->name), "%s", e->name);
				pe->moving = false;
				return;
			}
		}
	}
	if ((e->mask & (IN_CREATE | IN_MOVED_TO)) && tail_dir_matches(t, d, e->name))
		(void)tail_pending_add(t, d, e->name);
}

/* A file renamed out of the globs before it was opened there: read it to its end. */
static void
tail_rotated_open(struct tail *t, const char *path)
{
	struct stat st;
	int r;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
	    tail_lookup(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino) != NULL || !tail_slot(t))
		return;
	r = tail_file_open(t, path, &st, TAIL_OPEN_ROTATED);
	if (r < 0 && r != -ENOENT && r != -ECANCELED) {
		log_error("tail %s: cannot open %s, rotated away from a matching name: %s; its "
		    "lines are not read", t->name, path, strerror(-r));
		t->st.errors++;
	}
}

/*
 * The files named by the events just read: a created or renamed-in name is
 * opened now, while the file renamed away from it is still read, and a file
 * renamed out of the globs before it could be opened is followed under its
 * new name; a writer rotating faster than scans loses nothing.
 */
static void
tail_pending_run(struct tail *t)
{
	char path[PATH_MAX];
	size_t i, kept = 0, waiting = 0;
	int n;

	for (i = 0; i < t->npend && !t->stopping; i++) {
		struct tail_pending *pe = &t->pend[i];

		/*
		 * Its IN_MOVED_TO may be the next event not read yet: kept for the
		 * next look once. Still moving then: moved out of the watched
		 * directories, out of reach.
		 */
		if (pe->moving) {
			if (!pe->carried) {
				pe->carried = true;
				t->pend[kept++] = *pe;
			}
			continue;
		}
		n = snprintf(path, sizeof(path), "%s/%s", pe->d->path, pe->name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (tail_matches(t, path))
			tail_scan_path(t, path, &waiting);
		else
			tail_rotated_open(t, path);
	}
	t->npend = t->stopping ? 0 : kept;
	if (waiting > 0)
		t->starved = true;
	if (t->pend_overflow && !t->stopping) {
		t->pend_overflow = false;
		log_warn("tail %s: too many directory events at once; scanning", t->name);
		uv_timer_start(&t->scan_timer, tail_scan_cb, 0, t->o.scan_interval_ms);
	}
}

static void
tail_ino_cb(uv_poll_t *h, int status, int events)
{
	struct tail *t = h->data;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *e;
	ssize_t n;
	size_t off;
	int reads;

	(void)events;
	if (t->stopping)
		return;
	if (status < 0) {
		log_warn("tail %s: inotify failed: %s; new files are found every scan_interval",
		    t->name, uv_strerror(status));
		uv_poll_stop(h);
		return;
	}
	/* A few reads at most: the loop stays responsive, and the rest comes next turn. */
	for (reads = 0; reads < 8; reads++) {
		if ((n = read(t->ino_fd, buf, sizeof(buf))) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn("tail %s: cannot read inotify events: %s", t->name,
				    strerror(errno));
			break;
		}
		for (off = 0; off + sizeof(*e) <= (size_t)n; off += sizeof(*e) + e->len) {
			e = (const struct inotify_event *)(buf + off);
			tail_ino_event(t, e);
		}
	}
	tail_pending_run(t);
}

/* Watches the directory dir[0, len) unless it is watched already. */
static void
tail_dir_watch(struct tail *t, const char *dir, size_t len)
{
	struct tail_dir *d;

	if (t->ino_fd < 0)
		return;
	LIST_FOREACH(d, &t->dirs, link)
		if (strlen(d->path) == len && memcmp(d->path, dir, len) == 0)
			return;
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->path = strndup(dir, len)) == NULL) {
		free(d);
		log_warn("tail %s: out of memory watching a directory; new files are found "
		    "every scan_interval", t->name);
		return;
	}
	if ((d->wd = inotify_add_watch(t->ino_fd, d->path, TAIL_DIR_EVENTS)) < 0) {
		/* Not there yet, or not watchable: tried again at the next scan. */
		if (errno != ENOENT && errno != ENOTDIR)
			log_warn("tail %s: cannot watch directory %s with inotify: %s; new files "
			    "there are found every scan_interval (raise "
			    "fs.inotify.max_user_watches if that is the limit)", t->name, d->path,
			    strerror(errno));
		free(d->path);
		free(d);
		return;
	}
	LIST_INSERT_HEAD(&t->dirs, d, link);
}

/* The length of path's directory part (0 when it has none). */
static size_t
tail_dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
}

/* ---------------------------------------------------------------- renamed while stopped */

struct tail_renamed_list {
	struct tail *t;
	struct tail_renamed *v;
	size_t n, cap, dropped;
};

static int
tail_renamed_add(void *fctx, const struct tail_id *id, const char *path, uint64_t offset)
{
	struct tail_renamed_list *l = fctx;
	struct tail_renamed *nv;
	struct stat st;
	size_t len = tail_dir_len(path);

	(void)offset;
	if (!tail_matches(l->t, path) || len == 0)
		return 0;
	/* Still under its name (the scan finds it), or its directory cannot tell. */
	if (stat(path, &st) == 0 && (uint64_t)st.st_dev == id->dev &&
	    (uint64_t)st.st_ino == id->ino)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 16 : l->cap * 2;

		/* Bounded like open files: past that, the oldest renames are given up. */
		if (cap > l->t->o.max_files || (nv = realloc(l->v, cap * sizeof(*nv))) == NULL) {
			l->dropped++;
			return 0;
		}
		l->v = nv;
		l->cap = cap;
	}
	if ((l->v[l->n].dir = strndup(path, len)) == NULL) {
		l->dropped++;
		return 0;
	}
	l->v[l->n].dev = id->dev;
	l->v[l->n].ino = id->ino;
	l->n++;
	return 0;
}

/* Looks for the file of r in its directory; opens it if found under another name. */
static void
tail_renamed_open(struct tail *t, const struct tail_renamed *r)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat st;
	DIR *dir;
	int n, rc;

	if (tail_lookup(t, r->dev, r->ino) != NULL || !tail_slot(t) ||
	    (dir = opendir(r->dir)) == NULL)
		return;
	while ((e = readdir(dir)) != NULL) {
		if ((uint64_t)e->d_ino != r->ino)
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", r->dir, e->d_name);
		if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) != 0 ||
		    (uint64_t)st.st_dev != r->dev || (uint64_t)st.st_ino != r->ino ||
		    !S_ISREG(st.st_mode))
			continue;
		rc = tail_file_open(t, path, &st,
		    tail_matches(t, path) ? TAIL_OPEN_MATCH : TAIL_OPEN_STOPPED);
		if (rc < 0 && rc != -ENOENT && rc != -ECANCELED) {
			log_error("tail %s: cannot open %s, renamed while the agent was stopped: "
			    "%s; its last lines are not read", t->name, path, strerror(-rc));
			t->st.errors++;
		}
		break;
	}
	(void)closedir(dir);
}

/*
 * The files of stored positions whose names now name something else (or
 * nothing): renamed while the agent was stopped. Each is looked for in
 * its directory and, when its identity is there, read from its position to
 * its end.
 */
static void
tail_find_renamed(struct tail *t)
{
	struct tail_renamed_list l = { .t = t };
	size_t i;
	int r;

	if (t->cb.stored == NULL)
		return;
	if ((r = t->cb.stored(t->ctx, tail_renamed_add, &l)) < 0) {
		log_warn("tail %s: cannot list stored positions: %s; files renamed while the "
		    "agent was stopped are not looked for", t->name, strerror(-r));
		t->st.errors++;
	}
	/* Mostly positions of rotated files long deleted: worth a note, not a warning. */
	if (l.dropped > 0)
		log_info("tail %s: %zu more stored position(s) whose file has another name now "
		    "are not looked for (at most max_open_files are)", t->name, l.dropped);
	for (i = 0; i < l.n; i++) {
		if (!t->stopping)
			tail_renamed_open(t, &l.v[i]);
		free(l.v[i].dir);
	}
	free(l.v);
}

static void
tail_scan(struct tail *t)
{
	struct tail_file *f, *next;
	uint64_t now;
	size_t i, j, waiting = 0, dlen, last_len;
	const char *last;
	bool literal_dir;
	glob_t g;
	int r;

	t->gen++;
	t->starved_scan = false;
	for (i = 0; i < t->o.npaths; i++) {
		/* A literal directory is watched before any file is in it. */
		dlen = tail_dir_len(t->paths[i]);
		literal_dir = strcspn(t->paths[i], "*?[") >= dlen;
		if (literal_dir && dlen > 0)
			tail_dir_watch(t, t->paths[i], dlen);
		r = glob(t->paths[i], 0, NULL, &g);
		if (r == GLOB_NOMATCH) {
			if (t->first_scan)
				log_info("tail %s: nothing matches %s yet; looking again every "
				    "scan_interval", t->name, t->paths[i]);
			continue;
		}
		if (r != 0) {
			log_error("tail %s: cannot expand %s: %s; trying again at the next scan",
			    t->name, t->paths[i],
			    r == GLOB_NOSPACE ? "out of memory" : "read error");
			t->st.errors++;
			continue;
		}
		last = NULL;
		last_len = 0;
		for (j = 0; j < g.gl_pathc; j++) {
			const char *p = g.gl_pathv[j];

			/* glob sorts, so a directory's files come together. */
			dlen = tail_dir_len(p);
			if (!literal_dir && dlen > 0 &&
			    (last == NULL || dlen != last_len || memcmp(p, last, dlen) != 0)) {
				tail_dir_watch(t, p, dlen);
				last = p;
				last_len = dlen;
			}
			tail_scan_path(t, p, &waiting);
			if (t->stopping) {
				globfree(&g);
				return;
			}
		}
		globfree(&g);
	}
	if (t->first_scan) {
		tail_find_renamed(t);
		if (t->stopping)
			return;
	}

	for (f = TAILQ_FIRST(&t->files); f != NULL; f = next) {
		next = TAILQ_NEXT(f, link);
		if (f->failed) {
			f->failed = false;
			tail_file_poke(f);
		}
		/*
		 * Unseen: renamed away or deleted, if its path says so. glob(3)
		 * skips directories it cannot read, and a directory that is
		 * unreadable for a moment must not make all its files gone.
		 */
		if (f->seen_gen != t->gen && !f->gone && tail_path_names(f->path, f) == 0) {
			struct stat st;

			if (f->state == TAIL_F_SHUT) {
				/* Read to its end when shut; without a descriptor it is out of reach. */
				log_info("tail %s: %s, closed while idle at offset %" PRIu64 ", was "
				    "renamed away or deleted; forgetting it", t->name, f->path, f->pos);
				tail_file_close(t, f);
				continue;
			}
			if (fstat(f->fd, &st) == 0 && st.st_nlink == 0)
				f->deleted = true;
			tail_file_gone(t, f);
		}
	}

	t->st.files_waiting = waiting;
	t->starved = waiting > 0;
	now = uv_now(t->loop);
	if (waiting > 0 && (t->warned_ms == 0 || now - t->warned_ms >= TAIL_WARN_INTERVAL)) {
		t->warned_ms = now;
		log_warn("tail %s: %zu matching file(s) wait for a descriptor: all %zu allowed "
		    "(max_open_files) are being read; they are opened as others reach their end; "
		    "raise max_open_files if this lasts (said at most once a minute)", t->name,
		    waiting, t->nopen);
	}
}

static void
tail_scan_cb(uv_timer_t *h)
{
	tail_scan(h->data);
}

/* ---------------------------------------------------------------- public */

/* Copies n strings into *out (NULL when n is 0). Returns 0 or -ENOMEM; tail_finish frees. */
static int
tail_strdup_all(char ***out, const char *const *v, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (((*out)[i] = strdup(v[i])) == NULL)
			return -ENOMEM;
	return 0;
}

/* The inotify descriptor for directories; without it, scans alone find new files. */
static void
tail_ino_start(struct tail *t)
{
	int r;

	if ((t->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		log_warn("tail %s: cannot use inotify for directories: %s; new files are found "
		    "every scan_interval (raise fs.inotify.max_user_instances if that is the "
		    "limit)", t->name, strerror(errno));
		return;
	}
	if ((r = uv_poll_init(t->loop, &t->ino_poll, t->ino_fd)) != 0) {
		log_warn("tail %s: cannot poll inotify: %s; new files are found every "
		    "scan_interval", t->name, uv_strerror(r));
		(void)close(t->ino_fd);
		t->ino_fd = -1;
		return;
	}
	t->ino_poll.data = t;
	if ((r = uv_poll_start(&t->ino_poll, UV_READABLE, tail_ino_cb)) != 0) {
		log_warn("tail %s: cannot poll inotify: %s; new files are found every "
		    "scan_interval", t->name, uv_strerror(r));
		/* Out of the loop's poll set once uv_close returns: the descriptor can go. */
		t->closing++;
		uv_close((uv_handle_t *)&t->ino_poll, tail_handle_closed);
		(void)close(t->ino_fd);
		t->ino_fd = -1;
	}
}

int
tail_start(uv_loop_t *loop, const struct tail_options *o, const struct tail_callbacks *cb,
    void *ctx, struct tail **out)
{
	struct tail *t;
	size_t i;

	if (loop == NULL || o == NULL || cb == NULL || cb->line == NULL || out == NULL ||
	    o->name == NULL || o->npaths == 0 || o->paths == NULL ||
	    (o->nexclude > 0 && o->exclude == NULL) || o->max_line == 0 ||
	    o->max_line >= SIZE_MAX / 2 || o->scan_interval_ms == 0 || o->stat_interval_ms == 0)
		return -EINVAL;
	for (i = 0; i < o->npaths; i++)
		if (o->paths[i] == NULL)
			return -EINVAL;
	for (i = 0; i < o->nexclude; i++)
		if (o->exclude[i] == NULL)
			return -EINVAL;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	t->ino_fd = -1;
	t->loop = loop;
	t->o = *o;
	if (t->o.read_quantum == 0)
		t->o.read_quantum = TAIL_DEFAULT_QUANTUM;
	if (t->o.rotate_wait_ms == 0)
		t->o.rotate_wait_ms = TAIL_DEFAULT_ROTATE_WAIT;
	if (t->o.max_files == 0)
		t->o.max_files = TAIL_DEFAULT_MAX_FILES;
	if (t->o.close_inactive_ms == 0)
		t->o.close_inactive_ms = TAIL_DEFAULT_CLOSE_INACTIVE;
	t->bufsize = t->o.read_quantum > t->o.max_line ? t->o.read_quantum : t->o.max_line + 1;
	t->cb = *cb;
	t->ctx = ctx;
	TAILQ_INIT(&t->files);
	TAILQ_INIT(&t->ready);
	TAILQ_INIT(&t->waiting);
	TAILQ_INIT(&t->paused);
	TAILQ_INIT(&t->idlers);
	LIST_INIT(&t->dirs);
	t->nbuckets = TAIL_HASH_MIN;
	if ((t->name = strdup(o->name)) == NULL ||
	    tail_strdup_all(&t->paths, o->paths, o->npaths) != 0 ||
	    tail_strdup_all(&t->exclude, o->exclude, o->nexclude) != 0 ||
	    (t->buf = malloc(t->bufsize)) == NULL ||
	    (t->scanbuf = malloc(TAIL_SCAN_BUF)) == NULL ||
	    (t->pend = calloc(TAIL_PENDING_MAX, sizeof(*t->pend))) == NULL ||
	    (t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL) {
		tail_finish(t);
		return -ENOMEM;
	}
	t->o.name = t->name;
	t->o.paths = (const char *const *)t->paths;
	t->o.exclude = (const char *const *)t->exclude;

	/* Nothing can fail from here on, so no handle ever needs closing on an error path. */
	uv_timer_init(loop, &t->scan_timer);
	uv_timer_init(loop, &t->stat_timer);
	uv_timer_init(loop, &t->wake_timer);
	uv_idle_init(loop, &t->idle);
	t->scan_timer.data = t->stat_timer.data = t->wake_timer.data = t->idle.data = t;
	tail_ino_start(t);

	t->first_scan = true;
	tail_scan(t);
	t->first_scan = false;
	uv_timer_start(&t->scan_timer, tail_scan_cb, t->o.scan_interval_ms, t->o.scan_interval_ms);
	uv_timer_start(&t->stat_timer, tail_stat_cb, t->o.stat_interval_ms, t->o.stat_interval_ms);
	*out = t;
	return 0;
}

void
tail_resume(struct tail *t)
{
	struct tail_file *f;

	if (t == NULL || t->stopping)
		return;
	t->resume_gen++;
	while ((f = TAILQ_FIRST(&t->paused)) != NULL) {
		/* It may have changed while paused. */
		f->changed = true;
		tail_file_set_state(f, TAIL_F_READY);
	}
}

void
tail_stop(struct tail *t, void (*done)(void *ctx), void *ctx)
{
	struct tail_file *f;
	struct tail_dir *d;

	if (t == NULL || t->stopping)
		return;
	t->stopping = true;
	t->done = done;
	t->done_ctx = ctx;
	while ((f = TAILQ_FIRST(&t->files)) != NULL)
		tail_file_close(t, f);
	while ((d = LIST_FIRST(&t->dirs)) != NULL) {
		LIST_REMOVE(d, link);
		free(d->path);
		free(d);
	}
	if (t->ino_fd >= 0) {
		t->closing++;
		uv_close((uv_handle_t *)&t->ino_poll, tail_handle_closed);
	}
	t->closing += 4;
	uv_close((uv_handle_t *)&t->scan_timer, tail_handle_closed);
	uv_close((uv_handle_t *)&t->stat_timer, tail_handle_closed);
	uv_close((uv_handle_t *)&t->wake_timer, tail_handle_closed);
	uv_close((uv_handle_t *)&t->idle, tail_handle_closed);
}

void
tail_get_stats(const struct tail *t, struct tail_stats *s)
{
	const struct tail_file *f;

	*s = t->st;
	s->files_open = t->nopen;
	s->files_reading = t->st.files_waiting;
	TAILQ_FOREACH(f, &t->files, link)
		if (f->state == TAIL_F_READY || f->state == TAIL_F_PAUSED ||
		    (f->state == TAIL_F_WAITING && f->pos < f->size))
			s->files_reading++;
}
