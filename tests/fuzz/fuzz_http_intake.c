/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the HTTP intake body (common/intake.h), the part of the http source
 * that reads what clients send: splitting into objects, parsing each,
 * gzip decoding and the size limits. The first input byte picks the mode:
 *
 *   bit 0  application/x-ndjson (else application/json)
 *   bit 1  the rest is fed as a gzip body as it is
 *   bit 2  the rest is gzip-compressed here and fed compressed: the events
 *          must be the same as when it is fed plain
 *   bit 3  a small max_body (300 bytes), so that the limits are hit
 *   bits 4-7  the size of the pieces the body arrives in
 *
 * Whatever the bytes: every call returns one of its documented values; an
 * error comes with a message ("line N: ..." for a bad object); feeding in
 * pieces gives the result of feeding at once; a small check budget the
 * result of a large one; every event encodes to at most the size intake
 * estimated for it, reads back, and its message is an object's text (no
 * blank around it, no newline in an ndjson line) inside the body.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/intake.h"
#include "proto/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BODY (1 << 20)
#define FUZZ_SMALL_BODY 300

struct fuzz_result {
	int body, check;          /* the first error of intake_feed and intake_end; of intake_check */
	size_t events, bytes;
	uint64_t hash;           /* of every event's encoding, in order */
};

static uint64_t
fuzz_hash(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}

static bool
fuzz_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* With a sender, ev has exactly one sender field, the sender's name: no member passes for it. */
static void
fuzz_check_sender(const struct event *ev, const char *sender)
{
	size_t n = 0, klen = strlen(INTAKE_SENDER_FIELD);

	if (sender == NULL)
		return;
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct event_field *f = &ev->fields[i];

		if (f->key.len != klen || memcmp(f->key.ptr, INTAKE_SENDER_FIELD, klen) != 0)
			continue;
		if (f->type != EVENT_TEXT || f->v.text.len != strlen(sender) ||
		    memcmp(f->v.text.ptr, sender, f->v.text.len) != 0)
			abort();
		n++;
	}
	if (n != 1)
		abort();
}

/* One event: its encoding fits the estimate, reads back, and its message is sane. */
static void
fuzz_check_event(const struct event *ev, size_t bytes, unsigned flags, struct buf *enc,
    struct fuzz_result *res)
{
	struct event_field fields[80];
	struct event_reader rd;
	struct event got;
	size_t before = enc->len;

	if (ev->message.len == 0 || fuzz_space(ev->message.ptr[0]) ||
	    fuzz_space(ev->message.ptr[ev->message.len - 1]))
		abort();
	if ((flags & INTAKE_NDJSON) && memchr(ev->message.ptr, '\n', ev->message.len) != NULL)
		abort();
	if (ev->stream.len == 0 || ev->stream.len > INTAKE_STREAM_MAX ||
	    ev->host.len != 6 || memcmp(ev->host.ptr, "host-a", 6) != 0)
		abort();
	if (event_encode(ev, enc) != 0)
		abort();
	if (enc->len - before > bytes)
		abort();   /* spool_room would have been asked for too little */
	event_reader_init(&rd, enc->data + before, enc->len - before, fields, 80);
	if (event_reader_next(&rd, &got) != 1 || got.message.len != ev->message.len ||
	    got.nfields != ev->nfields || got.ts != ev->ts || event_reader_next(&rd, &got) != 0)
		abort();
	res->hash = fuzz_hash(res->hash, enc->data + before, enc->len - before);
	enc->len = before;
}

