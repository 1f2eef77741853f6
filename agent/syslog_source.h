/* SPDX-License-Identifier: Apache-2.0 */
/*
 * syslog_source: one `syslog` source of the configuration: a listener per
 * `listen` URL, each message parsed with the syslog parser (RFC 5424 and
 * RFC 3164, agent/syslog_parse.h) and appended to the spool.
 *
 * Transports:
 *   udp://host:port    one message per datagram (IPv4 or IPv6)
 *   tcp://host:port    a stream per connection, framed as RFC 6587 octet
 *                      counting ("LEN SP MSG") when its first byte is a
 *                      digit, else one message per line (LF, or NUL)
 *   tls://host:port    syslog over TLS (RFC 5425): a TLS connection of
 *                      common/tls, its plaintext read as a tcp:// stream
 *                      (same framing, limits, multiline and backpressure);
 *                      the source's tls section holds the certificate,
 *                      loaded again by syslog_source_reload
 *   unix:///path       a unix datagram socket (what syslog(3) and logger
 *                      write to), created with socket_mode and removed at stop
 *
 * Messages are always parsed as syslog: the `format` key is not available
 * to syslog sources. The event's source is the listener's URL as written,
 * its host the message's HOSTNAME (else the agent's), its time the message's
 * timestamp (else the receive time). A trailing LF, CR LF or NUL is not
 * part of a message; an empty message is not an event.
 *
 * Limits (docs/architecture.md guarantees 3 and 4). A message longer than
 * max_message_size: a datagram or a newline-framed one is cut at
 * max_message_size and carries `truncated: true`; an octet-counted one is
 * read and discarded. A malformed octet count closes that connection.
 * Connections beyond max_connections are accepted and closed at once. A
 * connection buffers at most max_message_size plus a frame header.
 *
 * Datagrams. Each udp and unix socket asks for receive_buffer bytes of
 * kernel buffer (SO_RCVBUFFORCE when privileged, else SO_RCVBUF; what was
 * granted is logged) so that bursts wait there while the agent is busy,
 * and is read with recvmmsg, several datagrams per system call. What the
 * kernel still drops is read from the socket's drop counter after every
 * batch, counted (dropped_kernel) and logged. A unix socket's queue is
 * also bounded by net.unix.max_dgram_qlen: beyond it the kernel refuses
 * (blocks or fails) the sender, and drops nothing it accepted.
 *
 * Multiline (tcp:// and tls:// listeners only: the configuration refuses it on a
 * source with datagram listeners). Each connection gathers its messages
 * into events with the source's rule (agent/multiline.h), matched against
 * each message's MSG part as the syslog parser reads it, not the frame
 * with its header. An event is the first message's frame with the MSG
 * parts of the messages after it appended, separated by "\n": parsed
 * again, it keeps the first message's fields (time, host, app, severity)
 * and its message field is the joined MSG parts. It is shipped when a
 * message does not continue it, when no message has come for
 * multiline.flush_timeout (one timer per source), and when its connection
 * ends or fails or the source stops. Its buffer is charged to the budget
 * before it grows and given back once the event is shipped; a connection
 * whose event cannot grow stops reading and waits, like one whose receive
 * buffer does not fit.
 *
 * Full spool. Datagrams are dropped and counted: a local sender blocks
 * when a unix socket's queue is full, and syslog(3) callers must not stall
 * behind the agent. TCP pushes back instead: the message that did not fit
 * stays in its connection's buffer, reading stops on every connection of
 * the source, and syslog_source_resume retries the kept messages before
 * reading again, so nothing received over TCP is lost to a full spool.
 */
#ifndef LOGFERRY_SYSLOG_SOURCE_H
#define LOGFERRY_SYSLOG_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "agent/agent_config.h"
#include "agent/budget.h"
#include "agent/source_type.h"
#include "agent/spool.h"

struct syslog_source;

/*
 * Starts listening on every one of cfg's listen URLs on loop. host is the
 * agent's host name; cfg, host and spool must outlive the source. Returns
 * 0, or a negative error after logging which URL failed and what to do.
 * On an error, listeners opened so far are being closed: the loop must run
 * (one turn is enough) for their memory to be freed.
 */
int syslog_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct syslog_source **out);

/*
 * Receive buffers of TCP connections draw from b (NULL: none), which must
 * outlive the source: a connection takes its buffer's bound
 * (max_message_size plus a header) before reading and gives it back once
 * everything it read is spooled. A connection that does not fit stops
 * reading until bytes come back (TCP pushes back on its sender). Call
 * before the first connection.
 */
void syslog_source_set_budget(struct syslog_source *ss, struct budget *b);

/*
 * SIGHUP: loads the tls section's files again for new tls:// connections;
 * open ones keep the certificate they began with. Returns 0 (also without
 * tls:// listeners), or a negative error after logging it: the certificate
 * loaded before stays.
 */
int syslog_source_reload(struct syslog_source *ss);

/* The spool has room again: kept TCP messages and events are spooled and reading goes on. */
void syslog_source_resume(struct syslog_source *ss);

/*
 * Closes every listener and connection and removes unix sockets it
 * created; done(ctx) runs when every handle is closed and ss is freed.
 * Complete TCP messages still kept for a full spool, and every event
 * being gathered (multiline), are offered to the spool once more; what
 * does not fit is lost and logged.
 */
void syslog_source_stop(struct syslog_source *ss, void (*done)(void *ctx), void *ctx);

/*
 * The address listener i (in cfg->listen order) is bound to, with the
 * port the kernel picked for port 0. Returns 0, -ENOENT for no such
 * listener, or -EAFNOSUPPORT for a unix socket (its path is in cfg).
 */
int syslog_source_address(const struct syslog_source *ss, size_t i,
    struct sockaddr_storage *out);

struct syslog_source_stats {
	uint64_t received;            /* messages spooled */
	uint64_t truncated;           /* of which cut at max_message_size */
	uint64_t parse_errors;        /* of which spooled with a parse_error field */
	uint64_t dropped_full;        /* datagrams dropped on a full spool */
	uint64_t dropped_kernel;      /* datagrams the kernel dropped: the receive buffer was full */
	uint64_t dropped_oversize;    /* octet-counted messages over max_message_size, skipped */
	uint64_t fields_dropped;      /* of which spooled without their fields: too large with them */
	uint64_t dropped_unspoolable; /* messages the spool refused even without fields */
	uint64_t connections;         /* TCP connections accepted and served */
	uint64_t connections_open;    /* of which still open */
	uint64_t connections_refused; /* closed at once: max_connections reached */
	uint64_t framing_errors;      /* connections closed for a malformed octet count */
	uint64_t read_errors;         /* failed receives and connections reset */
	uint64_t pauses;              /* times TCP reading stopped on a full spool */
	uint64_t budget_waits;        /* times a connection waited for memory_limit's share */
	uint64_t paused;              /* 1 while TCP reading is stopped */
	uint64_t tls_handshakes_failed; /* tls:// connections whose handshake failed */
	uint64_t tls_cn_refused;      /* tls:// connections closed: allowed_cns refused the CN */
	uint64_t multiline_events;    /* events of more than one message spooled (multiline) */
	uint64_t multiline_flushed;   /* of which shipped after multiline.flush_timeout */
	uint64_t multiline_truncated; /* of which cut at multiline.max_bytes */
};

/* A copy of the source's counters. */
void syslog_source_get_stats(const struct syslog_source *ss, struct syslog_source_stats *st);

/* The `syslog` type of source_types. */
extern const struct source_type syslog_source_type;

#endif
