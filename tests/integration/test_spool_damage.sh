#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A damaged spool (issue 14, item 3): a data file truncated to half of what
# its pages hold, random bytes over a tree page, a broken meta page. Each
# time --spool-stats and --spool-dump refuse it with a message and exit 1
# instead of crashing (SIGBUS), and the agent moves it aside, says so, counts
# it (the count survives restarts), and goes on with a new spool. Random
# bytes in one segment's compressed events cost that segment only: it is
# reported and deleted (at open, or refused by the relay when shipped) and
# every other line is delivered.
. "$(dirname "$0")/lib.sh"

need kcat curl
W="python3 $top_srcdir/tests/tools/logwriter.py"
$W write "$T/app.log" 1 40000 --pad 200 --random   # 6 MiB spooled
aport=$(free_port)
cfg=$T/agent.yaml
cat >"$cfg" <<CONF
id: web-01
data_dir: $T/data
spool: {max_size: 32MiB}
sources:
  - {name: app, type: file, paths: [$T/app.log], format: raw}
metrics: {listen: $LF_IP:$aport}
CONF
data=$T/data/spool/data.mdb

# damage KIND [FILE]: damages the stopped agent's data file.
damage() {
	python3 - "$1" "${2:-$data}" <<'PY'
import os, random, struct, sys
kind, path = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
with open(path, 'r+b') as f:
    m = [f.read(160), (f.seek(4096), f.read(160))[1]]
    newer = m[1] if struct.unpack_from('<Q', m[1], 144)[0] > struct.unpack_from('<Q', m[0], 144)[0] else m[0]
    last_pg, main_root = struct.unpack_from('<Q', newer, 136)[0], struct.unpack_from('<Q', newer, 128)[0]
    if kind == 'truncate':
        f.truncate((last_pg + 1) * 4096 // 2)      # half of what its pages hold
    elif kind == 'tree':
        f.seek(main_root * 4096)                   # the root page of LMDB's main table
        f.write(rnd.randbytes(4096))
    elif kind == 'meta':
        f.seek(4096)                               # meta page 1
        f.write(rnd.randbytes(4096))
    elif kind == 'payload':
        # The second page of a segment's overflow run (flags P_OVERFLOW, its own
        # page number first): zstd bytes only, no LMDB structure.
        for pg in range(last_pg // 2, last_pg):
            f.seek(pg * 4096)
            h = f.read(16)
            if struct.unpack_from('<Q', h, 0)[0] == pg and struct.unpack_from('<H', h, 10)[0] == 4 \
                    and struct.unpack_from('<I', h, 12)[0] >= 3:
                f.seek((pg + 1) * 4096)
                f.write(rnd.randbytes(4096))
                break
        else:
            sys.exit('no overflow page found')
PY
}

n=0
for kind in truncate tree meta; do
	n=$((n + 1))
	start agent-$kind "$LOGFERRY_AGENT" -c "$cfg"
	agent=$LF_PID
	# The previous round's spool already holds 40000 events: without this
	# wait, the TERM below can come before the agent handles signals (143).
	wait_log "$T/agent-$kind.log" "started as" || fail "$kind: the agent did not start"
	wait_spooled "$cfg" 40000 60 || fail "$kind: the agent did not spool the file"
	stop_agent "$agent"
	damage $kind
	for cmd in --spool-stats --spool-dump; do
		"$LOGFERRY_AGENT" -c "$cfg" $cmd >"$T/out" 2>"$T/err"
		rc=$?
		[ "$rc" = 1 ] && grep -q "is damaged" "$T/err" &&
			pass "$kind: $cmd refuses it: $(head -1 "$T/err" | cut -c1-200)" ||
			fail "$kind: $cmd exited $rc: $(head -3 "$T/err")"
	done
	start agent-$kind-after "$LOGFERRY_AGENT" -c "$cfg"
	agent=$LF_PID
	wait_log "$T/agent-$kind-after.log" "is damaged .*moved aside to $T/data/spool.broken-" 30 &&
		pass "$kind: $(grep -o "is damaged ([^)]*)" "$T/agent-$kind-after.log" | head -1)" ||
		fail "$kind: not moved aside: $(tail -3 "$T/agent-$kind-after.log")"
	wait_metric "$aport" logferry_spool_moved_aside_total -eq $n 10 ||
		fail "$kind: logferry_spool_moved_aside_total is not $n"
	# A new spool: the file is read again from its start.
	wait_spooled "$cfg" 40000 60 && pass "$kind: the agent goes on with a new spool" ||
		fail "$kind: the agent did not go on"
	[ "$(ls -d "$T"/data/spool.broken-* | wc -l)" = $n ] || fail "$kind: $(ls "$T/data")"
	kill -0 "$agent" 2>/dev/null || fail "$kind: the agent died"
	stop_agent "$agent"
done
"$LOGFERRY_AGENT" -c "$cfg" --spool-stats | grep -q "^moved aside: 3$" &&
	pass "--spool-stats counts 3 spools moved aside" ||
	fail "--spool-stats: $("$LOGFERRY_AGENT" -c "$cfg" --spool-stats | grep moved)"

# ---- random bytes in a segment's compressed events: only that segment is lost ----
make_certs
start_kafka
stream=payload_$(date +%s)$$
kafka_topic "logs.$stream" 16
port=$(free_port)
pcfg=$(agent_config agent-payload web-01 web-01 "$stream" "$T/app.log" "$port")
sed -i 's/format: nginx_combined/format: raw/' "$pcfg"
printf 'metrics: {listen: %s:%s}\n' "$LF_IP" "$aport" >>"$pcfg"
start agent-payload "$LOGFERRY_AGENT" -c "$pcfg"
agent=$LF_PID
wait_spooled "$pcfg" 40000 60 || fail "payload: the agent did not spool the file"
stop_agent "$agent"
damage payload "$T/agent-payload/spool/data.mdb" || fail "payload: could not damage a segment"
"$LOGFERRY_AGENT" -c "$pcfg" --spool-dump >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 1 ] && grep -q "is damaged: it does not decompress; skipped" "$T/err" &&
	[ "$(wc -l <"$T/out")" -gt 30000 ] && [ "$(wc -l <"$T/out")" -lt 40000 ] &&
	pass "payload: --spool-dump skips the damaged segment, shows $(wc -l <"$T/out") events, exits 1" ||
	fail "payload: --spool-dump exited $rc with $(wc -l <"$T/out") events: $(head -2 "$T/err")"
