/* SPDX-License-Identifier: Apache-2.0 */
/*
 * intake: the body of one `POST /v1/events` request into events, without
 * sockets (agent/http_source.c drives it; tests/fuzz/fuzz_http_intake.c
 * fuzzes it).
 *
 * Bodies. INTAKE_NDJSON (application/x-ndjson): one JSON object per line;
 * lines are split at "\n", blank lines are skipped, and spaces, tabs and a
 * "\r" around a line are not part of it. Otherwise (application/json) the
 * whole body, without the whitespace around it, is one JSON object. A UTF-8
 * BOM at the start of the body is ignored. INTAKE_GZIP: the body is gzip
 * (RFC 1952, one or more members) and is decoded as it arrives.
 *
 * Events. Each object is parsed by json_parse (common/json_parse.h): its
 * members become the event's fields with their JSON types, and a `ts`
 * member sets the event's time (else the receive time). A `stream` member
 * must be a string of 1 to INTAKE_STREAM_MAX bytes and becomes the event's
 * stream (else the source's). The message is the object's text, the
 * source and host those of the intake's options.
 *
 * Nothing is taken until every object is valid: intake_check parses the
 * whole body and stops at the first bad object with an error naming its
 * line ("line 3: json: invalid JSON at column 5: ..."), so that a request
 * is spooled whole or not at all. intake_next then parses the objects
 * again, one at a time, for the spool: parsing twice costs CPU but keeps
 * a request's memory to its body (plus one object's fields) instead of
 * every object's fields at once.
 *
 * Limits. The body as received and as decoded are each at most max_body
 * bytes (-EMSGSIZE beyond: a gzip bomb stops there). An object may hold at
 * most INTAKE_MAX_VALUES JSON values: jansson builds a tree of about 50
 * bytes per value, which without this bound would turn an 8 MiB body of
 * "[0,0,0,..." into 200 MB.
 */
#ifndef LOGFERRY_INTAKE_H
#define LOGFERRY_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/event.h"

#define INTAKE_NDJSON 0x1            /* one object per line; else one object */
#define INTAKE_GZIP   0x2            /* Content-Encoding: gzip */

#define INTAKE_MAX_VALUES 100000     /* JSON values in one object */
#define INTAKE_STREAM_MAX 255        /* bytes of a `stream` member */
#define INTAKE_ERROR_MAX 320         /* bytes of intake_error, NUL included */
#define INTAKE_SENDER_FIELD "sender"  /* intake_set_sender's field */

struct intake_options {
	size_t max_body;                 /* bytes, as received and as decoded */
	const char *host;                /* the agent's host name */
	const char *stream;              /* the source's stream */
	const char *source;              /* the listener, "http://127.0.0.1:8540" */
};

struct intake;

/*
 * A new intake for o, whose strings are kept (not copied) and must
 * outlive it. Returns 0, or -ENOMEM.
 */
int intake_new(const struct intake_options *o, struct intake **out);

/* Frees in and everything it holds. NULL is fine. */
void intake_free(struct intake *in);

/*
 * The authenticated sender of the bodies to come (NULL: none; name is
 * kept, not copied): each event gets the field INTAKE_SENDER_FIELD with
 * it, in place of an object's member of that name. An object with
 * PARSER_MAX_FIELDS members and no such member is then invalid.
 */
void intake_set_sender(struct intake *in, const char *name);

/* Starts a request body with flags INTAKE_*; forgets the previous body. */
void intake_begin(struct intake *in, unsigned flags);

/*
 * Takes the next n bytes of the body, as received. Returns 0, -EMSGSIZE
 * when the body (received or decoded) would pass max_body, or -EBADMSG for
 * a body that is not gzip (intake_error says why). After an error, the
 * body is left as it is until intake_begin.
 */
int intake_feed(struct intake *in, const uint8_t *p, size_t n);

/*
 * The body is complete. Returns 0, -EMSGSIZE, or -EBADMSG for a gzip
 * stream cut short (intake_error says why).
 */
int intake_end(struct intake *in);

/*
 * Checks the objects of the ended body, about `budget` bytes of it per
 * call (so that one large body does not hold the loop). Returns 1 when
 * there is more to check (call again), 0 when every object is valid
 * (intake_events and intake_bytes count them), or -EINVAL for the first
 * invalid one, with intake_error saying which line and why.
 */
int intake_check(struct intake *in, size_t budget);

/* After intake_check returned 0: the objects, and an upper bound of their encoded size. */
size_t intake_events(const struct intake *in);
size_t intake_bytes(const struct intake *in);

/* What the last error was, as text for a client ("line 2: json: ..."). */
const char *intake_error(const struct intake *in);

/*
 * After intake_check returned 0: fills *ev with the event of the next
 * object not yet consumed, now_ns being the receive time (used when the
 * object has no usable ts). Returns 1, or 0 after the last object. ev and
 * what it points to are valid until the next call, intake_begin or
 * intake_free. *bytes receives the upper bound of ev's encoded size that
 * intake_bytes counted.
 */
int intake_next(struct intake *in, uint64_t now_ns, struct event *ev, size_t *bytes);

/* The event intake_next returned is taken: the next call goes on after it. */
void intake_consume(struct intake *in);

/* Bytes of the decoded body that intake_consume has gone past (for work budgets). */
size_t intake_offset(const struct intake *in);

/* Frees the body and parse buffers until the next request (memory of idle connections). */
void intake_release(struct intake *in);

#endif
