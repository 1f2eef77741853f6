/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the frame decoder: arbitrary bytes from a peer, fed in chunks of
 * sizes taken from the input itself, must give frames or a clean error.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_frame_cb(void *arg, const struct frame *f)
{
	struct buf *out = arg;
	struct frame copy = *f;

	/* Whatever decodes must encode again. */
	if (frame_type(f) == FRAME_NONE)
		abort();
	if (frame_encode(&copy, out) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_decoder *d;
	struct buf out;
	size_t chunk;
	int r = 0;

	if (size < 1)
		return 0;
	/* The first byte picks the chunk size, so splits get explored too. */
	chunk = (size_t)data[0] + 1;
	data++;
	size--;
	if (frame_decoder_new(64 * 1024, &d) != 0)
		abort();
	buf_init(&out, 1 << 20);
	while (size > 0 && r == 0) {
		size_t n = size < chunk ? size : chunk;

		r = frame_decoder_feed(d, data, n, fuzz_frame_cb, &out);
		if (r != 0 && r != -EPROTO && r != -EMSGSIZE)
			abort();
		if (r != 0 && frame_decoder_error(d)[0] == '\0')
			abort();
		data += n;
		size -= n;
	}
	buf_free(&out);
	frame_decoder_free(d);
	return 0;
}
