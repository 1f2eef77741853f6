/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent/syslog_source: real sockets on loopback, a real loop
 * and a real spool in a temporary directory, read back as stored.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/spool.h"
#include "agent/syslog_source.h"
#include "common/log.h"
#include "common/tls.h"
#include "tests/unit/cert_fixture.h"
#include "tests/unit/spool_fixture.h"

#define MAX_LISTEN 4
#define MAX_GOT 8192
#define MAX_SIZE 1024                   /* the sources' max_message_size */
#define TS_0 UINT64_C(1795341600000000000)   /* 2026-11-22T10:00:00Z */

/* One event read back from the spool; fields as "\x1fkey=value" in order. */
struct got {
	char *message, *host, *source, *fields;
	size_t message_len;
	uint64_t ts;
};

struct fixture {
	char root[64];
	char dir[96];
	char sock[128];
	uv_loop_t loop;
	uv_timer_t tick;
	struct spool_options so;
	struct spool *spool;
	struct agent_source cfg;
	struct config_addr addrs[MAX_LISTEN];
	char texts[MAX_LISTEN][160];
	char paths[MAX_LISTEN][128];
	struct syslog_source *ss;
	int writable_calls;
	bool stopped, spool_closed;
	struct got got[MAX_GOT];
	size_t ngot;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
on_tick(uv_timer_t *t)
{
	(void)t;
}

/* One turn of the loop, a few ms at most. */
static void
run_once(struct fixture *fx)
{
	uv_timer_start(&fx->tick, on_tick, 2, 0);
	uv_run(&fx->loop, UV_RUN_ONCE);
}

static void
run_for(struct fixture *fx, uint64_t ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		run_once(fx);
}

#define RUN_UNTIL(fx, cond) do { \
	uint64_t end_ = now_ms() + 10000; \
	while (!(cond)) { \
		if (now_ms() > end_) \
			fail_msg("timed out waiting for: %s", #cond); \
		run_once(fx); \
	} \
} while (0)

static void
on_writable(void *ctx)
{
	struct fixture *fx = ctx;

	fx->writable_calls++;
	if (fx->ss != NULL)
		syslog_source_resume(fx->ss);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->root, "/tmp/test_syslog_source.XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	snprintf(fx->dir, sizeof(fx->dir), "%s/spool", fx->root);
	snprintf(fx->sock, sizeof(fx->sock), "%s/syslog.sock", fx->root);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	uv_timer_init(&fx->loop, &fx->tick);
	spool_options_default(&fx->so, fx->dir);
	fx->so.commit_interval_ms = 1;
	fx->cfg.name = "sys";
	fx->cfg.type = SOURCE_SYSLOG;
	fx->cfg.max_message_size = MAX_SIZE;
	fx->cfg.receive_buffer = 1024 * 1024;
	fx->cfg.socket_mode = "0666";
	fx->cfg.max_connections = 16;
	fx->cfg.listen.items = fx->addrs;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	uv_close((uv_handle_t *)&fx->tick, NULL);
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	for (size_t i = 0; i < fx->ngot; i++) {
		free(fx->got[i].message);
		free(fx->got[i].host);
		free(fx->got[i].source);
		free(fx->got[i].fields);
	}
	free(fx);
	return 0;
}

static void
open_spool(struct fixture *fx)
{
	assert_int_equal(spool_open(&fx->loop, &fx->so, on_writable, fx, &fx->spool), 0);
}

/* Adds a listen URL: udp://HOST:0, tcp://HOST:0 or unix://PATH. Returns its index. */
static size_t
add_listen(struct fixture *fx, enum config_scheme scheme, const char *host_or_path)
{
	size_t i = fx->cfg.listen.n++;
	struct config_addr *a = &fx->addrs[i];

	assert_true(i < MAX_LISTEN);
	a->scheme = scheme;
	if (scheme == CONFIG_SCHEME_UNIX) {
		snprintf(fx->paths[i], sizeof(fx->paths[i]), "%s", host_or_path);
		a->path = fx->paths[i];
		snprintf(fx->texts[i], sizeof(fx->texts[i]), "unix://%s", host_or_path);
	} else {
		bool v6 = strchr(host_or_path, ':') != NULL;

		a->host = (char *)host_or_path;
		a->port = 0;
		snprintf(fx->texts[i], sizeof(fx->texts[i]), "%s://%s%s%s:0",
		    scheme == CONFIG_SCHEME_UDP ? "udp" : scheme == CONFIG_SCHEME_TLS ? "tls" : "tcp",
		    v6 ? "[" : "", host_or_path,
		    v6 ? "]" : "");
	}
	a->text = fx->texts[i];
	return i;
}

static void
start(struct fixture *fx)
{
	assert_int_equal(syslog_source_start(&fx->loop, &fx->cfg, "agent-host", fx->spool,
	    &fx->ss), 0);
}

static struct syslog_source_stats
stats(struct fixture *fx)
{
	struct syslog_source_stats st;

	syslog_source_get_stats(fx->ss, &st);
	return st;
}

/* ---------------------------------------------------------------- reading back */

static char *
dup_slice(const struct pbslice *s)
{
	char *p = malloc(s->len + 1);

	assert_non_null(p);
	if (s->len != 0)
		memcpy(p, s->ptr, s->len);
	p[s->len] = '\0';
	return p;
}

static int
collect(void *ctx, const struct spool_segment *seg)
{
	struct fixture *fx = ctx;
	struct event_field fields[80];
	struct event_reader er;
	struct event ev;
	struct buf raw;
	int rc;

	buf_init(&raw, 64 << 20);
	assert_int_equal(spool_segment_decompress(seg, &raw), 0);
	event_reader_init(&er, raw.data, raw.len, fields, 80);
	while ((rc = event_reader_next(&er, &ev)) == 1) {
		struct got *g;
		struct buf fb;

		assert_true(fx->ngot < MAX_GOT);
		g = &fx->got[fx->ngot++];
		g->message = dup_slice(&ev.message);
		g->message_len = ev.message.len;
		g->host = dup_slice(&ev.host);
		g->source = dup_slice(&ev.source);
		g->ts = ev.ts;
		buf_init(&fb, 1 << 20);
		for (size_t i = 0; i < ev.nfields; i++) {
			const struct event_field *f = &ev.fields[i];
			struct pbslice s;
			char num[32];

			assert_int_equal(buf_append(&fb, "\x1f", 1), 0);
			assert_int_equal(buf_append(&fb, f->key.ptr, f->key.len), 0);
			assert_int_equal(buf_append(&fb, "=", 1), 0);
			if (f->type == EVENT_INTEGER) {
				snprintf(num, sizeof(num), "%lld", (long long)f->v.integer);
				assert_int_equal(buf_append(&fb, num, strlen(num)), 0);
			} else if (f->type == EVENT_BOOLEAN) {
				const char *b = f->v.boolean ? "true" : "false";

				assert_int_equal(buf_append(&fb, b, strlen(b)), 0);
			} else {
				assert_int_equal(event_field_string(&ev, f, &s), 0);
				assert_int_equal(buf_append(&fb, s.ptr, s.len), 0);
			}
		}
		assert_int_equal(buf_append(&fb, "", 1), 0);
		g->fields = (char *)fb.data;
	}
	assert_int_equal(rc, 0);
	buf_free(&raw);
	return 0;
}

static void
on_stopped(void *ctx)
{
	((struct fixture *)ctx)->stopped = true;
}

static void
on_spool_closed(void *ctx)
{
	((struct fixture *)ctx)->spool_closed = true;
}

/* Stops the source and the spool, then reads every stored event into fx->got. */
static void
stop_and_read(struct fixture *fx)
{
	struct spool_view *v;
	const char *why;

	if (fx->ss != NULL) {
		syslog_source_stop(fx->ss, on_stopped, fx);
		fx->ss = NULL;
		RUN_UNTIL(fx, fx->stopped);
	}
	spool_close(fx->spool, on_spool_closed, fx);
	RUN_UNTIL(fx, fx->spool_closed);
	fx->spool = NULL;
	if (spool_view_open(fx->dir, &v) != 0)
		return;
	assert_int_equal(spool_view_segments(v, 0, collect, fx, &why), 0);
	spool_view_close(v);
}

/* The value of field key of g, or NULL (in a static buffer). */
static const char *
field(const struct got *g, const char *key)
{
	static char val[4096];
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\x1f%s=", key);
	if ((p = strstr(g->fields, pat)) == NULL)
		return NULL;
	p += strlen(pat);
	e = strchr(p, '\x1f');
	if (e == NULL)
		e = p + strlen(p);
	snprintf(val, sizeof(val), "%.*s", (int)(e - p), p);
	return val;
}

/* The events stored from source url, in order. */
static size_t
from_source(struct fixture *fx, const char *url, struct got **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < fx->ngot; i++)
		if (strcmp(fx->got[i].source, url) == 0 && n < max)
			out[n++] = &fx->got[i];
	return n;
}

