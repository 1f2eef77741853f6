/* SPDX-License-Identifier: Apache-2.0 */
/*
 * idle_agents: opens N mutual-TLS connections to a relay as agents do
 * (TLS handshake, Hello, Welcome), holds them idle with a Ping every
 * --ping-interval (what an agent with nothing to send does), and closes
 * them all at once on SIGUSR1, SIGTERM or SIGINT, and exits. For
 * bench/bench_idle.sh, which measures the relay's memory around it.
 *
 * Every connection presents the same client certificate and sends its
 * common name as agent id: the relay checks the id against the
 * certificate's CN and tls.allowed_agents and accepts several connections
 * of one agent, so one certificate stands for N agents. What the relay
 * keeps per connection does not depend on the id.
 *
 * One libuv loop, common/tls for TLS; at most --inflight connections are
 * between connect and Welcome at a time, so the relay sees a steady stream
 * of handshakes rather than N at once. Prints KEY=VALUE lines on stdout:
 * after the connecting phase (connected, handshake_failures, refused,
 * other_failures, connect_seconds) and the line "ready"; after the close,
 * lost_while_idle and close_seconds, then "closed". Exit status 0 when
 * every connection got its Welcome and stayed open until the close, 1 when
 * not, 2 on a usage or setup error. Timing only: never a pass/fail on a
 * number.
 */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "bench/bench_client.h"
#include "bench/bench_util.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"
#include "proto/frame.h"

/* A frame the relay sends an agent is a few hundred bytes; Batches never come this way. */
#define IDLE_MAX_FRAME (64 * 1024)
/* Descriptors beyond the connections: stdio, the loop's own, spare. */
#define IDLE_FD_SPARE 64
/* Pings go out in this many slices of the interval, so they do not all leave at once. */
#define IDLE_PING_SLICES 20

enum idle_state { IDLE_CONNECTING, IDLE_HELLO, IDLE_OPEN, IDLE_CLOSING, IDLE_DONE };

struct idle_conn {
	struct idle *app;
	struct tls_conn *tls;
	struct frame_decoder *dec;
	enum idle_state state;
	uint32_t index;
	bool ended;                /* a Goodbye or an abort ends it: what arrives after does not count */
	bool refused;              /* the relay answered the Hello with a Goodbye */
};

struct idle {
	uv_loop_t *loop;
	struct bench_client client;
	uint32_t n, inflight_max, inflight, started, open, done;
	uint32_t hs_failed, refused, other_failed, lost;
	uint64_t ping_interval_ms;
	uint32_t ping_slice;
	struct idle_conn *conns;
	uv_timer_t ping;
	uv_signal_t sig_close, sig_term, sig_int;
	double t0, t_close;
	bool ready_said, closing;
};

static void idle_start_more(struct idle *app);

static void
idle_send(struct idle_conn *c, const struct frame *f)
{
	uint8_t mem[1024];
	struct buf b = { .data = mem, .cap = sizeof(mem), .max = sizeof(mem) };
	int rc;

	if ((rc = frame_encode(f, &b)) != 0) {
		fprintf(stderr, "idle_agents: connection %" PRIu32 ": cannot encode a %s frame: %s\n",
		    c->index, frame_type_name(frame_type(f)), strerror(-rc));
		c->ended = true;
		tls_conn_abort(c->tls, rc);
		return;
	}
	/* Frames of a few bytes on a connection that sends nothing else: -EAGAIN cannot happen. */
	if ((rc = tls_conn_write(c->tls, b.data, b.len)) != 0) {
		fprintf(stderr, "idle_agents: connection %" PRIu32 " to %s: cannot send a %s frame: %s\n",
		    c->index, tls_conn_peer(c->tls), frame_type_name(frame_type(f)), tls_strerror(rc));
		c->ended = true;
		tls_conn_abort(c->tls, rc);
	}
}

/* The connecting phase is over when every connection has its Welcome or has failed. */
static void
idle_check_ready(struct idle *app)
{
	if (app->ready_said || app->started < app->n || app->inflight > 0)
		return;
	app->ready_said = true;
	printf("connections=%" PRIu32 "\nconnected=%" PRIu32 "\nhandshake_failures=%" PRIu32
	    "\nrefused=%" PRIu32 "\nother_failures=%" PRIu32 "\nconnect_seconds=%.2f\n"
	    "connects_per_second=%.0f\nready\n", app->n, app->open, app->hs_failed, app->refused,
	    app->other_failed, bench_wall_seconds() - app->t0,
	    (double)app->open / (bench_wall_seconds() - app->t0));
	fflush(stdout);
}

static void
idle_phase_done(struct idle_conn *c)
{
	struct idle *app = c->app;

	app->inflight--;
	idle_start_more(app);
	idle_check_ready(app);
}

