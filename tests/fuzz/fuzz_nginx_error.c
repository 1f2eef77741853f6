/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes nginx_error_parse, in UTC and in a zone with DST: any bytes give
 * fields or -EINVAL with a message (checks in parsed_check.h).
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nginx_error_parse.h"
#include "common/parser.h"
#include "common/tz.h"
#include "tests/fuzz/parsed_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tz *zone;
	struct parsed p;
	uint8_t *copy;

	if (zone == NULL && tz_load("CET-1CEST,M3.5.0,M10.5.0/3", &zone) != 0)
		abort();
	/* An exact copy: the sanitizers see a read past the line. */
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(copy, data, size);
	parser_init(&p, 0);
	fuzz_check_parsed(copy, size, &p, nginx_error_parse(copy, size, NULL, &p));
	fuzz_check_parsed(copy, size, &p, nginx_error_parse(copy, size, zone, &p));
	parser_free(&p);
	free(copy);
	return 0;
}
