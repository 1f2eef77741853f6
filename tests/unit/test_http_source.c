/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent/http_source: a real loop, a real spool in a
 * temporary directory, and a client on plain blocking sockets in a thread
 * (the loop turns in the test's thread meanwhile). The client records what
 * it saw; only the test's thread asserts (cmocka's asserts jump).
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <zlib.h>

#include "agent/http_source.h"
#include "common/intake.h"
#include "agent/spool.h"
#include "common/log.h"
#include "tests/unit/cert_fixture.h"
#include "tests/unit/spool_fixture.h"

#define TS_2026 UINT64_C(1795341600000000000)   /* 2026-11-22T10:00:00Z */
#define MAX_BODY (64 * 1024)

struct fixture {
	char root[64];
	char dir[96];
	uv_loop_t loop;
	struct spool *s;
	struct spool_options so;
	struct http_source *hs;
	struct agent_source cfg;
	struct config_addr addr;
	char tokens[128];
	int port;
	int writable_calls;
	int stopped, closed;
};

/* ---------------------------------------------------------------- fixture */

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->root, "/tmp/test_http_source.XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	snprintf(fx->dir, sizeof(fx->dir), "%s/spool", fx->root);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	spool_options_default(&fx->so, fx->dir);
	fx->addr.scheme = CONFIG_SCHEME_NONE;
	fx->addr.host = "127.0.0.1";
	fx->addr.port = 0;
	fx->addr.text = "127.0.0.1:0";
	fx->cfg.name = "app";
	fx->cfg.type = SOURCE_HTTP;
	fx->cfg.listen.n = 1;
	fx->cfg.listen.items = &fx->addr;
	fx->cfg.max_connections = 16;
	fx->cfg.max_body_size = MAX_BODY;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	assert_int_equal(uv_loop_close(&fx->loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void
on_writable(void *ctx)
{
	struct fixture *fx = ctx;

	fx->writable_calls++;
	if (fx->hs != NULL)
		http_source_resume(fx->hs);
}

static void
on_stopped(void *ctx)
{
	((struct fixture *)ctx)->stopped = 1;
}

static void
on_closed(void *ctx)
{
	((struct fixture *)ctx)->closed = 1;
}

/* Opens the spool with fx->so and starts the source on an ephemeral port. */
static void
start(struct fixture *fx)
{
	struct sockaddr_storage a;

	assert_int_equal(spool_open(&fx->loop, &fx->so, on_writable, fx, &fx->s), 0);
	assert_int_equal(http_source_start(&fx->loop, &fx->cfg, "host-a", fx->s, &fx->hs), 0);
	assert_int_equal(http_source_address(fx->hs, 0, &a), 0);
	assert_int_equal(a.ss_family, AF_INET);
	fx->port = ntohs(((struct sockaddr_in *)&a)->sin_port);
	assert_true(fx->port > 0);
}

/* Stops the source, then closes the spool, as the agent does. */
static void
stop(struct fixture *fx)
{
	fx->stopped = fx->closed = 0;
	http_source_stop(fx->hs, on_stopped, fx);
	while (!fx->stopped)
		uv_run(&fx->loop, UV_RUN_ONCE);
	fx->hs = NULL;
	spool_close(fx->s, on_closed, fx);
	while (!fx->closed)
		uv_run(&fx->loop, UV_RUN_ONCE);
	fx->s = NULL;
}

static void
stats(struct fixture *fx, struct httpd_stats *st)
{
	http_source_get_stats(fx->hs, st);
}

/* ---------------------------------------------------------------- client */

struct resp {
	int status;
	char head[2048];
	char body[8192];
	size_t body_len;
};

struct client {
	int fd;
	char buf[1 << 16];
	size_t len;
	bool tls;                 /* cl_tls was set at connect: ssl is in use */
	mbedtls_ssl_context ssl;
};

/*
 * HTTPS tests set cl_tls: clients then speak TLS (the test CA trusted, no
 * client certificate) over their socket, one thread at a time.
 */
static bool cl_tls;
static mbedtls_ssl_config cl_conf;
static mbedtls_x509_crt cl_ca;
static mbedtls_entropy_context cl_entropy;
static mbedtls_ctr_drbg_context cl_drbg;

static int
cl_bio_send(void *ctx, const unsigned char *p, size_t n)
{
	ssize_t w = send(*(int *)ctx, p, n, MSG_NOSIGNAL);

	return w < 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : (int)w;
}

static int
cl_bio_recv(void *ctx, unsigned char *p, size_t n)
{
	ssize_t r = recv(*(int *)ctx, p, n, 0);

	return r < 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : (int)r;
}

/* The client side of TLS for HTTPS tests: the test CA, TLS 1.2. */
static void
cl_tls_init(void)
{
	char ca[300];

	snprintf(ca, sizeof(ca), "%s/ca.crt", cert_fixture_dir);
	mbedtls_ssl_config_init(&cl_conf);
	mbedtls_x509_crt_init(&cl_ca);
	mbedtls_entropy_init(&cl_entropy);
	mbedtls_ctr_drbg_init(&cl_drbg);
	assert_int_equal(mbedtls_x509_crt_parse_file(&cl_ca, ca), 0);
	assert_int_equal(mbedtls_ctr_drbg_seed(&cl_drbg, mbedtls_entropy_func, &cl_entropy,
	    NULL, 0), 0);
	assert_int_equal(mbedtls_ssl_config_defaults(&cl_conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_ca_chain(&cl_conf, &cl_ca, NULL);
	mbedtls_ssl_conf_rng(&cl_conf, mbedtls_ctr_drbg_random, &cl_drbg);
	mbedtls_ssl_conf_authmode(&cl_conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	cl_tls = true;
}

static void
cl_tls_free(void)
{
	cl_tls = false;
	mbedtls_ssl_config_free(&cl_conf);
	mbedtls_x509_crt_free(&cl_ca);
	mbedtls_ctr_drbg_free(&cl_drbg);
	mbedtls_entropy_free(&cl_entropy);
}

/* Closes c's socket (and its TLS). */
static void
cl_close(struct client *c)
{
	if (c->tls)
		mbedtls_ssl_free(&c->ssl);
	close(c->fd);
}

/* A job for the client thread: fn runs there, and records into the job. */
struct job {
	void (*fn)(struct job *j);
	int port;
	const char *req[4];
	size_t req_len[4];
	int nreq;
	bool check_closed;        /* then see whether the server closed */
	struct resp resp[4];
	int nresp;
	bool closed;
	int err;                  /* line of the first client-side failure */
	void *arg;
	atomic_int done;
};

static int
cl_connect(struct client *c, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 10 };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->len = 0;
	c->tls = false;
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	if (!cl_tls)
		return 0;
	c->tls = true;
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, &cl_conf) != 0 ||
	    mbedtls_ssl_set_hostname(&c->ssl, "localhost") != 0)
		return -1;
	mbedtls_ssl_set_bio(&c->ssl, &c->fd, cl_bio_send, cl_bio_recv, NULL);
	return mbedtls_ssl_handshake(&c->ssl) == 0 ? 0 : -1;
}

static int
cl_send(struct client *c, const void *p, size_t n)
{
	const char *q = p;

	while (n > 0) {
		ssize_t w = c->tls ? mbedtls_ssl_write(&c->ssl, (const unsigned char *)q, n) :
		    send(c->fd, q, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads more into c->buf: bytes read, 0 at EOF, -1 on an error or timeout. */
static ssize_t
cl_fill(struct client *c)
{
	ssize_t n;

	if (c->len == sizeof(c->buf))
		return -1;
	if (c->tls) {
		n = mbedtls_ssl_read(&c->ssl, (unsigned char *)c->buf + c->len,
		    sizeof(c->buf) - c->len);
		if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
			n = 0;
		else if (n < 0)
			n = -1;
	} else {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	}
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

/* One response (an interim 1xx too). Returns 0 or -1. */
static int
cl_response(struct client *c, struct resp *r)
{
	char *end, *cl;
	size_t hlen, blen = 0;

	memset(r, 0, sizeof(*r));
	for (;;) {
		if (c->len > 0 && (end = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL)
			break;
		if (cl_fill(c) <= 0)
			return -1;
	}
	hlen = (size_t)(end - c->buf) + 4;
	if (hlen >= sizeof(r->head))
		return -1;
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	if ((cl = strcasestr(r->head, "\r\nContent-Length:")) != NULL)
		blen = strtoul(cl + 17, NULL, 10);
	if (blen >= sizeof(r->body))
		return -1;
	while (c->len < hlen + blen)
		if (cl_fill(c) <= 0)
			return -1;
	memcpy(r->body, c->buf + hlen, blen);
	r->body[blen] = '\0';
	r->body_len = blen;
	memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
	c->len -= hlen + blen;
	return 0;
}

/* Whether the server closes the connection within a few seconds. */
static bool
cl_closed(struct client *c)
{
	char b[4096];
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	for (;;) {
		ssize_t n;

		if (poll(&p, 1, 3000) <= 0)
			return false;
		n = recv(c->fd, b, sizeof(b), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0)
			return false;
	}
}

#define JOB_FAIL(j) do { if ((j)->err == 0) (j)->err = __LINE__; } while (0)

/* The default job: one connection, the requests, their responses. */
static void
job_exchange(struct job *j)
{
	struct client c;

	if (cl_connect(&c, j->port) != 0) {
		JOB_FAIL(j);
		return;
	}
	for (int i = 0; i < j->nreq; i++) {
		if (cl_send(&c, j->req[i], j->req_len[i] ? j->req_len[i] : strlen(j->req[i])) != 0) {
			JOB_FAIL(j);
			break;
		}
		if (cl_response(&c, &j->resp[j->nresp]) != 0)
			break;
		j->nresp++;
	}
	if (j->check_closed)
		j->closed = cl_closed(&c);
	cl_close(&c);
}

static void *
job_thread(void *arg)
{
	struct job *j = arg;

	j->fn(j);
	atomic_store(&j->done, 1);
	return NULL;
}

/* Runs j in a thread while the loop turns here. */
static void
run(struct fixture *fx, struct job *j)
{
	pthread_t t;

	if (j->fn == NULL)
		j->fn = job_exchange;
	j->port = fx->port;
	atomic_store(&j->done, 0);
	assert_int_equal(pthread_create(&t, NULL, job_thread, j), 0);
	while (!atomic_load(&j->done)) {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(200);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	/* Let the server finish what the client's last bytes started. */
	for (int i = 0; i < 20; i++) {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(500);
	}
	assert_int_equal(j->err, 0);
}

/* A request with body; returns a malloc'ed buffer of *len bytes. */
static char *
post(const char *path, const char *ctype, const char *extra, const void *body, size_t blen,
    size_t *len)
{
	char head[1024];
	char *r;
	int n;

	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: test\r\n%s%s%s"
	    "Content-Length: %zu\r\n%s\r\n", path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
	    ctype ? "\r\n" : "", blen, extra ? extra : "");
	assert_true(n > 0 && (size_t)n < sizeof(head));
	r = malloc((size_t)n + blen + 1);
	assert_non_null(r);
	memcpy(r, head, (size_t)n);
	memcpy(r + n, body, blen);
	r[n + blen] = '\0';
	*len = (size_t)n + blen;
	return r;
}

static char *
post_json(const char *ctype, const char *body, size_t *len)
{
	return post("/v1/events", ctype, NULL, body, strlen(body), len);
}

/* gzip of p[0, n) (one member), malloc'ed. */
static uint8_t *
gzip(const void *p, size_t n, size_t *out_len)
{
	z_stream z = { 0 };
	size_t cap = n + n / 100 + 1024;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* ---------------------------------------------------------------- spool readback */

struct got_ev {
	char *message, *stream, *source, *host;
	uint64_t ts;
	char fields[1024];        /* "key=T:value;" each, T one of t i n b z j */
};

struct got {
	size_t n;
	struct got_ev ev[64];
	struct buf raw;
};

static char *
dup_slice(struct pbslice s)
{
	char *p = malloc(s.len + 1);

	assert_non_null(p);
	memcpy(p, s.ptr, s.len);
	p[s.len] = '\0';
	return p;
}

static int
got_segment(void *ctx, const struct spool_segment *seg)
{
	struct got *g = ctx;
	struct event_field fields[80];
	struct event_reader er;
	struct event ev;
	int rc;

	assert_int_equal(spool_segment_decompress(seg, &g->raw), 0);
	event_reader_init(&er, g->raw.data, g->raw.len, fields, 80);
	while ((rc = event_reader_next(&er, &ev)) == 1) {
		struct got_ev *e;
		size_t off = 0;

		if (g->n++ >= 64)
			continue;
		e = &g->ev[g->n - 1];
		e->message = dup_slice(ev.message);
		e->stream = dup_slice(ev.stream);
		e->source = dup_slice(ev.source);
		e->host = dup_slice(ev.host);
		e->ts = ev.ts;
		for (size_t i = 0; i < ev.nfields && off < sizeof(e->fields) - 128; i++) {
			const struct event_field *f = &ev.fields[i];
			int n = 0;

			switch (f->type) {
			case EVENT_TEXT:
				n = snprintf(e->fields + off, sizeof(e->fields) - off, "%.*s=t:%.*s;",
				    (int)f->key.len, f->key.ptr, (int)f->v.text.len, f->v.text.ptr);
				break;
			case EVENT_JSON:
				n = snprintf(e->fields + off, sizeof(e->fields) - off, "%.*s=j:%.*s;",
				    (int)f->key.len, f->key.ptr, (int)f->v.json.len, f->v.json.ptr);
				break;
			case EVENT_INTEGER:
				n = snprintf(e->fields + off, sizeof(e->fields) - off, "%.*s=i:%lld;",
				    (int)f->key.len, f->key.ptr, (long long)f->v.integer);
				break;
			case EVENT_NUMBER:
				n = snprintf(e->fields + off, sizeof(e->fields) - off, "%.*s=n:%g;",
				    (int)f->key.len, f->key.ptr, f->v.number);
				break;
			case EVENT_BOOLEAN:
				n = snprintf(e->fields + off, sizeof(e->fields) - off, "%.*s=b:%d;",
				    (int)f->key.len, f->key.ptr, f->v.boolean);
				break;
			default:
				n = snprintf(e->fields + off, sizeof(e->fields) - off, "%.*s=z;",
				    (int)f->key.len, f->key.ptr);
				break;
			}
			off += (size_t)n;
		}
	}
	assert_int_equal(rc, 0);
	return 0;
}

/* Every event in fx's spool (after stop). */
static void
read_back(struct fixture *fx, struct got *g)
{
	struct spool_view *v;
	const char *why;

	memset(g, 0, sizeof(*g));
	buf_init(&g->raw, 64 << 20);
	if (spool_view_open(fx->dir, &v) != 0) {
		buf_free(&g->raw);
		return;
	}
	assert_int_equal(spool_view_segments(v, 0, got_segment, g, &why), 0);
	spool_view_close(v);
	buf_free(&g->raw);
}

static void
got_free(struct got *g)
{
	for (size_t i = 0; i < g->n && i < 64; i++) {
		free(g->ev[i].message);
		free(g->ev[i].stream);
		free(g->ev[i].source);
		free(g->ev[i].host);
	}
}

/* One request on a new connection: its response. */
static void
one(struct fixture *fx, const char *req, size_t len, struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->req[0] = req;
	j->req_len[0] = len;
	j->nreq = 1;
	run(fx, j);
	assert_int_equal(j->nresp, 1);
}

/* ---------------------------------------------------------------- tests */

static void
test_one_object_is_answered_200_after_its_commit(void **state)
{
	static const char body[] = " {\"msg\":\"hello\",\"n\":3,\"ok\":true,\"tags\":[1,\"a\"],"
	    "\"stream\":\"app.audit\",\"ts\":\"2026-11-22T10:00:00Z\"}\r\n";
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	struct got g;
	struct job j;
	char src[64];
	size_t len;
	char *req;

	start(fx);
	req = post_json("application/json; charset=utf-8", body, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":1}");
	assert_non_null(strcasestr(j.resp[0].head, "Content-Type: application/json"));
	/* 200 only after the commit: the spool counts it committed already. */
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_committed, 1);
	stats(fx, &st);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.events, 1);
	assert_int_equal(st.connections, 1);
	stop(fx);
	free(req);

	read_back(fx, &g);
	assert_int_equal(g.n, 1);
	/* The object's text without the whitespace around it. */
	assert_string_equal(g.ev[0].message, "{\"msg\":\"hello\",\"n\":3,\"ok\":true,\"tags\":[1,\"a\"],"
	    "\"stream\":\"app.audit\",\"ts\":\"2026-11-22T10:00:00Z\"}");
	assert_string_equal(g.ev[0].stream, "app.audit");
	assert_int_equal(g.ev[0].ts, TS_2026);
	assert_string_equal(g.ev[0].host, "host-a");
	snprintf(src, sizeof(src), "http://127.0.0.1:%d", fx->port);
	assert_string_equal(g.ev[0].source, src);
	assert_string_equal(g.ev[0].fields, "msg=t:hello;n=i:3;ok=b:1;tags=j:[1,\"a\"];"
	    "stream=t:app.audit;ts=t:2026-11-22T10:00:00Z;");
	got_free(&g);
}

static void
test_ndjson_lines_become_events_in_order(void **state)
{
	static const char body[] = "{\"i\":1,\"ts\":1795341600}\n"
	    "\n"
	    "  {\"i\":2,\"x\":null}\r\n"
	    "{\"i\":3,\"f\":1.5}";
	struct fixture *fx = *state;
	struct got g;
	struct job j;
	size_t len;
	char *req;
	uint64_t before = (uint64_t)time(NULL) * 1000000000u;

	fx->cfg.stream = "app.events";
	start(fx);
	req = post_json("application/x-ndjson", body, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":3}");
	stop(fx);
	free(req);

	read_back(fx, &g);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.ev[0].message, "{\"i\":1,\"ts\":1795341600}");
	assert_string_equal(g.ev[1].message, "{\"i\":2,\"x\":null}");
	assert_string_equal(g.ev[2].message, "{\"i\":3,\"f\":1.5}");
	assert_int_equal(g.ev[0].ts, TS_2026);
	/* No ts member: the receive time. */
	assert_true(g.ev[1].ts >= before - 1000000000u);
	for (int i = 0; i < 3; i++)
		assert_string_equal(g.ev[i].stream, "app.events");
	assert_string_equal(g.ev[1].fields, "i=i:2;x=z;");
	assert_string_equal(g.ev[2].fields, "i=i:3;f=n:1.5;");
	got_free(&g);
}

static void
test_gzip_body_is_decoded(void **state)
{
	static const char body[] = "{\"k\":\"v1\"}\n{\"k\":\"v2\"}\n";
	struct fixture *fx = *state;
	struct got g;
	struct job j;
	uint8_t *gz, *two;
	size_t gzlen, len;
	char *req;

	start(fx);
	gz = gzip(body, strlen(body), &gzlen);
	req = post("/v1/events", "application/x-ndjson", "Content-Encoding: gzip\r\n", gz, gzlen,
	    &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":2}");
	free(req);

	/* Two gzip members, one after the other (RFC 1952 2.2). */
	two = malloc(2 * gzlen);
	assert_non_null(two);
	memcpy(two, gz, gzlen);
	memcpy(two + gzlen, gz, gzlen);
	req = post("/v1/events", "application/x-ndjson", "Content-Encoding: GZIP\r\n", two,
	    2 * gzlen, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":4}");
	free(req);
	free(two);
	stop(fx);
	free(gz);

	read_back(fx, &g);
	assert_int_equal(g.n, 6);
	assert_string_equal(g.ev[0].message, "{\"k\":\"v1\"}");
	assert_string_equal(g.ev[5].message, "{\"k\":\"v2\"}");
	got_free(&g);
}

static void
test_broken_gzip_is_400_and_the_connection_goes_on(void **state)
{
	static const char body[] = "{\"k\":\"v1\"}\n";
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };
	uint8_t *gz;
	size_t gzlen, len[3];
	char *req[3];

	start(fx);
	gz = gzip(body, strlen(body), &gzlen);
	/* Not gzip at all; then cut short; then a good one on the same connection. */
	req[0] = post("/v1/events", "application/x-ndjson", "Content-Encoding: gzip\r\n",
	    body, strlen(body), &len[0]);
	req[1] = post("/v1/events", "application/x-ndjson", "Content-Encoding: gzip\r\n",
	    gz, gzlen - 4, &len[1]);
	req[2] = post("/v1/events", "application/x-ndjson", "Content-Encoding: gzip\r\n",
	    gz, gzlen, &len[2]);
	for (int i = 0; i < 3; i++) {
		j.req[i] = req[i];
		j.req_len[i] = len[i];
	}
	j.nreq = 3;
	run(fx, &j);
	assert_int_equal(j.nresp, 3);
	assert_int_equal(j.resp[0].status, 400);
	assert_non_null(strstr(j.resp[0].body, "gzip: "));
	assert_int_equal(j.resp[1].status, 400);
	assert_non_null(strstr(j.resp[1].body, "gzip: the body ends before"));
	assert_int_equal(j.resp[2].status, 200);
	stats(fx, &st);
	assert_int_equal(st.bad_requests, 2);
	assert_int_equal(st.connections, 1);
	stop(fx);
	for (int i = 0; i < 3; i++)
		free(req[i]);
	free(gz);
}

static void
test_malformed_line_is_400_naming_it_and_nothing_is_spooled(void **state)
{
	static const char body[] = "{\"i\":1}\n{\"i\":2,}\n{\"i\":3}\n";
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	struct got g;
	struct job j;
	size_t len;
	char *req;

	start(fx);
	req = post_json("application/x-ndjson", body, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 400);
	assert_true(strncmp(j.resp[0].body, "{\"error\":\"line 2: json: invalid JSON at column ",
	    46) == 0);
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_appended, 0);
	stats(fx, &st);
	assert_int_equal(st.bad_requests, 1);
	free(req);

	/* Not an object; an empty application/json body. */
	req = post_json("application/x-ndjson", "{\"a\":1}\n[1,2]\n", &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 400);
	assert_string_equal(j.resp[0].body, "{\"error\":\"line 2: json: not a JSON object\"}");
	free(req);
	req = post_json("application/json", " \n", &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 400);
	assert_non_null(strstr(j.resp[0].body, "the body is empty"));
	free(req);
	stop(fx);

	read_back(fx, &g);
	assert_int_equal(g.n, 0);
	got_free(&g);
}

static void
test_stream_member_must_be_a_nonempty_string(void **state)
{
	struct fixture *fx = *state;
	struct job j;
	size_t len;
	char *req;

	start(fx);
	req = post_json("application/x-ndjson", "{\"a\":1}\n{\"stream\":5}\n", &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 400);
	assert_non_null(strstr(j.resp[0].body, "line 2: member \\\"stream\\\" must be a string"));
	free(req);
	req = post_json("application/json", "{\"stream\":\"\"}", &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 400);
	free(req);
	stop(fx);
}

static void
test_body_over_max_by_content_length_is_413_and_closes(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };
	char req[256];

	start(fx);
	/* The body is never sent: the length alone decides. */
	snprintf(req, sizeof(req), "POST /v1/events HTTP/1.1\r\nHost: t\r\n"
	    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{", MAX_BODY + 1);
	j.req[0] = req;
	j.nreq = 1;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.nresp, 1);
	assert_int_equal(j.resp[0].status, 413);
	assert_non_null(strcasestr(j.resp[0].head, "Connection: close"));
	assert_non_null(strstr(j.resp[0].body, "max_body_size"));
	assert_true(j.closed);
	stats(fx, &st);
	assert_int_equal(st.too_large, 1);
	stop(fx);
}

static void
test_chunked_body_over_max_is_413(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats ss;
	struct job j = { 0 };
	char *req, *p;
	size_t chunk = 4096, n = MAX_BODY / chunk + 2;

	start(fx);
	req = malloc(256 + n * (chunk + 16));
	assert_non_null(req);
	p = req + sprintf(req, "POST /v1/events HTTP/1.1\r\nHost: t\r\n"
	    "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (size_t i = 0; i < n; i++) {
		p += sprintf(p, "%zx\r\n", chunk);
		memset(p, ' ', chunk);
		memcpy(p, "{\"a\":1}", 7);
		p[chunk - 1] = '\n';
		p += chunk;
		p += sprintf(p, "\r\n");
	}
	p += sprintf(p, "0\r\n\r\n");
	j.req[0] = req;
	j.req_len[0] = (size_t)(p - req);
	j.nreq = 1;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.nresp, 1);
	assert_int_equal(j.resp[0].status, 413);
	assert_true(j.closed);
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_appended, 0);
	stop(fx);
	free(req);
}

static void
test_gzip_body_inflating_over_max_is_413(void **state)
{
	struct fixture *fx = *state;
	struct job j = { 0 };
	uint8_t *zeros, *gz;
	size_t gzlen, len;
	char *req;

	start(fx);
	/* 4 MiB of spaces (valid around an object) in a few KiB of gzip: a small bomb. */
	zeros = malloc(4 << 20);
	assert_non_null(zeros);
	memset(zeros, ' ', 4 << 20);
	memcpy(zeros, "{\"a\":1}", 7);
	gz = gzip(zeros, 4 << 20, &gzlen);
	assert_true(gzlen < MAX_BODY);
	req = post("/v1/events", "application/json", "Content-Encoding: gzip\r\n", gz, gzlen, &len);
	j.req[0] = req;
	j.req_len[0] = len;
	j.nreq = 1;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.nresp, 1);
	assert_int_equal(j.resp[0].status, 413);
	assert_non_null(strstr(j.resp[0].body, "once decoded"));
	assert_true(j.closed);
	stop(fx);
	free(req);
	free(gz);
	free(zeros);
}

