/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/version.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"

#if MBEDTLS_VERSION_NUMBER < 0x021C0000 || MBEDTLS_VERSION_NUMBER >= 0x03000000
#error "common/tls.c is written for mbedtls 2.28 (Debian 12's libmbedtls-dev)"
#endif
/* tls.h lets loops on several threads share a config: mbedtls must lock its DRBG. */
#if !defined(MBEDTLS_THREADING_C)
#error "mbedtls must be built with MBEDTLS_THREADING_C (Debian's is)"
#endif

/*
 * Fallback for the bytes a record adds to its plaintext, should mbedtls not
 * know (it always does for the AEAD suites we offer: 21 for ChaCha20-
 * Poly1305, 29 for AES-GCM). Above any TLS 1.2 record's header, explicit
 * IV, MAC and padding.
 */
#define TLS_RECORD_OVERHEAD_MAX 512
/* Our certificate expiring within this many days is worth a warning. */
#define TLS_EXPIRY_WARN_DAYS 30
/* Text buffers for messages: a DN, a reason, a peer. */
#define TLS_DN_MAX 256
#define TLS_WHY_MAX 512
#define TLS_PEER_MAX (TLS_SERVER_NAME_MAX + INET6_ADDRSTRLEN + 32)
/* Bytes of a failed handshake's first read kept to recognise non-TLS peers. */
#define TLS_FIRST_BYTES 8
/*
 * After a failure, how long the alert we queued may take to leave and the
 * peer to close (a relay flooded with bad handshakes holds each this long
 * at most).
 */
#define TLS_FAIL_LINGER_MS 1000

/* ---------------------------------------------------------------- config */

struct tls_config {
	atomic_uint refs;
	enum tls_role role;
	bool verify_peer;          /* client, or server with verify_client */
	bool has_cert;
	uint64_t handshake_timeout_ms;
	size_t send_max;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	mbedtls_x509_crt own;      /* our certificate, then its intermediates */
	mbedtls_pk_context key;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	int ciphers[TLS_CIPHERS_MAX + 1];   /* 0-terminated, as mbedtls wants */
	char *ca_file, *cert_file;          /* for messages */
};

/*
 * ChaCha20-Poly1305 first: with Debian's mbedtls it costs half of AES-GCM
 * per byte (docs/performance.md). The server's order decides (mbedtls is built without
 * MBEDTLS_SSL_SRV_RESPECT_CLIENT_PREFERENCE).
 */
static const int tls_default_ciphers[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
};

/*
 * Key exchange curves, fastest first. The list also bounds the curves a
 * peer's ECDSA certificate may use, hence the NIST curves up to P-521.
 */
static const mbedtls_ecp_group_id tls_curves[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_SECP521R1,
	MBEDTLS_ECP_DP_NONE,
};

static void
tls_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
tls_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* mbedtls's words for an error code, e.g. "X509 - Read/write of file failed". */
static const char *
tls_mbedtls_text(int rc, char *out, size_t len)
{
	mbedtls_strerror(rc, out, len);
	if (out[0] == '\0')
		snprintf(out, len, "mbedtls error -0x%04x", (unsigned)-rc);
	return out;
}

/*
 * mbedtls reports a missing file as "Read/write of file failed"; open() it
 * first so the operator reads "No such file or directory" or "Permission
 * denied" instead.
 */
