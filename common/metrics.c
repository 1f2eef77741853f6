/* SPDX-License-Identifier: Apache-2.0 */
/* metrics: the Prometheus metrics and health endpoint (see metrics.h). */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <unistd.h>

#include <http_parser.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/metrics.h"

#define METRICS_BACKLOG 64
#define METRICS_READ_MAX 4096     /* bytes read at a time; the parser streams */
#define METRICS_URL_MAX 256       /* longer paths are none of ours: 404 */
#define METRICS_HEAD_ROOM 256     /* an answer's status line and headers */

struct metrics_conn {
	TAILQ_ENTRY(metrics_conn) link;
	struct metrics *m;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wreq;
	http_parser parser;
	char in[METRICS_READ_MAX];
	size_t inoff, inlen;          /* unparsed bytes in[inoff, inlen) */
	char url[METRICS_URL_MAX];
	size_t urllen;
	size_t head;                  /* bytes of the current request's head so far */
	struct buf out;               /* the answer being written */
	int handles;                  /* open: tcp and timer */
	bool reading, writing, closing;
	bool close_after;             /* the answer being written ends the connection */
	char peer[64];
};

struct metrics {
	uv_loop_t *loop;
	const struct metrics_ops *ops;
	void *ctx;
	uv_tcp_t listener;
	struct sockaddr_storage addr;
	char where[80];               /* the bound address, for messages */
	TAILQ_HEAD(, metrics_conn) conns;
	size_t nconns;
	int handles;
	bool stopping;
	uint64_t idle_ms;
	struct buf body;              /* scratch for a rendering, bounded by METRICS_BODY_MAX */
	struct metrics_stats stats;
	void (*done)(void *ctx);
	void *done_ctx;
};

/* ---------------------------------------------------------------- writer */

static void
metrics_put(struct metrics_writer *w, const char *s, size_t n)
{
	int r;

	if (w->err == 0 && (r = buf_append(w->out, s, n)) != 0)
		w->err = r;
}

static void
metrics_puts(struct metrics_writer *w, const char *s)
{
	metrics_put(w, s, strlen(s));
}

/* esc_quote: also escape '"' (label values); HELP text escapes only \ and newline. */
static void
metrics_put_escaped(struct metrics_writer *w, const char *s, bool esc_quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && esc_quote)
			rep = "\\\"";
		if (rep == NULL)
			continue;
		metrics_put(w, run, (size_t)(s - run));
		metrics_puts(w, rep);
		run = s + 1;
	}
	metrics_put(w, run, (size_t)(s - run));
}

void
metrics_family(struct metrics_writer *w, const char *name, const char *type, const char *help)
{
	w->family = name;
	metrics_puts(w, "# HELP ");
	metrics_puts(w, name);
	metrics_puts(w, " ");
	metrics_put_escaped(w, help, false);
	metrics_puts(w, "\n# TYPE ");
	metrics_puts(w, name);
	metrics_puts(w, " ");
	metrics_puts(w, type);
	metrics_puts(w, "\n");
}

void
metrics_sample(struct metrics_writer *w, const struct metrics_label *labels, size_t nlabels,
    uint64_t value)
{
	char num[24];
	int n;

	if (w->family == NULL) {
		w->err = w->err != 0 ? w->err : -EINVAL;
		return;
	}
	metrics_puts(w, w->family);
	for (size_t i = 0; i < nlabels; i++) {
		metrics_puts(w, i == 0 ? "{" : ",");
		metrics_puts(w, labels[i].name);
		metrics_puts(w, "=\"");
		metrics_put_escaped(w, labels[i].value != NULL ? labels[i].value : "", true);
		metrics_puts(w, "\"");
	}
	if (nlabels != 0)
		metrics_puts(w, "}");
	n = snprintf(num, sizeof(num), " %" PRIu64 "\n", value);
	metrics_put(w, num, (size_t)n);
}

void
metrics_one(struct metrics_writer *w, const char *name, const char *type, const char *help,
    uint64_t value)
{
	metrics_family(w, name, type, help);
	metrics_sample(w, NULL, 0, value);
}

