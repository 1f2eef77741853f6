/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_error_parse: NGINX error log lines, in one pass (see
 * nginx_error_parse.h). Every string value is a slice of the line.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/nginx_error_parse.h"
#include "agent/nginx_parse.h"
#include "common/civil.h"

#define NE_ERR(what) "nginx_error: " what
/* `YYYY/MM/DD HH:MM:SS` */
#define NE_TIME_LEN 19

/*
 * The context NGINX appends to a line about a connection or a request
 * (ngx_http_log_error_handler), in the order it writes it. client and
 * server are written bare; the others are quoted.
 */
enum ne_ctx {
	NE_CLIENT,
	NE_SERVER,
	NE_REQUEST,
	NE_SUBREQUEST,
	NE_UPSTREAM,
	NE_HOST,
	NE_REFERRER,
	NE_NCTX
};

#define NE_KEY(s) { (const uint8_t *)(s), sizeof(s) - 1 }
static const struct pbslice ne_ctx_keys[NE_NCTX] = {
	[NE_CLIENT] = NE_KEY("client"),
	[NE_SERVER] = NE_KEY("server"),
	[NE_REQUEST] = NE_KEY("request"),
	[NE_SUBREQUEST] = NE_KEY("subrequest"),
	[NE_UPSTREAM] = NE_KEY("upstream"),
	[NE_HOST] = NE_KEY("host"),
	[NE_REFERRER] = NE_KEY("referrer"),
};
static const struct pbslice ne_level = NE_KEY("level");
static const struct pbslice ne_pid = NE_KEY("pid");
static const struct pbslice ne_tid = NE_KEY("tid");
static const struct pbslice ne_connection = NE_KEY("connection");
static const struct pbslice ne_message = NE_KEY("message");
static const struct pbslice ne_method = NE_KEY("method");
static const struct pbslice ne_path = NE_KEY("path");
static const struct pbslice ne_protocol = NE_KEY("protocol");

static void
ne_add_slice(struct parsed *out, const struct pbslice *key, const uint8_t *line,
    const uint8_t *s, const uint8_t *e)
{
	struct event_field *f = &out->fields[out->nfields++];

	f->key = *key;
	f->type = EVENT_SLICE;
	/* nginx_error_parse refuses lines of 4 GiB or more, so these fit. */
	f->v.slice.offset = (uint32_t)(s - line);
	f->v.slice.length = (uint32_t)(e - s);
}

static void
ne_add_integer(struct parsed *out, const struct pbslice *key, int64_t v)
{
	struct event_field *f = &out->fields[out->nfields++];

	f->key = *key;
	f->type = EVENT_INTEGER;
	f->v.integer = v;
}

/* 1 to 18 digits at *pp, then the byte after; moves *pp past that byte. */
static bool
ne_number_then(const uint8_t **pp, const uint8_t *end, uint8_t after, int64_t *v)
{
	const uint8_t *p = *pp;
	int64_t n = 0;

	while (p < end && nginx_digit(*p)) {
		if (p - *pp == 18)
			return false;
		n = n * 10 + (*p++ - '0');
	}
	if (p == *pp || p == end || *p != after)
		return false;
	*pp = p + 1;
	*v = n;
	return true;
}

/* `YYYY/MM/DD HH:MM:SS` at t as seconds since the epoch, as if it were UTC. */
static bool
ne_time(const uint8_t *t, int64_t *local)
{
	static const uint8_t at[] = { 0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18 };
	int d[sizeof(at)];
	int year, mon, day, hh, mm, ss;

	if (t[4] != '/' || t[7] != '/' || t[10] != ' ' || t[13] != ':' || t[16] != ':')
		return false;
	for (size_t i = 0; i < sizeof(at); i++) {
		if (!nginx_digit(t[at[i]]))
			return false;
		d[i] = t[at[i]] - '0';
	}
	year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3];
	mon = d[4] * 10 + d[5];
	day = d[6] * 10 + d[7];
	hh = d[8] * 10 + d[9];
	mm = d[10] * 10 + d[11];
	ss = d[12] * 10 + d[13];
	if (mon < 1 || mon > 12 || day < 1 || day > civil_days_in_month(year, mon) ||
	    hh > 23 || mm > 59 || ss > 59)
		return false;
	*local = civil_days(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
	return true;
}

/* `, KEY: ` at p, for a key of the context. */
static bool
ne_key_at(const uint8_t *p, const uint8_t *end, enum ne_ctx k)
{
	const struct pbslice *key = &ne_ctx_keys[k];

	return (size_t)(end - p) >= key->len + 4 && p[0] == ',' && p[1] == ' ' &&
	    memcmp(p + 2, key->ptr, key->len) == 0 && p[2 + key->len] == ':' &&
	    p[3 + key->len] == ' ';
}

/* `, KEY: "` at p for a quoted key from `from` on; NE_NCTX if none. */
static enum ne_ctx
ne_quoted_key_at(const uint8_t *p, const uint8_t *end, enum ne_ctx from)
{
	for (enum ne_ctx k = from; k < NE_NCTX; k++)
		if (ne_key_at(p, end, k) && (size_t)(end - p) > ne_ctx_keys[k].len + 4 &&
		    p[4 + ne_ctx_keys[k].len] == '"')
			return k;
	return NE_NCTX;
}

