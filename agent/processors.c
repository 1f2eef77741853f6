/* SPDX-License-Identifier: Apache-2.0 */
/* processors: the table of stage types and a source's chain (see processors.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/add_fields.h"
#include "agent/field_edit.h"
#include "agent/filter.h"
#include "agent/processors.h"
#include "agent/redact.h"
#include "agent/require.h"
#include "common/log.h"

/* One line per type, in the order of enum agent_processor_type. */
const struct processor_type *const processor_types[] = {
	[PROCESSOR_ADD_FIELDS] = &add_fields_processor_type,
	[PROCESSOR_DROP] = &filter_drop_processor_type,
	[PROCESSOR_KEEP] = &filter_keep_processor_type,
	[PROCESSOR_RENAME] = &field_edit_rename_type,
	[PROCESSOR_REMOVE] = &field_edit_remove_type,
	[PROCESSOR_REQUIRE] = &require_processor_type,
	[PROCESSOR_REDACT] = &redact_processor_type,
};

const size_t processor_types_n = sizeof(processor_types) / sizeof(processor_types[0]);

const char *const processor_names[] = {
	"add_fields",
	"drop",
	"keep",
	"rename",
	"remove",
	"require",
	"redact",
	NULL,
};

#define PF(name, member, help) \
	{ "logferry_processor_" name, "counter", help, offsetof(struct processors_stats, member) }
const struct metrics_field processors_fields[] = {
	PF("events_passed_total", passed,
	    "Events a stage let go on (labelled source and processor, the stage's type)."),
	PF("events_dropped_total", dropped, "Events a stage dropped (drop, keep)."),
	PF("events_dead_lettered_total", dead_lettered,
	    "Events a stage sent to the dead-letter stream (require)."),
	PF("errors_total", errors,
	    "Events a stage could not process (processor_buffer or the fields full): not spooled."),
};
const size_t processors_nfields = sizeof(processors_fields) / sizeof(processors_fields[0]);

struct processors_stage {
	const struct processor_type *type;
	int t;                       /* enum agent_processor_type */
	void *state;
	struct processors_stats stats;
	struct processors_stats run; /* the last run's, until processors_count */
	/* The type's own counters, stats_size bytes each: counted, and the last run's. */
	uint64_t *own, *own_run;
};

struct processors {
	struct processors_stage *stages;
	size_t n;
	const char *source;          /* for log lines: the context's, which outlives the chain */
	struct processor_event pe;   /* the scratch: fields and arena, reused */
};

void
processors_free(struct processors *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		c->stages[i].type->free(c->stages[i].state);
		free(c->stages[i].own);
	}
	free(c->stages);
	free(c->pe.ev.fields);
	free(c->pe.arena);
	free(c);
}

int
processors_compile(const struct config_list *const *lists, size_t nlists,
    const struct processor_context *ctx, size_t arena_bytes, struct processors **out,
    struct processors_error *e)
{
	struct processors *c;
	size_t total = 0;
	int r;

