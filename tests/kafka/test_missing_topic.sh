#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only (auto-creation off): the relay routes events to a topic
# that does not exist. It says so clearly (log, metric, /health), nothing
# leaves the agent's spool, and once the topic is created everything flows
# without a restart.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

if [ -z "${LOGFERRY_TEST_KAFKA:-}" ]; then
	echo "skip: needs a real cluster with topic auto-creation off (the mock creates every topic)"
	exit 77
fi
start_kafka
make_certs
run=$$
stream=missing_$run
topic=logs.$stream

nginx_lines "$T/app.log" 5000 0
watched_pipeline "$stream" "$T/app.log"

wait_log "$T/relay.log" "topic $topic does not exist" 60 &&
	pass "relay log: $(grep -m1 "topic $topic does not exist" "$T/relay.log" | cut -d' ' -f3- | cut -c1-200)" ||
	fail "the relay did not log that $topic does not exist: $(grep -m3 -i "$topic" "$T/relay.log")"
wait_health "$mport" "\"degraded\".*topic $topic does not exist" 10 &&
	pass "relay /health: $LF_HEALTH" ||
	fail "relay /health does not say the topic is missing: ${LF_HEALTH:-no answer}"
n=$(metric "$mport" 'logferry_kafka_errors_total{error="unknown_topic"}')
[ "${n:-0}" -ge 1 ] && pass "logferry_kafka_errors_total{error=\"unknown_topic\"} $n" ||
	fail "no unknown_topic error counted (${n:-none})"
held=$(metric "$amport" logferry_spool_events)
ok=$(metric "$amport" logferry_shipper_acks_ok_total)
[ "${held:-0}" -eq 5000 ] && [ "${ok:-1}" -eq 0 ] &&
	pass "the agent keeps all 5000 events in its spool, no batch acknowledged" ||
	fail "while the topic is missing: spool events ${held:-?}, acks ok ${ok:-?}"

kafka_topic "$topic" 3
expect_delivered "$topic" "$T/app.log" 120 "once the topic exists, everything flows without a restart"
kill -0 "$relay" 2>/dev/null || fail "the relay exited"
stop_agent "$agent"
finish
