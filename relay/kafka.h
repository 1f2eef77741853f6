/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kafka: the relay's one librdkafka producer, shared by every worker loop,
 * and the tracking that turns delivery reports into batch answers
 * (docs/architecture.md "Relay internals", guarantees 2 and 3).
 *
 * Producer. Created from the relay configuration: bootstrap.servers from
 * kafka.brokers, enable.idempotence=true and acks=all (an OK means every
 * in-sync replica has the event, and retries neither duplicate nor reorder),
 * message.timeout.ms = kafka.delivery_timeout, linger.ms=5, librdkafka's
 * queue bounded by the byte budget given to kafka_new, then
 * kafka.properties unchanged (relay_config refuses the ones set above that
 * matter for guarantees). librdkafka's log lines go to common/log.
 *
 * Threads. Workers produce from their own loop threads (librdkafka is
 * thread-safe; a read-write lock only guards the producer pointer against
 * a swap, taken once per run of records, kafka_loop_hold). One poller thread of this module
 * serves delivery reports and errors: the producer's main queue as events
 * (rd_kafka_queue_poll; errors and logs go to the same handlers as the
 * callbacks), those of the producers a reload replaced with rd_kafka_poll,
 * until they hold nothing; and it is the one place where the
 * producer is replaced, after a fatal error or by a reload's new one;
 * librdkafka forbids destroying a producer from inside its own callbacks. A delivery report finds its batch through the message's
 * opaque; a run of reports of one batch is applied at once, and when it
 * settles the batch, the batch is queued to its
 * kafka_loop, which is woken with uv_async_send; the batch's callback
 * then runs on the loop that began it. The report event itself goes to the
 * loop of its first record, which destroys it: the records' memory is freed
 * on the thread that allocated it (a bounded number per loop; the poller
 * frees the rest, and takes them all back before it destroys a producer).
 * librdkafka never calls into a loop.
 * A thread of our own rather than librdkafka's background queue: the
 * recreate needs a thread outside librdkafka's callbacks anyway, one
 * thread serves reports in order with no locking between report handlers,
 * and joining it in kafka_free is a clear end (no callback after it).
 *
 * Records. Topic and key from the first of kafka.routes whose match
 * holds, else the kafka.topic and kafka.key templates (relay/route.h; a
 * key that renders empty is sent as no key, so such records spread over
 * the partitions); value by kafka.format; headers logferry-agent (agent
 * id), logferry-seq (decimal sequence number) and, while
 * kafka.dead_letter_topic is set, logferry-stream (the event's stream, so
 * that a record a broker refuses can be dead-lettered with it), none of
 * them with kafka.headers off (a record set aside keeps them all); Kafka's
 * timestamp is the
 * produce time (the event's own time is in the record: an old event must
 * not fall under the topic's retention or timestamp checks at once), the
 * wall clock read once per call of records produced together and in a
 * held run once per 256 records (so to about a millisecond), not per
 * record. The headers are a two-entry list built per record: librdkafka allocates per
 * header whichever way it is given them (bench/bench_kafka.c measures the
 * ways), and this way allocates least.
 *
 * Batches. kafka_batch_begin, kafka_produce for each event, kafka_batch_end;
 * the callback then runs exactly once, on the owner's loop thread, and is
 * the owner's last use of the batch (a batch answered RETRY before its end
 * is ended by the module):
 * - KAFKA_OK once every produced event has a successful delivery report
 *   (and kafka_batch_end was called);
 * - KAFKA_RETRY as soon as one report fails, when the batch is older than
 *   kafka.delivery_timeout, on kafka_loop_close, or after a fatal producer
 *   error. The relay holds no event longer than that: the agent re-sends.
 * Reports that arrive after the answer are counted and dropped; the batch's
 * memory lives until its last report (or kafka_free). A batch is produced
 * with the templates, format and dead-letter topic current when it began
 * (kafka_reload_commit changes them for later batches only).
 *
 * Record size. A record must fit message.max.bytes (librdkafka refuses it
 * at produce) and, in its record batch, the broker's limit. The relay
 * knows each record's size before producing it, as librdkafka counts it
 * (kafka_record_size: the value as kafka.format renders it, the key, the
 * headers and the record's framing at its largest), and the largest it
 * produces whole is kafka_record_limit(message.max.bytes): that limit
 * less the record batch's header and a margin (about 1/64) for codecs and
 * for a broker limit a little lower. With librdkafka's default
 * message.max.bytes (1000000) that is 984,058 bytes.
 *
 * Pieces. An event whose record would be larger is cut: its message is
 * split so that each piece's record fits (never inside a UTF-8 sequence:
 * JSON would turn each half into U+FFFD, and the pieces would no longer
 * join into the original), and each piece is produced as a record of its
 * own, with the event's topic, key, other members and fields (slices
 * resolved against the whole message), the same logferry-agent and
 * logferry-seq headers (together the id to reassemble by) and
 * logferry-piece "INDEX/COUNT" (INDEX from 0); the JSON value also has
 * "piece_index" and "piece_count". The message of the event is the
 * pieces' messages joined in INDEX order. The event counts as produced
 * once every piece is, and the batch is answered OK once every piece of
 * every event is delivered. Only an event whose fields, key and headers
 * alone leave no room for its message is refused (-EMSGSIZE: logged,
 * counted in kafka_stats.refused_oversize and kafka_result.refused; the
 * Ack carries it as its reason), and the other events go on.
 *
 * Events set aside. An event whose rendered topic Kafka would refuse
 * (route_topic_check: empty, ".", "..", over 249 bytes, a byte outside
 * [A-Za-z0-9._-]) or that kafka.allowed_topics does not allow for the
 * batch's agent is never produced to that topic, nor renamed: with
 * kafka.dead_letter_topic it is produced there instead (same key, value
 * and headers, plus logferry-error with the reason, logferry-original-topic
 * with the rendered name, escaped, and logferry-original-stream);
 * without it, it is logged, counted and acknowledged (kafka_result.refused).
 * Either way it counts in kafka_stats.set_aside by reason.
 *
 * Records a broker refuses for good. A delivery report with an error no
 * retry will change (MSG_SIZE_TOO_LARGE: a topic whose max.message.bytes
 * is below the producer's; INVALID_RECORD, RECORD_LIST_TOO_LARGE, policy
 * violation) would make the agent re-send the batch forever and block
 * its spool. With kafka.dead_letter_topic the record is produced there
 * by the same means (same key, its headers plus logferry-error
 * "NAME: text", logferry-original-topic and logferry-original-stream, and
 * logferry-truncated with the original size when its value had to be cut
 * to fit), and the batch waits for that record's report. Without it, or
 * when the dead-letter topic refuses it for good too, it is logged,
 * counted (kafka_stats.refused_broker, kafka_result.refused) and taken as
 * done. A topic the relay may not write (authorization) or that does not
 * exist is not refused for good: an operator fixes the ACL or creates the
 * topic and the same records go through, so those batches are answered
 * RETRY and held, with /health naming the topic.
 * A broker's MSG_SIZE_TOO_LARGE may fail a whole record batch of small
 * records together: keep batch.size at or below the topics'
 * max.message.bytes.
 *
 * Backpressure. When librdkafka's queue is full kafka_produce returns
 * -EAGAIN and produces nothing: the caller stops reading its sockets and
 * calls kafka_produce again with the same event from the loop's writable
 * callback, which runs once the queue has drained below half.
 *
 * Fatal errors. A fatal error of the idempotent producer (e.g. a broker
 * reporting a sequence gap) stops that producer for good. The poller then
 * creates a new producer and swaps it in for new events, purges what the
 * old one still holds, queued or in flight (those reports fail: their
 * batches are answered RETRY and agents re-send them; some of those events
 * may have reached Kafka, which the headers let consumers drop), serves
 * the reports and destroys it. Events produced between the error and the
 * swap fail at once: kafka_produce returns -ECANCELED and the batch RETRYs.
 *
 * Stopping. kafka_flush waits a bounded time for every produced event's
 * report; kafka_loop_close (on each loop) answers the batches whose reports
 * are in (OK or RETRY), then all others RETRY; kafka_free purges and
 * destroys the producer.
 */
