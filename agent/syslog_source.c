/* SPDX-License-Identifier: Apache-2.0 */
/*
 * syslog_source: syslog listeners -> parse -> spool (see syslog_source.h).
 *
 * Each listener embeds its one uv handle (udp, tcp or a poll on a unix
 * datagram socket); each TCP connection is a struct syslog_conn embedding
 * its uv_tcp_t, freed in that handle's close callback. The source counts
 * the close callbacks to come and is freed after the last one once
 * stopping, so a listener or connection pointer stays valid until the
 * loop's close phase whatever a callback does.
 *
 * A connection is in one state (enum syslog_conn_state), changed only by
 * syslog_conn_set_state, which checks the transition. Received bytes
 * accumulate in the connection's buffer (capped at max_message_size plus a
 * frame header) and syslog_conn_frames takes whole messages out of it. A
 * message the spool refuses with -EAGAIN is simply not consumed: it stays
 * first in the buffer, and running the frames again (on resume) offers it
 * again with the same framing decisions.
 *
 * No spool_flush after a read: what every callback of a loop turn appended
 * reaches the spool's writer at the end of the turn (the spool's prepare
 * handle, before the loop waits again), in as few hand-off blocks as can
 * hold it. Flushing per datagram would hand over a block per message.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sock_diag.h>

#include "agent/multiline.h"
#include "agent/pipeline.h"
#include "agent/source.h"
#include "agent/syslog_source.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"

/* An octet count has at most this many digits (up to 9999999999: longer is no count). */
#define SYSLOG_LEN_DIGITS 10
#define SYSLOG_HEADER_MAX (SYSLOG_LEN_DIGITS + 1)
/* Bytes offered to one read at most; the buffer grows to this only when data comes. */
#define SYSLOG_READ_CHUNK (64 * 1024)
/* libuv's recvmmsg slot: one per 64 KiB of the buffer it is given (no UDP payload is larger). */
#define SYSLOG_UDP_SLOT (64 * 1024)
/*
 * Datagrams one recvmmsg call reads at most: 8 calls instead of 64 for a
 * burst of 64. The receive buffer of a listener is this many slots.
 */
#define SYSLOG_MMSG 8
/* Bytes of slots for a unix socket at most (its slots are max_message_size each). */
#define SYSLOG_UNIX_SLOTS_MAX (512 * 1024)
/* Datagrams read from a unix socket per wake-up, so one busy socket cannot hold the loop. */
#define SYSLOG_DGRAM_BURST 256
/* A unix datagram queue shorter than this loses bursts of senders that do not wait. */
#define SYSLOG_UNIX_QLEN_MIN 512
#define SYSLOG_BACKLOG 128
#define SYSLOG_PEER_MAX 64

enum syslog_conn_state {
	CONN_DETECT,        /* no byte yet: the first one decides the framing */
	CONN_OCTET_LEN,     /* octet counting: reading "LEN SP" */
	CONN_OCTET_MSG,     /* octet counting: waiting for want bytes of message */
	CONN_OCTET_SKIP,    /* octet counting: discarding skip bytes of an oversize message */
	CONN_LINE,          /* newline framing: a message up to LF or NUL */
	CONN_LINE_DISCARD,  /* newline framing: discarding the rest of a truncated line */
	CONN_CLOSED,        /* closing; freed by the handle's close callback */
	CONN_NSTATES
};

static const char *const syslog_conn_state_names[CONN_NSTATES] = {
	[CONN_DETECT] = "detect",
	[CONN_OCTET_LEN] = "octet-len",
	[CONN_OCTET_MSG] = "octet-msg",
	[CONN_OCTET_SKIP] = "octet-skip",
	[CONN_LINE] = "line",
	[CONN_LINE_DISCARD] = "line-discard",
	[CONN_CLOSED] = "closed",
};

#define T(s) (1u << (s))
static const unsigned syslog_conn_next[CONN_NSTATES] = {
	[CONN_DETECT] = T(CONN_OCTET_LEN) | T(CONN_LINE) | T(CONN_CLOSED),
	[CONN_OCTET_LEN] = T(CONN_OCTET_MSG) | T(CONN_OCTET_SKIP) | T(CONN_CLOSED),
	[CONN_OCTET_MSG] = T(CONN_OCTET_LEN) | T(CONN_CLOSED),
	[CONN_OCTET_SKIP] = T(CONN_OCTET_LEN) | T(CONN_CLOSED),
	[CONN_LINE] = T(CONN_LINE_DISCARD) | T(CONN_CLOSED),
	[CONN_LINE_DISCARD] = T(CONN_LINE) | T(CONN_CLOSED),
	[CONN_CLOSED] = 0,
};
#undef T

struct syslog_source;

struct syslog_listener {
	struct syslog_source *ss;
	const struct config_addr *addr;
	union {
		uv_handle_t handle;
		uv_udp_t udp;
		uv_tcp_t tcp;
		uv_poll_t poll;          /* unix: watches fd */
	} h;
	bool open;                   /* h is initialised: it needs uv_close */
	int fd;                      /* unix: the socket, closed after h.poll; else -1 */
	bool created;                /* unix: we bound a socket file at addr->path */
	dev_t dev;                   /* unix: that file, removed at stop if still ours */
	ino_t ino;
	uint8_t *dgram;              /* udp, unix: the receive buffer, SYSLOG_MMSG slots at most */
	size_t dgram_size;
	struct mmsghdr *mmsg;        /* unix: one per slot of dgram, for recvmmsg */
	struct iovec *iov;
	size_t nslots, slot;
	uint32_t kernel_drops;       /* udp, unix: the socket's drop count last read */
	bool drops_unknown;          /* the kernel does not tell it (SO_MEMINFO failed) */
	struct sockaddr_storage bound;
};

struct syslog_conn {
	TAILQ_ENTRY(syslog_conn) link;   /* ss->conns, until CONN_CLOSED */
	struct syslog_source *ss;
	struct syslog_listener *l;
	uv_tcp_t tcp;                    /* tcp:// */
	struct tls_conn *tls;            /* tls://: owns its TCP handle; NULL for tcp:// */
	bool tls_open;                   /* its on_close has not run */
	bool tls_up;                     /* its handshake succeeded */
	uv_timer_t gone;                 /* tls://: closed after on_close, its callback frees c */
	enum syslog_conn_state state;
	struct buf in;                   /* received; [off, len) not consumed yet */
	size_t off;
	size_t scan;                     /* CONN_LINE: bytes after off searched for a line end */
	uint64_t want;                   /* CONN_OCTET_MSG: the message's length */
	uint64_t skip;                   /* CONN_OCTET_SKIP: bytes still to discard */
	bool eof;                        /* the peer has finished sending */
	uint64_t charged;                /* taken from the budget for in */
	struct budget_waiter bw;         /* waiting for the budget, not reading */
	char peer[SYSLOG_PEER_MAX];
	struct multiline ml;             /* multiline: the event being gathered */
	bool ml_cut;                     /* a message of it was cut at max_message_size */
	uint64_t ml_charged;             /* taken from the budget for ml's buffer */
	bool ml_waiting;                 /* waiting for the budget to grow ml, not reading */
	bool ml_retry;                   /* the budget has room again: the timer runs the frames */
	bool broken;                     /* failed: only its event in progress is left to ship */
};

TAILQ_HEAD(syslog_connq, syslog_conn);

struct syslog_source {
	uv_loop_t *loop;
	const struct agent_source *cfg;
	struct spool *spool;
	struct pipeline pipe;
	struct source_line sl;
	struct syslog_listener *listeners;
	size_t nlisteners;
	struct syslog_connq conns;       /* connections not CONN_CLOSED */
	size_t nconns;
	bool paused;                     /* a TCP message waits for room in the spool */
	struct budget *budget;           /* NULL: receive buffers are not counted */
	struct tls_config *tls;          /* tls:// listeners: for new connections; else NULL */
	struct tls_config_options tls_o; /* cfg's tls section, for loading it again */
	char label[80];                  /* "source NAME", for common/tls's messages */
	bool multiline;                  /* cfg has a multiline rule: rule and ml_timer are set */
	struct multiline_rule rule;
	uv_timer_t ml_timer;             /* ships events no message followed within flush_timeout */
	struct multiline_stats ml_st;
	bool stopping;
	unsigned closing;                /* close callbacks to come */
	void (*done)(void *ctx);
	void *done_ctx;
	struct syslog_source_stats st;
};

/* ---------------------------------------------------------------- helpers */

static void
syslog_oom(void)
{
	log_error("out of memory in the syslog source");
	abort();
}

static bool
syslog_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* "1.2.3.4:514", "[::1]:514", or what the peer is when it has no address. */
static void
syslog_addr_name(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa == NULL)
		snprintf(out, len, "a local sender");
	else if (addr_text(sa, out, len) != 0)
		snprintf(out, len, "an unnamed peer");
}

static void
syslog_peer_name(uv_tcp_t *t, char *out, size_t len)
{
	struct sockaddr_storage sa;
	int salen = sizeof(sa);

	if (uv_tcp_getpeername(t, (struct sockaddr *)&sa, &salen) == 0)
		syslog_addr_name((const struct sockaddr *)&sa, out, len);
	else
		snprintf(out, len, "a peer already gone");
}

