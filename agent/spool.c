/* SPDX-License-Identifier: Apache-2.0 */
/* spool: the agent's LMDB spool (see spool.h). */
#include "autoconfig.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <zstd.h>

#include "agent/spool.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "proto/event_dict.h"

/*
 * The spool's format (meta "format"): 3 since event format 3, whose
 * segments say their event format in header byte 4 (1, 2 or 3, all read).
 * A spool of format 1 or 2 is upgraded in place at open; older agents
 * refuse a spool of a later format than theirs and move it aside
 * (docs/architecture.md "Spool").
 */
#define SPOOL_FORMAT 3
/*
 * Room kept in front of an open segment's events for its Dict, which is
 * known only at seal: names and origins of a typical source fit; a larger
 * Dict moves the events once.
 */
#define SPOOL_DICT_ROOM (16u << 10)
/* The largest Dict: every name in the arena, with the ids and framing of the most entries. */
#define SPOOL_DICT_MAX(s) ((s)->o.dict_bytes + EVENT_MAX_KEY_ID * 16u + EVENT_MAX_ORIGIN_ID * 32u + 16u)
#define SPOOL_POS_KEY 16
#define SPOOL_POS_FIXED 24       /* offset, fp_hash, fp_len, path_len */
/*
 * A journal cursor is a record of the files table too, so that it reaches
 * the same transaction as its events: key (SPOOL_CURSOR_DEV, FNV-1a 64 of
 * the source's name), which no file has; value the fixed part (zeros), the
 * name as path, then the cursor.
 */
#define SPOOL_CURSOR_DEV UINT64_MAX
#define SPOOL_RESERVE_MIN (4u << 20)
#define SPOOL_RESERVE_MAX (64u << 20)
#define SPOOL_RETRY_MIN_MS 100  /* after a failed commit, doubling */
#define SPOOL_RETRY_MAX_MS 5000

/*
 * A hand-off block: events encoded on the loop thread, and the positions to
 * commit with them, as records [u32 len][16-byte key][value] in LMDB's
 * format so the writer only copies them in.
 */
/*
 * zstd level 1 (strategy fast, minMatch 7) with a 16 KiB hash table
 * instead of its default 32 KiB, which stays in the L1 cache beside the
 * events. Measured on the agent's own format-2 segments of 200k NGINX
 * lines (docs/performance.md, issue 19), instructions per line in
 * ZSTD_compress2 and compressed ratio: hashLog 12 5,116 at 5.74; 13 4,977
 * at 5.88 and 14 4,901 at 5.97, yet they took 4 % and 7 % more CPU time
 * (the table leaves L1); 11 5,291 at 5.56. minMatch 6, 5, 4 cost 28-616
 * more for at most 0.4 % in ratio; searchLog does not apply to fast;
 * targetLength 1 cut 553 but the ratio fell to 4.87 (fast then leaves
 * literals raw); dfast cost 380 more. zstd's content checksum (XXH64 of
 * the uncompressed bytes) cost 277 instructions (7 % of the time), and
 * every relay paid it again: format-3 segments go without it, and a
 * CRC-32C of the compressed frame, ~5.5 times fewer bytes, follows the
 * frame in a skippable frame (SPOOL_CRC_MAGIC): 21 instructions per line
 * with SSE4.2 against XXH64's 222 (zlib's crc32 took 162). LMDB keeps no
 * page checksums, so one of the two is needed: without, one byte changed
 * in a stored frame decompresses into other events (test_spool's
 * changed-byte tests).
 */
#define SPOOL_ZSTD_HASHLOG 12

/*
 * A format-3 segment's payload ends with a zstd skippable frame (magic
 * 0x184D2A50..5F, its 4-byte little-endian size, its data) holding the
 * little-endian CRC-32C of the zstd frame before it: every zstd decoder
 * skips it, so payloads still ship as stored and concatenate.
 */
#define SPOOL_CRC_MAGIC 0x184D2A50u
#define SPOOL_CRC_FRAME 12

struct spool_block {
	struct spool_block *next;
	struct buf data;
	struct buf pos;
	size_t last_pos;             /* offset in pos of the last record + 1; 0: none */
	uint32_t events;
	uint64_t ts_min, ts_max;
	struct event_dict_used used;  /* format 2's ids its events use */
};

/* A segment being filled or sealed: once sealed, out holds the header then the zstd frame. */
struct spool_seg {
	struct spool_seg *next;
	struct buf out;
	uint64_t first_seq;
	uint32_t events;
	uint64_t uncompressed;
	uint64_t ts_min, ts_max;
};

/* Someone waiting for the events appended before it to be committed. */
struct spool_waiter {
	struct spool_waiter *next;
	uint64_t target;             /* events_appended when it started waiting */
	uint64_t lost_before;        /* events lost (not committed) by then */
	void (*cb)(void *ctx, int status);
	void *ctx;
};

struct spool_delete_range {
	struct spool_delete_range *next;
	uint64_t first, end;
};

/* What the map holds: pages in use, pages ever allocated (the high-water mark). */
struct spool_usage {
	uint64_t used;               /* bytes: allocated minus LMDB's free list */
	uint64_t high;               /* bytes: (last page + 1) x page size */
	uint64_t psize;
};

struct spool {
	struct spool_options o;
	char *dir;
	uv_loop_t *loop;
	void (*writable)(void *ctx);
	void *ctx;
	MDB_env *env;
	MDB_dbi segments, files, meta;
	uint64_t reserve;            /* map and disk room above max_size, for deletes */
	uint64_t map_size;           /* max_size + reserve */
	/*
	 * Format 2's ids: the loop thread adds entries; the writer reads those
	 * its blocks used, published with the block under mu, never changed.
	 */
	struct event_dict *dict;

	/* Loop thread only. */
	struct spool_block *cur;
	bool need_writable;
	uv_prepare_t prepare;
	uv_async_t async;
	void (*done)(void *ctx);
	void *done_ctx;
	bool close_requested;
	int closing;
	struct spool_waiter *waiters, **waiters_tail;
	void (*commit_cb)(void *ctx);
	void *commit_ctx;
	uint64_t segments_seen;      /* segments_committed when commit_cb last ran */
	uint64_t damaged_last;       /* 1 + the last damaged segment reported by a read */

	/* Shared: under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct spool_block *free_blocks;
	size_t nfree;                /* blocks on free_blocks */
	struct spool_block *ready, **ready_tail;
	struct spool_delete_range *deletes;
	bool stop, writer_done;
	struct spool_stats stats;

	/* Writer thread only. */
	pthread_t writer;
	bool writer_started;
	ZSTD_CCtx *cctx;
	struct buf dict_out;         /* a sealing segment's Dict */
	/*
	 * The open segment's events as encoded (format 2), after
	 * SPOOL_DICT_ROOM for its Dict, and the ids they use: one segment is
	 * open at a time, so one buffer, compressed at seal.
	 */
	struct buf open_raw;
	struct event_dict_used open_used;
	struct spool_seg *open;      /* being filled */
	struct spool_seg *sealed, **sealed_tail;
	struct spool_seg *free_segs;
	struct buf pending_pos;      /* position records to commit */
	uint64_t next_seq;
	uint64_t deadline_ns;        /* commit by then; 0: nothing waiting */
	uint64_t retry_ns;           /* no commit before then (after a failure) */
	uint64_t backoff_ms;         /* the last wait before retry_ns */
	uint64_t dels_retry_ns;      /* no delete before then (after a failed one) */
	bool full;                   /* max_size reached: segments wait for deletes */
	bool disk_full;              /* the filesystem has no room for the reserve */
	bool disk_full_wait;         /* segments wait because of it */
	bool no_fallocate;           /* the filesystem cannot reserve room */
	struct spool_usage usage;    /* after the last commit */
	uint64_t file_size;          /* of data.mdb, allocated */
	size_t nblocks;
};

static uint64_t
spool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
spool_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
spool_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
spool_put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
spool_get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void
spool_options_default(struct spool_options *o, const char *dir)
{
	memset(o, 0, sizeof(*o));
	o->dir = dir;
	o->max_size = 1024ull << 20;
	o->sync_always = true;
	o->commit_interval_ms = 5;
	o->segment_max_events = 4096;
	o->segment_max_bytes = 1 << 20;
	o->event_max_bytes = (1 << 20) + 65536;
	o->queue_blocks = 8;
	o->block_bytes = 256 << 10;
	o->zstd_level = 1;
	o->dict_bytes = 256 << 10;
}

/* ------------------------------------------------------------ segment format */

static int
spool_segment_parse(const MDB_val *k, const MDB_val *v, struct spool_segment *seg,
    const char **why)
{
	const uint8_t *p = v->mv_data;

	if (k->mv_size != 8) {
		*why = "segment key is not 8 bytes";
		return -EIO;
	}
	if (v->mv_size < SPOOL_SEGMENT_HEADER || spool_get_le(p, 4) != SPOOL_SEGMENT_MAGIC) {
		*why = "segment header is missing or has a wrong magic number";
		return -EIO;
	}
	seg->codec = p[5];
	/* Byte 4 was the spool's format, 1, before it was the event format. */
	seg->event_format = p[4];
	seg->events = (uint32_t)spool_get_le(p + 8, 4);
	seg->uncompressed = (uint32_t)spool_get_le(p + 12, 4);
	seg->first_seq = spool_get_le(p + 16, 8);
	seg->ts_oldest = spool_get_le(p + 24, 8);
	seg->ts_newest = spool_get_le(p + 32, 8);
	seg->payload = p + SPOOL_SEGMENT_HEADER;
	seg->payload_len = v->mv_size - SPOOL_SEGMENT_HEADER;
	if (p[4] < EVENT_FORMAT_1 || p[4] > EVENT_FORMAT_3 || seg->codec != SPOOL_CODEC_ZSTD) {
		*why = "segment of an unknown event format or codec";
		return -EIO;
	}
	if (seg->first_seq != spool_get_be64(k->mv_data) || seg->events == 0) {
		*why = "segment header does not match its key";
		return -EIO;
	}
	return 0;
}

/*
 * Checks that a segment's payload is one whole zstd frame and, in format
 * 3, its CRC frame, and that the CRC-32C matches the frame's bytes (a
 * format-1 or 2 frame carries zstd's content checksum instead, checked
 * when it is decompressed). Sets *frame_len to the zstd frame's length.
 * Returns 0, or -EIO with why.
 */
static int
spool_segment_check(const struct spool_segment *seg, size_t *frame_len, const char **why)
{
	const uint8_t *crc;
	size_t n = ZSTD_findFrameCompressedSize(seg->payload, seg->payload_len);

	if (ZSTD_isError(n) || (seg->event_format < EVENT_FORMAT_3 && n != seg->payload_len)) {
		*why = "its zstd frame is damaged";
		return -EIO;
	}
	*frame_len = n;
	if (seg->event_format < EVENT_FORMAT_3)
		return 0;
	crc = seg->payload + n;
	if (seg->payload_len - n != SPOOL_CRC_FRAME || spool_get_le(crc, 4) != SPOOL_CRC_MAGIC ||
	    spool_get_le(crc + 4, 4) != 4) {
		*why = "its checksum frame is missing or damaged";
		return -EIO;
	}
	if (spool_get_le(crc + 8, 4) != crc32c(seg->payload, n)) {
		*why = "its zstd frame does not match its CRC-32C";
		return -EIO;
	}
	return 0;
}

