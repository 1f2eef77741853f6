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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/daemon.h"
#include "agent/agent_config.h"
#include "agent/parsers.h"
#include "agent/processors.h"
#include "agent/redact.h"
#include "tests/unit/config_fixture.h"

/* The rules alone: the TLS files here are empty placeholders. */
const struct config_schema *fixture_schema = &agent_config_rules_schema;
const char *fixture_name = "agent.yaml";


static const struct agent_source *
source(const struct agent_config *cfg, size_t i)
{
	assert_true(i < cfg->sources.n);
	return (const struct agent_source *)cfg->sources.items + i;
}


/* A valid sources list, put last so that the lines under test come first. */
#define SOURCES_OK \
	"sources:\n" \
	"  - name: app\n" \
	"    type: file\n" \
	"    paths: [/var/log/app.log]\n"

static const char design_example[] =
	"id: web-01                 # default: the host name\n"
	"data_dir: /var/lib/logferry\n"
	"spool: {max_size: 1GiB, sync: always, commit_interval: 5ms}\n"
	"memory_limit: 64MiB\n"
	"sources:\n"
	"  - name: nginx_access      # default stream name\n"
	"    type: file              # file | syslog | http\n"
	"    paths: [/var/log/nginx/access.log]\n"
	"    format: nginx_combined  # nginx_combined | json | syslog | raw\n"
	"    start_at: beginning     # beginning | end\n"
	"  - name: local_syslog\n"
	"    type: syslog\n"
	"    listen: [udp://127.0.0.1:5514, tcp://127.0.0.1:5514, unix:///run/logferry/syslog.sock]\n"
	"  - name: app_events\n"
	"    type: http\n"
	"    listen: 127.0.0.1:8540\n"
	"relays:\n"
	"  servers: [relay1.example.net:7540, relay2.example.net:7540]\n"
	"  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	"  batch: {max_events: 4096, max_bytes: 1MiB, max_delay: 50ms}\n"
	"  connection_lifetime: 30m\n"
	"metrics: {listen: 127.0.0.1:9540}\n";

static void
test_design_example_config_is_valid_and_typed(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;

	(void)state;
	load_ok(design_example, &cfg);

	assert_string_equal(cfg.id, "web-01");
	assert_string_equal(cfg.data_dir, "/var/lib/logferry");
	assert_string_equal(daemon_log_levels[cfg.log_level], "info");
	assert_int_equal(cfg.spool.max_size, 1 * GIB);
	assert_int_equal(cfg.spool.sync, SYNC_ALWAYS);
	assert_int_equal(cfg.spool.commit_interval_ms, 5);
	assert_int_equal(cfg.memory_limit, 64 * MIB);
	assert_int_equal(cfg.sources.n, 3);

	s = source(&cfg, 0);
	assert_string_equal(s->name, "nginx_access");
	assert_null(s->stream);
	assert_int_equal(s->type, SOURCE_FILE);
	assert_int_equal(s->paths.n, 1);
	assert_string_equal(string_at(&s->paths, 0), "/var/log/nginx/access.log");
	assert_int_equal(s->exclude.n, 0);
	assert_string_equal(parser_names[s->format], "nginx_combined");
	assert_int_equal(s->start_at, START_AT_BEGINNING);
	assert_int_equal(s->max_line, 1 * MIB);
	assert_int_equal(s->scan_interval_ms, 10000);
	assert_int_equal(s->stat_interval_ms, 1000);
	assert_int_equal(s->flush_timeout_ms, 5000);
	assert_int_equal(s->listen.n, 0);

	s = source(&cfg, 1);
	assert_string_equal(s->name, "local_syslog");
	assert_int_equal(s->type, SOURCE_SYSLOG);
	assert_int_equal(s->paths.n, 0);
	assert_int_equal(s->listen.n, 3);
	assert_addr(addr_at(&s->listen, 0), CONFIG_SCHEME_UDP, "127.0.0.1", 5514, NULL,
	    "udp://127.0.0.1:5514");
	assert_addr(addr_at(&s->listen, 1), CONFIG_SCHEME_TCP, "127.0.0.1", 5514, NULL,
	    "tcp://127.0.0.1:5514");
	assert_addr(addr_at(&s->listen, 2), CONFIG_SCHEME_UNIX, NULL, 0,
	    "/run/logferry/syslog.sock", "unix:///run/logferry/syslog.sock");
	assert_int_equal(s->max_message_size, 64 * KIB);
	assert_string_equal(s->socket_mode, "0666");
	assert_int_equal(s->max_connections, 256);

	s = source(&cfg, 2);
	assert_string_equal(s->name, "app_events");
	assert_int_equal(s->type, SOURCE_HTTP);
	assert_int_equal(s->listen.n, 1);
	assert_addr(addr_at(&s->listen, 0), CONFIG_SCHEME_NONE, "127.0.0.1", 8540, NULL,
	    "127.0.0.1:8540");
	assert_int_equal(s->max_body_size, 8 * MIB);
	assert_int_equal(s->max_connections, 256);

	assert_true(cfg.relays_enabled);
	assert_int_equal(cfg.relays.servers.n, 2);
	assert_addr(addr_at(&cfg.relays.servers, 0), CONFIG_SCHEME_NONE,
	    "relay1.example.net", 7540, NULL, "relay1.example.net:7540");
	assert_addr(addr_at(&cfg.relays.servers, 1), CONFIG_SCHEME_NONE,
	    "relay2.example.net", 7540, NULL, "relay2.example.net:7540");
	assert_string_equal(cfg.relays.tls.ca_file, ca_path);
	assert_string_equal(cfg.relays.tls.cert_file, cert_path);
	assert_string_equal(cfg.relays.tls.key_file, key_path);
	assert_null(cfg.relays.tls.server_name);
	assert_int_equal(cfg.relays.tls.ciphers.n, 0);
	assert_int_equal(cfg.relays.tls.handshake_timeout_ms, 10000);
	assert_int_equal(cfg.relays.batch.max_events, 4096);
	assert_int_equal(cfg.relays.batch.max_bytes, 1 * MIB);
	assert_int_equal(cfg.relays.batch.max_delay_ms, 50);
	assert_int_equal(cfg.relays.connection_lifetime_ms, 30 * 60 * 1000);
	assert_int_equal(cfg.relays.window, 8);
	assert_int_equal(cfg.relays.reconnect_min_ms, 100);
	assert_int_equal(cfg.relays.reconnect_max_ms, 30000);
	assert_int_equal(cfg.relays.ping_interval_ms, 10000);
	assert_int_equal(cfg.relays.ping_timeout_ms, 30000);

	assert_addr(&cfg.metrics.listen, CONFIG_SCHEME_NONE, "127.0.0.1", 9540, NULL,
	    "127.0.0.1:9540");

	config_free(&agent_config_schema, &cfg);
}

