#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# File sources into the spool, with real files rotated, truncated and
# recreated the way servers and logrotate do it, and an agent killed -9 at
# random moments. The spool dump must hold every line exactly once.
. "$(dirname "$0")/lib.sh"

W="python3 $top_srcdir/tests/tools/logwriter.py"

# agent_config NAME GLOB [EXTRA-SOURCE-YAML]: an agent spooling GLOB into $T/NAME.data.
agent_config() {
	local name=$1 glob=$2 extra=${3:-}
	cat >"$T/$name.yaml" <<YAML
id: test-agent
data_dir: $T/$name.data
log_level: debug
spool: {commit_interval: 5ms}
sources:
  - name: $name
    type: file
    paths: ["$glob"]
    format: raw
    scan_interval: 100ms
    stat_interval: 100ms
    flush_timeout: 300ms
$extra
YAML
	echo "$T/$name.yaml"
}

# check CONFIG FIRST COUNT WHAT
check() {
	"$LOGFERRY_AGENT" -c "$1" --spool-dump >"$T/dump.json" || { fail "$4: dump failed"; return; }
	if $W check "$T/dump.json" "$2" "$3"; then pass "$4"; else fail "$4"; fi
}

# --- rename rotation under a busy writer, old file still written after the rename
mkdir -p "$T/rot"
cfg=$(agent_config rot "$T/rot/app.log")
start agent-rot "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-rot.log" "started as" || fail "rotation: agent did not start"
$W rotate "$T/rot/app.log" 1 60000 --at 30000 --after 5000 --rate 200000
wait_spooled "$cfg" 60000 || fail "rotation: not everything arrived"
stop_agent "$pid"
check "$cfg" 1 60000 "rename rotation under a busy writer: every line once, old file read to its end"

# --- a busy writer rotated by rename+create many times, faster than any scan
# (scan_interval 1h) and without waiting for the agent: every new file is
# followed as soon as it appears, while the renamed ones (app.log.N, outside
# the glob) are read to their end; files renamed before the agent could open
# them are followed under their new names.
mkdir -p "$T/many"
cfg=$(agent_config many "$T/many/app.log")
sed -i 's/scan_interval: 100ms/scan_interval: 1h/; s/stat_interval: 100ms/stat_interval: 1m/' "$cfg"
start agent-many "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-many.log" "started as" || fail "many rotations: agent did not start"
$W rotate-many "$T/many/app.log" 1 240000 --every 2000 --after 200 >"$T/many.out"
wait_spooled "$cfg" 240000 || fail "many rotations: not everything arrived"
stop_agent "$pid"
check "$cfg" 1 240000 "$(($(cut -d' ' -f1 "$T/many.out") - 1)) rename+create rotations of a busy writer between scans: every line once"

# --- the agent stopped during a rotation: at its restart, the stored file is
# found under its new name (outside the glob *.log) and read to its end
mkdir -p "$T/restart"
cfg=$(agent_config restart "$T/restart/*.log")
$W write "$T/restart/app.log" 1 1000
start agent-restart "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1000 || fail "restart during rotation: first lines not read"
stop_agent "$pid"
$W write "$T/restart/app.log" 1001 1000
mv "$T/restart/app.log" "$T/restart/app.log.1"
$W write "$T/restart/app.log" 2001 1000
start agent-restart2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 3000 || fail "restart during rotation: the renamed file's last lines are missing"
stop_agent "$pid"
check "$cfg" 1 3000 "a file renamed out of the glob while the agent was stopped is finished at restart"

# --- 5000 files under one glob, more than max_open_files (1024), started
# with a soft descriptor limit of 512 that the agent raises to the hard one:
# every line of every file arrives, also lines added after the files were
# closed for others; the "files wait" warning is not repeated at each scan
mkdir -p "$T/many5k"
python3 -c "
import sys
for k in range(5000):
    with open('%s/f%04d.log' % (sys.argv[1], k), 'w') as f:
        for i in range(3):
            f.write('line %08d five thousand files\\n' % (3 * k + i + 1))
