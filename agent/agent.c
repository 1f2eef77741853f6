/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/budget.h"
#include "agent/processors.h"
#include "agent/shipper.h"
#include "agent/source_type.h"
#include "agent/spool.h"
#include "common/daemon.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"

/*
 * A configuration that running sources (and the shipper) borrow. The start
 * one is daemon_main's; a reload's is freed once nothing borrows it and a
 * later one has replaced it.
 */
struct agent_gen {
	struct agent_config *cfg;
	size_t users;
	bool owned;
	struct agent_gen *next;       /* older */
};

/* A running source; sources borrow their configuration (and so its generation) until stopped. */
struct agent_src {
	const struct source_type *type;
	const struct agent_source *cfg;
	struct agent_gen *gen;
	void *src;
};

/* A source a reload stops: its configuration is released once it is closed. */
struct agent_closing {
	struct agent *a;
	struct agent_gen *gen;
};

/* A file source a reload starts once the file sources it stops are closed and committed. */
struct agent_later {
	const struct agent_source *cfg;
	const struct agent_source *prev;   /* NULL: added; else what runs again if cfg fails */
	struct agent_gen *prev_gen;        /* held for prev */
};

struct agent {
	uv_loop_t *loop;
	const struct agent_config *cfg;   /* the start one: what needs a restart stays as it */
	char host[256];
	char spool_dir[PATH_MAX];
	struct spool *spool;
	struct shipper *shipper;      /* NULL without relays */
	struct agent_src *srcs;       /* running sources */
	size_t nsrcs, srcs_cap;
	struct agent_gen *gens;       /* the current configuration first */
	/* A reload under way: sources closing, then file sources to start. */
	bool reloading;
	size_t closing;
	struct agent_closing *closings;
	struct agent_later *later;
	size_t nlater;
	struct agent_gen *later_gen;
	bool later_failed;
	struct agent_gen *shipper_gen;    /* the configuration the shipper borrows */
	bool rollback;                /* the reload under way closes what a refused one started */
	struct metrics *metrics;      /* NULL without metrics.listen */
	struct budget *budget;        /* connection buffers' share of memory_limit */
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
	o->dict_bytes = cfg->spool.names_size;
	o->segment_max_events = (uint32_t)cfg->relays.batch.max_events;
	o->segment_max_bytes = cfg->relays.batch.max_bytes;
	for (size_t i = 0; i < cfg->sources.n; i++) {
		const struct agent_source *s = &((const struct agent_source *)cfg->sources.items)[i];

		uint64_t m = source_type_of(s)->max_message(s);

		if (m > max_line)
			max_line = m;
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

	for (size_t i = 0; i < a->nsrcs; i++)
		a->srcs[i].type->resume(a->srcs[i].src);
}

/*
 * Starts the source cfg of configuration gen into a->srcs[a->nsrcs] (the
 * caller made room). Returns 0 or the error the source logged.
 */
static int
agent_src_start(struct agent *a, const struct agent_source *cfg, struct agent_gen *gen)
{
	struct agent_src *e = &a->srcs[a->nsrcs];
	int r;

	e->type = source_type_of(cfg);
	e->cfg = cfg;
	e->gen = gen;
	if ((r = e->type->start(a->loop, cfg, a->host, a->spool, a->budget, &e->src)) != 0)
		return r;
	gen->users++;
	a->nsrcs++;
	return 0;
}

/* Room for n more running sources. */
static int
agent_src_reserve(struct agent *a, size_t n)
{
	struct agent_src *srcs;
	size_t cap = a->nsrcs + n;

	if (cap <= a->srcs_cap)
		return 0;
	if ((srcs = realloc(a->srcs, cap * sizeof(*srcs))) == NULL)
		return -ENOMEM;
	a->srcs = srcs;
	a->srcs_cap = cap;
	return 0;
}

/* ---------------------------------------------------------------- metrics */

#define SPOOL_F(name, type, member, help) \
	{ "logferry_spool_" name, type, help, offsetof(struct spool_stats, member) }
static const struct metrics_field agent_spool_fields[] = {
	SPOOL_F("events", "gauge", events_stored,
	    "Events in the spool, committed and not yet acknowledged by a relay."),
	SPOOL_F("events_appended_total", "counter", events_appended,
	    "Events handed to the spool by the sources."),
	SPOOL_F("events_committed_total", "counter", events_committed,
	    "Events committed to disk."),
	SPOOL_F("events_deleted_total", "counter", events_deleted,
	    "Events deleted after their batch was acknowledged (or rejected)."),
	SPOOL_F("events_lost_total", "counter", events_lost,
	    "Events handed over but never committed (disk errors, a full spool at stop)."),
	SPOOL_F("segments_committed_total", "counter", segments_committed,
	    "Segments committed."),
	SPOOL_F("segments_deleted_total", "counter", segments_deleted,
	    "Segments deleted."),
	SPOOL_F("commits_total", "counter", commits, "Group commits (LMDB write transactions)."),
	SPOOL_F("commit_errors_total", "counter", commit_errors, "Group commits that failed."),
	SPOOL_F("bytes_uncompressed_total", "counter", bytes_uncompressed,
	    "Bytes of committed events before compression."),
	SPOOL_F("bytes_compressed_total", "counter", bytes_compressed,
	    "Bytes of committed events after zstd."),
	SPOOL_F("disk_used_bytes", "gauge", disk_used, "Bytes in use in the spool's LMDB map."),
	SPOOL_F("full_waits_total", "counter", full_waits,
	    "Times a source had to wait because the spool was full or busy."),
	SPOOL_F("moved_aside_total", "counter", moved_aside,
	    "Damaged spools moved aside at start, since data_dir was new (kept in the spool)."),
	SPOOL_F("segments_damaged_total", "counter", segments_damaged,
	    "Damaged segments deleted, their events lost (those found at start are kept "
	    "in the spool)."),
	SPOOL_F("next_sequence", "gauge", next_seq,
	    "Sequence number the next event will get."),
};

#define BUDGET_F(name, type, member, help) \
	{ "logferry_agent_connection_memory_" name, type, help, \
	    offsetof(struct budget_stats, member) }
static const struct metrics_field agent_budget_fields[] = {
	BUDGET_F("limit_bytes", "gauge", limit,
	    "memory_limit's share for TCP syslog buffers and HTTP request bodies."),
	BUDGET_F("used_bytes", "gauge", used, "Bytes of that share in use now."),
	BUDGET_F("peak_bytes", "gauge", peak, "The most of that share ever in use."),
	BUDGET_F("refused_total", "counter", refused,
	    "Times a connection or request found the share in use: it waited, or got a 503."),
};

#define SHIPPER_F(name, type, member, help) \
	{ "logferry_shipper_" name, type, help, offsetof(struct shipper_stats, member) }
static const struct metrics_field agent_shipper_fields[] = {
	SHIPPER_F("batches_sent_total", "counter", batches_sent,
	    "Batches sent to a relay, re-sends included."),
	SHIPPER_F("events_sent_total", "counter", events_sent, "Events in the batches sent."),
	SHIPPER_F("bytes_sent_total", "counter", bytes_sent,
	    "Compressed payload bytes of the batches sent."),
	SHIPPER_F("acks_ok_total", "counter", acks_ok,
	    "Batches acknowledged OK: Kafka has every event."),
	SHIPPER_F("acks_retry_total", "counter", acks_retry, "Batches answered RETRY."),
	SHIPPER_F("acks_rejected_total", "counter", acks_rejected, "Batches answered REJECTED."),
	SHIPPER_F("rejected_segments_total", "counter", rejected_segments,
	    "Segments rejected alone and deleted."),
	SHIPPER_F("events_dropped_total", "counter", events_dropped,
	    "Events deleted without an OK: rejected, too large for the relay, unreadable."),
	SHIPPER_F("segments_converted_total", "counter", segments_converted,
	    "Segments re-encoded to event format 1 for a relay that does not read theirs."),
	SHIPPER_F("reconnects_total", "counter", reconnects,
	    "Connections attempted after the first."),
	SHIPPER_F("batches_in_flight", "gauge", inflight,
	    "Batches sent and not yet acknowledged."),
	SHIPPER_F("unacked_ranges", "gauge", unacked,
	    "Ranges of events not acknowledged: in flight or to be sent again."),
};

/* One table of per-source counters of the running sources of a type, labelled source. */
static void
agent_render_sources(const struct agent *a, struct metrics_writer *w,
    const struct source_type *type)
{
	size_t size = type->stats_size, n = 0;
	const char **names;
	char *stats;

	for (size_t i = 0; i < a->nsrcs; i++)
		n += a->srcs[i].type == type;
	if (n == 0)
		return;
	names = calloc(n, sizeof(*names));
	stats = calloc(n, size);
	if (names == NULL || stats == NULL) {
		w->err = w->err != 0 ? w->err : -ENOMEM;
	} else {
		n = 0;
		for (size_t i = 0; i < a->nsrcs; i++) {
			if (a->srcs[i].type != type)
				continue;
			names[n] = a->srcs[i].cfg->name;
			a->srcs[i].type->stats(a->srcs[i].src, stats + n * size);
			n++;
		}
		metrics_table(w, type->fields, type->nfields, stats, size, n, "source", names);
	}
	free(names);
	free(stats);
}

/* The processors' counters of the running sources, labelled source and processor. */
static void
agent_render_processors(const struct agent *a, struct metrics_writer *w)
{
	struct processors **chains = calloc(a->nsrcs + 1, sizeof(*chains));
	const char **names = calloc(a->nsrcs + 1, sizeof(*names));

	if (chains == NULL || names == NULL) {
		w->err = w->err != 0 ? w->err : -ENOMEM;
	} else {
		for (size_t i = 0; i < a->nsrcs; i++) {
			chains[i] = a->srcs[i].cfg->chain;
			names[i] = a->srcs[i].cfg->name;
		}
		processors_render(w, chains, names, a->nsrcs);
	}
	free(chains);
	free(names);
}

static void
agent_render(void *ctx, struct metrics_writer *w)
{
	struct agent *a = ctx;
	struct metrics_label info[] = { { "id", a->cfg->id }, { "version", PACKAGE_VERSION },
	    { "host", a->host } };
	struct spool_stats sp;
	struct budget_stats bs;

	metrics_family(w, "logferry_agent_info", "gauge", "The agent's id, version and host.");
	metrics_sample(w, info, 3, 1);
	spool_get_stats(a->spool, &sp);
	metrics_table(w, METRICS_FIELDS(agent_spool_fields), &sp, sizeof(sp), 1, NULL, NULL);
	metrics_one(w, "logferry_spool_max_size_bytes", "gauge", "spool.max_size.",
	    a->cfg->spool.max_size);
	budget_get_stats(a->budget, &bs);
	metrics_table(w, METRICS_FIELDS(agent_budget_fields), &bs, sizeof(bs), 1, NULL, NULL);
	metrics_one(w, "logferry_spool_full", "gauge",
	    "1 while the spool is full: files pause, datagrams are dropped, streams wait.",
	    sp.full ? 1 : 0);
	metrics_one(w, "logferry_spool_disk_full", "gauge",
	    "1 while the filesystem of data_dir has no room for the spool to grow.",
	    sp.disk_full ? 1 : 0);
	if (a->shipper != NULL) {
		struct shipper_stats sh;
		struct metrics_label relay = { "relay", NULL };

		shipper_get_stats(a->shipper, &sh);
		metrics_table(w, METRICS_FIELDS(agent_shipper_fields), &sh, sizeof(sh), 1, NULL, NULL);
		relay.value = sh.relay;
		metrics_family(w, "logferry_shipper_connected", "gauge",
		    "1 while a relay's Welcome has arrived and the connection is up; the relay "
		    "label names the server in use or being tried.");
		metrics_sample(w, &relay, 1, sh.connected ? 1 : 0);
	}
	for (size_t i = 0; i < source_types_n; i++)
		agent_render_sources(a, w, source_types[i]);
	agent_render_processors(a, w);
	daemon_render_reloads(w);
}

/*
 * 200 while the agent runs: it keeps taking events even when no relay is
 * reachable. status says "degraded" with the reasons when events cannot
 * leave (no relay), cannot come in (full spool, full disk) or cannot be
 * kept (commit errors), so that a check can alert without restarting
 * anything.
 */
static int
agent_health(void *ctx, struct buf *out)
{
	struct agent *a = ctx;
	struct spool_stats sp;
	struct shipper_stats sh = { 0 };
	const char *why[4];
	size_t nwhy = 0;

	spool_get_stats(a->spool, &sp);
	if (a->shipper != NULL) {
		shipper_get_stats(a->shipper, &sh);
		if (!sh.connected)
			why[nwhy++] = "no relay connected";
	}
	if (sp.disk_full)
		why[nwhy++] = "disk full";
	else if (sp.full)
		why[nwhy++] = "spool full";
	if (sp.commit_errors != 0)
		why[nwhy++] = "spool commit errors";
	jsonw_raw(out, nwhy == 0 ? "{\"status\":\"ok\",\"reasons\":[" :
	    "{\"status\":\"degraded\",\"reasons\":[");
	for (size_t i = 0; i < nwhy; i++) {
		if (i != 0)
			jsonw_raw(out, ",");
		jsonw_cstring(out, why[i]);
	}
	jsonw_raw(out, "],\"spool\":{\"events\":");
	jsonw_uint(out, sp.events_stored);
	jsonw_raw(out, ",\"disk_used\":");
	jsonw_uint(out, sp.disk_used);
	jsonw_raw(out, ",\"max_size\":");
	jsonw_uint(out, a->cfg->spool.max_size);
	jsonw_raw(out, sp.full ? ",\"full\":true" : ",\"full\":false");
	jsonw_raw(out, sp.disk_full ? ",\"disk_full\":true}" : ",\"disk_full\":false}");
	if (a->shipper != NULL) {
		jsonw_raw(out, ",\"relay\":{\"server\":");
		jsonw_cstring(out, sh.relay != NULL ? sh.relay : "");
		jsonw_raw(out, sh.connected ? ",\"connected\":true}" : ",\"connected\":false}");
	}
	jsonw_raw(out, "}\n");
	return 200;
}

static const struct metrics_ops agent_metrics_ops = { agent_render, agent_health };

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
	if ((a->gens = calloc(1, sizeof(*a->gens))) == NULL) {
		log_error("out of memory starting the agent");
		free(a);
		return -ENOMEM;
	}
	a->gens->cfg = config;
	if (gethostname(a->host, sizeof(a->host)) != 0 || a->host[0] == '\0')
		snprintf(a->host, sizeof(a->host), "%s", a->cfg->id);
	a->host[sizeof(a->host) - 1] = '\0';
	if ((r = agent_spool_dir(a->cfg, a->spool_dir, sizeof(a->spool_dir))) != 0) {
		log_error("data_dir %s: path too long", a->cfg->data_dir);
		goto fail;
	}
	agent_spool_options(a->cfg, a->spool_dir, &so);
	/*
	 * memory_limit (docs/architecture.md guarantee 3): a sixteenth for events on their
	 * way to the spool (agent_spool_options), half for the buffers of TCP
	 * syslog connections and HTTP request bodies, which could otherwise
	 * reach max_connections times their largest message, and the rest for
	 * what is bounded by configuration alone (the spool writer's segment
	 * and zstd, the file sources' read buffer, the frame and TLS buffers
	 * of the relay connection, metrics answers).
	 */
	if ((r = budget_new(a->cfg->memory_limit / 2, &a->budget)) != 0) {
		log_error("out of memory starting the agent");
		goto fail;
	}
	log_info("memory_limit %" PRIu64 " MiB: %" PRIu64 " MiB for TCP syslog and HTTP request "
	    "buffers, %" PRIu64 " MiB for events on their way to the spool",
	    a->cfg->memory_limit >> 20, (a->cfg->memory_limit / 2) >> 20,
	    ((uint64_t)so.queue_blocks * so.block_bytes) >> 20);
	if ((r = spool_open(loop, &so, agent_writable, a, &a->spool)) != 0)
		goto fail;
	if (a->cfg->relays_enabled &&
	    (r = shipper_start(loop, a->cfg, a->spool, &a->shipper)) != 0)
		goto fail;
	a->shipper_gen = a->gens;
	if ((r = agent_src_reserve(a, a->cfg->sources.n)) != 0)
		goto fail;
	for (size_t i = 0; i < a->cfg->sources.n; i++)
		if ((r = agent_src_start(a, &((const struct agent_source *)a->cfg->sources.items)[i],
		    a->gens)) != 0)
			goto fail;
	if (a->cfg->metrics.listen.text != NULL &&
	    (r = metrics_start(loop, &a->cfg->metrics.listen, &agent_metrics_ops, a,
	    &a->metrics)) != 0)
		goto fail;
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
	budget_free(a->budget);
	free(a->srcs);
	free(a->gens);
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
	/* A reload under way counts as one: it ends without starting anything more. */
	a->running = a->nsrcs + 1 + (a->reloading ? 1 : 0);
	/* It reads the sources' counters: it goes first. */
	if (a->metrics != NULL) {
		a->running++;
		metrics_stop(a->metrics, agent_source_stopped, a);
		a->metrics = NULL;
	}
	while (a->nsrcs > 0) {
		struct agent_src e = a->srcs[--a->nsrcs];

		e.type->stop(e.src, agent_source_stopped, a);
	}
	agent_source_stopped(a);
}

