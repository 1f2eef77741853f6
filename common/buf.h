/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buf: a growable byte buffer with a hard upper bound.
 *
 * Every buffer in logferry has an explicit cap (docs/architecture.md guarantee 3): growth
 * past `max` fails with -EMSGSIZE instead of allocating. Buffers are meant to
 * be reused on hot paths (buf_reset keeps the memory).
 */
#ifndef LOGFERRY_BUF_H
#define LOGFERRY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	uint8_t *data;
	size_t len;   /* bytes in use */
	size_t cap;   /* bytes allocated */
	size_t max;   /* cap never grows beyond this */
};

/* Initialises an empty buffer that may grow to `max` bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);

/*
 * Makes room for `n` more bytes after len. Returns 0, -EMSGSIZE if len + n
 * would exceed max, or -ENOMEM.
 */
int buf_reserve(struct buf *b, size_t n);

/* buf_append's path when the buffer must grow. */
int buf_append_grow(struct buf *b, const void *p, size_t n);

/*
 * Appends n bytes. Returns 0, -EMSGSIZE or -ENOMEM (the buffer is unchanged).
 * Inline: the JSON writer appends a few bytes at a time on the relay's hot
 * path, where a call per token showed in profiles.
 */
static inline int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n <= b->cap - b->len) {
		if (n != 0)
			memcpy(b->data + b->len, p, n);
		b->len += n;
		return 0;
	}
	return buf_append_grow(b, p, n);
}

/* Drops the first n bytes (n <= len), keeping the rest at the start. */
void buf_consume(struct buf *b, size_t n);

/* Empties the buffer but keeps its memory for reuse. */
void buf_reset(struct buf *b);

/* Frees the memory; the buffer is empty and reusable afterwards. NULL is fine. */
void buf_free(struct buf *b);

#endif
