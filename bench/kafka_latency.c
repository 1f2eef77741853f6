/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kafka_latency: counts the records that arrive in Kafka topics, says when
 * the first and the last arrived, and optionally how long each took from
 * being written (a time stamp embedded in the record) and whether each
 * arrived exactly once.
 *
 * A plain librdkafka consumer without a group: it assigns every partition of
 * the topics from the beginning, fetches with fetch.wait.max.ms=10, and stops
 * as soon as the expected number of records arrived (or a time limit hit).
 * Arrival is when this consumer sees the record, so the figures include its
 * own fetch delay (up to about 10 ms).
 *
 * Written for bench/bench_e2e.sh; also usable by integration tests: it exits 0
 * only when the expected records arrived (and, with --check-unique, each
 * exactly once). Run with --help for the options and the output.
 */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define PROG "kafka_latency"
#define MAX_TOPICS 64
#define MAX_PROPS 64
#define MAX_AGENTS 4096
#define HDR_AGENT "logferry-agent"
#define HDR_SEQ "logferry-seq"

/* What identifies a record for --check-unique. */
#define KEY_SEQ 1u	/* headers logferry-agent + logferry-seq */
#define KEY_ID 2u	/* the number after --id-marker in the value */

struct opts {
	const char *brokers;
	const char *topics[MAX_TOPICS];
	int ntopics;
	uint64_t count;
	double timeout_s;
	double idle_s;
	double linger_s;
	bool latency;
	const char *marker;
	unsigned unique;
	const char *id_marker;
	const char *props[MAX_PROPS];
	int nprops;
	bool quiet;
};

/* A growable array of 64-bit values (latencies, ids). */
struct vec {
	uint64_t *v;
	size_t n, cap;
};

/* One key per record: which agent (index into agents[]) and its number. */
struct ukey {
	uint64_t id;
	uint32_t agent;
};

/* Distinct keys: an open-addressing hash set (agent stored + 1, 0 = free)
 * and, for the gap count at the end, the same keys in arrival order. */
struct ukeys {
	struct ukey *set;
	size_t set_cap;		/* a power of two, kept at most half full */
	struct ukey *v;
	size_t n, cap;		/* distinct keys */
	uint64_t dups;		/* records whose key was already seen */
	uint64_t no_key;	/* records without the key */
};

