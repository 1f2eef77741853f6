#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/daemon.h"
#include "common/log.h"
#include "relay/kafka.h"
#include "relay/relay.h"
#include "relay/server.h"

struct relay {
	uv_loop_t *loop;
	const struct relay_config *cfg;
	struct kafka *kafka;
	struct server *server;
	int exit_code;
};

int
relay_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx)
{
	struct relay *r;
	struct server_budget budget;
	uint64_t queue;
	int rc;

	(void)config_file;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_error("out of memory starting the relay");
		return -ENOMEM;
	}
	r->loop = loop;
	r->cfg = config;
	/*
	 * memory_limit is one budget (DESIGN.md guarantee 3). Connections come
	 * first, at SERVER_CONN_COST each for max_connections, but at most half
	 * of it; the rest goes half to librdkafka's queue, where events wait for
	 * Kafka, and half to batches being received, decompressed and produced.
	 */
	budget.connections = (uint64_t)r->cfg->max_connections * SERVER_CONN_COST;
	if (budget.connections > r->cfg->memory_limit / 2)
		budget.connections = r->cfg->memory_limit / 2;
	queue = (r->cfg->memory_limit - budget.connections) / 2;
	budget.batches = r->cfg->memory_limit - budget.connections - queue;
	if ((rc = kafka_new(r->cfg, queue, &r->kafka)) != 0 ||
	    (rc = server_start(loop, r->cfg, r->kafka, &budget, &r->server)) != 0) {
		kafka_free(r->kafka);
		free(r);
		return rc;
	}
	log_info("logferry-relay %s started as '%s' with %" PRId64 " worker(s), Kafka brokers %s",
	    PACKAGE_VERSION, r->cfg->id, r->cfg->workers,
	    ((const struct config_addr *)r->cfg->kafka.brokers.items)[0].text);
	*ctx = r;
	return 0;
}

static void
relay_on_server_stopped(void *ctx)
{
	struct relay *r = ctx;
	struct server_stats st;

	server_get_stats(r->server, &st);
	log_info("stopped: %" PRIu64 " connections, %" PRIu64 " batches (%" PRIu64 " events): "
	    "%" PRIu64 " OK, %" PRIu64 " RETRY, %" PRIu64 " REJECTED; %" PRIu64 " agents refused, "
	    "%" PRIu64 " protocol errors", st.accepted, st.batches, st.events, st.acks_ok,
	    st.acks_retry, st.acks_rejected, st.agents_refused, st.protocol_errors);
}

void
relay_stop(void *ctx)
{
	struct relay *r = ctx;

	server_stop(r->server, relay_on_server_stopped, r);
}

void
relay_reload(void *ctx, const void *fresh)
{
	struct relay *r = ctx;

	(void)server_reload_tls(r->server, fresh);
}

int
relay_finish(void *ctx)
{
	struct relay *r = ctx;
	int code = r->exit_code;

	server_free(r->server);
	kafka_free(r->kafka);
	free(r);
	return code;
}
