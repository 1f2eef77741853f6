/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "common/config.h"

#define CONFIG_PATH_MAX 512
#define CONFIG_MAX_KEYS 64       /* keys per section; checked, a schema bug otherwise */
#define CONFIG_MAX_ERRORS 50     /* after this many, stop printing */

/* Where a value was written: the main file or one of its .d includes. */
struct config_at {
	const char *file;
	int line;
};

struct config_line {
	char *path;
	struct config_at at;
};

struct config_check {
	const char *file;
	FILE *err;
	int errors;
	struct config_line *lines;
	size_t nlines, caplines;
	struct config_secrets secrets;   /* moved to the config struct at the end */
};

/* A key path being built while descending: "sources[1].paths". */
struct config_path {
	char s[CONFIG_PATH_MAX];
	size_t len;
};

static void *
config_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL) {
		fputs("logferry: out of memory while reading the configuration\n", stderr);
		abort();
	}
	return p;
}

static char *
config_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = config_xcalloc(1, n);

	memcpy(p, s, n);
	return p;
}

static size_t
config_path_push(struct config_path *p, const char *name, long index)
{
	size_t old = p->len;
	int n;

	if (name != NULL)
		n = snprintf(p->s + p->len, sizeof(p->s) - p->len, "%s%s",
		    p->len ? "." : "", name);
	else
		n = snprintf(p->s + p->len, sizeof(p->s) - p->len, "[%ld]", index);
	if (n < 0 || (size_t)n >= sizeof(p->s) - p->len)
		p->len = sizeof(p->s) - 1;
	else
		p->len += (size_t)n;
	return old;
}

static void
config_path_pop(struct config_path *p, size_t old)
{
	p->len = old;
	p->s[old] = '\0';
}

static void
config_record_line(struct config_check *c, const char *path, struct config_at at)
{
	if (c->nlines == c->caplines) {
		size_t cap = c->caplines ? c->caplines * 2 : 64;
		struct config_line *l = realloc(c->lines, cap * sizeof(*l));

		if (l == NULL) {
			fputs("logferry: out of memory while reading the configuration\n",
			    stderr);
			abort();
		}
		c->lines = l;
		c->caplines = cap;
	}
	c->lines[c->nlines].path = config_xstrdup(path);
	c->lines[c->nlines].at = at;
	c->nlines++;
}

static struct config_at
config_find_line(const struct config_check *c, const char *path, size_t len)
{
	for (size_t i = 0; i < c->nlines; i++)
		if (strlen(c->lines[i].path) == len &&
		    memcmp(c->lines[i].path, path, len) == 0)
			return c->lines[i].at;
	return (struct config_at){ c->file, 0 };
}

/* Where path was written, or its nearest enclosing key present in the file. */
static struct config_at
config_line_of(const struct config_check *c, const char *path)
{
	size_t len = strlen(path);
	struct config_at at;

	for (;;) {
		if (len == 0)
			return (struct config_at){ c->file, 1 };
		if ((at = config_find_line(c, path, len)).line > 0)
			return at;
		while (len > 0 && path[len - 1] != '.' && path[len - 1] != '[')
			len--;
		if (len > 0)
			len--;
	}
}

static void config_errorv(struct config_check *c, struct config_at at, const char *path,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
config_errorv(struct config_check *c, struct config_at at, const char *path,
    const char *fmt, va_list ap)
{
	c->errors++;
	if (c->errors > CONFIG_MAX_ERRORS)
		return;
	if (c->errors == CONFIG_MAX_ERRORS) {
		fprintf(c->err, "%s: too many errors, giving up\n", c->file);
		return;
	}
	fprintf(c->err, "%s:%d: %s: ", at.file, at.line, path[0] ? path : "(top level)");
	vfprintf(c->err, fmt, ap);
	fputc('\n', c->err);
}

static void config_error_at(struct config_check *c, struct config_at at, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
config_error_at(struct config_check *c, struct config_at at, const char *path,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_errorv(c, at, path, fmt, ap);
	va_end(ap);
}

void
config_error(struct config_check *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_errorv(c, config_line_of(c, path), path, fmt, ap);
	va_end(ap);
}

const char *
config_check_file(const struct config_check *c)
{
	return c->file;
}

bool
config_from_file(const struct config_check *c, const char *path)
{
	for (size_t i = 0; i < c->secrets.n; i++)
		if (strcmp(c->secrets.items[i].path, path) == 0)
			return true;
	return false;
}

bool
config_present(const struct config_check *c, const char *path)
{
	return config_find_line(c, path, strlen(path)).line > 0;
}

/* ------------------------------------------------------------ value parsers */

struct config_unit {
	const char *name;
	uint64_t mult;
};

static const struct config_unit config_size_units[] = {
	{ "TiB", UINT64_C(1) << 40 }, { "GiB", UINT64_C(1) << 30 },
	{ "MiB", UINT64_C(1) << 20 }, { "KiB", UINT64_C(1) << 10 },
	{ "B", 1 }, { "", 1 }, { NULL, 0 },
};

static const struct config_unit config_duration_units[] = {
	{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
	{ NULL, 0 },
};

static int
config_parse_units(const char *s, const struct config_unit *units,
    bool bare_zero_only, uint64_t *out)
{
	uint64_t n = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -ERANGE;
		n = n * 10 + d;
		p++;
	}
	if (*p == '\0' && bare_zero_only) {
		/* "0" needs no unit; any other bare number is ambiguous. */
		if (n != 0)
			return -EINVAL;
		*out = 0;
		return 0;
	}
	for (const struct config_unit *u = units; u->name != NULL; u++) {
		if (strcmp(p, u->name) == 0) {
			if (n > UINT64_MAX / u->mult)
				return -ERANGE;
			*out = n * u->mult;
			return 0;
		}
	}
	return -EINVAL;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	return config_parse_units(s, config_size_units, false, bytes);
}

int
config_parse_duration(const char *s, uint64_t *ms)
{
	return config_parse_units(s, config_duration_units, true, ms);
}

static void
config_format_units(uint64_t v, const struct config_unit *units, char *out,
    size_t outlen)
{
	for (const struct config_unit *u = units; u->name != NULL; u++) {
		if (v % u->mult == 0 && (v != 0 || u->mult == 1)) {
			snprintf(out, outlen, "%" PRIu64 "%s", v / u->mult, u->name);
			return;
		}
	}
	snprintf(out, outlen, "%" PRIu64, v);
}

void
config_format_size(uint64_t bytes, char *out, size_t outlen)
{
	if (bytes == 0) {
		snprintf(out, outlen, "0B");
		return;
	}
	config_format_units(bytes, config_size_units, out, outlen);
}

void
config_format_duration(uint64_t ms, char *out, size_t outlen)
{
	if (ms == 0) {
		snprintf(out, outlen, "0");
		return;
	}
	config_format_units(ms, config_duration_units, out, outlen);
}

static const char *const config_scheme_prefix[] = {
	[CONFIG_SCHEME_NONE] = "",
	[CONFIG_SCHEME_UDP] = "udp://",
	[CONFIG_SCHEME_TCP] = "tcp://",
	[CONFIG_SCHEME_UNIX] = "unix://",
	[CONFIG_SCHEME_TLS] = "tls://",
};

/*
 * "host:port", "[v6]:port"; sets *host (allocated) and *port. Messages quote
 * text, the address as written (with its scheme).
 */
static int
config_parse_hostport(const char *s, const char *text, bool port_zero, char **host,
    uint16_t *port, char *why, size_t whylen)
{
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	unsigned long p;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':') {
			snprintf(why, whylen, "'%s' is not host:port: an IPv6 address is written [addr]:port", text);
			return -EINVAL;
		}
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(why, whylen, "'%s' is not host:port: the port is missing", text);
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL) {
			snprintf(why, whylen, "'%s' is not host:port: write an IPv6 address as [addr]:port", text);
			return -EINVAL;
		}
	}
	if (hlen == 0) {
		snprintf(why, whylen, "'%s' is not host:port: the host is missing", text);
		return -EINVAL;
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || !isdigit((unsigned char)colon[1]) ||
	    errno != 0 || p > 65535 || (p == 0 && !port_zero)) {
		snprintf(why, whylen, "'%s' has an invalid port: use %d to 65535", text,
		    port_zero ? 0 : 1);
		return -EINVAL;
	}
	*host = config_xcalloc(1, hlen + 1);
	memcpy(*host, h, hlen);
	*port = (uint16_t)p;
	return 0;
}

