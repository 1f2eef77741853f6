/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_parse: NGINX `combined` lines, in one pass over the line (see
 * nginx_parse.h). Every string value is a slice of the line; nothing is
 * copied or allocated.
 */
#include "autoconfig.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/nginx_parse.h"
#include "common/civil.h"

#define NGINX_ERR(what) "nginx_combined: " what

enum nginx_key {
	NGINX_REMOTE_ADDR,
	NGINX_REMOTE_USER,
	NGINX_TIME_LOCAL,
	NGINX_REQUEST,
	NGINX_METHOD,
	NGINX_PATH,
	NGINX_PROTOCOL,
	NGINX_STATUS,
	NGINX_BODY_BYTES_SENT,
	NGINX_HTTP_REFERER,
	NGINX_HTTP_USER_AGENT,
	NGINX_NKEYS
};

#define NGINX_KEY(s) { (const uint8_t *)(s), sizeof(s) - 1 }
static const struct pbslice nginx_keys[NGINX_NKEYS] = {
	[NGINX_REMOTE_ADDR] = NGINX_KEY("remote_addr"),
	[NGINX_REMOTE_USER] = NGINX_KEY("remote_user"),
	[NGINX_TIME_LOCAL] = NGINX_KEY("time_local"),
	[NGINX_REQUEST] = NGINX_KEY("request"),
	[NGINX_METHOD] = NGINX_KEY("method"),
	[NGINX_PATH] = NGINX_KEY("path"),
	[NGINX_PROTOCOL] = NGINX_KEY("protocol"),
	[NGINX_STATUS] = NGINX_KEY("status"),
	[NGINX_BODY_BYTES_SENT] = NGINX_KEY("body_bytes_sent"),
	[NGINX_HTTP_REFERER] = NGINX_KEY("http_referer"),
	[NGINX_HTTP_USER_AGENT] = NGINX_KEY("http_user_agent"),
};

/*
 * Which keys a parsed line has is four choices: remote_user, the request's
 * three parts, http_referer and http_user_agent, each there or left out
 * (NGINX_HAS_*). The address of nginx_key_sets[choices] names that list
 * (struct event's key_set): one object per list, which no other parser's
 * can share.
 */
enum {
	NGINX_HAS_USER = 1, NGINX_HAS_PARTS = 2, NGINX_HAS_REFERER = 4, NGINX_HAS_AGENT = 8,
};
static const char nginx_key_sets[16];

#define NGINX_TIME_LEN NGINX_TIME_LOCAL_LEN
/* ` HTTP/x.y` at the end of a request */
#define NGINX_PROTO_LEN 9

/*
 * RFC 9110 token characters, which a method consists of: a table, as the
 * tests of ranges and a switch cost about 9 instructions a byte (the
 * request split, agent, callgrind).
 */
#define NGINX_T(c) [(unsigned char)(c)] = true
static const bool nginx_tchars[256] = {
	NGINX_T('0'), NGINX_T('1'), NGINX_T('2'), NGINX_T('3'), NGINX_T('4'), NGINX_T('5'),
	NGINX_T('6'), NGINX_T('7'), NGINX_T('8'), NGINX_T('9'),
	NGINX_T('A'), NGINX_T('B'), NGINX_T('C'), NGINX_T('D'), NGINX_T('E'), NGINX_T('F'),
	NGINX_T('G'), NGINX_T('H'), NGINX_T('I'), NGINX_T('J'), NGINX_T('K'), NGINX_T('L'),
	NGINX_T('M'), NGINX_T('N'), NGINX_T('O'), NGINX_T('P'), NGINX_T('Q'), NGINX_T('R'),
	NGINX_T('S'), NGINX_T('T'), NGINX_T('U'), NGINX_T('V'), NGINX_T('W'), NGINX_T('X'),
	NGINX_T('Y'), NGINX_T('Z'),
	NGINX_T('a'), NGINX_T('b'), NGINX_T('c'), NGINX_T('d'), NGINX_T('e'), NGINX_T('f'),
	NGINX_T('g'), NGINX_T('h'), NGINX_T('i'), NGINX_T('j'), NGINX_T('k'), NGINX_T('l'),
	NGINX_T('m'), NGINX_T('n'), NGINX_T('o'), NGINX_T('p'), NGINX_T('q'), NGINX_T('r'),
	NGINX_T('s'), NGINX_T('t'), NGINX_T('u'), NGINX_T('v'), NGINX_T('w'), NGINX_T('x'),
	NGINX_T('y'), NGINX_T('z'),
	NGINX_T('!'), NGINX_T('#'), NGINX_T('$'), NGINX_T('%'), NGINX_T('&'), NGINX_T('\''),
	NGINX_T('*'), NGINX_T('+'), NGINX_T('-'), NGINX_T('.'), NGINX_T('^'), NGINX_T('_'),
	NGINX_T('`'), NGINX_T('|'), NGINX_T('~'),
};

