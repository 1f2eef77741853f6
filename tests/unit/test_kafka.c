/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay/kafka against librdkafka's mock cluster, in this process: batches
 * answered after their delivery reports, records read back with a
 * consumer, brokers down and back, injected errors, oversize events, a
 * full queue, fatal producer errors, answers on the owner's loop thread,
 * a stop with batches in flight, and reloads (templates, a new producer).
 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <uv.h>

#include "common/base64.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "proto/event.h"
#include "proto/event_json.h"
#include "relay/kafka.h"
#include "relay/relay_config.h"
#include "tests/unit/log_capture.h"

#define BROKERS 3
#define TOPIC "logs.nginx_access"
#define DEAD_TOPIC "logs.dead"
#define PARTITIONS 3
#define APIKEY_PRODUCE 0
#define MAX_PROPS 8
#define MAX_BATCHES 64

/* ------------------------------------------------------------- fixture */

/* What one batch was answered, and how often, and on which thread. */
struct answer {
	bool abandoned;               /* not to be answered */
	int calls;
	enum kafka_status status;
	struct kafka_result res;
	char reason[128];
	pthread_t thread;
	uint64_t delivered_then;      /* kafka_stats.delivered at the answer */
};

struct fx {
	rd_kafka_t *mrk;                   /* hosts the mock cluster */
	rd_kafka_mock_cluster_t *mc;
	char bootstrap[256];
	struct config_addr broker;
	struct config_map_entry props[MAX_PROPS];
	struct relay_config cfg;
	struct kafka *k;
	uv_loop_t loop;
	uv_timer_t tick;
	struct kafka_loop *kl;
	pthread_t loop_thread;
	/* run_until */
	bool (*until)(struct fx *f);
	uint64_t deadline;
	/* answers of the batches begun with begin() */
	struct answer answers[MAX_BATCHES];
	int nbatches;
	/* writable callbacks */
	int writable_calls;
	pthread_t writable_thread;
	void (*on_writable)(struct fx *f);
	/* the events */
	struct event ev;
	struct event_field fields[4];
	char message[64 * 1024];
	char user[32];
};

static void
fx_on_writable(struct kafka_loop *kl, void *arg)
{
	struct fx *f = arg;

	(void)kl;
	f->writable_calls++;
	f->writable_thread = pthread_self();
	if (f->on_writable != NULL)
		f->on_writable(f);
}

/* What fx_start gives the kafka beside its arguments. */
static const char *fx_key = "${host}";
static const char *fx_cfg_password_file;   /* kafka.sasl_password_file of the next fx_start */
static uint64_t fx_budget = 64u << 20;

/*
 * Starts a mock cluster and a kafka on it: delivery_timeout_ms, then
 * "name", "value" property pairs ending with NULL.
 */
static struct fx *
fx_start(uint64_t delivery_timeout_ms, ...)
{
	struct fx *f = calloc(1, sizeof(*f));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];
	const char *name;
	va_list ap;
	size_t n = 0;

	assert_non_null(f);
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	f->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	assert_non_null(f->mrk);
	f->mc = rd_kafka_mock_cluster_new(f->mrk, BROKERS);
	assert_non_null(f->mc);
	assert_int_equal(rd_kafka_mock_topic_create(f->mc, TOPIC, PARTITIONS, BROKERS), 0);
	assert_int_equal(rd_kafka_mock_topic_create(f->mc, DEAD_TOPIC, PARTITIONS, BROKERS), 0);
	snprintf(f->bootstrap, sizeof(f->bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(f->mc));

	f->broker.text = f->bootstrap;
	f->cfg.id = "relay-test";
	f->cfg.kafka.brokers.n = 1;
	f->cfg.kafka.brokers.items = &f->broker;
	f->cfg.kafka.topic = "logs.${stream}";
	f->cfg.kafka.key = (char *)fx_key;
	f->cfg.kafka.format = RELAY_FORMAT_JSON;
	f->cfg.kafka.headers = true;
	f->cfg.kafka.delivery_timeout_ms = delivery_timeout_ms;
	f->cfg.kafka.sasl_password_file = (char *)fx_cfg_password_file;
	/* Reconnect quickly after a broker comes back, so tests stay short. */
	f->props[n++] = (struct config_map_entry){ "reconnect.backoff.max.ms", "200", 0 };
	va_start(ap, delivery_timeout_ms);
	while ((name = va_arg(ap, const char *)) != NULL) {
		assert_true(n < MAX_PROPS);
		f->props[n].key = (char *)name;
		f->props[n++].value = va_arg(ap, char *);
	}
	va_end(ap);
	f->cfg.kafka.properties.n = n;
	f->cfg.kafka.properties.items = f->props;

	assert_int_equal(kafka_new(&f->cfg, fx_budget, &f->k), 0);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->tick);
	f->tick.data = f;
	f->loop_thread = pthread_self();
	assert_int_equal(kafka_loop_new(f->k, &f->loop, fx_on_writable, f, &f->kl), 0);
	return f;
}

static void
fx_stop(struct fx *f)
{
	if (f->kl != NULL)
		kafka_loop_close(f->kl);
	uv_close((uv_handle_t *)&f->tick, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	kafka_free(f->k);
	rd_kafka_mock_cluster_destroy(f->mc);
	rd_kafka_destroy(f->mrk);
	free(f);
}

/* f->cfg changed: the kafka keeps nothing of it, so it is applied as a reload. */
static void
fx_apply(struct fx *f)
{
	struct kafka_reload *rl;

	assert_int_equal(kafka_reload_prepare(f->k, &f->cfg, &rl), 0);
	kafka_reload_commit(f->k, rl);
}

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void
fx_on_tick(uv_timer_t *t)
{
	struct fx *f = t->data;

	if (f->until(f) || now_ms() >= f->deadline)
		uv_stop(t->loop);
}

/* Runs the loop until until(f) holds or timeout_ms passed; returns until(f). */
static bool
fx_run_until(struct fx *f, bool (*until)(struct fx *f), uint64_t timeout_ms)
{
	f->until = until;
	f->deadline = now_ms() + timeout_ms;
	uv_timer_start(&f->tick, fx_on_tick, 5, 5);
	if (!until(f))
		uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&f->tick);
	return until(f);
}

static bool
all_answered(struct fx *f)
{
	for (int i = 0; i < f->nbatches; i++)
		if (f->answers[i].calls == 0 && !f->answers[i].abandoned)
			return false;
	return true;
}

static struct fx *global_fx;   /* the running test's, for answers that read its stats */

static void
on_answer(struct kafka_batch *b, const struct kafka_result *res, void *arg)
{
	struct answer *a = arg;
	struct kafka_stats st;

	(void)b;
	a->calls++;
	a->status = res->status;
	a->res = *res;
	snprintf(a->reason, sizeof(a->reason), "%s", res->reason != NULL ? res->reason : "");
	a->res.reason = a->reason;
	a->thread = pthread_self();
	kafka_get_stats(global_fx->k, &st);
	a->delivered_then = st.delivered;
}

/* -------------------------------------------------------------- events */

/* Event i: host web-0(i%3), user u-i, a message of msglen bytes. */
static const struct event *
event_n(struct fx *f, unsigned i, size_t msglen)
{
	static const char *const hosts[] = { "web-00", "web-01", "web-02" };
	int n;

	memset(&f->ev, 0, sizeof(f->ev));
	memset(f->fields, 0, sizeof(f->fields));
	assert_true(msglen < sizeof(f->message));
	n = snprintf(f->message, sizeof(f->message), "GET /item/%u HTTP/1.1 \"curl/8.0\" ", i);
	for (size_t j = (size_t)n; j < msglen; j++)
		f->message[j] = (char)('a' + j % 26);
	if (msglen < (size_t)n)
		msglen = (size_t)n;
	snprintf(f->user, sizeof(f->user), "u-%u", i);
	f->ev.ts = UINT64_C(1795341600123456000) + (uint64_t)i * 1000;
	f->ev.host = (struct pbslice){ (const uint8_t *)hosts[i % 3], 6 };
	f->ev.stream = (struct pbslice){ (const uint8_t *)"nginx_access", 12 };
	f->ev.source = (struct pbslice){ (const uint8_t *)"/var/log/nginx/access.log", 25 };
	f->ev.message = (struct pbslice){ (const uint8_t *)f->message, msglen };
	f->fields[0] = (struct event_field){ .key = { (const uint8_t *)"user_id", 7 },
		.type = EVENT_TEXT, .v.text = { (const uint8_t *)f->user, strlen(f->user) } };
	f->fields[1] = (struct event_field){ .key = { (const uint8_t *)"status", 6 },
		.type = EVENT_INTEGER, .v.integer = 200 + i % 5 };
	f->fields[2] = (struct event_field){ .key = { (const uint8_t *)"method", 6 },
		.type = EVENT_SLICE, .v.slice = { 0, 3 } };
	f->ev.fields = f->fields;
	f->ev.nfields = 3;
	return &f->ev;
}

static struct kafka_batch *
begin(struct fx *f)
{
	struct kafka_batch *b;

	assert_true(f->nbatches < MAX_BATCHES);
	assert_int_equal(kafka_batch_begin(f->kl, "agent-1", on_answer,
	    &f->answers[f->nbatches++], &b), 0);
	return b;
}

/* A batch of events first..first+n-1 (seq = i), ended; returns its answer. */
static struct answer *
produce_batch(struct fx *f, unsigned first, unsigned n, size_t msglen)
{
	struct kafka_batch *b = begin(f);
	struct answer *a = &f->answers[f->nbatches - 1];

	for (unsigned i = first; i < first + n; i++)
		assert_int_equal(kafka_produce(b, event_n(f, i, msglen), NULL, i), 0);
	kafka_batch_end(b);
	return a;
}

/*
 * A first batch connects the producer (metadata, producer id); with a short
 * delivery_timeout a slow start may RETRY it, so it is tried a few times.
 */
static void
warm_up(struct fx *f)
{
	struct answer *a;

	for (int attempt = 0; attempt < 10; attempt++) {
		a = produce_batch(f, 1, 10, 100);
		assert_true(fx_run_until(f, all_answered, 20000));
		if (a->status == KAFKA_OK)
			return;
	}
	fail_msg("no batch delivered while warming up");
}

/* ------------------------------------------------------------ consumer */

struct record {
	char topic[64];
	bool has_key;
	char key[64];
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	char agent[64];
	uint64_t seq;
	bool has_seq;
	char piece[48];               /* logferry-piece */
	char error[128];              /* logferry-error */
	char otopic[64];              /* logferry-original-topic */
	char ostream[64];             /* logferry-original-stream */
	size_t headers_size;          /* as librdkafka counts them */
	int64_t ts;                   /* Kafka's timestamp, ms */
};

static void
copy_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;

	out[0] = '\0';
	if (rd_kafka_message_headers(m, &h) != 0 ||
	    rd_kafka_header_get_last(h, name, &v, &n) != 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* The record's headers as kafka_header_size counts them. */
static size_t
headers_size(const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	const char *name;
	const void *v;
	size_t n, size = 0;

	if (rd_kafka_message_headers(m, &h) != 0)
		return 0;
	for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &n) == 0; i++)
		size += kafka_header_size(strlen(name), n);
	return size;
}

/*
 * Reads the records of topic from the start into recs (room for max) until
 * want arrived or timeout_ms passed, then a little longer to catch extras.
 */
