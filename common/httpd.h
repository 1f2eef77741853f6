/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpd: the HTTP/1.1 server of JSON events that both daemons' intakes
 * run (the agent's `http` sources, agent/http_source.c; the relay's
 * http_intake, relay/http_intake.c): listeners, plain or TLS connections
 * (common/tls), request parsing, limits, authentication and the answers.
 * Its owner does what a checked request's events are for (spool them,
 * produce them to Kafka) and answers when that is done.
 *
 *   POST <path>
 *   Content-Type: application/json       one JSON object
 *              or application/x-ndjson   JSON objects, one per line
 *   [Content-Encoding: gzip]
 *
 * A request's body is decoded and checked whole by an intake
 * (common/intake.h) before the owner hears of it: on_request then gets a
 * request with at least one event, every object valid and its sender
 * within its rate limits. The owner takes the events (intake_next,
 * intake_consume), at most HTTPD_WORK bytes of body per loop turn
 * (httpd_conn_queue brings it back through on_work), and answers with
 * httpd_conn_ok or httpd_conn_fail, at once or later.
 *
 * The server's own answers (a JSON body each; errors as {"error":"..."}):
 *   200 {"accepted":0}  a body without objects
 *   400  a malformed object (the error names its line), a broken gzip
 *        body or a malformed HTTP request
 *   401 (WWW-Authenticate: Bearer)  tokens_file set, and no token or an
 *        unknown one; answered before the body is read
 *   403  a client certificate whose common name allowed_cns does not allow
 *   404  another path;  405 (Allow: POST) another method on the path
 *   413  a body over max_body_size, as sent or decoded; closes
 *   415  another Content-Type or Content-Encoding
 *   429 (Retry-After)  the sender over its rate limits (limits): before
 *        its body when its buckets are empty, else once its body is checked
 *   431  request headers over HTTPD_HEADER_MAX bytes; closes
 *   503 (Retry-After: 1)  the memory hook refused the body, or it waited
 *        request_timeout for it; stopping; max_connections with none idle
 *
 * Connections: HTTP/1.1 keep-alive (Connection: close honoured; HTTP/1.0
 * closes unless it asks for keep-alive); one request at a time, pipelined
 * ones wait unread; "Expect: 100-continue" answered once the body may
 * come; closed after idle_timeout without a byte from the client. At most
 * max_connections at once: when all are open, the one idle the longest
 * is closed for a new one; when none is idle, the new one is sent a 503
 * and closed, counted. After an answer that closes, unread bytes are
 * drained for up to HTTPD_LINGER_MS so the client reads the answer, not a
 * reset. TLS (tls set): every connection is TLS, closed and counted when
 * its handshake fails or passes handshake_timeout; decrypted records are
 * copied into the read buffer, while plain HTTP reads into it directly and
 * writes the answer's buffers as they are (no copy).
 *
 * Memory (the optional hooks take, give, limit, wait, cancel): a request
 * takes about its body's size before it is read (twice its
 * Content-Length, at most max_body_size; max_body_size for gzip or chunked
 * bodies; plus HTTPD_BODY_OVERHEAD) and gives it back once answered. One
 * that does not fit waits, unread, until the owner calls
 * httpd_conn_memory_freed, for up to request_timeout; then 503.
 */
#ifndef LOGFERRY_HTTPD_H
#define LOGFERRY_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/intake.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "common/token.h"

#define HTTPD_HEADER_MAX (16 * 1024)       /* request line and headers */
#define HTTPD_IDLE_TIMEOUT_MS 60000        /* idle_timeout when 0 */
#define HTTPD_REQUEST_TIMEOUT_MS 10000     /* request_timeout when 0 */
#define HTTPD_LINGER_MS 2000
#define HTTPD_STOP_GRACE_MS 5000           /* answers still due at stop */
#define HTTPD_WORK (256 * 1024)            /* body bytes per connection per loop turn */
/* Taken from memory for a request beside its body: inflate state, one object's parse. */
#define HTTPD_BODY_OVERHEAD (64 * 1024)