/* ---------------------------------------------------------------- reload */

static const struct config_key *
agent_key(const char *name)
{
	for (const struct config_key *k = agent_config_schema.keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	abort();
}

bool
agent_source_equal(const struct agent_source *x, const struct agent_source *y)
{
	return config_value_equal(agent_key("sources")->elem, x, y);
}

bool
agent_processors_equal(const struct agent_config *run, const struct agent_config *fresh)
{
	const struct config_key *p = agent_key("processors"), *b = agent_key("processor_buffer");

	return config_value_equal(p, (const char *)run + p->offset, (const char *)fresh + p->offset) &&
	    config_value_equal(b, (const char *)run + b->offset, (const char *)fresh + b->offset);
}

size_t
agent_restart_keys(const struct agent_config *run, const struct agent_config *fresh,
    const char **keys, size_t max)
{
	static const char *const fixed[] = { "id", "data_dir", "memory_limit", "spool", "metrics" };
	struct spool_options ro, fo;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		const struct config_key *k = agent_key(fixed[i]);

		if (n < max && !config_value_equal(k, (const char *)run + k->offset,
		    (const char *)fresh + k->offset))
			keys[n++] = fixed[i];
	}
	if (n < max && run->relays_enabled != fresh->relays_enabled)
		keys[n++] = "relays";
	/* The spool takes events up to a size set at start from the sources' largest. */
	agent_spool_options(run, "", &ro);
	agent_spool_options(fresh, "", &fo);
	if (n < max && fo.event_max_bytes > ro.event_max_bytes)
		keys[n++] = "sources' max_line, max_message_size or max_body_size above the "
		    "largest at start";
	return n;
}