static size_t
consume(struct fx *f, const char *topic, struct record *recs, size_t max, size_t want,
    uint64_t timeout_ms)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
	uint64_t deadline = now_ms() + timeout_ms;
	char errstr[256];
	rd_kafka_t *c;
	size_t n = 0;

	rd_kafka_conf_set(conf, "bootstrap.servers", f->bootstrap, errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "group.id", "test-reader", errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	assert_non_null(c);
	for (int p = 0; p < PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(c, parts), 0);
	rd_kafka_topic_partition_list_destroy(parts);
	while (n < max && now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
		char seq[32];

		if (n >= want && deadline > now_ms() + 300)
			deadline = now_ms() + 300;
		if (m == NULL)
			continue;
		if (m->err == 0) {
			struct record *r = &recs[n++];

			memset(r, 0, sizeof(*r));
			snprintf(r->topic, sizeof(r->topic), "%s", rd_kafka_topic_name(m->rkt));
			r->has_key = m->key != NULL;
			r->key_len = m->key_len < sizeof(r->key) ? m->key_len : sizeof(r->key) - 1;
			if (m->key != NULL)
				memcpy(r->key, m->key, r->key_len);
			r->value = malloc(m->len + 1);
			memcpy(r->value, m->payload, m->len);
			r->value[m->len] = '\0';     /* for strstr */
			r->value_len = m->len;
			copy_header(m, "logferry-agent", r->agent, sizeof(r->agent));
			copy_header(m, "logferry-piece", r->piece, sizeof(r->piece));
			copy_header(m, "logferry-error", r->error, sizeof(r->error));
			copy_header(m, "logferry-original-topic", r->otopic, sizeof(r->otopic));
			copy_header(m, "logferry-original-stream", r->ostream, sizeof(r->ostream));
			r->headers_size = headers_size(m);
			r->ts = rd_kafka_message_timestamp(m, NULL);
			copy_header(m, "logferry-seq", seq, sizeof(seq));
			r->has_seq = seq[0] != '\0';
			r->seq = strtoull(seq, NULL, 10);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return n;
}

static void
free_records(struct record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(recs[i].value);
	free(recs);
}

/* -------------------------------------------------------------- tests */

static void
test_batch_ok_after_every_report_and_records_read_back(void **state)
{
	enum { N = 1000 };
	struct fx *f = fx_start(10000, NULL);
	struct record *recs = calloc(N + 10, sizeof(*recs));
	struct answer *a;
	struct kafka_stats st;
	struct buf json;
	uint8_t seen[N + 1];
	size_t n;

	(void)state;
	global_fx = f;
	a = produce_batch(f, 1, N, 100);
	/* Never inside kafka_batch_end, never before the reports. */
	assert_int_equal(a->calls, 0);
	assert_true(fx_run_until(f, all_answered, 30000));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, N);
	assert_int_equal(a->res.refused, 0);
	/* Every report was in before the answer. */
	assert_int_equal(a->delivered_then, N);
	assert_true(pthread_equal(a->thread, f->loop_thread));
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.produced, N);
	assert_int_equal(st.delivered, N);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.batches_ok, 1);
	assert_int_equal(st.batches_retry, 0);

	n = consume(f, TOPIC, recs, N + 10, N, 15000);
	assert_int_equal(n, N);
	memset(seen, 0, sizeof(seen));
	buf_init(&json, 1 << 20);
	for (size_t i = 0; i < n; i++) {
		struct record *r = &recs[i];
		char host[8];

		assert_string_equal(r->topic, TOPIC);
		assert_string_equal(r->agent, "agent-1");
		assert_true(r->has_seq);
		assert_true(r->seq >= 1 && r->seq <= N);
		assert_int_equal(seen[r->seq]++, 0);
		snprintf(host, sizeof(host), "web-0%u", (unsigned)(r->seq % 3));
		assert_true(r->has_key);
		assert_int_equal(r->key_len, 6);
		assert_memory_equal(r->key, host, 6);
		/* The value is the event's JSON record with the agent id. */
		buf_reset(&json);
		assert_int_equal(event_json(event_n(f, (unsigned)r->seq, 100), "agent-1", NULL, &json), 0);
		assert_int_equal(r->value_len, json.len);
		assert_memory_equal(r->value, json.data, json.len);
	}
	buf_free(&json);
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
set_brokers(struct fx *f, bool up)
{
	for (int id = 1; id <= BROKERS; id++)
		assert_int_equal(up ? rd_kafka_mock_broker_set_up(f->mc, id) :
		    rd_kafka_mock_broker_set_down(f->mc, id), 0);
}

