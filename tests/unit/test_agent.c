/* SPDX-License-Identifier: Apache-2.0 */
/* agent: what a SIGHUP reload tells apart (agent_source_equal, agent_restart_keys). */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/agent_config.h"
#include "agent/source_type.h"
#include "agent/spool.h"
#include "tests/unit/config_fixture.h"

const struct config_schema *fixture_schema = &agent_config_schema;
const char *fixture_name = "agent.yaml";

#define BASE \
	"id: web-01\n" \
	"data_dir: /var/lib/logferry\n"

#define FILE_A "  - {name: a, type: file, paths: [/var/log/a.log], format: nginx_combined}\n"
#define SYSLOG_S "  - {name: s, type: syslog, listen: [udp://127.0.0.1:5514]}\n"

struct pair {
	struct agent_config run, fresh;
};

static void
pair_load(struct pair *p, const char *run, const char *fresh)
{
	memset(p, 0, sizeof(*p));
	load_ok(run, &p->run);
	load_ok(fresh, &p->fresh);
}

static void
pair_free(struct pair *p)
{
	config_free(&agent_config_schema, &p->run);
	config_free(&agent_config_schema, &p->fresh);
}

static const struct agent_source *
src(const struct agent_config *cfg, size_t i)
{
	assert_true(i < cfg->sources.n);
	return (const struct agent_source *)cfg->sources.items + i;
}

static void
test_a_source_with_the_same_settings_is_equal_and_keeps_running(void **state)
{
	struct pair p;

	(void)state;
	/* Written differently (defaults spelled out, another order): the same settings. */
	pair_load(&p, BASE "sources:\n" FILE_A SYSLOG_S,
	    BASE "sources:\n" SYSLOG_S
	    "  - {name: a, type: file, paths: /var/log/a.log, format: nginx_combined, max_line: 1MiB}\n");
	assert_true(agent_source_equal(src(&p.run, 0), src(&p.fresh, 1)));
	assert_true(agent_source_equal(src(&p.run, 1), src(&p.fresh, 0)));
	pair_free(&p);
}

static void
test_a_source_whose_format_or_paths_or_listen_changed_is_not_equal(void **state)
{
	struct pair p;

	(void)state;
	pair_load(&p, BASE "sources:\n" FILE_A SYSLOG_S,
	    BASE "sources:\n"
	    "  - {name: a, type: file, paths: [/var/log/a.log], format: raw}\n"
	    "  - {name: s, type: syslog, listen: [udp://127.0.0.1:5515]}\n"
	    "  - {name: a2, type: file, paths: [/var/log/a.log, /var/log/b.log], format: nginx_combined}\n");
	assert_false(agent_source_equal(src(&p.run, 0), src(&p.fresh, 0)));
	assert_false(agent_source_equal(src(&p.run, 1), src(&p.fresh, 1)));
	assert_false(agent_source_equal(src(&p.run, 0), src(&p.fresh, 2)));
	pair_free(&p);
}

static void
test_a_change_of_a_source_or_the_global_processors_is_seen_by_a_reload(void **state)
{
	struct pair p;

	(void)state;
	pair_load(&p, BASE "processors: [{type: add_fields, values: {env: prod}}]\nsources:\n"
	    FILE_A SYSLOG_S,
	    BASE "processors: [{type: add_fields, values: {env: staging}}]\nsources:\n"
	    "  - {name: a, type: file, paths: [/var/log/a.log], format: nginx_combined,\n"
	    "     processors: [{type: add_fields, values: {dc: par1}}]}\n"
	    SYSLOG_S);
	assert_false(agent_source_equal(src(&p.run, 0), src(&p.fresh, 0)));
	assert_true(agent_source_equal(src(&p.run, 1), src(&p.fresh, 1)));
	assert_false(agent_processors_equal(&p.run, &p.fresh));
	assert_true(agent_processors_equal(&p.run, &p.run));
	pair_free(&p);
}

static void
test_sources_and_log_level_changes_need_no_restart(void **state)
{
	struct pair p;
	const char *keys[8];

	(void)state;
	pair_load(&p, BASE "sources:\n" FILE_A,
	    BASE "log_level: debug\nsources:\n" SYSLOG_S
	    "  - {name: a, type: file, paths: [/var/log/a.log], format: raw}\n");
	assert_int_equal(agent_restart_keys(&p.run, &p.fresh, keys, 8), 0);
	pair_free(&p);
}

static void
test_id_data_dir_spool_memory_and_metrics_changes_need_a_restart_by_key(void **state)
{
	struct pair p;
	const char *keys[8];

	(void)state;
	pair_load(&p, BASE "sources:\n" FILE_A,
	    "id: web-02\ndata_dir: /srv/logferry\nmemory_limit: 512MiB\n"
	    "spool: {max_size: 2GiB}\nmetrics: {listen: 127.0.0.1:9100}\nsources:\n" FILE_A);
	assert_int_equal(agent_restart_keys(&p.run, &p.fresh, keys, 8), 5);
	assert_string_equal(keys[0], "id");
	assert_string_equal(keys[1], "data_dir");
	assert_string_equal(keys[2], "memory_limit");
	assert_string_equal(keys[3], "spool");
	assert_string_equal(keys[4], "metrics");
	pair_free(&p);
}