static int
tls_check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int e;

	if (fd < 0) {
		e = errno;
		tls_errf(err, errlen, "%s %s: %s", what, path, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

/* Verification flags as one line: mbedtls's sentences joined with "; ". */
static void
tls_verify_text(uint32_t flags, char *out, size_t len)
{
	char tmp[TLS_WHY_MAX];
	size_t o = 0;
	int n;

	out[0] = '\0';
	n = mbedtls_x509_crt_verify_info(tmp, sizeof(tmp), "", flags);
	if (n <= 0) {
		snprintf(out, len, "verification flags 0x%" PRIx32, flags);
		return;
	}
	for (const char *p = tmp; *p != '\0' && o + 3 < len; p++) {
		if (*p == '\n') {
			if (p[1] != '\0') {
				out[o++] = ';';
				out[o++] = ' ';
			}
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

/* time_t of an X.509 time (UTC). */
static time_t
tls_x509_time(const mbedtls_x509_time *t)
{
	struct tm tm = { 0 };

	tm.tm_year = t->year - 1900;
	tm.tm_mon = t->mon - 1;
	tm.tm_mday = t->day;
	tm.tm_hour = t->hour;
	tm.tm_min = t->min;
	tm.tm_sec = t->sec;
	return timegm(&tm);
}

/*
 * The common name of crt into out (outlen > TLS_CN_MAX), "" when it has no
 * usable one. Returns 0, or as tls_conn_peer_cn.
 */
static int
tls_crt_cn(const mbedtls_x509_crt *crt, char *out, size_t outlen)
{
	const mbedtls_x509_name *n;
	int found = 0, status = -ENOENT;

	out[0] = '\0';
	for (n = &crt->subject; n != NULL; n = n->next) {
		if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		/* Two CNs would let the relay and an operator read different names. */
		if (++found > 1) {
			status = -ENOTUNIQ;
			break;
		}
		if (n->val.len > TLS_CN_MAX || n->val.len >= outlen) {
			status = -ENAMETOOLONG;
		} else if (memchr(n->val.p, '\0', n->val.len) != NULL) {
			/* "web-01\0evil" must never compare equal to "web-01". */
			status = -EILSEQ;
		} else {
			memcpy(out, n->val.p, n->val.len);
			out[n->val.len] = '\0';
			status = 0;
		}
	}
	if (status != 0)
		out[0] = '\0';
	return status;
}

/* Warnings about our own certificate: they do not stop the daemon. */
static void
tls_check_own_cert(const struct tls_config *cfg)
{
	const mbedtls_x509_crt *leaf = &cfg->own;
	char why[TLS_WHY_MAX];
	uint32_t flags = 0;
	time_t now = time(NULL), until = tls_x509_time(&leaf->valid_to);

	if (cfg->ca.version != 0 && mbedtls_x509_crt_verify((mbedtls_x509_crt *)leaf,
	    (mbedtls_x509_crt *)&cfg->ca, NULL, NULL, &flags, NULL, NULL) != 0) {
		tls_verify_text(flags, why, sizeof(why));
		log_warn("cert_file %s: our certificate does not verify against ca_file %s (%s); "
		    "peers that trust only that CA will refuse it", cfg->cert_file, cfg->ca_file, why);
	} else if (until != (time_t)-1 && until - now < (time_t)TLS_EXPIRY_WARN_DAYS * 86400) {
		log_warn("cert_file %s: our certificate expires on %04d-%02d-%02d, in %lld days; "
		    "renew it and reload (SIGHUP)", cfg->cert_file, leaf->valid_to.year,
		    leaf->valid_to.mon, leaf->valid_to.day, (long long)((until - now) / 86400));
	}
}

/*
 * Finds a cipher suite by IANA or mbedtls name. Returns its id, or 0 and
 * writes why not.
 */
static int
tls_cipher_lookup(const char *name, char *err, size_t errlen)
{
	char norm[96];
	const mbedtls_ssl_ciphersuite_t *cs;
	const int *avail;
	size_t i;
	int id;

	for (i = 0; name[i] != '\0' && i + 1 < sizeof(norm); i++)
		norm[i] = name[i] == '_' ? '-' : (char)toupper((unsigned char)name[i]);
	norm[i] = '\0';
	if (name[i] != '\0' || (id = mbedtls_ssl_get_ciphersuite_id(norm)) == 0 ||
	    (cs = mbedtls_ssl_ciphersuite_from_id(id)) == NULL) {
		tls_errf(err, errlen, "ciphers: unknown cipher suite \"%s\"; use IANA names such as "
		    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 (OpenSSL's names are not accepted)",
		    name);
		return 0;
	}
	/* mbedtls_ssl_list_ciphersuites() leaves out what the build deems weak. */
	for (avail = mbedtls_ssl_list_ciphersuites(); *avail != 0 && *avail != id; avail++)
		;
	if (*avail == 0) {
		tls_errf(err, errlen, "ciphers: cipher suite \"%s\" is disabled in this mbedtls build",
		    name);
		return 0;
	}
	if (cs->min_minor_ver > MBEDTLS_SSL_MINOR_VERSION_3 ||
	    cs->max_minor_ver < MBEDTLS_SSL_MINOR_VERSION_3) {
		tls_errf(err, errlen, "ciphers: cipher suite \"%s\" cannot be used with TLS 1.2", name);
		return 0;
	}
	if (mbedtls_ssl_get_ciphersuite_sig_pk_alg(cs) == MBEDTLS_PK_NONE) {
		tls_errf(err, errlen, "ciphers: cipher suite \"%s\" authenticates with a pre-shared "
		    "key, not certificates; logferry uses certificates", name);
		return 0;
	}
	return id;
}

/* Can a server with a key of type pk use suite id? */
static bool
tls_cipher_fits_key(int id, mbedtls_pk_type_t pk)
{
	const mbedtls_ssl_ciphersuite_t *cs = mbedtls_ssl_ciphersuite_from_id(id);
	mbedtls_pk_type_t need = mbedtls_ssl_get_ciphersuite_sig_pk_alg(cs);

	if (pk == MBEDTLS_PK_RSA)
		return need == MBEDTLS_PK_RSA;
	return need == MBEDTLS_PK_ECDSA || need == MBEDTLS_PK_ECKEY;
}

static int
tls_config_ciphers_set(struct tls_config *cfg, const struct tls_config_options *o,
    char *err, size_t errlen)
{
	size_t n = 0, i, j;
	int id;

	if (o->n_ciphers == 0) {
		for (i = 0; i < sizeof(tls_default_ciphers) / sizeof(tls_default_ciphers[0]); i++) {
			/* A build without one of them simply does not offer it. */
			if (mbedtls_ssl_ciphersuite_from_id(tls_default_ciphers[i]) != NULL)
				cfg->ciphers[n++] = tls_default_ciphers[i];
		}
	} else {
		if (o->n_ciphers > TLS_CIPHERS_MAX) {
			tls_errf(err, errlen, "ciphers: %zu cipher suites listed, at most %d are allowed",
			    o->n_ciphers, TLS_CIPHERS_MAX);
			return -EINVAL;
		}
		for (i = 0; i < o->n_ciphers; i++) {
			if (o->ciphers[i] == NULL || (id = tls_cipher_lookup(o->ciphers[i], err, errlen)) == 0) {
				if (o->ciphers[i] == NULL)
					tls_errf(err, errlen, "ciphers: entry %zu is empty", i + 1);
				return -EINVAL;
			}
			for (j = 0; j < n; j++) {
				if (cfg->ciphers[j] == id) {
					tls_errf(err, errlen, "ciphers: \"%s\" is listed twice", o->ciphers[i]);
					return -EINVAL;
				}
			}
			cfg->ciphers[n++] = id;
		}
	}
	if (n == 0) {
		tls_errf(err, errlen, "ciphers: this mbedtls build offers none of the default cipher suites");
		return -EINVAL;
	}
	cfg->ciphers[n] = 0;
	if (cfg->role == TLS_ROLE_SERVER) {
		mbedtls_pk_type_t pk = mbedtls_pk_get_type(&cfg->key);

		for (i = 0; i < n && !tls_cipher_fits_key(cfg->ciphers[i], pk); i++)
			;
		if (i == n) {
			tls_errf(err, errlen, "ciphers: none of the cipher suites can be used with the %s "
			    "key in key_file; list ECDHE-%s suites", pk == MBEDTLS_PK_RSA ? "RSA" : "ECDSA",
			    pk == MBEDTLS_PK_RSA ? "RSA" : "ECDSA");
			return -EINVAL;
		}
	}
	return 0;
}

static int
tls_config_load_own(struct tls_config *cfg, const struct tls_config_options *o, char *err,
    size_t errlen)
{
	char why[TLS_WHY_MAX];
	mbedtls_pk_type_t pk;
	int rc, r;

	if ((r = tls_check_readable("cert_file", o->cert_file, err, errlen)) != 0 ||
	    (r = tls_check_readable("key_file", o->key_file, err, errlen)) != 0)
		return r;
	rc = mbedtls_x509_crt_parse_file(&cfg->own, o->cert_file);
	if (rc < 0) {
		tls_errf(err, errlen, "cert_file %s: %s", o->cert_file, tls_mbedtls_text(rc, why, sizeof(why)));
		return -EINVAL;
	}
	if (rc > 0) {
		tls_errf(err, errlen, "cert_file %s: %d certificate(s) in it cannot be parsed", o->cert_file, rc);
		return -EINVAL;
	}
	rc = mbedtls_pk_parse_keyfile(&cfg->key, o->key_file, o->key_password);
	if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
		tls_errf(err, errlen, "key_file %s: the key is encrypted: set key_password: {file: /path} "
		    "naming a file that holds its passphrase, or decrypt the key", o->key_file);
		return -EINVAL;
	}
	if (rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
		tls_errf(err, errlen, "key_file %s: key_password does not decrypt the key: check the "
		    "passphrase in its file", o->key_file);
		return -EINVAL;
	}
	if (rc != 0) {
		tls_errf(err, errlen, "key_file %s: %s", o->key_file, tls_mbedtls_text(rc, why, sizeof(why)));
		return -EINVAL;
	}
	pk = mbedtls_pk_get_type(&cfg->key);
	if (pk != MBEDTLS_PK_RSA && pk != MBEDTLS_PK_ECKEY && pk != MBEDTLS_PK_ECDSA) {
		tls_errf(err, errlen, "key_file %s: %s keys are not supported; use RSA or ECDSA",
		    o->key_file, mbedtls_pk_get_name(&cfg->key));
		return -EINVAL;
	}
	if ((rc = mbedtls_pk_check_pair(&cfg->own.pk, &cfg->key)) != 0) {
		tls_errf(err, errlen, "key_file %s does not hold the key of the first certificate in "
		    "cert_file %s (%s)", o->key_file, o->cert_file, tls_mbedtls_text(rc, why, sizeof(why)));
		return -EINVAL;
	}
	/* The peer would refuse it anyway; say so now, not at every handshake. */
	if (cfg->role == TLS_ROLE_SERVER ?
	    mbedtls_x509_crt_check_extended_key_usage(&cfg->own, MBEDTLS_OID_SERVER_AUTH,
	        MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0 :
	    mbedtls_x509_crt_check_extended_key_usage(&cfg->own, MBEDTLS_OID_CLIENT_AUTH,
	        MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
		tls_errf(err, errlen, "cert_file %s: the certificate is not for TLS %s: its "
		    "extendedKeyUsage lacks %s", o->cert_file,
		    cfg->role == TLS_ROLE_SERVER ? "servers" : "clients",
		    cfg->role == TLS_ROLE_SERVER ? "serverAuth" : "clientAuth");
		return -EINVAL;
	}
	rc = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own, &cfg->key);
	if (rc != 0)
		return -ENOMEM;
	cfg->has_cert = true;
	return 0;
}

static void
tls_config_free(struct tls_config *cfg)
{
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_ctr_drbg_free(&cfg->drbg);
	mbedtls_entropy_free(&cfg->entropy);
	mbedtls_pk_free(&cfg->key);
	mbedtls_x509_crt_free(&cfg->own);
	mbedtls_x509_crt_free(&cfg->ca);
	free(cfg->ca_file);
	free(cfg->cert_file);
	free(cfg);
}

/* tls_config_new without its warnings, which --check must not print. */
static int
tls_config_make(const struct tls_config_options *o, char *err, size_t errlen,
    struct tls_config **out)
{
	static const char pers[] = "logferry tls";
	struct tls_config *cfg;
	char why[TLS_WHY_MAX];
	int rc, r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (o->role != TLS_ROLE_CLIENT && o->role != TLS_ROLE_SERVER) {
		tls_errf(err, errlen, "unknown TLS role %d", (int)o->role);
		return -EINVAL;
	}
	/* A server that asks for no client certificate has nothing to check against a CA. */
	if ((o->ca_file == NULL || o->ca_file[0] == '\0') &&
	    (o->role == TLS_ROLE_CLIENT || o->verify_client)) {
		tls_errf(err, errlen, o->role == TLS_ROLE_CLIENT ? "ca_file: required" :
		    "ca_file: required to verify client certificates");
		return -EINVAL;
	}
	if ((o->cert_file == NULL || o->cert_file[0] == '\0') !=
	    (o->key_file == NULL || o->key_file[0] == '\0')) {
		tls_errf(err, errlen, "cert_file and key_file go together: give both or neither");
		return -EINVAL;
	}
	if (o->role == TLS_ROLE_SERVER && (o->cert_file == NULL || o->cert_file[0] == '\0')) {
		tls_errf(err, errlen, "cert_file and key_file: required for a TLS server");
		return -EINVAL;
	}
	if (o->handshake_timeout_ms > TLS_HANDSHAKE_TIMEOUT_MAX_MS) {
		tls_errf(err, errlen, "handshake_timeout: %" PRIu64 " ms is above the maximum of %d ms",
		    o->handshake_timeout_ms, TLS_HANDSHAKE_TIMEOUT_MAX_MS);
		return -EINVAL;
	}
	if (o->send_buffer_max != 0 &&
	    (o->send_buffer_max < TLS_SEND_BUFFER_MIN || o->send_buffer_max > TLS_SEND_BUFFER_MAX)) {
		tls_errf(err, errlen, "send_buffer_max: %zu bytes is outside %d..%d", o->send_buffer_max,
		    TLS_SEND_BUFFER_MIN, TLS_SEND_BUFFER_MAX);
		return -EINVAL;
	}

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return -ENOMEM;
	atomic_init(&cfg->refs, 1);
	cfg->role = o->role;
	cfg->verify_peer = o->role == TLS_ROLE_CLIENT || o->verify_client;
	cfg->handshake_timeout_ms = o->handshake_timeout_ms != 0 ? o->handshake_timeout_ms :
	    TLS_HANDSHAKE_TIMEOUT_DEFAULT_MS;
	cfg->send_max = o->send_buffer_max != 0 ? o->send_buffer_max : TLS_SEND_BUFFER_DEFAULT;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crt_init(&cfg->own);
	mbedtls_pk_init(&cfg->key);
	mbedtls_entropy_init(&cfg->entropy);
	mbedtls_ctr_drbg_init(&cfg->drbg);
	cfg->ca_file = strdup(o->ca_file != NULL ? o->ca_file : "");
	cfg->cert_file = strdup(o->cert_file != NULL ? o->cert_file : "");
	if (cfg->ca_file == NULL || cfg->cert_file == NULL) {
		r = -ENOMEM;
		goto fail;
	}

	rc = mbedtls_ssl_config_defaults(&cfg->conf,
	    o->role == TLS_ROLE_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0) {
		tls_errf(err, errlen, "cannot set up TLS: %s", tls_mbedtls_text(rc, why, sizeof(why)));
		r = -ENOMEM;
		goto fail;
	}

	if (cfg->ca_file[0] == '\0')
		goto own;
	if ((r = tls_check_readable("ca_file", o->ca_file, err, errlen)) != 0)
		goto fail;
	rc = mbedtls_x509_crt_parse_file(&cfg->ca, o->ca_file);
	if (rc < 0) {
		tls_errf(err, errlen, "ca_file %s: %s", o->ca_file, tls_mbedtls_text(rc, why, sizeof(why)));
		r = -EINVAL;
		goto fail;
	}
	/* A trust store that half loads would refuse peers for no visible reason. */
	if (rc > 0) {
		tls_errf(err, errlen, "ca_file %s: %d certificate(s) in it cannot be parsed", o->ca_file, rc);
		r = -EINVAL;
		goto fail;
	}
	if (cfg->ca.version == 0) {
		tls_errf(err, errlen, "ca_file %s: holds no certificate", o->ca_file);
		r = -EINVAL;
		goto fail;
	}
	mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);

own:
	if (o->cert_file != NULL && o->cert_file[0] != '\0') {
		if ((r = tls_config_load_own(cfg, o, err, errlen)) != 0)
			goto fail;
	}
	if ((r = tls_config_ciphers_set(cfg, o, err, errlen)) != 0)
		goto fail;

	rc = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
	    (const unsigned char *)pers, sizeof(pers) - 1);
	if (rc != 0) {
		tls_errf(err, errlen, "cannot seed the random generator: %s",
		    tls_mbedtls_text(rc, why, sizeof(why)));
		r = -EIO;
		goto fail;
	}
	mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);

	/* TLS 1.2 only: Debian's 2.28 has TLS 1.3 as an incomplete experiment. */
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, cfg->ciphers);
	mbedtls_ssl_conf_curves(&cfg->conf, tls_curves);
	mbedtls_ssl_conf_authmode(&cfg->conf,
	    cfg->verify_peer ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
	/* Renegotiation only adds attack surface to a protocol that never needs it. */
	mbedtls_ssl_conf_renegotiation(&cfg->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	/* No session cache on the relay, so a ticket could never be used. */
	mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);

	*out = cfg;
	return 0;

fail:
	tls_config_free(cfg);
	return r;
}

int
tls_config_new(const struct tls_config_options *o, char *err, size_t errlen,
    struct tls_config **out)
{
	int r = tls_config_make(o, err, errlen, out);

	if (r == 0 && (*out)->has_cert)
		tls_check_own_cert(*out);
	return r;
}

int
tls_check_files(const struct tls_config_options *o, char *cn, size_t cnlen, char *err,
    size_t errlen)
{
	struct tls_config *cfg;
	int r;

	if (cn != NULL && cnlen > 0)
		cn[0] = '\0';
	if ((r = tls_config_make(o, err, errlen, &cfg)) != 0)
		return r;
	if (cfg->has_cert && cn != NULL && cnlen > 0)
		(void)tls_crt_cn(&cfg->own, cn, cnlen);
	tls_config_unref(cfg);
	return 0;
}

struct tls_config *
tls_config_ref(struct tls_config *cfg)
{
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
	return cfg;
}

void
tls_config_unref(struct tls_config *cfg)
{
	if (cfg == NULL)
		return;
	/* acq_rel: the last owner must see every other owner's writes before freeing. */
	if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
		tls_config_free(cfg);
}

int
tls_config_load(const struct tls_config_options *o, const char *label, struct tls_config **out)
{
	char err[768];
	int r;

	if ((r = tls_config_new(o, err, sizeof(err), out)) != 0)
		log_error("%s: tls.%s", label, err);
	return r;
}

int
tls_config_reload(const struct tls_config_options *o, const char *label, uint64_t open,
    struct tls_config **cur)
{
	struct tls_config *fresh;
	int r;

	if ((r = tls_config_load(o, label, &fresh)) != 0) {
		log_error("%s: the TLS certificate loaded before stays; fix the files and send "
		    "SIGHUP again", label);
		return r;
	}
	tls_config_unref(*cur);
	*cur = fresh;
	log_info("%s: TLS certificate reloaded from %s: new connections use it; the %" PRIu64
	    " open connection(s) keep theirs", label, o->cert_file, open);
	return 0;
}

enum tls_role
tls_config_role(const struct tls_config *cfg)
{
	return cfg->role;
}

int
tls_config_ciphers(const struct tls_config *cfg, char *out, size_t outlen)
{
	size_t o = 0, n;
	const char *name;

	if (outlen == 0)
		return -ENOBUFS;
	out[0] = '\0';
	for (size_t i = 0; cfg->ciphers[i] != 0; i++) {
		name = mbedtls_ssl_get_ciphersuite_name(cfg->ciphers[i]);
		n = strlen(name) + (i > 0 ? 2 : 0);
		if (o + n + 1 > outlen)
			return -ENOBUFS;
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", i > 0 ? ", " : "", name);
	}
	return 0;
}

/* ---------------------------------------------------------------- connection */

enum tls_state {
	TLS_S_CONNECTING,   /* client: TCP connect in progress */
	TLS_S_HANDSHAKE,
	TLS_S_OPEN,
	TLS_S_CLOSING,      /* sending what is queued; then, if lingering, waiting for the peer */
	TLS_S_CLOSED,       /* uv_close called: waiting for the close callbacks */
	TLS_S_NSTATES
};

static const char *const tls_state_names[] = {
	[TLS_S_CONNECTING] = "connecting",
	[TLS_S_HANDSHAKE] = "handshake",
	[TLS_S_OPEN] = "open",
	[TLS_S_CLOSING] = "closing",
	[TLS_S_CLOSED] = "closed",
};

struct tls_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;          /* handshake timeout; close timeout; deferred reads */
	uv_connect_t connect_req;
	uv_write_t write_req;
	uv_shutdown_t shutdown_req;
	int handles;               /* not yet closed */
	struct tls_config *cfg;    /* one reference */
	mbedtls_ssl_context ssl;
	struct tls_conn_callbacks cb;
	void *ctx;
	enum tls_state state;

	/* Ciphertext received, rx_off..rx_len not yet taken by mbedtls. */
	uint8_t *rx;
	size_t rx_off, rx_len;
	uint64_t rx_total;
	uint8_t first[TLS_FIRST_BYTES];
	size_t nfirst;

	/* Ciphertext to send: mbedtls appends to fill; busy is in uv_write. */
	struct buf tx_fill, tx_busy;
	size_t rec_max;            /* plaintext per record */
	size_t rec_overhead;       /* ciphertext bytes a record adds */

	bool notify_close;         /* the caller has the connection: on_close owed */
	bool hs_reported;          /* on_handshake ran */
	bool opened;               /* the handshake succeeded: the peer's identity is known */
	bool user_closed;          /* tls_conn_close ran: only on_close from now on */
	bool failing;              /* tls_fail is closing it */
	bool reading, paused, eof;
	bool writing;              /* write_req in flight */
	bool want_writable;        /* a write said -EAGAIN */
	bool mbedtls_blocked;      /* mbedtls said WANT_WRITE: run it again after a flush */
	bool linger;               /* closing: shut down writes, wait for the peer's close */
	bool discard;              /* closing after a failure: drop what arrives unread */
	bool shutdown_sent;
	bool peer_closed;          /* the peer sent close_notify */
	bool tx_trimmed;           /* the handshake's send buffers were let go */
	int reason;

	/* Client: the name the relay's certificate must carry. */
	bool name_is_ip;
	uint8_t ip[16];
	size_t ip_len;
	char server_name[TLS_SERVER_NAME_MAX + 1];

	/* The peer's certificate, captured while mbedtls verifies it. */
	bool have_leaf;
	char subject[TLS_DN_MAX], issuer[TLS_DN_MAX];
	char cn[TLS_CN_MAX + 1];
	int cn_status;

	char peer[TLS_PEER_MAX];
	char why[TLS_WHY_MAX];
};

/* The connection a request is embedded in. */
#define TLS_CONN_OF(p, member) \
	((struct tls_conn *)(void *)((char *)(p) - offsetof(struct tls_conn, member)))

static void tls_drive(struct tls_conn *c);
static void tls_settle(struct tls_conn *c);
static void tls_timer_cb(uv_timer_t *t);

static bool
tls_state_allowed(enum tls_state from, enum tls_state to)
{
	switch (from) {
	case TLS_S_CONNECTING:
		return to == TLS_S_HANDSHAKE || to == TLS_S_CLOSED;
	case TLS_S_HANDSHAKE:
		return to == TLS_S_OPEN || to == TLS_S_CLOSING || to == TLS_S_CLOSED;
	case TLS_S_OPEN:
		return to == TLS_S_CLOSING || to == TLS_S_CLOSED;
	case TLS_S_CLOSING:
		return to == TLS_S_CLOSED;
	default:
		return false;
	}
}

/* An illegal change is a bug: abort. */
static void
tls_set_state(struct tls_conn *c, enum tls_state to)
{
	if (!tls_state_allowed(c->state, to)) {
		log_error("tls %s: illegal state change %s -> %s", c->peer,
		    tls_state_names[c->state], tls_state_names[to]);
		abort();
	}
	log_debug("tls %s: %s -> %s", c->peer, tls_state_names[c->state], tls_state_names[to]);
	c->state = to;
}

static size_t
tls_queued(const struct tls_conn *c)
{
	return c->tx_fill.len + c->tx_busy.len;
}

static void
tls_why(struct tls_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tls_why(struct tls_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

static void
tls_format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		uv_ip4_name(sin, ip, sizeof(ip));
		snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		uv_ip6_name(sin6, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
	} else {
		snprintf(out, len, "unknown peer");
	}
}

static void
tls_conn_free(struct tls_conn *c)
{
	mbedtls_ssl_free(&c->ssl);
	free(c->rx);
	buf_free(&c->tx_fill);
	buf_free(&c->tx_busy);
	tls_config_unref(c->cfg);
	free(c);
}

static void
tls_close_cb(uv_handle_t *h)
{
	struct tls_conn *c = h->data;

	if (--c->handles > 0)
		return;
	if (c->notify_close)
		c->cb.on_close(c->ctx, c->reason);
	tls_conn_free(c);
}

/* Closes the socket now; on_close follows from the loop. */
static void
tls_close_now(struct tls_conn *c)
{
	if (c->state == TLS_S_CLOSED)
		return;
	tls_set_state(c, TLS_S_CLOSED);
	c->reading = false;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, tls_close_cb);
	uv_close((uv_handle_t *)&c->tcp, tls_close_cb);
}

/*
 * Ends the connection with err (c->why says why; the caller logged what
 * deserves logging). During the handshake on_handshake(err) runs first.
 * With flush, records mbedtls queued (a fatal alert telling the peer why)
 * are still sent, within the close timeout.
 */
static void
tls_fail(struct tls_conn *c, int err, bool flush)
{
	if (c->state == TLS_S_CLOSED)
		return;
	if (c->state == TLS_S_CLOSING) {
		/* A close the peer started stays clean; one of ours may have lost data. */
		if (!c->peer_closed && c->reason == 0)
			c->reason = err;
		tls_close_now(c);
		return;
	}
	c->reason = err;
	c->failing = true;
	if ((c->state == TLS_S_CONNECTING || c->state == TLS_S_HANDSHAKE) && !c->hs_reported) {
		c->hs_reported = true;
		uv_timer_stop(&c->timer);
		if (!c->user_closed && c->notify_close)
			c->cb.on_handshake(c->ctx, err);
		if (c->state == TLS_S_CLOSED)
			return;
	}
	if (flush && c->state != TLS_S_CONNECTING && tls_queued(c) > 0) {
		/*
		 * Closing at once could answer the peer's unread bytes with a
		 * reset that destroys the alert before it reads it: linger.
		 */
		tls_set_state(c, TLS_S_CLOSING);
		c->linger = true;
		c->discard = true;
		uv_timer_start(&c->timer, tls_timer_cb,
		    c->cfg->handshake_timeout_ms < TLS_FAIL_LINGER_MS ? c->cfg->handshake_timeout_ms :
		    TLS_FAIL_LINGER_MS, 0);
		tls_settle(c);
		return;
	}
	tls_close_now(c);
}

/* A socket error or EOF: logged by the caller only when it says more than the error. */
static void
tls_transport_error(struct tls_conn *c, int err, const char *what)
{
	if (c->state == TLS_S_CLOSED)
		return;
	if (err == UV_EOF) {
		tls_why(c, "%s: the peer closed the connection without TLS close_notify", what);
		err = -ECONNRESET;
	} else {
		tls_why(c, "%s: %s", what, uv_strerror(err));
	}
	if (c->state == TLS_S_HANDSHAKE && c->rx_total > 0) {
		/* Mid-handshake, a dropped connection is usually a refusal without an alert. */
		log_warn("TLS handshake with %s failed: %s; the peer may have refused our certificate "
		    "or cipher suites (see its log)", c->peer, c->why);
	} else {
		log_debug("tls %s: %s", c->peer, c->why);
	}
	tls_fail(c, err, false);
}

/* ------------------------------------------------ BIO: mbedtls <-> buffers */

static int
tls_bio_send(void *arg, const unsigned char *p, size_t n)
{
	struct tls_conn *c = arg;

	if (c->state == TLS_S_CLOSED)
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
	if (tls_queued(c) + n > c->cfg->send_max + TLS_SEND_SLACK)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (buf_append(&c->tx_fill, p, n) != 0)
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	return (int)n;
}

static int
tls_bio_recv(void *arg, unsigned char *p, size_t n)
{
	struct tls_conn *c = arg;
	size_t avail = c->rx_len - c->rx_off;

	if (avail == 0)
		return c->eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
	if (n > avail)
		n = avail;
	memcpy(p, c->rx + c->rx_off, n);
	c->rx_off += n;
	if (c->rx_off == c->rx_len)
		c->rx_off = c->rx_len = 0;
	return (int)n;
}

/* ---------------------------------------------------------------- writing */

static void tls_write_cb(uv_write_t *req, int status);

/* Starts writing what mbedtls queued, unless a write is in flight. */
static int
tls_flush(struct tls_conn *c)
{
	struct buf tmp;
	uv_buf_t b;
	int r;

	if (c->writing || c->tx_fill.len == 0 || c->state == TLS_S_CLOSED ||
	    c->state == TLS_S_CONNECTING)
		return 0;
	tmp = c->tx_busy;
	c->tx_busy = c->tx_fill;
	c->tx_fill = tmp;
	b = uv_buf_init((char *)c->tx_busy.data, (unsigned)c->tx_busy.len);
	r = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, tls_write_cb);
	if (r < 0) {
		buf_reset(&c->tx_busy);
		tls_transport_error(c, r, "cannot send");
		return r;
	}
	c->writing = true;
	return 0;
}

static void tls_closing_progress(struct tls_conn *c);

static void
tls_write_cb(uv_write_t *req, int status)
{
	struct tls_conn *c = TLS_CONN_OF(req, write_req);

	c->writing = false;
	buf_reset(&c->tx_busy);
	if (status == UV_ECANCELED || c->state == TLS_S_CLOSED)
		return;
	if (status < 0) {
		tls_transport_error(c, status, "sending failed");
		return;
	}
	if (tls_flush(c) != 0)
		return;
	/*
	 * The handshake's flights (certificate chains, a few KiB) are more than
	 * an agent's Hello or a relay's Acks ever need at once: once they are
	 * out, the buffers go, so that an idle connection does not keep them
	 * (10,000 idle agents: 22 MiB of a relay). A busy one grows them again.
	 */
	if (c->state == TLS_S_OPEN && !c->tx_trimmed && !c->writing) {
		c->tx_trimmed = true;
		buf_free(&c->tx_fill);
		buf_free(&c->tx_busy);
	}
	if (c->mbedtls_blocked) {
		c->mbedtls_blocked = false;
		tls_drive(c);
		if (c->state == TLS_S_CLOSED)
			return;
	}
	if (c->state == TLS_S_OPEN && c->want_writable && !c->user_closed &&
	    tls_queued(c) <= c->cfg->send_max / 2) {
		c->want_writable = false;
		if (c->cb.on_writable != NULL)
			c->cb.on_writable(c->ctx);
	} else if (c->state == TLS_S_CLOSING) {
		tls_closing_progress(c);
	}
}

static void
tls_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct tls_conn *c = TLS_CONN_OF(req, shutdown_req);

	if (status == UV_ECANCELED || c->state == TLS_S_CLOSED)
		return;
	if (status < 0)
		tls_close_now(c);
	/* Otherwise wait for the peer's close_notify or EOF, or the close timeout. */
}

