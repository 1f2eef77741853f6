/* SPDX-License-Identifier: Apache-2.0 */
/*
 * source: turns one line or message of a source into an event, whatever the
 * source type (file, syslog, http): parses it with the source's format,
 * fills time, host, stream and source, and marks what went wrong.
 *
 * A line that does not parse is still an event: its raw message and a
 * `parse_error` field (docs/architecture.md "Parsers"). Every piece of a line longer
 * than max_line carries `split: true`, `split_id` (text, the same for all
 * pieces of the line), `split_index` (0-based) and `split_count`, and is
 * not parsed: a consumer puts the line back together by concatenating the
 * messages of one split_id in split_index order. A last line flushed
 * without its newline carries `partial: true`.
 */
#ifndef LOGFERRY_SOURCE_H
#define LOGFERRY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent_config.h"
#include "common/parser.h"
#include "agent/parsers.h"
#include "proto/event.h"

#define SOURCE_PARTIAL 0x2
#define SOURCE_MULTILINE_TRUNCATED 0x4   /* `multiline_truncated: true`: cut at max_bytes */

/* Where a piece of a line longer than max_line belongs. */
struct source_piece {
	const char *id;              /* shared by the pieces of one line, unique */
	uint32_t index, count;       /* 0-based; pieces of the line */
};

struct source_line {
	const struct parser_type *parser;
	void *state;                 /* owned: what parser compiled for the source */
	struct pbslice stream, host;
	struct parsed parsed;
	struct event_field fields[PARSER_MAX_FIELDS + 3];  /* + parse_error, partial, truncated */
	uint64_t parse_errors;
};

/*
 * Prepares sl for cfg's lines, parsed with parser (compiled for cfg); host
 * is the agent's host name (kept, not copied). Returns 0, or a negative
 * error after logging it (a format that does not compile); then sl needs
 * no source_line_free.
 */
int source_line_init(struct source_line *sl, const struct agent_source *cfg,
    const struct parser_type *parser, const char *host, size_t max_line);
void source_line_free(struct source_line *sl);

/*
 * Builds *ev from line[0, len) (a trailing "\r" is left out of the
 * message). now_ns is the receive time, the event's time when the line has
 * none. source names where it came from (a path, a listener). ev and its
 * fields are valid until the next call and while line is.
 */
void source_line_event(struct source_line *sl, const uint8_t *line, size_t len, unsigned marks,
    uint64_t now_ns, const char *source, struct event *ev);

/*
 * source_line_event with source's length given (strlen(source) was 0.6 %
 * of the agent), and origin_gen (0: none) standing for sl's host and
 * stream and source's bytes (struct event's origin_gen): ev has it unless
 * its host is the line's.
 */
void source_line_event_n(struct source_line *sl, const uint8_t *line, size_t len,
    unsigned marks, uint64_t now_ns, const char *source, size_t source_len, uint64_t origin_gen,
    struct event *ev);

/*
 * Room for one more field behind ev's, an event source_line_event made (its
 * fields may be the parser's own, which this moves into sl's array, with
 * room for 3 more). Returns the field to fill, or NULL when ev has as many
 * fields as sl's array holds.
 */
struct event_field *source_line_add_field(struct source_line *sl, struct event *ev);

/*
 * Builds *ev for one piece of a split line, not parsed and kept byte for
 * byte (a "\r" too): the split fields of pc, and `partial: true` when
 * marks has SOURCE_PARTIAL (the last piece of a line flushed without its
 * newline). Valid like source_line_event's event.
 */
void source_line_piece(struct source_line *sl, const uint8_t *line, size_t len,
    const struct source_piece *pc, unsigned marks, uint64_t now_ns, const char *source,
    struct event *ev);

/* Now, in ns since the epoch (for receive times). */
uint64_t source_now_ns(void);

#endif
