/* SPDX-License-Identifier: Apache-2.0 */
/* server: accepting agents, the per-connection protocol, batches -> Kafka (see server.h). */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zstd.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"
#include "proto/event.h"
#include "proto/frame.h"
#include "relay/memtrim.h"
#include "relay/server.h"

/* An agent may send more fields per event than its own parsers make (HTTP intake); beyond, REJECTED. */
#define SERVER_MAX_FIELDS 1024
#define SERVER_MAX_FIELDS_TEXT "1024"
/* Room for a Batch's other members around its payload. */
#define SERVER_FRAME_SLACK 4096
/* Connections accepted per wake-up of the listener, so one burst does not hold the main loop. */
#define SERVER_ACCEPT_BURST 64
/* After EMFILE/ENFILE the listener rests this long instead of spinning on the pending connection. */
#define SERVER_ACCEPT_REST_MS 1000
/* Retry hint in RETRY acks. */
#define SERVER_RETRY_AFTER_MS 1000
/* Refusals of the same kind are logged at most this often. */
#define SERVER_WARN_EVERY_MS 10000
#define SERVER_SWEEP_MS 1000

enum conn_state { CONN_HANDSHAKE, CONN_HELLO, CONN_READY, CONN_CLOSING };

struct srv_worker;
struct srv_conn;

/* One batch received and not yet answered. Owned by its connection. */
struct srv_batch {
	struct srv_batch *next;          /* the connection's in-flight list */
	struct srv_batch *qnext;         /* the worker's produce queue */
	struct srv_conn *conn;
	struct kafka_batch *kb;          /* NULL: answered without Kafka */
	uint64_t id;
	uint64_t weight;                 /* counted in flight: the declared uncompressed size */
	uint32_t events;
	uint8_t *data;                   /* the EventList while it is produced */
	size_t len, off;                 /* off: where producing goes on */
	struct pbslice dict;             /* format 2: the Dict in force at off (ptr NULL: none) */
	uint64_t seq;                    /* of the next event to produce */
	uint32_t malformed;              /* events that did not decode, refused alone */
	bool queued;
};

struct srv_conn {
	struct srv_worker *w;
	struct srv_conn *prev, *next;
	struct tls_conn *tls;
	struct frame_decoder *dec;
	enum conn_state state;
	char agent[sizeof(((logferry_Hello *)0)->agent_id)];
	char peer[96];
	struct srv_batch *inflight;
	uint32_t ninflight;
	uint32_t nqueued;                /* of its batches waiting in the produce queue */
	uint64_t inflight_bytes;
	uint64_t buffered;               /* decoder bytes counted in the server's total */
	uint64_t deadline_ms;            /* Hello due (CONN_HELLO) */
	uint64_t last_frame_ms;
	struct buf out;                  /* control frames the socket has not taken yet */
	bool paused;
	bool global_wait;                /* paused because the total is over the budget */
	bool revoked;                    /* a reload took its agent off tls.allowed_agents */
};

enum { CMD_WAKE = 1, CMD_DRAIN = 2, CMD_FINISH = 4, CMD_RECHECK = 8 };

/* tls.allowed_agents, a copy the server owns: a reload replaces it. */
struct srv_allowed {
	size_t n;
	char **globs;
};

struct srv_worker {
	struct server *s;
	int index;
	uv_thread_t thread;
	bool started;
	uv_sem_t ready;
	int start_rc;
	uv_loop_t loop;
	uv_async_t async;
	uv_timer_t sweep;
	struct kafka_loop *kl;
	ZSTD_DCtx *dctx;                 /* batches are decompressed one at a time per worker */

	pthread_mutex_t mu;              /* guards fds */
	int *fds;
	size_t nfds, capfds;
	atomic_int cmd;

	struct srv_conn *conns;
	struct srv_batch *qhead, **qtail;
	bool draining;
	struct event_field fields[SERVER_MAX_FIELDS];
};

struct server {
	uv_loop_t *loop;
	const struct relay_config *cfg;
	struct kafka *k;
	struct server_budget budget;
	pthread_mutex_t tls_mu;          /* guards tls and allowed: SIGHUP swaps them */
	struct tls_config *tls;          /* workers take a reference */
	struct srv_allowed *allowed;     /* read under tls_mu */
	int fd;
	uint16_t port;
	uv_poll_t poll;
	uv_timer_t rest;
	bool polling;
	int nworkers;
	struct srv_worker *workers;
	int next_worker;
	uint64_t last_refusal_warn;
	uv_work_t work;
	void (*done)(void *ctx);
	void *done_ctx;
	int handles;

	atomic_uint_fast64_t inflight;       /* bytes, all connections */
	atomic_uint_fast64_t connections;
	atomic_int global_waiters;           /* connections paused for the total */
	atomic_bool kafka_failing;           /* the last batch Kafka answered failed */
	struct memtrim trim;                 /* raised at accept; worker 0's sweep samples it */
	struct {
		atomic_uint_fast64_t accepted, refused, handshakes_failed, agents_refused,
		    protocol_errors, batches, events, events_malformed, acks_ok, acks_retry,
		    acks_rejected, paused_reads;
		atomic_uint_fast64_t unknown_event_formats;
	} st;
};

static void conn_update_reading(struct srv_conn *c);
static void worker_produce(struct srv_worker *w);
static void server_tell(struct server *s, int cmd);

static void
server_allowed_free(struct srv_allowed *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->globs[i]);
	free(a->globs);
	free(a);
}

/* A copy of cfg's tls.allowed_agents; NULL when out of memory. */
static struct srv_allowed *
server_allowed_new(const struct relay_config *cfg)
{
	const char *const *globs = cfg->tls.allowed_agents.items;
	struct srv_allowed *a = calloc(1, sizeof(*a));

	if (a == NULL || (a->globs = calloc(cfg->tls.allowed_agents.n + 1, sizeof(char *))) == NULL) {
		free(a);
		return NULL;
	}
	for (; a->n < cfg->tls.allowed_agents.n; a->n++)
		if ((a->globs[a->n] = strdup(globs[a->n])) == NULL) {
			server_allowed_free(a);
			return NULL;
		}
	return a;
}

static bool
server_allowed_same(const struct srv_allowed *a, const struct srv_allowed *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->globs[i], b->globs[i]) != 0)
			return false;
	return true;
}

/* Whether agent id matches one of tls.allowed_agents as they are now. Any thread. */
static bool
server_agent_allowed(struct server *s, const char *id)
{
	bool ok = false;

	pthread_mutex_lock(&s->tls_mu);
	for (size_t i = 0; i < s->allowed->n && !ok; i++)
		ok = fnmatch(s->allowed->globs[i], id, 0) == 0;
	pthread_mutex_unlock(&s->tls_mu);
	return ok;
}

