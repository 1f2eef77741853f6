/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route: the relay's routing (kafka.routes, kafka.topic and kafka.key,
 * kafka.allowed_topics), compiled once per configuration (start, SIGHUP)
 * into small programs and rendered for each event into the caller's
 * buffer, without allocating.
 *
 * A template is literal text with variables, the grammar that
 * relay_config_check_template accepts: ${stream}, ${host}, ${source},
 * ${agent} (the agent id of the connection, given by the caller) and
 * ${fields.NAME}, the value of the event's first field named NAME as text:
 * strings and slices as they are, integers in decimal, numbers as the
 * shortest text that reads back the same ("0.125", "1e+21", "nan", "inf"),
 * booleans as true/false, JSON values as their JSON text; a missing field,
 * a null one or a slice outside the message renders as nothing. Any
 * variable may carry a default, ${fields.event_type:-unknown}: a value
 * that would render as nothing renders as the default (text up to the
 * '}', taken as written).
 *
 * Topics are rendered as they are, never renamed: route_topic_check says
 * whether Kafka takes the name (1 to ROUTE_TOPIC_MAX bytes of
 * [A-Za-z0-9._-], not "." or ".."), and relay/kafka.c sends an event whose
 * topic fails it, or that kafka.allowed_topics does not allow
 * (route_table_allowed), to kafka.dead_letter_topic instead. Two values
 * never silently share a topic ("a/b" and "a_b"), and an event value can
 * never make the relay produce to a topic nobody meant.
 *
 * Key templates (ROUTE_KEY) render bytes unchanged. The template "" means
 * records carry no key (route_is_empty); a key that renders empty for one
 * event is also sent as no key by relay/kafka.c, so such events spread over
 * the partitions instead of all hashing to one.
 *
 * A route table is kafka.routes in order, then kafka.topic and kafka.key
 * as the default route: route_table_pick takes the first route whose
 * match holds. A match is variable -> glob (fnmatch(3), no flags), all of
 * which must hold, over the variables above, plus fields that must be
 * absent; a missing or null field matches no glob (so "*" requires the
 * field), and an empty value is matched as "".
 */
#ifndef LOGFERRY_ROUTE_H
#define LOGFERRY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/event.h"

struct relay_config;

/* Kafka's longest topic name. */
#define ROUTE_TOPIC_MAX 249
/* A buffer that holds any topic Kafka takes and shows that a longer one is too long. */
#define ROUTE_TOPIC_BUF (ROUTE_TOPIC_MAX + 2)

/* Routes in kafka.routes at most: each event is matched against them in order. */
#define ROUTE_TABLE_MAX 255

enum route_kind { ROUTE_TOPIC, ROUTE_KEY };

struct route;

/*
 * Compiles tmpl. Returns 0 and sets *out (free it with route_free), -EINVAL
 * with the reason in why (as relay_config_check_template words it), or
 * -ENOMEM. tmpl is copied.
 */
int route_compile(const char *tmpl, enum route_kind kind, struct route **out,
    char *why, size_t whylen);

/* Checks tmpl as route_compile does, without compiling it. */
int route_check(const char *tmpl, char *why, size_t whylen);

/* Frees rt; NULL is fine. */
void route_free(struct route *rt);

/* True for the template "": no key. */
bool route_is_empty(const struct route *rt);

/* Whether tmpl reads an event field (${fields.NAME}). */
bool route_uses_fields(const struct route *rt);

/*
 * Renders rt for ev into buf (size bytes, size >= 1), NUL-terminated, and
 * sets *len to the bytes written before the NUL (a key may hold NUL bytes:
 * use *len). agent is the connection's agent id (NULL renders as nothing).
 * Never allocates. Returns 0, or -ENOBUFS when the text did not fit: buf
 * then holds its first size - 1 bytes.
 */
int route_render(const struct route *rt, const struct event *ev, const char *agent,
    char *buf, size_t size, size_t *len);

/*
 * Whether Kafka takes topic (len bytes) as a topic name. Returns 0, or
 * -EINVAL with the reason in why, e.g. "topic 'a/b' has a byte outside
 * [A-Za-z0-9._-]" (the name shown escaped and cut).
 */
int route_topic_check(const char *topic, size_t len, char *why, size_t whylen);

/*
 * topic (len bytes) as a header or log may show it: bytes outside
 * printable ASCII as \xHH, and cut to fit out (NUL-terminated).
 */
void route_topic_show(const char *topic, size_t len, char *out, size_t outlen);

struct route_table;

/*
 * Compiles cfg's kafka.routes (at most ROUTE_TABLE_MAX), kafka.topic,
 * kafka.key and kafka.allowed_topics. Returns 0 and sets *out, or -EINVAL with the
 * key at fault in path (e.g. "kafka.routes[1].match") and the reason in
 * why, or -ENOMEM.
 */
int route_table_new(const struct relay_config *cfg, struct route_table **out,
    char *path, size_t pathlen, char *why, size_t whylen);

/* Frees t; NULL is fine. */
void route_table_free(struct route_table *t);

/*
 * The topic and key templates for ev: those of the first route whose
 * match holds, else kafka.topic and kafka.key. *index gets the route's
 * index in kafka.routes, or the number of routes for the default. Never
 * allocates.
 */
void route_table_pick(const struct route_table *t, const struct event *ev, const char *agent,
    const struct route **topic, const struct route **key, size_t *index);

/* Routes in kafka.routes (the default route not counted). */
size_t route_table_routes(const struct route_table *t);

/* Whether some topic template of t reads an event field. */
bool route_table_uses_fields(const struct route_table *t);

/*
 * Whether kafka.allowed_topics lets agent (NULL: "") produce to topic
 * (NUL-terminated): always without allowed_topics, and always for
 * kafka.dead_letter_topic.
 */
bool route_table_allowed(const struct route_table *t, const char *agent, const char *topic);

/* Whether t has allowed_topics at all (else route_table_allowed is always true). */
bool route_table_restricted(const struct route_table *t);

#endif
