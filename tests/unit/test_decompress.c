/* SPDX-License-Identifier: Apache-2.0 */
/*
 * decompress: gzip and zstd files made in a mkdtemp() directory with zlib
 * and libzstd, read back by offset and compared with what was compressed.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "agent/decompress.h"

#define WINDOW (64 * 1024)

/* Lines "line N ...\n", n of them, in a new buffer of *len bytes. */
static uint8_t *
lines(size_t n, size_t *len)
{
	size_t cap = n * 64 + 1, used = 0;
	uint8_t *p = malloc(cap);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf((char *)p + used, cap - used,
		    "line %zu of the archive, with some padding %zu\n", i, i * 7919 % 1000);
	*len = used;
	return p;
}

static size_t
gzip_member(const uint8_t *p, size_t len, uint8_t *out, size_t cap)
{
	z_stream z = { 0 };

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (uint8_t *)p;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	(void)deflateEnd(&z);
	return cap - z.avail_out;
}

/* Writes data to a temporary file and returns its descriptor. */
static int
file_of(const uint8_t *data, size_t len)
{
	char path[] = "/tmp/test_decompress.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	return fd;
}

/* Reads d from off to its end, turn by turn like tail (keep = off), into a new buffer. */
static uint8_t *
read_all(struct decompress *d, uint64_t off, size_t chunk, size_t *len)
{
	size_t cap = 1024 * 1024, used = 0;
	uint8_t *out = malloc(cap);
	ssize_t n;

	assert_non_null(out);
	for (;;) {
		if (used + chunk > cap)
			assert_non_null(out = realloc(out, cap *= 2));
		n = decompress_pread(d, out + used, chunk, off + used, off + used);
		if (n == -EINPROGRESS)
			continue;
		assert_true(n >= 0);
		used += (size_t)n;
		if ((size_t)n < chunk)
			break;
	}
	*len = used;
	return out;
}

static void
test_magic_bytes_tell_gzip_and_zstd_whatever_the_name(void **state)
{
	static const uint8_t gz[] = { 0x1f, 0x8b, 8, 0 }, zst[] = { 0x28, 0xb5, 0x2f, 0xfd, 0 };
	static const uint8_t text[] = "GET / HTTP/1.1";

	(void)state;
	assert_int_equal(decompress_detect(gz, sizeof(gz)), DECOMPRESS_GZIP);
	assert_int_equal(decompress_detect(zst, sizeof(zst)), DECOMPRESS_ZSTD);
	assert_int_equal(decompress_detect(text, sizeof(text)), DECOMPRESS_NONE);
	assert_int_equal(decompress_detect(gz, 1), DECOMPRESS_NONE);
}

static void
check_reads_back(enum decompress_format fmt, const uint8_t *z, size_t zlen, const uint8_t *plain,
    size_t plen)
{
	struct decompress *d;
	uint8_t *got;
	uint64_t total;
	size_t len;
	int fd = file_of(z, zlen);

	assert_int_equal(decompress_new(fd, fmt, WINDOW, &d), 0);
	got = read_all(d, 0, 4096, &len);
	assert_int_equal(len, plen);
	assert_memory_equal(got, plain, plen);
	assert_true(decompress_ended(d, &total));
	assert_int_equal(total, plen);
	{
		uint64_t off;
		const char *why;

		assert_false(decompress_damage(d, &off, &why));
	}
	free(got);
	decompress_free(d);
	(void)close(fd);
}

static void
test_gzip_file_reads_back_as_its_decompressed_bytes(void **state)
{
	size_t plen, zlen;
	uint8_t *plain = lines(20000, &plen), *z = malloc(plen + 1024);

	(void)state;
	zlen = gzip_member(plain, plen, z, plen + 1024);
	check_reads_back(DECOMPRESS_GZIP, z, zlen, plain, plen);
	free(plain);
	free(z);
}

static void
test_concatenated_gzip_members_read_as_one_file(void **state)
{
	size_t plen, zlen, half;
	uint8_t *plain = lines(5000, &plen), *z = malloc(plen + 2048);

	(void)state;
	half = plen / 3;
	zlen = gzip_member(plain, half, z, plen + 2048);
	zlen += gzip_member(plain + half, plen - half, z + zlen, plen + 2048 - zlen);
	check_reads_back(DECOMPRESS_GZIP, z, zlen, plain, plen);
	free(plain);
	free(z);
}

static void
test_zstd_file_of_two_frames_reads_back_as_its_decompressed_bytes(void **state)
{
	size_t plen, zlen, cap, half, n;
	uint8_t *plain = lines(20000, &plen), *z;

	(void)state;
	cap = ZSTD_compressBound(plen) * 2;
	assert_non_null(z = malloc(cap));
	half = plen / 2;
	n = ZSTD_compress(z, cap, plain, half, 3);
	assert_false(ZSTD_isError(n));
	zlen = n;
	n = ZSTD_compress(z + zlen, cap - zlen, plain + half, plen - half, 3);
	assert_false(ZSTD_isError(n));
	zlen += n;
	check_reads_back(DECOMPRESS_ZSTD, z, zlen, plain, plen);
	free(plain);
	free(z);
}

