#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Idle agents: what logferry-relay's memory does with BENCH_AGENTS (default
# 10000) idle agents connected over mutual TLS, after they all disconnect at
# once, and after a second round of them (bench/README.md, "Idle agents").
#
# One relay (2 workers, the mock Kafka cluster of tests/tools/mock_kafka
# behind it, nothing produced) and bench/idle_agents, which opens the
# connections (TLS handshake, Hello, Welcome; at most BENCH_INFLIGHT
# between connect and Welcome), holds them with a Ping every 10 s as
# agents do, and closes them all at once when told (SIGUSR1). Each round
# of BENCH_ROUNDS (default 2) is a new idle_agents process. The relay's
# memory (RssAnon from /proc/PID/status, Pss from smaps_rollup) is read:
#   - before any agent,
#   - with every agent connected (once the connection gauge of /metrics
#     says so and RssAnon stopped moving), and per agent,
#   - while the agents leave (the highest RssAnon, sampled every 0.1 s)
#     and right after (the gauge back to 0),
#   - settled: polled every second until it stops moving (or
#     BENCH_SETTLE_SECONDS, default 30, passed).
# Timing and memory only: never a pass/fail on a number. Exits 1 when a
# connection failed (handshake, refused, closed while idle) or a process
# died; 2 when something is not built.
#
# Environment: BENCH_AGENTS, BENCH_ROUNDS, BENCH_INFLIGHT (default 32),
# BENCH_SETTLE_SECONDS, BENCH_KEEP (keep the work directory),
# LOGFERRY_RELAY, MOCK_KAFKA, IDLE_AGENTS, top_srcdir, top_builddir.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${LOGFERRY_RELAY:=$top_builddir/relay/logferry-relay}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
: "${IDLE_AGENTS:=$top_builddir/bench/idle_agents}"
N=${BENCH_AGENTS:-10000}
ROUNDS=${BENCH_ROUNDS:-2}
INFLIGHT=${BENCH_INFLIGHT:-32}
SETTLE=${BENCH_SETTLE_SECONDS:-30}

for tool in "$LOGFERRY_RELAY" "$MOCK_KAFKA" "$IDLE_AGENTS"; do
	[ -x "$tool" ] || { echo "bench_idle: $tool not built (make bench-idle builds it)" >&2; exit 2; }
done
for cmd in curl openssl python3; do
	command -v "$cmd" >/dev/null || { echo "bench_idle: $cmd not found" >&2; exit 2; }
done

. "$top_srcdir/bench/bench_lib.sh"
bench_workdir bench_idle logferry-bench-idle

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; 1 if it never did.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		kill -0 "$RELAY_PID" 2>/dev/null || return 1
		sleep 0.1
	done
}

# The relay's memory in KiB: RssAnon, Pss.
rss_anon() { awk '$1 == "RssAnon:" { print $2 }' "/proc/$RELAY_PID/status"; }
pss() { awk '$1 == "Pss:" { print $2 }' "/proc/$RELAY_PID/smaps_rollup"; }
# The relay's CPU seconds so far (user + system).
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$RELAY_PID/stat"; }
metric() {
	curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
gauge_is() { [ "$(metric logferry_relay_connections)" = "$1" ]; }

# settle MAX: polls RssAnon every second until two readings 2 s apart differ
# by less than 256 KiB (or MAX seconds passed); prints the seconds it took.
settle() {
	local max=$1 start=$SECONDS a b
	a=$(rss_anon)
	while [ $((SECONDS - start)) -lt "$max" ]; do
		sleep 2
		b=$(rss_anon)
		[ $((a > b ? a - b : b - a)) -lt 256 ] && break
		a=$b
	done
	echo $((SECONDS - start))
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------- setup

sh "$top_srcdir/tests/tools/make-certs.sh" "$T/certs" || { echo "bench_idle: make-certs.sh failed" >&2; exit 2; }
mock_start --brokers 1 --topic logs:1 || exit 1

PORT=$(free_port)
MPORT=$(free_port)
MAXCONN=$((N > 10000 ? N : 10000))
cat >"$T/relay.yaml" <<YAML
id: relay-idle
log_level: warn
listen: 127.0.0.1:$PORT
workers: 2
max_connections: $MAXCONN
metrics: {listen: 127.0.0.1:$MPORT}
tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key}
kafka: {brokers: "$BOOTSTRAP", topic: logs}
YAML
# The relay raises its soft descriptor limit itself; the hard one must allow it.
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((N + 100)) ]; then
	echo "bench_idle: the hard descriptor limit $(ulimit -Hn) is below $N connections: raise it (ulimit -Hn as root)" >&2
	exit 2
