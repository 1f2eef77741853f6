/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shipper: a real spool in a temporary directory, the shipper on a real uv
 * loop, and in the same loop a fake relay built from tls (server role) and
 * frame that answers Welcome with the limits a test chooses, checks and
 * records every Batch, and acks as the test says.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>
#include <zstd.h>

#include "agent/agent_config.h"
#include "agent/shipper.h"
#include "agent/spool.h"
#include "common/log.h"
#include "common/tls.h"
#include "proto/event.h"
#include "proto/frame.h"
#include "tests/unit/cert_fixture.h"
#include "tests/unit/log_capture.h"
#include "tests/unit/spool_fixture.h"

/* Long enough for ASan on a busy 2-vCPU machine, short enough to fail fast. */
#define WAIT_MS 20000
#define MAX_CONNS 64
#define MAX_RAWS 32
#define MAX_BATCHES 256
#define MAX_HELD 64


/* ---------------------------------------------------------------- fake relay */

enum ack_mode {
	ACK_OK,            /* OK at once */
	ACK_HOLD,          /* the test acks with relay_ack */
	ACK_RETRY_ONCE,    /* RETRY the first time an id arrives, OK the next */
	ACK_REJECT_ABOVE,  /* REJECTED above reject_above events, else OK */
	ACK_BOGUS_ONCE,    /* the first batch gets an Ack for an id never sent */
};

struct rbatch {
	uint64_t id;
	uint32_t events;
	uint64_t uncompressed;
	size_t payload_len;
	uint32_t format;      /* Batch.event_format as sent (0: not set) */
	int conn;
	uint64_t at;          /* uv_now when it arrived */
};

struct relay;

struct rconn {
	struct relay *r;
	struct tls_conn *c;
	struct frame_decoder *dec;
	int idx;
	bool closed;
	uint64_t held[MAX_HELD];
	int nheld;
};

struct relay {
	struct fx *fx;
	uv_tcp_t listener;
	bool listening;
	int port;
	/* Behaviour. */
	bool close_at_once;         /* accept TCP and close it: a relay that refuses */
	bool silent;                /* after Welcome: no Pong, no Ack */
	uint64_t max_batch, max_uncompressed;
	uint32_t window;
	enum ack_mode mode;
	uint32_t reject_above;
	uint32_t retry_after_ms;
	bool ack_held_on_goodbye;   /* answer Goodbye with OK for every held batch */
	bool pause_after_hello;     /* stop reading once Welcome is sent */
	bool refuse_hello;          /* answer Hello with Goodbye and close, as for a wrong id */
	bool goodbye_after_welcome; /* Welcome, then Goodbye and close at once */
	/* Welcome.event_formats (relay_start: 1 and 2). */
	uint32_t welcome_formats[8];
	int nwelcome_formats;
	/* What it saw. */
	struct rconn conns[MAX_CONNS];
	int nconns;
	uv_tcp_t raws[MAX_RAWS];
	int nraws, raws_closed;
	int accepts;
	uint64_t accept_at[64];
	uint64_t welcome_at[MAX_CONNS];
	uint64_t closed_at[MAX_CONNS];
	struct rbatch batches[MAX_BATCHES];
	int nbatches;
	int hellos, pings, goodbyes;
	char agent_id[256], version[64], goodbye_reason[256];
	uint32_t protocol;
	uint32_t hello_formats[8];  /* the last Hello's event_formats */
	int nhello_formats;
	int bad;
	char bad_why[256];
	struct buf messages;        /* every event's message, in arrival order */
};

struct fx {
	uv_loop_t loop;
	uv_timer_t timer;
	bool timer_fired;
	char root[64], dir[96];
	struct spool_options so;
	struct spool *s;
	struct agent_config cfg;
	bool cfg_loaded;
	struct shipper *sh;
	bool sh_stopped;
	struct tls_config *server_cfg;
	struct relay relays[2];
	struct buf expect;          /* every appended message, in order */
	bool committed;
	uint64_t commit_at;
	unsigned seed;
	struct log_capture logs;
};

static const char *
logged(struct fx *fx)
{
	return log_capture_text(&fx->logs);
}

#define assert_logged(fx, text) log_capture_expect(&(fx)->logs, (text))

static void
timer_fired(uv_timer_t *t)
{
	((struct fx *)t->data)->timer_fired = true;
}

/* Runs the loop until cond holds, failing after WAIT_MS. */
#define WAIT_FOR(fx, cond) do { \
	(fx)->timer_fired = false; \
	uv_timer_start(&(fx)->timer, timer_fired, WAIT_MS, 0); \
	while (!(cond) && !(fx)->timer_fired) \
		uv_run(&(fx)->loop, UV_RUN_ONCE); \
	uv_timer_stop(&(fx)->timer); \
	if (!(cond)) \
		fail_msg("timed out waiting for %s; the log:\n%s", #cond, logged(fx)); \
} while (0)

/* Runs the loop for ms, whatever happens. */
static void
run_for(struct fx *fx, unsigned ms)
{
	fx->timer_fired = false;
	uv_timer_start(&fx->timer, timer_fired, ms, 0);
	while (!fx->timer_fired)
		uv_run(&fx->loop, UV_RUN_ONCE);
}

static uint64_t
now(struct fx *fx)
{
	uv_update_time(&fx->loop);
	return uv_now(&fx->loop);
}

static void
rconn_send(struct rconn *rc, const struct frame *f)
{
	struct buf b;

	if (rc->c == NULL)
		return;
	buf_init(&b, 1 << 20);
	assert_int_equal(frame_encode(f, &b), 0);
	assert_int_equal(tls_conn_write(rc->c, b.data, b.len), 0);
	buf_free(&b);
}

static void
rconn_ack(struct rconn *rc, uint64_t id, int status, uint32_t retry_after, const char *reason)
{
	struct frame f;

	frame_init(&f, FRAME_ACK);
	f.pb.ack.batch_id = id;
	f.pb.ack.status = status;
	f.pb.ack.retry_after_ms = retry_after;
	snprintf(f.pb.ack.reason, sizeof(f.pb.ack.reason), "%s", reason);
	rconn_send(rc, &f);
}

