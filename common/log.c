/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/log.h"

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)

#define RATELIMIT_BITS 6
#define RATELIMIT_SLOTS (1u << RATELIMIT_BITS)
/*
 * A key may live in any of this many consecutive slots, so two busy call
 * sites that hash alike do not keep evicting each other (which would reset
 * both windows and defeat the limit).
 */
#define RATELIMIT_PROBE 4

#define ELLIPSIS "..."

/*
 * The last suppressed message of a call site is kept formatted, up to this
 * many bytes, for its report: the format string alone ("relay %s: ...")
 * tells the operator neither which peer nor what went wrong.
 */
#define SUPPRESSED_TEXT_MAX 512

struct ratelimit_slot {
	const char *fmt; /* NULL: free */
	uint64_t window_start_ns;
	uint64_t last_use; /* from state.use_seq; picks the eviction victim */
	unsigned printed;
	uint64_t suppressed;
	enum log_level suppressed_level;
	size_t last_len;
	bool last_cut;   /* the last suppressed message was longer than last[] */
	char last[SUPPRESSED_TEXT_MAX];
};

static uint64_t real_now_ns(void);

static struct {
	pthread_mutex_t lock;
	/* Read without the lock so filtered-out messages cost one load. */
	enum log_level level;
	char progname[64];
	FILE *out; /* NULL: stderr, which is not a constant initializer */
	enum log_format format;
	bool journal; /* lines start with "<N>", the syslog priority */
	uint64_t (*now_ns)(void);
	unsigned burst;
	uint64_t interval_ns;
	uint64_t use_seq;
	struct ratelimit_slot slots[RATELIMIT_SLOTS];
} state = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.level = LOG_LEVEL_INFO,
	.progname = "logferry",
	.now_ns = real_now_ns,
	.burst = LOG_DEFAULT_BURST,
	.interval_ns = LOG_DEFAULT_INTERVAL_MS * NS_PER_MS,
};

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

#define N_LEVELS (sizeof(level_names) / sizeof(level_names[0]))

/* syslog(3)'s LOG_ERR, LOG_WARNING, LOG_INFO and LOG_DEBUG. */
static const char *const level_priorities[] = {
	[LOG_LEVEL_ERROR] = "<3>",
	[LOG_LEVEL_WARN] = "<4>",
	[LOG_LEVEL_INFO] = "<6>",
	[LOG_LEVEL_DEBUG] = "<7>",
};

static const char *level_priority(enum log_level level)
{
	return (unsigned)level < N_LEVELS ? level_priorities[level] : "<6>";
}

int log_level_parse(const char *name, enum log_level *out)
{
	size_t i;

	if (name == NULL)
		return -EINVAL;
	for (i = 0; i < N_LEVELS; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= N_LEVELS)
		return "unknown";
	return level_names[level];
}

static uint64_t real_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void ratelimit_reset_locked(void)
{
	memset(state.slots, 0, sizeof(state.slots));
}

static void set_ratelimit_params_locked(unsigned burst, uint64_t interval_ms)
{
	state.burst = burst;
	/* Saturate: an absurd interval means "practically never refill". */
	if (interval_ms > UINT64_MAX / NS_PER_MS)
		state.interval_ns = UINT64_MAX;
	else
		state.interval_ns = interval_ms * NS_PER_MS;
}

void log_init(const char *progname, enum log_level level)
{
	pthread_mutex_lock(&state.lock);
	if (progname != NULL)
		snprintf(state.progname, sizeof(state.progname), "%s", progname);
	__atomic_store_n(&state.level, level, __ATOMIC_RELAXED);
	state.format = LOG_FORMAT_TEXT;
	state.journal = false;
	set_ratelimit_params_locked(LOG_DEFAULT_BURST, LOG_DEFAULT_INTERVAL_MS);
	ratelimit_reset_locked();
	pthread_mutex_unlock(&state.lock);
}

void log_set_style(enum log_format format, bool journal)
{
	pthread_mutex_lock(&state.lock);
	state.format = format;
	state.journal = journal;
	pthread_mutex_unlock(&state.lock);
}

