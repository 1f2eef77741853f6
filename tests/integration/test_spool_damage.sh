#!/bin/bash
# A damaged spool (issue 14, item 3): a data file truncated to half of what
# its pages hold, random bytes over a tree page, a broken meta page. Each
# time --spool-stats and --spool-dump refuse it with a message and exit 1
# instead of crashing (SIGBUS), and the agent moves it aside, says so, counts
# it (the count survives restarts), and goes on with a new spool.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
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

# damage KIND: damages the stopped agent's data file.
damage() {
	python3 - "$1" "$data" <<'PY'
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
PY
}

n=0
for kind in truncate tree meta; do
	n=$((n + 1))
	start agent-$kind "$LOGFERRY_AGENT" -c "$cfg"
	agent=$LF_PID
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
finish
