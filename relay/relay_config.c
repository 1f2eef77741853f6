/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <librdkafka/rdkafka.h>

#include "common/daemon.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/token.h"
#include "relay/relay_config.h"
#include "relay/route.h"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC INT64_C(1000)
#define HOUR (3600 * SEC)

static const char *const formats[] = { "json", "protobuf", "raw", NULL };
static const char *const json_names[] = { "original", "hive", NULL };

static const struct config_key elem_string = { .type = CONFIG_STRING, .flags = CONFIG_NONEMPTY };
static const struct config_key elem_broker = {
	.type = CONFIG_ADDR, .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE),
};

#define C(f) offsetof(struct relay_config, f)
#define T(f) (C(tls.f) - C(tls))
static const struct config_key tls_keys[] = {
	{ "ca_file", CONFIG_STRING, T(ca_file), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "PEM file of the CA(s) that sign agent certificates." },
	{ "cert_file", CONFIG_STRING, T(cert_file), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "PEM certificate of this relay, followed by any intermediate CA certificates." },
	{ "key_file", CONFIG_STRING, T(key_file), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "PEM private key of cert_file (RSA or ECDSA)." },
	{ "key_password", CONFIG_STRING, T(key_password), .flags = CONFIG_SECRET,
	  .help = TLS_KEY_PASSWORD_HELP },
	{ "verify_client", CONFIG_BOOL, T(verify_client), .def = "true",
	  .help = "Require an agent certificate signed by ca_file whose common name equals the agent id in Hello." },
	{ "allowed_agents", CONFIG_LIST, T(allowed_agents), .def = "*",
	  .flags = CONFIG_SCALAR_AS_LIST | CONFIG_NONEMPTY, .elem = &elem_string,
	  .help = "Glob patterns of agent ids allowed to connect, e.g. [\"web-*\"]." },
	{ "ciphers", CONFIG_LIST, T(ciphers), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_SPLIT_COMMAS,
	  .elem = &elem_string,
	  .help = "TLS 1.2 cipher suites in order of preference (mbedtls names). Default: ECDHE with ChaCha20-Poly1305, then AES-GCM." },
	{ "handshake_timeout", CONFIG_DURATION, T(handshake_timeout_ms), .def = "10s",
	  .min = 100, .max = 300 * SEC, .help = "A handshake not finished in this time is abandoned." },
	{ NULL },
};
#undef T

#define L(f) (C(limits.f) - C(limits))
static const struct config_key limits_keys[] = {
	{ "max_batch_bytes", CONFIG_SIZE, L(max_batch_bytes), .def = "4MiB", .min = 64 * KIB, .max = 512 * MIB,
	  .help = "Largest compressed batch payload accepted; announced to agents in Welcome." },
	{ "max_uncompressed_bytes", CONFIG_SIZE, L(max_uncompressed_bytes), .def = "64MiB", .min = 64 * KIB,
	  .max = 1 * GIB,
	  .help = "Largest batch after decompression, declared or actual (a zstd bomb stops here)." },
	{ "window", CONFIG_INT, L(window), .def = "8", .min = 1, .max = 1024,
	  .help = "Batches an agent may have in flight on one connection." },
	{ "connection_max_inflight", CONFIG_SIZE, L(connection_max_inflight), .def = "32MiB", .min = 64 * KIB,
	  .max = 16 * GIB,
	  .help = "Bytes of one connection's batches not yet acknowledged by Kafka; above it the relay stops reading that connection." },
	{ "idle_timeout", CONFIG_DURATION, L(idle_timeout_ms), .def = "60s", .min = SEC, .max = 24 * HOUR,
	  .help = "A connection silent for this long (no frame, not even Ping) is closed." },
	{ NULL },
};
#undef L

