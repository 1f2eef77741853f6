#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Relay routing (issue 18 item 2), agent -> relay -> mock Kafka: mobile
# engagement events (JSON lines) routed by kafka.routes to one topic per
# event_type, keyed by user_id; an event without event_type goes to the
# fallback through ${fields.event_type:-unknown}; an event_type that
# renders a topic Kafka refuses ("a/b", 300 bytes) is never renamed nor
# produced there but goes to the dead-letter topic with the reason in its
# headers; kafka.allowed_topics refuses a topic to one agent and allows it
# to another. --check warns when templates read fields without a
# dead-letter topic.
. "$(dirname "$0")/lib.sh"

need kcat openssl curl
make_certs
start_kafka
run=$(date +%s)$$
m=m$run
dead=dead_$run
for t in click view purchase unknown; do
	kafka_topic "$m.$t" 1
done
kafka_topic "$dead" 1

port=$(free_port)
mport=$(free_port)
rcfg=$(relay_config relay "$port" "metrics: {listen: $LF_IP:$mport}")
# Appended to the kafka section of relay_config's file (its last key is properties).
sed -i "s/^  delivery_timeout: 5s$/&\n  dead_letter_topic: $dead\n  routes:\n    - match: {stream: \"mobile*\"}\n      topic: \"$m.\${fields.event_type:-unknown}\"\n      key: \"\${fields.user_id:-none}\"\n  allowed_topics:\n    - {agents: web-01, topics: [\"$m.*\"]}\n    - {agents: \"web-0[2-9]\", topics: [\"$m.click\"]}/" "$rcfg"

# ---- --check: fields in a topic template without a dead-letter topic ----
grep -v "dead_letter_topic" "$rcfg" >"$T/nodlq.yaml"
out=$("$LOGFERRY_RELAY" --check -c "$T/nodlq.yaml" 2>&1)
if echo "$out" | grep -q "topic templates use \${fields.\*} and kafka.dead_letter_topic is not set"; then
	pass "--check warns that events with a bad topic would be dropped without a dead-letter topic"
else
	fail "--check said: $out"
fi
out=$("$LOGFERRY_RELAY" --check -c "$rcfg" 2>&1) && ! echo "$out" | grep -q "dead_letter_topic is not set" &&
	pass "--check is quiet with a dead-letter topic" || fail "--check with a dead-letter topic: $out"

start_relay relay "$rcfg"
relay=$LF_PID

# json_agent NAME CERT FILE: an agent with id CERT tailing FILE (JSON lines) as stream mobile.
json_agent() {
	local cfg
	cfg=$(agent_config "$1" "$2" "$2" mobile "$3" "$port")
	sed -i "s/format: nginx_combined/format: json/" "$cfg"
	echo "$cfg"
}

long=$(printf 'x%.0s' $(seq 300))
cat >"$T/web-01.log" <<JSON
{"event_type":"click","user_id":"u-1","n":1}
{"event_type":"view","user_id":"u-2","n":2}
{"event_type":"purchase","user_id":"u-3","n":3}
{"user_id":"u-4","n":4}
{"event_type":"a/b","user_id":"u-5","n":5}
{"event_type":"$long","user_id":"u-6","n":6}
JSON
cat >"$T/web-02.log" <<JSON
{"event_type":"click","user_id":"u-7","n":7}
{"event_type":"view","user_id":"u-8","n":8}
JSON
start agent-1 "$LOGFERRY_AGENT" -c "$(json_agent agent-1 web-01 "$T/web-01.log")"
a1=$LF_PID
start agent-2 "$LOGFERRY_AGENT" -c "$(json_agent agent-2 web-02 "$T/web-02.log")"
a2=$LF_PID

# dump TOPIC: its records as key TAB headers TAB value, in $T/TOPIC.dump.
dump() {
	timeout -k 5 60 kcat -C -b "$KAFKA_BOOT" -t "$1" -o beginning -e -q -f '%k\t%h\t%s\n' \
		>"$T/$1.dump" 2>"$T/$1.err"
}

# Everything arrived: 2 clicks, 1 view, 1 purchase, 1 unknown, 3 dead letters.
ok=
for ((i = 0; i < 60; i++)); do
	n=0
	for t in click view purchase unknown; do
		dump "$m.$t"
		n=$((n + $(wc -l <"$T/$m.$t.dump")))
	done
	dump "$dead"
	n=$((n + $(wc -l <"$T/$dead.dump")))
	[ "$n" -ge 8 ] && { ok=1; break; }
	sleep 1
done
[ -n "$ok" ] && pass "all 8 events arrived" || fail "$n of 8 events arrived in 60 s"