static uint64_t
server_now_ms(struct srv_worker *w)
{
	return uv_now(&w->loop);
}

/* ---- counting ---- */

static void
server_count(struct server *s, int64_t delta)
{
	if (delta >= 0) {
		atomic_fetch_add(&s->inflight, (uint64_t)delta);
		return;
	}
	uint64_t after = atomic_fetch_sub(&s->inflight, (uint64_t)-delta) - (uint64_t)-delta;

	/* Crossing back under the budget: wake the workers whose connections wait for it. */
	if (atomic_load(&s->global_waiters) > 0 && after < s->budget.batches)
		for (int i = 0; i < s->nworkers; i++) {
			atomic_fetch_or(&s->workers[i].cmd, CMD_WAKE);
			uv_async_send(&s->workers[i].async);
		}
}

static bool
server_over_budget(struct server *s)
{
	return atomic_load(&s->inflight) >= s->budget.batches;
}

/* ---- sending control frames ---- */

static void
conn_flush(struct srv_conn *c)
{
	int rc;

	if (c->out.len == 0 || c->state == CONN_CLOSING)
		return;
	rc = tls_conn_write(c->tls, c->out.data, c->out.len);
	if (rc == 0)
		buf_reset(&c->out);
	else if (rc != -EAGAIN) {
		log_warn("agent %s at %s: cannot send: %s; closing the connection",
		    c->agent[0] != '\0' ? c->agent : "(unknown)", c->peer, tls_strerror(rc));
		c->state = CONN_CLOSING;
		tls_conn_close(c->tls);
	}
}

static void
conn_close(struct srv_conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	conn_flush(c);
	c->state = CONN_CLOSING;
	tls_conn_close(c->tls);
}

static void
conn_send(struct srv_conn *c, const struct frame *f)
{
	int rc;

	if (c->state == CONN_CLOSING)
		return;
	if ((rc = frame_encode(f, &c->out)) != 0) {
		log_warn("agent %s at %s: %s; closing the connection",
		    c->agent[0] != '\0' ? c->agent : "(unknown)", c->peer,
		    rc == -EMSGSIZE ? "it does not read its acks (64 KiB of them wait)" :
		    "out of memory for a reply");
		c->state = CONN_CLOSING;
		tls_conn_close(c->tls);
		return;
	}
	conn_flush(c);
}

static void
conn_goodbye(struct srv_conn *c, const char *reason)
{
	struct frame f;

	frame_init(&f, FRAME_GOODBYE);
	snprintf(f.pb.goodbye.reason, sizeof(f.pb.goodbye.reason), "%s", reason);
	conn_send(c, &f);
	conn_close(c);
}

/* A frame that breaks the protocol: nothing more of this connection can be trusted. */
static int
conn_protocol_error(struct srv_conn *c, const char *fmt, const char *detail)
{
	char why[256];

	snprintf(why, sizeof(why), fmt, detail);
	log_warn("agent %s at %s: protocol error: %s; closing the connection",
	    c->agent[0] != '\0' ? c->agent : "(before Hello)", c->peer, why);
	atomic_fetch_add(&c->w->s->st.protocol_errors, 1);
	conn_goodbye(c, why);
	return -EPROTO;
}

static void
conn_ack(struct srv_conn *c, uint64_t id, logferry_Ack_Status status, const char *reason)
{
	struct frame f;

	frame_init(&f, FRAME_ACK);
	f.pb.ack.batch_id = id;
	f.pb.ack.status = status;
	if (status == logferry_Ack_Status_RETRY)
		f.pb.ack.retry_after_ms = SERVER_RETRY_AFTER_MS;
	if (reason != NULL)
		snprintf(f.pb.ack.reason, sizeof(f.pb.ack.reason), "%s", reason);
	conn_send(c, &f);
}

/* ---- batches ---- */

static void
batch_unqueue(struct srv_worker *w, struct srv_batch *b)
{
	struct srv_batch **pp;

	if (!b->queued)
		return;
	for (pp = &w->qhead; *pp != NULL; pp = &(*pp)->qnext)
		if (*pp == b) {
			*pp = b->qnext;
			break;
		}
	if (w->qhead == NULL)
		w->qtail = &w->qhead;
	else if (w->qtail == &b->qnext)
		for (w->qtail = &w->qhead; *w->qtail != NULL; w->qtail = &(*w->qtail)->qnext)
			;
	b->queued = false;
	b->conn->nqueued--;
}

/* Takes b off its connection, uncounts it and frees it. */
static void
batch_free(struct srv_batch *b)
{
	struct srv_conn *c = b->conn;
	struct srv_batch **pp;

	batch_unqueue(c->w, b);
	for (pp = &c->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			c->ninflight--;
			break;
		}
	c->inflight_bytes -= b->weight;
	server_count(c->w->s, -(int64_t)b->weight);
	free(b->data);
	free(b);
}

static void
batch_on_kafka(struct kafka_batch *kb, const struct kafka_result *res, void *arg)
{
	struct srv_batch *b = arg;
	struct srv_conn *c = b->conn;
	struct server *s = c->w->s;
	char reason[128];

	(void)kb;
	if (res->status == KAFKA_OK) {
		reason[0] = '\0';
		if (res->refused > 0 || b->malformed > 0)
			snprintf(reason, sizeof(reason), "refused (see the relay's log): %zu event(s) "
			    "or pieces Kafka does not accept, %" PRIu32 " malformed", res->refused,
			    b->malformed);
		atomic_fetch_add(&s->st.acks_ok, 1);
		atomic_store(&s->kafka_failing, false);
		conn_ack(c, b->id, logferry_Ack_Status_OK, reason);
	} else {
		atomic_fetch_add(&s->st.acks_retry, 1);
		atomic_store(&s->kafka_failing, true);
		conn_ack(c, b->id, logferry_Ack_Status_RETRY, res->reason);
	}
	b->kb = NULL;
	batch_free(b);
	conn_update_reading(c);
}