static void
test_brokers_down_retry_after_timeout_then_ok_when_back(void **state)
{
	struct fx *f = fx_start(2000, NULL);
	struct answer *a;
	struct kafka_stats st;
	uint64_t t0, delivered, ok_before;
	bool ok = false;

	(void)state;
	global_fx = f;
	/* Connected first, so that the outage hits a working producer. */
	warm_up(f);
	kafka_get_stats(f->k, &st);
	delivered = st.delivered;

	set_brokers(f, false);
	t0 = now_ms();
	a = produce_batch(f, 100, 50, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_RETRY);
	assert_true(now_ms() - t0 >= 1900);
	assert_true(now_ms() - t0 < 15000);
	kafka_get_stats(f->k, &st);
	/* Nothing of the outage was reported delivered. */
	assert_int_equal(st.delivered, delivered);
	ok_before = st.batches_ok;

	set_brokers(f, true);
	/* librdkafka reconnects with backoff: a few batches may still RETRY. */
	for (int attempt = 0; attempt < 15 && !ok; attempt++) {
		a = produce_batch(f, 1000 + 100 * (unsigned)attempt, 20, 100);
		assert_true(fx_run_until(f, all_answered, 20000));
		assert_int_equal(a->calls, 1);
		ok = a->status == KAFKA_OK;
	}
	assert_true(ok);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.batches_ok, ok_before + 1);
	/* Every batch was answered exactly once, whatever came late. */
	fx_run_until(f, all_answered, 500);
	for (int i = 0; i < f->nbatches; i++)
		assert_int_equal(f->answers[i].calls, 1);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_retriable_produce_errors_still_end_ok_without_duplicates(void **state)
{
	enum { N = 300 };
	struct fx *f = fx_start(20000, NULL);
	struct record *recs = calloc(N + 10, sizeof(*recs));
	struct answer *a;
	struct kafka_stats st;
	uint8_t seen[N + 1];
	size_t n;

	(void)state;
	global_fx = f;
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 4,
	    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
	    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
	a = produce_batch(f, 1, N, 100);
	assert_true(fx_run_until(f, all_answered, 30000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.delivered, N);
	assert_int_equal(st.failed, 0);
	/* Idempotence: the retried requests wrote nothing twice. */
	n = consume(f, TOPIC, recs, N + 10, N, 15000);
	assert_int_equal(n, N);
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n; i++) {
		assert_true(recs[i].seq >= 1 && recs[i].seq <= N);
		assert_int_equal(seen[recs[i].seq]++, 0);
	}
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_record_size_is_what_librdkafka_counts(void **state)
{
	/* librdkafka alone (no broker): producev checks the size at once. */
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	static uint8_t value[4000];
	const char *agent = "agent-with-a-longish-id-1";
	char errstr[256];
	size_t hs, vlen;
	rd_kafka_t *rk;

	(void)state;
	rd_kafka_conf_set(conf, "message.max.bytes", "3000", errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	assert_non_null(rk);
	hs = kafka_header_size(14, strlen(agent)) + kafka_header_size(12, 5) +
	    kafka_header_size(14, 5);
	/* Every length below 64 takes one varint byte, zigzag-encoded. */
	assert_int_equal(kafka_header_size(14, 5), 1 + 14 + 1 + 5);
	assert_int_equal(kafka_header_size(14, 64), 1 + 14 + 2 + 64);
	vlen = 3000 - kafka_record_size(7, 0, hs);
	assert_int_equal(kafka_record_size(7, vlen, hs), 3000);
	for (int extra = 0; extra <= 1; extra++) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(3);
		rd_kafka_resp_err_t err;

		rd_kafka_header_add(h, "logferry-agent", -1, agent, -1);
		rd_kafka_header_add(h, "logferry-seq", -1, "12345", -1);
		rd_kafka_header_add(h, "logferry-piece", -1, "0/100", -1);
		err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_KEY("web-001", 7),
		    RD_KAFKA_V_VALUE(value, vlen + (size_t)extra), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		/* Exactly the limit is taken, one byte more is refused. */
		if (extra == 0) {
			assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
		} else {
			assert_int_equal(err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
			rd_kafka_headers_destroy(h);
		}
	}
	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE);
	rd_kafka_destroy(rk);
	/* Under librdkafka's default, a record with its batch fits a broker's default with room. */
	assert_true(kafka_record_limit(1000000) + 61 <= 1000000 - 1000000 / 100);
	assert_true(kafka_record_limit(1000000) >= 1000000 - 1000000 / 50);
	assert_true(kafka_record_limit(1000) > 36 + 64);
}

/* The "message" string of a JSON record, as written (escaped, no quotes). */
static void
json_message(const struct record *r, const uint8_t **p, size_t *n)
{
	const char *v = (const char *)r->value, *start, *end = NULL, *q;

	start = strstr(v, ",\"message\":\"");
	assert_non_null(start);
	start += strlen(",\"message\":\"");
	/* The message is followed by the fields, which event_n's do not contain. */
	for (q = start; (q = strstr(q, "\",\"fields\":{")) != NULL; q++)
		end = q;
	assert_non_null(end);
	/* Or by message_b64, which is base64 (no quote inside) just before them. */
	for (q = start; (q = strstr(q, "\",\"message_b64\":\"")) != NULL && q < end; q++)
		if (memchr(q + strlen("\",\"message_b64\":\""), '"',
		    (size_t)(end - q) - strlen("\",\"message_b64\":\"") + 1) == end)
			end = q;
	*p = (const uint8_t *)start;
	*n = (size_t)(end - start);
}

/* The one record of piece idx of count of event seq among recs. */
static const struct record *
find_piece(const struct record *recs, size_t n, uint64_t seq, size_t idx, size_t count)
{
	const struct record *found = NULL;
	char want[48];

	snprintf(want, sizeof(want), "%zu/%zu", idx, count);
	for (size_t i = 0; i < n; i++) {
		if (recs[i].seq != seq || strcmp(recs[i].piece, want) != 0)
			continue;
		assert_null(found);
		found = &recs[i];
	}
	assert_non_null(found);
	return found;
}

/*
 * The escaped pieces joined are the escaped message (whole, with its
 * quotes): no UTF-8 sequence was cut. Frees both.
 */
static void
assert_joined_json(struct buf *joined, struct buf *whole)
{
	assert_int_equal(joined->len, whole->len - 2);
	assert_memory_equal(joined->data, whole->data + 1, joined->len);
	buf_free(joined);
	buf_free(whole);
}

/*
 * The bytes of the count pieces of event seq, message_b64's where a piece is
 * not UTF-8 (some are), else its message, join into the message's bytes,
 * msg (freed).
 */
static void
assert_joined_bytes(const struct record *recs, size_t n, uint64_t seq, size_t count,
    uint8_t *msg, size_t msglen)
{
	uint8_t *joined = malloc(msglen), *dec = malloc(msglen);
	size_t off = 0, with_b64 = 0;

	assert_non_null(joined);
	assert_non_null(dec);
	for (size_t idx = 0; idx < count; idx++) {
		const struct record *r = find_piece(recs, n, seq, idx, count);
		json_error_t err;
		json_t *j = json_loadb((const char *)r->value, r->value_len, 0, &err);
		json_t *m, *b64;
		size_t len;

		assert_non_null(j);
		m = json_object_get(j, "message");
		b64 = json_object_get(j, "message_b64");
		if (b64 != NULL) {
			assert_int_equal(base64_decode((const uint8_t *)json_string_value(b64),
			    json_string_length(b64), dec, &len), 0);
			with_b64++;
		} else {
			len = json_string_length(m);
			assert_true(len <= msglen);
			memcpy(dec, json_string_value(m), len);
		}
		assert_true(off + len <= msglen);
		memcpy(joined + off, dec, len);
		off += len;
		json_decref(j);
	}
	assert_true(with_b64 > 0);
	assert_int_equal(off, msglen);
	assert_memory_equal(joined, msg, off);
	free(msg);
	free(joined);
	free(dec);
}

/* A message of n bytes with 2-, 3- and 4-byte UTF-8, escapes and an invalid byte. */
static void
mixed_message(struct fx *f, size_t n)
{
	static const char *const parts[] = { "plain ascii text ", "caf\xc3\xa9 ", "\xe2\x82\xac ",
		"\xf0\x9f\x98\x80", "\"q\" ", "back\\slash ", "\n", "\x01", "\xff" };
	size_t len = 0;

	assert_true(n < sizeof(f->message));
	for (unsigned i = 0; len < n; i = (i * 4 + 1) % 9) {
		size_t l = strlen(parts[i]);

		if (len + l > n)
			l = n - len;
		memcpy(f->message + len, parts[i], l);
		len += l;
	}
}

static void
test_events_larger_than_a_record_are_cut_into_pieces_that_reassemble(void **state)
{
	enum { MSGLEN = 60000, MAXREC = 64 };
	struct fx *f = fx_start(10000, "message.max.bytes", "10000", NULL);
	struct record *recs = calloc(MAXREC, sizeof(*recs));
	struct kafka_batch *b;
	struct answer *a;
	struct kafka_stats st;
	struct event ev;
	struct buf whole, joined;
	uint8_t *orig;
	size_t n, count = 0, limit = kafka_record_limit(10000);

	(void)state;
	global_fx = f;
	warm_up(f);
	b = begin(f);
	a = &f->answers[f->nbatches - 1];
	assert_int_equal(kafka_produce(b, event_n(f, 1, 100), NULL, 100), 0);
	ev = *event_n(f, 2, MSGLEN);
	mixed_message(f, MSGLEN);
	/* Event 3 below writes over f->message. */
	orig = malloc(MSGLEN);
	assert_non_null(orig);
	memcpy(orig, ev.message.ptr, MSGLEN);
	assert_int_equal(kafka_produce(b, &ev, NULL, 101), 0);
	buf_init(&whole, 1 << 20);
	assert_int_equal(jsonw_string(&whole, ev.message.ptr, ev.message.len), 0);
	assert_int_equal(kafka_produce(b, event_n(f, 3, 100), NULL, 102), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 3);
	assert_int_equal(a->res.refused, 0);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.events_cut, 1);
	assert_int_equal(st.refused_oversize, 0);
	assert_true(st.pieces >= 7);

	n = consume(f, TOPIC, recs, MAXREC, 10 + 2 + st.pieces, 15000);
	/* The escaped pieces joined are the escaped message: no UTF-8 sequence was cut. */
	buf_init(&joined, 1 << 20);
	for (size_t idx = 0; idx < st.pieces; idx++) {
		const struct record *r = find_piece(recs, n, 101, idx, st.pieces);
		char members[96];
		const uint8_t *p;
		size_t len;

		/* Every piece's record fits, and carries the event's other members. */
		assert_true(kafka_record_size(r->key_len, r->value_len, r->headers_size) <= limit);
		assert_string_equal(r->agent, "agent-1");
		assert_string_equal(r->key, "web-02");
		snprintf(members, sizeof(members), "\"piece_index\":%zu,\"piece_count\":%" PRIu64,
		    idx, st.pieces);
		assert_non_null(strstr((const char *)r->value, members));
		assert_non_null(strstr((const char *)r->value, "\"method\":\"pla\""));
		assert_non_null(strstr((const char *)r->value, "\"user_id\":\"u-2\""));
		json_message(r, &p, &len);
		assert_int_equal(buf_append(&joined, p, len), 0);
		count++;
	}
	assert_int_equal(count, st.pieces);
	assert_joined_json(&joined, &whole);
	assert_joined_bytes(recs, n, 101, st.pieces, orig, MSGLEN);
	/* The small events around it are whole records. */
	for (size_t i = 0; i < n; i++)
		if (recs[i].seq == 100 || recs[i].seq == 102)
			assert_string_equal(recs[i].piece, "");
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_hive_field_names_apply_to_the_records_after_a_reload(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct record *recs = calloc(4, sizeof(*recs));
	struct kafka_batch *b;
	struct answer *a;
	struct event ev;
	struct event_field fields[4];
	struct buf json;
	size_t n;

	(void)state;
	global_fx = f;
	f->cfg.kafka.json_field_names = RELAY_JSON_NAMES_HIVE;
	fx_apply(f);
	b = begin(f);
	a = &f->answers[0];
	ev = *event_n(f, 1, 100);
	memcpy(fields, ev.fields, sizeof(fields));
	fields[0].key = (struct pbslice){ (const uint8_t *)"sd.meta@1.User-Name", 19 };
	fields[1].key = (struct pbslice){ (const uint8_t *)"Method", 6 };
	ev.fields = fields;
	assert_int_equal(kafka_produce(b, &ev, NULL, 1), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	n = consume(f, TOPIC, recs, 4, 1, 15000);
	assert_int_equal(n, 1);
	buf_init(&json, 1 << 20);
	assert_int_equal(event_json_as(&ev, "agent-1", NULL, EVENT_JSON_NAMES_HIVE, &json), 0);
	assert_int_equal(recs[0].value_len, json.len);
	assert_memory_equal(recs[0].value, json.data, json.len);
	assert_non_null(memmem(json.data, json.len, "\"fields\":{\"sd_meta_1_user_name\":\"u-1\","
	    "\"method\":2", strlen("\"fields\":{\"sd_meta_1_user_name\":\"u-1\",\"method\":2")));
	assert_non_null(memmem(json.data, json.len, "\"method_2\":\"GET\"}}",
	    strlen("\"method_2\":\"GET\"}}")));
	buf_free(&json);
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_raw_pieces_join_into_the_message_bytes(void **state)
{
	enum { MSGLEN = 50000, MAXREC = 32 };
	struct fx *f = fx_start(10000, "message.max.bytes", "10000", NULL);
	struct record *recs = calloc(MAXREC, sizeof(*recs));
	struct kafka_batch *b;
	struct answer *a;
	struct kafka_stats st;
	struct event ev;
	uint8_t *joined = calloc(1, MSGLEN);
	size_t n, off = 0;

	(void)state;
	global_fx = f;
	f->cfg.kafka.format = RELAY_FORMAT_RAW;
	fx_apply(f);
	b = begin(f);
	a = &f->answers[0];
	ev = *event_n(f, 2, MSGLEN);
	mixed_message(f, MSGLEN);
	assert_int_equal(kafka_produce(b, &ev, NULL, 7), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.events_cut, 1);
	assert_true(st.pieces >= 6);
	n = consume(f, TOPIC, recs, MAXREC, st.pieces, 15000);
	assert_int_equal(n, st.pieces);
	for (size_t idx = 0; idx < n; idx++) {
		const struct record *r = find_piece(recs, n, 7, idx, n);

		assert_true(off + r->value_len <= MSGLEN);
		memcpy(joined + off, r->value, r->value_len);
		off += r->value_len;
	}
	assert_int_equal(off, MSGLEN);
	assert_memory_equal(joined, ev.message.ptr, MSGLEN);
	free(joined);
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

/* An event being cut when librdkafka's queue fills: the call again goes on from the next piece. */
static struct {
	struct kafka_batch *b;
	struct event ev;
	int again;
	int rc;
} resume;

static void
resume_on_writable(struct fx *f)
{
	(void)f;
	if ((resume.rc = kafka_produce(resume.b, &resume.ev, NULL, 42)) == -EAGAIN) {
		resume.again++;
		return;
	}
	kafka_batch_end(resume.b);
}

static void
test_pieces_go_on_after_a_full_queue_without_repeating(void **state)
{
	enum { MSGLEN = 60000, MAXREC = 32 };
	/* librdkafka takes 3 records at most, and nothing leaves before the producer connects. */
	struct fx *f = fx_start(20000, "message.max.bytes", "10000",
	    "queue.buffering.max.messages", "3", NULL);
	struct record *recs = calloc(MAXREC, sizeof(*recs));
	struct answer *a;
	struct kafka_stats st;
	struct buf whole, joined;
	size_t n;

	(void)state;
	global_fx = f;
	memset(&resume, 0, sizeof(resume));
	resume.b = begin(f);
	a = &f->answers[0];
	resume.ev = *event_n(f, 2, MSGLEN);
	mixed_message(f, MSGLEN);
	assert_int_equal(kafka_produce(resume.b, &resume.ev, NULL, 42), -EAGAIN);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.pieces, 3);
	f->on_writable = resume_on_writable;
	assert_true(fx_run_until(f, all_answered, 30000));
	assert_int_equal(resume.rc, 0);
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 1);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.events_cut, 1);
	assert_true(st.pieces >= 7);
	/* Every piece once, joining into the message. */
	n = consume(f, TOPIC, recs, MAXREC, st.pieces, 15000);
	assert_int_equal(n, st.pieces);
	buf_init(&whole, 1 << 20);
	buf_init(&joined, 1 << 20);
	assert_int_equal(jsonw_string(&whole, resume.ev.message.ptr, resume.ev.message.len), 0);
	for (size_t idx = 0; idx < n; idx++) {
		const uint8_t *p;
		size_t len;

		json_message(find_piece(recs, n, 42, idx, n), &p, &len);
		assert_int_equal(buf_append(&joined, p, len), 0);
	}
	assert_joined_json(&joined, &whole);
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_protobuf_pieces_are_events_with_resolved_fields(void **state)
{
	enum { MSGLEN = 30000, MAXREC = 16 };
	struct fx *f = fx_start(10000, "message.max.bytes", "10000", NULL);
	struct record *recs = calloc(MAXREC, sizeof(*recs));
	struct event_field rf[8];
	struct event_reader rd;
	struct event got, ev;
	struct pbslice raw;
	struct buf list, one;
	struct answer *a;
	struct kafka_batch *b;
	struct kafka_stats st;
	uint8_t *joined = calloc(1, MSGLEN);
	size_t n, off = 0;

	(void)state;
	global_fx = f;
	f->cfg.kafka.format = RELAY_FORMAT_PROTOBUF;
	fx_apply(f);
	buf_init(&list, 1 << 20);
	ev = *event_n(f, 2, MSGLEN);
	mixed_message(f, MSGLEN);
	assert_int_equal(event_encode(&ev, &list), 0);
	event_reader_init(&rd, list.data, list.len, rf, 8);
	assert_int_equal(event_reader_next(&rd, &got), 1);
	assert_int_equal(kafka_event_bytes(list.data, rd.p, &raw), 0);
	b = begin(f);
	a = &f->answers[0];
	assert_int_equal(kafka_produce(b, &got, &raw, 9), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.events_cut, 1);
	n = consume(f, TOPIC, recs, MAXREC, st.pieces, 15000);
	assert_int_equal(n, st.pieces);
	assert_true(n >= 3);
	buf_init(&one, 1 << 20);
	for (size_t idx = 0; idx < n; idx++) {
		const struct record *r = find_piece(recs, n, 9, idx, n);
		uint8_t hdr[11] = { 0x0a };
		size_t hlen = 1, v = r->value_len;
		struct pbslice s;

		assert_true(kafka_record_size(r->key_len, r->value_len, r->headers_size) <=
		    kafka_record_limit(10000));
		/* The value is one Event: as an EventList entry it reads back. */
		do {
			hdr[hlen++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v != 0);
		buf_reset(&one);
		assert_int_equal(buf_append(&one, hdr, hlen), 0);
		assert_int_equal(buf_append(&one, r->value, r->value_len), 0);
		event_reader_init(&rd, one.data, one.len, rf, 8);
		assert_int_equal(event_reader_next(&rd, &got), 1);
		assert_int_equal(got.nfields, 3);
		/* The slice "method" is the whole message's first 3 bytes, as text. */
		assert_int_equal(got.fields[2].type, EVENT_TEXT);
		assert_int_equal(event_field_string(&got, &got.fields[2], &s), 0);
		assert_int_equal(s.len, 3);
		assert_memory_equal(s.ptr, "pla", 3);
		assert_true(off + got.message.len <= MSGLEN);
		memcpy(joined + off, got.message.ptr, got.message.len);
		off += got.message.len;
	}
	assert_int_equal(off, MSGLEN);
	assert_memory_equal(joined, ev.message.ptr, MSGLEN);
	buf_free(&one);
	buf_free(&list);
	free(joined);
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_event_whose_fields_fill_a_record_is_refused_alone(void **state)
{
	struct fx *f = fx_start(10000, "message.max.bytes", "10000", NULL);
	static char big[20000];
	struct kafka_batch *b;
	struct answer *a;
	struct kafka_stats st;
	struct event ev;
	struct event_field fields[4];

	(void)state;
	global_fx = f;
	memset(big, 'x', sizeof(big));
	b = begin(f);
	a = &f->answers[0];
	assert_int_equal(kafka_produce(b, event_n(f, 1, 100), NULL, 1), 0);
	ev = *event_n(f, 2, 100);
	memcpy(fields, ev.fields, sizeof(fields));
	fields[0].v.text = (struct pbslice){ (const uint8_t *)big, sizeof(big) };
	ev.fields = fields;
	assert_int_equal(kafka_produce(b, &ev, NULL, 2), -EMSGSIZE);
	assert_int_equal(kafka_produce(b, event_n(f, 3, 100), NULL, 3), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 2);
	assert_int_equal(a->res.refused, 1);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.refused_oversize, 1);
	assert_int_equal(st.delivered, 2);
	fx_stop(f);
	global_fx = NULL;
}

/* all_reported's goal: delivered + failed reports, in kafka_stats. */
static uint64_t reports_wanted;

static bool
all_reported(struct fx *f)
{
	struct kafka_stats st;

	kafka_get_stats(f->k, &st);
	return st.delivered + st.failed >= reports_wanted;
}

/*
 * Reports come one per record, on the poller: a batch some of whose
 * records fail while the others are delivered is answered RETRY at the
 * first failure, once, whether its last report is a failure or a delivery.
 */
static void
test_a_batch_with_some_records_failed_is_answered_retry_once(void **state)
{
	enum { N = 300 };
	struct fx *f = fx_start(10000, NULL);
	struct kafka_stats before, st;
	struct answer *a;

	(void)state;
	global_fx = f;
	warm_up(f);
	kafka_get_stats(f->k, &before);
	/* The next request refused for good: its records fail, the other requests' are delivered. */
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
	    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	a = produce_batch(f, 1, N, 100);
	reports_wanted = before.delivered + before.failed + N;
	assert_true(fx_run_until(f, all_reported, 20000));
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_RETRY);
	kafka_get_stats(f->k, &st);
	assert_true(st.failed > before.failed);
	rd_kafka_mock_clear_request_errors(f->mc, APIKEY_PRODUCE);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * nb batches, begun together, take nb * n events in turn (record i goes to
 * batch i % nb; by_host: batch j's events all have host web-0(j%3), so one
 * partition each), then end. Returns the index of the first one's answer.
 */
static int
produce_in_turn(struct fx *f, unsigned nb, unsigned n, bool by_host)
{
	struct kafka_batch *b[MAX_BATCHES];
	int first = f->nbatches;

	assert_true(nb <= MAX_BATCHES);
	for (unsigned j = 0; j < nb; j++)
		b[j] = begin(f);
	for (unsigned i = 0; i < nb * n; i++) {
		unsigned j = i % nb, ev = by_host ? j % 3 + 3 * (i / nb) : i;

		assert_int_equal(kafka_produce(b[j], event_n(f, ev, 100), NULL, i), 0);
	}
	for (unsigned j = 0; j < nb; j++)
		kafka_batch_end(b[j]);
	return first;
}

/*
 * Delivery reports come in runs (one per ProduceResponse, several per
 * poll) that the poller settles a batch at a time: NB batches produced
 * record by record in turn, so that every run switches batch at each
 * record, then NB more one after the other (long runs). Every record is
 * reported once and every batch answered once, OK, after its reports.
 */
static void
test_every_record_of_interleaved_batches_is_reported_once_and_answered_once(void **state)
{
	enum { NB = 8, N = 250 };
	struct fx *f = fx_start(10000, NULL);
	struct kafka_stats before, st;
	int first;

	(void)state;
	global_fx = f;
	warm_up(f);
	kafka_get_stats(f->k, &before);
	first = produce_in_turn(f, NB, N, false);
	for (int j = 0; j < NB; j++)
		produce_batch(f, (unsigned)(NB * N + j * N), N, 100);
	assert_true(fx_run_until(f, all_answered, 30000));
	assert_int_equal(f->nbatches - first, 2 * NB);
	for (int j = first; j < f->nbatches; j++) {
		struct answer *a = &f->answers[j];

		assert_int_equal(a->calls, 1);
		assert_int_equal(a->status, KAFKA_OK);
		assert_int_equal(a->res.produced, N);
		assert_int_equal(a->res.refused, 0);
		assert_true(pthread_equal(a->thread, f->loop_thread));
	}
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.delivered - before.delivered, 2 * NB * N);
	assert_int_equal(st.failed, before.failed);
	assert_int_equal(st.batches_ok - before.batches_ok, 2 * NB);
	assert_int_equal(st.batches_retry, 0);
	/* Nothing counted twice: the queue is empty again. */
	assert_int_equal(kafka_flush(f->k, 0), 0);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * Records refused for good in one request among the requests of a poll:
 * each still fails alone, as before runs were settled together. Without a
 * dead-letter topic: counted as refused, the batches OK; with one: each
 * goes there and its batch waits for it. Whatever the request, every
 * record is reported once: delivered + refused = produced.
 */
static void
refused_in_a_run(bool with_dead_letter_topic)
{
	enum { NB = 4, N = 200 };
	struct fx *f = fx_start(10000, NULL);
	struct kafka_stats before, st;
	size_t refused = 0;
	int first;

	global_fx = f;
	if (with_dead_letter_topic)
		f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	fx_apply(f);
	warm_up(f);
	kafka_get_stats(f->k, &before);
	/* The first request (one partition's records) is refused, the others go through. */
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
	    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	first = produce_in_turn(f, NB, N, false);
	assert_true(fx_run_until(f, all_answered, 30000));
	for (int j = first; j < first + NB; j++) {
		struct answer *a = &f->answers[j];

		assert_int_equal(a->calls, 1);
		assert_int_equal(a->status, KAFKA_OK);
		assert_int_equal(a->res.produced, N);
		refused += a->res.refused;
	}
	kafka_get_stats(f->k, &st);
	assert_true(st.failed - before.failed >= 1);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_BROKER_REFUSED], st.failed - before.failed);
	if (with_dead_letter_topic) {
		/* The originals delivered, and a copy of each refused one. */
		assert_int_equal(refused, 0);
		assert_int_equal(st.refused_broker, 0);
		assert_int_equal(st.dead_lettered, st.failed - before.failed);
		assert_int_equal(st.delivered - before.delivered,
		    NB * N - (st.failed - before.failed) + st.dead_lettered);
	} else {
		assert_int_equal(refused, st.failed - before.failed);
		assert_int_equal(st.refused_broker, refused);
		assert_int_equal(st.dead_lettered, 0);
		assert_int_equal(st.delivered - before.delivered + refused, NB * N);
	}
	assert_int_equal(kafka_flush(f->k, 0), 0);
	rd_kafka_mock_clear_request_errors(f->mc, APIKEY_PRODUCE);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_records_refused_in_a_run_are_acknowledged_alone_without_dead_letter_topic(void **state)
{
	(void)state;
	refused_in_a_run(false);
}

static void
test_records_refused_in_a_run_go_alone_to_the_dead_letter_topic(void **state)
{
	(void)state;
	refused_in_a_run(true);
}

/*
 * A record that fails among delivered ones (a retriable error, not
 * retried in time here: authorization) answers RETRY the batches it
 * belongs to and no other: batches produced to the other partitions'
 * requests only are OK.
 */
static void
test_a_failed_run_answers_retry_only_the_batches_with_a_failed_record(void **state)
{
	enum { NB = 6, N = 60 };
	struct fx *f = fx_start(10000, NULL);
	struct kafka_stats before, st;
	int retry = 0, first;

	(void)state;
	global_fx = f;
	warm_up(f);
	kafka_get_stats(f->k, &before);
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
	    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	first = produce_in_turn(f, NB, N, true);
	reports_wanted = before.delivered + before.failed + NB * N;
	assert_true(fx_run_until(f, all_reported, 20000));
	assert_true(fx_run_until(f, all_answered, 20000));
	for (int j = first; j < first + NB; j++) {
		struct answer *a = &f->answers[j];

		assert_int_equal(a->calls, 1);
		retry += a->status == KAFKA_RETRY;
	}
	kafka_get_stats(f->k, &st);
	/*
	 * The request failed holds the records of one host's partition at
	 * least: its batches (two per host) are RETRY, whole; the others OK.
	 */
	assert_true(retry >= 2);
	assert_int_equal(st.failed - before.failed, (uint64_t)retry * N);
	assert_int_equal(st.delivered - before.delivered, (uint64_t)(NB - retry) * N);
	for (int j = 0; j < NB; j++)
		assert_int_equal(f->answers[first + j].status,
		    f->answers[first + (j + 3) % NB].status);
	assert_int_equal(kafka_flush(f->k, 0), 0);
	rd_kafka_mock_clear_request_errors(f->mc, APIKEY_PRODUCE);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * kafka_flush returns once every report is in and counted: right after
 * it, the counts add up and every batch, its loop not run yet, is
 * settled (kafka_loop_close answers it OK, not RETRY).
 */
static void
test_flush_returns_after_every_report_is_counted_and_settled(void **state)
{
	enum { NB = 5, N = 200 };
	struct fx *f = fx_start(10000, NULL);
	struct kafka_stats before, st;

	(void)state;
	global_fx = f;
	warm_up(f);
	kafka_get_stats(f->k, &before);
	for (int j = 0; j < NB; j++)
		produce_batch(f, (unsigned)(j * N), N, 100);
	assert_int_equal(kafka_flush(f->k, 10000), 0);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.delivered - before.delivered, NB * N);
	assert_int_equal(st.produced - before.produced, NB * N);
	kafka_loop_close(f->kl);
	for (int j = 0; j < NB; j++) {
		struct answer *a = &f->answers[f->nbatches - NB + j];

		assert_int_equal(a->calls, 1);
		assert_int_equal(a->status, KAFKA_OK);
		assert_int_equal(a->delivered_then - before.delivered, NB * N);
	}
	fx_stop(f);
	global_fx = NULL;
}

static void
test_broker_refusal_without_dead_letter_is_counted_and_acknowledged(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct answer *a;
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	warm_up(f);
	/* As a topic whose max.message.bytes is below the producer's would answer, every time. */
	for (int i = 0; i < 50; i++)
		rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
		    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	a = produce_batch(f, 100, 1, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.refused, 1);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.refused_broker, 1);
	assert_int_equal(st.dead_lettered, 0);
	rd_kafka_mock_clear_request_errors(f->mc, APIKEY_PRODUCE);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * Without a dead-letter topic, a topic the relay may not write is held,
 * not refused: an operator grants the ACL and the same events go through
 * (tests/kafka/test_acl.sh proves that against a real cluster). The batch
 * is answered RETRY, the failure is counted by kind, and kafka_trouble
 * names the topic. With one whose records fail the same way (every
 * request below is refused), the same: the dead-letter record is held.
 */
static void
held_on_authorization_failure(bool with_dead_letter_topic)
{
	struct fx *f = fx_start(2000, NULL);
	struct answer *a;
	struct kafka_stats st;
	char why[384];

	global_fx = f;
	if (with_dead_letter_topic)
		f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	fx_apply(f);
	warm_up(f);
	assert_false(kafka_trouble(f->k, why, sizeof(why)));
	for (int i = 0; i < 1000; i++)
		rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
		    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	a = produce_batch(f, 100, 1, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_RETRY);
	kafka_get_stats(f->k, &st);
	assert_true(st.errors[KAFKA_ERROR_TOPIC_AUTHORIZATION] >= 1);
	assert_int_equal(st.dead_lettered, 0);
	assert_int_equal(st.refused_broker, 0);
	assert_true(kafka_trouble(f->k, why, sizeof(why)));
	assert_non_null(strstr(why, "not authorized to write to topic "));
	rd_kafka_mock_clear_request_errors(f->mc, APIKEY_PRODUCE);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_topic_authorization_failure_without_dead_letter_topic_is_held_and_reported(void **state)
{
	(void)state;
	held_on_authorization_failure(false);
}

static void
test_dead_letter_record_refused_by_authorization_is_held(void **state)
{
	(void)state;
	held_on_authorization_failure(true);
}

/*
 * Produces event 100, which must be answered OK with nothing refused and
 * land in the dead-letter topic (read into recs[0], stats into st) with
 * the agent, seq, key, value and stream of the original.
 */
static void
expect_dead_letter(struct fx *f, struct record recs[8], struct kafka_stats *st)
{
	struct answer *a = produce_batch(f, 100, 1, 100);

	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.refused, 0);
	kafka_get_stats(f->k, st);
	assert_int_equal(st->dead_lettered, 1);
	assert_int_equal(consume(f, DEAD_TOPIC, recs, 8, 1, 10000), 1);
	assert_string_equal(recs[0].agent, "agent-1");
	assert_true(recs[0].has_seq);
	assert_int_equal(recs[0].seq, 100);
	assert_string_equal(recs[0].ostream, "nginx_access");
	assert_string_equal(recs[0].key, "web-01");
	/* The value is the original record's. */
	assert_non_null(strstr((const char *)recs[0].value, "\"user_id\":\"u-100\""));
}

static void
test_broker_refusal_goes_to_the_dead_letter_topic(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct record recs[8];
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	fx_apply(f);
	warm_up(f);
	/* Once: the event's request fails for good, the dead-letter one goes through. */
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
	    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	expect_dead_letter(f, recs, &st);
	assert_int_equal(st.refused_broker, 0);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_BROKER_REFUSED], 1);
	assert_string_equal(recs[0].otopic, TOPIC);
	assert_non_null(strstr(recs[0].error, "MSG_SIZE_TOO_LARGE"));
	free(recs[0].value);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * kafka.headers: on (the default), every record carries logferry-agent
 * and logferry-seq; off, none carries a header at all, not even
 * logferry-stream while a dead-letter topic is set.
 */
static void
records_read_back_with_headers(bool headers)
{
	enum { N = 20 };
	struct fx *f = fx_start(10000, NULL);
	struct record recs[N + 4];
	struct answer *a;
	size_t n;

	global_fx = f;
	f->cfg.kafka.headers = headers;
	f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	fx_apply(f);
	a = produce_batch(f, 1, N, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	n = consume(f, TOPIC, recs, N + 4, N, 15000);
	assert_int_equal(n, N);
	for (size_t i = 0; i < n; i++) {
		if (headers) {
			assert_string_equal(recs[i].agent, "agent-1");
			assert_true(recs[i].has_seq);
		} else {
			assert_int_equal(recs[i].headers_size, 0);
			assert_string_equal(recs[i].agent, "");
			assert_false(recs[i].has_seq);
		}
		assert_non_null(strstr((const char *)recs[i].value, "\"agent\":\"agent-1\""));
		free(recs[i].value);
	}
	fx_stop(f);
	global_fx = NULL;
}

static void
test_records_carry_agent_and_seq_headers_when_headers_are_on(void **state)
{
	(void)state;
	records_read_back_with_headers(true);
}

static void
test_records_carry_no_header_when_headers_are_off(void **state)
{
	(void)state;
	records_read_back_with_headers(false);
}

/*
 * With kafka.headers off, the copy of a record a broker refused for good
 * has no agent, seq or stream header (the record had none), but says why
 * and which topic refused it; its value names the agent.
 */
static void
test_broker_refused_record_says_why_in_the_dead_letter_topic_when_headers_are_off(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct record recs[8];
	struct answer *a;
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	f->cfg.kafka.headers = false;
	f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	fx_apply(f);
	warm_up(f);
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1,
	    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	a = produce_batch(f, 100, 1, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.refused, 0);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.dead_lettered, 1);
	assert_int_equal(consume(f, DEAD_TOPIC, recs, 8, 1, 10000), 1);
	assert_non_null(strstr(recs[0].error, "MSG_SIZE_TOO_LARGE"));
	assert_string_equal(recs[0].otopic, TOPIC);
	assert_string_equal(recs[0].agent, "");
	assert_false(recs[0].has_seq);
	assert_non_null(strstr((const char *)recs[0].value, "\"user_id\":\"u-100\""));
	free(recs[0].value);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * With a dead-letter topic, a record whose topic may not be written (or
 * does not exist: the same path, which the mock cluster cannot show, since
 * it creates every topic and retries a produce answered
 * UNKNOWN_TOPIC_OR_PART) goes there with the reason, instead of holding
 * its agent's whole spool behind it until an operator acts; the batch is
 * answered OK.
 */
static void
set_aside_with_dead_letter_topic(rd_kafka_resp_err_t err, const char *name)
{
	struct fx *f = fx_start(10000, NULL);
	struct record recs[8];
	struct kafka_stats st;

	global_fx = f;
	f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	fx_apply(f);
	warm_up(f);
	/* Once: the event's request fails, the dead-letter one goes through. */
	rd_kafka_mock_push_request_errors(f->mc, APIKEY_PRODUCE, 1, err);
	expect_dead_letter(f, recs, &st);
	assert_int_equal(st.refused_broker, 0);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_BROKER_REFUSED], 1);
	assert_string_equal(recs[0].otopic, TOPIC);
	assert_non_null(strstr(recs[0].error, name));
	free(recs[0].value);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_topic_authorization_failure_with_a_dead_letter_topic_goes_there(void **state)
{
	(void)state;
	set_aside_with_dead_letter_topic(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
	    "TOPIC_AUTHORIZATION_FAILED");
}

/*
 * A topic template that renders a name Kafka refuses: the event is never
 * produced there nor renamed; it goes to the dead-letter topic with the
 * reason, the rendered name and the stream in headers, and is counted.
 */
static void
invalid_topic_dead_lettered(bool headers)
{
	struct fx *f = fx_start(10000, NULL);
	struct record recs[8];
	struct kafka_stats st;

	global_fx = f;
	f->cfg.kafka.headers = headers;
	f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	f->cfg.kafka.topic = "logs/${fields.user_id:-none}";
	fx_apply(f);
	expect_dead_letter(f, recs, &st);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_INVALID_TOPIC], 1);
	assert_string_equal(recs[0].error, "topic 'logs/u-100' has a byte outside [A-Za-z0-9._-]");
	assert_string_equal(recs[0].otopic, "logs/u-100");
	free(recs[0].value);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_invalid_topic_goes_to_the_dead_letter_topic_with_its_reason(void **state)
{
	(void)state;
	invalid_topic_dead_lettered(true);
}

