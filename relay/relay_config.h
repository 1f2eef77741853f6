/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_config: the relay's configuration schema (one table) and its
 * settings struct. docs/architecture.md "Relay config" lists the keys users rely on.
 */
#ifndef LOGFERRY_RELAY_CONFIG_H
#define LOGFERRY_RELAY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/httpd_config.h"

enum relay_format { RELAY_FORMAT_JSON, RELAY_FORMAT_PROTOBUF, RELAY_FORMAT_RAW };
/* kafka.json_field_names, in the order of enum event_json_names. */
enum relay_json_names { RELAY_JSON_NAMES_ORIGINAL, RELAY_JSON_NAMES_HIVE };

/* One of kafka.routes: when every glob of match holds (and absent fields are), topic and key. */
struct relay_route {
	struct config_map match;             /* variable (stream, fields.NAME...) -> glob */
	struct config_list absent;           /* char *: fields.NAME that must be missing */
	char *topic;                         /* template */
	char *key;                           /* template; NULL: kafka.key */
};

/* One of kafka.allowed_topics: the topics agents whose id matches may fill. */
struct relay_allowed_topics {
	char *agents;                        /* glob of agent ids */
	struct config_list topics;           /* char *: globs */
};

struct relay_config {
	char *id;
	int log_level;                    /* enum log_level */
	int log_format;                   /* enum log_format */
	struct config_addr listen;
	int64_t workers;
	uint64_t memory_limit;
	int64_t max_connections;
	uint64_t shutdown_timeout_ms;
	struct {
		char *ca_file;
		char *cert_file;
		char *key_file;
		char *key_password;                  /* from {file: PATH}; NULL: key not encrypted */
		bool verify_client;
		struct config_list allowed_agents;   /* char *: globs */
		struct config_list ciphers;          /* char * */
		uint64_t handshake_timeout_ms;
	} tls;
	struct {
		uint64_t max_batch_bytes;
		uint64_t max_uncompressed_bytes;
		int64_t window;
		uint64_t connection_max_inflight;
		uint64_t idle_timeout_ms;
	} limits;
	struct {
		struct config_list brokers;          /* struct config_addr */
		char *topic;                         /* template */
		char *key;                           /* template; "" for no key */
		struct config_list routes;           /* struct relay_route, in order */
		struct config_list allowed_topics;   /* struct relay_allowed_topics; n 0: any topic */
		int format;                          /* enum relay_format */
		int json_field_names;                /* enum relay_json_names */
		uint64_t delivery_timeout_ms;
		char *dead_letter_topic;             /* NULL: refused events are logged, counted and acknowledged */
		bool headers;                        /* logferry-agent and logferry-seq on every record */
		char *sasl_password_file;            /* NULL: no SASL password (sasl.password is refused in properties) */
		struct config_map properties;        /* passed to librdkafka */
	} kafka;
	struct {
		struct config_addr listen;           /* text NULL: no endpoint */
	} metrics;
	/* POST /v1/events for senders without an agent (relay/http_intake.h); listen.n 0: off. */
	struct {
		struct config_list listen;           /* struct config_addr */
		char *stream;                        /* the events' stream unless an object names one */
		int64_t max_connections;
		uint64_t max_body_size;
		uint64_t idle_timeout_ms;
		uint64_t request_timeout_ms;
		uint64_t memory_limit;               /* request bodies in memory at once */
		struct httpd_config_auth auth;
		struct httpd_config_tls tls;         /* cert_file NULL: plain HTTP (loopback only) */
	} http_intake;
	struct config_secrets secrets;           /* values read from {file: PATH}, for the dump */
};

/* The most tokens http_intake.auth.tokens_file may hold. */
#define RELAY_HTTP_INTAKE_MAX_TOKENS 100000

struct tls_config_options;

/*
 * The server TLS options of the tls section, for tls_config_new: one
 * place, so that --check loads exactly what the server will. Pointers
 * into cfg.
 */
void relay_config_tls_options(const struct relay_config *cfg, struct tls_config_options *o);

/*
 * The relay's configuration as the daemon loads it (--check, start,
 * SIGHUP): its rules, and that it will work on this host: the TLS files
 * (ours, and librdkafka's client pair) parse and match, listen hosts are
 * well formed.
 */
extern const struct config_schema relay_config_schema;

/* The same rules without parsing the TLS files: for tests whose files are placeholders. */
extern const struct config_schema relay_config_rules_schema;

/*
 * Checks a routing template such as "logs.${stream}". Returns 0, or -EINVAL
 * and writes why into why (e.g. "unknown variable ${streem}").
 */
int relay_config_check_template(const char *tmpl, char *why, size_t whylen);

#endif
