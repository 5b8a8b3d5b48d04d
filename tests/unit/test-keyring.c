/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyring.h"

#define SEC  USEC_PER_SEC
#define TTL  (24 * USEC_PER_HOUR)
#define SKEW (30 * SEC)

/* A keyring written by hand from DESIGN.md's format, not by our serializer.
 * The secrets are base64url of "old-django-secret", "s3cr3t",
 * "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG0" and "new-key"
 * (printf '%s' S | base64 -w0 | tr '+/' '-_' | tr -d '='). */
#define HDR "securelink-keyring 1\n"
#define NK  "next_kid 45\n"
#define K41                                                                                        \
	"key 41 retired 1 1700000000000000 0 1700000000000000 1700086430000000 "                   \
	"b2xkLWRqYW5nby1zZWNyZXQ\n"
#define K42                                                                                        \
	"key 42 retired 0 1700000100000000 1700000102000000 1700086400000000 1700172830000000 "    \
	"czNjcjN0\n"
#define K43B64 "Wm05dlltRnlZbUY2Y1hWNE1USXpORFUyTnpnNU1HRmlZMlJsWm1kb2FXcHJiRzA"
#define K43    "key 43 active 0 1700086398000000 1700086400000000 0 0 " K43B64 "\n"
#define K44    "key 44 published 0 1700172000000000 0 0 0 bmV3LWtleQ\n"
#define BODY   HDR NK K41 K42 K43 K44
/* b2sum -l 256 over BODY (BLAKE2b with a 32-byte digest, no key). */
#define FIXTURE BODY "checksum 5356376c820facd856da65c186972dfb6f658e1cdf4cc8f647779fb7562f42f2\n"
/* printf 'securelink-keyring 1\nnext_kid 1\n' | b2sum -l 256 */
#define EMPTY_FIXTURE                                                                              \
	"securelink-keyring 1\nnext_kid 1\n"                                                       \
	"checksum 3fa50b651bbe14c65f63c3a85b7d736cd90166ea4c491b6b1105f32480caaaac\n"

/* Appends a correct checksum line to body, so that a test of one bad field
 * reaches that field's check and not the checksum's. */
static char *with_checksum(const char *body)
{
	unsigned char hash[32];
	char hex[65];
	char *t = NULL;

	assert_int_equal(crypto_generichash(hash, sizeof(hash), (const unsigned char *)body,
	                                    strlen(body), NULL, 0),
	                 0);
	sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
	assert_true(asprintf(&t, "%schecksum %s\n", body, hex) > 0);
	return t;
}

static void assert_no_secret(const char *s)
{
	static const char *const secrets[] = {
		"old-django-secret",
		"b2xkLWRqYW5nby1zZWNyZXQ",
		"s3cr3t",
		"czNjcjN0",
		"Zm9vYmFyYmF6cXV4",
		K43B64,
		"new-key",
		"bmV3LWtleQ",
	};

	for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
		assert_null(strstr(s, secrets[i]));
}

static void assert_parse_error_sized(const char *text, size_t size, unsigned line, const char *what)
{
	KeyRing *r = NULL;
	char *error = NULL;
	char prefix[32];

	assert_int_equal(keyring_parse(text, size, &r, &error), -EBADMSG);
	assert_null(r);
	assert_non_null(error);
	snprintf(prefix, sizeof(prefix), "line %u: ", line);
	if (strncmp(error, prefix, strlen(prefix)) != 0 || !strstr(error, what))
		fail_msg("expected \"%s...%s\", got \"%s\"", prefix, what, error);
	assert_null(strchr(error, '\n'));
	assert_no_secret(error);
	free(error);

	/* Without an error out-parameter the verdict is the same. */
	assert_int_equal(keyring_parse(text, size, NULL, NULL), -EBADMSG);
}

static void assert_parse_error(const char *text, unsigned line, const char *what)
{
	assert_parse_error_sized(text, strlen(text), line, what);
}

/* body gets a valid checksum; the error must come from the field itself. */
static void assert_body_error(const char *body, unsigned line, const char *what)
{
	char *t = with_checksum(body);

	assert_parse_error(t, line, what);
	free(t);
}

static KeyRing *parse_ok(const char *text)
{
	KeyRing *r = NULL;
	char *error = NULL;
	int q;

	q = keyring_parse(text, strlen(text), &r, &error);
	if (q < 0)
		fail_msg("parse failed: %d %s", q, error ? error : "");
	assert_null(error);
	assert_non_null(r);
	return r;
}

/* Parsing a file written by hand */

static void test_parse_reads_hand_written_file(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = parse_ok(FIXTURE);
	const Key *k;

	assert_int_equal(r->next_kid, 45);
	assert_int_equal(r->n_keys, 4);

	k = &r->keys[0];
	assert_int_equal(k->kid, 41);
	assert_int_equal(k->state, KEY_RETIRED);
	assert_true(k->legacy);
	assert_true(k->published == 1700000000000000ULL);
	assert_true(k->activated == 0);
	assert_true(k->retired == 1700000000000000ULL);
	assert_true(k->drop_after == 1700086430000000ULL);
	assert_string_equal(k->secret, "old-django-secret");

	k = &r->keys[1];
	assert_int_equal(k->kid, 42);
	assert_false(k->legacy);
	assert_true(k->activated == 1700000102000000ULL);
	assert_string_equal(k->secret, "s3cr3t");

	k = &r->keys[2];
	assert_int_equal(k->state, KEY_ACTIVE);
	assert_string_equal(k->secret, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG0");

	k = &r->keys[3];
	assert_int_equal(k->state, KEY_PUBLISHED);
	assert_true(k->published == 1700172000000000ULL);
	assert_string_equal(k->secret, "new-key");

	assert_ptr_equal(keyring_active(r), &r->keys[2]);
	assert_ptr_equal(keyring_pending(r), &r->keys[3]);
	assert_ptr_equal(keyring_find(r, 42), &r->keys[1]);
	assert_null(keyring_find(r, 45));
}

static void test_parse_reads_empty_ring(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = parse_ok(EMPTY_FIXTURE);

	assert_int_equal(r->next_kid, 1);
	assert_int_equal(r->n_keys, 0);
	assert_null(keyring_default(r));
}

static void test_serialize_reproduces_hand_written_file(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = parse_ok(FIXTURE);
	char *text = NULL;
	size_t size = 0;

	/* The checksum in FIXTURE comes from b2sum, so this also checks ours. */
	assert_int_equal(keyring_serialize(r, &text, &size), 0);
	assert_int_equal(size, strlen(FIXTURE));
	assert_memory_equal(text, FIXTURE, size);
	keyring_text_free(text, size);
}

static void test_serialize_empty_ring_matches_b2sum(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	char *text = NULL;
	size_t size = 0;

	assert_non_null(r);
	assert_int_equal(keyring_serialize(r, &text, &size), 0);
	assert_int_equal(size, strlen(EMPTY_FIXTURE));
	assert_memory_equal(text, EMPTY_FIXTURE, size);
	keyring_text_free(text, size);
}

static void test_serialize_parse_round_trip_of_random_keys(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *back = NULL;
	char *text = NULL, *error = NULL;
	size_t size = 0;
	uint32_t kid;

	assert_non_null(r);
	assert_int_equal(
	    keyring_add_legacy(r, "caf\xc3\xa9 'legacy' {;}", 5 * SEC, TTL, SKEW, &kid), 0);
	assert_int_equal(keyring_add_random(r, 10 * SEC, &kid), 0);
	assert_int_equal(keyring_activate(r, kid, 12 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, UINT64_MAX, &kid), 0);

	assert_int_equal(keyring_serialize(r, &text, &size), 0);
	assert_int_equal(strlen(text), size);
	assert_int_equal(keyring_parse(text, size, &back, &error), 0);
	assert_null(error);
	keyring_text_free(text, size);

	assert_int_equal(back->next_kid, r->next_kid);
	assert_int_equal(back->n_keys, r->n_keys);
	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *a = &r->keys[i], *b = &back->keys[i];

		assert_int_equal(a->kid, b->kid);
		assert_int_equal(a->state, b->state);
		assert_int_equal(a->legacy, b->legacy);
		assert_true(a->published == b->published);
		assert_true(a->activated == b->activated);
		assert_true(a->retired == b->retired);
		assert_true(a->drop_after == b->drop_after);
		assert_string_equal(a->secret, b->secret);
		assert_ptr_not_equal(a->secret, b->secret);
	}
}

