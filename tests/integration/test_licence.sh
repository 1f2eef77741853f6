#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The licence (issue 16 item 1): LICENSE is Apache-2.0, debian/copyright
# says so in machine-readable form, and every source file carries an SPDX
# line, so that a file copied out of the tree still says under which terms.
. "$srcdir/tests/integration/lib.sh"
cd "$top_srcdir" || exit 1

grep -q "Apache License" LICENSE && grep -q "Version 2.0, January 2004" LICENSE &&
	pass "LICENSE is the Apache License 2.0" || fail "LICENSE is not Apache-2.0"
grep -q "^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" debian/copyright &&
	grep -q "^License: Apache-2.0" debian/copyright &&
	pass "debian/copyright is machine-readable and says Apache-2.0" ||
	fail "debian/copyright: not DEP-5 or not Apache-2.0"

# The sources: git's list in a checkout; in a tarball, what it holds (no
# generated files: those of an in-tree build are left out by name).
if [ -e .git ]; then
	files=$(git ls-files '*.c' '*.h' '*.sh' '*.py' '*.proto' '*.am' '*.ac' '*.dict' '*.service.in')
else
	files=$(find agent common relay proto tests bench packaging \
		\( -name '*.[ch]' -o -name '*.sh' -o -name '*.py' -o -name '*.proto' \
		-o -name '*.dict' -o -name '*.service.in' \) \
		! -name '*.pb.[ch]' ! -name commit.h -print) 
	files="$files Makefile.am configure.ac"
fi
n=$(echo "$files" | wc -w)
missing=$(echo "$files" | xargs grep -L 'SPDX-License-Identifier: Apache-2.0' 2>/dev/null)
[ "$n" -gt 100 ] && [ -z "$missing" ] && pass "all $n source files carry an SPDX line" ||
	fail "of $n source files, these lack 'SPDX-License-Identifier: Apache-2.0': $missing"
finish