/*
 * The nginx_add_* functions write the field at *fp and move *fp past it:
 * a cursor the compiler keeps in a register, where out->nfields++ was
 * loaded and stored again for every field (a field's stores may alias it).
 */
static inline void
nginx_add_slice(struct event_field **fp, enum nginx_key key, const uint8_t *line,
    const uint8_t *s, const uint8_t *e)
{
	struct event_field *f = (*fp)++;

	f->key = nginx_keys[key];
	f->type = EVENT_SLICE;
	/* nginx_parse refuses lines of 4 GiB or more, so these fit. */
	f->v.slice.offset = (uint32_t)(s - line);
	f->v.slice.length = (uint32_t)(e - s);
}

/* Adds the slice unless it is NGINX's `-` for "no value"; returns has if it did, else 0. */
static inline unsigned
nginx_add_unless_dash(struct event_field **fp, enum nginx_key key,
    const uint8_t *line, const uint8_t *s, const uint8_t *e, unsigned has)
{
	if (e - s == 1 && *s == '-')
		return 0;
	nginx_add_slice(fp, key, line, s, e);
	return has;
}

static inline void
nginx_add_integer(struct event_field **fp, enum nginx_key key, int64_t v)
{
	struct event_field *f = (*fp)++;

	f->key = nginx_keys[key];
	f->type = EVENT_INTEGER;
	f->v.integer = v;
}

/* Two decimal digits at t, or -1. */
static inline int
nginx_2digits(const uint8_t *t)
{
	if (!nginx_digit(t[0]) || !nginx_digit(t[1]))
		return -1;
	return (t[0] - '0') * 10 + (t[1] - '0');
}

