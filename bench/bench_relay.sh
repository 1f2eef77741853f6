#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The relay alone: logferry-relay's CPU per event and events per second
# with the agent out of the picture, kafka.headers on and off
# (bench/README.md, "The relay alone").
#
# bench/relay_load replays agent batches (bench/nginx_log.py's NGINX lines,
# parsed by the agent's parser, event format 3 as agents send it, 4096
# events per zstd segment, as the spool writes them) over mutual TLS to one relay (2
# workers, JSON, acks=all with the idempotent producer, as the relay always
# produces) in front of a fresh mock Kafka cluster (tests/tools/mock_kafka:
# 3 brokers, topic logs.nginx of 3 partitions, key ${host}), keeping the
# relay's window full on BENCH_CONNECTIONS (default 2) connections. After
# BENCH_WARMUP events it measures BENCH_EVENTS more: events/s, and the CPU
# (user + system from /proc/PID/stat) of the relay, of the mock cluster and
# of the client, each per event. The relay's peak memory is its VmHWM.
#
# All three share the machine's cores. "events/s seen" is what the relay
# delivered while the client and the mock cluster took their share;
# "capacity on N cores" is N / (relay CPU per event): what the relay would
# deliver with N cores of its own, which is an extrapolation, not a
# measurement. BENCH_ROUNDS (default 3) rounds, headers on and off
# alternating first; medians at the end. Timing only: never a pass/fail on
# a number. Exits 1 when a run failed, 2 when something is not built.
#
# Environment: BENCH_EVENTS (default 2000000), BENCH_WARMUP (200000),
# BENCH_LINES (lines of input, sent again in turn; default 200000),
# BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_HEADERS (the kafka.headers values
# to run, default "true false"), BENCH_KEEP (keep the work directory),
# LOGFERRY_RELAY, MOCK_KAFKA, RELAY_LOAD, top_srcdir, top_builddir.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${LOGFERRY_RELAY:=$top_builddir/relay/logferry-relay}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
: "${RELAY_LOAD:=$top_builddir/bench/relay_load}"
EVENTS=${BENCH_EVENTS:-2000000}
WARMUP=${BENCH_WARMUP:-200000}
LINES=${BENCH_LINES:-200000}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-2}
HEADERS=${BENCH_HEADERS:-true false}
NCPU=$(nproc)

for tool in "$LOGFERRY_RELAY" "$MOCK_KAFKA" "$RELAY_LOAD"; do
	[ -x "$tool" ] || { echo "bench_relay: $tool not built (make bench-relay builds it)" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "bench_relay: python3 not found" >&2; exit 2; }

. "$top_srcdir/bench/bench_lib.sh"
bench_workdir bench_relay logferry-bench-relay

# The mock cluster stands in for brokers on other machines, as in bench_e2e.sh.
NICE=
nice -n -10 true 2>/dev/null && NICE="nice -n -10"

# relay_start HEADERS: a relay with kafka.headers HEADERS. Sets RELAY_PID, PORT.
relay_start() {
	PORT=$(free_port)
	cat >"$T/relay.yaml" <<YAML
id: relay-bench
log_level: warn
listen: 127.0.0.1:$PORT
workers: 2
tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key}
kafka: {brokers: "$BOOTSTRAP", topic: "logs.\${stream}", key: "\${host}", headers: $1}
YAML
	: >"$T/relay.log"
	"$LOGFERRY_RELAY" -c "$T/relay.yaml" >"$T/relay.log" 2>&1 &
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	for _ in $(seq 200); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null && return 0
		kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench_relay: the relay did not start: $(tail -3 "$T/relay.log")" >&2
	return 1
}

stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

sh "$top_srcdir/tests/tools/make-certs.sh" "$T/certs" >/dev/null 2>&1 ||
	{ echo "bench_relay: make-certs.sh failed" >&2; exit 2; }
python3 "$top_srcdir/bench/nginx_log.py" "$T/access.log" "$LINES" --rid ||
	{ echo "bench_relay: could not write the input with bench/nginx_log.py" >&2; exit 2; }

