#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# kafka.headers through the real daemons (file -> agent -> relay -> mock
# Kafka, read back with kcat's %h), docs/logferry-relay.8 KAFKA, Headers:
# - with kafka.headers: false the records carry no header at all, not even
#   logferry-stream while a dead-letter topic is set;
# - an event the relay sets aside (a topic kafka.allowed_topics does not
#   allow) still arrives in the dead-letter topic with every header: why,
#   where it was going, its stream, agent and seq;
# - after a SIGHUP with kafka.headers: true (the default) the next records
#   carry logferry-agent and logferry-seq again.
. "$(dirname "$0")/lib.sh"

need kcat openssl
make_certs
start_kafka
run=$(date +%s)$$
ok=hdr_$run
other=hdrno_$run
dead=logs.dead_$run
kafka_topic "logs.$ok" 1
kafka_topic "logs.$other" 1
kafka_topic "$dead" 1

port=$(free_port)
# write_relay_config HEADERS: the relay's configuration with kafka.headers HEADERS.
write_relay_config() {
	rcfg=$(relay_config relay "$port" "  headers: $1
  dead_letter_topic: $dead
  allowed_topics:
    - {agents: web-01, topics: [\"logs.$ok\"]}")
}
write_relay_config false
"$LOGFERRY_RELAY" -c "$rcfg" --check >"$T/relay-check.log" 2>&1 ||
	fail "relay --check refuses kafka.headers: false: $(cat "$T/relay-check.log")"
"$LOGFERRY_RELAY" -c "$rcfg" --dump-config 2>&1 | grep -q "^  headers: false" ||
	fail "--dump-config does not show kafka.headers: false"
start_relay relay "$rcfg"
relay=$LF_PID

mkdir -p "$T/log"
nginx_lines "$T/log/ok.log" 5 1
nginx_lines "$T/log/other.log" 1 100
acfg=$(agent_config agent web-01 web-01 "$ok" "$T/log/ok.log" "$port")
sed -i "s|^  - {name: $ok, .*|&\n  - {name: $other, type: file, paths: [$T/log/other.log], format: nginx_combined}|" "$acfg"
start agent "$LOGFERRY_AGENT" -c "$acfg"
wait_log "$T/agent.log" "connected to" 60 || fail "agent did not connect: $(tail -3 "$T/agent.log")"

# records_with TOPIC N OUT: OUT holds TOPIC's records (kafka_dump) once there are N, within 60 s.
records_with() {
	local i
	for ((i = 0; i < 60; i++)); do
		kafka_dump "$1" "$3"
		[ "$(grep -c . "$3")" -ge "$2" ] && return 0
		sleep 1
	done
	fail "$1: $(grep -c . "$3") records, expected $2: $(tail -2 "$T/relay.log")"
	return 1
}

# ---- test_records_carry_no_header_when_headers_are_off ----
if records_with "logs.$ok" 5 "$T/off"; then
	if [ "$(cut -f1 "$T/off" | grep -c .)" -eq 0 ] && check_delivered "$T/log/ok.log" "$T/off" exact >/dev/null; then
		pass "kafka.headers: false: 5 records, none with a header"
	else
		fail "kafka.headers: false: records with headers: $(cut -f1 "$T/off" | sort | uniq -c | head -3)"
	fi
fi

# ---- test_a_record_set_aside_keeps_every_header_when_headers_are_off ----
if records_with "$dead" 1 "$T/dead"; then
	h=$(cut -f1 "$T/dead")
	miss=
	for want in "logferry-agent=web-01" "logferry-seq=" "logferry-error=topic logs.$other not allowed" \
		"logferry-original-topic=logs.$other" "logferry-original-stream=$other"; do
		case $h in *"$want"*) ;; *) miss="$miss $want" ;; esac
	done
	[ -z "$miss" ] && pass "a record set aside keeps its headers with kafka.headers: false: $h" ||
		fail "dead-letter record lacks$miss: $h"
fi

# ---- test_headers_are_back_after_a_reload_with_headers_on ----
write_relay_config true
before=$(grep -c "SIGHUP: applied" "$T/relay.log")
kill -HUP "$relay"
for ((i = 0; i < 600; i++)); do
	[ "$(grep -c "SIGHUP: applied" "$T/relay.log")" -gt "$before" ] && break
	sleep 0.1
done
[ "$(grep -c "SIGHUP: applied" "$T/relay.log")" -gt "$before" ] ||
	fail "no 'SIGHUP: applied' after SIGHUP: $(tail -3 "$T/relay.log")"
nginx_lines "$T/log/ok.log" 3 6
if records_with "logs.$ok" 8 "$T/on"; then
	on=$(tail -n 3 "$T/on" | cut -f1 | grep -c "logferry-agent=web-01,logferry-seq=[0-9]")
	[ "$on" -eq 3 ] && pass "after a reload with kafka.headers: true the records carry agent and seq: $(tail -n 1 "$T/on" | cut -f1)" ||
		fail "after the reload, $on of 3 records carry logferry-agent and logferry-seq: $(tail -n 3 "$T/on" | cut -f1)"
fi
finish