static void
config_scheme_list(unsigned schemes, char *out, size_t outlen)
{
	size_t len = 0;

	out[0] = '\0';
	for (int s = CONFIG_SCHEME_NONE; s <= CONFIG_SCHEME_TLS; s++) {
		if (!(schemes & CONFIG_SCHEMES(s)))
			continue;
		len += (size_t)snprintf(out + len, outlen > len ? outlen - len : 0,
		    "%s%s", len ? ", " : "",
		    s == CONFIG_SCHEME_NONE ? "host:port" :
		    s == CONFIG_SCHEME_UNIX ? "unix:///path" :
		    s == CONFIG_SCHEME_UDP ? "udp://host:port" :
		    s == CONFIG_SCHEME_TLS ? "tls://host:port" : "tcp://host:port");
	}
}

static int
config_parse_addr(const struct config_key *k, const char *s,
    struct config_addr *a, char *why, size_t whylen)
{
	enum config_scheme scheme = CONFIG_SCHEME_NONE;
	const char *rest = s;
	char allowed[128];

	for (int i = CONFIG_SCHEME_UDP; i <= CONFIG_SCHEME_TLS; i++) {
		size_t n = strlen(config_scheme_prefix[i]);

		if (strncmp(s, config_scheme_prefix[i], n) == 0) {
			scheme = (enum config_scheme)i;
			rest = s + n;
			break;
		}
	}
	config_scheme_list(k->schemes, allowed, sizeof(allowed));
	if (!(k->schemes & CONFIG_SCHEMES(scheme)) ||
	    (scheme == CONFIG_SCHEME_NONE && strstr(s, "://") != NULL)) {
		snprintf(why, whylen, "'%s' is not a valid address: expected %s", s,
		    allowed);
		return -EINVAL;
	}
	memset(a, 0, sizeof(*a));
	a->scheme = scheme;
	if (scheme == CONFIG_SCHEME_UNIX) {
		/* sockaddr_un.sun_path holds 108 bytes including the NUL. */
		if (rest[0] != '/' || strlen(rest) > 107) {
			snprintf(why, whylen, "'%s' is not a valid socket: expected unix:///absolute/path of at most 107 bytes", s);
			return -EINVAL;
		}
		a->path = config_xstrdup(rest);
	} else if (config_parse_hostport(rest, s, k->flags & CONFIG_PORT_ZERO,
	    &a->host, &a->port, why, whylen) != 0) {
		return -EINVAL;
	}
	a->text = config_xstrdup(s);
	return 0;
}

static void
config_describe_bound(const struct config_key *k, int64_t v, char *out, size_t n)
{
	if (k->type == CONFIG_SIZE)
		config_format_size((uint64_t)v, out, n);
	else if (k->type == CONFIG_DURATION)
		config_format_duration((uint64_t)v, out, n);
	else
		snprintf(out, n, "%" PRId64, v);
}

static int
config_check_bounds(const struct config_key *k, const char *s, int64_t v,
    char *why, size_t whylen)
{
	char b[32];

	if (k->min == 0 && k->max == 0)
		return 0;
	if (v < k->min) {
		config_describe_bound(k, k->min, b, sizeof(b));
		snprintf(why, whylen, "%s is below the minimum of %s", s, b);
		return -ERANGE;
	}
	if (v > k->max) {
		config_describe_bound(k, k->max, b, sizeof(b));
		snprintf(why, whylen, "%s is above the maximum of %s", s, b);
		return -ERANGE;
	}
	return 0;
}

static void
config_enum_list(const char *const *names, char *out, size_t outlen)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; names[i] != NULL; i++)
		len += (size_t)snprintf(out + len, outlen > len ? outlen - len : 0,
		    "%s%s", i ? ", " : "", names[i]);
}

/* Parses one scalar into dst (the key's C type); fills why on failure. */
static int
config_parse_scalar(const struct config_key *k, const char *s, void *dst,
    char *why, size_t whylen)
{
	uint64_t u;
	int r;

	switch (k->type) {
	case CONFIG_STRING:
		if ((k->flags & CONFIG_NONEMPTY) && s[0] == '\0') {
			snprintf(why, whylen, "must not be empty");
			return -EINVAL;
		}
		*(char **)dst = config_xstrdup(s);
		return 0;
	case CONFIG_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) {
			*(bool *)dst = true;
			return 0;
		}
		if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) {
			*(bool *)dst = false;
			return 0;
		}
		snprintf(why, whylen, "'%s' is not a boolean: use true or false", s);
		return -EINVAL;
	case CONFIG_INT: {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(s, &end, 10);
		if (s[0] == '\0' || *end != '\0' || errno != 0 || isspace((unsigned char)s[0])) {
			snprintf(why, whylen, "'%s' is not an integer", s);
			return -EINVAL;
		}
		if ((r = config_check_bounds(k, s, v, why, whylen)) != 0)
			return r;
		*(int64_t *)dst = v;
		return 0;
	}
	case CONFIG_SIZE:
		if ((r = config_parse_size(s, &u)) != 0 || u > INT64_MAX) {
			snprintf(why, whylen, "'%s' is not a size: use a whole number with B, KiB, MiB or GiB (e.g. 64MiB)", s);
			return -EINVAL;
		}
		if ((r = config_check_bounds(k, s, (int64_t)u, why, whylen)) != 0)
			return r;
		*(uint64_t *)dst = u;
		return 0;
	case CONFIG_DURATION:
		if ((r = config_parse_duration(s, &u)) != 0 || u > INT64_MAX) {
			snprintf(why, whylen, "'%s' is not a duration: use a whole number with ms, s, m or h (e.g. 30s)", s);
			return -EINVAL;
		}
		if ((r = config_check_bounds(k, s, (int64_t)u, why, whylen)) != 0)
			return r;
		*(uint64_t *)dst = u;
		return 0;
	case CONFIG_ENUM:
		for (int i = 0; k->names[i] != NULL; i++) {
			if (strcmp(s, k->names[i]) == 0) {
				*(int *)dst = i;
				return 0;
			}
		}
		{
			char list[256];

			config_enum_list(k->names, list, sizeof(list));
			snprintf(why, whylen, "'%s' is not one of: %s", s, list);
		}
		return -EINVAL;
	case CONFIG_ADDR:
		return config_parse_addr(k, s, dst, why, whylen);
	case CONFIG_LIST:
	case CONFIG_MAP:
	case CONFIG_SECTION:
		break;
	}
	snprintf(why, whylen, "expected a %s, not a single value",
	    k->type == CONFIG_LIST ? "list" : "mapping");
	return -EINVAL;
}

static size_t
config_ctype_size(const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_STRING: return sizeof(char *);
	case CONFIG_BOOL: return sizeof(bool);
	case CONFIG_INT: return sizeof(int64_t);
	case CONFIG_SIZE:
	case CONFIG_DURATION: return sizeof(uint64_t);
	case CONFIG_ENUM: return sizeof(int);
	case CONFIG_ADDR: return sizeof(struct config_addr);
	case CONFIG_LIST: return sizeof(struct config_list);
	case CONFIG_MAP: return sizeof(struct config_map);
	case CONFIG_SECTION: return k->size;
	}
	abort();
}

static bool
config_is_scalar_type(enum config_type t)
{
	return t != CONFIG_LIST && t != CONFIG_MAP && t != CONFIG_SECTION;
}

/* ------------------------------------------------- environment variables */

/* Bound of a value after substitution: a runaway variable stops here. */
#define CONFIG_VALUE_MAX (1u << 20)
#define CONFIG_ENV_NAME_MAX 128

struct config_buf {
	char *s;
	size_t len, cap;
};