/*
 * With kafka.headers off, a record the relay sets aside itself still
 * says in the dead-letter topic why, where it was going, from which stream
 * and which event it is: all its headers, as with headers on.
 */
static void
test_set_aside_record_keeps_every_header_when_headers_are_off(void **state)
{
	(void)state;
	invalid_topic_dead_lettered(false);
}

/* A topic checked valid for earlier events does not let a later invalid one through. */
static void
test_an_invalid_topic_after_valid_ones_is_still_set_aside(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct kafka_batch *b;
	struct answer *a;
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	warm_up(f);
	b = begin(f);
	a = &f->answers[f->nbatches - 1];
	assert_int_equal(kafka_produce(b, event_n(f, 100, 100), NULL, 100), 0);
	event_n(f, 101, 100);
	/* logs.nginx_access, then the same name and one byte more, outside [A-Za-z0-9._-] */
	f->ev.stream = (struct pbslice){ (const uint8_t *)"nginx_access/", 13 };
	assert_int_equal(kafka_produce(b, &f->ev, NULL, 101), 0);
	assert_int_equal(kafka_produce(b, event_n(f, 102, 100), NULL, 102), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 2);
	assert_int_equal(a->res.refused, 1);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_INVALID_TOPIC], 1);
	fx_stop(f);
	global_fx = NULL;
}

