/* SPDX-License-Identifier: MIT */
#pragma once

#include <regex.h>

/* regcomp(), refusing (REG_ESPACE) a pattern glibc would take gigabytes of
 * memory or minutes to compile: nested repeats, a repeat of a repeat. For
 * patterns from configuration nobody vetted, such as nginx's. */
int regcomp_bounded(regex_t *re, const char *pattern, int flags);
