#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# End to end: a generated NGINX combined log of BENCH_LINES lines (default
# 1M, ~190 bytes each) tailed by logferry-agent (nginx_combined, spool
# sync=always), shipped over mutual TLS to logferry-relay (2 workers, JSON
# records with the logferry-agent/logferry-seq headers) and produced into
# librdkafka's mock Kafka cluster (3 brokers); beside it, in the same run,
# the two-hop peer (side rsyslog_relp): an edge rsyslogd (imfile -> omrelp
# over TLS with a client certificate, an action queue in memory) and an
# aggregator rsyslogd (imrelp, TLS, the edge's certificate verified by name
# -> mmnormalize, the NGINX fields -> omkafka, a JSON record per line) on
# the same file into the same kind of cluster, topic "rsyslog-relp"; and
# on request (side rsyslog) the one-hop rsyslogd imfile -> omkafka, topic
# "rsyslog". bench/kafka_latency counts the
# records in Kafka (the partitions' watermarks) and reads them back to check
# that each line arrived once (by the rid= in its path, and logferry's
# logferry-agent/-seq headers), as far as it reads them before the mock
# cluster's retention (5 MiB per partition) deletes them: bench/README.md.
#
# Prints, per run: lines/s from the first to the last record in Kafka, CPU
# microseconds per line of the agent and of the relay (user+sys from /proc,
# from the daemon's start to the moment the last record is in Kafka), of the
# edge and the aggregator rsyslogd (and of the one-hop rsyslogd), and the
# peak private memory (RssAnon) of each daemon. Then the
# latency from a line being appended to its record being in Kafka, with a
# writer appending BENCH_RATE lines/s (default 20000) for
# BENCH_LATENCY_SECONDS (default 10), each line carrying its write time
# (GET /t/<ns>?rid=<n>), after 100 warm-up lines; CPU counts from the first
# measured line there. Runs each configuration BENCH_RUNS times (default
# 3), interleaved, and prints the medians beside the targets, and
# logferry's totals beside the two-hop peer's with their ratio, each ratio
# taken within one run (median and spread over the runs).
# Timing only: this never fails on a number. It exits 1 only when a run did
# not deliver every line exactly once (and says which side failed).
#
# A real Kafka cluster instead of the mock: BENCH_KAFKA=HOST:PORT,... (or
# KAFKA=, as in make bench KAFKA=...; plaintext listener, topic creation
# allowed). Nothing is started or stopped for Kafka then: each measurement
# creates topics of its own with tests/tools/kafka_admin (bench<PID>-<run>-
# <kind>.nginx for logferry, bench<PID>-<run>-<kind>.rsyslog for rsyslog;
# 3 partitions, replication 3, min.insync.replicas=2; left in place) and
# both logferry and rsyslog produce into that cluster. The brokers' CPU
# (user+sys of their JVMs, over the same span as the daemons') is reported
# when their PIDs are known: BENCH_KAFKA_PIDS="PID PID PID", or
# BENCH_KAFKA_DIR (or KAFKA_DIR) = the directory of a cluster started by
# tests/kafka/kafka-cluster.sh (PIDs from DIR/node-N/pid; the bootstrap from
# DIR/cluster.env when BENCH_KAFKA is not set).
#
# Environment: BENCH_LINES (or LINES), BENCH_RUNS (or RUNS), BENCH_RATE,
# BENCH_LATENCY_SECONDS, BENCH_SIDES (default "logferry rsyslog_relp";
# also "rsyslog", the one-hop peer), BENCH_RELP_TLSLIB (librelp's TLS
# library for the two-hop peer: gnutls, its default, or openssl),
# BENCH_RELP_WINDOW (omrelp's windowSize, default 1024), BENCH_RELP_QUEUE
# (the edge's action queue: memory, the default, or disk), BENCH_RELP_PARSE
# (nginx, the default: the aggregator parses the NGINX fields; none),
# BENCH_KINDS (default "throughput latency"), BENCH_KEEP (keep the work
# directory: logs, configurations, each run's consumer output),
# BENCH_KAFKA, BENCH_KAFKA_PIDS, BENCH_KAFKA_DIR (above), LOGFERRY_AGENT,
# LOGFERRY_RELAY, MOCK_KAFKA, KAFKA_ADMIN, KAFKA_LATENCY, top_srcdir,
# top_builddir.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${LOGFERRY_AGENT:=$top_builddir/agent/logferry-agent}"
: "${LOGFERRY_RELAY:=$top_builddir/relay/logferry-relay}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
: "${KAFKA_LATENCY:=$top_builddir/bench/kafka_latency}"
: "${KAFKA_ADMIN:=$top_builddir/tests/tools/kafka_admin}"
REAL=${BENCH_KAFKA:-${KAFKA:-}}
KDIR=${BENCH_KAFKA_DIR:-${KAFKA_DIR:-}}
KPIDS=${BENCH_KAFKA_PIDS:-}
N=${BENCH_LINES:-${LINES:-1000000}}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
RATE=${BENCH_RATE:-20000}
LAT_SECS=${BENCH_LATENCY_SECONDS:-10}
LAT_LINES=$((RATE * LAT_SECS))
WARM=100
SIDES=${BENCH_SIDES:-logferry rsyslog_relp}
RELP_TLSLIB=${BENCH_RELP_TLSLIB:-gnutls}
# omrelp's window (messages sent before their acknowledgement): librelp's
# default, 128, holds the edge to about 3k lines/s on loopback (a window
# per round of delayed ACKs); from 1024 on the window is not the limit.
RELP_WINDOW=${BENCH_RELP_WINDOW:-1024}
# The edge's action queue: "memory" (an in-memory LinkedList queue, rsyslog's
# defaults) or "disk" (disk-assisted: the same, spilling to queue files in
# the edge's work directory when full, saved there on shutdown). In one of
# two runs, Debian's 8.2302 left the last 381 lines of a 200k-line file in
# the disk part and did not send them for 20 s, so that the run failed
# its exactly-once check: memory is the default (bench/README.md).
RELP_QUEUE=${BENCH_RELP_QUEUE:-memory}
# What the aggregator makes of a line: "nginx" parses it (mmnormalize, a
# liblognorm rule for the combined format) into the 11 fields logferry's
# nginx_combined gives, rendered as JSON beside time, host and tag, as
# logferry's relay renders them (a line that does not parse goes out as
# the unparsed "message"); "none" sends the line as "message" unparsed.
RELP_PARSE=${BENCH_RELP_PARSE:-nginx}
KINDS=${BENCH_KINDS:-throughput latency}
# Targets (issue 19; docs/performance.md has the costs they come from).
# T_RATIO: the whole pipeline's CPU per line, the two-hop peer's over
# logferry's ("5x under the best peer").
T_AGENT_US=1.0 T_RELAY_US=2.5 T_RATE=300000 T_AGENT_MIB=16 T_P99_MS=100 T_RATIO=5

. "$top_srcdir/bench/bench_lib.sh"
bench_workdir bench_e2e logferry-bench
BENCH_KEPT_NOTE=" (consumer output of each run in $T/runs)"
TICK=$(getconf CLK_TCK)
FAILED=0

if [ -n "$KDIR" ]; then
	[ -f "$KDIR/cluster.env" ] || {
		echo "bench_e2e: no running cluster in $KDIR (no cluster.env; kafka-cluster.sh start $KDIR)" >&2
		exit 2
	}
	[ -n "$REAL" ] || REAL=$(sed -n 's/^BOOTSTRAP=//p' "$KDIR/cluster.env")
	if [ -z "$KPIDS" ]; then
		for f in "$KDIR"/node-*/pid; do
			[ -f "$f" ] && KPIDS="$KPIDS $(cat "$f")"
		done
	fi
