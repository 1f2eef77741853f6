#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The http source with the real agent and curl as the client: one object,
# ndjson, gzip bodies, a malformed line (400, and nothing of that request
# in the spool), an oversized body (413), 404/405/415, keep-alive (curl
# reuses its connection for a second URL; Connection: close and HTTP/1.0
# do not), and a spool filled to its max_size with incompressible events
# until the agent answers 503 with Retry-After and "the spool is full".
# The spool dump must hold exactly the events that were answered 200, with
# the fields, stream and time their objects set.
#
# A crowd (python sockets): 256 concurrent small POSTs on an empty spool
# are all answered 200 (the agent used to answer most of them "503 the
# spool is full" while its writer committed); those 256 keep-alive
# connections then sit idle, holding every max_connections slot, and 64
# new clients POST at once: the longest idle ones are closed to admit
# them, every POST is answered 200 and every event is spooled. And
# idle_timeout: a silent connection and one between requests are closed.
. "$(dirname "$0")/lib.sh"

need curl gzip

# agent_config NAME MAX_BODY [SPOOL-EXTRA [SOURCE-EXTRA]]: one http source on this
# test's loopback address, a port of its own.
agent_config() {
	cat >"$T/$1.yaml" <<YAML
id: test-agent
data_dir: $T/$1.data
log_level: info
spool: {commit_interval: 5ms${3:+, $3}}
sources:
  - name: app
    type: http
    stream: app.events
    listen: $LF_IP:$(free_port)
    max_body_size: $2
${4:+    $4}
YAML
	echo "$T/$1.yaml"
}

# start_agent NAME CONFIG: starts it and sets URL to its listener, once it listens.
start_agent() {
	start "$1" "$LOGFERRY_AGENT" -c "$2"
	AGENT_PID=$LF_PID
	URL=
	if ! wait_log "$T/$1.log" "source app: listening on http://" 10; then
		fail "$1: the agent did not start listening"
		cat "$T/$1.log"
		return 1
	fi
	URL=$(sed -n 's|.*source app: listening on \(http://[^ ]*\).*|\1|p' "$T/$1.log" | head -1)
	echo "$1: listening on $URL"
}

# stop_agent PID: SIGTERM, then checks the exit status.
stop_agent() {
	kill -TERM "$1"
	wait_exit "$1" 20 || { fail "agent $1 did not stop"; return; }
	[ "$LF_RC" = 0 ] || fail "agent exited $LF_RC"
}

# post CTYPE FILE [CURL-ARGS...]: POSTs FILE to /v1/events; prints the status,
# leaves the body in $T/resp and the headers in $T/resp.h.
post() {
	local ctype=$1 file=$2
	shift 2
	curl -sS --max-time 10 -o "$T/resp" -D "$T/resp.h" -w '%{http_code}' \
		-H "Content-Type: $ctype" --data-binary "@$file" "$@" "$URL/v1/events"
}

# expect WHAT WANT-STATUS GOT-STATUS [BODY-PATTERN]
expect() {
	if [ "$3" = "$2" ] && { [ -z "${4:-}" ] || grep -Eq -- "$4" "$T/resp"; }; then
		pass "$1"
	else
		fail "$1: status $3 (want $2), body: $(head -c 300 "$T/resp" 2>/dev/null)"
	fi
}

# ---------------------------------------------------------------- the main cases
cfg=$(agent_config main 64KiB)
start_agent agent-main "$cfg" || finish
pid=$AGENT_PID
accepted=0

printf '{"msg":"hello","n":3,"ok":true,"stream":"app.audit","ts":"2026-11-22T10:00:00.123456Z"}' >"$T/one.json"
code=$(post application/json "$T/one.json")
expect "one object: 200 {\"accepted\":1}" 200 "$code" '^\{"accepted":1\}$'
accepted=$((accepted + 1))

printf '{"i":1}\n\n{"i":2,"x":null}\r\n{"i":3,"tags":["a","b"]}\n' >"$T/three.ndjson"
code=$(post application/x-ndjson "$T/three.ndjson")
expect "ndjson, 3 lines and a blank one: 200 {\"accepted\":3}" 200 "$code" '^\{"accepted":3\}$'
accepted=$((accepted + 3))