static void test_serialize_refuses_ring_the_parser_would_refuse(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	char *text = NULL;
	size_t size = 0;
	uint32_t a, b;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 1, &a), 0);
	assert_int_equal(keyring_add_random(r, 2, &b), 0);
	/* Two active keys can only come from a bug; never write them down. */
	keyring_find(r, a)->state = KEY_ACTIVE;
	keyring_find(r, b)->state = KEY_ACTIVE;
	assert_int_equal(keyring_serialize(r, &text, &size), -EINVAL);
	assert_null(text);

	keyring_find(r, b)->state = KEY_PUBLISHED;
	r->next_kid = b;
	assert_int_equal(keyring_serialize(r, &text, &size), -EINVAL);
}

/* Parse errors: the header and next_kid line */

static void test_parse_rejects_empty_file(void **state)
{
	assert_parse_error_sized("", 0, 1, "empty");
}

static void test_parse_rejects_bad_header(void **state)
{
	assert_body_error("securelink-keyring 2\n" NK K41, 1, "not a securelink keyring");
	assert_body_error("securelink-keyring 1 \n" NK K41, 1, "not a securelink keyring");
	assert_body_error("securelink-keyring\n" NK K41, 1, "not a securelink keyring");
	assert_body_error(NK K41, 1, "not a securelink keyring");
	assert_body_error("securelink-keyring 1\r\n" NK K41, 1, "not a securelink keyring");
}

static void test_parse_rejects_bad_next_kid(void **state)
{
	assert_body_error(HDR K41, 2, "expected \"next_kid <number>\"");
	assert_body_error(HDR "next_kid\n" K41, 2, "expected \"next_kid <number>\"");
	assert_body_error(HDR "next_kid 45 46\n" K41, 2, "expected \"next_kid <number>\"");
	assert_body_error(HDR "nextkid 45\n" K41, 2, "expected \"next_kid <number>\"");
	assert_body_error(HDR "next_kid  45\n" K41, 2, "expected \"next_kid <number>\"");
	assert_body_error(HDR "next_kid abc\n" K41, 2, "next_kid is not a plain decimal number");
	assert_body_error(HDR "next_kid -45\n" K41, 2, "next_kid is not a plain decimal number");
	assert_body_error(HDR "next_kid +45\n" K41, 2, "next_kid is not a plain decimal number");
	assert_body_error(HDR "next_kid 045\n" K41, 2, "next_kid is not a plain decimal number");
	assert_body_error(HDR "next_kid 45x\n" K41, 2, "next_kid is not a plain decimal number");
	assert_body_error(HDR "next_kid 0\n", 2, "next_kid is out of range");
	assert_body_error(HDR "next_kid 4294967296\n", 2, "next_kid is out of range");
	assert_body_error(HDR "next_kid 99999999999999999999999\n", 2, "next_kid is out of range");
}

static void test_parse_accepts_largest_next_kid(void **state)
{
	char *t = with_checksum(HDR "next_kid 4294967295\n"
	                            "key 4294967294 published 0 1 0 0 0 czNjcjN0\n");
	_cleanup_(keyring_freep) KeyRing *r = parse_ok(t);
	uint32_t kid = 0;

	free(t);
	assert_int_equal(r->keys[0].kid, UINT32_MAX - 1);
	/* No kid is left to hand out: never wrap around to a reused one. */
	assert_int_equal(keyring_add_random(r, 1, &kid), -EOVERFLOW);
	assert_int_equal(r->n_keys, 1);
}

/* Parse errors: key lines, one field at a time */

static void test_parse_rejects_wrong_field_count(void **state)
{
	assert_body_error(HDR NK "key 41 retired 1 1 0 1 2\n", 3, "9 fields, found 8");
	assert_body_error(HDR NK "key 41 retired 1 1 0 1 2 czNjcjN0 x\n", 3, "9 fields, found 10");
	assert_body_error(HDR NK "key 41 retired 1 1 0 1 2 czNjcjN0 x x x x x x\n", 3,
	                  "9 fields, found");
	assert_body_error(HDR NK "key 41 retired 1 1 0 1  2 czNjcjN0\n", 3, "single spaces");
	assert_body_error(HDR NK "key 41 retired 1 1 0 1 2 czNjcjN0 \n", 3, "single spaces");
	assert_body_error(HDR NK "key\n", 3, "unknown record");
	assert_body_error(HDR NK "key 41\tretired 1 1 0 1 2 czNjcjN0\n", 3, "9 fields, found 8");
}

static void test_parse_rejects_unknown_record(void **state)
{
	assert_body_error(HDR NK K41 "kye 42 retired 0 1 2 3 4 czNjcjN0\n", 4, "unknown record");
	assert_body_error(HDR NK K41 "\n", 4, "unknown record");
	assert_body_error(HDR NK K41 " " K42, 4, "unknown record");
	assert_body_error(HDR NK K41 "next_kid 46\n", 4, "unknown record");
}

static void test_parse_rejects_bad_kid(void **state)
{
	assert_body_error(HDR NK "key x published 0 1 0 0 0 czNjcjN0\n", 3,
	                  "kid is not a plain decimal number");
	assert_body_error(HDR NK "key 041 published 0 1 0 0 0 czNjcjN0\n", 3,
	                  "kid is not a plain decimal number");
	assert_body_error(HDR NK "key 0 published 0 1 0 0 0 czNjcjN0\n", 3, "kid is out of range");
	assert_body_error(HDR NK "key 4294967296 published 0 1 0 0 0 czNjcjN0\n", 3,
	                  "kid is out of range");
	assert_body_error(HDR NK "key 18446744073709551616 published 0 1 0 0 0 czNjcjN0\n", 3,
	                  "kid is out of range");
}