static int
config_buf_add(struct config_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > CONFIG_VALUE_MAX)
		return -E2BIG;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->s, cap)) == NULL) {
			fputs("logferry: out of memory while reading the configuration\n", stderr);
			abort();
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

/*
 * Substitutes ${NAME} and ${NAME:-default} from the environment, NAME being
 * [A-Z_][A-Z0-9_]*, and turns $${ into a literal ${. Lower-case names are
 * left alone: they are the relay's templates (${stream}, ${fields.app}).
 * Like the shell's :-, the default also replaces a variable set to "".
 * Returns 0 and an allocated *out, or -EINVAL / -E2BIG with why filled.
 */
static int
config_expand_env(const char *s, char **out, char *why, size_t whylen)
{
	struct config_buf b = { 0 };
	const char *p = s;
	int r = 0;

	*out = NULL;
	while (r == 0 && *p != '\0') {
		const char *dollar = strchr(p, '$'), *name, *end, *val;
		size_t nlen;

		if (dollar == NULL) {
			r = config_buf_add(&b, p, strlen(p));
			break;
		}
		if ((r = config_buf_add(&b, p, (size_t)(dollar - p))) != 0)
			break;
		if (dollar[1] == '$' && dollar[2] == '{') {
			r = config_buf_add(&b, "${", 2);
			p = dollar + 3;
			continue;
		}
		name = dollar + 2;
		if (dollar[1] != '{' || !(isupper((unsigned char)*name) || *name == '_')) {
			r = config_buf_add(&b, dollar, 1);
			p = dollar + 1;
			continue;
		}
		nlen = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		end = name + nlen;
		if (*end != '}' && !(end[0] == ':' && end[1] == '-' && strchr(end, '}') != NULL)) {
			const char *close = strchr(name, '}');

			snprintf(why, whylen, "'%.*s' is not a variable reference: write ${NAME} or "
			    "${NAME:-default}, or $${ for a literal ${",
			    close ? (int)(close - dollar + 1) : (int)strlen(dollar), dollar);
			r = -EINVAL;
			break;
		}
		if (nlen >= CONFIG_ENV_NAME_MAX) {
			snprintf(why, whylen, "'${%.32s...' names an environment variable longer "
			    "than %d bytes", name, CONFIG_ENV_NAME_MAX - 1);
			r = -EINVAL;
			break;
		}
		{
			char var[CONFIG_ENV_NAME_MAX];

			memcpy(var, name, nlen);
			var[nlen] = '\0';
			val = getenv(var);
			if (*end == '}') {
				if (val == NULL) {
					snprintf(why, whylen, "environment variable %.*s is not set: set "
					    "it, or give a default with ${%.*s:-value}", (int)nlen, name,
					    (int)nlen, name);
					r = -EINVAL;
					break;
				}
				p = end + 1;
			} else {
				const char *dflt = end + 2, *close = strchr(dflt, '}');

				if (val == NULL || val[0] == '\0') {
					if ((r = config_buf_add(&b, dflt, (size_t)(close - dflt))) != 0)
						break;
					val = NULL;
				}
				p = close + 1;
			}
			if (val != NULL)
				r = config_buf_add(&b, val, strlen(val));
		}
	}
	if (r == -E2BIG)
		snprintf(why, whylen, "is longer than %u bytes after substituting environment "
		    "variables", CONFIG_VALUE_MAX);
	if (r != 0) {
		free(b.s);
		return r;
	}
	*out = b.s != NULL ? b.s : config_xstrdup("");
	return 0;
}

/* ----------------------------------------------------------------- walking */

/* Nodes from first_id on were copied from file (an include), up to the next origin. */
struct config_origin {
	int first_id;
	const char *file;
};

struct config_walk {
	struct config_check *c;
	yaml_document_t *doc;
	struct config_path path;
	const struct config_origin *origins;   /* ascending first_id */
	size_t norigins;
	bool secrets_allowed;                  /* the schema keeps config_secrets */
};

static int
config_node_line(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static struct config_at
config_node_at(const struct config_walk *w, const yaml_node_t *n)
{
	struct config_at at = { w->c->file, config_node_line(n) };
	uintptr_t p = (uintptr_t)n, start;
	int id;

	if (w->doc == NULL)
		return at;
	start = (uintptr_t)w->doc->nodes.start;
	if (p < start || p >= (uintptr_t)w->doc->nodes.top)
		return at;
	id = (int)((p - start) / sizeof(*n)) + 1;
	for (size_t i = 0; i < w->norigins && w->origins[i].first_id <= id; i++)
		at.file = w->origins[i].file;
	return at;
}

/* A plain ~, null or empty scalar means "not set": the default applies. */
static bool
config_node_is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return v[0] == '\0' || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	    !strcmp(v, "NULL");
}

static const char *
config_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a single value";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

/* Largest secret read from a file: a password or passphrase, not a document. */
#define CONFIG_SECRET_MAX (64 * 1024)

/* The path of a {file: PATH} mapping (the node itself when it is one), or NULL. */
static yaml_node_t *
config_file_form(const struct config_walk *w, yaml_node_t *node)
{
	yaml_node_pair_t *p;
	yaml_node_t *k;

	if (node->type != YAML_MAPPING_NODE)
		return NULL;
	p = node->data.mapping.pairs.start;
	if (node->data.mapping.pairs.top - p != 1)
		return NULL;
	k = yaml_document_get_node(w->doc, p->key);
	if (k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, "file") != 0)
		return NULL;
	return yaml_document_get_node(w->doc, p->value);
}

/*
 * Reads a secret: the file's content with one trailing newline removed.
 * Returns it allocated, or NULL after reporting why at node.
 */
static char *
config_read_secret(struct config_walk *w, yaml_node_t *node, const char *file)
{
	struct config_at at = config_node_at(w, node);
	char *buf = NULL;
	struct stat st;
	size_t n;
	FILE *f;

	if (file[0] != '/') {
		config_error_at(w->c, at, w->path.s, "'%s' is not an absolute path: write "
		    "{file: /path/to/the/secret}", file);
		return NULL;
	}
	if ((f = fopen(file, "r")) == NULL || fstat(fileno(f), &st) != 0) {
		config_error_at(w->c, at, w->path.s, "cannot read %s: %s", file, strerror(errno));
		goto out;
	}
	buf = config_xcalloc(1, CONFIG_SECRET_MAX + 2);
	n = fread(buf, 1, CONFIG_SECRET_MAX + 1, f);
	if (ferror(f)) {
		config_error_at(w->c, at, w->path.s, "cannot read %s: %s", file, strerror(errno));
	} else if (n > CONFIG_SECRET_MAX) {
		config_error_at(w->c, at, w->path.s, "%s is larger than %d bytes: a secret file "
		    "holds the secret alone", file, CONFIG_SECRET_MAX);
	} else if (memchr(buf, '\0', n) != NULL) {
		config_error_at(w->c, at, w->path.s, "%s contains a NUL byte: a secret file holds "
		    "text", file);
	} else {
		if (n > 0 && buf[n - 1] == '\n')
			buf[n - 1] = '\0';
		/* A warning, not an error: the value still works, but anyone may read it. */
		if (S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
			fprintf(w->c->err, "%s:%d: %s: warning: %s is readable by every user: "
			    "chmod o-r %s\n", at.file, at.line, w->path.s, file, file);
		fclose(f);
		return buf;
	}
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return NULL;
}

static void
config_record_secret(struct config_check *c, const char *path, const char *file)
{
	struct config_secrets *s = &c->secrets;
	struct config_secret *items = realloc(s->items, (s->n + 1) * sizeof(*items));

	if (items == NULL) {
		fputs("logferry: out of memory while reading the configuration\n", stderr);
		abort();
	}
	s->items = items;
	items[s->n].path = config_xstrdup(path);
	items[s->n].file = config_xstrdup(file);
	s->n++;
}

/*
 * The text of a value: a scalar with environment variables substituted, or
 * the content of the file a {file: PATH} names. Allocated, or NULL after
 * reporting why at the node's line.
 */
static char *
config_node_text(struct config_walk *w, yaml_node_t *node, bool secret)
{
	yaml_node_t *fn = config_file_form(w, node);
	char why[512], *s, *value;

	if (fn != NULL && fn->type != YAML_SCALAR_NODE) {
		config_error_at(w->c, config_node_at(w, fn), w->path.s,
		    "expected {file: /path/to/the/secret}, not %s", config_node_kind(fn));
		return NULL;
	}
	if (fn == NULL && node->type != YAML_SCALAR_NODE) {
		config_error_at(w->c, config_node_at(w, node), w->path.s,
		    "expected a single value, not %s", config_node_kind(node));
		return NULL;
	}
	if (fn == NULL && secret) {
		const char *leaf = strrchr(w->path.s, '.');

		config_error_at(w->c, config_node_at(w, node), w->path.s, "is a password, and "
		    "passwords stay out of the configuration file: write %s: {file: /path} naming "
		    "a file only logferry can read", leaf ? leaf + 1 : w->path.s);
		return NULL;
	}
	if (config_expand_env((const char *)(fn ? fn : node)->data.scalar.value, &s, why,
	    sizeof(why)) != 0) {
		config_error_at(w->c, config_node_at(w, node), w->path.s, "%s", why);
		return NULL;
	}
	if (fn == NULL)
		return s;
	if (w->secrets_allowed) {
		if ((value = config_read_secret(w, node, s)) != NULL)
			config_record_secret(w->c, w->path.s, s);
	} else {
		config_error_at(w->c, config_node_at(w, node), w->path.s,
		    "{file: PATH} is not supported in this configuration");
		value = NULL;
	}
	free(s);
	return value;
}

static void config_section(struct config_walk *w, const struct config_key *keys,
    const char *discriminator, void *base, yaml_node_t *node);
static void config_defaults(struct config_walk *w, const struct config_key *keys,
    const char *discriminator, int disc, void *base);

static void
config_scalar_node(struct config_walk *w, const struct config_key *k, void *dst,
    yaml_node_t *node)
{
	char why[512], *text;

	if ((text = config_node_text(w, node, k->flags & CONFIG_SECRET)) == NULL)
		return;
	why[0] = '\0';
	if (config_parse_scalar(k, text, dst, why, sizeof(why)) != 0)
		config_error_at(w->c, config_node_at(w, node), w->path.s, "%s", why);
	free(text);
}

static void
config_value(struct config_walk *w, const struct config_key *k, void *dst,
    yaml_node_t *node);

/* Splits "a, b,c" into trimmed pieces; returns how many (allocated array). */
static size_t
config_split_commas(const char *s, char ***out)
{
	size_t n = 1, i = 0;
	char **v;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	v = config_xcalloc(n, sizeof(*v));
	for (const char *p = s;; p++) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		v[i] = config_xcalloc(1, len + 1);
		memcpy(v[i++], p, len);
		if (e == NULL)
			break;
		p = e;
	}
	*out = v;
	return n;
}

