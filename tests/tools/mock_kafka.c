/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mock_kafka - run librdkafka's in-process mock Kafka cluster as a standalone
 * process so shell-driven integration tests get a real Kafka wire protocol
 * peer without a JVM, ZooKeeper or network access.
 *
 * Usage: mock_kafka [--brokers N] [--topic NAME:PARTITIONS]... [--help]
 *
 * Once the cluster is listening it prints one line, "bootstrap=HOST:PORT,...",
 * then reads one command per line on stdin and answers each with one line:
 * "ok", "bootstrap=..." or "error: <why>".  See mock_usage() for the command
 * list.  EOF on stdin does not stop the cluster (it says so on stderr);
 * SIGTERM or SIGINT does (exit 0).  Bad usage exits 2, failure to start exits 1.
 *
 * The mock API is experimental and not ABI-stable (see rdkafka_mock.h); this
 * tool only uses calls present since librdkafka 1.4.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_PROG "mock_kafka"
#define MOCK_DEFAULT_BROKERS 3
#define MOCK_MAX_BROKERS 64
#define MOCK_MAX_TOPICS 64
#define MOCK_MAX_PARTITIONS 10000
/* Kafka's own limit on topic name length. */
#define MOCK_TOPIC_NAME_MAX 249
#define MOCK_MAX_RTT_MS 600000
#define MOCK_MAX_ERRORS 100000
/* Kafka's ApiKey of Produce requests. */
#define MOCK_APIKEY_PRODUCE 0
/* Bytes of pending input, newline included; longer lines are not commands
 * and are rejected whole. */
#define MOCK_LINE_MAX 1024
/* Upper bound on how late a signal that races the poll() call is noticed. */
#define MOCK_POLL_MS 250
#define MOCK_MAX_ARGS 4

struct mock_topic {
	char name[MOCK_TOPIC_NAME_MAX + 1];
	int partitions;
};

struct mock_opts {
	int brokers;
	size_t topic_cnt;
	struct mock_topic topics[MOCK_MAX_TOPICS];
};

struct mock_server {
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	int brokers;
	bool stdin_open;
	bool quit;
	/* True while skipping the rest of an over-long input line. */
	bool discarding;
	size_t len;
	/* One spare byte to terminate an unfinished last line at EOF. */
	char buf[MOCK_LINE_MAX + 1];
};

static volatile sig_atomic_t mock_stop_requested;

static void mock_on_signal(int sig)
{
	(void)sig;
	mock_stop_requested = 1;
}

static void mock_usage(FILE *out)
{
	fprintf(out,
		"Usage: " MOCK_PROG " [--brokers N] [--topic NAME:PARTITIONS]... "
		"[--help]\n"
		"\n"
		"Runs librdkafka's mock Kafka cluster on 127.0.0.1 (ephemeral "
		"ports).\n"
		"  --brokers N              number of brokers, 1..%d (default %d)\n"
		"  --topic NAME:PARTITIONS  create a topic at start (repeatable)\n"
		"  --help                   show this help\n"
		"\n"
		"Prints 'bootstrap=HOST:PORT,...' when ready, then reads commands\n"
		"from stdin, one per line, answering each with one line ('ok',\n"
		"'bootstrap=...' or 'error: <why>'):\n"
		"  topic NAME PARTITIONS    create a topic\n"
		"  down ID | up ID          take broker ID (1..N, -1 = all) down/up\n"
		"  rtt ID MS                delay broker ID's responses by MS ms\n"
		"  produce_errors N ERR     fail the next N Produce requests with ERR\n"
		"                           (a name such as MSG_SIZE_TOO_LARGE, or a code)\n"
		"  clear_errors             drop Produce errors not used yet\n"
		"  topic_error NAME ERR     metadata reports ERR for topic NAME\n"
		"                           (NO_ERROR clears it)\n"
		"  bootstrap                print the bootstrap line again\n"
		"  quit                     stop and exit 0\n"
		"EOF on stdin keeps the cluster running; SIGTERM/SIGINT stop it "
		"(exit 0).\n",
		MOCK_MAX_BROKERS, MOCK_DEFAULT_BROKERS);
}