static void
test_wrong_path_method_and_type_are_404_405_415(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };
	size_t len[4];
	char *req[4];

	start(fx);
	req[0] = post("/v2/events", "application/json", NULL, "{}", 2, &len[0]);
	req[1] = strdup("GET /v1/events HTTP/1.1\r\nHost: t\r\n\r\n");
	len[1] = strlen(req[1]);
	req[2] = post("/v1/events", "text/plain", NULL, "{}", 2, &len[2]);
	req[3] = post("/v1/events", "application/json", "Content-Encoding: br\r\n", "{}", 2, &len[3]);
	for (int i = 0; i < 4; i++) {
		j.req[i] = req[i];
		j.req_len[i] = len[i];
	}
	j.nreq = 4;
	j.check_closed = true;
	run(fx, &j);
	/* A refused body closes the connection: only the first answer is seen. */
	assert_int_equal(j.nresp, 1);
	assert_int_equal(j.resp[0].status, 404);
	assert_true(j.closed);

	/* One connection each. */
	for (int i = 1; i < 4; i++) {
		memset(&j, 0, sizeof(j));
		j.req[0] = req[i];
		j.req_len[0] = len[i];
		j.nreq = 1;
		run(fx, &j);
		assert_int_equal(j.nresp, 1);
		if (i == 1) {
			assert_int_equal(j.resp[0].status, 405);
			assert_non_null(strcasestr(j.resp[0].head, "\r\nAllow: POST\r\n"));
			assert_null(strcasestr(j.resp[0].head, "Connection: close"));
		} else {
			assert_int_equal(j.resp[0].status, 415);
			assert_non_null(strstr(j.resp[0].body, i == 2 ? "Content-Type 'text/plain'" :
			    "Content-Encoding 'br'"));
		}
	}
	stats(fx, &st);
	assert_int_equal(st.not_found, 1);
	assert_int_equal(st.bad_method, 1);
	assert_int_equal(st.bad_type, 2);
	stop(fx);
	for (int i = 0; i < 4; i++)
		free(req[i]);
}

