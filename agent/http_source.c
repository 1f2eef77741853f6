/* SPDX-License-Identifier: Apache-2.0 */
/* http_source: JSON events over HTTP into the spool (see http_source.h). */
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

#include "agent/http_source.h"
#include "common/intake.h"
#include "agent/pipeline.h"
#include "common/addr.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/token.h"

#define HTTP_READ_BUF (16 * 1024)
#define HTTP_URL_MAX 256           /* URL bytes kept: a longer one is no path of ours */
#define HTTP_HNAME_MAX 32          /* header name bytes kept: ours are shorter */
#define HTTP_HVAL_MAX 128          /* header value bytes kept */
#define HTTP_AUTH_MAX (TOKEN_MAX_LEN + 32)   /* Authorization value bytes kept: "Bearer TOKEN" */
#define HTTP_OUT_MAX 4096          /* an answer's body */
#define HTTP_BACKLOG 128

enum http_conn_state {
	HTTP_CONN_READING,     /* reading a request, or waiting for one */
	HTTP_CONN_WAITING,     /* its head is read: waiting for memory_limit's share for its body */
	HTTP_CONN_CHECKING,    /* the body is in: its objects are being checked */
	HTTP_CONN_SPOOLING,    /* appending its events, maybe waiting for room */
	HTTP_CONN_COMMITTING,  /* waiting for the spool to commit them */
	HTTP_CONN_WRITING,     /* writing the answer */
	HTTP_CONN_LINGERING,   /* answered, write side shut: draining before close */
	HTTP_CONN_CLOSING,     /* handles closing */
};

static const char *const http_conn_state_names[] = {
	"reading", "waiting", "checking", "spooling", "committing", "writing", "lingering", "closing",
};

#define HTTP_TO(s) (1u << (s))
/* The states each state may move to (CLOSING is always allowed, except from itself). */
static const unsigned http_conn_next[] = {
	[HTTP_CONN_READING] = HTTP_TO(HTTP_CONN_WAITING) | HTTP_TO(HTTP_CONN_CHECKING) |
	    HTTP_TO(HTTP_CONN_WRITING),
	[HTTP_CONN_WAITING] = HTTP_TO(HTTP_CONN_READING) | HTTP_TO(HTTP_CONN_WRITING),
	[HTTP_CONN_CHECKING] = HTTP_TO(HTTP_CONN_SPOOLING) | HTTP_TO(HTTP_CONN_WRITING),
	[HTTP_CONN_SPOOLING] = HTTP_TO(HTTP_CONN_COMMITTING) | HTTP_TO(HTTP_CONN_WRITING),
	[HTTP_CONN_COMMITTING] = HTTP_TO(HTTP_CONN_WRITING),
	[HTTP_CONN_WRITING] = HTTP_TO(HTTP_CONN_READING) | HTTP_TO(HTTP_CONN_LINGERING),
	[HTTP_CONN_LINGERING] = 0,
	[HTTP_CONN_CLOSING] = 0,
};

/* Which header a value belongs to. */
enum http_header { HTTP_HDR_OTHER, HTTP_HDR_CONTENT_TYPE, HTTP_HDR_CONTENT_ENCODING, HTTP_HDR_EXPECT };

struct http_source;
struct http_conn;

/*
 * What spool_when_committed calls back with: a connection may be gone by
 * then (closed by its peer's timeout or the stop), so the callback finds
 * it through this, and the connection clears it when it goes.
 */
struct http_ticket {
	struct http_conn *conn;       /* NULL once the connection is gone */
};

struct http_listener {
	uv_tcp_t tcp;
	struct http_source *hs;
	const struct config_addr *cfg;
	struct sockaddr_storage addr;
	char source[80];              /* "http://127.0.0.1:8540": the events' source */
	bool open;
};

/* A connection over max_connections: accepted only to be closed. */
struct http_refused {
	uv_tcp_t tcp;
	struct http_source *hs;
};

struct http_conn {
	uv_tcp_t tcp;                 /* plain HTTP */
	struct tls_conn *tls;         /* HTTPS: owns its TCP handle; NULL for plain */
	bool tls_open;                /* its on_close has not run */
	bool send_wait;               /* HTTPS: the answer waits for room in the send buffer */
	bool sent;                    /* HTTPS: the answer is queued: go on from the work queue */
	char cn[TLS_CN_MAX + 1];      /* verify_client: the certificate's common name, or "" */
	const char *cn_refused;       /* verify_client: why its requests get 403; NULL: allowed */
	size_t head_len;	uv_timer_t timer;             /* idle, linger or stop-grace timeout */
	uv_write_t wreq, creq;        /* the answer; "100 Continue" */
	uv_shutdown_t sreq;
	struct http_source *hs;
	struct http_listener *l;
	TAILQ_ENTRY(http_conn) link;  /* hs->conns */
	TAILQ_ENTRY(http_conn) work;  /* hs->work, while queued */
	TAILQ_ENTRY(http_conn) idle_link; /* hs->idlers, while idle */
	bool queued;                  /* in hs->work */
	bool idle;                    /* between requests: the first to close when slots run out */
	bool waiting_room;            /* SPOOLING: waiting for the spool's writable */
	bool reading;                 /* uv_read_start is in effect */
	enum http_conn_state state;
	int closing;                  /* handles still to be closed */
	char peer[64];
	http_parser parser;
	uint8_t rbuf[HTTP_READ_BUF];
	size_t rpos, rlen;            /* rbuf[rpos, rlen): read but not parsed (a pipelined request) */

	/* The request. */
	size_t head_bytes;
	char url[HTTP_URL_MAX + 1];
	size_t url_len;
	bool url_long;
	int hstate;                   /* 0: between headers, 1: in a name, 2: in a value */
	char hname[HTTP_HNAME_MAX + 1], hval[HTTP_AUTH_MAX + 1];
	size_t hname_len, hval_len;
	bool hname_long, hval_long;
	char ctype[HTTP_HVAL_MAX + 1], cenc[HTTP_HVAL_MAX + 1];
	bool ctype_seen, ctype_long, cenc_long, expect_continue;
	char auth[HTTP_AUTH_MAX + 1]; /* the Authorization value, while its head is read */
	size_t auth_len;
	bool auth_seen, auth_long;
	bool bad_token;               /* 401: a token, but not one of tokens_file */
	char sender[TOKEN_NAME_MAX + 1]; /* its token's sender, when tokens_file is set */
	uint64_t retry_s;             /* 429: Retry-After */
	uint64_t body_seen;           /* body bytes received, as sent */
	int status;                   /* an error answer decided on the way; 0 if none */
	char error[INTAKE_ERROR_MAX]; /* its text */
	bool early;                   /* answer before the body is read (then close) */
	bool keep_alive;
	struct intake *in;
	uint64_t received_ns;         /* the time of events without a ts */
	size_t taken;                 /* events appended or dropped */
	size_t appended, dropped;
	struct http_ticket *ticket;   /* while COMMITTING */
	uint64_t charged;             /* taken from the budget for this request */
	uint64_t want;                /* what it has to take before its body is read */
	bool admit_wait;              /* the budget had no room: WAITING follows the head */
	bool budget_refused;          /* the budget had no room for this request */
	struct budget_waiter bw;      /* WAITING */
	unsigned body_flags;          /* INTAKE_* of its body */
	bool has_body;

	/* The answer. */
	char head[512];
	struct buf out;
	bool close_after;
};

TAILQ_HEAD(http_conn_list, http_conn);

struct http_source {
	uv_loop_t *loop;
	const struct agent_source *cfg;
	const char *host, *stream;
	struct spool *spool;
	struct pipeline pipe;
	struct http_listener *listeners;
	size_t nlisteners;
	uv_idle_t idle;               /* runs the work queue */
	bool idle_open;
	struct http_conn_list conns, work;
	struct http_conn_list idlers; /* idle connections, the longest idle first */
	size_t nconns;
	size_t handles;               /* open uv handles; hs is freed at 0 once stopping */
	uint64_t idle_timeout_ms;
	uint64_t request_timeout_ms;
	struct budget *budget;        /* NULL: bodies are not counted */
	struct token_set *tokens;     /* auth.tokens_file's; NULL: anyone may post */
	struct tls_config *tls;       /* HTTPS: for new connections; NULL: plain HTTP */
	struct token_limits limits;   /* each sender's */
	bool limited;                 /* any of limits is set */
	bool stopping;
	void (*done)(void *ctx);
	void *done_ctx;
	struct http_source_stats stats;
};

