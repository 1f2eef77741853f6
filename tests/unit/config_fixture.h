/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config_fixture: loading a daemon's configuration in unit tests.
 *
 * The TLS validators check that files are readable, so tests use real
 * temporary files: YAML given to these functions writes @CA@, @CERT@ and
 * @KEY@ for their paths. Each test program sets fixture_schema and
 * fixture_name (the file name in messages) before its tests run.
 */
#ifndef LOGFERRY_CONFIG_FIXTURE_H
#define LOGFERRY_CONFIG_FIXTURE_H

#include <stdint.h>

#include "common/config.h"

extern const struct config_schema *fixture_schema;
extern const char *fixture_name;
extern char ca_path[64], cert_path[64], key_path[64];

/* cmocka group setup/teardown: create and remove the TLS files. */
int setup_tls_files(void **state);
int remove_tls_files(void **state);

/* Loads tmpl into cfg; *err gets everything printed (caller frees). */
int fixture_load(const char *tmpl, void *cfg, char **err);

/* Loads a configuration that must be valid and print nothing. */
void fixture_load_ok(const char *tmpl, void *cfg);

/* Loads a configuration that must be refused with exactly these lines. */
void fixture_expect_errors(const char *tmpl, const char *expected);

/* Element i of a list of strings / of addresses (asserts i is in range). */
const char *string_at(const struct config_list *l, size_t i);
const struct config_addr *addr_at(const struct config_list *l, size_t i);

/* Asserts every part of a parsed address; path NULL for host:port ones. */
void assert_addr(const struct config_addr *a, enum config_scheme scheme,
    const char *host, uint16_t port, const char *path, const char *text);

/* Short names for the tests. */
#define load fixture_load
#define load_ok fixture_load_ok
#define expect_errors fixture_expect_errors

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

#endif