static void
test_absent_keys_get_their_defaults(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;
	const char *suffix = "/lib/logferry";

	(void)state;
	load_ok("relays:\n"
	    "  servers: relay1:7540\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    SOURCES_OK, &cfg);

	assert_true(strlen(cfg.data_dir) >= strlen(suffix));
	assert_string_equal(cfg.data_dir + strlen(cfg.data_dir) - strlen(suffix), suffix);
#ifdef LOCALSTATEDIR
	assert_string_equal(cfg.data_dir, LOCALSTATEDIR "/lib/logferry");
#endif
	assert_string_equal(daemon_log_levels[cfg.log_level], "info");
	assert_int_equal(cfg.memory_limit, 64 * MIB);
	assert_int_equal(cfg.spool.max_size, 1 * GIB);
	assert_int_equal(cfg.spool.sync, SYNC_ALWAYS);
	assert_int_equal(cfg.spool.commit_interval_ms, 5);

	s = source(&cfg, 0);
	assert_null(s->stream);
	assert_string_equal(parser_names[s->format], "raw");
	assert_int_equal(s->start_at, START_AT_BEGINNING);
	assert_int_equal(s->max_line, 1 * MIB);

	assert_true(cfg.relays_enabled);
	assert_int_equal(cfg.relays.servers.n, 1);
	assert_int_equal(cfg.relays.batch.max_events, 4096);
	assert_int_equal(cfg.relays.batch.max_bytes, 1 * MIB);
	assert_int_equal(cfg.relays.batch.max_delay_ms, 50);
	assert_int_equal(cfg.relays.window, 8);
	assert_int_equal(cfg.relays.connection_lifetime_ms, 30 * 60 * 1000);
	assert_int_equal(cfg.relays.reconnect_min_ms, 100);
	assert_int_equal(cfg.relays.reconnect_max_ms, 30000);
	assert_int_equal(cfg.relays.tls.handshake_timeout_ms, 10000);

	assert_null(cfg.metrics.listen.text);
	assert_null(cfg.metrics.listen.host);

	config_free(&agent_config_schema, &cfg);
}

static void
test_config_without_relays_is_valid_and_only_spools(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok(SOURCES_OK, &cfg);
	assert_false(cfg.relays_enabled);
	assert_int_equal(cfg.relays.servers.n, 0);
	assert_null(cfg.relays.tls.ca_file);
	config_free(&agent_config_schema, &cfg);
}

static void
test_id_defaults_to_the_host_name(void **state)
{
	struct agent_config cfg;
	char host[256];

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	load_ok(SOURCES_OK, &cfg);
	assert_non_null(cfg.id);
	assert_string_equal(cfg.id, host);
	config_free(&agent_config_schema, &cfg);
}

static void
test_tilde_or_empty_value_is_absent_and_the_default_applies(void **state)
{
	struct agent_config cfg;
	char host[256];

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	load_ok("id: ~\n"
	    "memory_limit:\n"
	    "spool: {sync: , commit_interval: null}\n"
	    "relays: ~\n"
	    "metrics:\n"
	    SOURCES_OK, &cfg);
	assert_string_equal(cfg.id, host);
	assert_int_equal(cfg.memory_limit, 64 * MIB);
	assert_int_equal(cfg.spool.sync, SYNC_ALWAYS);
	assert_int_equal(cfg.spool.commit_interval_ms, 5);
	assert_false(cfg.relays_enabled);
	assert_null(cfg.metrics.listen.text);
	config_free(&agent_config_schema, &cfg);
}

static void
test_quoted_empty_string_is_a_value_not_absent(void **state)
{
	(void)state;
	expect_errors("id: \"\"\n"
	    SOURCES_OK,
	    "agent.yaml:1: id: must not be empty\n");
}

static void
test_scalar_paths_is_a_list_of_one(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;

	(void)state;
	load_ok("sources:\n"
	    "  - name: x\n"
	    "    type: file\n"
	    "    paths: /var/log/x.log\n"
	    "    exclude: /var/log/*.gz\n", &cfg);
	s = source(&cfg, 0);
	assert_int_equal(s->paths.n, 1);
	assert_string_equal(string_at(&s->paths, 0), "/var/log/x.log");
	assert_int_equal(s->exclude.n, 1);
	assert_string_equal(string_at(&s->exclude, 0), "/var/log/*.gz");
	config_free(&agent_config_schema, &cfg);
}

static void
test_ipv6_server_is_parsed_without_brackets(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok("relays:\n"
	    "  servers:\n"
	    "    - \"[::1]:7540\"\n"
	    "    - \"[2001:db8::7]:7541\"\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    SOURCES_OK, &cfg);
	assert_int_equal(cfg.relays.servers.n, 2);
	assert_addr(addr_at(&cfg.relays.servers, 0), CONFIG_SCHEME_NONE, "::1", 7540,
	    NULL, "[::1]:7540");
	assert_addr(addr_at(&cfg.relays.servers, 1), CONFIG_SCHEME_NONE, "2001:db8::7",
	    7541, NULL, "[2001:db8::7]:7541");
	config_free(&agent_config_schema, &cfg);
}

static void
test_metrics_listen_may_use_port_zero(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok("metrics: {listen: 127.0.0.1:0}\n"
	    SOURCES_OK, &cfg);
	assert_addr(&cfg.metrics.listen, CONFIG_SCHEME_NONE, "127.0.0.1", 0, NULL,
	    "127.0.0.1:0");
	config_free(&agent_config_schema, &cfg);
}

static void
test_misspelt_key_is_refused_with_a_suggestion(void **state)
{
	(void)state;
	expect_errors("spool: {max_sise: 1GiB}\n"
	    "memory_limt: 64MiB\n"
	    SOURCES_OK,
	    "agent.yaml:1: spool.max_sise: unknown key (did you mean max_size?)\n"
	    "agent.yaml:2: memory_limt: unknown key (did you mean memory_limit?)\n");
}

static void
test_unknown_key_without_close_match_is_refused_without_suggestion(void **state)
{
	(void)state;
	expect_errors("colour: blue\n"
	    SOURCES_OK,
	    "agent.yaml:1: colour: unknown key\n");
}

static void
test_size_with_unknown_unit_is_refused(void **state)
{
	(void)state;
	expect_errors("memory_limit: 64MB\n"
	    SOURCES_OK,
	    "agent.yaml:1: memory_limit: '64MB' is not a size: use a whole number "
	    "with B, KiB, MiB or GiB (e.g. 64MiB)\n");
}

static void
test_duration_without_unit_is_refused(void **state)
{
	(void)state;
	expect_errors("spool:\n"
	    "  commit_interval: 5\n"
	    SOURCES_OK,
	    "agent.yaml:2: spool.commit_interval: '5' is not a duration: use a whole "
	    "number with ms, s, m or h (e.g. 30s)\n");
}

static void
test_values_out_of_range_name_the_formatted_bound(void **state)
{
	(void)state;
	expect_errors("memory_limit: 1MiB\n"
	    "spool: {max_size: 2TiB, commit_interval: 11s}\n"
	    "relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  window: 0\n"
	    "  batch: {max_events: 1000001, max_bytes: 1KiB}\n"
	    "  connection_lifetime: 25h\n"
	    SOURCES_OK,
	    "agent.yaml:1: memory_limit: 1MiB is below the minimum of 4MiB\n"
	    "agent.yaml:2: spool.max_size: 2TiB is above the maximum of 1TiB\n"
	    "agent.yaml:2: spool.commit_interval: 11s is above the maximum of 10s\n"
	    "agent.yaml:6: relays.window: 0 is below the minimum of 1\n"
	    "agent.yaml:7: relays.batch.max_events: 1000001 is above the maximum of 1000000\n"
	    "agent.yaml:7: relays.batch.max_bytes: 1KiB is below the minimum of 4KiB\n"
	    "agent.yaml:8: relays.connection_lifetime: 25h is above the maximum of 24h\n");
}

static void
test_values_at_the_bounds_are_accepted(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok("memory_limit: 4MiB\n"
	    "spool: {max_size: 1024GiB, commit_interval: 10s}\n"
	    "relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  window: 1024\n"
	    "  connection_lifetime: 0\n"
	    SOURCES_OK, &cfg);
	assert_int_equal(cfg.memory_limit, 4 * MIB);
	assert_int_equal(cfg.spool.max_size, 1024 * GIB);
	assert_int_equal(cfg.spool.commit_interval_ms, 10000);
	assert_int_equal(cfg.relays.window, 1024);
	assert_int_equal(cfg.relays.connection_lifetime_ms, 0);
	config_free(&agent_config_schema, &cfg);
}

static void
test_wrong_enum_value_lists_the_allowed_names(void **state)
{
	(void)state;
	expect_errors("log_level: loud\n"
	    "spool: {sync: sometimes}\n"
	    "sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    format: xml\n"
	    "    start_at: middle\n",
	    "agent.yaml:1: log_level: 'loud' is not one of: error, warn, info, debug\n"
	    "agent.yaml:2: spool.sync: 'sometimes' is not one of: always, relaxed\n"
	    "agent.yaml:7: sources[0].format: 'xml' is not one of: raw, nginx_combined, json, syslog, nginx, nginx_error\n"
	    "agent.yaml:8: sources[0].start_at: 'middle' is not one of: beginning, end\n");
}

static void
test_bad_source_type_is_reported_once_not_as_type_file(void **state)
{
	(void)state;
	/* A bad type must not be read as the first type (file) and cascade. */
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: sislog\n"
	    "    listen: udp://127.0.0.1:5514\n",
	    "agent.yaml:3: sources[0].type: 'sislog' is not one of: file, syslog, http, journal\n");
}

#ifdef HAVE_SYSTEMD
static void
test_journal_source_takes_directory_matches_and_start_at(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;

	(void)state;
	load_ok("sources:\n"
	    "  - name: system\n"
	    "    type: journal\n"
	    "    directory: /var/log/journal/remote\n"
	    "    matches: [_SYSTEMD_UNIT=nginx.service, SYSLOG_FACILITY=4]\n"
	    "    start_at: end\n"
	    "  - name: local\n"
	    "    type: journal\n", &cfg);
	s = source(&cfg, 0);
	assert_int_equal(s->type, SOURCE_JOURNAL);
	assert_string_equal(s->directory, "/var/log/journal/remote");
	assert_int_equal(s->matches.n, 2);
	assert_string_equal(((char **)s->matches.items)[0], "_SYSTEMD_UNIT=nginx.service");
	assert_int_equal(s->start_at, START_AT_END);
	assert_int_equal(s->max_field_size, 64 * KIB);
	s = source(&cfg, 1);
	assert_null(s->directory);
	assert_int_equal(s->files.n, 0);
	assert_int_equal(s->start_at, START_AT_BEGINNING);
	config_free(&agent_config_schema, &cfg);
}

static void
test_journal_match_without_a_field_name_is_an_error_at_its_line(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: system\n"
	    "    type: journal\n"
	    "    directory: var/log/journal\n"
	    "    files: [/tmp/a.journal]\n"
	    "    matches: [nginx.service, _systemd_unit=x, \"SYSLOG_FACILITY=4\"]\n",
	    "agent.yaml:4: sources[0].directory: 'var/log/journal' is not an absolute path\n"
	    "agent.yaml:4: sources[0].directory: directory and files cannot both be set: "
	    "read a directory of journal files, or the files listed\n"
	    "agent.yaml:6: sources[0].matches[0]: 'nginx.service' is not FIELD=value with FIELD "
	    "in upper case letters, digits and '_' (e.g. _SYSTEMD_UNIT=nginx.service)\n"
	    "agent.yaml:6: sources[0].matches[1]: '_systemd_unit=x' is not FIELD=value with FIELD "
	    "in upper case letters, digits and '_' (e.g. _SYSTEMD_UNIT=nginx.service)\n");
}
#endif

