/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_source: one `http` source of the configuration: an HTTP/1.1
 * listener per `listen` address taking JSON events by
 *
 *   POST /v1/events
 *   Content-Type: application/json       one JSON object
 *              or application/x-ndjson   JSON objects, one per line
 *   [Content-Encoding: gzip]
 *
 * (common/intake.h says how a body becomes events: members become fields,
 * `ts` and `stream` members set the event's time and stream). The event's
 * source is the listener, "http://127.0.0.1:8540"; its host the agent's.
 *
 * Answers (a JSON body each; errors as {"error":"..."}):
 *   200 {"accepted":N}   only once the request's N events are committed to
 *                        the spool (spool_when_committed)
 *   400  a malformed object (the error names its line), a broken gzip body
 *        or a malformed HTTP request; nothing of the request is spooled
 *   404  another path;  405 (Allow: POST) another method on /v1/events
 *   413  a body over max_body_size, as sent or decoded: by Content-Length
 *        before the body is read, or as soon as it passes; closes
 *   415  another Content-Type or Content-Encoding
 *   431  request headers over HTTP_SOURCE_HEADER_MAX bytes; closes
 *   503 (Retry-After: 1)  the spool is full (at max_size): nothing of the
 *        request was spooled, the client retries later; or the request
 *        waited request_timeout for room (the error says for what, and how
 *        many of its events are in the spool already); or a body larger
 *        than memory_limit's whole share; or the agent is stopping
 *   500  the spool lost the request's events (a disk error); retry
 *
 * A request is spooled whole or not at all, so a client may always retry
 * after an error: every object is checked before any is appended. Then
 * 503 when the spool is full (at max_size: spool_get_stats' `full`); else
 * the events go in as room comes. When the hand-off queue has none (the
 * writer is busy with a commit), the request waits for the spool's
 * writable callback, its connection read no further meanwhile, for up to
 * request_timeout from its first wait; a full spool is no reason to wait
 * for a request with nothing in yet: 503 at once. The commit of its events
 * (which a spool that fills up or cannot commit holds back) is awaited for
 * up to request_timeout too.
 *
 * An object whose event is larger than the spool takes (its
 * event_max_bytes) is spooled without its fields, with a parse_error field
 * saying so; one too large even then is dropped, counted and logged, and
 * the answer says {"accepted":N,"dropped":K}. The agent sizes the spool's
 * largest event from max_body_size so that neither happens.
 *
 * Connections: HTTP/1.1 keep-alive (Connection: close honoured; HTTP/1.0
 * closes unless it asks for keep-alive); one request at a time, pipelined
 * ones wait unread; "Expect: 100-continue" answered once the body may
 * come; closed after idle_timeout without a byte from the client. At most
 * max_connections at once: when all are open, the one idle the longest
 * (between requests, or connected and silent) is closed for a new one;
 * when none is idle, the new one is sent a 503 and closed, counted.
 * After an answer that closes, unread bytes are drained for up to
 * HTTP_SOURCE_LINGER_MS so that the client reads the answer, not a reset.
 *
 * HTTPS (cfg->tls.cert_file set): every connection is TLS (common/tls),
 * closed and counted when its handshake fails or passes handshake_timeout;
 * the HTTP above is the same, over decrypted records copied into the read
 * buffer (plain HTTP reads into it directly, and writes the answer's
 * buffers as they are). http_source_reload loads the certificate again for
 * new connections.
 *
 * Auth (cfg->auth.tokens_file set): a request needs "Authorization: Bearer
 * TOKEN" of a token in the file, or is answered 401 (WWW-Authenticate:
 * Bearer) before its body is read or charged; its sender's name becomes
 * each event's `sender` field. A sender over its rate limits (auth's
 * events_per_second, bytes_per_second, with bursts) is answered 429 with
 * Retry-After: before its body when its buckets are empty, else once its
 * body is checked, whole, nothing spooled.
 *
 * Work per loop turn is capped (HTTP_SOURCE_WORK bytes of body per
 * connection), so that a large body does not hold up other sources.
 */
#ifndef LOGFERRY_HTTP_SOURCE_H
#define LOGFERRY_HTTP_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "agent/agent_config.h"
#include "agent/budget.h"
#include "agent/source_type.h"
#include "agent/spool.h"

