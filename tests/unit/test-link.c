/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "config.h"
#include "unit-config.h"
#include "keyring.h"
#include "link.h"
#include "sign.h"
#include "util.h"

/* django-nginx-secure-links' published vector: secret "secret_xyz",
 * uri /media/private/sample1.pdf, expires 1599214310. Confirmed with
 *   echo -n "1599214310/media/private/sample1.pdf secret_xyz" |
 *     openssl md5 -binary | base64 | tr '+/' '-_' | tr -d '=' */
#define DJ_SECRET  "secret_xyz"
#define DJ_URI     "/media/private/sample1.pdf"
#define DJ_EXPIRES 1599214310
#define DJ_TOKEN   "GdxTxfNK92Grtg-hD7CH6g"
#define DJ_URL     DJ_URI "?token=" DJ_TOKEN "&expires=1599214310"

/* More answers from openssl, same pipeline:
 *   "1599214310/media/private/a b.pdf secret_xyz"           -> OPENSSL_SPACE
 *   "1599214310/media/private/sample1.pdf127.0.0.1 secret_xyz" -> OPENSSL_IP
 *   "1599214310/media/private/~/a+b/c.pdf secret_xyz"       -> OPENSSL_PLUS
 *   "1599214310/media/private/sample1.pdf::1 secret_xyz"      -> OPENSSL_IP6 */
#define OPENSSL_SPACE "q3BbzdOCaEknpLwqrydIXQ"
#define OPENSSL_IP    "b1tEt-5sM5iH4ETlRD27Zg"
#define OPENSSL_PLUS  "AgDV9dOQRzMSMNLtyiOsIQ"
#define OPENSSL_IP6   "akbk4VxYOsanF-QSRpZd6A"

#define NOW_USEC ((usec_t)1599214000 * USEC_PER_SEC)
#define TTL      (24 * USEC_PER_HOUR)
#define SKEW     (30 * USEC_PER_SEC)
#define BEFORE   (DJ_EXPIRES - 100)

typedef struct Fixture {
	Config *c;
	KeyRing *r;
	Signer *s;
	uint32_t legacy_kid;
} Fixture;

static void fixture_free(Fixture *f)
{
	config_free(f->c);
	keyring_free(f->r);
	signer_free(f->s);
	free(f);
}

/* A ring holding the django secret as an imported legacy key (kid 1), plus
 * an active random key (kid 2) unless without_active. */
static Fixture *fixture_new(const char *conf, bool without_active)
{
	Fixture *f = calloc(1, sizeof(Fixture));
	uint32_t kid;

	assert_non_null(f);
	f->c = config_or_fail(conf);
	f->r = keyring_new();
	assert_non_null(f->r);
	assert_int_equal(signer_new(&f->s), 0);
	assert_int_equal(keyring_add_legacy(f->r, DJ_SECRET, NOW_USEC, TTL, SKEW, &f->legacy_kid),
	                 0);
	if (!without_active) {
		assert_int_equal(keyring_add_random(f->r, NOW_USEC, &kid), 0);
		assert_int_equal(keyring_activate(f->r, kid, NOW_USEC, TTL, SKEW, false), 0);
	}
	return f;
}

/* For signing known answers: the django secret as the active key. A legacy
 * key never signs, so the fixture turns it into an ordinary one. */
static Fixture *fixture_django_active(const char *conf)
{
	Fixture *f = fixture_new(conf, true);

	f->r->keys[0].legacy = false;
	f->r->keys[0].state = KEY_ACTIVE;
	return f;
}

static int fixture_teardown(void **state)
{
	if (*state)
		fixture_free(*state);
	*state = NULL;
	return 0;
}

/* link_sign */

