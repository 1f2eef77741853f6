/* SPDX-License-Identifier: Apache-2.0 */
/* syslog_parse: RFC 5424 and RFC 3164 messages into fields (see syslog_parse.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/syslog_parse.h"
#include "common/civil.h"

#define KEY(s) ((struct pbslice){ (const uint8_t *)(s), sizeof(s) - 1 })

static const char *const syslog_facilities[24] = {
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console",
	"solaris-cron", "local0", "local1", "local2", "local3", "local4",
	"local5", "local6", "local7",
};

static const char *const syslog_severities[8] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};


/* syslog_pri's fields, the first of every message with a PRI. */
#define SYSLOG_PRI_FIELDS 4

/* One parse in progress: a read position in msg[0, len) and the result. */
struct syslog_cur {
	const uint8_t *msg;
	size_t len, pos;
	struct parsed *out;
	bool has_pri;
	size_t pri_end;              /* where the header after the PRI starts */
	/* Structured data fields are fields[sd_first, sd_end); their keys (and
	 * unescaped values) are scratch offsets until scratch stops growing. */
	size_t sd_first, sd_end;
	struct {
		size_t key, val;
		bool val_in_scratch;
	} fix[PARSER_MAX_FIELDS];
};

static int
syslog_fail(struct syslog_cur *c, const char *why)
{
	c->out->error = why;
	return -EINVAL;
}

/* ------------------------------------------------------------- fields */

static struct event_field *
syslog_field(struct syslog_cur *c, struct pbslice key)
{
	struct parsed *out = c->out;
	struct event_field *f;

	if (out->nfields == PARSER_MAX_FIELDS)
		return NULL;
	f = &out->fields[out->nfields++];
	f->key = key;
	return f;
}

static void
syslog_add_slice(struct syslog_cur *c, struct pbslice key, size_t off, size_t len)
{
	struct event_field *f = syslog_field(c, key);

	if (f == NULL)
		return;
	/* syslog_parse refuses lines of 4 GiB or more: these fit. */
	f->type = EVENT_SLICE;
	f->v.slice.offset = (uint32_t)off;
	f->v.slice.length = (uint32_t)len;
}

static void
syslog_add_integer(struct syslog_cur *c, struct pbslice key, int64_t v)
{
	struct event_field *f = syslog_field(c, key);

	if (f == NULL)
		return;
	f->type = EVENT_INTEGER;
	f->v.integer = v;
}

static void
syslog_add_static(struct syslog_cur *c, struct pbslice key, const char *s)
{
	struct event_field *f = syslog_field(c, key);

	if (f == NULL)
		return;
	f->type = EVENT_TEXT;
	f->v.text.ptr = (const uint8_t *)s;
	f->v.text.len = strlen(s);
}

/* A header value: "-" (NILVALUE) is absent. */
static void
syslog_add_token(struct syslog_cur *c, struct pbslice key, size_t off, size_t len)
{
	if (len == 1 && c->msg[off] == '-')
		return;
	syslog_add_slice(c, key, off, len);
}

/* The message: a UTF-8 BOM goes, an empty one is left out. */
static void
syslog_add_message(struct syslog_cur *c)
{
	size_t off = c->pos;

	if (c->len - off >= 3 && memcmp(c->msg + off, "\xef\xbb\xbf", 3) == 0)
		off += 3;
	if (off < c->len)
		syslog_add_slice(c, KEY("message"), off, c->len - off);
}

/* Room for n more bytes of scratch; false if that would pass its cap. */
static bool
syslog_reserve(struct buf *b, size_t n)
{
	int r = buf_reserve(b, n);

	if (r == -ENOMEM)
		abort();
	return r == 0;
}

/* -------------------------------------------------------------- lexing */

static bool
syslog_lit(struct syslog_cur *c, uint8_t ch)
{
	if (c->pos < c->len && c->msg[c->pos] == ch) {
		c->pos++;
		return true;
	}
	return false;
}

