# Shared helpers for integration tests (sourced, bash).
#
# Every test runs in its own temporary directory, binds loopback only, and
# stops every process it started, by PID, whatever way it exits.
# Automake's test driver sets srcdir; the Makefile exports the paths below.

set -u

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${LOGFERRY_AGENT:=$top_builddir/agent/logferry-agent}"
: "${LOGFERRY_RELAY:=$top_builddir/relay/logferry-relay}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
MAKE_CERTS="$top_srcdir/tests/tools/make-certs.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/logferry-test.XXXXXX")
LF_PIDS=()
LF_FAILED=0

lf_cleanup() {
	local pid
	for pid in "${LF_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${LF_PIDS[@]}"; do
		# Give each a moment, then insist.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "$LF_FAILED" -ne 0 ] && [ -n "${LF_KEEP:-}" ]; then
		echo "kept $T for inspection"
	else
		rm -rf "$T"
	fi
}
trap lf_cleanup EXIT

# fail MESSAGE: records a failure and goes on (the test exits 1 at the end).
fail() {
	echo "FAIL: $*"
	LF_FAILED=1
}

pass() {
	echo "ok: $*"
}

# finish: the test's exit status.
finish() {
	if [ "$LF_FAILED" -ne 0 ]; then
		exit 1
	fi
	exit 0
}

# start NAME CMD...: runs CMD in the background with stderr+stdout to
# $T/NAME.log; sets LF_PID.
start() {
	local name=$1
	shift
	"$@" >"$T/$name.log" 2>&1 &
	LF_PID=$!
	LF_PIDS+=("$LF_PID")
}

# wait_log FILE PATTERN [SECONDS]: waits until FILE has a line matching the
# extended regex PATTERN. Returns 1 on timeout.
wait_log() {
	local file=$1 pattern=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		grep -Eq -- "$pattern" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_exit PID [SECONDS]: waits for PID (a child of this shell) to exit and
# sets LF_RC to its exit status. Returns 1 on timeout. Not in $(...): only
# this shell can reap its children.
wait_exit() {
	local pid=$1 secs=${2:-10} i
	LF_RC=
	for ((i = 0; i < secs * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null || [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then
			wait "$pid" 2>/dev/null
			LF_RC=$?
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# make_certs: certificates for the tests in $T/certs (see make-certs.sh).
make_certs() {
	sh "$MAKE_CERTS" "$T/certs" || {
		echo "FAIL: make-certs.sh failed"
		exit 1
	}
}

# example_config NAME: packaging/NAME.yaml with /etc/logferry paths pointing
# at the test certificates; prints the new file's path.
example_config() {
	local out="$T/$1.yaml"
	sed -e "s|/etc/logferry/agent\\.|$T/certs/web-01.|g" \
	    -e "s|/etc/logferry/|$T/certs/|g" \
	    -e "s|127\\.0\\.0\\.1:5514|127.0.0.1:0|g" -e "s|/run/logferry/|$T/|g" \
	    -e "s|127\\.0\\.0\\.1:8540|127.0.0.1:0|g" -e "s|/var/lib/logferry|$T/data|g" \
	    "$top_srcdir/packaging/$1.yaml" >"$out"
	echo "$out"
}

# spooled CONFIG: how many events the agent's spool holds (--spool-stats).
spooled() {
	"$LOGFERRY_AGENT" -c "$1" --spool-stats 2>/dev/null | awk '/^events:/ { print $2 }'
}

# wait_spooled CONFIG N [SECONDS]: until the spool holds at least N events.
wait_spooled() {
	local cfg=$1 n=$2 secs=${3:-30} i c
	for ((i = 0; i < secs * 10; i++)); do
		c=$(spooled "$cfg")
		[ "${c:-0}" -ge "$n" ] && return 0
		sleep 0.1
	done
	echo "spool holds ${c:-0} events, expected $n"
	return 1
}

# stop_agent PID: SIGTERM, then checks that it exits 0.
stop_agent() {
	kill -TERM "$1"
	wait_exit "$1" 20 || { fail "agent $1 did not stop"; return; }
	[ "$LF_RC" = 0 ] || fail "agent exited $LF_RC"
}