int
spool_segment_stored(const struct spool_segment *seg, struct buf *out)
{
	const char *why;
	size_t n;

	int r;

	buf_reset(out);
	if (spool_segment_check(seg, &n, &why) != 0)
		return -EIO;
	if ((r = buf_reserve(out, seg->uncompressed)) != 0)
		return r;
	n = ZSTD_decompress(out->data, seg->uncompressed, seg->payload, n);
	if (ZSTD_isError(n) || n != seg->uncompressed)
		return -EIO;
	out->len = n;
	return 0;
}

int
spool_segment_decompress(const struct spool_segment *seg, struct buf *out)
{
	struct buf stored;
	int r;

	if (seg->event_format == EVENT_FORMAT_1)
		return spool_segment_stored(seg, out);
	/* A rare path (a split, --spool-dump): a buffer of its own is fine here. */
	buf_init(&stored, SIZE_MAX);
	if ((r = spool_segment_stored(seg, &stored)) == 0) {
		buf_reset(out);
		/* Out of memory, or out's bound, is not damage: the caller may try again. */
		if ((r = event_list_format1(stored.data, stored.len, out)) != 0 &&
		    r != -ENOMEM && r != -EMSGSIZE)
			r = -EIO;
	}
	buf_free(&stored);
	return r;
}

/* Decodes a position record value. path points into v (not NUL-terminated: path_len). */
static int
spool_pos_parse(const MDB_val *k, const MDB_val *v, struct spool_file *f, size_t *path_len)
{
	const uint8_t *p = v->mv_data;

	if (k->mv_size != SPOOL_POS_KEY || v->mv_size < SPOOL_POS_FIXED)
		return -EIO;
	f->dev = spool_get_be64(k->mv_data);
	f->ino = spool_get_be64((const uint8_t *)k->mv_data + 8);
	f->offset = spool_get_le(p, 8);
	f->fp_hash = spool_get_le(p + 8, 8);
	f->fp_len = (uint32_t)spool_get_le(p + 16, 4);
	*path_len = (size_t)spool_get_le(p + 20, 4);
	if (*path_len > v->mv_size - SPOOL_POS_FIXED)
		return -EIO;
	f->path = (const char *)p + SPOOL_POS_FIXED;
	return 0;
}

/* ------------------------------------------------------------ environment */

uint64_t
spool_reserve(uint64_t max_size)
{
	/*
	 * A delete needs a few new pages per segment (LMDB copies on write and
	 * reuses no page freed by the last transaction); deletes one segment
	 * at a time need far less than this, whatever the fragmentation.
	 */
	uint64_t r = max_size / 16;

	return r < SPOOL_RESERVE_MIN ? SPOOL_RESERVE_MIN : r > SPOOL_RESERVE_MAX ?
	    SPOOL_RESERVE_MAX : r;
}

static int
spool_mkdirs(const char *dir)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* LMDB errors that mean the files are not a usable LMDB environment. */
static bool
spool_is_corruption(int rc)
{
	return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_VERSION_MISMATCH || rc == MDB_BAD_TXN || rc == MDB_INCOMPATIBLE;
}

static int
spool_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *v)
{
	MDB_val k = { strlen(name), (void *)name }, d;
	int rc = mdb_get(txn, dbi, &k, &d);

	if (rc != 0)
		return rc;
	if (d.mv_size != 8)
		return MDB_CORRUPTED;
	*v = spool_get_le(d.mv_data, 8);
	return 0;
}

static int
spool_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v)
{
	uint8_t b[8];
	MDB_val k = { strlen(name), (void *)name }, d = { 8, b };

	spool_put_le(b, v, 8);
	return mdb_put(txn, dbi, &k, &d, 0);
}

/*
 * Opens the environment and its tables, creating them in a new spool, and
 * checks that every segment header is ours and in order. Returns 0, an
 * LMDB error, or MDB_CORRUPTED (why says what) for content that is not a
 * spool of this format.
 */
static int
spool_env_open(struct spool *s, uint64_t moved_aside, const char **why)
{
	unsigned flags = MDB_NOTLS | (s->o.sync_always ? 0 : MDB_NOMETASYNC);
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	uint64_t format, last_end = 0, n = 0, damaged = 0;
	int rc;

	*why = "LMDB could not open it";
	if ((rc = mdb_env_create(&s->env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, s->map_size)) != 0 ||
	    (rc = mdb_env_open(s->env, s->dir, flags, 0640)) != 0 ||
	    (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "segments", MDB_CREATE, &s->segments)) != 0 ||
	    (rc = mdb_dbi_open(txn, "files", MDB_CREATE, &s->files)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0)
		goto out;
	rc = spool_meta_get(txn, s->meta, "format", &format);
	if (rc == MDB_NOTFOUND) {
		/* A new spool, unless something else lives in these tables. */
		MDB_stat st;

		if ((rc = mdb_stat(txn, s->segments, &st)) != 0)
			goto out;
		if (st.ms_entries != 0) {
			*why = "it has segments but no format record";
			rc = MDB_CORRUPTED;
			goto out;
		}
		if ((rc = spool_meta_put(txn, s->meta, "format", SPOOL_FORMAT)) != 0 ||
		    (rc = spool_meta_put(txn, s->meta, "next_seq", 1)) != 0)
			goto out;
		format = SPOOL_FORMAT;
	} else if (rc != 0) {
		*why = "its format record is unreadable";
		goto out;
	}
	if (format >= 1 && format < SPOOL_FORMAT) {
		/* Its segments say their event format in their headers and stay readable. */
		if ((rc = spool_meta_put(txn, s->meta, "format", SPOOL_FORMAT)) != 0) {
			*why = "its format record cannot be upgraded";
			goto out;
		}
		log_info("spool %s: upgraded from format %" PRIu64 " to %d (event format %d); its "
		    "stored segments stay format %" PRIu64 " and ship as they are", s->dir, format,
		    SPOOL_FORMAT, EVENT_FORMAT_3, format);
		format = SPOOL_FORMAT;
	}
	if (format != SPOOL_FORMAT) {
		*why = "it has a format this agent does not know";
		rc = MDB_INCOMPATIBLE;
		goto out;
	}
	if (moved_aside != 0 &&
	    (rc = spool_meta_put(txn, s->meta, "moved_aside", moved_aside)) != 0)
		goto out;
	rc = spool_meta_get(txn, s->meta, "moved_aside", &s->stats.moved_aside);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*why = "its moved_aside record is unreadable";
		goto out;
	}
	if ((rc = spool_meta_get(txn, s->meta, "next_seq", &s->next_seq)) != 0) {
		*why = "its next_seq record is missing";
		rc = MDB_CORRUPTED;
		goto out;
	}
	/* Every header is checked now, so that a bad one is found before use. */
	if ((rc = mdb_cursor_open(txn, s->segments, &c)) != 0)
		goto out;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct spool_segment seg;

		const char *bad = NULL, *frame_bad;
		size_t frame_len;

		if (spool_segment_parse(&k, &v, &seg, &bad) == 0 && seg.first_seq < last_end)
			bad = "it overlaps the segment before it";
		else if (bad == NULL && spool_segment_check(&seg, &frame_len, &frame_bad) != 0)
			bad = frame_bad;
		if (bad != NULL) {
			/* One damaged segment costs its own events, not the spool's. */
			log_error("spool %s: segment %" PRIu64 " is damaged (%s): deleted; its "
			    "events are lost", s->dir, k.mv_size == 8 ? spool_get_be64(k.mv_data) :
			    0, bad);
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				goto out;
			damaged++;
			continue;
		}
		last_end = seg.first_seq + seg.events;
		n += seg.events;
	}
	if (rc != MDB_NOTFOUND)
		goto out;
	if (damaged != 0) {
		uint64_t before = 0;

		rc = spool_meta_get(txn, s->meta, "segments_damaged", &before);
		if ((rc != 0 && rc != MDB_NOTFOUND) ||
		    (rc = spool_meta_put(txn, s->meta, "segments_damaged", before + damaged)) != 0)
			goto out;
	}
	rc = spool_meta_get(txn, s->meta, "segments_damaged", &s->stats.segments_damaged);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	mdb_cursor_close(c);
	c = NULL;
	if (last_end > s->next_seq) {
		*why = "next_seq is behind the last segment";
		rc = MDB_CORRUPTED;
		goto out;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	s->stats.next_seq = s->next_seq;
	s->stats.events_stored = n;
	log_info("spool %s: %" PRIu64 " events waiting, next sequence number %" PRIu64,
	    s->dir, n, s->next_seq);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (rc != 0) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	return rc;
}

/* ------------------------------------------------------------ damage checks */

/*
 * LMDB's on-disk meta page (mdb.c, MDB_meta behind the page header), read
 * with pread before anything is mapped: a data file shorter than its last
 * page makes every read of the missing pages a SIGBUS.
 */
#define SPOOL_LMDB_MAGIC 0xBEEFC0DEu
#define SPOOL_LMDB_VERSION 1
#define SPOOL_LMDB_P_META 0x08
#define SPOOL_LMDB_Z sizeof(size_t)
#define SPOOL_LMDB_HDR (SPOOL_LMDB_Z + 8)                       /* page header */
#define SPOOL_LMDB_DBS (SPOOL_LMDB_HDR + 8 + sizeof(void *) + SPOOL_LMDB_Z)
#define SPOOL_LMDB_DB (8 + 5 * SPOOL_LMDB_Z)                    /* MDB_db */
#define SPOOL_LMDB_ROOT (8 + 4 * SPOOL_LMDB_Z)                  /* md_root in MDB_db */
#define SPOOL_LMDB_LAST (SPOOL_LMDB_DBS + 2 * SPOOL_LMDB_DB)    /* mm_last_pg */
#define SPOOL_LMDB_META_END (SPOOL_LMDB_LAST + 2 * SPOOL_LMDB_Z)

struct spool_meta_page {
	uint32_t psize;
	size_t last_pg, txnid, root[2];
};

