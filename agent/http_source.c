/* SPDX-License-Identifier: Apache-2.0 */
/* http_source: JSON events over HTTP into the spool (see http_source.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "agent/http_source.h"
#include "agent/pipeline.h"
#include "common/httpd.h"
#include "common/httpd_config.h"
#include "common/intake.h"
#include "common/jsonw.h"
#include "common/log.h"

struct http_source;

/*
 * What spool_when_committed calls back with: a connection may be gone by
 * then (closed by its peer's timeout or the stop), so the callback finds
 * its request through this, and the request clears it when it goes.
 */
struct http_ticket {
	struct httpd_conn *conn;      /* NULL once the connection is gone */
};

/* A request the server handed over (each connection's data area). */
struct http_req {
	struct http_source *hs;
	struct budget_waiter bw;      /* its head waits for memory_limit's share */
	TAILQ_ENTRY(http_req) wait_link;  /* hs->waiting, while waiting_room */
	bool waiting_room;            /* waiting for the spool's writable */
	struct http_ticket *ticket;   /* while its commit is awaited */
	size_t taken;                 /* events appended or dropped */
	size_t appended, dropped;
};

struct http_source {
	const struct agent_source *cfg;
	struct spool *spool;
	struct pipeline pipe;
	struct httpd *httpd;
	struct budget *budget;        /* NULL: bodies are not counted */
	struct tls_config_options tls;
	char label[96];               /* "source NAME" */
	TAILQ_HEAD(, http_req) waiting;
	uint64_t waits;
	void (*done)(void *ctx);
	void *done_ctx;
};

static struct http_req *
http_req_of(struct httpd_conn *c)
{
	return httpd_conn_data(c);
}

/* The request stops waiting for the spool's writable. */
static void
http_req_unwait(struct http_req *q)
{
	if (!q->waiting_room)
		return;
	q->waiting_room = false;
	TAILQ_REMOVE(&q->hs->waiting, q, wait_link);
}

/* The commit q waits for may still come, with nobody left to tell. */
static void
http_req_forget_ticket(struct http_req *q)
{
	if (q->ticket == NULL)
		return;
	q->ticket->conn = NULL;
	q->ticket = NULL;
}

static void
http_req_ok(struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);
	struct buf *out = httpd_conn_body(c);

	if (jsonw_raw(out, "{\"accepted\":") != 0 || jsonw_uint(out, q->appended) != 0 ||
	    (q->dropped > 0 && (jsonw_raw(out, ",\"dropped\":") != 0 ||
	    jsonw_uint(out, q->dropped) != 0)) || jsonw_raw(out, "}") != 0)
		abort();   /* a few digits in 4 KiB */
	log_debug("%s: %s: %zu event(s) accepted", q->hs->label, httpd_conn_peer(c), q->appended);
	httpd_conn_ok(c, q->appended);
}

/* ---------------------------------------------------------------- spooling */

static void
http_on_committed(void *ctx, int status)
{
	struct http_ticket *t = ctx;
	struct httpd_conn *c = t->conn;
	struct http_req *q;

	free(t);
	if (c == NULL)
		return;
	q = http_req_of(c);
	q->ticket = NULL;
	if (status == 0) {
		http_req_ok(c);
		return;
	}
	if (status == -ECANCELED)
		httpd_conn_fail(c, 503, "the agent stopped before the events were stored: retry");
	else
		httpd_conn_fail(c, 500, "the spool could not store the events (%s): retry",
		    strerror(-status));
}

/* Every event is appended (or dropped): the answer waits for their commit. */
static void
http_req_commit(struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);
	struct http_ticket *t;
	int r;

	if (q->appended == 0) {
		http_req_ok(c);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		abort();   /* docs/style.md: out of memory is not a peer's fault */
	t->conn = c;
	if ((r = spool_when_committed(q->hs->spool, http_on_committed, t)) != 0) {
		free(t);
		if (r == -ENOMEM)
			abort();
		httpd_conn_fail(c, 503, "the agent is stopping: retry");
		return;
	}
	q->ticket = t;
	/* A spool that fills up, or cannot commit, holds the commit back: the client hears why. */
	httpd_conn_wait(c, true);
}

