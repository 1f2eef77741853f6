/* SPDX-License-Identifier: Apache-2.0 */
/* decompress: gzip and zstd files read by decompressed offset (see decompress.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "agent/decompress.h"

/* Compressed bytes read from the file at a time. */
#define DECOMPRESS_IN (64 * 1024)

struct decompress {
	int fd;
	enum decompress_format fmt;
	z_stream z;
	bool z_init;
	ZSTD_DCtx *zd;
	uint8_t in[DECOMPRESS_IN];
	size_t in_pos, in_len;       /* in[in_pos, in_len) is still to decompress */
	uint64_t in_off;             /* file offset just after in[in_len - 1] */
	bool in_eof;
	bool frame_open;             /* inside a gzip member or zstd frame */
	uint8_t *win;
	size_t cap;
	uint64_t w_off;              /* decompressed offset of win[0] */
	size_t w_len;
	bool ended;
	const char *damage;          /* NULL: none */
	uint64_t damage_off;
	uint64_t restarts;
};

enum decompress_format
decompress_detect(const uint8_t *head, size_t len)
{
	static const uint8_t gz[] = { 0x1f, 0x8b }, zst[] = { 0x28, 0xb5, 0x2f, 0xfd };

	if (len >= sizeof(gz) && memcmp(head, gz, sizeof(gz)) == 0)
		return DECOMPRESS_GZIP;
	if (len >= sizeof(zst) && memcmp(head, zst, sizeof(zst)) == 0)
		return DECOMPRESS_ZSTD;
	return DECOMPRESS_NONE;
}

const char *
decompress_format_name(enum decompress_format fmt)
{
	switch (fmt) {
	case DECOMPRESS_GZIP:
		return "gzip";
	case DECOMPRESS_ZSTD:
		return "zstd";
	default:
		return "plain";
	}
}

