/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/civil.h"

#define NS UINT64_C(1000000000)
/* 2026-11-22T10:00:00Z */
#define T2026 UINT64_C(1795341600)

/* civil_rfc3339 over an exact-size heap copy of s[0, len), so ASan sees any read past it. */
static int
rfc3339_copy(const char *s, size_t len, size_t *used, uint64_t *ns)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, len);
	r = civil_rfc3339(copy, len, used, ns);
	free(copy);
	return r;
}

static void
test_rfc3339_reads_zones_fractions_and_separators(void **state)
{
	static const struct { const char *in; uint64_t want; } cases[] = {
		{ "2026-11-22T10:00:00Z", T2026 * NS },
		{ "2026-11-22t10:00:00z", T2026 * NS },
		{ "2026-11-22 10:00:00Z", T2026 * NS },
		{ "2026-11-22T10:00:00+00:00", T2026 * NS },
		{ "2026-11-22T10:00:00-00:00", T2026 * NS },
		{ "2026-11-22T11:00:00+01:00", T2026 * NS },
		{ "2026-11-22T04:30:00-05:30", T2026 * NS },
		{ "2026-11-23T09:59:00+23:59", T2026 * NS },
		{ "2026-11-22T10:00:00.1Z", T2026 * NS + 100000000 },
		{ "2026-11-22T10:00:00.000001Z", T2026 * NS + 1000 },
		{ "2026-11-22T10:00:00.123456789Z", T2026 * NS + 123456789 },
		{ "2026-11-22 11:00:00.5+01:00", T2026 * NS + 500000000 },
		/* A leap second is the next minute's first. */
		{ "2026-11-22T09:59:60Z", T2026 * NS },
		{ "2028-02-29T00:00:00Z", UINT64_C(1835395200) * NS },
		{ "2000-02-29T00:00:00Z", UINT64_C(951782400) * NS },
		{ "1970-01-01T00:00:01Z", NS },
		{ "2554-07-21T23:34:32Z", UINT64_C(18446744072) * NS },
		/* Valid, but no uint64 of nanoseconds since 1970 holds them: 0. */
		{ "1969-12-31T23:59:59Z", 0 },
		{ "1970-01-01T00:30:00+01:00", 0 },
		{ "2554-07-21T23:34:33Z", 0 },
		{ "9999-12-31T23:59:59Z", 0 },
		{ "0000-01-01T00:00:00Z", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i].in;
		size_t used = 99;
		uint64_t ns = 42;

		if (rfc3339_copy(s, strlen(s), &used, &ns) != 0)
			fail_msg("%s: refused", s);
		assert_int_equal(used, strlen(s));
		if (ns != cases[i].want)
			fail_msg("%s: got %ju, want %ju", s, (uintmax_t)ns, (uintmax_t)cases[i].want);
	}
}

