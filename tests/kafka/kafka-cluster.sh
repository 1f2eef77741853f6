#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# kafka-cluster.sh: a real Apache Kafka cluster for the tests, on loopback.
#
#   kafka-cluster.sh fetch                 the pinned Kafka jars (Maven, cached in ~/.m2)
#   kafka-cluster.sh start DIR [NODES]     formats and starts a KRaft cluster of NODES
#                                          (default 3) combined broker+controller nodes
#                                          in DIR; prints "bootstrap=HOST:PORT,..."
#                                          once every broker serves
#   kafka-cluster.sh stop DIR              stops every node of DIR, by PID
#   kafka-cluster.sh kill DIR N            kill -9 of node N (1..NODES)
#   kafka-cluster.sh down DIR N            stops node N (SIGTERM, waits for it)
#   kafka-cluster.sh up DIR N              starts node N again and waits until it serves
#   kafka-cluster.sh env DIR               prints the settings tests use (bootstrap, nodes)
#
# Test-only: Java and Maven never become dependencies of the daemons. Each
# node has its own loopback address (127.X.Y.N, X.Y from this cluster's
# first PID), so nothing else on the machine can hold its ports. Brokers
# refuse to create topics on first use (the tests create theirs), and
# default to replication factor 3 with min.insync.replicas 2. Small heaps
# and the C1 compiler only: three of them run on a 2-core machine.
#
# Two client listeners per node: PLAINTEXT on :9092 (principal ANONYMOUS, a
# super user, so tests need no credentials) and SASL_SSL on :9094 with
# SCRAM-SHA-512 and PLAIN users "relay" (password in DIR/relay.password, and
# no ACL until a test grants one) and "admin" (a super user), TLS from a CA
# in DIR/tls/ca.crt. (librdkafka before 2.6.1, Debian 12's 2.0.2 included,
# cannot complete SCRAM with Kafka 4 brokers: its client-final nonce is
# wrong, and Kafka 4 checks it; PLAIN over TLS works with every version.) The StandardAuthorizer is on: a SASL user may do only
# what an ACL allows. "env" prints SASL_BOOTSTRAP and CA_FILE too.
#
# If the artifacts cannot be fetched, "fetch" and "start" fail and say why.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=kafka-cluster.sh
: "${KAFKA_HEAP:=384m}"
: "${KAFKA_START_TIMEOUT:=180}"
: "${KAFKA_ADMIN:=}"

die() {
	echo "$prog: $*" >&2
	exit 1
}

# The classpath of the pinned version, resolved by Maven (offline once cached).
classpath() {
	local cache=${XDG_CACHE_HOME:-$HOME/.cache}/logferry
	local version cpfile
	version=$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$here/pom.xml")
	cpfile=$cache/kafka-$version.classpath
	if [ ! -s "$cpfile" ] || ! cpcheck "$cpfile"; then
		command -v mvn >/dev/null || die "mvn is not installed: run packaging/install-deps.sh"
		command -v java >/dev/null || die "java is not installed: run packaging/install-deps.sh"
		mkdir -p "$cache"
		if ! mvn -q -B -f "$here/pom.xml" dependency:build-classpath \
			-Dmdep.outputFile="$cpfile.tmp" -Dmdep.includeScope=runtime >"$cache/mvn.log" 2>&1; then
			tail -n 20 "$cache/mvn.log" >&2
			die "cannot fetch Apache Kafka $version from Maven Central (log above, full log in $cache/mvn.log)"
		fi
		mv "$cpfile.tmp" "$cpfile"
	fi
	cat "$cpfile"
}

# Every jar of a cached classpath still exists (~/.m2 may have been cleaned).
cpcheck() {
	local IFS=:
	local j
	for j in $(cat "$1"); do
		[ -f "$j" ] || return 1
	done
	return 0
}

java_run() {
	local cp
	cp=$(classpath)
	# shellcheck disable=SC2086
	exec java -Xmx"$KAFKA_HEAP" -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-XX:MaxDirectMemorySize=128m -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$cp" "$@"
}

load() {
	dir=$(cd "$1" && pwd) || die "no cluster in $1"
	[ -f "$dir/cluster.env" ] || die "no cluster in $dir (run: $prog start $dir)"
	# shellcheck disable=SC1091
	. "$dir/cluster.env"
}

