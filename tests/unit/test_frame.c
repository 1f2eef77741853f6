/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"

#define MAX_FRAME 4096
#define MAX_SEEN 16

/* What the decoder delivered, copied out of the callback. */
struct seen {
	int n;
	enum frame_type type[MAX_SEEN];
	struct frame frame[MAX_SEEN];
	uint8_t payload[MAX_SEEN][2048];
	const uint8_t *payload_ptr[MAX_SEEN];
	int stop_after;       /* return 1 from the callback after this many */
};

static int
collect(void *arg, const struct frame *f)
{
	struct seen *s = arg;

	assert_true(s->n < MAX_SEEN);
	s->type[s->n] = frame_type(f);
	s->frame[s->n] = *f;
	s->payload_ptr[s->n] = f->payload.ptr;
	assert_true(f->payload.len <= sizeof(s->payload[0]));
	if (f->payload.len > 0)
		memcpy(s->payload[s->n], f->payload.ptr, f->payload.len);
	s->n++;
	return s->stop_after > 0 && s->n >= s->stop_after ? 1 : 0;
}

static struct frame_decoder *
new_decoder(size_t max)
{
	struct frame_decoder *d;

	assert_int_equal(frame_decoder_new(max, &d), 0);
	return d;
}

static uint8_t batch_bytes[1500];

/* A stream of one frame of every type, in order. */
static void
encode_stream(struct buf *out)
{
	struct frame f;

	for (size_t i = 0; i < sizeof(batch_bytes); i++)
		batch_bytes[i] = (uint8_t)(i * 7 + 3);

	frame_init(&f, FRAME_HELLO);
	f.pb.hello.protocol_version = logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT;
	strcpy(f.pb.hello.agent_id, "web-01");
	strcpy(f.pb.hello.software_version, "0.1.0");
	assert_int_equal(frame_encode(&f, out), 0);

	frame_init(&f, FRAME_WELCOME);
	f.pb.welcome.protocol_version = 1;
	strcpy(f.pb.welcome.relay_id, "relay-1");
	f.pb.welcome.max_batch_bytes = 1 << 20;
	f.pb.welcome.max_uncompressed_bytes = 64 << 20;
	f.pb.welcome.window = 8;
	assert_int_equal(frame_encode(&f, out), 0);

	frame_init(&f, FRAME_BATCH);
	f.pb.batch.id = UINT64_C(0x0102030405060708);
	f.pb.batch.event_count = 4096;
	f.pb.batch.compression = logferry_Compression_COMPRESSION_ZSTD;
	f.pb.batch.uncompressed_size = 9000;
	f.payload.ptr = batch_bytes;
	f.payload.len = sizeof(batch_bytes);
	assert_int_equal(frame_encode(&f, out), 0);

	frame_init(&f, FRAME_ACK);
	f.pb.ack.batch_id = 42;
	f.pb.ack.status = logferry_Ack_Status_RETRY;
	strcpy(f.pb.ack.reason, "kafka: broker down");
	f.pb.ack.retry_after_ms = 250;
	assert_int_equal(frame_encode(&f, out), 0);

	frame_init(&f, FRAME_PING);
	f.pb.ping.nonce = 7;
	assert_int_equal(frame_encode(&f, out), 0);
	frame_init(&f, FRAME_PONG);
	f.pb.pong.nonce = 7;
	assert_int_equal(frame_encode(&f, out), 0);
	frame_init(&f, FRAME_GOODBYE);
	strcpy(f.pb.goodbye.reason, "shutting down");
	assert_int_equal(frame_encode(&f, out), 0);
}