/* Strict decimal parse: the whole string must be a number within range. */
static bool mock_parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

/* Kafka's rules; the mock would accept anything, but real brokers would not,
 * and tests should not come to depend on names a real cluster rejects. */
static bool mock_topic_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > MOCK_TOPIC_NAME_MAX || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static bool mock_parse_topic_spec(const char *spec, struct mock_topic *t)
{
	const char *colon = strrchr(spec, ':');
	size_t name_len;

	if (colon == NULL) {
		fprintf(stderr, MOCK_PROG ": --topic '%s': expected NAME:PARTITIONS\n",
			spec);
		return false;
	}
	name_len = (size_t)(colon - spec);
	if (name_len == 0 || name_len > MOCK_TOPIC_NAME_MAX) {
		fprintf(stderr, MOCK_PROG ": --topic '%s': bad topic name length\n",
			spec);
		return false;
	}
	memcpy(t->name, spec, name_len);
	t->name[name_len] = '\0';
	if (!mock_topic_name_valid(t->name)) {
		fprintf(stderr,
			MOCK_PROG ": --topic '%s': topic name may only contain "
				  "[a-zA-Z0-9._-]\n",
			spec);
		return false;
	}
	if (!mock_parse_int(colon + 1, 1, MOCK_MAX_PARTITIONS, &t->partitions)) {
		fprintf(stderr,
			MOCK_PROG ": --topic '%s': partitions must be 1..%d\n", spec,
			MOCK_MAX_PARTITIONS);
		return false;
	}
	return true;
}

/* Returns 0 to run, 1 if --help was shown, 2 on bad usage (message
 * already printed). */
static int mock_parse_args(int argc, char **argv, struct mock_opts *opts)
{
	static const struct option longopts[] = {
		{"brokers", required_argument, NULL, 'b'},
		{"topic", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	opts->brokers = MOCK_DEFAULT_BROKERS;
	opts->topic_cnt = 0;
	/* getopt's own messages already name the bad option. */
	while ((c = getopt_long(argc, argv, "b:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (!mock_parse_int(optarg, 1, MOCK_MAX_BROKERS,
					    &opts->brokers)) {
				fprintf(stderr,
					MOCK_PROG ": --brokers '%s': must be 1..%d\n",
					optarg, MOCK_MAX_BROKERS);
				return 2;
			}
			break;
		case 't':
			if (opts->topic_cnt == MOCK_MAX_TOPICS) {
				fprintf(stderr, MOCK_PROG ": at most %d --topic options\n",
					MOCK_MAX_TOPICS);
				return 2;
			}
			if (!mock_parse_topic_spec(optarg,
						   &opts->topics[opts->topic_cnt]))
				return 2;
			opts->topic_cnt++;
			break;
		case 'h':
			mock_usage(stdout);
			return 1;
		default:
			mock_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, MOCK_PROG ": unexpected argument '%s'\n", argv[optind]);
		mock_usage(stderr);
		return 2;
	}
	return 0;
}

/*
 * librdkafka's mock cluster thread is created without blocking signals (unlike
 * its other threads), so a SIGTERM could land there and leave the main
 * thread's poll() unaware.  Blocking the signals before any librdkafka thread
 * exists makes every thread inherit the blocked mask; the main thread then
 * unblocks them (mock_unblock_signals) and is the only one that can receive
 * them, so poll() returns EINTR promptly.
 */
static bool mock_install_signals(sigset_t *stop_set)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mock_on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: poll() must be interrupted to notice the flag. */
	sa.sa_flags = 0;
	if (sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0) {
		fprintf(stderr, MOCK_PROG ": sigaction: %s\n", strerror(errno));
		return false;
	}
	/* A controller that goes away must not kill the cluster mid-test; write
	 * errors are reported instead. */
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0) {
		fprintf(stderr, MOCK_PROG ": sigaction(SIGPIPE): %s\n",
			strerror(errno));
		return false;
	}
	sigemptyset(stop_set);
	sigaddset(stop_set, SIGTERM);
	sigaddset(stop_set, SIGINT);
	if ((errno = pthread_sigmask(SIG_BLOCK, stop_set, NULL)) != 0) {
		fprintf(stderr, MOCK_PROG ": pthread_sigmask: %s\n", strerror(errno));
		return false;
	}
	return true;
}

