#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# SIGHUP applies a valid relay configuration without losing an event
# (issue 16 item 4), while an agent ships lines written without a pause:
# the topic and key templates, the log level, tls.allowed_agents (a
# connection of an agent no longer allowed ends once its batches are
# answered, the agent is refused and keeps its events, and delivers them
# once allowed again), and the Kafka producer's settings (moved from one
# mock cluster to another under load: a new producer takes new records,
# the old one delivers what it holds). Identical producer settings keep the
# producer; a key that needs a restart is named and the rest applies; an
# invalid file keeps the running configuration. Every line written is in
# Kafka at the end, in the old topic or cluster or the new one.
. "$(dirname "$0")/lib.sh"

need kcat openssl
make_certs
start_kafka
run=$(date +%s)$$
stream=reload_$run
kafka_topic "logs.$stream" 16
kafka_topic "moved.$stream" 16
boot1=$KAFKA_BOOT
# A second cluster to move the relay to; on a real cluster, the same one
# (the producer still changes: other properties).
if kafka_mock; then
	mkfifo "$T/kafka2.in"
	"$MOCK_KAFKA" --brokers 1 --topic "moved.$stream:16" <"$T/kafka2.in" >"$T/kafka2.out" 2>"$T/kafka2.err" &
	LF_PIDS+=($!)
	exec 8>"$T/kafka2.in"
	wait_log "$T/kafka2.out" '^bootstrap=' 60 || { fail "second mock cluster: $(cat "$T/kafka2.err")"; finish; }
	boot2=$(sed -n 's/^bootstrap=//p' "$T/kafka2.out" | head -1)
else
	boot2=$KAFKA_BOOT
fi

port=$(free_port)
mport=$(free_port)
amport=$(free_port)
# relay_yaml TOPIC KEY ALLOWED BROKERS LOG_LEVEL [WORKERS] [MORE_PROPERTIES]: $T/relay.yaml, replaced whole.
relay_yaml() {
	cat >"$T/relay.yaml.new" <<CONF
id: relay
log_level: $5
listen: $LF_IP:$port
workers: ${6:-2}
shutdown_timeout: 5s
tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key, allowed_agents: [$3]}
kafka:
  brokers: "$4"
  topic: "$1"
  key: "$2"
  delivery_timeout: 5s
  properties: {reconnect.backoff.max.ms: "500", compression.type: lz4${7:-}}
metrics: {listen: $LF_IP:$mport}
CONF
	mv "$T/relay.yaml.new" "$T/relay.yaml"
}

# reload PATTERN: SIGHUP, then waits for one more relay log line matching PATTERN.
reload() {
	local before i
	before=$(grep -Ec -- "$1" "$T/relay.log")
	kill -HUP "$relay"
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -Ec -- "$1" "$T/relay.log")" -gt "$before" ] && return 0
		sleep 0.1
	done
	fail "no '$1' after SIGHUP: $(tail -3 "$T/relay.log")"
	return 1
}

# topic_has BOOT TOPIC PATTERN: whether a record of TOPIC matches PATTERN ("key TAB value").
topic_has() {
	timeout -k 5 60 kcat -C -b "$1" -t "$2" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null | grep -Eq -- "$3"
}

# wait_topic BOOT TOPIC PATTERN: until a record of TOPIC matches PATTERN.
wait_topic() {
	local i
	for ((i = 0; i < 60; i++)); do
		topic_has "$@" && return 0
		sleep 1
	done
	return 1
}

relay_yaml 'logs.${stream}' '' '"web-*"' "$boot1" info
start_relay relay "$T/relay.yaml"
relay=$LF_PID
: >"$T/a.log"
acfg=$(agent_config agent web-01 web-01 "$stream" "$T/a.log" "$port")
echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
start agent "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID

