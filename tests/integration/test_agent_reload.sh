#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# SIGHUP applies a new agent configuration as a whole, like nginx's reload
# (issue 16 item 4): sources added, removed and changed (file positions kept
# by identity: nothing read twice or skipped), the relay list, the log
# level; an invalid file or a listener that cannot bind changes nothing.
# Lines flow the whole time; in the end every line written arrived, and no
# line twice under two sequence numbers (a line spooled twice).
. "$(dirname "$0")/lib.sh"

need kcat openssl logger
make_certs
start_kafka
run=$(date +%s)$$
stream=areload_$run
kafka_topic "logs.$stream" 16
kafka_topic "logs.sys$stream" 4

port1=$(free_port)
port2=$(free_port)
mport=$(free_port)
sport=$(free_port)
sport2=$(free_port)
hport=$(free_port)
start_relay relay1 "$(relay_config relay-1 "$port1")"
start_relay relay2 "$(relay_config relay-2 "$port2")"

# agent_yaml LOG_LEVEL RELAY_PORT SOURCES_YAML: the agent's configuration.
cfg=$T/agent.yaml
agent_yaml() {
	cat >"$cfg.new" <<CONF
id: web-01
data_dir: $T/agent
log_level: $1
metrics: {listen: $LF_IP:$mport}
sources:
$3
relays:
  servers: [$LF_IP:$2]
  tls: {ca_file: $T/certs/ca.crt, cert_file: $T/certs/web-01-chain.crt, key_file: $T/certs/web-01.key}
  reconnect_min: 50ms
  reconnect_max: 1s
  ping_interval: 1s
  ping_timeout: 3s
CONF
	mv "$cfg.new" "$cfg"
}
src_a_nginx="  - {name: a, type: file, stream: $stream, paths: [$T/a.log], format: nginx_combined}"
src_a_raw="  - {name: a, type: file, stream: $stream, paths: [$T/a.log], format: raw}"
src_b="  - {name: b, type: file, stream: $stream, paths: [$T/b.log]}"
src_sys="  - {name: sys, type: syslog, stream: sys$stream, listen: [udp://$LF_IP:$sport]}"
src_sys_busy="  - {name: sys, type: syslog, stream: sys$stream, listen: [tcp://$LF_IP:$port1]}"
src_http="  - {name: h, type: http, stream: sys$stream, listen: [$LF_IP:$hport]}"
src_http_big="  - {name: h, type: http, stream: sys$stream, listen: [$LF_IP:$hport], max_body_size: 16MiB}"
src_sys_moved="  - {name: sys, type: syslog, stream: sys$stream, listen: [udp://$LF_IP:$sport2]}"

# reload WHAT: SIGHUP, then waits until the agent says this reload is over:
# applied (once every source is started), or refused.
done_re='SIGHUP: (applied|.*running configuration stays)'
hups=0
reload() {
	local i
	hups=$((hups + 1))
	kill -HUP "$agent"
	for ((i = 0; i < 1200; i++)); do
		[ "$(grep -Ec "$done_re" "$T/agent.log")" -ge "$hups" ] && return 0
		sleep 0.05
	done
	fail "$1: the reload did not finish: $(tail -3 "$T/agent.log")"
}

: >"$T/a.log"
nginx_lines "$T/b.log" 500 500000
agent_yaml info "$port1" "$src_a_nginx"
start agent "$LOGFERRY_AGENT" -c "$cfg"
agent=$LF_PID
wait_log "$T/agent.log" "relay $LF_IP:$port1: connected to" || fail "agent did not connect: $(tail -3 "$T/agent.log")"

# A writer appends to a.log the whole time (its lines' ids count up).
start writer bash -c "i=1; while :; do
	awk -v n=20 -v first=\$i 'BEGIN { for (k = first; k < first + n; k++)
		printf \"10.1.%d.%d - - [25/Nov/2026:10:00:%02d +0000] \\\"GET /a/%d HTTP/1.1\\\" 200 %d \\\"-\\\" \\\"w\\\"\\n\",
		k % 256, k % 200, k % 60, k, 500 + k % 1000 }' >>'$T/a.log'
	i=\$((i + 20)); sleep 0.02; done"
