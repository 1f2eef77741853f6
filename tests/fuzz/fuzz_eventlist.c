/*
 * Fuzzes the EventList reader: a decompressed batch payload from an agent
 * must give events or a clean error. Every event read must encode again,
 * and every slice field must resolve inside its message or be refused.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event_field fields[64];
	struct event_reader r;
	struct event ev;
	struct buf out;
	int rc;

	buf_init(&out, 1 << 24);
	event_reader_init(&r, data, size, fields, 64);
	while ((rc = event_reader_next(&r, &ev)) == 1) {
		for (size_t i = 0; i < ev.nfields; i++) {
			struct pbslice s;
			int fr = event_field_string(&ev, &ev.fields[i], &s);

			if (fr == 0 && s.len > 0 && (s.ptr < data || s.ptr + s.len > data + size))
				abort();
		}
		buf_reset(&out);
		if (event_encode(&ev, &out) != 0)
			abort();
	}
	if (rc != 0 && rc != -EPROTO && rc != -E2BIG)
		abort();
	if (rc != 0 && r.why == NULL)
		abort();
	buf_free(&out);
	return 0;
}