static void
test_a_line_longer_than_the_spool_takes_needs_a_restart(void **state)
{
	struct pair p;
	const char *keys[8];

	(void)state;
	pair_load(&p, BASE "sources:\n" FILE_A,
	    BASE "sources:\n"
	    "  - {name: a, type: file, paths: [/var/log/a.log], format: nginx_combined, max_line: 8MiB}\n");
	assert_int_equal(agent_restart_keys(&p.run, &p.fresh, keys, 8), 1);
	assert_non_null(strstr(keys[0], "max_line"));
	pair_free(&p);
}

/* The configuration's `type` names, from its schema. */
static const char *const *
type_names(void)
{
	const struct config_key *k;

	for (k = agent_config_schema.keys; strcmp(k->name, "sources") != 0; k++)
		;
	for (k = k->elem->keys; strcmp(k->name, "type") != 0; k++)
		;
	return k->names;
}

static void
test_every_configured_source_type_has_its_entry_by_name_in_the_source_table(void **state)
{
	const char *const *names = type_names();
	size_t n = 0;

	(void)state;
	for (; names[n] != NULL; n++) {
		assert_true(n < source_types_n);
		assert_string_equal(source_types[n]->name, names[n]);
	}
	assert_int_equal(n, source_types_n);
}

static void
test_every_source_type_starts_stops_and_reports_counters_inside_its_stats(void **state)
{
	(void)state;
	for (size_t i = 0; i < source_types_n; i++) {
		const struct source_type *t = source_types[i];

		assert_non_null(t->max_message);
		assert_non_null(t->start);
		assert_non_null(t->resume);
		assert_non_null(t->stop);
		assert_non_null(t->stats);
		assert_true(t->nfields > 0);
		for (size_t f = 0; f < t->nfields; f++) {
			assert_true(t->fields[f].offset + sizeof(uint64_t) <= t->stats_size);
			for (size_t g = 0; g < f; g++)
				assert_string_not_equal(t->fields[f].name, t->fields[g].name);
		}
	}
}

static void
test_the_spool_takes_the_largest_message_of_any_source_type(void **state)
{
	struct agent_config cfg;
	struct spool_options o;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	load_ok(BASE "sources:\n" FILE_A
	    "  - {name: s, type: syslog, listen: [udp://127.0.0.1:5514], max_message_size: 4MiB}\n"
	    "  - {name: h, type: http, listen: [127.0.0.1:8080], max_body_size: 2MiB}\n", &cfg);
	agent_spool_options(&cfg, "/tmp", &o);
	assert_int_equal(o.event_max_bytes, 2 * (4u << 20) + 65536);
	config_free(&agent_config_schema, &cfg);
	memset(&cfg, 0, sizeof(cfg));
	load_ok(BASE "sources:\n"
	    "  - {name: h, type: http, listen: [127.0.0.1:8080], max_body_size: 16MiB}\n", &cfg);
	agent_spool_options(&cfg, "/tmp", &o);
	assert_int_equal(o.event_max_bytes, 2 * (16u << 20) + 65536);
	config_free(&agent_config_schema, &cfg);
}

static void
test_spool_names_size_bounds_the_event_format_2_names_table(void **state)
{
	struct agent_config cfg;
	struct spool_options o;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	load_ok(BASE "sources:\n" FILE_A, &cfg);
	agent_spool_options(&cfg, "/tmp", &o);
	assert_int_equal(o.dict_bytes, 256u << 10);
	config_free(&agent_config_schema, &cfg);
	memset(&cfg, 0, sizeof(cfg));
	load_ok(BASE "spool: {names_size: 64KiB}\nsources:\n" FILE_A, &cfg);
	agent_spool_options(&cfg, "/tmp", &o);
	assert_int_equal(o.dict_bytes, 64u << 10);
	config_free(&agent_config_schema, &cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_source_with_the_same_settings_is_equal_and_keeps_running),
		cmocka_unit_test(test_a_source_whose_format_or_paths_or_listen_changed_is_not_equal),
		cmocka_unit_test(test_sources_and_log_level_changes_need_no_restart),
		cmocka_unit_test(test_id_data_dir_spool_memory_and_metrics_changes_need_a_restart_by_key),
		cmocka_unit_test(test_a_line_longer_than_the_spool_takes_needs_a_restart),
		cmocka_unit_test(test_every_configured_source_type_has_its_entry_by_name_in_the_source_table),
		cmocka_unit_test(test_every_source_type_starts_stops_and_reports_counters_inside_its_stats),
		cmocka_unit_test(test_the_spool_takes_the_largest_message_of_any_source_type),
		cmocka_unit_test(test_spool_names_size_bounds_the_event_format_2_names_table),
		cmocka_unit_test(
		    test_a_change_of_a_source_or_the_global_processors_is_seen_by_a_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
