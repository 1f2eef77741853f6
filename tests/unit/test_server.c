/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay/server against librdkafka's mock cluster in this process, with
 * agents played by TLS clients of common/tls speaking frames by hand: the
 * protocol's happy path, every refusal, and the bounds.
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

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <uv.h>
#include <zstd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"
#include "proto/event.h"
#include "proto/event_dict.h"
#include "proto/frame.h"
#include "relay/kafka.h"
#include "relay/relay_config.h"
#include "relay/server.h"
#include "tests/unit/cert_fixture.h"

#define TOPIC "logs.nginx"
#define MAX_FRAMES 64


struct client {
	struct tls_conn *tls;
	struct frame_decoder *dec;
	struct tls_config *cfg;
	int handshake;                 /* 1 ok, <0 failed, 0 pending */
	bool closed;
	int nframes;
	enum frame_type types[MAX_FRAMES];
	logferry_Frame frames[MAX_FRAMES];
};

struct fx {
	rd_kafka_t *mrk;
	rd_kafka_mock_cluster_t *mc;
	char bootstrap[256];
	struct config_addr broker, listen;
	const char *allowed[2];
	struct config_map_entry props[2];
	struct relay_config cfg;
	struct kafka *k;
	uv_loop_t loop;
	struct server *s;
	bool stopped;
};

/* ---- the fixture ---- */

static void
fx_cfg_defaults(struct fx *f)
{
	static char ca[300], cert[300], key[300];

	snprintf(ca, sizeof(ca), "%s/ca.crt", cert_fixture_dir);
	snprintf(cert, sizeof(cert), "%s/relay-chain.crt", cert_fixture_dir);
	snprintf(key, sizeof(key), "%s/relay.key", cert_fixture_dir);
	f->cfg.id = "relay-test";
	f->listen.host = "127.0.0.1";
	f->listen.port = 0;
	f->listen.text = "127.0.0.1:0";
	f->cfg.listen = f->listen;
	f->cfg.workers = 2;
	f->cfg.memory_limit = 256u << 20;
	f->cfg.max_connections = 100;
	f->cfg.shutdown_timeout_ms = 2000;
	f->cfg.tls.ca_file = ca;
	f->cfg.tls.cert_file = cert;
	f->cfg.tls.key_file = key;
	f->cfg.tls.verify_client = true;
	f->allowed[0] = "web-*";
	f->cfg.tls.allowed_agents.n = 1;
	f->cfg.tls.allowed_agents.items = f->allowed;
	f->cfg.tls.handshake_timeout_ms = 2000;
	f->cfg.limits.max_batch_bytes = 256 * 1024;
	f->cfg.limits.max_uncompressed_bytes = 1024 * 1024;
	f->cfg.limits.window = 4;
	f->cfg.limits.connection_max_inflight = 32u << 20;
	f->cfg.limits.idle_timeout_ms = 60000;
	f->broker.text = f->bootstrap;
	f->cfg.kafka.brokers.n = 1;
	f->cfg.kafka.brokers.items = &f->broker;
	f->cfg.kafka.topic = "logs.${stream}";
	f->cfg.kafka.key = "${host}";
	f->cfg.kafka.format = RELAY_FORMAT_JSON;
	f->cfg.kafka.headers = true;
	f->cfg.kafka.delivery_timeout_ms = 30000;
	f->props[0] = (struct config_map_entry){ "reconnect.backoff.max.ms", "200", 0 };
	f->cfg.kafka.properties.n = 1;
	f->cfg.kafka.properties.items = f->props;
}

static struct fx *
fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];

	assert_non_null(f);
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	f->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	assert_non_null(f->mrk);
	f->mc = rd_kafka_mock_cluster_new(f->mrk, 3);
	assert_non_null(f->mc);
	assert_int_equal(rd_kafka_mock_topic_create(f->mc, TOPIC, 3, 3), 0);
	snprintf(f->bootstrap, sizeof(f->bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(f->mc));
	fx_cfg_defaults(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	return f;
}

static void
fx_start(struct fx *f)
{
	struct server_budget b = { f->cfg.memory_limit / 4, f->cfg.memory_limit / 4 };

	assert_int_equal(kafka_new(&f->cfg, f->cfg.memory_limit / 2, &f->k), 0);
	assert_int_equal(server_start(&f->loop, &f->cfg, f->k, &b, &f->s), 0);
	assert_true(server_port(f->s) != 0);
}

static void
fx_on_stopped(void *ctx)
{
	((struct fx *)ctx)->stopped = true;
}

static void
fx_free(struct fx *f)
{
	if (f->s != NULL && !f->stopped) {
		server_stop(f->s, fx_on_stopped, f);
		while (!f->stopped)
			uv_run(&f->loop, UV_RUN_ONCE);
	}
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	server_free(f->s);
	kafka_free(f->k);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	rd_kafka_mock_cluster_destroy(f->mc);
	rd_kafka_destroy(f->mrk);
	free(f);
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

/* Runs the loop until *cond (a bool or int set nonzero by callbacks) or the timeout; returns whether it became true. */
static bool
fx_run_until(struct fx *f, bool (*cond)(void *), void *arg, uint64_t timeout_ms)
{
	uv_timer_t t;
	uint64_t end = uv_now(&f->loop) + timeout_ms;
	bool ok;

	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, tick_cb, 10, 10);
	while (!(ok = cond(arg)) && uv_now(&f->loop) < end)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	return ok;
}

/* ---- the agent side ---- */

static int
cl_on_frame(void *arg, const struct frame *fr)
{
	struct client *c = arg;

	if (c->nframes < MAX_FRAMES) {
		c->types[c->nframes] = frame_type(fr);
		c->frames[c->nframes++] = fr->pb;
	}
	return 0;
}

static void
cl_on_handshake(void *ctx, int status)
{
	struct client *c = ctx;

	c->handshake = status == 0 ? 1 : status;
}

static void
cl_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct client *c = ctx;

	assert_int_equal(frame_decoder_feed(c->dec, p, n, cl_on_frame, c), 0);
}