static void assert_sign(Fixture *f, const char *target, int64_t expires, const char *ip,
                        const char *want)
{
	_cleanup_free_ char *url = NULL, *buf = NULL;
	ProtoError code = _PROTO_ERROR_MAX;
	const char *message = NULL;
	size_t len = SIZE_MAX;
	int r;

	r = link_sign(f->c, f->r, f->s, target, expires, ip, &url, &code, &message);
	if (r < 0)
		fail_msg("link_sign(%s): %d %s", target, r, message ?: "");
	assert_string_equal(url, want);

	/* link_sign_to(), which SIGN uses, writes the same link into a buffer
	 * that just holds it, and refuses one a byte shorter. */
	buf = malloc(strlen(want) + 1);
	assert_non_null(buf);
	assert_int_equal(link_sign_to(f->c, f->r, f->s, target, expires, ip, buf, strlen(want) + 1,
	                              &len, &code, &message),
	                 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(buf, want);
	message = NULL;
	assert_int_equal(link_sign_to(f->c, f->r, f->s, target, expires, ip, buf, strlen(want),
	                              &len, &code, &message),
	                 -ENOBUFS);
	assert_int_equal(code, PROTO_BAD_TARGET);
	assert_non_null(message);
}

static void assert_sign_fails(Fixture *f, const char *target, int64_t expires, const char *ip,
                              int want_r, ProtoError want_code, const char *want_message)
{
	char *url = NULL;
	ProtoError code = _PROTO_ERROR_MAX;
	const char *message = NULL;

	assert_int_equal(link_sign(f->c, f->r, f->s, target, expires, ip, &url, &code, &message),
	                 want_r);
	assert_null(url);
	assert_int_equal(code, want_code);
	assert_non_null(message);
	if (want_message)
		assert_string_equal(message, want_message);
}

static void test_sign_matches_django_vector(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");

	assert_sign(f, DJ_URI, DJ_EXPIRES, NULL, DJ_URL "&kid=1");
}

static void test_sign_hashes_decoded_path_and_answers_canonical_encoding(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");

	assert_sign(f, "/media/private/a%20b.pdf", DJ_EXPIRES, NULL,
	            "/media/private/a%20b.pdf?token=" OPENSSL_SPACE "&expires=1599214310&kid=1");
	/* Lower-case escapes, a raw '+', an escaped '/', a raw '~' and a
	 * doubled slash: the answer has one spelling. */
	assert_sign(f, "/media//private/%7e/a+b%2fc.pdf", DJ_EXPIRES, NULL,
	            "/media/private/~/a%2Bb/c.pdf?token=" OPENSSL_PLUS "&expires=1599214310&kid=1");
}

/* A target longer than a request line can hold (a direct caller's) is
 * decoded on the heap: 3000 "%61" decode to 3000 'a'. The token is openssl's:
 *   printf '%s' "1599214310/media/private/<3000 x a> secret_xyz" |
 *     openssl md5 -binary | base64 | tr '+/' '-_' | tr -d '='
 * A decoded path beyond 8192 bytes is more than nginx's $uri may be here. */
static void test_sign_target_longer_than_a_line(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");
	const char *prefix = "/media/private/";
	size_t pl = strlen(prefix);
	_cleanup_free_ char *target = malloc(pl + 3 * 3000 + 1);
	_cleanup_free_ char *want = malloc(pl + 3000 + 100);
	_cleanup_free_ char *huge = malloc(pl + 9000 + 1);

	assert_non_null(target);
	assert_non_null(want);
	assert_non_null(huge);
	memcpy(target, prefix, pl);
	memcpy(want, prefix, pl);
	for (size_t i = 0; i < 3000; i++) {
		memcpy(target + pl + 3 * i, "%61", 3);
		want[pl + i] = 'a';
	}
	target[pl + 9000] = '\0';
	strcpy(want + pl + 3000, "?token=zfXrk_6_sw8xE3Nk2f7BMQ&expires=1599214310&kid=1");
	assert_sign(f, target, DJ_EXPIRES, NULL, want);

	memcpy(huge, prefix, pl);
	memset(huge + pl, 'a', 9000);
	huge[pl + 9000] = '\0';
	assert_sign_fails(f, huge, DJ_EXPIRES, NULL, -EINVAL, PROTO_BAD_TARGET, "path too long");
}

/* nginx answers 414 to a request line longer than its buffer
 * (large_client_header_buffers, 8k by default): a link whose path and query
 * are longer than max_url_length is refused, public or private; the origin
 * is not in the request line and does not count. */
static void test_sign_refuses_links_longer_than_max_url_length(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n"
	                                            "max_url_length = 100\n");
	/* "?token=<22>&expires=1599214310&kid=1": 54 bytes after the path. */
	size_t ql = strlen("?token=") + SIGN_TOKEN_LEN + strlen("&expires=1599214310&kid=1");
	char target[128], want[128];
	_cleanup_free_ char *url = NULL;
	ProtoError code;
	const char *message = NULL;

	assert_int_equal(ql, 54);
	/* A private link of exactly 100 bytes: a 46-byte path. */
	snprintf(target, sizeof(target), "/media/private/%.*s", 46 - 15,
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(strlen(target), 46);
	assert_int_equal(
	    link_sign(f->c, f->r, f->s, target, DJ_EXPIRES, NULL, &url, &code, &message), 0);
	assert_int_equal(strlen(url), 100);
	free(url);
	url = NULL;

	/* One byte more: refused, naming the limit and the fix. */
	strcat(target, "a");
	assert_int_equal(
	    link_sign(f->c, f->r, f->s, target, DJ_EXPIRES, NULL, &url, &code, &message), -EINVAL);
	assert_null(url);
	assert_int_equal(code, PROTO_BAD_TARGET);
	assert_string_equal(message,
	                    "the link would be 101 bytes, longer than max_url_length = 100 (nginx "
	                    "answers 414 to a longer request line; shorten the target, or raise "
	                    "large_client_header_buffers in nginx and max_url_length with it)");

	/* Encoding counts: 16 spaces are 48 bytes of link as %20. */
	assert_sign_fails(f, "/media/private/%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20",
	                  DJ_EXPIRES, NULL, -EINVAL, PROTO_BAD_TARGET,
	                  "the link would be 117 bytes, longer than max_url_length = 100 (nginx "
	                  "answers 414 to a longer request line; shorten the target, or raise "
	                  "large_client_header_buffers in nginx and max_url_length with it)");

	/* Public: no parameters, the same bound. */
	memset(want, 'b', 100);
	memcpy(want, "/media/public/", 14);
	want[100] = '\0';
	assert_sign(f, want, DJ_EXPIRES, NULL, want);
	want[100] = 'b';
	want[101] = '\0';
	assert_sign_fails(f, want, DJ_EXPIRES, NULL, -EINVAL, PROTO_BAD_TARGET,
	                  "the link would be 101 bytes, longer than max_url_length = 100 (nginx "
	                  "answers 414 to a longer request line; shorten the target, or raise "
	                  "large_client_header_buffers in nginx and max_url_length with it)");
}

/* The origin (base_url or the target's) is not part of the request line. */
static void test_sign_max_url_length_leaves_out_the_origin(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n"
	                                            "max_url_length = 100\n"
	                                            "base_url = https://files.example.com\n");
	char target[128];
	_cleanup_free_ char *url = NULL;
	ProtoError code;
	const char *message = NULL;

	snprintf(target, sizeof(target), "/media/private/%.*s", 46 - 15,
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(
	    link_sign(f->c, f->r, f->s, target, DJ_EXPIRES, NULL, &url, &code, &message), 0);
	assert_int_equal(strlen(url), strlen("https://files.example.com") + 100);
	free(url);
	url = NULL;

	snprintf(target, sizeof(target), "//cdn.example.org:8443/media/private/%.*s", 46 - 15,
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(
	    link_sign(f->c, f->r, f->s, target, DJ_EXPIRES, NULL, &url, &code, &message), 0);
	assert_int_equal(strlen(url), strlen("//cdn.example.org:8443") + 100);
	free(url);
	url = NULL;

	strcat(target, "a");
	assert_int_equal(
	    link_sign(f->c, f->r, f->s, target, DJ_EXPIRES, NULL, &url, &code, &message), -EINVAL);
	assert_int_equal(code, PROTO_BAD_TARGET);
}

static void test_sign_keeps_origin_and_uses_base_url(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n"
	                                            "base_url = https://files.example.com/\n");

	assert_sign(f, DJ_URI, DJ_EXPIRES, NULL, "https://files.example.com" DJ_URL "&kid=1");
	assert_sign(f, "HTTP://cdn.example.org:8080/media/private/a%20b.pdf", DJ_EXPIRES, NULL,
	            "http://cdn.example.org:8080/media/private/a%20b.pdf?token=" OPENSSL_SPACE
	            "&expires=1599214310&kid=1");
}

static void test_sign_public_path_has_no_parameters(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n"
	                                            "base_url = https://files.example.com\n");

	assert_sign(f, "/media/public/a%20b.css", DJ_EXPIRES, NULL,
	            "https://files.example.com/media/public/a%20b.css");
	assert_sign(f, "/static/x.js", DJ_EXPIRES, NULL, "https://files.example.com/static/x.js");
	/* "private2/" is not under "private/". */
	assert_sign(f, "/media/private2/x", DJ_EXPIRES, NULL,
	            "https://files.example.com/media/private2/x");
}

