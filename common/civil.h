/*
 * civil: calendar arithmetic for timestamps written in logs, without the C
 * library's time zone code (which reads TZ and files, and is slow).
 * Proleptic Gregorian calendar; days are counted from 1970-01-01.
 */
#ifndef LOGFERRY_CIVIL_H
#define LOGFERRY_CIVIL_H

#include <stdbool.h>
#include <stdint.h>

bool civil_is_leap(int64_t year);

/* Days in month m (1..12) of year. */
int civil_days_in_month(int64_t year, int m);

/* Days from 1970-01-01 to year-m-d (H. Hinnant's days_from_civil). */
int64_t civil_days(int64_t year, int m, int d);

/* The year of the day z days after 1970-01-01. */
int64_t civil_year_of_day(int64_t z);

/* 1..12 for an English month abbreviation ("Jan".."Dec", exact case) at p[0..2], else 0. */
int civil_month(const uint8_t *p);

#endif