static size_t
spool_get_size(const uint8_t *p)
{
	size_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Reads meta page i at off. Returns 0, -EBADMSG (why set), or -errno. */
static int
spool_read_meta(int fd, int i, off_t off, struct spool_meta_page *m, const char **why)
{
	uint8_t p[SPOOL_LMDB_META_END];
	uint32_t magic, version;
	uint16_t flags;
	ssize_t n = pread(fd, p, sizeof(p), off);

	if (n < 0)
		return -errno;
	if ((size_t)n < sizeof(p)) {
		*why = "the data file ends inside a meta page";
		return -EBADMSG;
	}
	memcpy(&flags, p + SPOOL_LMDB_Z + 2, 2);
	memcpy(&magic, p + SPOOL_LMDB_HDR, 4);
	memcpy(&version, p + SPOOL_LMDB_HDR + 4, 4);
	memcpy(&m->psize, p + SPOOL_LMDB_DBS, 4);
	if (!(flags & SPOOL_LMDB_P_META) || magic != SPOOL_LMDB_MAGIC ||
	    spool_get_size(p) != (size_t)i) {
		*why = i == 0 ? "meta page 0 is not an LMDB meta page" :
		    "meta page 1 is not an LMDB meta page";
		return -EBADMSG;
	}
	if (version != SPOOL_LMDB_VERSION) {
		*why = "a meta page has an LMDB data version this agent does not know";
		return -EBADMSG;
	}
	if (m->psize < 512 || m->psize > 65536 || (m->psize & (m->psize - 1)) != 0) {
		*why = "a meta page has an impossible page size";
		return -EBADMSG;
	}
	m->root[0] = spool_get_size(p + SPOOL_LMDB_DBS + SPOOL_LMDB_ROOT);
	m->root[1] = spool_get_size(p + SPOOL_LMDB_DBS + SPOOL_LMDB_DB + SPOOL_LMDB_ROOT);
	m->last_pg = spool_get_size(p + SPOOL_LMDB_LAST);
	m->txnid = spool_get_size(p + SPOOL_LMDB_LAST + SPOOL_LMDB_Z);
	return 0;
}

/*
 * Checks data.mdb in dir without mapping it: both meta pages are LMDB's,
 * and the file holds every page the newer one counts. Returns 0 (sound),
 * 1 (no file yet), -EBADMSG (why says what is wrong) or -errno.
 */
static int
spool_check_file(const char *dir, const char **why)
{
	char path[PATH_MAX];
	struct spool_meta_page m[2], *newer;
	struct stat st;
	int fd, r = 0;

	*why = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 1 : -errno;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto out;
	}
	/* LMDB writes both meta pages when it creates the file: empty is a new spool. */
	if (st.st_size == 0)
		goto out;
	if ((r = spool_read_meta(fd, 0, 0, &m[0], why)) != 0 ||
	    (r = spool_read_meta(fd, 1, (off_t)m[0].psize, &m[1], why)) != 0)
		goto out;
	if (m[1].psize != m[0].psize) {
		*why = "the two meta pages disagree on the page size";
		r = -EBADMSG;
		goto out;
	}
	newer = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
	for (int i = 0; i < 2; i++)
		if (newer->root[i] != (size_t)-1 && newer->root[i] > newer->last_pg) {
			*why = "a meta page points past the last page";
			r = -EBADMSG;
			goto out;
		}
	if ((uint64_t)st.st_size < ((uint64_t)newer->last_pg + 1) * newer->psize) {
		*why = "the data file is shorter than its last page (truncated)";
		r = -EBADMSG;
	}
out:
	close(fd);
	return r;
}

/*
 * Walks every record of every table of an environment opened read-only and
 * reads every page of every value, in a process of its own (see
 * spool_check_pages). Returns 0 or an LMDB error; why names damage that
 * LMDB did not report itself, else stays NULL.
 */
static int
spool_walk(MDB_env *env, const char **why)
{
	static const char *const names[] = { NULL, "segments", "files", "meta" };
	MDB_txn *txn;
	int rc;

	*why = NULL;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	for (size_t t = 0; t < sizeof(names) / sizeof(names[0]) + 1 && rc == 0; t++) {
		MDB_dbi dbi = 0;   /* the first pass: LMDB's free list */
		MDB_cursor *c;
		MDB_val k, v, prev;

		if (t > 0 && (rc = mdb_dbi_open(txn, names[t - 1], 0, &dbi)) != 0) {
			/* A spool created and never committed to has no tables yet. */
			if (rc == MDB_NOTFOUND)
				rc = 0;
			continue;
		}
		if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
			break;
		prev.mv_size = 0;
		while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
			volatile uint8_t sum = 0;

			/*
			 * LMDB does not check a page's content: a damaged tree page
			 * shows as keys of the wrong size or out of order.
			 */
			if ((t == 2 && k.mv_size != 8) || (t == 3 && k.mv_size != SPOOL_POS_KEY) ||
			    (t == 4 && v.mv_size != 8) || k.mv_size == 0 || k.mv_size > 511 ||
			    (prev.mv_size != 0 && mdb_cmp(txn, dbi, &prev, &k) >= 0)) {
				*why = "its keys are damaged";
				rc = MDB_CORRUPTED;
				break;
			}
			prev = k;

			/* A record out of the file's pages crashes the walk: that is the check. */
			for (size_t i = 0; i < k.mv_size; i += 512)
				sum ^= ((const uint8_t *)k.mv_data)[i];
			for (size_t i = 0; i < v.mv_size; i += 512)
				sum ^= ((const uint8_t *)v.mv_data)[i];
			(void)sum;
		}
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	mdb_txn_abort(txn);
	return rc;
}

/*
 * Reads the whole spool in dir in a child process: LMDB trusts its pages,
 * so random bytes in one can make it read anywhere and crash; the child
 * crashes instead of the agent. Returns 0 (readable), -EBADMSG (why names
 * the damage) or -errno when it could not be checked.
 */
static int
spool_check_pages(const char *dir, char *why, size_t whylen)
{
	int fds[2], status, r;
	pid_t pid;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -errno;
	if ((pid = fork()) < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		MDB_env *env;
		const char *w = NULL;
		int rc;

		close(fds[0]);
		if ((rc = mdb_env_create(&env)) != 0)
			_exit(2);
		if ((rc = mdb_env_set_maxdbs(env, 4)) == 0 &&
		    (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0)) == 0)
			rc = spool_walk(env, &w);
		mdb_env_close(env);
		if (rc == 0)
			_exit(0);
		if (w != NULL)
			dprintf(fds[1], "%s", w);
		else
			dprintf(fds[1], "LMDB cannot read it: %s", mdb_strerror(rc));
		_exit(spool_is_corruption(rc) ? 1 : 2);
	}
	close(fds[1]);
	n = read(fds[0], why, whylen - 1);
	why[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "reading its pages crashed a checking process (%s)",
		    strsignal(WTERMSIG(status)));
		return -EBADMSG;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
		return -EBADMSG;
	if (why[0] == '\0')
		snprintf(why, whylen, "the checking process failed");
	return -EIO;
}

int
spool_check(const char *dir, char *why, size_t whylen)
{
	const char *w;
	int r;

	why[0] = '\0';
	if ((r = spool_check_file(dir, &w)) == -EBADMSG)
		snprintf(why, whylen, "%s", w);
	else if (r == 0)
		r = spool_check_pages(dir, why, whylen);
	else if (r == 1)
		r = 0;
	else
		snprintf(why, whylen, "%s", strerror(-r));
	return r;
}

/* Moves a broken spool directory aside; returns 0 or -errno. */
static int
spool_move_aside(const char *dir, char *to, size_t tolen)
{
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(to, tolen, "%s.broken-%s", dir, stamp);
		else
			snprintf(to, tolen, "%s.broken-%s.%d", dir, stamp, i);
		if (access(to, F_OK) != 0 && rename(dir, to) == 0)
			return 0;
		if (errno != EEXIST && errno != ENOTEMPTY && access(to, F_OK) != 0)
			return -errno;
	}
	return -EEXIST;
}