static void
test_processors_global_and_per_source_compile_into_each_source_chain(void **state)
{
	struct agent_config cfg;
	const struct config_map *m;

	(void)state;
	load_ok("processors:\n"
	    "  - type: add_fields\n"
	    "    values: {env: prod, dc: par1}\n"
	    "sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    processors:\n"
	    "      - {type: add_fields, values: {team: web, node: '${host}'}}\n"
	    "  - name: other\n"
	    "    type: file\n"
	    "    paths: [/var/log/other.log]\n", &cfg);
	assert_int_equal(cfg.processors.n, 1);
	m = &((const struct agent_processor *)cfg.processors.items)[0].values;
	assert_int_equal(m->n, 2);
	assert_string_equal(m->items[1].key, "dc");
	assert_string_equal(m->items[1].value, "par1");
	assert_int_equal(source(&cfg, 0)->processors.n, 1);
	assert_non_null(source(&cfg, 0)->chain);
	assert_true(processors_has(source(&cfg, 0)->chain, PROCESSOR_ADD_FIELDS));
	/* The global list alone is a chain too. */
	assert_non_null(source(&cfg, 1)->chain);
	assert_int_equal(cfg.processor_buffer, 4 * MIB);
	config_free(&agent_config_schema, &cfg);
}

static void
test_no_processors_is_no_chain(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok(SOURCES_OK, &cfg);
	assert_null(source(&cfg, 0)->chain);
	config_free(&agent_config_schema, &cfg);
}

static void
test_a_processor_that_does_not_compile_is_an_error_at_its_line_once(void **state)
{
	(void)state;
	expect_errors("processors:\n"
	    "  - type: add_fields\n"
	    "    values: {env: prod}\n"
	    "  - type: add_fields\n"
	    "    values: {dc: '${datacenter}'}\n"
	    "sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    processors:\n"
	    "      - {type: add_fields, values: {x: '${nope'}}\n"
	    "  - name: b\n"
	    "    type: file\n"
	    "    paths: [/var/log/b.log]\n"
	    "  - name: c\n"
	    "    type: file\n"
	    "    paths: [/var/log/c.log]\n",
	    "agent.yaml:11: sources[0].processors[0]: values.x: '${nope' has a ${ without its }\n"
	    "agent.yaml:4: processors[1]: values.dc: '${datacenter}' is not one of ${host}, "
	    "${agent_id} or ${source}\n");
}

