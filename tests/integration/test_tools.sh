#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_tools.sh - prove the integration-test tools work before other tests
# depend on them: tests/tools/make-certs.sh (the test PKI) and
# tests/tools/mock_kafka (librdkafka's mock cluster driven over stdin).
#
# Automake test protocol: exit 0 pass, 1 fail, 77 skip.
#   MOCK_KAFKA  mock_kafka binary (default ./tests/tools/mock_kafka, i.e.
#               relative to the build directory)
#   srcdir      source tree root (default .), for tests/tools/make-certs.sh
#
# Linux-specific: relies on opening a FIFO read-write (see start_mock).
set -u

MOCK_KAFKA=${MOCK_KAFKA:-./tests/tools/mock_kafka}
MAKE_CERTS=${srcdir:-.}/tests/tools/make-certs.sh
# Upper bounds; every external step is wrapped so a hang becomes a failure.
# Generous: they cost nothing when things work, and the test must pass on
# a loaded machine.
T_CMD=60
T_KCAT=60
T_EXIT=60

# timeout SECONDS CMD...: a process that ignores SIGTERM would outlive plain
# timeout(1), so escalate to SIGKILL.
bounded() {
	timeout -k 5 "$@"
}

# status RC: how a bounded command ended, for failure messages.
status() {
	case $1 in
	124 | 137) echo "timed out" ;;
	*) echo "exit status $1" ;;
	esac
}

tmp=
mock_pid=
pids=

say() { echo "test_tools: $*"; }
ok() { echo "  ok: $*"; }

fail() {
	echo "test_tools: FAIL: $*" >&2
	if [ -n "$tmp" ] && [ -s "$tmp/mock.err" ]; then
		echo "--- mock_kafka stderr (last 20 lines) ---" >&2
		tail -n 20 "$tmp/mock.err" >&2
	fi
	exit 1
}

skip() {
	echo "test_tools: SKIP: $*"
	exit 77
}

# A child that has exited stays a zombie until wait, and kill -0 still
# succeeds on zombies, so look at the process state instead.
alive() {
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case $st in
	Z*) return 1 ;;
	esac
	return 0
}

# wait_exit PID SECONDS: sets exit_rc, or returns 1 if PID is still running.
wait_exit() {
	n=$(($2 * 10))
	while alive "$1"; do
		[ "$n" -gt 0 ] || return 1
		n=$((n - 1))
		sleep 0.1
	done
	wait "$1"
	exit_rc=$?
	return 0
}

forget_pid() {
	new=
	for p in $pids; do
		[ "$p" = "$1" ] || new="$new $p"
	done
	pids=$new
}

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
	exec 3>&-
	for p in $pids; do
		if alive "$p"; then
			kill -TERM "$p" 2>/dev/null
			wait_exit "$p" 3 || {
				kill -KILL "$p" 2>/dev/null
				wait "$p" 2>/dev/null
			}
		fi
	done
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

for tool in openssl kcat timeout mkfifo ps; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool not found in PATH"
done
[ -x "$MOCK_KAFKA" ] || fail "MOCK_KAFKA=$MOCK_KAFKA is not an executable (build it first)"
[ -r "$MAKE_CERTS" ] || fail "cert script $MAKE_CERTS not found (set srcdir?)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_tools.XXXXXX") || fail "mktemp -d failed"

# ---------------------------------------------------------------------------
# make-certs.sh
# ---------------------------------------------------------------------------
say "make-certs.sh: $MAKE_CERTS"
certs=$tmp/certs/not-yet-there
bounded 120 sh "$MAKE_CERTS" "$certs" >"$tmp/certs.out" 2>&1 ||
	fail "make-certs.sh exited non-zero: $(cat "$tmp/certs.out")"
ok "make-certs.sh succeeded with a missing OUTDIR"
[ -s "$tmp/certs.out" ] && fail "make-certs.sh was not quiet on success: $(cat "$tmp/certs.out")"
ok "make-certs.sh printed nothing"

for name in ca int relay relay-rsa web-01 web-02 other-ca intruder expired; do
	[ -s "$certs/$name.crt" ] || fail "missing $name.crt"
	[ -s "$certs/$name.key" ] || fail "missing $name.key"
	[ -n "$(find "$certs/$name.key" -perm 0600)" ] ||
		fail "$name.key is not mode 0600: $(ls -l "$certs/$name.key")"
