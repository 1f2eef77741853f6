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

#include <stddef.h>
#include <stdint.h>

#include "agent/parser.h"

/*
 * Parses line[0, len) into *out, which parser_init prepared; the previous
 * result is overwritten (no parser_reset needed; scratch is not used).
 * out->ts is time_local converted to UTC, or 0 if it falls outside
 * 1970..2554. Returns 0, or -EINVAL with out->error set to a static message
 * and out->nfields and out->ts 0. Slices point into line, which must
 * outlive their use. Reads no byte outside line[0, len).
 */
int nginx_parse(const uint8_t *line, size_t len, struct parsed *out);

#endif