/* Without a dead-letter topic: logged (agent, stream, topic), counted, acknowledged. */
static void
test_invalid_topic_without_dead_letter_topic_is_logged_counted_and_acknowledged(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct log_capture lc;
	struct answer *a;
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	f->cfg.kafka.topic = "${fields.nothere}";
	fx_apply(f);
	log_capture_start(&lc, "test_kafka", "TEST_KAFKA_DEBUG");
	a = produce_batch(f, 100, 2, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 0);
	assert_int_equal(a->res.refused, 2);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_INVALID_TOPIC], 2);
	assert_int_equal(st.produced, 0);
	log_capture_expect(&lc, "event 100 of agent 'agent-1', stream 'nginx_access', not "
	    "produced: topic is empty; it is counted and acknowledged. Set "
	    "kafka.dead_letter_topic to keep such events, and check kafka.topic, kafka.routes "
	    "and kafka.allowed_topics");
	log_capture_stop(&lc);
	fx_stop(f);
	global_fx = NULL;
}

/* allowed_topics: an agent fills only its topics; the others' events are set aside. */
static void
test_topic_not_allowed_for_the_agent_goes_to_the_dead_letter_topic(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	const char *web[] = { TOPIC }, *other[] = { "logs.other*" };
	struct relay_allowed_topics allow[2] = {
		{ .agents = "web-*", .topics = { 1, web } },
		{ .agents = "agent-*", .topics = { 1, other } },
	};
	struct record recs[8];
	struct answer *a;
	struct kafka_stats st;
	size_t n;

	(void)state;
	global_fx = f;
	f->cfg.kafka.dead_letter_topic = DEAD_TOPIC;
	f->cfg.kafka.allowed_topics = (struct config_list){ 2, allow };
	fx_apply(f);
	a = produce_batch(f, 100, 3, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_NOT_ALLOWED], 3);
	n = consume(f, DEAD_TOPIC, recs, 8, 3, 10000);
	assert_int_equal(n, 3);
	assert_string_equal(recs[0].error, "topic " TOPIC " not allowed for agent agent-1");
	assert_string_equal(recs[0].otopic, TOPIC);
	for (size_t i = 0; i < n; i++)
		free(recs[i].value);
	/* The agent allowed that topic produces there. */
	allow[1].topics.items = web;
	fx_apply(f);
	a = produce_batch(f, 200, 1, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.set_aside[KAFKA_ASIDE_NOT_ALLOWED], 3);
	n = consume(f, TOPIC, recs, 8, 1, 10000);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].seq, 200);
	free(recs[0].value);
	fx_stop(f);
	global_fx = NULL;
}

/* The first route whose match holds gives topic and key. */
static void
test_routes_pick_topic_and_key(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct config_map_entry m[] = { { "fields.user_id", "u-1??", 0 } };
	struct relay_route routes[] = {
		{ .match = { 1, m }, .topic = DEAD_TOPIC, .key = "${fields.user_id}" },
	};
	struct record recs[8];
	struct answer *a;
	struct kafka_batch *b;
	static const unsigned seqs[] = { 150, 151, 20, 21, 152 };
	uint64_t counts[4];
	size_t n;

	(void)state;
	global_fx = f;
	f->cfg.kafka.routes = (struct config_list){ 1, routes };
	fx_apply(f);
	a = produce_batch(f, 99, 2, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	/* Counted per route, the default last. */
	assert_int_equal(kafka_route_counts(f->k, counts, 4), 2);
	assert_int_equal(counts[0], 1);
	assert_int_equal(counts[1], 1);
	n = consume(f, DEAD_TOPIC, recs, 8, 1, 10000);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].seq, 100);
	assert_string_equal(recs[0].key, "u-100");
	free(recs[0].value);
	n = consume(f, TOPIC, recs, 8, 1, 10000);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].seq, 99);
	assert_string_equal(recs[0].key, "web-00");
	free(recs[0].value);
	/* A batch whose events go from one route to the other and back: each counted once. */
	b = begin(f);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(kafka_produce(b, event_n(f, seqs[i], 100), NULL, seqs[i]), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(kafka_route_counts(f->k, counts, 4), 2);
	assert_int_equal(counts[0], 4);
	assert_int_equal(counts[1], 3);
	fx_stop(f);
	global_fx = NULL;
}


/*
 * Records to more topics than the relay keeps handles for: every one is
 * delivered to its own topic, those beyond the handles by name.
 */
static void
test_records_to_more_topics_than_kept_handles_reach_each_topic(void **state)
{
	enum { TOPICS = 70 };
	struct fx *f = fx_start(10000, NULL);
	struct record recs[4];
	struct answer *a;
	char topic[64];
	size_t n;

	(void)state;
	global_fx = f;
	/* fields.user_id is u-SEQ: one topic per event. */
	f->cfg.kafka.topic = "t.${fields.user_id}";
	fx_apply(f);
	for (unsigned i = 1; i <= TOPICS; i++) {
		snprintf(topic, sizeof(topic), "t.u-%u", i);
		assert_int_equal(rd_kafka_mock_topic_create(f->mc, topic, PARTITIONS, BROKERS), 0);
	}
	a = produce_batch(f, 1, TOPICS, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, TOPICS);
	for (unsigned i = 1; i <= TOPICS; i += TOPICS - 1) {
		snprintf(topic, sizeof(topic), "t.u-%u", i);
		n = consume(f, topic, recs, 4, 1, 10000);
		assert_int_equal(n, 1);
		assert_int_equal(recs[0].seq, i);
		free(recs[0].value);
	}
	fx_stop(f);
	global_fx = NULL;
}

/* Fills librdkafka's queue while the brokers answer slowly. */
struct fill {
	struct kafka_batch *b;
	unsigned next;
	int again;
	int after_writable;
};

static struct fill fill;

static void
refill(struct fx *f)
{
	/* The event refused with -EAGAIN goes in now, then the batch ends. */
	fill.after_writable = kafka_produce(fill.b, event_n(f, fill.next, 1000), NULL, fill.next);
	kafka_batch_end(fill.b);
}

static bool
writable_and_answered(struct fx *f)
{
	return f->writable_calls > 0 && all_answered(f);
}