printf '{"marker":"bad-request-1"}\n{"marker":"bad-request-2",}\n{"marker":"bad-request-3"}\n' \
	>"$T/bad.ndjson"
code=$(post application/x-ndjson "$T/bad.ndjson")
expect "a malformed line 2: 400 naming line 2" 400 "$code" '^\{"error":"line 2: json: invalid JSON at column [0-9]+'

for i in $(seq 1 100); do printf '{"gz":%d,"pad":"%0100d"}\n' "$i" 0; done >"$T/gz.ndjson"
gzip -9 -c "$T/gz.ndjson" >"$T/gz.ndjson.gz"
code=$(post application/x-ndjson "$T/gz.ndjson.gz" -H 'Content-Encoding: gzip')
expect "a gzip body: 200 {\"accepted\":100}" 200 "$code" '^\{"accepted":100\}$'
accepted=$((accepted + 100))

head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
code=$(post application/json "$T/big.json")
expect "a body over max_body_size (64 KiB): 413" 413 "$code" 'max_body_size'
grep -qi '^Connection: close' "$T/resp.h" || fail "413 without Connection: close"

# 10 MiB of spaces around an object, gzip-compressed to ~10 KiB: refused once decoded.
{ printf '{"bomb":1}'; head -c $((10 << 20)) /dev/zero | tr '\0' ' '; } | gzip -c >"$T/bomb.json.gz"
code=$(post application/json "$T/bomb.json.gz" -H 'Content-Encoding: gzip')
expect "a small gzip body over max_body_size once decoded: 413" 413 "$code" 'once decoded'

code=$(curl -sS --max-time 10 -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary '{}' "$URL/v2/events")
expect "another path: 404" 404 "$code"
code=$(curl -sS --max-time 10 -o "$T/resp" -D "$T/resp.h" -w '%{http_code}' "$URL/v1/events")
expect "GET: 405" 405 "$code"
grep -qi '^Allow: POST' "$T/resp.h" && pass "405 says Allow: POST" || fail "405 without Allow: POST"
code=$(post text/plain "$T/one.json")
expect "Content-Type text/plain: 415" 415 "$code" 'application/x-ndjson'

# Keep-alive: one curl, two URLs, one connection (num_connects 0 the second time).
printf '{"ka":1}' >"$T/ka.json"
out=$(curl -sS --max-time 10 -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
	-H 'Content-Type: application/json' --data-binary "@$T/ka.json" \
	"$URL/v1/events" "$URL/v1/events" | tr '\n' ' ')
[ "$out" = "200 1 200 0 " ] && pass "keep-alive: two requests on one connection ($out)" || \
	fail "keep-alive: got '$out', want '200 1 200 0 '"
accepted=$((accepted + 2))
out=$(curl -sS --max-time 10 -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
	-H 'Content-Type: application/json' -H 'Connection: close' --data-binary "@$T/ka.json" \
	"$URL/v1/events" "$URL/v1/events" | tr '\n' ' ')
[ "$out" = "200 1 200 1 " ] && pass "Connection: close is honoured ($out)" || \
	fail "Connection: close: got '$out', want '200 1 200 1 '"
accepted=$((accepted + 2))
out=$(curl -0 -sS --max-time 10 -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
	-H 'Content-Type: application/json' --data-binary "@$T/ka.json" \
	"$URL/v1/events" "$URL/v1/events" | tr '\n' ' ')
[ "$out" = "200 1 200 1 " ] && pass "HTTP/1.0 closes without keep-alive ($out)" || \
	fail "HTTP/1.0: got '$out', want '200 1 200 1 '"
accepted=$((accepted + 2))

stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump >"$T/dump.json" || fail "spool dump failed"
if python3 - "$T/dump.json" "$accepted" "$URL" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1], 'rb')]
want, url = int(sys.argv[2]), sys.argv[3]
assert len(evs) == want, '%d events in the spool, %d answered 200' % (len(evs), want)
assert not any('bad-request' in e['message'] for e in evs), 'a line of the 400 request was spooled'
e = evs[0]
assert e['message'] == open(sys.argv[1].replace('dump.json', 'one.json')).read(), e['message']
assert e['stream'] == 'app.audit', e['stream']
assert e['ts'] == '2026-11-22T10:00:00.123456Z', e['ts']
assert e['source'] == url, e['source']
assert e['fields'] == {'msg': 'hello', 'n': 3, 'ok': True, 'stream': 'app.audit',
    'ts': '2026-11-22T10:00:00.123456Z'}, e['fields']
assert [x['message'] for x in evs[1:4]] == ['{"i":1}', '{"i":2,"x":null}', '{"i":3,"tags":["a","b"]}']
assert all(x['stream'] == 'app.events' for x in evs[1:]), 'the source stream by default'
assert evs[3]['fields']['tags'] == ['a', 'b']
assert [x['fields']['gz'] for x in evs[4:104]] == list(range(1, 101)), 'gzip lines in order'
print(len(evs), 'events')
PY
then
	pass "the spool holds exactly the events answered 200, with their fields, stream, time and source"
else
	fail "spool contents"
fi

# ---------------------------------------------------------------- a crowd
# crowd.py HOST PORT: 256 concurrent POSTs, then those connections idle
# and 64 new POSTs at once; or idle HOST PORT: two connections the agent
# must close after idle_timeout. Prints what it saw; exits 1 on a failure.
cat >"$T/crowd.py" <<'PY'
import select, socket, sys, time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def request(tag, i):
    body = ('{"crowd":"%s","i":%d}' % (tag, i)).encode()
    return (b'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
            b'Content-Length: %d\r\n\r\n' % len(body)) + body

def response(s):
    buf = b''
    while b'\r\n\r\n' not in buf:
        d = s.recv(65536)
        if not d:
            return None, 'connection closed before an answer'
        buf += d
    head, rest = buf.split(b'\r\n\r\n', 1)
    n = 0
    for line in head.split(b'\r\n')[1:]:
        k, v = line.split(b':', 1)
        if k.strip().lower() == b'content-length':
            n = int(v)
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            return None, 'connection closed in the answer'
        rest += d
    return int(head.split()[1]), rest[:n].decode()

def crowd(tag, n):
    # Every request is sent before any answer is read: all are in the agent at once.
    socks = [socket.create_connection((host, port), timeout=60) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(request(tag, i))
    bad = []
    for i, s in enumerate(socks):
        st, body = response(s)
        if st != 200:
            bad.append('%s %d: %s %s' % (tag, i, st, body))
    print('%s: %d concurrent POSTs, %d answered 200' % (tag, n, n - len(bad)))
    for b in bad[:5]:
        print('  ' + b)
    return socks, bad

def closed_by_server(socks, want, secs):
    # Until `want` of socks are closed by the agent (EOF or reset), at most secs.
    closed, deadline = set(), time.time() + secs
    while len(closed) < want and time.time() < deadline:
        r, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.5)
        for s in r:
            try:
                if s.recv(4096) == b'':
                    closed.add(s)
            except OSError:
                closed.add(s)
    return len(closed)

if mode == 'crowd':
    first, bad1 = crowd('first', 256)
    # Those 256 keep-alive connections now idle in every max_connections slot.
    second, bad2 = crowd('second', 64)
    n = closed_by_server(first, 64, 10)
    print('idle connections closed to admit the new ones: %d' % n)
    sys.exit(1 if bad1 or bad2 or n < 64 else 0)
else:
    silent = socket.create_connection((host, port), timeout=60)
    used = socket.create_connection((host, port), timeout=60)
    used.sendall(request('idle', 0))
    st, body = response(used)
    n = closed_by_server([silent, used], 2, 20)
    print('idle: request answered %s; %d of 2 idle connections closed' % (st, n))
    sys.exit(0 if st == 200 and n == 2 else 1)
PY

