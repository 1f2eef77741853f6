/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rdkafka_spin: a minimal reproduction, for librdkafka's maintainers, of
 * the broker thread waking up without work while an idempotent producer's
 * partitions have their 5 requests in flight (docs/notes/
 * librdkafka-idempotent-spin.md says what, where and why). It needs
 * librdkafka alone: its built-in mock cluster (test.mock.num.brokers) is
 * the broker.
 *
 * It produces RECORDS records of 350 bytes as fast as the queue takes them,
 * flushes, and prints the broker threads' poll loop wakeups (librdkafka's
 * own `wakeups` statistic, summed over the brokers) per 1,000 records, with
 * enable.idempotence on and off and every other setting the same
 * (max.in.flight 5, acks=all, linger.ms 5). Built by `make bench`, which
 * does not run it: `bench/rdkafka_spin [RECORDS]`.
 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define SPIN_VALUE 350

struct spin_run {
	uint64_t wakeups;        /* from the last statistics callback */
	bool have_stats;
};

/* Sums every broker's "wakeups" in a statistics JSON document. */
static uint64_t
spin_sum_wakeups(const char *json)
{
	static const char key[] = "\"wakeups\":";
	uint64_t sum = 0;

	for (const char *p = strstr(json, key); p != NULL; p = strstr(p, key)) {
		p += sizeof(key) - 1;
		sum += strtoull(p, NULL, 10);
	}
	return sum;
}

static int
spin_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	struct spin_run *run = opaque;

	(void)rk;
	(void)len;
	run->wakeups = spin_sum_wakeups(json);
	run->have_stats = true;
	return 0;
}

static int
spin_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char err[256];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "rdkafka_spin: %s=%s: %s\n", name, value, err);
		return -EINVAL;
	}
	return 0;
}

static double
spin_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the whole process: the mock brokers' threads too, alike in both runs. */
static double
spin_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Produces n records with idempotence on or off; prints one line. */
static int
spin_run(long n, bool idempotent)
{
	static char value[SPIN_VALUE];
	struct spin_run run = { 0, false };
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char err[256];
	double t0, t1, c0, c1;
	long sent = 0;

	memset(value, 'x', sizeof(value));
	if (spin_set(conf, "test.mock.num.brokers", "3") != 0 ||
	    spin_set(conf, "enable.idempotence", idempotent ? "true" : "false") != 0 ||
	    spin_set(conf, "max.in.flight", "5") != 0 ||
	    spin_set(conf, "acks", "all") != 0 ||
	    spin_set(conf, "linger.ms", "5") != 0 ||
	    spin_set(conf, "queue.buffering.max.messages", "100000") != 0 ||
	    spin_set(conf, "statistics.interval.ms", "100") != 0) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rd_kafka_conf_set_stats_cb(conf, spin_stats_cb);
	rd_kafka_conf_set_opaque(conf, &run);
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "rdkafka_spin: rd_kafka_new: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	t0 = spin_now();
	c0 = spin_cpu();
	while (sent < n) {
		rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("spin"),
		    RD_KAFKA_V_VALUE(value, sizeof(value)), RD_KAFKA_V_END);

		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(rk, 10);
			continue;
		}
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "rdkafka_spin: produce: %s\n", rd_kafka_err2str(e));
			rd_kafka_destroy(rk);
			return -EIO;
		}
		sent++;
		rd_kafka_poll(rk, 0);
	}
	if (rd_kafka_flush(rk, 60 * 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "rdkafka_spin: flush did not finish in 60 s\n");
		rd_kafka_destroy(rk);
		return -ETIMEDOUT;
	}
	t1 = spin_now();
	c1 = spin_cpu();
	/* Two statistics intervals: the last one counts every wakeup of the run. */
	run.have_stats = false;
	for (int i = 0; i < 50 && !run.have_stats; i++)
		rd_kafka_poll(rk, 100);
	run.have_stats = false;
	for (int i = 0; i < 50 && !run.have_stats; i++)
		rd_kafka_poll(rk, 100);
	rd_kafka_destroy(rk);
	printf("enable.idempotence=%-5s  %ld records in %.2f s, %.2f us CPU each, broker wakeups %"
	    PRIu64 " (%.1f per 1000 records)\n", idempotent ? "true" : "false", n, t1 - t0,
	    (c1 - c0) * 1e6 / (double)n, run.wakeups, (double)run.wakeups * 1000.0 / (double)n);
	return 0;
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;

	if (n <= 0) {
		fprintf(stderr, "usage: rdkafka_spin [RECORDS]\n");
		return 2;
	}
	printf("librdkafka %s, mock cluster of 3 brokers in process, %d-byte records, "
	    "acks=all, max.in.flight=5, linger.ms=5\n", rd_kafka_version_str(), SPIN_VALUE);
	if (spin_run(n, false) != 0 || spin_run(n, true) != 0)
		return 1;
	return 0;
}