void
metrics_table(struct metrics_writer *w, const struct metrics_field *fields, size_t nfields,
    const void *stats, size_t size, size_t n, const char *label, const char *const *values)
{
	for (size_t f = 0; f < nfields; f++) {
		metrics_family(w, fields[f].name, fields[f].type, fields[f].help);
		for (size_t i = 0; i < n; i++) {
			struct metrics_label l = { label, label != NULL ? values[i] : NULL };
			uint64_t v;

			memcpy(&v, (const char *)stats + i * size + fields[f].offset, sizeof(v));
			metrics_sample(w, &l, label != NULL ? 1 : 0, v);
		}
	}
}

/*
 * The process_* metrics every Prometheus client library exports, so that
 * the usual dashboards and alerts work: CPU, memory, descriptors, start.
 */
static void
metrics_process(struct metrics_writer *w)
{
	struct rusage ru;
	long page = sysconf(_SC_PAGESIZE);
	unsigned long long vsz = 0, rss = 0, start_ticks = 0;
	long ticks = sysconf(_SC_CLK_TCK);
	uint64_t fds = 0, boot = 0;
	struct dirent *de;
	char line[1024], *p;
	FILE *f;
	DIR *d;

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
		    (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
		char num[48];
		int n;

		/* Seconds as a decimal fraction, exactly, without floating point. */
		metrics_family(w, "process_cpu_seconds_total", "counter",
		    "User and system CPU time of every thread, in seconds.");
		n = snprintf(num, sizeof(num), "process_cpu_seconds_total %" PRIu64 ".%06" PRIu64 "\n",
		    us / 1000000, us % 1000000);
		metrics_put(w, num, (size_t)n);
	}
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &vsz, &rss) == 2 && page > 0) {
			metrics_one(w, "process_virtual_memory_bytes", "gauge",
			    "Virtual memory size in bytes.", vsz * (uint64_t)page);
			metrics_one(w, "process_resident_memory_bytes", "gauge",
			    "Resident memory size in bytes.", rss * (uint64_t)page);
		}
		fclose(f);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
		/* The directory's own descriptor was counted while it was open. */
		metrics_one(w, "process_open_fds", "gauge", "Open file descriptors.",
		    fds > 0 ? fds - 1 : 0);
	}
	/* Start time: field 22 of /proc/self/stat, in ticks after boot (btime). */
	if ((f = fopen("/proc/stat", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "btime %" SCNu64, &boot) == 1)
				break;
		fclose(f);
	}
	if (boot != 0 && ticks > 0 && (f = fopen("/proc/self/stat", "r")) != NULL) {
		if (fgets(line, sizeof(line), f) != NULL && (p = strrchr(line, ')')) != NULL &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
		    "%*d %*d %*d %*d %llu", &start_ticks) == 1)
			metrics_one(w, "process_start_time_seconds", "gauge",
			    "Start time of the process since the Unix epoch, in seconds.",
			    boot + start_ticks / (uint64_t)ticks);
		fclose(f);
	}
}

/* ---------------------------------------------------------------- connections */

static void metrics_conn_parse(struct metrics_conn *c);
static void metrics_conn_close(struct metrics_conn *c);

static void
metrics_maybe_done(struct metrics *m)
{
	void (*done)(void *) = m->done;
	void *ctx = m->done_ctx;

	if (!m->stopping || m->handles != 0)
		return;
	buf_free(&m->body);
	free(m);
	if (done != NULL)
		done(ctx);
}

static void
metrics_conn_on_closed(uv_handle_t *h)
{
	struct metrics_conn *c = h->data;
	struct metrics *m = c->m;

	m->handles--;
	if (--c->handles != 0)
		return;
	buf_free(&c->out);
	free(c);
	metrics_maybe_done(m);
}

static void
metrics_conn_close(struct metrics_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	TAILQ_REMOVE(&c->m->conns, c, link);
	c->m->nconns--;
	uv_close((uv_handle_t *)&c->tcp, metrics_conn_on_closed);
	uv_close((uv_handle_t *)&c->timer, metrics_conn_on_closed);
}

static void
metrics_conn_on_timer(uv_timer_t *t)
{
	metrics_conn_close(t->data);
}

static void
metrics_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct metrics_conn *c = h->data;

	(void)suggested;
	/* Reading stops while unparsed bytes wait, so the buffer is whole here. */
	c->inoff = c->inlen = 0;
	*b = uv_buf_init(c->in, sizeof(c->in));
}

