/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* MD5_Init() and friends are deprecated in OpenSSL 3 in favour of EVP, but
 * OpenSSL 3.0's EVP_DigestInit_ex2() frees and allocates the provider's
 * context on every call: with that, the EVP overhead cost as much as the
 * hash itself, and a SIGN costs about 2.5 hashes in all (bench/run, issue
 * 7). The low-level functions hash in place with no allocation. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <sodium.h>

#include "config.h"
#include "keyring.h"
#include "sign.h"
#include "util.h"

/* Longest inputs accepted. A request line is at most 8192 bytes, so no
 * decoded path can be longer; an address as text is at most 45 bytes
 * (INET6_ADDRSTRLEN - 1) and scoped addresses stay well under 64. */
#define SIGN_URI_MAX     8192
#define SIGN_IP_MAX      64
#define SIGN_EXPIRES_MAX 20 /* digits of INT64_MAX */
/* "<expires><uri><ip> <secret>" plus NUL */
#define SIGN_INPUT_MAX (SIGN_EXPIRES_MAX + SIGN_URI_MAX + SIGN_IP_MAX + 1 + KEY_SECRET_MAX + 1)

#define MD5_LEN 16
_Static_assert(MD5_DIGEST_LENGTH == MD5_LEN, "OpenSSL's MD5 digest length");

_Static_assert(SIGN_TOKEN_LEN + 1 ==
                   sodium_base64_ENCODED_LEN(MD5_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "token length must match unpadded base64url of an MD5 digest");

struct Signer {
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

	/* MD5 is what nginx's secure_link_md5 uses; an OpenSSL restricted to
	 * FIPS algorithms refuses it, and then so do we, once, here. */
	EVP_MD *md = EVP_MD_fetch(NULL, "MD5", NULL);
	if (!md) {
		signer_free(s);
		return -EOPNOTSUPP;
	}
	EVP_MD_free(md);
	s->input = sodium_malloc(SIGN_INPUT_MAX);
	if (!s->input) {
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
	sodium_free(s->input); /* wipes */
	free(s);
	return NULL;
}

/* Unpadded base64url of an MD5 digest, as sodium_bin2base64() with
 * sodium_base64_VARIANT_URLSAFE_NO_PADDING writes it. The digest becomes the
 * link's public token, so this needs no constant-time encoder, and the whole
 * alphabet is one 64-byte cache line anyway. */
static void token_encode(const unsigned char digest[static MD5_LEN],
                         char ret_token[static SIGN_TOKEN_LEN + 1])
{
	static const char alphabet[64] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = 0, i;

	/* 15 bytes are 20 digits; the 16th byte makes 2 more. */
	for (i = 0; i + 3 <= MD5_LEN; i += 3) {
		uint32_t v =
		    (uint32_t)digest[i] << 16 | (uint32_t)digest[i + 1] << 8 | digest[i + 2];

		ret_token[n++] = alphabet[v >> 18];
		ret_token[n++] = alphabet[(v >> 12) & 63];
		ret_token[n++] = alphabet[(v >> 6) & 63];
		ret_token[n++] = alphabet[v & 63];
	}
	ret_token[n++] = alphabet[digest[i] >> 2];
	ret_token[n++] = alphabet[(digest[i] & 3) << 4];
	assert(n == SIGN_TOKEN_LEN);
	ret_token[n] = '\0';
}

int signer_token(Signer *s, int64_t expires, const char *uri, const char *ip, const char *secret,
                 char ret_token[static SIGN_TOKEN_LEN + 1])
{
	char digits[SIGN_EXPIRES_MAX];

	/* nginx's secure_link treats an expires of zero or less as "no
	 * expiry given" and refuses the link, so such a token is useless. */
	if (expires <= 0)
		return -EINVAL;
	if (!uri)
		return -EINVAL;
	return signer_token_text(s, digits, format_u64((uint64_t)expires, digits), uri,
	                         strnlen(uri, SIGN_URI_MAX + 1), ip, secret, ret_token);
}

/* The checks every token's inputs pass, whatever the algorithm. Sets the
 * lengths of ip and secret. */
static int check_inputs(const char *expires, size_t expires_len, const char *uri, size_t uri_len,
                        const char *ip, size_t *ret_ip_len, const char *secret,
                        size_t *ret_secret_len)
{
	/* The canonical digits of a number > 0, as in the link. */
	if (expires_len == 0 || expires_len > SIGN_EXPIRES_MAX || expires[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < expires_len; i++)
		if (expires[i] < '0' || expires[i] > '9')
			return -EINVAL;

	/* $uri always starts with '/'; a directory grant's subject is
	 * "grant:" and its directory (link.c). */
	if (uri_len == 0 || memchr(uri, '\0', uri_len) ||
	    !(uri[0] == '/' ||
	      (uri_len > STRLEN("grant:/") && memcmp(uri, "grant:/", STRLEN("grant:/")) == 0)))
		return -EINVAL;
	if (uri_len > SIGN_URI_MAX)
		return -E2BIG;

	*ret_ip_len = 0;
	if (ip) {
		*ret_ip_len = strnlen(ip, SIGN_IP_MAX + 1);
		if (*ret_ip_len == 0)
			return -EINVAL;
		if (*ret_ip_len > SIGN_IP_MAX)
			return -E2BIG;
	}

	*ret_secret_len = strnlen(secret, KEY_SECRET_MAX + 1);
	if (*ret_secret_len == 0)
		return -EINVAL;
	if (*ret_secret_len > KEY_SECRET_MAX)
		return -E2BIG;
	return 0;
}

/* The HMAC token: the message is public (it is in the link), only the key
 * is secret, and libsodium's state holds its pads in our stack frame: wiped
 * after. */
static int hmac_token(const char *expires, size_t expires_len, const char *uri, size_t uri_len,
                      const char *ip, size_t ip_len, const char *secret, size_t secret_len,
                      char ret_token[static SIGN_HMAC_TOKEN_LEN + 1])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	bool grant = uri[0] != '/';
	int r = 0;

	_Static_assert(SIGN_HMAC_TOKEN_LEN + 1 ==
	                   sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
	                                             sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	               "token length must match unpadded base64url of an HMAC-SHA256");

	if (grant) {
		uri += STRLEN("grant:");
		uri_len -= STRLEN("grant:");
	}
	if (crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, secret_len) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)(grant ? "grant" : "file"),
	                                  grant ? STRLEN("grant") + 1 : STRLEN("file") + 1) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)expires, expires_len) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"", 1) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)uri, uri_len) != 0 ||
	    (ip && (crypto_auth_hmacsha256_update(&st, (const unsigned char *)"", 1) != 0 ||
	            crypto_auth_hmacsha256_update(&st, (const unsigned char *)ip, ip_len) != 0)) ||
	    crypto_auth_hmacsha256_final(&st, mac) != 0)
		r = -EIO;
	else
		sodium_bin2base64(ret_token, SIGN_HMAC_TOKEN_LEN + 1, mac, sizeof(mac),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	return r;
}