" "$T/many5k"
cfg=$(agent_config many5k "$T/many5k/*.log")
hard=$(ulimit -Hn)
soft=512
[ "$hard" != unlimited ] && [ "$hard" -le 512 ] && soft=$((hard / 2))
start agent-many5k bash -c "ulimit -Sn $soft && exec $LOGFERRY_AGENT -c $cfg"
pid=$LF_PID
wait_spooled "$cfg" 15000 60 || fail "5000 files: not every file was read"
python3 -c "
import sys
for k in range(5000):
    with open('%s/f%04d.log' % (sys.argv[1], k), 'a') as f:
        f.write('line %08d added later\\n' % (15000 + k + 1))
" "$T/many5k"
wait_spooled "$cfg" 20000 60 || fail "5000 files: lines added to closed files were not read"
stop_agent "$pid"
check "$cfg" 1 20000 "5000 files under one glob with max_open_files 1024: every line of every file once"
grep -q "raised the open file limit from $soft to " "$T/agent-many5k.log" &&
	pass "the agent raises its soft descriptor limit to the hard one ($soft -> $hard)" ||
	fail "the descriptor limit was not raised from $soft to $hard"
n=$(grep -c "wait for a descriptor" "$T/agent-many5k.log")
[ "$n" -le 1 ] && ! grep -q "max_files" "$T/agent-many5k.log" &&
	pass "files waiting for a descriptor are warned about at most once a minute ($n), naming max_open_files" ||
	fail "the files-wait warning repeats ($n) or names max_files"

# --- copytruncate followed at once by new writes
mkdir -p "$T/ct"
cfg=$(agent_config ct "$T/ct/app.log")
start agent-ct "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-ct.log" "started as" || fail "copytruncate: agent did not start"
$W copytruncate "$T/ct/app.log" 1 20000 --at 10000 \
	--wait-cmd "[ \"\$($LOGFERRY_AGENT -c $cfg --spool-stats | awk '/^events:/ { print \$2 }')\" -ge 10000 ]"
wait_spooled "$cfg" 20000 || fail "copytruncate: not everything arrived"
stop_agent "$pid"
check "$cfg" 1 20000 "copytruncate followed at once by new writes: every line once"

# --- inode reuse while the agent is down
mkdir -p "$T/reuse"
cfg=$(agent_config reuse "$T/reuse/app.log")
$W write "$T/reuse/app.log" 1 1000
start agent-reuse "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1000 || fail "inode reuse: first file not read"
stop_agent "$pid"
ino1=$(stat -c %i "$T/reuse/app.log")
rm "$T/reuse/app.log"
# A longer file: without the fingerprint the old position (inside it) would skip lines.
$W write "$T/reuse/app.log" 1001 2000 --pad 10
ino2=$(stat -c %i "$T/reuse/app.log")
echo "inode before $ino1, after $ino2"
start agent-reuse2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 3000 || fail "inode reuse: second file not read from its start"
stop_agent "$pid"
check "$cfg" 1 3000 "a file recreated while the agent was down is read from its start (inode $ino1 -> $ino2)"

# --- inode reuse by a file that begins with the old file's lines: the old
# position (and a fingerprint of the same first KiB) must not skip them
mkdir -p "$T/reuse2"
cfg=$(agent_config reuse2 "$T/reuse2/app.log")
$W write "$T/reuse2/app.log" 1 1000
start agent-reuse2a "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1000 || fail "inode reuse, same start: first file not read"
stop_agent "$pid"
ino1=$(stat -c %i "$T/reuse2/app.log")
rm "$T/reuse2/app.log"
# The file system gives a freed inode out again soon: new files until one has it.
for i in $(seq 1 500); do
	: >"$T/reuse2/new.$i"
	[ "$(stat -c %i "$T/reuse2/new.$i")" = "$ino1" ] && break
