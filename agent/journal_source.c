/* SPDX-License-Identifier: Apache-2.0 */
/* journal_source: sd-journal -> spool for one journal source (see journal_source.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "agent/journal_source.h"
#include "agent/pipeline.h"
#include "agent/source.h"
#include "agent/source_type.h"
#include "common/base64.h"
#include "common/log.h"

/* ---------------------------------------------------------------- entry -> event */

#define PS(s) ((struct pbslice){ (const uint8_t *)(s), sizeof(s) - 1 })

/* Trusted fields shipped (the others are left out, see journal_source.h). */
static const char *const journal_trusted[] = { "_PID", "_SYSTEMD_UNIT", NULL };
/* Fields typed as integers when they are decimal numbers. */
static const char *const journal_integers[] = { "PRIORITY", "SYSLOG_FACILITY", "_PID", NULL };

void
journal_entry_init(struct journal_entry *e, size_t max_value)
{
	memset(e, 0, sizeof(*e));
	e->max_value = max_value;
	/*
	 * Names, values (base64 makes them 4/3 larger) and markers: the
	 * message, and as much again for the other fields together.
	 */
	buf_init(&e->data, 4 * max_value + 65536);
}

void
journal_entry_free(struct journal_entry *e)
{
	buf_free(&e->data);
}

void
journal_entry_reset(struct journal_entry *e)
{
	buf_reset(&e->data);
	e->nf = 0;
	e->others = 0;
	e->has_msg = e->has_host = e->msg_binary = e->truncated = e->msg_cut = false;
	e->binary = e->dropped = 0;
	memset(e->origin_len, 0, sizeof(e->origin_len));
}

static bool
journal_name_in(const char *name, size_t len, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strlen(*list) == len && memcmp(*list, name, len) == 0)
			return true;
	return false;
}

/*
 * Whether v is text: valid UTF-8 (no overlong form, surrogate or code
 * point past U+10FFFF) without control characters but tab and newline.
 */