static bool mock_unblock_signals(const sigset_t *stop_set)
{
	if ((errno = pthread_sigmask(SIG_UNBLOCK, stop_set, NULL)) != 0) {
		fprintf(stderr, MOCK_PROG ": pthread_sigmask: %s\n", strerror(errno));
		return false;
	}
	return true;
}

/*
 * If the caller closed stdin/stdout/stderr, librdkafka's sockets and pipes
 * would reuse those numbers and we would read commands from (or write replies
 * into) its internals.  Parking /dev/null on them first rules that out; a
 * closed stdin then reads as EOF.
 */
static bool mock_guard_std_fds(void)
{
	int fd;

	for (fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		nfd = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
		/* open() returns the lowest free number, which is fd itself. */
		if (nfd != fd) {
			fprintf(stderr, MOCK_PROG ": reopening fd %d on /dev/null: %s\n",
				fd, nfd == -1 ? strerror(errno) : "got another fd");
			if (nfd != -1)
				close(nfd);
			return false;
		}
	}
	return true;
}

/* One reply line per command; flushed so a reader on a pipe sees it now. */
static bool mock_reply(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static bool mock_reply(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vprintf(fmt, ap);
	va_end(ap);
	if (r < 0 || putchar('\n') == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, MOCK_PROG ": writing to stdout: %s\n",
			strerror(errno));
		clearerr(stdout);
		return false;
	}
	return true;
}

static bool mock_reply_bootstrap(const struct mock_server *srv)
{
	return mock_reply("bootstrap=%s",
			  rd_kafka_mock_cluster_bootstraps(srv->mcluster));
}

/* Passed for the record: librdkafka 2.0.x ignores it and always uses
 * min(3, brokers) replicas, with a randomly chosen leader per partition. */
static int mock_replication_factor(int brokers)
{
	return brokers < 3 ? brokers : 3;
}

static rd_kafka_resp_err_t mock_create_topic(struct mock_server *srv,
					     const char *name, int partitions)
{
	return rd_kafka_mock_topic_create(srv->mcluster, name, partitions,
					  mock_replication_factor(srv->brokers));
}

/*
 * The producer handle exists only to host the cluster: it never produces
 * and has no bootstrap servers of its own.
 */
