/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame: the agent <-> relay wire framing, shared by both daemons.
 *
 * On the wire a frame is a 4-byte big-endian length followed by that many
 * bytes of a protobuf Frame (proto/logferry.proto). The decoder is fed bytes
 * as they arrive from a socket, in chunks of any size. It checks the announced
 * length against its limit before allocating anything, decodes each frame once
 * when it is complete, and decodes straight from the caller's chunk when a
 * frame lies wholly inside it (no copy).
 */
#ifndef LOGFERRY_FRAME_H
#define LOGFERRY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/logferry.pb.h"
#include "proto/pbslice.h"

#define FRAME_HEADER_SIZE 4
/* Largest length the 4-byte prefix may announce, whatever the configuration. */
#define FRAME_MAX_LIMIT (UINT32_C(1) << 30)

enum frame_type {
	FRAME_NONE = 0,
	FRAME_HELLO,
	FRAME_WELCOME,
	FRAME_BATCH,
	FRAME_ACK,
	FRAME_PING,
	FRAME_PONG,
	FRAME_GOODBYE,
};

struct frame {
	logferry_Frame pb;
	/*
	 * A Batch's payload. When encoding, set it before frame_encode. When
	 * decoding, it points into the decoder's input and is valid only during
	 * the callback.
	 */
	struct pbslice payload;
};

/* Returns the one message a frame holds, or FRAME_NONE if it holds none or several. */
enum frame_type frame_type(const struct frame *f);
const char *frame_type_name(enum frame_type t);

/*
 * Clears *f and marks it as holding a message of type t; the caller then
 * fills f->pb.<member> (and f->payload for a batch).
 */
void frame_init(struct frame *f, enum frame_type t);

/*
 * Appends the length prefix and the encoded frame to out. Returns 0,
 * -EINVAL if f does not hold exactly one message, -EMSGSIZE if the encoded
 * frame exceeds FRAME_MAX_LIMIT or out's cap, or -ENOMEM. On error out is
 * unchanged.
 */
int frame_encode(const struct frame *f, struct buf *out);

struct frame_decoder;

/*
 * Called once per complete frame, in order. Returns 0 to go on; any other
 * value stops frame_decoder_feed, which returns it (bytes after that frame
 * are not consumed and the decoder must not be fed again).
 */
typedef int (*frame_cb)(void *arg, const struct frame *f);

/*
 * Creates a decoder that refuses frames longer than max_frame bytes
 * (1..FRAME_MAX_LIMIT). Returns 0 and sets *out (the caller owns it and frees
 * it with frame_decoder_free), -EINVAL for a bad limit, or -ENOMEM.
 */
int frame_decoder_new(size_t max_frame, struct frame_decoder **out);
void frame_decoder_free(struct frame_decoder *d);

/*
 * Feeds len bytes. Calls cb for each frame they complete. Returns 0 when all
 * bytes are consumed (a partial frame is kept for the next call), the
 * callback's non-zero value, -EMSGSIZE if a frame announces more than the
 * limit, -EPROTO for a malformed frame, or -ENOMEM. After an error the
 * decoder is dead and returns the same error; frame_decoder_error says why.
 */
int frame_decoder_feed(struct frame_decoder *d, const uint8_t *data, size_t len,
    frame_cb cb, void *arg);

/* Bytes held for a frame not yet complete (for memory accounting). */
size_t frame_decoder_buffered(const struct frame_decoder *d);

/* Why the decoder failed, e.g. "frame of 2000000 bytes exceeds the limit of 1048576"; "" if it has not. */
const char *frame_decoder_error(const struct frame_decoder *d);

#endif
