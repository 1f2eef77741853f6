#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Both daemons: the command line of docs/architecture.md, configuration errors with
# FILE:LINE: key.path, exit codes, and clean stops on SIGTERM and SIGINT.
. "${srcdir:-.}/tests/integration/lib.sh"

make_certs
AGENT_CONF=$(example_config agent)
RELAY_CONF=$(example_config relay)

check_cli() {
	local name=$1 bin=$2 conf=$3 out rc

	out=$("$bin" --version) && [ "$(echo "$out" | head -1)" = "$name 0.1.0" ] &&
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

# Configuration conventions (issue 16 item 5): ${VAR}, FILE.d/*.yaml, {file: PATH}.
# ${HOSTNAME} used to pass --check as a literal; unset, it is now an error at its line.
sed -e 's/^id: web-01 .*/id: ${HOSTNAME}/' "$AGENT_CONF" >"$T/env-agent.yaml"
line=$(grep -n '^id: ' "$T/env-agent.yaml" | cut -d: -f1)
out=$(env -u HOSTNAME "$LOGFERRY_AGENT" -c "$T/env-agent.yaml" --check 2>&1)
rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -qF "$T/env-agent.yaml:$line: id: environment variable HOSTNAME is not set" &&
	pass "an unset \${HOSTNAME} fails --check at its line" || fail "unset \${HOSTNAME}: rc=$rc: $out"
out=$(HOSTNAME=web-01 "$LOGFERRY_AGENT" -c "$T/env-agent.yaml" --dump-config 2>&1)
echo "$out" | grep -qx 'id: "web-01"' && pass "\${HOSTNAME} takes the environment's value" ||
	fail "\${HOSTNAME} set: $out"

# The relay's templates are lower case: not environment variables.
out=$("$LOGFERRY_RELAY" -c "$RELAY_CONF" --dump-config 2>&1)
echo "$out" | grep -qF 'topic: "logs.${stream}"' && echo "$out" | grep -qF 'key: "${host}"' &&
	pass "relay topic and key templates load unchanged" || fail "relay templates: $out"

# FILE.d/*.yaml: appended sources, overridden scalars, errors in the included file.
cp "$AGENT_CONF" "$T/inc-agent.yaml"
mkdir "$T/inc-agent.d"
cat >"$T/inc-agent.d/10-app.yaml" <<EOF
log_level: debug
sources:
  - name: app_log
    type: file
    paths: [$T/app.log]
EOF
echo "not configuration" >"$T/inc-agent.d/README"
out=$("$LOGFERRY_AGENT" -c "$T/inc-agent.yaml" --dump-config 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -qx 'log_level: debug' && echo "$out" | grep -qF 'name: "nginx_access"' &&
	echo "$out" | grep -qF 'name: "app_log"' &&
	pass "agent.d/*.yaml appends sources and overrides scalars in --dump-config" ||
	fail "include dir: rc=$rc: $out"
cat >"$T/inc-agent.d/20-dup.yaml" <<EOF
sources:
  - name: nginx_error
    type: file
    paths: [$T/other.log]
EOF
out=$("$LOGFERRY_AGENT" -c "$T/inc-agent.yaml" --check 2>&1)
rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -qF "$T/inc-agent.d/20-dup.yaml:2: sources[5].name: 'nginx_error' is already" &&
	pass "a duplicate source name in agent.d is reported at its file and line" ||
	fail "duplicate source in include: rc=$rc: $out"
rm "$T/inc-agent.d/20-dup.yaml"

# {file: PATH}: the SASL password in kafka.properties, never printed; a literal one is still refused.
printf 's3cret-sasl\n' >"$T/sasl.pw"
chmod 600 "$T/sasl.pw"
sed -e "s|properties: {compression.type: lz4}|properties: {compression.type: lz4, sasl.password: {file: $T/sasl.pw}}|" \
    "$RELAY_CONF" >"$T/secret-relay.yaml"
out=$("$LOGFERRY_RELAY" -c "$T/secret-relay.yaml" --dump-config 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -qF "\"sasl.password\": {file: \"$T/sasl.pw\"}" &&
	! echo "$out" | grep -q s3cret &&
	pass "kafka.properties sasl.password from {file:} is accepted and dumped as its file" ||
	fail "sasl.password from a file: rc=$rc: $out"
echo "$out" >"$T/secret-relay.dump.yaml"
out=$("$LOGFERRY_RELAY" -c "$T/secret-relay.dump.yaml" --check 2>&1) &&
	pass "the dump with {file:} passes --check" || fail "dump with {file:}: $out"
sed -e "s|properties: {compression.type: lz4}|properties: {compression.type: lz4, sasl.password: s3cret}|" \
    "$RELAY_CONF" >"$T/literal-relay.yaml"
out=$("$LOGFERRY_RELAY" -c "$T/literal-relay.yaml" --check 2>&1)
rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -qF "kafka.properties.sasl.password: is a password" &&
	pass "a literal sasl.password is still refused" || fail "literal sasl.password: rc=$rc: $out"

# tls.key_password: {file: PATH} decrypts an encrypted key, in both daemons.
printf 'pass phrase\n' >"$T/key.pw"
chmod 600 "$T/key.pw"
openssl ec -in "$T/certs/relay.key" -aes256 -passout file:"$T/key.pw" -out "$T/certs/relay-enc.key" 2>/dev/null
openssl ec -in "$T/certs/web-01.key" -aes256 -passout file:"$T/key.pw" -out "$T/certs/web-01-enc.key" 2>/dev/null
sed -e "s|key_file: .*relay.key|key_file: $T/certs/relay-enc.key\n  key_password: {file: $T/key.pw}|" \
    "$RELAY_CONF" >"$T/enc-relay.yaml"
sed -e "s|key_file: [^}]*web-01.key|key_file: $T/certs/web-01-enc.key, key_password: {file: $T/key.pw}|" \
    "$AGENT_CONF" >"$T/enc-agent.yaml"
start_encrypted() {
	local name=$1 bin=$2 conf=$3
	start "$name" "$bin" -c "$conf"
	if wait_log "$T/$name.log" "info: .* started|error:" && grep -q "info: .* started" "$T/$name.log"; then
		pass "$name starts with an encrypted key and key_password from a file"
	else
		fail "$name with key_password: $(cat "$T/$name.log")"
	fi
	kill -TERM "$LF_PID"
	wait_exit "$LF_PID" 60 || fail "$name did not stop"
}
start_encrypted relay-enc "$LOGFERRY_RELAY" "$T/enc-relay.yaml"
start_encrypted agent-enc "$LOGFERRY_AGENT" "$T/enc-agent.yaml"
refuse_encrypted() {
	local name=$1 bin=$2 conf=$3
	start "$name" "$bin" -c "$conf"
	wait_exit "$LF_PID" 60
	grep -qF "the key is encrypted: set key_password" "$T/$name.log" && [ "$LF_RC" != 0 ] &&
		pass "$name: an encrypted key without key_password says which key to set" ||
		fail "$name: encrypted key without password: rc=$LF_RC: $(cat "$T/$name.log")"
}
sed -e '/key_password/d' "$T/enc-relay.yaml" >"$T/enc-relay-nopw.yaml"
sed -e 's|, key_password: {file: [^}]*}||' "$T/enc-agent.yaml" >"$T/enc-agent-nopw.yaml"
refuse_encrypted relay-nopw "$LOGFERRY_RELAY" "$T/enc-relay-nopw.yaml"
refuse_encrypted agent-nopw "$LOGFERRY_AGENT" "$T/enc-agent-nopw.yaml"

# ---- --version: the version, the git commit, the libraries (issue 16, item 7) ----
# commit: git's in a checkout, else the .commit that make dist writes.
want_commit=
[ -e "$top_srcdir/.git" ] && want_commit=$(git -C "$top_srcdir" rev-parse --short HEAD 2>/dev/null)
[ -z "$want_commit" ] && want_commit=$(cat "$top_srcdir/.commit" 2>/dev/null)
check_version() {
	local name=$1 bin=$2 out lib
	shift 2
	out=$("$bin" --version)
	if [ -n "$want_commit" ]; then
		echo "$out" | grep -qx "commit $want_commit" &&
			pass "$name --version shows the commit $want_commit" || fail "$name --version commit: $out"
	else
		echo "$out" | grep -qE '^commit [0-9a-f]{7,}$' &&
			pass "$name --version shows a commit" || fail "$name --version commit: $out"
	fi
	for lib in "$@"; do
		echo "$out" | grep -qE "^$lib [0-9]+(\.[0-9]+)*( \(built with\))?$" && pass "$name --version: $(echo "$out" | grep -E "^$lib ")" ||
			fail "$name --version lacks a '$lib VERSION' line: $out"
	done
}
systemd=
grep -q 'define HAVE_SYSTEMD 1' "$top_builddir/autoconfig.h" 2>/dev/null && systemd=systemd
check_version logferry-agent "$LOGFERRY_AGENT" libuv mbedtls libyaml http-parser nanopb $systemd \
	LMDB zstd jansson zlib
check_version logferry-relay "$LOGFERRY_RELAY" libuv mbedtls libyaml http-parser nanopb $systemd \
	librdkafka zstd
"$LOGFERRY_RELAY" --version | grep -qE '^(LMDB|jansson|zlib) ' &&
	fail "the relay lists libraries it does not link: $("$LOGFERRY_RELAY" --version)" ||
	pass "the relay lists only the libraries it links"

# ---- journald: when stderr is the journal, lines start with their priority ----
# systemd names the stream in JOURNAL_STREAM (device:inode of stderr); a
# file named the same way stands in for it.
: >"$T/journal-relay.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/journal-relay.log") \
	start journal-relay "$LOGFERRY_RELAY" -c "$RELAY_CONF"
jpid=$LF_PID
if wait_log "$T/journal-relay.log" "started"; then
	grep -qE '^<6>info: logferry-relay 0\.1\.0 started' "$T/journal-relay.log" &&
		pass "under the journal, info lines start with <6> and no timestamp" ||
		fail "journal lines: $(head -3 "$T/journal-relay.log")"
	grep -vqE '^<[3467]>(error|warn|info|debug): ' "$T/journal-relay.log" &&
		fail "a line without its priority: $(grep -vE '^<[3467]>' "$T/journal-relay.log" | head -2)" ||
		pass "every line under the journal carries its priority"
else
	fail "relay under the journal did not start: $(cat "$T/journal-relay.log")"
fi
kill -TERM "$jpid"; wait_exit "$jpid"
# Another file as stderr: plain lines.
: >"$T/journal-other.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/journal-other.log") \
	start not-journal "$LOGFERRY_RELAY" -c "$RELAY_CONF"
jpid=$LF_PID
wait_log "$T/not-journal.log" "started" && grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.* logferry-relay\[[0-9]+\]: info: ' "$T/not-journal.log" &&
	pass "JOURNAL_STREAM naming another file leaves the lines as they are" ||
	fail "not the journal: $(head -3 "$T/not-journal.log")"
kill -TERM "$jpid"; wait_exit "$jpid"

# ---- log_format: json ----
{ echo "log_format: json"; cat "$AGENT_CONF"; } >"$T/agent-json.yaml"
start agent-json "$LOGFERRY_AGENT" -c "$T/agent-json.yaml"
jpid=$LF_PID
if wait_log "$T/agent-json.log" '"message":"logferry-agent 0\.1\.0 started'; then
	kill -TERM "$jpid"; wait_exit "$jpid"
	python3 - "$T/agent-json.log" <<'PY' && pass "log_format json: every line is a JSON object with time, level, program, pid, message" || fail "json log: $(head -3 "$T/agent-json.log")"
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines
for l in lines:
    o = json.loads(l)
    assert list(o) == ["time", "level", "program", "pid", "message"], o
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", o["time"]), o
    assert o["level"] in ("error", "warn", "info", "debug") and o["program"] == "logferry-agent", o
    assert isinstance(o["pid"], int) and isinstance(o["message"], str), o
assert any(o for o in map(json.loads, lines) if o["message"] == "stopped")
PY
else
	fail "agent with log_format json did not start: $(cat "$T/agent-json.log")"
fi

finish
