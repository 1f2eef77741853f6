#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs everything logferry needs to build, test, fuzz and package on
# Debian 12 (bookworm). Run as root, or with sudo available. Idempotent.
# Installs no daemon that would replace one of the host's: the benchmarks'
# peer (rsyslog, which would remove syslog-ng) is in install-bench-deps.sh.
set -eu

# Build: toolchain and autotools.
build="build-essential autoconf automake libtool pkg-config"
# Libraries the daemons link (docs/architecture.md "Dependencies").
libs="libuv1-dev libmbedtls-dev liblmdb-dev libnanopb-dev librdkafka-dev
      libzstd-dev libyaml-dev libhttp-parser-dev libjansson-dev zlib1g-dev
      libsystemd-dev libjemalloc-dev"
# Protocol code generation: protoc with nanopb's generator plugin.
gen="protobuf-compiler nanopb python3-protobuf"
# Tests: unit framework, real peers for integration tests, fuzzing (clang's
# libFuzzer and sanitizer runtimes), time zones for RFC 3164 times (tzdata),
# CPU load beside make check (stress-ng, for make check-stress), the units'
# check (systemd-analyze, in package systemd; installing it does not make it
# the init system), a real NGINX whose logs the NGINX parsers read
# (nginx-light, tests/integration/test_nginx_formats.sh), journal files for
# the journal source's test without a journald (systemd-journal-remote).
tests="libcmocka-dev kcat openssl bsdutils curl clang libclang-rt-14-dev
       procps psmisc tzdata stress-ng systemd nginx-light systemd-journal-remote"
# Tests against a real Apache Kafka cluster (tests/kafka/): Debian's Java
# runs Kafka's official jars, which Maven fetches (test-only; the daemons
# never use Java).
kafka="default-jre-headless maven"
# Debian packages (make deb, debian/) and their test
# (tests/packaging/test_packages.sh: lintian, a debootstrap root).
pkg="debhelper dpkg-dev lintian debootstrap"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! dpkg-query -W -f='${Status}\n' $build $libs $gen $tests $kafka $pkg 2>/dev/null |
	grep -qv '^install ok installed$' &&
	[ "$(dpkg-query -W -f='${Status}\n' $build $libs $gen $tests $kafka $pkg 2>/dev/null | wc -l)" -eq \
	  "$(echo $build $libs $gen $tests $kafka $pkg | wc -w)" ]; then
	echo "install-deps: all build and test dependencies are already installed"
	exit 0
fi

$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $build $libs $gen $tests $kafka $pkg