static void
cl_on_close(void *ctx, int reason)
{
	struct client *c = ctx;

	(void)reason;
	c->closed = true;
	c->tls = NULL;
}

static const struct tls_conn_callbacks cl_callbacks = {
	.on_handshake = cl_on_handshake, .on_data = cl_on_data, .on_close = cl_on_close,
};

static bool
cl_settled(void *arg)
{
	struct client *c = arg;

	return c->handshake != 0 || c->closed;
}

static bool
cl_closed(void *arg)
{
	return ((struct client *)arg)->closed;
}

static struct client *
cl_connect(struct fx *f, const char *cert, const char *ca)
{
	struct client *c = calloc(1, sizeof(*c));
	char capath[300], certpath[300], keypath[300], err[512];
	struct tls_config_options o = { .role = TLS_ROLE_CLIENT, .handshake_timeout_ms = 3000 };
	struct sockaddr_in sa;

	assert_non_null(c);
	snprintf(capath, sizeof(capath), "%s/%s", cert_fixture_dir, ca);
	snprintf(certpath, sizeof(certpath), "%s/%s-chain.crt", cert_fixture_dir, cert);
	if (strcmp(cert, "intruder") == 0)
		snprintf(certpath, sizeof(certpath), "%s/%s.crt", cert_fixture_dir, cert);
	snprintf(keypath, sizeof(keypath), "%s/%s.key", cert_fixture_dir, cert);
	o.ca_file = capath;
	o.cert_file = certpath;
	o.key_file = keypath;
	assert_int_equal(tls_config_new(&o, err, sizeof(err), &c->cfg), 0);
	assert_int_equal(frame_decoder_new(1 << 20, &c->dec), 0);
	uv_ip4_addr("127.0.0.1", server_port(f->s), &sa);
	assert_int_equal(tls_conn_connect(&f->loop, c->cfg, (struct sockaddr *)&sa, "127.0.0.1",
	    &cl_callbacks, c, &c->tls), 0);
	assert_true(fx_run_until(f, cl_settled, c, 5000));
	return c;
}

static void
cl_free(struct fx *f, struct client *c)
{
	if (c->tls != NULL)
		tls_conn_close(c->tls);
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	frame_decoder_free(c->dec);
	tls_config_unref(c->cfg);
	free(c);
}

static void
cl_send(struct client *c, const struct frame *fr)
{
	struct buf b;

	buf_init(&b, 16u << 20);
	assert_int_equal(frame_encode(fr, &b), 0);
	/* Pieces the send buffer always takes. */
	for (size_t off = 0; off < b.len; off += 16384) {
		size_t n = b.len - off < 16384 ? b.len - off : 16384;

		assert_int_equal(tls_conn_write(c->tls, b.data + off, n), 0);
	}
	buf_free(&b);
}

static void
cl_send_raw(struct client *c, const void *p, size_t n)
{
	assert_int_equal(tls_conn_write(c->tls, p, n), 0);
}

static void
cl_hello(struct client *c, const char *id)
{
	struct frame fr;

	frame_init(&fr, FRAME_HELLO);
	fr.pb.hello.protocol_version = 1;
	snprintf(fr.pb.hello.agent_id, sizeof(fr.pb.hello.agent_id), "%s", id);
	snprintf(fr.pb.hello.software_version, sizeof(fr.pb.hello.software_version), "test");
	cl_send(c, &fr);
}

struct wait_frame {
	struct client *c;
	int n;
};

static bool
cl_has_frames(void *arg)
{
	struct wait_frame *w = arg;

	return w->c->nframes >= w->n || w->c->closed;
}

