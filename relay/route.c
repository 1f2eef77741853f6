/* SPDX-License-Identifier: Apache-2.0 */
/* route: routing templates compiled once, rendered per event (see route.h). */
#include "autoconfig.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "relay/relay_config.h"
#include "relay/route.h"

enum route_op_type {
	ROUTE_LITERAL,
	ROUTE_STREAM,
	ROUTE_HOST,
	ROUTE_SOURCE,
	ROUTE_AGENT,
	ROUTE_FIELD,
};

/* One step of the program: literal text or a variable (a field's name). */
struct route_op {
	enum route_op_type type;
	const char *text;        /* LITERAL: the text; FIELD: the name */
	size_t len;
	const char *def;         /* a variable's :-default, NULL: none */
	size_t deflen;
};

struct route {
	enum route_kind kind;
	bool fields;             /* reads ${fields.NAME} */
	size_t nops;
	struct route_op *ops;    /* in the same allocation, then the text */
};

static const struct {
	const char *name;
	enum route_op_type type;
} route_vars[] = {
	{ "stream", ROUTE_STREAM },
	{ "host", ROUTE_HOST },
	{ "agent", ROUTE_AGENT },
	{ "source", ROUTE_SOURCE },
};

#define ROUTE_FIELDS_PREFIX "fields."
#define ROUTE_FIELDS_PREFIX_LEN (sizeof(ROUTE_FIELDS_PREFIX) - 1)

/*
 * The variable named by name (len bytes): its type, and for a field the
 * field's name in *field. Returns false for an unknown variable.
 */
static bool
route_variable(const char *name, size_t len, enum route_op_type *type, const char **field,
    size_t *flen)
{
	for (size_t i = 0; i < sizeof(route_vars) / sizeof(route_vars[0]); i++)
		if (strlen(route_vars[i].name) == len && memcmp(route_vars[i].name, name, len) == 0) {
			*type = route_vars[i].type;
			*field = name;
			*flen = len;
			return true;
		}
	if (len > ROUTE_FIELDS_PREFIX_LEN &&
	    memcmp(name, ROUTE_FIELDS_PREFIX, ROUTE_FIELDS_PREFIX_LEN) == 0) {
		*type = ROUTE_FIELD;
		*field = name + ROUTE_FIELDS_PREFIX_LEN;
		*flen = len - ROUTE_FIELDS_PREFIX_LEN;
		return true;
	}
	return false;
}

/*
 * One pass over tmpl: with ops NULL it only checks and counts, otherwise it
 * fills ops (pointing into text, a copy of tmpl). The words of the errors
 * are relay_config_check_template's (which calls this), so --check and the
 * relay agree.
 */
static int
route_parse(const char *tmpl, const char *text, struct route_op *ops, size_t *nops,
    char *why, size_t whylen)
{
	const char *p = tmpl, *dollar;
	size_t n = 0;

	while ((dollar = strchr(p, '$')) != NULL) {
		const char *name = dollar + 2, *end, *dash, *field;
		enum route_op_type type;
		size_t len, flen;

		if (dollar > p) {
			if (ops != NULL)
				ops[n] = (struct route_op){ ROUTE_LITERAL, text + (p - tmpl),
				    (size_t)(dollar - p), NULL, 0 };
			n++;
		}
		if (dollar[1] != '{') {
			snprintf(why, whylen, "'$' must start a variable such as ${stream}");
			return -EINVAL;
		}
		if ((end = strchr(name, '}')) == NULL) {
			snprintf(why, whylen, "'%s' is not closed with '}'", dollar);
			return -EINVAL;
		}
		/* ${NAME:-DEFAULT}: the default runs to the '}'. */
		dash = memchr(name, ':', (size_t)(end - name));
		if (dash != NULL && dash[1] != '-')
			dash = NULL;
		len = (size_t)((dash != NULL ? dash : end) - name);
		if (!route_variable(name, len, &type, &field, &flen)) {
			snprintf(why, whylen, "unknown variable ${%.*s}: use ${stream}, ${host}, "
			    "${agent}, ${source} or ${fields.NAME} (each may end in :-DEFAULT)",
			    (int)len, name);
			return -EINVAL;
		}
		if (ops != NULL) {
			ops[n] = (struct route_op){ type, text + (field - tmpl), flen, NULL, 0 };
			if (dash != NULL) {
				ops[n].def = text + (dash + 2 - tmpl);
				ops[n].deflen = (size_t)(end - (dash + 2));
			}
		}
		n++;
		p = end + 1;
	}
	if (*p != '\0') {
		if (ops != NULL)
			ops[n] = (struct route_op){ ROUTE_LITERAL, text + (p - tmpl), strlen(p), NULL, 0 };
		n++;
	}
	*nops = n;
	return 0;
}

