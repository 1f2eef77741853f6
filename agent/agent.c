#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>

#include "agent/agent.h"
#include "common/daemon.h"
#include "common/log.h"

struct agent {
	uv_loop_t *loop;
	const struct agent_config *cfg;
	int exit_code;
};

int
agent_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx)
{
	struct agent *a;

	(void)config_file;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		log_error("out of memory starting the agent");
		return -ENOMEM;
	}
	a->loop = loop;
	a->cfg = config;
	log_info("logferry-agent %s started as '%s' with %zu source(s)%s", PACKAGE_VERSION,
	    a->cfg->id, a->cfg->sources.n,
	    a->cfg->relays_enabled ? "" : "; no relays configured: spooling only");
	*ctx = a;
	return 0;
}

void
agent_stop(void *ctx)
{
	/* Nothing of the agent's own keeps the loop alive yet. */
	(void)ctx;
}

int
agent_finish(void *ctx)
{
	struct agent *a = ctx;
	int code = a->exit_code;

	free(a);
	return code;
}
