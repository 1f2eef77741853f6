#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A full filesystem under data_dir (issue 14, item 2): the agent names it
# "disk full" in its log, /health and logferry_spool_disk_full, pauses its
# sources, retries with a backoff, resumes by itself when space is freed,
# and drains without a restart when the relay comes, every line delivered.
# It runs on a 32 MiB tmpfs that the test mounts, so it needs root.
. "$(dirname "$0")/lib.sh"

need kcat curl mount umount
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: mounting a small tmpfs to fill needs root; run make check as root to test a full disk"
	exit 77
fi
disk=$T/disk
mkdir -p "$disk"
mount -t tmpfs -o size=32m,mode=0700 logferry-test "$disk" || {
	echo "SKIP: cannot mount a tmpfs on $disk (no CAP_SYS_ADMIN in this container?)"
	exit 77
}
LF_AFTER_STOP="umount '$disk'"
W="python3 $top_srcdir/tests/tools/logwriter.py"
make_certs
start_kafka
stream=diskfull_$(date +%s)$$
kafka_topic "logs.$stream" 64

# 34 MiB of lines (25 MiB spooled: zstd shrinks the base64 padding to its
# entropy), more than the filesystem holds beside a 12 MiB file that someone
# else wrote there.
$W write "$T/app.log" 1 160000 --pad 200 --random
head -c $((12 << 20)) /dev/zero >"$disk/hog"
port=$(free_port)
aport=$(free_port)
hport=$(free_port)
cfg=$(agent_config agent web-01 web-01 "$stream" "$T/app.log" "$port")
sed -i -e 's/format: nginx_combined/format: raw/' -e "s|data_dir: .*|data_dir: $disk/data|" "$cfg"
# An HTTP source too: its clients must hear "disk full", not "spool full".
sed -i "s|^sources:|sources:\n  - {name: app, type: http, listen: \"$LF_IP:$hport\"}|" "$cfg"
printf 'spool: {max_size: 64MiB}\nmetrics: {listen: %s:%s}\n' "$LF_IP" "$aport" >>"$cfg"
start agent "$LOGFERRY_AGENT" -c "$cfg"
agent=$LF_PID

wait_log "$T/agent.log" "disk full" 60 || fail "the agent never said 'disk full': $(tail -3 "$T/agent.log")"
wait_metric "$aport" logferry_spool_disk_full -eq 1 10 || fail "logferry_spool_disk_full is not 1"
wait_metric "$aport" logferry_spool_full -eq 1 10 || fail "the sources did not pause"
h=$(get "$aport" /health)
case "$h" in
*'"status":"degraded"'*'"disk full"'*'"disk_full":true'*) pass "/health on a full disk: $h" ;;
*) fail "/health on a full disk: ${h:-no answer}" ;;
esac
ans=$(curl -sS --max-time 30 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
	--data '{"message":"on a full disk"}' "http://$LF_IP:$hport/v1/events")
case "$ans" in
*'disk full'*' 503') pass "an HTTP client on a full disk: $ans" ;;
*) fail "an HTTP client on a full disk got: ${ans:-no answer}" ;;
esac
# Paused, not spinning: the writer backs off (up to 5 s) instead of 10 tries a second.
before=$(metric "$aport" logferry_spool_commits_total)
sleep 3
after=$(metric "$aport" logferry_spool_commits_total)
[ "$after" = "$before" ] && pass "nothing committed while the disk is full (commits $after)" ||
	fail "commits went on while the disk is full: $before, then $after"
[ "$(grep -c "commit failed" "$T/agent.log")" -le 3 ] ||
	fail "failed commits logged $(grep -c "commit failed" "$T/agent.log") times"

# Space freed by someone else: the agent takes events again by itself.
committed=$(metric "$aport" logferry_spool_events_committed_total)
rm -f "$disk/hog"
wait_log "$T/agent.log" "has room again" 30 || fail "freed space was not noticed"
wait_metric "$aport" logferry_spool_events_committed_total -gt "$committed" 30 &&
	pass "freed space: the agent spooled more ($committed, then $(metric "$aport" logferry_spool_events_committed_total))" ||
	fail "the agent did not resume after space was freed"

# The relay comes: the spool drains, the source reads the rest.
kafka_follow "logs.$stream" kcat 64
# One partition per record, not sticky runs: the mock keeps ~5 MiB of each.
sed -i 's/properties: {/properties: {sticky.partitioning.linger.ms: "0", /' "$(relay_config relay "$port")"
start_relay relay "$T/relay.yaml"
expect_followed "logs.$stream" "$T/kcat.log" "$T/app.log" 120 "after a full disk: every line arrived"
wait_metric "$aport" logferry_spool_events -eq 0 30 || fail "the spool did not empty"
wait_metric "$aport" logferry_spool_disk_full -eq 0 30 || fail "the agent still says disk full"
wait_metric "$aport" logferry_spool_full -eq 0 10 || fail "the sources are still paused"
get "$aport" /health | grep -q '"disk_full":false' || fail "/health still says disk full"
stop_agent "$agent"
finish