/* What to do about a failed bind or listen, for the operator. */
static const char *
syslog_bind_hint(int r, enum config_scheme scheme)
{
	switch (r) {
	case UV_EADDRINUSE:
		return scheme == CONFIG_SCHEME_UNIX ? "another socket was created at that path meanwhile" :
		    "another process listens there: stop it or choose another port";
	case UV_EACCES:
	case UV_EPERM:
		return scheme == CONFIG_SCHEME_UNIX ?
		    "check that the agent may create files in that directory" :
		    "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a higher port";
	case UV_EADDRNOTAVAIL:
		return "the address is not one of this host's: check the host part";
	case UV_ENOENT:
		return "its directory does not exist: create it (under systemd, "
		    "RuntimeDirectory=logferry creates /run/logferry)";
	default:
		return "check the address";
	}
}

/* ---------------------------------------------------------------- closing */

static void
syslog_source_free(struct syslog_source *ss)
{
	void (*done)(void *) = ss->done;
	void *done_ctx = ss->done_ctx;

	for (size_t i = 0; i < ss->nlisteners; i++) {
		free(ss->listeners[i].dgram);
		free(ss->listeners[i].mmsg);
		free(ss->listeners[i].iov);
	}
	free(ss->listeners);
	tls_config_unref(ss->tls);
	if (ss->multiline)
		multiline_rule_free(&ss->rule);
	source_line_free(&ss->sl);
	free(ss);
	if (done != NULL)
		done(done_ctx);
}

static void
syslog_source_closed(struct syslog_source *ss)
{
	if (--ss->closing == 0 && ss->stopping)
		syslog_source_free(ss);
}

static void
syslog_listener_closed(uv_handle_t *h)
{
	struct syslog_listener *l = h->data;

	/* Only now: libuv must stop watching a descriptor before it is closed. */
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	syslog_source_closed(l->ss);
}

