#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# multiline on journal sources, with real journal files written without any
# journald by Debian's systemd-journal-remote: a service's Java and Python
# traces, one journal entry per line as journald stores a unit's stdout,
# become one event each; another unit's entries in between are events of
# their own and, without matches, end the trace; a trace beyond max_bytes is
# cut and marked; an event pending at a stop or a SIGHUP is shipped first;
# an agent killed -9 with a trace pending gathers it again from the
# committed cursor: every entry exactly once.
. "$(dirname "$0")/lib.sh"

need_journal

# jwrite FILE: appends to the journal file FILE one entry per line of stdin,
# "UNIT|MESSAGE": _SYSTEMD_UNIT UNIT.service, from one stdout stream of the
# unit (its _STREAM_ID, _PID and SYSLOG_IDENTIFIER), times growing across calls.
jwrite() {
	python3 -c "$JWRITE_PY" "$T/jclock" | "$JR" -o "$1" - 2>>"$T/journal-remote.log"
}
JWRITE_PY='
import hashlib, os, sys
clock = int(open(sys.argv[1]).read()) if os.path.exists(sys.argv[1]) else 0
out = sys.stdout.buffer
for line in sys.stdin.buffer.read().split(b"\n")[:-1]:
    unit, msg = line.split(b"|", 1)
    clock += 1
    sid = hashlib.md5(unit).hexdigest().encode()
    out.write(b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (1700000000000000 + clock * 1000, 1000000 + clock))
    out.write(b"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=jhost\n")
    out.write(b"_SYSTEMD_UNIT=%s.service\n_STREAM_ID=%s\n_PID=%d\nSYSLOG_IDENTIFIER=%s\n" % (unit, sid, 100 + len(unit), unit))
    out.write(b"_TRANSPORT=stdout\nPRIORITY=6\nMESSAGE=" + msg + b"\n\n")
open(sys.argv[1], "w").write(str(clock))
'

# lines UNIT TEXT: TEXT's lines as jwrite's input, from UNIT.
lines() {
	while IFS= read -r l; do printf '%s|%s\n' "$1" "$l"; done <<<"$2"
}

# jml_config NAME DIR SOURCE-KEYS-YAML: sets cfg to the config of an agent
# reading the journal files of DIR into $T/NAME.data, metrics on $ML_PORT.
jml_config() {
	ML_PORT=$(free_port)
	cfg=$T/$1.yaml
	cat >"$cfg" <<YAML
id: test-agent
data_dir: $T/$1.data
log_level: debug
spool: {commit_interval: 5ms}
metrics: {listen: "$LF_IP:$ML_PORT"}
sources:
  - name: $1
    type: journal
    directory: $2
$3
YAML
}

JAVA_1='2026-12-07 01:02:03,456 ERROR [http-nio-8080-exec-7] c.e.shop.OrderController - request failed
org.springframework.web.util.NestedServletException: Request processing failed; nested exception is java.lang.IllegalStateException: order 42 has no lines
	at org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)
	at org.springframework.web.servlet.FrameworkServlet.doPost(FrameworkServlet.java:909)
	at javax.servlet.http.HttpServlet.service(HttpServlet.java:681)
Caused by: java.lang.IllegalStateException: order 42 has no lines
	at com.example.shop.Order.total(Order.java:88)
	at com.example.shop.OrderService.checkout(OrderService.java:131)
	... 12 more'
JAVA_2='2026-12-07 01:02:03,470 INFO  [http-nio-8080-exec-8] c.e.shop.OrderController - order 43 paid'
PY_1='2026-12-07 01:02:04,001 ERROR worker: job 7 failed
Traceback (most recent call last):
  File "/srv/app/worker.py", line 41, in run
    value = int(payload["count"])
            ~~~~~~~^^^^^^^^^^^^^^^^
KeyError: '"'"'count'"'"'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/worker.py", line 88, in <module>
    main()
  File "/srv/app/worker.py", line 43, in run
    raise ValueError("job 7 has no count") from None
ValueError: job 7 has no count'
PY_2='2026-12-07 01:02:05,000 INFO worker: job 8 done'
DATE="'^[0-9]{4}-[0-9]{2}-[0-9]{2}'"

