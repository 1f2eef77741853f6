/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/base64. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"

static void
test_encodes_the_rfc4648_vectors_padded(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
		/* The last two letters of the standard alphabet, not the URL one's. */
		{ "\xfb\xff\xbf", "+/+/" },
	};
	uint8_t out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);

		memset(out, '#', sizeof(out));
		assert_int_equal(BASE64_LEN(len), strlen(cases[i].out));
		base64_encode((const uint8_t *)cases[i].in, len, out);
		assert_memory_equal(out, cases[i].out, BASE64_LEN(len));
		/* Not a byte more. */
		assert_int_equal(out[BASE64_LEN(len)], '#');
	}
}

static void
test_every_byte_at_every_length_decodes_back_the_same(void **state)
{
	uint8_t in[300], enc[BASE64_LEN(300)], dec[300];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(255 - i);
	for (size_t len = 0; len <= sizeof(in); len++) {
		base64_encode(in, len, enc);
		assert_int_equal(base64_decode(enc, BASE64_LEN(len), dec, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(dec, in, len);
	}
}

static void
test_decode_refuses_what_is_not_padded_base64(void **state)
{
	static const char *const bad[] = {
		"Zg=", "Zm9", "Z", "Zg=\n", "Zm 9v", "Zm-v", "Zm_v", "=Zm9", "Zg==Zm9v", "Z===",
		"Zh==",         /* bits after the last byte */
		"Zm9=",         /* the same, one byte short of a group */
	};
	uint8_t out[16];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(base64_decode((const uint8_t *)bad[i], strlen(bad[i]), out, &n),
		    -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encodes_the_rfc4648_vectors_padded),
		cmocka_unit_test(test_every_byte_at_every_length_decodes_back_the_same),
		cmocka_unit_test(test_decode_refuses_what_is_not_padded_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