# crowd MODE: crowd.py MODE against the agent at $URL.
crowd() {
	local hostport=${URL#http://}
	python3 "$T/crowd.py" "$1" "${hostport%:*}" "${hostport##*:}"
}

cfg=$(agent_config crowd 64KiB)
start_agent agent-crowd "$cfg" || finish
pid=$AGENT_PID
if crowd crowd; then
	pass "256 concurrent POSTs on an empty spool, then 64 more while 256 idle keep-alive connections hold every slot: all answered 200"
else
	fail "a crowd of POSTs was not answered 200 each (see above)"
fi
grep -q 'spool is full' "$T/agent-crowd.log" && fail "the agent said the spool was full: $(grep -m1 'spool is full' "$T/agent-crowd.log")"
stop_agent "$pid"
n=$(spooled "$cfg")
[ "${n:-0}" = 320 ] && pass "every event answered 200 is spooled (320)" || \
	fail "the spool holds ${n:-0} events, 320 were answered 200"

# ---------------------------------------------------------------- idle_timeout
cfg=$(agent_config idle 64KiB "" "idle_timeout: 1s")
start_agent agent-idle "$cfg" || finish
pid=$AGENT_PID
if crowd idle; then
	pass "idle_timeout 1s: a silent connection and one between requests are closed"
else
	fail "idle_timeout 1s: idle connections were not closed within 20 s"
fi
stop_agent "$pid"

# ---------------------------------------------------------------- a full spool: 503
# max_size 16 MiB is the smallest allowed: incompressible events fill it,
# until the agent answers 503 (Retry-After) instead of taking more. The
# request whose events reached the spool as it filled waits request_timeout
# (2 s here) for room, then is answered 503 too.
cfg=$(agent_config full 1MiB "max_size: 16MiB" "request_timeout: 2s")
start_agent agent-full "$cfg" || finish
pid=$AGENT_PID
got503=0 accepted=0 waited=0
for i in $(seq 1 80); do
	python3 - "$T/rand.ndjson" "$i" <<'PY'
import random, string, sys
r = random.Random(int(sys.argv[2]))
chars = string.ascii_letters + string.digits
with open(sys.argv[1], 'w') as f:
    for j in range(8):
        f.write('{"req":%s,"line":%d,"noise":"%s"}\n' % (sys.argv[2], j,
            ''.join(r.choice(chars) for _ in range(60000))))
PY
	code=$(curl -sS --max-time 30 -o "$T/resp" -D "$T/resp.h" -w '%{http_code}' \
		-H 'Content-Type: application/x-ndjson' --data-binary "@$T/rand.ndjson" \
		"$URL/v1/events" 2>/dev/null)
	case $code in
	200) accepted=$((accepted + 8)) ;;
	503)
		if grep -q 'spool is full' "$T/resp"; then
			got503=1
			break
		fi
		# Waited request_timeout for the writer, which is no full spool.
		grep -q 'request_timeout' "$T/resp" || { fail "full spool: 503 without a reason: $(cat "$T/resp")"; break; }
		waited=$((waited + 1)) ;;
	*) fail "full spool: unexpected status $code: $(cat "$T/resp")"; break ;;
	esac
done
echo "full spool: $accepted events accepted, $waited request(s) answered 503 after request_timeout, then 503 full: $got503"
if [ "$got503" = 1 ] && grep -qi '^Retry-After: 1' "$T/resp.h"; then
	pass "a full spool answers 503 with Retry-After: 1 and \"the spool is full\""
else
	fail "no 503 with Retry-After and \"the spool is full\" from a full spool"
fi
wait_log "$T/agent-full.log" "is full" 5 || fail "full spool: the spool never said it was full"
# The agent still answers at once, and refuses again.
code=$(post application/json "$T/one.json")
expect "a full spool keeps answering 503 \"the spool is full\"" 503 "$code" 'the spool is full'
stop_agent "$pid"
n=$("$LOGFERRY_AGENT" -c "$cfg" --spool-stats 2>/dev/null | awk '/^events:/ { print $2 }')
if [ "${n:-0}" -ge "$accepted" ]; then
	pass "every event answered 200 is in the full spool ($n >= $accepted)"
else
	fail "full spool holds ${n:-0} events, $accepted were answered 200"
fi

finish
