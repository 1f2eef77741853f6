#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>

#include "common/daemon.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"
#include "relay/kafka.h"
#include "relay/relay.h"
#include "relay/server.h"

struct relay {
	uv_loop_t *loop;
	const struct relay_config *cfg;
	struct kafka *kafka;
	struct server *server;
	struct server_budget budget;
	struct metrics *metrics;          /* NULL without metrics.listen */
	int exit_code;
};

/* ---------------------------------------------------------------- metrics */

#define SERVER_F(name, type, member, help) \
	{ "logferry_relay_" name, type, help, offsetof(struct server_stats, member) }
static const struct metrics_field relay_server_fields[] = {
	SERVER_F("connections", "gauge", connections, "Agent connections open now."),
	SERVER_F("connections_accepted_total", "counter", accepted,
	    "TCP connections handed to workers."),
	SERVER_F("connections_refused_total", "counter", refused,
	    "Connections closed at once: max_connections or memory_limit's share reached."),
	SERVER_F("handshakes_failed_total", "counter", handshakes_failed,
	    "Connections whose TLS handshake failed or that sent no valid Hello."),
	SERVER_F("agents_refused_total", "counter", agents_refused,
	    "Hellos refused: agent id, certificate or allowed_agents."),
	SERVER_F("protocol_errors_total", "counter", protocol_errors,
	    "Connections closed for a bad frame."),
	SERVER_F("batches_total", "counter", batches, "Batches received and checked."),
	SERVER_F("events_total", "counter", events, "Events in those batches."),
	SERVER_F("events_malformed_total", "counter", events_malformed,
	    "Events that did not decode, refused alone."),
	SERVER_F("acks_ok_total", "counter", acks_ok,
	    "Batches answered OK: Kafka acknowledged every event."),
	SERVER_F("acks_retry_total", "counter", acks_retry,
	    "Batches answered RETRY: a delivery failed or kafka.delivery_timeout passed."),
	SERVER_F("acks_rejected_total", "counter", acks_rejected,
	    "Batches answered REJECTED: they can never be accepted."),
	SERVER_F("inflight_bytes", "gauge", inflight_bytes,
	    "Bytes of unanswered batches and partial frames, all connections."),
	SERVER_F("paused_reads_total", "counter", paused_reads,
	    "Times a connection stopped being read because of a bound."),
};

#define KAFKA_F(name, type, member, help) \
	{ "logferry_kafka_" name, type, help, offsetof(struct kafka_stats, member) }
static const struct metrics_field relay_kafka_fields[] = {
	KAFKA_F("produced_total", "counter", produced, "Records handed to librdkafka."),
	KAFKA_F("delivered_total", "counter", delivered, "Successful delivery reports."),
	KAFKA_F("failed_total", "counter", failed, "Failed delivery reports (purges included)."),
	KAFKA_F("refused_oversize_total", "counter", refused_oversize,
	    "Events refused as larger than Kafka accepts even cut into pieces."),
	KAFKA_F("events_cut_total", "counter", events_cut,
	    "Events whose record was too large, produced as pieces."),
	KAFKA_F("pieces_total", "counter", pieces,
	    "Records that are pieces of an event (logferry-piece header)."),
	KAFKA_F("dead_lettered_total", "counter", dead_lettered,
	    "Records a broker refused for good, delivered to kafka.dead_letter_topic."),
	KAFKA_F("refused_by_broker_total", "counter", refused_broker,
	    "Records a broker refused for good, logged and acknowledged without a dead-letter copy."),
	KAFKA_F("queue_full_total", "counter", queue_full,
	    "Times librdkafka's queue was full and producing waited."),
	KAFKA_F("batches_ok_total", "counter", batches_ok,
	    "Batches whose every delivery report succeeded."),
	KAFKA_F("batches_retry_total", "counter", batches_retry,
	    "Batches answered RETRY by the producer."),
	KAFKA_F("producers_recreated_total", "counter", recreated,
	    "Producers replaced after a fatal error of the idempotent producer."),
};