static void
test_keep_alive_serves_requests_on_one_connection(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };
	size_t len[3];
	char *req[3];

	start(fx);
	req[0] = post_json("application/json", "{\"n\":1}", &len[0]);
	/* A body-less 405 keeps the connection too. */
	req[1] = strdup("GET /v1/events HTTP/1.1\r\nHost: t\r\n\r\n");
	len[1] = strlen(req[1]);
	req[2] = post_json("application/json", "{\"n\":2}", &len[2]);
	for (int i = 0; i < 3; i++) {
		j.req[i] = req[i];
		j.req_len[i] = len[i];
	}
	j.nreq = 3;
	run(fx, &j);
	assert_int_equal(j.nresp, 3);
	assert_int_equal(j.resp[0].status, 200);
	assert_int_equal(j.resp[1].status, 405);
	assert_int_equal(j.resp[2].status, 200);
	stats(fx, &st);
	assert_int_equal(st.connections, 1);
	assert_int_equal(st.events, 2);
	stop(fx);
	for (int i = 0; i < 3; i++)
		free(req[i]);
}

/* Three pipelined requests in one write, three answers read. */
static void
job_pipeline3(struct job *j)
{
	struct client c;

	if (cl_connect(&c, j->port) != 0 || cl_send(&c, j->req[0], j->req_len[0]) != 0) {
		JOB_FAIL(j);
		return;
	}
	for (j->nresp = 0; j->nresp < 3; j->nresp++)
		if (cl_response(&c, &j->resp[j->nresp]) != 0)
			break;
	cl_close(&c);
}

