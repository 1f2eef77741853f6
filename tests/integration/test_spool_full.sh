#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A full spool drains as acks arrive, without a restart (issue 14, item 1).
# Incompressible lines fill spool.max_size while no relay runs and the
# writer keeps writing; the relay starts only after a delay (several
# rounds, each with its own delay). Each time the spool must empty, the
# file source must resume and every line must reach Kafka; the only
# duplicates allowed are wire retries (the same agent and sequence number
# twice), never lines read or spooled twice. Kafka is read while the relay
# produces: the mock cluster keeps only about 5 MiB of a partition.
. "$(dirname "$0")/lib.sh"

need kcat curl
W="python3 $top_srcdir/tests/tools/logwriter.py"
make_certs
start_kafka
run=$(date +%s)$$

# only_wire_duplicates OUTPUT: check_delivered's counts show every duplicate
# line as a duplicate (agent, seq): the same event sent again, not re-read.
only_wire_duplicates() {
	local d s
	d=$(echo "$1" | sed -n 's/.*, duplicates \([0-9]*\),.*/\1/p')
	s=$(echo "$1" | sed -n 's/.*duplicate (agent, seq) \([0-9]*\).*/\1/p')
	[ -n "$d" ] && [ "$d" = "$s" ]
}

# round NAME DELAY: fills a 16 MiB spool with no relay up, keeps writing for
# a while, starts the relay DELAY seconds after the spool said it is full.
round() {
	local name=$1 delay=$2 stream port aport cfg agent writer relay out
	stream=full_${name}_$run
	kafka_topic "logs.$stream" 64
	mkdir -p "$T/$name"
	# 25 MiB that zstd cannot shrink: half again more than the spool holds.
	$W write "$T/$name/app.log" 1 120000 --pad 200 --random
	port=$(free_port)
	aport=$(free_port)
	cfg=$(agent_config "agent-$name" web-01 web-01 "$stream" "$T/$name/app.log" "$port")
	sed -i 's/format: nginx_combined/format: raw/' "$cfg"
	printf 'spool: {max_size: 16MiB}\nmetrics: {listen: %s:%s}\n' "$LF_IP" "$aport" >>"$cfg"
	start "agent-$name" "$LOGFERRY_AGENT" -c "$cfg"
	agent=$LF_PID
	wait_log "$T/agent-$name.log" "is full" 60 || fail "$name: the spool never filled"
	# The writer goes on while the spool is full: 4000 lines more, over 2 s.
	start "writer-$name" $W write "$T/$name/app.log" 120001 4000 --pad 200 --random --rate 2000
	writer=$LF_PID
	sleep "$delay"   # the relay's absence, the parameter of this round
	[ "$delay" = 0 ] || wait_exit "$writer" 30 || fail "$name: the writer did not finish"
	[ "$(metric "$aport" logferry_spool_full)" = 1 ] ||
		fail "$name: the spool is not full after $delay s without a relay"
	kafka_follow "logs.$stream" "kcat-$name" 64
	consumer=$LF_PID
	# One partition per record, not sticky runs: the mock keeps ~5 MiB of each.
	sed -i 's/properties: {/properties: {sticky.partitioning.linger.ms: "0", /' \
		"$(relay_config "relay-$name" "$port")"
	start_relay "relay-$name" "$T/relay-$name.yaml"
	relay=$LF_PID
	wait_exit "$writer" 30 || fail "$name: the writer did not finish"
	expect_followed "logs.$stream" "$T/kcat-$name.log" "$T/$name/app.log" 120 \
		"$name: relay after $delay s: every line arrived"
	out=$LF_DELIVERED
	only_wire_duplicates "$out" && pass "$name: only wire-retry duplicates ($out)" ||
		fail "$name: duplicates that are not wire retries: $out"
	wait_metric "$aport" logferry_spool_events -eq 0 30 || fail "$name: the spool did not empty"
	wait_metric "$aport" logferry_spool_full -eq 0 10 || fail "$name: the spool still says full"
	grep -q "room again" "$T/agent-$name.log" || fail "$name: the sources never resumed"
	if grep -E "commit failed|cannot delete" "$T/agent-$name.log"; then
		fail "$name: the agent logged failed commits or deletes"
	fi
	stop_agent "$agent"
	kill -TERM "$relay" "$consumer"
	wait_exit "$relay" 20 || fail "$name: relay did not stop"
	wait_exit "$consumer" 20 || fail "$name: the consumer did not stop"
}

round at_once 0   # the relay comes as the spool says it is full
round short 5
round long 20
finish