# has TOPIC KEY N: the record of event N is in TOPIC with KEY.
has() {
	grep -q "^$2	.*\"n\":$3[,}]" "$T/$1.dump"
}
has "$m.click" u-1 1 && has "$m.view" u-2 2 && has "$m.purchase" u-3 3 &&
	pass "each event type has its topic, keyed by user_id" ||
	fail "per-type topics: $(head -c 300 "$T/$m.click.dump" "$T/$m.view.dump" "$T/$m.purchase.dump")"
has "$m.unknown" u-4 4 && pass "an event without event_type goes to $m.unknown" ||
	fail "$m.unknown holds: $(head -c 300 "$T/$m.unknown.dump")"
[ "$(wc -l <"$T/$m.click.dump")$(wc -l <"$T/$m.view.dump")$(wc -l <"$T/$m.purchase.dump")$(wc -l <"$T/$m.unknown.dump")" = 2111 ] &&
	pass "no other event reached those topics" || fail "unexpected records: $(wc -l "$T"/*.dump)"

grep "\"n\":5[,}]" "$T/$dead.dump" | grep -q "logferry-error=topic '$m.a/b' has a byte outside \[A-Za-z0-9._-\],logferry-original-topic=$m.a/b,logferry-original-stream=mobile" &&
	pass "event_type a/b: dead-lettered with the reason, the topic and the stream" ||
	fail "a/b dead letter: $(grep "\"n\":5[,}]" "$T/$dead.dump" | cut -f2)"
grep "\"n\":6[,}]" "$T/$dead.dump" | grep -q "logferry-error=topic of 250 bytes or more is longer than Kafka's 249,logferry-original-topic=$m.xxxx" &&
	pass "a 300-byte event_type: dead-lettered as too long" ||
	fail "long dead letter: $(grep "\"n\":6[,}]" "$T/$dead.dump" | cut -f2)"
grep "\"n\":8[,}]" "$T/$dead.dump" | grep -q "logferry-agent=web-02,.*logferry-error=topic $m.view not allowed for agent web-02" &&
	pass "allowed_topics: web-02 may not fill $m.view, its event is dead-lettered" ||
	fail "not-allowed dead letter: $(grep "\"n\":8[,}]" "$T/$dead.dump" | cut -f2)"
has "$m.click" u-7 7 && pass "allowed_topics: web-02 fills $m.click" ||
	fail "web-02's click is not in $m.click"
# Never produced there: no such topic, not even auto-created or renamed (m.a_b).
kcat -L -b "$KAFKA_BOOT" >"$T/topics" 2>&1
grep -q "topic \"$m.click\"" "$T/topics" || fail "kcat -L lists no topic $m.click: $(head -5 "$T/topics")"
grep -Eq "topic \"$m\.(a|xx)" "$T/topics" && fail "a topic was made from a bad event_type: $(grep "$m" "$T/topics")" ||
	pass "no topic was made from a/b or the 300-byte event_type"
v=$(metric "$mport" 'logferry_kafka_dead_letters_total{reason="invalid_topic"}')
w=$(metric "$mport" 'logferry_kafka_dead_letters_total{reason="topic_not_allowed"}')
[ "$v/$w" = 2/1 ] && pass "dead letters are counted by reason" ||
	fail "dead_letters_total: invalid_topic ${v:-absent}, topic_not_allowed ${w:-absent}"
v=$(metric "$mport" 'logferry_kafka_routed_total{route="0"}')
w=$(metric "$mport" 'logferry_kafka_routed_total{route="default"}')
[ "$v/$w" = 8/0 ] && pass "events are counted per route" ||
	fail "routed_total: route 0 ${v:-absent}, default ${w:-absent}"

# ---- SIGHUP: new allowed_topics apply to the next batches ----
sed -i "s/{agents: \"web-0\[2-9\]\", topics: \[\"$m.click\"\]}/{agents: \"web-0[2-9]\", topics: [\"$m.*\"]}/" "$rcfg"
grep -q "topics: \[\"$m\.\*\"\]}$" "$rcfg" || fail "the test did not edit allowed_topics: $(grep agents "$rcfg")"
kill -HUP "$relay"
wait_log "$T/relay.log" "SIGHUP: applied.*, 2 allowed_topics entries" 30 ||
	fail "reload not applied: $(grep SIGHUP "$T/relay.log")"
echo '{"event_type":"view","user_id":"u-9","n":9}' >>"$T/web-02.log"
for ((i = 0; i < 30; i++)); do
	dump "$m.view"
	has "$m.view" u-9 9 && break
	sleep 1
done
has "$m.view" u-9 9 && pass "after SIGHUP web-02 may fill $m.view" ||
	fail "after SIGHUP, web-02's view is not in $m.view: $(cat "$T/$m.view.dump")"

stop_agent "$a1"
stop_agent "$a2"
for a in agent-1 agent-2; do
	left=$(spooled "$T/$a.yaml")
	[ "${left:-x}" = 0 ] && pass "$a's spool is empty: every event was acknowledged" ||
		fail "$a's spool still holds ${left:-?} events"
done
finish
