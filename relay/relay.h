/*
 * relay: the logferry-relay process: owns, as they arrive, the listener,
 * the worker loops with the agent connections, and the Kafka producer
 * (common/daemon.h owns the main loop).
 */
#ifndef LOGFERRY_RELAY_H
#define LOGFERRY_RELAY_H

#include <uv.h>

#include "relay/relay_config.h"

/* The daemon_spec hooks (common/daemon.h) of the relay. */
int relay_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx);
void relay_stop(void *ctx);
int relay_finish(void *ctx);
int relay_reload(void *ctx, void **fresh);

#endif