/* ---------------------------------------------------------------- clients */

static int
client(struct fixture *fx, size_t i, int type)
{
	struct sockaddr_storage sa;
	int fd;

	assert_int_equal(syslog_source_address(fx->ss, i, &sa), 0);
	fd = socket(sa.ss_family, type | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sa.ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)), 0);
	return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		assert_true(w > 0);
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void
send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

static void
udp_send(struct fixture *fx, size_t i, const void *msg, size_t len)
{
	int fd = client(fx, i, SOCK_DGRAM);

	assert_int_equal(send(fd, msg, len, 0), (ssize_t)len);
	close(fd);
}

static void
set_sun(struct sockaddr_un *sa, const char *path)
{
	assert_true(strlen(path) < sizeof(sa->sun_path));
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

static void
unix_send(const char *path, const void *msg, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	set_sun(&sa, path);
	assert_int_equal(sendto(fd, msg, len, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)len);
	close(fd);
}

/* "LEN MSG" */
static void
send_frame(int fd, const char *msg)
{
	char hdr[32];

	snprintf(hdr, sizeof(hdr), "%zu ", strlen(msg));
	send_str(fd, hdr);
	send_str(fd, msg);
}

/* The server closed fd (EOF or reset); data before it is read and ignored. */
static bool
peer_closed(int fd)
{
	char b[4096];
	ssize_t n;

	while ((n = recv(fd, b, sizeof(b), MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static bool
ipv6_loopback(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_DGRAM, 0), r;

	if (fd < 0)
		return false;
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0;
}

/* A TLS client on the fixture's loop (tls:// listeners). */
struct tls_client {
	struct tls_config *cfg;
	struct tls_conn *c;
	int status;                 /* of the handshake; 1 until it ends */
	bool closed;
};

static void
tc_on_handshake(void *ctx, int status)
{
	((struct tls_client *)ctx)->status = status;
}

static void
tc_on_data(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
}

static void
tc_on_close(void *ctx, int reason)
{
	struct tls_client *tc = ctx;

	(void)reason;
	if (tc->status == 1)
		tc->status = -ECONNRESET;
	tc->closed = true;
}

static const struct tls_conn_callbacks tc_callbacks = {
	.on_handshake = tc_on_handshake, .on_data = tc_on_data, .on_close = tc_on_close,
};

/* The listener's certificate is relay's (serverAuth, IP 127.0.0.1) unless set already. */
static void
tls_server_files(struct fixture *fx)
{
	static char cert[300], key[300];

	snprintf(cert, sizeof(cert), "%s/relay-chain.crt", cert_fixture_dir);
	snprintf(key, sizeof(key), "%s/relay.key", cert_fixture_dir);
	fx->cfg.tls.cert_file = cert;
	fx->cfg.tls.key_file = key;
}

/* Connects to listener i, with the client certificate NAME (NULL: none); runs the handshake. */
static void
tls_client_open(struct fixture *fx, size_t i, const char *name, struct tls_client *tc)
{
	struct tls_config_options o = { .role = TLS_ROLE_CLIENT };
	char ca[300], cert[300], key[300], err[512];
	struct sockaddr_storage sa;

	memset(tc, 0, sizeof(*tc));
	tc->status = 1;
	snprintf(ca, sizeof(ca), "%s/ca.crt", cert_fixture_dir);
	o.ca_file = ca;
	if (name != NULL) {
		snprintf(cert, sizeof(cert), "%s/%s-chain.crt", cert_fixture_dir, name);
		snprintf(key, sizeof(key), "%s/%s.key", cert_fixture_dir, name);
		o.cert_file = cert;
		o.key_file = key;
	}
	if (tls_config_new(&o, err, sizeof(err), &tc->cfg) != 0)
		fail_msg("client TLS config: %s", err);
	assert_int_equal(syslog_source_address(fx->ss, i, &sa), 0);
	assert_int_equal(tls_conn_connect(&fx->loop, tc->cfg, (struct sockaddr *)&sa, "127.0.0.1",
	    &tc_callbacks, tc, &tc->c), 0);
	RUN_UNTIL(fx, tc->status != 1);
}

static void
tls_client_send(struct fixture *fx, struct tls_client *tc, const char *s)
{
	assert_int_equal(tc->status, 0);
	assert_int_equal(tls_conn_write(tc->c, s, strlen(s)), 0);
	run_once(fx);
}

static void
tls_client_close(struct fixture *fx, struct tls_client *tc)
{
	if (!tc->closed)
		tls_conn_close(tc->c);
	RUN_UNTIL(fx, tc->closed);
	tls_config_unref(tc->cfg);
}

/* ---------------------------------------------------------------- tests */

static void
test_udp_message_arrives_with_fields_host_and_time(void **state)
{
	static const char m5424[] = "<34>1 2026-11-22T10:00:00.123Z web-01 app 123 ID47 - hello udp\n";
	static const char m3164[] = "<13>Nov 22 10:00:02 web-02 cron[77]: hello v6";
	struct fixture *fx = *state;
	bool v6 = ipv6_loopback();
	char big[1500];
	struct got *g[4];
	size_t i4, i6 = 0;

	open_spool(fx);
	i4 = add_listen(fx, CONFIG_SCHEME_UDP, "127.0.0.1");
	if (v6)
		i6 = add_listen(fx, CONFIG_SCHEME_UDP, "::1");
	start(fx);
	udp_send(fx, i4, m5424, sizeof(m5424) - 1);
	if (v6)
		udp_send(fx, i6, m3164, sizeof(m3164) - 1);
	RUN_UNTIL(fx, stats(fx).received == (v6 ? 2u : 1u));
	/* Longer than max_message_size: cut and marked. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "<13>1 - - app - - - ", 20);
	udp_send(fx, i4, big, sizeof(big));
	RUN_UNTIL(fx, stats(fx).truncated == 1);
	assert_int_equal(stats(fx).parse_errors, 0);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "udp://127.0.0.1:0", g, 4), 2);
	assert_string_equal(g[0]->message, "<34>1 2026-11-22T10:00:00.123Z web-01 app 123 ID47 - hello udp");
	assert_string_equal(g[0]->host, "web-01");
	assert_int_equal(g[0]->ts, TS_0 + UINT64_C(123000000));
	assert_string_equal(field(g[0], "app_name"), "app");
	assert_string_equal(field(g[0], "procid"), "123");
	assert_string_equal(field(g[0], "msgid"), "ID47");
	assert_string_equal(field(g[0], "severity"), "2");
	assert_string_equal(field(g[0], "facility"), "4");
	assert_string_equal(field(g[0], "message"), "hello udp");
	assert_null(field(g[0], "truncated"));
	assert_int_equal(g[1]->message_len, MAX_SIZE);
	assert_string_equal(field(g[1], "truncated"), "true");
	assert_string_equal(g[1]->host, "agent-host");   /* no HOSTNAME: the agent's */
	if (v6) {
		assert_int_equal(from_source(fx, "udp://[::1]:0", g, 4), 1);
		assert_string_equal(g[0]->host, "web-02");
		assert_string_equal(field(g[0], "app_name"), "cron");
		assert_string_equal(field(g[0], "message"), "hello v6");
		assert_string_equal(field(g[0], "severity"), "5");
	}
}

static void
test_datagram_bursts_beyond_the_receive_buffer_are_counted_as_kernel_drops(void **state)
{
	struct fixture *fx = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char msg[64];
	size_t iu, sent = 0;
	uint64_t received;
	int ufd, xfd;

	open_spool(fx);
	fx->cfg.receive_buffer = 4096;
	iu = add_listen(fx, CONFIG_SCHEME_UDP, "127.0.0.1");
	add_listen(fx, CONFIG_SCHEME_UNIX, fx->sock);
	start(fx);
	ufd = client(fx, iu, SOCK_DGRAM);
	xfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(xfd >= 0);
	set_sun(&sa, fx->sock);
	/* The loop does not run: the agent reads nothing while the burst comes. */
	for (int i = 0; i < 400; i++) {
		int n = snprintf(msg, sizeof(msg), "<13>1 - h app - - - burst %d", i);

		if (send(ufd, msg, (size_t)n, MSG_DONTWAIT) == n)
			sent++;
		/* A full unix queue refuses the sender (EAGAIN): not accepted, not sent. */
		if (sendto(xfd, msg, (size_t)n, 0, (struct sockaddr *)&sa, sizeof(sa)) == n)
			sent++;
		else
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	}
	close(ufd);
	close(xfd);
	RUN_UNTIL(fx, stats(fx).received + stats(fx).dropped_kernel == sent);
	assert_true(stats(fx).dropped_kernel > 0);
	/* Nothing more comes: the count was exact, not over. */
	run_for(fx, 50);
	assert_int_equal(stats(fx).received + stats(fx).dropped_kernel, sent);
	assert_int_equal(stats(fx).read_errors, 0);
	received = stats(fx).received;
	stop_and_read(fx);
	assert_int_equal(fx->ngot, received);
}

static void
test_tcp_framing_is_detected_per_connection(void **state)
{
	struct fixture *fx = *state;
	struct got *g[8];
	uint64_t ts_b = 0;
	int a, b;

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	b = client(fx, 0, SOCK_STREAM);
	/* Octet counting; the count covers a message that contains a newline. */
	send_frame(a, "<13>1 2026-11-22T10:00:00Z host-a app - M1 - octet one");
	send_frame(a, "<13>1 2026-11-22T10:00:01Z host-a app - M2 - octet\ntwo");
	/* Newline framing: LF, CR LF and NUL end a message; empty lines are nothing. */
	send_str(b, "<14>Nov 22 10:00:00 host-b tag: line one\n"
	    "<14>Nov 22 10:00:01 host-b tag: line two\r\n\n"
	    "<14>Nov 22 10:00:02 host-b tag: line three");
	send_all(b, "\0", 1);
	RUN_UNTIL(fx, stats(fx).received == 5);
	assert_int_equal(stats(fx).connections, 2);
	assert_int_equal(stats(fx).connections_open, 2);
	close(a);
	close(b);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 8), 5);
	/* Connections are read in any order; within one, in order. */
	for (size_t i = 0, na = 0, nb = 0; i < 5; i++) {
		if (strcmp(g[i]->host, "host-a") == 0) {
			assert_string_equal(field(g[i], "msgid"), na == 0 ? "M1" : "M2");
			assert_string_equal(field(g[i], "message"), na == 0 ? "octet one" : "octet\ntwo");
			na++;
		} else {
			static const char *const want[] = { "line one", "line two", "line three" };

			assert_string_equal(g[i]->host, "host-b");
			assert_string_equal(field(g[i], "message"), want[nb]);
			/* RFC 3164 has no year: only the seconds between them are known. */
			if (nb == 0)
				ts_b = g[i]->ts;
			assert_int_equal(g[i]->ts, ts_b + nb * UINT64_C(1000000000));
			/* No CR, LF or NUL left in the message. */
			assert_int_equal(strcspn(g[i]->message, "\r\n"), g[i]->message_len);
			nb++;
		}
	}
}

static void
test_message_split_across_reads_arrives_whole(void **state)
{
	static const char msg[] = "<13>1 2026-11-22T10:00:00Z h app - - - split octet";
	struct fixture *fx = *state;
	char frame[128];
	struct got *g[4];
	int a, b, n;

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	b = client(fx, 0, SOCK_STREAM);
	n = snprintf(frame, sizeof(frame), "%zu %s", sizeof(msg) - 1, msg);
	/* Cut within the count, then within the message. */
	send_all(a, frame, 1);
	run_for(fx, 30);
	send_all(a, frame + 1, 20);
	run_for(fx, 30);
	send_all(a, frame + 21, (size_t)n - 21);
	send_str(b, "<13>1 2026-11-22T10:00:01Z h app - - - split");
	run_for(fx, 30);
	send_str(b, " line\n<13>1 2026-11-22T10:00:02Z h app - - - last, no line end");
	RUN_UNTIL(fx, stats(fx).received == 2);
	/* Without a line end, the last one waits: more may follow. */
	run_for(fx, 50);
	assert_int_equal(stats(fx).received, 2);
	/* The sender is done: its last message is complete without a line end. */
	shutdown(b, SHUT_WR);
	RUN_UNTIL(fx, stats(fx).received == 3);
	close(a);
	close(b);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 3);
	for (int i = 0; i < 3; i++) {
		const char *m = field(g[i], "message");

		assert_non_null(m);
		assert_true(strcmp(m, "split octet") == 0 || strcmp(m, "split line") == 0 ||
		    strcmp(m, "last, no line end") == 0);
	}
}

static void
test_oversize_octet_counted_message_is_skipped(void **state)
{
	struct fixture *fx = *state;
	char *big = malloc(3000);
	struct got *g[4];
	int a;

	assert_non_null(big);
	memset(big, 'y', 3000);
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	send_frame(a, "<13>1 2026-11-22T10:00:00Z h app - - - before");
	send_str(a, "3000 ");
	send_all(a, big, 3000);
	send_frame(a, "<13>1 2026-11-22T10:00:01Z h app - - - after");
	RUN_UNTIL(fx, stats(fx).received == 2);
	assert_int_equal(stats(fx).dropped_oversize, 1);
	assert_int_equal(stats(fx).connections_open, 1);
	assert_int_equal(stats(fx).framing_errors, 0);
	close(a);
	free(big);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 2);
	assert_string_equal(field(g[0], "message"), "before");
	assert_string_equal(field(g[1], "message"), "after");
}

