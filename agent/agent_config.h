/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_config: the agent's configuration schema (one table) and its
 * settings struct. docs/architecture.md "Agent config" lists the keys users rely on.
 */
#ifndef LOGFERRY_AGENT_CONFIG_H
#define LOGFERRY_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/httpd_config.h"

/* Tokens an http source's tokens_file may hold. */
#define AGENT_MAX_TOKENS 100000

enum agent_source_type { SOURCE_FILE, SOURCE_SYSLOG, SOURCE_HTTP, SOURCE_JOURNAL };
enum agent_start_at { START_AT_BEGINNING, START_AT_END };
enum agent_sync { SYNC_ALWAYS, SYNC_RELAXED };

/* Processing stage types (agent/processors.c's table), in the order of processor_names. */
enum agent_processor_type {
	PROCESSOR_ADD_FIELDS,
	PROCESSOR_DROP,
	PROCESSOR_KEEP,
	PROCESSOR_RENAME,
	PROCESSOR_REMOVE,
	PROCESSOR_REQUIRE,
	PROCESSOR_REDACT,
};

/* A condition of drop and keep: field and exactly one operator. */
struct agent_condition {
	char *field;                  /* a field; message, stream, host: the event's own */
	char *equals, *prefix;
	bool present, absent;
	char *lt, *le, *gt, *ge;      /* numbers, as written */
};

/* One element of a processors: list; its type says which keys apply. */
struct agent_processor {
	int type;                     /* enum agent_processor_type */
	struct config_map values;     /* add_fields: name -> value, ${host} etc. expanded */
	struct config_list when;      /* drop, keep: struct agent_condition, ANDed */
	struct config_map map;        /* rename: old -> new */
	struct config_list fields;    /* char *: remove, require, redact */
	struct config_map types;      /* require: name -> string, integer, number or boolean */
	char *dead_letter_stream;     /* require */
	char *field;                  /* redact: the one field it redacts */
	int method;                   /* redact: enum redact_method */
	char *key_file;               /* redact hash: the HMAC key's file */
	char *pattern;                /* redact regex: a POSIX extended regex */
	char *replacement;            /* redact regex: what a match becomes; NULL: the default */
};

struct processors;

struct agent_source {
	char *name;
	int type;                     /* enum agent_source_type */
	char *stream;                 /* NULL: the source's name */
	struct config_list paths;     /* char *: globs (file) */
	struct config_list exclude;   /* char *: globs never read (file) */
	int format;                   /* index into parser_types (agent/parsers.h) */
	char *nginx_log_format;       /* file, format nginx: nginx.conf's log_format */
	char *timezone;               /* file (syslog format), syslog: NULL: the local zone */
	int start_at;                 /* enum agent_start_at (file, journal) */
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
	char *directory;              /* journal: NULL: the local journal (or files) */
	struct config_list files;     /* char *: journal files (journal) */
	struct config_list matches;   /* char *: FIELD=value (journal) */
	uint64_t max_field_size;      /* journal: longer values are cut */
	struct {
		char *start;              /* a line matching begins an event (POSIX ERE) */
		char *continuation;       /* a line matching continues the event before */
		uint64_t flush_timeout_ms;  /* an event with no line after it ships after this */
		uint64_t max_bytes;       /* longer events are cut and marked */
	} multiline;                  /* file: both patterns NULL: one event per line */
	struct config_list processors;   /* struct agent_processor: run before the global ones */
	/*
	 * Not a key: this source's chain, its processors then the global ones,
	 * compiled by the configuration's check and freed with it; NULL: none.
	 */
	struct processors *chain;
	struct httpd_config_auth auth;   /* http */
	struct httpd_config_tls tls;     /* http: HTTPS; syslog: tls:// listeners */
};

struct agent_config {
	char *id;
	char *data_dir;
	int log_level;                /* enum log_level */
	int log_format;               /* enum log_format */
	uint64_t memory_limit;
	struct {
		uint64_t max_size;
		int sync;                 /* enum agent_sync */
		uint64_t commit_interval_ms;
		uint64_t names_size;      /* event format 2's names table (spool_options.dict_bytes) */
	} spool;
	struct config_list sources;   /* struct agent_source */
	struct config_list processors;   /* struct agent_processor: every source's, after its own */
	uint64_t processor_buffer;    /* bytes a chain may write per event */
	struct {
		struct config_list servers;   /* struct config_addr */
		struct {
			char *ca_file;
			char *cert_file;
			char *key_file;
			char *key_password;       /* from {file: PATH}; NULL: key not encrypted */
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
	struct config_secrets secrets;   /* values read from {file: PATH}, for the dump */
};

struct tls_config_options;

/*
 * The client TLS options of relays.tls, for tls_config_new: one place, so
 * that --check loads exactly what the shipper will. Pointers into cfg.
 */
void agent_config_tls_options(const struct agent_config *cfg, struct tls_config_options *o);

/* Whether a syslog source has a tls:// listener (which needs its tls section). */
bool agent_config_has_tls_listener(const struct agent_source *s);

/* The server TLS options of a source's tls section (http, syslog). Pointers into s. */
void agent_config_source_tls_options(const struct agent_source *s, struct tls_config_options *o);

struct parser_config;

/* What source s's format compiles from (agent/parsers.h). Pointers into s. */
void agent_config_parser_config(const struct agent_source *s, struct parser_config *out);

/*
 * The agent's configuration as the daemon loads it (--check, start,
 * SIGHUP): its rules, and that it will work on this host: the TLS files
 * parse and match, the id is the certificate's common name, data_dir can be
 * written, listen hosts are well formed.
 */
extern const struct config_schema agent_config_schema;

/*
 * The same keys and rules without what depends on the host beyond the TLS
 * files being readable: for tests of the rules, whose TLS files are
 * placeholders.
 */
extern const struct config_schema agent_config_rules_schema;

#endif