static void
syslog_spaces(struct syslog_cur *c)
{
	while (c->pos < c->len && c->msg[c->pos] == ' ')
		c->pos++;
}

static bool
syslog_isdigit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

/* Exactly n decimal digits. */
static bool
syslog_num(struct syslog_cur *c, size_t n, int *v)
{
	int x = 0;

	if (c->len - c->pos < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = c->msg[c->pos + i];

		if (!syslog_isdigit(ch))
			return false;
		x = x * 10 + (ch - '0');
	}
	c->pos += n;
	*v = x;
	return true;
}

/* After "." of a time: 1 to 9 digits, as nanoseconds. */
static bool
syslog_frac(struct syslog_cur *c, uint32_t *ns)
{
	size_t n;

	if (civil_frac(c->msg + c->pos, c->len - c->pos, &n, ns) != 0)
		return false;
	c->pos += n;
	return true;
}

/* --------------------------------------------------------------- time */

/* Does an RFC 3339 timestamp start here? (4 digits and "-": then it must be one.) */
static bool
syslog_looks_3339(const struct syslog_cur *c)
{
	const uint8_t *p = c->msg + c->pos;

	return c->len - c->pos >= 5 && syslog_isdigit(p[0]) && syslog_isdigit(p[1]) &&
	    syslog_isdigit(p[2]) && syslog_isdigit(p[3]) && p[4] == '-';
}

/*
 * YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm). RFC 5424 allows 6 fraction digits;
 * 9 are kept. RFC 5424 requires the "T" (rsyslog writes it too):
 * civil_rfc3339 would also take a space, which syslog lines keep refusing.
 */
static bool
syslog_rfc3339(struct syslog_cur *c, uint64_t *ts)
{
	size_t n;

	if (c->len - c->pos > 10 && c->msg[c->pos + 10] == ' ')
		return false;
	if (civil_rfc3339(c->msg + c->pos, c->len - c->pos, &n, ts) != 0)
		return false;
	c->pos += n;
	return true;
}

/* Does "Mmm d" or "Mmm  d" start here? (Then it must be a timestamp.) */
static bool
syslog_looks_3164(const struct syslog_cur *c)
{
	const uint8_t *p = c->msg + c->pos;

	return c->len - c->pos >= 5 && civil_month(p) != 0 && p[3] == ' ' &&
	    (syslog_isdigit(p[4]) || p[4] == ' ');
}

/* Exactly 4 digits and a space: the year some senders write after the day. */
static bool
syslog_year(struct syslog_cur *c, int *year)
{
	if (c->len - c->pos < 5 || c->msg[c->pos + 4] != ' ' || !syslog_num(c, 4, year))
		return false;
	c->pos++;
	return true;
}

/*
 * Mmm dd [yyyy] hh:mm:ss[.f{1,9}][:], the day space-padded, zero-padded or
 * not padded. The year and the colon after the time are not RFC 3164's, but
 * Cisco and others write them and rsyslog accepts them. No zone: local
 * time in zone (NULL: UTC). With no year, the year (now's, the one before
 * or after) that puts it closest to now.
 */
