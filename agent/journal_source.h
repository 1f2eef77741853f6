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
 * With multiline, entries become events of several entries (see struct
 * journal_ml).
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
#include "agent/multiline.h"
#include "agent/spool.h"
#include "common/buf.h"
#include "proto/event.h"

#define JOURNAL_MAX_FIELDS 64
#define JOURNAL_BATCH 256
/* Bytes kept of each value telling an entry's stream apart (_STREAM_ID is 32). */
#define JOURNAL_ORIGIN_MAX 64

/* The values telling which stream of which process wrote an entry (multiline). */
enum journal_origin { JOURNAL_STREAM_ID, JOURNAL_PID, JOURNAL_IDENT, JOURNAL_COMM, JOURNAL_ORIGINS };

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
	bool msg_cut;                /* MESSAGE was cut at max_value */
	uint32_t binary, dropped;    /* fields shipped base64; fields left out */
	/* _STREAM_ID, _PID, SYSLOG_IDENTIFIER, _COMM: cut at JOURNAL_ORIGIN_MAX; 0: none */
	uint8_t origin[JOURNAL_ORIGINS][JOURNAL_ORIGIN_MAX];
	size_t origin_len[JOURNAL_ORIGINS];
	/* fields, fields_dropped and the marks message_binary, truncated, multiline_truncated */
	struct event_field fields[JOURNAL_MAX_FIELDS + 4];
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

/*
 * a and b come from one stream: the same _STREAM_ID (one per stdout or
 * stderr of a service, as journald's stdout transport gives) when either
 * has one; else (syslog(3), sd_journal_print, the kernel) the same _PID and
 * SYSLOG_IDENTIFIER, or _COMM for an entry without SYSLOG_IDENTIFIER.
 */
bool journal_entry_same_stream(const struct journal_entry *a, const struct journal_entry *b);

/*
 * The events of several entries of a multiline journal source (pure: no
 * sd-journal in here). A service's stdout is one entry per line in the
 * journal, so a stack trace is many entries; the rule is matched against
 * each entry's MESSAGE. One event is pending per source: an entry
 * continues it only when it comes from the same stream
 * (journal_entry_same_stream) and the rule says it continues; anything
 * else ships the pending event first. An entry whose MESSAGE is missing or
 * not text (shipped base64) is never joined: it goes alone.
 *
 * The event has the first entry's fields and time, and as MESSAGE the
 * entries' messages joined with "\n" (multiline.h: cut at max_bytes and
 * marked multiline_truncated; `truncated` when a message or a field of the
 * first entry was cut at max_field_size). Its position is the cursor of its
 * last entry: the entry that ended it is read again after a restart until
 * its own event is in the spool.
 *
 * The first entry is kept as the journal_entry it was read into (sd-journal's
 * data are valid only until the next entry is read): memory per source is
 * two journal_entry bounds (max_field_size each) and max_bytes.
 */
struct journal_ml {
	struct multiline m;          /* the joined messages */
	struct journal_entry *first; /* the pending event's first entry (its fields); owned */
	uint64_t ts;                 /* its time, ns since the epoch */
	bool msg_cut;                /* a message was cut at max_field_size */
	char cursor[SPOOL_CURSOR_MAX + 1];  /* the last entry's */
};

/* Returns 0 or -ENOMEM. */
int journal_ml_init(struct journal_ml *ml, struct multiline_rule *rule, size_t max_bytes,
    size_t max_value);
void journal_ml_free(struct journal_ml *ml);

/* An event is pending. */
bool journal_ml_pending(const struct journal_ml *ml);

/* e may be part of an event of several entries: it has a text MESSAGE. */
bool journal_ml_joins(const struct journal_entry *e);

/* e belongs to the pending event (false when none is pending). */
bool journal_ml_continues(const struct journal_ml *ml, const struct journal_entry *e);

/*
 * Adds *e, of time ts and cursor, to the pending event, or begins one with
 * it (*e is then swapped with the entry ml kept: an entry to reuse);
 * now_ns is when it was read. Returns 0, -ENOMEM, or -E2BIG for a cursor
 * longer than SPOOL_CURSOR_MAX (the event unchanged).
 */
int journal_ml_add(struct journal_ml *ml, struct journal_entry **e, uint64_t ts,
    const char *cursor, uint64_t now_ns);

/*
 * Builds *ev from the pending event, as journal_entry_event; ev points into
 * ml until journal_ml_clear. Returns how many of its last fields are marks.
 */
size_t journal_ml_event(struct journal_ml *ml, const char *host, const char *stream,
    const char *source, struct event *ev);

/* The pending event's cursor, its last entry's; its number of entries. */
const char *journal_ml_cursor(const struct journal_ml *ml);
uint32_t journal_ml_entries(const struct journal_ml *ml);

/* The pending event was shipped (or given up): none is pending now. */
void journal_ml_clear(struct journal_ml *ml);

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
	uint64_t multiline_events;    /* events of more than one entry spooled */
	uint64_t multiline_flushed;   /* events shipped after multiline.flush_timeout */
	uint64_t multiline_truncated; /* events cut at multiline.max_bytes */
	uint64_t multiline_pending;   /* entries in the event being gathered now */
};

/* A copy of the source's counters. */
void journal_source_get_stats(const struct journal_source *js, struct journal_source_stats *st);

/* Stops reading; done(ctx) runs when every handle is closed and js is freed. */
void journal_source_stop(struct journal_source *js, void (*done)(void *ctx), void *ctx);

/* Its entry in the table of source types (agent/source_types.c). */
extern const struct source_type journal_source_type;

#endif
