/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/daemon.h"
#include "relay/relay_config.h"
#include "tests/unit/config_fixture.h"

/* The rules alone: the TLS files here are empty placeholders. */
const struct config_schema *fixture_schema = &relay_config_rules_schema;
const char *fixture_name = "relay.yaml";


static void
assert_host_name(const char *id)
{
	char host[256];

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_non_null(id);
	assert_string_equal(id, host);
}

/* Valid sections, put last so that the lines under test come first. */
#define TLS_OK "tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
#define KAFKA_OK "kafka: {brokers: kafka1:9092}\n"

static const char design_example[] =
	"id: relay-1\n"
	"listen: 0.0.0.0:7540\n"
	"workers: 2\n"
	"memory_limit: 1GiB\n"
	"tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@,\n"
	"      verify_client: true, allowed_agents: [\"web-*\"]}\n"
	"kafka:\n"
	"  brokers: kafka1:9092,kafka2:9092\n"
	"  topic: logs.${stream}\n"
	"  key: ${host}\n"
	"  format: json\n"
	"  delivery_timeout: 30s\n"
	"  properties: {compression.type: lz4}   # passed to librdkafka unchanged\n"
	"metrics: {listen: 127.0.0.1:9541}\n";

static void
test_design_example_config_is_valid_and_typed(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok(design_example, &cfg);

	assert_string_equal(cfg.id, "relay-1");
	assert_string_equal(daemon_log_levels[cfg.log_level], "info");
	assert_addr(&cfg.listen, CONFIG_SCHEME_NONE, "0.0.0.0", 7540, NULL, "0.0.0.0:7540");
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(cfg.memory_limit, 1 * GIB);

	assert_string_equal(cfg.tls.ca_file, ca_path);
	assert_string_equal(cfg.tls.cert_file, cert_path);
	assert_string_equal(cfg.tls.key_file, key_path);
	assert_true(cfg.tls.verify_client);
	assert_int_equal(cfg.tls.allowed_agents.n, 1);
	assert_string_equal(string_at(&cfg.tls.allowed_agents, 0), "web-*");

	assert_int_equal(cfg.kafka.brokers.n, 2);
	assert_addr(addr_at(&cfg.kafka.brokers, 0), CONFIG_SCHEME_NONE, "kafka1", 9092, NULL, "kafka1:9092");
	assert_addr(addr_at(&cfg.kafka.brokers, 1), CONFIG_SCHEME_NONE, "kafka2", 9092, NULL, "kafka2:9092");
	assert_string_equal(cfg.kafka.topic, "logs.${stream}");
	assert_string_equal(cfg.kafka.key, "${host}");
	assert_int_equal(cfg.kafka.format, RELAY_FORMAT_JSON);
	assert_int_equal(cfg.kafka.delivery_timeout_ms, 30000);
	assert_int_equal(cfg.kafka.properties.n, 1);
	assert_string_equal(cfg.kafka.properties.items[0].key, "compression.type");
	assert_string_equal(cfg.kafka.properties.items[0].value, "lz4");
	assert_int_equal(cfg.kafka.properties.items[0].line, 13);

	assert_addr(&cfg.metrics.listen, CONFIG_SCHEME_NONE, "127.0.0.1", 9541, NULL, "127.0.0.1:9541");

	config_free(&relay_config_schema, &cfg);
}

