/* SPDX-License-Identifier: Apache-2.0 */
/* budget: connection buffers' share of the agent's memory_limit (see budget.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "agent/budget.h"
#include "common/log.h"

struct budget {
	struct budget_stats st;
	TAILQ_HEAD(budget_list, budget_waiter) waiters;
	struct budget_list woken;     /* being called back by budget_give */
	bool waking;
};

int
budget_new(uint64_t limit, struct budget **out)
{
	struct budget *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	b->st.limit = limit;
	TAILQ_INIT(&b->waiters);
	TAILQ_INIT(&b->woken);
	*out = b;
	return 0;
}

void
budget_free(struct budget *b)
{
	if (b == NULL)
		return;
	/* A leak here would slowly starve the sources: say so loudly. */
	if (b->st.used != 0 || !TAILQ_EMPTY(&b->waiters))
		log_error("memory budget freed with %" PRIu64 " bytes still taken or waiters left "
		    "(a bug: please report it)", b->st.used);
	free(b);
}

int
budget_take(struct budget *b, uint64_t n)
{
	if (n > b->st.limit - b->st.used) {
		b->st.refused++;
		return -ENOBUFS;
	}
	b->st.used += n;
	if (b->st.used > b->st.peak)
		b->st.peak = b->st.used;
	return 0;
}

void
budget_give(struct budget *b, uint64_t n)
{
	struct budget_waiter *w;

	b->st.used = n > b->st.used ? 0 : b->st.used - n;
	/* A callback that gives bytes back itself must not wake the list again. */
	if (b->waking || TAILQ_EMPTY(&b->waiters))
		return;
	/* Each waiter is called once per give: the list is moved aside first. */
	TAILQ_CONCAT(&b->woken, &b->waiters, link);
	TAILQ_FOREACH(w, &b->woken, link)
		w->being_woken = true;
	b->waking = true;
	while ((w = TAILQ_FIRST(&b->woken)) != NULL) {
		TAILQ_REMOVE(&b->woken, w, link);
		w->waiting = false;
		w->being_woken = false;
		b->st.waiting--;
		w->cb(w);
	}
	b->waking = false;
}

void
budget_wait(struct budget *b, struct budget_waiter *w)
{
	if (w->waiting)
		return;
	w->waiting = true;
	b->st.waiting++;
	TAILQ_INSERT_TAIL(&b->waiters, w, link);
}

void
budget_cancel(struct budget *b, struct budget_waiter *w)
{
	if (!w->waiting)
		return;
	/* A callback of budget_give may cancel another waiter it has yet to call. */
	if (w->being_woken)
		TAILQ_REMOVE(&b->woken, w, link);
	else
		TAILQ_REMOVE(&b->waiters, w, link);
	w->waiting = false;
	w->being_woken = false;
	b->st.waiting--;
}

void
budget_get_stats(const struct budget *b, struct budget_stats *st)
{
	*st = b->st;
}