static void relay_bad(struct relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
relay_bad(struct relay *r, const char *fmt, ...)
{
	va_list ap;

	r->bad++;
	va_start(ap, fmt);
	vsnprintf(r->bad_why, sizeof(r->bad_why), fmt, ap);
	va_end(ap);
}

static bool
relay_seen(const struct relay *r, uint64_t id, int before)
{
	for (int i = 0; i < before; i++)
		if (r->batches[i].id == id)
			return true;
	return false;
}

/*
 * An event's field as the spool got it, whatever the batch's format:
 * add_segment's "seq" (the message's number after "seq "), an old spool's
 * "n" (after "line "), or none.
 */
static bool
relay_field_good(const struct event *ev, const struct event_field *fields)
{
	struct pbslice v;
	size_t at;

	if (ev->nfields == 0)
		return true;
	if (ev->nfields != 1 || event_field_string(ev, &fields[0], &v) != 0 || v.len == 0)
		return false;
	if (fields[0].key.len == 3 && memcmp(fields[0].key.ptr, "seq", 3) == 0)
		at = 4;
	else if (fields[0].key.len == 1 && fields[0].key.ptr[0] == 'n')
		at = 5;
	else
		return false;
	return v.ptr == ev->message.ptr + at;
}

/* Checks a batch as the real relay would, records it and its messages. */
static void
relay_on_batch(struct rconn *rc, const struct frame *f)
{
	struct relay *r = rc->r;
	const logferry_Batch *b = &f->pb.batch;
	struct rbatch *rb;
	struct event_field fields[64];
	struct event_reader er;
	struct event ev;
	uint8_t *raw;
	size_t n;
	uint32_t count = 0;
	int rc2;

	assert_true(r->nbatches < MAX_BATCHES);
	rb = &r->batches[r->nbatches++];
	rb->id = b->id;
	rb->events = b->event_count;
	rb->uncompressed = b->uncompressed_size;
	rb->payload_len = f->payload.len;
	rb->format = b->event_format;
	rb->conn = rc->idx;
	rb->at = uv_now(&r->fx->loop);
	if (b->compression != logferry_Compression_COMPRESSION_ZSTD)
		relay_bad(r, "batch %llu: compression %d", (unsigned long long)b->id, b->compression);
	if (f->payload.len > r->max_batch)
		relay_bad(r, "batch %llu: payload of %zu bytes above %llu", (unsigned long long)b->id,
		    f->payload.len, (unsigned long long)r->max_batch);
	if (b->uncompressed_size > r->max_uncompressed || b->uncompressed_size == 0) {
		relay_bad(r, "batch %llu: uncompressed size %llu", (unsigned long long)b->id,
		    (unsigned long long)b->uncompressed_size);
		return;
	}
	raw = malloc(b->uncompressed_size);
	assert_non_null(raw);
	n = ZSTD_decompress(raw, b->uncompressed_size, f->payload.ptr, f->payload.len);
	if (ZSTD_isError(n) || n != b->uncompressed_size) {
		relay_bad(r, "batch %llu: payload does not decompress to its size (%s)",
		    (unsigned long long)b->id, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
		free(raw);
		return;
	}
	event_reader_init(&er, raw, n, fields, 64);
	while ((rc2 = event_reader_next(&er, &ev)) == 1) {
		count++;
		/* One format per batch: a format-1 batch refers to no Dict. */
		if (b->event_format < EVENT_FORMAT_2 && ev.dict_refs)
			relay_bad(r, "batch %llu says format %u and holds format-2 events",
			    (unsigned long long)b->id, b->event_format);
		if (!relay_field_good(&ev, fields))
			relay_bad(r, "batch %llu: an event's field is lost or wrong",
			    (unsigned long long)b->id);
		assert_int_equal(buf_append(&r->messages, ev.message.ptr, ev.message.len), 0);
		assert_int_equal(buf_append(&r->messages, "\n", 1), 0);
	}
	if (rc2 != 0 || count != b->event_count)
		relay_bad(r, "batch %llu: %u events read (%d), %u announced", (unsigned long long)b->id,
		    count, rc2, b->event_count);
	free(raw);
	if (r->silent)
		return;
	switch (r->mode) {
	case ACK_OK:
		rconn_ack(rc, b->id, logferry_Ack_Status_OK, 0, "");
		break;
	case ACK_HOLD:
		assert_true(rc->nheld < MAX_HELD);
		rc->held[rc->nheld++] = b->id;
		break;
	case ACK_RETRY_ONCE:
		if (!relay_seen(r, b->id, r->nbatches - 1))
			rconn_ack(rc, b->id, logferry_Ack_Status_RETRY, r->retry_after_ms, "kafka slow");
		else
			rconn_ack(rc, b->id, logferry_Ack_Status_OK, 0, "");
		break;
	case ACK_REJECT_ABOVE:
		if (b->event_count > r->reject_above)
			rconn_ack(rc, b->id, logferry_Ack_Status_REJECTED, 0, "too many events");
		else
			rconn_ack(rc, b->id, logferry_Ack_Status_OK, 0, "");
		break;
	case ACK_BOGUS_ONCE:
		rconn_ack(rc, b->id + 1000000, logferry_Ack_Status_OK, 0, "");
		r->mode = ACK_OK;
		break;
	}
}

static int
relay_on_frame(void *arg, const struct frame *f)
{
	struct rconn *rc = arg;
	struct relay *r = rc->r;
	struct frame out;

	switch (frame_type(f)) {
	case FRAME_HELLO:
		r->hellos++;
		r->protocol = f->pb.hello.protocol_version;
		snprintf(r->agent_id, sizeof(r->agent_id), "%s", f->pb.hello.agent_id);
		snprintf(r->version, sizeof(r->version), "%s", f->pb.hello.software_version);
		r->nhello_formats = (int)f->pb.hello.event_formats_count;
		memcpy(r->hello_formats, f->pb.hello.event_formats, sizeof(r->hello_formats));
		if (r->refuse_hello) {
			frame_init(&out, FRAME_GOODBYE);
			snprintf(out.pb.goodbye.reason, sizeof(out.pb.goodbye.reason),
			    "agent id 'web-01' does not match its certificate's common name 'web-02'");
			rconn_send(rc, &out);
			tls_conn_close(rc->c);
			break;
		}
		frame_init(&out, FRAME_WELCOME);
		out.pb.welcome.protocol_version = 1;
		snprintf(out.pb.welcome.relay_id, sizeof(out.pb.welcome.relay_id), "fake-relay");
		out.pb.welcome.max_batch_bytes = r->max_batch;
		out.pb.welcome.max_uncompressed_bytes = r->max_uncompressed;
		out.pb.welcome.window = r->window;
		out.pb.welcome.event_formats_count = (pb_size_t)r->nwelcome_formats;
		memcpy(out.pb.welcome.event_formats, r->welcome_formats, sizeof(r->welcome_formats));
		rconn_send(rc, &out);
		r->welcome_at[rc->idx] = uv_now(&r->fx->loop);
		if (r->pause_after_hello)
			tls_conn_pause_reading(rc->c);
		if (r->goodbye_after_welcome) {
			frame_init(&out, FRAME_GOODBYE);
			snprintf(out.pb.goodbye.reason, sizeof(out.pb.goodbye.reason), "overloaded");
			rconn_send(rc, &out);
			tls_conn_close(rc->c);
		}
		break;
	case FRAME_BATCH:
		relay_on_batch(rc, f);
		break;
	case FRAME_PING:
		r->pings++;
		if (!r->silent) {
			frame_init(&out, FRAME_PONG);
			out.pb.pong.nonce = f->pb.ping.nonce;
			rconn_send(rc, &out);
		}
		break;
	case FRAME_GOODBYE:
		r->goodbyes++;
		snprintf(r->goodbye_reason, sizeof(r->goodbye_reason), "%s", f->pb.goodbye.reason);
		if (r->ack_held_on_goodbye) {
			for (int i = 0; i < rc->nheld; i++)
				rconn_ack(rc, rc->held[i], logferry_Ack_Status_OK, 0, "");
			rc->nheld = 0;
		}
		break;
	default:
		relay_bad(r, "unexpected %s frame", frame_type_name(frame_type(f)));
		break;
	}
	return 0;
}

static void
relay_on_handshake(void *ctx, int status)
{
	(void)ctx;
	(void)status;
}

static void
relay_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct rconn *rc = ctx;
	int r = frame_decoder_feed(rc->dec, p, n, relay_on_frame, rc);

	if (r != 0)
		relay_bad(rc->r, "frame: %s", frame_decoder_error(rc->dec));
}

static void
relay_on_close(void *ctx, int reason)
{
	struct rconn *rc = ctx;

	(void)reason;
	rc->c = NULL;
	rc->closed = true;
	rc->r->closed_at[rc->idx] = uv_now(&rc->r->fx->loop);
	frame_decoder_free(rc->dec);
	rc->dec = NULL;
}

static const struct tls_conn_callbacks relay_callbacks = {
	.on_handshake = relay_on_handshake,
	.on_data = relay_on_data,
	.on_close = relay_on_close,
};

static void
raw_closed(uv_handle_t *h)
{
	((struct relay *)h->data)->raws_closed++;
}

static void
relay_on_connection(uv_stream_t *server, int status)
{
	struct relay *r = server->data;
	struct rconn *rc;

	assert_int_equal(status, 0);
	if (r->accepts < 64)
		r->accept_at[r->accepts] = uv_now(&r->fx->loop);
	r->accepts++;
	if (r->close_at_once) {
		uv_tcp_t *t;

		assert_true(r->nraws < MAX_RAWS);
		t = &r->raws[r->nraws++];
		assert_int_equal(uv_tcp_init(&r->fx->loop, t), 0);
		t->data = r;
		assert_int_equal(uv_accept(server, (uv_stream_t *)t), 0);
		uv_close((uv_handle_t *)t, raw_closed);
		return;
	}
	assert_true(r->nconns < MAX_CONNS);
	rc = &r->conns[r->nconns];
	memset(rc, 0, sizeof(*rc));
	rc->r = r;
	rc->idx = r->nconns;
	assert_int_equal(frame_decoder_new(FRAME_MAX_LIMIT, &rc->dec), 0);
	assert_int_equal(tls_conn_accept(&r->fx->loop, r->fx->server_cfg, server, &relay_callbacks,
	    rc, &rc->c), 0);
	if (r->pause_after_hello) {
		/* A small window, so that a large frame stays on the agent's side. */
		int size = 32 * 1024;

		assert_int_equal(uv_recv_buffer_size((uv_handle_t *)tls_conn_tcp(rc->c), &size), 0);
	}
	r->nconns++;
}

static struct relay *
relay_start(struct fx *fx, int i)
{
	struct relay *r = &fx->relays[i];
	struct sockaddr_in addr;
	int len = sizeof(addr);

	r->fx = fx;
	r->max_batch = 4 << 20;
	r->max_uncompressed = 64 << 20;
	r->window = 8;
	r->mode = ACK_OK;
	/* A relay as new as the agent; a test sets fewer for an older one. */
	r->welcome_formats[0] = EVENT_FORMAT_1;
	r->welcome_formats[1] = EVENT_FORMAT_2;
	r->welcome_formats[2] = EVENT_FORMAT_3;
	r->nwelcome_formats = 3;
	buf_init(&r->messages, 16 << 20);
	assert_int_equal(uv_tcp_init(&fx->loop, &r->listener), 0);
	r->listener.data = r;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
	assert_int_equal(uv_tcp_bind(&r->listener, (const struct sockaddr *)&addr, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&r->listener, 16, relay_on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&r->listener, (struct sockaddr *)&addr, &len), 0);
	r->port = ntohs(addr.sin_port);
	r->listening = true;
	return r;
}

/* The relay's newest connection. */
static struct rconn *
relay_conn(struct relay *r)
{
	assert_true(r->nconns > 0);
	return &r->conns[r->nconns - 1];
}

/* Acks the held batch id on the newest connection. */
static void
relay_ack(struct relay *r, uint64_t id, int status)
{
	struct rconn *rc = relay_conn(r);

	for (int i = 0; i < rc->nheld; i++) {
		if (rc->held[i] == id) {
			rconn_ack(rc, id, status, 0, status == logferry_Ack_Status_OK ? "" : "test");
			rc->held[i] = rc->held[--rc->nheld];
			return;
		}
	}
	fail_msg("batch %llu is not held", (unsigned long long)id);
}

static uint64_t
batched_events(const struct relay *r)
{
	uint64_t n = 0;

	for (int i = 0; i < r->nbatches; i++)
		n += r->batches[i].events;
	return n;
}

static int
relay_open_conns(const struct relay *r)
{
	int n = 0;

	for (int i = 0; i < r->nconns; i++)
		n += r->conns[i].c != NULL;
	return n;
}

/*
 * Sockets holding the closed ports of the running test, closed by teardown:
 * bound and not listening, without SO_REUSEADDR, so that nobody else (a test
 * running beside this one) can take such a port and answer on it.
 */
static int closed_fds[4];
static int nclosed_fds;

/* A loopback port with nothing listening, held until teardown. */
static int
closed_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	assert_true(nclosed_fds < (int)(sizeof(closed_fds) / sizeof(closed_fds[0])));
	closed_fds[nclosed_fds++] = s;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* ---------------------------------------------------------------- spool, shipper */

static void
on_committed(void *ctx, int status)
{
	struct fx *fx = ctx;

	assert_int_equal(status, 0);
	fx->committed = true;
	fx->commit_at = uv_now(&fx->loop);
}

static void
on_spool_writable(void *ctx)
{
	(void)ctx;
}

/*
 * Appends one segment of n events whose messages are `size` bytes (a
 * prefix, then random letters) and waits for its commit. Returns the
 * sequence number of its first event.
 */
static uint64_t
add_segment(struct fx *fx, unsigned n, size_t size)
{
	struct spool_stats st;
	char msg[8192];

	assert_true(size < sizeof(msg) && size >= 24);
	spool_get_stats(fx->s, &st);
	for (unsigned i = 0; i < n; i++) {
		struct event ev = { 0 };
		int prefix = snprintf(msg, sizeof(msg), "seq %llu event ",
		    (unsigned long long)(st.next_seq + i));
		/* The sequence number, a field as a parser gives it: packed in format 3. */
		struct event_field f = { .key = { (const uint8_t *)"seq", 3 }, .type = EVENT_SLICE,
			.v.slice = { 4, (uint32_t)(prefix - 11) } };
		int rc;

		for (size_t k = (size_t)prefix; k < size; k++)
			msg[k] = (char)('a' + rand_r(&fx->seed) % 26);
		ev.ts = 1000 + i;
		ev.message.ptr = (const uint8_t *)msg;
		ev.message.len = size;
		ev.stream.ptr = (const uint8_t *)"test";
		ev.stream.len = 4;
		ev.fields = &f;
		ev.nfields = 1;
		while ((rc = spool_append(fx->s, &ev, NULL)) == -EAGAIN)
			uv_run(&fx->loop, UV_RUN_ONCE);
		assert_int_equal(rc, 0);
		assert_int_equal(buf_append(&fx->expect, msg, size), 0);
		assert_int_equal(buf_append(&fx->expect, "\n", 1), 0);
	}
	spool_flush(fx->s);
	fx->committed = false;
	assert_int_equal(spool_when_committed(fx->s, on_committed, fx), 0);
	WAIT_FOR(fx, fx->committed);
	return st.next_seq;
}

static uint64_t
segments_deleted(struct fx *fx)
{
	struct spool_stats st;

	spool_get_stats(fx->s, &st);
	return st.segments_deleted;
}

struct seglist {
	uint64_t first[64];
	int n;
};

static int
seglist_cb(void *ctx, const struct spool_segment *seg)
{
	struct seglist *l = ctx;

	assert_true(l->n < 64);
	l->first[l->n++] = seg->first_seq;
	return 0;
}

/* The segments the spool holds now (deletes are asynchronous: wait for segments_deleted first). */
static struct seglist
segments(struct fx *fx)
{
	struct seglist l = { .n = 0 };
	const char *why;

	assert_int_equal(spool_segments(fx->s, 0, seglist_cb, &l, &why), 0);
	return l;
}

/* Loads the agent configuration with these servers (relay indexes; -1: a closed port). */
static void
fx_config(struct fx *fx, int s0, int s1)
{
	char yaml[4096], servers[128];
	char *err = NULL;
	size_t errlen = 0;
	FILE *ef = open_memstream(&err, &errlen);
	int ports[2] = { s0 < 0 ? closed_port() : fx->relays[s0].port,
	    s1 < 0 ? closed_port() : fx->relays[s1].port };
	int rc;

	if (s1 == -2)
		snprintf(servers, sizeof(servers), "127.0.0.1:%d", ports[0]);
	else
		snprintf(servers, sizeof(servers), "127.0.0.1:%d, 127.0.0.1:%d", ports[0], ports[1]);
	snprintf(yaml, sizeof(yaml),
	    "id: web-01\n"
	    "data_dir: %s\n"
	    "sources: [{name: t, type: file, paths: [/nonexistent/t.log]}]\n"
	    "relays:\n"
	    "  servers: [%s]\n"
	    "  tls: {ca_file: %s/ca.crt, cert_file: %s/web-01-chain.crt, key_file: %s/web-01.key,\n"
	    "        handshake_timeout: 3s}\n"
	    "  reconnect_min: 50ms\n"
	    "  reconnect_max: 1s\n",
	    fx->root, servers, cert_fixture_dir, cert_fixture_dir, cert_fixture_dir);
	assert_non_null(ef);
	rc = config_load_string(&agent_config_schema, "test.yaml", yaml, strlen(yaml), &fx->cfg, ef);
	fclose(ef);
	if (rc != 0)
		fail_msg("configuration refused: %s", err);
	free(err);
	fx->cfg_loaded = true;
}

static void
fx_start(struct fx *fx)
{
	assert_int_equal(shipper_start(&fx->loop, &fx->cfg, fx->s, &fx->sh), 0);
}

static void
on_shipper_stopped(void *ctx)
{
	((struct fx *)ctx)->sh_stopped = true;
}

static void
fx_stop(struct fx *fx)
{
	if (fx->sh == NULL || fx->sh_stopped)
		return;
	shipper_stop(fx->sh, on_shipper_stopped, fx);
	WAIT_FOR(fx, fx->sh_stopped);
}

static struct shipper_stats
stats(struct fx *fx)
{
	struct shipper_stats st;

	shipper_get_stats(fx->sh, &st);
	return st;
}

static bool
connected(struct fx *fx)
{
	return stats(fx).connected;
}

static void
assert_relay_good(struct relay *r)
{
	if (r->bad != 0)
		fail_msg("the relay saw %d bad thing(s), the last: %s", r->bad, r->bad_why);
}

/* ---------------------------------------------------------------- fixture */

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct tls_config_options o = { 0 };
	char ca[320], crt[320], key[320], err[512];

	assert_non_null(fx);
	log_capture_start(&fx->logs, "test_shipper", "TEST_SHIPPER_DEBUG");
	fx->seed = 7;
	strcpy(fx->root, "/tmp/test_shipper.XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	snprintf(fx->dir, sizeof(fx->dir), "%s/spool", fx->root);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	assert_int_equal(uv_timer_init(&fx->loop, &fx->timer), 0);
	fx->timer.data = fx;
	buf_init(&fx->expect, 16 << 20);
	spool_options_default(&fx->so, fx->dir);
	fx->so.segment_max_events = 100000;
	fx->so.segment_max_bytes = 16 << 20;
	fx->so.commit_interval_ms = 2;
	assert_int_equal(spool_open(&fx->loop, &fx->so, on_spool_writable, fx, &fx->s), 0);
	snprintf(ca, sizeof(ca), "%s/ca.crt", cert_fixture_dir);
	snprintf(crt, sizeof(crt), "%s/relay-chain.crt", cert_fixture_dir);
	snprintf(key, sizeof(key), "%s/relay.key", cert_fixture_dir);
	o.role = TLS_ROLE_SERVER;
	o.ca_file = ca;
	o.cert_file = crt;
	o.key_file = key;
	o.verify_client = true;
	o.handshake_timeout_ms = 3000;
	if (tls_config_new(&o, err, sizeof(err), &fx->server_cfg) != 0)
		fail_msg("relay tls config: %s", err);
	*state = fx;
	return 0;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
spool_closed(void *ctx)
{
	((struct fx *)ctx)->committed = true;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	fx_stop(fx);
	shipper_free(fx->sh);
	while (nclosed_fds > 0)
		close(closed_fds[--nclosed_fds]);
	for (int i = 0; i < 2; i++) {
		struct relay *r = &fx->relays[i];

		for (int k = 0; k < r->nconns; k++)
			if (r->conns[k].c != NULL)
				tls_conn_close(r->conns[k].c);
		if (r->listening)
			uv_close((uv_handle_t *)&r->listener, NULL);
	}
	fx->committed = false;
	spool_close(fx->s, spool_closed, fx);
	while (!fx->committed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&fx->timer, NULL);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	uv_walk(&fx->loop, close_walk, NULL);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < fx->relays[i].nconns; k++)
			assert_null(fx->relays[i].conns[k].c);
		buf_free(&fx->relays[i].messages);
	}
	tls_config_unref(fx->server_cfg);
	if (fx->cfg_loaded)
		config_free(&agent_config_schema, &fx->cfg);
	buf_free(&fx->expect);
	log_capture_stop(&fx->logs);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* ---------------------------------------------------------------- tests */

static void
test_batches_shipped_and_deleted_after_ack_ok(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct shipper_stats st;
	uint64_t s1, s2, s3;
	char relay_text[64];

	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 5, 100);
	s2 = add_segment(fx, 7, 100);
	assert_int_equal(s2, s1 + 5);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(segments(fx).n, 0);
	assert_int_equal(r->hellos, 1);
	assert_string_equal(r->agent_id, "web-01");
	assert_int_equal(r->protocol, 1);
	assert_string_equal(r->version, PACKAGE_VERSION);
	/* The two stored segments went as one batch. */
	assert_int_equal(r->nbatches, 1);
	assert_int_equal(r->batches[0].id, s1);
	assert_int_equal(r->batches[0].events, 12);
	assert_relay_good(r);

	/* A segment committed while connected goes too (the spool's commit callback). */
	s3 = add_segment(fx, 3, 200);
	WAIT_FOR(fx, segments_deleted(fx) == 3);
	assert_int_equal(r->nbatches, 2);
	assert_int_equal(r->batches[1].id, s3);
	assert_int_equal(r->batches[1].events, 3);
	assert_relay_good(r);
	assert_int_equal(r->messages.len, fx->expect.len);
	assert_memory_equal(r->messages.data, fx->expect.data, fx->expect.len);

	st = stats(fx);
	assert_int_equal(st.batches_sent, 2);
	assert_int_equal(st.events_sent, 15);
	assert_int_equal(st.acks_ok, 2);
	assert_true(st.bytes_sent > 0);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.unacked, 0);
	assert_true(st.connected);
	snprintf(relay_text, sizeof(relay_text), "127.0.0.1:%d", r->port);
	assert_string_equal(st.relay, relay_text);
	assert_int_equal(r->accepts, 1);
	assert_logged(fx, "connected to fake-relay");
}

