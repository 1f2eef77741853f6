/* SPDX-License-Identifier: Apache-2.0 */
/* kafka: the shared producer and delivery -> batch answers (see kafka.h). */
#include "autoconfig.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "proto/event_json.h"
#include "relay/kafka.h"
#include "relay/route.h"

#define KAFKA_MIB (UINT64_C(1) << 20)
/* Smallest queue budget: twice librdkafka's default message.max.bytes. */
#define KAFKA_MIN_QUEUE_BYTES (4 * KAFKA_MIB)
/*
 * librdkafka's memory per queued record beside its payload (the message,
 * the header list and headers, allocator slack), measured roughly on
 * 2.0.2. Half of the budget goes to payloads, half to this overhead.
 */
#define KAFKA_MSG_OVERHEAD 384
#define KAFKA_MAX_QUEUE_MSGS 10000000
/* Keys longer than this are cut (deterministically: same key, same cut). */
#define KAFKA_KEY_MAX 1024
/* How long the poller waits in rd_kafka_poll: bounds how late it notices a stop or a drained queue. */
#define KAFKA_POLL_MS 100
/* librdkafka events the poller serves in a row before it looks at a stop, a swap or a drained queue. */
#define KAFKA_EVENTS_PER_POLL 256
/*
 * Delivery report events a loop holds for freeing, and their records, at
 * most (see kafka_loop.spent): a busy loop frees them late, and their
 * memory stays allocated meanwhile. Beyond, the poller frees them itself.
 */
#define KAFKA_SPENT_MAX 64
#define KAFKA_SPENT_RECORDS 8192
/* Reports of a purged producer are served before it is destroyed, for this long at most. */
#define KAFKA_DRAIN_MS 5000
/* A failed recreate is tried again after this. */
#define KAFKA_RECREATE_RETRY_MS 1000
/*
 * Producers replaced by a reload that still deliver their records, at most:
 * each may hold a queue's worth of records until kafka.delivery_timeout.
 */
#define KAFKA_RETIRING_MAX 4
/* The poller's wait while a replaced producer still delivers: how late its reports are served. */
#define KAFKA_RETIRING_POLL_MS 10
/*
 * Topic handles kept for the current producer, at most (a power of 2 for
 * the table, twice as many slots); records to other topics are produced
 * by name, as before.
 */
#define KAFKA_TOPICS_MAX 64
#define KAFKA_TOPIC_SLOTS (2 * KAFKA_TOPICS_MAX)
#define KAFKA_HDR_AGENT "logferry-agent"
#define KAFKA_HDR_SEQ "logferry-seq"
#define KAFKA_HDR_PIECE "logferry-piece"
#define KAFKA_HDR_ERROR "logferry-error"
#define KAFKA_HDR_TOPIC "logferry-original-topic"
#define KAFKA_HDR_OSTREAM "logferry-original-stream"
/* The stream of a record, carried only while a dead-letter topic is set (see kafka_send). */
#define KAFKA_HDR_STREAM "logferry-stream"
#define KAFKA_HDR_TRUNCATED "logferry-truncated"
#define KAFKA_HDRLEN(name) (sizeof(name) - 1)
/*
 * librdkafka 2.0's accounting (rdkafka_proto.h): a v2 record's framing
 * beside key, value and headers at its largest
 * (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: length, attributes, timestamp and
 * offset deltas, key and value lengths, header count), which produce
 * checks against message.max.bytes; and the record batch's header
 * (RD_KAFKAP_MSGSET_V2_SIZE), which a broker counts in its own
 * message.max.bytes.
 */
#define KAFKA_RECORD_OVERHEAD 36
#define KAFKA_BATCH_OVERHEAD 61
/* logferry-original-topic's value: a rendered topic with every byte escaped (\xHH). */
#define KAFKA_SHOWN_TOPIC_MAX (4 * ROUTE_TOPIC_BUF + 1)
/* kafka_batch's pending while it is open: more than a batch ever has records. */
#define KAFKA_PENDING_OPEN (SIZE_MAX / 2)
/* "INDEX/COUNT" at its widest, and the JSON members' numbers as wide. */
#define KAFKA_U64_MAX_TEXT "18446744073709551615"
#define KAFKA_PIECE_MAX (2 * (sizeof(KAFKA_U64_MAX_TEXT) - 1) + 1)
/* A piece must hold at least this much of the message: below, cutting is no way out. */
#define KAFKA_PIECE_MIN_ROOM 64
/* ,"message_b64":"" and the padding of the last group of 3 bytes begun. */
#define KAFKA_B64_MEMBER_MAX (sizeof(",\"message_b64\":\"\"") - 1 + 4)
/*
 * A held run's records without headers go to librdkafka together
 * (kafka_stage): at most this many in one rd_kafka_produce_batch call, and
 * a new record is staged only while their values and keys hold fewer
 * bytes than KAFKA_STAGE_BYTES (the buffer's bound adds one record at
 * its largest beyond that).
 */
#define KAFKA_STAGE_RECORDS 256
#define KAFKA_STAGE_BYTES (256 * 1024)
/*
 * Records of a held run stamped with one reading of the wall clock, at
 * most: librdkafka would read it per record (gettimeofday, 1 % of the
 * relay). 256 records take about half a millisecond.
 */
#define KAFKA_TS_RECORDS 256

/* A record staged in its loop (kafka_stage), its value and key in kl->stage. */
struct kafka_staged {
	struct kafka_batch *b;
	uint64_t seq;
	size_t voff, vlen, klen;      /* the key, klen bytes (0: none), follows the value */
};

/*
 * What a batch is produced with, from the configuration of the reload
 * that was current when it began: a batch holds a reference until it is
 * freed (its last report), so that a reload never changes the topic,
 * format or dead-letter topic of records already on their way.
 */
struct kafka_settings {
	atomic_size_t refs;
	struct route_table *routes;   /* kafka.routes, kafka.topic and key, allowed_topics */
	atomic_uint_fast64_t *routed; /* events per route, the default last */
	int format;                   /* enum relay_format */
	enum event_json_names json_names;
	uint64_t delivery_timeout_ms;
	char *dead_letter_topic;      /* NULL: none */
	bool headers;                 /* kafka.headers */
	size_t max_msg_bytes;         /* effective message.max.bytes */
	size_t record_max;            /* largest record produced whole: kafka_record_limit */
};

struct kafka_batch {
	struct kafka_loop *kl;
	struct kafka_settings *set;   /* a reference */
	const char *agent;
	size_t agent_len;             /* strlen(agent), 0 for none: once per batch, not per record */
	kafka_batch_cb cb;            /* NULL once abandoned */
	void *arg;
	uint64_t deadline;            /* uv_now() of kl's loop, ms */

	/* kl's loop thread only. */
	bool ended, answered, failed;
	size_t produced, refused;
	/*
	 * The event being cut into pieces, kept when librdkafka's queue filled
	 * between two pieces so that the call for the same event goes on from
	 * the next piece instead of producing the first ones again.
	 */
	bool cutting;
	uint64_t cut_seq;
	size_t cut_index, cut_count, cut_off, cut_room;
	/* The last topic kafka.allowed_topics was asked about for this agent, and its answer. */
	char allow_topic[ROUTE_TOPIC_BUF];
	bool allow_known, allow_ok;
	/* The last event counted in its route's count (kafka_route_counts). */
	uint64_t routed_seq;
	bool routed_any;
	/*
	 * Events of route routed_at not added to set->routed yet: added when
	 * the route changes and at kafka_batch_end, not per event on the
	 * line every worker adds to.
	 */
	size_t routed_at;
	uint64_t routed_n;
	int l_err;                    /* err and done, as last seen under kl->mu */
	bool l_done;
	struct kafka_batch *dl_prev, *dl_next;    /* kl's unanswered batches, by deadline */
	struct kafka_batch *all_prev, *all_next;  /* every live batch of kl */

	size_t sent;                  /* records kafka_send handed over: kl's loop thread */
	/*
	 * Reports outstanding, plus KAFKA_PENDING_OPEN less sent until
	 * kafka_batch_end: the batch is settled (done) when it reaches 0, and
	 * freed only after that. Starting from KAFKA_PENDING_OPEN, a report
	 * that comes first cannot bring it to 0, so kafka_send counts its
	 * records in sent, and kafka_batch_end takes them off in one go, where
	 * an atomic add per record made the batch's line move between the
	 * worker and the poller.
	 */
	atomic_size_t pending;
	/* Records a broker refused for good and nothing took (no dead-letter topic); the poller's. */
	atomic_size_t refused_late;
	/* Under kl->mu. */
	int err;                      /* first failed report's error */
	bool done, queued;
	struct kafka_batch *ready_next;
};

struct kafka_loop {
	struct kafka *k;
	uv_loop_t *loop;
	uv_async_t async;
	uv_timer_t timer;
	kafka_writable_cb writable_cb;
	void *arg;

	/* The loop thread only. */
	struct kafka_batch *dl_head, *dl_tail, *all_head;
	int handles_open;
	bool closing;
	struct buf value;             /* the JSON of one record, reused */
	/* The members and field names the loop's records repeat, rendered once (event_json_cached). */
	struct event_json_cache json;
	struct event_field *fields;   /* a piece's fields, slices resolved; fields_cap of them */
	size_t fields_cap;
	char topic[ROUTE_TOPIC_BUF];
	/*
	 * The last rendered topic route_topic_check passed, and its length
	 * plus 1 (0: none): a loop's events mostly go to one topic, and the
	 * check is a function of the name alone.
	 */
	char topic_ok[ROUTE_TOPIC_BUF];
	size_t topic_ok_len;
	char key[KAFKA_KEY_MAX + 1];
	char shown[KAFKA_SHOWN_TOPIC_MAX];   /* the refused topic, for the dead-letter header */
	char aside[384];              /* why the event being produced is set aside */
	bool held;                    /* between kafka_loop_hold and kafka_loop_release */
	/*
	 * Records of the held run staged for one rd_kafka_produce_batch call
	 * (kafka_stage), to one topic, in the order produced; each counts in
	 * its batch's sent. stalled: the last call met a full queue and these
	 * are the records it refused: they go before any other record, when
	 * the queue drained (kafka_loop_on_async).
	 */
	struct kafka_staged *staged;  /* KAFKA_STAGE_RECORDS */
	rd_kafka_message_t *msgs;     /* produce_batch's array, as many */
	size_t nstaged;
	struct buf stage;             /* the staged values and keys */
	char stage_topic[ROUTE_TOPIC_BUF];
	bool stalled;
	/* The held run's wall clock for Kafka's timestamp, ms, and the records it still stamps. */
	int64_t ts_ms;
	unsigned ts_left;
	/*
	 * kafka_stats counts of the records this loop produced: one writer (the
	 * loop), so a plain add where an atomic one on a line every worker
	 * writes made that line move between the cores per record;
	 * kafka_get_stats adds them up.
	 */
	struct {
		atomic_uint_fast64_t produced, pieces, queue_full;
	} st;

	pthread_mutex_t mu;
	/* Under mu. */
	struct kafka_batch *ready_head, *ready_tail;
	bool closed, blocked, wake_writable;
	/*
	 * Delivery report events served, whose records this loop produced,
	 * left to it to destroy (kafka_spent_give): the records' memory goes
	 * back to the thread that allocated it, where the allocator's
	 * thread cache takes it back at a fraction of what freeing memory of
	 * another thread costs the poller, and the loop's next records reuse
	 * it. Under mu; spent_mu is held while they are destroyed, so that a
	 * producer is never destroyed before them (kafka_spent_reclaim).
	 */
	rd_kafka_event_t *spent[KAFKA_SPENT_MAX];
	size_t nspent, spent_records;
	pthread_mutex_t spent_mu;

	struct kafka_loop *next;      /* k->loops, under k->mu */
};

struct kafka {
	uint64_t queue_budget;        /* bytes, as given to kafka_new */
	/* Effective librdkafka queue bounds, of all producers together; the poller sets them. */
	atomic_uint_fast64_t queue_max_bytes;
	atomic_uint_fast64_t queue_max_msgs;   /* 0: no bound on the count */

	/* The settings new batches take (kafka_settings), under set_mu; replaced by a reload. */
	pthread_mutex_t set_mu;
	struct kafka_settings *set;
	atomic_uint_fast64_t delivery_timeout_ms;   /* the current settings', for kafka_trouble */

	/* Workers read rk under the read lock; only the poller replaces it. */
	pthread_rwlock_t rk_lock;
	rd_kafka_t *rk;
	/*
	 * rk's topic handles by name (kafka_topic_handle): a record produced
	 * by topic name costs librdkafka a lookup, a handle and its release.
	 * Read under rk_lock's read lock without a lock of their own: a slot
	 * is published by its rkt (release), and none is taken back while rk
	 * stays; added under topics_mu; destroyed by the poller when it
	 * replaces rk (under the write lock: no record is being produced).
	 */
	struct {
		char name[ROUTE_TOPIC_BUF];
		_Atomic(rd_kafka_topic_t *) rkt;
	} topics[KAFKA_TOPIC_SLOTS];
	size_t ntopics;               /* under topics_mu */
	pthread_mutex_t topics_mu;
	/*
	 * The poller's: a copy of rk's settings and kafka.sasl_password_file
	 * (NULL: none), to recreate it after a fatal error.
	 */
	rd_kafka_conf_t *rk_conf;
	char *rk_password_file;
	/*
	 * Replaced by a reload, still delivering what they hold; the poller
	 * serves their reports and destroys each once it holds nothing.
	 */
	rd_kafka_t *retiring[KAFKA_RETIRING_MAX];
	int nretiring;                /* the poller's */
	atomic_int retiring_now;      /* nretiring, for other threads */
	/* The main thread's: the settings of the newest producer (reload compares with it). */
	rd_kafka_conf_t *last_conf;
	/* A reload's producer and its limits, waiting for the poller, under mu. */
	rd_kafka_t *next_rk;
	rd_kafka_conf_t *next_conf;
	char *next_password_file;
	uint64_t next_queue_max_bytes, next_queue_max_msgs;
	atomic_uint_fast64_t generation;       /* producers created, the first included */

	pthread_t poller;
	bool poller_started;
	atomic_bool stop, fatal;

	pthread_mutex_t mu;
	struct kafka_loop *loops;     /* under mu */

	atomic_uint_fast64_t queued_msgs, queued_bytes;   /* produced, not reported */
	atomic_uint nblocked;         /* loops waiting for room */
	/*
	 * The poller's: successful delivery reports served and not applied
	 * yet (kafka_dr_flush). librdkafka calls kafka_on_delivery once per
	 * record, and each used to update the batch's pending and five shared
	 * counters, lines the workers write too; now a run of reports of one
	 * batch updates its pending once, and a poll the shared counters once.
	 */
	struct {
		struct kafka_batch *b;        /* the run's batch */
		size_t n;                     /* the run's reports */
		uint64_t delivered, dead_lettered;   /* not in st yet */
		uint64_t msgs, bytes;         /* not taken off queued_msgs, queued_bytes yet */
	} dr;

	struct {
		/* produced: the poller's dead-letter records; the loops count theirs (kafka_loop.st). */
		atomic_uint_fast64_t produced, delivered, failed, refused_oversize,
		    batches_ok, batches_retry, recreated, events_cut, dead_lettered, refused_broker;
		atomic_uint_fast64_t errors[KAFKA_ERROR_KINDS];
		atomic_uint_fast64_t set_aside[KAFKA_ASIDE_KINDS];
	} st;

