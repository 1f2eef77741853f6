#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The metrics endpoints of both daemons (metrics.listen), read with curl:
# the counters agree with what went through the pipeline, the text is
# Prometheus' exposition format, /health says what is wrong, and both keep
# answering while Kafka is down and while the agent's spool is full
# (docs/lessons.md "Backpressure and stalls").
. "$(dirname "$0")/lib.sh"

need kcat openssl curl
W="python3 $top_srcdir/tests/tools/logwriter.py"
make_certs
start_kafka
run=$(date +%s)$$

# valid_exposition FILE: every family declared once, HELP and TYPE before
# its samples, every sample line well formed, no sample of an undeclared family.
valid_exposition() {
	python3 - "$1" <<'PY'
import re, sys
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? ([0-9]+(\.[0-9]+)?)$')
helped, typed, current, errors = set(), set(), None, []
for n, line in enumerate(open(sys.argv[1], encoding='utf-8').read().split('\n')[:-1], 1):
    if line.startswith('# HELP '):
        name = line.split(' ')[2]
        if name in helped:
            errors.append(f'{n}: {name} declared twice')
        helped.add(name)
        current = name
    elif line.startswith('# TYPE '):
        _, _, name, kind = line.split(' ')
        if name != current or kind not in ('counter', 'gauge'):
            errors.append(f'{n}: bad TYPE line: {line}')
        typed.add(name)
    else:
        m = sample.match(line)
        if not m:
            errors.append(f'{n}: malformed: {line}')
        elif m.group(1) != current or current not in typed:
            errors.append(f'{n}: sample outside its family: {line}')
print('; '.join(errors[:5]) if errors else f'{len(helped)} families')
sys.exit(1 if errors else 0)
PY
}

# ---- the pipeline's counters ----
stream=metrics_$run
kafka_topic "logs.$stream" 16
port=$(free_port)
rport=$(free_port)
aport=$(free_port)
rcfg=$(relay_config relay-m "$port" "metrics: {listen: $LF_IP:$rport}")
start_relay relay "$rcfg"
relay=$LF_PID
nginx_lines "$T/m.log" 5000 1
acfg=$(agent_config agent-m web-01 web-01 "$stream" "$T/m.log" "$port")
echo "metrics: {listen: $LF_IP:$aport}" >>"$acfg"
# One source of every other type too, so that every family is exported.
{
	sed -n '1,/^sources:/p' "$acfg"
	echo "  - {name: sys-m, type: syslog, listen: [udp://$LF_IP:$(free_port)]}"
	echo "  - {name: app-m, type: http, listen: [$LF_IP:$(free_port)]}"
	sed '1,/^sources:/d' "$acfg"
} >"$acfg.all" && mv "$acfg.all" "$acfg"
start agent "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID
wait_log "$T/agent.log" "serving /metrics and /health on http://$LF_IP:$aport" 60 ||
	fail "agent: no metrics endpoint: $(tail -3 "$T/agent.log")"
grep -q "serving /metrics and /health on http://$LF_IP:$rport" "$T/relay.log" ||
	fail "relay: no metrics endpoint: $(tail -3 "$T/relay.log")"
expect_delivered "logs.$stream" "$T/m.log" 60 "5000 lines delivered"
# Acks delete: the spool empties once the relay's Acks are in.
wait_metric "$aport" logferry_spool_events -eq 0 ||
	fail "agent: the spool did not empty"
for kv in "logferry_file_lines_total{source=\"$stream\"} 5000" \
	"logferry_spool_events_committed_total 5000" "logferry_spool_events_deleted_total 5000" \
	"logferry_shipper_connected{relay=\"$LF_IP:$port\"} 1" "logferry_spool_full 0" \
	"logferry_file_files_open{source=\"$stream\"} 1"; do
	v=$(metric "$aport" "${kv% *}")
	[ "$v" = "${kv##* }" ] || fail "agent: ${kv% *} is ${v:-absent}, expected ${kv##* }"
