#!/bin/sh
# Installs everything logferry needs to build, test, fuzz and benchmark on
# Debian 12 (bookworm). Run as root, or with sudo available. Idempotent.
set -eu

# Build: toolchain and autotools.
build="build-essential autoconf automake libtool pkg-config"
# Libraries the daemons link (docs/architecture.md "Dependencies").
libs="libuv1-dev libmbedtls-dev liblmdb-dev libnanopb-dev librdkafka-dev
      libzstd-dev libyaml-dev libhttp-parser-dev libjansson-dev zlib1g-dev
      libsystemd-dev"
# Protocol code generation: protoc with nanopb's generator plugin.
gen="protobuf-compiler nanopb python3-protobuf"
# Tests: unit framework, real peers for integration tests, fuzzing (clang's
# libFuzzer and sanitizer runtimes), time zones for RFC 3164 times (tzdata),
# CPU load beside make check (stress-ng, for make check-stress).
tests="libcmocka-dev kcat openssl bsdutils curl clang libclang-rt-14-dev
       procps psmisc tzdata stress-ng"
# Tests against a real Apache Kafka cluster (tests/kafka/): Debian's Java
# runs Kafka's official jars, which Maven fetches (test-only; the daemons
# never use Java).
kafka="default-jre-headless maven"
# Benchmarks: the peer we compare with, run side by side (bench/); its
# Kafka output module (omkafka) for the end-to-end benchmark.
bench="rsyslog rsyslog-kafka"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! dpkg-query -W -f='${Status}\n' $build $libs $gen $tests $kafka $bench 2>/dev/null |
	grep -qv '^install ok installed$' &&
	[ "$(dpkg-query -W -f='${Status}\n' $build $libs $gen $tests $kafka $bench 2>/dev/null | wc -l)" -eq \
	  "$(echo $build $libs $gen $tests $kafka $bench | wc -w)" ]; then
	echo "install-deps: all build and test dependencies are already installed"
	exit 0
fi

$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $build $libs $gen $tests $kafka $bench