static void
test_absent_keys_get_their_defaults(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok(TLS_OK KAFKA_OK, &cfg);

	assert_host_name(cfg.id);
	assert_string_equal(daemon_log_levels[cfg.log_level], "info");
	assert_addr(&cfg.listen, CONFIG_SCHEME_NONE, "0.0.0.0", 7540, NULL, "0.0.0.0:7540");
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(cfg.memory_limit, 1 * GIB);
	assert_int_equal(cfg.max_connections, 10000);
	assert_int_equal(cfg.shutdown_timeout_ms, 10000);

	assert_true(cfg.tls.verify_client);
	assert_int_equal(cfg.tls.allowed_agents.n, 1);
	assert_string_equal(string_at(&cfg.tls.allowed_agents, 0), "*");
	assert_int_equal(cfg.tls.ciphers.n, 0);
	assert_int_equal(cfg.tls.handshake_timeout_ms, 10000);

	assert_int_equal(cfg.limits.max_batch_bytes, 4 * MIB);
	assert_int_equal(cfg.limits.max_uncompressed_bytes, 64 * MIB);
	assert_int_equal(cfg.limits.window, 8);
	assert_int_equal(cfg.limits.connection_max_inflight, 32 * MIB);
	assert_int_equal(cfg.limits.idle_timeout_ms, 60000);

	assert_int_equal(cfg.kafka.brokers.n, 1);
	assert_addr(addr_at(&cfg.kafka.brokers, 0), CONFIG_SCHEME_NONE, "kafka1", 9092, NULL, "kafka1:9092");
	assert_string_equal(cfg.kafka.topic, "logs.${stream}");
	assert_string_equal(cfg.kafka.key, "${host}");
	assert_int_equal(cfg.kafka.format, RELAY_FORMAT_JSON);
	assert_int_equal(cfg.kafka.json_field_names, RELAY_JSON_NAMES_ORIGINAL);
	assert_int_equal(cfg.kafka.delivery_timeout_ms, 30000);
	assert_int_equal(cfg.kafka.properties.n, 0);

	assert_null(cfg.metrics.listen.text);
	assert_null(cfg.metrics.listen.host);

	config_free(&relay_config_schema, &cfg);
}

static void
test_tilde_value_is_absent_and_the_default_applies(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("id: ~\n"
	    "listen:\n"
	    "workers: null\n"
	    "kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  key: ~\n"
	    "  properties:\n"
	    TLS_OK, &cfg);
	assert_host_name(cfg.id);
	assert_addr(&cfg.listen, CONFIG_SCHEME_NONE, "0.0.0.0", 7540, NULL, "0.0.0.0:7540");
	assert_int_equal(cfg.workers, 2);
	assert_string_equal(cfg.kafka.key, "${host}");
	assert_int_equal(cfg.kafka.properties.n, 0);
	config_free(&relay_config_schema, &cfg);
}

static void
test_brokers_as_a_yaml_list_also_works(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("kafka:\n"
	    "  brokers:\n"
	    "    - kafka1:9092\n"
	    "    - \"[::1]:9093\"\n"
	    TLS_OK, &cfg);
	assert_int_equal(cfg.kafka.brokers.n, 2);
	assert_addr(addr_at(&cfg.kafka.brokers, 0), CONFIG_SCHEME_NONE, "kafka1", 9092, NULL, "kafka1:9092");
	assert_addr(addr_at(&cfg.kafka.brokers, 1), CONFIG_SCHEME_NONE, "::1", 9093, NULL, "[::1]:9093");
	config_free(&relay_config_schema, &cfg);

	/* Spaces around the commas are not part of the addresses. */
	load_ok("kafka: {brokers: \"kafka1:9092, kafka2:9092 ,kafka3:9092\"}\n"
	    TLS_OK, &cfg);
	assert_int_equal(cfg.kafka.brokers.n, 3);
	assert_addr(addr_at(&cfg.kafka.brokers, 0), CONFIG_SCHEME_NONE, "kafka1", 9092, NULL, "kafka1:9092");
	assert_addr(addr_at(&cfg.kafka.brokers, 1), CONFIG_SCHEME_NONE, "kafka2", 9092, NULL, "kafka2:9092");
	assert_addr(addr_at(&cfg.kafka.brokers, 2), CONFIG_SCHEME_NONE, "kafka3", 9092, NULL, "kafka3:9092");
	config_free(&relay_config_schema, &cfg);
}

static void
test_empty_key_means_records_without_key(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  key: \"\"\n"
	    TLS_OK, &cfg);
	assert_string_equal(cfg.kafka.key, "");
	config_free(&relay_config_schema, &cfg);
}

static void
test_every_template_variable_is_accepted(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  topic: logs.${agent}.${source}-${stream}\n"
	    "  key: ${host}/${fields.user_id}\n"
	    TLS_OK, &cfg);
	assert_string_equal(cfg.kafka.topic, "logs.${agent}.${source}-${stream}");
	assert_string_equal(cfg.kafka.key, "${host}/${fields.user_id}");
	config_free(&relay_config_schema, &cfg);

	load_ok("kafka: {brokers: kafka1:9092, topic: all-logs}\n"
	    TLS_OK, &cfg);
	assert_string_equal(cfg.kafka.topic, "all-logs");
	config_free(&relay_config_schema, &cfg);
}