static void http_conn_parse(struct http_conn *c);
static void http_on_handle_closed(uv_handle_t *h);
static void http_conn_unqueue(struct http_conn *c);
static void http_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void http_conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void http_conn_close(struct http_conn *c);
static int http_conn_rate(struct http_conn *c, bool take, uint64_t events, uint64_t bytes);

/* ---------------------------------------------------------------- helpers */

static void *
http_xcalloc(size_t n, size_t size)
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
http_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *
http_reason(int status)
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
http_trim_copy(char *out, size_t outlen, const char *v)
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
http_media_type(const char *v)
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
http_encoding(const char *v)
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
http_source_maybe_done(struct http_source *hs)
{
	void (*done)(void *);
	void *ctx;

	if (!hs->stopping)
		return;
	/* The work queue's handle goes last: connections still answering use it. */
	if (TAILQ_EMPTY(&hs->conns) && hs->idle_open) {
		hs->idle_open = false;
		uv_close((uv_handle_t *)&hs->idle, http_on_handle_closed);
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
http_on_handle_closed(uv_handle_t *h)
{
	struct http_source *hs = h->data;

	hs->handles--;
	http_source_maybe_done(hs);
}

static void
http_on_listener_closed(uv_handle_t *h)
{
	struct http_listener *l = h->data;

	l->hs->handles--;
	http_source_maybe_done(l->hs);
}

/* ---------------------------------------------------------------- state */

static void
http_conn_reading(struct http_conn *c, bool on)
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
	if ((r = uv_read_start((uv_stream_t *)&c->tcp, http_conn_alloc, http_conn_on_read)) != 0) {
		/* Never: the stream is open and not reading. */
		log_error("source %s: cannot read from %s: %s; closing", c->hs->cfg->name, c->peer,
		    uv_strerror(r));
		c->reading = false;
		http_conn_close(c);
	}
}

/*
 * c is idle (connected, between requests) or not. When every slot is in
 * use, the connection idle the longest is closed to admit a new one: an
 * idle keep-alive client costs nothing to send away, and otherwise a few
 * hundred of them keep every other client out for idle_timeout.
 */
static void
http_conn_idle(struct http_conn *c, bool on)
{
	struct http_source *hs = c->hs;

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
http_conn_set_state(struct http_conn *c, enum http_conn_state s)
{
	if (s != HTTP_CONN_CLOSING && !(http_conn_next[c->state] & HTTP_TO(s))) {
		log_error("source %s: %s: connection state %s cannot become %s", c->hs->cfg->name,
		    c->peer, http_conn_state_names[c->state], http_conn_state_names[s]);
		abort();
	}
	if (c->state == HTTP_CONN_CLOSING)
		abort();
	log_debug("source %s: %s: %s -> %s", c->hs->cfg->name, c->peer,
	    http_conn_state_names[c->state], http_conn_state_names[s]);
	c->state = s;
	/* Only these two states have work for the queue and the spool's writable. */
	if (s != HTTP_CONN_CHECKING && s != HTTP_CONN_SPOOLING) {
		http_conn_unqueue(c);
		c->waiting_room = false;
	}
	if (s != HTTP_CONN_WAITING && c->hs->budget != NULL)
		budget_cancel(c->hs->budget, &c->bw);
	if (s != HTTP_CONN_READING)
		http_conn_idle(c, false);
	/* A connection reads only between requests and while draining. */
	if (s != HTTP_CONN_READING && s != HTTP_CONN_LINGERING && s != HTTP_CONN_CLOSING)
		http_conn_reading(c, false);
	uv_timer_stop(&c->timer);
}

static void http_conn_timed_out(struct http_conn *c);

static void
http_conn_on_timer(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	struct http_source *hs = c->hs;

	/* A request waited request_timeout for room (while stopping: the grace is over). */
	if (!hs->stopping && (c->state == HTTP_CONN_WAITING || c->state == HTTP_CONN_SPOOLING ||
	    c->state == HTTP_CONN_COMMITTING)) {
		http_conn_timed_out(c);
		return;
	}
	if (c->state == HTTP_CONN_READING || c->state == HTTP_CONN_WRITING) {
		hs->stats.timeouts++;
		log_debug("source %s: %s: no data for %" PRIu64 " ms; closing", hs->cfg->name,
		    c->peer, hs->idle_timeout_ms);
	} else if (c->state != HTTP_CONN_LINGERING) {
		log_warn("source %s: %s: stopping before the answer to its request was ready; "
		    "closing (the client will retry; its events may then be spooled twice)",
		    hs->cfg->name, c->peer);
	}
	http_conn_close(c);
}

/* Arms c's timer; while stopping, no wait is longer than the stop's grace. */
static void
http_conn_timer(struct http_conn *c, uint64_t ms)
{
	if (c->hs->stopping && ms > HTTP_SOURCE_STOP_GRACE_MS)
		ms = HTTP_SOURCE_STOP_GRACE_MS;
	uv_timer_start(&c->timer, http_conn_on_timer, ms, 0);
}

/* One of c's handles (its timer, its TCP or TLS connection) is closed. */
static void
http_conn_handle_closed(struct http_conn *c)
{
	struct http_source *hs = c->hs;

	hs->handles--;
	if (--c->closing > 0)
		return;
	intake_free(c->in);
	buf_free(&c->out);
	free(c);
	http_source_maybe_done(hs);
}

static void
http_conn_on_closed(uv_handle_t *h)
{
	http_conn_handle_closed(h->data);
}

static void
http_conn_unqueue(struct http_conn *c)
{
	if (!c->queued)
		return;
	TAILQ_REMOVE(&c->hs->work, c, work);
	c->queued = false;
}

/* The request's body is freed: its bytes go back to the budget. */
static void
http_conn_uncharge(struct http_conn *c)
{
	uint64_t n = c->charged;

	if (n == 0)
		return;
	if (c->in != NULL)
		intake_release(c->in);
	c->charged = 0;
	budget_give(c->hs->budget, n);
}

/* The commit c waits for may still come, with nobody left to tell. */
static void
http_conn_forget_ticket(struct http_conn *c)
{
	if (c->ticket == NULL)
		return;
	c->ticket->conn = NULL;
	c->ticket = NULL;
}

static void
http_conn_close(struct http_conn *c)
{
	struct http_source *hs = c->hs;

	if (c->state == HTTP_CONN_CLOSING)
		return;
	http_conn_set_state(c, HTTP_CONN_CLOSING);
	http_conn_unqueue(c);
	c->waiting_room = false;
	http_conn_forget_ticket(c);
	http_conn_uncharge(c);
	TAILQ_REMOVE(&hs->conns, c, link);
	hs->nconns--;
	hs->stats.connections_open--;
	c->closing = 2;
	if (c->tls == NULL)
		uv_close((uv_handle_t *)&c->tcp, http_conn_on_closed);
	else if (c->tls_open)
		tls_conn_abort(c->tls, 0);   /* its on_close counts the handle closed */
	uv_close((uv_handle_t *)&c->timer, http_conn_on_closed);
	http_source_maybe_done(hs);
}

/* ---------------------------------------------------------------- work queue */

static void http_conn_work(struct http_conn *c);

static void
http_on_idle(uv_idle_t *h)
{
	struct http_source *hs = h->data;
	struct http_conn *c;
	size_t n = 0;

	/* One step for each connection queued now; those that queue again go next turn. */
	TAILQ_FOREACH(c, &hs->work, work)
		n++;
	while (n-- > 0 && (c = TAILQ_FIRST(&hs->work)) != NULL) {
		http_conn_unqueue(c);
		http_conn_work(c);
	}
	if (TAILQ_EMPTY(&hs->work))
		uv_idle_stop(h);
}

static void
http_conn_queue(struct http_conn *c)
{
	struct http_source *hs = c->hs;

	if (!c->queued) {
		TAILQ_INSERT_TAIL(&hs->work, c, work);
		c->queued = true;
	}
	if (hs->idle_open && !uv_is_active((uv_handle_t *)&hs->idle))
		uv_idle_start(&hs->idle, http_on_idle);
}

/* ---------------------------------------------------------------- answers */

static void
http_conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct http_conn *c = req->data;

	if (status < 0 && c->state != HTTP_CONN_CLOSING)
		http_conn_close(c);
}

/*
 * Closes after an answer: the write side first, then what the client
 * still sends is read and dropped for a while, so that its unread bytes
 * do not make the kernel reset the connection before it read the answer.
 */
static void
http_conn_linger(struct http_conn *c)
{
	http_conn_set_state(c, HTTP_CONN_LINGERING);
	http_conn_timer(c, HTTP_SOURCE_LINGER_MS);
	if (c->tls != NULL) {
		/* close_notify after the answer, then the client's close, within the linger. */
		tls_conn_close(c->tls);
		return;
	}
	c->sreq.data = c;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, http_conn_on_shutdown) != 0) {
		http_conn_close(c);
		return;
	}
	http_conn_reading(c, true);
}

