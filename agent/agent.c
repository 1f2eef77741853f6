#include "autoconfig.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent/agent.h"
#include "common/daemon.h"
#include "common/log.h"

struct agent {
	uv_loop_t loop;
	const char *config_file;
	struct agent_config *cfg;
	struct daemon_signals *signals;
	int exit_code;
};

static void
agent_stop(void *arg, int signum)
{
	struct agent *a = arg;

	log_info("SIG%s received: stopping", sigabbrev_np(signum));
	daemon_notify_stopping();
	daemon_signals_close(a->signals);
	a->signals = NULL;
}

static void
agent_reload(void *arg, int signum)
{
	struct agent *a = arg;

	(void)signum;
	daemon_reload_check(&agent_config_schema, a->config_file, "agent");
}

int
agent_run(const char *config_file, void *config)
{
	struct agent a = { .config_file = config_file, .cfg = config };
	int r;

	if ((r = uv_loop_init(&a.loop)) != 0) {
		log_error("cannot create the event loop: %s", uv_strerror(r));
		return DAEMON_EXIT_FAILURE;
	}
	if ((r = daemon_signals_start(&a.loop, agent_stop, agent_reload, &a,
	    &a.signals)) != 0) {
		log_error("cannot handle signals: %s", uv_strerror(r));
		a.exit_code = DAEMON_EXIT_FAILURE;
		goto out;
	}
	log_info("logferry-agent %s started as '%s' with %zu source(s)%s", PACKAGE_VERSION,
	    a.cfg->id, a.cfg->sources.n,
	    a.cfg->relays_enabled ? "" : "; no relays configured: spooling only");
	daemon_notify_ready();
	uv_run(&a.loop, UV_RUN_DEFAULT);
	log_info("stopped");
out:
	if (uv_loop_close(&a.loop) != 0) {
		/* A handle left open is a bug: say which kind before failing. */
		log_error("event loop still has open handles at exit");
		a.exit_code = DAEMON_EXIT_FAILURE;
	}
	return a.exit_code;
}
