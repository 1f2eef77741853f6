#!/bin/bash
# The http source with the real agent and curl as the client: one object,
# ndjson, gzip bodies, a malformed line (400, and nothing of that request
# in the spool), an oversized body (413), 404/405/415, keep-alive (curl
# reuses its connection for a second URL; Connection: close and HTTP/1.0
# do not), and a spool filled to its max_size with incompressible events
# until the agent answers 503 with Retry-After. The spool dump must hold
# exactly the events that were answered 200, with the fields, stream and
# time their objects set.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v gzip >/dev/null || { echo "SKIP: gzip not installed"; exit 77; }

# agent_config NAME MAX_BODY [SPOOL-EXTRA]: one http source on an ephemeral loopback port.
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
    listen: 127.0.0.1:0
    max_body_size: $2
YAML
	echo "$T/$1.yaml"
}

# start_agent NAME CONFIG: starts it and sets URL to its listener (port 0 is logged).
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

# ---------------------------------------------------------------- a full spool: 503
# max_size 16 MiB is the smallest allowed: incompressible events fill it,
# until the agent answers 503 (Retry-After) instead of taking more.
cfg=$(agent_config full 1MiB "max_size: 16MiB")
start_agent agent-full "$cfg" || finish
pid=$AGENT_PID
got503=0 accepted=0 timeouts=0
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
	code=$(curl -sS --max-time 5 -o "$T/resp" -D "$T/resp.h" -w '%{http_code}' \
		-H 'Content-Type: application/x-ndjson' --data-binary "@$T/rand.ndjson" \
		"$URL/v1/events" 2>/dev/null)
	case $code in
	200) accepted=$((accepted + 8)) ;;
	503) got503=1; break ;;
	# The request whose events reached the spool as it filled waits for room.
	000) timeouts=$((timeouts + 1)) ;;
	*) fail "full spool: unexpected status $code: $(cat "$T/resp")"; break ;;
	esac
done
echo "full spool: $accepted events accepted, $timeouts request(s) left waiting, then 503: $got503"
if [ "$got503" = 1 ] && grep -qi '^Retry-After: 1' "$T/resp.h" && grep -q 'spool is full' "$T/resp"; then
	pass "a full spool answers 503 with Retry-After: 1"
else
	fail "no 503 with Retry-After from a full spool"
fi
wait_log "$T/agent-full.log" "is full" 5 || fail "full spool: the spool never said it was full"
# The agent still answers at once, and refuses again.
code=$(post application/json "$T/one.json")
expect "a full spool keeps answering 503" 503 "$code"
stop_agent "$pid"
n=$("$LOGFERRY_AGENT" -c "$cfg" --spool-stats 2>/dev/null | awk '/^events:/ { print $2 }')
if [ "${n:-0}" -ge "$accepted" ]; then
	pass "every event answered 200 is in the full spool ($n >= $accepted)"
else
	fail "full spool holds ${n:-0} events, $accepted were answered 200"
fi

finish
