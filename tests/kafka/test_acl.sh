#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only, authorizer on: the relay's principal may not write to
# the topic its events route to (TOPIC_AUTHORIZATION_FAILED). The relay
# holds and reports: batches are answered RETRY, /health and a metric say
# which topic it may not write, and the agent keeps every event. Once the
# ACL is granted everything flows, without a restart: nothing is lost,
# silently or otherwise.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

need_cluster "its SASL_SSL listener, users and authorizer"
start_kafka
make_certs
run=$$
stream=acl_$run
topic=logs.$stream
kafka_topic "$topic" 3

port=$(free_port)
mport=$(free_port)
amport=$(free_port)
rcfg=$(relay_sasl_config relay "$port" "$mport" PLAIN "$RELAY_PASSWORD_FILE")
start_relay relay "$rcfg"
relay=$LF_PID
nginx_lines "$T/app.log" 3000 0
acfg=$(agent_config agent web-01 web-01 "$stream" "$T/app.log" "$port")
echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
start agent "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID

wait_health "$mport" "\"degraded\".*not authorized to write to topic $topic" 60 &&
	pass "relay /health without WRITE: $LF_HEALTH" ||
	fail "relay /health without WRITE: ${LF_HEALTH:-no answer}"
n=$(metric "$mport" 'logferry_kafka_errors_total{error="topic_authorization"}')
[ "${n:-0}" -ge 1 ] && pass "authorization failures counted: $n" || fail "no topic_authorization error counted (${n:-none})"
grep -q "not authorized to write to topic $topic" "$T/relay.log" &&
	pass "relay log: $(grep -m1 'not authorized' "$T/relay.log" | cut -d' ' -f3- | cut -c1-220)" ||
	fail "the relay log does not name the topic it may not write"
held=$(metric "$amport" logferry_spool_events)
ok=$(metric "$amport" logferry_shipper_acks_ok_total)
[ "${held:-0}" -eq 3000 ] && [ "${ok:-1}" -eq 0 ] &&
	pass "held, not dropped: the agent keeps its 3000 events, no batch acknowledged" ||
	fail "without WRITE: spool events ${held:-?}, acks ok ${ok:-?}"

"$KAFKA_ADMIN" -b "$KAFKA_BOOT" allow User:relay write "$topic" || fail "cannot grant WRITE on $topic"
"$KAFKA_ADMIN" -b "$KAFKA_BOOT" allow User:relay describe "$topic" || fail "cannot grant DESCRIBE on $topic"
expect_delivered "$topic" "$T/app.log" 120 "once WRITE is granted, everything flows without a restart"
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay did not stop"
finish
