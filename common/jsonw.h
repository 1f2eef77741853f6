/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jsonw: a small streaming JSON writer into a struct buf (no tree per
 * record, docs/architecture.md). Output is always valid UTF-8: bytes that are not
 * valid UTF-8 in a string become U+FFFD, control characters are escaped.
 * Every function returns 0 or -EMSGSIZE/-ENOMEM from the buffer; after an
 * error the buffer holds a truncated document and should be reset.
 */
#ifndef LOGFERRY_JSONW_H
#define LOGFERRY_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"

/* s as it is. Inline: the length of a literal is then known when compiling. */
static inline int
jsonw_raw(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}
/* d[0, n) = s[0, n), n up to 32 in overlapping loads and stores, not memcpy's call. */
static inline void
jsonw_copy(uint8_t *d, const uint8_t *s, size_t n)
{
	uint64_t h[2], t[2];
	uint32_t h4, t4;

	if (n >= 16 && n <= 32) {
		memcpy(h, s, 16);
		memcpy(t, s + n - 16, 16);
		memcpy(d, h, 16);
		memcpy(d + n - 16, t, 16);
	} else if (n >= 8 && n < 16) {
		memcpy(h, s, 8);
		memcpy(t, s + n - 8, 8);
		memcpy(d, h, 8);
		memcpy(d + n - 8, t, 8);
	} else if (n >= 4 && n < 8) {
		memcpy(&h4, s, 4);
		memcpy(&t4, s + n - 4, 4);
		memcpy(d, &h4, 4);
		memcpy(d + n - 4, &t4, 4);
	} else if (n < 4) {
		for (size_t i = 0; i < n; i++)
			d[i] = s[i];
	} else {
		memcpy(d, s, n);
	}
}

/*
 * buf_append for a JSON record's many small pieces (names, slices, runs
 * between escapes: some twenty a record, each a call into memcpy before).
 */
static inline int
jsonw_append(struct buf *b, const void *p, size_t n)
{
	if (n > b->cap - b->len)
		return buf_append_grow(b, p, n);
	jsonw_copy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int jsonw_string(struct buf *b, const uint8_t *p, size_t n);
int jsonw_cstring(struct buf *b, const char *s);
/*
 * jsonw_string, and sets *replaced to whether some bytes were not UTF-8
 * (and so became U+FFFD): found in the same pass over p, so that a caller
 * can keep the original bytes beside the text (event_json's message_b64)
 * without a second scan of valid strings.
 */
int jsonw_string_replaced(struct buf *b, const uint8_t *p, size_t n, bool *replaced);
/*
 * Where a string's bytes were not copied as they are (escaped, UTF-8
 * sequences, U+FFFD), as ranges of offsets in order: found by
 * jsonw_string_marked in its one pass, so that parts of the string (an
 * event's slices of its message) are then copied without a scan of their
 * own. More ranges than JSONW_MARKS_MAX: unknown (n > JSONW_MARKS_MAX).
 */
#define JSONW_MARKS_MAX 32
struct jsonw_marks {
	size_t n;
	struct { uint32_t start, end; } range[JSONW_MARKS_MAX];
};
/* jsonw_string_replaced, noting in m where the bytes of p[0, n) were not copied as they are. */
int jsonw_string_marked(struct buf *b, const uint8_t *p, size_t n, bool *replaced,
    struct jsonw_marks *m);
/*
 * jsonw_string(b, p + off, n), the same bytes out, for a part of the
 * string p that jsonw_string_marked marked m from: a copy when no range
 * of m falls in it, else written by jsonw_string.
 */
int jsonw_part(struct buf *b, const uint8_t *p, size_t off, size_t n, const struct jsonw_marks *m);
/*
 * jsonw_part, with *at (0 for a string's first part) kept between the
 * parts of one string and m: the first range that may fall in the next
 * part. Parts in rising order (an event's slices, as parsers write them)
 * then cost a step or two instead of a search, inline; any other order is
 * still right.
 */
static inline __attribute__((always_inline)) int
jsonw_part_at(struct buf *b, const uint8_t *p, size_t off, size_t n,
    const struct jsonw_marks *m, size_t *at)
{
	size_t i = *at;

	if (n == 0 || m->n > JSONW_MARKS_MAX || n + 2 > b->cap - b->len)
		return jsonw_part(b, p, off, n, m);
	/* Ranges are in order and apart: the first that ends after off decides. */
	if (i > m->n || (i > 0 && m->range[i - 1].end > off))
		i = 0;
	while (i < m->n && m->range[i].end <= off)
		i++;
	*at = i;
	if (i < m->n && m->range[i].start < off + n)
		return jsonw_string(b, p + off, n);
	b->data[b->len] = '"';
	jsonw_copy(b->data + b->len + 1, p + off, n);
	b->data[b->len + 1 + n] = '"';
	b->len += n + 2;
	return 0;
}
/* Whether p[0, n) is valid UTF-8, i.e. jsonw_string would replace nothing. */
bool jsonw_utf8_valid(const uint8_t *p, size_t n);
/*
 * The longest prefix of p[0, n) whose bytes cost at most budget: as
 * jsonw_string writes them, without the quotes (escaped), or as they are.
 * A valid UTF-8 sequence is never cut in two (each half would come out as
 * U+FFFD, and pieces would no longer join into the original). Returns the
 * prefix's length (0 when even the first character does not fit) and, if
 * cost is not NULL, sets *cost to its cost.
 */
size_t jsonw_cut(const uint8_t *p, size_t n, size_t budget, bool escaped, size_t *cost);
int jsonw_int(struct buf *b, int64_t v);
int jsonw_uint(struct buf *b, uint64_t v);
/* A finite double as the shortest text that reads back the same; NaN and infinities as null. */
int jsonw_double(struct buf *b, double v);
/* ns since the epoch as a quoted RFC 3339 UTC time with microseconds: "2026-11-22T10:00:00.123456Z". */
int jsonw_time(struct buf *b, uint64_t ns);

#endif