/* A key file of n bytes of 'k' in /tmp; path receives its name (unlinked by the caller). */
static void
redact_key_file(char *path, size_t len, size_t n)
{
	char key[64];
	int fd;

	assert_true(n <= sizeof(key));
	memset(key, 'k', n);
	snprintf(path, len, "/tmp/logferry-test-redact-XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, key, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

static void
test_redact_processors_load_with_their_keys(void **state)
{
	struct agent_config cfg;
	const struct agent_processor *p;
	char key[64], yaml[1024];

	(void)state;
	redact_key_file(key, sizeof(key), 32);
	snprintf(yaml, sizeof(yaml), "processors:\n"
	    "  - {type: redact, field: email, method: hash, key_file: %s}\n"
	    "  - {type: redact, fields: [ip, client_ip], method: mask_ip}\n"
	    "  - {type: redact, fields: password, method: drop}\n"
	    "  - {type: redact, method: regex, pattern: '[0-9]{16}', replacement: '<card>'}\n"
	    SOURCES_OK, key);
	load_ok(yaml, &cfg);
	p = cfg.processors.items;
	assert_int_equal(cfg.processors.n, 4);
	assert_int_equal(p[0].type, PROCESSOR_REDACT);
	assert_string_equal(p[0].field, "email");
	assert_int_equal(p[0].method, REDACT_HASH);
	assert_string_equal(p[0].key_file, key);
	assert_int_equal(p[1].method, REDACT_MASK_IP);
	assert_string_equal(string_at(&p[1].fields, 1), "client_ip");
	assert_string_equal(string_at(&p[2].fields, 0), "password");
	assert_int_equal(p[3].method, REDACT_REGEX);
	assert_string_equal(p[3].pattern, "[0-9]{16}");
	assert_string_equal(p[3].replacement, "<card>");
	assert_true(processors_has(source(&cfg, 0)->chain, PROCESSOR_REDACT));
	config_free(&agent_config_schema, &cfg);
	unlink(key);
}

static void
test_redact_short_key_file_and_bad_regex_are_errors_at_their_processor_line(void **state)
{
	char key[64], yaml[1024], want[1024];

	(void)state;
	redact_key_file(key, sizeof(key), 15);
	snprintf(yaml, sizeof(yaml), "processors:\n"
	    "  - {type: redact, method: regex, pattern: '(['}\n"
	    "sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    processors:\n"
	    "      - {type: redact, field: email, method: hash, key_file: %s}\n"
	    "  - name: b\n"
	    "    type: file\n"
	    "    paths: [/var/log/b.log]\n"
	    "  - {name: c, type: http, listen: '127.0.0.1:8540', processors: "
	    "[{type: redact, method: mask_ip}]}\n", key);
	snprintf(want, sizeof(want),
	    "agent.yaml:8: sources[0].processors[0]: key_file %s holds 15 bytes, fewer than 16: "
	    "a short key can be guessed; write a new one with openssl rand -hex 32\n"
	    "agent.yaml:2: processors[0]: '([' is not a POSIX extended regex: "
	    "Invalid regular expression\n"
	    "agent.yaml:12: sources[2].processors[0]: method mask_ip needs field or fields: the "
	    "fields to redact\n", key);
	expect_errors(yaml, want);
	unlink(key);
}

static void
test_redact_keys_are_only_for_redact(void **state)
{
	(void)state;
	expect_errors("processors:\n"
	    "  - {type: add_fields, values: {a: b}, method: hash, field: x}\n"
	    "  - {type: redact, field: x}\n"
	    "  - {type: redact, field: x, method: rot13}\n"
	    SOURCES_OK,
	    "agent.yaml:2: processors[0].field: only valid when type is redact\n"
	    "agent.yaml:2: processors[0].method: only valid when type is redact\n"
	    "agent.yaml:3: processors[1].method: missing: required when type is redact\n"
	    "agent.yaml:4: processors[2].method: 'rot13' is not one of: hash, mask_ip, drop, "
	    "regex\n");
}

static void
test_a_processor_without_its_type_or_its_keys_is_refused(void **state)
{
	(void)state;
	expect_errors("processors:\n"
	    "  - values: {env: prod}\n"
	    "  - type: add_fields\n"
	    "  - type: shout\n"
	    SOURCES_OK,
	    "agent.yaml:2: processors[0].type: missing: this key is required\n"
	    "agent.yaml:3: processors[1].values: missing: required when type is add_fields\n"
	    "agent.yaml:4: processors[2].type: 'shout' is not one of: add_fields, drop, keep, "
	    "rename, remove, require, redact\n");
}

static void
test_drop_and_keep_read_their_conditions_and_need_them(void **state)
{
	struct agent_config cfg;
	const struct agent_processor *p;
	const struct agent_condition *c;

	(void)state;
	load_ok("processors:\n"
	    "  - type: drop\n"
	    "    when:\n"
	    "      - {field: level, equals: debug}\n"
	    "      - {field: status, ge: 500}\n"
	    "  - type: keep\n"
	    "    when: [{field: user_id, present: true}]\n"
	    SOURCES_OK, &cfg);
	p = cfg.processors.items;
	assert_int_equal(p[0].type, PROCESSOR_DROP);
	assert_int_equal(p[0].when.n, 2);
	c = p[0].when.items;
	assert_string_equal(c[0].field, "level");
	assert_string_equal(c[0].equals, "debug");
	assert_string_equal(c[1].ge, "500");
	assert_int_equal(p[1].type, PROCESSOR_KEEP);
	assert_true(((const struct agent_condition *)p[1].when.items)[0].present);
	config_free(&agent_config_schema, &cfg);
	expect_errors("processors:\n"
	    "  - type: drop\n"
	    "  - type: keep\n"
	    "    when: [{field: status, gt: high}]\n"
	    SOURCES_OK,
	    "agent.yaml:2: processors[0].when: missing: required when type is drop\n");
}

static void
test_rename_takes_a_map_and_remove_a_list_of_names(void **state)
{
	struct agent_config cfg;
	const struct agent_processor *p;

	(void)state;
	load_ok("processors:\n"
	    "  - {type: rename, map: {usr: user_id, lvl: level}}\n"
	    "  - {type: remove, fields: password}\n"
	    SOURCES_OK, &cfg);
	p = cfg.processors.items;
	assert_int_equal(p[0].map.n, 2);
	assert_string_equal(p[0].map.items[1].value, "level");
	assert_int_equal(p[1].fields.n, 1);
	assert_string_equal(((char **)p[1].fields.items)[0], "password");
	config_free(&agent_config_schema, &cfg);
	expect_errors("processors:\n"
	    "  - {type: rename, map: {usr: ''}}\n"
	    SOURCES_OK,
	    "agent.yaml:2: processors[0]: map.usr: the new name is empty (remove removes a field)\n");
	expect_errors("processors:\n"
	    "  - {type: rename, values: {a: b}}\n"
	    SOURCES_OK,
	    "agent.yaml:2: processors[0].values: only valid when type is add_fields\n"
	    "agent.yaml:2: processors[0].map: missing: required when type is rename\n");
}

static void
test_require_takes_fields_types_and_a_dead_letter_stream_by_default_dead_letter(void **state)
{
	struct agent_config cfg;
	const struct agent_processor *p;

	(void)state;
	load_ok("processors:\n"
	    "  - {type: require, fields: [user_id, event_type]}\n"
	    "  - {type: require, types: {count: integer}, dead_letter_stream: bad_events}\n"
	    SOURCES_OK, &cfg);
	p = cfg.processors.items;
	assert_int_equal(p[0].fields.n, 2);
	assert_string_equal(p[0].dead_letter_stream, "dead_letter");
	assert_string_equal(p[1].types.items[0].value, "integer");
	assert_string_equal(p[1].dead_letter_stream, "bad_events");
	config_free(&agent_config_schema, &cfg);
	expect_errors("processors:\n"
	    "  - {type: require}\n"
	    SOURCES_OK,
	    "agent.yaml:2: processors[0]: require needs fields, types or both\n");
}

static void
test_wrong_kind_of_node_is_refused(void **state)
{
	(void)state;
	expect_errors("memory_limit: {size: 64MiB}\n"
	    "spool: 1GiB\n"
	    "id: [a, b]\n"
	    "sources: {name: app}\n",
	    "agent.yaml:1: memory_limit: expected a single value, not a mapping\n"
	    "agent.yaml:2: spool: expected a mapping, not a single value\n"
	    "agent.yaml:3: id: expected a single value, not a list\n"
	    "agent.yaml:4: sources: expected a list, not a mapping\n");
}

static void
test_missing_sources_is_refused(void **state)
{
	(void)state;
	expect_errors("id: web-01\n"
	    "memory_limit: 64MiB\n",
	    "agent.yaml:1: sources: missing: this key is required\n");
	expect_errors("",
	    "agent.yaml:1: sources: missing: this key is required\n");
	expect_errors("# nothing but a comment\n",
	    "agent.yaml:1: sources: missing: this key is required\n");
}

static void
test_empty_sources_list_is_refused(void **state)
{
	(void)state;
	expect_errors("id: web-01\n"
	    "sources: []\n",
	    "agent.yaml:2: sources: must list at least one entry\n");
}

static void
test_source_without_name_or_type_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - paths: [/var/log/a.log]\n"
	    "  - name: b\n"
	    "    paths: [/var/log/b.log]\n"
	    "  - type: file\n"
	    "    paths: [/var/log/c.log]\n",
	    "agent.yaml:2: sources[0].name: missing: this key is required\n"
	    "agent.yaml:2: sources[0].type: missing: this key is required\n"
	    "agent.yaml:3: sources[1].type: missing: this key is required\n"
	    "agent.yaml:5: sources[2].name: missing: this key is required\n");
}

static void
test_file_source_without_paths_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n",
	    "agent.yaml:2: sources[0].paths: missing: required when type is file\n");
}

static void
test_syslog_and_http_sources_without_listen_are_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "  - name: web\n"
	    "    type: http\n",
	    "agent.yaml:2: sources[0].listen: missing: required when type is syslog\n"
	    "agent.yaml:4: sources[1].listen: missing: required when type is http\n");
}

static void
test_listen_on_a_file_source_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    listen: 127.0.0.1:5514\n",
	    "agent.yaml:5: sources[0].listen: only valid when type is syslog or http\n");
}

static void
test_file_keys_on_a_syslog_source_are_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    paths: [/var/log/syslog]\n"
	    "    type: syslog\n"
	    "    listen: udp://127.0.0.1:5514\n"
	    "    start_at: end\n"
	    "    max_body_size: 1MiB\n",
	    "agent.yaml:3: sources[0].paths: only valid when type is file\n"
	    "agent.yaml:6: sources[0].start_at: only valid when type is file or journal\n"
	    "agent.yaml:7: sources[0].max_body_size: only valid when type is http\n");
}

static void
test_syslog_timezone_and_receive_buffer_are_read_and_checked(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;

	(void)state;
	load_ok("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: udp://127.0.0.1:5514\n"
	    "    timezone: EST5EDT,M3.2.0,M11.1.0\n"
	    "    receive_buffer: 32MiB\n"
	    "  - name: f\n"
	    "    type: file\n"
	    "    paths: [/var/log/syslog]\n"
	    "    format: syslog\n", &cfg);
	s = source(&cfg, 0);
	assert_string_equal(s->timezone, "EST5EDT,M3.2.0,M11.1.0");
	assert_int_equal(s->receive_buffer, 32 * MIB);
	s = source(&cfg, 1);
	assert_null(s->timezone);
	config_free(&agent_config_schema, &cfg);
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: udp://127.0.0.1:5514\n"
	    "    receive_buffer: 1KiB\n"
	    "  - name: web\n"
	    "    type: http\n"
	    "    listen: 127.0.0.1:8540\n"
	    "    timezone: UTC\n",
	    "agent.yaml:5: sources[0].receive_buffer: 1KiB is below the minimum of 4KiB\n"
	    "agent.yaml:9: sources[1].timezone: only valid when type is file or syslog\n");
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: udp://127.0.0.1:5514\n"
	    "    timezone: Mars/Olympus_Mons\n",
	    "agent.yaml:5: sources[0].timezone: 'Mars/Olympus_Mons' is not a time zone: no such "
	    "zone (an IANA name such as Europe/Paris needs tzdata, or write a POSIX TZ rule such "
	    "as CET-1CEST,M3.5.0,M10.5.0/3)\n");
}