/* Produces the queued batches in order until librdkafka's queue is full. */
static void
worker_produce_run(struct srv_worker *w)
{
	struct srv_batch *b;

	while ((b = w->qhead) != NULL) {
		struct srv_conn *c = b->conn;
		struct event_reader r;
		struct event ev;
		int rc;

		event_reader_init(&r, b->data + b->off, b->len - b->off, w->fields, SERVER_MAX_FIELDS);
		event_reader_set_dict(&r, b->dict);
		for (;;) {
			const uint8_t *before = r.p;

			if ((rc = event_reader_next(&r, &ev)) == 0)
				break;
			if (rc < 0) {
				/* The list's framing was checked: only this event is lost, the rest go on. */
				if (b->malformed++ == 0)
					log_warn("agent %s: event with sequence number %" PRIu64 " of batch %"
					    PRIu64 " is malformed (%s); refused, the batch's other events go on",
					    c->agent, b->seq, b->id, rc == -E2BIG ?
					    "more than " SERVER_MAX_FIELDS_TEXT " fields" : r.why);
				atomic_fetch_add(&w->s->st.events_malformed, 1);
				b->seq++;
				continue;
			}
			/* An event that needs its Dict is not its bytes alone: kafka encodes it again. */
			rc = kafka_produce(b->kb, &ev, ev.dict_refs ? NULL : &ev.raw, b->seq);
			if (rc == -EAGAIN) {
				b->off = (size_t)(before - b->data);
				b->dict = r.dict;
				return;       /* the writable callback goes on */
			}
			b->seq++;
			if (rc == 0 || rc == -EMSGSIZE)
				continue;
			/* Producing more to it is useless: it will be answered RETRY. */
			if (rc != -ECANCELED)
				log_error("agent %s: producing batch %" PRIu64 " failed (%d); it will be answered RETRY",
				    c->agent, b->id, rc);
			break;
		}
		/* Every event is in librdkafka's hands (or the batch is lost to a fatal error): RETRY/OK follow. */
		w->qhead = b->qnext;
		if (w->qhead == NULL)
			w->qtail = &w->qhead;
		b->queued = false;
		c->nqueued--;
		free(b->data);
		b->data = NULL;
		kafka_batch_end(b->kb);
		conn_update_reading(c);
	}
}

/* One hold of the producer for the run rather than one per record (kafka_loop_hold). */
static void
worker_produce(struct srv_worker *w)
{
	kafka_loop_hold(w->kl);
	worker_produce_run(w);
	kafka_loop_release(w->kl);
}

static void
worker_on_writable(struct kafka_loop *kl, void *arg)
{
	(void)kl;
	worker_produce(arg);
}

static void
conn_reject(struct srv_conn *c, uint64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conn_reject(struct srv_conn *c, uint64_t id, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("agent %s at %s: batch %" PRIu64 " rejected: %s", c->agent, c->peer, id, why);
	atomic_fetch_add(&c->w->s->st.acks_rejected, 1);
	conn_ack(c, id, logferry_Ack_Status_REJECTED, why);
}

/*
 * Decompresses payload into exactly want bytes with the worker's context
 * (one per worker: creating one per batch cost an allocation of its
 * window tables each time). Returns 0, or -EPROTO with why.
 */
static int
batch_decompress(ZSTD_DCtx *d, const struct pbslice *in, uint8_t *out, size_t want, char *why,
    size_t whylen)
{
	ZSTD_inBuffer ib = { in->ptr, in->len, 0 };
	ZSTD_outBuffer ob = { out, want, 0 };
	int rc = 0;

	ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
	while (ib.pos < ib.size) {
		size_t r;

		if (ob.pos == ob.size) {
			/* Is anything left but empty frames? One more byte of room tells. */
			uint8_t extra;
			ZSTD_outBuffer eb = { &extra, 1, 0 };

			r = ZSTD_decompressStream(d, &eb, &ib);
			if (!ZSTD_isError(r) && eb.pos == 0 && ib.pos == ib.size && r == 0)
				break;
			snprintf(why, whylen, "the payload decompresses to more than the %zu bytes declared", want);
			rc = -EPROTO;
			goto out;
		}
		r = ZSTD_decompressStream(d, &ob, &ib);
		if (ZSTD_isError(r)) {
			snprintf(why, whylen, "zstd: %s", ZSTD_getErrorName(r));
			rc = -EPROTO;
			goto out;
		}
		if (r != 0 && ib.pos == ib.size && ob.pos < ob.size) {
			snprintf(why, whylen, "the payload ends inside a zstd frame");
			rc = -EPROTO;
			goto out;
		}
	}
	if (ob.pos != want) {
		snprintf(why, whylen, "the payload decompresses to %zu bytes, not the %zu declared",
		    ob.pos, want);
		rc = -EPROTO;
	}
out:
	return rc;
}

/* The event formats this relay reads, as its Welcome announces them. */
static const uint32_t server_event_formats[] = { EVENT_FORMAT_1, EVENT_FORMAT_2, EVENT_FORMAT_3 };

/*
 * A Batch in an event format this relay cannot read is neither acked nor
 * REJECTED (the agent would delete its events): Goodbye says why, and the
 * agent keeps the batch until it meets a relay that reads it. An agent only
 * sends formats the Welcome announced, so this is a newer agent than the
 * Welcome's rules or a broken one. Returns 0, or -EPROTO once closed.
 */
static int
conn_check_event_format(struct srv_conn *c, const logferry_Batch *pb)
{
	char why[256];

	/* 0: an agent from before the field, format 1. */
	if (pb->event_format == 0)
		return 0;
	for (size_t i = 0; i < sizeof(server_event_formats) / sizeof(server_event_formats[0]); i++)
		if (pb->event_format == server_event_formats[i])
			return 0;
	snprintf(why, sizeof(why), "batch %" PRIu64 " is in event format %" PRIu32
	    ", which this relay (logferry-relay %s) does not read; upgrade the relay, "
	    "the agent keeps the batch until then", pb->id, pb->event_format, PACKAGE_VERSION);
	log_warn("agent %s at %s: %s; closing the connection", c->agent, c->peer, why);
	atomic_fetch_add(&c->w->s->st.unknown_event_formats, 1);
	conn_goodbye(c, why);
	return -EPROTO;
}

static int
conn_on_batch(struct srv_conn *c, const struct frame *f)
{
	struct srv_worker *w = c->w;
	struct server *s = w->s;
	const struct relay_config *cfg = s->cfg;
	const logferry_Batch *pb = &f->pb.batch;
	struct srv_batch *b;
	const char *lwhy;
	uint64_t n = 0;
	char why[200];
	int rc;

	if (c->state != CONN_READY)
		return conn_protocol_error(c, "%s", "Batch before Hello");
	if (c->ninflight >= (uint64_t)cfg->limits.window) {
		snprintf(why, sizeof(why), "%" PRId64, cfg->limits.window);
		return conn_protocol_error(c, "more than window (%s) batches in flight", why);
	}
	for (b = c->inflight; b != NULL; b = b->next)
		if (b->id == pb->id) {
			snprintf(why, sizeof(why), "%" PRIu64, pb->id);
			return conn_protocol_error(c, "batch %s is already in flight", why);
		}
	if ((rc = conn_check_event_format(c, pb)) != 0)
		return rc;
	atomic_fetch_add(&s->st.batches, 1);

	/* Limits first, before anything is allocated for the batch. */
	if (f->payload.len > cfg->limits.max_batch_bytes) {
		conn_reject(c, pb->id, "payload of %zu bytes is above max_batch_bytes (%" PRIu64 ")",
		    f->payload.len, cfg->limits.max_batch_bytes);
		return 0;
	}
	if (pb->uncompressed_size > cfg->limits.max_uncompressed_bytes) {
		conn_reject(c, pb->id, "declared uncompressed size %" PRIu64
		    " is above max_uncompressed_bytes (%" PRIu64 ")",
		    pb->uncompressed_size, cfg->limits.max_uncompressed_bytes);
		return 0;
	}
	if (pb->compression != logferry_Compression_COMPRESSION_NONE &&
	    pb->compression != logferry_Compression_COMPRESSION_ZSTD) {
		conn_reject(c, pb->id, "unknown compression %d", (int)pb->compression);
		return 0;
	}
	if (pb->compression == logferry_Compression_COMPRESSION_NONE &&
	    pb->uncompressed_size != f->payload.len) {
		conn_reject(c, pb->id, "uncompressed payload of %zu bytes declared as %" PRIu64,
		    f->payload.len, pb->uncompressed_size);
		return 0;
	}
	if (pb->id == 0 || UINT64_MAX - pb->id < pb->event_count) {
		conn_reject(c, pb->id, "batch id %" PRIu64 " with %" PRIu32 " events is out of range",
		    pb->id, pb->event_count);
		return 0;
	}

	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->data = malloc(pb->uncompressed_size > 0 ? pb->uncompressed_size : 1)) == NULL) {
		free(b);
		log_error("agent %s: out of memory for batch %" PRIu64 " (%" PRIu64 " bytes); answered RETRY",
		    c->agent, pb->id, pb->uncompressed_size);
		atomic_fetch_add(&s->st.acks_retry, 1);
		conn_ack(c, pb->id, logferry_Ack_Status_RETRY, "relay out of memory");
		return 0;
	}
	b->conn = c;
	b->id = pb->id;
	b->seq = pb->id;
	b->events = pb->event_count;
	b->len = pb->uncompressed_size;
	b->weight = pb->uncompressed_size;
	b->next = c->inflight;
	c->inflight = b;
	c->ninflight++;
	c->inflight_bytes += b->weight;
	server_count(s, (int64_t)b->weight);

	if (pb->compression == logferry_Compression_COMPRESSION_NONE)
		memcpy(b->data, f->payload.ptr, f->payload.len);
	else if (batch_decompress(w->dctx, &f->payload, b->data, b->len, why, sizeof(why)) != 0)
		goto reject;

	/*
	 * The list's framing and count are checked before any of it goes to
	 * Kafka; an event that then does not decode is refused alone (one pass
	 * of full decoding, not two: it was an eighth of the relay's CPU).
	 */
	if (event_list_count(b->data, b->len, &n, &lwhy) != 0) {
		snprintf(why, sizeof(why), "its EventList is malformed: %s", lwhy);
		goto reject;
	}
	if (n != pb->event_count) {
		snprintf(why, sizeof(why), "it holds %" PRIu64 " events, not the %" PRIu32 " declared",
		    n, pb->event_count);
		goto reject;
	}
	atomic_fetch_add(&s->st.events, n);

	if ((rc = kafka_batch_begin(w->kl, c->agent, batch_on_kafka, b, &b->kb)) != 0) {
		atomic_fetch_add(&s->st.acks_retry, 1);
		conn_ack(c, b->id, logferry_Ack_Status_RETRY,
		    rc == -EPIPE ? "relay stopping" : "relay out of memory");
		batch_free(b);
		return 0;
	}
	b->queued = true;
	c->nqueued++;
	*w->qtail = b;
	w->qtail = &b->qnext;
	if (w->qhead == b)
		worker_produce(w);
	conn_update_reading(c);
	return 0;

