# SPDX-License-Identifier: Apache-2.0
# Shared helpers for integration tests (sourced, bash).
#
# Every test runs in its own temporary directory, binds loopback only, and
# stops every process it started, by PID, whatever way it exits.
# Automake's test driver sets srcdir; the Makefile exports the paths below.

set -u

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${LOGFERRY_AGENT:=$top_builddir/agent/logferry-agent}"
: "${LOGFERRY_RELAY:=$top_builddir/relay/logferry-relay}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
: "${KAFKA_ADMIN:=$top_builddir/tests/tools/kafka_admin}"
MAKE_CERTS="$top_srcdir/tests/tools/make-certs.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/logferry-test.XXXXXX")
LF_PIDS=()
LF_FAILED=0

lf_cleanup() {
	local pid live=() running
	# Only children not reaped yet: a PID this test already waited for may
	# belong to another test's daemon by now (PIDs wrap around within
	# minutes while tests spawn curl and awk in loops), and a TERM to it
	# would fail that test with exit 143.
	running=" $(jobs -p | tr '\n' ' ') "
	for pid in "${LF_PIDS[@]}"; do
		case "$running" in *" $pid "*) live+=("$pid") ;; esac
	done
	for pid in "${live[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${live[@]}"; do
		# Give each a moment, then insist.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	# A test's own cleanup once its processes are gone (e.g. unmounting).
	eval "${LF_AFTER_STOP:-:}"
	if [ "$LF_FAILED" -ne 0 ] && [ -n "${LF_KEEP:-}" ]; then
		echo "kept $T for inspection"
	else
		rm -rf "$T"
	fi
}
trap lf_cleanup EXIT

# fail MESSAGE: records a failure and goes on (the test exits 1 at the end).
fail() {
	echo "FAIL: $*"
	LF_FAILED=1
}

pass() {
	echo "ok: $*"
}

# finish: the test's exit status.
finish() {
	if [ "$LF_FAILED" -ne 0 ]; then
		exit 1
	fi
	exit 0
}

# start NAME CMD...: runs CMD in the background with stderr+stdout to
# $T/NAME.log; sets LF_PID.
start() {
	local name=$1
	shift
	"$@" >"$T/$name.log" 2>&1 &
	LF_PID=$!
	LF_PIDS+=("$LF_PID")
}

# Bounded waits are generous: they cost nothing when the condition comes,
# and a test must pass on a loaded 2-core machine (issue 14, item 11:
# make check beside stress-ng --cpu 2).