static void
test_unknown_template_variable_is_named(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  topic: logs.${streem}\n"
	    "  key: ${fields.}\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.topic: unknown variable ${streem}: use ${stream}, "
	    "${host}, ${agent}, ${source} or ${fields.NAME} (each may end in :-DEFAULT)\n"
	    "relay.yaml:4: kafka.key: unknown variable ${fields.}: use ${stream}, "
	    "${host}, ${agent}, ${source} or ${fields.NAME} (each may end in :-DEFAULT)\n");
}

/* Lower-case names are templates: the environment's ${NAME:-default} leaves them alone. */
static void
test_template_variables_take_a_default(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  topic: ios.${fields.event_type:-unknown}\n"
	    "  key: ${fields.user_id:-}${host:-nohost}\n"
	    TLS_OK, &cfg);
	assert_string_equal(cfg.kafka.topic, "ios.${fields.event_type:-unknown}");
	assert_string_equal(cfg.kafka.key, "${fields.user_id:-}${host:-nohost}");
	config_free(&relay_config_schema, &cfg);
}

static void
test_routes_and_allowed_topics_load_in_order(void **state)
{
	struct relay_config cfg;
	const struct relay_route *r;
	const struct relay_allowed_topics *a;

	(void)state;
	load_ok("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  dead_letter_topic: mobile.dead\n"
	    "  routes:\n"
	    "    - match: {stream: mobile, fields.event_type: \"*\"}\n"
	    "      topic: mobile.${fields.event_type}\n"
	    "      key: ${fields.user_id}\n"
	    "    - match: {stream: mobile}\n"
	    "      absent: fields.event_type\n"
	    "      topic: mobile.unknown\n"
	    "  allowed_topics:\n"
	    "    - {agents: \"phone-*\", topics: [\"mobile.*\"]}\n"
	    "    - topics: logs.*\n"
	    TLS_OK, &cfg);
	assert_int_equal(cfg.kafka.routes.n, 2);
	r = cfg.kafka.routes.items;
	assert_int_equal(r[0].match.n, 2);
	assert_string_equal(r[0].match.items[1].key, "fields.event_type");
	assert_string_equal(r[0].match.items[1].value, "*");
	assert_string_equal(r[0].topic, "mobile.${fields.event_type}");
	assert_string_equal(r[0].key, "${fields.user_id}");
	assert_int_equal(r[1].absent.n, 1);
	assert_string_equal(string_at(&r[1].absent, 0), "fields.event_type");
	assert_null(r[1].key);
	assert_int_equal(cfg.kafka.allowed_topics.n, 2);
	a = cfg.kafka.allowed_topics.items;
	assert_string_equal(a[0].agents, "phone-*");
	assert_string_equal(string_at(&a[0].topics, 0), "mobile.*");
	assert_string_equal(a[1].agents, "*");
	assert_string_equal(string_at(&a[1].topics, 0), "logs.*");
	config_free(&relay_config_schema, &cfg);
}

static void
test_bad_routes_are_named_at_their_line(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  routes:\n"
	    "    - topic: a.${fields.x}\n"
	    "    - match: {streem: x}\n"
	    "      topic: b\n"
	    TLS_OK,
	    "relay.yaml:5: kafka.routes[1].match.streem: unknown variable streem: use stream, "
	    "host, agent, source or fields.NAME\n");
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  routes:\n"
	    "    - topic: a.${fieldz.x}\n"
	    TLS_OK,
	    "relay.yaml:4: kafka.routes[0].topic: unknown variable ${fieldz.x}: use ${stream}, "
	    "${host}, ${agent}, ${source} or ${fields.NAME} (each may end in :-DEFAULT)\n");
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  routes:\n"
	    "    - match: {stream: x}\n"
	    TLS_OK,
	    "relay.yaml:4: kafka.routes[0].topic: missing: this key is required\n");
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  allowed_topics:\n"
	    "    - agents: web-*\n"
	    TLS_OK,
	    "relay.yaml:4: kafka.allowed_topics[0].topics: missing: this key is required\n");
}

