/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pb_encode.h>
#include <zstd.h>

#include "agent/shipper.h"
#include "common/log.h"
#include "common/tls.h"
#include "proto/event.h"
#include "proto/frame.h"

/* The relay only sends small frames (Welcome, Ack, Ping, Pong, Goodbye). */
#define SHIPPER_RELAY_FRAME_MAX (64 * 1024)
/* Largest Batch payload this agent builds, whatever the relay allows. */
#define SHIPPER_PAYLOAD_MAX (64u << 20)
/* Room in the frame buffer for the length prefix and the Batch's other fields. */
#define SHIPPER_FRAME_OVERHEAD 64
/* A frame buffer grown above this is released once its frame is written. */
#define SHIPPER_OUT_KEEP (1u << 20)
/* Segments combined into one batch at most. */
#define SHIPPER_BATCH_SEGMENTS_MAX 256
/* Unacked ranges kept at most (window, plus re-sends cut to new limits). */
#define SHIPPER_RANGES_MAX 65536
/* Largest segment decompressed on the split path. */
#define SHIPPER_SEGMENT_RAW_MAX (512u << 20)
/* Fields per event the split path's reader accepts (parsers make at most 66). */
#define SHIPPER_EVENT_FIELDS 256
/* Pause after the spool could not be read. */
#define SHIPPER_SPOOL_RETRY_MS 1000
#define SHIPPER_ZSTD_LEVEL 1

/* The event formats this agent sends, as Hello announces them; it converts to the first. */
static const uint32_t shipper_event_formats[] = { EVENT_FORMAT_1, EVENT_FORMAT_2, EVENT_FORMAT_3 };
#define SHIPPER_NFORMATS (sizeof(shipper_event_formats) / sizeof(shipper_event_formats[0]))

enum shipper_state {
	SHIPPER_IDLE,        /* waiting to connect (t_conn: the delay) */
	SHIPPER_RESOLVING,   /* uv_getaddrinfo in progress */
	SHIPPER_CONNECTING,  /* TCP connect and TLS handshake */
	SHIPPER_HELLO,       /* Hello sent, waiting for Welcome (t_conn: handshake_timeout) */
	SHIPPER_READY,       /* shipping */
	SHIPPER_DRAINING,    /* connection_lifetime reached: waiting for acks (t_conn: ping_timeout) */
	SHIPPER_GOODBYE,     /* finishing the frame being written, then Goodbye (t_conn: bound) */
	SHIPPER_CLOSING,     /* tls_conn_close called, waiting for on_close */
	SHIPPER_STOPPED,     /* handles closing or closed */
};

static const char *const shipper_state_names[] = {
	[SHIPPER_IDLE] = "idle",
	[SHIPPER_RESOLVING] = "resolving",
	[SHIPPER_CONNECTING] = "connecting",
	[SHIPPER_HELLO] = "hello",
	[SHIPPER_READY] = "ready",
	[SHIPPER_DRAINING] = "draining",
	[SHIPPER_GOODBYE] = "goodbye",
	[SHIPPER_CLOSING] = "closing",
	[SHIPPER_STOPPED] = "stopped",
};

#define S(x) (1u << SHIPPER_##x)
/* The states each state may move to. */
static const unsigned shipper_transitions[] = {
	[SHIPPER_IDLE] = S(RESOLVING) | S(STOPPED),
	[SHIPPER_RESOLVING] = S(CONNECTING) | S(IDLE) | S(STOPPED),
	[SHIPPER_CONNECTING] = S(HELLO) | S(CLOSING) | S(IDLE),
	[SHIPPER_HELLO] = S(READY) | S(GOODBYE) | S(CLOSING) | S(IDLE),
	[SHIPPER_READY] = S(DRAINING) | S(GOODBYE) | S(CLOSING) | S(IDLE),
	[SHIPPER_DRAINING] = S(GOODBYE) | S(CLOSING) | S(IDLE),
	[SHIPPER_GOODBYE] = S(CLOSING) | S(IDLE) | S(STOPPED),
	[SHIPPER_CLOSING] = S(IDLE) | S(STOPPED),
	[SHIPPER_STOPPED] = 0,
};
#undef S

/* Why a connection ends, when the shipper ends it. */
enum shipper_close {
	CLOSE_NONE,          /* not by us: the peer or the transport */
	CLOSE_FAILURE,       /* protocol error, dead relay, Welcome timeout */
	CLOSE_RELAY_GOODBYE, /* the relay said Goodbye */
	CLOSE_LIFETIME,      /* connection_lifetime */
	CLOSE_MOVED,         /* SIGHUP: the relay is no longer in relays.servers */
	CLOSE_STOP,          /* shipper_stop */
};

/* How an unacked range is sent. */
enum shipper_mode {
	MODE_NORMAL,         /* whole segments, combined within the limits */
	MODE_PER_SEGMENT,    /* whole segments, one per batch (after a REJECTED) */
	MODE_SPLIT,          /* events of one segment re-encoded in pieces: too large for the
	                        relay, or in an event format it does not read */
};

/* Sequence numbers [first, end) sent (or to be sent again) and not acknowledged. */
struct shipper_range {
	uint64_t first, end;
	uint64_t seg;            /* MODE_SPLIT: first_seq of the segment */
	uint64_t retry_at;       /* not sent before this (uv_now ms); 0: at once */
	uint32_t nsegs;          /* segments in the range (MODE_SPLIT: 1) */
	uint32_t events;
	uint8_t mode;            /* enum shipper_mode */
	bool sent;               /* in flight on the current connection */
};

/* Segments gathered for one batch during one spool read. */
struct shipper_collect {
	uint64_t first, end;     /* the range wanted; new data: [next_send, UINT64_MAX) */
	bool exact;              /* the first segment must start at first */
	bool encode;             /* encode the batch as soon as it is complete */
	uint32_t max_segs;
	uint32_t nsegs;
	uint64_t bfirst, bend, events, uncompressed, payload;
	bool complete;           /* a limit or the end of the range was reached */
	bool oversize;           /* the first segment goes alone, re-encoded (MODE_SPLIT) */
	bool convert;            /* because the relay does not read its event format */
	uint8_t format;          /* the segments' event format: one per batch */
	bool gap;                /* the first segment is not where the range starts */
	bool encoded;
	int err;
	struct pbslice chunks[SHIPPER_BATCH_SEGMENTS_MAX];
};

struct shipper {
	uv_loop_t *loop;
	const struct agent_config *cfg;
	const char *id;          /* the start configuration's: it needs a restart */
	struct spool *spool;
	struct tls_config *tls;
	enum shipper_state state;
	const struct config_addr *servers;
	size_t nservers, server;
	/*
	 * The server in use, as configured: a copy, since a reload may replace
	 * the list while a connection to it is open; moved says it is no
	 * longer listed (leave it once its batches in flight are acknowledged).
	 */
	char relay[320];
	bool moved;

	uv_getaddrinfo_t gai;
	struct tls_conn *conn;
	struct frame_decoder *dec;
	uv_timer_t t_conn, t_ping, t_watchdog, t_wake, t_life;
	int handles_open;

	/* The current connection. */
	char relay_id[sizeof(((logferry_Welcome *)0)->relay_id)];
	uint32_t window;
	uint64_t max_payload, max_uncompressed;
	uint32_t relay_formats;  /* bit n: the relay reads event format n */
	bool convert_logged;     /* the conversion warning was given on this connection */
	uint64_t connected_at, last_rx;
	bool welcomed;
	bool hello_pending, ping_pending, pong_pending, goodbye_sent;
	uint64_t ping_nonce, pong_nonce;
	enum shipper_close close_kind;
	char close_why[320];
	const char *goodbye_reason;

	/* One encoded frame on its way to the socket. */
	struct buf out;
	size_t out_off;

	/* Unacked ranges, ordered by first sequence. */
	struct shipper_range *ranges;
	size_t nranges, ranges_cap;
	uint32_t sent;           /* ranges in flight on this connection */
	uint64_t next_send;      /* first sequence never sent */
	uint64_t due_at;         /* a batch that is not full may go from then on; 0: none waits */
	bool partial_waiting;
	uint64_t spool_retry_at;
	struct shipper_collect collect;

	/* Split path: the decompressed segment and one piece, kept until it is done. */
	struct buf raw, piece, zbuf;
	uint64_t raw_seg;
	bool raw_valid;
	struct event_field *fields;

	unsigned failures;       /* consecutive, for the backoff */
	/* The address of the current or last connection, and whether it failed. */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool addr_failed;
	uint64_t rng;
	bool stopping;
	void (*done)(void *ctx);
	void *done_ctx;
	struct shipper_stats stats;
};

static void shipper_pump(struct shipper *sh);
static void shipper_connect_cb(uv_timer_t *t);

/* ---------------------------------------------------------------- helpers */

static uint64_t
shipper_now(const struct shipper *sh)
{
	return uv_now(sh->loop);
}

