#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# multiline on a TCP syslog source: an app logging its stack traces through
# syslog, one message per line (util-linux logger, or a bash /dev/tcp
# writer), gets each Java or Python trace as one event, matched on the
# messages' MSG part; two connections interleaving their lines keep their
# traces apart; a connection killed mid-trace still delivers it; a
# connection that stays open gets its trace after flush_timeout; a SIGHUP
# reload that stops the source ships the trace it was gathering.
. "$(dirname "$0")/lib.sh"

need logger

PORT=$(free_port)
FPORT=$(free_port)
MPORT=$(free_port)
CFG=$T/agent.yaml
cat >"$CFG" <<YAML
id: test-agent
data_dir: $T/data
log_level: debug
spool: {commit_interval: 5ms}
metrics: {listen: "$LF_IP:$MPORT"}
sources:
  - name: apps
    type: syslog
    listen: ["tcp://$LF_IP:$PORT"]
    multiline: {start: '^[0-9]{4}-[0-9]{2}-[0-9]{2} ', flush_timeout: 1h}
  - name: held
    type: syslog
    listen: ["tcp://$LF_IP:$FPORT"]
    multiline: {continuation: '^([[:space:]]|Caused by: )', flush_timeout: 300ms}
YAML

JAVA='2026-12-07 03:10:00,101 ERROR [main] c.e.billing.InvoiceJob - invoice run failed
java.lang.IllegalArgumentException: customer 9 has no address
	at com.example.billing.Invoice.<init>(Invoice.java:33)
	at com.example.billing.InvoiceJob.run(InvoiceJob.java:71)
	at java.base/java.util.concurrent.Executors$RunnableAdapter.call(Executors.java:539)
	at java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.lang.NullPointerException: Cannot read field "street" because "a" is null
	at com.example.billing.Address.format(Address.java:12)
	... 4 more'
PYTB='2026-12-07 03:10:01,202 ERROR sync: batch 3 failed
Traceback (most recent call last):
  File "/srv/sync/main.py", line 20, in <module>
    sync(batch)
  File "/srv/sync/main.py", line 12, in sync
    rows = fetch(batch["id"])
KeyError: '"'"'id'"'"'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/sync/main.py", line 22, in <module>
    raise RuntimeError("batch 3") from exc
RuntimeError: batch 3'
DONE='2026-12-07 03:10:02,303 INFO sync: done'

# expect_messages WHAT SOURCE PYTHON-CHECK: the MSG parts (fields.message) of
# SOURCE's events in the spool, as the list m (and the events as evs), pass
# the python assertions.
expect_messages() {
	"$LOGFERRY_AGENT" -c "$CFG" --spool-dump >"$T/dump.json" || { fail "$1: dump failed"; return; }
	if python3 - "$T/dump.json" "$2" "$JAVA" "$PYTB" "$DONE" "$3" >"$T/check.out" 2>&1 <<'PY'
import json, sys
path, src, JAVA, PYTB, DONE, check = sys.argv[1:]
evs = [e for e in map(json.loads, open(path)) if e['source'].startswith(src)]
m = [e['fields'].get('message') for e in evs]
exec(check)
PY
	then pass "$1"; else cat "$T/check.out"; fail "$1"; fi
}

start agent "$LOGFERRY_AGENT" -c "$CFG"
pid=$LF_PID
wait_log "$T/agent.log" "listening on tcp://$LF_IP:$FPORT" || fail "the agent did not listen"

# --- logger: a Java trace and a Python traceback, one message per line
printf '%s\n' "$JAVA" "$PYTB" "$DONE" >"$T/app.txt"
logger --tcp --server "$LF_IP" --port "$PORT" --rfc5424 -t billing -p user.err -f "$T/app.txt" ||
	fail "logger failed"
wait_spooled "$CFG" 3 30 || fail "logger: the traces did not arrive"