static void test_sign_uses_configured_parameter_names(void **state)
{
	Fixture *f = *state = fixture_django_active(
	    "[links]\nprivate_prefixes = private/\ntoken_param = t\nexpires_param = e\n"
	    "key_param = k\n");

	assert_sign(f, DJ_URI, DJ_EXPIRES, NULL, DJ_URI "?t=" DJ_TOKEN "&e=1599214310&k=1");
}

static void test_sign_with_bind_ip_hashes_the_address(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n"
	                                            "bind_ip = yes\n");

	assert_sign(f, DJ_URI, DJ_EXPIRES, "127.0.0.1",
	            DJ_URI "?token=" OPENSSL_IP "&expires=1599214310&kid=1");
}

static void test_sign_without_bind_ip_refuses_an_address(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");

	/* nginx would not check it: a link "bound" to it opens from anywhere. */
	assert_sign_fails(f, DJ_URI, DJ_EXPIRES, "127.0.0.1", -EINVAL, PROTO_BAD_IP,
	                  "ip= given but bind_ip = no: links are not bound to an address (set "
	                  "bind_ip = yes in securelinkd.conf, or leave out ip=)");
	assert_sign_fails(f, "/media/public/x", DJ_EXPIRES, "127.0.0.1", -EINVAL, PROTO_BAD_IP,
	                  NULL);
	assert_sign(f, DJ_URI, DJ_EXPIRES, NULL, DJ_URL "&kid=1");
}