struct state {
	uint64_t records, bytes, errors;
	int64_t first_ns, last_ns, reached_ns;
	uint64_t per_topic[MAX_TOPICS];
	struct vec lat;		/* arrival - written, ns; negative clamped to 0 */
	struct vec lat_ts;	/* record time stamp (producer's CreateTime) - written */
	uint64_t lat_missing;	/* records without a parsable write time */
	struct ukeys seq, id;
	char *agents[MAX_AGENTS];
	uint32_t nagents;
	char marker_esc[128];	/* marker with '/' escaped as JSON may write it */
	char id_marker_esc[128];
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int64_t
now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
usage(FILE *out)
{
	fprintf(out,
	    "Usage: " PROG " -b BROKERS -t TOPIC [-t TOPIC]... [options]\n"
	    "\n"
	    "Reads every partition of the topics from the beginning (no consumer group,\n"
	    "nothing committed) until COUNT records have arrived, then reports. Start it\n"
	    "(and give it a second) before records flow: started meanwhile, its first\n"
	    "arrivals carry its own start-up.\n"
	    "\n"
	    "  -b, --brokers LIST       bootstrap servers, host:port[,host:port...]\n"
	    "  -t, --topic NAME         a topic to read (repeatable)\n"
	    "  -n, --count N            records expected; stop when they have arrived\n"
	    "                           (0: read until --timeout or --idle)\n"
	    "  -T, --timeout SEC        give up after SEC seconds (default 60)\n"
	    "  -i, --idle SEC           give up when no record arrived for SEC seconds\n"
	    "                           (counted from the start too; default: off)\n"
	    "  -l, --latency            the value holds its write time: CLOCK_REALTIME\n"
	    "                           nanoseconds after MARKER; report arrival - written\n"
	    "  -m, --marker STR         the latency marker (default \"/t/\"; also found\n"
	    "                           with '/' escaped as \"\\/\" as in JSON)\n"
	    "  -u, --check-unique[=KEY] check that each record arrived exactly once; KEY:\n"
	    "                           seq   headers logferry-agent + logferry-seq (default)\n"
	    "                           id    the number after --id-marker in the value\n"
	    "                           both  both of the above\n"
	    "      --id-marker STR      marker before a line's id (default \"rid=\")\n"
	    "      --linger SEC         after COUNT arrived, go on reading SEC seconds to\n"
	    "                           see late duplicates (default 0)\n"
	    "  -X, --property K=V       a librdkafka consumer property (repeatable)\n"
	    "  -q, --quiet              no progress or warnings on stderr\n"
	    "  -h, --help               this help\n"
	    "\n"
	    "Output on stdout, one KEY=VALUE per line. At the moment they happen (flushed,\n"
	    "for scripts to act on): in_kafka_ns=T when the partitions' high watermarks\n"
	    "add up to COUNT (polled every 10 ms: on a fresh topic, COUNT records are in\n"
	    "Kafka, read yet or not), reached_ns=T when this consumer has read COUNT.\n"
	    "Times are CLOCK_REALTIME nanoseconds. At the end:\n"
	    "  status        ok, timeout, idle, interrupted, no_metadata, fell_behind\n"
	    "                (Kafka had COUNT but retention deleted some before they were\n"
	    "                read: the mock cluster keeps 5 MiB per partition), extra (more\n"
	    "                than COUNT in the topics), duplicates, no_key, missing, gaps\n"
	    "  records, expected, bytes, topic.NAME   what this consumer read\n"
	    "  kafka_low, kafka_high   sums of the watermarks (high: records written)\n"
	    "  kafka_first_ns, kafka_full_ns, kafka_span_s, kafka_rate   when the high\n"
	    "                watermarks first showed a record and COUNT; COUNT-1 / span\n"
	    "  first_ns, last_ns, span_s, rate   the same from this consumer's arrivals\n"
	    "  with --latency: latency_samples, latency_unparsed, latency_unread (COUNT -\n"
	    "                records: a percentile among them is only known to be above\n"
	    "                max), latency_{min,p50,p90,p99,max}_ms (arrival - written),\n"
	    "                produce_{p50,p99,max}_ms (the record's time stamp, set by\n"
	    "                the producer when it was handed the record, - written; ms)\n"
	    "  with --check-unique, per key (seq, id): KEY_distinct, KEY_duplicates,\n"
	    "                KEY_gaps (numbers missing between the lowest and the highest,\n"
	    "                per agent), KEY_missing (COUNT - distinct), KEY_no_key\n"
	    "\n"
	    "Exit status: 0 when COUNT records arrived (with --check-unique: COUNT\n"
	    "distinct records, no duplicates, no gaps, none without the key; without\n"
	    "COUNT: at least one record), 1 when not, 2 on a usage error.\n");
}

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static bool
parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 1e7)
		return false;
	*out = v;
	return true;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_ID_MARKER = 256, OPT_LINGER };
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "idle", required_argument, NULL, 'i' },
		{ "latency", no_argument, NULL, 'l' },
		{ "marker", required_argument, NULL, 'm' },
		{ "check-unique", optional_argument, NULL, 'u' },
		{ "id-marker", required_argument, NULL, OPT_ID_MARKER },
		{ "linger", required_argument, NULL, OPT_LINGER },
		{ "property", required_argument, NULL, 'X' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->timeout_s = 60;
	o->marker = "/t/";
	o->id_marker = "rid=";
	while ((c = getopt_long(argc, argv, "b:t:n:T:i:lm:u::X:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o->brokers = optarg;
			break;
		case 't':
			if (o->ntopics == MAX_TOPICS || *optarg == '\0') {
				fprintf(stderr, PROG ": --topic: empty name or more than %d\n",
				    MAX_TOPICS);
				return 2;
			}
			o->topics[o->ntopics++] = optarg;
			break;
		case 'n':
			if (!parse_u64(optarg, &o->count)) {
				fprintf(stderr, PROG ": --count '%s': not a number\n", optarg);
				return 2;
			}
			break;
		case 'T':
		case 'i':
		case OPT_LINGER:
			if (!parse_secs(optarg, c == 'T' ? &o->timeout_s :
			    c == 'i' ? &o->idle_s : &o->linger_s)) {
				fprintf(stderr, PROG ": '%s': not a number of seconds\n", optarg);
				return 2;
			}
			break;
		case 'l':
			o->latency = true;
			break;
		case 'm':
		case OPT_ID_MARKER:
			if (*optarg == '\0' || strlen(optarg) > 60) {
				fprintf(stderr, PROG ": a marker must have 1 to 60 bytes\n");
				return 2;
			}
			if (c == 'm')
				o->marker = optarg;
			else
				o->id_marker = optarg;
			break;
		case 'u':
			if (optarg == NULL || strcmp(optarg, "seq") == 0)
				o->unique = KEY_SEQ;
			else if (strcmp(optarg, "id") == 0)
				o->unique = KEY_ID;
			else if (strcmp(optarg, "both") == 0)
				o->unique = KEY_SEQ | KEY_ID;
			else {
				fprintf(stderr, PROG ": --check-unique=%s: seq, id or both\n", optarg);
				return 2;
			}
			break;
		case 'X':
			if (o->nprops == MAX_PROPS || strchr(optarg, '=') == NULL) {
				fprintf(stderr, PROG ": --property '%s': expected K=V\n", optarg);
				return 2;
			}
			o->props[o->nprops++] = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o->brokers == NULL || o->ntopics == 0) {
		fprintf(stderr, PROG ": --brokers and at least one --topic are required "
		    "(--help for usage)\n");
		return 2;
	}
	if (o->count == 0 && o->timeout_s == 0 && o->idle_s == 0) {
		fprintf(stderr, PROG ": without --count, give --timeout or --idle\n");
		return 2;
	}
	return 0;
}

/* ---------------------------------------------------------------- storage */

static bool
vec_push(struct vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 65536;
		uint64_t *v = realloc(a->v, cap * sizeof(*v));

		if (v == NULL)
			return false;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return true;
}

static size_t
ukey_slot(const struct ukey *k, size_t mask)
{
	uint64_t h = (k->id ^ ((uint64_t)k->agent << 40)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 20) & mask;
}

/* Adds the key if it is new (false only when out of memory). */
static bool
ukeys_add(struct ukeys *a, uint32_t agent, uint64_t id)
{
	struct ukey k = { .id = id, .agent = agent + 1 };
	size_t i;

	if ((a->n + 1) * 2 > a->set_cap) {
		size_t cap = a->set_cap ? a->set_cap * 2 : 1u << 17;
		struct ukey *set = calloc(cap, sizeof(*set));

		if (set == NULL)
			return false;
		for (size_t j = 0; j < a->set_cap; j++) {
			if (a->set[j].agent == 0)
				continue;
			for (i = ukey_slot(&a->set[j], cap - 1); set[i].agent != 0; i = (i + 1) & (cap - 1))
				;
			set[i] = a->set[j];
		}
		free(a->set);
		a->set = set;
		a->set_cap = cap;
	}
	for (i = ukey_slot(&k, a->set_cap - 1); a->set[i].agent != 0; i = (i + 1) & (a->set_cap - 1))
		if (a->set[i].agent == k.agent && a->set[i].id == k.id) {
			a->dups++;
			return true;
		}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 65536;
		struct ukey *v = realloc(a->v, cap * sizeof(*v));

		if (v == NULL)
			return false;
		a->v = v;
		a->cap = cap;
	}
	a->set[i] = k;
	a->v[a->n++] = k;
	return true;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
cmp_ukey(const void *a, const void *b)
{
	const struct ukey *x = a, *y = b;

	if (x->agent != y->agent)
		return x->agent < y->agent ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* ---------------------------------------------------------------- records */

/* The decimal number right after the first occurrence of marker (or of
 * its JSON-escaped form) that is followed by a digit. */
static bool
find_number(const char *p, size_t n, const char *marker, const char *esc, uint64_t *out)
{
	for (int pass = 0; pass < 2; pass++) {
		const char *m = pass == 0 ? marker : esc;
		size_t ml = strlen(m);
		const char *s = p, *end = p + n;

		if (pass == 1 && (*esc == '\0' || strcmp(esc, marker) == 0))
			break;
		while (ml > 0 && (size_t)(end - s) > ml &&
		    (s = memmem(s, (size_t)(end - s), m, ml)) != NULL) {
			const char *d = s + ml;
			uint64_t v = 0;
			int digits = 0;

			while (d < end && *d >= '0' && *d <= '9' && digits < 19) {
				v = v * 10 + (uint64_t)(*d - '0');
				d++;
				digits++;
			}
			if (digits > 0) {
				*out = v;
				return true;
			}
			s++;
		}
	}
	return false;
}

static void
json_escape_slashes(const char *in, char *out, size_t size)
{
	size_t j = 0;

	for (; *in != '\0' && j + 2 < size; in++) {
		if (*in == '/')
			out[j++] = '\\';
		out[j++] = *in;
	}
	out[j] = '\0';
}

static bool
header_seq(const rd_kafka_message_t *m, struct state *st, uint32_t *agent, uint64_t *seq)
{
	rd_kafka_headers_t *h = NULL;
	const void *a = NULL, *s = NULL;
	size_t alen = 0, slen = 0;
	char buf[24];
	uint32_t i;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, HDR_AGENT, &a, &alen) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, HDR_SEQ, &s, &slen) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    a == NULL || s == NULL || slen == 0 || slen >= sizeof(buf))
		return false;
	memcpy(buf, s, slen);
	buf[slen] = '\0';
	if (!parse_u64(buf, seq))
		return false;
	for (i = 0; i < st->nagents; i++)
		if (strlen(st->agents[i]) == alen && memcmp(st->agents[i], a, alen) == 0)
			break;
	if (i == st->nagents) {
		if (st->nagents == MAX_AGENTS || (st->agents[i] = strndup(a, alen)) == NULL)
			return false;
		st->nagents++;
	}
	*agent = i;
	return true;
}

