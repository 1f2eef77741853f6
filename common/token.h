/* SPDX-License-Identifier: Apache-2.0 */
/*
 * token: bearer tokens for the network intakes (the agent's HTTP source,
 * the relay's HTTP intake), and each sender's rate limits.
 *
 * A token file holds one `TOKEN NAME` per line; blank lines and lines
 * starting with '#' are comments. A token is TOKEN_MIN_LEN to
 * TOKEN_MAX_LEN printable ASCII bytes without spaces (`openssl rand -hex
 * 32` makes a good one); a name is a sender, 1 to TOKEN_NAME_MAX bytes of
 * [A-Za-z0-9._-], added to that sender's events so consumers know who sent
 * them. Several tokens may name one sender: a sender rotates its token by
 * getting a second one before the first is removed, and its rate limits
 * are the sender's, not the token's. The file must not be readable or
 * writable by every user (chmod 0640, root:_logferry): it holds
 * credentials.
 *
 * Only the SHA-256 of each token is kept. A presented token is hashed and
 * its digest looked up, so the time a lookup takes says nothing about any
 * token's bytes.
 *
 * Rate limits are two token buckets per sender, events and bytes, each
 * refilled at its rate per second up to its burst. A request is admitted
 * when each bucket holds its cost, or is full (a request larger than a
 * burst passes when the bucket is full, so no request is refused for
 * ever); then its cost is taken, and a bucket may go below zero. A refused
 * request learns after how long to try again.
 *
 * Loop thread only. A reload loads a fresh set and carries each sender's
 * buckets over by name (token_set_carry), so a reload does not reset a
 * limit.
 */
#ifndef LOGFERRY_TOKEN_H
#define LOGFERRY_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_MIN_LEN 16
#define TOKEN_MAX_LEN 256
#define TOKEN_NAME_MAX 64

/* A sender's limits; a rate of 0 is no limit. */
struct token_limits {
	uint64_t events_per_s;
	uint64_t events_burst;   /* 0: events_per_s */
	uint64_t bytes_per_s;
	uint64_t bytes_burst;    /* 0: bytes_per_s */
};

struct token_sender;
struct token_set;

/*
 * Loads path, at most max_tokens tokens. Returns 0 and sets *out, or
 * -EINVAL (a line that is not TOKEN NAME, a token too short or long or
 * given twice, too many tokens: err says which line and why), -EPERM (the
 * file is readable or writable by every user), -errno when it cannot be
 * read, or -ENOMEM. err (errlen bytes) says what to do.
 */
int token_set_load(const char *path, size_t max_tokens, struct token_set **out, char *err,
    size_t errlen);

/* Same as token_set_load, from text[0, len) named `what` in messages (no file checks). */
int token_set_parse(const char *what, const char *text, size_t len, size_t max_tokens,
    struct token_set **out, char *err, size_t errlen);

/* Frees s; NULL is fine. */
void token_set_free(struct token_set *s);

/* Tokens in s. */
size_t token_set_count(const struct token_set *s);

/* The sender whose token is tok[0, len), or NULL for none. */
struct token_sender *token_set_find(const struct token_set *s, const uint8_t *tok, size_t len);

/* The sender named name, or NULL (e.g. gone from a reloaded set). */
struct token_sender *token_set_sender(const struct token_set *s, const char *name);

/* fresh's senders take the buckets of old's sender of the same name. */
void token_set_carry(struct token_set *fresh, const struct token_set *old);

/* The sender's name, NUL-terminated. */
const char *token_sender_name(const struct token_sender *t);

/*
 * Asks to admit a request of `events` events and `bytes` bytes at now_ns
 * (a monotonic clock) under lim. Returns true and takes its cost, or false
 * with *retry_ms set to when it would be admitted (at least 1).
 */
bool token_admit(struct token_sender *t, const struct token_limits *lim, uint64_t events,
    uint64_t bytes, uint64_t now_ns, uint64_t *retry_ms);

/*
 * Whether token_admit would admit the request now, without taking its
 * cost (buckets are refilled to now_ns): true, or false with *retry_ms
 * set as token_admit does. For a first look before a request's whole
 * cost is known.
 */
bool token_ready(struct token_sender *t, const struct token_limits *lim, uint64_t events,
    uint64_t bytes, uint64_t now_ns, uint64_t *retry_ms);

/*
 * The token of an Authorization header's value: "Bearer TOKEN" (the
 * scheme in any case, spaces around TOKEN ignored). Returns 0 and sets
 * *tok, *toklen (into value), or -EINVAL for another scheme or no token.
 */
int token_bearer(const char *value, size_t len, const uint8_t **tok, size_t *toklen);

#endif