int
route_check(const char *tmpl, char *why, size_t whylen)
{
	size_t n;

	return route_parse(tmpl, tmpl, NULL, &n, why, whylen);
}

int
route_compile(const char *tmpl, enum route_kind kind, struct route **out,
    char *why, size_t whylen)
{
	size_t nops, tlen = strlen(tmpl);
	struct route *rt;
	char *text;
	int r;

	if ((r = route_parse(tmpl, NULL, NULL, &nops, why, whylen)) != 0)
		return r;
	if ((rt = malloc(sizeof(*rt) + nops * sizeof(rt->ops[0]) + tlen + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rt->kind = kind;
	rt->ops = (struct route_op *)(rt + 1);
	text = (char *)(rt->ops + nops);
	memcpy(text, tmpl, tlen + 1);
	if ((r = route_parse(text, text, rt->ops, &rt->nops, why, whylen)) != 0) {
		free(rt);
		return r;
	}
	rt->fields = false;
	for (size_t i = 0; i < rt->nops; i++)
		rt->fields |= rt->ops[i].type == ROUTE_FIELD;
	*out = rt;
	return 0;
}

void
route_free(struct route *rt)
{
	free(rt);
}

bool
route_is_empty(const struct route *rt)
{
	return rt->nops == 0;
}

bool
route_uses_fields(const struct route *rt)
{
	return rt->fields;
}

/* ---------------------------------------------------------------- render */

/* The caller's buffer being filled; over is set when something did not fit. */
struct route_out {
	char *p;
	size_t n, limit;
	bool over;
};

/* Inline, its copy too (jsonw_copy): every event renders a topic and a key of a few short pieces. */
static inline __attribute__((always_inline)) void
route_put(struct route_out *o, const void *data, size_t len)
{
	size_t room = o->limit - o->n;

	if (len > room) {
		o->over = true;
		len = room;
	}
	jsonw_copy((uint8_t *)o->p + o->n, data, len);
	o->n += len;
}

static void
route_put_slice(struct route_out *o, const struct pbslice *s)
{
	route_put(o, s->ptr, s->len);
}

/* The shortest of %.15g..%.17g that reads back as v (as jsonw_double). */
static void
route_put_number(struct route_out *o, double v)
{
	char t[40];
	int n = 0;

	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(t, sizeof(t), "%.*g", prec, v);
		if (v != v || strtod(t, NULL) == v)
			break;
	}
	route_put(o, t, (size_t)n);
}

/* ev's first field named name (len bytes), or NULL. */
static const struct event_field *
route_find_field(const struct event *ev, const char *name, size_t len)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].key.len == len && memcmp(ev->fields[i].key.ptr, name, len) == 0)
			return &ev->fields[i];
	return NULL;
}

/* Puts the field as text; false when it has none (missing, null, a bad slice). */
static bool
route_put_field(struct route_out *o, const struct event *ev, const char *name, size_t len)
{
	const struct event_field *f = route_find_field(ev, name, len);
	struct pbslice s;
	char t[24];
	int n;

	if (f == NULL)
		return false;
	switch (f->type) {
	case EVENT_TEXT:
	case EVENT_SLICE:
		/* A slice outside the message is the agent's bug: nothing, as for null. */
		if (event_field_string(ev, f, &s) != 0)
			return false;
		route_put_slice(o, &s);
		return true;
	case EVENT_INTEGER:
		n = snprintf(t, sizeof(t), "%" PRId64, f->v.integer);
		route_put(o, t, (size_t)n);
		return true;
	case EVENT_NUMBER:
		route_put_number(o, f->v.number);
		return true;
	case EVENT_BOOLEAN:
		route_put(o, f->v.boolean ? "true" : "false", f->v.boolean ? 4 : 5);
		return true;
	case EVENT_JSON:
		route_put_slice(o, &f->v.json);
		return true;
	case EVENT_NULL:
		break;
	}
	return false;
}

