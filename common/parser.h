/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parser: what a line parser produces (agent/<format>_parse.c), ready for
 * proto/event.h.
 *
 * One struct parsed is reused for every line of a source: the fields are
 * overwritten by each parse and scratch keeps its memory. EVENT_SLICE
 * fields are (offset, length) into the line that was parsed, which is the
 * event's message; the line must outlive the use of the result.
 */
#ifndef LOGFERRY_PARSER_H
#define LOGFERRY_PARSER_H
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "proto/event.h"
#define PARSER_MAX_FIELDS 64
/*
 * The last time text a parser converted and its result: the lines of one
 * second share it, and comparing costs about 15 instructions where
 * converting NGINX's $time_local again costs 250.
 * Kept across lines and parser_reset; only a valid time is remembered.
 */
#define PARSER_TIME_MEMO_MAX 32
struct parser_time_memo {
	uint8_t text[PARSER_TIME_MEMO_MAX];
	size_t len;                  /* 0: nothing remembered */
	uint64_t ts;
};

struct parsed {
	uint64_t ts;                 /* ns since the epoch, UTC; 0: the line has no usable time */
	struct pbslice host;         /* host named by the line (syslog HOSTNAME); empty if none */
	struct event_field fields[PARSER_MAX_FIELDS];
	size_t nfields;
	const char *error;           /* static text: why the line did not parse (or, after a
	                                success, which part did not); NULL if it all did */
	bool static_keys;            /* every key is a string literal: see struct event's */
	const void *key_set;         /* with static_keys: which list of keys, see struct event's */
	struct buf scratch;          /* owned: bytes of values that are not slices of the line */
	struct parser_time_memo time_memo;
};
/* Prepares p for use (scratch may grow to max_scratch bytes). Allocates nothing. */
void parser_init(struct parsed *p, size_t max_scratch);
/* Clears the result before parsing the next line; keeps scratch's memory. */
void parser_reset(struct parsed *p);
/* Frees scratch's memory; p is empty and reusable afterwards. NULL is fine. */
void parser_free(struct parsed *p);
#endif
