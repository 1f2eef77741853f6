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

#include "agent/nginx_parse.h"
#include "agent/syslog_parse.h"
#include "bench/bench_util.h"

#define VARIANTS 1024

static char lines[VARIANTS][512];
static size_t lens[VARIANTS];

typedef int (*bench_parse_fn)(const uint8_t *line, size_t len, struct parsed *out);

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
	printf("%-15s %lu lines of %.1f bytes, %lu parsed, %.1f fields/line: %.3f us CPU/line\n",
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
