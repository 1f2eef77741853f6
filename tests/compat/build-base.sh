#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds logferry-agent and logferry-relay from each base commit named in
# tests/compat/BASE, one a line: f465bcd, the last commit before event
# format 2 (format 1 only), and 596862b, the last before format 3 (formats
# 1 and 2). For tests/integration/test_compat.sh: a new agent against an
# old relay and an old agent against a new relay, and spools handed over
# between them, against each base.
#
# usage: build-base.sh GIT_DIR CACHE_DIR
# Exports each commit with git archive into CACHE_DIR/<commit>/src, builds
# only the two daemons (no sanitizers, -j2) and prints one line: the
# directories that hold agent/logferry-agent and relay/logferry-relay, in
# BASE's order, separated by ':' (test_compat.sh's LOGFERRY_COMPAT_DIR). A
# finished build (its stamp file) is reused as it is: the script is cheap
# the second time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 GIT_DIR CACHE_DIR" >&2; exit 2; }
git_dir=$1
cache=$2

# build COMMIT: builds it in $cache/COMMIT unless already built; exits on failure.
build() {
	local base=$1 dir=$cache/$1
	[ -f "$dir/built" ] && return 0
	git --git-dir="$git_dir" cat-file -e "$base^{commit}" 2>/dev/null || {
		echo "build-base.sh: commit $base (tests/compat/BASE) is not in $git_dir; fetch it" >&2
		exit 1
	}
	rm -rf "$dir"
	mkdir -p "$dir/src" "$dir/build"
	git --git-dir="$git_dir" archive --format=tar "$base" | tar -x -C "$dir/src"
	# No .git in an export: the daemons' --version takes the commit from here.
	echo "${base:0:7}" >"$dir/src/.commit"
	{
		(cd "$dir/src" && ./bootstrap.sh) &&
		(cd "$dir/build" && ../src/configure) &&
		# The generated sources first (BUILT_SOURCES, which only "all" builds).
		make -C "$dir/build" common/commit.h proto/logferry.pb.c proto/logferry.pb.h &&
		make -C "$dir/build" -j2 agent/logferry-agent relay/logferry-relay
	} >"$dir/build.log" 2>&1 || {
		echo "build-base.sh: building $base failed; the last lines of $dir/build.log:" >&2
		tail -n 30 "$dir/build.log" >&2
		exit 1
	}
	touch "$dir/built"
}

# Read first: the builds must not read the rest of BASE from their stdin.
mapfile -t bases < <(tr -d ' \t' <"$here/BASE" | grep -v '^$' || true)
dirs=
for base in "${bases[@]}"; do
	build "$base"
	dirs=${dirs:+$dirs:}$cache/$base/build
done
[ -n "$dirs" ] || { echo "build-base.sh: $here/BASE names no commit" >&2; exit 1; }
echo "$dirs"