	/* The last failure, until a record is delivered (kafka_trouble). */
	atomic_bool trouble;
	pthread_mutex_t trouble_mu;
	char trouble_why[384];        /* under trouble_mu */
	uint64_t trouble_ms;          /* under trouble_mu: when it was last noted */
};

static int kafka_u64(char *out, uint64_t v);
static bool kafka_over_bound(struct kafka *k);
static int kafka_stage_flush(struct kafka_loop *kl);
static void kafka_stage_drop(struct kafka_loop *kl);

static uint64_t
kafka_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
kafka_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------- failure kinds */

const char *const kafka_error_labels[KAFKA_ERROR_KINDS] = {
	[KAFKA_ERROR_UNKNOWN_TOPIC] = "unknown_topic",
	[KAFKA_ERROR_TOPIC_AUTHORIZATION] = "topic_authorization",
	[KAFKA_ERROR_AUTHENTICATION] = "authentication",
	[KAFKA_ERROR_NOT_ENOUGH_REPLICAS] = "not_enough_replicas",
	[KAFKA_ERROR_NO_LEADER] = "no_leader",
	[KAFKA_ERROR_TIMED_OUT] = "timed_out",
	[KAFKA_ERROR_BROKERS_DOWN] = "brokers_down",
	[KAFKA_ERROR_REFUSED] = "refused",
	[KAFKA_ERROR_OTHER] = "other",
};

const char *const kafka_aside_labels[KAFKA_ASIDE_KINDS] = {
	[KAFKA_ASIDE_INVALID_TOPIC] = "invalid_topic",
	[KAFKA_ASIDE_NOT_ALLOWED] = "topic_not_allowed",
	[KAFKA_ASIDE_BROKER_REFUSED] = "broker_refused",
};

/* librdkafka's errors by kind; one row per error, the rest are "other" (or "refused"). */
static const struct {
	rd_kafka_resp_err_t err;
	enum kafka_error_kind kind;
} kafka_error_table[] = {
	{ RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, KAFKA_ERROR_UNKNOWN_TOPIC },
	{ RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, KAFKA_ERROR_UNKNOWN_TOPIC },
	{ RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, KAFKA_ERROR_TOPIC_AUTHORIZATION },
	{ RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, KAFKA_ERROR_TOPIC_AUTHORIZATION },
	{ RD_KAFKA_RESP_ERR__AUTHENTICATION, KAFKA_ERROR_AUTHENTICATION },
	{ RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, KAFKA_ERROR_AUTHENTICATION },
	{ RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, KAFKA_ERROR_NOT_ENOUGH_REPLICAS },
	{ RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, KAFKA_ERROR_NOT_ENOUGH_REPLICAS },
	{ RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, KAFKA_ERROR_NO_LEADER },
	{ RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, KAFKA_ERROR_NO_LEADER },
	{ RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, KAFKA_ERROR_TIMED_OUT },
	{ RD_KAFKA_RESP_ERR__TIMED_OUT, KAFKA_ERROR_TIMED_OUT },
	{ RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, KAFKA_ERROR_TIMED_OUT },
	{ RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, KAFKA_ERROR_BROKERS_DOWN },
	{ RD_KAFKA_RESP_ERR__TRANSPORT, KAFKA_ERROR_BROKERS_DOWN },
};

static bool kafka_err_permanent(rd_kafka_resp_err_t err);

static enum kafka_error_kind
kafka_error_kind(rd_kafka_resp_err_t err)
{
	for (size_t i = 0; i < sizeof(kafka_error_table) / sizeof(kafka_error_table[0]); i++)
		if (kafka_error_table[i].err == err)
			return kafka_error_table[i].kind;
	return kafka_err_permanent(err) ? KAFKA_ERROR_REFUSED : KAFKA_ERROR_OTHER;
}

/*
 * Counts a failure of kind err (topic: NULL for a client error) and keeps
 * its sentence for /health; returns the sentence (the caller logs it). Any
 * thread: delivery reports and client errors come on librdkafka's.
 */
static const char *
kafka_note_error(struct kafka *k, rd_kafka_resp_err_t err, const char *topic, const char *detail,
    char *why, size_t len)
{
	enum kafka_error_kind kind = kafka_error_kind(err);
	const char *t = topic != NULL ? topic : "?";

	atomic_fetch_add(&k->st.errors[kind], 1);
	switch (kind) {
	case KAFKA_ERROR_UNKNOWN_TOPIC:
		snprintf(why, len, "topic %s does not exist: create it (these brokers do not "
		    "create topics on first use) or change kafka.topic", t);
		break;
	case KAFKA_ERROR_TOPIC_AUTHORIZATION:
		snprintf(why, len, "not authorized to write to topic %s: grant the relay's "
		    "principal WRITE and DESCRIBE on it (%s)", t, detail);
		break;
	case KAFKA_ERROR_AUTHENTICATION:
		snprintf(why, len, "authentication with the brokers failed (%s): check "
		    "sasl.mechanisms, sasl.username and kafka.sasl_password_file", detail);
		break;
	case KAFKA_ERROR_NOT_ENOUGH_REPLICAS:
		snprintf(why, len, "topic %s has fewer in-sync replicas than its "
		    "min.insync.replicas: brokers are down (%s)", t, detail);
		break;
	default:
		if (topic != NULL)
			snprintf(why, len, "%s (topic %s)", detail, t);
		else
			snprintf(why, len, "%s", detail);
		break;
	}
	pthread_mutex_lock(&k->trouble_mu);
	snprintf(k->trouble_why, sizeof(k->trouble_why), "%s", why);
	k->trouble_ms = kafka_now_ms();
	atomic_store(&k->trouble, true);
	pthread_mutex_unlock(&k->trouble_mu);
	return why;
}

bool
kafka_trouble(struct kafka *k, char *why, size_t len)
{
	bool t;

	pthread_mutex_lock(&k->trouble_mu);
	/*
	 * A failure not seen again for two delivery timeouts is over even with
	 * nothing delivered since (an idle relay): failing batches and client
	 * errors renew it at least that often while it lasts.
	 */
	t = atomic_load(&k->trouble) &&
	    kafka_now_ms() - k->trouble_ms <= 2 * atomic_load(&k->delivery_timeout_ms);
	snprintf(why, len, "%s", t ? k->trouble_why : "");
	pthread_mutex_unlock(&k->trouble_mu);
	return t;
}

/* --------------------------------------------------- librdkafka callbacks */

static void
kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	/* Broker connection failures come to kafka_on_error too: log them once, there. */
	if (strcmp(fac, "FAIL") == 0) {
		log_debug("kafka: %s: %s", fac, buf);
		return;
	}
	/* One call site per level: the log's rate limit is per call site. */
	if (level <= LOG_ERR)
		log_error("kafka: %s: %s", fac, buf);
	else if (level == LOG_WARNING)
		log_warn("kafka: %s: %s", fac, buf);
	else if (level <= LOG_INFO)
		log_info("kafka: %s: %s", fac, buf);
	else
		log_debug("kafka: %s: %s", fac, buf);
}

static void kafka_dr_flush(struct kafka *k);

static void
kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka *k = opaque;
	char why[512];

	/* On the poller: the reports served before it first, as they came (/health's trouble). */
	kafka_dr_flush(k);
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, why, sizeof(why));

		/* A producer being retired (only the poller reads k->rk here). */
		if (rk != k->rk)
			return;
		log_error("Kafka producer failed for good (%s: %s): creating a new one; "
		    "batches in flight are answered RETRY and agents re-send them",
		    rd_kafka_err2name(ferr), why);
		atomic_store(&k->fatal, true);
	} else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		kafka_note_error(k, err, NULL, reason, why, sizeof(why));
		log_error("no Kafka broker is reachable (%s): check kafka.brokers and the "
		    "brokers; batches are answered RETRY after kafka.delivery_timeout", reason);
	} else if (kafka_error_kind(err) == KAFKA_ERROR_AUTHENTICATION) {
		log_error("Kafka: %s; batches are answered RETRY and agents keep their events",
		    kafka_note_error(k, err, NULL, reason, why, sizeof(why)));
	} else {
		log_warn("Kafka: %s: %s", rd_kafka_err2name(err), reason);
	}
}

/* --------------------------------------------------------------- batches */

/* Under kl->mu: puts b on kl's ready queue; returns whether the loop must wake. */
static bool
kafka_ready_push(struct kafka_loop *kl, struct kafka_batch *b)
{
	if (b->queued)
		return false;
	b->queued = true;
	b->ready_next = NULL;
	if (kl->ready_tail != NULL)
		kl->ready_tail->ready_next = b;
	else
		kl->ready_head = b;
	kl->ready_tail = b;
	return !kl->closed;
}

/*
 * n reports for b (err 0: delivered), or kafka_batch_end's release of the
 * open count. Any thread. After pending reaches 0 b belongs to its loop,
 * which may free it at once: nothing here touches b after the unlock.
 */
static void
kafka_batch_reports(struct kafka_batch *b, int err, size_t n)
{
	struct kafka_loop *kl = b->kl;
	bool wake = false, last = false;

	/*
	 * A delivery that is not the batch's last changes nothing but the
	 * count: no lock for it (the poller took kl->mu once per record,
	 * against the loop's own use of it).
	 */
	if (err == 0 && !(last = atomic_fetch_sub(&b->pending, n) == n))
		return;
	pthread_mutex_lock(&kl->mu);
	if (err != 0) {
		if (b->err == 0) {
			b->err = err;
			wake |= kafka_ready_push(kl, b);
		}
		last = atomic_fetch_sub(&b->pending, n) == n;
	}
	if (last) {
		b->done = true;
		wake |= kafka_ready_push(kl, b);
	}
	/* Under the lock: kafka_loop_close closes the handle under it too. */
	if (wake)
		uv_async_send(&kl->async);
	pthread_mutex_unlock(&kl->mu);
}

/* On the loop: b cannot be delivered (produce failed): answer RETRY soon. */
static void
kafka_batch_fail(struct kafka_batch *b, int err)
{
	struct kafka_loop *kl = b->kl;

	b->failed = true;
	pthread_mutex_lock(&kl->mu);
	if (b->err == 0) {
		b->err = err;
		if (kafka_ready_push(kl, b))
			uv_async_send(&kl->async);
	}
	pthread_mutex_unlock(&kl->mu);
}

/*
 * Errors a broker gives for a record that no retry will change: too large
 * for the topic, or malformed. Every other error may pass (a leader
 * moving, a broker down, a timeout). A topic that does not exist or that
 * this relay may not write is in between (kafka_err_set_aside): an
 * operator creates the topic or grants the ACL and the same records go
 * through.
 */
static bool
kafka_err_permanent(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
	case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
		return true;
	default:
		return false;
	}
}

/*
 * Whether a record that failed with err is set aside rather than retried:
 * refused for good, or, with a dead-letter topic, sent to a topic that
 * does not exist or that the relay may not write. Held (RETRY, /health
 * says which topic) without one, that record would keep its agent's whole
 * spool behind it until an operator acts, for the sake of one stream; in
 * the dead-letter topic it waits, with its original topic and the reason,
 * while the rest flows. The dead-letter record itself is held on such an
 * error (dead_letter): it has nowhere else to go.
 */
static bool
kafka_err_set_aside(const struct kafka_settings *set, rd_kafka_resp_err_t err, bool dead_letter)
{
	enum kafka_error_kind kind;

	if (kafka_err_permanent(err))
		return true;
	if (dead_letter || set->dead_letter_topic == NULL)
		return false;
	kind = kafka_error_kind(err);
	return kind == KAFKA_ERROR_UNKNOWN_TOPIC ||
	    (kind == KAFKA_ERROR_TOPIC_AUTHORIZATION &&
	    err != RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
}

/* A dead-letter record's opaque: its batch with the low bit set (batches are aligned). */
#define KAFKA_DLQ_TAG ((uintptr_t)1)

/*
 * The headers that say why a record is in kafka.dead_letter_topic, added
 * to h: one place for both ways a record gets there (a topic the relay
 * would not produce to, a record a broker refused for good).
 */
static void
kafka_dead_letter_headers(rd_kafka_headers_t *h, const char *why, const char *topic,
    const void *stream, size_t stream_len)
{
	rd_kafka_header_add(h, KAFKA_HDR_ERROR, KAFKA_HDRLEN(KAFKA_HDR_ERROR), why, -1);
	rd_kafka_header_add(h, KAFKA_HDR_TOPIC, KAFKA_HDRLEN(KAFKA_HDR_TOPIC), topic, -1);
	if (stream != NULL)
		rd_kafka_header_add(h, KAFKA_HDR_OSTREAM, KAFKA_HDRLEN(KAFKA_HDR_OSTREAM), stream,
		    (ssize_t)stream_len);
}

/* Bytes of kafka_dead_letter_headers' headers. */
static size_t
kafka_dead_letter_headers_size(const char *why, const char *topic, size_t stream_len)
{
	return kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_ERROR), strlen(why)) +
	    kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_TOPIC), strlen(topic)) +
	    kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_OSTREAM), stream_len);
}

/*
 * On the poller, in a delivery report: m was refused for good; produces
 * it to kafka.dead_letter_topic with its key, its headers plus
 * logferry-error and logferry-original-topic (and logferry-truncated with
 * the original size when its value had to be cut to fit). The batch waits
 * for that record's report. Returns 0, or -EAGAIN when it could not be
 * produced now (the batch is answered RETRY and the agent re-sends).
 */
static int
kafka_dead_letter(struct kafka *k, const rd_kafka_message_t *m, struct kafka_batch *b)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	rd_kafka_headers_t *orig = NULL, *h;
	char why[256], lens[24], stream[256];
	size_t hsize = 0, vlen = m->len, room, slen = 0;
	const char *name;
	const void *val;
	size_t n;
	rd_kafka_resp_err_t err;
	bool has_stream = false;

	/*
	 * The current producer takes it, also for a record of one a reload
	 * replaced (only the poller replaces k->rk, and this is the poller).
	 * Not once kafka_free purges: the record would get no report.
	 */
	if (atomic_load(&k->stop))
		return -EAGAIN;
	if (rd_kafka_message_headers(m, &orig) == 0 && orig != NULL)
		h = rd_kafka_headers_copy(orig);
	else
		h = rd_kafka_headers_new(4);
	/* The record's stream (kafka_send adds it while a dead-letter topic is set) becomes the original stream. */
	if (rd_kafka_header_get_last(h, KAFKA_HDR_STREAM, &val, &n) == 0) {
		slen = n < sizeof(stream) ? n : sizeof(stream);
		memcpy(stream, val, slen);
		has_stream = true;
		rd_kafka_header_remove(h, KAFKA_HDR_STREAM);
	}
	snprintf(why, sizeof(why), "%s: %s", rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
	kafka_dead_letter_headers(h, why, topic, has_stream ? stream : NULL, slen);
	for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &n) == 0; i++)
		hsize += kafka_header_size(strlen(name), n);
	hsize += kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_TRUNCATED), sizeof(lens) - 1);
	room = kafka_record_size(m->key_len, 0, hsize);
	room = room < b->set->record_max ? b->set->record_max - room : 0;
	if (vlen > room) {
		vlen = room;
		rd_kafka_header_add(h, KAFKA_HDR_TRUNCATED, KAFKA_HDRLEN(KAFKA_HDR_TRUNCATED), lens,
		    kafka_u64(lens, m->len));
	}
	atomic_fetch_add(&b->pending, 1);
	atomic_fetch_add(&k->queued_msgs, 1);
	atomic_fetch_add(&k->queued_bytes, vlen);
	err = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(b->set->dead_letter_topic),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, m->key_len),
	    RD_KAFKA_V_VALUE(m->payload, vlen), RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_OPAQUE((void *)((uintptr_t)b | KAFKA_DLQ_TAG)), RD_KAFKA_V_END);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		atomic_fetch_add(&k->st.produced, 1);
		return 0;
	}
	rd_kafka_headers_destroy(h);
	atomic_fetch_sub(&b->pending, 1);
	atomic_fetch_sub(&k->queued_msgs, 1);
	atomic_fetch_sub(&k->queued_bytes, vlen);
	log_error("cannot produce a record refused by topic %s to the dead-letter topic %s: %s; "
	    "its batch is answered RETRY", topic, b->set->dead_letter_topic,
	    rd_kafka_err2str(err));
	return -EAGAIN;
}

