/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "keyring.h"
#include "status.h"

#define T0 (1700000000ULL * USEC_PER_SEC)

static KeyRing *ring_with_two_keys(const Config *c)
{
	KeyRing *r = keyring_new();
	uint32_t a, b;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, T0, &a), 0);
	assert_int_equal(keyring_activate(r, a, T0, c->max_link_ttl, c->clock_skew, false), 0);
	assert_int_equal(keyring_add_random(r, T0 + USEC_PER_HOUR, &b), 0);
	assert_int_equal(
	    keyring_activate(r, b, T0 + USEC_PER_HOUR, c->max_link_ttl, c->clock_skew, false), 0);
	return r;
}

static void test_json_has_documented_fields_and_no_secret(void **state)
{
	_cleanup_(config_freep) Config *c = config_new();
	_cleanup_(keyring_freep) KeyRing *r = ring_with_two_keys(c);
	_cleanup_free_ char *json = NULL;
	StatusInfo info = {
		.next_rotation = T0 + USEC_PER_HOUR + c->rotate_every,
		.last_reload = T0 + USEC_PER_HOUR,
		.nginx_ok = true,
		.nginx_confirmation = "test-only",
		.n_signed = 7,
		.n_errors = 2,
		.n_rotations = 1,
		.n_reload_failures = 3,
		.n_probe_failures = 4,
		.n_errors_code = { [PROTO_BAD_TARGET] = 2 },
	};
	char expect[128];

	assert_int_equal(status_format_json(r, c, &info, &json), 0);
	assert_null(strchr(json, '\n'));
	assert_non_null(strstr(json, "\"active_kid\":2,"));
	snprintf(expect, sizeof(expect), "\"next_rotation\":%llu,",
	         (unsigned long long)((T0 + USEC_PER_HOUR + c->rotate_every) / USEC_PER_SEC));
	assert_non_null(strstr(json, expect));
	assert_non_null(strstr(json, "{\"kid\":1,\"state\":\"retired\","));
	assert_non_null(strstr(json, "{\"kid\":2,\"state\":\"active\","));
	assert_non_null(strstr(json, "\"published\":1700000000,"));
	assert_non_null(strstr(
	    json,
	    "\"nginx\":{\"last_reload\":1700003600,\"ok\":true,\"pending\":false,\"error\":null,"
	    "\"confirmation\":\"test-only\",\"enforcing\":null,\"enforcing_reason\":null,"
	    "\"probe_url\":null,\"last_probe\":null}"));
	assert_non_null(strstr(json,
	                       "\"counters\":{\"signed\":7,\"errors\":2,\"rotations\":1,"
	                       "\"reload_failures\":3,\"probe_failures\":4,\"errors_by_code\":{"
	                       "\"bad-request\":0,\"unknown-verb\":0,\"line-too-long\":0,"
	                       "\"bad-target\":2,\"bad-ttl\":0,\"ttl-too-long\":0,\"bad-ip\":0,"
	                       "\"forbidden\":0,\"unavailable\":0,\"internal\":0}}}"));
	for (size_t i = 0; i < r->n_keys; i++)
		assert_null(strstr(json, r->keys[i].secret));
}

static void test_json_escapes_nginx_error(void **state)
{
	_cleanup_(config_freep) Config *c = config_new();
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	_cleanup_free_ char *json = NULL;
	StatusInfo info = {
		.next_rotation = USEC_INFINITY,
		.nginx_ok = false,
		.nginx_error = "nginx test failed: unexpected \"}\" in\n/etc/x\\y",
	};

	assert_int_equal(status_format_json(r, c, &info, &json), 0);
	assert_non_null(strstr(json, "\"active_kid\":null,\"next_rotation\":null,"));
	assert_non_null(
	    strstr(json, "\"ok\":false,\"pending\":false,\"error\":\"nginx test failed: unexpected "
	                 "\\\"}\\\" in\\u000a/etc/x\\\\y\""));
}

static void test_status_line_names_kid_and_error(void **state)
{
	_cleanup_(config_freep) Config *c = config_new();
	_cleanup_(keyring_freep) KeyRing *r = ring_with_two_keys(c);
	_cleanup_free_ char *line = NULL;
	StatusInfo info = {
		.next_rotation = T0,
		.nginx_ok = false,
		.nginx_error = "nginx test failed",
	};

	assert_int_equal(status_format_line(r, &info, &line), 0);
	assert_string_equal(
	    line, "active key 2, next rotation 2023-11-14 22:13:20 UTC; nginx: nginx test failed");
}

static void test_fail_open_comes_first_in_json_and_line(void **state)
{
	_cleanup_(config_freep) Config *c = config_new();
	_cleanup_(keyring_freep) KeyRing *r = ring_with_two_keys(c);
	_cleanup_free_ char *json = NULL, *line = NULL;
	StatusInfo info = {
		.next_rotation = T0,
		.nginx_ok = true,
		.enforcing = -1,
		.probe_reason = "a private path answered HTTP 404 without a token",
		.probe_url = "https://f.example/media/private/.securelink-probe-00",
		.last_probe = T0,
	};

	assert_int_equal(status_format_json(r, c, &info, &json), 0);
	assert_non_null(strstr(json,
	                       "\"enforcing\":false,\"enforcing_reason\":\"a private path "
	                       "answered HTTP 404 without a token\",\"probe_url\":\"https:"
	                       "//f.example/media/private/.securelink-probe-00\",\"last_probe\":"
	                       "1700000000}"));
	assert_int_equal(status_format_line(r, &info, &line), 0);
	assert_string_equal(line,
	                    "FAIL-OPEN: nginx serves private files without a token: a private "
	                    "path answered HTTP 404 without a token "
	                    "(https://f.example/media/private/.securelink-probe-00)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_has_documented_fields_and_no_secret),
		cmocka_unit_test(test_json_escapes_nginx_error),
		cmocka_unit_test(test_status_line_names_kid_and_error),
		cmocka_unit_test(test_fail_open_comes_first_in_json_and_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