static void
test_unclosed_template_variable_is_refused(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  topic: logs.${stream\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.topic: '${stream' is not closed with '}'\n");
}

static void
test_bare_dollar_is_refused(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  topic: logs.$stream\n"
	    "  key: price$\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.topic: '$' must start a variable such as ${stream}\n"
	    "relay.yaml:4: kafka.key: '$' must start a variable such as ${stream}\n");
}

static void
test_unknown_librdkafka_property_is_refused_with_its_reason(void **state)
{
	struct relay_config cfg;
	const char *line1 = "relay.yaml:5: kafka.properties.no.such.property: "
	    "No such configuration property";
	const char *line2 = "relay.yaml:6: kafka.properties.compression.type: "
	    "Invalid value \"zip\"";
	char *err, *second;

	(void)state;
	assert_int_equal(load("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  properties:\n"
	    "    linger.ms: 5\n"
	    "    no.such.property: 1\n"
	    "    compression.type: zip\n"
	    TLS_OK, &cfg, &err), -EINVAL);
	/* The reasons are librdkafka's own words, one line each. */
	assert_int_equal(strncmp(err, line1, strlen(line1)), 0);
	second = strchr(err, '\n');
	assert_non_null(second);
	second++;
	assert_int_equal(strncmp(second, line2, strlen(line2)), 0);
	assert_non_null(strchr(second, '\n'));
	assert_string_equal(strchr(second, '\n'), "\n");
	config_free(&relay_config_schema, &cfg);
	free(err);
}

static void
test_properties_the_relay_fixes_are_refused(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  properties:\n"
	    "    acks: 1\n"
	    "    enable.idempotence: false\n"
	    "    bootstrap.servers: other:9092\n"
	    "    message.timeout.ms: 1000\n"
	    "    transactional.id: tx-1\n"
	    TLS_OK,
	    "relay.yaml:4: kafka.properties.acks: is set by the relay itself: the relay "
	    "always produces with acks=all so that an Ack means every replica has the events\n"
	    "relay.yaml:5: kafka.properties.enable.idempotence: is set by the relay itself: "
	    "the relay always enables idempotence so that retries never duplicate or reorder events\n"
	    "relay.yaml:6: kafka.properties.bootstrap.servers: is set by the relay itself: "
	    "use kafka.brokers\n"
	    "relay.yaml:7: kafka.properties.message.timeout.ms: is set by the relay itself: "
	    "use kafka.delivery_timeout\n"
	    "relay.yaml:8: kafka.properties.transactional.id: is set by the relay itself: "
	    "the relay does not produce in transactions; with a transactional id every produce "
	    "outside one fails\n");
}

static void
test_passwords_in_properties_are_refused(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  properties:\n"
	    "    sasl.password: hunter2\n"
	    "    ssl.key.password: hunter3\n"
	    TLS_OK,
	    "relay.yaml:4: kafka.properties.sasl.password: is a password, and passwords stay out "
	    "of the configuration file: put the password alone in a file only the relay can read "
	    "and name that file in kafka.sasl_password_file\n"
	    "relay.yaml:5: kafka.properties.ssl.key.password: is a password, and passwords stay "
	    "out of the configuration file: use an unencrypted key file only the relay can read\n");
}

static void
test_sasl_password_file_must_be_readable(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  sasl_password_file: /nonexistent/kafka.password\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.sasl_password_file: cannot read '/nonexistent/kafka.password': "
	    "No such file or directory\n");
}

static void
test_properties_must_be_a_mapping_of_single_values(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  properties: [linger.ms=5]\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.properties: expected a mapping, not a list\n");
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  properties:\n"
	    "    linger.ms: [5]\n"
	    "    batch.size: 1000\n"
	    "    batch.size: 2000\n"
	    TLS_OK,
	    "relay.yaml:4: kafka.properties.linger.ms: expected a single value, not a list\n"
	    "relay.yaml:6: kafka.properties.batch.size: duplicate key\n");
}

