/* SPDX-License-Identifier: Apache-2.0 */
/* source: a line into an event (see source.h). */
#include "autoconfig.h"

#include <string.h>
#include <time.h>

#include "agent/source.h"
#include "common/log.h"

#define PS(s) ((struct pbslice){ (const uint8_t *)(s), sizeof(s) - 1 })

int
source_line_init(struct source_line *sl, const struct agent_source *cfg,
    const struct parser_type *parser, const char *host, size_t max_line)
{
	const char *stream = cfg->stream != NULL ? cfg->stream : cfg->name;
	struct parser_config pc;
	char err[256] = "";
	int r;

	memset(sl, 0, sizeof(*sl));
	sl->parser = parser;
	sl->stream.ptr = (const uint8_t *)stream;
	sl->stream.len = strlen(stream);
	sl->host.ptr = (const uint8_t *)host;
	sl->host.len = strlen(host);
	agent_config_parser_config(cfg, &pc);
	if ((r = parser->compile(&pc, &sl->state, err, sizeof(err))) != 0) {
		log_error("source %s: format %s: %s", cfg->name, parser->name,
		    err[0] != '\0' ? err : strerror(-r));
		return r;
	}
	/* Decoded JSON strings and syslog SD values: at most the line again, plus keys. */
	parser_init(&sl->parsed, 2 * max_line + 4096);
	return 0;
}

void
source_line_free(struct source_line *sl)
{
	parser_free(&sl->parsed);
	if (sl->parser != NULL)
		sl->parser->free(sl->state);
	sl->state = NULL;
}

uint64_t
source_now_ns(void)
{
	struct timespec ts;

	/* The coarse clock is a few ms behind at worst and costs a tenth. */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The fields every event has, with line as its message. */
static void
source_event_init(struct source_line *sl, const uint8_t *line, size_t len, uint64_t now_ns,
    const char *source, size_t source_len, struct event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts = now_ns;
	ev->host = sl->host;
	ev->stream = sl->stream;
	ev->source.ptr = (const uint8_t *)source;
	ev->source.len = source_len;
	ev->message.ptr = line;
	ev->message.len = len;
	ev->fields = sl->fields;
}

/*
 * Adds `partial: true` and `multiline_truncated: true` from field n when
 * marks say so; returns the field count.
 */
static size_t
source_mark_partial(struct source_line *sl, size_t n, unsigned marks)
{
	if (marks & SOURCE_PARTIAL) {
		sl->fields[n].key = PS("partial");
		sl->fields[n].type = EVENT_BOOLEAN;
		sl->fields[n++].v.boolean = true;
	}
	if (marks & SOURCE_MULTILINE_TRUNCATED) {
		sl->fields[n].key = PS("multiline_truncated");
		sl->fields[n].type = EVENT_BOOLEAN;
		sl->fields[n++].v.boolean = true;
	}
	return n;
}

void
source_line_event(struct source_line *sl, const uint8_t *line, size_t len, unsigned marks,
    uint64_t now_ns, const char *source, struct event *ev)
{
	source_line_event_n(sl, line, len, marks, now_ns, source, strlen(source), 0, ev);
}

void
source_line_event_n(struct source_line *sl, const uint8_t *line, size_t len, unsigned marks,
    uint64_t now_ns, const char *source, size_t source_len, uint64_t origin_gen, struct event *ev)
{
	struct parsed *p = &sl->parsed;
	size_t n = 0;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	source_event_init(sl, line, len, now_ns, source, source_len, ev);
	ev->origin_gen = origin_gen;
	if (sl->parser->parse(sl->state, line, len, now_ns, p) != 0) {
		sl->parse_errors++;
		sl->fields[n].key = PS("parse_error");
		sl->fields[n].type = EVENT_TEXT;
		sl->fields[n].v.text.ptr = (const uint8_t *)p->error;
		sl->fields[n++].v.text.len = strlen(p->error);
		/* parse_error and the marks are literals. */
		ev->static_keys = true;
	} else {
		ev->static_keys = p->static_keys;
		if (p->ts != 0)
			ev->ts = p->ts;
		if (p->host.len != 0) {
			/* The line's bytes, where the next line's will be. */
			ev->host = p->host;
			ev->origin_gen = 0;
		}
		if (p->error == NULL && marks == 0) {
			/* The common case, the parse's fields alone: used where they are, not copied. */
			ev->fields = p->fields;
			ev->nfields = p->nfields;
			/* The parser's list of keys, unchanged: its key set holds. */
			ev->key_set = p->key_set;
			return;
		}
		memcpy(sl->fields, p->fields, p->nfields * sizeof(p->fields[0]));
		n = p->nfields;
		if (p->error != NULL) {
			/* Parsed in part (a syslog PRI before a header we cannot read). */
			sl->parse_errors++;
			sl->fields[n].key = PS("parse_error");
			sl->fields[n].type = EVENT_TEXT;
			sl->fields[n].v.text.ptr = (const uint8_t *)p->error;
			sl->fields[n++].v.text.len = strlen(p->error);
		}
	}
	ev->nfields = source_mark_partial(sl, n, marks);
}

struct event_field *
source_line_add_field(struct source_line *sl, struct event *ev)
{
	/* The caller's key may live anywhere. */
	ev->static_keys = false;
	if (ev->fields != sl->fields) {
		memcpy(sl->fields, ev->fields, ev->nfields * sizeof(ev->fields[0]));
		ev->fields = sl->fields;
	}
	if (ev->nfields >= sizeof(sl->fields) / sizeof(sl->fields[0]))
		return NULL;
	return &sl->fields[ev->nfields++];
}

void
source_line_piece(struct source_line *sl, const uint8_t *line, size_t len,
    const struct source_piece *pc, unsigned marks, uint64_t now_ns, const char *source,
    struct event *ev)
{
	struct event_field *fl = sl->fields;

	/* A piece is cut at an arbitrary byte: parsing it means nothing. */
	source_event_init(sl, line, len, now_ns, source, strlen(source), ev);
	fl[0].key = PS("split");
	fl[0].type = EVENT_BOOLEAN;
	fl[0].v.boolean = true;
	fl[1].key = PS("split_id");
	fl[1].type = EVENT_TEXT;
	fl[1].v.text.ptr = (const uint8_t *)pc->id;
	fl[1].v.text.len = strlen(pc->id);
	fl[2].key = PS("split_index");
	fl[2].type = EVENT_INTEGER;
	fl[2].v.integer = pc->index;
	fl[3].key = PS("split_count");
	fl[3].type = EVENT_INTEGER;
	fl[3].v.integer = pc->count;
	ev->nfields = source_mark_partial(sl, 4, marks);
}