/*
 * Closing: once everything queued is sent, either close (after a failure,
 * or when the peer already closed) or shut down our side and keep reading
 * until the peer closes too, so that the kernel never answers the peer's
 * last bytes with a reset that could destroy data it has not read yet.
 */
static void
tls_closing_progress(struct tls_conn *c)
{
	int r;

	if (c->state != TLS_S_CLOSING || c->writing || c->tx_fill.len > 0)
		return;
	if (!c->linger || c->eof) {
		tls_close_now(c);
		return;
	}
	if (!c->shutdown_sent) {
		c->shutdown_sent = true;
		r = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, tls_shutdown_cb);
		if (r < 0)
			tls_close_now(c);
	}
}

static size_t
tls_ciphertext_size(const struct tls_conn *c, size_t n)
{
	size_t records = (n + c->rec_max - 1) / c->rec_max;

	return n + records * c->rec_overhead;
}

int
tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t off = 0, chunk, need;
	char why[TLS_WHY_MAX];
	int r;

	if (c->user_closed || c->state == TLS_S_CLOSING || c->state == TLS_S_CLOSED)
		return -EPIPE;
	if (c->state != TLS_S_OPEN)
		return -ENOTCONN;
	if (n == 0)
		return 0;
	if (n > c->cfg->send_max || (need = tls_ciphertext_size(c, n)) > c->cfg->send_max)
		return -EMSGSIZE;
	if (c->mbedtls_blocked || tls_queued(c) + need > c->cfg->send_max) {
		c->want_writable = true;
		return -EAGAIN;
	}
	/* Room for every record now, so that mbedtls never sees WANT_WRITE mid-message. */
	if (buf_reserve(&c->tx_fill, need) != 0)
		return -ENOMEM;
	while (off < n) {
		chunk = n - off < c->rec_max ? n - off : c->rec_max;
		r = mbedtls_ssl_write(&c->ssl, b + off, chunk);
		if (r <= 0) {
			tls_why(c, "cannot encrypt: %s", tls_mbedtls_text(r, why, sizeof(why)));
			log_warn("TLS with %s failed: %s", c->peer, c->why);
			tls_fail(c, -EPROTO, false);
			return -EPROTO;
		}
		off += (size_t)r;
	}
	if (tls_flush(c) != 0)
		return -EPIPE;
	return 0;
}

