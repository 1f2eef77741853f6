/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_parse: CPU per line of the line parsers, to set against
 * docs/performance.md ("parse NGINX combined into 11 typed fields, single pass,
 * no regex": 0.11 us per line).
 *
 * Usage: bench_parse [LINES]   (default 1000000)
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nginx_error_parse.h"
#include "agent/nginx_format.h"
#include "agent/nginx_parse.h"
#include "agent/syslog_parse.h"
#include "bench/bench_util.h"

#define VARIANTS 1024

static char lines[VARIANTS][512];
static size_t lens[VARIANTS];

typedef int (*bench_parse_fn)(const uint8_t *line, size_t len, struct parsed *out);

/* The compiled log_format bench_nginx_format runs. */
static struct nginx_format *bench_format;

static int
bench_nginx_format(const uint8_t *line, size_t len, struct parsed *out)
{
	return nginx_format_parse(bench_format, line, len, out);
}

static int
bench_nginx_error(const uint8_t *line, size_t len, struct parsed *out)
{
	return nginx_error_parse(line, len, NULL, out);
}

/* Compiles text into bench_format, or exits. */
static void
bench_compile(const char *text)
{
	char err[256];

	nginx_format_free(bench_format);
	if (nginx_format_compile(text, &bench_format, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_parse: %s\n", err);
		exit(1);
	}
}

static int
bench_syslog(const uint8_t *line, size_t len, struct parsed *out)
{
	return syslog_parse(line, len, UINT64_C(1795341600000000000), NULL, out);
}

static void
bench_run(const char *name, bench_parse_fn fn, unsigned long n)
{
	struct parsed p;
	unsigned long ok = 0;
	size_t bytes = 0, fields = 0;
	double c0;

	parser_init(&p, 64 * 1024);
	c0 = bench_cpu_seconds();
	for (unsigned long i = 0; i < n; i++) {
		unsigned v = (unsigned)(i % VARIANTS);

		if (fn((const uint8_t *)lines[v], lens[v], &p) == 0)
			ok++;
		bytes += lens[v];
		fields += p.nfields;
	}
	printf("%-22s %lu lines of %.1f bytes, %lu parsed, %.1f fields/line: %.3f us CPU/line\n",
	    name, n, (double)bytes / (double)n, ok, (double)fields / (double)n,
	    (bench_cpu_seconds() - c0) * 1e6 / (double)n);
	parser_free(&p);
}

int
main(int argc, char **argv)
{
	static const char *const agents[] = { "curl/8.0",
		"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0" };
	static const char *const apps[] = { "sshd", "CRON", "nginx", "myapp" };
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;

	for (unsigned i = 0; i < VARIANTS; i++)
		lens[i] = (size_t)snprintf(lines[i], sizeof(lines[i]),
		    "203.0.113.%u - - [22/Nov/2026:10:%02u:%02u +0000] \"GET /item/%u?page=%u HTTP/1.1\" "
		    "%u %u \"https://example.net/\" \"%s\"", i % 250, (i / 60) % 60, i % 60, i,
		    i % 7, i % 17 ? 200 : 404, 600 + i * 3, agents[i % 2]);
	bench_run("nginx_combined", nginx_parse, n);
	/* The same lines through the compiled combined format: the cost of generality. */
	bench_compile("log_format combined '$remote_addr - $remote_user [$time_local] '\n"
	    "    '\"$request\" $status $body_bytes_sent '\n"
	    "    '\"$http_referer\" \"$http_user_agent\"';");
	bench_run("nginx_format combined", bench_nginx_format, n);

	/* Debian's main with the timings and upstreams people add. */
	for (unsigned i = 0; i < VARIANTS; i++)
		lens[i] = (size_t)snprintf(lines[i], sizeof(lines[i]),
		    "203.0.113.%u - - [22/Nov/2026:10:%02u:%02u +0000] \"GET /item/%u?page=%u HTTP/1.1\" "
		    "%u %u \"https://example.net/\" \"%s\" \"198.51.100.%u\" 0.%03u 0.%03u%s 10.0.0.%u:8080%s",
		    i % 250, (i / 60) % 60, i % 60, i, i % 7, i % 17 ? 200 : 404, 600 + i * 3,
		    agents[i % 2], i % 200, i % 1000, i % 900, i % 5 ? "" : ", 0.002", i % 4,
		    i % 5 ? "" : ", 10.0.0.9:8080");
	bench_compile("log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
	    "    '$status $body_bytes_sent \"$http_referer\" '\n"
	    "    '\"$http_user_agent\" \"$http_x_forwarded_for\" '\n"
	    "    '$request_time $upstream_response_time $upstream_addr';");
	bench_run("nginx_format main", bench_nginx_format, n);

	for (unsigned i = 0; i < VARIANTS; i++)
		lens[i] = (size_t)snprintf(lines[i], sizeof(lines[i]),
		    "{\"time\":\"2026-11-22T10:%02u:%02u+00:00\",\"addr\":\"203.0.113.%u\","
		    "\"request\":\"GET /item/%u?q=\\\"%u\\\" HTTP/1.1\",\"status\":%u,\"bytes\":%u,"
		    "\"ua\":\"%s\",\"rt\":0.%03u,\"ust\":\"%u\"}",
		    (i / 60) % 60, i % 60, i % 250, i, i % 7, i % 17 ? 200 : 404, 600 + i * 3,
		    agents[i % 2], i % 1000, i % 17 ? 200 : 502);
	bench_compile("log_format j escape=json '{\"time\":\"$time_iso8601\",\"addr\":\"$remote_addr\",'\n"
	    "    '\"request\":\"$request\",\"status\":$status,\"bytes\":$bytes_sent,'\n"
	    "    '\"ua\":\"$http_user_agent\",\"rt\":$request_time,\"ust\":\"$upstream_status\"}';");
	bench_run("nginx_format json", bench_nginx_format, n);
	nginx_format_free(bench_format);

	for (unsigned i = 0; i < VARIANTS; i++)
		lens[i] = (size_t)snprintf(lines[i], sizeof(lines[i]),
		    "2026/11/22 10:%02u:%02u [error] %u#%u: *%u connect() failed (111: Connection refused) "
		    "while connecting to upstream, client: 203.0.113.%u, server: example.net, "
		    "request: \"GET /item/%u HTTP/1.1\", upstream: \"http://10.0.0.%u:8080/item/%u\", "
		    "host: \"example.net\"", (i / 60) % 60, i % 60, 1000 + i % 4, 1000 + i % 4, i,
		    i % 250, i, i % 4, i);
	bench_run("nginx_error", bench_nginx_error, n);

	/* Half RFC 5424, half RFC 3164 as util-linux logger sends them. */
	for (unsigned i = 0; i < VARIANTS; i++) {
		unsigned pri = (i % 24) * 8 + i % 8;

		if (i % 2)
			lens[i] = (size_t)snprintf(lines[i], sizeof(lines[i]),
			    "<%u>1 2026-11-22T10:00:%02u.%06uZ web-%02u %s %u - - session opened for user %u",
			    pri, i % 60, i * 37 % 1000000, i % 40, apps[i % 4], 1000 + i, i);
		else
			lens[i] = (size_t)snprintf(lines[i], sizeof(lines[i]),
			    "<%u>Nov 22 10:00:%02u web-%02u %s[%u]: session opened for user %u",
			    pri, i % 60, i % 40, apps[i % 4], 1000 + i, i);
	}
	bench_run("syslog", bench_syslog, n);
	return 0;
}
