/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redact: PII taken out of an event at the agent, before the event reaches
 * the spool, so that the clear value never touches the disk.
 *
 * One rule is one method, compiled once at configuration time:
 * - hash: the value becomes the lower-case hex HMAC-SHA256 of its bytes
 *   under a key read from a file. Hosts sharing the key give the same
 *   value the same hash (joins and counts still work downstream); without
 *   the key a hash cannot be checked against guesses.
 * - mask_ip: an IP address keeps its network, /24 for IPv4 and /48 for
 *   IPv6 (an IPv4-mapped IPv6 address keeps its IPv4 /24), the host bits
 *   are zeroed.
 * - drop: the field goes.
 * - regex: every match of a POSIX extended regex in the value (the
 *   message, usually) is replaced by a literal text.
 *
 * Redaction fails closed: a value a rule cannot handle (not an IP address
 * for mask_ip, a boolean to hash, a rewritten message past its bound) is
 * removed or replaced by REDACT_FAILED_MARK, and the caller counts it;
 * it never passes in clear.
 *
 * The hot path allocates nothing: results go to caller-provided buffers.
 * A struct redact is used by one thread at a time (the HMAC's scratch
 * state is its own).
 *
 * redact_processor_type is the `redact` stage of a processors: list
 * (processor.h): one rule applied to the fields it names, or with method
 * regex and no field to the message, whose slice fields are made text
 * first so that they keep their values.
 */
#ifndef LOGFERRY_REDACT_H
#define LOGFERRY_REDACT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/md.h>

#include "agent/processor.h"
#include "proto/event.h"

#define REDACT_KEY_MIN 16             /* bytes: shorter keys can be guessed */
#define REDACT_KEY_MAX 1024           /* bytes: the key file holds the key alone */
#define REDACT_HASH_LEN 64            /* hex characters of an HMAC-SHA256 */
#define REDACT_IP_MAX 46              /* INET6_ADDRSTRLEN, the NUL included */
#define REDACT_DEFAULT_REPLACEMENT "[REDACTED]"
#define REDACT_FAILED_MARK "[redaction failed]"

enum redact_method {
	REDACT_HASH,
	REDACT_MASK_IP,
	REDACT_DROP,
	REDACT_REGEX,
};

/* The methods' configuration names, in enum order, NULL-terminated. */
extern const char *const redact_method_names[];

/* Sets *m from its configuration name ("hash", "mask_ip", "drop", "regex"); 0 or -EINVAL. */
int redact_method_parse(const char *name, enum redact_method *m);
const char *redact_method_name(enum redact_method m);

struct redact_options {
	enum redact_method method;
	const char *key_file;         /* hash: the key's file */
	const char *pattern;          /* regex: a POSIX extended regex */
	const char *replacement;      /* regex: each match becomes it; NULL: REDACT_DEFAULT_REPLACEMENT */
};

struct redact {
	enum redact_method method;
	/*
	 * hash: SHA-256 states after the key's inner and outer pad blocks
	 * (RFC 2104), copied to work for each value: two compressions of the
	 * pads saved per value, half an HMAC's cost for short values.
	 */
	mbedtls_md_context_t inner, outer, work;
	bool hmac_set;
	bool key_exposed;             /* hash: the key file is readable by every user */
	uint8_t key_id[32];           /* hash: HMAC of "" under the key: tells keys apart, reveals none */
	regex_t re;                   /* regex */
	bool re_set;
	char *replacement;            /* regex; owned */
	size_t replacement_len;
};

/*
 * Compiles the rule of o: reads and checks the key file (an absolute path
 * to a regular file of REDACT_KEY_MIN to REDACT_KEY_MAX bytes, one trailing
 * newline not part of the key), compiles the pattern. Returns 0, or a negative error code
 * with err holding why, naming the file or the pattern and what to do (never
 * the key); then r needs no redact_free. After 0, r->key_exposed says the
 * key file is readable by every user, for the caller to warn about.
 */
int redact_init(struct redact *r, const struct redact_options *o, char *err, size_t errlen);

/* Frees what r holds and wipes the key state; r may be zeroed or freed already. */
void redact_free(struct redact *r);

/* out = the lower-case hex HMAC-SHA256 of in[0, len), NUL-terminated. Returns 0 or -EIO. */
int redact_hash(struct redact *r, const uint8_t *in, size_t len, char out[REDACT_HASH_LEN + 1]);

/*
 * out = the address in[0, len) with its host bits zeroed, NUL-terminated.
 * Returns 0, or -EINVAL when in is not exactly an IPv4 or IPv6 address (a
 * port, a zone or a space around it included): out is then empty.
 */
int redact_mask_ip(const uint8_t *in, size_t len, char out[REDACT_IP_MAX]);

/*
 * Writes in[0, len) to out (cap bytes) with every non-empty match of r's
 * regex replaced (an empty match hides nothing and is passed over); in needs
 * no NUL and may hold NUL bytes. Sets *outlen and *matches. Returns 0, or
 * -EMSGSIZE when the result would pass cap (or the matcher failed): out holds
 * REDACT_FAILED_MARK then (cut to cap), never a part of in. Without out (NULL),
 * only measures: *outlen is the result's length whatever cap says, so that
 * the caller can make room for it (-EIO if the matcher failed).
 */
int redact_regex(const struct redact *r, const uint8_t *in, size_t len, uint8_t *out,
    size_t cap, size_t *outlen, size_t *matches);

enum redact_action {
	REDACT_KEEP,                  /* the field stays as it is */
	REDACT_SET,                   /* the field becomes *res */
	REDACT_REMOVE,                /* the field goes */
};

/*
 * What r (hash, mask_ip or drop) does to field f of ev. A TEXT or SLICE
 * value is taken as its string (event_field_string), an INTEGER as its
 * decimal text, a JSON value as its JSON text; a NULL value has nothing to
 * hide and is kept. A new value is written to out (cap bytes:
 * REDACT_HASH_LEN for a hash, REDACT_IP_MAX for an address) and *res is f
 * with that TEXT value. *failed is set when the value could not be redacted
 * (not an address, a type the method cannot take, out too small, a slice
 * outside the message): the field is then removed. A regex keeps every
 * field here: its values are rewritten with redact_regex.
 */
enum redact_action redact_field(struct redact *r, const struct event *ev,
    const struct event_field *f, uint8_t *out, size_t cap, struct event_field *res,
    bool *failed);

/* What redact stages counted (processor_type.stats: logferry_processor_redact*). */
struct redact_stats {
	uint64_t redacted;            /* values hashed, masked, dropped, or rewritten by a regex */
	uint64_t failed;              /* values that could not be: removed, or the marker */
};

extern const struct processor_type redact_processor_type;

#endif
