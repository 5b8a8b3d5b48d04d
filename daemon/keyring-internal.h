/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>

#include "keyring.h"

/* Shared by keyring.c (the model) and keyring-file.c (its file format). */

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static inline int errno_or(int fallback)
{
	return errno > 0 ? -errno : fallback;
}

/* Copies len (1 to KEY_SECRET_MAX) bytes of a secret into its own
 * sodium_malloc'd, read-only, NUL-terminated string. Returns 0 or a negative
 * errno. */
int key_secret_new(const void *data, size_t len, char **ret);
