/* SPDX-License-Identifier: Apache-2.0 */
/*
 * source_type: the contract between the agent and a type of source, as
 * tmux's command table. Each source module (agent/<type>_source.c) defines
 * one `const struct source_type`; agent/source_types.c lists them, in the
 * order of enum agent_source_type. The agent starts, resumes, stops, sizes
 * and reports its sources through the table alone, so a new type of source
 * is its module, its line in that table, and its keys in the configuration
 * schema (agent/agent_config.c, with its enum value).
 *
 * Sources borrow their configuration until their stop's done runs.
 */
#ifndef LOGFERRY_SOURCE_TYPE_H
#define LOGFERRY_SOURCE_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/agent_config.h"
#include "agent/budget.h"
#include "agent/spool.h"
#include "common/metrics.h"

struct source_type {
	const char *name;             /* the configuration's `type` value */
	/*
	 * Its reads go on from positions committed in the spool: a successor
	 * that a reload starts waits until what the closing one read is
	 * committed, or it would read it again.
	 */
	bool resumes_from_spool;
	/* The longest message cfg lets in: the spool's largest event must hold it. */
	uint64_t (*max_message)(const struct agent_source *cfg);
	/*
	 * Starts cfg's source on loop; host is the agent's host name, budget
	 * memory_limit's share for connection buffers. cfg, host, spool and
	 * budget outlive it. Returns 0 or a negative error after logging it.
	 */
	int (*start)(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
	    struct spool *spool, struct budget *budget, void **out);
	/* The spool has room again (its writable callback). */
	void (*resume)(void *src);
	/*
	 * NULL, or SIGHUP for a source that keeps running (its settings did
	 * not change): it reads again the files its settings name (tokens,
	 * certificates). On an error it logs it and keeps what it had.
	 */
	void (*reload)(void *src);
	/* Stops it; done(ctx) runs once every handle is closed and src is freed. */
	void (*stop)(void *src, void (*done)(void *ctx), void *ctx);
	/* Copies its counters into st, a struct of stats_size bytes read by fields. */
	void (*stats)(const void *src, void *st);
	size_t stats_size;
	const struct metrics_field *fields;   /* one family each, labelled source */
	size_t nfields;
};

/* Every type, indexed by enum agent_source_type; source_types_n of them. */
extern const struct source_type *const source_types[];
extern const size_t source_types_n;

/* The type of cfg. */
const struct source_type *source_type_of(const struct agent_source *cfg);

#endif