static void test_parse_rejects_duplicate_and_decreasing_kid(void **state)
{
	assert_body_error(HDR NK K41 K41, 4, "kid 41 is not greater than the previous kid 41");
	assert_body_error(HDR NK K42 K41, 4, "kid 41 is not greater than the previous kid 42");
}

static void test_parse_rejects_kid_not_below_next_kid(void **state)
{
	assert_body_error(HDR "next_kid 42\n" K41 K42, 4, "kid 42 is not below next_kid 42");
	assert_body_error(HDR "next_kid 1\n" K41, 3, "kid 41 is not below next_kid 1");
}

static void test_parse_rejects_two_active_keys(void **state)
{
	assert_body_error(HDR NK K41
	                  "key 42 active 0 1700000100000000 1700000102000000 0 0 czNjcjN0\n" K43,
	                  5, "kid 43 is a second active key");
}

static void test_parse_rejects_bad_state(void **state)
{
	assert_body_error(HDR NK "key 42 revoked 0 1 2 3 4 czNjcjN0\n", 3, "state must be");
	assert_body_error(HDR NK "key 42 Active 0 1 2 3 4 czNjcjN0\n", 3, "state must be");
	assert_body_error(HDR NK "key 42 activ 0 1 2 3 4 czNjcjN0\n", 3, "state must be");
	assert_body_error(HDR NK "key 42 actives 0 1 2 3 4 czNjcjN0\n", 3, "state must be");
	assert_body_error(HDR NK "key 42 0 0 1 2 3 4 czNjcjN0\n", 3, "state must be");
}

static void test_parse_rejects_bad_legacy_flag(void **state)
{
	assert_body_error(HDR NK "key 42 retired 2 1 2 3 4 czNjcjN0\n", 3, "legacy flag");
	assert_body_error(HDR NK "key 42 retired 00 1 2 3 4 czNjcjN0\n", 3, "legacy flag");
	assert_body_error(HDR NK "key 42 retired yes 1 2 3 4 czNjcjN0\n", 3, "legacy flag");
}

static void test_parse_rejects_legacy_key_that_signs(void **state)
{
	assert_body_error(HDR NK "key 42 active 1 1 2 0 0 czNjcjN0\n", 3,
	                  "legacy key cannot be active");
	assert_body_error(HDR NK "key 42 published 1 1 0 0 0 czNjcjN0\n", 3,
	                  "legacy key must be retired");
}

static void test_parse_rejects_bad_times(void **state)
{
	assert_body_error(HDR NK "key 42 retired 0 x 2 3 4 czNjcjN0\n", 3,
	                  "published is not a plain decimal number");
	assert_body_error(HDR NK "key 42 retired 0 1 -2 3 4 czNjcjN0\n", 3,
	                  "activated is not a plain decimal number");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3e6 4 czNjcjN0\n", 3,
	                  "retired is not a plain decimal number");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 04 czNjcjN0\n", 3,
	                  "drop_after is not a plain decimal number");
	assert_body_error(HDR NK "key 42 retired 0 18446744073709551616 2 3 4 czNjcjN0\n", 3,
	                  "published is out of range");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 111111111111111111111 czNjcjN0\n", 3,
	                  "drop_after is out of range");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 1111111111111111111111x czNjcjN0\n", 3,
	                  "drop_after is not a plain decimal number");
}

static void test_parse_accepts_largest_times(void **state)
{
	char *t = with_checksum(HDR NK "key 42 retired 0 18446744073709551615 0 "
	                               "18446744073709551615 18446744073709551615 czNjcjN0\n");
	_cleanup_(keyring_freep) KeyRing *r = parse_ok(t);

	free(t);
	assert_true(r->keys[0].drop_after == UINT64_MAX);
}

static void test_parse_rejects_bad_secret_encoding(void **state)
{
	/* padding, the standard alphabet, a character outside any alphabet,
	 * an impossible length, non-zero trailing bits */
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 4 czNjcjN0=\n", 3,
	                  "not unpadded base64url");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 4 YWJj+w\n", 3, "not unpadded base64url");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 4 YWJj/w\n", 3, "not unpadded base64url");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 4 cz.jcjN0\n", 3,
	                  "not unpadded base64url");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 4 c\n", 3, "not unpadded base64url");
	assert_body_error(HDR NK "key 42 retired 0 1 2 3 4 czNjcjN\n", 3, "not unpadded base64url");
}

static void test_parse_rejects_overlong_secret(void **state)
{
	/* 342 characters decode to 256 bytes, the most allowed; 343 cannot. */
	char body[1024];
	char b64[344];
	char *t;

	memset(b64, 'A', 342);
	b64[342] = '\0';
	/* 256 zero bytes: also unsafe, but the length check is what we want
	 * first, so use 'Y' (0x61..) blocks: "YWFh" is "aaa". */
	for (size_t i = 0; i + 4 <= 340; i += 4)
		memcpy(b64 + i, "YWFh", 4);
	memcpy(b64 + 340, "YQ", 2); /* 85 * 3 + 1 = 256 bytes of 'a' */

	snprintf(body, sizeof(body), HDR NK "key 42 retired 0 1 2 3 4 %s\n", b64);
	t = with_checksum(body);
	{
		_cleanup_(keyring_freep) KeyRing *r = parse_ok(t);

		assert_int_equal(strlen(r->keys[0].secret), KEY_SECRET_MAX);
	}
	free(t);

	b64[342] = 'A';
	b64[343] = '\0';
	snprintf(body, sizeof(body), HDR NK "key 42 retired 0 1 2 3 4 %s\n", b64);
	assert_body_error(body, 3, "secret is longer than 256 bytes");
}

static void test_parse_rejects_secret_nginx_cannot_hold(void **state)
{
	/* base64url of a"b, a$b, a\b, a<LF>b, a<TAB>b, a<DEL>b, a<NUL>b */
	static const char *const unsafe[] = {
		"YSJi", "YSRi", "YVxi", "YQpi", "YQli", "YX9i", "YQBi",
	};
	char body[256];

	for (size_t i = 0; i < ELEMENTSOF(unsafe); i++) {
		snprintf(body, sizeof(body), HDR NK "key 41 retired 1 1 0 1 2 %s\n", unsafe[i]);
		assert_body_error(body, 3, "nginx cannot hold inside double quotes");
		snprintf(body, sizeof(body), HDR NK "key 41 published 0 1 0 0 0 %s\n", unsafe[i]);
		assert_body_error(body, 3, "nginx cannot hold inside double quotes");
	}
}

static void test_parse_rejects_more_than_max_keys(void **state)
{
	char *body = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&body, &size);

	assert_non_null(f);
	fputs(HDR "next_kid 100\n", f);
	for (unsigned i = 1; i <= KEYRING_MAX_KEYS + 1; i++)
		fprintf(f, "key %u retired 0 1 2 3 4 czNjcjN0\n", i);
	assert_int_equal(fclose(f), 0);
	/* 64 keys end on line 66; the 65th is refused on line 67. */
	assert_body_error(body, 2 + KEYRING_MAX_KEYS + 1, "more than 64 keys");
	free(body);
}

