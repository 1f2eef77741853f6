/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/budget: takes within the limit, waiters called back in order. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "agent/budget.h"
#include "common/log.h"

struct waiter {
	struct budget_waiter w;       /* first: the callback finds its waiter by cast */
	struct budget *b;
	int calls;
	int order;                    /* when it was last called back */
	uint64_t want;                /* takes this much when called; waits again if refused */
	bool taken;
	struct waiter *cancel;        /* cancels this one when called */
	uint64_t give;                /* gives this much back when called */
};

static int clock_;

static void
on_budget(struct budget_waiter *bw)
{
	struct waiter *x = (struct waiter *)bw;

	x->calls++;
	x->order = ++clock_;
	if (x->cancel != NULL)
		budget_cancel(x->b, &x->cancel->w);
	if (x->give != 0)
		budget_give(x->b, x->give);
	if (x->want != 0 && !x->taken) {
		if (budget_take(x->b, x->want) == 0)
			x->taken = true;
		else
			budget_wait(x->b, &x->w);
	}
}

static void
waiter_init(struct waiter *x, struct budget *b, uint64_t want)
{
	*x = (struct waiter){ .b = b, .want = want };
	x->w.cb = on_budget;
}

static void
test_takes_within_the_limit_and_counts_refusals(void **state)
{
	struct budget *b;
	struct budget_stats st;

	(void)state;
	assert_int_equal(budget_new(100, &b), 0);
	assert_int_equal(budget_take(b, 60), 0);
	assert_int_equal(budget_take(b, 41), -ENOBUFS);
	assert_int_equal(budget_take(b, 40), 0);
	assert_int_equal(budget_take(b, 1), -ENOBUFS);
	/* A huge request does not wrap around. */
	assert_int_equal(budget_take(b, UINT64_MAX), -ENOBUFS);
	budget_give(b, 70);
	budget_get_stats(b, &st);
	assert_int_equal(st.limit, 100);
	assert_int_equal(st.used, 30);
	assert_int_equal(st.peak, 100);
	assert_int_equal(st.refused, 3);
	budget_give(b, 30);
	budget_free(b);
}

static void
test_waiters_called_back_in_order_once_per_give(void **state)
{
	struct budget *b;
	struct waiter x, y, z;
	struct budget_stats st;

	(void)state;
	clock_ = 0;
	assert_int_equal(budget_new(100, &b), 0);
	assert_int_equal(budget_take(b, 100), 0);
	waiter_init(&x, b, 50);
	waiter_init(&y, b, 60);
	waiter_init(&z, b, 40);
	budget_wait(b, &x.w);
	budget_wait(b, &x.w);   /* twice is once */
	budget_wait(b, &y.w);
	budget_wait(b, &z.w);
	budget_get_stats(b, &st);
	assert_int_equal(st.waiting, 3);

	/* 60 back: x takes 50; y (60) and z (40) do not fit in the 10 left and wait again. */
	budget_give(b, 60);
	assert_int_equal(x.calls, 1);
	assert_int_equal(y.calls, 1);
	assert_int_equal(z.calls, 1);
	assert_true(x.order < y.order && y.order < z.order);
	assert_true(x.taken);
	assert_false(y.taken);
	assert_false(z.taken);
	budget_get_stats(b, &st);
	assert_int_equal(st.used, 90);
	assert_int_equal(st.waiting, 2);

	/* x gives its 50 back: y (first in line again) takes 60, z waits on. */
	budget_give(b, 50);
	assert_int_equal(y.calls, 2);
	assert_int_equal(z.calls, 2);
	assert_true(y.taken);
	assert_false(z.taken);
	budget_cancel(b, &z.w);
	budget_cancel(b, &z.w);   /* not waiting: fine */
	budget_get_stats(b, &st);
	assert_int_equal(st.waiting, 0);
	budget_give(b, 100);
	budget_free(b);
}

static void
test_a_callback_may_cancel_a_waiter_yet_to_be_called_and_give_back(void **state)
{
	struct budget *b;
	struct waiter x, y, z;
	struct budget_stats st;

	(void)state;
	clock_ = 0;
	assert_int_equal(budget_new(100, &b), 0);
	assert_int_equal(budget_take(b, 100), 0);
	waiter_init(&x, b, 0);
	waiter_init(&y, b, 10);
	waiter_init(&z, b, 10);
	x.cancel = &y;          /* e.g. x's connection closes y's */
	x.give = 20;            /* and gives bytes back from inside the callback */
	budget_wait(b, &x.w);
	budget_wait(b, &y.w);
	budget_wait(b, &z.w);
	budget_give(b, 1);
	assert_int_equal(x.calls, 1);
	assert_int_equal(y.calls, 0);
	/* The give inside the callback does not call z twice. */
	assert_int_equal(z.calls, 1);
	assert_true(z.taken);
	budget_get_stats(b, &st);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.used, 100 - 1 - 20 + 10);
	budget_give(b, st.used);
	budget_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_takes_within_the_limit_and_counts_refusals),
		cmocka_unit_test(test_waiters_called_back_in_order_once_per_give),
		cmocka_unit_test(test_a_callback_may_cancel_a_waiter_yet_to_be_called_and_give_back),
	};

	log_init("test_budget", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
