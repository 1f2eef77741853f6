/*
 * source: turns one line or message of a source into an event, whatever the
 * source type (file, syslog, http): parses it with the source's format,
 * fills time, host, stream and source, and marks what went wrong.
 *
 * A line that does not parse is still an event: its raw message and a
 * `parse_error` field (DESIGN.md "Parsers"). A piece of a line longer than
 * max_line carries `split: true` (all pieces but the last) and is not
 * parsed; a last line flushed without its newline carries `partial: true`.
 */
#ifndef LOGFERRY_SOURCE_H
#define LOGFERRY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent_config.h"
#include "agent/parser.h"
#include "common/tz.h"
#include "proto/event.h"

#define SOURCE_SPLIT   0x1
#define SOURCE_PARTIAL 0x2

struct source_line {
	int format;                  /* enum agent_format */
	struct pbslice stream, host;
	struct parsed parsed;
	struct tz *zone;             /* owned: RFC 3164 times' zone (NULL: UTC) */
	struct event_field fields[PARSER_MAX_FIELDS + 2];
	uint64_t parse_errors;
};

/*
 * Prepares sl for cfg's lines; host is the agent's host name (kept, not
 * copied). Syslog lines' zone-less times are read in cfg's timezone, else
 * the agent's local zone; a zone that cannot be loaded (checked with the
 * configuration, so gone since) is logged and UTC used.
 */
void source_line_init(struct source_line *sl, const struct agent_source *cfg, const char *host,
    size_t max_line);
void source_line_free(struct source_line *sl);

/*
 * Builds *ev from line[0, len) (a trailing "\r" is left out of the
 * message). now_ns is the receive time, the event's time when the line has
 * none. source names where it came from (a path, a listener). ev and its
 * fields are valid until the next call and while line is.
 */
void source_line_event(struct source_line *sl, const uint8_t *line, size_t len, unsigned marks,
    uint64_t now_ns, const char *source, struct event *ev);

/* An event without fields, for a line whose parsed event is too large: message + parse_error. */
void source_line_raw(struct source_line *sl, const struct event *parsed, const char *why,
    struct event *ev);

/* Now, in ns since the epoch (for receive times). */
uint64_t source_now_ns(void);

#endif