node_ip() { echo "$BASE_IP.$1"; }

# serving N: node N answers metadata requests as a broker of the cluster.
serving() {
	local ip
	ip=$(node_ip "$1")
	timeout 10 kcat -L -b "$ip:9092" -m 5 2>/dev/null | grep -q "broker $1 at $ip:9092"
}

# all_registered: every node sees all NODES brokers.
all_registered() {
	local out
	out=$(timeout 10 kcat -L -b "$BOOTSTRAP" -m 5 2>/dev/null) || return 1
	[ "$(echo "$out" | grep -c '^  broker [0-9]* at ')" -eq "$NODES" ]
}

start_node() {
	local n=$1
	(
		java_run kafka.Kafka "$dir/node-$n/server.properties"
	) >"$dir/node-$n/stdout.log" 2>&1 &
	echo $! >"$dir/node-$n/pid"
}

# wait_until SECONDS CMD...: until CMD succeeds, or fails with the node logs.
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 4; i++)); do
		"$@" && return 0
		for f in "$dir"/node-*/pid; do
			kill -0 "$(cat "$f")" 2>/dev/null || {
				[ -f "${f%pid}stopped" ] && continue
				tail -n 30 "${f%pid}stdout.log" >&2
				die "node ${f%/pid} exited while starting (log above)"
			}
		done
		sleep 0.25
	done
	return 1
}

