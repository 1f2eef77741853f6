#include "autoconfig.h"

#include <stddef.h>

#include "relay/relay.h"
#include "common/daemon.h"

static const struct daemon_spec relay_spec = {
	.progname = "logferry-relay",
	.summary = "Accepts logferry agents over mutual TLS and produces their events into Kafka.",
	.default_config = SYSCONFDIR "/logferry/relay.yaml",
	.schema = &relay_config_schema,
	.log_level_offset = offsetof(struct relay_config, log_level),
	.start = relay_start,
	.stop = relay_stop,
	.finish = relay_finish,
	.reload = relay_reload,
};

int
main(int argc, char **argv)
{
	return daemon_main(&relay_spec, argc, argv);
}