/* The answer is written (plain HTTP) or queued for TLS: the next request, or close. */
static void
http_conn_answered(struct http_conn *c)
{
	if (c->close_after) {
		http_conn_linger(c);
		return;
	}
	/* Ready for the next request: its bytes may already be here. */
	if (c->in != NULL)
		intake_release(c->in);
	http_conn_uncharge(c);
	http_conn_set_state(c, HTTP_CONN_READING);
	http_conn_idle(c, true);
	http_conn_timer(c, c->hs->idle_timeout_ms);
	http_conn_parse(c);
}

static void
http_conn_on_written(uv_write_t *w, int status)
{
	struct http_conn *c = w->data;

	if (c->state == HTTP_CONN_CLOSING)
		return;
	if (status < 0) {
		log_debug("source %s: %s: writing the answer failed: %s", c->hs->cfg->name, c->peer,
		    uv_strerror(status));
		http_conn_close(c);
		return;
	}
	http_conn_answered(c);
}

/*
 * Sends b[0, n): plain HTTP writes the buffers as they are (cb follows);
 * HTTPS encrypts them into the connection's send buffer, all or none, and
 * calls nothing. Returns 0, -EAGAIN (HTTPS: no room now; on_writable
 * follows), or another negative error.
 */
static int
http_conn_send(struct http_conn *c, uv_write_t *req, const uv_buf_t *b, unsigned n, uv_write_cb cb)
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

/* Sends the answer http_conn_write prepared. */
static void
http_conn_send_answer(struct http_conn *c)
{
	uv_buf_t b[2];
	int r;

	b[0] = uv_buf_init(c->head, (unsigned)c->head_len);
	b[1] = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
	r = http_conn_send(c, &c->wreq, b, c->out.len ? 2 : 1, http_conn_on_written);
	if (r == -EAGAIN) {
		/* A client sending requests without reading answers: it waits, up to idle_timeout. */
		c->send_wait = true;
		return;
	}
	if (r != 0) {
		log_debug("source %s: %s: cannot write the answer: %s", c->hs->cfg->name, c->peer,
		    c->tls != NULL ? tls_strerror(r) : uv_strerror(r));
		http_conn_close(c);
		return;
	}
	if (c->tls != NULL) {
		/* Not from inside the caller: the next pipelined request would recurse. */
		c->sent = true;
		http_conn_queue(c);
	}
}

/* Writes the answer: status, extra header lines, and c->out as its JSON body. */
static void
http_conn_write(struct http_conn *c, int status, const char *extra)
{
	struct http_source *hs = c->hs;
	const char *conn = "";
	int n;

	c->close_after = !c->keep_alive || hs->stopping;
	if (c->close_after)
		conn = "Connection: close\r\n";
	else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
		conn = "Connection: keep-alive\r\n";
	n = snprintf(c->head, sizeof(c->head), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s\r\n",
	    status, http_reason(status), c->out.len, extra, conn);
	if (n < 0 || (size_t)n >= sizeof(c->head))
		abort();   /* the head is ours and fits */
	c->head_len = (size_t)n;
	hs->stats.requests++;
	http_conn_set_state(c, HTTP_CONN_WRITING);
	http_conn_timer(c, hs->idle_timeout_ms);
	http_conn_send_answer(c);
}

static void
http_conn_ok(struct http_conn *c)
{
	buf_reset(&c->out);
	if (jsonw_raw(&c->out, "{\"accepted\":") != 0 || jsonw_uint(&c->out, c->appended) != 0 ||
	    (c->dropped > 0 && (jsonw_raw(&c->out, ",\"dropped\":") != 0 ||
	    jsonw_uint(&c->out, c->dropped) != 0)) || jsonw_raw(&c->out, "}") != 0)
		abort();   /* a few digits in 4 KiB */
	log_debug("source %s: %s: %zu event(s) accepted", c->hs->cfg->name, c->peer, c->appended);
	http_conn_write(c, 200, "");
}

/* Answers c->status with c->error, counting and logging it. */
static void
http_conn_fail(struct http_conn *c)
{
	struct http_source *hs = c->hs;
	struct http_source_stats *st = &hs->stats;
	const char *extra = "", *name = hs->cfg->name, *advice;
	char retry[48];

	buf_reset(&c->out);
	if (jsonw_raw(&c->out, "{\"error\":") != 0 || jsonw_cstring(&c->out, c->error) != 0 ||
	    jsonw_raw(&c->out, "}") != 0) {
		buf_reset(&c->out);
		if (jsonw_raw(&c->out, "{\"error\":") != 0 ||
		    jsonw_cstring(&c->out, http_reason(c->status)) != 0 || jsonw_raw(&c->out, "}") != 0)
			abort();
	}
	switch (c->status) {
	case 400:
		st->bad_requests++;
		advice = "nothing of the request was spooled; the client must fix it";
		break;
	case 401:
		st->unauthorized++;
		extra = c->bad_token ? "WWW-Authenticate: Bearer realm=\"logferry\", "
		    "error=\"invalid_token\"\r\n" : "WWW-Authenticate: Bearer realm=\"logferry\"\r\n";
		advice = "nothing of it was read or spooled; the client needs a token of the "
		    "source's tokens_file";
		break;
	case 429:
		st->rate_limited++;
		snprintf(retry, sizeof(retry), "Retry-After: %" PRIu64 "\r\n", c->retry_s);
		extra = retry;
		advice = "the sender must slow down, or its limits be raised";
		break;
	case 403:
		st->forbidden++;
		advice = "nothing of it was read or spooled; give the client a certificate whose "
		    "common name tls.allowed_cns allows, or allow it";
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
		log_warn("source %s: answered 503 to %s: %s; the client retries", name, c->peer,
		    c->error);
		http_conn_write(c, c->status, "Retry-After: 1\r\n");
		return;
	default:
		st->errors_500++;
		log_error("source %s: answered %d to %s: %s; the client retries; check the spool's "
		    "messages above", name, c->status, c->peer, c->error);
		http_conn_write(c, c->status, extra);
		return;
	}
	log_warn("source %s: answered %d to %s: %s; %s", name, c->status, c->peer, c->error, advice);
	http_conn_write(c, c->status, extra);
}