static void
test_oversize_newline_message_is_truncated(void **state)
{
	struct fixture *fx = *state;
	char *big = malloc(3001);
	struct got *g[4];
	int a;

	assert_non_null(big);
	memset(big, 'z', 3000);
	memcpy(big, "<13>1 2026-11-22T10:00:00Z h app - - - ", 39);
	big[3000] = '\n';
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	send_all(a, big, 3001);
	/* Exactly max_message_size, in CR LF: not truncated. */
	memset(big, 'w', MAX_SIZE);
	memcpy(big, "<13>1 2026-11-22T10:00:01Z h app - - - ", 39);
	send_all(a, big, MAX_SIZE);
	send_str(a, "\r\n<13>1 2026-11-22T10:00:02Z h app - - - next\n");
	RUN_UNTIL(fx, stats(fx).received == 3);
	assert_int_equal(stats(fx).truncated, 1);
	close(a);
	free(big);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 3);
	assert_int_equal(g[0]->message_len, MAX_SIZE);
	assert_string_equal(field(g[0], "truncated"), "true");
	assert_int_equal(g[0]->ts, TS_0);
	assert_int_equal(g[1]->message_len, MAX_SIZE);
	assert_null(field(g[1], "truncated"));
	assert_string_equal(field(g[2], "message"), "next");
}