/* Entries "<dir>.broken-*" beside dir: the spools moved aside so far. */
static uint64_t
spool_count_moved_aside(const char *dir)
{
	char parent[PATH_MAX], prefix[NAME_MAX + 16];
	const char *slash = strrchr(dir, '/');
	struct dirent *e;
	uint64_t n = 0;
	DIR *d;

	if (slash == NULL) {
		snprintf(parent, sizeof(parent), ".");
		snprintf(prefix, sizeof(prefix), "%s.broken-", dir);
	} else {
		snprintf(parent, sizeof(parent), "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
		snprintf(prefix, sizeof(prefix), "%s.broken-", slash + 1);
	}
	if ((d = opendir(parent)) == NULL)
		return 1;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n > 0 ? n : 1;
}

/*
 * Moves the damaged spool in s->dir aside and opens a new one in its
 * place, which records how many were moved aside (this one included).
 * Returns 0, or a negative error after logging it.
 */
static int
spool_replace(struct spool *s, const char *damage, const char **why)
{
	char aside[PATH_MAX + 64];
	int rc, r;

	if ((r = spool_move_aside(s->dir, aside, sizeof(aside))) != 0) {
		log_error("spool %s is damaged (%s) and cannot be moved aside: %s; "
		    "move it away by hand", s->dir, damage, strerror(-r));
		return r;
	}
	log_error("spool %s is damaged (%s): moved aside to %s and starting a new one; "
	    "the events in it were not shipped: keep it for inspection or delete it",
	    s->dir, damage, aside);
	if ((r = spool_mkdirs(s->dir)) != 0) {
		log_error("spool: cannot create directory %s: %s", s->dir, strerror(-r));
		return r;
	}
	if ((rc = spool_env_open(s, spool_count_moved_aside(s->dir), why)) != 0) {
		log_error("spool %s cannot be opened (%s: %s)", s->dir, *why, mdb_strerror(rc));
		return -EIO;
	}
	return 0;
}

/* Reads the map's usage from its committed state. Returns 0 or an LMDB error. */
static int
spool_env_usage(MDB_env *env, struct spool_usage *u)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t free_pages = 0;
	int rc;

	if ((rc = mdb_env_info(env, &info)) != 0 || (rc = mdb_env_stat(env, &st)) != 0)
		return rc;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	/* dbi 0 is LMDB's free list: each value is a list of page numbers, count first. */
	if ((rc = mdb_cursor_open(txn, 0, &c)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
		if (v.mv_size >= sizeof(size_t))
			free_pages += *(const size_t *)v.mv_data;
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return rc;
	if (free_pages > info.me_last_pgno + 1)
		free_pages = info.me_last_pgno + 1;
	u->psize = st.ms_psize;
	u->high = (info.me_last_pgno + 1) * (uint64_t)st.ms_psize;
	u->used = (info.me_last_pgno + 1 - free_pages) * (uint64_t)st.ms_psize;
	return 0;
}

/* ------------------------------------------------------------ writer thread */

static void spool_seg_put(struct spool *s, struct spool_seg *g);

static struct spool_seg *
spool_seg_get(struct spool *s)
{
	struct spool_seg *g = s->free_segs;

	if (g != NULL) {
		s->free_segs = g->next;
	} else if ((g = calloc(1, sizeof(*g))) != NULL) {
		buf_init(&g->out, SPOOL_SEGMENT_HEADER +
		    ZSTD_compressBound(s->o.segment_max_bytes + s->o.block_bytes +
		    s->o.event_max_bytes + SPOOL_DICT_MAX(s)));
	}
	if (g == NULL)
		return NULL;
	g->next = NULL;
	/* An outsized event's room is given back, as blocks do. */
	if (s->open_raw.cap > 2 * (SPOOL_DICT_ROOM + s->o.segment_max_bytes + s->o.block_bytes))
		buf_free(&s->open_raw);
	buf_reset(&s->open_raw);
	if (buf_reserve(&s->open_raw, SPOOL_DICT_ROOM) != 0) {
		spool_seg_put(s, g);
		return NULL;
	}
	s->open_raw.len = SPOOL_DICT_ROOM;
	memset(&s->open_used, 0, sizeof(s->open_used));
	buf_reset(&g->out);
	g->first_seq = s->next_seq;
	g->events = 0;
	g->uncompressed = 0;
	g->ts_min = UINT64_MAX;
	g->ts_max = 0;
	return g;
}

static void
spool_seg_put(struct spool *s, struct spool_seg *g)
{
	/* A segment that held an outsized event gives that memory back, as blocks do. */
	if (g->out.cap > 2 * (SPOOL_SEGMENT_HEADER +
	    ZSTD_compressBound(s->o.segment_max_bytes + s->o.block_bytes)))
		buf_free(&g->out);
	g->next = s->free_segs;
	s->free_segs = g;
}

/*
 * Puts the segment's Dict right in front of its events and compresses both
 * in one call into g->out after the header room. One call over one buffer
 * measured cheaper than streaming each block in as it came (zstd's stream
 * copies its input into its window, and a segment's blocks met its
 * extDict path; docs/performance.md); the raw segment is the price, in
 * memory_limit's share for the writer.
 */
static int
spool_seg_compress(struct spool *s, struct spool_seg *g)
{
	const uint8_t *src;
	uint8_t *frame;
	size_t events = s->open_raw.len - SPOOL_DICT_ROOM, dlen, total, n;
	int r;

	buf_reset(&s->dict_out);
	if ((r = event_dict_write(s->dict, &s->open_used, &s->dict_out)) != 0)
		return r;
	dlen = s->dict_out.len;
	if (dlen <= SPOOL_DICT_ROOM) {
		memcpy(s->open_raw.data + SPOOL_DICT_ROOM - dlen, s->dict_out.data, dlen);
		src = s->open_raw.data + SPOOL_DICT_ROOM - dlen;
	} else {
		/* A Dict larger than the room: the events move behind it, once. */
		if ((r = buf_reserve(&s->open_raw, dlen - SPOOL_DICT_ROOM)) != 0)
			return r;
		memmove(s->open_raw.data + dlen, s->open_raw.data + SPOOL_DICT_ROOM, events);
		memcpy(s->open_raw.data, s->dict_out.data, dlen);
		s->open_raw.len = dlen + events;
		src = s->open_raw.data;
	}
	total = dlen + events;
	buf_reset(&g->out);
	if ((r = buf_reserve(&g->out, SPOOL_SEGMENT_HEADER + ZSTD_compressBound(total) +
	    SPOOL_CRC_FRAME)) != 0)
		return r;
	frame = g->out.data + SPOOL_SEGMENT_HEADER;
	n = ZSTD_compress2(s->cctx, frame, g->out.cap - SPOOL_SEGMENT_HEADER - SPOOL_CRC_FRAME,
	    src, total);
	if (ZSTD_isError(n)) {
		log_error("spool %s: zstd: %s", s->dir, ZSTD_getErrorName(n));
		return -EIO;
	}
	spool_put_le(frame + n, SPOOL_CRC_MAGIC, 4);
	spool_put_le(frame + n + 4, 4, 4);
	spool_put_le(frame + n + 8, crc32c(frame, n), 4);
	g->out.len = SPOOL_SEGMENT_HEADER + n + SPOOL_CRC_FRAME;
	g->uncompressed = total;
	return 0;
}

/* Finishes the open segment's frame and header and queues it for commit. */
static int
spool_seal(struct spool *s)
{
	struct spool_seg *g = s->open;
	uint8_t *h;
	int r;

	if (g == NULL || g->events == 0)
		return 0;
	if ((r = spool_seg_compress(s, g)) != 0)
		return r;
	h = g->out.data;
	memset(h, 0, SPOOL_SEGMENT_HEADER);
	spool_put_le(h, SPOOL_SEGMENT_MAGIC, 4);
	h[4] = EVENT_FORMAT_3;
	h[5] = SPOOL_CODEC_ZSTD;
	spool_put_le(h + 8, g->events, 4);
	spool_put_le(h + 12, g->uncompressed, 4);
	spool_put_le(h + 16, g->first_seq, 8);
	spool_put_le(h + 24, g->ts_min == UINT64_MAX ? 0 : g->ts_min, 8);
	spool_put_le(h + 32, g->ts_max, 8);
	*s->sealed_tail = g;
	s->sealed_tail = &g->next;
	s->open = NULL;
	return 0;
}

/* Adds a block's events to the open segment, sealing it first if they do not fit. */
static int
spool_take_block(struct spool *s, struct spool_block *b)
{
	int r;

	if (b->pos.len != 0 && (r = buf_append(&s->pending_pos, b->pos.data, b->pos.len)) != 0)
		return r;
	if (b->events == 0)
		return 0;
	if (s->open != NULL && (s->open->events + b->events > s->o.segment_max_events ||
	    s->open->uncompressed + b->data.len > s->o.segment_max_bytes) &&
	    (r = spool_seal(s)) != 0)
		return r;
	if (s->open == NULL && (s->open = spool_seg_get(s)) == NULL)
		return -ENOMEM;
	/*
	 * Copied, not handed over: one zstd call wants the segment contiguous,
	 * and a block's buffer taken as the segment's would let every block
	 * grow to a segment's size: the copy is 2-3 % of the agent's CPU, the
	 * swap up to nine segment-sized buffers instead of eight blocks and
	 * one (docs/performance.md, "Event format 3").
	 */
	if ((r = buf_append(&s->open_raw, b->data.data, b->data.len)) != 0)
		return r;
	event_dict_used_add(&s->open_used, &b->used);
	s->open->events += b->events;
	s->open->uncompressed += b->data.len;
	if (b->ts_min < s->open->ts_min)
		s->open->ts_min = b->ts_min;
	if (b->ts_max > s->open->ts_max)
		s->open->ts_max = b->ts_max;
	s->next_seq += b->events;
	return 0;
}

static void
spool_block_clear(struct spool_block *b)
{
	buf_reset(&b->data);
	buf_reset(&b->pos);
	b->last_pos = 0;
	b->events = 0;
	b->ts_min = UINT64_MAX;
	b->ts_max = 0;
	memset(&b->used, 0, sizeof(b->used));
}

/*
 * Deletes the segments of the ranges d in txn, at most `limit` of them
 * (0: all). Deleting a range again finds nothing, so ranges stay valid
 * until every one is gone. Returns 0 or an LMDB error.
 */
static int
spool_apply_deletes(struct spool *s, MDB_txn *txn, const struct spool_delete_range *d,
    uint64_t limit, uint64_t *deleted, uint64_t *deleted_events)
{
	MDB_cursor *c;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->segments, &c)) != 0)
		return rc;
	for (; d != NULL && rc == 0; d = d->next) {
		uint8_t kb[8];
		MDB_val k = { 8, kb }, v;

		spool_put_be64(kb, d->first);
		/* After a delete the cursor stands on the next record: MDB_NEXT does not skip it. */
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			struct spool_segment seg;
			const char *why;

			if (limit != 0 && *deleted >= limit)
				break;
			if (k.mv_size != 8 || spool_get_be64(k.mv_data) >= d->end)
				break;
			/* Every header was checked at open; a bad one now still goes. */
			if (spool_segment_parse(&k, &v, &seg, &why) == 0)
				*deleted_events += seg.events;
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			(*deleted)++;
		}
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	mdb_cursor_close(c);
	return rc;
}

/* Writes the position records of pending_pos into the files table. */
static int
spool_put_positions(struct spool *s, MDB_txn *txn)
{
	const uint8_t *p = s->pending_pos.data, *end = p + s->pending_pos.len;
	int rc = 0;

	while (p < end && rc == 0) {
		uint32_t len = (uint32_t)spool_get_le(p, 4);
		MDB_val k = { SPOOL_POS_KEY, (void *)(p + 4) };
		MDB_val v = { len - SPOOL_POS_KEY, (void *)(p + 4 + SPOOL_POS_KEY) };

		rc = mdb_put(txn, s->files, &k, &v, 0);
		p += 4 + len;
	}
	return rc;
}

/*
 * Whether an error of a write means that the filesystem is full. LMDB
 * reports a short write as EIO: that is a full disk when the filesystem
 * has no room for a few pages left.
 */
static bool
spool_disk_full_error(struct spool *s, int rc)
{
	struct statvfs sv;

	if (rc == ENOSPC || rc == EDQUOT)
		return true;
	if (rc != EIO || statvfs(s->dir, &sv) != 0)
		return false;
	return (uint64_t)sv.f_bavail * sv.f_frsize < 16 * s->usage.psize;
}

/*
 * Whether the sealed segments may be committed now: the spool stays within
 * max_size (the map's reserve above it is for deletes), and on a full disk
 * within the data file already allocated, less the reserve. Returns 0,
 * MDB_MAP_FULL (spool full) or ENOSPC (disk full).
 */
static int
spool_admit(struct spool *s)
{
	uint64_t pending = s->pending_pos.len;

	for (struct spool_seg *g = s->sealed; g != NULL; g = g->next)
		pending += g->out.len + 64;
	if (s->sealed == NULL)
		return 0;
	if (s->usage.used + pending > s->o.max_size)
		return MDB_MAP_FULL;
	if (s->disk_full && s->usage.used + pending + s->reserve > s->file_size)
		return ENOSPC;
	return 0;
}

/*
 * Deletes in their own transaction, at most limit segments (0: all); n
 * says how many went. Returns 0 or an LMDB error (nothing deleted).
 */
static int
spool_delete_txn(struct spool *s, const struct spool_delete_range *dels, uint64_t limit,
    uint64_t *n)
{
	MDB_txn *txn;
	uint64_t segs = 0, events = 0;
	int rc;

	*n = 0;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = spool_apply_deletes(s, txn, dels, limit, &segs, &events)) != 0 || segs == 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return rc;
	pthread_mutex_lock(&s->mu);
	s->stats.segments_deleted += segs;
	s->stats.events_deleted += events;
	s->stats.events_stored -= events;
	s->stats.commits++;
	pthread_mutex_unlock(&s->mu);
	*n = segs;
	return 0;
}

/*
 * Applies every delete range. When one transaction finds too few free
 * pages (a full map or disk), one segment per transaction does: each needs
 * only a few pages, which the reserve above max_size (and on disk) keeps.
 * Returns 0 or an LMDB error; the ranges are then to be applied again.
 */