/*
 * On the poller: a record refused for good (err), after its dead-letter
 * record if there is one. Logged, counted and taken as done: its batch
 * can be answered OK, and the agent's spool moves on.
 */
static void
kafka_refuse_late(struct kafka *k, const rd_kafka_message_t *m, struct kafka_batch *b,
    bool dead_letter)
{
	char agent[128], seq[24], what[192];
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;

	agent[0] = seq[0] = '\0';
	if (rd_kafka_message_headers(m, &h) == 0 && h != NULL) {
		if (rd_kafka_header_get_last(h, KAFKA_HDR_AGENT, &v, &n) == 0)
			snprintf(agent, sizeof(agent), "%.*s", (int)n, (const char *)v);
		if (rd_kafka_header_get_last(h, KAFKA_HDR_SEQ, &v, &n) == 0)
			snprintf(seq, sizeof(seq), "%.*s", (int)n, (const char *)v);
	}
	/* Records produced with kafka.headers off do not say whose they are. */
	if (seq[0] != '\0')
		snprintf(what, sizeof(what), "the record of event %s of agent '%s'", seq, agent);
	else
		snprintf(what, sizeof(what), "a record (kafka.headers is off: its agent and event "
		    "are not known)");
	atomic_fetch_add(&b->refused_late, 1);
	atomic_fetch_add(&k->st.refused_broker, 1);
	if (dead_letter)
		log_error("the dead-letter topic %s refused too (%s) %s: it is lost, counted and "
		    "acknowledged; check that topic's settings",
		    rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err), what);
	else
		log_error("Kafka refused for good %s to topic %s (%s): it is counted and "
		    "acknowledged, not re-sent. Set kafka.dead_letter_topic to keep such records, "
		    "and check the topic's max.message.bytes and ACLs", what,
		    rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

/*
 * On the poller: applies the run of successful reports of k->dr.b. The
 * counts first, so that a batch answered OK finds its records counted
 * as delivered (kafka_stats.delivered).
 */
static void
kafka_dr_run_end(struct kafka *k)
{
	if (k->dr.n == 0)
		return;
	atomic_fetch_add(&k->st.delivered, k->dr.delivered);
	if (k->dr.dead_lettered != 0)
		atomic_fetch_add(&k->st.dead_lettered, k->dr.dead_lettered);
	k->dr.delivered = k->dr.dead_lettered = 0;
	/* Kafka takes records again: what /health said is over. */
	if (atomic_load_explicit(&k->trouble, memory_order_relaxed))
		atomic_store(&k->trouble, false);
	kafka_batch_reports(k->dr.b, 0, k->dr.n);
	k->dr.b = NULL;
	k->dr.n = 0;
}

/*
 * On the poller (or in kafka_free, once it stopped), after each
 * rd_kafka_poll and before a failed report: applies every report served
 * so far, in the order they came.
 */
static void
kafka_dr_flush(struct kafka *k)
{
	kafka_dr_run_end(k);
	if (k->dr.msgs == 0)
		return;
	atomic_fetch_sub(&k->queued_bytes, k->dr.bytes);
	/* Last: kafka_flush returns when this reaches 0, with the counts and reports above done. */
	atomic_fetch_sub(&k->queued_msgs, k->dr.msgs);
	k->dr.msgs = k->dr.bytes = 0;
}

/* Serves rk's reports and errors, waiting up to ms for the first, then applies them. */
static void
kafka_serve(struct kafka *k, rd_kafka_t *rk, int ms)
{
	rd_kafka_poll(rk, ms);
	kafka_dr_flush(k);
}

/*
 * On the poller: a failed report. The reports before it are applied
 * first, as they came (a delivery before it ends /health's trouble, this
 * failure starts it again).
 */
static void
kafka_dr_failed(struct kafka *k, const rd_kafka_message_t *m, struct kafka_batch *b,
    bool dead_letter)
{
	int err = m->err;
	char why[512];

	kafka_dr_flush(k);
	atomic_fetch_add(&k->st.failed, 1);
	if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
		kafka_note_error(k, m->err, rd_kafka_topic_name(m->rkt),
		    rd_kafka_err2str(m->err), why, sizeof(why));
	if (kafka_err_set_aside(b->set, m->err, dead_letter)) {
		if (!dead_letter)
			atomic_fetch_add(&k->st.set_aside[KAFKA_ASIDE_BROKER_REFUSED], 1);
		if (!dead_letter && !kafka_err_permanent(m->err))
			log_warn("%s; meanwhile its records go to the dead-letter topic %s, "
			    "with their topic in logferry-original-topic", why,
			    b->set->dead_letter_topic);
		/*
		 * Retrying would block the agent's spool behind this record
		 * for good: it goes to the dead-letter topic, or it is
		 * refused; the batch goes on either way.
		 */
		if (dead_letter || b->set->dead_letter_topic == NULL ||
		    kafka_dead_letter(k, m, b) == 0)
			err = 0;
		if (err == 0 && (dead_letter || b->set->dead_letter_topic == NULL))
			kafka_refuse_late(k, m, b, dead_letter);
	} else if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
	    m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
		log_warn("Kafka did not take a record: %s; its batch is answered RETRY "
		    "and the agent re-sends it", why);
	}
	kafka_batch_reports(b, err, 1);
	/* Last: kafka_flush returns when this reaches 0, with the counts above done. */
	atomic_fetch_sub(&k->queued_bytes, m->len);
	atomic_fetch_sub(&k->queued_msgs, 1);
}

static void
kafka_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka *k = opaque;
	uintptr_t op = (uintptr_t)m->_private;
	struct kafka_batch *b = (struct kafka_batch *)(op & ~KAFKA_DLQ_TAG);
	bool dead_letter = (op & KAFKA_DLQ_TAG) != 0;

	(void)rk;
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		kafka_dr_failed(k, m, b, dead_letter);
		return;
	}
	/*
	 * Counted here, applied by kafka_dr_run_end or kafka_dr_flush: b
	 * cannot settle, nor be freed, before, as its pending still counts
	 * this report.
	 */
	if (b != k->dr.b) {
		kafka_dr_run_end(k);
		k->dr.b = b;
	}
	k->dr.n++;
	k->dr.delivered++;
	k->dr.dead_lettered += dead_letter;
	k->dr.msgs++;
	k->dr.bytes += m->len;
}

/*
 * On the poller: ev, a delivery report event served, of n records, goes
 * to kl (whose loop produced its first record) to be destroyed there;
 * destroyed here when kl is closed or holds its share already.
 */
static void
kafka_spent_give(struct kafka_loop *kl, rd_kafka_event_t *ev, size_t n)
{
	bool taken = false;

	pthread_mutex_lock(&kl->mu);
	if (!kl->closed && kl->nspent < KAFKA_SPENT_MAX &&
	    kl->spent_records + n <= KAFKA_SPENT_RECORDS) {
		kl->spent[kl->nspent++] = ev;
		kl->spent_records += n;
		taken = true;
		/* Under the lock: kafka_loop_close closes the handle under it too. */
		if (kl->nspent == 1)
			uv_async_send(&kl->async);
	}
	pthread_mutex_unlock(&kl->mu);
	if (!taken)
		rd_kafka_event_destroy(ev);
}

/* Destroys the events kl holds (its loop, or the poller reclaiming them). */
static void
kafka_spent_free(struct kafka_loop *kl)
{
	rd_kafka_event_t *spent[KAFKA_SPENT_MAX];
	size_t n;

	pthread_mutex_lock(&kl->spent_mu);
	pthread_mutex_lock(&kl->mu);
	n = kl->nspent;
	memcpy(spent, kl->spent, n * sizeof(spent[0]));
	kl->nspent = kl->spent_records = 0;
	pthread_mutex_unlock(&kl->mu);
	/* Outside mu: the poller goes on settling batches meanwhile. */
	for (size_t i = 0; i < n; i++)
		rd_kafka_event_destroy(spent[i]);
	pthread_mutex_unlock(&kl->spent_mu);
}

/*
 * Before a producer is destroyed: its events still held by loops are
 * destroyed here (they reach into it), with those of any other producer.
 */
static void
kafka_spent_reclaim(struct kafka *k)
{
	pthread_mutex_lock(&k->mu);
	for (struct kafka_loop *kl = k->loops; kl != NULL; kl = kl->next)
		kafka_spent_free(kl);
	pthread_mutex_unlock(&k->mu);
}

/*
 * On the poller: one event of the current producer's main queue. The
 * main queue, served as events (rd_kafka_queue_poll), gives a delivery
 * report with all the records of a ProduceResponse, which can be freed
 * later and elsewhere; librdkafka's errors and logs come as events too
 * there, and go to the callbacks rd_kafka_poll would have called.
 */
static void
kafka_on_event(struct kafka *k, rd_kafka_t *rk, rd_kafka_event_t *ev)
{
	const rd_kafka_message_t *m;
	struct kafka_loop *kl = NULL;
	const char *fac, *str;
	size_t n;
	int level;

	switch (rd_kafka_event_type(ev)) {
	case RD_KAFKA_EVENT_DR:
		/* Before they are read: reading moves them to the event's other list. */
		n = rd_kafka_event_message_count(ev);
		while ((m = rd_kafka_event_message_next(ev)) != NULL) {
			/* Before its report: the batch may be freed once it is applied. */
			if (kl == NULL)
				kl = ((struct kafka_batch *)((uintptr_t)m->_private &
				    ~KAFKA_DLQ_TAG))->kl;
			kafka_on_delivery(rk, m, k);
		}
		if (kl != NULL) {
			kafka_spent_give(kl, ev, n);
			return;
		}
		break;
	case RD_KAFKA_EVENT_ERROR:
		/* As the error callback is called: a fatal error as ERR__FATAL. */
		kafka_on_error(rk, rd_kafka_event_error_is_fatal(ev) ? RD_KAFKA_RESP_ERR__FATAL :
		    rd_kafka_event_error(ev), rd_kafka_event_error_string(ev), k);
		break;
	case RD_KAFKA_EVENT_LOG:
		if (rd_kafka_event_log(ev, &fac, &str, &level) == 0)
			kafka_on_log(rk, level, fac, str);
		break;
	default:
		/* Statistics: no callback for them, as before. */
		break;
	}
	rd_kafka_event_destroy(ev);
}

/*
 * On the poller: serves the current producer's main queue as events,
 * waiting up to ms for the first, then applies the reports.
 */
static void
kafka_serve_events(struct kafka *k, int ms)
{
	rd_kafka_queue_t *q = rd_kafka_queue_get_main(k->rk);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ms);

	for (int i = 0; ev != NULL; i++) {
		kafka_on_event(k, k->rk, ev);
		ev = i + 1 < KAFKA_EVENTS_PER_POLL ? rd_kafka_queue_poll(q, 0) : NULL;
	}
	rd_kafka_queue_destroy(q);
	kafka_dr_flush(k);
}

static void
kafka_dl_unlink(struct kafka_loop *kl, struct kafka_batch *b)
{
	if (b->dl_prev != NULL)
		b->dl_prev->dl_next = b->dl_next;
	else if (kl->dl_head == b)
		kl->dl_head = b->dl_next;
	else
		return;                       /* not linked */
	if (b->dl_next != NULL)
		b->dl_next->dl_prev = b->dl_prev;
	else
		kl->dl_tail = b->dl_prev;
	b->dl_prev = b->dl_next = NULL;
}

static void kafka_loop_on_timer(uv_timer_t *t);

/* The timer fires at the oldest unanswered batch's deadline; no batch, no timer. */
static void
kafka_loop_arm(struct kafka_loop *kl)
{
	uint64_t now = uv_now(kl->loop);

	if (kl->closing)
		return;
	if (kl->dl_head == NULL) {
		uv_timer_stop(&kl->timer);
		return;
	}
	uv_timer_start(&kl->timer, kafka_loop_on_timer,
	    kl->dl_head->deadline > now ? kl->dl_head->deadline - now : 0, 0);
}

/* On the loop: the one answer of b. */
static void
kafka_batch_answer(struct kafka_batch *b, enum kafka_status status, const char *reason)
{
	struct kafka_loop *kl = b->kl;
	struct kafka *k = kl->k;
	struct kafka_result res = {
		.status = status, .produced = b->produced,
		.refused = b->refused + atomic_load(&b->refused_late), .reason = reason,
	};
	bool head = kl->dl_head == b;

	if (b->answered)
		return;
	b->answered = true;
	kafka_dl_unlink(kl, b);
	if (head)
		kafka_loop_arm(kl);
	atomic_fetch_add(status == KAFKA_OK ? &k->st.batches_ok : &k->st.batches_retry, 1);
	/*
	 * The callback is the owner's last touch of b: a batch answered before
	 * its end (RETRY) is ended here. It is freed later, from the loop, once
	 * its last report is in.
	 */
	kafka_batch_end(b);
	if (b->cb != NULL)
		b->cb(b, &res, b->arg);
}

