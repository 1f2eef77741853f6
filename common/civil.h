/* SPDX-License-Identifier: Apache-2.0 */
/*
 * civil: calendar arithmetic for timestamps written in logs, without the C
 * library's time zone code (which reads TZ and files, and is slow).
 * Proleptic Gregorian calendar; days are counted from 1970-01-01.
 */
#ifndef LOGFERRY_CIVIL_H
#define LOGFERRY_CIVIL_H

#include <stdbool.h>
#include <stddef.h>
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

/*
 * secs seconds and ns nanoseconds (< 1e9) after the epoch as nanoseconds
 * since the epoch, or 0 ("no usable time") when that is before 1970 or past
 * what a uint64_t holds (2554-07-21).
 */
uint64_t civil_ns(int64_t secs, uint32_t ns);

/*
 * The fraction of a second written after a "." (the dot not included): 1 to
 * 9 decimal digits at p[0, len), as nanoseconds in *ns, with the number of
 * digits in *used. Reading stops at the first byte that is not a digit.
 * Returns 0, or -EINVAL for no digit or more than 9 (finer than a
 * nanosecond: a time written that way is not one we can keep exactly).
 */
int civil_frac(const uint8_t *p, size_t len, size_t *used, uint32_t *ns);

/*
 * An RFC 3339 date-time at the start of p[0, len):
 *
 *   YYYY-MM-DD(T|t| )hh:mm:ss[.f{1,9}](Z|z|+hh:mm|-hh:mm)
 *
 * (RFC 3339 5.6 lets a space stand for the "T"; callers that must be
 * strict, RFC 5424 for one, check byte 10 first). Second 60, a leap
 * second, counts as the next minute's first. On success returns 0, sets
 * *used to the bytes read (what follows is the caller's business) and *ns
 * to the time in nanoseconds since the epoch, UTC, which is 0 when the
 * time is valid but outside 1970..2554 (see civil_ns). Returns -EINVAL,
 * leaving *used and *ns alone, if p does not start with a valid date-time
 * (bad syntax, month 13, February 30, hour 24, offset +24:00, ...). Reads
 * nothing outside p[0, len).
 */
int civil_rfc3339(const uint8_t *p, size_t len, size_t *used, uint64_t *ns);

#endif
