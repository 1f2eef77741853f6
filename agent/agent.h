/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent: the logferry-agent process: owns, as they arrive, the sources,
 * the spool and the shipper on the main loop (common/daemon.h owns the loop).
 */
#ifndef LOGFERRY_AGENT_H
#define LOGFERRY_AGENT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "agent/agent_config.h"

/* The daemon_spec hooks (common/daemon.h) of the agent. */
int agent_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx);
void agent_stop(void *ctx);
int agent_finish(void *ctx);
int agent_reload(void *ctx, void **fresh);

/* Whether two sources have the same settings: a reload keeps such a source running. */
bool agent_source_equal(const struct agent_source *x, const struct agent_source *y);

/*
 * Whether the global processors (and processor_buffer) of run and fresh
 * are the same: every source's chain ends with them, so a reload restarts
 * every source when they changed.
 */
bool agent_processors_equal(const struct agent_config *run, const struct agent_config *fresh);

/*
 * The keys (at most max, into keys) whose change between the running
 * configuration run and fresh needs a restart. Returns how many.
 */
size_t agent_restart_keys(const struct agent_config *run, const struct agent_config *fresh,
    const char **keys, size_t max);

/* The spool's directory in data_dir; 0 or -ENAMETOOLONG. */
int agent_spool_dir(const struct agent_config *cfg, char *out, size_t len);

struct spool_options;
/* The spool's options from the configuration, for the spool in dir. */
void agent_spool_options(const struct agent_config *cfg, const char *dir, struct spool_options *o);

#endif