static int
idle_on_frame(void *arg, const struct frame *f)
{
	struct idle_conn *c = arg;
	struct frame reply;

	switch (frame_type(f)) {
	case FRAME_WELCOME:
		if (c->state != IDLE_HELLO)
			break;
		c->state = IDLE_OPEN;
		c->app->open++;
		idle_phase_done(c);
		return 0;
	case FRAME_PING:
		frame_init(&reply, FRAME_PONG);
		reply.pb.pong.nonce = f->pb.ping.nonce;
		idle_send(c, &reply);
		return 0;
	case FRAME_PONG:
		return 0;
	case FRAME_GOODBYE:
		fprintf(stderr, "idle_agents: connection %" PRIu32 ": the relay says goodbye: %s\n",
		    c->index, f->pb.goodbye.reason);
		if (c->state == IDLE_HELLO) {
			c->app->refused++;
			c->refused = true;
		}
		c->ended = true;
		tls_conn_close(c->tls);
		return -EPIPE;
	default:
		break;
	}
	fprintf(stderr, "idle_agents: connection %" PRIu32 ": unexpected %s frame from the relay\n",
	    c->index, frame_type_name(frame_type(f)));
	c->ended = true;
	tls_conn_abort(c->tls, -EPROTO);
	return -EPROTO;
}

static void
idle_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct idle_conn *c = ctx;

	if (c->ended)
		return;
	if (frame_decoder_feed(c->dec, p, n, idle_on_frame, c) != 0 && !c->ended) {
		fprintf(stderr, "idle_agents: connection %" PRIu32 ": %s\n", c->index,
		    frame_decoder_error(c->dec));
		c->ended = true;
		tls_conn_abort(c->tls, -EPROTO);
	}
}

static void
idle_on_handshake(void *ctx, int status)
{
	struct idle_conn *c = ctx;
	struct frame f;

	if (status != 0) {
		/* on_close follows and counts it. */
		return;
	}
	c->state = IDLE_HELLO;
	bench_client_hello(&c->app->client, c->tls, &f);
	idle_send(c, &f);
}

/* Every connection is closed: says so and lets the loop end. */
static void
idle_finish(struct idle *app)
{
	printf("lost_while_idle=%" PRIu32 "\nclose_seconds=%.2f\nclosed\n", app->lost,
	    bench_wall_seconds() - app->t_close);
	fflush(stdout);
	uv_close((uv_handle_t *)&app->ping, NULL);
	uv_close((uv_handle_t *)&app->sig_close, NULL);
	uv_close((uv_handle_t *)&app->sig_term, NULL);
	uv_close((uv_handle_t *)&app->sig_int, NULL);
}

static void
idle_on_close(void *ctx, int reason)
{
	struct idle_conn *c = ctx;
	struct idle *app = c->app;
	enum idle_state was = c->state;

	c->state = IDLE_DONE;
	c->tls = NULL;
	frame_decoder_free(c->dec);
	c->dec = NULL;
	app->done++;
	if (was == IDLE_CONNECTING || was == IDLE_HELLO) {
		if (was == IDLE_CONNECTING) {
			app->hs_failed++;
			if (app->hs_failed <= 10)
				fprintf(stderr, "idle_agents: connection %" PRIu32 ": TLS handshake failed: %s\n",
				    c->index, reason != 0 ? tls_strerror(reason) : "closed");
		} else if (!c->refused) {
			app->other_failed++;
			if (app->other_failed <= 10)
				fprintf(stderr, "idle_agents: connection %" PRIu32 ": closed before Welcome: %s\n",
				    c->index, reason != 0 ? tls_strerror(reason) : "by the relay");
		}
		idle_phase_done(c);
	} else if (was == IDLE_OPEN) {
		app->open--;
		app->lost++;
		if (app->lost <= 10)
			fprintf(stderr, "idle_agents: connection %" PRIu32 " closed while idle: %s\n",
			    c->index, reason != 0 ? tls_strerror(reason) : "by the relay");
	}
	if (app->closing && app->done == app->started)
		idle_finish(app);
}

static const struct tls_conn_callbacks idle_callbacks = {
	.on_handshake = idle_on_handshake,
	.on_data = idle_on_data,
	.on_close = idle_on_close,
};

static void
idle_start_more(struct idle *app)
{
	while (!app->closing && app->started < app->n && app->inflight < app->inflight_max) {
		struct idle_conn *c = &app->conns[app->started];
		int rc;

		c->app = app;
		c->index = app->started++;
		c->state = IDLE_CONNECTING;
		if ((rc = bench_client_connect(&app->client, app->loop, IDLE_MAX_FRAME, &idle_callbacks,
		    c, &c->dec, &c->tls)) != 0) {
			fprintf(stderr, "idle_agents: connection %" PRIu32 ": cannot start it: %s\n",
			    c->index, tls_strerror(rc));
			c->state = IDLE_DONE;
			app->other_failed++;
			app->done++;
			continue;
		}
		app->inflight++;
	}
	idle_check_ready(app);
}

