/* SPDX-License-Identifier: Apache-2.0 */
/*
 * processor: the contract between the pipeline's door and a type of
 * processing stage, as source_type.h is for sources. Each stage module
 * defines one `const struct processor_type`; agent/processors.c lists them,
 * indexed by enum agent_processor_type, so a new type of stage is its
 * module, its line in that table, and its keys in the configuration schema
 * (agent/agent_config.c, with its enum value).
 *
 * A stage is compiled once from its configuration section, when the
 * configuration is loaded (start, --check, SIGHUP), and then runs on every
 * event a source hands to the spool (docs/architecture.md "Processing at
 * the door"). It works on a processor_event: the chain's scratch copy of
 * the event, whose field array and byte arena are allocated once per chain
 * and reused, so that the hot path never allocates. Values a stage writes
 * (a hash's hex, a masked address, a rewritten message) go into the arena
 * through the helpers below; everything else an event points to (the
 * source's line, configuration strings) is only borrowed and never written.
 */
#ifndef LOGFERRY_PROCESSOR_H
#define LOGFERRY_PROCESSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent_config.h"
#include "common/metrics.h"
#include "proto/event.h"

/* What a stage's run decides for the event. */
enum processor_verdict {
	PROCESSOR_PASS = 0,          /* on to the next stage */
	PROCESSOR_DROP_EVENT,        /* not spooled (ignored for a dead-lettered event) */
	/*
	 * Re-streamed to dead_letter_stream with reason (both set by run) in a
	 * field: never dropped, and still processed by the stages after it.
	 */
	PROCESSOR_DEAD_LETTER,
};

/* What compile may need beyond the section: the host metadata add_fields offers. */
struct processor_context {
	const char *host;            /* the agent's host name */
	const char *agent_id;        /* the agent's id */
	const char *source;          /* the name of the source whose chain this is */
	const char *config_file;     /* the configuration file, for relative paths */
};

/*
 * The event being processed. ev.fields is the chain's array of max_fields;
 * its last nmarks fields are the source's marks (partial, truncated), which
 * an event too large for the spool with its fields keeps (pipeline.h):
 * the helpers add fields before them. The arena is emptied for each event.
 */
struct processor_event {
	struct event ev;
	size_t max_fields;
	size_t nmarks;
	uint8_t *arena;
	size_t arena_used, arena_cap;
	/* Set once a stage dead-lettered it: drop, keep and require then let it pass. */
	bool dead_lettered;
	/* A PROCESSOR_DEAD_LETTER verdict's: static, configuration or arena text. */
	struct pbslice reason;
	const char *dead_letter_stream;
	/*
	 * The running stage's own counters for this event (its type's
	 * stats_size bytes, zeroed): the chain adds them to the stage's once
	 * the event is through the door (processors_count), so that an event
	 * the spool had no room for, offered again, counts once.
	 */
	void *counts;
};

struct processor_type {
	const char *name;            /* the configuration's `type` value */
	/*
	 * Compiles cfg into *out (NULL is a valid state). Returns 0, or a
	 * negative error with what is wrong in err (errlen bytes, reported at
	 * the processor's place in the configuration); *out is then NULL.
	 */
	int (*compile)(const struct agent_processor *cfg, const struct processor_context *ctx,
	    void **out, char *err, size_t errlen);
	/*
	 * Processes pe. Returns an enum processor_verdict, or a negative error
	 * (-ENOSPC: the fields or the arena are full) after which the event is
	 * not spooled, since a stage that could not do its work (a redaction)
	 * must not let the event out as it was. Never allocates, never blocks.
	 */
	int (*run)(void *state, struct processor_event *pe);
	void (*free)(void *state);   /* NULL state is fine */
	/*
	 * Optional: whether two states compiled from equal sections do the
	 * same (NULL: they do). A stage that reads a file when compiled
	 * (redact's key_file) says no once the file changed, so that a reload
	 * applies it to sources whose configuration did not change.
	 */
	bool (*same)(const void *a, const void *b);
	/*
	 * Optional: the size of the type's own counters (0: none), a struct of
	 * at most 32 uint64_t that run adds to through pe->counts; the chain
	 * keeps them per stage.
	 */
	size_t stats_size;
	const struct metrics_field *fields;   /* uint64_t sums over a source's stages of the type */
	size_t nfields;
};

/* ------------------------------------------------------------ helpers */

/* The first field called name[0, len), or NULL. */
struct event_field *processor_event_find(struct processor_event *pe, const char *name,
    size_t len);

/*
 * The string value of field f (TEXT, SLICE); numbers and booleans as
 * written in JSON, formatted into buf (bufsize bytes, 32 is enough).
 * Returns 0, or -EINVAL for a NULL or JSON value.
 */
int processor_event_text(const struct processor_event *pe, const struct event_field *f,
    char *buf, size_t bufsize, struct pbslice *out);

/*
 * Sets field key to the value of v (its key ignored; its bytes borrowed,
 * not copied: static, configuration or arena memory): the first field of
 * that name is replaced, in place, or a new one is added before the marks.
 * key is borrowed too. Returns 0, or -ENOSPC when the fields are full.
 */
int processor_event_set(struct processor_event *pe, struct pbslice key,
    const struct event_field *v);

/* processor_event_set of a TEXT value copied into the arena; -ENOSPC when full. */
int processor_event_set_text(struct processor_event *pe, struct pbslice key,
    const uint8_t *text, size_t len);

/*
 * n bytes of the arena in *out, valid until the next event. Returns 0, or
 * -ENOSPC when the arena has not n bytes left.
 */
int processor_event_alloc(struct processor_event *pe, size_t n, uint8_t **out);

/* Removes every field called name[0, len); returns how many went. */
size_t processor_event_remove(struct processor_event *pe, const char *name, size_t len);

/*
 * Copies every SLICE field's bytes (an offset into the message) into the
 * arena and makes it TEXT, so that the message can change under it.
 * Returns 0, or -ENOSPC (-EPROTO for a slice outside the message).
 */
int processor_event_unslice(struct processor_event *pe);

/*
 * Makes msg[0, len) (arena, static or configuration memory) the event's
 * message, after processor_event_unslice. Returns 0 or its error.
 */
int processor_event_set_message(struct processor_event *pe, const uint8_t *msg, size_t len);

/* A NUL-terminated string as a pbslice (borrowed). */
struct pbslice processor_slice(const char *s);

#endif
