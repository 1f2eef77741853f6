#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Events larger than Kafka takes, and records a broker refuses (issue 14,
# item 6), through agent -> relay -> the mock cluster, with default limits:
# - a 3 MiB line, which the agent cuts into 1 MiB events (its default
#   max_line), arrives as records that each fit librdkafka's default
#   message.max.bytes, marked with logferry-piece and piece_index /
#   piece_count, and the pieces join back into the line;
# - records a broker refuses for good (MSG_SIZE_TOO_LARGE injected) are
#   logged, counted and acknowledged, so the agent's spool empties;
# - with kafka.dead_letter_topic they go there, with logferry-error,
#   logferry-original-topic and logferry-original-stream.
. "$(dirname "$0")/lib.sh"

need kcat openssl curl
kafka_mock || { echo "SKIP: error injection needs the mock cluster (LOGFERRY_TEST_KAFKA is set)"; exit 77; }
make_certs
start_kafka
run=$(date +%s)$$

# agent NAME STREAM FILE PORT: an agent tailing FILE as it is (no parser).
agent() {
	cat >"$T/$1.yaml" <<CONF
id: web-01
data_dir: $T/$1
sources:
  - {name: $2, type: file, paths: [$3]}
relays:
  servers: [$LF_IP:$4]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
CONF
	echo "$T/$1.yaml"
}

