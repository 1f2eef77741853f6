/* SPDX-License-Identifier: Apache-2.0 */
/* httpd: the HTTP/1.1 server of JSON events both daemons' intakes run (see httpd.h). */
#include "autoconfig.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <http_parser.h>

#include "common/addr.h"
#include "common/httpd.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"

#define HTTPD_READ_BUF (16 * 1024)
#define HTTPD_URL_MAX 256           /* URL bytes kept: a longer one is no path of ours */
#define HTTPD_HNAME_MAX 32          /* header name bytes kept: ours are shorter */
#define HTTPD_HVAL_MAX 128          /* header value bytes kept */
#define HTTPD_AUTH_MAX (TOKEN_MAX_LEN + 32)   /* Authorization value bytes kept: "Bearer TOKEN" */
#define HTTPD_OUT_MAX 4096          /* an answer's body */
#define HTTPD_BACKLOG 128

enum httpd_conn_state {
	HTTPD_CONN_READING,    /* reading a request, or waiting for one */
	HTTPD_CONN_WAITING,    /* its head is read: waiting for memory for its body */
	HTTPD_CONN_CHECKING,   /* the body is in: its objects are being checked */
	HTTPD_CONN_OWNED,      /* the owner has it (spooling, producing), until it answers */
	HTTPD_CONN_WRITING,    /* writing the answer */
	HTTPD_CONN_LINGERING,  /* answered, write side shut: draining before close */
	HTTPD_CONN_CLOSING,    /* handles closing */
};

static const char *const httpd_conn_state_names[] = {
	"reading", "waiting", "checking", "owned", "writing", "lingering", "closing",
};

#define HTTPD_TO(s) (1u << (s))
/* The states each state may move to (CLOSING is always allowed, except from itself). */
static const unsigned httpd_conn_next[] = {
	[HTTPD_CONN_READING] = HTTPD_TO(HTTPD_CONN_WAITING) | HTTPD_TO(HTTPD_CONN_CHECKING) |
	    HTTPD_TO(HTTPD_CONN_WRITING),
	[HTTPD_CONN_WAITING] = HTTPD_TO(HTTPD_CONN_READING) | HTTPD_TO(HTTPD_CONN_WRITING),
	[HTTPD_CONN_CHECKING] = HTTPD_TO(HTTPD_CONN_OWNED) | HTTPD_TO(HTTPD_CONN_WRITING),
	[HTTPD_CONN_OWNED] = HTTPD_TO(HTTPD_CONN_WRITING),
	[HTTPD_CONN_WRITING] = HTTPD_TO(HTTPD_CONN_READING) | HTTPD_TO(HTTPD_CONN_LINGERING),
	[HTTPD_CONN_LINGERING] = 0,
	[HTTPD_CONN_CLOSING] = 0,
};

struct httpd;

struct httpd_listener {
	uv_tcp_t tcp;
	struct httpd *hs;
	const struct config_addr *cfg;
	struct sockaddr_storage addr;
	char source[80];              /* "http://127.0.0.1:8540": the events' source */
	bool open;
};

/* A connection over max_connections: accepted only to be closed. */
struct httpd_refused {
	uv_tcp_t tcp;
	struct httpd *hs;
};

struct httpd_conn {
	uv_tcp_t tcp;                 /* plain HTTP */
	struct tls_conn *tls;         /* HTTPS: owns its TCP handle; NULL for plain */
	bool tls_open;                /* its on_close has not run */
	bool send_wait;               /* HTTPS: the answer waits for room in the send buffer */
	bool sent;                    /* HTTPS: the answer is queued: go on from the work queue */
	char cn[TLS_CN_MAX + 1];      /* verify_client: the certificate's common name, or "" */
	const char *cn_refused;       /* verify_client: why its requests get 403; NULL: allowed */
	size_t head_len;
	uv_timer_t timer;             /* idle, request, linger or stop-grace timeout */
	uv_write_t wreq, creq;        /* the answer; "100 Continue" */
	uv_shutdown_t sreq;
	struct httpd *hs;
	struct httpd_listener *l;
	TAILQ_ENTRY(httpd_conn) link;  /* hs->conns */
	TAILQ_ENTRY(httpd_conn) work;  /* hs->work, while queued */
	TAILQ_ENTRY(httpd_conn) idle_link; /* hs->idlers, while idle */
	bool queued;                  /* in hs->work */
	bool idle;                    /* between requests: the first to close when slots run out */
	bool reading;                 /* uv_read_start is in effect */
	bool waited;                  /* OWNED: httpd_conn_wait armed the request timeout */
	enum httpd_conn_state state;
	int closing;                  /* handles still to be closed */
	char peer[64];
	http_parser parser;
	uint8_t rbuf[HTTPD_READ_BUF];
	size_t rpos, rlen;            /* rbuf[rpos, rlen): read but not parsed (a pipelined request) */

	/* The request. */
	size_t head_bytes;
	char url[HTTPD_URL_MAX + 1];
	size_t url_len;
	bool url_long;
	int hstate;                   /* 0: between headers, 1: in a name, 2: in a value */
	char hname[HTTPD_HNAME_MAX + 1], hval[HTTPD_AUTH_MAX + 1];
	size_t hname_len, hval_len;
	bool hname_long, hval_long;
	char ctype[HTTPD_HVAL_MAX + 1], cenc[HTTPD_HVAL_MAX + 1];
	bool ctype_seen, ctype_long, cenc_long, expect_continue;
	char auth[HTTPD_AUTH_MAX + 1]; /* the Authorization value, while its head is read */
	size_t auth_len;
	bool auth_seen, auth_long;
	bool bad_token;               /* 401: a token, but not one of tokens_file */
	char sender[TOKEN_NAME_MAX + 1]; /* its token's sender, or its certificate's CN */
	uint64_t retry_s;             /* 429: Retry-After */
	uint64_t body_seen;           /* body bytes received, as sent */
	int status;                   /* an error answer decided on the way; 0 if none */
	char error[INTAKE_ERROR_MAX]; /* its text */
	bool early;                   /* answer before the body is read (then close) */
	bool keep_alive;
	struct intake *in;
	uint64_t received_ns;         /* the time of events without a ts */
	uint64_t charged;             /* taken from memory for this request */
	uint64_t want;                /* what it has to take before its body is read */
	bool admit_wait;              /* no memory: WAITING follows the head */
	unsigned body_flags;          /* INTAKE_* of its body */
	bool has_body;

	/* The answer. */
	char head[512];
	struct buf out;
	bool close_after;

	/* The owner's data area (data_size bytes): last, aligned for anything. */
	max_align_t data[];
};

TAILQ_HEAD(httpd_conn_list, httpd_conn);

struct httpd {
	uv_loop_t *loop;
	struct httpd_options o;
	struct tls_config_options tls_o; /* o.tls points here */
	const struct httpd_callbacks *cb;
	struct httpd_listener *listeners;
	size_t nlisteners;
	uv_idle_t idle;               /* runs the work queue */
	bool idle_open;
	struct httpd_conn_list conns, work;
	struct httpd_conn_list idlers; /* idle connections, the longest idle first */
	size_t nconns;
	size_t handles;               /* open uv handles; hs is freed at 0 once stopping */
	bool verify_client;           /* TLS with client certificates */
	struct token_set *tokens;     /* tokens_file's; NULL: anyone may post */
	struct tls_config *tls;       /* for new connections; NULL: plain HTTP */
	bool limited;                 /* any of o.limits is set */
	bool stopping;
	void (*done)(void *ctx);
	void *done_ctx;
	struct httpd_stats stats;
};

static void httpd_conn_parse(struct httpd_conn *c);
static void httpd_on_handle_closed(uv_handle_t *h);
static void httpd_conn_unqueue(struct httpd_conn *c);
static void httpd_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void httpd_conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void httpd_conn_close(struct httpd_conn *c);
static int httpd_conn_rate(struct httpd_conn *c, bool take, uint64_t events, uint64_t bytes);

/* ---------------------------------------------------------------- helpers */

static void *
httpd_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	/* docs/style.md: out of memory is not a peer's fault; abort loudly. */
	if (p == NULL) {
		log_error("out of memory in the http source");
		abort();
	}
	return p;
}