/* Frees the reloads' configurations nothing borrows any more but the current one. */
static void
agent_gen_collect(struct agent *a)
{
	struct agent_gen **p = &a->gens->next;

	while (*p != NULL) {
		struct agent_gen *g = *p;

		if (g->users != 0 || !g->owned) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		config_free(&agent_config_schema, g->cfg);
		free(g->cfg);
		free(g);
	}
}

static void
agent_gen_release(struct agent *a, struct agent_gen *g)
{
	g->users--;
	agent_gen_collect(a);
}

/* The reload under way is over: every source it closed is, and those it starts did. */
static void
agent_reload_end(struct agent *a)
{
	for (size_t i = 0; i < a->nlater; i++)
		if (a->later[i].prev_gen != NULL)
			agent_gen_release(a, a->later[i].prev_gen);
	free(a->closings);
	free(a->later);
	a->closings = NULL;
	a->later = NULL;
	a->nlater = 0;
	a->reloading = false;
	if (a->stopping) {
		agent_source_stopped(a);
		return;
	}
	if (a->rollback)
		log_info("SIGHUP: rolled back: the sources started for the refused configuration "
		    "are closed");
	else if (a->later_failed)
		log_error("SIGHUP: applied, except for the source(s) above that could not start "
		    "with their new settings");
	else
		log_info("SIGHUP: applied: every change is in effect");
}

