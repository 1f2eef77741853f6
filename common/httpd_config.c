/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_config: the configuration both daemons' HTTP intakes share (see httpd_config.h). */
#include "autoconfig.h"

#include <string.h>

#include "common/httpd.h"
#include "common/httpd_config.h"
#include "common/tls.h"

static const struct config_key httpd_config_elem_string = {
	.type = CONFIG_STRING, .flags = CONFIG_NONEMPTY,
};

#define A(f) offsetof(struct httpd_config_auth, f)
const struct config_key httpd_config_auth_keys[] = {
	{ "tokens_file", CONFIG_STRING, A(tokens_file), .flags = CONFIG_NONEMPTY,
	  .help = "File of bearer tokens, one `TOKEN NAME` per line (# comments): a request must "
	    "carry `Authorization: Bearer TOKEN` of one of them, or is answered 401 unread. NAME "
	    "is the sender, added to each of its events as the field `sender`; several tokens may "
	    "name one sender. Tokens are 16 to 256 printable bytes (openssl rand -hex 32). The "
	    "file must not be readable by every user (mode 0640, root:_logferry); SIGHUP reads "
	    "it again." },
	{ "events_per_second", CONFIG_INT, A(events_per_s), .def = "0", .min = 0, .max = 1000000000,
	  .help = "Events each sender may post per second, on average; 0: no limit. A request "
	    "over its sender's limit is answered 429 with Retry-After (whole seconds) and none "
	    "of its events are taken." },
	{ "events_burst", CONFIG_INT, A(events_burst), .def = "0", .min = 0, .max = 1000000000,
	  .help = "Events a sender may post at once after a quiet while (a token bucket's "
	    "size); 0: events_per_second. A request larger than the burst passes when the "
	    "bucket is full." },
	{ "bytes_per_second", CONFIG_SIZE, A(bytes_per_s), .def = "0", .min = 0,
	  .max = INT64_C(64) << 30,
	  .help = "Request body bytes (as sent, before gzip decoding) each sender may post per "
	    "second, on average; 0: no limit. Over it: 429 with Retry-After." },
	{ "bytes_burst", CONFIG_SIZE, A(bytes_burst), .def = "0", .min = 0, .max = INT64_C(64) << 30,
	  .help = "Body bytes a sender may post at once after a quiet while; 0: "
	    "bytes_per_second." },
	{ NULL },
};
#undef A

#define T(f) offsetof(struct httpd_config_tls, f)
const struct config_key httpd_config_tls_keys[] = {
	{ "cert_file", CONFIG_STRING, T(cert_file), .flags = CONFIG_NONEMPTY,
	  .help = "PEM certificate the listener presents (extendedKeyUsage serverAuth, its names "
	    "those clients connect to), followed by any intermediate CA certificates. With "
	    "key_file, an HTTP listener speaks HTTPS only." },
	{ "key_file", CONFIG_STRING, T(key_file), .flags = CONFIG_NONEMPTY,
	  .help = "PEM private key of cert_file (RSA or ECDSA), unencrypted, readable by the "
	    "daemon only." },
	{ "ca_file", CONFIG_STRING, T(ca_file), .flags = CONFIG_NONEMPTY,
	  .help = "PEM file of the CA(s) that sign client certificates, for verify_client." },
	{ "ciphers", CONFIG_LIST, T(ciphers), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_SPLIT_COMMAS,
	  .elem = &httpd_config_elem_string,
	  .help = "TLS 1.2 cipher suites in order of preference (mbedtls names). Default: ECDHE "
	    "with ChaCha20-Poly1305, then AES-GCM." },
	{ "handshake_timeout", CONFIG_DURATION, T(handshake_timeout_ms), .def = "10s",
	  .min = 100, .max = 300000,
	  .help = "A connection whose TLS handshake is not done in this time is closed, and "
	    "counted." },
	{ "verify_client", CONFIG_BOOL, T(verify_client), .def = "false",
	  .help = "Require a client certificate signed by a CA of ca_file: a client without one, "
	    "or with another, fails the handshake (counted). Without tokens_file the "
	    "certificate's common name is the sender, the events' `sender` field." },
	{ "allowed_cns", CONFIG_LIST, T(allowed_cns), .flags = CONFIG_SCALAR_AS_LIST,
	  .elem = &httpd_config_elem_string,
	  .help = "With verify_client: glob patterns (fnmatch) of the client certificates' common "
	    "names allowed to post; any other is answered 403 (counted), its body unread. "
	    "Default: every certificate ca_file signs." },
	{ NULL },
};
#undef T

void
httpd_config_tls_options(const struct httpd_config_tls *t, struct tls_config_options *o)
{
	memset(o, 0, sizeof(*o));
	o->role = TLS_ROLE_SERVER;
	o->ca_file = t->ca_file;
	o->cert_file = t->cert_file;
	o->key_file = t->key_file;
	o->ciphers = (const char *const *)t->ciphers.items;
	o->n_ciphers = t->ciphers.n;
	o->handshake_timeout_ms = t->handshake_timeout_ms;
	o->verify_client = t->verify_client;
}

void
httpd_config_options(struct httpd_options *o, const struct httpd_config_auth *auth,
    const struct httpd_config_tls *tls, size_t max_tokens, struct tls_config_options *tls_out)
{
	o->tls = NULL;
	if (tls->cert_file != NULL) {
		httpd_config_tls_options(tls, tls_out);
		o->tls = tls_out;
	}
	o->allowed_cns = &tls->allowed_cns;
	o->tokens_file = auth->tokens_file;
	o->max_tokens = max_tokens;
	o->limits.events_per_s = (uint64_t)auth->events_per_s;
	o->limits.events_burst = (uint64_t)auth->events_burst;
	o->limits.bytes_per_s = auth->bytes_per_s;
	o->limits.bytes_burst = auth->bytes_burst;
}
