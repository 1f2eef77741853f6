#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The NGINX parsers read what a real NGINX (Debian's nginx-light) writes:
# Debian's `main` format extended with timings and upstream variables, an
# escape=json format, the default combined, and the error log with its
# local times, after requests that exercise escaping, a 404, a proxied
# request and one to a dead upstream.
. "$(dirname "$0")/lib.sh"

NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "SKIP: no nginx (packaging/install-deps.sh installs nginx-light)"; exit 77; }
: "${NGINX_PARSE_FILE:=$top_builddir/tests/tools/nginx_parse_file}"

# A zone without DST and off UTC by half an hour: a time read in the wrong
# zone is hours off.
ZONE=Asia/Kolkata
PORT=$(free_port)
UP=$(free_port)
DEAD=$(free_port)
ADDR=$LF_IP:$PORT

MAIN_FORMAT="log_format main '\$remote_addr - \$remote_user [\$time_local] \"\$request\" '
                  '\$status \$body_bytes_sent \"\$http_referer\" '
                  '\"\$http_user_agent\" \"\$http_x_forwarded_for\" '
                  '\$request_time \$upstream_response_time \$upstream_addr';"
JSON_FORMAT="log_format j escape=json '{\"time\":\"\$time_iso8601\",\"msec\":\$msec,'
                  '\"addr\":\"\$remote_addr\",\"request\":\"\$request\",\"status\":\$status,'
                  '\"bytes\":\$bytes_sent,\"ua\":\"\$http_user_agent\",'
                  '\"rt\":\$request_time,\"ust\":\"\$upstream_status\",'
                  '\"urt\":\"\$upstream_response_time\",\"uct\":\"\$upstream_connect_time\"}';"

