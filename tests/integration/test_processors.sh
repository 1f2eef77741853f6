#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Processing stages at the agent's door (logferry-agent(8) PROCESSORS),
# with real processes: JSON lines in a file -> agent (processors global and
# per source) -> relay -> mock Kafka, read back with kcat. Fields are added,
# renamed and removed, debug events dropped, an event without user_id is in
# the dead-letter stream's topic with the reason (and still loses its
# password), nothing else is lost, and a changed chain applies on SIGHUP.
. "$(dirname "$0")/lib.sh"

need kcat openssl curl
make_certs
start_kafka
run=$(date +%s)$$
app=app_$run
dl=dl_$run
kafka_topic "logs.$app" 4
kafka_topic "logs.$dl" 4
port=$(free_port)
amport=$(free_port)
rcfg=$(relay_config relay "$port")
start_relay relay "$rcfg"

# agent_yaml ENV: the agent's configuration, its global add_fields setting env: ENV.
agent_yaml() {
	cat >"$T/agent.yaml" <<CONF
id: web-01
data_dir: $T/agent
metrics: {listen: $LF_IP:$amport}
processors:
  - {type: add_fields, values: {env: $1, node: "\${host}", agent_id: "\${agent_id}"}}
  - {type: require, fields: [user_id], dead_letter_stream: $dl}
  - {type: remove, fields: [password]}
sources:
  - name: app
    type: file
    stream: $app
    paths: [$T/app.log]
    format: json
    processors:
      - {type: rename, map: {uid: user_id}}
      - {type: drop, when: [{field: level, equals: debug}]}
relays:
  servers: [$LF_IP:$port]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
CONF
	[ -f "$T/certs/web-01-chain.crt" ] || sed -i "s|web-01-chain.crt|web-01.crt|" "$T/agent.yaml"
}

cat >"$T/app.log" <<'LINES'
{"uid":"u1","level":"info","what":"one","password":"s3cret"}
{"uid":"u2","level":"debug","what":"two"}
{"level":"info","what":"three","password":"hunter2"}
{"user_id":"u4","level":"warn","what":"four","env":"dev"}
LINES
agent_yaml prod
start agent "$LOGFERRY_AGENT" -c "$T/agent.yaml"
agent=$LF_PID
wait_log "$T/agent.log" "serving /metrics and /health on http://$LF_IP:$amport" 60 ||
	fail "agent: no metrics endpoint: $(tail -3 "$T/agent.log")"
wait_metric "$amport" "logferry_processor_events_passed_total{source=\"app\",processor=\"remove\"}" \
	-eq 3 60 || fail "agent: the three events kept did not go through the chain: $(tail -3 "$T/agent.log")"

# records TOPIC COUNT: waits until TOPIC has COUNT records, into $T/TOPIC.json (one value a line).
records() {
	local i
	for ((i = 0; i < 60; i++)); do
		kafka_dump "$1" "$T/$1.dump"
		[ "$(wc -l <"$T/$1.dump")" -ge "$2" ] && break
		sleep 1
	done
	cut -f2- "$T/$1.dump" >"$T/$1.json"
	[ "$(wc -l <"$T/$1.json")" -eq "$2" ] || fail "$1: $(wc -l <"$T/$1.json") records, expected $2"
}

# check FILE PYTHON: runs the assertion PYTHON with recs (FILE's records,
# by their field "what"); prints what failed.
check() {
	python3 - "$1" "$2" <<'PY'
import json, sys
recs = {}
for line in open(sys.argv[1], encoding='utf-8'):
    r = json.loads(line)
    recs[r['fields']['what']] = r
try:
    exec(sys.argv[2])
except AssertionError as e:
    print(e)
    sys.exit(1)
PY
}

host=$(hostname)
records "logs.$app" 2
out=$(check "$T/logs.$app.json" "
f1 = recs['one']['fields']; f4 = recs['four']['fields']
assert sorted(recs) == ['four', 'one'], f'records {sorted(recs)}'
assert f1.get('user_id') == 'u1' and 'uid' not in f1, f'uid not renamed: {f1}'
assert 'password' not in f1, f'password not removed: {f1}'
assert f1.get('env') == 'prod' and f1.get('node') == '$host' and f1.get('agent_id') == 'web-01', f'fields not added: {f1}'
assert f4.get('env') == 'prod', f'env not overwritten: {f4}'
assert recs['one']['message'].startswith('{'), 'message changed'
") && pass "fields added (env, \${host}, \${agent_id}), uid renamed, password removed, env overwritten, debug dropped" ||
	fail "processed records: $out"

records "logs.$dl" 1
out=$(check "$T/logs.$dl.json" "
r = recs['three']; f = r['fields']
assert r['stream'] == '$dl', f'stream {r[\"stream\"]}'
assert f.get('logferry_error') == 'missing field user_id', f'reason: {f}'
assert f.get('logferry_stream') == '$app', f'original stream: {f}'
assert 'password' not in f, f'a dead letter skipped the stages after require: {f}'
assert f.get('env') == 'prod', f'{f}'
") && pass "the event without user_id is in the dead-letter topic with its reason and stream, password removed" ||
	fail "dead letter: $out"

for kv in "logferry_processor_events_dropped_total{source=\"app\",processor=\"drop\"} 1" \
	"logferry_processor_events_dead_lettered_total{source=\"app\",processor=\"require\"} 1" \
	"logferry_processor_events_passed_total{source=\"app\",processor=\"add_fields\"} 3" \
	"logferry_processor_errors_total{source=\"app\",processor=\"require\"} 0"; do
	v=$(metric "$amport" "${kv% *}")
	[ "$v" = "${kv##* }" ] || { fail "agent: ${kv% *} is ${v:-absent}, expected ${kv##* }"; counted=no; }
done
[ -z "${counted:-}" ] &&
	pass "4 lines: 2 processed, 1 dropped, 1 dead-lettered, counted per stage; nothing else lost"

# ---- SIGHUP with a changed chain ----
agent_yaml staging
kill -HUP "$agent"
wait_log "$T/agent.log" "SIGHUP: (applied|.*running configuration stays)" 60 ||
	fail "the reload did not end: $(tail -3 "$T/agent.log")"
grep -q "SIGHUP: applied" "$T/agent.log" || fail "the reload was refused: $(tail -3 "$T/agent.log")"
echo '{"uid":"u5","level":"info","what":"five"}' >>"$T/app.log"
records "logs.$app" 3
out=$(check "$T/logs.$app.json" "
f = recs['five']['fields']
assert f.get('env') == 'staging' and f.get('user_id') == 'u5', f'{f}'
assert recs['one']['fields']['env'] == 'prod'
") && pass "a changed global chain applies on SIGHUP, and nothing is read twice" ||
	fail "after SIGHUP: $out"
finish
