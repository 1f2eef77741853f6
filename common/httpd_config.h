/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpd_config: the configuration an HTTP intake (common/httpd.h) shares
 * in both daemons, the agent's `http` sources and the relay's
 * `http_intake`: its `auth` and `tls` sections, the connection keys
 * beside them, and the httpd_options they make. Each key is declared and
 * documented here once; the daemons' schemas place them (the agent's at a
 * source, for the http type and for syslog's tls:// listeners, the
 * relay's in http_intake), and say in their own section help what differs.
 */
#ifndef LOGFERRY_HTTPD_CONFIG_H
#define LOGFERRY_HTTPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

struct httpd_options;
struct tls_config_options;

/* The `auth` section: bearer tokens and each sender's rate limits. */
struct httpd_config_auth {
	char *tokens_file;        /* TOKEN NAME lines (common/token.h); NULL: no tokens */
	int64_t events_per_s;     /* per sender; 0: no limit */
	int64_t events_burst;     /* 0: events_per_s */
	uint64_t bytes_per_s;     /* per sender, request bodies as sent; 0: no limit */
	uint64_t bytes_burst;     /* 0: bytes_per_s */
};

/* The `tls` section: the server's certificate, and its clients'. */
struct httpd_config_tls {
	char *cert_file;          /* NULL: plain HTTP */
	char *key_file;
	char *ca_file;            /* NULL: no client certificates */
	struct config_list ciphers;   /* char * */
	uint64_t handshake_timeout_ms;
	bool verify_client;       /* a certificate signed by ca_file is required */
	struct config_list allowed_cns;   /* char *: globs; empty: any */
};

/* The keys of those sections (offsets in their structs), ended by a NULL name. */
extern const struct config_key httpd_config_auth_keys[];
extern const struct config_key httpd_config_tls_keys[];

/*
 * The connection keys an intake has beside its sections, in a schema's
 * table: at_body and at_idle are the offsets of its max_body_size
 * (uint64_t bytes) and idle_timeout (uint64_t ms) in the parent struct,
 * only its config_key.only.
 */
#define HTTPD_CONFIG_CONNECTION_KEYS(at_body, at_idle, only_types) \
	{ "max_body_size", CONFIG_SIZE, (at_body), .def = "8MiB", .min = INT64_C(1024), \
	  .max = INT64_C(1) << 30, .only = (only_types), \
	  .help = "Largest request body (after gzip decoding); larger requests get 413." }, \
	{ "idle_timeout", CONFIG_DURATION, (at_idle), .def = "60s", .min = 100, \
	  .max = INT64_C(3600000), .only = (only_types), \
	  .help = "A connection that sends nothing for this long (between requests, or in the " \
	    "middle of one) is closed." }

/* The server TLS options of t, for tls_config_new (pointers into t). */
void httpd_config_tls_options(const struct httpd_config_tls *t, struct tls_config_options *o);

/*
 * Fills what auth and tls give of o: o->tls is tls_out, filled from tls,
 * when tls has a cert_file (else NULL: plain HTTP); the tokens file holds
 * at most max_tokens. tls_out must live as long as o is used.
 */
void httpd_config_options(struct httpd_options *o, const struct httpd_config_auth *auth,
    const struct httpd_config_tls *tls, size_t max_tokens, struct tls_config_options *tls_out);

#endif