static void
test_full_queue_is_eagain_then_writable(void **state)
{
	struct fx *f;
	struct answer *a;
	struct kafka_stats st;
	int r = 0;

	/* The smallest budget: 2 MiB of payloads fill quickly. */
	fx_budget = 4u << 20;
	f = fx_start(20000, NULL);
	fx_budget = 64u << 20;

	(void)state;
	global_fx = f;
	/* Warm up, then slow responses keep every record in librdkafka's queue. */
	a = produce_batch(f, 1, 10, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 1500);
	memset(&fill, 0, sizeof(fill));
	fill.b = begin(f);
	a = &f->answers[1];
	/* About 1800 records of 1.2 KiB. */
	for (fill.next = 100; fill.next < 200000; fill.next++) {
		r = kafka_produce(fill.b, event_n(f, fill.next, 1000), NULL, fill.next);
		if (r != 0)
			break;
	}
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(f->writable_calls, 0);
	/* One -EAGAIN answered, and every record before it handed over, counted exactly. */
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.queue_full, 1);
	assert_int_equal(st.produced, 10 + fill.next - 100);
	f->on_writable = refill;
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 0);
	assert_true(fx_run_until(f, writable_and_answered, 30000));
	assert_int_equal(f->writable_calls, 1);
	assert_true(pthread_equal(f->writable_thread, f->loop_thread));
	assert_int_equal(fill.after_writable, 0);
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, fill.next - 100 + 1);
	fx_stop(f);
	global_fx = NULL;
}

/* ------------------------------------------------- held runs of records */

/* The event number of a record event_n made (its user_id "u-N"), read from its JSON value. */
static unsigned
value_event(const struct record *r)
{
	const char *p = strstr((const char *)r->value, "\"user_id\":\"u-");

	assert_non_null(p);
	return (unsigned)strtoul(p + strlen("\"user_id\":\"u-"), NULL, 10);
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * What relay/server.c's worker does: events in batches of run.per_batch,
 * all in one held run (kafka_loop_hold), stopping at -EAGAIN and going on
 * from the same event when the writable callback comes. Events from
 * run.dead_from to run.dead_to (excluded) go to DEAD_TOPIC by their stream.
 */
static struct {
	struct kafka_batch *b;
	unsigned next, total, per_batch, eagain, dead_from, dead_to, first_batch;
} run;

static const struct event *
run_event(struct fx *f, unsigned i)
{
	const struct event *ev = event_n(f, i, 100);

	if (i >= run.dead_from && i < run.dead_to)
		f->ev.stream = (struct pbslice){ (const uint8_t *)"dead", 4 };
	return ev;
}

static void
run_fill(struct fx *f)
{
	kafka_loop_hold(f->kl);
	while (run.next < run.total) {
		int r;

		if (run.b == NULL)
			run.b = begin(f);
		r = kafka_produce(run.b, run_event(f, run.next), NULL, run.next);
		if (r == -EAGAIN) {
			run.eagain++;
			break;
		}
		assert_int_equal(r, 0);
		run.next++;
		if (run.next % run.per_batch == 0 || run.next == run.total) {
			kafka_batch_end(run.b);
			run.b = NULL;
		}
	}
	kafka_loop_release(f->kl);
}

static bool
run_done_and_answered(struct fx *f)
{
	return run.next == run.total && all_answered(f);
}

/*
 * A fixture with kafka.headers off and one key for every record: they all
 * go to one partition of their topic, whose order is then the order they
 * were produced in.
 */
static struct fx *
run_start(bool headers, unsigned total, unsigned per_batch, ...)
{
	struct fx *f;
	va_list ap;
	const char *n1, *v1;

	va_start(ap, per_batch);
	n1 = va_arg(ap, const char *);
	v1 = n1 != NULL ? va_arg(ap, const char *) : NULL;
	va_end(ap);
	f = fx_start(20000, n1, v1, NULL);
	global_fx = f;
	f->cfg.kafka.headers = headers;
	f->cfg.kafka.key = "one";
	fx_apply(f);
	warm_up(f);
	memset(&run, 0, sizeof(run));
	run.total = total;
	run.per_batch = per_batch;
	run.first_batch = (unsigned)f->nbatches;
	return f;
}

/* Reads topic back: want records, each event once, in the order produced. */
static void
run_check_topic(struct fx *f, const char *topic, size_t want)
{
	struct record *recs = calloc(want + 10, sizeof(*recs));
	size_t n = consume(f, topic, recs, want + 10, want, 15000);
	unsigned prev = 0;

	assert_int_equal(n, want);
	for (size_t i = 0; i < n; i++) {
		unsigned e = value_event(&recs[i]);

		/* topic's warm-up records (events 1..10) first, then the run's. */
		if (i > 0)
			assert_true(e > prev || (prev <= 10 && i <= 10));
		prev = e;
	}
	free_records(recs, n);
}

/* Every batch of the run answered OK once, with its events produced. */
static void
run_check_answers(struct fx *f)
{
	unsigned left = run.total;

	for (int i = (int)run.first_batch; i < f->nbatches; i++) {
		unsigned want = left < run.per_batch ? left : run.per_batch;

		assert_int_equal(f->answers[i].calls, 1);
		assert_int_equal(f->answers[i].status, KAFKA_OK);
		assert_int_equal(f->answers[i].res.produced, want);
		left -= want;
	}
	assert_int_equal(left, 0);
}

static void
test_records_of_a_held_run_keep_their_order_and_count_across_batches_and_topics(void **state)
{
	struct fx *f = run_start(false, 600, 70, NULL);
	struct kafka_stats st;

	(void)state;
	run.dead_from = 200;
	run.dead_to = 330;
	run_fill(f);
	assert_int_equal(run.eagain, 0);
	assert_true(fx_run_until(f, run_done_and_answered, 30000));
	run_check_answers(f);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.produced, 10 + 600);
	assert_int_equal(st.delivered, 10 + 600);
	run_check_topic(f, TOPIC, 10 + 600 - 130);
	run_check_topic(f, DEAD_TOPIC, 130);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_a_queue_that_fills_in_the_middle_of_a_held_run_loses_and_duplicates_nothing(void **state)
{
	/* librdkafka takes 40 records at most: every run meets a full queue many times. */
	struct fx *f = run_start(false, 3000, 100, "queue.buffering.max.messages", "40");
	struct kafka_stats st;

	(void)state;
	run.dead_from = 1000;
	run.dead_to = 1500;
	f->on_writable = run_fill;
	run_fill(f);
	assert_true(run.eagain > 0);
	assert_true(fx_run_until(f, run_done_and_answered, 60000));
	assert_true(run.eagain > 5);
	run_check_answers(f);
	kafka_get_stats(f->k, &st);
	assert_true(st.queue_full > 5);
	assert_int_equal(st.produced, 10 + 3000);
	assert_int_equal(st.delivered, 10 + 3000);
	assert_int_equal(st.failed, 0);
	run_check_topic(f, TOPIC, 10 + 2500);
	run_check_topic(f, DEAD_TOPIC, 500);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_a_batch_of_a_held_run_is_answered_after_every_record_is_delivered(void **state)
{
	struct fx *f = run_start(false, 200, 200, NULL);
	struct answer *a;

	(void)state;
	/* The batch ends inside the run, before the run hands its records over. */
	run_fill(f);
	a = &f->answers[run.first_batch];
	assert_true(fx_run_until(f, run_done_and_answered, 30000));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 200);
	assert_true(a->delivered_then >= 10 + 200);
	fx_stop(f);
	global_fx = NULL;
}

/* Kafka's timestamp of a record produced in a held run is the time it was produced, to the ms. */
static void
held_run_timestamps(bool headers)
{
	struct fx *f = run_start(headers, 300, 100, NULL);
	struct record *recs = calloc(400, sizeof(*recs));
	uint64_t before, after;
	size_t n;

	before = wall_ms();
	run_fill(f);
	after = wall_ms();
	assert_true(fx_run_until(f, run_done_and_answered, 30000));
	run_check_answers(f);
	n = consume(f, TOPIC, recs, 400, 310, 15000);
	assert_int_equal(n, 310);
	for (size_t i = 0; i < n; i++) {
		if (value_event(&recs[i]) <= 10 && i < 10)
			continue;             /* warm-up */
		assert_true((uint64_t)recs[i].ts >= before);
		assert_true((uint64_t)recs[i].ts <= after);
	}
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_records_of_a_held_run_are_stamped_with_their_produce_time(void **state)
{
	(void)state;
	held_run_timestamps(true);
	held_run_timestamps(false);
}

/* Loops on threads of their own: each batch is answered on its owner's thread. */
struct worker {
	struct fx *f;
	pthread_t thread;
	uv_loop_t loop;
	struct kafka_loop *kl;
	struct answer answer;
	unsigned first;
	bool held;                    /* its records in one held run (kafka_loop_hold), as the relay's workers */
	struct event_field fields[4];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct kafka_batch *b;
	struct fx scratch;

	uv_loop_init(&w->loop);
	if (kafka_loop_new(w->f->k, &w->loop, NULL, NULL, &w->kl) != 0)
		return NULL;
	if (kafka_batch_begin(w->kl, "agent-w", on_answer, &w->answer, &b) != 0)
		return NULL;
	if (w->held)
		kafka_loop_hold(w->kl);
	for (unsigned i = 0; i < 200; i++)
		if (kafka_produce(b, event_n(&scratch, w->first + i, 100), NULL, w->first + i) != 0)
			break;
	if (w->held)
		kafka_loop_release(w->kl);
	kafka_batch_end(b);
	/* Unanswered batches keep the loop going; the answer ends it. */
	uv_run(&w->loop, UV_RUN_DEFAULT);
	kafka_loop_close(w->kl);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	return NULL;
}

static void
test_answers_run_on_the_owners_loop_thread(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct worker w[3];

	(void)state;
	global_fx = f;
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 3; i++) {
		w[i].f = f;
		w[i].first = 1000 * (unsigned)(i + 1);
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
		assert_int_equal(w[i].answer.calls, 1);
		assert_int_equal(w[i].answer.status, KAFKA_OK);
		assert_true(pthread_equal(w[i].answer.thread, w[i].thread));
		assert_false(pthread_equal(w[i].answer.thread, pthread_self()));
	}
	fx_stop(f);
	global_fx = NULL;
}

static uint64_t late_before;

static bool
reported_late(struct fx *f)
{
	struct kafka_stats st;

	kafka_get_stats(f->k, &st);
	return st.delivered + st.failed >= late_before + 20;
}

static bool
never(struct fx *f)
{
	(void)f;
	return false;
}

static void
test_stats_count_the_records_of_every_loop_exactly(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct worker w[3];
	struct kafka_stats st0, st;

	(void)state;
	global_fx = f;
	memset(w, 0, sizeof(w));
	warm_up(f);
	kafka_get_stats(f->k, &st0);
	for (int i = 0; i < 3; i++) {
		w[i].f = f;
		w[i].first = 1000 * (unsigned)(i + 1);
		w[i].held = true;
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
		assert_int_equal(w[i].answer.status, KAFKA_OK);
		assert_int_equal(w[i].answer.res.produced, 200);
	}
	/* The workers' loops are closed: what they produced still counts. */
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.produced, st0.produced + 600);
	assert_true(st.delivered >= st0.delivered + 600);
	assert_int_equal(st.batches_ok, st0.batches_ok + 3);
	assert_int_equal(st.pieces, st0.pieces);
	assert_int_equal(st.queue_full, st0.queue_full);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_late_reports_after_retry_are_dropped(void **state)
{
	struct fx *f = fx_start(3000, NULL);
	struct kafka_batch *b;
	struct answer *a;
	struct kafka_stats st;
	uint64_t retry_before;

	(void)state;
	global_fx = f;
	warm_up(f);
	kafka_get_stats(f->k, &st);
	late_before = st.delivered + st.failed;
	retry_before = st.batches_retry;
	/*
	 * The batch's deadline counts from its begin, librdkafka's from each
	 * produce: events produced 1.5 s after the begin, answered 2 s later,
	 * reach Kafka after the batch's deadline and before their own.
	 */
	b = begin(f);
	a = &f->answers[f->nbatches - 1];
	fx_run_until(f, never, 1500);
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 2000);
	for (unsigned i = 100; i < 120; i++)
		assert_int_equal(kafka_produce(b, event_n(f, i, 100), NULL, i), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_RETRY);
	assert_string_equal(a->reason, "not acknowledged by Kafka within kafka.delivery_timeout");
	assert_false(reported_late(f));
	/* The reports come after the answer: counted, and the batch freed (ASan). */
	assert_true(fx_run_until(f, reported_late, 20000));
	fx_run_until(f, never, 100);
	assert_int_equal(a->calls, 1);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.delivered, late_before + 20);
	assert_int_equal(st.batches_retry, retry_before + 1);
	fx_stop(f);
	global_fx = NULL;
}

static bool
recreated(struct fx *f)
{
	struct kafka_stats st;

	kafka_get_stats(f->k, &st);
	return st.recreated == 1;
}

