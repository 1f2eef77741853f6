/* SPDX-License-Identifier: Apache-2.0 */
/* route: routing templates compiled once, rendered per event (see route.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/route.h"

enum route_op_type {
	ROUTE_LITERAL,
	ROUTE_STREAM,
	ROUTE_HOST,
	ROUTE_SOURCE,
	ROUTE_AGENT,
	ROUTE_FIELD,
};

/* One step of the program: literal text or a variable (a field's name). */
struct route_op {
	enum route_op_type type;
	const char *text;        /* LITERAL: the text; FIELD: the name */
	size_t len;
};

struct route {
	enum route_kind kind;
	size_t nops;
	struct route_op *ops;    /* in the same allocation, then the text */
};

static const struct {
	const char *name;
	enum route_op_type type;
} route_vars[] = {
	{ "stream", ROUTE_STREAM },
	{ "host", ROUTE_HOST },
	{ "agent", ROUTE_AGENT },
	{ "source", ROUTE_SOURCE },
};

#define ROUTE_FIELDS_PREFIX "fields."
#define ROUTE_FIELDS_PREFIX_LEN (sizeof(ROUTE_FIELDS_PREFIX) - 1)

/*
 * One pass over tmpl: with ops NULL it only checks and counts, otherwise it
 * fills ops (pointing into text, a copy of tmpl). The words of the errors
 * are relay_config_check_template's, so --check and the relay agree.
 */
static int
route_parse(const char *tmpl, const char *text, struct route_op *ops, size_t *nops,
    char *why, size_t whylen)
{
	const char *p = tmpl, *dollar;
	size_t n = 0;

#define ROUTE_EMIT(t, s, l) do {					\
		if (ops != NULL) {					\
			ops[n].type = (t);				\
			ops[n].text = text + ((s) - tmpl);		\
			ops[n].len = (l);				\
		}							\
		n++;							\
	} while (0)

	while ((dollar = strchr(p, '$')) != NULL) {
		const char *name = dollar + 2, *end;
		size_t len, i;

		if (dollar > p)
			ROUTE_EMIT(ROUTE_LITERAL, p, (size_t)(dollar - p));
		if (dollar[1] != '{') {
			snprintf(why, whylen, "'$' must start a variable such as ${stream}");
			return -EINVAL;
		}
		if ((end = strchr(name, '}')) == NULL) {
			snprintf(why, whylen, "'%s' is not closed with '}'", dollar);
			return -EINVAL;
		}
		len = (size_t)(end - name);
		for (i = 0; i < sizeof(route_vars) / sizeof(route_vars[0]); i++)
			if (strlen(route_vars[i].name) == len &&
			    memcmp(route_vars[i].name, name, len) == 0)
				break;
		if (i < sizeof(route_vars) / sizeof(route_vars[0])) {
			ROUTE_EMIT(route_vars[i].type, name, len);
		} else if (len > ROUTE_FIELDS_PREFIX_LEN &&
		    memcmp(name, ROUTE_FIELDS_PREFIX, ROUTE_FIELDS_PREFIX_LEN) == 0) {
			ROUTE_EMIT(ROUTE_FIELD, name + ROUTE_FIELDS_PREFIX_LEN,
			    len - ROUTE_FIELDS_PREFIX_LEN);
		} else {
			snprintf(why, whylen, "unknown variable ${%.*s}: use ${stream}, ${host}, "
			    "${agent}, ${source} or ${fields.NAME}", (int)len, name);
			return -EINVAL;
		}
		p = end + 1;
	}
	if (*p != '\0')
		ROUTE_EMIT(ROUTE_LITERAL, p, strlen(p));
#undef ROUTE_EMIT
	*nops = n;
	return 0;
}

