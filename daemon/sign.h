/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* nginx's secure_link token:
 *   base64url_nopad(MD5("<expires><uri>[<ip>] <secret>"))
 * where uri is the DECODED path ($uri), or "grant:" and a granted directory,
 * and secret the exact string nginx's keys map holds. */

#define SIGN_TOKEN_LEN 22 /* 16 bytes of MD5 as unpadded base64url */

/* [links] algorithm = hmac-sha256 (DESIGN.md, "Algorithms"):
 *   base64url_nopad(HMAC-SHA256(secret, "<kind>\0<expires>\0<path>[\0<ip>]"))
 * kind "file" (path: the decoded $uri) or "grant" (path: the granted
 * directory, absolute); the NULs keep the fields apart (nginx never has a
 * NUL in $uri, an expiry is digits). The token's length tells the two
 * algorithms apart, in nginx and in VERIFY: nothing else marks it. */
#define SIGN_HMAC_TOKEN_LEN 43 /* 32 bytes of HMAC-SHA256 as unpadded base64url */
#define SIGN_HMAC_BYTES     32
#define SIGN_TOKEN_MAX      SIGN_HMAC_TOKEN_LEN

typedef struct Signer Signer;

/* Checks once that OpenSSL offers MD5 (not in a FIPS-only setup) and allocates
 * the locked input buffer. Returns 0 or -ENOMEM / -EOPNOTSUPP. */
int signer_new(Signer **ret);
Signer *signer_free(Signer *s);
static inline void signer_freep(Signer **s)
{
	signer_free(*s);
}

/* Computes the token into ret_token (SIGN_TOKEN_LEN chars plus NUL). ip may be
 * NULL. The hash input is built in locked memory and wiped afterwards.
 * Returns 0 or a negative errno. */
int signer_token(Signer *s, int64_t expires, const char *uri, const char *ip, const char *secret,
                 char ret_token[static SIGN_TOKEN_LEN + 1]);

/* The same with expires given as the decimal digits the link carries (no
 * leading zero, at most 20) and the length of uri known: link_sign_to()
 * formats expires once for the hash and the link. uri must not contain NUL. */
int signer_token_text(Signer *s, const char *expires, size_t expires_len, const char *uri,
                      size_t uri_len, const char *ip, const char *secret,
                      char ret_token[static SIGN_TOKEN_LEN + 1]);

/* signer_token_text() for algorithm alg (a LinkAlgorithm): with md5 exactly
 * signer_token_text(); with hmac-sha256 the HMAC token (SIGN_HMAC_TOKEN_LEN
 * chars) over the same subject, "grant:" and a directory or a $uri, which
 * gives the kind. */
int signer_token_alg(Signer *s, int alg, const char *expires, size_t expires_len, const char *uri,
                     size_t uri_len, const char *ip, const char *secret,
                     char ret_token[static SIGN_TOKEN_MAX + 1]);

/* Constant-time comparison of two tokens of SIGN_TOKEN_LEN chars. */
bool signer_token_equal(const char *a, const char *b);