reject:
	conn_reject(c, b->id, "%s", why);
	batch_free(b);
	return 0;
}

/* ---- the protocol ---- */

static bool
agent_id_valid(const char *id)
{
	if (id[0] == '\0')
		return false;
	for (const char *p = id; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

static int
conn_on_hello(struct srv_conn *c, const logferry_Hello *h)
{
	struct server *s = c->w->s;
	const struct relay_config *cfg = s->cfg;
	char why[400], cn[TLS_CN_MAX + 1];
	struct frame f;
	int rc;

	if (c->state != CONN_HELLO)
		return conn_protocol_error(c, "%s", "a second Hello");
	if (h->protocol_version != logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT) {
		snprintf(why, sizeof(why), "protocol version %" PRIu32 " is not supported (this relay speaks %d)",
		    h->protocol_version, logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT);
		goto refuse;
	}
	if (!agent_id_valid(h->agent_id)) {
		snprintf(why, sizeof(why), "the agent id is empty or holds spaces or control characters");
		goto refuse;
	}
	if (cfg->tls.verify_client) {
		if ((rc = tls_conn_peer_cn(c->tls, cn, sizeof(cn))) != 0) {
			snprintf(why, sizeof(why), "agent id '%s': its certificate has no usable common name (%s)",
			    h->agent_id, strerror(-rc));
			goto refuse;
		}
		if (strcmp(cn, h->agent_id) != 0) {
			snprintf(why, sizeof(why), "agent id '%s' does not match its certificate's common name '%s'",
			    h->agent_id, cn);
			goto refuse;
		}
	}
	if (!server_agent_allowed(s, h->agent_id)) {
		snprintf(why, sizeof(why), "agent id '%s' is not in tls.allowed_agents", h->agent_id);
		goto refuse;
	}

	snprintf(c->agent, sizeof(c->agent), "%s", h->agent_id);
	c->state = CONN_READY;
	frame_init(&f, FRAME_WELCOME);
	f.pb.welcome.protocol_version = logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT;
	snprintf(f.pb.welcome.relay_id, sizeof(f.pb.welcome.relay_id), "%s", cfg->id);
	f.pb.welcome.max_batch_bytes = cfg->limits.max_batch_bytes;
	f.pb.welcome.max_uncompressed_bytes = cfg->limits.max_uncompressed_bytes;
	f.pb.welcome.window = (uint32_t)cfg->limits.window;
	f.pb.welcome.event_formats_count = sizeof(server_event_formats) / sizeof(server_event_formats[0]);
	memcpy(f.pb.welcome.event_formats, server_event_formats, sizeof(server_event_formats));
	conn_send(c, &f);
	log_info("agent %s connected from %s (%s, logferry-agent %s)", c->agent, c->peer,
	    tls_conn_cipher(c->tls), h->software_version[0] != '\0' ? h->software_version : "?");
	return 0;

refuse:
	log_warn("agent at %s refused: %s", c->peer, why);
	atomic_fetch_add(&s->st.agents_refused, 1);
	conn_goodbye(c, why);
	return -EPERM;
}

static int
conn_on_frame(void *arg, const struct frame *f)
{
	struct srv_conn *c = arg;
	enum frame_type t = frame_type(f);
	struct frame reply;

	if (c->state == CONN_CLOSING)
		return -EPIPE;
	c->last_frame_ms = server_now_ms(c->w);
	switch (t) {
	case FRAME_HELLO:
		return conn_on_hello(c, &f->pb.hello);
	case FRAME_BATCH:
		return conn_on_batch(c, f);
	case FRAME_PING:
		if (c->state != CONN_READY)
			return conn_protocol_error(c, "%s", "Ping before Hello");
		frame_init(&reply, FRAME_PONG);
		reply.pb.pong.nonce = f->pb.ping.nonce;
		conn_send(c, &reply);
		return 0;
	case FRAME_PONG:
		return 0;
	case FRAME_GOODBYE:
		log_info("agent %s at %s says goodbye: %s", c->agent[0] != '\0' ? c->agent : "(before Hello)",
		    c->peer, f->pb.goodbye.reason[0] != '\0' ? f->pb.goodbye.reason : "no reason given");
		conn_close(c);
		return -EPIPE;
	default:
		return conn_protocol_error(c, "an unexpected %s frame", frame_type_name(t));
	}
}

static void
conn_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct srv_conn *c = ctx;
	struct server *s = c->w->s;
	uint64_t buffered;
	int rc;

	if (c->state == CONN_CLOSING)
		return;
	rc = frame_decoder_feed(c->dec, p, n, conn_on_frame, c);
	if (rc != 0 && c->state != CONN_CLOSING) {
		/* The decoder's own refusal: too large or malformed. */
		conn_protocol_error(c, "%s", frame_decoder_error(c->dec));
	}
	buffered = c->state == CONN_CLOSING ? 0 : frame_decoder_buffered(c->dec);
	if (buffered != c->buffered) {
		server_count(s, (int64_t)buffered - (int64_t)c->buffered);
		c->inflight_bytes += buffered;
		c->inflight_bytes -= c->buffered;
		c->buffered = buffered;
	}
	conn_update_reading(c);
}

/* Reads while nothing bounds it: not producing, under the connection's and the total bound. */
static void
conn_update_reading(struct srv_conn *c)
{
	struct server *s = c->w->s;
	bool global = false, pause;

	if (c->state == CONN_CLOSING || c->state == CONN_HANDSHAKE)
		return;
	/* A revoked agent's connection ends once its last batch is answered. */
	if (c->revoked && c->ninflight == 0 && c->state == CONN_READY) {
		log_info("agent %s at %s: its batches are answered; closing the connection "
		    "(no longer in tls.allowed_agents)", c->agent, c->peer);
		conn_goodbye(c, "no longer in the relay's tls.allowed_agents");
		return;
	}
	pause = c->w->draining || c->revoked || c->nqueued > 0 ||
	    c->inflight_bytes >= s->cfg->limits.connection_max_inflight;
	if (!pause && server_over_budget(s))
		pause = global = true;
	if (global != c->global_wait) {
		c->global_wait = global;
		atomic_fetch_add(&s->global_waiters, global ? 1 : -1);
	}
	if (pause == c->paused)
		return;
	c->paused = pause;
	if (pause) {
		atomic_fetch_add(&s->st.paused_reads, 1);
		tls_conn_pause_reading(c->tls);
	} else
		tls_conn_resume_reading(c->tls);
}

static void
conn_on_handshake(void *ctx, int status)
{
	struct srv_conn *c = ctx;

	if (status != 0) {
		atomic_fetch_add(&c->w->s->st.handshakes_failed, 1);
		return;
	}
	c->state = CONN_HELLO;
	c->deadline_ms = server_now_ms(c->w) + c->w->s->cfg->tls.handshake_timeout_ms;
	c->last_frame_ms = server_now_ms(c->w);
	uv_tcp_nodelay(tls_conn_tcp(c->tls), 1);
	conn_update_reading(c);
}

static void
conn_on_writable(void *ctx)
{
	conn_flush(ctx);
}

static void
conn_on_close(void *ctx, int reason)
{
	struct srv_conn *c = ctx;
	struct srv_worker *w = c->w;
	struct server *s = w->s;
	uint32_t unanswered = c->ninflight;

	if (c->agent[0] != '\0')
		log_info("agent %s at %s disconnected%s%s%s", c->agent, c->peer,
		    reason != 0 ? ": " : "", reason != 0 ? tls_conn_reason(c->tls) : "",
		    unanswered > 0 ? " (its unanswered batches will be sent again)" : "");
	else if (reason != 0)
		log_debug("connection from %s closed before Hello: %s", c->peer, tls_conn_reason(c->tls));
	while (c->inflight != NULL) {
		struct srv_batch *b = c->inflight;

		if (b->kb != NULL)
			kafka_batch_abandon(b->kb);
		batch_free(b);
	}
	if (c->global_wait)
		atomic_fetch_sub(&s->global_waiters, 1);
	if (c->buffered > 0)
		server_count(s, -(int64_t)c->buffered);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	frame_decoder_free(c->dec);
	buf_free(&c->out);
	free(c);
	atomic_fetch_sub(&s->connections, 1);
}

static const struct tls_conn_callbacks conn_callbacks = {
	.on_handshake = conn_on_handshake,
	.on_data = conn_on_data,
	.on_writable = conn_on_writable,
	.on_close = conn_on_close,
};

static void
worker_open(struct srv_worker *w, int fd)
{
	struct server *s = w->s;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct tls_config *tls;
	struct srv_conn *c;
	int rc;

	if (w->draining || (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		atomic_fetch_sub(&s->connections, 1);
		return;
	}
	c->w = w;
	buf_init(&c->out, SERVER_OUT_MAX);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    addr_text((struct sockaddr *)&ss, c->peer, sizeof(c->peer)) != 0)
		snprintf(c->peer, sizeof(c->peer), "(unknown peer)");
	pthread_mutex_lock(&s->tls_mu);
	tls = tls_config_ref(s->tls);
	pthread_mutex_unlock(&s->tls_mu);
	rc = frame_decoder_new(s->cfg->limits.max_batch_bytes + SERVER_FRAME_SLACK, &c->dec);
	if (rc == 0)
		rc = tls_conn_open(&w->loop, tls, fd, NULL, &conn_callbacks, c, &c->tls);
	/* The connection holds its own reference. */
	tls_config_unref(tls);
	if (rc != 0) {
		if (c->dec == NULL)
			close(fd);
		log_warn("connection from %s: cannot start it: %s", c->peer, tls_strerror(rc));
		frame_decoder_free(c->dec);
		buf_free(&c->out);
		free(c);
		atomic_fetch_sub(&s->connections, 1);
		return;
	}
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
}

/*
 * After a reload changed tls.allowed_agents: an agent no longer allowed
 * sends no more batches (its connection is not read), and its connection
 * ends with a Goodbye once the batches it has in flight are answered
 * (conn_update_reading); it is refused at its next Hello. Its events stay
 * in its spool.
 */
static void
worker_recheck(struct srv_worker *w)
{
	struct srv_conn *c, *next;

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state != CONN_READY || c->revoked || server_agent_allowed(w->s, c->agent))
			continue;
		c->revoked = true;
		atomic_fetch_add(&w->s->st.agents_refused, 1);
		log_warn("agent %s at %s is no longer in tls.allowed_agents: it may send no more "
		    "batches; the connection closes once its %" PRIu32 " batch(es) in flight are "
		    "answered", c->agent, c->peer, c->ninflight);
		conn_update_reading(c);
	}
}

