/* SPDX-License-Identifier: Apache-2.0 */
/* jsonw: streaming JSON writer (see jsonw.h). */
#include "autoconfig.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one. */
static size_t
jsonw_utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Bytes copied as they are: printable ASCII but '"' and '\\'. */
static const uint8_t jsonw_plain[256] = {
	[0x20 ... 0x21] = 1,    /* '"' is 0x22 */
	[0x23 ... 0x5b] = 1,    /* '\\' is 0x5c */
	[0x5d ... 0x7f] = 1,
};

/*
 * The bytes of v (8 bytes of a string, in memory order) that need more
 * than a copy: below 0x20, '"', '\\' or not ASCII (jsonw_plain's zeros),
 * each as its high bit. Exact as a yes/no, and its lowest bit is exact
 * (a borrow only carries to the bytes above a special one), so that the
 * first special byte is where that bit says, with no byte loop.
 */
static inline uint64_t
jsonw_special8(uint64_t v)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
	uint64_t q = v ^ (ones * '"'), s = v ^ (ones * '\\');

	return (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((s - ones) & ~s)) & highs;
}

/* Notes that p[at, at + len) was not copied as it is: merged into the last range when they touch. */
static inline void
jsonw_mark(struct jsonw_marks *m, size_t at, size_t len)
{
	if (m->n > JSONW_MARKS_MAX)
		return;
	if (m->n > 0 && m->range[m->n - 1].end == at) {
		m->range[m->n - 1].end = (uint32_t)(at + len);
		return;
	}
	if (m->n == JSONW_MARKS_MAX) {
		m->n = JSONW_MARKS_MAX + 1;     /* too many: unknown from now on */
		return;
	}
	m->range[m->n].start = (uint32_t)at;
	m->range[m->n].end = (uint32_t)(at + len);
	m->n++;
}

/*
 * jsonw_string, setting *replaced when a byte became U+FFFD and, when m is
 * not NULL, noting in m where bytes were not copied as they are. A copy in
 * each caller (the compiler would share one): jsonw_string's store then
 * goes away and its loop stays what it was, the relay's hottest.
 */
static inline __attribute__((always_inline)) int
jsonw_string_at(struct buf *b, const uint8_t *p, size_t n, bool *replaced,
    struct jsonw_marks *m)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run;
	int r;

	/* Worst case is 6 bytes out per byte in; reserve the common case, grow when needed. */
	if ((r = buf_reserve(b, n + 2)) != 0)
		return r;
	b->data[b->len++] = '"';
	while (i < n) {
		/* Copy runs of plain printable ASCII at once, found 8 bytes at a time. */
		for (run = i; run + 8 <= n; run += 8) {
			uint64_t v, special;

			memcpy(&v, p + run, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			v = __builtin_bswap64(v);
#endif
			if ((special = jsonw_special8(v)) != 0) {
				run += (size_t)__builtin_ctzll(special) / 8;
				goto found;
			}
		}
		for (; run < n && jsonw_plain[p[run]]; run++)
			;
found:
		if (run > i) {
			if ((r = jsonw_append(b, p + i, run - i)) != 0)
				return r;
			i = run;
			/* p[i] needs more than a copy: on to it, without scanning it again. */
			if (i == n)
				break;
		}
		uint8_t c = p[i];
		char esc[8] = { 0 };
		size_t len;

		if (c == '"' || c == '\\') {
			esc[0] = '\\', esc[1] = (char)c;
			len = 2;
		} else if (c == '\n') {
			memcpy(esc, "\\n", len = 2);
		} else if (c == '\r') {
			memcpy(esc, "\\r", len = 2);
		} else if (c == '\t') {
			memcpy(esc, "\\t", len = 2);
		} else if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			len = 6;
		} else if ((len = jsonw_utf8_len(p + i, n - i)) != 0) {
			if (m != NULL)
				jsonw_mark(m, i, len);
			if ((r = buf_append(b, p + i, len)) != 0)
				return r;
			i += len;
			continue;
		} else {
			memcpy(esc, "\xef\xbf\xbd", len = 3);   /* U+FFFD */
			*replaced = true;
		}
		if (m != NULL)
			jsonw_mark(m, i, 1);
		/* All 8 bytes in one store where they fit (those past len are not counted). */
		if (b->cap - b->len >= sizeof(esc)) {
			memcpy(b->data + b->len, esc, sizeof(esc));
			b->len += len;
		} else if ((r = buf_append(b, esc, len)) != 0) {
			return r;
		}
		i++;
	}
	return buf_append(b, "\"", 1);
}

int
jsonw_string(struct buf *b, const uint8_t *p, size_t n)
{
	bool replaced;

	return jsonw_string_at(b, p, n, &replaced, NULL);
}

int
jsonw_string_replaced(struct buf *b, const uint8_t *p, size_t n, bool *replaced)
{
	*replaced = false;
	return jsonw_string_at(b, p, n, replaced, NULL);
}