static void
metrics_conn_reading(struct metrics_conn *c, bool on);

static void
metrics_conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct metrics_conn *c = s->data;

	(void)b;
	if (n < 0) {
		metrics_conn_close(c);
		return;
	}
	if (n == 0)
		return;
	c->inlen = (size_t)n;
	uv_timer_start(&c->timer, metrics_conn_on_timer, c->m->idle_ms, 0);
	metrics_conn_parse(c);
}

static void
metrics_conn_reading(struct metrics_conn *c, bool on)
{
	if (c->reading == on || c->closing)
		return;
	if (on && uv_read_start((uv_stream_t *)&c->tcp, metrics_conn_alloc,
	    metrics_conn_on_read) != 0) {
		metrics_conn_close(c);
		return;
	}
	if (!on)
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = on;
}

static void
metrics_conn_on_written(uv_write_t *w, int status)
{
	struct metrics_conn *c = w->data;

	c->writing = false;
	buf_reset(&c->out);
	if (c->closing)
		return;
	if (status < 0 || c->close_after) {
		metrics_conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, metrics_conn_on_timer, c->m->idle_ms, 0);
	/* Pipelined requests read with this one are next. */
	if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED)
		http_parser_pause(&c->parser, 0);
	metrics_conn_parse(c);
}

static const char *
metrics_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/*
 * Sends status with body (type: its Content-Type) and pauses the parser
 * until it is written; close: the connection ends after it.
 */
static void
metrics_conn_answer(struct metrics_conn *c, int status, const char *type, const struct buf *body,
    bool close)
{
	struct metrics *m = c->m;
	bool head_only = c->parser.method == HTTP_HEAD;
	char head[METRICS_HEAD_ROOM];
	uv_buf_t ub;
	int n, r;

	m->stats.requests++;
	if (status >= 400)
		m->stats.errors++;
	close = close || !http_should_keep_alive(&c->parser) || m->stopping;
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%s%s\r\n", status, metrics_reason(status), type, body->len,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "", close ? "Connection: close\r\n" : "");
	buf_reset(&c->out);
	if ((r = buf_append(&c->out, head, (size_t)n)) != 0 ||
	    (!head_only && (r = buf_append(&c->out, body->data, body->len)) != 0)) {
		log_warn("metrics %s: no memory for an answer to %s; closing", m->where, c->peer);
		metrics_conn_close(c);
		return;
	}
	c->close_after = close;
	c->writing = true;
	c->wreq.data = c;
	ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
	if ((r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, metrics_conn_on_written)) != 0) {
		c->writing = false;
		metrics_conn_close(c);
	}
}

/* An error answer with a JSON body {"error":why}. */
static void
metrics_conn_error(struct metrics_conn *c, int status, const char *why, bool close)
{
	struct buf b;
	char text[160];
	int n = snprintf(text, sizeof(text), "{\"error\":\"%s\"}\n", why);

	b.data = (uint8_t *)text;
	b.len = b.cap = b.max = (size_t)n;
	metrics_conn_answer(c, status, "application/json", &b, close);
}

static void
metrics_conn_request(struct metrics_conn *c)
{
	struct metrics *m = c->m;
	struct metrics_writer w = { .out = &m->body };
	size_t pathlen = strcspn(c->url, "?#");
	int status;

	if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) {
		metrics_conn_error(c, 405, "only GET and HEAD", false);
		return;
	}
	buf_reset(&m->body);
	if (pathlen == 8 && memcmp(c->url, "/metrics", 8) == 0) {
		m->ops->render(m->ctx, &w);
		metrics_process(&w);
		if (w.err != 0) {
			log_warn("metrics %s: the metrics do not fit in %d bytes (%s)", m->where,
			    METRICS_BODY_MAX, strerror(-w.err));
			metrics_conn_error(c, 500, "metrics too large", false);
			return;
		}
		metrics_conn_answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", &m->body,
		    false);
		return;
	}
	if (pathlen == 7 && memcmp(c->url, "/health", 7) == 0) {
		status = m->ops->health(m->ctx, &m->body);
		metrics_conn_answer(c, status, "application/json", &m->body, false);
		return;
	}
	metrics_conn_error(c, 404, "not found: GET /metrics or /health", false);
}

