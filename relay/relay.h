/* SPDX-License-Identifier: Apache-2.0 */
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

/* More than relay_restart_keys can name. */
#define RELAY_RESTART_KEYS_MAX 32
/*
 * The keys whose value differs between run (the running configuration)
 * and fresh and that only a restart applies; sets keys[0..n) to their
 * names (at most max) and returns n.
 */
int relay_restart_keys(const struct relay_config *run, const struct relay_config *fresh,
    const char **keys, int max);

#endif