size_t
tls_conn_write_space(const struct tls_conn *c)
{
	size_t free_ct, full, rest, per;

	if (c->state != TLS_S_OPEN || c->user_closed || c->mbedtls_blocked ||
	    tls_queued(c) >= c->cfg->send_max)
		return 0;
	free_ct = c->cfg->send_max - tls_queued(c);
	per = c->rec_max + c->rec_overhead;
	full = free_ct / per;
	rest = free_ct % per;
	return full * c->rec_max + (rest > c->rec_overhead ? rest - c->rec_overhead : 0);
}

size_t
tls_conn_write_queued(const struct tls_conn *c)
{
	return tls_queued(c);
}

size_t
tls_conn_send_buffers(const struct tls_conn *c)
{
	return c->tx_fill.cap + c->tx_busy.cap;
}

/* ---------------------------------------------------------------- reading */

static void
tls_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct tls_conn *c = h->data;

	(void)suggested;
	if (c->rx == NULL) {
		c->rx = malloc(TLS_RECV_BUFFER);
		c->rx_off = c->rx_len = 0;
		if (c->rx == NULL) {
			*b = uv_buf_init(NULL, 0);   /* read_cb gets UV_ENOBUFS */
			return;
		}
	}
	if (c->rx_off > 0) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	*b = uv_buf_init((char *)c->rx + c->rx_len, (unsigned)(TLS_RECV_BUFFER - c->rx_len));
}


