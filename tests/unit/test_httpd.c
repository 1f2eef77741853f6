/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/httpd: the server with a small owner that holds
 * each request until the test answers it. The client is a non-blocking
 * socket driven from the test's thread between loop turns (the requests
 * fit a socket buffer). The HTTP behaviour itself (limits, keep-alive,
 * TLS, tokens) is proven through the agent's source in test_http_source.
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
#include <unistd.h>

#include <cmocka.h>

#include "common/httpd.h"
#include "common/intake.h"
#include "common/jsonw.h"

struct owner {
	struct httpd_conn *held;      /* the request handed over, not yet answered */
	int requests, works, timeouts, stops, abandons;
	size_t events;
	char sender[64];
	bool answer_on_stop;          /* on_stop answers 503 (else it lets the grace run) */
	bool stopped;
};

struct fixture {
	uv_loop_t loop;
	struct config_addr addr;
	struct httpd_options o;
	struct httpd *h;
	struct owner own;
	int port;
	int fd;
	char buf[4096];
	size_t len;
};

static void
own_on_request(void *ctx, struct httpd_conn *c)
{
	struct owner *own = ctx;
	struct intake *in = httpd_conn_intake(c);

	own->requests++;
	own->held = c;
	own->events = intake_events(in);
	snprintf(own->sender, sizeof(own->sender), "%s", httpd_conn_sender(c));
}

static void
own_on_work(void *ctx, struct httpd_conn *c)
{
	(void)c;
	((struct owner *)ctx)->works++;
}

static void
own_on_timeout(void *ctx, struct httpd_conn *c)
{
	struct owner *own = ctx;

	own->timeouts++;
	own->held = NULL;
	httpd_conn_fail(c, 503, "waited too long for the test: retry");
}

static void
own_on_stop(void *ctx, struct httpd_conn *c)
{
	struct owner *own = ctx;

	own->stops++;
	if (own->answer_on_stop) {
		own->held = NULL;
		httpd_conn_fail(c, 503, "the test is stopping: retry");
	}
}

static void
own_on_abandon(void *ctx, struct httpd_conn *c)
{
	struct owner *own = ctx;

	(void)c;
	own->abandons++;
	own->held = NULL;
}

static const struct httpd_callbacks own_callbacks = {
	.on_request = own_on_request,
	.on_work = own_on_work,
	.on_timeout = own_on_timeout,
	.on_stop = own_on_stop,
	.on_abandon = own_on_abandon,
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	fx->addr.host = "127.0.0.1";
	fx->addr.text = "127.0.0.1:0";
	fx->o.label = "test intake";
	fx->o.daemon = "test";
	fx->o.stored = "taken";
	fx->o.path = "/v1/events";
	fx->o.listen = &fx->addr;
	fx->o.nlisten = 1;
	fx->o.max_body_size = 64 * 1024;
	fx->o.max_connections = 4;
	fx->o.host = "host-a";
	fx->o.stream = "rest";
	fx->o.data_size = 16;
	fx->o.cb = &own_callbacks;
	fx->o.ctx = &fx->own;
	fx->fd = -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->fd >= 0)
		close(fx->fd);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	free(fx);
	return 0;
}