static void
test_max_batch_bytes_above_max_uncompressed_bytes_is_refused(void **state)
{
	(void)state;
	expect_errors("limits:\n"
	    "  max_batch_bytes: 128MiB\n"
	    "  max_uncompressed_bytes: 64MiB\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:2: limits.max_batch_bytes: must not be above max_uncompressed_bytes\n");
	/* Against the default max_uncompressed_bytes (64MiB) too. */
	expect_errors("limits: {max_batch_bytes: 65MiB}\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:1: limits.max_batch_bytes: must not be above max_uncompressed_bytes\n");
}

static void
test_batch_limits_below_a_default_max_line_event_are_refused(void **state)
{
	(void)state;
	expect_errors("limits:\n"
	    "  max_batch_bytes: 1MiB\n"
	    "  max_uncompressed_bytes: 1MiB\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:2: limits.max_batch_bytes: must be at least 1088KiB: below it an event of "
	    "an agent's default max_line (1MiB) could never be delivered\n"
	    "relay.yaml:3: limits.max_uncompressed_bytes: must be at least 1088KiB: below it an "
	    "event of an agent's default max_line (1MiB) could never be delivered\n");
}

static void
test_dead_letter_topic_is_a_topic_name(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok(TLS_OK KAFKA_OK, &cfg);
	assert_null(cfg.kafka.dead_letter_topic);
	config_free(&relay_config_schema, &cfg);
	load_ok(TLS_OK "kafka: {brokers: kafka1:9092, dead_letter_topic: logs.dead-letter_1}\n", &cfg);
	assert_string_equal(cfg.kafka.dead_letter_topic, "logs.dead-letter_1");
	config_free(&relay_config_schema, &cfg);
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  dead_letter_topic: dead.${stream}\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.dead_letter_topic: must be a Kafka topic name: 1 to 249 of "
	    "[a-zA-Z0-9._-], not a template\n");
}

static void
test_connection_max_inflight_above_memory_limit_is_refused(void **state)
{
	(void)state;
	expect_errors("memory_limit: 32MiB\n"
	    "limits:\n"
	    "  connection_max_inflight: 64MiB\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:3: limits.connection_max_inflight: must not be above memory_limit\n");
	/* The default (32MiB) against a small memory_limit; no limits section to point at. */
	expect_errors(TLS_OK KAFKA_OK
	    "memory_limit: 16MiB\n",
	    "relay.yaml:1: limits.connection_max_inflight: must not be above memory_limit\n");
}

static void
test_missing_kafka_is_refused(void **state)
{
	(void)state;
	expect_errors("id: relay-1\n"
	    TLS_OK,
	    "relay.yaml:1: kafka: missing: this key is required\n");
	expect_errors(TLS_OK
	    "kafka:\n"
	    "  topic: logs\n",
	    "relay.yaml:2: kafka.brokers: missing: this key is required\n");
}

static void
test_missing_tls_is_refused(void **state)
{
	(void)state;
	expect_errors("id: relay-1\n"
	    KAFKA_OK,
	    "relay.yaml:1: tls: missing: this key is required\n");
	expect_errors("",
	    "relay.yaml:1: tls: missing: this key is required\n"
	    "relay.yaml:1: kafka: missing: this key is required\n");
	expect_errors(KAFKA_OK
	    "tls: {ca_file: @CA@}\n",
	    "relay.yaml:2: tls.cert_file: missing: this key is required\n"
	    "relay.yaml:2: tls.key_file: missing: this key is required\n");
}

static void
test_unreadable_tls_files_are_reported(void **state)
{
	(void)state;
	expect_errors("tls:\n"
	    "  ca_file: /nonexistent/logferry/ca.crt\n"
	    "  cert_file: /nonexistent/logferry/relay.crt\n"
	    "  key_file: @KEY@\n"
	    KAFKA_OK,
	    "relay.yaml:2: tls.ca_file: cannot read '/nonexistent/logferry/ca.crt': "
	    "No such file or directory\n"
	    "relay.yaml:3: tls.cert_file: cannot read '/nonexistent/logferry/relay.crt': "
	    "No such file or directory\n");
}