static struct metrics_conn *
metrics_conn_of(http_parser *p)
{
	return p->data;
}

static int
metrics_head_bytes(http_parser *p, size_t n)
{
	struct metrics_conn *c = metrics_conn_of(p);

	c->head += n;
	return c->head > METRICS_HEADER_MAX ? -1 : 0;
}

static int
metrics_on_message_begin(http_parser *p)
{
	struct metrics_conn *c = metrics_conn_of(p);

	c->urllen = 0;
	c->url[0] = '\0';
	c->head = 0;
	return 0;
}

static int
metrics_on_url(http_parser *p, const char *at, size_t n)
{
	struct metrics_conn *c = metrics_conn_of(p);
	size_t take = n;

	if (metrics_head_bytes(p, n) != 0)
		return -1;
	/* A URL longer than any of ours is cut and will not match: 404. */
	if (take > sizeof(c->url) - 1 - c->urllen)
		take = sizeof(c->url) - 1 - c->urllen;
	memcpy(c->url + c->urllen, at, take);
	c->urllen += take;
	c->url[c->urllen] = '\0';
	return 0;
}

static int
metrics_on_header(http_parser *p, const char *at, size_t n)
{
	(void)at;
	return metrics_head_bytes(p, n);
}

static int
metrics_on_headers_complete(http_parser *p)
{
	struct metrics_conn *c = metrics_conn_of(p);

	if ((p->flags & F_CHUNKED) || (p->content_length != 0 && p->content_length != ULLONG_MAX)) {
		metrics_conn_error(c, 413, "no request body is taken here", true);
		http_parser_pause(p, 1);
	}
	return 0;
}

static int
metrics_on_message_complete(http_parser *p)
{
	struct metrics_conn *c = metrics_conn_of(p);

	metrics_conn_request(c);
	/* One answer at a time: the rest waits until it is written. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings metrics_settings = {
	.on_message_begin = metrics_on_message_begin,
	.on_url = metrics_on_url,
	.on_header_field = metrics_on_header,
	.on_header_value = metrics_on_header,
	.on_headers_complete = metrics_on_headers_complete,
	.on_message_complete = metrics_on_message_complete,
};

/* Parses what was read and not parsed yet, unless an answer is being written. */
static void
metrics_conn_parse(struct metrics_conn *c)
{
	enum http_errno e;
	size_t n;

	if (c->closing || c->writing)
		return;
	/* A length of 0 would tell the parser that the peer closed. */
	if (c->inoff == c->inlen) {
		metrics_conn_reading(c, true);
		return;
	}
	n = http_parser_execute(&c->parser, &metrics_settings, c->in + c->inoff,
	    c->inlen - c->inoff);
	if (c->closing)
		return;
	c->inoff += n;
	e = HTTP_PARSER_ERRNO(&c->parser);
	if (e == HPE_PAUSED) {
		/* An answer is on its way; what follows it is parsed once it is written. */
		metrics_conn_reading(c, false);
		return;
	}
	if (e != HPE_OK) {
		if (e == HPE_CB_url || e == HPE_CB_header_field || e == HPE_CB_header_value ||
		    e == HPE_HEADER_OVERFLOW)
			metrics_conn_error(c, 431, "request head too large", true);
		else
			metrics_conn_error(c, 400, http_errno_name(e), true);
		return;
	}
	metrics_conn_reading(c, true);
}

static void
metrics_on_refused_closed(uv_handle_t *h)
{
	struct metrics *m = h->data;

	free(h);
	m->handles--;
	metrics_maybe_done(m);
}

static void
metrics_on_connection(uv_stream_t *server, int status)
{
	struct metrics *m = server->data;
	struct sockaddr_storage a;
	struct metrics_conn *c;
	int len = sizeof(a);

	if (status < 0 || m->stopping)
		return;
	if (m->nconns >= METRICS_MAX_CONNECTIONS) {
		uv_tcp_t *t = malloc(sizeof(*t));

		if (t == NULL)
			return;
		t->data = m;
		uv_tcp_init(m->loop, t);
		m->handles++;
		m->stats.connections_refused++;
		(void)uv_accept(server, (uv_stream_t *)t);
		log_warn("metrics %s: a connection refused: %d are open already (scrapers that "
		    "do not close theirs?)", m->where, METRICS_MAX_CONNECTIONS);
		uv_close((uv_handle_t *)t, metrics_on_refused_closed);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("metrics %s: out of memory for a connection", m->where);
		return;
	}
	c->m = m;
	c->tcp.data = c;
	c->timer.data = c;
	snprintf(c->peer, sizeof(c->peer), "?");
	buf_init(&c->out, METRICS_BODY_MAX + METRICS_HEAD_ROOM);
	uv_tcp_init(m->loop, &c->tcp);
	uv_timer_init(m->loop, &c->timer);
	c->handles = 2;
	m->handles += 2;
	TAILQ_INSERT_TAIL(&m->conns, c, link);
	m->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		metrics_conn_close(c);
		return;
	}
	m->stats.connections++;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&a, &len) == 0)
		addr_text((const struct sockaddr *)&a, c->peer, sizeof(c->peer));
	uv_tcp_nodelay(&c->tcp, 1);
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	uv_timer_start(&c->timer, metrics_conn_on_timer, c->m->idle_ms, 0);
	metrics_conn_reading(c, true);
}

