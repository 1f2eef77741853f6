/* SPDX-License-Identifier: Apache-2.0 */
/* Shared spool helpers for unit tests (see spool_fixture.h). */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/spool_fixture.h"

int
spool_fixture_append_noise(struct spool *s, unsigned *seed)
{
	uint8_t msg[4000];
	struct event ev = { 0 };

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)rand_r(seed);
	ev.message.ptr = msg;
	ev.message.len = sizeof(msg);
	return spool_append(s, &ev, NULL);
}

uint64_t
spool_fixture_fill(struct spool *s, uv_loop_t *loop, unsigned *seed)
{
	uint64_t taken = 0;
	int idle = 0, rc;

	while (idle < 200) {
		if ((rc = spool_fixture_append_noise(s, seed)) == 0) {
			taken++;
			idle = 0;
			continue;
		}
		assert_int_equal(rc, -EAGAIN);
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
		idle++;
	}
	return taken;
}

static int
spool_fixture_range(void *ctx, const struct spool_segment *seg)
{
	uint64_t *range = ctx;

	if (range[0] == 0)
		range[0] = seg->first_seq;
	range[1] = seg->first_seq + seg->events;
	return 0;
}

void
spool_fixture_committed_range(const char *dir, uint64_t range[2])
{
	struct spool_view *v;
	const char *why;

	range[0] = range[1] = 0;
	assert_int_equal(spool_view_open(dir, &v), 0);
	assert_int_equal(spool_view_segments(v, 0, spool_fixture_range, range, &why), 0);
	spool_view_close(v);
}