	*out = NULL;
	memset(e, 0, sizeof(*e));
	for (size_t l = 0; l < nlists; l++)
		total += lists[l] != NULL ? lists[l]->n : 0;
	if (total == 0)
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->stages = calloc(total, sizeof(*c->stages))) == NULL ||
	    (c->pe.arena = malloc(arena_bytes)) == NULL) {
		r = -ENOMEM;
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		goto fail;
	}
	c->source = ctx->source;
	c->pe.arena_cap = arena_bytes;
	for (size_t l = 0; l < nlists; l++) {
		for (size_t i = 0; lists[l] != NULL && i < lists[l]->n; i++) {
			const struct agent_processor *cfg =
			    (const struct agent_processor *)lists[l]->items + i;
			struct processors_stage *s = &c->stages[c->n];

			s->t = cfg->type;
			s->type = processor_types[cfg->type];
			if ((r = s->type->compile(cfg, ctx, &s->state, e->msg, sizeof(e->msg))) != 0) {
				e->list = l;
				e->index = i;
				if (e->msg[0] == '\0')
					snprintf(e->msg, sizeof(e->msg), "%s: %s", s->type->name,
					    strerror(-r));
				goto fail;
			}
			c->n++;
			if (s->type->stats_size > 0 &&
			    (s->own = calloc(2, s->type->stats_size)) == NULL) {
				r = -ENOMEM;
				snprintf(e->msg, sizeof(e->msg), "out of memory");
				goto fail;
			}
			if (s->own != NULL)
				s->own_run = s->own + s->type->stats_size / sizeof(uint64_t);
		}
	}
	/*
	 * Every stage may add a few fields (add_fields its values, require its
	 * two): bounded by the configuration, so sized here once.
	 */
	c->pe.max_fields = PROCESSORS_MAX_INPUT_FIELDS + 2;
	for (size_t l = 0; l < nlists; l++)
		for (size_t i = 0; lists[l] != NULL && i < lists[l]->n; i++)
			c->pe.max_fields += ((const struct agent_processor *)lists[l]->items)[i].values.n;
	if ((c->pe.ev.fields = calloc(c->pe.max_fields, sizeof(*c->pe.ev.fields))) == NULL) {
		r = -ENOMEM;
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	processors_free(c);
	return r;
}

/* The event becomes a dead letter: re-streamed, with why and where it was going. */
static int
processors_dead_letter(struct processor_event *pe)
{
	struct event_field f = { .type = EVENT_TEXT };
	int r;

	f.v.text = pe->ev.stream;
	if ((r = processor_event_set(pe, processor_slice(PROCESSORS_STREAM_FIELD), &f)) != 0)
		return r;
	f.v.text = pe->reason;
	if ((r = processor_event_set(pe, processor_slice(PROCESSORS_ERROR_FIELD), &f)) != 0)
		return r;
	pe->ev.stream = processor_slice(pe->dead_letter_stream);
	pe->dead_lettered = true;
	return 0;
}

/* The last run's counts, not to be counted: the event is run again, or another comes. */
static void
processors_forget(struct processors *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct processors_stage *s = &c->stages[i];

		memset(&s->run, 0, sizeof(s->run));
		if (s->own_run != NULL)
			memset(s->own_run, 0, s->type->stats_size);
	}
}

static void
processors_stats_add(struct processors_stats *to, const struct processors_stats *st)
{
	to->passed += st->passed;
	to->dropped += st->dropped;
	to->dead_lettered += st->dead_lettered;
	to->errors += st->errors;
}

int
processors_run(struct processors *c, const struct event *in, size_t nmarks,
    const struct event **out, size_t *out_nmarks)
{
	struct processor_event *pe = &c->pe;
	struct event_field *fields = pe->ev.fields;

	processors_forget(c);
	/* Room is kept for what the stages add: an event with more fields is an error of the first. */
	if (in->nfields > PROCESSORS_MAX_INPUT_FIELDS) {
		c->stages[0].run.errors++;
		log_error("source %s: an event with %zu fields is more than processors take (%d): "
		    "not spooled; have the source make fewer fields", c->source, in->nfields,
		    PROCESSORS_MAX_INPUT_FIELDS);
		return -E2BIG;
	}
	pe->ev = *in;
	pe->ev.fields = fields;
	if (in->nfields > 0)
		memcpy(fields, in->fields, in->nfields * sizeof(fields[0]));
	pe->nmarks = nmarks <= in->nfields ? nmarks : in->nfields;
	pe->arena_used = 0;
	pe->dead_lettered = false;
	for (size_t i = 0; i < c->n; i++) {
		struct processors_stage *s = &c->stages[i];
		int r;

		pe->reason = (struct pbslice){ NULL, 0 };
		pe->counts = s->own_run;
		r = s->type->run(s->state, pe);
		/* A dead letter goes on whole: no later stage drops it or judges it again. */
		if (pe->dead_lettered && (r == PROCESSOR_DROP_EVENT || r == PROCESSOR_DEAD_LETTER))
			r = PROCESSOR_PASS;
		if (r == PROCESSOR_DEAD_LETTER && (r = processors_dead_letter(pe)) == 0) {
			s->run.dead_lettered++;
			continue;
		}
		if (r < 0) {
			s->run.errors++;
			log_error("source %s: processor %zu (%s) failed on an event: %s; the event is "
			    "not spooled%s", c->source, i, s->type->name, strerror(-r),
			    r == -ENOSPC ? " (raise processor_buffer if it needs more room)" : "");
			return r;
		}
		if (r == PROCESSOR_DROP_EVENT) {
			s->run.dropped++;
			return PROCESSORS_DROP;
		}
		s->run.passed++;
	}
	*out = &pe->ev;
	*out_nmarks = pe->nmarks;
	return PROCESSORS_KEEP;
}