/*
 * The file sources a reload closed have committed what they read, and so
 * their positions: their successors (and new file sources, which may read
 * the same files) start where they were, without a line read twice.
 */
static void
agent_later_committed(void *ctx, int status)
{
	struct agent *a = ctx;

	if (a->stopping) {
		agent_reload_end(a);
		return;
	}
	if (status != 0)
		log_warn("SIGHUP: the file sources being restarted could not commit everything "
		    "they read (%s): lines after their last committed position are read again",
		    strerror(-status));
	for (size_t i = 0; i < a->nlater; i++) {
		struct agent_later *l = &a->later[i];

		if (agent_src_start(a, l->cfg, a->gens) == 0)
			continue;
		a->later_failed = true;
		if (l->prev == NULL) {
			log_error("SIGHUP: source %s: cannot start (see above); fix it and send "
			    "SIGHUP again", l->cfg->name);
			continue;
		}
		log_error("SIGHUP: source %s: cannot start with its new settings (see above); "
		    "the previous configuration stays for it", l->cfg->name);
		if (agent_src_start(a, l->prev, l->prev_gen) != 0)
			log_error("SIGHUP: source %s: cannot start with its previous settings "
			    "either: it is not running; fix it and send SIGHUP again", l->cfg->name);
	}
	agent_reload_end(a);
}