static void test_sign_rejects_bad_targets_with_urlpath_reason(void **state)
{
	Fixture *f = *state = fixture_django_active("");
	static const char *const bad[] = {
		"media/x",
		"/media/../etc/passwd",
		"/media/%2e%2E/x",
		"/media/a%zz",
		"/media/a%4",
		"/media/a%00b",
		"/media/a?b",
		"/media/a#b",
		"ftp://h/media/x",
		"/media/a b",
		"",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_sign_fails(f, bad[i], DJ_EXPIRES, NULL, -EINVAL, PROTO_BAD_TARGET, NULL);
	/* The reason is urlpath's own. */
	assert_sign_fails(f, "/media/a%zz", DJ_EXPIRES, NULL, -EINVAL, PROTO_BAD_TARGET,
	                  "bad percent-escape");
}

static void test_sign_without_active_key_is_unavailable(void **state)
{
	/* Only the legacy key, which never signs. */
	Fixture *f = *state = fixture_new("", true);

	assert_sign_fails(f, DJ_URI, DJ_EXPIRES, NULL, -ENOKEY, PROTO_UNAVAILABLE, NULL);
}

static void test_sign_public_path_needs_no_key(void **state)
{
	Fixture *f = *state = fixture_new("[links]\nprivate_prefixes = private/\n", true);

	assert_sign(f, "/media/public/x", DJ_EXPIRES, NULL, "/media/public/x");
}

static void test_sign_with_bind_ip_requires_ip(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nbind_ip = yes\n");

	assert_sign_fails(f, DJ_URI, DJ_EXPIRES, NULL, -EINVAL, PROTO_BAD_IP,
	                  "ip= is required when bind_ip = yes");
	assert_sign_fails(f, DJ_URI, DJ_EXPIRES, "localhost", -EINVAL, PROTO_BAD_IP, NULL);
	assert_sign_fails(f, DJ_URI, DJ_EXPIRES, "", -EINVAL, PROTO_BAD_IP, NULL);
	assert_sign(f, DJ_URI, DJ_EXPIRES, "::1",
	            DJ_URI "?token=" OPENSSL_IP6 "&expires=1599214310&kid=1");
}

static void test_sign_rejects_non_positive_expires(void **state)
{
	Fixture *f = *state = fixture_django_active("");

	assert_sign_fails(f, DJ_URI, 0, NULL, -EINVAL, PROTO_BAD_TTL, NULL);
	assert_sign_fails(f, DJ_URI, -5, NULL, -EINVAL, PROTO_BAD_TTL, NULL);
}

/* link_verify */

typedef struct Verdict {
	int r;
	LinkVerdict verdict;
	uint32_t kid;
	int64_t expires;
	const char *reason;
	ProtoError code;
} Verdict;

static Verdict verify(Fixture *f, const char *url, const char *ip, int64_t now)
{
	Verdict v = { .verdict = _LINK_VERDICT_MAX, .code = _PROTO_ERROR_MAX };
	const char *message = NULL;

	v.r = link_verify(f->c, f->r, f->s, url, ip, NULL, now, &v.verdict, &v.kid, &v.expires,
	                  &v.reason, &v.code, &message);
	return v;
}

static void assert_valid(Fixture *f, const char *url, const char *ip, int64_t now, uint32_t kid)
{
	Verdict v = verify(f, url, ip, now);

	if (v.r < 0 || v.verdict != LINK_VALID)
		fail_msg("%s: r=%d verdict=%d reason=%s", url, v.r, v.verdict, v.reason ?: "");
	assert_int_equal(v.kid, kid);
	assert_int_equal(v.expires, DJ_EXPIRES);
}

static void assert_invalid(Fixture *f, const char *url, const char *ip, const char *reason)
{
	Verdict v = verify(f, url, ip, BEFORE);

	assert_int_equal(v.r, 0);
	if (v.verdict != LINK_INVALID)
		fail_msg("%s: verdict %d, expected invalid", url, v.verdict);
	assert_non_null(v.reason);
	assert_string_equal(v.reason, reason);
}

static void test_verify_accepts_django_link_without_kid(void **state)
{
	Fixture *f = *state = fixture_new("", false);

	/* No kid: nginx's map default, which is the legacy key. */
	assert_valid(f, DJ_URL, NULL, BEFORE, f->legacy_kid);
	assert_valid(f, DJ_URL "&kid=1", NULL, BEFORE, f->legacy_kid);
	assert_valid(f, "https://example.com" DJ_URL, NULL, BEFORE, f->legacy_kid);
}

static void test_verify_reports_expired_as_nginx_does(void **state)
{
	Fixture *f = *state = fixture_new("", false);
	Verdict v;

	v = verify(f, DJ_URL, NULL, DJ_EXPIRES + 1);
	assert_int_equal(v.r, 0);
	assert_int_equal(v.verdict, LINK_EXPIRED);
	assert_int_equal(v.kid, f->legacy_kid);
	assert_int_equal(v.expires, DJ_EXPIRES);
	/* nginx: expired only when expires < now. */
	assert_valid(f, DJ_URL, NULL, DJ_EXPIRES, f->legacy_kid);
	/* A bad token is invalid (403), never expired (410). */
	v = verify(f, DJ_URI "?token=AAAAAAAAAAAAAAAAAAAAAA&expires=1599214310", NULL,
	           DJ_EXPIRES + 1);
	assert_int_equal(v.verdict, LINK_INVALID);
}

static void test_verify_round_trips_link_sign(void **state)
{
	Fixture *f = *state = fixture_new("", false);
	_cleanup_free_ char *url = NULL;
	ProtoError code;
	const char *message;

	assert_int_equal(link_sign(f->c, f->r, f->s, "/media/caf%C3%A9/%2B%25.pdf", DJ_EXPIRES,
	                           NULL, &url, &code, &message),
	                 0);
	assert_valid(f, url, NULL, BEFORE, keyring_active(f->r)->kid);
}

static void test_verify_rejects_tampering(void **state)
{
	Fixture *f = *state = fixture_new("", false);

	assert_invalid(f, DJ_URI "?token=HdxTxfNK92Grtg-hD7CH6g&expires=1599214310", NULL,
	               "bad token");
	assert_invalid(f, "/media/private/sample2.pdf?token=" DJ_TOKEN "&expires=1599214310", NULL,
	               "bad token");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=1599214311", NULL, "bad token");
	/* kid 2 is a real key, not the one that signed. */
	assert_invalid(f, DJ_URL "&kid=2", NULL, "bad token");
}

static void test_verify_unknown_kid_falls_back_to_default_key(void **state)
{
	Fixture *f = *state = fixture_new("", false);

	/* nginx's map sends an unknown kid to the default: with the default
	 * being the signer, nginx serves the link, and so do we. */
	assert_valid(f, DJ_URL "&kid=99", NULL, BEFORE, f->legacy_kid);
	assert_valid(f, DJ_URL "&kid=01", NULL, BEFORE, f->legacy_kid);
	assert_valid(f, DJ_URL "&kid=", NULL, BEFORE, f->legacy_kid);
	assert_invalid(f, DJ_URI "?token=AAAAAAAAAAAAAAAAAAAAAA&expires=1599214310&kid=99", NULL,
	               "unknown kid");
}

static void test_verify_reads_query_like_nginx_arg(void **state)
{
	Fixture *f = *state = fixture_new("", false);

	/* Any order, unknown parameters ignored, names case-insensitive. */
	assert_valid(f, DJ_URI "?expires=1599214310&x=1&token=" DJ_TOKEN, NULL, BEFORE,
	             f->legacy_kid);
	assert_valid(f, DJ_URI "?TOKEN=" DJ_TOKEN "&Expires=1599214310", NULL, BEFORE,
	             f->legacy_kid);
	/* The first occurrence wins. */
	assert_valid(f, DJ_URL "&token=AAAAAAAAAAAAAAAAAAAAAA", NULL, BEFORE, f->legacy_kid);
	assert_invalid(f,
	               DJ_URI "?token=AAAAAAAAAAAAAAAAAAAAAA&token=" DJ_TOKEN "&expires=1599214310",
	               NULL, "bad token");
	/* A name only counts at the start or after '&': "xtoken=" and ";token="
	 * are other parameters. */
	assert_invalid(f, DJ_URI "?xtoken=" DJ_TOKEN "&expires=1599214310", NULL, "missing token");
	assert_invalid(f, DJ_URI "?a=1;token=" DJ_TOKEN "&expires=1599214310", NULL,
	               "missing token");
	/* Values are not percent-decoded: %2D is not '-'. */
	assert_invalid(f, DJ_URI "?token=GdxTxfNK92Grtg%2DhD7CH6g&expires=1599214310", NULL,
	               "bad token");
	/* A fragment never reaches nginx. */
	assert_valid(f, DJ_URL "#x&token=A", NULL, BEFORE, f->legacy_kid);
}

static void test_verify_decodes_token_like_nginx(void **state)
{
	Fixture *f = *state = fixture_new("", false);

	/* Padding is accepted, and the ignored low bits of the last digit
	 * ('g' and 'h' differ only there) do not matter. */
	assert_valid(f, DJ_URI "?token=" DJ_TOKEN "==&expires=1599214310", NULL, BEFORE,
	             f->legacy_kid);
	assert_valid(f, DJ_URI "?token=GdxTxfNK92Grtg-hD7CH6h&expires=1599214310", NULL, BEFORE,
	             f->legacy_kid);
	/* Standard base64's '+' and '/' are not base64url. */
	assert_invalid(f, DJ_URI "?token=GdxTxfNK92Grtg+hD7CH6g&expires=1599214310", NULL,
	               "bad token");
	/* Too long (> 24), 4n+1 digits, 17 bytes, a ',' (splits expires). */
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "AAAAAAA&expires=1599214310", NULL,
	               "bad token");
	assert_invalid(f, DJ_URI "?token=GdxTxfNK92Grtg-hD7CH6&expires=1599214310", NULL,
	               "bad token");
	assert_invalid(f, DJ_URI "?token=GdxTxfNK92Grtg-hD7CH6gA&expires=1599214310", NULL,
	               "bad token");
	assert_invalid(f, DJ_URI "?token=Gdx,TxfNK92Grtg-hD7CH6g&expires=1599214310", NULL,
	               "bad token");
}

