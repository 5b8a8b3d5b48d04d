/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The libFuzzer entry point every harness defines. The same harness is linked
 * either with libFuzzer (-Dfuzz=true) or with replay.c, which feeds it every
 * file of the seed corpus as a normal test. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant a harness checks. Not assert(): it must hold also in a build
 * with NDEBUG, and name the broken property when it fails. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A NUL-terminated malloc'd copy of the input, for APIs that take C strings.
 * An embedded NUL simply ends the string early. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	for (size_t i = 0; i < size; i++)
		s[i] = (char)data[i];
	s[size] = '\0';
	return s;
}
