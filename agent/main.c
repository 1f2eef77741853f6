/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <lmdb.h>
#include <zlib.h>
#include <zstd.h>

#include "agent/agent.h"
#include "agent/backfill.h"
#include "agent/inspect.h"
#include "common/daemon.h"

static const struct daemon_command agent_commands[] = {
	{ "spool-stats", "print what the spool holds: events, bytes, times, file positions",
	    inspect_stats_command },
	{ "spool-dump", "print every event in the spool as a JSON line", inspect_dump_command },
	{ "backfill", "read every file of the file sources once (archives too) into the spool, "
	    "then exit; run it while the agent is stopped", backfill_command },
	{ NULL, NULL, NULL },
};

/* The libraries only the agent links, as loaded, for --version. */
static void
agent_versions(FILE *out)
{
	int major, minor, patch;

	(void)mdb_version(&major, &minor, &patch);
	fprintf(out, "LMDB %d.%d.%d\n", major, minor, patch);
	fprintf(out, "zstd %s\n", ZSTD_versionString());
	fprintf(out, "jansson %s\n", jansson_version_str());
	fprintf(out, "zlib %s\n", zlibVersion());
}

static const struct daemon_spec agent_spec = {
	.progname = "logferry-agent",
	.summary = "Tails logs and receives events, spools them durably and ships them to logferry relays.",
	.default_config = SYSCONFDIR "/logferry/agent.yaml",
	.schema = &agent_config_schema,
	.log_level_offset = offsetof(struct agent_config, log_level),
	.log_format_offset = offsetof(struct agent_config, log_format),
	.start = agent_start,
	.stop = agent_stop,
	.finish = agent_finish,
	.reload = agent_reload,
	.commands = agent_commands,
	.versions = agent_versions,
};

int
main(int argc, char **argv)
{
	return daemon_main(&agent_spec, argc, argv);
}
