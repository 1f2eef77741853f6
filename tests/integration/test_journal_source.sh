#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Journal sources with real journal files, written without any journald by
# Debian's systemd-journal-remote from export-format input: every entry
# exactly once across kill -9 of the agent while files are appended,
# rotated (archived by rename, a new file beside) and deleted under a saved
# cursor (vacuum); matches; binary fields; the events through a relay to
# Kafka.
. "$(dirname "$0")/lib.sh"

need_journal

# journal_write FILE FIRST N [BOOT]: appends entries FIRST..FIRST+N-1 to the
# journal file FILE (created if missing): MESSAGE "entry <i>", unit
# app<i%2>.service, times growing with i, and every 100th entry a binary
# field BLOB.
journal_write() {
	python3 - "$2" "$3" "${4:-0123456789abcdef0123456789abcdef}" <<'PY' | "$JR" -o "$1" - 2>>"$T/journal-remote.log"
import struct, sys
first, n, boot = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
out = sys.stdout.buffer
for i in range(first, first + n):
    out.write(b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (1700000000000000 + i * 1000, 1000000 + i))
    out.write(b"_BOOT_ID=%s\n_HOSTNAME=jhost\n_SYSTEMD_UNIT=app%d.service\n_PID=%d\n" % (boot, i % 2, 100 + i))
    out.write(b"PRIORITY=6\nSYSLOG_IDENTIFIER=app\nMESSAGE=entry %d\n" % i)
    if i % 100 == 0:
        blob = b"\x00\x01\xffbinary"
        out.write(b"BLOB\n" + struct.pack("<Q", len(blob)) + blob + b"\n")
    out.write(b"\n")
PY
}

# journal_config NAME SOURCE-KEYS-YAML: an agent spooling one journal source into $T/NAME.data.
journal_config() {
	cat >"$T/$1.yaml" <<YAML
id: test-agent
data_dir: $T/$1.data
log_level: debug
spool: {commit_interval: 5ms}
sources:
  - name: $1
    type: journal
$2
YAML
	echo "$T/$1.yaml"
}

# check CONFIG FIRST LAST WHAT [STEP]: the spool holds "entry i" for i in
# FIRST..LAST (every STEP-th), each exactly once, and nothing else.
check() {
	"$LOGFERRY_AGENT" -c "$1" --spool-dump >"$T/dump.json" || { fail "$4: dump failed"; return; }
	if out=$(python3 - "$T/dump.json" "$2" "$3" "${5:-1}" <<'PY'
import collections, json, sys
first, last, step = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
seen = collections.Counter(json.loads(l)["message"] for l in open(sys.argv[1]))
want = collections.Counter("entry %d" % i for i in range(first, last + 1, step))
missing, extra = want - seen, seen - want
print("entries %d, missing %d (e.g. %s), extra or duplicate %d (e.g. %s)" % (sum(seen.values()),
      sum(missing.values()), sorted(missing)[:3], sum(extra.values()), sorted(extra)[:3]))
sys.exit(0 if not missing and not extra else 1)
PY
	); then pass "$4: $out"; else fail "$4: $out"; fi
}

# kill_at CONFIG NAME TOTAL: starts the agent, kills it -9 once 1 to 3000
# more entries are spooled (at most TOTAL).
kill_at() {
	local n
	start "$2" "$LOGFERRY_AGENT" -c "$1"
	n=$(spooled "$1")
	n=$(( ${n:-0} + RANDOM % 3000 + 1 ))
	[ "$n" -gt "$3" ] && n=$3
	wait_spooled "$1" "$n" 30 >/dev/null || fail "kill -9 loop: the agent stopped reading"
	kill -KILL "$LF_PID"
	wait "$LF_PID" 2>/dev/null
}

# --- kill -9 loops while entries are appended, files rotated and a cursor vacuumed
mkdir -p "$T/j"
journal_write "$T/j/system.journal" 1 20000
cfg=$(journal_config sys "    directory: $T/j")
kills=0
next=20001
for round in 1 2 3 4; do
	kill_at "$cfg" "agent-kill$round" $((next - 1))
	kills=$((kills + 1))
	# Appended to the same file while the agent is down.
	journal_write "$T/j/system.journal" $next 3000
	next=$((next + 3000))
done