static void
test_fatal_error_recreates_the_producer(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct answer *a, *a2;
	struct kafka_batch *b;
	struct kafka_stats st;
	uint64_t t0, retry_before;
	int r;

	(void)state;
	global_fx = f;
	a = produce_batch(f, 1, 10, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	/* Records in flight (slow answers) when the producer fails for good. */
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 1000);
	a = produce_batch(f, 100, 50, 100);
	t0 = now_ms();
	assert_int_equal(kafka_test_fatal_error(f->k, "test: sequence gap"), 0);
	/*
	 * Until the poller swapped producers, records are refused at once
	 * (-ECANCELED, the batch RETRYs); the swap may also be that quick.
	 */
	b = begin(f);
	a2 = &f->answers[f->nbatches - 1];
	r = kafka_produce(b, event_n(f, 500, 100), NULL, 500);
	assert_true(r == -ECANCELED || r == 0);
	if (r == -ECANCELED)
		assert_int_equal(kafka_produce(b, event_n(f, 501, 100), NULL, 501), -ECANCELED);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_RETRY);
	assert_int_equal(a2->calls, 1);
	if (r == -ECANCELED)
		assert_int_equal(a2->status, KAFKA_RETRY);
	/* Well before the delivery timeout. */
	assert_true(now_ms() - t0 < 8000);
	assert_true(fx_run_until(f, recreated, 10000));
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 0);
	/* The new producer delivers. */
	a = produce_batch(f, 1000, 50, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.recreated, 1);
	retry_before = r == -ECANCELED ? 2 : 1;
	assert_int_equal(st.batches_ok, 2 + (2 - retry_before));
	assert_int_equal(st.batches_retry, retry_before);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * The memory of delivered records may still be held for the loop that
 * produced them when the producer fails for good: the new producer takes
 * over, the old one is destroyed only once nothing of it is held (ASAN
 * would see a use after free), the batch is answered OK, and the new
 * producer delivers.
 */
static void
test_a_producer_recreated_while_its_reports_wait_for_their_loop_is_destroyed_safely(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct answer *a;

	(void)state;
	global_fx = f;
	warm_up(f);
	a = produce_batch(f, 1, 200, 100);
	/* The reports are served; the loop has not run since. */
	assert_int_equal(kafka_flush(f->k, 10000), 0);
	assert_int_equal(a->calls, 0);
	assert_int_equal(kafka_test_fatal_error(f->k, "test: sequence gap"), 0);
	assert_true(fx_run_until(f, recreated, 10000));
	assert_true(fx_run_until(f, all_answered, 10000));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_OK);
	a = produce_batch(f, 1000, 50, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_stop_answers_outstanding_batches_retry(void **state)
{
	struct fx *f = fx_start(30000, NULL);
	struct answer *a1, *a2;
	struct kafka_batch *open;
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	a1 = produce_batch(f, 1, 10, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a1->status, KAFKA_OK);
	set_brokers(f, false);
	a1 = produce_batch(f, 100, 20, 100);
	open = begin(f);               /* never ended */
	a2 = &f->answers[f->nbatches - 1];
	assert_int_equal(kafka_produce(open, event_n(f, 200, 100), NULL, 200), 0);
	/* The flush is bounded. */
	assert_int_equal(kafka_flush(f->k, 300), -ETIMEDOUT);
	assert_int_equal(a1->calls, 0);
	kafka_loop_close(f->kl);
	/* Answered inside the close, on this (the loop's) thread. */
	assert_int_equal(a1->calls, 1);
	assert_int_equal(a1->status, KAFKA_RETRY);
	assert_string_equal(a1->reason, "the relay is stopping");
	assert_int_equal(a2->calls, 1);
	assert_int_equal(a2->status, KAFKA_RETRY);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.batches_ok, 1);
	assert_int_equal(st.batches_retry, 2);
	{
		struct kafka_batch *b;

		assert_int_equal(kafka_batch_begin(f->kl, "x", on_answer, a2, &b), -EPIPE);
	}
	f->kl = NULL;
	/* kafka_free purges the records still held: no leak, no late answer. */
	fx_stop(f);
	global_fx = NULL;
}

/* The relay's clean stop: flush, then close each loop. */
static void
test_stop_after_a_flush_answers_delivered_batches_ok(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct answer *a;

	(void)state;
	global_fx = f;
	a = produce_batch(f, 1, 100, 100);
	/* The poller serves the reports while this thread waits. */
	assert_int_equal(kafka_flush(f->k, 10000), 0);
	assert_int_equal(a->calls, 0);
	/* Its reports are in, its loop has not run yet: OK, not RETRY. */
	kafka_loop_close(f->kl);
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->status, KAFKA_OK);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_empty_and_abandoned_batches(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct kafka_batch *b;
	struct answer *a;
	struct kafka_stats st;

	(void)state;
	global_fx = f;
	/* No events: OK, on the loop, not inside kafka_batch_end. */
	b = begin(f);
	a = &f->answers[0];
	kafka_batch_end(b);
	assert_int_equal(a->calls, 0);
	assert_true(fx_run_until(f, all_answered, 5000));
	assert_int_equal(a->status, KAFKA_OK);
	assert_int_equal(a->res.produced, 0);
	/* Abandoned: no answer ever, its records still go out, nothing leaks. */
	b = begin(f);
	for (unsigned i = 1; i <= 10; i++)
		assert_int_equal(kafka_produce(b, event_n(f, i, 100), NULL, i), 0);
	kafka_batch_abandon(b);
	f->answers[1].abandoned = true;
	assert_int_equal(kafka_flush(f->k, 10000), 0);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(f->answers[1].calls, 0);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.delivered, 10);
	/* Produce after the end is refused. */
	b = begin(f);
	kafka_batch_end(b);
	assert_int_equal(kafka_produce(b, event_n(f, 1, 100), NULL, 1), -EINVAL);
	assert_true(fx_run_until(f, all_answered, 5000));
	fx_stop(f);
	global_fx = NULL;
}

static void
test_protobuf_and_raw_values_and_keys(void **state)
{
	struct event_field rf[8];
	struct event_reader rd;
	struct event got;
	struct record recs[8];
	struct pbslice raw;
	struct buf list;
	struct fx *f;
	struct answer *a;
	struct kafka_batch *b;
	const uint8_t *before;
	size_t n;

	(void)state;
	/* protobuf: the Event's bytes as the agent encoded them. */
	f = fx_start(10000, NULL);
	global_fx = f;
	f->cfg.kafka.format = RELAY_FORMAT_PROTOBUF;
	fx_apply(f);
	buf_init(&list, 1 << 20);
	assert_int_equal(event_encode(event_n(f, 7, 50), &list), 0);
	assert_int_equal(event_encode(event_n(f, 8, 60), &list), 0);
	b = begin(f);
	a = &f->answers[0];
	event_reader_init(&rd, list.data, list.len, rf, 8);
	for (uint64_t seq = 7; before = rd.p, event_reader_next(&rd, &got) == 1; seq++) {
		assert_int_equal(kafka_event_bytes(before, rd.p, &raw), 0);
		/*
		 * Without raw (an event of format 2, whose bytes need their Dict)
		 * the event is encoded again, to the same bytes.
		 */
		assert_int_equal(kafka_produce(b, &got, seq == 7 ? NULL : &raw, seq), 0);
	}
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 10000));
	assert_int_equal(a->status, KAFKA_OK);
	n = consume(f, TOPIC, recs, 8, 2, 10000);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		struct pbslice want;
		struct buf one;

		buf_init(&one, 1 << 20);
		assert_int_equal(event_encode(event_n(f, (unsigned)recs[i].seq, recs[i].seq == 7 ? 50 : 60),
		    &one), 0);
		/* The EventList entry is a tag, a length, then the Event. */
		assert_int_equal(kafka_event_bytes(one.data, one.data + one.len, &want), 0);
		assert_true(want.ptr > one.data + 1);
		assert_int_equal(recs[i].value_len, want.len);
		assert_memory_equal(recs[i].value, want.ptr, want.len);
		assert_true(recs[i].has_key);
		buf_free(&one);
		free(recs[i].value);
	}
	buf_free(&list);
	fx_stop(f);

	/* raw: the message line. */
	f = fx_start(10000, NULL);
	global_fx = f;
	f->cfg.kafka.format = RELAY_FORMAT_RAW;
	fx_apply(f);
	b = begin(f);
	a = &f->answers[0];
	assert_int_equal(kafka_produce(b, event_n(f, 1, 40), NULL, UINT64_MAX), 0);
	kafka_batch_end(b);
	assert_true(fx_run_until(f, all_answered, 10000));
	assert_int_equal(a->status, KAFKA_OK);
	n = consume(f, TOPIC, recs, 4, 1, 10000);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].value_len, 40);
	assert_memory_equal(recs[0].value, event_n(f, 1, 40)->message.ptr, 40);
	assert_true(recs[0].has_key);
	assert_true(recs[0].has_seq);
	assert_true(recs[0].seq == UINT64_MAX);
	free(recs[0].value);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_no_key_for_empty_keys(void **state)
{
	struct record recs[4];
	struct answer *a;
	struct fx *f;
	size_t n;

	(void)state;
	for (int t = 0; t < 2; t++) {
		/* The template "", then a key that renders empty. */
		fx_key = t == 0 ? "" : "${fields.missing}";
		f = fx_start(10000, NULL);
		fx_key = "${host}";
		global_fx = f;
		a = produce_batch(f, 1, 1, 40);
		assert_true(fx_run_until(f, all_answered, 10000));
		assert_int_equal(a->status, KAFKA_OK);
		n = consume(f, TOPIC, recs, 4, 1, 10000);
		assert_int_equal(n, 1);
		assert_false(recs[0].has_key);
		free(recs[0].value);
		fx_stop(f);
	}
	global_fx = NULL;
}

static void
test_event_bytes_skip_other_fields(void **state)
{
	/* An unknown varint field (2), then entry 1 of 3 bytes. */
	static const uint8_t list[] = { 0x10, 0x96, 0x01, 0x0a, 0x03, 'a', 'b', 'c' };
	struct pbslice s;

	(void)state;
	assert_int_equal(kafka_event_bytes(list, list + sizeof(list), &s), 0);
	assert_ptr_equal(s.ptr, list + 5);
	assert_int_equal(s.len, 3);
	assert_int_equal(kafka_event_bytes(list, list + sizeof(list) - 1, &s), -EPROTO);
	assert_int_equal(kafka_event_bytes(list, list + 3, &s), -EPROTO);
}

static void
test_bad_configuration_is_refused(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct relay_config cfg = f->cfg;
	struct config_map_entry bad = { "no.such.property", "1", 0 };
	struct kafka *k = NULL;

	(void)state;
	cfg.kafka.topic = "${nope}";
	assert_int_equal(kafka_new(&cfg, 1 << 20, &k), -EINVAL);
	cfg.kafka.topic = "logs";
	cfg.kafka.properties.n = 1;
	cfg.kafka.properties.items = &bad;
	assert_int_equal(kafka_new(&cfg, 1 << 20, &k), -EINVAL);
	assert_null(k);
	kafka_free(NULL);
	fx_stop(f);
}

/* ------------------------------------------------------------- reload */

#define OTHER_TOPIC "other.nginx_access"

static bool
second_producer_in_place(struct fx *f)
{
	struct kafka_stats st;

	kafka_get_stats(f->k, &st);
	return st.generation == 2;
}

static bool
none_retiring(struct fx *f)
{
	struct kafka_stats st;

	kafka_get_stats(f->k, &st);
	return st.retiring == 0;
}

/* Applies f->cfg as a reload; returns whether it brought a new producer. */
static bool
reload(struct fx *f)
{
	struct kafka_reload *rl;
	bool fresh;

	assert_int_equal(kafka_reload_prepare(f->k, &f->cfg, &rl), 0);
	fresh = kafka_reload_new_producer(rl);
	kafka_reload_commit(f->k, rl);
	return fresh;
}

/* How many of recs (n) have seq first..first+count-1, each once; fails on a duplicate. */
static size_t
count_seqs(const struct record *recs, size_t n, uint64_t first, uint64_t count)
{
	size_t found = 0;

	for (uint64_t s = first; s < first + count; s++) {
		size_t seen = 0;

		for (size_t i = 0; i < n; i++)
			seen += recs[i].has_seq && recs[i].seq == s;
		assert_true(seen <= 1);
		found += seen;
	}
	return found;
}

