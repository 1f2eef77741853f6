#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only (auto-creation off): with kafka.dead_letter_topic set,
# events routed to a topic that does not exist go to the dead-letter topic,
# with the reason and the topic they were meant for, instead of holding the
# agent's whole spool behind one stream; a rate-limited warning says so and
# the missing topic is never created. Events of another stream, to a topic
# that exists, flow as usual on the same connection.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

if [ -z "${LOGFERRY_TEST_KAFKA:-}" ]; then
	echo "skip: needs a real cluster with topic auto-creation off (the mock creates every topic)"
	exit 77
fi
command -v kcat >/dev/null || { echo "skip: kcat not installed"; exit 77; }
start_kafka
make_certs
run=$$
stream=nodlq_$run
topic=logs.$stream
dead=dead_$run
kafka_topic "$dead" 3
kafka_topic "logs.ok_$run" 3

port=$(free_port)
mport=$(free_port)
amport=$(free_port)
rcfg=$(relay_config relay "$port" "metrics: {listen: $LF_IP:$mport}")
sed -i "s/^  delivery_timeout: 5s$/&\n  dead_letter_topic: $dead/" "$rcfg"
grep -q "dead_letter_topic: $dead" "$rcfg" || fail "could not set dead_letter_topic in $rcfg"
start_relay relay "$rcfg"
relay=$LF_PID

nginx_lines "$T/app.log" 2000 0
nginx_lines "$T/ok.log" 1000 100000
acfg=$(agent_config agent web-01 web-01 "$stream" "$T/app.log" "$port")
sed -i "s|^sources:$|&\n  - {name: ok_$run, type: file, paths: [$T/ok.log], format: nginx_combined}|" "$acfg"
echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
"$LOGFERRY_AGENT" --check -c "$acfg" >"$T/check.out" 2>&1 || fail "agent config: $(cat "$T/check.out")"
start agent "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID

expect_delivered "logs.ok_$run" "$T/ok.log" 120 "the stream whose topic exists flows"
wait_metric "$amport" logferry_spool_events -eq 0 120 &&
	pass "the agent's spool drains: every event acknowledged, none held for the missing topic" ||
	fail "the agent still holds $(metric "$amport" logferry_spool_events) events"
expect_delivered "$dead" "$T/app.log" 60 "the events for the missing topic are in the dead-letter topic, each once"
kafka_dump "$dead" "$T/dead.dump"
n=$(grep -c "logferry-error=[^,]*[Uu]nknown topic[^,]*,logferry-original-topic=$topic,logferry-original-stream=$stream" "$T/dead.dump")
[ "$n" -eq 2000 ] &&
	pass "each dead letter says why and which topic and stream it was meant for: $(head -1 "$T/dead.dump" | cut -f1 | cut -c1-240)" ||
	fail "$n of 2000 dead letters carry the reason and the original topic: $(head -1 "$T/dead.dump" | cut -f1 | cut -c1-300)"
grep -q "topic $topic does not exist.*meanwhile its records go to the dead-letter topic $dead" "$T/relay.log" &&
	pass "relay log: $(grep -m1 'meanwhile its records go' "$T/relay.log" | cut -d' ' -f3- | cut -c1-240)" ||
	fail "the relay did not warn that $topic's records go to $dead: $(grep -m2 "$topic" "$T/relay.log" | cut -c1-300)"
w=$(grep -c "meanwhile its records go to the dead-letter topic" "$T/relay.log")
# The log's own limit: 10 lines per call site per 5 s, the rest counted.
[ "$w" -ge 1 ] && [ "$w" -lt 200 ] && pass "the warning is rate-limited: $w lines for 2000 records" ||
	fail "the warning was logged $w times for 2000 records"
v=$(metric "$mport" 'logferry_kafka_dead_letters_total{reason="broker_refused"}')
[ "${v:-0}" -ge 2000 ] && pass "logferry_kafka_dead_letters_total{reason=\"broker_refused\"} $v" ||
	fail "dead letters counted: ${v:-absent}"
kcat -L -b "$KAFKA_BOOT" >"$T/topics" 2>&1
grep -q "topic \"$topic\"" "$T/topics" && fail "the missing topic $topic was created" ||
	pass "the missing topic was not created"

stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay did not stop"
finish
