/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Line-oriented logging shared by the logferry agent and relay.
 *
 * Every message becomes exactly one line:
 *
 *   2026-11-25T01:20:31.123Z logferry-agent[1234]: error: the message
 *
 * Lines are assembled in a bounded stack buffer and written with one
 * fwrite+fflush under a mutex, so concurrent threads never interleave and
 * logging never allocates.  Control characters in the formatted message are
 * escaped because messages routinely carry peer-provided strings, and a raw
 * newline would let a peer forge log lines.
 *
 * Under systemd, when stderr is the journal, lines start with their syslog
 * priority instead of the time and program, which journald records itself:
 *
 *   <3>error: the message
 *
 * so that `journalctl -p err` selects them. log_format json writes one JSON
 * object per line instead:
 *
 *   {"time":"2026-11-25T01:20:31.123000Z","level":"error","program":"logferry-agent","pid":1234,"message":"the message"}
 *
 * All functions are thread-safe.  None is async-signal-safe (they take a
 * mutex), so do not log from signal handlers.
 */
#ifndef LOGFERRY_COMMON_LOG_H
#define LOGFERRY_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Longest line written, newline included; longer ones end in "...". */
#define LOG_LINE_MAX 4096

#define LOG_DEFAULT_BURST 10
#define LOG_DEFAULT_INTERVAL_MS 5000

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/*
 * Returns 0 and sets *out, or -EINVAL for an unknown name ("error","warn",
 * "info","debug"); matching is exact and case-sensitive so a config typo is
 * reported rather than guessed at.  On error *out is left untouched.  A NULL
 * name is -EINVAL.
 */
int log_level_parse(const char *name, enum log_level *out);

/*
 * Returns the lower-case name of level ("error" ...), or "unknown" for a value
 * outside the enum.  The string is static; never free it.
 */
const char *log_level_name(enum log_level level);

/*
 * Sets the program name shown in every line and the level.  progname is
 * copied (at most 63 bytes kept), so the caller keeps ownership; NULL keeps
 * the current name (default "logferry").  Also restores the default rate limit
 * and forgets all rate-limit state, dropping any pending suppressed counts:
 * it is meant to be called once at startup, before the other setters.  The
 * output stream and clock are left as they are.
 */
void log_init(const char *progname, enum log_level level);

/* How lines are written; the names in daemon_log_formats follow this order. */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/*
 * Sets the line format, and whether each line starts with its syslog
 * priority ("<3>" for error, <4> warn, <6> info, <7> debug) for journald, in
 * which case text lines leave out the time, program and pid that the
 * journal records. log_init restores text without priorities.
 */
void log_set_style(enum log_format format, bool journal);

/*
 * Whether fd is the journal's stream: journal_stream is the value of
 * $JOURNAL_STREAM ("DEVICE:INODE", decimal), which systemd sets for a
 * service whose stderr or stdout it connects to the journal, and fd has
 * that device and inode. NULL or malformed: false.
 */
bool log_stream_is_journal(int fd, const char *journal_stream);

/* log_stream_is_journal for stderr and this process's $JOURNAL_STREAM. */
bool log_stderr_is_journal(void);

/* Messages with a level above this one are discarded.  Default info. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/*
 * Default stderr; NULL restores stderr.  The stream stays owned by the caller
 * and must remain open until it is replaced by another log_set_output() call.
 */
void log_set_output(FILE *out);

/*
 * now_ns returns realtime nanoseconds since the epoch; it timestamps lines
 * and drives the rate limiter.  NULL restores the real clock
 * (clock_gettime(CLOCK_REALTIME)).  It is called with the log mutex held, so
 * it must be thread-safe and must not log.
 */
void log_set_clock(uint64_t (*now_ns)(void));

/*
 * Each call site may print `burst` messages per `interval_ms` window; the rest
 * of that window is suppressed and counted.  burst 0 disables limiting.
 * Default LOG_DEFAULT_BURST per LOG_DEFAULT_INTERVAL_MS.  Pending suppressed
 * counts are reported first, since windows counted under the old limit do not
 * carry over.
 */
void log_set_ratelimit(unsigned burst, uint64_t interval_ms);

/*
 * Formats and writes one line if level passes the filter.  The rate-limit key
 * is the fmt pointer, i.e. the call site; the compiler may merge identical
 * string literals, so call sites with the same format text can share a key.
 * The pointer is kept as the key, so fmt must outlive the program's logging:
 * use a string literal, never a buffer (which would also be a format-string
 * hole).  A suppressed message is still formatted (its first 511 bytes kept)
 * for the call site's report.  errno is preserved, and "%m" reports the
 * caller's errno.
 */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes "N similar messages suppressed, the last: <message>" for every call
 * site with a pending count, at the level of the suppressed messages.  Call at exit so
 * the last window's count is not lost.
 */
void log_flush_suppressed(void);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif /* LOGFERRY_COMMON_LOG_H */
