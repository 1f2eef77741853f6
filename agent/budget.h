/* SPDX-License-Identifier: Apache-2.0 */
/*
 * budget: the share of the agent's memory_limit that connection buffers
 * draw from (docs/architecture.md guarantee 3): the receive buffers of TCP syslog
 * connections, the events they gather (multiline), and the bodies of HTTP
 * requests, which without it could reach max_connections times
 * max_message_size (plus multiline.max_bytes) or max_body_size.
 *
 * A source takes bytes before it allocates and gives them back when it
 * frees. When a take is refused, a stream source pushes back on its
 * sender: a TCP syslog connection stops reading and waits (budget_wait);
 * an HTTP request is answered 503. Every waiter is called back when bytes
 * come back, in the order they started waiting; one that still does not
 * fit waits again.
 *
 * Loop thread only. The owner frees it after every user gave back what it
 * took (budget_free checks).
 */
#ifndef LOGFERRY_BUDGET_H
#define LOGFERRY_BUDGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct budget_waiter {
	TAILQ_ENTRY(budget_waiter) link;
	void (*cb)(struct budget_waiter *w);   /* bytes came back: try again */
	bool waiting;
	bool being_woken;             /* on the list budget_give is calling back */
};

struct budget_stats {
	uint64_t limit;
	uint64_t used;                /* now */
	uint64_t peak;
	uint64_t refused;             /* takes refused */
	uint64_t waiting;             /* waiters now */
};

struct budget;

/* A budget of limit bytes. Returns 0 and sets *out, or -ENOMEM. */
int budget_new(uint64_t limit, struct budget **out);

/* Frees b; every byte must have been given back and no waiter left. NULL is fine. */
void budget_free(struct budget *b);

/* Takes n bytes. Returns 0, or -ENOBUFS (nothing taken) when they do not fit. */
int budget_take(struct budget *b, uint64_t n);

/* Gives n bytes back and calls every waiter back (a waiter may wait again at once). */
void budget_give(struct budget *b, uint64_t n);

/* w (the caller's, with cb set) waits for bytes to come back. Waiting twice is a no-op. */
void budget_wait(struct budget *b, struct budget_waiter *w);

/* w stops waiting (before its owner is freed). Not waiting is fine. */
void budget_cancel(struct budget *b, struct budget_waiter *w);

void budget_get_stats(const struct budget *b, struct budget_stats *st);

#endif
