/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route: the relay's routing templates (kafka.topic and kafka.key),
 * compiled once into a small program and rendered for each event into the
 * caller's buffer, without allocating.
 *
 * A template is literal text with variables, the grammar that
 * relay_config_check_template accepts: ${stream}, ${host}, ${source},
 * ${agent} (the agent id of the connection, given by the caller) and
 * ${fields.NAME}, the value of the event's first field named NAME as text:
 * strings and slices as they are, integers in decimal, numbers as the
 * shortest text that reads back the same ("0.125", "1e+21", "nan", "inf"),
 * booleans as true/false, JSON values as their JSON text; a missing field,
 * a null one or a slice outside the message renders as nothing.
 *
 * Topic templates (ROUTE_TOPIC) always render a name Kafka accepts:
 * - every byte outside [a-zA-Z0-9._-] becomes '_' (so "nginx/access" ->
 *   "nginx_access", and each byte of a UTF-8 character becomes one '_');
 * - a name longer than ROUTE_TOPIC_MAX (Kafka's limit) is cut there;
 * - an empty name, "." or ".." becomes ROUTE_UNROUTED_TOPIC, so an event
 *   whose routing values are missing is still delivered somewhere an
 *   operator can find it, never dropped or refused.
 * Two values may therefore map to one topic ("a/b" and "a_b"): Kafka's own
 * rules leave no room for an exact mapping.
 *
 * Key templates (ROUTE_KEY) render bytes unchanged. The template "" means
 * records carry no key (route_is_empty); a key that renders empty for one
 * event is also sent as no key by relay/kafka.c, so such events spread over
 * the partitions instead of all hashing to one.
 */
#ifndef LOGFERRY_ROUTE_H
#define LOGFERRY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/event.h"

/* Kafka's longest topic name. */
#define ROUTE_TOPIC_MAX 249
/* Where events go whose topic renders empty, "." or "..". */
#define ROUTE_UNROUTED_TOPIC "logferry.unrouted"

enum route_kind { ROUTE_TOPIC, ROUTE_KEY };

struct route;

/*
 * Compiles tmpl. Returns 0 and sets *out (free it with route_free), -EINVAL
 * with the reason in why (as relay_config_check_template words it), or
 * -ENOMEM. tmpl is copied.
 */
int route_compile(const char *tmpl, enum route_kind kind, struct route **out,
    char *why, size_t whylen);

/* Frees rt; NULL is fine. */
void route_free(struct route *rt);

/* True for the template "": no key. */
bool route_is_empty(const struct route *rt);

/*
 * Renders rt for ev into buf (size bytes, size >= 1), NUL-terminated, and
 * sets *len to the bytes written before the NUL (a key may hold NUL bytes:
 * use *len). agent is the connection's agent id (NULL renders as nothing).
 * Never allocates. Returns 0, or -ENOBUFS when the text did not fit: buf
 * then holds its first size - 1 bytes (a topic is also cut at
 * ROUTE_TOPIC_MAX without an error, as described above).
 */
int route_render(const struct route *rt, const struct event *ev, const char *agent,
    char *buf, size_t size, size_t *len);

#endif