/* Waits for the client to hold n frames; returns whether it does. */
static bool
cl_wait_frames(struct fx *f, struct client *c, int n, uint64_t timeout_ms)
{
	struct wait_frame w = { c, n };

	fx_run_until(f, cl_has_frames, &w, timeout_ms);
	return c->nframes >= n;
}

/* An EventList of n events on stream nginx, encoded and compressed. */
static void
make_events(int n, const char *prefix, struct buf *plain, struct buf *zst)
{
	char msg[128];

	buf_init(plain, 64u << 20);
	buf_init(zst, 64u << 20);
	for (int i = 0; i < n; i++) {
		struct event ev = { .ts = 1764064800000000000ull + (uint64_t)i };

		snprintf(msg, sizeof(msg), "%s line %d", prefix, i);
		ev.host = (struct pbslice){ (const uint8_t *)"web-01", 6 };
		ev.stream = (struct pbslice){ (const uint8_t *)"nginx", 5 };
		ev.source = (struct pbslice){ (const uint8_t *)"/var/log/nginx/access.log", 25 };
		ev.message = (struct pbslice){ (const uint8_t *)msg, strlen(msg) };
		assert_int_equal(event_encode(&ev, plain), 0);
	}
	assert_int_equal(buf_reserve(zst, ZSTD_compressBound(plain->len)), 0);
	zst->len = ZSTD_compress(zst->data, ZSTD_compressBound(plain->len), plain->data, plain->len, 1);
	assert_false(ZSTD_isError(zst->len));
}

/* As make_events, in event format 3: a Dict, then events whose field "word" is packed. */
static void
make_events_format3(int n, struct buf *plain, struct buf *zst)
{
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used used;
	struct buf events;
	char msg[128];

	assert_non_null(d);
	memset(&used, 0, sizeof(used));
	event_dict_set_format(d, EVENT_FORMAT_3);
	buf_init(plain, 64u << 20);
	buf_init(zst, 64u << 20);
	buf_init(&events, 64u << 20);
	for (int i = 0; i < n; i++) {
		struct event ev = { .ts = 1764064800000000000ull + (uint64_t)i };
		struct event_field f = { .key = { (const uint8_t *)"word", 4 }, .type = EVENT_SLICE,
			.v.slice = { 0, 8 } };

		snprintf(msg, sizeof(msg), "format-3 line %d", i);
		ev.host = (struct pbslice){ (const uint8_t *)"web-01", 6 };
		ev.stream = (struct pbslice){ (const uint8_t *)"nginx", 5 };
		ev.message = (struct pbslice){ (const uint8_t *)msg, strlen(msg) };
		ev.fields = &f;
		ev.nfields = 1;
		assert_int_equal(event_dict_encode(d, &ev, &used, &events), 0);
	}
	assert_int_equal(event_dict_write(d, &used, plain), 0);
	assert_int_equal(buf_append(plain, events.data, events.len), 0);
	assert_int_equal(buf_reserve(zst, ZSTD_compressBound(plain->len)), 0);
	zst->len = ZSTD_compress(zst->data, ZSTD_compressBound(plain->len), plain->data, plain->len, 1);
	assert_false(ZSTD_isError(zst->len));
	buf_free(&events);
	event_dict_free(d);
}

static void
cl_batch(struct client *c, uint64_t id, uint32_t count, uint64_t declared, const struct buf *payload)
{
	struct frame fr;

	frame_init(&fr, FRAME_BATCH);
	fr.pb.batch.id = id;
	fr.pb.batch.event_count = count;
	fr.pb.batch.compression = logferry_Compression_COMPRESSION_ZSTD;
	fr.pb.batch.uncompressed_size = declared;
	fr.payload = (struct pbslice){ payload->data, payload->len };
	cl_send(c, &fr);
}

/* The client's frame i as an Ack, checked to be one. */
static const logferry_Ack *
cl_ack(struct client *c, int i)
{
	assert_true(i < c->nframes);
	assert_int_equal(c->types[i], FRAME_ACK);
	return &c->frames[i].ack;
}

/* Connects as cert, says Hello as id and checks the Welcome. */
static struct client *
cl_ready(struct fx *f, const char *cert, const char *id)
{
	struct client *c = cl_connect(f, cert, "ca.crt");

	assert_int_equal(c->handshake, 1);
	cl_hello(c, id);
	assert_true(cl_wait_frames(f, c, 1, 5000));
	assert_int_equal(c->types[0], FRAME_WELCOME);
	assert_int_equal(c->frames[0].welcome.max_batch_bytes, f->cfg.limits.max_batch_bytes);
	assert_int_equal(c->frames[0].welcome.max_uncompressed_bytes, f->cfg.limits.max_uncompressed_bytes);
	assert_int_equal(c->frames[0].welcome.window, f->cfg.limits.window);
	assert_string_equal(c->frames[0].welcome.relay_id, "relay-test");
	return c;
}

