#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds logferry-agent and logferry-relay from the base commit named in
# tests/compat/BASE (the last commit before event format 2), for
# tests/integration/test_compat.sh: a new agent against an old relay and
# an old agent against a new relay, and spools handed over between them.
#
# usage: build-base.sh GIT_DIR CACHE_DIR
# Exports the commit with git archive into CACHE_DIR/<commit>/src, builds
# only the two daemons (no sanitizers, -j2) and prints the directory that
# holds agent/logferry-agent and relay/logferry-relay. A finished build
# (its stamp file) is reused as it is: the script is cheap the second time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 GIT_DIR CACHE_DIR" >&2; exit 2; }
git_dir=$1
cache=$2
base=$(tr -d ' \n' <"$here/BASE")
dir=$cache/$base
if [ -f "$dir/built" ]; then
	echo "$dir/build"
	exit 0
fi
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
echo "$dir/build"
