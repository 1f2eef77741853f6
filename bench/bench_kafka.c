/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_kafka: CPU per record of producing into Kafka, with and without the
 * two headers every logferry record carries (logferry-agent, logferry-seq),
 * to set against docs/performance.md (librdkafka 2.0.2, 350 B, acks=all,
 * idempotent, linger 5 ms: 1.05 us per record; + 2 headers: 2.55 us).
 *
 * The mock Kafka cluster runs in a child process, so the CPU measured
 * (getrusage of this process: the caller's thread and librdkafka's) is the
 * producer's alone, not the broker's. With two CPUs or more the broker gets
 * the last one and the producer the others: sharing them made the CPU per
 * record swing by a factor of two from run to run on the 2-vCPU machine.
 *
 * Variants, each over the same records:
 *   none        no headers
 *   v_header    two RD_KAFKA_V_HEADER in rd_kafka_producev (librdkafka builds
 *               a header list sized for 8 per record)
 *   headers_2   a list built by us per record: rd_kafka_headers_new(2) and
 *               two rd_kafka_header_add, passed with RD_KAFKA_V_HEADERS
 *   copy        a list with logferry-agent built once per batch, copied per
 *               record (rd_kafka_headers_copy) and logferry-seq added
 *   rkt         as headers_2, with a topic handle (RD_KAFKA_V_RKT) instead
 *               of the topic name looked up per record
 *   module      relay/kafka.c itself: kafka_produce of NGINX events (in the
 *               four sets of field names the parser gives, "-" user and
 *               referer left out) as JSON
 *               records (the relay's Kafka path: routing, JSON, headers),
 *               batches of 1000 completed on a uv loop
 *   module_noheaders  module with kafka.headers off (the relay's fastest
 *               path: the records of a run go to librdkafka together)
 *
 * Usage: bench_kafka [RECORDS [VARIANT...]]   (default 300000, all variants)
 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <uv.h>

#include "bench/bench_util.h"
#include "common/log.h"
#include "proto/event.h"
#include "relay/kafka.h"
#include "relay/relay_config.h"

#define BENCH_TOPIC "bench"
#define BENCH_VALUE 350
#define BENCH_BATCH 1000

enum bench_variant {
	V_NONE, V_HEADER, V_HEADERS_2, V_COPY, V_RKT, V_MODULE, V_MODULE_NOHDR, V_COUNT
};

static const char *const variant_names[V_COUNT] = {
	"none", "v_header", "headers_2", "copy", "rkt", "module", "module_noheaders",
};

/* ---------------------------------------------------------------- cluster */

/* Keeps this process (and the threads it starts later) on CPUs first..last. */
static void
bench_pin(int first, int last)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int c = first; c <= last; c++)
		CPU_SET(c, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		perror("bench_kafka: sched_setaffinity");
}

/*
 * Runs the mock cluster in a child: it writes the bootstrap address into
 * bootstrap and lives until the parent closes *ctl.
 */
static pid_t
bench_cluster_start(char *bootstrap, size_t size, int *ctl, int cpus)
{
	int addr[2], stop[2];
	pid_t pid;
	ssize_t n;

	if (pipe(addr) != 0 || pipe(stop) != 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		char errstr[256], c;
		rd_kafka_conf_t *conf;
		rd_kafka_mock_cluster_t *mc;
		rd_kafka_t *rk;
		const char *b;

		if (cpus > 1)
			bench_pin(cpus - 1, cpus - 1);
		conf = rd_kafka_conf_new();
		close(addr[0]);
		close(stop[1]);
		rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
		if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) == NULL ||
		    (mc = rd_kafka_mock_cluster_new(rk, 3)) == NULL)
			_exit(1);
		rd_kafka_mock_topic_create(mc, BENCH_TOPIC, 3, 3);
		b = rd_kafka_mock_cluster_bootstraps(mc);
		if (write(addr[1], b, strlen(b)) < 0)
			_exit(1);
		close(addr[1]);
		while (read(stop[0], &c, 1) > 0)
			;
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(rk);
		_exit(0);
	}
	close(addr[1]);
	close(stop[0]);
	n = read(addr[0], bootstrap, size - 1);
	close(addr[0]);
	if (n <= 0) {
		close(stop[1]);
		waitpid(pid, NULL, 0);
		return -1;
	}
	bootstrap[n] = '\0';
	*ctl = stop[1];
	return pid;
}

/* ------------------------------------------------------ plain librdkafka */

static void
bench_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	atomic_ulong *failed = opaque;

	(void)rk;
	if (m->err)
		atomic_fetch_add(failed, 1);
}