/*
 * One less source to wait for (or the reload itself, which counts as one
 * while it stops sources, in case one calls back at once).
 */
static void
agent_closing_done(struct agent *a)
{
	int r;

	if (--a->closing != 0)
		return;
	if (a->nlater == 0 || a->stopping) {
		agent_reload_end(a);
		return;
	}
	spool_flush(a->spool);
	if ((r = spool_when_committed(a->spool, agent_later_committed, a)) != 0)
		agent_later_committed(a, r);
}

/* A source the reload stopped is closed. */
static void
agent_closed(void *ctx)
{
	struct agent_closing *c = ctx;

	agent_gen_release(c->a, c->gen);
	agent_closing_done(c->a);
}

/* Stops running source i as part of the reload under way. */
static void
agent_close_src(struct agent *a, size_t i)
{
	struct agent_closing *c = &a->closings[a->closing++];
	struct agent_src e = a->srcs[i];

	c->a = a;
	c->gen = e.gen;
	e.type->stop(e.src, agent_closed, c);
}

/* Whether two sources listen on an address in common (one must close before the other binds). */
static bool
agent_listen_overlap(const struct agent_source *x, const struct agent_source *y)
{
	const struct config_addr *lx = x->listen.items, *ly = y->listen.items;

	for (size_t i = 0; i < x->listen.n; i++)
		for (size_t j = 0; j < y->listen.n; j++)
			if (strcmp(lx[i].text, ly[j].text) == 0)
				return true;
	return false;
}

