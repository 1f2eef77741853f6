#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# --check catches what would fail at start (issue 16, item 6): a key that is
# not the certificate's, an agent id that is not its certificate's common
# name, a CA file that is not one, a data_dir that cannot be written, a
# listen host that is no host. Each is FILE:LINE: key: what, and exit 2.
. "${srcdir:-.}/tests/integration/lib.sh"

make_certs
AGENT_CONF=$(example_config agent)
RELAY_CONF=$(example_config relay)

# expect_refused NAME BIN CONF PATTERN: --check exits 2 and prints a line
# matching the extended regex PATTERN (which names CONF:LINE).
expect_refused() {
	local name=$1 bin=$2 conf=$3 pattern=$4 out rc
	out=$("$bin" -c "$conf" --check 2>&1)
	rc=$?
	[ $rc -eq 2 ] && echo "$out" | grep -Eq -- "$pattern" &&
		pass "$name: $(echo "$out" | grep -E -m1 -- "$pattern" | sed "s|$T/||g")" ||
		fail "$name: rc=$rc, expected a line matching '$pattern' in:
$out"
}

line_of() { grep -n -m1 -- "$2" "$1" | cut -d: -f1; }

# ---- agent ----
sed -e "s|key_file: $T/certs/web-01.key|key_file: $T/certs/web-02.key|" "$AGENT_CONF" >"$T/a-key.yaml"
expect_refused "agent key that is not the certificate's" "$LOGFERRY_AGENT" "$T/a-key.yaml" \
	"^$T/a-key.yaml:$(line_of "$T/a-key.yaml" key_file): relays.tls.key_file: .*web-02.key does not hold the key of the first certificate in cert_file"

sed -e "s|^id: web-01 |id: web-02 |" "$AGENT_CONF" >"$T/a-cn.yaml"
expect_refused "agent id that is not its certificate's CN" "$LOGFERRY_AGENT" "$T/a-cn.yaml" \
	"^$T/a-cn.yaml:$(line_of "$T/a-cn.yaml" '^id:'): id: 'web-02' is not the common name of relays.tls.cert_file .*\('web-01'\)"

sed -e "/^id: /d" "$AGENT_CONF" >"$T/a-noid.yaml"
expect_refused "agent without id: the host name is not its certificate's CN" "$LOGFERRY_AGENT" \
	"$T/a-noid.yaml" "^$T/a-noid.yaml:[0-9]+: id: not set, so the host name '$(hostname)' .* set id to 'web-01' or issue a certificate for '$(hostname)'"

echo "this is not a certificate" >"$T/garbage.crt"
sed -e "s|ca_file: $T/certs/ca.crt|ca_file: $T/garbage.crt|" "$AGENT_CONF" >"$T/a-ca.yaml"
expect_refused "agent CA file that is garbage" "$LOGFERRY_AGENT" "$T/a-ca.yaml" \
	"^$T/a-ca.yaml:$(line_of "$T/a-ca.yaml" ca_file): relays.tls.ca_file: .*garbage.crt: "

# A path under a regular file: no user, root included, can create it.
sed -e "s|^data_dir: .*|data_dir: /etc/passwd/logferry|" "$AGENT_CONF" >"$T/a-dir.yaml"
expect_refused "agent data_dir that cannot be created" "$LOGFERRY_AGENT" "$T/a-dir.yaml" \
	"^$T/a-dir.yaml:$(line_of "$T/a-dir.yaml" ^data_dir): data_dir: cannot create '/etc/passwd/logferry': .*/etc/passwd.* is not a directory"