static void test_parse_rejects_overlong_line(void **state)
{
	char body[1024];
	char pad[600];

	memset(pad, '1', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(body, sizeof(body), HDR NK "key %s\n", pad);
	assert_body_error(body, 3, "line is too long");
}

static void test_parse_rejects_nul_byte(void **state)
{
	char *t = with_checksum(HDR NK K41 K42);
	size_t size = strlen(t);

	/* inside the kid of line 4 */
	t[strlen(HDR NK K41) + 5] = '\0';
	assert_parse_error_sized(t, size, 4, "NUL byte");
	free(t);
}

/* Parse errors: checksum and the end of the file */

static void test_parse_rejects_checksum_mismatch(void **state)
{
	char t[] = FIXTURE;
	char *p;

	/* One changed digit in a drop time: a plausible hand edit. */
	p = strstr(t, "1700086430000000");
	assert_non_null(p);
	p[8] = '9';
	assert_parse_error(t, 7, "checksum does not match (the file was changed or truncated)");
}

static void test_parse_rejects_checksum_of_other_content(void **state)
{
	/* A whole key line removed, checksum kept. */
	assert_parse_error(HDR NK K41 K42 K43
	                   "checksum "
	                   "5356376c820facd856da65c186972dfb6f658e1cdf4cc8f647779fb7562f42f2\n",
	                   6, "checksum does not match");
}

static void test_parse_rejects_malformed_checksum(void **state)
{
	assert_parse_error(
	    BODY "checksum 5356376C820FACD856DA65C186972DFB6F658E1CDF4CC8F647779FB7562F42F2\n", 7,
	    "checksum must be 64 lower-case hex digits");
	assert_parse_error(
	    BODY "checksum 5356376c820facd856da65c186972dfb6f658e1cdf4cc8f647779fb7562f42f\n", 7,
	    "checksum must be 64 lower-case hex digits");
	assert_parse_error(
	    BODY "checksum 5356376c820facd856da65c186972dfb6f658e1cdf4cc8f647779fb7562f42f20\n", 7,
	    "checksum must be 64 lower-case hex digits");
	assert_parse_error(
	    BODY "checksum 5356376c820facd856da65c186972dfb6f658e1cdf4cc8f647779fb7562f42fg\n", 7,
	    "checksum must be 64 lower-case hex digits");
	assert_parse_error(
	    BODY "checksum  5356376c820facd856da65c186972dfb6f658e1cdf4cc8f647779fb7562f42f2\n", 7,
	    "checksum must be 64 lower-case hex digits");
	assert_parse_error(BODY "checksum \n", 7, "checksum must be 64 lower-case hex digits");
}

static void test_parse_rejects_missing_checksum(void **state)
{
	assert_parse_error(BODY, 7, "checksum line is missing");
	assert_parse_error(HDR NK, 3, "checksum line is missing");
	assert_parse_error(HDR, 2, "checksum line is missing");
}

static void test_parse_rejects_data_after_checksum(void **state)
{
	assert_parse_error(FIXTURE "x\n", 8, "unexpected data after the checksum line");
	assert_parse_error(FIXTURE "\n", 8, "unexpected data after the checksum line");
	assert_parse_error(FIXTURE "x", 8, "unexpected data after the checksum line");
	assert_parse_error(FIXTURE FIXTURE, 8, "unexpected data after the checksum line");
}

static void test_parse_rejects_missing_final_newline(void **state)
{
	const char *t = FIXTURE;

	assert_parse_error_sized(t, strlen(t) - 1, 7, "does not end in a newline");
}

static void test_parse_rejects_truncated_file(void **state)
{
	const char *t = FIXTURE;
	size_t body = strlen(BODY);

	/* Cut inside key 43's line: the line is incomplete. */
	assert_parse_error_sized(t, strlen(HDR NK K41 K42) + 10, 5, "does not end in a newline");
	/* Cut right after a whole line: the checksum is missing. */
	assert_parse_error_sized(t, body, 7, "checksum line is missing");
}

static void test_parse_rejects_crlf_line_endings(void **state)
{
	assert_parse_error("securelink-keyring 1\r\nnext_kid 45\r\n", 1,
	                   "not a securelink keyring");
}

/* Decisions */

static void test_add_random_creates_published_key(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t a = 0, b = 0;
	const Key *k;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 100 * SEC, &a), 0);
	assert_int_equal(keyring_add_random(r, 200 * SEC, &b), 0);
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);
	assert_int_equal(r->next_kid, 3);

	k = keyring_find(r, a);
	assert_non_null(k);
	assert_int_equal(k->state, KEY_PUBLISHED);
	assert_false(k->legacy);
	assert_true(k->published == 100 * SEC);
	assert_true(k->activated == 0 && k->retired == 0 && k->drop_after == 0);
	/* base64url of 32 bytes, no padding: 43 characters of the URL-safe alphabet */
	assert_int_equal(strlen(k->secret), 43);
	assert_int_equal(strspn(k->secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                   "0123456789-_"),
	                 43);
	assert_string_not_equal(k->secret, keyring_find(r, b)->secret);
	assert_null(keyring_active(r));
	assert_ptr_equal(keyring_pending(r), keyring_find(r, b));
}

static void test_add_random_refuses_full_ring(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t kid = 0;

	assert_non_null(r);
	for (unsigned i = 0; i < KEYRING_MAX_KEYS; i++)
		assert_int_equal(keyring_add_random(r, 1, &kid), 0);
	assert_int_equal(keyring_add_random(r, 1, &kid), -E2BIG);
	assert_int_equal(keyring_add_legacy(r, "old", 1, TTL, SKEW, &kid), -E2BIG);
	assert_int_equal(r->n_keys, KEYRING_MAX_KEYS);
	assert_int_equal(r->next_kid, KEYRING_MAX_KEYS + 1);
}

static void test_kids_are_never_reused_after_drop(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t a, b, c;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 0, &a), 0);
	assert_int_equal(keyring_activate(r, a, 1 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 2 * SEC, &b), 0);
	assert_int_equal(keyring_activate(r, b, 3 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_drop_expired(r, 3 * SEC + TTL + SKEW), 1);
	assert_int_equal(keyring_add_random(r, 4 * SEC + TTL + SKEW, &c), 0);
	assert_true(c > b && b > a);
}

static void test_add_legacy_is_retired_default_until_ttl(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t kid = 0;
	const Key *k;

	assert_non_null(r);
	assert_int_equal(keyring_add_legacy(r, "old-django-secret", 1000 * SEC, TTL, SKEW, &kid),
	                 0);
	k = keyring_find(r, kid);
	assert_non_null(k);
	assert_true(k->legacy);
	assert_int_equal(k->state, KEY_RETIRED);
	assert_string_equal(k->secret, "old-django-secret");
	assert_true(k->published == 1000 * SEC);
	assert_true(k->retired == 1000 * SEC);
	assert_true(k->activated == 0);
	assert_true(k->drop_after == 1000 * SEC + TTL + SKEW);
	assert_ptr_equal(keyring_default(r), k);
	assert_null(keyring_active(r));
	assert_null(keyring_pending(r));
}