static void
test_out_of_order_acks_delete_each_batch(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct seglist l;
	uint64_t s[3];

	r->mode = ACK_HOLD;
	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 3;
	for (int i = 0; i < 3; i++)
		s[i] = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(r->batches[i].id, s[i]);

	relay_ack(r, s[2], logferry_Ack_Status_OK);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	l = segments(fx);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.first[0], s[0]);
	assert_int_equal(l.first[1], s[1]);

	relay_ack(r, s[0], logferry_Ack_Status_OK);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	l = segments(fx);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.first[0], s[1]);

	relay_ack(r, s[1], logferry_Ack_Status_OK);
	WAIT_FOR(fx, segments_deleted(fx) == 3);
	assert_int_equal(segments(fx).n, 0);
	assert_int_equal(stats(fx).acks_ok, 3);
	assert_int_equal(stats(fx).inflight, 0);
	assert_int_equal(r->accepts, 1);
	assert_int_equal(r->nbatches, 3);
	assert_relay_good(r);
}

static void
test_window_limits_batches_in_flight(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s[5];

	r->mode = ACK_HOLD;
	r->window = 2;    /* below the agent's 8 */
	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 3;
	for (int i = 0; i < 5; i++)
		s[i] = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 2);
	run_for(fx, 300);
	assert_int_equal(r->nbatches, 2);
	assert_int_equal(stats(fx).inflight, 2);

	relay_ack(r, s[1], logferry_Ack_Status_OK);
	WAIT_FOR(fx, r->nbatches == 3);
	run_for(fx, 200);
	assert_int_equal(r->nbatches, 3);
	assert_int_equal(r->batches[2].id, s[2]);
	assert_int_equal(stats(fx).inflight, 2);
	assert_relay_good(r);
}

