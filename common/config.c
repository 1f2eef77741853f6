#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/config.h"

#define CONFIG_PATH_MAX 512
#define CONFIG_MAX_KEYS 64       /* keys per section; checked, a schema bug otherwise */
#define CONFIG_MAX_ERRORS 50     /* after this many, stop printing */

struct config_line {
	char *path;
	int line;
};

struct config_check {
	const char *file;
	FILE *err;
	int errors;
	struct config_line *lines;
	size_t nlines, caplines;
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
config_record_line(struct config_check *c, const char *path, int line)
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
	c->lines[c->nlines].line = line;
	c->nlines++;
}

static int
config_find_line(const struct config_check *c, const char *path, size_t len)
{
	for (size_t i = 0; i < c->nlines; i++)
		if (strlen(c->lines[i].path) == len &&
		    memcmp(c->lines[i].path, path, len) == 0)
			return c->lines[i].line;
	return 0;
}

/* The line of path, or of its nearest enclosing key present in the file. */
static int
config_line_of(const struct config_check *c, const char *path)
{
	size_t len = strlen(path);
	int line;

	for (;;) {
		if (len == 0)
			return 1;
		if ((line = config_find_line(c, path, len)) > 0)
			return line;
		while (len > 0 && path[len - 1] != '.' && path[len - 1] != '[')
			len--;
		if (len > 0)
			len--;
	}
}