/*
 * Three requests in one write (200, 200, a malformed one: 400); asserts
 * their answers came in order. Returns the write (req, len: each request).
 */
static char *
pipeline3(struct fixture *fx, char **req, size_t *len, struct job *j)
{
	size_t total = 0;
	char *all;

	req[0] = post_json("application/json", "{\"n\":1}", &len[0]);
	req[1] = post_json("application/x-ndjson", "{\"n\":2}\n{\"n\":3}\n", &len[1]);
	req[2] = post_json("application/json", "{\"n\":4", &len[2]);
	assert_non_null(all = malloc(len[0] + len[1] + len[2]));
	for (int i = 0; i < 3; i++) {
		memcpy(all + total, req[i], len[i]);
		total += len[i];
	}
	j->fn = job_pipeline3;
	j->req[0] = all;
	j->req_len[0] = total;
	run(fx, j);
	assert_int_equal(j->nresp, 3);
	assert_string_equal(j->resp[0].body, "{\"accepted\":1}");
	assert_string_equal(j->resp[1].body, "{\"accepted\":2}");
	assert_int_equal(j->resp[2].status, 400);
	return all;
}

static void
test_pipelined_answers_keep_request_order(void **state)
{
	struct fixture *fx = *state;
	struct got g;
	struct job j = { 0 };
	char *all, *req[3];
	size_t len[3];

	start(fx);
	all = pipeline3(fx, req, len, &j);
	stop(fx);
	read_back(fx, &g);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.ev[0].message, "{\"n\":1}");
	assert_string_equal(g.ev[2].message, "{\"n\":3}");
	got_free(&g);
	for (int i = 0; i < 3; i++)
		free(req[i]);
	free(all);
}

static void
test_connection_close_and_http10_close(void **state)
{
	struct fixture *fx = *state;
	struct job j;
	size_t len;
	char *req;

	start(fx);
	req = post("/v1/events", "application/json", "Connection: close\r\n", "{}", 2, &len);
	memset(&j, 0, sizeof(j));
	j.req[0] = req;
	j.req_len[0] = len;
	j.nreq = 1;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_non_null(strcasestr(j.resp[0].head, "Connection: close"));
	assert_true(j.closed);
	free(req);

	/* HTTP/1.0 closes unless it asks for keep-alive. */
	req = strdup("POST /v1/events HTTP/1.0\r\nContent-Type: application/json\r\n"
	    "Content-Length: 2\r\n\r\n{}");
	memset(&j, 0, sizeof(j));
	j.req[0] = req;
	j.nreq = 1;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_true(j.closed);
	free(req);

	req = strdup("POST /v1/events HTTP/1.0\r\nContent-Type: application/json\r\n"
	    "Connection: keep-alive\r\nContent-Length: 2\r\n\r\n{}");
	memset(&j, 0, sizeof(j));
	j.req[0] = j.req[1] = req;
	j.nreq = 2;
	run(fx, &j);
	assert_int_equal(j.nresp, 2);
	assert_int_equal(j.resp[0].status, 200);
	assert_non_null(strcasestr(j.resp[0].head, "Connection: keep-alive"));
	assert_int_equal(j.resp[1].status, 200);
	free(req);
	stop(fx);
}

/*
 * A holds its body back after the 100 Continue (its request has taken its
 * share of the budget by then); B's request is refused; A completes; C fits.
 */
/*
 * A asks to send a body (Expect: 100-continue) and is told to: it holds the
 * budget. B's request does not fit beside it and waits, unanswered, while
 * A sends its body; then B's goes on. With hold set, A never sends its
 * body and B's wait ends at request_timeout.
 */
static void
job_budget(struct job *j)
{
	struct client a, b;
	bool hold = j->arg != NULL;

	if (cl_connect(&a, j->port) != 0 || cl_send(&a, j->req[0], strlen(j->req[0])) != 0 ||
	    cl_response(&a, &j->resp[0]) != 0) {
		JOB_FAIL(j);
		return;
	}
	if (cl_connect(&b, j->port) != 0 || cl_send(&b, j->req[1], strlen(j->req[1])) != 0) {
		JOB_FAIL(j);
		return;
	}
	if (hold) {
		/* B waits request_timeout for A's share, then hears 503 and is closed. */
		if (cl_response(&b, &j->resp[1]) != 0)
			JOB_FAIL(j);
		j->closed = cl_closed(&b);
		if (cl_send(&a, j->req[2], strlen(j->req[2])) != 0 ||
		    cl_response(&a, &j->resp[2]) != 0)
			JOB_FAIL(j);
	} else {
		/* B is not answered before A's body comes: A's answer comes first. */
		if (cl_send(&a, j->req[2], strlen(j->req[2])) != 0 ||
		    cl_response(&a, &j->resp[2]) != 0 || cl_response(&b, &j->resp[1]) != 0)
			JOB_FAIL(j);
	}
	close(b.fd);
	if (cl_send(&a, j->req[1], strlen(j->req[1])) != 0 || cl_response(&a, &j->resp[3]) != 0)
		JOB_FAIL(j);
	close(a.fd);
	j->nresp = 4;
}

/* A's head, B's whole request, A's body: each n bytes of body; the budget fits one. */
struct budget_reqs {
	char body[1024], head[256], full[1400];
	int n;
};

static void
budget_reqs(struct budget_reqs *r)
{
	r->n = snprintf(r->body, sizeof(r->body), "{\"msg\":\"%0900d\"}", 7);
	snprintf(r->head, sizeof(r->head), "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
	    "application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", r->n);
	snprintf(r->full, sizeof(r->full), "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
	    "application/json\r\nContent-Length: %d\r\n\r\n%s", r->n, r->body);
}

/* j's one answer is 503 with Retry-After, its error saying why, and the connection closed. */
static void
assert_503_and_closed(const struct job *j, const char *why)
{
	assert_int_equal(j->nresp, 1);
	assert_int_equal(j->resp[0].status, 503);
	assert_non_null(strcasestr(j->resp[0].head, "\r\nRetry-After: 1\r\n"));
	assert_non_null(strstr(j->resp[0].body, why));
	assert_true(j->closed);
}