static void
test_reload_with_identical_producer_settings_keeps_the_producer(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct kafka_stats st;
	struct answer *a;

	(void)state;
	global_fx = f;
	warm_up(f);
	assert_false(reload(f));
	a = produce_batch(f, 100, 10, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.generation, 1);
	assert_int_equal(st.retiring, 0);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_reload_with_a_property_librdkafka_refuses_keeps_everything(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct kafka_reload *rl = NULL;
	struct kafka_stats st;
	struct answer *a;
	size_t n;
	struct record *recs = calloc(64, sizeof(*recs));

	(void)state;
	global_fx = f;
	warm_up(f);
	f->cfg.kafka.topic = OTHER_TOPIC;
	f->props[f->cfg.kafka.properties.n++] = (struct config_map_entry){ "no.such.property", "1", 0 };
	assert_int_equal(kafka_reload_prepare(f->k, &f->cfg, &rl), -EINVAL);
	assert_null(rl);
	/* Neither the producer nor the topic changed. */
	a = produce_batch(f, 100, 10, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a->status, KAFKA_OK);
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.generation, 1);
	n = consume(f, TOPIC, recs, 64, 20, 10000);
	assert_int_equal(count_seqs(recs, n, 100, 10), 10);
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

static void
test_reload_templates_apply_to_batches_begun_after_it(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct kafka_batch *b;
	struct answer *a1, *a2;
	struct record *recs = calloc(64, sizeof(*recs));
	size_t n;

	(void)state;
	global_fx = f;
	assert_int_equal(rd_kafka_mock_topic_create(f->mc, OTHER_TOPIC, PARTITIONS, BROKERS), 0);
	warm_up(f);
	b = begin(f);
	a1 = &f->answers[f->nbatches - 1];
	assert_int_equal(kafka_produce(b, event_n(f, 100, 100), NULL, 100), 0);
	f->cfg.kafka.topic = "other.${stream}";
	f->cfg.kafka.key = "${agent}";
	assert_false(reload(f));
	/* A batch begun before keeps its templates to its end. */
	assert_int_equal(kafka_produce(b, event_n(f, 101, 100), NULL, 101), 0);
	kafka_batch_end(b);
	a2 = produce_batch(f, 200, 5, 100);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a1->status, KAFKA_OK);
	assert_int_equal(a2->status, KAFKA_OK);
	n = consume(f, TOPIC, recs, 64, 12, 10000);
	assert_int_equal(count_seqs(recs, n, 100, 2), 2);
	assert_int_equal(count_seqs(recs, n, 200, 5), 0);
	free_records(recs, n);
	recs = calloc(64, sizeof(*recs));
	n = consume(f, OTHER_TOPIC, recs, 64, 5, 10000);
	assert_int_equal(n, 5);
	assert_int_equal(count_seqs(recs, n, 200, 5), 5);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(recs[i].key, "agent-1");
	free_records(recs, n);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * The end of a hand-over to a reload's producer, now in place: b's records
 * from..99+n (seq 100 on) go on and b ends, a batch of seq 200..219
 * follows; each is answered OK once, b with its n records, the replaced
 * producer closes, and Kafka has every record once. Stops f.
 */
static void
handover_finish(struct fx *f, struct kafka_batch *b, struct answer *a1, unsigned from,
    unsigned n)
{
	struct record *recs = calloc(128, sizeof(*recs));
	struct answer *a2;
	struct kafka_stats st;
	size_t got;

	for (unsigned i = from; i < 100 + n; i++)
		assert_int_equal(kafka_produce(b, event_n(f, i, 100), NULL, i), 0);
	kafka_batch_end(b);
	a2 = produce_batch(f, 200, 20, 100);
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 0);
	assert_true(fx_run_until(f, all_answered, 20000));
	assert_int_equal(a1->calls, 1);
	assert_int_equal(a1->status, KAFKA_OK);
	assert_int_equal(a1->res.produced, n);
	assert_int_equal(a2->status, KAFKA_OK);
	/* The replaced producer closes once it holds nothing. */
	assert_true(fx_run_until(f, none_retiring, 20000));
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.generation, 2);
	assert_int_equal(st.batches_retry, 0);
	got = consume(f, TOPIC, recs, 128, n + 20, 10000);
	assert_int_equal(count_seqs(recs, got, 100, n), n);
	assert_int_equal(count_seqs(recs, got, 200, 20), 20);
	free_records(recs, got);
	fx_stop(f);
	global_fx = NULL;
}

/*
 * The start of a hand-over: a batch with records seq 100..119 (produced in
 * a held run, left held, when held) and a reload that brings a new
 * producer. Returns the batch, still open; *a1 is its answer.
 */
static struct kafka_batch *
handover_start(struct fx *f, bool held, struct answer **a1)
{
	struct kafka_batch *b;

	global_fx = f;
	warm_up(f);
	/* Slow answers: the first producer still has records in flight when it is replaced. */
	for (int id = 1; id <= BROKERS; id++)
		rd_kafka_mock_broker_set_rtt(f->mc, id, 500);
	b = begin(f);
	*a1 = &f->answers[f->nbatches - 1];
	if (held)
		kafka_loop_hold(f->kl);
	for (unsigned i = 100; i < 120; i++)
		assert_int_equal(kafka_produce(b, event_n(f, i, 100), NULL, i), 0);
	f->props[f->cfg.kafka.properties.n++] = (struct config_map_entry){ "linger.ms", "20", 0 };
	assert_true(reload(f));
	return b;
}

static void
test_reload_hands_over_to_a_new_producer_without_losing_a_record(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct answer *a1;
	struct kafka_batch *b = handover_start(f, false, &a1);

	(void)state;
	assert_true(fx_run_until(f, second_producer_in_place, 5000));
	/* One batch, records in both producers: answered once every one is delivered. */
	handover_finish(f, b, a1, 120, 40);
}

static void
test_a_producer_swap_waits_for_the_held_run_of_records(void **state)
{
	struct fx *f = fx_start(10000, NULL);
	struct answer *a1;
	struct kafka_batch *b = handover_start(f, true, &a1);

	(void)state;
	/*
	 * The poller would put the new producer in place within a poll (100
	 * ms): while the run holds the producer it must not, for the run's
	 * records go through the producer and topic handles it read.
	 */
	assert_false(fx_run_until(f, second_producer_in_place, 1000));
	for (unsigned i = 120; i < 140; i++)
		assert_int_equal(kafka_produce(b, event_n(f, i, 100), NULL, i), 0);
	kafka_loop_release(f->kl);
	assert_true(fx_run_until(f, second_producer_in_place, 5000));
	handover_finish(f, b, a1, 140, 60);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

static void
test_reload_reads_the_sasl_password_file_again(void **state)
{
	char path[] = "/tmp/test_kafka_pw.XXXXXX";
	struct kafka_stats st;
	struct fx *f;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "first\n");
	/* The password is unused on these plaintext brokers: only its changes matter here. */
	fx_cfg_password_file = path;
	f = fx_start(10000, NULL);
	fx_cfg_password_file = NULL;
	global_fx = f;
	assert_false(reload(f));
	write_file(path, "second\n");
	assert_true(reload(f));
	assert_true(fx_run_until(f, second_producer_in_place, 5000));
	assert_false(reload(f));
	kafka_get_stats(f->k, &st);
	assert_int_equal(st.generation, 2);
	fx_stop(f);
	global_fx = NULL;
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_ok_after_every_report_and_records_read_back),
		cmocka_unit_test(test_brokers_down_retry_after_timeout_then_ok_when_back),
		cmocka_unit_test(test_retriable_produce_errors_still_end_ok_without_duplicates),
		cmocka_unit_test(test_record_size_is_what_librdkafka_counts),
		cmocka_unit_test(test_events_larger_than_a_record_are_cut_into_pieces_that_reassemble),
		cmocka_unit_test(test_raw_pieces_join_into_the_message_bytes),
		cmocka_unit_test(test_hive_field_names_apply_to_the_records_after_a_reload),
		cmocka_unit_test(test_pieces_go_on_after_a_full_queue_without_repeating),
		cmocka_unit_test(test_protobuf_pieces_are_events_with_resolved_fields),
		cmocka_unit_test(test_event_whose_fields_fill_a_record_is_refused_alone),
		cmocka_unit_test(test_a_batch_with_some_records_failed_is_answered_retry_once),
		cmocka_unit_test(test_every_record_of_interleaved_batches_is_reported_once_and_answered_once),
		cmocka_unit_test(test_records_refused_in_a_run_are_acknowledged_alone_without_dead_letter_topic),
		cmocka_unit_test(test_records_refused_in_a_run_go_alone_to_the_dead_letter_topic),
		cmocka_unit_test(test_a_failed_run_answers_retry_only_the_batches_with_a_failed_record),
		cmocka_unit_test(test_flush_returns_after_every_report_is_counted_and_settled),
		cmocka_unit_test(test_broker_refusal_without_dead_letter_is_counted_and_acknowledged),
		cmocka_unit_test(test_broker_refusal_goes_to_the_dead_letter_topic),
		cmocka_unit_test(test_invalid_topic_goes_to_the_dead_letter_topic_with_its_reason),
		cmocka_unit_test(test_invalid_topic_without_dead_letter_topic_is_logged_counted_and_acknowledged),
		cmocka_unit_test(test_an_invalid_topic_after_valid_ones_is_still_set_aside),
		cmocka_unit_test(test_topic_not_allowed_for_the_agent_goes_to_the_dead_letter_topic),
		cmocka_unit_test(test_routes_pick_topic_and_key),
		cmocka_unit_test(test_records_to_more_topics_than_kept_handles_reach_each_topic),
		cmocka_unit_test(test_topic_authorization_failure_without_dead_letter_topic_is_held_and_reported),
		cmocka_unit_test(test_dead_letter_record_refused_by_authorization_is_held),
		cmocka_unit_test(test_topic_authorization_failure_with_a_dead_letter_topic_goes_there),
		cmocka_unit_test(test_records_carry_agent_and_seq_headers_when_headers_are_on),
		cmocka_unit_test(test_records_carry_no_header_when_headers_are_off),
		cmocka_unit_test(test_set_aside_record_keeps_every_header_when_headers_are_off),
		cmocka_unit_test(test_broker_refused_record_says_why_in_the_dead_letter_topic_when_headers_are_off),
		cmocka_unit_test(test_full_queue_is_eagain_then_writable),
		cmocka_unit_test(test_records_of_a_held_run_keep_their_order_and_count_across_batches_and_topics),
		cmocka_unit_test(test_a_queue_that_fills_in_the_middle_of_a_held_run_loses_and_duplicates_nothing),
		cmocka_unit_test(test_a_batch_of_a_held_run_is_answered_after_every_record_is_delivered),
		cmocka_unit_test(test_records_of_a_held_run_are_stamped_with_their_produce_time),
		cmocka_unit_test(test_answers_run_on_the_owners_loop_thread),
		cmocka_unit_test(test_late_reports_after_retry_are_dropped),
		cmocka_unit_test(test_fatal_error_recreates_the_producer),
		cmocka_unit_test(test_a_producer_recreated_while_its_reports_wait_for_their_loop_is_destroyed_safely),
		cmocka_unit_test(test_stop_answers_outstanding_batches_retry),
		cmocka_unit_test(test_stop_after_a_flush_answers_delivered_batches_ok),
		cmocka_unit_test(test_empty_and_abandoned_batches),
		cmocka_unit_test(test_protobuf_and_raw_values_and_keys),
		cmocka_unit_test(test_no_key_for_empty_keys),
		cmocka_unit_test(test_event_bytes_skip_other_fields),
		cmocka_unit_test(test_bad_configuration_is_refused),
		cmocka_unit_test(test_reload_with_identical_producer_settings_keeps_the_producer),
		cmocka_unit_test(test_reload_with_a_property_librdkafka_refuses_keeps_everything),
		cmocka_unit_test(test_reload_templates_apply_to_batches_begun_after_it),
		cmocka_unit_test(test_reload_hands_over_to_a_new_producer_without_losing_a_record),
		cmocka_unit_test(test_reload_reads_the_sasl_password_file_again),
		cmocka_unit_test(test_stats_count_the_records_of_every_loop_exactly),
		cmocka_unit_test(test_a_producer_swap_waits_for_the_held_run_of_records),
	};

	log_init("test_kafka", LOG_LEVEL_ERROR);
	/* One test or a pattern of them, e.g. TEST_KAFKA_FILTER='test_stats_*': the whole file takes minutes. */
	if (getenv("TEST_KAFKA_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_KAFKA_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
