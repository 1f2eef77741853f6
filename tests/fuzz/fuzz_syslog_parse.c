/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the syslog parser: any bytes as one message must give fields
 * that stay inside the message (slices) or inside scratch or static
 * memory (texts), or -EINVAL with a message; and the fields must encode
 * into an event that reads back.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/parser.h"
#include "agent/syslog_parse.h"
#include "proto/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-11-25T12:00:00Z */
#define FUZZ_NOW UINT64_C(1795608000000000000)

static void
fuzz_check(const uint8_t *data, size_t size, const struct parsed *p, int r)
{
	const struct buf *s = &p->scratch;
	struct event ev = { 0 }, got;
	struct event_field gf[PARSER_MAX_FIELDS];
	struct event_reader rd;
	struct buf out;

	if (r != 0) {
		if (r != -EINVAL || p->error == NULL || p->error[0] == '\0' || p->nfields != 0)
			abort();
		return;
	}
	/* Parsed in part (a PRI and what followed it): the error says why. */
	if ((p->error != NULL && p->error[0] == '\0') || p->nfields > PARSER_MAX_FIELDS)
		abort();
	if (p->host.len > 0 && (p->host.ptr < data || p->host.len > size ||
	    (size_t)(p->host.ptr - data) > size - p->host.len))
		abort();
	for (size_t i = 0; i < p->nfields; i++) {
		const struct event_field *f = &p->fields[i];
		volatile uint8_t sink = 0;

		if (f->key.ptr == NULL || f->key.len == 0)
			abort();
		/* Read every key byte: ASan catches a key outside its memory. */
		for (size_t k = 0; k < f->key.len; k++)
			sink ^= f->key.ptr[k];
		switch (f->type) {
		case EVENT_SLICE:
			if ((size_t)f->v.slice.offset + f->v.slice.length > size)
				abort();
			break;
		case EVENT_TEXT:
			if (f->v.text.len > 0 && f->v.text.ptr == NULL)
				abort();
			if (f->key.len > 3 && memcmp(f->key.ptr, "sd.", 3) == 0) {
				/* An unescaped value: in scratch, never longer than the message. */
				if (f->v.text.ptr < s->data || f->v.text.len > s->len ||
				    (size_t)(f->v.text.ptr - s->data) > s->len - f->v.text.len ||
				    f->v.text.len > size)
					abort();
			} else if (strlen((const char *)f->v.text.ptr) != f->v.text.len) {
				/* A static name. */
				abort();
			}
			for (size_t k = 0; k < f->v.text.len; k++)
				sink ^= f->v.text.ptr[k];
			break;
		case EVENT_INTEGER:
			if (f->v.integer < 0 || f->v.integer > 23)
				abort();
			break;
		default:
			abort();
		}
		(void)sink;
	}

	ev.ts = p->ts;
	ev.host = p->host;
	ev.message = (struct pbslice){ data, size };
	ev.fields = (struct event_field *)p->fields;
	ev.nfields = p->nfields;
	buf_init(&out, 1 << 20);
	if (event_encode(&ev, &out) == 0) {
		event_reader_init(&rd, out.data, out.len, gf, PARSER_MAX_FIELDS);
		if (event_reader_next(&rd, &got) != 1 || got.nfields != p->nfields ||
		    got.ts != p->ts)
			abort();
		for (size_t i = 0; i < got.nfields; i++) {
			struct pbslice v;

			if (got.fields[i].type != EVENT_INTEGER &&
			    event_field_string(&got, &got.fields[i], &v) != 0)
				abort();
		}
	} else if (size < (1 << 19)) {
		abort();
	}
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Loaded once, kept for the process's life (a fuzzer runs until killed). */
	static struct tz *ny;
	struct parsed p, small;
	int r;

	parser_init(&p, 64 * 1024);
	parser_init(&small, 24);
	r = syslog_parse(data, size, FUZZ_NOW, NULL, &p);
	fuzz_check(data, size, &p, r);
	/* A tiny scratch: values stay raw, keys get dropped; the verdict is the same. */
	if (syslog_parse(data, size, FUZZ_NOW, NULL, &small) != r)
		abort();
	fuzz_check(data, size, &small, r);
	/* Year-less timestamps read at the epoch. */
	fuzz_check(data, size, &small, syslog_parse(data, size, 0, NULL, &small));
	/* In a zone with DST (a rule: no tzdata needed): the same verdict. */
	if (ny == NULL && tz_load("EST5EDT,M3.2.0,M11.1.0", &ny) != 0)
		abort();
	if (syslog_parse(data, size, FUZZ_NOW, ny, &small) != r)
		abort();
	fuzz_check(data, size, &small, r);
	parser_free(&small);
	parser_free(&p);
	return 0;
}
