#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Tail + parse + spool: a generated NGINX log of BENCH_LINES lines (default
# 1M) read by logferry-agent into its spool with sync=always and
# sync=relaxed, and by rsyslog (imfile -> omfile, Debian's package) on the
# same file, in the same run. Prints lines/s, MB/s, CPU microseconds per
# line (user+sys of the daemon, startup included) and peak private
# (anonymous) memory. Timing only: this never fails on a number.
set -u
: "${top_builddir:=$PWD}"
: "${LOGFERRY_AGENT:=$top_builddir/agent/logferry-agent}"
LINES=${BENCH_LINES:-1000000}
RUNS=${BENCH_RUNS:-3}
T=$(mktemp -d "${TMPDIR:-/tmp}/logferry-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
TICK=$(getconf CLK_TCK)

python3 "$(dirname "$0")/nginx_log.py" "$T/access.log" "$LINES"
SIZE=$(stat -c %s "$T/access.log")
cat "$T/access.log" >/dev/null   # in the page cache, as a live log is

# measure NAME DONE-COMMAND CMD...: runs CMD until DONE-COMMAND succeeds;
# prints one result row.
measure() {
	local name=$1 done=$2 pid start end cpu peak=0 rss hwm=0 t
	shift 2
	start=$(date +%s%N)
	"$@" >"$T/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	until eval "$done"; do
		rss=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		[ "${rss:-0}" -gt "$peak" ] && peak=$rss
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name: exited early; log:"; tail -5 "$T/$name.log"; return 1
		fi
		sleep 0.05
	done
	end=$(date +%s%N)
	read -r -a st <"/proc/$pid/stat"
	cpu=$((st[13] + st[14]))
	rss=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")
	[ "${rss:-0}" -gt "$peak" ] && peak=$rss
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null
	t=$(( (end - start) / 1000 ))
	awk -v n="$name" -v lines="$LINES" -v size="$SIZE" -v us="$t" -v cpu="$cpu" -v tick="$TICK" \
	    -v peak="$peak" -v hwm="$hwm" 'BEGIN {
		printf "%-26s %9.0f %8.1f %9.2f %10.1f %9.1f\n", n, lines / (us / 1e6),
		    size / (us / 1e6) / 1048576, cpu / tick * 1e6 / lines, peak / 1024, hwm / 1024 }'
}

agent_run() {
	local sync=$1 run=$2
	local cfg="$T/agent-$sync.yaml"
	rm -rf "$T/data"
	cat >"$cfg" <<YAML
id: bench
data_dir: $T/data
log_level: warn
spool: {sync: $sync, max_size: 4GiB}
sources:
  - name: nginx
    type: file
    paths: ["$T/access.log"]
    format: nginx_combined
YAML
	measure "logferry sync=$sync #$run" \
	    "[ \"\$(\"$LOGFERRY_AGENT\" -c \"$cfg\" --spool-stats 2>/dev/null | awk '/^events:/ { print \$2 }')\" = $LINES ]" \
	    "$LOGFERRY_AGENT" -c "$cfg"
}

rsyslog_run() {
	local run=$1
	rm -rf "$T/rs" && mkdir -p "$T/rs"
	cat >"$T/rs/rsyslog.conf" <<CONF
global(workDirectory="$T/rs")
module(load="imfile" mode="inotify")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="out") { action(type="omfile" file="$T/rs/out.log" template="raw") }
input(type="imfile" file="$T/access.log" tag="nginx" ruleset="out" freshStartTail="off")
CONF
	measure "rsyslog imfile->omfile #$run" \
	    "[ \"\$(stat -c %s \"$T/rs/out.log\" 2>/dev/null || echo 0)\" -ge $SIZE ]" \
	    rsyslogd -n -f "$T/rs/rsyslog.conf" -i "$T/rs/rsyslogd.pid"
}

echo "tail + parse + spool: $LINES NGINX combined lines, $((SIZE / LINES)) bytes/line on average, file in the page cache"
echo "CPU is user+sys of the daemon from start to the last line spooled; peak is RssAnon (private), HWM is peak RSS"
printf "%-26s %9s %8s %9s %10s %9s\n" "run" "lines/s" "MB/s" "us/line" "peak MiB" "HWM MiB"
for run in $(seq 1 "$RUNS"); do
	agent_run always "$run"
	agent_run relaxed "$run"
	if command -v rsyslogd >/dev/null; then
		rsyslog_run "$run"
	else
		echo "rsyslogd not found: install Debian's rsyslog for the comparison"
	fi
done
echo "issue 7 targets: >= 800k lines/s with sync=always, <= 1 us CPU/line, <= 16 MiB private memory"
