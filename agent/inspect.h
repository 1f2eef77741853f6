/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inspect: operator commands that look inside the agent's spool, running
 * agent or not (LMDB allows readers beside the writer):
 *   logferry-agent -c FILE --spool-stats   counts, sizes, times, file positions
 *   logferry-agent -c FILE --spool-dump    every stored event as a JSON line
 */
#ifndef LOGFERRY_INSPECT_H
#define LOGFERRY_INSPECT_H

#include <stdio.h>

#include "agent/agent_config.h"

/* Both return a daemon exit code (0, 1 when the spool cannot be read). */
int inspect_stats(const struct agent_config *cfg, FILE *out);
int inspect_dump(const struct agent_config *cfg, FILE *out);

/* daemon_command hooks. */
int inspect_stats_command(const char *config_file, void *config);
int inspect_dump_command(const char *config_file, void *config);

#endif
