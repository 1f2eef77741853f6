/* SPDX-License-Identifier: Apache-2.0 */
/* processor: the helpers every processing stage uses on its event (see processor.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/processor.h"

struct pbslice
processor_slice(const char *s)
{
	return (struct pbslice){ (const uint8_t *)s, strlen(s) };
}

static bool
processor_key_is(const struct event_field *f, const char *name, size_t len)
{
	return f->key.len == len && memcmp(f->key.ptr, name, len) == 0;
}

struct event_field *
processor_event_find(struct processor_event *pe, const char *name, size_t len)
{
	for (size_t i = 0; i < pe->ev.nfields; i++)
		if (processor_key_is(&pe->ev.fields[i], name, len))
			return &pe->ev.fields[i];
	return NULL;
}

int
processor_event_text(const struct processor_event *pe, const struct event_field *f,
    char *buf, size_t bufsize, struct pbslice *out)
{
	int n;

	switch (f->type) {
	case EVENT_TEXT:
	case EVENT_SLICE:
		return event_field_string(&pe->ev, f, out);
	case EVENT_INTEGER:
		n = snprintf(buf, bufsize, "%" PRId64, f->v.integer);
		break;
	case EVENT_NUMBER:
		n = snprintf(buf, bufsize, "%.17g", f->v.number);
		break;
	case EVENT_BOOLEAN:
		n = snprintf(buf, bufsize, "%s", f->v.boolean ? "true" : "false");
		break;
	default:
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= bufsize)
		return -ENOSPC;
	*out = (struct pbslice){ (const uint8_t *)buf, (size_t)n };
	return 0;
}

int
processor_event_set(struct processor_event *pe, struct pbslice key, const struct event_field *v)
{
	struct event_field *f = processor_event_find(pe, (const char *)key.ptr, key.len);
	struct event_field *fl = pe->ev.fields;
	size_t at;

	if (f == NULL) {
		if (pe->ev.nfields >= pe->max_fields)
			return -ENOSPC;
		/* Before the marks, which stay last for the door's too-large fallback. */
		at = pe->ev.nfields - pe->nmarks;
		memmove(&fl[at + 1], &fl[at], pe->nmarks * sizeof(fl[0]));
		pe->ev.nfields++;
		f = &fl[at];
	}
	*f = *v;
	f->key = key;
	return 0;
}

int
processor_event_alloc(struct processor_event *pe, size_t n, uint8_t **out)
{
	if (n > pe->arena_cap - pe->arena_used)
		return -ENOSPC;
	*out = pe->arena + pe->arena_used;
	pe->arena_used += n;
	return 0;
}

int
processor_event_set_text(struct processor_event *pe, struct pbslice key, const uint8_t *text,
    size_t len)
{
	struct event_field v = { .type = EVENT_TEXT };
	uint8_t *p = NULL;
	int r;

	if ((r = processor_event_alloc(pe, len, &p)) != 0)
		return r;
	if (len > 0)
		memcpy(p, text, len);
	v.v.text = (struct pbslice){ p, len };
	if ((r = processor_event_set(pe, key, &v)) != 0)
		pe->arena_used -= len;
	return r;
}

size_t
processor_event_remove(struct processor_event *pe, const char *name, size_t len)
{
	struct event_field *fl = pe->ev.fields;
	size_t w = 0, gone = 0, n = pe->ev.nfields;

	for (size_t i = 0; i < n; i++) {
		if (processor_key_is(&fl[i], name, len)) {
			/* A mark removed is one mark less: the rest keep their place at the end. */
			if (i >= n - pe->nmarks)
				gone++;
			continue;
		}
		fl[w++] = fl[i];
	}
	pe->nmarks -= gone;
	pe->ev.nfields = w;
	return n - w;
}

int
processor_event_unslice(struct processor_event *pe)
{
	for (size_t i = 0; i < pe->ev.nfields; i++) {
		struct event_field *f = &pe->ev.fields[i];
		struct pbslice s;
		uint8_t *p = NULL;
		int r;

		if (f->type != EVENT_SLICE)
			continue;
		if ((r = event_field_string(&pe->ev, f, &s)) != 0 ||
		    (r = processor_event_alloc(pe, s.len, &p)) != 0)
			return r;
		if (s.len > 0)
			memcpy(p, s.ptr, s.len);
		f->type = EVENT_TEXT;
		f->v.text = (struct pbslice){ p, s.len };
	}
	return 0;
}

int
processor_event_set_message(struct processor_event *pe, const uint8_t *msg, size_t len)
{
	int r;

	if ((r = processor_event_unslice(pe)) != 0)
		return r;
	pe->ev.message = (struct pbslice){ msg, len };
	return 0;
}
