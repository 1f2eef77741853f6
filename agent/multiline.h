/* SPDX-License-Identifier: Apache-2.0 */
/*
 * multiline: gathers the lines of one stream (a file, a connection) into
 * events of several lines, such as Java and Python stack traces.
 *
 * A rule is one POSIX extended regex, compiled once per source: with a
 * start rule, a line that matches begins a new event and any other line is
 * appended to the pending one; with a continuation rule, a line that
 * matches is appended to the pending event and any other line begins a new
 * one. A line that comes when nothing is pending always begins an event.
 *
 * The caller asks multiline_continues() before each line: when it says no
 * and an event is pending, the caller ships the pending event (and clears
 * it) before adding the line. An event whose last line is older than the
 * flush timeout is due (multiline_due): nothing will tell that it is whole,
 * so it is shipped as it is.
 *
 * Joined lines are separated by "\n", each without a trailing "\r". An
 * event is at most max_bytes: the line that would cross it is cut there,
 * the event marked truncated, and later lines of the same event are
 * consumed without being kept (their end position still counts), so that
 * memory stays bounded by max_bytes per stream.
 */
#ifndef LOGFERRY_MULTILINE_H
#define LOGFERRY_MULTILINE_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct multiline_rule {
	regex_t re;
	bool start;             /* true: a match starts an event; false: a match continues one */
	/*
	 * The line being matched, copied with a NUL after it. regexec is told
	 * the line's end (REG_STARTEND), but sanitizers' interceptors of
	 * regexec read to a NUL all the same, and a line in a source's read
	 * buffer may end at the buffer's end. Grown to the longest line
	 * matched, and shared by the streams of one source, which all run on
	 * its loop.
	 */
	char *line;
	size_t line_cap;
};

/*
 * Compiles the rule from exactly one of start and continuation (the other
 * NULL). Returns 0, or -EINVAL with err holding why (both or neither set,
 * or the pattern's regerror text); then r needs no multiline_rule_free.
 */
int multiline_rule_init(struct multiline_rule *r, const char *start, const char *continuation,
    char *err, size_t errlen);
void multiline_rule_free(struct multiline_rule *r);

struct multiline {
	struct multiline_rule *rule;
	size_t max_bytes;
	uint8_t *buf;           /* the pending event's message; owned */
	size_t len, cap;
	uint32_t lines;         /* lines in the pending event; 0: none pending */
	bool truncated;         /* cut at max_bytes */
	bool partial;           /* its last line came without a newline */
	uint64_t first_ns;      /* when its first line was read */
	uint64_t last_ns;       /* when its last line was read */
	uint64_t end;           /* the caller's position just after its last line */
};

void multiline_init(struct multiline *m, struct multiline_rule *rule, size_t max_bytes);
void multiline_free(struct multiline *m);

/* An event is pending. */
bool multiline_pending(const struct multiline *m);

/* line[0, len) belongs to the pending event (false when none is pending). */
bool multiline_continues(const struct multiline *m, const uint8_t *line, size_t len);

/*
 * Appends line[0, len) to the pending event, or begins one with it; end is
 * the position after the line, now_ns when it was read. Returns 0, or
 * -ENOMEM (the event is unchanged).
 */
int multiline_add(struct multiline *m, const uint8_t *line, size_t len, bool partial,
    uint64_t now_ns, uint64_t end);

/* The pending event's last line is at least timeout_ns old at now_ns. */
bool multiline_due(const struct multiline *m, uint64_t now_ns, uint64_t timeout_ns);

/* The pending event was shipped (or given up): none is pending now. */
void multiline_clear(struct multiline *m);

/*
 * The capacity m's buffer has after multiline_add of a line of len bytes:
 * what a caller that counts memory (a connection's share of memory_limit)
 * takes before adding, as cap - m->cap more bytes.
 */
size_t multiline_cap_after(const struct multiline *m, size_t len);

/* What a source counts of the events it ships (its metrics, MULTILINE_METRICS). */
struct multiline_stats {
	uint64_t events;            /* events of more than one line spooled */
	uint64_t flushed;           /* of which shipped after flush_timeout */
	uint64_t truncated;         /* of which cut at max_bytes */
};

/* m's pending event was spooled; by_timeout: after flush_timeout (multiline_due). */
void multiline_count(struct multiline_stats *st, const struct multiline *m, bool by_timeout);

/*
 * The metric families of a source with multiline, in its table of
 * metrics_field: F is the source's entry macro, F(name, type, member,
 * help), and events, flushed, truncated the members of its stats struct.
 */
#define MULTILINE_METRICS(F, events, flushed, truncated) \
	F("multiline_events_total", "counter", events, \
	    "Events of more than one line spooled (multiline)."), \
	F("multiline_flushed_total", "counter", flushed, \
	    "Multiline events shipped after multiline.flush_timeout, no line having come after them."), \
	F("multiline_truncated_total", "counter", truncated, \
	    "Multiline events cut at multiline.max_bytes (marked multiline_truncated).")

#endif
