#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# multiline on file sources: real Java and Python stack traces become one
# event each, whether written at once or in pieces, the last one shipped
# after flush_timeout; an agent killed -9 with an event half gathered ships
# it whole, once, after its restart.
. "$(dirname "$0")/lib.sh"

# ml_config NAME FILE MULTILINE-YAML: sets cfg to the config of an agent
# spooling FILE into $T/NAME.data, with its metrics endpoint on $ML_PORT.
ml_config() {
	local name=$1 file=$2 ml=$3
	ML_PORT=$(free_port)
	cfg=$T/$name.yaml
	cat >"$cfg" <<YAML
id: test-agent
data_dir: $T/$name.data
log_level: debug
spool: {commit_interval: 5ms}
metrics: {listen: "$LF_IP:$ML_PORT"}
sources:
  - name: $name
    type: file
    paths: ["$file"]
    format: raw
    scan_interval: 100ms
    stat_interval: 100ms
    flush_timeout: 300ms
    multiline: $ml
YAML
}

JAVA_1='2026-12-07 01:02:03,456 ERROR [http-nio-8080-exec-7] c.e.shop.OrderController - request failed
org.springframework.web.util.NestedServletException: Request processing failed; nested exception is java.lang.IllegalStateException: order 42 has no lines
	at org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)
	at org.springframework.web.servlet.FrameworkServlet.doPost(FrameworkServlet.java:909)
	at javax.servlet.http.HttpServlet.service(HttpServlet.java:681)
	at org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:227)
Caused by: java.lang.IllegalStateException: order 42 has no lines
	at com.example.shop.Order.total(Order.java:88)
	at com.example.shop.OrderService.checkout(OrderService.java:131)
	at com.example.shop.OrderController.checkout(OrderController.java:57)
	... 12 more
Caused by: java.lang.NullPointerException: Cannot invoke "java.util.List.size()" because "this.lines" is null
	at com.example.shop.Order.lineCount(Order.java:42)
	at com.example.shop.Order.total(Order.java:85)
	... 14 more'
JAVA_2='2026-12-07 01:02:03,470 INFO  [http-nio-8080-exec-8] c.e.shop.OrderController - order 43 paid'
PY_1='2026-12-07 01:02:04,001 ERROR worker: job 7 failed
Traceback (most recent call last):
  File "/srv/app/worker.py", line 41, in run
    value = int(payload["count"])
            ~~~~~~~^^^^^^^^^^^^^^^^
KeyError: '"'"'count'"'"'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/worker.py", line 88, in <module>
    main()
  File "/srv/app/worker.py", line 43, in run
    raise ValueError("job 7 has no count") from None
ValueError: job 7 has no count'
PY_2='2026-12-07 01:02:05,000 INFO worker: job 8 done'
# An uncaught exception on a JVM's stderr (catalina.out, journald): no log
# header, so only the continuation lines tell where the trace ends.
JAVA_STDERR='Exception in thread "main" java.lang.IllegalStateException: order 42 has no lines
	at com.example.shop.Order.total(Order.java:88)
	at com.example.shop.Main.main(Main.java:14)
Caused by: java.lang.NullPointerException: Cannot invoke "java.util.List.size()" because "this.lines" is null
	at com.example.shop.Order.lineCount(Order.java:42)
	at com.example.shop.Order.total(Order.java:85)
	... 1 more'

DATE="{start: '^[0-9]{4}-[0-9]{2}-[0-9]{2}', flush_timeout: 500ms}"

# --- Java and Python traces written at once; the last event comes after flush_timeout
mkdir -p "$T/at_once"
ml_config at_once "$T/at_once/app.log" "$DATE"
printf '%s\n' "$JAVA_1" "$JAVA_2" "$PY_1" "$PY_2" >"$T/at_once/app.log"
printf '%s\n----\n' "$JAVA_1" "$JAVA_2" "$PY_1" "$PY_2" >"$T/at_once.want"
start agent-at_once "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 4 30 || fail "traces at once: the last event never came"
wait_metric "$ML_PORT" 'logferry_file_multiline_flushed_total{source="at_once"}' -ge 1 ||
	fail "traces at once: the flush by timeout is not counted"
wait_metric "$ML_PORT" 'logferry_file_multiline_events_total{source="at_once"}' -eq 2 ||
	fail "traces at once: events of several lines are not counted"
stop_agent "$pid"
expect_spooled_messages "$cfg" "a Java trace with Caused by and ... 12 more, and a chained Python traceback, are one event each; the last one is shipped after flush_timeout" "$T/at_once.want"

