#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Certificate rotation without a restart (docs/architecture.md "TLS"): on SIGHUP the
# relay loads its certificate and key again; new connections use them and
# open connections go on undisturbed. A broken certificate on SIGHUP keeps
# the running one. The agent reloads its own for its next connection.
. "$(dirname "$0")/lib.sh"

need kcat openssl
make_certs
start_kafka
run=$(date +%s)$$
stream=reload_$run
kafka_topic "logs.$stream" 16

# The relay starts with the ECDSA certificate, in files an operator replaces.
cp "$T/certs/relay-chain.crt" "$T/certs/relay-live.crt"
cp "$T/certs/relay.key" "$T/certs/relay-live.key"
port=$(free_port)
rcfg=$(relay_config relay-r "$port")
sed -i -e "s|$T/certs/relay-chain.crt|$T/certs/relay-live.crt|" -e "s|$T/certs/relay.key|$T/certs/relay-live.key|" "$rcfg"
start_relay relay "$rcfg"
relay=$LF_PID

: >"$T/a.log"
acfg=$(agent_config agent-a web-01 web-01 "$stream" "$T/a.log" "$port")
start agent-a "$LOGFERRY_AGENT" -c "$acfg"
agent_a=$LF_PID
nginx_lines "$T/a.log" 1000 1
wait_log "$T/agent-a.log" "with TLS-ECDHE-ECDSA-" && pass "agent A connects with the ECDSA certificate" ||
	fail "agent A: $(tail -3 "$T/agent-a.log")"

# Rotate to the RSA certificate and key.
cp "$T/certs/relay-rsa-chain.crt" "$T/certs/relay-live.crt"
cp "$T/certs/relay-rsa.key" "$T/certs/relay-live.key"
kill -HUP "$relay"
wait_log "$T/relay.log" "SIGHUP: TLS reloaded from" && pass "the relay reloads its certificate on SIGHUP" ||
	fail "no reload: $(tail -3 "$T/relay.log")"

: >"$T/b.log"
bcfg=$(agent_config agent-b web-02 web-02 "$stream" "$T/b.log" "$port")
start agent-b "$LOGFERRY_AGENT" -c "$bcfg"
agent_b=$LF_PID
nginx_lines "$T/b.log" 1000 100000
wait_log "$T/agent-b.log" "with TLS-ECDHE-RSA-" && pass "a new agent gets the RSA certificate" ||
	fail "agent B: $(grep -m1 'connected to' "$T/agent-b.log")"

nginx_lines "$T/a.log" 1000 2000
cat "$T/a.log" "$T/b.log" >"$T/all.log"
expect_delivered "logs.$stream" "$T/all.log" 180 "both agents delivered across the reload"
[ "$(grep -c 'agent web-01 connected from' "$T/relay.log")" = 1 ] &&
	! grep -q 'agent web-01 at .* disconnected' "$T/relay.log" &&
	pass "agent A's connection stayed up through the reload" || fail "agent A was disconnected"

# A broken certificate on SIGHUP: logged, and the running one stays.
echo "not a certificate" >"$T/certs/relay-live.crt"
kill -HUP "$relay"
# The configuration check reads the files (issue 16, item 6): it names the
# key and line, and the running configuration stays.
wait_log "$T/relay.log" "SIGHUP: .*:[0-9]+: tls.cert_file: .*relay-live.crt: " &&
	wait_log "$T/relay.log" "SIGHUP: .* is not valid; the running configuration stays" 5 &&
	pass "a broken certificate is refused and the running one stays: $(grep -m1 'tls.cert_file' "$T/relay.log" | cut -c1-200)" ||
	fail "broken reload: $(tail -3 "$T/relay.log")"
kill -TERM "$agent_b"
wait_exit "$agent_b"
start agent-b2 "$LOGFERRY_AGENT" -c "$bcfg"
agent_b=$LF_PID
wait_log "$T/agent-b2.log" "with TLS-ECDHE-RSA-" && pass "after the broken reload, agents still connect (RSA)" ||
	fail "agent B after the broken reload: $(tail -3 "$T/agent-b2.log")"

# The agent reloads its own certificate for its next connection.
kill -HUP "$agent_a"
wait_log "$T/agent-a.log" "SIGHUP: TLS reloaded from" && pass "the agent reloads its certificate on SIGHUP" ||
	fail "agent reload: $(tail -3 "$T/agent-a.log")"

stop_agent "$agent_a"
stop_agent "$agent_b"
kill -TERM "$relay"
wait_exit "$relay" || fail "relay did not stop"
[ "${LF_RC:-}" = 0 ] || fail "relay exited ${LF_RC:-?}"
finish
