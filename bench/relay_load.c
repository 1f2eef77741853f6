/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_load: replays agent batches to a relay at full speed over mutual
 * TLS, so that the relay's CPU per event and events per second can be
 * measured apart from the agent. For bench/bench_relay.sh.
 *
 * The batches are built as an agent builds them from a file source with
 * format nginx_combined: each line of FILE parsed by the agent's own NGINX
 * parser, the events encoded in event format 3 (--format 2 for the
 * previous one: each segment's Dict in front of its events), segments of
 * at most 4096 events and 1 MiB cut as the spool cuts them
 * (relays.batch.max_events and max_bytes defaults), each compressed into
 * one zstd frame at the spool's level 1, followed as in the spool by the
 * skippable frame of its CRC-32C (format 3) or with zstd's checksum
 * (format 2). That costs the client nothing while it sends: the batches are
 * made once, then sent again and again in turn, each time with the next
 * batch id of its connection (an id is the sequence number of its first
 * event, as an agent's).
 *
 * Each of --connections connections (Hello with event formats 1 to the
 * one sent, Welcome) keeps the relay's window full: a batch goes out whenever one
 * is acknowledged. A RETRY sends the same batch again after the relay's
 * retry_after_ms; a REJECTED or a Goodbye ends the run with status 1.
 *
 * Measuring: after --warmup events are acknowledged, the client reads the
 * CPU time (user + system, /proc/PID/stat) of itself and of each --pid
 * given, and again once --events more are acknowledged, and prints
 * KEY=VALUE lines: events, seconds, events_per_second, retries,
 * client_cpu_us_per_event, and per --pid NAME=PID: NAME_cpu_seconds,
 * NAME_cpu_us_per_event, NAME_hwm_kib (VmHWM, the peak resident size).
 * Timing only: never a pass/fail on a number. Exit status 0 when every
 * event was acknowledged, 1 when not, 2 on a usage or setup error.
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
#include <unistd.h>

#include <uv.h>
#include <zstd.h>

#include "agent/nginx_parse.h"
#include "bench/bench_client.h"
#include "bench/bench_util.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/parser.h"
#include "common/tls.h"
#include "proto/event.h"
#include "proto/event_dict.h"
#include "proto/frame.h"

/* The spool's segment bounds by default (relays.batch.max_events, max_bytes), and its Dict arena. */
#define LOAD_SEGMENT_EVENTS 4096
#define LOAD_SEGMENT_BYTES (1u << 20)
#define LOAD_DICT_BYTES (256u << 10)
/* agent/spool.c's CRC frame behind a format-3 segment: zstd skippable magic, size 4, CRC-32C. */
#define LOAD_CRC_MAGIC 0x184D2A50u
#define LOAD_CRC_FRAME 12
/* Frames from the relay are Welcome, Ack, Ping, Goodbye: small. */
#define LOAD_MAX_FRAME (64 * 1024)
/* Most batches one connection keeps in flight, whatever the relay's window. */
#define LOAD_WINDOW_MAX 1024
#define LOAD_PIDS_MAX 4
#define LOAD_LINE_MAX 65536

struct load_batch {
	uint8_t *payload;          /* one zstd frame */
	size_t len;
	uint64_t uncompressed;
	uint32_t events;
};

struct load_sent {
	uint64_t id;
	size_t batch;
	bool used;
};

struct load_conn {
	struct load *app;
	struct tls_conn *tls;
	struct frame_decoder *dec;
	uint32_t index;
	bool open, ended;
	uint32_t window, inflight;
	uint64_t next_id;
	struct load_sent sent[LOAD_WINDOW_MAX];
	/* Batches a RETRY gave back, sent again once the hold timer fires. */
	size_t resend[LOAD_WINDOW_MAX];
	size_t nresend;
	bool holding;
	uv_timer_t hold;
	struct buf out;            /* the frame being written */
	size_t out_off;
};

struct load_pid {
	const char *name;
	int pid;
	double cpu0;
};

struct load {
	uv_loop_t *loop;
	struct bench_client client;
	struct load_batch *batches;
	size_t nbatches, next_batch;
	uint64_t lines_per_batch_max;
	uint32_t nconns, closed;
	int format;                  /* EVENT_FORMAT_2 or EVENT_FORMAT_3 */
	struct load_conn *conns;
	uint64_t warmup, events, sent_events, acked, retries;
	bool measuring, done, failed;
	double t0, cpu0;
	struct load_pid pids[LOAD_PIDS_MAX];
	size_t npids;
	uv_timer_t deadline;
	uv_signal_t sig_int, sig_term;
};

/* ---------------------------------------------------------------- batches */

/*
 * One segment of the events in evs (with the Dict used names) compressed
 * into a new batch. Returns 0 or -ENOMEM.
 */
static int
load_seal(struct load *app, ZSTD_CCtx *cctx, struct event_dict *dict,
    struct event_dict_used *used, struct buf *evs, struct buf *seg, uint32_t events)
{
	struct load_batch *b, *nb;
	size_t bound, n;

	buf_reset(seg);
	if (event_dict_write(dict, used, seg) != 0 || buf_append(seg, evs->data, evs->len) != 0)
		return -ENOMEM;
	if ((nb = realloc(app->batches, (app->nbatches + 1) * sizeof(*nb))) == NULL)
		return -ENOMEM;
	app->batches = nb;
	b = &nb[app->nbatches];
	bound = ZSTD_compressBound(seg->len) + LOAD_CRC_FRAME;
	if ((b->payload = malloc(bound)) == NULL)
		return -ENOMEM;
	n = ZSTD_compress2(cctx, b->payload, bound, seg->data, seg->len);
	if (ZSTD_isError(n)) {
		fprintf(stderr, "relay_load: zstd: %s\n", ZSTD_getErrorName(n));
		free(b->payload);
		return -EINVAL;
	}
	if (app->format == EVENT_FORMAT_3) {
		uint32_t words[3] = { LOAD_CRC_MAGIC, 4, crc32c(b->payload, n) };

		for (size_t i = 0; i < 12; i++)
			b->payload[n + i] = (uint8_t)(words[i / 4] >> (8 * (i % 4)));
		n += LOAD_CRC_FRAME;
	}
	b->len = n;
	b->uncompressed = seg->len;
	b->events = events;
	app->nbatches++;
	buf_reset(evs);
	memset(used, 0, sizeof(*used));
	return 0;
}

/* The batches of path's lines, as an agent's spool would cut and compress them. */
static int
load_make_batches(struct load *app, const char *path, const char *stream)
{
	FILE *f = fopen(path, "r");
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	struct event_dict *dict = event_dict_new(LOAD_DICT_BYTES);
	struct event_dict_used used;
	struct parsed p;
	struct buf evs, seg;
	struct event ev;
	char *line = malloc(LOAD_LINE_MAX);
	uint32_t n = 0;
	uint64_t lines = 0;
	int r = 0;

	if (f == NULL) {
		fprintf(stderr, "relay_load: %s: %s\n", path, strerror(errno));
		r = -errno;
		goto out;
	}
	if (cctx == NULL || dict == NULL || line == NULL ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag,
	    app->format == EVENT_FORMAT_2))) {
		r = -ENOMEM;
		goto out;
	}
	event_dict_set_format(dict, app->format);
	parser_init(&p, LOAD_LINE_MAX);
	buf_init(&evs, 64u << 20);
	buf_init(&seg, 64u << 20);
	memset(&used, 0, sizeof(used));
	memset(&ev, 0, sizeof(ev));
	ev.host = (struct pbslice){ (const uint8_t *)"web-01", 6 };
	ev.stream = (struct pbslice){ (const uint8_t *)stream, strlen(stream) };
	ev.source = (struct pbslice){ (const uint8_t *)path, strlen(path) };
	while (r == 0 && fgets(line, LOAD_LINE_MAX, f) != NULL) {
		size_t len = strcspn(line, "\n");

		parser_reset(&p);
		/* A line that does not parse ships as the agent ships it: its message alone. */
		(void)nginx_parse((const uint8_t *)line, len, &p);
		ev.ts = p.ts != 0 ? p.ts : UINT64_C(1795341600000000000) + lines;
		ev.message = (struct pbslice){ (const uint8_t *)line, len };
		ev.fields = p.fields;
		ev.nfields = p.nfields;
		if ((r = event_dict_encode(dict, &ev, &used, &evs)) != 0) {
			fprintf(stderr, "relay_load: cannot encode line %" PRIu64 ": %s\n", lines + 1,
			    strerror(-r));
			break;
		}
		lines++;
		if (++n == LOAD_SEGMENT_EVENTS || evs.len >= LOAD_SEGMENT_BYTES) {
			r = load_seal(app, cctx, dict, &used, &evs, &seg, n);
			n = 0;
		}
	}
	if (r == 0 && n > 0)
		r = load_seal(app, cctx, dict, &used, &evs, &seg, n);
	if (r == 0 && app->nbatches == 0) {
		fprintf(stderr, "relay_load: %s has no line\n", path);
		r = -EINVAL;
	}
	parser_free(&p);
	buf_free(&evs);
	buf_free(&seg);
out:
	if (f != NULL)
		fclose(f);
	free(line);
	event_dict_free(dict);
	ZSTD_freeCCtx(cctx);
	return r;
}