# Rotation as journald does it: the file is archived by rename and a new one
# written beside it, while the agent reads.
start agent-rot "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-rot.log" "started as" || fail "rotation: agent did not start"
mv "$T/j/system.journal" "$T/j/system@0123-0001.journal"
journal_write "$T/j/system.journal" $next 5000
next=$((next + 5000))
wait_spooled "$cfg" $((next - 1)) 60 || fail "rotation: the new file was not read"
stop_agent "$pid"
check "$cfg" 1 $((next - 1)) "kill -9 $kills times with entries appended between, then a rotation: every entry exactly once"
grep -q "resuming after the saved journal cursor" "$T/agent-kill2.log" ||
	fail "a restart did not say it resumes after the saved cursor: $(grep source "$T/agent-kill2.log")"
"$LOGFERRY_AGENT" -c "$cfg" --spool-stats | grep -Eq '^  sys: s=[0-9a-f]+;i=' &&
	pass "--spool-stats shows the source's journal cursor" ||
	fail "--spool-stats has no cursor: $("$LOGFERRY_AGENT" -c "$cfg" --spool-stats | tail -3)"

# The file holding the saved cursor is deleted while the agent is stopped
# (vacuumed): the next start says so and goes on from the first entry left.
rm "$T/j/system.journal"
journal_write "$T/j/system-2.journal" $next 2000
start agent-vac "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
if wait_log "$T/agent-vac.log" "saved journal cursor is no longer in the journal" 30; then
	pass "a vacuumed cursor is logged: $(grep -o 'continuing from the first entry after it still there, of [^;]*' "$T/agent-vac.log")"
else
	fail "a vacuumed cursor was not logged: $(grep source "$T/agent-vac.log")"
fi
wait_spooled "$cfg" $((next + 2000 - 1)) 60 || fail "a vacuumed cursor: the remaining file was not read"
stop_agent "$pid"
# The deleted file's entries were spooled already: the spool holds them once, and the new ones.
check "$cfg" 1 $((next + 2000 - 1)) "a vacuumed cursor: every entry of the remaining files once, after what was spooled"

# --- no journal file readable yet: said at start (a missing group for the local journal), read once one appears
mkdir -p "$T/e"
cfg=$(journal_config empty "    directory: $T/e")
start agent-empty "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-empty.log" "started as" || fail "empty: agent did not start"
grep -q "source empty: no journal file readable in $T/e" "$T/agent-empty.log" &&
	pass "a journal without readable files is logged at start" ||
	fail "no word of a journal without files: $(grep 'source empty' "$T/agent-empty.log")"
journal_write "$T/e/system.journal" 1 100
wait_spooled "$cfg" 100 30 || fail "a journal file appearing later was not read"
stop_agent "$pid"
check "$cfg" 1 100 "a journal file appearing after the start is read"

# --- SIGHUP with the source changed: the new one starts after the old one's cursor is committed
mkdir -p "$T/r"
journal_write "$T/r/system.journal" 1 30000
cfg=$(journal_config rel "    directory: $T/r")
# Read entries wait up to 3 s for their commit (a full segment sooner):
# the SIGHUP comes while some are read and not committed.
sed -i 's/^spool: .*/spool: {commit_interval: 3s}/' "$cfg"
start agent-rel "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1 30 >/dev/null || fail "reload: the agent did not read"
sed -i 's/^    directory: .*/&\n    max_field_size: 32KiB/' "$cfg"
kill -HUP "$pid"
wait_log "$T/agent-rel.log" "SIGHUP: applied" 30 || fail "reload not applied: $(grep SIGHUP "$T/agent-rel.log")"
journal_write "$T/r/system.journal" 30001 1000
wait_spooled "$cfg" 31000 60 || fail "reload: not everything read"
stop_agent "$pid"
check "$cfg" 1 31000 "a journal source changed by SIGHUP goes on after the old one's last entry: every entry once"

