#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The documents under docs/ tell the truth, checked against the daemons:
# - the certificate commands of docs/deployment.md, run as they are written,
#   make a CA, a relay and an agent certificate that connect an agent to a
#   relay (the relay's SAN, the agent's CN = id);
# - every JSON member, field and header that the relay produces for NGINX,
#   syslog and JSON lines is named in docs/record-format.md;
# - every reference to a design document points inside the repository, and
#   every section it cites exists there.
. "$(dirname "$0")/lib.sh"

need kcat openssl python3
guide=$top_srcdir/docs/deployment.md
format=$top_srcdir/docs/record-format.md

# ---- test_deployment_guide_certificate_commands_work_as_written ----
# The ```sh blocks between the guide's certificate markers, unchanged.
awk '/<!-- begin certificate commands/ { on = 1 } /<!-- end certificate commands/ { on = 0 }
	on && /^```sh$/ { code = 1; next } on && /^```$/ { code = 0; next } on && code' \
	"$guide" >"$T/guide-certs.sh"
[ -s "$T/guide-certs.sh" ] || fail "no certificate commands between the markers of $guide"
mkdir "$T/admin"
if (cd "$T/admin" && bash -eu "$T/guide-certs.sh") >"$T/guide-certs.log" 2>&1; then
	pass "the guide's certificate commands run: $(grep -c . "$T/guide-certs.sh") lines"
else
	fail "the guide's certificate commands failed: $(tail -3 "$T/guide-certs.log")"
fi
pki=$T/admin/logferry-pki
grep -q 'relay1.crt: OK' "$T/guide-certs.log" && grep -q 'web-01.crt: OK' "$T/guide-certs.log" &&
	pass "openssl verify accepts the relay's and the agent's certificates" ||
	fail "openssl verify: $(grep -i 'error\|ok' "$T/guide-certs.log" | head -3)"
for key in ca relay1 web-01; do
	mode=$(stat -c %a "$pki/$key.key" 2>/dev/null)
	[ "$mode" = 600 ] || fail "$key.key is mode ${mode:-missing}, not 600: the guide's umask is lost"
done

# ---- test_guide_certificates_connect_an_agent_to_its_relay ----
start_kafka
run=$(date +%s)$$
for s in nginx syslog json split; do kafka_topic "logs.docs_${s}_$run" 1; done
port=$(free_port)
cat >"$T/relay.yaml" <<CONF
id: relay1
listen: $LF_IP:$port
tls: {ca_file: $pki/ca.crt, cert_file: $pki/relay1.crt, key_file: $pki/relay1.key, allowed_agents: ["web-*"]}
kafka: {brokers: "$KAFKA_BOOT", topic: "logs.\${stream}", key: "\${host}"}
CONF
"$LOGFERRY_RELAY" -c "$T/relay.yaml" --check >"$T/relay-check.log" 2>&1 &&
	pass "logferry-relay --check loads the guide's relay certificate" ||
	fail "relay --check: $(cat "$T/relay-check.log")"
start_relay relay "$T/relay.yaml"

mkdir -p "$T/log"
cat >"$T/log/access.log" <<'LINES'
203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] "GET /index.html?q=1 HTTP/1.1" 200 612 "-" "curl/8.0"
198.51.100.7 - alice [22/Nov/2026:11:00:00 +0100] "POST /api/login HTTP/2.0" 401 31 "https://example.net/" "Mozilla/5.0"
this is not nginx
LINES
cat >"$T/log/syslog" <<'LINES'
Dec  6 23:59:01 web-01 CRON[1234]: (root) CMD (run-parts /etc/cron.hourly)
<156>1 2026-12-07T00:10:09.984704+00:00 web-01 myapp 42 ID47 [origin@32473 ip="10.0.0.1"] hello 5424
<13>1 yesterday web-01 app - - - a header that cannot be read
LINES
cat >"$T/log/app.json" <<'LINES'
{"ts":"2026-12-06T10:00:00.5Z","level":"info","user":{"id":42},"ok":true,"ms":1.5,"x":null}
LINES
head -c 600 /dev/zero | tr '\0' 'x' >"$T/log/long.log"
echo >>"$T/log/long.log"
# The relay is reached by an address, its certificate checked for the
# guide's DNS name (tls.server_name).
cat >"$T/agent.yaml" <<CONF
id: web-01
data_dir: $T/spool
sources:
  - {name: n, stream: docs_nginx_$run, type: file, paths: [$T/log/access.log], format: nginx_combined}
  - {name: s, stream: docs_syslog_$run, type: file, paths: [$T/log/syslog], format: syslog}
  - {name: j, stream: docs_json_$run, type: file, paths: [$T/log/app.json], format: json}
  - {name: l, stream: docs_split_$run, type: file, paths: [$T/log/long.log], format: raw, max_line: 256}
