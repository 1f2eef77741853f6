/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tail: follows the files of one `file` source on the agent's loop and hands
 * their lines, one at a time, to the caller.
 *
 * Files are found by globs, re-scanned every scan_interval; inotify (libuv
 * fs_event) on each file makes reads prompt, inotify on each directory
 * holding matching files (or named literally by a glob) opens a file created
 * or renamed into a matching name at once, and a stat every stat_interval is
 * the safety net for what inotify misses. A file is known by its identity:
 * device, inode and a fingerprint (hash of its first bytes, seeded with the
 * file's birth time where the file system keeps one), so an inode reused
 * after a delete is a new file, even when it begins with the old bytes. The read position of a file is the offset
 * of the first byte the caller has not consumed yet; the caller stores it
 * (the spool commits it with the events) and gives it back through the
 * `position` callback when a file is first opened.
 *
 * Rotation by rename (+create): the file now at the path is followed as soon
 * as the directory's inotify event comes, from its start, while the renamed
 * file is read to its end at the same time and released once it has stayed
 * at its end for `rotate_wait`; any number of rotations between scans is
 * followed this way: the directory's events are read on the tail's own
 * inotify descriptor, whose rename cookies tell where a file created at a
 * matching name went when it was renamed before it could be opened (it is
 * then read under its new name, from its start, to its end). A renamed file
 * whose new name also matches is the same file (same identity): it is not
 * read again. At the first scan, a stored position whose path names another
 * file now is looked for by identity in its directory (the agent was stopped
 * during a rotation) and read to its end. copytruncate: a size below the
 * read position, or a fingerprint that changed, means the file starts again
 * at 0. A deleted file is read to its end and released.
 *
 * Reading is fair: each file gets at most `read_quantum` bytes per turn,
 * and files take turns (one turn per loop iteration, so the loop stays
 * responsive). A line is only looked at whole: a turn that ends inside a
 * line reads that line again from its start on the next turn. The one
 * exception to the quantum: when a quantum holds no newline, the turn reads
 * on to max_line + 1 bytes, which hold a newline or make a piece.
 *
 * Lines longer than max_line are handed over in pieces of max_line bytes,
 * marked TAIL_LINE_SPLIT; the last piece (the one that ends with the
 * newline) has no flag. Every piece, the last too, comes with its
 * tail_piece (shared id, index, count): before the first piece tail looks
 * ahead for the newline (reading, not buffering, at most 16 MiB per turn),
 * and a long line without its newline yet waits like a partial last line;
 * flushed (flush_timeout, or its file released), it is handed over in
 * pieces counted from the bytes there are, the last one TAIL_LINE_PARTIAL.
 * A line of exactly max_line bytes is never split: tail splits only once it
 * has seen max_line + 1 bytes without a newline. After a restart inside a
 * split line, its remaining bytes are handed over as a line of their own.
 * A last line without a newline is handed over (TAIL_LINE_PARTIAL) when it
 * has not grown for flush_timeout, or when its file is released; bytes
 * written after it then start a new line.
 *
 * Descriptors: at most max_files files are open. A file read to its end
 * and unchanged for close_inactive is closed (SHUT), and when a file needs
 * a descriptor and none is free, the file idle longest is. A shut file
 * stays known (identity, path, position); a scan (or a directory event
 * naming it) that sees it change opens it again and checks its fingerprint: the
 * same file reads on from its position, a rewritten one from 0. A shut file
 * that is renamed out of the globs or deleted is forgotten.
 *
 * Reads are synchronous pread()s on the loop thread: log files being tailed
 * are in the page cache, and a thread-pool round trip per read would cost
 * more than the read.
 *
 * Compressed files (agent/decompress.h: gzip or zstd, told by their first
 * bytes, whatever their name) are archives: read once, through
 * decompression, to their end, and never followed (no inotify watch, no
 * stat). Their offsets and positions count decompressed bytes; their
 * identity (fingerprint) is that of their compressed bytes. Each turn
 * decompresses at most one read buffer (plus at most DECOMPRESS_STEP bytes
 * on the way to a stored position), so the loop stays responsive, and at
 * most TAIL_DECODERS of them are being decompressed at a time (the others
 * wait, PAUSED), so that memory stays bounded however many archives match.
 * At its end (or at damage, logged with its compressed offset and counted
 * in archive_errors), an archive's position is stored with TAIL_POS_DONE
 * through the skipped callback, and a restart skips it without
 * decompressing it. A stored position without TAIL_POS_DONE is resumed by
 * decompressing the file from its start up to the position; so does,
 * once, a line longer than the decompression window (the read buffer plus
 * 64 KiB), whose newline tail looks for past the window. Which archives
 * are read (the rotation rule): those found by the first scan (unless
 * start_at_end), never one that appears later while the source is
 * followed: that is logrotate's `compress` of a rotated generation the
 * tail has read already under its plain name; it is stored as done at
 * offset 0 without being read. A file opened with fewer than 4 bytes (gzip
 * and zstd create their output before they write it) is looked at again
 * before its first line is handed over, and becomes such an archive when
 * its first bytes say so.
 */
#ifndef LOGFERRY_TAIL_H
#define LOGFERRY_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/*
 * Set in the position of a compressed file read to its end (see "Compressed
 * files" above): such a file is not decompressed again. Offsets never reach it.
 */
#define TAIL_POS_DONE (UINT64_C(1) << 63)

/* Bytes of a file's start that make its fingerprint. */
#define TAIL_FINGERPRINT_MAX 1024

/* What a file is, whatever its name. */
struct tail_id {
	uint64_t dev;
	uint64_t ino;
	uint32_t fp_len;    /* bytes hashed: min(file size, TAIL_FINGERPRINT_MAX) when computed */
	uint64_t fp_hash;   /* FNV-1a 64 of the first fp_len bytes, from a basis mixed with
	                       the birth time (plain basis without one) */
};

/* Where a piece of a line longer than max_line belongs. */
struct tail_piece {
	char id[96];        /* the same for every piece of the line, and unique: identity and
	                       offset of the line's first byte */
	uint64_t start;     /* offset of the line's first byte */
	uint32_t index;     /* 0-based */
	uint32_t count;     /* pieces of the line */
};

/* A file being followed: valid from its first line until its release callback. */
struct tail_file_info {
	const char *path;   /* current name (it changes when the file is renamed) */
	size_t path_len;    /* strlen(path): each line's event names it */
	uint64_t path_gen;  /* a new event_origin_gen with each path (an event's origin_gen) */
	uint64_t read_ns;   /* in a line callback: CLOCK_REALTIME_COARSE when its bytes were read */
	struct tail_id id;
	const struct tail_piece *piece;  /* in a line callback: non-NULL for a piece of a split
	                                    line (the last piece too) */
};

/* Flags of a line. */
#define TAIL_LINE_SPLIT   0x1  /* a piece of a line longer than max_line (all but the last piece) */
#define TAIL_LINE_PARTIAL 0x2  /* a last line flushed without its newline */

struct tail_callbacks {
	/*
	 * The committed read position of a file seen for the first time by this
	 * tail. Returns 0 and sets *offset and *stored (the identity stored with
	 * it, whose fingerprint tail checks against the file), or -ENOENT when
	 * the file has no position. Any other error is logged and taken as "no
	 * position". Runs during scans, including the first one inside
	 * tail_start. NULL: no file has a position.
	 *
	 * The position is used when stored.fp_len <= TAIL_FINGERPRINT_MAX, the
	 * file holds at least stored.fp_len bytes, they hash to stored.fp_hash,
	 * and *offset <= the file's size. Otherwise the file starts at 0, or at
	 * its end when start_at_end is set and the file was found by the first
	 * scan (this includes a stored position whose fingerprint does not
	 * match).
	 */
	int (*position)(void *ctx, const struct tail_id *id, uint64_t *offset,
	    struct tail_id *stored);
	/*
	 * One line, without its newline (a "\r" before it is kept: parsers deal
	 * with it). line points into tail's read buffer and is valid only during
	 * the call. end_offset is the file offset just after the line's newline;
	 * for a TAIL_LINE_SPLIT piece or a TAIL_LINE_PARTIAL line, which have no
	 * newline, it is the offset just after its last byte. Either way it is
	 * the position to store once the line is spooled, with f->id.
	 * Returns 0 when the line is consumed, or -EAGAIN when the caller cannot
	 * take it now: the file pauses at that line (it will be handed over
	 * again) until tail_resume. Any other nonzero value is taken as -EAGAIN.
	 * May call tail_resume or tail_stop.
	 */
	int (*line)(void *ctx, const struct tail_file_info *f, const uint8_t *line,
	    size_t len, unsigned flags, uint64_t end_offset);
	/*
	 * Called after every run of line callbacks, before the loop goes back
	 * to waiting (at the end of each turn of reads, of each partial-line
	 * timeout, and before a release), so the caller can hand over what it
	 * gathered. Never called without a consumed line before it. NULL ok.
	 */
	void (*flush)(void *ctx);
	/*
	 * A file is no longer followed (deleted or rotated away, read to its
	 * end, its partial last line handed over and flushed). f is valid only
	 * during the call. NULL ok.
	 */
	void (*release)(void *ctx, const struct tail_file_info *f);
	/*
	 * A position to store without a line: a file without a position starts
	 * at offset, after bytes it will never hand over (start_at: end), so
	 * that a restart before the file's first line does not skip again; or a
	 * compressed file is done (offset has TAIL_POS_DONE). NULL ok.
	 */
	void (*skipped)(void *ctx, const struct tail_file_info *f, uint64_t offset);
	/*
	 * Calls fn(fctx, ...) for each stored position (id, the path it was
	 * stored with, offset), of any source: tail keeps those whose path
	 * matches its globs. Called once, by the first scan, so that a file
	 * renamed out of the globs while the agent was stopped is found in its
	 * directory under its new name and read to its end. Returns 0, fn's
	 * nonzero value, or a negative error (logged). NULL: none.
	 */
	int (*stored)(void *ctx, int (*fn)(void *fctx, const struct tail_id *id,
	    const char *path, uint64_t offset), void *fctx);
};

struct tail_options {
	const char *name;               /* the source's name, for messages */
	const char *const *paths;       /* globs */
	size_t npaths;
	const char *const *exclude;     /* globs never read: fnmatch(3) without flags on the
	                                   whole path, so `*` also matches `/` (`*.gz` works) */
	size_t nexclude;
	bool start_at_end;              /* files found by the first scan without a position */
	size_t max_line;                /* bytes; >= 1 */
	size_t read_quantum;            /* bytes per file per turn; 0: 256 KiB */
	uint64_t scan_interval_ms;      /* >= 1 */
	uint64_t stat_interval_ms;      /* >= 1 */
	uint64_t flush_timeout_ms;      /* 0: a partial last line goes at once */
	uint64_t rotate_wait_ms;        /* 0: 5 s */
	size_t max_files;               /* open files at most; 0: 1024 */
	uint64_t close_inactive_ms;     /* a file read to its end and unchanged this long is
	                                   closed (and reopened by identity when it changes);
	                                   0: 5 min */
};

struct tail;

/*
 * Starts following on loop: the first scan runs before this returns, and
 * reading starts on the next loop turn. Copies what it keeps of o. Returns
 * 0, -EINVAL for bad options, or -ENOMEM. Files that cannot be opened are
 * logged, counted in errors and tried again at each scan; they do not fail
 * tail_start.
 */
int tail_start(uv_loop_t *loop, const struct tail_options *o,
    const struct tail_callbacks *cb, void *ctx, struct tail **out);

/*
 * Resumes every file paused by a line callback's -EAGAIN; their lines come
 * from the next loop turn on. May be called from any callback, including
 * the line callback that is about to return -EAGAIN (the pause is then
 * cancelled).
 */
void tail_resume(struct tail *t);

/*
 * Stops: closes every handle and file; done(ctx) runs once the handles are
 * closed (from the loop, never from tail_stop itself), after which t is
 * freed; done may be NULL. No callback runs after tail_stop returns except
 * done. May be called from any callback but position. A partial last line
 * still waiting for flush_timeout is not handed over: its file's position
 * stays before it, so it is read again at the next start.
 */
void tail_stop(struct tail *t, void (*done)(void *ctx), void *ctx);

/* Counters, for metrics and tests. */
struct tail_stats {
	uint64_t files_open;     /* with a descriptor (at most max_files) */
	uint64_t files_seen;     /* files opened since the start */
	uint64_t files_waiting;  /* at the last scan: matched and to be read, but every
	                            descriptor was taken by a file being read */
	uint64_t lines;          /* lines consumed (each piece of a split line counts) */
	uint64_t bytes;          /* bytes consumed, newlines included */
	uint64_t rotations;      /* renamed or deleted files released */
	uint64_t truncations;    /* copytruncate (size below position, or new fingerprint) */
	uint64_t split_lines;    /* lines longer than max_line */
	uint64_t partial_lines;  /* last lines flushed without a newline */
	uint64_t errors;         /* open/read/stat failures */
	uint64_t archives_done;  /* compressed files read to their end (or their damage) */
	uint64_t archive_errors; /* compressed files that ended at damage (corrupt, truncated) */
	uint64_t files_reading;  /* now: files with bytes not handed over yet, or waiting for a
	                            descriptor at the last scan (0: everything matched was read) */
};
void tail_get_stats(const struct tail *t, struct tail_stats *s);

#endif
