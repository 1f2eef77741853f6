/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_format: a log_format compiled into steps (a variable, and the
 * literal NGINX writes after it), run over a line in one pass (see
 * nginx_format.h). A value ends where its shape ends (a time, a number, an
 * upstream list) or, for a string, at the first occurrence of the literal
 * that follows it: NGINX escapes '"' and '\' inside values, so the usual
 * quoted separators cannot occur in them.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nginx_format.h"
#include "agent/nginx_parse.h"
#include "common/civil.h"
#include "common/jsonw.h"

#define NF_ERR(what) "nginx log_format: " what
/* $time_iso8601: `2026-11-22T10:00:00+01:00` */
#define NF_ISO8601_LEN 25
/* Literals quoted in a line's error message are cut to this. */
#define NF_MSG_LIT 24

enum nf_kind {
	NF_STRING,
	NF_REQUEST,
	NF_INTEGER,
	NF_NUMBER,
	NF_MSEC,
	NF_TIME_LOCAL,
	NF_TIME_ISO8601,
	NF_LIST_STRING,
	NF_LIST_INTEGER,
	NF_LIST_NUMBER,
};

enum nf_escape {
	NF_ESCAPE_DEFAULT,
	NF_ESCAPE_JSON,
	NF_ESCAPE_NONE,
};

static const struct {
	const char *name;
	enum nf_kind kind;
} nf_known[] = {
	{ "request", NF_REQUEST },
	{ "status", NF_INTEGER },
	{ "body_bytes_sent", NF_INTEGER },
	{ "bytes_sent", NF_INTEGER },
	{ "request_length", NF_INTEGER },
	{ "connection", NF_INTEGER },
	{ "connection_requests", NF_INTEGER },
	{ "pid", NF_INTEGER },
	{ "remote_port", NF_INTEGER },
	{ "server_port", NF_INTEGER },
	{ "request_time", NF_NUMBER },
	{ "gzip_ratio", NF_NUMBER },
	{ "msec", NF_MSEC },
	{ "time_local", NF_TIME_LOCAL },
	{ "time_iso8601", NF_TIME_ISO8601 },
	{ "upstream_addr", NF_LIST_STRING },
	{ "upstream_status", NF_LIST_INTEGER },
	{ "upstream_response_length", NF_LIST_INTEGER },
	{ "upstream_bytes_received", NF_LIST_INTEGER },
	{ "upstream_bytes_sent", NF_LIST_INTEGER },
	{ "upstream_response_time", NF_LIST_NUMBER },
	{ "upstream_connect_time", NF_LIST_NUMBER },
	{ "upstream_header_time", NF_LIST_NUMBER },
};

#define NF_KEY(s) { (const uint8_t *)(s), sizeof(s) - 1 }
static const struct pbslice nf_method = NF_KEY("method");
static const struct pbslice nf_path = NF_KEY("path");
static const struct pbslice nf_protocol = NF_KEY("protocol");

struct nf_step {
	struct pbslice key;           /* the variable's name, without `$` */
	enum nf_kind kind;
	const uint8_t *lit;           /* what follows the value; empty after the last one */
	size_t litlen;
	const char *err_end;          /* the literal is not where it should be */
	const char *err_value;        /* the value is not what NGINX writes for it */
};

struct nginx_format {
	enum nf_escape escape;
	const uint8_t *prefix;        /* what comes before the first variable */
	size_t prefixlen;
	const char *err_prefix;
	bool split_request;           /* $request also gives method, path, protocol */
	struct nf_step steps[PARSER_MAX_FIELDS];
	size_t nsteps;
	char *mem;                    /* names, literals and messages */
	size_t memlen, memcap;
};

/* -------------------------------------------------------------- compile */

static inline bool
nf_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline bool
nf_name_char(char c)
{
	return (unsigned)((c | 0x20) - 'a') < 26 || nginx_digit((uint8_t)c) || c == '_';
}

static const char *
nf_skip_space(const char *p)
{
	while (nf_space(*p))
		p++;
	return p;
}

/* Copies n bytes to the format's memory (sized at compile for all of them). */
static const char *
nf_keep(struct nginx_format *f, const char *s, size_t n)
{
	char *d = f->mem + f->memlen;

	memcpy(d, s, n);
	d[n] = '\0';
	f->memlen += n + 1;
	return d;
}