static uint64_t
httpd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *
httpd_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 429: return "Too Many Requests";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* Copies v without the blanks around it into out (NUL-terminated). */
static void
httpd_trim_copy(char *out, size_t outlen, const char *v)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* The body kind of a Content-Type value: 0 (JSON), INTAKE_NDJSON, or -1. */
static int
httpd_media_type(const char *v)
{
	size_t n = strcspn(v, ";");

	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n == 16 && strncasecmp(v, "application/json", 16) == 0)
		return 0;
	if (n == 20 && strncasecmp(v, "application/x-ndjson", 20) == 0)
		return INTAKE_NDJSON;
	return -1;
}

/* INTAKE_GZIP or 0 for a Content-Encoding value, or -1. */
static int
httpd_encoding(const char *v)
{
	if (v[0] == '\0' || strcasecmp(v, "identity") == 0)
		return 0;
	if (strcasecmp(v, "gzip") == 0 || strcasecmp(v, "x-gzip") == 0)
		return INTAKE_GZIP;
	return -1;
}

/* ---------------------------------------------------------------- handles */

/* Frees hs once it is stopping and its last handle is closed. */
static void
httpd_maybe_done(struct httpd *hs)
{
	void (*done)(void *);
	void *ctx;

	if (!hs->stopping)
		return;
	/* The work queue's handle goes last: connections still answering use it. */
	if (TAILQ_EMPTY(&hs->conns) && hs->idle_open) {
		hs->idle_open = false;
		uv_close((uv_handle_t *)&hs->idle, httpd_on_handle_closed);
		return;   /* its close callback comes back here */
	}
	if (hs->handles > 0)
		return;
	done = hs->done;
	ctx = hs->done_ctx;
	token_set_free(hs->tokens);
	tls_config_unref(hs->tls);
	free(hs->listeners);
	free(hs);
	if (done != NULL)
		done(ctx);
}

static void
httpd_on_handle_closed(uv_handle_t *h)
{
	struct httpd *hs = h->data;

	hs->handles--;
	httpd_maybe_done(hs);
}

static void
httpd_on_listener_closed(uv_handle_t *h)
{
	struct httpd_listener *l = h->data;

	l->hs->handles--;
	httpd_maybe_done(l->hs);
}

/* ---------------------------------------------------------------- state */

static void
httpd_conn_reading(struct httpd_conn *c, bool on)
{
	int r;

	if (on == c->reading)
		return;
	c->reading = on;
	if (c->tls != NULL) {
		/* TCP pushes back on the client as uv_read_stop does for plain HTTP. */
		if (on)
			tls_conn_resume_reading(c->tls);
		else
			tls_conn_pause_reading(c->tls);
		return;
	}
	if (!on) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		return;
	}
	if ((r = uv_read_start((uv_stream_t *)&c->tcp, httpd_conn_alloc, httpd_conn_on_read)) != 0) {
		/* Never: the stream is open and not reading. */
		log_error("%s: cannot read from %s: %s; closing", c->hs->o.label, c->peer,
		    uv_strerror(r));
		c->reading = false;
		httpd_conn_close(c);
	}
}

/*
 * c is idle (connected, between requests) or not. When every slot is in
 * use, the connection idle the longest is closed to admit a new one: an
 * idle keep-alive client costs nothing to send away, and otherwise a few
 * hundred of them keep every other client out for idle_timeout.
 */
static void
httpd_conn_idle(struct httpd_conn *c, bool on)
{
	struct httpd *hs = c->hs;

	if (on == c->idle)
		return;
	c->idle = on;
	if (on)
		TAILQ_INSERT_TAIL(&hs->idlers, c, idle_link);
	else
		TAILQ_REMOVE(&hs->idlers, c, idle_link);
}

/* Moves c to state s, checking the transition (a wrong one is a bug). */
static void
httpd_conn_set_state(struct httpd_conn *c, enum httpd_conn_state s)
{
	if (s != HTTPD_CONN_CLOSING && !(httpd_conn_next[c->state] & HTTPD_TO(s))) {
		log_error("%s: %s: connection state %s cannot become %s", c->hs->o.label,
		    c->peer, httpd_conn_state_names[c->state], httpd_conn_state_names[s]);
		abort();
	}
	if (c->state == HTTPD_CONN_CLOSING)
		abort();
	log_debug("%s: %s: %s -> %s", c->hs->o.label, c->peer,
	    httpd_conn_state_names[c->state], httpd_conn_state_names[s]);
	c->state = s;
	/* Only these two states have work for the queue. */
	if (s != HTTPD_CONN_CHECKING && s != HTTPD_CONN_OWNED)
		httpd_conn_unqueue(c);
	if (s != HTTPD_CONN_WAITING && c->hs->cb->cancel != NULL)
		c->hs->cb->cancel(c->hs->o.ctx, c);
	c->waited = false;
	if (s != HTTPD_CONN_READING)
		httpd_conn_idle(c, false);
	/* A connection reads only between requests and while draining. */
	if (s != HTTPD_CONN_READING && s != HTTPD_CONN_LINGERING && s != HTTPD_CONN_CLOSING)
		httpd_conn_reading(c, false);
	uv_timer_stop(&c->timer);
}

static void httpd_conn_timed_out(struct httpd_conn *c);

static void
httpd_conn_on_timer(uv_timer_t *t)
{
	struct httpd_conn *c = t->data;
	struct httpd *hs = c->hs;

	/* A request waited request_timeout (while stopping: the grace is over). */
	if (!hs->stopping && (c->state == HTTPD_CONN_WAITING || c->state == HTTPD_CONN_OWNED)) {
		httpd_conn_timed_out(c);
		return;
	}
	if (c->state == HTTPD_CONN_READING || c->state == HTTPD_CONN_WRITING) {
		hs->stats.timeouts++;
		log_debug("%s: %s: no data for %" PRIu64 " ms; closing", hs->o.label,
		    c->peer, hs->o.idle_timeout_ms);
	} else if (c->state != HTTPD_CONN_LINGERING) {
		log_warn("%s: %s: stopping before the answer to its request was ready; "
		    "closing (the client will retry; its events may then be %s twice)",
		    hs->o.label, c->peer, hs->o.stored);
	}
	httpd_conn_close(c);
}

/* Arms c's timer; while stopping, no wait is longer than the stop's grace. */
static void
httpd_conn_timer(struct httpd_conn *c, uint64_t ms)
{
	if (c->hs->stopping && ms > HTTPD_STOP_GRACE_MS)
		ms = HTTPD_STOP_GRACE_MS;
	uv_timer_start(&c->timer, httpd_conn_on_timer, ms, 0);
}

/* One of c's handles (its timer, its TCP or TLS connection) is closed. */
static void
httpd_conn_handle_closed(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;

	hs->handles--;
	if (--c->closing > 0)
		return;
	intake_free(c->in);
	buf_free(&c->out);
	free(c);
	httpd_maybe_done(hs);
}

static void
httpd_conn_on_closed(uv_handle_t *h)
{
	httpd_conn_handle_closed(h->data);
}

static void
httpd_conn_unqueue(struct httpd_conn *c)
{
	if (!c->queued)
		return;
	TAILQ_REMOVE(&c->hs->work, c, work);
	c->queued = false;
}

/* The request's body is freed: its bytes go back to the memory hook. */
static void
httpd_conn_uncharge(struct httpd_conn *c)
{
	uint64_t n = c->charged;

	if (n == 0)
		return;
	if (c->in != NULL)
		intake_release(c->in);
	c->charged = 0;
	c->hs->cb->give(c->hs->o.ctx, n);
}

static void
httpd_conn_close(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;

	if (c->state == HTTPD_CONN_CLOSING)
		return;
	if (c->state == HTTPD_CONN_OWNED)
		hs->cb->on_abandon(hs->o.ctx, c);
	httpd_conn_set_state(c, HTTPD_CONN_CLOSING);
	httpd_conn_unqueue(c);
	httpd_conn_uncharge(c);
	TAILQ_REMOVE(&hs->conns, c, link);
	hs->nconns--;
	hs->stats.connections_open--;
	c->closing = 2;
	if (c->tls == NULL)
		uv_close((uv_handle_t *)&c->tcp, httpd_conn_on_closed);
	else if (c->tls_open)
		tls_conn_abort(c->tls, 0);   /* its on_close counts the handle closed */
	uv_close((uv_handle_t *)&c->timer, httpd_conn_on_closed);
	httpd_maybe_done(hs);
}

/* ---------------------------------------------------------------- work queue */

static void httpd_conn_work(struct httpd_conn *c);