/* Puts variable op of ev; false when it has no value (a missing field: not even ""). */
static inline __attribute__((always_inline)) bool
route_put_var(struct route_out *o, const struct event *ev, const char *agent,
    enum route_op_type type, const char *name, size_t len)
{
	switch (type) {
	case ROUTE_STREAM: route_put_slice(o, &ev->stream); return true;
	case ROUTE_HOST: route_put_slice(o, &ev->host); return true;
	case ROUTE_SOURCE: route_put_slice(o, &ev->source); return true;
	case ROUTE_AGENT:
		if (agent != NULL)
			route_put(o, agent, strlen(agent));
		return true;
	case ROUTE_FIELD: return route_put_field(o, ev, name, len);
	case ROUTE_LITERAL: break;
	}
	return false;
}

int
route_render(const struct route *rt, const struct event *ev, const char *agent,
    char *buf, size_t size, size_t *len)
{
	struct route_out o = { .p = buf, .limit = size - 1 };

	for (size_t i = 0; i < rt->nops; i++) {
		const struct route_op *op = &rt->ops[i];
		size_t before = o.n;

		if (op->type == ROUTE_LITERAL) {
			route_put(&o, op->text, op->len);
			continue;
		}
		(void)route_put_var(&o, ev, agent, op->type, op->text, op->len);
		if (o.n == before && op->def != NULL)
			route_put(&o, op->def, op->deflen);
	}
	buf[o.n] = '\0';
	*len = o.n;
	return o.over ? -ENOBUFS : 0;
}

/* The bytes Kafka takes in a topic, [A-Za-z0-9._-]: one load each, as every event's topic is checked. */
static const bool route_topic_byte[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['.'] = true, ['_'] = true, ['-'] = true,
};

void
route_topic_show(const char *topic, size_t len, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)topic[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (n + 1 >= outlen)
				break;
			out[n++] = (char)c;
		} else {
			if (n + 4 >= outlen)
				break;
			n += (size_t)snprintf(out + n, outlen - n, "\\x%02x", c);
		}
	}
	out[n] = '\0';
}

int
route_topic_check(const char *topic, size_t len, char *why, size_t whylen)
{
	const char *what = NULL;
	char shown[96];

	if (len == 0) {
		snprintf(why, whylen, "topic is empty");
		return -EINVAL;
	}
	if (len > ROUTE_TOPIC_MAX) {
		snprintf(why, whylen, "topic of %d bytes or more is longer than Kafka's %d",
		    ROUTE_TOPIC_MAX + 1, ROUTE_TOPIC_MAX);
		return -EINVAL;
	}
	if ((len == 1 && topic[0] == '.') || (len == 2 && topic[0] == '.' && topic[1] == '.'))
		what = "is not a valid name";
	for (size_t i = 0; what == NULL && i < len; i++)
		if (!route_topic_byte[(unsigned char)topic[i]])
			what = "has a byte outside [A-Za-z0-9._-]";
	if (what == NULL)
		return 0;
	/* Shown only now: the check runs for every event, the message rarely. */
	route_topic_show(topic, len, shown, sizeof(shown));
	snprintf(why, whylen, "topic '%s' %s", shown, what);
	return -EINVAL;
}

/* ------------------------------------------------------------ route tables */

/* One condition of a match: a variable and its glob, or a field that must be absent. */
struct route_cond {
	enum route_op_type type;
	const char *name;        /* FIELD: the field's name */
	size_t len;
	const char *glob;        /* NULL: the field must be absent */
};

struct route_rule {
	size_t nconds;
	struct route_cond *conds;
	struct route *topic, *key;
};

struct route_allow {
	const char *agents;
	size_t ntopics;
	char **topics;
};

struct route_table {
	size_t nrules;           /* kafka.routes, then the default */
	struct route_rule *rules;
	size_t nallow;
	struct route_allow *allow;
	const char *dead_letter; /* NULL: none */
	/* Every string the table points to, copied: the configuration may go first. */
	char **strings;
	size_t nstrings;
};

/* A copy of s kept by t, or NULL (out of memory). */
static char *
route_table_keep(struct route_table *t, const char *s)
{
	char *c = strdup(s);

	if (c != NULL)
		t->strings[t->nstrings++] = c;
	return c;
}