/* Each tick pings the connections of one slice: each connection once per interval. */
static void
idle_on_ping(uv_timer_t *t)
{
	struct idle *app = t->data;
	struct frame f;

	for (uint32_t i = app->ping_slice; i < app->started; i += IDLE_PING_SLICES) {
		struct idle_conn *c = &app->conns[i];

		if (c->state != IDLE_OPEN)
			continue;
		frame_init(&f, FRAME_PING);
		f.pb.ping.nonce = i;
		idle_send(c, &f);
	}
	app->ping_slice = (app->ping_slice + 1) % IDLE_PING_SLICES;
}

static void
idle_close_all(struct idle *app)
{
	if (app->closing)
		return;
	app->closing = true;
	app->t_close = bench_wall_seconds();
	uv_timer_stop(&app->ping);
	for (uint32_t i = 0; i < app->started; i++) {
		struct idle_conn *c = &app->conns[i];

		if (c->state == IDLE_DONE)
			continue;
		if (c->state == IDLE_OPEN)
			app->open--;
		c->state = IDLE_CLOSING;
		tls_conn_close(c->tls);
	}
	/* Nothing was open: no on_close will finish. */
	if (app->done == app->started)
		idle_finish(app);
}

static void
idle_on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	idle_close_all(h->data);
}

/* Raises the soft descriptor limit to what n connections need, up to the hard limit. */
static int
idle_raise_nofile(uint32_t n)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)n + IDLE_FD_SPARE;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -errno;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		fprintf(stderr, "idle_agents: %" PRIu32 " connections need %llu descriptors; the hard "
		    "limit is %llu (raise it: ulimit -Hn, as root, or limits.conf)\n", n,
		    (unsigned long long)want, (unsigned long long)rl.rlim_max);
		return -EMFILE;
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: idle_agents -a IP:PORT --ca FILE --cert FILE --key FILE --id AGENT_ID\n"
	    "                   [-n CONNECTIONS] [--inflight N] [--server-name NAME]\n"
	    "                   [--ping-interval SECONDS]\n"
	    "Opens CONNECTIONS (default 10000) mutual-TLS connections to the relay at IP:PORT,\n"
	    "at most --inflight (default 32) between connect and Welcome at a time, each\n"
	    "sending Hello with AGENT_ID (the common name of --cert), and holds them with a Ping\n"
	    "every --ping-interval (default 10) seconds. SIGUSR1, SIGTERM or SIGINT closes them\n"
	    "all at once (close_notify each), and it exits once all are closed.\n"
	    "--server-name: the name the relay's certificate carries (default: IP).\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		BENCH_CLIENT_LONGOPTS,
		{ "inflight", required_argument, NULL, 'f' },
		{ "ping-interval", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_client_args args = BENCH_CLIENT_ARGS_INIT;
	struct idle app = { .n = 10000, .inflight_max = 32, .ping_interval_ms = 10000 };
	uint64_t interval;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "a:n:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': app.n = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'f': app.inflight_max = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'p': app.ping_interval_ms = (uint64_t)(strtod(optarg, NULL) * 1000); break;
		case 'h': usage(stdout); return 0;
		default:
			if (bench_client_option(&args, opt, optarg) == 0)
				break;
			usage(stderr);
			return 2;
		}
	}
	if (!bench_client_args_complete(&args) || app.n == 0 || app.inflight_max == 0 ||
	    app.ping_interval_ms == 0 || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (idle_raise_nofile(app.n) != 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	log_init("idle_agents", LOG_LEVEL_WARN);
	if (bench_client_init(&app.client, "idle_agents", &args) != 0)
		return 2;
	if ((app.conns = calloc(app.n, sizeof(*app.conns))) == NULL) {
		fprintf(stderr, "idle_agents: out of memory for %" PRIu32 " connections\n", app.n);
		return 2;
	}
	app.loop = uv_default_loop();
	app.ping.data = app.sig_close.data = app.sig_term.data = app.sig_int.data = &app;
	uv_timer_init(app.loop, &app.ping);
	interval = app.ping_interval_ms / IDLE_PING_SLICES;
	uv_timer_start(&app.ping, idle_on_ping, interval > 0 ? interval : 1, interval > 0 ? interval : 1);
	uv_signal_init(app.loop, &app.sig_close);
	uv_signal_init(app.loop, &app.sig_term);
	uv_signal_init(app.loop, &app.sig_int);
	uv_signal_start(&app.sig_close, idle_on_signal, SIGUSR1);
	uv_signal_start(&app.sig_term, idle_on_signal, SIGTERM);
	uv_signal_start(&app.sig_int, idle_on_signal, SIGINT);
	app.t0 = bench_wall_seconds();
	idle_start_more(&app);
	uv_run(app.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(app.loop);
	bench_client_free(&app.client);
	free(app.conns);
	if (rc != 0) {
		fprintf(stderr, "idle_agents: handles left open at exit\n");
		return 1;
	}
	return app.hs_failed == 0 && app.refused == 0 && app.other_failed == 0 && app.lost == 0 ? 0 : 1;
}
