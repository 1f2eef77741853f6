/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_error_parse: NGINX's error log (error_log), whose format is fixed:
 *
 *   YYYY/MM/DD HH:MM:SS [level] pid#tid: *cid message, client: ADDR,
 *   server: NAME, request: "LINE", upstream: "URL", host: "HOST",
 *   referrer: "URL"
 *
 * in one pass, without regex or allocation. Fields: level, message,
 * client, server, request (and method, path, protocol as nginx_parse
 * splits it), subrequest, upstream, host, referrer (EVENT_SLICE) and pid,
 * tid, connection (the *cid, only on lines about a connection)
 * (EVENT_INTEGER). The ", key: value" context after the message is only
 * there for lines about a request; each key is omitted when NGINX did not
 * write it, or wrote it empty. NGINX writes the context's values as they
 * came (a request line may hold a quote), so a quoted value ends at the
 * quote that is followed by the end of the line or by the next key.
 */
#ifndef LOGFERRY_NGINX_ERROR_PARSE_H
#define LOGFERRY_NGINX_ERROR_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"
#include "common/tz.h"

/*
 * Parses line[0, len) (a trailing "\n" and "\r" ignored) into *out, which
 * parser_init prepared; the previous result is overwritten (scratch is not
 * used). The time has no zone: it is read as local time in zone (NULL:
 * UTC), as NGINX wrote it; out->ts is 0 outside 1970..2554. Returns 0, or
 * -EINVAL with out->error set to a static message and out->nfields and
 * out->ts 0. Reads no byte outside line[0, len).
 */
int nginx_error_parse(const uint8_t *line, size_t len, const struct tz *zone,
    struct parsed *out);

#endif