static void
test_syslog_listen_needs_a_scheme(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen:\n"
	    "      - udp://127.0.0.1:5514\n"
	    "      - 127.0.0.1:5514\n",
	    "agent.yaml:6: sources[0].listen[1]: '127.0.0.1:5514' needs a scheme: "
	    "udp://, tcp://, tls:// or unix://\n");
}

static void
test_http_listen_with_a_scheme_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: web\n"
	    "    type: http\n"
	    "    listen: tcp://127.0.0.1:8540\n",
	    "agent.yaml:4: sources[0].listen[0]: 'tcp://127.0.0.1:8540': an http source "
	    "listens on host:port\n");
}

static void
test_unix_listen_needs_an_absolute_path(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: [unix://run/syslog.sock]\n",
	    "agent.yaml:4: sources[0].listen[0]: 'unix://run/syslog.sock' is not a valid "
	    "socket: expected unix:///absolute/path of at most 107 bytes\n");
}

static void
test_bad_single_listen_value_is_reported_once_as_written(void **state)
{
	(void)state;
	/* The message quotes the scheme, and the list is not also called empty. */
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: udp://127.0.0.1:70000\n",
	    "agent.yaml:4: sources[0].listen[0]: 'udp://127.0.0.1:70000' has an invalid "
	    "port: use 0 to 65535\n");
}

static void
test_socket_mode_must_be_octal(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: unix:///run/logferry/syslog.sock\n"
	    "    socket_mode: 0660\n", &cfg);
	assert_string_equal(source(&cfg, 0)->socket_mode, "0660");
	config_free(&agent_config_schema, &cfg);

	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: unix:///run/logferry/syslog.sock\n"
	    "    socket_mode: 0999\n"
	    "  - name: sys2\n"
	    "    type: syslog\n"
	    "    listen: unix:///run/logferry/syslog2.sock\n"
	    "    socket_mode: 01777\n"
	    "  - name: sys3\n"
	    "    type: syslog\n"
	    "    listen: unix:///run/logferry/syslog3.sock\n"
	    "    socket_mode: rw-rw----\n",
	    "agent.yaml:5: sources[0].socket_mode: '0999' is not an octal file mode such as 0660\n"
	    "agent.yaml:9: sources[1].socket_mode: '01777' is not an octal file mode such as 0660\n"
	    "agent.yaml:13: sources[2].socket_mode: 'rw-rw----' is not an octal file mode such as 0660\n");
}

static void
test_multiline_keys_are_read_with_their_defaults(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;

	(void)state;
	load_ok("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    multiline: {start: '^[0-9]{4}-[0-9]{2}-[0-9]{2}'}\n"
	    "  - name: py\n"
	    "    type: file\n"
	    "    paths: [/var/log/py.log]\n"
	    "    multiline: {continuation: '^[[:space:]]', flush_timeout: 250ms, max_bytes: 64KiB}\n"
	    "  - name: plain\n"
	    "    type: file\n"
	    "    paths: [/var/log/plain.log]\n", &cfg);
	s = source(&cfg, 0);
	assert_string_equal(s->multiline.start, "^[0-9]{4}-[0-9]{2}-[0-9]{2}");
	assert_null(s->multiline.continuation);
	assert_int_equal(s->multiline.flush_timeout_ms, 1000);
	assert_int_equal(s->multiline.max_bytes, 1 * MIB);
	s = source(&cfg, 1);
	assert_null(s->multiline.start);
	assert_string_equal(s->multiline.continuation, "^[[:space:]]");
	assert_int_equal(s->multiline.flush_timeout_ms, 250);
	assert_int_equal(s->multiline.max_bytes, 64 * KIB);
	s = source(&cfg, 2);
	assert_null(s->multiline.start);
	assert_null(s->multiline.continuation);
	config_free(&agent_config_schema, &cfg);
}

#ifdef HAVE_SYSTEMD
static void
test_multiline_is_read_for_a_journal_source(void **state)
{
	struct agent_config cfg;
	const struct agent_source *s;

	(void)state;
	load_ok("sources:\n"
	    "  - name: app\n"
	    "    type: journal\n"
	    "    matches: [_SYSTEMD_UNIT=app.service]\n"
	    "    multiline: {start: '^[0-9]{4}-', flush_timeout: 2s}\n", &cfg);
	s = source(&cfg, 0);
	assert_string_equal(s->multiline.start, "^[0-9]{4}-");
	assert_int_equal(s->multiline.flush_timeout_ms, 2000);
	assert_int_equal(s->multiline.max_bytes, 1 * MIB);
	config_free(&agent_config_schema, &cfg);
}
#endif

static void
test_multiline_pattern_that_does_not_compile_is_an_error_at_its_line(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    multiline:\n"
	    "      start: '^[0-9'\n",
	    "agent.yaml:6: sources[0].multiline.start: '^[0-9' is not a POSIX extended regex: "
	    "Unmatched [, [^, [:, [., or [=\n");
}

static void
test_multiline_needs_exactly_one_of_start_and_continuation(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    multiline: {start: '^a', continuation: '^ '}\n"
	    "  - name: b\n"
	    "    type: file\n"
	    "    paths: [/var/log/b.log]\n"
	    "    multiline: {max_bytes: 4KiB}\n",
	    "agent.yaml:5: sources[0].multiline: needs exactly one of start or continuation (a regex)\n"
	    "agent.yaml:9: sources[1].multiline: needs exactly one of start or continuation (a regex)\n");
}

/* Multiline needs one stream per sender: datagrams from many senders interleave on one socket. */
static void
test_multiline_on_a_syslog_source_with_datagram_listeners_is_an_error_at_its_line(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: ['tcp://127.0.0.1:514', 'udp://127.0.0.1:514']\n"
	    "    multiline: {continuation: '^[[:space:]]'}\n"
	    "  - name: local\n"
	    "    type: syslog\n"
	    "    listen: ['unix:///run/logferry/log']\n"
	    "    multiline:\n"
	    "      start: '^[0-9]{4}-'\n",
	    "agent.yaml:5: sources[0].multiline: listen[1] 'udp://127.0.0.1:514' receives "
	    "datagrams, whose lines from many senders interleave: multiline works on tcp:// "
	    "and tls:// listeners only; give those a source of their own\n"
	    "agent.yaml:9: sources[1].multiline: listen[0] 'unix:///run/logferry/log' receives "
	    "datagrams, whose lines from many senders interleave: multiline works on tcp:// "
	    "and tls:// listeners only; give those a source of their own\n");
}

/* A listen URL without a scheme is its own error, not one of multiline's. */
static void
test_multiline_on_a_syslog_listener_without_scheme_reports_only_the_scheme(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: ['127.0.0.1:514']\n"
	    "    multiline: {continuation: '^[[:space:]]'}\n",
	    "agent.yaml:4: sources[0].listen[0]: '127.0.0.1:514' needs a scheme: udp://, tcp://, tls:// or unix://\n");
}

static void
test_multiline_on_tcp_syslog_and_journal_sources_is_accepted(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok("sources:\n"
	    "  - name: sys\n"
	    "    type: syslog\n"
	    "    listen: ['tcp://127.0.0.1:514', 'tcp://[::1]:514']\n"
	    "    multiline: {continuation: '^[[:space:]]', flush_timeout: 2s}\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/app.log]\n"
	    "    multiline: {start: '^[0-9]{4}-'}\n", &cfg);
	assert_string_equal(source(&cfg, 0)->multiline.continuation, "^[[:space:]]");
	assert_int_equal(source(&cfg, 0)->multiline.flush_timeout_ms, 2000);
	config_free(&agent_config_schema, &cfg);
#ifdef HAVE_SYSTEMD
	load_ok("sources:\n"
	    "  - name: j\n"
	    "    type: journal\n"
	    "    multiline: {continuation: '^[[:space:]]'}\n", &cfg);
	assert_string_equal(source(&cfg, 0)->multiline.continuation, "^[[:space:]]");
	config_free(&agent_config_schema, &cfg);
#endif
}

