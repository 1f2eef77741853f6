/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <pb_decode.h>
#include <pb_encode.h>

#include "proto/pbslice.h"

static bool
pbslice_decode_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
	struct pbslice *dst = *arg;

	(void)field;
	/*
	 * Only a memory stream (pb_istream_from_buffer) can lend its bytes: its
	 * state is the read position. logferry decodes from nothing else.
	 */
	if (stream->state == NULL && stream->bytes_left > 0)
		PB_RETURN_ERROR(stream, "zero-copy decode needs a buffer stream");
	dst->ptr = stream->state;
	dst->len = stream->bytes_left;
	/* Skips the bytes: a buffer stream just advances its pointer. */
	return pb_read(stream, NULL, stream->bytes_left);
}

static bool
pbslice_encode_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
	const struct pbslice *src = *arg;

	if (src == NULL || src->len == 0)
		return true;
	if (!pb_encode_tag_for_field(stream, field))
		return false;
	return pb_encode_string(stream, src->ptr, src->len);
}

void
pbslice_bind_decode(pb_callback_t *cb, struct pbslice *dst)
{
	dst->ptr = NULL;
	dst->len = 0;
	cb->funcs.decode = pbslice_decode_cb;
	cb->arg = dst;
}

void
pbslice_bind_encode(pb_callback_t *cb, const struct pbslice *src)
{
	cb->funcs.encode = pbslice_encode_cb;
	cb->arg = (void *)src;
}