mkdir -p "$T/www" "$T/tmp"
echo hello >"$T/www/index.html"
user=
[ "$(id -u)" -eq 0 ] && user="user root root;"
cat >"$T/nginx.conf" <<CONF
$user
worker_processes 1;
pid $T/nginx.pid;
error_log $T/error.log info;
events { worker_connections 64; }
http {
	client_body_temp_path $T/tmp/body;
	proxy_temp_path $T/tmp/proxy;
	fastcgi_temp_path $T/tmp/fastcgi;
	uwsgi_temp_path $T/tmp/uwsgi;
	scgi_temp_path $T/tmp/scgi;
	$MAIN_FORMAT
	$JSON_FORMAT
	server {
		listen $ADDR;
		server_name localhost;
		root $T/www;
		access_log $T/main.log main;
		access_log $T/json.log j;
		access_log $T/combined.log;
		location /up/ { proxy_pass http://$LF_IP:$UP/; }
		location /dead/ { proxy_pass http://$LF_IP:$DEAD/; }
	}
	server {
		listen $LF_IP:$UP;
		access_log off;
		location / { return 200 "upstream\n"; }
	}
}
CONF

start nginx env TZ=$ZONE "$NGINX" -p "$T" -c "$T/nginx.conf" -g 'daemon off;'
NGINX_PID=$LF_PID
# NGINX writes its pid file once its listening sockets are bound.
wait_log "$T/nginx.pid" '^[0-9]+$' 60 || { cat "$T/nginx.log"; fail "nginx did not start"; finish; }

get_url() { # PATH [CURL ARGS...]: the status code, from LF_IP (the error log's client)
	local path=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --interface "$LF_IP" "$@" "http://$ADDR$path"
}
# Only the first request retries: curl's --retry also repeats a 502.
[ "$(get_url / --retry 5 --retry-connrefused -H 'X-Forwarded-For: 198.51.100.1, 10.0.0.2' -e 'https://example.com/')" = 200 ] ||
	fail "GET / did not answer 200"
[ "$(get_url '/a"b\c?q="x"' -A $'say "hi" \\ caf\xc3\xa9\x01')" = 404 ] ||
	fail "the odd request did not answer 404"
[ "$(get_url /missing)" = 404 ] || fail "GET /missing did not answer 404"
[ "$(get_url /up/x)" = 200 ] || fail "the proxied request did not answer 200"
[ "$(get_url /dead/y)" = 502 ] || fail "the request to a dead upstream did not answer 502"
kill -QUIT "$NGINX_PID"
wait_exit "$NGINX_PID" 60 || fail "nginx did not stop"

# parsed NAME MODE ARGS...: the driver's output in $T/NAME.out; every line must parse.
parsed() {
	local name=$1
	shift
	if "$NGINX_PARSE_FILE" "$@" >"$T/$name.out" 2>&1; then
		pass "every line of $name parses ($(grep -c '^line' "$T/$name.out") lines)"
	else
		fail "$name: $(grep -m3 -E 'error|nginx_parse_file' "$T/$name.out")"
	fi
}
# has NAME 'FIELD<TAB>TYPE<TAB>VALUE' WHAT: a line of NAME has that field.
has() {
	if grep -qxF -- "$(printf '\t%s' "$2")" "$T/$1.out"; then
		pass "$1: $3"
	else
		fail "$1: $3: no '$2' in:"
		cat "$T/$1.out"
	fi
}
TAB=$'\t'

parsed main access "$MAIN_FORMAT" "$T/main.log"
[ "$(grep -c '^line' "$T/main.out")" -eq 5 ] || fail "main.log has not 5 lines"
has main "status${TAB}integer${TAB}200" "status is an integer"
has main "http_x_forwarded_for${TAB}slice${TAB}198.51.100.1, 10.0.0.2" "X-Forwarded-For as sent"
has main "http_referer${TAB}slice${TAB}https://example.com/" "the referer"
has main "path${TAB}text${TAB}/a\"b\\x5Cc?q=\"x\"" "\\xHH in the request decoded"
has main "http_user_agent${TAB}text${TAB}say \"hi\" \\x5C caf\\xC3\\xA9\\x01" "\\xHH in the user agent decoded"
has main "upstream_addr${TAB}json${TAB}[\"$LF_IP:$UP\"]" "upstream_addr is an array"
has main "upstream_addr${TAB}json${TAB}[\"$LF_IP:$DEAD\"]" "the dead upstream's address"
grep -q "^${TAB}upstream_response_time${TAB}json${TAB}\[[0-9]\.[0-9][0-9][0-9]\]$" "$T/main.out" &&
	pass "main: upstream_response_time is an array of numbers" ||
	fail "main: no upstream_response_time array"
grep -q "^${TAB}request_time${TAB}number${TAB}" "$T/main.out" &&
	pass "main: request_time is a number" || fail "main: request_time is not a number"
grep -q "^${TAB}time_local${TAB}slice${TAB}.* +0530$" "$T/main.out" &&
	pass "main: time_local in NGINX's zone" || fail "main: time_local is not +0530"

parsed json access "$JSON_FORMAT" "$T/json.log"
has json "status${TAB}integer${TAB}502" "status is an integer"
has json "upstream_status${TAB}json${TAB}[200]" "upstream_status is an array of integers"
has json "upstream_status${TAB}json${TAB}[502]" "the dead upstream's status"
has json "request${TAB}text${TAB}GET /a\"b\\x5Cc?q=\"x\" HTTP/1.1" "JSON escapes in the request decoded"
has json "http_user_agent${TAB}text${TAB}say \"hi\" \\x5C caf\\xC3\\xA9\\x01" "JSON escapes in the user agent decoded"
grep -q "^${TAB}msec${TAB}number${TAB}" "$T/json.out" && pass "json: msec is a number" ||
	fail "json: msec is not a number"
if grep -q "^${TAB}upstream_connect_time" "$T/json.out" &&
	! grep -q "^${TAB}upstream_status${TAB}json${TAB}\[\]" "$T/json.out"; then
	pass "json: upstream fields of unproxied requests are omitted, not empty arrays"
else
	fail "json: upstream fields wrong"
fi

parsed combined combined "$T/combined.log"
parsed combined_compiled access \
	"'\$remote_addr - \$remote_user [\$time_local] \"\$request\" \$status \$body_bytes_sent \"\$http_referer\" \"\$http_user_agent\"'" \
	"$T/combined.log"
has combined "status${TAB}integer${TAB}404" "nginx_combined reads the default format"
has combined_compiled "status${TAB}integer${TAB}404" "the compiled combined reads it too"

# The error log: the event times, read in NGINX's zone, are now (not 5.5 hours off).
parsed error error "$T/error.log" "$ZONE"
has error "level${TAB}slice${TAB}error" "the level"
has error "upstream${TAB}slice${TAB}http://$LF_IP:$DEAD/y" "the dead upstream"
has error "request${TAB}slice${TAB}GET /dead/y HTTP/1.1" "the request"
has error "path${TAB}slice${TAB}/dead/y" "the request's path"
has error "host${TAB}slice${TAB}$ADDR" "the host"
has error "client${TAB}slice${TAB}$LF_IP" "the client"
has error "server${TAB}slice${TAB}localhost" "the server"
grep -q "^${TAB}message${TAB}slice${TAB}connect() failed (111: Connection refused) while connecting to upstream$" \
	"$T/error.out" && pass "error: the message without its context" || fail "error: no connect() message"
grep -q "^${TAB}message${TAB}slice${TAB}open() \"$T/www/missing\" failed (2: No such file or directory)$" \
	"$T/error.out" && pass "error: the 404's open() message" || fail "error: no open() message"
grep -q "^${TAB}connection${TAB}integer${TAB}[0-9]" "$T/error.out" &&
	pass "error: the connection number" || fail "error: no connection number"
now=$(date +%s)
off=0
while read -r ts; do
	d=$(( ${ts#ts=} / 1000000000 - now ))
	d=${d#-}
	[ "$d" -gt "$off" ] && off=$d
done < <(grep -o 'ts=[0-9]*' "$T/error.out")
[ "$off" -lt 3600 ] && pass "error: times read in NGINX's zone (off by at most ${off}s)" ||
	fail "error: a time is ${off}s off: not read in $ZONE"

# The agent with these formats (--backfill reads the logs once into its spool).
{
	cat <<CONF
id: web-01
data_dir: $T/agent
sources:
  - name: access
    type: file
    paths: [$T/main.log]
    format: nginx
    log_format: |
CONF
	printf '%s\n' "$MAIN_FORMAT" | sed 's/^ */      /'
	cat <<CONF
  - name: errors
    type: file
    paths: [$T/error.log]
    format: nginx_error
    timezone: $ZONE
CONF
} >"$T/agent.yaml"
"$LOGFERRY_AGENT" -c "$T/agent.yaml" --check >"$T/check.out" 2>&1 &&
	pass "agent: format nginx with the log_format of nginx.conf passes --check" ||
	fail "agent --check: $(cat "$T/check.out")"
"$LOGFERRY_AGENT" -c "$T/agent.yaml" --backfill >"$T/backfill.out" 2>&1 ||
	fail "agent --backfill: $(tail -3 "$T/backfill.out")"
"$LOGFERRY_AGENT" -c "$T/agent.yaml" --spool-dump >"$T/agent-dump.json" 2>&1 ||
	fail "agent --spool-dump: $(tail -3 "$T/agent-dump.json")"
python3 - "$T/agent-dump.json" "$LF_IP:$UP" <<'PY' && pass "agent: typed nginx fields and error-log fields in the spool" ||
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
acc = [e for e in evs if e.get('source', '').endswith('main.log')]
err = [e for e in evs if e.get('source', '').endswith('error.log')]
# request_time is a number: 0.000 is written as 0 in JSON.
checks = {
    '5 access events': len(acc) == 5,
    'status an integer, no parse_error': all(isinstance(e['fields'].get('status'), int) and
                                             'parse_error' not in e['fields'] for e in acc),
    'upstream_addr an array': any(e['fields'].get('upstream_addr') == [sys.argv[2]] for e in acc),
    'request_time a number': all(isinstance(e['fields'].get('request_time'), (int, float)) for e in acc),
    'error events with a level': len(err) > 0 and all('level' in e['fields'] for e in err),
}
bad = [k for k, v in checks.items() if not v]
print(len(acc), 'access events,', len(err), 'error events; failed:', bad, json.dumps(acc[:2]) if bad else '')
sys.exit(1 if bad else 0)
PY
	fail "agent: the spooled events are not what NGINX logged"
sed -e 's/format: nginx$/format: raw/' "$T/agent.yaml" >"$T/agent-raw.yaml"
out=$("$LOGFERRY_AGENT" -c "$T/agent-raw.yaml" --check 2>&1)
echo "$out" | grep -q "agent-raw.yaml:[0-9]*: sources\[0\].log_format: is for format: nginx only" &&
	pass "agent: log_format with another format is an error at its line" || fail "log_format with raw: $out"
sed -e 's/\$status/$status$body_bytes_sent/' "$T/agent.yaml" >"$T/agent-bad.yaml"
out=$("$LOGFERRY_AGENT" -c "$T/agent-bad.yaml" --check 2>&1)
[ $? -eq 2 ] && echo "$out" | grep -q "agent-bad.yaml:[0-9]*: sources\[0\].log_format: " &&
	pass "agent: a log_format that cannot be parsed is an error at its line" || fail "bad log_format: $out"

finish