static void
on_record(const struct opts *o, struct state *st, const rd_kafka_message_t *m, int64_t at)
{
	const char *p = m->payload;
	const char *topic = rd_kafka_topic_name(m->rkt);
	uint64_t v;
	uint32_t agent;

	if (st->records == 0)
		st->first_ns = at;
	st->last_ns = at;
	st->records++;
	st->bytes += m->len;
	for (int i = 0; i < o->ntopics; i++)
		if (strcmp(o->topics[i], topic) == 0) {
			st->per_topic[i]++;
			break;
		}
	if (o->latency) {
		if (p != NULL && find_number(p, m->len, o->marker, st->marker_esc, &v)) {
			rd_kafka_timestamp_type_t tt;
			int64_t d = at - (int64_t)v;
			int64_t ts = rd_kafka_message_timestamp(m, &tt);

			if (!vec_push(&st->lat, d > 0 ? (uint64_t)d : 0))
				st->lat_missing++;
			/* ms resolution: the written time is rounded down the same way */
			if (ts >= 0 && tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE) {
				d = ts - (int64_t)(v / 1000000);
				vec_push(&st->lat_ts, d > 0 ? (uint64_t)d * 1000000 : 0);
			}
		} else {
			st->lat_missing++;
		}
	}
	if (o->unique & KEY_SEQ) {
		if (!header_seq(m, st, &agent, &v) || !ukeys_add(&st->seq, agent, v))
			st->seq.no_key++;
	}
	if (o->unique & KEY_ID) {
		if (p == NULL || !find_number(p, m->len, o->id_marker, st->id_marker_esc, &v) ||
		    !ukeys_add(&st->id, 0, v))
			st->id.no_key++;
	}
}

