#include "autoconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/file_source.h"
#include "agent/http_source.h"
#include "agent/shipper.h"
#include "agent/spool.h"
#include "agent/syslog_source.h"
#include "common/daemon.h"
#include "common/log.h"

struct agent {
	uv_loop_t *loop;
	const struct agent_config *cfg;
	char host[256];
	char spool_dir[PATH_MAX];
	struct spool *spool;
	struct shipper *shipper;      /* NULL without relays */
	struct file_source **files;
	size_t nfiles;
	struct syslog_source **syslogs;
	size_t nsyslogs;
	struct http_source **https;
	size_t nhttps;
	size_t running;               /* sources not yet stopped, + 1 for agent_stop itself */
	bool stopping;
	bool spool_closed;            /* or never opened: everything has stopped */
	int exit_code;
};

/* Where the spool lives: its own directory, so that it can be moved aside whole. */
int
agent_spool_dir(const struct agent_config *cfg, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/spool", cfg->data_dir) >= len)
		return -ENAMETOOLONG;
	return 0;
}

void
agent_spool_options(const struct agent_config *cfg, const char *dir, struct spool_options *o)
{
	uint64_t max_line = 0, blocks;

	spool_options_default(o, dir);
	o->max_size = cfg->spool.max_size;
	o->sync_always = cfg->spool.sync == SYNC_ALWAYS;
	o->commit_interval_ms = cfg->spool.commit_interval_ms;
	o->segment_max_events = (uint32_t)cfg->relays.batch.max_events;
	o->segment_max_bytes = cfg->relays.batch.max_bytes;
	for (size_t i = 0; i < cfg->sources.n; i++) {
		const struct agent_source *s = &((const struct agent_source *)cfg->sources.items)[i];

		if (s->type == SOURCE_FILE && s->max_line > max_line)
			max_line = s->max_line;
		if (s->type == SOURCE_SYSLOG && s->max_message_size > max_line)
			max_line = s->max_message_size;
		/* An http event's message is one object of a body: up to max_body_size. */
		if (s->type == SOURCE_HTTP && s->max_body_size > max_line)
			max_line = s->max_body_size;
	}
	/* The line, its decoded fields (at most the line again) and the rest. */
	o->event_max_bytes = 2 * max_line + 65536;
	/* A sixteenth of the memory budget for events on their way to the disk. */
	blocks = cfg->memory_limit / 16 / o->block_bytes;
	o->queue_blocks = blocks < 4 ? 4 : blocks > 64 ? 64 : blocks;
}

static void
agent_writable(void *ctx)
{
	struct agent *a = ctx;

	for (size_t i = 0; i < a->nfiles; i++)
		if (a->files[i] != NULL)
			file_source_resume(a->files[i]);
	for (size_t i = 0; i < a->nsyslogs; i++)
		if (a->syslogs[i] != NULL)
			syslog_source_resume(a->syslogs[i]);
	for (size_t i = 0; i < a->nhttps; i++)
		if (a->https[i] != NULL)
			http_source_resume(a->https[i]);
}

