/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/daemon.h"
#include "common/httpd.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"
#include "relay/http_intake.h"
#include "relay/kafka.h"
#include "relay/relay.h"
#include "relay/route.h"
#include "relay/server.h"

struct relay {
	uv_loop_t *loop;
	const struct relay_config *cfg;
	struct kafka *kafka;
	struct server *server;
	struct http_intake *intake;       /* NULL without http_intake */
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
	SERVER_F("unknown_event_format_total", "counter", unknown_event_formats,
	    "Connections closed for a Batch in an event format this relay does not read."),
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

/* Samples of logferry_kafka_routed_total: every route and the default. */
#define RELAY_ROUTES_SHOWN (ROUTE_TABLE_MAX + 1)

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
	    "Records delivered to kafka.dead_letter_topic (refused by a broker, or set aside "
	    "for their topic)."),
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
	KAFKA_F("producer_generation", "gauge", generation,
	    "Kafka producers created so far: 1 at start, one more per reload that changed "
	    "the producer's settings and per fatal-error recreate."),
	KAFKA_F("producers_retiring", "gauge", retiring,
	    "Producers a reload replaced that still deliver the records they hold."),
};

/* Events per route of the running configuration: kafka.routes by index, then "default". */
static void
relay_render_routes(struct metrics_writer *w, struct kafka *k)
{
	uint64_t counts[RELAY_ROUTES_SHOWN];
	size_t n = kafka_route_counts(k, counts, RELAY_ROUTES_SHOWN);
	char name[24];

	metrics_family(w, "logferry_kafka_routed_total", "counter",
	    "Events each route took since the configuration was applied: route is the index in "
	    "kafka.routes, or \"default\" (kafka.topic).");
	for (size_t i = 0; i < n && i < RELAY_ROUTES_SHOWN; i++) {
		struct metrics_label l = { "route", name };

		if (i + 1 == n)
			snprintf(name, sizeof(name), "default");
		else
			snprintf(name, sizeof(name), "%zu", i);
		metrics_sample(w, &l, 1, counts[i]);
	}
}

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
	if (r->intake != NULL) {
		struct httpd_stats hs;

		http_intake_get_stats(r->intake, &hs);
		metrics_table(w, httpd_metrics_fields, HTTPD_METRICS_FIELDS, &hs, sizeof(hs), 1,
		    NULL, NULL);
	}
	metrics_family(w, "logferry_kafka_errors_total", "counter",
	    "Failed delivery reports and client errors, by kind (unknown topic, authorization, ...).");
	for (int i = 0; i < KAFKA_ERROR_KINDS; i++) {
		struct metrics_label l = { "error", kafka_error_labels[i] };

		metrics_sample(w, &l, 1, ks.errors[i]);
	}
	relay_render_routes(w, r->kafka);
	metrics_family(w, "logferry_kafka_dead_letters_total", "counter",
	    "Events set aside, by reason: produced to kafka.dead_letter_topic, or without one "
	    "logged and acknowledged (invalid_topic, topic_not_allowed, broker_refused).");
	for (int i = 0; i < KAFKA_ASIDE_KINDS; i++) {
		struct metrics_label l = { "reason", kafka_aside_labels[i] };

		metrics_sample(w, &l, 1, ks.set_aside[i]);
	}
	daemon_render_reloads(w);
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

/*
 * Each agent holds a descriptor: max_connections of them, the intake's
 * connections, and some for the listeners, librdkafka's broker sockets and
 * metrics clients. The soft limit is raised to the hard one; when even that
 * is too low, accept fails and agents beyond it are refused, so say it now.
 */
