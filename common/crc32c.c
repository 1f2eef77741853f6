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
/*
 * The crc32 instruction takes 3 cycles but the CPU starts one every cycle:
 * one chain of them over a buffer runs at a third of what it could. So a
 * long buffer goes as three adjacent blocks, one chain each, side by side;
 * then the first chain's register is moved past the second block (times
 * x^(8 x block) modulo the polynomial: linear in the register's 32 bits,
 * so 4 lookups in a table made once) and XORed with the second's, and that
 * again past the third. A sealed segment's frame (~170 KiB) goes in long
 * blocks, what is left in short ones, the last 767 bytes or fewer in one
 * chain.
 */
#define CRC32C_LONG 8192
#define CRC32C_SHORT 256

static uint32_t crc32c_long[4][256], crc32c_short[4][256];
static pthread_once_t crc32c_shift_once = PTHREAD_ONCE_INIT;

/* zeros[k][b]: the register b << 8k after block zero bytes, bit by bit, as the operator is linear. */
__attribute__((target("sse4.2"))) static void
crc32c_shift_table(uint32_t zeros[4][256], size_t block)
{
	uint32_t bit[32];

	for (int i = 0; i < 32; i++) {
		uint64_t c = 1u << i;

		for (size_t n = 0; n < block; n += 8)
			c = _mm_crc32_u64(c, 0);
		bit[i] = (uint32_t)c;
	}
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t v = 0;

			for (int j = 0; j < 8; j++)
				if (b & (1u << j))
					v ^= bit[8 * k + j];
			zeros[k][b] = v;
		}
}

static void
crc32c_shift_init(void)
{
	crc32c_shift_table(crc32c_long, CRC32C_LONG);
	crc32c_shift_table(crc32c_short, CRC32C_SHORT);
}

static inline uint32_t
crc32c_shift(const uint32_t zeros[4][256], uint32_t c)
{
	return zeros[0][c & 0xff] ^ zeros[1][(c >> 8) & 0xff] ^ zeros[2][(c >> 16) & 0xff] ^
	    zeros[3][c >> 24];
}

/* c over p[0, 3 x block): three chains, joined. */
__attribute__((target("sse4.2"), always_inline)) static inline uint64_t
crc32c_sse42_3way(uint64_t c0, const uint8_t *p, size_t block, const uint32_t zeros[4][256])
{
	uint64_t c1 = 0, c2 = 0;

	for (size_t i = 0; i < block; i += 8) {
		uint64_t w0, w1, w2;

		memcpy(&w0, p + i, 8);
		memcpy(&w1, p + block + i, 8);
		memcpy(&w2, p + 2 * block + i, 8);
		c0 = _mm_crc32_u64(c0, w0);
		c1 = _mm_crc32_u64(c1, w1);
		c2 = _mm_crc32_u64(c2, w2);
	}
	c0 = crc32c_shift(zeros, (uint32_t)c0) ^ c1;
	return crc32c_shift(zeros, (uint32_t)c0) ^ c2;
}

/* Built for SSE4.2 alone, so that the rest of the program still runs on any x86-64. */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64;

	for (; len > 0 && ((uintptr_t)p & 7) != 0; len--)
		c = _mm_crc32_u8(c, *p++);
	c64 = c;
	if (len >= 3 * CRC32C_SHORT)
		(void)pthread_once(&crc32c_shift_once, crc32c_shift_init);
	for (; len >= 3 * CRC32C_LONG; len -= 3 * CRC32C_LONG, p += 3 * CRC32C_LONG)
		c64 = crc32c_sse42_3way(c64, p, CRC32C_LONG, crc32c_long);
	for (; len >= 3 * CRC32C_SHORT; len -= 3 * CRC32C_SHORT, p += 3 * CRC32C_SHORT)
		c64 = crc32c_sse42_3way(c64, p, CRC32C_SHORT, crc32c_short);
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