# Run as another user: a directory only root may write is refused, and
# --check leaves nothing behind.
mkdir -p "$T/rootonly/data"
chmod 755 "$T/rootonly" "$T/rootonly/data"
chmod 755 "$T" "$T/certs"
chmod 644 "$T"/certs/*
sed -e "s|^data_dir: .*|data_dir: $T/rootonly/data|" "$AGENT_CONF" >"$T/a-ro.yaml"
chmod 644 "$T/a-ro.yaml"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$LOGFERRY_AGENT" -c "$T/a-ro.yaml" --check 2>&1)
	rc=$?
	[ $rc -eq 2 ] && echo "$out" | grep -Eq "^$T/a-ro.yaml:[0-9]+: data_dir: '$T/rootonly/data' is not writable by this user \(nobody\): Permission denied" &&
		pass "agent data_dir not writable by the daemon's user: $(echo "$out" | sed "s|$T/||g" | head -1)" ||
		fail "data_dir not writable: rc=$rc: $out"
	sed -e "s|^data_dir: .*|data_dir: $T/rootonly/data/new|" "$T/a-ro.yaml" >"$T/a-ro2.yaml"
	chmod 644 "$T/a-ro2.yaml"
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$LOGFERRY_AGENT" -c "$T/a-ro2.yaml" --check 2>&1)
	rc=$?
	[ $rc -eq 2 ] && echo "$out" | grep -Eq "data_dir: cannot create '$T/rootonly/data/new': '$T/rootonly/data' is not writable by this user \(nobody\)" &&
		pass "agent data_dir that this user cannot create" || fail "data_dir not creatable: rc=$rc: $out"
else
	echo "skip: not root or no setpriv: the other-user data_dir cases need both"
fi
out=$("$LOGFERRY_AGENT" -c "$AGENT_CONF" --check 2>&1)
[ ! -e "$T/data" ] && pass "--check does not create data_dir" || fail "--check created $T/data: $out"
mkdir -p "$T/data"
"$LOGFERRY_AGENT" -c "$AGENT_CONF" --check >/dev/null 2>&1
[ -z "$(ls -A "$T/data")" ] && pass "--check leaves nothing in data_dir" ||
	fail "--check left $(ls -A "$T/data") in data_dir"

sed -e "s|listen: $LF_IP:\([0-9]*\)$|listen: 'bad host:\1'|" "$AGENT_CONF" >"$T/a-listen.yaml"
expect_refused "agent listen host that is no host" "$LOGFERRY_AGENT" "$T/a-listen.yaml" \
	"^$T/a-listen.yaml:[0-9]+: sources\[3\]\.listen\[0\]: 'bad host' in 'bad host:[0-9]+' is neither an IP address nor a host name"

for host in localhost kafka_1 web-01.example.net. '[::1]' 192.0.2.1; do
	sed -e "s|listen: $LF_IP:\([0-9]*\)$|listen: '$host:\1'|" "$AGENT_CONF" >"$T/a-listen-ok.yaml"
	out=$("$LOGFERRY_AGENT" -c "$T/a-listen-ok.yaml" --check 2>&1) &&
		pass "agent listen host $host passes" || fail "listen host $host refused: $out"
done

# ---- relay ----
sed -e "s|key_file: $T/certs/relay.key|key_file: $T/certs/web-01.key|" "$RELAY_CONF" >"$T/r-key.yaml"
expect_refused "relay key that is not the certificate's" "$LOGFERRY_RELAY" "$T/r-key.yaml" \
	"^$T/r-key.yaml:$(line_of "$T/r-key.yaml" key_file): tls.key_file: .*web-01.key does not hold the key of the first certificate in cert_file"

sed -e "s|ca_file: $T/certs/ca.crt|ca_file: $T/garbage.crt|" "$RELAY_CONF" >"$T/r-ca.yaml"
expect_refused "relay CA file that is garbage" "$LOGFERRY_RELAY" "$T/r-ca.yaml" \
	"^$T/r-ca.yaml:$(line_of "$T/r-ca.yaml" ca_file): tls.ca_file: .*garbage.crt: "

# A client certificate cannot serve: the relay would fail every handshake.
sed -e "s|cert_file: $T/certs/relay-chain.crt|cert_file: $T/certs/web-01-chain.crt|" \
    -e "s|key_file: $T/certs/relay.key|key_file: $T/certs/web-01.key|" "$RELAY_CONF" >"$T/r-eku.yaml"
expect_refused "relay certificate that is not for servers" "$LOGFERRY_RELAY" "$T/r-eku.yaml" \
	"^$T/r-eku.yaml:$(line_of "$T/r-eku.yaml" cert_file): tls.cert_file: .*extendedKeyUsage lacks serverAuth"

sed -e "s|^listen: $LF_IP:|listen: 300.1.2.3:|" "$RELAY_CONF" >"$T/r-listen.yaml"
expect_refused "relay listen host that is no host" "$LOGFERRY_RELAY" "$T/r-listen.yaml" \
	"^$T/r-listen.yaml:$(line_of "$T/r-listen.yaml" ^listen): listen: '300.1.2.3' in '300.1.2.3:[0-9]+' is neither an IP address nor a host name"

# The Kafka client certificate and key in librdkafka's properties.
sed -e "s|properties: {compression.type: lz4}|properties: {compression.type: lz4, security.protocol: ssl, ssl.certificate.location: $T/certs/web-01.crt, ssl.key.location: $T/certs/web-02.key, ssl.ca.location: $T/certs/ca.crt}|" \
    "$RELAY_CONF" >"$T/r-kafka.yaml"
expect_refused "relay Kafka client key that is not its certificate's" "$LOGFERRY_RELAY" "$T/r-kafka.yaml" \
	"^$T/r-kafka.yaml:[0-9]+: kafka.properties.ssl.key.location: .*web-02.key does not hold the key of the first certificate in .*web-01.crt"

# librdkafka also takes a directory of CA certificates: not a file to parse.
sed -e "s|properties: {compression.type: lz4}|properties: {compression.type: lz4, security.protocol: ssl, ssl.certificate.location: $T/certs/web-01.crt, ssl.key.location: $T/certs/web-01.key, ssl.ca.location: $T/certs}|" \
    "$RELAY_CONF" >"$T/r-kafka-dir.yaml"
out=$("$LOGFERRY_RELAY" -c "$T/r-kafka-dir.yaml" --check 2>&1) &&
	pass "relay Kafka client pair with a CA directory passes" || fail "Kafka CA directory refused: $out"

# Both examples still pass.
for pair in "logferry-agent $LOGFERRY_AGENT $AGENT_CONF" "logferry-relay $LOGFERRY_RELAY $RELAY_CONF"; do
	set -- $pair
	out=$("$2" -c "$3" --check 2>&1) && pass "$1 --check accepts the example" || fail "$1 example: $out"
done

finish
