/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers the unit tests of spool users share: filling a spool, listing what it holds. */
#ifndef LOGFERRY_SPOOL_FIXTURE_H
#define LOGFERRY_SPOOL_FIXTURE_H

#include <stdint.h>

#include "agent/spool.h"

/* Appends one event of 4000 random (incompressible) bytes; spool_append's result. */
int spool_fixture_append_noise(struct spool *s, unsigned *seed);

/*
 * Appends such events until the spool has refused them for 200 loop turns
 * in a row (it stays full); asserts every refusal is -EAGAIN. Returns the
 * number of events taken.
 */
uint64_t spool_fixture_fill(struct spool *s, uv_loop_t *loop, unsigned *seed);

/* range[0..1] = [first, end) sequence numbers committed in the spool in dir (asserts it opens). */
void spool_fixture_committed_range(const char *dir, uint64_t range[2]);

/*
 * Writes in dir (which must not exist) a spool as agents before event
 * format 2 wrote it: meta format 1, one segment (header byte 4 = 1) of the
 * lines "line 00000000".."line <n-1>" (stream "test") with sequence numbers 1..n.
 */
void spool_fixture_write_format1(const char *dir, uint64_t n);

/*
 * As spool_fixture_write_format1, in event format format (1 or 2) and
 * meta format the same, as agents before format 3 wrote it: in format 2
 * the segment starts with its Dict, each event has a field "n" (a slice,
 * the line's number) and its stream by origin id.
 */
void spool_fixture_write_format(const char *dir, uint64_t n, int format);

#endif