static void
test_malformed_octet_count_closes_the_connection(void **state)
{
	struct fixture *fx = *state;
	struct got *g[4];
	int a, b, c;

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	b = client(fx, 0, SOCK_STREAM);
	c = client(fx, 0, SOCK_STREAM);
	send_frame(a, "<13>1 2026-11-22T10:00:00Z h app - - - good");
	send_str(a, "oops, not a count\n");
	send_str(b, "12345678901 too many digits");
	send_str(c, "12x3 ");
	RUN_UNTIL(fx, stats(fx).framing_errors == 3);
	RUN_UNTIL(fx, peer_closed(a) && peer_closed(b) && peer_closed(c));
	assert_int_equal(stats(fx).connections_open, 0);
	assert_int_equal(stats(fx).received, 1);
	close(a);
	close(b);
	close(c);
	stop_and_read(fx);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 1);
	assert_string_equal(field(g[0], "message"), "good");
}

static void
test_connections_beyond_max_are_closed_at_once(void **state)
{
	struct fixture *fx = *state;
	int a, b, c, d;

	fx->cfg.max_connections = 2;
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	b = client(fx, 0, SOCK_STREAM);
	RUN_UNTIL(fx, stats(fx).connections_open == 2);
	c = client(fx, 0, SOCK_STREAM);
	RUN_UNTIL(fx, stats(fx).connections_refused == 1 && peer_closed(c));
	/* The others go on. */
	send_str(b, "<13>1 - h app - - - still served\n");
	RUN_UNTIL(fx, stats(fx).received == 1);
	assert_false(peer_closed(a));
	close(a);
	RUN_UNTIL(fx, stats(fx).connections_open == 1);
	d = client(fx, 0, SOCK_STREAM);
	RUN_UNTIL(fx, stats(fx).connections_open == 2);
	assert_int_equal(stats(fx).connections, 3);
	assert_int_equal(stats(fx).connections_refused, 1);
	close(b);
	close(c);
	close(d);
	stop_and_read(fx);
}

static uint64_t
budget_used(struct budget *b)
{
	struct budget_stats bs;

	budget_get_stats(b, &bs);
	return bs.used;
}

static void
test_tcp_connection_waits_for_memory_limits_share_then_reads(void **state)
{
	struct fixture *fx = *state;
	struct budget *b;
	struct budget_stats bs;
	struct got *g[4];
	int a, c;

	/* Room for one connection's buffer (max_message_size and a header), not two. */
	assert_int_equal(budget_new(MAX_SIZE + 100, &b), 0);
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
	syslog_source_set_budget(fx->ss, b);
	a = client(fx, 0, SOCK_STREAM);
	c = client(fx, 0, SOCK_STREAM);
	/* a's message is not finished: its buffer keeps the share. */
	send_str(a, "<13>1 - h app - - - first, finished later");
	RUN_UNTIL(fx, budget_used(b) > 0);
	send_str(c, "<13>1 - h app - - - waited for memory\n");
	RUN_UNTIL(fx, stats(fx).budget_waits == 1);
	run_for(fx, 50);
	assert_int_equal(stats(fx).received, 0);
	/* a's message ends: its buffer is freed, and c reads. */
	send_str(a, "\n");
	RUN_UNTIL(fx, stats(fx).received == 2);
	RUN_UNTIL(fx, budget_used(b) == 0);
	budget_get_stats(b, &bs);
	assert_true(bs.peak > MAX_SIZE && bs.peak <= MAX_SIZE + 100);
	assert_true(bs.refused >= 1);
	/* An idle connection holds nothing: both fit again one after the other. */
	send_str(c, "<13>1 - h app - - - c again\n");
	send_str(a, "<13>1 - h app - - - a again\n");
	RUN_UNTIL(fx, stats(fx).received == 4);
	close(a);
	close(c);
	stop_and_read(fx);
	assert_int_equal(budget_used(b), 0);
	budget_free(b);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 4);
	assert_string_equal(field(g[0], "message"), "first, finished later");
	assert_string_equal(field(g[1], "message"), "waited for memory");
}

