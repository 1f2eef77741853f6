#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The agent-relay link under failure (issue 14, item 9), with real daemons:
# - an agent whose id does not match its certificate is refused after Hello,
#   and reconnects with the exponential backoff, not every reconnect_min;
# - a short connection_lifetime spreads one agent's connections over both
#   relays, not always the first one listed;
# - a relay stopped with SIGSTOP is given up after ping_timeout, not
#   ping_timeout plus tls.handshake_timeout, and the lines go on through the
#   other relay.
. "$(dirname "$0")/lib.sh"

need kcat openssl curl
make_certs
start_kafka
run=$(date +%s)$$
stream=link_$run
kafka_topic "logs.$stream" 16

pa=$(free_port)
pb=$(free_port)
ma=$(free_port)
rcfg_a=$(relay_config relay-a "$pa" "metrics: {listen: $LF_IP:$ma}")
# Only web-01 may use relay-a: web-02 is refused after each Hello (below).
sed -i 's|\(key_file: [^}]*\)}|\1, allowed_agents: [web-01]}|' "$rcfg_a"
start_relay relay-a "$rcfg_a"
relay_a=$LF_PID
start_relay relay-b "$(relay_config relay-b "$pb")"
relay_b=$LF_PID

# refused COUNT: the agents relay-a refused so far (its metrics).
refused() {
	metric "$ma" logferry_relay_agents_refused_total
}

# ---- a refused agent backs off ----
# web-02, which relay-a does not allow: refused after each Hello. (An agent
# whose id is not its certificate's CN no longer starts.) With
# reconnect_min 200ms and reconnect_max 2s the delays are 100-200, 200-400,
# 400-800, 800-1600, then 1000-2000 ms; the first one of 1000 ms or more
# comes by the 6th attempt. Without a backoff (every 200 ms) it never comes.
: >"$T/liar.log"
liar_cfg=$(agent_config agent-liar web-02 web-02 "$stream" "$T/liar.log" "$pa")
sed -i -e 's/reconnect_min: 50ms/reconnect_min: 200ms/' -e 's/reconnect_max: 1s/reconnect_max: 2s/' "$liar_cfg"
start agent-liar "$LOGFERRY_AGENT" -c "$liar_cfg"
liar=$LF_PID
if wait_log "$T/agent-liar.log" 'before Welcome .*; trying .* in [0-9]{4,} ms \(attempt [0-9]+\)' 20; then
	n=$(refused)
	attempts=$(grep -Ec 'refused the connection before Welcome' "$T/agent-liar.log")
	[ "${n:-0}" -ge 4 ] && [ "${n:-99}" -le 7 ] &&
		pass "refused agent backs off: $n refusals until its delay reached 1 s ($attempts logged)" ||
		fail "refused agent: ${n:-?} refusals until its delay reached 1 s, expected 4 to 7"
	# Every logged delay is within the backoff of its attempt: [d/2, d],
	# d = min(200 ms * 2^(attempt-2), 2 s).
	bad=$(sed -nE 's/.*before Welcome .*; trying .* in ([0-9]+) ms \(attempt ([0-9]+)\).*/\1 \2/p' \
		"$T/agent-liar.log" | awk '{
			d = 200 * 2 ^ ($2 - 2); if (d > 2000) d = 2000
			if ($1 < int(d / 2) || $1 > d) print "attempt " $2 ": " $1 " ms"
		}')
	[ -z "$bad" ] && pass "every refusal's delay follows the backoff" ||
		fail "delays outside the backoff: $bad"
	grep -q "agent id 'web-02' is not in tls.allowed_agents" "$T/agent-liar.log" &&
		pass "the agent logs the relay's reason" || fail "the relay's reason is not in the agent's log"
else
	fail "refused agent: no delay of 1 s or more after $(refused) refusals: $(grep -m3 -E 'Goodbye|refused' "$T/agent-liar.log" | cut -c1-220)"
fi
stop_agent "$liar"

# ---- connection_lifetime spreads connections over both relays ----
: >"$T/spread.log"
spread_cfg=$(agent_config agent-spread web-01 web-01 "$stream" "$T/spread.log" "$pa" "$pb")
echo "  connection_lifetime: 300ms" >>"$spread_cfg"
start agent-spread "$LOGFERRY_AGENT" -c "$spread_cfg"
spread=$LF_PID
wait_log "$T/relay-a.log" "agent web-01 connected from" 30 &&
	wait_log "$T/relay-b.log" "agent web-01 connected from" 30 &&
	pass "both relays got connections: $(grep -c 'agent web-01 connected' "$T/relay-a.log") and $(grep -c 'agent web-01 connected' "$T/relay-b.log")" ||
	fail "one relay got no connection: relay-a $(grep -c 'agent web-01 connected' "$T/relay-a.log"), relay-b $(grep -c 'agent web-01 connected' "$T/relay-b.log")"
stop_agent "$spread"

# ---- a stopped relay is given up after ping_timeout ----
# ping_timeout 3s; a graceful close would wait handshake_timeout (60s) more.
# The bounds below leave a loaded machine room and still tell the two apart.
: >"$T/good.log"
good_cfg=$(agent_config agent-good web-01 web-01 "$stream" "$T/good.log" "$pa" "$pb")
sed -i 's|key_file: \([^}]*\)}|key_file: \1, handshake_timeout: 60s}|' "$good_cfg"
grep -q 'handshake_timeout: 60s' "$good_cfg" || fail "could not set handshake_timeout"
start agent-good "$LOGFERRY_AGENT" -c "$good_cfg"
good=$LF_PID
nginx_lines "$T/good.log" 2000 1
wait_log "$T/agent-good.log" "connected to relay-[ab]" 60 || fail "the agent did not connect"
first=$(sed -nE 's/.*: connected to (relay-[ab]) .*/\1/p' "$T/agent-good.log" | head -1)
if [ "$first" = relay-a ]; then stopped=$relay_a other=relay-b; else stopped=$relay_b other=relay-a; fi
kill -STOP "$stopped"
nginx_lines "$T/good.log" 2000 2001
if wait_log "$T/agent-good.log" "considered dead" 40; then
	line=$(grep -m1 "considered dead" "$T/agent-good.log")
	silence=$(sed -nE 's/.*nothing received from the relay for ([0-9]+) ms.*/\1/p' <<<"$line")
	[ "${silence:-0}" -ge 3000 ] && [ "${silence:-99999}" -lt 30000 ] &&
		pass "the stopped $first was given up after $silence ms of silence (ping_timeout 3000 ms)" ||
		fail "silence of ${silence:-?} ms reported: $line"
	wait_log "$T/agent-good.log" "connected to $other" 60 &&
		pass "the agent moved on to $other" || fail "the agent did not connect to $other"
else
	fail "the stopped $first was not given up within 40 s (ping_timeout 3s, handshake_timeout 60s): $(tail -2 "$T/agent-good.log" | cut -c1-200)"
fi
expect_delivered "logs.$stream" "$T/good.log" 60 "lines written while $first was stopped arrived through $other"
kill -CONT "$stopped"
stop_agent "$good"
finish