int
jsonw_string_marked(struct buf *b, const uint8_t *p, size_t n, bool *replaced,
    struct jsonw_marks *m)
{
	*replaced = false;
	/* Offsets are 32 bits: a longer string is never marked (jsonw_part scans). */
	m->n = n <= UINT32_MAX ? 0 : JSONW_MARKS_MAX + 1;
	return jsonw_string_at(b, p, n, replaced, m);
}

int
jsonw_part(struct buf *b, const uint8_t *p, size_t off, size_t n, const struct jsonw_marks *m)
{
	size_t lo = 0, hi, end = off + n;
	int r;

	if (n == 0)
		return buf_append(b, "\"\"", 2);
	if (m->n > JSONW_MARKS_MAX)
		return jsonw_string(b, p + off, n);
	/* Ranges are in order and apart: the first that ends after off decides. */
	for (hi = m->n; lo < hi;) {
		size_t mid = (lo + hi) / 2;

		if (m->range[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < m->n && m->range[lo].start < end)
		return jsonw_string(b, p + off, n);
	if (n + 2 > b->cap - b->len && (r = buf_reserve(b, n + 2)) != 0)
		return r;
	b->data[b->len] = '"';
	jsonw_copy(b->data + b->len + 1, p + off, n);
	b->data[b->len + 1 + n] = '"';
	b->len += n + 2;
	return 0;
}

bool
jsonw_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0, len;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((len = jsonw_utf8_len(p + i, n - i)) == 0)
			return false;
		i += len;
	}
	return true;
}

size_t
jsonw_cut(const uint8_t *p, size_t n, size_t budget, bool escaped, size_t *cost)
{
	size_t i = 0, used = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t len = 1, out = 1;

		/* The same cases as jsonw_string, in the same order. */
		if (c < 0x80) {
			if (escaped && !jsonw_plain[c])
				out = c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 2 : 6;
		} else if ((len = jsonw_utf8_len(p + i, n - i)) != 0) {
			out = len;
		} else {
			len = 1;
			out = escaped ? 3 : 1;      /* U+FFFD */
		}
		if (used + out > budget)
			break;
		used += out;
		i += len;
	}
	if (cost != NULL)
		*cost = used;
	return i;
}

int
jsonw_cstring(struct buf *b, const char *s)
{
	return jsonw_string(b, (const uint8_t *)s, strlen(s));
}

/* Writes v in decimal ending at end; returns where it starts (snprintf cost more than the record's other work). */
static char *
jsonw_digits(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

int
jsonw_int(struct buf *b, int64_t v)
{
	char t[24], *end = t + sizeof(t), *p;

	p = jsonw_digits(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--p = '-';
	return buf_append(b, p, (size_t)(end - p));
}

int
jsonw_uint(struct buf *b, uint64_t v)
{
	char t[24], *end = t + sizeof(t), *p = jsonw_digits(end, v);

	return buf_append(b, p, (size_t)(end - p));
}

int
jsonw_double(struct buf *b, double v)
{
	char t[32];

	if (!isfinite(v))
		return jsonw_raw(b, "null");
	/* The shortest of %.15g..%.17g that reads back as v. */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(t, sizeof(t), "%.*g", prec, v);
		if (strtod(t, NULL) == v)
			break;
	}
	return jsonw_raw(b, t);
}

/* Writes v as exactly width digits at p, zero-padded. */
static void
jsonw_fixed(char *p, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

int
jsonw_time(struct buf *b, uint64_t ns)
{
	/*
	 * The last second written on this thread, as text: a batch's events
	 * mostly share their second, and the date costs more than the rest.
	 */
	static __thread int64_t last_secs = -1;
	static __thread char last[29];
	int64_t secs = (int64_t)(ns / 1000000000u), z = secs / 86400, sod = secs % 86400;
	int64_t era, doe, yoe, y, doy, mp, d, m;
	char t[40];

	if (secs == last_secs) {
		memcpy(t, last, 21);
		jsonw_fixed(t + 21, ns % 1000000000u / 1000u, 6);
		memcpy(t + 27, "Z\"", 2);
		return buf_append(b, t, 29);
	}
	/* H. Hinnant's civil_from_days. */
	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ": the year of a uint64 of ns is 1970..2554. */
	memcpy(t, "\"0000-00-00T00:00:00.000000Z\"", 29);
	jsonw_fixed(t + 1, (uint64_t)y, 4);
	jsonw_fixed(t + 6, (uint64_t)m, 2);
	jsonw_fixed(t + 9, (uint64_t)d, 2);
	jsonw_fixed(t + 12, (uint64_t)(sod / 3600), 2);
	jsonw_fixed(t + 15, (uint64_t)(sod / 60 % 60), 2);
	jsonw_fixed(t + 18, (uint64_t)(sod % 60), 2);
	memcpy(last, t, 21);
	last_secs = secs;
	jsonw_fixed(t + 21, ns % 1000000000u / 1000u, 6);
	return buf_append(b, t, 29);
}