static void
test_window_of_agent_below_relays(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);

	r->mode = ACK_HOLD;
	r->window = 8;
	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 3;
	fx->cfg.relays.window = 1;
	for (int i = 0; i < 3; i++)
		add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 1);
	run_for(fx, 300);
	assert_int_equal(r->nbatches, 1);
	assert_logged(fx, "window 1,");
}

static void
test_retry_resends_same_range(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct shipper_stats st;
	uint64_t s1;

	r->mode = ACK_RETRY_ONCE;
	r->retry_after_ms = 300;
	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 4, 100);
	add_segment(fx, 2, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(r->nbatches, 2);
	assert_int_equal(r->batches[0].id, s1);
	assert_int_equal(r->batches[1].id, s1);
	assert_int_equal(r->batches[1].events, r->batches[0].events);
	assert_int_equal(r->batches[1].events, 6);
	assert_int_equal(r->batches[1].uncompressed, r->batches[0].uncompressed);
	assert_int_equal(r->batches[1].payload_len, r->batches[0].payload_len);
	/* Not before the relay's retry_after. */
	assert_true(r->batches[1].at - r->batches[0].at >= 295);
	assert_int_equal(r->batches[1].conn, r->batches[0].conn);
	st = stats(fx);
	assert_int_equal(st.acks_retry, 1);
	assert_int_equal(st.acks_ok, 1);
	assert_int_equal(st.batches_sent, 2);
	assert_int_equal(r->accepts, 1);
	assert_logged(fx, "not delivered yet (kafka slow)");
	assert_relay_good(r);
}

