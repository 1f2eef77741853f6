#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Upgrades, against daemons built from each commit of tests/compat/BASE:
# the one before event format 2 (format 1 only) and the one before format
# 3 (formats 1 and 2), built by tests/compat/build-base.sh; .ci/run names
# the builds in LOGFERRY_COMPAT_DIR, ':' between them. A fleet upgrades
# relays first, then agents (docs/architecture.md "Wire protocol"): every
# case checks that each line reaches Kafka exactly once. Against each base:
#   (a) a new agent and an old relay: format-3 segments are converted
#   (b) an old agent and a new relay
#   (c) an old agent's spool, left while the relay was down, shipped by a
#       new agent on the same data_dir to a new relay
#   (e) a downgrade: an old agent moves a new agent's spool aside, kept
# and once, the old daemons not involved:
#   (d) a new agent's spool, left while the relay was down, shipped to a
#       new relay after a restart
. "$(dirname "$0")/lib.sh"

need kcat openssl curl
if [ -z "${LOGFERRY_COMPAT_DIR:-}" ]; then
	echo "skip: LOGFERRY_COMPAT_DIR is not set: it names the builds of the daemons from" \
		"tests/compat/BASE, ':' between them (tests/compat/build-base.sh GIT_DIR CACHE_DIR" \
		"prints it; .ci/run sets it)"
	exit 77
fi
IFS=: read -r -a bases <<<"$LOGFERRY_COMPAT_DIR"
for dir in "${bases[@]}"; do
	for b in "$dir/agent/logferry-agent" "$dir/relay/logferry-relay"; do
		[ -x "$b" ] || { echo "FAIL: $b is missing: run tests/compat/build-base.sh again"; exit 1; }
	done
	echo "old daemons: $("$dir/agent/logferry-agent" --version | sed -n 2p)"
done
echo "new daemons: $("$LOGFERRY_AGENT" --version | sed -n 2p)"
make_certs
start_kafka
run=$(date +%s)$$

# relay_with BINARY NAME PORT MPORT: a relay of BINARY listening on PORT,
# metrics on MPORT; sets LF_PID.
relay_with() {
	local cfg
	cfg=$(relay_config "$2" "$3" "metrics: {listen: $LF_IP:$4}")
	start "$2" "$1" -c "$cfg"
	wait_log "$T/$2.log" "listening on" 60 || fail "relay $2 did not start: $(tail -3 "$T/$2.log")"
}

# agent_cfg NAME STREAM FILE PORT MPORT: an agent configuration tailing FILE.
agent_cfg() {
	local cfg
	cfg=$(agent_config "$1" web-01 web-01 "$2" "$3" "$4")
	echo "metrics: {listen: $LF_IP:$5}" >>"$cfg"
	echo "$cfg"
}

# spooled_by BINARY CONFIG: the events the spool of CONFIG holds, as BINARY reads it.
spooled_by() {
	"$1" -c "$2" --spool-stats 2>/dev/null | awk '/^events:/ { print $2 }'
}

# wait_spooled_by BINARY CONFIG N: until that spool holds N events.
wait_spooled_by() {
	local i c
	for ((i = 0; i < 1200; i++)); do
		c=$(spooled_by "$1" "$2")
		[ "${c:-0}" -ge "$3" ] && return 0
		sleep 0.1
	done
	fail "the spool of $2 holds ${c:-0} events, expected $3"
	return 1
}

# expect_exact TOPIC FILE WHAT: every line of FILE in TOPIC exactly once.
expect_exact() {
	local out
	if ! wait_delivered "$1" "$2" 90; then
		fail "$3: not within 90 s: $(check_delivered "$2" "$T/dump")"
		return
	fi
	out=$(check_delivered "$2" "$T/dump" exact) && pass "$3: $out" || fail "$3: $out"
}

# stop_relay PID: SIGTERM, exit 0.
stop_relay() {
	kill -TERM "$1"
	wait_exit "$1" 60 || { fail "relay $1 did not stop"; return; }
	[ "$LF_RC" = 0 ] || fail "relay exited $LF_RC"
}

# live CASE RELAY AGENT WHAT: a relay of binary RELAY and an agent of binary
# AGENT tailing 3000 lines, each line in Kafka once; both left running
# (relay, agent; metrics on mport, amport) for the case's own checks.
live() {
	local stream=compat_$1_$run
	kafka_topic "logs.$stream" 16
	port=$(free_port) mport=$(free_port) amport=$(free_port)
	relay_with "$2" relay-$1 "$port" "$mport"
	relay=$LF_PID
	nginx_lines "$T/$1.log" 3000 1
	start agent-$1 "$3" -c "$(agent_cfg agent-$1 "$stream" "$T/$1.log" "$port" "$amport")"
	agent=$LF_PID
	expect_exact "logs.$stream" "$T/$1.log" "($1) $4"
}