static uint64_t
shipper_random(struct shipper *sh)
{
	/* xorshift64*: jitter only, no secrets. */
	sh->rng ^= sh->rng >> 12;
	sh->rng ^= sh->rng << 25;
	sh->rng ^= sh->rng >> 27;
	return sh->rng * UINT64_C(2685821657736338717);
}

static const struct config_addr *
shipper_srv(const struct shipper *sh)
{
	return &sh->servers[sh->server];
}

static const char *
shipper_relay(const struct shipper *sh)
{
	return sh->relay;
}

static void
shipper_set_state(struct shipper *sh, enum shipper_state to)
{
	if (!(shipper_transitions[sh->state] & (1u << to))) {
		log_error("shipper: invalid transition from %s to %s",
		    shipper_state_names[sh->state], shipper_state_names[to]);
		abort();
	}
	log_debug("shipper: relay %s: %s -> %s", shipper_relay(sh),
	    shipper_state_names[sh->state], shipper_state_names[to]);
	sh->state = to;
}

static bool
shipper_open_state(enum shipper_state s)
{
	return s == SHIPPER_HELLO || s == SHIPPER_READY || s == SHIPPER_DRAINING ||
	    s == SHIPPER_GOODBYE;
}

/* Combined batches stay within our batch.max_bytes too; a lone segment only within the relay's. */
static uint64_t
shipper_combined_max(const struct shipper *sh)
{
	uint64_t m = sh->cfg->relays.batch.max_bytes;

	return m < sh->max_uncompressed ? m : sh->max_uncompressed;
}

static void
shipper_stop_conn_timers(struct shipper *sh)
{
	uv_timer_stop(&sh->t_conn);
	uv_timer_stop(&sh->t_ping);
	uv_timer_stop(&sh->t_watchdog);
	uv_timer_stop(&sh->t_life);
	uv_timer_stop(&sh->t_wake);
}

/* ---------------------------------------------------------------- ranges */

static struct shipper_range *
shipper_range_insert(struct shipper *sh, size_t at)
{
	if (sh->nranges == sh->ranges_cap) {
		size_t cap = sh->ranges_cap ? sh->ranges_cap * 2 : 64;
		struct shipper_range *p = realloc(sh->ranges, cap * sizeof(*p));

		if (p == NULL) {
			log_error("shipper: out of memory for %zu unacked ranges", cap);
			abort();
		}
		sh->ranges = p;
		sh->ranges_cap = cap;
	}
	memmove(&sh->ranges[at + 1], &sh->ranges[at], (sh->nranges - at) * sizeof(sh->ranges[0]));
	sh->nranges++;
	memset(&sh->ranges[at], 0, sizeof(sh->ranges[0]));
	return &sh->ranges[at];
}

static void
shipper_range_remove(struct shipper *sh, size_t i)
{
	if (sh->ranges[i].sent)
		sh->sent--;
	memmove(&sh->ranges[i], &sh->ranges[i + 1], (sh->nranges - i - 1) * sizeof(sh->ranges[0]));
	sh->nranges--;
}

/* The range in flight whose batch id (first sequence) is id, or -1. */
static ssize_t
shipper_range_find_sent(const struct shipper *sh, uint64_t id)
{
	size_t lo = 0, hi = sh->nranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sh->ranges[mid].first < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < sh->nranges && sh->ranges[lo].first == id && sh->ranges[lo].sent)
		return (ssize_t)lo;
	return -1;
}

/*
 * Cuts range i at seq: i keeps [first, seq), a new queued range after it
 * takes [seq, end) with the rest of the segments and events. Returns i's
 * new address (the array may move).
 */
static struct shipper_range *
shipper_range_cut(struct shipper *sh, size_t i, uint64_t seq, uint32_t nsegs, uint32_t events)
{
	struct shipper_range *r, *rest;

	rest = shipper_range_insert(sh, i + 1);
	r = &sh->ranges[i];
	rest->first = seq;
	rest->end = r->end;
	rest->seg = r->seg;
	rest->mode = r->mode;
	rest->retry_at = r->retry_at;
	rest->nsegs = r->nsegs > nsegs ? r->nsegs - nsegs : 1;
	rest->events = r->events > events ? r->events - events : (uint32_t)(r->end - seq);
	r->end = seq;
	r->nsegs = nsegs;
	r->events = events;
	return r;
}

static void
shipper_range_sent(struct shipper *sh, struct shipper_range *r, uint64_t payload)
{
	r->sent = true;
	r->retry_at = 0;
	sh->sent++;
	sh->stats.batches_sent++;
	sh->stats.events_sent += r->events;
	sh->stats.bytes_sent += payload;
	log_debug("shipper: relay %s: batch %" PRIu64 "..%" PRIu64 " (%" PRIu32 " events, %"
	    PRIu32 " segment(s)%s) sent", shipper_relay(sh), r->first, r->end - 1, r->events,
	    r->nsegs, r->mode == MODE_SPLIT ? ", a piece of one" : "");
}

/* Deletes a segment once no range of it (a piece) is left. */
static void
shipper_split_done(struct shipper *sh, uint64_t seg)
{
	int r;

	for (size_t i = 0; i < sh->nranges; i++)
		if (sh->ranges[i].mode == MODE_SPLIT && sh->ranges[i].seg == seg)
			return;
	if ((r = spool_delete(sh->spool, seg, seg + 1)) != 0)
		log_error("shipper: cannot delete segment %" PRIu64 " from the spool: %s", seg,
		    strerror(-r));
	if (sh->raw_valid && sh->raw_seg == seg) {
		sh->raw_valid = false;
		buf_free(&sh->raw);
		buf_free(&sh->piece);
		buf_free(&sh->zbuf);
	}
}

/* Deletes what range i covers from the spool and forgets it. */
static void
shipper_range_delete(struct shipper *sh, size_t i)
{
	struct shipper_range r = sh->ranges[i];
	int rc;

	shipper_range_remove(sh, i);
	if (r.mode == MODE_SPLIT) {
		shipper_split_done(sh, r.seg);
		return;
	}
	if ((rc = spool_delete(sh->spool, r.first, r.end)) != 0)
		log_error("shipper: cannot delete segments %" PRIu64 "..%" PRIu64
		    " from the spool: %s; they will be sent again after a restart", r.first,
		    r.end - 1, strerror(-rc));
}

/* ---------------------------------------------------------------- frames */

static int
shipper_encode(struct shipper *sh, const struct frame *f)
{
	int r;

	buf_reset(&sh->out);
	sh->out_off = 0;
	if ((r = frame_encode(f, &sh->out)) != 0)
		log_error("shipper: cannot encode a %s frame: %s", frame_type_name(frame_type(f)),
		    strerror(-r));
	return r;
}

struct shipper_gather {
	const struct pbslice *chunks;
	size_t n;
	uint64_t total;
};

/* Writes a bytes field from several pieces: the stored zstd frames, back to back. */
static bool
shipper_gather_cb(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
	const struct shipper_gather *g = *arg;

	if (!pb_encode_tag_for_field(os, field) || !pb_encode_varint(os, g->total))
		return false;
	for (size_t i = 0; i < g->n; i++)
		if (!pb_write(os, g->chunks[i].ptr, g->chunks[i].len))
			return false;
	return true;
}

