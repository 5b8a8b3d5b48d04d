/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keyring.h"
#include "sign.h"
#include "util.h"

/* Every expected token below comes from outside this code: the first two
 * from django-nginx-secure-links' own test suite, the rest from the openssl
 * command line as shown next to each (run in a UTF-8 shell). */

static int setup(void **state)
{
	Signer *s = NULL;

	if (signer_new(&s) < 0)
		return -1;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	signer_free(*state);
	return 0;
}

static void assert_token(Signer *s, int64_t expires, const char *uri, const char *ip,
                         const char *secret, const char *expected)
{
	char token[SIGN_TOKEN_LEN + 1];

	memset(token, 'X', sizeof(token));
	assert_int_equal(signer_token(s, expires, uri, ip, secret, token), 0);
	assert_int_equal(strlen(token), SIGN_TOKEN_LEN);
	assert_string_equal(token, expected);
}

static void test_sign_matches_django_nginx_secure_links_vectors(void **state)
{
	assert_token(*state, 1599214310, "/media/private/sample1.pdf", NULL, "secret_xyz",
	             "GdxTxfNK92Grtg-hD7CH6g");
	assert_token(*state, 1599337666, "/media/private/sample1.pdf", NULL, "secret_xyz",
	             "4E1lyDQkWbenekEqdZpClQ");
}

static void test_sign_matches_openssl_for_utf8_path_with_space(void **state)
{
	/* printf '%s' '1700000000/media/private/résumé ü/naïve file.pdf s3cr3t' |
	 *   openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=' */
	assert_token(*state, 1700000000,
	             "/media/private/r\xc3\xa9sum\xc3\xa9 \xc3\xbc/na\xc3\xafve file.pdf", NULL,
	             "s3cr3t", "kRwGhbxAwBhXuYxPox5CNg");
}

static void test_sign_matches_openssl_with_ipv4_bound(void **state)
{
	/* printf '%s' '1700000000/media/private/report.pdf203.0.113.7 s3cr3t' |
	 *   openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=' */
	assert_token(*state, 1700000000, "/media/private/report.pdf", "203.0.113.7", "s3cr3t",
	             "LX4SnbWzu38zSErqe1EU1Q");
}

static void test_sign_matches_openssl_with_ipv6_bound(void **state)
{
	/* printf '%s' '1700000000/media/private/report.pdf2001:db8::1 s3cr3t' |
	 *   openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=' */
	assert_token(*state, 1700000000, "/media/private/report.pdf", "2001:db8::1", "s3cr3t",
	             "aw7TrMbujXdb-vOwSAwu9g");
}

static void test_sign_matches_openssl_for_longest_secret(void **state)
{
	/* L=$(printf 'k%.0s' $(seq 1 256));
	 * printf '%s' "1700000000/media/private/a.txt $L" |
	 *   openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=' */
	char secret[KEY_SECRET_MAX + 1];

	assert_int_equal(KEY_SECRET_MAX, 256);
	memset(secret, 'k', KEY_SECRET_MAX);
	secret[KEY_SECRET_MAX] = '\0';
	assert_token(*state, 1700000000, "/media/private/a.txt", NULL, secret,
	             "m7HXX6DnXU7Rw8b5Qs3uYA");
}

static void test_sign_matches_openssl_for_generated_key_shape(void **state)
{
	/* printf '%s' '1700000000/media/private/a.txt
	 * Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG0' | openssl md5 -binary | openssl base64 |
	 * tr '+/' '-_' | tr -d '=' */
	assert_token(*state, 1700000000, "/media/private/a.txt", NULL,
	             "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG0", "9h-A9DJZ-4-WLccWbw5awg");
}

static void test_sign_reuses_context_across_calls(void **state)
{
	/* Interleaved inputs must not leak state from one call into the next. */
	for (int i = 0; i < 3; i++) {
		assert_token(*state, 1599214310, "/media/private/sample1.pdf", NULL, "secret_xyz",
		             "GdxTxfNK92Grtg-hD7CH6g");
		assert_token(*state, 1700000000, "/media/private/report.pdf", "203.0.113.7",
		             "s3cr3t", "LX4SnbWzu38zSErqe1EU1Q");
	}
}

static void test_sign_rejects_nonpositive_expires(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];

	/* nginx refuses expires <= 0, so such a link could never work. */
	assert_int_equal(signer_token(*state, 0, "/a", NULL, "s", token), -EINVAL);
	assert_int_equal(signer_token(*state, -1, "/a", NULL, "s", token), -EINVAL);
	assert_int_equal(signer_token(*state, INT64_MIN, "/a", NULL, "s", token), -EINVAL);
}

