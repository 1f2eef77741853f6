#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make demo: the whole pipeline on this machine, on loopback only.
#
# Makes certificates, starts librdkafka's mock Kafka cluster, a relay and an
# agent with configurations written for them, shows what they say, and stops
# them cleanly. The agent tails a generated NGINX access log.
#
# It waits until every line is in Kafka, prints what arrived (records per
# topic, a few records with their headers), stops both daemons with SIGTERM
# and checks that they exit 0. Exit 1 if any step fails.
#
# KAFKA=HOST:PORT,... (make demo KAFKA=...) produces into that cluster
# instead of the mock, into a topic of its own (logs.demoPID.nginx_access,
# created with up to 3 replicas; plaintext listener, no authentication).
set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
AGENT="$top_builddir/agent/logferry-agent"
RELAY="$top_builddir/relay/logferry-relay"
MOCK="$top_builddir/tests/tools/mock_kafka"

d=$(mktemp -d "${TMPDIR:-/tmp}/logferry-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$d"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$(printf '\033[1m'); plain=$(printf '\033[0m'); else bold= plain=; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
die() { echo "demo: $*" >&2; exit 1; }

say "certificates (CA, intermediate, relay, agent web-01) in $d/certs"
sh "$top_srcdir/tests/tools/make-certs.sh" "$d/certs" || die "make-certs.sh failed"
ls "$d/certs" | tr '\n' ' '; echo

topic=logs.nginx_access
if [ -n "${KAFKA:-}" ]; then
	say "the Kafka cluster at $KAFKA (KAFKA)"
	bootstrap=$KAFKA
	# A topic of its own, so that a run never counts an earlier run's records.
	topic=logs.demo$$.nginx_access
	admin=$top_builddir/tests/tools/kafka_admin
	brokers=$("$admin" -b "$bootstrap" brokers 2>"$d/admin.err") ||
		die "cannot reach Kafka at $bootstrap: $(tail -1 "$d/admin.err")"
	"$admin" -b "$bootstrap" create "$topic" 3 $((brokers < 3 ? brokers : 3)) 2>"$d/admin.err" ||
		die "cannot create topic $topic: $(tail -1 "$d/admin.err")"
	echo "$brokers brokers; topic $topic created"
else
	say "mock Kafka cluster (3 brokers on loopback)"
	mkfifo "$d/kafka.in"
	"$MOCK" --brokers 3 --topic logs.nginx_access:3 <"$d/kafka.in" >"$d/kafka.out" 2>"$d/kafka.err" &
	pids+=($!)
	exec 3>"$d/kafka.in"   # keeps the control pipe open while the demo runs
	for _ in $(seq 100); do grep -q '^bootstrap=' "$d/kafka.out" && break; sleep 0.1; done
	bootstrap=$(sed -n 's/^bootstrap=//p' "$d/kafka.out" | head -1)
	[ -n "$bootstrap" ] || die "mock Kafka did not start: $(cat "$d/kafka.err")"
fi
echo "bootstrap servers: $bootstrap"

say "a generated NGINX access log (10000 lines)"
mkdir -p "$d/log" "$d/spool"
awk 'BEGIN { for (i = 1; i <= 10000; i++)
	printf "203.0.113.%d - - [25/Nov/2026:10:%02d:%02d +0000] \"GET /item/%d HTTP/1.1\" %d %d \"-\" \"curl/8.0\"\n",
	    i % 250, int(i / 60) % 60, i % 60, i, (i % 50 == 0) ? 404 : 200, 600 + i }' >"$d/log/access.log"
head -2 "$d/log/access.log"

# The relay takes a free port itself; the agent is configured once it listens.
cat >"$d/relay.yaml" <<CONF
id: relay-demo
listen: 127.0.0.1:0
workers: 2
tls: {ca_file: $d/certs/ca.crt, cert_file: $d/certs/relay-chain.crt, key_file: $d/certs/relay.key}
kafka: {brokers: "$bootstrap", topic: "${topic%nginx_access}\${stream}", key: "\${host}", properties: {compression.type: lz4}}
CONF

say "configuration check"
"$RELAY" -c "$d/relay.yaml" --check || die "relay configuration rejected"

say "starting the relay"
"$RELAY" -c "$d/relay.yaml" 2>"$d/relay.log" &
relay=$!
pids+=($relay)
for _ in $(seq 100); do grep -q 'listening on' "$d/relay.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/relay.log" | head -1)
[ -n "$port" ] || die "relay did not start: $(cat "$d/relay.log")"
echo "relay listening on 127.0.0.1:$port"

cat >"$d/agent.yaml" <<CONF
id: web-01
data_dir: $d/spool
sources:
  - {name: nginx_access, type: file, paths: [$d/log/access.log], format: nginx_combined}
relays:
  servers: [127.0.0.1:$port]
  tls: {ca_file: $d/certs/ca.crt, cert_file: $d/certs/web-01-chain.crt, key_file: $d/certs/web-01.key}
CONF

say "starting the agent"
"$AGENT" -c "$d/agent.yaml" --check || die "agent configuration rejected"
"$AGENT" -c "$d/agent.yaml" 2>"$d/agent.log" &
agent=$!
pids+=($agent)

say "waiting for every line to be in Kafka"
count=0
for _ in $(seq 60); do
	kill -0 "$relay" 2>/dev/null || die "relay exited: $(cat "$d/relay.log")"
	kill -0 "$agent" 2>/dev/null || die "agent exited: $(cat "$d/agent.log")"
	count=$(timeout 30 kcat -C -b "$bootstrap" -t "$topic" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)
	[ "$count" -ge 10000 ] && break
	sleep 1
done
echo "records in Kafka: $count of 10000 lines"
[ "$count" -ge 10000 ] || die "not every line arrived: $(tail -5 "$d/agent.log")"

say "what arrived in Kafka"
timeout 30 kcat -C -b "$bootstrap" -t "$topic" -o beginning -e -q -f '%p\n' 2>/dev/null |
	sort | uniq -c | awk -v t="$topic" '{ printf "topic %s partition %s: %s records\n", t, $2, $1 }'
echo
echo "three records (key, headers, value):"
timeout 30 kcat -C -b "$bootstrap" -t "$topic" -o beginning -c 3 -q \
	-f 'key %k | %h\n%s\n\n' 2>/dev/null

say "stopping them with SIGTERM"
kill -TERM "$agent" "$relay"
wait "$agent"; arc=$?
wait "$relay"; rrc=$?
pids=("${pids[0]}")
echo "--- relay log"; cat "$d/relay.log"
echo "--- agent log"; cat "$d/agent.log"
echo "exit status: agent $arc, relay $rrc"
[ $arc -eq 0 ] && [ $rrc -eq 0 ] || die "a daemon did not stop cleanly"

[ -n "${KAFKA:-}" ] || echo quit >&3
say "demo finished: 10000 NGINX lines went file -> agent -> TLS -> relay -> Kafka"
