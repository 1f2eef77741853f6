/* SPDX-License-Identifier: Apache-2.0 */
/* backfill: read the file sources' files once into the spool (see backfill.h). */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "agent/agent.h"
#include "agent/backfill.h"
#include "agent/file_source.h"
#include "agent/spool.h"
#include "common/daemon.h"
#include "common/log.h"

/* How often the sources are asked whether they are done. */
#define BACKFILL_CHECK_MS 100

struct backfill {
	uv_loop_t loop;
	uv_timer_t timer;
	struct spool *spool;
	struct agent_source *cfgs;      /* the file sources, start_at: beginning */
	struct file_source **srcs;
	size_t n, running;
	bool spool_closed;
	bool stopping;
	int committed;                  /* spool_when_committed's status; 1: not yet */
	struct tail_stats total;
};

static void
backfill_writable(void *ctx)
{
	struct backfill *b = ctx;

	for (size_t i = 0; i < b->n; i++)
		if (b->srcs[i] != NULL)
			file_source_resume(b->srcs[i]);
}

static void
backfill_spool_closed(void *ctx)
{
	struct backfill *b = ctx;

	b->spool_closed = true;
}

static void
backfill_source_stopped(void *ctx)
{
	struct backfill *b = ctx;

	if (--b->running == 0) {
		spool_close(b->spool, backfill_spool_closed, b);
		b->spool = NULL;
	}
}

/* Stops the sources, then closes the spool (which commits what it holds). */
static void
backfill_stop(struct backfill *b)
{
	size_t n = b->running;

	b->stopping = true;
	uv_timer_stop(&b->timer);
	if (n == 0) {
		spool_close(b->spool, backfill_spool_closed, b);
		b->spool = NULL;
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		if (b->srcs[i] != NULL)
			file_source_stop(b->srcs[i], backfill_source_stopped, b);
}

static void
backfill_committed(void *ctx, int status)
{
	struct backfill *b = ctx;

	b->committed = status;
	backfill_stop(b);
}

/* Every source read every file it matched: wait for the spool's commit of it all. */
static void
backfill_check(uv_timer_t *h)
{
	struct backfill *b = h->data;
	struct file_source_stats st;
	struct tail_stats sum = { 0 };
	int r;

	for (size_t i = 0; i < b->n; i++) {
		file_source_get_stats(b->srcs[i], &st);
		if (st.tail.files_reading > 0)
			return;
		sum.lines += st.tail.lines;
		sum.files_seen += st.tail.files_seen;
		sum.archives_done += st.tail.archives_done;
		sum.archive_errors += st.tail.archive_errors;
		sum.errors += st.tail.errors;
	}
	b->total = sum;
	uv_timer_stop(&b->timer);
	spool_flush(b->spool);
	if ((r = spool_when_committed(b->spool, backfill_committed, b)) != 0) {
		b->committed = r;
		backfill_stop(b);
	}
}

static void
backfill_free(struct backfill *b)
{
	free(b->cfgs);
	free(b->srcs);
	free(b);
}

int
backfill_command(const char *config_file, void *config)
{
	const struct agent_config *cfg = config;
	const struct agent_source *all = cfg->sources.items;
	char dir[PATH_MAX], host[256];
	struct spool_options so;
	struct backfill *b;
	int r, code = DAEMON_EXIT_FAILURE;

	(void)config_file;
	/* The operator asked for this run: say what it does, not only what fails. */
	log_set_level(LOG_LEVEL_INFO);
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->cfgs = calloc(cfg->sources.n + 1, sizeof(*b->cfgs))) == NULL ||
	    (b->srcs = calloc(cfg->sources.n + 1, sizeof(*b->srcs))) == NULL) {
		log_error("backfill: out of memory");
		if (b != NULL)
			backfill_free(b);
		return DAEMON_EXIT_FAILURE;
	}
	for (size_t i = 0; i < cfg->sources.n; i++) {
		if (all[i].type != SOURCE_FILE)
			continue;
		b->cfgs[b->n] = all[i];
		/* History is the point: files without a stored position start at their start. */
		b->cfgs[b->n].start_at = START_AT_BEGINNING;
		b->n++;
	}
	if (b->n == 0) {
		log_error("backfill: the configuration has no file source; nothing to read");
		backfill_free(b);
		return DAEMON_EXIT_FAILURE;
	}
	if (agent_spool_dir(cfg, dir, sizeof(dir)) != 0) {
		log_error("backfill: data_dir %s: path too long", cfg->data_dir);
		backfill_free(b);
		return DAEMON_EXIT_FAILURE;
	}
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "%s", cfg->id);
	host[sizeof(host) - 1] = '\0';
	agent_spool_options(cfg, dir, &so);
	if ((r = uv_loop_init(&b->loop)) != 0) {
		log_error("backfill: cannot start an event loop: %s", uv_strerror(r));
		backfill_free(b);
		return DAEMON_EXIT_FAILURE;
	}
	uv_timer_init(&b->loop, &b->timer);
	b->timer.data = b;
	b->committed = 1;
	if ((r = spool_open(&b->loop, &so, backfill_writable, b, &b->spool)) != 0) {
		b->spool_closed = true;
		goto out;
	}
	for (size_t i = 0; i < b->n; i++) {
		if ((r = file_source_start(&b->loop, &b->cfgs[i], host, b->spool, &b->srcs[i])) != 0)
			break;
		b->running++;
	}
	if (r != 0) {
		backfill_stop(b);
		goto out;
	}
	log_info("backfill: reading every file of %zu file source(s) once into the spool in %s",
	    b->n, dir);
	uv_timer_start(&b->timer, backfill_check, BACKFILL_CHECK_MS, BACKFILL_CHECK_MS);
out:
	while (!b->spool_closed)
		uv_run(&b->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&b->timer, NULL);
	uv_run(&b->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&b->loop) != 0)
		log_warn("backfill: handles left open at exit");
	if (r == 0 && b->committed == 0 && b->total.errors > 0) {
		log_error("backfill: %" PRIu64 " file(s) could not be opened or read (see above); "
		    "what was read is in the spool: fix them and run --backfill again, it goes on "
		    "from the committed positions", b->total.errors);
	} else if (r == 0 && b->committed == 0) {
		printf("backfill: %" PRIu64 " file(s) read, %" PRIu64 " of them archives (%" PRIu64
		    " damaged), %" PRIu64 " line(s) spooled, %" PRIu64 " error(s); the agent "
		    "ships them\n", b->total.files_seen, b->total.archives_done,
		    b->total.archive_errors, b->total.lines, b->total.errors);
		code = DAEMON_EXIT_OK;
	} else if (r == 0) {
		log_error("backfill: the spool did not commit everything read (%s); run "
		    "--backfill again: it goes on from the committed positions",
		    strerror(b->committed > 0 ? EIO : -b->committed));
	}
	backfill_free(b);
	return code;
}