static void
config_list_from_scalar(struct config_walk *w, const struct config_key *k,
    struct config_list *l, const char *s, struct config_at at)
{
	const struct config_key *e = k->elem;
	size_t esize = config_ctype_size(e);
	char why[512];
	char **parts = NULL;
	size_t n = 1;

	if (k->flags & CONFIG_SPLIT_COMMAS)
		n = config_split_commas(s, &parts);
	l->items = config_xcalloc(n, esize);
	for (size_t i = 0; i < n; i++) {
		size_t old = config_path_push(&w->path, NULL, (long)i);

		why[0] = '\0';
		/* Counted even when invalid, as config_list does: not also "empty". */
		if (config_parse_scalar(e, parts ? parts[i] : s,
		    (char *)l->items + l->n * esize, why, sizeof(why)) != 0)
			config_error_at(w->c, at, w->path.s, "%s", why);
		l->n++;
		config_path_pop(&w->path, old);
		if (parts)
			free(parts[i]);
	}
	free(parts);
}

static void
config_list(struct config_walk *w, const struct config_key *k,
    struct config_list *l, yaml_node_t *node)
{
	const struct config_key *e = k->elem;
	size_t esize = config_ctype_size(e);
	yaml_node_item_t *it;
	size_t n;

	if (node->type == YAML_SCALAR_NODE && (k->flags & CONFIG_SCALAR_AS_LIST) &&
	    config_is_scalar_type(e->type)) {
		char *text = config_node_text(w, node, false);

		if (text == NULL)
			return;
		config_list_from_scalar(w, k, l, text, config_node_at(w, node));
		free(text);
	} else if (node->type != YAML_SEQUENCE_NODE) {
		config_error_at(w->c, config_node_at(w, node), w->path.s,
		    "expected a list, not %s", config_node_kind(node));
		return;
	} else {
		n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
		l->items = config_xcalloc(n, esize);
		it = node->data.sequence.items.start;
		for (size_t i = 0; i < n; i++, it++) {
			yaml_node_t *item = yaml_document_get_node(w->doc, *it);
			size_t old = config_path_push(&w->path, NULL, (long)i);

			config_record_line(w->c, w->path.s, config_node_at(w, item));
			config_value(w, e, (char *)l->items + l->n * esize, item);
			l->n++;
			config_path_pop(&w->path, old);
		}
	}
	if ((k->flags & CONFIG_NONEMPTY) && l->n == 0)
		config_error_at(w->c, config_node_at(w, node), w->path.s,
		    "must list at least one entry");
}

static void
config_map(struct config_walk *w, struct config_map *m, yaml_node_t *node)
{
	yaml_node_pair_t *p;
	size_t n;

	if (node->type != YAML_MAPPING_NODE) {
		config_error_at(w->c, config_node_at(w, node), w->path.s,
		    "expected a mapping, not %s", config_node_kind(node));
		return;
	}
	n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
	m->items = config_xcalloc(n, sizeof(*m->items));
	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
		const char *key;
		size_t old;

		if (kn->type != YAML_SCALAR_NODE) {
			config_error_at(w->c, config_node_at(w, kn), w->path.s,
			    "keys must be single values");
			continue;
		}
		key = (const char *)kn->data.scalar.value;
		old = config_path_push(&w->path, key, 0);
		{
			char *text = config_node_text(w, vn, false);
			bool dup = false;

			for (size_t i = 0; i < m->n; i++)
				dup |= strcmp(m->items[i].key, key) == 0;
			if (dup) {
				config_error_at(w->c, config_node_at(w, kn), w->path.s,
				    "duplicate key");
			} else if (text != NULL) {
				config_record_line(w->c, w->path.s, config_node_at(w, kn));
				m->items[m->n].key = config_xstrdup(key);
				m->items[m->n].value = text;
				m->items[m->n].line = config_node_line(kn);
				m->n++;
				text = NULL;
			}
			free(text);
		}
		config_path_pop(&w->path, old);
	}
}

static void
config_value(struct config_walk *w, const struct config_key *k, void *dst,
    yaml_node_t *node)
{
	switch (k->type) {
	case CONFIG_SECTION:
		config_section(w, k->keys, k->discriminator, dst, node);
		return;
	case CONFIG_LIST:
		config_list(w, k, dst, node);
		return;
	case CONFIG_MAP:
		config_map(w, dst, node);
		return;
	default:
		config_scalar_node(w, k, dst, node);
		return;
	}
}

/* Levenshtein distance, for "did you mean" on misspelt keys. */
static size_t
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (lb >= 64 || la >= 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0], tmp;

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);

			tmp = row[j];
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