static void
kafka_settings_unref(struct kafka_settings *set)
{
	if (set == NULL || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	route_table_free(set->routes);
	free(set->routed);
	free(set->dead_letter_topic);
	free(set);
}

static void
kafka_batch_free(struct kafka_batch *b)
{
	struct kafka_loop *kl = b->kl;

	kafka_settings_unref(b->set);
	if (b->all_prev != NULL)
		b->all_prev->all_next = b->all_next;
	else
		kl->all_head = b->all_next;
	if (b->all_next != NULL)
		b->all_next->all_prev = b->all_prev;
	free(b);
}

/* On the loop, for a batch taken off the ready queue. */
static void
kafka_batch_settle(struct kafka_batch *b)
{
	if (b->l_err != 0)
		kafka_batch_answer(b, KAFKA_RETRY, rd_kafka_err2str(b->l_err));
	else if (b->l_done)
		kafka_batch_answer(b, KAFKA_OK, NULL);
	/* done: no report can come any more, and the owner is answered. */
	if (b->l_done)
		kafka_batch_free(b);
}

/* Settles every batch on kl's ready queue. */
static void
kafka_loop_drain(struct kafka_loop *kl)
{
	/*
	 * Wake-ups merge: drain the whole queue. One batch at a time, because
	 * a report may queue a batch again while the previous one settles.
	 */
	for (;;) {
		struct kafka_batch *b;

		pthread_mutex_lock(&kl->mu);
		if ((b = kl->ready_head) != NULL) {
			kl->ready_head = b->ready_next;
			if (kl->ready_head == NULL)
				kl->ready_tail = NULL;
			b->queued = false;
			b->l_err = b->err;
			b->l_done = b->done;
		}
		pthread_mutex_unlock(&kl->mu);
		if (b == NULL)
			break;
		kafka_batch_settle(b);
	}
}

static void
kafka_loop_on_async(uv_async_t *h)
{
	struct kafka_loop *kl = h->data;
	bool writable;

	kafka_loop_drain(kl);
	/* Before the writable callback: this gives librdkafka's queue room too. */
	kafka_spent_free(kl);
	pthread_mutex_lock(&kl->mu);
	writable = kl->wake_writable;
	kl->wake_writable = false;
	pthread_mutex_unlock(&kl->mu);
	/*
	 * Records a full queue refused go first, before the owner's next
	 * ones; still refused, the loop waits for room again (kafka_stage_flush
	 * blocked it) and the owner is not called.
	 */
	if (writable && !kl->closing && kl->nstaged > 0 && kafka_stage_flush(kl) != 0)
		writable = false;
	if (writable && kl->writable_cb != NULL && !kl->closing)
		kl->writable_cb(kl, kl->arg);
}

static void
kafka_loop_on_timer(uv_timer_t *t)
{
	struct kafka_loop *kl = t->data;
	uint64_t now = uv_now(kl->loop);

	while (kl->dl_head != NULL && kl->dl_head->deadline <= now)
		kafka_batch_answer(kl->dl_head, KAFKA_RETRY,
		    "not acknowledged by Kafka within kafka.delivery_timeout");
	kafka_loop_arm(kl);
}

int
kafka_batch_begin(struct kafka_loop *kl, const char *agent, kafka_batch_cb cb, void *arg,
    struct kafka_batch **out)
{
	struct kafka_batch *b;

	if (kl->closing)
		return -EPIPE;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -ENOMEM;
	b->kl = kl;
	b->agent = agent;
	b->agent_len = agent != NULL ? strlen(agent) : 0;
	b->cb = cb;
	b->arg = arg;
	pthread_mutex_lock(&kl->k->set_mu);
	b->set = kl->k->set;
	atomic_fetch_add(&b->set->refs, 1);
	pthread_mutex_unlock(&kl->k->set_mu);
	/* The loop's clock may be a whole iteration old: the deadline is exact. */
	uv_update_time(kl->loop);
	b->deadline = uv_now(kl->loop) + b->set->delivery_timeout_ms;
	atomic_init(&b->pending, KAFKA_PENDING_OPEN);
	/* Deadlines grow with time: appending keeps the list in order. */
	b->dl_prev = kl->dl_tail;
	if (kl->dl_tail != NULL)
		kl->dl_tail->dl_next = b;
	else
		kl->dl_head = b;
	kl->dl_tail = b;
	b->all_next = kl->all_head;
	if (kl->all_head != NULL)
		kl->all_head->all_prev = b;
	kl->all_head = b;
	if (kl->dl_head == b)
		kafka_loop_arm(kl);
	*out = b;
	return 0;
}

/* Adds b's events counted on its route so far to its settings' count. */
static void
kafka_batch_route_flush(struct kafka_batch *b)
{
	if (b->routed_n == 0)
		return;
	/* Relaxed: a count for the metrics, ordered with nothing. */
	atomic_fetch_add_explicit(&b->set->routed[b->routed_at], b->routed_n, memory_order_relaxed);
	b->routed_n = 0;
}

void
kafka_batch_end(struct kafka_batch *b)
{
	if (b->ended)
		return;
	b->ended = true;
	kafka_batch_route_flush(b);
	kafka_batch_reports(b, 0, KAFKA_PENDING_OPEN - b->sent);
}

void
kafka_batch_abandon(struct kafka_batch *b)
{
	struct kafka_loop *kl = b->kl;
	bool head = kl->dl_head == b;

	b->cb = NULL;
	/* Answered silently: it no longer keeps the timer (and the loop) going. */
	if (!b->answered) {
		b->answered = true;
		kafka_dl_unlink(kl, b);
		if (head)
			kafka_loop_arm(kl);
	}
	kafka_batch_end(b);
}

/* ------------------------------------------------------------- producing */

/* Bytes of v as a zigzag varint, as librdkafka writes header lengths. */
static size_t
kafka_varint_size(uint64_t v)
{
	size_t n = 1;

	v = v << 1;       /* zigzag of a non-negative length */
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t
kafka_header_size(size_t name_len, size_t value_len)
{
	return kafka_varint_size(name_len) + name_len + kafka_varint_size(value_len) + value_len;
}

size_t
kafka_record_size(size_t key_len, size_t value_len, size_t headers_size)
{
	return KAFKA_RECORD_OVERHEAD + key_len + value_len + headers_size;
}

size_t
kafka_record_limit(size_t message_max_bytes)
{
	/*
	 * The batch header counts in a broker's limit; the margin covers a
	 * codec that grows incompressible data (lz4 and zstd add well under
	 * 1/256) and a broker's limit a little below the producer's.
	 */
	size_t margin = KAFKA_BATCH_OVERHEAD + message_max_bytes / 64 + 256;

	return message_max_bytes > margin + KAFKA_RECORD_OVERHEAD + KAFKA_PIECE_MIN_ROOM ?
	    message_max_bytes - margin : KAFKA_RECORD_OVERHEAD + KAFKA_PIECE_MIN_ROOM;
}

static void
kafka_refuse(struct kafka_batch *b, uint64_t seq, size_t size, const char *why)
{
	struct kafka *k = b->kl->k;

	b->refused++;
	atomic_fetch_add(&k->st.refused_oversize, 1);
	log_error("event %" PRIu64 " of agent '%s' refused: %s (%zu bytes; records may have "
	    "%zu of message.max.bytes %zu); it is counted and not re-sent. Raise "
	    "kafka.properties.message.max.bytes together with the brokers' max.message.bytes, "
	    "or make the agent's events smaller (fewer or shorter fields)",
	    seq, b->agent != NULL ? b->agent : "", why, size, b->set->record_max,
	    b->set->max_msg_bytes);
}

/* v in decimal into out (at least 21 bytes); returns the length. */
static int
kafka_u64(char *out, uint64_t v)
{
	char t[20];
	int n = 0;

	/* snprintf costs more than the rest of the header work here (perf). */
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (int i = 0; i < n; i++)
		out[i] = t[n - 1 - i];
	out[n] = '\0';
	return n;
}

/* Adds n to a count only the calling thread writes (a kafka_loop's): no locked instruction. */
static void
kafka_count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

/* kl waits for room: the poller wakes it once librdkafka's queue drained below half. */
static void
kafka_loop_block(struct kafka_loop *kl)
{
	pthread_mutex_lock(&kl->mu);
	if (!kl->blocked) {
		kl->blocked = true;
		atomic_fetch_add(&kl->k->nblocked, 1);
	}
	pthread_mutex_unlock(&kl->mu);
}

/* One record of b: the event whole (count 0) or piece index of count. */
struct kafka_rec {
	const char *topic;            /* where it goes */
	/* Set aside to the dead-letter topic: why, and the topic it was not produced to (shown). */
	const char *aside, *aside_topic;
	struct pbslice stream;        /* the event's: a header while a dead-letter topic is set */
	uint64_t seq;
	const char *key;
	size_t klen;
	const void *value;
	size_t vlen;
	size_t index, count;
};

static size_t
kafka_topic_hash(const char *name)
{
	uint32_t h = 2166136261u;     /* FNV-1a */

	for (; *name != '\0'; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h & (KAFKA_TOPIC_SLOTS - 1);
}

/*
 * k->rk's handle for topic, made on its first record; NULL when the table
 * is full or librdkafka made none (the record goes by name). Under
 * rk_lock's read lock.
 */
static rd_kafka_topic_t *
kafka_topic_handle(struct kafka *k, const char *topic)
{
	size_t i = kafka_topic_hash(topic);
	rd_kafka_topic_t *rkt;

	for (;;) {
		rkt = atomic_load_explicit(&k->topics[i].rkt, memory_order_acquire);
		if (rkt == NULL)
			break;
		if (strcmp(k->topics[i].name, topic) == 0)
			return rkt;
		i = (i + 1) & (KAFKA_TOPIC_SLOTS - 1);
	}
	pthread_mutex_lock(&k->topics_mu);
	/* Another loop may have added it, or others, since: look again from where it would go. */
	for (i = kafka_topic_hash(topic);
	    (rkt = atomic_load_explicit(&k->topics[i].rkt, memory_order_relaxed)) != NULL &&
	    strcmp(k->topics[i].name, topic) != 0;
	    i = (i + 1) & (KAFKA_TOPIC_SLOTS - 1))
		;
	if (rkt == NULL && k->ntopics < KAFKA_TOPICS_MAX && strlen(topic) < ROUTE_TOPIC_BUF &&
	    (rkt = rd_kafka_topic_new(k->rk, topic, NULL)) != NULL) {
		strcpy(k->topics[i].name, topic);
		atomic_store_explicit(&k->topics[i].rkt, rkt, memory_order_release);
		k->ntopics++;
	}
	pthread_mutex_unlock(&k->topics_mu);
	return rkt;
}

/*
 * Releases the handles of the producer the poller is replacing, under
 * rk_lock's write lock (no record in flight through them). Records they
 * took stay with that producer: a handle is only the application's
 * reference to its topic.
 */
static void
kafka_topics_clear(struct kafka *k)
{
	pthread_mutex_lock(&k->topics_mu);
	for (size_t i = 0; i < KAFKA_TOPIC_SLOTS; i++) {
		rd_kafka_topic_t *rkt = atomic_load_explicit(&k->topics[i].rkt, memory_order_relaxed);

		if (rkt != NULL) {
			rd_kafka_topic_destroy(rkt);
			atomic_store_explicit(&k->topics[i].rkt, NULL, memory_order_relaxed);
		}
	}
	k->ntopics = 0;
	pthread_mutex_unlock(&k->topics_mu);
}

/*
 * Kafka's timestamp for a record of kl's held run: the wall clock in ms,
 * read at the run's first record and again every KAFKA_TS_RECORDS, so
 * that it stays the produce time to about a millisecond (a run does not
 * wait between records). Outside a run 0: librdkafka reads the clock.
 */
static int64_t
kafka_run_ts(struct kafka_loop *kl)
{
	struct timespec ts;

	if (!kl->held)
		return 0;
	if (kl->ts_left == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		kl->ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		kl->ts_left = KAFKA_TS_RECORDS;
	}
	kl->ts_left--;
	return kl->ts_ms;
}

/*
 * Hands one record to librdkafka. Returns 0, -EAGAIN (queue full, nothing
 * produced), -EMSGSIZE (librdkafka's own refusal: not counted here) or
 * -ECANCELED (b fails).
 */
static int
kafka_send(struct kafka_batch *b, const struct kafka_rec *rec)
{
	struct kafka_loop *kl = b->kl;
	struct kafka *k = kl->k;
	char seqs[24], piece[KAFKA_PIECE_MAX + 1];
	int seqlen, plen = 0;
	rd_kafka_headers_t *h = NULL;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t err;
	/* kafka.headers off: none but the piece, save on a record set aside (rare, and it must say why). */
	bool all = b->set->headers || rec->aside != NULL;
	size_t nh = (all ? 2 + (b->set->dead_letter_topic != NULL ? 3 : 0) : 0) + (rec->count > 0);
	/* A record set aside reports as a dead-letter record: its refusal is final. */
	uintptr_t opaque = (uintptr_t)b | (rec->aside != NULL ? KAFKA_DLQ_TAG : 0);

	/*
	 * librdkafka allocates four times per record for two headers however
	 * they are given (list, its array, one per header; they are freed on
	 * the poller, where glibc's per-thread caches cannot help). A list of
	 * exactly as many as needed is the least of that: RD_KAFKA_V_HEADER
	 * sizes its array for eight, a per-batch list copied per record
	 * allocates once more (bench/bench_kafka.c).
	 */
	if (nh > 0)
		h = rd_kafka_headers_new(nh);
	if (all) {
		seqlen = kafka_u64(seqs, rec->seq);
		rd_kafka_header_add(h, KAFKA_HDR_AGENT, KAFKA_HDRLEN(KAFKA_HDR_AGENT), b->agent,
		    (ssize_t)b->agent_len);
		rd_kafka_header_add(h, KAFKA_HDR_SEQ, KAFKA_HDRLEN(KAFKA_HDR_SEQ), seqs, seqlen);
	}
	if (rec->count > 0) {
		plen = kafka_u64(piece, rec->index);
		piece[plen++] = '/';
		plen += kafka_u64(piece + plen, rec->count);
		rd_kafka_header_add(h, KAFKA_HDR_PIECE, KAFKA_HDRLEN(KAFKA_HDR_PIECE), piece, plen);
	}
	if (rec->aside != NULL)
		kafka_dead_letter_headers(h, rec->aside, rec->aside_topic, rec->stream.ptr != NULL ?
		    (const void *)rec->stream.ptr : "", rec->stream.len);
	/*
	 * A broker may still refuse this record for good; its delivery report
	 * then has the record alone, and the dead-letter copy names the stream
	 * from this header. One more header per record, only while a
	 * dead-letter topic is set.
	 */
	else if (all && b->set->dead_letter_topic != NULL)
		rd_kafka_header_add(h, KAFKA_HDR_STREAM, KAFKA_HDRLEN(KAFKA_HDR_STREAM),
		    rec->stream.ptr != NULL ? (const void *)rec->stream.ptr : "",
		    (ssize_t)rec->stream.len);

	/* Counted before: the report may come before producev returns. */
	atomic_fetch_add(&k->queued_msgs, 1);
	atomic_fetch_add(&k->queued_bytes, rec->vlen);
	if (!kl->held)
		pthread_rwlock_rdlock(&k->rk_lock);
	if (kafka_over_bound(k))
		err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
	else if ((rkt = kafka_topic_handle(k, rec->topic)) != NULL)
		err = rd_kafka_producev(k->rk, RD_KAFKA_V_RKT(rkt),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(rec->key, rec->klen),
		    RD_KAFKA_V_VALUE((void *)rec->value, rec->vlen), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_OPAQUE((void *)opaque), RD_KAFKA_V_TIMESTAMP(kafka_run_ts(kl)),
		    RD_KAFKA_V_END);
	else
		err = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(rec->topic),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(rec->key, rec->klen),
		    RD_KAFKA_V_VALUE((void *)rec->value, rec->vlen), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_OPAQUE((void *)opaque), RD_KAFKA_V_TIMESTAMP(kafka_run_ts(kl)),
		    RD_KAFKA_V_END);
	if (!kl->held)
		pthread_rwlock_unlock(&k->rk_lock);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		b->sent++;
		kafka_count(&kl->st.produced, 1);
		if (rec->count > 0)
			kafka_count(&kl->st.pieces, 1);
		return 0;
	}
	/* Not produced: the headers are still ours, the counts come back. */
	if (h != NULL)
		rd_kafka_headers_destroy(h);
	atomic_fetch_sub(&k->queued_msgs, 1);
	atomic_fetch_sub(&k->queued_bytes, rec->vlen);
	switch (err) {
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		kafka_count(&kl->st.queue_full, 1);
		kafka_loop_block(kl);
		return -EAGAIN;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		return -EMSGSIZE;
	default: {
		/*
		 * E.g. __FATAL until the poller replaced the producer, or a topic
		 * librdkafka already knows this relay may not write: RETRY now.
		 */
		char why[512];

		log_warn("cannot produce to Kafka: %s; the batch is answered RETRY",
		    kafka_note_error(k, err, rec->topic, rd_kafka_err2str(err), why, sizeof(why)));
		kafka_batch_fail(b, err);
		return -ECANCELED;
	}
	}
}

/*
 * A staged record librdkafka refused for a reason other than a full
 * queue: as kafka_send's caller would have had it refused. Not produced:
 * its count in b's sent is taken back as a report.
 */
static void
kafka_stage_refused(struct kafka_loop *kl, const struct kafka_staged *s,
    rd_kafka_resp_err_t err)
{
	struct kafka_batch *b = s->b;
	char why[512];

	if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
		b->produced--;
		kafka_refuse(b, s->seq, s->vlen + s->klen, "librdkafka refused its record");
		kafka_batch_reports(b, 0, 1);
		return;
	}
	/* One line per batch: the records after this one fail alike (e.g. a fatal producer). */
	if (!b->failed) {
		log_warn("cannot produce to Kafka: %s; the batch is answered RETRY",
		    kafka_note_error(kl->k, err, kl->stage_topic, rd_kafka_err2str(err), why,
		    sizeof(why)));
		kafka_batch_fail(b, err);
	}
	kafka_batch_reports(b, err, 1);
}