/* Starts fx with a budget for one of q's requests and runs job_budget (hold: A keeps it). */
static void
run_budget(struct fixture *fx, struct budget_reqs *q, struct budget **b, bool hold,
    struct job *j)
{
	budget_reqs(q);
	/* Room for one such request (twice its body and the overhead), not two. */
	assert_int_equal(budget_new(HTTP_SOURCE_BODY_OVERHEAD + 2 * (uint64_t)q->n + 100, b), 0);
	start(fx);
	http_source_set_budget(fx->hs, *b);
	memset(j, 0, sizeof(*j));
	j->fn = job_budget;
	j->arg = hold ? j : NULL;
	j->req[0] = q->head;
	j->req[1] = q->full;
	j->req[2] = q->body;
	run(fx, j);
	assert_int_equal(j->resp[0].status, 100);
	assert_int_equal(j->resp[2].status, 200);
}

static void
test_request_waits_for_memory_limits_share_then_is_200(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct budget_stats bs;
	struct budget_reqs q;
	struct budget *b;
	struct job j;

	run_budget(fx, &q, &b, false, &j);
	/* B waited for A's share instead of a 503, and was served. */
	assert_int_equal(j.resp[1].status, 200);
	assert_string_equal(j.resp[1].body, "{\"accepted\":1}");
	assert_int_equal(j.resp[3].status, 200);
	stats(fx, &st);
	assert_int_equal(st.budget_refused, 0);
	assert_int_equal(st.unavailable_503, 0);
	assert_int_equal(st.budget_waits, 1);
	assert_int_equal(st.events, 3);
	budget_get_stats(b, &bs);
	assert_int_equal(bs.used, 0);
	assert_int_equal(bs.peak, HTTP_SOURCE_BODY_OVERHEAD + 2 * (uint64_t)q.n);
	stop(fx);
	budget_free(b);
}

static void
test_request_waiting_past_request_timeout_is_503_with_retry_after(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct budget_stats bs;
	struct budget_reqs q;
	struct budget *b;
	struct job j;

	fx->cfg.request_timeout_ms = 300;
	run_budget(fx, &q, &b, true, &j);
	assert_int_equal(j.resp[1].status, 503);
	assert_non_null(strcasestr(j.resp[1].head, "\r\nRetry-After: 1\r\n"));
	assert_non_null(strstr(j.resp[1].body, "memory_limit"));
	assert_non_null(strstr(j.resp[1].body, "request_timeout (300 ms)"));
	assert_true(j.closed);
	/* Once A's request is answered its share is back: the same request fits. */
	assert_int_equal(j.resp[3].status, 200);
	stats(fx, &st);
	assert_int_equal(st.budget_refused, 1);
	assert_int_equal(st.request_timeouts, 1);
	assert_int_equal(st.unavailable_503, 1);
	assert_int_equal(st.events, 2);
	budget_get_stats(b, &bs);
	assert_int_equal(bs.used, 0);
	assert_int_equal(bs.waiting, 0);
	stop(fx);
	budget_free(b);
}

static void
test_request_larger_than_memory_limits_share_is_503_at_once(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct budget_reqs q;
	struct budget *b;
	struct job j;

	budget_reqs(&q);
	/* Not even one such request fits: waiting would never end. */
	assert_int_equal(budget_new(HTTP_SOURCE_BODY_OVERHEAD + (uint64_t)q.n, &b), 0);
	start(fx);
	http_source_set_budget(fx->hs, b);
	memset(&j, 0, sizeof(j));
	j.check_closed = true;
	j.req[0] = q.full;
	j.nreq = 1;
	run(fx, &j);
	assert_503_and_closed(&j, "raise memory_limit");
	stats(fx, &st);
	assert_int_equal(st.budget_refused, 1);
	assert_int_equal(st.budget_waits, 0);
	stop(fx);
	budget_free(b);
}

static void
test_full_spool_is_503_with_retry_after_then_200(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	uint64_t range[2] = { 0, 0 }, appended;
	unsigned seed = 7;
	struct job j;
	size_t len;
	char *req;

	fx->so.max_size = 4 << 20;
	fx->so.block_bytes = 64 << 10;
	fx->so.segment_max_bytes = 128 << 10;
	fx->so.queue_blocks = 2;
	start(fx);
	/* Incompressible events until the spool stays full. */
	spool_fixture_fill(fx->s, &fx->loop, &seed);
	spool_get_stats(fx->s, &ss);
	assert_true(ss.full);
	appended = ss.events_appended;

	req = post_json("application/x-ndjson", "{\"a\":1}\n{\"a\":2}\n", &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 503);
	assert_non_null(strcasestr(j.resp[0].head, "\r\nRetry-After: 1\r\n"));
	assert_non_null(strstr(j.resp[0].body, "the spool is full"));
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_appended, appended);
	stats(fx, &st);
	assert_int_equal(st.unavailable_503, 1);

	/* What the shipper does on Acks: room again, and the retry goes in. */
	spool_fixture_committed_range(fx->dir, range);
	fx->writable_calls = 0;
	assert_int_equal(spool_delete(fx->s, range[0], range[1]), 0);
	while (fx->writable_calls == 0)
		uv_run(&fx->loop, UV_RUN_ONCE);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":2}");
	free(req);
	stop(fx);
}

/*
 * max_connections 2, both in the middle of a request (told 100 Continue,
 * body not sent yet): a third is refused, and the first is still served.
 */
static void
job_max_connections(struct job *j)
{
	struct client a, b, c;
	int i = 0;

	if (cl_connect(&a, j->port) != 0 || cl_connect(&b, j->port) != 0) {
		JOB_FAIL(j);
		return;
	}
	/* The 100 on each proves the server took them before the third comes. */
	if (cl_send(&a, j->req[0], strlen(j->req[0])) != 0 || cl_response(&a, &j->resp[i++]) != 0 ||
	    cl_send(&b, j->req[0], strlen(j->req[0])) != 0 || cl_response(&b, &j->resp[i++]) != 0) {
		JOB_FAIL(j);
		return;
	}
	if (cl_connect(&c, j->port) != 0) {
		JOB_FAIL(j);
		return;
	}
	/* Refused: a 503 if it arrived before the close, then the end. */
	if (cl_response(&c, &j->resp[i]) == 0)
		i++;
	j->closed = cl_closed(&c);
	close(c.fd);
	if (cl_send(&a, j->req[1], strlen(j->req[1])) != 0 || cl_response(&a, &j->resp[i++]) != 0)
		JOB_FAIL(j);
	j->nresp = i;
	close(a.fd);
	close(b.fd);
}

static void
test_max_connections_refuses_the_extra_one_when_none_is_idle(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };

	fx->cfg.max_connections = 2;
	start(fx);
	j.fn = job_max_connections;
	j.req[0] = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	    "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n";
	j.req[1] = "{}";
	run(fx, &j);
	assert_true(j.closed);
	assert_int_equal(j.resp[0].status, 100);
	assert_int_equal(j.resp[1].status, 100);
	assert_int_equal(j.resp[j.nresp - 1].status, 200);
	if (j.nresp == 4)
		assert_int_equal(j.resp[2].status, 503);
	stats(fx, &st);
	assert_int_equal(st.connections_refused, 1);
	assert_int_equal(st.idle_closed, 0);
	assert_int_equal(st.connections, 2);
	stop(fx);
}

/*
 * max_connections 2, both idle keep-alive connections: A answered first,
 * then B. A third connection is admitted by closing A (idle the longest);
 * B and the new one are served.
 */
static void
job_idle_eviction(struct job *j)
{
	struct client a, b, c;

	if (cl_connect(&a, j->port) != 0 || cl_connect(&b, j->port) != 0 ||
	    cl_send(&a, j->req[0], j->req_len[0]) != 0 || cl_response(&a, &j->resp[0]) != 0 ||
	    cl_send(&b, j->req[0], j->req_len[0]) != 0 || cl_response(&b, &j->resp[1]) != 0 ||
	    cl_connect(&c, j->port) != 0 ||
	    cl_send(&c, j->req[0], j->req_len[0]) != 0 || cl_response(&c, &j->resp[2]) != 0) {
		JOB_FAIL(j);
		return;
	}
	j->closed = cl_closed(&a);
	if (cl_send(&b, j->req[0], j->req_len[0]) != 0 || cl_response(&b, &j->resp[3]) != 0)
		JOB_FAIL(j);
	j->nresp = 4;
	close(a.fd);
	close(b.fd);
	close(c.fd);
}

static void
test_oldest_idle_connection_is_closed_to_admit_a_new_one(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };
	size_t len;
	char *req;

	fx->cfg.max_connections = 2;
	start(fx);
	req = post_json("application/json", "{}", &len);
	j.fn = job_idle_eviction;
	j.req[0] = req;
	j.req_len[0] = len;
	run(fx, &j);
	for (int i = 0; i < 4; i++)
		assert_int_equal(j.resp[i].status, 200);
	assert_true(j.closed);
	stats(fx, &st);
	assert_int_equal(st.connections_refused, 0);
	assert_int_equal(st.idle_closed, 1);
	assert_int_equal(st.connections, 3);
	assert_int_equal(st.events, 4);
	stop(fx);
	free(req);
}