static void
test_workers_out_of_range_is_refused(void **state)
{
	(void)state;
	expect_errors("workers: 0\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:1: workers: 0 is below the minimum of 1\n");
	expect_errors("workers: 257\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:1: workers: 257 is above the maximum of 256\n");
	expect_errors("workers: two\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:1: workers: 'two' is not an integer\n");
}

static void
test_unknown_format_is_refused(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  format: avro\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.format: 'avro' is not one of: json, protobuf, raw\n");
}

static void
test_json_field_names_is_original_or_hive(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  json_field_names: hive\n"
	    TLS_OK, &cfg);
	assert_int_equal(cfg.kafka.json_field_names, RELAY_JSON_NAMES_HIVE);
	config_free(&relay_config_schema, &cfg);
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  json_field_names: parquet\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.json_field_names: 'parquet' is not one of: original, hive\n");
}

static void
test_verify_client_must_be_a_boolean(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@, verify_client: false}\n"
	    KAFKA_OK, &cfg);
	assert_false(cfg.tls.verify_client);
	config_free(&relay_config_schema, &cfg);
	expect_errors("tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@, verify_client: maybe}\n"
	    KAFKA_OK,
	    "relay.yaml:1: tls.verify_client: 'maybe' is not a boolean: use true or false\n");
}

static void
test_allowed_agents_scalar_is_a_list_of_one_and_empty_list_is_refused(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok("tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@, allowed_agents: db-01}\n"
	    KAFKA_OK, &cfg);
	assert_int_equal(cfg.tls.allowed_agents.n, 1);
	assert_string_equal(string_at(&cfg.tls.allowed_agents, 0), "db-01");
	config_free(&relay_config_schema, &cfg);
	expect_errors("tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@, allowed_agents: []}\n"
	    KAFKA_OK,
	    "relay.yaml:1: tls.allowed_agents: must list at least one entry\n");
}

static void
test_bad_addresses_are_refused(void **state)
{
	(void)state;
	expect_errors("listen: 0.0.0.0\n"
	    "kafka:\n"
	    "  brokers: kafka1:9092,kafka2,kafka3:0\n"
	    "metrics: {listen: tcp://127.0.0.1:9541}\n"
	    TLS_OK,
	    "relay.yaml:1: listen: '0.0.0.0' is not host:port: the port is missing\n"
	    "relay.yaml:3: kafka.brokers[1]: 'kafka2' is not host:port: the port is missing\n"
	    "relay.yaml:3: kafka.brokers[2]: 'kafka3:0' has an invalid port: use 1 to 65535\n"
	    "relay.yaml:4: metrics.listen: 'tcp://127.0.0.1:9541' is not a valid address: "
	    "expected host:port\n");
}

static void
test_misspelt_key_is_refused_with_a_suggestion(void **state)
{
	(void)state;
	expect_errors("kafka:\n"
	    "  brokers: kafka1:9092\n"
	    "  topik: logs\n"
	    "worker: 4\n"
	    TLS_OK,
	    "relay.yaml:3: kafka.topik: unknown key (did you mean topic?)\n"
	    "relay.yaml:4: worker: unknown key (did you mean workers?)\n");
}

static void
test_http_intake_is_off_without_its_section_and_takes_defaults_with_it(void **state)
{
	struct relay_config cfg;

	(void)state;
	load_ok(TLS_OK KAFKA_OK, &cfg);
	assert_int_equal(cfg.http_intake.listen.n, 0);
	config_free(&relay_config_schema, &cfg);
	load_ok("http_intake: {listen: 127.0.0.1:8443}\n" TLS_OK KAFKA_OK, &cfg);
	assert_int_equal(cfg.http_intake.listen.n, 1);
	assert_string_equal(((struct config_addr *)cfg.http_intake.listen.items)[0].text,
	    "127.0.0.1:8443");
	assert_string_equal(cfg.http_intake.stream, "http");
	assert_int_equal(cfg.http_intake.max_connections, 256);
	assert_int_equal(cfg.http_intake.max_body_size, 8 * MIB);
	assert_int_equal(cfg.http_intake.memory_limit, 64 * MIB);
	assert_int_equal(cfg.http_intake.request_timeout_ms, 30000);
	assert_null(cfg.http_intake.auth.tokens_file);
	assert_null(cfg.http_intake.tls.cert_file);
	config_free(&relay_config_schema, &cfg);
}