static void
httpd_on_idle(uv_idle_t *h)
{
	struct httpd *hs = h->data;
	struct httpd_conn *c;
	size_t n = 0;

	/* One step for each connection queued now; those that queue again go next turn. */
	TAILQ_FOREACH(c, &hs->work, work)
		n++;
	while (n-- > 0 && (c = TAILQ_FIRST(&hs->work)) != NULL) {
		httpd_conn_unqueue(c);
		httpd_conn_work(c);
	}
	if (TAILQ_EMPTY(&hs->work))
		uv_idle_stop(h);
}

void
httpd_conn_queue(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;

	if (!c->queued) {
		TAILQ_INSERT_TAIL(&hs->work, c, work);
		c->queued = true;
	}
	if (hs->idle_open && !uv_is_active((uv_handle_t *)&hs->idle))
		uv_idle_start(&hs->idle, httpd_on_idle);
}

/* ---------------------------------------------------------------- answers */

static void
httpd_conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct httpd_conn *c = req->data;

	if (status < 0 && c->state != HTTPD_CONN_CLOSING)
		httpd_conn_close(c);
}

/*
 * Closes after an answer: the write side first, then what the client
 * still sends is read and dropped for a while, so that its unread bytes
 * do not make the kernel reset the connection before it read the answer.
 */
static void
httpd_conn_linger(struct httpd_conn *c)
{
	httpd_conn_set_state(c, HTTPD_CONN_LINGERING);
	httpd_conn_timer(c, HTTPD_LINGER_MS);
	if (c->tls != NULL) {
		/* close_notify after the answer, then the client's close, within the linger. */
		tls_conn_close(c->tls);
		return;
	}
	c->sreq.data = c;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, httpd_conn_on_shutdown) != 0) {
		httpd_conn_close(c);
		return;
	}
	httpd_conn_reading(c, true);
}

/* The answer is written (plain HTTP) or queued for TLS: the next request, or close. */
static void
httpd_conn_answered(struct httpd_conn *c)
{
	if (c->close_after) {
		httpd_conn_linger(c);
		return;
	}
	/* Ready for the next request: its bytes may already be here. */
	if (c->in != NULL)
		intake_release(c->in);
	httpd_conn_uncharge(c);
	httpd_conn_set_state(c, HTTPD_CONN_READING);
	httpd_conn_idle(c, true);
	httpd_conn_timer(c, c->hs->o.idle_timeout_ms);
	httpd_conn_parse(c);
}

static void
httpd_conn_on_written(uv_write_t *w, int status)
{
	struct httpd_conn *c = w->data;

	if (c->state == HTTPD_CONN_CLOSING)
		return;
	if (status < 0) {
		log_debug("%s: %s: writing the answer failed: %s", c->hs->o.label, c->peer,
		    uv_strerror(status));
		httpd_conn_close(c);
		return;
	}
	httpd_conn_answered(c);
}

/*
 * Sends b[0, n): plain HTTP writes the buffers as they are (cb follows);
 * HTTPS encrypts them into the connection's send buffer, all or none, and
 * calls nothing. Returns 0, -EAGAIN (HTTPS: no room now; on_writable
 * follows), or another negative error.
 */
static int
httpd_conn_send(struct httpd_conn *c, uv_write_t *req, const uv_buf_t *b, unsigned n, uv_write_cb cb)
{
	size_t total = 0;
	int r;

	if (c->tls == NULL) {
		req->data = c;
		return uv_write(req, (uv_stream_t *)&c->tcp, b, n, cb);
	}
	for (unsigned i = 0; i < n; i++)
		total += b[i].len;
	if (tls_conn_write_space(c->tls) < total)
		return -EAGAIN;
	for (unsigned i = 0; i < n; i++)
		if ((r = tls_conn_write(c->tls, b[i].base, b[i].len)) != 0)
			return r;
	return 0;
}

/* Sends the answer httpd_conn_write prepared. */
static void
httpd_conn_send_answer(struct httpd_conn *c)
{
	uv_buf_t b[2];
	int r;

	b[0] = uv_buf_init(c->head, (unsigned)c->head_len);
	b[1] = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
	r = httpd_conn_send(c, &c->wreq, b, c->out.len ? 2 : 1, httpd_conn_on_written);
	if (r == -EAGAIN) {
		/* A client sending requests without reading answers: it waits, up to idle_timeout. */
		c->send_wait = true;
		return;
	}
	if (r != 0) {
		log_debug("%s: %s: cannot write the answer: %s", c->hs->o.label, c->peer,
		    c->tls != NULL ? tls_strerror(r) : uv_strerror(r));
		httpd_conn_close(c);
		return;
	}
	if (c->tls != NULL) {
		/* Not from inside the caller: the next pipelined request would recurse. */
		c->sent = true;
		httpd_conn_queue(c);
	}
}

/* Writes the answer: status, extra header lines, and c->out as its JSON body. */
static void
httpd_conn_write(struct httpd_conn *c, int status, const char *extra)
{
	struct httpd *hs = c->hs;
	const char *conn = "";
	int n;

	c->close_after = !c->keep_alive || hs->stopping;
	if (c->close_after)
		conn = "Connection: close\r\n";
	else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
		conn = "Connection: keep-alive\r\n";
	n = snprintf(c->head, sizeof(c->head), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s\r\n",
	    status, httpd_reason(status), c->out.len, extra, conn);
	if (n < 0 || (size_t)n >= sizeof(c->head))
		abort();   /* the head is ours and fits */
	c->head_len = (size_t)n;
	hs->stats.requests++;
	httpd_conn_set_state(c, HTTPD_CONN_WRITING);
	httpd_conn_timer(c, hs->o.idle_timeout_ms);
	httpd_conn_send_answer(c);
}

void
httpd_conn_ok(struct httpd_conn *c, size_t events)
{
	if (events > 0) {
		c->hs->stats.accepted++;
		c->hs->stats.events += events;
	}
	httpd_conn_write(c, 200, "");
}

struct buf *
httpd_conn_body(struct httpd_conn *c)
{
	buf_reset(&c->out);
	return &c->out;
}

/* Answers c->status with c->error, counting and logging it. */
static void
httpd_conn_refuse(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;
	struct httpd_stats *st = &hs->stats;
	const char *extra = "", *name = hs->o.label, *advice;
	char retry[48], text[160];

	buf_reset(&c->out);
	if (jsonw_raw(&c->out, "{\"error\":") != 0 || jsonw_cstring(&c->out, c->error) != 0 ||
	    jsonw_raw(&c->out, "}") != 0) {
		buf_reset(&c->out);
		if (jsonw_raw(&c->out, "{\"error\":") != 0 ||
		    jsonw_cstring(&c->out, httpd_reason(c->status)) != 0 || jsonw_raw(&c->out, "}") != 0)
			abort();
	}
	switch (c->status) {
	case 400:
		st->bad_requests++;
		snprintf(text, sizeof(text), "nothing of the request was %s; the client must fix it",
		    hs->o.stored);
		advice = text;
		break;
	case 401:
		st->unauthorized++;
		extra = c->bad_token ? "WWW-Authenticate: Bearer realm=\"logferry\", "
		    "error=\"invalid_token\"\r\n" : "WWW-Authenticate: Bearer realm=\"logferry\"\r\n";
		snprintf(text, sizeof(text), "nothing of it was read or %s; the client needs a token "
		    "of %.80s", hs->o.stored, hs->o.tokens_file);
		advice = text;
		break;
	case 429:
		st->rate_limited++;
		snprintf(retry, sizeof(retry), "Retry-After: %" PRIu64 "\r\n", c->retry_s);
		extra = retry;
		advice = "the sender must slow down, or its limits be raised";
		break;
	case 403:
		st->forbidden++;
		snprintf(text, sizeof(text), "nothing of it was read or %s; give the client a "
		    "certificate whose common name tls.allowed_cns allows, or allow it", hs->o.stored);
		advice = text;
		break;
	case 404:
		st->not_found++;
		advice = "fix the client's URL";
		break;
	case 405:
		st->bad_method++;
		extra = "Allow: POST\r\n";
		advice = "the client must POST";
		break;
	case 413:
		st->too_large++;
		advice = "the client must send smaller requests, or raise max_body_size";
		break;
	case 415:
		st->bad_type++;
		advice = "fix the client's Content-Type or Content-Encoding";
		break;
	case 431:
		st->headers_too_large++;
		advice = "the client must send fewer or smaller headers";
		break;
	case 503:
		/* Its own call site: client errors must not rate-limit the operator's warning away. */
		st->unavailable_503++;
		log_warn("%s: answered 503 to %s: %s; the client retries", name, c->peer,
		    c->error);
		httpd_conn_write(c, c->status, "Retry-After: 1\r\n");
		return;
	default:
		st->errors_500++;
		log_error("%s: answered %d to %s: %s; the client retries; check the %s's "
		    "messages above", name, c->status, c->peer, c->error, hs->o.daemon);
		httpd_conn_write(c, c->status, extra);
		return;
	}
	log_warn("%s: answered %d to %s: %s; %s", name, c->status, c->peer, c->error, advice);
	httpd_conn_write(c, c->status, extra);
}