static rd_kafka_t *
bench_producer(const char *bootstrap, atomic_ulong *failed)
{
	static const char *const props[][2] = {
		{ "enable.idempotence", "true" }, { "acks", "all" }, { "linger.ms", "5" },
		{ "message.timeout.ms", "30000" }, { "log_level", "4" },
	};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];
	rd_kafka_t *rk;

	rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
		rd_kafka_conf_set(conf, props[i][0], props[i][1], errstr, sizeof(errstr));
	rd_kafka_conf_set_dr_msg_cb(conf, bench_dr);
	rd_kafka_conf_set_opaque(conf, failed);
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) == NULL) {
		fprintf(stderr, "bench_kafka: rd_kafka_new: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* Produces one record the way variant v does; returns librdkafka's answer. */
static rd_kafka_resp_err_t
bench_produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, enum bench_variant v,
    const char *value, const rd_kafka_headers_t *batch_hdrs, uint64_t seq)
{
	static const char agent[] = "web-01";
	rd_kafka_headers_t *h;
	rd_kafka_resp_err_t err;
	char seqs[24];
	int seqlen = snprintf(seqs, sizeof(seqs), "%" PRIu64, seq);

	switch (v) {
	case V_NONE:
		return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(BENCH_TOPIC),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(agent, 6),
		    RD_KAFKA_V_VALUE((void *)value, BENCH_VALUE), RD_KAFKA_V_END);
	case V_HEADER:
		return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(BENCH_TOPIC),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(agent, 6),
		    RD_KAFKA_V_VALUE((void *)value, BENCH_VALUE),
		    RD_KAFKA_V_HEADER("logferry-agent", agent, 6),
		    RD_KAFKA_V_HEADER("logferry-seq", seqs, seqlen), RD_KAFKA_V_END);
	case V_HEADERS_2:
	case V_RKT:
		h = rd_kafka_headers_new(2);
		rd_kafka_header_add(h, "logferry-agent", 14, agent, 6);
		rd_kafka_header_add(h, "logferry-seq", 12, seqs, seqlen);
		break;
	case V_COPY:
		h = rd_kafka_headers_copy(batch_hdrs);
		rd_kafka_header_add(h, "logferry-seq", 12, seqs, seqlen);
		break;
	default:
		abort();
	}
	if (v == V_RKT)
		err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(agent, 6),
		    RD_KAFKA_V_VALUE((void *)value, BENCH_VALUE), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_END);
	else
		err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(BENCH_TOPIC),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(agent, 6),
		    RD_KAFKA_V_VALUE((void *)value, BENCH_VALUE), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_END);
	/* The message owns the list only when the call succeeded. */
	if (err)
		rd_kafka_headers_destroy(h);
	return err;
}

/*
 * Delivery reports are served by a thread of their own, as in the relay:
 * messages are then freed on another thread than the one that allocated
 * them, which costs glibc's malloc more than a single-threaded loop would.
 */
struct bench_poller {
	rd_kafka_t *rk;
	atomic_bool stop;
};

static void *
bench_poll_main(void *arg)
{
	struct bench_poller *p = arg;

	while (!atomic_load(&p->stop))
		rd_kafka_poll(p->rk, 100);
	return NULL;
}