writer=$LF_PID
wait_metric "$mport" 'logferry_file_lines_total{source="a"}' -ge 100 ||
	fail "source a reads nothing"

# (1) A file source added: it starts, the running one goes on untouched.
agent_yaml info "$port1" "$src_a_nginx
$src_b"
reload "adding source b"
grep -q "SIGHUP: source b: added" "$T/agent.log" && pass "a file source added on SIGHUP starts" ||
	fail "source b not added: $(tail -3 "$T/agent.log")"
wait_metric "$mport" 'logferry_file_lines_total{source="b"}' -ge 500 ||
	fail "source b did not read b.log"
grep -q "SIGHUP: source a" "$T/agent.log" && fail "source a was touched though unchanged" ||
	pass "an unchanged source keeps running untouched"

# (2) That source removed: it stops; what it read is in the spool.
agent_yaml info "$port1" "$src_a_nginx"
reload "removing source b"
grep -q "SIGHUP: source b: removed" "$T/agent.log" && pass "a file source removed on SIGHUP stops" ||
	fail "source b not removed: $(tail -3 "$T/agent.log")"
[ -z "$(metric "$mport" 'logferry_file_lines_total{source="b"}')" ] &&
	pass "a removed source is gone from the metrics" || fail "source b still in the metrics"

# (3) A file source changed (format): restarted where it was, by file identity.
agent_yaml info "$port1" "$src_a_raw"
reload "changing source a"
grep -q "SIGHUP: source a: changed; restarting it" "$T/agent.log" &&
	pass "a changed file source restarts with its new settings" || fail "source a not restarted: $(tail -3 "$T/agent.log")"

# (5) log_level debug: debug lines appear.
agent_yaml debug "$port1" "$src_a_raw"
reload "log level"
# (4) The relay list changes: the agent leaves relay 1 for relay 2.
agent_yaml debug "$port2" "$src_a_raw"
reload "relay list"
wait_log "$T/agent.log" "relay $LF_IP:$port2: connected to" && grep -q "agent web-01 connected from" "$T/relay2.log" &&
	pass "a new relay list on SIGHUP moves the agent to relay 2" || fail "not moved to relay 2: $(tail -3 "$T/agent.log")"
grep -Eq "debug.*shipper: relay" "$T/agent.log" && pass "log_level debug on SIGHUP logs debug lines" ||
	fail "no debug line after log_level debug"
before=$(metric "$mport" logferry_shipper_events_sent_total)
wait_metric "$mport" logferry_shipper_events_sent_total -gt "$((before + 100))" ||
	fail "nothing shipped after the move to relay 2"

# (6) An invalid file: the running configuration stays and lines keep flowing.
echo "sources: [ {name: broken" >"$cfg"
reload "invalid file"
grep -q "SIGHUP: $cfg is not valid; the running configuration stays" "$T/agent.log" &&
	pass "an invalid file on SIGHUP keeps the running configuration" || fail "invalid file: $(tail -3 "$T/agent.log")"
before=$(metric "$mport" 'logferry_file_lines_total{source="a"}')
wait_metric "$mport" 'logferry_file_lines_total{source="a"}' -gt "$((before + 100))" ||
	fail "source a stopped reading after the invalid file"

# (7) A syslog source added: logger reaches it.
agent_yaml debug "$port2" "$src_a_raw
$src_sys"
reload "adding a syslog source"
: >"$T/syslog.txt"
for i in $(seq 1 50); do
	logger -d -n "$LF_IP" -P "$sport" "reload-syslog-$run-$i" && echo "reload-syslog-$run-$i" >>"$T/syslog.txt"
done
wait_metric "$mport" 'logferry_syslog_messages_total{source="sys"}' -ge 1 &&
	pass "a syslog source added on SIGHUP receives logger's messages" || fail "syslog source sys received nothing"

# (8) A listener that cannot bind (relay 1's port): the whole reload is
# refused, the source keeps its running listener.
agent_yaml debug "$port2" "$src_a_raw
$src_sys_busy"
reload "a busy address"
wait_log "$T/agent.log" "SIGHUP: rolled back" || fail "the refused reload was not rolled back"
grep -q "SIGHUP: source sys: .*the previous configuration stays" "$T/agent.log" &&
	pass "a listener that cannot bind on SIGHUP keeps the previous configuration" ||
	fail "busy address: $(tail -3 "$T/agent.log")"