static void
syslog_listener_close(struct syslog_listener *l)
{
	struct stat st;

	if (l->created) {
		/* Only our own socket: someone may have replaced it since (a second agent, by hand). */
		if (lstat(l->addr->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino &&
		    unlink(l->addr->path) != 0)
			log_warn("source %s: %s: cannot remove the socket file: %s; remove it by hand",
			    l->ss->cfg->name, l->addr->text, strerror(errno));
		l->created = false;
	}
	if (l->open) {
		l->open = false;
		l->ss->closing++;
		uv_close(&l->h.handle, syslog_listener_closed);
	} else if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
}

static void
syslog_conn_set_state(struct syslog_conn *c, enum syslog_conn_state to)
{
	if (!(syslog_conn_next[c->state] & (1u << to))) {
		log_error("source %s: %s: connection from %s: invalid state change %s -> %s",
		    c->ss->cfg->name, c->l->addr->text, c->peer, syslog_conn_state_names[c->state],
		    syslog_conn_state_names[to]);
		abort();
	}
	c->state = to;
}

static void
syslog_conn_closed(uv_handle_t *h)
{
	struct syslog_conn *c = h->data;
	struct syslog_source *ss = c->ss;

	buf_free(&c->in);
	multiline_free(&c->ml);
	free(c);
	syslog_source_closed(ss);
}

/* Frees the receive buffer and gives its bytes back (then others may read). */
static void
syslog_conn_uncharge(struct syslog_conn *c)
{
	uint64_t n = c->charged;

	if (n == 0)
		return;
	buf_free(&c->in);
	c->charged = 0;
	budget_give(c->ss->budget, n);
}

/* Gives back what ml's buffer no longer holds (all of it once freed). */
static void
syslog_ml_settle(struct syslog_conn *c)
{
	uint64_t n;

	if (c->ml_charged <= c->ml.cap)
		return;
	n = c->ml_charged - c->ml.cap;
	c->ml_charged = c->ml.cap;
	budget_give(c->ss->budget, n);
}

/* Ends the event in progress, shipped or not, and frees its buffer. */
static void
syslog_ml_release(struct syslog_conn *c)
{
	multiline_clear(&c->ml);
	multiline_free(&c->ml);
	c->ml_cut = false;
	syslog_ml_settle(c);
}

static void
syslog_conn_close(struct syslog_conn *c)
{
	struct syslog_source *ss = c->ss;

	if (c->state == CONN_CLOSED)
		return;
	if (ss->budget != NULL) {
		budget_cancel(ss->budget, &c->bw);
		syslog_conn_uncharge(c);
	}
	syslog_ml_release(c);
	syslog_conn_set_state(c, CONN_CLOSED);
	TAILQ_REMOVE(&ss->conns, c, link);
	ss->nconns--;
	ss->st.connections_open = ss->nconns;
	ss->closing++;
	if (c->tls == NULL)
		uv_close((uv_handle_t *)&c->tcp, syslog_conn_closed);
	else if (c->tls_open)
		tls_conn_abort(c->tls, 0);   /* nothing to send: its on_close closes gone */
	else
		uv_close((uv_handle_t *)&c->gone, syslog_conn_closed);
}

/* Stops reading c (TCP pushes back on its sender). */
static void
syslog_conn_read_stop(struct syslog_conn *c)
{
	if (c->tls == NULL)
		uv_read_stop((uv_stream_t *)&c->tcp);
	else if (c->tls_open)
		tls_conn_pause_reading(c->tls);
}

/* memory_limit's share is taken: c waits for bytes to come back. */
static void
syslog_conn_wait_budget(struct syslog_conn *c)
{
	struct syslog_source *ss = c->ss;

	syslog_conn_read_stop(c);
	ss->st.budget_waits++;
	budget_wait(ss->budget, &c->bw);
	log_warn("source %s: %s: the connection from %s waits: memory_limit's share for "
	    "connection buffers is in use (raise memory_limit, or lower max_message_size)",
	    ss->cfg->name, c->l->addr->text, c->peer);
}

/* ---------------------------------------------------------------- messages */

/* Adds `truncated: true` behind the fields source_line_event made. */
static void
syslog_mark_truncated(struct syslog_source *ss, struct event *ev)
{
	static const char key[] = "truncated";
	struct event_field *f;

	/* source_line leaves room: without marks it fills at most PARSER_MAX_FIELDS. */
	if ((f = source_line_add_field(&ss->sl, ev)) == NULL)
		return;
	f->key.ptr = (const uint8_t *)key;
	f->key.len = sizeof(key) - 1;
	f->type = EVENT_BOOLEAN;
	f->v.boolean = true;
}

/* The peer for a message: its name (TCP), or from (datagrams) formatted only when logged. */
static const char *
syslog_peer(const char *peer, const struct sockaddr *from, char *buf, size_t len)
{
	if (peer != NULL)
		return peer;
	syslog_addr_name(from, buf, len);
	return buf;
}

/* A line end or a NUL left by the sender or the framing is not content. */
static size_t
syslog_trim(const uint8_t *msg, size_t len)
{
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r' || msg[len - 1] == '\0'))
		len--;
	return len;
}

/*
 * Spools ev, the event of n messages received on l from peer or from (as
 * syslog_message); its last nmarks fields are marks, and parse_errors the
 * count before it was made. Returns 0 (spooled), -EAGAIN (the spool is
 * full, nothing taken), or the spool's error (logged: given up for good).
 */
static int
syslog_emit(struct syslog_listener *l, const struct event *ev, size_t nmarks,
    uint64_t parse_errors, bool truncated, uint32_t n, const char *peer,
    const struct sockaddr *from)
{
	struct syslog_source *ss = l->ss;
	char name[SYSLOG_PEER_MAX];
	int r;

	if ((r = pipeline_emit(&ss->pipe, ev, nmarks, NULL)) != 0) {
		/* Not spooled: its parse error is counted when it is, if ever. */
		ss->sl.parse_errors = parse_errors;
		if (r == -EAGAIN)
			return -EAGAIN;
		log_error("source %s: %s: a message of %zu bytes from %s cannot be spooled (%s); "
		    "skipped", ss->cfg->name, l->addr->text, ev->message.len,
		    syslog_peer(peer, from, name, sizeof(name)), strerror(-r));
		return r;
	}
	ss->st.received += n;
	if (truncated) {
		ss->st.truncated++;
		log_warn("source %s: %s: a message from %s was longer than max_message_size "
		    "(%" PRIu64 " bytes) and was truncated (%" PRIu64 " so far); raise "
		    "max_message_size if such messages are expected", ss->cfg->name, l->addr->text,
		    syslog_peer(peer, from, name, sizeof(name)), ss->cfg->max_message_size,
		    ss->st.truncated);
	}
	return 0;
}

/*
 * Spools one message of msg[0, len) received on l from peer (a TCP
 * connection's name) or from (a datagram's sender, NULL for an unnamed unix
 * one). Returns 0 (spooled, or given up for good and counted) or -EAGAIN:
 * the spool is full and nothing was taken; offer the same message again.
 */
static int
syslog_message(struct syslog_listener *l, const uint8_t *msg, size_t len, bool truncated,
    const char *peer, const struct sockaddr *from)
{
	struct syslog_source *ss = l->ss;
	uint64_t parse_errors = ss->sl.parse_errors;
	struct event ev;
	size_t nfields;

	if ((len = syslog_trim(msg, len)) == 0)
		return 0;
	source_line_event(&ss->sl, msg, len, 0, source_now_ns(), l->addr->text, &ev);
	nfields = ev.nfields;
	if (truncated)
		syslog_mark_truncated(ss, &ev);
	return syslog_emit(l, &ev, ev.nfields - nfields, parse_errors, truncated, 1, peer, from) ==
	    -EAGAIN ? -EAGAIN : 0;
}

/* ---------------------------------------------------------------- multiline */

static void syslog_ml_timer(uv_timer_t *t);

/*
 * Spools c's event in progress (the first message's frame, the MSG parts
 * of the others after it, parsed as one message) and frees its buffer.
 * Returns 0 (also when the spool refused it for good: logged, counted by
 * the pipeline) or -EAGAIN: the spool is full, the event stays gathered.
 */
static int
syslog_ml_ship(struct syslog_conn *c, bool by_timeout)
{
	struct syslog_source *ss = c->ss;
	uint64_t parse_errors = ss->sl.parse_errors;
	unsigned marks = c->ml.truncated ? SOURCE_MULTILINE_TRUNCATED : 0;
	struct event ev;
	size_t nfields;
	int r;

	source_line_event(&ss->sl, c->ml.buf, c->ml.len, marks, c->ml.first_ns, c->l->addr->text,
	    &ev);
	nfields = ev.nfields - (marks != 0);
	if (c->ml_cut)
		syslog_mark_truncated(ss, &ev);
	r = syslog_emit(c->l, &ev, ev.nfields - nfields, parse_errors, c->ml_cut, c->ml.lines,
	    c->peer, NULL);
	if (r == -EAGAIN)
		return -EAGAIN;
	if (r == 0)
		multiline_count(&ss->ml_st, &c->ml, by_timeout);
	/* Freed, not kept: a connection between events holds none of memory_limit. */
	syslog_ml_release(c);
	return 0;
}

/* Where msg's MSG part begins as the parser reads it (len: it has none; 0: no header read). */
static size_t
syslog_msg_offset(struct syslog_source *ss, const uint8_t *msg, size_t len)
{
	struct parsed *p = &ss->sl.parsed;

	if (ss->sl.parser->parse(ss->sl.state, msg, len, source_now_ns(), p) != 0)
		return 0;
	for (size_t i = 0; i < p->nfields; i++)
		if (p->fields[i].type == EVENT_SLICE && p->fields[i].key.len == 7 &&
		    memcmp(p->fields[i].key.ptr, "message", 7) == 0)
			return p->fields[i].v.slice.offset;
	return len;
}

/* Sets the timer for the first event due, or at once for a connection to run again. */
static void
syslog_ml_arm(struct syslog_source *ss)
{
	uint64_t now = source_now_ns(), timeout = ss->cfg->multiline.flush_timeout_ms * 1000000;
	uint64_t next = UINT64_MAX, left;
	struct syslog_conn *c;

	if (ss->stopping)
		return;
	TAILQ_FOREACH(c, &ss->conns, link) {
		if (c->ml_retry) {
			next = 0;
			break;
		}
		if (!multiline_pending(&c->ml))
			continue;
		/* A clock set back must not hold an event longer than flush_timeout. */
		if (now < c->ml.last_ns)
			left = timeout;
		else
			left = now - c->ml.last_ns >= timeout ? 0 : c->ml.last_ns + timeout - now;
		if (left < next)
			next = left;
	}
	/* It fails only on a closing handle, and the source closes it only when stopping. */
	if (next != UINT64_MAX)
		(void)uv_timer_start(&ss->ml_timer, syslog_ml_timer, next == 0 ? 0 :
		    next / 1000000 + 1, 0);
}

/*
 * One message of a connection whose source gathers events: ships the
 * event before it when it does not continue it, then adds it. Returns 0,
 * -EAGAIN (the spool is full) or -ENOBUFS (memory_limit's share cannot
 * hold the grown event): the message is not taken, offer it again.
 */
static int
syslog_conn_message(struct syslog_conn *c, const uint8_t *msg, size_t len, bool truncated)
{
	struct syslog_source *ss = c->ss;
	const uint8_t *line = msg;
	size_t off, n;
	uint64_t cap;
	int r;

	if (!ss->multiline)
		return syslog_message(c->l, msg, len, truncated, c->peer, NULL);
	if ((len = syslog_trim(msg, len)) == 0)
		return 0;
	off = syslog_msg_offset(ss, msg, len);
	if (multiline_pending(&c->ml) && !multiline_continues(&c->ml, msg + off, len - off) &&
	    (r = syslog_ml_ship(c, false)) != 0)
		return r;
	/* The first message whole (its header makes the event's fields), the others' MSG. */
	n = len;
	if (multiline_pending(&c->ml)) {
		line = msg + off;
		n = len - off;
	}
	/* At a stop, the last events are shipped: memory_limit is not asked to wait then. */
	if (ss->budget != NULL && !ss->stopping &&
	    (cap = multiline_cap_after(&c->ml, n)) > c->ml_charged) {
		if (budget_take(ss->budget, cap - c->ml_charged) != 0)
			return -ENOBUFS;
		c->ml_charged = cap;
	}
	if (multiline_add(&c->ml, line, n, false, source_now_ns(), 0) != 0) {
		syslog_ml_settle(c);
		log_error("source %s: %s: no memory to gather the messages of an event from %s; the "
		    "event before is shipped as it is and this message goes alone", ss->cfg->name,
		    c->l->addr->text, c->peer);
		if (multiline_pending(&c->ml) && (r = syslog_ml_ship(c, false)) != 0)
			return r;
		return syslog_message(c->l, msg, len, truncated, c->peer, NULL);
	}
	c->ml_cut |= truncated;
	if (!uv_is_active((uv_handle_t *)&ss->ml_timer))
		syslog_ml_arm(ss);
	return 0;
}

/* A datagram (udp or unix); from is NULL for an unnamed unix sender. */
static void
syslog_datagram(struct syslog_listener *l, const uint8_t *msg, size_t len, bool truncated,
    const struct sockaddr *from)
{
	struct syslog_source *ss = l->ss;
	char peer[SYSLOG_PEER_MAX];

	if (syslog_message(l, msg, len, truncated, NULL, from) != -EAGAIN)
		return;
	syslog_addr_name(from, peer, sizeof(peer));
	/* A datagram sender cannot wait: keeping it would stall the loop or the sender. */
	ss->st.dropped_full++;
	log_warn("source %s: %s: the spool is full: syslog datagram from %s dropped "
	    "(%" PRIu64 " dropped so far); the spool empties as the relays acknowledge events "
	    "(check them) or give it more room (spool.max_size)", ss->cfg->name, l->addr->text,
	    peer, ss->st.dropped_full);
}

/* ---------------------------------------------------------------- tcp framing */

/* The first LF or NUL in p[from, len), or len. */
static size_t
syslog_line_end(const uint8_t *p, size_t from, size_t len)
{
	const uint8_t *lf, *nul;
	size_t end;

	if (from >= len)
		return len;
	lf = memchr(p + from, '\n', len - from);
	end = lf != NULL ? (size_t)(lf - p) : len;
	nul = end > from ? memchr(p + from, '\0', end - from) : NULL;
	return nul != NULL ? (size_t)(nul - p) : end;
}

static int
syslog_conn_bad_count(struct syslog_conn *c, const char *why)
{
	struct syslog_source *ss = c->ss;

	ss->st.framing_errors++;
	log_warn("source %s: %s: closing the connection from %s: malformed octet count (%s); "
	    "the sender must frame every message as \"LENGTH SPACE MESSAGE\" (RFC 6587) or "
	    "end every message with a newline", ss->cfg->name, c->l->addr->text, c->peer, why);
	return -EPROTO;
}

/*
 * Takes the whole messages out of c's buffer and spools them. Returns 0
 * when it needs more bytes, -EAGAIN when the spool is full (the message is
 * kept, first in the buffer), or -EPROTO for a malformed frame (logged).
 * At eof, a last newline-framed message without its line end is complete.
 */
static int
syslog_conn_frames(struct syslog_conn *c)
{
	static const uint8_t none[1];
	struct syslog_source *ss = c->ss;
	const uint64_t max = ss->cfg->max_message_size;
	const uint8_t *p;
	size_t avail, i;
	uint64_t n;
	int r;

	for (;;) {
		p = c->in.data != NULL ? c->in.data + c->off : none;   /* nothing read yet */
		avail = c->in.len - c->off;
		switch (c->state) {
		case CONN_DETECT:
			if (avail == 0)
				return 0;
			/* RFC 6587: a count starts with a digit, a syslog message with '<'. */
			syslog_conn_set_state(c, syslog_digit(p[0]) ? CONN_OCTET_LEN : CONN_LINE);
			log_debug("source %s: %s: connection from %s uses %s", ss->cfg->name,
			    c->l->addr->text, c->peer, c->state == CONN_LINE ? "newline framing" :
			    "octet counting");
			break;
		case CONN_OCTET_LEN:
			n = 0;
			for (i = 0; i < avail && i < SYSLOG_LEN_DIGITS && syslog_digit(p[i]); i++)
				n = n * 10 + (uint64_t)(p[i] - '0');
			if (i == avail) {
				if (c->eof && avail > 0)
					log_info("source %s: %s: connection from %s ended within an octet "
					    "count; %zu bytes discarded", ss->cfg->name, c->l->addr->text,
					    c->peer, avail);
				return 0;
			}
			if (i == 0)
				return syslog_conn_bad_count(c, "a frame does not start with a digit");
			if (p[i] != ' ')
				return syslog_conn_bad_count(c, i == SYSLOG_LEN_DIGITS ?
				    "more than 10 digits" : "the length is not followed by a space");
			c->off += i + 1;
			if (n > max) {
				/* Read and thrown away: cutting it would leave a broken message. */
				ss->st.dropped_oversize++;
				log_warn("source %s: %s: a message of %" PRIu64 " bytes from %s is longer "
				    "than max_message_size (%" PRIu64 " bytes): skipped (%" PRIu64 " so far); "
				    "raise max_message_size if such messages are expected", ss->cfg->name,
				    c->l->addr->text, n, c->peer, max, ss->st.dropped_oversize);
				c->skip = n;
				syslog_conn_set_state(c, CONN_OCTET_SKIP);
			} else if (n > 0) {
				c->want = n;
				syslog_conn_set_state(c, CONN_OCTET_MSG);
			}
			/* n == 0: an empty frame, no message. */
			break;
		case CONN_OCTET_MSG:
			if (avail < c->want) {
				if (c->eof)
					log_info("source %s: %s: connection from %s ended within a message "
					    "(%zu of %" PRIu64 " bytes); discarded", ss->cfg->name,
					    c->l->addr->text, c->peer, avail, c->want);
				return 0;
			}
			if ((r = syslog_conn_message(c, p, (size_t)c->want, false)) != 0)
				return r;
			c->off += (size_t)c->want;
			syslog_conn_set_state(c, CONN_OCTET_LEN);
			break;
		case CONN_OCTET_SKIP:
			n = avail < c->skip ? avail : c->skip;
			c->off += (size_t)n;
			c->skip -= n;
			if (c->skip != 0)
				return 0;
			syslog_conn_set_state(c, CONN_OCTET_LEN);
			break;
		case CONN_LINE:
			i = syslog_line_end(p, c->scan, avail);
			if (i < avail) {
				/* Longer than max, unless only by the CR of a CR LF. */
				bool cut = i > max && !(i == max + 1 && p[max] == '\r');

				c->scan = i;
				if ((r = syslog_conn_message(c, p, cut ? (size_t)max : i, cut)) != 0)
					return r;
				c->off += i + 1;
				c->scan = 0;
				break;
			}
			c->scan = avail;
			/* Past max without a line end (a CR at max may still be a CR LF's). */
			if (avail > max && !(avail == max + 1 && p[max] == '\r')) {
				/* Cut here; the rest of the line is discarded as it comes. */
				if ((r = syslog_conn_message(c, p, (size_t)max, true)) != 0)
					return r;
				c->off += avail;
				c->scan = 0;
				syslog_conn_set_state(c, CONN_LINE_DISCARD);
				break;
			}
			if (c->eof && avail > 0) {
				/* The sender's last message, without a line end: complete as it is. */
				if ((r = syslog_conn_message(c, p, avail, false)) != 0)
					return r;
				c->off += avail;
				c->scan = 0;
			}
			return 0;
		case CONN_LINE_DISCARD:
			i = syslog_line_end(p, 0, avail);
			if (i == avail) {
				c->off += avail;
				return 0;
			}
			c->off += i + 1;
			syslog_conn_set_state(c, CONN_LINE);
			break;
		default:
			return -EPIPE;
		}
	}
}

/*
 * syslog_conn_frames, then what was consumed leaves the buffer (one move
 * per read). Nothing comes after the last message of a connection that
 * ended or failed: its event in progress is whole and shipped.
 */
static int
syslog_conn_process(struct syslog_conn *c)
{
	int r = c->broken ? 0 : syslog_conn_frames(c);

	if (c->off != 0) {
		buf_consume(&c->in, c->off);
		c->off = 0;
	}
	if (r == 0 && (c->eof || c->broken) && multiline_pending(&c->ml))
		r = syslog_ml_ship(c, false);
	/* Everything read is spooled: an idle connection holds no memory. */
	if (c->in.len == 0 && c->charged != 0 && c->state != CONN_CLOSED)
		syslog_conn_uncharge(c);
	else if (c->in.len == 0 && c->tls != NULL)
		buf_free(&c->in);   /* a record taken in while the budget was short */
	return r;
}

/* The spool is full: every connection of the source waits (TCP pushes back on the senders). */
static void
syslog_source_pause(struct syslog_source *ss)
{
	struct syslog_conn *c;

	if (ss->paused)
		return;
	ss->paused = true;
	ss->st.pauses++;
	TAILQ_FOREACH(c, &ss->conns, link)
		syslog_conn_read_stop(c);
	log_warn("source %s: the spool is full: TCP senders wait until it has room again "
	    "(it empties as the relays acknowledge events)", ss->cfg->name);
}

/* c's event cannot grow within memory_limit's share: c stops reading until bytes come back. */
static void
syslog_conn_wait_ml(struct syslog_conn *c)
{
	struct syslog_source *ss = c->ss;

	syslog_conn_read_stop(c);
	c->ml_waiting = true;
	ss->st.budget_waits++;
	budget_wait(ss->budget, &c->bw);
	log_warn("source %s: %s: the connection from %s waits: memory_limit's share for "
	    "connection buffers cannot hold its multiline event as it grows (raise memory_limit, "
	    "or lower multiline.max_bytes or multiline.flush_timeout)", ss->cfg->name,
	    c->l->addr->text, c->peer);
}

/*
 * What syslog_conn_process returned for c: pauses the source on a full
 * spool (-EAGAIN: returns it), waits for memory on -ENOBUFS, and closes c
 * when it is finished, or broken (r another error) once its event in
 * progress is shipped. Returns 0 or -EAGAIN.
 */
static int
syslog_conn_after(struct syslog_conn *c, int r)
{
	if (r != -ENOBUFS && c->ml_waiting) {
		/* Run by resume, and it fit: it no longer waits for the budget. */
		budget_cancel(c->ss->budget, &c->bw);
		c->ml_waiting = false;
	}
	if (r != 0 && r != -EAGAIN && r != -ENOBUFS) {
		c->broken = true;
		syslog_conn_read_stop(c);
		r = syslog_conn_process(c);
	}
	if (r == -EAGAIN) {
		syslog_source_pause(c->ss);
		return -EAGAIN;
	}
	if (r == -ENOBUFS)
		syslog_conn_wait_ml(c);
	else if (c->eof || c->broken)
		syslog_conn_close(c);
	return 0;
}

/* Spools what c holds; closes c when it is finished or broken; pauses on a full spool. */
static void
syslog_conn_drive(struct syslog_conn *c)
{
	(void)syslog_conn_after(c, syslog_conn_process(c));
}

static void
syslog_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct syslog_conn *c = h->data;
	size_t room = c->in.max - c->in.len;

	(void)suggested;
	/* The bound, taken once: the buffer grows within it without asking again. */
	if (c->charged == 0 && c->ss->budget != NULL) {
		if (budget_take(c->ss->budget, c->in.max) != 0) {
			*b = uv_buf_init(NULL, 0);   /* the read callback gets UV_ENOBUFS */
			return;
		}
		c->charged = c->in.max;
	}
	/* Never full here: the frames leave less than a whole message behind. */
	if (room > SYSLOG_READ_CHUNK)
		room = SYSLOG_READ_CHUNK;
	if (room == 0 || buf_reserve(&c->in, room) != 0) {
		*b = uv_buf_init(NULL, 0);   /* the read callback gets UV_ENOBUFS */
		return;
	}
	*b = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void
syslog_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct syslog_conn *c = s->data;
	struct syslog_source *ss = c->ss;

	(void)b;
	if (nread == 0)
		return;
	if (nread == UV_ENOBUFS && c->charged == 0 && ss->budget != NULL) {
		syslog_conn_wait_budget(c);
		return;
	}
	if (nread == UV_EOF) {
		c->eof = true;
		uv_read_stop(s);
	} else if (nread < 0) {
		ss->st.read_errors++;
		log_warn("source %s: %s: connection from %s failed: %s; closed", ss->cfg->name,
		    c->l->addr->text, c->peer, uv_strerror((int)nread));
		(void)syslog_conn_after(c, -EPIPE);
		return;
	} else {
		c->in.len += (size_t)nread;
	}
	syslog_conn_drive(c);
}

