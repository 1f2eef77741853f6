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
 * common/httpd.h is the HTTP server: connections, TLS, tokens, rate
 * limits, limits and the answers it gives itself. This source answers
 *   200 {"accepted":N}   only once the request's N events are committed to
 *                        the spool (spool_when_committed)
 *   503 (Retry-After: 1)  the spool is full (at max_size): nothing of the
 *        request was spooled, the client retries later; or the request
 *        waited request_timeout for room (the error says for what, and how
 *        many of its events are in the spool already); or the agent is
 *        stopping
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
 * HTTPS (cfg->tls.cert_file set), connections and their bounds: see
 * common/httpd.h; http_source_reload loads the certificate again for new
 * connections.
 *
 * Auth (cfg->auth.tokens_file set): a request needs "Authorization: Bearer
 * TOKEN" of a token in the file, or is answered 401 (WWW-Authenticate:
 * Bearer) before its body is read or charged; its sender's name becomes
 * each event's `sender` field. A sender over its rate limits (auth's
 * events_per_second, bytes_per_second, with bursts) is answered 429 with
 * Retry-After: before its body when its buckets are empty, else once its
 * body is checked, whole, nothing spooled.
 *
 * Work per loop turn is capped (HTTPD_WORK bytes of body per
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
#include "common/httpd.h"

#define HTTP_SOURCE_PATH "/v1/events"
#define HTTP_SOURCE_HEADER_MAX HTTPD_HEADER_MAX
#define HTTP_SOURCE_BODY_OVERHEAD HTTPD_BODY_OVERHEAD

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
 * bodies, whose decoded size is unknown; plus HTTPD_BODY_OVERHEAD)
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
 * for up to HTTPD_STOP_GRACE_MS; the rest are closed unanswered.
 * done(ctx) runs when every handle is closed and hs is freed. The spool
 * must stay open until then.
 */
void http_source_stop(struct http_source *hs, void (*done)(void *ctx), void *ctx);

/*
 * The address listener i (in cfg->listen order) is bound to, with the
 * port the kernel picked for port 0. Returns 0, or -ENOENT.
 */
int http_source_address(const struct http_source *hs, size_t i, struct sockaddr_storage *out);

/* A copy of the source's counters: common/httpd.h's, with the spool's own part filled in. */
void http_source_get_stats(const struct http_source *hs, struct httpd_stats *st);

/* The `http` type of source_types. */
extern const struct source_type http_source_type;

#endif