static void
test_reconnect_resends_unacked_then_continues(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s[4];
	int first_of_conn1 = -1;

	r->mode = ACK_HOLD;
	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 3;
	for (int i = 0; i < 3; i++)
		s[i] = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 3);
	relay_ack(r, s[1], logferry_Ack_Status_OK);
	WAIT_FOR(fx, segments_deleted(fx) == 1);

	/* The relay goes away with two batches unacked; a new segment arrives meanwhile. */
	r->mode = ACK_OK;
	tls_conn_close(relay_conn(r)->c);
	s[3] = add_segment(fx, 3, 100);
	WAIT_FOR(fx, segments_deleted(fx) == 4);
	assert_int_equal(r->nconns, 2);
	for (int i = 0; i < r->nbatches; i++) {
		if (r->batches[i].conn == 1) {
			first_of_conn1 = i;
			break;
		}
	}
	assert_int_equal(first_of_conn1, 3);
	assert_int_equal(r->nbatches, 6);
	/* Unacked ones first, oldest first; the acked one never again; then the new one. */
	assert_int_equal(r->batches[3].id, s[0]);
	assert_int_equal(r->batches[4].id, s[2]);
	assert_int_equal(r->batches[5].id, s[3]);
	assert_int_equal(segments(fx).n, 0);
	assert_logged(fx, "connection lost");
	assert_logged(fx, "2 unacknowledged batch(es) will be sent again");
	assert_int_equal(stats(fx).reconnects, 1);
	assert_relay_good(r);
}

static void
test_failover_to_second_server_when_first_refuses(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	const struct config_addr *servers;
	struct shipper_stats st;
	char relay_text[64], again[96];

	fx_config(fx, -1, 0);
	/* Each new connection picks a server at random: the closed port comes up too. */
	fx->cfg.relays.connection_lifetime_ms = 100;
	add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	WAIT_FOR(fx, strstr(logged(fx), "cannot connect") != NULL && r->accepts >= 2 &&
	    connected(fx));
	st = stats(fx);
	snprintf(relay_text, sizeof(relay_text), "127.0.0.1:%d", r->port);
	assert_string_equal(st.relay, relay_text);
	assert_true(st.reconnects >= 1);
	/* After a failure the next attempt goes to another server, never the same again. */
	servers = fx->cfg.relays.servers.items;
	snprintf(again, sizeof(again), "trying %s in", servers[0].text);
	if (strstr(logged(fx), again) != NULL)
		fail_msg("retried the server that had just failed:\n%s", logged(fx));
	assert_relay_good(r);
}

/*
 * Starts a shipper on relay 0 with reconnect_min 40 ms and reconnect_max 2 s:
 * the gaps between the relay's first accepts must follow the backoff.
 */
static void
assert_backoff_gaps(struct fx *fx, struct relay *r)
{
	uint64_t gap[6];

	fx_config(fx, 0, -2);
	fx->cfg.relays.reconnect_min_ms = 40;
	fx->cfg.relays.reconnect_max_ms = 2000;
	fx_start(fx);
	WAIT_FOR(fx, r->accepts >= 6);
	for (int k = 1; k < 6; k++)
		gap[k] = r->accept_at[k] - r->accept_at[k - 1];
	print_message("gaps: %llu %llu %llu %llu %llu ms\n", (unsigned long long)gap[1],
	    (unsigned long long)gap[2], (unsigned long long)gap[3], (unsigned long long)gap[4],
	    (unsigned long long)gap[5]);
	/* Delays after failure k are within [40*2^(k-1)/2, 40*2^(k-1)]. */
	assert_true(gap[3] >= 80);
	assert_true(gap[4] >= 160);
	assert_true(gap[5] >= 320);
}

static void
test_backoff_grows_then_resets(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t closed, reopened;
	int n;

	r->close_at_once = true;
	assert_backoff_gaps(fx, r);

	/* The relay recovers: a connection with an Ack OK resets the backoff. */
	r->close_at_once = false;
	add_segment(fx, 2, 100);
	WAIT_FOR(fx, stats(fx).acks_ok == 1);
	n = r->accepts;
	closed = now(fx);
	tls_conn_close(relay_conn(r)->c);
	WAIT_FOR(fx, r->accepts == n + 1);
	reopened = r->accept_at[n];
	print_message("after a reset: %llu ms\n", (unsigned long long)(reopened - closed));
	/* Without the reset this would be at least 1000 ms (half of reconnect_max). */
	assert_true(reopened - closed < 800);
	WAIT_FOR(fx, connected(fx));
	assert_relay_good(r);
}

static void
test_refusal_after_hello_backs_off(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);

	r->refuse_hello = true;
	assert_backoff_gaps(fx, r);
	assert_true(r->hellos >= 5);
	assert_logged(fx, "does not match its certificate");
	assert_logged(fx, "(attempt 6)");
	assert_false(stats(fx).connected);
	assert_relay_good(r);
}

static void
test_goodbye_right_after_welcome_backs_off(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);

	r->goodbye_after_welcome = true;
	/* Welcomed, but never acked nor up for SHIPPER_STABLE_MS: no reset. */
	assert_backoff_gaps(fx, r);
	assert_logged(fx, "Goodbye: overloaded");
	assert_relay_good(r);
}

/*
 * A relay that stops reading and answering (SIGSTOP) is given up after
 * ping_timeout, not ping_timeout plus a graceful TLS close that waits
 * handshake_timeout for a peer that will never answer.
 */
static void
test_stopped_relay_given_up_within_ping_timeout(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	const char *p;
	unsigned long silence;

	r->silent = true;
	r->pause_after_hello = true;
	fx_config(fx, 0, -2);
	fx->cfg.relays.ping_interval_ms = 100;
	fx->cfg.relays.ping_timeout_ms = 400;
	/* Longer than WAIT_MS: a close that waits for the peer never reconnects in time. */
	fx->cfg.relays.tls.handshake_timeout_ms = 60000;
	fx_start(fx);
	WAIT_FOR(fx, r->nconns == 1 && connected(fx));
	WAIT_FOR(fx, r->accepts == 2);
	assert_logged(fx, "considered dead");
	p = strstr(logged(fx), "nothing received from the relay for ");
	assert_non_null(p);
	silence = strtoul(p + strlen("nothing received from the relay for "), NULL, 10);
	print_message("silence reported: %lu ms\n", silence);
	assert_true(silence >= 400);
	assert_true(silence < 60000);
}

static void
test_dead_relay_detected_by_ping_timeout(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s1;

	r->silent = true;
	fx_config(fx, 0, -2);
	fx->cfg.relays.ping_interval_ms = 100;
	fx->cfg.relays.ping_timeout_ms = 400;
	s1 = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 1);
	WAIT_FOR(fx, r->nconns == 2);
	/* Pings went out, none was answered, and the relay was dropped after ping_timeout. */
	assert_true(r->pings >= 2);
	assert_true(r->conns[0].closed);
	assert_true(r->closed_at[0] - r->welcome_at[0] >= 395);
	assert_logged(fx, "ping_timeout");
	/* The unacked batch goes again on the new connection. */
	WAIT_FOR(fx, r->nbatches == 2);
	assert_int_equal(r->batches[1].id, s1);
	assert_int_equal(r->batches[1].conn, 1);
	assert_int_equal(segments_deleted(fx), 0);
	assert_relay_good(r);
}