/*
 * Hands kl's staged records to librdkafka in one rd_kafka_produce_batch
 * call: one topic lock, one reading of each clock and one add to the
 * queue counts for them all, where rd_kafka_producev takes them per
 * record. The partitioner still places each by its key. librdkafka 2.0
 * refuses every record after the first one its full queue refused
 * (rd_kafka_produce_batch), so those that went are a prefix, and the rest
 * stay staged in order, to go before anything else (stalled): each
 * record reaches librdkafka once, in the order produced. Returns 0 (none
 * staged any more), or -EAGAIN (the queue is full: kl waits for room).
 */
static int
kafka_stage_flush(struct kafka_loop *kl)
{
	struct kafka *k = kl->k;
	size_t n = kl->nstaged, bytes = 0, good = 0, good_bytes = 0, kept = 0;
	rd_kafka_topic_t *rkt = NULL, *own = NULL;
	rd_kafka_resp_err_t all = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct kafka_staged *st = &kl->staged[i];
		rd_kafka_message_t *m = &kl->msgs[i];

		memset(m, 0, sizeof(*m));
		/* An empty value is empty, not NULL (a tombstone), also before the stage allocated. */
		m->payload = kl->stage.data != NULL ? kl->stage.data + st->voff : (uint8_t *)"";
		m->len = st->vlen;
		m->key = st->klen > 0 ? kl->stage.data + st->voff + st->vlen : NULL;
		m->key_len = st->klen;
		m->_private = st->b;
		bytes += st->vlen;
	}
	/* Counted before: a report may come before produce_batch returns. */
	atomic_fetch_add(&k->queued_msgs, n);
	atomic_fetch_add(&k->queued_bytes, bytes);
	if (!kl->held)
		pthread_rwlock_rdlock(&k->rk_lock);
	if (kafka_over_bound(k))
		all = RD_KAFKA_RESP_ERR__QUEUE_FULL;
	else if ((rkt = kafka_topic_handle(k, kl->stage_topic)) == NULL &&
	    (rkt = own = rd_kafka_topic_new(k->rk, kl->stage_topic, NULL)) == NULL)
		all = rd_kafka_last_error();
	if (all == RD_KAFKA_RESP_ERR_NO_ERROR)
		rd_kafka_produce_batch(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, kl->msgs,
		    (int)n);
	else
		for (size_t i = 0; i < n; i++)
			kl->msgs[i].err = all;
	if (own != NULL)
		rd_kafka_topic_destroy(own);
	if (!kl->held)
		pthread_rwlock_unlock(&k->rk_lock);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t err = kl->msgs[i].err;

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			good++;
			good_bytes += kl->staged[i].vlen;
		} else if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			kl->staged[kept++] = kl->staged[i];     /* kept <= i: in order */
		} else {
			kafka_stage_refused(kl, &kl->staged[i], err);
		}
	}
	atomic_fetch_sub(&k->queued_msgs, n - good);
	atomic_fetch_sub(&k->queued_bytes, bytes - good_bytes);
	kafka_count(&kl->st.produced, good);
	kl->nstaged = kept;
	kl->stalled = kept > 0;
	if (kept == 0) {
		buf_reset(&kl->stage);
		return 0;
	}
	kafka_count(&kl->st.queue_full, 1);
	kafka_loop_block(kl);
	return -EAGAIN;
}

/*
 * kafka_loop_close: staged records will not be produced; their batches
 * were answered RETRY, and these reports let them be freed.
 */
static void
kafka_stage_drop(struct kafka_loop *kl)
{
	for (size_t i = 0; i < kl->nstaged; i++)
		kafka_batch_reports(kl->staged[i].b, RD_KAFKA_RESP_ERR__DESTROY, 1);
	kl->nstaged = 0;
	kl->stalled = false;
	buf_reset(&kl->stage);
}

/*
 * Stages rec, ev's record whole, to go to librdkafka with the records
 * before it in kl's held run (kafka_stage_flush): its value rendered (or
 * copied: the owner frees its bytes once the batch ended) and its key
 * copied into kl->stage. Staged records go first when the topic changes,
 * when they fill the stage, and before a record that goes one by one
 * (headers, a piece, a record set aside), so that records reach
 * librdkafka in the order produced. Returns 0 (staged: b counts it as
 * sent and produced), -EAGAIN (staged records met a full queue: ev is not
 * staged), or -E2BIG (the record is too large to go whole, or could not
 * be rendered here: nothing staged before it is left, and the caller
 * produces it as before, in pieces).
 */
static int
kafka_stage(struct kafka_batch *b, const struct event *ev, const struct pbslice *raw,
    const struct kafka_rec *rec, size_t tlen)
{
	struct kafka_loop *kl = b->kl;
	const struct kafka_settings *set = b->set;
	size_t start, vlen, max = KAFKA_STAGE_BYTES + set->max_msg_bytes + KAFKA_KEY_MAX;
	struct kafka_staged *st;
	struct pbslice ev_bytes;
	int r;

	if (kl->nstaged > 0 && (kl->stalled || kl->nstaged == KAFKA_STAGE_RECORDS ||
	    kl->stage.len >= KAFKA_STAGE_BYTES || strcmp(kl->stage_topic, rec->topic) != 0) &&
	    (r = kafka_stage_flush(kl)) != 0)
		return r;
	/* A reload raised message.max.bytes: a record may grow as much. */
	if (kl->stage.max < max)
		kl->stage.max = max;
	start = kl->stage.len;
	switch (set->format) {
	case RELAY_FORMAT_PROTOBUF:
		if (raw != NULL) {
			r = buf_append(&kl->stage, raw->ptr, raw->len);
			break;
		}
		buf_reset(&kl->value);
		if ((r = event_encode(ev, &kl->value)) == 0 &&
		    (r = kafka_event_bytes(kl->value.data, kl->value.data + kl->value.len,
		    &ev_bytes)) == 0)
			r = buf_append(&kl->stage, ev_bytes.ptr, ev_bytes.len);
		break;
	case RELAY_FORMAT_RAW:
		r = buf_append(&kl->stage, ev->message.ptr, ev->message.len);
		break;
	default:
		r = event_json_cached(ev, b->agent, set->json_names, &kl->json, &kl->stage);
		break;
	}
	vlen = kl->stage.len - start;
	if (r == 0 && rec->klen > 0)
		r = buf_append(&kl->stage, rec->key, rec->klen);
	if (r != 0 || kafka_record_size(rec->klen, vlen, 0) > set->record_max) {
		kl->stage.len = start;
		if (kl->nstaged > 0 && (r = kafka_stage_flush(kl)) != 0)
			return r;
		return -E2BIG;
	}
	if (kl->nstaged == 0)
		memcpy(kl->stage_topic, rec->topic, tlen + 1);
	st = &kl->staged[kl->nstaged++];
	st->b = b;
	st->seq = rec->seq;
	st->voff = start;
	st->vlen = vlen;
	st->klen = rec->klen;
	b->sent++;
	b->produced++;
	return 0;
}

/* Headers of rec of b as kafka_send adds them, with the piece header at its widest if piece. */
static size_t
kafka_headers_size(const struct kafka_batch *b, const struct kafka_rec *rec, bool piece)
{
	char seqs[24];
	size_t n = 0;

	if (b->set->headers || rec->aside != NULL)
		n = kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_AGENT), b->agent_len) +
		    kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_SEQ), (size_t)kafka_u64(seqs, rec->seq));
	if (piece)
		n += kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_PIECE), KAFKA_PIECE_MAX);
	if (rec->aside != NULL)
		n += kafka_dead_letter_headers_size(rec->aside, rec->aside_topic, rec->stream.len);
	else if (b->set->headers && b->set->dead_letter_topic != NULL)
		n += kafka_header_size(KAFKA_HDRLEN(KAFKA_HDR_STREAM), rec->stream.len);
	return n;
}

/*
 * pev: ev with its slices resolved into kl->fields, so that every piece
 * carries the event's fields as they were and not sliced out of its piece.
 */
static int
kafka_piece_event(struct kafka_loop *kl, const struct event *ev, struct event *pev)
{
	*pev = *ev;
	if (ev->nfields > kl->fields_cap) {
		struct event_field *f = realloc(kl->fields, ev->nfields * sizeof(*f));

		if (f == NULL)
			return -ENOMEM;
		kl->fields = f;
		kl->fields_cap = ev->nfields;
	}
	for (size_t i = 0; i < ev->nfields; i++) {
		struct event_field *f = &kl->fields[i];

		*f = ev->fields[i];
		if (f->type != EVENT_SLICE)
			continue;
		/* A slice outside the message comes out as null, as event_json writes it. */
		if (event_field_string(ev, &ev->fields[i], &f->v.text) == 0)
			f->type = EVENT_TEXT;
		else
			f->type = EVENT_NULL;
	}
	pev->fields = kl->fields;
	return 0;
}

/*
 * The value of piece index of count of pev, whose message is the piece
 * (count 0: the frame of a piece, with the widest numbers). Into kl->value
 * except for raw.
 */
static int
kafka_piece_value(struct kafka_batch *b, const struct event *pev, size_t index, size_t count,
    const void **value, size_t *vlen)
{
	struct kafka_loop *kl = b->kl;
	const char *agent = b->agent;
	char extra[96];
	struct pbslice ev_bytes;
	int r;

	switch (b->set->format) {
	case RELAY_FORMAT_RAW:
		*value = pev->message.ptr != NULL ? (const void *)pev->message.ptr : "";
		*vlen = pev->message.len;
		return 0;
	case RELAY_FORMAT_PROTOBUF:
		/* The Event itself: its index and count are in the logferry-piece header only. */
		buf_reset(&kl->value);
		if ((r = event_encode(pev, &kl->value)) != 0)
			return r;
		if ((r = kafka_event_bytes(kl->value.data, kl->value.data + kl->value.len,
		    &ev_bytes)) != 0)
			return r;
		*value = ev_bytes.ptr;
		*vlen = ev_bytes.len;
		return 0;
	default:
		if (count == 0)
			snprintf(extra, sizeof(extra), "\"piece_index\":%s,\"piece_count\":%s",
			    KAFKA_U64_MAX_TEXT, KAFKA_U64_MAX_TEXT);
		else
			snprintf(extra, sizeof(extra), "\"piece_index\":%zu,\"piece_count\":%zu",
			    index, count);
		buf_reset(&kl->value);
		if ((r = event_json_as(pev, agent, extra, b->set->json_names, &kl->value)) != 0)
			return r;
		*value = kl->value.data;
		*vlen = kl->value.len;
		return 0;
	}
}

/* Bytes a message piece of cost c adds to a piece's frame, at most (protobuf: tag and length). */
static size_t
kafka_piece_framing(const struct kafka_settings *set)
{
	return set->format == RELAY_FORMAT_PROTOBUF ? 1 + 10 : 0;
}

/*
 * Plans the pieces of ev, whose record is larger than k->record_max:
 * sets b->cut_room (the message bytes a piece may cost) and b->cut_count.
 * Returns 0, or -EMSGSIZE (logged and counted) when the event's frame
 * alone (fields, headers, key) leaves no room for its message.
 */
static int
kafka_cut_plan(struct kafka_batch *b, const struct event *ev, const struct kafka_rec *rec)
{
	uint64_t seq = rec->seq;
	size_t klen = rec->klen;
	struct kafka_loop *kl = b->kl;
	const struct kafka_settings *set = b->set;
	bool json = set->format == RELAY_FORMAT_JSON;
	struct event pev;
	const void *value;
	size_t frame, fixed, count = 0, off = 0;
	int r;

	if ((r = kafka_piece_event(kl, ev, &pev)) != 0)
		return r;
	pev.message = (struct pbslice){ NULL, 0 };
	if (kafka_piece_value(b, &pev, 0, 0, &value, &frame) != 0) {
		kafka_refuse(b, seq, set->max_msg_bytes, "even without its message its record is "
		    "larger than Kafka accepts");
		return -EMSGSIZE;
	}
	fixed = kafka_record_size(klen, frame + kafka_piece_framing(set),
	    kafka_headers_size(b, rec, true));
	if (fixed + KAFKA_PIECE_MIN_ROOM > set->record_max) {
		kafka_refuse(b, seq, fixed, "its fields, key and headers leave no room for pieces "
		    "of its message");
		return -EMSGSIZE;
	}
	b->cut_room = set->record_max - fixed;
	/*
	 * A piece that is not UTF-8 carries its bytes again in message_b64:
	 * 4/3 of its bytes (at most its cost) and the member's 21 bytes at most.
	 */
	if (json && !jsonw_utf8_valid(ev->message.ptr, ev->message.len))
		b->cut_room = (b->cut_room - KAFKA_B64_MEMBER_MAX) * 3 / 7;
	while (off < ev->message.len) {
		size_t n = jsonw_cut(ev->message.ptr + off, ev->message.len - off, b->cut_room,
		    json, NULL);

		/* A character costs 6 at most: KAFKA_PIECE_MIN_ROOM always takes one. */
		off += n;
		count++;
	}
	b->cut_count = count > 0 ? count : 1;
	b->cut_index = 0;
	b->cut_off = 0;
	b->cut_seq = seq;
	b->cutting = true;
	return 0;
}

