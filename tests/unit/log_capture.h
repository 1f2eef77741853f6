/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log_capture: the daemon log (common/log) written to memory during a unit
 * test, so that tests can check what an operator would read.
 */
#ifndef LOGFERRY_LOG_CAPTURE_H
#define LOGFERRY_LOG_CAPTURE_H

#include <stddef.h>
#include <stdio.h>

struct log_capture {
	FILE *f;
	char *buf;
	size_t len;
	const char *debug_env;   /* when this variable is set, the log is printed at stop */
};

/*
 * Sends the log of progname to memory, without rate limits, at debug level
 * when debug_env is set in the environment, else info. Fails the test if
 * the stream cannot be opened.
 */
void log_capture_start(struct log_capture *lc, const char *progname, const char *debug_env);

/* Everything logged so far, NUL-terminated. */
const char *log_capture_text(struct log_capture *lc);

/* Sends the log back to stderr, prints the capture if debug_env is set, frees it. */
void log_capture_stop(struct log_capture *lc);

/* Fails the test, showing the whole log, unless text was logged. */
void log_capture_expect(struct log_capture *lc, const char *text);

#endif