static int
spool_commit_deletes(struct spool *s, const struct spool_delete_range *dels)
{
	uint64_t n;
	int rc = spool_delete_txn(s, dels, 0, &n);

	if (rc != MDB_MAP_FULL && !spool_disk_full_error(s, rc))
		return rc;
	log_warn("spool %s: deleting acknowledged segments needs more room than is free: "
	    "deleting them one at a time", s->dir);
	do
		rc = spool_delete_txn(s, dels, 1, &n);
	while (rc == 0 && n != 0);
	return rc;
}

static void spool_update_usage(struct spool *s);

/*
 * One group commit: deletes, sealed segments and positions in one write
 * transaction. Returns 0, MDB_MAP_FULL when the spool is full, ENOSPC when
 * the disk is, or another LMDB error; on error the segments stay pending.
 * *dels_done says whether the deletes were committed (else they are to be
 * applied again).
 */
static int
spool_commit(struct spool *s, const struct spool_delete_range *dels, bool *dels_done)
{
	MDB_txn *txn;
	uint64_t events = 0, segs = 0, raw = 0, packed = 0, deleted = 0, deleted_events = 0;
	int rc, admit = spool_admit(s);

	*dels_done = dels == NULL;
	/* Deletes first and alone when the segments have no room until they are done. */
	if (dels != NULL && admit != 0)
		goto deletes_alone;
	if (admit != 0)
		return admit;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return rc;
	if (dels != NULL &&
	    (rc = spool_apply_deletes(s, txn, dels, 0, &deleted, &deleted_events)) != 0)
		goto fail;
	for (struct spool_seg *g = s->sealed; g != NULL; g = g->next) {
		uint8_t kb[8];
		MDB_val k = { 8, kb }, v = { g->out.len, g->out.data };

		spool_put_be64(kb, g->first_seq);
		if ((rc = mdb_put(txn, s->segments, &k, &v, MDB_APPEND)) != 0)
			goto fail;
		events += g->events;
		raw += g->uncompressed;
		packed += g->out.len;
		segs++;
	}
	if ((rc = spool_put_positions(s, txn)) != 0 ||
	    (rc = spool_meta_put(txn, s->meta, "next_seq",
	    s->open != NULL ? s->open->first_seq : s->next_seq)) != 0)
		goto fail;
	if ((rc = mdb_txn_commit(txn)) != 0) {
		/* Too few free pages for all of it: the deletes alone need fewer. */
		if (dels != NULL && (rc == MDB_MAP_FULL || spool_disk_full_error(s, rc)))
			goto deletes_alone;
		return rc;
	}
	*dels_done = true;
	while (s->sealed != NULL) {
		struct spool_seg *g = s->sealed;

		s->sealed = g->next;
		spool_seg_put(s, g);
	}
	s->sealed_tail = &s->sealed;
	buf_reset(&s->pending_pos);
	pthread_mutex_lock(&s->mu);
	s->stats.events_committed += events;
	s->stats.segments_committed += segs;
	s->stats.bytes_uncompressed += raw;
	s->stats.bytes_compressed += packed;
	s->stats.commits++;
	s->stats.segments_deleted += deleted;
	s->stats.events_deleted += deleted_events;
	s->stats.events_stored += events;
	s->stats.events_stored -= deleted_events;
	s->stats.next_seq = s->next_seq;
	pthread_mutex_unlock(&s->mu);
	return 0;
fail:
	mdb_txn_abort(txn);
	if (dels == NULL || (rc != MDB_MAP_FULL && !spool_disk_full_error(s, rc)))
		return rc;
deletes_alone:
	if ((rc = spool_commit_deletes(s, dels)) != 0)
		return rc;
	*dels_done = true;
	spool_update_usage(s);
	return spool_commit(s, NULL, dels_done);
}

static void
spool_free_deletes(struct spool_delete_range *d)
{
	while (d != NULL) {
		struct spool_delete_range *n = d->next;

		free(d);
		d = n;
	}
}

/*
 * Keeps the data file allocated `reserve` bytes past the map's high-water
 * mark (up to the map size), so that a full filesystem still leaves room
 * for deletes and the next commits. Sets disk_full when the filesystem has
 * no room for that, clears it when it has again.
 */
static void
spool_keep_reserve(struct spool *s)
{
	uint64_t want = s->usage.high + s->reserve;
	struct stat st;
	int fd, r;

	if (want > s->map_size)
		want = s->map_size;
	if ((r = mdb_env_get_fd(s->env, &fd)) != 0) {
		log_error("spool %s: cannot get the data file: %s", s->dir, mdb_strerror(r));
		return;
	}
	if (fstat(fd, &st) != 0) {
		log_error("spool %s: cannot stat the data file: %s", s->dir, strerror(errno));
		return;
	}
	s->file_size = (uint64_t)st.st_size;
	if (s->file_size >= want) {
		r = 0;
	} else if ((r = posix_fallocate(fd, (off_t)s->file_size,
	    (off_t)(want - s->file_size))) == 0) {
		s->file_size = want;
	} else if (r != ENOSPC && r != EDQUOT) {
		/* A filesystem without fallocate: LMDB's own writes will say when it is full. */
		if (!s->no_fallocate)
			log_warn("spool %s: cannot reserve %" PRIu64 " bytes for deletes on its "
			    "filesystem (%s): a full disk will stop the spool until space is freed",
			    s->dir, s->reserve, strerror(r));
		s->no_fallocate = true;
		r = 0;
	} else if (fstat(fd, &st) == 0) {
		/* What the filesystem gave before it was full stays allocated. */
		s->file_size = (uint64_t)st.st_size;
	}
	if (r != 0 && !s->disk_full)
		log_error("spool %s: disk full: the filesystem has no room for the spool to grow "
		    "(%s); sources pause while deletes use the reserve; free space on the "
		    "filesystem of data_dir, or wait for the relays to take events", s->dir,
		    strerror(r));
	else if (r == 0 && s->disk_full)
		log_info("spool %s: the filesystem has room again", s->dir);
	s->disk_full = r != 0;
}

static void
spool_update_usage(struct spool *s)
{
	struct spool_usage u;
	int rc;

	if ((rc = spool_env_usage(s->env, &u)) != 0) {
		log_error("spool %s: cannot read its usage: %s", s->dir, mdb_strerror(rc));
		return;
	}
	s->usage = u;
	spool_keep_reserve(s);
	pthread_mutex_lock(&s->mu);
	s->stats.disk_used = u.used;
	s->stats.full = s->full || s->disk_full_wait;
	s->stats.disk_full = s->disk_full;
	pthread_mutex_unlock(&s->mu);
}

/* The next retry after a failure: 100 ms, doubling up to 5 s. */
static void
spool_backoff(struct spool *s)
{
	s->backoff_ms = s->backoff_ms == 0 ? SPOOL_RETRY_MIN_MS : s->backoff_ms * 2;
	if (s->backoff_ms > SPOOL_RETRY_MAX_MS)
		s->backoff_ms = SPOOL_RETRY_MAX_MS;
	s->retry_ns = spool_now_ns() + s->backoff_ms * 1000000ull;
}

/* Records the outcome of a commit in the writer's state; logs changes. */
static void
spool_commit_result(struct spool *s, int rc)
{
	if (rc == 0) {
		if (s->full || s->disk_full_wait)
			log_info("spool %s: room again; sources resume", s->dir);
		s->full = false;
		s->disk_full_wait = false;
		s->retry_ns = 0;
		s->backoff_ms = 0;
		s->deadline_ns = 0;
		return;
	}
	if (rc == MDB_MAP_FULL) {
		if (!s->full)
			log_warn("spool %s is full (spool.max_size %" PRIu64 " bytes): "
			    "file sources pause until the relays acknowledge events",
			    s->dir, s->o.max_size);
		s->full = true;
	} else if (rc == ENOSPC || spool_disk_full_error(s, rc)) {
		if (!s->disk_full_wait)
			log_error("spool %s: disk full: no room on the filesystem of data_dir for "
			    "new events (%s); sources pause until space is freed or the relays "
			    "take events", s->dir, rc == ENOSPC ? "the reserve for deletes is "
			    "all that is left" : mdb_strerror(rc));
		s->disk_full_wait = true;
		s->disk_full = true;
	} else {
		log_error("spool %s: commit failed: %s; retrying with backoff", s->dir,
		    mdb_strerror(rc));
		pthread_mutex_lock(&s->mu);
		s->stats.commit_errors++;
		pthread_mutex_unlock(&s->mu);
	}
	spool_backoff(s);
}

/* Whether the writer holds events or positions not yet committed. */
static bool
spool_has_pending(const struct spool *s)
{
	return s->open != NULL || s->sealed != NULL || s->pending_pos.len != 0;
}

