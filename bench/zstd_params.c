/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zstd_params: what a zstd parameter costs on an agent's real segments.
 * Reads every stored segment of a spool (an agent's data_dir/spool, e.g.
 * after it tailed bench/nginx_log.py's lines), takes back the bytes the
 * spool writer compressed (the segment's Dict and events) and compresses
 * each again in one ZSTD_compress2 call, as the writer does, starting from
 * the writer's parameters (level 1, no content checksum, hashLog 12:
 * agent/spool.c) with the given ones changed. Prints the compressed size,
 * the ratio, bytes per event and CPU time per pass; for instructions, run
 * it under callgrind with --toggle-collect=zstd_params_compress, which
 * holds the compression calls and nothing else (docs/performance.md).
 *
 * Usage: zstd_params SPOOL_DIR [PASSES [NAME=VALUE ...]]
 *   NAME: hashLog, windowLog, chainLog, minMatch, targetLength, strategy
 *   (1 fast, 2 dfast, ...), literals (0 zstd's choice, 1 Huffman-coded,
 *   2 raw: ZSTD_c_literalCompressionMode, which zstd's fast strategy
 *   otherwise turns to raw for any targetLength above 0).
 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_c_literalCompressionMode */
#include <zstd.h>

#include "agent/spool.h"
#include "bench/bench_util.h"
#include "common/buf.h"

struct zp_seg {
	uint8_t *raw;
	size_t len;
};

struct zp {
	struct zp_seg *segs;
	size_t n, cap;
	uint64_t events, raw;
	size_t largest;
};

static const struct {
	const char *name;
	ZSTD_cParameter param;
} zp_names[] = {
	{ "hashLog", ZSTD_c_hashLog },
	{ "windowLog", ZSTD_c_windowLog },
	{ "chainLog", ZSTD_c_chainLog },
	{ "minMatch", ZSTD_c_minMatch },
	{ "targetLength", ZSTD_c_targetLength },
	{ "strategy", ZSTD_c_strategy },
	{ "literals", ZSTD_c_literalCompressionMode },
};

static int
zp_take(void *ctx, const struct spool_segment *seg)
{
	struct zp *z = ctx;
	struct buf b;
	int r;

	if (z->n == z->cap) {
		size_t cap = z->cap == 0 ? 64 : 2 * z->cap;
		struct zp_seg *s = realloc(z->segs, cap * sizeof(*s));

		if (s == NULL)
			return -ENOMEM;
		z->segs = s;
		z->cap = cap;
	}
	buf_init(&b, seg->uncompressed);
	if ((r = spool_segment_stored(seg, &b)) != 0) {
		buf_free(&b);
		return r;
	}
	z->segs[z->n].raw = b.data;   /* kept to the end: the buffer's memory, not the buf */
	z->segs[z->n].len = b.len;
	z->n++;
	z->events += seg->events;
	z->raw += b.len;
	if (b.len > z->largest)
		z->largest = b.len;
	return 0;
}

/* The compression calls alone, for callgrind's --toggle-collect. */
__attribute__((noinline)) static int
zstd_params_compress(ZSTD_CCtx *cctx, const struct zp *z, uint8_t *out, size_t cap,
    uint64_t *total)
{
	for (size_t i = 0; i < z->n; i++) {
		size_t n = ZSTD_compress2(cctx, out, cap, z->segs[i].raw, z->segs[i].len);

		if (ZSTD_isError(n)) {
			fprintf(stderr, "zstd_params: segment %zu: %s\n", i, ZSTD_getErrorName(n));
			return -EIO;
		}
		*total += n;
	}
	return 0;
}

static int
zp_set(ZSTD_CCtx *cctx, const char *arg)
{
	const char *eq = strchr(arg, '=');

	for (size_t i = 0; eq != NULL && i < sizeof(zp_names) / sizeof(zp_names[0]); i++) {
		size_t e;

		if (strlen(zp_names[i].name) != (size_t)(eq - arg) ||
		    strncmp(arg, zp_names[i].name, (size_t)(eq - arg)) != 0)
			continue;
		e = ZSTD_CCtx_setParameter(cctx, zp_names[i].param, atoi(eq + 1));
		if (ZSTD_isError(e)) {
			fprintf(stderr, "zstd_params: %s: %s\n", arg, ZSTD_getErrorName(e));
			return -EINVAL;
		}
		return 0;
	}
	fprintf(stderr, "zstd_params: %s: expected NAME=VALUE with NAME one of hashLog, windowLog, "
	    "chainLog, minMatch, targetLength, strategy, literals\n", arg);
	return -EINVAL;
}

int
main(int argc, char **argv)
{
	struct zp z = { 0 };
	struct spool_view *v;
	ZSTD_CCtx *cctx;
	const char *why = NULL;
	uint64_t total = 0;
	uint8_t *out;
	size_t cap;
	double t0, t;
	int passes, r;

	if (argc < 2) {
		fprintf(stderr, "usage: zstd_params SPOOL_DIR [PASSES [NAME=VALUE ...]]\n");
		return 2;
	}
	passes = argc > 2 ? atoi(argv[2]) : 1;
	if (passes < 1)
		passes = 1;
	if ((r = spool_view_open(argv[1], &v)) != 0) {
		fprintf(stderr, "zstd_params: cannot open the spool %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	r = spool_view_segments(v, 0, zp_take, &z, &why);
	spool_view_close(v);
	if (r != 0 || z.n == 0) {
		fprintf(stderr, "zstd_params: %s: %s\n", argv[1], r != 0 ? (why != NULL ? why :
		    strerror(-r)) : "no segments: run an agent into it first");
		return 1;
	}
	cap = ZSTD_compressBound(z.largest);
	if ((out = malloc(cap)) == NULL || (cctx = ZSTD_createCCtx()) == NULL ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, 12))) {
		fprintf(stderr, "zstd_params: out of memory\n");
		return 1;
	}
	for (int i = 3; i < argc; i++)
		if (zp_set(cctx, argv[i]) != 0)
			return 2;
	t0 = bench_cpu_seconds();
	for (int p = 0; p < passes; p++)
		if (zstd_params_compress(cctx, &z, out, cap, &total) != 0)
			return 1;
	t = bench_cpu_seconds() - t0;
	total /= (uint64_t)passes;
	printf("segments %zu events %" PRIu64 " raw %" PRIu64 " compressed %" PRIu64
	    " ratio %.3f bytes/event %.2f cpu_ms/pass %.1f\n", z.n, z.events, z.raw, total,
	    (double)z.raw / (double)total, (double)total / (double)z.events, t * 1000 / passes);
	for (size_t i = 0; i < z.n; i++)
		free(z.segs[i].raw);
	free(z.segs);
	free(out);
	ZSTD_freeCCtx(cctx);
	return 0;
}