static const struct config_key *
config_find_key(const struct config_key *keys, const char *name)
{
	for (const struct config_key *k = keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static void
config_unknown_key(struct config_walk *w, const struct config_key *keys,
    struct config_at at)
{
	const char *leaf = strrchr(w->path.s, '.');
	const struct config_key *best = NULL;
	size_t bestd = 3;

	leaf = leaf ? leaf + 1 : w->path.s;
	for (const struct config_key *k = keys; k->name != NULL; k++) {
		size_t d = config_distance(leaf, k->name);

		if (d < bestd) {
			bestd = d;
			best = k;
		}
	}
	if (best != NULL)
		config_error_at(w->c, at, w->path.s, "unknown key (did you mean %s?)",
		    best->name);
	else
		config_error_at(w->c, at, w->path.s, "unknown key");
}

/* The names of the discriminator values in mask, "file or syslog". */
static void
config_mask_names(const struct config_key *disc, unsigned mask, char *out,
    size_t outlen)
{
	size_t len = 0;
	int count = 0, total = 0;

	for (int i = 0; disc->names[i] != NULL; i++)
		total += (mask >> i) & 1;
	out[0] = '\0';
	for (int i = 0; disc->names[i] != NULL; i++) {
		if (!((mask >> i) & 1))
			continue;
		count++;
		len += (size_t)snprintf(out + len, outlen > len ? outlen - len : 0,
		    "%s%s", count == 1 ? "" : count == total ? " or " : ", ",
		    disc->names[i]);
	}
}

static void
config_section(struct config_walk *w, const struct config_key *keys,
    const char *discriminator, void *base, yaml_node_t *node)
{
	struct config_at seen[CONFIG_MAX_KEYS] = { { 0 } };
	const struct config_key *dk = NULL;
	int disc = -1;
	yaml_node_pair_t *p;
	char names[128];
	/* Missing keys are reported where their section was opened. */
	struct config_at here = config_line_of(w->c, w->path.s);

	for (const struct config_key *k = keys; k->name != NULL; k++)
		if (k - keys >= CONFIG_MAX_KEYS) {
			/* A schema bug: seen[] has no room for its keys. */
			fprintf(stderr, "logferry: a section has more than %d keys\n",
			    CONFIG_MAX_KEYS);
			abort();
		}
	if (node->type != YAML_MAPPING_NODE) {
		config_error_at(w->c, config_node_at(w, node), w->path.s,
		    "expected a mapping, not %s", config_node_kind(node));
		config_defaults(w, keys, discriminator, -1, base);
		return;
	}
	if (discriminator != NULL)
		dk = config_find_key(keys, discriminator);

	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
		const struct config_key *k;
		const char *name;
		size_t old;
		int idx;

		if (kn->type != YAML_SCALAR_NODE) {
			config_error_at(w->c, config_node_at(w, kn), w->path.s,
			    "keys must be single values, not %s", config_node_kind(kn));
			continue;
		}
		name = (const char *)kn->data.scalar.value;
		old = config_path_push(&w->path, name, 0);
		k = config_find_key(keys, name);
		if (k == NULL) {
			config_unknown_key(w, keys, config_node_at(w, kn));
		} else if (seen[idx = (int)(k - keys)].line) {
			config_error_at(w->c, config_node_at(w, kn), w->path.s,
			    "duplicate key (first set on line %d)", seen[idx].line);
		} else if (!config_node_is_null(vn)) {
			int errors = w->c->errors;

			seen[idx] = config_node_at(w, kn);
			config_record_line(w->c, w->path.s, config_node_at(w, kn));
			config_value(w, k, (char *)base + k->offset, vn);
			/* An invalid discriminator is reported once, not as every value's default. */
			if (k == dk && w->c->errors == errors)
				disc = *(int *)((char *)base + k->offset);
		}
		config_path_pop(&w->path, old);
	}

	/* Keys that do not apply to the discriminator's value, and missing ones. */
	for (const struct config_key *k = keys; k->name != NULL; k++) {
		int idx = (int)(k - keys);
		size_t old = config_path_push(&w->path, k->name, 0);

		if (seen[idx].line && dk != NULL && disc >= 0 && k->only &&
		    !((k->only >> disc) & 1)) {
			config_mask_names(dk, k->only, names, sizeof(names));
			config_error_at(w->c, seen[idx], w->path.s,
			    "only valid when %s is %s", dk->name, names);
		} else if (!seen[idx].line && (k->flags & CONFIG_REQUIRED)) {
			config_error_at(w->c, here, w->path.s, "missing: this key is required");
		} else if (!seen[idx].line && dk != NULL && disc >= 0 &&
		    ((k->required_when >> disc) & 1)) {
			config_error_at(w->c, here, w->path.s, "missing: required when %s is %s",
			    dk->name, dk->names[disc]);
		}
		config_path_pop(&w->path, old);
	}

	/* Defaults for what the file left out. */
	for (const struct config_key *k = keys; k->name != NULL; k++) {
		if (seen[k - keys].line)
			continue;
		if (dk != NULL && disc >= 0 && k->only && !((k->only >> disc) & 1))
			continue;
		{
			size_t old = config_path_push(&w->path, k->name, 0);
			const struct config_key one[] = { *k, { 0 } };

			config_defaults(w, one, NULL, -1, base);
			config_path_pop(&w->path, old);
		}
	}
}

/* Applies the defaults of keys (none of them set) to base. */
static void
config_defaults(struct config_walk *w, const struct config_key *keys,
    const char *discriminator, int disc, void *base)
{
	char why[512];

	(void)discriminator;
	for (const struct config_key *k = keys; k->name != NULL; k++) {
		void *dst = (char *)base + k->offset;

		if (k->type == CONFIG_SECTION) {
			int d = -1;

			if (k->discriminator) {
				const struct config_key *dk =
				    config_find_key(k->keys, k->discriminator);
				if (dk && dk->def)
					config_parse_scalar(dk, dk->def, &d, why, sizeof(why));
			}
			config_defaults(w, k->keys, k->discriminator, d, dst);
			continue;
		}
		if (k->def == NULL)
			continue;
		if (disc >= 0 && k->only && !((k->only >> disc) & 1))
			continue;
		why[0] = '\0';
		if (k->type == CONFIG_LIST) {
			config_list_from_scalar(w, k, dst, k->def,
			    (struct config_at){ w->c->file, 0 });
			continue;
		}
		if (config_parse_scalar(k, k->def, dst, why, sizeof(why)) != 0) {
			/* A schema bug, not a user error: say so loudly. */
			fprintf(stderr, "logferry: bad default for %s: %s\n", k->name, why);
			abort();
		}
	}
}

/* ------------------------------------------------------------------- load */

static void
config_secrets_free(struct config_secrets *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].path);
		free(s->items[i].file);
	}
	free(s->items);
	memset(s, 0, sizeof(*s));
}

static void
config_check_release(struct config_check *c)
{
	config_secrets_free(&c->secrets);
	for (size_t i = 0; i < c->nlines; i++)
		free(c->lines[i].path);
	free(c->lines);
}

/* Files read from a .d directory, and how deep a value may nest when copied from one. */
#define CONFIG_INCLUDES_MAX 256
#define CONFIG_DEPTH_MAX 64

/* One load: the main file's document, with its .d files merged into it. */
struct config_load {
	struct config_check c;
	yaml_document_t doc;
	bool parsed;                     /* doc holds the main file's document */
	int root;                        /* node id of the top mapping; 0: none */
	struct config_origin origins[CONFIG_INCLUDES_MAX];
	size_t norigins;
	char *files[CONFIG_INCLUDES_MAX];
	size_t nfiles;
};

/* Parses one document from f or from text; a syntax error is printed as name:LINE. */
static int
config_parse(const char *name, FILE *f, const char *text, size_t len,
    yaml_document_t *doc, FILE *err)
{
	yaml_parser_t parser;
	int r = 0;

	if (!yaml_parser_initialize(&parser))
		abort();
	if (f != NULL)
		yaml_parser_set_input_file(&parser, f);
	else
		yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	/* On failure libyaml has already released the partial document. */
	if (!yaml_parser_load(&parser, doc)) {
		fprintf(err, "%s:%zu: YAML syntax error: %s%s%s\n", name,
		    parser.problem_mark.line + 1,
		    parser.problem ? parser.problem : "unknown problem",
		    parser.context ? " " : "", parser.context ? parser.context : "");
		r = -EINVAL;
	}
	yaml_parser_delete(&parser);
	return r;
}

/* The top mapping of doc (node id), 0 for an empty document or a plain null. */
static int
config_doc_root(yaml_document_t *doc)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);

	if (root == NULL || config_node_is_null(root))
		return 0;
	return (int)(root - doc->nodes.start) + 1;
}

/* Copies node id of src, with what it holds, into dst; returns its id there, or 0 if too deep. */
static int
config_copy_node(yaml_document_t *dst, yaml_document_t *src, int id, int depth)
{
	yaml_node_t *n = yaml_document_get_node(src, id);
	int copy = 0, a, b;

	if (depth > CONFIG_DEPTH_MAX)
		return 0;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		copy = yaml_document_add_scalar(dst, NULL, n->data.scalar.value,
		    (int)n->data.scalar.length, n->data.scalar.style);
		break;
	case YAML_SEQUENCE_NODE:
		copy = yaml_document_add_sequence(dst, NULL, n->data.sequence.style);
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		    copy && it < n->data.sequence.items.top; it++) {
			if ((a = config_copy_node(dst, src, *it, depth + 1)) == 0)
				return 0;
			if (!yaml_document_append_sequence_item(dst, copy, a))
				copy = 0;
		}
		break;
	case YAML_MAPPING_NODE:
		copy = yaml_document_add_mapping(dst, NULL, n->data.mapping.style);
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		    copy && p < n->data.mapping.pairs.top; p++) {
			if ((a = config_copy_node(dst, src, p->key, depth + 1)) == 0 ||
			    (b = config_copy_node(dst, src, p->value, depth + 1)) == 0)
				return 0;
			if (!yaml_document_append_mapping_pair(dst, copy, a, b))
				copy = 0;
		}
		break;
	default:
		break;
	}
	if (copy == 0) {
		fputs("logferry: out of memory while reading the configuration\n", stderr);
		abort();
	}
	yaml_document_get_node(dst, copy)->start_mark = n->start_mark;
	return copy;
}