static void *
spool_writer_main(void *arg)
{
	struct spool *s = arg;
	bool stopping = false;

	spool_update_usage(s);
	for (;;) {
		struct spool_block *blocks = NULL;
		struct spool_delete_range *dels;
		uint64_t now;
		bool due, returned = false, waiting, dels_done;
		int r, rc;

		pthread_mutex_lock(&s->mu);
		for (;;) {
			uint64_t until = 0;

			now = spool_now_ns();
			if (s->stop)
				stopping = true;
			/* Deletes free room: at once, unless their own commit just failed. */
			if ((s->deletes != NULL && now >= s->dels_retry_ns) || stopping)
				break;
			/* Full, or after a failure: blocks wait in the queue, which makes the loop wait. */
			waiting = s->retry_ns > now;
			if (!waiting && (s->full || s->disk_full_wait || s->retry_ns != 0) &&
			    spool_has_pending(s))
				break;
			if (!waiting && s->ready != NULL && !s->full && !s->disk_full_wait)
				break;
			if (!waiting && s->deadline_ns != 0 && now >= s->deadline_ns)
				break;
			if (waiting && (spool_has_pending(s) || s->ready != NULL))
				until = s->retry_ns;
			else if (!waiting && s->deadline_ns != 0)
				until = s->deadline_ns;
			if (s->deletes != NULL && (until == 0 || s->dels_retry_ns < until))
				until = s->dels_retry_ns;
			if (until != 0) {
				struct timespec ts = { (time_t)(until / 1000000000u),
				    (long)(until % 1000000000u) };

				pthread_cond_timedwait(&s->cond, &s->mu, &ts);
			} else {
				pthread_cond_wait(&s->cond, &s->mu);
			}
		}
		dels = s->deletes;
		s->deletes = NULL;
		if ((!s->full && !s->disk_full_wait && s->retry_ns <= now) || stopping) {
			blocks = s->ready;
			s->ready = NULL;
			s->ready_tail = &s->ready;
		}
		pthread_mutex_unlock(&s->mu);

		for (struct spool_block *b = blocks, *next; b != NULL; b = next) {
			next = b->next;
			if (b->events != 0 && s->deadline_ns == 0)
				s->deadline_ns = now + s->o.commit_interval_ms * 1000000u;
			if ((r = spool_take_block(s, b)) != 0) {
				/* Only memory can fail here; the events are lost, their positions too. */
				log_error("spool %s: cannot take %u events: %s", s->dir, b->events,
				    strerror(-r));
				pthread_mutex_lock(&s->mu);
				s->stats.commit_errors++;
				s->stats.events_lost += b->events;
				pthread_mutex_unlock(&s->mu);
			}
			/*
			 * A block grows to hold an event up to event_max_bytes (an HTTP
			 * body can be one event of 2 x max_body_size); keeping that for
			 * every block would put memory_limit out of reach.
			 */
			if (b->data.cap > 2 * s->o.block_bytes)
				buf_free(&b->data);
			spool_block_clear(b);
			pthread_mutex_lock(&s->mu);
			b->next = s->free_blocks;
			s->free_blocks = b;
			s->nfree++;
			pthread_mutex_unlock(&s->mu);
			returned = true;
		}
		if (returned)
			uv_async_send(&s->async);

		now = spool_now_ns();
		/* A sealed (full) segment is committed at once, with whatever else waits. */
		due = dels != NULL || stopping || s->sealed != NULL ||
		    (s->deadline_ns != 0 && now >= s->deadline_ns) ||
		    (s->retry_ns != 0 && now >= s->retry_ns);
		if (due && (spool_has_pending(s) || dels != NULL)) {
			if ((r = spool_seal(s)) != 0)
				log_error("spool %s: cannot seal a segment: %s", s->dir, strerror(-r));
			rc = spool_commit(s, dels, &dels_done);
			/* Deletes are done only when their transaction committed: else they wait. */
			if (dels_done) {
				spool_free_deletes(dels);
				dels = NULL;
				s->dels_retry_ns = 0;
			}
			spool_commit_result(s, rc);
			spool_update_usage(s);
			if (dels != NULL) {
				/* Not applied: put them back for the retry, after the backoff. */
				struct spool_delete_range *t = dels;

				s->dels_retry_ns = s->retry_ns;
				pthread_mutex_lock(&s->mu);
				while (t->next != NULL)
					t = t->next;
				t->next = s->deletes;
				s->deletes = dels;
				pthread_mutex_unlock(&s->mu);
				if (!stopping)
					continue;
			}
			uv_async_send(&s->async);
		}
		if (stopping) {
			pthread_mutex_lock(&s->mu);
			bool more = s->ready != NULL;
			pthread_mutex_unlock(&s->mu);

			if (more && !s->full && !s->disk_full_wait && s->retry_ns == 0)
				continue;
			if (s->sealed != NULL || s->open != NULL || more) {
				uint64_t n = s->open != NULL ? s->open->events : 0;

				for (struct spool_seg *g = s->sealed; g != NULL; g = g->next)
					n += g->events;
				pthread_mutex_lock(&s->mu);
				s->stats.events_lost += n;
				pthread_mutex_unlock(&s->mu);
				log_warn("spool %s: stopping with events not committed (%s): "
				    "their files will be read again from the committed positions",
				    s->dir, s->full ? "the spool is full" : s->disk_full_wait ?
				    "the disk is full" : "commits fail");
			}
			break;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->writer_done = true;
	pthread_mutex_unlock(&s->mu);
	uv_async_send(&s->async);
	return NULL;
}

/* ------------------------------------------------------------ loop side */

static void
spool_handoff(struct spool *s)
{
	struct spool_block *b = s->cur;

	if (b == NULL || (b->events == 0 && b->pos.len == 0))
		return;
	s->cur = NULL;
	pthread_mutex_lock(&s->mu);
	b->next = NULL;
	*s->ready_tail = b;
	s->ready_tail = &b->next;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* The block to append to, or NULL when every block is waiting for the writer. */
static struct spool_block *
spool_block(struct spool *s)
{
	if (s->cur != NULL)
		return s->cur;
	pthread_mutex_lock(&s->mu);
	s->cur = s->free_blocks;
	if (s->cur != NULL) {
		s->free_blocks = s->cur->next;
		s->nfree--;
	} else
		s->stats.full_waits++;
	pthread_mutex_unlock(&s->mu);
	if (s->cur == NULL)
		s->need_writable = true;
	return s->cur;
}

/* One record of the files table: a file's position or a source's cursor. */
struct spool_rec {
	uint64_t dev, ino, offset, fp_hash;
	uint32_t fp_len;
	const char *path;
	size_t plen;
	const char *extra;           /* after the path: a cursor */
	size_t elen;
};

/*
 * The record's integers as spool_put_le and spool_put_be64 write them, in
 * one store each: a record is written per event (bench: the byte loops
 * were 370 instructions of every event, callgrind).
 */
static inline void
spool_st_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline void
spool_st_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline void
spool_st_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

/*
 * Writes or updates the record rc in b. Inlined, as spool_append_rec:
 * with its callers, the calls from a line to the spool were about 200
 * instructions per line (the agent, callgrind).
 */
static inline __attribute__((always_inline)) int
spool_block_record(struct spool_block *b, const struct spool_rec *rc)
{
	size_t rec = 4 + SPOOL_POS_KEY + SPOOL_POS_FIXED + rc->plen + rc->elen;
	uint8_t head[4 + SPOOL_POS_KEY], *p;
	int r;

	spool_st_le32(head, (uint32_t)(rec - 4));
	spool_st_be64(head + 4, rc->dev);
	spool_st_be64(head + 12, rc->ino);
	/*
	 * The same key as the last record, and the same length: rewrite it in
	 * place (a later record of a key replaces an earlier one anyway).
	 */
	p = b->last_pos != 0 ? b->pos.data + b->last_pos - 1 : NULL;
	if (p == NULL || memcmp(p, head, sizeof(head)) != 0) {
		if ((r = buf_reserve(&b->pos, rec)) != 0)
			return r;
		p = b->pos.data + b->pos.len;
		b->last_pos = b->pos.len + 1;
		b->pos.len += rec;
		memcpy(p, head, sizeof(head));
	}
	spool_st_le64(p + 20, rc->offset);
	spool_st_le64(p + 28, rc->fp_hash);
	spool_st_le32(p + 36, rc->fp_len);
	spool_st_le32(p + 40, (uint32_t)rc->plen);
	memcpy(p + 44, rc->path, rc->plen);
	if (rc->elen > 0)
		memcpy(p + 44 + rc->plen, rc->extra, rc->elen);
	return 0;
}

/* The record of a file's position. */
static int
spool_file_rec(const struct spool_file *f, struct spool_rec *rc)
{
	*rc = (struct spool_rec){ .dev = f->dev, .ino = f->ino, .offset = f->offset,
	    .fp_hash = f->fp_hash, .fp_len = f->fp_len, .path = f->path,
	    .plen = f->path_len != 0 ? f->path_len : strlen(f->path) };
	return rc->plen > PATH_MAX ? -ENAMETOOLONG : 0;
}

/* FNV-1a 64: a source name's key in the files table. */
static uint64_t
spool_name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h;
}

/* The record of a source's cursor. */
static int
spool_cursor_rec(const char *name, const char *cursor, struct spool_rec *rc)
{
	*rc = (struct spool_rec){ .dev = SPOOL_CURSOR_DEV, .ino = spool_name_hash(name),
	    .path = name, .plen = strlen(name), .extra = cursor, .elen = strlen(cursor) };
	if (rc->plen > PATH_MAX || rc->elen > SPOOL_CURSOR_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Appends ev and, unless rc is NULL, the record to commit with it. */
static inline __attribute__((always_inline)) int
spool_append_rec(struct spool *s, const struct event *ev, const struct spool_rec *rc)
{
	struct spool_block *b;
	size_t before;
	int r;

	for (;;) {
		if ((b = spool_block(s)) == NULL)
			return -EAGAIN;
		before = b->data.len;
		r = event_dict_encode(s->dict, ev, &b->used, &b->data);
		if (r != -EMSGSIZE || before == 0)
			break;
		/* The event does not fit behind the others: it starts the next block. */
		spool_handoff(s);
	}
	if (r != 0)
		return r;
	if (b->data.len - before > s->o.event_max_bytes) {
		b->data.len = before;
		return -EMSGSIZE;
	}
	/* In the same block as the event, so that both reach the same commit. */
	if (rc != NULL && (r = spool_block_record(b, rc)) != 0) {
		b->data.len = before;
		return r;
	}
	b->events++;
	if (ev->ts < b->ts_min)
		b->ts_min = ev->ts;
	if (ev->ts > b->ts_max)
		b->ts_max = ev->ts;
	s->stats.events_appended++;   /* loop thread only writes this field */
	if (b->data.len >= s->o.block_bytes || b->events >= s->o.segment_max_events)
		spool_handoff(s);
	return 0;
}

int
spool_append(struct spool *s, const struct event *ev, const struct spool_file *pos)
{
	struct spool_rec rc;
	int r;

	if (pos == NULL)
		return spool_append_rec(s, ev, NULL);
	if ((r = spool_file_rec(pos, &rc)) != 0)
		return r;
	return spool_append_rec(s, ev, &rc);
}

int
spool_append_cursor(struct spool *s, const struct event *ev, const char *name,
    const char *cursor)
{
	struct spool_rec rc;
	int r;

	if ((r = spool_cursor_rec(name, cursor, &rc)) != 0)
		return r;
	return spool_append_rec(s, ev, &rc);
}

bool
spool_room(struct spool *s, size_t bytes, size_t events)
{
	size_t need, have;

	/* Each block takes at least block_bytes and segment_max_events before it is handed over. */
	need = bytes / s->o.block_bytes + 1;
	if (events / s->o.segment_max_events + 1 > need)
		need = events / s->o.segment_max_events + 1;
	pthread_mutex_lock(&s->mu);
	have = s->nfree;
	pthread_mutex_unlock(&s->mu);
	/* The current block may be nearly full: it does not count. */
	if (have < need) {
		s->need_writable = true;
		return false;
	}
	return true;
}

/* Records rc without an event. */
static int
spool_set_rec(struct spool *s, const struct spool_rec *rc)
{
	struct spool_block *b;

	if ((b = spool_block(s)) == NULL)
		return -EAGAIN;
	return spool_block_record(b, rc);
}

int
spool_set_position(struct spool *s, const struct spool_file *f)
{
	struct spool_rec rc;
	int r;

	if ((r = spool_file_rec(f, &rc)) != 0)
		return r;
	return spool_set_rec(s, &rc);
}

int
spool_set_cursor(struct spool *s, const char *name, const char *cursor)
{
	struct spool_rec rc;
	int r;

	if ((r = spool_cursor_rec(name, cursor, &rc)) != 0)
		return r;
	return spool_set_rec(s, &rc);
}

void
spool_flush(struct spool *s)
{
	spool_handoff(s);
}

static void
spool_on_prepare(uv_prepare_t *h)
{
	spool_handoff(h->data);
}

/* Calls fn for each position of the files table in txn, until fn returns nonzero. */
static int
spool_files_walk(MDB_txn *txn, MDB_dbi files, int (*fn)(void *ctx, const struct spool_file *f),
    void *ctx)
{
	char path[PATH_MAX + 1];
	MDB_cursor *c;
	MDB_val k, d;
	int rc, r = 0;

	if (mdb_cursor_open(txn, files, &c) != 0)
		return -EIO;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0 && r == 0;
	    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct spool_file f;
		size_t plen;

		if (spool_pos_parse(&k, &d, &f, &plen) != 0) {
			r = -EIO;
			break;
		}
		if (f.dev == SPOOL_CURSOR_DEV)
			continue;
		if (plen > PATH_MAX)
			plen = PATH_MAX;
		memcpy(path, f.path, plen);
		path[plen] = '\0';
		f.path = path;
		f.path_len = plen;
		r = fn(ctx, &f);
	}
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = -EIO;
	mdb_cursor_close(c);
	return r;
}

/* A cursor record's name and cursor, NUL-terminated in name and cursor. */
static int
spool_cursor_parse(const MDB_val *k, const MDB_val *v, char *name, size_t namelen,
    char *cursor, size_t cursorlen)
{
	struct spool_file f;
	size_t plen, clen;

	if (spool_pos_parse(k, v, &f, &plen) != 0 || f.dev != SPOOL_CURSOR_DEV)
		return -EIO;
	clen = v->mv_size - SPOOL_POS_FIXED - plen;
	if ((name != NULL && plen >= namelen) || clen >= cursorlen)
		return -ENAMETOOLONG;
	if (name != NULL) {
		memcpy(name, f.path, plen);
		name[plen] = '\0';
	}
	memcpy(cursor, f.path + plen, clen);
	cursor[clen] = '\0';
	return 0;
}

/* Calls fn for each cursor of the files table in txn, until fn returns nonzero. */
static int
spool_cursors_walk(MDB_txn *txn, MDB_dbi files,
    int (*fn)(void *ctx, const char *name, const char *cursor), void *ctx)
{
	char name[PATH_MAX + 1], cursor[SPOOL_CURSOR_MAX + 1];
	uint8_t kb[8];
	MDB_cursor *c;
	MDB_val k = { sizeof(kb), kb }, d;
	int rc, r = 0;

	if (mdb_cursor_open(txn, files, &c) != 0)
		return -EIO;
	/* Cursors sort last: their key starts with SPOOL_CURSOR_DEV. */
	spool_put_be64(kb, SPOOL_CURSOR_DEV);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0 && r == 0;
	    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (spool_cursor_parse(&k, &d, name, sizeof(name), cursor, sizeof(cursor)) != 0) {
			r = -EIO;
			break;
		}
		r = fn(ctx, name, cursor);
	}
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = -EIO;
	mdb_cursor_close(c);
	return r;
}

int
spool_get_cursor(struct spool *s, const char *name, char *cursor, size_t len)
{
	uint8_t kb[SPOOL_POS_KEY];
	MDB_val k = { SPOOL_POS_KEY, kb }, v;
	char stored[PATH_MAX + 1];
	MDB_txn *txn;
	int rc, r;

	spool_put_be64(kb, SPOOL_CURSOR_DEV);
	spool_put_be64(kb + 8, spool_name_hash(name));
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		log_error("spool %s: cannot read: %s", s->dir, mdb_strerror(rc));
		return -EIO;
	}
	rc = mdb_get(txn, s->files, &k, &v);
	if (rc == MDB_NOTFOUND)
		r = -ENOENT;
	else if (rc != 0)
		r = -EIO;
	else if ((r = spool_cursor_parse(&k, &v, stored, sizeof(stored), cursor, len)) == 0 &&
	    strcmp(stored, name) != 0)
		r = -ENOENT;   /* another name of the same hash: never this source's */
	mdb_txn_abort(txn);
	return r;
}

int
spool_get_position(struct spool *s, uint64_t dev, uint64_t ino, struct spool_file *out,
    char *path, size_t pathlen)
{
	uint8_t kb[SPOOL_POS_KEY];
	MDB_val k = { SPOOL_POS_KEY, kb }, v;
	MDB_txn *txn;
	size_t plen;
	int rc, r = 0;

	spool_put_be64(kb, dev);
	spool_put_be64(kb + 8, ino);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		log_error("spool %s: cannot read: %s", s->dir, mdb_strerror(rc));
		return -EIO;
	}
	rc = mdb_get(txn, s->files, &k, &v);
	if (rc == MDB_NOTFOUND) {
		r = -ENOENT;
	} else if (rc != 0 || spool_pos_parse(&k, &v, out, &plen) != 0) {
		r = -EIO;
	} else if (pathlen > 0) {
		if (plen >= pathlen)
			plen = pathlen - 1;
		memcpy(path, out->path, plen);
		path[plen] = '\0';
		out->path = path;
		out->path_len = plen;
	} else {
		out->path = NULL;
		out->path_len = 0;
	}
	mdb_txn_abort(txn);
	return r;
}