/* What --dump-config writes for a source without multiline loads again as that. */
static void
test_multiline_at_its_defaults_without_a_pattern_is_no_multiline(void **state)
{
	struct agent_config cfg;

	(void)state;
	load_ok("sources:\n"
	    "  - name: plain\n"
	    "    type: file\n"
	    "    paths: [/var/log/plain.log]\n"
	    "    multiline: {flush_timeout: 1s, max_bytes: 1MiB}\n", &cfg);
	assert_null(source(&cfg, 0)->multiline.start);
	assert_null(source(&cfg, 0)->multiline.continuation);
	config_free(&agent_config_schema, &cfg);
}

static void
test_multiline_on_an_http_source_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: api\n"
	    "    type: http\n"
	    "    listen: 127.0.0.1:8540\n"
	    "    multiline: {start: '^a'}\n",
	    "agent.yaml:5: sources[0].multiline: only valid when type is file, syslog or journal\n");
}

/* An http source's first lines; its own keys follow. */
#define HTTP_API \
	"sources:\n" \
	"  - name: api\n" \
	"    type: http\n" \
	"    listen: 127.0.0.1:8540\n"

/* A tokens file of text (mode 0640) at path (room for 64 bytes). */
static void
write_tokens(char *path, const char *text)
{
	int fd;

	strcpy(path, "/tmp/test_agent_config_tokens.XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, 0640), 0);
	assert_int_equal(close(fd), 0);
}

static void
test_http_auth_tokens_file_loads_and_its_errors_name_its_line(void **state)
{
	struct agent_config cfg;
	char path[64], yaml[512], want[512], *err = NULL;

	(void)state;
	write_tokens(path, "0123456789abcdef0123456789abcdef app-one\n");
	snprintf(yaml, sizeof(yaml), HTTP_API
	    "    auth: {tokens_file: %s}\n", path);
	load_ok(yaml, &cfg);
	assert_string_equal(source(&cfg, 0)->auth.tokens_file, path);
	config_free(&agent_config_schema, &cfg);
	unlink(path);

	write_tokens(path, "# ok\n0123456789abcdef0123456789abcdef app-one\nshort app-two\n");
	snprintf(yaml, sizeof(yaml), HTTP_API
	    "    auth:\n"
	    "      tokens_file: %s\n", path);
	snprintf(want, sizeof(want), "agent.yaml:6: sources[0].auth.tokens_file: %s:3: the token "
	    "is 5 bytes; a token is 16 to 256 bytes (make one with: openssl rand -hex 32)\n", path);
	expect_errors(yaml, want);
	unlink(path);

	snprintf(yaml, sizeof(yaml), HTTP_API
	    "    auth: {tokens_file: %s}\n", path);
	assert_int_equal(load(yaml, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err, "agent.yaml:5: sources[0].auth.tokens_file: "));
	assert_non_null(strstr(err, "cannot open the token file: No such file or directory"));
	free(err);
	config_free(&agent_config_schema, &cfg);

	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/a.log]\n"
	    "    auth: {tokens_file: /etc/logferry/tokens}\n",
	    "agent.yaml:5: sources[0].auth: only valid when type is http\n");
}

static void
test_http_rate_limits_need_a_tokens_file(void **state)
{
	struct agent_config cfg;
	char path[64], yaml[512];

	(void)state;
	expect_errors(HTTP_API
	    "    auth: {events_per_second: 100}\n",
	    "agent.yaml:5: sources[0].auth: rate limits are per sender: set tokens_file\n");
	write_tokens(path, "0123456789abcdef0123456789abcdef app-one\n");
	snprintf(yaml, sizeof(yaml), HTTP_API
	    "    auth:\n"
	    "      tokens_file: %s\n"
	    "      events_per_second: 100\n"
	    "      events_burst: 500\n"
	    "      bytes_per_second: 1MiB\n"
	    "      bytes_burst: 4MiB\n", path);
	load_ok(yaml, &cfg);
	assert_int_equal(source(&cfg, 0)->auth.events_per_s, 100);
	assert_int_equal(source(&cfg, 0)->auth.events_burst, 500);
	assert_int_equal(source(&cfg, 0)->auth.bytes_per_s, 1 * MIB);
	assert_int_equal(source(&cfg, 0)->auth.bytes_burst, 4 * MIB);
	config_free(&agent_config_schema, &cfg);
	unlink(path);
}

static void
test_http_tls_needs_a_certificate_and_its_key(void **state)
{
	struct agent_config cfg;

	(void)state;
	expect_errors(HTTP_API
	    "    tls: {cert_file: @CERT@}\n",
	    "agent.yaml:5: sources[0].tls: HTTPS needs cert_file and key_file\n");
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/a.log]\n"
	    "    tls: {cert_file: @CERT@, key_file: @KEY@}\n",
	    "agent.yaml:5: sources[0].tls: only valid when type is syslog or http\n");
	load_ok(HTTP_API
	    "    tls: {cert_file: @CERT@, key_file: @KEY@, handshake_timeout: 2s}\n", &cfg);
	assert_string_equal(source(&cfg, 0)->tls.cert_file, cert_path);
	assert_int_equal(source(&cfg, 0)->tls.handshake_timeout_ms, 2000);
	assert_null(source(&cfg, 0)->tls.ca_file);
	config_free(&agent_config_schema, &cfg);
}

#define SYSLOG_SRC "sources:\n  - name: sys\n    type: syslog\n"

static void
test_syslog_tls_listener_needs_the_sources_certificate_at_its_line(void **state)
{
	struct agent_config cfg;

	(void)state;
	expect_errors(SYSLOG_SRC
	    "    listen: [tcp://127.0.0.1:514, tls://127.0.0.1:6514]\n",
	    "agent.yaml:4: sources[0].listen[1]: 'tls://127.0.0.1:6514' needs the source's "
	    "tls.cert_file and tls.key_file (the certificate it presents, RFC 5425)\n");
	expect_errors(SYSLOG_SRC
	    "    listen: [tls://127.0.0.1:6514]\n"
	    "    tls: {cert_file: @CERT@}\n",
	    "agent.yaml:4: sources[0].listen[0]: 'tls://127.0.0.1:6514' needs the source's "
	    "tls.cert_file and tls.key_file (the certificate it presents, RFC 5425)\n");
	load_ok(SYSLOG_SRC
	    "    listen: [udp://127.0.0.1:514, tls://127.0.0.1:6514]\n"
	    "    tls: {cert_file: @CERT@, key_file: @KEY@, handshake_timeout: 2s}\n", &cfg);
	assert_int_equal(((const struct config_addr *)source(&cfg, 0)->listen.items)[1].scheme,
	    CONFIG_SCHEME_TLS);
	assert_int_equal(source(&cfg, 0)->tls.handshake_timeout_ms, 2000);
	assert_true(agent_config_has_tls_listener(source(&cfg, 0)));
	config_free(&agent_config_schema, &cfg);
}

static void
test_syslog_certificate_without_a_tls_listener_is_an_error_at_its_line(void **state)
{
	(void)state;
	expect_errors(SYSLOG_SRC
	    "    listen: [tcp://127.0.0.1:514]\n"
	    "    tls: {cert_file: @CERT@, key_file: @KEY@}\n",
	    "agent.yaml:5: sources[0].tls: is for tls:// listeners, and this source has none: add "
	    "one (tls://host:6514) or remove the section\n");
}

static void
test_http_listen_refuses_a_tls_scheme(void **state)
{
	(void)state;
	expect_errors("sources:\n  - name: app\n    type: http\n"
	    "    listen: tls://127.0.0.1:8443\n",
	    "agent.yaml:4: sources[0].listen[0]: 'tls://127.0.0.1:8443': an http source listens "
	    "on host:port\n");
}