static bool
syslog_rfc3164_time(struct syslog_cur *c, uint64_t now_ns, const struct tz *zone, uint64_t *ts)
{
	int mo = civil_month(c->msg + c->pos), d, h, mi, s, year = -1;
	int64_t now = (int64_t)(now_ns / 1000000000u), y0, y1, best = -1, bestdiff = 0;
	uint32_t ns = 0;

	c->pos += 4;
	if (!syslog_lit(c, ' ') && c->len - c->pos >= 2 && syslog_isdigit(c->msg[c->pos + 1])) {
		if (!syslog_num(c, 2, &d))
			return false;
	} else if (!syslog_num(c, 1, &d)) {
		return false;
	}
	if (!syslog_lit(c, ' '))
		return false;
	(void)syslog_year(c, &year);
	if (!syslog_num(c, 2, &h) || !syslog_lit(c, ':') ||
	    !syslog_num(c, 2, &mi) || !syslog_lit(c, ':') || !syslog_num(c, 2, &s))
		return false;
	if (syslog_lit(c, '.') && !syslog_frac(c, &ns))
		return false;
	(void)syslog_lit(c, ':');
	if (d < 1 || h > 23 || mi > 59 || s > 60)
		return false;
	if (year >= 0) {
		y0 = y1 = year;
	} else {
		y0 = civil_year_of_day(now / 86400) - 1;
		y1 = y0 + 2;
	}
	for (int64_t y = y0; y <= y1; y++) {
		int64_t t, diff;

		if (d > civil_days_in_month(y, mo))
			continue;
		t = civil_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
		if (zone != NULL)
			t = tz_utc(zone, t, now);
		diff = t > now ? t - now : now - t;
		if (best < 0 || diff < bestdiff) {
			best = t;
			bestdiff = diff;
		}
	}
	if (best < 0)
		return false;
	*ts = civil_ns(best, ns);
	return true;
}

/* ---------------------------------------------------------------- PRI */

static int
syslog_pri(struct syslog_cur *c)
{
	size_t ndigits = 0;
	int pri = 0;

	c->pos = 1;
	while (c->pos < c->len && syslog_isdigit(c->msg[c->pos]) && ndigits < 4) {
		pri = pri * 10 + (c->msg[c->pos++] - '0');
		ndigits++;
	}
	if (c->pos == c->len)
		return syslog_fail(c, "syslog: PRI is not closed");
	if (ndigits > 3)
		return syslog_fail(c, "syslog: PRI has more than 3 digits");
	if (c->msg[c->pos] != '>')
		return syslog_fail(c, "syslog: PRI is not a number");
	if (ndigits == 0)
		return syslog_fail(c, "syslog: PRI is empty");
	if (pri > 191)
		return syslog_fail(c, "syslog: PRI above 191");
	c->pos++;
	c->has_pri = true;
	c->pri_end = c->pos;
	syslog_add_integer(c, KEY("facility"), pri >> 3);
	syslog_add_static(c, KEY("facility_name"), syslog_facilities[pri >> 3]);
	syslog_add_integer(c, KEY("severity"), pri & 7);
	syslog_add_static(c, KEY("severity_name"), syslog_severities[pri & 7]);
	return 0;
}

/* ------------------------------------------------------------ RFC 5424 */

/* Bytes allowed in an SD-NAME: printable US-ASCII but = ] " and space. */
static bool
syslog_sd_namech(uint8_t ch)
{
	return ch > 32 && ch < 127 && ch != '=' && ch != ']' && ch != '"';
}

static size_t
syslog_sd_name(struct syslog_cur *c)
{
	size_t start = c->pos;

	while (c->pos < c->len && syslog_sd_namech(c->msg[c->pos]))
		c->pos++;
	return c->pos - start;
}

/*
 * Adds sd.<id>.<name>. The key is built in scratch; a value with escapes
 * is unescaped into scratch (never longer than the escaped text). When
 * scratch is full, the value stays the raw (escaped) slice; a key that
 * does not fit loses its parameter. One slot stays free for the message.
 * A repeated parameter keeps its first value.
 */
