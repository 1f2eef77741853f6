/*
 * agent: the logferry-agent process: owns, as they arrive, the sources,
 * the spool and the shipper on the main loop (common/daemon.h owns the loop).
 */
#ifndef LOGFERRY_AGENT_H
#define LOGFERRY_AGENT_H

#include <uv.h>

#include "agent/agent_config.h"

/* The daemon_spec hooks (common/daemon.h) of the agent. */
int agent_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx);
void agent_stop(void *ctx);
int agent_finish(void *ctx);

#endif
