#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Syslog sources with util-linux logger as the real client: UDP (IPv4 and
# IPv6), TCP with newline framing and octet counting, the unix datagram
# socket; RFC 5424 and RFC 3164 on each. Then a kill -9 (the socket file is
# left behind and replaced at the next start) and two floods of 20000
# messages over one TCP connection each. The spool dump must hold every
# message exactly once, with the fields the sender put in.
. "$(dirname "$0")/lib.sh"

need logger

CFG=$T/agent.yaml
SOCK=$T/syslog.sock
cat >"$CFG" <<YAML
id: test-agent
data_dir: $T/data
log_level: debug
spool: {commit_interval: 5ms}
sources:
  - name: sys
    type: syslog
    listen: [udp://127.0.0.1:0, tcp://127.0.0.1:0, "unix://$SOCK", "udp://[::1]:0"]
    socket_mode: "0660"
YAML

# port LOG SCHEME HOST: the port the agent bound for SCHEME://HOST:0 (from its log).
port() {
	sed -nE "s|.*listening on $2://$3:0 \\($3:([0-9]+)\\).*|\\1|p" "$1" | tail -1
}

# start_agent NAME: starts it, waits until it listens; sets PID, UDP, TCP, UDP6.
start_agent() {
	start "$1" "$LOGFERRY_AGENT" -c "$CFG"
	PID=$LF_PID
	wait_log "$T/$1.log" "started as" || { fail "$1: agent did not start"; cat "$T/$1.log"; finish; }
	UDP=$(port "$T/$1.log" udp '127\.0\.0\.1')
	TCP=$(port "$T/$1.log" tcp '127\.0\.0\.1')
	UDP6=$(port "$T/$1.log" udp '\[::1\]')
	echo "$1: pid $PID, udp $UDP, tcp $TCP, udp6 ${UDP6:-none}"
}

# --- every transport and both RFCs, sent by logger
start_agent agent1
mode=$(stat -c %a "$SOCK" 2>/dev/null)
[ "$mode" = 660 ] && pass "the unix socket is created with socket_mode (0660)" ||
	fail "unix socket mode is '$mode', expected 660"

n=0
# lg ID TRANSPORT-OPTIONS...: one message "msg-ID" with tag app-ID, msgid ID.
lg() {
	local id=$1
	shift
	logger "$@" -t "app-$id" "msg-$id" || fail "logger $* failed"
	n=$((n + 1))
}
net="--server 127.0.0.1"
lg u5 --udp $net --port "$UDP" --rfc5424 --msgid u5 -p local0.warning
lg u3 --udp $net --port "$UDP" --rfc3164 -p user.err
lg t5 --tcp $net --port "$TCP" --rfc5424 --msgid t5 -p daemon.info
lg t3 --tcp $net --port "$TCP" --rfc3164 -p mail.notice
lg o5 --tcp --octet-count $net --port "$TCP" --rfc5424 --msgid o5 -p local7.debug
lg o3 --tcp --octet-count $net --port "$TCP" --rfc3164 -p auth.crit
lg s5 --socket "$SOCK" --socket-errors=on --rfc5424 --msgid s5 -p local1.alert
lg s3 --socket "$SOCK" --socket-errors=on --rfc3164 -p cron.emerg
lg sl --socket "$SOCK" --socket-errors=on -p user.info       # logger's local format: no host
if [ -n "$UDP6" ]; then
	lg v6 --udp --server ::1 --port "$UDP6" --rfc5424 --msgid v6 -p local2.err
fi
wait_spooled "$CFG" $n 10 || fail "not every logger message arrived"

"$LOGFERRY_AGENT" -c "$CFG" --spool-dump >"$T/dump1.json" || fail "dump failed"
if python3 - "$T/dump1.json" "$SOCK" "$(hostname)" "$UDP6" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1], 'rb')]
sock, host, udp6 = sys.argv[2], sys.argv[3], sys.argv[4]
short = host.split('.')[0]
# id: (source, facility, severity, has msgid, host in message)
want = {
    'u5': ('udp://127.0.0.1:0', 16, 4, True, True),
    'u3': ('udp://127.0.0.1:0', 1, 3, False, True),
    't5': ('tcp://127.0.0.1:0', 3, 6, True, True),
    't3': ('tcp://127.0.0.1:0', 2, 5, False, True),
    'o5': ('tcp://127.0.0.1:0', 23, 7, True, True),
    'o3': ('tcp://127.0.0.1:0', 4, 2, False, True),
    's5': ('unix://' + sock, 17, 1, True, True),
    's3': ('unix://' + sock, 9, 0, False, True),
    'sl': ('unix://' + sock, 1, 6, False, False),
    'v6': ('udp://[::1]:0', 18, 3, True, True),
}
if not udp6:
    del want['v6']