static void
worker_on_async(uv_async_t *h)
{
	struct srv_worker *w = h->data;
	int cmd = atomic_exchange(&w->cmd, 0);
	int *fds;
	size_t n;

	pthread_mutex_lock(&w->mu);
	fds = w->fds;
	n = w->nfds;
	w->fds = NULL;
	w->nfds = w->capfds = 0;
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < n; i++)
		worker_open(w, fds[i]);
	free(fds);

	if (cmd & CMD_DRAIN)
		w->draining = true;
	if (cmd & CMD_RECHECK)
		worker_recheck(w);
	if (cmd & (CMD_WAKE | CMD_DRAIN))
		for (struct srv_conn *c = w->conns; c != NULL; c = c->next)
			conn_update_reading(c);
	if (cmd & CMD_FINISH) {
		struct srv_conn *c, *next;

		/* Answers every batch still open (their Acks are queued on the connections). */
		kafka_loop_close(w->kl);
		for (c = w->conns; c != NULL; c = next) {
			next = c->next;
			if (c->state == CONN_READY)
				conn_goodbye(c, "relay stopping");
			else
				conn_close(c);
		}
		uv_close((uv_handle_t *)&w->async, NULL);
		uv_close((uv_handle_t *)&w->sweep, NULL);
	}
}