# --- a continuation pattern for Java traces, the trace written in pieces
# (half lines included) with pauses shorter than flush_timeout
mkdir -p "$T/pieces"
ml_config pieces "$T/pieces/app.log" "{continuation: '^([[:space:]]|Caused by: )', flush_timeout: 2s}"
: >"$T/pieces/app.log"
start agent-pieces "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_log "$T/agent-pieces.log" "started as" || fail "pieces: agent did not start"
python3 - "$T/pieces/app.log" "$JAVA_STDERR" <<'PY'
import sys, time
text = sys.argv[2] + '\n'
# The writer's own behaviour under test: flushes of 40 bytes, wherever they
# fall (mid-line too), 50 ms apart.
with open(sys.argv[1], 'a') as f:
    for i in range(0, len(text), 40):
        f.write(text[i:i + 40])
        f.flush()
        time.sleep(0.05)
PY
printf '%s\n' "$JAVA_2" >>"$T/pieces/app.log"
printf '%s\n----\n' "$JAVA_STDERR" "$JAVA_2" >"$T/pieces.want"
wait_spooled "$cfg" 2 30 || fail "pieces: the trace did not arrive"
stop_agent "$pid"
expect_spooled_messages "$cfg" "an uncaught Java exception written in 40-byte pieces with pauses is one event (continuation pattern)" "$T/pieces.want"

# --- an event larger than max_bytes is cut and marked; its other lines are skipped
mkdir -p "$T/big"
ml_config big "$T/big/app.log" "{start: '^[0-9]{4}-', flush_timeout: 200ms, max_bytes: 256}"
printf '%s\n' "$JAVA_1" "$JAVA_2" >"$T/big/app.log"
start agent-big "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 2 30 || fail "max_bytes: events did not arrive"
wait_metric "$ML_PORT" 'logferry_file_multiline_truncated_total{source="big"}' -eq 1 ||
	fail "max_bytes: the cut event is not counted"
stop_agent "$pid"
expect_cut_at_max_bytes "$cfg" "$JAVA_1" "$JAVA_2"

# --- kill -9 with an event half gathered: after the restart it is whole, once
mkdir -p "$T/kill"
ml_config kill "$T/kill/app.log" "{start: '^[0-9]{4}-[0-9]{2}-[0-9]{2}', flush_timeout: 1h}"
head -n 1 <<<"$JAVA_2" >"$T/kill/app.log"
head -n 6 <<<"$JAVA_1" >>"$T/kill/app.log"
start agent-kill "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1 30 || fail "kill -9: the first event did not arrive"
wait_metric "$ML_PORT" 'logferry_file_lines_total{source="kill"}' -eq 7 ||
	fail "kill -9: the half trace was not read"
kill -KILL "$pid"
wait_exit "$pid" 30
tail -n +7 <<<"$JAVA_1" >>"$T/kill/app.log"
printf '%s\n' "$PY_1" "$PY_2" >>"$T/kill/app.log"
sed -i 's/flush_timeout: 1h/flush_timeout: 300ms/' "$cfg"
start agent-kill2 "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 4 30 || fail "kill -9: the events after the restart did not arrive"
stop_agent "$pid"
printf '%s\n----\n' "$JAVA_2" "$JAVA_1" "$PY_1" "$PY_2" >"$T/kill.want"
expect_spooled_messages "$cfg" "kill -9 with a trace half gathered: after the restart it is shipped whole, and every event once" "$T/kill.want"

# --- a file deleted with a trace gathered: the trace is whole, shipped at once
# (flush_timeout is an hour)
mkdir -p "$T/gone"
ml_config gone "$T/gone/app.log" "{start: '^[0-9]{4}-[0-9]{2}-[0-9]{2}', flush_timeout: 1h}"
printf '%s\n' "$JAVA_2" "$PY_1" >"$T/gone/app.log"
start agent-gone "$LOGFERRY_AGENT" -c "$cfg"
pid=$LF_PID
wait_spooled "$cfg" 1 30 || fail "deleted file: the first event did not arrive"
wait_metric "$ML_PORT" 'logferry_file_lines_total{source="gone"}' -eq 16 ||
	fail "deleted file: the trace was not read"
rm "$T/gone/app.log"
wait_spooled "$cfg" 2 30 || fail "deleted file: its last event was not shipped"
stop_agent "$pid"
printf '%s\n----\n' "$JAVA_2" "$PY_1" >"$T/gone.want"
expect_spooled_messages "$cfg" "a file deleted with a trace gathered: the trace is shipped whole when the file is released" "$T/gone.want"

finish