bool log_stream_is_journal(int fd, const char *journal_stream)
{
	unsigned long long dev, ino;
	struct stat st;
	int used = 0;

	if (journal_stream == NULL || fd < 0 ||
	    sscanf(journal_stream, "%llu:%llu%n", &dev, &ino, &used) != 2 ||
	    journal_stream[used] != '\0' || fstat(fd, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool log_stderr_is_journal(void)
{
	return log_stream_is_journal(STDERR_FILENO, getenv("JOURNAL_STREAM"));
}

void log_set_level(enum log_level level)
{
	__atomic_store_n(&state.level, level, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
	return __atomic_load_n(&state.level, __ATOMIC_RELAXED);
}

void log_set_output(FILE *out)
{
	pthread_mutex_lock(&state.lock);
	state.out = out;
	pthread_mutex_unlock(&state.lock);
}

void log_set_clock(uint64_t (*now_ns)(void))
{
	pthread_mutex_lock(&state.lock);
	state.now_ns = now_ns != NULL ? now_ns : real_now_ns;
	pthread_mutex_unlock(&state.lock);
}

/*
 * "2026-11-25T01:20:31.123Z progname[pid]: level: ", or for the journal
 * "<3>level: ": journald stamps each line, and knows the unit's program
 * and pid.
 */
static size_t format_prefix(char *buf, size_t cap, uint64_t now_ns, enum log_level level)
{
	time_t secs = (time_t)(now_ns / NS_PER_S);
	unsigned ms = (unsigned)(now_ns % NS_PER_S / NS_PER_MS);
	char stamp[32];
	struct tm tm;
	int n;

	if (state.journal) {
		n = snprintf(buf, cap, "%s%s: ", level_priority(level), log_level_name(level));
		return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
	}
	if (gmtime_r(&secs, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "0000-00-00T00:00:00");
	n = snprintf(buf, cap, "%s.%03uZ %s[%ld]: %s: ", stamp, ms, state.progname,
		     (long)getpid(), log_level_name(level));
	if (n < 0)
		return 0;
	/* Cannot happen with a 63-byte progname, but never index past cap. */
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

/*
 * Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * sequence, so truncation never leaves a broken character for downstream
 * parsers that insist on valid UTF-8.
 */
static size_t utf8_whole_prefix(const char *s, size_t n)
{
	size_t i = n, cont = 0, need;
	unsigned char lead;

	while (i > 0 && cont < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
		i--;
		cont++;
	}
	if (i == 0)
		return n;
	lead = (unsigned char)s[i - 1];
	if (lead >= 0xF0)
		need = 3;
	else if (lead >= 0xE0)
		need = 2;
	else if (lead >= 0xC0)
		need = 1;
	else
		return n;
	return cont < need ? i - 1 : n;
}

/*
 * The JSON form of one line: head and body make the message, cut (with
 * "...") so that the whole line fits in LOG_LINE_MAX. Written into a buffer
 * on the stack: logging never allocates.
 */
static void emit_json_locked(enum log_level level, uint64_t now_ns, const char *head,
			     const char *body, size_t body_len, bool body_truncated, FILE *out)
{
	uint8_t line[LOG_LINE_MAX], text[LOG_LINE_MAX + sizeof(ELLIPSIS)];
	struct buf b = { .data = line, .cap = sizeof(line), .max = sizeof(line) };
	size_t head_len = strlen(head), n, budget, keep;
	int r = 0;

	if (state.journal)
		r |= jsonw_raw(&b, level_priority(level));
	r |= jsonw_raw(&b, "{\"time\":");
	r |= jsonw_time(&b, now_ns);
	r |= jsonw_raw(&b, ",\"level\":");
	r |= jsonw_cstring(&b, log_level_name(level));
	r |= jsonw_raw(&b, ",\"program\":");
	r |= jsonw_cstring(&b, state.progname);
	r |= jsonw_raw(&b, ",\"pid\":");
	r |= jsonw_int(&b, (int64_t)getpid());
	r |= jsonw_raw(&b, ",\"message\":");
	if (r != 0)
		return;
	/* Room left for the message's escaped text, its quotes, "}" and the newline. */
	budget = b.cap - b.len - 4;
	if (head_len > sizeof(text) - sizeof(ELLIPSIS))
		head_len = sizeof(text) - sizeof(ELLIPSIS);
	if (body_len > sizeof(text) - sizeof(ELLIPSIS) - head_len) {
		body_len = sizeof(text) - sizeof(ELLIPSIS) - head_len;
		body_truncated = true;
	}
	memcpy(text, head, head_len);
	memcpy(text + head_len, body, body_len);
	n = head_len + body_len;
	keep = jsonw_cut(text, n, budget, true, NULL);
	if (keep < n || body_truncated) {
		keep = jsonw_cut(text, n, budget - (sizeof(ELLIPSIS) - 1), true, NULL);
		memcpy(text + keep, ELLIPSIS, sizeof(ELLIPSIS) - 1);
		keep += sizeof(ELLIPSIS) - 1;
	}
	if (jsonw_string(&b, text, keep) != 0 || jsonw_raw(&b, "}\n") != 0)
		return;
	(void)fwrite(line, 1, b.len, out);
	(void)fflush(out);
}

/*
 * Writes one line: prefix, then head verbatim (our own text, no control
 * characters), then body escaped.  body_truncated says the caller already
 * lost the end of body, so the line must say so.
 */
static void emit_line_locked(enum log_level level, uint64_t now_ns, const char *head,
			     const char *body, size_t body_len, bool body_truncated)
{
	char line[LOG_LINE_MAX];
	/* Room is always kept for the ellipsis and newline. */
	const size_t limit = sizeof(line) - (sizeof(ELLIPSIS) - 1) - 1;
	size_t len, body_start, i, head_len = strlen(head);
	bool cut = false; /* ran out of room here */
	FILE *out = state.out != NULL ? state.out : stderr;

	if (state.format == LOG_FORMAT_JSON) {
		emit_json_locked(level, now_ns, head, body, body_len, body_truncated, out);
		return;
	}
	len = format_prefix(line, limit + 1, now_ns, level);
	if (head_len > limit - len) {
		head_len = limit - len;
		cut = true;
	}
	memcpy(line + len, head, head_len);
	len += head_len;

	body_start = len;
	for (i = 0; i < body_len && !cut; i++) {
		unsigned char c = (unsigned char)body[i];
		char esc[5];
		size_t n;

		if (c == '\n' || c == '\r' || c == '\t') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			n = 2;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			n = 4;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (n > limit - len) {
			cut = true;
			break;
		}
		memcpy(line + len, esc, n);
		len += n;
	}

	if (cut || body_truncated) {
		len = body_start + utf8_whole_prefix(line + body_start, len - body_start);
		memcpy(line + len, ELLIPSIS, sizeof(ELLIPSIS) - 1);
		len += sizeof(ELLIPSIS) - 1;
	}
	line[len++] = '\n';

	/* Logging must never fail its caller, so write errors are ignored. */
	(void)fwrite(line, 1, len, out);
	(void)fflush(out);
}

static void report_suppressed_locked(struct ratelimit_slot *slot, uint64_t now_ns)
{
	char head[64];

	snprintf(head, sizeof(head), "%" PRIu64 " similar messages suppressed, the last: ",
		 slot->suppressed);
	emit_line_locked(slot->suppressed_level, now_ns, head, slot->last, slot->last_len,
			 slot->last_cut);
	slot->suppressed = 0;
}

static size_t slot_hash(const char *fmt)
{
	/* Fibonacci hashing: the top bits mix all of the pointer's bits. */
	uint64_t h = (uint64_t)(uintptr_t)fmt * UINT64_C(0x9E3779B97F4A7C15);

	return (size_t)(h >> (64 - RATELIMIT_BITS));
}

static struct ratelimit_slot *slot_for_locked(const char *fmt, uint64_t now_ns)
{
	size_t base = slot_hash(fmt), i;
	struct ratelimit_slot *victim = NULL;

	for (i = 0; i < RATELIMIT_PROBE; i++) {
		struct ratelimit_slot *s = &state.slots[(base + i) & (RATELIMIT_SLOTS - 1)];

		if (s->fmt == fmt)
			return s;
		if (victim == NULL || (victim->fmt != NULL &&
				       (s->fmt == NULL || s->last_use < victim->last_use)))
			victim = s;
	}
	/* The evicted key's count would otherwise vanish silently. */
	if (victim->fmt != NULL && victim->suppressed > 0)
		report_suppressed_locked(victim, now_ns);
	memset(victim, 0, sizeof(*victim));
	victim->fmt = fmt;
	victim->window_start_ns = now_ns;
	return victim;
}

/*
 * Returns true if the message may be printed; else counts it and sets *held
 * to its call site's slot, where the caller keeps the formatted text.
 */
static bool ratelimit_admit_locked(enum log_level level, const char *fmt, uint64_t now_ns,
				   struct ratelimit_slot **held)
{
	struct ratelimit_slot *slot;

	*held = NULL;
	if (state.burst == 0)
		return true;
	slot = slot_for_locked(fmt, now_ns);
	slot->last_use = ++state.use_seq;
	/*
	 * The clock is realtime and may step backwards; starting a new window
	 * then is better than suppressing until the clock catches up.
	 */
	if (now_ns < slot->window_start_ns || now_ns - slot->window_start_ns >= state.interval_ns) {
		if (slot->suppressed > 0)
			report_suppressed_locked(slot, now_ns);
		slot->window_start_ns = now_ns;
		slot->printed = 0;
	}
	if (slot->printed < state.burst) {
		slot->printed++;
		return true;
	}
	slot->suppressed++;
	slot->suppressed_level = level;
	*held = slot;
	return false;
}

static void flush_suppressed_locked(void)
{
	uint64_t now_ns = 0;
	bool have_now = false;
	size_t i;

	for (i = 0; i < RATELIMIT_SLOTS; i++) {
		if (state.slots[i].fmt == NULL || state.slots[i].suppressed == 0)
			continue;
		if (!have_now) {
			now_ns = state.now_ns();
			have_now = true;
		}
		report_suppressed_locked(&state.slots[i], now_ns);
	}
}

void log_set_ratelimit(unsigned burst, uint64_t interval_ms)
{
	pthread_mutex_lock(&state.lock);
	flush_suppressed_locked();
	ratelimit_reset_locked();
	set_ratelimit_params_locked(burst, interval_ms);
	pthread_mutex_unlock(&state.lock);
}

void log_flush_suppressed(void)
{
	int saved_errno = errno;

	pthread_mutex_lock(&state.lock);
	flush_suppressed_locked();
	pthread_mutex_unlock(&state.lock);
	errno = saved_errno;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	/* Callers often log and then inspect errno, and "%m" needs theirs. */
	int saved_errno = errno;
	char msg[LOG_LINE_MAX];
	struct ratelimit_slot *held;
	uint64_t now_ns;
	va_list ap;
	int n;

	if (level > __atomic_load_n(&state.level, __ATOMIC_RELAXED))
		return;

	pthread_mutex_lock(&state.lock);
	/* Read under the lock so timestamps never go backwards within the file. */
	now_ns = state.now_ns();
	if (!ratelimit_admit_locked(level, fmt, now_ns, &held)) {
		errno = saved_errno;
		va_start(ap, fmt);
		n = vsnprintf(held->last, sizeof(held->last), fmt, ap);
		va_end(ap);
		if (n < 0) {
			snprintf(held->last, sizeof(held->last), "log format error: %s", fmt);
			n = (int)strlen(held->last);
		}
		held->last_cut = (size_t)n >= sizeof(held->last);
		held->last_len = held->last_cut ? sizeof(held->last) - 1 : (size_t)n;
		goto out;
	}

	errno = saved_errno;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		/* Still leave a trace of the call site rather than nothing. */
		emit_line_locked(level, now_ns, "log format error: ", fmt, strlen(fmt), false);
	else if ((size_t)n >= sizeof(msg))
		emit_line_locked(level, now_ns, "", msg, sizeof(msg) - 1, true);
	else
		emit_line_locked(level, now_ns, "", msg, (size_t)n, false);
out:
	pthread_mutex_unlock(&state.lock);
	errno = saved_errno;
}