int
agent_start(uv_loop_t *loop, const char *config_file, void *config, void **ctx)
{
	struct spool_options so;
	struct agent *a;
	int r;

	(void)config_file;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		log_error("out of memory starting the agent");
		return -ENOMEM;
	}
	a->loop = loop;
	a->cfg = config;
	if (gethostname(a->host, sizeof(a->host)) != 0 || a->host[0] == '\0')
		snprintf(a->host, sizeof(a->host), "%s", a->cfg->id);
	a->host[sizeof(a->host) - 1] = '\0';
	if ((r = agent_spool_dir(a->cfg, a->spool_dir, sizeof(a->spool_dir))) != 0) {
		log_error("data_dir %s: path too long", a->cfg->data_dir);
		goto fail;
	}
	agent_spool_options(a->cfg, a->spool_dir, &so);
	if ((r = spool_open(loop, &so, agent_writable, a, &a->spool)) != 0)
		goto fail;
	if (a->cfg->relays_enabled &&
	    (r = shipper_start(loop, a->cfg, a->spool, &a->shipper)) != 0)
		goto fail;
	if ((a->files = calloc(a->cfg->sources.n + 1, sizeof(*a->files))) == NULL ||
	    (a->syslogs = calloc(a->cfg->sources.n + 1, sizeof(*a->syslogs))) == NULL ||
	    (a->https = calloc(a->cfg->sources.n + 1, sizeof(*a->https))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < a->cfg->sources.n; i++) {
		const struct agent_source *s = &((const struct agent_source *)a->cfg->sources.items)[i];

		if (s->type == SOURCE_HTTP) {
			if ((r = http_source_start(loop, s, a->host, a->spool,
			    &a->https[a->nhttps])) != 0)
				goto fail;
			a->nhttps++;
			continue;
		}
		if (s->type == SOURCE_SYSLOG) {
			if ((r = syslog_source_start(loop, s, a->host, a->spool,
			    &a->syslogs[a->nsyslogs])) != 0)
				goto fail;
			a->nsyslogs++;
			continue;
		}
		if ((r = file_source_start(loop, s, a->host, a->spool, &a->files[a->nfiles])) != 0)
			goto fail;
		a->nfiles++;
	}
	log_info("logferry-agent %s started as '%s' with %zu source(s)%s", PACKAGE_VERSION,
	    a->cfg->id, a->cfg->sources.n,
	    a->cfg->relays_enabled ? "" : "; no relays configured: spooling only");
	*ctx = a;
	return 0;
fail:
	/*
	 * Sources started so far stop with the spool; the loop finishes their
	 * closes. Not UV_RUN_DEFAULT: the daemon's signal handles keep the loop
	 * alive, and a signal meanwhile reaches agent_stop again through ctx.
	 */
	a->exit_code = DAEMON_EXIT_FAILURE;
	*ctx = a;
	agent_stop(a);
	while (!a->spool_closed)
		uv_run(loop, UV_RUN_ONCE);
	/* Close callbacks of handles a failed source closed itself. */
	uv_run(loop, UV_RUN_NOWAIT);
	free(a->files);
	free(a->syslogs);
	free(a->https);
	free(a);
	return r < 0 ? r : -EIO;
}

static void
agent_spool_closed(void *ctx)
{
	struct agent *a = ctx;

	a->spool_closed = true;
}

static void
agent_close_spool(struct agent *a)
{
	if (a->spool != NULL) {
		spool_close(a->spool, agent_spool_closed, a);
		a->spool = NULL;
	} else {
		a->spool_closed = true;
	}
}

static void
agent_shipper_stopped(void *ctx)
{
	struct agent *a = ctx;

	shipper_free(a->shipper);
	a->shipper = NULL;
	agent_close_spool(a);
}

static void
agent_source_stopped(void *ctx)
{
	struct agent *a = ctx;

	/* Then the shipper; the spool closes last: it commits what the sources handed over. */
	if (--a->running != 0)
		return;
	if (a->shipper != NULL) {
		shipper_stop(a->shipper, agent_shipper_stopped, a);
		return;
	}
	agent_close_spool(a);
}

void
agent_stop(void *ctx)
{
	struct agent *a = ctx;

	/* A second stop signal, or a signal while a failed start winds down. */
	if (a->stopping)
		return;
	a->stopping = true;
	a->running = a->nfiles + a->nsyslogs + a->nhttps + 1;
	for (size_t i = 0; i < a->nfiles; i++) {
		struct file_source *fs = a->files[i];

		a->files[i] = NULL;
		file_source_stop(fs, agent_source_stopped, a);
	}
	for (size_t i = 0; i < a->nsyslogs; i++) {
		struct syslog_source *ss = a->syslogs[i];

		a->syslogs[i] = NULL;
		syslog_source_stop(ss, agent_source_stopped, a);
	}
	for (size_t i = 0; i < a->nhttps; i++) {
		struct http_source *hs = a->https[i];

		a->https[i] = NULL;
		http_source_stop(hs, agent_source_stopped, a);
	}
	agent_source_stopped(a);
}

void
agent_reload(void *ctx, const void *fresh)
{
	struct agent *a = ctx;

	if (a->shipper != NULL)
		(void)shipper_reload_tls(a->shipper, fresh);
}

int
agent_finish(void *ctx)
{
	struct agent *a = ctx;
	int code = a->exit_code;

	free(a->files);
	free(a->syslogs);
	free(a->https);
	free(a);
	return code;
}