static void
syslog_sd_param(struct syslog_cur *c, size_t id, size_t idlen, size_t name, size_t namelen,
    size_t val, size_t vallen, bool escaped)
{
	struct parsed *out = c->out;
	struct buf *b = &out->scratch;
	struct event_field *f;
	size_t i = out->nfields, key = b->len, keylen = 4 + idlen + namelen;
	uint8_t *p;

	if (i >= PARSER_MAX_FIELDS - 1 || !syslog_reserve(b, keylen))
		return;
	p = b->data + key;
	memcpy(p, "sd.", 3);
	memcpy(p + 3, c->msg + id, idlen);
	p[3 + idlen] = '.';
	memcpy(p + 4 + idlen, c->msg + name, namelen);
	for (size_t j = c->sd_first; j < i; j++)
		if (out->fields[j].key.len == keylen &&
		    memcmp(b->data + c->fix[j].key, p, keylen) == 0)
			return;
	b->len += keylen;
	f = syslog_field(c, (struct pbslice){ NULL, keylen });
	c->fix[i].key = key;
	c->fix[i].val_in_scratch = false;
	c->sd_end = i + 1;
	if (escaped && syslog_reserve(b, vallen)) {
		const uint8_t *s = c->msg + val, *end = s + vallen;
		uint8_t *d = b->data + b->len;

		/* \" \\ \] are escapes; a backslash before anything else is itself. */
		while (s < end) {
			if (s[0] == '\\' && end - s >= 2 &&
			    (s[1] == '"' || s[1] == '\\' || s[1] == ']'))
				s++;
			*d++ = *s++;
		}
		f->type = EVENT_TEXT;
		f->v.text.ptr = NULL;
		f->v.text.len = (size_t)(d - (b->data + b->len));
		c->fix[i].val = b->len;
		c->fix[i].val_in_scratch = true;
		b->len += f->v.text.len;
		return;
	}
	f->type = EVENT_SLICE;
	f->v.slice.offset = (uint32_t)val;
	f->v.slice.length = (uint32_t)vallen;
}

/* STRUCTURED-DATA: "-" or one or more [SD-ID *(SP PARAM-NAME="value")]. */
static int
syslog_sd(struct syslog_cur *c)
{
	static const char unclosed[] = "syslog: structured data is not closed";
	const uint8_t *m = c->msg;

	c->sd_first = c->sd_end = c->out->nfields;
	if (c->pos == c->len)
		return syslog_fail(c, "syslog: RFC 5424 header is truncated");
	if (syslog_lit(c, '-'))
		return 0;
	if (m[c->pos] != '[')
		return syslog_fail(c, "syslog: structured data is neither - nor [");
	while (syslog_lit(c, '[')) {
		size_t id = c->pos, idlen = syslog_sd_name(c);

		if (c->pos == c->len)
			return syslog_fail(c, unclosed);
		if (idlen == 0)
			return syslog_fail(c, "syslog: empty SD-ID");
		for (bool first = true;; first = false) {
			size_t name, namelen, val;
			bool escaped = false, space;

			if (c->pos == c->len)
				return syslog_fail(c, unclosed);
			if (syslog_lit(c, ']'))
				break;
			if (!syslog_lit(c, ' '))
				return syslog_fail(c, first ? "syslog: bad character in SD-ID" :
				    "syslog: no space between SD-PARAMs");
			/* Lenient as rsyslog: more spaces, and spaces before "]" or around "=". */
			syslog_spaces(c);
			if (syslog_lit(c, ']'))
				break;
			name = c->pos;
			namelen = syslog_sd_name(c);
			if (c->pos == c->len)
				return syslog_fail(c, unclosed);
			if (namelen == 0)
				return syslog_fail(c, "syslog: empty SD-PARAM name");
			space = m[c->pos] == ' ';
			syslog_spaces(c);
			if (c->pos == c->len)
				return syslog_fail(c, unclosed);
			if (m[c->pos] != '=' && (space || m[c->pos] == ']'))
				return syslog_fail(c, "syslog: SD-PARAM without =");
			if (!syslog_lit(c, '='))
				return syslog_fail(c, "syslog: bad character in SD-PARAM name");
			syslog_spaces(c);
			if (c->pos == c->len)
				return syslog_fail(c, unclosed);
			if (!syslog_lit(c, '"'))
				return syslog_fail(c, "syslog: SD-PARAM value is not quoted");
			val = c->pos;
			while (c->pos < c->len && m[c->pos] != '"') {
				if (m[c->pos] == '\\' && c->len - c->pos >= 2) {
					escaped |= m[c->pos + 1] == '"' || m[c->pos + 1] == '\\' ||
					    m[c->pos + 1] == ']';
					c->pos += 2;
				} else {
					c->pos++;
				}
			}
			if (c->pos == c->len)
				return syslog_fail(c, unclosed);
			syslog_sd_param(c, id, idlen, name, namelen, val, c->pos - val, escaped);
			c->pos++;
		}
	}
	return 0;
}

