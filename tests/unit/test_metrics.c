/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/metrics: the writer's Prometheus text, and the
 * endpoint on a real loop with clients on non-blocking loopback sockets
 * in the test's own thread (the loop turns while a client waits).
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/metrics.h"

struct fx {
	uv_loop_t loop;
	struct metrics *m;
	struct config_addr addr;
	int port;
	int renders;
	int health_status;
	size_t render_bytes;          /* > 0: render that many bytes of filler */
	bool stopped;
};

/* ---------------------------------------------------------------- fixture */

static void
fake_render(void *ctx, struct metrics_writer *w)
{
	struct fx *fx = ctx;
	struct metrics_label l = { "source", "nginx_access" };

	fx->renders++;
	metrics_family(w, "logferry_test_lines_total", "counter", "Lines read.");
	metrics_sample(w, &l, 1, 42);
	metrics_one(w, "logferry_test_full", "gauge", "1 when full.", 0);
	for (size_t i = 0; i < fx->render_bytes / 64 + (fx->render_bytes != 0); i++)
		metrics_one(w, "logferry_test_filler_padding_padding_padding", "gauge", "x", i);
}

static int
fake_health(void *ctx, struct buf *out)
{
	struct fx *fx = ctx;
	static const char body[] = "{\"status\":\"ok\"}\n";

	assert_int_equal(buf_append(out, body, sizeof(body) - 1), 0);
	return fx->health_status;
}

static const struct metrics_ops fake_ops = { fake_render, fake_health };

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct sockaddr_storage a;

	assert_non_null(fx);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	fx->addr.host = "127.0.0.1";
	fx->addr.port = 0;
	fx->addr.text = "127.0.0.1:0";
	fx->health_status = 200;
	assert_int_equal(metrics_start(&fx->loop, &fx->addr, &fake_ops, fx, &fx->m), 0);
	assert_int_equal(metrics_address(fx->m, &a), 0);
	fx->port = ntohs(((struct sockaddr_in *)&a)->sin_port);
	assert_true(fx->port > 0);
	*state = fx;
	return 0;
}

static void
on_stopped(void *ctx)
{
	((struct fx *)ctx)->stopped = true;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->m != NULL)
		metrics_stop(fx->m, on_stopped, fx);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_true(fx->m == NULL || fx->stopped);
	/* A handle left open is a bug in metrics. */
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	free(fx);
	return 0;
}

/* ---------------------------------------------------------------- client */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connects (the kernel completes it from the backlog) and makes the socket non-blocking. */
static int
client(struct fx *fx)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static void
send_all(struct fx *fx, int fd, const char *p, size_t n)
{
	uint64_t end = now_ms() + 5000;

	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			assert_true(errno == EAGAIN);
			assert_true(now_ms() < end);
			uv_run(&fx->loop, UV_RUN_NOWAIT);
			continue;
		}
		p += k;
		n -= (size_t)k;
	}
}

static void
send_str(struct fx *fx, int fd, const char *s)
{
	send_all(fx, fd, s, strlen(s));
}

/* How many whole answers buf holds; head_only: HEAD answers have no body. */
static int
answers_in(const char *buf, size_t len, bool head_only)
{
	int n = 0;

	while (len > 0) {
		const char *end = memmem(buf, len, "\r\n\r\n", 4);
		const char *cl;
		size_t head, body = 0;

		if (end == NULL)
			break;
		head = (size_t)(end - buf) + 4;
		cl = memmem(buf, head, "Content-Length: ", 16);
		if (cl != NULL && !head_only)
			body = strtoul(cl + 16, NULL, 10);
		if (len < head + body)
			break;
		n++;
		buf += head + body;
		len -= head + body;
	}
	return n;
}

struct reply {
	char *data;                   /* NUL-terminated */
	size_t len;
	bool eof;
};

/* Reads until `want` whole answers arrived (0: until the server closes), turning the loop. */
static struct reply
read_answers(struct fx *fx, int fd, int want, bool head_only)
{
	struct reply r = { calloc(1, 1), 0, false };
	uint64_t end = now_ms() + 5000;
	char tmp[65536];

	while (now_ms() < end) {
		ssize_t k;

		if (want > 0 && answers_in(r.data, r.len, head_only) >= want)
			return r;
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		k = recv(fd, tmp, sizeof(tmp), 0);
		if (k == 0 || (k < 0 && errno == ECONNRESET)) {
			r.eof = true;
			return r;
		}
		if (k < 0) {
			assert_true(errno == EAGAIN);
			continue;
		}
		r.data = realloc(r.data, r.len + (size_t)k + 1);
		assert_non_null(r.data);
		memcpy(r.data + r.len, tmp, (size_t)k);
		r.len += (size_t)k;
		r.data[r.len] = '\0';
	}
	fail_msg("no answer within 5 s; got %zu bytes: %.300s", r.len, r.data);
	return r;
}