/* The pair of mapping node id whose key is the scalar key, or -1. */
static long
config_find_pair(yaml_document_t *doc, int id, const char *key)
{
	yaml_node_t *m = yaml_document_get_node(doc, id);

	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);

		if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
			return p - m->data.mapping.pairs.start;
	}
	return -1;
}

static bool
config_is_kind(yaml_document_t *doc, int id, yaml_node_type_t type)
{
	return yaml_document_get_node(doc, id)->type == type;
}

/*
 * Merges mapping sid of src into mapping did of dst, following keys (NULL:
 * free-form): sections and mappings merge key by key, lists of sections are
 * appended, anything else replaces what dst had. Nodes from first_id on are
 * this include's own: a key found among them is written twice in the include,
 * so it is appended for the walk to report as a duplicate. Returns 0, or
 * -ELOOP when src nests too deeply to copy.
 */
static int
config_merge(yaml_document_t *dst, int did, yaml_document_t *src, int sid,
    const struct config_key *keys, int first_id, int depth)
{
	yaml_node_t *sm = yaml_document_get_node(src, sid);

	if (depth > CONFIG_DEPTH_MAX)
		return -ELOOP;
	for (yaml_node_pair_t *p = sm->data.mapping.pairs.start; p < sm->data.mapping.pairs.top; p++) {
		yaml_node_t *sk = yaml_document_get_node(src, p->key);
		const struct config_key *k = NULL;
		long at = -1;
		int kc, vc, dv;
		yaml_node_pair_t *dp;

		if (sk->type == YAML_SCALAR_NODE) {
			at = config_find_pair(dst, did, (const char *)sk->data.scalar.value);
			if (keys != NULL)
				k = config_find_key(keys, (const char *)sk->data.scalar.value);
		}
		if (at >= 0 &&
		    yaml_document_get_node(dst, did)->data.mapping.pairs.start[at].key >= first_id)
			at = -1;
		if (at >= 0) {
			dv = yaml_document_get_node(dst, did)->data.mapping.pairs.start[at].value;
			if (k != NULL && (k->type == CONFIG_SECTION || k->type == CONFIG_MAP) &&
			    config_is_kind(dst, dv, YAML_MAPPING_NODE) &&
			    config_is_kind(src, p->value, YAML_MAPPING_NODE)) {
				if (config_merge(dst, dv, src, p->value,
				    k->type == CONFIG_SECTION ? k->keys : NULL, first_id,
				    depth + 1) != 0)
					return -ELOOP;
				continue;
			}
			if (k != NULL && k->type == CONFIG_LIST && k->elem->type == CONFIG_SECTION &&
			    config_is_kind(dst, dv, YAML_SEQUENCE_NODE) &&
			    config_is_kind(src, p->value, YAML_SEQUENCE_NODE)) {
				yaml_node_t *sl = yaml_document_get_node(src, p->value);

				for (yaml_node_item_t *it = sl->data.sequence.items.start;
				    it < sl->data.sequence.items.top; it++) {
					if ((vc = config_copy_node(dst, src, *it, depth + 1)) == 0)
						return -ELOOP;
					if (!yaml_document_append_sequence_item(dst, dv, vc))
						abort();
				}
				continue;
			}
		}
		if ((kc = config_copy_node(dst, src, p->key, depth + 1)) == 0 ||
		    (vc = config_copy_node(dst, src, p->value, depth + 1)) == 0)
			return -ELOOP;
		if (at < 0) {
			if (!yaml_document_append_mapping_pair(dst, did, kc, vc))
				abort();
			continue;
		}
		/* Copies may have moved the nodes: find the pair again. */
		dp = &yaml_document_get_node(dst, did)->data.mapping.pairs.start[at];
		dp->key = kc;
		dp->value = vc;
	}
	return 0;
}

/* FILE.yaml (or FILE.yml) -> FILE.d; any other name gets .d appended. Allocated. */
static char *
config_include_dir(const char *file)
{
	size_t n = strlen(file);
	char *dir;

	if (n > 5 && strcmp(file + n - 5, ".yaml") == 0)
		n -= 5;
	else if (n > 4 && strcmp(file + n - 4, ".yml") == 0)
		n -= 4;
	dir = config_xcalloc(1, n + 3);
	memcpy(dir, file, n);
	memcpy(dir + n, ".d", 3);
	return dir;
}

static int
config_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists dir's *.yaml files (not hidden ones) into L->files, in byte order of
 * their names. A missing directory has none. Returns 0 or -EINVAL (printed).
 */
static int
config_list_includes(struct config_load *L, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		fprintf(L->c.err, "%s: cannot read the include directory: %s\n", dir,
		    strerror(errno));
		return -EINVAL;
	}
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (e->d_name[0] == '.' || n <= 5 || strcmp(e->d_name + n - 5, ".yaml") != 0)
			continue;
		if (L->nfiles == CONFIG_INCLUDES_MAX) {
			fprintf(L->c.err, "%s: more than %d .yaml files: merge some of them\n", dir,
			    CONFIG_INCLUDES_MAX);
			closedir(d);
			return -EINVAL;
		}
		L->files[L->nfiles] = config_xcalloc(1, strlen(dir) + n + 2);
		sprintf(L->files[L->nfiles++], "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(L->files, L->nfiles, sizeof(*L->files), config_strcmp);
	return 0;
}

/*
 * Opens a configuration file for reading (an include must be a regular
 * file: a directory named x.yaml is a mistake). Returns NULL after printing why.
 */
static FILE *
config_open(const char *file, bool regular, FILE *err, int *r)
{
	struct stat st;
	FILE *f = fopen(file, "r");

	if (f == NULL) {
		*r = -errno;
		fprintf(err, "%s: cannot read the configuration: %s\n", file, strerror(errno));
		return NULL;
	}
	if (regular && (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))) {
		*r = -EINVAL;
		fprintf(err, "%s: cannot read the configuration: not a regular file\n", file);
		fclose(f);
		return NULL;
	}
	return f;
}

/* Reads each of L->files and merges it into L->doc. Returns 0 or -EINVAL (printed). */
static int
config_merge_includes(const struct config_schema *schema, struct config_load *L)
{
	int r = 0;

	for (size_t i = 0; i < L->nfiles; i++) {
		yaml_document_t inc;
		FILE *f;
		int ir, root;

		if ((f = config_open(L->files[i], true, L->c.err, &ir)) == NULL) {
			r = -EINVAL;
			continue;
		}
		ir = config_parse(L->files[i], f, NULL, 0, &inc, L->c.err);
		fclose(f);
		if (ir != 0) {
			r = -EINVAL;
			continue;
		}
		root = config_doc_root(&inc);
		if (root != 0 && !config_is_kind(&inc, root, YAML_MAPPING_NODE)) {
			fprintf(L->c.err, "%s:%d: (top level): expected a mapping, not %s\n",
			    L->files[i], config_node_line(yaml_document_get_node(&inc, root)),
			    config_node_kind(yaml_document_get_node(&inc, root)));
			r = -EINVAL;
		} else if (root != 0 && L->parsed && r == 0 && (L->root == 0 ||
		    config_is_kind(&L->doc, L->root, YAML_MAPPING_NODE))) {
			/* (A main file that is not a mapping is reported by the walk.) */
			int first_id = (int)(L->doc.nodes.top - L->doc.nodes.start) + 1;

			L->origins[L->norigins].first_id = first_id;
			L->origins[L->norigins++].file = L->files[i];
			if (L->root == 0)
				L->root = yaml_document_add_mapping(&L->doc, NULL,
				    YAML_BLOCK_MAPPING_STYLE);
			if (L->root == 0)
				abort();
			if (config_merge(&L->doc, L->root, &inc, root, schema->keys, first_id,
			    0) != 0) {
				fprintf(L->c.err, "%s: nested more than %d levels deep\n",
				    L->files[i], CONFIG_DEPTH_MAX);
				r = -EINVAL;
			}
		}
		yaml_document_delete(&inc);
	}
	return r;
}