done
$W write "$T/reuse2/new.$i" 1 2000
mv "$T/reuse2/new.$i" "$T/reuse2/app.log"
ino2=$(stat -c %i "$T/reuse2/app.log")
[ "$ino1" = "$ino2" ] || echo "note: inode $ino1 was not given out again; the test proves less"

start agent-reuse2b "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 3000 || fail "inode reuse, same start: the new file's first lines were skipped"
stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump >"$T/dump.json"
if python3 -c "
import json, sys, collections
c = collections.Counter(int(json.loads(l)['message'].split()[1]) for l in open(sys.argv[1]))
assert all(c[n] == 2 for n in range(1, 1001)) and all(c[n] == 1 for n in range(1001, 2001)) \
    and sum(c.values()) == 3000, 'lines 1-1000 twice, 1001-2000 once'
" "$T/dump.json"; then
	pass "a new file that begins with the old file's lines is read from its start (inode $ino1 -> $ino2)"
else
	fail "a new file that begins with the old file's lines lost its start (inode $ino1 -> $ino2)"
fi

# --- a 3 MiB line is split into max_line pieces, the next line intact
mkdir -p "$T/long"
cfg=$(agent_config long "$T/long/app.log")
python3 -c "
import sys
with open(sys.argv[1], 'wb') as f:
    f.write(b'line 00000001 ' + b'y' * (3 * 1024 * 1024 - 14) + b'\n')
    f.write(b'line 00000002 short\n')
" "$T/long/app.log"
start agent-long "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 4 || fail "long line: not spooled"
stop_agent "$pid"
"$LOGFERRY_AGENT" -c "$cfg" --spool-dump >"$T/dump.json"
if python3 -c "
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1], 'rb')]
want = 'line 00000001 ' + 'y' * (3 * 1024 * 1024 - 14)
pieces = [e for e in evs if e['fields'].get('split')]
assert len(pieces) == 3 and len(evs) == 4, 'a 3 MiB line is 3 pieces of 1 MiB'
ids = {e['fields']['split_id'] for e in pieces}
assert len(ids) == 1 and isinstance(pieces[0]['fields']['split_id'], str), 'one split_id'
assert all(e['fields']['split_count'] == 3 for e in pieces), 'each piece knows the count'
# A consumer puts the line back together from any order.
pieces.sort(key=lambda e: -e['fields']['split_index'])
assert [e['fields']['split_index'] for e in pieces] == [2, 1, 0]
whole = ''.join(e['message'] for e in sorted(pieces, key=lambda e: e['fields']['split_index']))
assert whole == want, 'pieces do not make the line'
assert evs[-1]['message'] == 'line 00000002 short', 'the next line is intact'
assert 'split' not in evs[-1]['fields'], 'the next line is no piece'
print(len(evs), 'events')
" "$T/dump.json"; then
	pass "a 3 MiB line becomes max_line pieces with split, split_id, split_index and split_count that put it back together; the next line is intact"
else
	fail "3 MiB line"
fi

# --- a glob picks up a file created later; a partial last line is flushed
mkdir -p "$T/glob"
cfg=$(agent_config glob "$T/glob/*.log")
$W write "$T/glob/a.log" 1 100
start agent-glob "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 100 || fail "glob: first file not read"
$W write "$T/glob/b.log" 101 100
printf 'line 00000201 partial, no newline' >>"$T/glob/b.log"
wait_spooled "$cfg" 201 || fail "glob: new file or partial line not read"
stop_agent "$pid"
check "$cfg" 1 201 "a glob picks up a new file; a partial last line is flushed after flush_timeout"