#define R(f) offsetof(struct relay_route, f)
static const struct config_key route_keys[] = {
	{ "match", CONFIG_MAP, R(match),
	  .help = "Variable -> glob (fnmatch), all of which must hold: stream, host, agent, source "
	    "or fields.NAME, e.g. {stream: \"mobile*\", fields.event_type: \"*\"}. A missing "
	    "or null field matches no glob, so \"*\" requires the field. Empty: always holds." },
	{ "absent", CONFIG_LIST, R(absent), .flags = CONFIG_SCALAR_AS_LIST, .elem = &elem_string,
	  .help = "Fields (fields.NAME) that must be missing or null for the route to hold." },
	{ "topic", CONFIG_STRING, R(topic), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "Topic template of the events this route takes, as kafka.topic." },
	{ "key", CONFIG_STRING, R(key),
	  .help = "Record key template of the events this route takes. Default: kafka.key." },
	{ NULL },
};
#undef R
static const struct config_key elem_route = {
	.type = CONFIG_SECTION, .keys = route_keys, .size = sizeof(struct relay_route),
};

#define A(f) offsetof(struct relay_allowed_topics, f)
static const struct config_key allowed_topics_keys[] = {
	{ "agents", CONFIG_STRING, A(agents), .def = "*", .flags = CONFIG_NONEMPTY,
	  .help = "Glob of the agent ids this entry is for." },
	{ "topics", CONFIG_LIST, A(topics), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY |
	    CONFIG_SCALAR_AS_LIST, .elem = &elem_string,
	  .help = "Globs of the topics those agents' events may be produced to." },
	{ NULL },
};
#undef A
static const struct config_key elem_allowed_topics = {
	.type = CONFIG_SECTION, .keys = allowed_topics_keys,
	.size = sizeof(struct relay_allowed_topics),
};

#define K(f) (C(kafka.f) - C(kafka))
static const struct config_key kafka_keys[] = {
	{ "brokers", CONFIG_LIST, K(brokers), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY |
	    CONFIG_SCALAR_AS_LIST | CONFIG_SPLIT_COMMAS, .elem = &elem_broker,
	  .help = "Bootstrap brokers: \"host:port,host:port\" or a list." },
	{ "topic", CONFIG_STRING, K(topic), .def = "logs.${stream}", .flags = CONFIG_NONEMPTY,
	  .help = "Topic template; variables ${stream}, ${host}, ${agent}, ${source}, ${fields.NAME}, "
	    "each may end in :-DEFAULT. A topic that renders invalid goes to dead_letter_topic." },
	{ "key", CONFIG_STRING, K(key), .def = "${host}",
	  .help = "Record key template, same variables as topic; \"\" for no key." },
	{ "routes", CONFIG_LIST, K(routes), .elem = &elem_route,
	  .help = "Ordered routes: the first whose match holds gives the topic and key of an "
	    "event; kafka.topic and kafka.key are the default route." },
	{ "allowed_topics", CONFIG_LIST, K(allowed_topics), .elem = &elem_allowed_topics,
	  .help = "When set, the topics each agent's events may go to: an event whose topic no "
	    "entry for its agent allows goes to dead_letter_topic (which is always allowed)." },
	{ "format", CONFIG_ENUM, K(format), .def = "json", .names = formats,
	  .help = "Record value: json (one object per event), protobuf (the Event bytes as sent) or raw (the message line)." },
	{ "json_field_names", CONFIG_ENUM, K(json_field_names), .def = "original", .names = json_names,
	  .help = "Names of the members of \"fields\" in format json: original (as the event has them) or hive (lower-case [a-z0-9_] column names for Hive, Parquet and Avro; see logferry-relay(8), HIVE)." },
	{ "delivery_timeout", CONFIG_DURATION, K(delivery_timeout_ms), .def = "30s", .min = SEC, .max = HOUR,
	  .help = "A batch not fully acknowledged by Kafka in this time is answered RETRY." },
	{ "dead_letter_topic", CONFIG_STRING, K(dead_letter_topic), .flags = CONFIG_NONEMPTY,
	  .help = "Topic for events set aside: a topic that renders invalid or that allowed_topics "
	    "does not allow, or a record a broker refuses for good (too large for the topic, "
	    "invalid, a policy violation), with logferry-error, logferry-original-topic and "
	    "logferry-original-stream headers; also, while it is set, a record to a topic that "
	    "does not exist or that the relay is not authorized to write (so that one stream "
	    "does not hold an agent's whole spool until an operator acts). Without it set-aside "
	    "events are logged, counted and acknowledged, and those two errors are held: their "
	    "batches are retried until the topic exists or the ACL is granted." },
	{ "headers", CONFIG_BOOL, K(headers), .def = "true",
	  .help = "Whether records carry the logferry-agent and logferry-seq headers (the event's "
	    "identity, for consumers that drop duplicates; logferry-stream too while "
	    "dead_letter_topic is set). false: records carry no header, except logferry-piece on "
	    "pieces of an oversize event and the reason headers in dead_letter_topic (see "
	    "logferry-relay(8), KAFKA); saves the relay CPU per record." },
	{ "sasl_password_file", CONFIG_STRING, K(sasl_password_file), .flags = CONFIG_NONEMPTY,
	  .help = "File whose first line is the SASL password for the brokers (readable by the relay only); read again each time a producer is made." },
	{ "properties", CONFIG_MAP, K(properties),
	  .help = "librdkafka producer properties, passed unchanged (acks and idempotence are fixed by the relay)." },
	{ NULL },
};
#undef K