static rd_kafka_t *mock_new_host_handle(void)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	/* log_level 4 silences the notice that this handle has no
	 * bootstrap.servers (true by design) but keeps the mock's own
	 * warnings and errors, e.g. a failed bind(). */
	if (rd_kafka_conf_set(conf, "client.id", MOCK_PROG, errstr,
			      sizeof(errstr)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK) {
		fprintf(stderr, MOCK_PROG ": rd_kafka_conf_set: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	/* rd_kafka_new takes ownership of conf only on success. */
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		fprintf(stderr, MOCK_PROG ": rd_kafka_new: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return rk;
}

static void mock_shutdown(struct mock_server *srv)
{
	/* The cluster borrows the handle, so it must go first. */
	if (srv->mcluster != NULL) {
		rd_kafka_mock_cluster_destroy(srv->mcluster);
		srv->mcluster = NULL;
	}
	if (srv->rk != NULL) {
		rd_kafka_destroy(srv->rk);
		srv->rk = NULL;
	}
}

static bool mock_start(struct mock_server *srv, const struct mock_opts *opts)
{
	size_t i;

	srv->brokers = opts->brokers;
	srv->rk = mock_new_host_handle();
	if (srv->rk == NULL)
		return false;
	/* Listeners are bound and listening when this returns (librdkafka logs
	 * the reason on failure). */
	srv->mcluster = rd_kafka_mock_cluster_new(srv->rk, opts->brokers);
	if (srv->mcluster == NULL) {
		fprintf(stderr,
			MOCK_PROG ": rd_kafka_mock_cluster_new(%d brokers) failed\n",
			opts->brokers);
		mock_shutdown(srv);
		return false;
	}
	for (i = 0; i < opts->topic_cnt; i++) {
		const struct mock_topic *t = &opts->topics[i];
		rd_kafka_resp_err_t err =
			mock_create_topic(srv, t->name, t->partitions);

		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, MOCK_PROG ": creating topic '%s': %s\n",
				t->name, rd_kafka_err2str(err));
			mock_shutdown(srv);
			return false;
		}
	}
	return true;
}

/* Broker ids are 1..N as assigned by rd_kafka_mock_cluster_new; -1 is the
 * mock API's "all brokers". */
static bool mock_check_broker_id(const struct mock_server *srv, const char *s,
				 int *id)
{
	if (!mock_parse_int(s, -1, srv->brokers, id) || *id == 0) {
		mock_reply("error: broker id '%.32s' must be 1..%d or -1 (all)", s,
			   srv->brokers);
		return false;
	}
	return true;
}

static void mock_reply_result(const char *what, rd_kafka_resp_err_t err)
{
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		mock_reply("ok");
	else
		mock_reply("error: %s: %s", what, rd_kafka_err2str(err));
}

static void mock_cmd_topic(struct mock_server *srv, int argc, char **argv)
{
	int partitions;

	if (argc != 3) {
		mock_reply("error: usage: topic NAME PARTITIONS");
		return;
	}
	if (!mock_topic_name_valid(argv[1])) {
		mock_reply("error: topic name must be 1..%d of [a-zA-Z0-9._-]",
			   MOCK_TOPIC_NAME_MAX);
		return;
	}
	if (!mock_parse_int(argv[2], 1, MOCK_MAX_PARTITIONS, &partitions)) {
		mock_reply("error: partitions '%.32s' must be 1..%d", argv[2],
			   MOCK_MAX_PARTITIONS);
		return;
	}
	mock_reply_result("topic create", mock_create_topic(srv, argv[1], partitions));
}

static void mock_cmd_updown(struct mock_server *srv, int argc, char **argv,
			    bool up)
{
	int id;

	if (argc != 2) {
		mock_reply("error: usage: %s ID", argv[0]);
		return;
	}
	if (!mock_check_broker_id(srv, argv[1], &id))
		return;
	if (up)
		mock_reply_result("broker up",
				  rd_kafka_mock_broker_set_up(srv->mcluster, id));
	else
		mock_reply_result("broker down",
				  rd_kafka_mock_broker_set_down(srv->mcluster, id));
}

static void mock_cmd_rtt(struct mock_server *srv, int argc, char **argv)
{
	int id, ms;

	if (argc != 3) {
		mock_reply("error: usage: rtt ID MS");
		return;
	}
	if (!mock_check_broker_id(srv, argv[1], &id))
		return;
	if (!mock_parse_int(argv[2], 0, MOCK_MAX_RTT_MS, &ms)) {
		mock_reply("error: rtt '%.32s' must be 0..%d ms", argv[2],
			   MOCK_MAX_RTT_MS);
		return;
	}
	mock_reply_result("broker rtt",
			  rd_kafka_mock_broker_set_rtt(srv->mcluster, id, ms));
}

/* A Kafka error by name (MSG_SIZE_TOO_LARGE or RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) or code. */
static bool mock_parse_err(const char *s, rd_kafka_resp_err_t *err)
{
	const struct rd_kafka_err_desc *descs;
	size_t n;
	int code;

	if (strncmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
		s += 18;
	if (mock_parse_int(s, -200, 1000, &code)) {
		*err = (rd_kafka_resp_err_t)code;
		return true;
	}
	rd_kafka_get_err_descs(&descs, &n);
	for (size_t i = 0; i < n; i++) {
		if (descs[i].name != NULL && strcmp(descs[i].name, s) == 0) {
			*err = descs[i].code;
			return true;
		}
	}
	mock_reply("error: unknown Kafka error '%.64s'", s);
	return false;
}

static void mock_cmd_produce_errors(struct mock_server *srv, int argc, char **argv)
{
	rd_kafka_resp_err_t err;
	int n;

	if (argc != 3) {
		mock_reply("error: usage: produce_errors N ERR");
		return;
	}
	if (!mock_parse_int(argv[1], 1, MOCK_MAX_ERRORS, &n)) {
		mock_reply("error: count '%.32s' must be 1..%d", argv[1], MOCK_MAX_ERRORS);
		return;
	}
	if (!mock_parse_err(argv[2], &err))
		return;
	/* One at a time: the variadic call takes its errors as arguments. */
	for (int i = 0; i < n; i++)
		rd_kafka_mock_push_request_errors(srv->mcluster, MOCK_APIKEY_PRODUCE, 1, err);
	mock_reply("ok");
}

static void mock_cmd_topic_error(struct mock_server *srv, int argc, char **argv)
{
	rd_kafka_resp_err_t err;

	if (argc != 3) {
		mock_reply("error: usage: topic_error NAME ERR");
		return;
	}
	if (!mock_topic_name_valid(argv[1])) {
		mock_reply("error: topic name must be 1..%d of [a-zA-Z0-9._-]",
			   MOCK_TOPIC_NAME_MAX);
		return;
	}
	if (!mock_parse_err(argv[2], &err))
		return;
	rd_kafka_mock_topic_set_error(srv->mcluster, argv[1], err);
	mock_reply("ok");
}

static void mock_cmd_noargs(struct mock_server *srv, int argc, char **argv)
{
	if (argc != 1) {
		mock_reply("error: usage: %s", argv[0]);
		return;
	}
	if (strcmp(argv[0], "bootstrap") == 0) {
		mock_reply_bootstrap(srv);
	} else if (strcmp(argv[0], "clear_errors") == 0) {
		rd_kafka_mock_clear_request_errors(srv->mcluster, MOCK_APIKEY_PRODUCE);
		mock_reply("ok");
	} else {
		srv->quit = true;
		mock_reply("ok");
	}
}

/* Splits in place on blanks; returns -1 if there are too many words. */
static int mock_split(char *line, char **argv)
{
	char *save = NULL;
	char *tok;
	int argc = 0;

	for (tok = strtok_r(line, " \t", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (argc == MOCK_MAX_ARGS)
			return -1;
		argv[argc++] = tok;
	}
	return argc;
}

static void mock_dispatch(struct mock_server *srv, char *line)
{
	char *argv[MOCK_MAX_ARGS];
	int argc = mock_split(line, argv);

	if (argc < 0) {
		mock_reply("error: too many arguments");
		return;
	}
	/* Every line gets exactly one answer, so a blank line is an error
	 * rather than silently ignored: a controller waiting for a reply
	 * would otherwise hang. */
	if (argc == 0) {
		mock_reply("error: empty command");
		return;
	}
	if (strcmp(argv[0], "topic") == 0)
		mock_cmd_topic(srv, argc, argv);
	else if (strcmp(argv[0], "down") == 0)
		mock_cmd_updown(srv, argc, argv, false);
	else if (strcmp(argv[0], "up") == 0)
		mock_cmd_updown(srv, argc, argv, true);
	else if (strcmp(argv[0], "rtt") == 0)
		mock_cmd_rtt(srv, argc, argv);
	else if (strcmp(argv[0], "produce_errors") == 0)
		mock_cmd_produce_errors(srv, argc, argv);
	else if (strcmp(argv[0], "topic_error") == 0)
		mock_cmd_topic_error(srv, argc, argv);
	else if (strcmp(argv[0], "bootstrap") == 0 ||
		 strcmp(argv[0], "clear_errors") == 0 ||
		 strcmp(argv[0], "quit") == 0)
		mock_cmd_noargs(srv, argc, argv);
	else
		mock_reply("error: unknown command '%.32s' (commands: topic, "
			   "down, up, rtt, produce_errors, clear_errors, "
			   "topic_error, bootstrap, quit)",
			   argv[0]);
}

static void mock_run_line(struct mock_server *srv, char *line, size_t len)
{
	/* Tolerate CRLF from controllers that send it. */
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	mock_dispatch(srv, line);
}

/* Runs every complete line in the buffer and keeps the unfinished tail. */
static void mock_consume_lines(struct mock_server *srv)
{
	size_t start = 0;
	char *nl;

	while (!srv->quit &&
	       (nl = memchr(srv->buf + start, '\n', srv->len - start)) != NULL) {
		size_t len = (size_t)(nl - (srv->buf + start));

		*nl = '\0';
		if (srv->discarding)
			srv->discarding = false;
		else
			mock_run_line(srv, srv->buf + start, len);
		start += len + 1;
	}
	if (srv->quit) {
		srv->len = 0;
		return;
	}
	memmove(srv->buf, srv->buf + start, srv->len - start);
	srv->len -= start;
	/* A full buffer without a newline can never become a valid command. */
	if (srv->len == MOCK_LINE_MAX) {
		if (!srv->discarding)
			mock_reply("error: line longer than %d bytes",
				   MOCK_LINE_MAX - 1);
		srv->discarding = true;
		srv->len = 0;
	}
}

static void mock_on_stdin_eof(struct mock_server *srv)
{
	/* A last command without a trailing newline still counts. */
	if (srv->len > 0 && !srv->discarding && !srv->quit) {
		srv->buf[srv->len] = '\0';
		mock_run_line(srv, srv->buf, srv->len);
	}
	srv->len = 0;
	srv->stdin_open = false;
	/* Tests wait for this line rather than sleep and hope EOF was read. */
	if (!srv->quit)
		fprintf(stderr, MOCK_PROG ": stdin closed; serving until SIGTERM or SIGINT\n");
}

static void mock_read_stdin(struct mock_server *srv)
{
	ssize_t n = read(STDIN_FILENO, srv->buf + srv->len,
			 MOCK_LINE_MAX - srv->len);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		fprintf(stderr, MOCK_PROG ": reading stdin: %s (commands disabled)\n",
			strerror(errno));
		srv->stdin_open = false;
		return;
	}
	if (n == 0) {
		mock_on_stdin_eof(srv);
		return;
	}
	srv->len += (size_t)n;
	mock_consume_lines(srv);
}

/* Waits for input or a signal; the timeout bounds the (tiny) window where a
 * signal lands between the flag check and poll(). */
static bool mock_wait_once(struct mock_server *srv)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	int r = poll(&pfd, srv->stdin_open ? 1 : 0, MOCK_POLL_MS);

	if (r < 0) {
		if (errno == EINTR)
			return true;
		fprintf(stderr, MOCK_PROG ": poll: %s\n", strerror(errno));
		return false;
	}
	if (r == 0 || !srv->stdin_open)
		return true;
	if (pfd.revents & POLLNVAL) {
		/* stdin was closed (e.g. "<&-"): nothing to read, keep serving. */
		srv->stdin_open = false;
		return true;
	}
	/* POLLHUP without POLLIN still needs a read() to observe EOF. */
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
		mock_read_stdin(srv);
	return true;
}

static int mock_serve(struct mock_server *srv)
{
	while (!mock_stop_requested && !srv->quit) {
		if (!mock_wait_once(srv))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mock_opts opts;
	struct mock_server srv;
	sigset_t stop_set;
	int rc;

	memset(&opts, 0, sizeof(opts));
	memset(&srv, 0, sizeof(srv));
	rc = mock_parse_args(argc, argv, &opts);
	if (rc == 1)
		return 0;
	if (rc != 0)
		return 2;
	if (!mock_guard_std_fds())
		return 1;
	if (!mock_install_signals(&stop_set))
		return 1;
	srv.stdin_open = true;
	if (!mock_start(&srv, &opts))
		return 1;
	if (!mock_unblock_signals(&stop_set) || !mock_reply_bootstrap(&srv)) {
		mock_shutdown(&srv);
		return 1;
	}
	rc = mock_serve(&srv);
	mock_shutdown(&srv);
	return rc;
}
