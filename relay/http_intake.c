/* SPDX-License-Identifier: Apache-2.0 */
/* http_intake: POST /v1/events into Kafka, answered after Kafka's acks (see http_intake.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "common/buf.h"
#include "common/httpd_config.h"
#include "common/intake.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/tls.h"
#include "relay/http_intake.h"

#define HTTP_INTAKE_ENCODE_MAX (64u * 1024 * 1024)   /* one event encoded (format protobuf) */

struct http_intake;

/* A request the server handed over (each connection's data area). */
struct intake_req {
	struct http_intake *hi;
	TAILQ_ENTRY(intake_req) link; /* hi->room or hi->memory, while waiting there */
	bool waiting_room;            /* for librdkafka's queue (the writable callback) */
	bool waiting_memory;          /* its head, for memory_limit */
	struct kafka_batch *kb;       /* from on_request until Kafka's answer */
	bool ended;                   /* kafka_batch_end called: Kafka's answer is due */
	bool has_seq;                 /* seq is the next event's (kept across -EAGAIN) */
	uint64_t seq;
	size_t taken;                 /* events produced or refused */
	char agent[TOKEN_NAME_MAX + 1];
};

TAILQ_HEAD(intake_req_list, intake_req);

struct http_intake {
	const struct relay_config *cfg;
	struct kafka *kafka;
	struct kafka_loop *kl;
	struct httpd *httpd;
	struct tls_config_options tls;
	struct intake_req_list room, memory;
	uint64_t memory_used;
	uint64_t last_seq;
	struct buf enc;               /* format protobuf: the event being produced */
	void (*done)(void *ctx);
	void *done_ctx;
};

static struct intake_req *
intake_req_of(struct httpd_conn *c)
{
	return httpd_conn_data(c);
}

/* The intake's next sequence number: one more than the last, never behind the clock (µs). */
static uint64_t
http_intake_next_seq(struct http_intake *hi)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	hi->last_seq = now > hi->last_seq ? now : hi->last_seq + 1;
	return hi->last_seq;
}

static void
intake_req_unwait(struct intake_req *q)
{
	if (q->waiting_room) {
		q->waiting_room = false;
		TAILQ_REMOVE(&q->hi->room, q, link);
	}
}

/* The batch is no longer awaited: Kafka's answer, if it comes, finds nobody. */
static void
intake_req_abandon(struct intake_req *q)
{
	intake_req_unwait(q);
	if (q->kb != NULL) {
		kafka_batch_abandon(q->kb);
		q->kb = NULL;
	}
}

static void
http_intake_on_kafka(struct kafka_batch *kb, const struct kafka_result *res, void *arg)
{
	struct intake_req *q = arg;
	struct httpd_conn *c = httpd_conn_of_data(q);
	struct buf *out;

	(void)kb;
	q->kb = NULL;
	if (res->status != KAFKA_OK) {
		httpd_conn_fail(c, 503, "Kafka did not acknowledge every event of the request (%s): "
		    "send it again; some of its events may then be in Kafka twice",
		    res->reason != NULL ? res->reason : "no reason given");
		return;
	}
	out = httpd_conn_body(c);
	if (jsonw_raw(out, "{\"accepted\":") != 0 ||
	    jsonw_uint(out, q->taken - (res->refused < q->taken ? res->refused : q->taken)) != 0 ||
	    (res->refused > 0 && (jsonw_raw(out, ",\"refused\":") != 0 ||
	    jsonw_uint(out, res->refused) != 0)) || jsonw_raw(out, "}") != 0)
		abort();   /* a few digits in 4 KiB */
	httpd_conn_ok(c, q->taken);
}

/* Every event is handed to librdkafka: the answer waits for Kafka's. */
static void
intake_req_end(struct httpd_conn *c)
{
	struct intake_req *q = intake_req_of(c);

	q->ended = true;
	kafka_batch_end(q->kb);
	httpd_conn_wait(c, true);
}

/*
 * Produces the request's events, at most HTTPD_WORK bytes of body per
 * call. librdkafka's queue full: the request waits for the writable
 * callback with the same event and sequence number, up to request_timeout.
 */
