/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static void
test_append_grows_and_keeps_bytes(void **state)
{
	struct buf b;
	uint8_t chunk[100];

	(void)state;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 100; i++) {
		memset(chunk, i, sizeof(chunk));
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	}
	assert_int_equal(b.len, 10000);
	for (int i = 0; i < 100; i++)
		assert_int_equal(b.data[i * 100 + 99], i);
	buf_free(&b);
}

static void
test_append_beyond_max_fails_and_leaves_buffer_unchanged(void **state)
{
	struct buf b;
	uint8_t chunk[600] = { 0 };

	(void)state;
	buf_init(&b, 1000);
	assert_int_equal(buf_append(&b, chunk, 600), 0);
	assert_int_equal(buf_append(&b, chunk, 401), -EMSGSIZE);
	assert_int_equal(b.len, 600);
	assert_true(b.cap <= 1000);
	assert_int_equal(buf_append(&b, chunk, 400), 0);
	assert_int_equal(b.len, 1000);
	assert_int_equal(buf_reserve(&b, 1), -EMSGSIZE);
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -EMSGSIZE);
	buf_free(&b);
}

static void
test_consume_keeps_the_tail(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, "hello world", 11), 0);
	buf_consume(&b, 6);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "world", 5);
	buf_consume(&b, 99);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_reset_keeps_memory_and_free_accepts_null(void **state)
{
	struct buf b;
	uint8_t *mem;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	mem = b.data;
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, mem);
	buf_free(&b);
	buf_free(&b);
	buf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_grows_and_keeps_bytes),
		cmocka_unit_test(test_append_beyond_max_fails_and_leaves_buffer_unchanged),
		cmocka_unit_test(test_consume_keeps_the_tail),
		cmocka_unit_test(test_reset_keeps_memory_and_free_accepts_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
