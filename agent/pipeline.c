/* pipeline: the one door from a source into the spool (see pipeline.h). */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>

#include "agent/pipeline.h"

void
pipeline_init(struct pipeline *p, struct spool *spool, const char *why)
{
	memset(p, 0, sizeof(*p));
	p->spool = spool;
	p->why = why;
}

/* ev with a parse_error field and its last nmarks fields alone, into *raw. */
static void
pipeline_raw(struct pipeline *p, const struct event *ev, size_t nmarks, struct event *raw)
{
	struct event_field *f = p->raw;

	if (nmarks > PIPELINE_MAX_MARKS)
		nmarks = PIPELINE_MAX_MARKS;
	if (nmarks > ev->nfields)
		nmarks = ev->nfields;
	*raw = *ev;
	memset(&f[0], 0, sizeof(f[0]));
	f[0].key = (struct pbslice){ (const uint8_t *)"parse_error", 11 };
	f[0].type = EVENT_TEXT;
	f[0].v.text = (struct pbslice){ (const uint8_t *)p->why, strlen(p->why) };
	if (nmarks > 0)
		memcpy(&f[1], &ev->fields[ev->nfields - nmarks], nmarks * sizeof(f[0]));
	raw->fields = f;
	raw->nfields = 1 + nmarks;
}

int
pipeline_emit(struct pipeline *p, const struct event *ev, size_t nmarks,
    const struct spool_file *pos)
{
	struct event raw;
	int r;

	r = spool_append(p->spool, ev, pos);
	if (r == -EMSGSIZE) {
		/* Fields can make an event larger than its message; the message alone may fit. */
		pipeline_raw(p, ev, nmarks, &raw);
		if ((r = spool_append(p->spool, &raw, pos)) == 0)
			p->fields_dropped++;
	}
	if (r == 0 || r == -EAGAIN)
		return r;
	/* Its position still advances, or the file would stall on it forever. */
	if (pos != NULL && spool_set_position(p->spool, pos) == -EAGAIN)
		return -EAGAIN;
	p->dropped++;
	return r;
}