static void config_errorv(struct config_check *c, int line, const char *path,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
config_errorv(struct config_check *c, int line, const char *path,
    const char *fmt, va_list ap)
{
	c->errors++;
	if (c->errors > CONFIG_MAX_ERRORS)
		return;
	if (c->errors == CONFIG_MAX_ERRORS) {
		fprintf(c->err, "%s: too many errors, giving up\n", c->file);
		return;
	}
	fprintf(c->err, "%s:%d: %s: ", c->file, line, path[0] ? path : "(top level)");
	vfprintf(c->err, fmt, ap);
	fputc('\n', c->err);
}

static void config_error_at(struct config_check *c, int line, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
config_error_at(struct config_check *c, int line, const char *path,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_errorv(c, line, path, fmt, ap);
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
config_present(const struct config_check *c, const char *path)
{
	return config_find_line(c, path, strlen(path)) > 0;
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
	for (int s = CONFIG_SCHEME_NONE; s <= CONFIG_SCHEME_UNIX; s++) {
		if (!(schemes & CONFIG_SCHEMES(s)))
			continue;
		len += (size_t)snprintf(out + len, outlen > len ? outlen - len : 0,
		    "%s%s", len ? ", " : "",
		    s == CONFIG_SCHEME_NONE ? "host:port" :
		    s == CONFIG_SCHEME_UNIX ? "unix:///path" :
		    s == CONFIG_SCHEME_UDP ? "udp://host:port" : "tcp://host:port");
	}
}

static int
config_parse_addr(const struct config_key *k, const char *s,
    struct config_addr *a, char *why, size_t whylen)
{
	enum config_scheme scheme = CONFIG_SCHEME_NONE;
	const char *rest = s;
	char allowed[128];

	for (int i = CONFIG_SCHEME_UDP; i <= CONFIG_SCHEME_UNIX; i++) {
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

/* ----------------------------------------------------------------- walking */

struct config_walk {
	struct config_check *c;
	yaml_document_t *doc;
	struct config_path path;
};

static int
config_node_line(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
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

static void config_section(struct config_walk *w, const struct config_key *keys,
    const char *discriminator, void *base, yaml_node_t *node);
static void config_defaults(struct config_walk *w, const struct config_key *keys,
    const char *discriminator, int disc, void *base);

static void
config_scalar_node(struct config_walk *w, const struct config_key *k, void *dst,
    yaml_node_t *node)
{
	char why[512];

	if (node->type != YAML_SCALAR_NODE) {
		config_error_at(w->c, config_node_line(node), w->path.s,
		    "expected a single value, not %s", config_node_kind(node));
		return;
	}
	why[0] = '\0';
	if (config_parse_scalar(k, (const char *)node->data.scalar.value, dst, why,
	    sizeof(why)) != 0)
		config_error_at(w->c, config_node_line(node), w->path.s, "%s", why);
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
    struct config_list *l, const char *s, int line)
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
			config_error_at(w->c, line, w->path.s, "%s", why);
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
		config_list_from_scalar(w, k, l, (const char *)node->data.scalar.value,
		    config_node_line(node));
	} else if (node->type != YAML_SEQUENCE_NODE) {
		config_error_at(w->c, config_node_line(node), w->path.s,
		    "expected a list, not %s", config_node_kind(node));
		return;
	} else {
		n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
		l->items = config_xcalloc(n, esize);
		it = node->data.sequence.items.start;
		for (size_t i = 0; i < n; i++, it++) {
			yaml_node_t *item = yaml_document_get_node(w->doc, *it);
			size_t old = config_path_push(&w->path, NULL, (long)i);

			config_record_line(w->c, w->path.s, config_node_line(item));
			config_value(w, e, (char *)l->items + l->n * esize, item);
			l->n++;
			config_path_pop(&w->path, old);
		}
	}
	if ((k->flags & CONFIG_NONEMPTY) && l->n == 0)
		config_error_at(w->c, config_node_line(node), w->path.s,
		    "must list at least one entry");
}

static void
config_map(struct config_walk *w, struct config_map *m, yaml_node_t *node)
{
	yaml_node_pair_t *p;
	size_t n;

	if (node->type != YAML_MAPPING_NODE) {
		config_error_at(w->c, config_node_line(node), w->path.s,
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
			config_error_at(w->c, config_node_line(kn), w->path.s,
			    "keys must be single values");
			continue;
		}
		key = (const char *)kn->data.scalar.value;
		old = config_path_push(&w->path, key, 0);
		if (vn->type != YAML_SCALAR_NODE) {
			config_error_at(w->c, config_node_line(vn), w->path.s,
			    "expected a single value, not %s", config_node_kind(vn));
		} else {
			bool dup = false;

			for (size_t i = 0; i < m->n; i++)
				dup |= strcmp(m->items[i].key, key) == 0;
			if (dup) {
				config_error_at(w->c, config_node_line(kn), w->path.s,
				    "duplicate key");
			} else {
				config_record_line(w->c, w->path.s, config_node_line(kn));
				m->items[m->n].key = config_xstrdup(key);
				m->items[m->n].value =
				    config_xstrdup((const char *)vn->data.scalar.value);
				m->items[m->n].line = config_node_line(kn);
				m->n++;
			}
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
config_unknown_key(struct config_walk *w, const struct config_key *keys, int line)
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
		config_error_at(w->c, line, w->path.s, "unknown key (did you mean %s?)",
		    best->name);
	else
		config_error_at(w->c, line, w->path.s, "unknown key");
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
	int seen[CONFIG_MAX_KEYS] = { 0 };
	const struct config_key *dk = NULL;
	int disc = -1;
	yaml_node_pair_t *p;
	char names[128];
	/* Missing keys are reported where their section was opened. */
	int here = config_line_of(w->c, w->path.s);

	for (const struct config_key *k = keys; k->name != NULL; k++)
		if (k - keys >= CONFIG_MAX_KEYS) {
			/* A schema bug: seen[] has no room for its keys. */
			fprintf(stderr, "logferry: a section has more than %d keys\n",
			    CONFIG_MAX_KEYS);
			abort();
		}
	if (node->type != YAML_MAPPING_NODE) {
		config_error_at(w->c, config_node_line(node), w->path.s,
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
			config_error_at(w->c, config_node_line(kn), w->path.s,
			    "keys must be single values, not %s", config_node_kind(kn));
			continue;
		}
		name = (const char *)kn->data.scalar.value;
		old = config_path_push(&w->path, name, 0);
		k = config_find_key(keys, name);
		if (k == NULL) {
			config_unknown_key(w, keys, config_node_line(kn));
		} else if (seen[idx = (int)(k - keys)]) {
			config_error_at(w->c, config_node_line(kn), w->path.s,
			    "duplicate key (first set on line %d)", seen[idx]);
		} else if (!config_node_is_null(vn)) {
			int errors = w->c->errors;

			seen[idx] = config_node_line(kn);
			config_record_line(w->c, w->path.s, config_node_line(kn));
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

		if (seen[idx] && dk != NULL && disc >= 0 && k->only &&
		    !((k->only >> disc) & 1)) {
			config_mask_names(dk, k->only, names, sizeof(names));
			config_error_at(w->c, seen[idx], w->path.s,
			    "only valid when %s is %s", dk->name, names);
		} else if (!seen[idx] && (k->flags & CONFIG_REQUIRED)) {
			config_error_at(w->c, here, w->path.s, "missing: this key is required");
		} else if (!seen[idx] && dk != NULL && disc >= 0 &&
		    ((k->required_when >> disc) & 1)) {
			config_error_at(w->c, here, w->path.s, "missing: required when %s is %s",
			    dk->name, dk->names[disc]);
		}
		config_path_pop(&w->path, old);
	}

	/* Defaults for what the file left out. */
	for (const struct config_key *k = keys; k->name != NULL; k++) {
		if (seen[k - keys])
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
			config_list_from_scalar(w, k, dst, k->def, 0);
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
config_check_release(struct config_check *c)
{
	for (size_t i = 0; i < c->nlines; i++)
		free(c->lines[i].path);
	free(c->lines);
}

static int
config_load_parser(const struct config_schema *schema, const char *name,
    yaml_parser_t *parser, void *obj, FILE *err)
{
	struct config_check c = { .file = name, .err = err };
	struct config_walk w = { .c = &c };
	yaml_document_t doc;
	yaml_node_t *root;
	yaml_node_t empty = { .type = YAML_MAPPING_NODE };
	int r = 0;

	memset(obj, 0, schema->size);
	if (!yaml_parser_load(parser, &doc)) {
		fprintf(err, "%s:%zu: YAML syntax error: %s%s%s\n", name,
		    parser->problem_mark.line + 1,
		    parser->problem ? parser->problem : "unknown problem",
		    parser->context ? " " : "", parser->context ? parser->context : "");
		/* Defaults keep obj safe to use and free. */
		config_defaults(&w, schema->keys, NULL, -1, obj);
		config_check_release(&c);
		return -EINVAL;
	}
	w.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL || config_node_is_null(root))
		root = &empty;
	config_section(&w, schema->keys, NULL, obj, root);
	if (c.errors == 0 && schema->validate != NULL)
		schema->validate(&c, obj);
	if (c.errors > 0)
		r = -EINVAL;
	yaml_document_delete(&doc);
	config_check_release(&c);
	return r;
}

int
config_load_string(const struct config_schema *schema, const char *name,
    const char *yaml, size_t len, void *obj, FILE *err)
{
	yaml_parser_t parser;
	int r;

	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	r = config_load_parser(schema, name, &parser, obj, err);
	yaml_parser_delete(&parser);
	return r;
}

int
config_load_file(const struct config_schema *schema, const char *file,
    void *obj, FILE *err)
{
	yaml_parser_t parser;
	FILE *f;
	int r;

	memset(obj, 0, schema->size);
	if ((f = fopen(file, "r")) == NULL) {
		r = -errno;
		fprintf(err, "%s: cannot read the configuration: %s\n", file,
		    strerror(errno));
		return r;
	}
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_file(&parser, f);
	r = config_load_parser(schema, file, &parser, obj, err);
	yaml_parser_delete(&parser);
	fclose(f);
	return r;
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
	config_free_keys(schema->keys, obj);
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

static void config_dump_keys(const struct config_key *keys,
    const char *discriminator, const void *base, int indent, bool first_dash,
    FILE *out);

static void
config_dump_key(const struct config_key *k, const void *v, int indent,
    const char *lead, FILE *out)
{
	fprintf(out, "%s%*s%s:", lead, lead[0] ? 0 : indent, "", k->name);
	switch (k->type) {
	case CONFIG_SECTION:
		fputc('\n', out);
		config_dump_keys(k->keys, k->discriminator, v, indent + 2, false, out);
		return;
	case CONFIG_MAP: {
		const struct config_map *m = v;

		if (m->n == 0)
			fputs(" {}", out);
		fputc('\n', out);
		for (size_t i = 0; i < m->n; i++) {
			fprintf(out, "%*s", indent + 2, "");
			config_dump_string(m->items[i].key, out);
			fputs(": ", out);
			config_dump_string(m->items[i].value, out);
			fputc('\n', out);
		}
		return;
	}
	case CONFIG_LIST: {
		const struct config_list *l = v;
		size_t esize = config_ctype_size(k->elem);

		if (config_is_scalar_type(k->elem->type)) {
			fputs(" [", out);
			for (size_t i = 0; i < l->n; i++) {
				if (i)
					fputs(", ", out);
				config_dump_scalar(k->elem, (const char *)l->items + i * esize, out);
			}
			fputs("]\n", out);
			return;
		}
		fputs(l->n ? "\n" : " []\n", out);
		for (size_t i = 0; i < l->n; i++)
			config_dump_keys(k->elem->keys, k->elem->discriminator,
			    (const char *)l->items + i * esize, indent + 2, true, out);
		return;
	}
	default:
		fputc(' ', out);
		config_dump_scalar(k, v, out);
		fputc('\n', out);
		return;
	}
}

static void
config_dump_keys(const struct config_key *keys, const char *discriminator,
    const void *base, int indent, bool first_dash, FILE *out)
{
	const struct config_key *dk = discriminator ?
	    config_find_key(keys, discriminator) : NULL;
	int disc = dk ? *(const int *)((const char *)base + dk->offset) : -1;
	bool first = true;

	for (const struct config_key *k = keys; k->name != NULL; k++) {
		char lead[64] = "";

		if (disc >= 0 && k->only && !((k->only >> disc) & 1))
			continue;
		if (first && first_dash)
			snprintf(lead, sizeof(lead), "%*s- ", indent - 2, "");
		else if (first_dash)
			snprintf(lead, sizeof(lead), "%*s", indent, "");
		first = false;
		config_dump_key(k, (const char *)base + k->offset, indent, lead, out);
	}
}

void
config_dump(const struct config_schema *schema, const void *obj, FILE *out)
{
	config_dump_keys(schema->keys, NULL, obj, 0, false, out);
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