static int
bench_plain(const char *bootstrap, enum bench_variant v, unsigned long n, double *cpu,
    double *wall)
{
	atomic_ulong failed = 0;
	rd_kafka_t *rk = bench_producer(bootstrap, &failed);
	struct bench_poller poller = { .rk = rk };
	pthread_t tid;
	rd_kafka_topic_t *rkt;
	rd_kafka_headers_t *batch_hdrs;
	char value[BENCH_VALUE];
	double c0, w0;

	if (rk == NULL)
		return -1;
	memset(value, 'x', sizeof(value));
	rkt = rd_kafka_topic_new(rk, BENCH_TOPIC, NULL);
	batch_hdrs = rd_kafka_headers_new(2);
	rd_kafka_header_add(batch_hdrs, "logferry-agent", 14, "web-01", 6);
	if (pthread_create(&tid, NULL, bench_poll_main, &poller) != 0)
		abort();
	/* Warm up: metadata, connections, producer id. */
	bench_produce_one(rk, rkt, v, value, batch_hdrs, 0);
	while (rd_kafka_outq_len(rk) > 0)
		usleep(1000);
	c0 = bench_cpu_seconds();
	w0 = bench_wall_seconds();
	for (unsigned long i = 0; i < n; i++) {
		rd_kafka_resp_err_t err;

		while ((err = bench_produce_one(rk, rkt, v, value, batch_hdrs, i + 1)) ==
		    RD_KAFKA_RESP_ERR__QUEUE_FULL)
			usleep(1000);
		if (err) {
			fprintf(stderr, "bench_kafka: produce: %s\n", rd_kafka_err2str(err));
			break;
		}
	}
	while (rd_kafka_outq_len(rk) > 0)
		usleep(1000);
	*cpu = bench_cpu_seconds() - c0;
	*wall = bench_wall_seconds() - w0;
	atomic_store(&poller.stop, true);
	pthread_join(tid, NULL);
	rd_kafka_headers_destroy(batch_hdrs);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	if (failed) {
		fprintf(stderr, "bench_kafka: %lu records failed\n", (unsigned long)failed);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------- relay module */

struct bench_module {
	uv_loop_t loop;
	struct kafka_loop *kl;
	struct kafka_batch *batch;
	unsigned long n, next, open_batches, failed;
	bool blocked;
	struct event ev;
	/*
	 * The parser leaves out a "-" user or referer, so NGINX events come
	 * with four sets of names in turn, as bench/nginx_log.py's lines do:
	 * set (user present) | (referer present) << 1; status is field
	 * status_at[set].
	 */
	struct event_field fields[4][11];
	size_t nfields[4], status_at[4];
	char line[256];
};

static void bench_module_fill(struct bench_module *m);

static void
bench_module_done(struct kafka_batch *b, const struct kafka_result *res, void *arg)
{
	struct bench_module *m = arg;

	(void)b;
	if (res->status != KAFKA_OK)
		m->failed++;
	m->open_batches--;
}

static void
bench_module_writable(struct kafka_loop *kl, void *arg)
{
	struct bench_module *m = arg;

	(void)kl;
	m->blocked = false;
	bench_module_fill(m);
}

/* Produces until every record is in or librdkafka's queue is full, in one hold as the relay's workers do. */
static void
bench_module_fill(struct bench_module *m)
{
	kafka_loop_hold(m->kl);
	while (m->next < m->n && !m->blocked) {
		int r;

		if (m->batch == NULL) {
			if (kafka_batch_begin(m->kl, "web-01", bench_module_done, m, &m->batch) != 0)
				abort();
			m->open_batches++;
		}
		{
			unsigned set = (m->next % 3 == 0) | (m->next % 2 == 0) << 1;

			m->ev.fields = m->fields[set];
			m->ev.nfields = m->nfields[set];
			m->fields[set][m->status_at[set]].v.integer = m->next % 17 ? 200 : 404;
		}
		m->ev.ts = UINT64_C(1795341600000000000) + m->next * 1000;
		r = kafka_produce(m->batch, &m->ev, NULL, m->next + 1);
		if (r == -EAGAIN) {
			m->blocked = true;
			break;
		}
		if (r != 0)
			abort();
		m->next++;
		if (m->next % BENCH_BATCH == 0 || m->next == m->n) {
			kafka_batch_end(m->batch);
			m->batch = NULL;
		}
	}
	kafka_loop_release(m->kl);
}

static void
bench_module_event(struct bench_module *m)
{
	static const char *const names[11] = { "remote_addr", "remote_user", "time_local",
		"request", "method", "path", "protocol", "status", "body_bytes_sent",
		"http_referer", "http_user_agent" };
	static const uint32_t off[11][2] = { { 0, 11 }, { 14, 1 }, { 17, 26 }, { 46, 14 },
		{ 46, 3 }, { 50, 1 }, { 52, 8 }, { 0, 0 }, { 0, 0 }, { 70, 1 }, { 74, 8 } };
	struct event *ev = &m->ev;

	snprintf(m->line, sizeof(m->line), "%s",
	    "203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"");
	memset(ev, 0, sizeof(*ev));
	ev->host = (struct pbslice){ (const uint8_t *)"web-01", 6 };
	ev->stream = (struct pbslice){ (const uint8_t *)"nginx_access", 12 };
	ev->source = (struct pbslice){ (const uint8_t *)"/var/log/nginx/access.log", 25 };
	ev->message = (struct pbslice){ (const uint8_t *)m->line, strlen(m->line) };
	for (unsigned set = 0; set < 4; set++) {
		size_t n = 0;

		for (int f = 0; f < 11; f++) {
			struct event_field *fl = &m->fields[set][n];

			if ((f == 1 && !(set & 1)) || (f == 9 && !(set & 2)))
				continue;
			fl->key = (struct pbslice){ (const uint8_t *)names[f], strlen(names[f]) };
			fl->type = f == 7 || f == 8 ? EVENT_INTEGER : EVENT_SLICE;
			fl->v.slice.offset = off[f][0];
			fl->v.slice.length = off[f][1];
			if (f == 7)
				m->status_at[set] = n;
			if (f == 8)
				fl->v.integer = 612;
			n++;
		}
		m->nfields[set] = n;
	}
	ev->fields = m->fields[3];
	ev->nfields = m->nfields[3];
}

static int
bench_module(const char *bootstrap, bool headers, unsigned long n, double *cpu, double *wall)
{
	struct relay_config cfg;
	struct config_addr broker = { .text = (char *)bootstrap };
	struct bench_module *m = calloc(1, sizeof(*m));
	struct kafka *k;
	double c0, w0;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.id = "bench";
	cfg.kafka.brokers.n = 1;
	cfg.kafka.brokers.items = &broker;
	cfg.kafka.topic = BENCH_TOPIC;
	cfg.kafka.key = "${host}";
	cfg.kafka.format = RELAY_FORMAT_JSON;
	cfg.kafka.headers = headers;
	cfg.kafka.delivery_timeout_ms = 30000;
	if (m == NULL || (r = kafka_new(&cfg, 256u << 20, &k)) != 0)
		return -1;
	uv_loop_init(&m->loop);
	if (kafka_loop_new(k, &m->loop, bench_module_writable, m, &m->kl) != 0)
		abort();
	bench_module_event(m);
	/* Warm up as the plain variants do. */
	m->n = 1;
	bench_module_fill(m);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	m->n = n + 1;
	c0 = bench_cpu_seconds();
	w0 = bench_wall_seconds();
	bench_module_fill(m);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	*cpu = bench_cpu_seconds() - c0;
	*wall = bench_wall_seconds() - w0;
	kafka_loop_close(m->kl);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	uv_loop_close(&m->loop);
	kafka_free(k);
	r = m->failed || m->open_batches || m->next != m->n ? -1 : 0;
	if (r != 0)
		fprintf(stderr, "bench_kafka: module: %lu batches failed, %lu open, %lu of %lu produced\n",
		    m->failed, m->open_batches, m->next, m->n);
	free(m);
	return r;
}

int
main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 300000;
	bool want[V_COUNT];
	char bootstrap[512];
	int ctl, rc = 0, cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	pid_t pid;

	if (n == 0) {
		fprintf(stderr, "usage: bench_kafka [RECORDS [VARIANT...]]\n");
		return 2;
	}
	for (int v = 0; v < V_COUNT; v++)
		want[v] = argc <= 2;
	for (int i = 2; i < argc; i++) {
		int v;

		for (v = 0; v < V_COUNT && strcmp(argv[i], variant_names[v]) != 0; v++)
			;
		if (v == V_COUNT) {
			fprintf(stderr, "bench_kafka: unknown variant '%s'\n", argv[i]);
			return 2;
		}
		want[v] = true;
	}
	log_init("bench_kafka", LOG_LEVEL_WARN);
	/* The child must not inherit librdkafka threads: fork first. */
	if ((pid = bench_cluster_start(bootstrap, sizeof(bootstrap), &ctl, cpus)) < 0) {
		fprintf(stderr, "bench_kafka: cannot start the mock cluster\n");
		return 1;
	}
	if (cpus > 1)
		bench_pin(0, cpus - 2);
	printf("records per variant %lu, value %d B (module: NGINX JSON records), "
	    "mock cluster of 3 brokers in a child process%s\n", n, BENCH_VALUE,
	    cpus > 1 ? " on a CPU of its own" : "");
	printf("%-16s %14s %15s\n", "variant", "us CPU/record", "us wall/record");
	for (int v = 0; v < V_COUNT; v++) {
		double cpu = 0, wall = 0;
		int r;

		if (!want[v])
			continue;
		r = v == V_MODULE || v == V_MODULE_NOHDR ?
		    bench_module(bootstrap, v == V_MODULE, n, &cpu, &wall) :
		    bench_plain(bootstrap, v, n, &cpu, &wall);
		if (r != 0) {
			rc = 1;
			continue;
		}
		printf("%-16s %14.3f %15.3f\n", variant_names[v], cpu * 1e6 / (double)n,
		    wall * 1e6 / (double)n);
		fflush(stdout);
	}
	close(ctl);
	waitpid(pid, NULL, 0);
	return rc;
}