/* A header field: bytes up to a space, which must follow. */
static int
syslog_header_token(struct syslog_cur *c, size_t *off, size_t *len)
{
	const uint8_t *sp;

	*off = c->pos;
	sp = memchr(c->msg + c->pos, ' ', c->len - c->pos);
	if (sp == NULL)
		return syslog_fail(c, "syslog: RFC 5424 header is truncated");
	*len = (size_t)(sp - c->msg) - c->pos;
	if (*len == 0)
		return syslog_fail(c, "syslog: empty field in RFC 5424 header");
	c->pos += *len + 1;
	return 0;
}

/* After "<PRI>1 ". */
static int
syslog_5424(struct syslog_cur *c)
{
	static const struct pbslice keys[] = {
		KEY("hostname"), KEY("app_name"), KEY("procid"), KEY("msgid"),
	};
	size_t off, len;
	int r;

	if (!syslog_lit(c, '-') && !syslog_rfc3339(c, &c->out->ts))
		return syslog_fail(c, "syslog: bad RFC 5424 timestamp");
	if (c->pos == c->len)
		return syslog_fail(c, "syslog: RFC 5424 header is truncated");
	if (!syslog_lit(c, ' '))
		return syslog_fail(c, "syslog: bad RFC 5424 timestamp");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if ((r = syslog_header_token(c, &off, &len)) != 0)
			return r;
		syslog_add_token(c, keys[i], off, len);
		if (i == 0 && !(len == 1 && c->msg[off] == '-')) {
			c->out->host.ptr = c->msg + off;
			c->out->host.len = len;
		}
	}
	if ((r = syslog_sd(c)) != 0)
		return r;
	if (c->pos == c->len)
		return 0;
	if (!syslog_lit(c, ' '))
		return syslog_fail(c, "syslog: no space after structured data");
	syslog_add_message(c);
	return 0;
}

/* ------------------------------------------------------------ RFC 3164 */

/*
 * TAG and MSG: "app[pid]: msg" or "app: msg" (one space after the colon
 * is dropped); anything else is all message.
 */
static void
syslog_tag(struct syslog_cur *c)
{
	const uint8_t *m = c->msg;
	size_t start = c->pos, i = start;

	while (i < c->len && m[i] != '[' && m[i] != ':' && m[i] != ' ')
		i++;
	if (i > start && i < c->len) {
		if (m[i] == ':') {
			syslog_add_slice(c, KEY("app_name"), start, i - start);
			c->pos = i + 1;
		} else if (m[i] == '[') {
			const uint8_t *close = memchr(m + i, ']', c->len - i);
			size_t j = close ? (size_t)(close - m) : c->len;

			if (j + 1 < c->len && m[j + 1] == ':') {
				syslog_add_slice(c, KEY("app_name"), start, i - start);
				if (j > i + 1)
					syslog_add_slice(c, KEY("procid"), i + 1, j - i - 1);
				c->pos = j + 2;
			}
		}
		if (c->pos != start)
			syslog_lit(c, ' ');
	}
	syslog_add_message(c);
}

/*
 * The host is the word after the timestamp unless it looks like a TAG
 * ("app:" or "app[pid]:"), as in the messages of local sockets, which
 * leave it out.
 */
static void
syslog_host(struct syslog_cur *c)
{
	const uint8_t *m = c->msg + c->pos, *sp;
	size_t n;

	sp = memchr(m, ' ', c->len - c->pos);
	n = sp ? (size_t)(sp - m) : c->len - c->pos;
	if (n == 0 || m[n - 1] == ':' || memchr(m, '[', n) != NULL)
		return;
	syslog_add_slice(c, KEY("hostname"), c->pos, n);
	c->out->host.ptr = m;
	c->out->host.len = n;
	c->pos += n;
	syslog_lit(c, ' ');
}