struct httpd;
struct httpd_conn;

struct httpd_callbacks {
	/*
	 * A request is checked (see above); the owner holds it until it calls
	 * httpd_conn_ok or httpd_conn_fail. Its data area (httpd_conn_data)
	 * is the owner's; the server never touches it.
	 */
	void (*on_request)(void *ctx, struct httpd_conn *c);
	/* httpd_conn_queue's call back, a loop turn later. */
	void (*on_work)(void *ctx, struct httpd_conn *c);
	/*
	 * The request the owner holds waited request_timeout (httpd_conn_wait):
	 * the owner answers it now, saying what it waited for.
	 */
	void (*on_timeout)(void *ctx, struct httpd_conn *c);
	/* httpd_stop, for a request the owner holds: answer now, or let it run out the grace. */
	void (*on_stop)(void *ctx, struct httpd_conn *c);
	/* The connection of a request the owner holds is closing: forget c (it is freed later). */
	void (*on_abandon)(void *ctx, struct httpd_conn *c);
	/* The memory hook, or NULL: take returns 0 or -ENOBUFS; wait's end is httpd_conn_memory_freed. */
	int (*take)(void *ctx, uint64_t n);
	void (*give)(void *ctx, uint64_t n);
	uint64_t (*limit)(void *ctx);
	void (*wait)(void *ctx, struct httpd_conn *c);
	void (*cancel)(void *ctx, struct httpd_conn *c);
};

struct httpd_options {
	const char *label;            /* starts every log line: "source web", "http_intake" */
	const char *daemon;           /* "agent", "relay": in answers ("the agent is stopping") */
	const char *stored;           /* "spooled", "produced": in advice ("nothing ... was spooled") */
	const char *path;             /* the one path: "/v1/events" */
	const struct config_addr *listen;
	size_t nlisten;
	uint64_t max_body_size;
	int64_t max_connections;
	uint64_t idle_timeout_ms;     /* 0: HTTPD_IDLE_TIMEOUT_MS */
	uint64_t request_timeout_ms;  /* 0: HTTPD_REQUEST_TIMEOUT_MS */
	const struct tls_config_options *tls;   /* NULL: plain HTTP; copied, its files reread on reload */
	const struct config_list *allowed_cns;  /* char *: fnmatch globs; NULL or empty: any */
	const char *tokens_file;      /* NULL: no bearer tokens */
	size_t max_tokens;
	struct token_limits limits;   /* each sender's; zeros: none */
	const char *host;             /* the events' host (intake_options) */
	const char *stream;           /* their stream unless an object names one */
	size_t data_size;             /* bytes of each connection's owner data area */
	const struct httpd_callbacks *cb;
	void *ctx;
};

struct httpd_stats {
	uint64_t requests;            /* requests answered, whatever the answer */
	uint64_t accepted;            /* 200 with events (httpd_conn_ok) */
	uint64_t events;              /* events of those requests */
	uint64_t bad_requests;        /* 400 */
	uint64_t unauthorized;        /* 401 */
	uint64_t rate_limited;        /* 429 */
	uint64_t forbidden;           /* 403 */
	uint64_t not_found;           /* 404 */
	uint64_t bad_method;          /* 405 */
	uint64_t too_large;           /* 413 */
	uint64_t bad_type;            /* 415 */
	uint64_t headers_too_large;   /* 431 */
	uint64_t unavailable_503;     /* 503, whoever answered it */
	uint64_t budget_refused;      /* of which: the memory hook had no room, or never would */
	uint64_t request_timeouts;    /* of which: waited request_timeout */
	uint64_t errors_500;          /* 500 (the owner's) */
	/* The owner's own, which httpd_get_stats leaves at 0 for it to fill in. */
	uint64_t fields_dropped;      /* events taken without their fields: too large with them */
	uint64_t dropped_unspoolable; /* events the owner refused even without fields */
	uint64_t waits;               /* times a request waited for the owner's room */
	uint64_t budget_waits;        /* requests that waited for memory */
	uint64_t body_bytes;          /* request body bytes received, before gzip decoding */
	uint64_t connections;         /* accepted and served */
	uint64_t connections_open;    /* of which open now */
	uint64_t connections_refused; /* closed at once: max_connections reached, none idle */
	uint64_t idle_closed;         /* idle ones closed to admit a new one */
	uint64_t timeouts;            /* closed after the idle timeout */
	uint64_t handshakes_failed;   /* TLS handshakes failed or timed out */
};