# wait_log FILE PATTERN [SECONDS]: waits until FILE has a line matching the
# extended regex PATTERN. Returns 1 on timeout.
wait_log() {
	local file=$1 pattern=$2 secs=${3:-60} i
	for ((i = 0; i < secs * 20; i++)); do
		grep -Eq -- "$pattern" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_exit PID [SECONDS]: waits for PID (a child of this shell) to exit and
# sets LF_RC to its exit status. Returns 1 on timeout. Not in $(...): only
# this shell can reap its children.
wait_exit() {
	local pid=$1 secs=${2:-60} i
	LF_RC=
	for ((i = 0; i < secs * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null || [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then
			wait "$pid" 2>/dev/null
			LF_RC=$?
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# make_certs: certificates for the tests in $T/certs (see make-certs.sh).
make_certs() {
	LF_CERT_IP=$LF_IP sh "$MAKE_CERTS" "$T/certs" || {
		echo "FAIL: make-certs.sh failed"
		exit 1
	}
}

# example_config NAME: packaging/NAME.yaml with /etc/logferry paths pointing
# at the test certificates; prints the new file's path.
example_config() {
	local out="$T/$1.yaml"
	# Every listener on this test's own address: the examples' fixed ports
	# would collide with a test run beside this one.
	# The agent's id must be its certificate's common name (web-01).
	sed -e "s|^# id: web-01 |id: web-01 |" \
	    -e "s|/etc/logferry/agent\\.crt|$T/certs/web-01-chain.crt|g" \
	    -e "s|/etc/logferry/relay\\.crt|$T/certs/relay-chain.crt|g" \
	    -e "s|/etc/logferry/agent\\.|$T/certs/web-01.|g" \
	    -e "s|0\\.0\\.0\\.0:7540|$LF_IP:$(free_port)|g" \
	    -e "s|/etc/logferry/|$T/certs/|g" \
	    -e "s|127\\.0\\.0\\.1:5514|$LF_IP:$(free_port)|g" -e "s|/run/logferry/|$T/|g" \
	    -e "s|127\\.0\\.0\\.1:8540|$LF_IP:$(free_port)|g" -e "s|/var/lib/logferry|$T/data|g" \
	    -e "s|127\\.0\\.0\\.1:954[01]|$LF_IP:$(free_port)|g" \
	    "$top_srcdir/packaging/$1.yaml" >"$out"
	! grep -q '127\.0\.0\.1\|0\.0\.0\.0' "$out" || {
		echo "FAIL: packaging/$1.yaml has an address example_config does not move to $LF_IP"
		exit 1
	}
	echo "$out"
}

# spooled CONFIG: how many events the agent's spool holds (--spool-stats).
spooled() {
	"$LOGFERRY_AGENT" -c "$1" --spool-stats 2>/dev/null | awk '/^events:/ { print $2 }'
}

# wait_spooled CONFIG N [SECONDS]: until the spool holds at least N events.
wait_spooled() {
	local cfg=$1 n=$2 secs=${3:-120} i c
	for ((i = 0; i < secs * 10; i++)); do
		c=$(spooled "$cfg")
		[ "${c:-0}" -ge "$n" ] && return 0
		sleep 0.1
	done
	echo "spool holds ${c:-0} events, expected $n"
	return 1
}

# stop_agent PID: SIGTERM, then checks that it exits 0.
stop_agent() {
	kill -TERM "$1"
	wait_exit "$1" 60 || { fail "agent $1 did not stop"; return; }
	[ "$LF_RC" = 0 ] || fail "agent exited $LF_RC"
}

# ---- Kafka and the pipeline ----
#
# start_kafka: the mock cluster (tests/tools/mock_kafka), or the real one
# named by LOGFERRY_TEST_KAFKA=host:port. Sets KAFKA_BOOT. On a real
# cluster kafka_ctl (brokers down/up) is unavailable: kafka_mock says so.
start_kafka() {
	if [ -n "${LOGFERRY_TEST_KAFKA:-}" ]; then
		KAFKA_BOOT=$LOGFERRY_TEST_KAFKA
		return 0
	fi
	mkfifo "$T/kafka.in"
	"$MOCK_KAFKA" --brokers 3 <"$T/kafka.in" >"$T/kafka.out" 2>"$T/kafka.err" &
	LF_PIDS+=($!)
	exec 9>"$T/kafka.in"    # keeps the control pipe open
	for _ in $(seq 600); do
		grep -q '^bootstrap=' "$T/kafka.out" && break
		sleep 0.1
	done
	KAFKA_BOOT=$(sed -n 's/^bootstrap=//p' "$T/kafka.out" | head -1)
	[ -n "$KAFKA_BOOT" ] || { echo "FAIL: mock Kafka did not start: $(cat "$T/kafka.err")"; exit 1; }
}

kafka_mock() {
	[ -z "${LOGFERRY_TEST_KAFKA:-}" ]
}

# kafka_ctl CMD...: a command to the mock cluster (topic, down, up, rtt,
# produce_errors, clear_errors, topic_error: see mock_kafka --help).
kafka_ctl() {
	local before
	before=$(wc -l <"$T/kafka.out")
	echo "$*" >&9
	for _ in $(seq 300); do
		[ "$(wc -l <"$T/kafka.out")" -gt "$before" ] && break
		sleep 0.1
	done
	tail -n 1 "$T/kafka.out" | grep -q '^ok' || fail "mock_kafka '$*': $(tail -n 1 "$T/kafka.out")"
}

# kafka_topic NAME PARTITIONS [CONFIG=VALUE]...: creates the topic, on the
# mock or on the real cluster (which creates no topic on first use). Real
# topics are replicated as production ones are: 3 replicas (or
# LOGFERRY_TEST_KAFKA_REPLICAS), min.insync.replicas 2.
kafka_topic() {
	local name=$1 parts=$2
	shift 2
	if kafka_mock; then
		kafka_ctl topic "$name" "$parts"
	else
		"$KAFKA_ADMIN" -b "$KAFKA_BOOT" create "$name" "$parts" "${LOGFERRY_TEST_KAFKA_REPLICAS:-3}" \
			min.insync.replicas="${LOGFERRY_TEST_KAFKA_MIN_ISR:-2}" "$@" >"$T/kafka_admin.out" 2>&1 ||
			fail "cannot create topic $name on $KAFKA_BOOT: $(cat "$T/kafka_admin.out")"
	fi
}

# kafka_dump TOPIC OUT: every record of TOPIC so far, one per line:
# headers TAB value.
kafka_dump() {
	timeout -k 5 120 kcat -C -b "$KAFKA_BOOT" -t "$1" -o beginning -e -q -f '%h\t%s\n' >"$2" 2>"$2.err"
}

# This test's own loopback address, 127.A.B.C from its PID: no other
# running test has the same PID, and the kernel picks 127.0.0.1 as the
# source of loopback connections, so nobody else binds on LF_IP.
LF_IP=127.$((($$ >> 16) & 255)).$((($$ >> 8) & 255)).$(($$ & 255))
[ "$LF_IP" != 127.0.0.1 ] || LF_IP=127.1.0.1
LF_PORT_FILE=$T/.last-port

# free_port: the next port of this test on LF_IP. Ports count up from
# 24000, below the kernel's ephemeral range (32768-60999), so no outgoing
# connection takes one; listeners bind "$LF_IP:$(free_port)". Race-free,
# unlike binding port 0 and releasing it.
free_port() {
	local last=23999
	[ -f "$LF_PORT_FILE" ] && last=$(cat "$LF_PORT_FILE")
	echo $((last + 1)) >"$LF_PORT_FILE"
	echo $((last + 1))
}

# relay_config NAME PORT [EXTRA_YAML]: a relay configuration in $T/NAME.yaml.
# No key and lz4: the mock cluster keeps only the last 5 MiB (as stored,
# compressed) of each partition, so records spread over a topic's
# partitions (create it with kafka_topic NAME 16) all stay readable.
relay_config() {
	cat >"$T/$1.yaml" <<CONF
id: $1
listen: $LF_IP:$2
workers: 2
shutdown_timeout: 5s
tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/relay-chain.crt, key_file: $T/certs/relay.key}
kafka:
  brokers: "$KAFKA_BOOT"
  topic: "logs.\${stream}"
  key: ""
  delivery_timeout: 5s
  properties: {reconnect.backoff.max.ms: "500", compression.type: lz4}
${3:-}
CONF
	echo "$T/$1.yaml"
}

# watched_pipeline STREAM FILE: a relay (metrics on $mport) and an agent
# (metrics on $amport) tailing FILE into STREAM, both watched through their
# metrics; sets port, mport, amport, relay and agent.
watched_pipeline() {
	local rcfg acfg
	port=$(free_port)
	mport=$(free_port)
	amport=$(free_port)
	rcfg=$(relay_config relay "$port" "metrics: {listen: $LF_IP:$mport}")
	start_relay relay "$rcfg"
	relay=$LF_PID
	acfg=$(agent_config agent web-01 web-01 "$1" "$2" "$port")
	echo "metrics: {listen: $LF_IP:$amport}" >>"$acfg"
	start agent "$LOGFERRY_AGENT" -c "$acfg"
	agent=$LF_PID
}

# need TOOL...: exits 77 ("SKIP: TOOL not installed") unless every TOOL is
# on PATH: the tools an integration test drives besides the daemons.
need() {
	local tool what
	for tool in "$@"; do
		command -v "$tool" >/dev/null && continue
		what=$tool
		[ "$tool" = logger ] && what="util-linux logger"
		echo "SKIP: $what not installed"
		exit 77
	done
}

# need_cluster WHY: exits 77 ("skip: needs ... WHY") unless the test runs
# against the cluster test_real_kafka.tap started (LOGFERRY_KAFKA_CLUSTER);
# else loads its settings (BOOTSTRAP, SASL_BOOTSTRAP, CA_FILE,
# RELAY_PASSWORD_FILE, ...) and sets CLUSTER_SH.
need_cluster() {
	if [ -z "${LOGFERRY_KAFKA_CLUSTER:-}" ] || [ -z "${LOGFERRY_TEST_KAFKA:-}" ]; then
		echo "skip: needs the cluster test_real_kafka.tap starts ($1)"
		exit 77
	fi
	CLUSTER_SH=$top_srcdir/tests/kafka/kafka-cluster.sh
	eval "$(bash "$CLUSTER_SH" env "$LOGFERRY_KAFKA_CLUSTER")"
}

# relay_sasl_config NAME PORT MPORT MECHANISM PASSWORD_FILE: a relay
# producing over SASL_SSL as user "relay" to the cluster kafka-cluster.sh
# started (SASL_BOOTSTRAP and CA_FILE from its "env"), metrics on MPORT.
relay_sasl_config() {
	relay_config "$1" "$2" "metrics: {listen: $LF_IP:$3}" >/dev/null
	sed -i -e "s|^  brokers: .*|  brokers: \"$SASL_BOOTSTRAP\"|" \
		-e "s|^  properties: {|  sasl_password_file: $5\\n  properties: {security.protocol: SASL_SSL, sasl.mechanisms: $4, sasl.username: relay, ssl.ca.location: \"$CA_FILE\", |" \
		"$T/$1.yaml"
	echo "$T/$1.yaml"
}

# ---- the daemons' metrics endpoints ----

# get PORT PATH: GET http://$LF_IP:PORT/PATH, within 15 s (a stalled loop
# fails here; a loop that is only short of CPU does not).
get() {
	curl -sS --max-time 15 "http://$LF_IP:$1$2"
}

# metric PORT SAMPLE: the value of one sample, e.g. 'logferry_spool_events'
# or 'logferry_kafka_errors_total{error="unknown_topic"}'.
metric() {
	get "$1" /metrics | awk -v k="$2" '$1 == k { print $2 }'
}

# wait_metric PORT SAMPLE OP VALUE [SECONDS]: until the test [ sample OP value ] holds.
wait_metric() {
	local v i
	for ((i = 0; i < ${5:-60} * 10; i++)); do
		v=$(metric "$1" "$2")
		[ -n "$v" ] && [ "$v" "$3" "$4" ] && return 0
		sleep 0.1
	done
	echo "$2 is ${v:-absent}, expected $3 $4"
	return 1
}

# wait_health PORT PATTERN [SECONDS]: until GET /health matches the
# extended regex PATTERN; sets LF_HEALTH to the last answer. Returns 1 on timeout.
wait_health() {
	local i
	for ((i = 0; i < ${3:-60} * 4; i++)); do
		LF_HEALTH=$(get "$1" /health 2>/dev/null)
		echo "$LF_HEALTH" | grep -Eq -- "$2" && return 0
		sleep 0.25
	done
	return 1
}

# agent_config NAME ID CERT STREAM FILE PORT...: an agent tailing FILE into
# stream STREAM and shipping to the relays on the given ports.
agent_config() {
	local name=$1 id=$2 cert=$3 stream=$4 file=$5 servers= chain
	shift 5
	chain=$T/certs/$cert-chain.crt
	[ -f "$chain" ] || chain=$T/certs/$cert.crt
	for p in "$@"; do servers="$servers${servers:+, }$LF_IP:$p"; done
	cat >"$T/$name.yaml" <<CONF
id: $id
data_dir: $T/$name
sources:
  - {name: $stream, type: file, paths: [$file], format: nginx_combined}
relays:
  servers: [$servers]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $chain, key_file: $T/certs/$cert.key}
  reconnect_min: 50ms
  reconnect_max: 1s
  ping_interval: 1s
  ping_timeout: 3s
CONF
	echo "$T/$name.yaml"
}

# nginx_lines FILE N FIRST: appends N NGINX combined lines with ids FIRST.. (unique request paths).
nginx_lines() {
	awk -v n="$2" -v first="$3" 'BEGIN {
		for (i = first; i < first + n; i++)
			printf "10.0.%d.%d - - [25/Nov/2026:10:00:%02d +0000] \"GET /item/%d HTTP/1.1\" 200 %d \"-\" \"curl/8.0\"\n",
			    i % 256, i % 200, i % 60, i, 500 + i % 1000
	}' >>"$1"
}

# check_delivered FILE DUMP [exact]: every line of FILE is the message of a
# record in DUMP (kafka_dump output); with "exact", each exactly once and
# no other record. Prints the counts; returns 1 when a check fails.
check_delivered() {
	python3 - "$1" "$2" "${3:-}" <<'PY'
import json, sys, collections
lines = open(sys.argv[1], 'rb').read().decode('utf-8', 'replace').split('\n')
if lines and lines[-1] == '':
    lines.pop()
seen = collections.Counter()
seqs = collections.Counter()
recs = open(sys.argv[2], 'rb').read().decode('utf-8', 'replace').split('\n')
for i, rec in enumerate(recs):
    if not rec:
        continue
    hdr, _, val = rec.partition('\t')
    try:
        seen[json.loads(val)['message']] += 1
    except ValueError:
        if i == len(recs) - 1:
            continue    # the consumer is writing it now
        raise
    h = dict(kv.split('=', 1) for kv in hdr.split(',') if '=' in kv)
    seqs[(h.get('logferry-agent'), h.get('logferry-seq'))] += 1
want = collections.Counter(lines)
missing = sum((want - seen).values())
extra = sum((seen - want).values())
dups = sum(c - 1 for c in seen.values() if c > 1)
print(f"lines {len(lines)}, records {sum(seen.values())}, missing {missing}, "
      f"duplicates {dups}, unknown {sum(1 for k in seen if k not in want)}, "
      f"duplicate (agent, seq) {sum(c - 1 for c in seqs.values() if c > 1)}")
ok = missing == 0 and all(k in want for k in seen)
if sys.argv[3] == 'exact':
    ok = ok and extra == 0 and dups == 0
sys.exit(0 if ok else 1)
PY
}

# wait_delivered TOPIC FILE SECONDS: until every line of FILE is in TOPIC.
wait_delivered() {
	local n i
	n=$(wc -l <"$2")
	for ((i = 0; i < $3; i++)); do
		kafka_dump "$1" "$T/dump"
		[ "$(wc -l <"$T/dump")" -ge "$n" ] && check_delivered "$2" "$T/dump" >/dev/null && return 0
		sleep 1
	done
	return 1
}

# expect_delivered TOPIC FILE SECONDS WHAT: passes when every line of FILE
# reaches TOPIC within SECONDS (duplicates allowed), fails otherwise.
expect_delivered() {
	if wait_delivered "$1" "$2" "$3"; then
		pass "$4: $(check_delivered "$2" "$T/dump")"
	else
		fail "$4: not within $3 s: $(check_delivered "$2" "$T/dump")"
	fi
}

# kafka_follow TOPIC NAME PARTITIONS: a consumer that writes every record of
# TOPIC, from the beginning and as they come, unbuffered, to $T/NAME.log (as
# kafka_dump); sets LF_PID. Returns once it reached the end of each of the
# PARTITIONS: start it before the records are produced, since the mock
# cluster trims a partition past about 5 MiB and librdkafka's sticky
# partitioner can put that much in one partition when a backlog is produced.
kafka_follow() {
	local i n
	start "$2" sh -c "exec kcat -C -u -b '$KAFKA_BOOT' -t '$1' -o beginning -f '%h\t%s\n' 2>'$T/$2.err'"
	for ((i = 0; i < 300; i++)); do
		n=$(cat "$T/$2.err" 2>/dev/null | grep -c "Reached end of topic")
		[ "${n:-0}" -ge "$3" ] && return 0
		sleep 0.1
	done
	fail "the consumer of $1 did not start: $(tail -2 "$T/$2.err")"
}

# expect_followed TOPIC FOLLOWED FILE SECONDS WHAT: passes when every line of
# FILE is in Kafka within SECONDS (duplicates allowed), read as the union of
# FOLLOWED (a kafka_follow log) and a fresh kafka_dump of TOPIC, identical
# records once (a wire retry can be one of those; a line spooled twice has
# another sequence number and stays a duplicate).
# Leaves the counts in LF_DELIVERED.
expect_followed() {
	local i n
	n=$(wc -l <"$3")
	for ((i = 0; i < $4; i += 2)); do
		kafka_dump "$1" "$T/dump"
		sort -u "$2" "$T/dump" >"$T/union"
		[ "$(wc -l <"$T/union")" -ge "$n" ] && check_delivered "$3" "$T/union" >/dev/null && break
		sleep 2
	done
	LF_DELIVERED=$(check_delivered "$3" "$T/union") && pass "$5: $LF_DELIVERED" ||
		fail "$5: not within $4 s: $LF_DELIVERED"
}

# start_relay NAME CONFIG: starts a relay and waits until it listens; sets LF_PID.
start_relay() {
	start "$1" "$LOGFERRY_RELAY" -c "$2"
	wait_log "$T/$1.log" "listening on" 60 || fail "relay $1 did not start: $(tail -3 "$T/$1.log")"
}

# ---- journal files ----

# need_journal: exits 77 unless Debian's systemd-journal-remote is there to
# write journal files (JR is its path) and the agent was built to read them.
need_journal() {
	JR=/lib/systemd/systemd-journal-remote
	[ -x "$JR" ] || { echo "SKIP: $JR not installed (package systemd-journal-remote)"; exit 77; }
	"$LOGFERRY_AGENT" --version | grep -q '^systemd ' ||
		{ echo "SKIP: the agent was built without libsystemd"; exit 77; }
}

# ---- multiline events in the spool ----

# expect_spooled_messages CONFIG WHAT EXPECTED-FILE [STREAM]: passes WHAT
# when the spool of the agent of CONFIG holds exactly the messages of
# EXPECTED-FILE (events separated by a line "----"), in order (only the
# events of STREAM when given).
expect_spooled_messages() {
	"$LOGFERRY_AGENT" -c "$1" --spool-dump >"$T/dump.json" || { fail "$2: dump failed"; return; }
	if python3 - "$T/dump.json" "$3" "${4:-}" <<'PY'; then pass "$2"; else fail "$2"; fi
import json, sys
got = [e['message'] for e in map(json.loads, open(sys.argv[1])) if not sys.argv[3] or e['stream'] == sys.argv[3]]
want = open(sys.argv[2]).read().split('\n----\n')[:-1]
if got != want:
    print('got %d events, want %d' % (len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            print('event %d:\n--- got\n%s\n--- want\n%s' % (i, g, w))
            break
    sys.exit(1)
PY
}

# expect_cut_at_max_bytes CONFIG FIRST SECOND: the spool of the agent of
# CONFIG holds two events, FIRST cut at max_bytes 256 and marked
# multiline_truncated, then SECOND whole and unmarked.
expect_cut_at_max_bytes() {
	"$LOGFERRY_AGENT" -c "$1" --spool-dump >"$T/dump.json"
	if python3 - "$T/dump.json" "$2" "$3" <<'PY'; then
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
assert len(evs) == 2, len(evs)
assert evs[0]['message'] == sys.argv[2][:256] and evs[0]['fields'].get('multiline_truncated') is True, evs[0]
assert evs[1]['message'] == sys.argv[3] and 'multiline_truncated' not in evs[1]['fields'], evs[1]
PY
		pass "an event beyond max_bytes is cut there and marked multiline_truncated; the next one is whole"
	else
		fail "an event beyond max_bytes is not cut and marked as it should"
	fi
}