int
decompress_new(int fd, enum decompress_format fmt, size_t window, struct decompress **out)
{
	struct decompress *d;

	if (window == 0 || (fmt != DECOMPRESS_GZIP && fmt != DECOMPRESS_ZSTD))
		return -EINVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->win = malloc(window)) == NULL) {
		free(d);
		return -ENOMEM;
	}
	d->fd = fd;
	d->fmt = fmt;
	d->cap = window;
	if (fmt == DECOMPRESS_GZIP) {
		/* 15 + 16: gzip wrapper only; members are reset one by one (concatenated files). */
		if (inflateInit2(&d->z, 15 + 16) != Z_OK) {
			decompress_free(d);
			return -ENOMEM;
		}
		d->z_init = true;
	} else if ((d->zd = ZSTD_createDCtx()) == NULL) {
		decompress_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void
decompress_free(struct decompress *d)
{
	if (d == NULL)
		return;
	if (d->z_init)
		(void)inflateEnd(&d->z);
	ZSTD_freeDCtx(d->zd);
	free(d->win);
	free(d);
}

static void
decompress_restart(struct decompress *d)
{
	if (d->fmt == DECOMPRESS_GZIP)
		(void)inflateReset(&d->z);
	else
		(void)ZSTD_DCtx_reset(d->zd, ZSTD_reset_session_only);
	d->in_pos = d->in_len = 0;
	d->in_off = 0;
	d->in_eof = false;
	d->frame_open = false;
	d->w_off = 0;
	d->w_len = 0;
	d->ended = false;
	d->damage = NULL;
	d->restarts++;
}

static void
decompress_damaged(struct decompress *d, const char *why)
{
	d->damage = why;
	d->damage_off = d->in_off - (d->in_len - d->in_pos);
	d->ended = true;
}

/* Refills d->in when it is empty. Returns 0 or a negative errno. */
static int
decompress_fill(struct decompress *d)
{
	ssize_t n;

	if (d->in_pos < d->in_len || d->in_eof)
		return 0;
	do
		n = pread(d->fd, d->in, sizeof(d->in), (off_t)d->in_off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	d->in_pos = 0;
	d->in_len = (size_t)n;
	d->in_off += (uint64_t)n;
	d->in_eof = n == 0;
	return 0;
}

/* Decompresses into win[w_len, cap). Returns the bytes produced, or a negative errno. */
static ssize_t
decompress_some(struct decompress *d)
{
	size_t room = d->cap - d->w_len, made;
	int r;

	if ((r = decompress_fill(d)) < 0)
		return r;
	if (d->in_eof && d->in_pos == d->in_len) {
		if (d->frame_open)
			decompress_damaged(d, "the file ends inside a compressed stream (truncated)");
		d->ended = true;
		return 0;
	}
	if (d->fmt == DECOMPRESS_GZIP) {
		d->z.next_in = d->in + d->in_pos;
		d->z.avail_in = (uInt)(d->in_len - d->in_pos);
		d->z.next_out = d->win + d->w_len;
		d->z.avail_out = (uInt)room;
		r = inflate(&d->z, Z_NO_FLUSH);
		made = room - d->z.avail_out;
		d->in_pos = d->in_len - d->z.avail_in;
		if (r == Z_STREAM_END) {
			/* gzip(1) reads concatenated members as one file: so do we. */
			(void)inflateReset(&d->z);
			d->frame_open = false;
		} else if (r == Z_OK || r == Z_BUF_ERROR) {
			d->frame_open = true;
		} else {
			decompress_damaged(d, r == Z_MEM_ERROR ? "out of memory" :
			    d->z.msg != NULL ? d->z.msg : "corrupt gzip data");
		}
	} else {
		ZSTD_inBuffer in = { d->in, d->in_len, d->in_pos };
		ZSTD_outBuffer out = { d->win + d->w_len, room, 0 };
		size_t z = ZSTD_decompressStream(d->zd, &out, &in);

		made = out.pos;
		d->in_pos = in.pos;
		if (ZSTD_isError(z))
			decompress_damaged(d, ZSTD_getErrorName(z));
		else
			d->frame_open = z != 0;
	}
	d->w_len += made;
	return (ssize_t)made;
}

ssize_t
decompress_pread(struct decompress *d, uint8_t *p, size_t len, uint64_t off, uint64_t keep)
{
	uint64_t made = 0, drop_to;
	size_t drop, n;
	ssize_t r;

	if (len > d->cap)
		len = d->cap;
	if (keep > off)
		keep = off;
	if (off < d->w_off)
		decompress_restart(d);
	while (off + len > d->w_off + d->w_len && !d->ended) {
		if (off > d->w_off + d->w_len && made >= DECOMPRESS_STEP)
			return -EINPROGRESS;
		if (d->w_len == d->cap) {
			/* Keep what may be read again if that leaves room, or else what is read now. */
			drop_to = keep > d->w_off ? keep : off;
			drop = drop_to - d->w_off > d->w_len ? d->w_len : (size_t)(drop_to - d->w_off);
			memmove(d->win, d->win + drop, d->w_len - drop);
			d->w_off += drop;
			d->w_len -= drop;
		}
		if ((r = decompress_some(d)) < 0)
			return r;
		made += (uint64_t)r;
	}
	if (off >= d->w_off + d->w_len)
		return 0;
	n = (size_t)(d->w_off + d->w_len - off);
	n = n < len ? n : len;
	memcpy(p, d->win + (off - d->w_off), n);
	return (ssize_t)n;
}

bool
decompress_ended(const struct decompress *d, uint64_t *total)
{
	if (d->ended)
		*total = d->w_off + d->w_len;
	return d->ended;
}

bool
decompress_damage(const struct decompress *d, uint64_t *offset, const char **why)
{
	if (d->damage == NULL)
		return false;
	*offset = d->damage_off;
	*why = d->damage;
	return true;
}

uint64_t
decompress_restarts(const struct decompress *d)
{
	return d->restarts;
}