static void
relay_render(void *ctx, struct metrics_writer *w)
{
	struct relay *r = ctx;
	struct metrics_label info[] = { { "id", r->cfg->id }, { "version", PACKAGE_VERSION } };
	struct server_stats ss;
	struct kafka_stats ks;

	metrics_family(w, "logferry_relay_info", "gauge", "The relay's id and version.");
	metrics_sample(w, info, 2, 1);
	server_get_stats(r->server, &ss);
	kafka_get_stats(r->kafka, &ks);
	metrics_table(w, METRICS_FIELDS(relay_server_fields), &ss, sizeof(ss), 1,
	    NULL, NULL);
	metrics_one(w, "logferry_relay_kafka_failing", "gauge",
	    "1 while the last batch Kafka answered had a failed delivery or timed out.",
	    ss.kafka_failing ? 1 : 0);
	metrics_one(w, "logferry_relay_memory_limit_bytes", "gauge", "memory_limit.",
	    r->cfg->memory_limit);
	metrics_one(w, "logferry_relay_inflight_limit_bytes", "gauge",
	    "memory_limit's share for batches in flight: over it, no connection is read.",
	    r->budget.batches);
	metrics_table(w, METRICS_FIELDS(relay_kafka_fields), &ks, sizeof(ks), 1,
	    NULL, NULL);
	metrics_family(w, "logferry_kafka_errors_total", "counter",
	    "Failed delivery reports and client errors, by kind (unknown topic, authorization, ...).");
	for (int i = 0; i < KAFKA_ERROR_KINDS; i++) {
		struct metrics_label l = { "error", kafka_error_labels[i] };

		metrics_sample(w, &l, 1, ks.errors[i]);
	}
}

/*
 * 200 while the relay runs; "degraded" while the last batch Kafka
 * answered failed (an outage, most likely: the agents keep their events
 * and send them again).
 */
static int
relay_health(void *ctx, struct buf *out)
{
	struct relay *r = ctx;
	struct server_stats ss;
	char why[384], reason[448];
	bool trouble;

	server_get_stats(r->server, &ss);
	trouble = kafka_trouble(r->kafka, why, sizeof(why));
	if (ss.kafka_failing || trouble) {
		/* The reason names the failure: a missing topic, an ACL, credentials... */
		jsonw_raw(out, "{\"status\":\"degraded\",\"reasons\":[");
		snprintf(reason, sizeof(reason), "Kafka deliveries failing%s%s",
		    why[0] != '\0' ? ": " : "", why);
		jsonw_string(out, (const uint8_t *)reason, strlen(reason));
		jsonw_raw(out, "]");
	} else {
		jsonw_raw(out, "{\"status\":\"ok\",\"reasons\":[]");
	}
	jsonw_raw(out, ",\"connections\":");
	jsonw_uint(out, ss.connections);
	jsonw_raw(out, ",\"inflight_bytes\":");
	jsonw_uint(out, ss.inflight_bytes);
	jsonw_raw(out, "}\n");
	return 200;
}

static const struct metrics_ops relay_metrics_ops = { relay_render, relay_health };

int
relay_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx)
{
	struct relay *r;
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
	 * memory_limit is one budget (docs/architecture.md guarantee 3). Connections come
	 * first, at SERVER_CONN_COST each for max_connections, but at most half
	 * of it; the rest goes half to librdkafka's queue, where events wait for
	 * Kafka, and half to batches being received, decompressed and produced.
	 */
	r->budget.connections = (uint64_t)r->cfg->max_connections * SERVER_CONN_COST;
	if (r->budget.connections > r->cfg->memory_limit / 2)
		r->budget.connections = r->cfg->memory_limit / 2;
	queue = (r->cfg->memory_limit - r->budget.connections) / 2;
	r->budget.batches = r->cfg->memory_limit - r->budget.connections - queue;
	/* First, so that a failure after it only has to close it. */
	if (r->cfg->metrics.listen.text != NULL &&
	    (rc = metrics_start(loop, &r->cfg->metrics.listen, &relay_metrics_ops, r,
	    &r->metrics)) != 0) {
		free(r);
		return rc;
	}
	if ((rc = kafka_new(r->cfg, queue, &r->kafka)) != 0 ||
	    (rc = server_start(loop, r->cfg, r->kafka, &r->budget, &r->server)) != 0) {
		metrics_stop(r->metrics, NULL, NULL);
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

	metrics_stop(r->metrics, NULL, NULL);
	r->metrics = NULL;
	server_stop(r->server, relay_on_server_stopped, r);
}

int
relay_reload(void *ctx, void **fresh)
{
	struct relay *r = ctx;

	return server_reload_tls(r->server, *fresh);
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
