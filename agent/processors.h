/* SPDX-License-Identifier: Apache-2.0 */
/*
 * processors: the table of processing stage types (processor.h) and a
 * source's compiled chain of stages, run once per event at the door into
 * the spool (pipeline.h), before the event is encoded: what a stage
 * removes or rewrites never reaches the disk.
 *
 * A source's chain is its own `processors:` list followed by the global
 * one, so that fleet-wide policy (a redaction) sees the names the source's
 * stages made. A chain owns its scratch (the event's fields and an arena
 * of processor_buffer bytes), and so serves one pipeline at a time.
 *
 * A dead-lettered event (require) has its stream set to the stage's
 * dead_letter_stream, a `logferry_error` field with the reason and a
 * `logferry_stream` field with the stream it had; it still goes through
 * the stages after (a redaction still applies), drop and keep do not drop
 * it, and require does not judge it again.
 */
#ifndef LOGFERRY_PROCESSORS_H
#define LOGFERRY_PROCESSORS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent_config.h"
#include "agent/processor.h"
#include "common/config.h"
#include "common/metrics.h"
#include "proto/event.h"

/* Fields a source's event may come with: above its parsers' and the journal's 64 + marks. */
#define PROCESSORS_MAX_INPUT_FIELDS 128

#define PROCESSORS_ERROR_FIELD "logferry_error"
#define PROCESSORS_STREAM_FIELD "logferry_stream"

/* Every type, indexed by enum agent_processor_type; processor_types_n of them. */
extern const struct processor_type *const processor_types[];
extern const size_t processor_types_n;

/* Their names, NULL-terminated: the configuration's `type` values. */
extern const char *const processor_names[];

/* What the chain counted for one type of stage (the sum over its stages of that type). */
struct processors_stats {
	uint64_t passed;             /* events the stage let through unchanged in their fate */
	uint64_t dropped;            /* events it dropped (drop, keep) */
	uint64_t dead_lettered;      /* events it sent to the dead-letter stream (require) */
	uint64_t errors;             /* events it could not process: not spooled */
};

/* The per-type counters above, as metric families labelled source and processor. */
extern const struct metrics_field processors_fields[];
extern const size_t processors_nfields;

struct processors;

/* Where a chain failed to compile: lists[list][index], and why. */
struct processors_error {
	size_t list, index;
	char msg[256];
};

/*
 * Compiles the struct agent_processor elements of lists[0], then
 * lists[1], ... (nlists of them, NULL lists skipped) into one chain, with
 * an arena of arena_bytes. Returns 0 and sets *out (NULL when the lists
 * are empty: no processing), or a negative error with e filled.
 */
int processors_compile(const struct config_list *const *lists, size_t nlists,
    const struct processor_context *ctx, size_t arena_bytes, struct processors **out,
    struct processors_error *e);

/* Results of processors_run beside the verdicts' PASS. */
#define PROCESSORS_KEEP 0
#define PROCESSORS_DROP 1

/*
 * Runs chain c on in (its last nmarks fields the source's marks). Returns
 * PROCESSORS_KEEP with *out the processed event and *out_nmarks its marks
 * (valid until the next run, and while in is), PROCESSORS_DROP, or a
 * negative error from a stage: the event is not to be spooled, the failure
 * logged (rate-limited). What the stages did is counted by
 * processors_count; a run before it replaces this run's counts. No
 * allocation.
 */
int processors_run(struct processors *c, const struct event *in, size_t nmarks,
    const struct event **out, size_t *out_nmarks);

/*
 * Counts the last run's event in the stages' counters, once it is through
 * the door (spooled, dropped or given up): an event the spool had no room
 * for is run again when offered again, and counted then.
 */
void processors_count(struct processors *c);

/* Frees c. NULL is fine. */
void processors_free(struct processors *c);

/* The counters of c's stages of type t (enum agent_processor_type), summed. */
void processors_get_stats(const struct processors *c, int t, struct processors_stats *st);

/*
 * Whether chains a and b, compiled from equal configurations, do the same:
 * false when a stage's files changed between them (processor_type.same).
 */
bool processors_same(const struct processors *a, const struct processors *b);

/* Whether c has a stage of type t. */
bool processors_has(const struct processors *c, int t);

/*
 * Type t's own counters (processor_type.stats_size) summed over c's stages
 * of that type into st (stats_size bytes of uint64_t).
 */
void processors_get_type_stats(const struct processors *c, int t, void *st);

/*
 * Writes the counters of n chains (NULL ones skipped), chain i's labelled
 * source=names[i] and processor=its type's name, for each type it has: the
 * families of processors_fields, then those of each type's own fields.
 */
void processors_render(struct metrics_writer *w, struct processors *const *chains,
    const char *const *names, size_t n);

#endif