static void test_verify_rejects_missing_and_bad_parameters(void **state)
{
	Fixture *f = *state = fixture_new("", false);

	assert_invalid(f, DJ_URI, NULL, "missing token");
	assert_invalid(f, DJ_URI "?expires=1599214310", NULL, "missing token");
	assert_invalid(f, DJ_URI "?token=&expires=1599214310", NULL, "missing token");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN, NULL, "missing expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=", NULL, "missing expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=0", NULL, "bad expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=-1599214310", NULL, "bad expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=1599214310x", NULL, "bad expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=01599214310", NULL, "bad expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=9223372036854775808", NULL,
	               "bad expires");
	assert_invalid(f, DJ_URI "?token=" DJ_TOKEN "&expires=1%2C2", NULL, "bad expires");
}

static void test_verify_public_path(void **state)
{
	Fixture *f = *state = fixture_new("[links]\nprivate_prefixes = private/\n", false);
	Verdict v;

	v = verify(f, "/media/public/x.css?token=junk", NULL, BEFORE);
	assert_int_equal(v.r, 0);
	assert_int_equal(v.verdict, LINK_PUBLIC);
	v = verify(f, "/elsewhere", NULL, BEFORE);
	assert_int_equal(v.verdict, LINK_PUBLIC);
}