static void
shipper_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Encodes a Batch frame into out, its payload the concatenation of chunks
 * (copied once, from the spool's map or the split buffer, into the frame).
 */
static int
shipper_encode_batch(struct shipper *sh, uint64_t id, uint64_t events, uint64_t uncompressed,
    uint8_t format, const struct pbslice *chunks, size_t n, uint64_t total)
{
	struct shipper_gather g = { chunks, n, total };
	logferry_Frame pb;
	pb_ostream_t os;
	size_t size;
	int r;

	memset(&pb, 0, sizeof(pb));
	pb.has_batch = true;
	pb.batch.id = id;
	pb.batch.event_count = (uint32_t)events;
	pb.batch.compression = logferry_Compression_COMPRESSION_ZSTD;
	pb.batch.uncompressed_size = uncompressed;
	pb.batch.event_format = format;
	pb.batch.payload.funcs.encode = shipper_gather_cb;
	pb.batch.payload.arg = &g;
	buf_reset(&sh->out);
	sh->out_off = 0;
	if (!pb_get_encoded_size(&size, logferry_Frame_fields, &pb))
		return -EINVAL;
	if (size > FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	if ((r = buf_reserve(&sh->out, FRAME_HEADER_SIZE + size)) != 0)
		return r;
	shipper_put_be32(sh->out.data, (uint32_t)size);
	os = pb_ostream_from_buffer(sh->out.data + FRAME_HEADER_SIZE, size);
	if (!pb_encode(&os, logferry_Frame_fields, &pb) || os.bytes_written != size)
		return -EINVAL;
	sh->out.len = FRAME_HEADER_SIZE + size;
	return 0;
}

/* ---------------------------------------------------------------- connection end */

static void shipper_close_conn(struct shipper *sh, bool abort);

static void shipper_vfail(struct shipper *sh, bool abort, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
shipper_vfail(struct shipper *sh, bool abort, const char *fmt, va_list ap)
{
	if (sh->conn == NULL || sh->state == SHIPPER_CLOSING)
		return;
	vsnprintf(sh->close_why, sizeof(sh->close_why), fmt, ap);
	sh->close_kind = sh->stopping ? CLOSE_STOP : CLOSE_FAILURE;
	shipper_close_conn(sh, abort);
}

static void shipper_fail(struct shipper *sh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Ends the connection for a failure (fmt says what); on_close reconnects. */
static void
shipper_fail(struct shipper *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	shipper_vfail(sh, false, fmt, ap);
	va_end(ap);
}

static void shipper_fail_dead(struct shipper *sh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * As shipper_fail for a relay that stopped answering: the socket closes at
 * once, since a graceful TLS close would wait handshake_timeout more for
 * a peer that is not there (a stopped relay was given up after ping_timeout
 * plus 10 s).
 */
static void
shipper_fail_dead(struct shipper *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	shipper_vfail(sh, true, fmt, ap);
	va_end(ap);
}

static void
shipper_close_conn(struct shipper *sh, bool abort)
{
	shipper_stop_conn_timers(sh);
	shipper_set_state(sh, SHIPPER_CLOSING);
	if (abort)
		tls_conn_abort(sh->conn, -ETIMEDOUT);
	else
		tls_conn_close(sh->conn);
}

static void
shipper_goodbye_timeout(uv_timer_t *t)
{
	struct shipper *sh = t->data;

	/* The frame being written did not go out in time: the relay is not reading. */
	if (sh->state == SHIPPER_GOODBYE)
		shipper_close_conn(sh, true);
}

/* Sends Goodbye after the frame being written, then closes. */
static void
shipper_goodbye(struct shipper *sh, enum shipper_close kind, const char *reason)
{
	sh->close_kind = kind;
	sh->goodbye_reason = reason;
	sh->goodbye_sent = false;
	shipper_stop_conn_timers(sh);
	shipper_set_state(sh, SHIPPER_GOODBYE);
	uv_timer_start(&sh->t_conn, shipper_goodbye_timeout,
	    sh->cfg->relays.tls.handshake_timeout_ms, 0);
	shipper_pump(sh);
}

/* ---------------------------------------------------------------- event formats */

static bool
shipper_relay_reads(const struct shipper *sh, uint8_t format)
{
	return format < 32 && (sh->relay_formats & (UINT32_C(1) << format)) != 0;
}

/*
 * A segment in a format the relay does not read becomes a split range: the
 * split path's spool_segment_decompress gives its events in format 1, which
 * every relay reads, and pieces are sent as format 1. Said once per
 * connection, since it costs the agent CPU until the relay is upgraded.
 */
static void
shipper_convert(struct shipper *sh, struct shipper_range *r, uint8_t format)
{
	sh->stats.segments_converted++;
	if (sh->convert_logged)
		return;
	sh->convert_logged = true;
	log_warn("shipper: relay %s (%s) does not read event format %u, in which this agent's "
	    "spool holds segments (it is older than this agent): they are re-encoded to format 1 "
	    "before sending, at a CPU cost, from segment %" PRIu64 " on; upgrade the relay "
	    "(a fleet upgrades its relays first, then its agents)", shipper_relay(sh),
	    sh->relay_id[0] != '\0' ? sh->relay_id : "relay", (unsigned)format, r->first);
}

/* ---------------------------------------------------------------- reading the spool */

static int
shipper_collect_done(struct shipper *sh, struct shipper_collect *c)
{
	c->complete = true;
	if (c->encode) {
		c->err = shipper_encode_batch(sh, c->bfirst, c->events, c->uncompressed, c->format,
		    c->chunks, c->nsegs, c->payload);
		c->encoded = c->err == 0;
	}
	return 1;
}

struct shipper_read {
	struct shipper *sh;
	struct shipper_collect *c;
};

static int
shipper_collect_cb(void *ctx, const struct spool_segment *seg)
{
	struct shipper_read *rd = ctx;
	struct shipper *sh = rd->sh;
	struct shipper_collect *c = rd->c;
	uint64_t seg_end = seg->first_seq + seg->events;
	uint64_t max_events = (uint64_t)sh->cfg->relays.batch.max_events;
	uint64_t combined = shipper_combined_max(sh);

	if (seg->first_seq >= c->end)
		return c->nsegs > 0 ? shipper_collect_done(sh, c) : 1;
	if (c->nsegs == 0) {
		if (seg->first_seq < c->first || (c->exact && seg->first_seq != c->first)) {
			c->gap = true;
			return 1;
		}
		c->format = seg->event_format;
		c->convert = !shipper_relay_reads(sh, seg->event_format);
		if (c->convert || seg->payload_len > sh->max_payload ||
		    seg->uncompressed > sh->max_uncompressed) {
			c->oversize = true;
			c->nsegs = 1;
			c->bfirst = seg->first_seq;
			c->bend = seg_end;
			c->events = seg->events;
			return 1;
		}
	} else if (seg->event_format != c->format || c->nsegs == c->max_segs ||
	    c->events + seg->events > max_events ||
	    c->uncompressed + seg->uncompressed > combined ||
	    c->payload + seg->payload_len > sh->max_payload) {
		return shipper_collect_done(sh, c);
	}
	if (c->nsegs == 0)
		c->bfirst = seg->first_seq;
	c->chunks[c->nsegs].ptr = seg->payload;
	c->chunks[c->nsegs].len = seg->payload_len;
	c->nsegs++;
	c->bend = seg_end;
	c->events += seg->events;
	c->uncompressed += seg->uncompressed;
	c->payload += seg->payload_len;
	if (seg_end >= c->end || c->nsegs == c->max_segs || c->events >= max_events ||
	    c->uncompressed >= combined)
		return shipper_collect_done(sh, c);
	return 0;
}

static void
shipper_collect_init(struct shipper_collect *c, uint64_t first, uint64_t end, bool exact,
    uint32_t max_segs)
{
	c->first = first;
	c->end = end;
	c->exact = exact;
	c->encode = true;
	c->max_segs = max_segs;
	c->nsegs = 0;
	c->bfirst = c->bend = c->events = c->uncompressed = c->payload = 0;
	c->complete = c->oversize = c->convert = c->gap = c->encoded = false;
	c->format = 0;
	c->err = 0;
}

static int
shipper_spool_read(struct shipper *sh, uint64_t from,
    int (*fn)(void *ctx, const struct spool_segment *seg), void *ctx)
{
	const char *why = NULL;
	int r = spool_segments(sh->spool, from, fn, ctx, &why);

	if (r < 0) {
		log_error("shipper: cannot read the spool from sequence %" PRIu64 ": %s; "
		    "shipping pauses for %d ms", from, why != NULL ? why : strerror(-r),
		    SHIPPER_SPOOL_RETRY_MS);
		sh->spool_retry_at = shipper_now(sh) + SHIPPER_SPOOL_RETRY_MS;
		return r;
	}
	return 0;
}

/*
 * Gathers a batch from c->first. With flush, a batch that ended with the
 * spool (not complete) is read again up to where it ended, to be encoded
 * within one read transaction. Returns 0 or a negative error (logged).
 */
static int
shipper_collect(struct shipper *sh, struct shipper_collect *c, bool flush)
{
	struct shipper_read rd = { sh, c };
	uint64_t bfirst, bend;
	int r;

	if ((r = shipper_spool_read(sh, c->first, shipper_collect_cb, &rd)) != 0)
		return r;
	if (c->err == 0 && flush && !c->encoded && c->nsegs > 0 && !c->oversize && !c->gap) {
		bfirst = c->bfirst;
		bend = c->bend;
		shipper_collect_init(c, bfirst, bend, true, c->max_segs);
		if ((r = shipper_spool_read(sh, bfirst, shipper_collect_cb, &rd)) != 0)
			return r;
		if (c->err == 0 && (!c->encoded || c->bend != bend))
			c->err = -EIO;
	}
	if (c->err != 0) {
		log_error("shipper: cannot build a batch from sequence %" PRIu64 ": %s",
		    c->first, strerror(-c->err));
		sh->spool_retry_at = shipper_now(sh) + SHIPPER_SPOOL_RETRY_MS;
		return c->err;
	}
	return 0;
}

/* ---------------------------------------------------------------- split path */

static int
shipper_split_load_cb(void *ctx, const struct spool_segment *seg)
{
	struct shipper_read *rd = ctx;
	struct shipper *sh = rd->sh;

	if (seg->first_seq != rd->c->first) {
		rd->c->gap = true;
		return 1;
	}
	if (seg->uncompressed > SHIPPER_SEGMENT_RAW_MAX) {
		rd->c->err = -EIO;
		return 1;
	}
	if ((rd->c->err = spool_segment_decompress(seg, &sh->raw)) != 0)
		return 1;
	sh->raw_seg = seg->first_seq;
	sh->raw_valid = true;
	return 1;
}

static size_t
shipper_put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			p[n] |= 0x80;
		n++;
	} while (v != 0);
	return n;
}

/* Forgets the events [first, end) of a split segment that cannot be sent (logged by the caller). */
static void
shipper_split_drop(struct shipper *sh, size_t i, uint64_t end)
{
	struct shipper_range *r = &sh->ranges[i];

	sh->stats.events_dropped += end - r->first;
	r->first = end;
	r->events = (uint32_t)(r->end - r->first);
	if (r->first >= r->end) {
		uint64_t seg = r->seg;

		shipper_range_remove(sh, i);
		shipper_split_done(sh, seg);
	}
}

/*
 * Sends the first piece of split range i: its events re-encoded as an
 * EventList within the relay's limits and compressed again. Returns 1 when
 * a frame is ready, 0 when the ranges changed (try again), -1 to wait.
 */
static int
shipper_send_split(struct shipper *sh, size_t i)
{
	struct shipper_range *r = &sh->ranges[i];
	struct shipper_collect *c = &sh->collect;
	struct shipper_read rd = { sh, c };
	struct event_reader er, start;
	struct event ev;
	struct pbslice chunk;
	uint64_t skip, max_events = (uint64_t)sh->cfg->relays.batch.max_events;
	uint64_t target = shipper_combined_max(sh), n = 0;
	size_t zlen;
	int rc;

	if (!sh->raw_valid || sh->raw_seg != r->seg) {
		sh->raw_valid = false;
		shipper_collect_init(c, r->seg, r->seg + 1, true, 1);
		if (shipper_spool_read(sh, r->seg, shipper_split_load_cb, &rd) != 0)
			return -1;
		if (c->err == -ENOMEM)
			goto nomem;
		if (c->gap || c->err != 0 || !sh->raw_valid) {
			log_error("shipper: segment %" PRIu64 " of the spool %s; its %" PRIu64
			    " unsent events are dropped", r->seg, c->err == -EMSGSIZE ?
			    "is larger than the split path's buffer once its events are "
			    "self-contained" : c->err != 0 ?
			    "does not decompress to its announced size" : "is missing",
			    r->end - r->first);
			shipper_split_drop(sh, i, r->end);
			return 0;
		}
	}
	event_reader_init(&er, sh->raw.data, sh->raw.len, sh->fields, SHIPPER_EVENT_FIELDS);
	for (skip = r->first - r->seg; skip > 0; skip--) {
		if ((rc = event_reader_next(&er, &ev)) == -ENOMEM)
			goto nomem;
		if (rc != 1)
			goto corrupt;
	}
	start = er;
	for (;;) {
		buf_reset(&sh->piece);
		er = start;
		n = 0;
		while (r->first + n < r->end && n < max_events) {
			uint8_t hdr[11];
			size_t hlen;

			if ((rc = event_reader_next(&er, &ev)) == -ENOMEM)
				goto nomem;
			if (rc != 1)
				goto corrupt;
			hdr[0] = 0x0a;   /* EventList.events, length-delimited */
			hlen = 1 + shipper_put_varint(hdr + 1, ev.raw.len);
			if (n > 0 && sh->piece.len + hlen + ev.raw.len > target)
				break;
			if (buf_append(&sh->piece, hdr, hlen) != 0 ||
			    buf_append(&sh->piece, ev.raw.ptr, ev.raw.len) != 0)
				goto nomem;
			n++;
		}
		buf_reset(&sh->zbuf);
		if (buf_reserve(&sh->zbuf, ZSTD_compressBound(sh->piece.len)) != 0)
			goto nomem;
		zlen = ZSTD_compress(sh->zbuf.data, sh->zbuf.cap, sh->piece.data, sh->piece.len,
		    SHIPPER_ZSTD_LEVEL);
		if (ZSTD_isError(zlen)) {
			log_error("shipper: zstd: %s", ZSTD_getErrorName(zlen));
			goto nomem;
		}
		sh->zbuf.len = zlen;
		if (zlen <= sh->max_payload && sh->piece.len <= sh->max_uncompressed)
			break;
		if (n == 1) {
			log_error("shipper: event %" PRIu64 " (%zu bytes, %zu compressed) exceeds "
			    "relay %s's limits (%" PRIu64 " bytes, %" PRIu64 " compressed): "
			    "dropped; raise the relay's limits.max_batch_bytes and "
			    "max_uncompressed_bytes", r->first, sh->piece.len, zlen,
			    shipper_relay(sh), sh->max_uncompressed, sh->max_payload);
			shipper_split_drop(sh, i, r->first + 1);
			return 0;
		}
		/* Compressed too large: half the events' bytes and try again. */
		target = sh->piece.len / 2;
	}
	chunk.ptr = sh->zbuf.data;
	chunk.len = sh->zbuf.len;
	if ((rc = shipper_encode_batch(sh, r->first, n, sh->piece.len, EVENT_FORMAT_1, &chunk, 1,
	    chunk.len)) != 0) {
		log_error("shipper: cannot encode a batch of segment %" PRIu64 ": %s", r->seg,
		    strerror(-rc));
		sh->spool_retry_at = shipper_now(sh) + SHIPPER_SPOOL_RETRY_MS;
		return -1;
	}
	if (r->first + n < r->end)
		r = shipper_range_cut(sh, i, r->first + n, 1, (uint32_t)n);
	r->events = (uint32_t)n;
	shipper_range_sent(sh, r, chunk.len);
	return 1;
corrupt:
	log_error("shipper: segment %" PRIu64 " of the spool holds a malformed event list (%s); "
	    "its %" PRIu64 " unsent events are dropped", r->seg,
	    er.why != NULL ? er.why : "fewer events than its header says", r->end - r->first);
	shipper_split_drop(sh, i, r->end);
	return 0;
nomem:
	log_error("shipper: cannot cut segment %" PRIu64 " into batches: out of memory; "
	    "retrying in %d ms", r->seg, SHIPPER_SPOOL_RETRY_MS);
	sh->spool_retry_at = shipper_now(sh) + SHIPPER_SPOOL_RETRY_MS;
	return -1;
}

/* ---------------------------------------------------------------- choosing batches */

/* Sends range i (not in flight) again, or its first part. Returns as shipper_send_split. */
static int
shipper_send_range(struct shipper *sh, size_t i)
{
	struct shipper_range *r = &sh->ranges[i];
	struct shipper_collect *c = &sh->collect;

	if (r->mode == MODE_SPLIT)
		return shipper_send_split(sh, i);
	shipper_collect_init(c, r->first, r->end, true,
	    r->mode == MODE_PER_SEGMENT ? 1 : SHIPPER_BATCH_SEGMENTS_MAX);
	if (shipper_collect(sh, c, true) != 0)
		return -1;
	if (c->gap || c->nsegs == 0) {
		log_error("shipper: segments %" PRIu64 "..%" PRIu64 " awaiting an ack are missing "
		    "from the spool; forgotten", r->first, r->end - 1);
		sh->stats.events_dropped += r->events;
		shipper_range_remove(sh, i);
		return 0;
	}
	if (c->oversize) {
		/* Larger than this relay allows, or in a format it does not read: in pieces. */
		if (c->bend < r->end)
			r = shipper_range_cut(sh, i, c->bend, 1, (uint32_t)c->events);
		r->mode = MODE_SPLIT;
		r->seg = r->first;
		if (c->convert)
			shipper_convert(sh, r, c->format);
		return 0;
	}
	if (c->bend < r->end)
		r = shipper_range_cut(sh, i, c->bend, c->nsegs, (uint32_t)c->events);
	r->nsegs = c->nsegs;
	r->events = (uint32_t)c->events;
	shipper_range_sent(sh, r, c->payload);
	return 1;
}

/* The next batch of segments never sent. Returns as shipper_send_split. */
static int
shipper_send_new(struct shipper *sh)
{
	struct shipper_collect *c = &sh->collect;
	struct shipper_range *r;
	uint64_t now = shipper_now(sh);
	bool due;

	shipper_collect_init(c, sh->next_send, UINT64_MAX, false, SHIPPER_BATCH_SEGMENTS_MAX);
	if (shipper_collect(sh, c, false) != 0)
		return -1;
	if (c->nsegs == 0) {
		sh->due_at = 0;
		return -1;
	}
	if (!c->encoded && !c->oversize) {
		/* Not full: it waits for more until max_delay after the commit. */
		if (sh->due_at == 0)
			sh->due_at = now + sh->cfg->relays.batch.max_delay_ms;
		due = now >= sh->due_at;
		if (!due) {
			sh->partial_waiting = true;
			return -1;
		}
		shipper_collect_init(c, c->bfirst, c->bend, true, SHIPPER_BATCH_SEGMENTS_MAX);
		if (shipper_collect(sh, c, true) != 0)
			return -1;
		if (c->nsegs == 0 || c->oversize || !c->encoded)
			return -1;
		sh->due_at = 0;
	}
	r = shipper_range_insert(sh, sh->nranges);
	r->first = c->bfirst;
	r->end = c->bend;
	r->nsegs = c->nsegs;
	r->events = (uint32_t)c->events;
	sh->next_send = c->bend;
	if (c->oversize) {
		r->mode = MODE_SPLIT;
		r->seg = c->bfirst;
		if (c->convert)
			shipper_convert(sh, r, c->format);
		return shipper_send_split(sh, sh->nranges - 1);
	}
	r->mode = MODE_NORMAL;
	shipper_range_sent(sh, r, c->payload);
	return 1;
}

/*
 * Puts the next batch in out: unacked ranges first (oldest first, once their
 * RETRY delay is over), then new segments. Returns as shipper_send_split.
 */
static int
shipper_next_batch(struct shipper *sh)
{
	uint64_t now = shipper_now(sh);

	if (sh->sent >= sh->window || now < sh->spool_retry_at)
		return -1;
	/* Room for the range sent and the rest of one cut. */
	if (sh->nranges + 2 > SHIPPER_RANGES_MAX)
		return -1;
	for (size_t i = 0; i < sh->nranges; i++)
		if (!sh->ranges[i].sent && sh->ranges[i].retry_at <= now)
			return shipper_send_range(sh, i);
	return shipper_send_new(sh);
}

static void
shipper_wake_cb(uv_timer_t *t)
{
	shipper_pump(t->data);
}

/* Arms t_wake for the next moment something may be sent without another cue. */
static void
shipper_arm_wake(struct shipper *sh)
{
	uint64_t now = shipper_now(sh), at = 0;

	if (sh->conn == NULL || sh->state != SHIPPER_READY || sh->stopping) {
		uv_timer_stop(&sh->t_wake);
		return;
	}
	if (sh->spool_retry_at > now)
		at = sh->spool_retry_at;
	if (sh->sent < sh->window) {
		if (sh->partial_waiting && sh->due_at > now && (at == 0 || sh->due_at < at))
			at = sh->due_at;
		for (size_t i = 0; i < sh->nranges; i++) {
			const struct shipper_range *r = &sh->ranges[i];

			if (!r->sent && r->retry_at > now && (at == 0 || r->retry_at < at))
				at = r->retry_at;
		}
	}
	if (at == 0)
		uv_timer_stop(&sh->t_wake);
	else
		uv_timer_start(&sh->t_wake, shipper_wake_cb, at - now, 0);
}

/* ---------------------------------------------------------------- writing */

/* Writes out in pieces TLS takes now. Returns true once it is all written. */
static bool
shipper_write(struct shipper *sh)
{
	while (sh->out_off < sh->out.len) {
		size_t n = sh->out.len - sh->out_off, space = tls_conn_write_space(sh->conn);
		int r;

		/* Nothing fits: one record provokes -EAGAIN, and on_writable. */
		if (space == 0)
			space = TLS_RECORD_MAX;
		if (n > space)
			n = space;
		r = tls_conn_write(sh->conn, sh->out.data + sh->out_off, n);
		if (r == -EAGAIN)
			return false;
		if (r != 0) {
			shipper_fail(sh, "cannot send: %s", tls_strerror(r));
			return false;
		}
		sh->out_off += n;
	}
	return true;
}

/* Control frames first, then batches, one frame at a time. */
static void
shipper_pump(struct shipper *sh)
{
	struct frame f;
	int r;

	sh->partial_waiting = false;
	while (sh->conn != NULL && shipper_open_state(sh->state)) {
		if (sh->out_off < sh->out.len) {
			if (!shipper_write(sh))
				break;
			continue;
		}
		if (sh->out.cap > SHIPPER_OUT_KEEP)
			buf_free(&sh->out);
		buf_reset(&sh->out);
		sh->out_off = 0;
		if (sh->hello_pending) {
			sh->hello_pending = false;
			frame_init(&f, FRAME_HELLO);
			f.pb.hello.protocol_version = logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT;
			snprintf(f.pb.hello.agent_id, sizeof(f.pb.hello.agent_id), "%s", sh->id);
			snprintf(f.pb.hello.software_version, sizeof(f.pb.hello.software_version),
			    "%s", PACKAGE_VERSION);
			f.pb.hello.event_formats_count = SHIPPER_NFORMATS;
			memcpy(f.pb.hello.event_formats, shipper_event_formats,
			    sizeof(shipper_event_formats));
		} else if (sh->pong_pending) {
			sh->pong_pending = false;
			frame_init(&f, FRAME_PONG);
			f.pb.pong.nonce = sh->pong_nonce;
		} else if (sh->ping_pending) {
			sh->ping_pending = false;
			frame_init(&f, FRAME_PING);
			f.pb.ping.nonce = ++sh->ping_nonce;
		} else if (sh->state == SHIPPER_GOODBYE) {
			if (sh->goodbye_sent) {
				shipper_close_conn(sh, false);
				break;
			}
			sh->goodbye_sent = true;
			frame_init(&f, FRAME_GOODBYE);
			snprintf(f.pb.goodbye.reason, sizeof(f.pb.goodbye.reason), "%s",
			    sh->goodbye_reason);
		} else {
			if (sh->state != SHIPPER_READY || sh->stopping)
				break;
			if ((r = shipper_next_batch(sh)) < 0)
				break;
			continue;
		}
		if (shipper_encode(sh, &f) != 0) {
			shipper_fail(sh, "cannot encode a frame");
			break;
		}
	}
	shipper_arm_wake(sh);
}

/* ---------------------------------------------------------------- frames from the relay */

/* Why a draining connection ends: its lifetime, or its relay left relays.servers. */
static void
shipper_drained(struct shipper *sh)
{
	if (sh->moved)
		shipper_goodbye(sh, CLOSE_MOVED, "relay no longer configured");
	else
		shipper_goodbye(sh, CLOSE_LIFETIME, "connection lifetime reached");
}

static void
shipper_drain_timeout(uv_timer_t *t)
{
	struct shipper *sh = t->data;

	if (sh->state == SHIPPER_DRAINING)
		shipper_drained(sh);
}

/* Sends nothing more; Goodbye once the batches in flight are acknowledged (ping_timeout at most). */
static void
shipper_drain(struct shipper *sh)
{
	if (sh->state != SHIPPER_READY)
		return;
	log_debug("shipper: relay %s: %s; waiting for %" PRIu32 " ack(s)", shipper_relay(sh),
	    sh->moved ? "no longer in relays.servers" : "connection_lifetime reached", sh->sent);
	shipper_set_state(sh, SHIPPER_DRAINING);
	uv_timer_stop(&sh->t_wake);
	if (sh->sent == 0) {
		shipper_drained(sh);
		return;
	}
	uv_timer_start(&sh->t_conn, shipper_drain_timeout, sh->cfg->relays.ping_timeout_ms, 0);
}

static void
shipper_lifetime_cb(uv_timer_t *t)
{
	shipper_drain(t->data);
}

static void
shipper_ping_cb(uv_timer_t *t)
{
	struct shipper *sh = t->data;

	sh->ping_pending = true;
	shipper_pump(sh);
}

static void
shipper_watchdog_cb(uv_timer_t *t)
{
	struct shipper *sh = t->data;
	uint64_t timeout = sh->cfg->relays.ping_timeout_ms;
	uint64_t idle = shipper_now(sh) - sh->last_rx;

	if (idle < timeout) {
		uv_timer_start(&sh->t_watchdog, shipper_watchdog_cb, timeout - idle, 0);
		return;
	}
	shipper_fail_dead(sh, "nothing received from the relay for %" PRIu64 " ms "
	    "(ping_timeout %" PRIu64 " ms): it is considered dead", idle, timeout);
}

static int
shipper_on_welcome(struct shipper *sh, const logferry_Welcome *w)
{
	const struct agent_config *cfg = sh->cfg;
	char payload[32], uncompressed[32];
	uint64_t life;

	if (sh->state != SHIPPER_HELLO) {
		shipper_fail(sh, "protocol error: a second Welcome");
		return 1;
	}
	if (w->protocol_version != logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT) {
		shipper_fail(sh, "the relay speaks protocol version %" PRIu32 ", this agent %d: "
		    "upgrade the older of the two", w->protocol_version,
		    logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT);
		return 1;
	}
	if (w->window == 0 || w->max_batch_bytes == 0 || w->max_uncompressed_bytes == 0) {
		shipper_fail(sh, "protocol error: Welcome announces a window of %" PRIu32
		    ", batches of %" PRIu64 " bytes and %" PRIu64 " uncompressed: none can be sent",
		    w->window, w->max_batch_bytes, w->max_uncompressed_bytes);
		return 1;
	}
	/* A relay from before format 2 announces none: it reads format 1. */
	sh->relay_formats = w->event_formats_count == 0 ? UINT32_C(1) << EVENT_FORMAT_1 : 0;
	for (pb_size_t i = 0; i < w->event_formats_count; i++)
		if (w->event_formats[i] < 32)
			sh->relay_formats |= UINT32_C(1) << w->event_formats[i];
	if (!shipper_relay_reads(sh, EVENT_FORMAT_1)) {
		shipper_fail(sh, "the relay does not read event format 1, the one this agent "
		    "converts to for a relay that does not read its spool's: upgrade the agent");
		return 1;
	}
	sh->convert_logged = false;
	snprintf(sh->relay_id, sizeof(sh->relay_id), "%s", w->relay_id);
	sh->window = w->window < (uint64_t)cfg->relays.window ? w->window :
	    (uint32_t)cfg->relays.window;
	sh->max_payload = w->max_batch_bytes < SHIPPER_PAYLOAD_MAX ? w->max_batch_bytes :
	    SHIPPER_PAYLOAD_MAX;
	sh->max_uncompressed = w->max_uncompressed_bytes < SHIPPER_SEGMENT_RAW_MAX ?
	    w->max_uncompressed_bytes : SHIPPER_SEGMENT_RAW_MAX;
	sh->welcomed = true;
	sh->connected_at = shipper_now(sh);
	uv_timer_stop(&sh->t_conn);
	shipper_set_state(sh, SHIPPER_READY);
	config_format_size(sh->max_payload, payload, sizeof(payload));
	config_format_size(sh->max_uncompressed, uncompressed, sizeof(uncompressed));
	log_info("relay %s: connected to %s (%s) with %s; window %" PRIu32 ", batches up to %s "
	    "(%s uncompressed); %zu unacknowledged batch(es) to send again", shipper_relay(sh),
	    sh->relay_id[0] != '\0' ? sh->relay_id : "relay", tls_conn_peer(sh->conn),
	    tls_conn_cipher(sh->conn), sh->window, payload, uncompressed, sh->nranges);
	uv_timer_start(&sh->t_ping, shipper_ping_cb, cfg->relays.ping_interval_ms,
	    cfg->relays.ping_interval_ms);
	uv_timer_start(&sh->t_watchdog, shipper_watchdog_cb, cfg->relays.ping_timeout_ms, 0);
	if (cfg->relays.connection_lifetime_ms > 0) {
		/* +-10%, so that agents started together do not reconnect together. */
		life = cfg->relays.connection_lifetime_ms * 9 / 10 +
		    shipper_random(sh) % (cfg->relays.connection_lifetime_ms / 5 + 1);
		uv_timer_start(&sh->t_life, shipper_lifetime_cb, life, 0);
	}
	/* A reload removed this relay during the handshake: on to a listed one. */
	if (sh->moved)
		shipper_drain(sh);
	return 0;
}

static int
shipper_on_ack(struct shipper *sh, const logferry_Ack *a)
{
	ssize_t i = shipper_range_find_sent(sh, a->batch_id);
	struct shipper_range *r;
	uint64_t delay;

	if (i < 0) {
		shipper_fail(sh, "protocol error: Ack for batch %" PRIu64 ", which is not in flight",
		    a->batch_id);
		return 1;
	}
	r = &sh->ranges[i];
	switch (a->status) {
	case logferry_Ack_Status_OK:
		sh->stats.acks_ok++;
		sh->failures = 0;
		shipper_range_delete(sh, (size_t)i);
		break;
	case logferry_Ack_Status_RETRY:
		sh->stats.acks_retry++;
		delay = a->retry_after_ms < SHIPPER_RETRY_MIN_MS ? SHIPPER_RETRY_MIN_MS :
		    a->retry_after_ms;
		if (delay > sh->cfg->relays.reconnect_max_ms)
			delay = sh->cfg->relays.reconnect_max_ms;
		log_warn("relay %s: batch %" PRIu64 "..%" PRIu64 " not delivered yet (%s); "
		    "sending it again in %" PRIu64 " ms", shipper_relay(sh), r->first, r->end - 1,
		    a->reason[0] != '\0' ? a->reason : "no reason given", delay);
		r->sent = false;
		sh->sent--;
		r->retry_at = shipper_now(sh) + delay;
		break;
	case logferry_Ack_Status_REJECTED:
		sh->stats.acks_rejected++;
		if (r->mode == MODE_NORMAL && r->nsegs > 1) {
			log_error("relay %s rejected batch %" PRIu64 "..%" PRIu64 " (%" PRIu32
			    " events): %s; sending its %" PRIu32 " segments one per batch",
			    shipper_relay(sh), r->first, r->end - 1, r->events,
			    a->reason[0] != '\0' ? a->reason : "no reason given", r->nsegs);
			r->mode = MODE_PER_SEGMENT;
			r->sent = false;
			sh->sent--;
			r->retry_at = 0;
			break;
		}
		log_error("relay %s rejected %s %" PRIu64 "..%" PRIu64 " (%" PRIu32 " events): %s; "
		    "deleted from the spool, as it can never be accepted", shipper_relay(sh),
		    r->mode == MODE_SPLIT ? "a piece of segment" : "segment", r->first, r->end - 1,
		    r->events, a->reason[0] != '\0' ? a->reason : "no reason given");
		sh->stats.rejected_segments++;
		sh->stats.events_dropped += r->events;
		shipper_range_delete(sh, (size_t)i);
		break;
	default:
		shipper_fail(sh, "protocol error: Ack for batch %" PRIu64 " with unknown status %d",
		    a->batch_id, (int)a->status);
		return 1;
	}
	if (sh->state == SHIPPER_DRAINING && sh->sent == 0)
		shipper_drained(sh);
	return 0;
}

static int
shipper_on_frame(void *arg, const struct frame *f)
{
	struct shipper *sh = arg;
	enum frame_type t = frame_type(f);

	/* A frame handled before this one in the same read closed the connection. */
	if (!shipper_open_state(sh->state))
		return 1;
	if (sh->state == SHIPPER_HELLO && t != FRAME_WELCOME && t != FRAME_PING &&
	    t != FRAME_GOODBYE) {
		shipper_fail(sh, "protocol error: %s before Welcome", frame_type_name(t));
		return 1;
	}
	switch (t) {
	case FRAME_WELCOME:
		return shipper_on_welcome(sh, &f->pb.welcome);
	case FRAME_ACK:
		/* After shipper_stop nothing more is deleted: these come again. */
		if (sh->stopping)
			return 0;
		return shipper_on_ack(sh, &f->pb.ack);
	case FRAME_PING:
		sh->pong_pending = true;
		sh->pong_nonce = f->pb.ping.nonce;
		return 0;
	case FRAME_PONG:
		return 0;
	case FRAME_GOODBYE:
		if (sh->stopping)
			return 0;
		snprintf(sh->close_why, sizeof(sh->close_why), "%s",
		    f->pb.goodbye.reason[0] != '\0' ? f->pb.goodbye.reason : "no reason given");
		sh->close_kind = CLOSE_RELAY_GOODBYE;
		shipper_close_conn(sh, false);
		return 1;
	default:
		shipper_fail(sh, "protocol error: unexpected %s frame", frame_type_name(t));
		return 1;
	}
}

/* ---------------------------------------------------------------- TLS callbacks */

static void
shipper_welcome_timeout(uv_timer_t *t)
{
	struct shipper *sh = t->data;

	if (sh->state == SHIPPER_HELLO)
		shipper_fail_dead(sh, "no Welcome within %" PRIu64 " ms (tls.handshake_timeout)",
		    sh->cfg->relays.tls.handshake_timeout_ms);
}

static void
shipper_on_handshake(void *ctx, int status)
{
	struct shipper *sh = ctx;

	/* A failure: on_close follows and says why. */
	if (status != 0 || sh->state != SHIPPER_CONNECTING)
		return;
	uv_tcp_nodelay(tls_conn_tcp(sh->conn), 1);
	sh->last_rx = shipper_now(sh);
	sh->hello_pending = true;
	shipper_set_state(sh, SHIPPER_HELLO);
	uv_timer_start(&sh->t_conn, shipper_welcome_timeout,
	    sh->cfg->relays.tls.handshake_timeout_ms, 0);
	shipper_pump(sh);
}

static void
shipper_on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct shipper *sh = ctx;
	int r;

	if (sh->dec == NULL || !shipper_open_state(sh->state))
		return;
	/* Alive: part of a frame counts too, for ping_timeout. */
	sh->last_rx = shipper_now(sh);
	r = frame_decoder_feed(sh->dec, p, n, shipper_on_frame, sh);
	if (r < 0) {
		shipper_fail(sh, "protocol error: %s", frame_decoder_error(sh->dec));
		return;
	}
	shipper_pump(sh);
}

static void
shipper_on_writable(void *ctx)
{
	shipper_pump(ctx);
}

static void
shipper_handle_closed(uv_handle_t *h)
{
	struct shipper *sh = h->data;

	if (--sh->handles_open == 0 && sh->done != NULL)
		sh->done(sh->done_ctx);
}

/* The end of shipper_stop: every handle closes; done runs from the last close callback. */
static void
shipper_finish(struct shipper *sh)
{
	shipper_set_state(sh, SHIPPER_STOPPED);
	uv_close((uv_handle_t *)&sh->t_conn, shipper_handle_closed);
	uv_close((uv_handle_t *)&sh->t_ping, shipper_handle_closed);
	uv_close((uv_handle_t *)&sh->t_watchdog, shipper_handle_closed);
	uv_close((uv_handle_t *)&sh->t_wake, shipper_handle_closed);
	uv_close((uv_handle_t *)&sh->t_life, shipper_handle_closed);
}

static uint64_t
shipper_backoff(struct shipper *sh)
{
	uint64_t d = sh->cfg->relays.reconnect_min_ms, max = sh->cfg->relays.reconnect_max_ms;

	for (unsigned i = 1; i < sh->failures && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	/* Uniform in [d/2, d]. */
	return d / 2 + shipper_random(sh) % (d - d / 2 + 1);
}

/*
 * The server of the next connection, at random so that agents spread over
 * the fleet, also when connection_lifetime sends them all away; with
 * other, never the current one (it just failed or said Goodbye).
 */
static void
shipper_pick_server(struct shipper *sh, bool other)
{
	/* After a reload that dropped it, the current one is not in the list. */
	if (sh->moved)
		other = false;
	if (sh->nservers < 2)
		sh->server = 0;
	else if (other)
		sh->server = (sh->server + 1 + shipper_random(sh) % (sh->nservers - 1)) %
		    sh->nservers;
	else
		sh->server = shipper_random(sh) % sh->nservers;
	sh->moved = false;
	snprintf(sh->relay, sizeof(sh->relay), "%s", shipper_srv(sh)->text);
}

/*
 * Schedules the next connection after the one that ended (kind, why).
 * Every end but connection_lifetime counts as a failure for the backoff,
 * a refusal or a Goodbye included: only a session that worked (an Ack OK,
 * or up for SHIPPER_STABLE_MS after Welcome) resets it.
 */
static void
shipper_reconnect(struct shipper *sh, enum shipper_close kind, const char *why, bool welcomed,
    uint64_t up_ms, size_t unacked)
{
	char was[sizeof(sh->relay)];
	uint64_t delay = 0;

	snprintf(was, sizeof(was), "%s", shipper_relay(sh));

	if (welcomed && up_ms >= SHIPPER_STABLE_MS)
		sh->failures = 0;
	/* A name's other addresses come first next time (with a single server). */
	if (kind != CLOSE_LIFETIME && kind != CLOSE_MOVED)
		sh->addr_failed = true;
	switch (kind) {
	case CLOSE_MOVED:
		shipper_pick_server(sh, false);
		log_info("relay %s is no longer in relays.servers: its batches in flight are "
		    "acknowledged; connecting to %s", was, shipper_relay(sh));
		break;
	case CLOSE_LIFETIME:
		shipper_pick_server(sh, false);
		log_info("relay %s: connection_lifetime reached; reconnecting to %s", was,
		    shipper_relay(sh));
		break;
	case CLOSE_RELAY_GOODBYE:
		sh->failures++;
		shipper_pick_server(sh, true);
		delay = shipper_backoff(sh);
		if (welcomed)
			log_info("relay %s closed the connection (Goodbye: %s); connecting to %s in %"
			    PRIu64 " ms", was, why, shipper_relay(sh), delay);
		else
			log_warn("relay %s refused the connection before Welcome (Goodbye: %s); "
			    "trying %s in %" PRIu64 " ms (attempt %u)", was, why, shipper_relay(sh),
			    delay, sh->failures + 1);
		break;
	default:
		sh->failures++;
		shipper_pick_server(sh, true);
		delay = shipper_backoff(sh);
		if (welcomed)
			log_warn("relay %s: connection lost: %s; %zu unacknowledged batch(es) will be "
			    "sent again; reconnecting to %s in %" PRIu64 " ms", was, why, unacked,
			    shipper_relay(sh), delay);
		else
			log_warn("relay %s: no connection (%s); trying %s in %" PRIu64 " ms (attempt %u)",
			    was, why, shipper_relay(sh), delay, sh->failures + 1);
		break;
	}
	sh->stats.reconnects++;
	shipper_set_state(sh, SHIPPER_IDLE);
	uv_timer_start(&sh->t_conn, shipper_connect_cb, delay, 0);
}

static void
shipper_on_close(void *ctx, int reason)
{
	struct shipper *sh = ctx;
	enum shipper_close kind = sh->close_kind;
	bool welcomed = sh->welcomed;
	uint64_t up = welcomed ? shipper_now(sh) - sh->connected_at : 0;
	char why[sizeof(sh->close_why)];
	size_t unacked = 0;

	if (kind == CLOSE_NONE) {
		kind = CLOSE_FAILURE;
		snprintf(why, sizeof(why), "%s", tls_conn_reason(sh->conn)[0] != '\0' ?
		    tls_conn_reason(sh->conn) : reason == 0 ?
		    "the relay closed the connection" : tls_strerror(reason));
	} else {
		snprintf(why, sizeof(why), "%s", sh->close_why);
	}
	/* What was in flight goes again, oldest first, on the next connection. */
	for (size_t i = 0; i < sh->nranges; i++) {
		if (sh->ranges[i].sent) {
			sh->ranges[i].sent = false;
			sh->ranges[i].retry_at = 0;
		}
	}
	unacked = sh->nranges;
	sh->sent = 0;
	sh->conn = NULL;
	frame_decoder_free(sh->dec);
	sh->dec = NULL;
	buf_reset(&sh->out);
	sh->out_off = 0;
	sh->welcomed = false;
	sh->hello_pending = sh->ping_pending = sh->pong_pending = sh->goodbye_sent = false;
	sh->close_kind = CLOSE_NONE;
	sh->close_why[0] = '\0';
	shipper_stop_conn_timers(sh);
	if (sh->stopping) {
		log_info("relay %s: connection closed (agent stopping); %zu unacknowledged "
		    "batch(es) stay in the spool", shipper_relay(sh), unacked);
		shipper_finish(sh);
		return;
	}
	shipper_reconnect(sh, kind, why, welcomed, up, unacked);
}

static const struct tls_conn_callbacks shipper_tls_callbacks = {
	.on_handshake = shipper_on_handshake,
	.on_data = shipper_on_data,
	.on_writable = shipper_on_writable,
	.on_close = shipper_on_close,
};

/* ---------------------------------------------------------------- connecting */

static bool
shipper_addr_is_failed(const struct shipper *sh, const struct addrinfo *ai)
{
	return sh->addr_failed && ai->ai_addrlen == sh->addr_len &&
	    memcmp(ai->ai_addr, &sh->addr, sh->addr_len) == 0;
}

/*
 * One of every address the name resolved to, at random (agents spread over
 * the addresses of a name as over the servers), but not the one whose
 * connection just failed while there is another. Remembers it.
 */
static const struct addrinfo *
shipper_pick_addr(struct shipper *sh, const struct addrinfo *res)
{
	const struct addrinfo *ai;
	uint64_t n = 0, k;

	for (ai = res; ai != NULL; ai = ai->ai_next)
		n += !shipper_addr_is_failed(sh, ai);
	k = n > 0 ? shipper_random(sh) % n : 0;
	for (ai = res; ai->ai_next != NULL; ai = ai->ai_next) {
		if (n > 0 && shipper_addr_is_failed(sh, ai))
			continue;
		if (k-- == 0)
			break;
	}
	sh->addr_failed = false;
	sh->addr_len = ai->ai_addrlen <= sizeof(sh->addr) ? ai->ai_addrlen : 0;
	memcpy(&sh->addr, ai->ai_addr, sh->addr_len);
	return ai;
}

static void
shipper_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct shipper *sh = req->data;
	const struct config_addr *srv = shipper_srv(sh);
	const char *name = sh->cfg->relays.tls.server_name != NULL ?
	    sh->cfg->relays.tls.server_name : srv->host;
	const struct addrinfo *ai;
	char why[320];
	int r;

	if (sh->stopping) {
		uv_freeaddrinfo(res);
		shipper_finish(sh);
		return;
	}
	if (status < 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", srv->host, uv_strerror(status));
		shipper_reconnect(sh, CLOSE_FAILURE, why, false, 0, sh->nranges);
		return;
	}
	if ((r = frame_decoder_new(SHIPPER_RELAY_FRAME_MAX, &sh->dec)) != 0) {
		uv_freeaddrinfo(res);
		snprintf(why, sizeof(why), "%s", strerror(-r));
		shipper_reconnect(sh, CLOSE_FAILURE, why, false, 0, sh->nranges);
		return;
	}
	sh->close_kind = CLOSE_NONE;
	sh->close_why[0] = '\0';
	ai = shipper_pick_addr(sh, res);
	r = tls_conn_connect(sh->loop, sh->tls, ai->ai_addr, name, &shipper_tls_callbacks, sh,
	    &sh->conn);
	uv_freeaddrinfo(res);
	if (r != 0) {
		frame_decoder_free(sh->dec);
		sh->dec = NULL;
		sh->conn = NULL;
		snprintf(why, sizeof(why), "%s", tls_strerror(r));
		shipper_reconnect(sh, CLOSE_FAILURE, why, false, 0, sh->nranges);
		return;
	}
	shipper_set_state(sh, SHIPPER_CONNECTING);
}

static void
shipper_connect_cb(uv_timer_t *t)
{
	struct shipper *sh = t->data;
	const struct config_addr *srv = shipper_srv(sh);
	struct addrinfo hints;
	char port[8], why[320];
	int r;

	if (sh->state != SHIPPER_IDLE)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", (unsigned)srv->port);
	shipper_set_state(sh, SHIPPER_RESOLVING);
	sh->gai.data = sh;
	if ((r = uv_getaddrinfo(sh->loop, &sh->gai, shipper_on_resolved, srv->host, port,
	    &hints)) != 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", srv->host, uv_strerror(r));
		shipper_reconnect(sh, CLOSE_FAILURE, why, false, 0, sh->nranges);
	}
}

static void
shipper_on_commit(void *ctx)
{
	struct shipper *sh = ctx;

	if (sh->due_at == 0)
		sh->due_at = shipper_now(sh) + sh->cfg->relays.batch.max_delay_ms;
	shipper_pump(sh);
}

/* ---------------------------------------------------------------- public */

/* The client TLS configuration from cfg's relays.tls; logs what is wrong. */
static int
shipper_tls_new(const struct agent_config *cfg, struct tls_config **out)
{
	struct tls_config_options o;
	char err[512];
	int r;

	agent_config_tls_options(cfg, &o);
	if ((r = tls_config_new(&o, err, sizeof(err), out)) != 0)
		log_error("relays.tls: %s", err);
	return r;
}

int
shipper_reload(struct shipper *sh, const struct agent_config *fresh)
{
	struct tls_config *tls;
	bool listed = false;
	int r;

	if (!fresh->relays_enabled || fresh->relays.servers.n == 0) {
		log_error("SIGHUP: the relays section is gone; removing it needs a restart");
		return -EINVAL;
	}
	if ((r = shipper_tls_new(fresh, &tls)) != 0) {
		log_error("SIGHUP: the running TLS certificates stay");
		return r;
	}
	/* The open connection keeps its own reference. */
	tls_config_unref(sh->tls);
	sh->tls = tls;
	log_info("SIGHUP: TLS reloaded from %s: the next connection to a relay uses it",
	    fresh->relays.tls.cert_file);
	sh->cfg = fresh;
	sh->servers = fresh->relays.servers.items;
	sh->nservers = fresh->relays.servers.n;
	for (size_t i = 0; i < sh->nservers && !listed; i++) {
		if (strcmp(sh->servers[i].text, sh->relay) == 0) {
			sh->server = i;
			listed = true;
		}
	}
	if (listed || sh->stopping)
		return 0;
	/*
	 * Waiting to connect: to a listed relay. Connected: once the batches
	 * in flight are acknowledged (what is not stays in the spool and goes
	 * again). Connecting: as soon as the Welcome comes, or on the failure.
	 */
	sh->server = 0;
	sh->moved = true;
	if (sh->state == SHIPPER_IDLE) {
		shipper_pick_server(sh, false);
		log_info("SIGHUP: relays.servers changed: connecting to %s", shipper_relay(sh));
	} else {
		log_info("SIGHUP: relay %s is no longer in relays.servers: leaving it once its "
		    "batches in flight are acknowledged", shipper_relay(sh));
		shipper_drain(sh);
	}
	return 0;
}

int
shipper_start(uv_loop_t *loop, const struct agent_config *cfg, struct spool *spool,
    struct shipper **out)
{
	struct shipper *sh;
	int r;

	*out = NULL;
	if (cfg->relays.servers.n == 0) {
		log_error("relays.servers: no relay configured");
		return -EINVAL;
	}
	if (strlen(cfg->id) >= sizeof(((logferry_Hello *)0)->agent_id)) {
		log_error("id '%s' is too long to be sent to relays (%zu bytes at most)", cfg->id,
		    sizeof(((logferry_Hello *)0)->agent_id) - 1);
		return -EINVAL;
	}
	if ((sh = calloc(1, sizeof(*sh))) == NULL ||
	    (sh->fields = calloc(SHIPPER_EVENT_FIELDS, sizeof(*sh->fields))) == NULL) {
		free(sh);
		log_error("out of memory starting the shipper");
		return -ENOMEM;
	}
	if ((r = shipper_tls_new(cfg, &sh->tls)) != 0) {
		free(sh->fields);
		free(sh);
		return r;
	}
	sh->loop = loop;
	sh->cfg = cfg;
	sh->id = cfg->id;
	sh->spool = spool;
	sh->servers = cfg->relays.servers.items;
	sh->nservers = cfg->relays.servers.n;
	sh->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)sh;
	if (sh->rng == 0)
		sh->rng = 1;
	shipper_pick_server(sh, false);
	sh->window = 1;
	buf_init(&sh->out, FRAME_HEADER_SIZE + SHIPPER_FRAME_OVERHEAD + SHIPPER_PAYLOAD_MAX);
	buf_init(&sh->raw, SHIPPER_SEGMENT_RAW_MAX);
	buf_init(&sh->piece, SHIPPER_SEGMENT_RAW_MAX);
	buf_init(&sh->zbuf, ZSTD_compressBound(SHIPPER_SEGMENT_RAW_MAX));
	uv_timer_init(loop, &sh->t_conn);
	uv_timer_init(loop, &sh->t_ping);
	uv_timer_init(loop, &sh->t_watchdog);
	uv_timer_init(loop, &sh->t_wake);
	uv_timer_init(loop, &sh->t_life);
	sh->t_conn.data = sh->t_ping.data = sh->t_watchdog.data = sh->t_wake.data =
	    sh->t_life.data = sh;
	sh->handles_open = 5;
	/* What the spool holds from before is due at once; the oldest goes first. */
	sh->due_at = shipper_now(sh);
	sh->next_send = 0;
	sh->state = SHIPPER_IDLE;
	spool_set_commit_cb(spool, shipper_on_commit, sh);
	uv_timer_start(&sh->t_conn, shipper_connect_cb, 0, 0);
	*out = sh;
	return 0;
}

void
shipper_stop(struct shipper *sh, void (*done)(void *ctx), void *ctx)
{
	sh->done = done;
	sh->done_ctx = ctx;
	if (sh->stopping)
		return;
	sh->stopping = true;
	spool_set_commit_cb(sh->spool, NULL, NULL);
	switch (sh->state) {
	case SHIPPER_IDLE:
		shipper_stop_conn_timers(sh);
		shipper_finish(sh);
		break;
	case SHIPPER_RESOLVING:
		/* The callback comes anyway (UV_EAI_CANCELED if this worked) and finishes. */
		uv_cancel((uv_req_t *)&sh->gai);
		break;
	case SHIPPER_CONNECTING:
		sh->close_kind = CLOSE_STOP;
		shipper_close_conn(sh, false);
		break;
	case SHIPPER_HELLO:
	case SHIPPER_READY:
	case SHIPPER_DRAINING:
		shipper_goodbye(sh, CLOSE_STOP, "agent stopping");
		break;
	case SHIPPER_GOODBYE:
		sh->close_kind = CLOSE_STOP;
		break;
	case SHIPPER_CLOSING:
	case SHIPPER_STOPPED:
		break;
	}
}

void
shipper_free(struct shipper *sh)
{
	if (sh == NULL)
		return;
	frame_decoder_free(sh->dec);
	tls_config_unref(sh->tls);
	buf_free(&sh->out);
	buf_free(&sh->raw);
	buf_free(&sh->piece);
	buf_free(&sh->zbuf);
	free(sh->ranges);
	free(sh->fields);
	free(sh);
}

void
shipper_get_stats(const struct shipper *sh, struct shipper_stats *st)
{
	*st = sh->stats;
	st->inflight = sh->sent;
	st->unacked = sh->nranges;
	st->connected = sh->welcomed && sh->conn != NULL &&
	    (sh->state == SHIPPER_READY || sh->state == SHIPPER_DRAINING);
	st->relay = shipper_relay(sh);
}