static const char *
nf_message(struct nginx_format *f, const char *what, const uint8_t *lit, size_t litlen,
    const char *after, const struct pbslice *name)
{
	char *d = f->mem + f->memlen;
	size_t room = f->memcap - f->memlen;
	int n = snprintf(d, room, "nginx log_format: %s%.*s%s%.*s", what,
	    (int)(litlen > NF_MSG_LIT ? NF_MSG_LIT : litlen),
	    lit != NULL ? (const char *)lit : "", after,
	    name != NULL ? (int)name->len : 0, name != NULL ? (const char *)name->ptr : "");

	/* memcap has room for every message; a cut one is still a message. */
	f->memlen += (n < 0 || (size_t)n >= room) ? room : (size_t)n + 1;
	return d;
}

/*
 * The strings of a log_format directive at p, concatenated into fmt as
 * NGINX does, with nginx.conf's escapes inside quotes. Returns 0, or
 * -EINVAL with err set.
 */
static int
nf_conf_strings(const char *p, char *fmt, size_t *fmtlen, char *err, size_t errlen)
{
	size_t n = 0;

	for (;;) {
		char q;

		p = nf_skip_space(p);
		if (*p == '\0')
			break;
		if (*p == ';') {
			if (*nf_skip_space(p + 1) != '\0') {
				snprintf(err, errlen, "log_format: text after ';'");
				return -EINVAL;
			}
			break;
		}
		if (*p != '\'' && *p != '"') {
			while (*p != '\0' && !nf_space(*p) && *p != ';')
				fmt[n++] = *p++;
			continue;
		}
		q = *p++;
		for (; *p != q; p++) {
			if (*p == '\0') {
				snprintf(err, errlen, "log_format: unclosed quote %c", q);
				return -EINVAL;
			}
			if (*p != '\\' || p[1] == '\0') {
				fmt[n++] = *p;
				continue;
			}
			switch (*++p) {
			case '"': case '\'': case '\\':
				fmt[n++] = *p;
				break;
			case 't':
				fmt[n++] = '\t';
				break;
			case 'n':
				fmt[n++] = '\n';
				break;
			case 'r':
				fmt[n++] = '\r';
				break;
			default:
				/* nginx.conf keeps other backslashes as written. */
				fmt[n++] = '\\';
				fmt[n++] = *p;
				break;
			}
		}
		p++;
	}
	*fmtlen = n;
	return 0;
}

/* The format itself from text (see nginx_format_compile), and its escape. */
static int
nf_read_directive(const char *text, char *fmt, size_t *fmtlen, enum nf_escape *escape,
    char *err, size_t errlen)
{
	const char *p = nf_skip_space(text);
	bool directive = false;
	size_t n;

	*escape = NF_ESCAPE_DEFAULT;
	if (strncmp(p, "log_format", 10) == 0 && nf_space(p[10])) {
		p = nf_skip_space(p + 10);
		if (*p == '\0' || *p == '\'' || *p == '"' || strncmp(p, "escape=", 7) == 0) {
			snprintf(err, errlen, "log_format: a name must follow log_format");
			return -EINVAL;
		}
		while (*p != '\0' && !nf_space(*p))
			p++;
		p = nf_skip_space(p);
		directive = true;
	}
	if (strncmp(p, "escape=", 7) == 0) {
		const char *v = p + 7;

		for (n = 0; v[n] != '\0' && !nf_space(v[n]); n++)
			continue;
		if (n == 7 && memcmp(v, "default", 7) == 0)
			*escape = NF_ESCAPE_DEFAULT;
		else if (n == 4 && memcmp(v, "json", 4) == 0)
			*escape = NF_ESCAPE_JSON;
		else if (n == 4 && memcmp(v, "none", 4) == 0)
			*escape = NF_ESCAPE_NONE;
		else {
			snprintf(err, errlen, "log_format: unknown escape=%.*s (default, json or none)",
			    (int)(n > 32 ? 32 : n), v);
			return -EINVAL;
		}
		p = nf_skip_space(v + n);
		directive = true;
	}
	if (directive || *p == '\'' || *p == '"')
		return nf_conf_strings(p, fmt, fmtlen, err, errlen);
	n = strlen(p);
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	memcpy(fmt, p, n);
	*fmtlen = n;
	return 0;
}

