/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/unit/cert_fixture.h"

bool
cert_fixture_available(void)
{
	return system("command -v openssl >/dev/null 2>&1") == 0;
}

int
cert_fixture_make(const char *name, char *dir, size_t dirlen)
{
	const char *top = getenv("top_srcdir");
	const char *tmp = getenv("TMPDIR");
	char cmd[1024];

	if (top == NULL || top[0] == '\0')
		top = access("tests/tools/make-certs.sh", R_OK) == 0 ? "." : "../..";
	snprintf(dir, dirlen, "%s/%s.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", name);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		dir[0] = '\0';
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/tools/make-certs.sh' '%s'", top, dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "%s: %s failed\n", name, cmd);
		return -1;
	}
	return 0;
}

static int
cert_fixture_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
cert_fixture_remove(const char *dir)
{
	if (dir[0] != '\0')
		(void)nftw(dir, cert_fixture_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char cert_fixture_dir[256];

int
cert_fixture_group_setup(void **state)
{
	(void)state;
	return cert_fixture_make(program_invocation_short_name, cert_fixture_dir,
	    sizeof(cert_fixture_dir));
}

int
cert_fixture_group_teardown(void **state)
{
	(void)state;
	cert_fixture_remove(cert_fixture_dir);
	return 0;
}
