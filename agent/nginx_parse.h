/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_parse: NGINX's default `combined` access log format,
 *
 *   $remote_addr - $remote_user [$time_local] "$request" $status
 *   $body_bytes_sent "$http_referer" "$http_user_agent"
 *
 * in one pass, without regex or allocation. Fields are named after NGINX's
 * variables: remote_addr, remote_user, time_local, request, method, path,
 * protocol (EVENT_SLICE into the line) and status, body_bytes_sent
 * (EVENT_INTEGER). remote_user, http_referer and http_user_agent are
 * omitted when NGINX wrote `-`; method, path and protocol only appear when
 * the request has the form `METHOD SP target SP HTTP/x.y`. Quoted values
 * are slices as written (NGINX's \xHH escapes are not decoded). A trailing
 * "\n" and "\r" are ignored, and so is anything after the user agent that
 * follows a space (formats that extend combined).
 */
#ifndef LOGFERRY_NGINX_PARSE_H
#define LOGFERRY_NGINX_PARSE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"

/* `dd/Mon/yyyy:hh:mm:ss +hhmm`, as $time_local is written */
#define NGINX_TIME_LOCAL_LEN 26

/*
 * Parses line[0, len) into *out, which parser_init prepared; the previous
 * result is overwritten (no parser_reset needed; scratch is not used), and
 * out->time_memo keeps the last valid time_local for the next line.
 * out->ts is time_local converted to UTC, or 0 if it falls outside
 * 1970..2554. Returns 0, or -EINVAL with out->error set to a static message
 * and out->nfields and out->ts 0. Slices point into line, which must
 * outlive their use. Reads no byte outside line[0, len).
 */
int nginx_parse(const uint8_t *line, size_t len, struct parsed *out);


/* The helpers below are shared with the other NGINX parsers (nginx_format, nginx_error_parse). */

static inline bool
nginx_digit(uint8_t c)
{
	return (unsigned)(c - '0') < 10;
}

/* len without a trailing "\n" and "\r", which are not part of a line's fields. */
static inline size_t
nginx_line_len(const uint8_t *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	return len;
}

/* The result of a line that did not parse: nothing, and why. Returns -EINVAL. */
static inline int
nginx_parse_fail(struct parsed *out, const char *why)
{
	out->ts = 0;
	out->nfields = 0;
	out->error = why;
	return -EINVAL;
}

/*
 * Converts the NGINX_TIME_LOCAL_LEN bytes at t (`22/Nov/2026:10:00:00
 * +0100`) to ns since the epoch, UTC, in *ts (0 outside 1970..2554).
 * Returns false if they are not a valid time.
 */
bool nginx_time_local(const uint8_t *t, uint64_t *ts);

/* nginx_time_local through m, the parser's memo of the last valid time it converted. */
bool nginx_time_local_memo(const uint8_t *t, uint64_t *ts, struct parser_time_memo *m);

/*
 * If s[0, e) is a request line `METHOD SP target SP HTTP/x.y`, sets
 * *method_end to the space after the method and *proto to the space before
 * the protocol and returns true; otherwise returns false.
 */
bool nginx_request_parts(const uint8_t *s, const uint8_t *e, const uint8_t **method_end,
    const uint8_t **proto);

#endif