/* What a reload does with each source of the new configuration. */
enum agent_plan { PLAN_ADD, PLAN_SAME, PLAN_NOW, PLAN_LATER };

/*
 * SIGHUP with a valid configuration. Nothing changes until everything that
 * can fail has worked: sources added, or changed with listeners of their
 * own, start first (a bind that fails refuses the whole reload, and what
 * started is closed again); then the relays' TLS files load. Then the
 * rest: the log level, the relays, unchanged sources keep running
 * untouched, removed and changed ones close, and file sources (changed,
 * or added while others close, since they may read the same files) start
 * once what the closed ones read is committed, so that they go on from
 * the positions stored by file identity. What needs a restart is logged
 * and keeps its running value.
 */
int
agent_reload(void *ctx, void **fresh)
{
	struct agent *a = ctx;
	struct agent_config *cfg = *fresh;
	const struct agent_source *ns = cfg->sources.items;
	size_t nold = a->nsrcs, nkeys, nlater = 0, k;
	const char *keys[8];
	enum agent_plan *plan = NULL;
	size_t *match = NULL;
	bool *stays = NULL, resumer_closes = false;
	struct agent_gen *gen = NULL;
	int r = -ENOMEM;

	if (a->reloading) {
		log_error("SIGHUP: the previous reload is still being applied (%zu source(s) "
		    "closing); send SIGHUP again in a moment", a->closing);
		return -EBUSY;
	}
	if ((gen = calloc(1, sizeof(*gen))) == NULL ||
	    (plan = calloc(cfg->sources.n + 1, sizeof(*plan))) == NULL ||
	    (match = calloc(cfg->sources.n + 1, sizeof(*match))) == NULL ||
	    (stays = calloc(nold + 1, sizeof(*stays))) == NULL ||
	    (a->closings = calloc(nold + cfg->sources.n + 1, sizeof(*a->closings))) == NULL ||
	    (a->later = calloc(cfg->sources.n + 1, sizeof(*a->later))) == NULL ||
	    agent_src_reserve(a, cfg->sources.n) != 0) {
		log_error("SIGHUP: out of memory");
		goto out;
	}
	gen->cfg = cfg;
	gen->owned = true;

	/* The plan: sources are known by name. */
	for (size_t i = 0; i < cfg->sources.n; i++) {
		match[i] = SIZE_MAX;
		for (size_t j = 0; j < nold; j++)
			if (strcmp(a->srcs[j].cfg->name, ns[i].name) == 0)
				match[i] = j;
		if (match[i] == SIZE_MAX) {
			plan[i] = PLAN_ADD;
		} else if (agent_source_equal(a->srcs[match[i]].cfg, &ns[i]) &&
		    agent_processors_equal(a->srcs[match[i]].gen->cfg, cfg) &&
		    processors_same(a->srcs[match[i]].cfg->chain, ns[i].chain)) {
			plan[i] = PLAN_SAME;
			stays[match[i]] = true;
		} else {
			plan[i] = PLAN_NOW;
		}
	}
	for (size_t j = 0; j < nold; j++)
		resumer_closes |= !stays[j] && a->srcs[j].type->resumes_from_spool;
	for (size_t i = 0; i < cfg->sources.n; i++) {
		if (plan[i] == PLAN_SAME)
			continue;
		if ((source_type_of(&ns[i])->resumes_from_spool && resumer_closes) || (plan[i] == PLAN_NOW &&
		    agent_listen_overlap(a->srcs[match[i]].cfg, &ns[i])))
			plan[i] = PLAN_LATER;
	}

	/* What can fail, before anything changes. */
	for (size_t i = 0; i < cfg->sources.n; i++) {
		if (plan[i] != PLAN_ADD && plan[i] != PLAN_NOW)
			continue;
		if ((r = agent_src_start(a, &ns[i], gen)) != 0) {
			log_error("SIGHUP: source %s: cannot start with the new configuration (see "
			    "above); the previous configuration stays for it and every other source",
			    ns[i].name);
			goto rollback;
		}
	}
	if (a->shipper != NULL && cfg->relays_enabled &&
	    (r = shipper_reload(a->shipper, cfg)) != 0)
		goto rollback;

	/* From here on, nothing fails. */
	log_set_level((enum log_level)cfg->log_level);
	nkeys = agent_restart_keys(a->cfg, cfg, keys, sizeof(keys) / sizeof(keys[0]));
	for (size_t i = 0; i < nkeys; i++)
		log_warn("SIGHUP: %s changed: that needs a restart; the running value stays until "
		    "then", keys[i]);
	if (a->shipper != NULL && cfg->relays_enabled) {
		gen->users++;
		agent_gen_release(a, a->shipper_gen);
		a->shipper_gen = gen;
	}
	gen->next = a->gens;
	a->gens = gen;
	*fresh = NULL;
	a->reloading = true;
	a->rollback = false;
	a->later_failed = false;
	for (size_t i = 0; i < cfg->sources.n; i++) {
		const struct agent_src *old = match[i] != SIZE_MAX ? &a->srcs[match[i]] : NULL;

		switch (plan[i]) {
		case PLAN_SAME:
			/* Unchanged settings, but the files they name may have changed. */
			if (old->type->reload != NULL)
				old->type->reload(old->src);
			break;
		case PLAN_ADD:
			log_info("SIGHUP: source %s: added", ns[i].name);
			break;
		case PLAN_NOW:
			log_info("SIGHUP: source %s: changed; started with its new settings, the "
			    "previous ones stop", ns[i].name);
			break;
		case PLAN_LATER:
			log_info("SIGHUP: source %s: %s once %s", ns[i].name,
			    old != NULL ? "changed; restarting it" : "added; starting it",
			    old != NULL && !old->type->resumes_from_spool ?
			    "its listeners are closed" :
			    "what the closing file sources read is committed");
			a->later[nlater].cfg = &ns[i];
			if (old != NULL) {
				a->later[nlater].prev = old->cfg;
				a->later[nlater].prev_gen = old->gen;
				old->gen->users++;
			}
			nlater++;
			break;
		}
	}
	a->nlater = nlater;
	for (size_t j = 0; j < nold; j++) {
		bool named = false;

		for (size_t i = 0; i < cfg->sources.n; i++)
			named |= match[i] == j;
		if (!stays[j] && !named)
			log_info("SIGHUP: source %s: removed; what it read is in the spool (a file's "
			    "position is kept: added again, it goes on where it was)",
			    a->srcs[j].cfg->name);
	}
	/* Close every running source not kept, and pack the kept and the new. */
	a->closing = 1;
	k = 0;
	for (size_t j = 0; j < a->nsrcs; j++) {
		if (j >= nold || stays[j])
			a->srcs[k++] = a->srcs[j];
		else
			agent_close_src(a, j);
	}
	a->nsrcs = k;
	agent_gen_collect(a);
	agent_closing_done(a);
	r = 0;
	goto done;
rollback:
	/* The refused configuration stays until what started with it is closed. */
	gen->next = a->gens->next;
	a->gens->next = gen;
	*fresh = NULL;
	a->reloading = true;
	a->rollback = true;
	a->closing = 1;
	while (a->nsrcs > nold)
		agent_close_src(a, --a->nsrcs);
	agent_gen_collect(a);
	agent_closing_done(a);
	goto done;
out:
	free(gen);
	free(a->closings);
	free(a->later);
	a->closings = NULL;
	a->later = NULL;
done:
	free(plan);
	free(match);
	free(stays);
	return r;
}

int
agent_finish(void *ctx)
{
	struct agent *a = ctx;
	int code = a->exit_code;

	while (a->gens != NULL) {
		struct agent_gen *g = a->gens;

		a->gens = g->next;
		if (g->owned) {
			config_free(&agent_config_schema, g->cfg);
			free(g->cfg);
		}
		free(g);
	}
	budget_free(a->budget);
	free(a->srcs);
	free(a->closings);
	free(a->later);
	free(a);
	return code;
}