/*
 * The context starting at c (`, client: `), to the end of the line: the
 * value of each key in v[k][0, 1) (NULL when absent). Returns false if
 * what follows c is not a context.
 */
static bool
ne_context(const uint8_t *c, const uint8_t *end, const uint8_t *v[NE_NCTX][2])
{
	const uint8_t *p = c;
	enum ne_ctx k;

	for (k = NE_CLIENT; k <= NE_SERVER; k++) {
		if (k == NE_SERVER && p == end)
			return true;
		if (!ne_key_at(p, end, k))
			return false;
		p += ne_ctx_keys[k].len + 4;
		v[k][0] = p;
		while (p < end && !(*p == ',' && end - p > 1 && p[1] == ' '))
			p++;
		v[k][1] = p;
	}
	for (k = NE_REQUEST; p < end; k++) {
		const uint8_t *q;

		if ((k = ne_quoted_key_at(p, end, k)) == NE_NCTX)
			return false;
		p += ne_ctx_keys[k].len + 5;
		/* Values are written as they came: the closing quote is the one before the next key. */
		for (q = p; (q = memchr(q, '"', (size_t)(end - q))) != NULL; q++)
			if (q + 1 == end || ne_quoted_key_at(q + 1, end, k + 1) != NE_NCTX)
				break;
		if (q == NULL)
			return false;
		v[k][0] = p;
		v[k][1] = q;
		p = q + 1;
	}
	return true;
}

int
nginx_error_parse(const uint8_t *line, size_t len, const struct tz *zone,
    struct parsed *out)
{
	static const uint8_t client[] = ", client: ";
	const uint8_t *v[NE_NCTX][2] = { { NULL, NULL } };
	const uint8_t *p, *end, *s, *msg_end, *c;
	const char *why;
	int64_t local, n;

	out->ts = 0;
	out->host.ptr = NULL;
	out->host.len = 0;
	out->nfields = 0;
	out->error = NULL;

	if (len > UINT32_MAX) {
		why = NE_ERR("line of 4 GiB or more");
		goto fail;
	}
	len = nginx_line_len(line, len);
	end = line + len;

	if (len < NE_TIME_LEN + 2 || !ne_time(line, &local)) {
		why = NE_ERR("no 'YYYY/MM/DD HH:MM:SS' time at the start");
		goto fail;
	}
	if (zone != NULL)
		local = tz_utc(zone, local, local);
	p = line + NE_TIME_LEN;

	/* SP [level] SP */
	if (p[0] != ' ' || p[1] != '[') {
		why = NE_ERR("no '[level]' after the time");
		goto fail;
	}
	for (s = p += 2; p < end && (unsigned)(*p - 'a') < 26; p++)
		continue;
	if (p == s || end - p < 2 || p[0] != ']' || p[1] != ' ') {
		why = NE_ERR("no '[level]' after the time");
		goto fail;
	}
	ne_add_slice(out, &ne_level, line, s, p);
	p += 2;

	/* pid#tid: SP */
	if (!ne_number_then(&p, end, '#', &n)) {
		why = NE_ERR("no 'pid#' after the level");
		goto fail;
	}
	ne_add_integer(out, &ne_pid, n);
	if (!ne_number_then(&p, end, ':', &n)) {
		why = NE_ERR("no 'tid:' after the pid");
		goto fail;
	}
	ne_add_integer(out, &ne_tid, n);
	if (p < end && *p == ' ')
		p++;

	/* *cid SP, only on lines about a connection */
	if (p < end && *p == '*') {
		s = p + 1;
		if (ne_number_then(&s, end, ' ', &n)) {
			ne_add_integer(out, &ne_connection, n);
			p = s;
		}
	}

	/* The message ends where a whole context starts (the message may quote ", client: "). */
	msg_end = end;
	for (c = p; (c = memchr(c, ',', (size_t)(end - c))) != NULL; c++) {
		if ((size_t)(end - c) < sizeof(client) - 1 ||
		    memcmp(c, client, sizeof(client) - 1) != 0)
			continue;
		/* A candidate that failed half-way leaves nothing behind. */
		memset(v, 0, sizeof(v));
		if (ne_context(c, end, v)) {
			msg_end = c;
			break;
		}
	}
	if (c == NULL)
		memset(v, 0, sizeof(v));
	if (msg_end > p)
		ne_add_slice(out, &ne_message, line, p, msg_end);
	for (enum ne_ctx k = NE_CLIENT; k < NE_NCTX; k++) {
		const uint8_t *m, *proto;

		if (v[k][0] == NULL || v[k][0] == v[k][1])
			continue;
		ne_add_slice(out, &ne_ctx_keys[k], line, v[k][0], v[k][1]);
		if (k == NE_REQUEST && nginx_request_parts(v[k][0], v[k][1], &m, &proto)) {
			ne_add_slice(out, &ne_method, line, v[k][0], m);
			ne_add_slice(out, &ne_path, line, m + 1, proto);
			ne_add_slice(out, &ne_protocol, line, proto + 1, v[k][1]);
		}
	}
	out->ts = civil_ns(local, 0);
	return 0;

fail:
	return nginx_parse_fail(out, why);
}