fi
KPIDS=$(echo $KPIDS)
for p in $KPIDS; do
	[ -r "/proc/$p/stat" ] || {
		echo "bench_e2e: Kafka broker PID $p is not running (BENCH_KAFKA_PIDS or BENCH_KAFKA_DIR)" >&2
		exit 2
	}
done
if [ -n "$REAL" ]; then
	tools="$KAFKA_ADMIN $KAFKA_LATENCY"
else
	tools="$MOCK_KAFKA $KAFKA_LATENCY"
fi
for tool in $tools; do
	[ -x "$tool" ] || { echo "bench_e2e: $tool not built (make bench builds it)" >&2; exit 2; }
done
if [ -n "$REAL" ]; then
	if ! NBROKERS=$("$KAFKA_ADMIN" -b "$REAL" brokers 2>"$T/admin.err"); then
		echo "bench_e2e: cannot reach Kafka at $REAL (BENCH_KAFKA): $(tail -n 1 "$T/admin.err")" >&2
		exit 2
	fi
fi
# drop_side SIDE: SIDES without SIDE (whole words: rsyslog is not rsyslog_relp).
drop_side() {
	local s out=
	for s in $SIDES; do [ "$s" = "$1" ] || out+="${out:+ }$s"; done
	SIDES=$out
}
for side in $SIDES; do
	case $side in logferry | rsyslog | rsyslog_relp) ;;
	*)
		echo "bench_e2e: unknown side '$side' in BENCH_SIDES (logferry, rsyslog_relp, rsyslog)" >&2
		exit 2 ;;
	esac
done
# /usr/sbin is not in every user's PATH
RSYSLOGD=$(command -v rsyslogd || { [ -x /usr/sbin/rsyslogd ] && echo /usr/sbin/rsyslogd; })
# rsyslog_has MODULE...: rsyslogd is installed with each module.
rsyslog_has() {
	local m
	[ -n "$RSYSLOGD" ] || return 1
	for m; do compgen -G "/usr/lib/*/rsyslog/$m.so" >/dev/null || return 1; done
}
case " $SIDES " in *" rsyslog "*)
	if ! rsyslog_has imfile omkafka; then
		echo "bench_e2e: rsyslogd with omkafka not found: apt-get install rsyslog rsyslog-kafka" \
		    "(packaging/install-bench-deps.sh); leaving rsyslog out" >&2
		drop_side rsyslog
	fi ;;
esac
case $RELP_QUEUE in memory | disk) ;;
*) echo "bench_e2e: BENCH_RELP_QUEUE is memory or disk, not '$RELP_QUEUE'" >&2; exit 2 ;;
esac
case $RELP_PARSE in nginx | none) ;;
*) echo "bench_e2e: BENCH_RELP_PARSE is nginx or none, not '$RELP_PARSE'" >&2; exit 2 ;;
esac
case " $SIDES " in *" rsyslog_relp "*)
	relp_modules="imfile omkafka imrelp omrelp"
	[ "$RELP_PARSE" = nginx ] && relp_modules+=" mmnormalize"
	if ! rsyslog_has $relp_modules; then
		echo "bench_e2e: rsyslogd with $relp_modules not found: apt-get install rsyslog" \
		    "rsyslog-relp rsyslog-kafka (packaging/install-bench-deps.sh); leaving rsyslog_relp out" >&2
		drop_side rsyslog_relp
	elif ! command -v openssl >/dev/null; then
		echo "bench_e2e: openssl not found (the RELP certificates): leaving rsyslog_relp out" >&2
		drop_side rsyslog_relp
	fi ;;
esac

# ---------------------------------------------------------------- inputs

# The throughput input: bench_tail.sh's lines (bench/nginx_log.py), each with its id (?rid=N or
# &rid=N at the end of the path) so that every line is counted once in Kafka.
python3 "$(dirname "$0")/nginx_log.py" "$T/access.log" "$N" --rid ||
	{ echo "bench_e2e: could not write the input with $(dirname "$0")/nginx_log.py" >&2; exit 2; }
SIZE=$(stat -c %s "$T/access.log")
cat "$T/access.log" >/dev/null   # in the page cache, as a live log is

# The paced writer of the latency runs: appends RATE lines/s for SECS
# seconds to FILE, in a write every millisecond; each line's path is
# /t/<CLOCK_REALTIME ns just before its write()>?rid=<n>. "writer.py FILE
# warm N FIRST-ID" appends N warm-up lines instead.
cat >"$T/writer.py" <<'PY'
import os, random, sys, time
path = sys.argv[1]
if sys.argv[2] == "warm":
    # warm-up lines: no write time; ids from argv[4] on, right after the
    # measured lines' 0..RATE*SECS-1
    with open(path, "a") as f:
        for i in range(int(sys.argv[3])):
            f.write('192.0.2.1 - - [22/Nov/2026:09:59:59 +0000] "GET /warmup?rid=%d HTTP/1.1" 200 0 "-" "curl/8.0"\n'
                    % (int(sys.argv[4]) + i))
    sys.exit(0)
rate, secs = int(sys.argv[2]), float(sys.argv[3])
random.seed(3)
agents = ["curl/8.0", "Go-http-client/1.1",
          "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"]
pre = ['%d.%d.%d.%d - - [22/Nov/2026:10:00:00 +0000] "GET /t/' % (
    random.randrange(1, 255), random.randrange(256), random.randrange(256), random.randrange(1, 255))
    for _ in range(61)]
post = [' HTTP/1.1" %d %d "https://www.example.com/" "%s"\n' % (
    random.choice([200, 200, 304, 404]), random.randrange(50000), random.choice(agents)) for _ in range(67)]
total = int(rate * secs)
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
start = time.monotonic()
sent = 0
while sent < total:
    due = min(total, int((time.monotonic() - start) * rate) + 1)
    if due > sent:
        ns = time.time_ns()
        os.write(fd, "".join("%s%d?rid=%d%s" % (pre[i % 61], ns, i, post[i % 67])
                             for i in range(sent, due)).encode())
        sent = due
    nxt = start + sent / rate
    d = nxt - time.monotonic()
    time.sleep(d if d > 0.0002 else 0.0002)
os.close(fd)
PY

# ---------------------------------------------------------------- helpers