for i in $(seq 51 60); do
	logger -d -n "$LF_IP" -P "$sport" "reload-syslog-$run-$i" && echo "reload-syslog-$run-$i" >>"$T/syslog.txt"
done

# (9) A listener that moves: the new address is bound before the old one closes.
agent_yaml debug "$port2" "$src_a_raw
$src_sys_moved"
reload "a moved listener"
for i in $(seq 61 70); do
	logger -d -n "$LF_IP" -P "$sport2" "reload-syslog-$run-$i" && echo "reload-syslog-$run-$i" >>"$T/syslog.txt"
done
wait_metric "$mport" 'logferry_syslog_messages_total{source="sys"}' -ge 10 &&
	pass "a syslog source whose listen address changed receives on the new one" ||
	fail "moved syslog listener received nothing"

# (10) An http source changed on the same address: it closes before it binds again.
agent_yaml debug "$port2" "$src_a_raw
$src_sys_moved
$src_http"
reload "an http source added"
agent_yaml debug "$port2" "$src_a_raw
$src_sys_moved
$src_http_big"
reload "an http source changed on its address"
grep -q "SIGHUP: source h: changed; restarting it once its listeners are closed" "$T/agent.log" &&
	curl -sS --max-time 15 -H 'Content-Type: application/json' -d '{"message":"reload-http"}' \
		"http://$LF_IP:$hport/v1/events" | grep -q '"accepted":1' &&
	pass "an http source changed on its own address listens again with its new settings" ||
	fail "http source h after its change: $(tail -3 "$T/agent.log")"

[ "$(metric "$mport" 'logferry_config_reloads_total{result="applied"}')" = 9 ] &&
	[ "$(metric "$mport" 'logferry_config_reloads_total{result="rejected"}')" = 2 ] &&
	[ -n "$(metric "$mport" logferry_config_last_reload_timestamp_seconds)" ] &&
	pass "the reload counters say 9 applied and 2 rejected" ||
	fail "reload metrics: $(get "$mport" /metrics | grep logferry_config)"

kill -TERM "$writer"
wait_exit "$writer"
cat "$T/a.log" "$T/b.log" >"$T/all.log"
expect_delivered "logs.$stream" "$T/all.log" 120 "every line written during the reloads arrived"
# A syslog event's message is the datagram as received: its parsed MSG is fields.message.
for ((i = 0; i < 60; i++)); do
	kafka_dump "logs.sys$stream" "$T/sysdump"
	got=$(grep -o 'reload-syslog-[0-9]*-[0-9]*"' "$T/sysdump" | sort -u | wc -l)
	[ "$got" -ge "$(wc -l <"$T/syslog.txt")" ] && break
	sleep 1
done
[ "$got" = "$(wc -l <"$T/syslog.txt")" ] && pass "every syslog message sent arrived ($got)" ||
	fail "syslog messages: $got of $(wc -l <"$T/syslog.txt") arrived"
# A line twice under two sequence numbers was spooled twice (read twice).
python3 - "$T/dump" <<'PY' && pass "no line spooled twice across the reloads" || fail "a line was spooled twice"
import collections, sys
seqs = collections.defaultdict(set)
for rec in open(sys.argv[1], 'rb').read().decode('utf-8', 'replace').split('\n'):
    hdr, _, val = rec.partition('\t')
    if not val:
        continue
    h = dict(kv.split('=', 1) for kv in hdr.split(',') if '=' in kv)
    seqs[val.split('"message":', 1)[-1]].add((h.get('logferry-agent'), h.get('logferry-seq')))
twice = [m for m, s in seqs.items() if len(s) > 1]
print(f"{len(twice)} line(s) under two sequence numbers", twice[:3])
sys.exit(1 if twice else 0)
PY
# log_format applies on SIGHUP too: the next lines are JSON.
echo "log_format: json" >>"$cfg"
reload "log format"
tail -1 "$T/agent.log" | grep -q '^{"time":".*"message":"SIGHUP: applied' &&
	pass "log_format json on SIGHUP writes the next lines as JSON" ||
	fail "log_format json after SIGHUP: $(tail -2 "$T/agent.log")"
stop_agent "$agent"
finish