static void
test_connection_lifetime_reconnects(void **state)
{
	struct fx *fx = *state;
	struct relay *r0 = relay_start(fx, 0);

	fx_config(fx, 0, -2);
	fx->cfg.relays.connection_lifetime_ms = 400;
	add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	WAIT_FOR(fx, r0->nconns == 2 && connected(fx));
	/* A Goodbye, then at once a new connection. */
	assert_int_equal(r0->goodbyes, 1);
	assert_string_equal(r0->goodbye_reason, "connection lifetime reached");
	assert_true(r0->conns[0].closed);
	assert_true(r0->welcome_at[1] - r0->welcome_at[0] >= 355);
	add_segment(fx, 3, 100);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(r0->batches[1].conn, 1);
	assert_logged(fx, "connection_lifetime reached");
	if (strstr(logged(fx), "connection lost") != NULL)
		fail_msg("a lifetime reconnect logged as a loss:\n%s", logged(fx));
	assert_relay_good(r0);
}

/*
 * Relays in list order brought every agent back to the first one at each
 * connection_lifetime, and the second got no connection: each connection
 * picks one at random.
 */
static void
test_connection_lifetime_spreads_over_every_relay(void **state)
{
	struct fx *fx = *state;
	struct relay *r0 = relay_start(fx, 0);
	struct relay *r1 = relay_start(fx, 1);

	fx_config(fx, 0, 1);
	fx->cfg.relays.connection_lifetime_ms = 100;
	add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r0->hellos >= 1 && r1->hellos >= 1);
	print_message("connections: %d to the first relay, %d to the second\n", r0->accepts,
	    r1->accepts);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	assert_relay_good(r0);
	assert_relay_good(r1);
}

static void
test_lifetime_waits_for_acks_in_flight(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s1;

	r->mode = ACK_HOLD;
	fx_config(fx, 0, -2);
	fx->cfg.relays.connection_lifetime_ms = 300;
	fx->cfg.relays.ping_timeout_ms = 5000;
	s1 = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 1);
	run_for(fx, 600);
	/* Draining: no Goodbye while a batch is in flight. */
	assert_int_equal(r->goodbyes, 0);
	assert_int_equal(r->nconns, 1);
	relay_ack(r, s1, logferry_Ack_Status_OK);
	WAIT_FOR(fx, r->goodbyes == 1 && r->nconns == 2);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	assert_relay_good(r);
}

static void
test_oversize_segment_split_within_welcome_limits(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s1, next;
	struct seglist l;

	r->mode = ACK_HOLD;
	/* 6000 bytes of events compress to about 3500: the compressed limit binds too. */
	r->max_batch = 2500;
	r->max_uncompressed = 6000;
	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 20, 700);
	fx_start(fx);
	/* Pieces arrive until all 20 events are out. */
	WAIT_FOR(fx, batched_events(r) == 20);
	assert_true(r->nbatches >= 3);
	next = s1;
	for (int i = 0; i < r->nbatches; i++) {
		assert_int_equal(r->batches[i].id, next);
		assert_true(r->batches[i].payload_len <= 2500);
		assert_true(r->batches[i].uncompressed <= 6000);
		next += r->batches[i].events;
	}
	assert_int_equal(next, s1 + 20);
	assert_relay_good(r);
	assert_int_equal(r->messages.len, fx->expect.len);
	assert_memory_equal(r->messages.data, fx->expect.data, fx->expect.len);

	/* The segment stays until the last piece is acknowledged. */
	for (int i = r->nbatches - 1; i > 0; i--)
		relay_ack(r, r->batches[i].id, logferry_Ack_Status_OK);
	WAIT_FOR(fx, stats(fx).acks_ok == (uint64_t)r->nbatches - 1);
	run_for(fx, 100);
	assert_int_equal(segments_deleted(fx), 0);
	l = segments(fx);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.first[0], s1);
	relay_ack(r, r->batches[0].id, logferry_Ack_Status_OK);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	assert_int_equal(segments(fx).n, 0);
}

static void
test_rejected_multi_segment_batch_resent_per_segment(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct shipper_stats st;
	uint64_t s[3];

	r->mode = ACK_REJECT_ABOVE;
	r->reject_above = 3;
	fx_config(fx, 0, -2);
	for (int i = 0; i < 3; i++)
		s[i] = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 3);
	assert_int_equal(r->nbatches, 4);
	assert_int_equal(r->batches[0].id, s[0]);
	assert_int_equal(r->batches[0].events, 9);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r->batches[1 + i].id, s[i]);
		assert_int_equal(r->batches[1 + i].events, 3);
	}
	st = stats(fx);
	assert_int_equal(st.acks_rejected, 1);
	assert_int_equal(st.rejected_segments, 0);
	assert_int_equal(st.events_dropped, 0);
	assert_int_equal(st.acks_ok, 3);
	assert_logged(fx, "one per batch");
	assert_relay_good(r);
}

static void
test_rejected_single_segment_deleted_and_counted(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct shipper_stats st;

	r->mode = ACK_REJECT_ABOVE;
	r->reject_above = 2;
	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 4;
	add_segment(fx, 4, 100);
	add_segment(fx, 2, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(r->nbatches, 2);
	st = stats(fx);
	assert_int_equal(st.rejected_segments, 1);
	assert_int_equal(st.events_dropped, 4);
	assert_int_equal(st.acks_ok, 1);
	assert_logged(fx, "deleted from the spool, as it can never be accepted");
	assert_int_equal(segments(fx).n, 0);
}

static void
test_segments_combined_up_to_max_events(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s[5];

	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 7;
	for (int i = 0; i < 5; i++)
		s[i] = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 5);
	assert_int_equal(r->nbatches, 3);
	assert_int_equal(r->batches[0].id, s[0]);
	assert_int_equal(r->batches[0].events, 6);
	assert_int_equal(r->batches[1].id, s[2]);
	assert_int_equal(r->batches[1].events, 6);
	assert_int_equal(r->batches[2].id, s[4]);
	assert_int_equal(r->batches[2].events, 3);
	assert_int_equal(r->messages.len, fx->expect.len);
	assert_memory_equal(r->messages.data, fx->expect.data, fx->expect.len);
	assert_relay_good(r);
}

static void
test_segments_combined_up_to_max_bytes(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);

	fx_config(fx, 0, -2);
	/* Each segment is about 2 KiB of EventList: two fit in 5000 bytes, three do not. */
	fx->cfg.relays.batch.max_bytes = 5000;
	for (int i = 0; i < 4; i++)
		add_segment(fx, 2, 1000);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 4);
	assert_int_equal(r->nbatches, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r->batches[i].events, 4);
		assert_true(r->batches[i].uncompressed <= 5000);
	}
	assert_relay_good(r);
}

static void
test_max_delay_sends_partial_batch(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t waited;

	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_events = 4;
	fx->cfg.relays.batch.max_delay_ms = 600;
	fx_start(fx);
	WAIT_FOR(fx, connected(fx));

	/* A full batch goes at once. */
	add_segment(fx, 4, 100);
	WAIT_FOR(fx, r->nbatches == 1);
	waited = r->batches[0].at - fx->commit_at;
	print_message("full batch after %llu ms\n", (unsigned long long)waited);
	assert_true(waited < 500);

	/* One that is not full waits max_delay for more, then goes as it is. */
	add_segment(fx, 2, 100);
	WAIT_FOR(fx, r->nbatches == 2);
	waited = r->batches[1].at - fx->commit_at;
	print_message("partial batch after %llu ms\n", (unsigned long long)waited);
	assert_true(waited >= 595);
	assert_int_equal(r->batches[1].events, 2);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_relay_good(r);
}

