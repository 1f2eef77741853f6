#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The systemd units as built: hardened (systemd-analyze security scores each
# at 2.0 or below), valid (systemd-analyze verify), and installed under the
# prefix when configure was not told where units go. systemd-analyze works
# offline, without systemd running.
. "${srcdir:-.}/tests/integration/lib.sh"

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: systemd-analyze not found (Debian package systemd)"
	exit 77
fi

MAX_EXPOSURE=2.0

# exposure UNIT_FILE: the overall exposure level systemd-analyze gives it.
exposure() {
	systemd-analyze security --offline=true --no-pager "$1" 2>"$T/analyze.err" |
		sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p'
}

test_each_unit_scores_at_most_2_0_in_systemd_analyze_security() {
	local unit score
	for unit in logferry-agent logferry-relay; do
		score=$(exposure "$top_builddir/packaging/$unit.service")
		if [ -z "$score" ]; then
			fail "$unit: systemd-analyze security gave no score: $(cat "$T/analyze.err")"
		elif awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s > max) }'; then
			fail "$unit: exposure $score is above $MAX_EXPOSURE; what it still allows:"
			systemd-analyze security --offline=true --no-pager \
				"$top_builddir/packaging/$unit.service" 2>&1 | grep '✗'
		else
			pass "$unit: exposure $score <= $MAX_EXPOSURE"
		fi
	done
}

# verify checks that ExecStart= names an executable: the copies verified
# run the daemons of this build instead of the installed ones.
test_each_unit_passes_systemd_analyze_verify() {
	local unit bin out
	mkdir -p "$T/units"
	for unit in logferry-agent logferry-relay; do
		case $unit in
		logferry-agent) bin=$LOGFERRY_AGENT ;;
		logferry-relay) bin=$LOGFERRY_RELAY ;;
		esac
		sed "s|^ExecStart=[^ ]*|ExecStart=$bin|" "$top_builddir/packaging/$unit.service" \
			>"$T/units/$unit.service"
		if out=$(systemd-analyze verify --man=no "$T/units/$unit.service" 2>&1) &&
			[ -z "$out" ]; then
			pass "$unit: systemd-analyze verify"
		else
			fail "$unit: systemd-analyze verify: $out"
		fi
	done
}

# make install with the default flags keeps everything under the prefix:
# units in PREFIX/lib/systemd/system, not in the system's /lib.
test_units_follow_the_prefix_by_default() {
	local dir=$T/prefix-build out
	mkdir -p "$dir"
	if ! (cd "$dir" && "$top_srcdir/configure" --prefix=/opt/lf-prefix >configure.out 2>&1); then
		fail "configure --prefix=/opt/lf-prefix failed: $(tail -5 "$dir/configure.out")"
		return
	fi
	# Not the make running this test's flags (-w prints directories).
	out=$(MAKEFLAGS= MFLAGS= MAKELEVEL= make -C "$dir" -s --no-print-directory -f Makefile -f - print-unitdir <<'EOF'
print-unitdir:
	@echo '$(systemdsystemunitdir)'
EOF
)
	if [ "$out" = /opt/lf-prefix/lib/systemd/system ]; then
		pass "default configure installs units in \$prefix/lib/systemd/system"
	else
		fail "default configure installs units in '$out', not /opt/lf-prefix/lib/systemd/system"
	fi
}

test_each_unit_scores_at_most_2_0_in_systemd_analyze_security
test_each_unit_passes_systemd_analyze_verify
test_units_follow_the_prefix_by_default
finish