/*
 * The request waits for the spool's writable callback (http_source_resume),
 * reading nothing meanwhile, for up to request_timeout from its first wait.
 */
static void
http_req_wait_room(struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);

	q->waiting_room = true;
	TAILQ_INSERT_TAIL(&q->hs->waiting, q, wait_link);
	q->hs->waits++;
	httpd_conn_wait(c, false);
}

/* The answer to a request when the spool is at max_size, or its disk is full. */
static void
http_req_spool_full(struct httpd_conn *c, const struct spool_stats *ss)
{
	if (ss->disk_full)
		httpd_conn_fail(c, 503, "disk full: the spool's filesystem (data_dir) has no room "
		    "left: retry later; free space there, or lower spool.max_size");
	else
		httpd_conn_fail(c, 503, "the spool is full (at spool.max_size until the relays "
		    "acknowledge events): retry later; check that the relays are reachable and "
		    "acknowledging");
}

/*
 * Appends the request's events, at most HTTPD_WORK bytes of body per
 * call, then waits for their commit. No room: a full spool (at max_size)
 * with nothing of the request taken is 503 at once; otherwise (the writer
 * is busy with a commit, or the spool filled up mid-request) the request
 * waits for the spool's writable callback and goes on from there, for up
 * to request_timeout.
 */
static void
http_req_spool(struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);
	struct http_source *hs = q->hs;
	struct intake *in = httpd_conn_intake(c);
	size_t from = intake_offset(in), bytes;
	struct spool_stats ss;
	struct event ev;
	int r;

	for (;;) {
		if (intake_offset(in) - from >= HTTPD_WORK) {
			httpd_conn_queue(c);
			return;
		}
		if (intake_next(in, httpd_conn_received_ns(c), &ev, &bytes) == 0)
			break;
		r = pipeline_emit(&hs->pipe, &ev, 0, NULL);
		if (r == -EAGAIN) {
			/* A full spool with nothing of the request in: the client may retry it whole. */
			spool_get_stats(hs->spool, &ss);
			if (q->taken == 0 && ss.full)
				http_req_spool_full(c, &ss);
			else
				http_req_wait_room(c);
			return;
		}
		if (r != 0) {
			q->dropped++;
			log_error("%s: %s: an event of about %zu bytes cannot be spooled (%s); "
			    "dropped. The spool's largest event is too small for this source's "
			    "max_body_size", hs->label, httpd_conn_peer(c), bytes, strerror(-r));
		} else {
			q->appended++;
		}
		intake_consume(in);
		q->taken++;
	}
	http_req_commit(c);
}

/* ---------------------------------------------------------------- the server's callbacks */

static void
http_on_request(void *ctx, struct httpd_conn *c)
{
	struct http_source *hs = ctx;
	struct http_req *q = http_req_of(c);
	struct intake *in = httpd_conn_intake(c);
	struct spool_stats ss;

	q->hs = hs;
	q->taken = q->appended = q->dropped = 0;
	/*
	 * A spool at max_size still has free hand-off blocks, but what goes
	 * into them waits for the relays to acknowledge older events: 503
	 * rather than a client left waiting, nothing taken. Anything else
	 * short (a source waiting for a hand-off block while the writer
	 * commits) is no reason to refuse: the request waits its turn.
	 */
	spool_get_stats(hs->spool, &ss);
	if (ss.full) {
		http_req_spool_full(c, &ss);
		return;
	}
	/*
	 * Usually the spool grants the whole request at once. When it does
	 * not (a busy writer, or a request larger than the hand-off queue,
	 * which would never fit whole), the events go in as room comes.
	 */
	if (!spool_room(hs->spool, intake_bytes(in), intake_events(in)))
		log_debug("%s: %s: a request of %zu events goes into the spool as room comes",
		    hs->label, httpd_conn_peer(c), intake_events(in));
	http_req_spool(c);
}

static void
http_on_work(void *ctx, struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);

	(void)ctx;
	if (!q->waiting_room && q->ticket == NULL)
		http_req_spool(c);
}