done
[ "$(metric "$aport" logferry_shipper_acks_ok_total)" -ge 1 ] || fail "agent: no Ack OK counted"
[ "$(metric "$aport" process_resident_memory_bytes)" -gt 1000000 ] || fail "agent: no process memory"
for kv in "logferry_relay_events_total 5000" "logferry_kafka_delivered_total 5000" \
	"logferry_relay_connections 1" "logferry_relay_acks_retry_total 0" \
	"logferry_relay_info{id=\"relay-m\",version=\"$(sed -n 's/.*relay \([0-9.]*\) started.*/\1/p' "$T/relay.log" | head -1)\"} 1"; do
	v=$(metric "$rport" "${kv% *}")
	[ "$v" = "${kv##* }" ] || fail "relay: ${kv% *} is ${v:-absent}, expected ${kv##* }"
done
pass "the counters of both daemons match the 5000 lines delivered"

# documented FILE: the logferry_ families of exposition FILE that the
# agent's man page does not name (its lists such as logferry_http_{a,b}_total expanded).
documented() {
	python3 - "$1" "$top_srcdir/docs/logferry-agent.8" <<'PY'
import re, sys
page = re.sub(r'\\f[BIR]', '', open(sys.argv[2], encoding='utf-8').read())
named = set()
for pre, alts, post in re.findall(r'(logferry_\w*)\{([\w,]+)\}(\w*)', page):
    named.update(pre + a + post for a in alts.split(','))
named.update(re.findall(r'logferry_\w+', page))
families = re.findall(r'^# TYPE (logferry_\w+) ', open(sys.argv[1], encoding='utf-8').read(), re.M)
print(' '.join(f for f in families if f not in named))
PY
}

get "$aport" /metrics >"$T/families"
for f in logferry_http_spool_waits_total logferry_file_fields_dropped_total \
	logferry_syslog_fields_dropped_total logferry_syslog_paused; do
	grep -q "^# TYPE $f " "$T/families" || fail "agent: no $f in /metrics"
done
missing=$(documented "$T/families")
[ -z "$missing" ] && pass "every source's counters are exported, and every family is in logferry-agent(8)" ||
	fail "agent: families missing from logferry-agent(8): $missing"

for p in "$aport" "$rport"; do
	get "$p" /metrics >"$T/exposition.$p"
	out=$(valid_exposition "$T/exposition.$p") && pass "port $p: valid exposition format ($out)" ||
		fail "port $p: exposition format: $out"
done
head=$(curl -sS --max-time 15 -o /dev/null -D - "http://$LF_IP:$aport/metrics")
echo "$head" | grep -qi '^Content-Type: text/plain; version=0.0.4' || fail "Content-Type: $head"
code=$(curl -s --max-time 15 -o /dev/null -w '%{http_code}' "http://$LF_IP:$aport/nothing")
[ "$code" = 404 ] || fail "GET /nothing answered $code"
get "$aport" /health | grep -q '"status":"ok"' && pass "agent /health: $(get "$aport" /health)" ||
	fail "agent /health: $(get "$aport" /health)"
get "$rport" /health | grep -q '"status":"ok"' && pass "relay /health: $(get "$rport" /health)" ||
	fail "relay /health: $(get "$rport" /health)"

# ---- Kafka down: both answer; the relay says it is degraded ----
if kafka_mock; then
	kafka_ctl down -1
	nginx_lines "$T/m.log" 2000 100000
	# delivery_timeout is 5 s: RETRY answers follow, no OK.
	degraded=
	for _ in $(seq 300); do
		h=$(get "$rport" /health) || break
		case "$h" in *degraded*) degraded=$h; break ;; esac
		sleep 0.2
	done
	[ -n "$degraded" ] && pass "relay /health while Kafka is down: $degraded" ||
		fail "relay /health never degraded while Kafka was down: ${h:-no answer}"
	# /health may say why before any batch failed (librdkafka reports the
	# brokers down first); the RETRY answers follow at delivery_timeout.
	wait_metric "$rport" logferry_relay_acks_retry_total -ge 1 60 || fail "relay: no RETRY counted"
	wait_metric "$rport" logferry_relay_kafka_failing -eq 1 60 || fail "relay: kafka_failing is not 1"
	wait_metric "$aport" logferry_shipper_acks_retry_total -ge 1 60 || fail "agent: no RETRY counted"
	[ "$(metric "$aport" logferry_spool_events)" -ge 1 ] || fail "agent: spool empty during the outage"
	kafka_ctl up -1
	expect_delivered "logs.$stream" "$T/m.log" 60 "after the outage everything arrived"
	wait_metric "$aport" logferry_spool_events -eq 0 || fail "agent: the spool did not empty after the outage"
	wait_metric "$rport" logferry_relay_kafka_failing -eq 0 || fail "relay: kafka_failing after the outage"
	get "$rport" /health | grep -q '"status":"ok"' || fail "relay /health after the outage: $(get "$rport" /health)"
