/* SPDX-License-Identifier: Apache-2.0 */
/* Loading a daemon's configuration in unit tests: see config_fixture.h. */
#include "autoconfig.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/config_fixture.h"

char ca_path[64], cert_path[64], key_path[64];

static void
make_temp_file(char *path, size_t len, const char *what)
{
	int fd;

	snprintf(path, len, "/tmp/logferry-test-%s-XXXXXX", what);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not really PEM\n", 15), 15);
	assert_int_equal(close(fd), 0);
}

int
setup_tls_files(void **state)
{
	(void)state;
	make_temp_file(ca_path, sizeof(ca_path), "ca");
	make_temp_file(cert_path, sizeof(cert_path), "cert");
	make_temp_file(key_path, sizeof(key_path), "key");
	return 0;
}

int
remove_tls_files(void **state)
{
	(void)state;
	unlink(ca_path);
	unlink(cert_path);
	unlink(key_path);
	return 0;
}

/* The template with @CA@, @CERT@ and @KEY@ replaced (caller frees). */
static char *
subst(const char *tmpl)
{
	static const struct { const char *mark; const char *path; } marks[] = {
		{ "@CA@", ca_path }, { "@CERT@", cert_path }, { "@KEY@", key_path },
	};
	size_t cap = strlen(tmpl) + 3 * 64 * 8 + 1, len = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	for (const char *p = tmpl; *p;) {
		bool replaced = false;

		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
			size_t n = strlen(marks[i].mark), m = strlen(marks[i].path);

			if (strncmp(p, marks[i].mark, n) == 0) {
				assert_true(len + m < cap);
				memcpy(out + len, marks[i].path, m);
				len += m;
				p += n;
				replaced = true;
				break;
			}
		}
		if (!replaced) {
			assert_true(len + 1 < cap);
			out[len++] = *p++;
		}
	}
	out[len] = '\0';
	return out;
}

int
fixture_load(const char *tmpl, void *cfg, char **err)
{
	char *yaml = subst(tmpl);
	size_t errlen = 0;
	FILE *f;
	int r;

	*err = NULL;
	f = open_memstream(err, &errlen);
	assert_non_null(f);
	r = config_load_string(fixture_schema, fixture_name, yaml, strlen(yaml), cfg, f);
	assert_int_equal(fclose(f), 0);
	free(yaml);
	return r;
}

void
fixture_load_ok(const char *tmpl, void *cfg)
{
	char *err;
	int r = fixture_load(tmpl, cfg, &err);

	assert_string_equal(err, "");
	assert_int_equal(r, 0);
	free(err);
}

void
fixture_expect_errors(const char *tmpl, const char *expected)
{
	void *cfg = calloc(1, fixture_schema->size);
	char *err;
	int r;

	assert_non_null(cfg);
	r = fixture_load(tmpl, cfg, &err);
	assert_string_equal(err, expected);
	assert_int_equal(r, -EINVAL);
	config_free(fixture_schema, cfg);
	free(cfg);
	free(err);
}

const char *
string_at(const struct config_list *l, size_t i)
{
	assert_true(i < l->n);
	return ((char *const *)l->items)[i];
}

const struct config_addr *
addr_at(const struct config_list *l, size_t i)
{
	assert_true(i < l->n);
	return (const struct config_addr *)l->items + i;
}

void
assert_addr(const struct config_addr *a, enum config_scheme scheme,
    const char *host, uint16_t port, const char *path, const char *text)
{
	assert_int_equal(a->scheme, scheme);
	if (host == NULL)
		assert_null(a->host);
	else
		assert_string_equal(a->host, host);
	assert_int_equal(a->port, port);
	if (path == NULL)
		assert_null(a->path);
	else
		assert_string_equal(a->path, path);
	assert_string_equal(a->text, text);
}
