#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Syslog over TLS (RFC 5425, issue 20 items 1 and 4) with the real agent:
# util-linux logger writes octet-counted RFC 5424 and RFC 3164 frames
# (logger has no TLS: its --stderr copy of what it sends, octet-counted),
# and openssl s_client carries them over TLS to a tls:// listener. The
# spool holds each message once, with its parsed fields. A plain TCP
# sender and a client that never starts its handshake are closed and
# counted as failed handshakes, and nothing of theirs is spooled; a
# connection beyond max_connections is refused and counted. SIGHUP with
# a new certificate: a new connection is served the new one.
. "$(dirname "$0")/lib.sh"

need logger openssl
make_certs
cp "$T/certs/relay-chain.crt" "$T/server.crt"
cp "$T/certs/relay.key" "$T/server.key"

CFG=$T/agent.yaml
MPORT=$(free_port)
TPORT=$(free_port)
cat >"$CFG" <<YAML
id: test-agent
data_dir: $T/data
spool: {commit_interval: 5ms}
sources:
  - name: sys
    type: syslog
    listen: [tls://$LF_IP:$TPORT]
    max_connections: 2
    tls:
      cert_file: $T/server.crt
      key_file: $T/server.key
      handshake_timeout: 1s
metrics: {listen: $LF_IP:$MPORT}
YAML

"$LOGFERRY_AGENT" -c "$CFG" --check >"$T/check.out" 2>&1 && pass "--check accepts a tls:// listener" ||
	fail "--check: $(cat "$T/check.out")"

start agent "$LOGFERRY_AGENT" -c "$CFG"
pid=$LF_PID
wait_log "$T/agent.log" "source sys: listening on tls://" 10 ||
	{ fail "the agent did not listen"; cat "$T/agent.log"; finish; }

# frames ID...: octet-counted frames from logger, one per ID: RFC 5424 for
# ids ending in 5, else RFC 3164. logger sends them to a port nobody reads
# (UDP: nothing waits); its --stderr copy ends each frame with a newline,
# which octet counting does not have.
DISCARD=$(free_port)
frames() {
	local id rfc
	for id in "$@"; do
		case $id in *5) rfc=--rfc5424 ;; *) rfc=--rfc3164 ;; esac
		logger --udp --server "$LF_IP" --port "$DISCARD" --octet-count --stderr $rfc \
			--msgid "$id" -p local3.warning -t "app-$id" "msg-$id over TLS" 2>&1 >/dev/null |
			tr -d '\n' || fail "logger failed"
	done
}
# send: stdin over TLS to the listener, verifying its certificate.
send() {
	openssl s_client -quiet -no_ign_eof -connect "$LF_IP:$TPORT" -CAfile "$T/certs/ca.crt" \
		-verify_return_error >/dev/null 2>"$T/s_client.err"
}

frames a5 a3 b5 >"$T/frames"
head -c 8 "$T/frames" | grep -Eq '^[0-9]+ <' && pass "logger writes octet-counted frames" ||
	fail "frames: $(head -c 80 "$T/frames")"
send <"$T/frames" && pass "openssl s_client sends them over TLS" || fail "s_client: $(cat "$T/s_client.err")"
wait_metric "$MPORT" 'logferry_syslog_messages_total{source="sys"}' -eq 3 10 &&
	pass "the three messages are spooled" || fail "messages"

# Not TLS: logger in plain text, and a client that says nothing.
logger --tcp --server "$LF_IP" --port "$TPORT" --octet-count -t app-plain "msg-plain" 2>/dev/null
python3 - "$LF_IP" "$TPORT" <<'PY' && pass "a silent client is closed after handshake_timeout" ||
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.settimeout(20)
assert s.recv(100) == b''
PY
	fail "a silent client was not closed"
wait_metric "$MPORT" 'logferry_syslog_tls_handshakes_failed_total{source="sys"}' -ge 2 10 &&
	pass "a plain TCP sender and a silent client are counted as failed handshakes" ||
	fail "logferry_syslog_tls_handshakes_failed_total"
grep -q "TLS handshake with [0-9.]*:[0-9]* failed: the peer does not speak TLS" "$T/agent.log" &&
	pass "the plain sender's failed handshake is logged, with a hint" ||
	fail "no TLS failure in the log"

# max_connections (2): two silent clients hold both, a third is refused
# (the agent accepts in the order the clients connected).
wait_metric "$MPORT" 'logferry_syslog_connections_open{source="sys"}' -eq 0 10 || fail "connections_open"
python3 - "$LF_IP" "$TPORT" <<'PY' && pass "beyond max_connections a connection is closed at once" ||
import socket, sys
addr = (sys.argv[1], int(sys.argv[2]))
held = [socket.create_connection(addr) for _ in range(2)]
third = socket.create_connection(addr)
third.settimeout(0.9)  # answered before handshake_timeout (1s) would close it
assert third.recv(100) == b''
PY
	fail "the third connection was not refused at once"
wait_metric "$MPORT" 'logferry_syslog_connections_refused_total{source="sys"}' -ge 1 10 &&
	pass "the refused connection is counted" || fail "connections_refused"

# SIGHUP with a new certificate: new connections are served it.
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1"; }
served() {
	openssl s_client -connect "$LF_IP:$TPORT" -CAfile "$T/certs/ca.crt" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256
}
[ "$(served)" = "$(fingerprint "$T/certs/relay.crt")" ] && pass "the certificate is served" ||
	fail "served: $(served)"
cp "$T/certs/relay-rsa-chain.crt" "$T/server.crt"
cp "$T/certs/relay-rsa.key" "$T/server.key"
kill -HUP "$pid"
wait_log "$T/agent.log" "source sys: TLS certificate reloaded" 20 || fail "no TLS reload"
[ "$(served)" = "$(fingerprint "$T/certs/relay-rsa.crt")" ] &&
	pass "after SIGHUP new connections get the new certificate" || fail "served: $(served)"
frames c3 >"$T/frames2"
send <"$T/frames2" || fail "s_client after SIGHUP: $(cat "$T/s_client.err")"
wait_metric "$MPORT" 'logferry_syslog_messages_total{source="sys"}' -eq 4 10 &&
	pass "and their messages are spooled" || fail "messages after SIGHUP"

stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$CFG" --spool-dump >"$T/dump.json" || fail "spool dump failed"
if python3 - "$T/dump.json" "tls://$LF_IP:$TPORT" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1], 'rb')]
by = {}
for e in evs:
    f = e['fields']
    assert f.get('message', '').startswith('msg-'), 'unexpected event %r' % e
    id = f['message'][4:6]
    assert id not in by, 'duplicate %s' % id
    assert f['message'] == 'msg-%s over TLS' % id, f
    assert e['source'] == sys.argv[2], e['source']
    assert f.get('app_name') == 'app-' + id, f
    assert (f.get('facility'), f.get('severity')) == (19, 4), f
    assert f.get('msgid') == (id if id.endswith('5') else None), f
    assert 'parse_error' not in f, f
    by[id] = e
assert sorted(by) == ['a3', 'a5', 'b5', 'c3'], sorted(by)
PY
then
	pass "the spool holds each message once, with its parsed fields, and nothing of the plain sender"
else
	fail "spool content"
fi
finish