by = {}
for e in evs:
    m = e['fields'].get('message', '')
    assert m.startswith('msg-'), 'unexpected event %r' % e
    assert m[4:] not in by, 'duplicate %s' % m
    by[m[4:]] = e
ok = True
for id, e in sorted(by.items()):
    src, fac, sev, msgid, has_host = want[id]
    f = e['fields']
    checks = [
        (e['source'] == src, 'source %r' % e['source']),
        (f.get('app_name') == 'app-' + id, 'app_name %r' % f.get('app_name')),
        (f.get('facility') == fac and f.get('severity') == sev,
         'facility/severity %r/%r' % (f.get('facility'), f.get('severity'))),
        (f.get('msgid') == (id if msgid else None), 'msgid %r' % f.get('msgid')),
        (e['host'] in (host, short), 'host %r' % e['host']),
        ((f.get('hostname') in (host, short)) if has_host else 'hostname' not in f,
         'hostname %r' % f.get('hostname')),
        ('parse_error' not in f, 'parse_error %r' % f.get('parse_error')),
        (not e['message'].endswith(('\n', '\r', '\0')), 'line end left in message'),
    ]
    for good, what in checks:
        if not good:
            print('%s: %s' % (id, what))
            ok = False
missing = set(want) - set(by)
if missing:
    print('missing:', sorted(missing))
    ok = False
print(len(evs), 'events')
sys.exit(0 if ok else 1)
PY
then
	pass "logger over UDP, TCP (newline and octet counting) and the unix socket, RFC 5424 and 3164: fields, host and source right"
else
	fail "logger messages"
fi

# --- start errors name the URL and what to do: a port in use, a file that is no socket
# start_error NAME LISTEN PATTERN: an agent listening on LISTEN exits 1 saying PATTERN.
start_error() {
	local cfg="$T/$1.yaml" out rc
	cat >"$cfg" <<YAML
data_dir: $T/$1.data
sources:
  - name: $1
    type: syslog
    listen: ["udp://127.0.0.1:0", "$2"]
YAML
	out=$(timeout 20 "$LOGFERRY_AGENT" -c "$cfg" 2>&1)
	rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -qE -- "$3"; then
		pass "$1: exits 1 and says why"
	else
		fail "$1: rc=$rc, output: $out"
	fi
}
start_error tcp-port-in-use "tcp://127.0.0.1:$TCP" \
	"error: source tcp-port-in-use: cannot listen on tcp://127\.0\.0\.1:$TCP: address already in use; another process listens there"
start_error udp-port-in-use "udp://127.0.0.1:$UDP" \
	"error: source udp-port-in-use: cannot listen on udp://127\.0\.0\.1:$UDP: address already in use"
start_error socket-in-use "unix://$SOCK" "another process receives on $SOCK"
echo precious >"$T/file.sock"
start_error not-a-socket "unix://$T/file.sock" "$T/file.sock exists and is not a socket"
[ "$(cat "$T/file.sock")" = precious ] || fail "the file at the socket path was touched"
[ -S "$SOCK" ] || fail "the running agent's socket was removed by the refused one"

# --- kill -9 leaves the socket file behind; the next start replaces it
kill -KILL "$PID"
wait "$PID" 2>/dev/null
[ -S "$SOCK" ] || fail "kill -9: expected the socket file to be left behind"
start_agent agent2
grep -q "replaced the stale socket" "$T/agent2.log" && pass "a stale socket left by kill -9 is replaced" ||
	fail "stale socket not reported as replaced"
logger --socket "$SOCK" --socket-errors=on -t app-after "msg-after" || fail "logger after restart failed"
n=$((n + 1))
wait_spooled "$CFG" $n 10 || fail "message after restart did not arrive"

# --- 20000 messages over one TCP connection, twice: logger with newline framing,
# and octet-counted frames written in large chunks (messages split across reads)
FLOOD=20000
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(1, $FLOOD + 1):
        f.write('nl-%05d\n' % i)
" "$T/flood.txt"
logger --tcp --server 127.0.0.1 --port "$TCP" --rfc5424 -t flood -f "$T/flood.txt" ||
	fail "logger flood failed"
