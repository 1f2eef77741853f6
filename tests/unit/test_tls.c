/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls: both ends in one process on one uv loop over loopback TCP, with the
 * certificates tests/tools/make-certs.sh makes (root CA, intermediate,
 * ECDSA and RSA leaves, expired, other CA, intruder).
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
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

#include "common/log.h"
#include "common/tls.h"
#include "tests/unit/cert_fixture.h"
#include "tests/unit/log_capture.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define MAX_SERVER 4
/* Long enough for ASan on a busy 2-vCPU machine, short enough to fail fast. */
#define WAIT_MS 20000
#define HS_TIMEOUT_MS 5000


/* ---------------------------------------------------------------- fixture */

struct fx;

/* One TLS end: what it was told to send and what it saw. */
struct ep {
	struct fx *fx;
	struct tls_conn *c;
	int hs_calls, hs_status;
	int close_calls, close_reason;
	char close_why[512];
	char cipher[96];
	char cn[TLS_CN_MAX + 1];
	int cn_rc;
	bool pause_on_open;

	uint32_t rx_seed;           /* the pattern expected */
	uint64_t rx_bytes, rx_hash;
	uint64_t rx_bad;            /* bytes that differ from the pattern */
	uint64_t close_after_rx;    /* tls_conn_close once this much arrived */

	uint32_t tx_seed;
	uint64_t tx_target, tx_sent;
	bool close_after_tx;
	size_t chunk;
	int eagain, writable_calls;
};

/* A plain TCP peer: a silent or garbage-talking client, or a mute server. */
struct raw {
	uv_tcp_t tcp;
	uv_connect_t req;
	uv_write_t wreq;
	const char *send;
	bool close_at_once;         /* like a load balancer's TCP health check */
	bool connected, eof, closed, in_use;
	uint64_t rx_bytes;
};

struct fx {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_timer_t timer;
	bool timer_fired;
	struct sockaddr_in addr;
	struct tls_config *server_cfg;   /* for the next accepted connection */
	bool raw_server;                 /* accept into raws instead */
	struct ep srv[MAX_SERVER];
	int nsrv;
	struct ep cli[MAX_SERVER];
	struct raw raws[2];
	int nraw;
	struct log_capture logs;
};

static void
ep_init(struct fx *fx, struct ep *e)
{
	memset(e, 0, sizeof(*e));
	e->fx = fx;
	e->hs_status = 1;
	e->close_reason = 1;
	e->cn_rc = 1;
	e->rx_hash = UINT64_C(0xcbf29ce484222325);
}

static uint8_t
pattern(uint32_t seed, uint64_t i)
{
	return (uint8_t)((i * 131u + seed) ^ (i >> 11) ^ (seed >> 3));
}

/* FNV-1a of the first n bytes of a pattern: the checksum the receiver must reach. */
static uint64_t
pattern_hash(uint32_t seed, uint64_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (uint64_t i = 0; i < n; i++)
		h = (h ^ pattern(seed, i)) * UINT64_C(0x100000001b3);
	return h;
}

static void
pump(struct ep *e)
{
	/* Sizes around the record size and the send buffer. */
	static const size_t sizes[] = { 1, 1000, 16384, 16385, 65536, 4095, 100000, 33 };
	static uint8_t scratch[100000];
	size_t n, space;
	int r;

	while (e->c != NULL && e->tx_sent < e->tx_target) {
		n = sizes[e->chunk % (sizeof(sizes) / sizeof(sizes[0]))];
		if (n > e->tx_target - e->tx_sent)
			n = (size_t)(e->tx_target - e->tx_sent);
		/*
		 * Fill exactly what fits; when nothing does, try one record, which
		 * any send buffer can take once empty, to get -EAGAIN.
		 */
		space = tls_conn_write_space(e->c);
		if (space == 0 && n > TLS_RECORD_MAX)
			n = TLS_RECORD_MAX;
		else if (space > 0 && n > space)
			n = space;
		for (size_t i = 0; i < n; i++)
			scratch[i] = pattern(e->tx_seed, e->tx_sent + i);
		r = tls_conn_write(e->c, scratch, n);
		if (r == -EAGAIN) {
			e->eagain++;
			return;
		}
		assert_int_equal(r, 0);
		e->tx_sent += n;
		e->chunk++;
	}
	if (e->c != NULL && e->close_after_tx && e->tx_target > 0)
		tls_conn_close(e->c);
}

static void
on_handshake(void *ctx, int status)
{
	struct ep *e = ctx;

	e->hs_calls++;
	e->hs_status = status;
	if (status != 0)
		return;
	snprintf(e->cipher, sizeof(e->cipher), "%s", tls_conn_cipher(e->c));
	e->cn_rc = tls_conn_peer_cn(e->c, e->cn, sizeof(e->cn));
	if (e->pause_on_open)
		tls_conn_pause_reading(e->c);
	pump(e);
}

static void
on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct ep *e = ctx;

	assert_true(n > 0 && n <= TLS_RECORD_MAX);
	for (size_t i = 0; i < n; i++) {
		if (p[i] != pattern(e->rx_seed, e->rx_bytes + i))
			e->rx_bad++;
		e->rx_hash = (e->rx_hash ^ p[i]) * UINT64_C(0x100000001b3);
	}
	e->rx_bytes += n;
	if (e->close_after_rx > 0 && e->rx_bytes >= e->close_after_rx)
		tls_conn_close(e->c);
}

static void
on_writable(void *ctx)
{
	struct ep *e = ctx;

	e->writable_calls++;
	pump(e);
}

static void
on_close(void *ctx, int reason)
{
	struct ep *e = ctx;

	e->close_calls++;
	e->close_reason = reason;
	snprintf(e->close_why, sizeof(e->close_why), "%s", tls_conn_reason(e->c));
	e->c = NULL;
}

static const struct tls_conn_callbacks callbacks = {
	.on_handshake = on_handshake,
	.on_data = on_data,
	.on_writable = on_writable,
	.on_close = on_close,
};

static void
raw_close_cb(uv_handle_t *h)
{
	((struct raw *)h->data)->closed = true;
}

static void
raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	static char sink[64 * 1024];

	(void)h;
	(void)suggested;
	*b = uv_buf_init(sink, sizeof(sink));
}

static void
raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct raw *r = s->data;

	(void)b;
	if (nread > 0)
		r->rx_bytes += (uint64_t)nread;
	else if (nread < 0) {
		r->eof = true;
		uv_read_stop(s);
	}
}

static void
raw_written(uv_write_t *req, int status)
{
	(void)req;
	(void)status;
}