# stop PID: SIGTERM, then SIGKILL after 10 s; returns its exit status.
stop() {
	local pid=$1 i rc
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		# a zombie counts as gone
		[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	return $rc
}

# cpu_ticks PID: user+sys of the whole process (every thread) into TICKS.
cpu_ticks() {
	local st
	TICKS=0
	read -r -a st <"/proc/$1/stat" 2>/dev/null || return 1
	TICKS=$((st[13] + st[14]))
}

# rss PID: RssAnon in kB into RSS, without forking (sampled every 50 ms).
rss() {
	local k v
	RSS=0
	while read -r k v _; do
		[ "$k" = RssAnon: ] && { RSS=$v; return 0; }
	done <"/proc/$1/status" 2>/dev/null
	return 1
}

# The mock cluster and the consumer stand in for a Kafka cluster on other
# machines: they run at a higher priority (when allowed) so that they keep
# up and the consumer reads records before the mock's retention (5 MiB per
# partition) deletes them.
NICE=
nice -n -10 true 2>/dev/null && NICE="nice -n -10"

# kafka_start SIDE KIND RUN: the cluster of one measurement and its topic.
# The mock: a fresh one, topics logs.nginx, rsyslog-relp and rsyslog. A real cluster
# (BENCH_KAFKA): nothing started; a topic of this measurement's own, so
# that its watermarks count this run's records only (3 partitions,
# replication 3, min.insync.replicas=2, as the test suite's). Sets
# BOOTSTRAP, LF_PREFIX (the relay's topic before its stream name),
# LF_TOPIC, RS_TOPIC, RELP_TOPIC and BROKER_PIDS (whose CPU and memory count as
# Kafka's: the mock's process, or the real brokers' JVMs when known).
kafka_start() {
	local side=$1 kind=$2 run=$3 topic
	CPU_brokers=0 PEAK_brokers=0 BROKER_BASE=0
	if [ -z "$REAL" ]; then
		LF_PREFIX=logs. LF_TOPIC=logs.nginx RS_TOPIC=rsyslog RELP_TOPIC=rsyslog-relp
		# A fresh mock cluster per measurement: it keeps every record in memory.
		mock_start --brokers 3 --topic logs.nginx:3 --topic rsyslog-relp:3 --topic rsyslog:3 || return 1
		BROKER_PIDS=$MOCK_PID
		return 0
	fi
	BOOTSTRAP=$REAL BROKER_PIDS=$KPIDS
	LF_PREFIX=bench$$-$run-$kind.
	LF_TOPIC=${LF_PREFIX}nginx RS_TOPIC=${LF_PREFIX}rsyslog RELP_TOPIC=${LF_PREFIX}rsyslog-relp
	case $side in
	rsyslog) topic=$RS_TOPIC ;;
	rsyslog_relp) topic=$RELP_TOPIC ;;
	*) topic=$LF_TOPIC ;;
	esac
	if ! "$KAFKA_ADMIN" -b "$BOOTSTRAP" create "$topic" 3 $((NBROKERS < 3 ? NBROKERS : 3)) \
	    min.insync.replicas=$((NBROKERS < 2 ? 1 : 2)) >"$T/admin.out" 2>&1; then
		echo "bench_e2e: cannot create topic $topic on $BOOTSTRAP: $(tail -n 1 "$T/admin.out")" >&2
		return 1
	fi
}

# kafka_stop: stops the mock; a real cluster is left as it is.
kafka_stop() { [ -z "$REAL" ] && stop "$MOCK_PID"; return 0; }

# brokers_ticks / brokers_rss: the sums over BROKER_PIDS into BTICKS / BRSS.
brokers_ticks() {
	local p
	BTICKS=0
	for p in $BROKER_PIDS; do cpu_ticks "$p" && BTICKS=$((BTICKS + TICKS)); done
}
brokers_rss() {
	local p
	BRSS=0
	for p in $BROKER_PIDS; do rss "$p" && BRSS=$((BRSS + RSS)); done
}

# consumer_start TOPIC COUNT [OPTION...]: kafka_latency in the background
# (CONS_PID, output in $T/k.out); it counts each line once by its rid and,
# for logferry, each event once by its headers.
consumer_start() {
	local topic=$1 count=$2 unique=id
	shift 2
	# logferry's records also carry logferry-agent + logferry-seq headers
	[ "$topic" = "$LF_TOPIC" ] && unique=both
	# emptied here, not by the background job: watch must never see the
	# output of an earlier consumer
	: >"$T/k.out"
	: >"$T/k.err"
	$NICE "$KAFKA_LATENCY" -b "$BOOTSTRAP" -t "$topic" -n "$count" --check-unique=$unique "$@" \
	    >>"$T/k.out" 2>>"$T/k.err" &
	CONS_PID=$!
	PIDS+=("$CONS_PID")
	# Records must not stream in while it starts: it would miss the first
	# ones (the partition's head moves on) and start with its own delay.
	for _ in $(seq 100); do
		grep -q "reading .* partitions" "$T/k.err" && break
		kill -0 "$CONS_PID" 2>/dev/null || break
		sleep 0.05
	done
	sleep 1
}

# kval KEY: a value from kafka_latency's output.
kval() { sed -n "s/^$1=//p" "$T/k.out" | tail -1; }

# watch NAME:PID...: samples each daemon's RssAnon every 50 ms until every
# line is in Kafka (the consumer printed in_kafka_ns=, from the partitions'
# watermarks, or reached_ns=) or the consumer exited, or a daemon died;
# then reads each daemon's CPU. Sets PEAK_<NAME>, CPU_<NAME>
# (ticks) and DIED (names of daemons that exited); and for Kafka
# (BROKER_PIDS) PEAK_brokers (the sum of their RssAnon) and CPU_brokers
# (ticks since BROKER_BASE).
watch() {
	local spec name pid line v done_
	DIED=
	PEAK_brokers=0
	for spec in "$@"; do printf -v "PEAK_${spec%%:*}" 0; done
	while :; do
		brokers_rss
		[ "$BRSS" -gt "$PEAK_brokers" ] && PEAK_brokers=$BRSS
		for spec in "$@"; do
			name=${spec%%:*} pid=${spec#*:}
			v=PEAK_$name
			rss "$pid" && [ "$RSS" -gt "${!v}" ] && printf -v "$v" %s "$RSS"
			kill -0 "$pid" 2>/dev/null || DIED+=" $name"
		done
		done_=
		if [ -s "$T/k.out" ]; then
			while read -r line; do
				case $line in in_kafka_ns=* | reached_ns=*) done_=1 ;; esac
			done <"$T/k.out"
		fi
		[ -n "$done_" ] && break
		kill -0 "$CONS_PID" 2>/dev/null || break
		if [ -n "$DIED" ]; then
			# nothing more will come: the consumer reports now
			kill -TERM "$CONS_PID" 2>/dev/null
			break
		fi
		sleep 0.05
	done
	for spec in "$@"; do
		name=${spec%%:*} pid=${spec#*:}
		cpu_ticks "$pid"
		printf -v "CPU_$name" %s "$TICKS"
		v=PEAK_$name
		rss "$pid" && [ "$RSS" -gt "${!v}" ] && printf -v "$v" %s "$RSS"
	done
	brokers_ticks
	CPU_brokers=$((BTICKS - BROKER_BASE))
}

# us_per TICKS LINES
us_per() { awk -v t="$1" -v n="$2" -v tick="$TICK" 'BEGIN { printf "%.2f", t / tick * 1e6 / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# kafka_us LINES / kafka_mib: Kafka's CPU per line and peak memory of the
# last measurement, "-" when its processes are not known.
kafka_us() { if [ -n "$BROKER_PIDS" ]; then us_per "$CPU_brokers" "$1"; else echo -; fi; }
kafka_mib() { if [ -n "$BROKER_PIDS" ]; then mib "$PEAK_brokers"; else echo -; fi; }

# record CONFIG METRIC VALUE: kept for the medians, and with the run's
# number (RUN) for the ratios between sides.
record() {
	echo "$3" >>"$T/res.$1.$2"
	echo "$RUN $3" >>"$T/run.$1.$2"
}
# ratios NUM-CONFIG NUM-METRIC DEN-CONFIG DEN-METRIC OUT-CONFIG OUT-METRIC:
# NUM / DEN within each run that has both (both sides of one run share the
# machine's load of that moment), kept as OUT for median and spread. A
# lower bound (">= x") over an exact figure is a lower bound; over a lower
# bound nothing is known, and that run has no ratio.
ratios() {
	[ -s "$T/run.$1.$2" ] && [ -s "$T/run.$3.$4" ] || return 0
	awk 'NR == FNR { num[$1] = $NF; lb[$1] = ($2 == ">="); next }
		($1 in num) && $2 != ">=" && $NF + 0 > 0 {
			printf "%s%.2f\n", lb[$1] ? ">= " : "", num[$1] / $NF }' \
	    "$T/run.$1.$2" "$T/run.$3.$4" >>"$T/res.$5.$6"
}
# spread CONFIG METRIC [FORMAT]: the median, with the lowest and highest
# run in parentheses when there are two or more, each in FORMAT (printf;
# default %.2f).
spread() {
	local m
	m=$(median "$1" "$2")
	[ "$m" = - ] && { echo -; return; }
	awk '{ print $NF }' "$T/res.$1.$2" | sort -g | awk -v m="$m" -v f="${3:-%.2f}" '{ v[++n] = $1 }
		END {
			lb = sub(/^>= /, "", m)
			printf "%s" f, lb ? ">= " : "", m
			if (n > 1) printf " (" f "-" f ")", v[1], v[n]
			print ""
		}'
}
# median CONFIG METRIC: of the runs. A ">= x" value (a lower bound) makes
# the median a lower bound only if it sorts at or below the middle.
median() {
	[ -s "$T/res.$1.$2" ] || { echo -; return; }
	awk '{ print $NF, ($1 == ">=") }' "$T/res.$1.$2" | sort -g | awk '{ v[++n] = $1; lb[n] = $2 }
		END {
			lo = int((n + 1) / 2); hi = int(n / 2) + 1
			m = n % 2 ? v[lo] : (v[lo] + v[hi]) / 2
			for (i = 1; i <= hi; i++) if (lb[i]) bound = 1
			print (bound ? ">= " : "") m
		}'
}

# check_cell COUNT: what kafka_latency concluded, as a table cell. Sets OK
# (the pipeline delivered COUNT records, none twice as far as was read).
check_cell() {
	local st high dups
	st=$(kval status) high=$(kval kafka_high)
	OK=
	case $st in
	ok) OK=1; echo "ok: each once" ;;
	fell_behind)
		# Kafka holds exactly COUNT (the watermarks): the pipeline
		# delivered; the consumer read only some of them back.
		dups=$(($(kval id_duplicates) + $(kval seq_duplicates) + 0))
		if [ "$high" = "$1" ] && [ "$dups" = 0 ]; then
			OK=1
			echo "$high in Kafka; $(kval records) read back, each once (the rest deleted by the mock's retention first)"
		else
			echo "$st: ${high:-?} in Kafka for $1 lines"
		fi ;;
	"") echo "no consumer output" ;;
	not_started) echo "not started" ;;
	*) echo "$st: ${high:-$(kval records)}/$1 in Kafka, $(kval records) read, $(kval id_duplicates) dup, $(kval id_missing) missing" ;;
	esac
}

