#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Many idle agents on one relay (docs/performance.md "Idle agents on one relay"): the
# relay raises its descriptor limit for them and says when max_connections
# does not fit; after a mass disconnect it gives the freed memory back to
# the system, once, on its own (relay/memtrim.h). 300 agents
# (bench/idle_agents: TLS, Hello, Welcome) connect and all leave at once.
. "$(dirname "$0")/lib.sh"
: "${IDLE_AGENTS:=$top_builddir/bench/idle_agents}"
TRIMMED='agents disconnected \([0-9]+ connections left\): freed memory returned to the system'
AGENTS=300

make_certs
start_kafka
port=$(free_port)
mport=$(free_port)
cfg=$(relay_config relay "$port" "log_level: debug
metrics: {listen: $LF_IP:$mport}")

# test_relay_raises_its_soft_descriptor_limit_to_the_hard_one
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -le 256 ]; then
	echo "skipped the descriptor limit checks: hard limit $hard"
else
	start relay-low bash -c "ulimit -Sn 256 && exec \"\$0\" -c \"\$1\"" "$LOGFERRY_RELAY" "$cfg"
	low=$LF_PID
	wait_log "$T/relay-low.log" "listening on" 60 || fail "relay (ulimit -Sn 256) did not start: $(tail -3 "$T/relay-low.log")"
	grep -q "raised the open file limit from 256 to $hard" "$T/relay-low.log" &&
	    [ "$(awk '/^Max open files/ { print $4 }' "/proc/$low/limits")" = "$hard" ] &&
	    pass "the relay raised its soft descriptor limit from 256 to the hard $hard" ||
	    fail "the relay did not raise its descriptor limit: $(grep -i 'open file' "$T/relay-low.log")"
	kill -TERM "$low"
	wait_exit "$low" 30 || fail "relay (ulimit -Sn 256) did not stop"

	# test_relay_warns_when_max_connections_needs_more_descriptors_than_its_limit
	start relay-hard bash -c "ulimit -n 512 && exec \"\$0\" -c \"\$1\"" "$LOGFERRY_RELAY" "$cfg"
	low=$LF_PID
	wait_log "$T/relay-hard.log" "listening on" 60 || fail "relay (ulimit -Hn 512) did not start: $(tail -3 "$T/relay-hard.log")"
	grep -q "max_connections 10000 needs .* open files, but the limit is 512" "$T/relay-hard.log" &&
	    pass "the relay says max_connections does not fit its descriptor limit" ||
	    fail "no warning about max_connections and the limit: $(grep -i 'open file' "$T/relay-hard.log")"
	kill -TERM "$low"
	wait_exit "$low" 30 || fail "relay (ulimit -Hn 512) did not stop"
fi

start_relay relay "$cfg"
# test_relay_returns_memory_once_after_a_mass_disconnect_and_not_while_agents_stay
start agents "$IDLE_AGENTS" -a "$LF_IP:$port" --ca "$T/certs/ca.crt" \
    --cert "$T/certs/web-01-chain.crt" --key "$T/certs/web-01.key" --id web-01 \
    -n "$AGENTS" --inflight 50
agents=$LF_PID
wait_log "$T/agents.log" '^ready$' 80 || fail "idle_agents did not finish connecting: $(tail -3 "$T/agents.log")"
grep -qx "connected=$AGENTS" "$T/agents.log" || fail "not every agent connected: $(cat "$T/agents.log")"
wait_metric "$mport" logferry_relay_connections -eq "$AGENTS" 30 || fail "the relay does not count $AGENTS connections"
# The peak is counted at each accept (memtrim_opened), so the trim below does
# not depend on a sample falling between the last connect and the disconnect.
wait_log "$T/relay.log" "agent web-01 connected from" 5 || fail "no agent connected in the relay's log"
grep -Eq "$TRIMMED" "$T/relay.log" && fail "the relay trimmed memory while its agents stayed connected"

kill -USR1 "$agents"
wait_exit "$agents" 60 || fail "idle_agents did not close its connections"
[ "${LF_RC:-}" = 0 ] || fail "idle_agents: connections failed or were lost: $(cat "$T/agents.log")"
wait_metric "$mport" logferry_relay_connections -eq 0 30 || fail "the relay still counts connections"
if wait_log "$T/relay.log" "$TRIMMED" 30; then
	n=$(grep -Ec "$TRIMMED" "$T/relay.log")
	[ "$n" = 1 ] || fail "the relay trimmed $n times for one disconnect"
	pass "the relay returned freed memory once after $AGENTS agents left"
else
	fail "no trim after $AGENTS agents left: $(grep -c disconnected "$T/relay.log") disconnects logged"
fi
finish
