/* SPDX-License-Identifier: Apache-2.0 */
/* parser: the result of a line parser (see parser.h). */
#include "autoconfig.h"

#include <string.h>

#include "common/parser.h"

void
parser_init(struct parsed *p, size_t max_scratch)
{
	p->ts = 0;
	p->host.ptr = NULL;
	p->host.len = 0;
	p->nfields = 0;
	p->error = NULL;
	p->static_keys = false;
	p->key_set = NULL;
	p->time_memo.len = 0;
	buf_init(&p->scratch, max_scratch);
}

void
parser_reset(struct parsed *p)
{
	/* The field array is not cleared: nfields says how much of it counts. */
	p->ts = 0;
	p->host.ptr = NULL;
	p->host.len = 0;
	p->nfields = 0;
	p->error = NULL;
	p->static_keys = false;
	p->key_set = NULL;
	buf_reset(&p->scratch);
}

void
parser_free(struct parsed *p)
{
	if (p == NULL)
		return;
	buf_free(&p->scratch);
	p->time_memo.len = 0;
	p->ts = 0;
	p->host.ptr = NULL;
	p->host.len = 0;
	p->nfields = 0;
	p->error = NULL;
	p->static_keys = false;
	p->key_set = NULL;
}