static void
test_unix_socket_is_created_with_its_mode_and_removed_at_stop(void **state)
{
	static const char msg[] = "<13>Nov 22 10:00:00 app[1]: local message";
	struct fixture *fx = *state;
	char big[2000];
	struct got *g[4];
	struct stat st;
	char url[160];

	fx->cfg.socket_mode = "0620";
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_UNIX, fx->sock);
	start(fx);
	assert_int_equal(lstat(fx->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0620);
	assert_int_equal(syslog_source_address(fx->ss, 0, &(struct sockaddr_storage){ 0 }),
	    -EAFNOSUPPORT);
	unix_send(fx->sock, msg, sizeof(msg));   /* with its NUL, as some libcs send it */
	memset(big, 'u', sizeof(big));
	memcpy(big, "<13>app: ", 9);
	unix_send(fx->sock, big, sizeof(big));
	RUN_UNTIL(fx, stats(fx).received == 2);
	assert_int_equal(stats(fx).truncated, 1);
	stop_and_read(fx);
	assert_int_equal(lstat(fx->sock, &st), -1);
	assert_int_equal(errno, ENOENT);

	snprintf(url, sizeof(url), "unix://%s", fx->sock);
	assert_int_equal(from_source(fx, url, g, 4), 2);
	assert_string_equal(g[0]->message, "<13>Nov 22 10:00:00 app[1]: local message");
	assert_string_equal(g[0]->host, "agent-host");
	assert_string_equal(field(g[0], "app_name"), "app");
	assert_string_equal(field(g[0], "message"), "local message");
	assert_int_equal(g[1]->message_len, MAX_SIZE);
	assert_string_equal(field(g[1], "truncated"), "true");
}

/* A socket file at path, left bound (live) or closed (stale). Returns the fd or -1. */
static int
make_socket_file(const char *path, bool keep)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	set_sun(&sa, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (keep)
		return fd;
	close(fd);
	return -1;
}

static void
test_stale_unix_socket_is_replaced_and_a_live_one_refused(void **state)
{
	static const char msg[] = "<13>Nov 22 10:00:00 app: after replacing";
	struct fixture *fx = *state;
	struct stat st;
	int live;

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_UNIX, fx->sock);

	/* Someone receives there: refused, their socket left alone. */
	live = make_socket_file(fx->sock, true);
	assert_int_equal(syslog_source_start(&fx->loop, &fx->cfg, "agent-host", fx->spool,
	    &fx->ss), -EADDRINUSE);
	fx->ss = NULL;
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	assert_int_equal(lstat(fx->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	close(live);

	/* Now nobody does (as after a kill -9): replaced. */
	start(fx);
	unix_send(fx->sock, msg, sizeof(msg) - 1);
	RUN_UNTIL(fx, stats(fx).received == 1);
	stop_and_read(fx);
	assert_int_equal(fx->ngot, 1);
	assert_string_equal(fx->got[0].message, msg);
}

static void
test_regular_file_at_the_socket_path_is_refused(void **state)
{
	struct fixture *fx = *state;
	char buf[16] = { 0 };
	FILE *f;

	f = fopen(fx->sock, "w");
	assert_non_null(f);
	fputs("precious", f);
	fclose(f);
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");   /* opened first, then closed again */
	add_listen(fx, CONFIG_SCHEME_UNIX, fx->sock);
	assert_int_equal(syslog_source_start(&fx->loop, &fx->cfg, "agent-host", fx->spool,
	    &fx->ss), -EEXIST);
	fx->ss = NULL;
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	f = fopen(fx->sock, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "precious");
	stop_and_read(fx);
}

static void
test_ports_in_use_are_refused(void **state)
{
	struct fixture *fx = *state;
	struct sockaddr_storage sa;
	struct syslog_source *other;
	struct agent_source cfg2;
	struct config_addr a2;

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	add_listen(fx, CONFIG_SCHEME_UDP, "127.0.0.1");
	start(fx);
	/* A second source on the same ports, one at a time. */
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(syslog_source_address(fx->ss, i, &sa), 0);
		a2 = fx->addrs[i];
		a2.port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		cfg2 = fx->cfg;
		cfg2.listen.n = 1;
		cfg2.listen.items = &a2;
		assert_int_equal(syslog_source_start(&fx->loop, &cfg2, "agent-host", fx->spool,
		    &other), -EADDRINUSE);
		uv_run(&fx->loop, UV_RUN_NOWAIT);
	}
	stop_and_read(fx);
}

/* A spool of 4 MiB, filled with incompressible events until it stays full (as test_spool does). */
static void
open_full_spool(struct fixture *fx)
{
	unsigned seed = 7;

	fx->so.max_size = 4 << 20;
	fx->so.block_bytes = 64 << 10;
	fx->so.segment_max_bytes = 128 << 10;
	fx->so.queue_blocks = 2;
	open_spool(fx);
	spool_fixture_fill(fx->spool, &fx->loop, &seed);
}

static void
test_full_spool_drops_datagrams_and_pauses_tcp_until_resume(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats sp;
	uint64_t range[2] = { 0, 0 }, waits;
	struct got *g[256];
	size_t n, na = 0, nb = 0;
	int a, b;
	char line[128];

	open_full_spool(fx);
	add_listen(fx, CONFIG_SCHEME_UDP, "127.0.0.1");
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);

	/* Datagrams cannot wait: dropped and counted. */
	for (int i = 0; i < 5; i++)
		udp_send(fx, 0, "<13>1 - h app - - - udp", 23);
	RUN_UNTIL(fx, stats(fx).dropped_full == 5);

	/* TCP keeps the message and stops reading. */
	a = client(fx, 1, SOCK_STREAM);
	for (int i = 0; i < 50; i++) {
		snprintf(line, sizeof(line), "<13>1 - h app - - - a %04d\n", i);
		send_str(a, line);
	}
	RUN_UNTIL(fx, stats(fx).paused);
	b = client(fx, 1, SOCK_STREAM);
	RUN_UNTIL(fx, stats(fx).connections_open == 2);
	spool_get_stats(fx->spool, &sp);
	waits = sp.full_waits;
	for (int i = 0; i < 50; i++) {
		snprintf(line, sizeof(line), "<13>1 - h app - - - b %04d", i);
		send_frame(b, line);
	}
	run_for(fx, 100);
	/* Neither connection was read: no one offered the spool anything. */
	spool_get_stats(fx->spool, &sp);
	assert_int_equal(sp.full_waits, waits);
	assert_int_equal(stats(fx).received, 0);
	assert_int_equal(stats(fx).pauses, 1);

	/* What the shipper does on Acks: the spool has room, the source resumes. */
	spool_fixture_committed_range(fx->dir, range);
	assert_int_equal(spool_delete(fx->spool, range[0], range[1]), 0);
	RUN_UNTIL(fx, stats(fx).received == 100);
	assert_false(stats(fx).paused);
	assert_int_equal(stats(fx).dropped_full, 5);
	close(a);
	close(b);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "udp://127.0.0.1:0", g, 256), 0);
	n = from_source(fx, "tcp://127.0.0.1:0", g, 256);
	assert_int_equal(n, 100);
	for (size_t i = 0; i < n; i++) {
		const char *m = field(g[i], "message");

		assert_non_null(m);
		if (m[0] == 'a') {
			snprintf(line, sizeof(line), "a %04zu", na++);
		} else {
			snprintf(line, sizeof(line), "b %04zu", nb++);
		}
		assert_string_equal(m, line);
	}
	assert_int_equal(na, 50);
	assert_int_equal(nb, 50);
}

