/*
 * relay: the logferry-relay process: owns the loops and, as they arrive,
 * the listener, the agent connections and the Kafka producer.
 */
#ifndef LOGFERRY_RELAY_H
#define LOGFERRY_RELAY_H

#include "relay/relay_config.h"

/* Runs the relay until SIGTERM or SIGINT. Returns an exit code (common/daemon.h). */
int relay_run(const char *config_file, void *config);

#endif
