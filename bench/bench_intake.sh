#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Local event intake into the spool: BENCH_EVENTS (default 500k) RFC 5424
# syslog messages over one TCP connection (newline framing), and the same
# count as NDJSON over HTTP (4 keep-alive clients, 2000 events per
# request, each answered after its commit), into logferry-agent's spool;
# rsyslog's imtcp -> omfile takes the same TCP input in the same run; the
# relay's HTTP intake takes the same HTTP input into the mock Kafka cluster
# (tests/tools/mock_kafka), each request answered after Kafka's acks.
# Prints events/s, CPU microseconds per event and peak private memory (for
# the relay: the relay's process alone, not the mock cluster's).
# Timing only: this never fails on a number.
set -u
: "${top_builddir:=$PWD}"
: "${LOGFERRY_AGENT:=$top_builddir/agent/logferry-agent}"
: "${LOGFERRY_RELAY:=$top_builddir/relay/logferry-relay}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
N=${BENCH_EVENTS:-500000}
RUNS=${BENCH_RUNS:-3}
T=$(mktemp -d "${TMPDIR:-/tmp}/logferry-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
# a stopped run removes its work directory and daemons too
trap 'exit 130' INT TERM
TICK=$(getconf CLK_TCK)

python3 - "$T" "$N" <<'PY'
import json, random, sys
random.seed(2)
t, n = sys.argv[1], int(sys.argv[2])
apps = ["nginx", "sshd", "cron", "app-api", "postfix"]
with open(t + "/syslog.txt", "w") as f, open(t + "/events.ndjson", "w") as g:
    for i in range(n):
        app = random.choice(apps)
        msg = "request %d from 203.0.113.%d took %d ms status %d" % (
            i, random.randrange(256), random.randrange(2000), random.choice([200, 200, 404, 500]))
        f.write("<134>1 2026-11-22T10:%02d:%02d.%06dZ web-%02d %s %d - - %s\n" % (
            i // 60000 % 60, i // 1000 % 60, i % 1000000, i % 20, app, 1000 + i % 5000, msg))
        g.write(json.dumps({"ts": 1795341600 + i / 1000, "app": app, "user_id": i % 977,
                            "msg": msg, "ok": i % 7 != 0}) + "\n")
PY
SIZE=$(stat -c %s "$T/syslog.txt")

# send_tcp PORT: the whole file over one connection.
send_tcp() {
	python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
with open(sys.argv[2], 'rb') as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        s.sendall(b)
s.close()
" "$1" "$T/syslog.txt"
}

# post_http PORT [DONE-FILE]: 4 keep-alive clients posting 2000-event NDJSON bodies
# (DONE-FILE is created once every request was answered 200).
post_http() {
	python3 -c "
import http.client, sys, threading
port, path = int(sys.argv[1]), sys.argv[2]
lines = open(path, 'rb').read().splitlines(keepends=True)
bodies = [b''.join(lines[i:i + 2000]) for i in range(0, len(lines), 2000)]
def client(k):
    c = http.client.HTTPConnection('127.0.0.1', port)
    for b in bodies[k::4]:
        while True:
            c.request('POST', '/v1/events', b, {'Content-Type': 'application/x-ndjson'})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                break
            if r.status != 503:
                sys.exit('HTTP %d' % r.status)
ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
if len(sys.argv) > 3:
    open(sys.argv[3], 'w').close()
" "$1" "$T/events.ndjson" ${2:+"$2"}
}

# measure NAME PID DONE-COMMAND START-TIME: waits, samples memory, prints a row.
measure() {
	local name=$1 pid=$2 done=$3 start=$4 end cpu peak=0 rss t
	until eval "$done"; do
		rss=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		[ "${rss:-0}" -gt "$peak" ] && peak=$rss
		kill -0 "$pid" 2>/dev/null || { echo "$name: exited early"; return 1; }
		sleep 0.05
	done
	end=$(date +%s%N)
	read -r -a st <"/proc/$pid/stat"
	cpu=$((st[13] + st[14]))
	rss=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")
	[ "${rss:-0}" -gt "$peak" ] && peak=$rss
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null
	t=$(( (end - start) / 1000 ))
	awk -v n="$name" -v ev="$N" -v us="$t" -v cpu="$cpu" -v tick="$TICK" -v peak="$peak" 'BEGIN {
		printf "%-30s %10.0f %9.2f %10.1f\n", n, ev / (us / 1e6), cpu / tick * 1e6 / ev, peak / 1024 }'
}

agent_run() {
	local kind=$1 run=$2 cfg="$T/agent.yaml" pid port start sender
	rm -rf "$T/data"
	if [ "$kind" = syslog ]; then
		src="    type: syslog
    listen: [tcp://127.0.0.1:0]
    max_connections: 4"
	else
		src="    type: http
    listen: [127.0.0.1:0]"
	fi
	cat >"$cfg" <<YAML
id: bench
data_dir: $T/data
log_level: info
spool: {max_size: 4GiB}
sources:
  - name: $kind
$src
YAML
	"$LOGFERRY_AGENT" -c "$cfg" >"$T/agent.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 100); do
		port=$(sed -nE 's/.*listening on .*127\.0\.0\.1:([0-9]+)\)?$/\1/p' "$T/agent.log" | tail -1)
		[ -n "$port" ] && break
		sleep 0.05
	done
	[ -n "$port" ] || { echo "agent did not listen:"; cat "$T/agent.log"; return 1; }
	start=$(date +%s%N)
	if [ "$kind" = syslog ]; then send_tcp "$port" & else post_http "$port" & fi
	sender=$!
	measure "logferry $kind #$run" "$pid" \
	    "[ \"\$(\"$LOGFERRY_AGENT\" -c \"$cfg\" --spool-stats 2>/dev/null | awk '/^events:/ { print \$2 }')\" = $N ]" \
	    "$start"
	wait "$sender"
}

# relay_run RUN: the relay's HTTP intake (plain HTTP on loopback) into the mock cluster.
relay_run() {
	local run=$1 pid kpid port start boot sender
	rm -f "$T/posted" "$T/mock.out"
	"$MOCK_KAFKA" --brokers 3 --topic logs.http:3 </dev/null >"$T/mock.out" 2>"$T/mock.err" &
	kpid=$!
	PIDS+=("$kpid")
	for _ in $(seq 100); do
		boot=$(sed -n 's/^bootstrap=//p' "$T/mock.out")
		[ -n "$boot" ] && break
		sleep 0.05
	done
	[ -n "$boot" ] || { echo "mock Kafka did not start"; return 1; }
	cat >"$T/relay.yaml" <<YAML
id: bench-relay
listen: 127.0.0.1:0
tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key}
kafka:
  brokers: "$boot"
  topic: "logs.\${stream}"
  key: ""
  properties: {compression.type: lz4}
http_intake:
  listen: 127.0.0.1:0
  max_body_size: 64MiB
YAML
	"$LOGFERRY_RELAY" -c "$T/relay.yaml" >"$T/relay.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 100); do
		port=$(sed -nE 's/.*http_intake: listening on http:\/\/127\.0\.0\.1:([0-9]+)$/\1/p' \
		    "$T/relay.log" | tail -1)
		[ -n "$port" ] && break
		sleep 0.05
	done
	[ -n "$port" ] || { echo "relay did not listen:"; cat "$T/relay.log"; return 1; }
	start=$(date +%s%N)
	post_http "$port" "$T/posted" &
	sender=$!
	measure "logferry relay http #$run" "$pid" "[ -e \"$T/posted\" ]" "$start"
	# the sender only: a bare wait would wait for the mock cluster too,
	# which runs until it is stopped below
	wait "$sender"
	kill -TERM "$kpid" 2>/dev/null
	wait "$kpid" 2>/dev/null
}

rsyslog_run() {
	local run=$1 pid port start sender
	rm -rf "$T/rs" && mkdir -p "$T/rs"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$T/rs/rsyslog.conf" <<CONF
global(workDirectory="$T/rs")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="out") { action(type="omfile" file="$T/rs/out.log" template="raw") }
input(type="imtcp" port="$port" address="127.0.0.1" ruleset="out")
CONF
	"$RSYSLOGD" -n -f "$T/rs/rsyslog.conf" -i "$T/rs/rsyslogd.pid" >"$T/rs/log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 100); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
		sleep 0.05
	done
	start=$(date +%s%N)
	send_tcp "$port" &
	sender=$!
	measure "rsyslog imtcp->omfile #$run" "$pid" \
	    "[ \"\$(stat -c %s \"$T/rs/out.log\" 2>/dev/null || echo 0)\" -ge $SIZE ]" "$start"
	wait "$sender"
}

echo "intake into the spool: $N events; syslog $((SIZE / N)) bytes/message over one TCP connection;"
echo "HTTP: NDJSON, 4 keep-alive clients, 2000 events per request, 200 after the commit"
echo "(the relay's intake: 200 after Kafka acked them all, mock cluster, lz4)"
sh "$top_srcdir/tests/tools/make-certs.sh" "$T/certs" >/dev/null 2>&1 || echo "make-certs.sh failed: no relay runs"
# /usr/sbin is not in every user's PATH
RSYSLOGD=$(command -v rsyslogd || { [ -x /usr/sbin/rsyslogd ] && echo /usr/sbin/rsyslogd; })
[ -n "$RSYSLOGD" ] || echo "rsyslogd not found (apt-get install rsyslog: packaging/install-bench-deps.sh): no rsyslog rows"
printf "%-30s %10s %9s %10s\n" "run" "events/s" "us/event" "peak MiB"
for run in $(seq 1 "$RUNS"); do
	agent_run syslog "$run"
	agent_run http "$run"
	if [ -e "$T/certs/relay.key" ]; then relay_run "$run"; fi
	if [ -n "$RSYSLOGD" ]; then rsyslog_run "$run"; fi
done