bool
nginx_time_local(const uint8_t *t, uint64_t *ts)
{
	static const uint8_t mdays[13] =
	    { 0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int day, mon, y1, y2, hh, mm, ss, oh, om;
	int64_t secs, off;

	if (t[2] != '/' || t[6] != '/' || t[11] != ':' || t[14] != ':' ||
	    t[17] != ':' || t[20] != ' ' || (t[21] != '+' && t[21] != '-'))
		return false;
	day = nginx_2digits(t);
	mon = civil_month(t + 3);
	y1 = nginx_2digits(t + 7);
	y2 = nginx_2digits(t + 9);
	hh = nginx_2digits(t + 12);
	mm = nginx_2digits(t + 15);
	ss = nginx_2digits(t + 18);
	oh = nginx_2digits(t + 22);
	om = nginx_2digits(t + 24);
	if (mon == 0 || day < 1 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 ||
	    mm < 0 || mm > 59 || ss < 0 || ss > 59 || oh < 0 || oh > 23 ||
	    om < 0 || om > 59)
		return false;
	if (day > mdays[mon] ||
	    (mon == 2 && day == 29 && !civil_is_leap(y1 * 100 + y2)))
		return false;
	off = (int64_t)oh * 3600 + om * 60;
	secs = civil_days(y1 * 100 + y2, mon, day) * 86400 +
	    hh * 3600 + mm * 60 + ss - (t[21] == '+' ? off : -off);
	if (secs < 0 || (uint64_t)secs > UINT64_MAX / UINT64_C(1000000000))
		*ts = 0;
	else
		*ts = (uint64_t)secs * UINT64_C(1000000000);
	return true;
}

_Static_assert(NGINX_TIME_LEN <= PARSER_TIME_MEMO_MAX, "time_local fits the parser's memo");

bool
nginx_time_local_memo(const uint8_t *t, uint64_t *ts, struct parser_time_memo *m)
{
	if (m->len == NGINX_TIME_LEN && memcmp(t, m->text, NGINX_TIME_LEN) == 0) {
		*ts = m->ts;
		return true;
	}
	if (!nginx_time_local(t, ts))
		return false;
	memcpy(m->text, t, NGINX_TIME_LEN);
	m->len = NGINX_TIME_LEN;
	m->ts = *ts;
	return true;
}

/*
 * Reads up to maxdigits decimal digits at *pp into *v and moves *pp past
 * them. Returns the number of digits, or -1 if there are more.
 */
static inline int
nginx_number(const uint8_t **pp, const uint8_t *end, int maxdigits,
    uint64_t *v)
{
	const uint8_t *p = *pp, *lim;
	uint64_t n = 0;
	int digits;

	/* Bounded once, not counted per digit. */
	lim = end - p > maxdigits ? p + maxdigits : end;
	while (p < lim && nginx_digit(*p))
		n = n * 10 + (uint64_t)(*p++ - '0');
	if (p < end && nginx_digit(*p))
		return -1;
	*v = n;
	digits = (int)(p - *pp);
	*pp = p;
	return digits;
}

/*
 * The decimal digits that start the 8 bytes at p: their count, 0 for none
 * or 8 when all 8 are digits (nginx_number reads those), and below 8 their
 * value in *v. In a few operations on the 8 bytes as one word: the loop
 * over the digits of body_bytes_sent was about 50 instructions per line
 * (the agent, callgrind).
 */
static inline int
nginx_digits8(const uint8_t *p, uint64_t *v)
{
	uint64_t w, m;
	int n;

	memcpy(&w, p, 8);
	/* A digit byte becomes its value, 0-9; any other byte has a bit of 0xf0 set in w or w + 6. */
	w = le64toh(w) ^ UINT64_C(0x3030303030303030);
	/* A carry out of a byte comes from a non-digit: it only reaches the bytes after one. */
	m = (w | (w + UINT64_C(0x0606060606060606))) & UINT64_C(0xf0f0f0f0f0f0f0f0);
	if (m == 0)
		return 8;
	n = __builtin_ctzll(m) / 8;
	if (n == 0)
		return 0;
	/* The n digits, most significant first, behind 8 - n zeros: an 8-digit number. */
	w <<= 8 * (8 - n);
	w = (w * 10 + (w >> 8)) & UINT64_C(0x00ff00ff00ff00ff);
	w = (w * 100 + (w >> 16)) & UINT64_C(0x0000ffff0000ffff);
	*v = (w * 10000 + (w >> 32)) & UINT64_C(0xffffffff);
	return n;
}

bool
nginx_request_parts(const uint8_t *s, const uint8_t *e, const uint8_t **method_end,
    const uint8_t **proto)
{
	const uint8_t *p, *m;

	if (e - s < 1 + 1 + 1 + NGINX_PROTO_LEN)
		return false;
	p = e - NGINX_PROTO_LEN;
	if (memcmp(p, " HTTP/", 6) != 0 || !nginx_digit(p[6]) ||
	    p[7] != '.' || !nginx_digit(p[8]))
		return false;
	for (m = s; m < p && nginx_tchars[*m]; m++)
		continue;
	/* A method, one space, and a target that is not empty. */
	if (m == s || *m != ' ' || m + 1 >= p)
		return false;
	*method_end = m;
	*proto = p;
	return true;
}

/*
 * Adds method, path and protocol if the request is `METHOD SP target SP
 * HTTP/x.y`: returns NGINX_HAS_PARTS if it did, else 0.
 */
static inline unsigned
nginx_split_request(struct event_field **fp, const uint8_t *line,
    const uint8_t *s, const uint8_t *e)
{
	const uint8_t *proto, *m;

	if (!nginx_request_parts(s, e, &m, &proto))
		return 0;
	nginx_add_slice(fp, NGINX_METHOD, line, s, m);
	nginx_add_slice(fp, NGINX_PATH, line, m + 1, proto);
	nginx_add_slice(fp, NGINX_PROTOCOL, line, proto + 1, e);
	return NGINX_HAS_PARTS;
}

/*
 * Expects `SP "value"` at *pp. Returns the value's end (its closing quote)
 * and sets *vs to its start and *pp past the quote, or NULL if there is no
 * opening (*missing_close false) or closing quote (*missing_close true).
 */
static inline const uint8_t *
nginx_quoted(const uint8_t **pp, const uint8_t *end, const uint8_t **vs,
    bool *missing_close)
{
	const uint8_t *p = *pp, *q;

	*missing_close = false;
	if (end - p < 2 || p[0] != ' ' || p[1] != '"')
		return NULL;
	p += 2;
	/* NGINX writes a quote inside a value as \x22: the next quote ends it. */
	if ((q = memchr(p, '"', (size_t)(end - p))) == NULL) {
		*missing_close = true;
		return NULL;
	}
	*vs = p;
	*pp = q + 1;
	return q;
}

int
nginx_parse(const uint8_t *line, size_t len, struct parsed *out)
{
	const uint8_t *p = line, *end, *s, *e;
	struct event_field *f = out->fields;
	const char *why;
	uint64_t v;
	unsigned has;
	bool unclosed;
	int n;

	out->ts = 0;
	out->host.ptr = NULL;
	out->host.len = 0;
	out->nfields = 0;
	out->error = NULL;
	/* nginx_keys' names, and nothing else, are this parser's keys. */
	out->static_keys = true;
	out->key_set = NULL;

	if (len > UINT32_MAX) {
		why = NGINX_ERR("line of 4 GiB or more");
		goto fail;
	}
	len = nginx_line_len(line, len);
	if (len == 0) {
		why = NGINX_ERR("empty line");
		goto fail;
	}
	end = line + len;

	/* $remote_addr SP - SP */
	if ((e = memchr(p, ' ', len)) == NULL) {
		why = NGINX_ERR("missing ' - ' after remote_addr");
		goto fail;
	}
	if (e == p) {
		why = NGINX_ERR("empty remote_addr");
		goto fail;
	}
	if (end - e < 3 || e[1] != '-' || e[2] != ' ') {
		why = NGINX_ERR("missing ' - ' after remote_addr");
		goto fail;
	}
	nginx_add_slice(&f, NGINX_REMOTE_ADDR, line, p, e);
	p = e + 3;

	/* $remote_user SP [ : the user may hold spaces, so find " [". */
	/* Most lines have no user: "- [" needs no search. */
	if (end - p >= 3 && p[0] == '-' && p[1] == ' ' && p[2] == '[') {
		e = p + 2;
	} else {
		for (s = p;; s = e + 1) {
			if ((e = memchr(s, '[', (size_t)(end - s))) == NULL) {
				why = NGINX_ERR("missing '[' before time_local");
				goto fail;
			}
			if (e > p && e[-1] == ' ')
				break;
		}
	}
	has = nginx_add_unless_dash(&f, NGINX_REMOTE_USER, line, p, e - 1, NGINX_HAS_USER);
	p = e + 1;

	/* $time_local ] */
	if (end - p <= NGINX_TIME_LEN || p[NGINX_TIME_LEN] != ']') {
		if (memchr(p, ']', (size_t)(end - p)) == NULL)
			why = NGINX_ERR("missing ']' after time_local");
		else
			why = NGINX_ERR("bad time_local");
		goto fail;
	}
	if (!nginx_time_local_memo(p, &out->ts, &out->time_memo)) {
		why = NGINX_ERR("bad time_local");
		goto fail;
	}
	nginx_add_slice(&f, NGINX_TIME_LOCAL, line, p, p + NGINX_TIME_LEN);
	p += NGINX_TIME_LEN + 1;

	/* SP "$request" */
	if ((e = nginx_quoted(&p, end, &s, &unclosed)) == NULL) {
		why = unclosed ? NGINX_ERR("missing '\"' after request") :
		    NGINX_ERR("missing '\"' before request");
		goto fail;
	}
	nginx_add_slice(&f, NGINX_REQUEST, line, s, e);
	has |= nginx_split_request(&f, line, s, e);

	/* SP $status SP $body_bytes_sent */
	if (p == end || *p != ' ') {
		why = NGINX_ERR("missing ' ' after request");
		goto fail;
	}
	p++;
	/* A status is 3 digits: read without nginx_number's loop (about 20 instructions less). */
	if (end - p > 3 && nginx_digit(p[0]) && nginx_digit(p[1]) && nginx_digit(p[2]) &&
	    p[3] == ' ') {
		v = (uint64_t)(p[0] - '0') * 100 + (uint64_t)(p[1] - '0') * 10 + (uint64_t)(p[2] - '0');
		p += 3;
	} else if (nginx_number(&p, end, 9, &v) <= 0 || p == end || *p != ' ') {
		why = NGINX_ERR("status is not a number");
		goto fail;
	}
	nginx_add_integer(&f, NGINX_STATUS, (int64_t)v);
	p++;
	/* Up to 7 digits with 8 bytes to read: a word's operations, else the loop. */
	if (end - p >= 8 && (n = nginx_digits8(p, &v)) > 0 && n < 8)
		p += n;
	else switch (nginx_number(&p, end, 19, &v)) {
	case -1:
		why = NGINX_ERR("body_bytes_sent is too large");
		goto fail;
	case 0:
		why = NGINX_ERR("body_bytes_sent is not a number");
		goto fail;
	}
	if (v > INT64_MAX) {
		why = NGINX_ERR("body_bytes_sent is too large");
		goto fail;
	}
	if (p < end && *p != ' ') {
		why = NGINX_ERR("body_bytes_sent is not a number");
		goto fail;
	}
	nginx_add_integer(&f, NGINX_BODY_BYTES_SENT, (int64_t)v);

	/* SP "$http_referer" SP "$http_user_agent" */
	if ((e = nginx_quoted(&p, end, &s, &unclosed)) == NULL) {
		why = unclosed ? NGINX_ERR("missing '\"' after http_referer") :
		    NGINX_ERR("missing '\"' before http_referer");
		goto fail;
	}
	has |= nginx_add_unless_dash(&f, NGINX_HTTP_REFERER, line, s, e, NGINX_HAS_REFERER);
	if ((e = nginx_quoted(&p, end, &s, &unclosed)) == NULL) {
		why = unclosed ? NGINX_ERR("missing '\"' after http_user_agent") :
		    NGINX_ERR("missing '\"' before http_user_agent");
		goto fail;
	}
	has |= nginx_add_unless_dash(&f, NGINX_HTTP_USER_AGENT, line, s, e, NGINX_HAS_AGENT);

	/* Formats that extend combined add fields after a space. */
	if (p < end && *p != ' ') {
		why = NGINX_ERR("unexpected bytes after http_user_agent");
		goto fail;
	}
	out->nfields = (size_t)(f - out->fields);
	out->key_set = &nginx_key_sets[has];
	return 0;

fail:
	return nginx_parse_fail(out, why);
}