/* Whether COUNT has arrived: records, and with --check-unique distinct keys
 * (a duplicate does not stand in for a record still on its way). */
static bool
reached(const struct opts *o, const struct state *st)
{
	if (o->count == 0 || st->records < o->count)
		return false;
	if ((o->unique & KEY_SEQ) && st->seq.no_key == 0 && st->seq.n < o->count)
		return false;
	if ((o->unique & KEY_ID) && st->id.no_key == 0 && st->id.n < o->count)
		return false;
	return true;
}

/* Prints KEY_* lines; returns NULL when every record had a key exactly once,
 * without gaps, COUNT in all; else what is wrong. */
static const char *
report_unique(const char *name, struct ukeys *a, uint64_t expected)
{
	uint64_t gaps = 0, missing = expected > a->n ? expected - a->n : 0;

	qsort(a->v, a->n, sizeof(a->v[0]), cmp_ukey);
	for (size_t i = 1; i < a->n; i++)
		if (a->v[i].agent == a->v[i - 1].agent)
			gaps += a->v[i].id - a->v[i - 1].id - 1;
	printf("%s_distinct=%zu\n%s_duplicates=%" PRIu64 "\n%s_gaps=%" PRIu64 "\n"
	    "%s_missing=%" PRIu64 "\n%s_no_key=%" PRIu64 "\n", name, a->n, name, a->dups,
	    name, gaps, name, missing, name, a->no_key);
	if (a->dups > 0)
		return "duplicates";
	if (a->no_key > 0)
		return "no_key";
	if (missing > 0)
		return "missing";
	if (gaps > 0)
		return "gaps";
	return NULL;
}