int signer_token_alg(Signer *s, int alg, const char *expires, size_t expires_len, const char *uri,
                     size_t uri_len, const char *ip, const char *secret,
                     char ret_token[static SIGN_TOKEN_MAX + 1])
{
	size_t ip_len, secret_len;
	int r;

	if (alg == LINK_ALGORITHM_MD5)
		return signer_token_text(s, expires, expires_len, uri, uri_len, ip, secret,
		                         ret_token);
	if (alg != LINK_ALGORITHM_HMAC_SHA256 || !s || !expires || !uri || !secret || !ret_token)
		return -EINVAL;
	r = check_inputs(expires, expires_len, uri, uri_len, ip, &ip_len, secret, &secret_len);
	if (r < 0)
		return r;
	return hmac_token(expires, expires_len, uri, uri_len, ip, ip_len, secret, secret_len,
	                  ret_token);
}

int signer_token_text(Signer *s, const char *expires, size_t expires_len, const char *uri,
                      size_t uri_len, const char *ip, const char *secret,
                      char ret_token[static SIGN_TOKEN_LEN + 1])
{
	unsigned char digest[MD5_LEN];
	size_t ip_len, secret_len, n;
	MD5_CTX ctx;
	int r;

	if (!s || !expires || !uri || !secret || !ret_token)
		return -EINVAL;
	r = check_inputs(expires, expires_len, uri, uri_len, ip, &ip_len, secret, &secret_len);
	if (r < 0)
		return r;

	/* Exactly what nginx hashes for
	 *   secure_link_md5 "$secure_link_expires$uri[$remote_addr] $secret";
	 * with expires as the decimal digits the link carries. */
	memcpy(s->input, expires, expires_len);
	n = expires_len;
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

	if (MD5_Init(&ctx) != 1 || MD5_Update(&ctx, s->input, n) != 1 ||
	    MD5_Final(digest, &ctx) != 1) {
		r = -EIO;
		goto finish;
	}

	token_encode(digest, ret_token);

finish:
	/* The hash state has seen the secret too. */
	sodium_memzero(&ctx, sizeof(ctx));
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
