/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>

#include "keyring.h"
#include "probe-plan.h"
#include "unit-config.h"

#define T0 (1700000000ULL * USEC_PER_SEC)

/* Key 1 active, key 2 published (a rotation in progress). */
static KeyRing *ring_with_pending_key(const Config *c)
{
	KeyRing *r = keyring_new();
	uint32_t a, b;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, T0, &a), 0);
	assert_int_equal(keyring_activate(r, a, T0, c->max_link_ttl, c->clock_skew, false), 0);
	assert_int_equal(keyring_add_random(r, T0 + USEC_PER_HOUR, &b), 0);
	assert_int_equal(b, 2);
	return r;
}

static size_t count_kind(const ProbePlan *p, ProbeKind k)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n_requests; i++)
		n += p->requests[i].kind == k;
	return n;
}

/* The "//" requests whose URL begins with lead. */
static size_t count_doubled(const ProbePlan *p, const char *lead)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n_requests; i++)
		n += p->requests[i].kind == PROBE_UNSIGNED_DOUBLED &&
		     strncmp(p->requests[i].url, lead, strlen(lead)) == 0;
	return n;
}

/* Whether the path of url (after scheme://host) holds "//". */
static bool path_has_doubled_slash(const char *url)
{
	const char *host = strstr(url, "://");
	const char *path = host ? strchr(host + 3, '/') : NULL;

	return path && strstr(path, "//");
}

/* nginx's secure_link_md5 "$secure_link_expires$uri $secret", computed by
 * OpenSSL's EVP here, not by our signer. */
static void expected_token(const char *expires, const char *uri, const char *secret, char *out,
                           size_t size)
{
	_cleanup_free_ char *input = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	assert_true(asprintf(&input, "%s%s %s", expires, uri, secret) > 0);
	assert_int_equal(EVP_Digest(input, strlen(input), md, &n, EVP_md5(), NULL), 1);
	sodium_bin2base64(out, size, md, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void test_plan_probes_each_private_prefix_unsigned_and_signed_with_newest_key(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nprivate_prefixes = a/ b/\n");
	_cleanup_(keyring_freep) KeyRing *r = ring_with_pending_key(c);
	_cleanup_(signer_freep) Signer *s = NULL;
	_cleanup_(probe_plan_done) ProbePlan p = {};

	assert_int_equal(signer_new(&s), 0);
	assert_int_equal(
	    probe_plan_build(c, c, r, s, "https://f.example", "127.0.0.1", 1700000000, &p), 0);
	assert_int_equal(p.kid, 2);
	/* Each prefix unsigned as written and with "//" after media_url (a
	 * server with merge_slashes off keeps it). */
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED), 2);
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED_DOUBLED), 2);
	assert_int_equal(count_doubled(&p, "https://f.example/media//a/.securelink-probe-"), 1);
	assert_int_equal(count_doubled(&p, "https://f.example/media//b/.securelink-probe-"), 1);
	assert_int_equal(count_kind(&p, PROBE_SIGNED), 2);
	assert_int_equal(count_kind(&p, PROBE_PUBLIC), 1);
	for (size_t i = 0; i < p.n_requests; i++) {
		const ProbeRequest *q = p.requests + i;
		const char *u = q->url;

		assert_true(strncmp(u, "https://f.example/media/", 24) == 0);
		/* The kind says which spelling it is (the daemon's FAIL-OPEN
		 * reason names merge_slashes by it). */
		assert_true((q->kind == PROBE_UNSIGNED_DOUBLED) == path_has_doubled_slash(u));
		assert_non_null(strstr(u, "/.securelink-probe-"));
		if (q->kind == PROBE_SIGNED) {
			char path[256], token[64], want[128];
			const char *qm = strchr(u, '?');

			assert_non_null(qm);
			assert_int_equal(q->kid, 2);
			snprintf(path, sizeof(path), "%.*s", (int)(qm - u - 17), u + 17);
			expected_token("1700000060", path, keyring_find(r, 2)->secret, token,
			               sizeof(token));
			snprintf(want, sizeof(want), "?token=%s&expires=1700000060&kid=2", token);
			assert_string_equal(qm, want);
		} else
			assert_null(strchr(u, '?'));
		if (q->kind == PROBE_PUBLIC)
			assert_null(strstr(u, "/media/a/") ?: strstr(u, "/media/b/"));
	}
}