/* One request on a new connection, and its answer. */
static struct reply
request(struct fx *fx, const char *req, bool head_only)
{
	int fd = client(fx);
	struct reply r;

	send_str(fx, fd, req);
	r = read_answers(fx, fd, 1, head_only);
	close(fd);
	return r;
}

/* ---------------------------------------------------------------- writer */

static void
test_writer_escapes_label_values_and_help(void **state)
{
	struct buf b;
	struct metrics_writer w = { .out = &b };
	struct metrics_label l[] = { { "path", "/var/log/a \"b\"\\c\nd" }, { "x", "y" } };

	(void)state;
	buf_init(&b, 4096);
	metrics_family(&w, "logferry_x_total", "counter", "Help with a \\ and a\nnewline.");
	metrics_sample(&w, l, 2, 18446744073709551615u);
	assert_int_equal(w.err, 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_string_equal((char *)b.data,
	    "# HELP logferry_x_total Help with a \\\\ and a\\nnewline.\n"
	    "# TYPE logferry_x_total counter\n"
	    "logferry_x_total{path=\"/var/log/a \\\"b\\\"\\\\c\\nd\",x=\"y\"} 18446744073709551615\n");
	buf_free(&b);
}

static void
test_writer_error_is_sticky_and_sample_needs_a_family(void **state)
{
	struct buf b;
	struct metrics_writer w = { .out = &b };

	(void)state;
	buf_init(&b, 4096);
	metrics_sample(&w, NULL, 0, 1);
	assert_int_equal(w.err, -EINVAL);
	buf_free(&b);

	buf_init(&b, 40);
	w = (struct metrics_writer){ .out = &b };
	metrics_one(&w, "logferry_a_rather_long_metric_name_total", "counter", "Long.", 1);
	assert_int_equal(w.err, -EMSGSIZE);
	metrics_one(&w, "a", "gauge", "b", 1);
	assert_int_equal(w.err, -EMSGSIZE);
	buf_free(&b);
}

struct two { uint64_t a, b; };

static void
test_table_writes_one_sample_per_element(void **state)
{
	static const struct metrics_field f[] = {
		{ "t_a_total", "counter", "A.", offsetof(struct two, a) },
		{ "t_b", "gauge", "B.", offsetof(struct two, b) },
	};
	struct two st[2] = { { 1, 2 }, { 3, 4 } };
	const char *names[] = { "one", "two" };
	struct buf b;
	struct metrics_writer w = { .out = &b };

	(void)state;
	buf_init(&b, 4096);
	metrics_table(&w, f, 2, st, sizeof(st[0]), 2, "source", names);
	metrics_table(&w, f, 1, st, sizeof(st[0]), 1, NULL, NULL);
	assert_int_equal(w.err, 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_string_equal((char *)b.data,
	    "# HELP t_a_total A.\n# TYPE t_a_total counter\n"
	    "t_a_total{source=\"one\"} 1\nt_a_total{source=\"two\"} 3\n"
	    "# HELP t_b B.\n# TYPE t_b gauge\n"
	    "t_b{source=\"one\"} 2\nt_b{source=\"two\"} 4\n"
	    "# HELP t_a_total A.\n# TYPE t_a_total counter\nt_a_total 1\n");
	buf_free(&b);
}

/* ---------------------------------------------------------------- endpoint */

static void
test_get_metrics_renders_daemon_and_process_metrics(void **state)
{
	struct fx *fx = *state;
	struct reply r = request(fx, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", false);

	assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r.data, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	assert_non_null(strstr(r.data, "\r\n\r\n# HELP logferry_test_lines_total Lines read.\n"));
	assert_non_null(strstr(r.data, "logferry_test_lines_total{source=\"nginx_access\"} 42\n"));
	assert_non_null(strstr(r.data, "\nlogferry_test_full 0\n"));
	assert_non_null(strstr(r.data, "\nprocess_resident_memory_bytes "));
	assert_non_null(strstr(r.data, "\nprocess_cpu_seconds_total "));
	assert_non_null(strstr(r.data, "\nprocess_open_fds "));
	assert_non_null(strstr(r.data, "\nprocess_start_time_seconds "));
	assert_int_equal(fx->renders, 1);
	free(r.data);

	/* A query string does not change the path. */
	r = request(fx, "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
	assert_int_equal(fx->renders, 2);
	free(r.data);
}

static void
test_health_answers_the_daemons_status(void **state)
{
	struct fx *fx = *state;
	struct reply r = request(fx, "GET /health HTTP/1.1\r\n\r\n", false);

	assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r.data, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(r.data, "\r\n\r\n{\"status\":\"ok\"}\n"));
	free(r.data);
	fx->health_status = 503;
	r = request(fx, "GET /health HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 503 Service Unavailable\r\n"));
	free(r.data);
	assert_int_equal(fx->renders, 0);
}

static void
test_head_sends_the_head_without_a_body(void **state)
{
	struct fx *fx = *state;
	int fd = client(fx);
	struct reply r;

	/* Two HEADs then a GET on one connection: each answer where it belongs. */
	send_str(fx, fd, "HEAD /health HTTP/1.1\r\n\r\nHEAD /health HTTP/1.1\r\n\r\n");
	r = read_answers(fx, fd, 2, true);
	assert_non_null(strstr(r.data, "Content-Length: 16\r\n"));
	assert_null(strstr(r.data, "status"));
	free(r.data);
	send_str(fx, fd, "GET /health HTTP/1.1\r\n\r\n");
	r = read_answers(fx, fd, 1, false);
	assert_true(strncmp(r.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(r.data, "{\"status\":\"ok\"}\n"));
	free(r.data);
	close(fd);
}

static void
test_other_paths_404_other_methods_405_bodies_413(void **state)
{
	struct fx *fx = *state;
	struct metrics_stats st;
	struct reply r;

	r = request(fx, "GET /metricsx HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 404 Not Found\r\n"));
	free(r.data);
	r = request(fx, "GET / HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 404 Not Found\r\n"));
	free(r.data);
	r = request(fx, "DELETE /metrics HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(r.data, "Allow: GET, HEAD\r\n"));
	free(r.data);

	/* A body is refused before it is read, and the connection closes. */
	{
		int fd = client(fx);

		send_str(fx, fd, "POST /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\nxx");
		r = read_answers(fx, fd, 0, false);
		assert_true(r.eof);
		assert_non_null(strstr(r.data, "HTTP/1.1 413 Payload Too Large\r\n"));
		assert_non_null(strstr(r.data, "Connection: close\r\n"));
		free(r.data);
		close(fd);
	}
	assert_int_equal(fx->renders, 0);
	metrics_get_stats(fx->m, &st);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.errors, 4);
}

static void
test_pipelined_requests_answered_in_order_on_one_connection(void **state)
{
	struct fx *fx = *state;
	int fd = client(fx);
	struct reply r;
	char *a, *b, *c;

	send_str(fx, fd, "GET /health HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"
	    "GET /nothing HTTP/1.1\r\n\r\n");
	r = read_answers(fx, fd, 3, false);
	a = strstr(r.data, "{\"status\":\"ok\"}");
	b = strstr(r.data, "logferry_test_lines_total{");
	c = strstr(r.data, "404 Not Found");
	assert_true(a != NULL && b != NULL && c != NULL);
	assert_true(a < b && b < c);
	assert_null(strstr(r.data, "Connection: close"));
	free(r.data);
	/* Still open: keep-alive. */
	send_str(fx, fd, "GET /health HTTP/1.1\r\n\r\n");
	r = read_answers(fx, fd, 1, false);
	assert_non_null(strstr(r.data, "200 OK"));
	free(r.data);
	close(fd);
}

static void
test_connection_close_and_http10_end_the_connection(void **state)
{
	struct fx *fx = *state;
	const char *reqs[] = { "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
	    "GET /health HTTP/1.0\r\n\r\n" };

	for (size_t i = 0; i < 2; i++) {
		int fd = client(fx);
		struct reply r;

		send_str(fx, fd, reqs[i]);
		r = read_answers(fx, fd, 0, false);
		assert_true(r.eof);
		assert_non_null(strstr(r.data, "200 OK"));
		assert_non_null(strstr(r.data, "Connection: close\r\n"));
		free(r.data);
		close(fd);
	}
}

static void
test_malformed_request_400_and_oversize_head_431(void **state)
{
	struct fx *fx = *state;
	size_t big = METRICS_HEADER_MAX + 100;
	char *req = malloc(big + 64);
	struct reply r;
	int fd;

	fd = client(fx);
	send_str(fx, fd, "GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n");
	r = read_answers(fx, fd, 0, false);
	assert_true(r.eof);
	assert_non_null(strstr(r.data, "HTTP/1.1 400 Bad Request\r\n"));
	free(r.data);
	close(fd);

	assert_non_null(req);
	strcpy(req, "GET /health HTTP/1.1\r\nX-Long: ");
	/* A header that never ends: the answer comes once the head passes the bound. */
	memset(req + strlen(req), 'a', big);
	req[30 + big] = '\0';
	fd = client(fx);
	send_str(fx, fd, req);
	r = read_answers(fx, fd, 0, false);
	assert_true(r.eof);
	assert_non_null(strstr(r.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
	free(r.data);
	close(fd);
	free(req);
}

static void
test_rendering_above_the_bound_answers_500(void **state)
{
	struct fx *fx = *state;
	struct reply r;

	fx->render_bytes = METRICS_BODY_MAX + 1;
	r = request(fx, "GET /metrics HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 500 Internal Server Error\r\n"));
	free(r.data);
	/* The endpoint goes on. */
	fx->render_bytes = 0;
	r = request(fx, "GET /metrics HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
	free(r.data);
}

static void
test_connections_above_the_bound_are_closed_at_once(void **state)
{
	struct fx *fx = *state;
	int fds[METRICS_MAX_CONNECTIONS], extra;
	struct metrics_stats st;
	struct reply r;

	for (int i = 0; i < METRICS_MAX_CONNECTIONS; i++) {
		fds[i] = client(fx);
		send_str(fx, fds[i], "GET /health HTTP/1.1\r\n\r\n");
		r = read_answers(fx, fds[i], 1, false);
		free(r.data);
	}
	extra = client(fx);
	r = read_answers(fx, extra, 0, false);
	assert_true(r.eof);
	assert_int_equal(r.len, 0);
	free(r.data);
	close(extra);
	metrics_get_stats(fx->m, &st);
	assert_int_equal(st.connections_refused, 1);
	/* One closes: a new one is served. */
	close(fds[0]);
	for (int i = 0; i < 20; i++)
		uv_run(&fx->loop, UV_RUN_NOWAIT);
	r = request(fx, "GET /health HTTP/1.1\r\n\r\n", false);
	assert_non_null(strstr(r.data, "200 OK"));
	free(r.data);
	for (int i = 1; i < METRICS_MAX_CONNECTIONS; i++)
		close(fds[i]);
}

static void
test_idle_connection_closed_after_the_timeout(void **state)
{
	struct fx *fx = *state;
	int fd;
	struct reply r;
	uint64_t t0;

	metrics_set_idle_timeout(fx->m, 200);
	fd = client(fx);
	t0 = now_ms();
	r = read_answers(fx, fd, 0, false);
	assert_true(r.eof);
	assert_true(now_ms() - t0 >= 150);
	free(r.data);
	close(fd);
}

static void
test_stop_with_open_connections_closes_everything(void **state)
{
	struct fx *fx = *state;
	int a = client(fx), b = client(fx);
	struct reply r;

	send_str(fx, a, "GET /health HTTP/1.1\r\n\r\n");
	r = read_answers(fx, a, 1, false);
	free(r.data);
	/* b's request is half sent. */
	send_str(fx, b, "GET /heal");
	for (int i = 0; i < 20; i++)
		uv_run(&fx->loop, UV_RUN_NOWAIT);
	metrics_stop(fx->m, on_stopped, fx);
	fx->m = NULL;
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_true(fx->stopped);
	r = read_answers(fx, a, 0, false);
	assert_true(r.eof);
	free(r.data);
	close(a);
	close(b);
}

static void
test_address_in_use_is_refused_and_leaves_nothing_open(void **state)
{
	struct fx *fx = *state;
	struct config_addr busy = fx->addr;
	struct metrics *m2 = NULL;
	char text[32];

	snprintf(text, sizeof(text), "127.0.0.1:%d", fx->port);
	busy.port = (uint16_t)fx->port;
	busy.text = text;
	assert_true(metrics_start(&fx->loop, &busy, &fake_ops, fx, &m2) < 0);
	assert_null(m2);
	busy.host = "no-such-host.invalid";
	assert_int_equal(metrics_start(&fx->loop, &busy, &fake_ops, fx, &m2), -EADDRNOTAVAIL);
	assert_null(m2);
	/* teardown checks that the loop closes with no handle left. */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_escapes_label_values_and_help),
		cmocka_unit_test(test_writer_error_is_sticky_and_sample_needs_a_family),
		cmocka_unit_test(test_table_writes_one_sample_per_element),
		cmocka_unit_test_setup_teardown(test_get_metrics_renders_daemon_and_process_metrics,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_answers_the_daemons_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_sends_the_head_without_a_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_paths_404_other_methods_405_bodies_413,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pipelined_requests_answered_in_order_on_one_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_close_and_http10_end_the_connection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_request_400_and_oversize_head_431, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rendering_above_the_bound_answers_500, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connections_above_the_bound_are_closed_at_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_connection_closed_after_the_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_open_connections_closes_everything,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_in_use_is_refused_and_leaves_nothing_open,
		    setup, teardown),
	};

	log_init("test_metrics", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
