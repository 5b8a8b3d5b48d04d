/* SPDX-License-Identifier: MIT */
#pragma once

/* Include after <cmocka.h>. */
#include <stdlib.h>

#include "config.h"
#include "util.h"

/* The config in text, which must load: otherwise the test fails, showing the
 * loader's one-line error and the text. */
static inline Config *config_or_fail(const char *text)
{
	_cleanup_free_ char *error = NULL;
	Config *c = NULL;
	int r;

	r = config_load_string(text, "test.conf", &c, &error);
	if (r < 0)
		fail_msg("config refused: %s\n--- config:\n%s", error ? error : "(no message)",
		         text);
	assert_null(error);
	assert_non_null(c);
	return c;
}