static void test_add_legacy_validates_secret(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	char longest[KEY_SECRET_MAX + 2];
	uint32_t kid = 0;

	assert_non_null(r);
	assert_int_equal(keyring_add_legacy(r, NULL, 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a\"b", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a\\b", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a$b", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a\nb", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a\tb", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a\x7f", 1, TTL, SKEW, &kid), -EINVAL);
	assert_int_equal(keyring_add_legacy(r, "a\x1b", 1, TTL, SKEW, &kid), -EINVAL);
	memset(longest, 'x', KEY_SECRET_MAX + 1);
	longest[KEY_SECRET_MAX + 1] = '\0';
	assert_int_equal(keyring_add_legacy(r, longest, 1, TTL, SKEW, &kid), -EMSGSIZE);
	assert_int_equal(r->n_keys, 0);
	assert_int_equal(r->next_kid, 1);

	/* The longest allowed, spaces and non-ASCII are fine inside quotes. */
	longest[KEY_SECRET_MAX] = '\0';
	assert_int_equal(keyring_add_legacy(r, longest, 1, TTL, SKEW, &kid), 0);
	assert_int_equal(keyring_add_legacy(r, "sp ace caf\xc3\xa9 {;} 'q'", 1, TTL, SKEW, &kid),
	                 0);
	assert_int_equal(r->n_keys, 2);
}

static void test_add_legacy_saturates_drop_time(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t kid = 0;

	assert_non_null(r);
	assert_int_equal(keyring_add_legacy(r, "old", UINT64_MAX - 5, TTL, SKEW, &kid), 0);
	assert_true(keyring_find(r, kid)->drop_after == USEC_INFINITY);
}

static void test_activate_first_key(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t kid = 0;
	const Key *k;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 10 * SEC, &kid), 0);
	assert_ptr_equal(keyring_default(r), keyring_find(r, kid));
	assert_int_equal(keyring_activate(r, kid, 12 * SEC, TTL, SKEW, false), 0);
	k = keyring_active(r);
	assert_non_null(k);
	assert_int_equal(k->kid, kid);
	assert_true(k->activated == 12 * SEC);
	assert_true(k->published == 10 * SEC);
	assert_true(k->drop_after == 0);
	assert_null(keyring_pending(r));
}

static void test_activate_retires_previous_key(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t a = 0, b = 0;
	const Key *old, *cur;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 10 * SEC, &a), 0);
	assert_int_equal(keyring_activate(r, a, 12 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 86400 * SEC, &b), 0);
	/* Still signing with a while b waits for the reload. */
	assert_int_equal(keyring_active(r)->kid, a);
	assert_int_equal(keyring_pending(r)->kid, b);

	assert_int_equal(keyring_activate(r, b, 86402 * SEC, TTL, SKEW, false), 0);
	old = keyring_find(r, a);
	cur = keyring_find(r, b);
	assert_int_equal(old->state, KEY_RETIRED);
	assert_true(old->retired == 86402 * SEC);
	assert_true(old->drop_after == 86402 * SEC + TTL + SKEW);
	assert_true(old->activated == 12 * SEC);
	assert_int_equal(cur->state, KEY_ACTIVE);
	assert_true(cur->activated == 86402 * SEC);
	assert_ptr_equal(keyring_active(r), cur);
	assert_ptr_equal(keyring_default(r), cur);
	assert_int_equal(r->n_keys, 2);
}

static void test_activate_refuses_wrong_keys(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t legacy = 0, a = 0, b = 0;

	assert_non_null(r);
	assert_int_equal(keyring_add_legacy(r, "old", 1, TTL, SKEW, &legacy), 0);
	assert_int_equal(keyring_add_random(r, 2, &a), 0);
	assert_int_equal(keyring_activate(r, 999, 3, TTL, SKEW, false), -ENOENT);
	/* A legacy key never signs. */
	assert_int_equal(keyring_activate(r, legacy, 3, TTL, SKEW, false), -EINVAL);
	assert_int_equal(keyring_activate(r, legacy, 3, TTL, SKEW, true), -EINVAL);
	assert_int_equal(r->n_keys, 2);

	assert_int_equal(keyring_activate(r, a, 3, TTL, SKEW, false), 0);
	/* Already active, then retired: neither may be activated again. */
	assert_int_equal(keyring_activate(r, a, 4, TTL, SKEW, false), -EINVAL);
	assert_int_equal(keyring_add_random(r, 5, &b), 0);
	assert_int_equal(keyring_activate(r, b, 6, TTL, SKEW, false), 0);
	assert_int_equal(keyring_activate(r, a, 7, TTL, SKEW, false), -EINVAL);
	assert_int_equal(keyring_active(r)->kid, b);
	assert_true(keyring_find(r, a)->retired == 6);
}

static void test_activate_with_revoke_drops_every_other_key(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t legacy = 0, a = 0, b = 0, c = 0;

	assert_non_null(r);
	assert_int_equal(keyring_add_legacy(r, "old", 1, TTL, SKEW, &legacy), 0);
	assert_int_equal(keyring_add_random(r, 2, &a), 0);
	assert_int_equal(keyring_activate(r, a, 3, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 4, &b), 0);
	assert_int_equal(keyring_activate(r, b, 5, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 6, &c), 0);

	assert_int_equal(keyring_activate(r, c, 7, TTL, SKEW, true), 0);
	assert_int_equal(r->n_keys, 1);
	assert_int_equal(r->keys[0].kid, c);
	assert_int_equal(r->keys[0].state, KEY_ACTIVE);
	assert_true(r->keys[0].activated == 7);
	assert_null(keyring_find(r, legacy));
	assert_null(keyring_find(r, a));
	assert_null(keyring_find(r, b));
	assert_ptr_equal(keyring_default(r), &r->keys[0]);
	assert_int_equal(r->next_kid, c + 1);
}

static void test_drop_expired_at_drop_time_only(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t a = 0, b = 0, c = 0;
	usec_t drop;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 10 * SEC, &a), 0);
	assert_int_equal(keyring_activate(r, a, 12 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 100 * SEC, &b), 0);
	assert_int_equal(keyring_activate(r, b, 102 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 200 * SEC, &c), 0); /* pending */
	drop = 102 * SEC + TTL + SKEW;

	assert_int_equal(keyring_drop_expired(r, 0), 0);
	assert_int_equal(keyring_drop_expired(r, drop - 1), 0);
	assert_non_null(keyring_find(r, a));
	assert_int_equal(keyring_drop_expired(r, drop), 1);
	assert_null(keyring_find(r, a));
	/* The active key and a published one never expire. */
	assert_int_equal(keyring_drop_expired(r, USEC_INFINITY), 0);
	assert_int_equal(r->n_keys, 2);
	assert_int_equal(keyring_active(r)->kid, b);
	assert_int_equal(keyring_pending(r)->kid, c);
}

static void test_drop_expired_removes_several_and_keeps_order(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t kids[4];

	assert_non_null(r);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(keyring_add_random(r, i * 10 * SEC, &kids[i]), 0);
		assert_int_equal(keyring_activate(r, kids[i], i * 10 * SEC + 1, TTL, SKEW, false),
		                 0);
	}
	/* kids[0..2] were retired at 10s+1, 20s+1 and 30s+1. */
	assert_int_equal(keyring_drop_expired(r, 20 * SEC + 1 + TTL + SKEW), 2);
	assert_int_equal(r->n_keys, 2);
	assert_int_equal(r->keys[0].kid, kids[2]);
	assert_int_equal(r->keys[1].kid, kids[3]);
}