# The writer appends 50 lines every 0.1 s until told to stop (pacing, not ordering).
(
	i=1
	while [ ! -e "$T/stop-writing" ]; do
		nginx_lines "$T/a.log" 50 "$i"
		i=$((i + 50))
		sleep 0.1
	done
	touch "$T/writer-done"
) &
LF_PIDS+=($!)
wait_metric "$mport" logferry_relay_acks_ok_total -ge 3 || fail "nothing delivered before the reloads"

# ---- (1) topic and key templates ----
relay_yaml 'moved.${stream}' '${agent}' '"web-*"' "$boot1" info
reload "SIGHUP: applied" && pass "a new topic and key template apply"
grep -q "SIGHUP: applied.*the running producer stays" "$T/relay.log" &&
	pass "templates alone keep the Kafka producer" || fail "the producer was replaced for a template change"
wait_topic "$boot1" "moved.$stream" '^web-01	\{' && pass "new events land in the new topic with the new key" ||
	fail "no record with key web-01 in moved.$stream"
[ "$(metric "$mport" logferry_kafka_producer_generation)" = 1 ] ||
	fail "producer generation $(metric "$mport" logferry_kafka_producer_generation) after a template change"

# ---- (2) identical producer settings, a key that needs a restart ----
relay_yaml 'moved.${stream}' '${agent}' '"web-*"' "$boot1" info 3
reload "SIGHUP: applied" && grep -q "SIGHUP: workers changed: that needs a restart" "$T/relay.log" &&
	pass "workers is named as needing a restart, the rest applies" ||
	fail "no restart warning for workers: $(grep SIGHUP "$T/relay.log" | tail -3)"
[ "$(metric "$mport" logferry_kafka_producer_generation)" = 1 ] &&
	pass "identical Kafka settings do not recreate the producer" ||
	fail "producer generation $(metric "$mport" logferry_kafka_producer_generation) without a change"

# ---- (3) the producer moves to another cluster under load ----
# Slow answers from the first cluster: its producer holds records at the swap.
if kafka_mock; then
	for b in 1 2 3; do kafka_ctl rtt "$b" 1500; done
	wait_metric "$mport" logferry_kafka_produced_total -gt "$(metric "$mport" logferry_kafka_delivered_total)" ||
		fail "no record in flight before the move"
fi
relay_yaml 'moved.${stream}' '${agent}' '"web-*"' "$boot2" info 2 ', linger.ms: "20"'
reload "SIGHUP: applied.*a new Kafka producer takes over" && pass "new brokers and properties make a new producer"
wait_metric "$mport" logferry_kafka_producer_generation -eq 2 || fail "the new producer did not take over"
if kafka_mock; then
	grep -Eq "the one it replaced delivers the [1-9][0-9]* record" "$T/relay.log" &&
		pass "the replaced producer still held records at the swap" ||
		echo "note: the replaced producer held no record at the swap: $(grep 'the one it replaced' "$T/relay.log")"
	for b in 1 2 3; do kafka_ctl rtt "$b" 0; done
fi
wait_log "$T/relay.log" "the Kafka producer a reload replaced has a report for every record" 60 &&
	pass "the replaced producer delivered what it held and closed" || fail "the replaced producer did not close"
wait_metric "$mport" logferry_kafka_producers_retiring -eq 0 || fail "a replaced producer is still open"
if kafka_mock; then
	wait_topic "$boot2" "moved.$stream" '^web-01	\{' && pass "new events land in the second cluster" ||
		fail "nothing in the second cluster"
fi

# ---- (4) log level ----
relay_yaml 'moved.${stream}' '${agent}' '"web-*"' "$boot2" debug 2 ', linger.ms: "20"'
reload "SIGHUP: applied.*log level debug" && pass "log level debug applies"

# ---- (5) allowed_agents: the agent is let go, refused, keeps its events, then comes back ----
relay_yaml 'moved.${stream}' '${agent}' '"db-*"' "$boot2" debug 2 ', linger.ms: "20"'
reload "SIGHUP: applied"
wait_log "$T/relay.log" "agent web-01 at .* is no longer in tls.allowed_agents" 30 &&
	wait_log "$T/relay.log" "agent web-01 at .*: its batches are answered; closing the connection" 30 &&
	pass "the connection of an agent no longer allowed ends once its batches are answered" ||
	fail "the agent was not let go: $(tail -3 "$T/relay.log")"
