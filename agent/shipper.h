/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shipper: sends committed spool segments to a relay over mutual TLS and
 * deletes them from the spool when the relay acknowledges them (docs/architecture.md
 * "Shipper", "Wire protocol", guarantees 2-4).
 *
 * A Batch is one or more consecutive segments sent as stored: their zstd
 * frames concatenate into one zstd stream whose content is one EventList,
 * so nothing is decoded or re-compressed. Segments are combined while the
 * sums stay within batch.max_events, batch.max_bytes and the limits of the
 * relay's Welcome; a batch that is not full waits at most batch.max_delay
 * for more. Up to `window` batches (the lower of ours and the Welcome's)
 * are in flight.
 *
 * Memory: the shipper keeps no copy of a batch in flight, only its range
 * of sequence numbers, and reads the spool again to re-send it. At most
 * one encoded frame waits for the socket at a time, written in pieces as
 * TLS takes them. A segment larger than the relay's limits (the rare path)
 * is decompressed, cut into pieces within them and each piece compressed
 * again; the segment is deleted once every piece is acknowledged.
 *
 * Event formats (docs/architecture.md "Wire protocol"): Hello announces
 * formats 1 and 2, Welcome those the relay reads (none: 1). A batch holds
 * segments of one format and says which. A segment in a format the relay
 * does not read takes the split path too, its events written again in
 * format 1 (counted in segments_converted, warned about once per
 * connection): nothing is lost and nothing is REJECTED for its format.
 *
 * Acks may come in any order. OK deletes the batch's segments (spool_delete
 * is asynchronous, so the shipper never reads an acknowledged range again:
 * it keeps a cursor of the next sequence to send and the list of unacked
 * ranges). RETRY sends the same range again after the relay's delay.
 * REJECTED sends a batch of several segments again one segment per batch;
 * a single segment (or piece) rejected is logged, counted and deleted: it
 * can never be accepted and keeping it would fill the disk. An Ack for a
 * batch not in flight is a protocol error.
 *
 * Connections: each connection goes to a server picked at random among
 * those configured, and to an address picked at random among all those its
 * name resolves to, so that agents spread over the fleet. After a failure,
 * a refusal or a relay's Goodbye, another server (and not the address that
 * failed) is tried after a delay that doubles per consecutive failure from
 * reconnect_min to reconnect_max, uniformly jittered within [delay/2,
 * delay]; only a session that worked (an Ack OK, or up for
 * SHIPPER_STABLE_MS after Welcome) resets it. After connection_lifetime
 * (jittered by 10%) the shipper stops sending, waits for the acks in flight
 * (ping_timeout at most), says Goodbye and connects again at once, to a
 * server picked at random again. A Ping goes out every ping_interval; a
 * relay from which no byte at all arrived for ping_timeout is dead and its
 * socket is closed at once (a graceful TLS close would wait for it). After
 * a reconnect the unacked ranges are sent first, oldest first, then new
 * segments.
 *
 * Everything runs on the loop thread of the spool's loop.
 */
#ifndef LOGFERRY_SHIPPER_H
#define LOGFERRY_SHIPPER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "agent/agent_config.h"
#include "agent/spool.h"

/* A connection that lasted this long after Welcome resets the backoff. */
#define SHIPPER_STABLE_MS 5000
/* Floor of the delay before a batch answered RETRY is sent again. */
#define SHIPPER_RETRY_MIN_MS 100

struct shipper;

struct shipper_stats {
	uint64_t batches_sent;       /* Batch frames queued for a relay, re-sends included */
	uint64_t events_sent;        /* events in them */
	uint64_t bytes_sent;         /* their payload bytes (compressed) */
	uint64_t acks_ok;
	uint64_t acks_retry;
	uint64_t acks_rejected;
	uint64_t rejected_segments;  /* segments (or pieces of one) rejected alone and deleted */
	/* Events deleted without an OK: rejected, too large for the relay, unreadable. */
	uint64_t events_dropped;
	/* Segments in an event format the relay does not read, re-encoded to format 1 to send. */
	uint64_t segments_converted;
	uint64_t reconnects;         /* connections attempted after the first */
	uint64_t inflight;           /* batches sent and not yet acknowledged */
	uint64_t unacked;            /* ranges not acknowledged: in flight or to be sent again */
	bool connected;              /* a relay's Welcome arrived and the connection is up */
	/* The server in use or being tried, as configured; valid as long as the shipper. */
	const char *relay;
};

/*
 * Builds the TLS client configuration from cfg->relays.tls and starts
 * connecting to one of cfg->relays.servers, at random; shipping begins with the oldest
 * segment in the spool. cfg and spool are borrowed: both must outlive the
 * shipper (stop it before spool_close). Returns 0 and sets *out (the caller
 * owns it: shipper_stop, then shipper_free), or a negative error after
 * logging what is wrong (-EINVAL or -ENOENT for the TLS files, -ENOMEM).
 */
int shipper_start(uv_loop_t *loop, const struct agent_config *cfg, struct spool *spool,
    struct shipper **out);

/*
 * Stops: no new batch is sent; on an open connection a Goodbye{"agent
 * stopping"} follows the frame being written (bounded by
 * tls.handshake_timeout), then TLS closes gracefully. Acks that arrive after
 * this are ignored: nothing more is deleted from the spool. done(ctx) runs
 * on the loop, never from inside this call, once every handle is closed;
 * then call shipper_free. Call once.
 */
void shipper_stop(struct shipper *sh, void (*done)(void *ctx), void *ctx);

/*
 * SIGHUP: loads the TLS files of fresh's relays.tls for the next connection
 * (the open one keeps its own), then borrows fresh (it must outlive the
 * shipper, or the next reload) for everything else of relays: servers,
 * batch, window, timings. A relay no longer listed is left once its
 * batches in flight are acknowledged; the next connection goes to a listed
 * one. id stays the one of the configuration given to shipper_start,
 * which must still outlive the shipper. On error (logged) nothing
 * changes. Returns 0 or the error.
 */
int shipper_reload(struct shipper *sh, const struct agent_config *fresh);

/* Frees a shipper whose stop has completed (or NULL). */
void shipper_free(struct shipper *sh);

/* A snapshot of the counters and the connection. */
void shipper_get_stats(const struct shipper *sh, struct shipper_stats *st);

#endif