# spool_then_ship CASE WRITER WHAT: WRITER (an agent binary) spools 2000
# lines while no relay listens and stops; 1000 more lines come; then a new
# relay and a new agent on the same data_dir ship all 3000, each once,
# without converting anything.
spool_then_ship() {
	local stream=compat_$1_$run acfg
	kafka_topic "logs.$stream" 16
	port=$(free_port) mport=$(free_port) amport=$(free_port)
	nginx_lines "$T/$1.log" 2000 1
	acfg=$(agent_cfg agent-$1 "$stream" "$T/$1.log" "$port" "$amport")
	start agent-$1-before "$2" -c "$acfg"
	agent=$LF_PID
	wait_spooled_by "$2" "$acfg" 2000
	stop_agent "$agent"
	nginx_lines "$T/$1.log" 1000 2001
	relay_with "$LOGFERRY_RELAY" relay-$1 "$port" "$mport"
	relay=$LF_PID
	start agent-$1-after "$LOGFERRY_AGENT" -c "$acfg"
	agent=$LF_PID
	expect_exact "logs.$stream" "$T/$1.log" "($1) $3"
	v=$(metric "$amport" logferry_shipper_segments_converted_total)
	[ "${v:-x}" = 0 ] || fail "($1) a new relay, yet ${v:-?} segment(s) converted"
	stop_agent "$agent"
	stop_relay "$relay"
}

# against_base N DIR: cases (a), (b), (c) and (e) against the daemons of
# DIR, base N of LOGFERRY_COMPAT_DIR (case names carry N).
against_base() {
	local n=$1 old
	OLD_AGENT=$2/agent/logferry-agent
	OLD_RELAY=$2/relay/logferry-relay
	old=$("$OLD_AGENT" --version | sed -n 2p | awk '{ print $NF }')
	# ---- (a$n) a new agent, an old relay ----
	live a$n "$OLD_RELAY" "$LOGFERRY_AGENT" "new agent -> old relay $old"
	converted=$(metric "$amport" logferry_shipper_segments_converted_total)
	rejected=$(metric "$amport" logferry_shipper_acks_rejected_total)
	[ "${rejected:-x}" = 0 ] || fail "(a$n) the old relay rejected ${rejected:-?} batch(es)"
	# The new agent writes format 3, which no old relay reads: every segment
	# went the conversion path, said once per connection.
	if [ "${converted:-0}" -gt 0 ] && grep -q "does not read event format 3" "$T/agent-a$n.log"; then
		pass "(a$n) $converted segment(s) converted to format 1: $(grep -m1 -o 'relay .*does not read event format 3.*' "$T/agent-a$n.log" | cut -c1-160)"
	else
		fail "(a$n) converted segments: ${converted:-absent}; the agent's warning: $(grep -c 'does not read event format' "$T/agent-a$n.log")"
	fi
	stop_agent "$agent"
	stop_relay "$relay"

	# ---- (b$n) an old agent, a new relay ----
	live b$n "$LOGFERRY_RELAY" "$OLD_AGENT" "old agent $old -> new relay"
	v=$(metric "$mport" logferry_relay_unknown_event_format_total)
	[ "${v:-x}" = 0 ] || fail "(b$n) the new relay counted ${v:-?} unknown event format(s)"
	stop_agent "$agent"
	stop_relay "$relay"

	# ---- (c$n) an old agent's spool, shipped by a new agent after the upgrade ----
	spool_then_ship c$n "$OLD_AGENT" "an old agent's ($old) spool and new lines, by a new agent to a new relay"

	# ---- (e$n) a downgrade: an old agent on a new agent's spool ----
	# It does not know the spool's format 3: it moves the spool aside, kept on
	# disk with its events, and starts a new one. The file positions were in
	# that spool, so it reads the file again from its start: here nothing had
	# been shipped, so every line arrives once.
	stream=compat_e${n}_$run
	kafka_topic "logs.$stream" 16
	port=$(free_port) mport=$(free_port) amport=$(free_port)
	nginx_lines "$T/e$n.log" 1000 1
	acfg=$(agent_cfg agent-e$n "$stream" "$T/e$n.log" "$port" "$amport")
	start agent-e$n-new "$LOGFERRY_AGENT" -c "$acfg"
	agent=$LF_PID
	wait_spooled_by "$LOGFERRY_AGENT" "$acfg" 1000
	stop_agent "$agent"
	relay_with "$LOGFERRY_RELAY" relay-e$n "$port" "$mport"
	relay=$LF_PID
	start agent-e$n-old "$OLD_AGENT" -c "$acfg"
	agent=$LF_PID
	if wait_log "$T/agent-e$n-old.log" "has a format this agent does not know.*moved aside to" 60; then
		pass "(e$n) the old agent: $(grep -m1 -o 'spool .* is damaged.*' "$T/agent-e$n-old.log" | cut -c1-220)"
	else
		fail "(e$n) the old agent did not move the new spool aside: $(tail -3 "$T/agent-e$n-old.log")"
	fi
	aside=$(ls -d "$T/agent-e$n/spool.broken-"* 2>/dev/null | head -1)
	[ -n "$aside" ] && [ -s "$aside/data.mdb" ] && pass "(e$n) the new spool is kept in $(basename "$aside")" ||
		fail "(e$n) no spool moved aside in $T/agent-e$n: $(ls "$T/agent-e$n")"
	expect_exact "logs.$stream" "$T/e$n.log" "(e$n) the old agent read the file again from its start"
	stop_agent "$agent"
	stop_relay "$relay"
}

for i in "${!bases[@]}"; do
	against_base $((i + 1)) "${bases[$i]}"
done

# ---- (d) a new agent's spool, shipped to a new relay after a restart ----
spool_then_ship d "$LOGFERRY_AGENT" "a new agent's spool and new lines, to a new relay"


finish