static const struct config_key metrics_keys[] = {
	{ "listen", CONFIG_ADDR, 0, .flags = CONFIG_REQUIRED | CONFIG_PORT_ZERO,
	  .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE),
	  .help = "host:port of the Prometheus metrics and health endpoint (/metrics, /health)." },
	{ NULL },
};

static const struct config_key elem_listen = {
	.type = CONFIG_ADDR, .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE),
	.flags = CONFIG_PORT_ZERO,
};

#define HI(f) (C(http_intake.f) - C(http_intake))
static const struct config_key http_intake_keys[] = {
	{ "listen", CONFIG_LIST, HI(listen), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY |
	    CONFIG_SCALAR_AS_LIST, .elem = &elem_listen,
	  .help = "host:port addresses of the HTTP intake (POST /v1/events)." },
	{ "stream", CONFIG_STRING, HI(stream), .def = "http", .flags = CONFIG_NONEMPTY,
	  .help = "Stream of the intake's events (${stream}) unless an object has a `stream` member." },
	{ "max_connections", CONFIG_INT, HI(max_connections), .def = "256", .min = 1, .max = 65536,
	  .help = "Connections open at once: at the bound the one idle the longest is closed for "
	    "a new one; with none idle the new one is answered 503 and closed." },
	HTTPD_CONFIG_CONNECTION_KEYS(HI(max_body_size), HI(idle_timeout_ms), 0),
	{ "request_timeout", CONFIG_DURATION, HI(request_timeout_ms), .def = "30s", .min = 100,
	  .max = HOUR,
	  .help = "How long a request may wait for memory for its body, for room in librdkafka's "
	    "queue and for Kafka's acknowledgements, before it is answered 503 with Retry-After." },
	{ "memory_limit", CONFIG_SIZE, HI(memory_limit), .def = "64MiB", .min = 1 * MIB,
	  .max = 64 * GIB,
	  .help = "Request bodies held at once (about twice a body's size each, until answered); "
	    "a request that does not fit waits, unread, up to request_timeout." },
	{ "auth", CONFIG_SECTION, HI(auth), .keys = httpd_config_auth_keys,
	  .help = "Bearer tokens and per-sender rate limits, as an agent's http source's. A "
	    "token's NAME is also its events' agent id (logferry-agent header, ${agent}); "
	    "a request over its sender's limit has nothing produced." },
	{ "tls", CONFIG_SECTION, HI(tls), .keys = httpd_config_tls_keys,
	  .help = "HTTPS, and client certificates." },
	{ NULL },
};
#undef HI

