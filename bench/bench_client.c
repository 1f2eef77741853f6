/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench_client.h"

int
bench_client_option(struct bench_client_args *a, int opt, const char *arg)
{
	switch (opt) {
	case 'a': a->addr = arg; return 0;
	case 'C': a->tls.ca_file = arg; return 0;
	case 'E': a->tls.cert_file = arg; return 0;
	case 'K': a->tls.key_file = arg; return 0;
	case 'i': a->agent_id = arg; return 0;
	case 's': a->server_name = arg; return 0;
	default: return -ENOENT;
	}
}

bool
bench_client_args_complete(const struct bench_client_args *a)
{
	return a->addr != NULL && a->tls.ca_file != NULL && a->tls.cert_file != NULL &&
	    a->tls.key_file != NULL && a->agent_id != NULL;
}

int
bench_client_init(struct bench_client *bc, const char *prog, const struct bench_client_args *a)
{
	char err[512];
	int port;

	memset(bc, 0, sizeof(*bc));
	bc->prog = prog;
	bc->agent_id = a->agent_id;
	if (sscanf(a->addr, "%63[^:]:%d", bc->host, &port) != 2 ||
	    uv_ip4_addr(bc->host, port, (struct sockaddr_in *)&bc->addr) != 0) {
		fprintf(stderr, "%s: -a %s: want IPv4:PORT\n", prog, a->addr);
		return -EINVAL;
	}
	bc->server_name = a->server_name != NULL ? a->server_name : bc->host;
	if (tls_config_new(&a->tls, err, sizeof(err), &bc->cfg) != 0) {
		fprintf(stderr, "%s: tls: %s\n", prog, err);
		return -EINVAL;
	}
	return 0;
}

void
bench_client_free(struct bench_client *bc)
{
	if (bc->cfg != NULL)
		tls_config_unref(bc->cfg);
	bc->cfg = NULL;
}

int
bench_client_connect(struct bench_client *bc, uv_loop_t *loop, size_t max_frame,
    const struct tls_conn_callbacks *cb, void *ctx, struct frame_decoder **dec,
    struct tls_conn **tls)
{
	int rc;

	*tls = NULL;
	if ((rc = frame_decoder_new(max_frame, dec)) != 0) {
		*dec = NULL;
		return rc;
	}
	if ((rc = tls_conn_connect(loop, bc->cfg, (const struct sockaddr *)&bc->addr,
	    bc->server_name, cb, ctx, tls)) != 0) {
		frame_decoder_free(*dec);
		*dec = NULL;
		*tls = NULL;
	}
	return rc;
}

void
bench_client_hello(const struct bench_client *bc, struct tls_conn *tls, struct frame *f)
{
	uv_tcp_nodelay(tls_conn_tcp(tls), 1);
	frame_init(f, FRAME_HELLO);
	f->pb.hello.protocol_version = logferry_ProtocolVersion_PROTOCOL_VERSION_CURRENT;
	snprintf(f->pb.hello.agent_id, sizeof(f->pb.hello.agent_id), "%s", bc->agent_id);
	snprintf(f->pb.hello.software_version, sizeof(f->pb.hello.software_version), "%s %s",
	    bc->prog, PACKAGE_VERSION);
}