/*
 * Several requests at once on a hand-off queue of two one-event blocks:
 * the writer is busy with earlier blocks most of the time, which is no
 * full spool. Every request waits its turn and is answered 200.
 */
#define BUSY_CLIENTS 6
#define BUSY_EVENTS 20

static void
job_concurrent(struct job *j)
{
	struct client c[BUSY_CLIENTS];
	int n = 0;

	for (int i = 0; i < BUSY_CLIENTS; i++)
		if (cl_connect(&c[i], j->port) != 0 || cl_send(&c[i], j->req[0], j->req_len[0]) != 0)
			JOB_FAIL(j);
	for (int i = 0; i < BUSY_CLIENTS && j->err == 0; i++) {
		struct resp r;

		if (cl_response(&c[i], &r) != 0) {
			JOB_FAIL(j);
			break;
		}
		if (r.status != 200 && n == 0)
			j->resp[n++] = r;
	}
	for (int i = 0; i < BUSY_CLIENTS; i++)
		close(c[i].fd);
	j->nresp = n;
}

static void
test_concurrent_requests_on_a_busy_spool_queue_all_get_200(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	struct job j = { 0 };
	char body[BUSY_EVENTS * 16];
	size_t len, blen = 0;
	char *req;

	fx->so.queue_blocks = 2;
	fx->so.block_bytes = 4096;
	fx->so.segment_max_events = 1;
	start(fx);
	for (int i = 0; i < BUSY_EVENTS; i++)
		blen += (size_t)sprintf(body + blen, "{\"i\":%d}\n", i);
	req = post("/v1/events", "application/x-ndjson", NULL, body, blen, &len);
	j.fn = job_concurrent;
	j.req[0] = req;
	j.req_len[0] = len;
	run(fx, &j);
	/* No answer but 200: the first other one, if any, with its reason. */
	if (j.nresp != 0)
		fail_msg("answered %d: %s", j.resp[0].status, j.resp[0].body);
	stats(fx, &st);
	assert_int_equal(st.accepted, BUSY_CLIENTS);
	assert_int_equal(st.events, BUSY_CLIENTS * BUSY_EVENTS);
	assert_int_equal(st.unavailable_503, 0);
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_committed, BUSY_CLIENTS * BUSY_EVENTS);
	stop(fx);
	free(req);
}

static void
job_idle(struct job *j)
{
	struct client c;

	if (cl_connect(&c, j->port) != 0) {
		JOB_FAIL(j);
		return;
	}
	j->closed = cl_closed(&c);
	close(c.fd);
}

static void
test_idle_connection_is_closed_after_the_timeout(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j = { 0 };

	fx->cfg.idle_timeout_ms = 200;
	start(fx);
	j.fn = job_idle;
	run(fx, &j);
	assert_true(j.closed);
	stats(fx, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.connections_open, 0);
	stop(fx);
}

static void
test_headers_over_the_limit_are_431(void **state)
{
	struct fixture *fx = *state;
	struct job j = { 0 };
	char *req, *p;

	start(fx);
	req = malloc(2 * HTTP_SOURCE_HEADER_MAX + 1024);
	assert_non_null(req);
	p = req + sprintf(req, "POST /v1/events HTTP/1.1\r\nHost: t\r\n");
	for (int i = 0; i < HTTP_SOURCE_HEADER_MAX / 80 + 1; i++) {
		p += sprintf(p, "X-Filler-%d: ", i);
		memset(p, 'x', 80);
		p += 80;
		p += sprintf(p, "\r\n");
	}
	sprintf(p, "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
	j.req[0] = req;
	j.nreq = 1;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.nresp, 1);
	assert_int_equal(j.resp[0].status, 431);
	assert_true(j.closed);
	stop(fx);
	free(req);
}

/* Headers with Expect: 100-continue, the interim answer, then the body. */
static void
job_expect(struct job *j)
{
	struct client c;

	if (cl_connect(&c, j->port) != 0 || cl_send(&c, j->req[0], j->req_len[0]) != 0 ||
	    cl_response(&c, &j->resp[0]) != 0 || cl_send(&c, j->req[1], j->req_len[1]) != 0 ||
	    cl_response(&c, &j->resp[1]) != 0) {
		JOB_FAIL(j);
		close(c.fd);
		return;
	}
	j->nresp = 2;
	close(c.fd);
}

static void
test_expect_100_continue(void **state)
{
	static const char head[] = "POST /v1/events HTTP/1.1\r\nHost: t\r\n"
	    "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n";
	struct fixture *fx = *state;
	struct job j = { 0 };

	start(fx);
	j.fn = job_expect;
	j.req[0] = head;
	j.req_len[0] = strlen(head);
	j.req[1] = "{\"a\":1}";
	j.req_len[1] = 7;
	run(fx, &j);
	assert_int_equal(j.resp[0].status, 100);
	assert_int_equal(j.resp[1].status, 200);
	stop(fx);
}

static void
test_request_larger_than_the_spool_queue_goes_in_pieces(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	struct spool_view *v;
	struct job j;
	size_t n = 30000, len, blen = 0;
	char *body, *req;
	uint64_t next;

	fx->cfg.max_body_size = 8 << 20;
	start(fx);
	body = malloc(n * 128);
	assert_non_null(body);
	for (size_t i = 0; i < n; i++)
		blen += (size_t)sprintf(body + blen, "{\"i\":%zu,\"pad\":\"%060zu\",\"t\":\"x\"}\n", i, i);
	/* ~2.5 MiB of JSON, ~10 MiB estimated encoded: more than 8 blocks of 256 KiB. */
	req = post("/v1/events", "application/x-ndjson", NULL, body, blen, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_non_null(strstr(j.resp[0].body, "\"accepted\":30000"));
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_committed, n);
	stats(fx, &st);
	assert_int_equal(st.events, n);
	stop(fx);
	assert_int_equal(spool_view_open(fx->dir, &v), 0);
	next = spool_view_next_seq(v);
	spool_view_close(v);
	assert_int_equal(next, n + 1);
	free(req);
	free(body);
}

