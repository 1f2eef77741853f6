/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cert_fixture: the certificates tests/tools/make-certs.sh makes (root CA,
 * intermediate, relay, agents web-01 and web-02, expired, other CA,
 * intruder), in a temporary directory, for the unit tests that run TLS.
 */
#ifndef LOGFERRY_CERT_FIXTURE_H
#define LOGFERRY_CERT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the openssl CLI that make-certs.sh needs is installed (else skip: 77). */
bool cert_fixture_available(void);

/*
 * Makes the certificates in a new directory $TMPDIR/<name>.XXXXXX, whose
 * path goes to dir. Returns 0, or -1 after printing what failed.
 */
int cert_fixture_make(const char *name, char *dir, size_t dirlen);

/* Removes the directory and everything in it; "" does nothing. */
void cert_fixture_remove(const char *dir);

/*
 * For cmocka_run_group_tests: makes the certificates in cert_fixture_dir
 * (named after the test program) and removes them after the group.
 */
extern char cert_fixture_dir[256];
int cert_fixture_group_setup(void **state);
int cert_fixture_group_teardown(void **state);

#endif
