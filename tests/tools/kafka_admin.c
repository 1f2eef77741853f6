/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kafka_admin - the few Kafka admin calls the integration tests make against
 * a real cluster, through librdkafka's Admin API (no JVM start per call).
 *
 * Usage: kafka_admin -b BOOTSTRAP [-X name=value]... COMMAND ARGS...
 *   create TOPIC PARTITIONS REPLICAS [name=value]...   create a topic, with topic configs
 *   delete TOPIC                                      delete a topic
 *   leader TOPIC PARTITION                            print the partition leader's broker id
 *   brokers                                           print the number of brokers the cluster lists
 *   allow PRINCIPAL OPERATION TOPIC_PREFIX            allow User:NAME an operation (write, read,
 *                                                     describe, all) on topics with that prefix
 *
 * -X passes a client property (security.protocol, sasl.* ...). Exits 0 on
 * success, 1 with a message naming the failure, 2 on bad usage. "create"
 * succeeds only once every broker's metadata shows the topic's leaders.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define ADMIN_PROG "kafka_admin"
#define ADMIN_TIMEOUT_MS 30000
/* Metadata look-ups until a new topic has a leader for every partition. */
#define ADMIN_METADATA_TRIES 120
#define ADMIN_METADATA_WAIT_US 250000

static void usage(void)
{
	fprintf(stderr, "usage: %s -b BOOTSTRAP [-X name=value]... create TOPIC PARTITIONS REPLICAS [name=value]...\n"
			"       %s -b BOOTSTRAP [-X name=value]... delete TOPIC\n"
			"       %s -b BOOTSTRAP [-X name=value]... leader TOPIC PARTITION\n"
			"       %s -b BOOTSTRAP [-X name=value]... brokers\n"
			"       %s -b BOOTSTRAP [-X name=value]... allow User:NAME write|read|describe|all TOPIC_PREFIX\n",
		ADMIN_PROG, ADMIN_PROG, ADMIN_PROG, ADMIN_PROG, ADMIN_PROG);
}

static int parse_int(const char *s, const char *what, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "%s: %s must be a number from %d to %d, not \"%s\"\n", ADMIN_PROG, what, min, max, s);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

/* Waits for the one admin result on q; returns the event or NULL on timeout. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 5000);

	if (ev == NULL) {
		fprintf(stderr, "%s: %s: no answer from the cluster within %d ms\n", ADMIN_PROG, what, ADMIN_TIMEOUT_MS);
		return NULL;
	}
	if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "%s: %s: %s\n", ADMIN_PROG, what, rd_kafka_event_error_string(ev));
		rd_kafka_event_destroy(ev);
		return NULL;
	}
	return ev;
}

/* The leader of TOPIC's PARTITION, or -1 while there is none (-2: no such partition). */
static int partition_leader(rd_kafka_t *rk, const char *topic, int partition)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	int leader = -2;

	if (rkt == NULL)
		return -2;
	if (rd_kafka_metadata(rk, 0, rkt, &md, ADMIN_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			for (int i = 0; i < md->topics[0].partition_cnt; i++) {
				const rd_kafka_metadata_partition_t *p = &md->topics[0].partitions[i];

				if (p->id == partition)
					leader = p->err == RD_KAFKA_RESP_ERR_NO_ERROR ? p->leader : -1;
			}
		}
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return leader;
}

