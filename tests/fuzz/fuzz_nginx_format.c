/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes nginx_format: the input up to its first newline is a log_format
 * to compile (which either compiles or gives a message), the rest a line
 * for it and for a fixed `main`-style and escape=json format. Checks as
 * parsed_check.h says; every parse is bounded by the line.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nginx_format.h"
#include "common/parser.h"
#include "tests/fuzz/parsed_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fixed[] = {
	"log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '"
	" '$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" "
	"\"$http_x_forwarded_for\" $request_time $upstream_response_time $upstream_addr "
	"$upstream_status $msec';",
	"log_format j escape=json '{\"t\":\"$time_iso8601\",\"r\":\"$request\",\"s\":$status,"
	"\"u\":\"$upstream_connect_time\",\"a\":\"$upstream_addr\"}';",
};

static void
fuzz_parse(const struct nginx_format *f, const uint8_t *line, size_t len, size_t max_scratch)
{
	struct parsed p;
	/* An exact copy: the sanitizers see a read past the line. */
	uint8_t *copy = malloc(len > 0 ? len : 1);

	if (copy == NULL)
		abort();
	if (len > 0)
		memcpy(copy, line, len);
	parser_init(&p, max_scratch);
	fuzz_check_parsed(copy, len, &p, nginx_format_parse(f, copy, len, &p));
	parser_free(&p);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t flen = nl != NULL ? (size_t)(nl - data) : size;
	const uint8_t *line = nl != NULL ? nl + 1 : data + size;
	size_t llen = size - (size_t)(line - data);
	struct nginx_format *f = NULL;
	char err[256], *text;
	int rc;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if ((rc = nginx_format_compile(fixed[i], &f, err, sizeof(err))) != 0)
			abort();
		fuzz_parse(f, data, size, 1 << 16);
		/* No scratch at all: values are kept as written. */
		fuzz_parse(f, data, size, 0);
		nginx_format_free(f);
	}
	if ((text = malloc(flen + 1)) == NULL)
		abort();
	memcpy(text, data, flen);
	text[flen] = '\0';
	err[0] = '\0';
	rc = nginx_format_compile(text, &f, err, sizeof(err));
	free(text);
	if (rc != 0) {
		if (rc != -EINVAL || f != NULL || err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	fuzz_parse(f, line, llen, 1 << 16);
	nginx_format_free(f);
	return 0;
}