kafka_follow "logs.$stream" kcat 16
start agent-payload-after "$LOGFERRY_AGENT" -c "$pcfg"
agent=$LF_PID
# One partition per record, not sticky runs: the mock keeps ~5 MiB of each.
sed -i 's/properties: {/properties: {sticky.partitioning.linger.ms: "0", /' "$(relay_config relay "$port")"
start_relay relay "$T/relay.yaml"
wait_metric "$aport" logferry_spool_events -eq 0 60 || fail "payload: the spool did not empty"
# Every event acknowledged is in Kafka: all but those dropped (one refused segment).
want=$((40000 - $(metric "$aport" logferry_shipper_events_dropped_total)))
for ((i = 0; i < 60; i += 2)); do
	kafka_dump "logs.$stream" "$T/dump"   # with the follower: see expect_followed
	sort -u "$T/kcat.log" "$T/dump" >"$T/union"
	[ "$(wc -l <"$T/union")" -ge "$want" ] && break
	sleep 2
done
out=$(check_delivered "$T/app.log" "$T/union")
missing=$(echo "$out" | sed -n 's/.*missing \([0-9]*\),.*/\1/p')
lost=$(( $(metric "$aport" logferry_spool_segments_damaged_total) + $(metric "$aport" logferry_shipper_rejected_segments_total) ))
# One segment holds at most relays.batch.max_events (4096) events.
[ "${missing:-0}" -gt 0 ] && [ "$missing" -le 4096 ] && [ "$lost" = 1 ] &&
	grep -Eq "segment [0-9]+ is damaged|rejected segment" "$T/agent-payload-after.log" &&
	pass "payload: one damaged segment reported and deleted, the rest delivered ($out): $(grep -Eo "segment [0-9]+ is damaged.*|rejected segment.*" "$T/agent-payload-after.log" | head -1 | cut -c1-160)" ||
	fail "payload: $out; segments lost: $lost; $(grep -E "damaged|rejected" "$T/agent-payload-after.log" | tail -2)"
stop_agent "$agent"
finish
