/* SPDX-License-Identifier: Apache-2.0 */
/* intake: an HTTP intake body into events (see intake.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/intake.h"
#include "common/json_parse.h"
#include "common/parser.h"

#define INTAKE_STR(x) INTAKE_STR_(x)
#define INTAKE_STR_(x) #x

/* Decoded bytes produced per inflate call: the buffer grows by at most this much at once. */
#define INTAKE_INFLATE_STEP (64 * 1024)

/* Upper bound of a protobuf tag plus a length or varint value. */
#define INTAKE_PB 11

struct intake {
	struct intake_options o;
	size_t host_len, stream_len, source_len;
	unsigned flags;
	struct buf body;              /* the decoded body, at most o.max_body */
	size_t received;              /* bytes as received */
	z_stream z;
	bool z_ready;                 /* inflateInit2 done: z must be ended */
	bool z_end;                   /* the last gzip member is complete */
	bool z_full;                  /* the last inflate filled its output: it may hold more */
	bool ended;
	size_t start;                 /* offset of the first byte after a BOM */
	/* intake_check's cursor and what it counted. */
	size_t check_pos, check_line;
	size_t nevents, nbytes;
	bool checked;
	/* intake_next's cursor: the next object not consumed, and the one after it. */
	size_t pos, line, next_pos, next_line;
	bool have_next;
	struct parsed parsed;
	const char *sender;           /* intake_set_sender's, or NULL */
	size_t sender_len;
	char error[INTAKE_ERROR_MAX];
};