static void
send_good_batch(struct fx *f, struct client *c, uint64_t id, int n, logferry_Ack_Status want)
{
	struct buf plain, zst;
	int before = c->nframes;

	make_events(n, "good", &plain, &zst);
	cl_batch(c, id, (uint32_t)n, plain.len, &zst);
	assert_true(cl_wait_frames(f, c, before + 1, 15000));
	assert_int_equal(cl_ack(c, before)->batch_id, id);
	assert_int_equal(cl_ack(c, before)->status, want);
	buf_free(&plain);
	buf_free(&zst);
}

/*
 * Sends batch id again after each RETRY, as an agent does, until it is
 * answered OK; at most tries times. Brokers that were down come back after
 * librdkafka's reconnect backoff, which on a loaded machine can outlast
 * one delivery_timeout.
 */
static void
send_good_batch_until_ok(struct fx *f, struct client *c, uint64_t id, int n, int tries)
{
	struct buf plain, zst;

	make_events(n, "good", &plain, &zst);
	for (int t = 1;; t++) {
		int before = c->nframes;

		cl_batch(c, id, (uint32_t)n, plain.len, &zst);
		assert_true(cl_wait_frames(f, c, before + 1, 15000));
		assert_int_equal(cl_ack(c, before)->batch_id, id);
		if (cl_ack(c, before)->status == logferry_Ack_Status_OK)
			break;
		assert_int_equal(cl_ack(c, before)->status, logferry_Ack_Status_RETRY);
		assert_true(t < tries);
	}
	buf_free(&plain);
	buf_free(&zst);
}

struct inflight_wait {
	struct fx *f;
	uint64_t paused;
};

static bool
nothing_in_flight(void *arg)
{
	struct server_stats ss;

	server_get_stats(arg, &ss);
	return ss.inflight_bytes == 0;
}

static bool
batches_received(void *arg)
{
	struct inflight_wait *w = arg;
	struct server_stats ss;

	server_get_stats(w->f->s, &ss);
	return ss.batches >= w->paused;
}

/* ---- tests ---- */

static void
test_batch_acked_ok_only_after_kafka_has_every_event(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct kafka_stats ks;
	struct server_stats ss;

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	send_good_batch(f, c, 1, 100, logferry_Ack_Status_OK);
	kafka_get_stats(f->k, &ks);
	assert_int_equal(ks.delivered, 100);
	send_good_batch(f, c, 101, 2000, logferry_Ack_Status_OK);
	kafka_get_stats(f->k, &ks);
	assert_int_equal(ks.delivered, 2100);
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.batches, 2);
	assert_int_equal(ss.events, 2100);
	assert_int_equal(ss.acks_ok, 2);
	/* The worker uncounts a batch just after sending its Ack. */
	assert_true(fx_run_until(f, nothing_in_flight, f->s, 2000));
	cl_free(f, c);
	fx_free(f);
}

static void
test_agent_claiming_another_id_refused(void **state)
{
	struct fx *f = fx_new();
	struct client *c, *good;
	struct server_stats ss;

	(void)state;
	fx_start(f);
	good = cl_ready(f, "web-01", "web-01");
	c = cl_connect(f, "web-02", "ca.crt");
	assert_int_equal(c->handshake, 1);
	cl_hello(c, "web-01");
	assert_true(cl_wait_frames(f, c, 1, 5000));
	assert_int_equal(c->types[0], FRAME_GOODBYE);
	assert_non_null(strstr(c->frames[0].goodbye.reason, "does not match its certificate's common name 'web-02'"));
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.agents_refused, 1);
	/* The honest agent is unaffected. */
	send_good_batch(f, good, 1, 10, logferry_Ack_Status_OK);
	cl_free(f, c);
	cl_free(f, good);
	fx_free(f);
}

static void
test_agent_outside_allowed_agents_refused(void **state)
{
	struct fx *f = fx_new();
	struct client *c;

	(void)state;
	f->allowed[0] = "db-*";
	fx_start(f);
	c = cl_connect(f, "web-01", "ca.crt");
	cl_hello(c, "web-01");
	assert_true(cl_wait_frames(f, c, 1, 5000));
	assert_int_equal(c->types[0], FRAME_GOODBYE);
	assert_non_null(strstr(c->frames[0].goodbye.reason, "not in tls.allowed_agents"));
	cl_free(f, c);
	fx_free(f);
}

/* Applies f->cfg to the running server as a SIGHUP does. */
static void
fx_reload(struct fx *f)
{
	struct server_reload *rl;

	assert_int_equal(server_reload_prepare(f->s, &f->cfg, &rl), 0);
	server_reload_commit(f->s, rl);
}