static void test_verify_rejects_unparsable_url(void **state)
{
	Fixture *f = *state = fixture_new("", false);
	static const char *const bad[] = { "media/x?token=a", "/media/../../x?token=a",
		                           "/media/a%zz?token=a", "/media/a b", "" };

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		Verdict v = verify(f, bad[i], NULL, BEFORE);

		assert_int_equal(v.r, -EINVAL);
		assert_int_equal(v.code, PROTO_BAD_TARGET);
	}
}

/* nginx resolves "." and ".." in $uri before it matches a location and
 * hashes: a link written with them is served if the resolved path's token
 * matches (seen with nginx 1.22.1), so VERIFY must say valid, not refuse. */
static void test_verify_resolves_dot_segments_as_nginx(void **state)
{
	Fixture *f = *state = fixture_new("[links]\nprivate_prefixes = private/\n", false);
	static const char *const same[] = {
		"/media/private/x/../sample1.pdf",
		"/media/private/./sample1.pdf",
		"/media/public/../private/sample1.pdf",
		"/media/private/%2E%2E/private/sample1.pdf",
		"/other/../media//private/a/b/../../sample1.pdf",
	};
	Verdict v;

	for (size_t i = 0; i < ELEMENTSOF(same); i++) {
		_cleanup_free_ char *url = NULL;

		assert_true(asprintf(&url, "%s?token=" DJ_TOKEN "&expires=1599214310", same[i]) >
		            0);
		assert_valid(f, url, NULL, BEFORE, f->legacy_kid);
	}
	/* Resolved into another file: that file's token is needed. */
	assert_invalid(
	    f, "/media/private/sample1.pdf/../sample2.pdf?token=" DJ_TOKEN "&expires=1599214310",
	    NULL, "bad token");
	/* Resolved out of the private prefix: public, as nginx serves it. */
	v = verify(f, "/media/private/../public/x.css", NULL, BEFORE);
	assert_int_equal(v.r, 0);
	assert_int_equal(v.verdict, LINK_PUBLIC);
	/* Above the root: nginx answers 400, no verdict on the token. */
	v = verify(f, "/../media/private/sample1.pdf?token=" DJ_TOKEN "&expires=1599214310", NULL,
	           BEFORE);
	assert_int_equal(v.r, -EINVAL);
	assert_int_equal(v.code, PROTO_BAD_TARGET);
}

static void test_verify_with_bind_ip(void **state)
{
	Fixture *f = *state = fixture_new("[links]\nbind_ip = yes\n", false);
	Verdict v;

	assert_valid(f, DJ_URI "?token=" OPENSSL_IP "&expires=1599214310", "127.0.0.1", BEFORE,
	             f->legacy_kid);
	assert_invalid(f, DJ_URI "?token=" OPENSSL_IP "&expires=1599214310", "127.0.0.2",
	               "bad token");
	v = verify(f, DJ_URI "?token=" OPENSSL_IP "&expires=1599214310", NULL, BEFORE);
	assert_int_equal(v.r, -EINVAL);
	assert_int_equal(v.code, PROTO_BAD_IP);
}

/* [links] expires_granularity; times are arbitrary unix seconds, the window
 * 300 s (5m): 1700000100 = 5666667 * 300 is on the grid. */
static void test_expires_round_up_to_the_window(void **state)
{
	const int64_t g = 300, on = 1700000100, far = INT64_MAX;

	/* Off, or already on the grid: unchanged. */
	assert_int_equal(link_expires_round(on + 1, 0, far), on + 1);
	assert_int_equal(link_expires_round(on, g, far), on);
	/* Anywhere inside a window: its end, so every link signed in the
	 * window is the same. */
	assert_int_equal(link_expires_round(on + 1, g, far), on + g);
	assert_int_equal(link_expires_round(on + 299, g, far), on + g);
	/* A ttl shorter than the window still gets at least that lifetime
	 * and at most one window more. */
	assert_int_equal(link_expires_round(on + 10, g, far), on + g);
}

static void test_expires_round_never_passes_the_limit_nor_goes_down(void **state)
{
	const int64_t g = 300, on = 1700000100;

	/* The window's end is exactly the limit: allowed. */
	assert_int_equal(link_expires_round(on + 5, g, on + g), on + g);
	/* One second past the limit (max_link_ttl from now, the key's drop,
	 * the epoch deadline): the asked expires, unrounded; never the
	 * previous multiple, which would cut the lifetime asked for. */
	assert_int_equal(link_expires_round(on + 5, g, on + g - 1), on + 5);
	assert_int_equal(link_expires_round(on + 5, g, on + 5), on + 5);
	/* No overflow at the far end. */
	assert_int_equal(link_expires_round(INT64_MAX - 1, g, INT64_MAX), INT64_MAX - 1);
}