static void
test_rfc3339_stops_after_the_zone(void **state)
{
	static const struct { const char *in; size_t used; } cases[] = {
		{ "2026-11-22T10:00:00Z host app: msg", 20 },
		{ "2026-11-22T10:00:00+01:00x", 25 },
		{ "2026-11-22T10:00:00+01:000", 25 },
		{ "2026-11-22T10:00:00.5ZZ", 22 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t used;
		uint64_t ns;

		assert_int_equal(rfc3339_copy(cases[i].in, strlen(cases[i].in), &used, &ns), 0);
		assert_int_equal(used, cases[i].used);
	}
}

static void
test_rfc3339_refuses_what_is_not_a_valid_time(void **state)
{
	static const char *const bad[] = {
		"", "2026", "2026-11-22", "2026-11-22T10:00:00", "2026-11-22T10:00:00 ",
		"2026-11-22T10:00:00.Z", "2026-11-22T10:00:00.1234567890Z", "2026-11-22T10:00:00,5Z",
		"2026-11-22T10:00:00+0100", "2026-11-22T10:00:00+01", "2026-11-22T10:00:00+1:00",
		"2026-11-22T10:00:00+24:00", "2026-11-22T10:00:00+01:60", "2026-11-22T10:00:00 Z",
		"2026-11-22X10:00:00Z", "2026-11-22T10-00-00Z", "2026/11/22T10:00:00Z",
		"26-11-22T10:00:00Z", "02026-11-22T10:00:00Z", " 2026-11-22T10:00:00Z",
		"2026-1-22T10:00:00Z", "2026-11-2T10:00:00Z", "2026-11-22T1:00:00Z",
		"2026-00-22T10:00:00Z", "2026-13-22T10:00:00Z", "2026-11-00T10:00:00Z",
		"2026-11-31T10:00:00Z", "2026-02-29T10:00:00Z", "1900-02-29T10:00:00Z",
		"2026-11-22T24:00:00Z", "2026-11-22T10:60:00Z", "2026-11-22T10:00:61Z",
		"2O26-11-22T10:00:00Z", "2026-11-22T10:00:0aZ", "2026-+1-22T10:00:00Z",
		"-026-11-22T10:00:00Z",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t used = 99;
		uint64_t ns = 42;

		if (rfc3339_copy(bad[i], strlen(bad[i]), &used, &ns) != -EINVAL)
			fail_msg("%s: accepted", bad[i]);
		/* Nothing is written on failure. */
		assert_int_equal(used, 99);
		assert_int_equal(ns, 42);
	}
}

static void
test_rfc3339_truncated_at_every_length_is_refused(void **state)
{
	static const char *const full[] = {
		"2026-11-22T10:00:00.123456789+01:00", "2026-11-22 10:00:00Z",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(full) / sizeof(full[0]); i++) {
		size_t len = strlen(full[i]), used;
		uint64_t ns;

		assert_int_equal(rfc3339_copy(full[i], len, &used, &ns), 0);
		for (size_t n = 0; n < len; n++)
			if (rfc3339_copy(full[i], n, &used, &ns) != -EINVAL)
				fail_msg("%.*s: accepted", (int)n, full[i]);
	}
}

static void
test_frac_reads_one_to_nine_digits(void **state)
{
	static const struct { const char *in; size_t used; uint32_t ns; } cases[] = {
		{ "5", 1, 500000000 }, { "05", 2, 50000000 }, { "123456", 6, 123456000 },
		{ "123456789", 9, 123456789 }, { "000000001Z", 9, 1 }, { "9x", 1, 900000000 },
	};
	static const char *const bad[] = { "", "x", ".5", "1234567890", "0000000000" };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t used;
		uint32_t ns;

		assert_int_equal(civil_frac((const uint8_t *)cases[i].in, strlen(cases[i].in),
		    &used, &ns), 0);
		assert_int_equal(used, cases[i].used);
		assert_int_equal(ns, cases[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t used;
		uint32_t ns;

		assert_int_equal(civil_frac((const uint8_t *)bad[i], strlen(bad[i]), &used, &ns),
		    -EINVAL);
	}
	/* len bounds the digits even when more follow. */
	{
		size_t used;
		uint32_t ns;

		assert_int_equal(civil_frac((const uint8_t *)"123456789", 3, &used, &ns), 0);
		assert_int_equal(used, 3);
		assert_int_equal(ns, 123000000);
	}
}

static void
test_ns_is_zero_outside_1970_to_2554(void **state)
{
	(void)state;
	assert_int_equal(civil_ns(0, 0), 0);
	assert_int_equal(civil_ns(0, 1), 1);
	assert_int_equal(civil_ns((int64_t)T2026, 5), T2026 * NS + 5);
	assert_int_equal(civil_ns(-1, 999999999), 0);
	assert_int_equal(civil_ns(INT64_MIN, 0), 0);
	assert_int_equal(civil_ns(INT64_C(18446744072), 999999999),
	    UINT64_C(18446744072999999999));
	assert_int_equal(civil_ns(INT64_C(18446744073), 0), 0);
	assert_int_equal(civil_ns(INT64_MAX, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339_reads_zones_fractions_and_separators),
		cmocka_unit_test(test_rfc3339_stops_after_the_zone),
		cmocka_unit_test(test_rfc3339_refuses_what_is_not_a_valid_time),
		cmocka_unit_test(test_rfc3339_truncated_at_every_length_is_refused),
		cmocka_unit_test(test_frac_reads_one_to_nine_digits),
		cmocka_unit_test(test_ns_is_zero_outside_1970_to_2554),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