static void
test_event_too_large_for_the_spool_loses_its_fields_or_is_dropped(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct got g;
	struct job j;
	size_t len, blen;
	char *body, *req;

	fx->so.event_max_bytes = 65536;
	fx->cfg.max_body_size = 1 << 20;
	start(fx);
	/* 40 KB of text: 80 KB with its field, 40 KB without. Then one of 70 KB. */
	body = malloc(200000);
	assert_non_null(body);
	blen = (size_t)sprintf(body, "{\"s\":\"");
	memset(body + blen, 'a', 40000);
	blen += 40000;
	blen += (size_t)sprintf(body + blen, "\"}\n{\"small\":1}\n{\"s\":\"");
	memset(body + blen, 'b', 70000);
	blen += 70000;
	blen += (size_t)sprintf(body + blen, "\"}\n");
	req = post("/v1/events", "application/x-ndjson", NULL, body, blen, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":2,\"dropped\":1}");
	stats(fx, &st);
	assert_int_equal(st.fields_dropped, 1);
	assert_int_equal(st.dropped_unspoolable, 1);
	stop(fx);
	read_back(fx, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(strlen(g.ev[0].message), 40008);
	assert_string_equal(g.ev[0].fields,
	    "parse_error=t:event too large for the spool with its fields; fields dropped;");
	assert_string_equal(g.ev[1].fields, "small=i:1;");
	got_free(&g);
	free(req);
	free(body);
}

static void
test_a_tiny_spool_queue_still_takes_every_request(void **state)
{
	struct fixture *fx = *state;
	struct got g;
	struct job j;
	size_t len, blen = 0;
	char *body, *req;

	/* One event per block, two blocks: spool_room never grants 100 events at once. */
	fx->so.queue_blocks = 2;
	fx->so.block_bytes = 4096;
	fx->so.segment_max_events = 1;
	start(fx);
	body = malloc(100 * 32);
	assert_non_null(body);
	for (int i = 0; i < 100; i++)
		blen += (size_t)sprintf(body + blen, "{\"i\":%d}\n", i);
	req = post("/v1/events", "application/x-ndjson", NULL, body, blen, &len);
	for (int round = 0; round < 2; round++) {
		one(fx, req, len, &j);
		assert_int_equal(j.resp[0].status, 200);
		assert_string_equal(j.resp[0].body, "{\"accepted\":100}");
	}
	stop(fx);
	read_back(fx, &g);
	assert_int_equal(g.n, 200);
	assert_string_equal(g.ev[63].message, "{\"i\":63}");
	got_free(&g);
	free(req);
	free(body);
}

static void
test_object_with_too_many_values_is_400(void **state)
{
	struct fixture *fx = *state;
	struct job j;
	size_t len, blen;
	char *body, *req;

	fx->cfg.max_body_size = 1 << 20;
	start(fx);
	/* jansson would build ~5 MB of tree for these 200 KB. */
	body = malloc(2 * INTAKE_MAX_VALUES + 64);
	assert_non_null(body);
	blen = (size_t)sprintf(body, "{\"ok\":1}\n{\"a\":[");
	for (int i = 0; i < INTAKE_MAX_VALUES; i++) {
		memcpy(body + blen, "0,", 2);
		blen += 2;
	}
	blen += (size_t)sprintf(body + blen, "0]}\n");
	req = post("/v1/events", "application/x-ndjson", NULL, body, blen, &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 400);
	assert_non_null(strstr(j.resp[0].body, "line 2: more than 100000 JSON values"));
	stop(fx);
	free(req);
	free(body);
}

/* Connects and sends half a request, then waits for the close. */
static void
job_half(struct job *j)
{
	struct client c;

	if (cl_connect(&c, j->port) != 0 || cl_send(&c, j->req[0], j->req_len[0]) != 0) {
		JOB_FAIL(j);
		return;
	}
	j->nresp = 1;
	j->closed = cl_closed(&c);
	close(c.fd);
}

static void
test_stop_closes_open_connections(void **state)
{
	struct fixture *fx = *state;
	struct job j = { 0 };
	pthread_t t;

	start(fx);
	j.fn = job_half;
	j.port = fx->port;
	j.req[0] = "POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\n";
	j.req_len[0] = strlen(j.req[0]);
	assert_int_equal(pthread_create(&t, NULL, job_thread, &j), 0);
	/* Wait until the server holds the connection, then stop under it. */
	for (int i = 0; i < 5000; i++) {
		struct httpd_stats st;

		uv_run(&fx->loop, UV_RUN_NOWAIT);
		stats(fx, &st);
		if (st.connections == 1 && j.nresp == 1)
			break;
		usleep(1000);
	}
	stop(fx);
	while (!atomic_load(&j.done))
		usleep(1000);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(j.closed);
}

/*
 * A request waiting for memory_limit's share when the agent stops is told
 * 503 (its body was never read) and closed, and stops waiting.
 */
static void
test_stop_answers_a_request_waiting_for_memory_503(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st = { 0 };
	struct budget_stats bs;
	struct budget_reqs q;
	struct budget *b;
	struct job j = { 0 };
	pthread_t t;

	budget_reqs(&q);
	assert_int_equal(budget_new(HTTP_SOURCE_BODY_OVERHEAD + 2 * (uint64_t)q.n + 100, &b), 0);
	/* Another user holds enough of the share that the request does not fit beside it. */
	assert_int_equal(budget_take(b, 1000), 0);
	start(fx);
	http_source_set_budget(fx->hs, b);
	j.port = fx->port;
	j.req[0] = q.full;
	j.nreq = 1;
	j.check_closed = true;
	j.fn = job_exchange;
	assert_int_equal(pthread_create(&t, NULL, job_thread, &j), 0);
	for (int i = 0; i < 5000 && st.budget_waits == 0; i++) {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		stats(fx, &st);
		usleep(1000);
	}
	assert_int_equal(st.budget_waits, 1);
	stop(fx);
	while (!atomic_load(&j.done))
		usleep(1000);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_503_and_closed(&j, "stopping");
	budget_get_stats(b, &bs);
	assert_int_equal(bs.waiting, 0);
	budget_give(b, 1000);
	budget_free(b);
}

static void
test_listen_failure_is_reported_and_leaves_nothing_open(void **state)
{
	struct fixture *fx = *state;
	struct http_source *hs2 = NULL;
	struct agent_source cfg2;
	struct config_addr a2;
	char text[32];

	start(fx);
	cfg2 = fx->cfg;
	a2 = fx->addr;
	snprintf(text, sizeof(text), "127.0.0.1:%d", fx->port);
	a2.port = (uint16_t)fx->port;
	a2.text = text;
	cfg2.listen.items = &a2;
	assert_int_equal(http_source_start(&fx->loop, &cfg2, "host-a", fx->s, &hs2), UV_EADDRINUSE);
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	stop(fx);
}

/* ---------------------------------------------------------------- auth */

#define TOK_ONE "0123456789abcdef0123456789abcdef"
#define TOK_TWO "fedcba9876543210fedcba9876543210"
#define TOK_NEW "00112233445566778899aabbccddeeff"

/* Writes fx's tokens file (mode 0640) and points the source at it. */
static void
tokens_file(struct fixture *fx, const char *text)
{
	FILE *f;

	snprintf(fx->tokens, sizeof(fx->tokens), "%s/tokens", fx->root);
	assert_non_null(f = fopen(fx->tokens, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(fx->tokens, 0640), 0);
	fx->cfg.auth.tokens_file = fx->tokens;
}

/* A request posting body with Authorization: value (none if NULL). */
static char *
post_auth(const char *value, const char *body, size_t *len)
{
	char extra[512] = "";

	if (value != NULL)
		snprintf(extra, sizeof(extra), "Authorization: %s\r\n", value);
	return post("/v1/events", "application/x-ndjson", extra, body, strlen(body), len);
}

static void
test_request_without_or_with_an_unknown_token_is_401_and_nothing_is_spooled(void **state)
{
	static const char *const auth[] = { NULL, "Bearer " TOK_NEW, "Basic dXNlcjpwYXNz",
	    "Bearer" };
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	struct budget *b;
	struct job j;
	size_t len;
	char *req;

	tokens_file(fx, TOK_ONE " app-one\n");
	start(fx);
	/* A budget too small for the body: charging it first would answer 503. */
	assert_int_equal(budget_new(HTTP_SOURCE_BODY_OVERHEAD / 2, &b), 0);
	http_source_set_budget(fx->hs, b);
	for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
		req = post_auth(auth[i], "{\"a\":1}\n", &len);
		memset(&j, 0, sizeof(j));
		j.req[0] = req;
		j.req_len[0] = len;
		j.nreq = 1;
		j.check_closed = true;
		run(fx, &j);
		assert_int_equal(j.nresp, 1);
		assert_int_equal(j.resp[0].status, 401);
		assert_non_null(strcasestr(j.resp[0].head, "\r\nWWW-Authenticate: Bearer"));
		assert_non_null(strstr(j.resp[0].body, i == 1 ? "unknown token" :
		    "Authorization: Bearer"));
		/* Answered before its body: the connection cannot go on. */
		assert_true(j.closed);
		free(req);
	}
	stats(fx, &st);
	assert_int_equal(st.unauthorized, 4);
	assert_int_equal(st.budget_refused, 0);
	assert_int_equal(st.body_bytes, 0);
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_committed, 0);
	stop(fx);
	budget_free(b);
}

static void
test_a_known_token_adds_its_senders_name_to_each_event(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct got g;
	struct job j;
	size_t len;
	char *req;

	tokens_file(fx, "# senders\n" TOK_ONE " app-one\n" TOK_TWO " app-one\n");
	start(fx);
	/* The sender's own "sender" member cannot pass for another. */
	req = post_auth("bearer   " TOK_TWO " ", "{\"a\":1}\n{\"sender\":\"root\",\"b\":2}\n",
	    &len);
	one(fx, req, len, &j);
	assert_int_equal(j.resp[0].status, 200);
	assert_string_equal(j.resp[0].body, "{\"accepted\":2}");
	stats(fx, &st);
	assert_int_equal(st.unauthorized, 0);
	stop(fx);
	free(req);

	read_back(fx, &g);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.ev[0].fields, "a=i:1;sender=t:app-one;");
	assert_string_equal(g.ev[1].fields, "sender=t:app-one;b=i:2;");
	got_free(&g);
}

static void
test_reload_takes_a_new_token_and_refuses_a_removed_one(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j;
	size_t len[3];
	char *req[3];

	tokens_file(fx, TOK_ONE " app-one\n" TOK_TWO " app-two\n");
	start(fx);
	req[0] = post_auth("Bearer " TOK_ONE, "{\"a\":1}\n", &len[0]);
	req[1] = post_auth("Bearer " TOK_TWO, "{\"a\":2}\n", &len[1]);
	req[2] = post_auth("Bearer " TOK_NEW, "{\"a\":3}\n", &len[2]);
	one(fx, req[2], len[2], &j);
	assert_int_equal(j.resp[0].status, 401);

	tokens_file(fx, TOK_ONE " app-one\n" TOK_NEW " app-new\n");
	assert_int_equal(http_source_reload(fx->hs), 0);
	one(fx, req[0], len[0], &j);
	assert_int_equal(j.resp[0].status, 200);
	one(fx, req[1], len[1], &j);
	assert_int_equal(j.resp[0].status, 401);
	one(fx, req[2], len[2], &j);
	assert_int_equal(j.resp[0].status, 200);

	/* A file that no longer loads leaves the tokens as they were. */
	tokens_file(fx, TOK_ONE " app one two\n");
	assert_int_equal(http_source_reload(fx->hs), -EINVAL);
	one(fx, req[2], len[2], &j);
	assert_int_equal(j.resp[0].status, 200);
	stats(fx, &st);
	assert_int_equal(st.unauthorized, 2);
	assert_int_equal(st.events, 3);
	stop(fx);
	for (int i = 0; i < 3; i++)
		free(req[i]);
}