done
ok "all certificates and keys exist; keys are mode 0600"

for name in relay relay-rsa web-01 web-02 expired; do
	cat "$certs/$name.crt" "$certs/int.crt" | cmp -s - "$certs/$name-chain.crt" ||
		fail "$name-chain.crt is not $name.crt followed by int.crt"
done
cmp -s "$certs/ca.crt" "$certs/ca-bundle.crt" || fail "ca-bundle.crt differs from ca.crt"
ok "chain files are leaf + intermediate; ca-bundle.crt = ca.crt"

# verify_ok NAME PURPOSE
verify_ok() {
	out=$(cd "$certs" && openssl verify -CAfile ca.crt -untrusted int.crt \
		-purpose "$2" "$1.crt" 2>&1) ||
		fail "openssl verify $1.crt (purpose $2) failed: $out"
	[ "$out" = "$1.crt: OK" ] || fail "openssl verify $1.crt said: $out"
	ok "$1.crt verifies against ca.crt via int.crt (purpose $2)"
}
verify_ok relay sslserver
verify_ok relay-rsa sslserver
verify_ok web-01 sslclient
verify_ok web-02 sslclient

if out=$(cd "$certs" && openssl verify -CAfile ca.crt -untrusted int.crt intruder.crt 2>&1); then
	fail "intruder.crt verified against ca.crt but must not: $out"
fi
ok "intruder.crt does not verify against ca.crt"

if out=$(cd "$certs" && openssl verify -CAfile ca.crt -untrusted int.crt expired.crt 2>&1); then
	fail "expired.crt verified but must be expired: $out"
fi
case $out in
*"certificate has expired"*) ok "expired.crt fails with an expiry error" ;;
*) fail "expired.crt failed for the wrong reason: $out" ;;
esac

openssl rsa -in "$certs/web-02.key" -check -noout >/dev/null 2>&1 ||
	fail "web-02.key is not a valid RSA key"
openssl ec -in "$certs/web-01.key" -check -noout >/dev/null 2>&1 ||
	fail "web-01.key is not a valid EC key"
ok "web-02.key is RSA, web-01.key is EC"

for name in relay relay-rsa web-01 web-02; do
	a=$(openssl x509 -in "$certs/$name.crt" -noout -pubkey 2>&1) ||
		fail "cannot read public key of $name.crt: $a"
	b=$(openssl pkey -in "$certs/$name.key" -pubout 2>&1) ||
		fail "cannot read $name.key: $b"
	[ "$a" = "$b" ] || fail "$name.key does not match $name.crt"
done
ok "leaf keys match their certificates"

# ---------------------------------------------------------------------------
# mock_kafka
# ---------------------------------------------------------------------------
say "mock_kafka: $MOCK_KAFKA"

# lines FILE: number of complete lines in FILE; 0 while it does not exist
# (a process started in the background may not have created it yet).
lines() {
	if [ -f "$1" ]; then
		wc -l <"$1" | tr -d ' '
	else
		echo 0
	fi
}

# wait_lines FILE N SECONDS PID WHAT: until FILE has N complete lines.
wait_lines() {
	n=$(($3 * 10))
	while [ "$(lines "$1")" -lt "$2" ]; do
		alive "$4" || fail "mock_kafka (pid $4) died before printing $5"
		[ "$n" -gt 0 ] || fail "timed out after $3 s waiting for $5"
		n=$((n - 1))
		sleep 0.1
	done
}

# wait_stdin_closed ERRFILE PID: until mock_kafka says it read EOF on stdin.
wait_stdin_closed() {
	n=$((T_CMD * 10))
	until grep -q 'stdin closed; serving' "$1"; do
		alive "$2" || fail "mock_kafka (pid $2) died at stdin EOF"
		[ "$n" -gt 0 ] || fail "mock_kafka did not read stdin EOF within $T_CMD s"
		n=$((n - 1))
		sleep 0.1
	done
}

# --- usage errors exit 2 with a message on stderr ---
for args in "--brokers 0" "--brokers x" "--topic nocolon" "--topic t:0" "stray-arg" "--no-such-option"; do
	# shellcheck disable=SC2086 # word splitting of $args is intended
	bounded "$T_CMD" "$MOCK_KAFKA" $args </dev/null >"$tmp/usage.out" 2>"$tmp/usage.err"
	rc=$?
	[ "$rc" -eq 2 ] || fail "mock_kafka $args: $(status $rc), want exit status 2"
	[ -s "$tmp/usage.err" ] || fail "mock_kafka $args printed nothing on stderr"
