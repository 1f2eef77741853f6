#include "autoconfig.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "relay/relay.h"
#include "common/daemon.h"
#include "common/log.h"

struct relay {
	uv_loop_t loop;
	const char *config_file;
	struct relay_config *cfg;
	struct daemon_signals *signals;
	int exit_code;
};

static void
relay_stop(void *arg, int signum)
{
	struct relay *a = arg;

	log_info("SIG%s received: stopping", sigabbrev_np(signum));
	daemon_notify_stopping();
	daemon_signals_close(a->signals);
	a->signals = NULL;
}

static void
relay_reload(void *arg, int signum)
{
	struct relay *a = arg;

	(void)signum;
	daemon_reload_check(&relay_config_schema, a->config_file, "relay");
}

int
relay_run(const char *config_file, void *config)
{
	struct relay a = { .config_file = config_file, .cfg = config };
	int r;

	if ((r = uv_loop_init(&a.loop)) != 0) {
		log_error("cannot create the event loop: %s", uv_strerror(r));
		return DAEMON_EXIT_FAILURE;
	}
	if ((r = daemon_signals_start(&a.loop, relay_stop, relay_reload, &a,
	    &a.signals)) != 0) {
		log_error("cannot handle signals: %s", uv_strerror(r));
		a.exit_code = DAEMON_EXIT_FAILURE;
		goto out;
	}
	log_info("logferry-relay %s started as '%s' with %" PRId64 " worker(s), Kafka brokers %s",
	    PACKAGE_VERSION, a.cfg->id, a.cfg->workers,
	    ((struct config_addr *)a.cfg->kafka.brokers.items)[0].text);
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
