/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nginx_parse_file: runs the agent's NGINX parsers over a log file that a
 * real NGINX wrote (tests/integration/test_nginx_formats.sh).
 *
 *   nginx_parse_file access 'LOG_FORMAT' FILE   nginx_format, compiled from LOG_FORMAT
 *   nginx_parse_file combined FILE              nginx_parse (nginx_combined)
 *   nginx_parse_file error FILE [ZONE]          nginx_error_parse, times in ZONE (tz_load)
 *
 * Prints "line N ts=NS" for each line, then "\tKEY\tTYPE\tVALUE" for each
 * field (TYPE: slice, text, integer, number, json; bytes outside
 * 0x20..0x7e as \xHH), or "line N error: WHY". Exits 1 if a line did not
 * parse or the format did not compile, 2 for a usage or file error.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nginx_error_parse.h"
#include "agent/nginx_format.h"
#include "agent/nginx_parse.h"
#include "common/parser.h"
#include "common/tz.h"

static void
print_bytes(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			putchar(p[i]);
		else
			printf("\\x%02X", p[i]);
	}
}

static void
print_fields(const uint8_t *line, const struct parsed *p)
{
	static const char *const types[] = {
		[EVENT_NULL] = "null", [EVENT_TEXT] = "text", [EVENT_INTEGER] = "integer",
		[EVENT_NUMBER] = "number", [EVENT_BOOLEAN] = "boolean", [EVENT_SLICE] = "slice",
		[EVENT_JSON] = "json",
	};

	for (size_t i = 0; i < p->nfields; i++) {
		const struct event_field *f = &p->fields[i];

		printf("\t%.*s\t%s\t", (int)f->key.len, (const char *)f->key.ptr, types[f->type]);
		switch (f->type) {
		case EVENT_SLICE:
			print_bytes(line + f->v.slice.offset, f->v.slice.length);
			break;
		case EVENT_TEXT:
		case EVENT_JSON:
			print_bytes(f->v.text.ptr, f->v.text.len);
			break;
		case EVENT_INTEGER:
			printf("%lld", (long long)f->v.integer);
			break;
		case EVENT_NUMBER:
			printf("%.3f", f->v.number);
			break;
		default:
			break;
		}
		putchar('\n');
	}
}

int
main(int argc, char **argv)
{
	struct nginx_format *fmt = NULL;
	struct tz *zone = NULL;
	const char *mode = argc > 1 ? argv[1] : "", *path;
	char err[512], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	struct parsed p;
	int status = 0, rc;
	FILE *in;

	if (strcmp(mode, "access") == 0 && argc == 4) {
		if (nginx_format_compile(argv[2], &fmt, err, sizeof(err)) != 0) {
			fprintf(stderr, "nginx_parse_file: %s\n", err);
			return 1;
		}
		path = argv[3];
	} else if (strcmp(mode, "combined") == 0 && argc == 3) {
		path = argv[2];
	} else if (strcmp(mode, "error") == 0 && (argc == 3 || argc == 4)) {
		if (argc == 4 && (rc = tz_load(argv[3], &zone)) != 0) {
			fprintf(stderr, "nginx_parse_file: zone %s: %s\n", argv[3], strerror(-rc));
			return 2;
		}
		path = argv[2];
	} else {
		fprintf(stderr, "usage: nginx_parse_file access 'LOG_FORMAT' FILE | combined FILE | "
		    "error FILE [ZONE]\n");
		return 2;
	}
	if ((in = fopen(path, "r")) == NULL) {
		fprintf(stderr, "nginx_parse_file: %s: %s\n", path, strerror(errno));
		nginx_format_free(fmt);
		tz_free(zone);
		return 2;
	}
	parser_init(&p, 1 << 20);
	while ((n = getline(&line, &cap, in)) >= 0) {
		const uint8_t *l = (const uint8_t *)line;

		lineno++;
		if (fmt != NULL)
			rc = nginx_format_parse(fmt, l, (size_t)n, &p);
		else if (mode[0] == 'c')
			rc = nginx_parse(l, (size_t)n, &p);
		else
			rc = nginx_error_parse(l, (size_t)n, zone, &p);
		if (rc != 0) {
			printf("line %lu error: %s\n", lineno, p.error);
			status = 1;
			continue;
		}
		printf("line %lu ts=%llu\n", lineno, (unsigned long long)p.ts);
		print_fields(l, &p);
	}
	free(line);
	fclose(in);
	parser_free(&p);
	nginx_format_free(fmt);
	tz_free(zone);
	return status;
}
