/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spool: the agent's durable store, one LMDB environment (docs/architecture.md "Spool").
 *
 * Tables: `segments` (key: 64-bit big-endian sequence number of the first
 * event; value: a spool_segment header and one zstd frame of a serialized
 * EventList), `files` (read positions keyed by device and inode, with the
 * fingerprint and path; and journal cursors keyed by source name) and
 * `meta` (format version, next sequence number).
 *
 * Threads. The loop thread encodes events straight into hand-off blocks
 * (spool_append) and never touches the disk for writing. One writer thread
 * owns every write transaction: it copies blocks into the open segment
 * as they arrive (events in format 2, proto/event_dict.h), writes the
 * segment's Dict in front of them and compresses both when it seals it,
 * and, at each group commit (commit_interval after the
 * first event waiting, or when enough is sealed), writes the sealed
 * segments together with the file positions they advance in one
 * transaction. A position therefore never becomes durable before the lines
 * it covers (docs/architecture.md guarantee 1). The hand-off is bounded in blocks; when
 * it is full, or the spool has reached max_size, spool_append says -EAGAIN
 * and the `writable` callback later says when to try again.
 */
#ifndef LOGFERRY_SPOOL_H
#define LOGFERRY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "proto/event.h"

/* The header in front of every stored segment (little-endian on disk). */
#define SPOOL_SEGMENT_MAGIC 0x3153464cu   /* "LFS1" */
#define SPOOL_SEGMENT_HEADER 40
#define SPOOL_CODEC_ZSTD 1
struct spool_segment {
	uint64_t first_seq;
	uint32_t events;
	uint32_t uncompressed;       /* bytes of the EventList */
	uint8_t codec;               /* SPOOL_CODEC_ZSTD */
	uint8_t event_format;        /* EVENT_FORMAT_1, _2 or _3: how its EventList is written */
	uint64_t ts_oldest, ts_newest;
	const uint8_t *payload;      /* the zstd frame, in LMDB's map */
	size_t payload_len;
};

/* A file's committed read position. */
struct spool_file {
	uint64_t dev, ino;
	uint32_t fp_len;             /* fingerprint: FNV-1a 64 of the first fp_len bytes */
	uint64_t fp_hash;
	uint64_t offset;             /* first byte not yet spooled */
	const char *path;            /* for operators; NUL-terminated */
	size_t path_len;             /* strlen(path), or 0: spool_append counts it */
};

struct spool_options {
	const char *dir;             /* created if missing (mode 0750) */
	uint64_t max_size;           /* bytes of events and positions (spool_reserve: more on disk) */
	bool sync_always;            /* false: MDB_NOMETASYNC */
	uint64_t commit_interval_ms;
	uint32_t segment_max_events;
	size_t segment_max_bytes;    /* of the uncompressed EventList */
	size_t event_max_bytes;      /* largest encoded event accepted */
	size_t queue_blocks;         /* hand-off blocks; >= 2 */
	size_t block_bytes;          /* a block is handed over past this many bytes */
	int zstd_level;
	size_t dict_bytes;           /* format 2's names and origins table: bytes of names (proto/event_dict.h) */
};

/*
 * The room kept above max_size for deletes: LMDB's map is max_size plus
 * this, and the data file is kept allocated this far past what it holds,
 * so that a full spool or a full filesystem can always delete what the
 * relays acknowledged.
 */
uint64_t spool_reserve(uint64_t max_size);

/* Sets o to the defaults, for dir. */
void spool_options_default(struct spool_options *o, const char *dir);

struct spool;

/*
 * Checks the spool in dir before anything maps it (spool_check says how);
 * a damaged one is moved aside to "<dir>.broken-<UTC time>", logged as an
 * error, and a new one is created in its place, which counts the spools
 * moved aside so far in stats.moved_aside. A segment whose header or zstd
 * frame is damaged is deleted alone (stats.segments_damaged). writable(ctx) runs
 * on the loop after spool_append said -EAGAIN, once there is room again.
 * Returns 0, or a negative error after logging it.
 */
int spool_open(uv_loop_t *loop, const struct spool_options *o,
    void (*writable)(void *ctx), void *ctx, struct spool **out);