# --- Java and Python traces of app.service, one entry per line, with
# entries of cron.service in between
mkdir -p "$T/t"
{
	lines app "$(head -n 4 <<<"$JAVA_1")"
	lines cron "tick 1"
	lines app "$(tail -n +5 <<<"$JAVA_1")"
	lines app "$JAVA_2"
	lines app "$(head -n 6 <<<"$PY_1")"
	lines cron "tick 2"
	lines app "$(tail -n +7 <<<"$PY_1")"
	lines app "$PY_2"
} | jwrite "$T/t/system.journal"
jml_config app "$T/t" "    matches: [_SYSTEMD_UNIT=app.service]
    multiline: {start: $DATE, flush_timeout: 500ms}
  - name: all
    type: journal
    directory: $T/t
    multiline: {start: $DATE, flush_timeout: 500ms}"
start agent-t "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 12 30 || fail "traces: the events never came"
wait_metric "$ML_PORT" 'logferry_journal_multiline_flushed_total{source="app"}' -ge 1 ||
	fail "traces: the flush by timeout is not counted"
wait_metric "$ML_PORT" 'logferry_journal_multiline_events_total{source="app"}' -eq 2 ||
	fail "traces: events of several entries are not counted"
wait_metric "$ML_PORT" 'logferry_journal_entries_total{source="app"}' -eq 26 ||
	fail "traces: every entry of a joined event does not count"
stop_agent "$pid"
printf '%s\n----\n' "$JAVA_1" "$JAVA_2" "$PY_1" "$PY_2" >"$T/app.want"
expect_spooled_messages "$cfg" "a unit's Java trace and chained Python traceback, one journal entry per line, are one event each (matches naming the unit); the last one is shipped after flush_timeout" "$T/app.want" app
printf '%s\n----\n' "$(head -n 4 <<<"$JAVA_1")" "tick 1" "$(tail -n +5 <<<"$JAVA_1")" "$JAVA_2" \
	"$(head -n 6 <<<"$PY_1")" "tick 2" "$(tail -n +7 <<<"$PY_1")" "$PY_2" >"$T/all.want"
expect_spooled_messages "$cfg" "without matches, another unit's entry in between is an event of its own and ends the trace's event" "$T/all.want" all
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump | python3 -c '
import json, sys
e = [json.loads(l) for l in sys.stdin if json.loads(l)["stream"] == "app"][0]
f = e["fields"]
assert e["host"] == "jhost" and f["_systemd_unit"] == "app.service" and f["syslog_identifier"] == "app" and f["priority"] == 6, e
assert e["ts"] == "2023-11-14T22:13:20.001000Z", e["ts"]
assert "multiline_truncated" not in f, e
' && pass "a joined event has its first entry's fields and time" ||
	fail "a joined event's fields: $("$LOGFERRY_AGENT" -c "$cfg" --spool-dump | head -1)"

# --- an event larger than max_bytes is cut and marked; its other entries are skipped
mkdir -p "$T/b"
{ lines app "$JAVA_1"; lines app "$JAVA_2"; } | jwrite "$T/b/system.journal"
jml_config big "$T/b" "    multiline: {start: '^[0-9]{4}-', flush_timeout: 200ms, max_bytes: 256}"
start agent-big "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 2 30 || fail "max_bytes: events did not arrive"
wait_metric "$ML_PORT" 'logferry_journal_multiline_truncated_total{source="big"}' -eq 1 ||
	fail "max_bytes: the cut event is not counted"
stop_agent "$pid"
expect_cut_at_max_bytes "$cfg" "$JAVA_1" "$JAVA_2"

# --- kill -9 with a trace pending (the last entries of the journal, an
# hour's flush_timeout): after the restart it is whole, and every entry once
mkdir -p "$T/k"
{ lines app "$JAVA_2"; lines app "$JAVA_1"; } | jwrite "$T/k/system.journal"
jml_config kill "$T/k" "    multiline: {start: $DATE, flush_timeout: 1h}"
start agent-kill "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1 30 || fail "kill -9: the first event did not arrive"
wait_metric "$ML_PORT" 'logferry_journal_multiline_pending{source="kill"}' -eq 9 ||
	fail "kill -9: the trace was not gathered"