# pct Q LINES: latency percentile Q (p50, p90, p99) of the last run; when
# the records the consumer could not read back (deleted by the mock's
# retention first) are more than the share above Q, the percentile lies
# among them: it is at least the max seen, shown as ">= max".
pct() {
	local q=$1 lines=$2 unread
	unread=$(kval latency_unread)
	awk -v q="${q#p}" -v n="$lines" -v u="${unread:-0}" -v v="$(kval "latency_${q}_ms")" \
	    -v max="$(kval latency_max_ms)" 'BEGIN {
		if (v == "") print "-"; else if (u > n * (100 - q) / 100) printf ">= %s\n", max; else print v }'
}

# lines/s from the first to the last record in Kafka (the watermarks;
# the consumer's arrivals if there were none).
rate_of() { local r; r=$(kval kafka_rate); echo "${r:-$(kval rate)}"; }

# diagnose SIDE: which part of the pipeline failed, into $T/diag.
diagnose_logferry() {
	local what=$1 cfg=$AGENT_CFG spooled stats
	{
		echo "- logferry $what: $(kval kafka_high) of $2 lines in Kafka, $(kval records) read back (consumer: $(kval status))."
		for d in $DIED; do echo "  - $d exited (its log is below)"; done
		if [ -z "$AGENT_PID" ]; then
			echo "  - the agent was not started: the relay did not start"
			echo "  - relay log (last lines):"; tail -n 5 "$T/relay.log" | sed 's/^/        /'
			return
		fi
		stats=$("$LOGFERRY_AGENT" -c "$cfg" --spool-stats 2>&1)
		spooled=$(echo "$stats" | sed -n 's/^next sequence: //p')
		if [ -n "$spooled" ]; then
			echo "  - agent spool: $(echo "$stats" | sed -n 's/^events: //p') events not acknowledged, next sequence $spooled"
		else
			echo "  - agent spool: $(echo "$stats" | head -1)"
		fi
		if [ "$(kval kafka_high)" = 0 ] || [ -z "$(kval records)" ] || [ "$(kval records)" = 0 ]; then
			if [ -n "$spooled" ] && [ "$spooled" -gt 0 ] 2>/dev/null; then
				echo "  - the agent spooled lines but none reached Kafka: shipper, relay or producer"
			else
				echo "  - the agent spooled nothing: file source or agent start"
			fi
		fi
		echo "  - relay log (last lines):"; tail -n 5 "$T/relay.log" | sed 's/^/        /'
		echo "  - agent log (last lines):"; tail -n 5 "$T/agent.log" | sed 's/^/        /'
		[ -s "$T/k.err" ] && { echo "  - consumer:"; tail -n 3 "$T/k.err" | sed 's/^/        /'; }
	} >>"$T/diag"
}

diagnose_rsyslog_relp() {
	{
		echo "- rsyslog_relp $1: $(kval kafka_high) of $2 lines in Kafka, $(kval records) read back (consumer: $(kval status))."
		for d in $DIED; do echo "  - the $d rsyslogd exited"; done
		[ -z "$EDGE_PID" ] && echo "  - the edge was not started: the aggregator did not listen (its messages are below)"
		echo "  - edge rsyslogd output and messages (last lines):"
		tail -n 5 "$T/relp/edge/log" "$T/relp/edge/internal.log" 2>/dev/null | sed 's/^/        /'
		echo "  - aggregator rsyslogd output and messages (last lines):"
		tail -n 5 "$T/relp/agg/log" "$T/relp/agg/internal.log" 2>/dev/null | sed 's/^/        /'
		echo "  - the edge's queue files: $(ls "$T/relp/edge/queue" 2>/dev/null | wc -l)"
	} >>"$T/diag"
}

diagnose_rsyslog() {
	{
		echo "- rsyslog $1: $(kval kafka_high) of $2 lines in Kafka, $(kval records) read back (consumer: $(kval status))."
		[ -n "$DIED" ] && echo "  - rsyslogd exited"
		echo "  - rsyslogd output and messages (last lines):"
		tail -n 5 "$T/rs/log" "$T/rs/internal.log" 2>/dev/null | sed 's/^/        /'
	} >>"$T/diag"
}

# ---------------------------------------------------------------- logferry

# logferry_start INPUT: writes the configurations, starts the relay and the
# agent (AGENT_PID, RELAY_PID, AGENT_CFG); returns 1 if either did not start.
logferry_start() {
	local input=$1 port
	rm -rf "$T/agent" "$T/agent.log" "$T/relay.log"
	AGENT_PID='' RELAY_PID='' AGENT_CFG=$T/agent.yaml
	port=$(free_port)
	cat >"$T/relay.yaml" <<YAML
id: relay-bench
log_level: info
listen: 127.0.0.1:$port
workers: 2
tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key}
kafka: {brokers: "$BOOTSTRAP", topic: "$LF_PREFIX\${stream}", key: "\${host}"}
YAML
	cat >"$AGENT_CFG" <<YAML
id: web-01
data_dir: $T/agent
log_level: info
spool: {sync: always}
sources:
  - {name: nginx, type: file, paths: [$input], format: nginx_combined}
relays:
  servers: [127.0.0.1:$port]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