static int setup(void **state)
{
	return sodium_init() < 0 ? -1 : 0;
}

/* Directory grants. Known answers from openssl, the same pipeline:
 *   "1599214310grant:/media/private/videos/42/ secret_xyz"     -> GRANT_42
 *   "1599214310grant:/media/private/ secret_xyz"               -> GRANT_PRIVATE
 *   "1599214310grant:/media/private/v/127.0.0.1 secret_xyz"    -> GRANT_IP */
#define GRANT_42      "yH2ThMN_N3sa9oDHWXrlnQ"
#define GRANT_PRIVATE "1BWYsk6aQzXelEv9BxrDQA"
#define GRANT_IP      "7xchC8FZT08C3C0Rvn1g6g"

static int grant(Fixture *f, const char *target, GrantForm form, const char *ip, char *buf,
                 size_t size, ProtoError *ret_code, const char **ret_message)
{
	size_t len = SIZE_MAX;
	int r;

	r = link_grant_to(f->c, f->r, f->s, target, form, DJ_EXPIRES, ip, buf, size, &len, ret_code,
	                  ret_message);
	if (r == 0)
		assert_int_equal(len, strlen(buf));
	return r;
}

static void test_grant_path_form_matches_openssl(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");
	char buf[512];

	assert_int_equal(
	    grant(f, "/media/private/videos/42/", GRANT_PATH, NULL, buf, sizeof(buf), NULL, NULL),
	    0);
	assert_string_equal(buf, "/media/_grant/1/1599214310/" GRANT_42 "/3/private/videos/42/");
	/* The prefix itself is depth 1; the origin of a URL is kept. */
	assert_int_equal(grant(f, "https://cdn.example.com/media//private/", GRANT_PATH, NULL, buf,
	                       sizeof(buf), NULL, NULL),
	                 0);
	assert_string_equal(buf, "https://cdn.example.com/media/_grant/1/1599214310/" GRANT_PRIVATE
	                         "/1/private/");
	/* And VERIFY reads any file under it as nginx's location does. */
	assert_valid(f, "/media/_grant/1/1599214310/" GRANT_42 "/3/private/videos/42/v0/a.ts", NULL,
	             BEFORE, 1);
}

static void test_grant_cookie_form_matches_openssl(void **state)
{
	Fixture *f = *state =
	    fixture_django_active("[links]\nprivate_prefixes = private/\nbind_ip = yes\n"
	                          "base_url = https://files.example.com\n");
	char buf[512];

	assert_int_equal(
	    grant(f, "/media/private/v/", GRANT_COOKIE, "127.0.0.1", buf, sizeof(buf), NULL, NULL),
	    0);
	/* 1599214310 is Fri, 04 Sep 2020 10:11:50 UTC (date -u -d @1599214310). */
	assert_string_equal(buf, "securelink_grant=1.1599214310.2." GRANT_IP
	                         "; Path=/media/private/v/; Expires=Fri, 04 Sep 2020 10:11:50 GMT; "
	                         "HttpOnly; SameSite=Lax; Secure");
}

static void test_grant_refuses_files_deep_directories_and_the_grant_area(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");
	char deep[256] = "/media/private/", buf[512];
	const char *message = NULL;
	ProtoError code;

	assert_int_equal(
	    grant(f, "/media/private/a.ts", GRANT_PATH, NULL, buf, sizeof(buf), &code, &message),
	    -EINVAL);
	assert_int_equal(code, PROTO_BAD_TARGET);
	assert_non_null(strstr(message, "end it in '/'"));

	/* private/ and 15 more: 16 levels is the most; 17 is refused. */
	for (int i = 0; i < 15; i++)
		strcat(deep, "d/");
	assert_int_equal(grant(f, deep, GRANT_PATH, NULL, buf, sizeof(buf), NULL, NULL), 0);
	assert_non_null(strstr(buf, "/16/private/"));
	strcat(deep, "d/");
	assert_int_equal(grant(f, deep, GRANT_PATH, NULL, buf, sizeof(buf), &code, &message),
	                 -EINVAL);
	assert_int_equal(code, PROTO_BAD_TARGET);
	assert_non_null(strstr(message, "17 levels below media_url, grants reach 16"));

	assert_int_equal(
	    grant(f, "/media/_grant/1/", GRANT_COOKIE, NULL, buf, sizeof(buf), &code, &message),
	    -EINVAL);
	assert_int_equal(code, PROTO_BAD_TARGET);
	assert_int_equal(
	    grant(f, "/media/private/a%0Ab/", GRANT_PATH, NULL, buf, sizeof(buf), &code, &message),
	    -EINVAL);
	assert_non_null(strstr(message, "control bytes"));

	/* A public directory: its plain URL, no key needed. */
	assert_int_equal(grant(f, "/media/pub/", GRANT_COOKIE, NULL, buf, sizeof(buf), NULL, NULL),
	                 0);
	assert_string_equal(buf, "/media/pub/");
}

