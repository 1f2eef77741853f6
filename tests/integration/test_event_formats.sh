#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Event formats 2 and 3 end to end (issue 19 item 2, docs/architecture.md
# "Event formats"): file -> logferry-agent (spool segments of format 3, names
# and origin in each segment's Dict, the NGINX fields packed by key id) ->
# mutual TLS -> logferry-relay with kafka.format protobuf -> mock Kafka.
# Each record is one Event on its own, so an event that referred to its
# segment's Dict must arrive encoded again with its field names and source
# in it, never as ids a consumer cannot read.
. "$(dirname "$0")/lib.sh"

need kcat openssl
make_certs
start_kafka
run=$(date +%s)$$
stream=formats_$run
kafka_topic "logs.$stream" 1
port=$(free_port)
rcfg=$(relay_config relay "$port")
sed -i "s/^  delivery_timeout: 5s$/&\n  format: protobuf/" "$rcfg"
start_relay relay "$rcfg"
nginx_lines "$T/access.log" 20 1
acfg=$(agent_config agent web-01 web-01 "$stream" "$T/access.log" "$port")
start agent "$LOGFERRY_AGENT" -c "$acfg"
agent=$LF_PID

# The records' value sizes, one per line, until all 20 are in.
n=0
for ((i = 0; i < 60; i++)); do
	timeout -k 5 60 kcat -C -b "$KAFKA_BOOT" -t "logs.$stream" -o beginning -e -q -f '%S\n' \
		>"$T/sizes" 2>"$T/sizes.err"
	n=$(wc -l <"$T/sizes")
	[ "$n" -ge 20 ] && break
	sleep 1
done
[ "$n" = 20 ] && pass "20 lines arrived as 20 protobuf records" || fail "$n records of 20 arrived"

timeout -k 5 60 kcat -C -b "$KAFKA_BOOT" -t "logs.$stream" -o beginning -e -q -f '%s' \
	>"$T/values" 2>"$T/values.err"
names=$(grep -a -o 'http_user_agent' "$T/values" | wc -l)
sources=$(grep -a -o -F "$T/access.log" "$T/values" | wc -l)
[ "$names" = 20 ] && pass "every record names its fields (encoded again without the segment's Dict)" ||
	fail "$names records of 20 name the field http_user_agent"
[ "$sources" = 20 ] && pass "every record carries its source, not an origin id" ||
	fail "$sources records of 20 carry the source path"
stop_agent "$agent"
finish
