#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Hive-ready records through the real daemons (file -> agent -> relay ->
# Kafka, read back with kcat), docs/logferry-relay.8 HIVE:
# - with kafka.json_field_names: hive, every field name of a JSON line is a
#   lower-case [a-z0-9_] column name, collisions resolved in field order;
# - a line that is not valid UTF-8 arrives with message_b64, whose bytes are
#   the line's, while message stays valid JSON text.
. "$(dirname "$0")/lib.sh"

command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
make_certs
start_kafka
run=$(date +%s)$$
stream=hive_$run
kafka_topic "logs.$stream" 1

port=$(free_port)
rcfg=$(relay_config relay "$port" "  json_field_names: hive")
"$LOGFERRY_RELAY" -c "$rcfg" --check >"$T/relay-check.log" 2>&1 ||
	fail "relay --check refuses kafka.json_field_names: hive: $(cat "$T/relay-check.log")"
start_relay relay "$rcfg"

mkdir -p "$T/log"
# Names that need mapping (one of them a UTF-8 é, raw, another \u-escaped),
# two that collide, and a line whose bytes are not UTF-8 (Latin-1 é, 0xff).
{
	printf '%s\n' '{"sd.meta@1.user-name":"alice","User-Name":"bob","HTTP_Status":200,"1st":true,"":"e","caf\u00e9":1,"naïve":2,"user_name":"carol"}'
	printf '{"note":"caf\xe9 \xff end","n":1}\n'
} >"$T/log/app.json"
cat >"$T/agent.yaml" <<CONF
id: web-01
data_dir: $T/spool
sources:
  - {name: $stream, type: file, paths: [$T/log/app.json], format: json}
relays:
  servers: [$LF_IP:$port]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
CONF
start agent "$LOGFERRY_AGENT" -c "$T/agent.yaml"

got=0
for _ in $(seq 60); do
	kafka_dump "logs.$stream" "$T/dump"
	got=$(grep -c . "$T/dump")
	[ "$got" -ge 2 ] && break
	sleep 1
done
[ "$got" -ge 2 ] || {
	fail "logs.$stream: $got records, expected 2: $(tail -2 "$T/agent.log")"
	finish
}

# ---- test_hive_field_names_are_columns_resolved_in_field_order ----
if out=$(python3 - "$T/dump" <<'PY'
import json, sys
recs = [json.loads(l.rstrip('\n').partition('\t')[2]) for l in open(sys.argv[1], encoding='utf-8')]
names = list(recs[0]['fields'])
want = ['sd_meta_1_user_name', 'user_name', 'http_status', '_1st', '_', 'caf_', 'na_ve', 'user_name_2']
print(' '.join(names))
sys.exit(0 if names == want and recs[0]['fields']['user_name_2'] == 'carol' else 1)
PY
); then
	pass "field names are Hive columns: $out"
else
	fail "field names: $out"
fi

# ---- test_a_line_not_utf8_keeps_its_bytes_in_message_b64 ----
if out=$(python3 - "$T/dump" "$T/log/app.json" <<'PY'
import base64, json, sys
recs = [json.loads(l.rstrip('\n').partition('\t')[2]) for l in open(sys.argv[1], encoding='utf-8')]
line = open(sys.argv[2], 'rb').read().split(b'\n')[1]
bad, good = recs[1], recs[0]
ok = ('message_b64' in bad and base64.b64decode(bad['message_b64'], validate=True) == line
      and '\ufffd' in bad['message'] and 'message_b64' not in good)
print(f"message {bad['message']!r}, message_b64 {bad.get('message_b64')!r}, line {line!r}")
sys.exit(0 if ok else 1)
PY
); then
	pass "message_b64 decodes to the line's bytes: $out"
else
	fail "message_b64: $out"
fi
finish