# --- matches and binary fields, reading explicit files
cfg=$(journal_config match "    files: [$T/j/system-2.journal]
    matches: [_SYSTEMD_UNIT=app1.service, _SYSTEMD_UNIT=app3.service, PRIORITY=6]")
start agent-match "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1000 30 || fail "matches: entries not read"
stop_agent "$pid"
first=$next
[ $((first % 2)) = 1 ] || first=$((first + 1))
check "$cfg" $first $((next + 2000 - 1)) "matches: same field ORed, fields ANDed: only app1.service's entries" 2
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump | python3 -c '
import json, sys
evs = [json.loads(l) for l in sys.stdin]
e = evs[0]
f = e["fields"]
assert e["host"] == "jhost" and f["priority"] == 6 and f["_pid"] > 100 and f["syslog_identifier"] == "app" and f["_systemd_unit"] == "app1.service", e
assert not any(k.startswith("_boot") or k == "_hostname" for k in f), e
assert e["ts"].startswith("2023-11-1"), e
' && pass "an entry's fields: host from _HOSTNAME, priority and _pid integers, lower-case names" ||
	fail "an entry's fields are wrong: $("$LOGFERRY_AGENT" -c "$cfg" --spool-dump | head -1)"
"$LOGFERRY_AGENT" -c "$T/sys.yaml" --spool-dump | python3 -c '
import base64, json, sys
n = 0
for l in sys.stdin:
    e = json.loads(l)
    f = e.get("fields", {})
    if "blob" in f:
        assert f.get("blob_binary") is True, e
        assert base64.b64decode(f["blob"]) == b"\x00\x01\xffbinary", e
        n += 1
assert n > 100, n
print(n)
' >"$T/binary.out" && pass "binary fields are base64 with <name>_binary: true ($(cat "$T/binary.out") entries)" ||
	fail "binary fields not marked: $(cat "$T/binary.out")"

# --- a cursor after every entry of the journal (another journal, the clock back): start_at applies
rm -f "$T/j"/*.journal
journal_write "$T/j/other.journal" 1 500 fedcba9876543210fedcba9876543210
before=$(spooled "$T/sys.yaml")
start agent-future "$LOGFERRY_AGENT" -c "$T/sys.yaml"
pid=$LF_PID
wait_log "$T/agent-future.log" "saved journal cursor lies after every entry" 30 &&
	pass "a cursor after every entry is logged, and start_at applies" ||
	fail "a future cursor was not logged: $(grep source "$T/agent-future.log")"
wait_spooled "$T/sys.yaml" $((before + 500)) 30 || fail "after a future cursor, start_at beginning did not read the journal"
stop_agent "$pid"

# --- a full spool pauses the source; once a relay takes the events, every entry reaches Kafka once
if command -v kcat >/dev/null && command -v openssl >/dev/null; then
	make_certs
	start_kafka
	stream=jship_$(date +%s)$$
	kafka_topic "logs.$stream" 16
	port=$(free_port)
	amport=$(free_port)
	mkdir -p "$T/ship"
	# 25000 entries of 1000 random base64 bytes: more than 16 MiB once compressed.
	python3 - "$T/ship.lines" <<'PY' | "$JR" -o "$T/ship/system.journal" - 2>>"$T/journal-remote.log"
import base64, random, sys
rnd = random.Random(7)
out = sys.stdout.buffer
with open(sys.argv[1], "w") as lines:
    for i in range(1, 25001):
        msg = "entry %d %s" % (i, base64.b64encode(rnd.randbytes(750)).decode())
        lines.write(msg + "\n")
        out.write(b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\nMESSAGE=%s\n\n"
                  % (1700000000000000 + i * 1000, 1000000 + i, msg.encode()))
PY
	cat >"$T/ship.yaml" <<YAML
id: web-01
data_dir: $T/ship.data
spool: {max_size: 16MiB}
sources:
  - {name: $stream, type: journal, directory: $T/ship}
relays:
  servers: [$LF_IP:$port]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
metrics: {listen: $LF_IP:$amport}
YAML
	start agent-ship "$LOGFERRY_AGENT" -c "$T/ship.yaml"
	pid=$LF_PID
	if wait_metric "$amport" "logferry_journal_pauses_total{source=\"$stream\"}" -ge 1 60; then
		pass "a full spool pauses the journal source"
	else
		fail "the journal source did not pause on a full spool: $(get "$amport" /metrics | grep journal)"
	fi
	# The mock cluster keeps only a partition's last 5 MiB: 25 MiB spread
	# over 16 partitions record by record (no sticky batches), and followed
	# from before the relay produces.
	kafka_follow "logs.$stream" follow 16
	rcfg=$(relay_config relay "$port")
	sed -i 's/compression.type: lz4}/compression.type: lz4, sticky.partitioning.linger.ms: "0"}/' "$rcfg"
	start_relay relay "$rcfg"
	expect_followed "logs.$stream" "$T/follow.log" "$T/ship.lines" 120 \
		"after the pause, every entry reaches Kafka through the relay"
	check_delivered "$T/ship.lines" "$T/union" exact >/dev/null &&
		pass "and each exactly once" || fail "not exactly once: $LF_DELIVERED"
	stop_agent "$pid"
else
	echo "skip: the relay part needs kcat and openssl"
fi

finish