static void test_verify_grants_as_nginx_maps_cut_them(void **state)
{
	Fixture *f = *state = fixture_django_active("[links]\nprivate_prefixes = private/\n");
	const char *g = "/media/_grant/1/1599214310/" GRANT_42;
	char url[512];
	Verdict v;

	/* The sibling, a shallower depth, a depth with a leading zero, and a
	 * path shorter than its depth: never the granted directory. */
	snprintf(url, sizeof(url), "%s/3/private/videos/420/x.ts", g);
	assert_invalid(f, url, NULL, "bad token");
	snprintf(url, sizeof(url), "%s/2/private/videos/42/x.ts", g);
	assert_invalid(f, url, NULL, "bad token");
	snprintf(url, sizeof(url), "%s/03/private/videos/42/x.ts", g);
	assert_invalid(f, url, NULL, "bad grant depth");
	snprintf(url, sizeof(url), "%s/3/private/videos", g);
	assert_invalid(f, url, NULL, "bad grant depth");
	assert_invalid(f, "/media/_grant/1/1599214310/short/3/private/videos/42/x", NULL,
	               "not a grant's path");
	/* ".." resolved as in $uri before the cut. */
	snprintf(url, sizeof(url), "%s/3/private/videos/42/v0/../x.ts", g);
	assert_valid(f, url, NULL, BEFORE, 1);
	snprintf(url, sizeof(url), "%s/3/private/videos/42/../43/x.ts", g);
	assert_invalid(f, url, NULL, "bad token");

	/* The cookie form: the same token, the directory from the path. */
	v = (Verdict){ 0 };
	v.r = link_verify(f->c, f->r, f->s, "/media/private/videos/42/v0/a.ts", NULL,
	                  "1.1599214310.3." GRANT_42, BEFORE, &v.verdict, &v.kid, &v.expires,
	                  &v.reason, &v.code, NULL);
	assert_int_equal(v.r, 0);
	assert_int_equal(v.verdict, LINK_VALID);
	v.r = link_verify(f->c, f->r, f->s, "/media/private/videos/43/a.ts", NULL,
	                  "1.1599214310.3." GRANT_42, BEFORE, &v.verdict, &v.kid, &v.expires,
	                  &v.reason, &v.code, NULL);
	assert_int_equal(v.verdict, LINK_INVALID);
	/* A token parameter wins over the cookie, as in nginx's maps. */
	v.r = link_verify(f->c, f->r, f->s, "/media/private/videos/42/a.ts?token=x", NULL,
	                  "1.1599214310.3." GRANT_42, BEFORE, &v.verdict, &v.kid, &v.expires,
	                  &v.reason, &v.code, NULL);
	assert_int_equal(v.verdict, LINK_INVALID);
	/* A malformed cookie is no cookie. */
	v.r = link_verify(f->c, f->r, f->s, "/media/private/videos/42/a.ts", NULL,
	                  "1.1599214310.3." GRANT_42 "x", BEFORE, &v.verdict, &v.kid, &v.expires,
	                  &v.reason, &v.code, NULL);
	assert_int_equal(v.verdict, LINK_INVALID);
	assert_string_equal(v.reason, "missing token");
}

#define T(f) cmocka_unit_test_teardown(f, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_grant_path_form_matches_openssl),
		T(test_grant_cookie_form_matches_openssl),
		T(test_grant_refuses_files_deep_directories_and_the_grant_area),
		T(test_verify_grants_as_nginx_maps_cut_them),
		T(test_sign_matches_django_vector),
		T(test_sign_hashes_decoded_path_and_answers_canonical_encoding),
		T(test_sign_target_longer_than_a_line),
		T(test_sign_refuses_links_longer_than_max_url_length),
		T(test_sign_max_url_length_leaves_out_the_origin),
		T(test_sign_keeps_origin_and_uses_base_url),
		T(test_sign_public_path_has_no_parameters),
		T(test_sign_uses_configured_parameter_names),
		T(test_sign_with_bind_ip_hashes_the_address),
		T(test_sign_without_bind_ip_refuses_an_address),
		T(test_sign_rejects_bad_targets_with_urlpath_reason),
		T(test_sign_without_active_key_is_unavailable),
		T(test_sign_public_path_needs_no_key),
		T(test_sign_with_bind_ip_requires_ip),
		T(test_sign_rejects_non_positive_expires),
		T(test_verify_accepts_django_link_without_kid),
		T(test_verify_reports_expired_as_nginx_does),
		T(test_verify_round_trips_link_sign),
		T(test_verify_rejects_tampering),
		T(test_verify_unknown_kid_falls_back_to_default_key),
		T(test_verify_reads_query_like_nginx_arg),
		T(test_verify_decodes_token_like_nginx),
		T(test_verify_rejects_missing_and_bad_parameters),
		T(test_verify_public_path),
		T(test_verify_rejects_unparsable_url),
		T(test_verify_resolves_dot_segments_as_nginx),
		T(test_verify_with_bind_ip),
		T(test_expires_round_up_to_the_window),
		T(test_expires_round_never_passes_the_limit_nor_goes_down),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
