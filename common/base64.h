/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64: RFC 4648 base64, standard alphabet, padded with '='. Encoding
 * writes into the caller's memory (no allocation), so that a record's
 * writer can encode straight into its buffer.
 */
#ifndef LOGFERRY_BASE64_H
#define LOGFERRY_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* The length of len bytes encoded: 4 per 3 bytes begun. */
#define BASE64_LEN(len) (((len) + 2) / 3 * 4)

/* Writes BASE64_LEN(len) characters of in[0, len) at out (no NUL). */
void base64_encode(const uint8_t *in, size_t len, uint8_t *out);

/*
 * Decodes in[0, len), padded, into out (room for len / 4 * 3 bytes) and
 * sets *outlen. Returns 0, or -EINVAL when in is not padded base64 (a
 * length not a multiple of 4, a character outside the alphabet, padding
 * anywhere but at the end, or bits set after the last byte).
 */
int base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *outlen);

#endif