static void
test_stop_while_paused_frees_everything(void **state)
{
	struct fixture *fx = *state;
	int a, b;

	open_full_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	add_listen(fx, CONFIG_SCHEME_UNIX, fx->sock);
	start(fx);
	a = client(fx, 0, SOCK_STREAM);
	send_str(a, "<13>1 - h app - - - kept one\n<13>1 - h app - - - kept two\n<13>1 - h");
	RUN_UNTIL(fx, stats(fx).paused);
	b = client(fx, 0, SOCK_STREAM);
	RUN_UNTIL(fx, stats(fx).connections_open == 2);
	/* Kept messages the spool still cannot take are lost with a warning; nothing leaks. */
	syslog_source_stop(fx->ss, on_stopped, fx);
	fx->ss = NULL;
	RUN_UNTIL(fx, fx->stopped && peer_closed(a) && peer_closed(b));
	assert_int_equal(access(fx->sock, F_OK), -1);
	close(a);
	close(b);
	stop_and_read(fx);
}

/* ---------------------------------------------------------------- multiline */

#define JAVA_0 "<11>Dec  7 03:00:00 web1 shop[42]: Exception in thread \"main\" " \
	"java.lang.IllegalStateException: no cart"
#define JAVA_1 "<11>Dec  7 03:00:00 web1 shop[42]: \tat com.shop.Cart.check(Cart.java:17)"
#define JAVA_2 "<11>Dec  7 03:00:00 web1 shop[42]: \tat com.shop.Main.main(Main.java:5)"
#define JAVA_MSG "Exception in thread \"main\" java.lang.IllegalStateException: no cart\n" \
	"\tat com.shop.Cart.check(Cart.java:17)\n\tat com.shop.Main.main(Main.java:5)"

/* Starts a source on one tcp:// listener gathering Java traces (the spool is open). */
static void
start_multiline(struct fixture *fx, uint64_t flush_ms, uint64_t max_bytes)
{
	fx->cfg.multiline.continuation = "^[[:space:]]";
	fx->cfg.multiline.flush_timeout_ms = flush_ms;
	fx->cfg.multiline.max_bytes = max_bytes;
	add_listen(fx, CONFIG_SCHEME_TCP, "127.0.0.1");
	start(fx);
}

static void
test_tls_listener_reads_octet_counted_and_newline_frames_as_tcp_does(void **state)
{
	struct fixture *fx = *state;
	struct tls_client a, b;
	struct got *g[8];

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TLS, "127.0.0.1");
	tls_server_files(fx);
	start(fx);
	tls_client_open(fx, 0, NULL, &a);
	tls_client_open(fx, 0, NULL, &b);
	/* RFC 5425: octet counting, a frame split across records. */
	tls_client_send(fx, &a, "54 <13>1 2026-11-22T10:00:00Z host-a app - M1 - octet one");
	tls_client_send(fx, &a, "54 <13>1 2026-11-22T10:00:01Z host-a app - M2 - oc");
	tls_client_send(fx, &a, "tet\ntwo");
	/* Leniently, newline framing too: the first byte decides, as on tcp://. */
	tls_client_send(fx, &b, "<14>Nov 22 10:00:00 host-b tag: line one\n");
	RUN_UNTIL(fx, stats(fx).received == 3);
	assert_int_equal(stats(fx).connections, 2);
	assert_int_equal(stats(fx).connections_open, 2);
	tls_client_close(fx, &a);
	tls_client_close(fx, &b);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	assert_int_equal(stats(fx).framing_errors, 0);
	assert_int_equal(stats(fx).tls_handshakes_failed, 0);
	stop_and_read(fx);

	assert_int_equal(from_source(fx, "tls://127.0.0.1:0", g, 8), 3);
	for (size_t i = 0, na = 0; i < 3; i++) {
		if (strcmp(g[i]->host, "host-a") == 0) {
			assert_string_equal(field(g[i], "msgid"), na == 0 ? "M1" : "M2");
			assert_string_equal(field(g[i], "message"), na == 0 ? "octet one" : "octet\ntwo");
			na++;
		} else {
			assert_string_equal(g[i]->host, "host-b");
			assert_string_equal(field(g[i], "message"), "line one");
		}
	}
}

static void
test_tls_plain_sender_fails_the_handshake_is_counted_and_nothing_spooled(void **state)
{
	struct fixture *fx = *state;
	int fd;

	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TLS, "127.0.0.1");
	tls_server_files(fx);
	start(fx);
	fd = client(fx, 0, SOCK_STREAM);
	send_frame(fd, "<13>1 2026-11-22T10:00:00Z h app - - - in clear");
	RUN_UNTIL(fx, stats(fx).tls_handshakes_failed == 1);
	RUN_UNTIL(fx, peer_closed(fd));
	close(fd);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	assert_int_equal(stats(fx).received, 0);
	stop_and_read(fx);
	assert_int_equal(fx->ngot, 0);
}

static void
test_tls_client_certificate_cn_not_in_allowed_cns_is_closed_and_counted(void **state)
{
	struct fixture *fx = *state;
	static char ca[300], *allowed[] = { "web-0[2]" };
	struct tls_client good, bad, none;
	struct got *g[4];

	snprintf(ca, sizeof(ca), "%s/ca.crt", cert_fixture_dir);
	fx->cfg.tls.ca_file = ca;
	fx->cfg.tls.verify_client = true;
	fx->cfg.tls.allowed_cns.items = allowed;
	fx->cfg.tls.allowed_cns.n = 1;
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TLS, "127.0.0.1");
	tls_server_files(fx);
	start(fx);
	tls_client_open(fx, 0, "web-02", &good);
	tls_client_send(fx, &good, "27 <13>1 - h app - - - allowed");
	RUN_UNTIL(fx, stats(fx).received == 1);
	/* web-01: verified, but its CN is not allowed: closed after the handshake. */
	tls_client_open(fx, 0, "web-01", &bad);
	RUN_UNTIL(fx, stats(fx).tls_cn_refused == 1);
	if (!bad.closed && bad.status == 0)
		(void)tls_conn_write(bad.c, "27 <13>1 - h app - - - refused", 30);
	RUN_UNTIL(fx, bad.closed);
	/* No certificate: the handshake fails. */
	tls_client_open(fx, 0, NULL, &none);
	RUN_UNTIL(fx, stats(fx).tls_handshakes_failed == 1);
	tls_client_close(fx, &none);
	tls_client_close(fx, &bad);
	tls_client_close(fx, &good);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	stop_and_read(fx);
	assert_int_equal(from_source(fx, "tls://127.0.0.1:0", g, 4), 1);
	assert_string_equal(field(g[0], "message"), "allowed");
}