#ifndef LOGFERRY_KAFKA_H
#define LOGFERRY_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/event.h"
#include "relay/relay_config.h"

struct kafka;
struct kafka_loop;
struct kafka_batch;

enum kafka_status { KAFKA_OK, KAFKA_RETRY };

struct kafka_result {
	enum kafka_status status;
	size_t produced;         /* events handed to librdkafka */
	size_t refused;          /* events refused as too large, and records a broker refused
	                            for good with no dead-letter copy (not in Kafka, not re-sent) */
	const char *reason;      /* RETRY: why, in words; valid during the callback */
};

/*
 * Runs on the owner's loop thread, once per batch; b must not be used after
 * it (the module frees it once its last report is in).
 */
typedef void (*kafka_batch_cb)(struct kafka_batch *b, const struct kafka_result *res,
    void *arg);
/* Runs on the loop thread when kafka_produce may be called again after -EAGAIN. */
typedef void (*kafka_writable_cb)(struct kafka_loop *kl, void *arg);

/*
 * Kafka failures told apart: each is a label of
 * logferry_kafka_errors_total{error=...} (kafka_error_labels) and names
 * what /health reports (kafka_trouble).
 */
enum kafka_error_kind {
	KAFKA_ERROR_UNKNOWN_TOPIC,        /* the topic does not exist (auto-creation off) */
	KAFKA_ERROR_TOPIC_AUTHORIZATION,  /* the relay's principal may not write the topic */
	KAFKA_ERROR_AUTHENTICATION,       /* SASL or TLS authentication with the brokers failed */
	KAFKA_ERROR_NOT_ENOUGH_REPLICAS,  /* fewer in-sync replicas than min.insync.replicas */
	KAFKA_ERROR_NO_LEADER,            /* a partition without a leader (brokers down, election) */
	KAFKA_ERROR_TIMED_OUT,            /* not delivered within kafka.delivery_timeout */
	KAFKA_ERROR_BROKERS_DOWN,         /* no broker reachable */
	KAFKA_ERROR_REFUSED,              /* refused for good: dead-lettered or acknowledged */
	KAFKA_ERROR_OTHER,
	KAFKA_ERROR_KINDS
};