static void
test_http_allowed_cns_need_verify_client(void **state)
{
	struct agent_config cfg;

	(void)state;
	expect_errors(HTTP_API
	    "    tls:\n"
	    "      cert_file: @CERT@\n"
	    "      key_file: @KEY@\n"
	    "      allowed_cns: [web-*]\n",
	    "agent.yaml:8: sources[0].tls.allowed_cns: needs verify_client: true (without client "
	    "certificates there is no common name to allow)\n");
	load_ok(HTTP_API
	    "    tls:\n"
	    "      cert_file: @CERT@\n"
	    "      key_file: @KEY@\n"
	    "      ca_file: @CA@\n"
	    "      verify_client: true\n"
	    "      allowed_cns: [web-*, billing]\n", &cfg);
	assert_true(source(&cfg, 0)->tls.verify_client);
	assert_int_equal(source(&cfg, 0)->tls.allowed_cns.n, 2);
	assert_string_equal(string_at(&source(&cfg, 0)->tls.allowed_cns, 0), "web-*");
	config_free(&agent_config_schema, &cfg);
}

static void
test_relative_path_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths:\n"
	    "      - /var/log/a.log\n"
	    "      - var/log/b.log\n",
	    "agent.yaml:6: sources[0].paths[1]: 'var/log/b.log' is not an absolute path\n");
}

static void
test_duplicate_source_names_are_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    paths: [/var/log/a.log]\n"
	    "  - name: app\n"
	    "    type: http\n"
	    "    listen: 127.0.0.1:8540\n",
	    "agent.yaml:5: sources[1].name: 'app' is already the name of sources[0]\n");
}

static void
test_source_name_with_invalid_characters_is_refused(void **state)
{
	(void)state;
	expect_errors("sources:\n"
	    "  - name: my app\n"
	    "    type: file\n"
	    "    paths: [/var/log/a.log]\n"
	    "  - name: a/b\n"
	    "    type: file\n"
	    "    paths: [/var/log/b.log]\n"
	    "  - name: ok.name_1-x\n"
	    "    type: file\n"
	    "    paths: [/var/log/c.log]\n",
	    "agent.yaml:2: sources[0].name: 'my app' may contain only letters, digits, "
	    "'.', '_' and '-'\n"
	    "agent.yaml:5: sources[1].name: 'a/b' may contain only letters, digits, "
	    "'.', '_' and '-'\n");
}

static void
test_duplicate_key_names_the_line_first_set(void **state)
{
	(void)state;
	expect_errors("memory_limit: 64MiB\n"
	    "spool:\n"
	    "  sync: always\n"
	    "  sync: relaxed\n"
	    "memory_limit: 128MiB\n"
	    SOURCES_OK,
	    "agent.yaml:4: spool.sync: duplicate key (first set on line 3)\n"
	    "agent.yaml:5: memory_limit: duplicate key (first set on line 1)\n");
}

static void
test_yaml_syntax_error_reports_its_line(void **state)
{
	struct agent_config cfg;
	char *err;

	(void)state;
	assert_int_equal(load("id: web-01\n"
	    "memory_limit: 64MiB\n"
	    "  spool: {sync: always}\n"
	    SOURCES_OK, &cfg, &err), -EINVAL);
	assert_string_equal(err,
	    "agent.yaml:3: YAML syntax error: mapping values are not allowed in this context\n");
	/* Defaults are filled in even so: the struct is safe to read and free. */
	assert_int_equal(cfg.memory_limit, 64 * MIB);
	config_free(&agent_config_schema, &cfg);
	free(err);

	expect_errors("id: web-01\n"
	    "sources:\n"
	    "\t- name: app\n",
	    "agent.yaml:3: YAML syntax error: found character that cannot start any "
	    "token while scanning for the next token\n");
}

static void
test_relays_without_tls_is_refused(void **state)
{
	(void)state;
	expect_errors("relays:\n"
	    "  servers: [relay1:7540]\n"
	    SOURCES_OK,
	    "agent.yaml:1: relays.tls: missing: this key is required\n");
	expect_errors("relays: {servers: [relay1:7540], tls: {ca_file: @CA@}}\n"
	    SOURCES_OK,
	    "agent.yaml:1: relays.tls.cert_file: missing: this key is required\n"
	    "agent.yaml:1: relays.tls.key_file: missing: this key is required\n");
}

static void
test_relays_without_servers_is_refused(void **state)
{
	(void)state;
	expect_errors("relays:\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    SOURCES_OK,
	    "agent.yaml:1: relays.servers: missing: this key is required\n");
	expect_errors("relays:\n"
	    "  servers: []\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    SOURCES_OK,
	    "agent.yaml:2: relays.servers: must list at least one entry\n");
}

static void
test_unreadable_tls_files_are_reported(void **state)
{
	(void)state;
	expect_errors("relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls:\n"
	    "    ca_file: /nonexistent/logferry/ca.crt\n"
	    "    cert_file: @CERT@\n"
	    "    key_file: /nonexistent/logferry/agent.key\n"
	    SOURCES_OK,
	    "agent.yaml:4: relays.tls.ca_file: cannot read '/nonexistent/logferry/ca.crt': "
	    "No such file or directory\n"
	    "agent.yaml:6: relays.tls.key_file: cannot read '/nonexistent/logferry/agent.key': "
	    "No such file or directory\n");
}

static void
test_reconnect_min_above_reconnect_max_is_refused(void **state)
{
	struct agent_config cfg;

	(void)state;
	expect_errors("relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  reconnect_min: 1m\n"
	    "  reconnect_max: 30s\n"
	    SOURCES_OK,
	    "agent.yaml:4: relays.reconnect_min: must not be above reconnect_max\n");
	/* Against the default reconnect_max (30s) too. */
	expect_errors("relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  reconnect_min: 31s\n"
	    SOURCES_OK,
	    "agent.yaml:4: relays.reconnect_min: must not be above reconnect_max\n");
	/* Equal is fine. */
	load_ok("relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  reconnect_min: 5s\n"
	    "  reconnect_max: 5000ms\n"
	    SOURCES_OK, &cfg);
	assert_int_equal(cfg.relays.reconnect_min_ms, 5000);
	assert_int_equal(cfg.relays.reconnect_max_ms, 5000);
	config_free(&agent_config_schema, &cfg);
}

/*
 * A Ping is what makes a quiet but healthy relay answer: sent no more often
 * than ping_timeout, it could not prevent a false "dead relay", and a dead
 * one could not be told from a quiet one within ping_timeout.
 */
static void
test_ping_interval_not_below_ping_timeout_is_refused(void **state)
{
	struct agent_config cfg;

	(void)state;
	expect_errors("relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  ping_interval: 30s\n"
	    SOURCES_OK,
	    "agent.yaml:4: relays.ping_interval: must be below ping_timeout (30000 ms)\n");
	load_ok("relays:\n"
	    "  servers: [relay1:7540]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    "  ping_interval: 1s\n"
	    "  ping_timeout: 1001ms\n"
	    SOURCES_OK, &cfg);
	assert_int_equal(cfg.relays.ping_interval_ms, 1000);
	config_free(&agent_config_schema, &cfg);
}

static void
test_bad_server_addresses_are_refused(void **state)
{
	(void)state;
	expect_errors("relays:\n"
	    "  servers: [relay1:0, relay2:70000, relay3, \"::1:7540\", tcp://relay4:7540, \":7540\"]\n"
	    "  tls: {ca_file: @CA@, cert_file: @CERT@, key_file: @KEY@}\n"
	    SOURCES_OK,
	    "agent.yaml:2: relays.servers[0]: 'relay1:0' has an invalid port: use 1 to 65535\n"
	    "agent.yaml:2: relays.servers[1]: 'relay2:70000' has an invalid port: use 1 to 65535\n"
	    "agent.yaml:2: relays.servers[2]: 'relay3' is not host:port: the port is missing\n"
	    "agent.yaml:2: relays.servers[3]: '::1:7540' is not host:port: write an IPv6 "
	    "address as [addr]:port\n"
	    "agent.yaml:2: relays.servers[4]: 'tcp://relay4:7540' is not a valid address: "
	    "expected host:port\n"
	    "agent.yaml:2: relays.servers[5]: ':7540' is not host:port: the host is missing\n");
}

