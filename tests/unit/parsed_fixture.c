/* SPDX-License-Identifier: Apache-2.0 */
/* parsed_fixture: see parsed_fixture.h. */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/parsed_fixture.h"

const struct event_field *
parsed_field(const struct parsed *p, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < p->nfields; i++)
		if (p->fields[i].key.len == klen && memcmp(p->fields[i].key.ptr, key, klen) == 0)
			return &p->fields[i];
	return NULL;
}

static const struct event_field *
parsed_must(const struct parsed *p, const char *key, enum event_value_type type)
{
	const struct event_field *f = parsed_field(p, key);

	if (f == NULL)
		fail_msg("no field %s", key);
	if (f->type != type)
		fail_msg("%s has type %d, not %d", key, (int)f->type, (int)type);
	return f;
}

void
assert_parsed_string(const char *line, const struct parsed *p, const char *key,
    const char *want, enum event_value_type type)
{
	const struct event_field *f = parsed_must(p, key, type);
	const uint8_t *b;
	size_t n;

	if (f->type == EVENT_SLICE) {
		b = (const uint8_t *)line + f->v.slice.offset;
		n = f->v.slice.length;
	} else {
		b = f->v.text.ptr;
		n = f->v.text.len;
	}
	if (n != strlen(want) || memcmp(b, want, n) != 0)
		fail_msg("%s is '%.*s', not '%s'", key, (int)n, (const char *)b, want);
}

void
assert_parsed_integer(const struct parsed *p, const char *key, int64_t want)
{
	assert_int_equal(parsed_must(p, key, EVENT_INTEGER)->v.integer, want);
}

void
assert_parsed_number(const struct parsed *p, const char *key, double want)
{
	double v = parsed_must(p, key, EVENT_NUMBER)->v.number;

	if (!(v > want - 1e-6 && v < want + 1e-6))
		fail_msg("%s is %.9f, not %.9f", key, v, want);
}

void
assert_parsed_json(const struct parsed *p, const char *key, const char *want)
{
	const struct event_field *f = parsed_must(p, key, EVENT_JSON);

	if (f->v.json.len != strlen(want) || memcmp(f->v.json.ptr, want, f->v.json.len) != 0)
		fail_msg("%s is '%.*s', not '%s'", key, (int)f->v.json.len,
		    (const char *)f->v.json.ptr, want);
}

void
assert_prefixes_stay_inside(const char *line, parsed_fn fn, void *ctx)
{
	size_t len = strlen(line);
	struct parsed p;

	parser_init(&p, 64 * 1024);
	for (size_t n = 0; n <= len; n++) {
		uint8_t *copy = malloc(n > 0 ? n : 1);

		assert_non_null(copy);
		memcpy(copy, line, n);
		if (fn(ctx, copy, n, &p) == 0)
			for (size_t i = 0; i < p.nfields; i++)
				if (p.fields[i].type == EVENT_SLICE)
					assert_true(p.fields[i].v.slice.offset +
					    p.fields[i].v.slice.length <= n);
		free(copy);
	}
	parser_free(&p);
}