/* Walks the merged document into obj, validates it, and releases L. */
static int
config_load_finish(const struct config_schema *schema, struct config_load *L, int r,
    void *obj)
{
	struct config_walk w = { .c = &L->c, .origins = L->origins, .norigins = L->norigins,
		.secrets_allowed = schema->secrets != 0 };
	yaml_node_t empty = { .type = YAML_MAPPING_NODE };

	if (r == 0 && L->parsed) {
		w.doc = &L->doc;
		config_section(&w, schema->keys, NULL, obj,
		    L->root ? yaml_document_get_node(&L->doc, L->root) : &empty);
		if (L->c.errors == 0 && schema->validate != NULL)
			schema->validate(&L->c, obj);
		if (L->c.errors > 0)
			r = -EINVAL;
	} else {
		/* Defaults keep obj safe to use and free. */
		config_defaults(&w, schema->keys, NULL, -1, obj);
		if (r == 0)
			r = -EINVAL;
	}
	if (schema->secrets != 0) {
		/* transferred: config_free releases them with obj */
		*(struct config_secrets *)((char *)obj + schema->secrets - 1) = L->c.secrets;
		memset(&L->c.secrets, 0, sizeof(L->c.secrets));
	}
	if (L->parsed)
		yaml_document_delete(&L->doc);
	for (size_t i = 0; i < L->nfiles; i++)
		free(L->files[i]);
	config_check_release(&L->c);
	free(L);
	return r;
}

static struct config_load *
config_load_new(const char *name, FILE *err)
{
	struct config_load *L = config_xcalloc(1, sizeof(*L));

	L->c.file = name;
	L->c.err = err;
	return L;
}

int
config_load_string(const struct config_schema *schema, const char *name,
    const char *yaml, size_t len, void *obj, FILE *err)
{
	struct config_load *L = config_load_new(name, err);
	int r;

	memset(obj, 0, schema->size);
	if ((r = config_parse(name, NULL, yaml, len, &L->doc, err)) == 0) {
		L->parsed = true;
		L->root = config_doc_root(&L->doc);
	}
	return config_load_finish(schema, L, r, obj);
}

int
config_load_file(const struct config_schema *schema, const char *file,
    void *obj, FILE *err)
{
	struct config_load *L;
	char *dir;
	FILE *f;
	int r;

	memset(obj, 0, schema->size);
	if ((f = config_open(file, false, err, &r)) == NULL)
		return r;
	L = config_load_new(file, err);
	r = config_parse(file, f, NULL, 0, &L->doc, err);
	fclose(f);
	if (r == 0) {
		L->parsed = true;
		L->root = config_doc_root(&L->doc);
	}
	/* Resolved at every load, so that a reload sees files added since. */
	dir = config_include_dir(file);
	if (config_list_includes(L, dir) != 0 || config_merge_includes(schema, L) != 0)
		r = -EINVAL;
	free(dir);
	return config_load_finish(schema, L, r, obj);
}

/* ------------------------------------------------------------------- free */

static void config_free_keys(const struct config_key *keys, void *base);

static void
config_free_value(const struct config_key *k, void *dst)
{
	switch (k->type) {
	case CONFIG_STRING:
		free(*(char **)dst);
		*(char **)dst = NULL;
		break;
	case CONFIG_ADDR: {
		struct config_addr *a = dst;

		free(a->host);
		free(a->path);
		free(a->text);
		memset(a, 0, sizeof(*a));
		break;
	}
	case CONFIG_LIST: {
		struct config_list *l = dst;
		size_t esize = config_ctype_size(k->elem);

		for (size_t i = 0; i < l->n; i++)
			config_free_value(k->elem, (char *)l->items + i * esize);
		free(l->items);
		l->items = NULL;
		l->n = 0;
		break;
	}
	case CONFIG_MAP: {
		struct config_map *m = dst;

		for (size_t i = 0; i < m->n; i++) {
			free(m->items[i].key);
			free(m->items[i].value);
		}
		free(m->items);
		m->items = NULL;
		m->n = 0;
		break;
	}
	case CONFIG_SECTION:
		config_free_keys(k->keys, dst);
		break;
	default:
		break;
	}
}

static void
config_free_keys(const struct config_key *keys, void *base)
{
	for (const struct config_key *k = keys; k->name != NULL; k++)
		config_free_value(k, (char *)base + k->offset);
}

void
config_free(const struct config_schema *schema, void *obj)
{
	if (obj == NULL)
		return;
	if (schema->release != NULL)
		schema->release(obj);
	config_free_keys(schema->keys, obj);
	if (schema->secrets != 0)
		config_secrets_free((struct config_secrets *)((char *)obj + schema->secrets - 1));
}

/* ------------------------------------------------------------------- dump */

