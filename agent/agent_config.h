/*
 * agent_config: the agent's configuration schema (one table) and its
 * settings struct. docs/architecture.md "Agent config" lists the keys users rely on.
 */
#ifndef LOGFERRY_AGENT_CONFIG_H
#define LOGFERRY_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

enum agent_source_type { SOURCE_FILE, SOURCE_SYSLOG, SOURCE_HTTP };
enum agent_format { FORMAT_RAW, FORMAT_NGINX_COMBINED, FORMAT_JSON, FORMAT_SYSLOG };
enum agent_start_at { START_AT_BEGINNING, START_AT_END };
enum agent_sync { SYNC_ALWAYS, SYNC_RELAXED };

struct agent_source {
	char *name;
	int type;                     /* enum agent_source_type */
	char *stream;                 /* NULL: the source's name */
	struct config_list paths;     /* char *: globs (file) */
	struct config_list exclude;   /* char *: globs never read (file) */
	int format;                   /* enum agent_format */
	char *timezone;               /* file (syslog format), syslog: NULL: the local zone */
	int start_at;                 /* enum agent_start_at (file) */
	uint64_t max_line;            /* file */
	uint64_t scan_interval_ms;    /* file: glob re-scan */
	uint64_t stat_interval_ms;    /* file: stat safety net */
	uint64_t flush_timeout_ms;    /* file: partial last line */
	int64_t max_open_files;       /* file: descriptors open at once */
	uint64_t close_inactive_ms;   /* file: an idle file's descriptor is closed after this */
	struct config_list listen;    /* struct config_addr (syslog, http) */
	uint64_t max_message_size;    /* syslog */
	char *socket_mode;            /* syslog unix sockets, octal */
	uint64_t receive_buffer;      /* syslog udp and unix: SO_RCVBUF asked for */
	int64_t max_connections;      /* syslog tcp, http */
	uint64_t max_body_size;       /* http */
	uint64_t idle_timeout_ms;     /* http: keep-alive connection between requests */
	uint64_t request_timeout_ms;  /* http: longest wait for room in the spool or memory */
};

struct agent_config {
	char *id;
	char *data_dir;
	int log_level;                /* enum log_level */
	uint64_t memory_limit;
	struct {
		uint64_t max_size;
		int sync;                 /* enum agent_sync */
		uint64_t commit_interval_ms;
	} spool;
	struct config_list sources;   /* struct agent_source */
	struct {
		struct config_list servers;   /* struct config_addr */
		struct {
			char *ca_file;
			char *cert_file;
			char *key_file;
			char *server_name;
			struct config_list ciphers;   /* char * */
			uint64_t handshake_timeout_ms;
		} tls;
		struct {
			int64_t max_events;
			uint64_t max_bytes;
			uint64_t max_delay_ms;
		} batch;
		int64_t window;
		uint64_t connection_lifetime_ms;
		uint64_t reconnect_min_ms;
		uint64_t reconnect_max_ms;
		uint64_t ping_interval_ms;
		uint64_t ping_timeout_ms;
	} relays;
	bool relays_enabled;          /* the relays section is present */
	struct {
		struct config_addr listen;    /* text NULL: no metrics endpoint */
	} metrics;
};

extern const struct config_schema agent_config_schema;

#endif