static int cmd_create(rd_kafka_t *rk, rd_kafka_queue_t *q, int argc, char **argv)
{
	char err[512];
	int partitions, replicas, rc = 1;
	rd_kafka_NewTopic_t *nt;
	rd_kafka_event_t *ev;

	if (argc < 3) {
		usage();
		return 2;
	}
	if (parse_int(argv[1], "PARTITIONS", 1, 10000, &partitions) != 0 ||
	    parse_int(argv[2], "REPLICAS", 1, 100, &replicas) != 0)
		return 2;
	nt = rd_kafka_NewTopic_new(argv[0], partitions, replicas, err, sizeof(err));
	if (nt == NULL) {
		fprintf(stderr, "%s: topic %s: %s\n", ADMIN_PROG, argv[0], err);
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (eq == NULL) {
			fprintf(stderr, "%s: topic config \"%s\" is not name=value\n", ADMIN_PROG, argv[i]);
			rd_kafka_NewTopic_destroy(nt);
			return 2;
		}
		*eq = '\0';
		if (rd_kafka_NewTopic_set_config(nt, argv[i], eq + 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "%s: topic config %s refused\n", ADMIN_PROG, argv[i]);
			rd_kafka_NewTopic_destroy(nt);
			return 2;
		}
	}
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	rd_kafka_NewTopic_destroy(nt);
	ev = admin_wait(q, "create topic");
	if (ev == NULL)
		return 1;
	{
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t n;
		const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);

		if (n == 1 && rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_NO_ERROR)
			fprintf(stderr, "%s: create topic %s: %s\n", ADMIN_PROG, argv[0],
				rd_kafka_topic_result_error_string(tr[0]));
		else
			rc = 0;
	}
	rd_kafka_event_destroy(ev);
	if (rc != 0)
		return rc;
	/* Producers that start right after must find a leader for every partition. */
	for (int t = 0; t < ADMIN_METADATA_TRIES; t++) {
		int p;

		for (p = 0; p < partitions; p++)
			if (partition_leader(rk, argv[0], p) < 0)
				break;
		if (p == partitions)
			return 0;
		usleep(ADMIN_METADATA_WAIT_US);
	}
	fprintf(stderr, "%s: topic %s was created but not every partition has a leader\n", ADMIN_PROG, argv[0]);
	return 1;
}

static int cmd_delete(rd_kafka_t *rk, rd_kafka_queue_t *q, int argc, char **argv)
{
	rd_kafka_DeleteTopic_t *dt;
	rd_kafka_event_t *ev;
	int rc = 1;

	if (argc != 1) {
		usage();
		return 2;
	}
	dt = rd_kafka_DeleteTopic_new(argv[0]);
	rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
	rd_kafka_DeleteTopic_destroy(dt);
	ev = admin_wait(q, "delete topic");
	if (ev == NULL)
		return 1;
	{
		const rd_kafka_DeleteTopics_result_t *res = rd_kafka_event_DeleteTopics_result(ev);
		size_t n;
		const rd_kafka_topic_result_t **tr = rd_kafka_DeleteTopics_result_topics(res, &n);

		if (n == 1 && rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_NO_ERROR)
			fprintf(stderr, "%s: delete topic %s: %s\n", ADMIN_PROG, argv[0],
				rd_kafka_topic_result_error_string(tr[0]));
		else
			rc = 0;
	}
	rd_kafka_event_destroy(ev);
	return rc;
}

static int cmd_leader(rd_kafka_t *rk, int argc, char **argv)
{
	int partition, leader;

	if (argc != 2) {
		usage();
		return 2;
	}
	if (parse_int(argv[1], "PARTITION", 0, 100000, &partition) != 0)
		return 2;
	leader = partition_leader(rk, argv[0], partition);
	if (leader < 0) {
		fprintf(stderr, "%s: %s[%d] has %s\n", ADMIN_PROG, argv[0], partition,
			leader == -1 ? "no leader now" : "no metadata (no such topic or partition)");
		return 1;
	}
	printf("%d\n", leader);
	return 0;
}

static int cmd_brokers(rd_kafka_t *rk)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, ADMIN_TIMEOUT_MS);

	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "%s: metadata: %s\n", ADMIN_PROG, rd_kafka_err2str(err));
		return 1;
	}
	printf("%d\n", md->broker_cnt);
	rd_kafka_metadata_destroy(md);
	return 0;
}

static const struct {
	const char *name;
	rd_kafka_AclOperation_t op;
} admin_ops[] = {
	{ "write", RD_KAFKA_ACL_OPERATION_WRITE },
	{ "read", RD_KAFKA_ACL_OPERATION_READ },
	{ "describe", RD_KAFKA_ACL_OPERATION_DESCRIBE },
	{ "all", RD_KAFKA_ACL_OPERATION_ALL },
};