static void
raw_connected(uv_connect_t *req, int status)
{
	struct raw *r = req->data;
	uv_buf_t b;

	assert_int_equal(status, 0);
	r->connected = true;
	if (r->close_at_once) {
		uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
		return;
	}
	assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read), 0);
	if (r->send != NULL) {
		b = uv_buf_init((char *)r->send, (unsigned)strlen(r->send));
		assert_int_equal(uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_written), 0);
	}
}

static struct raw *
raw_new(struct fx *fx)
{
	struct raw *r;

	assert_true(fx->nraw < 2);
	r = &fx->raws[fx->nraw++];
	memset(r, 0, sizeof(*r));
	r->in_use = true;
	assert_int_equal(uv_tcp_init(&fx->loop, &r->tcp), 0);
	r->tcp.data = r;
	r->req.data = r;
	return r;
}

/* A plain TCP client of our listener that sends `send` (NULL: nothing). */
static struct raw *
raw_client(struct fx *fx, const char *send)
{
	struct raw *r = raw_new(fx);

	r->send = send;
	assert_int_equal(uv_tcp_connect(&r->req, &r->tcp, (const struct sockaddr *)&fx->addr,
	    raw_connected), 0);
	return r;
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct fx *fx = server->data;
	struct raw *r;
	struct ep *e;

	assert_int_equal(status, 0);
	if (fx->raw_server) {
		/* A mute server: reads what the client sends and never answers. */
		r = raw_new(fx);
		assert_int_equal(uv_accept(server, (uv_stream_t *)&r->tcp), 0);
		r->connected = true;
		assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read), 0);
		return;
	}
	assert_true(fx->nsrv < MAX_SERVER);
	e = &fx->srv[fx->nsrv];
	assert_int_equal(tls_conn_accept(&fx->loop, fx->server_cfg, server, &callbacks, e, &e->c), 0);
	fx->nsrv++;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	int len = sizeof(fx->addr);

	assert_non_null(fx);
	log_capture_start(&fx->logs, "test_tls", "TEST_TLS_DEBUG");
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	assert_int_equal(uv_timer_init(&fx->loop, &fx->timer), 0);
	fx->timer.data = fx;
	assert_int_equal(uv_tcp_init(&fx->loop, &fx->listener), 0);
	fx->listener.data = fx;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &fx->addr), 0);
	assert_int_equal(uv_tcp_bind(&fx->listener, (const struct sockaddr *)&fx->addr, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&fx->listener, 16, on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&fx->listener, (struct sockaddr *)&fx->addr, &len), 0);
	for (int i = 0; i < MAX_SERVER; i++) {
		ep_init(fx, &fx->srv[i]);
		ep_init(fx, &fx->cli[i]);
	}
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

static int
teardown(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < MAX_SERVER; i++) {
		if (fx->srv[i].c != NULL)
			tls_conn_close(fx->srv[i].c);
		if (fx->cli[i].c != NULL)
			tls_conn_close(fx->cli[i].c);
	}
	for (int i = 0; i < fx->nraw; i++) {
		if (!uv_is_closing((uv_handle_t *)&fx->raws[i].tcp))
			uv_close((uv_handle_t *)&fx->raws[i].tcp, raw_close_cb);
	}
	uv_close((uv_handle_t *)&fx->listener, NULL);
	uv_close((uv_handle_t *)&fx->timer, NULL);
	/* Lingering closes end at their timeout at the latest. */
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	uv_walk(&fx->loop, close_walk, NULL);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	for (int i = 0; i < MAX_SERVER; i++) {
		assert_null(fx->srv[i].c);
		assert_null(fx->cli[i].c);
	}
	tls_config_unref(fx->server_cfg);
	log_capture_stop(&fx->logs);
	free(fx);
	return 0;
}

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

/* Runs the loop until *v >= want, failing after WAIT_MS. */
static void
wait_int(struct fx *fx, const int *v, int want)
{
	fx->timer_fired = false;
	uv_timer_start(&fx->timer, timer_fired, WAIT_MS, 0);
	while (*v < want && !fx->timer_fired)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_timer_stop(&fx->timer);
	if (*v < want)
		fail_msg("timed out waiting; the log:\n%s", logged(fx));
}

static void
wait_u64(struct fx *fx, const uint64_t *v, uint64_t want)
{
	fx->timer_fired = false;
	uv_timer_start(&fx->timer, timer_fired, WAIT_MS, 0);
	while (*v < want && !fx->timer_fired)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_timer_stop(&fx->timer);
	if (*v < want)
		fail_msg("timed out waiting (%llu of %llu); the log:\n%s", (unsigned long long)*v,
		    (unsigned long long)want, logged(fx));
}

static void
wait_bool(struct fx *fx, const bool *v)
{
	fx->timer_fired = false;
	uv_timer_start(&fx->timer, timer_fired, WAIT_MS, 0);
	while (!*v && !fx->timer_fired)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_timer_stop(&fx->timer);
	if (!*v)
		fail_msg("timed out waiting; the log:\n%s", logged(fx));
}

/* Runs the loop for ms, whatever happens. */
static void
run_for(struct fx *fx, unsigned ms)
{
	fx->timer_fired = false;
	uv_timer_start(&fx->timer, timer_fired, ms, 0);
	while (!fx->timer_fired)
		uv_run(&fx->loop, UV_RUN_ONCE);
}

/* ---------------------------------------------------------------- configs */

static const char *
cert(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", cert_fixture_dir, name);
	return p;
}

struct cfg_spec {
	enum tls_role role;
	const char *cert, *key;          /* names in cert_fixture_dir; NULL: none */
	bool verify_client;
	const char *const *ciphers;
	size_t n_ciphers;
	uint64_t timeout_ms;
	size_t send_max;
};

static int
cfg_try(const struct cfg_spec *s, char *err, size_t errlen, struct tls_config **out)
{
	struct tls_config_options o = {
		.role = s->role,
		.ca_file = cert("ca.crt"),
		.cert_file = s->cert != NULL ? cert(s->cert) : NULL,
		.key_file = s->key != NULL ? cert(s->key) : NULL,
		.verify_client = s->verify_client,
		.ciphers = s->ciphers,
		.n_ciphers = s->n_ciphers,
		.handshake_timeout_ms = s->timeout_ms != 0 ? s->timeout_ms : HS_TIMEOUT_MS,
		.send_buffer_max = s->send_max,
	};

	return tls_config_new(&o, err, errlen, out);
}

static struct tls_config *
cfg_make(const struct cfg_spec *s)
{
	struct tls_config *cfg = NULL;
	char err[512];
	int r = cfg_try(s, err, sizeof(err), &cfg);

	if (r != 0)
		fail_msg("tls_config_new: %d: %s", r, err);
	return cfg;
}