/*
 * Once a second on worker 0: after a mass disconnect, the memory of the
 * connections that left goes back to the system (memtrim.h), once.
 */
static void
worker_trim(struct srv_worker *w)
{
	uint64_t open = atomic_load(&w->s->connections);
	int rc;

	if (w->index != 0 || !memtrim_due(&w->s->trim, open))
		return;
	if ((rc = memtrim_release()) != 0)
		log_warn("cannot return the memory of disconnected agents to the system: %s; the "
		    "relay goes on, holding it for new connections", strerror(-rc));
	else
		log_debug("agents disconnected (%" PRIu64 " connections left): freed memory returned "
		    "to the system", open);
}

/* Hello deadlines and idle connections, once a second rather than a timer per connection. */
static void
worker_on_sweep(uv_timer_t *t)
{
	struct srv_worker *w = t->data;
	const struct relay_config *cfg = w->s->cfg;
	uint64_t now = server_now_ms(w);
	struct srv_conn *c, *next;

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == CONN_HELLO && now >= c->deadline_ms) {
			log_warn("connection from %s: no Hello within %" PRIu64 " ms after the TLS handshake; closed",
			    c->peer, cfg->tls.handshake_timeout_ms);
			atomic_fetch_add(&w->s->st.handshakes_failed, 1);
			conn_close(c);
		} else if (c->state == CONN_READY && c->ninflight == 0 &&
		    now - c->last_frame_ms >= cfg->limits.idle_timeout_ms) {
			log_info("agent %s at %s: silent for %" PRIu64 " ms (limits.idle_timeout); closed",
			    c->agent, c->peer, now - c->last_frame_ms);
			conn_goodbye(c, "idle timeout");
		}
	}
	worker_trim(w);
}

static void
worker_main(void *arg)
{
	struct srv_worker *w = arg;
	int rc;

	if ((rc = uv_loop_init(&w->loop)) != 0) {
		w->start_rc = rc;
		uv_sem_post(&w->ready);
		return;
	}
	w->async.data = w;
	w->sweep.data = w;
	/* Neither init can fail on an initialised loop. */
	uv_async_init(&w->loop, &w->async, worker_on_async);
	uv_timer_init(&w->loop, &w->sweep);
	uv_timer_start(&w->sweep, worker_on_sweep, SERVER_SWEEP_MS, SERVER_SWEEP_MS);
	if ((w->dctx = ZSTD_createDCtx()) == NULL ||
	    (rc = kafka_loop_new(w->s->k, &w->loop, worker_on_writable, w, &w->kl)) != 0) {
		w->start_rc = w->dctx == NULL ? UV_ENOMEM : rc;
		uv_close((uv_handle_t *)&w->sweep, NULL);
		uv_close((uv_handle_t *)&w->async, NULL);
		uv_run(&w->loop, UV_RUN_DEFAULT);
		uv_loop_close(&w->loop);
		uv_sem_post(&w->ready);
		return;
	}
	uv_sem_post(&w->ready);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&w->loop) != 0)
		log_warn("worker %d: handles left open at exit", w->index);
}

/* ---- accepting (main loop) ---- */

static void
server_refuse_warn(struct server *s, const char *why)
{
	uint64_t now = uv_now(s->loop);

	if (s->last_refusal_warn == 0 || now - s->last_refusal_warn >= SERVER_WARN_EVERY_MS) {
		s->last_refusal_warn = now;
		log_warn("refusing agent connections: %s (%" PRIu64 " refused so far)", why,
		    (uint64_t)atomic_load(&s->st.refused));
	}
}

static void server_on_accept(uv_poll_t *h, int status, int events);

static void
server_on_rest(uv_timer_t *t)
{
	struct server *s = t->data;

	if (s->polling)
		uv_poll_start(&s->poll, UV_READABLE, server_on_accept);
}

static void
server_on_accept(uv_poll_t *h, int status, int events)
{
	struct server *s = h->data;

	(void)status;
	(void)events;
	for (int i = 0; i < SERVER_ACCEPT_BURST; i++) {
		uint64_t conns = atomic_load(&s->connections);
		struct srv_worker *w;
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				char why[128];

				snprintf(why, sizeof(why), "accept: %s (raise LimitNOFILE or lower max_connections)",
				    strerror(errno));
				server_refuse_warn(s, why);
				uv_poll_stop(&s->poll);
				uv_timer_start(&s->rest, server_on_rest, SERVER_ACCEPT_REST_MS, 0);
			}
			return;
		}
		if (conns >= (uint64_t)s->cfg->max_connections ||
		    (conns + 1) * SERVER_CONN_COST > s->budget.connections) {
			close(fd);
			atomic_fetch_add(&s->st.refused, 1);
			server_refuse_warn(s, conns >= (uint64_t)s->cfg->max_connections ?
			    "max_connections reached" : "memory_limit's share for connections reached");
			continue;
		}
		memtrim_opened(&s->trim, atomic_fetch_add(&s->connections, 1) + 1);
		atomic_fetch_add(&s->st.accepted, 1);
		w = &s->workers[s->next_worker];
		s->next_worker = (s->next_worker + 1) % s->nworkers;
		pthread_mutex_lock(&w->mu);
		if (w->nfds == w->capfds) {
			size_t cap = w->capfds ? w->capfds * 2 : 16;
			int *p = realloc(w->fds, cap * sizeof(*p));

			if (p == NULL) {
				pthread_mutex_unlock(&w->mu);
				close(fd);
				atomic_fetch_sub(&s->connections, 1);
				log_error("out of memory handing a connection to worker %d", w->index);
				continue;
			}
			w->fds = p;
			w->capfds = cap;
		}
		w->fds[w->nfds++] = fd;
		pthread_mutex_unlock(&w->mu);
		uv_async_send(&w->async);
	}
}

