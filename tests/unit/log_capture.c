/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "tests/unit/log_capture.h"

void
log_capture_start(struct log_capture *lc, const char *progname, const char *debug_env)
{
	memset(lc, 0, sizeof(*lc));
	lc->debug_env = debug_env;
	lc->f = open_memstream(&lc->buf, &lc->len);
	assert_non_null(lc->f);
	log_init(progname, getenv(debug_env) != NULL ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	log_set_output(lc->f);
	log_set_ratelimit(0, 0);
}

const char *
log_capture_text(struct log_capture *lc)
{
	fflush(lc->f);
	return lc->buf != NULL ? lc->buf : "";
}

void
log_capture_stop(struct log_capture *lc)
{
	log_set_output(NULL);
	fclose(lc->f);
	if (getenv(lc->debug_env) != NULL)
		fprintf(stderr, "---- log\n%s----\n", lc->buf != NULL ? lc->buf : "");
	free(lc->buf);
	memset(lc, 0, sizeof(*lc));
}

void
log_capture_expect(struct log_capture *lc, const char *text)
{
	if (strstr(log_capture_text(lc), text) == NULL)
		fail_msg("not logged: \"%s\"; the log:\n%s", text, log_capture_text(lc));
}
