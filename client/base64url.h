/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Length of the unpadded base64url text for n bytes, without the NUL. */
size_t base64url_length(size_t n);

/* Encodes n bytes as base64url without padding (RFC 4648 section 5) into
 * out, which must hold base64url_length(n) + 1 bytes; NUL-terminates it.
 * IMPORT sends a legacy secret this way. Returns the text length. */
size_t base64url_encode(const void *p, size_t n, char *out);