YAML
	"$LOGFERRY_RELAY" -c "$T/relay.yaml" >"$T/relay.log" 2>&1 &
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	for _ in $(seq 200); do
		grep -q "listening on" "$T/relay.log" && break
		kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.05
	done
	if ! kill -0 "$RELAY_PID" 2>/dev/null; then
		DIED=" relay"
		return 1
	fi
	"$LOGFERRY_AGENT" -c "$AGENT_CFG" >"$T/agent.log" 2>&1 &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	return 0
}

logferry_stop() {
	stop "$AGENT_PID"
	stop "$RELAY_PID"
}

# Sides of two daemons (logferry: agent and relay; rsyslog_relp: edge and
# aggregator) are measured alike. SIDE_start INPUT starts both (their PIDs
# in the variables named by the specs), SIDE_stop stops both, and
# diagnose_SIDE KIND LINES says which part failed.

# pair_throughput RUN SIDE TOPIC-VAR CONFIG LABEL NAME1:PIDVAR1 NAME2:PIDVAR2:
# the whole file through SIDE as fast as it goes; records under CONFIG
# (rate, NAME1_us, NAME2_us, total_us, NAME1_mib, NAME2_mib, kafka_us,
# kafka_mib) and a row of the throughput table labelled LABEL.
pair_throughput() {
	local run=$1 side=$2 topic=$3 cfg=$4 label=$5 n1=${6%%:*} p1=${6#*:} n2=${7%%:*} p2=${7#*:}
	local rate cell c1 c2 m1 m2
	kafka_start "$side" tput "$run" || return 1
	consumer_start "${!topic}" "$N" -T $((N / 5000 + 60)) -i 20 --linger 1
	DIED=
	brokers_ticks
	BROKER_BASE=$BTICKS
	if "${side}_start" "$T/access.log"; then
		watch "$n1:${!p1}" "$n2:${!p2}"
	else
		printf -v "CPU_$n1" 0; printf -v "CPU_$n2" 0
		printf -v "PEAK_$n1" 0; printf -v "PEAK_$n2" 0
		kill -TERM "$CONS_PID"
	fi
	wait "$CONS_PID"
	c1=CPU_$n1 c2=CPU_$n2 m1=PEAK_$n1 m2=PEAK_$n2
	rate=$(rate_of)
	check_cell "$N" >"$T/cell"
	cell=$(cat "$T/cell")
	[ -n "$OK" ] || { FAILED=1; "diagnose_$side" throughput "$N"; }
	"${side}_stop"
	kafka_stop
	if [ -n "$OK" ]; then
		record "$cfg" rate "$rate"
		record "$cfg" "${n1}_us" "$(us_per "${!c1}" "$N")"
		record "$cfg" "${n2}_us" "$(us_per "${!c2}" "$N")"
		record "$cfg" total_us "$(us_per $((${!c1} + ${!c2})) "$N")"
		record "$cfg" "${n1}_mib" "$(mib "${!m1}")"
		record "$cfg" "${n2}_mib" "$(mib "${!m2}")"
		record "$cfg" kafka_us "$(kafka_us "$N")"
		record "$cfg" kafka_mib "$(kafka_mib)"
	fi
	printf '| %s #%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$run" "${rate:--}" \
	    "$(us_per "${!c1}" "$N")" "$(us_per "${!c2}" "$N")" \
	    "$(us_per $((${!c1} + ${!c2})) "$N")" "$(kafka_us "$N")" "$(mib "${!m1}")" \
	    "$(mib "${!m2}")" "$(kafka_mib)" "$(kval kafka_high)" "$cell" >>"$T/tput.md"
}

# pair_latency RUN SIDE TOPIC-VAR CONFIG LABEL NAME1:PIDVAR1 NAME2:PIDVAR2
# [P99-TO-PRODUCE]: the latency run of SIDE; records p99, p50 and total_us
# under CONFIG, and a row of the latency table (P99-TO-PRODUCE: the
# "p99 to produce()" cell, "-" when the records carry no usable time stamp).
pair_latency() {
	local run=$1 side=$2 topic=$3 cfg=$4 label=$5 n1=${6%%:*} p1=${6#*:} n2=${7%%:*} p2=${7#*:}
	local produce=${8:-} cell c1 c2 m1
	kafka_start "$side" lat "$run" || return 1
	: >"$T/live.log"
	DIED=
	printf -v "CPU_$n1" 0; printf -v "CPU_$n2" 0
	printf -v "PEAK_$n1" 0; printf -v "PEAK_$n2" 0
	if "${side}_start" "$T/live.log"; then
		latency_measure "${!topic}" "$n1:${!p1}" "$n2:${!p2}"
	else
		echo "status=not_started" >"$T/k.out"
	fi
	c1=CPU_$n1 c2=CPU_$n2 m1=PEAK_$n1
	check_cell $((LAT_LINES + WARM)) >"$T/cell"
	cell=$(cat "$T/cell")
	[ -n "$OK" ] || { FAILED=1; "diagnose_$side" latency $((LAT_LINES + WARM)); }
	"${side}_stop"
	kafka_stop
	[ -n "$OK" ] && record "$cfg" p99 "$(pct p99 "$LAT_LINES")" &&
	    record "$cfg" p50 "$(pct p50 "$LAT_LINES")" &&
	    record "$cfg" total_us "$(us_per $((${!c1} + ${!c2})) "$LAT_LINES")"
	printf '| %s #%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$run" \
	    "$(pct p50 "$LAT_LINES")" "$(pct p90 "$LAT_LINES")" "$(pct p99 "$LAT_LINES")" \
	    "$(kval latency_max_ms)" "${produce:-$(kval produce_p99_ms)}" "$(us_per "${!c1}" "$LAT_LINES")" \
	    "$(us_per "${!c2}" "$LAT_LINES")" "$(kafka_us "$LAT_LINES")" "$(mib "${!m1}")" \
	    "$cell" >>"$T/lat.md"
}

logferry_throughput() {
	pair_throughput "$1" logferry LF_TOPIC lf_tput logferry agent:AGENT_PID relay:RELAY_PID
}

logferry_latency() {
	pair_latency "$1" logferry LF_TOPIC lf_lat logferry agent:AGENT_PID relay:RELAY_PID
}

# latency_measure TOPIC NAME:PID...: with the daemons running, WARM lines
# first, waited for in Kafka (the connections, the topic's metadata and the
# producer id are then in place: the figures are for the steady state);
# then RATE lines/s for LAT_SECS s, measured. CPU_<NAME> counts from the
# first measured line. Returns 1 if the warm-up lines never arrived.
latency_measure() {
	local topic=$1 spec wpid v b
	shift
	# The measuring consumer starts first and reads the warm-up lines too.
	consumer_start "$topic" $((LAT_LINES + WARM)) --latency -T $((LAT_SECS + 150)) -i 80 --linger 1
	python3 "$T/writer.py" "$T/live.log" warm "$WARM" "$LAT_LINES"
	$NICE "$KAFKA_LATENCY" -b "$BOOTSTRAP" -t "$topic" -n "$WARM" -T 60 -i 20 -q \
	    >"$T/warm.out" 2>"$T/warm.err"
	if [ "$(sed -n 's/^status=//p' "$T/warm.out")" != ok ]; then
		for spec; do kill -0 "${spec#*:}" 2>/dev/null || DIED+=" ${spec%%:*}"; done
		for spec; do printf -v "CPU_${spec%%:*}" 0; printf -v "PEAK_${spec%%:*}" 0; done
		CPU_brokers=0 PEAK_brokers=0
		kill -TERM "$CONS_PID" 2>/dev/null
		wait "$CONS_PID"
		return 1
	fi
	for spec; do
		cpu_ticks "${spec#*:}"
		printf -v "BASE_${spec%%:*}" %s "$TICKS"
	done
	brokers_ticks
	BROKER_BASE=$BTICKS
	python3 "$T/writer.py" "$T/live.log" "$RATE" "$LAT_SECS" &
	wpid=$!
	PIDS+=("$wpid")
	watch "$@"
	stop "$wpid"
	wait "$CONS_PID"
	for spec; do
		v=CPU_${spec%%:*} b=BASE_${spec%%:*}
		printf -v "$v" %s $((${!v} - ${!b}))
	done
}

# ---------------------------------------------------------------- rsyslog

# omkafka_action TOPIC TEMPLATE: rsyslog's action producing into TOPIC of
# the cluster (BOOTSTRAP) with the relay's producer settings, for both
# rsyslog sides.
omkafka_action() {
	local brokers
	brokers=$(echo "$BOOTSTRAP" | sed 's/[^,]*/"&"/g')
	echo "action(type=\"omkafka\" broker=[$brokers] topic=\"$1\" template=\"$2\" partitions.auto=\"on\"
	       confParam=[\"queue.buffering.max.ms=5\", \"enable.idempotence=true\"]
	       topicConfParam=[\"request.required.acks=-1\"])"
}

# rsyslog_start INPUT: imfile (inotify) -> omkafka into topic RS_TOPIC,
# the raw line as the value, acks from all replicas, idempotent producer,
# 5 ms linger (the relay's own settings); the state file in its own work
# directory. Sets RS_PID.
rsyslog_start() {
	local input=$1
	rm -rf "$T/rs" && mkdir -p "$T/rs"
	cat >"$T/rs/rsyslog.conf" <<CONF
global(workDirectory="$T/rs")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="tokafka") {
	$(omkafka_action "$RS_TOPIC" raw)
}
input(type="imfile" file="$input" tag="nginx" ruleset="tokafka" freshStartTail="off")
# rsyslogd's own messages (errors from omkafka among them)
*.* action(type="omfile" file="$T/rs/internal.log")
CONF
	"$RSYSLOGD" -n -f "$T/rs/rsyslog.conf" -i "$T/rs/rsyslogd.pid" >"$T/rs/log" 2>&1 &
	RS_PID=$!
	PIDS+=("$RS_PID")
}

rsyslog_throughput() {
	local run=$1 rate cell
	kafka_start rsyslog tput "$run" || return 1
	consumer_start "$RS_TOPIC" "$N" -T $((N / 5000 + 60)) -i 20 --linger 1
	DIED=
	brokers_ticks
	BROKER_BASE=$BTICKS
	rsyslog_start "$T/access.log"
	watch rsyslogd:"$RS_PID"
	wait "$CONS_PID"
	rate=$(rate_of)
	check_cell "$N" >"$T/cell"
	cell=$(cat "$T/cell")
	[ -n "$OK" ] || { FAILED=1; diagnose_rsyslog throughput "$N"; }
	stop "$RS_PID"
	kafka_stop
	if [ -n "$OK" ]; then
		record rs_tput rate "$rate"
		record rs_tput us "$(us_per "$CPU_rsyslogd" "$N")"
		record rs_tput mib "$(mib "$PEAK_rsyslogd")"
		record rs_tput kafka_us "$(kafka_us "$N")"
		record rs_tput kafka_mib "$(kafka_mib)"
	fi
	printf '| rsyslog #%s | %s | %s | - | %s | %s | %s | - | %s | %s | %s |\n' "$run" "${rate:--}" \
	    "$(us_per "$CPU_rsyslogd" "$N")" "$(us_per "$CPU_rsyslogd" "$N")" "$(kafka_us "$N")" \
	    "$(mib "$PEAK_rsyslogd")" "$(kafka_mib)" "$(kval kafka_high)" "$cell" >>"$T/tput.md"
}

rsyslog_latency() {
	local run=$1 cell
	kafka_start rsyslog lat "$run" || return 1
	: >"$T/live.log"
	DIED=
	rsyslog_start "$T/live.log"
	latency_measure "$RS_TOPIC" rsyslogd:"$RS_PID"
	check_cell $((LAT_LINES + WARM)) >"$T/cell"
	cell=$(cat "$T/cell")
	[ -n "$OK" ] || { FAILED=1; diagnose_rsyslog latency $((LAT_LINES + WARM)); }
	stop "$RS_PID"
	kafka_stop
	[ -n "$OK" ] && record rs_lat p99 "$(pct p99 "$LAT_LINES")" &&
	    record rs_lat p50 "$(pct p50 "$LAT_LINES")"
	# omkafka stamps records with the message's time in whole seconds: no
	# "to produce()" figure for it.
	printf '| rsyslog #%s | %s | %s | %s | %s | - | %s | - | %s | %s | %s |\n' "$run" \
	    "$(pct p50 "$LAT_LINES")" "$(pct p90 "$LAT_LINES")" "$(pct p99 "$LAT_LINES")" \
	    "$(kval latency_max_ms)" "$(us_per "$CPU_rsyslogd" "$LAT_LINES")" \
	    "$(kafka_us "$LAT_LINES")" "$(mib "$PEAK_rsyslogd")" "$cell" >>"$T/lat.md"
}

# ---------------------------------------------------------------- rsyslog, two hops

# relp_certs: a CA and two leaves for RELP over TLS, into $T/relp-certs
# (ECDSA P-256, as logferry's): the aggregator's (CN and SAN aggregator,
# localhost, 127.0.0.1) and the edge's (CN and SAN edge). Each side checks
# the other's name (tls.authMode name) against its tls.permittedPeer.
relp_certs() {
	local d=$T/relp-certs name ext
	mkdir -p "$d"
	cat >"$d/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[aggregator]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:aggregator,DNS:localhost,IP:127.0.0.1
[edge]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:edge
CNF
	openssl req -config "$d/openssl.cnf" -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=bench RELP CA" -days 30 -extensions ca \
	    >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
	for name in aggregator edge; do
		openssl req -config "$d/openssl.cnf" -x509 -CA "$d/ca.crt" -CAkey "$d/ca.key" \
		    -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$name.key" \
		    -out "$d/$name.crt" -subj "/CN=$name" -days 30 -extensions "$name" \
		    >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
	done
}

# relp_ruleset: the aggregator's rules for each line (RELP_PARSE). The
# forwarded message keeps the space after the tag, hence two rules.
relp_ruleset() {
	if [ "$RELP_PARSE" = none ]; then
		echo "	$(omkafka_action "$RELP_TOPIC" json)"
		return
	fi
	local q='"' rule
	rule="%remote_addr:word% %ident:word% %remote_user:word% [%time_local:char-to{${q}extradata$q:$q]$q}%]"
	rule="$rule \"%method:word% %path:word% %protocol:char-to{${q}extradata$q:$q\\$q$q}%\""
	rule="$rule %status:number% %body_bytes_sent:number%"
	rule="$rule \"%http_referer:char-to{${q}extradata$q:$q\\$q$q}%\""
	rule="$rule \"%http_user_agent:char-to{${q}extradata$q:$q\\$q$q}%\""
	printf 'version=2\nrule=nginx:%s\nrule=nginx: %s\n' "$rule" "$rule" >"$T/relp/agg/nginx.rb"
	cat <<RULES
	action(type="mmnormalize" ruleBase="$T/relp/agg/nginx.rb")
	if \$parsesuccess == "OK" then {
		set \$!request = \$!method & " " & \$!path & " " & \$!protocol;
		$(omkafka_action "$RELP_TOPIC" nginx)
	} else {
		$(omkafka_action "$RELP_TOPIC" json)
	}
RULES
}

# listening PORT: something listens on 127.0.0.1:PORT (from /proc/net/tcp,
# without connecting: a bare TCP connection would be an error in imrelp's log).
listening() {
	local hex
	printf -v hex '0100007F:%04X' "$1"
	awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
}

# rsyslog_relp_start INPUT: the aggregator (imrelp, TLS, the edge's
# certificate checked by name -> the NGINX fields parsed unless RELP_PARSE
# is none -> omkafka into RELP_TOPIC, a JSON record per line, the one-hop
# side's producer settings), then, once it listens, the edge (imfile ->
# omrelp over TLS with its client certificate, through an action queue in
# memory or disk-assisted (RELP_QUEUE), retried without end: rsyslog's
# reliable forwarding). Each in its own work directory (state, queue
# files, pid file, rule base, messages). Sets AGG_PID and EDGE_PID;
# returns 1 if the aggregator did not listen (DIED says so when it exited).
rsyslog_relp_start() {
	local input=$1 port c=$T/relp-certs disk=
	[ "$RELP_QUEUE" = disk ] &&
	    disk="queue.filename=\"torelp\" queue.spoolDirectory=\"$T/relp/edge/queue\" queue.saveOnShutdown=\"on\""
	rm -rf "$T/relp"
	mkdir -p "$T/relp/agg" "$T/relp/edge/queue"
	AGG_PID='' EDGE_PID=''
	port=$(free_port)
	cat >"$T/relp/agg/rsyslog.conf" <<CONF
global(workDirectory="$T/relp/agg")
module(load="imrelp" tls.tlslib="$RELP_TLSLIB")
module(load="omkafka")
$([ "$RELP_PARSE" = nginx ] && echo 'module(load="mmnormalize")')
template(name="json" type="list" option.jsonf="on") {
	property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
	property(outname="host" name="hostname" format="jsonf")
	property(outname="tag" name="programname" format="jsonf")
	property(outname="message" name="msg" format="jsonf")
}
template(name="nginx" type="list" option.jsonf="on") {
	property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
	property(outname="host" name="hostname" format="jsonf")
	property(outname="tag" name="programname" format="jsonf")
$(for f in remote_addr remote_user time_local request method path protocol status body_bytes_sent \
    http_referer http_user_agent; do
	echo "	property(outname=\"$f\" name=\"\$!$f\" format=\"jsonf\")"
done)
}
ruleset(name="tokafka") {
$(relp_ruleset)
}
input(type="imrelp" address="127.0.0.1" port="$port" ruleset="tokafka"
      tls="on" tls.caCert="$c/ca.crt" tls.myCert="$c/aggregator.crt" tls.myPrivKey="$c/aggregator.key"
      tls.authMode="name" tls.permittedPeer=["edge"])
*.* action(type="omfile" file="$T/relp/agg/internal.log")
CONF
	cat >"$T/relp/edge/rsyslog.conf" <<CONF
global(workDirectory="$T/relp/edge")
module(load="imfile" mode="inotify")
module(load="omrelp" tls.tlslib="$RELP_TLSLIB")
ruleset(name="torelp") {
	action(type="omrelp" target="127.0.0.1" port="$port" windowSize="$RELP_WINDOW"
	       tls="on" tls.caCert="$c/ca.crt" tls.myCert="$c/edge.crt" tls.myPrivKey="$c/edge.key"
	       tls.authMode="name" tls.permittedPeer=["aggregator"]
	       queue.type="LinkedList" $disk
	       action.resumeRetryCount="-1" action.resumeInterval="1")
}
input(type="imfile" file="$input" tag="nginx" ruleset="torelp" freshStartTail="off")
*.* action(type="omfile" file="$T/relp/edge/internal.log")
CONF
	"$RSYSLOGD" -n -f "$T/relp/agg/rsyslog.conf" -i "$T/relp/agg/rsyslogd.pid" >"$T/relp/agg/log" 2>&1 &
	AGG_PID=$!
	PIDS+=("$AGG_PID")
	# the edge would otherwise find no listener and retry later
	for _ in $(seq 200); do
		listening "$port" && break
		kill -0 "$AGG_PID" 2>/dev/null || break
		sleep 0.05
	done
	if ! listening "$port"; then
		kill -0 "$AGG_PID" 2>/dev/null || DIED=" aggregator"
		return 1
	fi
	"$RSYSLOGD" -n -f "$T/relp/edge/rsyslog.conf" -i "$T/relp/edge/rsyslogd.pid" >"$T/relp/edge/log" 2>&1 &
	EDGE_PID=$!
	PIDS+=("$EDGE_PID")
}

rsyslog_relp_stop() {
	stop "$EDGE_PID"
	stop "$AGG_PID"
}

rsyslog_relp_throughput() {
	pair_throughput "$1" rsyslog_relp RELP_TOPIC relp_tput "rsyslog RELP" edge:EDGE_PID agg:AGG_PID
}

# omkafka stamps records with the message's time in whole seconds: no
# "to produce()" figure for it.
rsyslog_relp_latency() {
	pair_latency "$1" rsyslog_relp RELP_TOPIC relp_lat "rsyslog RELP" edge:EDGE_PID agg:AGG_PID -
}

# ---------------------------------------------------------------- main

case " $SIDES " in *" logferry "*)
	if [ ! -x "$LOGFERRY_AGENT" ] || [ ! -x "$LOGFERRY_RELAY" ]; then
		echo "bench_e2e: $LOGFERRY_AGENT or $LOGFERRY_RELAY not built; leaving logferry out" >&2
		drop_side logferry
	elif ! sh "$top_srcdir/tests/tools/make-certs.sh" "$T/certs"; then
		echo "bench_e2e: make-certs.sh failed" >&2
		exit 1
	fi ;;
esac
case " $SIDES " in *" rsyslog_relp "*)
	if ! relp_certs; then
		echo "bench_e2e: the RELP certificates could not be made (openssl, above); leaving rsyslog_relp out" >&2
		drop_side rsyslog_relp
	fi ;;
esac

echo "## end to end: NGINX log -> Kafka"
echo
echo "$N NGINX combined lines, $((SIZE / N)) bytes/line on average, file in the page cache;" \
    "$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
    "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}"); librdkafka" \
    "$(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || echo '?')," \
    "$("${RSYSLOGD:-rsyslogd}" -v 2>/dev/null | sed -n '1s/^rsyslogd *\([^ ,]*\).*/rsyslog \1/p')," \
    "librelp $(dpkg-query -W -f='${Version}' librelp0 2>/dev/null || echo '?')"
