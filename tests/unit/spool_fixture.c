/* SPDX-License-Identifier: Apache-2.0 */
/* Shared spool helpers for unit tests (see spool_fixture.h). */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <zstd.h>

#include "common/buf.h"
#include "proto/event.h"
#include "proto/event_dict.h"
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

static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v)
{
	uint8_t b[8];
	MDB_val k = { strlen(name), (void *)name }, d = { 8, b };

	put_le(b, v, 8);
	assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
}

void
spool_fixture_write_format1(const char *dir, uint64_t n)
{
	spool_fixture_write_format(dir, n, EVENT_FORMAT_1);
}

void
spool_fixture_write_format(const char *dir, uint64_t n, int format)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi segs, files, meta;
	struct buf list;
	uint8_t *seg, key[8];
	size_t bound, zlen;
	ZSTD_CCtx *cctx;
	MDB_val k = { 8, key }, v;
	struct event_dict *d = event_dict_new(4096);
	struct event_dict_used used;
	struct buf events;

	assert_int_equal(mkdir(dir, 0750), 0);
	assert_non_null(d);
	memset(&used, 0, sizeof(used));
	event_dict_set_format(d, format);
	buf_init(&list, 1 << 24);
	buf_init(&events, 1 << 24);
	for (uint64_t i = 0; i < n; i++) {
		char msg[64];
		struct event ev = { .ts = i, .stream = { (const uint8_t *)"test", 4 } };
		/* In format 2 on, a field by id, "n": the line's number. */
		struct event_field f = { .key = { (const uint8_t *)"n", 1 }, .type = EVENT_SLICE };

		snprintf(msg, sizeof(msg), "line %08llu", (unsigned long long)i);
		ev.message.ptr = (const uint8_t *)msg;
		ev.message.len = strlen(msg);
		f.v.slice.offset = 5;
		f.v.slice.length = 8;
		ev.fields = &f;
		ev.nfields = format == EVENT_FORMAT_1 ? 0 : 1;
		assert_int_equal(format == EVENT_FORMAT_1 ? event_encode(&ev, &events) :
		    event_dict_encode(d, &ev, &used, &events), 0);
	}
	if (format != EVENT_FORMAT_1)
		assert_int_equal(event_dict_write(d, &used, &list), 0);
	assert_int_equal(buf_append(&list, events.data, events.len), 0);
	bound = ZSTD_compressBound(list.len);
	assert_non_null(seg = calloc(1, SPOOL_SEGMENT_HEADER + bound));
	/* With zstd's content checksum, as agents before format 3 compressed every segment. */
	assert_non_null(cctx = ZSTD_createCCtx());
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)));
	zlen = ZSTD_compress2(cctx, seg + SPOOL_SEGMENT_HEADER, bound, list.data, list.len);
	assert_false(ZSTD_isError(zlen));
	ZSTD_freeCCtx(cctx);
	put_le(seg, SPOOL_SEGMENT_MAGIC, 4);
	seg[4] = (uint8_t)format;
	seg[5] = SPOOL_CODEC_ZSTD;
	put_le(seg + 8, n, 4);
	put_le(seg + 12, list.len, 4);
	put_le(seg + 16, 1, 8);
	put_le(seg + 24, 0, 8);
	put_le(seg + 32, n - 1, 8);
	for (int i = 0; i < 8; i++)
		key[i] = i == 7 ? 1 : 0;
	v.mv_size = SPOOL_SEGMENT_HEADER + zlen;
	v.mv_data = seg;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64 << 20), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "segments", MDB_CREATE, &segs), 0);
	assert_int_equal(mdb_dbi_open(txn, "files", MDB_CREATE, &files), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
	/* The spool's format was the event format of its segments, up to 2. */
	put_meta(txn, meta, "format", (uint64_t)format);
	put_meta(txn, meta, "next_seq", n + 1);
	assert_int_equal(mdb_put(txn, segs, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(seg);
	buf_free(&list);
	buf_free(&events);
	event_dict_free(d);
}
