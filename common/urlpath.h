/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The URL path codec. nginx hashes $uri, the percent-DECODED, normalised path;
 * links must carry a percent-ENCODED path that nginx decodes back to exactly
 * the bytes we hashed. */

/* Decodes a URL path the way nginx computes $uri from it: percent-escapes
 * decoded (a decoded '/' counts as a separator), runs of '/' merged into one.
 * Input must start with '/', hold no spaces, control bytes, '?' or '#'; raw
 * UTF-8 (bytes >= 0x80) is passed through. Rejected: bad or truncated escapes,
 * a decoded NUL, "." and ".." segments (also when written as %2E).
 * Returns 0 with a malloc'd NUL-terminated path, or -EINVAL with *ret_reason
 * set to a static one-line reason ("bad percent-escape", ...). */
int urlpath_decode(const char *in, size_t len, char **ret, const char **ret_reason);

/* Encodes a decoded path canonically: every byte except A-Z a-z 0-9 - . _ ~ and
 * '/' becomes %XX (upper-case hex). urlpath_decode(urlpath_encode(p)) == p for
 * every path urlpath_decode() produces. Returns 0 or -ENOMEM. */
int urlpath_encode(const char *path, char **ret);

/* Whether the len bytes at path are text: well-formed UTF-8 (RFC 3629: no
 * overlong form, no surrogate, nothing above U+10FFFF, no stray or missing
 * continuation byte) without control characters (C0 U+0000-U+001F, DEL
 * U+007F, C1 U+0080-U+009F). Returns true; or false with the offset of the
 * offending sequence's first byte and a static one-line reason, each unless
 * NULL. */
bool urlpath_is_text(const char *path, size_t len, size_t *ret_offset, const char **ret_reason);

/* Splits a SIGN/VERIFY target into its origin and path. A target starting
 * with a single '/' has an empty origin. An absolute "http://" or "https://"
 * URL keeps "scheme://host[:port]" as origin (host: letters, digits, '-',
 * '.', or a bracketed IPv6 literal; port 1-65535), lower-cased scheme; a
 * scheme-relative "//host[:port]/..." keeps "//host[:port]". The path is the
 * rest, "/" when empty. A query string or fragment is rejected.
 * Returns 0 with both malloc'd (path still encoded), or -EINVAL with a static
 * reason. */
int urlpath_split_target(const char *target, char **ret_origin, char **ret_path,
                         const char **ret_reason);

/* The allocation-free forms of the above, for the signing hot path; each
 * behaves exactly like its allocating counterpart. */

/* urlpath_decode() into out, which must hold len + 1 bytes (decoding only
 * ever shrinks). Returns 0 and the decoded length (out is NUL-terminated),
 * and *ret_canonical (unless NULL) true when the input already is
 * urlpath_encode() of the result (plain paths: no escape, no merged slash,
 * only bytes the encoder keeps), so the caller can skip encoding; false
 * otherwise, also for a few inputs that would encode back to themselves.
 * Or -EINVAL with a reason. */
int urlpath_decode_to(const char *in, size_t len, char *out, size_t *ret_len, bool *ret_canonical,
                      const char **ret_reason);

/* urlpath_decode_to(), except that "." and ".." segments are resolved as
 * nginx resolves them in $uri ("/a/b/../c" -> "/a/c") instead of refused; a
 * ".." above the root is refused (-EINVAL), as nginx answers 400. For
 * checking links as nginx would; signing refuses dot segments. */
int urlpath_resolve_to(const char *in, size_t len, char *out, size_t *ret_len,
                       const char **ret_reason);

/* The length urlpath_encode() produces for the len bytes at path. */
size_t urlpath_encoded_len(const char *path, size_t len);
/* urlpath_encode() of the len bytes at path into out, which must hold
 * urlpath_encoded_len() bytes (no NUL is written). Returns that length. */
size_t urlpath_encode_to(const char *path, size_t len, char *out);

/* A target split in place: what urlpath_split_target() returns, as pointers
 * into the target. */
typedef struct UrlTarget {
	const char *scheme; /* "http" or "https" (lower case), "" for "//host",
	                     * NULL: no origin */
	const char *host;   /* host[:port] as written */
	size_t host_len;
	const char *path; /* still encoded; "/" when the URL has none */
	size_t path_len;
} UrlTarget;

/* urlpath_split_target() of the len bytes at target (no NUL needed).
 * Returns 0, or -EINVAL with a static reason. */
int urlpath_parse_target(const char *target, size_t len, UrlTarget *ret, const char **ret_reason);
