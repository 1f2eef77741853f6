/* SPDX-License-Identifier: Apache-2.0 */
/*
 * event_json: an event as the JSON record of docs/architecture.md "Kafka record":
 * {"ts","host","agent","stream","source","message","fields":{...}}, with
 * slices resolved against the message and every string valid UTF-8.
 */
#ifndef LOGFERRY_EVENT_JSON_H
#define LOGFERRY_EVENT_JSON_H

#include "common/buf.h"
#include "proto/event.h"

/*
 * Appends ev's record to out. agent may be NULL (the member is left out).
 * extra, when not NULL, is raw JSON members inserted after "agent" (e.g.
 * "\"seq\":42"). Returns 0, or -EMSGSIZE when out cannot hold it (its cap,
 * or no memory); out is then restored to its previous length.
 */
int event_json(const struct event *ev, const char *agent, const char *extra, struct buf *out);

#endif