# --- two connections writing their traces line by line, interleaved
exec 3<>"/dev/tcp/$LF_IP/$PORT" 4<>"/dev/tcp/$LF_IP/$PORT"
mapfile -t jl <<<"$JAVA"
mapfile -t pl <<<"$PYTB"
for ((i = 0; i < ${#pl[@]}; i++)); do
	[ "$i" -lt "${#jl[@]}" ] && printf '<11>Dec  7 03:10:00 web1 billing[71]: %s\n' "${jl[$i]}" >&3
	printf '<11>Dec  7 03:10:01 web2 sync[88]: %s\n' "${pl[$i]}" >&4
done
exec 3>&- 4>&-
wait_spooled "$CFG" 5 30 || fail "interleaved: the traces did not arrive"

# --- a writer killed mid-trace (flush_timeout is an hour): the half trace arrives
mkfifo "$T/hold"
(
	exec 5<>"/dev/tcp/$LF_IP/$PORT"
	head -n 4 <<<"$JAVA" | sed 's/^/<11>Dec  7 03:10:00 web1 billing[71]: /' >&5
	echo written >"$T/written"
	read -r _ <"$T/hold"
) &
writer=$!
wait_log "$T/written" written 30 || fail "killed writer: it did not write"
kill -KILL "$writer"
wait "$writer" 2>/dev/null
wait_spooled "$CFG" 6 30 || fail "killed writer: the half trace did not arrive"

# --- a connection left open: its trace is shipped after flush_timeout
exec 6<>"/dev/tcp/$LF_IP/$FPORT"
head -n 9 <<<"$JAVA" | tail -n 8 | sed 's/^/<11>Dec  7 03:10:00 web1 billing[71]: /' >&6
wait_metric "$MPORT" 'logferry_syslog_multiline_flushed_total{source="held"}' -eq 1 30 ||
	fail "held: the trace was not shipped after flush_timeout"
exec 6>&-
wait_metric "$MPORT" 'logferry_syslog_multiline_events_total{source="apps"}' -eq 5 ||
	fail "apps: events of several messages are not counted"

# --- a trace gathered when SIGHUP changes its source: shipped as the source stops
exec 7<>"/dev/tcp/$LF_IP/$PORT"
head -n 3 <<<"$JAVA" | sed 's/^/<11>Dec  7 03:10:00 web1 billing[71]: /' >&7
# Read and gathered: only the event's buffer is charged then (the receive buffer is not).
wait_metric "$MPORT" 'logferry_agent_connection_memory_used_bytes' -gt 0 30 ||
	fail "reload: the trace was not gathered"
sed -i 's/flush_timeout: 1h/flush_timeout: 59m/' "$CFG"
kill -HUP "$pid"
wait_spooled "$CFG" 8 30 || fail "reload: the gathered trace was not shipped"
exec 7>&-
stop_agent "$pid"

expect_messages "logger --tcp: a Java trace and a Python traceback (blank line included) are one event each, matched on the MSG part; the first message's fields stay" \
	"tcp://$LF_IP:$PORT" '
assert m[:3] == [JAVA, PYTB, DONE], m[:3]
f = evs[0]["fields"]
assert f["app_name"] == "billing" and f["severity_name"] == "err", f
assert "multiline_truncated" not in f
'
expect_messages "two connections interleaving their lines keep their traces apart" \
	"tcp://$LF_IP:$PORT" '
assert sorted(m[3:5]) == sorted([JAVA, PYTB]), m[3:5]
for e in evs[3:5]:
    want = "web1" if e["fields"]["message"] == JAVA else "web2"
    assert e["host"] == want, e
'
expect_messages "a writer killed mid-trace: the lines it sent arrive as one event" \
	"tcp://$LF_IP:$PORT" '
assert m[5] == "\n".join(JAVA.split("\n")[:4]), m[5]
'
expect_messages "a trace gathered when SIGHUP changes its source is shipped as the source stops" \
	"tcp://$LF_IP:$PORT" '
assert len(m) == 7, len(m)
assert m[6] == "\n".join(JAVA.split("\n")[:3]), m[6]
'
expect_messages "a connection left open: its trace is shipped whole after flush_timeout" \
	"tcp://$LF_IP:$FPORT" '
assert m == ["\n".join(JAVA.split("\n")[1:9])], m
'
# --- memory_limit: four connections gathering 900 KB traces at once would
# hold 4 MiB; memory_limit 4MiB gives connection buffers 2 MiB. The
# connections wait for it (memory_waits), the share is never passed, and
# every line arrives once, in order: a trace whose connection waited too
# long is shipped in parts by flush_timeout, never lost.
MEM_PORT=$(free_port)
MEM_MET=$(free_port)
MCFG=$T/mem.yaml
cat >"$MCFG" <<YAML
id: test-agent
data_dir: $T/mem.data
memory_limit: 4MiB
spool: {commit_interval: 5ms}
metrics: {listen: "$LF_IP:$MEM_MET"}
sources:
  - name: mem
    type: syslog
    listen: ["tcp://$LF_IP:$MEM_PORT"]
    multiline: {continuation: '^[[:space:]]', flush_timeout: 2s}
YAML
start agent-mem "$LOGFERRY_AGENT" -c "$MCFG"
pid=$LF_PID
wait_log "$T/agent-mem.log" "listening on tcp://$LF_IP:$MEM_PORT" || fail "memory: the agent did not listen"
python3 - "$LF_IP" "$MEM_PORT" >"$T/mem-clients.out" 2>&1 <<'PY' || fail "memory: the senders failed"
import socket, sys, threading
ip, port = sys.argv[1], int(sys.argv[2])

both_halves = threading.Barrier(4)

def send(n):
    s = socket.create_connection((ip, port))
    lines = ["Exception %d" % n] + ["\tat f%d_%03d(%s)" % (n, i, "x" * 980) for i in range(900)]
    data = "".join("<11>Dec  7 03:10:00 host%d app[%d]: %s\n" % (n, n, l) for l in lines).encode()
    # Every connection has half a trace gathered before any trace ends.
    s.sendall(data[:len(data) // 2])
    both_halves.wait()
    s.sendall(data[len(data) // 2:])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)    # until the agent closes
    s.close()

ts = [threading.Thread(target=send, args=(n,)) for n in range(4)]
for t in ts: t.start()
for t in ts: t.join()
PY
wait_metric "$MEM_MET" 'logferry_syslog_messages_total{source="mem"}' -eq 3604 60 ||
	fail "memory: not every message arrived"
waits=$(metric "$MEM_MET" 'logferry_syslog_memory_waits_total{source="mem"}')
peak=$(metric "$MEM_MET" 'logferry_agent_connection_memory_peak_bytes')
used=$(metric "$MEM_MET" 'logferry_agent_connection_memory_used_bytes')
stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$MCFG" --spool-dump >"$T/mem.json" || fail "memory: dump failed"
if python3 - "$T/mem.json" "${waits:-0}" "${peak:-0}" "${used:-0}" <<'PY'; then
import json, sys
waits, peak, used = (int(float(v)) for v in sys.argv[2:5])
assert waits >= 1, "no connection waited for memory: %d" % waits
assert 0 < peak <= 2 << 20, "peak %d beyond the 2 MiB share" % peak
assert used == 0, "%d bytes still charged with every connection closed" % used
by_host = {}
for e in map(json.loads, open(sys.argv[1])):
    by_host.setdefault(e['host'], []).append(e['fields']['message'])
assert len(by_host) == 4, sorted(by_host)
for n in range(4):
    want = ["Exception %d" % n] + ["\tat f%d_%03d(%s)" % (n, i, "x" * 980) for i in range(900)]
    assert "\n".join(by_host["host%d" % n]).split("\n") == want, "host%d" % n
print("memory: %d waits, peak %d bytes, events per connection %s" %
      (waits, peak, [len(by_host["host%d" % n]) for n in range(4)]))
PY
	pass "4 connections gathering 900 KB traces with memory_limit 4MiB: they wait for the 2 MiB share, never pass it, and every line arrives once, in order"
else
	fail "multiline gathering under memory_limit"
fi
finish
