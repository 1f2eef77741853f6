/* SPDX-License-Identifier: Apache-2.0 */
/*
 * file_source: one `file` source of the configuration: tail (agent/tail.h)
 * feeding lines through source_line into the spool, each event appended
 * together with the read position just after its line, so that the
 * position is committed in the same transaction as the event.
 *
 * With multiline, each file's lines are gathered into events
 * (agent/multiline.h) and an event goes to the spool with the position
 * after its last line: nothing commits a position past the first line of
 * an event still gathered, so after a crash the file is read again from
 * there and the event comes whole, once. Lines longer than max_line are
 * not joined: their pieces end the event before them and go on their own.
 * An event still gathered when the agent stops is dropped from memory
 * (its lines are read again at the next start), except that of a file
 * released (deleted, rotated away), which is shipped at once.
 */
#ifndef LOGFERRY_FILE_SOURCE_H
#define LOGFERRY_FILE_SOURCE_H

#include <uv.h>

#include "agent/agent_config.h"
#include "agent/pipeline.h"
#include "agent/source_type.h"
#include "agent/spool.h"
#include "agent/tail.h"

struct file_source;

/*
 * Starts following cfg's paths on loop. host is the agent's host name;
 * cfg, host and spool must outlive the source. Returns 0 or a negative
 * error after logging it.
 */
int file_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct file_source **out);

/* The spool has room again: files paused on a full spool go on. */
void file_source_resume(struct file_source *fs);

struct file_source_stats {
	struct tail_stats tail;       /* files and lines read */
	uint64_t parse_errors;        /* lines spooled with a parse_error field */
	uint64_t fields_dropped;      /* lines spooled without their fields: too large with them */
	uint64_t dropped_unspoolable; /* lines the spool refused even without fields, skipped */
	uint64_t multiline_events;    /* events of more than one line spooled (multiline) */
	uint64_t multiline_flushed;   /* events shipped after multiline.flush_timeout */
	uint64_t multiline_truncated; /* events cut at multiline.max_bytes */
};

/* A copy of the source's counters. */
void file_source_get_stats(const struct file_source *fs, struct file_source_stats *st);

/* Stops reading; done(ctx) runs when every handle is closed and fs is freed. */
void file_source_stop(struct file_source *fs, void (*done)(void *ctx), void *ctx);

/* The `file` type of source_types. */
extern const struct source_type file_source_type;

#endif