extern const char *const kafka_error_labels[KAFKA_ERROR_KINDS];

/*
 * Why an event was set aside (produced to kafka.dead_letter_topic, or
 * without one logged, counted and acknowledged): each is a label of
 * logferry_kafka_dead_letters_total{reason=...} (kafka_aside_labels).
 */
enum kafka_aside_kind {
	KAFKA_ASIDE_INVALID_TOPIC,        /* the topic rendered a name Kafka refuses */
	KAFKA_ASIDE_NOT_ALLOWED,          /* kafka.allowed_topics does not allow it for the agent */
	KAFKA_ASIDE_BROKER_REFUSED,       /* a broker refused the record for good */
	KAFKA_ASIDE_KINDS
};

extern const char *const kafka_aside_labels[KAFKA_ASIDE_KINDS];

struct kafka_stats {
	uint64_t produced;            /* records handed to librdkafka */
	uint64_t delivered;           /* successful delivery reports */
	uint64_t failed;              /* failed delivery reports (incl. purged) */
	uint64_t refused_oversize;    /* events refused as larger than Kafka accepts */
	uint64_t queue_full;          /* -EAGAIN answers */
	uint64_t batches_ok, batches_retry;
	uint64_t recreated;           /* producers replaced after a fatal error */
	uint64_t events_cut;          /* events produced as pieces */
	uint64_t pieces;              /* records that are pieces of an event */
	uint64_t dead_lettered;       /* records a broker refused, delivered to kafka.dead_letter_topic */
	uint64_t refused_broker;      /* records a broker refused for good, acknowledged without a dead-letter copy */
	uint64_t errors[KAFKA_ERROR_KINDS];   /* failed reports and client errors, by kind */
	uint64_t set_aside[KAFKA_ASIDE_KINDS];   /* events and records set aside, by reason */
	uint64_t generation;          /* producers created so far: the first, reloads, recreates */
	uint64_t retiring;            /* producers a reload replaced that still deliver */
};

/*
 * Creates the producer for cfg->kafka (k keeps nothing of cfg) with librdkafka's
 * queue bounded to about queue_bytes (payloads plus a per-message overhead;
 * at least 4 MiB), compiles the topic and key templates and starts the
 * poller. Returns 0 and sets *out, or -EINVAL (a template or a property
 * librdkafka refuses), -ENOMEM or another negative errno, after logging
 * what failed.
 */
int kafka_new(const struct relay_config *cfg, uint64_t queue_bytes, struct kafka **out);