static double
pct_ms(const struct vec *a, double q)
{
	size_t k;

	if (a->n == 0)
		return 0;
	k = (size_t)(q * (double)a->n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > a->n)
		k = a->n;
	return (double)a->v[k - 1] / 1e6;
}

/* ---------------------------------------------------------------- consumer */

static rd_kafka_t *
consumer_new(const struct opts *o)
{
	static const char *const defaults[][2] = {
		{ "client.id", PROG }, { "enable.auto.commit", "false" },
		{ "auto.offset.reset", "earliest" },
		{ "enable.auto.offset.store", "false" }, { "enable.partition.eof", "false" },
		{ "fetch.wait.max.ms", "10" }, { "fetch.error.backoff.ms", "10" },
		{ "log_level", "4" },
	};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512], k[256];
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK)
		goto fail;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr,
		    sizeof(errstr)) != RD_KAFKA_CONF_OK)
			goto fail;
	for (int i = 0; i < o->nprops; i++) {
		const char *eq = strchr(o->props[i], '=');
		size_t kl = (size_t)(eq - o->props[i]);

		if (kl >= sizeof(k)) {
			snprintf(errstr, sizeof(errstr), "property name too long");
			goto fail;
		}
		memcpy(k, o->props[i], kl);
		k[kl] = '\0';
		if (rd_kafka_conf_set(conf, k, eq + 1, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
			goto fail;
	}
	/* assign() needs a group id even though no group is ever joined and
	 * nothing is committed. */
	snprintf(k, sizeof(k), PROG "-%ld", (long)getpid());
	if (rd_kafka_conf_set(conf, "group.id", k, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		goto fail;
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))) == NULL)
		goto fail;
	return rk;
fail:
	fprintf(stderr, PROG ": %s\n", errstr);
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/* Assigns every partition of every topic from the beginning; waits for the
 * topics to appear in the metadata until deadline (monotonic ns). */