/* Produces the pieces of ev from b->cut_index on; 0 once the last is produced. */
static int
kafka_cut_produce(struct kafka_batch *b, const struct event *ev, struct kafka_rec *rec)
{
	struct kafka_loop *kl = b->kl;
	struct kafka *k = kl->k;
	bool json = b->set->format == RELAY_FORMAT_JSON;
	struct event pev;
	int r;

	if ((r = kafka_piece_event(kl, ev, &pev)) != 0)
		return r;
	rec->count = b->cut_count;
	while (b->cut_index < b->cut_count) {
		size_t n = jsonw_cut(ev->message.ptr + b->cut_off, ev->message.len - b->cut_off,
		    b->cut_room, json, NULL);

		pev.message = (struct pbslice){ ev->message.ptr + b->cut_off, n };
		rec->index = b->cut_index;
		if ((r = kafka_piece_value(b, &pev, rec->index, rec->count, &rec->value,
		    &rec->vlen)) != 0)
			return r;
		if ((r = kafka_send(b, rec)) != 0)
			return r;
		b->cut_off += n;
		b->cut_index++;
	}
	atomic_fetch_add(&k->st.events_cut, 1);
	return 0;
}

/*
 * Renders ev's topic into kl->topic (*tlen bytes) and says whether it may
 * be produced there: 0, or -EINVAL with the reason in kl->aside (a name
 * Kafka refuses, a topic kafka.allowed_topics does not allow the agent),
 * counted by reason when count (the event's first try, not its return
 * after -EAGAIN). The last allowed_topics answer is kept in b: a
 * connection's events mostly go to a few topics, and the globs are not
 * matched again for each.
 */
static int
kafka_route_check(struct kafka_batch *b, const struct event *ev, const struct route *topic,
    bool count, size_t *tlen)
{
	struct kafka_loop *kl = b->kl;
	struct kafka *k = kl->k;
	const struct route_table *t = b->set->routes;

	if (route_render(topic, ev, b->agent, kl->topic, sizeof(kl->topic), tlen) != 0)
		*tlen = sizeof(kl->topic) - 1;    /* too long: the check says so */
	if (kl->topic_ok_len != *tlen + 1 || memcmp(kl->topic_ok, kl->topic, *tlen) != 0) {
		if (route_topic_check(kl->topic, *tlen, kl->aside, sizeof(kl->aside)) != 0) {
			if (count)
				atomic_fetch_add(&k->st.set_aside[KAFKA_ASIDE_INVALID_TOPIC], 1);
			return -EINVAL;
		}
		memcpy(kl->topic_ok, kl->topic, *tlen);
		kl->topic_ok_len = *tlen + 1;
	}
	if (!route_table_restricted(t))
		return 0;
	if (!b->allow_known || strcmp(b->allow_topic, kl->topic) != 0) {
		memcpy(b->allow_topic, kl->topic, *tlen + 1);
		b->allow_ok = route_table_allowed(t, b->agent, kl->topic);
		b->allow_known = true;
	}
	if (b->allow_ok)
		return 0;
	snprintf(kl->aside, sizeof(kl->aside), "topic %s not allowed for agent %s", kl->topic,
	    b->agent != NULL ? b->agent : "");
	if (count)
		atomic_fetch_add(&k->st.set_aside[KAFKA_ASIDE_NOT_ALLOWED], 1);
	return -EINVAL;
}

/*
 * No dead-letter topic for an event set aside: logged (rate-limited),
 * counted (kafka_route_check did) and acknowledged, as a record a broker
 * refused for good is without one.
 */
static void
kafka_drop(struct kafka_batch *b, const struct event *ev, uint64_t seq)
{
	b->refused++;
	log_error("event %" PRIu64 " of agent '%s', stream '%.*s', not produced: %s; it is "
	    "counted and acknowledged. Set kafka.dead_letter_topic to keep such events, and "
	    "check kafka.topic, kafka.routes and kafka.allowed_topics", seq,
	    b->agent != NULL ? b->agent : "", (int)ev->stream.len,
	    ev->stream.ptr != NULL ? (const char *)ev->stream.ptr : "", b->kl->aside);
}

int
kafka_produce(struct kafka_batch *b, const struct event *ev, const struct pbslice *raw,
    uint64_t seq)
{
	struct kafka_loop *kl = b->kl;
	const struct kafka_settings *set = b->set;
	struct kafka_rec rec = { .seq = seq, .stream = ev->stream };
	const struct route *topic, *key;
	struct pbslice ev_bytes;
	size_t tlen, route;
	bool first;
	int r = 0;

	if (b->ended)
		return -EINVAL;
	if (b->failed)
		return -ECANCELED;
	/* A reload raised message.max.bytes: the JSON of one record may grow as much. */
	if (kl->value.max < set->max_msg_bytes)
		kl->value.max = set->max_msg_bytes;
	route_table_pick(set->routes, ev, b->agent, &topic, &key, &route);
	/* Counted once per event, not again when it comes back after -EAGAIN. */
	first = !b->routed_any || b->routed_seq != seq;
	if (first) {
		if (b->routed_at != route)
			kafka_batch_route_flush(b);
		b->routed_at = route;
		b->routed_n++;
		b->routed_any = true;
		b->routed_seq = seq;
	}
	rec.topic = kl->topic;
	if (kafka_route_check(b, ev, topic, first, &tlen) != 0) {
		if (set->dead_letter_topic == NULL) {
			kafka_drop(b, ev, seq);
			return 0;
		}
		route_topic_show(kl->topic, tlen, kl->shown, sizeof(kl->shown));
		rec.topic = set->dead_letter_topic;
		rec.aside = kl->aside;
		rec.aside_topic = kl->shown;
	}
	if (!route_is_empty(key)) {
		/* A key cut at KAFKA_KEY_MAX still partitions the same event the same way. */
		route_render(key, ev, b->agent, kl->key, sizeof(kl->key), &rec.klen);
		/* An empty key would send every such event to one partition: no key. */
		if (rec.klen > 0)
			rec.key = kl->key;
	}
	if (b->cutting && b->cut_seq != seq)
		b->cutting = false;           /* another event: the caller gave up on that one */
	/* A held run's records without headers go to librdkafka together (kafka_stage). */
	if (kl->held && !set->headers && rec.aside == NULL && !b->cutting) {
		if ((r = kafka_stage(b, ev, raw, &rec, tlen)) != -E2BIG)
			return r;
		r = 0;
	} else if (kl->nstaged > 0 && (r = kafka_stage_flush(kl)) != 0) {
		return r;                     /* the records before it first */
	}
	if (!b->cutting) {
		switch (set->format) {
		case RELAY_FORMAT_PROTOBUF:
			if (raw != NULL) {
				rec.value = raw->ptr;
				rec.vlen = raw->len;
				break;
			}
			/* An event of format 2 needs its list's Dict: encoded alone again. */
			buf_reset(&kl->value);
			if ((r = event_encode(ev, &kl->value)) == 0 &&
			    (r = kafka_event_bytes(kl->value.data, kl->value.data + kl->value.len,
			    &ev_bytes)) == 0) {
				rec.value = ev_bytes.ptr;
				rec.vlen = ev_bytes.len;
			}
			break;
		case RELAY_FORMAT_RAW:
			/* An empty message is an empty value: a NULL one would be a tombstone. */
			rec.value = ev->message.ptr != NULL ? (const void *)ev->message.ptr : "";
			rec.vlen = ev->message.len;
			break;
		default:
			buf_reset(&kl->value);
			/* value's cap is message.max.bytes: beyond it, the event is cut anyway. */
			r = event_json_cached(ev, b->agent, set->json_names, &kl->json, &kl->value);
			rec.value = kl->value.data;
			rec.vlen = kl->value.len;
			break;
		}
		if (r == 0 && kafka_record_size(rec.klen, rec.vlen,
		    kafka_headers_size(b, &rec, false)) <= set->record_max) {
			r = kafka_send(b, &rec);
			if (r == 0)
				b->produced++;
			else if (r == -EMSGSIZE)
				kafka_refuse(b, seq, rec.vlen + rec.klen, "librdkafka refused its record");
			return r;
		}
		/* Too large as one record: cut its message into pieces that each fit. */
		r = kafka_cut_plan(b, ev, &rec);
	}
	if (r == 0)
		r = kafka_cut_produce(b, ev, &rec);
	if (r == -EAGAIN)
		return r;                     /* b->cut_* keep the place */
	b->cutting = false;
	if (r == 0) {
		b->produced++;
		return 0;
	}
	if (r == -ECANCELED || r == -EMSGSIZE)
		return r;
	if (r == -ENOMEM) {
		/* Not the event's fault: it is sent again. */
		log_error("out of memory cutting event %" PRIu64 " of agent '%s' into pieces; "
		    "the batch is answered RETRY", seq, b->agent != NULL ? b->agent : "");
		kafka_batch_fail(b, RD_KAFKA_RESP_ERR__FAIL);
		return -ECANCELED;
	}
	/* Pieces before this one may be in Kafka: a consumer sees an incomplete set. */
	kafka_refuse(b, seq, ev->message.len, "a piece of it could not be produced");
	return -EMSGSIZE;
}

/* A varint at *p (before end); false if it runs past end or 10 bytes. */
static bool
kafka_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t c = *(*p)++;

		x |= (uint64_t)(c & 0x7f) << (shift < 64 ? shift : 63);
		if (!(c & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

int
kafka_event_bytes(const uint8_t *before, const uint8_t *after, struct pbslice *out)
{
	const uint8_t *p = before;

	/* Fields other than EventList.events (1) may precede the event: skipped. */
	while (p < after) {
		uint64_t tag, v;
		size_t skip;

		if (!kafka_varint(&p, after, &tag))
			return -EPROTO;
		switch (tag & 7) {
		case 0:
			if (!kafka_varint(&p, after, &v))
				return -EPROTO;
			continue;
		case 1:
		case 5:
			skip = (tag & 7) == 1 ? 8 : 4;
			break;
		case 2:
			if (!kafka_varint(&p, after, &v) || v > (uint64_t)(after - p))
				return -EPROTO;
			if (tag >> 3 == 1 && p + v == after) {
				out->ptr = p;
				out->len = (size_t)v;
				return 0;
			}
			skip = (size_t)v;
			break;
		default:
			return -EPROTO;
		}
		if (skip > (size_t)(after - p))
			return -EPROTO;
		p += skip;
	}
	return -EPROTO;
}

/* ------------------------------------------------------------------ loops */

static void
kafka_loop_on_close(uv_handle_t *h)
{
	struct kafka_loop *kl = h->data;

	kl->handles_open--;
}

int
kafka_loop_new(struct kafka *k, uv_loop_t *loop, kafka_writable_cb writable_cb, void *arg,
    struct kafka_loop **out)
{
	struct kafka_loop *kl;
	int r;

	if ((kl = calloc(1, sizeof(*kl))) == NULL)
		return -ENOMEM;
	kl->k = k;
	kl->loop = loop;
	kl->writable_cb = writable_cb;
	kl->arg = arg;
	pthread_mutex_lock(&k->set_mu);
	buf_init(&kl->value, k->set->max_msg_bytes);
	buf_init(&kl->stage, KAFKA_STAGE_BYTES + k->set->max_msg_bytes + KAFKA_KEY_MAX);
	pthread_mutex_unlock(&k->set_mu);
	event_json_cache_init(&kl->json);
	kl->staged = calloc(KAFKA_STAGE_RECORDS, sizeof(*kl->staged));
	kl->msgs = calloc(KAFKA_STAGE_RECORDS, sizeof(*kl->msgs));
	if (kl->staged == NULL || kl->msgs == NULL) {
		free(kl->staged);
		free(kl->msgs);
		free(kl);
		return -ENOMEM;
	}
	if ((r = pthread_mutex_init(&kl->mu, NULL)) != 0) {
		free(kl->staged);
		free(kl->msgs);
		free(kl);
		return -r;
	}
	if ((r = pthread_mutex_init(&kl->spent_mu, NULL)) != 0) {
		pthread_mutex_destroy(&kl->mu);
		free(kl);
		return -r;
	}
	if ((r = uv_async_init(loop, &kl->async, kafka_loop_on_async)) != 0) {
		pthread_mutex_destroy(&kl->spent_mu);
		pthread_mutex_destroy(&kl->mu);
		free(kl->staged);
		free(kl->msgs);
		free(kl);
		return r;
	}
	uv_timer_init(loop, &kl->timer);
	kl->async.data = kl;
	kl->timer.data = kl;
	kl->handles_open = 2;
	/* Only unanswered batches (the timer) keep the loop alive. */
	uv_unref((uv_handle_t *)&kl->async);
	pthread_mutex_lock(&k->mu);
	kl->next = k->loops;
	k->loops = kl;
	pthread_mutex_unlock(&k->mu);
	*out = kl;
	return 0;
}

void
kafka_loop_close(struct kafka_loop *kl)
{
	struct kafka_batch *b, *next;

	if (kl->closing)
		return;
	kl->closing = true;
	/* Batches whose reports are all in get their real answer first. */
	kafka_loop_drain(kl);
	for (b = kl->all_head; b != NULL; b = next) {
		next = b->all_next;
		kafka_batch_answer(b, KAFKA_RETRY, "the relay is stopping");
	}
	kafka_stage_drop(kl);
	pthread_mutex_lock(&kl->mu);
	kl->closed = true;
	if (kl->blocked) {
		kl->blocked = false;
		atomic_fetch_sub(&kl->k->nblocked, 1);
	}
	pthread_mutex_unlock(&kl->mu);
	/* Closed: the poller gives it no more; a producer a reload replaced may wait for these. */
	kafka_spent_free(kl);
	uv_close((uv_handle_t *)&kl->timer, kafka_loop_on_close);
	uv_close((uv_handle_t *)&kl->async, kafka_loop_on_close);
}

/* Frees kl and its batches: no report can reach them any more. */
static void
kafka_loop_free(struct kafka_loop *kl)
{
	struct kafka_batch *b, *next;

	for (b = kl->all_head; b != NULL; b = next) {
		next = b->all_next;
		kafka_settings_unref(b->set);
		free(b);
	}
	buf_free(&kl->value);
	buf_free(&kl->stage);
	free(kl->staged);
	free(kl->msgs);
	event_json_cache_free(&kl->json);
	free(kl->fields);
	pthread_mutex_destroy(&kl->spent_mu);
	pthread_mutex_destroy(&kl->mu);
	free(kl);
}

/* --------------------------------------------------------------- producer */

static int
kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, const char *what)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		log_error("Kafka producer setting %s%s=%s refused: %s", what, name, value, errstr);
		return -EINVAL;
	}
	return 0;
}

static uint64_t
kafka_conf_u64(const rd_kafka_conf_t *conf, const char *name)
{
	char v[64];
	size_t n = sizeof(v);

	if (rd_kafka_conf_get(conf, name, v, &n) != RD_KAFKA_CONF_OK)
		return 0;
	return strtoull(v, NULL, 10);
}

/* What the producer's settings come to, read back from librdkafka. */
struct kafka_limits {
	size_t max_msg_bytes;
	uint64_t queue_max_bytes, queue_max_msgs;
};

/* The producer's settings for k's configuration and budget. */
/*
 * sasl.password from the first line of file. Read at each producer's
 * creation, so a rotated password applies to the next producer; the
 * password never sits in the YAML, in the environment or in a log.
 */