/* A request waited request_timeout for room or its commit: 503, saying what it waited for. */
static void
http_on_timeout(void *ctx, struct httpd_conn *c)
{
	struct http_source *hs = ctx;
	struct http_req *q = http_req_of(c);
	struct spool_stats ss;
	char part[160] = "";

	http_req_unwait(q);
	http_req_forget_ticket(q);
	if (q->taken > 0)
		snprintf(part, sizeof(part), " (%zu of its %zu events are in the spool already, and "
		    "are stored again when it is retried)", q->taken,
		    intake_events(httpd_conn_intake(c)));
	spool_get_stats(hs->spool, &ss);
	if (ss.full)
		httpd_conn_fail(c, 503, "%s%s: retry later; %s", ss.disk_full ?
		    "disk full: the spool's filesystem (data_dir) has no room left" :
		    "the spool is full (at spool.max_size until the relays acknowledge events)", part,
		    ss.disk_full ? "free space there, or lower spool.max_size" :
		    "check that the relays are reachable and acknowledging");
	else
		httpd_conn_fail(c, 503, "the spool's writer did not take or commit the request's "
		    "events within request_timeout (%" PRIu64 " ms)%s%s: retry later",
		    hs->cfg->request_timeout_ms != 0 ? hs->cfg->request_timeout_ms :
		    (uint64_t)HTTPD_REQUEST_TIMEOUT_MS, part, ss.commit_errors != 0 ?
		    "; the spool has commit errors, see the agent's log" : "");
}

static void
http_on_stop(void *ctx, struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);

	(void)ctx;
	if (q->taken == 0) {
		http_req_unwait(q);
		httpd_conn_fail(c, 503, "the agent is stopping: retry");
		return;
	}
	/* Some of its events are in: it is answered if it finishes within the stop's grace. */
}

static void
http_on_abandon(void *ctx, struct httpd_conn *c)
{
	struct http_req *q = http_req_of(c);

	(void)ctx;
	http_req_unwait(q);
	http_req_forget_ticket(q);
}

/* memory_limit's share for request bodies (agent/budget.h), when the agent set one. */
static int
http_take(void *ctx, uint64_t n)
{
	struct http_source *hs = ctx;

	return hs->budget != NULL ? budget_take(hs->budget, n) : 0;
}

static void
http_give(void *ctx, uint64_t n)
{
	struct http_source *hs = ctx;

	if (hs->budget != NULL)
		budget_give(hs->budget, n);
}

static uint64_t
http_limit(void *ctx)
{
	struct http_source *hs = ctx;
	struct budget_stats bs;

	if (hs->budget == NULL)
		return UINT64_MAX;
	budget_get_stats(hs->budget, &bs);
	return bs.limit;
}

static void
http_on_budget(struct budget_waiter *w)
{
	struct http_req *q = (struct http_req *)((char *)w - offsetof(struct http_req, bw));

	httpd_conn_memory_freed(httpd_conn_of_data(q));
}

static void
http_wait(void *ctx, struct httpd_conn *c)
{
	struct http_source *hs = ctx;
	struct http_req *q = http_req_of(c);

	q->hs = hs;
	q->bw.cb = http_on_budget;
	budget_wait(hs->budget, &q->bw);
}

static void
http_cancel(void *ctx, struct httpd_conn *c)
{
	struct http_source *hs = ctx;

	if (hs->budget != NULL)
		budget_cancel(hs->budget, &http_req_of(c)->bw);
}

static const struct httpd_callbacks http_callbacks = {
	.on_request = http_on_request,
	.on_work = http_on_work,
	.on_timeout = http_on_timeout,
	.on_stop = http_on_stop,
	.on_abandon = http_on_abandon,
	.take = http_take,
	.give = http_give,
	.limit = http_limit,
	.wait = http_wait,
	.cancel = http_cancel,
};

/* ---------------------------------------------------------------- API */