static void httpd_conn_error(struct httpd_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the error answer of c (it is written by httpd_conn_refuse). */
static void
httpd_conn_error(struct httpd_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	c->status = status;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

void
httpd_conn_fail(struct httpd_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	c->status = status;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	httpd_conn_refuse(c);
}

void
httpd_conn_close_after(struct httpd_conn *c)
{
	c->keep_alive = false;
}

/* A request waited request_timeout: for memory (503 here), or in its owner's hands. */
static void
httpd_conn_timed_out(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;

	hs->stats.request_timeouts++;
	if (c->state == HTTPD_CONN_WAITING) {
		/* Its body is unread: the connection cannot go on after the answer. */
		c->keep_alive = false;
		hs->stats.budget_refused++;
		httpd_conn_error(c, 503, "the %s's memory_limit share for request bodies stayed in "
		    "use by other requests for request_timeout (%" PRIu64 " ms): retry later (or "
		    "raise memory_limit, or lower max_body_size)", hs->o.daemon,
		    hs->o.request_timeout_ms);
		httpd_conn_refuse(c);
		return;
	}
	hs->cb->on_timeout(hs->o.ctx, c);
}

void
httpd_conn_wait(struct httpd_conn *c, bool restart)
{
	if (restart || !c->waited)
		httpd_conn_timer(c, c->hs->o.request_timeout_ms);
	c->waited = true;
}

static int httpd_conn_begin_body(struct httpd_conn *c);

static void
httpd_conn_work(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;
	int r;

	if (c->state == HTTPD_CONN_WRITING) {
		if (c->sent) {
			c->sent = false;
			httpd_conn_answered(c);
		}
		return;
	}
	if (c->state == HTTPD_CONN_WAITING) {
		/* Bytes came back: they may not be enough, or taken first by another. */
		if (hs->cb->take(hs->o.ctx, c->want) != 0) {
			hs->cb->wait(hs->o.ctx, c);
			return;
		}
		c->charged = c->want;
		c->admit_wait = false;
		httpd_conn_set_state(c, HTTPD_CONN_READING);
		httpd_conn_timer(c, hs->o.idle_timeout_ms);
		if (httpd_conn_begin_body(c) != 0) {
			httpd_conn_close(c);
			return;
		}
		httpd_conn_parse(c);
		return;
	}
	if (c->state == HTTPD_CONN_CHECKING) {
		if ((r = intake_check(c->in, HTTPD_WORK)) == 1) {
			httpd_conn_queue(c);
			return;
		}
		if (r < 0) {
			httpd_conn_error(c, 400, "%s", intake_error(c->in));
			httpd_conn_refuse(c);
			return;
		}
		if (intake_events(c->in) == 0) {
			if (jsonw_raw(httpd_conn_body(c), "{\"accepted\":0}") != 0)
				abort();   /* a few bytes in 4 KiB */
			httpd_conn_ok(c, 0);
			return;
		}
		if (httpd_conn_rate(c, true, intake_events(c->in), c->body_seen) != 0) {
			httpd_conn_refuse(c);
			return;
		}
		httpd_conn_set_state(c, HTTPD_CONN_OWNED);
		hs->cb->on_request(hs->o.ctx, c);
		return;
	}
	if (c->state == HTTPD_CONN_OWNED)
		hs->cb->on_work(hs->o.ctx, c);
}

/*
 * Memory came back. The owner's hook runs inside whoever gave it (the end
 * of another request): the retry goes through the work queue instead.
 */
void
httpd_conn_memory_freed(struct httpd_conn *c)
{
	if (c->state == HTTPD_CONN_WAITING)
		httpd_conn_queue(c);
}

/* The head of a request asked for more memory than is free: it waits. */
static void
httpd_conn_wait_budget(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;

	httpd_conn_set_state(c, HTTPD_CONN_WAITING);
	hs->stats.budget_waits++;
	log_debug("%s: %s: waiting for %" PRIu64 " bytes of memory_limit's share for its "
	    "body", hs->o.label, c->peer, c->want);
	hs->cb->wait(hs->o.ctx, c);
	httpd_conn_timer(c, hs->o.request_timeout_ms);
}

/* ---------------------------------------------------------------- parsing */

/* The whole request is read (the parser is paused after it). */
static void
httpd_conn_request(struct httpd_conn *c)
{
	int r;

	c->received_ns = httpd_now_ns();
	if (c->status != 0) {
		httpd_conn_refuse(c);
		return;
	}
	if ((r = intake_end(c->in)) != 0) {
		if (r == -EMSGSIZE) {
			c->keep_alive = false;
			httpd_conn_error(c, 413, "the request body is larger than max_body_size "
			    "(%" PRIu64 " bytes) once decoded", c->hs->o.max_body_size);
		} else {
			httpd_conn_error(c, 400, "%s", intake_error(c->in));
		}
		httpd_conn_refuse(c);
		return;
	}
	httpd_conn_set_state(c, HTTPD_CONN_CHECKING);
	httpd_conn_queue(c);
}

static struct httpd_conn *
httpd_conn_of(http_parser *p)
{
	return p->data;
}

static int
httpd_on_message_begin(http_parser *p)
{
	struct httpd_conn *c = httpd_conn_of(p);

	c->head_bytes = 0;
	c->url[0] = '\0';
	c->url_len = 0;
	c->url_long = false;
	c->hstate = 0;
	c->ctype[0] = c->cenc[0] = '\0';
	c->ctype_seen = c->ctype_long = c->cenc_long = c->expect_continue = false;
	c->auth_seen = c->auth_long = c->bad_token = false;
	c->auth_len = 0;
	c->sender[0] = '\0';
	c->retry_s = 0;
	c->body_seen = 0;
	c->status = 0;
	c->error[0] = '\0';
	c->early = false;
	c->keep_alive = false;
	c->admit_wait = false;
	c->want = 0;
	httpd_conn_idle(c, false);
	return 0;
}

/* Counts request-head bytes; beyond HTTPD_HEADER_MAX the request is refused. */
static int
httpd_head_budget(struct httpd_conn *c, size_t n)
{
	c->head_bytes += n;
	if (c->head_bytes <= HTTPD_HEADER_MAX)
		return 0;
	c->keep_alive = false;
	httpd_conn_error(c, 431, "the request line and headers are larger than %d bytes",
	    HTTPD_HEADER_MAX);
	return -1;
}

static int
httpd_on_url(http_parser *p, const char *at, size_t n)
{
	struct httpd_conn *c = httpd_conn_of(p);

	if (httpd_head_budget(c, n) != 0)
		return -1;
	if (c->url_long || n > HTTPD_URL_MAX - c->url_len) {
		c->url_long = true;
		return 0;
	}
	memcpy(c->url + c->url_len, at, n);
	c->url_len += n;
	c->url[c->url_len] = '\0';
	return 0;
}

/* A header is complete: keeps the values we use. */
static void
httpd_header_done(struct httpd_conn *c)
{
	if (c->hstate == 0)
		return;
	c->hstate = 0;
	c->hname[c->hname_len] = '\0';
	c->hval[c->hval_len] = '\0';
	if (c->hname_long)
		return;
	if (strcasecmp(c->hname, "content-type") == 0) {
		c->ctype_seen = true;
		c->ctype_long = c->hval_long || c->hval_len > HTTPD_HVAL_MAX;
		httpd_trim_copy(c->ctype, sizeof(c->ctype), c->hval);
	} else if (strcasecmp(c->hname, "content-encoding") == 0) {
		c->cenc_long = c->hval_long || c->hval_len > HTTPD_HVAL_MAX;
		httpd_trim_copy(c->cenc, sizeof(c->cenc), c->hval);
	} else if (strcasecmp(c->hname, "expect") == 0) {
		char v[32];

		httpd_trim_copy(v, sizeof(v), c->hval);
		c->expect_continue = !c->hval_long && strcasecmp(v, "100-continue") == 0;
	} else if (strcasecmp(c->hname, "authorization") == 0) {
		c->auth_seen = true;
		c->auth_long = c->hval_long;
		memcpy(c->auth, c->hval, c->hval_len);
		c->auth_len = c->hval_len;
		explicit_bzero(c->hval, c->hval_len);
	}
}

static int
httpd_on_header_field(http_parser *p, const char *at, size_t n)
{
	struct httpd_conn *c = httpd_conn_of(p);

	/* ": " and CRLF around each header count too. */
	if (httpd_head_budget(c, n + (c->hstate != 1 ? 4 : 0)) != 0)
		return -1;
	if (c->hstate == 2)
		httpd_header_done(c);
	if (c->hstate == 0) {
		c->hstate = 1;
		c->hname_len = c->hval_len = 0;
		c->hname_long = c->hval_long = false;
	}
	if (c->hname_long || n > HTTPD_HNAME_MAX - c->hname_len) {
		c->hname_long = true;
		return 0;
	}
	memcpy(c->hname + c->hname_len, at, n);
	c->hname_len += n;
	return 0;
}

static int
httpd_on_header_value(http_parser *p, const char *at, size_t n)
{
	struct httpd_conn *c = httpd_conn_of(p);

	if (httpd_head_budget(c, n) != 0)
		return -1;
	c->hstate = 2;
	if (c->hval_long || n > HTTPD_AUTH_MAX - c->hval_len) {
		c->hval_long = true;
		return 0;
	}
	memcpy(c->hval + c->hval_len, at, n);
	c->hval_len += n;
	return 0;
}

static void
httpd_conn_on_continued(uv_write_t *w, int status)
{
	struct httpd_conn *c = w->data;

	if (status < 0 && c->state != HTTPD_CONN_CLOSING)
		httpd_conn_close(c);
}

/*
 * What the body will hold, to take from the budget: a buffer that doubles
 * as it grows reaches twice the length at most, and never max_body_size;
 * an unknown decoded size (UINT64_MAX) takes max_body_size. Plus what the
 * intake keeps beside it (inflate state, one object's parse).
 */
static uint64_t
httpd_conn_need(const struct httpd_conn *c, uint64_t length)
{
	uint64_t max = c->hs->o.max_body_size;
	uint64_t n = length > max / 2 ? max : 2 * length;

	return n + HTTPD_BODY_OVERHEAD;
}

/* The body may be read: the intake starts, and a client that asked is told to send it. */
static int
httpd_conn_begin_body(struct httpd_conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct httpd *hs = c->hs;

	if (c->in == NULL) {
		struct intake_options o = {
			.max_body = hs->o.max_body_size,
			.host = hs->o.host,
			.stream = hs->o.stream,
			.source = c->l->source,
		};

		if (intake_new(&o, &c->in) != 0)
			abort();   /* out of memory */
	}
	intake_begin(c->in, c->body_flags);
	intake_set_sender(c->in, hs->tokens != NULL || hs->verify_client ? c->sender :
	    NULL);
	if (c->expect_continue && c->has_body) {
		uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);

		if (httpd_conn_send(c, &c->creq, &b, 1, httpd_conn_on_continued) != 0)
			return -1;
	}
	return 0;
}

/*
 * Takes what the request's body needs from the budget, if any. Returns 0
 * (taken, or no budget or no body), 1 when the request is to wait for
 * bytes to come back, or -ENOBUFS when it could never fit.
 */
static int
httpd_conn_admit(struct httpd_conn *c, uint64_t length)
{
	struct httpd *hs = c->hs;

	if (hs->cb->take == NULL || !c->has_body)
		return 0;
	c->want = httpd_conn_need(c, length);

	if (c->want > hs->cb->limit(hs->o.ctx))
		return -ENOBUFS;
	if (hs->cb->take(hs->o.ctx, c->want) != 0)
		return 1;
	c->charged = c->want;
	return 0;
}

/*
 * The sender of the request, by its bearer token, when tokens_file is set.
 * Returns 0, or -EACCES with the 401 set. The token is looked up now, in
 * the loop turn that admits the request: a reload may free the set after.
 */
static int
httpd_conn_authenticate(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;
	const struct token_sender *t = NULL;
	const uint8_t *tok = NULL;
	size_t len = 0;
	int r;

	if (hs->tokens == NULL) {
		/* With client certificates and no tokens, the certificate names the sender. */
		if (hs->verify_client)
			snprintf(c->sender, sizeof(c->sender), "%s", c->cn);
		return 0;
	}
	r = !c->auth_seen || c->auth_long ? -EINVAL : token_bearer(c->auth, c->auth_len, &tok, &len);
	if (r == 0)
		t = token_set_find(hs->tokens, tok, len);
	explicit_bzero(c->auth, c->auth_len);
	if (r != 0) {
		httpd_conn_error(c, 401, "this %s needs an Authorization: Bearer token, and the "
		    "request has %s", hs->o.daemon, !c->auth_seen ? "none" :
		    "another kind of Authorization");
		return -EACCES;
	}
	if (t == NULL) {
		c->bad_token = true;
		httpd_conn_error(c, 401, "unknown token: it is not in the %s's tokens_file (or "
		    "was removed from it)", hs->o.daemon);
		return -EACCES;
	}
	snprintf(c->sender, sizeof(c->sender), "%s", token_sender_name(t));
	return 0;
}

/*
 * Whether c's sender is within its rate limits for a request of `events`
 * events and `bytes` body bytes: take (the whole request, once checked) or
 * only look (its head). Returns 0, or -EAGAIN with the 429 set. A sender
 * gone from the tokens since its head was read (a reload) is not limited.
 */
static int
httpd_conn_rate(struct httpd_conn *c, bool take, uint64_t events, uint64_t bytes)
{
	struct httpd *hs = c->hs;
	struct token_sender *t;
	uint64_t now = uv_hrtime(), retry_ms = 0;

	if (!hs->limited || hs->tokens == NULL ||
	    (t = token_set_sender(hs->tokens, c->sender)) == NULL)
		return 0;
	if (take ? token_admit(t, &hs->o.limits, events, bytes, now, &retry_ms) :
	    token_ready(t, &hs->o.limits, events, bytes, now, &retry_ms))
		return 0;
	c->retry_s = (retry_ms + 999) / 1000;
	httpd_conn_error(c, 429, "sender %s is over its rate limit (auth: %" PRIu64 " events/s, "
	    "%" PRIu64 " bytes/s; 0 is none): nothing of the request was %s; retry after "
	    "%" PRIu64 " s", c->sender, hs->o.limits.events_per_s, hs->o.limits.bytes_per_s,
	    hs->o.stored, c->retry_s);
	return -EAGAIN;
}

/* Decides what to do with the request before its body: an early answer, wait, or read it. */
static int
httpd_on_headers_complete(http_parser *p)
{
	struct httpd_conn *c = httpd_conn_of(p);
	struct httpd *hs = c->hs;
	size_t plen = strcspn(c->url, "?#");
	bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
	bool has_body = (p->flags & F_CHUNKED) || (has_length && p->content_length > 0);
	int kind = 0, enc = 0, r = 0;

	httpd_header_done(c);
	c->has_body = has_body;
	c->keep_alive = http_should_keep_alive(p) != 0;
	if (c->url_long || plen != strlen(hs->o.path) || memcmp(c->url, hs->o.path, plen) != 0) {
		httpd_conn_error(c, 404, "no such path '%.64s%s': events are posted to %s", c->url,
		    c->url_long ? "..." : "", hs->o.path);
	} else if (p->method != HTTP_POST) {
		httpd_conn_error(c, 405, "method %s is not allowed on %s: use POST",
		    http_method_str((enum http_method)p->method), hs->o.path);
	} else if (c->cn_refused != NULL) {
		httpd_conn_error(c, 403, "client certificate%s%s%s %s", c->cn[0] != '\0' ? " '" : "",
		    c->cn, c->cn[0] != '\0' ? "'" : "", c->cn_refused);
	} else if (httpd_conn_authenticate(c) != 0) {
		/* Its status is set: nothing of it is read or charged. */
	} else if (httpd_conn_rate(c, false, 1, has_length ? (uint64_t)p->content_length : 0) != 0) {
		/* A sender with nothing left is refused before its body too. */
	} else if (!c->ctype_seen || c->ctype_long || (kind = httpd_media_type(c->ctype)) < 0) {
		httpd_conn_error(c, 415, "Content-Type '%.64s' is not supported: use "
		    "application/json (one object) or application/x-ndjson (one object per line)",
		    c->ctype_seen ? c->ctype : "");
	} else if (c->cenc_long || (enc = httpd_encoding(c->cenc)) < 0) {
		httpd_conn_error(c, 415, "Content-Encoding '%.64s' is not supported: use gzip, or none",
		    c->cenc);
	} else if (has_length && p->content_length > hs->o.max_body_size) {
		c->keep_alive = false;
		httpd_conn_error(c, 413, "the request body (%" PRIu64 " bytes) is larger than "
		    "max_body_size (%" PRIu64 " bytes)", (uint64_t)p->content_length,
		    hs->o.max_body_size);
	} else if ((r = httpd_conn_admit(c, has_length && enc == 0 ?
	    (uint64_t)p->content_length : UINT64_MAX)) < 0) {
		hs->stats.budget_refused++;
		httpd_conn_error(c, 503, "the request needs %" PRIu64 " bytes for its body, more "
		    "than the %s's memory_limit share for request bodies: raise memory_limit, or "
		    "lower max_body_size", c->want, hs->o.daemon);
	}
	if (c->status != 0) {
		/* A body would be read only to be dropped: answer now and close instead. */
		if (has_body) {
			c->early = true;
			c->keep_alive = false;
			http_parser_pause(p, 1);
		}
		return 0;
	}
	c->body_flags = (unsigned)(kind | enc);
	if (r == 1) {
		/* The parser stops here; it goes on from the body once the budget has room. */
		c->admit_wait = true;
		http_parser_pause(p, 1);
		return 0;
	}
	return httpd_conn_begin_body(c);
}

static int
httpd_on_body(http_parser *p, const char *at, size_t n)
{
	struct httpd_conn *c = httpd_conn_of(p);
	struct httpd *hs = c->hs;
	int r;

	hs->stats.body_bytes += n;
	c->body_seen += n;
	/* Chunked bodies have no length to refuse up front: they stop here. */
	if (c->body_seen > hs->o.max_body_size) {
		c->keep_alive = false;
		httpd_conn_error(c, 413, "the request body is larger than max_body_size "
		    "(%" PRIu64 " bytes)", hs->o.max_body_size);
		return -1;
	}
	if (c->status != 0)
		return 0;   /* a broken gzip body: read to its end, answered 400 after it */
	if ((r = intake_feed(c->in, (const uint8_t *)at, n)) == 0)
		return 0;
	if (r == -EMSGSIZE) {
		c->keep_alive = false;
		httpd_conn_error(c, 413, "the request body is larger than max_body_size "
		    "(%" PRIu64 " bytes) once decoded", hs->o.max_body_size);
		return -1;
	}
	httpd_conn_error(c, 400, "%s", intake_error(c->in));
	return 0;
}

static int
httpd_on_message_complete(http_parser *p)
{
	/* One request at a time: the parser stops here until it is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings httpd_settings = {
	.on_message_begin = httpd_on_message_begin,
	.on_url = httpd_on_url,
	.on_header_field = httpd_on_header_field,
	.on_header_value = httpd_on_header_value,
	.on_headers_complete = httpd_on_headers_complete,
	.on_body = httpd_on_body,
	.on_message_complete = httpd_on_message_complete,
};

/* Parses what was read, up to the end of the next request. */
static void
httpd_conn_parse(struct httpd_conn *c)
{
	enum http_errno e;
	size_t n;

	while (c->state == HTTPD_CONN_READING && c->rpos < c->rlen) {
		n = http_parser_execute(&c->parser, &httpd_settings, (const char *)c->rbuf + c->rpos,
		    c->rlen - c->rpos);
		c->rpos += n;
		e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			if (c->early)
				httpd_conn_refuse(c);
			else if (c->admit_wait)
				httpd_conn_wait_budget(c);
			else
				httpd_conn_request(c);
			break;
		}
		if (e != HPE_OK || n == 0) {
			/* The parser cannot go on after an error: answer and close. */
			if (c->status == 0)
				httpd_conn_error(c, 400, "malformed HTTP request: %s",
				    http_errno_description(e));
			c->keep_alive = false;
			httpd_conn_refuse(c);
			break;
		}
	}
	if (c->state == HTTPD_CONN_READING && c->rpos == c->rlen) {
		c->rpos = c->rlen = 0;
		httpd_conn_reading(c, true);
	}
}

/* rbuf[0, n) arrived: reading is on only once every byte before is parsed. */
static void
httpd_conn_received(struct httpd_conn *c, size_t n)
{
	c->rpos = 0;
	c->rlen = n;
	httpd_conn_timer(c, c->hs->o.idle_timeout_ms);
	httpd_conn_parse(c);
}

static void
httpd_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct httpd_conn *c = h->data;

	(void)suggested;
	/* Reading happens only once every byte read before is parsed. */
	b->base = (char *)c->rbuf;
	b->len = sizeof(c->rbuf);
}

