#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The whole pipeline with real processes: file -> logferry-agent -> mutual
# TLS -> logferry-relay -> Kafka (the mock cluster, or LOGFERRY_TEST_KAFKA),
# read back with kcat. docs/architecture.md guarantees 1 and 2: every line arrives,
# exactly once in the normal case, and nothing is lost when the agent or the
# relay is killed or every broker is down (until the relay answers RETRY).
. "$(dirname "$0")/lib.sh"

need kcat openssl
make_certs
start_kafka
run=$(date +%s)$$     # topics of their own on a real cluster

# ---- every line of a 200k-line file exactly once ----
stream=exact_$run
kafka_topic "logs.$stream" 16
port=$(free_port)
rcfg=$(relay_config relay-1 "$port")
start_relay relay "$rcfg"
relay=$LF_PID
nginx_lines "$T/exact.log" 200000 1
acfg=$(agent_config agent-exact web-01 web-01 "$stream" "$T/exact.log" "$port")
start agent-exact "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
if wait_delivered "logs.$stream" "$T/exact.log" 300; then
	# Once the agent has stopped with an empty spool it has nothing left
	# to send again: a duplicate would be in Kafka by now.
	stop_agent "$agent"
	left=$(spooled "$acfg")
	[ "${left:-x}" = 0 ] && pass "the agent's spool is empty once Kafka has everything" ||
		fail "spool still holds ${left:-?} events"
	kafka_dump "logs.$stream" "$T/dump"
	if out=$(check_delivered "$T/exact.log" "$T/dump" exact); then
		pass "200000 lines exactly once: $out"
	else
		fail "200000 lines not exactly once: $out"
	fi
else
	fail "200000 lines not delivered: $(check_delivered "$T/exact.log" "$T/dump")"
	stop_agent "$agent"
fi
grep -q 'agent web-01 connected from' "$T/relay.log" || fail "relay did not log the agent"

# ---- kill -9 of the agent while it ships ----
stream=agentkill_$run
kafka_topic "logs.$stream" 16
nginx_lines "$T/agentkill.log" 300000 1000000
acfg=$(agent_config agent-kill web-01 web-01 "$stream" "$T/agentkill.log" "$port")
start agent-kill "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
# Killed once it ships: connected, with 300000 lines to read.
wait_log "$T/agent-kill.log" "relay $LF_IP:$port: connected to" ||
	fail "agent-kill did not connect: $(tail -3 "$T/agent-kill.log")"
kill -KILL "$agent"
wait "$agent" 2>/dev/null
echo "at the kill the spool held $(spooled "$acfg") events not yet acknowledged"
nginx_lines "$T/agentkill.log" 50000 1300000
start agent-kill2 "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
expect_delivered "logs.$stream" "$T/agentkill.log" 300 "kill -9 of the agent lost nothing"
stop_agent "$agent"

# ---- all brokers down for 10 s ----
if kafka_mock; then
	stream=outage_$run
	kafka_topic "logs.$stream" 16
	acfg=$(agent_config agent-outage web-01 web-01 "$stream" "$T/outage.log" "$port")
	nginx_lines "$T/outage.log" 20000 2000000
	# Down until the relay has answered RETRY (delivery_timeout, 5 s) and
	# the lines written during the outage are in the agent's spool.
	kafka_ctl down -1
	start agent-outage "$LOGFERRY_AGENT" -c "$acfg"
	agent=$LF_PID
	wait_log "$T/agent-outage.log" "not delivered yet" 120 ||
		fail "no RETRY while every broker was down: $(tail -3 "$T/agent-outage.log")"
	nginx_lines "$T/outage.log" 30000 2100000
	wait_spooled "$acfg" 50000 || fail "the lines written during the outage were not spooled"
	kafka_ctl up -1
	expect_delivered "logs.$stream" "$T/outage.log" 300 "all brokers down until RETRY lost nothing"
	stop_agent "$agent"
else
	echo "skip: brokers down/up needs the mock cluster (LOGFERRY_TEST_KAFKA is set)"
fi

kill -TERM "$relay"
wait_exit "$relay" 60 || fail "relay did not stop"
[ "${LF_RC:-}" = 0 ] && pass "relay stops cleanly with exit 0" || fail "relay exited ${LF_RC:-?}"

# ---- kill -9 of the relay while the agent ships ----
stream=relaykill_$run
kafka_topic "logs.$stream" 16
port=$(free_port)
rcfg=$(relay_config relay-2 "$port")
start_relay relay-2 "$rcfg"
relay=$LF_PID
nginx_lines "$T/relaykill.log" 150000 3000000
acfg=$(agent_config agent-rk web-01 web-01 "$stream" "$T/relaykill.log" "$port")
start agent-rk "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
# Killed once the agent ships to it; restarted once the agent has seen it go.
wait_log "$T/agent-rk.log" "relay $LF_IP:$port: connected to" ||
	fail "agent-rk did not connect: $(tail -3 "$T/agent-rk.log")"
kill -KILL "$relay"
wait "$relay" 2>/dev/null
nginx_lines "$T/relaykill.log" 20000 3200000
wait_log "$T/agent-rk.log" "connection lost|no connection" ||
	fail "agent-rk did not notice the relay's death: $(tail -3 "$T/agent-rk.log")"
start_relay relay-2b "$rcfg"
relay=$LF_PID
expect_delivered "logs.$stream" "$T/relaykill.log" 300 "kill -9 of the relay lost nothing"
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 60 || fail "relay-2 did not stop"
finish