static void
intake_req_produce_run(struct httpd_conn *c)
{
	struct intake_req *q = intake_req_of(c);
	struct http_intake *hi = q->hi;
	struct intake *in = httpd_conn_intake(c);
	size_t from = intake_offset(in), bytes;
	struct pbslice raw = { 0 };
	struct event ev;
	int r;

	for (;;) {
		if (intake_offset(in) - from >= HTTPD_WORK) {
			httpd_conn_queue(c);
			return;
		}
		if (intake_next(in, httpd_conn_received_ns(c), &ev, &bytes) == 0)
			break;
		/* The sender names the events' host too: keys by ${host} spread by sender. */
		ev.host = (struct pbslice){ (const uint8_t *)q->agent, strlen(q->agent) };
		if (hi->cfg->kafka.format == RELAY_FORMAT_PROTOBUF) {
			buf_reset(&hi->enc);
			if ((r = event_encode(&ev, &hi->enc)) != 0 ||
			    (r = kafka_event_bytes(hi->enc.data, hi->enc.data + hi->enc.len, &raw)) != 0) {
				intake_req_abandon(q);
				httpd_conn_fail(c, 413, "an event of about %zu bytes cannot be encoded for "
				    "Kafka (%s): nothing of the request was produced; send smaller events",
				    bytes, strerror(-r));
				return;
			}
		}
		if (!q->has_seq) {
			q->seq = http_intake_next_seq(hi);
			q->has_seq = true;
		}
		r = kafka_produce(q->kb, &ev, raw.ptr != NULL ? &raw : NULL, q->seq);
		if (r == -EAGAIN) {
			q->waiting_room = true;
			TAILQ_INSERT_TAIL(&hi->room, q, link);
			httpd_conn_wait(c, false);
			return;
		}
		if (r == -ECANCELED)
			break;   /* the batch will be answered RETRY: producing more is useless */
		if (r != 0 && r != -EMSGSIZE) {
			/* Never: the batch is open and the format has what it needs. */
			log_error("http_intake: %s: producing an event failed: %s", httpd_conn_peer(c),
			    strerror(-r));
			abort();
		}
		/* -EMSGSIZE: logged, and counted in the batch's result as refused. */
		intake_consume(in);
		q->has_seq = false;
		q->taken++;
	}
	intake_req_end(c);
}

/* One hold of the producer for the run rather than one per record (kafka_loop_hold). */
static void
intake_req_produce(struct httpd_conn *c)
{
	struct kafka_loop *kl = intake_req_of(c)->hi->kl;

	kafka_loop_hold(kl);
	intake_req_produce_run(c);
	kafka_loop_release(kl);
}

/* ---------------------------------------------------------------- the server's callbacks */

static void
http_intake_on_request(void *ctx, struct httpd_conn *c)
{
	struct http_intake *hi = ctx;
	struct intake_req *q = intake_req_of(c);
	const char *sender = httpd_conn_sender(c);
	int r;

	q->hi = hi;
	q->ended = q->has_seq = false;
	q->taken = 0;
	snprintf(q->agent, sizeof(q->agent), "%s", sender[0] != '\0' ? sender :
	    HTTP_INTAKE_ANONYMOUS);
	if ((r = kafka_batch_begin(hi->kl, q->agent, http_intake_on_kafka, q, &q->kb)) != 0) {
		if (r == -ENOMEM)
			abort();
		q->kb = NULL;
		httpd_conn_fail(c, 503, "the relay is stopping: send the request again");
		return;
	}
	intake_req_produce(c);
}

static void
http_intake_on_work(void *ctx, struct httpd_conn *c)
{
	struct intake_req *q = intake_req_of(c);

	(void)ctx;
	if (q->kb != NULL && !q->ended && !q->waiting_room)
		intake_req_produce(c);
}

static void
http_intake_on_timeout(void *ctx, struct httpd_conn *c)
{
	struct intake_req *q = intake_req_of(c);
	bool ended = q->ended;

	(void)ctx;
	intake_req_abandon(q);
	httpd_conn_fail(c, 503, "%s within request_timeout: send the request again%s", ended ?
	    "Kafka did not acknowledge the request's events" :
	    "librdkafka's queue had no room for the request's events",
	    q->taken > 0 ? "; some of its events may then be in Kafka twice" : "");
}

static void
http_intake_on_stop(void *ctx, struct httpd_conn *c)
{
	struct intake_req *q = intake_req_of(c);

	(void)ctx;
	/* Produced in full: Kafka's answer may come within the stop's grace. */
	if (q->ended)
		return;
	intake_req_abandon(q);
	httpd_conn_fail(c, 503, "the relay is stopping: send the request again%s", q->taken > 0 ?
	    "; some of its events may then be in Kafka twice" : "");
}

static void
http_intake_on_abandon(void *ctx, struct httpd_conn *c)
{
	(void)ctx;
	intake_req_abandon(intake_req_of(c));
}

/* http_intake.memory_limit, for request bodies. */
static int
http_intake_take(void *ctx, uint64_t n)
{
	struct http_intake *hi = ctx;

	if (n > hi->cfg->http_intake.memory_limit - hi->memory_used)
		return -ENOBUFS;
	hi->memory_used += n;
	return 0;
}

static void
http_intake_give(void *ctx, uint64_t n)
{
	struct http_intake *hi = ctx;
	struct intake_req *q;

	hi->memory_used -= n;
	/* Every waiter tries again; one that still does not fit waits again. */
	while ((q = TAILQ_FIRST(&hi->memory)) != NULL) {
		q->waiting_memory = false;
		TAILQ_REMOVE(&hi->memory, q, link);
		httpd_conn_memory_freed(httpd_conn_of_data(q));
	}
}