/* ---------------------------------------------------------------- measuring */

/* CPU seconds (user + system) of pid so far, -1 when it cannot be read. */
static double
load_pid_cpu(int pid)
{
	char path[64], text[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* After the command's closing parenthesis: state is field 3, utime and stime 14 and 15. */
	if ((p = strrchr(text, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmHWM of pid in KiB, -1 when it cannot be read. */
static long
load_pid_hwm(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void
load_start_measuring(struct load *app)
{
	app->measuring = true;
	app->t0 = bench_wall_seconds();
	app->cpu0 = bench_cpu_seconds();
	for (size_t i = 0; i < app->npids; i++)
		app->pids[i].cpu0 = load_pid_cpu(app->pids[i].pid);
}

static void
load_report(struct load *app)
{
	double secs = bench_wall_seconds() - app->t0, ev = (double)app->events;

	printf("events=%" PRIu64 "\nbatches_made=%zu\nseconds=%.3f\nevents_per_second=%.0f\n"
	    "retries=%" PRIu64 "\nclient_cpu_us_per_event=%.3f\n", app->events, app->nbatches, secs,
	    ev / secs, app->retries, (bench_cpu_seconds() - app->cpu0) * 1e6 / ev);
	for (size_t i = 0; i < app->npids; i++) {
		struct load_pid *p = &app->pids[i];
		double cpu = load_pid_cpu(p->pid) - p->cpu0;

		printf("%s_cpu_seconds=%.2f\n%s_cpu_us_per_event=%.3f\n%s_hwm_kib=%ld\n", p->name, cpu,
		    p->name, cpu * 1e6 / ev, p->name, load_pid_hwm(p->pid));
	}
	fflush(stdout);
}

/* ---------------------------------------------------------------- connections */

static void load_pump(struct load_conn *c);

static void
load_close_all(struct load *app)
{
	for (uint32_t i = 0; i < app->nconns; i++) {
		struct load_conn *c = &app->conns[i];

		c->ended = true;
		if (c->tls != NULL)
			tls_conn_close(c->tls);
	}
	uv_timer_stop(&app->deadline);
	uv_close((uv_handle_t *)&app->deadline, NULL);
	uv_close((uv_handle_t *)&app->sig_int, NULL);
	uv_close((uv_handle_t *)&app->sig_term, NULL);
}

static void
load_fail(struct load_conn *c, const char *what)
{
	fprintf(stderr, "relay_load: connection %" PRIu32 ": %s\n", c->index, what);
	c->app->failed = true;
	if (!c->app->done) {
		c->app->done = true;
		load_close_all(c->app);
	}
}

/* Writes c->out in pieces TLS takes now. Returns true once it is all written. */
static bool
load_write(struct load_conn *c)
{
	while (c->out_off < c->out.len) {
		size_t n = c->out.len - c->out_off, space = tls_conn_write_space(c->tls);
		int r;

		/* Nothing fits: one record provokes -EAGAIN, and on_writable. */
		if (space == 0)
			space = TLS_RECORD_MAX;
		if (n > space)
			n = space;
		r = tls_conn_write(c->tls, c->out.data + c->out_off, n);
		if (r == -EAGAIN)
			return false;
		if (r != 0) {
			char why[160];

			snprintf(why, sizeof(why), "cannot send: %s", tls_strerror(r));
			load_fail(c, why);
			return false;
		}
		c->out_off += n;
	}
	return true;
}

static int
load_encode(struct load_conn *c, const struct frame *f)
{
	int r;

	buf_reset(&c->out);
	c->out_off = 0;
	if ((r = frame_encode(f, &c->out)) != 0) {
		load_fail(c, "cannot encode a frame");
		return r;
	}
	return 0;
}

/* Sends batch i as the connection's next id. Returns 0, or -1 when the connection failed. */
static int
load_send_batch(struct load_conn *c, size_t i)
{
	const struct load_batch *b = &c->app->batches[i];
	struct frame f;
	size_t slot;

	for (slot = 0; slot < c->window && c->sent[slot].used; slot++)
		;
	if (slot == c->window) {
		load_fail(c, "no free window slot (the relay answered an id twice?)");
		return -1;
	}
	frame_init(&f, FRAME_BATCH);
	f.pb.batch.id = c->next_id;
	f.pb.batch.event_count = b->events;
	f.pb.batch.compression = logferry_Compression_COMPRESSION_ZSTD;
	f.pb.batch.uncompressed_size = b->uncompressed;
	f.pb.batch.event_format = (uint32_t)c->app->format;
	f.payload = (struct pbslice){ b->payload, b->len };
	if (load_encode(c, &f) != 0)
		return -1;
	c->sent[slot] = (struct load_sent){ .id = c->next_id, .batch = i, .used = true };
	c->next_id += b->events;
	c->inflight++;
	return 0;
}

/* Keeps the window full: batches go out until it is, or TLS pushes back. */
static void
load_pump(struct load_conn *c)
{
	struct load *app = c->app;

	while (!c->ended) {
		if (c->out_off < c->out.len) {
			if (!load_write(c))
				return;
			continue;
		}
		if (!c->open || c->inflight >= c->window)
			return;
		if (c->nresend > 0 && !c->holding) {
			if (load_send_batch(c, c->resend[--c->nresend]) != 0)
				return;
			continue;
		}
		if (app->sent_events >= app->warmup + app->events)
			return;
		app->sent_events += app->batches[app->next_batch].events;
		if (load_send_batch(c, app->next_batch) != 0)
			return;
		app->next_batch = (app->next_batch + 1) % app->nbatches;
	}
}

static void
load_on_hold(uv_timer_t *t)
{
	struct load_conn *c = t->data;

	c->holding = false;
	load_pump(c);
}

static void
load_on_ack(struct load_conn *c, const logferry_Ack *ack)
{
	struct load *app = c->app;
	struct load_sent *s = NULL;
	char why[400];

	for (uint32_t i = 0; i < c->window; i++)
		if (c->sent[i].used && c->sent[i].id == ack->batch_id)
			s = &c->sent[i];
	if (s == NULL) {
		snprintf(why, sizeof(why), "an Ack for batch %" PRIu64 ", which is not in flight",
		    ack->batch_id);
		load_fail(c, why);
		return;
	}
	s->used = false;
	c->inflight--;
	switch (ack->status) {
	case logferry_Ack_Status_OK:
		app->acked += app->batches[s->batch].events;
		if (!app->measuring && app->acked >= app->warmup)
			load_start_measuring(app);
		if (app->acked >= app->warmup + app->events && !app->done) {
			load_report(app);
			app->done = true;
			load_close_all(app);
			return;
		}
		break;
	case logferry_Ack_Status_RETRY:
		app->retries++;
		c->resend[c->nresend++] = s->batch;
		if (!c->holding) {
			c->holding = true;
			uv_timer_start(&c->hold, load_on_hold, ack->retry_after_ms, 0);
		}
		break;
	default:
		snprintf(why, sizeof(why), "batch %" PRIu64 " rejected: %s", ack->batch_id, ack->reason);
		load_fail(c, why);
		return;
	}
	load_pump(c);
}

static void
load_on_welcome(struct load_conn *c, const logferry_Welcome *w)
{
	struct load *app = c->app;
	bool known = false;
	char why[256];

	for (pb_size_t i = 0; i < w->event_formats_count; i++)
		known |= w->event_formats[i] == (uint32_t)app->format;
	if (!known) {
		snprintf(why, sizeof(why), "the relay does not read event format %d", app->format);
		load_fail(c, why);
		return;
	}
	for (size_t i = 0; i < app->nbatches; i++) {
		if (app->batches[i].len > w->max_batch_bytes ||
		    app->batches[i].uncompressed > w->max_uncompressed_bytes) {
			snprintf(why, sizeof(why), "batch %zu (%zu bytes, %" PRIu64 " uncompressed) is "
			    "above the relay's max_batch_bytes %" PRIu64 " or max_uncompressed_bytes %"
			    PRIu64, i, app->batches[i].len, app->batches[i].uncompressed,
			    (uint64_t)w->max_batch_bytes, (uint64_t)w->max_uncompressed_bytes);
			load_fail(c, why);
			return;
		}
	}
	c->window = w->window < LOAD_WINDOW_MAX ? w->window : LOAD_WINDOW_MAX;
	c->open = true;
	load_pump(c);
}

static int
load_on_frame(void *arg, const struct frame *f)
{
	struct load_conn *c = arg;
	struct frame reply;
	char why[300];

	switch (frame_type(f)) {
	case FRAME_WELCOME:
		load_on_welcome(c, &f->pb.welcome);
		return c->ended ? -EPIPE : 0;
	case FRAME_ACK:
		load_on_ack(c, &f->pb.ack);
		return c->ended ? -EPIPE : 0;
	case FRAME_PING:
		/* Behind a batch in c->out it would be late; the relay's ping timeout is seconds. */
		if (c->out_off < c->out.len)
			return 0;
		frame_init(&reply, FRAME_PONG);
		reply.pb.pong.nonce = f->pb.ping.nonce;
		if (load_encode(c, &reply) == 0)
			load_pump(c);
		return 0;
	case FRAME_PONG:
		return 0;
	case FRAME_GOODBYE:
		snprintf(why, sizeof(why), "the relay says goodbye: %s", f->pb.goodbye.reason);
		load_fail(c, why);
		return -EPIPE;
	default:
		snprintf(why, sizeof(why), "unexpected %s frame from the relay",
		    frame_type_name(frame_type(f)));
		load_fail(c, why);
		return -EPROTO;
	}
}

static void
load_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct load_conn *c = ctx;

	if (c->ended)
		return;
	if (frame_decoder_feed(c->dec, p, n, load_on_frame, c) != 0 && !c->ended)
		load_fail(c, frame_decoder_error(c->dec));
}

static void
load_on_handshake(void *ctx, int status)
{
	struct load_conn *c = ctx;
	struct frame f;

	if (status != 0)
		return;      /* on_close follows and says why */
	bench_client_hello(&c->app->client, c->tls, &f);
	f.pb.hello.event_formats_count = 0;
	for (int v = EVENT_FORMAT_1; v <= c->app->format; v++)
		f.pb.hello.event_formats[f.pb.hello.event_formats_count++] = (uint32_t)v;
	if (load_encode(c, &f) == 0)
		(void)load_write(c);
}

static void
load_on_writable(void *ctx)
{
	load_pump(ctx);
}

static void
load_on_close(void *ctx, int reason)
{
	struct load_conn *c = ctx;
	struct load *app = c->app;

	c->tls = NULL;
	frame_decoder_free(c->dec);
	c->dec = NULL;
	if (!c->ended) {
		char why[200];

		snprintf(why, sizeof(why), "closed before the end: %s",
		    reason != 0 ? tls_strerror(reason) : "by the relay");
		c->ended = true;
		load_fail(c, why);
	}
	uv_close((uv_handle_t *)&c->hold, NULL);
	app->closed++;
}

static const struct tls_conn_callbacks load_callbacks = {
	.on_handshake = load_on_handshake,
	.on_data = load_on_data,
	.on_writable = load_on_writable,
	.on_close = load_on_close,
};

static void
load_on_deadline(uv_timer_t *t)
{
	struct load *app = t->data;
	char why[200];

	snprintf(why, sizeof(why), "timed out with %" PRIu64 " of %" PRIu64 " events acknowledged",
	    app->acked, app->warmup + app->events);
	load_fail(&app->conns[0], why);
}

static void
load_on_signal(uv_signal_t *h, int signum)
{
	struct load *app = h->data;

	(void)signum;
	load_fail(&app->conns[0], "interrupted");
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: relay_load -a IP:PORT --ca FILE --cert FILE --key FILE --id AGENT_ID\n"
	    "                  --lines FILE [--stream NAME] [-n EVENTS] [--warmup EVENTS]\n"
	    "                  [-c CONNECTIONS] [--pid NAME=PID]... [--timeout SECONDS]\n"
	    "                  [--server-name NAME] [--format 2|3]\n"
	    "Sends the NGINX combined lines of --lines, as an agent's batches (event format 3\n"
	    "or --format 2, 4096 events per zstd segment), to the relay at IP:PORT over\n"
	    "CONNECTIONS (default 2) "
	    "mutual-TLS connections, each keeping the relay's window full, until --warmup\n"
	    "(default 200000) and then EVENTS (default 2000000) more are acknowledged; the\n"
	    "lines are sent again in turn as often as that takes. Prints events/s and CPU us\n"
	    "per event, its own and each --pid's (user + system from /proc), over the EVENTS.\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		BENCH_CLIENT_LONGOPTS,
		{ "lines", required_argument, NULL, 'l' },
		{ "stream", required_argument, NULL, 'S' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "pid", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_client_args args = BENCH_CLIENT_ARGS_INIT;
	struct load app = { .nconns = 2, .warmup = 200000, .events = 2000000,
		.format = EVENT_FORMAT_3 };
	const char *lines = NULL, *stream = "nginx";
	double timeout = 600;
	char *eq;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "a:n:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': app.events = strtoull(optarg, NULL, 10); break;
		case 'c': app.nconns = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'l': lines = optarg; break;
		case 'S': stream = optarg; break;
		case 'w': app.warmup = strtoull(optarg, NULL, 10); break;
		case 't': timeout = strtod(optarg, NULL); break;
		case 'F': app.format = atoi(optarg); break;
		case 'p':
			if (app.npids == LOAD_PIDS_MAX || (eq = strchr(optarg, '=')) == NULL) {
				usage(stderr);
				return 2;
			}
			*eq = '\0';
			app.pids[app.npids].name = optarg;
			app.pids[app.npids++].pid = atoi(eq + 1);
			break;
		case 'h': usage(stdout); return 0;
		default:
			if (bench_client_option(&args, opt, optarg) == 0)
				break;
			usage(stderr);
			return 2;
		}
	}
	if (!bench_client_args_complete(&args) || lines == NULL || app.nconns == 0 ||
	    (app.format != EVENT_FORMAT_2 && app.format != EVENT_FORMAT_3) ||
	    app.events == 0 || timeout <= 0 || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("relay_load", LOG_LEVEL_WARN);
	if (bench_client_init(&app.client, "relay_load", &args) != 0)
		return 2;
	if (load_make_batches(&app, lines, stream) != 0)
		return 2;
	if ((app.conns = calloc(app.nconns, sizeof(*app.conns))) == NULL) {
		fprintf(stderr, "relay_load: out of memory for %" PRIu32 " connections\n", app.nconns);
		return 2;
	}
	app.loop = uv_default_loop();
	app.deadline.data = app.sig_int.data = app.sig_term.data = &app;
	uv_timer_init(app.loop, &app.deadline);
	uv_timer_start(&app.deadline, load_on_deadline, (uint64_t)(timeout * 1000), 0);
	uv_signal_init(app.loop, &app.sig_int);
	uv_signal_init(app.loop, &app.sig_term);
	uv_signal_start(&app.sig_int, load_on_signal, SIGINT);
	uv_signal_start(&app.sig_term, load_on_signal, SIGTERM);
	if (app.warmup == 0)
		load_start_measuring(&app);
	for (uint32_t i = 0; i < app.nconns; i++) {
		struct load_conn *c = &app.conns[i];

		c->app = &app;
		c->index = i;
		c->next_id = 1;
		buf_init(&c->out, FRAME_MAX_LIMIT);
		uv_timer_init(app.loop, &c->hold);
		c->hold.data = c;
		if ((rc = bench_client_connect(&app.client, app.loop, LOAD_MAX_FRAME, &load_callbacks, c,
		    &c->dec, &c->tls)) != 0) {
			fprintf(stderr, "relay_load: connection %" PRIu32 ": cannot start it: %s\n", i,
			    tls_strerror(rc));
			return 2;
		}
	}
	uv_run(app.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(app.loop);
	bench_client_free(&app.client);
	for (uint32_t i = 0; i < app.nconns; i++)
		buf_free(&app.conns[i].out);
	for (size_t i = 0; i < app.nbatches; i++)
		free(app.batches[i].payload);
	free(app.batches);
	free(app.conns);
	if (rc != 0) {
		fprintf(stderr, "relay_load: handles left open at exit\n");
		return 1;
	}
	return app.failed || app.acked < app.warmup + app.events ? 1 : 0;
}
