/* SPDX-License-Identifier: Apache-2.0 */
/* jsonw: streaming JSON writer (see jsonw.h). */
#include "autoconfig.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
 * Writes the byte at p[*i] that needs more than a copy at o, which has
 * room for 6 bytes, notes it in m (when not NULL) as jsonw_string_at does,
 * and moves *i past what it took. Returns the bytes written.
 */
static inline __attribute__((always_inline)) size_t
jsonw_special_at(uint8_t *o, const uint8_t *p, size_t *i, size_t n, bool *replaced,
    struct jsonw_marks *m)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t c = p[*i];
	size_t len;

	if (c == '"' || c == '\\') {
		o[0] = '\\', o[1] = c;
		len = 2;
	} else if (c == '\n' || c == '\r' || c == '\t') {
		o[0] = '\\', o[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		len = 2;
	} else if (c < 0x20) {
		memcpy(o, "\\u00", 4);
		o[4] = (uint8_t)hex[c >> 4];
		o[5] = (uint8_t)hex[c & 15];
		len = 6;
	} else if ((len = jsonw_utf8_len(p + *i, n - *i)) != 0) {
		if (m != NULL)
			jsonw_mark(m, *i, len);
		for (size_t k = 0; k < len; k++)
			o[k] = p[*i + k];
		*i += len;
		return len;
	} else {
		memcpy(o, "\xef\xbf\xbd", 3);   /* U+FFFD */
		len = 3;
		*replaced = true;
	}
	if (m != NULL)
		jsonw_mark(m, *i, 1);
	(*i)++;
	return len;
}

/*
 * jsonw_string_at into a buffer with room for its worst case (6 bytes out
 * per byte in, the quotes, and 8 bytes for the last store): no bound
 * checked per piece, and each 16 (SSE2) or 8 bytes stored as they are
 * loaded, the store past a special byte then written over (the message's
 * scan was the relay's hottest loop). The last bytes short of 8 are
 * scanned as the 8 that end the string, those before them shifted out.
 */
static inline __attribute__((always_inline)) void
jsonw_string_roomy(struct buf *b, const uint8_t *p, size_t n, bool *replaced,
    struct jsonw_marks *m)
{
	uint8_t *o = b->data + b->len;
	size_t i = 0;

	*o++ = '"';
	while (i < n) {
		uint64_t v, special;
		size_t k;

#ifdef __SSE2__
		if (i + 16 <= n) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
			/* Signed: bytes from 0x80 are below 0x20 too, as they must be. */
			__m128i sp = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
			    _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
			    _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
			unsigned mask = (unsigned)_mm_movemask_epi8(sp);

			_mm_storeu_si128((__m128i *)(void *)o, x);
			k = mask == 0 ? 16 : (size_t)__builtin_ctz(mask);
			o += k;
			i += k;
			if (mask == 0)
				continue;
			o += jsonw_special_at(o, p, &i, n, replaced, m);
			continue;
		}
#endif
		if (i + 8 <= n) {
			memcpy(&v, p + i, 8);
			memcpy(o, &v, 8);
			k = 8;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			v = __builtin_bswap64(v);
#endif
			special = jsonw_special8(v);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		} else if (n >= 8) {
			/* The string's last 8 bytes, those already written shifted out. */
			k = n - i;
			memcpy(&v, p + n - 8, 8);
			v >>= 8 * (8 - k);
			memcpy(o, &v, 8);
			special = jsonw_special8(v) & ((UINT64_C(1) << (8 * k)) - 1);
#endif
		} else if (jsonw_plain[p[i]]) {
			*o++ = p[i++];
			continue;
		} else {
			o += jsonw_special_at(o, p, &i, n, replaced, m);
			continue;
		}
		if (special != 0)
			k = (size_t)__builtin_ctzll(special) / 8;
		o += k;
		i += k;
		if (special != 0)
			o += jsonw_special_at(o, p, &i, n, replaced, m);
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
}

/* Strings up to this long reserve their worst case to take jsonw_string_roomy (6 KiB). */
#define JSONW_ROOMY_MAX 1024