static const struct config_key relay_keys[] = {
	{ "id", CONFIG_STRING, C(id), .flags = CONFIG_NONEMPTY,
	  .help = "Relay id, announced in Welcome and in logs. Default: the host name." },
	{ "log_level", CONFIG_ENUM, C(log_level), .def = "info", .names = daemon_log_levels,
	  .help = "Least severe level of the daemon's own messages on stderr." },
	{ "log_format", CONFIG_ENUM, C(log_format), .def = "text", .names = daemon_log_formats,
	  .help = DAEMON_LOG_FORMAT_HELP },
	{ "listen", CONFIG_ADDR, C(listen), .def = "0.0.0.0:7540", .flags = CONFIG_PORT_ZERO,
	  .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE), .help = "host:port agents connect to." },
	{ "workers", CONFIG_INT, C(workers), .def = "2", .min = 1, .max = 256,
	  .help = "Threads serving connections, each with its own event loop." },
	{ "memory_limit", CONFIG_SIZE, C(memory_limit), .def = "1GiB", .min = 16 * MIB, .max = 1024 * GIB,
	  .help = "One budget for connection buffers, batches, decompression and librdkafka's queue." },
	{ "max_connections", CONFIG_INT, C(max_connections), .def = "10000", .min = 1, .max = 1000000,
	  .help = "Agent connections accepted at once; more are refused." },
	{ "shutdown_timeout", CONFIG_DURATION, C(shutdown_timeout_ms), .def = "10s", .min = 0, .max = HOUR,
	  .help = "On SIGTERM, how long in-flight batches may take to reach Kafka before the relay exits." },
	{ "tls", CONFIG_SECTION, C(tls), .flags = CONFIG_REQUIRED, .keys = tls_keys,
	  .help = "Mutual TLS with the agents." },
	{ "limits", CONFIG_SECTION, C(limits), .keys = limits_keys, .help = "Per-connection bounds." },
	{ "kafka", CONFIG_SECTION, C(kafka), .flags = CONFIG_REQUIRED, .keys = kafka_keys,
	  .help = "Where events are produced." },
	{ "metrics", CONFIG_SECTION, C(metrics), .keys = metrics_keys,
	  .help = "Prometheus metrics. Without it no endpoint is opened." },
	{ "http_intake", CONFIG_SECTION, C(http_intake), .keys = http_intake_keys,
	  .help = "HTTP intake for senders without an agent: JSON events posted here are produced "
	    "to Kafka through the same routes and answered 200 only once Kafka acknowledged "
	    "every one. Without it no intake is opened." },
	{ NULL },
};
#undef C

int
relay_config_check_template(const char *tmpl, char *why, size_t whylen)
{
	/* The relay's own parser: --check and the relay cannot disagree. */
	return route_check(tmpl, why, whylen);
}

/*
 * Properties the relay sets itself: an Ack must mean the events are in Kafka
 * (acks=all, idempotence), and the delivery timeout decides RETRY answers.
 */
static const struct {
	const char *name;
	const char *hint;
	bool secret;              /* a password: only as {file: PATH} */
} fixed_properties[] = {
	{ "acks", "the relay always produces with acks=all so that an Ack means every replica has the events", false },
	{ "request.required.acks", "the relay always produces with acks=all so that an Ack means every replica has the events", false },
	{ "enable.idempotence", "the relay always enables idempotence so that retries never duplicate or reorder events", false },
	{ "bootstrap.servers", "use kafka.brokers", false },
	{ "metadata.broker.list", "use kafka.brokers", false },
	{ "message.timeout.ms", "use kafka.delivery_timeout", false },
	{ "delivery.timeout.ms", "use kafka.delivery_timeout", false },
	{ "transactional.id", "the relay does not produce in transactions; with a transactional id every produce outside one fails", false },
	{ "sasl.password", "put the password alone in a file only the relay can read and name that file in kafka.sasl_password_file", true },
	{ "ssl.key.password", "use an unencrypted key file only the relay can read", true },
	{ NULL, NULL, false },
};

