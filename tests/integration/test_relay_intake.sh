#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The relay's HTTP intake (issue 20 item 3): curl over HTTPS with a good
# token is answered 200 once Kafka has the events, which carry the token's
# name as their agent id and increasing sequence numbers; a bad or missing
# token is 401 and nothing is produced; a sender over its rate limit is
# 429; a request Kafka does not acknowledge within request_timeout is 503.
# Then 100,000 events posted in requests of 1,000 by a client that
# retries 503s, with a Kafka outage (every mock broker down) in the middle:
# every request answered 200 is in Kafka, every request answered 503 and
# retried arrives, and the only duplicates are events of retried requests.
. "$(dirname "$0")/lib.sh"

need kcat curl python3
kafka_mock || { echo "SKIP: the outage needs the mock cluster (LOGFERRY_TEST_KAFKA is set)"; exit 77; }
make_certs
start_kafka
run=$(date +%s)$$
stream=rest$run
kafka_topic "logs.$stream" 16
kafka_topic "logs.slow$run" 1

TOK=$(printf 'k%.0s' $(seq 32))
# A second sender, with rate buckets of its own: the request_timeout case
# below must not depend on how long app-one's bucket has had to refill.
TOK_SLOW=$(printf 'n%.0s' $(seq 32))
printf '# REST senders\n%s app-one\n%s app-slow\n' "$TOK" "$TOK_SLOW" >"$T/tokens"
chmod 0640 "$T/tokens"

