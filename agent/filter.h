/* SPDX-License-Identifier: Apache-2.0 */
/*
 * filter: the drop and keep processing stages. Each has a list of
 * conditions (`when`), ANDed: drop drops an event that meets them all,
 * keep drops one that does not. A condition is a field and one operator:
 * equals, prefix, present, absent, or a numeric comparison (lt, le, gt, ge)
 * of a number field or of text that is a number whole. The names message,
 * stream and host test the event's own. No expression language: each
 * condition is a comparison compiled once, run without allocating.
 */
#ifndef LOGFERRY_FILTER_H
#define LOGFERRY_FILTER_H

#include "agent/processor.h"

extern const struct processor_type filter_drop_processor_type;
extern const struct processor_type filter_keep_processor_type;

#endif
