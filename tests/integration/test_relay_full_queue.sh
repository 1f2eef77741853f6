#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# With kafka.headers: false a relay worker hands the records of a run to
# librdkafka together (relay/kafka.h, kafka_loop_hold). Through the real
# daemons (file -> agent -> relay -> mock Kafka), with librdkafka's queue
# bounded to 64 records, so that runs meet a full queue in their middle
# again and again and the refused records wait for room:
# - every line arrives exactly once, in the order of the file (one
#   partition), and every batch is acknowledged;
# - the relay did meet a full queue (logferry_kafka_queue_full_total).
. "$(dirname "$0")/lib.sh"

command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }
make_certs
start_kafka
run=$(date +%s)$$
stream=fullq_$run
kafka_topic "logs.$stream" 1
N=10000
mkdir -p "$T/log"
nginx_lines "$T/log/a.log" "$N" 1

port=$(free_port)
mport=$(free_port)
rcfg=$(relay_config relay "$port" "  headers: false
metrics: {listen: $LF_IP:$mport}")
sed -i 's|properties: {|properties: {queue.buffering.max.messages: "64", |' "$rcfg"
grep -q 'queue.buffering.max.messages: "64"' "$rcfg" || fail "could not bound librdkafka's queue in $rcfg"
start_relay relay "$rcfg"
acfg=$(agent_config agent web-01 web-01 "$stream" "$T/log/a.log" "$port")
start agent "$LOGFERRY_AGENT" -c "$acfg"
wait_log "$T/agent.log" "connected to" 60 || fail "agent did not connect: $(tail -3 "$T/agent.log")"

# ---- test_a_full_queue_in_the_middle_of_runs_loses_duplicates_and_reorders_nothing ----
for ((i = 0; i < 90; i++)); do
	kafka_dump "logs.$stream" "$T/dump"
	[ "$(grep -c . "$T/dump")" -ge "$N" ] && break
	sleep 1
done
if counts=$(check_delivered "$T/log/a.log" "$T/dump" exact); then
	pass "a full queue in the middle of runs: every line once ($counts)"
else
	fail "records lost or duplicated behind a full queue: $counts; $(tail -3 "$T/relay.log")"
fi
order=$(python3 - "$T/dump" <<'PY'
import json, re, sys
items = []
for rec in open(sys.argv[1], 'rb').read().decode('utf-8', 'replace').split('\n'):
    if rec:
        items.append(int(re.search(r'/item/(\d+) ', json.loads(rec.partition('\t')[2])['message']).group(1)))
bad = sum(1 for a, b in zip(items, items[1:]) if b != a + 1)
print(f"{len(items)} records, {bad} out of order")
sys.exit(1 if bad else 0)
PY
) && pass "records in the order of the file: $order" || fail "records out of order: $order"

# ---- test_the_relay_met_a_full_queue ----
full=$(metric "$mport" logferry_kafka_queue_full_total)
[ "${full:-0}" -gt 0 ] && pass "the relay met a full queue $full time(s) and went on" ||
	fail "logferry_kafka_queue_full_total is ${full:-absent}: the queue never filled, the test proves nothing"
finish
