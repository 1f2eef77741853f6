/* SPDX-License-Identifier: Apache-2.0 */
/* filter: drop and keep (see filter.h). */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/filter.h"

enum filter_op { FILTER_EQUALS, FILTER_PREFIX, FILTER_PRESENT, FILTER_ABSENT, FILTER_LT,
	FILTER_LE, FILTER_GT, FILTER_GE };

/* What a condition's field names: an event field, or a part of the event itself. */
enum filter_part { FILTER_FIELD, FILTER_MESSAGE, FILTER_STREAM, FILTER_HOST };

struct filter_cond {
	struct pbslice field;        /* borrowed from the configuration */
	enum filter_part part;
	enum filter_op op;
	struct pbslice text;         /* equals, prefix */
	double num;                  /* lt..ge; equals when is_num */
	bool is_num;
};

struct filter {
	bool keep;                   /* keep: drop what does not meet the conditions */
	size_t n;
	struct filter_cond c[];
};

/* Longest text taken as a number: longer is not one. */
#define FILTER_NUM_MAX 63

/* Whether s[0, len) is a finite number, whole, into *out. */
static bool
filter_number(const uint8_t *s, size_t len, double *out)
{
	char buf[FILTER_NUM_MAX + 1], *end;

	if (len == 0 || len > FILTER_NUM_MAX || isspace(s[0]))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	return end == buf + len && errno == 0 && isfinite(*out);
}

static int
filter_compile_one(const struct agent_condition *a, size_t i, struct filter_cond *c, char *err,
    size_t errlen)
{
	static const char *const parts[] = { NULL, "message", "stream", "host" };
	const char *const nums[] = { a->lt, a->le, a->gt, a->ge };
	static const char *const numnames[] = { "lt", "le", "gt", "ge" };
	int ops = (a->equals != NULL) + (a->prefix != NULL) + a->present + a->absent;

	for (size_t k = 0; k < 4; k++)
		ops += nums[k] != NULL;
	if (ops == 0) {
		snprintf(err, errlen, "when[%zu]: '%s' needs one of equals, prefix, present, absent, "
		    "lt, le, gt or ge", i, a->field);
		return -EINVAL;
	}
	if (ops > 1) {
		snprintf(err, errlen, "when[%zu]: '%s' has more than one of equals, prefix, present, "
		    "absent, lt, le, gt and ge: write one condition for each", i, a->field);
		return -EINVAL;
	}
	c->field = processor_slice(a->field);
	for (size_t k = 1; k < sizeof(parts) / sizeof(parts[0]); k++)
		if (strcmp(a->field, parts[k]) == 0)
			c->part = (enum filter_part)k;
	if (a->equals != NULL) {
		c->op = FILTER_EQUALS;
		c->text = processor_slice(a->equals);
		c->is_num = filter_number(c->text.ptr, c->text.len, &c->num);
	} else if (a->prefix != NULL) {
		c->op = FILTER_PREFIX;
		c->text = processor_slice(a->prefix);
	} else if (a->present || a->absent) {
		c->op = a->present ? FILTER_PRESENT : FILTER_ABSENT;
	}
	for (size_t k = 0; k < 4; k++) {
		if (nums[k] == NULL)
			continue;
		c->op = (enum filter_op)(FILTER_LT + k);
		if (!filter_number((const uint8_t *)nums[k], strlen(nums[k]), &c->num)) {
			snprintf(err, errlen, "when[%zu].%s: '%s' is not a number", i, numnames[k],
			    nums[k]);
			return -EINVAL;
		}
	}
	return 0;
}

static int
filter_compile(const struct agent_processor *cfg, bool keep, void **out, char *err,
    size_t errlen)
{
	const struct agent_condition *conds = cfg->when.items;
	struct filter *f;
	int r;

	*out = NULL;
	if ((f = calloc(1, sizeof(*f) + cfg->when.n * sizeof(f->c[0]))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->keep = keep;
	f->n = cfg->when.n;
	for (size_t i = 0; i < f->n; i++) {
		if ((r = filter_compile_one(&conds[i], i, &f->c[i], err, errlen)) != 0) {
			free(f);
			return r;
		}
	}
	*out = f;
	return 0;
}

static int
filter_compile_drop(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	(void)ctx;
	return filter_compile(cfg, false, out, err, errlen);
}

static int
filter_compile_keep(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	(void)ctx;
	return filter_compile(cfg, true, out, err, errlen);
}

static void
filter_free(void *state)
{
	free(state);
}

static bool
filter_compare(enum filter_op op, double v, double ref)
{
	switch (op) {
	case FILTER_LT:
		return v < ref;
	case FILTER_LE:
		return v <= ref;
	case FILTER_GT:
		return v > ref;
	case FILTER_GE:
		return v >= ref;
	default:
		return v == ref;
	}
}

/* Whether pe meets c. */
static bool
filter_meets(const struct filter_cond *c, struct processor_event *pe)
{
	const struct event_field *f = NULL;
	struct pbslice s;
	char buf[32];
	double v;

	switch (c->part) {
	case FILTER_MESSAGE:
		s = pe->ev.message;
		break;
	case FILTER_STREAM:
		s = pe->ev.stream;
		break;
	case FILTER_HOST:
		s = pe->ev.host;
		break;
	default:
		f = processor_event_find(pe, (const char *)c->field.ptr, c->field.len);
		if (c->op == FILTER_PRESENT || c->op == FILTER_ABSENT)
			return (f != NULL) == (c->op == FILTER_PRESENT);
		if (f == NULL)
			return false;
		if (f->type == EVENT_INTEGER || f->type == EVENT_NUMBER) {
			v = f->type == EVENT_INTEGER ? (double)f->v.integer : f->v.number;
			if (c->op != FILTER_PREFIX && (c->op != FILTER_EQUALS || c->is_num))
				return filter_compare(c->op, v, c->num);
		}
		if (processor_event_text(pe, f, buf, sizeof(buf), &s) != 0)
			return false;
		break;
	}
	switch (c->op) {
	case FILTER_PRESENT:
		return true;
	case FILTER_ABSENT:
		return false;
	case FILTER_EQUALS:
		return s.len == c->text.len && memcmp(s.ptr, c->text.ptr, s.len) == 0;
	case FILTER_PREFIX:
		return s.len >= c->text.len && memcmp(s.ptr, c->text.ptr, c->text.len) == 0;
	default:
		return filter_number(s.ptr, s.len, &v) && filter_compare(c->op, v, c->num);
	}
}

static int
filter_run(void *state, struct processor_event *pe)
{
	const struct filter *f = state;
	bool all = true;

	for (size_t i = 0; all && i < f->n; i++)
		all = filter_meets(&f->c[i], pe);
	return all != f->keep ? PROCESSOR_DROP_EVENT : PROCESSOR_PASS;
}

const struct processor_type filter_drop_processor_type = {
	.name = "drop",
	.compile = filter_compile_drop,
	.run = filter_run,
	.free = filter_free,
};

const struct processor_type filter_keep_processor_type = {
	.name = "keep",
	.compile = filter_compile_keep,
	.run = filter_run,
	.free = filter_free,
};