static enum nf_kind
nf_kind_of(const struct pbslice *name)
{
	for (size_t i = 0; i < sizeof(nf_known) / sizeof(nf_known[0]); i++)
		if (strlen(nf_known[i].name) == name->len &&
		    memcmp(nf_known[i].name, name->ptr, name->len) == 0)
			return nf_known[i].kind;
	return NF_STRING;
}

static bool
nf_key_is(const struct pbslice *a, const struct pbslice *b)
{
	return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

/* Sets the literal before variable i (i == nsteps: after the last one). */
static int
nf_set_literal(struct nginx_format *f, size_t i, const char *s, size_t n, char *err,
    size_t errlen)
{
	const uint8_t *lit = (const uint8_t *)nf_keep(f, s, n);
	struct nf_step *prev;

	if (i == 0) {
		f->prefix = lit;
		f->prefixlen = n;
		f->err_prefix = nf_message(f, "the line does not start with '", lit, n, "'", NULL);
		return 0;
	}
	prev = &f->steps[i - 1];
	prev->lit = lit;
	prev->litlen = n;
	if (n == 0 && i < f->nsteps && prev->kind != NF_TIME_LOCAL &&
	    prev->kind != NF_TIME_ISO8601) {
		snprintf(err, errlen, "log_format: nothing between $%.*s and $%.*s: the values "
		    "cannot be told apart; put a separator (a space) between them",
		    (int)prev->key.len, (const char *)prev->key.ptr,
		    (int)f->steps[i].key.len, (const char *)f->steps[i].key.ptr);
		return -EINVAL;
	}
	if (n == 0)
		prev->err_end = nf_message(f, "unexpected bytes after $", NULL, 0, "", &prev->key);
	else
		prev->err_end = nf_message(f, "no '", lit, n, "' after $", &prev->key);
	prev->err_value = nf_message(f, "bad $", NULL, 0, "", &prev->key);
	return 0;
}

/* Splits fmt[0, n) into literals and variables, as NGINX's log module does. */
static int
nf_compile_format(struct nginx_format *f, const char *fmt, size_t n, char *err, size_t errlen)
{
	size_t i = 0, lit = 0, fields = 0;
	int rc;

	while (i < n) {
		struct pbslice name;
		size_t j;

		if (fmt[i] != '$') {
			i++;
			continue;
		}
		j = i + 1;
		if (j < n && fmt[j] == '{') {
			const char *close = memchr(fmt + j, '}', n - j);

			if (close == NULL) {
				snprintf(err, errlen, "log_format: unclosed '{' in ${...} at byte %zu", i);
				return -EINVAL;
			}
			name.ptr = (const uint8_t *)fmt + j + 1;
			name.len = (size_t)(close - fmt) - j - 1;
			j = (size_t)(close - fmt) + 1;
		} else {
			while (j < n && nf_name_char(fmt[j]))
				j++;
			name.ptr = (const uint8_t *)fmt + i + 1;
			name.len = j - i - 1;
		}
		if (name.len == 0) {
			snprintf(err, errlen, "log_format: '$' without a variable name at byte %zu", i);
			return -EINVAL;
		}
		if (f->nsteps == PARSER_MAX_FIELDS) {
			snprintf(err, errlen, "log_format: more than %d variables", PARSER_MAX_FIELDS);
			return -EINVAL;
		}
		for (size_t k = 0; k < f->nsteps; k++)
			if (nf_key_is(&f->steps[k].key, &name)) {
				snprintf(err, errlen, "log_format: $%.*s twice: fields are named after "
				    "their variables, so each may appear once",
				    (int)name.len, (const char *)name.ptr);
				return -EINVAL;
			}
		f->steps[f->nsteps].key.ptr = (const uint8_t *)nf_keep(f, (const char *)name.ptr,
		    name.len);
		f->steps[f->nsteps].key.len = name.len;
		f->steps[f->nsteps].kind = nf_kind_of(&name);
		f->nsteps++;
		if ((rc = nf_set_literal(f, f->nsteps - 1, fmt + lit, i - lit, err, errlen)) != 0)
			return rc;
		i = lit = j;
	}
	if (f->nsteps == 0) {
		snprintf(err, errlen, "log_format: no variable in the format");
		return -EINVAL;
	}
	if ((rc = nf_set_literal(f, f->nsteps, fmt + lit, n - lit, err, errlen)) != 0)
		return rc;
	f->split_request = true;
	for (size_t k = 0; k < f->nsteps; k++) {
		const struct pbslice *key = &f->steps[k].key;

		if (nf_key_is(key, &nf_method) || nf_key_is(key, &nf_path) ||
		    nf_key_is(key, &nf_protocol))
			f->split_request = false;
	}
	for (size_t k = 0; k < f->nsteps; k++)
		fields += f->steps[k].kind == NF_REQUEST && f->split_request ? 4 : 1;
	if (fields > PARSER_MAX_FIELDS) {
		snprintf(err, errlen, "log_format: more than %d fields ($request gives 4)",
		    PARSER_MAX_FIELDS);
		return -EINVAL;
	}
	return 0;
}

int
nginx_format_compile(const char *text, struct nginx_format **out, char *err, size_t errlen)
{
	struct nginx_format *f;
	size_t len = strlen(text), fmtlen = 0;
	char *fmt;
	int rc;

	*out = NULL;
	/* A backslash kept as written doubles nothing: the format is never longer than text. */
	if ((fmt = malloc(len + 1)) == NULL || (f = calloc(1, sizeof(*f))) == NULL) {
		free(fmt);
		snprintf(err, errlen, "log_format: out of memory");
		return -ENOMEM;
	}
	/*
	 * Each name and literal once, names twice more in the two messages of
	 * their step, and at most 80 bytes of each message's own text.
	 */
	f->memcap = 4 * len + (PARSER_MAX_FIELDS + 1) * 160 + 256;
	if ((f->mem = malloc(f->memcap)) == NULL) {
		free(fmt);
		free(f);
		snprintf(err, errlen, "log_format: out of memory");
		return -ENOMEM;
	}
	rc = nf_read_directive(text, fmt, &fmtlen, &f->escape, err, errlen);
	if (rc == 0)
		rc = nf_compile_format(f, fmt, fmtlen, err, errlen);
	free(fmt);
	if (rc != 0) {
		nginx_format_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void
nginx_format_free(struct nginx_format *f)
{
	if (f == NULL)
		return;
	free(f->mem);
	free(f);
}

/* ---------------------------------------------------------------- parse */

#define NF_ERR_SCRATCH NF_ERR("values exceed the scratch cap; some are kept as written")

/* Literals are short (`" "`, ` [`): a loop costs less than a call to memcmp. */
static inline bool
nf_lit_at(const uint8_t *p, const uint8_t *end, const uint8_t *lit, size_t n)
{
	if ((size_t)(end - p) < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] != lit[i])
			return false;
	return true;
}

/* Where the value of st that starts at p ends, or NULL if it cannot. */
static const uint8_t *
nf_value_end(const struct nginx_format *f, const struct nf_step *st, const uint8_t *p,
    const uint8_t *end)
{
	const uint8_t *q = p;

	switch (st->kind) {
	case NF_TIME_LOCAL:
		return end - p >= NGINX_TIME_LOCAL_LEN ? p + NGINX_TIME_LOCAL_LEN : NULL;
	case NF_TIME_ISO8601:
		return end - p >= NF_ISO8601_LEN ? p + NF_ISO8601_LEN : NULL;
	case NF_INTEGER:
	case NF_NUMBER:
	case NF_MSEC:
		if (q < end && *q == '-')
			return q + 1;
		while (q < end && (nginx_digit(*q) || *q == '.'))
			q++;
		return q;
	case NF_LIST_STRING:
	case NF_LIST_INTEGER:
	case NF_LIST_NUMBER:
		for (;;) {
			while (q < end && *q != ',' && *q != ' ' &&
			    (st->litlen == 0 || *q != st->lit[0]))
				q++;
			if (end - q >= 2 && q[0] == ',' && q[1] == ' ')
				q += 2;
			else if (end - q >= 3 && memcmp(q, " : ", 3) == 0)
				q += 3;
			else
				return q;
		}
	case NF_STRING:
	case NF_REQUEST:
		break;
	}
	if (st->litlen == 0)
		return end;
	if (f->escape == NF_ESCAPE_JSON) {
		/* An escaped byte is never the literal's start: `\"` is inside the value. */
		for (; q < end; q++) {
			if (*q == '\\') {
				if (end - q < 2)
					break;
				q++;
			} else if (nf_lit_at(q, end, st->lit, st->litlen)) {
				return q;
			}
		}
		return NULL;
	}
	while ((q = memchr(q, st->lit[0], (size_t)(end - q))) != NULL) {
		if (nf_lit_at(q, end, st->lit, st->litlen))
			return q;
		q++;
	}
	return NULL;
}

static inline int
nf_hex(uint8_t c)
{
	if (nginx_digit(c))
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* escape=default: NGINX wrote bytes outside 0x20..0x7e, '"' and '\' as \xHH. */
static size_t
nf_unescape_hex(const uint8_t *s, const uint8_t *e, uint8_t *d)
{
	size_t n = 0;

	while (s < e) {
		int hi, lo;

		if (*s == '\\' && e - s >= 4 && s[1] == 'x' && (hi = nf_hex(s[2])) >= 0 &&
		    (lo = nf_hex(s[3])) >= 0) {
			d[n++] = (uint8_t)(hi << 4 | lo);
			s += 4;
		} else {
			d[n++] = *s++;
		}
	}
	return n;
}

/* escape=json: JSON string escapes. Returns the length, or -1 for a malformed one. */
static long
nf_unescape_json(const uint8_t *s, const uint8_t *e, uint8_t *d)
{
	size_t n = 0;

	while (s < e) {
		unsigned cp = 0;

		if (*s != '\\') {
			d[n++] = *s++;
			continue;
		}
		if (e - s < 2)
			return -1;
		switch (s[1]) {
		case '"': case '\\': case '/':
			d[n++] = s[1];
			break;
		case 'b': d[n++] = '\b'; break;
		case 'f': d[n++] = '\f'; break;
		case 'n': d[n++] = '\n'; break;
		case 'r': d[n++] = '\r'; break;
		case 't': d[n++] = '\t'; break;
		case 'u':
			if (e - s < 6)
				return -1;
			for (int i = 2; i < 6; i++) {
				int h = nf_hex(s[i]);

				if (h < 0)
					return -1;
				cp = cp << 4 | (unsigned)h;
			}
			/* At most 3 bytes for the 6 read. */
			if (cp < 0x80) {
				d[n++] = (uint8_t)cp;
			} else if (cp < 0x800) {
				d[n++] = (uint8_t)(0xc0 | cp >> 6);
				d[n++] = (uint8_t)(0x80 | (cp & 0x3f));
			} else {
				d[n++] = (uint8_t)(0xe0 | cp >> 12);
				d[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
				d[n++] = (uint8_t)(0x80 | (cp & 0x3f));
			}
			s += 4;
			break;
		default:
			return -1;
		}
		s += 2;
	}
	return (long)n;
}

/* The parse of one line: the result, and where its TEXT and JSON values lie in scratch. */
struct nf_run {
	struct parsed *out;
	const uint8_t *line;
	size_t soff[PARSER_MAX_FIELDS];
	int ts_rank;                 /* which variable set out->ts: higher wins */
};

static struct event_field *
nf_field(struct nf_run *r, const struct pbslice *key, enum event_value_type type)
{
	struct event_field *f = &r->out->fields[r->out->nfields++];

	f->key = *key;
	f->type = type;
	return f;
}

static void
nf_add_slice(struct nf_run *r, const struct pbslice *key, const uint8_t *s, const uint8_t *e)
{
	struct event_field *f = nf_field(r, key, EVENT_SLICE);

	/* nginx_format_parse refuses lines of 4 GiB or more, so these fit. */
	f->v.slice.offset = (uint32_t)(s - r->line);
	f->v.slice.length = (uint32_t)(e - s);
}

/* A value of scratch[off, off + n); its pointer is set once scratch stops moving. */
static void
nf_add_scratch(struct nf_run *r, const struct pbslice *key, enum event_value_type type,
    size_t off, size_t n)
{
	r->soff[r->out->nfields] = off;
	nf_field(r, key, type)->v.text.len = n;
}

/* Adds the fields of $request's parts, of bytes b (at slice or scratch offset off). */
static void
nf_add_request_parts(struct nf_run *r, const uint8_t *b, size_t n, bool slice, size_t off)
{
	const struct pbslice *keys[3] = { &nf_method, &nf_path, &nf_protocol };
	const uint8_t *m, *proto;
	size_t at[4];

	if (!nginx_request_parts(b, b + n, &m, &proto))
		return;
	at[0] = 0;
	at[1] = (size_t)(m - b);
	at[2] = (size_t)(proto - b);
	at[3] = n;
	for (int i = 0; i < 3; i++) {
		/* Past the space that ends the part before. */
		size_t s = at[i] + (i > 0), e = at[i + 1];

		if (slice)
			nf_add_slice(r, keys[i], r->line + off + s, r->line + off + e);
		else
			nf_add_scratch(r, keys[i], EVENT_TEXT, off + s, e - s);
	}
}

/* A string: a slice of the line, or its escapes decoded into scratch. */
static void
nf_add_string(const struct nginx_format *f, const struct nf_step *st, struct nf_run *r,
    const uint8_t *s, const uint8_t *e)
{
	struct buf *b = &r->out->scratch;
	bool split = st->kind == NF_REQUEST && f->split_request;
	long n;

	if (f->escape == NF_ESCAPE_NONE || memchr(s, '\\', (size_t)(e - s)) == NULL)
		goto slice;
	/* Decoding never makes a value longer. */
	if (buf_reserve(b, (size_t)(e - s)) != 0) {
		r->out->error = NF_ERR_SCRATCH;
		goto slice;
	}
	if (f->escape == NF_ESCAPE_JSON)
		n = nf_unescape_json(s, e, b->data + b->len);
	else
		n = (long)nf_unescape_hex(s, e, b->data + b->len);
	if (n < 0)
		goto slice;
	nf_add_scratch(r, &st->key, EVENT_TEXT, b->len, (size_t)n);
	if (split)
		nf_add_request_parts(r, b->data + b->len, (size_t)n, false, b->len);
	b->len += (size_t)n;
	return;
slice:
	nf_add_slice(r, &st->key, s, e);
	if (split)
		nf_add_request_parts(r, s, (size_t)(e - s), true, (size_t)(s - r->line));
}

/*
 * A decimal number `digits[.digits]` at s[0, e) with at most maxint digits
 * before the dot (none after it when maxfrac is 0). Sets *ip and *frac_ns.
 */
static bool
nf_decimal(const uint8_t *s, const uint8_t *e, int maxint, int maxfrac, uint64_t *ip,
    uint32_t *frac_ns)
{
	const uint8_t *p = s;
	uint64_t v = 0;
	uint32_t frac = 0, scale = 1000000000;

	while (p < e && nginx_digit(*p)) {
		if (p - s == maxint)
			return false;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	if (p == s)
		return false;
	if (p < e) {
		const uint8_t *d = ++p;

		if (p[-1] != '.' || p == e || e - d > maxfrac)
			return false;
		for (; p < e; p++) {
			if (!nginx_digit(*p))
				return false;
			scale /= 10;
			frac += (uint32_t)(*p - '0') * scale;
		}
	}
	*ip = v;
	*frac_ns = frac;
	return true;
}

/* An upstream list as a JSON array in scratch; false if an item is malformed. */
static bool
nf_add_list(const struct nf_step *st, struct nf_run *r, const uint8_t *s, const uint8_t *e)
{
	struct buf *b = &r->out->scratch;
	size_t off = b->len;
	int rc = buf_append(b, "[", 1);

	for (const uint8_t *q = s; q < e && rc == 0;) {
		const uint8_t *it = q;
		uint64_t v;
		uint32_t frac;

		while (q < e && *q != ',' && *q != ' ')
			q++;
		if (q == it)
			return false;
		if (it != s)
			rc = buf_append(b, ",", 1);
		if (rc != 0)
			break;
		if (q - it == 1 && *it == '-') {
			rc = jsonw_raw(b, "null");
		} else if (st->kind == NF_LIST_STRING) {
			rc = jsonw_string(b, it, (size_t)(q - it));
		} else if (!nf_decimal(it, q, 18, st->kind == NF_LIST_NUMBER ? 9 : 0, &v, &frac)) {
			return false;
		} else if (*it == '0' && q - it > 1 && it[1] != '.') {
			/* JSON has no leading zeros. */
			rc = st->kind == NF_LIST_NUMBER ? jsonw_double(b, (double)v + frac / 1e9) :
			    jsonw_uint(b, v);
		} else {
			/* As NGINX wrote it: 0.010 keeps its millisecond digits. */
			rc = buf_append(b, it, (size_t)(q - it));
		}
		/* nf_value_end let only whole separators inside the value. */
		if (q < e && (q += *q == ',' ? 2 : 3) == e)
			return false;
	}
	if (rc == 0)
		rc = buf_append(b, "]", 1);
	if (rc != 0) {
		b->len = off;
		r->out->error = NF_ERR_SCRATCH;
		nf_add_slice(r, &st->key, s, e);
		return true;
	}
	nf_add_scratch(r, &st->key, EVENT_JSON, off, b->len - off);
	return true;
}

static void
nf_set_ts(struct nf_run *r, int rank, uint64_t ts)
{
	if (rank > r->ts_rank) {
		r->ts_rank = rank;
		r->out->ts = ts;
	}
}

/* Adds the field of st's value s[0, e). Returns false if the value is malformed. */
static bool
nf_value(const struct nginx_format *f, const struct nf_step *st, struct nf_run *r,
    const uint8_t *s, const uint8_t *e)
{
	uint64_t v, ts;
	uint32_t frac;
	size_t used;

	if ((e - s == 1 && *s == '-') || (e == s && f->escape == NF_ESCAPE_JSON))
		return true;
	switch (st->kind) {
	case NF_STRING:
	case NF_REQUEST:
		nf_add_string(f, st, r, s, e);
		return true;
	case NF_INTEGER:
		if (!nf_decimal(s, e, 18, 0, &v, &frac))
			return false;
		nf_field(r, &st->key, EVENT_INTEGER)->v.integer = (int64_t)v;
		return true;
	case NF_NUMBER:
	case NF_MSEC:
		if (!nf_decimal(s, e, 15, 9, &v, &frac))
			return false;
		nf_field(r, &st->key, EVENT_NUMBER)->v.number = (double)v + frac / 1e9;
		if (st->kind == NF_MSEC)
			nf_set_ts(r, 3, civil_ns((int64_t)v, frac));
		return true;
	case NF_TIME_LOCAL:
		if (!nginx_time_local_memo(s, &ts, &r->out->time_memo))
			return false;
		nf_set_ts(r, 1, ts);
		nf_add_slice(r, &st->key, s, e);
		return true;
	case NF_TIME_ISO8601:
		if (civil_rfc3339(s, (size_t)(e - s), &used, &ts) != 0 || used != (size_t)(e - s))
			return false;
		nf_set_ts(r, 2, ts);
		nf_add_slice(r, &st->key, s, e);
		return true;
	case NF_LIST_STRING:
	case NF_LIST_INTEGER:
	case NF_LIST_NUMBER:
		return nf_add_list(st, r, s, e);
	}
	return false;
}

int
nginx_format_parse(const struct nginx_format *f, const uint8_t *line, size_t len,
    struct parsed *out)
{
	struct nf_run r;
	const uint8_t *p = line, *end;
	const char *why;

	parser_reset(out);
	r.out = out;
	r.line = line;
	r.ts_rank = 0;
	if (len > UINT32_MAX) {
		why = NF_ERR("line of 4 GiB or more");
		goto fail;
	}
	len = nginx_line_len(line, len);
	end = line + len;
	if (!nf_lit_at(p, end, f->prefix, f->prefixlen)) {
		why = f->err_prefix;
		goto fail;
	}
	p += f->prefixlen;
	for (size_t i = 0; i < f->nsteps; i++) {
		const struct nf_step *st = &f->steps[i];
		const uint8_t *e = nf_value_end(f, st, p, end);

		if (e == NULL || !nf_lit_at(e, end, st->lit, st->litlen) ||
		    (st->litlen == 0 && e != end)) {
			why = st->err_end;
			goto fail;
		}
		if (!nf_value(f, st, &r, p, e)) {
			why = st->err_value;
			goto fail;
		}
		p = e + st->litlen;
	}
	for (size_t i = 0; i < out->nfields; i++)
		if (out->fields[i].type == EVENT_TEXT || out->fields[i].type == EVENT_JSON)
			out->fields[i].v.text.ptr = out->scratch.data + r.soff[i];
	return 0;

fail:
	return nginx_parse_fail(out, why);
}