static void
check_stream(const struct seen *s)
{
	assert_int_equal(s->n, 7);
	assert_int_equal(s->type[0], FRAME_HELLO);
	assert_int_equal(s->frame[0].pb.hello.protocol_version, 1);
	assert_string_equal(s->frame[0].pb.hello.agent_id, "web-01");
	assert_string_equal(s->frame[0].pb.hello.software_version, "0.1.0");
	assert_int_equal(s->type[1], FRAME_WELCOME);
	assert_string_equal(s->frame[1].pb.welcome.relay_id, "relay-1");
	assert_int_equal(s->frame[1].pb.welcome.max_batch_bytes, 1 << 20);
	assert_int_equal(s->frame[1].pb.welcome.max_uncompressed_bytes, 64 << 20);
	assert_int_equal(s->frame[1].pb.welcome.window, 8);
	assert_int_equal(s->type[2], FRAME_BATCH);
	assert_int_equal(s->frame[2].pb.batch.id, UINT64_C(0x0102030405060708));
	assert_int_equal(s->frame[2].pb.batch.event_count, 4096);
	assert_int_equal(s->frame[2].pb.batch.compression,
	    logferry_Compression_COMPRESSION_ZSTD);
	assert_int_equal(s->frame[2].pb.batch.uncompressed_size, 9000);
	assert_int_equal(s->frame[2].payload.len, sizeof(batch_bytes));
	assert_memory_equal(s->payload[2], batch_bytes, sizeof(batch_bytes));
	assert_int_equal(s->type[3], FRAME_ACK);
	assert_int_equal(s->frame[3].pb.ack.batch_id, 42);
	assert_int_equal(s->frame[3].pb.ack.status, logferry_Ack_Status_RETRY);
	assert_string_equal(s->frame[3].pb.ack.reason, "kafka: broker down");
	assert_int_equal(s->frame[3].pb.ack.retry_after_ms, 250);
	assert_int_equal(s->type[4], FRAME_PING);
	assert_int_equal(s->frame[4].pb.ping.nonce, 7);
	assert_int_equal(s->type[5], FRAME_PONG);
	assert_int_equal(s->frame[5].pb.pong.nonce, 7);
	assert_int_equal(s->type[6], FRAME_GOODBYE);
	assert_string_equal(s->frame[6].pb.goodbye.reason, "shutting down");
}

/* Feeds bytes in one chunk and asserts the error and its exact message. */
static void
expect_refused(const uint8_t *bytes, size_t len, size_t max, int rc, const char *why)
{
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(max);

	assert_int_equal(frame_decoder_feed(d, bytes, len, collect, &s), rc);
	assert_string_equal(frame_decoder_error(d), why);
	assert_int_equal(s.n, 0);
	frame_decoder_free(d);
}

static void
test_every_message_type_round_trips(void **state)
{
	struct buf b;
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(MAX_FRAME);

	(void)state;
	buf_init(&b, 1 << 20);
	encode_stream(&b);
	assert_int_equal(frame_decoder_feed(d, b.data, b.len, collect, &s), 0);
	check_stream(&s);
	assert_int_equal(frame_decoder_buffered(d), 0);
	assert_string_equal(frame_decoder_error(d), "");
	frame_decoder_free(d);
	buf_free(&b);
}

static void
test_whole_frame_in_one_chunk_is_decoded_without_copying_payload(void **state)
{
	struct buf b;
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(MAX_FRAME);

	(void)state;
	buf_init(&b, 1 << 20);
	encode_stream(&b);
	assert_int_equal(frame_decoder_feed(d, b.data, b.len, collect, &s), 0);
	assert_int_equal(s.n, 7);
	/* The payload points into the caller's bytes, not into a copy. */
	assert_true(s.payload_ptr[2] > b.data);
	assert_true(s.payload_ptr[2] + sizeof(batch_bytes) <= b.data + b.len);
	assert_memory_equal(s.payload_ptr[2], batch_bytes, sizeof(batch_bytes));
	frame_decoder_free(d);
	buf_free(&b);
}

static void
test_input_split_at_every_byte_boundary_decodes_the_same(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	encode_stream(&b);
	for (size_t cut = 0; cut <= b.len; cut++) {
		struct seen s = { 0 };
		struct frame_decoder *d = new_decoder(MAX_FRAME);

		assert_int_equal(frame_decoder_feed(d, b.data, cut, collect, &s), 0);
		assert_int_equal(frame_decoder_feed(d, b.data + cut, b.len - cut,
		    collect, &s), 0);
		check_stream(&s);
		assert_int_equal(frame_decoder_buffered(d), 0);
		frame_decoder_free(d);
	}
	buf_free(&b);
}

static void
test_input_fed_one_byte_at_a_time_decodes_the_same(void **state)
{
	struct buf b;
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(MAX_FRAME);

	(void)state;
	buf_init(&b, 1 << 20);
	encode_stream(&b);
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(frame_decoder_feed(d, b.data + i, 1, collect, &s), 0);
	check_stream(&s);
	frame_decoder_free(d);
	buf_free(&b);
}

