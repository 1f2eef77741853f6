/* SPDX-License-Identifier: Apache-2.0 */
/* civil: calendar arithmetic and timestamp syntax (see civil.h). */
#include "autoconfig.h"

#include <errno.h>

#include "common/civil.h"

bool
civil_is_leap(int64_t year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int
civil_days_in_month(int64_t year, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && civil_is_leap(year) ? 29 : days[m - 1];
}

int64_t
civil_days(int64_t year, int m, int d)
{
	int64_t era, yoe, doy, doe;

	year -= m <= 2;
	era = (year >= 0 ? year : year - 399) / 400;
	yoe = year - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t
civil_year_of_day(int64_t z)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	return yoe + era * 400 + (mp >= 10);
}

int
civil_month(const uint8_t *p)
{
	/* One comparison of three bytes packed into an integer per month. */
	switch ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) {
	case 'J' << 16 | 'a' << 8 | 'n': return 1;
	case 'F' << 16 | 'e' << 8 | 'b': return 2;
	case 'M' << 16 | 'a' << 8 | 'r': return 3;
	case 'A' << 16 | 'p' << 8 | 'r': return 4;
	case 'M' << 16 | 'a' << 8 | 'y': return 5;
	case 'J' << 16 | 'u' << 8 | 'n': return 6;
	case 'J' << 16 | 'u' << 8 | 'l': return 7;
	case 'A' << 16 | 'u' << 8 | 'g': return 8;
	case 'S' << 16 | 'e' << 8 | 'p': return 9;
	case 'O' << 16 | 'c' << 8 | 't': return 10;
	case 'N' << 16 | 'o' << 8 | 'v': return 11;
	case 'D' << 16 | 'e' << 8 | 'c': return 12;
	default: return 0;
	}
}

uint64_t
civil_ns(int64_t secs, uint32_t ns)
{
	if (secs < 0 || (uint64_t)secs >= UINT64_MAX / 1000000000u)
		return 0;
	return (uint64_t)secs * 1000000000u + ns;
}

static bool
civil_isdigit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

/* Exactly n (<= 4) decimal digits at p, which holds them: their value, or -1. */
static int
civil_digits(const uint8_t *p, size_t n)
{
	int x = 0;

	for (size_t i = 0; i < n; i++) {
		if (!civil_isdigit(p[i]))
			return -1;
		x = x * 10 + (p[i] - '0');
	}
	return x;
}

int
civil_frac(const uint8_t *p, size_t len, size_t *used, uint32_t *ns)
{
	uint32_t x = 0;
	size_t n = 0;

	while (n < len && civil_isdigit(p[n])) {
		if (n == 9)
			return -EINVAL;
		x = x * 10 + (uint32_t)(p[n++] - '0');
	}
	if (n == 0)
		return -EINVAL;
	*used = n;
	for (; n < 9; n++)
		x *= 10;
	*ns = x;
	return 0;
}

/* "YYYY-MM-DDThh:mm:ss" */
#define CIVIL_3339_DATETIME 19

int
civil_rfc3339(const uint8_t *p, size_t len, size_t *used, uint64_t *ns)
{
	int y, mo, d, h, mi, s, oh = 0, om = 0, sign;
	uint32_t frac = 0;
	size_t i = CIVIL_3339_DATETIME, n;
	int64_t secs;

	if (len <= CIVIL_3339_DATETIME || p[4] != '-' || p[7] != '-' ||
	    (p[10] != 'T' && p[10] != 't' && p[10] != ' ') || p[13] != ':' || p[16] != ':')
		return -EINVAL;
	y = civil_digits(p, 4);
	mo = civil_digits(p + 5, 2);
	d = civil_digits(p + 8, 2);
	h = civil_digits(p + 11, 2);
	mi = civil_digits(p + 14, 2);
	s = civil_digits(p + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > civil_days_in_month(y, mo) ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60)
		return -EINVAL;
	if (p[i] == '.') {
		i++;
		if (civil_frac(p + i, len - i, &n, &frac) != 0)
			return -EINVAL;
		i += n;
	}
	if (i == len)
		return -EINVAL;
	switch (p[i++]) {
	case 'Z': case 'z': sign = 0; break;
	case '+': sign = 1; break;
	case '-': sign = -1; break;
	default: return -EINVAL;
	}
	if (sign != 0) {
		/* "hh:mm": RFC 3339 has no "hhmm" or "hh" offsets. */
		if (len - i < 5 || p[i + 2] != ':' || (oh = civil_digits(p + i, 2)) < 0 ||
		    (om = civil_digits(p + i + 3, 2)) < 0 || oh > 23 || om > 59)
			return -EINVAL;
		i += 5;
	}
	secs = civil_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
	    sign * (oh * 3600 + om * 60);
	*used = i;
	*ns = civil_ns(secs, frac);
	return 0;
}