done
ok "bad usage exits 2 with a message on stderr"

# --- quit command, and stdin EOF + SIGINT ---
printf 'quit\n' | bounded "$T_CMD" "$MOCK_KAFKA" --brokers 1 >"$tmp/quit.out" 2>"$tmp/quit.err"
rc=$?
[ "$rc" -eq 0 ] || fail "after 'quit' mock_kafka: $(status $rc), want exit status 0 ($(cat "$tmp/quit.err"))"
grep -Eq '^bootstrap=127\.0\.0\.1:[0-9]+$' "$tmp/quit.out" ||
	fail "--brokers 1 did not print one loopback bootstrap: $(cat "$tmp/quit.out")"
[ "$(sed -n 2p "$tmp/quit.out")" = ok ] || fail "'quit' was not answered with ok: $(cat "$tmp/quit.out")"
ok "'quit' answers ok and exits 0"

"$MOCK_KAFKA" --brokers 1 </dev/null >"$tmp/eof.out" 2>"$tmp/eof.err" &
eof_pid=$!
pids="$pids $eof_pid"
wait_lines "$tmp/eof.out" 1 "$T_CMD" "$eof_pid" "the bootstrap line (stdin /dev/null)"
eofboot=$(sed -n 1p "$tmp/eof.out")
wait_stdin_closed "$tmp/eof.err" "$eof_pid"
bounded "$T_KCAT" kcat -L -b "${eofboot#bootstrap=}" -m 5 >/dev/null 2>"$tmp/kcat-l.log" ||
	fail "cluster not serving after stdin EOF (/dev/null): $(cat "$tmp/kcat-l.log")"
alive "$eof_pid" || fail "mock_kafka exited on stdin EOF; it must keep serving"
kill -INT "$eof_pid"
wait_exit "$eof_pid" "$T_EXIT" || fail "mock_kafka ignored SIGINT for $T_EXIT s"
forget_pid "$eof_pid"
[ "$exit_rc" -eq 0 ] || fail "mock_kafka exited $exit_rc on SIGINT, want 0"
ok "stdin EOF keeps it running; SIGINT exits 0"

# --- the main instance, driven through a FIFO ---
# Open the FIFO read-write first (Linux: never blocks), so the mock's open
# for reading does not wait for a writer, our writes never raise SIGPIPE if
# it dies, and it sees EOF only when we close fd 3.
mkfifo "$tmp/ctl" || fail "mkfifo failed"
exec 3<>"$tmp/ctl" || fail "cannot open the command FIFO"
: >"$tmp/mock.out"
# Not fd 3 itself: while the mock held that write end, it would never read EOF.
"$MOCK_KAFKA" --topic logs.test:2 <"$tmp/ctl" 3>&- >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
pids="$pids $mock_pid"

wait_lines "$tmp/mock.out" 1 "$T_CMD" "$mock_pid" "the bootstrap line"
bootline=$(sed -n 1p "$tmp/mock.out")
echo "$bootline" | grep -Eq '^bootstrap=127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$' ||
	fail "first line is not a 3-broker loopback bootstrap line: $bootline"
bs=${bootline#bootstrap=}
broker1=${bs%%,*}
ok "bootstrap line read: $bootline"

# send LINE: send LINE, set reply to the one-line answer.
send() {
	before=$(lines "$tmp/mock.out")
	printf '%s\n' "$1" >&3 || fail "cannot write '$1' to the command FIFO"
	wait_lines "$tmp/mock.out" $((before + 1)) "$T_CMD" "$mock_pid" \
		"the reply to '$1'"
	reply=$(sed -n "$((before + 1))p" "$tmp/mock.out")
}

expect_ok() {
	send "$1"
	[ "$reply" = ok ] || fail "command '$1' answered '$reply', want 'ok'"
	ok "'$1' -> ok"
}

expect_error() {
	send "$1"
	case $reply in
	"error: "*) ok "'$1' -> $reply" ;;
	*) fail "command '$1' answered '$reply', want 'error: ...'" ;;
	esac
}