/* Reads c again (or, for tls://, once it is open). */
static int
syslog_conn_read_start(struct syslog_conn *c)
{
	if (c->tls == NULL)
		return uv_read_start((uv_stream_t *)&c->tcp, syslog_conn_alloc, syslog_conn_read);
	if (c->tls_open)
		tls_conn_resume_reading(c->tls);
	return 0;
}

/* ---------------------------------------------------------------- tls:// */

static void
syslog_tls_on_handshake(void *ctx, int status)
{
	struct syslog_conn *c = ctx;
	struct syslog_source *ss = c->ss;
	const struct config_list *allowed = &ss->cfg->tls.allowed_cns;
	char cn[TLS_CN_MAX + 1];

	if (status != 0) {
		/* common/tls logged why; its on_close follows. */
		ss->st.tls_handshakes_failed++;
		return;
	}
	c->tls_up = true;
	if (!ss->cfg->tls.verify_client || allowed->n == 0)
		return;
	if (tls_conn_peer_cn(c->tls, cn, sizeof(cn)) != 0)
		cn[0] = '\0';   /* none usable: no pattern allows it */
	else
		for (size_t i = 0; i < allowed->n; i++)
			if (fnmatch(((char **)allowed->items)[i], cn, 0) == 0)
				return;
	ss->st.tls_cn_refused++;
	log_warn("source %s: %s: connection from %s closed: its client certificate's common "
	    "name '%s' is not allowed by tls.allowed_cns (or it has no usable one); allow it, "
	    "or give the sender a certificate with an allowed name", ss->cfg->name,
	    c->l->addr->text, c->peer, cn);
	syslog_conn_close(c);
}