static void http_conn_error(struct http_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the error answer of c (it is written by http_conn_fail). */
static void
http_conn_error(struct http_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	c->status = status;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------- spooling */

static void
http_on_committed(void *ctx, int status)
{
	struct http_ticket *t = ctx;
	struct http_conn *c = t->conn;
	struct http_source *hs;

	free(t);
	if (c == NULL)
		return;
	hs = c->hs;
	c->ticket = NULL;
	if (status == 0) {
		hs->stats.accepted++;
		hs->stats.events += c->appended;
		http_conn_ok(c);
		return;
	}
	if (status == -ECANCELED)
		http_conn_error(c, 503, "the agent stopped before the events were stored: retry");
	else
		http_conn_error(c, 500, "the spool could not store the events (%s): retry",
		    strerror(-status));
	http_conn_fail(c);
}

/* Every event is appended (or dropped): the answer waits for their commit. */
static void
http_conn_commit(struct http_conn *c)
{
	struct http_ticket *t;
	int r;

	if (c->appended == 0) {
		http_conn_ok(c);
		return;
	}
	t = http_xcalloc(1, sizeof(*t));
	t->conn = c;
	if ((r = spool_when_committed(c->hs->spool, http_on_committed, t)) != 0) {
		free(t);
		if (r == -ENOMEM)
			abort();
		http_conn_error(c, 503, "the agent is stopping: retry");
		http_conn_fail(c);
		return;
	}
	c->ticket = t;
	http_conn_set_state(c, HTTP_CONN_COMMITTING);
	/* A spool that fills up, or cannot commit, holds the commit back: the client hears why. */
	http_conn_timer(c, c->hs->request_timeout_ms);
}

/*
 * The request waits for the spool's writable callback (http_source_resume),
 * reading nothing meanwhile, for up to request_timeout from its first wait.
 */
static void
http_conn_wait_room(struct http_conn *c)
{
	c->waiting_room = true;
	c->hs->stats.waits++;
	if (!uv_is_active((uv_handle_t *)&c->timer))
		http_conn_timer(c, c->hs->request_timeout_ms);
}

/* The answer to a request when the spool is at max_size, or its disk is full. */
static void
http_conn_spool_full(struct http_conn *c, const struct spool_stats *ss)
{
	if (ss->disk_full)
		http_conn_error(c, 503, "disk full: the spool's filesystem (data_dir) has no room "
		    "left: retry later; free space there, or lower spool.max_size");
	else
		http_conn_error(c, 503, "the spool is full (at spool.max_size until the relays "
		    "acknowledge events): retry later; check that the relays are reachable and "
		    "acknowledging");
	http_conn_fail(c);
}

/* A request waited request_timeout for room: 503, saying what it waited for. */
static void
http_conn_timed_out(struct http_conn *c)
{
	struct http_source *hs = c->hs;
	struct spool_stats ss;
	char part[160] = "";

	hs->stats.request_timeouts++;
	if (c->state == HTTP_CONN_WAITING) {
		/* Its body is unread: the connection cannot go on after the answer. */
		c->keep_alive = false;
		c->budget_refused = true;
		hs->stats.budget_refused++;
		http_conn_error(c, 503, "the agent's memory_limit share for request bodies stayed in "
		    "use by other requests for request_timeout (%" PRIu64 " ms): retry later (or "
		    "raise memory_limit, or lower max_body_size)", hs->request_timeout_ms);
		http_conn_fail(c);
		return;
	}
	http_conn_forget_ticket(c);
	if (c->taken > 0)
		snprintf(part, sizeof(part), " (%zu of its %zu events are in the spool already, and "
		    "are stored again when it is retried)", c->taken, intake_events(c->in));
	spool_get_stats(hs->spool, &ss);
	if (ss.full)
		http_conn_error(c, 503, "%s%s: retry later; %s", ss.disk_full ?
		    "disk full: the spool's filesystem (data_dir) has no room left" :
		    "the spool is full (at spool.max_size until the relays acknowledge events)", part,
		    ss.disk_full ? "free space there, or lower spool.max_size" :
		    "check that the relays are reachable and acknowledging");
	else
		http_conn_error(c, 503, "the spool's writer did not take or commit the request's events "
		    "within request_timeout (%" PRIu64 " ms)%s%s: retry later", hs->request_timeout_ms,
		    part, ss.commit_errors != 0 ? "; the spool has commit errors, see the agent's log" :
		    "");
	http_conn_fail(c);
}

/*
 * Appends the request's events, at most HTTP_SOURCE_WORK bytes of body
 * per call, then waits for their commit. No room: a full spool (at
 * max_size) with nothing of the request taken is 503 at once; otherwise
 * (the writer is busy with a commit, or the spool filled up mid-request)
 * the request waits for the spool's writable callback and goes on from
 * there, for up to request_timeout.
 */
static void
http_conn_spool(struct http_conn *c)
{
	struct http_source *hs = c->hs;
	size_t from = intake_offset(c->in), bytes;
	struct spool_stats ss;
	struct event ev;
	int r;

	for (;;) {
		if (intake_offset(c->in) - from >= HTTP_SOURCE_WORK) {
			http_conn_queue(c);
			return;
		}
		if (intake_next(c->in, c->received_ns, &ev, &bytes) == 0)
			break;
		r = pipeline_emit(&hs->pipe, &ev, 0, NULL);
		if (r == -EAGAIN) {
			/* A full spool with nothing of the request in: the client may retry it whole. */
			spool_get_stats(hs->spool, &ss);
			if (c->taken == 0 && ss.full)
				http_conn_spool_full(c, &ss);
			else
				http_conn_wait_room(c);
			return;
		}
		if (r != 0) {
			c->dropped++;
			log_error("source %s: %s: an event of about %zu bytes cannot be spooled (%s); "
			    "dropped. The spool's largest event is too small for this source's "
			    "max_body_size", hs->cfg->name, c->peer, bytes, strerror(-r));
		} else {
			c->appended++;
		}
		intake_consume(c->in);
		c->taken++;
	}
	http_conn_commit(c);
}

static int http_conn_begin_body(struct http_conn *c);

static void
http_conn_work(struct http_conn *c)
{
	struct http_source *hs = c->hs;
	struct spool_stats ss;
	int r;

	if (c->state == HTTP_CONN_WRITING) {
		if (c->sent) {
			c->sent = false;
			http_conn_answered(c);
		}
		return;
	}
	if (c->state == HTTP_CONN_WAITING) {
		/* Bytes came back to the budget: they may not be enough, or taken first by another. */
		if (budget_take(hs->budget, c->want) != 0) {
			budget_wait(hs->budget, &c->bw);
			return;
		}
		c->charged = c->want;
		c->admit_wait = false;
		http_conn_set_state(c, HTTP_CONN_READING);
		http_conn_timer(c, hs->idle_timeout_ms);
		if (http_conn_begin_body(c) != 0) {
			http_conn_close(c);
			return;
		}
		http_conn_parse(c);
		return;
	}
	if (c->state == HTTP_CONN_CHECKING) {
		if ((r = intake_check(c->in, HTTP_SOURCE_WORK)) == 1) {
			http_conn_queue(c);
			return;
		}
		if (r < 0) {
			http_conn_error(c, 400, "%s", intake_error(c->in));
			http_conn_fail(c);
			return;
		}
		if (intake_events(c->in) == 0) {
			http_conn_ok(c);
			return;
		}
		if (http_conn_rate(c, true, intake_events(c->in), c->body_seen) != 0) {
			http_conn_fail(c);
			return;
		}
		/*
		 * A spool at max_size still has free hand-off blocks, but what goes
		 * into them waits for the relays to acknowledge older events: 503
		 * rather than a client left waiting, nothing taken. Anything else
		 * short (a source waiting for a hand-off block while the writer
		 * commits) is no reason to refuse: the request waits its turn.
		 */
		spool_get_stats(hs->spool, &ss);
		if (ss.full) {
			http_conn_spool_full(c, &ss);
			return;
		}
		/*
		 * Usually the spool grants the whole request at once. When it does
		 * not (a busy writer, or a request larger than the hand-off queue,
		 * which would never fit whole), the events go in as room comes.
		 */
		if (!spool_room(hs->spool, intake_bytes(c->in), intake_events(c->in)))
			log_debug("source %s: %s: a request of %zu events goes into the spool as room "
			    "comes", hs->cfg->name, c->peer, intake_events(c->in));
		http_conn_set_state(c, HTTP_CONN_SPOOLING);
	}
	if (c->state == HTTP_CONN_SPOOLING && !c->waiting_room)
		http_conn_spool(c);
}

/*
 * The budget got bytes back. budget_give runs inside whoever gave them (the
 * end of another request): the retry goes through the work queue instead.
 */
static void
http_conn_on_budget(struct budget_waiter *w)
{
	struct http_conn *c = (struct http_conn *)((char *)w - offsetof(struct http_conn, bw));

	if (c->state == HTTP_CONN_WAITING)
		http_conn_queue(c);
}

/* The head of a request asked for more of memory_limit's share than is free: it waits. */
static void
http_conn_wait_budget(struct http_conn *c)
{
	struct http_source *hs = c->hs;

	http_conn_set_state(c, HTTP_CONN_WAITING);
	hs->stats.budget_waits++;
	log_debug("source %s: %s: waiting for %" PRIu64 " bytes of memory_limit's share for its "
	    "body", hs->cfg->name, c->peer, c->want);
	budget_wait(hs->budget, &c->bw);
	http_conn_timer(c, hs->request_timeout_ms);
}

/* ---------------------------------------------------------------- parsing */

/* The whole request is read (the parser is paused after it). */
static void
http_conn_request(struct http_conn *c)
{
	int r;

	c->received_ns = http_now_ns();
	if (c->status != 0) {
		http_conn_fail(c);
		return;
	}
	if ((r = intake_end(c->in)) != 0) {
		if (r == -EMSGSIZE) {
			c->keep_alive = false;
			http_conn_error(c, 413, "the request body is larger than max_body_size "
			    "(%" PRIu64 " bytes) once decoded", c->hs->cfg->max_body_size);
		} else {
			http_conn_error(c, 400, "%s", intake_error(c->in));
		}
		http_conn_fail(c);
		return;
	}
	http_conn_set_state(c, HTTP_CONN_CHECKING);
	http_conn_queue(c);
}

static struct http_conn *
http_conn_of(http_parser *p)
{
	return p->data;
}

static int
http_on_message_begin(http_parser *p)
{
	struct http_conn *c = http_conn_of(p);

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
	c->taken = c->appended = c->dropped = 0;
	c->budget_refused = c->admit_wait = false;
	c->want = 0;
	http_conn_idle(c, false);
	return 0;
}

/* Counts request-head bytes; beyond HTTP_SOURCE_HEADER_MAX the request is refused. */
static int
http_head_budget(struct http_conn *c, size_t n)
{
	c->head_bytes += n;
	if (c->head_bytes <= HTTP_SOURCE_HEADER_MAX)
		return 0;
	c->keep_alive = false;
	http_conn_error(c, 431, "the request line and headers are larger than %d bytes",
	    HTTP_SOURCE_HEADER_MAX);
	return -1;
}

static int
http_on_url(http_parser *p, const char *at, size_t n)
{
	struct http_conn *c = http_conn_of(p);

	if (http_head_budget(c, n) != 0)
		return -1;
	if (c->url_long || n > HTTP_URL_MAX - c->url_len) {
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
http_header_done(struct http_conn *c)
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
		c->ctype_long = c->hval_long || c->hval_len > HTTP_HVAL_MAX;
		http_trim_copy(c->ctype, sizeof(c->ctype), c->hval);
	} else if (strcasecmp(c->hname, "content-encoding") == 0) {
		c->cenc_long = c->hval_long || c->hval_len > HTTP_HVAL_MAX;
		http_trim_copy(c->cenc, sizeof(c->cenc), c->hval);
	} else if (strcasecmp(c->hname, "expect") == 0) {
		char v[32];

		http_trim_copy(v, sizeof(v), c->hval);
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
http_on_header_field(http_parser *p, const char *at, size_t n)
{
	struct http_conn *c = http_conn_of(p);

	/* ": " and CRLF around each header count too. */
	if (http_head_budget(c, n + (c->hstate != 1 ? 4 : 0)) != 0)
		return -1;
	if (c->hstate == 2)
		http_header_done(c);
	if (c->hstate == 0) {
		c->hstate = 1;
		c->hname_len = c->hval_len = 0;
		c->hname_long = c->hval_long = false;
	}
	if (c->hname_long || n > HTTP_HNAME_MAX - c->hname_len) {
		c->hname_long = true;
		return 0;
	}
	memcpy(c->hname + c->hname_len, at, n);
	c->hname_len += n;
	return 0;
}

static int
http_on_header_value(http_parser *p, const char *at, size_t n)
{
	struct http_conn *c = http_conn_of(p);

	if (http_head_budget(c, n) != 0)
		return -1;
	c->hstate = 2;
	if (c->hval_long || n > HTTP_AUTH_MAX - c->hval_len) {
		c->hval_long = true;
		return 0;
	}
	memcpy(c->hval + c->hval_len, at, n);
	c->hval_len += n;
	return 0;
}

static void
http_conn_on_continued(uv_write_t *w, int status)
{
	struct http_conn *c = w->data;

	if (status < 0 && c->state != HTTP_CONN_CLOSING)
		http_conn_close(c);
}

/*
 * What the body will hold, to take from the budget: a buffer that doubles
 * as it grows reaches twice the length at most, and never max_body_size;
 * an unknown decoded size (UINT64_MAX) takes max_body_size. Plus what the
 * intake keeps beside it (inflate state, one object's parse).
 */
static uint64_t
http_conn_need(const struct http_conn *c, uint64_t length)
{
	uint64_t max = c->hs->cfg->max_body_size;
	uint64_t n = length > max / 2 ? max : 2 * length;

	return n + HTTP_SOURCE_BODY_OVERHEAD;
}

/* The body may be read: the intake starts, and a client that asked is told to send it. */
static int
http_conn_begin_body(struct http_conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct http_source *hs = c->hs;

	if (c->in == NULL) {
		struct intake_options o = {
			.max_body = hs->cfg->max_body_size,
			.host = hs->host,
			.stream = hs->stream,
			.source = c->l->source,
		};

		if (intake_new(&o, &c->in) != 0)
			abort();   /* out of memory */
	}
	intake_begin(c->in, c->body_flags);
	intake_set_sender(c->in, hs->tokens != NULL || hs->cfg->tls.verify_client ? c->sender :
	    NULL);
	if (c->expect_continue && c->has_body) {
		uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);

		if (http_conn_send(c, &c->creq, &b, 1, http_conn_on_continued) != 0)
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
http_conn_admit(struct http_conn *c, uint64_t length)
{
	struct http_source *hs = c->hs;
	struct budget_stats bs;

	if (hs->budget == NULL || !c->has_body)
		return 0;
	c->want = http_conn_need(c, length);
	budget_get_stats(hs->budget, &bs);
	if (c->want > bs.limit)
		return -ENOBUFS;
	if (budget_take(hs->budget, c->want) != 0)
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
http_conn_authenticate(struct http_conn *c)
{
	struct http_source *hs = c->hs;
	const struct token_sender *t = NULL;
	const uint8_t *tok = NULL;
	size_t len = 0;
	int r;

	if (hs->tokens == NULL) {
		/* With client certificates and no tokens, the certificate names the sender. */
		if (hs->cfg->tls.verify_client)
			snprintf(c->sender, sizeof(c->sender), "%s", c->cn);
		return 0;
	}
	r = !c->auth_seen || c->auth_long ? -EINVAL : token_bearer(c->auth, c->auth_len, &tok, &len);
	if (r == 0)
		t = token_set_find(hs->tokens, tok, len);
	explicit_bzero(c->auth, c->auth_len);
	if (r != 0) {
		http_conn_error(c, 401, "this source needs an Authorization: Bearer token, and the "
		    "request has %s", !c->auth_seen ? "none" : "another kind of Authorization");
		return -EACCES;
	}
	if (t == NULL) {
		c->bad_token = true;
		http_conn_error(c, 401, "unknown token: it is not in the agent's tokens_file (or "
		    "was removed from it)");
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
http_conn_rate(struct http_conn *c, bool take, uint64_t events, uint64_t bytes)
{
	struct http_source *hs = c->hs;
	struct token_sender *t;
	uint64_t now = uv_hrtime(), retry_ms = 0;

	if (!hs->limited || hs->tokens == NULL ||
	    (t = token_set_sender(hs->tokens, c->sender)) == NULL)
		return 0;
	if (take ? token_admit(t, &hs->limits, events, bytes, now, &retry_ms) :
	    token_ready(t, &hs->limits, events, bytes, now, &retry_ms))
		return 0;
	c->retry_s = (retry_ms + 999) / 1000;
	http_conn_error(c, 429, "sender %s is over its rate limit (auth: %" PRIu64 " events/s, "
	    "%" PRIu64 " bytes/s; 0 is none): nothing of the request was spooled; retry after "
	    "%" PRIu64 " s", c->sender, hs->limits.events_per_s, hs->limits.bytes_per_s,
	    c->retry_s);
	return -EAGAIN;
}

/* Decides what to do with the request before its body: an early answer, wait, or read it. */
static int
http_on_headers_complete(http_parser *p)
{
	struct http_conn *c = http_conn_of(p);
	struct http_source *hs = c->hs;
	size_t plen = strcspn(c->url, "?#");
	bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
	bool has_body = (p->flags & F_CHUNKED) || (has_length && p->content_length > 0);
	int kind = 0, enc = 0, r = 0;

	http_header_done(c);
	c->has_body = has_body;
	c->keep_alive = http_should_keep_alive(p) != 0;
	if (c->url_long || plen != strlen(HTTP_SOURCE_PATH) ||
	    memcmp(c->url, HTTP_SOURCE_PATH, plen) != 0) {
		http_conn_error(c, 404, "no such path '%.64s%s': events are posted to "
		    HTTP_SOURCE_PATH, c->url, c->url_long ? "..." : "");
	} else if (p->method != HTTP_POST) {
		http_conn_error(c, 405, "method %s is not allowed on " HTTP_SOURCE_PATH ": use POST",
		    http_method_str((enum http_method)p->method));
	} else if (c->cn_refused != NULL) {
		http_conn_error(c, 403, "client certificate%s%s%s %s", c->cn[0] != '\0' ? " '" : "",
		    c->cn, c->cn[0] != '\0' ? "'" : "", c->cn_refused);
	} else if (http_conn_authenticate(c) != 0) {
		/* Its status is set: nothing of it is read or charged. */
	} else if (http_conn_rate(c, false, 1, has_length ? (uint64_t)p->content_length : 0) != 0) {
		/* A sender with nothing left is refused before its body too. */
	} else if (!c->ctype_seen || c->ctype_long || (kind = http_media_type(c->ctype)) < 0) {
		http_conn_error(c, 415, "Content-Type '%.64s' is not supported: use "
		    "application/json (one object) or application/x-ndjson (one object per line)",
		    c->ctype_seen ? c->ctype : "");
	} else if (c->cenc_long || (enc = http_encoding(c->cenc)) < 0) {
		http_conn_error(c, 415, "Content-Encoding '%.64s' is not supported: use gzip, or none",
		    c->cenc);
	} else if (has_length && p->content_length > hs->cfg->max_body_size) {
		c->keep_alive = false;
		http_conn_error(c, 413, "the request body (%" PRIu64 " bytes) is larger than "
		    "max_body_size (%" PRIu64 " bytes)", (uint64_t)p->content_length,
		    hs->cfg->max_body_size);
	} else if ((r = http_conn_admit(c, has_length && enc == 0 ?
	    (uint64_t)p->content_length : UINT64_MAX)) < 0) {
		hs->stats.budget_refused++;
		c->budget_refused = true;
		http_conn_error(c, 503, "the request needs %" PRIu64 " bytes for its body, more "
		    "than the agent's memory_limit share for request bodies: raise memory_limit, or "
		    "lower max_body_size", c->want);
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
	return http_conn_begin_body(c);
}

static int
http_on_body(http_parser *p, const char *at, size_t n)
{
	struct http_conn *c = http_conn_of(p);
	struct http_source *hs = c->hs;
	int r;

	hs->stats.body_bytes += n;
	c->body_seen += n;
	/* Chunked bodies have no length to refuse up front: they stop here. */
	if (c->body_seen > hs->cfg->max_body_size) {
		c->keep_alive = false;
		http_conn_error(c, 413, "the request body is larger than max_body_size "
		    "(%" PRIu64 " bytes)", hs->cfg->max_body_size);
		return -1;
	}
	if (c->status != 0)
		return 0;   /* a broken gzip body: read to its end, answered 400 after it */
	if ((r = intake_feed(c->in, (const uint8_t *)at, n)) == 0)
		return 0;
	if (r == -EMSGSIZE) {
		c->keep_alive = false;
		http_conn_error(c, 413, "the request body is larger than max_body_size "
		    "(%" PRIu64 " bytes) once decoded", hs->cfg->max_body_size);
		return -1;
	}
	http_conn_error(c, 400, "%s", intake_error(c->in));
	return 0;
}

static int
http_on_message_complete(http_parser *p)
{
	/* One request at a time: the parser stops here until it is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings http_settings = {
	.on_message_begin = http_on_message_begin,
	.on_url = http_on_url,
	.on_header_field = http_on_header_field,
	.on_header_value = http_on_header_value,
	.on_headers_complete = http_on_headers_complete,
	.on_body = http_on_body,
	.on_message_complete = http_on_message_complete,
};

/* Parses what was read, up to the end of the next request. */
static void
http_conn_parse(struct http_conn *c)
{
	enum http_errno e;
	size_t n;

	while (c->state == HTTP_CONN_READING && c->rpos < c->rlen) {
		n = http_parser_execute(&c->parser, &http_settings, (const char *)c->rbuf + c->rpos,
		    c->rlen - c->rpos);
		c->rpos += n;
		e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			if (c->early)
				http_conn_fail(c);
			else if (c->admit_wait)
				http_conn_wait_budget(c);
			else
				http_conn_request(c);
			break;
		}
		if (e != HPE_OK || n == 0) {
			/* The parser cannot go on after an error: answer and close. */
			if (c->status == 0)
				http_conn_error(c, 400, "malformed HTTP request: %s",
				    http_errno_description(e));
			c->keep_alive = false;
			http_conn_fail(c);
			break;
		}
	}
	if (c->state == HTTP_CONN_READING && c->rpos == c->rlen) {
		c->rpos = c->rlen = 0;
		http_conn_reading(c, true);
	}
}

/* rbuf[0, n) arrived: reading is on only once every byte before is parsed. */
static void
http_conn_received(struct http_conn *c, size_t n)
{
	c->rpos = 0;
	c->rlen = n;
	http_conn_timer(c, c->hs->idle_timeout_ms);
	http_conn_parse(c);
}

static void
http_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct http_conn *c = h->data;

	(void)suggested;
	/* Reading happens only once every byte read before is parsed. */
	b->base = (char *)c->rbuf;
	b->len = sizeof(c->rbuf);
}

static void
http_conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct http_conn *c = s->data;

	(void)b;
	if (n == 0)
		return;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug("source %s: %s: %s", c->hs->cfg->name, c->peer, uv_strerror((int)n));
		http_conn_close(c);
		return;
	}
	if (c->state != HTTP_CONN_READING)
		return;   /* lingering: dropped */
	http_conn_received(c, (size_t)n);
}

/* ---------------------------------------------------------------- accepting */

static void
http_on_refused_closed(uv_handle_t *h)
{
	struct http_refused *x = h->data;
	struct http_source *hs = x->hs;

	free(x);
	hs->handles--;
	http_source_maybe_done(hs);
}

/* Over max_connections: accepted, told 503 if the socket takes it at once, and closed. */
static void
http_refuse(struct http_source *hs, uv_stream_t *server)
{
	static const char body[] = "{\"error\":\"too many connections: retry later\"}";
	struct http_refused *x = http_xcalloc(1, sizeof(*x));
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
	log_warn("source %s: connection from %s refused: max_connections (%" PRId64 ") are open; "
	    "raise max_connections, or make clients reuse their connections", hs->cfg->name, peer,
	    hs->cfg->max_connections);
	uv_close((uv_handle_t *)&x->tcp, http_on_refused_closed);
}

/* A new connection waits for its first request, idle until then. */
static void
http_conn_begin(struct http_conn *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	http_conn_timer(c, c->hs->idle_timeout_ms);
	http_conn_idle(c, true);
}

/* ---------------------------------------------------------------- HTTPS */

/*
 * A verified client certificate whose common name allowed_cns does not
 * allow is answered 403 on each request rather than refused at the
 * handshake: the client learns why, in words, and it is counted.
 */
static void
http_conn_check_cn(struct http_conn *c)
{
	const struct config_list *allowed = &c->hs->cfg->tls.allowed_cns;
	int r = tls_conn_peer_cn(c->tls, c->cn, sizeof(c->cn));

	if (r != 0) {
		c->cn[0] = '\0';
		c->cn_refused = "has no usable common name (one, printable, at most 64 bytes): it "
		    "cannot name the sender";
		return;
	}
	if (allowed->n == 0)
		return;
	for (size_t i = 0; i < allowed->n; i++)
		if (fnmatch(((char **)allowed->items)[i], c->cn, 0) == 0)
			return;
	c->cn_refused = "is not allowed by tls.allowed_cns";
}

static void
http_tls_on_handshake(void *ctx, int status)
{
	struct http_conn *c = ctx;

	if (status != 0) {
		/* common/tls logged why; its on_close follows. */
		c->hs->stats.handshakes_failed++;
		return;
	}
	/* Answers are small and end a request: send them at once. */
	uv_tcp_nodelay(tls_conn_tcp(c->tls), 1);
	if (c->hs->cfg->tls.verify_client)
		http_conn_check_cn(c);
}

static void
http_tls_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct http_conn *c = ctx;

	if (c->state != HTTP_CONN_READING)
		return;   /* lingering: dropped */
	if (n > sizeof(c->rbuf) || c->rpos != c->rlen) {
		/* Never: a record fits rbuf, and reading resumes only once rbuf is parsed. */
		log_error("source %s: %s: %zu TLS bytes arrived with %zu unparsed; closing",
		    c->hs->cfg->name, c->peer, n, c->rlen - c->rpos);
		http_conn_close(c);
		return;
	}
	memcpy(c->rbuf, p, n);
	http_conn_received(c, n);
}

static void
http_tls_on_writable(void *ctx)
{
	struct http_conn *c = ctx;

	if (c->send_wait && c->state == HTTP_CONN_WRITING) {
		c->send_wait = false;
		http_conn_send_answer(c);
	}
}

static void
http_tls_on_close(void *ctx, int reason)
{
	struct http_conn *c = ctx;

	if (reason != 0)
		log_debug("source %s: %s: %s", c->hs->cfg->name, c->peer, tls_conn_reason(c->tls));
	c->tls_open = false;
	http_conn_close(c);
	http_conn_handle_closed(c);
}

static const struct tls_conn_callbacks http_tls_callbacks = {
	.on_handshake = http_tls_on_handshake,
	.on_data = http_tls_on_data,
	.on_writable = http_tls_on_writable,
	.on_close = http_tls_on_close,
};

static void
http_on_connection(uv_stream_t *server, int status)
{
	struct http_listener *l = server->data;
	struct http_source *hs = l->hs;
	struct sockaddr_storage a;
	struct http_conn *c;
	int r, len = sizeof(a);

	if (status < 0) {
		log_warn("source %s: accepting a connection on %s failed: %s; going on", hs->cfg->name,
		    l->source, uv_strerror(status));
		return;
	}
	if (hs->stopping)
		return;
	if (hs->nconns >= (size_t)hs->cfg->max_connections && (c = TAILQ_FIRST(&hs->idlers)) != NULL) {
		hs->stats.idle_closed++;
		log_debug("source %s: closing %s, idle the longest, to admit a new connection: "
		    "max_connections (%" PRId64 ") are open", hs->cfg->name, c->peer,
		    hs->cfg->max_connections);
		http_conn_close(c);
	}
	if (hs->nconns >= (size_t)hs->cfg->max_connections) {
		http_refuse(hs, server);
		return;
	}
	c = http_xcalloc(1, sizeof(*c));
	c->hs = hs;
	c->l = l;
	c->tcp.data = c;
	c->timer.data = c;
	c->bw.cb = http_conn_on_budget;
	snprintf(c->peer, sizeof(c->peer), "?");
	buf_init(&c->out, HTTP_OUT_MAX);
	if (hs->tls != NULL && (r = tls_conn_accept(hs->loop, hs->tls, server, &http_tls_callbacks, c,
	    &c->tls)) != 0) {
		log_warn("source %s: accepting a connection on %s failed: %s; going on",
		    hs->cfg->name, l->source, tls_strerror(r));
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
	c->state = HTTP_CONN_READING;
	if (c->tls != NULL) {
		/* Its handshake runs: requests come once it is done, within handshake_timeout. */
		c->tls_open = true;
		hs->stats.connections++;
		snprintf(c->peer, sizeof(c->peer), "%s", tls_conn_peer(c->tls));
		c->reading = true;
		http_conn_begin(c);
		return;
	}
	if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) != 0) {
		log_warn("source %s: accepting a connection on %s failed: %s; going on",
		    hs->cfg->name, l->source, uv_strerror(r));
		http_conn_close(c);
		return;
	}
	hs->stats.connections++;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&a, &len) == 0)
		addr_text((const struct sockaddr *)&a, c->peer, sizeof(c->peer));
	/* Answers are small and end a request: send them at once. */
	uv_tcp_nodelay(&c->tcp, 1);
	c->reading = false;
	if ((r = uv_read_start((uv_stream_t *)&c->tcp, http_conn_alloc, http_conn_on_read)) != 0) {
		log_warn("source %s: cannot read from %s: %s; closing", hs->cfg->name, c->peer,
		    uv_strerror(r));
		http_conn_close(c);
		return;
	}
	c->reading = true;
	http_conn_begin(c);
}

/* ---------------------------------------------------------------- API */

static int
http_listen(struct http_source *hs, struct http_listener *l, const struct config_addr *a)
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
		log_error("source %s: cannot listen on %s: %s; use an IP address, or a name that "
		    "resolves", hs->cfg->name, a->text, gai_strerror(r));
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
		r = uv_listen((uv_stream_t *)&l->tcp, HTTP_BACKLOG, http_on_connection);
	if (r == 0)
		r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&l->addr, &len);
	if (r != 0) {
		log_error("source %s: cannot listen on %s: %s; is another process using that "
		    "address?", hs->cfg->name, a->text, uv_strerror(r));
		return r;
	}
	n = snprintf(l->source, sizeof(l->source), "%s://", hs->tls != NULL ? "https" : "http");
	addr_text((const struct sockaddr *)&l->addr, l->source + n, sizeof(l->source) - (size_t)n);
	log_info("source %s: listening on %s", hs->cfg->name, l->source);
	return 0;
}

