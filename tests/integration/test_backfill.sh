#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Compressed archives in a file source's glob (issue 17 item 3): a logrotate
# directory (access.log, access.log.1, access.log.2.gz .. access.log.5.gz,
# one of them zstd under a .gz-less name) read with every line exactly once
# across a kill -9 in the middle of an archive; an archive made by
# logrotate's compress while the agent follows is not read again; and
# --backfill reads a directory once and exits 0 when the spool has it all.
. "$(dirname "$0")/lib.sh"

W="python3 $top_srcdir/tests/tools/logwriter.py"

# bf_config NAME GLOB MAX_SIZE [EXTRA-SOURCE-YAML]: an agent spooling GLOB into $T/NAME.data.
bf_config() {
	local name=$1 glob=$2 max=$3 extra=${4:-}
	cat >"$T/$name.yaml" <<YAML
id: test-agent
data_dir: $T/$name.data
log_level: info
spool: {commit_interval: 5ms, max_size: $max}
metrics: {listen: "$LF_IP:$(free_port)"}
sources:
  - name: $name
    type: file
    paths: ["$glob"]
    exclude: ["*.bak.gz"]
    format: raw
    scan_interval: 100ms
    stat_interval: 100ms
    flush_timeout: 300ms
$extra
YAML
	echo "$T/$name.yaml"
}

mport() {
	sed -n 's/^metrics: {listen: "[^:]*:\([0-9]*\)"}$/\1/p' "$1"
}

# check CONFIG FIRST COUNT WHAT: the spool holds lines FIRST.. exactly once, nothing else.
check() {
	"$LOGFERRY_AGENT" -c "$1" --spool-dump >"$T/dump.json" || { fail "$4: dump failed"; return; }
	if $W check "$T/dump.json" "$2" "$3"; then pass "$4"; else fail "$4"; fi
}

# logrotate_dir DIR: access.log.5.gz (oldest, lines 1..) .. access.log (newest);
# 280000 lines in all, with incompressible padding so that a 16 MiB spool
# fills in the middle of the big access.log.5.gz. Also a foreign
# access.log.bak.gz that the exclude glob keeps out.
logrotate_dir() {
	local d=$1
	mkdir -p "$d"
	$W write "$d/access.log.5" 1 200000 --pad 100 --random
	gzip "$d/access.log.5"
	$W write "$d/access.log.4" 200001 20000 --pad 100 --random
	zstd -q --rm "$d/access.log.4"
	mv "$d/access.log.4.zst" "$d/access.log.4"     # magic bytes tell, not the name
	$W write "$d/part" 220001 10000 --pad 100 --random
	$W write "$d/part2" 230001 10000 --pad 100 --random
	gzip -c "$d/part" >"$d/access.log.3.gz"           # two gzip members, as `cat a.gz b.gz`
	gzip -c "$d/part2" >>"$d/access.log.3.gz"
	rm "$d/part" "$d/part2"
	$W write "$d/access.log.2" 240001 20000 --pad 100 --random
	gzip "$d/access.log.2"
	$W write "$d/access.log.1" 260001 10000 --pad 100 --random
	$W write "$d/access.log" 270001 10000 --pad 100 --random
	$W write "$d/foreign" 900000001 10
	gzip -c "$d/foreign" >"$d/access.log.bak.gz"
	rm "$d/foreign"
}

# --- kill -9 in the middle of an archive, then a restart: every line once
logrotate_dir "$T/logs"
cfg=$(bf_config kill "$T/logs/access.log*" 16MiB)
port=$(mport "$cfg")
start agent-kill "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
# No relay: the spool fills and the agent stops reading, in the middle of an archive.
wait_metric "$port" logferry_spool_full = 1 90 || fail "kill: the spool did not fill"
"$LOGFERRY_AGENT" -c "$cfg" --spool-stats >"$T/stats-kill" 2>&1
if grep -Eq '\.gz: gzip archive being read, offset [1-9]' "$T/stats-kill"; then
	pass "kill: an archive is half read when the agent is killed"
else
	fail "kill: no archive is half read: $(grep offset "$T/stats-kill")"
fi
kill -KILL "$pid"
wait_exit "$pid" 30 || fail "kill: the agent did not die"
sed -i 's/max_size: 16MiB/max_size: 1GiB/' "$cfg"
start agent-kill2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-kill2.log" "decompressing it from its start up to there first" 60 ||
	fail "restart: no archive resumed from its stored position"
wait_spooled "$cfg" 280000 120 || fail "restart: not everything arrived"
wait_metric "$port" 'logferry_file_files_reading{source="kill"}' = 0 60 || fail "restart: files still being read"
wait_metric "$port" 'logferry_file_archives_total{source="kill"}' -ge 1 10 || fail "restart: no archive counted"
stop_agent "$pid"
check "$cfg" 1 280000 "logrotate directory with gzip, concatenated gzip and zstd archives, kill -9 inside an archive: every line once, the excluded archive never"
grep -q "access.log.bak.gz" "$T/agent-kill.log" "$T/agent-kill2.log" &&
	fail "the excluded archive was looked at"