static int
kafka_set_password(rd_kafka_conf_t *conf, const char *file)
{
	char pw[1024], errstr[512];
	FILE *f = fopen(file, "re");
	size_t n;
	int r = 0;

	if (f == NULL) {
		log_error("cannot read kafka.sasl_password_file %s: %s", file, strerror(errno));
		return -errno;
	}
	if (fgets(pw, sizeof(pw), f) == NULL) {
		log_error("kafka.sasl_password_file %s is empty: its first line must be the "
		    "SASL password", file);
		r = -EINVAL;
	} else if ((n = strcspn(pw, "\r\n")) == sizeof(pw) - 1) {
		log_error("kafka.sasl_password_file %s: the password is longer than %zu bytes",
		    file, sizeof(pw) - 2);
		r = -EINVAL;
	} else {
		pw[n] = '\0';
		if (rd_kafka_conf_set(conf, "sasl.password", pw, errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK) {
			log_error("kafka.sasl_password_file %s: librdkafka refused the password: %s",
			    file, errstr);
			r = -EINVAL;
		}
	}
	explicit_bzero(pw, sizeof(pw));
	fclose(f);
	return r;
}

/* librdkafka 2.6.1 fixed the SCRAM client-final nonce (librdkafka#4895). */
#define KAFKA_SCRAM_FIXED_VERSION 0x020601ff

/*
 * SCRAM with a librdkafka before 2.6.1 fails against Kafka 4 brokers,
 * which check the nonce of the client's final message as RFC 5802 says;
 * the brokers only answer "invalid credentials", so say why at start.
 */
static void
kafka_check_sasl(rd_kafka_conf_t *conf)
{
	char mech[64];
	size_t len = sizeof(mech);

	if (rd_kafka_conf_get(conf, "sasl.mechanisms", mech, &len) == RD_KAFKA_CONF_OK &&
	    strncmp(mech, "SCRAM", 5) == 0 && rd_kafka_version() < KAFKA_SCRAM_FIXED_VERSION)
		log_warn("kafka.properties sasl.mechanisms %s: this relay runs librdkafka %s, and "
		    "SCRAM with Kafka 4 brokers needs librdkafka 2.6.1 or later (older ones send a "
		    "final message Kafka 4 refuses as invalid credentials): with Kafka 4 use PLAIN "
		    "over SASL_SSL, or a newer librdkafka", mech, rd_kafka_version_str());
}

static int
kafka_conf(struct kafka *k, const struct relay_config *cfg, rd_kafka_conf_t **out,
    struct kafka_limits *lim)
{
	uint64_t queue_bytes = k->queue_budget;
	const struct config_addr *brokers = cfg->kafka.brokers.items;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char servers[4096], num[32];
	size_t n = 0;
	int r = 0;

	servers[0] = '\0';
	for (size_t i = 0; i < cfg->kafka.brokers.n; i++) {
		int w = snprintf(servers + n, sizeof(servers) - n, "%s%s", i ? "," : "",
		    brokers[i].text);

		if (w < 0 || (size_t)w >= sizeof(servers) - n) {
			log_error("kafka.brokers is longer than %zu bytes: list fewer brokers "
			    "(a few are enough to bootstrap)", sizeof(servers));
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
		n += (size_t)w;
	}
	r |= kafka_set(conf, "client.id", "logferry-relay", "");
	r |= kafka_set(conf, "bootstrap.servers", servers, "");
	/* Guarantee 2: an Ack means every in-sync replica has the events, once. */
	r |= kafka_set(conf, "enable.idempotence", "true", "");
	r |= kafka_set(conf, "acks", "all", "");
	snprintf(num, sizeof(num), "%" PRIu64, cfg->kafka.delivery_timeout_ms);
	r |= kafka_set(conf, "message.timeout.ms", num, "");
	r |= kafka_set(conf, "linger.ms", "5", "");
	/*
	 * A topic missing from the metadata fails its records as unknown only
	 * after this; at its default (30 s) they time out first, and the relay
	 * could only say "timed out" where it should say "does not exist".
	 */
	snprintf(num, sizeof(num), "%" PRIu64, cfg->kafka.delivery_timeout_ms / 2 < 30000 ?
	    cfg->kafka.delivery_timeout_ms / 2 : 30000);
	r |= kafka_set(conf, "topic.metadata.propagation.max.ms", num, "");
	/* Guarantee 3: half of the budget for payloads, half for librdkafka's per-record overhead. */
	snprintf(num, sizeof(num), "%" PRIu64, queue_bytes / 2 / 1024);
	r |= kafka_set(conf, "queue.buffering.max.kbytes", num, "");
	snprintf(num, sizeof(num), "%" PRIu64, queue_bytes / 2 / KAFKA_MSG_OVERHEAD <
	    KAFKA_MAX_QUEUE_MSGS ? queue_bytes / 2 / KAFKA_MSG_OVERHEAD : KAFKA_MAX_QUEUE_MSGS);
	r |= kafka_set(conf, "queue.buffering.max.messages", num, "");
	for (size_t i = 0; i < cfg->kafka.properties.n; i++)
		r |= kafka_set(conf, cfg->kafka.properties.items[i].key,
		    cfg->kafka.properties.items[i].value, "kafka.properties.");
	if (r == 0 && cfg->kafka.sasl_password_file != NULL)
		r = kafka_set_password(conf, cfg->kafka.sasl_password_file);
	if (r == 0)
		kafka_check_sasl(conf);
	if (r != 0) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	lim->max_msg_bytes = (size_t)kafka_conf_u64(conf, "message.max.bytes");
	lim->queue_max_bytes = kafka_conf_u64(conf, "queue.buffering.max.kbytes") * 1024;
	lim->queue_max_msgs = kafka_conf_u64(conf, "queue.buffering.max.messages");
	/* A record that can never fit in the queue would wait for room forever. */
	if (lim->queue_max_bytes < 2 * (uint64_t)lim->max_msg_bytes) {
		log_warn("librdkafka's queue (%" PRIu64 " KiB) holds less than two records of "
		    "message.max.bytes (%zu): raising it to that; raise memory_limit",
		    lim->queue_max_bytes / 1024, lim->max_msg_bytes);
		lim->queue_max_bytes = 2 * (uint64_t)lim->max_msg_bytes;
		snprintf(num, sizeof(num), "%" PRIu64, (lim->queue_max_bytes + 1023) / 1024);
		if (kafka_set(conf, "queue.buffering.max.kbytes", num, "") != 0) {
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
	}
	rd_kafka_conf_set_dr_msg_cb(conf, kafka_on_delivery);
	rd_kafka_conf_set_error_cb(conf, kafka_on_error);
	rd_kafka_conf_set_log_cb(conf, kafka_on_log);
	rd_kafka_conf_set_opaque(conf, k);
	*out = conf;
	return 0;
}

/* A producer with conf, which it takes whatever the outcome. */
static rd_kafka_t *
kafka_rk_new(rd_kafka_conf_t *conf)
{
	rd_kafka_t *rk;
	char errstr[512];

	/* rd_kafka_new takes conf only when it succeeds. */
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) == NULL) {
		log_error("cannot create the Kafka producer: %s", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/*
 * A producer from conf (taken whatever the outcome), with what is kept
 * beside it: a copy of its settings for the poller (a recreate), one for
 * the main thread (a reload compares with it), and the password file's
 * name (NULL: none). Returns 0, or a negative error after logging it; the
 * caller frees what was set.
 */
static int
kafka_producer_make(rd_kafka_conf_t *conf, const char *password_file, rd_kafka_t **rk,
    rd_kafka_conf_t **rk_conf, rd_kafka_conf_t **last_conf, char **pwfile)
{
	*rk_conf = rd_kafka_conf_dup(conf);
	*last_conf = rd_kafka_conf_dup(conf);
	if (password_file != NULL && (*pwfile = strdup(password_file)) == NULL) {
		log_error("out of memory creating the Kafka producer");
		rd_kafka_conf_destroy(conf);
		return -ENOMEM;
	}
	if ((*rk = kafka_rk_new(conf)) == NULL)
		return -EINVAL;
	return 0;
}

/* Whether two dumps (name, value pairs) are the same, but for the entry named skip. */
static bool
kafka_dump_same(const char **da, size_t na, const char **db, size_t nb, const char *skip)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i + 1 < na; i += 2)
		if (strcmp(da[i], db[i]) != 0 ||
		    (strcmp(da[i], skip) != 0 && strcmp(da[i + 1], db[i + 1]) != 0))
			return false;
	return true;
}

/*
 * Whether two producer settings are the same, property by property (the
 * SASL password read from its file included): a reload that changes
 * nothing of them keeps the running producer. Topic-level properties
 * (message.timeout.ms, ...) live in a conf of their own, which the
 * producer's dump shows only as a pointer.
 */
static bool
kafka_conf_same(rd_kafka_conf_t *a, rd_kafka_conf_t *b)
{
	rd_kafka_topic_conf_t *ta = rd_kafka_conf_get_default_topic_conf(a);
	rd_kafka_topic_conf_t *tb = rd_kafka_conf_get_default_topic_conf(b);
	size_t na, nb;
	const char **da = rd_kafka_conf_dump(a, &na), **db = rd_kafka_conf_dump(b, &nb);
	bool same = kafka_dump_same(da, na, db, nb, "default_topic_conf");

	rd_kafka_conf_dump_free(da, na);
	rd_kafka_conf_dump_free(db, nb);
	if (!same || (ta == NULL) != (tb == NULL))
		return false;
	if (ta == NULL)
		return true;
	da = rd_kafka_topic_conf_dump(ta, &na);
	db = rd_kafka_topic_conf_dump(tb, &nb);
	same = kafka_dump_same(da, na, db, nb, "");
	rd_kafka_conf_dump_free(da, na);
	rd_kafka_conf_dump_free(db, nb);
	return same;
}

/* The reloadable settings of cfg with the producer limits lim; logs a bad template. */
static int
kafka_settings_new(const struct relay_config *cfg, const struct kafka_limits *lim,
    struct kafka_settings **out)
{
	struct kafka_settings *set = calloc(1, sizeof(*set));
	char why[256], path[96];
	int r;

	if (set == NULL) {
		log_error("out of memory for the Kafka settings");
		return -ENOMEM;
	}
	atomic_init(&set->refs, 1);
	if ((r = route_table_new(cfg, &set->routes, path, sizeof(path), why, sizeof(why))) != 0) {
		log_error("%s: %s", path, why);
		kafka_settings_unref(set);
		return r;
	}
	if ((set->routed = calloc(route_table_routes(set->routes) + 1, sizeof(*set->routed))) == NULL) {
		log_error("out of memory for the Kafka settings");
		kafka_settings_unref(set);
		return -ENOMEM;
	}
	if (cfg->kafka.dead_letter_topic != NULL &&
	    (set->dead_letter_topic = strdup(cfg->kafka.dead_letter_topic)) == NULL) {
		log_error("out of memory for the Kafka settings");
		kafka_settings_unref(set);
		return -ENOMEM;
	}
	set->format = cfg->kafka.format;
	set->json_names = cfg->kafka.json_field_names == RELAY_JSON_NAMES_HIVE ?
	    EVENT_JSON_NAMES_HIVE : EVENT_JSON_NAMES_ORIGINAL;
	set->delivery_timeout_ms = cfg->kafka.delivery_timeout_ms;
	set->headers = cfg->kafka.headers;
	set->max_msg_bytes = lim->max_msg_bytes;
	set->record_max = kafka_record_limit(lim->max_msg_bytes);
	*out = set;
	return 0;
}

/* Purges what rk holds, serves the reports this gives (answers RETRY), destroys it. */
static void
kafka_retire(struct kafka *k, rd_kafka_t *rk)
{
	uint64_t deadline = kafka_now_ms() + KAFKA_DRAIN_MS;
	int left;

	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	/* Records of rk held for a loop count in its queue, and a closed loop frees none. */
	kafka_spent_reclaim(k);
	while ((left = rd_kafka_outq_len(rk)) > 0 && kafka_now_ms() < deadline)
		kafka_serve(k, rk, 10);
	if (left > 0)
		log_error("%d Kafka record(s) got no delivery report before the producer was "
		    "destroyed; their batches are answered RETRY at kafka.delivery_timeout", left);
	rd_kafka_destroy(rk);
}

/* On the poller: the current producer is dead, put a new one in its place. */
static void
kafka_recreate(struct kafka *k, uint64_t *next_try)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *old, *rk;

	if (kafka_now_ms() < *next_try)
		return;
	/* The same settings, so the same limits; the password as its file says now. */
	conf = rd_kafka_conf_dup(k->rk_conf);
	if (k->rk_password_file != NULL && kafka_set_password(conf, k->rk_password_file) != 0) {
		rd_kafka_conf_destroy(conf);
		conf = NULL;
	}
	if (conf == NULL || (rk = kafka_rk_new(conf)) == NULL) {
		log_error("cannot recreate the Kafka producer after its fatal error; trying "
		    "again in %d ms, batches are answered RETRY meanwhile", KAFKA_RECREATE_RETRY_MS);
		*next_try = kafka_now_ms() + KAFKA_RECREATE_RETRY_MS;
		return;
	}
	atomic_store(&k->fatal, false);
	pthread_rwlock_wrlock(&k->rk_lock);
	kafka_topics_clear(k);
	old = k->rk;
	k->rk = rk;
	pthread_rwlock_unlock(&k->rk_lock);
	kafka_retire(k, old);
	atomic_fetch_add(&k->st.recreated, 1);
	atomic_fetch_add(&k->generation, 1);
	log_info("a new Kafka producer replaced the failed one");
}

/*
 * On the poller: puts a reload's producer in place. The one it replaces
 * keeps what it holds: it goes on delivering, and its reports answer
 * their batches as before (kafka_retiring_poll); a failed one is purged.
 */
static void
kafka_take_next(struct kafka *k)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *old, *rk;
	uint64_t qbytes, qmsgs;
	char *pwfile;

	pthread_mutex_lock(&k->mu);
	rk = k->next_rk;
	conf = k->next_conf;
	pwfile = k->next_password_file;
	k->next_password_file = NULL;
	qbytes = k->next_queue_max_bytes;
	qmsgs = k->next_queue_max_msgs;
	k->next_rk = NULL;
	k->next_conf = NULL;
	pthread_mutex_unlock(&k->mu);
	if (rk == NULL)
		return;
	pthread_rwlock_wrlock(&k->rk_lock);
	kafka_topics_clear(k);
	old = k->rk;
	k->rk = rk;
	pthread_rwlock_unlock(&k->rk_lock);
	atomic_store(&k->queue_max_bytes, qbytes);
	atomic_store(&k->queue_max_msgs, qmsgs);
	rd_kafka_conf_destroy(k->rk_conf);
	k->rk_conf = conf;
	free(k->rk_password_file);
	k->rk_password_file = pwfile;
	atomic_fetch_add(&k->generation, 1);
	if (atomic_exchange(&k->fatal, false) || k->nretiring == KAFKA_RETIRING_MAX) {
		log_info("the new Kafka producer takes every new record; the one it replaced "
		    "had failed and is purged (its batches are answered RETRY)");
		kafka_retire(k, old);
		return;
	}
	k->retiring[k->nretiring++] = old;
	atomic_store(&k->retiring_now, k->nretiring);
	log_info("the new Kafka producer takes every new record; the one it replaced delivers "
	    "the %d record(s) it holds, then closes", rd_kafka_outq_len(old));
}

