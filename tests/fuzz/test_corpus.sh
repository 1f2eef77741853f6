#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Replays every fuzz harness over its seed corpus (and past crashes) with
# the build's own sanitizers: the fuzzers' findings stay fixed.
set -u
: "${top_srcdir:=.}" "${top_builddir:=.}"
status=0
for h in frame eventlist config nginx_parse syslog_parse json_parse http_intake \
	nginx_format nginx_error token; do
	if "$top_builddir/tests/fuzz/fuzz_$h" "$top_srcdir/tests/fuzz/corpus/$h"; then
		echo "ok: fuzz_$h corpus"
	else
		echo "FAIL: fuzz_$h corpus"
		status=1
	fi
done
exit $status