static void tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* Reads from the socket exactly when the state wants bytes and there is room. */
static void
tls_update_reading(struct tls_conn *c)
{
	bool want;
	int r;

	switch (c->state) {
	case TLS_S_HANDSHAKE:
		want = true;
		break;
	case TLS_S_OPEN:
		want = !c->paused;
		break;
	case TLS_S_CLOSING:
		want = c->linger;
		break;
	default:
		want = false;
		break;
	}
	if (c->eof || (c->rx != NULL && c->rx_len - c->rx_off >= TLS_RECV_BUFFER))
		want = false;
	if (want == c->reading)
		return;
	if (!want) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		return;
	}
	r = uv_read_start((uv_stream_t *)&c->tcp, tls_alloc_cb, tls_read_cb);
	if (r < 0) {
		tls_transport_error(c, r, "cannot read");
		return;
	}
	c->reading = true;
}

/* ---------------------------------------------------------------- verification */

/* Does crt carry ip (4 or 16 bytes) among its subjectAltName iPAddress entries? */
static bool
tls_crt_has_ip(const mbedtls_x509_crt *crt, const uint8_t *ip, size_t len)
{
	const mbedtls_x509_sequence *s;

	if (!(crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME))
		return false;
	for (s = &crt->subject_alt_names; s != NULL; s = s->next) {
		/* iPAddress is [7] IMPLICIT OCTET STRING (RFC 5280 4.2.1.6). */
		if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && s->buf.len == len &&
		    memcmp(s->buf.p, ip, len) == 0)
			return true;
	}
	return false;
}

static void
tls_capture_leaf(struct tls_conn *c, const mbedtls_x509_crt *crt)
{
	c->have_leaf = true;
	if (mbedtls_x509_dn_gets(c->subject, sizeof(c->subject), &crt->subject) < 0)
		snprintf(c->subject, sizeof(c->subject), "(too long to show)");
	if (mbedtls_x509_dn_gets(c->issuer, sizeof(c->issuer), &crt->issuer) < 0)
		snprintf(c->issuer, sizeof(c->issuer), "(too long to show)");
	c->cn_status = tls_crt_cn(crt, c->cn, sizeof(c->cn));
}

/*
 * Runs for every certificate of the peer's chain, root first. mbedtls 2.28
 * matches the expected name only against DNS names (and the CN), never
 * against iPAddress entries, so for an IP literal we leave its name check
 * out (no hostname set) and do it here, on the leaf.
 */
static int
tls_verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct tls_conn *c = arg;

	if (depth != 0)
		return 0;
	tls_capture_leaf(c, crt);
	if (c->name_is_ip && !tls_crt_has_ip(crt, c->ip, c->ip_len))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	return 0;
}

static void
tls_verify_hint(const struct tls_conn *c, uint32_t flags, char *out, size_t len)
{
	bool server = c->cfg->role == TLS_ROLE_SERVER;

	if (flags & MBEDTLS_X509_BADCERT_MISSING)
		snprintf(out, len, "the peer sent no certificate");
	else if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		snprintf(out, len, "it must be signed, through the intermediates the peer sends with "
		    "it, by a CA in ca_file %s", c->cfg->ca_file);
	else if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
		snprintf(out, len, "the peer's certificate must be renewed");
	else if (flags & MBEDTLS_X509_BADCERT_FUTURE)
		snprintf(out, len, "it is not valid yet: check the clocks of both hosts");
	else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
		snprintf(out, len, "it is not issued for \"%s\": connect with a name or address in its "
		    "subjectAltName, or set tls.server_name", c->server_name);
	else if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
	    MBEDTLS_X509_BADCERT_NS_CERT_TYPE))
		snprintf(out, len, "a TLS %s certificate needs extendedKeyUsage %s",
		    server ? "client" : "server", server ? "clientAuth" : "serverAuth");
	else if (flags & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK |
	    MBEDTLS_X509_BADCERT_BAD_KEY))
		snprintf(out, len, "its signature or key is too weak for mbedtls (e.g. SHA-1, "
		    "RSA under 2048 bits, an unsupported curve)");
	else
		snprintf(out, len, "check it against ca_file %s", c->cfg->ca_file);
}

