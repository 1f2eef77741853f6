#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the peer `make bench` compares logferry with (bench/README.md):
# Debian's rsyslog, its Kafka output module (omkafka) and its RELP modules
# (imrelp, omrelp: bench_e2e.sh's two-hop peer), and valgrind, whose
# callgrind counts the relay's instructions per record (bench_kafka) where
# time on a shared machine is too noisy. Separate from
# install-deps.sh because installing rsyslog removes syslog-ng, the system
# logger some hosts run. Run as root, or with sudo available. Idempotent.
set -eu

bench="rsyslog rsyslog-kafka rsyslog-relp valgrind"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

# shellcheck disable=SC2086
if [ "$(dpkg-query -W -f='${Status}\n' $bench 2>/dev/null | grep -c '^install ok installed$')" -eq \
	"$(echo $bench | wc -w)" ]; then
	echo "install-bench-deps: rsyslog, rsyslog-kafka, rsyslog-relp and valgrind are already installed"
	exit 0
fi

if dpkg-query -W -f='${Status}\n' syslog-ng-core 2>/dev/null | grep -q '^install ok installed$'; then
	echo "install-bench-deps: syslog-ng is installed, and rsyslog would replace it;" >&2
	echo "install-bench-deps: install rsyslog rsyslog-kafka rsyslog-relp yourself if you mean it" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $bench