static int
server_listen(struct server *s)
{
	const struct config_addr *a = &s->cfg->listen;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8], host[INET6_ADDRSTRLEN];
	int one = 1, rc, fd = -1, err = 0;

	snprintf(port, sizeof(port), "%u", a->port);
	if ((rc = getaddrinfo(a->host, port, &hints, &res)) != 0) {
		log_error("listen %s: cannot resolve: %s", a->text, gai_strerror(rc));
		return -EINVAL;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_error("listen %s: %s%s", a->text, strerror(err),
		    err == EADDRINUSE ? " (another process has the port: stop it or change listen)" :
		    err == EACCES ? " (ports below 1024 need CAP_NET_BIND_SERVICE)" : "");
		return -err;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
		s->port = (uint16_t)atoi(port);
		log_info("listening on %s%s%s:%s", ss.ss_family == AF_INET6 ? "[" : "", host,
		    ss.ss_family == AF_INET6 ? "]" : "", port);
	}
	s->fd = fd;
	return 0;
}

static void
server_join_workers(struct server *s)
{
	for (int i = 0; i < s->nworkers; i++) {
		struct srv_worker *w = &s->workers[i];

		if (w->started) {
			uv_thread_join(&w->thread);
			w->started = false;
		}
	}
}

static void
server_free_workers(struct server *s)
{
	for (int i = 0; i < s->nworkers; i++) {
		struct srv_worker *w = &s->workers[i];

		for (size_t j = 0; j < w->nfds; j++)
			close(w->fds[j]);
		free(w->fds);
		ZSTD_freeDCtx(w->dctx);
		pthread_mutex_destroy(&w->mu);
		uv_sem_destroy(&w->ready);
	}
	free(s->workers);
	s->workers = NULL;
}

static void
server_tell(struct server *s, int cmd)
{
	for (int i = 0; i < s->nworkers; i++) {
		atomic_fetch_or(&s->workers[i].cmd, cmd);
		uv_async_send(&s->workers[i].async);
	}
}

/* Frees what server_start made before any handle (socket, TLS, s). */
static void
server_release(struct server *s)
{
	if (s->fd >= 0)
		close(s->fd);
	tls_config_unref(s->tls);
	server_allowed_free(s->allowed);
	pthread_mutex_destroy(&s->tls_mu);
	free(s);
}

static void
server_on_aborted(uv_handle_t *h)
{
	struct server *s = h->data;

	if (--s->handles == 0)
		server_release(s);
}

/*
 * server_start failed after its handles joined the loop: stops the workers
 * that started, and frees s once the loop has closed the handles (the
 * daemon runs its loop after a failed start for exactly that).
 */
static void
server_abort(struct server *s)
{
	if (s->workers != NULL) {
		for (int i = 0; i < s->nworkers; i++)
			if (s->workers[i].started) {
				atomic_fetch_or(&s->workers[i].cmd, CMD_FINISH);
				uv_async_send(&s->workers[i].async);
			}
		server_join_workers(s);
		server_free_workers(s);
	}
	uv_close((uv_handle_t *)&s->poll, server_on_aborted);
	if (s->handles == 2)
		uv_close((uv_handle_t *)&s->rest, server_on_aborted);
}

/* The relay's TLS configuration from the tls section of cfg; logs what is wrong. */
static int
server_tls_new(const struct relay_config *cfg, struct tls_config **out)
{
	struct tls_config_options to;
	char err[512];
	int rc;

	relay_config_tls_options(cfg, &to);
	if ((rc = tls_config_new(&to, err, sizeof(err), out)) != 0)
		log_error("tls: %s", err);
	return rc;
}

/* A reload prepared: the TLS files loaded and allowed_agents copied. */
struct server_reload {
	struct tls_config *tls;
	struct srv_allowed *allowed;
	char cert_file[512];
};

void
server_reload_cancel(struct server_reload *rl)
{
	if (rl == NULL)
		return;
	tls_config_unref(rl->tls);
	server_allowed_free(rl->allowed);
	free(rl);
}

int
server_reload_prepare(struct server *s, const struct relay_config *fresh,
    struct server_reload **out)
{
	struct server_reload *rl = calloc(1, sizeof(*rl));
	struct relay_config files = *fresh;
	int rc;

	if (rl == NULL || (rl->allowed = server_allowed_new(fresh)) == NULL) {
		log_error("SIGHUP: out of memory copying tls.allowed_agents");
		server_reload_cancel(rl);
		return -ENOMEM;
	}
	/* These need a restart (the Hello check reads the running ones): TLS must agree. */
	files.tls.verify_client = s->cfg->tls.verify_client;
	files.tls.handshake_timeout_ms = s->cfg->tls.handshake_timeout_ms;
	if ((rc = server_tls_new(&files, &rl->tls)) != 0) {
		log_error("SIGHUP: the running TLS certificates stay");
		server_reload_cancel(rl);
		return rc;
	}
	snprintf(rl->cert_file, sizeof(rl->cert_file), "%s", fresh->tls.cert_file);
	*out = rl;
	return 0;
}

void
server_reload_commit(struct server *s, struct server_reload *rl)
{
	struct tls_config *old_tls;
	struct srv_allowed *old_allowed;
	bool changed;

	pthread_mutex_lock(&s->tls_mu);
	old_tls = s->tls;
	s->tls = rl->tls;
	old_allowed = s->allowed;
	changed = !server_allowed_same(old_allowed, rl->allowed);
	s->allowed = rl->allowed;
	pthread_mutex_unlock(&s->tls_mu);
	rl->tls = old_tls;
	rl->allowed = old_allowed;
	log_info("SIGHUP: TLS reloaded from %s: new connections use it; the %" PRIu64
	    " open connection(s) keep theirs", rl->cert_file, (uint64_t)atomic_load(&s->connections));
	if (changed) {
		log_info("SIGHUP: tls.allowed_agents changed: new Hellos are checked against it; "
		    "open connections of agents no longer allowed close once their batches in "
		    "flight are answered");
		server_tell(s, CMD_RECHECK);
	}
	server_reload_cancel(rl);
}

