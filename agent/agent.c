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
#include "agent/file_source.h"
#include "agent/http_source.h"
#include "agent/shipper.h"
#include "agent/spool.h"
#include "agent/syslog_source.h"
#include "common/daemon.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"

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
	SHIPPER_F("reconnects_total", "counter", reconnects,
	    "Connections attempted after the first."),
	SHIPPER_F("batches_in_flight", "gauge", inflight,
	    "Batches sent and not yet acknowledged."),
	SHIPPER_F("unacked_ranges", "gauge", unacked,
	    "Ranges of events not acknowledged: in flight or to be sent again."),
};

#define FILE_F(name, type, member, help) \
	{ "logferry_file_" name, type, help, offsetof(struct file_source_stats, member) }
static const struct metrics_field agent_file_fields[] = {
	FILE_F("lines_total", "counter", tail.lines,
	    "Lines read (each piece of a split line counts)."),
	FILE_F("bytes_total", "counter", tail.bytes, "Bytes read, newlines included."),
	FILE_F("files_open", "gauge", tail.files_open, "Files with an open descriptor now."),
	FILE_F("files_seen_total", "counter", tail.files_seen, "Files opened since the start."),
	FILE_F("files_waiting", "gauge", tail.files_waiting,
	    "Files matched but waiting for a descriptor at the last scan (max_open_files)."),
	FILE_F("rotations_total", "counter", tail.rotations,
	    "Renamed or deleted files read to their end and released."),
	FILE_F("truncations_total", "counter", tail.truncations,
	    "Files truncated (copytruncate) and read again from the start."),
	FILE_F("split_lines_total", "counter", tail.split_lines, "Lines longer than max_line."),
	FILE_F("partial_lines_total", "counter", tail.partial_lines,
	    "Last lines sent without a newline after flush_timeout."),
	FILE_F("errors_total", "counter", tail.errors, "open, read and stat failures."),
	FILE_F("parse_errors_total", "counter", parse_errors,
	    "Lines spooled with a parse_error field."),
	FILE_F("dropped_total", "counter", dropped_unspoolable,
	    "Lines the spool refused even without fields; skipped."),
};

#define SYSLOG_F(name, type, member, help) \
	{ "logferry_syslog_" name, type, help, offsetof(struct syslog_source_stats, member) }
static const struct metrics_field agent_syslog_fields[] = {
	SYSLOG_F("messages_total", "counter", received, "Messages spooled."),
	SYSLOG_F("truncated_total", "counter", truncated,
	    "Messages cut at max_message_size."),
	SYSLOG_F("parse_errors_total", "counter", parse_errors,
	    "Messages spooled with a parse_error field."),
	SYSLOG_F("dropped_full_total", "counter", dropped_full,
	    "Datagrams dropped because the spool was full."),
	SYSLOG_F("dropped_kernel_total", "counter", dropped_kernel,
	    "Datagrams the kernel dropped before the agent read them: the receive buffer was full."),
	SYSLOG_F("dropped_oversize_total", "counter", dropped_oversize,
	    "Octet-counted messages over max_message_size, skipped."),
	SYSLOG_F("dropped_unspoolable_total", "counter", dropped_unspoolable,
	    "Messages the spool refused even without fields."),
	SYSLOG_F("connections_total", "counter", connections, "TCP connections served."),
	SYSLOG_F("connections_open", "gauge", connections_open, "TCP connections open now."),
	SYSLOG_F("connections_refused_total", "counter", connections_refused,
	    "TCP connections closed at once: max_connections reached."),
	SYSLOG_F("framing_errors_total", "counter", framing_errors,
	    "TCP connections closed for a malformed octet count."),
	SYSLOG_F("read_errors_total", "counter", read_errors,
	    "Failed receives and connections reset."),
	SYSLOG_F("pauses_total", "counter", pauses,
	    "Times TCP reading stopped on a full spool."),
	SYSLOG_F("memory_waits_total", "counter", budget_waits,
	    "Times a TCP connection waited for memory_limit's share for connection buffers."),
};

#define HTTP_F(name, type, member, help) \
	{ "logferry_http_" name, type, help, offsetof(struct http_source_stats, member) }