# Keyed messages: unkeyed ones may all stick to one partition (librdkafka's
# sticky partitioner), and this test wants both partitions used.
i=1
while [ "$i" -le 100 ]; do
	echo "key-$i:msg-$i"
	i=$((i + 1))
done >"$tmp/produce.txt"
bounded "$T_KCAT" kcat -P -b "$bs" -t logs.test -K: <"$tmp/produce.txt" \
	>"$tmp/kcat-p.log" 2>&1 ||
	fail "kcat -P failed ($(status $?)): $(cat "$tmp/kcat-p.log")"
ok "produced 100 messages with kcat"

bounded "$T_KCAT" kcat -C -b "$bs" -t logs.test -o beginning -e -q \
	-f '%p %s\n' >"$tmp/consumed.txt" 2>"$tmp/kcat-c.log" ||
	fail "kcat -C failed ($(status $?)): $(cat "$tmp/kcat-c.log")"
count=$(lines "$tmp/consumed.txt")
[ "$count" -eq 100 ] || fail "consumed $count messages, want exactly 100"
cut -d' ' -f2 "$tmp/consumed.txt" | sort >"$tmp/got.txt"
cut -d: -f2 "$tmp/produce.txt" | sort >"$tmp/want.txt"
cmp -s "$tmp/got.txt" "$tmp/want.txt" ||
	fail "consumed messages differ from produced ones: $(diff "$tmp/want.txt" "$tmp/got.txt" | head -5)"
p0=$(grep -c '^0 ' "$tmp/consumed.txt")
p1=$(grep -c '^1 ' "$tmp/consumed.txt")
if [ "$p0" -eq 0 ] || [ "$p1" -eq 0 ]; then
	fail "messages not spread over both partitions (p0=$p0 p1=$p1)"
fi
ok "consumed exactly the 100 messages back (partition 0: $p0, partition 1: $p1)"

expect_ok "down 1"
if bounded "$T_KCAT" kcat -L -b "$broker1" -m 2 >/dev/null 2>&1; then
	fail "broker 1 ($broker1) still answers after 'down 1'"
fi
ok "broker 1 refuses connections while down"
expect_ok "up 1"
bounded "$T_KCAT" kcat -L -b "$broker1" -m 5 >/dev/null 2>"$tmp/kcat-l.log" ||
	fail "broker 1 ($broker1) unreachable after 'up 1': $(cat "$tmp/kcat-l.log")"
ok "broker 1 answers again after 'up 1'"

expect_ok "rtt 2 50"
expect_ok "rtt 2 0"

expect_ok "topic other 1"
bounded "$T_KCAT" kcat -L -b "$bs" -t other -m 5 >"$tmp/meta.txt" 2>&1 ||
	fail "kcat -L -t other failed: $(cat "$tmp/meta.txt")"
grep -q 'topic "other" with 1 partitions' "$tmp/meta.txt" ||
	fail "topic 'other' not in metadata with 1 partition: $(cat "$tmp/meta.txt")"
ok "topic 'other' exists with 1 partition"
expect_error "topic other 1"

send "bootstrap"
[ "$reply" = "$bootline" ] || fail "'bootstrap' answered '$reply', want '$bootline'"
ok "'bootstrap' repeats the bootstrap line"

expect_error "frobnicate"
expect_error "down 99"
expect_error "down"
expect_error "rtt 1 soon"
expect_error ""

# EOF on the command stream must not stop the cluster.
exec 3>&-
wait_stdin_closed "$tmp/mock.err" "$mock_pid"
alive "$mock_pid" || fail "mock_kafka exited when its stdin reached EOF"
bounded "$T_KCAT" kcat -L -b "$bs" -m 5 >/dev/null 2>"$tmp/kcat-l.log" ||
	fail "cluster not serving after stdin EOF: $(cat "$tmp/kcat-l.log")"
ok "still serving after stdin EOF"

kill -TERM "$mock_pid" || fail "cannot send SIGTERM to mock_kafka (pid $mock_pid)"
wait_exit "$mock_pid" "$T_EXIT" || fail "mock_kafka still running $T_EXIT s after SIGTERM"
forget_pid "$mock_pid"
[ "$exit_rc" -eq 0 ] || fail "mock_kafka exited $exit_rc on SIGTERM, want 0"
ok "SIGTERM stops mock_kafka with exit 0"

say "PASS"
exit 0