void
processors_count(struct processors *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct processors_stage *s = &c->stages[i];

		processors_stats_add(&s->stats, &s->run);
		for (size_t k = 0; k < s->type->stats_size / sizeof(uint64_t); k++)
			s->own[k] += s->own_run[k];
	}
	processors_forget(c);
}

void
processors_get_stats(const struct processors *c, int t, struct processors_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; c != NULL && i < c->n; i++)
		if (c->stages[i].t == t)
			processors_stats_add(st, &c->stages[i].stats);
}

bool
processors_same(const struct processors *a, const struct processors *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct processors_stage *x = &a->stages[i], *y = &b->stages[i];

		if (x->t != y->t || (x->type->same != NULL && !x->type->same(x->state, y->state)))
			return false;
	}
	return true;
}

bool
processors_has(const struct processors *c, int t)
{
	for (size_t i = 0; c != NULL && i < c->n; i++)
		if (c->stages[i].t == t)
			return true;
	return false;
}

void
processors_get_type_stats(const struct processors *c, int t, void *st)
{
	const struct processor_type *type = processor_types[t];
	uint64_t *sum = st;
	size_t n = type->stats_size / sizeof(uint64_t);

	memset(st, 0, type->stats_size);
	for (size_t i = 0; c != NULL && i < c->n; i++)
		for (size_t k = 0; c->stages[i].t == t && k < n; k++)
			sum[k] += c->stages[i].own[k];
}

/* The family of field f, and a sample of each chain having type t (all types: t < 0). */
static void
processors_render_field(struct metrics_writer *w, const struct metrics_field *f, int t,
    struct processors *const *chains, const char *const *names, size_t n)
{
	bool declared = false;

	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; chains[i] != NULL && k < processor_types_n; k++) {
			const struct processor_type *type = processor_types[k];
			struct metrics_label l[2] = { { "source", names[i] }, { "processor", type->name } };
			uint64_t st[32];

			if ((t >= 0 && (int)k != t) || !processors_has(chains[i], (int)k))
				continue;
			if (t < 0)
				processors_get_stats(chains[i], (int)k, (struct processors_stats *)st);
			else
				processors_get_type_stats(chains[i], (int)k, st);
			if (!declared)
				metrics_family(w, f->name, f->type, f->help);
			declared = true;
			metrics_sample(w, l, 2, *(const uint64_t *)((const char *)st + f->offset));
		}
	}
}

void
processors_render(struct metrics_writer *w, struct processors *const *chains,
    const char *const *names, size_t n)
{
	for (size_t f = 0; f < processors_nfields; f++)
		processors_render_field(w, &processors_fields[f], -1, chains, names, n);
	for (size_t t = 0; t < processor_types_n; t++)
		for (size_t f = 0; f < processor_types[t]->nfields; f++)
			processors_render_field(w, &processor_types[t]->fields[f], (int)t, chains,
			    names, n);
}