/*
 * Appends one event and, unless pos is NULL, the read position to commit
 * together with it (a later position of the same file replaces it).
 * Returns 0, -EAGAIN when there is no room now (nothing was taken: offer
 * the event again after the writable callback), -EMSGSIZE for an event
 * larger than event_max_bytes (never accepted), -ENAMETOOLONG for a path
 * over PATH_MAX, or -EINVAL for an event that cannot be encoded.
 */
int spool_append(struct spool *s, const struct event *ev, const struct spool_file *pos);

/*
 * Whether `events` events of `bytes` encoded bytes in all can be appended
 * now without -EAGAIN (for sources that must take a request whole or not
 * at all). When false, the writable callback follows once there is room.
 */
bool spool_room(struct spool *s, size_t bytes, size_t events);

/*
 * Records a read position without an event (a file first seen and started
 * at its end). Returns 0, -EAGAIN, or -ENAMETOOLONG.
 */
int spool_set_position(struct spool *s, const struct spool_file *f);

/*
 * A journal source's cursor: committed like a file position, in the same
 * transaction as the events appended with it, and kept apart from file
 * positions (spool_each_position and spool_view_files never list it).
 * name is the source's name; a cursor is at most SPOOL_CURSOR_MAX bytes.
 */
#define SPOOL_CURSOR_MAX 1024

/* spool_append with name's cursor as the position. Returns as spool_append. */
int spool_append_cursor(struct spool *s, const struct event *ev, const char *name,
    const char *cursor);

/* Records name's cursor without an event. Returns 0, -EAGAIN, or -ENAMETOOLONG. */
int spool_set_cursor(struct spool *s, const char *name, const char *cursor);

/*
 * The committed cursor of name into cursor[0, len), NUL-terminated.
 * Returns 0, -ENOENT, -ENAMETOOLONG when len is too small, or -EIO.
 */
int spool_get_cursor(struct spool *s, const char *name, char *cursor, size_t len);

/* Hands what was appended to the writer now (otherwise: at the end of the loop turn). */
void spool_flush(struct spool *s);

/*
 * Calls fn for each committed file position, on the loop thread, until fn
 * returns nonzero (returned as is). f and its path are valid during the
 * call. Returns 0, fn's value, or -EIO.
 */
int spool_each_position(struct spool *s, int (*fn)(void *ctx, const struct spool_file *f),
    void *ctx);

/*
 * The committed position of a file, read on the loop thread. path receives
 * the stored path (truncated to pathlen). Returns 0, -ENOENT, or -EIO.
 */
int spool_get_position(struct spool *s, uint64_t dev, uint64_t ino, struct spool_file *out,
    char *path, size_t pathlen);

/*
 * Calls cb(ctx, status) on the loop once every event appended before this
 * call is committed (status 0), or when some of them will never be (-EIO:
 * lost to an error; -ECANCELED: the spool closed first). Callbacks run in
 * call order, never from inside this function. Returns 0, -ENOMEM, or
 * -ECANCELED after spool_close.
 */
int spool_when_committed(struct spool *s, void (*cb)(void *ctx, int status), void *ctx);

/*
 * Reads the committed segments from the one holding sequence number `from`
 * on (the shipper's read, on the loop thread), like spool_view_segments,
 * except that a segment whose header is damaged is logged, skipped and
 * deleted (stats.segments_damaged) instead of ending the read.
 */
int spool_segments(struct spool *s, uint64_t from,
    int (*fn)(void *ctx, const struct spool_segment *seg), void *ctx, const char **why);

/*
 * cb(ctx) runs on the loop after each commit that stored new segments (the
 * shipper's cue to read them with spool_segments); NULL stops it. Not after
 * spool_close.
 */
void spool_set_commit_cb(struct spool *s, void (*cb)(void *ctx), void *ctx);

/* Deletes the segments whose first sequence is in [first, end) (after the relay's Ack). */
int spool_delete(struct spool *s, uint64_t first, uint64_t end);

/*
 * Commits everything handed over, stops the writer and frees s; done(ctx)
 * runs on the loop when all of it is finished. spool_append must not be
 * called after this.
 */
void spool_close(struct spool *s, void (*done)(void *ctx), void *ctx);

