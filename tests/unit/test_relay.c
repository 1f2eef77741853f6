/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay: what a SIGHUP cannot apply to a running relay. The reload itself
 * runs in tests/unit/test_kafka.c, test_server.c and
 * tests/integration/test_relay_reload.sh.
 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/relay.h"
#include "relay/relay_config.h"
#include "tests/unit/config_fixture.h"

const struct config_schema *fixture_schema = &relay_config_rules_schema;
const char *fixture_name = "relay.yaml";

#define TLS "tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@"
#define TLS_DEFAULT TLS ", allowed_agents: [\"web-*\"]}\n"
#define KAFKA_DEFAULT \
	"kafka: {brokers: kafka1:9092, topic: \"logs.${stream}\", properties: {linger.ms: \"5\"}}\n"

/*
 * The keys relay_restart_keys names between two configurations, each its
 * top-level lines, its tls and its kafka section (NULL: the defaults above).
 */
static int
restart_keys(const char *run_top, const char *run_tls, const char *fresh_top,
    const char *fresh_tls, const char *fresh_kafka, const char **keys)
{
	struct relay_config run, fresh;
	char a[1024], b[1024];
	int n;

	snprintf(a, sizeof(a), "id: relay-1\nlisten: 127.0.0.1:7540\n%s%s%s", run_top,
	    run_tls != NULL ? run_tls : TLS_DEFAULT, KAFKA_DEFAULT);
	snprintf(b, sizeof(b), "%s%s%s", fresh_top, fresh_tls != NULL ? fresh_tls : TLS_DEFAULT,
	    fresh_kafka != NULL ? fresh_kafka : KAFKA_DEFAULT);
	load_ok(a, &run);
	load_ok(b, &fresh);
	n = relay_restart_keys(&run, &fresh, keys, RELAY_RESTART_KEYS_MAX);
	config_free(&relay_config_schema, &run);
	config_free(&relay_config_schema, &fresh);
	return n;
}

#define SAME_TOP "id: relay-1\nlisten: 127.0.0.1:7540\n"

static void
test_reloadable_changes_need_no_restart(void **state)
{
	const char *keys[RELAY_RESTART_KEYS_MAX];

	(void)state;
	assert_int_equal(restart_keys("", NULL, SAME_TOP, NULL, NULL, keys), 0);
	assert_int_equal(restart_keys("", NULL, SAME_TOP "log_level: debug\n",
	    TLS ", allowed_agents: [\"db-*\"], ciphers: [TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256]}\n",
	    "kafka: {brokers: \"kafka2:9092,kafka3:9092\", topic: \"other.${host}\", key: \"${agent}\",\n"
	    "        format: raw, delivery_timeout: 9s, dead_letter_topic: dead,\n"
	    "        properties: {linger.ms: \"50\", compression.type: zstd}}\n", keys), 0);
}

static void
test_each_key_that_needs_a_restart_is_named(void **state)
{
	const char *keys[RELAY_RESTART_KEYS_MAX];

	(void)state;
	assert_int_equal(restart_keys("", NULL, "id: relay-1\nlisten: 127.0.0.1:7541\nworkers: 4\n",
	    NULL, NULL, keys), 2);
	assert_string_equal(keys[0], "listen");
	assert_string_equal(keys[1], "workers");
	assert_int_equal(restart_keys("limits: {window: 8}\n", NULL,
	    SAME_TOP "limits: {window: 16, idle_timeout: 5m}\n", NULL, NULL, keys), 2);
	assert_string_equal(keys[0], "limits.window");
	assert_string_equal(keys[1], "limits.idle_timeout");
	assert_int_equal(restart_keys("", NULL, "id: relay-2\nlisten: 127.0.0.1:7540\n"
	    "memory_limit: 64MiB\nmax_connections: 5\nshutdown_timeout: 1s\n"
	    "metrics: {listen: 127.0.0.1:9541}\n", NULL, NULL, keys), 5);
	assert_string_equal(keys[0], "id");
	assert_string_equal(keys[4], "metrics.listen");
	assert_int_equal(restart_keys("", NULL, SAME_TOP,
	    TLS ", verify_client: false, handshake_timeout: 3s}\n", NULL, keys), 2);
	assert_string_equal(keys[0], "tls.verify_client");
	assert_string_equal(keys[1], "tls.handshake_timeout");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reloadable_changes_need_no_restart),
		cmocka_unit_test(test_each_key_that_needs_a_restart_is_named),
	};

	return cmocka_run_group_tests(tests, setup_tls_files, remove_tls_files);
}
