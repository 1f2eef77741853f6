/* SPDX-License-Identifier: Apache-2.0 */
/*
 * journal_source: one `journal` source of the configuration: entries of
 * the systemd journal (the local one, a directory of journal files, or
 * files), read through libsystemd's sd-journal, each spooled as one event
 * together with the entry's cursor, so that the cursor is committed in the
 * same transaction as the event (spool_append_cursor), like a file's
 * position.
 *
 * An entry becomes an event so:
 * - MESSAGE is the message; the realtime timestamp (__REALTIME_TIMESTAMP,
 *   when journald wrote it) is the event's time; _HOSTNAME is its host
 *   (the agent's host name when the entry has none);
 * - every user field (a name without a leading '_': PRIORITY,
 *   SYSLOG_IDENTIFIER, SYSLOG_FACILITY, CODE_FILE, ...) and the trusted
 *   fields _PID and _SYSTEMD_UNIT become fields. Other trusted fields
 *   (_CMDLINE, _BOOT_ID, _CAP_EFFECTIVE, ...) are left out: they would
 *   double an event's size for what few consumers read;
 * - field names are lower-cased (PRIORITY -> priority, _PID -> _pid): the
 *   convention of the other sources' fields. The leading '_' of a trusted
 *   field is kept, as journald's mark that the entry's sender could not
 *   forge it;
 * - priority, syslog_facility and _pid are integers when they are decimal
 *   numbers; every other value is text;
 * - a value that is not UTF-8 text (invalid UTF-8, or a control character
 *   other than tab and newline: what journalctl shows as a blob) is
 *   shipped base64-encoded, and the event gets `<name>_binary: true`
 *   (`message_binary: true` for MESSAGE);
 * - a value longer than max_field_size is cut there (at a character
 *   boundary) and the event gets `truncated: true`; fields past
 *   JOURNAL_MAX_FIELDS, or past the event's size bound, are left out and
 *   counted in `fields_dropped`.
 *
 * sd-journal reads memory-mapped files: a read is a page fault on a page
 * normally in the page cache, not a disk wait, so it runs on the loop
 * thread; what may take long is bounded instead: at most JOURNAL_BATCH
 * entries per loop turn, the rest on the next turns.
 */
#ifndef LOGFERRY_JOURNAL_SOURCE_H
#define LOGFERRY_JOURNAL_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/agent_config.h"
#include "agent/spool.h"
#include "common/buf.h"
#include "proto/event.h"

#define JOURNAL_MAX_FIELDS 64
#define JOURNAL_BATCH 256

/* One entry being turned into an event (pure: no sd-journal in here). */
struct journal_entry {
	size_t max_value;            /* max_field_size */
	struct buf data;             /* copies of names and values, capped */
	struct {
		size_t key, key_len, val, val_len;
		enum event_value_type type;
		int64_t integer;
	} f[JOURNAL_MAX_FIELDS];
	size_t nf;
	size_t others;               /* bytes the fields but MESSAGE and _HOSTNAME may take, at worst */
	size_t msg, msg_len, host, host_len;
	bool has_msg, has_host, msg_binary, truncated;
	uint32_t binary, dropped;    /* fields shipped base64; fields left out */
	struct event_field fields[JOURNAL_MAX_FIELDS + 3];
};

/* Prepares e for values up to max_value bytes. */
void journal_entry_init(struct journal_entry *e, size_t max_value);
void journal_entry_free(struct journal_entry *e);

/* Forgets the entry before: the next one starts. */
void journal_entry_reset(struct journal_entry *e);

/*
 * Adds one "NAME=value" datum of the entry (as sd_journal_enumerate_data
 * gives it), copied. A datum without '=' is ignored. Returns 0 or -ENOMEM.
 */
int journal_entry_add(struct journal_entry *e, const void *data, size_t len);

/*
 * Builds *ev from the data added: ts (ns since the epoch), host when the
 * entry has no _HOSTNAME, stream and source as given. ev points into e
 * until the next reset. Returns how many of its fields, the last ones, are
 * marks (truncated, message_binary) that the event keeps when it is too
 * large with its fields (pipeline_emit's nmarks).
 */
size_t journal_entry_event(struct journal_entry *e, uint64_t ts, const char *host,
    const char *stream, const char *source, struct event *ev);

struct journal_source;

/*
 * Opens cfg's journal, seeks to after the source's saved cursor (or to
 * start_at without one) and follows it on loop. host is the agent's host
 * name; cfg, host and spool must outlive the source. Returns 0 or a
 * negative error after logging it.
 */
int journal_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct journal_source **out);

/* The spool has room again: reading goes on. */
void journal_source_resume(struct journal_source *js);

struct journal_source_stats {
	uint64_t entries;             /* entries spooled */
	uint64_t binary_fields;       /* values shipped base64 */
	uint64_t truncated;           /* entries with a value cut at max_field_size */
	uint64_t fields_dropped;      /* fields left out: past JOURNAL_MAX_FIELDS or the size bound */
	uint64_t dropped_unspoolable; /* entries the spool refused even without fields, skipped */
	uint64_t invalidations;       /* journal files added or removed (rotation, vacuum) */
	uint64_t cursor_lost;         /* starts whose saved cursor's entry was gone */
	uint64_t read_errors;         /* sd-journal errors while reading */
	uint64_t pauses;              /* times reading stopped on a full spool */
};

/* A copy of the source's counters. */
void journal_source_get_stats(const struct journal_source *js, struct journal_source_stats *st);

/* Stops reading; done(ctx) runs when every handle is closed and js is freed. */
void journal_source_stop(struct journal_source *js, void (*done)(void *ctx), void *ctx);

/* Its entry in the table of source types (agent/source_types.c). */
extern const struct source_type journal_source_type;

#endif