/*
 * Loads the tokens and certificates of o and listens on each of its
 * addresses. o's strings and lists must outlive the server. Returns 0, or
 * a negative error after logging which address or file failed and what
 * to do; then nothing is left open once the loop has run one turn.
 */
int httpd_start(uv_loop_t *loop, const struct httpd_options *o, struct httpd **out);

/*
 * SIGHUP: the certificate files (for new connections; open ones keep
 * theirs) and tokens_file again; each sender's rate limits carry over by
 * name. Returns 0, or a negative error after logging it; what failed
 * stays as it was.
 */
int httpd_reload(struct httpd *h);

/*
 * Stops: closes the listeners and idle connections at once; requests not
 * yet handed over are answered 503; on_stop decides for the owner's; the
 * answers still due are waited for up to HTTPD_STOP_GRACE_MS, then their
 * connections close. done(ctx) runs when every handle is closed and h is
 * freed.
 */
void httpd_stop(struct httpd *h, void (*done)(void *ctx), void *ctx);

bool httpd_stopping(const struct httpd *h);

/* The address listener i is bound to (the kernel's port for port 0). Returns 0, or -ENOENT. */
int httpd_address(const struct httpd *h, size_t i, struct sockaddr_storage *out);

void httpd_get_stats(const struct httpd *h, struct httpd_stats *st);

/* The counters' metrics (logferry_http_*), read from a struct httpd_stats. */
#define HTTPD_METRICS_FIELDS 27
extern const struct metrics_field httpd_metrics_fields[HTTPD_METRICS_FIELDS];

/* The request's events: intake_events of them, checked. */
struct intake *httpd_conn_intake(struct httpd_conn *c);

/* When its body was complete (ns since the epoch): the time of objects without a ts. */
uint64_t httpd_conn_received_ns(const struct httpd_conn *c);

const char *httpd_conn_peer(const struct httpd_conn *c);

/* Its token's name (or certificate's CN), "" without authentication. */
const char *httpd_conn_sender(const struct httpd_conn *c);

/* The owner's data area (data_size bytes, zeroed when the connection opens). */
void *httpd_conn_data(struct httpd_conn *c);

/* The connection of a data area httpd_conn_data returned. */
struct httpd_conn *httpd_conn_of_data(void *data);

/* on_work for c in the next loop turn (a work cap reached, or a resume). */
void httpd_conn_queue(struct httpd_conn *c);

/*
 * The owner waits for something (room, an acknowledgement): on_timeout
 * follows after request_timeout from the first such call (from now with
 * restart). While stopping, the wait ends at the grace.
 */
void httpd_conn_wait(struct httpd_conn *c, bool restart);

/* Bytes came back to the memory hook: a request waiting for them tries again. */
void httpd_conn_memory_freed(struct httpd_conn *c);

/*
 * Answers 200 with the JSON body written into httpd_conn_body; events
 * (those the owner took) count in accepted and events when not 0.
 */
void httpd_conn_ok(struct httpd_conn *c, size_t events);
struct buf *httpd_conn_body(struct httpd_conn *c);

/*
 * Answers status (400..599) with {"error": fmt...}, counted, logged with
 * advice; 503 carries Retry-After: 1 and 5xx is logged as the owner's
 * trouble.
 */
void httpd_conn_fail(struct httpd_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The next answer closes the connection (its body is unread, say). */
void httpd_conn_close_after(struct httpd_conn *c);

#endif
