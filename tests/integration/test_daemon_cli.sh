#!/bin/bash
# Both daemons: the command line of docs/architecture.md, configuration errors with
# FILE:LINE: key.path, exit codes, and clean stops on SIGTERM and SIGINT.
. "${srcdir:-.}/tests/integration/lib.sh"

make_certs
AGENT_CONF=$(example_config agent)
RELAY_CONF=$(example_config relay)

check_cli() {
	local name=$1 bin=$2 conf=$3 out rc

	out=$("$bin" --version) && [ "$out" = "$name 0.1.0" ] &&
		pass "$name --version" || fail "$name --version printed '$out'"

	out=$("$bin" --help) && echo "$out" | grep -q -- '-c, --config FILE' &&
		pass "$name --help" || fail "$name --help"

	"$bin" --bogus >/dev/null 2>&1
	rc=$?
	[ $rc -eq 2 ] && pass "$name unknown option exits 2" || fail "$name unknown option exited $rc"

	"$bin" -c "$conf" extra >/dev/null 2>&1
	rc=$?
	[ $rc -eq 2 ] && pass "$name stray argument exits 2" || fail "$name stray argument exited $rc"

	out=$("$bin" -c "$conf" --check 2>&1)
	rc=$?
	[ $rc -eq 0 ] && [ "$out" = "$conf: configuration is valid" ] &&
		pass "$name --check accepts the example configuration" ||
		fail "$name --check on the example: rc=$rc: $out"

	# The effective configuration is itself a valid configuration.
	"$bin" -c "$conf" --dump-config >"$T/$name.dump.yaml" 2>&1
	out=$("$bin" -c "$T/$name.dump.yaml" --check 2>&1)
	rc=$?
	[ $rc -eq 0 ] && pass "$name --dump-config output passes --check" ||
		fail "$name --dump-config output rejected: $out"

	out=$("$bin" -c "$T/nonexistent.yaml" --check 2>&1)
	rc=$?
	[ $rc -eq 2 ] && echo "$out" | grep -qF "$T/nonexistent.yaml: cannot read the configuration: No such file or directory" &&
		pass "$name missing configuration file exits 2 and says why" ||
		fail "$name missing file: rc=$rc: $out"
}

check_cli logferry-agent "$LOGFERRY_AGENT" "$AGENT_CONF"
check_cli logferry-relay "$LOGFERRY_RELAY" "$RELAY_CONF"

# Configuration errors: exit 2 and FILE:LINE: key.path: what is wrong.
sed -e 's/max_size: 1GiB/max_size: 1GB/' -e 's/^memory_limit: 64MiB/memory_limt: 64MiB/' \
    "$AGENT_CONF" >"$T/bad-agent.yaml"
out=$("$LOGFERRY_AGENT" -c "$T/bad-agent.yaml" --check 2>&1)
rc=$?
expected="$T/bad-agent.yaml:8: spool.max_size: '1GB' is not a size: use a whole number with B, KiB, MiB or GiB (e.g. 64MiB)
$T/bad-agent.yaml:9: memory_limt: unknown key (did you mean memory_limit?)
logferry-agent: $T/bad-agent.yaml: configuration is not valid"
[ $rc -eq 2 ] && [ "$out" = "$expected" ] && pass "agent configuration errors name file, line and key" ||
	fail "agent bad config: rc=$rc, got:
$out
expected:
$expected"

sed -e 's/topic: logs.\${stream}/topic: logs.${streem}/' -e 's/^workers: 2/workers: 0/' \
    "$RELAY_CONF" >"$T/bad-relay.yaml"
out=$("$LOGFERRY_RELAY" -c "$T/bad-relay.yaml" 2>&1)
rc=$?
expected="$T/bad-relay.yaml:7: workers: 0 is below the minimum of 1
logferry-relay: $T/bad-relay.yaml: configuration is not valid"
[ $rc -eq 2 ] && [ "$out" = "$expected" ] && pass "relay refuses to start on a configuration error" ||
	fail "relay bad config: rc=$rc, got:
$out
expected:
$expected"

sed -e 's/topic: logs.\${stream}/topic: logs.${streem}/' "$RELAY_CONF" >"$T/bad-relay2.yaml"
out=$("$LOGFERRY_RELAY" -c "$T/bad-relay2.yaml" --check 2>&1)
echo "$out" | grep -qF "$T/bad-relay2.yaml:19: kafka.topic: unknown variable \${streem}" &&
	pass "relay template errors name the variable" || fail "relay template error: $out"

# Running, reloading and stopping.
run_and_stop() {
	local name=$1 bin=$2 conf=$3 sig=$4 rc

	cp "$conf" "$T/$name-run.yaml"
	start "$name-$sig" "$bin" -c "$T/$name-run.yaml"
	local pid=$LF_PID log="$T/$name-$sig.log"
	wait_log "$log" "info: $name 0\\.1\\.0 started" || { fail "$name did not start: $(cat "$log")"; return; }

	kill -HUP "$pid"
	wait_log "$log" "SIGHUP: .* is valid" && pass "$name SIGHUP re-checks a valid file" ||
		fail "$name SIGHUP: $(cat "$log")"
	echo "bogus_key: 1" >>"$T/$name-run.yaml"
	kill -HUP "$pid"
	wait_log "$log" "SIGHUP: .* is not valid" && kill -0 "$pid" &&
		pass "$name SIGHUP reports a broken file and keeps running" || fail "$name SIGHUP broken: $(cat "$log")"

	kill "-$sig" "$pid"
	wait_exit "$pid" 60 || { fail "$name did not stop on SIG$sig"; return; }
	rc=$LF_RC
	[ "$rc" = 0 ] && grep -q "SIG$sig received: stopping" "$log" && grep -q "info: stopped" "$log" &&
		pass "$name stops cleanly on SIG$sig with exit 0" || fail "$name SIG$sig: rc=$rc: $(cat "$log")"
}

run_and_stop logferry-agent "$LOGFERRY_AGENT" "$AGENT_CONF" TERM
run_and_stop logferry-agent "$LOGFERRY_AGENT" "$AGENT_CONF" INT
run_and_stop logferry-relay "$LOGFERRY_RELAY" "$RELAY_CONF" TERM
run_and_stop logferry-relay "$LOGFERRY_RELAY" "$RELAY_CONF" INT

finish