int
spool_each_position(struct spool *s, int (*fn)(void *ctx, const struct spool_file *f),
    void *ctx)
{
	MDB_txn *txn;
	int rc, r;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		log_error("spool %s: cannot read: %s", s->dir, mdb_strerror(rc));
		return -EIO;
	}
	r = spool_files_walk(txn, s->files, fn, ctx);
	mdb_txn_abort(txn);
	return r;
}

int
spool_when_committed(struct spool *s, void (*cb)(void *ctx, int status), void *ctx)
{
	struct spool_waiter *w;

	if (s->close_requested)
		return -ECANCELED;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->target = s->stats.events_appended;   /* loop-thread field */
	pthread_mutex_lock(&s->mu);
	w->lost_before = s->stats.events_lost;
	pthread_mutex_unlock(&s->mu);
	w->cb = cb;
	w->ctx = ctx;
	*s->waiters_tail = w;
	s->waiters_tail = &w->next;
	spool_handoff(s);
	/* Maybe already true: let the async callback decide, never call back from here. */
	uv_async_send(&s->async);
	return 0;
}

void
spool_set_commit_cb(struct spool *s, void (*cb)(void *ctx), void *ctx)
{
	s->commit_cb = cb;
	s->commit_ctx = ctx;
}

int
spool_delete(struct spool *s, uint64_t first, uint64_t end)
{
	struct spool_delete_range *d;

	if (first >= end)
		return 0;
	if ((d = malloc(sizeof(*d))) == NULL)
		return -ENOMEM;
	d->first = first;
	d->end = end;
	pthread_mutex_lock(&s->mu);
	d->next = s->deletes;
	s->deletes = d;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void
spool_get_stats(struct spool *s, struct spool_stats *st)
{
	pthread_mutex_lock(&s->mu);
	*st = s->stats;
	pthread_mutex_unlock(&s->mu);
	/*
	 * Not need_writable: an appender waiting for a hand-off block (the
	 * writer is busy for a commit) is no full spool, and saying so made the
	 * HTTP source answer "503 the spool is full" on an empty spool.
	 */
}

static void
spool_free(struct spool *s)
{
	struct spool_block *b;
	struct spool_seg *g;

	if (s->cur != NULL) {
		s->cur->next = s->free_blocks;
		s->free_blocks = s->cur;
	}
	while ((b = s->free_blocks) != NULL) {
		s->free_blocks = b->next;
		buf_free(&b->data);
		buf_free(&b->pos);
		free(b);
	}
	while ((b = s->ready) != NULL) {
		s->ready = b->next;
		buf_free(&b->data);
		buf_free(&b->pos);
		free(b);
	}
	if (s->open != NULL)
		spool_seg_put(s, s->open);
	while ((g = s->sealed) != NULL) {
		s->sealed = g->next;
		spool_seg_put(s, g);
	}
	while ((g = s->free_segs) != NULL) {
		s->free_segs = g->next;
		buf_free(&g->out);
		free(g);
	}
	buf_free(&s->dict_out);
	buf_free(&s->open_raw);
	event_dict_free(s->dict);
	spool_free_deletes(s->deletes);
	buf_free(&s->pending_pos);
	ZSTD_freeCCtx(s->cctx);
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s->dir);
	free(s);
}

static void
spool_on_closed(uv_handle_t *h)
{
	struct spool *s = h->data;

	if (--s->closing == 0) {
		void (*done)(void *) = s->done;
		void *ctx = s->done_ctx;

		spool_free(s);
		if (done != NULL)
			done(ctx);
	}
}

/* Calls the waiters whose events are committed (or lost: status -EIO); all of them when closing. */
static void
spool_fire_waiters(struct spool *s, uint64_t committed, uint64_t lost, bool all)
{
	struct spool_waiter *w;

	while ((w = s->waiters) != NULL && (all || committed + lost >= w->target)) {
		int status = 0;

		s->waiters = w->next;
		if (s->waiters == NULL)
			s->waiters_tail = &s->waiters;
		if (lost > w->lost_before)
			status = -EIO;
		else if (committed < w->target)
			status = -ECANCELED;
		w->cb(w->ctx, status);
		free(w);
	}
}

static void
spool_on_async(uv_async_t *h)
{
	struct spool *s = h->data;
	uint64_t committed, lost;
	uint64_t segments;
	bool done, room;

	pthread_mutex_lock(&s->mu);
	done = s->writer_done;
	room = s->free_blocks != NULL;
	committed = s->stats.events_committed;
	lost = s->stats.events_lost;
	segments = s->stats.segments_committed;
	pthread_mutex_unlock(&s->mu);
	spool_fire_waiters(s, committed, lost, done);
	if (segments != s->segments_seen) {
		s->segments_seen = segments;
		if (s->commit_cb != NULL && !s->close_requested)
			s->commit_cb(s->commit_ctx);
	}
	if (done && s->close_requested && s->closing == 0) {
		pthread_join(s->writer, NULL);
		s->writer_started = false;
		s->closing = 2;
		uv_close((uv_handle_t *)&s->prepare, spool_on_closed);
		uv_close((uv_handle_t *)&s->async, spool_on_closed);
		return;
	}
	if (room && s->need_writable && !s->close_requested) {
		s->need_writable = false;
		s->writable(s->ctx);
	}
}

static void
spool_on_closed_early(uv_handle_t *h)
{
	(void)h;
}