/*
 * Decrypted bytes: into the same buffer and framing as tcp://. The buffer
 * has room for a record beyond what the frames leave behind, and no record
 * comes while reading is paused.
 */
static void
syslog_tls_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct syslog_conn *c = ctx;
	struct syslog_source *ss = c->ss;

	if (c->state == CONN_CLOSED || c->broken)
		return;
	if (c->charged == 0 && ss->budget != NULL) {
		/* The record is here already: it is taken in, and no other until bytes come back. */
		if (budget_take(ss->budget, c->in.max) == 0)
			c->charged = c->in.max;
		else
			syslog_conn_wait_budget(c);
	}
	if (buf_reserve(&c->in, n) != 0) {
		log_error("source %s: %s: connection from %s: no room for %zu decrypted bytes "
		    "beside %zu kept; closed", ss->cfg->name, c->l->addr->text, c->peer, n,
		    c->in.len);
		(void)syslog_conn_after(c, -EPIPE);
		return;
	}
	memcpy(c->in.data + c->in.len, p, n);
	c->in.len += n;
	syslog_conn_drive(c);
}

static void
syslog_tls_on_close(void *ctx, int reason)
{
	struct syslog_conn *c = ctx;
	struct syslog_source *ss = c->ss;

	c->tls_open = false;
	if (c->state == CONN_CLOSED) {
		uv_close((uv_handle_t *)&c->gone, syslog_conn_closed);
		return;
	}
	if (reason != 0 && c->tls_up) {
		ss->st.read_errors++;
		log_warn("source %s: %s: connection from %s failed: %s; closed", ss->cfg->name,
		    c->l->addr->text, c->peer, tls_conn_reason(c->tls));
		(void)syslog_conn_after(c, -EPIPE);
		return;
	}
	if (reason != 0)
		log_debug("source %s: %s: %s: %s", ss->cfg->name, c->l->addr->text, c->peer,
		    tls_conn_reason(c->tls));
	/* What it sent and the spool has no room for yet stays: c closes once it is spooled. */
	c->eof = true;
	syslog_conn_drive(c);
}

static const struct tls_conn_callbacks syslog_tls_callbacks = {
	.on_handshake = syslog_tls_on_handshake,
	.on_data = syslog_tls_on_data,
	.on_close = syslog_tls_on_close,
};

static void syslog_conn_on_budget(struct budget_waiter *w);

/* Beyond max_connections: accepted (or it would wait in the backlog) and closed at once. */
static void
syslog_refused_closed(uv_handle_t *h)
{
	struct syslog_source *ss = h->data;

	free(h);
	syslog_source_closed(ss);
}

static void
syslog_tcp_refuse(struct syslog_listener *l)
{
	struct syslog_source *ss = l->ss;
	char peer[SYSLOG_PEER_MAX];
	uv_tcp_t *t;

	if ((t = malloc(sizeof(*t))) == NULL)
		syslog_oom();
	uv_tcp_init(ss->loop, t);
	t->data = ss;
	if (uv_accept((uv_stream_t *)&l->h.tcp, (uv_stream_t *)t) == 0) {
		ss->st.connections_refused++;
		syslog_peer_name(t, peer, sizeof(peer));
		log_warn("source %s: %s: connection from %s refused: max_connections (%" PRId64 ") "
		    "are open (%" PRIu64 " refused so far); raise max_connections if more senders "
		    "are expected", ss->cfg->name, l->addr->text, peer, ss->cfg->max_connections,
		    ss->st.connections_refused);
	}
	ss->closing++;
	uv_close((uv_handle_t *)t, syslog_refused_closed);
}

/* Its handshake runs: messages come once it is done, within handshake_timeout. */
static void
syslog_tls_accept(struct syslog_conn *c, uv_stream_t *server)
{
	struct syslog_source *ss = c->ss;
	int r;

	if ((r = tls_conn_accept(ss->loop, ss->tls, server, &syslog_tls_callbacks, c,
	    &c->tls)) != 0) {
		log_warn("source %s: %s: accepting a connection failed: %s", ss->cfg->name,
		    c->l->addr->text, tls_strerror(r));
		multiline_free(&c->ml);
		free(c);
		return;
	}
	c->tls_open = true;
	uv_timer_init(ss->loop, &c->gone);
	c->gone.data = c;
	snprintf(c->peer, sizeof(c->peer), "%s", tls_conn_peer(c->tls));
	TAILQ_INSERT_TAIL(&ss->conns, c, link);
	ss->nconns++;
	ss->st.connections++;
	ss->st.connections_open = ss->nconns;
	log_debug("source %s: %s: connection from %s", ss->cfg->name, c->l->addr->text, c->peer);
	/* While the spool is full, a new sender waits like the others. */
	if (ss->paused)
		tls_conn_pause_reading(c->tls);
}

static void
syslog_tcp_connection(uv_stream_t *server, int status)
{
	struct syslog_listener *l = server->data;
	struct syslog_source *ss = l->ss;
	struct syslog_conn *c;
	int r;

	if (status < 0) {
		ss->st.read_errors++;
		log_warn("source %s: %s: accepting a connection failed: %s", ss->cfg->name,
		    l->addr->text, uv_strerror(status));
		return;
	}
	if (ss->stopping)
		return;
	if (ss->nconns >= (uint64_t)ss->cfg->max_connections) {
		syslog_tcp_refuse(l);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		syslog_oom();
	c->ss = ss;
	c->l = l;
	c->state = CONN_DETECT;
	c->bw.cb = syslog_conn_on_budget;
	/* tls://: a record arrives whole, beside what the frames leave (less than a message). */
	buf_init(&c->in, ss->cfg->max_message_size + SYSLOG_HEADER_MAX +
	    (l->addr->scheme == CONFIG_SCHEME_TLS ? TLS_RECORD_MAX : 0));
	multiline_init(&c->ml, &ss->rule, ss->cfg->multiline.max_bytes);
	if (l->addr->scheme == CONFIG_SCHEME_TLS) {
		syslog_tls_accept(c, server);
		return;
	}
	uv_tcp_init(ss->loop, &c->tcp);
	c->tcp.data = c;
	if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) != 0) {
		log_warn("source %s: %s: accepting a connection failed: %s", ss->cfg->name,
		    l->addr->text, uv_strerror(r));
		syslog_conn_set_state(c, CONN_CLOSED);
		ss->closing++;
		uv_close((uv_handle_t *)&c->tcp, syslog_conn_closed);
		return;
	}
	syslog_peer_name(&c->tcp, c->peer, sizeof(c->peer));
	TAILQ_INSERT_TAIL(&ss->conns, c, link);
	ss->nconns++;
	ss->st.connections++;
	ss->st.connections_open = ss->nconns;
	log_debug("source %s: %s: connection from %s", ss->cfg->name, l->addr->text, c->peer);
	/* While the spool is full, a new sender waits like the others. */
	if (!ss->paused && (r = uv_read_start((uv_stream_t *)&c->tcp, syslog_conn_alloc,
	    syslog_conn_read)) != 0) {
		log_warn("source %s: %s: cannot read from %s: %s; closed", ss->cfg->name,
		    l->addr->text, c->peer, uv_strerror(r));
		syslog_conn_close(c);
	}
}

/* ---------------------------------------------------------------- datagrams */

/* The socket of a udp or unix listener. */
static int
syslog_listener_fd(const struct syslog_listener *l)
{
	uv_os_fd_t fd = -1;

	if (l->addr->scheme == CONFIG_SCHEME_UNIX)
		return l->fd;
	if (uv_fileno(&l->h.handle, &fd) != 0)
		return -1;
	return fd;
}

/*
 * Counts and logs the datagrams the kernel dropped on l's socket since the
 * last look: sk_drops, the counter SO_RXQ_OVFL reports, read with
 * SO_MEMINFO because libuv's recvmmsg passes no control messages. Called
 * after each batch read, so drops are seen at the next wake-up at the
 * latest: the kernel drops only when data waits, which wakes the loop.
 */