else
	echo "skip: the outage needs the mock cluster (LOGFERRY_TEST_KAFKA is set)"
fi
stop_agent "$agent"
kill -TERM "$relay"
wait_exit "$relay" 60 || fail "relay did not stop"
[ "${LF_RC:-}" = 0 ] || fail "relay exited ${LF_RC:-?}"

# ---- start failures with an endpoint open: exit 1, nothing left open ----
busy=$(free_port)
# The holder says when it holds the port; the agent starts only then.
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind((sys.argv[2],int(sys.argv[1]))); s.listen(); print("holding", flush=True); time.sleep(600)' "$busy" "$LF_IP" >"$T/holder.log" 2>&1 &
holder=$!
LF_PIDS+=($holder)
wait_log "$T/holder.log" '^holding' 60 || fail "the port holder did not bind $LF_IP:$busy"
bcfg=$(agent_config agent-busy web-01 web-01 busy "$T/m.log" "$port")
echo "metrics: {listen: $LF_IP:$busy}" >>"$bcfg"
start agent-busy "$LOGFERRY_AGENT" -c "$bcfg"
wait_exit "$LF_PID" 60 || fail "agent with a busy metrics port did not exit"
[ "${LF_RC:-}" = 1 ] && grep -q "metrics: cannot listen on $LF_IP:$busy" "$T/agent-busy.log" &&
	! grep -q "open handles" "$T/agent-busy.log" &&
	pass "agent: a busy metrics port is a clean exit 1: $(grep -m1 'cannot listen' "$T/agent-busy.log" | cut -c1-160)" ||
	fail "agent with a busy metrics port exited ${LF_RC:-?}: $(tail -3 "$T/agent-busy.log")"
kill "$holder"
wait "$holder" 2>/dev/null
# The endpoint is up before the producer: a property librdkafka refuses closes it again.
rcfg2=$(relay_config relay-bad "$(free_port)" "metrics: {listen: $LF_IP:$(free_port)}")
sed -i 's/properties: {/properties: {max.in.flight.requests.per.connection: "10", /' "$rcfg2"
start relay-bad "$LOGFERRY_RELAY" -c "$rcfg2"
wait_exit "$LF_PID" 60 || fail "relay with a bad property did not exit"
[ "${LF_RC:-}" = 1 ] && grep -q "serving /metrics" "$T/relay-bad.log" &&
	! grep -q "open handles" "$T/relay-bad.log" &&
	pass "relay: a failed start after the metrics endpoint opened is a clean exit 1" ||
	fail "relay with a bad property exited ${LF_RC:-?}: $(tail -3 "$T/relay-bad.log")"

# ---- a full spool and no relay: the agent answers and says why ----
mkdir -p "$T/full"
$W write "$T/full/app.log" 1 120000 --pad 200 --random   # 25 MiB that zstd cannot shrink
fcfg=$(agent_config agent-full web-01 web-01 full "$T/full/app.log" "$(free_port)")
sed -i 's/format: nginx_combined/format: raw/' "$fcfg"
fport=$(free_port)
printf 'spool: {max_size: 16MiB}\nmetrics: {listen: %s:%s}\n' "$LF_IP" "$fport" >>"$fcfg"
start agent-full "$LOGFERRY_AGENT" -c "$fcfg"
full=$LF_PID
wait_log "$T/agent-full.log" "is full" 180 || fail "the spool never filled"
wait_metric "$fport" logferry_spool_full -eq 1 60 || fail "logferry_spool_full is not 1"
h=$(get "$fport" /health)
case "$h" in
*'"status":"degraded"'*'"no relay connected"'*'"spool full"'*) pass "agent /health with a full spool and no relay: $h" ;;
*) fail "agent /health with a full spool and no relay: ${h:-no answer}" ;;
esac
[ "$(metric "$fport" 'logferry_shipper_connected{relay="'"$(sed -n 's/.*servers: \[\([0-9.:]*\)\].*/\1/p' "$fcfg")"'"}')" = 0 ] ||
	fail "logferry_shipper_connected is not 0"
wait_metric "$fport" logferry_shipper_reconnects_total -ge 1 60 || fail "no reconnect counted"
stop_agent "$full"
finish