static void
test_agent_no_longer_allowed_after_a_reload_is_let_go_once_its_batches_are_acked(void **state)
{
	struct fx *f = fx_new();
	struct client *gone, *stays, *again;
	struct server_stats ss;
	struct buf plain, zst;

	(void)state;
	fx_start(f);
	gone = cl_ready(f, "web-01", "web-01");
	stays = cl_ready(f, "web-02", "web-02");
	send_good_batch(f, gone, 1, 10, logferry_Ack_Status_OK);
	/* Slow answers: the batch is in flight when the reload comes. */
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 1000);
	make_events(50, "in flight", &plain, &zst);
	cl_batch(gone, 2, 50, plain.len, &zst);
	assert_true(fx_run_until(f, batches_received, &(struct inflight_wait){ f, 2 }, 5000));
	f->allowed[0] = "web-02";
	fx_reload(f);
	/* Its Ack first, then the Goodbye, then the connection ends. */
	assert_true(cl_wait_frames(f, gone, 3, 15000));
	assert_int_equal(cl_ack(gone, 2)->batch_id, 2);
	assert_int_equal(cl_ack(gone, 2)->status, logferry_Ack_Status_OK);
	assert_true(fx_run_until(f, cl_closed, gone, 5000));
	assert_true(gone->nframes >= 4);
	assert_int_equal(gone->types[3], FRAME_GOODBYE);
	assert_non_null(strstr(gone->frames[3].goodbye.reason, "no longer in the relay's tls.allowed_agents"));
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 0);
	/* Refused at its next Hello; the agent still allowed goes on. */
	again = cl_connect(f, "web-01", "ca.crt");
	cl_hello(again, "web-01");
	assert_true(cl_wait_frames(f, again, 1, 5000));
	assert_int_equal(again->types[0], FRAME_GOODBYE);
	assert_non_null(strstr(again->frames[0].goodbye.reason, "not in tls.allowed_agents"));
	send_good_batch(f, stays, 1, 10, logferry_Ack_Status_OK);
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.agents_refused, 2);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, again);
	cl_free(f, gone);
	cl_free(f, stays);
	fx_free(f);
}

static void
test_other_ca_certificate_refused_at_handshake(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct server_stats ss;

	(void)state;
	fx_start(f);
	c = cl_connect(f, "intruder", "ca.crt");
	assert_true(c->handshake < 0 || c->closed);
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.handshakes_failed, 1);
	cl_free(f, c);
	fx_free(f);
}

static void
test_declared_size_above_limit_rejected_and_connection_goes_on(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst;

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	make_events(10, "big", &plain, &zst);
	cl_batch(c, 1, 10, 2u << 20, &zst);   /* declares 2 MiB, over the 1 MiB limit */
	assert_true(cl_wait_frames(f, c, 2, 5000));
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_REJECTED);
	assert_non_null(strstr(cl_ack(c, 1)->reason, "above max_uncompressed_bytes"));
	send_good_batch(f, c, 11, 10, logferry_Ack_Status_OK);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_zstd_bomb_stops_at_declared_size(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf zst;
	size_t big = 100u << 20;
	uint8_t *zeros = calloc(1, big);

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	/* 100 MiB of zeros compress to a few KiB; the batch declares 1000 bytes. */
	buf_init(&zst, 256u << 20);
	assert_int_equal(buf_reserve(&zst, ZSTD_compressBound(big)), 0);
	zst.len = ZSTD_compress(zst.data, ZSTD_compressBound(big), zeros, big, 3);
	assert_false(ZSTD_isError(zst.len));
	assert_true(zst.len < 64 * 1024);
	/* A bomb that stays within the batch limit still cannot get past the declared size. */
	cl_batch(c, 1, 10, 1000, &zst);
	assert_true(cl_wait_frames(f, c, 2, 5000));
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_REJECTED);
	assert_non_null(strstr(cl_ack(c, 1)->reason, "more than the 1000 bytes declared"));
	/* The worker's zstd context starts afresh for the next batch. */
	send_good_batch(f, c, 11, 10, logferry_Ack_Status_OK);
	free(zeros);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_event_count_and_malformed_events_rejected(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst;
	struct kafka_stats ks;

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	make_events(10, "count", &plain, &zst);
	cl_batch(c, 1, 11, plain.len, &zst);
	assert_true(cl_wait_frames(f, c, 2, 5000));
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_REJECTED);
	assert_non_null(strstr(cl_ack(c, 1)->reason, "holds 10 events, not the 11 declared"));
	/* A cut EventList: its framing is broken; nothing of it reaches Kafka. */
	plain.len -= 3;
	zst.len = ZSTD_compress(zst.data, zst.cap, plain.data, plain.len, 1);
	assert_false(ZSTD_isError(zst.len));
	cl_batch(c, 20, 10, plain.len, &zst);
	assert_true(cl_wait_frames(f, c, 3, 5000));
	assert_int_equal(cl_ack(c, 2)->status, logferry_Ack_Status_REJECTED);
	assert_non_null(strstr(cl_ack(c, 2)->reason, "its EventList is malformed"));
	kafka_get_stats(f->k, &ks);
	assert_int_equal(ks.produced, 0);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_malformed_event_refused_alone_others_delivered(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst;
	struct kafka_stats ks;
	struct server_stats ss;
	/* An Event whose host (field 2) comes as a varint: well framed, does not decode. */
	static const uint8_t bad[] = { 0x0a, 0x02, 0x10, 0x01 };

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	make_events(5, "before", &plain, &zst);
	assert_int_equal(buf_append(&plain, bad, sizeof(bad)), 0);
	buf_free(&zst);
	{
		struct buf tail, tz;

		make_events(4, "after", &tail, &tz);
		assert_int_equal(buf_append(&plain, tail.data, tail.len), 0);
		buf_free(&tail);
		buf_free(&tz);
	}
	buf_init(&zst, 1 << 20);
	assert_int_equal(buf_reserve(&zst, ZSTD_compressBound(plain.len)), 0);
	zst.len = ZSTD_compress(zst.data, zst.cap, plain.data, plain.len, 1);
	assert_false(ZSTD_isError(zst.len));
	cl_batch(c, 100, 10, plain.len, &zst);
	assert_true(cl_wait_frames(f, c, 2, 15000));
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_OK);
	assert_non_null(strstr(cl_ack(c, 1)->reason, "1 malformed"));
	kafka_get_stats(f->k, &ks);
	assert_int_equal(ks.delivered, 9);
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.events_malformed, 1);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

