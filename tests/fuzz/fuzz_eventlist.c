/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the EventList reader as the relay uses it: a decompressed batch
 * payload from an agent must give events or a clean error. Every event read
 * must encode again, and every slice field must resolve inside its message
 * or be refused; format 2's key and origin ids (and format 3's packed
 * fields') resolve into the input's Dict or are refused. When
 * event_list_count accepts the framing, reading on past
 * bad events must give exactly that many results (good or bad) and end, and
 * the list converted to format 1 must hold as many events.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
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
	uint64_t count = 0, results = 0;
	const char *why;
	bool framed;
	int rc;

	buf_init(&out, 1 << 24);
	framed = event_list_count(data, size, &count, &why) == 0;
	if (!framed && why == NULL)
		abort();
	event_reader_init(&r, data, size, fields, 64);
	for (;;) {
		const uint8_t *before = r.p;

		rc = event_reader_next(&r, &ev);
		if (rc == 0)
			break;
		if (rc != 1 && rc != -EPROTO && rc != -E2BIG && rc != -ENOMEM)
			abort();
		if (rc < 0 && r.why == NULL)
			abort();
		results++;
		if (rc < 0) {
			/* Past a bad event only when the list's framing is sound. */
			if (!framed)
				break;
			if (r.p <= before)
				abort();
			continue;
		}
		if (ev.raw.ptr < data || ev.raw.ptr + ev.raw.len > data + size)
			abort();
		/* Format 2's names and origins resolve into the input's Dict, nowhere else. */
		if (ev.host.len > 0 && (ev.host.ptr < data || ev.host.ptr + ev.host.len > data + size))
			abort();
		for (size_t i = 0; i < ev.nfields; i++) {
			const struct pbslice *k = &ev.fields[i].key;

			if (k->len > 0 && (k->ptr < data || k->ptr + k->len > data + size))
				abort();
		}
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
	if (framed && results != count)
		abort();
	/* In format 1 the list keeps its events, one for one, and needs no Dict. */
	if (framed) {
		uint64_t again = 0;

		buf_reset(&out);
		rc = event_list_format1(data, size, &out);
		if (rc != 0 && rc != -EMSGSIZE && rc != -ENOMEM)
			abort();
		/* An empty result has no buffer at all: nothing to count. */
		if (rc == 0 && out.len > 0 && event_list_count(out.data, out.len, &again, &why) != 0)
			abort();
		if (rc == 0 && again != count)
			abort();
	}
	buf_free(&out);
	return 0;
}
