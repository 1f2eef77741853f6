#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The redact processor with real processes (issue 18 item 1): JSON lines
# with an email, an IP address and a user name go file -> logferry-agent
# (redact at the door into the spool) -> relay -> Kafka. In Kafka the
# email is the HMAC-SHA256 that openssl computes with the key file, the
# address is masked to its /24, the user is gone, and the message holds
# neither the email nor the address. The spool itself, read back from the
# disk (the LMDB files' zstd frames, decompressed), never held the clear
# email. A new key file applies on SIGHUP.
. "$(dirname "$0")/lib.sh"

need kcat openssl zstd
make_certs
start_kafka
run=$(date +%s)$$
stream=mobile_$run
kafka_topic "logs.$stream" 1

# The key as an operator makes it: 64 hex characters and a newline, which is not part of it.
openssl rand -hex 32 >"$T/hmac.key"
chmod 0640 "$T/hmac.key"
# hexkey FILE: the key's bytes in hex, as openssl's -macopt hexkey: takes them.
hexkey() {
	head -c 64 "$1" | od -An -v -tx1 | tr -d ' \n'
}
# hmac FILE VALUE: HMAC-SHA256 of VALUE under FILE's key, in lower-case hex.
hmac() {
	printf '%s' "$2" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(hexkey "$1")" | sed 's/^.*= *//'
}

email_re='[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+'
ip_re='[0-9]{1,3}([.][0-9]{1,3}){3}'
port=$(free_port)
acfg=$(agent_config agent web-01 web-01 "$stream" "$T/in.log" "$port")
sed -i "s|format: nginx_combined|format: json|" "$acfg"
cat >>"$acfg" <<CONF
processors:
  - {type: redact, field: email, method: hash, key_file: $T/hmac.key}
  - {type: redact, fields: [ip, client_ip], method: mask_ip}
  - {type: redact, field: user, method: drop}
  - {type: redact, method: regex, pattern: '$email_re'}
  - {type: redact, method: regex, pattern: '$ip_re', replacement: '[ip]'}
  - {type: redact, field: msg, method: regex, pattern: '$email_re'}
CONF
"$LOGFERRY_AGENT" -c "$acfg" --check >"$T/check.out" 2>&1 &&
	pass "--check takes the redact processors" || fail "--check: $(cat "$T/check.out")"

# line N EMAIL IP USER: one JSON line of event N.
line() {
	printf '{"event_type":"login","n":%d,"email":"%s","ip":"%s","user":"%s","session":"sess-%s-%d","msg":"login of %s from %s"}\n' \
	    "$1" "$2" "$3" "$4" "$run" "$1" "$2" "$3"
}
for i in $(seq 1 200); do
	line "$i" "user$i@example.com" "192.0.2.$((i % 250 + 1))" "name$i"
done >"$T/in.log"
line 201 "not-an-ip@example.com" "not an address" "x" >>"$T/in.log"

# ---- first spooled, with no relay to ship to: the disk is read back ----
mport=$(free_port)
cp "$acfg" "$T/agent-metrics.yaml"
echo "metrics: {listen: $LF_IP:$mport}" >>"$T/agent-metrics.yaml"
start agent "$LOGFERRY_AGENT" -c "$T/agent-metrics.yaml"
agent=$LF_PID
wait_spooled "$acfg" 201 || fail "the agent did not spool the 201 lines: $(tail -3 "$T/agent.log")"
# Six values in each of events 1-200; event 201's address is none: removed and counted.
labels="{source=\"$stream\",processor=\"redact\"}"
wait_metric "$mport" "logferry_processor_redacted_total$labels" -eq 1204 &&
wait_metric "$mport" "logferry_processor_redact_failures_total$labels" -eq 1 &&
	pass "the redact counters: 1204 values redacted, 1 that could not be" ||
	fail "redact counters: $(get "$mport" /metrics | grep redact)"
stop_agent "$agent"

"$LOGFERRY_AGENT" -c "$acfg" --spool-dump >"$T/spool.json" 2>"$T/spool.err" ||
	fail "--spool-dump: $(cat "$T/spool.err")"
[ "$(grep -c "sess-$run-" "$T/spool.json")" = 201 ] || fail "--spool-dump shows $(grep -c "sess-$run-" "$T/spool.json") events, not 201"
grep -Eq "$email_re" "$T/spool.json" && fail "an email is in the spool: $(grep -Eo "$email_re" "$T/spool.json" | head -1)" ||
	pass "no email in the spooled events (--spool-dump)"

