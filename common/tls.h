/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls: TLS 1.2 over libuv TCP streams with mbedtls, for both daemons
 * (docs/architecture.md "TLS", "Wire protocol").
 *
 * Two objects:
 *
 *  - struct tls_config: one per daemon and role. It holds the trust anchors,
 *    our certificate chain and key, the cipher suites and a seeded CTR-DRBG.
 *    It is reference counted: every connection holds a reference, so a
 *    SIGHUP reload builds a new config, hands it to new connections and
 *    drops the daemon's reference to the old one, which is freed when its
 *    last connection closes. References are atomic and the mbedtls objects
 *    are only read after tls_config_new (Debian's mbedtls is built with
 *    MBEDTLS_THREADING_C, which locks the DRBG), so one config may serve
 *    connections on several loops and threads. A connection itself belongs
 *    to the thread of its loop.
 *
 *  - struct tls_conn: one TLS connection. It owns its uv_tcp_t and a timer,
 *    like any libuv handle owner: the memory lives until the handles'
 *    close callbacks have run, and on_close is the last callback. mbedtls
 *    never touches the socket: its BIO callbacks copy records from and to
 *    bounded memory buffers that libuv reads into and writes from, and
 *    WANT_READ/WANT_WRITE mean "wait for the loop".
 *
 * Bounds, per connection (docs/architecture.md guarantee 3):
 *  - mbedtls's own record buffers: MBEDTLS_SSL_IN/OUT_BUFFER_LEN, about
 *    16.5 KiB each, for the connection's lifetime;
 *  - ciphertext received: TLS_RECV_BUFFER bytes at most, allocated when a
 *    read arrives and freed once mbedtls has taken every byte, so an idle
 *    connection holds none; while reading is paused the socket is not read
 *    (TCP pushes back on the peer) and what arrived before stays here;
 *  - ciphertext to send: at most send_buffer_max bytes queued by
 *    tls_conn_write (plus TLS_SEND_SLACK for alerts and handshake records),
 *    in two buffers (one being written, one filling) that keep their memory;
 *  - decrypted plaintext: one record (TLS_RECORD_MAX) on the stack, handed
 *    to on_data without a copy of ours.
 *
 * Logging: every TLS failure (certificate refused, with the mbedtls reason,
 * the peer's address and the certificate's subject and issuer; alert from
 * the peer; handshake timeout; protocol error; non-TLS peer) is logged here
 * at warn level with what to do. Plain transport events (connection refused
 * or reset, EOF) are only logged at debug: they reach the caller through
 * on_handshake/on_close, and tls_conn_reason() describes them, so that the
 * caller logs them once with its own context.
 *
 * Callbacks never run inside a tls_* call: only from libuv callbacks. A
 * function that returns an error does not run a callback for it.
 */
#ifndef LOGFERRY_TLS_H
#define LOGFERRY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Largest plaintext in one TLS record; writes are cut into records of this. */
#define TLS_RECORD_MAX 16384
/* Ciphertext buffered from the socket: two full records and their headers. */
#define TLS_RECV_BUFFER 32768
/* send_buffer_max: default and bounds. The minimum holds one full record. */
#define TLS_SEND_BUFFER_DEFAULT (256 * 1024)
#define TLS_SEND_BUFFER_MIN (32 * 1024)
#define TLS_SEND_BUFFER_MAX (64 * 1024 * 1024)
/* Room above send_buffer_max for alerts, close_notify and handshake records. */
#define TLS_SEND_SLACK (TLS_RECORD_MAX + 1024)
#define TLS_HANDSHAKE_TIMEOUT_DEFAULT_MS 10000
#define TLS_HANDSHAKE_TIMEOUT_MAX_MS 3600000
/* Entries in a `ciphers` list. */
#define TLS_CIPHERS_MAX 32
/* Longest common name: ub-common-name in RFC 5280. */
#define TLS_CN_MAX 64
/* Longest server name (DNS name or IP literal), as mbedtls limits SNI. */
#define TLS_SERVER_NAME_MAX 255

/* Help of the key_password key, the same in both daemons' tls sections. */
#define TLS_KEY_PASSWORD_HELP "Passphrase of an encrypted key_file (PEM), only as {file: /path} " \
	"naming a file that holds it alone (readable by the daemon only). Without it key_file " \
	"must not be encrypted."

enum tls_role { TLS_ROLE_CLIENT, TLS_ROLE_SERVER };

