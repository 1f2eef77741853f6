#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Hive-ready records through the real daemons (file -> agent -> relay ->
# Kafka, read back with kcat), docs/logferry-relay.8 HIVE:
# - with kafka.json_field_names: hive, every field name of a JSON line is a
#   lower-case [a-z0-9_] column name, collisions resolved in field order;
# - a line that is not valid UTF-8 arrives with message_b64, whose bytes are
#   the line's, while message stays valid JSON text;
# - docs/hive.md's NGINX source, as written, makes records that its CREATE
#   EXTERNAL TABLE declares: every member a column, every field a member of
#   the fields STRUCT, of a type that reads the field's JSON value.
. "$(dirname "$0")/lib.sh"

need kcat openssl python3
make_certs
start_kafka
run=$(date +%s)$$
stream=hive_$run
kafka_topic "logs.$stream" 1
nginx=hive_nginx_$run
kafka_topic "logs.$nginx" 1
hive_md=$top_srcdir/docs/hive.md

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
# Access log lines in the document's log_format: one with two upstreams, one
# with none (NGINX writes -), one NGINX did not write.
cat >"$T/log/access.log" <<'LINES'
203.0.113.9 - alice [22/Nov/2026:10:00:00 +0000] "GET /a?q=1 HTTP/1.1" 502 157 "https://example.net/" "curl/8.0" "10.0.0.1" 0.012 0.004, 0.008
198.51.100.7 - - [22/Nov/2026:10:00:01 +0000] "POST /api HTTP/2.0" 200 31 "-" "Mozilla/5.0" "-" 0.000 -
this is not nginx
LINES
# The document's source, its path and name made this test's.
awk '/<!-- begin nginx source/ { on = 1 } /<!-- end nginx source/ { on = 0 }
	on && /^```yaml$/ { code = 1; next } on && /^```$/ { code = 0; next } on && code' "$hive_md" |
	sed -e "s|\[/var/log/nginx/access.log\]|[$T/log/access.log]|" -e "s|name: nginx_access$|name: $nginx|" \
	>"$T/nginx-source.yaml"
grep -q "name: $nginx" "$T/nginx-source.yaml" || fail "no nginx source in $hive_md: $(cat "$T/nginx-source.yaml")"
{
	cat <<CONF
id: web-01
data_dir: $T/spool
CONF
	cat "$T/nginx-source.yaml"
	cat <<CONF
  - {name: $stream, type: file, paths: [$T/log/app.json], format: json}
relays:
  servers: [$LF_IP:$port]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
CONF
} >"$T/agent.yaml"
"$LOGFERRY_AGENT" -c "$T/agent.yaml" --check >"$T/agent-check.log" 2>&1 ||
	fail "agent --check refuses docs/hive.md's source: $(cat "$T/agent-check.log")"
start agent "$LOGFERRY_AGENT" -c "$T/agent.yaml"

# wait_records TOPIC N OUT: OUT holds TOPIC's records once there are N, within 60 s.
wait_records() {
	local got=0
	for _ in $(seq 60); do
		kafka_dump "$1" "$3"
		got=$(grep -c . "$3")
		[ "$got" -ge "$2" ] && return 0
		sleep 1
	done
	fail "$1: $got records, expected $2: $(tail -2 "$T/agent.log")"
	return 1
}

wait_records "logs.$stream" 2 "$T/dump" || finish

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

# ---- test_hive_md_table_declares_every_member_and_field_of_its_nginx_records ----
wait_records "logs.$nginx" 3 "$T/dump-nginx" || finish
awk '/<!-- begin create table/ { on = 1 } /<!-- end create table/ { on = 0 }
	on && /^```sql$/ { code = 1; next } on && /^```$/ { code = 0; next } on && code' "$hive_md" \
	>"$T/table.sql"
if out=$(python3 - "$T/dump-nginx" "$T/table.sql" <<'PY'
import json, re, sys
ddl = open(sys.argv[2]).read()
head, _, rest = ddl.partition('fields STRUCT<')
body = rest.partition('\n  >')[0]
columns = dict(re.findall(r'^  (\w+)\s+(\w+)', head, re.M))
columns['fields'] = 'STRUCT'
members = dict(re.findall(r'^    (\w+):\s+([\w<>]+)', body, re.M))
reads = {'STRING': lambda v: isinstance(v, str),
         'INT': lambda v: isinstance(v, int) and not isinstance(v, bool),
         'BIGINT': lambda v: isinstance(v, int) and not isinstance(v, bool),
         'DOUBLE': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
         'BOOLEAN': lambda v: isinstance(v, bool),
         'ARRAY<DOUBLE>': lambda v: isinstance(v, list) and all(
             x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in v)}
bad = []
seen = set()
for line in open(sys.argv[1], encoding='utf-8'):
    rec = json.loads(line.rstrip('\n').partition('\t')[2])
    bad += [f'member {k} is no column' for k in rec if k not in columns]
    for k, v in rec['fields'].items():
        seen.add(k)
        t = members.get(k)
        if t is None:
            bad.append(f'field {k} is not in the STRUCT')
        elif not reads[t](v):
            bad.append(f'field {k} = {v!r} is not {t}')
print(f"{len(columns)} columns, {len(members)} STRUCT members; fields seen: {' '.join(sorted(seen))}"
      + ('; ' + '; '.join(bad) if bad else ''))
sys.exit(1 if bad or 'upstream_response_time' not in seen or 'parse_error' not in seen else 0)
PY
); then
	pass "docs/hive.md's table reads its NGINX records: $out"
else
	fail "docs/hive.md's table: $out"
fi
finish