relays:
  servers: [$LF_IP:$port]
  tls: {ca_file: $pki/ca.crt, cert_file: $pki/web-01.crt, key_file: $pki/web-01.key,
        server_name: relay1.example.net}
CONF
"$LOGFERRY_AGENT" -c "$T/agent.yaml" --check >"$T/agent-check.log" 2>&1 &&
	pass "logferry-agent --check loads the guide's agent certificate" ||
	fail "agent --check: $(cat "$T/agent-check.log")"
start agent "$LOGFERRY_AGENT" -c "$T/agent.yaml"
wait_log "$T/relay.log" "agent web-01 connected from" 60 &&
	pass "the relay accepts the agent with the guide's certificates" || {
	fail "no connection: relay: $(tail -2 "$T/relay.log"); agent: $(tail -2 "$T/agent.log")"
	finish
}

# ---- test_record_format_names_every_member_field_and_header_produced ----
want=(3 3 1 3)
i=0
: >"$T/records"
for s in nginx syslog json split; do
	got=0
	for _ in $(seq 60); do
		kafka_dump "logs.docs_${s}_$run" "$T/dump-$s"
		got=$(grep -c . "$T/dump-$s")
		[ "$got" -ge "${want[$i]}" ] && break
		sleep 1
	done
	[ "$got" -ge "${want[$i]}" ] || fail "logs.docs_${s}_$run: $got records, expected ${want[$i]}"
	cat "$T/dump-$s" >>"$T/records"
	i=$((i + 1))
done
# Names in the records that the document does not name in backquotes.
if out=$(python3 - "$T/records" "$format" <<'PY'
import json, re, sys
doc = open(sys.argv[2]).read()
named = set(re.findall(r'`([^`\s]+)`', doc))
names = set()
for line in open(sys.argv[1]):
    hdr, _, val = line.rstrip('\n').partition('\t')
    names.update(kv.split('=', 1)[0] for kv in hdr.split(',') if '=' in kv)
    rec = json.loads(val)
    names.update(rec)
    # A JSON line's fields are named by the line, not by logferry.
    if not rec['stream'].startswith('docs_json_'):
        names.update('sd.ID.PARAM' if k.startswith('sd.') else k for k in rec['fields'])
missing = sorted(n for n in names if n not in named)
print(f"{len(names)} names: {' '.join(sorted(names))}")
if missing:
    print("not in the document: " + ' '.join(missing))
    sys.exit(1)
PY
); then
	pass "docs/record-format.md names all of them: $out"
else
	fail "$out"
fi

# ---- test_every_reference_to_a_document_points_inside_the_repository ----
# The design documents once lived outside the repository, beside it; a
# reference to them (or to that place) would send a reader nowhere.
# curl's CODE_STYLE.md (docs/style.md) is another project's file.
cd "$top_srcdir" || fail "cannot enter $top_srcdir"
dirs=$(ls -d agent common proto relay tests bench packaging docs debian 2>/dev/null)
outside=$(grep -rnP '(?<![\w/.])(DESIGN|PERF|STYLE|LESSONS)\.md|shared/|\.\./shared' \
	$dirs README.md Makefile.am configure.ac bootstrap.sh 2>/dev/null | grep -v '^tests/integration/test_docs\.sh:')
[ -z "$outside" ] && pass "no reference points outside the repository" ||
	fail "references outside the repository: $(echo "$outside" | head -5) ($(echo "$outside" | wc -l) in all)"
# Every docs/NAME.md "Section" cited names a heading of that document, and
# every docs/style.md N a rule of its numbered list.
if out=$(grep -rhoP 'docs/[a-z-]+\.md "[^"]+"|docs/style\.md [0-9]+' $dirs README.md Makefile.am 2>/dev/null |
	sort -u | python3 -c '
import re, sys
bad = []
n = 0
for cite in sys.stdin.read().split("\n"):
    if not cite:
        continue
    n += 1
    m = re.match(r"(docs/[a-z-]+\.md) (?:\"(.*)\"|([0-9]+))$", cite)
    try:
        text = open(m.group(1)).read()
    except OSError:
        bad.append(cite + " (no such document)")
        continue
    if m.group(2) is not None:
        ok = re.search(r"^#+ " + re.escape(m.group(2)) + r"$", text, re.M)
    else:
        ok = re.search(r"^" + m.group(3) + r"\. \*\*", text, re.M)
    if not ok:
        bad.append(cite)
print(f"{n} citations" + (": not found: " + "; ".join(bad) if bad else ""))
sys.exit(1 if bad else 0)
'); then
	pass "every cited section exists: $out"
else
	fail "$out"
fi
finish