int
route_compile(const char *tmpl, enum route_kind kind, struct route **out,
    char *why, size_t whylen)
{
	size_t nops, tlen = strlen(tmpl);
	struct route *rt;
	char *text;
	int r;

	if ((r = route_parse(tmpl, NULL, NULL, &nops, why, whylen)) != 0)
		return r;
	if ((rt = malloc(sizeof(*rt) + nops * sizeof(rt->ops[0]) + tlen + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rt->kind = kind;
	rt->ops = (struct route_op *)(rt + 1);
	text = (char *)(rt->ops + nops);
	memcpy(text, tmpl, tlen + 1);
	if ((r = route_parse(text, text, rt->ops, &rt->nops, why, whylen)) != 0) {
		free(rt);
		return r;
	}
	*out = rt;
	return 0;
}

void
route_free(struct route *rt)
{
	free(rt);
}

bool
route_is_empty(const struct route *rt)
{
	return rt->nops == 0;
}

/* ---------------------------------------------------------------- render */

/* The caller's buffer being filled; over is set when something did not fit. */
struct route_out {
	char *p;
	size_t n, limit;
	bool topic, over;
};

static bool
route_topic_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '_' || c == '-';
}

static void
route_put(struct route_out *o, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t room = o->limit - o->n;

	if (len > room) {
		o->over = true;
		len = room;
	}
	if (!o->topic) {
		if (len > 0)
			memcpy(o->p + o->n, s, len);
	} else {
		for (size_t i = 0; i < len; i++)
			o->p[o->n + i] = route_topic_char(s[i]) ? (char)s[i] : '_';
	}
	o->n += len;
}

static void
route_put_slice(struct route_out *o, const struct pbslice *s)
{
	route_put(o, s->ptr, s->len);
}

/* The shortest of %.15g..%.17g that reads back as v (as jsonw_double). */
static void
route_put_number(struct route_out *o, double v)
{
	char t[40];
	int n = 0;

	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(t, sizeof(t), "%.*g", prec, v);
		if (v != v || strtod(t, NULL) == v)
			break;
	}
	route_put(o, t, (size_t)n);
}

static void
route_put_field(struct route_out *o, const struct event *ev, const struct route_op *op)
{
	const struct event_field *f = NULL;
	struct pbslice s;
	char t[24];
	int n;

	for (size_t i = 0; i < ev->nfields; i++) {
		if (ev->fields[i].key.len == op->len &&
		    memcmp(ev->fields[i].key.ptr, op->text, op->len) == 0) {
			f = &ev->fields[i];
			break;
		}
	}
	if (f == NULL)
		return;
	switch (f->type) {
	case EVENT_TEXT:
	case EVENT_SLICE:
		/* A slice outside the message is the agent's bug: nothing, as for null. */
		if (event_field_string(ev, f, &s) == 0)
			route_put_slice(o, &s);
		break;
	case EVENT_INTEGER:
		n = snprintf(t, sizeof(t), "%" PRId64, f->v.integer);
		route_put(o, t, (size_t)n);
		break;
	case EVENT_NUMBER:
		route_put_number(o, f->v.number);
		break;
	case EVENT_BOOLEAN:
		route_put(o, f->v.boolean ? "true" : "false", f->v.boolean ? 4 : 5);
		break;
	case EVENT_JSON:
		route_put_slice(o, &f->v.json);
		break;
	case EVENT_NULL:
		break;
	}
}

int
route_render(const struct route *rt, const struct event *ev, const char *agent,
    char *buf, size_t size, size_t *len)
{
	struct route_out o = { .p = buf, .limit = size - 1, .topic = rt->kind == ROUTE_TOPIC };
	bool cut_at_kafka_limit = false;

	if (o.topic && o.limit > ROUTE_TOPIC_MAX) {
		o.limit = ROUTE_TOPIC_MAX;
		cut_at_kafka_limit = true;
	}
	for (size_t i = 0; i < rt->nops; i++) {
		const struct route_op *op = &rt->ops[i];

		switch (op->type) {
		case ROUTE_LITERAL: route_put(&o, op->text, op->len); break;
		case ROUTE_STREAM: route_put_slice(&o, &ev->stream); break;
		case ROUTE_HOST: route_put_slice(&o, &ev->host); break;
		case ROUTE_SOURCE: route_put_slice(&o, &ev->source); break;
		case ROUTE_AGENT:
			if (agent != NULL)
				route_put(&o, agent, strlen(agent));
			break;
		case ROUTE_FIELD: route_put_field(&o, ev, op); break;
		}
	}
	/* Kafka refuses "", "." and "..": such events go to the fallback topic. */
	if (o.topic && (o.n == 0 || (o.n == 1 && buf[0] == '.') ||
	    (o.n == 2 && buf[0] == '.' && buf[1] == '.'))) {
		o.n = 0;
		o.over = false;
		route_put(&o, ROUTE_UNROUTED_TOPIC, sizeof(ROUTE_UNROUTED_TOPIC) - 1);
	}
	buf[o.n] = '\0';
	*len = o.n;
	return o.over && !cut_at_kafka_limit ? -ENOBUFS : 0;
}
