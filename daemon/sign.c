/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "keyring.h"
#include "sign.h"

/* Longest inputs accepted. A request line is at most 8192 bytes, so no
 * decoded path can be longer; an address as text is at most 45 bytes
 * (INET6_ADDRSTRLEN - 1) and scoped addresses stay well under 64. */
#define SIGN_URI_MAX     8192
#define SIGN_IP_MAX      64
#define SIGN_EXPIRES_MAX 20 /* digits of INT64_MAX */
/* "<expires><uri><ip> <secret>" plus NUL */
#define SIGN_INPUT_MAX (SIGN_EXPIRES_MAX + SIGN_URI_MAX + SIGN_IP_MAX + 1 + KEY_SECRET_MAX + 1)

#define MD5_LEN 16

_Static_assert(SIGN_TOKEN_LEN + 1 ==
                   sodium_base64_ENCODED_LEN(MD5_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "token length must match unpadded base64url of an MD5 digest");

struct Signer {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
	/* The hash input holds the secret: it is assembled in this one
	 * sodium_malloc'd buffer (locked, guard pages) that lives as long as
	 * the signer, rather than in a fresh allocation per link, and wiped
	 * after every use. */
	char *input;
};

int signer_new(Signer **ret)
{
	Signer *s;

	if (!ret)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;

	s = calloc(1, sizeof(Signer));
	if (!s)
		return -ENOMEM;

	/* Fetched once: EVP_MD_fetch() searches the provider tables, which is
	 * far too slow to do per link. MD5 is what nginx's secure_link_md5
	 * uses; a FIPS-only OpenSSL has none. */
	s->md = EVP_MD_fetch(NULL, "MD5", NULL);
	if (!s->md) {
		signer_free(s);
		return -EOPNOTSUPP;
	}
	s->ctx = EVP_MD_CTX_new();
	s->input = sodium_malloc(SIGN_INPUT_MAX);
	if (!s->ctx || !s->input) {
		signer_free(s);
		return -ENOMEM;
	}

	*ret = s;
	return 0;
}

Signer *signer_free(Signer *s)
{
	if (!s)
		return NULL;
	EVP_MD_CTX_free(s->ctx);
	EVP_MD_free(s->md);
	sodium_free(s->input); /* wipes */
	free(s);
	return NULL;
}

int signer_token(Signer *s, int64_t expires, const char *uri, const char *ip, const char *secret,
                 char ret_token[static SIGN_TOKEN_LEN + 1])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned digest_len = 0;
	size_t uri_len, ip_len = 0, secret_len, n;
	int k, r = 0;

	if (!s || !uri || !secret || !ret_token)
		return -EINVAL;

	/* nginx's secure_link treats an expires of zero or less as "no
	 * expiry given" and refuses the link, so such a token is useless. */
	if (expires <= 0)
		return -EINVAL;

	/* $uri always starts with '/'. */
	uri_len = strnlen(uri, SIGN_URI_MAX + 1);
	if (uri_len == 0 || uri[0] != '/')
		return -EINVAL;
	if (uri_len > SIGN_URI_MAX)
		return -E2BIG;

	if (ip) {
		ip_len = strnlen(ip, SIGN_IP_MAX + 1);
		if (ip_len == 0)
			return -EINVAL;
		if (ip_len > SIGN_IP_MAX)
			return -E2BIG;
	}

	secret_len = strnlen(secret, KEY_SECRET_MAX + 1);
	if (secret_len == 0)
		return -EINVAL;
	if (secret_len > KEY_SECRET_MAX)
		return -E2BIG;

	/* Exactly what nginx hashes for
	 *   secure_link_md5 "$secure_link_expires$uri[$remote_addr] $secret";
	 * with expires as the decimal digits the link carries. */
	k = snprintf(s->input, SIGN_EXPIRES_MAX + 1, "%" PRId64, expires);
	assert(k > 0 && k <= SIGN_EXPIRES_MAX);
	n = (size_t)k;
	memcpy(s->input + n, uri, uri_len);
	n += uri_len;
	if (ip) {
		memcpy(s->input + n, ip, ip_len);
		n += ip_len;
	}
	s->input[n++] = ' ';
	memcpy(s->input + n, secret, secret_len);
	n += secret_len;
	assert(n < SIGN_INPUT_MAX);

	if (EVP_DigestInit_ex2(s->ctx, s->md, NULL) != 1 ||
	    EVP_DigestUpdate(s->ctx, s->input, n) != 1 ||
	    EVP_DigestFinal_ex(s->ctx, digest, &digest_len) != 1 || digest_len != MD5_LEN) {
		r = -EIO;
		goto finish;
	}

	sodium_bin2base64(ret_token, SIGN_TOKEN_LEN + 1, digest, MD5_LEN,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);

finish:
	sodium_memzero(s->input, n);
	sodium_memzero(digest, sizeof(digest));
	return r;
}

bool signer_token_equal(const char *a, const char *b)
{
	/* The lengths are not secret (every token has the same one); checking
	 * them first keeps sodium_memcmp() inside both strings. */
	if (!a || !b)
		return false;
	if (strnlen(a, SIGN_TOKEN_LEN + 1) != SIGN_TOKEN_LEN ||
	    strnlen(b, SIGN_TOKEN_LEN + 1) != SIGN_TOKEN_LEN)
		return false;
	return sodium_memcmp(a, b, SIGN_TOKEN_LEN) == 0;
}