static const struct cfg_spec relay_ecdsa = {
	.role = TLS_ROLE_SERVER, .cert = "relay-chain.crt", .key = "relay.key", .verify_client = true,
};
static const struct cfg_spec relay_rsa = {
	.role = TLS_ROLE_SERVER, .cert = "relay-rsa-chain.crt", .key = "relay-rsa.key",
	.verify_client = true,
};
static const struct cfg_spec agent_ecdsa = {
	.role = TLS_ROLE_CLIENT, .cert = "web-01-chain.crt", .key = "web-01.key",
};

static struct sockaddr *
listener_addr(struct fx *fx)
{
	return (struct sockaddr *)&fx->addr;
}

/* Connects client i to the listener with cfg, expecting server name `name`. */
static void
connect_client(struct fx *fx, int i, struct tls_config *cfg, const char *name)
{
	struct ep *e = &fx->cli[i];

	assert_int_equal(tls_conn_connect(&fx->loop, cfg, listener_addr(fx), name, &callbacks, e,
	    &e->c), 0);
}

/* Both ends of pair i are open. */
static void
wait_open(struct fx *fx, int i)
{
	wait_int(fx, &fx->cli[i].hs_calls, 1);
	assert_int_equal(fx->cli[i].hs_status, 0);
	wait_int(fx, &fx->nsrv, i + 1);
	wait_int(fx, &fx->srv[i].hs_calls, 1);
	assert_int_equal(fx->srv[i].hs_status, 0);
}

/* Client i closes; both ends must end cleanly. */
static void
close_pair(struct fx *fx, int i)
{
	tls_conn_close(fx->cli[i].c);
	wait_int(fx, &fx->cli[i].close_calls, 1);
	wait_int(fx, &fx->srv[i].close_calls, 1);
	assert_int_equal(fx->cli[i].close_reason, 0);
	assert_int_equal(fx->srv[i].close_reason, 0);
}

/* ---------------------------------------------------------------- tests */

static void
test_ecdsa_chain_data_both_ways(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	c->tx_target = s->tx_target = MIB;
	c->tx_seed = s->rx_seed = 7;
	s->tx_seed = c->rx_seed = 99;
	/* The server sends as soon as its handshake ends: on_handshake pumps. */
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	wait_u64(fx, &s->rx_bytes, MIB);
	wait_u64(fx, &c->rx_bytes, MIB);
	assert_int_equal(c->tx_sent, MIB);
	assert_int_equal(s->tx_sent, MIB);
	assert_int_equal(s->rx_bad, 0);
	assert_int_equal(c->rx_bad, 0);
	assert_true(s->rx_hash == pattern_hash(7, MIB));
	assert_true(c->rx_hash == pattern_hash(99, MIB));
	close_pair(fx, 0);
	assert_int_equal(s->rx_bytes, MIB);
	assert_int_equal(c->rx_bytes, MIB);
	tls_config_unref(client);
}

/*
 * An agent and a relay that exchanged a Hello-sized message each keep at
 * most that much of send buffer: the handshake's flights (certificate
 * chains, a few KiB) are not kept by an idle connection.
 */
static void
test_an_idle_connection_keeps_no_handshake_send_buffer(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	c->tx_target = s->tx_target = 100;
	c->tx_seed = s->rx_seed = 7;
	s->tx_seed = c->rx_seed = 99;
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	wait_u64(fx, &s->rx_bytes, 100);
	wait_u64(fx, &c->rx_bytes, 100);
	/* Until both ends' writes have completed. */
	fx->timer_fired = false;
	uv_timer_start(&fx->timer, timer_fired, WAIT_MS, 0);
	while ((tls_conn_write_queued(c->c) > 0 || tls_conn_write_queued(s->c) > 0) &&
	    !fx->timer_fired)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	uv_timer_stop(&fx->timer);
	print_message("send buffers: agent %zu, relay %zu bytes\n", tls_conn_send_buffers(c->c),
	    tls_conn_send_buffers(s->c));
	assert_true(tls_conn_send_buffers(s->c) <= 512);
	assert_true(tls_conn_send_buffers(c->c) <= 512);
	close_pair(fx, 0);
	tls_config_unref(client);
}

static void
test_rsa_relay_cert(void **state)
{
	struct fx *fx = *state;
	static const struct cfg_spec agent_rsa = {
		.role = TLS_ROLE_CLIENT, .cert = "web-02-chain.crt", .key = "web-02.key",
	};
	struct tls_config *client = cfg_make(&agent_rsa);
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];

	fx->server_cfg = cfg_make(&relay_rsa);
	c->tx_target = s->tx_target = 200 * KIB;
	c->tx_seed = s->rx_seed = 1;
	s->tx_seed = c->rx_seed = 2;
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	assert_string_equal(c->cipher, "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256");
	assert_string_equal(s->cn, "web-02");
	wait_u64(fx, &s->rx_bytes, 200 * KIB);
	wait_u64(fx, &c->rx_bytes, 200 * KIB);
	assert_int_equal(s->rx_bad + c->rx_bad, 0);
	close_pair(fx, 0);
	tls_config_unref(client);
}

