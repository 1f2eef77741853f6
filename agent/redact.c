/* SPDX-License-Identifier: Apache-2.0 */
/* redact: PII taken out of events before the spool (see redact.h). */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "agent/redact.h"
#include "common/log.h"

const char *const redact_method_names[] = {
	[REDACT_HASH] = "hash",
	[REDACT_MASK_IP] = "mask_ip",
	[REDACT_DROP] = "drop",
	[REDACT_REGEX] = "regex",
	NULL,
};

#define REDACT_NMETHODS (sizeof(redact_method_names) / sizeof(redact_method_names[0]) - 1)

int
redact_method_parse(const char *name, enum redact_method *m)
{
	for (size_t i = 0; i < REDACT_NMETHODS; i++) {
		if (strcmp(name, redact_method_names[i]) == 0) {
			*m = (enum redact_method)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
redact_method_name(enum redact_method m)
{
	return (size_t)m < REDACT_NMETHODS ? redact_method_names[m] : "?";
}

/* What to do about a key file that cannot be opened, for the usual reasons. */
static const char *
redact_key_advice(int e)
{
	if (e == ENOENT)
		return ": make one with openssl rand -hex 32, mode 0640, owner root:_logferry";
	if (e == EACCES)
		return ": the agent's user must read it: mode 0640, owner root:_logferry";
	return "";
}

/*
 * Reads path's key into key (REDACT_KEY_MAX + 1 bytes, wiped by the
 * caller). O_NONBLOCK so that a FIFO named by mistake is refused instead of
 * hanging the configuration load.
 */
static int
redact_read_key(struct redact *r, const char *path, uint8_t *key, size_t *keylen,
    char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	ssize_t got;
	int fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0) {
		e = errno;
		snprintf(err, errlen, "key_file %s: %s%s", path, strerror(e), redact_key_advice(e));
		return -e;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "key_file %s: not a regular file: name the file that holds "
		    "the HMAC key", path);
		return -EINVAL;
	}
	do {
		got = read(fd, key + n, REDACT_KEY_MAX + 1 - n);
		if (got > 0)
			n += (size_t)got;
	} while ((got > 0 || (got < 0 && errno == EINTR)) && n < REDACT_KEY_MAX + 1);
	e = got < 0 ? errno : 0;
	close(fd);
	if (e != 0) {
		snprintf(err, errlen, "key_file %s: cannot read it: %s", path, strerror(e));
		return -e;
	}
	if (n > REDACT_KEY_MAX) {
		snprintf(err, errlen, "key_file %s is larger than %d bytes: the file holds the "
		    "HMAC key alone", path, REDACT_KEY_MAX);
		return -EINVAL;
	}
	/* An editor's or echo's newline is not part of the key (as for {file:} secrets). */
	if (n > 0 && key[n - 1] == '\n')
		n--;
	if (n < REDACT_KEY_MIN) {
		snprintf(err, errlen, "key_file %s holds %zu bytes, fewer than %d: a short key can "
		    "be guessed; write a new one with openssl rand -hex 32", path, n, REDACT_KEY_MIN);
		return -EINVAL;
	}
	r->key_exposed = (st.st_mode & S_IROTH) != 0;
	*keylen = n;
	return 0;
}

#define REDACT_BLOCK 64             /* SHA-256's block */

/* HMAC-SHA256's keyed states (RFC 2104) into r->inner and r->outer. */
static int
redact_hmac_setup(struct redact *r, const uint8_t *key, size_t keylen)
{
	const mbedtls_md_info_t *sha = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	uint8_t k[REDACT_BLOCK] = { 0 }, pad[REDACT_BLOCK];
	int rc = -ENOMEM;

	mbedtls_md_init(&r->inner);
	mbedtls_md_init(&r->outer);
	mbedtls_md_init(&r->work);
	r->hmac_set = true;
	if (mbedtls_md_setup(&r->inner, sha, 0) != 0 || mbedtls_md_setup(&r->outer, sha, 0) != 0 ||
	    mbedtls_md_setup(&r->work, sha, 0) != 0)
		goto out;
	/* A key longer than a block is its hash. */
	if (keylen > REDACT_BLOCK) {
		if (mbedtls_md(sha, key, keylen, k) != 0)
			goto out;
	} else {
		memcpy(k, key, keylen);
	}
	for (size_t i = 0; i < REDACT_BLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	if (mbedtls_md_starts(&r->inner) != 0 || mbedtls_md_update(&r->inner, pad, REDACT_BLOCK) != 0)
		goto out;
	for (size_t i = 0; i < REDACT_BLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	if (mbedtls_md_starts(&r->outer) != 0 || mbedtls_md_update(&r->outer, pad, REDACT_BLOCK) != 0)
		goto out;
	rc = 0;
out:
	mbedtls_platform_zeroize(k, sizeof(k));
	mbedtls_platform_zeroize(pad, sizeof(pad));
	return rc;
}

/* mac = HMAC-SHA256 of in[0, len) under r's key. Returns 0 or -EIO. */
static int
redact_mac(struct redact *r, const uint8_t *in, size_t len, uint8_t mac[32])
{
	uint8_t ih[32];

	if (!r->hmac_set || mbedtls_md_clone(&r->work, &r->inner) != 0 ||
	    (len > 0 && mbedtls_md_update(&r->work, in, len) != 0) ||
	    mbedtls_md_finish(&r->work, ih) != 0 || mbedtls_md_clone(&r->work, &r->outer) != 0 ||
	    mbedtls_md_update(&r->work, ih, sizeof(ih)) != 0 || mbedtls_md_finish(&r->work, mac) != 0)
		return -EIO;
	return 0;
}

static int
redact_init_hash(struct redact *r, const char *path, char *err, size_t errlen)
{
	uint8_t key[REDACT_KEY_MAX + 1];
	size_t keylen = 0;
	int rc;

	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "method hash needs key_file, the file of its HMAC key");
		return -EINVAL;
	}
	/* Relative, --check run in /etc/logferry and the daemon in / would read different files. */
	if (path[0] != '/') {
		snprintf(err, errlen, "key_file '%s' is not an absolute path", path);
		return -EINVAL;
	}
	if ((rc = redact_read_key(r, path, key, &keylen, err, errlen)) != 0)
		goto out;
	/* Only the states after the pads stay in memory; the key itself is wiped below. */
	if (redact_hmac_setup(r, key, keylen) != 0 || redact_mac(r, NULL, 0, r->key_id) != 0) {
		snprintf(err, errlen, "key_file %s: cannot set up HMAC-SHA256 (out of memory?)",
		    path);
		rc = -ENOMEM;
	}
out:
	mbedtls_platform_zeroize(key, sizeof(key));
	return rc;
}

static int
redact_init_regex(struct redact *r, const struct redact_options *o, char *err, size_t errlen)
{
	const char *rep = o->replacement != NULL ? o->replacement : REDACT_DEFAULT_REPLACEMENT;
	int rc;

	if (o->pattern == NULL) {
		snprintf(err, errlen, "method regex needs pattern, a POSIX extended regex");
		return -EINVAL;
	}
	if ((rc = regcomp(&r->re, o->pattern, REG_EXTENDED)) != 0) {
		char why[128];

		regerror(rc, &r->re, why, sizeof(why));
		snprintf(err, errlen, "'%s' is not a POSIX extended regex: %s", o->pattern, why);
		return -EINVAL;
	}
	r->re_set = true;
	if ((r->replacement = strdup(rep)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->replacement_len = strlen(rep);
	return 0;
}

int
redact_init(struct redact *r, const struct redact_options *o, char *err, size_t errlen)
{
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->method = o->method;
	switch (o->method) {
	case REDACT_HASH:
		rc = redact_init_hash(r, o->key_file, err, errlen);
		break;
	case REDACT_REGEX:
		rc = redact_init_regex(r, o, err, errlen);
		break;
	case REDACT_MASK_IP:
	case REDACT_DROP:
		break;
	default:
		snprintf(err, errlen, "unknown redact method %d", (int)o->method);
		rc = -EINVAL;
	}
	if (rc != 0)
		redact_free(r);
	return rc;
}

void
redact_free(struct redact *r)
{
	/* mbedtls_md_free wipes the keyed states. */
	if (r->hmac_set) {
		mbedtls_md_free(&r->inner);
		mbedtls_md_free(&r->outer);
		mbedtls_md_free(&r->work);
	}
	r->hmac_set = false;
	if (r->re_set)
		regfree(&r->re);
	r->re_set = false;
	free(r->replacement);
	r->replacement = NULL;
}

int
redact_hash(struct redact *r, const uint8_t *in, size_t len, char out[REDACT_HASH_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mac[32];

	out[0] = '\0';
	if (redact_mac(r, in, len, mac) != 0)
		return -EIO;
	for (size_t i = 0; i < sizeof(mac); i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 0xf];
	}
	out[REDACT_HASH_LEN] = '\0';
	return 0;
}

int
redact_mask_ip(const uint8_t *in, size_t len, char out[REDACT_IP_MAX])
{
	char text[REDACT_IP_MAX];
	uint8_t a[16];
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	out[0] = '\0';
	/* inet_pton reads a C string: the value must be all of it. */
	if (len == 0 || len >= sizeof(text) || memchr(in, '\0', len) != NULL)
		return -EINVAL;
	memcpy(text, in, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, a) == 1) {
		a[3] = 0;
		return inet_ntop(AF_INET, a, out, REDACT_IP_MAX) != NULL ? 0 : -EINVAL;
	}
	if (inet_pton(AF_INET6, text, a) != 1)
		return -EINVAL;
	if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0)
		a[15] = 0;
	else
		memset(a + 6, 0, 10);
	return inet_ntop(AF_INET6, a, out, REDACT_IP_MAX) != NULL ? 0 : -EINVAL;
}

/* Appends p[0, n) at *o if it fits under cap; without out, only counts. */
static bool
redact_put(uint8_t *out, size_t cap, size_t *o, const void *p, size_t n)
{
	if (out == NULL || n == 0) {
		*o += n;
		return true;
	}
	if (n > cap - *o)
		return false;
	memcpy(out + *o, p, n);
	*o += n;
	return true;
}

int
redact_regex(const struct redact *r, const uint8_t *in, size_t len, uint8_t *out,
    size_t cap, size_t *outlen, size_t *matches)
{
	static const char mark[] = REDACT_FAILED_MARK;
	size_t pos = 0, o = 0, n = 0;

	*matches = 0;
	*outlen = 0;
	/* An empty value (an event may have no message at all: NULL) has nothing to hide. */
	if (len == 0)
		return 0;
	while (pos < len) {
		/* REG_STARTEND: values are not NUL-terminated and may hold NUL bytes. */
		regmatch_t m = { .rm_so = (regoff_t)pos, .rm_eo = (regoff_t)len };
		size_t so, eo;
		int rc;

		if (!r->re_set)
			goto fail;
		rc = regexec(&r->re, (const char *)in, 1, &m, REG_STARTEND | (pos > 0 ? REG_NOTBOL : 0));
		if (rc == REG_NOMATCH)
			break;
		/* Out of memory in the matcher: what it did not search may hold a match. */
		if (rc != 0)
			goto fail;
		so = (size_t)m.rm_so;
		eo = (size_t)m.rm_eo;
		if (eo == so) {
			/* An empty match hides nothing; step past one byte or it repeats forever. */
			if (so >= len)
				break;
			if (!redact_put(out, cap, &o, in + pos, so + 1 - pos))
				goto fail;
			pos = so + 1;
			continue;
		}
		if (!redact_put(out, cap, &o, in + pos, so - pos) ||
		    !redact_put(out, cap, &o, r->replacement, r->replacement_len))
			goto fail;
		n++;
		pos = eo;
	}
	if (!redact_put(out, cap, &o, in + pos, len - pos))
		goto fail;
	*outlen = o;
	*matches = n;
	return 0;
fail:
	if (out == NULL) {
		*outlen = 0;
		*matches = n;
		return -EIO;
	}
	/* Nothing of in stays behind the marker, not even in memory. */
	memset(out, 0, o);
	*outlen = sizeof(mark) - 1 < cap ? sizeof(mark) - 1 : cap;
	memcpy(out, mark, *outlen);
	*matches = n;
	return -EMSGSIZE;
}

/* The text a value is redacted as, into tmp for an integer. */
static int
redact_value_text(const struct event *ev, const struct event_field *f, char *tmp, size_t tmplen,
    struct pbslice *s)
{
	switch (f->type) {
	case EVENT_TEXT:
	case EVENT_SLICE:
		return event_field_string(ev, f, s);
	case EVENT_INTEGER:
		s->len = (size_t)snprintf(tmp, tmplen, "%" PRId64, f->v.integer);
		s->ptr = (const uint8_t *)tmp;
		return 0;
	case EVENT_JSON:
		*s = f->v.json;
		return 0;
	default:
		return -EINVAL;
	}
}

static enum redact_action
redact_set(const struct event_field *f, const uint8_t *out, size_t len, struct event_field *res)
{
	res->key = f->key;
	res->type = EVENT_TEXT;
	res->v.text.ptr = out;
	res->v.text.len = len;
	return REDACT_SET;
}

enum redact_action
redact_field(struct redact *r, const struct event *ev, const struct event_field *f,
    uint8_t *out, size_t cap, struct event_field *res, bool *failed)
{
	char tmp[24], text[REDACT_HASH_LEN + 1];
	struct pbslice s;
	size_t len;

	*failed = false;
	if (r->method == REDACT_DROP)
		return REDACT_REMOVE;
	if (f->type == EVENT_NULL)
		return REDACT_KEEP;
	/* A regex rewrites with redact_regex, into room only its caller can size. */
	if (r->method == REDACT_REGEX)
		return REDACT_KEEP;
	if (redact_value_text(ev, f, tmp, sizeof(tmp), &s) != 0)
		goto fail;
	if (r->method == REDACT_HASH) {
		if (cap < REDACT_HASH_LEN || redact_hash(r, s.ptr, s.len, text) != 0)
			goto fail;
		memcpy(out, text, REDACT_HASH_LEN);
		return redact_set(f, out, REDACT_HASH_LEN, res);
	}
	/* REDACT_MASK_IP: an address is text; an integer is no address we could tell. */
	if ((f->type != EVENT_TEXT && f->type != EVENT_SLICE) ||
	    redact_mask_ip(s.ptr, s.len, text) != 0 || strlen(text) > cap)
		goto fail;
	len = strlen(text);
	memcpy(out, text, len);
	return redact_set(f, out, len, res);
fail:
	*failed = true;
	return REDACT_REMOVE;
}

/* ------------------------------------------------------------ the processor */

struct redact_stage {
	struct redact rule;
	struct pbslice *names;       /* the fields it redacts, borrowed; none: the message (regex) */
	size_t nnames;
};

/* What the stage counts of the event in pe (processor_event.counts). */
static struct redact_stats *
redact_counts(struct processor_event *pe)
{
	return pe->counts;
}

static void
redact_stage_free(void *state)
{
	struct redact_stage *s = state;

	if (s == NULL)
		return;
	redact_free(&s->rule);
	free(s->names);
	free(s);
}

/* A name listed twice (its value would be redacted twice: a hash of the hash), or NULL. */
static const char *
redact_stage_twice(const struct config_list *fields)
{
	char *const *names = fields->items;

	for (size_t i = 0; i < fields->n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return names[i];
	return NULL;
}

/* The keys of cfg that its method does not use are mistakes: said, not ignored. */
static int
redact_stage_check(const struct agent_processor *cfg, char *err, size_t errlen)
{
	const char *method = redact_method_name((enum redact_method)cfg->method);
	const char *twice;

	if (cfg->field != NULL && cfg->fields.n > 0) {
		snprintf(err, errlen, "field and fields cannot both be set: one field, or a list");
		return -EINVAL;
	}
	if (cfg->method != REDACT_REGEX && cfg->field == NULL && cfg->fields.n == 0) {
		snprintf(err, errlen, "method %s needs field or fields: the fields to %s", method,
		    cfg->method == REDACT_DROP ? "remove" : "redact");
		return -EINVAL;
	}
	if ((twice = redact_stage_twice(&cfg->fields)) != NULL) {
		snprintf(err, errlen, "fields lists %s twice", twice);
		return -EINVAL;
	}
	if (cfg->key_file != NULL && cfg->method != REDACT_HASH) {
		snprintf(err, errlen, "key_file is for method hash (this one is %s)", method);
		return -EINVAL;
	}
	if ((cfg->pattern != NULL || cfg->replacement != NULL) && cfg->method != REDACT_REGEX) {
		snprintf(err, errlen, "%s is for method regex (this one is %s)",
		    cfg->pattern != NULL ? "pattern" : "replacement", method);
		return -EINVAL;
	}
	return 0;
}

static int
redact_stage_compile(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	struct redact_options o = { .method = (enum redact_method)cfg->method,
		.key_file = cfg->key_file, .pattern = cfg->pattern, .replacement = cfg->replacement };
	const char *const *names = (const char *const *)cfg->fields.items;
	size_t n = cfg->field != NULL ? 1 : cfg->fields.n;
	struct redact_stage *s;
	int r;

	(void)ctx;
	*out = NULL;
	if ((r = redact_stage_check(cfg, err, errlen)) != 0)
		return r;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->names = calloc(n > 0 ? n : 1, sizeof(*s->names))) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (; s->nnames < n; s->nnames++)
		s->names[s->nnames] = processor_slice(cfg->field != NULL ? cfg->field : names[s->nnames]);
	if ((r = redact_init(&s->rule, &o, err, errlen)) != 0) {
		free(s->names);
		free(s);
		return r;
	}
	if (s->rule.key_exposed)
		log_warn("redact: key_file %s is readable by every user, who could then check "
		    "guesses against the hashes: chmod o-r %s (mode 0640, owner root:_logferry)",
		    cfg->key_file, cfg->key_file);
	*out = s;
	return 0;
}

/*
 * Where a regex reads a value: a copy of in[0, len) with a NUL after it, at
 * the far end of the arena's free room (*room is what stays before it, for
 * the result). glibc's regexec stops at REG_STARTEND's end, but sanitizers'
 * interceptors of regexec read the string up to its NUL: past the value,
 * and past its buffer. The copy is scratch, never taken from the arena.
 * NULL when there is no room for it.
 */
static const uint8_t *
redact_stage_terminated(struct processor_event *pe, const uint8_t *in, size_t len,
    size_t *room)
{
	size_t left = pe->arena_cap - pe->arena_used;
	uint8_t *copy;

	if (len >= left)
		return NULL;
	copy = pe->arena + pe->arena_cap - len - 1;
	memcpy(copy, in, len);
	copy[len] = '\0';
	*room = left - len - 1;
	return copy;
}

/*
 * Rewrites in[0, len) with the regex at the arena's end, in one pass.
 * Returns 1 with *out and *outlen, taken from the arena, for a value with a
 * match; 0 for a value without one (nothing taken); -1 when the result does
 * not fit: *out is then REDACT_FAILED_MARK (static).
 */
static int
redact_stage_rewrite(struct redact_stage *s, struct processor_event *pe, const uint8_t *in,
    size_t len, const uint8_t **out, size_t *outlen)
{
	uint8_t *tail = pe->arena + pe->arena_used, *p = NULL;
	const uint8_t *copy;
	size_t room = 0, matches = 0;

	*out = (const uint8_t *)REDACT_FAILED_MARK;
	*outlen = sizeof(REDACT_FAILED_MARK) - 1;
	if (len == 0)
		return 0;
	/*
	 * Without room for the copy, the value itself is searched (glibc keeps
	 * to REG_STARTEND's end): a value past processor_buffer with nothing to
	 * hide goes as it is.
	 */
	copy = redact_stage_terminated(pe, in, len, &room);
	if (copy == NULL ||
	    redact_regex(&s->rule, copy, len, tail, room, outlen, &matches) != 0) {
		/* Only a value with a match has something to hide: measured on the rare path. */
		if (redact_regex(&s->rule, copy != NULL ? copy : in, len, NULL, 0, outlen,
		    &matches) == 0 && matches == 0)
			return 0;
		*out = (const uint8_t *)REDACT_FAILED_MARK;
		*outlen = sizeof(REDACT_FAILED_MARK) - 1;
		redact_counts(pe)->failed++;
		return -1;
	}
	if (matches == 0)
		return 0;
	/* Taken from the arena (before unslice takes its room after it); it fit, so it is there. */
	if (processor_event_alloc(pe, *outlen, &p) != 0) {
		redact_counts(pe)->failed++;
		return -1;
	}
	if (p != tail)
		memmove(p, tail, *outlen);
	*out = p;
	redact_counts(pe)->redacted++;
	return 1;
}

/*
 * Redacts field f of pe. Sets *remove when f must go. A value that cannot
 * be redacted is removed (or for regex becomes the marker) and counted,
 * also when the arena has no room for its new value: the event goes on
 * without the clear value rather than not at all.
 */
static void
redact_stage_field(struct redact_stage *s, struct processor_event *pe, struct event_field *f,
    bool *remove)
{
	uint8_t tmp[REDACT_HASH_LEN + REDACT_IP_MAX], *p = NULL;
	struct event_field res;
	struct pbslice v;
	enum redact_action act;
	bool failed = false;

	if (s->rule.method == REDACT_REGEX) {
		/* Patterns are written for text: other values are left alone. */
		if (f->type != EVENT_TEXT && f->type != EVENT_SLICE)
			return;
		if (event_field_string(&pe->ev, f, &v) != 0) {
			redact_counts(pe)->failed++;
			*remove = true;
			return;
		}
		if (redact_stage_rewrite(s, pe, v.ptr, v.len, &res.v.text.ptr, &res.v.text.len) != 0) {
			res.key = f->key;
			res.type = EVENT_TEXT;
			*f = res;
		}
		return;
	}
	act = redact_field(&s->rule, &pe->ev, f, tmp, sizeof(tmp), &res, &failed);
	if (act == REDACT_SET) {
		/* The new value lives in the arena, as long as the event. */
		if (processor_event_alloc(pe, res.v.text.len, &p) == 0) {
			memcpy(p, res.v.text.ptr, res.v.text.len);
			res.v.text.ptr = p;
		} else {
			act = REDACT_REMOVE;
			failed = true;
		}
	}
	if (failed)
		redact_counts(pe)->failed++;
	else if (act != REDACT_KEEP)
		redact_counts(pe)->redacted++;
	if (act == REDACT_SET)
		*f = res;
	else if (act == REDACT_REMOVE)
		*remove = true;
}

/*
 * The message through the regex. Slice fields point into the message, so
 * they are made text before it changes; when that cannot be done (no room)
 * the event is not spooled: its message cannot change and must not go out
 * as it is.
 */
static int
redact_stage_message(struct redact_stage *s, struct processor_event *pe)
{
	const uint8_t *out;
	size_t len;
	int r;

	if (redact_stage_rewrite(s, pe, pe->ev.message.ptr, pe->ev.message.len, &out, &len) == 0)
		return PROCESSOR_PASS;
	if ((r = processor_event_unslice(pe)) != 0 ||
	    (r = processor_event_set_message(pe, out, len)) != 0)
		return r;
	return PROCESSOR_PASS;
}

static int
redact_stage_run(void *state, struct processor_event *pe)
{
	struct redact_stage *s = state;

	if (s->nnames == 0)
		return redact_stage_message(s, pe);
	for (size_t j = 0; j < s->nnames; j++) {
		const struct pbslice name = s->names[j];
		bool remove = false;

		for (size_t i = 0; i < pe->ev.nfields; i++) {
			struct event_field *f = &pe->ev.fields[i];

			if (f->key.len == name.len && memcmp(f->key.ptr, name.ptr, name.len) == 0)
				redact_stage_field(s, pe, f, &remove);
		}
		if (remove)
			processor_event_remove(pe, (const char *)name.ptr, name.len);
	}
	return PROCESSOR_PASS;
}

#define RF(name, member, help) \
	{ "logferry_processor_" name, "counter", help, offsetof(struct redact_stats, member) }
static const struct metrics_field redact_stage_fields[] = {
	RF("redacted_total", redacted, "Values a redact stage hashed, masked, dropped or "
	    "rewrote (a message or field with a regex match)."),
	RF("redact_failures_total", failed, "Values a redact stage could not redact (not an "
	    "IP address for mask_ip, a type it cannot take, processor_buffer full): removed, or "
	    "for a regex replaced by \"" REDACT_FAILED_MARK "\"; never passed in clear."),
};
#undef RF

/* Stages compiled from equal sections differ only by the key their file held. */
static bool
redact_stage_same(const void *a, const void *b)
{
	const struct redact_stage *x = a, *y = b;

	return memcmp(x->rule.key_id, y->rule.key_id, sizeof(x->rule.key_id)) == 0;
}

const struct processor_type redact_processor_type = {
	.name = "redact",
	.compile = redact_stage_compile,
	.run = redact_stage_run,
	.free = redact_stage_free,
	.same = redact_stage_same,
	.stats_size = sizeof(struct redact_stats),
	.fields = redact_stage_fields,
	.nfields = sizeof(redact_stage_fields) / sizeof(redact_stage_fields[0]),
};