echo "## the relay alone: agent batches replayed over mutual TLS, headers on and off"
echo
echo "machine: $NCPU CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "$("$LOGFERRY_RELAY" --version 2>&1 | head -1)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)"
echo "relay: workers 2, JSON, key \${host}, acks=all idempotent; mock cluster: 3 brokers," \
    "3 partitions${NICE:+, $NICE}; client: relay_load, $CONNS connections, $LINES NGINX lines" \
    "sent in turn, $WARMUP events of warm-up, then $EVENTS measured"
echo
echo "| round | headers | events/s seen | relay us/event | relay capacity on $NCPU cores, events/s | relay peak MiB | mock us/event | client us/event | retries |"
echo "|---|---|---|---|---|---|---|---|---|"

FAILED=0
: >"$T/results"
for ((r = 1; r <= ROUNDS; r++)); do
	order=$HEADERS
	[ $((r % 2)) -eq 0 ] && order=$(echo "$HEADERS" | tr ' ' '\n' | tac | tr '\n' ' ')
	for h in $order; do
		mock_start --brokers 3 --topic logs.nginx:3 || { FAILED=1; break 2; }
		if ! relay_start "$h"; then
			FAILED=1
			break 2
		fi
		out=$T/run-$r-$h.out
		if ! "$RELAY_LOAD" -a "127.0.0.1:$PORT" --ca "$T/certs/ca.crt" \
		    --cert "$T/certs/web-01-chain.crt" --key "$T/certs/web-01.key" --id web-01 \
		    --lines "$T/access.log" -n "$EVENTS" --warmup "$WARMUP" -c "$CONNS" \
		    --timeout $((EVENTS / 10000 + 60)) \
		    --pid relay="$RELAY_PID" --pid mock="$MOCK_PID" >"$out" 2>"$T/load.err"; then
			mock_state="mock cluster running"
			kill -0 "$MOCK_PID" 2>/dev/null || mock_state="mock cluster gone: $(tail -1 "$T/mock.err")"
			echo "| $r | $h | failed: $(tail -1 "$T/load.err"); $mock_state | | | | | | |"
			tail -3 "$T/relay.log" >&2
			FAILED=1
		else
			val() { sed -n "s/^$1=//p" "$out"; }
			eps=$(val events_per_second)
			rus=$(val relay_cpu_us_per_event)
			cap=$(awk -v n="$NCPU" -v u="$rus" 'BEGIN { printf "%.0f", n * 1e6 / u }')
			hwm=$(awk -v k="$(val relay_hwm_kib)" 'BEGIN { printf "%.1f", k / 1024 }')
			echo "| $r | $h | $eps | $rus | $cap | $hwm | $(val mock_cpu_us_per_event) |" \
			    "$(val client_cpu_us_per_event) | $(val retries) |"
			echo "$h $eps $rus $cap $hwm $(val mock_cpu_us_per_event) $(val client_cpu_us_per_event)" >>"$T/results"
		fi
		stop "$RELAY_PID"
		stop "$MOCK_PID"
	done
done

echo
echo "medians (min-max) over the rounds:"
echo
echo "| headers | events/s seen | relay us/event | relay capacity on $NCPU cores | relay peak MiB | mock us/event | client us/event |"
echo "|---|---|---|---|---|---|---|"
for h in $HEADERS; do
	awk -v h="$h" '$1 == h' "$T/results" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
if not rows:
    sys.exit(0)
def col(i, fmt):
    v = [float(r[i]) for r in rows]
    return "%s (%s-%s)" % (format(statistics.median(v), fmt), format(min(v), fmt), format(max(v), fmt))
print("| %s | %s | %s | %s | %s | %s | %s |" % (rows[0][0], col(1, ".0f"), col(2, ".3f"),
      col(3, ".0f"), col(4, ".1f"), col(5, ".3f"), col(6, ".3f")))
'
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $FAILED
