/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parsed_fixture: checks on a struct parsed shared by the unit tests of
 * the NGINX parsers (test_nginx_format, test_nginx_error_parse).
 */
#ifndef LOGFERRY_PARSED_FIXTURE_H
#define LOGFERRY_PARSED_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"
#include "proto/event.h"

/* The field named key, or NULL. */
const struct event_field *parsed_field(const struct parsed *p, const char *key);

/* key is a string of type type (a slice of line, or text in scratch) whose bytes are want. */
void assert_parsed_string(const char *line, const struct parsed *p, const char *key,
    const char *want, enum event_value_type type);
void assert_parsed_integer(const struct parsed *p, const char *key, int64_t want);
/* Within 1e-6: a double holds $msec (1e9 seconds) to about 1e-7. */
void assert_parsed_number(const struct parsed *p, const char *key, double want);
void assert_parsed_json(const struct parsed *p, const char *key, const char *want);

typedef int (*parsed_fn)(void *ctx, const uint8_t *line, size_t len, struct parsed *out);

/*
 * Parses every prefix of line from a buffer of exactly its size (so that
 * the sanitizers see a read past it): each fails or gives slices inside it.
 */
void assert_prefixes_stay_inside(const char *line, parsed_fn fn, void *ctx);

#endif