if [ -n "$REAL" ]; then
	KAFKA_DESC="Apache Kafka at $REAL ($NBROKERS brokers, same machine; a topic per measurement,"
	KAFKA_DESC="$KAFKA_DESC 3 partitions, replication $((NBROKERS < 3 ? NBROKERS : 3)), min.insync.replicas=$((NBROKERS < 2 ? 1 : 2)))"
else
	KAFKA_DESC="mock Kafka (3 brokers, in-process, same machine; a fresh one per measurement)"
fi
echo "logferry: agent (file, nginx_combined, spool sync=always) -> TLS -> relay (2 workers," \
    "JSON + logferry-agent/-seq headers, acks=all, idempotent) -> $KAFKA_DESC"
case " $SIDES " in *" rsyslog_relp "*)
	if [ "$RELP_PARSE" = nginx ]; then
		what="mmnormalize (the NGINX combined fields) -> omkafka, a JSON record per line (time, host, tag, the 11 fields)"
	else
		what="omkafka, a JSON record per line (time, host, tag, message; the NGINX fields not parsed)"
	fi
	echo "rsyslog RELP (two hops): edge rsyslogd imfile (inotify) -> omrelp (window $RELP_WINDOW), TLS ($RELP_TLSLIB," \
	    "client certificate, names checked both ways), action queue: $RELP_QUEUE, retried without end" \
	    "-> aggregator rsyslogd imrelp -> $what, acks=all, enable.idempotence=true, queue.buffering.max.ms=5" ;;