/* [timestamp SP] [HOSTNAME SP] [TAG] MSG, after the PRI if there is one. */
static int
syslog_3164(struct syslog_cur *c, uint64_t now_ns, const struct tz *zone)
{
	const char *bad;
	size_t start = c->pos;

	/* "<38> Mar  7 ...": spaces before the timestamp (rsyslog's testbench date1). */
	if (c->has_pri) {
		syslog_spaces(c);
		if (!syslog_looks_3339(c) && !syslog_looks_3164(c))
			c->pos = start;
	}
	if (syslog_looks_3339(c)) {
		bad = "syslog: bad RFC 3339 timestamp";
		if (!syslog_rfc3339(c, &c->out->ts))
			return syslog_fail(c, bad);
	} else if (syslog_looks_3164(c)) {
		bad = "syslog: bad RFC 3164 timestamp";
		if (!syslog_rfc3164_time(c, now_ns, zone, &c->out->ts))
			return syslog_fail(c, bad);
	} else if (c->has_pri) {
		/* "<13>app: msg": a PRI and nothing else of the header. */
		syslog_tag(c);
		return 0;
	} else {
		return syslog_fail(c, "syslog: no timestamp or PRI");
	}
	if (c->pos == c->len)
		return 0;
	if (!syslog_lit(c, ' '))
		return syslog_fail(c, bad);
	syslog_host(c);
	syslog_tag(c);
	return 0;
}

/* ---------------------------------------------------------------- API */

int
syslog_parse(const uint8_t *msg, size_t len, uint64_t now_ns, const struct tz *zone,
    struct parsed *out)
{
	struct syslog_cur c;
	int r;

	parser_reset(out);
	if (len == 0)
		msg = (const uint8_t *)"";
	/* Senders and framings leave a line end or a NUL behind: not content. */
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r' || msg[len - 1] == '\0'))
		len--;
	c.msg = msg;
	c.len = len;
	c.pos = 0;
	c.out = out;
	c.has_pri = false;
	c.pri_end = 0;
	c.sd_first = c.sd_end = 0;
	if (len > UINT32_MAX) {
		r = syslog_fail(&c, "syslog: message of 4 GiB or more");
		goto out;
	}
	if (len > 0 && msg[0] == '<' && (r = syslog_pri(&c)) != 0)
		goto out;
	if (c.has_pri && c.len - c.pos >= 2 && msg[c.pos] == '1' && msg[c.pos + 1] == ' ') {
		c.pos += 2;
		r = syslog_5424(&c);
	} else {
		r = syslog_3164(&c, now_ns, zone);
	}
	if (r != 0 && c.has_pri) {
		/*
		 * The priority was read: keep it, and the rest as the message,
		 * rather than lose the whole header to one bad byte (rsyslog keeps
		 * it too). The error says what was not understood.
		 */
		out->nfields = SYSLOG_PRI_FIELDS;
		out->ts = 0;
		out->host.ptr = NULL;
		out->host.len = 0;
		c.pos = c.pri_end;
		if (c.pos < c.len)
			syslog_add_slice(&c, KEY("message"), c.pos, c.len - c.pos);
		return 0;
	}
	if (r != 0)
		goto out;
	/* Scratch has stopped growing (and moving): its offsets become pointers. */
	for (size_t i = c.sd_first; i < c.sd_end; i++) {
		struct event_field *f = &out->fields[i];

		f->key.ptr = out->scratch.data + c.fix[i].key;
		if (c.fix[i].val_in_scratch)
			f->v.text.ptr = out->scratch.data + c.fix[i].val;
	}
out:
	if (r != 0) {
		out->ts = 0;
		out->host.ptr = NULL;
		out->host.len = 0;
		out->nfields = 0;
	}
	return r;
}
