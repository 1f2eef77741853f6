#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The http source exposed beyond the host (issue 20), with the real agent
# and curl: a tokens file (mode 0640) whose good token is answered 200 and
# its events carry the sender's name in the field `sender`; no token and an
# unknown one are answered 401 with WWW-Authenticate, counted, and nothing
# of theirs reaches the spool; a sender over its rate limit is answered 429
# with Retry-After; SIGHUP reads the tokens file again, so that a new token
# works and a removed one gets 401.
#
# All of it over HTTPS (tls: cert_file, key_file; curl --cacert): plain
# HTTP to the port and a client silent past handshake_timeout are counted
# as failed handshakes and closed; SIGHUP loads the certificate again for
# new connections.
#
# Client certificates (a second source, tls.verify_client, allowed_cns, no
# tokens): an allowed CN is answered 200 and is its events' sender; a CN
# not allowed gets 403, counted; no certificate, or one of another CA, fails
# the handshake.
. "$(dirname "$0")/lib.sh"

need curl openssl
make_certs
cp "$T/certs/relay-chain.crt" "$T/server.crt"
cp "$T/certs/relay.key" "$T/server.key"

TOK_A=$(printf 'a%.0s' $(seq 32))
TOK_B=$(printf 'b%.0s' $(seq 32))
TOK_C=$(printf 'c%.0s' $(seq 32))
TOK_R=$(printf 'r%.0s' $(seq 32))
printf '# senders of app_events\n%s app-a\n%s app-b\n%s app-r\n' "$TOK_A" "$TOK_B" "$TOK_R" \
	>"$T/tokens"
chmod 0640 "$T/tokens"
MPORT=$(free_port)
cat >"$T/agent.yaml" <<YAML
id: test-agent
data_dir: $T/agent.data
spool: {commit_interval: 5ms}
sources:
  - name: app
    type: http
    listen: $LF_IP:$(free_port)
    auth:
      tokens_file: $T/tokens
      events_per_second: 1
      events_burst: 10
    tls:
      cert_file: $T/server.crt
      key_file: $T/server.key
      handshake_timeout: 1s
  - name: mtls
    type: http
    listen: $LF_IP:$(free_port)
    tls:
      cert_file: $T/certs/relay-chain.crt
      key_file: $T/certs/relay.key
      ca_file: $T/certs/ca.crt
      verify_client: true
      allowed_cns: ['web-0[1]', 'billing-*']
metrics: {listen: $LF_IP:$MPORT}
YAML
cfg=$T/agent.yaml

"$LOGFERRY_AGENT" -c "$cfg" --check >"$T/check.out" 2>&1 && pass "--check loads the tokens file" ||
	fail "--check: $(cat "$T/check.out")"