static void
config_dump_string(const char *s, FILE *out)
{
	if (s == NULL) {
		fputc('~', out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void
config_dump_scalar(const struct config_key *k, const void *v, FILE *out)
{
	char b[64];

	switch (k->type) {
	case CONFIG_STRING:
		config_dump_string(*(char *const *)v, out);
		break;
	case CONFIG_BOOL:
		fputs(*(const bool *)v ? "true" : "false", out);
		break;
	case CONFIG_INT:
		fprintf(out, "%" PRId64, *(const int64_t *)v);
		break;
	case CONFIG_SIZE:
		config_format_size(*(const uint64_t *)v, b, sizeof(b));
		fputs(b, out);
		break;
	case CONFIG_DURATION:
		config_format_duration(*(const uint64_t *)v, b, sizeof(b));
		fputs(b, out);
		break;
	case CONFIG_ENUM:
		fputs(k->names[*(const int *)v], out);
		break;
	case CONFIG_ADDR:
		config_dump_string(((const struct config_addr *)v)->text, out);
		break;
	default:
		break;
	}
}

/* What is being dumped, and where: the key path names values read from files. */
struct config_dumper {
	const struct config_secrets *secrets;   /* NULL: none */
	struct config_path path;
	FILE *out;
};

/* Prints {file: PATH} instead of a value read from a file; says whether it did. */
static bool
config_dump_secret(struct config_dumper *d)
{
	if (d->secrets == NULL)
		return false;
	for (size_t i = 0; i < d->secrets->n; i++) {
		if (strcmp(d->secrets->items[i].path, d->path.s) == 0) {
			fputs("{file: ", d->out);
			config_dump_string(d->secrets->items[i].file, d->out);
			fputc('}', d->out);
			return true;
		}
	}
	return false;
}

static void config_dump_keys(struct config_dumper *d, const struct config_key *keys,
    const char *discriminator, const void *base, int indent, bool first_dash);

static void
config_dump_key(struct config_dumper *d, const struct config_key *k, const void *v,
    int indent, const char *lead)
{
	FILE *out = d->out;

	fprintf(out, "%s%*s%s:", lead, lead[0] ? 0 : indent, "", k->name);
	switch (k->type) {
	case CONFIG_SECTION:
		fputc('\n', out);
		config_dump_keys(d, k->keys, k->discriminator, v, indent + 2, false);
		return;
	case CONFIG_MAP: {
		const struct config_map *m = v;

		if (m->n == 0)
			fputs(" {}", out);
		fputc('\n', out);
		for (size_t i = 0; i < m->n; i++) {
			size_t old = config_path_push(&d->path, m->items[i].key, 0);

			fprintf(out, "%*s", indent + 2, "");
			config_dump_string(m->items[i].key, out);
			fputs(": ", out);
			if (!config_dump_secret(d))
				config_dump_string(m->items[i].value, out);
			fputc('\n', out);
			config_path_pop(&d->path, old);
		}
		return;
	}
	case CONFIG_LIST: {
		const struct config_list *l = v;
		size_t esize = config_ctype_size(k->elem);

		/* Absent, not [], which a list that may not be empty refuses on reading back. */
		if (l->n == 0 && (k->flags & CONFIG_NONEMPTY)) {
			fputs(" ~\n", out);
			return;
		}
		if (config_is_scalar_type(k->elem->type)) {
			fputs(" [", out);
			for (size_t i = 0; i < l->n; i++) {
				size_t old = config_path_push(&d->path, NULL, (long)i);

				if (i)
					fputs(", ", out);
				if (!config_dump_secret(d))
					config_dump_scalar(k->elem, (const char *)l->items + i * esize,
					    out);
				config_path_pop(&d->path, old);
			}
			fputs("]\n", out);
			return;
		}
		fputs(l->n ? "\n" : " []\n", out);
		for (size_t i = 0; i < l->n; i++) {
			size_t old = config_path_push(&d->path, NULL, (long)i);

			config_dump_keys(d, k->elem->keys, k->elem->discriminator,
			    (const char *)l->items + i * esize, indent + 2, true);
			config_path_pop(&d->path, old);
		}
		return;
	}
	default:
		fputc(' ', out);
		if (!config_dump_secret(d))
			config_dump_scalar(k, v, out);
		fputc('\n', out);
		return;
	}
}

/*
 * An optional section that was not in the file: one of its required keys
 * has no value, which loading it would have refused. Dumped, it would not
 * load again ("http_intake: listen: missing"), so the dump leaves it out.
 */
static bool
config_section_absent(const struct config_key *k, const void *v)
{
	if (k->type != CONFIG_SECTION || (k->flags & CONFIG_REQUIRED))
		return false;
	for (const struct config_key *c = k->keys; c->name != NULL; c++) {
		const void *cv = (const char *)v + c->offset;

		if (!(c->flags & CONFIG_REQUIRED) || c->only != 0)
			continue;
		if ((c->type == CONFIG_STRING && *(char *const *)cv == NULL) ||
		    (c->type == CONFIG_ADDR && ((const struct config_addr *)cv)->text == NULL) ||
		    (c->type == CONFIG_LIST && ((const struct config_list *)cv)->n == 0))
			return true;
	}
	return false;
}

static void
config_dump_keys(struct config_dumper *d, const struct config_key *keys,
    const char *discriminator, const void *base, int indent, bool first_dash)
{
	const struct config_key *dk = discriminator ?
	    config_find_key(keys, discriminator) : NULL;
	int disc = dk ? *(const int *)((const char *)base + dk->offset) : -1;
	bool first = true;

	for (const struct config_key *k = keys; k->name != NULL; k++) {
		char lead[64] = "";
		size_t old;

		if (disc >= 0 && k->only && !((k->only >> disc) & 1))
			continue;
		if (config_section_absent(k, (const char *)base + k->offset))
			continue;
		if (first && first_dash)
			snprintf(lead, sizeof(lead), "%*s- ", indent - 2, "");
		else if (first_dash)
			snprintf(lead, sizeof(lead), "%*s", indent, "");
		first = false;
		old = config_path_push(&d->path, k->name, 0);
		config_dump_key(d, k, (const char *)base + k->offset, indent, lead);
		config_path_pop(&d->path, old);
	}
}

void
config_dump(const struct config_schema *schema, const void *obj, FILE *out)
{
	struct config_dumper d = { .out = out };

	if (schema->secrets != 0)
		d.secrets = (const struct config_secrets *)((const char *)obj +
		    schema->secrets - 1);
	config_dump_keys(&d, schema->keys, NULL, obj, 0, false);
}

/* -------------------------------------------------------------- reference */

static const char *
config_type_name(const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_STRING: return "string";
	case CONFIG_BOOL: return "boolean";
	case CONFIG_INT: return "integer";
	case CONFIG_SIZE: return "size";
	case CONFIG_DURATION: return "duration";
	case CONFIG_ENUM: return "one of";
	case CONFIG_ADDR: return "address";
	case CONFIG_LIST: return "list";
	case CONFIG_MAP: return "mapping of strings";
	case CONFIG_SECTION: return "section";
	}
	return "?";
}

/* Writes s with roff's special characters escaped. */
static void
config_roff(const char *s, FILE *out)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

static void
config_reference_keys(const struct config_key *keys, const char *discriminator,
    struct config_path *path, FILE *out)
{
	const struct config_key *dk = discriminator ?
	    config_find_key(keys, discriminator) : NULL;

	for (const struct config_key *k = keys; k->name != NULL; k++) {
		size_t old = config_path_push(path, k->name, 0);
		const struct config_key *e = k->type == CONFIG_LIST ? k->elem : NULL;
		char b[64], names[256];

		fputs(".TP\n.B ", out);
		config_roff(path->s, out);
		fputs("\n(", out);
		if (e != NULL && e->type == CONFIG_SECTION)
			fputs("list of sections", out);
		else if (e != NULL)
			fprintf(out, "list of %s", config_type_name(e));
		else
			fputs(config_type_name(k), out);
		if (k->type == CONFIG_ENUM || (e && e->type == CONFIG_ENUM)) {
			config_enum_list(k->type == CONFIG_ENUM ? k->names : e->names,
			    names, sizeof(names));
			fprintf(out, " %s", names);
		}
		if (k->min != 0 || k->max != 0) {
			config_describe_bound(k, k->min, b, sizeof(b));
			fprintf(out, ", %s", b);
			config_describe_bound(k, k->max, b, sizeof(b));
			fprintf(out, " to %s", b);
		}
		if (k->flags & CONFIG_REQUIRED)
			fputs(", required", out);
		if (dk && k->required_when) {
			config_mask_names(dk, k->required_when, names, sizeof(names));
			fprintf(out, ", required when %s is %s", dk->name, names);
		}
		if (dk && k->only) {
			config_mask_names(dk, k->only, names, sizeof(names));
			fprintf(out, ", only when %s is %s", dk->name, names);
		}
		if (k->def) {
			fputs(", default ", out);
			config_roff(k->def[0] ? k->def : "\"\"", out);
		}
		fputs(")\n", out);
		if (k->help) {
			config_roff(k->help, out);
			fputc('\n', out);
		}
		if (k->type == CONFIG_SECTION)
			config_reference_keys(k->keys, k->discriminator, path, out);
		else if (e != NULL && e->type == CONFIG_SECTION) {
			size_t o2 = config_path_push(path, NULL, 0);

			path->len = o2 + 2;
			memcpy(path->s + o2, "[]", 3);
			config_reference_keys(e->keys, e->discriminator, path, out);
			config_path_pop(path, o2);
		}
		config_path_pop(path, old);
	}
}

void
config_reference(const struct config_schema *schema, FILE *out)
{
	struct config_path path = { .len = 0 };

	path.s[0] = '\0';
	config_reference_keys(schema->keys, NULL, &path, out);
}

static bool
config_string_equal(const char *x, const char *y)
{
	return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

bool
config_value_equal(const struct config_key *k, const void *x, const void *y)
{
	const struct config_list *lx = x, *ly = y;
	const struct config_map *mx = x, *my = y;
	size_t size;

	switch (k->type) {
	case CONFIG_STRING:
		return config_string_equal(*(char *const *)x, *(char *const *)y);
	case CONFIG_ADDR:
		/* As written: the same text is the same address. */
		return config_string_equal(((const struct config_addr *)x)->text,
		    ((const struct config_addr *)y)->text);
	case CONFIG_LIST:
		if (lx->n != ly->n)
			return false;
		size = config_ctype_size(k->elem);
		for (size_t i = 0; i < lx->n; i++)
			if (!config_value_equal(k->elem, (const char *)lx->items + i * size,
			    (const char *)ly->items + i * size))
				return false;
		return true;
	case CONFIG_MAP:
		if (mx->n != my->n)
			return false;
		for (size_t i = 0; i < mx->n; i++)
			if (!config_string_equal(mx->items[i].key, my->items[i].key) ||
			    !config_string_equal(mx->items[i].value, my->items[i].value))
				return false;
		return true;
	case CONFIG_SECTION:
		for (const struct config_key *c = k->keys; c->name != NULL; c++)
			if (!config_value_equal(c, (const char *)x + c->offset,
			    (const char *)y + c->offset))
				return false;
		return true;
	default:
		return memcmp(x, y, config_ctype_size(k)) == 0;
	}
}
