/*
 * agent: the logferry-agent process: owns the loop and, as they arrive,
 * the sources, the spool and the shipper.
 */
#ifndef LOGFERRY_AGENT_H
#define LOGFERRY_AGENT_H

#include "agent/agent_config.h"

/* Runs the agent until SIGTERM or SIGINT. Returns an exit code (common/daemon.h). */
int agent_run(const char *config_file, void *config);

#endif
