#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only: a topic whose max.message.bytes (64 KiB) is smaller than
# some events (100 KB lines). The broker refuses those records for good;
# with kafka.dead_letter_topic they go there, with their error and original
# topic; without it they are counted and acknowledged. Either way the spool
# drains and the events after them flow: nothing blocks behind a refusal.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

if [ -z "${LOGFERRY_TEST_KAFKA:-}" ]; then
	echo "skip: needs a real cluster (the mock enforces no max.message.bytes)"
	exit 77
fi
start_kafka
make_certs
run=$$

# big_lines FILE N FIRST: N lines of 150 KB that no codec shrinks below
# 64 KiB (the broker checks record batches as compressed), ids FIRST..
big_lines() {
	python3 -c 'import base64, os, sys
n, first = int(sys.argv[2]), int(sys.argv[3])
with open(sys.argv[1], "a") as f:
    for i in range(first, first + n):
        f.write("big %d %s\n" % (i, base64.b64encode(os.urandom(112500)).decode()))' "$1" "$2" "$3"
}
# mixed FILE: small lines, big ones, then small ones after them.
mixed() {
	nginx_lines "$1" 2000 0
	big_lines "$1" 5 0
	nginx_lines "$1" 2000 2000
	big_lines "$1" 5 5
	nginx_lines "$1" 2000 4000
}
# run_case NAME EXTRA_KAFKA_YAML: relay + agent over one mixed file; sets port vars.
run_case() {
	local name=$1
	stream=limit_${run}_$name
	topic=logs.$stream
	kafka_topic "$topic" 3 max.message.bytes=65536
	port=$(free_port)
	mport=$(free_port)
	amport=$(free_port)
	relay_config "relay-$name" "$port" "metrics: {listen: $LF_IP:$mport}" >/dev/null
	# Records batched at most as large as the topic allows: a refusal then
	# takes the large record only, not the small ones packed with it.
	sed -i -e "s|^  properties: {|$2  properties: {batch.size: \"65536\", |" "$T/relay-$name.yaml"
	start_relay "relay-$name" "$T/relay-$name.yaml"
	relay=$LF_PID
	mixed "$T/$name.log"
	acfg=$(agent_config "agent-$name" web-01 web-01 "$stream" "$T/$name.log" "$port")
	sed -i 's/format: nginx_combined/format: raw/' "$acfg"
	echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
	start "agent-$name" "$LOGFERRY_AGENT" -c "$acfg"
	agent=$LF_PID
}

# ---- with a dead-letter topic ----
dead=logs.dead_$run
kafka_topic "$dead" 3
run_case dlq "  dead_letter_topic: $dead\\n"
grep '^big ' "$T/dlq.log" >"$T/dlq.big"
grep -v '^big ' "$T/dlq.log" >"$T/dlq.small"
expect_delivered "$topic" "$T/dlq.small" 120 "every small line, those after the refused ones too, in $topic"
expect_delivered "$dead" "$T/dlq.big" 120 "every line over the topic's max.message.bytes in the dead-letter topic"
kafka_dump "$dead" "$T/dead.dump"
n=$(grep -c "logferry-original-topic=$topic" "$T/dead.dump")
e=$(grep -c 'logferry-error=MSG_SIZE_TOO_LARGE' "$T/dead.dump")
[ "$n" -eq 10 ] && [ "$e" -eq 10 ] && pass "dead-letter records carry their original topic and error" ||
	fail "dead-letter headers: $n with logferry-original-topic, $e with the error; first: $(head -c 300 "$T/dead.dump")"
for _ in $(seq 120); do
	[ "$(metric "$amport" logferry_spool_events)" = 0 ] && break
	sleep 0.5
done
[ "$(metric "$amport" logferry_spool_events)" = 0 ] && pass "the agent's spool drained" ||
	fail "the spool still holds $(metric "$amport" logferry_spool_events) events"
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay-dlq did not stop"

# ---- without one: counted and acknowledged ----
run_case plain ""
grep -v '^big ' "$T/plain.log" >"$T/plain.small"
expect_delivered "$topic" "$T/plain.small" 120 "without a dead-letter topic, every small line arrives"
for _ in $(seq 120); do
	[ "$(metric "$amport" logferry_spool_events)" = 0 ] && break
	sleep 0.5
done
refused=$(metric "$mport" logferry_kafka_refused_by_broker_total)
[ "$(metric "$amport" logferry_spool_events)" = 0 ] && [ "${refused:-0}" -eq 10 ] &&
	pass "the 10 refused records are counted ($refused) and acknowledged: the spool drained" ||
	fail "refused_by_broker ${refused:-?} (want 10), spool events $(metric "$amport" logferry_spool_events)"
grep -q 'refused' "$T/relay-plain.log" && pass "relay log: $(grep -m1 'refused' "$T/relay-plain.log" | cut -d' ' -f3- | cut -c1-200)" ||
	fail "the relay did not log the refusal"
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay-plain did not stop"
finish