/* A truncated or corrupt file: what comes before the damage, then the end, and where. */
static void
check_damage(enum decompress_format fmt, uint8_t *z, size_t zlen, const uint8_t *plain,
    size_t plen, size_t at)
{
	struct decompress *d;
	uint8_t *got;
	uint64_t total, off;
	const char *why;
	size_t len;
	int fd = file_of(z, zlen);

	assert_int_equal(decompress_new(fd, fmt, WINDOW, &d), 0);
	got = read_all(d, 0, 4096, &len);
	assert_true(len < plen);
	assert_true(len > 0);
	assert_memory_equal(got, plain, len);
	assert_true(decompress_ended(d, &total));
	assert_int_equal(total, len);
	assert_true(decompress_damage(d, &off, &why));
	assert_true(off <= zlen);
	assert_true(off + DECOMPRESS_STEP >= at);
	assert_non_null(why);
	/* Read again at the end: still the end, no loop, no new damage. */
	assert_int_equal(decompress_pread(d, got, 16, len, len), 0);
	free(got);
	decompress_free(d);
	(void)close(fd);
}

static void
test_truncated_gzip_gives_what_precedes_the_damage_and_where_it_is(void **state)
{
	size_t plen, zlen;
	uint8_t *plain = lines(20000, &plen), *z = malloc(plen + 1024);

	(void)state;
	zlen = gzip_member(plain, plen, z, plen + 1024);
	check_damage(DECOMPRESS_GZIP, z, zlen / 2, plain, plen, zlen / 2);
	free(plain);
	free(z);
}

static void
test_corrupt_zstd_gives_what_precedes_the_damage_and_where_it_is(void **state)
{
	size_t plen, zlen, cap;
	uint8_t *plain = lines(20000, &plen), *z;

	(void)state;
	cap = ZSTD_compressBound(plen);
	assert_non_null(z = malloc(cap));
	/* Two frames; the second one's header is garbled. */
	zlen = ZSTD_compress(z, cap, plain, plen / 2, 3);
	assert_false(ZSTD_isError(zlen));
	{
		size_t n = ZSTD_compress(z + zlen, cap - zlen, plain + plen / 2, plen - plen / 2, 3);

		assert_false(ZSTD_isError(n));
		memset(z + zlen, 0x55, 8);
		check_damage(DECOMPRESS_ZSTD, z, zlen + n, plain, plen, zlen);
	}
	free(plain);
	free(z);
}

static void
test_position_mid_file_resumes_by_decompressing_from_the_start(void **state)
{
	size_t plen, zlen, len;
	uint8_t *plain = lines(200000, &plen), *z = malloc(plen + 1024), *got;
	struct decompress *d;
	uint64_t mid;
	int fd;

	(void)state;
	zlen = gzip_member(plain, plen, z, plen + 1024);
	fd = file_of(z, zlen);
	assert_true(plen > DECOMPRESS_STEP);
	mid = plen - 12345;
	assert_int_equal(decompress_new(fd, DECOMPRESS_GZIP, WINDOW, &d), 0);
	/* A fresh reader (the restart) gets there in bounded steps. */
	got = read_all(d, mid, 4096, &len);
	assert_int_equal(len, plen - mid);
	assert_memory_equal(got, plain + mid, len);
	free(got);
	/* A read before the window starts again from the file's start, and is right. */
	got = read_all(d, 100, 4096, &len);
	assert_int_equal(len, plen - 100);
	assert_memory_equal(got, plain + 100, len);
	assert_int_equal(decompress_restarts(d), 1);
	free(got);
	decompress_free(d);
	(void)close(fd);
	free(plain);
	free(z);
}

static void
test_bytes_from_keep_on_stay_readable_without_starting_again(void **state)
{
	size_t plen, zlen;
	uint8_t *plain = lines(20000, &plen), *z = malloc(plen + 1024), buf[4096];
	struct decompress *d;
	int fd;

	(void)state;
	zlen = gzip_member(plain, plen, z, plen + 1024);
	fd = file_of(z, zlen);
	assert_int_equal(decompress_new(fd, DECOMPRESS_GZIP, WINDOW, &d), 0);
	/* A look ahead within the window from keep, then the read at keep again. */
	assert_int_equal(decompress_pread(d, buf, sizeof(buf), 50000, 50000), (ssize_t)sizeof(buf));
	assert_int_equal(decompress_pread(d, buf, sizeof(buf), 50000 + WINDOW - sizeof(buf), 50000),
	    (ssize_t)sizeof(buf));
	assert_memory_equal(buf, plain + 50000 + WINDOW - sizeof(buf), sizeof(buf));
	assert_int_equal(decompress_pread(d, buf, sizeof(buf), 50000, 50000), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, plain + 50000, sizeof(buf));
	assert_int_equal(decompress_restarts(d), 0);
	decompress_free(d);
	(void)close(fd);
	free(plain);
	free(z);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magic_bytes_tell_gzip_and_zstd_whatever_the_name),
		cmocka_unit_test(test_gzip_file_reads_back_as_its_decompressed_bytes),
		cmocka_unit_test(test_concatenated_gzip_members_read_as_one_file),
		cmocka_unit_test(test_zstd_file_of_two_frames_reads_back_as_its_decompressed_bytes),
		cmocka_unit_test(test_truncated_gzip_gives_what_precedes_the_damage_and_where_it_is),
		cmocka_unit_test(test_corrupt_zstd_gives_what_precedes_the_damage_and_where_it_is),
		cmocka_unit_test(test_position_mid_file_resumes_by_decompressing_from_the_start),
		cmocka_unit_test(test_bytes_from_keep_on_stay_readable_without_starting_again),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