static void test_sign_accepts_largest_expires(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];

	assert_int_equal(signer_token(*state, INT64_MAX, "/a", NULL, "s", token), 0);
	assert_int_equal(strlen(token), SIGN_TOKEN_LEN);
}

static void test_sign_text_matches_sign(void **state)
{
	char a[SIGN_TOKEN_LEN + 1], b[SIGN_TOKEN_LEN + 1];
	const char *uri = "/media/private/sample1.pdf";

	assert_int_equal(
	    signer_token_text(*state, "1599214310", 10, uri, strlen(uri), NULL, "secret_xyz", a),
	    0);
	assert_string_equal(a, "GdxTxfNK92Grtg-hD7CH6g");
	assert_int_equal(signer_token(*state, 1599214310, uri, NULL, "secret_xyz", b), 0);
	assert_string_equal(a, b);
	/* Only the length given is hashed. */
	assert_int_equal(
	    signer_token_text(*state, "15992143109", 10, uri, strlen(uri), NULL, "secret_xyz", a),
	    0);
	assert_string_equal(a, "GdxTxfNK92Grtg-hD7CH6g");
}

static void test_sign_text_rejects_non_canonical_expires(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];
	const char *bad[] = { "", "0", "0123", "12a", "-1", "+1", " 1", "123456789012345678901" };

	/* Only the digits a link carries: nginx hashes the text as sent. */
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(
		    signer_token_text(*state, bad[i], strlen(bad[i]), "/a", 2, NULL, "s", token),
		    -EINVAL);
	assert_int_equal(signer_token_text(*state, "1", 1, "/a\0b", 4, NULL, "s", token), -EINVAL);
	assert_int_equal(signer_token_text(*state, "1", 1, "a", 1, NULL, "s", token), -EINVAL);
}

static void test_sign_rejects_bad_uri(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];

	assert_int_equal(signer_token(*state, 1, NULL, NULL, "s", token), -EINVAL);
	assert_int_equal(signer_token(*state, 1, "", NULL, "s", token), -EINVAL);
	assert_int_equal(signer_token(*state, 1, "media/a", NULL, "s", token), -EINVAL);
}

static void test_sign_rejects_overlong_uri(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];
	char *uri = malloc(8192 + 2);

	assert_non_null(uri);
	memset(uri, 'a', 8192 + 1);
	uri[0] = '/';
	uri[8192] = '\0';
	assert_int_equal(signer_token(*state, 1, uri, NULL, "s", token), 0);
	uri[8192] = 'a';
	uri[8193] = '\0';
	assert_int_equal(signer_token(*state, 1, uri, NULL, "s", token), -E2BIG);
	free(uri);
}

static void test_sign_rejects_bad_secret(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];
	char secret[KEY_SECRET_MAX + 2];

	assert_int_equal(signer_token(*state, 1, "/a", NULL, NULL, token), -EINVAL);
	assert_int_equal(signer_token(*state, 1, "/a", NULL, "", token), -EINVAL);
	memset(secret, 'k', KEY_SECRET_MAX + 1);
	secret[KEY_SECRET_MAX + 1] = '\0';
	assert_int_equal(signer_token(*state, 1, "/a", NULL, secret, token), -E2BIG);
}

static void test_sign_rejects_bad_ip(void **state)
{
	char token[SIGN_TOKEN_LEN + 1];
	char ip[66];

	assert_int_equal(signer_token(*state, 1, "/a", "", "s", token), -EINVAL);
	memset(ip, '1', 65);
	ip[65] = '\0';
	assert_int_equal(signer_token(*state, 1, "/a", ip, "s", token), -E2BIG);
}

static void test_token_equal_compares_whole_tokens(void **state)
{
	assert_true(signer_token_equal("GdxTxfNK92Grtg-hD7CH6g", "GdxTxfNK92Grtg-hD7CH6g"));
	assert_false(signer_token_equal("GdxTxfNK92Grtg-hD7CH6g", "GdxTxfNK92Grtg-hD7CH6h"));
	assert_false(signer_token_equal("HdxTxfNK92Grtg-hD7CH6g", "GdxTxfNK92Grtg-hD7CH6g"));
}