static void
intake_fail(struct intake *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
intake_fail(struct intake *in, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(in->error, sizeof(in->error), fmt, ap);
	va_end(ap);
}

int
intake_new(const struct intake_options *o, struct intake **out)
{
	struct intake *in;

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return -ENOMEM;
	in->o = *o;
	in->host_len = strlen(o->host);
	in->stream_len = strlen(o->stream);
	in->source_len = strlen(o->source);
	buf_init(&in->body, o->max_body);
	parser_init(&in->parsed, 4096);
	*out = in;
	return 0;
}

void
intake_release(struct intake *in)
{
	buf_free(&in->body);
	parser_free(&in->parsed);
	if (in->z_ready)
		inflateEnd(&in->z);
	in->z_ready = false;
	in->ended = in->checked = in->have_next = false;
	in->received = in->nevents = in->nbytes = 0;
}

void
intake_free(struct intake *in)
{
	if (in == NULL)
		return;
	intake_release(in);
	free(in);
}

void
intake_set_sender(struct intake *in, const char *name)
{
	in->sender = name;
	in->sender_len = name != NULL ? strlen(name) : 0;
}

void
intake_begin(struct intake *in, unsigned flags)
{
	int r;

	in->flags = flags;
	buf_reset(&in->body);
	in->received = 0;
	in->z_end = in->z_full = false;
	in->ended = in->checked = in->have_next = false;
	in->start = in->nevents = in->nbytes = 0;
	in->error[0] = '\0';
	if (!(flags & INTAKE_GZIP))
		return;
	if (in->z_ready) {
		r = inflateReset(&in->z);
	} else {
		memset(&in->z, 0, sizeof(in->z));
		r = inflateInit2(&in->z, 16 + MAX_WBITS);   /* 16: gzip framing only */
	}
	/* Only memory can fail here. */
	if (r != Z_OK)
		abort();
	in->z_ready = true;
}

/* Appends to the body: 0 or -EMSGSIZE; out of memory aborts. */
static int
intake_put(struct buf *b, const uint8_t *p, size_t n)
{
	int r = buf_append(b, p, n);

	if (r == -ENOMEM)
		abort();
	return r;
}

/*
 * Inflates what z holds into the body until it needs more input. Decoded
 * bytes beyond max_body are -EMSGSIZE as soon as inflate produces them.
 */
static int
intake_inflate(struct intake *in)
{
	z_stream *z = &in->z;
	struct buf *b = &in->body;
	uint8_t probe;
	size_t room;
	int r;

	for (;;) {
		if (in->z_end) {
			if (z->avail_in == 0)
				return 0;
			/* RFC 1952 2.2: a gzip file is a series of members. */
			if (inflateReset(z) != Z_OK)
				abort();
			in->z_end = false;
		}
		if (z->avail_in == 0 && !in->z_full)
			return 0;
		room = b->max - b->len;
		if (room > INTAKE_INFLATE_STEP)
			room = INTAKE_INFLATE_STEP;
		if (room == 0) {
			/* The body is at max_body: one more decoded byte is too many. */
			z->next_out = &probe;
			z->avail_out = 1;
			r = inflate(z, Z_NO_FLUSH);
			if (z->avail_out == 0)
				return -EMSGSIZE;
			in->z_full = false;
		} else {
			if (buf_reserve(b, room) != 0)
				abort();   /* room is within max: only memory can fail */
			z->next_out = b->data + b->len;
			z->avail_out = (uInt)room;
			r = inflate(z, Z_NO_FLUSH);
			b->len += room - z->avail_out;
			in->z_full = z->avail_out == 0;
		}
		switch (r) {
		case Z_STREAM_END:
			in->z_end = true;
			in->z_full = false;
			break;
		case Z_OK:
			break;
		case Z_BUF_ERROR:
			/* No progress possible without more input. */
			in->z_full = false;
			return 0;
		case Z_MEM_ERROR:
			abort();
		default:
			intake_fail(in, "gzip: %s", z->msg != NULL ? z->msg : "invalid data");
			return -EBADMSG;
		}
	}
}

int
intake_feed(struct intake *in, const uint8_t *p, size_t n)
{
	int r;

	if (n > in->o.max_body - in->received)
		return -EMSGSIZE;
	in->received += n;
	if (!(in->flags & INTAKE_GZIP))
		return intake_put(&in->body, p, n);
	while (n > 0) {
		size_t chunk = n > (1u << 30) ? (1u << 30) : n;

		in->z.next_in = (Bytef *)(uintptr_t)p;
		in->z.avail_in = (uInt)chunk;
		if ((r = intake_inflate(in)) != 0)
			return r;
		p += chunk;
		n -= chunk;
	}
	return 0;
}

int
intake_end(struct intake *in)
{
	const uint8_t *b;
	int r;

	if (in->flags & INTAKE_GZIP) {
		in->z.next_in = NULL;
		in->z.avail_in = 0;
		if ((r = intake_inflate(in)) != 0)
			return r;
		if (!in->z_end) {
			intake_fail(in, "gzip: the body ends before its gzip stream does");
			return -EBADMSG;
		}
	}
	b = in->body.data;
	in->start = in->body.len >= 3 && memcmp(b, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	in->check_pos = in->pos = in->start;
	in->check_line = in->line = 1;
	in->nevents = in->nbytes = 0;
	in->ended = true;
	return 0;
}

static bool
intake_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The next object from *pos on: its text and the line it starts on; moves
 * *pos and *line past it. Returns 1, or 0 when no object is left.
 */
static int
intake_find(const struct intake *in, size_t *pos, size_t *line, const uint8_t **obj,
    size_t *len, size_t *obj_line)
{
	const uint8_t *base = in->body.data, *s, *e, *nl;
	size_t end = in->body.len;

	while (*pos < end) {
		s = base + *pos;
		if (in->flags & INTAKE_NDJSON) {
			nl = memchr(s, '\n', end - *pos);
			e = nl != NULL ? nl : base + end;
			*obj_line = (*line)++;
			*pos = (size_t)(e - base) + (nl != NULL);
		} else {
			/* One object: the whole body; its line is the first that is not blank. */
			e = base + end;
			*obj_line = *line;
			for (const uint8_t *q = s; q < e && intake_space(*q); q++)
				if (*q == '\n')
					(*obj_line)++;
			*pos = end;
		}
		while (s < e && intake_space(*s))
			s++;
		while (e > s && intake_space(e[-1]))
			e--;
		if (s == e)
			continue;
		*obj = s;
		*len = (size_t)(e - s);
		return 1;
	}
	return 0;
}

/*
 * At least the number of JSON values in text (commas and opening brackets
 * outside strings, plus one), counted up to a little past limit.
 */
static size_t
intake_count_values(const uint8_t *p, size_t len, size_t limit)
{
	size_t n = 1;
	bool str = false;

	for (size_t i = 0; i < len && n <= limit; i++) {
		uint8_t c = p[i];

		if (str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == ',' || c == '[' || c == '{') {
			n++;
		}
	}
	return n;
}

/* An upper bound of ev's size in an EventList (proto/event.c's layout). */
static size_t
intake_estimate(const struct event *ev)
{
	size_t n = INTAKE_PB + INTAKE_PB +   /* the list entry, ts */
	    4 * INTAKE_PB + ev->host.len + ev->stream.len + ev->source.len + ev->message.len;

	for (size_t i = 0; i < ev->nfields; i++) {
		const struct event_field *f = &ev->fields[i];

		n += 3 * INTAKE_PB + f->key.len;
		if (f->type == EVENT_TEXT)
			n += f->v.text.len;
		else if (f->type == EVENT_JSON)
			n += f->v.json.len;
	}
	return n;
}

/*
 * The sender's name as ev's INTAKE_SENDER_FIELD, in place of a member of
 * that name: an authenticated sender cannot pass for another.
 */
static int
intake_add_sender(struct intake *in, struct event *ev, size_t line)
{
	static const char key[] = INTAKE_SENDER_FIELD;
	struct parsed *p = &in->parsed;
	struct event_field *f = NULL;

	for (size_t i = 0; i < p->nfields && f == NULL; i++)
		if (p->fields[i].key.len == sizeof(key) - 1 &&
		    memcmp(p->fields[i].key.ptr, key, sizeof(key) - 1) == 0)
			f = &p->fields[i];
	if (f == NULL) {
		if (p->nfields == PARSER_MAX_FIELDS) {
			intake_fail(in, "line %zu: more than %d members: the sender field needs one "
			    "of the %d an event holds", line, PARSER_MAX_FIELDS - 1, PARSER_MAX_FIELDS);
			return -EINVAL;
		}
		f = &p->fields[p->nfields++];
		f->key.ptr = (const uint8_t *)key;
		f->key.len = sizeof(key) - 1;
	}
	f->type = EVENT_TEXT;
	f->v.text.ptr = (const uint8_t *)in->sender;
	f->v.text.len = in->sender_len;
	ev->fields = p->fields;
	ev->nfields = p->nfields;
	return 0;
}

/*
 * Parses one object into *ev (see intake.h for what goes where). Returns 0,
 * or -EINVAL with in->error naming the line.
 */
static int
intake_object(struct intake *in, const uint8_t *obj, size_t len, size_t line, uint64_t now_ns,
    struct event *ev, size_t *bytes)
{
	struct parsed *p = &in->parsed;
	size_t values = intake_count_values(obj, len, INTAKE_MAX_VALUES);

	if (values > INTAKE_MAX_VALUES) {
		intake_fail(in, "line %zu: more than " INTAKE_STR(INTAKE_MAX_VALUES)
		    " JSON values in one object", line);
		return -EINVAL;
	}
	/*
	 * Keys and strings take at most the text again; a nested value is
	 * written back compact, a real with 17 digits: ~24 bytes per value.
	 */
	p->scratch.max = 2 * len + 32 * values + 4096;
	if (json_parse(obj, len, p) != 0) {
		intake_fail(in, "line %zu: %s", line, p->error);
		return -EINVAL;
	}
	memset(ev, 0, sizeof(*ev));
	ev->ts = p->ts != 0 ? p->ts : now_ns;
	ev->host.ptr = (const uint8_t *)in->o.host;
	ev->host.len = in->host_len;
	ev->stream.ptr = (const uint8_t *)in->o.stream;
	ev->stream.len = in->stream_len;
	ev->source.ptr = (const uint8_t *)in->o.source;
	ev->source.len = in->source_len;
	ev->message.ptr = obj;
	ev->message.len = len;
	ev->fields = p->fields;
	ev->nfields = p->nfields;
	for (size_t i = 0; i < p->nfields; i++) {
		const struct event_field *f = &p->fields[i];

		if (f->key.len != 6 || memcmp(f->key.ptr, "stream", 6) != 0)
			continue;
		/* The stream routes the event (the relay's ${stream}): no guessing. */
		if (f->type != EVENT_TEXT || f->v.text.len == 0 ||
		    f->v.text.len > INTAKE_STREAM_MAX) {
			intake_fail(in, "line %zu: member \"stream\" must be a string of 1 to "
			    INTAKE_STR(INTAKE_STREAM_MAX) " bytes", line);
			return -EINVAL;
		}
		ev->stream = f->v.text;
	}
	if (in->sender != NULL && intake_add_sender(in, ev, line) != 0)
		return -EINVAL;
	*bytes = intake_estimate(ev);
	return 0;
}

int
intake_check(struct intake *in, size_t budget)
{
	size_t from = in->check_pos, len, line, bytes;
	const uint8_t *obj;
	struct event ev;

	if (!in->ended)
		abort();   /* a broken invariant: the caller skipped intake_end */
	if (in->checked)
		return 0;
	while (in->check_pos - from < budget) {
		if (!intake_find(in, &in->check_pos, &in->check_line, &obj, &len, &line)) {
			if (in->nevents == 0 && !(in->flags & INTAKE_NDJSON)) {
				intake_fail(in, "line 1: the body is empty: send one JSON object, "
				    "or JSON objects one per line as application/x-ndjson");
				return -EINVAL;
			}
			in->checked = true;
			return 0;
		}
		if (intake_object(in, obj, len, line, 0, &ev, &bytes) != 0)
			return -EINVAL;
		in->nevents++;
		in->nbytes += bytes;
	}
	return 1;
}

size_t
intake_events(const struct intake *in)
{
	return in->nevents;
}

size_t
intake_bytes(const struct intake *in)
{
	return in->nbytes;
}

const char *
intake_error(const struct intake *in)
{
	return in->error;
}

int
intake_next(struct intake *in, uint64_t now_ns, struct event *ev, size_t *bytes)
{
	size_t len, line;
	const uint8_t *obj;

	if (!in->checked)
		abort();   /* a broken invariant: nothing is taken before all is checked */
	in->next_pos = in->pos;
	in->next_line = in->line;
	if (!intake_find(in, &in->next_pos, &in->next_line, &obj, &len, &line)) {
		in->have_next = false;
		return 0;
	}
	/* intake_check accepted the same bytes: a failure here is a bug. */
	if (intake_object(in, obj, len, line, now_ns, ev, bytes) != 0)
		abort();
	in->have_next = true;
	return 1;
}

void
intake_consume(struct intake *in)
{
	if (!in->have_next)
		return;
	in->pos = in->next_pos;
	in->line = in->next_line;
	in->have_next = false;
}

size_t
intake_offset(const struct intake *in)
{
	return in->pos;
}
