#!/bin/bash
# make demo: the whole pipeline on this machine, on loopback only.
#
# Makes certificates, starts librdkafka's mock Kafka cluster, a relay and an
# agent with configurations written for them, shows what they say, and stops
# them cleanly. The agent tails a generated NGINX access log.
#
# Today the daemons start, validate their configuration and stop cleanly;
# shipping events through them is the next step of the roadmap (the relay
# and transport issue), which extends this demo to print what reached Kafka.
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

say "mock Kafka cluster (3 brokers on loopback)"
mkfifo "$d/kafka.in"
"$MOCK" --brokers 3 --topic logs.nginx_access:3 <"$d/kafka.in" >"$d/kafka.out" 2>"$d/kafka.err" &
pids+=($!)
exec 3>"$d/kafka.in"   # keeps the control pipe open while the demo runs
for _ in $(seq 100); do grep -q '^bootstrap=' "$d/kafka.out" && break; sleep 0.1; done
bootstrap=$(sed -n 's/^bootstrap=//p' "$d/kafka.out" | head -1)
[ -n "$bootstrap" ] || die "mock Kafka did not start: $(cat "$d/kafka.err")"
echo "bootstrap servers: $bootstrap"

say "a generated NGINX access log"
mkdir -p "$d/log" "$d/spool"
for i in $(seq 1000); do
	printf '203.0.113.%d - - [25/Nov/2026:10:00:%02d +0000] "GET /item/%d HTTP/1.1" 200 %d "-" "curl/8.0"\n' \
		$((i % 250)) $((i % 60)) "$i" $((600 + i))
done >"$d/log/access.log"
wc -l <"$d/log/access.log" | sed 's/$/ lines/'

cat >"$d/relay.yaml" <<CONF
id: relay-demo
listen: 127.0.0.1:0
workers: 2
tls: {ca_file: $d/certs/ca.crt, cert_file: $d/certs/relay-chain.crt, key_file: $d/certs/relay.key}
kafka: {brokers: "$bootstrap", topic: "logs.\${stream}", key: "\${host}"}
CONF
cat >"$d/agent.yaml" <<CONF
id: web-01
data_dir: $d/spool
sources:
  - {name: nginx_access, type: file, paths: [$d/log/access.log], format: nginx_combined}
relays:
  servers: [127.0.0.1:7540]
  tls: {ca_file: $d/certs/ca.crt, cert_file: $d/certs/web-01-chain.crt, key_file: $d/certs/web-01.key}
CONF

say "configuration checks"
"$RELAY" -c "$d/relay.yaml" --check || die "relay configuration rejected"
"$AGENT" -c "$d/agent.yaml" --check || die "agent configuration rejected"

say "starting the relay and the agent"
"$RELAY" -c "$d/relay.yaml" 2>"$d/relay.log" &
relay=$!
pids+=($relay)
"$AGENT" -c "$d/agent.yaml" 2>"$d/agent.log" &
agent=$!
pids+=($agent)
sleep 1
kill -0 "$relay" 2>/dev/null || die "relay exited: $(cat "$d/relay.log")"
kill -0 "$agent" 2>/dev/null || die "agent exited: $(cat "$d/agent.log")"

say "stopping them with SIGTERM"
kill -TERM "$agent" "$relay"
wait "$agent"; arc=$?
wait "$relay"; rrc=$?
pids=("${pids[0]}")
echo "--- relay log"; cat "$d/relay.log"
echo "--- agent log"; cat "$d/agent.log"
echo "exit status: agent $arc, relay $rrc"
[ $arc -eq 0 ] && [ $rrc -eq 0 ] || die "a daemon did not stop cleanly"

echo quit >&3
say "demo finished: both daemons started with their configurations and stopped cleanly"
echo "(events flow through them once the relay and transport land; see README.md)"