static const char *
tls_alert_name(int a)
{
	switch (a) {
	case 0: return "close_notify";
	case 10: return "unexpected_message";
	case 20: return "bad_record_mac";
	case 22: return "record_overflow";
	case 40: return "handshake_failure";
	case 42: return "bad_certificate";
	case 43: return "unsupported_certificate";
	case 44: return "certificate_revoked";
	case 45: return "certificate_expired";
	case 46: return "certificate_unknown";
	case 47: return "illegal_parameter";
	case 48: return "unknown_ca";
	case 49: return "access_denied";
	case 50: return "decode_error";
	case 51: return "decrypt_error";
	case 70: return "protocol_version";
	case 71: return "insufficient_security";
	case 80: return "internal_error";
	case 86: return "inappropriate_fallback";
	case 90: return "user_canceled";
	case 100: return "no_renegotiation";
	case 110: return "unsupported_extension";
	case 112: return "unrecognized_name";
	case 116: return "certificate_required";
	default: return "unknown";
	}
}

/* The description of the alert mbedtls just read, or -1. */
static int
tls_last_alert(const struct tls_conn *c)
{
	/* Public fields in 2.28 (private from 3.0, which this file refuses). */
	if (c->ssl.in_msgtype != MBEDTLS_SSL_MSG_ALERT || c->ssl.in_msg == NULL)
		return -1;
	return c->ssl.in_msg[1];
}

static bool
tls_alert_is_about_certificate(int a)
{
	return a == 41 || a == 42 || a == 43 || a == 44 || a == 45 || a == 46 || a == 48 ||
	    a == 49 || a == 116;
}

/* Did the peer start like TLS (a record of type 20..23), or send nothing yet? */
static bool
tls_first_looks_tls(const struct tls_conn *c)
{
	return c->nfirst == 0 || (c->first[0] >= 20 && c->first[0] <= 23);
}

static void
tls_handshake_failed(struct tls_conn *c, int rc)
{
	char info[TLS_WHY_MAX], hint[TLS_WHY_MAX], cert[2 * TLS_DN_MAX + 32], text[TLS_WHY_MAX];
	char first[TLS_FIRST_BYTES + 1];
	bool server = c->cfg->role == TLS_ROLE_SERVER;
	int err = -EPROTO, alert;
	uint32_t flags;
	size_t i;

	cert[0] = '\0';
	if (c->have_leaf)
		snprintf(cert, sizeof(cert), " (subject \"%s\", issuer \"%s\")", c->subject, c->issuer);

	if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		flags = mbedtls_ssl_get_verify_result(&c->ssl);
		tls_verify_text(flags, info, sizeof(info));
		tls_verify_hint(c, flags, hint, sizeof(hint));
		tls_why(c, "%s certificate%s refused: %s", server ? "client" : "server", cert, info);
		log_warn("TLS handshake with %s failed: %s; %s", c->peer, c->why, hint);
		err = -EKEYREJECTED;
	} else if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) {
		/* RFC 5246 7.4.6: refuse a client without certificate with handshake_failure. */
		(void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
		    MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
		tls_why(c, "client certificate refused: the client sent none");
		log_warn("TLS handshake with %s failed: %s; give the client a certificate signed by "
		    "a CA of ca_file %s (an agent: relays.tls.cert_file), or turn "
		    "tls.verify_client off", c->peer, c->why, c->cfg->ca_file);
		err = -EKEYREJECTED;
	} else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
		alert = tls_last_alert(c);
		tls_why(c, "the peer refused the handshake with alert %s (%d)", tls_alert_name(alert), alert);
		if (tls_alert_is_about_certificate(alert)) {
			err = -EKEYREJECTED;
			if (c->cfg->has_cert)
				snprintf(hint, sizeof(hint), "it refused our certificate (cert_file %s); its "
				    "log says why", c->cfg->cert_file);
			else
				snprintf(hint, sizeof(hint), "it wants a certificate from us: set cert_file "
				    "and key_file");
		} else if (alert == 40) {
			snprintf(hint, sizeof(hint), "no cipher suite or curve in common (compare "
			    "tls.ciphers on both sides), or it wants a certificate we did not send%s; its "
			    "log says why", c->cfg->has_cert ? "" : " (we have none: set cert_file and key_file)");
			if (!c->cfg->has_cert)
				err = -EKEYREJECTED;
		} else if (alert == 70) {
			snprintf(hint, sizeof(hint), "it does not accept TLS 1.2");
		} else {
			snprintf(hint, sizeof(hint), "its log says why");
		}
		log_warn("TLS handshake with %s failed: %s; %s", c->peer, c->why, hint);
	} else if (!tls_first_looks_tls(c)) {
		for (i = 0; i < c->nfirst; i++)
			first[i] = c->first[i] >= 0x20 && c->first[i] < 0x7f && c->first[i] != '"' &&
			    c->first[i] != '\\' ? (char)c->first[i] : '.';
		first[i] = '\0';
		tls_why(c, "the peer does not speak TLS (it began with \"%s\")", first);
		log_warn("TLS handshake with %s failed: %s; is it a plaintext %s, or the wrong port?",
		    c->peer, c->why, server ? "client" : "server");
	} else if (rc == MBEDTLS_ERR_SSL_CONN_EOF && server && c->rx_total == 0) {
		/* Load balancers' TCP health checks and port scans: not worth a warning. */
		tls_why(c, "the peer closed the connection without sending anything");
		log_debug("tls %s: %s", c->peer, c->why);
		err = -ECONNRESET;
	} else if (rc == MBEDTLS_ERR_SSL_CONN_EOF) {
		tls_why(c, "the peer closed the connection during the handshake");
		log_warn("TLS handshake with %s failed: %s; it may have refused our certificate or "
		    "cipher suites (see its log)", c->peer, c->why);
		err = -ECONNRESET;
	} else if (rc == MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN ||
	    rc == MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE) {
		tls_why(c, "no cipher suite in common");
		if (tls_config_ciphers(c->cfg, info, sizeof(info)) != 0)
			snprintf(info, sizeof(info), "(too many to list)");
		log_warn("TLS handshake with %s failed: %s; we offer %s: compare tls.ciphers on both "
		    "sides", c->peer, c->why, info);
	} else if (rc == MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION) {
		tls_why(c, "the peer does not speak TLS 1.2");
		log_warn("TLS handshake with %s failed: %s; logferry speaks TLS 1.2 only", c->peer, c->why);
	} else if (rc == MBEDTLS_ERR_SSL_ALLOC_FAILED) {
		tls_why(c, "out of memory during the TLS handshake");
		log_error("TLS handshake with %s failed: %s", c->peer, c->why);
		err = -ENOMEM;
	} else {
		tls_why(c, "%s", tls_mbedtls_text(rc, text, sizeof(text)));
		log_warn("TLS handshake with %s failed: %s", c->peer, c->why);
	}
	tls_fail(c, err, true);
}

/* ---------------------------------------------------------------- the engine */

static void
tls_handshake_done(struct tls_conn *c)
{
	int r;

	uv_timer_stop(&c->timer);
	tls_set_state(c, TLS_S_OPEN);
	r = mbedtls_ssl_get_max_out_record_payload(&c->ssl);
	c->rec_max = r > 0 && r <= TLS_RECORD_MAX ? (size_t)r : TLS_RECORD_MAX;
	r = mbedtls_ssl_get_record_expansion(&c->ssl);
	c->rec_overhead = r > 0 && r <= TLS_RECORD_OVERHEAD_MAX ? (size_t)r : TLS_RECORD_OVERHEAD_MAX;
	log_debug("tls %s: TLS 1.2 with %s%s%s", c->peer, tls_conn_cipher(c),
	    c->cn_status == 0 ? ", peer CN " : "", c->cn_status == 0 ? c->cn : "");
	c->hs_reported = true;
	c->opened = true;
	if (!c->user_closed)
		c->cb.on_handshake(c->ctx, 0);
}

/* The peer's close_notify: answer with ours, as TLS asks, and close. */
static void
tls_peer_closed(struct tls_conn *c)
{
	c->peer_closed = true;
	c->reason = 0;
	tls_why(c, "the peer closed the connection");
	log_debug("tls %s: %s", c->peer, c->why);
	(void)mbedtls_ssl_close_notify(&c->ssl);
	tls_set_state(c, TLS_S_CLOSING);
	c->linger = false;
	uv_timer_start(&c->timer, tls_timer_cb, c->cfg->handshake_timeout_ms, 0);
}

