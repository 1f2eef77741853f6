/* SPDX-License-Identifier: Apache-2.0 */
/* token: bearer tokens and per-sender rate limits (see token.h). */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "common/token.h"

/* The largest token file read: far more than max_tokens lines of the longest tokens. */
#define TOKEN_FILE_MAX (16u * 1024 * 1024)

struct token_bucket {
	double level;
	uint64_t at_ns;
	bool started;            /* full until first used */
};

struct token_sender {
	char name[TOKEN_NAME_MAX + 1];
	struct token_bucket events, bytes;
};

struct token_entry {
	uint8_t digest[32];
	size_t sender;           /* index into senders */
	int line;
};

struct token_set {
	struct token_entry *entries;    /* sorted by digest */
	size_t n;
	struct token_sender *senders;   /* sorted by name */
	size_t nsenders;
};

static int
token_digest(const uint8_t *tok, size_t len, uint8_t out[32])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

	return md != NULL && mbedtls_md(md, tok, len, out) == 0 ? 0 : -EIO;
}

static int
token_entry_cmp(const void *a, const void *b)
{
	return memcmp(((const struct token_entry *)a)->digest,
	    ((const struct token_entry *)b)->digest, 32);
}

static int
token_sender_cmp(const void *a, const void *b)
{
	return strcmp(((const struct token_sender *)a)->name, ((const struct token_sender *)b)->name);
}

