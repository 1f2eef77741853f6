/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the configuration loader with both daemons' schemas: any bytes
 * must give a configuration or errors, never a crash or a leak.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent/agent_config.h"
#include "common/config.h"
#include "relay/relay_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_config_one(const struct config_schema *schema, const uint8_t *data, size_t size)
{
	void *obj = calloc(1, schema->size);
	FILE *sink = fopen("/dev/null", "w");

	if (obj == NULL || sink == NULL)
		abort();
	if (config_load_string(schema, "fuzz.yaml", (const char *)data, size, obj, sink) == 0)
		config_dump(schema, obj, sink);
	config_free(schema, obj);
	free(obj);
	fclose(sink);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/*
	 * The rules only: the host checks would open whatever files the input
	 * names (/dev/stdin blocks) and make the run depend on this machine.
	 */
	fuzz_config_one(&agent_config_rules_schema, data, size);
	fuzz_config_one(&relay_config_rules_schema, data, size);
	return 0;
}