#define RELAY_NOFILE_SPARE 256
static void
relay_check_nofile(const struct relay_config *cfg)
{
	uint64_t limit, need = (uint64_t)cfg->max_connections + RELAY_NOFILE_SPARE;
	int rc;

	if (cfg->http_intake.listen.n > 0)
		need += (uint64_t)cfg->http_intake.max_connections;
	if ((rc = daemon_raise_nofile(&limit)) != 0) {
		log_warn("cannot read the open file limit: %s; make sure it allows max_connections "
		    "(%" PRId64 ") and more (LimitNOFILE, ulimit -n)", strerror(-rc),
		    cfg->max_connections);
		return;
	}
	if (limit < need)
		log_warn("max_connections %" PRId64 " needs about %" PRIu64 " open files, but the limit "
		    "is %" PRIu64 ": agents beyond it will be refused (raise LimitNOFILE or ulimit -n, "
		    "or lower max_connections)", cfg->max_connections, need, limit);
}

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
	relay_check_nofile(r->cfg);
	/* First, so that a failure after it only has to close it. */
	if (r->cfg->metrics.listen.text != NULL &&
	    (rc = metrics_start(loop, &r->cfg->metrics.listen, &relay_metrics_ops, r,
	    &r->metrics)) != 0) {
		free(r);
		return rc;
	}
	if ((rc = kafka_new(r->cfg, queue, &r->kafka)) != 0 ||
	    (r->cfg->http_intake.listen.n > 0 &&
	    (rc = http_intake_start(loop, r->cfg, r->kafka, &r->intake)) != 0)) {
		metrics_stop(r->metrics, NULL, NULL);
		kafka_free(r->kafka);
		free(r);
		return rc;
	}
	if ((rc = server_start(loop, r->cfg, r->kafka, &r->budget, &r->server)) != 0) {
		metrics_stop(r->metrics, NULL, NULL);
		if (r->intake != NULL) {
			/*
			 * Its Kafka loop closes once its handles have (the daemon runs
			 * the loop after a failed start): the producer is left to the
			 * exit rather than freed under it.
			 */
			http_intake_stop(r->intake, NULL, NULL);
		} else {
			kafka_free(r->kafka);
		}
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

static void
relay_on_intake_stopped(void *ctx)
{
	struct relay *r = ctx;

	r->intake = NULL;
}

void
relay_stop(void *ctx)
{
	struct relay *r = ctx;

	metrics_stop(r->metrics, NULL, NULL);
	r->metrics = NULL;
	/* Stops accepting; what Kafka already holds is answered within the stop's grace. */
	if (r->intake != NULL)
		http_intake_stop(r->intake, relay_on_intake_stopped, r);
	server_stop(r->server, relay_on_server_stopped, r);
}

/* Whether two strings, either NULL, differ. */
static bool
relay_str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/*
 * Whether http_intake changed beyond what SIGHUP reloads (its certificate
 * and tokens files' contents): its addresses and settings need a restart.
 */
static bool
relay_intake_differs(const struct relay_config *run, const struct relay_config *fresh)
{
	const typeof(run->http_intake) *a = &run->http_intake, *b = &fresh->http_intake;

	if (a->listen.n != b->listen.n)
		return true;
	for (size_t i = 0; i < a->listen.n; i++)
		if (relay_str_differs(((const struct config_addr *)a->listen.items)[i].text,
		    ((const struct config_addr *)b->listen.items)[i].text))
			return true;
	return a->listen.n > 0 && (relay_str_differs(a->stream, b->stream) ||
	    a->max_connections != b->max_connections || a->max_body_size != b->max_body_size ||
	    a->memory_limit != b->memory_limit ||
	    relay_str_differs(a->auth.tokens_file, b->auth.tokens_file) ||
	    relay_str_differs(a->tls.cert_file, b->tls.cert_file) ||
	    a->tls.verify_client != b->tls.verify_client);
}

int
relay_restart_keys(const struct relay_config *run, const struct relay_config *fresh,
    const char **keys, int max)
{
	int n = 0;

	/* One row per key a running relay cannot change: what it has bound, sized or announced. */
#define RELAY_RESTART(changed, key) \
	do { if ((changed) && n < max) keys[n++] = (key); } while (0)
	RELAY_RESTART(relay_str_differs(run->id, fresh->id), "id");
	RELAY_RESTART(relay_str_differs(run->listen.text, fresh->listen.text), "listen");
	RELAY_RESTART(run->workers != fresh->workers, "workers");
	RELAY_RESTART(run->memory_limit != fresh->memory_limit, "memory_limit");
	RELAY_RESTART(run->max_connections != fresh->max_connections, "max_connections");
	RELAY_RESTART(run->shutdown_timeout_ms != fresh->shutdown_timeout_ms, "shutdown_timeout");
	RELAY_RESTART(run->tls.verify_client != fresh->tls.verify_client, "tls.verify_client");
	RELAY_RESTART(run->tls.handshake_timeout_ms != fresh->tls.handshake_timeout_ms,
	    "tls.handshake_timeout");
	RELAY_RESTART(run->limits.max_batch_bytes != fresh->limits.max_batch_bytes,
	    "limits.max_batch_bytes");
	RELAY_RESTART(run->limits.max_uncompressed_bytes != fresh->limits.max_uncompressed_bytes,
	    "limits.max_uncompressed_bytes");
	RELAY_RESTART(run->limits.window != fresh->limits.window, "limits.window");
	RELAY_RESTART(run->limits.connection_max_inflight != fresh->limits.connection_max_inflight,
	    "limits.connection_max_inflight");
	RELAY_RESTART(run->limits.idle_timeout_ms != fresh->limits.idle_timeout_ms,
	    "limits.idle_timeout");
	RELAY_RESTART(relay_str_differs(run->metrics.listen.text, fresh->metrics.listen.text),
	    "metrics.listen");
	RELAY_RESTART(relay_intake_differs(run, fresh), "http_intake");
#undef RELAY_RESTART
	return n;
}

/*
 * SIGHUP with a valid configuration: applies what a running relay can
 * change, as a whole or not at all: everything that can fail (the TLS
 * files, the Kafka settings and a new producer) is built first, then all
 * of it is put in place. Keys that need a restart are named in the log and
 * keep their running values; the rest applies. The relay copies what it
 * keeps, so fresh stays daemon_main's.
 */
int
relay_reload(void *ctx, void **fresh)
{
	struct relay *r = ctx;
	const struct relay_config *nc = *fresh;
	const char *keys[RELAY_RESTART_KEYS_MAX];
	struct server_reload *srl = NULL;
	struct kafka_reload *krl = NULL;
	bool new_producer;
	int rc, n;

	if ((rc = server_reload_prepare(r->server, nc, &srl)) != 0)
		return rc;
	if ((rc = kafka_reload_prepare(r->kafka, nc, &krl)) != 0) {
		server_reload_cancel(srl);
		return rc;
	}
	new_producer = kafka_reload_new_producer(krl);
	n = relay_restart_keys(r->cfg, nc, keys, RELAY_RESTART_KEYS_MAX);
	for (int i = 0; i < n; i++)
		log_warn("SIGHUP: %s changed: that needs a restart of the relay; the running "
		    "value stays until then, the other changes apply now", keys[i]);
	server_reload_commit(r->server, srl);
	kafka_reload_commit(r->kafka, krl);
	/* Said before the new level may silence it. */
	log_info("SIGHUP: applied: topic '%s', key '%s', %zu route(s), %zu allowed_topics "
	    "entries, %zu allowed agent pattern(s), log level %s; %s", nc->kafka.topic,
	    nc->kafka.key, nc->kafka.routes.n, nc->kafka.allowed_topics.n, nc->tls.allowed_agents.n,
	    daemon_log_levels[nc->log_level], new_producer ?
	    "a new Kafka producer takes over from the running one, which delivers what it holds" :
	    "the Kafka producer settings are unchanged: the running producer stays");
	log_set_level((enum log_level)nc->log_level);
	/* The intake's certificate and tokens files again (logged; what failed stays). */
	if (r->intake != NULL)
		(void)http_intake_reload(r->intake);
	return 0;
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