static void
test_http_intake_keys_that_only_work_together_are_refused(void **state)
{
	(void)state;
	expect_errors("http_intake:\n"
	    "  listen: 127.0.0.1:8443\n"
	    "  auth: {events_per_second: 10}\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:3: http_intake.auth: rate limits are per sender: set tokens_file\n");
	expect_errors("http_intake:\n"
	    "  listen: 127.0.0.1:8443\n"
	    "  tls: {cert_file: /c, key_file: /k, allowed_cns: [web-*]}\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:3: http_intake.tls.allowed_cns: needs verify_client: true\n");
	expect_errors("http_intake:\n"
	    "  listen: 127.0.0.1:8443\n"
	    "  tls: {cert_file: /c}\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:3: http_intake.tls: cert_file and key_file go together\n");
}

static void
test_http_intake_tokens_file_is_loaded_by_the_check(void **state)
{
	(void)state;
	expect_errors("http_intake:\n"
	    "  listen: 127.0.0.1:8443\n"
	    "  auth: {tokens_file: /nonexistent/tokens}\n"
	    TLS_OK KAFKA_OK,
	    "relay.yaml:3: http_intake.auth.tokens_file: /nonexistent/tokens: cannot open the "
	    "token file: No such file or directory\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example_config_is_valid_and_typed),
		cmocka_unit_test(test_http_intake_is_off_without_its_section_and_takes_defaults_with_it),
		cmocka_unit_test(test_http_intake_keys_that_only_work_together_are_refused),
		cmocka_unit_test(test_http_intake_tokens_file_is_loaded_by_the_check),
		cmocka_unit_test(test_absent_keys_get_their_defaults),
		cmocka_unit_test(test_tilde_value_is_absent_and_the_default_applies),
		cmocka_unit_test(test_brokers_as_a_yaml_list_also_works),
		cmocka_unit_test(test_empty_key_means_records_without_key),
		cmocka_unit_test(test_every_template_variable_is_accepted),
		cmocka_unit_test(test_unknown_template_variable_is_named),
		cmocka_unit_test(test_unclosed_template_variable_is_refused),
		cmocka_unit_test(test_template_variables_take_a_default),
		cmocka_unit_test(test_routes_and_allowed_topics_load_in_order),
		cmocka_unit_test(test_bad_routes_are_named_at_their_line),
		cmocka_unit_test(test_bare_dollar_is_refused),
		cmocka_unit_test(test_unknown_librdkafka_property_is_refused_with_its_reason),
		cmocka_unit_test(test_properties_the_relay_fixes_are_refused),
		cmocka_unit_test(test_properties_must_be_a_mapping_of_single_values),
		cmocka_unit_test(test_passwords_in_properties_are_refused),
		cmocka_unit_test(test_sasl_password_file_must_be_readable),
		cmocka_unit_test(test_max_batch_bytes_above_max_uncompressed_bytes_is_refused),
		cmocka_unit_test(test_batch_limits_below_a_default_max_line_event_are_refused),
		cmocka_unit_test(test_dead_letter_topic_is_a_topic_name),
		cmocka_unit_test(test_connection_max_inflight_above_memory_limit_is_refused),
		cmocka_unit_test(test_missing_kafka_is_refused),
		cmocka_unit_test(test_missing_tls_is_refused),
		cmocka_unit_test(test_unreadable_tls_files_are_reported),
		cmocka_unit_test(test_workers_out_of_range_is_refused),
		cmocka_unit_test(test_unknown_format_is_refused),
		cmocka_unit_test(test_json_field_names_is_original_or_hive),
		cmocka_unit_test(test_verify_client_must_be_a_boolean),
		cmocka_unit_test(test_allowed_agents_scalar_is_a_list_of_one_and_empty_list_is_refused),
		cmocka_unit_test(test_bad_addresses_are_refused),
		cmocka_unit_test(test_misspelt_key_is_refused_with_a_suggestion),
	};

	return cmocka_run_group_tests(tests, setup_tls_files, remove_tls_files);
}