/*
 * SIGHUP, in two steps so that the relay applies a configuration whole or
 * not at all. kafka_reload_prepare builds from fresh what a reload
 * changes: the topic and key templates, kafka.format,
 * kafka.dead_letter_topic, kafka.delivery_timeout and, when the producer's
 * settings differ from the running one's (brokers, properties, the SASL
 * password read again from kafka.sasl_password_file, delivery timeout), a
 * new producer; identical settings keep the running producer. Nothing runs
 * differently yet. Returns 0 and sets *out, or a negative error after
 * logging why (a property librdkafka refuses, a producer it cannot create,
 * four replaced producers still delivering: -EBUSY).
 *
 * kafka_reload_commit applies it and frees rl: batches begun from then on
 * use the new settings; batches begun before keep theirs to the end. A
 * new producer takes every record produced once the poller put it in
 * place (within KAFKA_POLL_MS); the replaced one goes on delivering what
 * it holds, its reports answer their batches as before (a batch may have
 * records in both: it is answered once every report of both is in), and
 * it is destroyed once it holds nothing (at most kafka.delivery_timeout
 * later). While it delivers, the queue bound counts both producers.
 * Order holds within each producer only: a record the replaced one
 * delivers late may follow a newer record of its partition.
 * kafka_reload_cancel frees rl unapplied. Main loop, one reload at a time.
 */
struct kafka_reload;
int kafka_reload_prepare(struct kafka *k, const struct relay_config *fresh,
    struct kafka_reload **out);
/* Whether rl brings a new producer. */
bool kafka_reload_new_producer(const struct kafka_reload *rl);
void kafka_reload_commit(struct kafka *k, struct kafka_reload *rl);
void kafka_reload_cancel(struct kafka_reload *rl);

/*
 * Waits up to timeout_ms for a delivery report of every event produced so
 * far (the worker loops keep running and answer their batches meanwhile).
 * Returns 0, or -ETIMEDOUT. Any thread but a loop whose batches it waits for.
 */
int kafka_flush(struct kafka *k, uint64_t timeout_ms);

/*
 * Stops the poller, purges what librdkafka still holds and destroys the
 * producer, then frees every batch and kafka_loop left. Every kafka_loop
 * must have been closed (kafka_loop_close) and its loop run until its
 * handles closed. NULL is fine.
 */
void kafka_free(struct kafka *k);

/* A snapshot of the counters; any thread. */
void kafka_get_stats(struct kafka *k, struct kafka_stats *st);

/*
 * Events each route of the current configuration took since it was
 * applied (a reload starts again from 0): kafka.routes in order, then the
 * default route (kafka.topic). A batch's events count once it ends (or
 * when its events change route), not one by one. Fills up to max of out and returns how many
 * routes there are. Any thread.
 */
size_t kafka_route_counts(struct kafka *k, uint64_t *out, size_t max);

/*
 * Whether producing is in trouble now: true when the last Kafka outcome
 * was a failure (a failed delivery report or a client error such as a
 * failed authentication) and no record has been delivered since; why gets
 * one sentence naming the failure and the topic, e.g. "topic logs.web does
 * not exist: create it ...". Any thread.
 */
bool kafka_trouble(struct kafka *k, char *why, size_t len);

/*
 * Raises a fatal error on the current producer, as a broker-side
 * idempotence failure would (rd_kafka_test_fatal_error), for tests.
 * Returns 0 or -EIO.
 */
int kafka_test_fatal_error(struct kafka *k, const char *reason);

/*
 * Attaches a uv loop (a worker's) to k: batches begun on it are answered
 * on it. writable_cb (may be NULL) runs on the loop after kafka_produce
 * answered -EAGAIN and librdkafka's queue drained. Call on the loop's
 * thread. Returns 0 and sets *out, or a negative errno.
 */
int kafka_loop_new(struct kafka *k, uv_loop_t *loop, kafka_writable_cb writable_cb,
    void *arg, struct kafka_loop **out);

/*
 * On the loop's thread: answers every batch of kl not answered yet, with
 * its reports' verdict when they are all in (a kafka_flush before makes
 * that likely), else RETRY; the callbacks run inside this call and must
 * not begin batches. Then closes kl's handles (run the loop for them to
 * close). Reports still due are dropped when they come; kl's memory is
 * freed by kafka_free.
 */
void kafka_loop_close(struct kafka_loop *kl);

/*
 * Begins a batch on kl's loop thread. agent is the connection's agent id:
 * the logferry-agent header, ${agent} and the JSON "agent"; the caller
 * keeps it valid until the callback ran or kafka_batch_abandon. cb runs
 * once, on kl's loop. Returns 0 and sets *out, -EPIPE after
 * kafka_loop_close, or -ENOMEM.
 */