static void
test_unknown_ack_id_reconnects(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s1;

	r->mode = ACK_BOGUS_ONCE;
	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	assert_int_equal(r->nconns, 2);
	assert_int_equal(r->nbatches, 2);
	assert_int_equal(r->batches[0].id, s1);
	assert_int_equal(r->batches[1].id, s1);
	assert_int_equal(r->batches[1].conn, 1);
	assert_logged(fx, "which is not in flight");
	assert_relay_good(r);
}

static void
test_stop_sends_goodbye(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct seglist l;
	uint64_t s1;

	r->mode = ACK_HOLD;
	/* Acks that arrive after the stop began must not delete anything. */
	r->ack_held_on_goodbye = true;
	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 1);
	fx_stop(fx);
	assert_int_equal(r->goodbyes, 1);
	assert_string_equal(r->goodbye_reason, "agent stopping");
	WAIT_FOR(fx, relay_open_conns(r) == 0);
	run_for(fx, 100);
	assert_int_equal(segments_deleted(fx), 0);
	l = segments(fx);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.first[0], s1);
	assert_false(stats(fx).connected);
	assert_logged(fx, "agent stopping");
}

static void
test_acks_after_stop_delete_nothing(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct spool_stats sst;
	uint64_t s1;
	int nsegs;

	/* One batch far larger than the socket buffers, which the relay does not read. */
	r->mode = ACK_HOLD;
	r->pause_after_hello = true;
	r->max_batch = 64 << 20;
	fx_config(fx, 0, -2);
	fx->cfg.relays.batch.max_bytes = 64 << 20;
	spool_get_stats(fx->s, &sst);
	s1 = sst.next_seq;
	for (int i = 0; i < 2500; i++) {
		int rc;

		while ((rc = spool_fixture_append_noise(fx->s, &fx->seed)) == -EAGAIN)
			uv_run(&fx->loop, UV_RUN_ONCE);
		assert_int_equal(rc, 0);
	}
	spool_flush(fx->s);
	fx->committed = false;
	assert_int_equal(spool_when_committed(fx->s, on_committed, fx), 0);
	WAIT_FOR(fx, fx->committed);
	nsegs = segments(fx).n;
	fx_start(fx);
	WAIT_FOR(fx, stats(fx).batches_sent == 1);
	run_for(fx, 200);

	/* Stopping: the frame must be finished before Goodbye; an Ack comes meanwhile. */
	shipper_stop(fx->sh, on_shipper_stopped, fx);
	rconn_ack(relay_conn(r), s1, logferry_Ack_Status_OK, 0, "");
	run_for(fx, 300);
	assert_false(fx->sh_stopped);
	tls_conn_resume_reading(relay_conn(r)->c);
	WAIT_FOR(fx, fx->sh_stopped);
	assert_int_equal(r->nbatches, 1);
	assert_int_equal(r->batches[0].events, 2500);
	assert_int_equal(r->goodbyes, 1);
	run_for(fx, 100);
	assert_int_equal(segments_deleted(fx), 0);
	assert_int_equal(segments(fx).n, nsegs);
	assert_int_equal(stats(fx).acks_ok, 0);
	assert_relay_good(r);
}

static void
test_event_larger_than_relay_limits_dropped(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	struct shipper_stats st;

	r->max_batch = 4096;
	r->max_uncompressed = 6000;
	fx_config(fx, 0, -2);
	add_segment(fx, 2, 7000);
	add_segment(fx, 2, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	/* Only the second segment went; the first one's events can never be accepted. */
	assert_int_equal(r->nbatches, 1);
	assert_int_equal(r->batches[0].events, 2);
	st = stats(fx);
	assert_int_equal(st.events_dropped, 2);
	assert_int_equal(st.acks_ok, 1);
	assert_logged(fx, "exceeds relay");
	assert_int_equal(segments(fx).n, 0);
	assert_relay_good(r);
}

static void
test_stop_while_reconnecting(void **state)
{
	struct fx *fx = *state;

	fx_config(fx, -1, -2);
	fx_start(fx);
	WAIT_FOR(fx, stats(fx).reconnects >= 1);
	fx_stop(fx);
	assert_true(fx->sh_stopped);
}

static void
test_relay_goodbye_moves_to_next_server(void **state)
{
	struct fx *fx = *state;
	struct relay *r0 = relay_start(fx, 0);
	struct relay *r1 = relay_start(fx, 1);
	struct relay *from, *to;
	struct frame f;

	fx_config(fx, 0, 1);
	fx_start(fx);
	WAIT_FOR(fx, connected(fx));
	/* The first server is picked at random. */
	from = r0->nconns == 1 ? r0 : r1;
	to = from == r0 ? r1 : r0;
	frame_init(&f, FRAME_GOODBYE);
	snprintf(f.pb.goodbye.reason, sizeof(f.pb.goodbye.reason), "relay shutting down");
	rconn_send(relay_conn(from), &f);
	WAIT_FOR(fx, to->nconns == 1 && connected(fx));
	assert_logged(fx, "Goodbye: relay shutting down");
	add_segment(fx, 2, 100);
	WAIT_FOR(fx, segments_deleted(fx) == 1);
	assert_int_equal(to->nbatches, 1);
	assert_int_equal(from->nconns, 1);
}

/*
 * SIGHUP drops the relay in use from relays.servers: its batch in flight is
 * acknowledged first (nothing is sent twice or lost), then the shipper
 * says Goodbye and goes on with the relay now listed.
 */
static void
test_reload_leaves_a_relay_no_longer_listed_once_its_batches_are_acked(void **state)
{
	struct fx *fx = *state;
	struct relay *r0 = relay_start(fx, 0);
	struct relay *r1 = relay_start(fx, 1);
	struct agent_config run;
	char relay_text[64];
	uint64_t s1;

	r0->mode = ACK_HOLD;
	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 3, 100);
	fx_start(fx);
	WAIT_FOR(fx, r0->nbatches == 1);
	/* The shipper borrows fx->cfg: the new configuration takes its place. */
	run = fx->cfg;
	memset(&fx->cfg, 0, sizeof(fx->cfg));
	fx_config(fx, 1, -2);
	assert_int_equal(shipper_reload(fx->sh, &fx->cfg), 0);
	assert_logged(fx, "is no longer in relays.servers");
	run_for(fx, 300);
	assert_int_equal(r0->goodbyes, 0);
	assert_int_equal(r1->nconns, 0);
	relay_ack(r0, s1, logferry_Ack_Status_OK);
	WAIT_FOR(fx, r0->goodbyes == 1 && r1->nconns == 1 && connected(fx));
	add_segment(fx, 2, 100);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(r0->nbatches, 1);
	assert_int_equal(r1->nbatches, 1);
	snprintf(relay_text, sizeof(relay_text), "127.0.0.1:%d", r1->port);
	assert_string_equal(stats(fx).relay, relay_text);
	assert_relay_good(r0);
	assert_relay_good(r1);
	/* The configuration given to shipper_start outlives the shipper (its id stays). */
	fx_stop(fx);
	config_free(&agent_config_schema, &run);
}

/* ---------------------------------------------------------------- main */

/* The relay saw nothing wrong and every appended event once, in order. */
static void
assert_got_every_event_once(struct fx *fx, struct relay *r)
{
	assert_relay_good(r);
	assert_int_equal(r->messages.len, fx->expect.len);
	assert_memory_equal(r->messages.data, fx->expect.data, fx->expect.len);
}

/* How many times text is in the captured log. */
static int
logged_count(struct fx *fx, const char *text)
{
	int n = 0;

	for (const char *p = logged(fx); (p = strstr(p, text)) != NULL; p += strlen(text))
		n++;
	return n;
}

/*
 * A relay announcing formats (none: one from before format 2) gets the
 * agent's format-3 segments each alone, written again in format 1: every
 * event arrives once, its field too, and it is said once per connection.
 */
