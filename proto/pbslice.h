/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pbslice: bytes fields without copies.
 *
 * Decoding binds a bytes field to a slice that ends up pointing into the input
 * buffer (nanopb's buffer stream keeps its position in `state`), so decoding
 * a batch copies no message bytes. The slice is valid as long as that input is.
 */
#ifndef LOGFERRY_PBSLICE_H
#define LOGFERRY_PBSLICE_H

#include <stddef.h>
#include <stdint.h>

#include <pb.h>

struct pbslice {
	const uint8_t *ptr;
	size_t len;
};

/* Decoding fills *dst with a pointer into the input stream's buffer. */
void pbslice_bind_decode(pb_callback_t *cb, struct pbslice *dst);

/* Encoding writes the bytes of *src (which must outlive the encode call). */
void pbslice_bind_encode(pb_callback_t *cb, const struct pbslice *src);

#endif
