/* SPDX-License-Identifier: Apache-2.0 */
/*
 * add_fields: the processing stage that sets static fields on every event
 * (env, dc, tags) and host metadata: ${host} (the agent's host name),
 * ${agent_id} and ${source} (the source's name) are replaced in its values
 * once, when it is compiled. A field the event already has is overwritten,
 * in its place: the configuration says what the field is.
 */
#ifndef LOGFERRY_ADD_FIELDS_H
#define LOGFERRY_ADD_FIELDS_H

#include "agent/processor.h"

extern const struct processor_type add_fields_processor_type;

#endif