int
spool_open(uv_loop_t *loop, const struct spool_options *o, void (*writable)(void *ctx),
    void *ctx, struct spool **out)
{
	struct spool *s;
	pthread_condattr_t ca;
	const char *why;
	char whybuf[256];
	int rc, r;

	if (o->queue_blocks < 2 || o->segment_max_events == 0 || o->block_bytes == 0 ||
	    o->event_max_bytes == 0)
		return -EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->dir = strdup(o->dir)) == NULL) {
		free(s);
		return -ENOMEM;
	}
	s->o = *o;
	s->o.dir = s->dir;
	s->reserve = spool_reserve(o->max_size);
	s->map_size = o->max_size + s->reserve;
	s->loop = loop;
	s->writable = writable;
	s->ctx = ctx;
	s->ready_tail = &s->ready;
	s->sealed_tail = &s->sealed;
	s->waiters_tail = &s->waiters;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	buf_init(&s->pending_pos, SIZE_MAX);
	buf_init(&s->dict_out, SIZE_MAX);
	buf_init(&s->open_raw, SPOOL_DICT_ROOM + o->segment_max_bytes + o->block_bytes +
	    o->event_max_bytes + SPOOL_DICT_MAX(s));
	if ((s->dict = event_dict_new(o->dict_bytes)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	event_dict_set_format(s->dict, EVENT_FORMAT_3);
	if ((r = spool_mkdirs(s->dir)) != 0) {
		log_error("spool: cannot create directory %s: %s; check data_dir and its permissions",
		    s->dir, strerror(-r));
		goto fail;
	}
	if ((r = spool_check(s->dir, whybuf, sizeof(whybuf))) == -EBADMSG) {
		if ((r = spool_replace(s, whybuf, &why)) != 0)
			goto fail;
	} else {
		if (r != 0)
			log_warn("spool %s: cannot check it before use: %s", s->dir, whybuf);
		rc = spool_env_open(s, 0, &why);
		if (rc != 0 && spool_is_corruption(rc)) {
			snprintf(whybuf, sizeof(whybuf), "%s: %s", why, mdb_strerror(rc));
			if ((r = spool_replace(s, whybuf, &why)) != 0)
				goto fail;
		} else if (rc != 0) {
			log_error("spool %s cannot be opened (%s: %s)", s->dir, why, mdb_strerror(rc));
			r = -EIO;
			goto fail;
		}
	}
	if ((s->cctx = ZSTD_createCCtx()) == NULL ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel,
	    o->zstd_level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_checksumFlag, 0)) ||
	    (o->zstd_level == 1 &&
	    ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_hashLog, SPOOL_ZSTD_HASHLOG)))) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < o->queue_blocks; i++) {
		struct spool_block *b = calloc(1, sizeof(*b));

		if (b == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		buf_init(&b->data, o->block_bytes + o->event_max_bytes);
		buf_init(&b->pos, SIZE_MAX);
		spool_block_clear(b);
		b->next = s->free_blocks;
		s->free_blocks = b;
		s->nfree++;
	}
	s->nblocks = o->queue_blocks;
	uv_prepare_init(loop, &s->prepare);
	s->prepare.data = s;
	uv_prepare_start(&s->prepare, spool_on_prepare);
	uv_unref((uv_handle_t *)&s->prepare);
	uv_async_init(loop, &s->async, spool_on_async);
	s->async.data = s;
	if ((r = pthread_create(&s->writer, NULL, spool_writer_main, s)) != 0) {
		log_error("spool %s: cannot start the writer thread: %s", s->dir, strerror(r));
		uv_close((uv_handle_t *)&s->prepare, spool_on_closed_early);
		uv_close((uv_handle_t *)&s->async, spool_on_closed_early);
		uv_run(loop, UV_RUN_NOWAIT);
		r = -r;
		goto fail;
	}
	s->writer_started = true;
	*out = s;
	return 0;
fail:
	spool_free(s);
	return r;
}

void
spool_close(struct spool *s, void (*done)(void *ctx), void *ctx)
{
	spool_handoff(s);
	s->close_requested = true;
	s->done = done;
	s->done_ctx = ctx;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ read-only view */

struct spool_view {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi segments, files, meta;
	char *dir;
};

int
spool_view_open(const char *dir, struct spool_view **out)
{
	struct spool_view *v;
	char data[PATH_MAX], why[256];
	int rc;

	if ((size_t)snprintf(data, sizeof(data), "%s/data.mdb", dir) >= sizeof(data))
		return -ENAMETOOLONG;
	if (access(data, F_OK) != 0)
		return -ENOENT;
	if ((rc = spool_check(dir, why, sizeof(why))) == -EBADMSG) {
		log_error("spool %s is damaged (%s): the agent moves it aside when it starts",
		    dir, why);
		return -EBADMSG;
	}
	if (rc != 0)
		log_warn("spool %s: cannot check it before reading: %s", dir, why);
	if ((v = calloc(1, sizeof(*v))) == NULL || (v->dir = strdup(dir)) == NULL) {
		free(v);
		return -ENOMEM;
	}
	if ((rc = mdb_env_create(&v->env)) != 0 || (rc = mdb_env_set_maxdbs(v->env, 4)) != 0 ||
	    (rc = mdb_env_open(v->env, dir, MDB_RDONLY | MDB_NOTLS, 0)) != 0 ||
	    (rc = mdb_txn_begin(v->env, NULL, MDB_RDONLY, &v->txn)) != 0 ||
	    (rc = mdb_dbi_open(v->txn, "segments", 0, &v->segments)) != 0 ||
	    (rc = mdb_dbi_open(v->txn, "files", 0, &v->files)) != 0 ||
	    (rc = mdb_dbi_open(v->txn, "meta", 0, &v->meta)) != 0) {
		log_error("spool %s cannot be read: %s", dir, mdb_strerror(rc));
		spool_view_close(v);
		return -EIO;
	}
	*out = v;
	return 0;
}

void
spool_view_close(struct spool_view *v)
{
	if (v == NULL)
		return;
	if (v->txn != NULL)
		mdb_txn_abort(v->txn);
	if (v->env != NULL)
		mdb_env_close(v->env);
	free(v->dir);
	free(v);
}

/* Segments from the one holding `from` on, in a transaction of the caller's. */
/*
 * Reports a segment whose header or frame is damaged, found by the
 * shipper's read (the open checked every one: the disk changed since), and has the
 * writer delete it, so that shipping goes on past it.
 */
static void
spool_damaged_segment(struct spool *s, uint64_t key, const char *why)
{
	int r;

	if (s->damaged_last == key + 1)
		return;   /* already reported; its delete is on its way */
	s->damaged_last = key + 1;
	log_error("spool %s: segment %" PRIu64 " is damaged (%s): deleted; its events are lost",
	    s->dir, key, why);
	if ((r = spool_delete(s, key, key + 1)) != 0) {
		log_error("spool %s: cannot delete segment %" PRIu64 ": %s", s->dir, key,
		    strerror(-r));
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->stats.segments_damaged++;
	pthread_mutex_unlock(&s->mu);
}

/*
 * Segments from the one holding `from` on, in a transaction of the
 * caller's. With s (the running spool), a segment with a damaged header is
 * skipped and deleted; without (a view), it ends the walk with -EIO.
 */
static int
spool_iter_segments(struct spool *s, MDB_txn *txn, MDB_dbi dbi, uint64_t from,
    int (*fn)(void *ctx, const struct spool_segment *seg), void *ctx, const char **why)
{
	MDB_cursor *c;
	uint8_t kb[8];
	MDB_val k = { 8, kb }, d;
	int rc, r = 0;

	*why = NULL;
	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0) {
		*why = mdb_strerror(rc);
		return -EIO;
	}
	spool_put_be64(kb, from);
	/* The segment holding `from` may start before it. */
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	if (rc == 0 && spool_get_be64(k.mv_data) > from) {
		rc = mdb_cursor_get(c, &k, &d, MDB_PREV);
		if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
	} else if (rc == MDB_NOTFOUND) {
		rc = mdb_cursor_get(c, &k, &d, MDB_LAST);
	}
	for (; rc == 0 && r == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct spool_segment seg;
		size_t frame_len;

		/*
		 * The shipper sends what it reads as stored: its checksum is
		 * checked first. A view leaves it to spool_segment_stored, so
		 * that --spool-dump skips a damaged segment and goes on.
		 */
		if (spool_segment_parse(&k, &d, &seg, why) != 0 ||
		    (s != NULL && spool_segment_check(&seg, &frame_len, why) != 0)) {
			if (s != NULL && k.mv_size == 8) {
				spool_damaged_segment(s, spool_get_be64(k.mv_data), *why);
				*why = NULL;
				continue;
			}
			r = -EIO;
			break;
		}
		if (seg.first_seq + seg.events <= from)
			continue;
		r = fn(ctx, &seg);
	}
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND) {
		*why = mdb_strerror(rc);
		r = -EIO;
	}
	mdb_cursor_close(c);
	return r;
}

int
spool_view_segments(struct spool_view *v, uint64_t from,
    int (*fn)(void *ctx, const struct spool_segment *seg), void *ctx, const char **why)
{
	return spool_iter_segments(NULL, v->txn, v->segments, from, fn, ctx, why);
}

int
spool_view_files(struct spool_view *v, int (*fn)(void *ctx, const struct spool_file *f),
    void *ctx)
{
	return spool_files_walk(v->txn, v->files, fn, ctx);
}

int
spool_view_cursors(struct spool_view *v,
    int (*fn)(void *ctx, const char *name, const char *cursor), void *ctx)
{
	return spool_cursors_walk(v->txn, v->files, fn, ctx);
}

static uint64_t
spool_view_meta(struct spool_view *v, const char *name)
{
	uint64_t n = 0;
	int rc;

	if ((rc = spool_meta_get(v->txn, v->meta, name, &n)) != 0) {
		if (rc != MDB_NOTFOUND)
			log_error("spool %s: cannot read %s: %s", v->dir, name, mdb_strerror(rc));
		return 0;
	}
	return n;
}

uint64_t
spool_view_format(struct spool_view *v)
{
	return spool_view_meta(v, "format");
}

uint64_t
spool_view_next_seq(struct spool_view *v)
{
	return spool_view_meta(v, "next_seq");
}

uint64_t
spool_view_moved_aside(struct spool_view *v)
{
	return spool_view_meta(v, "moved_aside");
}

uint64_t
spool_view_segments_damaged(struct spool_view *v)
{
	return spool_view_meta(v, "segments_damaged");
}

int
spool_view_usage(struct spool_view *v, uint64_t *used, uint64_t *file_size)
{
	struct spool_usage u;
	char data[PATH_MAX];
	struct stat st;
	int rc;

	*used = *file_size = 0;
	if ((rc = spool_env_usage(v->env, &u)) != 0) {
		log_error("spool %s: cannot read its usage: %s", v->dir, mdb_strerror(rc));
		return -EIO;
	}
	*used = u.used;
	snprintf(data, sizeof(data), "%s/data.mdb", v->dir);
	if (stat(data, &st) != 0)
		return -errno;
	*file_size = (uint64_t)st.st_size;
	return 0;
}

int
spool_segments(struct spool *s, uint64_t from,
    int (*fn)(void *ctx, const struct spool_segment *seg), void *ctx, const char **why)
{
	MDB_txn *txn;
	int rc, r;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		*why = mdb_strerror(rc);
		return -EIO;
	}
	r = spool_iter_segments(s, txn, s->segments, from, fn, ctx, why);
	mdb_txn_abort(txn);
	return r;
}
