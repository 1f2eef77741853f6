/* SPDX-License-Identifier: Apache-2.0 */
/* require: fields present, of a type (see require.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/require.h"

enum require_type { REQUIRE_ANY, REQUIRE_STRING, REQUIRE_INTEGER, REQUIRE_NUMBER,
	REQUIRE_BOOLEAN };

static const char *const require_type_names[] = { NULL, "string", "integer", "number",
	"boolean" };

struct require_field {
	struct pbslice name;         /* borrowed from the configuration */
	enum require_type type;
	char *missing, *wrong;       /* the reasons, owned */
};

struct require {
	const char *stream;          /* borrowed */
	size_t n;
	struct require_field f[];
};

static void
require_free(void *state)
{
	struct require *q = state;

	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n; i++) {
		free(q->f[i].missing);
		free(q->f[i].wrong);
	}
	free(q);
}

/* Stream names as source names: they become topics at the relay. */
static bool
require_stream_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static int
require_add(struct require *q, const char *name, enum require_type type)
{
	struct require_field *f = &q->f[q->n];

	f->name = processor_slice(name);
	f->type = type;
	if (asprintf(&f->missing, "missing field %s", name) < 0) {
		f->missing = NULL;
		return -ENOMEM;
	}
	q->n++;
	if (type != REQUIRE_ANY && asprintf(&f->wrong, "field %s is not %s %s", name,
	    type == REQUIRE_INTEGER ? "an" : "a", require_type_names[type]) < 0) {
		f->wrong = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int
require_type_of(const char *name, enum require_type *out)
{
	for (size_t t = 1; t < sizeof(require_type_names) / sizeof(require_type_names[0]); t++) {
		if (strcmp(name, require_type_names[t]) == 0) {
			*out = (enum require_type)t;
			return 0;
		}
	}
	return -EINVAL;
}

static int
require_compile(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	size_t n = cfg->fields.n + cfg->types.n;
	struct require *q;
	int r = 0;

	(void)ctx;
	*out = NULL;
	if (n == 0) {
		snprintf(err, errlen, "require needs fields, types or both");
		return -EINVAL;
	}
	if (cfg->dead_letter_stream[0] == '\0' || !require_stream_ok(cfg->dead_letter_stream)) {
		snprintf(err, errlen, "dead_letter_stream: '%s' may contain only letters, digits, "
		    "'.', '_' and '-'", cfg->dead_letter_stream);
		return -EINVAL;
	}
	if ((q = calloc(1, sizeof(*q) + n * sizeof(q->f[0]))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	q->stream = cfg->dead_letter_stream;
	for (size_t i = 0; r == 0 && i < cfg->fields.n; i++)
		r = require_add(q, ((char **)cfg->fields.items)[i], REQUIRE_ANY);
	for (size_t i = 0; r == 0 && i < cfg->types.n; i++) {
		const struct config_map_entry *e = &cfg->types.items[i];
		enum require_type t;

		if (require_type_of(e->value, &t) != 0) {
			snprintf(err, errlen, "types.%s: '%s' is not one of string, integer, number, "
			    "boolean", e->key, e->value);
			r = -EINVAL;
			break;
		}
		r = require_add(q, e->key, t);
	}
	if (r != 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		require_free(q);
		return r;
	}
	*out = q;
	return 0;
}

static bool
require_is(const struct event_field *f, enum require_type t)
{
	switch (t) {
	case REQUIRE_STRING:
		return f->type == EVENT_TEXT || f->type == EVENT_SLICE;
	case REQUIRE_INTEGER:
		return f->type == EVENT_INTEGER;
	case REQUIRE_NUMBER:
		return f->type == EVENT_INTEGER || f->type == EVENT_NUMBER;
	case REQUIRE_BOOLEAN:
		return f->type == EVENT_BOOLEAN;
	default:
		return true;
	}
}

static int
require_run(void *state, struct processor_event *pe)
{
	const struct require *q = state;

	for (size_t i = 0; i < q->n; i++) {
		const struct require_field *rf = &q->f[i];
		const struct event_field *f =
		    processor_event_find(pe, (const char *)rf->name.ptr, rf->name.len);
		const char *why = NULL;

		if (f == NULL || f->type == EVENT_NULL)
			why = rf->missing;
		else if (!require_is(f, rf->type))
			why = rf->wrong;
		if (why != NULL) {
			pe->reason = processor_slice(why);
			pe->dead_letter_stream = q->stream;
			return PROCESSOR_DEAD_LETTER;
		}
	}
	return PROCESSOR_PASS;
}

const struct processor_type require_processor_type = {
	.name = "require",
	.compile = require_compile,
	.run = require_run,
	.free = require_free,
};
