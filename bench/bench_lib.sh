# SPDX-License-Identifier: Apache-2.0
# What bench_relay.sh, bench_idle.sh and bench_e2e.sh share, sourced after
# they set MOCK_KAFKA: the work directory with its cleanup, free ports and
# the mock Kafka cluster's start. One copy, so that a fix to the cleanup or
# to the mock's start reaches every benchmark.

# bench_workdir NAME TEMPLATE: makes the work directory T
# ($TMPDIR/TEMPLATE.XXXXXX) and the list PIDS; at exit every process in
# PIDS is killed and T removed, or kept with BENCH_KEEP (then "NAME: kept T"
# and BENCH_KEPT_NOTE say where). NAME also prefixes this file's messages.
bench_workdir() {
	BENCH_NAME=$1
	BENCH_KEPT_NOTE=
	T=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ -n "${BENCH_KEEP:-}" ]; then
		echo "$BENCH_NAME: kept $T$BENCH_KEPT_NOTE" >&2
	else
		rm -rf "$T"
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# mock_start ARGS...: a fresh mock cluster (mock_kafka ARGS: it holds every
# record in memory), run under $NICE when the script set it; its output in
# $T/mock.out and $T/mock.err. Sets MOCK_PID and BOOTSTRAP; 1 with a
# message when it did not start.
mock_start() {
	# Emptied here: the child's own redirection may come after the first
	# look below, which would take the last cluster's address.
	: >"$T/mock.out"
	${NICE:-} "$MOCK_KAFKA" "$@" </dev/null >"$T/mock.out" 2>"$T/mock.err" &
	MOCK_PID=$!
	PIDS+=("$MOCK_PID")
	BOOTSTRAP=
	for _ in $(seq 100); do
		BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$T/mock.out")
		[ -n "$BOOTSTRAP" ] && return 0
		sleep 0.05
	done
	echo "$BENCH_NAME: the mock Kafka cluster did not start: $(cat "$T/mock.err")" >&2
	return 1
}
