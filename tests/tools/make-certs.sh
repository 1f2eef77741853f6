#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make-certs.sh OUTDIR - create the throwaway PKI that logferry's integration
# tests use, with nothing but the openssl CLI.
#
#   ca.crt/.key            root CA "logferry test root CA" (ECDSA P-256)
#   int.crt/.key           intermediate CA signed by the root (pathlen 0)
#   relay.crt/.key         server leaf, CN=relay, ECDSA, signed by int
#   relay-rsa.crt/.key     same as relay but RSA 2048
#   web-01.crt/.key        client leaf, CN=web-01, ECDSA, signed by int
#   web-02.crt/.key        client leaf, CN=web-02, RSA 2048, signed by int
#   expired.crt/.key       client leaf, CN=expired, signed by int, valid only
#                          2020-01-01..2021-01-01
#   other-ca.crt/.key      an unrelated root CA
#   intruder.crt/.key      client leaf, CN=intruder, signed by other-ca
#   NAME-chain.crt         NAME.crt followed by its issuer (int.crt, or
#                          other-ca.crt for intruder): what a peer presents
#   ca-bundle.crt          the trust anchor for agents and relay (= ca.crt)
#
# Server leaves carry SAN DNS:localhost, IP:127.0.0.1 (and IP:$LF_CERT_IP
# when set) and EKU serverAuth;
# client leaves carry SAN DNS:<name> and EKU clientAuth.  Good certificates
# are valid for 10 years from now.  Keys are unencrypted PKCS#8, mode 0600.
# Existing files of the same names in OUTDIR are replaced.
#
# Quiet on success; on failure prints the failing openssl command and its
# output to stderr and exits non-zero.
set -eu

prog=make-certs.sh
leaf_days=3650
# CAs outlive their leaves by a little so no chain ends before its leaf.
ca_days=3660

die() {
	echo "$prog: $*" >&2
	exit 1
}

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $prog OUTDIR" >&2
	exit 2
fi
outdir=$1

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"
mkdir -p "$outdir" || die "cannot create $outdir"

# Build everything in a scratch directory inside OUTDIR, then move the
# results in: a failed run never leaves a half-made set behind, and the
# final mv stays on one filesystem.
work=$(mktemp -d "$outdir/.make-certs.XXXXXX") || die "mktemp failed in $outdir"
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM
log=$work/openssl.log

# Run openssl with its chatter captured; show it only if the command fails.
ossl() {
	if ! openssl "$@" >"$log" 2>&1; then
		echo "$prog: openssl $* failed:" >&2
		cat "$log" >&2
		exit 1
	fi
}

# genkey NAME ec|rsa
genkey() {
	case $2 in
	ec) set -- "$1" -algorithm EC -pkeyopt ec_paramgen_curve:P-256 ;;
	rsa) set -- "$1" -algorithm RSA -pkeyopt rsa_keygen_bits:2048 ;;
	*) die "genkey: unknown key type $2" ;;
	esac
	key_name=$1
	shift
	# The key must never exist with looser permissions, not even briefly.
	(umask 077 && ossl genpkey "$@" -out "$work/$key_name.key") || exit 1
}

# openssl req insists on a config with a distinguished_name section even when
# -subj supplies the name; the extension sections live in the same file.
cat >"$work/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_int ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

# ECDHE-ECDSA needs only digitalSignature; RSA leaves also get
# keyEncipherment so static-RSA key exchange is not ruled out by the cert.
[ server_ec ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ server_rsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_ec ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:${ENV::LEAF_CN}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_rsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = DNS:${ENV::LEAF_CN}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# Only "openssl ca" can back-date a certificate in OpenSSL 3.0 (x509 -req
# has no -not_before), so the expired leaf goes through this minimal CA.
[ ca ]
default_ca = backdate_ca

[ backdate_ca ]
dir = ${ENV::CA_DIR}
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none

[ policy_any ]
commonName = supplied
EOF
# LF_CERT_IP: one more loopback address for the server leaves (the
# integration tests give each test its own, see lib.sh).
if [ -n "${LF_CERT_IP:-}" ]; then
	sed -i "s/^subjectAltName = DNS:localhost, IP:127.0.0.1\$/&, IP:$LF_CERT_IP/" "$work/openssl.cnf"
fi
cnf=$work/openssl.cnf
# Referenced by the config; set for every openssl call because OpenSSL
# expands ${ENV::...} when it loads the file, and fails on unset variables.
LEAF_CN=unused
CA_DIR=$work/ca
export LEAF_CN CA_DIR

# selfsigned NAME "CN"
selfsigned() {
	genkey "$1" ec
	ossl req -config "$cnf" -new -x509 -sha256 -days "$ca_days" \
		-key "$work/$1.key" -subj "/CN=$2" -extensions v3_root \
		-out "$work/$1.crt"
}

# signed NAME ec|rsa "CN" EXTSECTION ISSUER DAYS
# x509 -req picks a random serial when given no serial file (OpenSSL >= 3.0
# behaviour, and the default in 1.1.1 without -CAserial), so no .srl files.
signed() {
	genkey "$1" "$2"
	ossl req -config "$cnf" -new -key "$work/$1.key" -subj "/CN=$3" \
		-out "$work/$1.csr"
	LEAF_CN=$3
	ossl x509 -req -sha256 -days "$6" -in "$work/$1.csr" \
		-CA "$work/$5.crt" -CAkey "$work/$5.key" \
		-extfile "$cnf" -extensions "$4" -out "$work/$1.crt"
}

# chain NAME ISSUER
chain() {
	cat "$work/$1.crt" "$work/$2.crt" >"$work/$1-chain.crt" ||
		die "cannot write $1-chain.crt"
}

# backdated NAME "CN": a client leaf whose validity ended years ago.
backdated() {
	genkey "$1" ec
	ossl req -config "$cnf" -new -key "$work/$1.key" -subj "/CN=$2" \
		-out "$work/$1.csr"
	mkdir "$CA_DIR" || die "cannot create $CA_DIR"
	: >"$CA_DIR/index.txt" || die "cannot create $CA_DIR/index.txt"
	ossl rand -hex -out "$CA_DIR/serial" 16
	LEAF_CN=$2
	ossl ca -batch -config "$cnf" -notext \
		-cert "$work/int.crt" -keyfile "$work/int.key" \
		-startdate 20200101000000Z -enddate 20210101000000Z \
		-extensions client_ec -in "$work/$1.csr" -out "$work/$1.crt"
}

selfsigned ca "logferry test root CA"
signed int ec "logferry test intermediate CA" v3_int ca "$ca_days"

signed relay ec relay server_ec int "$leaf_days"
signed relay-rsa rsa relay server_rsa int "$leaf_days"
signed web-01 ec web-01 client_ec int "$leaf_days"
signed web-02 rsa web-02 client_rsa int "$leaf_days"
backdated expired expired
for name in relay relay-rsa web-01 web-02 expired; do
	chain "$name" int
done

selfsigned other-ca "logferry test other CA"
signed intruder ec intruder client_ec other-ca "$leaf_days"
chain intruder other-ca

cp "$work/ca.crt" "$work/ca-bundle.crt" || die "cannot write ca-bundle.crt"

for f in "$work"/*.crt; do
	chmod 0644 "$f" || die "chmod $f failed"
	mv -f "$f" "$outdir/" || die "cannot move $(basename "$f") into $outdir"
done
for f in "$work"/*.key; do
	chmod 0600 "$f" || die "chmod $f failed"
	mv -f "$f" "$outdir/" || die "cannot move $(basename "$f") into $outdir"
done