struct spool_stats {
	uint64_t events_appended;     /* taken by spool_append */
	uint64_t events_committed;
	uint64_t events_lost;         /* handed over but never committed (errors, full at stop) */
	uint64_t segments_committed;
	uint64_t commits;
	uint64_t segments_deleted;
	uint64_t events_deleted;      /* in deleted segments (acknowledged, or rejected) */
	uint64_t events_stored;       /* now: committed and not deleted, to be shipped */
	uint64_t bytes_uncompressed;  /* of committed segments */
	uint64_t bytes_compressed;
	uint64_t next_seq;            /* sequence number of the next event */
	uint64_t disk_used;           /* bytes in use in the LMDB map, after the last commit */
	uint64_t full_waits;          /* times spool_append said -EAGAIN */
	uint64_t moved_aside;         /* damaged spools moved aside (kept in meta) */
	uint64_t segments_damaged;    /* damaged segments deleted (those at open kept in meta) */
	uint64_t commit_errors;
	bool full;                    /* no room for new events: max_size reached or disk full */
	bool disk_full;               /* the filesystem has no room for the spool to grow */
};
void spool_get_stats(struct spool *s, struct spool_stats *st);

/* ---- Reading, without a running agent (operator commands, tests). ---- */

/*
 * Whether the spool in dir is safe to map and read: the data file holds
 * every page its newer meta page counts (both meta pages read with pread),
 * and a child process reads every record of every table without an LMDB
 * error or a crash. Returns 0 (safe, or no spool), -EBADMSG (damaged: why
 * says how) or another negative error (not checked: why says why).
 */
int spool_check(const char *dir, char *why, size_t whylen);

struct spool_view;

/*
 * Opens the spool in dir read-only, after spool_check. Returns 0, -ENOENT
 * if there is none, -EBADMSG when it is damaged, or -EIO (logged).
 */
int spool_view_open(const char *dir, struct spool_view **out);
void spool_view_close(struct spool_view *v);

/*
 * Calls fn for each stored segment from the one holding sequence number
 * `from` on, in order, until fn returns nonzero (returned as is). The
 * segment is valid during the call. Returns 0, fn's value, or -EIO for a
 * malformed segment (with why set).
 */
int spool_view_segments(struct spool_view *v, uint64_t from,
    int (*fn)(void *ctx, const struct spool_segment *seg), void *ctx, const char **why);

/* Calls fn for each stored file position. */
int spool_view_files(struct spool_view *v,
    int (*fn)(void *ctx, const struct spool_file *f), void *ctx);

/* Calls fn for each committed journal cursor, until fn returns nonzero. */
int spool_view_cursors(struct spool_view *v,
    int (*fn)(void *ctx, const char *name, const char *cursor), void *ctx);

/* The next sequence number the spool will give (from meta). */
uint64_t spool_view_next_seq(struct spool_view *v);

/*
 * The spool's format (from meta): 2 since event format 2 (its segments
 * are format 1 or 2, each saying which in its header); a spool of
 * format 1 is upgraded in place when the agent opens it.
 */
uint64_t spool_view_format(struct spool_view *v);

/* Broken spools moved aside before this one was created (from meta). */
uint64_t spool_view_moved_aside(struct spool_view *v);

/* Damaged segments deleted at open so far (from meta). */
uint64_t spool_view_segments_damaged(struct spool_view *v);

/* Bytes in use in the map and the size of the data file. Returns 0 or -EIO (logged). */
int spool_view_usage(struct spool_view *v, uint64_t *used, uint64_t *file_size);

/*
 * Decompresses seg into out as stored (which must be able to hold
 * seg->uncompressed bytes): an EventList of seg->event_format. Returns 0,
 * -EIO when the frame does not decode to exactly the announced size, or
 * buf_reserve's -ENOMEM or -EMSGSIZE (out's bound) when out cannot hold it.
 */
int spool_segment_stored(const struct spool_segment *seg, struct buf *out);

/*
 * Decompresses seg into out as a format-1 EventList, whatever its event
 * format (proto/event.h event_list_format1): every event self-contained,
 * for the callers that take events apart (the shipper's split,
 * --spool-dump). Returns 0 or an error as spool_segment_stored does, and
 * -EIO for a format-2 list whose framing is malformed.
 */
int spool_segment_decompress(const struct spool_segment *seg, struct buf *out);

#endif
