#include "autoconfig.h"

#include <errno.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "proto/event.h"

/* Field numbers of proto/logferry.proto. */
enum {
	EVENTLIST_EVENTS = 1,
	EVENT_TS = 1, EVENT_HOST, EVENT_STREAM, EVENT_SOURCE, EVENT_MESSAGE, EVENT_FIELDS,
	FIELD_KEY = 1, FIELD_TEXT, FIELD_INTEGER, FIELD_NUMBER, FIELD_BOOLEAN,
	FIELD_SLICE, FIELD_JSON,
	SLICE_OFFSET = 1, SLICE_LENGTH,
};

/* ---------------------------------------------------------------- sizes */

static size_t
event_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A length-delimited field of tag number < 16 holding len bytes. */
static size_t
event_len_size(size_t len)
{
	return 1 + event_varint_size(len) + len;
}

/* Proto3 omits empty bytes fields. */
static size_t
event_bytes_size(const struct pbslice *b)
{
	return b->len ? event_len_size(b->len) : 0;
}

static size_t
event_slice_size(uint32_t offset, uint32_t length)
{
	return (offset ? 1 + event_varint_size(offset) : 0) +
	    (length ? 1 + event_varint_size(length) : 0);
}

static size_t
event_zigzag(int64_t v)
{
	return (size_t)(((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* Size of one Field message's contents, or 0 with *bad set for an unknown type. */
static size_t
event_field_size(const struct event_field *f, bool *bad)
{
	size_t n = event_bytes_size(&f->key);

	switch (f->type) {
	case EVENT_NULL: return n;
	/* Oneof members are always written, even when empty or zero. */
	case EVENT_TEXT: return n + event_len_size(f->v.text.len);
	case EVENT_INTEGER: return n + 1 + event_varint_size(event_zigzag(f->v.integer));
	case EVENT_NUMBER: return n + 1 + 8;
	case EVENT_BOOLEAN: return n + 2;
	case EVENT_SLICE: return n + event_len_size(event_slice_size(f->v.slice.offset,
	    f->v.slice.length));
	case EVENT_JSON: return n + event_len_size(f->v.json.len);
	}
	*bad = true;
	return 0;
}

static size_t
event_size(const struct event *ev, bool *bad)
{
	size_t n = (ev->ts ? 1 + 8 : 0) + event_bytes_size(&ev->host) +
	    event_bytes_size(&ev->stream) + event_bytes_size(&ev->source) +
	    event_bytes_size(&ev->message);

	for (size_t i = 0; i < ev->nfields; i++)
		n += event_len_size(event_field_size(&ev->fields[i], bad));
	return n;
}

/* --------------------------------------------------------------- encode */

static bool
event_put_bytes(pb_ostream_t *os, uint32_t tag, const struct pbslice *b, bool always)
{
	if (b->len == 0 && !always)
		return true;
	return pb_encode_tag(os, PB_WT_STRING, tag) &&
	    pb_encode_string(os, b->ptr, b->len);
}

static bool
event_put_field(pb_ostream_t *os, const struct event_field *f, size_t size)
{
	if (!pb_encode_tag(os, PB_WT_STRING, EVENT_FIELDS) || !pb_encode_varint(os, size) ||
	    !event_put_bytes(os, FIELD_KEY, &f->key, false))
		return false;
	switch (f->type) {
	case EVENT_NULL:
		return true;
	case EVENT_TEXT:
		return event_put_bytes(os, FIELD_TEXT, &f->v.text, true);
	case EVENT_INTEGER:
		return pb_encode_tag(os, PB_WT_VARINT, FIELD_INTEGER) &&
		    pb_encode_svarint(os, f->v.integer);
	case EVENT_NUMBER:
		return pb_encode_tag(os, PB_WT_64BIT, FIELD_NUMBER) &&
		    pb_encode_fixed64(os, &f->v.number);
	case EVENT_BOOLEAN:
		return pb_encode_tag(os, PB_WT_VARINT, FIELD_BOOLEAN) &&
		    pb_encode_varint(os, f->v.boolean);
	case EVENT_SLICE:
		return pb_encode_tag(os, PB_WT_STRING, FIELD_SLICE) &&
		    pb_encode_varint(os, event_slice_size(f->v.slice.offset, f->v.slice.length)) &&
		    (!f->v.slice.offset || (pb_encode_tag(os, PB_WT_VARINT, SLICE_OFFSET) &&
		    pb_encode_varint(os, f->v.slice.offset))) &&
		    (!f->v.slice.length || (pb_encode_tag(os, PB_WT_VARINT, SLICE_LENGTH) &&
		    pb_encode_varint(os, f->v.slice.length)));
	case EVENT_JSON:
		return event_put_bytes(os, FIELD_JSON, &f->v.json, true);
	}
	return false;
}

int
event_encode(const struct event *ev, struct buf *out)
{
	bool bad = false;
	size_t size = event_size(ev, &bad), total;
	pb_ostream_t os;
	int r;

	if (bad)
		return -EINVAL;
	if (size > UINT32_MAX)
		return -EMSGSIZE;
	total = 1 + event_varint_size(size) + size;
	if ((r = buf_reserve(out, total)) != 0)
		return r;
	os = pb_ostream_from_buffer(out->data + out->len, total);
	if (!pb_encode_tag(&os, PB_WT_STRING, EVENTLIST_EVENTS) || !pb_encode_varint(&os, size))
		return -EINVAL;
	if (ev->ts && (!pb_encode_tag(&os, PB_WT_64BIT, EVENT_TS) ||
	    !pb_encode_fixed64(&os, &ev->ts)))
		return -EINVAL;
	if (!event_put_bytes(&os, EVENT_HOST, &ev->host, false) ||
	    !event_put_bytes(&os, EVENT_STREAM, &ev->stream, false) ||
	    !event_put_bytes(&os, EVENT_SOURCE, &ev->source, false) ||
	    !event_put_bytes(&os, EVENT_MESSAGE, &ev->message, false))
		return -EINVAL;
	for (size_t i = 0; i < ev->nfields; i++)
		if (!event_put_field(&os, &ev->fields[i],
		    event_field_size(&ev->fields[i], &bad)))
			return -EINVAL;
	/* The sizes above and the writes must agree to the byte. */
	if (os.bytes_written != total)
		return -EINVAL;
	out->len += total;
	return 0;
}

/* --------------------------------------------------------------- decode */

/* Takes a length-delimited value as a pointer into the buffer stream. */
static bool
event_get_bytes(pb_istream_t *is, struct pbslice *out)
{
	uint32_t len;

	if (!pb_decode_varint32(is, &len))
		return false;
	if (len > is->bytes_left)
		PB_RETURN_ERROR(is, "length beyond the end of its message");
	out->ptr = is->state;
	out->len = len;
	return pb_read(is, NULL, len);
}

/* Enters a length-delimited submessage: *sub reads it, *is skips past it. */
static bool
event_enter(pb_istream_t *is, pb_istream_t *sub)
{
	struct pbslice b;

	if (!event_get_bytes(is, &b))
		return false;
	*sub = pb_istream_from_buffer(b.ptr, b.len);
	return true;
}

static bool
event_expect(pb_istream_t *is, pb_wire_type_t got, pb_wire_type_t want)
{
	if (got != want)
		PB_RETURN_ERROR(is, "wrong wire type");
	return true;
}

static bool
event_get_slice(pb_istream_t *is, struct event_field *f)
{
	pb_istream_t sub;
	pb_wire_type_t wt;
	uint32_t tag, v;
	bool eof;

	if (!event_enter(is, &sub))
		return false;
	f->v.slice.offset = 0;
	f->v.slice.length = 0;
	while (pb_decode_tag(&sub, &wt, &tag, &eof)) {
		if (tag == SLICE_OFFSET || tag == SLICE_LENGTH) {
			if (!event_expect(&sub, wt, PB_WT_VARINT) || !pb_decode_varint32(&sub, &v))
				return false;
			*(tag == SLICE_OFFSET ? &f->v.slice.offset : &f->v.slice.length) = v;
		} else if (!pb_skip_field(&sub, wt)) {
			return false;
		}
	}
	if (!eof)
		PB_RETURN_ERROR(is, PB_GET_ERROR(&sub));
	return true;
}

static bool
event_get_field(pb_istream_t *is, struct event_field *f)
{
	pb_istream_t sub;
	pb_wire_type_t wt;
	uint32_t tag;
	uint64_t u;
	bool eof, ok;

	if (!event_enter(is, &sub))
		return false;
	memset(f, 0, sizeof(*f));
	while (pb_decode_tag(&sub, &wt, &tag, &eof)) {
		switch (tag) {
		case FIELD_KEY:
			ok = event_expect(&sub, wt, PB_WT_STRING) && event_get_bytes(&sub, &f->key);
			break;
		case FIELD_TEXT:
			f->type = EVENT_TEXT;
			ok = event_expect(&sub, wt, PB_WT_STRING) && event_get_bytes(&sub, &f->v.text);
			break;
		case FIELD_INTEGER:
			f->type = EVENT_INTEGER;
			ok = event_expect(&sub, wt, PB_WT_VARINT) &&
			    pb_decode_svarint(&sub, &f->v.integer);
			break;
		case FIELD_NUMBER:
			f->type = EVENT_NUMBER;
			ok = event_expect(&sub, wt, PB_WT_64BIT) &&
			    pb_decode_fixed64(&sub, &f->v.number);
			break;
		case FIELD_BOOLEAN:
			f->type = EVENT_BOOLEAN;
			ok = event_expect(&sub, wt, PB_WT_VARINT) && pb_decode_varint(&sub, &u);
			f->v.boolean = u != 0;
			break;
		case FIELD_SLICE:
			f->type = EVENT_SLICE;
			ok = event_expect(&sub, wt, PB_WT_STRING) && event_get_slice(&sub, f);
			break;
		case FIELD_JSON:
			f->type = EVENT_JSON;
			ok = event_expect(&sub, wt, PB_WT_STRING) && event_get_bytes(&sub, &f->v.json);
			break;
		default:
			/* Unknown to this version: skipped, so newer agents still work. */
			ok = pb_skip_field(&sub, wt);
			break;
		}
		if (!ok)
			PB_RETURN_ERROR(is, PB_GET_ERROR(&sub));
	}
	if (!eof)
		PB_RETURN_ERROR(is, PB_GET_ERROR(&sub));
	return true;
}

void
event_reader_init(struct event_reader *r, const uint8_t *data, size_t len,
    struct event_field *fields, size_t max_fields)
{
	r->p = data;
	r->end = data + len;
	r->fields = fields;
	r->max_fields = max_fields;
	r->why = NULL;
}

/* Decodes one Event message's contents from is into ev. */
static int
event_decode(struct event_reader *r, pb_istream_t *is, struct event *ev)
{
	struct pbslice *bytes[] = {
		[EVENT_HOST] = &ev->host, [EVENT_STREAM] = &ev->stream,
		[EVENT_SOURCE] = &ev->source, [EVENT_MESSAGE] = &ev->message,
	};
	pb_wire_type_t wt;
	uint32_t tag;
	bool eof, ok;

	memset(ev, 0, sizeof(*ev));
	ev->fields = r->fields;
	while (pb_decode_tag(is, &wt, &tag, &eof)) {
		switch (tag) {
		case EVENT_TS:
			ok = event_expect(is, wt, PB_WT_64BIT) && pb_decode_fixed64(is, &ev->ts);
			break;
		case EVENT_HOST:
		case EVENT_STREAM:
		case EVENT_SOURCE:
		case EVENT_MESSAGE:
			ok = event_expect(is, wt, PB_WT_STRING) && event_get_bytes(is, bytes[tag]);
			break;
		case EVENT_FIELDS:
			if (ev->nfields == r->max_fields) {
				r->why = "too many fields in one event";
				return -E2BIG;
			}
			ok = event_expect(is, wt, PB_WT_STRING) &&
			    event_get_field(is, &r->fields[ev->nfields++]);
			break;
		default:
			ok = pb_skip_field(is, wt);
			break;
		}
		if (!ok)
			goto malformed;
	}
	if (eof)
		return 1;
malformed:
	r->why = PB_GET_ERROR(is);
	return -EPROTO;
}

int
event_reader_next(struct event_reader *r, struct event *ev)
{
	pb_istream_t is, sub;
	pb_wire_type_t wt;
	uint32_t tag;
	bool eof;
	int rc;

	for (;;) {
		if (r->p == r->end)
			return 0;
		is = pb_istream_from_buffer(r->p, (size_t)(r->end - r->p));
		if (!pb_decode_tag(&is, &wt, &tag, &eof))
			goto malformed;
		if (tag != EVENTLIST_EVENTS) {
			/* Not an event: skip it, as protobuf readers do. */
			if (!pb_skip_field(&is, wt))
				goto malformed;
			r->p = is.state;
			continue;
		}
		if (!event_expect(&is, wt, PB_WT_STRING) || !event_enter(&is, &sub))
			goto malformed;
		r->p = is.state;
		if ((rc = event_decode(r, &sub, ev)) < 0)
			r->p = r->end;
		return rc;
	}
malformed:
	r->why = PB_GET_ERROR(&is);
	r->p = r->end;
	return -EPROTO;
}

int
event_field_string(const struct event *ev, const struct event_field *f,
    struct pbslice *out)
{
	if (f->type == EVENT_TEXT) {
		*out = f->v.text;
		return 0;
	}
	if (f->type != EVENT_SLICE)
		return -EINVAL;
	if (f->v.slice.offset > ev->message.len ||
	    f->v.slice.length > ev->message.len - f->v.slice.offset)
		return -EPROTO;
	/* An event without a message has a NULL one: no arithmetic on it. */
	out->ptr = ev->message.ptr != NULL ? ev->message.ptr + f->v.slice.offset : NULL;
	out->len = f->v.slice.length;
	return 0;
}
