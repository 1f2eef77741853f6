/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_codec: CPU cost of the event codec per event, to set against
 * docs/performance.md (protobuf encode 0.10 us and decode 0.11 us per NGINX event
 * of 398 bytes, into a reused buffer).
 *
 * Encodes N NGINX `combined` events with the 11 fields of docs/architecture.md into
 * segments of 4096 events (as the spool will), then reads every segment
 * back. String fields are slices of the message, as the agent will send
 * them, so the bytes per event are reported too.
 *
 * Format 2 (docs/architecture.md "Event formats") encodes names and the
 * origin by id, each segment's Dict in front of its events, as the spool
 * writes it (the copy behind the Dict included). Format 3 as well, its
 * slice and integer fields packed (Event.packed_fields), as the spool now
 * writes them.
 *
 * With SETS 4, events leave out remote_user (3 in 4) and http_referer (1 in
 * 3) as NGINX does for a "-" and bench/nginx_log.py's lines have it, so
 * that the names after them shift: the agent's four sets of names in turn.
 *
 * Usage: bench_codec [EVENTS [FORMAT [SETS]]]   (default 1000000 events, format 1 (2, 3), 1 set)
 */
#include "autoconfig.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "proto/event.h"
#include "proto/event_dict.h"

#define SEGMENT_EVENTS 4096
#define NFIELDS 11

/* Positions of the NGINX combined fields in a line the benchmark wrote. */
struct bench_line {
	char text[512];
	size_t len;
	uint32_t off[NFIELDS], len_[NFIELDS];
};

static void
bench_make_line(struct bench_line *l, unsigned i)
{
	static const char *const paths[] = { "/", "/index.html", "/api/v1/items?id=42",
		"/static/app.3f9c.js", "/login" };
	static const char *const agents[] = { "curl/8.0",
		"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0" };
	int n = snprintf(l->text, sizeof(l->text),
	    "203.0.113.%u - - [22/Nov/2026:10:%02u:%02u +0000] \"GET %s HTTP/1.1\" %u %u \"-\" \"%s\"",
	    i % 250, (i / 60) % 60, i % 60, paths[i % 5], i % 17 ? 200 : 404, 600 + i % 5000,
	    agents[i % 2]);
	const char *t = l->text, *p;

	l->len = (size_t)n;
	/* remote_addr, remote_user, time_local, request, method, path, protocol,
	 * status, body_bytes_sent, http_referer, http_user_agent */
	p = strchr(t, ' ');
	l->off[0] = 0; l->len_[0] = (uint32_t)(p - t);
	l->off[1] = (uint32_t)(p - t) + 1; l->len_[1] = 1;
	p = strchr(t, '[');
	l->off[2] = (uint32_t)(p - t) + 1; l->len_[2] = 26;
	p = strchr(t, '"');
	l->off[3] = (uint32_t)(p - t) + 1;
	l->len_[3] = (uint32_t)(strchr(p + 1, '"') - p - 1);
	l->off[4] = l->off[3]; l->len_[4] = 3;
	l->off[5] = l->off[3] + 4; l->len_[5] = l->len_[3] - 13;
	l->off[6] = l->off[3] + l->len_[3] - 8; l->len_[6] = 8;
	p = strrchr(t, '"');
	l->off[10] = (uint32_t)(strrchr(t, '"') - t);
	p = t + l->off[10] - 1;
	while (*p != '"')
		p--;
	l->off[10] = (uint32_t)(p - t) + 1;
	l->len_[10] = (uint32_t)(strrchr(t, '"') - p - 1);
	l->off[9] = l->off[10] - 4; l->len_[9] = 1;
}

