/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "proto/frame.h"

/* A partial-frame buffer larger than this is released after its frame. */
#define FRAME_KEEP_BYTES (64 * 1024)

struct frame_decoder {
	size_t max_frame;
	struct buf partial;    /* header and body of an incomplete frame */
	size_t need;           /* total bytes of the frame in partial, once known */
	int error;             /* sticky: 0 or the error that killed the decoder */
	char why[160];
};

static const char *const frame_type_names[] = {
	[FRAME_NONE] = "none",
	[FRAME_HELLO] = "Hello",
	[FRAME_WELCOME] = "Welcome",
	[FRAME_BATCH] = "Batch",
	[FRAME_ACK] = "Ack",
	[FRAME_PING] = "Ping",
	[FRAME_PONG] = "Pong",
	[FRAME_GOODBYE] = "Goodbye",
};

static int
frame_count(const logferry_Frame *pb, enum frame_type *last)
{
	const bool has[] = {
		[FRAME_HELLO] = pb->has_hello,
		[FRAME_WELCOME] = pb->has_welcome,
		[FRAME_BATCH] = pb->has_batch,
		[FRAME_ACK] = pb->has_ack,
		[FRAME_PING] = pb->has_ping,
		[FRAME_PONG] = pb->has_pong,
		[FRAME_GOODBYE] = pb->has_goodbye,
	};
	int n = 0;

	*last = FRAME_NONE;
	for (int t = FRAME_HELLO; t <= FRAME_GOODBYE; t++) {
		if (has[t]) {
			n++;
			*last = (enum frame_type)t;
		}
	}
	return n;
}

enum frame_type
frame_type(const struct frame *f)
{
	enum frame_type t;

	return frame_count(&f->pb, &t) == 1 ? t : FRAME_NONE;
}

const char *
frame_type_name(enum frame_type t)
{
	if ((unsigned)t >= sizeof(frame_type_names) / sizeof(frame_type_names[0]))
		return "unknown";
	return frame_type_names[t];
}

void
frame_init(struct frame *f, enum frame_type t)
{
	memset(f, 0, sizeof(*f));
	switch (t) {
	case FRAME_HELLO: f->pb.has_hello = true; break;
	case FRAME_WELCOME: f->pb.has_welcome = true; break;
	case FRAME_BATCH: f->pb.has_batch = true; break;
	case FRAME_ACK: f->pb.has_ack = true; break;
	case FRAME_PING: f->pb.has_ping = true; break;
	case FRAME_PONG: f->pb.has_pong = true; break;
	case FRAME_GOODBYE: f->pb.has_goodbye = true; break;
	case FRAME_NONE: break;
	}
}