/*
 * A format-3 spool segment is its zstd frame (no content checksum) and a
 * skippable frame holding the frame's CRC-32C; the shipper sends segments
 * as stored, one after another. The relay skips the skippable frames,
 * between frames and at the end.
 */
static void
test_batch_of_segments_each_followed_by_a_skippable_frame_is_delivered(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst, batch;
	struct kafka_stats ks;
	uint64_t declared = 0;

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	buf_init(&batch, 1 << 20);
	for (int i = 0; i < 3; i++) {
		uint8_t skip[12] = { 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 0xde, 0xad, 0xbe, (uint8_t)i };
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "segment %d", i);
		make_events(4, prefix, &plain, &zst);
		assert_int_equal(buf_append(&batch, zst.data, zst.len), 0);
		assert_int_equal(buf_append(&batch, skip, sizeof(skip)), 0);
		declared += plain.len;
		buf_free(&plain);
		buf_free(&zst);
	}
	cl_batch(c, 1, 12, declared, &batch);
	assert_true(cl_wait_frames(f, c, 2, 15000));
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_OK);
	kafka_get_stats(f->k, &ks);
	assert_int_equal(ks.delivered, 12);
	buf_free(&batch);
	cl_free(f, c);
	fx_free(f);
}

static void
test_batch_before_hello_closes_the_connection(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst;
	struct server_stats ss;

	(void)state;
	fx_start(f);
	c = cl_connect(f, "web-01", "ca.crt");
	make_events(1, "early", &plain, &zst);
	cl_batch(c, 1, 1, plain.len, &zst);
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.protocol_errors, 1);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_garbage_frames_after_hello_close_only_that_connection(void **state)
{
	struct fx *f = fx_new();
	struct client *bad, *good;
	static const uint8_t garbage[] = { 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct server_stats ss;

	(void)state;
	fx_start(f);
	good = cl_ready(f, "web-01", "web-01");
	bad = cl_ready(f, "web-02", "web-02");
	cl_send_raw(bad, garbage, sizeof(garbage));
	assert_true(fx_run_until(f, cl_closed, bad, 5000));
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.protocol_errors, 1);
	send_good_batch(f, good, 1, 50, logferry_Ack_Status_OK);
	cl_free(f, bad);
	cl_free(f, good);
	fx_free(f);
}

static void
test_frame_above_limit_refused_before_allocating(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	static const uint8_t huge[] = { 0x7f, 0xff, 0xff, 0xff, 0x1a };

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	cl_send_raw(c, huge, sizeof(huge));
	assert_true(cl_wait_frames(f, c, 2, 5000));
	assert_int_equal(c->types[1], FRAME_GOODBYE);
	assert_non_null(strstr(c->frames[1].goodbye.reason, "exceeds the limit"));
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	cl_free(f, c);
	fx_free(f);
}

