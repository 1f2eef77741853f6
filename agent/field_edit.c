/* SPDX-License-Identifier: Apache-2.0 */
/* field_edit: rename and remove (see field_edit.h). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/field_edit.h"

/* Names borrowed from the configuration, which outlives the stage: old and new, or one. */
struct field_edit {
	size_t n;
	struct pbslice name[][2];
};

static int
field_edit_new(size_t n, struct field_edit **out, char *err, size_t errlen)
{
	if ((*out = calloc(1, sizeof(**out) + n * sizeof((*out)->name[0]))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	(*out)->n = n;
	return 0;
}

static int
field_edit_compile_rename(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	struct field_edit *e;
	int r;

	(void)ctx;
	*out = NULL;
	if ((r = field_edit_new(cfg->map.n, &e, err, errlen)) != 0)
		return r;
	for (size_t i = 0; i < e->n; i++) {
		if (cfg->map.items[i].value[0] == '\0') {
			snprintf(err, errlen, "map.%s: the new name is empty (remove removes a field)",
			    cfg->map.items[i].key);
			free(e);
			return -EINVAL;
		}
		e->name[i][0] = processor_slice(cfg->map.items[i].key);
		e->name[i][1] = processor_slice(cfg->map.items[i].value);
	}
	*out = e;
	return 0;
}

static int
field_edit_compile_remove(const struct agent_processor *cfg, const struct processor_context *ctx,
    void **out, char *err, size_t errlen)
{
	struct field_edit *e;
	int r;

	(void)ctx;
	*out = NULL;
	if ((r = field_edit_new(cfg->fields.n, &e, err, errlen)) != 0)
		return r;
	for (size_t i = 0; i < e->n; i++)
		e->name[i][0] = processor_slice(((char **)cfg->fields.items)[i]);
	*out = e;
	return 0;
}

static void
field_edit_free(void *state)
{
	free(state);
}

static int
field_edit_rename(void *state, struct processor_event *pe)
{
	const struct field_edit *e = state;

	for (size_t i = 0; i < e->n; i++) {
		const struct pbslice *from = &e->name[i][0], *to = &e->name[i][1];
		struct event_field *f;

		if (processor_event_find(pe, (const char *)from->ptr, from->len) == NULL ||
		    (from->len == to->len && memcmp(from->ptr, to->ptr, to->len) == 0))
			continue;
		/* Removing moves fields: find the old one again after. */
		processor_event_remove(pe, (const char *)to->ptr, to->len);
		f = processor_event_find(pe, (const char *)from->ptr, from->len);
		f->key = *to;
	}
	return PROCESSOR_PASS;
}

static int
field_edit_remove(void *state, struct processor_event *pe)
{
	const struct field_edit *e = state;

	for (size_t i = 0; i < e->n; i++)
		processor_event_remove(pe, (const char *)e->name[i][0].ptr, e->name[i][0].len);
	return PROCESSOR_PASS;
}

const struct processor_type field_edit_rename_type = {
	.name = "rename",
	.compile = field_edit_compile_rename,
	.run = field_edit_rename,
	.free = field_edit_free,
};

const struct processor_type field_edit_remove_type = {
	.name = "remove",
	.compile = field_edit_compile_remove,
	.run = field_edit_remove,
	.free = field_edit_free,
};