/* Loads cfg's tokens file into *out, logging what is wrong with it. */
static int
http_load_tokens(const struct agent_source *cfg, struct token_set **out)
{
	char err[512];
	int r;

	if ((r = token_set_load(cfg->auth.tokens_file, AGENT_MAX_TOKENS, out, err,
	    sizeof(err))) != 0) {
		log_error("source %s: %s", cfg->name, err);
		return r;
	}
	log_info("source %s: %zu token(s) loaded from %s", cfg->name, token_set_count(*out),
	    cfg->auth.tokens_file);
	return 0;
}

/* Loads cfg's TLS files into *out, logging what is wrong with them. */
static int
http_load_tls(const struct agent_source *cfg, struct tls_config **out)
{
	struct tls_config_options o;
	char err[768];
	int r;

	agent_config_source_tls_options(cfg, &o);
	if ((r = tls_config_new(&o, err, sizeof(err), out)) != 0) {
		log_error("source %s: tls.%s", cfg->name, err);
		return r;
	}
	return 0;
}

int
http_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct http_source **out)
{
	const struct config_addr *addrs = cfg->listen.items;
	struct http_source *hs;
	int r;

	if ((hs = calloc(1, sizeof(*hs))) == NULL ||
	    (hs->listeners = calloc(cfg->listen.n ? cfg->listen.n : 1,
	    sizeof(*hs->listeners))) == NULL) {
		free(hs);
		log_error("source %s: out of memory", cfg->name);
		return -ENOMEM;
	}
	if ((cfg->auth.tokens_file != NULL && (r = http_load_tokens(cfg, &hs->tokens)) != 0) ||
	    (cfg->tls.cert_file != NULL && (r = http_load_tls(cfg, &hs->tls)) != 0)) {
		token_set_free(hs->tokens);
		free(hs->listeners);
		free(hs);
		return r;
	}
	hs->loop = loop;
	hs->cfg = cfg;
	hs->host = host;
	hs->stream = cfg->stream != NULL ? cfg->stream : cfg->name;
	hs->spool = spool;
	pipeline_init(&hs->pipe, spool, "event too large for the spool with its fields; "
	    "fields dropped", cfg->chain);
	hs->idle_timeout_ms = cfg->idle_timeout_ms != 0 ? cfg->idle_timeout_ms :
	    HTTP_SOURCE_IDLE_TIMEOUT_MS;
	hs->request_timeout_ms = cfg->request_timeout_ms != 0 ? cfg->request_timeout_ms :
	    HTTP_SOURCE_REQUEST_TIMEOUT_MS;
	hs->limits.events_per_s = (uint64_t)cfg->auth.events_per_s;
	hs->limits.events_burst = (uint64_t)cfg->auth.events_burst;
	hs->limits.bytes_per_s = cfg->auth.bytes_per_s;
	hs->limits.bytes_burst = cfg->auth.bytes_burst;
	hs->limited = hs->limits.events_per_s != 0 || hs->limits.bytes_per_s != 0;
	TAILQ_INIT(&hs->conns);
	TAILQ_INIT(&hs->work);
	TAILQ_INIT(&hs->idlers);
	uv_idle_init(loop, &hs->idle);
	hs->idle.data = hs;
	hs->idle_open = true;
	hs->handles++;
	for (size_t i = 0; i < cfg->listen.n; i++) {
		hs->nlisteners++;
		if ((r = http_listen(hs, &hs->listeners[i], &addrs[i])) != 0) {
			http_source_stop(hs, NULL, NULL);
			return r;
		}
	}
	*out = hs;
	return 0;
}