kill -KILL "$pid"
wait_exit "$pid" 30
{ lines app "$PY_1"; lines app "$PY_2"; } | jwrite "$T/k/system.journal"
sed -i 's/flush_timeout: 1h/flush_timeout: 300ms/' "$cfg"
start agent-kill2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 4 30 || fail "kill -9: the events after the restart did not arrive"
wait_metric "$ML_PORT" 'logferry_journal_multiline_flushed_total{source="kill"}' -ge 1 ||
	fail "kill -9: the last event was not flushed"
stop_agent "$pid"
printf '%s\n----\n' "$JAVA_2" "$JAVA_1" "$PY_1" "$PY_2" >"$T/kill.want"
expect_spooled_messages "$cfg" "kill -9 with a trace pending: the restart gathers it again from the committed cursor, whole; every entry once" "$T/kill.want"

# --- a trace pending at a SIGHUP that restarts the source, then at a stop
# (an hour's flush_timeout): shipped before the source goes, once
mkdir -p "$T/s"
{ lines app "$JAVA_2"; lines app "$JAVA_1"; } | jwrite "$T/s/system.journal"
jml_config stop "$T/s" "    multiline: {start: $DATE, flush_timeout: 1h}"
start agent-stop "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_metric "$ML_PORT" 'logferry_journal_multiline_pending{source="stop"}' -eq 9 ||
	fail "SIGHUP: the trace was not gathered"
sed -i 's/^    directory: .*/&\n    max_field_size: 32KiB/' "$cfg"
kill -HUP "$pid"
wait_log "$T/agent-stop.log" "SIGHUP: applied" 30 || fail "reload not applied: $(grep SIGHUP "$T/agent-stop.log")"
wait_spooled "$cfg" 2 30 || fail "SIGHUP: the pending trace was not shipped"
lines app "$PY_1" | jwrite "$T/s/system.journal"
wait_metric "$ML_PORT" 'logferry_journal_multiline_pending{source="stop"}' -eq 15 ||
	fail "stop: the traceback was not gathered"
stop_agent "$pid"
printf '%s\n----\n' "$JAVA_2" "$JAVA_1" "$PY_1" >"$T/stop.want"
expect_spooled_messages "$cfg" "an event pending at a SIGHUP restarting the source, or at a stop, is shipped before the source goes" "$T/stop.want"
start agent-stop2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-stop2.log" "resuming after the saved journal cursor" 30 ||
	fail "restart after stop: $(grep source "$T/agent-stop2.log")"
lines app "$PY_2" | jwrite "$T/s/system.journal"
wait_metric "$ML_PORT" 'logferry_journal_multiline_pending{source="stop"}' -eq 1 ||
	fail "restart after stop: the new entry was not read"
stop_agent "$pid"
printf '%s\n----\n' "$JAVA_2" "$JAVA_1" "$PY_1" "$PY_2" >"$T/stop.want"
expect_spooled_messages "$cfg" "and the next start goes on after its last entry: every entry once" "$T/stop.want"

# --- a full spool pauses the source with a trace pending, then a stop
# cannot ship it: it stays in the journal, and the next start (with room)
# gathers it again; every trace whole, once
mkdir -p "$T/f"
python3 - <<'PY' >"$T/full.in"
import base64, random
rnd = random.Random(17)
for i in range(1, 6001):
    print("app|2026-12-07 01:02:03,456 ERROR trace %d %s" % (i, base64.b64encode(rnd.randbytes(750)).decode()))
    for k in range(4):
        print("app|\tat x.Y.z%d(%s)" % (k, base64.b64encode(rnd.randbytes(750)).decode()))
PY
jwrite "$T/f/system.journal" <"$T/full.in"
jml_config full "$T/f" "    multiline: {start: $DATE, flush_timeout: 1h}"
sed -i 's/^spool: .*/spool: {commit_interval: 5ms, max_size: 16MiB}/' "$cfg"
start agent-full "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
# Full for good (no relay), not a queue full for a moment: the source stays paused.
wait_metric "$ML_PORT" logferry_spool_full -eq 1 || fail "full spool: the spool did not fill"
wait_metric "$ML_PORT" 'logferry_journal_pauses_total{source="full"}' -ge 1 ||
	fail "full spool: the source did not pause"