#define HTTP_SOURCE_PATH "/v1/events"
#define HTTP_SOURCE_HEADER_MAX (16 * 1024)        /* request line and headers */
#define HTTP_SOURCE_IDLE_TIMEOUT_MS 60000      /* idle_timeout when cfg has none (0) */
#define HTTP_SOURCE_REQUEST_TIMEOUT_MS 10000   /* request_timeout when cfg has none (0) */
#define HTTP_SOURCE_LINGER_MS 2000
#define HTTP_SOURCE_STOP_GRACE_MS 5000            /* answers still due at stop */
#define HTTP_SOURCE_WORK (256 * 1024)             /* body bytes per connection per loop turn */
/* Taken from the budget for a request beside its body: inflate state, one object's parse. */
#define HTTP_SOURCE_BODY_OVERHEAD (64 * 1024)

struct http_source;

/*
 * Starts listening on every one of cfg's listen addresses on loop. host
 * is the agent's host name; cfg, host and spool must outlive the source.
 * Returns 0, or a negative error after logging which address failed and
 * what to do; on an error nothing is left open once the loop has run one
 * turn.
 */
int http_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct http_source **out);

/*
 * Request bodies draw from b (NULL: none), which must outlive the source:
 * a request takes about its body's size before it is read (twice its
 * Content-Length, at most max_body_size; max_body_size for gzip or chunked
 * bodies, whose decoded size is unknown; plus HTTP_SOURCE_BODY_OVERHEAD)
 * and gives it back once answered.
 * A request that does not fit waits, its body unread (the connection is
 * not read), until bytes come back, for up to request_timeout; then 503
 * with Retry-After. One that could never fit is answered 503 at once.
 * Call before the first connection.
 */
void http_source_set_budget(struct http_source *hs, struct budget *b);

/*
 * SIGHUP for a source whose settings did not change: reads auth.tokens_file
 * again. Requests after it are checked against the new tokens; each
 * sender's rate limits carry over by name. Returns 0, or a negative error
 * after logging it; then the previous tokens stay.
 */
int http_source_reload(struct http_source *hs);

/* The spool has room again (its writable callback): waiting requests go on. */
void http_source_resume(struct http_source *hs);

/*
 * Stops: closes the listeners and idle connections at once; requests
 * whose events are in the spool get their answer (with Connection: close)
 * for up to HTTP_SOURCE_STOP_GRACE_MS; the rest are closed unanswered.
 * done(ctx) runs when every handle is closed and hs is freed. The spool
 * must stay open until then.
 */
void http_source_stop(struct http_source *hs, void (*done)(void *ctx), void *ctx);

/*
 * The address listener i (in cfg->listen order) is bound to, with the
 * port the kernel picked for port 0. Returns 0, or -ENOENT.
 */
int http_source_address(const struct http_source *hs, size_t i, struct sockaddr_storage *out);

struct http_source_stats {
	uint64_t requests;            /* requests answered, whatever the answer */
	uint64_t accepted;            /* 200: events committed */
	uint64_t events;              /* events committed for those requests */
	uint64_t bad_requests;        /* 400: malformed JSON, gzip or HTTP */
	uint64_t unauthorized;        /* 401: no token, or an unknown one */
	uint64_t rate_limited;        /* 429: the sender over its rate limits */
	uint64_t forbidden;           /* 403: a client certificate's CN not allowed */
	uint64_t not_found;           /* 404 */
	uint64_t bad_method;          /* 405 */
	uint64_t too_large;           /* 413 */
	uint64_t bad_type;            /* 415: Content-Type or Content-Encoding */
	uint64_t headers_too_large;   /* 431 */
	uint64_t unavailable_503;     /* 503: a full spool, request_timeout, or stopping */
	uint64_t budget_refused;      /* of which: memory_limit's share for bodies in use */
	uint64_t request_timeouts;    /* of which: waited request_timeout for room */
	uint64_t errors_500;          /* 500: the spool lost the events */
	uint64_t fields_dropped;      /* events spooled without their fields: too large with them */
	uint64_t dropped_unspoolable; /* events the spool refused even without fields */
	uint64_t waits;               /* times a request waited for room in the spool */
	uint64_t budget_waits;        /* requests that waited for memory_limit's share */
	uint64_t body_bytes;          /* request body bytes received, before gzip decoding */
	uint64_t connections;         /* accepted and served */
	uint64_t connections_open;    /* of which open now */
	uint64_t connections_refused; /* closed at once: max_connections reached, none idle */
	uint64_t idle_closed;         /* idle ones closed to admit a new one */
	uint64_t timeouts;            /* closed after the idle timeout */
	uint64_t handshakes_failed;   /* HTTPS: TLS handshakes failed or timed out */
};

/* A copy of the source's counters. */
void http_source_get_stats(const struct http_source *hs, struct http_source_stats *st);

/* The `http` type of source_types. */
extern const struct source_type http_source_type;

#endif