int
main(int argc, char **argv)
{
	static const char *const names[NFIELDS] = { "remote_addr", "remote_user", "time_local",
		"request", "method", "path", "protocol", "status", "body_bytes_sent",
		"http_referer", "http_user_agent" };
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	int format = argc > 2 ? atoi(argv[2]) : EVENT_FORMAT_1;
	int sets = argc > 3 ? atoi(argv[3]) : 1;
	struct event_dict *dict = event_dict_new(256 << 10);
	struct event_dict_used used;
	struct buf evs;
	struct bench_line *lines = calloc(SEGMENT_EVENTS, sizeof(*lines));
	struct event_field fields[NFIELDS], kept[NFIELDS], rfields[16];
	struct buf seg;
	struct event ev, got;
	struct event_reader r;
	double c0, w0, enc_cpu, enc_wall, dec_cpu = 0, dec_wall = 0;
	uint64_t bytes = 0, msg_bytes = 0, decoded = 0, check = 0;

	if (lines == NULL || n == 0 || dict == NULL ||
	    format < EVENT_FORMAT_1 || format > EVENT_FORMAT_3 || (sets != 1 && sets != 4)) {
		fprintf(stderr, "bench_codec: bad arguments or out of memory\n");
		return 1;
	}
	event_dict_set_format(dict, format == EVENT_FORMAT_3 ? EVENT_FORMAT_3 : EVENT_FORMAT_2);
	for (unsigned i = 0; i < SEGMENT_EVENTS; i++)
		bench_make_line(&lines[i], i);
	memset(fields, 0, sizeof(fields));
	for (int f = 0; f < NFIELDS; f++) {
		fields[f].key.ptr = (const uint8_t *)names[f];
		fields[f].key.len = strlen(names[f]);
		fields[f].type = f == 7 || f == 8 ? EVENT_INTEGER : EVENT_SLICE;
	}
	memset(&ev, 0, sizeof(ev));
	ev.host.ptr = (const uint8_t *)"web-01";
	ev.host.len = 6;
	ev.stream.ptr = (const uint8_t *)"nginx_access";
	ev.stream.len = 12;
	ev.source.ptr = (const uint8_t *)"/var/log/nginx/access.log";
	ev.source.len = 25;
	ev.fields = fields;
	ev.nfields = NFIELDS;
	buf_init(&seg, 64 << 20);
	buf_init(&evs, 64 << 20);

	enc_cpu = 0;
	enc_wall = 0;
	for (unsigned long done = 0; done < n;) {
		unsigned long k = n - done < SEGMENT_EVENTS ? n - done : SEGMENT_EVENTS;

		buf_reset(&seg);
		buf_reset(&evs);
		memset(&used, 0, sizeof(used));
		c0 = bench_cpu_seconds();
		w0 = bench_wall_seconds();
		for (unsigned long i = 0; i < k; i++) {
			const struct bench_line *l = &lines[i];

			ev.ts = UINT64_C(1795341600000000000) + done + i;
			ev.message.ptr = (const uint8_t *)l->text;
			ev.message.len = l->len;
			for (int f = 0; f < NFIELDS; f++) {
				if (fields[f].type == EVENT_SLICE) {
					fields[f].v.slice.offset = l->off[f];
					fields[f].v.slice.length = l->len_[f];
				}
			}
			fields[7].v.integer = (int64_t)((done + i) % 17 ? 200 : 404);
			fields[8].v.integer = (int64_t)(600 + (done + i) % 5000);
			if (sets == 4) {
				size_t m = 0;

				for (int f = 0; f < NFIELDS; f++)
					if (!(f == 1 && (done + i) % 4 != 0) &&
					    !(f == 9 && (done + i) % 3 == 0))
						kept[m++] = fields[f];
				ev.fields = kept;
				ev.nfields = m;
			}
			if ((format == EVENT_FORMAT_1 ? event_encode(&ev, &seg) :
			    event_dict_encode(dict, &ev, &used, &evs)) != 0) {
				fprintf(stderr, "bench_codec: encode failed\n");
				return 1;
			}
			msg_bytes += l->len;
		}
		if (format != EVENT_FORMAT_1 && (event_dict_write(dict, &used, &seg) != 0 ||
		    buf_append(&seg, evs.data, evs.len) != 0)) {
			fprintf(stderr, "bench_codec: Dict failed\n");
			return 1;
		}
		enc_cpu += bench_cpu_seconds() - c0;
		enc_wall += bench_wall_seconds() - w0;
		bytes += seg.len;

		c0 = bench_cpu_seconds();
		w0 = bench_wall_seconds();
		event_reader_init(&r, seg.data, seg.len, rfields, 16);
		while (event_reader_next(&r, &got) == 1) {
			decoded++;
			check += got.message.len + got.nfields;
		}
		dec_cpu += bench_cpu_seconds() - c0;
		dec_wall += bench_wall_seconds() - w0;
		done += k;
	}
	if (decoded != n) {
		fprintf(stderr, "bench_codec: decoded %" PRIu64 " of %lu events\n", decoded, n);
		return 1;
	}
	printf("events                 %lu (NGINX combined, %d fields, string fields as slices, "
	    "event format %d, %d set%s of names)\n", n, NFIELDS, format, sets, sets > 1 ? "s" : "");
	printf("line bytes per event   %.1f\n", (double)msg_bytes / (double)n);
	printf("encoded bytes/event    %.1f (docs/performance.md: 398 with fields as copies)\n",
	    (double)bytes / (double)n);
	printf("encode  us CPU/event   %.3f (wall %.3f; docs/performance.md floor 0.10)\n",
	    enc_cpu * 1e6 / (double)n, enc_wall * 1e6 / (double)n);
	printf("decode  us CPU/event   %.3f (wall %.3f; docs/performance.md floor 0.11)\n",
	    dec_cpu * 1e6 / (double)n, dec_wall * 1e6 / (double)n);
	printf("(checksum %" PRIu64 ")\n", check);
	buf_free(&seg);
	buf_free(&evs);
	event_dict_free(dict);
	free(lines);
	return 0;
}
