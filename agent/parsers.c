/* SPDX-License-Identifier: Apache-2.0 */
/* parsers: the table of line formats (see parsers.h). */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>

#include "common/json_parse.h"
#include "agent/nginx_error_parse.h"
#include "agent/nginx_format.h"
#include "agent/nginx_parse.h"
#include "agent/parsers.h"
#include "agent/syslog_parse.h"
#include "common/log.h"
#include "common/tz.h"

/* X(name, entry): one line per format, in the order of the configuration's indexes. */
#define PARSERS(X) \
	X(raw, parser_raw) \
	X(nginx_combined, parser_nginx_combined) \
	X(json, parser_json) \
	X(syslog, parser_syslog) \
	X(nginx, parser_nginx) \
	X(nginx_error, parser_nginx_error)

/* For formats that need nothing compiled. */
static int
parsers_compile_nothing(const struct parser_config *cfg, void **state, char *err, size_t errlen)
{
	(void)cfg;
	(void)err;
	(void)errlen;
	*state = NULL;
	return 0;
}

static void
parsers_free_nothing(void *state)
{
	(void)state;
}

static int
parsers_raw(void *state, const uint8_t *line, size_t len, uint64_t now_ns, struct parsed *out)
{
	(void)state;
	(void)line;
	(void)len;
	(void)now_ns;
	parser_reset(out);
	return 0;
}

static const struct parser_type parser_raw = {
	"raw", parsers_compile_nothing, parsers_raw, parsers_free_nothing, NULL,
};

static int
parsers_nginx_combined(void *state, const uint8_t *line, size_t len, uint64_t now_ns,
    struct parsed *out)
{
	(void)state;
	(void)now_ns;
	return nginx_parse(line, len, out);
}

static const struct parser_type parser_nginx_combined = {
	"nginx_combined", parsers_compile_nothing, parsers_nginx_combined, parsers_free_nothing, NULL,
};

static int
parsers_json(void *state, const uint8_t *line, size_t len, uint64_t now_ns, struct parsed *out)
{
	(void)state;
	(void)now_ns;
	return json_parse(line, len, out);
}

static const struct parser_type parser_json = {
	"json", parsers_compile_nothing, parsers_json, parsers_free_nothing, NULL,
};

/*
 * The zone of times that carry none (RFC 3164's, NGINX's error log):
 * cfg's timezone, else the agent's local zone. One that cannot be loaded
 * (checked with the configuration, so gone since) is logged and UTC used:
 * not worth losing the source over.
 */
static int
parsers_zone_compile(const struct parser_config *cfg, void **state, char *err, size_t errlen)
{
	struct tz *zone = NULL;
	int r;

	(void)err;
	(void)errlen;
	if ((r = tz_load(cfg->timezone, &zone)) != 0)
		log_warn("source %s: cannot load the time zone %s (%s): times without "
		    "a zone are read as UTC; install tzdata or set timezone", cfg->source,
		    cfg->timezone != NULL ? cfg->timezone : "of the system", strerror(-r));
	else
		log_info("source %s: times without a zone are read in %s", cfg->source,
		    tz_name(zone));
	*state = zone;
	return 0;
}

static void
parsers_zone_free(void *state)
{
	tz_free(state);
}

static int
parsers_syslog(void *state, const uint8_t *line, size_t len, uint64_t now_ns, struct parsed *out)
{
	return syslog_parse(line, len, now_ns, state, out);
}

const struct parser_type parser_syslog = {
	"syslog", parsers_zone_compile, parsers_syslog, parsers_zone_free, NULL,
};

/* NGINX access logs in the log_format pasted from nginx.conf, compiled once. */
static int
parsers_nginx_compile(const struct parser_config *cfg, void **state, char *err, size_t errlen)
{
	struct nginx_format *f = NULL;
	int r;

	*state = NULL;
	if (cfg->log_format == NULL) {
		snprintf(err, errlen, "format nginx needs log_format: the log_format string "
		    "of nginx.conf");
		return -EINVAL;
	}
	if ((r = nginx_format_compile(cfg->log_format, &f, err, errlen)) != 0)
		return r;
	*state = f;
	return 0;
}

static int
parsers_nginx(void *state, const uint8_t *line, size_t len, uint64_t now_ns, struct parsed *out)
{
	(void)now_ns;
	return nginx_format_parse(state, line, len, out);
}

static void
parsers_nginx_free(void *state)
{
	nginx_format_free(state);
}

static int
parsers_nginx_check(const struct parser_config *cfg, char *err, size_t errlen)
{
	void *f = NULL;
	int r = parsers_nginx_compile(cfg, &f, err, errlen);

	parsers_nginx_free(f);
	return r;
}

static const struct parser_type parser_nginx = {
	"nginx", parsers_nginx_compile, parsers_nginx, parsers_nginx_free, parsers_nginx_check,
};

/* NGINX's error log; its times are in NGINX's local zone. */
static int
parsers_nginx_error(void *state, const uint8_t *line, size_t len, uint64_t now_ns,
    struct parsed *out)
{
	(void)now_ns;
	return nginx_error_parse(line, len, state, out);
}

static const struct parser_type parser_nginx_error = {
	"nginx_error", parsers_zone_compile, parsers_nginx_error, parsers_zone_free, NULL,
};

#define PARSERS_ENTRY(name, entry) &entry,
#define PARSERS_NAME(name, entry) #name,

const struct parser_type *const parser_types[] = { PARSERS(PARSERS_ENTRY) };
const size_t parser_types_n = sizeof(parser_types) / sizeof(parser_types[0]);
const char *const parser_names[] = { PARSERS(PARSERS_NAME) NULL };

const struct parser_type *
parser_type_of(int format)
{
	return parser_types[format];
}

const struct parser_type *
parser_type_named(const char *name)
{
	for (size_t i = 0; i < parser_types_n; i++)
		if (strcmp(parser_types[i]->name, name) == 0)
			return parser_types[i];
	return NULL;
}
