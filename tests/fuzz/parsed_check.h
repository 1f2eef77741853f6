/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parsed_check: the checks the NGINX harnesses (fuzz_nginx_format,
 * fuzz_nginx_error) make on a parse of line[0, size): a failure is -EINVAL
 * with a message and nothing else; a success has named fields of known
 * types, slices inside the line, text and JSON inside scratch, and
 * encodes as an event whose slices resolve. Aborts otherwise.
 */
#ifndef LOGFERRY_PARSED_CHECK_H
#define LOGFERRY_PARSED_CHECK_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/parser.h"
#include "proto/event.h"

static void
fuzz_check_parsed(const uint8_t *line, size_t size, const struct parsed *p, int rc)
{
	const uint8_t *s0 = p->scratch.data;
	size_t slen = p->scratch.len;
	struct event ev = { 0 };
	struct buf out;

	if (rc != 0) {
		if (rc != -EINVAL || p->error == NULL || p->error[0] == '\0' || p->nfields != 0 ||
		    p->ts != 0)
			abort();
		return;
	}
	if (p->nfields > PARSER_MAX_FIELDS)
		abort();
	for (size_t i = 0; i < p->nfields; i++) {
		const struct event_field *f = &p->fields[i];

		if (f->key.ptr == NULL || f->key.len == 0)
			abort();
		switch (f->type) {
		case EVENT_SLICE:
			if (f->v.slice.offset > size || f->v.slice.length > size - f->v.slice.offset)
				abort();
			break;
		case EVENT_TEXT:
		case EVENT_JSON:
			if (f->v.text.len > 0 &&
			    (s0 == NULL || f->v.text.ptr < s0 || (size_t)(f->v.text.ptr - s0) > slen ||
			    f->v.text.len > slen - (size_t)(f->v.text.ptr - s0)))
				abort();
			break;
		case EVENT_INTEGER:
		case EVENT_NUMBER:
			break;
		default:
			abort();
		}
	}
	ev.ts = p->ts;
	ev.message.ptr = line;
	ev.message.len = size;
	ev.fields = (struct event_field *)p->fields;
	ev.nfields = p->nfields;
	buf_init(&out, 1 << 24);
	if (event_encode(&ev, &out) != 0)
		abort();
	for (size_t i = 0; i < p->nfields; i++) {
		struct pbslice s;

		if (p->fields[i].type == EVENT_SLICE &&
		    (event_field_string(&ev, &p->fields[i], &s) != 0 ||
		    (s.len > 0 && (s.ptr < line || s.ptr + s.len > line + size))))
			abort();
	}
	buf_free(&out);
}

#endif