static uint64_t
http_intake_limit(void *ctx)
{
	return ((struct http_intake *)ctx)->cfg->http_intake.memory_limit;
}

static void
http_intake_wait(void *ctx, struct httpd_conn *c)
{
	struct http_intake *hi = ctx;
	struct intake_req *q = intake_req_of(c);

	q->hi = hi;
	if (q->waiting_memory)
		return;
	q->waiting_memory = true;
	TAILQ_INSERT_TAIL(&hi->memory, q, link);
}

static void
http_intake_cancel(void *ctx, struct httpd_conn *c)
{
	struct intake_req *q = intake_req_of(c);

	(void)ctx;
	if (!q->waiting_memory)
		return;
	q->waiting_memory = false;
	TAILQ_REMOVE(&q->hi->memory, q, link);
}

static const struct httpd_callbacks http_intake_callbacks = {
	.on_request = http_intake_on_request,
	.on_work = http_intake_on_work,
	.on_timeout = http_intake_on_timeout,
	.on_stop = http_intake_on_stop,
	.on_abandon = http_intake_on_abandon,
	.take = http_intake_take,
	.give = http_intake_give,
	.limit = http_intake_limit,
	.wait = http_intake_wait,
	.cancel = http_intake_cancel,
};

/* librdkafka's queue has room again: the requests waiting for it go on. */
static void
http_intake_on_writable(struct kafka_loop *kl, void *arg)
{
	struct http_intake *hi = arg;
	struct intake_req *q;

	(void)kl;
	while ((q = TAILQ_FIRST(&hi->room)) != NULL) {
		intake_req_unwait(q);
		httpd_conn_queue(httpd_conn_of_data(q));
	}
}

/* ---------------------------------------------------------------- API */

int
http_intake_start(uv_loop_t *loop, const struct relay_config *cfg, struct kafka *k,
    struct http_intake **out)
{
	const typeof(cfg->http_intake) *h = &cfg->http_intake;
	struct httpd_options o;
	struct http_intake *hi;
	int r;

	if ((hi = calloc(1, sizeof(*hi))) == NULL) {
		log_error("http_intake: out of memory");
		return -ENOMEM;
	}
	hi->cfg = cfg;
	hi->kafka = k;
	TAILQ_INIT(&hi->room);
	TAILQ_INIT(&hi->memory);
	buf_init(&hi->enc, HTTP_INTAKE_ENCODE_MAX);
	memset(&o, 0, sizeof(o));
	o.label = "http_intake";
	o.daemon = "relay";
	o.stored = "produced";
	o.path = HTTP_INTAKE_PATH;
	o.listen = h->listen.items;
	o.nlisten = h->listen.n;
	o.max_body_size = h->max_body_size;
	o.max_connections = h->max_connections;
	o.idle_timeout_ms = h->idle_timeout_ms;
	o.request_timeout_ms = h->request_timeout_ms;
	httpd_config_options(&o, &h->auth, &h->tls, RELAY_HTTP_INTAKE_MAX_TOKENS, &hi->tls);
	o.host = cfg->id;
	o.stream = h->stream;
	o.data_size = sizeof(struct intake_req);
	o.cb = &http_intake_callbacks;
	o.ctx = hi;
	/* The server first: what fails there (an address, a file) leaves Kafka untouched. */
	if ((r = httpd_start(loop, &o, &hi->httpd)) != 0) {
		buf_free(&hi->enc);
		free(hi);
		return r;
	}
	if ((r = kafka_loop_new(k, loop, http_intake_on_writable, hi, &hi->kl)) != 0) {
		log_error("http_intake: cannot attach to the Kafka producer: %s", strerror(-r));
		httpd_stop(hi->httpd, NULL, NULL);
		buf_free(&hi->enc);
		free(hi);
		return r;
	}
	*out = hi;
	return 0;
}

int
http_intake_reload(struct http_intake *hi)
{
	return httpd_reload(hi->httpd);
}

static void
http_intake_stopped(void *ctx)
{
	struct http_intake *hi = ctx;
	void (*done)(void *) = hi->done;
	void *done_ctx = hi->done_ctx;

	/* Every request is answered or gone: no batch of ours is awaited. */
	kafka_loop_close(hi->kl);
	buf_free(&hi->enc);
	free(hi);
	if (done != NULL)
		done(done_ctx);
}

void
http_intake_stop(struct http_intake *hi, void (*done)(void *ctx), void *ctx)
{
	hi->done = done;
	hi->done_ctx = ctx;
	httpd_stop(hi->httpd, http_intake_stopped, hi);
}

void
http_intake_get_stats(const struct http_intake *hi, struct httpd_stats *st)
{
	httpd_get_stats(hi->httpd, st);
}

int
http_intake_address(const struct http_intake *hi, size_t i, struct sockaddr_storage *out)
{
	return httpd_address(hi->httpd, i, out);
}
