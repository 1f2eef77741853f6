#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real cluster only: kill -9 the leader of a partition the relay is writing
# to, under load. Nothing is lost; the only duplicates are events sent again
# whole (same agent and seq: wire retries), and the agent and relay count
# the retries that made them.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

need_cluster "kills one of its brokers"
start_kafka
make_certs
run=$$
stream=leader_$run
topic=logs.$stream
kafka_topic "$topic" 3

: >"$T/app.log"
watched_pipeline "$stream" "$T/app.log"

# The load: 300000 lines at once, 50000 more right after the kill.
nginx_lines "$T/app.log" 300000 0

# Kill once the relay is writing: Kafka has some of the load, not all.
delivered() {
	metric "$mport" logferry_kafka_delivered_total
}
for _ in $(seq 600); do
	[ "$(delivered)" -ge 10000 ] 2>/dev/null && break
	sleep 0.1
done
at=$(delivered)
[ "${at:-0}" -ge 10000 ] || fail "the relay delivered nothing before the kill"
leader=$("$KAFKA_ADMIN" -b "$KAFKA_BOOT" leader "$topic" 0) || fail "no leader for $topic[0]"
bash "$CLUSTER_SH" kill "$LOGFERRY_KAFKA_CLUSTER" "$leader" || fail "kill -9 of broker $leader failed"
echo "killed broker $leader, the leader of $topic[0], with $at of 300000 events delivered"
[ "${at:-0}" -lt 300000 ] || fail "the load was over before the kill ($at delivered): the test proves nothing"
nginx_lines "$T/app.log" 50000 300000

expect_delivered "$topic" "$T/app.log" 240 "kill -9 of the partition leader under load"
summary=$(check_delivered "$T/app.log" "$T/dump")
dups=$(echo "$summary" | sed -n 's/.*, duplicates \([0-9]*\),.*/\1/p')
seqdups=$(echo "$summary" | sed -n 's/.*duplicate (agent, seq) \([0-9]*\)$/\1/p')
[ "${dups:-x}" = "${seqdups:-y}" ] && pass "every duplicate is an event sent again whole ($dups)" ||
	fail "duplicates that are not wire retries: $summary"
retries=$(metric "$amport" logferry_shipper_acks_retry_total)
reconnects=$(metric "$amport" logferry_shipper_reconnects_total)
if [ "${dups:-0}" -gt 0 ]; then
	[ "${retries:-0}" -ge 1 ] || [ "${reconnects:-0}" -ge 1 ] &&
		pass "the retries behind the $dups duplicates are counted: acks_retry $retries, reconnects $reconnects" ||
		fail "$dups duplicates, but no retry counted (acks_retry ${retries:-?}, reconnects ${reconnects:-?})"
fi

# Leave the cluster whole for the next test.
bash "$CLUSTER_SH" up "$LOGFERRY_KAFKA_CLUSTER" "$leader" || fail "broker $leader did not come back"
stop_agent "$agent"
finish
