#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make check, RUNS times in a row (3 by default), while two CPU-bound
# processes run beside it (Debian's stress-ng --cpu 2): the proof that no
# test depends on timing (issue 14, item 11). Run from a configured build
# directory, or through `make check-stress`. Not part of make check or CI.
#
#   MAKE   make to run (default make), JOBS  its -j (default 2)
#   TESTS  passed on to make check when set (a subset of the tests)
#
# Prints each run's result and wall time; exits 1 when any run failed.
set -u

runs=${1:-3}
make=${MAKE:-make}
jobs=${JOBS:-2}
command -v stress-ng >/dev/null ||
	{ echo "check-stress: stress-ng is not installed (packaging/install-deps.sh installs it)"; exit 77; }
[ -f Makefile ] || { echo "check-stress: run this in a configured build directory"; exit 2; }

# The build first, without the load: the point is the tests.
$make -j"$jobs" >/dev/null || { echo "check-stress: the build failed"; exit 1; }

stress-ng --cpu 2 --timeout 0 --quiet &
stress=$!
# Stopped by its PID whatever way this script ends; it stops its workers.
trap 'kill -TERM "$stress" 2>/dev/null; wait "$stress" 2>/dev/null' EXIT
trap 'exit 1' HUP INT TERM

failed=0
for ((i = 1; i <= runs; i++)); do
	start=$(date +%s)
	if [ -n "${TESTS+set}" ]; then
		$make -j"$jobs" check TESTS="$TESTS" >"check-stress.$i.out" 2>&1
	else
		$make -j"$jobs" check >"check-stress.$i.out" 2>&1
	fi
	rc=$?
	secs=$(($(date +%s) - start))
	# The next run overwrites the tests' logs: keep this run's failures.
	cp test-suite.log "check-stress.$i.test-suite.log" 2>/dev/null
	summary=$(sed -n 's/^# \(PASS\|FAIL\|ERROR\|SKIP\): *\([0-9]*\)$/\1 \2/p' "check-stress.$i.out" |
		tr '\n' ' ')
	if [ "$rc" -eq 0 ]; then
		echo "check-stress: run $i of $runs passed in $secs s: $summary"
	else
		failed=$((failed + 1))
		echo "check-stress: run $i of $runs FAILED in $secs s: $summary(see check-stress.$i.out and check-stress.$i.test-suite.log)"
		grep -E '^(FAIL|ERROR):' "check-stress.$i.out"
	fi
done
echo "check-stress: $((runs - failed)) of $runs runs passed beside stress-ng --cpu 2"
[ "$failed" -eq 0 ]