int
server_start(uv_loop_t *loop, const struct relay_config *cfg, struct kafka *k,
    const struct server_budget *budget, struct server **out)
{
	struct server *s;
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->loop = loop;
	s->cfg = cfg;
	s->k = k;
	s->budget = *budget;
	s->fd = -1;
	if ((s->allowed = server_allowed_new(cfg)) == NULL) {
		log_error("out of memory copying tls.allowed_agents");
		free(s);
		return -ENOMEM;
	}
	if ((rc = server_tls_new(cfg, &s->tls)) != 0) {
		server_allowed_free(s->allowed);
		free(s);
		return rc;
	}
	pthread_mutex_init(&s->tls_mu, NULL);
	if ((rc = server_listen(s)) != 0)
		goto fail;
	s->poll.data = s;
	if ((rc = uv_poll_init_socket(loop, &s->poll, s->fd)) != 0) {
		log_error("listen: cannot watch the socket: %s", uv_strerror(rc));
		goto fail;
	}
	/* From here on the poll handle is the loop's: failures close it first (server_abort). */
	s->handles = 1;
	s->nworkers = (int)cfg->workers;
	if ((s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers))) == NULL) {
		log_error("out of memory for %d workers", s->nworkers);
		server_abort(s);
		return -ENOMEM;
	}
	for (int i = 0; i < s->nworkers; i++) {
		struct srv_worker *w = &s->workers[i];

		w->s = s;
		w->index = i;
		w->qtail = &w->qhead;
		pthread_mutex_init(&w->mu, NULL);
		uv_sem_init(&w->ready, 0);
	}
	for (int i = 0; i < s->nworkers; i++) {
		struct srv_worker *w = &s->workers[i];

		if ((rc = uv_thread_create(&w->thread, worker_main, w)) != 0) {
			log_error("cannot start worker thread %d: %s", i, uv_strerror(rc));
			break;
		}
		w->started = true;
		uv_sem_wait(&w->ready);
		if ((rc = w->start_rc) != 0) {
			log_error("worker %d cannot start: %s", i, uv_strerror(rc));
			uv_thread_join(&w->thread);
			w->started = false;
			break;
		}
	}
	if (rc != 0) {
		server_abort(s);
		return rc;
	}
	s->rest.data = s;
	uv_timer_init(loop, &s->rest);
	s->handles = 2;
	if ((rc = uv_poll_start(&s->poll, UV_READABLE, server_on_accept)) != 0) {
		log_error("listen: cannot watch the socket: %s", uv_strerror(rc));
		server_abort(s);
		return rc;
	}
	s->polling = true;
	log_info("%d worker(s); memory_limit %" PRIu64 " MiB: batches in flight %" PRIu64
	    " MiB, connections %" PRIu64 " MiB (%" PRIu64 " at most), Kafka queue the rest",
	    s->nworkers, cfg->memory_limit >> 20, budget->batches >> 20,
	    budget->connections >> 20, budget->connections / SERVER_CONN_COST);
	if ((uint64_t)cfg->max_connections > budget->connections / SERVER_CONN_COST)
		log_warn("max_connections (%" PRId64 ") is above what memory_limit allows (%" PRIu64
		    "): raise memory_limit to accept that many agents", cfg->max_connections,
		    budget->connections / SERVER_CONN_COST);
	*out = s;
	return rc;

fail:
	server_release(s);
	return rc;
}

static void
server_flush_work(uv_work_t *req)
{
	struct server *s = req->data;

	if (kafka_flush(s->k, s->cfg->shutdown_timeout_ms) != 0)
		log_warn("stopping: Kafka did not answer every batch within shutdown_timeout (%" PRIu64
		    " ms); those batches are answered RETRY and agents send them again",
		    s->cfg->shutdown_timeout_ms);
}

static void
server_join_work(uv_work_t *req)
{
	server_join_workers(req->data);
}

static void
server_on_joined(uv_work_t *req, int status)
{
	struct server *s = req->data;

	(void)status;
	if (s->done != NULL)
		s->done(s->done_ctx);
}

static void
server_on_flushed_then_join(uv_work_t *req, int status)
{
	struct server *s = req->data;

	(void)status;
	server_tell(s, CMD_FINISH);
	uv_queue_work(s->loop, &s->work, server_join_work, server_on_joined);
}

static void
server_on_listener_closed(uv_handle_t *h)
{
	struct server *s = h->data;

	if (--s->handles > 0)
		return;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	/* Workers stop reading; Kafka gets shutdown_timeout to answer what is in flight. */
	server_tell(s, CMD_DRAIN);
	s->work.data = s;
	uv_queue_work(s->loop, &s->work, server_flush_work, server_on_flushed_then_join);
}

void
server_stop(struct server *s, void (*done)(void *ctx), void *ctx)
{
	s->done = done;
	s->done_ctx = ctx;
	s->polling = false;
	log_info("stopping: no new connections; waiting up to %" PRIu64 " ms for Kafka to answer "
	    "the batches in flight", s->cfg->shutdown_timeout_ms);
	uv_close((uv_handle_t *)&s->poll, server_on_listener_closed);
	uv_close((uv_handle_t *)&s->rest, server_on_listener_closed);
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	server_join_workers(s);
	if (s->workers != NULL)
		server_free_workers(s);
	if (s->fd >= 0)
		close(s->fd);
	tls_config_unref(s->tls);
	server_allowed_free(s->allowed);
	pthread_mutex_destroy(&s->tls_mu);
	free(s);
}

void
server_get_stats(struct server *s, struct server_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->accepted = atomic_load(&s->st.accepted);
	st->refused = atomic_load(&s->st.refused);
	st->handshakes_failed = atomic_load(&s->st.handshakes_failed);
	st->agents_refused = atomic_load(&s->st.agents_refused);
	st->protocol_errors = atomic_load(&s->st.protocol_errors);
	st->unknown_event_formats = atomic_load(&s->st.unknown_event_formats);
	st->batches = atomic_load(&s->st.batches);
	st->events = atomic_load(&s->st.events);
	st->events_malformed = atomic_load(&s->st.events_malformed);
	st->acks_ok = atomic_load(&s->st.acks_ok);
	st->acks_retry = atomic_load(&s->st.acks_retry);
	st->acks_rejected = atomic_load(&s->st.acks_rejected);
	st->connections = atomic_load(&s->connections);
	st->inflight_bytes = atomic_load(&s->inflight);
	st->paused_reads = atomic_load(&s->st.paused_reads);
	st->kafka_failing = atomic_load(&s->kafka_failing);
}

uint16_t
server_port(const struct server *s)
{
	return s->port;
}