static void
test_oversized_frame_is_refused_before_allocating(void **state)
{
	/* Announces 1025 bytes to a decoder limited to 1024; no body follows. */
	const uint8_t hdr[] = { 0x00, 0x00, 0x04, 0x01 };
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(1024);

	(void)state;
	assert_int_equal(frame_decoder_feed(d, hdr, sizeof(hdr), collect, &s),
	    -EMSGSIZE);
	assert_string_equal(frame_decoder_error(d),
	    "frame of 1025 bytes exceeds the limit of 1024");
	assert_int_equal(frame_decoder_buffered(d), 0);
	assert_int_equal(s.n, 0);
	frame_decoder_free(d);
}

static void
test_oversized_frame_with_split_header_is_refused(void **state)
{
	const uint8_t hdr[] = { 0xff, 0xff, 0xff, 0xff };
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(1024);

	(void)state;
	assert_int_equal(frame_decoder_feed(d, hdr, 2, collect, &s), 0);
	assert_int_equal(frame_decoder_feed(d, hdr + 2, 2, collect, &s), -EMSGSIZE);
	assert_string_equal(frame_decoder_error(d),
	    "frame of 4294967295 bytes exceeds the limit of 1024");
	frame_decoder_free(d);
}

static void
test_truncated_frame_waits_for_the_rest(void **state)
{
	struct buf b;
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(MAX_FRAME);
	struct frame f;

	(void)state;
	buf_init(&b, 1 << 20);
	frame_init(&f, FRAME_PING);
	f.pb.ping.nonce = 99;
	assert_int_equal(frame_encode(&f, &b), 0);
	assert_int_equal(frame_decoder_feed(d, b.data, b.len - 1, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(frame_decoder_buffered(d), b.len - 1);
	assert_int_equal(frame_decoder_feed(d, b.data + b.len - 1, 1, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.frame[0].pb.ping.nonce, 99);
	frame_decoder_free(d);
	buf_free(&b);
}

static void
test_empty_frame_is_a_protocol_error(void **state)
{
	const uint8_t bytes[] = { 0, 0, 0, 0 };

	(void)state;
	expect_refused(bytes, sizeof(bytes), MAX_FRAME, -EPROTO, "empty frame");
}

static void
test_garbage_body_is_a_protocol_error(void **state)
{
	/* Field 1 with wire type 7, which does not exist. */
	const uint8_t bytes[] = { 0, 0, 0, 3, 0x0f, 0x01, 0x02 };

	(void)state;
	expect_refused(bytes, sizeof(bytes), MAX_FRAME, -EPROTO,
	    "malformed frame of 3 bytes: wrong wire type");
}

static void
test_submessage_longer_than_frame_is_a_protocol_error(void **state)
{
	/* Frame.hello (field 1, length-delimited) claims 100 bytes; 1 follows. */
	const uint8_t bytes[] = { 0, 0, 0, 3, 0x0a, 100, 0x08 };

	(void)state;
	expect_refused(bytes, sizeof(bytes), MAX_FRAME, -EPROTO,
	    "malformed frame of 3 bytes: parent stream too short");
}

static void
test_frame_without_known_message_is_a_protocol_error(void **state)
{
	/* Only field 15 (varint), unknown to Frame: decodes, holds nothing. */
	const uint8_t bytes[] = { 0, 0, 0, 2, 0x78, 0x01 };

	(void)state;
	expect_refused(bytes, sizeof(bytes), MAX_FRAME, -EPROTO,
	    "frame of 2 bytes holds no known message");
}

static void
test_frame_with_two_messages_is_a_protocol_error(void **state)
{
	/* Ping (field 5) and Pong (field 6), both empty. */
	const uint8_t bytes[] = { 0, 0, 0, 4, 0x2a, 0x00, 0x32, 0x00 };

	(void)state;
	expect_refused(bytes, sizeof(bytes), MAX_FRAME, -EPROTO,
	    "frame of 4 bytes holds several messages");
}

static void
test_error_is_sticky(void **state)
{
	const uint8_t bad[] = { 0, 0, 0, 0 };
	struct buf b;
	struct seen s = { 0 };
	struct frame_decoder *d = new_decoder(MAX_FRAME);

	(void)state;
	buf_init(&b, 1 << 20);
	encode_stream(&b);
	assert_int_equal(frame_decoder_feed(d, bad, sizeof(bad), collect, &s), -EPROTO);
	assert_int_equal(frame_decoder_feed(d, b.data, b.len, collect, &s), -EPROTO);
	assert_int_equal(s.n, 0);
	frame_decoder_free(d);
	buf_free(&b);
}

static void
test_callback_return_value_stops_decoding(void **state)
{
	struct buf b;
	struct seen s = { .stop_after = 2 };
	struct frame_decoder *d = new_decoder(MAX_FRAME);

	(void)state;
	buf_init(&b, 1 << 20);
	encode_stream(&b);
	assert_int_equal(frame_decoder_feed(d, b.data, b.len, collect, &s), 1);
	assert_int_equal(s.n, 2);
	frame_decoder_free(d);
	buf_free(&b);
}

static void
test_encode_refuses_a_frame_without_a_message(void **state)
{
	struct buf b;
	struct frame f;

	(void)state;
	buf_init(&b, 1024);
	frame_init(&f, FRAME_NONE);
	assert_int_equal(frame_encode(&f, &b), -EINVAL);
	frame_init(&f, FRAME_PING);
	f.pb.has_pong = true;
	assert_int_equal(frame_encode(&f, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_encode_beyond_buffer_cap_fails_and_leaves_buffer_unchanged(void **state)
{
	struct buf b;
	struct frame f;

	(void)state;
	buf_init(&b, 100);
	frame_init(&f, FRAME_BATCH);
	f.payload.ptr = batch_bytes;
	f.payload.len = 200;
	assert_int_equal(frame_encode(&f, &b), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_decoder_refuses_invalid_limits(void **state)
{
	struct frame_decoder *d = (void *)1;

	(void)state;
	assert_int_equal(frame_decoder_new(0, &d), -EINVAL);
	assert_null(d);
	assert_int_equal(frame_decoder_new((size_t)FRAME_MAX_LIMIT + 1, &d), -EINVAL);
	frame_decoder_free(NULL);
}

static int
count_only(void *arg, const struct frame *f)
{
	(void)f;
	(*(int *)arg)++;
	return 0;
}

static void
test_random_frames_never_crash_and_errors_always_say_why(void **state)
{
	uint8_t bytes[300];
	unsigned seed = 12345;

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		struct frame_decoder *d = new_decoder(256);
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(bytes));
		int n = 0, r;

		for (size_t i = 0; i < len; i++)
			bytes[i] = (uint8_t)rand_r(&seed);
		/* Mostly plausible lengths, so bodies get decoded. */
		if (len >= 4 && iter % 4 != 0) {
			uint32_t body = (uint32_t)(len - 4);
			bytes[0] = 0;
			bytes[1] = 0;
			bytes[2] = (uint8_t)(body >> 8);
			bytes[3] = (uint8_t)body;
		}
		r = frame_decoder_feed(d, bytes, len, count_only, &n);
		assert_true(r == 0 || r == -EPROTO || r == -EMSGSIZE);
		if (r != 0)
			assert_true(strlen(frame_decoder_error(d)) > 0);
		frame_decoder_free(d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_message_type_round_trips),
		cmocka_unit_test(test_whole_frame_in_one_chunk_is_decoded_without_copying_payload),
		cmocka_unit_test(test_input_split_at_every_byte_boundary_decodes_the_same),
		cmocka_unit_test(test_input_fed_one_byte_at_a_time_decodes_the_same),
		cmocka_unit_test(test_oversized_frame_is_refused_before_allocating),
		cmocka_unit_test(test_oversized_frame_with_split_header_is_refused),
		cmocka_unit_test(test_truncated_frame_waits_for_the_rest),
		cmocka_unit_test(test_empty_frame_is_a_protocol_error),
		cmocka_unit_test(test_garbage_body_is_a_protocol_error),
		cmocka_unit_test(test_submessage_longer_than_frame_is_a_protocol_error),
		cmocka_unit_test(test_frame_without_known_message_is_a_protocol_error),
		cmocka_unit_test(test_frame_with_two_messages_is_a_protocol_error),
		cmocka_unit_test(test_error_is_sticky),
		cmocka_unit_test(test_callback_return_value_stops_decoding),
		cmocka_unit_test(test_encode_refuses_a_frame_without_a_message),
		cmocka_unit_test(test_encode_beyond_buffer_cap_fails_and_leaves_buffer_unchanged),
		cmocka_unit_test(test_decoder_refuses_invalid_limits),
		cmocka_unit_test(test_random_frames_never_crash_and_errors_always_say_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
