#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The agent's memory stays within memory_limit (docs/architecture.md guarantee 3,
# docs/lessons.md "Memory growth") with no relay to take its events, while it
# tails 1000 files, 120 TCP syslog senders each hold most of a 1 MiB
# message, and 16 HTTP clients send 8 MiB bodies slowly. Without the
# budget the senders alone would hold 120 MiB and the bodies 64 MiB. The
# TCP senders wait, and so do the HTTP requests (their bodies unread) for
# up to request_timeout, then 503; every file line and every syslog
# message still arrives; /health and /metrics answer throughout; SIGTERM
# is prompt.
. "$(dirname "$0")/lib.sh"

need curl
limit_mib=32
syslog_port=$(free_port)
http_port=$(free_port)
metrics_port=$(free_port)
dead_port=$(free_port)   # no relay: nothing leaves the spool
mkdir -p "$T/logs"
for i in $(seq 1000); do nginx_lines "$T/logs/f$i.log" 200 $((i * 1000)); done
cat >"$T/agent.yaml" <<CONF
id: web-01
data_dir: $T/data
memory_limit: ${limit_mib}MiB
sources:
  - {name: files, type: file, paths: ["$T/logs/*.log"], format: nginx_combined}
  - {name: sys, type: syslog, listen: ["tcp://$LF_IP:$syslog_port"], max_message_size: 1MiB}
  - {name: app, type: http, listen: "$LF_IP:$http_port", max_body_size: 8MiB}
metrics: {listen: "$LF_IP:$metrics_port"}
CONF
start agent "$LOGFERRY_AGENT" -c "$T/agent.yaml"
agent=$LF_PID
wait_log "$T/agent.log" "started as" || { fail "agent did not start: $(tail -3 "$T/agent.log")"; finish; }

rss() { awk '/^RssAnon:/ { print $2 }' "/proc/$agent/status" 2>/dev/null; }
# Peak RssAnon, sampled in the background into $T/peak.
(
	peak=0
	while kill -0 "$agent" 2>/dev/null; do
		r=$(rss)
		[ "${r:-0}" -gt "$peak" ] && { peak=$r; echo "$peak" >"$T/peak"; }
		sleep 0.05
	done
) &
LF_PIDS+=($!)

# The senders: each TCP connection sends 900 KiB of one message, waits, then ends it.
python3 - "$syslog_port" "$http_port" "$LF_IP" >"$T/clients.out" 2>&1 <<'PY' &
import socket, sys, threading, time
sport, hport, ip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
results = {"syslog_sent": 0, "http": []}
lock = threading.Lock()

def syslog(i):
    s = socket.create_connection((ip, sport))
    head = b"<13>1 2026-11-22T10:00:00Z h app - - - sender %d " % i
    s.sendall(head + b"x" * (900 * 1024))   # waits while the agent does not read
    time.sleep(1)
    s.sendall(b" end\n")
    s.shutdown(socket.SHUT_WR)
    s.recv(1)                                # until the agent closes
    s.close()
    with lock:
        results["syslog_sent"] += 1

def http(i):
    # 8 MB of NDJSON events of about 1 KB, sent slowly; on 503, again after
    # Retry-After, as a client would.
    line = b'{"n":%d,"pad":"' % i + b"y" * 1000 + b'"}\n'
    body = line * (8000000 // len(line))
    seen = []
    for attempt in range(120):
        s = socket.create_connection((ip, hport))
        s.settimeout(300)
        ans = b""
        try:
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(body))
            for off in range(0, len(body), 1 << 20):
                s.sendall(body[off:off + (1 << 20)])
                time.sleep(0.05)
            ans = s.recv(4096)
        except OSError:                      # a 503 may close before the body is sent
            try:
                ans = s.recv(4096)
            except OSError:
                pass
        s.close()
        status = ans.split(b" ", 2)[1].decode() if ans.startswith(b"HTTP/1.1 ") else "none"
        seen.append(status)
        if status == "200":
            break
        time.sleep(1)
    with lock:
        results["http"].append((len(body) // len(line), seen))

ts = [threading.Thread(target=syslog, args=(i,)) for i in range(120)]
ts += [threading.Thread(target=http, args=(i,)) for i in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("syslog_sent", results["syslog_sent"])
for events, seen in results["http"]:
    print("http", seen[-1], "after", " ".join(seen), "events", events if seen[-1] == "200" else 0)
PY
clients=$!
LF_PIDS+=($clients)

# While all that goes on (the connections hold buffers), the endpoints
# answer, within a bound that a stalled loop misses and a busy one does not.
used=
for _ in $(seq 600); do
	used=$(curl -sS --max-time 15 "http://$LF_IP:$metrics_port/metrics" |
		awk '$1 == "logferry_agent_connection_memory_used_bytes" { print $2 }')
	[ "${used:-0}" -gt 0 ] && break
	sleep 0.1
done
echo "connection buffers in use: ${used:-?} bytes"
[ "${used:-0}" -gt 0 ] || fail "the connections never held a buffer"
h=$(curl -sS --max-time 15 "http://$LF_IP:$metrics_port/health") &&
	pass "/health answers under load: $h" || fail "/health did not answer under load"
wait_exit "$clients" 600 || fail "the clients did not finish in 600 s"
cat "$T/clients.out"
grep -q '^syslog_sent 120$' "$T/clients.out" || fail "not every syslog sender finished"
ok=$(grep -c '^http 200 ' "$T/clients.out")
busy=$(grep -o ' 503' "$T/clients.out" | wc -l)
http_events=$(awk '$1 == "http" { n += $NF } END { print n + 0 }' "$T/clients.out")

# Everything that was accepted is in the spool.
want=$((1000 * 200 + 120 + http_events))
wait_spooled "$T/agent.yaml" "$want" 300 && pass "all $want events spooled" ||
	fail "not every event was spooled"
m=$(curl -sS --max-time 15 "http://$LF_IP:$metrics_port/metrics")
refused=$(echo "$m" | awk '$1 == "logferry_agent_connection_memory_refused_total" { print $2 }')
waits=$(echo "$m" | awk '$1 == "logferry_syslog_memory_waits_total{source=\"sys\"}" { print $2 }')
hwaits=$(echo "$m" | awk '$1 == "logferry_http_memory_waits_total{source=\"app\"}" { print $2 }')
[ "$ok" -eq 8 ] && [ "${hwaits:-0}" -ge 1 ] &&
	pass "HTTP: all 8 bodies taken in the end; requests waited $hwaits times for the share, $busy answers 503 after request_timeout" ||
	fail "HTTP: $ok of 8 bodies taken, requests waited ${hwaits:-?} times, $busy answers 503"
[ "${refused:-0}" -ge 1 ] && [ "${waits:-0}" -ge 1 ] &&
	pass "the share was refused $refused times, TCP connections waited $waits times" ||
	fail "the budget was never refused (refused ${refused:-?}, waits ${waits:-?})"

peak=$(cat "$T/peak" 2>/dev/null)
echo "agent RssAnon peak: ${peak:-?} KiB (memory_limit $((limit_mib * 1024)) KiB)"
if grep -q __asan_init "$LOGFERRY_AGENT"; then
	echo "skip: memory is not measured under AddressSanitizer (its quarantine keeps freed memory)"
elif [ "${peak:-0}" -gt 0 ] && [ "$peak" -le $((limit_mib * 1024)) ]; then
	pass "the agent's memory stayed within memory_limit"
else
	fail "agent RssAnon peaked at ${peak:-?} KiB, above memory_limit ($((limit_mib * 1024)) KiB)"
fi
stop_agent "$agent"
finish
