/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parsers: the table of line formats, as agent/source_types.c is of
 * source types. Each format is one struct parser_type; a source compiles
 * its format once from its configuration, then parses each line with it.
 * The configuration's `format` names are parser_names, in the table's
 * order: an agent_source's format is an index into parser_types.
 *
 * A new format is its module (agent/<format>_parse.c, or one exporting its
 * own struct parser_type) and one line of PARSERS in agent/parsers.c.
 */
#ifndef LOGFERRY_PARSERS_H
#define LOGFERRY_PARSERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"

/* What a format compiles from: its source's settings (borrowed strings). */
struct parser_config {
	const char *source;          /* the source's name, for log lines */
	const char *log_format;      /* format nginx: nginx.conf's log_format; NULL: none */
	const char *timezone;        /* for times without a zone; NULL: the agent's local zone */
};

struct parser_type {
	const char *name;            /* the configuration's `format` value */
	/*
	 * Prepares what parse needs for cfg's lines into *state (NULL when
	 * nothing). May log what it chose (a time zone). Returns 0, or a
	 * negative error with what is wrong in err (errlen bytes, for the
	 * source's log line); *state is then NULL.
	 */
	int (*compile)(const struct parser_config *cfg, void **state, char *err, size_t errlen);
	/*
	 * Parses line[0, len) into out (reset first); now_ns is the receive
	 * time, for formats whose times lack the year or the zone. Returns 0,
	 * or a negative error with out->error set (the line is still shipped).
	 */
	int (*parse)(void *state, const uint8_t *line, size_t len, uint64_t now_ns,
	    struct parsed *out);
	void (*free)(void *state);   /* NULL state is fine */
	/*
	 * For --check and every load: whether cfg's settings for this format
	 * compile, saying why not in err. Quiet (no log). NULL: nothing to check.
	 */
	int (*check)(const struct parser_config *cfg, char *err, size_t errlen);
};

/* Every format, by the index an agent_source's format holds; parser_types_n of them. */
extern const struct parser_type *const parser_types[];
extern const size_t parser_types_n;

/* Their names, NULL-terminated: the configuration schema's `format` values. */
extern const char *const parser_names[];

/* RFC 5424 and RFC 3164 syslog: what syslog sources always parse. */
extern const struct parser_type parser_syslog;

/* The format of index format (an agent_source's format). */
const struct parser_type *parser_type_of(int format);

/* The format called name, or NULL. */
const struct parser_type *parser_type_named(const char *name);

#endif