stop_agent "$pid"
grep -q "source full: stopping with a multiline event of [0-9]* entries that the full spool cannot take" \
	"$T/agent-full.log" && pass "a stop with a full spool says the pending event stays in the journal" ||
	fail "a stop with a full spool: $(grep 'source full' "$T/agent-full.log" | tail -3)"
sed -i 's/max_size: 16MiB/max_size: 64MiB/; s/flush_timeout: 1h/flush_timeout: 300ms/' "$cfg"
start agent-full2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 6000 60 || fail "full spool: not every trace arrived after the restart"
stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump >"$T/dump.json"
if out=$(python3 - "$T/dump.json" "$T/full.in" <<'PY'
import json, sys
lines = [l.split("|", 1)[1] for l in open(sys.argv[2]).read().split("\n")[:-1]]
want = ["\n".join(lines[i:i + 5]) for i in range(0, len(lines), 5)]
got = [json.loads(l)["message"] for l in open(sys.argv[1])]
print("%d events, %d traces" % (len(got), len(want)))
sys.exit(0 if got == want else 1)
PY
); then pass "a full spool with a trace pending, a stop and a restart: every trace whole, once ($out)"; else fail "full spool: $out"; fi

# --- a full spool pauses the source with a trace pending; once a relay
# takes the events, reading resumes: every trace reaches Kafka whole, once
if command -v kcat >/dev/null && command -v openssl >/dev/null; then
	make_certs
	start_kafka
	stream=jml_$(date +%s)$$
	kafka_topic "logs.$stream" 16
	port=$(free_port)
	mkdir -p "$T/r"
	jwrite "$T/r/system.journal" <"$T/full.in"
	jml_config "$stream" "$T/r" "    multiline: {start: $DATE, flush_timeout: 300ms}
relays:
  servers: [$LF_IP:$port]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s"
	sed -i 's/^id: .*/id: web-01/; s/^spool: .*/spool: {max_size: 16MiB}/' "$cfg"
	start agent-resume "$LOGFERRY_AGENT" -c "$cfg"
	pid=$LF_PID
	wait_metric "$ML_PORT" "logferry_journal_pauses_total{source=\"$stream\"}" -ge 1 ||
		fail "resume: the source did not pause on a full spool"
	# The mock cluster keeps only a partition's last 5 MiB: spread record by
	# record over 16 partitions, and followed from before the relay produces.
	kafka_follow "logs.$stream" follow 16
	rcfg=$(relay_config relay "$port")
	sed -i 's/compression.type: lz4}/compression.type: lz4, sticky.partitioning.linger.ms: "0"}/' "$rcfg"
	start_relay relay "$rcfg"
	for ((i = 0; i < 60; i++)); do
		kafka_dump "logs.$stream" "$T/kdump"
		sort -u "$T/follow.log" "$T/kdump" >"$T/union"
		[ "$(wc -l <"$T/union")" -ge 6000 ] && break
		sleep 2
	done
	if out=$(python3 - "$T/union" "$T/full.in" <<'PY'
import collections, json, sys
lines = [l.split("|", 1)[1] for l in open(sys.argv[2]).read().split("\n")[:-1]]
want = collections.Counter("\n".join(lines[i:i + 5]) for i in range(0, len(lines), 5))
got = collections.Counter(json.loads(r.split("\t", 1)[1])["message"] for r in open(sys.argv[1]) if "\t" in r)
print("records %d, traces %d, missing %d, extra or duplicate %d" % (sum(got.values()), len(want),
      sum((want - got).values()), sum((got - want).values())))
sys.exit(0 if got == want else 1)
PY
	); then pass "after a pause with a trace pending, every trace reaches Kafka whole, once ($out)"; else fail "resume: $out"; fi
	stop_agent "$pid"
else
	echo "skip: the relay part needs kcat and openssl"
fi

finish