struct tls_config_options {
	enum tls_role role;
	/*
	 * PEM trust anchors; required, except by a server without
	 * verify_client. Every certificate in it must parse.
	 */
	const char *ca_file;
	/*
	 * PEM: our certificate first, then the intermediates to send with it.
	 * key_file: its RSA or ECDSA private key, PEM or DER, unencrypted.
	 * Both or neither; a server needs them, a client without them cannot
	 * pass a relay with verify_client on.
	 */
	const char *cert_file;
	const char *key_file;
	/* Passphrase of an encrypted key_file (PEM); NULL: the key is not encrypted. */
	const char *key_password;
	/* Server: require and verify a client certificate. Clients always verify. */
	bool verify_client;
	/*
	 * Cipher suites in order of preference, by IANA name
	 * (TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256) or mbedtls name
	 * (TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256), case-insensitive.
	 * n_ciphers 0: ECDHE with ChaCha20-Poly1305, then AES-128-GCM, then
	 * AES-256-GCM, each ECDSA before RSA.
	 */
	const char *const *ciphers;
	size_t n_ciphers;
	/* 0: TLS_HANDSHAKE_TIMEOUT_DEFAULT_MS. Covers the TCP connect too. */
	uint64_t handshake_timeout_ms;
	/* Ciphertext tls_conn_write may queue per connection. 0: the default. */
	size_t send_buffer_max;
};

struct tls_config;
struct tls_conn;

/*
 * Loads the files and builds a config with one reference, owned by the
 * caller. Returns 0 and sets *out, or a negative errno and writes into err
 * what is wrong, naming the option and file and quoting mbedtls's reason,
 * e.g. "cert_file /etc/logferry/relay.crt: X509 - The CRT/CRL/CSR format is
 * invalid, e.g. different type expected". -ENOENT/-EACCES: a file cannot
 * be read; -EINVAL: bad content or options; -ENOMEM. Warnings that do not
 * stop the daemon (our certificate expired, expires within 30 days or does
 * not verify against ca_file) are logged.
 */
int tls_config_new(const struct tls_config_options *o, char *err, size_t errlen,
    struct tls_config **out);

/*
 * For --check: loads and checks everything tls_config_new would (the
 * files parse, ca_file holds a certificate, the key is the certificate's,
 * its extendedKeyUsage suits the role, the ciphers exist), builds nothing
 * and logs nothing. Writes into cn (cnlen bytes, may be NULL) the common
 * name of our certificate, "" without one or without a usable one (see
 * tls_conn_peer_cn). Returns 0, or as tls_config_new, with err.
 */
int tls_check_files(const struct tls_config_options *o, char *cn, size_t cnlen, char *err,
    size_t errlen);

/*
 * tls_config_new for a daemon's listener: logs what is wrong as
 * "LABEL: tls.REASON" (label names the listener's owner, e.g. "source
 * app"). Returns as tls_config_new.
 */
int tls_config_load(const struct tls_config_options *o, const char *label,
    struct tls_config **out);

/*
 * SIGHUP: loads o's files again into *cur for new connections and drops
 * the reference to the old config, which the `open` connections still
 * using it keep alive. Logs the outcome; on an error *cur stays as it was.
 * Returns 0 or as tls_config_new.
 */
int tls_config_reload(const struct tls_config_options *o, const char *label, uint64_t open,
    struct tls_config **cur);

/* Takes one more reference and returns cfg. */
struct tls_config *tls_config_ref(struct tls_config *cfg);

/* Drops one reference; the last one frees the config. NULL is fine. */
void tls_config_unref(struct tls_config *cfg);

enum tls_role tls_config_role(const struct tls_config *cfg);

/*
 * The cipher suites the config offers, mbedtls names, NUL-terminated, in
 * order, separated by ", ". Returns 0, or -ENOBUFS if out is too small.
 */
int tls_config_ciphers(const struct tls_config *cfg, char *out, size_t outlen);

struct tls_conn_callbacks {
	/*
	 * The handshake ended: status 0, the connection is open; or a negative
	 * error (see tls_strerror) and the connection is closing: on_close
	 * follows. Called once, unless tls_conn_close came first. Required.
	 */
	void (*on_handshake)(void *ctx, int status);
	/*
	 * Decrypted bytes, at most TLS_RECORD_MAX, valid during the call only.
	 * Not called while reading is paused or after tls_conn_close. Required.
	 */
	void (*on_data)(void *ctx, const uint8_t *p, size_t n);
	/*
	 * After tls_conn_write said -EAGAIN: the send buffer has drained to at
	 * most half of send_buffer_max, try again. Optional.
	 */
	void (*on_writable)(void *ctx);
	/*
	 * The last callback, exactly once per connection handed out. reason 0:
	 * closed cleanly (tls_conn_close, or the peer's close_notify); else why
	 * it ended (tls_conn_reason has the words). The connection may still
	 * be queried during the call (tls_conn_peer, tls_conn_reason ...) and
	 * is freed when it returns. Required.
	 */
	void (*on_close)(void *ctx, int reason);
};

/*
 * Server side: accepts the next connection on `server` (a listening stream
 * on loop) and starts the handshake. Takes a reference to cfg. Returns 0
 * and sets *out (owned by the connection itself until on_close), or a
 * negative error (uv_accept's, -EINVAL for a client config, -ENOMEM); on
 * error no callback runs and nothing is left to free.
 */