static void
test_missing_tokens_file_fails_the_start(void **state)
{
	struct fixture *fx = *state;

	fx->cfg.auth.tokens_file = "/nonexistent/tokens";
	assert_int_equal(spool_open(&fx->loop, &fx->so, on_writable, fx, &fx->s), 0);
	assert_int_equal(http_source_start(&fx->loop, &fx->cfg, "host-a", fx->s, &fx->hs),
	    -ENOENT);
	fx->hs = NULL;
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	fx->closed = 0;
	spool_close(fx->s, on_closed, fx);
	while (!fx->closed)
		uv_run(&fx->loop, UV_RUN_ONCE);
}

/* Sends each of reqs on one connection; the answers, and whether it closed, in j. */
static void
keep_alive(struct fixture *fx, char **reqs, size_t *lens, int n, struct job *j)
{
	memset(j, 0, sizeof(*j));
	for (int i = 0; i < n; i++) {
		j->req[i] = reqs[i];
		j->req_len[i] = lens[i];
	}
	j->nreq = n;
	j->check_closed = true;
	run(fx, j);
}

static void
test_sender_over_its_event_rate_is_429_with_retry_after_and_nothing_spooled(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct spool_stats ss;
	struct job j;
	size_t len[4];
	char *req[4];

	tokens_file(fx, TOK_ONE " app-one\n" TOK_TWO " app-two\n");
	/* 1 event/s refills nothing that matters while the test runs. */
	fx->cfg.auth.events_per_s = 1;
	fx->cfg.auth.events_burst = 3;
	start(fx);
	req[0] = post_auth("Bearer " TOK_ONE, "{\"a\":1}\n{\"a\":2}\n", &len[0]);
	req[1] = post_auth("Bearer " TOK_ONE, "{\"b\":1}\n{\"b\":2}\n", &len[1]);
	req[2] = post_auth("Bearer " TOK_ONE, "{\"a\":3}\n", &len[2]);
	req[3] = post_auth("Bearer " TOK_ONE, "{\"b\":3}\n", &len[3]);
	keep_alive(fx, req, len, 4, &j);
	assert_int_equal(j.nresp, 4);
	assert_int_equal(j.resp[0].status, 200);
	/* One event left, two asked: its body was read, the connection goes on. */
	assert_int_equal(j.resp[1].status, 429);
	assert_non_null(strcasestr(j.resp[1].head, "\r\nRetry-After: 1\r\n"));
	assert_non_null(strstr(j.resp[1].body, "app-one"));
	assert_null(strcasestr(j.resp[1].head, "Connection: close"));
	assert_int_equal(j.resp[2].status, 200);
	/* None left: refused before its body, which closes. */
	assert_int_equal(j.resp[3].status, 429);
	assert_non_null(strcasestr(j.resp[3].head, "\r\nRetry-After: 1\r\n"));
	assert_true(j.closed);

	/* The limits are each sender's. */
	free(req[0]);
	req[0] = post_auth("Bearer " TOK_TWO, "{\"c\":1}\n", &len[0]);
	one(fx, req[0], len[0], &j);
	assert_int_equal(j.resp[0].status, 200);
	stats(fx, &st);
	assert_int_equal(st.rate_limited, 2);
	assert_int_equal(st.events, 4);
	spool_get_stats(fx->s, &ss);
	assert_int_equal(ss.events_committed, 4);
	stop(fx);
	for (int i = 0; i < 4; i++)
		free(req[i]);
}

static void
test_sender_over_its_byte_rate_is_429_before_its_body(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	struct job j;
	size_t len[2];
	char *req[2];
	int after = 0;
	char *ra;

	tokens_file(fx, TOK_ONE " app-one\n");
	fx->cfg.auth.bytes_per_s = 1;
	fx->cfg.auth.bytes_burst = 10;
	start(fx);
	req[0] = post_auth("Bearer " TOK_ONE, "{\"a\":1}\n", &len[0]);
	req[1] = post_auth("Bearer " TOK_ONE, "{\"a\":2}\n", &len[1]);
	keep_alive(fx, req, len, 2, &j);
	assert_int_equal(j.nresp, 2);
	assert_int_equal(j.resp[0].status, 200);
	assert_int_equal(j.resp[1].status, 429);
	/* 8 bytes asked, 2 left, 1 byte/s: 6 s, in whole seconds rounded up. */
	assert_non_null(ra = strcasestr(j.resp[1].head, "\r\nRetry-After: "));
	after = atoi(ra + 15);
	assert_in_range(after, 6, 7);
	assert_true(j.closed);
	stats(fx, &st);
	assert_int_equal(st.rate_limited, 1);
	assert_int_equal(st.body_bytes, 8);
	stop(fx);
	for (int i = 0; i < 2; i++)
		free(req[i]);
}

/* ---------------------------------------------------------------- HTTPS */

static void
test_https_serves_keep_alive_and_pipelined_requests_and_refuses_plain_ones(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;
	char cert[300], key[300], src[64], *all, *req[3];
	size_t len[3];
	struct got g;
	struct job j;

	snprintf(cert, sizeof(cert), "%s/relay-chain.crt", cert_fixture_dir);
	snprintf(key, sizeof(key), "%s/relay.key", cert_fixture_dir);
	fx->cfg.tls.cert_file = cert;
	fx->cfg.tls.key_file = key;
	start(fx);
	cl_tls_init();
	/* Three requests in one write: the answers come in order, each after the one before. */
	memset(&j, 0, sizeof(j));
	all = pipeline3(fx, req, len, &j);

	/* Keep-alive, then an answer that closes: close_notify, then the close. */
	memset(&j, 0, sizeof(j));
	j.req[0] = req[0];
	j.req_len[0] = len[0];
	j.req[1] = "POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
	    "Content-Length: 1000000\r\n\r\n";
	j.nreq = 2;
	j.check_closed = true;
	run(fx, &j);
	assert_int_equal(j.nresp, 2);
	assert_int_equal(j.resp[0].status, 200);
	assert_int_equal(j.resp[1].status, 413);
	assert_true(j.closed);
	cl_tls_free();

	/* Plain HTTP gets no answer, and is counted. */
	memset(&j, 0, sizeof(j));
	j.req[0] = req[0];
	j.req_len[0] = len[0];
	j.nreq = 1;
	run(fx, &j);
	assert_int_equal(j.nresp, 0);
	stats(fx, &st);
	assert_int_equal(st.handshakes_failed, 1);
	assert_int_equal(st.connections, 3);
	assert_int_equal(st.events, 4);
	stop(fx);
	read_back(fx, &g);
	assert_int_equal(g.n, 4);
	snprintf(src, sizeof(src), "https://127.0.0.1:%d", fx->port);
	assert_string_equal(g.ev[0].source, src);
	got_free(&g);
	for (int i = 0; i < 3; i++)
		free(req[i]);
	free(all);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_object_is_answered_200_after_its_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ndjson_lines_become_events_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_body_is_decoded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_gzip_is_400_and_the_connection_goes_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_line_is_400_naming_it_and_nothing_is_spooled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_member_must_be_a_nonempty_string, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_over_max_by_content_length_is_413_and_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_body_over_max_is_413, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_body_inflating_over_max_is_413, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_path_method_and_type_are_404_405_415, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive_serves_requests_on_one_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_answers_keep_request_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_close_and_http10_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_spool_is_503_with_retry_after_then_200, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_waits_for_memory_limits_share_then_is_200,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_waiting_past_request_timeout_is_503_with_retry_after,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_larger_than_memory_limits_share_is_503_at_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections_refuses_the_extra_one_when_none_is_idle,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_oldest_idle_connection_is_closed_to_admit_a_new_one,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_requests_on_a_busy_spool_queue_all_get_200,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_connection_is_closed_after_the_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_headers_over_the_limit_are_431, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect_100_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_larger_than_the_spool_queue_goes_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_too_large_for_the_spool_loses_its_fields_or_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_tiny_spool_queue_still_takes_every_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_object_with_too_many_values_is_400, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_closes_open_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_a_request_waiting_for_memory_503,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_failure_is_reported_and_leaves_nothing_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_without_or_with_an_unknown_token_is_401_and_nothing_is_spooled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_known_token_adds_its_senders_name_to_each_event,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_takes_a_new_token_and_refuses_a_removed_one,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_tokens_file_fails_the_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_over_its_event_rate_is_429_with_retry_after_and_nothing_spooled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_over_its_byte_rate_is_429_before_its_body,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_https_serves_keep_alive_and_pipelined_requests_and_refuses_plain_ones,
		    setup, teardown),
	};

	log_init("test_http_source", LOG_LEVEL_ERROR);
	if (!cert_fixture_available()) {
		fprintf(stderr, "openssl not installed: cannot make the HTTPS tests' certificates\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, cert_fixture_group_setup, cert_fixture_group_teardown);
}