static void
test_ping_answered_and_window_overrun_closes(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct frame fr;
	struct buf plain, zst;

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	frame_init(&fr, FRAME_PING);
	fr.pb.ping.nonce = 77;
	cl_send(c, &fr);
	assert_true(cl_wait_frames(f, c, 2, 5000));
	assert_int_equal(c->types[1], FRAME_PONG);
	assert_int_equal(c->frames[1].pong.nonce, 77);

	/* Kafka answers slowly; five batches in a window of four break the protocol. */
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 3000);
	make_events(5, "window", &plain, &zst);
	for (uint64_t i = 0; i < 5; i++)
		cl_batch(c, 1 + i * 5, 5, plain.len, &zst);
	assert_true(fx_run_until(f, cl_closed, c, 10000));
	for (int i = 2; i < c->nframes; i++)
		assert_int_not_equal(c->types[i], FRAME_ACK);
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 0);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_brokers_down_answers_retry_after_delivery_timeout(void **state)
{
	struct fx *f = fx_new();
	struct client *c;

	(void)state;
	f->cfg.kafka.delivery_timeout_ms = 1000;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_down(f->mc, id);
	send_good_batch(f, c, 1, 20, logferry_Ack_Status_RETRY);
	assert_true(cl_ack(c, 1)->retry_after_ms > 0);
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_up(f->mc, id);
	send_good_batch_until_ok(f, c, 1, 20, 30);
	cl_free(f, c);
	fx_free(f);
}


static bool
paused_reads(void *arg)
{
	struct inflight_wait *w = arg;
	struct server_stats ss;

	server_get_stats(w->f->s, &ss);
	return ss.paused_reads > w->paused;
}

static void
test_connection_inflight_bound_stops_reading_until_acks(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst;
	struct server_stats ss;
	struct inflight_wait w;
	int acked = 0;

	(void)state;
	f->cfg.limits.connection_max_inflight = 64 * 1024;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	server_get_stats(f->s, &ss);
	w = (struct inflight_wait){ f, ss.paused_reads };
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 500);
	make_events(1000, "inflight", &plain, &zst);     /* ~40 KB each: two pass the bound */
	assert_true(plain.len > 32 * 1024);
	for (uint64_t i = 0; i < 4; i++)
		cl_batch(c, 1 + i * 1000, 1000, plain.len, &zst);
	assert_true(fx_run_until(f, paused_reads, &w, 5000));
	server_get_stats(f->s, &ss);
	/* Reading stopped with at most the bound plus one batch in flight. */
	assert_true(ss.inflight_bytes <= 64 * 1024 + plain.len + 16384);
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 0);
	assert_true(cl_wait_frames(f, c, 5, 15000));
	for (int i = 1; i < 5; i++)
		acked += cl_ack(c, i)->status == logferry_Ack_Status_OK;
	assert_int_equal(acked, 4);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_no_hello_within_handshake_timeout_closes(void **state)
{
	struct fx *f = fx_new();
	struct client *c;

	(void)state;
	f->cfg.tls.handshake_timeout_ms = 300;
	fx_start(f);
	c = cl_connect(f, "web-01", "ca.crt");
	assert_int_equal(c->handshake, 1);
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	cl_free(f, c);
	fx_free(f);
}

static void
test_stop_answers_batches_in_flight_then_says_goodbye(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct buf plain, zst;
	struct inflight_wait w = { f, 2 };

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	for (int id = 1; id <= 3; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 100);
	make_events(100, "stop", &plain, &zst);
	cl_batch(c, 1, 100, plain.len, &zst);
	cl_batch(c, 101, 100, plain.len, &zst);
	/* Stop once both batches arrived, while Kafka still works on them. */
	assert_true(fx_run_until(f, batches_received, &w, 5000));
	server_stop(f->s, fx_on_stopped, f);
	assert_true(fx_run_until(f, cl_closed, c, 10000));
	assert_true(c->nframes >= 4);
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_OK);
	assert_int_equal(cl_ack(c, 2)->status, logferry_Ack_Status_OK);
	assert_int_equal(c->types[3], FRAME_GOODBYE);
	while (!f->stopped)
		uv_run(&f->loop, UV_RUN_ONCE);
	buf_free(&plain);
	buf_free(&zst);
	cl_free(f, c);
	fx_free(f);
}

static void
test_max_connections_refuses_more(void **state)
{
	struct fx *f = fx_new();
	struct client *a, *b;
	struct server_stats ss;

	(void)state;
	f->cfg.max_connections = 1;
	fx_start(f);
	a = cl_ready(f, "web-01", "web-01");
	b = cl_connect(f, "web-02", "ca.crt");
	assert_true(b->handshake < 0 || b->closed);
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.refused, 1);
	send_good_batch(f, a, 1, 5, logferry_Ack_Status_OK);
	cl_free(f, b);
	cl_free(f, a);
	fx_free(f);
}