/* Whether b has room for p's worst case, made when it is short; false: write it piecewise. */
static inline __attribute__((always_inline)) bool
jsonw_roomy(struct buf *b, size_t n)
{
	size_t room = b->cap - b->len;

	if (room >= 10 && n <= (room - 10) / 6)
		return true;
	return n <= JSONW_ROOMY_MAX && buf_reserve(b, 6 * n + 10) == 0;
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
	size_t i = 0, run;
	int r;

	if (jsonw_roomy(b, n)) {
		jsonw_string_roomy(b, p, n, replaced, m);
		return 0;
	}
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
		uint8_t esc[8];
		size_t len;

		/* In place where its 6 bytes at most fit; through esc where only what it writes may. */
		if (b->cap - b->len >= 6) {
			b->len += jsonw_special_at(b->data + b->len, p, &i, n, replaced, m);
			continue;
		}
		len = jsonw_special_at(esc, p, &i, n, replaced, m);
		if ((r = buf_append(b, esc, len)) != 0)
			return r;
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

/* "00" .. "99": two digits per division (a digit each was most of an integer's cost). */
static const char jsonw_pairs[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* Writes v in decimal ending at end; returns where it starts (snprintf cost more than the record's other work). */
static inline char *
jsonw_digits(char *end, uint64_t v)
{
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);

		v /= 100;
		end -= 2;
		memcpy(end, jsonw_pairs + 2 * r, 2);
	}
	if (v >= 10) {
		end -= 2;
		memcpy(end, jsonw_pairs + 2 * v, 2);
	} else {
		*--end = (char)('0' + v);
	}
	return end;
}

/*
 * Appends the digits of v, a '-' first if minus. The longest integer is
 * 20 bytes: with 24 bytes free they are copied in 24 fixed bytes (t has
 * 24 more after the digits' end), not through memcpy's call.
 */
static inline int
jsonw_decimal(struct buf *b, uint64_t v, bool minus)
{
	char t[48], *end = t + 24, *p = jsonw_digits(end, v);

	if (minus)
		*--p = '-';
	if (b->cap - b->len < 24)
		return buf_append(b, p, (size_t)(end - p));
	memcpy(b->data + b->len, p, 24);
	b->len += (size_t)(end - p);
	return 0;
}

int
jsonw_int(struct buf *b, int64_t v)
{
	return jsonw_decimal(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

int
jsonw_uint(struct buf *b, uint64_t v)
{
	return jsonw_decimal(b, v, false);
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
	 * The last second written on this thread, as text, and its first ns: a
	 * batch's events mostly share their second, and the date costs more
	 * than the rest. Second 0's text to begin with, so that it is never
	 * stale. Both bounds: the last second of a uint64 is cut short, and
	 * ns - base would wrap from it to second 0.
	 */
	static __thread uint64_t last_base;
	static __thread char last[21] = "\"1970-01-01T00:00:00.";
	uint64_t us;
	int64_t secs, z, sod, era, doe, yoe, y, doy, mp, d, m;
	char t[29];

	if (ns < last_base || ns - last_base >= 1000000000u) {
		secs = (int64_t)(ns / 1000000000u);
		z = secs / 86400;
		sod = secs % 86400;
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
		/* "YYYY-MM-DDTHH:MM:SS.": the year of a uint64 of ns is 1970..2554. */
		memcpy(last, "\"0000-00-00T00:00:00.", 21);
		jsonw_fixed(last + 1, (uint64_t)y, 4);
		jsonw_fixed(last + 6, (uint64_t)m, 2);
		jsonw_fixed(last + 9, (uint64_t)d, 2);
		jsonw_fixed(last + 12, (uint64_t)(sod / 3600), 2);
		jsonw_fixed(last + 15, (uint64_t)(sod / 60 % 60), 2);
		jsonw_fixed(last + 18, (uint64_t)(sod % 60), 2);
		last_base = (uint64_t)secs * 1000000000u;
	}
	/* The microseconds as three pairs of digits, then "Z\"". */
	us = (ns - last_base) / 1000u;
	memcpy(t, last, 21);
	memcpy(t + 21, jsonw_pairs + 2 * (us / 10000), 2);
	memcpy(t + 23, jsonw_pairs + 2 * (us / 100 % 100), 2);
	memcpy(t + 25, jsonw_pairs + 2 * (us % 100), 2);
	memcpy(t + 27, "Z\"", 2);
	return buf_append(b, t, 29);
}
