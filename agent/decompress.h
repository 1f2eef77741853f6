/* SPDX-License-Identifier: Apache-2.0 */
/*
 * decompress: reads a gzip or zstd compressed file as the bytes it holds
 * once decompressed, by offset, the way tail reads a plain file with
 * pread(): streaming, in bounded memory, without temporary files.
 *
 * The decompressed bytes of a window (the reader's only buffer) stay
 * readable: tail reads a line again from its start when a turn ends inside
 * it, and looks ahead for the newline of a long line. A read before the
 * window starts the decompression again from the file's start (this is how
 * a position is resumed after a restart: its cost is decompressing the file
 * up to the position once). Work is bounded per call: a read that would
 * decompress more than DECOMPRESS_STEP bytes before reaching its offset
 * stops with -EINPROGRESS, to be called again (the loop stays responsive).
 *
 * Damage (a corrupt or truncated stream) ends the data where it is found:
 * the bytes decompressed before it are read, then the data ends, and
 * decompress_damage says where and why.
 */
#ifndef LOGFERRY_DECOMPRESS_H
#define LOGFERRY_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Decompressed bytes one call produces at most on the way to its offset. */
#define DECOMPRESS_STEP (8 * 1024 * 1024)

enum decompress_format { DECOMPRESS_NONE, DECOMPRESS_GZIP, DECOMPRESS_ZSTD };

/* The format a file's first bytes announce (magic 1f 8b: gzip; 28 b5 2f fd: zstd). */
enum decompress_format decompress_detect(const uint8_t *head, size_t len);

/* "gzip", "zstd" or "plain". */
const char *decompress_format_name(enum decompress_format fmt);

struct decompress;

/*
 * A reader of the file open on fd (not closed by the reader), compressed in
 * fmt; window is the size of the window, at least the largest len given to
 * decompress_pread. Returns 0, -EINVAL or -ENOMEM.
 */
int decompress_new(int fd, enum decompress_format fmt, size_t window, struct decompress **out);

void decompress_free(struct decompress *d);

/*
 * Copies up to len decompressed bytes at offset off to p. keep is the
 * smallest offset the caller may read again (bytes before it may leave the
 * window): keep <= off. Returns the bytes copied, fewer than len only at
 * the end of the data (decompress_ended then holds), -EINPROGRESS when
 * DECOMPRESS_STEP bytes were decompressed without reaching off (call again),
 * or a negative errno of reading the file.
 */
ssize_t decompress_pread(struct decompress *d, uint8_t *p, size_t len, uint64_t off,
    uint64_t keep);

/* Whether the end of the data (or damage) was reached; *total: its length. */
bool decompress_ended(const struct decompress *d, uint64_t *total);

/*
 * Whether the data ended at damage: *offset is the compressed byte offset
 * where it was found, *why what it is. The bytes before it were read.
 */
bool decompress_damage(const struct decompress *d, uint64_t *offset, const char **why);

/* Times the decompression started again from the file's start. */
uint64_t decompress_restarts(const struct decompress *d);

#endif