wait_log "$T/relay.log" "agent id 'web-01' is not in tls.allowed_agents" 30 &&
	pass "the agent is refused at its next Hello" || fail "the agent was not refused: $(tail -3 "$T/relay.log")"
grep -Eq "debug: tls .*: TLS 1.2 with" "$T/relay.log" && pass "debug lines are logged after the reload" ||
	fail "no debug line after log_level: debug"
wait_metric "$amport" logferry_spool_events -ge 500 && pass "the refused agent keeps its events in its spool" ||
	fail "the agent's spool did not grow while refused"
connected=$(grep -c "agent web-01 connected from" "$T/relay.log")
relay_yaml 'moved.${stream}' '${agent}' '"web-*"' "$boot2" info 2 ', linger.ms: "20"'
reload "SIGHUP: applied"
for ((i = 0; i < 600; i++)); do
	[ "$(grep -c "agent web-01 connected from" "$T/relay.log")" -gt "$connected" ] && break
	sleep 0.1
done
[ "$(grep -c "agent web-01 connected from" "$T/relay.log")" -gt "$connected" ] &&
	pass "allowed again, the agent connects" || fail "the agent did not come back"

# ---- (6) an invalid file keeps the running configuration ----
echo "workers: many" >>"$T/relay.yaml"
reload "is not valid; the running configuration stays" && pass "an invalid file is refused"
acks=$(metric "$mport" logferry_relay_acks_ok_total)
wait_metric "$mport" logferry_relay_acks_ok_total -gt "$acks" && pass "the relay delivers on after the invalid file" ||
	fail "no delivery after the invalid file"
[ "$(metric "$mport" 'logferry_config_reloads_total{result="rejected"}')" = 1 ] &&
	[ "$(metric "$mport" 'logferry_config_reloads_total{result="applied"}')" -ge 4 ] &&
	[ "$(metric "$mport" logferry_config_last_reload_timestamp_seconds)" -gt 0 ] &&
	pass "the relay counts applied and rejected reloads" ||
	fail "reload metrics: $(get "http://$LF_IP:$mport/metrics" | grep logferry_config_)"

# ---- every line in one of the topics ----
touch "$T/stop-writing"
for ((i = 0; i < 300; i++)); do
	[ -e "$T/writer-done" ] && break
	sleep 0.1
done
[ -e "$T/writer-done" ] || fail "the writer did not stop"
wait_spooled_empty() {
	local i v
	for ((i = 0; i < 1200; i++)); do
		v=$(metric "$amport" logferry_spool_events)
		[ "${v:-1}" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
wait_spooled_empty || fail "the agent's spool did not empty: $(metric "$amport" logferry_spool_events) left"
kafka_dump "logs.$stream" "$T/d1"
kafka_dump "moved.$stream" "$T/d2"
KAFKA_BOOT=$boot2 kafka_dump "moved.$stream" "$T/d3"
[ "$boot2" = "$boot1" ] && : >"$T/d3"
sort -u "$T/d1" "$T/d2" "$T/d3" >"$T/union"
[ -s "$T/d1" ] && [ -s "$T/d2" ] || fail "a topic is empty: $(wc -l "$T/d1" "$T/d2" | head -2)"
echo "batches answered RETRY through the reloads: $(metric "$mport" logferry_kafka_batches_retry_total)"
if out=$(check_delivered "$T/a.log" "$T/union"); then
	pass "every line written through the reloads is in Kafka: $out"
else
	fail "lines lost through the reloads: $out"
fi

stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" || fail "relay did not stop"
[ "${LF_RC:-}" = 0 ] || fail "relay exited ${LF_RC:-?}"
finish
