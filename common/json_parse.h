/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_parse: lines that are one JSON object each, as NGINX writes them with
 * `log_format ... escape=json` and applications write their JSON logs.
 *
 * jansson decodes the line; every member of the object becomes a field, in
 * the order of the line, with the member's JSON type:
 *
 *   string        EVENT_TEXT     the decoded bytes (escapes resolved, UTF-8)
 *   integer       EVENT_INTEGER  int64
 *   real          EVENT_NUMBER   double
 *   true, false   EVENT_BOOLEAN
 *   null          EVENT_NULL
 *   object, array EVENT_JSON     compact JSON text, members in the line's
 *                                order; reals written with 17 significant
 *                                digits (exact: 0.1 is 0.10000000000000001)
 *
 * Keys, strings and JSON texts are copied into out->scratch (a line whose
 * copies exceed scratch's cap is an error); nothing is a slice of the line.
 *
 * A leading UTF-8 BOM and a trailing "\n" and "\r" are ignored. jansson
 * decides what is valid JSON: invalid UTF-8, raw control bytes, integers
 * beyond int64, reals beyond a double and nesting deeper than 2048 levels
 * are errors; "\u0000" is allowed in strings (fields are counted bytes)
 * but not in keys; a repeated key keeps its first place and its last value.
 *
 * Time: a member named "ts" also sets out->ts (ns since the epoch, UTC):
 *
 *   - a number: seconds, milliseconds, microseconds or nanoseconds since
 *     the epoch, told apart by magnitude: below 1e11 seconds (to year
 *     5138), below 1e14 milliseconds, below 1e17 microseconds, else
 *     nanoseconds. Each unit's range begins in 1973-03-03, so a time
 *     after that is read right whichever unit wrote it. A fraction is
 *     kept to the microsecond (a double holds no more of a current time
 *     in seconds);
 *   - a string of such a number, digits with an optional "." and fraction
 *     (NGINX's $msec: "1732269600.123"), read exactly, to the nanosecond;
 *   - an RFC 3339 string, "T" or a space between date and time, "Z" or an
 *     offset ("2026-11-22T10:00:00.123456Z", "2026-11-22 11:00:00+01:00").
 *
 * A ts in no such form, negative, or beyond 2554 leaves out->ts 0; the line
 * still parses.
 */
#ifndef LOGFERRY_JSON_PARSE_H
#define LOGFERRY_JSON_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"

/*
 * Parses line[0, len) into *out, which parser_init prepared with room in
 * scratch; the previous result is overwritten (no parser_reset needed).
 * Returns 0, or -EINVAL with out->error
 * set and out->nfields and out->ts 0. out->error, and the keys and values
 * of the fields, point into out->scratch (or to static text): they are
 * valid until the next parse with out. Reads no byte outside line[0, len).
 * Aborts when out of memory.
 */
int json_parse(const uint8_t *line, size_t len, struct parsed *out);

#endif