/* ---------------------------------------------------------------- API */

static void
metrics_on_listener_closed(uv_handle_t *h)
{
	struct metrics *m = h->data;

	m->handles--;
	metrics_maybe_done(m);
}

int
metrics_start(uv_loop_t *loop, const struct config_addr *addr, const struct metrics_ops *ops,
    void *ctx, struct metrics **out)
{
	struct addrinfo hints, *res = NULL;
	struct metrics *m;
	char port[8];
	int r, len;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		log_error("metrics %s: out of memory", addr->text);
		return -ENOMEM;
	}
	m->loop = loop;
	m->ops = ops;
	m->ctx = ctx;
	m->idle_ms = METRICS_IDLE_MS;
	TAILQ_INIT(&m->conns);
	buf_init(&m->body, METRICS_BODY_MAX);
	snprintf(m->where, sizeof(m->where), "%s", addr->text);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", addr->port);
	if ((r = getaddrinfo(addr->host, port, &hints, &res)) != 0) {
		log_error("metrics: cannot listen on %s: %s; use an IP address, or a name that "
		    "resolves", addr->text, gai_strerror(r));
		buf_free(&m->body);
		free(m);
		return -EADDRNOTAVAIL;
	}
	m->listener.data = m;
	uv_tcp_init(loop, &m->listener);
	m->handles = 1;
	r = uv_tcp_bind(&m->listener, res->ai_addr, 0);
	freeaddrinfo(res);
	/* libuv reports a bind error (the port in use) at listen. */
	if (r == 0)
		r = uv_listen((uv_stream_t *)&m->listener, METRICS_BACKLOG, metrics_on_connection);
	len = sizeof(m->addr);
	if (r == 0)
		r = uv_tcp_getsockname(&m->listener, (struct sockaddr *)&m->addr, &len);
	if (r != 0) {
		log_error("metrics: cannot listen on %s: %s; is another process using that address? "
		    "(metrics.listen)", addr->text, uv_strerror(r));
		metrics_stop(m, NULL, NULL);
		return r;
	}
	addr_text((const struct sockaddr *)&m->addr, m->where, sizeof(m->where));
	log_info("metrics: serving /metrics and /health on http://%s", m->where);
	*out = m;
	return 0;
}

void
metrics_stop(struct metrics *m, void (*done)(void *ctx), void *ctx)
{
	struct metrics_conn *c;

	if (m == NULL)
		return;
	m->stopping = true;
	m->done = done;
	m->done_ctx = ctx;
	uv_close((uv_handle_t *)&m->listener, metrics_on_listener_closed);
	while ((c = TAILQ_FIRST(&m->conns)) != NULL)
		metrics_conn_close(c);
}

int
metrics_address(const struct metrics *m, struct sockaddr_storage *out)
{
	*out = m->addr;
	return 0;
}

void
metrics_set_idle_timeout(struct metrics *m, uint64_t ms)
{
	m->idle_ms = ms;
}

void
metrics_get_stats(const struct metrics *m, struct metrics_stats *st)
{
	*st = m->stats;
}