static void
test_tls_connection_waits_for_memory_limits_share_after_the_record_in_hand(void **state)
{
	struct fixture *fx = *state;
	struct tls_client a, c;
	struct budget *b;
	struct got *g[4];

	/* Room for one TLS connection's buffer (a message, a header and a record), not two. */
	assert_int_equal(budget_new(MAX_SIZE + 100 + TLS_RECORD_MAX, &b), 0);
	open_spool(fx);
	add_listen(fx, CONFIG_SCHEME_TLS, "127.0.0.1");
	tls_server_files(fx);
	start(fx);
	syslog_source_set_budget(fx->ss, b);
	tls_client_open(fx, 0, NULL, &a);
	tls_client_open(fx, 0, NULL, &c);
	/* a's message is not finished: its buffer keeps the share. */
	tls_client_send(fx, &a, "<13>1 - h app - - - first, finished later");
	RUN_UNTIL(fx, budget_used(b) > 0);
	/* c's record is decrypted already: it is spooled, then c waits. */
	tls_client_send(fx, &c, "<13>1 - h app - - - in hand\n");
	RUN_UNTIL(fx, stats(fx).budget_waits == 1 && stats(fx).received == 1);
	tls_client_send(fx, &c, "<13>1 - h app - - - waited for memory\n");
	run_for(fx, 50);
	assert_int_equal(stats(fx).received, 1);
	/* a's message ends: its buffer is freed, and c reads again. */
	tls_client_send(fx, &a, "\n");
	RUN_UNTIL(fx, stats(fx).received == 3);
	RUN_UNTIL(fx, budget_used(b) == 0);
	/* Stopping with both connections open closes them and gives everything back. */
	stop_and_read(fx);
	tls_client_close(fx, &a);
	tls_client_close(fx, &c);
	assert_int_equal(budget_used(b), 0);
	budget_free(b);
	assert_int_equal(from_source(fx, "tls://127.0.0.1:0", g, 4), 3);
	assert_string_equal(field(g[0], "message"), "in hand");
	assert_string_equal(field(g[1], "message"), "first, finished later");
	assert_string_equal(field(g[2], "message"), "waited for memory");
}

static void
test_tcp_multiline_joins_messages_with_the_first_ones_fields(void **state)
{
	struct fixture *fx = *state;
	struct got *g[8];
	int a;

	open_spool(fx);
	start_multiline(fx, 3600 * 1000, 4096);
	a = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n" JAVA_1 "\n" JAVA_2 "\n");
	send_str(a, "<14>Dec  7 03:00:01 web1 shop[42]: next\n");
	RUN_UNTIL(fx, stats(fx).received == 3);
	assert_int_equal(stats(fx).multiline_events, 1);
	close(a);
	stop_and_read(fx);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 8), 2);
	assert_string_equal(field(g[0], "message"), JAVA_MSG);
	assert_string_equal(field(g[0], "app_name"), "shop");
	assert_string_equal(field(g[0], "procid"), "42");
	assert_string_equal(field(g[0], "severity_name"), "err");
	assert_string_equal(g[0]->host, "web1");
	assert_null(field(g[0], "multiline_truncated"));
	assert_null(field(g[0], "parse_error"));
	assert_string_equal(field(g[1], "message"), "next");
	assert_string_equal(field(g[1], "severity_name"), "info");
}

static void
test_tcp_multiline_keeps_interleaved_connections_apart(void **state)
{
	struct fixture *fx = *state;
	struct got *g[8];
	char want_b[256];
	int a, b;

	open_spool(fx);
	start_multiline(fx, 3600 * 1000, 4096);
	a = client(fx, 0, SOCK_STREAM);
	b = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n");
	RUN_UNTIL(fx, stats(fx).connections_open == 2);
	send_frame(b, "<11>1 2026-12-07T03:00:00Z web2 py 7 - - Traceback (most recent call last):");
	run_for(fx, 20);
	send_str(a, JAVA_1 "\n");
	send_frame(b, "<11>1 2026-12-07T03:00:00Z web2 py 7 - -   File \"x.py\", line 1, in <module>");
	run_for(fx, 20);
	send_str(a, JAVA_2 "\n");
	send_frame(b, "<11>1 2026-12-07T03:00:00Z web2 py 7 - - ZeroDivisionError: division by zero");
	run_for(fx, 20);
	close(a);
	close(b);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	assert_int_equal(stats(fx).received, 6);
	assert_int_equal(stats(fx).multiline_events, 2);
	stop_and_read(fx);
	snprintf(want_b, sizeof(want_b), "Traceback (most recent call last):\n"
	    "  File \"x.py\", line 1, in <module>");
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 8), 3);
	for (size_t i = 0; i < 3; i++) {
		const char *m = field(g[i], "message");

		if (strcmp(g[i]->host, "web1") == 0) {
			assert_string_equal(m, JAVA_MSG);
		} else if (strncmp(m, "Traceback", 9) == 0) {
			assert_string_equal(m, want_b);
			assert_string_equal(field(g[i], "app_name"), "py");
		} else {
			assert_string_equal(m, "ZeroDivisionError: division by zero");
		}
	}
}

static void
test_tcp_multiline_event_ships_after_flush_timeout_and_gives_its_memory_back(void **state)
{
	struct fixture *fx = *state;
	struct budget *b;
	struct got *g[4];
	int a;

	assert_int_equal(budget_new(64 * 1024, &b), 0);
	open_spool(fx);
	start_multiline(fx, 50, 4096);
	syslog_source_set_budget(fx->ss, b);
	a = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n" JAVA_1 "\n" JAVA_2 "\n");
	/* No message follows and the connection stays open: only the timer tells it is whole. */
	RUN_UNTIL(fx, stats(fx).multiline_flushed == 1);
	assert_int_equal(stats(fx).received, 3);
	assert_int_equal(stats(fx).multiline_events, 1);
	RUN_UNTIL(fx, budget_used(b) == 0);
	assert_false(peer_closed(a));
	close(a);
	stop_and_read(fx);
	budget_free(b);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 1);
	assert_string_equal(field(g[0], "message"), JAVA_MSG);
}

