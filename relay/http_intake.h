/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_intake: the relay's HTTP intake for senders without an agent
 * (issue 20 item 3): `POST /v1/events` on http_intake.listen, served by
 * common/httpd (one JSON object or NDJSON, gzip allowed; HTTPS, bearer
 * tokens, rate limits, client certificates, bounds: see httpd.h). Each
 * checked request becomes one Kafka batch (relay/kafka.h) on the main
 * loop, produced through the same routes as agents' events, and is
 * answered
 *   200 {"accepted":N}  once Kafka acknowledged every event of it
 *                       ({"accepted":N,"refused":K} when K were refused
 *                       for good as too large for Kafka: not re-sent)
 *   503 (Retry-After: 1)  a delivery failed, kafka.delivery_timeout or
 *        request_timeout passed, or the relay is stopping; some of its
 *        events may be in Kafka: the client sends the whole request again
 *        (the only source of duplicates).
 *
 * Events: agent id (logferry-agent, ${agent}, JSON "agent") = the token's
 * name, or the client certificate's common name, or "anonymous" without
 * authentication; host = the relay's id; source = the listener
 * ("https://10.0.0.5:8443"); stream = http_intake.stream unless the
 * object has a `stream` member. Sequence numbers (logferry-seq) are one
 * counter of the intake, shared by its senders: the time in microseconds
 * since the epoch at the first event, then one more per event, never less
 * than the clock (docs/record-format.md says what that guarantees).
 *
 * Memory: request bodies draw from http_intake.memory_limit (httpd's
 * hook); librdkafka's queue is the relay's (-EAGAIN: the request waits
 * for the writable callback, unread, up to request_timeout).
 */
#ifndef LOGFERRY_HTTP_INTAKE_H
#define LOGFERRY_HTTP_INTAKE_H

#include <uv.h>

#include "common/httpd.h"
#include "relay/kafka.h"
#include "relay/relay_config.h"

#define HTTP_INTAKE_PATH "/v1/events"
#define HTTP_INTAKE_ANONYMOUS "anonymous"   /* the agent id without authentication */

struct http_intake;

/*
 * Starts the intake of cfg->http_intake on loop (cfg and k must outlive
 * it). Returns 0, or a negative error after logging what failed.
 */
int http_intake_start(uv_loop_t *loop, const struct relay_config *cfg, struct kafka *k,
    struct http_intake **out);

/* SIGHUP: certificates and tokens_file again (see httpd_reload). */
int http_intake_reload(struct http_intake *hi);

/*
 * Stops accepting; requests with events in Kafka's hands get their answer
 * for up to HTTPD_STOP_GRACE_MS, the others 503; then its Kafka loop is
 * closed, hi freed, and done(ctx) called.
 */
void http_intake_stop(struct http_intake *hi, void (*done)(void *ctx), void *ctx);

/* The server's counters (requests by answer, events, body bytes, connections). */
void http_intake_get_stats(const struct http_intake *hi, struct httpd_stats *st);

/* The address listener i is bound to. Returns 0, or -ENOENT. */
int http_intake_address(const struct http_intake *hi, size_t i, struct sockaddr_storage *out);

#endif