static void test_default_prefers_living_legacy_key(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t legacy = 0, a = 0, b = 0;

	assert_non_null(r);
	assert_null(keyring_default(r));
	assert_int_equal(keyring_add_random(r, 1 * SEC, &a), 0);
	assert_int_equal(keyring_activate(r, a, 2 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_legacy(r, "old", 3 * SEC, TTL, SKEW, &legacy), 0);
	assert_int_equal(keyring_add_random(r, 4 * SEC, &b), 0);

	/* Links without kid were signed with the old deployment's secret. */
	assert_int_equal(keyring_default(r)->kid, legacy);

	/* Once the legacy key's links have expired it leaves the ring, and the
	 * newest key that is not retired takes over: the pending one, so that
	 * its activation does not change the keys file. */
	assert_int_equal(keyring_drop_expired(r, 3 * SEC + TTL + SKEW), 1);
	assert_int_equal(keyring_default(r)->kid, b);
	assert_int_equal(keyring_activate(r, b, 5 * SEC + TTL + SKEW, TTL, SKEW, false), 0);
	assert_int_equal(keyring_default(r)->kid, b);
	(void)a;
}

static void test_default_falls_back_to_newest_published(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t a = 0, b = 0;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 1, &a), 0);
	assert_int_equal(keyring_add_random(r, 2, &b), 0);
	assert_int_equal(keyring_default(r)->kid, b);
}

static void test_key_state_names(void **state)
{
	assert_string_equal(key_state_to_string(KEY_PUBLISHED), "published");
	assert_string_equal(key_state_to_string(KEY_ACTIVE), "active");
	assert_string_equal(key_state_to_string(KEY_RETIRED), "retired");
	assert_null(key_state_to_string(_KEY_STATE_MAX));
	assert_null(key_state_to_string((KeyState)-1));
}

/* Saving and loading */

static char *make_dir(void)
{
	char *d = strdup("/tmp/test-keyring.XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static void remove_dir(char *d)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", d, KEYRING_FILE);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s/%s", d, KEYRING_PREV_FILE);
	(void)unlink(p);
	assert_int_equal(rmdir(d), 0);
	free(d);
}

static char *path_in(const char *d, const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", d, name) > 0);
	return p;
}

static char *slurp(const char *path, size_t *ret_size)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = fopen(path, "re");
	char chunk[4096];
	size_t k;
	FILE *m;

	assert_non_null(f);
	m = open_memstream(&buf, &size);
	assert_non_null(m);
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, k, m);
	fclose(f);
	fclose(m);
	*ret_size = size;
	return buf;
}

static void put(const char *path, const char *data, size_t size)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, size, f), size);
	assert_int_equal(fclose(f), 0);
}

static void flip_byte(const char *path, size_t offset)
{
	size_t size;
	char *d = slurp(path, &size);

	assert_true(offset < size);
	d[offset] ^= 0x01;
	put(path, d, size);
	free(d);
}

static void assert_same_ring(const KeyRing *a, const KeyRing *b)
{
	assert_int_equal(a->next_kid, b->next_kid);
	assert_int_equal(a->n_keys, b->n_keys);
	for (size_t i = 0; i < a->n_keys; i++) {
		assert_int_equal(a->keys[i].kid, b->keys[i].kid);
		assert_int_equal(a->keys[i].state, b->keys[i].state);
		assert_string_equal(a->keys[i].secret, b->keys[i].secret);
	}
}

static void test_load_empty_dir_is_enoent(void **state)
{
	char *d = make_dir();
	KeyRing *r = NULL;
	char *error = NULL;
	bool used_prev = true;

	assert_int_equal(keyring_load(d, &r, &used_prev, &error), -ENOENT);
	assert_null(r);
	assert_null(error);
	assert_false(used_prev);
	remove_dir(d);
}