python3 - "$TCP" "$FLOOD" <<'PY' || fail "python octet-counted flood failed"
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
frames = []
for i in range(1, n + 1):
    msg = ('<14>1 2026-11-25T00:00:00Z fhost flood - - - oc-%05d' % i).encode()
    frames.append(b'%d %s' % (len(msg), msg))
s = socket.create_connection(('127.0.0.1', port))
s.sendall(b''.join(frames))
s.close()
PY
n=$((n + 2 * FLOOD))
wait_spooled "$CFG" $n 60 || fail "flood: not everything arrived"
stop_agent "$PID"
[ -e "$SOCK" ] && fail "the socket file is still there after a clean stop" ||
	pass "the socket file is removed at stop"

"$LOGFERRY_AGENT" -c "$CFG" --spool-dump >"$T/dump2.json" || fail "dump failed"
if python3 - "$T/dump2.json" "$FLOOD" <<'PY'
import json, sys
n = int(sys.argv[2])
nl, oc, other = [], [], 0
for l in open(sys.argv[1], 'rb'):
    e = json.loads(l)
    m = e['fields'].get('message', '')
    if m.startswith('nl-'):
        nl.append(int(m[3:]))
        assert e['fields']['app_name'] == 'flood'
    elif m.startswith('oc-'):
        oc.append(int(m[3:]))
        assert e['host'] == 'fhost'
    else:
        other += 1
want = list(range(1, n + 1))
print('newline', len(nl), 'octet', len(oc), 'other', other)
assert nl == want, 'newline flood: lost, duplicated or out of order'
assert oc == want, 'octet flood: lost, duplicated or out of order'
PY
then
	pass "20000 messages over one TCP connection (logger, newline) and 20000 octet-counted: each exactly once, in order"
else
	fail "flood"
fi

# --- datagram bursts while the agent cannot read (SIGSTOP, as a loaded host
# does to it): with a receive buffer far too small for them, every datagram
# the kernel accepted is spooled or counted as dropped, none lost silently.
BURST=3000
BUDP=$(free_port)
BMET=$(free_port)
BSOCK=$T/burst.sock
BCFG=$T/burst.yaml
cat >"$BCFG" <<YAML
id: test-agent
data_dir: $T/burst-data
metrics: {listen: "$LF_IP:$BMET"}
sources:
  - name: bu
    type: syslog
    listen: ["udp://$LF_IP:$BUDP"]
    receive_buffer: 4KiB
  - name: bx
    type: syslog
    listen: ["unix://$BSOCK"]
    receive_buffer: 4KiB
YAML
start burst "$LOGFERRY_AGENT" -c "$BCFG"
BPID=$LF_PID
wait_log "$T/burst.log" "started as" || { fail "burst: agent did not start"; cat "$T/burst.log"; finish; }
grep -q "source bu: udp://$LF_IP:$BUDP: receive buffer of [0-9]* bytes" "$T/burst.log" &&
	pass "the receive buffer the kernel granted is logged" || fail "no receive buffer line in the log"

# metric NAME SOURCE: the value of logferry_syslog_NAME{source="SOURCE"}, 0 when absent.
metric() {
	curl -sS --max-time 2 "http://$LF_IP:$BMET/metrics" |
		awk -v k="logferry_syslog_$1{source=\"$2\"}" '$1 == k { v = $2 } END { print v + 0 }'
}

kill -STOP "$BPID"
# Non-blocking senders: a datagram the kernel refuses (EAGAIN on a full unix
# socket) was never accepted, and its sender knows; it is not counted as sent.
sent=$(python3 - "$LF_IP" "$BUDP" "$BSOCK" "$BURST" <<'PY'
import errno, socket, sys
ip, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def burst(s, dest, tag):
    ok = 0
    for i in range(n):
        msg = b'<14>1 2026-11-25T00:00:00Z bhost burst - - - %s-%05d' % (tag, i)
        try:
            s.sendto(msg, dest)
            ok += 1
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOBUFS):
                raise
    return ok
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setblocking(False)
x = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
x.setblocking(False)
print(burst(u, (ip, port), b'u'), burst(x, path, b'x'))
PY
)
kill -CONT "$BPID"
read -r usent xsent <<<"$sent"
echo "burst: sent $usent over UDP, $xsent over the unix socket"
# wait_counted SOURCE SENT: until messages + kernel drops reach SENT (30 s at most).
wait_counted() {
	local i got drop
	for ((i = 0; i < 300; i++)); do
		got=$(metric messages_total "$1")
		drop=$(metric dropped_kernel_total "$1")
		[ $((got + drop)) -ge "$2" ] && break
		sleep 0.1
	done
	echo "$1: $got spooled + $drop dropped by the kernel, $2 sent"
	[ $((got + drop)) -eq "$2" ]
}
if [ "${usent:-0}" -gt 0 ] && wait_counted bu "$usent" && [ "$(metric dropped_kernel_total bu)" -gt 0 ]; then
	pass "UDP burst into a 4 KiB buffer while stopped: every datagram spooled or counted as dropped"