static void
httpd_conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct httpd_conn *c = s->data;

	(void)b;
	if (n == 0)
		return;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug("%s: %s: %s", c->hs->o.label, c->peer, uv_strerror((int)n));
		httpd_conn_close(c);
		return;
	}
	if (c->state != HTTPD_CONN_READING)
		return;   /* lingering: dropped */
	httpd_conn_received(c, (size_t)n);
}

/* ---------------------------------------------------------------- accepting */

static void
httpd_on_refused_closed(uv_handle_t *h)
{
	struct httpd_refused *x = h->data;
	struct httpd *hs = x->hs;

	free(x);
	hs->handles--;
	httpd_maybe_done(hs);
}

/* Over max_connections: accepted, told 503 if the socket takes it at once, and closed. */
static void
httpd_refuse(struct httpd *hs, uv_stream_t *server)
{
	static const char body[] = "{\"error\":\"too many connections: retry later\"}";
	struct httpd_refused *x = httpd_xcalloc(1, sizeof(*x));
	struct sockaddr_storage a;
	char msg[256], peer[64] = "?";
	int n, len = sizeof(a);
	uv_buf_t b;

	x->hs = hs;
	x->tcp.data = x;
	uv_tcp_init(hs->loop, &x->tcp);
	hs->handles++;
	hs->stats.connections_refused++;
	if (uv_accept(server, (uv_stream_t *)&x->tcp) == 0 &&
	    uv_tcp_getpeername(&x->tcp, (struct sockaddr *)&a, &len) == 0)
		addr_text((const struct sockaddr *)&a, peer, sizeof(peer));
	/* HTTPS: no answer in clear text on a TLS port; just the close. */
	if (hs->tls == NULL) {
		n = snprintf(msg, sizeof(msg), "HTTP/1.1 503 Service Unavailable\r\n"
		    "Content-Type: application/json\r\nContent-Length: %zu\r\nRetry-After: 1\r\n"
		    "Connection: close\r\n\r\n%s", sizeof(body) - 1, body);
		b = uv_buf_init(msg, (unsigned)n);
		(void)uv_try_write((uv_stream_t *)&x->tcp, &b, 1);
	}
	log_warn("%s: connection from %s refused: max_connections (%" PRId64 ") are open; "
	    "raise max_connections, or make clients reuse their connections", hs->o.label, peer,
	    hs->o.max_connections);
	uv_close((uv_handle_t *)&x->tcp, httpd_on_refused_closed);
}