int
http_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct http_source **out)
{
	struct httpd_options o;
	struct http_source *hs;
	int r;

	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		log_error("source %s: out of memory", cfg->name);
		return -ENOMEM;
	}
	hs->cfg = cfg;
	hs->spool = spool;
	TAILQ_INIT(&hs->waiting);
	snprintf(hs->label, sizeof(hs->label), "source %s", cfg->name);
	pipeline_init(&hs->pipe, spool, "event too large for the spool with its fields; "
	    "fields dropped", cfg->chain);
	memset(&o, 0, sizeof(o));
	o.label = hs->label;
	o.daemon = "agent";
	o.stored = "spooled";
	o.path = HTTP_SOURCE_PATH;
	o.listen = cfg->listen.items;
	o.nlisten = cfg->listen.n;
	o.max_body_size = cfg->max_body_size;
	o.max_connections = cfg->max_connections;
	o.idle_timeout_ms = cfg->idle_timeout_ms;
	o.request_timeout_ms = cfg->request_timeout_ms;
	httpd_config_options(&o, &cfg->auth, &cfg->tls, AGENT_MAX_TOKENS, &hs->tls);
	o.host = host;
	o.stream = cfg->stream != NULL ? cfg->stream : cfg->name;
	o.data_size = sizeof(struct http_req);
	o.cb = &http_callbacks;
	o.ctx = hs;
	if ((r = httpd_start(loop, &o, &hs->httpd)) != 0) {
		free(hs);
		return r;
	}
	*out = hs;
	return 0;
}

int
http_source_reload(struct http_source *hs)
{
	return httpd_reload(hs->httpd);
}

void
http_source_set_budget(struct http_source *hs, struct budget *b)
{
	hs->budget = b;
}

void
http_source_resume(struct http_source *hs)
{
	struct http_req *q;

	while ((q = TAILQ_FIRST(&hs->waiting)) != NULL) {
		http_req_unwait(q);
		httpd_conn_queue(httpd_conn_of_data(q));
	}
}

static void
http_source_stopped(void *ctx)
{
	struct http_source *hs = ctx;
	void (*done)(void *) = hs->done;
	void *done_ctx = hs->done_ctx;

	free(hs);
	if (done != NULL)
		done(done_ctx);
}

void
http_source_stop(struct http_source *hs, void (*done)(void *ctx), void *ctx)
{
	hs->done = done;
	hs->done_ctx = ctx;
	httpd_stop(hs->httpd, http_source_stopped, hs);
}

int
http_source_address(const struct http_source *hs, size_t i, struct sockaddr_storage *out)
{
	return httpd_address(hs->httpd, i, out);
}

void
http_source_get_stats(const struct http_source *hs, struct httpd_stats *st)
{
	httpd_get_stats(hs->httpd, st);
	st->fields_dropped = hs->pipe.fields_dropped;
	st->dropped_unspoolable = hs->pipe.dropped;
	st->waits = hs->waits;
}

/* ---------------------------------------------------------------- its type */

static uint64_t
http_source_max_message(const struct agent_source *cfg)
{
	/* An event's message is one object of a body: up to max_body_size. */
	return cfg->max_body_size;
}

static int
http_source_type_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct budget *budget, void **out)
{
	struct http_source *src;
	int r;

	if ((r = http_source_start(loop, cfg, host, spool, &src)) != 0)
		return r;
	http_source_set_budget(src, budget);
	*out = src;
	return 0;
}

static void
http_source_type_reload(void *src)
{
	/* Logged; the previous tokens stay. */
	(void)http_source_reload(src);
}

static void
http_source_type_resume(void *src)
{
	http_source_resume(src);
}

static void
http_source_type_stop(void *src, void (*done)(void *ctx), void *ctx)
{
	http_source_stop(src, done, ctx);
}

static void
http_source_type_stats(const void *src, void *st)
{
	http_source_get_stats(src, st);
}

const struct source_type http_source_type = {
	.name = "http",
	.max_message = http_source_max_message,
	.start = http_source_type_start,
	.resume = http_source_type_resume,
	.reload = http_source_type_reload,
	.stop = http_source_type_stop,
	.stats = http_source_type_stats,
	.stats_size = sizeof(struct httpd_stats),
	.fields = httpd_metrics_fields,
	.nfields = HTTPD_METRICS_FIELDS,
};
