/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes what a sender controls of the token handling, and the token file
 * parser: any bytes as an Authorization value must give a token or -EINVAL,
 * any token a sender or none, and any bytes as a token file a set or an
 * error with its message, never a crash, a leak or a read out of bounds.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed set the presented tokens are looked up in. */
static const char fuzz_tokens[] =
	"0123456789abcdef0123456789abcdef app\n"
	"fedcba9876543210fedcba9876543210 app\n"
	"# a comment\n"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx dmp\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct token_limits lim = { 1000, 10, 65536, 0 };
	struct token_set *fixed = NULL, *s = NULL;
	struct token_sender *t;
	const uint8_t *tok;
	char err[512];
	size_t len;
	uint64_t retry;
	/* Copied, so that a read past the input is one past a heap block that ASan sees. */
	char *copy = malloc(size > 0 ? size : 1);

	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	if (token_set_parse("fuzz", fuzz_tokens, sizeof(fuzz_tokens) - 1, 16, &fixed, err,
	    sizeof(err)) != 0)
		abort();
	if (token_bearer(copy, size, &tok, &len) == 0) {
		if (tok < (const uint8_t *)copy || tok + len > (const uint8_t *)copy + size || len == 0)
			abort();
		if ((t = token_set_find(fixed, tok, len)) != NULL) {
			/* The first look at a request's head, then its whole cost. */
			(void)token_ready(t, &lim, 1, size, 1000000000, &retry);
			(void)token_admit(t, &lim, 1, size, 1000000000, &retry);
			if (token_set_sender(fixed, token_sender_name(t)) != t)
				abort();
		}
	}
	(void)token_set_find(fixed, (const uint8_t *)copy, size);
	/* The same bytes as a token file. */
	switch (token_set_parse("fuzz", copy, size, 64, &s, err, sizeof(err))) {
	case 0:
		token_set_carry(s, fixed);
		if (token_set_count(s) > 64)
			abort();
		token_set_free(s);
		break;
	case -EINVAL:
		if (strncmp(err, "fuzz:", 5) != 0)
			abort();
		break;
	case -ENOMEM:
		break;
	default:
		abort();
	}
	token_set_free(fixed);
	free(copy);
	return 0;
}