static void
relay_config_check_properties(struct config_check *c, const struct config_map *m)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512], path[256];

	for (size_t i = 0; i < m->n; i++) {
		const char *hint = NULL;
		bool secret = false;

		snprintf(path, sizeof(path), "kafka.properties.%s", m->items[i].key);
		for (int j = 0; fixed_properties[j].name != NULL; j++)
			if (strcmp(m->items[i].key, fixed_properties[j].name) == 0) {
				hint = fixed_properties[j].hint;
				secret = fixed_properties[j].secret;
			}
		if (hint != NULL && secret && !config_from_file(c, path))
			config_error(c, path, "is a password, and passwords stay out of the "
			    "configuration file: %s", hint);
		else if (hint != NULL && !secret)
			config_error(c, path, "is set by the relay itself: %s", hint);
		/* librdkafka knows its properties best: ask it. */
		else if (rd_kafka_conf_set(conf, m->items[i].key, m->items[i].value, errstr,
		    sizeof(errstr)) != RD_KAFKA_CONF_OK)
			config_error(c, path, "%s", errstr);
	}
	rd_kafka_conf_destroy(conf);
}

/*
 * The largest event of an agent with its default max_line (1 MiB) and the
 * framing around it: a batch limit below this makes such an event
 * impossible to deliver, and the agent could only drop it.
 */
#define RELAY_MIN_EVENT_ROOM (MIB + 64 * KIB)

/* The value of librdkafka property name, or NULL. */
static const char *
relay_config_property(const struct config_map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->items[i].key, name) == 0)
			return m->items[i].value;
	return NULL;
}

/*
 * librdkafka's client certificate and key (PEM files) are checked as ours
 * are, so that a key that is not the certificate's shows here rather than
 * as a failing broker connection. Other forms (PKCS#12, PEM in the
 * property itself) are left to librdkafka.
 */
static void
relay_config_check_kafka_tls(struct config_check *c, const struct config_map *m)
{
	struct tls_config_options o = {
		.role = TLS_ROLE_CLIENT,
		.ca_file = relay_config_property(m, "ssl.ca.location"),
		.cert_file = relay_config_property(m, "ssl.certificate.location"),
		.key_file = relay_config_property(m, "ssl.key.location"),
	};
	char err[768];
	const char *path;
	struct stat st;

	if (o.cert_file == NULL || o.key_file == NULL)
		return;
	/*
	 * Without ssl.ca.location librdkafka trusts the system's CAs, and it
	 * also takes a directory of them: then only the pair is checked.
	 */
	if (o.ca_file == NULL || strcmp(o.ca_file, "probe") == 0 ||
	    (stat(o.ca_file, &st) == 0 && S_ISDIR(st.st_mode)))
		o.ca_file = o.cert_file;
	if (daemon_check_file(c, "kafka.properties.ssl.certificate.location", o.cert_file) != 0 ||
	    daemon_check_file(c, "kafka.properties.ssl.key.location", o.key_file) != 0 ||
	    (o.ca_file != o.cert_file &&
	    daemon_check_file(c, "kafka.properties.ssl.ca.location", o.ca_file) != 0))
		return;
	if (tls_check_files(&o, NULL, 0, err, sizeof(err)) == 0)
		return;
	if (strncmp(err, "key_file", 8) == 0)
		path = "kafka.properties.ssl.key.location";
	else if (strncmp(err, "ca_file", 7) == 0 && o.ca_file != o.cert_file)
		path = "kafka.properties.ssl.ca.location";
	else
		path = "kafka.properties.ssl.certificate.location";
	config_error(c, path, "%s", err);
}

