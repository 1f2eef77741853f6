/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <stddef.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>
#include <zstd.h>

#include "relay/relay.h"
#include "common/daemon.h"

/* The libraries only the relay links, as loaded, for --version. */
static void
relay_versions(FILE *out)
{
	fprintf(out, "librdkafka %s\n", rd_kafka_version_str());
	fprintf(out, "zstd %s\n", ZSTD_versionString());
}

static const struct daemon_spec relay_spec = {
	.progname = "logferry-relay",
	.summary = "Accepts logferry agents over mutual TLS and produces their events into Kafka.",
	.default_config = SYSCONFDIR "/logferry/relay.yaml",
	.schema = &relay_config_schema,
	.log_level_offset = offsetof(struct relay_config, log_level),
	.log_format_offset = offsetof(struct relay_config, log_format),
	.start = relay_start,
	.stop = relay_stop,
	.finish = relay_finish,
	.reload = relay_reload,
	.versions = relay_versions,
};

int
main(int argc, char **argv)
{
	return daemon_main(&relay_spec, argc, argv);
}