esac
case " $SIDES " in *" rsyslog "*)
	echo "rsyslog (one hop): imfile (inotify) -> omkafka, raw line, acks=all (request.required.acks=-1)," \
	    "enable.idempotence=true, queue.buffering.max.ms=5; no parsing, no TLS hop, no disk buffer" ;;
esac
echo "CPU: user+sys from /proc/PID/stat from the daemon's start to the last record in Kafka;" \
    "peak: RssAnon sampled every 50 ms; every line counted exactly once in Kafka by its rid"
if [ -z "$REAL" ]; then
	echo "Kafka columns: the mock cluster's process (tests/tools/mock_kafka), same span"
elif [ -n "$KPIDS" ]; then
	# What the JVMs burn with nothing to do (controllers' heartbeats, GC,
	# the consumer's empty fetches do not run yet): to read the Kafka
	# columns against.
	BROKER_PIDS=$KPIDS
	brokers_ticks
	idle0=$BTICKS
	sleep 5
	brokers_ticks
	echo "Kafka columns: the brokers' JVMs (PIDs $KPIDS), user+sys over the same span, RssAnon summed;" \
	    "idle, they use $(awk -v t=$((BTICKS - idle0)) -v tick="$TICK" 'BEGIN { printf "%.1f", t / tick / 5 * 100 }') % of a CPU"
