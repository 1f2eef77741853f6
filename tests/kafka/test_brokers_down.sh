#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only: two of the three brokers down (too few in-sync
# replicas, no controller quorum) while the agent ships, then back. The
# relay answers RETRY and says in /health why it is degraded, the agent
# keeps every event in its spool, and once the brokers are back everything
# arrives, with no restart.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

need_cluster "stops two of its brokers"
start_kafka
make_certs
run=$$
stream=down_$run
topic=logs.$stream
kafka_topic "$topic" 3

nginx_lines "$T/app.log" 20000 0
watched_pipeline "$stream" "$T/app.log"
expect_delivered "$topic" "$T/app.log" 120 "before the outage"

bash "$CLUSTER_SH" kill "$LOGFERRY_KAFKA_CLUSTER" 2 || fail "kill of broker 2 failed"
bash "$CLUSTER_SH" kill "$LOGFERRY_KAFKA_CLUSTER" 3 || fail "kill of broker 3 failed"
nginx_lines "$T/app.log" 30000 20000

# The relay says why; the agent keeps the events.
wait_health "$mport" '"degraded".*Kafka deliveries failing: .' 120 &&
	pass "relay /health with two brokers down: $LF_HEALTH" ||
	fail "relay /health with two brokers down: ${LF_HEALTH:-no answer}"
for _ in $(seq 240); do
	[ "$(metric "$amport" logferry_shipper_acks_retry_total)" -ge 1 ] 2>/dev/null && break
	sleep 0.5
done
r=$(metric "$amport" logferry_shipper_acks_retry_total)
held=$(metric "$amport" logferry_spool_events)
[ "${r:-0}" -ge 1 ] && [ "${held:-0}" -gt 0 ] &&
	pass "the agent was answered RETRY $r times and holds $held events in its spool" ||
	fail "during the outage: acks_retry ${r:-?}, spool events ${held:-?}"

bash "$CLUSTER_SH" up "$LOGFERRY_KAFKA_CLUSTER" 2 || fail "broker 2 did not come back"
bash "$CLUSTER_SH" up "$LOGFERRY_KAFKA_CLUSTER" 3 || fail "broker 3 did not come back"
expect_delivered "$topic" "$T/app.log" 240 "two brokers down and back: nothing lost"
wait_health "$mport" '"status":"ok"' 120 && pass "relay /health is ok again: $LF_HEALTH" ||
	fail "relay /health after the outage: $LF_HEALTH"
stop_agent "$agent"
finish