static void
syslog_kernel_drops(struct syslog_listener *l)
{
	struct syslog_source *ss = l->ss;
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);
	uint32_t n;
	int fd = syslog_listener_fd(l);

	if (l->drops_unknown)
		return;
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len) != 0 ||
	    len <= SK_MEMINFO_DROPS * sizeof(mi[0])) {
		l->drops_unknown = true;
		log_warn("source %s: %s: the kernel does not tell how many datagrams it dropped "
		    "(SO_MEMINFO: %s); drops in a full receive buffer go uncounted: Linux 4.12 or "
		    "later counts them", ss->cfg->name, l->addr->text, strerror(errno));
		return;
	}
	/* A 32-bit counter in the kernel: the difference survives its wrap. */
	n = mi[SK_MEMINFO_DROPS] - l->kernel_drops;
	if (n == 0)
		return;
	l->kernel_drops = mi[SK_MEMINFO_DROPS];
	ss->st.dropped_kernel += n;
	log_warn("source %s: %s: the kernel dropped %" PRIu32 " datagrams (%" PRIu64 " so far): "
	    "they came faster than the agent read them and its receive buffer was full; raise "
	    "receive_buffer (and net.core.rmem_max, or give the agent CAP_NET_ADMIN) or give "
	    "the agent more CPU", ss->cfg->name, l->addr->text, n, ss->st.dropped_kernel);
}

/* A datagram of len bytes at p, cut at max_message_size (the slot may hold more). */
static void
syslog_slot(struct syslog_listener *l, const uint8_t *p, size_t len, bool truncated,
    const struct sockaddr *from)
{
	uint64_t max = l->ss->cfg->max_message_size;

	if (len > max) {
		len = (size_t)max;
		truncated = true;
	}
	syslog_datagram(l, p, len, truncated, from);
}

static void
syslog_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct syslog_listener *l = h->data;

	(void)suggested;
	/*
	 * Handled before the next receive, so one buffer serves every batch.
	 * Several 64 KiB slots: libuv reads that many datagrams per recvmmsg.
	 */
	*b = uv_buf_init((char *)l->dgram, (unsigned)l->dgram_size);
}

static void
syslog_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *from,
    unsigned flags)
{
	struct syslog_listener *l = h->data;
	struct syslog_source *ss = l->ss;

	if (nread < 0) {
		ss->st.read_errors++;
		log_warn("source %s: %s: receiving a datagram failed: %s", ss->cfg->name,
		    l->addr->text, uv_strerror((int)nread));
		return;
	}
	/*
	 * The end of a recvmmsg batch (the buffer is l's and stays), or
	 * nothing more to read: a moment to see what the kernel dropped.
	 */
	if ((flags & UV_UDP_MMSG_FREE) || from == NULL) {
		syslog_kernel_drops(l);
		return;
	}
	if (nread == 0)
		return;   /* an empty datagram */
	syslog_slot(l, (const uint8_t *)b->base, (size_t)nread, (flags & UV_UDP_PARTIAL) != 0,
	    from);
}

static void
syslog_unix_readable(uv_poll_t *h, int status, int events)
{
	struct syslog_listener *l = h->data;
	struct syslog_source *ss = l->ss;
	size_t done = 0;

	(void)events;
	if (status < 0) {
		ss->st.read_errors++;
		log_warn("source %s: %s: waiting for datagrams failed: %s", ss->cfg->name,
		    l->addr->text, uv_strerror(status));
		return;
	}
	while (done < SYSLOG_DGRAM_BURST && !ss->stopping) {
		int n = recvmmsg(l->fd, l->mmsg, (unsigned)l->nslots, MSG_DONTWAIT, NULL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				ss->st.read_errors++;
				log_warn("source %s: %s: receiving a datagram failed: %s", ss->cfg->name,
				    l->addr->text, strerror(errno));
			}
			break;
		}
		for (int i = 0; i < n; i++)
			syslog_slot(l, l->iov[i].iov_base, l->mmsg[i].msg_len,
			    (l->mmsg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, NULL);
		done += (size_t)n;
		if ((size_t)n < l->nslots)
			break;   /* the queue is empty */
	}
	syslog_kernel_drops(l);
	/* The poll is level-triggered: what is left is read at the next turn. */
}

/*
 * Asks for receive_buffer bytes of kernel queue for fd: SO_RCVBUFFORCE
 * passes net.core.rmem_max when the agent may (CAP_NET_ADMIN), SO_RCVBUF
 * is clamped to it. Logs what the kernel granted, and warns when it is less.
 */
static void
syslog_rcvbuf(struct syslog_listener *l, int fd)
{
	struct syslog_source *ss = l->ss;
	int want = (int)ss->cfg->receive_buffer, got = 0;
	socklen_t len = sizeof(got);

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want)) != 0) {
		log_warn("source %s: %s: cannot set the receive buffer to %d bytes: %s; bursts "
		    "beyond the system's default are dropped (and counted)", ss->cfg->name,
		    l->addr->text, want, strerror(errno));
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0) {
		log_warn("source %s: %s: cannot read the receive buffer's size: %s", ss->cfg->name,
		    l->addr->text, strerror(errno));
		return;
	}
	/* Linux reports twice what was set: the other half is its bookkeeping. */
	if (got < want)
		log_warn("source %s: %s: receive buffer of %d bytes, not the %d of receive_buffer: "
		    "the kernel capped it at net.core.rmem_max; raise that sysctl, or give the agent "
		    "CAP_NET_ADMIN, or bursts larger than it are dropped (and counted)",
		    ss->cfg->name, l->addr->text, got, want);
	else
		log_info("source %s: %s: receive buffer of %d bytes", ss->cfg->name, l->addr->text,
		    got);
}

/* Unix datagram senders that do not wait lose what exceeds the queue: warn when it is short. */
static void
syslog_unix_qlen(struct syslog_listener *l)
{
	FILE *f = fopen("/proc/sys/net/unix/max_dgram_qlen", "r");
	long qlen = -1;

	if (f == NULL)
		return;
	if (fscanf(f, "%ld", &qlen) != 1)
		qlen = -1;
	fclose(f);
	if (qlen >= 0 && qlen < SYSLOG_UNIX_QLEN_MIN)
		log_warn("source %s: %s: net.unix.max_dgram_qlen is %ld: a sender that does not "
		    "wait (journald forwarding, non-blocking loggers) loses what is beyond %ld "
		    "datagrams queued while the agent is busy; set it to %d or more (systemd does)",
		    l->ss->cfg->name, l->addr->text, qlen, qlen, SYSLOG_UNIX_QLEN_MIN);
}

/* ---------------------------------------------------------------- listeners */

static int
syslog_resolve(struct syslog_listener *l, int socktype, struct sockaddr_storage *out)
{
	struct addrinfo hints = { 0 }, *res;
	char port[8];
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", l->addr->port);
	if ((rc = getaddrinfo(l->addr->host, port, &hints, &res)) != 0) {
		log_error("source %s: %s: cannot resolve '%s': %s; write an IP address of this host",
		    l->ss->cfg->name, l->addr->text, l->addr->host, gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}
	/* The first address only: one listener per URL (write one URL per address). */
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int
syslog_listen_inet(struct syslog_listener *l)
{
	struct syslog_source *ss = l->ss;
	struct sockaddr_storage sa;
	char name[SYSLOG_PEER_MAX];
	int r, salen = sizeof(l->bound);
	bool udp = l->addr->scheme == CONFIG_SCHEME_UDP;

	if ((r = syslog_resolve(l, udp ? SOCK_DGRAM : SOCK_STREAM, &sa)) != 0)
		return r;
	if (udp) {
		l->dgram_size = SYSLOG_MMSG * SYSLOG_UDP_SLOT;
		if ((l->dgram = malloc(l->dgram_size)) == NULL)
			return -ENOMEM;
		/* The socket exists from here, so its buffer is large before the first datagram. */
		if ((r = uv_udp_init_ex(ss->loop, &l->h.udp, sa.ss_family | UV_UDP_RECVMMSG)) != 0) {
			log_error("source %s: cannot listen on %s: %s", ss->cfg->name, l->addr->text,
			    uv_strerror(r));
			return r;
		}
		l->open = true;
		syslog_rcvbuf(l, syslog_listener_fd(l));
		/* No SO_REUSEADDR: two daemons must not share (and split) one syslog port. */
		r = uv_udp_bind(&l->h.udp, (const struct sockaddr *)&sa, 0);
		if (r == 0)
			r = uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&l->bound, &salen);
		if (r == 0)
			r = uv_udp_recv_start(&l->h.udp, syslog_udp_alloc, syslog_udp_recv);
	} else {
		uv_tcp_init(ss->loop, &l->h.tcp);
		l->open = true;
		r = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&sa, 0);
		/* libuv may report a bind error only at listen. */
		if (r == 0)
			r = uv_listen((uv_stream_t *)&l->h.tcp, SYSLOG_BACKLOG, syslog_tcp_connection);
		if (r == 0)
			r = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&l->bound, &salen);
	}
	if (r != 0) {
		log_error("source %s: cannot listen on %s: %s; %s", ss->cfg->name, l->addr->text,
		    uv_strerror(r), syslog_bind_hint(r, l->addr->scheme));
		return r;
	}
	syslog_addr_name((const struct sockaddr *)&l->bound, name, sizeof(name));
	log_info("source %s: listening on %s (%s)", ss->cfg->name, l->addr->text, name);
	return 0;
}

