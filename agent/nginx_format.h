/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_format: NGINX access logs in the format an operator configured,
 * given as the `log_format` of nginx.conf:
 *
 *   log_format main '$remote_addr - $remote_user [$time_local] "$request" '
 *                   '$status $body_bytes_sent "$http_referer" '
 *                   '"$http_user_agent" "$http_x_forwarded_for" $request_time';
 *
 * The text is compiled once into a program (a literal, then per variable
 * the literal that ends it) that reads a line in one pass, without regex
 * or allocation. Fields are named after the variables, without `$`:
 *
 * - integers (EVENT_INTEGER): status, body_bytes_sent, bytes_sent,
 *   request_length, connection, connection_requests, pid, remote_port,
 *   server_port;
 * - numbers (EVENT_NUMBER, NGINX writes milliseconds): request_time, msec,
 *   gzip_ratio;
 * - upstream lists (EVENT_JSON arrays; NGINX separates the upstreams of a
 *   group with ", " and groups with " : ", both flattened into one array,
 *   an upstream's `-` is null): upstream_addr (strings), upstream_status,
 *   upstream_response_length, upstream_bytes_received,
 *   upstream_bytes_sent (integers), upstream_response_time,
 *   upstream_connect_time, upstream_header_time (numbers);
 * - every other variable is a string: a slice of the line, or EVENT_TEXT
 *   in scratch when NGINX escaped bytes in it (decoded: \xHH with
 *   escape=default, JSON escapes with escape=json).
 *
 * `-` (NGINX's "no value") omits the field, and so does an empty value
 * with escape=json (which writes nothing for "no value"). $request also
 * gives method, path and protocol as nginx_parse does. The event time is
 * $msec, else $time_iso8601, else $time_local.
 */
#ifndef LOGFERRY_NGINX_FORMAT_H
#define LOGFERRY_NGINX_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"

struct nginx_format;

/*
 * Compiles text, which is either the whole directive as pasted from
 * nginx.conf (`log_format NAME [escape=default|json|none] 'STRING' ... ;`),
 * or only its strings (`'...' '...'`, optionally after `escape=...`), or
 * the format itself, unquoted. Returns 0 with *out owned by the caller
 * (nginx_format_free); -EINVAL with a message for a configuration error in
 * err[0, errlen) (a syntax NGINX would refuse, two variables with nothing
 * between them, a variable used twice, more than PARSER_MAX_FIELDS
 * fields); or -ENOMEM.
 */
int nginx_format_compile(const char *text, struct nginx_format **out, char *err,
    size_t errlen);

/*
 * Parses line[0, len) (a trailing "\n" and "\r" ignored) into *out, which
 * parser_init prepared; the previous result and scratch are overwritten.
 * Returns 0, or -EINVAL with out->error set to a message owned by f (it
 * names the variable where the line stopped matching) and out->nfields
 * and out->ts 0. After a success out->error is set if scratch's cap kept
 * some values as written instead of decoded. Slices point into line.
 * Reads no byte outside line[0, len).
 */
int nginx_format_parse(const struct nginx_format *f, const uint8_t *line, size_t len,
    struct parsed *out);

/* Frees f. NULL is fine. */
void nginx_format_free(struct nginx_format *f);

#endif
