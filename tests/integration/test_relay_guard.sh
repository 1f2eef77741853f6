#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The relay against bad peers and a Kafka outage (docs/architecture.md guarantees 3
# and 4): an agent with a certificate from another CA, an agent claiming
# another agent's id, plaintext garbage and garbage frames after a valid
# TLS handshake are all refused while a good agent keeps delivering; while
# every broker is down and the agent keeps sending, the relay's memory
# stays within its memory_limit.
. "$(dirname "$0")/lib.sh"

need kcat openssl
make_certs
start_kafka
run=$(date +%s)$$

stream=guard_$run
kafka_topic "logs.$stream" 16
port=$(free_port)
rcfg=$(relay_config relay-g "$port" "memory_limit: 32MiB")
start_relay relay "$rcfg"
relay=$LF_PID

# The good agent follows a file that grows the whole time.
: >"$T/good.log"
good_cfg=$(agent_config agent-good web-01 web-01 "$stream" "$T/good.log" "$port")
start agent-good "$LOGFERRY_AGENT" -c "$good_cfg"
good=$LF_PID
nginx_lines "$T/good.log" 5000 1

# A certificate from another CA: the TLS handshake fails, logged with the reason.
bad_cfg=$(agent_config agent-intruder intruder intruder "$stream" "$T/good.log" "$port")
start agent-intruder "$LOGFERRY_AGENT" -c "$bad_cfg"
intruder=$LF_PID
wait_log "$T/relay.log" 'subject "CN=intruder"' &&
	pass "certificate of another CA refused: $(grep -m1 'CN=intruder' "$T/relay.log" | cut -c1-200)" ||
	fail "the relay did not log the intruder's certificate"
nginx_lines "$T/good.log" 5000 10000

# A valid certificate (web-02) whose peer claims to be web-01. logferry-agent
# itself refuses to start so (--check), so the Hello is written by hand:
# length 12, Frame{hello: Hello{protocol_version: 1, agent_id: "web-01"}}.
printf '\000\000\000\014\012\012\010\001\022\006web-01' >"$T/liar-hello"
(cat "$T/liar-hello"; wait_log "$T/relay.log" "refused: agent id 'web-01'") |
	timeout -k 5 90 openssl s_client -quiet -connect "$LF_IP:$port" \
	-cert "$T/certs/web-02.crt" -cert_chain "$T/certs/web-02-chain.crt" -key "$T/certs/web-02.key" \
	-CAfile "$T/certs/ca.crt" >/dev/null 2>&1
wait_log "$T/relay.log" "refused: agent id 'web-01' does not match its certificate's common name 'web-02'" 1 &&
	pass "an agent claiming another agent's id is refused" || fail "the id claim was not refused"
nginx_lines "$T/good.log" 5000 20000

# Plaintext garbage on the TLS port; the connection stays open until the
# relay has said what it thinks of it.
{ printf 'GET / HTTP/1.1\r\nHost: relay\r\n\r\n'; head -c 5000 /dev/urandom; } >"$T/garbage"
exec 3<>"/dev/tcp/$LF_IP/$port" && { cat "$T/garbage" >&3; } 2>/dev/null
wait_log "$T/relay.log" "the peer does not speak TLS" &&
	pass "plaintext garbage refused: $(grep -m1 'the peer does not speak TLS' "$T/relay.log" | cut -c1-200)" ||
	fail "plaintext garbage not logged as such"
exec 3>&-

# Garbage frames after a valid handshake (web-02's certificate). openssl's
# input stays open until the relay has refused them: at its end s_client
# would close the connection, maybe before the frames were read.
printf '\000\000\000\010\377\377\377\377\377\377\377\377' >"$T/frames"
(cat "$T/frames"; wait_log "$T/relay.log" "protocol error: malformed frame") |
	timeout -k 5 90 openssl s_client -quiet -connect "$LF_IP:$port" \
	-cert "$T/certs/web-02.crt" -cert_chain "$T/certs/web-02-chain.crt" -key "$T/certs/web-02.key" \
	-CAfile "$T/certs/ca.crt" >/dev/null 2>&1
wait_log "$T/relay.log" "protocol error: malformed frame" 1 &&
	pass "garbage frames after the handshake close that connection: $(grep -m1 'protocol error' "$T/relay.log" | cut -c1-160)" ||
	fail "garbage frames not refused"

nginx_lines "$T/good.log" 5000 30000
expect_delivered "logs.$stream" "$T/good.log" 180 "the good agent kept delivering"
kill -TERM "$intruder"; wait_exit "$intruder"

# ---- memory while every broker is down and the agent keeps sending ----
if kafka_mock; then
	rss() { awk '/^RssAnon:/ { print $2 }' "/proc/$relay/status"; }
	base=$(rss)
	kafka_ctl down -1
	nginx_lines "$T/good.log" 300000 100000
	peak=$base
	for _ in $(seq 60); do
		r=$(rss)
		[ "${r:-0}" -gt "$peak" ] && peak=$r
		sleep 0.25
	done
	limit=$((32 * 1024))
	grew=$((peak - base))
	echo "relay RssAnon: $base KiB before, peak $peak KiB during the outage (memory_limit $limit KiB)"
	if grep -q __asan_init "$LOGFERRY_RELAY"; then
		echo "skip: memory is not measured under AddressSanitizer (its quarantine keeps freed memory)"
	elif [ "$grew" -le "$limit" ]; then
		pass "relay memory stayed within memory_limit while Kafka was down (+$grew KiB)"
	else
		fail "relay memory grew by $grew KiB, above memory_limit ($limit KiB)"
	fi
	kafka_ctl up -1
	expect_delivered "logs.$stream" "$T/good.log" 180 "after the outage everything arrived"
else
	echo "skip: the outage needs the mock cluster (LOGFERRY_TEST_KAFKA is set)"
fi
stop_agent "$good"
kill -TERM "$relay"
wait_exit "$relay" || fail "relay did not stop"
[ "${LF_RC:-}" = 0 ] || fail "relay exited ${LF_RC:-?}"
finish