int kafka_batch_begin(struct kafka_loop *kl, const char *agent, kafka_batch_cb cb,
    void *arg, struct kafka_batch **out);

/*
 * Produces one event of b as a record, or as pieces (see "Pieces" above):
 * topic and key from the routes (an event set aside, see "Events set
 * aside" above, goes to the dead-letter topic, or without one is counted in
 * the batch's result as refused and 0 returned), value by kafka.format (json:
 * proto/event_json with the agent id; protobuf: raw, the Event's bytes as
 * the agent sent them, see kafka_event_bytes, or, raw NULL (an event of
 * event format 2, whose bytes need their list's Dict) and for a piece, the
 * Event re-encoded; raw: the message), headers logferry-agent and logferry-seq
 * (seq in decimal). Nothing of ev or raw is kept. Returns:
 *   0           produced (every piece of it), or staged in a held run
 *               (kafka_loop_hold: it reaches librdkafka at the latest at
 *               kafka_loop_release, and b counts it from now);
 *   -EMSGSIZE   refused as larger than Kafka accepts even in pieces
 *               (logged, counted in the batch's result): go on with the
 *               next event;
 *   -EAGAIN     librdkafka's queue is full: nothing more produced; call
 *               again with the same event (same seq) after the writable
 *               callback: it goes on from the first piece not produced;
 *   -ECANCELED  librdkafka refused a record of b for another reason (e.g.
 *               the producer's fatal state, logged): b will be answered
 *               RETRY; producing more to it is useless;
 *   -EINVAL     b was ended.
 * Call on the loop thread, before kafka_batch_end and the callback.
 */
int kafka_produce(struct kafka_batch *b, const struct event *ev, const struct pbslice *raw,
    uint64_t seq);

/*
 * A run of kafka_produce calls on kl's loop thread, e.g. over the events
 * of the batches one read brought: kafka_loop_hold takes the producer's
 * read lock once for the run instead of once per record, and
 * kafka_loop_release gives it back. In a run, records without headers
 * (kafka.headers off; not a piece, not set aside) are staged in kl, up to
 * 256 records or 256 KiB to one topic, and go to librdkafka together in
 * one rd_kafka_produce_batch call (one topic lock, clock reading and
 * queue count for them all): when the topic changes, the stage is full,
 * before a record that goes alone, and at kafka_loop_release. Staged
 * records count in their batch (kafka_produce returned 0; the batch is
 * answered only after their reports). Those a full queue refuses stay
 * staged in order and go before any other record, from the loop once the
 * queue drained, before the writable callback; kafka_produce answers
 * -EAGAIN meanwhile. While it is held, the poller cannot
 * swap the producer (a reload's new one, or one recreated after a fatal
 * error): it waits for the release, and serves no report meanwhile, so
 * release before the loop runs again (a full queue, -EAGAIN, is such a
 * point). Not nested; kafka_produce outside a run takes the lock itself.
 */
void kafka_loop_hold(struct kafka_loop *kl);
void kafka_loop_release(struct kafka_loop *kl);

/*
 * No more events for b: it is answered once its reports are in (a batch
 * without events: OK on the next loop iteration, never inside this call).
 */
void kafka_batch_end(struct kafka_batch *b);

/*
 * The owner goes away (e.g. its connection closed) before b was answered:
 * ends b, and its callback will not run. Not after the callback ran.
 */
void kafka_batch_abandon(struct kafka_batch *b);

/*
 * The encoded bytes of the Event that event_reader_next just read, for
 * format protobuf: before and after are the reader's r->p around the call.
 * proto/event.h exposes no such slice; this re-reads the EventList entry's
 * tag and length (no copy). Returns 0, or -EPROTO if the bytes are not one
 * EventList entry ending at after.
 */
int kafka_event_bytes(const uint8_t *before, const uint8_t *after, struct pbslice *out);

/* Bytes librdkafka counts for a header of a name and a value of these lengths. */
size_t kafka_header_size(size_t name_len, size_t value_len);

/* Bytes librdkafka counts for a record (its framing at its largest), as checked against message.max.bytes. */
size_t kafka_record_size(size_t key_len, size_t value_len, size_t headers_size);

/* The largest record (kafka_record_size) produced whole under this message.max.bytes. */
size_t kafka_record_limit(size_t message_max_bytes);

#endif
