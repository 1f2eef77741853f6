/* SPDX-License-Identifier: Apache-2.0 */
/* add_fields: static fields and host metadata (see add_fields.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/add_fields.h"
#include "common/buf.h"

/* A value's longest expansion: static fields are short; a bound keeps a typo from being huge. */
#define ADD_FIELDS_VALUE_MAX (64 * 1024)

struct add_fields {
	size_t n;
	struct pbslice *keys;        /* borrowed from the configuration, which outlives the stage */
	struct event_field *values;  /* TEXT, owned (expanded) */
};

static void
add_fields_free(void *state)
{
	struct add_fields *a = state;

	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		free((void *)a->values[i].v.text.ptr);
	free(a->keys);
	free(a->values);
	free(a);
}

/* The value of ${name[0, len)}, or NULL for a name add_fields does not know. */
static const char *
add_fields_variable(const struct processor_context *ctx, const char *name, size_t len)
{
	static const char *const names[] = { "host", "agent_id", "source" };
	const char *values[] = { ctx->host, ctx->agent_id, ctx->source };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return values[i] != NULL ? values[i] : "";
	return NULL;
}

/* value with its ${...} replaced, into *out (owned). */
static int
add_fields_expand(const struct processor_context *ctx, const char *key, const char *value,
    char **out, char *err, size_t errlen)
{
	struct buf b;
	const char *p = value, *open, *close, *v;
	int r = 0;

	buf_init(&b, ADD_FIELDS_VALUE_MAX);
	while (r == 0 && (open = strstr(p, "${")) != NULL) {
		if ((close = strchr(open + 2, '}')) == NULL) {
			snprintf(err, errlen, "values.%s: '%s' has a ${ without its }", key, value);
			r = -EINVAL;
			break;
		}
		if ((v = add_fields_variable(ctx, open + 2, (size_t)(close - open - 2))) == NULL) {
			snprintf(err, errlen, "values.%s: '%.*s' is not one of ${host}, ${agent_id} "
			    "or ${source}", key, (int)(close - open + 1), open);
			r = -EINVAL;
			break;
		}
		if ((r = buf_append(&b, p, (size_t)(open - p))) == 0)
			r = buf_append(&b, v, strlen(v));
		p = close + 1;
	}
	if (r == 0 && (r = buf_append(&b, p, strlen(p) + 1)) == 0) {
		*out = (char *)b.data;
		return 0;
	}
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	else if (r == -EMSGSIZE)
		snprintf(err, errlen, "values.%s: longer than %d bytes once expanded", key,
		    ADD_FIELDS_VALUE_MAX);
	buf_free(&b);
	return r;
}

static int
add_fields_compile(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	const struct config_map *m = &cfg->values;
	struct add_fields *a;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->keys = calloc(m->n ? m->n : 1, sizeof(*a->keys))) == NULL ||
	    (a->values = calloc(m->n ? m->n : 1, sizeof(*a->values))) == NULL) {
		add_fields_free(a);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (; a->n < m->n; a->n++) {
		char *v;

		if ((r = add_fields_expand(ctx, m->items[a->n].key, m->items[a->n].value, &v, err,
		    errlen)) != 0) {
			add_fields_free(a);
			return r;
		}
		a->keys[a->n] = processor_slice(m->items[a->n].key);
		a->values[a->n].type = EVENT_TEXT;
		a->values[a->n].v.text = processor_slice(v);
	}
	*out = a;
	return 0;
}

static int
add_fields_run(void *state, struct processor_event *pe)
{
	const struct add_fields *a = state;
	int r;

	for (size_t i = 0; i < a->n; i++)
		if ((r = processor_event_set(pe, a->keys[i], &a->values[i])) != 0)
			return r;
	return PROCESSOR_PASS;
}

const struct processor_type add_fields_processor_type = {
	.name = "add_fields",
	.compile = add_fields_compile,
	.run = add_fields_run,
	.free = add_fields_free,
};
