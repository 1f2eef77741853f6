/* SPDX-License-Identifier: Apache-2.0 */
/* source_types: the table of source types (see source_type.h). */
#include "autoconfig.h"

#include "agent/file_source.h"
#include "agent/http_source.h"
#include "agent/journal_source.h"
#include "agent/source_type.h"
#include "agent/syslog_source.h"

const struct source_type *const source_types[] = {
	[SOURCE_FILE] = &file_source_type,
	[SOURCE_SYSLOG] = &syslog_source_type,
	[SOURCE_HTTP] = &http_source_type,
	[SOURCE_JOURNAL] = &journal_source_type,
};

const size_t source_types_n = sizeof(source_types) / sizeof(source_types[0]);

const struct source_type *
source_type_of(const struct agent_source *cfg)
{
	return source_types[cfg->type];
}