void
relay_config_tls_options(const struct relay_config *cfg, struct tls_config_options *o)
{
	*o = (struct tls_config_options){
		.role = TLS_ROLE_SERVER,
		.ca_file = cfg->tls.ca_file,
		.cert_file = cfg->tls.cert_file,
		.key_file = cfg->tls.key_file,
		.key_password = cfg->tls.key_password,
		.verify_client = cfg->tls.verify_client,
		.ciphers = cfg->tls.ciphers.items,
		.n_ciphers = cfg->tls.ciphers.n,
		.handshake_timeout_ms = cfg->tls.handshake_timeout_ms,
		/* The relay sends only small control frames. */
		.send_buffer_max = TLS_SEND_BUFFER_MIN,
	};
}

/* What would fail at start: the TLS files, the listeners. */
static void
relay_config_check_host(struct config_check *c, struct relay_config *cfg)
{
	struct tls_config_options o;

	relay_config_tls_options(cfg, &o);
	(void)daemon_check_tls(c, "tls", &o, NULL, 0);
	relay_config_check_kafka_tls(c, &cfg->kafka.properties);
	daemon_check_listen(c, "listen", &cfg->listen);
	daemon_check_listen(c, "metrics.listen", &cfg->metrics.listen);
	for (size_t i = 0; i < cfg->http_intake.listen.n; i++)
		daemon_check_listen(c, "http_intake.listen",
		    (const struct config_addr *)cfg->http_intake.listen.items + i);
	if (cfg->http_intake.listen.n > 0 && cfg->http_intake.tls.cert_file != NULL) {
		httpd_config_tls_options(&cfg->http_intake.tls, &o);
		(void)daemon_check_tls(c, "http_intake.tls", &o, NULL, 0);
	}
}

/*
 * Routing compiled as the relay will: templates, matches. An event value
 * in a topic may render a name Kafka refuses: without a dead-letter topic
 * such events are only logged and counted, which --check says.
 */
static void
relay_config_check_routes(struct config_check *c, const struct relay_config *cfg)
{
	struct route_table *t;
	char path[96], why[256];
	bool bad = false;

	/* Both defaults' faults at once; the table then names the first of the routes'. */
	if (relay_config_check_template(cfg->kafka.topic, why, sizeof(why)) != 0) {
		config_error(c, "kafka.topic", "%s", why);
		bad = true;
	}
	if (relay_config_check_template(cfg->kafka.key, why, sizeof(why)) != 0) {
		config_error(c, "kafka.key", "%s", why);
		bad = true;
	}
	if (bad)
		return;
	if (route_table_new(cfg, &t, path, sizeof(path), why, sizeof(why)) != 0) {
		config_error(c, path, "%s", why);
		return;
	}
	if (cfg->kafka.dead_letter_topic == NULL && route_table_uses_fields(t))
		log_warn("%s: kafka: topic templates use ${fields.*} and kafka.dead_letter_topic is "
		    "not set: an event whose topic renders invalid (empty, too long, a byte outside "
		    "[A-Za-z0-9._-]) or not allowed will be logged, counted and dropped; set "
		    "kafka.dead_letter_topic to keep such events", config_check_file(c));
	route_table_free(t);
}