void
route_table_free(struct route_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrules; i++) {
		route_free(t->rules[i].topic);
		route_free(t->rules[i].key);
		free(t->rules[i].conds);
	}
	free(t->rules);
	for (size_t i = 0; i < t->nallow; i++)
		free(t->allow[i].topics);
	free(t->allow);
	for (size_t i = 0; i < t->nstrings; i++)
		free(t->strings[i]);
	free(t->strings);
	free(t);
}

/* Compiles a rule's templates; path and why name what is wrong. */
static int
route_table_templates(struct route_rule *rule, const char *topic, const char *key,
    const char *prefix, char *path, size_t pathlen, char *why, size_t whylen)
{
	int r;

	if ((r = route_compile(topic, ROUTE_TOPIC, &rule->topic, why, whylen)) != 0) {
		snprintf(path, pathlen, "%stopic", prefix);
		return r;
	}
	if ((r = route_compile(key, ROUTE_KEY, &rule->key, why, whylen)) != 0) {
		snprintf(path, pathlen, "%skey", prefix);
		return r;
	}
	return 0;
}

static int
route_table_rule(struct route_table *t, struct route_rule *rule, const struct relay_route *rr,
    const char *def_key, size_t index, char *path, size_t pathlen, char *why, size_t whylen)
{
	const char *const *absent = rr->absent.items;
	char prefix[48];
	size_t n = 0;

	snprintf(prefix, sizeof(prefix), "kafka.routes[%zu].", index);
	if ((rule->conds = calloc(rr->match.n + rr->absent.n + 1, sizeof(*rule->conds))) == NULL)
		goto nomem;
	for (size_t i = 0; i < rr->match.n; i++, n++) {
		const struct config_map_entry *e = &rr->match.items[i];
		struct route_cond *c = &rule->conds[n];
		const char *kept;

		if (!route_variable(e->key, strlen(e->key), &c->type, &c->name, &c->len)) {
			snprintf(path, pathlen, "%smatch.%s", prefix, e->key);
			snprintf(why, whylen, "unknown variable %s: use stream, host, agent, source "
			    "or fields.NAME", e->key);
			return -EINVAL;
		}
		if ((kept = route_table_keep(t, e->key)) == NULL ||
		    (c->glob = route_table_keep(t, e->value)) == NULL)
			goto nomem;
		c->name = kept + (c->name - e->key);
	}
	for (size_t i = 0; i < rr->absent.n; i++, n++) {
		struct route_cond *c = &rule->conds[n];
		const char *kept;

		if (!route_variable(absent[i], strlen(absent[i]), &c->type, &c->name, &c->len) ||
		    c->type != ROUTE_FIELD) {
			snprintf(path, pathlen, "%sabsent", prefix);
			snprintf(why, whylen, "'%s' is not a field: absent takes fields.NAME", absent[i]);
			return -EINVAL;
		}
		if ((kept = route_table_keep(t, absent[i])) == NULL)
			goto nomem;
		c->name = kept + (c->name - absent[i]);
	}
	rule->nconds = n;
	return route_table_templates(rule, rr->topic, rr->key != NULL ? rr->key : def_key, prefix,
	    path, pathlen, why, whylen);
nomem:
	snprintf(path, pathlen, "kafka.routes");
	snprintf(why, whylen, "out of memory");
	return -ENOMEM;
}