static void
test_several_errors_are_all_reported_in_one_run(void **state)
{
	struct agent_config cfg;
	char *err;
	int lines = 0;

	(void)state;
	assert_int_equal(load("memory_limit: 64MB\n"
	    "spool: {sync: sometimes, max_sise: 1GiB}\n"
	    "colour: blue\n"
	    "sources:\n"
	    "  - name: app\n"
	    "    type: file\n"
	    "    listen: 127.0.0.1:1\n"
	    "  - type: syslog\n"
	    "    listen: udp://127.0.0.1:70000\n"
	    "relays:\n"
	    "  servers: [relay1]\n"
	    "  window: 0\n", &cfg, &err), -EINVAL);
	for (const char *p = err; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 11);
	for (const char *p = err; *p; p = strchr(p, '\n') + 1)
		assert_int_equal(strncmp(p, "agent.yaml:", 11), 0);
	assert_non_null(strstr(err, "agent.yaml:1: memory_limit: '64MB' is not a size"));
	assert_non_null(strstr(err, "agent.yaml:2: spool.sync: 'sometimes' is not one of"));
	assert_non_null(strstr(err, "agent.yaml:2: spool.max_sise: unknown key (did you mean max_size?)\n"));
	assert_non_null(strstr(err, "agent.yaml:3: colour: unknown key\n"));
	assert_non_null(strstr(err, "agent.yaml:5: sources[0].paths: missing: required when type is file\n"));
	assert_non_null(strstr(err, "agent.yaml:7: sources[0].listen: only valid when type is syslog or http\n"));
	assert_non_null(strstr(err, "agent.yaml:8: sources[1].name: missing: this key is required\n"));
	assert_non_null(strstr(err, "agent.yaml:9: sources[1].listen[0]: 'udp://127.0.0.1:70000' has an invalid port"));
	assert_non_null(strstr(err, "agent.yaml:11: relays.servers[0]: 'relay1' is not host:port"));
	assert_non_null(strstr(err, "agent.yaml:10: relays.tls: missing: this key is required\n"));
	assert_non_null(strstr(err, "agent.yaml:12: relays.window: 0 is below the minimum of 1\n"));
	config_free(&agent_config_schema, &cfg);
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example_config_is_valid_and_typed),
		cmocka_unit_test(test_absent_keys_get_their_defaults),
		cmocka_unit_test(test_config_without_relays_is_valid_and_only_spools),
		cmocka_unit_test(test_id_defaults_to_the_host_name),
		cmocka_unit_test(test_tilde_or_empty_value_is_absent_and_the_default_applies),
		cmocka_unit_test(test_quoted_empty_string_is_a_value_not_absent),
		cmocka_unit_test(test_scalar_paths_is_a_list_of_one),
		cmocka_unit_test(test_ipv6_server_is_parsed_without_brackets),
		cmocka_unit_test(test_metrics_listen_may_use_port_zero),
		cmocka_unit_test(test_misspelt_key_is_refused_with_a_suggestion),
		cmocka_unit_test(test_unknown_key_without_close_match_is_refused_without_suggestion),
		cmocka_unit_test(test_size_with_unknown_unit_is_refused),
		cmocka_unit_test(test_duration_without_unit_is_refused),
		cmocka_unit_test(test_values_out_of_range_name_the_formatted_bound),
		cmocka_unit_test(test_values_at_the_bounds_are_accepted),
		cmocka_unit_test(test_wrong_enum_value_lists_the_allowed_names),
		cmocka_unit_test(test_bad_source_type_is_reported_once_not_as_type_file),
#ifdef HAVE_SYSTEMD   /* else a journal source is refused, and says so */
		cmocka_unit_test(test_journal_source_takes_directory_matches_and_start_at),
		cmocka_unit_test(test_journal_match_without_a_field_name_is_an_error_at_its_line),
#endif
		cmocka_unit_test(test_processors_global_and_per_source_compile_into_each_source_chain),
		cmocka_unit_test(test_no_processors_is_no_chain),
		cmocka_unit_test(test_redact_processors_load_with_their_keys),
		cmocka_unit_test(test_redact_short_key_file_and_bad_regex_are_errors_at_their_processor_line),
		cmocka_unit_test(test_redact_keys_are_only_for_redact),
		cmocka_unit_test(test_a_processor_that_does_not_compile_is_an_error_at_its_line_once),
		cmocka_unit_test(test_a_processor_without_its_type_or_its_keys_is_refused),
		cmocka_unit_test(test_drop_and_keep_read_their_conditions_and_need_them),
		cmocka_unit_test(test_rename_takes_a_map_and_remove_a_list_of_names),
		cmocka_unit_test(
		    test_require_takes_fields_types_and_a_dead_letter_stream_by_default_dead_letter),
		cmocka_unit_test(test_wrong_kind_of_node_is_refused),
		cmocka_unit_test(test_missing_sources_is_refused),
		cmocka_unit_test(test_empty_sources_list_is_refused),
		cmocka_unit_test(test_source_without_name_or_type_is_refused),
		cmocka_unit_test(test_file_source_without_paths_is_refused),
		cmocka_unit_test(test_syslog_and_http_sources_without_listen_are_refused),
		cmocka_unit_test(test_listen_on_a_file_source_is_refused),
		cmocka_unit_test(test_file_keys_on_a_syslog_source_are_refused),
		cmocka_unit_test(test_syslog_listen_needs_a_scheme),
		cmocka_unit_test(test_http_listen_with_a_scheme_is_refused),
		cmocka_unit_test(test_unix_listen_needs_an_absolute_path),
		cmocka_unit_test(test_bad_single_listen_value_is_reported_once_as_written),
		cmocka_unit_test(test_socket_mode_must_be_octal),
		cmocka_unit_test(test_multiline_keys_are_read_with_their_defaults),
#ifdef HAVE_SYSTEMD
		cmocka_unit_test(test_multiline_is_read_for_a_journal_source),
#endif
		cmocka_unit_test(test_multiline_pattern_that_does_not_compile_is_an_error_at_its_line),
		cmocka_unit_test(test_multiline_needs_exactly_one_of_start_and_continuation),
		cmocka_unit_test(test_multiline_on_a_syslog_source_with_datagram_listeners_is_an_error_at_its_line),
		cmocka_unit_test(test_multiline_on_tcp_syslog_and_journal_sources_is_accepted),
		cmocka_unit_test(test_multiline_on_a_syslog_listener_without_scheme_reports_only_the_scheme),
		cmocka_unit_test(test_multiline_at_its_defaults_without_a_pattern_is_no_multiline),
		cmocka_unit_test(test_multiline_on_an_http_source_is_refused),
		cmocka_unit_test(test_http_auth_tokens_file_loads_and_its_errors_name_its_line),
		cmocka_unit_test(test_http_rate_limits_need_a_tokens_file),
		cmocka_unit_test(test_http_tls_needs_a_certificate_and_its_key),
		cmocka_unit_test(test_http_allowed_cns_need_verify_client),
		cmocka_unit_test(test_syslog_tls_listener_needs_the_sources_certificate_at_its_line),
		cmocka_unit_test(test_syslog_certificate_without_a_tls_listener_is_an_error_at_its_line),
		cmocka_unit_test(test_http_listen_refuses_a_tls_scheme),
		cmocka_unit_test(test_relative_path_is_refused),
		cmocka_unit_test(test_duplicate_source_names_are_refused),
		cmocka_unit_test(test_source_name_with_invalid_characters_is_refused),
		cmocka_unit_test(test_duplicate_key_names_the_line_first_set),
		cmocka_unit_test(test_yaml_syntax_error_reports_its_line),
		cmocka_unit_test(test_relays_without_tls_is_refused),
		cmocka_unit_test(test_relays_without_servers_is_refused),
		cmocka_unit_test(test_unreadable_tls_files_are_reported),
		cmocka_unit_test(test_reconnect_min_above_reconnect_max_is_refused),
		cmocka_unit_test(test_ping_interval_not_below_ping_timeout_is_refused),
		cmocka_unit_test(test_bad_server_addresses_are_refused),
		cmocka_unit_test(test_several_errors_are_all_reported_in_one_run),
		cmocka_unit_test(test_syslog_timezone_and_receive_buffer_are_read_and_checked),
	};

	return cmocka_run_group_tests(tests, setup_tls_files, remove_tls_files);
}
