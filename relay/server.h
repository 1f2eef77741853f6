/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server: the relay's agent-facing side (docs/architecture.md "Wire protocol",
 * "Relay internals", guarantees 2, 3 and 4).
 *
 * Threads. The main loop owns the listening socket: it accepts, counts
 * the connection against max_connections and the memory budget, and hands
 * the socket to one of `workers` worker threads in turn. Each worker runs
 * its own libuv loop with its connections, its kafka_loop (delivery
 * reports come back to it) and nothing shared but atomic counters.
 *
 * A connection: TLS handshake (common/tls), then the agent's Hello within
 * handshake_timeout; the id it claims must match its certificate's common
 * name (verify_client) and one of allowed_agents. Welcome announces the
 * limits. Then Batches: each is checked before anything is allocated for
 * it (frame size, payload size, declared uncompressed size, window, a
 * batch id not already in flight), decompressed into exactly the declared
 * size (more or less is refused: a zstd bomb stops at the limit), its
 * EventList's framing and event count checked, and only then produced, one
 * record per event; an event that does not decode is refused alone,
 * logged and counted, and the Ack OK says so. Its Ack goes back when Kafka has answered for every
 * event (kafka.h): OK, or RETRY. A batch that breaks a limit or does not
 * decode is answered REJECTED and harms no one else; a frame that breaks
 * the protocol closes that connection, logged with the agent and peer.
 *
 * Bounds. Per connection: `window` batches and connection_max_inflight
 * bytes (declared uncompressed sizes of batches not yet answered); over
 * either, the connection is not read until answers come. In total: the
 * batch budget, the sum of all connections' in-flight bytes and partly
 * received frames; over it, connections stop being read as they receive.
 * A decompressed batch is held only while it is produced (librdkafka
 * copies the records into its own bounded queue). Each connection costs a
 * fixed estimate (TLS buffers and state) against the connection budget;
 * beyond it, like beyond max_connections, new connections are closed at
 * once and counted.
 */
#ifndef LOGFERRY_SERVER_H
#define LOGFERRY_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "relay/kafka.h"
#include "relay/relay_config.h"

/*
 * What one connection is assumed to cost: mbedtls's two record buffers
 * (about 16.5 KiB each) and context, our state, the frame decoder and small
 * buffers. Ciphertext being read (up to TLS_RECV_BUFFER) is transient.
 * Measured: 400 agents after Hello added 41 KiB of RssAnon each.
 */
#define SERVER_CONN_COST (48 * 1024)
/* Bytes of control frames (acks, pongs, goodbye) waiting for a connection that does not read. */
#define SERVER_OUT_MAX (64 * 1024)

struct server;

struct server_budget {
	uint64_t batches;        /* bytes in flight and partial frames, all connections */
	uint64_t connections;    /* SERVER_CONN_COST per connection */
};

struct server_stats {
	uint64_t accepted;            /* TCP connections handed to workers */
	uint64_t refused;             /* closed at once: max_connections or budget */
	uint64_t handshakes_failed;   /* TLS failed, or no valid Hello */
	uint64_t agents_refused;      /* Hello refused: id, certificate or allowed_agents */
	uint64_t protocol_errors;     /* connections closed for a bad frame */
	uint64_t unknown_event_formats; /* connections closed for a Batch in an event format not read here */
	uint64_t batches, events;     /* received and checked */
	uint64_t events_malformed;    /* events that did not decode, refused alone */
	uint64_t acks_ok, acks_retry, acks_rejected;
	uint64_t connections;         /* open now */
	uint64_t inflight_bytes;      /* now: bytes of unanswered batches and partial frames */
	uint64_t paused_reads;        /* times a connection stopped being read for a bound */
	/* The last batch Kafka answered had a failed delivery or timed out (an outage, most likely). */
	bool kafka_failing;
};

/*
 * Binds and listens on cfg->listen (logging the bound address, so port 0
 * works), loads the TLS configuration and starts the workers, each with a
 * kafka_loop of k. cfg and k must outlive the server. Returns 0 and sets
 * *out, or a negative error after logging what failed.
 */
int server_start(uv_loop_t *loop, const struct relay_config *cfg, struct kafka *k,
    const struct server_budget *budget, struct server **out);

/*
 * A clean stop, on the main loop: stops accepting and reading, waits up to
 * shutdown_timeout for Kafka to answer the batches in flight and sends
 * their Acks, answers the rest RETRY, says Goodbye to every agent, closes
 * the connections and joins the workers. done(ctx) runs on the main loop
 * at the end.
 */
void server_stop(struct server *s, void (*done)(void *ctx), void *ctx);

/*
 * SIGHUP, in two steps (see kafka_reload_prepare). server_reload_prepare
 * loads the TLS files named in fresh's tls section and copies its
 * tls.allowed_agents; returns 0 and sets *out, or a negative error after
 * logging it (the running ones stay). server_reload_commit applies them
 * and frees rl: new connections use the new TLS files, open ones keep
 * theirs; new Hellos are checked against the new allowed_agents, and an
 * open connection of an agent no longer allowed is no longer read and
 * ends with a Goodbye once its batches in flight are answered (their Acks
 * sent as usual); the agent is refused at its next Hello and keeps its
 * events. server_reload_cancel frees rl unapplied. Main loop.
 */
struct server_reload;
int server_reload_prepare(struct server *s, const struct relay_config *fresh,
    struct server_reload **out);
void server_reload_commit(struct server *s, struct server_reload *rl);
void server_reload_cancel(struct server_reload *rl);

/* After done: frees s. NULL is fine. */
void server_free(struct server *s);

/* A snapshot of the counters; any thread. */
void server_get_stats(struct server *s, struct server_stats *st);

/* The bound port (host order), for logs and tests. */
uint16_t server_port(const struct server *s);

#endif