static int cmd_allow(rd_kafka_t *rk, rd_kafka_queue_t *q, int argc, char **argv)
{
	char err[512];
	rd_kafka_AclBinding_t *acl;
	rd_kafka_event_t *ev;
	size_t i;
	int rc = 1;

	if (argc != 3) {
		usage();
		return 2;
	}
	for (i = 0; i < sizeof(admin_ops) / sizeof(admin_ops[0]); i++)
		if (strcmp(argv[1], admin_ops[i].name) == 0)
			break;
	if (i == sizeof(admin_ops) / sizeof(admin_ops[0])) {
		fprintf(stderr, "%s: unknown operation \"%s\" (write, read, describe, all)\n", ADMIN_PROG, argv[1]);
		return 2;
	}
	acl = rd_kafka_AclBinding_new(RD_KAFKA_RESOURCE_TOPIC, argv[2], RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
	    argv[0], "*", admin_ops[i].op, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof(err));
	if (acl == NULL) {
		fprintf(stderr, "%s: ACL for %s: %s\n", ADMIN_PROG, argv[0], err);
		return 2;
	}
	rd_kafka_CreateAcls(rk, &acl, 1, NULL, q);
	rd_kafka_AclBinding_destroy(acl);
	ev = admin_wait(q, "create ACL");
	if (ev == NULL)
		return 1;
	{
		size_t n;
		const rd_kafka_acl_result_t **ar =
		    rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &n);
		const rd_kafka_error_t *e = n == 1 ? rd_kafka_acl_result_error(ar[0]) : NULL;

		if (e != NULL)
			fprintf(stderr, "%s: create ACL for %s: %s\n", ADMIN_PROG, argv[0], rd_kafka_error_string(e));
		else
			rc = 0;
	}
	rd_kafka_event_destroy(ev);
	return rc;
}

int main(int argc, char **argv)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	const char *boot = NULL;
	int opt, rc;

	while ((opt = getopt(argc, argv, "+b:X:h")) != -1) {
		switch (opt) {
		case 'b':
			boot = optarg;
			break;
		case 'X': {
			char *eq = strchr(optarg, '=');

			if (eq == NULL) {
				fprintf(stderr, "%s: -X %s is not name=value\n", ADMIN_PROG, optarg);
				rd_kafka_conf_destroy(conf);
				return 2;
			}
			*eq = '\0';
			if (rd_kafka_conf_set(conf, optarg, eq + 1, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
				fprintf(stderr, "%s: -X %s: %s\n", ADMIN_PROG, optarg, err);
				rd_kafka_conf_destroy(conf);
				return 2;
			}
			break;
		}
		case 'h':
			usage();
			rd_kafka_conf_destroy(conf);
			return 0;
		default:
			usage();
			rd_kafka_conf_destroy(conf);
			return 2;
		}
	}
	if (boot == NULL || optind >= argc) {
		usage();
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "%s: %s\n", ADMIN_PROG, err);
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (rk == NULL) {
		fprintf(stderr, "%s: cannot create the client: %s\n", ADMIN_PROG, err);
		return 1;
	}
	q = rd_kafka_queue_new(rk);
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "create") == 0)
		rc = cmd_create(rk, q, argc - 1, argv + 1);
	else if (strcmp(argv[0], "delete") == 0)
		rc = cmd_delete(rk, q, argc - 1, argv + 1);
	else if (strcmp(argv[0], "leader") == 0)
		rc = cmd_leader(rk, argc - 1, argv + 1);
	else if (strcmp(argv[0], "allow") == 0)
		rc = cmd_allow(rk, q, argc - 1, argv + 1);
	else if (strcmp(argv[0], "brokers") == 0 && argc == 1)
		rc = cmd_brokers(rk);
	else {
		usage();
		rc = 2;
	}
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return rc;
}
