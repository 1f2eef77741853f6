/* SPDX-License-Identifier: Apache-2.0 */
/*
 * require: the processing stage that checks that listed fields are there
 * (`fields`), and of a type where asked (`types`: string, integer, number,
 * boolean; an integer is a number too; a null value is missing). An event
 * that fails is not dropped: it is dead-lettered (processors.h) to
 * dead_letter_stream with the first reason found ("missing field
 * user_id", "field count is not an integer"), written once at compile.
 */
#ifndef LOGFERRY_REQUIRE_H
#define LOGFERRY_REQUIRE_H

#include "agent/processor.h"

extern const struct processor_type require_processor_type;

#endif