static void
start(struct fixture *fx)
{
	struct sockaddr_storage a;

	assert_int_equal(httpd_start(&fx->loop, &fx->o, &fx->h), 0);
	assert_int_equal(httpd_address(fx->h, 0, &a), 0);
	fx->port = ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static void
on_stopped(void *ctx)
{
	((struct owner *)ctx)->stopped = true;
}

static void
stop(struct fixture *fx)
{
	httpd_stop(fx->h, on_stopped, &fx->own);
	for (int i = 0; i < 10000 && !fx->own.stopped; i++)
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_true(fx->own.stopped);
}

/* Connects without blocking and sends req whole. */
static void
post(struct fixture *fx, const char *body)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port) };
	char req[1024];
	int n = snprintf(req, sizeof(req), "POST /v1/events HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fx->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fx->fd >= 0);
	assert_int_equal(connect(fx->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(fcntl(fx->fd, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(send(fx->fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

/* Turns the loop, reading what the server sends, until cond holds (or a bound). */
#define TURN_UNTIL(fx, cond) do {                                                 \
	for (int i_ = 0; i_ < 60000 && !(cond); i_++) {                                 \
		ssize_t r_;                                                             \
		uv_run(&(fx)->loop, UV_RUN_NOWAIT);                                     \
		r_ = recv((fx)->fd, (fx)->buf + (fx)->len, sizeof((fx)->buf) - 1 - (fx)->len, 0); \
		if (r_ > 0)                                                             \
			(fx)->len += (size_t)r_;                                        \
		(fx)->buf[(fx)->len] = '\0';                                            \
		usleep(200);                                                            \
	}                                                                           \
	assert_true(cond);                                                          \
} while (0)

static void
test_a_checked_request_is_handed_whole_to_its_owner_who_answers_later(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;

	start(fx);
	post(fx, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
	TURN_UNTIL(fx, fx->own.requests == 1);
	assert_int_equal(fx->own.events, 3);
	/* The owner holds it: nothing is answered meanwhile. */
	for (int i = 0; i < 50; i++) {
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(200);
	}
	assert_int_equal(recv(fx->fd, fx->buf, sizeof(fx->buf), 0), -1);
	assert_int_equal(errno, EAGAIN);
	httpd_conn_queue(fx->own.held);
	TURN_UNTIL(fx, fx->own.works == 1);
	assert_int_equal(jsonw_raw(httpd_conn_body(fx->own.held), "{\"accepted\":3}"), 0);
	httpd_conn_ok(fx->own.held, 3);
	fx->own.held = NULL;
	TURN_UNTIL(fx, strstr(fx->buf, "{\"accepted\":3}") != NULL);
	assert_non_null(strstr(fx->buf, "HTTP/1.1 200 OK\r\n"));
	httpd_get_stats(fx->h, &st);
	assert_int_equal(st.requests, 1);
	stop(fx);
}

static void
test_an_invalid_body_never_reaches_the_owner(void **state)
{
	struct fixture *fx = *state;

	start(fx);
	post(fx, "{\"a\":1}\n{\"a\":\n");
	TURN_UNTIL(fx, strstr(fx->buf, "\r\n\r\n") != NULL);
	assert_non_null(strstr(fx->buf, "HTTP/1.1 400 "));
	assert_non_null(strstr(fx->buf, "line 2"));
	assert_int_equal(fx->own.requests, 0);
	stop(fx);
}

static void
test_a_request_the_owner_waits_on_past_request_timeout_is_its_to_answer(void **state)
{
	struct fixture *fx = *state;
	struct httpd_stats st;

	fx->o.request_timeout_ms = 50;
	start(fx);
	post(fx, "{\"a\":1}\n");
	TURN_UNTIL(fx, fx->own.requests == 1);
	httpd_conn_wait(fx->own.held, false);
	TURN_UNTIL(fx, strstr(fx->buf, "\r\n\r\n") != NULL && strstr(fx->buf, "}") != NULL);
	assert_int_equal(fx->own.timeouts, 1);
	assert_non_null(strstr(fx->buf, "HTTP/1.1 503 "));
	assert_non_null(strstr(fx->buf, "Retry-After: 1\r\n"));
	assert_non_null(strstr(fx->buf, "waited too long for the test"));
	httpd_get_stats(fx->h, &st);
	assert_int_equal(st.unavailable_503, 1);
	assert_int_equal(st.request_timeouts, 1);
	stop(fx);
}

static void
test_stop_lets_the_owner_answer_what_it_holds(void **state)
{
	struct fixture *fx = *state;

	fx->own.answer_on_stop = true;
	start(fx);
	post(fx, "{\"a\":1}\n");
	TURN_UNTIL(fx, fx->own.requests == 1);
	httpd_stop(fx->h, on_stopped, &fx->own);
	TURN_UNTIL(fx, fx->own.stopped);
	assert_int_equal(fx->own.stops, 1);
	assert_non_null(strstr(fx->buf, "HTTP/1.1 503 "));
	assert_non_null(strstr(fx->buf, "Connection: close\r\n"));
	assert_non_null(strstr(fx->buf, "the test is stopping"));
}

static void
test_a_held_request_whose_client_goes_is_abandoned_to_the_owner(void **state)
{
	struct fixture *fx = *state;

	start(fx);
	post(fx, "{\"a\":1}\n");
	TURN_UNTIL(fx, fx->own.requests == 1);
	/* Reading stops while the owner holds it: the stop's grace ends it. */
	httpd_stop(fx->h, on_stopped, &fx->own);
	TURN_UNTIL(fx, fx->own.stopped);
	assert_int_equal(fx->own.stops, 1);
	assert_int_equal(fx->own.abandons, 1);
	assert_null(fx->own.held);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_a_checked_request_is_handed_whole_to_its_owner_who_answers_later, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_an_invalid_body_never_reaches_the_owner, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_request_the_owner_waits_on_past_request_timeout_is_its_to_answer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_lets_the_owner_answer_what_it_holds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_held_request_whose_client_goes_is_abandoned_to_the_owner, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