static const struct metrics_field agent_http_fields[] = {
	HTTP_F("requests_total", "counter", requests, "Requests answered, whatever the answer."),
	HTTP_F("requests_accepted_total", "counter", accepted,
	    "Requests answered 200: their events are committed."),
	HTTP_F("events_total", "counter", events, "Events committed for those requests."),
	HTTP_F("bad_requests_total", "counter", bad_requests,
	    "Requests answered 400: malformed JSON, gzip or HTTP."),
	HTTP_F("not_found_total", "counter", not_found, "Requests answered 404."),
	HTTP_F("bad_method_total", "counter", bad_method, "Requests answered 405."),
	HTTP_F("too_large_total", "counter", too_large,
	    "Requests answered 413: body over max_body_size."),
	HTTP_F("bad_type_total", "counter", bad_type,
	    "Requests answered 415: Content-Type or Content-Encoding."),
	HTTP_F("headers_too_large_total", "counter", headers_too_large,
	    "Requests answered 431."),
	HTTP_F("unavailable_total", "counter", unavailable_503,
	    "Requests answered 503: a full spool, request_timeout spent waiting for room, or stopping."),
	HTTP_F("memory_refused_total", "counter", budget_refused,
	    "Requests answered 503 because memory_limit's share for bodies stayed in use (or is too small)."),
	HTTP_F("request_timeouts_total", "counter", request_timeouts,
	    "Requests answered 503 after waiting request_timeout for room in the spool or memory_limit."),
	HTTP_F("spool_waits_total", "counter", waits,
	    "Times a request waited for room in the spool's hand-off queue."),
	HTTP_F("memory_waits_total", "counter", budget_waits,
	    "Requests that waited for memory_limit's share for bodies before their body was read."),
	HTTP_F("errors_total", "counter", errors_500,
	    "Requests answered 500: the spool lost their events."),
	HTTP_F("fields_dropped_total", "counter", fields_dropped,
	    "Events spooled without their fields: too large with them."),
	HTTP_F("dropped_total", "counter", dropped_unspoolable,
	    "Events the spool refused even without fields."),
	HTTP_F("body_bytes_total", "counter", body_bytes,
	    "Request body bytes received, before gzip decoding."),
	HTTP_F("connections_total", "counter", connections, "Connections served."),
	HTTP_F("connections_open", "gauge", connections_open, "Connections open now."),
	HTTP_F("connections_refused_total", "counter", connections_refused,
	    "Connections closed at once: max_connections reached and none idle."),
	HTTP_F("idle_closed_total", "counter", idle_closed,
	    "Idle keep-alive connections closed to admit a new one at max_connections."),
	HTTP_F("timeouts_total", "counter", timeouts, "Connections closed after the idle timeout."),
};

/* The names of the sources of a type, in the order the agent started them. */
static void
agent_source_names(const struct agent *a, int type, const char **names, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < a->cfg->sources.n && k < n; i++) {
		const struct agent_source *s = &((const struct agent_source *)a->cfg->sources.items)[i];

		if (s->type == type)
			names[k++] = s->name;
	}
}

/* One table of per-source counters: n stats of size bytes, labelled source. */
static void
agent_render_sources(const struct agent *a, struct metrics_writer *w, int type,
    const struct metrics_field *fields, size_t nfields, size_t size, size_t n,
    void (*get)(const void *src, void *st), void *const *srcs)
{
	const char **names = calloc(n, sizeof(*names));
	char *stats = calloc(n, size);

	if (names == NULL || stats == NULL) {
		w->err = w->err != 0 ? w->err : -ENOMEM;
	} else {
		agent_source_names(a, type, names, n);
		for (size_t i = 0; i < n; i++)
			get(srcs[i], stats + i * size);
		metrics_table(w, fields, nfields, stats, size, n, "source", names);
	}
	free(names);
	free(stats);
}

static void
agent_file_stats(const void *src, void *st)
{
	file_source_get_stats(src, st);
}

static void
agent_syslog_stats(const void *src, void *st)
{
	syslog_source_get_stats(src, st);
}

static void
agent_http_stats(const void *src, void *st)
{
	http_source_get_stats(src, st);
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
	if (a->nfiles != 0)
		agent_render_sources(a, w, SOURCE_FILE, METRICS_FIELDS(agent_file_fields),
		    sizeof(struct file_source_stats), a->nfiles, agent_file_stats,
		    (void *const *)a->files);
	if (a->nsyslogs != 0)
		agent_render_sources(a, w, SOURCE_SYSLOG, METRICS_FIELDS(agent_syslog_fields),
		    sizeof(struct syslog_source_stats), a->nsyslogs, agent_syslog_stats,
		    (void *const *)a->syslogs);
	if (a->nhttps != 0)
		agent_render_sources(a, w, SOURCE_HTTP, METRICS_FIELDS(agent_http_fields),
		    sizeof(struct http_source_stats), a->nhttps, agent_http_stats,
		    (void *const *)a->https);
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
			http_source_set_budget(a->https[a->nhttps], a->budget);
			a->nhttps++;
			continue;
		}
		if (s->type == SOURCE_SYSLOG) {
			if ((r = syslog_source_start(loop, s, a->host, a->spool,
			    &a->syslogs[a->nsyslogs])) != 0)
				goto fail;
			syslog_source_set_budget(a->syslogs[a->nsyslogs], a->budget);
			a->nsyslogs++;
			continue;
		}
		if ((r = file_source_start(loop, s, a->host, a->spool, &a->files[a->nfiles])) != 0)
			goto fail;
		a->nfiles++;
	}
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
	/* It reads the sources' counters: it goes first. */
	if (a->metrics != NULL) {
		a->running++;
		metrics_stop(a->metrics, agent_source_stopped, a);
		a->metrics = NULL;
	}
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

int
agent_reload(void *ctx, void **fresh)
{
	struct agent *a = ctx;

	if (a->shipper != NULL)
		return shipper_reload_tls(a->shipper, *fresh);
	return 0;
}

int
agent_finish(void *ctx)
{
	struct agent *a = ctx;
	int code = a->exit_code;

	budget_free(a->budget);
	free(a->files);
	free(a->syslogs);
	free(a->https);
	free(a);
	return code;
}