/* Feeds body in pieces of `piece` bytes, then checks with `budget`; records the result. */
static void
fuzz_run(const uint8_t *body, size_t len, unsigned flags, size_t max_body, size_t piece,
    size_t budget, const char *sender, struct fuzz_result *res)
{
	struct intake_options o = {
		.max_body = max_body, .host = "host-a", .stream = "fuzz", .source = "http://fuzz:1",
	};
	struct intake *in;
	struct buf enc;
	struct event ev;
	size_t bytes, total = 0, n = 0, off = 0;
	int r;

	memset(res, 0, sizeof(*res));
	res->hash = 0xcbf29ce484222325u;
	if (intake_new(&o, &in) != 0)
		abort();
	buf_init(&enc, 1 << 24);
	/* Twice: a reused intake must forget the first body entirely. */
	for (int round = 0; round < 2; round++) {
		memset(res, 0, sizeof(*res));
		res->hash = 0xcbf29ce484222325u;
		total = n = off = 0;
		intake_begin(in, flags);
		intake_set_sender(in, sender);
		do {
			size_t k = len - off < piece ? len - off : piece;

			r = intake_feed(in, body + off, k);
			off += k;
		} while (r == 0 && off < len);
		res->body = r;
		if (r != 0) {
			if (r != -EMSGSIZE && r != -EBADMSG)
				abort();
			if (r == -EBADMSG && strncmp(intake_error(in), "gzip: ", 6) != 0)
				abort();
			continue;
		}
		if ((res->body = r = intake_end(in)) != 0) {
			if (r != -EMSGSIZE && r != -EBADMSG)
				abort();
			continue;
		}
		while ((r = intake_check(in, budget)) == 1)
			;
		res->check = r;
		if (r != 0) {
			if (r != -EINVAL || strncmp(intake_error(in), "line ", 5) != 0)
				abort();
			continue;
		}
		res->events = intake_events(in);
		res->bytes = intake_bytes(in);
		while (intake_next(in, 1, &ev, &bytes) == 1) {
			fuzz_check_event(&ev, bytes, flags, &enc, res);
			fuzz_check_sender(&ev, sender);
			total += bytes;
			n++;
			/* Not consumed: the same event again. */
			if (intake_next(in, 1, &ev, &bytes) != 1)
				abort();
			intake_consume(in);
		}
		if (n != res->events || total != res->bytes)
			abort();
	}
	buf_free(&enc);
	intake_free(in);
}

static void
fuzz_same(const struct fuzz_result *a, const struct fuzz_result *b)
{
	/*
	 * A body refused on its way may be refused for another reason when it
	 * arrives in other pieces (gzip garbage before max_body is reached as
	 * sent, say): refused it must be, either way.
	 */
	if (a->body != 0 && b->body != 0)
		return;
	if (a->body != b->body || a->check != b->check ||
	    a->events != b->events || a->bytes != b->bytes || a->hash != b->hash)
		abort();
}

/* body gzip-compressed, in two members when it is long enough; malloc'ed. */
static uint8_t *
fuzz_gzip(const uint8_t *body, size_t len, size_t *out_len)
{
	size_t cap = 2 * (len + len / 100 + 64) + 64, half = len / 2, got = 0;
	uint8_t *out = malloc(cap);

	if (out == NULL)
		abort();
	for (int m = 0; m < 2; m++) {
		const uint8_t *p = m == 0 ? body : body + half;
		size_t n = m == 0 ? half : len - half;
		z_stream z = { 0 };

		if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			abort();
		z.next_in = (Bytef *)(uintptr_t)p;
		z.avail_in = (uInt)n;
		z.next_out = out + got;
		z.avail_out = (uInt)(cap - got);
		if (deflate(&z, Z_FINISH) != Z_STREAM_END)
			abort();
		got = cap - z.avail_out;
		deflateEnd(&z);
	}
	*out_len = got;
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_result whole, pieces, again;
	unsigned flags, mode;
	size_t max_body, piece;
	const char *sender;

	if (size == 0 || size > FUZZ_MAX_BODY)
		return 0;
	mode = data[0];
	data++;
	size--;
	flags = (mode & 1) ? INTAKE_NDJSON : 0;
	if (mode & 2)
		flags |= INTAKE_GZIP;
	max_body = (mode & 8) ? FUZZ_SMALL_BODY : FUZZ_MAX_BODY;
	piece = (size_t)1 << (mode >> 4);   /* 1 byte to 32 KiB */
	/* Bit 2 with gzip input has no other use: an authenticated sender's body. */
	sender = (mode & 6) == 6 ? "fuzz-sender" : NULL;

	fuzz_run(data, size, flags, max_body, size ? size : 1, SIZE_MAX, sender, &whole);
	fuzz_run(data, size, flags, max_body, piece, 1, sender, &pieces);
	fuzz_same(&whole, &pieces);

	if ((mode & 4) && !(mode & 2)) {
		size_t gzlen;
		uint8_t *gz = fuzz_gzip(data, size, &gzlen);

		/* Compressed, the body may pass max_body as sent only; else it reads the same. */
		fuzz_run(gz, gzlen, flags | INTAKE_GZIP, max_body, piece, SIZE_MAX, NULL, &again);
		if (gzlen <= max_body)
			fuzz_same(&whole, &again);
		free(gz);
	}
	return 0;
}