static bool
assign_all(rd_kafka_t *rk, const struct opts *o, int64_t deadline,
    rd_kafka_topic_partition_list_t **assigned)
{
	rd_kafka_topic_partition_list_t *list = NULL;
	const char *why = "no answer";
	rd_kafka_resp_err_t err;

	while (!stop_requested) {
		const struct rd_kafka_metadata *md = NULL;
		int found = 0;

		err = rd_kafka_metadata(rk, 1, NULL, &md, 2000);

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			list = rd_kafka_topic_partition_list_new(16);
			for (int t = 0; t < o->ntopics; t++)
				for (int i = 0; i < md->topic_cnt; i++) {
					const rd_kafka_metadata_topic_t *mt = &md->topics[i];

					if (strcmp(mt->topic, o->topics[t]) != 0 || mt->err ||
					    mt->partition_cnt == 0)
						continue;
					for (int p = 0; p < mt->partition_cnt; p++)
						rd_kafka_topic_partition_list_add(list, mt->topic,
						    mt->partitions[p].id)->offset =
						    RD_KAFKA_OFFSET_BEGINNING;
					found++;
					break;
				}
			rd_kafka_metadata_destroy(md);
			if (found == o->ntopics)
				break;
			rd_kafka_topic_partition_list_destroy(list);
			list = NULL;
			why = "a topic is not in the cluster's metadata";
		} else {
			why = rd_kafka_err2str(err);
		}
		if (now_ns(CLOCK_MONOTONIC) > deadline) {
			fprintf(stderr, PROG ": no metadata for the topics: %s\n", why);
			return false;
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (list == NULL)
		return false;
	if ((err = rd_kafka_assign(rk, list)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, PROG ": cannot assign the partitions: %s\n", rd_kafka_err2str(err));
		rd_kafka_topic_partition_list_destroy(list);
		return false;
	}
	if (!o->quiet)
		fprintf(stderr, PROG ": reading %d partitions\n", list->cnt);
	*assigned = list;
	return true;
}

/*
 * The partitions' watermarks, polled every WM_POLL_MS by a thread of its own:
 * on a topic that was empty at the start, the sum of the high watermarks is
 * every record written to it, so this says when the COUNTth record was in
 * Kafka whether or not this consumer keeps up; a sum of low watermarks
 * above zero means retention deleted records (librdkafka's mock cluster
 * keeps only 5 MiB per partition), possibly before this consumer read them.
 * A thread, too, because rd_kafka_query_watermark_offsets can block far
 * past its timeout once the brokers are gone (librdkafka 2.0.2): main waits
 * for it a bounded time at the end, then leaves it.
 */
#define WM_POLL_MS 10

struct wm_poll {
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *list;
	uint64_t count;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, exited;
	bool valid;		/* low and high are from a complete query */
	int64_t low, high;
	int64_t first_ns;	/* CLOCK_REALTIME when high was first above 0 */
	int64_t full_ns;	/* ... and first at least count */
};

static bool
watermarks(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *list, int64_t *low,
    int64_t *high)
{
	*low = *high = 0;
	for (int i = 0; i < list->cnt; i++) {
		int64_t lo, hi;

		if (rd_kafka_query_watermark_offsets(rk, list->elems[i].topic,
		    list->elems[i].partition, &lo, &hi, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
			return false;
		*low += lo;
		*high += hi;
	}
	return true;
}

static void *
wm_thread(void *arg)
{
	struct wm_poll *w = arg;
	struct timespec until;

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		int64_t low, high, t;
		bool ok;

		pthread_mutex_unlock(&w->mu);
		ok = watermarks(w->rk, w->list, &low, &high);
		t = now_ns(CLOCK_REALTIME);
		pthread_mutex_lock(&w->mu);
		if (ok) {
			w->valid = true;
			w->low = low;
			w->high = high;
			if (w->first_ns == 0 && high > 0)
				w->first_ns = t;
			if (w->full_ns == 0 && w->count > 0 && (uint64_t)high >= w->count) {
				w->full_ns = t;
				printf("in_kafka_ns=%" PRId64 "\n", t);
				fflush(stdout);
			}
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WM_POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!w->stop)
			pthread_cond_timedwait(&w->cv, &w->mu, &until);
	}
	w->exited = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Stops the poller; false if it did not stop within secs (it may still use
 * the handle, which must then be left alone). */
static bool
wm_stop(struct wm_poll *w, int secs)
{
	struct timespec until;
	bool exited;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += secs;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	while (!w->exited && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
		;
	exited = w->exited;
	pthread_mutex_unlock(&w->mu);
	return exited;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct state st;
	struct sigaction sa;
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *assigned = NULL;
	int64_t start, deadline, last_seen, linger_end = 0;
	int64_t low = 0, high = 0, first_ns = 0, full_ns = 0;
	/* static: the poller may outlive main's frame if it cannot be stopped */
	static struct wm_poll wm;
	pthread_t wm_tid;
	bool wm_running, wm_stopped, have_wm, full = false;
	const char *status = "ok";
	bool ok;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&st, 0, sizeof(st));
	rc = parse_args(argc, argv, &o);
	if (rc == 1)
		return 0;
	if (rc != 0)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	json_escape_slashes(o.marker, st.marker_esc, sizeof(st.marker_esc));
	json_escape_slashes(o.id_marker, st.id_marker_esc, sizeof(st.id_marker_esc));

	start = last_seen = now_ns(CLOCK_MONOTONIC);
	deadline = o.timeout_s > 0 ? start + (int64_t)(o.timeout_s * 1e9) : INT64_MAX;
	if ((rk = consumer_new(&o)) == NULL)
		return 1;
	if (!assign_all(rk, &o, deadline, &assigned)) {
		rd_kafka_destroy(rk);
		printf("status=%s\nrecords=0\nexpected=%" PRIu64 "\n",
		    stop_requested ? "interrupted" : "no_metadata", o.count);
		return 1;
	}
	wm.rk = rk;
	wm.list = assigned;
	wm.count = o.count;
	pthread_mutex_init(&wm.mu, NULL);
	pthread_cond_init(&wm.cv, NULL);
	wm_running = pthread_create(&wm_tid, NULL, wm_thread, &wm) == 0;
	if (wm_running)
		pthread_detach(wm_tid);

	for (;;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
		int64_t mono = now_ns(CLOCK_MONOTONIC);

		if (m != NULL) {
			if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
				on_record(&o, &st, m, now_ns(CLOCK_REALTIME));
				last_seen = mono;
			} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				if (!o.quiet && st.errors++ < 10)
					fprintf(stderr, PROG ": %s\n", rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
		}
		if (st.reached_ns == 0 && reached(&o, &st)) {
			st.reached_ns = now_ns(CLOCK_REALTIME);
			printf("reached_ns=%" PRId64 "\n", st.reached_ns);
			fflush(stdout);
			if (o.linger_s <= 0)
				break;
			linger_end = mono + (int64_t)(o.linger_s * 1e9);
		}
		if (linger_end != 0 && mono >= linger_end)
			break;
		if (stop_requested) {
			status = "interrupted";
			break;
		}
		if (linger_end == 0 && mono >= deadline) {
			status = "timeout";
			break;
		}
		if (linger_end == 0 && o.idle_s > 0 && mono - last_seen >= (int64_t)(o.idle_s * 1e9)) {
			status = "idle";
			break;
		}
		/* Kafka holds COUNT but some were deleted before they were read:
		 * no reason to wait the whole idle time for them. */
		if (linger_end == 0 && !full && wm_running) {
			pthread_mutex_lock(&wm.mu);
			full = wm.full_ns != 0 && wm.low > 0;
			pthread_mutex_unlock(&wm.mu);
		}
		if (linger_end == 0 && full && mono - last_seen >= 2000000000LL) {
			status = "idle";
			break;
		}
	}
	wm_stopped = !wm_running || wm_stop(&wm, 5);
	pthread_mutex_lock(&wm.mu);
	have_wm = wm.valid;
	low = wm.low;
	high = wm.high;
	first_ns = wm.first_ns;
	full_ns = wm.full_ns;
	pthread_mutex_unlock(&wm.mu);
	if (wm_stopped) {
		rd_kafka_topic_partition_list_destroy(assigned);
		/* Nothing to leave or commit: no group was joined. */
		rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	}
	/* Kafka holds every record but retention deleted some before this
	 * consumer read them: a limit of the test cluster, not a loss. */
	if (have_wm && st.reached_ns == 0 && full_ns != 0 && low > 0 &&
	    (strcmp(status, "timeout") == 0 || strcmp(status, "idle") == 0))
		status = "fell_behind";

	/* Without COUNT, the time limits are the expected end. */
	if (o.count == 0 && (strcmp(status, "timeout") == 0 || strcmp(status, "idle") == 0))
		status = st.records > 0 ? "ok" : status;
	printf("records=%" PRIu64 "\nexpected=%" PRIu64 "\nbytes=%" PRIu64 "\n", st.records,
	    o.count, st.bytes);
	for (int i = 0; i < o.ntopics; i++)
		printf("topic.%s=%" PRIu64 "\n", o.topics[i], st.per_topic[i]);
	if (have_wm) {
		printf("kafka_low=%" PRId64 "\nkafka_high=%" PRId64 "\n", low, high);
		if (first_ns != 0)
			printf("kafka_first_ns=%" PRId64 "\n", first_ns);
		if (full_ns != 0) {
			double span = (double)(full_ns - first_ns) / 1e9;

			printf("kafka_full_ns=%" PRId64 "\nkafka_span_s=%.3f\n", full_ns, span);
			if (span > 0)
				printf("kafka_rate=%.0f\n", (double)(o.count - 1) / span);
		}
	}
	if (st.records > 0) {
		double span = (double)(st.last_ns - st.first_ns) / 1e9;

		printf("first_ns=%" PRId64 "\nlast_ns=%" PRId64 "\nspan_s=%.3f\n", st.first_ns,
		    st.last_ns, span);
		printf("rate=%.0f\n", span > 0 ? (double)(st.records - 1) / span : 0.0);
	}
	if (o.latency) {
		qsort(st.lat.v, st.lat.n, sizeof(st.lat.v[0]), cmp_u64);
		printf("latency_samples=%zu\nlatency_unparsed=%" PRIu64 "\n", st.lat.n,
		    st.lat_missing);
		/* Expected records never read (deleted by retention first, or lost):
		 * a percentile that falls among them is only known to be above max. */
		printf("latency_unread=%" PRIu64 "\n", o.count > st.records ? o.count - st.records : 0);
		if (st.lat.n > 0)
			printf("latency_min_ms=%.2f\nlatency_p50_ms=%.2f\nlatency_p90_ms=%.2f\n"
			    "latency_p99_ms=%.2f\nlatency_max_ms=%.2f\n", pct_ms(&st.lat, 0),
			    pct_ms(&st.lat, 0.50), pct_ms(&st.lat, 0.90), pct_ms(&st.lat, 0.99),
			    pct_ms(&st.lat, 1.0));
		qsort(st.lat_ts.v, st.lat_ts.n, sizeof(st.lat_ts.v[0]), cmp_u64);
		if (st.lat_ts.n > 0)
			printf("produce_p50_ms=%.0f\nproduce_p99_ms=%.0f\nproduce_max_ms=%.0f\n",
			    pct_ms(&st.lat_ts, 0.50), pct_ms(&st.lat_ts, 0.99), pct_ms(&st.lat_ts, 1.0));
	}
	for (unsigned key = KEY_SEQ; key <= KEY_ID; key <<= 1) {
		const char *bad;

		if (!(o.unique & key))
			continue;
		bad = key == KEY_SEQ ? report_unique("seq", &st.seq, o.count) :
		    report_unique("id", &st.id, o.count);
		if (bad != NULL && strcmp(status, "ok") == 0)
			status = bad;
	}
	/* More records than COUNT in the topic: duplicates or strays. */
	if (have_wm && o.count > 0 && (uint64_t)high > o.count && strcmp(status, "ok") == 0)
		status = "extra";
	ok = strcmp(status, "ok") == 0;
	printf("status=%s\n", status);
	fflush(stdout);
	free(st.lat.v);
	free(st.lat_ts.v);
	free(st.seq.v);
	free(st.seq.set);
	free(st.id.v);
	free(st.id.set);
	for (uint32_t i = 0; i < st.nagents; i++)
		free(st.agents[i]);
	return ok ? 0 : 1;
}