else
	echo "Kafka columns: - (the brokers' PIDs are unknown: BENCH_KAFKA_PIDS or BENCH_KAFKA_DIR)"
fi
echo "load average (uptime) at the start: $(uptime | sed 's/.*load average: //')"
echo "runs: $RUNS, interleaved; sides: $SIDES; kinds: $KINDS" >&2

: >"$T/tput.md"
: >"$T/lat.md"
: >"$T/diag"
for RUN in $(seq 1 "$RUNS"); do
	run=$RUN
	for kind in $KINDS; do
		for side in $SIDES; do
			echo "run $run/$RUNS: $side $kind" >&2
			"${side}_${kind}" "$run" || FAILED=1
			mkdir -p "$T/runs"
			cp "$T/k.out" "$T/runs/$side-$kind-$run.out" 2>/dev/null
			cp "$T/k.err" "$T/runs/$side-$kind-$run.err" 2>/dev/null
		done
	done
done

case " $KINDS " in *" throughput "*)
	echo
	echo "### throughput: $N lines, as fast as they go"
	echo
	echo "| run | lines/s | agent/edge µs/line | relay/aggregator µs/event | total µs/line | Kafka µs/line | agent/edge peak MiB | relay/aggregator peak MiB | Kafka peak MiB | records | check |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	cat "$T/tput.md"
	echo "(rsyslog RELP rows: the edge rsyslogd in the agent columns, the aggregator in the relay's;" \
	    "one-hop rsyslog rows: rsyslogd is one process, in the agent columns;" \
	    "total: the shipper's own CPU, Kafka's not included)" ;;
esac
case " $KINDS " in *" latency "*)
	echo
	echo "### latency: $RATE lines/s for $LAT_SECS s, from write() to the record in Kafka (ms)"
	echo
	echo "| run | p50 | p90 | p99 | max | p99 to produce() | agent/edge µs/line | relay/aggregator µs/event | Kafka µs/line | agent/edge peak MiB | check |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	cat "$T/lat.md"
	echo "(arrival is when bench/kafka_latency sees the record: its fetch wait, up to 10 ms, is included;"
	echo "\"p99 to produce()\": to the record's time stamp, set when the relay or omkafka handed it to librdkafka, ms;"
	echo "$WARM warm-up lines go through first and are not measured; CPU counts from the first measured line)" ;;
esac

echo
echo "### medians of $RUNS run(s) beside the targets"
echo
echo "| figure | logferry | target | rsyslog RELP two hops | rsyslog one hop |"
echo "|---|---|---|---|---|"
echo "| agent/edge CPU µs/line | $(median lf_tput agent_us) | ≤ $T_AGENT_US | $(median relp_tput edge_us) | $(median rs_tput us) |"
echo "| relay/aggregator CPU µs/event | $(median lf_tput relay_us) | ≤ $T_RELAY_US | $(median relp_tput agg_us) | - |"
echo "| total CPU µs/line | $(median lf_tput total_us) | - | $(median relp_tput total_us) | $(median rs_tput us) |"
echo "| end-to-end lines/s | $(median lf_tput rate) | ≥ $T_RATE | $(median relp_tput rate) | $(median rs_tput rate) |"
echo "| agent/edge peak RssAnon MiB | $(median lf_tput agent_mib) | ≤ $T_AGENT_MIB | $(median relp_tput edge_mib) | $(median rs_tput mib) |"
echo "| relay/aggregator peak RssAnon MiB | $(median lf_tput relay_mib) | - | $(median relp_tput agg_mib) | - |"
echo "| Kafka CPU µs/line (throughput) | $(median lf_tput kafka_us) | - | $(median relp_tput kafka_us) | $(median rs_tput kafka_us) |"
echo "| Kafka peak RssAnon MiB | $(median lf_tput kafka_mib) | - | $(median relp_tput kafka_mib) | $(median rs_tput kafka_mib) |"
echo "| p50 latency ms at $RATE lines/s | $(median lf_lat p50) | - | $(median relp_lat p50) | $(median rs_lat p50) |"
echo "| p99 latency ms at $RATE lines/s | $(median lf_lat p99) | ≤ $T_P99_MS | $(median relp_lat p99) | $(median rs_lat p99) |"

if [[ " $SIDES " == *" logferry "* && " $SIDES " == *" rsyslog_relp "* ]]; then
	# Each ratio is taken within one run, then the median over the runs:
	# both sides of a run met the same load on this machine.
	ratios relp_tput total_us lf_tput total_us ratio cpu
	ratios lf_tput rate relp_tput rate ratio rate
	ratios relp_lat total_us lf_lat total_us ratio lat_cpu
	ratios relp_lat p99 lf_lat p99 ratio p99
	echo
	echo "### logferry against rsyslog RELP/TLS (two hops), ratios within each run"
	echo
	echo "| figure | logferry | rsyslog RELP two hops | ratio (logferry's advantage) | target |"
	echo "|---|---|---|---|---|"
	echo "| total CPU µs/line (throughput) | $(spread lf_tput total_us) | $(spread relp_tput total_us) | $(spread ratio cpu) | ≥ $T_RATIO |"
	echo "| end-to-end lines/s | $(spread lf_tput rate %.0f) | $(spread relp_tput rate %.0f) | $(spread ratio rate) | - |"
	echo "| total CPU µs/line at $RATE lines/s | $(spread lf_lat total_us) | $(spread relp_lat total_us) | $(spread ratio lat_cpu) | - |"
	echo "| p99 latency ms at $RATE lines/s | $(spread lf_lat p99) | $(spread relp_lat p99) | $(spread ratio p99) | - |"
	echo "(medians over the runs that delivered, lowest-highest in parentheses; the ratio is rsyslog's" \
	    "over logferry's for CPU and latency, logferry's over rsyslog's for lines/s, taken within one run:" \
	    "above 1, logferry is ahead; total: edge + aggregator, agent + relay, Kafka not included)"
fi
echo
echo "load average (uptime) at the end: $(uptime | sed 's/.*load average: //')"

if [ -s "$T/diag" ]; then
	echo
	echo "### what failed"
	echo
	cat "$T/diag"
fi
exit "$FAILED"
