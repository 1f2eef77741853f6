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

static const char *const redact_names[] = {
	[REDACT_HASH] = "hash",
	[REDACT_MASK_IP] = "mask_ip",
	[REDACT_DROP] = "drop",
	[REDACT_REGEX] = "regex",
};

int
redact_method_parse(const char *name, enum redact_method *m)
{
	for (size_t i = 0; i < sizeof(redact_names) / sizeof(redact_names[0]); i++) {
		if (strcmp(name, redact_names[i]) == 0) {
			*m = (enum redact_method)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
redact_method_name(enum redact_method m)
{
	return (size_t)m < sizeof(redact_names) / sizeof(redact_names[0]) ? redact_names[m] : "?";
}

#define REDACT_KEY_ADVICE "write at least 32 random bytes to it, e.g. " \
	"openssl rand -hex 32 >FILE, mode 0640 root:_logferry, the same file on every host " \
	"whose hashes must match"

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
		snprintf(err, errlen, "key_file %s: %s: %s", path, strerror(e), REDACT_KEY_ADVICE);
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
		    "be guessed from the hashes; " REDACT_KEY_ADVICE, path, n, REDACT_KEY_MIN);
		return -EINVAL;
	}
	r->key_exposed = (st.st_mode & S_IROTH) != 0;
	*keylen = n;
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
	if ((rc = redact_read_key(r, path, key, &keylen, err, errlen)) != 0)
		goto out;
	mbedtls_md_init(&r->hmac);
	r->hmac_set = true;
	/* Only the keyed pads stay in memory; the key itself is wiped below. */
	if (mbedtls_md_setup(&r->hmac, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) != 0 ||
	    mbedtls_md_hmac_starts(&r->hmac, key, keylen) != 0) {
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
	if (r->hmac_set)
		mbedtls_md_free(&r->hmac);   /* wipes the keyed state */
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
	if (!r->hmac_set || mbedtls_md_hmac_reset(&r->hmac) != 0 ||
	    mbedtls_md_hmac_update(&r->hmac, in, len) != 0 ||
	    mbedtls_md_hmac_finish(&r->hmac, mac) != 0)
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
	if (out == NULL) {
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
	size_t len, matches;
	int rc;

	*failed = false;
	if (r->method == REDACT_DROP)
		return REDACT_REMOVE;
	if (f->type == EVENT_NULL)
		return REDACT_KEEP;
	if (r->method == REDACT_REGEX) {
		/* Patterns are written for text: a number or a JSON value is left alone. */
		if (f->type != EVENT_TEXT && f->type != EVENT_SLICE)
			return REDACT_KEEP;
		if (event_field_string(ev, f, &s) != 0)
			goto fail;
		rc = redact_regex(r, s.ptr, s.len, out, cap, &len, &matches);
		if (rc != 0)
			*failed = true;
		else if (matches == 0)
			return REDACT_KEEP;
		return redact_set(f, out, len, res);
	}
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
