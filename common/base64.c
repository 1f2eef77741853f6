/* SPDX-License-Identifier: Apache-2.0 */
/* base64: RFC 4648 base64 (see base64.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>

#include "common/base64.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
base64_encode(const uint8_t *in, size_t len, uint8_t *out)
{
	const char *a = base64_alphabet;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		*out++ = (uint8_t)a[v >> 18];
		*out++ = (uint8_t)a[(v >> 12) & 63];
		*out++ = (uint8_t)a[(v >> 6) & 63];
		*out++ = (uint8_t)a[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);

		*out++ = (uint8_t)a[v >> 18];
		*out++ = (uint8_t)a[(v >> 12) & 63];
		*out++ = i + 1 < len ? (uint8_t)a[(v >> 6) & 63] : '=';
		*out = '=';
	}
}

/* The 6 bits of base64 character c, or -1. */
static int
base64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *outlen)
{
	size_t n = 0;

	if (len % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		/* Padding: "xx==" or "xxx=", in the last group only. */
		int pad = last && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
		uint32_t v = 0;

		for (int j = 0; j < 4 - pad; j++) {
			int d = base64_value(in[i + j]);

			if (d < 0)
				return -EINVAL;
			v = v << 6 | (uint32_t)d;
		}
		v <<= 6 * pad;
		/* A non-canonical encoding would not read back the same from its bytes. */
		if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0))
			return -EINVAL;
		out[n++] = (uint8_t)(v >> 16);
		if (pad < 2)
			out[n++] = (uint8_t)(v >> 8);
		if (pad < 1)
			out[n++] = (uint8_t)v;
	}
	*outlen = n;
	return 0;
}