static void
assert_format3_converted_for(struct fx *fx, struct relay *r, int nformats)
{
	r->nwelcome_formats = nformats;
	fx_config(fx, 0, -2);
	add_segment(fx, 5, 100);
	add_segment(fx, 4, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(r->nhello_formats, 3);
	assert_int_equal(r->hello_formats[0], EVENT_FORMAT_1);
	assert_int_equal(r->hello_formats[1], EVENT_FORMAT_2);
	assert_int_equal(r->hello_formats[2], EVENT_FORMAT_3);
	assert_int_equal(r->nbatches, 2);
	for (int i = 0; i < r->nbatches; i++)
		assert_int_equal(r->batches[i].format, EVENT_FORMAT_1);
	assert_got_every_event_once(fx, r);
	assert_relay_good(r);
	assert_int_equal(stats(fx).segments_converted, 2);
	assert_int_equal(stats(fx).acks_rejected, 0);
	assert_int_equal(logged_count(fx, "does not read event format 3"), 1);
	assert_logged(fx, "upgrade the relay");
}

static void
test_a_relay_without_event_formats_gets_format_3_segments_converted_to_format_1(void **state)
{
	struct fx *fx = *state;

	assert_format3_converted_for(fx, relay_start(fx, 0), 0);
}

static void
test_a_relay_announcing_formats_1_and_2_gets_format_3_segments_converted(void **state)
{
	struct fx *fx = *state;

	assert_format3_converted_for(fx, relay_start(fx, 0), 2);
}

static void
test_a_relay_reading_format_3_gets_the_segments_as_stored(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);

	fx_config(fx, 0, -2);
	add_segment(fx, 5, 100);
	add_segment(fx, 4, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	assert_int_equal(r->nbatches, 1);
	assert_int_equal(r->batches[0].format, EVENT_FORMAT_3);
	assert_int_equal(r->batches[0].events, 9);
	assert_got_every_event_once(fx, r);
	assert_relay_good(r);
	assert_int_equal(stats(fx).segments_converted, 0);
	assert_int_equal(logged_count(fx, "does not read event format"), 0);
}

static void
test_unacked_format_3_batch_resent_to_an_older_relay_is_converted(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s1, s2, events = 0;
	int conn1 = 0;

	r->mode = ACK_HOLD;
	fx_config(fx, 0, -2);
	s1 = add_segment(fx, 3, 100);
	s2 = add_segment(fx, 4, 100);
	fx_start(fx);
	WAIT_FOR(fx, r->nbatches == 1);
	assert_int_equal(r->batches[0].format, EVENT_FORMAT_3);

	/* Mid-upgrade: the batch in flight is never answered, the next relay is an old one. */
	r->mode = ACK_OK;
	r->nwelcome_formats = 0;
	tls_conn_close(relay_conn(r)->c);
	WAIT_FOR(fx, segments_deleted(fx) == 2);
	for (int i = 1; i < r->nbatches; i++) {
		assert_int_equal(r->batches[i].conn, 1);
		assert_int_equal(r->batches[i].format, EVENT_FORMAT_1);
		events += r->batches[i].events;
		conn1++;
	}
	assert_int_equal(conn1, 2);
	assert_int_equal(r->batches[1].id, s1);
	assert_int_equal(r->batches[2].id, s2);
	assert_int_equal(events, 7);
	assert_relay_good(r);
	assert_int_equal(stats(fx).segments_converted, 2);
	assert_int_equal(stats(fx).events_dropped, 0);
}

/* Replaces the fixture's spool by one an agent before format 3 left: n lines in format. */
static void
fx_old_spool(struct fx *fx, uint64_t n, int format)
{
	char cmd[160];

	fx->committed = false;
	spool_close(fx->s, spool_closed, fx);
	while (!fx->committed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	spool_fixture_write_format(fx->dir, n, format);
	assert_int_equal(spool_open(&fx->loop, &fx->so, on_spool_writable, fx, &fx->s), 0);
	for (uint64_t i = 0; i < n; i++) {
		char msg[64];

		snprintf(msg, sizeof(msg), "line %08llu\n", (unsigned long long)i);
		assert_int_equal(buf_append(&fx->expect, msg, strlen(msg)), 0);
	}
}

static void
test_an_old_spool_ships_after_the_upgrade_and_batches_never_mix_formats(void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);
	uint64_t s2;

	fx_old_spool(fx, 50, EVENT_FORMAT_1);
	fx_config(fx, 0, -2);
	s2 = add_segment(fx, 5, 100);
	add_segment(fx, 4, 100);
	assert_int_equal(s2, 51);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 3);
	/* The old segment as stored, in a batch of its own; then the new ones together. */
	assert_int_equal(r->nbatches, 2);
	assert_int_equal(r->batches[0].id, 1);
	assert_int_equal(r->batches[0].events, 50);
	assert_int_equal(r->batches[0].format, EVENT_FORMAT_1);
	assert_int_equal(r->batches[1].id, s2);
	assert_int_equal(r->batches[1].events, 9);
	assert_int_equal(r->batches[1].format, EVENT_FORMAT_3);
	assert_got_every_event_once(fx, r);
	assert_int_equal(stats(fx).segments_converted, 0);
}

/*
 * A format-2 spool of an agent before format 3, upgraded, facing a relay
 * that reads 1 and 2: its stored segment as stored, the new ones converted.
 */
static void
test_a_format_2_spool_ships_as_stored_and_new_segments_convert_for_a_format_2_relay(
    void **state)
{
	struct fx *fx = *state;
	struct relay *r = relay_start(fx, 0);

	r->nwelcome_formats = 2;
	fx_old_spool(fx, 50, EVENT_FORMAT_2);
	fx_config(fx, 0, -2);
	add_segment(fx, 5, 100);
	add_segment(fx, 4, 100);
	fx_start(fx);
	WAIT_FOR(fx, segments_deleted(fx) == 3);
	assert_int_equal(r->nbatches, 3);
	assert_int_equal(r->batches[0].id, 1);
	assert_int_equal(r->batches[0].events, 50);
	assert_int_equal(r->batches[0].format, EVENT_FORMAT_2);
	assert_int_equal(r->batches[1].format, EVENT_FORMAT_1);
	assert_int_equal(r->batches[2].format, EVENT_FORMAT_1);
	assert_got_every_event_once(fx, r);
	assert_relay_good(r);
	assert_int_equal(stats(fx).segments_converted, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batches_shipped_and_deleted_after_ack_ok, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_acks_delete_each_batch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_window_limits_batches_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_of_agent_below_relays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_resends_same_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_resends_unacked_then_continues, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failover_to_second_server_when_first_refuses,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_grows_then_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_after_hello_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_goodbye_right_after_welcome_backs_off, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stopped_relay_given_up_within_ping_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dead_relay_detected_by_ping_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connection_lifetime_reconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_lifetime_spreads_over_every_relay,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifetime_waits_for_acks_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oversize_segment_split_within_welcome_limits,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_multi_segment_batch_resent_per_segment,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_single_segment_deleted_and_counted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_segments_combined_up_to_max_events, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_segments_combined_up_to_max_bytes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_max_delay_sends_partial_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_ack_id_reconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_sends_goodbye, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_after_stop_delete_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_larger_than_relay_limits_dropped, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_while_reconnecting, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reload_leaves_a_relay_no_longer_listed_once_its_batches_are_acked, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_relay_without_event_formats_gets_format_3_segments_converted_to_format_1,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_relay_announcing_formats_1_and_2_gets_format_3_segments_converted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_format_2_spool_ships_as_stored_and_new_segments_convert_for_a_format_2_relay,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_relay_reading_format_3_gets_the_segments_as_stored,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unacked_format_3_batch_resent_to_an_older_relay_is_converted, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_an_old_spool_ships_after_the_upgrade_and_batches_never_mix_formats,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_goodbye_moves_to_next_server, setup,
		    teardown),
	};

	/* make-certs.sh needs the openssl CLI; without it, skip (automake's 77). */
	if (!cert_fixture_available()) {
		fprintf(stderr, "test_shipper: openssl not found; skipped\n");
		return 77;
	}
	/* TEST_SHIPPER_FILTER=test_window* runs only the tests whose names match. */
	if (getenv("TEST_SHIPPER_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_SHIPPER_FILTER"));
	return cmocka_run_group_tests(tests, cert_fixture_group_setup, cert_fixture_group_teardown);
}