static void test_token_equal_rejects_wrong_lengths_and_null(void **state)
{
	assert_false(signer_token_equal("GdxTxfNK92Grtg-hD7CH6", "GdxTxfNK92Grtg-hD7CH6g"));
	assert_false(signer_token_equal("GdxTxfNK92Grtg-hD7CH6g", "GdxTxfNK92Grtg-hD7CH6"));
	assert_false(signer_token_equal("GdxTxfNK92Grtg-hD7CH6gX", "GdxTxfNK92Grtg-hD7CH6gX"));
	assert_false(signer_token_equal("", ""));
	assert_false(signer_token_equal(NULL, "GdxTxfNK92Grtg-hD7CH6g"));
	assert_false(signer_token_equal("GdxTxfNK92Grtg-hD7CH6g", NULL));
}

/* Known answers from Python's hmac module (hmac.new(key, msg,
 * hashlib.sha256), base64url without padding), by DESIGN.md's formula:
 * kind NUL expires NUL path [NUL ip]. */
static void test_hmac_matches_python_vectors(void **state)
{
	char token[SIGN_TOKEN_MAX + 1];
	const char *file = "/media/private/a b.pdf", *grant = "grant:/media/private/videos/42/";

	assert_int_equal(signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "1599214310", 10,
	                                  file, strlen(file), NULL, "secret_xyz", token),
	                 0);
	assert_string_equal(token, "to6lMmR_SfWYQMm9HrRBd4KmCnNBG5aANqXw8MJWiww");
	assert_int_equal(signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "1599214310", 10,
	                                  grant, strlen(grant), NULL, "secret_xyz", token),
	                 0);
	assert_string_equal(token, "cSrwc9BCOhKehTNc0FsXxatgWzs6wf_OW0UvyMCwAKU");
	assert_int_equal(signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "1599214310", 10,
	                                  file, strlen(file), "192.0.2.1", "secret_xyz", token),
	                 0);
	assert_string_equal(token, "PLS5wOBWGOGOCCXYtrmp6qztOJcAWZ3iFzz96kiUad0");
	/* md5 through the same call: signer_token_text()'s token. */
	assert_int_equal(signer_token_alg(*state, LINK_ALGORITHM_MD5, "1599214310", 10, file,
	                                  strlen(file), NULL, "secret_xyz", token),
	                 0);
	assert_int_equal(strlen(token), SIGN_TOKEN_LEN);
}

static void test_hmac_rejects_what_md5_rejects(void **state)
{
	char token[SIGN_TOKEN_MAX + 1];

	assert_int_equal(signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "01", 2, "/a", 2,
	                                  NULL, "s", token),
	                 -EINVAL);
	assert_int_equal(
	    signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "1", 1, "a", 1, NULL, "s", token),
	    -EINVAL);
	/* An empty key would let anyone forge. */
	assert_int_equal(
	    signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "1", 1, "/a", 2, NULL, "", token),
	    -EINVAL);
	assert_int_equal(
	    signer_token_alg(*state, LINK_ALGORITHM_HMAC_SHA256, "1", 1, "/a", 2, "", "s", token),
	    -EINVAL);
	assert_int_equal(signer_token_alg(*state, 7, "1", 1, "/a", 2, NULL, "s", token), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_matches_django_nginx_secure_links_vectors),
		cmocka_unit_test(test_sign_matches_openssl_for_utf8_path_with_space),
		cmocka_unit_test(test_sign_matches_openssl_with_ipv4_bound),
		cmocka_unit_test(test_sign_matches_openssl_with_ipv6_bound),
		cmocka_unit_test(test_sign_matches_openssl_for_longest_secret),
		cmocka_unit_test(test_sign_matches_openssl_for_generated_key_shape),
		cmocka_unit_test(test_sign_reuses_context_across_calls),
		cmocka_unit_test(test_sign_rejects_nonpositive_expires),
		cmocka_unit_test(test_sign_accepts_largest_expires),
		cmocka_unit_test(test_sign_text_matches_sign),
		cmocka_unit_test(test_sign_text_rejects_non_canonical_expires),
		cmocka_unit_test(test_sign_rejects_bad_uri),
		cmocka_unit_test(test_sign_rejects_overlong_uri),
		cmocka_unit_test(test_sign_rejects_bad_secret),
		cmocka_unit_test(test_sign_rejects_bad_ip),
		cmocka_unit_test(test_token_equal_compares_whole_tokens),
		cmocka_unit_test(test_token_equal_rejects_wrong_lengths_and_null),
		cmocka_unit_test(test_hmac_matches_python_vectors),
		cmocka_unit_test(test_hmac_rejects_what_md5_rejects),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