fi
"$LOGFERRY_RELAY" -c "$T/relay.yaml" >"$T/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
if ! wait_for 20 gauge_is 0; then
	echo "bench_idle: the relay did not start:" >&2
	tail -5 "$T/relay.log" >&2
	exit 1
fi

echo "## idle agents: $N mutual-TLS connections to one relay, $ROUNDS rounds"
echo
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "$("$LOGFERRY_RELAY" --version 2>&1 | head -2 | tr '\n' ' ')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "relay: workers 2, max_connections $MAXCONN, log_level warn; client: idle_agents," \
    "$INFLIGHT handshakes in flight, one Ping per connection every 10 s"
echo
settle 10 >/dev/null
BASE=$(rss_anon)
BASE_PSS=$(pss)
echo "| when | relay RssAnon MiB | relay Pss MiB | per agent KiB | note |"
echo "|---|---|---|---|---|"
echo "| before any agent | $(mib "$BASE") | $(mib "$BASE_PSS") | - | |"

FAILED=0
for ((r = 1; r <= ROUNDS; r++)); do
	out=$T/round$r.out
	cpu0=$(cpu_s)
	"$IDLE_AGENTS" -a "127.0.0.1:$PORT" --ca "$T/certs/ca.crt" --cert "$T/certs/web-01-chain.crt" \
	    --key "$T/certs/web-01.key" --id web-01 -n "$N" --inflight "$INFLIGHT" \
	    >"$out" 2>"$T/round$r.err" &
	CLIENT=$!
	PIDS+=("$CLIENT")
	if ! wait_for 900 grep -qx ready "$out"; then
		echo "| round $r | - | - | - | idle_agents did not finish connecting: $(tail -1 "$T/round$r.err") |"
		FAILED=1
		break
	fi
	val() { sed -n "s/^$1=//p" "$out"; }
	connected=$(val connected)
	cpu1=$(cpu_s)
	wait_for 30 gauge_is "$connected"
	settle 10 >/dev/null
	held=$(rss_anon)
	held_pss=$(pss)
	per=$(awk -v a="$held" -v b="$BASE" -v n="$connected" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "-" }')
	echo "| round $r: $connected connected | $(mib "$held") | $(mib "$held_pss") | $per |" \
	    "in $(val connect_seconds) s ($(val connects_per_second)/s), relay CPU $(awk -v a="$cpu0" -v b="$cpu1" -v n="$connected" 'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1000 / n; else print "-" }') ms per connection;" \
	    "failed: $(val handshake_failures) handshakes, $(val refused) refused, $(val other_failures) other |"
	[ "$connected" = "$N" ] || FAILED=1
	kill -USR1 "$CLIENT"
	t0=$SECONDS
	peak=0
	# The highest RssAnon while they leave, sampled every 0.1 s until the gauge is at 0.
	until gauge_is 0; do
		now=$(rss_anon)
		[ "${now:-0}" -gt "$peak" ] && peak=$now
		[ $((SECONDS - t0)) -lt 120 ] && kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.1
	done
	gone=$((SECONDS - t0))
	now=$(rss_anon)
	[ "${now:-0}" -gt "$peak" ] && peak=$now
	echo "| round $r: all $connected disconnected, highest while they left | $(mib "$peak") | - | - | gauge at 0 after ${gone} s |"
	echo "| round $r: right after | $(mib "$(rss_anon)") | $(mib "$(pss)") | - | |"
	took=$(settle "$SETTLE")
	echo "| round $r: settled | $(mib "$(rss_anon)") | $(mib "$(pss)") | - | stable after ${took} s more |"
	if ! wait "$CLIENT"; then
		FAILED=1
	fi
	[ "$(sed -n 's/^lost_while_idle=//p' "$out")" = 0 ] || FAILED=1
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ! kill -0 "$RELAY_PID" 2>/dev/null; then
	echo "bench_idle: the relay died; its log:" >&2
	tail -5 "$T/relay.log" >&2
	FAILED=1
fi
if [ "$FAILED" != 0 ]; then
	echo "bench_idle: connections failed; idle_agents said:" >&2
	cat "$T"/round*.err >&2
	echo "relay log (last lines):" >&2
	tail -5 "$T/relay.log" >&2
fi
exit "$FAILED"