# The spool's raw bytes: every zstd frame in the LMDB files, decompressed.
# The session token, never redacted, shows that what is read is the events.
: >"$T/frames"
for f in "$T/agent/spool"/*; do
	for off in $(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$f" | cut -d: -f1); do
		# A segment's frame is at most a few MiB; zstd stops at the bytes after it.
		tail -c +$((off + 1)) "$f" | head -c $((8 << 20)) | zstd -dcq 2>/dev/null >>"$T/frames"
	done
done
grep -aq "sess-$run-200" "$T/frames" ||
	fail "the spool's zstd frames, decompressed, do not hold the events (the check below would prove nothing)"
if grep -aq "user1@example.com\|@example.com" "$T/frames" "$T/agent/spool"/*; then
	fail "the clear email reached the disk in the spool"
else
	pass "the clear email never reached the spool's files (raw and decompressed)"
fi

# wait_records N: until Kafka holds N events of this run, dumped into $T/dump.
wait_records() {
	local got=0
	for _ in $(seq 240); do
		kafka_dump "logs.$stream" "$T/dump"
		got=$(grep -c "sess-$run-" "$T/dump")
		[ "$got" -ge "$1" ] && return 0
		sleep 0.25
	done
	fail "Kafka holds $got of $1 events: $(tail -3 "$T/agent2.log")"
	return 1
}

# ---- then shipped: what Kafka holds ----
rcfg=$(relay_config relay "$port")
start_relay relay "$rcfg"
relay=$LF_PID
start agent2 "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
wait_records 201

check_records() {
	python3 - "$T/dump" "$1" "$2" "$3" <<'PY'
import json, re, sys
dump, first, last, hashes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
want = dict(l.split() for l in open(hashes))
seen = {}
for line in open(dump, encoding="utf-8"):
    rec = json.loads(line.split("\t", 1)[1])
    seen[rec["fields"]["n"]] = rec
bad = []
for n in range(first, last + 1):
    r = seen.get(n)
    if r is None:
        bad.append(f"event {n} missing"); continue
    f, m = r["fields"], r["message"]
    if f.get("email") != want[str(n)]:
        bad.append(f"event {n}: email {f.get('email')!r}, not its HMAC {want[str(n)]}")
    if "user" in f:
        bad.append(f"event {n}: user still there")
    if n != 201 and f.get("ip") != "192.0.2.0":
        bad.append(f"event {n}: ip {f.get('ip')!r}")
    if n == 201 and "ip" in f:
        bad.append(f"event {n}: a value that is no address kept: {f['ip']!r}")
    if "@" in m or re.search(r"192\.0\.2\.", m):
        bad.append(f"event {n}: the message still shows {m!r}")
    if "[REDACTED]" not in m or ("[ip]" not in m and n != 201):
        bad.append(f"event {n}: no replacement in {m!r}")
    if "@" in f.get("msg", "@"):
        bad.append(f"event {n}: field msg still shows {f.get('msg')!r}")
print("; ".join(bad[:5]) or "ok")
sys.exit(1 if bad else 0)
PY
}
for i in $(seq 1 200); do echo "$i $(hmac "$T/hmac.key" "user$i@example.com")"; done >"$T/hashes"
echo "201 $(hmac "$T/hmac.key" "not-an-ip@example.com")" >>"$T/hashes"
out=$(check_records 1 201 "$T/hashes") &&
	pass "in Kafka: email = openssl's HMAC-SHA256 with the key, ip masked to /24 (removed when no address), user dropped, message without email or address" ||
	fail "records: $out"

# ---- a new key on SIGHUP ----
mv "$T/hmac.key" "$T/hmac.old"
openssl rand -hex 32 >"$T/hmac.key"
chmod 0640 "$T/hmac.key"
kill -HUP "$agent"
wait_log "$T/agent2.log" 'SIGHUP: (applied|.*running configuration stays)' ||
	fail "the reload did not finish: $(tail -3 "$T/agent2.log")"
for i in $(seq 202 210); do line "$i" "user$i@example.com" "192.0.2.9" "n"; done >>"$T/in.log"
wait_records 210
for i in $(seq 202 210); do echo "$i $(hmac "$T/hmac.key" "user$i@example.com")"; done >"$T/hashes2"
out=$(check_records 202 210 "$T/hashes2") &&
	pass "after SIGHUP the new key file's key hashes" || fail "after SIGHUP: $out"

# ---- a short key file is refused at its line, and the running configuration stays ----
printf 'Sh0rtK3y\n' >"$T/hmac.key"
"$LOGFERRY_AGENT" -c "$acfg" --check >"$T/check.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "$acfg:[0-9]*: processors\[0\]: key_file $T/hmac.key holds 8 bytes" "$T/check.out" &&
	pass "--check refuses a short key file at its processor's line" ||
	fail "--check exited $rc: $(cat "$T/check.out")"
grep -q "Sh0rtK3y" "$T/check.out" && fail "--check printed the key" || true

stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 60 || fail "relay did not stop"
finish