/* A new connection waits for its first request, idle until then. */
static void
httpd_conn_begin(struct httpd_conn *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	httpd_conn_timer(c, c->hs->o.idle_timeout_ms);
	httpd_conn_idle(c, true);
}

/* ---------------------------------------------------------------- HTTPS */

/*
 * A verified client certificate whose common name allowed_cns does not
 * allow is answered 403 on each request rather than refused at the
 * handshake: the client learns why, in words, and it is counted.
 */
static void
httpd_conn_check_cn(struct httpd_conn *c)
{
	const struct config_list *allowed = c->hs->o.allowed_cns;
	int r = tls_conn_peer_cn(c->tls, c->cn, sizeof(c->cn));

	if (r != 0) {
		c->cn[0] = '\0';
		c->cn_refused = "has no usable common name (one, printable, at most 64 bytes): it "
		    "cannot name the sender";
		return;
	}
	if (allowed == NULL || allowed->n == 0)
		return;
	for (size_t i = 0; i < allowed->n; i++)
		if (fnmatch(((char **)allowed->items)[i], c->cn, 0) == 0)
			return;
	c->cn_refused = "is not allowed by tls.allowed_cns";
}

static void
httpd_tls_on_handshake(void *ctx, int status)
{
	struct httpd_conn *c = ctx;

	if (status != 0) {
		/* common/tls logged why; its on_close follows. */
		c->hs->stats.handshakes_failed++;
		return;
	}
	/* Answers are small and end a request: send them at once. */
	uv_tcp_nodelay(tls_conn_tcp(c->tls), 1);
	if (c->hs->verify_client)
		httpd_conn_check_cn(c);
}