# --- start_at: end, and lines written while the agent is down
mkdir -p "$T/end"
cfg=$(agent_config end "$T/end/app.log" "    start_at: end")
$W write "$T/end/app.log" 1 500
start agent-end "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
# "started as" comes after the first scan, which put the file's position at its end.
wait_log "$T/agent-end.log" "started as" || fail "start_at: agent did not start"
$W write "$T/end/app.log" 501 500
wait_spooled "$cfg" 500 || fail "start_at end: new lines not read"
stop_agent "$pid"
$W write "$T/end/app.log" 1001 500
start agent-end2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1000 || fail "start_at end: lines written while down not read"
stop_agent "$pid"
check "$cfg" 501 1000 "start_at: end skips old lines once, and lines written while the agent is down are read"

# --- kill -9 at random moments while a writer appends
mkdir -p "$T/kill"
cfg=$(agent_config kill "$T/kill/app.log")
total=150000
start writer $W write "$T/kill/app.log" 1 $total --rate 30000
wpid=$LF_PID
kills=0
while kill -0 "$wpid" 2>/dev/null && [ "$(ps -o stat= -p "$wpid" | cut -c1)" != Z ]; do
	start agent-kill "$LOGFERRY_AGENT" -c "$cfg"
	apid=$LF_PID
	# A random moment while it reads: once 1 to 3000 more lines are spooled.
	n=$(spooled "$cfg")
	n=$(( ${n:-0} + RANDOM % 3000 + 1 ))
	[ "$n" -gt "$total" ] && n=$total
	wait_spooled "$cfg" "$n" 20 >/dev/null || fail "kill -9 loop: the agent stopped reading"
	kill -KILL "$apid"
	wait "$apid" 2>/dev/null
	kills=$((kills + 1))
done
start agent-kill-last "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
# The spool may hold everything already: be sure this agent runs before stopping it.
wait_log "$T/agent-kill-last.log" "started as" || fail "kill -9 loop: last agent did not start"
wait_spooled "$cfg" $total 60 || fail "kill -9 loop: not everything arrived"
stop_agent "$pid"
check "$cfg" 1 $total "kill -9 $kills times while a writer appends: every line exactly once"

# --- a full spool pauses the file; nothing is dropped, and a stop is prompt
mkdir -p "$T/full"
cfg=$(agent_config full "$T/full/app.log")
sed -i 's/^spool: .*/spool: {commit_interval: 5ms, max_size: 16MiB}/' "$cfg"
$W write "$T/full/app.log" 1 120000 --pad 200 --random   # 25 MiB that zstd cannot shrink
start agent-full "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-full.log" "is full" 30 || fail "full spool: never reported full"
n1=$(spooled "$cfg")
sleep 1
n2=$(spooled "$cfg")
[ "$n1" = "$n2" ] || fail "full spool: still growing ($n1 -> $n2)"
stop_agent "$pid"
echo "full at $n1 of 120000 events"
sed -i 's/max_size: 16MiB/max_size: 128MiB/' "$cfg"
start agent-full2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 120000 || fail "full spool: the rest did not arrive after max_size grew"
stop_agent "$pid"
check "$cfg" 1 120000 "a full spool pauses the file (stop still prompt); with room again every line arrives once"

# --- a broken spool is moved aside and the agent goes on
mkdir -p "$T/broken"
cfg=$(agent_config broken "$T/broken/app.log")
$W write "$T/broken/app.log" 1 10
mkdir -p "$T/broken.data/spool"
head -c 65536 /dev/urandom >"$T/broken.data/spool/data.mdb"
start agent-broken "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-broken.log" "moved aside to" || fail "broken spool: not reported"
wait_spooled "$cfg" 10 || fail "broken spool: the agent did not go on"
stop_agent "$pid"
ls -d "$T"/broken.data/spool.broken-* >/dev/null 2>&1 && \
	"$LOGFERRY_AGENT" -c "$cfg" --spool-stats | grep -q "^moved aside: 1" && \
	pass "a broken spool is moved aside, counted, and a new one takes the lines" || \
	fail "broken spool not moved aside or not counted"

finish