/* On the poller: serves the replaced producers' reports; closes those that hold nothing more. */
static void
kafka_retiring_poll(struct kafka *k)
{
	for (int i = 0; i < k->nretiring;) {
		rd_kafka_t *rk = k->retiring[i];

		kafka_serve(k, rk, 0);
		/* Queued, in flight, or a report not served yet. */
		if (rd_kafka_outq_len(rk) > 0) {
			i++;
			continue;
		}
		/* A loop may be destroying its last event still: wait for it to finish. */
		kafka_spent_reclaim(k);
		rd_kafka_destroy(rk);
		k->retiring[i] = k->retiring[--k->nretiring];
		atomic_store(&k->retiring_now, k->nretiring);
		log_info("the Kafka producer a reload replaced has a report for every record it "
		    "held and is closed");
	}
}

static bool
kafka_has_room(struct kafka *k)
{
	uint64_t msgs = atomic_load(&k->queue_max_msgs);

	return atomic_load(&k->queued_bytes) <= atomic_load(&k->queue_max_bytes) / 2 &&
	    (msgs == 0 || atomic_load(&k->queued_msgs) <= msgs / 2);
}

/*
 * librdkafka bounds each producer's queue; while a reload's replaced
 * producer still holds records, this bounds them all together (guarantee 3).
 * Counts include the record being produced, or the staged records being
 * produced together (kafka_stage_flush: 256 KiB at most, all refused
 * together when over the bound, so the bound holds exactly).
 */
static bool
kafka_over_bound(struct kafka *k)
{
	uint64_t msgs;

	if (atomic_load(&k->retiring_now) == 0)
		return false;
	msgs = atomic_load(&k->queue_max_msgs);
	return atomic_load(&k->queued_bytes) > atomic_load(&k->queue_max_bytes) ||
	    (msgs != 0 && atomic_load(&k->queued_msgs) > msgs);
}

/* On the poller: loops that met a full queue are told when it drained below half. */
static void
kafka_wake_writable(struct kafka *k)
{
	if (atomic_load(&k->nblocked) == 0 || !kafka_has_room(k))
		return;
	pthread_mutex_lock(&k->mu);
	for (struct kafka_loop *kl = k->loops; kl != NULL; kl = kl->next) {
		pthread_mutex_lock(&kl->mu);
		if (kl->blocked) {
			kl->blocked = false;
			atomic_fetch_sub(&k->nblocked, 1);
			kl->wake_writable = true;
			if (!kl->closed)
				uv_async_send(&kl->async);
		}
		pthread_mutex_unlock(&kl->mu);
	}
	pthread_mutex_unlock(&k->mu);
}

/*
 * The poller: serves delivery reports and errors of the producer and of
 * those a reload replaced, puts a reload's producer in place, and replaces
 * the producer after a fatal error (librdkafka forbids destroying a
 * producer from its own callbacks). Only this thread writes k->rk.
 */
static void *
kafka_poll_main(void *arg)
{
	struct kafka *k = arg;
	uint64_t next_try = 0;

	while (!atomic_load(&k->stop)) {
		kafka_serve_events(k, k->nretiring > 0 ? KAFKA_RETIRING_POLL_MS : KAFKA_POLL_MS);
		kafka_retiring_poll(k);
		kafka_take_next(k);
		if (atomic_load(&k->fatal))
			kafka_recreate(k, &next_try);
		kafka_wake_writable(k);
	}
	return NULL;
}

int
kafka_new(const struct relay_config *cfg, uint64_t queue_bytes, struct kafka **out)
{
	pthread_rwlockattr_t attr;
	struct kafka_limits lim = { 0 };
	rd_kafka_conf_t *conf;
	struct kafka *k;
	int r;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		log_error("out of memory creating the Kafka producer");
		return -ENOMEM;
	}
	if ((r = kafka_settings_new(cfg, &lim, &k->set)) != 0) {
		free(k);
		return r;
	}
	/* Writers first: a stream of producing workers must not starve a recreate. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&k->rk_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&k->mu, NULL);
	pthread_mutex_init(&k->set_mu, NULL);
	pthread_mutex_init(&k->trouble_mu, NULL);
	pthread_mutex_init(&k->topics_mu, NULL);
	k->queue_budget = queue_bytes < KAFKA_MIN_QUEUE_BYTES ? KAFKA_MIN_QUEUE_BYTES : queue_bytes;
	if ((r = kafka_conf(k, cfg, &conf, &lim)) != 0)
		goto fail;
	if ((r = kafka_producer_make(conf, cfg->kafka.sasl_password_file, &k->rk, &k->rk_conf,
	    &k->last_conf, &k->rk_password_file)) != 0)
		goto fail;
	k->set->max_msg_bytes = lim.max_msg_bytes;
	k->set->record_max = kafka_record_limit(lim.max_msg_bytes);
	atomic_init(&k->delivery_timeout_ms, cfg->kafka.delivery_timeout_ms);
	atomic_init(&k->queue_max_bytes, lim.queue_max_bytes);
	atomic_init(&k->queue_max_msgs, lim.queue_max_msgs);
	atomic_init(&k->generation, 1);
	if ((r = pthread_create(&k->poller, NULL, kafka_poll_main, k)) != 0) {
		log_error("cannot start the Kafka delivery report thread: %s", strerror(r));
		r = -r;
		rd_kafka_destroy(k->rk);
		goto fail;
	}
	k->poller_started = true;
	*out = k;
	return 0;
fail:
	free(k->rk_password_file);
	if (k->last_conf != NULL)
		rd_kafka_conf_destroy(k->last_conf);
	if (k->rk_conf != NULL)
		rd_kafka_conf_destroy(k->rk_conf);
	pthread_mutex_destroy(&k->trouble_mu);
	pthread_mutex_destroy(&k->set_mu);
	pthread_mutex_destroy(&k->mu);
	pthread_mutex_destroy(&k->topics_mu);
	pthread_rwlock_destroy(&k->rk_lock);
	kafka_settings_unref(k->set);
	free(k);
	return r;
}

/* A reload prepared: everything it needs built, nothing of the running one changed yet. */
struct kafka_reload {
	struct kafka_settings *set;
	rd_kafka_t *rk;               /* NULL: the running producer stays */
	rd_kafka_conf_t *rk_conf;     /* copies of rk's settings: the poller's, the main thread's */
	rd_kafka_conf_t *last_conf;
	char *password_file;          /* kafka.sasl_password_file, NULL: none */
	struct kafka_limits lim;
};

void
kafka_reload_cancel(struct kafka_reload *rl)
{
	if (rl == NULL)
		return;
	kafka_settings_unref(rl->set);
	if (rl->rk != NULL)
		rd_kafka_destroy(rl->rk);
	if (rl->rk_conf != NULL)
		rd_kafka_conf_destroy(rl->rk_conf);
	if (rl->last_conf != NULL)
		rd_kafka_conf_destroy(rl->last_conf);
	free(rl->password_file);
	free(rl);
}

int
kafka_reload_prepare(struct kafka *k, const struct relay_config *fresh, struct kafka_reload **out)
{
	struct kafka_reload *rl = calloc(1, sizeof(*rl));
	rd_kafka_conf_t *conf;
	bool pending;
	int r;

	if (rl == NULL) {
		log_error("SIGHUP: out of memory preparing the Kafka settings");
		return -ENOMEM;
	}
	if ((r = kafka_conf(k, fresh, &conf, &rl->lim)) != 0)
		goto fail;
	if (kafka_conf_same(conf, k->last_conf)) {
		rd_kafka_conf_destroy(conf);
		pthread_mutex_lock(&k->set_mu);
		rl->lim.max_msg_bytes = k->set->max_msg_bytes;
		pthread_mutex_unlock(&k->set_mu);
	} else {
		pthread_mutex_lock(&k->mu);
		pending = k->next_rk != NULL;
		pthread_mutex_unlock(&k->mu);
		/* A pending one is replaced, not added: it has produced nothing. */
		if (atomic_load(&k->retiring_now) + (pending ? 0 : 1) > KAFKA_RETIRING_MAX) {
			log_error("SIGHUP: %d Kafka producers replaced by earlier reloads still deliver "
			    "their records (each for kafka.delivery_timeout at most): reload again "
			    "once they are closed", KAFKA_RETIRING_MAX);
			rd_kafka_conf_destroy(conf);
			r = -EBUSY;
			goto fail;
		}
		if ((r = kafka_producer_make(conf, fresh->kafka.sasl_password_file, &rl->rk,
		    &rl->rk_conf, &rl->last_conf, &rl->password_file)) != 0)
			goto fail;
	}
	if ((r = kafka_settings_new(fresh, &rl->lim, &rl->set)) != 0)
		goto fail;
	*out = rl;
	return 0;
fail:
	log_error("SIGHUP: the running Kafka producer and settings stay");
	kafka_reload_cancel(rl);
	return r;
}

bool
kafka_reload_new_producer(const struct kafka_reload *rl)
{
	return rl->rk != NULL;
}

void
kafka_reload_commit(struct kafka *k, struct kafka_reload *rl)
{
	struct kafka_settings *old;
	rd_kafka_t *unused = NULL;
	rd_kafka_conf_t *unused_conf = NULL;
	char *unused_pw = NULL;

	pthread_mutex_lock(&k->set_mu);
	old = k->set;
	k->set = rl->set;
	pthread_mutex_unlock(&k->set_mu);
	rl->set = NULL;
	kafka_settings_unref(old);
	atomic_store(&k->delivery_timeout_ms, k->set->delivery_timeout_ms);
	if (rl->rk != NULL) {
		pthread_mutex_lock(&k->mu);
		unused = k->next_rk;
		unused_conf = k->next_conf;
		unused_pw = k->next_password_file;
		k->next_rk = rl->rk;
		k->next_conf = rl->rk_conf;
		k->next_password_file = rl->password_file;
		k->next_queue_max_bytes = rl->lim.queue_max_bytes;
		k->next_queue_max_msgs = rl->lim.queue_max_msgs;
		pthread_mutex_unlock(&k->mu);
		rd_kafka_conf_destroy(k->last_conf);
		k->last_conf = rl->last_conf;
		rl->rk = NULL;
		rl->rk_conf = rl->last_conf = NULL;
		rl->password_file = NULL;
		/* An earlier reload's producer the poller had not taken yet: it never produced. */
		if (unused != NULL) {
			rd_kafka_destroy(unused);
			rd_kafka_conf_destroy(unused_conf);
			free(unused_pw);
		}
	}
	kafka_reload_cancel(rl);
}

int
kafka_flush(struct kafka *k, uint64_t timeout_ms)
{
	uint64_t deadline = kafka_now_ms() + timeout_ms;

	/* The poller serves the reports; here we only watch the count fall. */
	while (atomic_load(&k->queued_msgs) > 0) {
		if (kafka_now_ms() >= deadline)
			return -ETIMEDOUT;
		kafka_sleep_ms(5);
	}
	return 0;
}

void
kafka_free(struct kafka *k)
{
	struct kafka_loop *kl, *next;

	if (k == NULL)
		return;
	for (kl = k->loops; kl != NULL; kl = kl->next) {
		/* Its handles would outlive their memory: a broken invariant. */
		if (kl->handles_open != 0) {
			log_error("kafka_free: a kafka_loop is still open (close it and run its loop first)");
			abort();
		}
	}
	atomic_store(&k->stop, true);
	if (k->poller_started)
		pthread_join(k->poller, NULL);
	/* Reports served here reach closed loops only: plain bookkeeping. */
	for (int i = 0; i < k->nretiring; i++)
		kafka_retire(k, k->retiring[i]);
	if (k->next_rk != NULL) {
		rd_kafka_destroy(k->next_rk);
		rd_kafka_conf_destroy(k->next_conf);
		free(k->next_password_file);
	}
	free(k->rk_password_file);
	kafka_topics_clear(k);
	kafka_retire(k, k->rk);
	for (kl = k->loops; kl != NULL; kl = next) {
		next = kl->next;
		kafka_loop_free(kl);
	}
	rd_kafka_conf_destroy(k->rk_conf);
	rd_kafka_conf_destroy(k->last_conf);
	pthread_mutex_destroy(&k->trouble_mu);
	pthread_mutex_destroy(&k->set_mu);
	pthread_mutex_destroy(&k->mu);
	pthread_mutex_destroy(&k->topics_mu);
	pthread_rwlock_destroy(&k->rk_lock);
	kafka_settings_unref(k->set);
	free(k);
}

void
kafka_loop_hold(struct kafka_loop *kl)
{
	/* Not recursive: with writers first, a second read lock would wait for a waiting swap. */
	assert(!kl->held);
	pthread_rwlock_rdlock(&kl->k->rk_lock);
	kl->held = true;
	kl->ts_left = 0;              /* the run's first record reads the clock */
}

void
kafka_loop_release(struct kafka_loop *kl)
{
	assert(kl->held);
	/*
	 * The run's last records go now, through the producer the run read.
	 * A full queue keeps them staged: they go first once it drained.
	 */
	if (kl->nstaged > 0 && !kl->stalled)
		(void)kafka_stage_flush(kl);
	kl->held = false;
	pthread_rwlock_unlock(&kl->k->rk_lock);
}

void
kafka_get_stats(struct kafka *k, struct kafka_stats *st)
{
	uint64_t produced = 0, pieces = 0, queue_full = 0;

	/* Loops stay listed until kafka_free: a closed loop's records still count. */
	pthread_mutex_lock(&k->mu);
	for (struct kafka_loop *kl = k->loops; kl != NULL; kl = kl->next) {
		produced += atomic_load_explicit(&kl->st.produced, memory_order_relaxed);
		pieces += atomic_load_explicit(&kl->st.pieces, memory_order_relaxed);
		queue_full += atomic_load_explicit(&kl->st.queue_full, memory_order_relaxed);
	}
	pthread_mutex_unlock(&k->mu);
	st->produced = atomic_load(&k->st.produced) + produced;
	st->delivered = atomic_load(&k->st.delivered);
	st->failed = atomic_load(&k->st.failed);
	st->refused_oversize = atomic_load(&k->st.refused_oversize);
	st->queue_full = queue_full;
	st->batches_ok = atomic_load(&k->st.batches_ok);
	st->batches_retry = atomic_load(&k->st.batches_retry);
	st->recreated = atomic_load(&k->st.recreated);
	st->events_cut = atomic_load(&k->st.events_cut);
	st->pieces = pieces;
	st->dead_lettered = atomic_load(&k->st.dead_lettered);
	st->refused_broker = atomic_load(&k->st.refused_broker);
	st->generation = atomic_load(&k->generation);
	st->retiring = (uint64_t)atomic_load(&k->retiring_now);
	for (int i = 0; i < KAFKA_ERROR_KINDS; i++)
		st->errors[i] = atomic_load(&k->st.errors[i]);
	for (int i = 0; i < KAFKA_ASIDE_KINDS; i++)
		st->set_aside[i] = atomic_load(&k->st.set_aside[i]);
}

size_t
kafka_route_counts(struct kafka *k, uint64_t *out, size_t max)
{
	struct kafka_settings *set;
	size_t n;

	pthread_mutex_lock(&k->set_mu);
	set = k->set;
	n = route_table_routes(set->routes) + 1;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = atomic_load_explicit(&set->routed[i], memory_order_relaxed);
	pthread_mutex_unlock(&k->set_mu);
	return n;
}

int
kafka_test_fatal_error(struct kafka *k, const char *reason)
{
	rd_kafka_resp_err_t err;

	pthread_rwlock_rdlock(&k->rk_lock);
	err = rd_kafka_test_fatal_error(k->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
	    reason);
	pthread_rwlock_unlock(&k->rk_lock);
	return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -EIO;
}
