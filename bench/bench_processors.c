/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_processors: CPU per event of each type of processing stage, and of
 * a typical chain, on NGINX combined events (11 typed fields, most of them
 * slices of the line), beside the cost of the door without processors
 * (encoding the event, bench_codec's figure). The hot path allocates
 * nothing: tests/unit/test_processors counts it.
 *
 * Usage: bench_processors [EVENTS]   (default 1000000)
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/nginx_parse.h"
#include "agent/processors.h"
#include "agent/redact.h"
#include "bench/bench_util.h"
#include "common/buf.h"
#include "proto/event.h"

#define VARIANTS 64

static char lines[VARIANTS][512];
static struct parsed parsed[VARIANTS];
static struct event events[VARIANTS];

static const struct processor_context ctx = {
	.host = "web-01", .agent_id = "web-01", .source = "nginx", .config_file = "agent.yaml",
};

static struct config_map_entry add_kv[] = { { "env", "prod", 0 }, { "dc", "par1", 0 },
	{ "node", "${host}", 0 } };
static struct config_map_entry rename_kv[] = { { "remote_addr", "client_ip", 0 } };
static char *remove_names[] = { "remote_user", "protocol" };
static char *require_names[] = { "status", "path" };
static struct config_map_entry require_types[] = { { "status", "integer", 0 } };
static struct agent_condition drop_when[] = { { .field = "status", .ge = "500" },
	{ .field = "path", .prefix = "/health" } };
static struct agent_condition keep_when[] = { { .field = "method", .equals = "GET" } };

static struct agent_processor stages[] = {
	{ .type = PROCESSOR_ADD_FIELDS, .values = { 3, add_kv } },
	{ .type = PROCESSOR_DROP, .when = { 2, drop_when } },
	{ .type = PROCESSOR_KEEP, .when = { 1, keep_when } },
	{ .type = PROCESSOR_RENAME, .map = { 1, rename_kv } },
	{ .type = PROCESSOR_REMOVE, .fields = { 2, remove_names } },
	{ .type = PROCESSOR_REQUIRE, .fields = { 2, require_names }, .types = { 1, require_types },
	  .dead_letter_stream = "dead_letter" },
};

/* redact on the same events: key_file is set in main, to a key written for the run. */
static char *redact_names_drop[] = { "http_user_agent" };
static struct agent_processor redact_stages[] = {
	{ .type = PROCESSOR_REDACT, .field = "remote_addr", .method = REDACT_HASH },
	{ .type = PROCESSOR_REDACT, .field = "remote_addr", .method = REDACT_MASK_IP },
	{ .type = PROCESSOR_REDACT, .fields = { 1, redact_names_drop }, .method = REDACT_DROP },
	{ .type = PROCESSOR_REDACT, .method = REDACT_REGEX,
	  .pattern = "[0-9]{1,3}([.][0-9]{1,3}){3}" },
};
static const char *const redact_labels[] = { "redact hash (1 field)", "redact mask_ip (1 field)",
	"redact drop (1 field)", "redact regex (message)" };

static void
bench_chain(const char *name, const struct config_list *list, unsigned long n)
{
	const struct config_list *lists[] = { list };
	struct processors_error e;
	struct processors *c;
	unsigned long kept = 0;
	const struct event *out;
	size_t marks;
	double c0;

	if (processors_compile(lists, 1, &ctx, 1 << 20, &c, &e) != 0) {
		fprintf(stderr, "bench_processors: %s: %s\n", name, e.msg);
		exit(1);
	}
	c0 = bench_cpu_seconds();
	for (unsigned long i = 0; i < n; i++)
		kept += processors_run(c, &events[i % VARIANTS], 0, &out, &marks) == PROCESSORS_KEEP;
	printf("%-28s %lu events, %lu kept: %.1f ns CPU/event\n", name, n, kept,
	    (bench_cpu_seconds() - c0) * 1e9 / (double)n);
	processors_free(c);
}

/* The door's own cost: encoding the event for the spool. */
static void
bench_encode(unsigned long n)
{
	struct buf out;
	double c0;

	buf_init(&out, 64 << 20);
	c0 = bench_cpu_seconds();
	for (unsigned long i = 0; i < n; i++) {
		if (out.len > (32 << 20))
			buf_reset(&out);
		if (event_encode(&events[i % VARIANTS], &out) != 0) {
			fprintf(stderr, "bench_processors: event_encode failed\n");
			exit(1);
		}
	}
	printf("%-28s %lu events: %.1f ns CPU/event\n", "encode (no processors)", n,
	    (bench_cpu_seconds() - c0) * 1e9 / (double)n);
	buf_free(&out);
}

/* Each redact method alone, the four together, and the four before the six. */
static void
bench_redact(unsigned long n)
{
	const size_t nr = sizeof(redact_stages) / sizeof(redact_stages[0]);
	const size_t ns = sizeof(stages) / sizeof(stages[0]);
	struct agent_processor all[sizeof(redact_stages) / sizeof(redact_stages[0]) +
	    sizeof(stages) / sizeof(stages[0])];
	char key[] = "/tmp/bench-redact-key-XXXXXX";
	struct config_list one;
	int fd = mkstemp(key);

	if (fd < 0 || write(fd, "0123456789abcdef0123456789abcdef", 32) != 32 || close(fd) != 0) {
		fprintf(stderr, "bench_processors: cannot write a key file in /tmp\n");
		exit(1);
	}
	redact_stages[0].key_file = key;
	for (size_t i = 0; i < nr; i++) {
		one = (struct config_list){ 1, &redact_stages[i] };
		bench_chain(redact_labels[i], &one, n);
	}
	one = (struct config_list){ nr, redact_stages };
	bench_chain("redact (the four above)", &one, n);
	memcpy(all, redact_stages, sizeof(redact_stages));
	memcpy(all + nr, stages, sizeof(stages));
	one = (struct config_list){ nr + ns, all };
	bench_chain("typical + redact (all ten)", &one, n);
	unlink(key);
}

int
main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	struct config_list one, typical = { sizeof(stages) / sizeof(stages[0]), stages };

	for (unsigned i = 0; i < VARIANTS; i++) {
		size_t len = (size_t)snprintf(lines[i], sizeof(lines[i]),
		    "203.0.113.%u - - [22/Nov/2026:10:%02u:%02u +0000] \"GET /%s/%u HTTP/1.1\" "
		    "%u %u \"https://example.net/\" \"curl/8.0\"", i % 250, (i / 60) % 60, i % 60,
		    i % 8 ? "item" : "health", i, i % 17 ? 200 : 503, 600 + i * 3);

		parser_init(&parsed[i], 64 * 1024);
		if (nginx_parse((const uint8_t *)lines[i], len, &parsed[i]) != 0) {
			fprintf(stderr, "bench_processors: line %u does not parse\n", i);
			return 1;
		}
		events[i] = (struct event){ .ts = parsed[i].ts,
			.host = { (const uint8_t *)"web-01", 6 }, .stream = { (const uint8_t *)"nginx", 5 },
			.source = { (const uint8_t *)"/var/log/nginx/access.log", 25 },
			.message = { (const uint8_t *)lines[i], len },
			.fields = parsed[i].fields, .nfields = parsed[i].nfields };
	}
	bench_encode(n);
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		one = (struct config_list){ 1, &stages[i] };
		bench_chain(processor_types[stages[i].type]->name, &one, n);
	}
	bench_chain("typical (all six above)", &typical, n);
	bench_redact(n);
	for (unsigned i = 0; i < VARIANTS; i++)
		parser_free(&parsed[i]);
	return 0;
}