int tls_conn_accept(uv_loop_t *loop, struct tls_config *cfg, uv_stream_t *server,
    const struct tls_conn_callbacks *cb, void *ctx, struct tls_conn **out);

/*
 * Takes over a connected TCP socket (e.g. accepted on another loop and
 * handed to this one) and starts the handshake in cfg's role; a client
 * needs server_name (as for tls_conn_connect), a server ignores it.
 * sock is transferred: it is closed on error too. Otherwise as
 * tls_conn_accept.
 */
int tls_conn_open(uv_loop_t *loop, struct tls_config *cfg, uv_os_sock_t sock,
    const char *server_name, const struct tls_conn_callbacks *cb, void *ctx,
    struct tls_conn **out);

/*
 * Client side: connects to addr and runs the handshake; the relay's
 * certificate must be valid for server_name (required): a DNS name is
 * matched against the certificate's DNS names (and sent as SNI), an IPv4
 * or IPv6 literal (brackets allowed) against its IP addresses.
 * handshake_timeout covers the connect. Connect failures arrive through
 * on_handshake. Returns as tls_conn_accept, or -EINVAL for a server config
 * or a missing or too long server_name.
 */
int tls_conn_connect(uv_loop_t *loop, struct tls_config *cfg, const struct sockaddr *addr,
    const char *server_name, const struct tls_conn_callbacks *cb, void *ctx,
    struct tls_conn **out);

/*
 * Encrypts n bytes into records of up to TLS_RECORD_MAX and queues them,
 * all or nothing. Returns 0; -EAGAIN if they do not fit in the send buffer
 * now (nothing queued; on_writable follows); -EMSGSIZE if they would not
 * fit even in an empty one (write smaller pieces); -ENOTCONN before the
 * handshake ended; -EPIPE once closing; -ENOMEM; or -EPROTO when mbedtls
 * fails, which closes the connection.
 */
int tls_conn_write(struct tls_conn *c, const void *p, size_t n);

/* Plaintext bytes one tls_conn_write would accept now (0 before open). */
size_t tls_conn_write_space(const struct tls_conn *c);

/* Ciphertext bytes queued and not yet written to the socket. */
size_t tls_conn_write_queued(const struct tls_conn *c);

/* Memory our send buffers hold now (their capacity, queued or not). */
size_t tls_conn_send_buffers(const struct tls_conn *c);

/*
 * Stops delivering on_data and reading the socket, so that TCP pushes back
 * on the peer. A handshake in progress still completes.
 */
void tls_conn_pause_reading(struct tls_conn *c);

/* Undoes a pause; buffered data is delivered from the loop, not from here. */
void tls_conn_resume_reading(struct tls_conn *c);

/*
 * Closes gracefully: queues close_notify, sends what is queued, shuts the
 * write side and waits for the peer to close (at most handshake_timeout),
 * then closes the socket. Before the handshake ended it closes at once.
 * No callback but on_close runs after this. Idempotent.
 */
void tls_conn_close(struct tls_conn *c);

/*
 * Closes the socket at once: no close_notify, queued data dropped, no wait
 * for the peer. For a peer considered dead (stopped, unreachable), which
 * would keep a graceful close open for handshake_timeout more. on_close
 * follows with reason (e.g. -ETIMEDOUT), and no other callback. Also cuts
 * short a graceful close already waiting. Idempotent.
 */
void tls_conn_abort(struct tls_conn *c, int reason);

/*
 * The common name of the peer's verified certificate, into out (NUL-
 * terminated). Returns 0; -ENOTCONN before the handshake ended; -ENOENT if
 * the peer sent no certificate (verify_client off) or it has no CN;
 * -ENOTUNIQ if it has several; -EILSEQ if it holds a NUL byte;
 * -ENAMETOOLONG if longer than TLS_CN_MAX or outlen.
 */
int tls_conn_peer_cn(const struct tls_conn *c, char *out, size_t outlen);

/*
 * The peer for messages: "192.0.2.7:51234", "[2001:db8::1]:7540", or for a
 * client "relay1.example.net (192.0.2.1:7540)". Valid as long as c.
 */
const char *tls_conn_peer(const struct tls_conn *c);

/* The negotiated cipher suite (mbedtls name), or "none" before open. */
const char *tls_conn_cipher(const struct tls_conn *c);

/* Why the connection failed or closed, in words; "" while healthy. */
const char *tls_conn_reason(const struct tls_conn *c);

/*
 * The TCP handle, for socket options only (uv_tcp_nodelay, keepalive,
 * buffer sizes); never read, write or close it.
 */
uv_tcp_t *tls_conn_tcp(struct tls_conn *c);

/*
 * Words for the errors this module reports (-ETIMEDOUT: "TLS handshake
 * timed out", -EKEYREJECTED: "certificate refused", ...), else strerror's.
 * Static strings.
 */
const char *tls_strerror(int err);

#endif