static void test_plan_skips_prefixes_not_private_in_both_formats(void **state)
{
	/* While private_prefixes grows from a/ to a/ b/, b/ is served plainly
	 * until nginx checks the new format: no probe may call it fail-open. */
	_cleanup_(config_freep) Config *old = config_or_fail("[links]\nprivate_prefixes = a/\n");
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nprivate_prefixes = a/ b/\n");
	_cleanup_(keyring_freep) KeyRing *r = ring_with_pending_key(c);
	_cleanup_(signer_freep) Signer *s = NULL;
	_cleanup_(probe_plan_done) ProbePlan p = {};

	assert_int_equal(signer_new(&s), 0);
	assert_int_equal(probe_plan_build(old, c, r, s, "http://127.0.0.1", "127.0.0.1", 1, &p), 0);
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED), 1);
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED_DOUBLED), 1);
	for (size_t i = 0; i < p.n_requests; i++)
		assert_null(strstr(p.requests[i].url, "/media/b/"));
}

static void test_plan_without_prefixes_probes_media_url_itself(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = ring_with_pending_key(c);
	_cleanup_(signer_freep) Signer *s = NULL;
	_cleanup_(probe_plan_done) ProbePlan p = {};

	assert_int_equal(signer_new(&s), 0);
	assert_int_equal(probe_plan_build(c, c, r, s, "http://127.0.0.1", "127.0.0.1", 1, &p), 0);
	/* All of media_url is private: "/media//x" is still under its
	 * location, no doubled spelling to ask for. */
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED), 1);
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED_DOUBLED), 0);
	assert_int_equal(count_kind(&p, PROBE_PUBLIC), 0);
	assert_true(strncmp(p.requests[0].url, "http://127.0.0.1/media/.securelink-probe-", 41) ==
	            0);
}

static void test_plan_doubles_each_slash_inside_a_deeper_prefix(void **state)
{
	/* "/media/a//b/x" misses the private location of a/b/ as
	 * "/media//a/b/x" does: a site's location /media/a/ would take it. */
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nprivate_prefixes = a/b/\n");
	_cleanup_(keyring_freep) KeyRing *r = ring_with_pending_key(c);
	_cleanup_(signer_freep) Signer *s = NULL;
	_cleanup_(probe_plan_done) ProbePlan p = {};

	assert_int_equal(signer_new(&s), 0);
	assert_int_equal(probe_plan_build(c, c, r, s, "http://h", "127.0.0.1", 1, &p), 0);
	assert_int_equal(count_kind(&p, PROBE_UNSIGNED_DOUBLED), 2);
	assert_int_equal(count_doubled(&p, "http://h/media//a/b/.securelink-probe-"), 1);
	assert_int_equal(count_doubled(&p, "http://h/media/a//b/.securelink-probe-"), 1);
}

static void test_plan_needs_a_key(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	_cleanup_(signer_freep) Signer *s = NULL;
	ProbePlan p = {};

	assert_int_equal(signer_new(&s), 0);
	assert_int_equal(probe_plan_build(c, c, r, s, "http://127.0.0.1", "127.0.0.1", 1, &p),
	                 -ENOKEY);
}

static void test_judge_follows_nginx_secure_link_answers(void **state)
{
	assert_int_equal(probe_judge(PROBE_UNSIGNED, 403), PROBE_PASS);
	assert_int_equal(probe_judge(PROBE_UNSIGNED, 404), PROBE_FAIL_OPEN);
	assert_int_equal(probe_judge(PROBE_UNSIGNED, 200), PROBE_FAIL_OPEN);
	assert_int_equal(probe_judge(PROBE_UNSIGNED, 301), PROBE_FAIL_OPEN);
	assert_int_equal(probe_judge(PROBE_UNSIGNED, 0), PROBE_UNREACHABLE);
	assert_int_equal(probe_judge(PROBE_UNSIGNED_DOUBLED, 403), PROBE_PASS);
	assert_int_equal(probe_judge(PROBE_UNSIGNED_DOUBLED, 200), PROBE_FAIL_OPEN);
	assert_int_equal(probe_judge(PROBE_UNSIGNED_DOUBLED, 404), PROBE_FAIL_OPEN);
	assert_int_equal(probe_judge(PROBE_SIGNED, 404), PROBE_PASS);
	assert_int_equal(probe_judge(PROBE_SIGNED, 403), PROBE_KEY_REFUSED);
	assert_int_equal(probe_judge(PROBE_SIGNED, 410), PROBE_KEY_REFUSED);
	assert_int_equal(probe_judge(PROBE_PUBLIC, 404), PROBE_PASS);
	assert_int_equal(probe_judge(PROBE_PUBLIC, 403), PROBE_PUBLIC_REFUSED);
	assert_string_equal(probe_verdict_to_string(PROBE_FAIL_OPEN), "fail-open");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_plan_probes_each_private_prefix_unsigned_and_signed_with_newest_key),
		cmocka_unit_test(test_plan_skips_prefixes_not_private_in_both_formats),
		cmocka_unit_test(test_plan_without_prefixes_probes_media_url_itself),
		cmocka_unit_test(test_plan_doubles_each_slash_inside_a_deeper_prefix),
		cmocka_unit_test(test_plan_needs_a_key),
		cmocka_unit_test(test_judge_follows_nginx_secure_link_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