static void
test_welcome_announces_event_formats_and_an_unknown_batch_format_gets_goodbye(void **state)
{
	struct fx *f = fx_new();
	struct client *c;
	struct frame fr;
	struct buf plain, zst, plain3, zst3;
	struct server_stats ss;

	(void)state;
	fx_start(f);
	c = cl_ready(f, "web-01", "web-01");
	/* The relay reads every format: a fleet upgrades relays first. */
	assert_int_equal(c->frames[0].welcome.event_formats_count, 3);
	assert_int_equal(c->frames[0].welcome.event_formats[0], EVENT_FORMAT_1);
	assert_int_equal(c->frames[0].welcome.event_formats[1], EVENT_FORMAT_2);
	assert_int_equal(c->frames[0].welcome.event_formats[2], EVENT_FORMAT_3);
	/* A batch that says format 1 is format 1, as one that says nothing. */
	make_events(3, "format-1", &plain, &zst);
	frame_init(&fr, FRAME_BATCH);
	fr.pb.batch.id = 1;
	fr.pb.batch.event_count = 3;
	fr.pb.batch.compression = logferry_Compression_COMPRESSION_ZSTD;
	fr.pb.batch.uncompressed_size = plain.len;
	fr.pb.batch.event_format = EVENT_FORMAT_1;
	fr.payload = (struct pbslice){ zst.data, zst.len };
	cl_send(c, &fr);
	assert_true(cl_wait_frames(f, c, 2, 15000));
	assert_int_equal(cl_ack(c, 1)->status, logferry_Ack_Status_OK);
	/* Format 3: its packed fields read through its Dict, into Kafka. */
	make_events_format3(3, &plain3, &zst3);
	fr.pb.batch.id = 4;
	fr.pb.batch.uncompressed_size = plain3.len;
	fr.pb.batch.event_format = EVENT_FORMAT_3;
	fr.payload = (struct pbslice){ zst3.data, zst3.len };
	cl_send(c, &fr);
	assert_true(cl_wait_frames(f, c, 3, 15000));
	assert_int_equal(cl_ack(c, 2)->status, logferry_Ack_Status_OK);
	assert_int_equal(cl_ack(c, 2)->batch_id, 4);
	/*
	 * A format this relay does not know: not REJECTED, which would make
	 * the agent delete it, but Goodbye saying why, and the agent keeps it.
	 */
	fr.pb.batch.id = 10;
	fr.pb.batch.event_format = 4;
	cl_send(c, &fr);
	assert_true(cl_wait_frames(f, c, 4, 5000));
	assert_int_equal(c->types[3], FRAME_GOODBYE);
	assert_non_null(strstr(c->frames[3].goodbye.reason, "event format 4"));
	assert_non_null(strstr(c->frames[3].goodbye.reason, "upgrade"));
	assert_true(fx_run_until(f, cl_closed, c, 5000));
	for (int i = 3; i < c->nframes; i++)
		assert_int_not_equal(c->types[i], FRAME_ACK);
	server_get_stats(f->s, &ss);
	assert_int_equal(ss.unknown_event_formats, 1);
	buf_free(&plain);
	buf_free(&zst);
	buf_free(&plain3);
	buf_free(&zst3);
	cl_free(f, c);
	fx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_acked_ok_only_after_kafka_has_every_event),
		cmocka_unit_test(test_agent_claiming_another_id_refused),
		cmocka_unit_test(test_agent_outside_allowed_agents_refused),
		cmocka_unit_test(test_agent_no_longer_allowed_after_a_reload_is_let_go_once_its_batches_are_acked),
		cmocka_unit_test(test_other_ca_certificate_refused_at_handshake),
		cmocka_unit_test(test_declared_size_above_limit_rejected_and_connection_goes_on),
		cmocka_unit_test(test_zstd_bomb_stops_at_declared_size),
		cmocka_unit_test(test_batch_of_segments_each_followed_by_a_skippable_frame_is_delivered),
		cmocka_unit_test(test_event_count_and_malformed_events_rejected),
		cmocka_unit_test(test_malformed_event_refused_alone_others_delivered),
		cmocka_unit_test(test_batch_before_hello_closes_the_connection),
		cmocka_unit_test(test_garbage_frames_after_hello_close_only_that_connection),
		cmocka_unit_test(test_frame_above_limit_refused_before_allocating),
		cmocka_unit_test(test_ping_answered_and_window_overrun_closes),
		cmocka_unit_test(test_brokers_down_answers_retry_after_delivery_timeout),
		cmocka_unit_test(test_connection_inflight_bound_stops_reading_until_acks),
		cmocka_unit_test(test_no_hello_within_handshake_timeout_closes),
		cmocka_unit_test(test_stop_answers_batches_in_flight_then_says_goodbye),
		cmocka_unit_test(test_max_connections_refuses_more),
		cmocka_unit_test(test_welcome_announces_event_formats_and_an_unknown_batch_format_gets_goodbye),
	};

	log_init("test_server", getenv("TEST_SERVER_DEBUG") != NULL ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	if (!cert_fixture_available()) {
		fprintf(stderr, "test_server: openssl not found; skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, cert_fixture_group_setup, cert_fixture_group_teardown);
}