stop_node() {
	local n=$1 sig=${2:-TERM} pid i
	[ -f "$dir/node-$n/pid" ] || return 0
	pid=$(cat "$dir/node-$n/pid")
	touch "$dir/node-$n/stopped"
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 240; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.25
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_start() {
	local nodes=${2:-3} voters= n ip cluster_id sans=
	mkdir -p "$1"
	dir=$(cd "$1" && pwd)
	[ -f "$dir/cluster.env" ] && die "$dir already holds a cluster (stop it first)"
	command -v kcat >/dev/null || die "kcat is not installed: run packaging/install-deps.sh"
	classpath >/dev/null
	BASE_IP=127.$((($$ >> 8) & 255)).$(($$ & 255))
	NODES=$nodes
	BOOTSTRAP=
	SASL_BOOTSTRAP=
	for ((n = 1; n <= nodes; n++)); do
		ip=$(node_ip "$n")
		voters="$voters${voters:+,}$n@$ip:9093"
		BOOTSTRAP="$BOOTSTRAP${BOOTSTRAP:+,}$ip:9092"
		SASL_BOOTSTRAP="$SASL_BOOTSTRAP${SASL_BOOTSTRAP:+,}$ip:9094"
		sans="$sans${sans:+,}IP:$ip"
	done
	make_tls "$sans"
	head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/relay.password"
	head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/admin.password"
	chmod 600 "$dir/relay.password" "$dir/admin.password"
	cat >"$dir/log4j2.properties" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
EOF
	cluster_id=$(java_run_id)
	for ((n = 1; n <= nodes; n++)); do
		ip=$(node_ip "$n")
		mkdir -p "$dir/node-$n/data"
		cat >"$dir/node-$n/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://$ip:9092,CONTROLLER://$ip:9093,SASL_SSL://$ip:9094
advertised.listeners=PLAINTEXT://$ip:9092,SASL_SSL://$ip:9094
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_relay="$(cat "$dir/relay.password")" user_admin="$(cat "$dir/admin.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
allow.everyone.if.no.acl.found=false
log.dirs=$dir/node-$n/data
num.partitions=3
default.replication.factor=$((nodes < 3 ? nodes : 3))
min.insync.replicas=$((nodes < 2 ? 1 : 2))
auto.create.topics.enable=false
offsets.topic.replication.factor=$((nodes < 3 ? nodes : 3))
transaction.state.log.replication.factor=$((nodes < 3 ? nodes : 3))
transaction.state.log.min.isr=$((nodes < 2 ? 1 : 2))
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.segment.bytes=67108864
log.retention.check.interval.ms=600000
socket.request.max.bytes=104857600
EOF
		(
			java_run kafka.tools.StorageTool format --config "$dir/node-$n/server.properties" \
				--cluster-id "$cluster_id" --ignore-formatted \
				--add-scram "SCRAM-SHA-512=[name=\"relay\",password=\"$(cat "$dir/relay.password")\"]" \
				--add-scram "SCRAM-SHA-512=[name=\"admin\",password=\"$(cat "$dir/admin.password")\"]"
		) >"$dir/node-$n/format.log" 2>&1 ||
			{ cat "$dir/node-$n/format.log" >&2; die "formatting node $n's storage failed (log above)"; }
	done
	cat >"$dir/cluster.env" <<EOF
BASE_IP=$BASE_IP
NODES=$NODES
BOOTSTRAP=$BOOTSTRAP
SASL_BOOTSTRAP=$SASL_BOOTSTRAP
CA_FILE=$dir/tls/ca.crt
RELAY_PASSWORD_FILE=$dir/relay.password
ADMIN_PASSWORD_FILE=$dir/admin.password
EOF
	for ((n = 1; n <= nodes; n++)); do
		start_node "$n"
	done
	if ! wait_until "$KAFKA_START_TIMEOUT" all_registered; then
		for ((n = 1; n <= nodes; n++)); do
			tail -n 15 "$dir/node-$n/stdout.log" >&2
		done
		cmd_stop "$dir"
		die "the cluster did not serve $nodes brokers within ${KAFKA_START_TIMEOUT}s (node logs above)"
	fi
	echo "bootstrap=$BOOTSTRAP"
}

# make_tls SANS: a CA and one certificate for every broker (SAN: each
# node's address) in DIR/tls; broker.pem holds the key and the chain, as
# Kafka's PEM key store reads it.
make_tls() {
	local t=$dir/tls
	mkdir -p "$t"
	{
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
			-subj "/CN=logferry test Kafka CA" -keyout "$t/ca.key" -out "$t/ca.crt" &&
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/broker.key" &&
		openssl req -new -key "$t/broker.key" -subj "/CN=kafka" -out "$t/broker.csr" &&
		printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$1" >"$t/ext.cnf" &&
		openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
			-days 30 -extfile "$t/ext.cnf" -out "$t/broker.crt"
	} >"$t/openssl.log" 2>&1 || { cat "$t/openssl.log" >&2; die "cannot make the brokers' TLS certificates"; }
	cat "$t/broker.key" "$t/broker.crt" >"$t/broker.pem"
	chmod 600 "$t"/*.key "$t/broker.pem"
}

# A random base64 UUID, as "kafka-storage.sh random-uuid" makes: never one
# starting with "-", which kafka-storage's argument parser takes for an
# option (1 start in 64 failed with "--cluster-id: expected one argument").
java_run_id() {
	python3 -c 'import base64, uuid
while True:
    i = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not i.startswith("-"):
        print(i)
        break'
}

cmd_stop() {
	local n
	load "$1"
	for ((n = 1; n <= NODES; n++)); do
		stop_node "$n" TERM &
	done
	wait
	rm -f "$dir/cluster.env"
}

case "${1:-}" in
fetch)
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	classpath >/dev/null
	echo "$prog: Apache Kafka's jars are in ~/.m2"
	;;
start)
	[ $# -ge 2 ] || die "usage: $prog start DIR [NODES]"
	cmd_start "$2" "${3:-3}"
	;;
stop)
	[ $# -eq 2 ] || die "usage: $prog stop DIR"
	cmd_stop "$2"
	;;
kill | down)
	[ $# -eq 3 ] || die "usage: $prog $1 DIR N"
	load "$2"
	if [ "$1" = kill ]; then stop_node "$3" KILL; else stop_node "$3" TERM; fi
	;;
up)
	[ $# -eq 3 ] || die "usage: $prog up DIR N"
	load "$2"
	rm -f "$dir/node-$3/stopped"
	start_node "$3"
	wait_until "$KAFKA_START_TIMEOUT" serving "$3" || die "node $3 did not serve again within ${KAFKA_START_TIMEOUT}s"
	;;
env)
	[ $# -eq 2 ] || die "usage: $prog env DIR"
	load "$2"
	cat "$dir/cluster.env"
	;;
*)
	die "usage: $prog fetch | start DIR [NODES] | stop DIR | kill|down|up DIR N | env DIR"
	;;
esac