static void
test_tcp_multiline_pending_event_ships_when_the_connection_ends_or_the_source_stops(
    void **state)
{
	struct fixture *fx = *state;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct got *g[4];
	int a, r, s;

	open_spool(fx);
	start_multiline(fx, 3600 * 1000, 4096);
	a = client(fx, 0, SOCK_STREAM);
	r = client(fx, 0, SOCK_STREAM);
	s = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n" JAVA_1 "\n");
	send_str(r, JAVA_0 "\n" JAVA_2 "\n");
	send_str(s, JAVA_0 "\n" JAVA_1 "\n" JAVA_2 "\n");
	RUN_UNTIL(fx, stats(fx).connections_open == 3);
	run_for(fx, 50);
	assert_int_equal(stats(fx).received, 0);
	/* a ends; r is reset; s stays until the source stops (as at a reload). */
	close(a);
	assert_int_equal(setsockopt(r, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(r);
	RUN_UNTIL(fx, stats(fx).connections_open == 1);
	assert_int_equal(stats(fx).received, 4);
	stop_and_read(fx);
	close(s);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 3);
	assert_string_equal(field(g[0], "message"), "Exception in thread \"main\" "
	    "java.lang.IllegalStateException: no cart\n\tat com.shop.Cart.check(Cart.java:17)");
	assert_string_equal(field(g[1], "message"), "Exception in thread \"main\" "
	    "java.lang.IllegalStateException: no cart\n\tat com.shop.Main.main(Main.java:5)");
	assert_string_equal(field(g[2], "message"), JAVA_MSG);
}

static void
test_tcp_multiline_event_is_cut_at_max_bytes_and_marked(void **state)
{
	struct fixture *fx = *state;
	struct got *g[4];
	char line[200];
	int a;

	open_spool(fx);
	start_multiline(fx, 3600 * 1000, 256);
	a = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n");
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line), "<11>Dec  7 03:00:00 web1 shop[42]: \tat f%02d(F.java:1)\n",
		    i);
		send_str(a, line);
	}
	close(a);
	RUN_UNTIL(fx, stats(fx).connections_open == 0 && stats(fx).received == 21);
	assert_int_equal(stats(fx).multiline_truncated, 1);
	stop_and_read(fx);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 1);
	assert_string_equal(field(g[0], "multiline_truncated"), "true");
	assert_string_equal(field(g[0], "app_name"), "shop");
	assert_true(g[0]->message_len == 256);
}

/* A pending event that must grow waits for memory_limit's share like a receive buffer. */
static void
test_tcp_multiline_growth_refused_by_the_budget_pauses_the_connection(void **state)
{
	struct fixture *fx = *state;
	struct budget *b;
	struct got *g[4];
	char line[200], want[4096] = "Exception in thread \"main\" "
	    "java.lang.IllegalStateException: no cart";
	/* The receive buffer and a 256-byte event fit beside what the test holds, 512 does not. */
	uint64_t held = 4096 - (MAX_SIZE + 11) - 256 - 100;
	int a;

	assert_int_equal(budget_new(4096, &b), 0);
	open_spool(fx);
	start_multiline(fx, 3600 * 1000, 4096);
	syslog_source_set_budget(fx->ss, b);
	assert_int_equal(budget_take(b, held), 0);
	a = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n");
	for (int i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "<11>Dec  7 03:00:00 web1 shop[42]: \tat com.shop.f%02d"
		    "(Shop.java:%d)\n", i, i);
		send_str(a, line);
		snprintf(want + strlen(want), sizeof(want) - strlen(want),
		    "\n\tat com.shop.f%02d(Shop.java:%d)", i, i);
	}
	RUN_UNTIL(fx, stats(fx).budget_waits == 1);
	run_for(fx, 50);
	assert_true(budget_used(b) <= 4096);
	assert_int_equal(stats(fx).budget_waits, 1);
	assert_int_equal(stats(fx).received, 0);
	/* Memory comes back: the connection reads on, and the event is whole. */
	budget_give(b, held);
	close(a);
	RUN_UNTIL(fx, stats(fx).connections_open == 0);
	assert_int_equal(stats(fx).received, 9);
	assert_int_equal(stats(fx).multiline_flushed, 0);
	stop_and_read(fx);
	assert_int_equal(budget_used(b), 0);
	budget_free(b);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 1);
	assert_string_equal(field(g[0], "message"), want);
}

/* A trace kept for a full spool is offered again on resume, whole. */
static void
test_tcp_multiline_event_waits_for_a_full_spool_at_close(void **state)
{
	struct fixture *fx = *state;
	uint64_t range[2] = { 0, 0 };
	struct got *g[4];
	int a;

	open_full_spool(fx);
	start_multiline(fx, 3600 * 1000, 4096);
	a = client(fx, 0, SOCK_STREAM);
	send_str(a, JAVA_0 "\n" JAVA_1 "\n" JAVA_2 "\n");
	close(a);
	RUN_UNTIL(fx, stats(fx).paused);
	assert_int_equal(stats(fx).connections_open, 1);
	spool_fixture_committed_range(fx->dir, range);
	assert_int_equal(spool_delete(fx->spool, range[0], range[1]), 0);
	RUN_UNTIL(fx, stats(fx).received == 3 && stats(fx).connections_open == 0);
	stop_and_read(fx);
	assert_int_equal(from_source(fx, "tcp://127.0.0.1:0", g, 4), 1);
	assert_string_equal(field(g[0], "message"), JAVA_MSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_udp_message_arrives_with_fields_host_and_time, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_datagram_bursts_beyond_the_receive_buffer_are_counted_as_kernel_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_framing_is_detected_per_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_split_across_reads_arrives_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_octet_counted_message_is_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_newline_message_is_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_octet_count_closes_the_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tcp_connection_waits_for_memory_limits_share_then_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connections_beyond_max_are_closed_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_socket_is_created_with_its_mode_and_removed_at_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_unix_socket_is_replaced_and_a_live_one_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regular_file_at_the_socket_path_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports_in_use_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_spool_drops_datagrams_and_pauses_tcp_until_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_while_paused_frees_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_joins_messages_with_the_first_ones_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_keeps_interleaved_connections_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_event_ships_after_flush_timeout_and_gives_its_memory_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_pending_event_ships_when_the_connection_ends_or_the_source_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_event_is_cut_at_max_bytes_and_marked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_growth_refused_by_the_budget_pauses_the_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_multiline_event_waits_for_a_full_spool_at_close, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_listener_reads_octet_counted_and_newline_frames_as_tcp_does, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_plain_sender_fails_the_handshake_is_counted_and_nothing_spooled, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_client_certificate_cn_not_in_allowed_cns_is_closed_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_connection_waits_for_memory_limits_share_after_the_record_in_hand, setup,
		    teardown),
	};

	log_init("test_syslog_source", LOG_LEVEL_ERROR);
	if (!cert_fixture_available()) {
		printf("SKIP: openssl not installed\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, cert_fixture_group_setup, cert_fixture_group_teardown);
}