else
	fail "UDP burst: datagrams lost without being counted"
fi
grep -q "source bu: udp://$LF_IP:$BUDP: the kernel dropped [0-9]* datagrams" "$T/burst.log" &&
	pass "kernel drops are logged" || fail "kernel drops are not logged"
if [ "${xsent:-0}" -gt 0 ] && wait_counted bx "$xsent"; then
	pass "unix socket burst while stopped: every datagram the kernel accepted is spooled or counted"
else
	fail "unix socket burst: datagrams lost without being counted"
fi
stop_agent "$BPID"

# --- RFC 3164 times carry no zone: read in the agent's local zone (TZ, here
# New York, with and without DST) or in a source's timezone, never as UTC.
ZONE=America/New_York
[ -e /usr/share/zoneinfo/$ZONE ] || ZONE="EST5EDT,M3.2.0,M11.1.0"
TUDP=$(free_port)
KUDP=$(free_port)
TCFG=$T/tz.yaml
cat >"$TCFG" <<YAML
id: test-agent
data_dir: $T/tz-data
sources:
  - name: local
    type: syslog
    listen: ["udp://$LF_IP:$TUDP"]
  - name: kolkata
    type: syslog
    listen: ["udp://$LF_IP:$KUDP"]
    timezone: Asia/Kolkata
YAML
if [ -e /usr/share/zoneinfo/Asia/Kolkata ]; then
	start tz env TZ="$ZONE" "$LOGFERRY_AGENT" -c "$TCFG"
	TPID=$LF_PID
	wait_log "$T/tz.log" "started as" || { fail "tz: agent did not start"; cat "$T/tz.log"; finish; }
	grep -q "source local: times without a zone are read in $ZONE" "$T/tz.log" &&
		pass "the zone of RFC 3164 times is logged" || fail "the zone of RFC 3164 times is not logged"
	# logger writes the time in its own zone, the agent's: it must come out as now.
	TZ="$ZONE" logger --udp --server "$LF_IP" --port "$TUDP" --rfc3164 -t app "logger-now" ||
		fail "tz: logger failed"
	python3 - "$LF_IP" "$TUDP" "$KUDP" <<'PY' || fail "tz: sending failed"
import socket, sys
ip, t, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'<13>Jan 15 2026 12:00:00 h app: ny-winter', (ip, t))
s.sendto(b'<13>Jul  1 2026 12:00:00 h app: ny-summer', (ip, t))
s.sendto(b'<13>Jan 15 2026 12:00:00 h app: kolkata', (ip, k))
PY
	wait_spooled "$TCFG" 4 10 || fail "tz: messages did not arrive"
	stop_agent "$TPID"
	"$LOGFERRY_AGENT" -c "$TCFG" --spool-dump >"$T/tz.json" || fail "tz: dump failed"
	if python3 - "$T/tz.json" <<'PY'
import json, sys
want = {'ny-winter': '2026-01-15T17:00:00', 'ny-summer': '2026-07-01T16:00:00',
        'kolkata': '2026-01-15T06:30:00'}
got = {}
for l in open(sys.argv[1], 'rb'):
    e = json.loads(l)
    m = e['fields'].get('message')
    if m in want or m == 'logger-now':
        got[m] = e['ts']
print(got)
ok = all(got.get(m, '').startswith(v) for m, v in want.items())
import datetime
now = datetime.datetime.now(datetime.timezone.utc)
lt = got.get('logger-now', '')[:19]
ok = ok and lt != '' and abs((now - datetime.datetime.fromisoformat(lt).replace(
    tzinfo=datetime.timezone.utc)).total_seconds()) < 600
sys.exit(0 if ok else 1)
PY
	then
		pass "RFC 3164 times read in TZ=$ZONE (EST and EDT) and in a source's timezone, not as UTC"
	else
		fail "RFC 3164 times not read in their zone"
	fi
else
	echo "SKIP: tzdata's Asia/Kolkata is not installed: RFC 3164 zone test skipped"
fi

grep -E "error:|invalid state" "$T/agent1.log" "$T/agent2.log" "$T/burst.log" "$T/tz.log" && fail "errors in the agent logs"

finish
