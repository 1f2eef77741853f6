#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/daemon.h"
#include "common/log.h"
#include "relay/relay.h"

struct relay {
	uv_loop_t *loop;
	const struct relay_config *cfg;
	int exit_code;
};

int
relay_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx)
{
	struct relay *r;

	(void)config_file;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_error("out of memory starting the relay");
		return -ENOMEM;
	}
	r->loop = loop;
	r->cfg = config;
	log_info("logferry-relay %s started as '%s' with %" PRId64 " worker(s), Kafka brokers %s",
	    PACKAGE_VERSION, r->cfg->id, r->cfg->workers,
	    ((const struct config_addr *)r->cfg->kafka.brokers.items)[0].text);
	*ctx = r;
	return 0;
}

void
relay_stop(void *ctx)
{
	/* Nothing of the relay's own keeps the loop alive yet. */
	(void)ctx;
}

int
relay_finish(void *ctx)
{
	struct relay *r = ctx;
	int code = r->exit_code;

	free(r);
	return code;
}