static void
httpd_tls_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct httpd_conn *c = ctx;

	if (c->state != HTTPD_CONN_READING)
		return;   /* lingering: dropped */
	if (n > sizeof(c->rbuf) || c->rpos != c->rlen) {
		/* Never: a record fits rbuf, and reading resumes only once rbuf is parsed. */
		log_error("%s: %s: %zu TLS bytes arrived with %zu unparsed; closing",
		    c->hs->o.label, c->peer, n, c->rlen - c->rpos);
		httpd_conn_close(c);
		return;
	}
	memcpy(c->rbuf, p, n);
	httpd_conn_received(c, n);
}

static void
httpd_tls_on_writable(void *ctx)
{
	struct httpd_conn *c = ctx;

	if (c->send_wait && c->state == HTTPD_CONN_WRITING) {
		c->send_wait = false;
		httpd_conn_send_answer(c);
	}
}

static void
httpd_tls_on_close(void *ctx, int reason)
{
	struct httpd_conn *c = ctx;

	if (reason != 0)
		log_debug("%s: %s: %s", c->hs->o.label, c->peer, tls_conn_reason(c->tls));
	c->tls_open = false;
	httpd_conn_close(c);
	httpd_conn_handle_closed(c);
}

static const struct tls_conn_callbacks httpd_tls_callbacks = {
	.on_handshake = httpd_tls_on_handshake,
	.on_data = httpd_tls_on_data,
	.on_writable = httpd_tls_on_writable,
	.on_close = httpd_tls_on_close,
};

static void
httpd_on_connection(uv_stream_t *server, int status)
{
	struct httpd_listener *l = server->data;
	struct httpd *hs = l->hs;
	struct sockaddr_storage a;
	struct httpd_conn *c;
	int r, len = sizeof(a);

	if (status < 0) {
		log_warn("%s: accepting a connection on %s failed: %s; going on", hs->o.label,
		    l->source, uv_strerror(status));
		return;
	}
	if (hs->stopping)
		return;
	if (hs->nconns >= (size_t)hs->o.max_connections && (c = TAILQ_FIRST(&hs->idlers)) != NULL) {
		hs->stats.idle_closed++;
		log_debug("%s: closing %s, idle the longest, to admit a new connection: "
		    "max_connections (%" PRId64 ") are open", hs->o.label, c->peer,
		    hs->o.max_connections);
		httpd_conn_close(c);
	}
	if (hs->nconns >= (size_t)hs->o.max_connections) {
		httpd_refuse(hs, server);
		return;
	}
	c = httpd_xcalloc(1, sizeof(*c) + hs->o.data_size);
	c->hs = hs;
	c->l = l;
	c->tcp.data = c;
	c->timer.data = c;
	snprintf(c->peer, sizeof(c->peer), "?");
	buf_init(&c->out, HTTPD_OUT_MAX);
	if (hs->tls != NULL && (r = tls_conn_accept(hs->loop, hs->tls, server, &httpd_tls_callbacks, c,
	    &c->tls)) != 0) {
		log_warn("%s: accepting a connection on %s failed: %s; going on",
		    hs->o.label, l->source, tls_strerror(r));
		buf_free(&c->out);
		free(c);
		return;
	}
	if (hs->tls == NULL)
		uv_tcp_init(hs->loop, &c->tcp);
	uv_timer_init(hs->loop, &c->timer);
	hs->handles += 2;
	TAILQ_INSERT_TAIL(&hs->conns, c, link);
	hs->nconns++;
	hs->stats.connections_open++;
	c->state = HTTPD_CONN_READING;
	if (c->tls != NULL) {
		/* Its handshake runs: requests come once it is done, within handshake_timeout. */
		c->tls_open = true;
		hs->stats.connections++;
		snprintf(c->peer, sizeof(c->peer), "%s", tls_conn_peer(c->tls));
		c->reading = true;
		httpd_conn_begin(c);
		return;
	}
	if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) != 0) {
		log_warn("%s: accepting a connection on %s failed: %s; going on",
		    hs->o.label, l->source, uv_strerror(r));
		httpd_conn_close(c);
		return;
	}
	hs->stats.connections++;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&a, &len) == 0)
		addr_text((const struct sockaddr *)&a, c->peer, sizeof(c->peer));
	/* Answers are small and end a request: send them at once. */
	uv_tcp_nodelay(&c->tcp, 1);
	c->reading = false;
	if ((r = uv_read_start((uv_stream_t *)&c->tcp, httpd_conn_alloc, httpd_conn_on_read)) != 0) {
		log_warn("%s: cannot read from %s: %s; closing", hs->o.label, c->peer,
		    uv_strerror(r));
		httpd_conn_close(c);
		return;
	}
	c->reading = true;
	httpd_conn_begin(c);
}

/* ---------------------------------------------------------------- API */

static int
httpd_listen(struct httpd *hs, struct httpd_listener *l, const struct config_addr *a)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int r, n, len = sizeof(l->addr);

	l->hs = hs;
	l->cfg = a;
	l->tcp.data = l;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", a->port);
	if ((r = getaddrinfo(a->host, port, &hints, &res)) != 0) {
		log_error("%s: cannot listen on %s: %s; use an IP address, or a name that "
		    "resolves", hs->o.label, a->text, gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	if ((r = uv_tcp_init(hs->loop, &l->tcp)) != 0) {
		freeaddrinfo(res);
		return r;
	}
	l->open = true;
	hs->handles++;
	r = uv_tcp_bind(&l->tcp, res->ai_addr, 0);
	freeaddrinfo(res);
	/* libuv reports a bind error (the port in use) at listen. */
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->tcp, HTTPD_BACKLOG, httpd_on_connection);
	if (r == 0)
		r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&l->addr, &len);
	if (r != 0) {
		log_error("%s: cannot listen on %s: %s; is another process using that "
		    "address?", hs->o.label, a->text, uv_strerror(r));
		return r;
	}
	n = snprintf(l->source, sizeof(l->source), "%s://", hs->tls != NULL ? "https" : "http");
	addr_text((const struct sockaddr *)&l->addr, l->source + n, sizeof(l->source) - (size_t)n);
	log_info("%s: listening on %s", hs->o.label, l->source);
	return 0;
}

/* Loads the tokens file into *out, logging what is wrong with it. */
static int
httpd_load_tokens(const struct httpd *hs, struct token_set **out)
{
	char err[512];
	int r;

	if ((r = token_set_load(hs->o.tokens_file, hs->o.max_tokens, out, err,
	    sizeof(err))) != 0) {
		log_error("%s: %s", hs->o.label, err);
		return r;
	}
	log_info("%s: %zu token(s) loaded from %s", hs->o.label, token_set_count(*out),
	    hs->o.tokens_file);
	return 0;
}

int
httpd_start(uv_loop_t *loop, const struct httpd_options *o, struct httpd **out)
{
	struct httpd *hs;
	int r;

	if ((hs = calloc(1, sizeof(*hs))) == NULL ||
	    (hs->listeners = calloc(o->nlisten ? o->nlisten : 1, sizeof(*hs->listeners))) == NULL) {
		free(hs);
		log_error("%s: out of memory", o->label);
		return -ENOMEM;
	}
	hs->o = *o;
	hs->cb = o->cb;
	if (o->tls != NULL) {
		hs->tls_o = *o->tls;
		hs->o.tls = &hs->tls_o;
		hs->verify_client = o->tls->verify_client;
	}
	if ((o->tokens_file != NULL && (r = httpd_load_tokens(hs, &hs->tokens)) != 0) ||
	    (o->tls != NULL && (r = tls_config_load(&hs->tls_o, o->label, &hs->tls)) != 0)) {
		token_set_free(hs->tokens);
		free(hs->listeners);
		free(hs);
		return r;
	}
	hs->loop = loop;
	if (hs->o.idle_timeout_ms == 0)
		hs->o.idle_timeout_ms = HTTPD_IDLE_TIMEOUT_MS;
	if (hs->o.request_timeout_ms == 0)
		hs->o.request_timeout_ms = HTTPD_REQUEST_TIMEOUT_MS;
	hs->limited = hs->o.limits.events_per_s != 0 || hs->o.limits.bytes_per_s != 0;
	TAILQ_INIT(&hs->conns);
	TAILQ_INIT(&hs->work);
	TAILQ_INIT(&hs->idlers);
	uv_idle_init(loop, &hs->idle);
	hs->idle.data = hs;
	hs->idle_open = true;
	hs->handles++;
	for (size_t i = 0; i < o->nlisten; i++) {
		hs->nlisteners++;
		if ((r = httpd_listen(hs, &hs->listeners[i], &o->listen[i])) != 0) {
			httpd_stop(hs, NULL, NULL);
			return r;
		}
	}
	*out = hs;
	return 0;
}

