/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/tz: zone offsets and local-to-UTC conversion, DST included. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/tz.h"

#define H 3600
#define JAN_15_2026 INT64_C(1768478400)    /* 12:00Z */
#define JUL_1_2026 INT64_C(1782907200)     /* 12:00Z */
#define DST_START_2026 INT64_C(1772953200) /* 2026-03-08T07:00Z, 02:00 EST */
#define DST_END_2026 INT64_C(1793512800)   /* 2026-11-01T06:00Z, 02:00 EDT */
#define JAN_1_2040 INT64_C(2209032000)     /* 12:00Z, past a fat TZif's transitions */
#define JUL_1_2040 INT64_C(2224756800)

static const char *const ny_rule = "EST5EDT,M3.2.0,M11.1.0";

/* New York's offsets, from a rule or from tzdata's file. */
static void
check_new_york(const struct tz *z)
{
	assert_int_equal(tz_offset(z, JAN_15_2026), -5 * H);
	assert_int_equal(tz_offset(z, JUL_1_2026), -4 * H);
	assert_int_equal(tz_offset(z, DST_START_2026 - 1), -5 * H);
	assert_int_equal(tz_offset(z, DST_START_2026), -4 * H);
	assert_int_equal(tz_offset(z, DST_END_2026 - 1), -4 * H);
	assert_int_equal(tz_offset(z, DST_END_2026), -5 * H);
	assert_int_equal(tz_offset(z, JAN_1_2040), -5 * H);
	assert_int_equal(tz_offset(z, JUL_1_2040), -4 * H);
	/* 2026-11-25 01:20:31 local is 06:20:31Z; 2026-07-04 12:00 local is 16:00Z. */
	assert_int_equal(tz_utc(z, INT64_C(1795569631), 0), INT64_C(1795569631) + 5 * H);
	assert_int_equal(tz_utc(z, INT64_C(1783166400), 0), INT64_C(1783166400) + 4 * H);
}

static void
test_posix_rule_gives_new_york_offsets_with_dst(void **state)
{
	struct tz *z;

	(void)state;
	assert_int_equal(tz_load(ny_rule, &z), 0);
	check_new_york(z);
	tz_free(z);
}

static void
test_tzif_file_gives_new_york_offsets_with_dst(void **state)
{
	struct tz *z;

	(void)state;
	if (access("/usr/share/zoneinfo/America/New_York", R_OK) != 0)
		skip();
	assert_int_equal(tz_load("America/New_York", &z), 0);
	assert_string_equal(tz_name(z), "America/New_York");
	check_new_york(z);
	/* Before the first transition (1883): local mean time, type 0. */
	assert_int_equal(tz_offset(z, -INT64_C(3000000000)), -17762);
	tz_free(z);
}

static void
test_repeated_hour_takes_the_one_nearest_and_skipped_hour_the_offset_before(void **state)
{
	/* 2026-11-01 01:30 local happens at 05:30Z (EDT) and again at 06:30Z (EST). */
	const int64_t twice = INT64_C(1793496600), first = twice + 4 * H, second = twice + 5 * H;
	/* 2026-03-08 02:30 local never happens: read as EST, 07:30Z (03:30 EDT). */
	const int64_t never = INT64_C(1772937000);
	struct tz *z;

	(void)state;
	assert_int_equal(tz_load(ny_rule, &z), 0);
	assert_int_equal(tz_utc(z, twice, first - 60), first);
	assert_int_equal(tz_utc(z, twice, second + 60), second);
	assert_int_equal(tz_utc(z, never, 0), never + 5 * H);
	tz_free(z);
}

static void
test_southern_rule_and_fixed_offsets(void **state)
{
	struct tz *z;

	(void)state;
	/* Sydney: DST from October to April, across new year. */
	assert_int_equal(tz_load("AEST-10AEDT,M10.1.0,M4.1.0/3", &z), 0);
	assert_int_equal(tz_offset(z, JAN_15_2026), 11 * H);
	assert_int_equal(tz_offset(z, JUL_1_2026), 10 * H);
	tz_free(z);
	/* No DST; a quoted abbreviation; minutes. */
	assert_int_equal(tz_load("<+0530>-5:30", &z), 0);
	assert_int_equal(tz_offset(z, JUL_1_2026), 5 * H + 30 * 60);
	assert_int_equal(tz_utc(z, 1000000, 0), 1000000 - (5 * H + 30 * 60));
	tz_free(z);
	/* Julian days: J60 is March 1st in every year. */
	assert_int_equal(tz_load("XST3XDT,J60/0,J300/0", &z), 0);
	assert_int_equal(tz_offset(z, JAN_15_2026), -3 * H);
	assert_int_equal(tz_offset(z, JUL_1_2026), -2 * H);
	tz_free(z);
	assert_int_equal(tz_load("UTC0", &z), 0);
	assert_int_equal(tz_offset(z, JUL_1_2026), 0);
	tz_free(z);
}

