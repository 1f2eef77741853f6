/* SPDX-License-Identifier: Apache-2.0 */
/* multiline: lines gathered into events (see multiline.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/multiline.h"

/* A buffer grown past this for a long event is given back once it is shipped. */
#define MULTILINE_KEEP (64 * 1024)

int
multiline_rule_init(struct multiline_rule *r, const char *start, const char *continuation,
    char *err, size_t errlen)
{
	const char *pat = start != NULL ? start : continuation;
	int rc;

	if ((start == NULL) == (continuation == NULL)) {
		snprintf(err, errlen, "needs exactly one of start or continuation (a regex)");
		return -EINVAL;
	}
	if ((rc = regcomp(&r->re, pat, REG_EXTENDED | REG_NOSUB)) != 0) {
		char why[128];

		regerror(rc, &r->re, why, sizeof(why));
		snprintf(err, errlen, "'%s' is not a POSIX extended regex: %s", pat, why);
		return -EINVAL;
	}
	r->start = start != NULL;
	r->line = NULL;
	r->line_cap = 0;
	return 0;
}

void
multiline_rule_free(struct multiline_rule *r)
{
	regfree(&r->re);
	free(r->line);
	r->line = NULL;
	r->line_cap = 0;
}

void
multiline_init(struct multiline *m, struct multiline_rule *rule, size_t max_bytes)
{
	memset(m, 0, sizeof(*m));
	m->rule = rule;
	m->max_bytes = max_bytes;
}

void
multiline_free(struct multiline *m)
{
	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
	m->lines = 0;
}

bool
multiline_pending(const struct multiline *m)
{
	return m->lines > 0;
}

/* line[0, len) copied with a NUL after it (see struct multiline_rule), or line itself without memory. */
static const char *
multiline_terminated(struct multiline_rule *r, const uint8_t *line, size_t len)
{
	if (len >= r->line_cap) {
		size_t cap = r->line_cap > 0 ? r->line_cap : 256;
		char *p;

		while (cap <= len)
			cap *= 2;
		/* glibc's regexec honours REG_STARTEND: only a sanitizer build needs the copy. */
		if ((p = realloc(r->line, cap)) == NULL)
			return (const char *)line;
		r->line = p;
		r->line_cap = cap;
	}
	if (len > 0)
		memcpy(r->line, line, len);
	r->line[len] = '\0';
	return r->line;
}

bool
multiline_continues(const struct multiline *m, const uint8_t *line, size_t len)
{
	/* REG_STARTEND: lines may hold NUL bytes. */
	regmatch_t span = { .rm_so = 0, .rm_eo = (regoff_t)len };
	bool match;

	if (!multiline_pending(m))
		return false;
	match = regexec(&m->rule->re, multiline_terminated(m->rule, line, len), 1, &span,
	    REG_STARTEND) == 0;
	return m->rule->start ? !match : match;
}

/* The capacity that holds need bytes: doubled from 256, at most max_bytes. */
static size_t
multiline_cap_for(const struct multiline *m, size_t need)
{
	size_t cap = m->cap > 0 ? m->cap : 256;

	if (need <= m->cap)
		return m->cap;
	while (cap < need)
		cap *= 2;
	return cap > m->max_bytes ? m->max_bytes : cap;
}

/* The bytes multiline_add keeps of a line of len bytes, with its separator. */
static size_t
multiline_kept(const struct multiline *m, size_t *len, size_t *sep, bool *cut)
{
	size_t room;

	*sep = m->lines > 0 ? 1 : 0;
	*cut = false;
	if (m->truncated) {
		*len = 0;
		*sep = 0;
		return 0;
	}
	room = m->max_bytes - m->len;
	if (*sep + *len > room) {
		*cut = true;
		*sep = *sep > room ? room : *sep;
		*len = room - *sep;
	}
	return *sep + *len;
}

size_t
multiline_cap_after(const struct multiline *m, size_t len)
{
	size_t sep;
	bool cut;

	/* A trailing "\r" multiline_add leaves out: the bound holds it all the same. */
	return multiline_cap_for(m, m->len + multiline_kept(m, &len, &sep, &cut));
}

void
multiline_count(struct multiline_stats *st, const struct multiline *m, bool by_timeout)
{
	st->events += m->lines > 1;
	st->flushed += by_timeout;
	st->truncated += m->truncated;
}

static int
multiline_reserve(struct multiline *m, size_t need)
{
	size_t cap = multiline_cap_for(m, need);
	uint8_t *p;

	if (cap <= m->cap)
		return 0;
	if ((p = realloc(m->buf, cap)) == NULL)
		return -ENOMEM;
	m->buf = p;
	m->cap = cap;
	return 0;
}

int
multiline_add(struct multiline *m, const uint8_t *line, size_t len, bool partial,
    uint64_t now_ns, uint64_t end)
{
	size_t sep;
	bool cut;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (multiline_kept(m, &len, &sep, &cut) > 0 && multiline_reserve(m, m->len + sep + len) != 0)
		return -ENOMEM;
	if (sep > 0)
		m->buf[m->len++] = '\n';
	if (len > 0)
		memcpy(m->buf + m->len, line, len);
	m->len += len;
	m->truncated |= cut;
	if (m->lines++ == 0)
		m->first_ns = now_ns;
	m->last_ns = now_ns;
	m->partial = partial;
	m->end = end;
	return 0;
}

bool
multiline_due(const struct multiline *m, uint64_t now_ns, uint64_t timeout_ns)
{
	return multiline_pending(m) && now_ns - m->last_ns >= timeout_ns;
}

void
multiline_clear(struct multiline *m)
{
	if (m->cap > MULTILINE_KEEP) {
		free(m->buf);
		m->buf = NULL;
		m->cap = 0;
	}
	m->len = 0;
	m->lines = 0;
	m->truncated = false;
	m->partial = false;
}