/* http_intake: what its keys mean together. */
static void
relay_config_check_http_intake(struct config_check *c, const struct relay_config *cfg)
{
	const typeof(cfg->http_intake) *h = &cfg->http_intake;

	if (h->listen.n == 0)
		return;
	if ((h->tls.cert_file == NULL) != (h->tls.key_file == NULL))
		config_error(c, "http_intake.tls", "cert_file and key_file go together");
	if (h->tls.verify_client && (h->tls.cert_file == NULL || h->tls.ca_file == NULL))
		config_error(c, "http_intake.tls.verify_client", "needs cert_file, key_file and "
		    "ca_file");
	if (h->tls.allowed_cns.n > 0 && !h->tls.verify_client)
		config_error(c, "http_intake.tls.allowed_cns", "needs verify_client: true");
	if (h->auth.tokens_file == NULL && (h->auth.events_per_s != 0 || h->auth.bytes_per_s != 0))
		config_error(c, "http_intake.auth", "rate limits are per sender: set tokens_file");
	if (h->tls.cert_file == NULL && h->auth.tokens_file != NULL)
		log_warn("%s: http_intake: bearer tokens over plain HTTP can be read by anyone on the "
		    "path: set http_intake.tls", config_check_file(c));
	/* The tokens file loads as the intake will load it: its errors name its line. */
	if (h->auth.tokens_file != NULL) {
		struct token_set *ts = NULL;
		char err[512];

		if (token_set_load(h->auth.tokens_file, RELAY_HTTP_INTAKE_MAX_TOKENS, &ts, err,
		    sizeof(err)) != 0)
			config_error(c, "http_intake.auth.tokens_file", "%s", err);
		token_set_free(ts);
	}
}

static void
relay_config_check(struct config_check *c, struct relay_config *cfg, bool host)
{
	char why[256];

	relay_config_check_routes(c, cfg);
	if (cfg->limits.max_batch_bytes > cfg->limits.max_uncompressed_bytes)
		config_error(c, "limits.max_batch_bytes", "must not be above max_uncompressed_bytes");
	if (cfg->limits.max_batch_bytes < (uint64_t)RELAY_MIN_EVENT_ROOM)
		config_error(c, "limits.max_batch_bytes", "must be at least 1088KiB: below it an event "
		    "of an agent's default max_line (1MiB) could never be delivered");
	if (cfg->limits.max_uncompressed_bytes < (uint64_t)RELAY_MIN_EVENT_ROOM)
		config_error(c, "limits.max_uncompressed_bytes", "must be at least 1088KiB: below it "
		    "an event of an agent's default max_line (1MiB) could never be delivered");
	if (cfg->kafka.dead_letter_topic != NULL &&
	    route_topic_check(cfg->kafka.dead_letter_topic, strlen(cfg->kafka.dead_letter_topic),
	    why, sizeof(why)) != 0)
		config_error(c, "kafka.dead_letter_topic", "must be a Kafka topic name: 1 to %d of "
		    "[a-zA-Z0-9._-], not a template", ROUTE_TOPIC_MAX);
	if (cfg->limits.connection_max_inflight > cfg->memory_limit)
		config_error(c, "limits.connection_max_inflight", "must not be above memory_limit");
	relay_config_check_properties(c, &cfg->kafka.properties);
	if (!host) {
		(void)daemon_check_file(c, "tls.ca_file", cfg->tls.ca_file);
		(void)daemon_check_file(c, "tls.cert_file", cfg->tls.cert_file);
		(void)daemon_check_file(c, "tls.key_file", cfg->tls.key_file);
	}
	if (cfg->kafka.sasl_password_file != NULL)
		(void)daemon_check_file(c, "kafka.sasl_password_file", cfg->kafka.sasl_password_file);
	relay_config_check_http_intake(c, cfg);
	daemon_default_id(c, &cfg->id);
	if (host)
		relay_config_check_host(c, cfg);
}

static void
relay_config_validate(struct config_check *c, void *obj)
{
	relay_config_check(c, obj, true);
}

static void
relay_config_validate_rules(struct config_check *c, void *obj)
{
	relay_config_check(c, obj, false);
}

const struct config_schema relay_config_schema = {
	.name = "relay",
	.keys = relay_keys,
	.size = sizeof(struct relay_config),
	.validate = relay_config_validate,
	.secrets = CONFIG_SECRETS_AT(struct relay_config, secrets),
};

const struct config_schema relay_config_rules_schema = {
	.name = "relay",
	.keys = relay_keys,
	.size = sizeof(struct relay_config),
	.validate = relay_config_validate_rules,
};
