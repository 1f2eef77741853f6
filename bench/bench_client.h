/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_client: what the load clients (relay_load, idle_agents) share to
 * reach a relay as agents do: the relay's address and TLS client
 * configuration, a connection with its frame decoder, and the Hello.
 */
#ifndef LOGFERRY_BENCH_CLIENT_H
#define LOGFERRY_BENCH_CLIENT_H

#include <getopt.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <uv.h>

#include "common/tls.h"
#include "proto/frame.h"

/* The long options every client takes besides its own (and -a IP:PORT). */
#define BENCH_CLIENT_LONGOPTS \
	{ "ca", required_argument, NULL, 'C' }, \
	{ "cert", required_argument, NULL, 'E' }, \
	{ "key", required_argument, NULL, 'K' }, \
	{ "id", required_argument, NULL, 'i' }, \
	{ "server-name", required_argument, NULL, 's' }

struct bench_client_args {
	const char *addr, *agent_id, *server_name;
	struct tls_config_options tls;
};
#define BENCH_CLIENT_ARGS_INIT { .tls = { .role = TLS_ROLE_CLIENT } }

/*
 * Takes opt from getopt_long (with "a:" and BENCH_CLIENT_LONGOPTS) when it
 * is one of the shared options: 0; -ENOENT when it is not.
 */
int bench_client_option(struct bench_client_args *a, int opt, const char *arg);
/* Whether -a, --ca, --cert, --key and --id were all given. */
bool bench_client_args_complete(const struct bench_client_args *a);

struct bench_client {
	const char *prog;          /* prefixes the messages */
	const char *agent_id;
	struct sockaddr_storage addr;
	char host[64];
	const char *server_name;   /* host unless given */
	struct tls_config *cfg;
};

/*
 * Parses a->addr (IPv4:PORT) and loads the TLS client configuration;
 * no --server-name means the address's IP. Says what failed on stderr.
 * Returns 0, -EINVAL for a bad address or a TLS error. Free with
 * bench_client_free.
 */
int bench_client_init(struct bench_client *bc, const char *prog,
    const struct bench_client_args *a);
void bench_client_free(struct bench_client *bc);

/*
 * Starts one connection with a frame decoder of max_frame bytes: ctx gets
 * cb's calls, as for tls_conn_connect. Returns 0 or a negative error code
 * (then *dec and *tls are NULL).
 */
int bench_client_connect(struct bench_client *bc, uv_loop_t *loop, size_t max_frame,
    const struct tls_conn_callbacks *cb, void *ctx, struct frame_decoder **dec,
    struct tls_conn **tls);

/*
 * After the handshake of tls: turns Nagle off (frames are small and wait
 * for an answer) and fills f with a Hello from the --id, software version
 * "PROG VERSION"; the caller adds its event formats.
 */
void bench_client_hello(const struct bench_client *bc, struct tls_conn *tls, struct frame *f);

#endif