static void
tls_read_records(struct tls_conn *c)
{
	/* One record's plaintext; on the stack so that idle connections hold none. */
	uint8_t pt[TLS_RECORD_MAX];
	char text[TLS_WHY_MAX];
	int r, alert;

	while (c->state == TLS_S_OPEN && !c->paused && !c->user_closed) {
		r = mbedtls_ssl_read(&c->ssl, pt, sizeof(pt));
		if (r > 0) {
			c->cb.on_data(c->ctx, pt, (size_t)r);
			continue;
		}
		switch (r) {
		case MBEDTLS_ERR_SSL_WANT_READ:
			return;
		case MBEDTLS_ERR_SSL_WANT_WRITE:
			c->mbedtls_blocked = true;
			return;
		case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
			tls_peer_closed(c);
			return;
		case 0:
		case MBEDTLS_ERR_SSL_CONN_EOF:
			tls_transport_error(c, UV_EOF, "receiving");
			return;
		case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
			alert = tls_last_alert(c);
			tls_why(c, "the peer ended the connection with alert %s (%d)",
			    tls_alert_name(alert), alert);
			log_warn("TLS with %s failed: %s; its log says why", c->peer, c->why);
			tls_fail(c, -EPROTO, false);
			return;
		default:
			tls_why(c, "%s", tls_mbedtls_text(r, text, sizeof(text)));
			log_warn("TLS with %s failed: %s; the peer sent records that do not decrypt or "
			    "parse", c->peer, c->why);
			tls_fail(c, -EPROTO, true);
			return;
		}
	}
}

/* Closing after tls_conn_close: read and drop until the peer closes too. */
static void
tls_drain_closing(struct tls_conn *c)
{
	uint8_t sink[TLS_RECORD_MAX];
	int r;

	while (c->state == TLS_S_CLOSING) {
		r = mbedtls_ssl_read(&c->ssl, sink, sizeof(sink));
		if (r > 0)
			continue;      /* the caller closed: nobody wants these bytes */
		if (r == MBEDTLS_ERR_SSL_WANT_READ)
			return;
		if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
			c->mbedtls_blocked = true;
			return;
		}
		/* close_notify, EOF or garbage: the peer is done either way. */
		tls_close_now(c);
		return;
	}
}

/* After mbedtls ran: send what it wrote, read as wanted, let go of an empty receive buffer. */
static void
tls_settle(struct tls_conn *c)
{
	if (c->state == TLS_S_CLOSED || tls_flush(c) != 0 || c->state == TLS_S_CLOSED)
		return;
	if (c->state == TLS_S_CLOSING) {
		tls_closing_progress(c);
		if (c->state == TLS_S_CLOSED)
			return;
	}
	tls_update_reading(c);
	if (c->rx != NULL && c->rx_off == c->rx_len) {
		/* Most connections are idle most of the time: they keep no receive buffer. */
		free(c->rx);
		c->rx = NULL;
		c->rx_off = c->rx_len = 0;
	}
}

/* Runs mbedtls as far as the bytes received allow. */
static void
tls_drive(struct tls_conn *c)
{
	int r;

	if (c->state == TLS_S_HANDSHAKE) {
		r = mbedtls_ssl_handshake(&c->ssl);
		if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
			c->mbedtls_blocked = true;
		} else if (r == 0) {
			tls_handshake_done(c);
		} else if (r != MBEDTLS_ERR_SSL_WANT_READ) {
			tls_handshake_failed(c, r);
			return;
		}
	}
	if (c->state == TLS_S_OPEN) {
		tls_read_records(c);
	} else if (c->state == TLS_S_CLOSING && c->discard) {
		/* mbedtls failed: it must not see more input. */
		c->rx_off = c->rx_len = 0;
		if (c->eof)
			tls_close_now(c);
	} else if (c->state == TLS_S_CLOSING && c->linger) {
		tls_drain_closing(c);
	}
	tls_settle(c);
}

static void
tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct tls_conn *c = s->data;
	size_t n;

	(void)b;
	if (nread == 0 || c->state == TLS_S_CLOSED)
		return;
	if (nread == UV_ENOBUFS) {
		tls_why(c, "out of memory for the receive buffer");
		log_error("tls %s: %s", c->peer, c->why);
		tls_fail(c, -ENOMEM, false);
		return;
	}
	if (nread == UV_EOF) {
		c->eof = true;
		uv_read_stop(s);
		c->reading = false;
		tls_drive(c);
		return;
	}
	if (nread < 0) {
		tls_transport_error(c, (int)nread, "receiving failed");
		return;
	}
	if (c->nfirst < TLS_FIRST_BYTES) {
		n = TLS_FIRST_BYTES - c->nfirst < (size_t)nread ? TLS_FIRST_BYTES - c->nfirst : (size_t)nread;
		memcpy(c->first + c->nfirst, c->rx + c->rx_len, n);
		c->nfirst += n;
	}
	c->rx_len += (size_t)nread;
	c->rx_total += (uint64_t)nread;
	tls_drive(c);
}

static void
tls_timer_cb(uv_timer_t *t)
{
	struct tls_conn *c = t->data;
	bool server = c->cfg->role == TLS_ROLE_SERVER;

	switch (c->state) {
	case TLS_S_CONNECTING:
		tls_why(c, "connecting timed out after %" PRIu64 " ms", c->cfg->handshake_timeout_ms);
		log_warn("TLS connection to %s failed: %s; check that the relay runs and that the "
		    "network lets its port through", c->peer, c->why);
		tls_fail(c, -ETIMEDOUT, false);
		break;
	case TLS_S_HANDSHAKE:
		tls_why(c, "TLS handshake timed out after %" PRIu64 " ms", c->cfg->handshake_timeout_ms);
		if (c->rx_total == 0)
			log_warn("TLS handshake with %s failed: %s; the peer sent nothing: %s", c->peer,
			    c->why, server ? "is it a TLS client (not a port scanner or plain TCP check)?" :
			    "is it a TLS server, and does the network pass its replies?");
		else
			log_warn("TLS handshake with %s failed: %s; the peer stopped answering "
			    "mid-handshake", c->peer, c->why);
		tls_fail(c, -ETIMEDOUT, false);
		break;
	case TLS_S_OPEN:
		tls_drive(c);   /* deferred by tls_conn_resume_reading */
		break;
	case TLS_S_CLOSING:
		log_debug("tls %s: the peer did not finish closing in time; dropping the connection",
		    c->peer);
		tls_close_now(c);
		break;
	default:
		break;
	}
}

static void
tls_connect_cb(uv_connect_t *req, int status)
{
	struct tls_conn *c = TLS_CONN_OF(req, connect_req);

	if (status == UV_ECANCELED || c->state == TLS_S_CLOSED)
		return;
	if (status < 0) {
		tls_why(c, "cannot connect: %s", uv_strerror(status));
		log_debug("tls %s: %s", c->peer, c->why);
		tls_fail(c, status, false);
		return;
	}
	tls_set_state(c, TLS_S_HANDSHAKE);
	tls_drive(c);   /* sends ClientHello and starts reading */
}

/* ---------------------------------------------------------------- construction */

static int
tls_conn_new(uv_loop_t *loop, struct tls_config *cfg, const struct tls_conn_callbacks *cb,
    void *ctx, struct tls_conn **out)
{
	struct tls_conn *c;
	int r;

	if (loop == NULL || cfg == NULL || cb == NULL || cb->on_handshake == NULL ||
	    cb->on_data == NULL || cb->on_close == NULL)
		return -EINVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, &cfg->conf) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return -ENOMEM;
	}
	if ((r = uv_tcp_init(loop, &c->tcp)) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return r;
	}
	uv_timer_init(loop, &c->timer);
	c->handles = 2;
	c->tcp.data = c;
	c->timer.data = c;
	c->cfg = tls_config_ref(cfg);
	c->cb = *cb;
	c->ctx = ctx;
	c->state = TLS_S_CONNECTING;
	c->cn_status = -ENOENT;
	c->rec_max = TLS_RECORD_MAX;
	c->rec_overhead = TLS_RECORD_OVERHEAD_MAX;
	buf_init(&c->tx_fill, cfg->send_max + TLS_SEND_SLACK);
	buf_init(&c->tx_busy, cfg->send_max + TLS_SEND_SLACK);
	mbedtls_ssl_set_bio(&c->ssl, c, tls_bio_send, tls_bio_recv, NULL);
	if (cfg->verify_peer)
		mbedtls_ssl_set_verify(&c->ssl, tls_verify_cb, c);
	snprintf(c->peer, sizeof(c->peer), "unknown peer");
	*out = c;
	return 0;
}

/* Gives up a connection that was never handed out: no callbacks, freed from the loop. */
static void
tls_conn_discard(struct tls_conn *c)
{
	c->notify_close = false;
	tls_close_now(c);
}

static bool
tls_server_name_ok(const char *name)
{
	return name != NULL && name[0] != '\0' && strlen(name) <= TLS_SERVER_NAME_MAX;
}

/* Client: what the relay's certificate must be valid for. */
static int
tls_set_server_name(struct tls_conn *c, const char *name)
{
	size_t len = strlen(name);

	if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
		name++;
		len -= 2;
	}
	memcpy(c->server_name, name, len);
	c->server_name[len] = '\0';
	if (inet_pton(AF_INET, c->server_name, c->ip) == 1) {
		c->ip_len = 4;
		c->name_is_ip = true;
	} else if (inet_pton(AF_INET6, c->server_name, c->ip) == 1) {
		c->ip_len = 16;
		c->name_is_ip = true;
	}
	/*
	 * An IP address is checked by tls_verify_cb and is never sent as SNI
	 * (RFC 6066 allows host names only); a name goes to mbedtls for both.
	 */
	if (!c->name_is_ip && mbedtls_ssl_set_hostname(&c->ssl, c->server_name) != 0)
		return -ENOMEM;
	return 0;
}

