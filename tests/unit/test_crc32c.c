/* SPDX-License-Identifier: Apache-2.0 */
/* crc32c: CRC-32C (Castagnoli) against its check value and a bitwise reference. */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/crc32c.h"

/* One bit at a time, the definition (reflected polynomial 0x82F63B78). */
static uint32_t
reference(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int b = 0; b < 8; b++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

static void
test_check_value_of_123456789_is_e3069283(void **state)
{
	(void)state;
	assert_int_equal(crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c(NULL, 0), 0);
	assert_int_equal(crc32c_portable((const uint8_t *)"123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c_portable(NULL, 0), 0);
}

/* Every length to 200 at every start alignment to 8: the word-wide path, its head and its tail. */
static void
test_any_length_and_alignment_gives_the_bitwise_crc(void **state)
{
	uint8_t buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len <= 200; len++)
			assert_int_equal(crc32c(buf + off, len), reference(buf + off, len));
}

/* The table a CPU without the instruction uses gives the same, at any length. */
static void
test_the_table_path_gives_the_bitwise_crc(void **state)
{
	uint8_t buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 29 + 3);
	for (size_t len = 0; len <= sizeof(buf); len++)
		assert_int_equal(crc32c_portable(buf, len), reference(buf, len));
}

/*
 * Lengths either side of where the instruction path splits a buffer into
 * three interleaved streams (3 x 256 and 3 x 8192 bytes, and multiples),
 * at every start alignment to 8: the combined streams give what the table
 * gives, byte for byte.
 */
static void
test_long_buffers_at_any_alignment_give_the_table_crc(void **state)
{
	static const size_t bases[] = { 0, 768, 1536, 24576, 49152, 73728 };
	static uint8_t buf[80000];
	uint32_t x = 2463534242u;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++)
		for (size_t off = 0; off < 8; off++)
			for (size_t d = 0; d < 24; d++) {
				size_t len = bases[b] + d >= 12 ? bases[b] + d - 12 : d;

				assert_int_equal(crc32c(buf + off, len), crc32c_portable(buf + off, len));
			}
	for (size_t len = 1000; len < 60000; len += 997)
		assert_int_equal(crc32c(buf + 3, len), crc32c_portable(buf + 3, len));
	/* One bit changed anywhere in a long buffer changes the CRC. */
	for (size_t i = 0; i < 30000; i += 1499) {
		uint32_t before = crc32c(buf, 30000);

		buf[i] ^= 0x10;
		assert_int_not_equal(crc32c(buf, 30000), before);
		assert_int_equal(crc32c(buf, 30000), crc32c_portable(buf, 30000));
		buf[i] ^= 0x10;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value_of_123456789_is_e3069283),
		cmocka_unit_test(test_any_length_and_alignment_gives_the_bitwise_crc),
		cmocka_unit_test(test_the_table_path_gives_the_bitwise_crc),
		cmocka_unit_test(test_long_buffers_at_any_alignment_give_the_table_crc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