# --- a restart after everything was read reads nothing again (archives stored as done)
sed -i 's/^log_level: info$/log_level: debug/' "$cfg"
start agent-kill3 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-kill3.log" "started as" 60 || fail "second restart: agent did not start"
wait_log "$T/agent-kill3.log" "access.log.5.gz \(gzip\): it was read to its end before" 60 ||
	fail "second restart: the big archive is not known as done"
wait_metric "$port" 'logferry_file_files_reading{source="kill"}' = 0 60 || fail "second restart: files being read"
stop_agent "$pid"
check "$cfg" 1 280000 "a restart after the archives were read decompresses none of them again"

# --- logrotate's delaycompress while the agent follows: access.log.1 is
# compressed after the agent read it; the new archive is not read again
mkdir -p "$T/rot"
cfg=$(bf_config rot "$T/rot/access.log*" 1GiB)
$W write "$T/rot/access.log" 1 5000
start agent-rot "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 5000 60 || fail "rotation: first lines not read"
mv "$T/rot/access.log" "$T/rot/access.log.1"
$W write "$T/rot/access.log" 5001 5000
wait_spooled "$cfg" 10000 60 || fail "rotation: the new file was not read"
gzip "$T/rot/access.log.1"
mv "$T/rot/access.log.1.gz" "$T/rot/access.log.2.gz"
wait_log "$T/agent-rot.log" "not reading .*access.log.[12].gz \(gzip\): it appeared while the source was followed" 60 ||
	fail "rotation: the compressed generation was not recognised"
$W write "$T/rot/access.log" 10001 1000
wait_spooled "$cfg" 11000 60 || fail "rotation: lines after the compression missing"
stop_agent "$pid"
check "$cfg" 1 11000 "logrotate delaycompress while following: the compressed generation is not read twice"

# --- --backfill: reads the directory once (start_at: end does not apply),
# exits 0 when the spool holds it all; a second run adds nothing
mkdir -p "$T/bf"
$W write "$T/bf/access.log.2" 1 30000
$W write "$T/bf/access.log.1" 30001 1000
$W write "$T/bf/access.log" 31001 1000
printf 'last line without newline' >>"$T/bf/access.log"
cat "$T/bf/access.log.2" "$T/bf/access.log.1" "$T/bf/access.log" >"$T/bf-lines"
echo >>"$T/bf-lines"
gzip "$T/bf/access.log.2"
zstd -q --rm "$T/bf/access.log.1"
cfg=$(bf_config bf "$T/bf/access.log*" 1GiB "    start_at: end")
start backfill "$LOGFERRY_AGENT" -c "$cfg" --backfill
wait_exit "$LF_PID" 60 || fail "backfill: did not exit"
if [ "${LF_RC:-}" = 0 ] && grep -q "backfill: 3 file(s) read" "$T/backfill.log"; then
	pass "--backfill exits 0 once its files are in the spool: $(grep 'backfill:' "$T/backfill.log" | tail -1)"
else
	fail "--backfill exited ${LF_RC:-?}: $(tail -3 "$T/backfill.log")"
fi
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump >"$T/dump.json"
grep -c '"line 000' "$T/dump.json" | grep -qx 32000 && grep -q 'last line without newline' "$T/dump.json" &&
	pass "--backfill spooled every line of the archives and the plain file, its last partial line too" ||
	fail "--backfill: $(grep -c '"line 000' "$T/dump.json") lines spooled"
start backfill2 "$LOGFERRY_AGENT" -c "$cfg" --backfill
wait_exit "$LF_PID" 60 || fail "backfill again: did not exit"
[ "${LF_RC:-}" = 0 ] || fail "backfill again exited ${LF_RC:-?}"
n=$("$LOGFERRY_AGENT" -c "$cfg" --spool-dump | grep -c '"line 000')
[ "$n" = 32000 ] && pass "--backfill again reads nothing twice" || fail "--backfill again: $n lines"

# --- then the agent ships what --backfill spooled: every line once in Kafka
make_certs
start_kafka
kafka_topic logs.bf 16
rport=$(free_port)
start_relay relay "$(relay_config relay "$rport")"
sed -i 's/^id: test-agent$/id: web-01/' "$cfg"
cat >>"$cfg" <<YAML
relays:
  servers: ["$LF_IP:$rport"]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
YAML
[ -f "$T/certs/web-01-chain.crt" ] || sed -i "s|web-01-chain.crt|web-01.crt|" "$cfg"
start agent-ship "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_delivered logs.bf "$T/bf-lines" 120 || true
if check_delivered "$T/bf-lines" "$T/dump" exact >"$T/delivered"; then
	pass "the agent shipped the backfill: every line exactly once in Kafka: $(cat "$T/delivered")"
else
	fail "backfill in Kafka: $(cat "$T/delivered")"
fi
stop_agent "$pid"

finish