static void test_save_writes_0600_and_keeps_prev(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *loaded = NULL, *first = NULL;
	_cleanup_free_ char *path = NULL, *prev = NULL, *error = NULL;
	char *d = make_dir();
	char *v1, *v2;
	size_t s1, s2;
	bool used_prev = true;
	struct stat st;
	uint32_t kid;

	assert_non_null(r);
	path = path_in(d, KEYRING_FILE);
	prev = path_in(d, KEYRING_PREV_FILE);

	assert_int_equal(keyring_add_random(r, 1 * SEC, &kid), 0);
	assert_int_equal(keyring_activate(r, kid, 2 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_save(r, d), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	v1 = slurp(path, &s1);

	assert_int_equal(keyring_load(d, &first, &used_prev, &error), 0);
	assert_false(used_prev);
	assert_null(error);
	assert_same_ring(r, first);

	assert_int_equal(keyring_add_random(r, 3 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(prev, &st), 0);
	v2 = slurp(prev, &s2);
	/* keyring.prev is byte for byte the file that was replaced. */
	assert_int_equal(s1, s2);
	assert_memory_equal(v1, v2, s1);
	free(v1);
	free(v2);

	assert_int_equal(keyring_load(d, &loaded, &used_prev, &error), 0);
	assert_false(used_prev);
	assert_same_ring(r, loaded);

	remove_dir(d);
}

static void test_load_falls_back_to_prev_when_keyring_corrupt(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *first = NULL, *loaded = NULL;
	_cleanup_free_ char *path = NULL, *error = NULL;
	char *d = make_dir();
	bool used_prev = false;
	uint32_t kid;

	assert_non_null(r);
	path = path_in(d, KEYRING_FILE);
	assert_int_equal(keyring_add_random(r, 1 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	assert_int_equal(keyring_load(d, &first, NULL, NULL), 0);
	assert_int_equal(keyring_add_random(r, 2 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);

	/* A changed byte in the middle of a key line. */
	flip_byte(path, 60);
	assert_int_equal(keyring_load(d, &loaded, &used_prev, &error), 0);
	assert_true(used_prev);
	/* Why keyring was not used, for the log line. */
	assert_non_null(error);
	assert_non_null(strstr(error, "checksum does not match"));
	assert_non_null(strstr(error, path));
	assert_same_ring(first, loaded);

	remove_dir(d);
}

static bool file_holds(const char *path, const char *needle)
{
	size_t size = 0;
	char *text = slurp(path, &size);
	bool found = memmem(text, size, needle, strlen(needle)) != NULL;

	free(text);
	return found;
}

static void test_save_revoked_leaves_no_copy_of_a_revoked_key(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *loaded = NULL;
	_cleanup_free_ char *prev = NULL, *corrupt = NULL, *error = NULL;
	char *d = make_dir();
	/* base64url of the secret, as Python's base64 module writes it: the
	 * key ring stores secrets so. */
	const char *revoked = "cmV2b2tlZC1sZWdhY3ktc2VjcmV0";
	uint32_t kid;
	bool used_prev = true;
	int fd;

	assert_non_null(r);
	prev = path_in(d, KEYRING_PREV_FILE);
	corrupt = path_in(d, KEYRING_CORRUPT_FILE);
	assert_int_equal(keyring_add_legacy(r, "revoked-legacy-secret", 1 * SEC, TTL, SKEW, &kid),
	                 0);
	assert_int_equal(keyring_add_random(r, 2 * SEC, &kid), 0);
	assert_int_equal(keyring_activate(r, kid, 3 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, 4 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	assert_int_equal(keyring_save(r, d), 0); /* keyring.prev holds every key too */
	fd = open(corrupt, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_true(file_holds(prev, revoked));

	/* The pending key and the legacy key go: only the active one stays. */
	assert_int_equal(keyring_revoke_all_but_active(r), 2);
	assert_int_equal(r->n_keys, 1);
	assert_int_equal(r->keys[0].state, KEY_ACTIVE);
	assert_int_equal(keyring_save_revoked(r, d), 0);

	assert_false(file_holds(prev, revoked));
	assert_int_equal(access(corrupt, F_OK), -1);
	assert_int_equal(keyring_load(d, &loaded, &used_prev, &error), 0);
	assert_false(used_prev);
	assert_same_ring(r, loaded);

	remove_dir(d);
}

static void test_load_uses_prev_when_keyring_missing(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *loaded = NULL;
	_cleanup_free_ char *path = NULL, *prev = NULL;
	char *d = make_dir();
	bool used_prev = false;
	uint32_t kid;

	assert_non_null(r);
	path = path_in(d, KEYRING_FILE);
	prev = path_in(d, KEYRING_PREV_FILE);
	assert_int_equal(keyring_add_random(r, 1 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	/* A crash between the renames of a save leaves only keyring.prev. */
	assert_int_equal(rename(path, prev), 0);

	assert_int_equal(keyring_load(d, &loaded, &used_prev, NULL), 0);
	assert_true(used_prev);
	assert_same_ring(r, loaded);

	remove_dir(d);
}

static void test_load_refuses_when_both_copies_corrupt(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *loaded = NULL;
	_cleanup_free_ char *path = NULL, *prev = NULL, *error = NULL;
	char *d = make_dir();
	char *before_k, *before_p, *after_k, *after_p;
	size_t sk, sp, ak, ap;
	bool used_prev = true;
	uint32_t kid;

	assert_non_null(r);
	path = path_in(d, KEYRING_FILE);
	prev = path_in(d, KEYRING_PREV_FILE);
	assert_int_equal(keyring_add_random(r, 1 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	assert_int_equal(keyring_add_random(r, 2 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);

	flip_byte(path, 1);  /* in the header */
	flip_byte(prev, 60); /* a time in key 1's line: only the checksum notices */
	before_k = slurp(path, &sk);
	before_p = slurp(prev, &sp);

	assert_int_equal(keyring_load(d, &loaded, &used_prev, &error), -EBADMSG);
	assert_null(loaded);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	assert_non_null(strstr(error, prev));
	assert_non_null(strstr(error, "line 1: not a securelink keyring"));
	assert_non_null(strstr(error, "line 4: checksum does not match"));
	assert_non_null(strstr(error, "restore"));
	assert_non_null(strstr(error, "backup"));
	assert_null(strchr(error, '\n'));
	for (size_t i = 0; i < r->n_keys; i++)
		assert_null(strstr(error, r->keys[i].secret));

	/* Nothing was replaced or repaired behind the admin's back. */
	after_k = slurp(path, &ak);
	after_p = slurp(prev, &ap);
	assert_int_equal(sk, ak);
	assert_int_equal(sp, ap);
	assert_memory_equal(before_k, after_k, sk);
	assert_memory_equal(before_p, after_p, sp);
	free(before_k);
	free(before_p);
	free(after_k);
	free(after_p);

	remove_dir(d);
}

static void test_load_refuses_corrupt_keyring_without_prev(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *loaded = NULL;
	_cleanup_free_ char *path = NULL, *error = NULL;
	char *d = make_dir();
	uint32_t kid;

	assert_non_null(r);
	path = path_in(d, KEYRING_FILE);
	assert_int_equal(keyring_add_random(r, 1 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	assert_int_equal(truncate(path, 40), 0);

	assert_int_equal(keyring_load(d, &loaded, NULL, &error), -EBADMSG);
	assert_null(loaded);
	assert_non_null(error);
	assert_non_null(strstr(error, "does not end in a newline"));
	assert_non_null(strstr(error, KEYRING_PREV_FILE ": does not exist"));

	remove_dir(d);
}

static void test_load_refuses_oversized_file(void **state)
{
	_cleanup_(keyring_freep) KeyRing *loaded = NULL;
	_cleanup_free_ char *path = NULL, *error = NULL;
	char *d = make_dir();
	size_t size = 1024 * 1024;
	char *big = malloc(size);

	assert_non_null(big);
	memset(big, '\n', size);
	path = path_in(d, KEYRING_FILE);
	put(path, big, size);
	free(big);

	assert_int_equal(keyring_load(d, &loaded, NULL, &error), -EBADMSG);
	assert_non_null(error);
	assert_non_null(strstr(error, "larger than"));

	remove_dir(d);
}

/* A start at +400 days (a bad RTC before NTP) rotated there: key 1 active
 * since the real now retired at +400d, key 2 activated at +400d. Back on the
 * right clock, every time returns to now, in order, and key 1 keeps its
 * links' lifetime. */
static void test_rebase_future_moves_times_of_a_clock_that_ran_ahead_back_to_now(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	const usec_t now = 1000 * SEC, ahead = now + 400 * 24 * USEC_PER_HOUR;
	uint32_t a, b, c;

	assert_int_equal(keyring_add_random(r, now - 60 * SEC, &a), 0);
	assert_int_equal(keyring_activate(r, a, now - 50 * SEC, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, ahead - SEC, &b), 0);
	assert_int_equal(keyring_activate(r, b, ahead, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, ahead + 5 * SEC, &c), 0);

	assert_int_equal(keyring_rebase_future(r, now, SEC), ahead + 5 * SEC - now);

	/* Before the excursion: untouched. */
	assert_int_equal(keyring_find(r, a)->published, now - 60 * SEC);
	assert_int_equal(keyring_find(r, a)->activated, now - 50 * SEC);
	assert_int_equal(keyring_find(r, a)->retired, now);
	assert_int_equal(keyring_find(r, a)->drop_after, now + TTL + SKEW);
	assert_int_equal(keyring_find(r, b)->published, now);
	assert_int_equal(keyring_find(r, b)->activated, now);
	assert_int_equal(keyring_find(r, c)->published, now);
	assert_int_equal(keyring_find(r, c)->state, KEY_PUBLISHED);

	/* Done once: nothing is ahead any more. */
	assert_int_equal(keyring_rebase_future(r, now, SEC), 0);
}

static void test_rebase_future_leaves_times_within_the_tolerance(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	uint32_t a;

	assert_int_equal(keyring_add_random(r, 100 * SEC + SEC / 2, &a), 0);
	assert_int_equal(keyring_rebase_future(r, 100 * SEC, SEC), 0);
	assert_int_equal(keyring_find(r, a)->published, 100 * SEC + SEC / 2);
	assert_int_equal(keyring_rebase_future(r, 100 * SEC, 0), SEC / 2);
	assert_int_equal(keyring_find(r, a)->published, 100 * SEC);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_revoke_mark_names_the_fresh_kid_until_unmarked(void **state)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	char *d = make_dir();
	uint32_t kid = 0;
	size_t size;

	path = path_in(d, KEYRING_REVOKE_FILE);
	assert_int_equal(keyring_revoke_marked(d, &kid), -ENOENT);
	assert_int_equal(keyring_revoke_mark(d, 4242), 0);
	/* The file is what a person reads: the kid and a newline, 0600. */
	text = slurp(path, &size);
	assert_int_equal(size, 5);
	assert_memory_equal(text, "4242\n", 5);
	assert_int_equal(keyring_revoke_marked(d, &kid), 0);
	assert_int_equal(kid, 4242);

	/* Anything else is no kid. */
	static const char *const bad[] = {
		"", "\n", "0\n", "42", "4294967296\n", "-1\n", "4x\n", "12345678901234567\n"
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		write_text(path, bad[i]);
		assert_int_equal(keyring_revoke_marked(d, &kid), -EBADMSG);
	}

	assert_int_equal(keyring_revoke_unmark(d), 0);
	assert_int_equal(keyring_revoke_marked(d, &kid), -ENOENT);
	assert_int_equal(keyring_revoke_unmark(d), 0);
	remove_dir(d);
}

static void test_load_refuses_fifo_and_symlink_without_blocking(void **state)
{
	_cleanup_(keyring_freep) KeyRing *r = keyring_new(), *loaded = NULL;
	_cleanup_free_ char *path = NULL, *prev = NULL, *error = NULL, *error2 = NULL;
	char *d = make_dir();
	uint32_t kid;

	/* A FIFO would block open() until a writer comes: never at start. */
	path = path_in(d, KEYRING_FILE);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(keyring_load(d, &loaded, NULL, &error), -EBADFD);
	assert_null(loaded);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	assert_non_null(strstr(error, "not a regular file"));
	assert_int_equal(unlink(path), 0);

	/* A symlink is not followed, even to a good ring. */
	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, 1 * SEC, &kid), 0);
	assert_int_equal(keyring_save(r, d), 0);
	prev = path_in(d, "elsewhere");
	assert_int_equal(rename(path, prev), 0);
	assert_int_equal(symlink(prev, path), 0);
	assert_int_equal(keyring_load(d, &loaded, NULL, &error2), -ELOOP);
	assert_null(loaded);
	assert_non_null(error2);
	assert_non_null(strstr(error2, "symbolic link"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(prev), 0);

	remove_dir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_reads_hand_written_file),
		cmocka_unit_test(test_parse_reads_empty_ring),
		cmocka_unit_test(test_serialize_reproduces_hand_written_file),
		cmocka_unit_test(test_serialize_empty_ring_matches_b2sum),
		cmocka_unit_test(test_serialize_parse_round_trip_of_random_keys),
		cmocka_unit_test(test_serialize_refuses_ring_the_parser_would_refuse),
		cmocka_unit_test(test_parse_rejects_empty_file),
		cmocka_unit_test(test_parse_rejects_bad_header),
		cmocka_unit_test(test_parse_rejects_bad_next_kid),
		cmocka_unit_test(test_parse_accepts_largest_next_kid),
		cmocka_unit_test(test_parse_rejects_wrong_field_count),
		cmocka_unit_test(test_parse_rejects_unknown_record),
		cmocka_unit_test(test_parse_rejects_bad_kid),
		cmocka_unit_test(test_parse_rejects_duplicate_and_decreasing_kid),
		cmocka_unit_test(test_parse_rejects_kid_not_below_next_kid),
		cmocka_unit_test(test_parse_rejects_two_active_keys),
		cmocka_unit_test(test_parse_rejects_bad_state),
		cmocka_unit_test(test_parse_rejects_bad_legacy_flag),
		cmocka_unit_test(test_parse_rejects_legacy_key_that_signs),
		cmocka_unit_test(test_parse_rejects_bad_times),
		cmocka_unit_test(test_parse_accepts_largest_times),
		cmocka_unit_test(test_parse_rejects_bad_secret_encoding),
		cmocka_unit_test(test_parse_rejects_overlong_secret),
		cmocka_unit_test(test_parse_rejects_secret_nginx_cannot_hold),
		cmocka_unit_test(test_parse_rejects_more_than_max_keys),
		cmocka_unit_test(test_parse_rejects_overlong_line),
		cmocka_unit_test(test_parse_rejects_nul_byte),
		cmocka_unit_test(test_parse_rejects_checksum_mismatch),
		cmocka_unit_test(test_parse_rejects_checksum_of_other_content),
		cmocka_unit_test(test_parse_rejects_malformed_checksum),
		cmocka_unit_test(test_parse_rejects_missing_checksum),
		cmocka_unit_test(test_parse_rejects_data_after_checksum),
		cmocka_unit_test(test_parse_rejects_missing_final_newline),
		cmocka_unit_test(test_parse_rejects_truncated_file),
		cmocka_unit_test(test_parse_rejects_crlf_line_endings),
		cmocka_unit_test(test_add_random_creates_published_key),
		cmocka_unit_test(test_add_random_refuses_full_ring),
		cmocka_unit_test(test_kids_are_never_reused_after_drop),
		cmocka_unit_test(test_add_legacy_is_retired_default_until_ttl),
		cmocka_unit_test(test_add_legacy_validates_secret),
		cmocka_unit_test(test_add_legacy_saturates_drop_time),
		cmocka_unit_test(test_activate_first_key),
		cmocka_unit_test(
		    test_rebase_future_moves_times_of_a_clock_that_ran_ahead_back_to_now),
		cmocka_unit_test(test_rebase_future_leaves_times_within_the_tolerance),
		cmocka_unit_test(test_activate_retires_previous_key),
		cmocka_unit_test(test_activate_refuses_wrong_keys),
		cmocka_unit_test(test_activate_with_revoke_drops_every_other_key),
		cmocka_unit_test(test_drop_expired_at_drop_time_only),
		cmocka_unit_test(test_drop_expired_removes_several_and_keeps_order),
		cmocka_unit_test(test_default_prefers_living_legacy_key),
		cmocka_unit_test(test_default_falls_back_to_newest_published),
		cmocka_unit_test(test_key_state_names),
		cmocka_unit_test(test_load_empty_dir_is_enoent),
		cmocka_unit_test(test_save_writes_0600_and_keeps_prev),
		cmocka_unit_test(test_load_falls_back_to_prev_when_keyring_corrupt),
		cmocka_unit_test(test_save_revoked_leaves_no_copy_of_a_revoked_key),
		cmocka_unit_test(test_load_uses_prev_when_keyring_missing),
		cmocka_unit_test(test_load_refuses_when_both_copies_corrupt),
		cmocka_unit_test(test_load_refuses_corrupt_keyring_without_prev),
		cmocka_unit_test(test_load_refuses_oversized_file),
		cmocka_unit_test(test_load_refuses_fifo_and_symlink_without_blocking),
		cmocka_unit_test(test_revoke_mark_names_the_fresh_kid_until_unmarked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
