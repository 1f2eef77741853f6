#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only: the relay produces over SASL_SSL, its password read
# from kafka.sasl_password_file (never from the YAML). Good credentials
# deliver; wrong ones turn /health degraded with the reason and lose
# nothing (the agent keeps every event until a relay with the right
# password delivers them). SCRAM-SHA-512 against Kafka 4 needs librdkafka
# 2.6.1 or later: with an older one the relay says so at start, and still
# loses nothing.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

need_cluster "its SASL_SSL listener and users"
start_kafka
make_certs
run=$$
prefix=logs.sasl_$run
"$KAFKA_ADMIN" -b "$KAFKA_BOOT" allow User:relay write "$prefix" || fail "cannot grant WRITE on $prefix"
"$KAFKA_ADMIN" -b "$KAFKA_BOOT" allow User:relay describe "$prefix" || fail "cannot grant DESCRIBE on $prefix"

# ---- PLAIN over TLS, the right password: delivered ----
stream=sasl_${run}_good
kafka_topic "logs.$stream" 3
port=$(free_port)
mport=$(free_port)
rcfg=$(relay_sasl_config relay-good "$port" "$mport" PLAIN "$RELAY_PASSWORD_FILE")
grep -q "$(cat "$RELAY_PASSWORD_FILE")" "$rcfg" && fail "the password is in the relay's YAML"
start_relay relay-good "$rcfg"
relay=$LF_PID
nginx_lines "$T/good.log" 3000 0
acfg=$(agent_config agent-good web-01 web-01 "$stream" "$T/good.log" "$port")
start agent-good "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
expect_delivered "logs.$stream" "$T/good.log" 120 "SASL_SSL PLAIN with the password from sasl_password_file"
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay-good did not stop"

# ---- a wrong password: degraded, and nothing lost ----
stream=sasl_${run}_bad
kafka_topic "logs.$stream" 3
printf 'not-the-password\n' >"$T/wrong.password"
chmod 600 "$T/wrong.password"
port=$(free_port)
mport=$(free_port)
amport=$(free_port)
rcfg=$(relay_sasl_config relay-bad "$port" "$mport" PLAIN "$T/wrong.password")
start_relay relay-bad "$rcfg"
relay=$LF_PID
nginx_lines "$T/bad.log" 3000 0
acfg=$(agent_config agent-bad web-01 web-01 "$stream" "$T/bad.log" "$port")
echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
start agent-bad "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
wait_health "$mport" '"degraded".*authentication' 60 &&
	pass "relay /health with a wrong password: $LF_HEALTH" ||
	fail "relay /health with a wrong password: ${LF_HEALTH:-no answer}"
n=$(metric "$mport" 'logferry_kafka_errors_total{error="authentication"}')
[ "${n:-0}" -ge 1 ] && pass "authentication failures counted: $n" || fail "no authentication error counted (${n:-none})"
held=$(metric "$amport" logferry_spool_events)
[ "${held:-0}" -eq 3000 ] && pass "the agent keeps its 3000 events" || fail "spool events ${held:-?}, want 3000"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay-bad did not stop"
rcfg=$(relay_sasl_config relay-fixed "$port" "$mport" PLAIN "$RELAY_PASSWORD_FILE")
start_relay relay-fixed "$rcfg"
relay=$LF_PID
expect_delivered "logs.$stream" "$T/bad.log" 120 "after the password is fixed: nothing lost"
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay-fixed did not stop"

# ---- SCRAM-SHA-512 ----
stream=sasl_${run}_scram
kafka_topic "logs.$stream" 3
port=$(free_port)
mport=$(free_port)
amport=$(free_port)
rcfg=$(relay_sasl_config relay-scram "$port" "$mport" SCRAM-SHA-512 "$RELAY_PASSWORD_FILE")
start_relay relay-scram "$rcfg"
relay=$LF_PID
nginx_lines "$T/scram.log" 3000 0
acfg=$(agent_config agent-scram web-01 web-01 "$stream" "$T/scram.log" "$port")
echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
start agent-scram "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
if grep -q 'SCRAM.*needs librdkafka 2.6.1' "$T/relay-scram.log"; then
	pass "the relay warns: $(grep -m1 'SCRAM' "$T/relay-scram.log" | cut -d' ' -f3- | cut -c1-220)"
	if wait_health "$mport" '"degraded".*authentication' 60; then
		held=$(metric "$amport" logferry_spool_events)
		[ "${held:-0}" -eq 3000 ] &&
			pass "SCRAM with this librdkafka: degraded ($LF_HEALTH), the agent keeps its 3000 events" ||
			fail "SCRAM: spool events ${held:-?}, want 3000"
	else
		fail "SCRAM with this librdkafka: /health ${LF_HEALTH:-no answer}"
	fi
else
	expect_delivered "logs.$stream" "$T/scram.log" 120 "SASL_SSL SCRAM-SHA-512"
fi
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay-scram did not stop"
finish