# wait_metric PORT NAME MIN SECONDS: until NAME is at least MIN.
wait_metric() {
	local i v
	for ((i = 0; i < $4 * 10; i++)); do
		v=$(metric "$1" "$2")
		[ "${v:-0}" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}

port=$(free_port)
mport=$(free_port)
rcfg=$(relay_config relay "$port" "metrics: {listen: $LF_IP:$mport}")
start_relay relay "$rcfg"
relay=$LF_PID

# ---- a 3 MiB line arrives in marked pieces that join into it ----
stream=long_$run
kafka_topic "logs.$stream" 4
# Three 1 MiB blocks (the agent cuts there) of text with 2-, 3- and
# 4-byte UTF-8 characters, quotes and backslashes, none across a block's
# end: a relay cut inside a character would show as U+FFFD.
python3 - "$T/long.log" <<'PY'
import sys
parts = ["plain text ", "caf\u00e9 ", "\u20ac ", "\U0001F600", "\"q\" ", "back\\slash "]
line = b""
for block in range(3):
    b = bytearray()
    i = block
    while True:
        p = parts[i % len(parts)].encode()
        if len(b) + len(p) > 1048576:
            break
        b += p
        i += 1
    b += b"x" * (1048576 - len(b))
    line += bytes(b)
open(sys.argv[1], "wb").write(line + b"\n")
PY
acfg=$(agent agent-long "$stream" "$T/long.log" "$port")
start agent-long "$LOGFERRY_AGENT" -c "$acfg"
agent_pid=$LF_PID

# check_pieces FILE DUMP: the records of DUMP join into FILE's line.
check_pieces() {
	python3 - "$1" "$2" <<'PY'
import json, sys, collections
want = open(sys.argv[1], 'rb').read().rstrip(b'\n').decode('utf-8')
events = collections.defaultdict(dict)
counts = {}
bad = []
for rec in open(sys.argv[2], 'rb').read().decode('utf-8').split('\n'):
    if not rec:
        continue
    hdr, _, val = rec.partition('\t')
    h = dict(kv.split('=', 1) for kv in hdr.split(',') if '=' in kv)
    if len(val.encode()) > 1000000:
        bad.append(f"record of {len(val.encode())} bytes")
    try:
        v = json.loads(val)
    except ValueError:
        continue        # the consumer is writing it now
    seq = int(h['logferry-seq'])
    if 'logferry-piece' in h:
        i, c = map(int, h['logferry-piece'].split('/'))
        if v.get('piece_index') != i or v.get('piece_count') != c:
            bad.append(f"seq {seq}: header {i}/{c}, value {v.get('piece_index')}/{v.get('piece_count')}")
    else:
        i, c = 0, 1
    counts[seq] = c
    events[seq][i] = v['message']
joined = ''
complete = 0
for seq in sorted(events):
    if len(events[seq]) != counts[seq]:
        continue
    complete += 1
    joined += ''.join(events[seq][i] for i in range(counts[seq]))
pieces = sum(len(p) for p in events.values())
print(f"{len(events)} event(s), {complete} complete, {pieces} record(s), "
      f"joined {len(joined.encode())} of {len(want.encode())} bytes, {len(bad)} bad")
for b in bad[:5]:
    print("  " + b)
sys.exit(0 if joined == want and not bad and complete == 3 and pieces > 3 else 1)
PY
}

ok=
for ((i = 0; i < 60; i++)); do
	kafka_dump "logs.$stream" "$T/dump-long"
	if out=$(check_pieces "$T/long.log" "$T/dump-long"); then
		ok=1
		break
	fi
	sleep 1
done
if [ -n "$ok" ]; then
	pass "a 3 MiB line arrives as marked pieces of at most 1000000 bytes that join into it: $out"
else
	fail "a 3 MiB line did not arrive whole in 60 s: $out"
fi
v=$(metric "$mport" logferry_kafka_refused_oversize_total)
[ "${v:-x}" = 0 ] && pass "no event refused as too large" || fail "refused_oversize_total is ${v:-missing}"
v=$(metric "$mport" logferry_kafka_events_cut_total)
[ "${v:-0}" -ge 3 ] && pass "the relay cut $v events into pieces" || fail "events_cut_total is ${v:-missing}"
stop_agent "$agent_pid"

# ---- a record refused for good, no dead-letter topic: logged, counted, acknowledged ----
stream=refuse_$run
kafka_topic "logs.$stream" 4
kafka_ctl produce_errors 1000 MSG_SIZE_TOO_LARGE
nginx_lines "$T/refuse.log" 5 1
acfg=$(agent agent-refuse "$stream" "$T/refuse.log" "$port")
start agent-refuse "$LOGFERRY_AGENT" -c "$acfg"
agent_pid=$LF_PID
if wait_metric "$mport" logferry_kafka_refused_by_broker_total 5 30; then
	pass "5 records refused by the broker are counted"
else
	fail "refused_by_broker_total is $(metric "$mport" logferry_kafka_refused_by_broker_total), expected 5"
fi
grep -q "Kafka refused for good the record of event .* to topic logs.$stream" "$T/relay.log" &&
	pass "the refusal is logged with the topic" || fail "no refusal in the relay's log"
kafka_ctl clear_errors
stop_agent "$agent_pid"
left=$(spooled "$acfg")
[ "${left:-x}" = 0 ] && pass "the agent's spool is empty: the refused events were acknowledged" ||
	fail "the agent's spool still holds ${left:-?} events"
kill -TERM "$relay"
wait_exit "$relay" 20 || fail "relay did not stop"

# ---- with kafka.dead_letter_topic: refused records go there ----
stream=dlq_$run
dead=dead_$run
kafka_topic "logs.$stream" 1
kafka_topic "$dead" 1
port=$(free_port)
rcfg=$(relay_config relay-dlq "$port")
sed -i "s/^  delivery_timeout: 5s$/&\n  dead_letter_topic: $dead/" "$rcfg"
start_relay relay-dlq "$rcfg"
# One Produce request fails: the events' (one partition, one batch); the dead-letter one passes.
kafka_ctl produce_errors 1 MSG_SIZE_TOO_LARGE
nginx_lines "$T/dlq.log" 5 100
acfg=$(agent agent-dlq "$stream" "$T/dlq.log" "$port")
start agent-dlq "$LOGFERRY_AGENT" -c "$acfg"
agent_pid=$LF_PID
ok=
for ((i = 0; i < 30; i++)); do
	kafka_dump "$dead" "$T/dump-dead"
	kafka_dump "logs.$stream" "$T/dump-dlq"
	cat "$T/dump-dead" "$T/dump-dlq" >"$T/dump-both"
	[ -s "$T/dump-dead" ] && check_delivered "$T/dlq.log" "$T/dump-both" >/dev/null && { ok=1; break; }
	sleep 1
done
if [ -n "$ok" ]; then
	pass "every line is in its topic or in the dead-letter topic ($(wc -l <"$T/dump-dead") there)"
else
	fail "dead-letter: $(wc -l <"$T/dump-dead" 2>/dev/null) record(s) in $dead: $(check_delivered "$T/dlq.log" "$T/dump-both")"
fi
if grep -q "logferry-error=MSG_SIZE_TOO_LARGE" "$T/dump-dead" &&
    grep -q "logferry-original-topic=logs.$stream" "$T/dump-dead" &&
    grep -q "logferry-original-stream=$stream" "$T/dump-dead" &&
    grep -q "logferry-agent=web-01" "$T/dump-dead" && grep -q "logferry-seq=" "$T/dump-dead"; then
	pass "dead-letter records carry the original headers, the error, the original topic and stream"
else
	fail "dead-letter headers: $(cut -f1 "$T/dump-dead" | head -2)"
fi
stop_agent "$agent_pid"
left=$(spooled "$acfg")
[ "${left:-x}" = 0 ] && pass "the agent's spool is empty" || fail "the agent's spool still holds ${left:-?} events"
finish
