/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

#include "common/crc32c.h"

#define CRC32C_POLY 0x82f63b78u   /* reflected */

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void
crc32c_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int b = 0; b < 8; b++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_table[i] = c;
	}
}

/* A byte at a time: only where the CPU has no CRC-32C instruction. */
static uint32_t
crc32c_soft(uint32_t c, const uint8_t *p, size_t len)
{
	(void)pthread_once(&crc32c_once, crc32c_table_init);
	for (; len > 0; len--)
		c = crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
/* Built for SSE4.2 alone, so that the rest of the program still runs on any x86-64. */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64;

	for (; len > 0 && ((uintptr_t)p & 7) != 0; len--)
		c = _mm_crc32_u8(c, *p++);
	c64 = c;
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c64 = _mm_crc32_u64(c64, w);
	}
	c = (uint32_t)c64;
	for (; len > 0; len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
static uint32_t
crc32c_arm(uint32_t c, const uint8_t *p, size_t len)
{
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __crc32cd(c, w);
	}
	for (; len > 0; len--)
		c = __crc32cb(c, *p++);
	return c;
}
#endif

uint32_t
crc32c(const uint8_t *p, size_t len)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_sse42(0xffffffffu, p, len);
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
	return ~crc32c_arm(0xffffffffu, p, len);
#endif
	return crc32c_portable(p, len);
}

uint32_t
crc32c_portable(const uint8_t *p, size_t len)
{
	return ~crc32c_soft(0xffffffffu, p, len);
}