start agent "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent.log" "source app: listening on https://" 10 || { fail "the agent did not listen"; cat "$T/agent.log"; finish; }
URL=$(sed -n 's|.*source app: listening on \(https://[^ ]*\).*|\1|p' "$T/agent.log" | head -1)
HOSTPORT=${URL#https://}
grep -q "source app: 3 token(s) loaded from $T/tokens" "$T/agent.log" && pass "the tokens are loaded" ||
	fail "no 'token(s) loaded' line"

# post BODY [CURL-ARGS...]: prints the status; the answer in $T/resp, headers in $T/resp.h.
post() {
	local body=$1
	shift
	curl -sS --max-time 10 --cacert "$T/certs/ca.crt" -o "$T/resp" -D "$T/resp.h" -w '%{http_code}' \
		-H 'Content-Type: application/x-ndjson' --data-binary "$body" "$@" "$URL/v1/events"
}

# expect WHAT WANT-STATUS GOT-STATUS [HEADER-PATTERN]
expect() {
	if [ "$3" = "$2" ] && { [ -z "${4:-}" ] || grep -Eqi -- "$4" "$T/resp.h"; }; then
		pass "$1"
	else
		fail "$1: status $3 (want $2), body: $(head -c 300 "$T/resp" 2>/dev/null)"
	fi
}

accepted=0
code=$(post $'{"n":1}\n{"n":2,"sender":"root"}' -H "Authorization: Bearer $TOK_A")
expect "a good token is answered 200" 200 "$code"
accepted=$((accepted + 2))
code=$(post '{"n":3}' -H "Authorization: bearer $TOK_B")
expect "another sender's token, the scheme in lower case, is answered 200" 200 "$code"
accepted=$((accepted + 1))

code=$(post '{"bad":"none"}')
expect "no token is answered 401 with WWW-Authenticate" 401 "$code" '^WWW-Authenticate: Bearer'
code=$(post '{"bad":"unknown"}' -H "Authorization: Bearer $TOK_C")
expect "an unknown token is answered 401, invalid_token" 401 "$code" \
	'^WWW-Authenticate: Bearer .*error="invalid_token"'
code=$(post '{"bad":"basic"}' -u user:password)
expect "Basic authorization is answered 401" 401 "$code" '^WWW-Authenticate: Bearer'
wait_metric "$MPORT" 'logferry_http_unauthorized_total{source="app"}' -eq 3 10 &&
	pass "the 401s are counted" || fail "logferry_http_unauthorized_total"
[ "$(metric "$MPORT" 'logferry_http_body_bytes_total{source="app"}')" = 38 ] &&
	pass "no body of a 401 was read" ||
	fail "body bytes read: $(metric "$MPORT" 'logferry_http_body_bytes_total{source="app"}'), want 38"
grep -q "$TOK_C" "$T/agent.log" && fail "the agent logged a token"

# Client certificates.
wait_log "$T/agent.log" "source mtls: listening on https://" 10 || fail "mtls did not listen"
MURL=$(sed -n 's|.*source mtls: listening on \(https://[^ ]*\).*|\1|p' "$T/agent.log" | head -1)
mpost() {
	curl -sS --max-time 10 --cacert "$T/certs/ca.crt" -o "$T/resp" -D "$T/resp.h" \
		-w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$1" "${@:2}" \
		"$MURL/v1/events" 2>"$T/curl.err"
}
code=$(mpost '{"m":1}' --cert "$T/certs/web-01-chain.crt" --key "$T/certs/web-01.key")
expect "a client certificate with an allowed CN is answered 200" 200 "$code"
accepted=$((accepted + 1))
code=$(mpost '{"bad":"cn"}' --cert "$T/certs/web-02-chain.crt" --key "$T/certs/web-02.key")
expect "a CN not allowed is answered 403" 403 "$code"
grep -q "web-02" "$T/resp" || fail "403 body: $(cat "$T/resp")"
code=$(mpost '{"bad":"nocert"}')
[ "$code" = 000 ] && pass "no client certificate fails the handshake" || fail "no certificate: $code"
code=$(mpost '{"bad":"intruder"}' --cert "$T/certs/intruder-chain.crt" --key "$T/certs/intruder.key")
[ "$code" = 000 ] && pass "a certificate of another CA fails the handshake" ||
	fail "intruder: $code"
wait_metric "$MPORT" 'logferry_http_forbidden_total{source="mtls"}' -eq 1 10 &&
	pass "the 403 is counted" || fail "logferry_http_forbidden_total"
wait_metric "$MPORT" 'logferry_http_tls_handshakes_failed_total{source="mtls"}' -ge 2 10 &&
	pass "the failed handshakes are counted" || fail "mtls handshakes failed"

# Not TLS: plain HTTP, and a client that says nothing.
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOK_A" \
	-H 'Content-Type: application/json' --data '{"plain":1}' "http://$HOSTPORT/v1/events")
[ "$code" != 200 ] && pass "plain HTTP to the HTTPS port is refused ($code)" ||
	fail "plain HTTP answered 200"
python3 - "${HOSTPORT%:*}" "${HOSTPORT##*:}" <<'PY' && pass "a silent client is closed after handshake_timeout" ||
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.settimeout(20)
assert s.recv(100) == b''
PY
	fail "a silent client was not closed"
wait_metric "$MPORT" 'logferry_http_tls_handshakes_failed_total{source="app"}' -ge 2 10 &&
	pass "both are counted as failed handshakes" || fail "logferry_http_tls_handshakes_failed_total"

# app-r: 10 events at once, then single events until refused (a slow machine
# may refill one in between).
body=$(seq 1 10 | sed 's/.*/{"r":&}/')
code=$(post "$body" -H "Authorization: Bearer $TOK_R")
expect "a sender's burst is answered 200" 200 "$code"
accepted=$((accepted + 10))
for _ in 1 2 3 4 5; do
	code=$(post '{"r":11}' -H "Authorization: Bearer $TOK_R")
	[ "$code" = 200 ] || break
	accepted=$((accepted + 1))
done
expect "a sender over its rate is answered 429 with Retry-After: 1" 429 "$code" '^Retry-After: 1'
grep -q 'over its rate limit' "$T/resp" || fail "429 body: $(cat "$T/resp")"
code=$(post '{"n":3.5}' -H "Authorization: Bearer $TOK_B")
expect "another sender is not limited by it" 200 "$code"
accepted=$((accepted + 1))
wait_metric "$MPORT" 'logferry_http_rate_limited_total{source="app"}' -eq 1 10 &&
	pass "the 429 is counted" || fail "logferry_http_rate_limited_total"

# SIGHUP: app-b's token is removed, app-c's added.
printf '%s app-a\n%s app-c\n' "$TOK_A" "$TOK_C" >"$T/tokens"
kill -HUP "$pid"
wait_log "$T/agent.log" "SIGHUP: applied" 20 || fail "the reload was not applied"
grep -q "source app: 2 token(s) loaded from $T/tokens" <(sed -n '/SIGHUP/,$p' "$T/agent.log") ||
	fail "SIGHUP did not read the tokens file again"
code=$(post '{"n":4}' -H "Authorization: Bearer $TOK_C")
expect "after SIGHUP a new token is answered 200" 200 "$code"
accepted=$((accepted + 1))
code=$(post '{"bad":"removed"}' -H "Authorization: Bearer $TOK_B")
expect "after SIGHUP a removed token is answered 401" 401 "$code"

# The certificate reloads on SIGHUP for new connections.
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1"; }
served() {
	openssl s_client -connect "$HOSTPORT" -CAfile "$T/certs/ca.crt" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256
}
[ "$(served)" = "$(fingerprint "$T/certs/relay.crt")" ] && pass "the certificate is served" ||
	fail "served: $(served)"
cp "$T/certs/relay-rsa-chain.crt" "$T/server.crt"
cp "$T/certs/relay-rsa.key" "$T/server.key"
applied=$(grep -c "SIGHUP: applied" "$T/agent.log")
kill -HUP "$pid"
wait_log "$T/agent.log" "source app: TLS certificate reloaded" 20 || fail "no TLS reload"
[ "$(served)" = "$(fingerprint "$T/certs/relay-rsa.crt")" ] &&
	pass "after SIGHUP new connections get the new certificate" || fail "served: $(served)"
code=$(post '{"n":4.5}' -H "Authorization: Bearer $TOK_C")
expect "and are served" 200 "$code"
accepted=$((accepted + 1))

# A tokens file every user may read refuses the reload; the tokens stay.
chmod 0644 "$T/tokens"
kill -HUP "$pid"
wait_log "$T/agent.log" "auth.tokens_file: .*readable by every user" 20 &&
	pass "a tokens file readable by everyone refuses the reload, naming the key" ||
	fail "no error for a world-readable tokens file"
code=$(post '{"n":5}' -H "Authorization: Bearer $TOK_C")
expect "the tokens stay as they were" 200 "$code"
accepted=$((accepted + 1))
chmod 0640 "$T/tokens"

stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump >"$T/dump.json" || fail "spool dump failed"
if python3 - "$T/dump.json" "$accepted" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1], 'rb')]
assert len(evs) == int(sys.argv[2]), '%d events in the spool, %s answered 200' % (len(evs), sys.argv[2])
assert not any('bad' in e['fields'] for e in evs), 'an event of a refused request was spooled'
assert [(e['fields']['m'], e['fields']['sender']) for e in evs if 'm' in e['fields']] == [(1, 'web-01')]
assert [(e['fields']['n'], e['fields']['sender']) for e in evs if 'n' in e['fields']] == \
    [(1, 'app-a'), (2, 'app-a'), (3, 'app-b'), (3.5, 'app-b'), (4, 'app-c'), (4.5, 'app-c'), (5, 'app-c')], evs
r = [e['fields']['r'] for e in evs if 'r' in e['fields']]
assert r[:10] == list(range(1, 11)) and set(r[10:]) <= {11}, r
assert all(e['fields']['sender'] == 'app-r' for e in evs if 'r' in e['fields'])
PY
then
	pass "the spool holds only the accepted events, each with its sender"
else
	fail "spool contents"
fi
finish