/* SIGHUP: the certificates again, for new connections; open ones keep theirs. */
static int
http_reload_tls(struct http_source *hs)
{
	struct tls_config *fresh;
	int r;

	if (hs->tls == NULL)
		return 0;
	if ((r = http_load_tls(hs->cfg, &fresh)) != 0) {
		log_error("source %s: the TLS certificate loaded before stays; fix the files and send "
		    "SIGHUP again", hs->cfg->name);
		return r;
	}
	tls_config_unref(hs->tls);
	hs->tls = fresh;
	log_info("source %s: TLS certificate reloaded from %s: new connections use it; the %" PRIu64
	    " open connection(s) keep theirs", hs->cfg->name, hs->cfg->tls.cert_file,
	    hs->stats.connections_open);
	return 0;
}

int
http_source_reload(struct http_source *hs)
{
	struct token_set *fresh;
	int r, rt = http_reload_tls(hs);

	if (hs->cfg->auth.tokens_file == NULL)
		return rt;
	if ((r = http_load_tokens(hs->cfg, &fresh)) != 0) {
		log_error("source %s: the tokens of %s stay as they were loaded before; fix the "
		    "file and send SIGHUP again", hs->cfg->name, hs->cfg->auth.tokens_file);
		return r;
	}
	/* A sender's rate limits go on where they were: a reload is no reset. */
	token_set_carry(fresh, hs->tokens);
	token_set_free(hs->tokens);
	hs->tokens = fresh;
	return rt;
}