int
route_table_new(const struct relay_config *cfg, struct route_table **out,
    char *path, size_t pathlen, char *why, size_t whylen)
{
	const struct relay_route *routes = cfg->kafka.routes.items;
	const struct relay_allowed_topics *allow = cfg->kafka.allowed_topics.items;
	struct route_table *t;
	size_t nstrings = 1;
	int r = -ENOMEM;

	*out = NULL;
	if (cfg->kafka.routes.n > ROUTE_TABLE_MAX) {
		snprintf(path, pathlen, "kafka.routes");
		snprintf(why, whylen, "has %zu routes, more than %d: each event is matched against "
		    "them in order; route on fewer, broader globs", cfg->kafka.routes.n,
		    ROUTE_TABLE_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->kafka.routes.n; i++)
		nstrings += 2 * routes[i].match.n + routes[i].absent.n;
	for (size_t i = 0; i < cfg->kafka.allowed_topics.n; i++)
		nstrings += 1 + allow[i].topics.n;
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->strings = calloc(nstrings, sizeof(*t->strings))) == NULL ||
	    (t->rules = calloc(cfg->kafka.routes.n + 1, sizeof(*t->rules))) == NULL ||
	    (t->allow = calloc(cfg->kafka.allowed_topics.n + 1, sizeof(*t->allow))) == NULL)
		goto fail;
	for (size_t i = 0; i < cfg->kafka.routes.n; i++) {
		t->nrules++;
		if ((r = route_table_rule(t, &t->rules[i], &routes[i], cfg->kafka.key, i, path,
		    pathlen, why, whylen)) != 0)
			goto out;
	}
	t->nrules++;
	if ((r = route_table_templates(&t->rules[t->nrules - 1], cfg->kafka.topic, cfg->kafka.key,
	    "kafka.", path, pathlen, why, whylen)) != 0)
		goto out;
	r = -ENOMEM;
	for (size_t i = 0; i < cfg->kafka.allowed_topics.n; i++) {
		struct route_allow *a = &t->allow[t->nallow++];
		const char *const *topics = allow[i].topics.items;

		if ((a->agents = route_table_keep(t, allow[i].agents != NULL ?
		    allow[i].agents : "*")) == NULL ||
		    (a->topics = calloc(allow[i].topics.n + 1, sizeof(*a->topics))) == NULL)
			goto fail;
		for (size_t j = 0; j < allow[i].topics.n; j++, a->ntopics++)
			if ((a->topics[j] = route_table_keep(t, topics[j])) == NULL)
				goto fail;
	}
	if (cfg->kafka.dead_letter_topic != NULL &&
	    (t->dead_letter = route_table_keep(t, cfg->kafka.dead_letter_topic)) == NULL)
		goto fail;
	*out = t;
	return 0;
fail:
	snprintf(path, pathlen, "kafka");
	snprintf(why, whylen, "out of memory");
out:
	route_table_free(t);
	return r;
}

/* Whether cond holds for ev: the variable's text matches the glob, or the field is absent. */
static bool
route_cond_holds(const struct route_cond *c, const struct event *ev, const char *agent)
{
	/* Longer values are matched on their first bytes: a glob is for routing, not parsing. */
	char v[512];
	struct route_out o = { .p = v, .limit = sizeof(v) - 1 };
	bool present;

	if (c->glob == NULL) {
		const struct event_field *f = route_find_field(ev, c->name, c->len);
		struct pbslice s;

		return f == NULL || f->type == EVENT_NULL ||
		    ((f->type == EVENT_SLICE) && event_field_string(ev, f, &s) != 0);
	}
	present = route_put_var(&o, ev, agent, c->type, c->name, c->len);
	if (!present)
		return false;
	/* A NUL byte inside the value ends it for fnmatch. */
	v[o.n] = '\0';
	return fnmatch(c->glob, v, 0) == 0;
}

void
route_table_pick(const struct route_table *t, const struct event *ev, const char *agent,
    const struct route **topic, const struct route **key, size_t *index)
{
	size_t i;

	for (i = 0; i + 1 < t->nrules; i++) {
		const struct route_rule *rule = &t->rules[i];
		size_t j;

		for (j = 0; j < rule->nconds; j++)
			if (!route_cond_holds(&rule->conds[j], ev, agent))
				break;
		if (j == rule->nconds)
			break;
	}
	*topic = t->rules[i].topic;
	*key = t->rules[i].key;
	*index = i;
}

size_t
route_table_routes(const struct route_table *t)
{
	return t->nrules - 1;
}

bool
route_table_uses_fields(const struct route_table *t)
{
	for (size_t i = 0; i < t->nrules; i++)
		if (route_uses_fields(t->rules[i].topic))
			return true;
	return false;
}

bool
route_table_restricted(const struct route_table *t)
{
	return t->nallow > 0;
}

bool
route_table_allowed(const struct route_table *t, const char *agent, const char *topic)
{
	if (t->nallow == 0 || (t->dead_letter != NULL && strcmp(topic, t->dead_letter) == 0))
		return true;
	if (agent == NULL)
		agent = "";
	for (size_t i = 0; i < t->nallow; i++) {
		const struct route_allow *a = &t->allow[i];

		if (fnmatch(a->agents, agent, 0) != 0)
			continue;
		for (size_t j = 0; j < a->ntopics; j++)
			if (fnmatch(a->topics[j], topic, 0) == 0)
				return true;
	}
	return false;
}