static bool
journal_is_text(const uint8_t *v, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = v[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((v[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (v[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/* A decimal number of at most 18 digits, else false. */
static bool
journal_integer(const uint8_t *v, size_t len, int64_t *out)
{
	int64_t n = 0;

	if (len == 0 || len > 18)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return true;
}

/*
 * Copies value v into e->data, base64 when it is not text, cut at
 * max_value. Sets *off and *olen; returns whether it was binary, or
 * -ENOMEM when it does not fit.
 */
static int
journal_copy_value(struct journal_entry *e, const uint8_t *v, size_t len, size_t *off,
    size_t *olen)
{
	bool binary;
	size_t n;

	if (len > e->max_value) {
		len = e->max_value;
		/* Cut at a character: never a half character that would make text binary. */
		while (len > 0 && (v[len] & 0xc0) == 0x80)
			len--;
		e->truncated = true;
	}
	binary = !journal_is_text(v, len);
	n = binary ? (len + 2) / 3 * 4 : len;
	if (buf_reserve(&e->data, n) != 0)
		return -ENOMEM;
	*off = e->data.len;
	*olen = n;
	if (binary)
		base64_encode(v, len, e->data.data + e->data.len);
	else if (len > 0)
		/* An empty first value has no buffer behind it yet. */
		memcpy(e->data.data + e->data.len, v, len);
	e->data.len += n;
	return binary ? 1 : 0;
}

/* Keeps value v of the field of name d[0, nlen) when it tells the entry's stream. */
static void
journal_entry_origin(struct journal_entry *e, const uint8_t *d, size_t nlen, const uint8_t *v,
    size_t vlen)
{
	static const char *const names[JOURNAL_ORIGINS] = {
		[JOURNAL_STREAM_ID] = "_STREAM_ID", [JOURNAL_PID] = "_PID",
		[JOURNAL_IDENT] = "SYSLOG_IDENTIFIER", [JOURNAL_COMM] = "_COMM",
	};

	for (size_t i = 0; i < JOURNAL_ORIGINS; i++) {
		if (strlen(names[i]) != nlen || memcmp(names[i], d, nlen) != 0)
			continue;
		if (vlen > JOURNAL_ORIGIN_MAX)
			vlen = JOURNAL_ORIGIN_MAX;
		memcpy(e->origin[i], v, vlen);
		e->origin_len[i] = vlen;
		return;
	}
}

int
journal_entry_add(struct journal_entry *e, const void *data, size_t len)
{
	const uint8_t *d = data, *eq = memchr(data, '=', len);
	size_t nlen, vlen, koff, voff, vl, need;
	int b;

	if (eq == NULL || eq == d)
		return 0;
	nlen = (size_t)(eq - d);
	vlen = len - nlen - 1;
	journal_entry_origin(e, d, nlen, eq + 1, vlen);
	if (nlen == 7 && memcmp(d, "MESSAGE", 7) == 0) {
		/* The message has room whatever came before it (see journal_entry_init). */
		if ((b = journal_copy_value(e, eq + 1, vlen, &e->msg, &e->msg_len)) < 0)
			return b;
		e->has_msg = true;
		e->msg_cut = vlen > e->max_value;
		e->msg_binary = b == 1;
		e->binary += b == 1;
		return 0;
	}
	if (nlen == 9 && memcmp(d, "_HOSTNAME", 9) == 0) {
		if (vlen > 255 || !journal_is_text(eq + 1, vlen))
			return 0;
		if (buf_append_grow(&e->data, eq + 1, vlen) != 0)
			return -ENOMEM;
		e->host = e->data.len - vlen;
		e->host_len = vlen;
		e->has_host = true;
		return 0;
	}
	if (d[0] == '_' && !journal_name_in((const char *)d, nlen, journal_trusted))
		return 0;
	/*
	 * Other fields take at most half the bound together, so that the
	 * MESSAGE always fits, before or after them; each counts its value
	 * base64-encoded and its _binary marker's name, at worst.
	 */
	need = 2 * nlen + 7 + ((vlen < e->max_value ? vlen : e->max_value) + 2) / 3 * 4;
	if (e->nf == JOURNAL_MAX_FIELDS || e->others + need > e->data.max / 2) {
		e->dropped++;
		return 0;
	}
	e->others += need;
	koff = e->data.len;
	if (buf_append_grow(&e->data, d, nlen) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < nlen; i++)
		if (e->data.data[koff + i] >= 'A' && e->data.data[koff + i] <= 'Z')
			e->data.data[koff + i] += 'a' - 'A';
	if ((b = journal_copy_value(e, eq + 1, vlen, &voff, &vl)) < 0)
		return b;
	e->f[e->nf].key = koff;
	e->f[e->nf].key_len = nlen;
	e->f[e->nf].val = voff;
	e->f[e->nf].val_len = vl;
	e->f[e->nf].type = EVENT_TEXT;
	if (b == 0 && journal_name_in((const char *)d, nlen, journal_integers) &&
	    journal_integer(eq + 1, vlen, &e->f[e->nf].integer))
		e->f[e->nf].type = EVENT_INTEGER;
	if (b == 1 && e->nf + 1 == JOURNAL_MAX_FIELDS) {
		/* No slot left for its marker: a value without it would read as text. */
		e->data.len = koff;
		e->dropped++;
		return 0;
	}
	if (b == 1) {
		/* "<name>_binary" follows the value in data. */
		e->binary++;
		e->nf++;
		koff = e->data.len;
		if (buf_append_grow(&e->data, e->data.data + e->f[e->nf - 1].key, nlen) != 0 ||
		    buf_append_grow(&e->data, "_binary", 7) != 0)
			return -ENOMEM;
		e->f[e->nf].key = koff;
		e->f[e->nf].key_len = nlen + 7;
		e->f[e->nf].type = EVENT_BOOLEAN;
	}
	e->nf++;
	return 0;
}

static void
journal_mark(struct event *ev, struct pbslice key)
{
	struct event_field *f = &ev->fields[ev->nfields++];

	f->key = key;
	f->type = EVENT_BOOLEAN;
	f->v.boolean = true;
}

size_t
journal_entry_event(struct journal_entry *e, uint64_t ts, const char *host, const char *stream,
    const char *source, struct event *ev)
{
	const uint8_t *d = e->data.data;
	size_t nmarks = 0;

	memset(ev, 0, sizeof(*ev));
	ev->ts = ts;
	ev->host = e->has_host ? (struct pbslice){ d + e->host, e->host_len } :
	    (struct pbslice){ (const uint8_t *)host, strlen(host) };
	ev->stream = (struct pbslice){ (const uint8_t *)stream, strlen(stream) };
	ev->source = (struct pbslice){ (const uint8_t *)source, strlen(source) };
	if (e->has_msg)
		ev->message = (struct pbslice){ d + e->msg, e->msg_len };
	ev->fields = e->fields;
	for (size_t i = 0; i < e->nf; i++) {
		struct event_field *f = &e->fields[ev->nfields++];

		f->key = (struct pbslice){ d + e->f[i].key, e->f[i].key_len };
		f->type = e->f[i].type;
		if (f->type == EVENT_INTEGER)
			f->v.integer = e->f[i].integer;
		else if (f->type == EVENT_BOOLEAN)
			f->v.boolean = true;
		else
			f->v.text = (struct pbslice){ d + e->f[i].val, e->f[i].val_len };
	}
	if (e->dropped > 0) {
		struct event_field *f = &e->fields[ev->nfields++];

		f->key = PS("fields_dropped");
		f->type = EVENT_INTEGER;
		f->v.integer = e->dropped;
	}
	/* The marks last: they stay when the fields must go. */
	if (e->msg_binary) {
		journal_mark(ev, PS("message_binary"));
		nmarks++;
	}
	if (e->truncated) {
		journal_mark(ev, PS("truncated"));
		nmarks++;
	}
	return nmarks;
}

static bool
journal_origin_eq(const struct journal_entry *a, const struct journal_entry *b, size_t i)
{
	return a->origin_len[i] == b->origin_len[i] &&
	    memcmp(a->origin[i], b->origin[i], a->origin_len[i]) == 0;
}

bool
journal_entry_same_stream(const struct journal_entry *a, const struct journal_entry *b)
{
	size_t na = a->origin_len[JOURNAL_IDENT] > 0 ? JOURNAL_IDENT : JOURNAL_COMM;
	size_t nb = b->origin_len[JOURNAL_IDENT] > 0 ? JOURNAL_IDENT : JOURNAL_COMM;

	if (a->origin_len[JOURNAL_STREAM_ID] > 0 || b->origin_len[JOURNAL_STREAM_ID] > 0)
		return journal_origin_eq(a, b, JOURNAL_STREAM_ID);
	return journal_origin_eq(a, b, JOURNAL_PID) && na == nb && journal_origin_eq(a, b, na);
}

int
journal_ml_init(struct journal_ml *ml, struct multiline_rule *rule, size_t max_bytes,
    size_t max_value)
{
	memset(ml, 0, sizeof(*ml));
	if ((ml->first = malloc(sizeof(*ml->first))) == NULL)
		return -ENOMEM;
	journal_entry_init(ml->first, max_value);
	multiline_init(&ml->m, rule, max_bytes);
	return 0;
}

void
journal_ml_free(struct journal_ml *ml)
{
	multiline_free(&ml->m);
	if (ml->first != NULL)
		journal_entry_free(ml->first);
	free(ml->first);
	ml->first = NULL;
}

bool
journal_ml_pending(const struct journal_ml *ml)
{
	return multiline_pending(&ml->m);
}

bool
journal_ml_joins(const struct journal_entry *e)
{
	return e->has_msg && !e->msg_binary;
}

bool
journal_ml_continues(const struct journal_ml *ml, const struct journal_entry *e)
{
	return journal_ml_joins(e) && journal_ml_pending(ml) &&
	    journal_entry_same_stream(ml->first, e) &&
	    multiline_continues(&ml->m, e->data.data + e->msg, e->msg_len);
}

int
journal_ml_add(struct journal_ml *ml, struct journal_entry **e, uint64_t ts, const char *cursor,
    uint64_t now_ns)
{
	struct journal_entry *t = *e;
	size_t clen = strlen(cursor);

	if (clen > SPOOL_CURSOR_MAX)
		return -E2BIG;
	if (multiline_add(&ml->m, t->data.data + t->msg, t->msg_len, false, now_ns, 0) != 0)
		return -ENOMEM;
	memcpy(ml->cursor, cursor, clen + 1);
	ml->msg_cut |= t->msg_cut;
	if (ml->m.lines == 1) {
		/* The entry is kept as the event's fields; the one kept before is reused. */
		*e = ml->first;
		ml->first = t;
		ml->ts = ts;
	}
	return 0;
}

size_t
journal_ml_event(struct journal_ml *ml, const char *host, const char *stream, const char *source,
    struct event *ev)
{
	struct journal_entry *f = ml->first;
	size_t nmarks;

	/* A later message cut at max_field_size counts as the first entry's. */
	f->truncated |= ml->msg_cut;
	nmarks = journal_entry_event(f, ml->ts, host, stream, source, ev);
	/* Without a byte joined (one empty message) the buffer may not exist: the entry's is it. */
	if (ml->m.len > 0)
		ev->message = (struct pbslice){ ml->m.buf, ml->m.len };
	if (ml->m.truncated) {
		journal_mark(ev, PS("multiline_truncated"));
		nmarks++;
	}
	return nmarks;
}

const char *
journal_ml_cursor(const struct journal_ml *ml)
{
	return ml->cursor;
}

uint32_t
journal_ml_entries(const struct journal_ml *ml)
{
	return ml->m.lines;
}

void
journal_ml_clear(struct journal_ml *ml)
{
	multiline_clear(&ml->m);
	ml->msg_cut = false;
}

/* ---------------------------------------------------------------- the source */

#ifdef HAVE_SYSTEMD

/* The safety net behind the journal's inotify descriptor, as tail's stat_interval. */
#define JOURNAL_WAKE_MS 1000

struct journal_source {
	const struct agent_source *cfg;
	const char *host, *stream, *source;
	struct spool *spool;
	struct pipeline door;        /* into the spool */
	sd_journal *j;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_idle_t idle;              /* more to read on the next loop turn */
	int handles;                 /* open, to close at stop */
	bool polling;
	bool pending;                /* the current entry is read but not spooled yet */
	bool paused;                 /* the spool is full: waiting for resume */
	bool failing;                /* a read error was logged: not again until one works */
	bool stopping;
	struct journal_entry *entry; /* the entry being read; owned */
	bool multiline;              /* cfg has a multiline rule: rule, ml and ml_timer are set */
	struct multiline_rule rule;
	struct journal_ml ml;
	uv_timer_t ml_timer;         /* ships an event no entry followed within flush_timeout */
	struct journal_source_stats st;
	void (*done)(void *ctx);
	void *done_ctx;
};

/* The entry at the read position into js->entry, with its time and cursor (to free). */
static int
journal_load(struct journal_source *js, uint64_t *usec, char **cursor)
{
	const void *d;
	size_t len;
	int r;

	*cursor = NULL;
	if ((r = sd_journal_get_realtime_usec(js->j, usec)) < 0 ||
	    (r = sd_journal_get_cursor(js->j, cursor)) < 0)
		return r;
	journal_entry_reset(js->entry);
	sd_journal_restart_data(js->j);
	while ((r = sd_journal_enumerate_available_data(js->j, &d, &len)) > 0)
		if ((r = journal_entry_add(js->entry, d, len)) != 0)
			break;
	if (r < 0) {
		free(*cursor);
		*cursor = NULL;
	}
	return r < 0 ? r : 0;
}

/*
 * Spools ev (made of entry e, or of entries entries) with cursor. Returns
 * 0 (also when the spool refused it: logged, counted and skipped), or
 * -EAGAIN: the spool is full, nothing was taken.
 */
static int
journal_emit(struct journal_source *js, const struct event *ev, size_t nmarks,
    const struct journal_entry *e, uint32_t entries, const char *cursor)
{
	uint64_t raw_before = js->door.fields_dropped;
	int r;

	r = pipeline_emit_cursor(&js->door, ev, nmarks, js->cfg->name, cursor);
	if (r == 0) {
		/* Spooled without its fields: all of them were left out. */
		if (js->door.fields_dropped != raw_before)
			js->st.fields_dropped += e->nf;
		js->st.entries += entries;
		js->st.binary_fields += e->binary;
		js->st.truncated += e->truncated;
		js->st.fields_dropped += e->dropped;
	} else if (r != -EAGAIN) {
		log_error("source %s: journal %s %s cannot be spooled (%s); skipped",
		    js->cfg->name, entries > 1 ? "event ending at the entry" : "entry", cursor,
		    strerror(-r));
		r = 0;
	}
	return r;
}

/* js->entry, read at usec with cursor, spooled as one event. */
static int
journal_ship_entry(struct journal_source *js, uint64_t usec, const char *cursor)
{
	struct event ev;
	size_t nmarks;

	nmarks = journal_entry_event(js->entry, usec * 1000, js->host, js->stream, js->source,
	    &ev);
	return journal_emit(js, &ev, nmarks, js->entry, 1, cursor);
}

/* Spools the pending multiline event; 0 (also when skipped) or -EAGAIN (kept pending). */
static int
journal_ml_ship(struct journal_source *js, bool by_timeout)
{
	struct event ev;
	size_t nmarks;
	uint32_t entries = journal_ml_entries(&js->ml);
	bool cut = js->ml.m.truncated;
	int r;

	nmarks = journal_ml_event(&js->ml, js->host, js->stream, js->source, &ev);
	if ((r = journal_emit(js, &ev, nmarks, js->ml.first, entries, journal_ml_cursor(&js->ml)))
	    != 0)
		return r;
	js->st.multiline_events += entries > 1;
	js->st.multiline_flushed += by_timeout;
	js->st.multiline_truncated += cut;
	journal_ml_clear(&js->ml);
	return 0;
}

static void journal_ml_timer(uv_timer_t *t);

/*
 * js->entry, read at usec with cursor, into the pending event, or ending it
 * (shipped first) and beginning the next. Returns 0 or -EAGAIN: the spool is
 * full, and the entry is read again at the resume (nothing of it was kept).
 */
static int
journal_gather(struct journal_source *js, uint64_t usec, const char *cursor)
{
	bool joins = journal_ml_joins(js->entry);
	int r;

	if (journal_ml_pending(&js->ml) && !journal_ml_continues(&js->ml, js->entry) &&
	    (r = journal_ml_ship(js, false)) != 0)
		return r;
	if (joins && (r = journal_ml_add(&js->ml, &js->entry, usec * 1000, cursor,
	    source_now_ns())) != 0) {
		log_error("source %s: %s to gather the journal entry %s into a multiline event; "
		    "the event before is shipped as it is and the entry goes alone", js->cfg->name,
		    r == -E2BIG ? "its cursor is too long" : "no memory", cursor);
		if (journal_ml_pending(&js->ml) && (r = journal_ml_ship(js, false)) != 0)
			return r;
		joins = false;
	}
	if (!joins)
		return journal_ship_entry(js, usec, cursor);
	/* Nothing came after the entry within flush_timeout: the event is whole. */
	(void)uv_timer_start(&js->ml_timer, journal_ml_timer, js->cfg->multiline.flush_timeout_ms, 0);
	return 0;
}

/* The entry at the read position, spooled (or gathered) with its cursor. */
static int
journal_ship(struct journal_source *js)
{
	uint64_t usec = 0;
	char *cursor;
	int r;

	if ((r = journal_load(js, &usec, &cursor)) < 0)
		return r;
	r = js->multiline ? journal_gather(js, usec, cursor) : journal_ship_entry(js, usec, cursor);
	free(cursor);
	return r;
}

static void
journal_read_error(struct journal_source *js, const char *what, int r)
{
	js->st.read_errors++;
	if (!js->failing)
		log_error("source %s: cannot %s the journal: %s; trying again at the next change "
		    "or in a second", js->cfg->name, what, strerror(-r));
	js->failing = true;
}

static void journal_read(struct journal_source *js);

static void
journal_on_idle(uv_idle_t *h)
{
	journal_read(h->data);
}

/* The spool is full: nothing is read until journal_source_resume. */
static void
journal_pause(struct journal_source *js)
{
	js->paused = true;
	js->st.pauses++;
	uv_idle_stop(&js->idle);
}

/*
 * Ships the pending event once no entry has come after it for
 * flush_timeout, or sets the timer for then. At a full spool the event
 * stays pending: journal_source_resume calls this again.
 */
static void
journal_ml_check(struct journal_source *js)
{
	uint64_t now = source_now_ns(), timeout = js->cfg->multiline.flush_timeout_ms * 1000000;
	uint64_t last = js->ml.m.last_ns, left;

	if (!journal_ml_pending(&js->ml) || js->paused || js->stopping)
		return;
	if (!multiline_due(&js->ml.m, now, timeout)) {
		/* A clock set back must not hold an event longer than flush_timeout. */
		left = now < last ? timeout : last + timeout - now;
		(void)uv_timer_start(&js->ml_timer, journal_ml_timer, left / 1000000 + 1, 0);
		return;
	}
	if (journal_ml_ship(js, true) == -EAGAIN)
		journal_pause(js);
}

static void
journal_ml_timer(uv_timer_t *t)
{
	journal_ml_check(t->data);
}

/* Reads and spools up to JOURNAL_BATCH entries; the rest on the next loop turn. */
static void
journal_read(struct journal_source *js)
{
	int r;

	if (js->paused || js->stopping)
		return;
	for (int n = 0; n < JOURNAL_BATCH; n++) {
		if (!js->pending) {
			if ((r = sd_journal_next(js->j)) < 0) {
				journal_read_error(js, "read", r);
				break;
			}
			if (r == 0) {
				uv_idle_stop(&js->idle);
				return;
			}
			js->pending = true;
		}
		if ((r = journal_ship(js)) == -EAGAIN) {
			journal_pause(js);
			return;
		}
		if (r < 0) {
			/* Skipped: sd-journal could not read the entry (a damaged file). */
			journal_read_error(js, "read an entry of", r);
		} else {
			js->failing = false;
		}
		js->pending = false;
	}
	uv_idle_start(&js->idle, journal_on_idle);
}

/* Takes in the journal's changes (files added, appended, removed), then reads. */
static void
journal_changed(struct journal_source *js)
{
	int r;

	/* Always, paused or not: it drains the inotify descriptor, which would wake us again. */
	if ((r = sd_journal_process(js->j)) < 0) {
		journal_read_error(js, "follow", r);
	} else if (r == SD_JOURNAL_INVALIDATE) {
		/*
		 * Files were added or removed (rotation, vacuum): sd-journal keeps
		 * the read position by entry, across files.
		 */
		js->st.invalidations++;
		log_debug("source %s: journal files were added or removed; reading on",
		    js->cfg->name);
	}
	journal_read(js);
}

static void
journal_on_poll(uv_poll_t *h, int status, int events)
{
	struct journal_source *js = h->data;

	(void)events;
	if (status < 0) {
		log_error("source %s: cannot wait for journal changes: %s; looking every second "
		    "instead", js->cfg->name, uv_strerror(status));
		uv_poll_stop(h);
		return;
	}
	journal_changed(js);
}

static void
journal_on_timer(uv_timer_t *h)
{
	journal_changed(h->data);
}

/* The time of the entry at the read position, for logs ("-" if unknown). */
static void
journal_entry_time(struct journal_source *js, char *out, size_t len)
{
	uint64_t usec;
	time_t t;
	struct tm tm;

	if (sd_journal_get_realtime_usec(js->j, &usec) < 0) {
		snprintf(out, len, "-");
		return;
	}
	t = (time_t)(usec / 1000000);
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Positions a source without a usable saved cursor at start_at. */
static int
journal_seek_start(struct journal_source *js)
{
	char *cursor;
	int r;

	js->pending = false;
	if (js->cfg->start_at == START_AT_BEGINNING)
		return sd_journal_seek_head(js->j);
	if ((r = sd_journal_seek_tail(js->j)) < 0)
		return r;
	/* On the last entry: the next read is the first entry written after it. */
	if ((r = sd_journal_previous(js->j)) <= 0)
		return r;
	if ((r = sd_journal_get_cursor(js->j, &cursor)) < 0)
		return r;
	/* Kept, so that a restart before the next entry starts here, not at a later end. */
	if ((r = spool_set_cursor(js->spool, js->cfg->name, cursor)) != 0)
		log_warn("source %s: cannot store the journal's end as its start (%s); if the agent "
		    "restarts before the next entry, entries in between are skipped",
		    js->cfg->name, strerror(-r));
	free(cursor);
	return 0;
}

/*
 * Positions the read after the saved cursor: on its entry, so that the
 * next read is the one after it; or, when the entry is gone, on the first
 * entry after it, not yet read (pending).
 */
static int
journal_seek(struct journal_source *js)
{
	const char *name = js->cfg->name;
	char cursor[SPOOL_CURSOR_MAX + 1], when[32];
	int r;

	if ((r = spool_get_cursor(js->spool, name, cursor, sizeof(cursor))) == -ENOENT) {
		log_info("source %s: no saved journal cursor: starting at the journal's %s "
		    "(start_at)", name, js->cfg->start_at == START_AT_BEGINNING ? "beginning" : "end");
		return journal_seek_start(js);
	}
	if (r != 0) {
		log_error("source %s: cannot read its saved journal cursor from the spool: %s",
		    name, strerror(-r));
		return r;
	}
	if ((r = sd_journal_seek_cursor(js->j, cursor)) < 0) {
		js->st.cursor_lost++;
		log_warn("source %s: the saved journal cursor '%s' cannot be used (%s): starting at "
		    "the journal's %s (start_at)", name, cursor, strerror(-r),
		    js->cfg->start_at == START_AT_BEGINNING ? "beginning" : "end");
		return journal_seek_start(js);
	}
	if ((r = sd_journal_next(js->j)) < 0)
		return r;
	if (r > 0 && sd_journal_test_cursor(js->j, cursor) > 0) {
		log_info("source %s: resuming after the saved journal cursor", name);
		return 0;
	}
	if (r > 0) {
		/* sd-journal stopped on the first entry after the saved position. */
		js->st.cursor_lost++;
		js->pending = true;
		journal_entry_time(js, when, sizeof(when));
		log_warn("source %s: the entry of the saved journal cursor is no longer in the "
		    "journal (vacuumed, or its file deleted): continuing from the first entry after "
		    "it still there, of %s; entries deleted in between were never read (keep the "
		    "agent running, or raise journald's SystemMaxUse, to read them before they go)",
		    name, when);
		return 0;
	}
	/* Nothing after the saved position: is its entry the last one? */
	if ((r = sd_journal_seek_cursor(js->j, cursor)) < 0 || (r = sd_journal_previous(js->j)) < 0)
		return r;
	if (r > 0 && sd_journal_test_cursor(js->j, cursor) > 0) {
		log_info("source %s: resuming after the saved journal cursor, at the journal's end",
		    name);
		return 0;
	}
	/*
	 * The journal holds neither the entry nor anything after it: it is
	 * not the journal the cursor was saved from (replaced, restored from a
	 * backup, another machine's), or the clock went back. Waiting for
	 * entries later than the cursor could ship nothing for long: treat the
	 * journal as new instead.
	 */
	js->st.cursor_lost++;
	log_warn("source %s: the saved journal cursor lies after every entry of the journal (the "
	    "journal was replaced or restored, is another machine's, or the clock went back): "
	    "starting at the journal's %s (start_at), as for a journal never read", name,
	    js->cfg->start_at == START_AT_BEGINNING ? "beginning" : "end");
	return journal_seek_start(js);
}

static int
journal_open(struct journal_source *js)
{
	const struct agent_source *cfg = js->cfg;
	const char **files;
	int r;

	if (cfg->directory != NULL)
		return sd_journal_open_directory(&js->j, cfg->directory, 0);
	if (cfg->files.n == 0)
		return sd_journal_open(&js->j, SD_JOURNAL_LOCAL_ONLY);
	if ((files = calloc(cfg->files.n + 1, sizeof(*files))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->files.n; i++)
		files[i] = ((char **)cfg->files.items)[i];
	r = sd_journal_open_files(&js->j, files, 0);
	free(files);
	return r;
}

/* Opens, filters and positions the journal; logs what failed. */
static int
journal_setup(struct journal_source *js)
{
	const struct agent_source *cfg = js->cfg;
	const char *what = cfg->directory != NULL ? cfg->directory :
	    cfg->files.n > 0 ? "the files listed" : "the local journal";
	uint64_t bytes = 0;
	int r;

	if ((r = journal_open(js)) < 0) {
		log_error("source %s: cannot open the journal (%s): %s", cfg->name, what,
		    strerror(-r));
		return r;
	}
	/* sd-journal opens what it may read, without a word for the files it may not. */
	if (cfg->files.n == 0 && sd_journal_get_usage(js->j, &bytes) >= 0 && bytes == 0)
		log_warn("source %s: no journal file readable in %s yet; the source reads them "
		    "once they appear%s", cfg->name, what, cfg->directory != NULL ? "" :
		    " (the system journal needs root or the group systemd-journal or adm; "
		    "without, a user sees only its own journal)");
	for (size_t i = 0; i < cfg->matches.n; i++) {
		const char *m = ((char **)cfg->matches.items)[i];

		if ((r = sd_journal_add_match(js->j, m, 0)) < 0) {
			log_error("source %s: the journal refuses the match '%s': %s", cfg->name, m,
			    strerror(-r));
			return r;
		}
	}
	/* Compressed values are decompressed only this far: one byte more shows a longer one. */
	if ((r = sd_journal_set_data_threshold(js->j, cfg->max_field_size + 1)) < 0 ||
	    (r = journal_seek(js)) < 0) {
		log_error("source %s: cannot position the journal (%s): %s", cfg->name, what,
		    strerror(-r));
		return r;
	}
	return 0;
}

static void
journal_closed(uv_handle_t *h)
{
	struct journal_source *js = h->data;
	void (*done)(void *);
	void *done_ctx;

	if (--js->handles > 0)
		return;
	done = js->done;
	done_ctx = js->done_ctx;
	if (js->j != NULL)
		sd_journal_close(js->j);
	if (js->multiline) {
		journal_ml_free(&js->ml);
		multiline_rule_free(&js->rule);
	}
	journal_entry_free(js->entry);
	free(js->entry);
	free(js);
	if (done != NULL)
		done(done_ctx);
}

static void
journal_close_handles(struct journal_source *js)
{
	js->handles = 2 + js->polling + js->multiline;
	uv_close((uv_handle_t *)&js->timer, journal_closed);
	if (js->multiline)
		uv_close((uv_handle_t *)&js->ml_timer, journal_closed);
	uv_close((uv_handle_t *)&js->idle, journal_closed);
	if (js->polling)
		uv_close((uv_handle_t *)&js->poll, journal_closed);
}

/* Compiles cfg's multiline rule, if it has one, and prepares its gathering. */
static int
journal_ml_start(uv_loop_t *loop, struct journal_source *js)
{
	const struct agent_source *cfg = js->cfg;
	char err[256];
	int r;

	if (cfg->multiline.start == NULL && cfg->multiline.continuation == NULL)
		return 0;
	/* The config check compiled it already: this fails only without memory. */
	if ((r = multiline_rule_init(&js->rule, cfg->multiline.start, cfg->multiline.continuation,
	    err, sizeof(err))) != 0) {
		log_error("source %s: multiline: %s", cfg->name, err);
		return r;
	}
	if ((r = journal_ml_init(&js->ml, &js->rule, cfg->multiline.max_bytes,
	    cfg->max_field_size)) != 0) {
		log_error("source %s: multiline: no memory for the entry an event keeps",
		    cfg->name);
		multiline_rule_free(&js->rule);
		return r;
	}
	js->multiline = true;
	uv_timer_init(loop, &js->ml_timer);
	js->ml_timer.data = js;
	return 0;
}

int
journal_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct journal_source **out)
{
	struct journal_source *js;
	int r, fd;

	if ((js = calloc(1, sizeof(*js))) == NULL)
		return -ENOMEM;
	js->cfg = cfg;
	js->host = host;
	js->stream = cfg->stream != NULL ? cfg->stream : cfg->name;
	js->source = cfg->directory != NULL ? cfg->directory : "journal";
	js->spool = spool;
	pipeline_init(&js->door, spool, "journal entry too large with its fields", cfg->chain);
	if ((js->entry = malloc(sizeof(*js->entry))) == NULL) {
		free(js);
		return -ENOMEM;
	}
	journal_entry_init(js->entry, cfg->max_field_size);
	uv_timer_init(loop, &js->timer);
	uv_idle_init(loop, &js->idle);
	js->timer.data = js->idle.data = js->poll.data = js;
	if ((r = journal_ml_start(loop, js)) < 0 || (r = journal_setup(js)) < 0)
		goto fail;
	if ((fd = sd_journal_get_fd(js->j)) < 0) {
		r = fd;
		log_error("source %s: cannot watch the journal for changes: %s", cfg->name,
		    strerror(-r));
		goto fail;
	}
	if ((r = uv_poll_init(loop, &js->poll, fd)) != 0 ||
	    (js->polling = true, r = uv_poll_start(&js->poll, UV_READABLE, journal_on_poll)) != 0) {
		log_error("source %s: cannot watch the journal for changes: %s", cfg->name,
		    uv_strerror(r));
		goto fail;
	}
	uv_timer_start(&js->timer, journal_on_timer, JOURNAL_WAKE_MS, JOURNAL_WAKE_MS);
	/* What is already there is read from the first loop turn. */
	uv_idle_start(&js->idle, journal_on_idle);
	*out = js;
	return 0;
fail:
	/* Closed on the loop; the caller only sees the error. */
	js->stopping = true;
	journal_close_handles(js);
	return r;
}

void
journal_source_resume(struct journal_source *js)
{
	if (!js->paused || js->stopping)
		return;
	js->paused = false;
	/* A pending event due is older than anything still to read: it goes first. */
	if (js->multiline) {
		journal_ml_check(js);
		if (js->paused)
			return;
	}
	uv_idle_start(&js->idle, journal_on_idle);
}

void
journal_source_get_stats(const struct journal_source *js, struct journal_source_stats *st)
{
	*st = js->st;
	st->dropped_unspoolable = js->door.dropped;
	st->multiline_pending = js->multiline ? journal_ml_entries(&js->ml) : 0;
}

void
journal_source_stop(struct journal_source *js, void (*done)(void *ctx), void *ctx)
{
	/*
	 * The pending event goes now: a source removed by a reload is never
	 * started again to find it. Not committed, it would be gathered again
	 * from the journal at the next start all the same.
	 */
	if (js->multiline && journal_ml_pending(&js->ml) && journal_ml_ship(js, false) != 0)
		log_warn("source %s: stopping with a multiline event of %" PRIu32 " entries that the "
		    "full spool cannot take; it stays in the journal, after the cursor committed, "
		    "and the next start of the source gathers it again", js->cfg->name,
		    journal_ml_entries(&js->ml));
	js->stopping = true;
	js->done = done;
	js->done_ctx = ctx;
	journal_close_handles(js);
}

#else /* !HAVE_SYSTEMD */

/* agent_config refuses a journal source in such a build; this says so again. */
int
journal_source_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct journal_source **out)
{
	(void)loop;
	(void)host;
	(void)spool;
	(void)out;
	log_error("source %s: this agent was built without libsystemd: it cannot read the "
	    "journal", cfg->name);
	return -ENOTSUP;
}

void
journal_source_resume(struct journal_source *js)
{
	(void)js;
}

void
journal_source_get_stats(const struct journal_source *js, struct journal_source_stats *st)
{
	(void)js;
	memset(st, 0, sizeof(*st));
}

void
journal_source_stop(struct journal_source *js, void (*done)(void *ctx), void *ctx)
{
	(void)js;
	if (done != NULL)
		done(ctx);
}

#endif

/* ---------------------------------------------------------------- its type */

#define JOURNAL_F(name, type, member, help) \
	{ "logferry_journal_" name, type, help, offsetof(struct journal_source_stats, member) }
static const struct metrics_field journal_source_fields[] = {
	JOURNAL_F("entries_total", "counter", entries, "Journal entries spooled."),
	JOURNAL_F("binary_fields_total", "counter", binary_fields,
	    "Field values shipped base64 (not UTF-8 text), marked <name>_binary."),
	JOURNAL_F("truncated_total", "counter", truncated,
	    "Entries with a value cut at max_field_size."),
	JOURNAL_F("fields_dropped_total", "counter", fields_dropped,
	    "Fields left out of their event: too many, or too large together."),
	JOURNAL_F("dropped_total", "counter", dropped_unspoolable,
	    "Entries the spool refused even without fields; skipped."),
	JOURNAL_F("invalidations_total", "counter", invalidations,
	    "Times journal files were added or removed (rotation, vacuum)."),
	JOURNAL_F("cursor_lost_total", "counter", cursor_lost,
	    "Starts whose saved cursor's entry was no longer in the journal."),
	JOURNAL_F("read_errors_total", "counter", read_errors, "Errors reading the journal."),
	JOURNAL_F("pauses_total", "counter", pauses, "Times reading stopped on a full spool."),
	JOURNAL_F("multiline_events_total", "counter", multiline_events,
	    "Events of more than one entry spooled (multiline)."),
	JOURNAL_F("multiline_flushed_total", "counter", multiline_flushed,
	    "Multiline events shipped after multiline.flush_timeout, no entry of their stream "
	    "having come after them."),
	JOURNAL_F("multiline_truncated_total", "counter", multiline_truncated,
	    "Multiline events cut at multiline.max_bytes (marked multiline_truncated)."),
	JOURNAL_F("multiline_pending", "gauge", multiline_pending,
	    "Entries gathered in the multiline event not spooled yet (their cursor not committed)."),
};

/*
 * A journal entry's message and as much again of other fields, base64 at
 * worst; with multiline, the message is at most max_bytes.
 */
static uint64_t
journal_source_max_message(const struct agent_source *cfg)
{
	bool ml = cfg->multiline.start != NULL || cfg->multiline.continuation != NULL;

	return ml && cfg->multiline.max_bytes > cfg->max_field_size ?
	    cfg->multiline.max_bytes + cfg->max_field_size : 2 * cfg->max_field_size;
}

static int
journal_source_type_start(uv_loop_t *loop, const struct agent_source *cfg, const char *host,
    struct spool *spool, struct budget *budget, void **out)
{
	(void)budget;
	return journal_source_start(loop, cfg, host, spool, (struct journal_source **)out);
}

static void
journal_source_type_resume(void *src)
{
	journal_source_resume(src);
}

static void
journal_source_type_stop(void *src, void (*done)(void *ctx), void *ctx)
{
	journal_source_stop(src, done, ctx);
}

static void
journal_source_type_stats(const void *src, void *st)
{
	journal_source_get_stats(src, st);
}

const struct source_type journal_source_type = {
	.name = "journal",
	/* The cursor is committed with the entries, as a file's position. */
	.resumes_from_spool = true,
	.max_message = journal_source_max_message,
	.start = journal_source_type_start,
	.resume = journal_source_type_resume,
	.stop = journal_source_type_stop,
	.stats = journal_source_type_stats,
	.stats_size = sizeof(struct journal_source_stats),
	.fields = METRICS_FIELDS(journal_source_fields),
};