static void
test_default_cipher_is_chacha20(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	char list[512];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	assert_int_equal(tls_config_ciphers(client, list, sizeof(list)), 0);
	assert_string_equal(list, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256, "
	    "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256, "
	    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256, TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256, "
	    "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384, TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384");
	assert_int_equal(tls_config_ciphers(client, list, 10), -ENOBUFS);
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	assert_string_equal(fx->cli[0].cipher, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
	assert_string_equal(fx->srv[0].cipher, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
	close_pair(fx, 0);
	tls_config_unref(client);
}

static void
test_ciphers_override(void **state)
{
	struct fx *fx = *state;
	/* IANA names in lower case, and mbedtls's own spelling. */
	static const char *const aes256[] = { "tls_ecdhe_ecdsa_with_aes_256_gcm_sha384" };
	static const char *const server_list[] = { "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" };
	static const char *const chacha_only[] = { "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" };
	struct cfg_spec cs = agent_ecdsa, ss = relay_ecdsa;
	struct tls_config *client_aes256, *client_default, *server2;

	cs.ciphers = aes256;
	cs.n_ciphers = 1;
	client_aes256 = cfg_make(&cs);
	client_default = cfg_make(&agent_ecdsa);
	ss.ciphers = server_list;
	ss.n_ciphers = 3;
	fx->server_cfg = cfg_make(&ss);

	/* The client offers only AES-256-GCM. */
	connect_client(fx, 0, client_aes256, "localhost");
	wait_open(fx, 0);
	assert_string_equal(fx->cli[0].cipher, "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384");
	close_pair(fx, 0);

	/* The server's order decides: AES-128-GCM before ChaCha20 here. */
	connect_client(fx, 1, client_default, "localhost");
	wait_open(fx, 1);
	assert_string_equal(fx->srv[1].cipher, "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
	close_pair(fx, 1);

	/* Nothing in common: both ends fail and the server says why. */
	ss.ciphers = chacha_only;
	ss.n_ciphers = 1;
	server2 = cfg_make(&ss);
	tls_config_unref(fx->server_cfg);
	fx->server_cfg = server2;
	connect_client(fx, 2, client_aes256, "localhost");
	wait_int(fx, &fx->cli[2].close_calls, 1);
	wait_int(fx, &fx->srv[2].close_calls, 1);
	assert_true(fx->cli[2].hs_status < 0);
	assert_int_equal(fx->srv[2].hs_status, -EPROTO);
	assert_logged(fx, "no cipher suite in common; we offer "
	    "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
	assert_logged(fx, "the peer refused the handshake with alert handshake_failure");
	tls_config_unref(client_aes256);
	tls_config_unref(client_default);
}

static void
expect_config_error(const struct cfg_spec *s, int rc, const char *text)
{
	struct tls_config *cfg = NULL;
	char err[512];

	assert_int_equal(cfg_try(s, err, sizeof(err), &cfg), rc);
	assert_null(cfg);
	if (strstr(err, text) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, text);
}

static void
test_cipher_names_refused(void **state)
{
	static const char *const unknown[] = { "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
		"TLS_FOO_WITH_BAR" };
	static const char *const openssl[] = { "ECDHE-ECDSA-CHACHA20-POLY1305" };
	static const char *const psk[] = { "TLS_PSK_WITH_AES_128_GCM_SHA256" };
	static const char *const twice[] = { "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"tls-ecdhe-rsa-with-aes-128-gcm-sha256" };
	static const char *const rsa_only[] = { "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" };
	struct cfg_spec s = agent_ecdsa;

	(void)state;
	s.ciphers = unknown;
	s.n_ciphers = 2;
	expect_config_error(&s, -EINVAL, "ciphers: unknown cipher suite \"TLS_FOO_WITH_BAR\"");
	s.ciphers = openssl;
	s.n_ciphers = 1;
	expect_config_error(&s, -EINVAL, "unknown cipher suite \"ECDHE-ECDSA-CHACHA20-POLY1305\"; "
	    "use IANA names");
	s.ciphers = psk;
	expect_config_error(&s, -EINVAL, "pre-shared key");
	s.ciphers = twice;
	s.n_ciphers = 2;
	expect_config_error(&s, -EINVAL, "is listed twice");
	s = relay_ecdsa;
	s.ciphers = rsa_only;
	s.n_ciphers = 1;
	expect_config_error(&s, -EINVAL, "none of the cipher suites can be used with the ECDSA key");
	/* The same list suits an RSA relay. */
	s = relay_rsa;
	s.ciphers = rsa_only;
	s.n_ciphers = 1;
	tls_config_unref(cfg_make(&s));
}

static void
test_config_errors(void **state)
{
	struct fx *fx = *state;
	struct tls_config_options o = { .role = TLS_ROLE_CLIENT };
	struct tls_config *cfg = NULL;
	struct cfg_spec s;
	char err[512], junk[300];
	FILE *f;

	/* A missing CA file is named with the system's reason. */
	o.ca_file = cert("no-such-ca.crt");
	assert_int_equal(tls_config_new(&o, err, sizeof(err), &cfg), -ENOENT);
	assert_non_null(strstr(err, "ca_file "));
	assert_non_null(strstr(err, "no-such-ca.crt: No such file or directory"));
	o.ca_file = NULL;
	assert_int_equal(tls_config_new(&o, err, sizeof(err), &cfg), -EINVAL);
	assert_string_equal(err, "ca_file: required");

	/* Garbage where a certificate should be: mbedtls's reason is quoted. */
	snprintf(junk, sizeof(junk), "%s/junk.crt", cert_fixture_dir);
	f = fopen(junk, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	s = agent_ecdsa;
	s.cert = "junk.crt";
	expect_config_error(&s, -EINVAL, "cert_file ");
	expect_config_error(&s, -EINVAL, "junk.crt: X509 - ");

	s = agent_ecdsa;
	s.key = "relay.key";
	expect_config_error(&s, -EINVAL, "relay.key does not hold the key of the first certificate");
	s.key = NULL;
	expect_config_error(&s, -EINVAL, "cert_file and key_file go together");
	/* An agent's certificate (clientAuth) cannot serve as the relay's. */
	s = relay_ecdsa;
	s.cert = "web-01-chain.crt";
	s.key = "web-01.key";
	expect_config_error(&s, -EINVAL, "is not for TLS servers: its extendedKeyUsage lacks serverAuth");
	s.cert = s.key = NULL;
	expect_config_error(&s, -EINVAL, "required for a TLS server");
	s = agent_ecdsa;
	s.send_max = 1000;
	expect_config_error(&s, -EINVAL, "send_buffer_max");
	s = agent_ecdsa;
	s.timeout_ms = UINT64_C(10) * 3600 * 1000;
	expect_config_error(&s, -EINVAL, "handshake_timeout");

	/* Our own certificate expired: a warning, not an error. */
	s = agent_ecdsa;
	s.cert = "expired-chain.crt";
	s.key = "expired.key";
	tls_config_unref(cfg_make(&s));
	assert_logged(fx, "expired-chain.crt: our certificate does not verify against ca_file");
	assert_logged(fx, "The certificate validity has expired");
}

/* tls_check_files with the options of s; err gets its words. */
static int
check_try(const struct cfg_spec *s, const char *ca, char *cn, size_t cnlen, char *err, size_t errlen)
{
	struct tls_config_options o = {
		.role = s->role,
		.ca_file = cert(ca),
		.cert_file = s->cert != NULL ? cert(s->cert) : NULL,
		.key_file = s->key != NULL ? cert(s->key) : NULL,
		.verify_client = s->verify_client,
		.ciphers = s->ciphers,
		.n_ciphers = s->n_ciphers,
	};

	return tls_check_files(&o, cn, cnlen, err, errlen);
}

static void
test_check_files_gives_the_common_name_of_a_good_pair(void **state)
{
	struct fx *fx = *state;
	char cn[TLS_CN_MAX + 1], err[512];

	assert_int_equal(check_try(&agent_ecdsa, "ca.crt", cn, sizeof(cn), err, sizeof(err)), 0);
	assert_string_equal(cn, "web-01");
	assert_int_equal(check_try(&relay_rsa, "ca.crt", cn, sizeof(cn), err, sizeof(err)), 0);
	assert_string_equal(cn, "relay");
	/* An expired certificate is tls_config_new's warning, not a check failure; --check is quiet. */
	struct cfg_spec s = agent_ecdsa;
	s.cert = "expired-chain.crt";
	s.key = "expired.key";
	assert_int_equal(check_try(&s, "ca.crt", cn, sizeof(cn), err, sizeof(err)), 0);
	assert_string_equal(cn, "expired");
	assert_null(strstr(log_capture_text(&fx->logs), "expired"));
}

static void
test_check_files_refuses_a_key_that_is_not_the_certificates(void **state)
{
	struct cfg_spec s = agent_ecdsa;
	char cn[TLS_CN_MAX + 1] = "x", err[512];

	(void)state;
	s.key = "web-02.key";
	assert_int_equal(check_try(&s, "ca.crt", cn, sizeof(cn), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "key_file "));
	assert_non_null(strstr(err, "web-02.key does not hold the key of the first certificate in "
	    "cert_file "));
	assert_string_equal(cn, "");
}

static void
test_check_files_refuses_a_ca_file_without_a_certificate(void **state)
{
	char cn[TLS_CN_MAX + 1], err[512], path[300];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/garbage-ca.crt", cert_fixture_dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("this is not a certificate\n", f);
	fclose(f);
	assert_int_equal(check_try(&agent_ecdsa, "garbage-ca.crt", cn, sizeof(cn), err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "ca_file "));
	assert_non_null(strstr(err, "garbage-ca.crt: "));

	/* A PEM file with only a key in it holds no certificate either. */
	assert_int_equal(check_try(&agent_ecdsa, "web-01.key", cn, sizeof(cn), err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "ca_file "));
	assert_non_null(strstr(err, "web-01.key: "));

	assert_int_equal(check_try(&agent_ecdsa, "no-such-ca.crt", cn, sizeof(cn), err, sizeof(err)),
	    -ENOENT);
	assert_non_null(strstr(err, "no-such-ca.crt: No such file or directory"));
}

static void
test_check_files_refuses_what_tls_config_new_refuses(void **state)
{
	static const char *const unknown[] = { "TLS_FOO_WITH_BAR" };
	struct cfg_spec s = relay_ecdsa;
	char cn[TLS_CN_MAX + 1], err[512];

	(void)state;
	s.cert = "web-01-chain.crt";
	s.key = "web-01.key";
	assert_int_equal(check_try(&s, "ca.crt", cn, sizeof(cn), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "extendedKeyUsage lacks serverAuth"));
	s = agent_ecdsa;
	s.ciphers = unknown;
	s.n_ciphers = 1;
	assert_int_equal(check_try(&s, "ca.crt", cn, sizeof(cn), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ciphers: unknown cipher suite"));
}

/* Runs a handshake that must fail on both ends; returns after both closed. */
static void
expect_refused(struct fx *fx, struct tls_config *client, const char *name)
{
	connect_client(fx, 0, client, name);
	wait_int(fx, &fx->cli[0].close_calls, 1);
	wait_int(fx, &fx->nsrv, 1);
	wait_int(fx, &fx->srv[0].close_calls, 1);
	assert_int_equal(fx->cli[0].hs_calls, 1);
	assert_int_equal(fx->srv[0].hs_calls, 1);
	assert_true(fx->cli[0].hs_status < 0);
	assert_true(fx->srv[0].hs_status < 0);
	assert_int_equal(fx->cli[0].close_reason, fx->cli[0].hs_status);
	assert_int_equal(fx->srv[0].close_reason, fx->srv[0].hs_status);
}

static void
test_other_ca_client_refused(void **state)
{
	struct fx *fx = *state;
	static const struct cfg_spec intruder = {
		.role = TLS_ROLE_CLIENT, .cert = "intruder-chain.crt", .key = "intruder.key",
	};
	struct tls_config *client = cfg_make(&intruder);

	fx->server_cfg = cfg_make(&relay_ecdsa);
	expect_refused(fx, client, "localhost");
	assert_int_equal(fx->srv[0].hs_status, -EKEYREJECTED);
	assert_int_equal(fx->cli[0].hs_status, -EKEYREJECTED);
	assert_logged(fx, "TLS handshake with 127.0.0.1:");
	assert_logged(fx, "failed: client certificate (subject \"CN=intruder\", issuer "
	    "\"CN=logferry test other CA\") refused: The certificate is not correctly signed by the "
	    "trusted CA; it must be signed");
	/* The agent learns it from the relay's alert. */
	assert_logged(fx, "TLS handshake with localhost (127.0.0.1:");
	assert_logged(fx, "the peer refused the handshake with alert unknown_ca (48); it refused our "
	    "certificate (cert_file ");
	assert_non_null(strstr(fx->srv[0].close_why, "client certificate"));
	tls_config_unref(client);
}

static void
test_wrong_server_name_refused(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);

	fx->server_cfg = cfg_make(&relay_ecdsa);
	expect_refused(fx, client, "relay.example.net");
	assert_int_equal(fx->cli[0].hs_status, -EKEYREJECTED);
	assert_logged(fx, "TLS handshake with relay.example.net (127.0.0.1:");
	assert_logged(fx, "server certificate (subject \"CN=relay\", issuer \"CN=logferry test "
	    "intermediate CA\") refused: The certificate Common Name (CN) does not match with the "
	    "expected CN; it is not issued for \"relay.example.net\"");
	assert_logged(fx, "alert bad_certificate");
	tls_config_unref(client);
}

/* mbedtls 2.28 ignores iPAddress entries; tls_verify_cb checks them. */
static void
test_server_ip_checked_against_san(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	static const char *const good[] = { "127.0.0.1", "[127.0.0.1]", "localhost" };
	static const char *const bad[] = { "127.0.0.2", "::1", "relay" };
	int i = 0;

	fx->server_cfg = cfg_make(&relay_ecdsa);
	for (size_t k = 0; k < 3; k++, i++) {
		connect_client(fx, i, client, good[k]);
		wait_open(fx, i);
		close_pair(fx, i);
	}
	/* The IP literal is the peer's name: no "name (address)" in messages. */
	assert_null(strstr(logged(fx), "127.0.0.1 (127.0.0.1"));
	fx->nsrv = 0;
	for (size_t k = 0; k < 3; k++) {
		ep_init(fx, &fx->cli[0]);
		ep_init(fx, &fx->srv[0]);
		fx->nsrv = 0;
		expect_refused(fx, client, bad[k]);
		assert_int_equal(fx->cli[0].hs_status, -EKEYREJECTED);
		assert_non_null(strstr(fx->cli[0].close_why, "does not match with the expected CN"));
	}
	assert_logged(fx, "it is not issued for \"127.0.0.2\"");
	assert_logged(fx, "it is not issued for \"::1\"");
	/* The CN is no substitute for a subjectAltName entry. */
	assert_logged(fx, "it is not issued for \"relay\"");
	tls_config_unref(client);
}

static void
test_expired_client_refused(void **state)
{
	struct fx *fx = *state;
	static const struct cfg_spec expired = {
		.role = TLS_ROLE_CLIENT, .cert = "expired-chain.crt", .key = "expired.key",
	};
	struct tls_config *client = cfg_make(&expired);

	fx->server_cfg = cfg_make(&relay_ecdsa);
	expect_refused(fx, client, "localhost");
	assert_int_equal(fx->srv[0].hs_status, -EKEYREJECTED);
	assert_int_equal(fx->cli[0].hs_status, -EKEYREJECTED);
	assert_logged(fx, "client certificate (subject \"CN=expired\"");
	assert_logged(fx, "refused: The certificate validity has expired; the peer's certificate "
	    "must be renewed");
	assert_logged(fx, "alert certificate_expired");
	tls_config_unref(client);
}

static void
test_client_without_cert(void **state)
{
	struct fx *fx = *state;
	static const struct cfg_spec anonymous = { .role = TLS_ROLE_CLIENT };
	struct cfg_spec lax = relay_ecdsa;
	struct tls_config *client = cfg_make(&anonymous);

	fx->server_cfg = cfg_make(&relay_ecdsa);
	expect_refused(fx, client, "localhost");
	assert_int_equal(fx->srv[0].hs_status, -EKEYREJECTED);
	assert_int_equal(fx->cli[0].hs_status, -EKEYREJECTED);
	/* Relays and the agent's HTTPS intake both verify clients: the advice fits either. */
	assert_logged(fx, "client certificate refused: the client sent none; give the client a "
	    "certificate signed by a CA of ca_file ");
	assert_logged(fx, "ca.crt (an agent: relays.tls.cert_file), or turn tls.verify_client off");
	assert_logged(fx, "it wants a certificate we did not send (we have none: set cert_file and "
	    "key_file)");

	/* With verify_client off the same client gets in, and has no CN. */
	lax.verify_client = false;
	tls_config_unref(fx->server_cfg);
	fx->server_cfg = cfg_make(&lax);
	fx->cli[1].tx_target = 10000;
	fx->cli[1].tx_seed = fx->srv[1].rx_seed = 5;
	connect_client(fx, 1, client, "localhost");
	wait_open(fx, 1);
	assert_int_equal(fx->srv[1].cn_rc, -ENOENT);
	assert_int_equal(fx->cli[1].cn_rc, 0);
	assert_string_equal(fx->cli[1].cn, "relay");
	wait_u64(fx, &fx->srv[1].rx_bytes, 10000);
	close_pair(fx, 1);
	tls_config_unref(client);
}

static void
test_server_without_verify_client_needs_no_ca_file(void **state)
{
	struct fx *fx = *state;
	static const struct cfg_spec anonymous = { .role = TLS_ROLE_CLIENT };
	struct tls_config_options o = {
		.role = TLS_ROLE_SERVER,
		.cert_file = cert("relay-chain.crt"),
		.key_file = cert("relay.key"),
		.handshake_timeout_ms = HS_TIMEOUT_MS,
	};
	struct tls_config *client = cfg_make(&anonymous);
	char err[512];

	/* An HTTPS intake that takes bearer tokens has no client CA to trust. */
	assert_int_equal(tls_check_files(&o, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(tls_config_new(&o, err, sizeof(err), &fx->server_cfg), 0);
	fx->cli[0].tx_target = 1000;
	fx->cli[0].tx_seed = fx->srv[0].rx_seed = 3;
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	assert_int_equal(fx->srv[0].cn_rc, -ENOENT);
	wait_u64(fx, &fx->srv[0].rx_bytes, 1000);
	close_pair(fx, 0);
	tls_config_unref(client);

	/* Client certificates are checked against ca_file: then it is required. */
	o.verify_client = true;
	assert_int_equal(tls_check_files(&o, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "ca_file: required to verify client certificates");
}

static void
test_handshake_timeout(void **state)
{
	struct fx *fx = *state;
	struct cfg_spec fast = relay_ecdsa;
	struct tls_config *client;
	struct raw *r;
	uint64_t t0;

	/* A client that connects and says nothing. */
	fast.timeout_ms = 300;
	fx->server_cfg = cfg_make(&fast);
	r = raw_client(fx, NULL);
	t0 = uv_now(&fx->loop);
	wait_int(fx, &fx->nsrv, 1);
	wait_int(fx, &fx->srv[0].close_calls, 1);
	assert_true(uv_now(&fx->loop) - t0 >= 250);
	assert_int_equal(fx->srv[0].hs_status, -ETIMEDOUT);
	assert_int_equal(fx->srv[0].close_reason, -ETIMEDOUT);
	assert_logged(fx, "TLS handshake with 127.0.0.1:");
	assert_logged(fx, "failed: TLS handshake timed out after 300 ms; the peer sent nothing");
	wait_bool(fx, &r->eof);

	/* A server that accepts and never answers. */
	fast = agent_ecdsa;
	fast.timeout_ms = 300;
	client = cfg_make(&fast);
	fx->raw_server = true;
	connect_client(fx, 0, client, "localhost");
	wait_int(fx, &fx->cli[0].close_calls, 1);
	assert_int_equal(fx->cli[0].hs_status, -ETIMEDOUT);
	assert_logged(fx, "TLS handshake with localhost (127.0.0.1:");
	assert_logged(fx, "is it a TLS server");
	/* It did send its ClientHello. */
	assert_true(fx->raws[1].rx_bytes > 0);
	tls_config_unref(client);
}

static void
test_plaintext_garbage_refused(void **state)
{
	struct fx *fx = *state;
	struct raw *r;

	fx->server_cfg = cfg_make(&relay_ecdsa);
	r = raw_client(fx, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n");
	wait_int(fx, &fx->nsrv, 1);
	wait_int(fx, &fx->srv[0].close_calls, 1);
	assert_int_equal(fx->srv[0].hs_status, -EPROTO);
	assert_logged(fx, "the peer does not speak TLS (it began with \"GET / HT\"); is it a plaintext "
	    "client, or the wrong port?");
	wait_bool(fx, &r->eof);

	/* Binary garbage that is not a TLS record either. */
	r = raw_client(fx, "\x01\x02\x03\x04\x05\x06\x07\x08\x09");
	wait_int(fx, &fx->nsrv, 2);
	wait_int(fx, &fx->srv[1].close_calls, 1);
	assert_int_equal(fx->srv[1].hs_status, -EPROTO);
	assert_logged(fx, "it began with \"........\"");
	wait_bool(fx, &r->eof);
}

/* A TCP health check (connect, close) ends the connection quietly. */
static void
test_health_check_not_warned(void **state)
{
	struct fx *fx = *state;
	struct raw *r;

	fx->server_cfg = cfg_make(&relay_ecdsa);
	r = raw_new(fx);
	r->close_at_once = true;
	assert_int_equal(uv_tcp_connect(&r->req, &r->tcp, listener_addr(fx), raw_connected), 0);
	wait_int(fx, &fx->nsrv, 1);
	wait_int(fx, &fx->srv[0].close_calls, 1);
	assert_int_equal(fx->srv[0].hs_status, -ECONNRESET);
	assert_string_equal(fx->srv[0].close_why,
	    "the peer closed the connection without sending anything");
	assert_null(strstr(logged(fx), "warn:"));
}

static void
test_peer_cn_and_names(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	char small[4];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	connect_client(fx, 0, client, "localhost");
	assert_int_equal(tls_conn_peer_cn(fx->cli[0].c, small, sizeof(small)), -ENOTCONN);
	assert_string_equal(tls_conn_cipher(fx->cli[0].c), "none");
	assert_int_equal(tls_conn_write(fx->cli[0].c, "x", 1), -ENOTCONN);
	wait_open(fx, 0);
	assert_int_equal(fx->srv[0].cn_rc, 0);
	assert_string_equal(fx->srv[0].cn, "web-01");
	assert_int_equal(fx->cli[0].cn_rc, 0);
	assert_string_equal(fx->cli[0].cn, "relay");
	assert_int_equal(tls_conn_peer_cn(fx->srv[0].c, small, sizeof(small)), -ENAMETOOLONG);
	assert_true(strncmp(tls_conn_peer(fx->srv[0].c), "127.0.0.1:", 10) == 0);
	assert_true(strncmp(tls_conn_peer(fx->cli[0].c), "localhost (127.0.0.1:", 21) == 0);
	assert_string_equal(tls_conn_reason(fx->cli[0].c), "");
	assert_non_null(tls_conn_tcp(fx->cli[0].c));
	close_pair(fx, 0);
	assert_string_equal(fx->cli[0].close_why, "closed by us");
	assert_string_equal(fx->srv[0].close_why, "the peer closed the connection");
	tls_config_unref(client);
}

static void
test_write_backpressure(void **state)
{
	struct fx *fx = *state;
	struct cfg_spec small = agent_ecdsa;
	struct tls_config *client;
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];
	static uint8_t big[TLS_SEND_BUFFER_MIN];
	const uint64_t total = 16 * MIB;
	uint64_t sent;
	int writable;

	small.send_max = TLS_SEND_BUFFER_MIN;
	client = cfg_make(&small);
	fx->server_cfg = cfg_make(&relay_ecdsa);
	/* Small kernel buffers, so that a peer that does not read stops us soon. */
	assert_int_equal(uv_recv_buffer_size((uv_handle_t *)&fx->listener, &(int){ 16384 }), 0);
	s->pause_on_open = true;
	s->rx_seed = c->tx_seed = 3;
	connect_client(fx, 0, client, "localhost");
	assert_int_equal(uv_send_buffer_size((uv_handle_t *)tls_conn_tcp(c->c), &(int){ 16384 }), 0);
	wait_open(fx, 0);
	/* Larger than the send buffer can ever hold. */
	assert_int_equal(tls_conn_write(c->c, big, sizeof(big)), -EMSGSIZE);
	c->tx_target = total;
	pump(c);
	/* Until the kernel buffers are full: then nothing moves. */
	run_for(fx, 500);
	assert_true(c->eagain > 0);
	assert_int_equal(s->rx_bytes, 0);
	sent = c->tx_sent;
	writable = c->writable_calls;
	assert_true(sent < total);
	run_for(fx, 300);
	assert_int_equal(c->tx_sent, sent);
	assert_int_equal(c->writable_calls, writable);
	assert_true(tls_conn_write_queued(c->c) > TLS_SEND_BUFFER_MIN / 2);
	assert_int_equal(tls_conn_write(c->c, big, 20000), -EAGAIN);
	/* The peer reads again: everything arrives, and on_writable drove the rest. */
	tls_conn_resume_reading(s->c);
	wait_u64(fx, &s->rx_bytes, total);
	assert_int_equal(c->tx_sent, total);
	assert_true(c->writable_calls > writable);
	assert_int_equal(s->rx_bad, 0);
	assert_true(s->rx_hash == pattern_hash(3, total));
	/* Pausing and resuming again with data waiting in mbedtls and our buffer. */
	tls_conn_pause_reading(s->c);
	c->tx_target = total + 300 * KIB;
	pump(c);
	run_for(fx, 200);
	assert_int_equal(s->rx_bytes, total);
	tls_conn_resume_reading(s->c);
	assert_int_equal(s->rx_bytes, total);   /* delivered from the loop, not from the call */
	wait_u64(fx, &s->rx_bytes, total + 300 * KIB);
	assert_int_equal(s->rx_bad, 0);
	close_pair(fx, 0);
	tls_config_unref(client);
}

static void
test_graceful_close_by_client(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	/* Closes right after the last write: queued records still go out first. */
	c->tx_target = 700 * KIB;
	c->tx_seed = s->rx_seed = 11;
	c->close_after_tx = true;
	connect_client(fx, 0, client, "localhost");
	wait_int(fx, &c->close_calls, 1);
	wait_int(fx, &s->close_calls, 1);
	assert_int_equal(c->close_reason, 0);
	assert_int_equal(s->close_reason, 0);
	assert_int_equal(s->rx_bytes, 700 * KIB);
	assert_int_equal(s->rx_bad, 0);
	assert_string_equal(s->close_why, "the peer closed the connection");
	tls_config_unref(client);
}

static void
test_graceful_close_by_server(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	s->tx_target = 700 * KIB;
	s->tx_seed = c->rx_seed = 12;
	s->close_after_tx = true;
	connect_client(fx, 0, client, "localhost");
	wait_int(fx, &c->close_calls, 1);
	wait_int(fx, &s->close_calls, 1);
	assert_int_equal(c->close_reason, 0);
	assert_int_equal(s->close_reason, 0);
	assert_int_equal(c->rx_bytes, 700 * KIB);
	assert_int_equal(c->rx_bad, 0);
	/* After tls_conn_close only on_close runs: writes are refused. */
	tls_config_unref(client);
}

/*
 * A peer that stopped (SIGSTOP) never answers close_notify: tls_conn_close
 * waits handshake_timeout for it, tls_conn_abort ends the wait at once.
 */
static void
test_abort_does_not_wait_for_a_stopped_peer(void **state)
{
	struct fx *fx = *state;
	struct cfg_spec slow = agent_ecdsa;
	struct tls_config *client;
	struct ep *c = &fx->cli[0], *s = &fx->srv[0];

	/* Longer than WAIT_MS: a close that waits for the peer never ends in time. */
	slow.timeout_ms = 60000;
	client = cfg_make(&slow);
	fx->server_cfg = cfg_make(&relay_ecdsa);
	s->pause_on_open = true;
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	tls_conn_close(c->c);
	run_for(fx, 200);
	assert_int_equal(c->close_calls, 0);
	tls_conn_abort(c->c, -ETIMEDOUT);
	tls_conn_abort(c->c, -ETIMEDOUT);
	wait_int(fx, &c->close_calls, 1);
	assert_int_equal(c->close_reason, -ETIMEDOUT);
	/* The peer, reading again, finds the connection gone. */
	tls_conn_resume_reading(s->c);
	wait_int(fx, &s->close_calls, 1);
	run_for(fx, 50);
	assert_int_equal(c->close_calls, 1);
	tls_config_unref(client);
}

static void
test_close_before_handshake_and_refused_connect(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	struct sockaddr_in nowhere = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(nowhere);
	int probe;

	fx->server_cfg = cfg_make(&relay_ecdsa);
	/* Closed at once: on_close only, no on_handshake. */
	connect_client(fx, 0, client, "localhost");
	tls_conn_close(fx->cli[0].c);
	assert_int_equal(tls_conn_write(fx->cli[0].c, "x", 1), -EPIPE);
	wait_int(fx, &fx->cli[0].close_calls, 1);
	assert_int_equal(fx->cli[0].hs_calls, 0);
	assert_int_equal(fx->cli[0].close_reason, 0);

	/*
	 * A port nobody listens on: bound and not listening, without
	 * SO_REUSEADDR, so that no test running beside this one can take it
	 * until the connection has been refused.
	 */
	probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(probe >= 0);
	assert_int_equal(bind(probe, (struct sockaddr *)&nowhere, sizeof(nowhere)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&nowhere, &len), 0);
	assert_int_equal(tls_conn_connect(&fx->loop, client, (struct sockaddr *)&nowhere, "localhost",
	    &callbacks, &fx->cli[1], &fx->cli[1].c), 0);
	wait_int(fx, &fx->cli[1].close_calls, 1);
	close(probe);
	assert_int_equal(fx->cli[1].hs_status, -ECONNREFUSED);
	assert_int_equal(fx->cli[1].close_reason, -ECONNREFUSED);
	assert_non_null(strstr(fx->cli[1].close_why, "cannot connect: connection refused"));

	/* Bad arguments: an error and nothing else. */
	assert_int_equal(tls_conn_connect(&fx->loop, client, listener_addr(fx), NULL, &callbacks,
	    &fx->cli[2], &fx->cli[2].c), -EINVAL);
	assert_int_equal(tls_conn_connect(&fx->loop, fx->server_cfg, listener_addr(fx), "localhost",
	    &callbacks, &fx->cli[2], &fx->cli[2].c), -EINVAL);
	assert_null(fx->cli[2].c);
	tls_config_unref(client);
}

/* tls_conn_open: a socket connected elsewhere, handed over. */
static void
test_open_connected_socket(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	int fd;

	fx->server_cfg = cfg_make(&relay_ecdsa);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	/* The listener's backlog completes the connect before the loop accepts it. */
	assert_int_equal(connect(fd, listener_addr(fx), sizeof(fx->addr)), 0);
	fx->cli[0].tx_target = 50000;
	fx->cli[0].tx_seed = fx->srv[0].rx_seed = 21;
	assert_int_equal(tls_conn_open(&fx->loop, client, fd, "127.0.0.1", &callbacks, &fx->cli[0],
	    &fx->cli[0].c), 0);
	wait_open(fx, 0);
	wait_u64(fx, &fx->srv[0].rx_bytes, 50000);
	close_pair(fx, 0);
	tls_config_unref(client);
}

static void
test_reload_keeps_old_connection(void **state)
{
	struct fx *fx = *state;
	struct tls_config *client = cfg_make(&agent_ecdsa);
	struct ep *c0 = &fx->cli[0], *s0 = &fx->srv[0];

	fx->server_cfg = cfg_make(&relay_ecdsa);
	connect_client(fx, 0, client, "localhost");
	wait_open(fx, 0);
	assert_string_equal(c0->cipher, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");

	/* SIGHUP: a new config for new connections; the daemon drops the old one. */
	tls_config_unref(fx->server_cfg);
	fx->server_cfg = cfg_make(&relay_rsa);
	connect_client(fx, 1, client, "localhost");
	wait_open(fx, 1);
	assert_string_equal(fx->cli[1].cipher, "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256");

	/* The old connection still works both ways, on the old config. */
	c0->tx_target = s0->tx_target = 300 * KIB;
	c0->tx_seed = s0->rx_seed = 31;
	s0->tx_seed = c0->rx_seed = 32;
	pump(c0);
	pump(s0);
	wait_u64(fx, &s0->rx_bytes, 300 * KIB);
	wait_u64(fx, &c0->rx_bytes, 300 * KIB);
	assert_int_equal(s0->rx_bad + c0->rx_bad, 0);
	/* Its close frees the old config (ASan would report it otherwise). */
	close_pair(fx, 0);
	close_pair(fx, 1);
	/* The client config outlives nothing: dropping it last is fine too. */
	tls_config_unref(client);
}

/* ---------------------------------------------------------------- certificates */

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ecdsa_chain_data_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rsa_relay_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_cipher_is_chacha20, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ciphers_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cipher_names_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_ca_client_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_server_name_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_ip_checked_against_san, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_client_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_without_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_without_verify_client_needs_no_ca_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_garbage_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_check_not_warned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_cn_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_close_by_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_close_by_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_does_not_wait_for_a_stopped_peer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_before_handshake_and_refused_connect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_connected_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_keeps_old_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_idle_connection_keeps_no_handshake_send_buffer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_files_gives_the_common_name_of_a_good_pair,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_files_refuses_a_key_that_is_not_the_certificates,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_files_refuses_a_ca_file_without_a_certificate,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_files_refuses_what_tls_config_new_refuses,
		    setup, teardown),
	};

	/* make-certs.sh needs the openssl CLI; without it, skip (automake's 77). */
	if (!cert_fixture_available()) {
		fprintf(stderr, "test_tls: openssl not found; skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, cert_fixture_group_setup, cert_fixture_group_teardown);
}