static bool
token_name_ok(const char *p, size_t len)
{
	if (len == 0 || len > TOKEN_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-')
			return false;
	return true;
}

static bool
token_space(char c)
{
	return c == ' ' || c == '\t';
}

/* One line's token and name, or an error naming the line. */
struct token_line {
	const char *tok, *name;
	size_t toklen, namelen;
	int line;
};

static int
token_parse_line(const char *what, int line, const char *p, const char *end,
    struct token_line *out, char *err, size_t errlen)
{
	const char *rest;

	out->line = line;
	out->tok = p;
	while (p < end && !token_space(*p))
		p++;
	out->toklen = (size_t)(p - out->tok);
	while (p < end && token_space(*p))
		p++;
	out->name = p;
	while (p < end && !token_space(*p))
		p++;
	out->namelen = (size_t)(p - out->name);
	rest = p;
	while (rest < end && token_space(*rest))
		rest++;
	if (out->namelen == 0 || rest < end) {
		snprintf(err, errlen, "%s:%d: a line is TOKEN NAME (two words), or a comment "
		    "starting with #", what, line);
		return -EINVAL;
	}
	if (out->toklen < TOKEN_MIN_LEN || out->toklen > TOKEN_MAX_LEN) {
		snprintf(err, errlen, "%s:%d: the token is %zu bytes; a token is %d to %d bytes "
		    "(make one with: openssl rand -hex 32)", what, line, out->toklen,
		    TOKEN_MIN_LEN, TOKEN_MAX_LEN);
		return -EINVAL;
	}
	for (size_t i = 0; i < out->toklen; i++) {
		if ((unsigned char)out->tok[i] < 0x21 || (unsigned char)out->tok[i] > 0x7e) {
			snprintf(err, errlen, "%s:%d: the token holds a byte that is not printable "
			    "ASCII (0x%02x)", what, line, (unsigned char)out->tok[i]);
			return -EINVAL;
		}
	}
	if (!token_name_ok(out->name, out->namelen)) {
		snprintf(err, errlen, "%s:%d: the name '%.*s' is not 1 to %d of letters, digits, "
		    "'.', '_' and '-'", what, line, (int)(out->namelen > 80 ? 80 : out->namelen),
		    out->name, TOKEN_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

/*
 * Every token line of text, into lines (room for cap: at least the lines
 * text has, or max_tokens); sets *n.
 */
static int
token_parse_lines(const char *what, const char *text, size_t len, size_t cap,
    size_t max_tokens, struct token_line *lines, size_t *n, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	int line = 0, r;

	*n = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *e;

		e = eol != NULL ? eol : end;
		line++;
		if (e > p && e[-1] == '\r')
			e--;
		while (p < e && token_space(*p))
			p++;
		if (p < e && *p != '#') {
			if (*n == cap) {
				snprintf(err, errlen, "%s:%d: more than %zu tokens; raise the limit or "
				    "remove unused tokens", what, line, max_tokens);
				return -EINVAL;
			}
			if ((r = token_parse_line(what, line, p, e, &lines[*n], err, errlen)) != 0)
				return r;
			(*n)++;
		}
		p = eol != NULL ? eol + 1 : end;
	}
	return 0;
}

/* The senders of lines, each name once, sorted. */
static int
token_build_senders(struct token_set *s, const struct token_line *lines, size_t n)
{
	size_t k = 0;

	if (n > 0 && (s->senders = calloc(n, sizeof(*s->senders))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(s->senders[i].name, lines[i].name, lines[i].namelen);
		s->senders[i].name[lines[i].namelen] = '\0';
	}
	if (n > 0)
		qsort(s->senders, n, sizeof(*s->senders), token_sender_cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || strcmp(s->senders[k - 1].name, s->senders[i].name) != 0)
			s->senders[k++] = s->senders[i];
	s->nsenders = k;
	return 0;
}

struct token_sender *
token_set_sender(const struct token_set *s, const char *name)
{
	struct token_sender key;

	if (s->nsenders == 0 || strlen(name) > TOKEN_NAME_MAX)
		return NULL;
	strcpy(key.name, name);
	return bsearch(&key, s->senders, s->nsenders, sizeof(*s->senders), token_sender_cmp);
}

static int
token_build_entries(const char *what, struct token_set *s, const struct token_line *lines,
    size_t n, char *err, size_t errlen)
{
	if (n > 0 && (s->entries = calloc(n, sizeof(*s->entries))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char name[TOKEN_NAME_MAX + 1];

		memcpy(name, lines[i].name, lines[i].namelen);
		name[lines[i].namelen] = '\0';
		if (token_digest((const uint8_t *)lines[i].tok, lines[i].toklen,
		    s->entries[i].digest) != 0) {
			snprintf(err, errlen, "%s:%d: SHA-256 of the token failed", what, lines[i].line);
			return -EIO;
		}
		s->entries[i].sender = (size_t)(token_set_sender(s, name) - s->senders);
		s->entries[i].line = lines[i].line;
	}
	s->n = n;
	if (n > 0)
		qsort(s->entries, n, sizeof(*s->entries), token_entry_cmp);
	for (size_t i = 1; i < n; i++) {
		if (memcmp(s->entries[i - 1].digest, s->entries[i].digest, 32) == 0) {
			int a = s->entries[i - 1].line, b = s->entries[i].line;

			snprintf(err, errlen, "%s:%d: the same token as line %d; each token must "
			    "name one sender", what, a > b ? a : b, a > b ? b : a);
			return -EINVAL;
		}
	}
	return 0;
}

int
token_set_parse(const char *what, const char *text, size_t len, size_t max_tokens,
    struct token_set **out, char *err, size_t errlen)
{
	struct token_line *lines = NULL;
	struct token_set *s;
	size_t n, cap = 1;
	int r;

	*out = NULL;
	/* Room for every line the text has, but never more than max_tokens. */
	for (const char *p = text; (p = memchr(p, '\n', len - (size_t)(p - text))) != NULL; p++)
		cap++;
	if (cap > max_tokens)
		cap = max_tokens;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (cap > 0 && (lines = calloc(cap, sizeof(*lines))) == NULL)) {
		free(s);
		snprintf(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	r = token_parse_lines(what, text, len, cap, max_tokens, lines, &n, err, errlen);
	if (r == 0)
		r = token_build_senders(s, lines, n);
	if (r == 0)
		r = token_build_entries(what, s, lines, n, err, errlen);
	free(lines);
	if (r != 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", what);
		token_set_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int
token_set_load(const char *path, size_t max_tokens, struct token_set **out, char *err,
    size_t errlen)
{
	struct stat st;
	char *text;
	ssize_t got;
	size_t len = 0;
	int fd, r;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open the token file: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) != 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot stat the token file: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: the token file is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "%s: the token file is %s by every user (mode %04o); it "
		    "holds credentials: chmod 0640 it, owned by root:_logferry", path,
		    (st.st_mode & S_IWOTH) ? "writable" : "readable",
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	if ((uint64_t)st.st_size > TOKEN_FILE_MAX) {
		snprintf(err, errlen, "%s: the token file is %jd bytes, more than the %u read",
		    path, (intmax_t)st.st_size, TOKEN_FILE_MAX);
		close(fd);
		return -EFBIG;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return -ENOMEM;
	}
	/* The file may change under us: read what is there now, up to the size seen. */
	while (len < (size_t)st.st_size &&
	    (got = read(fd, text + len, (size_t)st.st_size - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			snprintf(err, errlen, "%s: cannot read the token file: %s", path, strerror(-r));
			free(text);
			close(fd);
			return r;
		}
		len += (size_t)got;
	}
	close(fd);
	r = token_set_parse(path, text, len, max_tokens, out, err, errlen);
	explicit_bzero(text, len);
	free(text);
	return r;
}

void
token_set_free(struct token_set *s)
{
	if (s == NULL)
		return;
	free(s->entries);
	free(s->senders);
	free(s);
}

size_t
token_set_count(const struct token_set *s)
{
	return s->n;
}

struct token_sender *
token_set_find(const struct token_set *s, const uint8_t *tok, size_t len)
{
	struct token_entry key, *e;

	if (len < TOKEN_MIN_LEN || len > TOKEN_MAX_LEN || s->n == 0 ||
	    token_digest(tok, len, key.digest) != 0)
		return NULL;
	e = bsearch(&key, s->entries, s->n, sizeof(*s->entries), token_entry_cmp);
	return e != NULL ? &s->senders[e->sender] : NULL;
}

void
token_set_carry(struct token_set *fresh, const struct token_set *old)
{
	for (size_t i = 0; i < fresh->nsenders; i++) {
		const struct token_sender *o = token_set_sender(old, fresh->senders[i].name);

		if (o != NULL) {
			fresh->senders[i].events = o->events;
			fresh->senders[i].bytes = o->bytes;
		}
	}
}

const char *
token_sender_name(const struct token_sender *t)
{
	return t->name;
}

/* Fills b for now_ns; the level it has, at most burst. */
static void
token_refill(struct token_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	if (!b->started) {
		b->level = (double)burst;
		b->at_ns = now_ns;
		b->started = true;
		return;
	}
	if (now_ns > b->at_ns) {
		b->level += (double)(now_ns - b->at_ns) * (double)rate / 1e9;
		if (b->level > (double)burst)
			b->level = (double)burst;
		b->at_ns = now_ns;
	}
}

/* Milliseconds until b holds what cost needs (0: it does now). */
static uint64_t
token_wait_ms(const struct token_bucket *b, uint64_t rate, uint64_t burst, uint64_t cost)
{
	double need = (double)(cost < burst ? cost : burst), ms;

	if (rate == 0 || b->level >= need)
		return 0;
	ms = (need - b->level) * 1000.0 / (double)rate;
	return ms < 1.0 ? 1 : (uint64_t)ms + 1;
}

bool
token_ready(struct token_sender *t, const struct token_limits *lim, uint64_t events,
    uint64_t bytes, uint64_t now_ns, uint64_t *retry_ms)
{
	uint64_t eburst = lim->events_burst != 0 ? lim->events_burst : lim->events_per_s;
	uint64_t bburst = lim->bytes_burst != 0 ? lim->bytes_burst : lim->bytes_per_s;
	uint64_t we = 0, wb = 0;

	if (lim->events_per_s != 0) {
		token_refill(&t->events, lim->events_per_s, eburst, now_ns);
		we = token_wait_ms(&t->events, lim->events_per_s, eburst, events);
	}
	if (lim->bytes_per_s != 0) {
		token_refill(&t->bytes, lim->bytes_per_s, bburst, now_ns);
		wb = token_wait_ms(&t->bytes, lim->bytes_per_s, bburst, bytes);
	}
	if (we != 0 || wb != 0) {
		*retry_ms = we > wb ? we : wb;
		return false;
	}
	return true;
}

bool
token_admit(struct token_sender *t, const struct token_limits *lim, uint64_t events,
    uint64_t bytes, uint64_t now_ns, uint64_t *retry_ms)
{
	if (!token_ready(t, lim, events, bytes, now_ns, retry_ms))
		return false;
	if (lim->events_per_s != 0)
		t->events.level -= (double)events;
	if (lim->bytes_per_s != 0)
		t->bytes.level -= (double)bytes;
	return true;
}

int
token_bearer(const char *value, size_t len, const uint8_t **tok, size_t *toklen)
{
	static const char scheme[] = "Bearer";
	const char *p = value, *end = value + len, *t;

	while (p < end && token_space(*p))
		p++;
	if ((size_t)(end - p) < sizeof(scheme) || strncasecmp(p, scheme, sizeof(scheme) - 1) != 0 ||
	    !token_space(p[sizeof(scheme) - 1]))
		return -EINVAL;
	p += sizeof(scheme) - 1;
	while (p < end && token_space(*p))
		p++;
	t = p;
	while (p < end && !token_space(*p))
		p++;
	*tok = (const uint8_t *)t;
	*toklen = (size_t)(p - t);
	while (p < end && token_space(*p))
		p++;
	if (*toklen == 0 || p != end)
		return -EINVAL;
	return 0;
}