/* "name (addr)" for a client, "addr" when the name is that address. */
static void
tls_set_peer(struct tls_conn *c, const struct sockaddr_storage *ss)
{
	char addr[INET6_ADDRSTRLEN + 16];
	char ip[INET6_ADDRSTRLEN];

	tls_format_addr(ss, addr, sizeof(addr));
	if (c->cfg->role == TLS_ROLE_CLIENT && c->server_name[0] != '\0') {
		ip[0] = '\0';
		if (ss->ss_family == AF_INET)
			uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof(ip));
		else if (ss->ss_family == AF_INET6)
			uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof(ip));
		if (strcmp(ip, c->server_name) != 0) {
			snprintf(c->peer, sizeof(c->peer), "%s (%s)", c->server_name, addr);
			return;
		}
	}
	snprintf(c->peer, sizeof(c->peer), "%s", addr);
}

/*
 * Starts the handshake on a connected socket, without running callbacks:
 * a failure is returned for the constructor to report.
 */
static int
tls_start(struct tls_conn *c)
{
	struct sockaddr_storage ss;
	int len = (int)sizeof(ss), r;
	uv_buf_t b;
	struct buf tmp;

	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		tls_set_peer(c, &ss);
	uv_timer_start(&c->timer, tls_timer_cb, c->cfg->handshake_timeout_ms, 0);
	if ((r = uv_read_start((uv_stream_t *)&c->tcp, tls_alloc_cb, tls_read_cb)) != 0)
		return r;
	c->reading = true;
	if (c->cfg->role == TLS_ROLE_SERVER)
		return 0;
	/* The client speaks first: queue ClientHello and send it. */
	r = mbedtls_ssl_handshake(&c->ssl);
	if (r != MBEDTLS_ERR_SSL_WANT_READ)
		return r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EPROTO;
	tmp = c->tx_busy;
	c->tx_busy = c->tx_fill;
	c->tx_fill = tmp;
	b = uv_buf_init((char *)c->tx_busy.data, (unsigned)c->tx_busy.len);
	if ((r = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, tls_write_cb)) != 0)
		return r;
	c->writing = true;
	return 0;
}

int
tls_conn_accept(uv_loop_t *loop, struct tls_config *cfg, uv_stream_t *server,
    const struct tls_conn_callbacks *cb, void *ctx, struct tls_conn **out)
{
	struct tls_conn *c;
	int r;

	if (cfg == NULL || server == NULL || cfg->role != TLS_ROLE_SERVER)
		return -EINVAL;
	if ((r = tls_conn_new(loop, cfg, cb, ctx, &c)) != 0)
		return r;
	c->state = TLS_S_HANDSHAKE;
	if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) != 0 || (r = tls_start(c)) != 0) {
		tls_conn_discard(c);
		return r;
	}
	c->notify_close = true;
	*out = c;
	return 0;
}

int
tls_conn_open(uv_loop_t *loop, struct tls_config *cfg, uv_os_sock_t sock,
    const char *server_name, const struct tls_conn_callbacks *cb, void *ctx,
    struct tls_conn **out)
{
	struct tls_conn *c;
	int r;

	if (cfg == NULL || (cfg->role == TLS_ROLE_CLIENT && !tls_server_name_ok(server_name))) {
		close(sock);
		return -EINVAL;
	}
	if ((r = tls_conn_new(loop, cfg, cb, ctx, &c)) != 0) {
		close(sock);
		return r;
	}
	c->state = TLS_S_HANDSHAKE;
	if (cfg->role == TLS_ROLE_CLIENT && (r = tls_set_server_name(c, server_name)) != 0) {
		close(sock);
		tls_conn_discard(c);
		return r;
	}
	if ((r = uv_tcp_open(&c->tcp, sock)) != 0) {
		close(sock);
		tls_conn_discard(c);
		return r;
	}
	if ((r = tls_start(c)) != 0) {
		tls_conn_discard(c);
		return r;
	}
	c->notify_close = true;
	*out = c;
	return 0;
}

int
tls_conn_connect(uv_loop_t *loop, struct tls_config *cfg, const struct sockaddr *addr,
    const char *server_name, const struct tls_conn_callbacks *cb, void *ctx,
    struct tls_conn **out)
{
	struct sockaddr_storage ss;
	struct tls_conn *c;
	int r;

	if (cfg == NULL || addr == NULL || cfg->role != TLS_ROLE_CLIENT ||
	    !tls_server_name_ok(server_name))
		return -EINVAL;
	memset(&ss, 0, sizeof(ss));
	if (addr->sa_family == AF_INET)
		memcpy(&ss, addr, sizeof(struct sockaddr_in));
	else if (addr->sa_family == AF_INET6)
		memcpy(&ss, addr, sizeof(struct sockaddr_in6));
	else
		return -EAFNOSUPPORT;
	if ((r = tls_conn_new(loop, cfg, cb, ctx, &c)) != 0)
		return r;
	if ((r = tls_set_server_name(c, server_name)) != 0) {
		tls_conn_discard(c);
		return r;
	}
	tls_set_peer(c, &ss);
	if ((r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, tls_connect_cb)) != 0) {
		tls_conn_discard(c);
		return r;
	}
	uv_timer_start(&c->timer, tls_timer_cb, c->cfg->handshake_timeout_ms, 0);
	c->notify_close = true;
	*out = c;
	return 0;
}

/* ---------------------------------------------------------------- the rest of the API */

void
tls_conn_pause_reading(struct tls_conn *c)
{
	c->paused = true;
	if (c->state == TLS_S_OPEN)
		tls_update_reading(c);
}

void
tls_conn_resume_reading(struct tls_conn *c)
{
	if (!c->paused)
		return;
	c->paused = false;
	if (c->state != TLS_S_OPEN || c->user_closed)
		return;
	tls_update_reading(c);
	/* Bytes already here are delivered from the loop: never inside this call. */
	if (c->state == TLS_S_OPEN &&
	    (c->rx != NULL || c->eof || mbedtls_ssl_check_pending(&c->ssl)))
		uv_timer_start(&c->timer, tls_timer_cb, 0, 0);
}

void
tls_conn_close(struct tls_conn *c)
{
	if (c == NULL || c->user_closed)
		return;
	c->user_closed = true;
	if (c->failing || c->state == TLS_S_CLOSING || c->state == TLS_S_CLOSED)
		return;
	if (c->state != TLS_S_OPEN) {
		tls_why(c, "closed before the TLS handshake ended");
		tls_close_now(c);
		return;
	}
	tls_why(c, "closed by us");
	(void)mbedtls_ssl_close_notify(&c->ssl);
	tls_set_state(c, TLS_S_CLOSING);
	c->linger = true;
	uv_timer_start(&c->timer, tls_timer_cb, c->cfg->handshake_timeout_ms, 0);
	tls_settle(c);
}

void
tls_conn_abort(struct tls_conn *c, int reason)
{
	if (c == NULL || c->state == TLS_S_CLOSED)
		return;
	c->user_closed = true;
	if (c->reason == 0) {
		c->reason = reason;
		tls_why(c, "aborted by us: %s", tls_strerror(reason));
	}
	tls_close_now(c);
}

int
tls_conn_peer_cn(const struct tls_conn *c, char *out, size_t outlen)
{
	size_t len;

	if (!c->opened)
		return -ENOTCONN;
	if (!c->have_leaf)
		return -ENOENT;
	if (c->cn_status != 0)
		return c->cn_status;
	len = strlen(c->cn);
	if (len + 1 > outlen)
		return -ENAMETOOLONG;
	memcpy(out, c->cn, len + 1);
	return 0;
}

const char *
tls_conn_peer(const struct tls_conn *c)
{
	return c->peer;
}

const char *
tls_conn_cipher(const struct tls_conn *c)
{
	const char *name;

	if (!c->opened)
		return "none";
	name = mbedtls_ssl_get_ciphersuite(&c->ssl);
	return name != NULL ? name : "none";
}

const char *
tls_conn_reason(const struct tls_conn *c)
{
	return c->why;
}

uv_tcp_t *
tls_conn_tcp(struct tls_conn *c)
{
	return &c->tcp;
}

const char *
tls_strerror(int err)
{
	switch (err) {
	case 0:
		return "closed cleanly";
	case -ETIMEDOUT:
		return "TLS handshake timed out";
	case -EKEYREJECTED:
		return "certificate refused";
	case -EPROTO:
		return "TLS protocol error";
	case -ECONNRESET:
		return "connection closed without TLS close_notify";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}