# intake_yaml PORT STREAM [AUTH-EXTRA]: an http_intake section over HTTPS with the tokens.
intake_yaml() {
	cat <<YAML
http_intake:
  listen: $LF_IP:$1
  stream: $2
  tls: {cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key}
  auth: {tokens_file: $T/tokens${3:-}}
YAML
}
iport=$(free_port)
mport=$(free_port)
rcfg=$(relay_config relay "$(free_port)" "metrics: {listen: $LF_IP:$mport}
$(intake_yaml "$iport" "$stream")")
start_relay relay "$rcfg"
relay=$LF_PID
wait_log "$T/relay.log" "http_intake: listening on https://$LF_IP:$iport" 30 ||
	{ fail "the intake did not start: $(tail -3 "$T/relay.log")"; finish; }
sport=$(free_port)
scfg=$(relay_config slow "$(free_port)" "$(intake_yaml "$sport" "slow$run" ", events_per_second: 1, events_burst: 2")")
# The slow intake also gives Kafka less time than its delivery_timeout (5 s).
echo "  request_timeout: 1s" >>"$scfg"
start_relay slow "$scfg"
wait_log "$T/slow.log" "http_intake: listening on" 30 || { fail "the slow intake did not start"; finish; }

URL=https://$LF_IP:$iport
# post URL BODY [CURL-ARGS...]: prints the status; the answer in $T/resp, headers in $T/resp.h.
post() {
	local url=$1 body=$2
	shift 2
	curl -sS --max-time 30 --cacert "$T/certs/ca.crt" -o "$T/resp" -D "$T/resp.h" -w '%{http_code}' \
		-H 'Content-Type: application/x-ndjson' --data-binary "$body" "$@" "$url/v1/events"
}
# records TOPIC: its records as headers TAB value, into $T/TOPIC.dump; prints their count.
records() {
	kafka_dump "$1" "$T/$1.dump"
	wc -l <"$T/$1.dump"
}

# ---- a good token: 200 once in Kafka, the sender as agent id, increasing seq ----
s=$(post "$URL" '{"msg":"one","n":1}' -H "Authorization: Bearer $TOK")
[ "$s" = 200 ] && grep -q '"accepted":1' "$T/resp" && pass "a good token is answered 200 {\"accepted\":1}" ||
	fail "good token: $s $(cat "$T/resp")"
s=$(post "$URL" $'{"msg":"two","n":2}\n{"msg":"three","n":3}\n' -H "Authorization: Bearer $TOK")
[ "$s" = 200 ] || fail "second request: $s $(cat "$T/resp")"
# 200 means Kafka acknowledged: the records are there now, no waiting.
n=$(records "logs.$stream")
[ "$n" = 3 ] && pass "the events answered 200 are in Kafka" || fail "$n records in Kafka, want 3"
if python3 - "$T/logs.$stream.dump" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    h, v = line.rstrip("\n").split("\t", 1)
    hd = dict(x.split("=", 1) for x in h.split(","))
    rows.append((json.loads(v)["fields"]["n"], hd["logferry-agent"], int(hd["logferry-seq"])))
rows.sort()
assert [r[1] for r in rows] == ["app-one"] * 3, rows
assert rows[0][2] < rows[1][2] < rows[2][2], rows
PY
then
	pass "each record has the token's name as logferry-agent and a larger logferry-seq than the one before"
else
	fail "headers: $(cat "$T/logs.$stream.dump")"
fi

# ---- bad and missing tokens: 401, nothing produced ----
s=$(post "$URL" '{"msg":"intruder"}' -H "Authorization: Bearer $(printf 'x%.0s' $(seq 32))")
[ "$s" = 401 ] && grep -qi '^WWW-Authenticate: Bearer' "$T/resp.h" && pass "an unknown token is 401" ||
	fail "unknown token: $s"
s=$(post "$URL" '{"msg":"anonymous"}')
[ "$s" = 401 ] && pass "no token is 401" || fail "no token: $s"
n=$(records "logs.$stream")
[ "$n" = 3 ] && pass "nothing of a 401 request reaches Kafka" || fail "$n records after the 401s, want 3"
v=$(metric "$mport" logferry_http_unauthorized_total)
[ "$v" = 2 ] && pass "401s are counted" || fail "logferry_http_unauthorized_total is $v"

# ---- rate limits: 429 with Retry-After ----
s=$(post "https://$LF_IP:$sport" $'{"a":1}\n{"a":2}\n' -H "Authorization: Bearer $TOK")
[ "$s" = 200 ] || fail "the first request within the burst: $s $(cat "$T/resp")"
s=$(post "https://$LF_IP:$sport" '{"a":3}' -H "Authorization: Bearer $TOK")
[ "$s" = 429 ] && grep -qi '^Retry-After: [0-9]' "$T/resp.h" &&
	pass "a sender over its rate limit is 429 with Retry-After" || fail "rate limit: $s"
n=$(records "logs.slow$run")
[ "$n" = 2 ] && pass "nothing of a 429 request reaches Kafka" || fail "$n records in the slow topic, want 2"

# ---- 100,000 events in requests of 1,000, Kafka down in the middle ----
python3 "$top_srcdir/tests/tools/intake_client.py" "$URL" "$TOK" "$T/certs/ca.crt" 100000 1000 \
	"$T/client.out" >"$T/client.log" 2>&1 &
client=$!
LF_PIDS+=("$client")
for _ in $(seq 600); do
	[ "$(wc -l <"$T/client.out" 2>/dev/null || echo 0)" -ge 20 ] && break
	sleep 0.1
done
[ "$(wc -l <"$T/client.out")" -ge 20 ] ||
	{ fail "the client did not get 20 answers: $(cat "$T/client.log")"; finish; }
kafka_ctl down -1
# Kafka does not answer within request_timeout: 503, and the client is told why.
s=$(post "https://$LF_IP:$sport" '{"a":4}' -H "Authorization: Bearer $TOK_SLOW")
[ "$s" = 503 ] && grep -q 'within request_timeout' "$T/resp" && grep -qi '^Retry-After: 1' "$T/resp.h" &&
	pass "a request Kafka does not acknowledge within request_timeout is 503 with Retry-After" ||
	fail "request_timeout: $s $(cat "$T/resp")"
# The outage is over once a request has been answered 503 because of it.
wait_log "$T/relay.log" "answered 503 to" 60 || fail "no request was answered 503 during the outage"
kafka_ctl up -1
wait_exit "$client" 100 || fail "the client did not finish: $(tail -3 "$T/client.out")"
retried=$(awk '$3 > 1' "$T/client.out" | wc -l)
ok=$(awk '$2 == 200' "$T/client.out" | wc -l)
[ "$ok" = 100 ] && pass "every one of the 100 requests was answered 200 in the end ($retried after a 503)" ||
	fail "$ok requests answered 200: $(awk '$2 != 200' "$T/client.out" | head -3)"
[ "$retried" -ge 1 ] || fail "no request was retried: the outage did not reach the client"
kafka_dump "logs.$stream" "$T/all.dump"
if python3 - "$T/all.dump" "$T/client.out" >"$T/check.out" 2>&1 <<'PY'
import json, sys, collections
count = collections.Counter()
for line in open(sys.argv[1]):
    h, v = line.rstrip("\n").split("\t", 1)
    f = json.loads(v)["fields"]
    if "id" in f:
        count[f["id"]] += 1
retried = {int(r) for r, s, a in (l.split() for l in open(sys.argv[2])) if int(a) > 1}
missing = [i for i in range(100000) if count[i] == 0]
dups = {i for i, c in count.items() if c > 1}
bad = sorted(i for i in dups if i // 1000 not in retried)
print("missing", len(missing), "duplicated", len(dups), "outside retried requests", len(bad))
assert not missing, missing[:10]
assert not bad, bad[:10]
PY
then
	pass "every event of every request is in Kafka; duplicates only from retried requests: $(cat "$T/check.out")"
else
	fail "Kafka against the client: $(tail -3 "$T/check.out")"
fi

# ---- SIGHUP reads the tokens again; SIGTERM stops the relay cleanly ----
TOK2=$(printf 'm%.0s' $(seq 32))
printf '%s app-two\n' "$TOK2" >>"$T/tokens"
kill -HUP "$relay"
wait_log "$T/relay.log" "http_intake: 3 token\(s\) loaded" 30 || fail "no reload of the tokens: $(tail -3 "$T/relay.log")"
s=$(post "$URL" '{"msg":"new sender"}' -H "Authorization: Bearer $TOK2")
[ "$s" = 200 ] && pass "a token added to the file is taken after SIGHUP" || fail "new token after SIGHUP: $s"
kill -TERM "$relay"
wait_exit "$relay" 30 || fail "the relay did not stop"
[ "$LF_RC" = 0 ] && pass "the relay with its intake stops cleanly on SIGTERM" || fail "the relay exited $LF_RC"
finish
