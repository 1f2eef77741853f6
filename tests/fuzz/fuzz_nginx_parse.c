/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the NGINX combined parser: any bytes give fields or -EINVAL with a
 * message. Every field must be a known kind, every slice must lie inside
 * the line, and a parsed line must encode as an event whose slices resolve.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nginx_parse.h"
#include "common/parser.h"
#include "proto/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A parser that parsed the part before the first newline (its time memo
 * holds that line's time) gives the rest what a new parser gives.
 */
static void
fuzz_reused_parser(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct parsed fresh, reused;
	size_t rest;
	int a, b;

	if (nl == NULL)
		return;
	rest = size - (size_t)(nl + 1 - data);
	parser_init(&fresh, 0);
	parser_init(&reused, 0);
	(void)nginx_parse(data, (size_t)(nl - data), &reused);
	a = nginx_parse(nl + 1, rest, &fresh);
	b = nginx_parse(nl + 1, rest, &reused);
	if (a != b || fresh.ts != reused.ts || fresh.nfields != reused.nfields)
		abort();
	parser_free(&fresh);
	parser_free(&reused);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event ev = { 0 };
	struct parsed p;
	struct buf out;
	int rc;

	fuzz_reused_parser(data, size);
	parser_init(&p, 0);
	rc = nginx_parse(data, size, &p);
	if (rc != 0) {
		if (rc != -EINVAL || p.error == NULL || p.error[0] == '\0' || p.nfields != 0)
			abort();
		parser_free(&p);
		return 0;
	}
	if (p.error != NULL || p.nfields < 5 || p.nfields > 11 || p.scratch.len != 0)
		abort();
	for (size_t i = 0; i < p.nfields; i++) {
		const struct event_field *f = &p.fields[i];

		if (f->key.ptr == NULL || f->key.len == 0)
			abort();
		if (f->type == EVENT_SLICE) {
			if (f->v.slice.offset > size || f->v.slice.length > size - f->v.slice.offset)
				abort();
		} else if (f->type != EVENT_INTEGER || f->v.integer < 0) {
			abort();
		}
	}
	ev.ts = p.ts;
	ev.message.ptr = data;
	ev.message.len = size;
	ev.fields = p.fields;
	ev.nfields = p.nfields;
	buf_init(&out, 1 << 24);
	if (event_encode(&ev, &out) != 0)
		abort();
	for (size_t i = 0; i < p.nfields; i++) {
		struct pbslice s;

		if (p.fields[i].type == EVENT_SLICE &&
		    (event_field_string(&ev, &p.fields[i], &s) != 0 ||
		    (s.len > 0 && (s.ptr < data || s.ptr + s.len > data + size))))
			abort();
	}
	buf_free(&out);
	parser_free(&p);
	return 0;
}