static void
test_local_zone_follows_tz(void **state)
{
	const char *old = getenv("TZ");
	char *saved = old != NULL ? strdup(old) : NULL;
	struct tz *z;

	(void)state;
	assert_int_equal(setenv("TZ", ny_rule, 1), 0);
	assert_int_equal(tz_load(NULL, &z), 0);
	assert_string_equal(tz_name(z), ny_rule);
	check_new_york(z);
	tz_free(z);
	if (access("/usr/share/zoneinfo/America/New_York", R_OK) == 0) {
		assert_int_equal(setenv("TZ", ":America/New_York", 1), 0);
		assert_int_equal(tz_load(NULL, &z), 0);
		check_new_york(z);
		tz_free(z);
	}
	/* An empty TZ is UTC. */
	assert_int_equal(setenv("TZ", "", 1), 0);
	assert_int_equal(tz_load(NULL, &z), 0);
	assert_int_equal(tz_offset(z, JUL_1_2026), 0);
	assert_int_equal(tz_utc(z, JUL_1_2026, 0), JUL_1_2026);
	tz_free(z);
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	free(saved);
}

static void
test_unknown_zones_and_broken_files_are_refused(void **state)
{
	char dir[] = "/tmp/test_tz.XXXXXX", path[64];
	static const uint8_t truncated[] = "TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
	    "\0\0\0\0\0\0\0\x05\0\0\0\x01";
	struct tz *z = NULL;
	FILE *f;

	(void)state;
	assert_int_equal(tz_load("No/Such_Zone", &z), -ENOENT);
	assert_int_equal(tz_load("EST5EDT,M13.1.0,M11.1.0", &z), -ENOENT);
	assert_int_equal(tz_load("../../etc/passwd", &z), -EINVAL);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/zone", dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(truncated, 1, sizeof(truncated) - 1, f), sizeof(truncated) - 1);
	fclose(f);
	assert_int_equal(tz_load(path, &z), -EINVAL);
	assert_non_null(f = fopen(path, "w"));
	fputs("not a zone at all", f);
	fclose(f);
	assert_int_equal(tz_load(path, &z), -EINVAL);
	assert_null(z);
	unlink(path);
	rmdir(dir);
	tz_free(NULL);
}

/* Every hour-ish from 1970 to 2100 in a few zones: the same offsets as the C library. */
static void
test_offsets_match_the_c_library_for_tzdata_zones(void **state)
{
	static const char *const zones[] = {
		"America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata",
		"America/Sao_Paulo", "Europe/Dublin", "Pacific/Chatham",
	};
	const char *old = getenv("TZ");
	char *saved = old != NULL ? strdup(old) : NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		char path[128];
		struct tz *z;

		snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zones[i]);
		if (access(path, R_OK) != 0)
			continue;
		assert_int_equal(tz_load(zones[i], &z), 0);
		assert_int_equal(setenv("TZ", zones[i], 1), 0);
		tzset();
		/* A prime step, so times of day and days of the year vary. */
		for (int64_t t = 0; t < INT64_C(4102444800); t += 3593 * 7) {
			time_t tt = (time_t)t;
			struct tm tm;

			assert_non_null(localtime_r(&tt, &tm));
			if (tz_offset(z, t) != tm.tm_gmtoff)
				fail_msg("%s at %jd: %d, the C library says %ld", zones[i], (intmax_t)t,
				    tz_offset(z, t), tm.tm_gmtoff);
			if (t % 7 == 0 && tz_utc(z, t + tm.tm_gmtoff, t) != t)
				fail_msg("%s: local time of %jd does not come back", zones[i],
				    (intmax_t)t);
		}
		tz_free(z);
	}
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posix_rule_gives_new_york_offsets_with_dst),
		cmocka_unit_test(test_tzif_file_gives_new_york_offsets_with_dst),
		cmocka_unit_test(test_repeated_hour_takes_the_one_nearest_and_skipped_hour_the_offset_before),
		cmocka_unit_test(test_southern_rule_and_fixed_offsets),
		cmocka_unit_test(test_local_zone_follows_tz),
		cmocka_unit_test(test_unknown_zones_and_broken_files_are_refused),
		cmocka_unit_test(test_offsets_match_the_c_library_for_tzdata_zones),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