static void
frame_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
frame_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int
frame_encode(const struct frame *f, struct buf *out)
{
	logferry_Frame pb = f->pb;
	pb_ostream_t os;
	size_t size;
	int r;

	if (frame_type(f) == FRAME_NONE)
		return -EINVAL;
	pbslice_bind_encode(&pb.batch.payload, &f->payload);
	if (!pb_get_encoded_size(&size, logferry_Frame_fields, &pb))
		return -EINVAL;
	if (size > FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	if ((r = buf_reserve(out, FRAME_HEADER_SIZE + size)) != 0)
		return r;
	frame_put_be32(out->data + out->len, (uint32_t)size);
	os = pb_ostream_from_buffer(out->data + out->len + FRAME_HEADER_SIZE, size);
	if (!pb_encode(&os, logferry_Frame_fields, &pb) || os.bytes_written != size)
		return -EINVAL;
	out->len += FRAME_HEADER_SIZE + size;
	return 0;
}

int
frame_decoder_new(size_t max_frame, struct frame_decoder **out)
{
	struct frame_decoder *d;

	*out = NULL;
	if (max_frame == 0 || max_frame > FRAME_MAX_LIMIT)
		return -EINVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	d->max_frame = max_frame;
	buf_init(&d->partial, FRAME_HEADER_SIZE + max_frame);
	*out = d;
	return 0;
}

void
frame_decoder_free(struct frame_decoder *d)
{
	if (d == NULL)
		return;
	buf_free(&d->partial);
	free(d);
}

size_t
frame_decoder_buffered(const struct frame_decoder *d)
{
	return d->partial.len;
}

const char *
frame_decoder_error(const struct frame_decoder *d)
{
	return d->why;
}

static int frame_fail(struct frame_decoder *d, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
frame_fail(struct frame_decoder *d, int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	d->error = error;
	return error;
}

/* Checks an announced length; returns the frame's total size or an error. */
static int
frame_check_length(struct frame_decoder *d, const uint8_t *hdr, size_t *total)
{
	uint32_t len = frame_get_be32(hdr);

	if (len > d->max_frame)
		return frame_fail(d, -EMSGSIZE,
		    "frame of %" PRIu32 " bytes exceeds the limit of %zu", len,
		    d->max_frame);
	if (len == 0)
		return frame_fail(d, -EPROTO, "empty frame");
	*total = FRAME_HEADER_SIZE + (size_t)len;
	return 0;
}

static int
frame_decode_one(struct frame_decoder *d, const uint8_t *body, size_t len,
    frame_cb cb, void *arg)
{
	struct frame f;
	pb_istream_t is;
	enum frame_type t;
	int n;

	memset(&f, 0, sizeof(f));
	pbslice_bind_decode(&f.pb.batch.payload, &f.payload);
	is = pb_istream_from_buffer(body, len);
	if (!pb_decode(&is, logferry_Frame_fields, &f.pb))
		return frame_fail(d, -EPROTO, "malformed frame of %zu bytes: %s",
		    len, PB_GET_ERROR(&is));
	if ((n = frame_count(&f.pb, &t)) != 1)
		return frame_fail(d, -EPROTO,
		    n == 0 ? "frame of %zu bytes holds no known message" :
		    "frame of %zu bytes holds several messages", len);
	if (t != FRAME_BATCH && f.payload.ptr != NULL)
		return frame_fail(d, -EPROTO, "payload outside a Batch");
	return cb(arg, &f);
}

/* Completes the buffered partial frame from data; returns bytes taken or an error. */
static int
frame_fill_partial(struct frame_decoder *d, const uint8_t *data, size_t len,
    size_t *taken)
{
	size_t want;
	int r;

	*taken = 0;
	if (d->partial.len < FRAME_HEADER_SIZE) {
		want = FRAME_HEADER_SIZE - d->partial.len;
		if (want > len)
			want = len;
		if ((r = buf_append(&d->partial, data, want)) != 0)
			return frame_fail(d, r, "out of memory");
		*taken = want;
		data += want;
		len -= want;
		if (d->partial.len < FRAME_HEADER_SIZE)
			return 0;
		if ((r = frame_check_length(d, d->partial.data, &d->need)) != 0)
			return r;
		/* Allocates only what the checked length announces. */
		if ((r = buf_reserve(&d->partial, d->need - FRAME_HEADER_SIZE)) != 0)
			return frame_fail(d, r, "out of memory for a frame of %zu bytes",
			    d->need);
	}
	want = d->need - d->partial.len;
	if (want > len)
		want = len;
	if ((r = buf_append(&d->partial, data, want)) != 0)
		return frame_fail(d, r, "out of memory");
	*taken += want;
	return 0;
}

static void
frame_release_partial(struct frame_decoder *d)
{
	d->need = 0;
	if (d->partial.cap > FRAME_KEEP_BYTES)
		buf_free(&d->partial);
	else
		buf_reset(&d->partial);
}

int
frame_decoder_feed(struct frame_decoder *d, const uint8_t *data, size_t len,
    frame_cb cb, void *arg)
{
	size_t taken, total;
	int r;

	if (d->error != 0)
		return d->error;
	while (len > 0) {
		if (d->partial.len > 0) {
			if ((r = frame_fill_partial(d, data, len, &taken)) != 0)
				return r;
			data += taken;
			len -= taken;
			if (d->need == 0 || d->partial.len < d->need)
				return 0;
			r = frame_decode_one(d, d->partial.data + FRAME_HEADER_SIZE,
			    d->need - FRAME_HEADER_SIZE, cb, arg);
			frame_release_partial(d);
			if (r != 0)
				return r;
			continue;
		}
		if (len < FRAME_HEADER_SIZE) {
			if ((r = buf_append(&d->partial, data, len)) != 0)
				return frame_fail(d, r, "out of memory");
			return 0;
		}
		if ((r = frame_check_length(d, data, &total)) != 0)
			return r;
		if (len < total) {
			/* The rest arrives later: keep this part. */
			d->need = total;
			if ((r = buf_append(&d->partial, data, len)) != 0)
				return frame_fail(d, r, "out of memory for a frame of %zu bytes",
				    total);
			return 0;
		}
		/* The whole frame is in the caller's chunk: decode it in place. */
		r = frame_decode_one(d, data + FRAME_HEADER_SIZE,
		    total - FRAME_HEADER_SIZE, cb, arg);
		if (r != 0)
			return r;
		data += total;
		len -= total;
	}
	return 0;
}
