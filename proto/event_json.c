/* SPDX-License-Identifier: Apache-2.0 */
/* event_json: an event as a JSON record (see event_json.h). */
#include "autoconfig.h"

#include <errno.h>

#include "common/jsonw.h"
#include "proto/event_json.h"

static int
event_json_field(const struct event *ev, const struct event_field *f, struct buf *out)
{
	struct pbslice s;

	switch (f->type) {
	case EVENT_TEXT:
	case EVENT_SLICE:
		if (event_field_string(ev, f, &s) != 0)
			return jsonw_raw(out, "null");
		return jsonw_string(out, s.ptr, s.len);
	case EVENT_INTEGER:
		return jsonw_int(out, f->v.integer);
	case EVENT_NUMBER:
		return jsonw_double(out, f->v.number);
	case EVENT_BOOLEAN:
		return jsonw_raw(out, f->v.boolean ? "true" : "false");
	case EVENT_JSON:
		/* JSON text written by the agent's parser; kept as a string if it is not one. */
		if (f->v.json.len == 0)
			return jsonw_raw(out, "null");
		if (f->v.json.ptr[0] == '{' || f->v.json.ptr[0] == '[')
			return buf_append(out, f->v.json.ptr, f->v.json.len);
		return jsonw_string(out, f->v.json.ptr, f->v.json.len);
	default:
		return jsonw_raw(out, "null");
	}
}

int
event_json(const struct event *ev, const char *agent, const char *extra, struct buf *out)
{
	size_t start = out->len;
	int r = 0;

	r |= jsonw_raw(out, "{\"ts\":");
	r |= jsonw_time(out, ev->ts);
	r |= jsonw_raw(out, ",\"host\":");
	r |= jsonw_string(out, ev->host.ptr, ev->host.len);
	if (agent != NULL) {
		r |= jsonw_raw(out, ",\"agent\":");
		r |= jsonw_cstring(out, agent);
	}
	if (extra != NULL) {
		r |= jsonw_raw(out, ",");
		r |= jsonw_raw(out, extra);
	}
	r |= jsonw_raw(out, ",\"stream\":");
	r |= jsonw_string(out, ev->stream.ptr, ev->stream.len);
	r |= jsonw_raw(out, ",\"source\":");
	r |= jsonw_string(out, ev->source.ptr, ev->source.len);
	r |= jsonw_raw(out, ",\"message\":");
	r |= jsonw_string(out, ev->message.ptr, ev->message.len);
	r |= jsonw_raw(out, ",\"fields\":{");
	for (size_t i = 0; i < ev->nfields && r == 0; i++) {
		if (i > 0)
			r |= jsonw_raw(out, ",");
		r |= jsonw_string(out, ev->fields[i].key.ptr, ev->fields[i].key.len);
		r |= jsonw_raw(out, ":");
		r |= event_json_field(ev, &ev->fields[i], out);
	}
	r |= jsonw_raw(out, "}}");
	if (r != 0) {
		out->len = start;
		return -EMSGSIZE;
	}
	return 0;
}