/* 0 if something receives on the socket at sa_un, -ECONNREFUSED if nothing does. */
static int
syslog_unix_probe(const struct sockaddr_un *sa_un)
{
	int fd, r = 0;

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	/* A stream socket bound there says EPROTOTYPE: in use too. */
	if (connect(fd, (const struct sockaddr *)sa_un, sizeof(*sa_un)) != 0)
		r = -errno;
	close(fd);
	return r == -EPROTOTYPE ? 0 : r;
}

static int
syslog_listen_unix(struct syslog_listener *l)
{
	struct syslog_source *ss = l->ss;
	const char *path = l->addr->path, *name = ss->cfg->name, *url = l->addr->text;
	const char *mode_text = ss->cfg->socket_mode != NULL ? ss->cfg->socket_mode : "0666";
	mode_t mode = (mode_t)strtol(mode_text, NULL, 8);
	struct sockaddr_un sa_un = { .sun_family = AF_UNIX };
	struct stat st;
	int r;

	if (strlen(path) >= sizeof(sa_un.sun_path)) {
		log_error("source %s: %s: the path is longer than a unix socket's can be (%zu bytes); "
		    "choose a shorter one", name, url, sizeof(sa_un.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa_un.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("source %s: %s: %s exists and is not a socket; the agent replaces "
			    "only stale sockets: move it away or choose another path", name, url, path);
			return -EEXIST;
		}
		if ((r = syslog_unix_probe(&sa_un)) == 0) {
			log_error("source %s: %s: another process receives on %s; stop it (another "
			    "agent? rsyslog?) or choose another path", name, url, path);
			return -EADDRINUSE;
		}
		if (r != -ECONNREFUSED) {
			log_error("source %s: %s: cannot tell whether %s is in use: %s; remove it if "
			    "it is stale", name, url, path, strerror(-r));
			return r;
		}
		/* Left by a process that is gone (a crash, kill -9): nobody can connect to it. */
		if (unlink(path) != 0 && errno != ENOENT) {
			r = -errno;
			log_error("source %s: %s: cannot remove the stale socket %s: %s; remove it by "
			    "hand", name, url, path, strerror(-r));
			return r;
		}
		log_info("source %s: %s: replaced the stale socket %s", name, url, path);
	} else if (errno != ENOENT) {
		r = -errno;
		log_error("source %s: cannot listen on %s: %s: %s; check the directory", name, url,
		    path, strerror(-r));
		return r;
	}
	/* Slots of max_message_size (a longer datagram says MSG_TRUNC), as many as fit the cap. */
	l->slot = (size_t)ss->cfg->max_message_size;
	l->nslots = SYSLOG_UNIX_SLOTS_MAX / l->slot;
	if (l->nslots > SYSLOG_MMSG)
		l->nslots = SYSLOG_MMSG;
	if (l->nslots == 0)
		l->nslots = 1;
	l->dgram_size = l->nslots * l->slot;
	if ((l->dgram = malloc(l->dgram_size)) == NULL ||
	    (l->mmsg = calloc(l->nslots, sizeof(*l->mmsg))) == NULL ||
	    (l->iov = calloc(l->nslots, sizeof(*l->iov))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < l->nslots; i++) {
		l->iov[i].iov_base = l->dgram + i * l->slot;
		l->iov[i].iov_len = l->slot;
		l->mmsg[i].msg_hdr.msg_iov = &l->iov[i];
		l->mmsg[i].msg_hdr.msg_iovlen = 1;
	}
	/* libuv has no unix datagram handle: a socket of ours, watched by a uv_poll_t. */
	if ((l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		log_error("source %s: %s: cannot create a socket: %s", name, url, strerror(-r));
		return r;
	}
	syslog_rcvbuf(l, l->fd);
	syslog_unix_qlen(l);
	if (bind(l->fd, (const struct sockaddr *)&sa_un, sizeof(sa_un)) != 0) {
		r = -errno;
		log_error("source %s: cannot listen on %s: %s; %s", name, url, strerror(-r),
		    syslog_bind_hint(r, CONFIG_SCHEME_UNIX));
		return r;
	}
	/*
	 * bind created the file with 0777 & ~umask; until chmod only the umask
	 * protects it (the daemon's umask keeps others from writing).
	 */
	if (chmod(path, mode) != 0 || lstat(path, &st) != 0) {
		r = -errno;
		log_error("source %s: %s: cannot set mode %s on %s: %s", name, url, mode_text, path,
		    strerror(-r));
		unlink(path);
		return r;
	}
	l->created = true;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	if ((r = uv_poll_init(ss->loop, &l->h.poll, l->fd)) != 0) {
		log_error("source %s: %s: cannot watch the socket: %s", name, url, uv_strerror(r));
		return r;
	}
	l->open = true;
	if ((r = uv_poll_start(&l->h.poll, UV_READABLE, syslog_unix_readable)) != 0) {
		log_error("source %s: %s: cannot watch the socket: %s", name, url, uv_strerror(r));
		return r;
	}
	log_info("source %s: listening on %s (mode %s)", name, url, mode_text);
	return 0;
}

static int
syslog_listener_open(struct syslog_source *ss, struct syslog_listener *l,
    const struct config_addr *addr)
{
	l->ss = ss;
	l->addr = addr;
	l->fd = -1;
	l->h.handle.data = l;
	switch (addr->scheme) {
	case CONFIG_SCHEME_UDP:
	case CONFIG_SCHEME_TCP:
	case CONFIG_SCHEME_TLS:
		return syslog_listen_inet(l);
	case CONFIG_SCHEME_UNIX:
		return syslog_listen_unix(l);
	default:
		log_error("source %s: %s: a syslog source listens on udp://, tcp://, tls:// or unix:// "
		    "URLs",
		    ss->cfg->name, addr->text);
		return -EINVAL;
	}
}

/* ---------------------------------------------------------------- API */

static void
syslog_ml_timer_closed(uv_handle_t *h)
{
	syslog_source_closed(h->data);
}

/* Closes everything; ss is freed after the last close callback. */
static void
syslog_source_shutdown(struct syslog_source *ss)
{
	struct syslog_conn *c;

	ss->stopping = true;
	while ((c = TAILQ_FIRST(&ss->conns)) != NULL) {
		/* The sender considers what it sent delivered: a last try for a full spool. */
		if ((ss->paused || c->ml_waiting) && syslog_conn_process(c) == -EAGAIN)
			log_warn("source %s: %s: stopping while the spool is full: %zu bytes from %s "
			    "not spooled and lost", ss->cfg->name, c->l->addr->text, c->in.len,
			    c->peer);
		/* Nothing will continue its event in progress (a reload starts a new source). */
		if (multiline_pending(&c->ml) && syslog_ml_ship(c, false) == -EAGAIN)
			log_warn("source %s: %s: stopping while the spool is full: an event of %" PRIu32
			    " messages from %s not spooled and lost", ss->cfg->name, c->l->addr->text,
			    c->ml.lines, c->peer);
		syslog_conn_close(c);
	}
	if (ss->multiline) {
		ss->closing++;
		uv_close((uv_handle_t *)&ss->ml_timer, syslog_ml_timer_closed);
	}
	for (size_t i = 0; i < ss->nlisteners; i++)
		syslog_listener_close(&ss->listeners[i]);
	if (ss->closing == 0)
		syslog_source_free(ss);
}

int
syslog_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct syslog_source **out)
{
	const struct config_addr *addrs = cfg->listen.items;
	struct syslog_source *ss;
	int r;

	if ((ss = calloc(1, sizeof(*ss))) == NULL)
		return -ENOMEM;
	ss->loop = loop;
	ss->cfg = cfg;
	ss->spool = spool;
	pipeline_init(&ss->pipe, spool, "event too large with its fields", cfg->chain);
	TAILQ_INIT(&ss->conns);
	/* Syslog sources have no format key (cfg->format is the file default): always syslog. */
	if ((r = source_line_init(&ss->sl, cfg, &parser_syslog, host, cfg->max_message_size)) != 0) {
		free(ss);
		return r;
	}
	if (cfg->multiline.start != NULL || cfg->multiline.continuation != NULL) {
		char err[256];

		/* The config check compiled it already: this fails only without memory. */
		if ((r = multiline_rule_init(&ss->rule, cfg->multiline.start,
		    cfg->multiline.continuation, err, sizeof(err))) != 0) {
			log_error("source %s: multiline: %s", cfg->name, err);
			source_line_free(&ss->sl);
			free(ss);
			return r;
		}
		ss->multiline = true;
		uv_timer_init(loop, &ss->ml_timer);
		ss->ml_timer.data = ss;
	}
	snprintf(ss->label, sizeof(ss->label), "source %s", cfg->name);
	agent_config_source_tls_options(cfg, &ss->tls_o);
	if (agent_config_has_tls_listener(cfg) &&
	    (r = tls_config_load(&ss->tls_o, ss->label, &ss->tls)) != 0)
		goto fail;
	if ((ss->listeners = calloc(cfg->listen.n, sizeof(*ss->listeners))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->listen.n; i++) {
		/* Counted first, so that a half-opened listener is closed too. */
		ss->nlisteners++;
		if ((r = syslog_listener_open(ss, &ss->listeners[i], &addrs[i])) != 0)
			goto fail;
	}
	*out = ss;
	return 0;
fail:
	if (r == -ENOMEM)
		log_error("source %s: out of memory starting the listeners", cfg->name);
	syslog_source_shutdown(ss);
	return r;
}

/*
 * Ships the events no message followed within flush_timeout, and runs the
 * frames again of the connections whose event can grow now, then sets
 * the timer for what comes next. Stops at a full spool: resume sets it.
 */
static void
syslog_ml_timer(uv_timer_t *t)
{
	struct syslog_source *ss = t->data;
	uint64_t now = source_now_ns(), timeout = ss->cfg->multiline.flush_timeout_ms * 1000000;
	struct syslog_conn *c, *next;
	int r;

	for (c = TAILQ_FIRST(&ss->conns); c != NULL && !ss->paused && !ss->stopping; c = next) {
		/* Only c may leave the list here: budget callbacks set flags, nothing more. */
		next = TAILQ_NEXT(c, link);
		if (c->ml_retry) {
			c->ml_retry = false;
			if (syslog_conn_after(c, syslog_conn_process(c)) == -EAGAIN)
				break;
			if (c->state == CONN_CLOSED)
				continue;
			if (!c->ml_waiting && (r = syslog_conn_read_start(c)) != 0)
				log_warn("source %s: %s: cannot read from %s again: %s", ss->cfg->name,
				    c->l->addr->text, c->peer, uv_strerror(r));
		}
		if (multiline_due(&c->ml, now, timeout) && syslog_ml_ship(c, true) == -EAGAIN) {
			syslog_source_pause(ss);
			break;
		}
	}
	if (!ss->paused)
		syslog_ml_arm(ss);
}

/* Bytes came back to the budget: read again (the next allocation asks for them). */
static void
syslog_conn_on_budget(struct budget_waiter *w)
{
	struct syslog_conn *c = (struct syslog_conn *)((char *)w - offsetof(struct syslog_conn, bw));
	struct syslog_source *ss = c->ss;
	int r;

	if (ss->stopping || c->state == CONN_CLOSED)
		return;   /* stop takes it from here */
	if (c->ml_waiting) {
		/* Not from here: budget_give's caller may be walking the connections. */
		c->ml_waiting = false;
		c->ml_retry = true;
		(void)uv_timer_start(&ss->ml_timer, syslog_ml_timer, 0, 0);
		return;
	}
	if (ss->paused)
		return;   /* resume takes it from here */
	if ((r = syslog_conn_read_start(c)) != 0)
		log_warn("source %s: %s: cannot read from %s again: %s", ss->cfg->name,
		    c->l->addr->text, c->peer, uv_strerror(r));
}

void
syslog_source_set_budget(struct syslog_source *ss, struct budget *b)
{
	ss->budget = b;
}

void
syslog_source_resume(struct syslog_source *ss)
{
	struct syslog_conn *c, *next;
	int r;

	if (!ss->paused || ss->stopping)
		return;
	for (c = TAILQ_FIRST(&ss->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		c->ml_retry = false;   /* run here */
		if (syslog_conn_after(c, syslog_conn_process(c)) == -EAGAIN)
			return;   /* still full: the spool calls again when it has room */
	}
	ss->paused = false;
	if (ss->multiline)
		syslog_ml_arm(ss);
	TAILQ_FOREACH(c, &ss->conns, link) {
		if (c->ml_waiting)
			continue;   /* the budget calls back */
		if ((r = syslog_conn_read_start(c)) != 0)
			log_warn("source %s: %s: cannot read from %s again: %s", ss->cfg->name,
			    c->l->addr->text, c->peer, uv_strerror(r));
	}
	log_info("source %s: the spool has room again: reading TCP senders again", ss->cfg->name);
}

int
syslog_source_reload(struct syslog_source *ss)
{
	if (ss->tls == NULL)
		return 0;
	return tls_config_reload(&ss->tls_o, ss->label, ss->nconns, &ss->tls);
}

void
syslog_source_stop(struct syslog_source *ss, void (*done)(void *ctx), void *ctx)
{
	ss->done = done;
	ss->done_ctx = ctx;
	syslog_source_shutdown(ss);
}

int
syslog_source_address(const struct syslog_source *ss, size_t i, struct sockaddr_storage *out)
{
	if (i >= ss->nlisteners)
		return -ENOENT;
	if (ss->listeners[i].addr->scheme == CONFIG_SCHEME_UNIX)
		return -EAFNOSUPPORT;
	*out = ss->listeners[i].bound;
	return 0;
}

void
syslog_source_get_stats(const struct syslog_source *ss, struct syslog_source_stats *st)
{
	*st = ss->st;
	st->parse_errors = ss->sl.parse_errors;
	st->fields_dropped = ss->pipe.fields_dropped;
	st->dropped_unspoolable = ss->pipe.dropped;
	st->connections_open = ss->nconns;
	st->paused = ss->paused;
	st->multiline_events = ss->ml_st.events;
	st->multiline_flushed = ss->ml_st.flushed;
	st->multiline_truncated = ss->ml_st.truncated;
}

/* ---------------------------------------------------------------- its type */

#define SYSLOG_F(name, type, member, help) \
	{ "logferry_syslog_" name, type, help, offsetof(struct syslog_source_stats, member) }
static const struct metrics_field syslog_source_fields[] = {
	SYSLOG_F("messages_total", "counter", received, "Messages spooled."),
	SYSLOG_F("truncated_total", "counter", truncated,
	    "Messages cut at max_message_size."),
	SYSLOG_F("parse_errors_total", "counter", parse_errors,
	    "Messages spooled with a parse_error field."),
	SYSLOG_F("dropped_full_total", "counter", dropped_full,
	    "Datagrams dropped because the spool was full."),
	SYSLOG_F("dropped_kernel_total", "counter", dropped_kernel,
	    "Datagrams the kernel dropped before the agent read them: the receive buffer was full."),
	SYSLOG_F("dropped_oversize_total", "counter", dropped_oversize,
	    "Octet-counted messages over max_message_size, skipped."),
	SYSLOG_F("fields_dropped_total", "counter", fields_dropped,
	    "Messages spooled without their fields: too large with them."),
	SYSLOG_F("dropped_unspoolable_total", "counter", dropped_unspoolable,
	    "Messages the spool refused even without fields."),
	SYSLOG_F("connections_total", "counter", connections, "TCP connections served."),
	SYSLOG_F("connections_open", "gauge", connections_open, "TCP connections open now."),
	SYSLOG_F("connections_refused_total", "counter", connections_refused,
	    "TCP connections closed at once: max_connections reached."),
	SYSLOG_F("framing_errors_total", "counter", framing_errors,
	    "TCP connections closed for a malformed octet count."),
	SYSLOG_F("read_errors_total", "counter", read_errors,
	    "Failed receives and connections reset."),
	SYSLOG_F("pauses_total", "counter", pauses,
	    "Times TCP reading stopped on a full spool."),
	SYSLOG_F("memory_waits_total", "counter", budget_waits,
	    "Times a TCP connection waited for memory_limit's share for connection buffers."),
	SYSLOG_F("tls_handshakes_failed_total", "counter", tls_handshakes_failed,
	    "tls:// connections whose TLS handshake failed or timed out (a plain TCP sender, a "
	    "refused certificate, a silent client)."),
	SYSLOG_F("tls_cn_refused_total", "counter", tls_cn_refused,
	    "tls:// connections closed: a client certificate whose common name tls.allowed_cns "
	    "does not allow."),
	SYSLOG_F("paused", "gauge", paused,
	    "1 while TCP reading is stopped: the spool is full."),
	MULTILINE_METRICS(SYSLOG_F, multiline_events, multiline_flushed, multiline_truncated),
};

static uint64_t
syslog_source_max_message(const struct agent_source *cfg)
{
	bool ml = cfg->multiline.start != NULL || cfg->multiline.continuation != NULL;

	return ml && cfg->multiline.max_bytes > cfg->max_message_size ? cfg->multiline.max_bytes :
	    cfg->max_message_size;
}

static int
syslog_source_type_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct budget *budget, void **out)
{
	struct syslog_source *src;
	int r;

	if ((r = syslog_source_start(loop, cfg, host, spool, &src)) != 0)
		return r;
	syslog_source_set_budget(src, budget);
	*out = src;
	return 0;
}

static void
syslog_source_type_resume(void *src)
{
	syslog_source_resume(src);
}

static void
syslog_source_type_reload(void *src)
{
	/* It logged what is wrong, and keeps what it had. */
	(void)syslog_source_reload(src);
}

static void
syslog_source_type_stop(void *src, void (*done)(void *ctx), void *ctx)
{
	syslog_source_stop(src, done, ctx);
}

static void
syslog_source_type_stats(const void *src, void *st)
{
	syslog_source_get_stats(src, st);
}

const struct source_type syslog_source_type = {
	.name = "syslog",
	.max_message = syslog_source_max_message,
	.start = syslog_source_type_start,
	.resume = syslog_source_type_resume,
	.reload = syslog_source_type_reload,
	.stop = syslog_source_type_stop,
	.stats = syslog_source_type_stats,
	.stats_size = sizeof(struct syslog_source_stats),
	.fields = METRICS_FIELDS(syslog_source_fields),
};
