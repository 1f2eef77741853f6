#include "autoconfig.h"

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
