/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics: a daemon's Prometheus metrics and health endpoint (the
 * `metrics.listen` key of both daemons), a small HTTP/1.1 server on the
 * daemon's main loop:
 *
 *   GET /metrics   200, text/plain; version=0.0.4: the daemon's counters
 *                  and gauges, rendered by its callback at each request
 *   GET /health    200 (or 503), application/json: {"status":"ok"|...,...}
 *                  from its callback; that it answers at all shows that
 *                  the loop turns
 *   HEAD of either: the same head without the body
 *   another path   404;  another method  405 (Allow: GET, HEAD)
 *
 * Both answer while the spool is full, Kafka is down or sources are
 * paused: rendering only reads counters, it never waits.
 *
 * Bounds (docs/architecture.md guarantee 3): at most METRICS_MAX_CONNECTIONS
 * connections (more are accepted and closed at once, counted); a request
 * head of at most METRICS_HEADER_MAX bytes (431 and close); a request body
 * is refused (413); an answer of at most METRICS_BODY_MAX bytes (500 when
 * the rendering would be larger); a connection idle for METRICS_IDLE_MS
 * is closed. Keep-alive and pipelined requests are answered in order, one
 * at a time.
 */
#ifndef LOGFERRY_METRICS_H
#define LOGFERRY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "common/config.h"

#define METRICS_MAX_CONNECTIONS 16
#define METRICS_HEADER_MAX (8 * 1024)
#define METRICS_BODY_MAX (4 * 1024 * 1024)
#define METRICS_IDLE_MS 30000

/*
 * Where a daemon writes its metrics. Errors are sticky: the first one is
 * kept in err and later calls do nothing, so a rendering checks once.
 */
struct metrics_writer {
	struct buf *out;
	int err;                  /* 0, or the first negative error */
	const char *family;       /* the last family declared, for its samples */
};

struct metrics_label {
	const char *name;         /* [a-zA-Z_][a-zA-Z0-9_]* */
	const char *value;        /* any bytes; escaped as Prometheus wants */
};

/*
 * Declares a metric family: its # HELP and # TYPE lines. type is
 * "counter" or "gauge"; help is one line. Every sample of the family
 * follows before the next family.
 */
void metrics_family(struct metrics_writer *w, const char *name, const char *type,
    const char *help);

/* One sample of the last family declared, with nlabels labels (0 is fine). */
void metrics_sample(struct metrics_writer *w, const struct metrics_label *labels,
    size_t nlabels, uint64_t value);

/* A family with one sample and no labels: the common case. */
void metrics_one(struct metrics_writer *w, const char *name, const char *type,
    const char *help, uint64_t value);

/* A uint64_t member of a stats struct, as a metric family. */
struct metrics_field {
	const char *name;
	const char *type;         /* "counter" or "gauge" */
	const char *help;
	size_t offset;            /* offsetof(the struct, the member) */
};

/*
 * Writes each of the nfields fields as a family with one sample per
 * element of stats (an array of n structs of size bytes each); with a
 * label name, element i is labelled label=values[i]. n 1 and label NULL:
 * one sample without labels.
 */
void metrics_table(struct metrics_writer *w, const struct metrics_field *fields, size_t nfields,
    const void *stats, size_t size, size_t n, const char *label, const char *const *values);

/* A static table of fields, as metrics_table's fields and nfields. */
#define METRICS_FIELDS(f) (f), (sizeof(f) / sizeof((f)[0]))

struct metrics_ops {
	/* Writes every metric. Runs on the loop thread, per GET /metrics. */
	void (*render)(void *ctx, struct metrics_writer *w);
	/*
	 * Writes the JSON object of GET /health into out and returns the
	 * status: 200, or 503 when the daemon cannot do its work now.
	 */
	int (*health)(void *ctx, struct buf *out);
};

struct metrics_stats {
	uint64_t requests;            /* answered, whatever the answer */
	uint64_t connections;         /* accepted and served */
	uint64_t connections_refused; /* closed at once: METRICS_MAX_CONNECTIONS reached */
	uint64_t errors;              /* 4xx and 5xx answers */
};

struct metrics;

/*
 * Listens on addr (host:port; port 0 picks one, see metrics_address) on
 * loop and answers with ops and ctx, which must outlive the endpoint.
 * Returns 0 and sets *out (the caller owns it: metrics_stop), or a
 * negative error after logging which address failed and what to do; on
 * an error nothing is left open once the loop has run one turn.
 */
int metrics_start(uv_loop_t *loop, const struct config_addr *addr, const struct metrics_ops *ops,
    void *ctx, struct metrics **out);

/*
 * Closes the listener and every connection (an answer being written is
 * cut). done(ctx) runs on the loop once every handle is closed and m is
 * freed; done may be NULL. NULL m is fine (done is not called then).
 */
void metrics_stop(struct metrics *m, void (*done)(void *ctx), void *ctx);

/* The address the endpoint is bound to, with the port the kernel picked. */
int metrics_address(const struct metrics *m, struct sockaddr_storage *out);

/* Idle connections are closed after ms (default METRICS_IDLE_MS; for tests). */
void metrics_set_idle_timeout(struct metrics *m, uint64_t ms);

/* A copy of the endpoint's own counters. */
void metrics_get_stats(const struct metrics *m, struct metrics_stats *st);

#endif