void
http_source_set_budget(struct http_source *hs, struct budget *b)
{
	hs->budget = b;
}

void
http_source_resume(struct http_source *hs)
{
	struct http_conn *c;

	TAILQ_FOREACH(c, &hs->conns, link) {
		if (c->waiting_room) {
			c->waiting_room = false;
			http_conn_queue(c);
		}
	}
}

/* At stop: what each connection still owes its client. */
static void
http_conn_stop(struct http_conn *c)
{
	switch (c->state) {
	case HTTP_CONN_READING:
	case HTTP_CONN_LINGERING:
		http_conn_close(c);
		break;
	case HTTP_CONN_WAITING:
		c->keep_alive = false;   /* its body is unread */
		/* fall through */
	case HTTP_CONN_CHECKING:
		http_conn_error(c, 503, "the agent is stopping: retry");
		http_conn_fail(c);
		break;
	case HTTP_CONN_SPOOLING:
		if (c->taken == 0) {
			http_conn_error(c, 503, "the agent is stopping: retry");
			http_conn_fail(c);
		} else {
			/* Some of its events are in: it is answered if it finishes in time. */
			http_conn_timer(c, HTTP_SOURCE_STOP_GRACE_MS);
		}
		break;
	case HTTP_CONN_COMMITTING:
	case HTTP_CONN_WRITING:
		http_conn_timer(c, HTTP_SOURCE_STOP_GRACE_MS);
		break;
	case HTTP_CONN_CLOSING:
		break;
	}
}