int
httpd_reload(struct httpd *hs)
{
	struct token_set *fresh;
	/* The certificates again, for new connections; open ones keep theirs. */
	int r, rt = hs->tls == NULL ? 0 : tls_config_reload(&hs->tls_o, hs->o.label,
	    hs->stats.connections_open, &hs->tls);

	if (hs->o.tokens_file == NULL)
		return rt;
	if ((r = httpd_load_tokens(hs, &fresh)) != 0) {
		log_error("%s: the tokens of %s stay as they were loaded before; fix the "
		    "file and send SIGHUP again", hs->o.label, hs->o.tokens_file);
		return r;
	}
	/* A sender's rate limits go on where they were: a reload is no reset. */
	token_set_carry(fresh, hs->tokens);
	token_set_free(hs->tokens);
	hs->tokens = fresh;
	return rt;
}

/* At stop: what each connection still owes its client. */
static void
httpd_conn_stop(struct httpd_conn *c)
{
	struct httpd *hs = c->hs;

	switch (c->state) {
	case HTTPD_CONN_READING:
	case HTTPD_CONN_LINGERING:
		httpd_conn_close(c);
		break;
	case HTTPD_CONN_WAITING:
		c->keep_alive = false;   /* its body is unread */
		/* fall through */
	case HTTPD_CONN_CHECKING:
		httpd_conn_fail(c, 503, "the %s is stopping: retry", hs->o.daemon);
		break;
	case HTTPD_CONN_OWNED:
		hs->cb->on_stop(hs->o.ctx, c);
		/* Not answered: it has until the grace's end. */
		if (c->state == HTTPD_CONN_OWNED)
			httpd_conn_timer(c, HTTPD_STOP_GRACE_MS);
		break;
	case HTTPD_CONN_WRITING:
		httpd_conn_timer(c, HTTPD_STOP_GRACE_MS);
		break;
	case HTTPD_CONN_CLOSING:
		break;
	}
}

void
httpd_stop(struct httpd *hs, void (*done)(void *ctx), void *ctx)
{
	struct httpd_conn *c, *next;

	hs->stopping = true;
	hs->done = done;
	hs->done_ctx = ctx;
	for (size_t i = 0; i < hs->nlisteners; i++) {
		struct httpd_listener *l = &hs->listeners[i];

		if (l->open) {
			l->open = false;
			uv_close((uv_handle_t *)&l->tcp, httpd_on_listener_closed);
		}
	}
	for (c = TAILQ_FIRST(&hs->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		httpd_conn_stop(c);
	}
	httpd_maybe_done(hs);
}

bool
httpd_stopping(const struct httpd *hs)
{
	return hs->stopping;
}

int
httpd_address(const struct httpd *hs, size_t i, struct sockaddr_storage *out)
{
	if (i >= hs->nlisteners || !hs->listeners[i].open)
		return -ENOENT;
	*out = hs->listeners[i].addr;
	return 0;
}

void
httpd_get_stats(const struct httpd *hs, struct httpd_stats *st)
{
	*st = hs->stats;
}

struct intake *
httpd_conn_intake(struct httpd_conn *c)
{
	return c->in;
}

uint64_t
httpd_conn_received_ns(const struct httpd_conn *c)
{
	return c->received_ns;
}

const char *
httpd_conn_peer(const struct httpd_conn *c)
{
	return c->peer;
}

const char *
httpd_conn_sender(const struct httpd_conn *c)
{
	return c->sender;
}

void *
httpd_conn_data(struct httpd_conn *c)
{
	return c->data;
}

struct httpd_conn *
httpd_conn_of_data(void *data)
{
	return (struct httpd_conn *)((char *)data - offsetof(struct httpd_conn, data));
}

/* ---------------------------------------------------------------- metrics */

#define HTTPD_F(name, type, member, help) \
	{ "logferry_http_" name, type, help, offsetof(struct httpd_stats, member) }
const struct metrics_field httpd_metrics_fields[HTTPD_METRICS_FIELDS] = {
	HTTPD_F("requests_total", "counter", requests, "Requests answered, whatever the answer."),
	HTTPD_F("requests_accepted_total", "counter", accepted,
	    "Requests answered 200: their events are stored (the agent's spool committed them, or Kafka acknowledged them)."),
	HTTPD_F("events_total", "counter", events, "Events stored for those requests."),
	HTTPD_F("bad_requests_total", "counter", bad_requests,
	    "Requests answered 400: malformed JSON, gzip or HTTP."),
	HTTPD_F("unauthorized_total", "counter", unauthorized,
	    "Requests answered 401: no bearer token, or one not in tokens_file; never stored."),
	HTTPD_F("rate_limited_total", "counter", rate_limited,
	    "Requests answered 429: their sender over its auth rate limits; never stored."),
	HTTPD_F("forbidden_total", "counter", forbidden,
	    "Requests answered 403: a client certificate whose common name tls.allowed_cns does "
	    "not allow; never stored."),
	HTTPD_F("not_found_total", "counter", not_found, "Requests answered 404."),
	HTTPD_F("bad_method_total", "counter", bad_method, "Requests answered 405."),
	HTTPD_F("too_large_total", "counter", too_large,
	    "Requests answered 413: body over max_body_size."),
	HTTPD_F("bad_type_total", "counter", bad_type,
	    "Requests answered 415: Content-Type or Content-Encoding."),
	HTTPD_F("headers_too_large_total", "counter", headers_too_large,
	    "Requests answered 431."),
	HTTPD_F("unavailable_total", "counter", unavailable_503,
	    "Requests answered 503: no room (a full spool, librdkafka's queue), a failed or late Kafka delivery, request_timeout, or stopping."),
	HTTPD_F("memory_refused_total", "counter", budget_refused,
	    "Requests answered 503 because memory_limit's share for bodies stayed in use (or is too small)."),
	HTTPD_F("request_timeouts_total", "counter", request_timeouts,
	    "Requests answered 503 after waiting request_timeout (for room, memory or acknowledgements)."),
	HTTPD_F("spool_waits_total", "counter", waits,
	    "Times a request waited for room in the spool's hand-off queue (agent)."),
	HTTPD_F("memory_waits_total", "counter", budget_waits,
	    "Requests that waited for memory_limit's share for bodies before their body was read."),
	HTTPD_F("errors_total", "counter", errors_500,
	    "Requests answered 500: the agent's spool lost their events."),
	HTTPD_F("fields_dropped_total", "counter", fields_dropped,
	    "Events spooled without their fields: too large with them (agent)."),
	HTTPD_F("dropped_total", "counter", dropped_unspoolable,
	    "Events the spool refused even without fields (agent)."),
	HTTPD_F("body_bytes_total", "counter", body_bytes,
	    "Request body bytes received, before gzip decoding."),
	HTTPD_F("connections_total", "counter", connections, "Connections served."),
	HTTPD_F("connections_open", "gauge", connections_open, "Connections open now."),
	HTTPD_F("connections_refused_total", "counter", connections_refused,
	    "Connections closed at once: max_connections reached and none idle."),
	HTTPD_F("idle_closed_total", "counter", idle_closed,
	    "Idle keep-alive connections closed to admit a new one at max_connections."),
	HTTPD_F("timeouts_total", "counter", timeouts, "Connections closed after the idle timeout."),
	HTTPD_F("tls_handshakes_failed_total", "counter", handshakes_failed,
	    "HTTPS: connections whose TLS handshake failed or timed out (not TLS, a certificate "
	    "refused, handshake_timeout)."),
};