void
http_source_stop(struct http_source *hs, void (*done)(void *ctx), void *ctx)
{
	struct http_conn *c, *next;

	hs->stopping = true;
	hs->done = done;
	hs->done_ctx = ctx;
	for (size_t i = 0; i < hs->nlisteners; i++) {
		struct http_listener *l = &hs->listeners[i];

		if (l->open) {
			l->open = false;
			uv_close((uv_handle_t *)&l->tcp, http_on_listener_closed);
		}
	}
	for (c = TAILQ_FIRST(&hs->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		http_conn_stop(c);
	}
	http_source_maybe_done(hs);
}

int
http_source_address(const struct http_source *hs, size_t i, struct sockaddr_storage *out)
{
	if (i >= hs->nlisteners || !hs->listeners[i].open)
		return -ENOENT;
	*out = hs->listeners[i].addr;
	return 0;
}

void
http_source_get_stats(const struct http_source *hs, struct http_source_stats *st)
{
	*st = hs->stats;
	st->fields_dropped = hs->pipe.fields_dropped;
	st->dropped_unspoolable = hs->pipe.dropped;
}

/* ---------------------------------------------------------------- its type */

#define HTTP_F(name, type, member, help) \
	{ "logferry_http_" name, type, help, offsetof(struct http_source_stats, member) }
static const struct metrics_field http_source_fields[] = {
	HTTP_F("requests_total", "counter", requests, "Requests answered, whatever the answer."),
	HTTP_F("requests_accepted_total", "counter", accepted,
	    "Requests answered 200: their events are committed."),
	HTTP_F("events_total", "counter", events, "Events committed for those requests."),
	HTTP_F("bad_requests_total", "counter", bad_requests,
	    "Requests answered 400: malformed JSON, gzip or HTTP."),
	HTTP_F("unauthorized_total", "counter", unauthorized,
	    "Requests answered 401: no bearer token, or one not in tokens_file; never spooled."),
	HTTP_F("rate_limited_total", "counter", rate_limited,
	    "Requests answered 429: their sender over its auth rate limits; never spooled."),
	HTTP_F("forbidden_total", "counter", forbidden,
	    "Requests answered 403: a client certificate whose common name tls.allowed_cns does "
	    "not allow; never spooled."),
	HTTP_F("not_found_total", "counter", not_found, "Requests answered 404."),
	HTTP_F("bad_method_total", "counter", bad_method, "Requests answered 405."),
	HTTP_F("too_large_total", "counter", too_large,
	    "Requests answered 413: body over max_body_size."),
	HTTP_F("bad_type_total", "counter", bad_type,
	    "Requests answered 415: Content-Type or Content-Encoding."),
	HTTP_F("headers_too_large_total", "counter", headers_too_large,
	    "Requests answered 431."),
	HTTP_F("unavailable_total", "counter", unavailable_503,
	    "Requests answered 503: a full spool, request_timeout spent waiting for room, or stopping."),
	HTTP_F("memory_refused_total", "counter", budget_refused,
	    "Requests answered 503 because memory_limit's share for bodies stayed in use (or is too small)."),
	HTTP_F("request_timeouts_total", "counter", request_timeouts,
	    "Requests answered 503 after waiting request_timeout for room in the spool or memory_limit."),
	HTTP_F("spool_waits_total", "counter", waits,
	    "Times a request waited for room in the spool's hand-off queue."),
	HTTP_F("memory_waits_total", "counter", budget_waits,
	    "Requests that waited for memory_limit's share for bodies before their body was read."),
	HTTP_F("errors_total", "counter", errors_500,
	    "Requests answered 500: the spool lost their events."),
	HTTP_F("fields_dropped_total", "counter", fields_dropped,
	    "Events spooled without their fields: too large with them."),
	HTTP_F("dropped_total", "counter", dropped_unspoolable,
	    "Events the spool refused even without fields."),
	HTTP_F("body_bytes_total", "counter", body_bytes,
	    "Request body bytes received, before gzip decoding."),
	HTTP_F("connections_total", "counter", connections, "Connections served."),
	HTTP_F("connections_open", "gauge", connections_open, "Connections open now."),
	HTTP_F("connections_refused_total", "counter", connections_refused,
	    "Connections closed at once: max_connections reached and none idle."),
	HTTP_F("idle_closed_total", "counter", idle_closed,
	    "Idle keep-alive connections closed to admit a new one at max_connections."),
	HTTP_F("timeouts_total", "counter", timeouts, "Connections closed after the idle timeout."),
	HTTP_F("tls_handshakes_failed_total", "counter", handshakes_failed,
	    "HTTPS: connections whose TLS handshake failed or timed out (not TLS, a certificate "
	    "refused, handshake_timeout)."),
};

static uint64_t
http_source_max_message(const struct agent_source *cfg)
{
	/* An event's message is one object of a body: up to max_body_size. */
	return cfg->max_body_size;
}

static int
http_source_type_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct budget *budget, void **out)
{
	struct http_source *src;
	int r;

	if ((r = http_source_start(loop, cfg, host, spool, &src)) != 0)
		return r;
	http_source_set_budget(src, budget);
	*out = src;
	return 0;
}

static void
http_source_type_reload(void *src)
{
	/* Logged; the previous tokens stay. */
	(void)http_source_reload(src);
}

static void
http_source_type_resume(void *src)
{
	http_source_resume(src);
}

static void
http_source_type_stop(void *src, void (*done)(void *ctx), void *ctx)
{
	http_source_stop(src, done, ctx);
}

static void
http_source_type_stats(const void *src, void *st)
{
	http_source_get_stats(src, st);
}

const struct source_type http_source_type = {
	.name = "http",
	.max_message = http_source_max_message,
	.start = http_source_type_start,
	.resume = http_source_type_resume,
	.reload = http_source_type_reload,
	.stop = http_source_type_stop,
	.stats = http_source_type_stats,
	.stats_size = sizeof(struct http_source_stats),
	.fields = METRICS_FIELDS(http_source_fields),
};
