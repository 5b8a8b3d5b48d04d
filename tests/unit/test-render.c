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
#include "nginxconf.h"
#include "render.h"
#include "util.h"

#define NOW    ((usec_t)1700000000 * USEC_PER_SEC)
#define TTL    (24 * USEC_PER_HOUR)
#define SKEW   (30 * USEC_PER_SEC)
#define LEGACY "secret_xyz"

/* A ring as it looks mid-life: key 1 retired, key 2 active, key 3 published
 * (a rotation waiting for nginx) when pending, a legacy key last when legacy. */
static KeyRing *ring_new(bool pending, bool legacy)
{
	KeyRing *r = keyring_new();
	uint32_t kid;

	assert_non_null(r);
	assert_int_equal(keyring_add_random(r, NOW, &kid), 0);
	assert_int_equal(keyring_activate(r, kid, NOW, TTL, SKEW, false), 0);
	assert_int_equal(keyring_add_random(r, NOW + 1, &kid), 0);
	assert_int_equal(keyring_activate(r, kid, NOW + 1, TTL, SKEW, false), 0);
	if (pending)
		assert_int_equal(keyring_add_random(r, NOW + 2, &kid), 0);
	if (legacy)
		assert_int_equal(keyring_add_legacy(r, LEGACY, NOW + 3, TTL, SKEW, &kid), 0);
	return r;
}

/* The value of `default "..."` in a rendered keys file, copied out. */
static void map_default(const char *text, char *buf, size_t size)
{
	const char *p = strstr(text, "\tdefault \""), *e;

	assert_non_null(p);
	p += strlen("\tdefault \"");
	e = strchr(p, '"');
	assert_non_null(e);
	assert_true((size_t)(e - p) < size);
	memcpy(buf, p, (size_t)(e - p));
	buf[e - p] = '\0';
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_keys_file_default_is_active_key(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(false, false);
	char *text = NULL, def[KEY_SECRET_MAX + 1];
	size_t size = 0;

	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	assert_int_equal(strlen(text), size);
	map_default(text, def, sizeof(def));
	assert_true(strlen(def) > 0);
	assert_non_null(keyring_active(r));
	assert_string_equal(def, keyring_active(r)->secret);
	/* Not the retired key 1. */
	assert_string_not_equal(def, r->keys[0].secret);
	keyring_text_free(text, size);
}

static void test_keys_file_default_follows_keyring_default_during_rotation(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, false);
	char *text = NULL, def[KEY_SECRET_MAX + 1];
	size_t size = 0;

	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	map_default(text, def, sizeof(def));
	/* Whichever real key the ring names for links without a kid (a
	 * pending key, so that activating it leaves the file unchanged). */
	assert_non_null(keyring_default(r));
	assert_string_equal(def, keyring_default(r)->secret);
	assert_true(strlen(def) > 0);
	keyring_text_free(text, size);
}

static void test_keys_file_default_is_legacy_key_while_it_lives(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, true);
	char *text = NULL, def[KEY_SECRET_MAX + 1];
	size_t size = 0;

	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	map_default(text, def, sizeof(def));
	assert_string_equal(def, LEGACY);
	keyring_text_free(text, size);
}

/* The part of a keys file before its maps without secrets (which must end
 * it, as render_grant_maps() renders them), NUL-terminated in place. */
static char *keys_part(char *text, size_t size, const Config *c)
{
	_cleanup_free_ char *maps = NULL;
	size_t maps_size = 0;

	assert_int_equal(render_grant_maps(c, c, &maps, &maps_size), 0);
	assert_true(size > maps_size);
	assert_memory_equal(text + size - maps_size, maps, maps_size);
	text[size - maps_size] = '\0';
	return text;
}

static void test_keys_file_lists_every_key(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, true);
	char *text = NULL, line[KEY_SECRET_MAX + 32];
	size_t size = 0;

	assert_int_equal(r->n_keys, 4);
	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	keys_part(text, size, c);
	/* Once in the file links' map, once in the grants'. */
	for (size_t i = 0; i < r->n_keys; i++) {
		snprintf(line, sizeof(line), "\t\"%" PRIu32 "\" \"%s\";\n", r->keys[i].kid,
		         r->keys[i].secret);
		assert_int_equal(count(text, line), 2);
	}
	/* One map entry per key plus the default, nothing else quoted. */
	assert_int_equal(count(text, "\";\n"), 2 * (r->n_keys + 1));
	keyring_text_free(text, size);
}

static void test_keys_file_structure(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nkey_param = key_id\n");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, false);
	char *text = NULL;
	size_t size = 0;
	const char *grant;

	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	keys_part(text, size, c);
	assert_true(strncmp(text, "# written by securelinkd; do not edit\n", 38) == 0);
	assert_non_null(strstr(text, "\nmap $arg_key_id $securelink_secret {\n"));
	/* Then the same entries for directory grants, and nothing else. */
	grant = strstr(text, "}\nmap $securelink_gk $securelink_grant_secret {\n");
	assert_non_null(grant);
	assert_int_equal(strlen(grant + 2) + (size_t)(grant + 2 - text), strlen(text));
	assert_string_equal(strrchr(text, '}'), "}\n");
	assert_int_equal(count(text, "map "), 2);
	assert_int_equal(count(text, "default"), 2);
	/* nginx-safe: no escape, no variable other than the two in each map
	 * line, every secret quoted. */
	assert_null(strchr(text, '\\'));
	assert_int_equal(count(text, "$"), 4);
	assert_int_equal(count(text, "\"") % 2, 0);
	keyring_text_free(text, size);
}

static void test_keys_file_refuses_empty_ring(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = keyring_new();
	char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_keys_file(r, c, &text, &size), -ENOKEY);
	assert_null(text);
}

/* Puts a secret the keyring itself would refuse into key i, the way a bug
 * or a hand-edited ring could. */
static void plant_secret(KeyRing *r, size_t i, const char *s)
{
	char *p = sodium_malloc(strlen(s) + 1);

	assert_non_null(p);
	memcpy(p, s, strlen(s) + 1);
	sodium_free(r->keys[i].secret);
	r->keys[i].secret = p;
}

static void test_keys_file_refuses_unsafe_or_empty_secret(void **state)
{
	static const char *const bad[] = { "",
		                           "a\"b",
		                           "a\\b",
		                           "a$b",
		                           "a\nb",
		                           "a\x7f"
		                           "b" };

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_(config_freep) Config *c = config_or_fail("");
		_cleanup_(keyring_freep) KeyRing *r = ring_new(true, false);
		char *text = NULL;
		size_t size = 0;

		/* Key 1 is retired, not the default: still refused. */
		plant_secret(r, 0, bad[i]);
		assert_int_equal(render_keys_file(r, c, &text, &size), -EINVAL);
		assert_null(text);
	}
}

static void test_keys_file_accepts_utf8_and_quotes_free_legacy_secret(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, false);
	char *text = NULL;
	size_t size = 0;

	plant_secret(r, 0, "x'{};# caf\xc3\xa9");
	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	assert_non_null(strstr(text, "\"1\" \"x'{};# caf\xc3\xa9\";\n"));
	keyring_text_free(text, size);
}

static int setup(void **state)
{
	return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_file_default_is_active_key),
		cmocka_unit_test(test_keys_file_default_follows_keyring_default_during_rotation),
		cmocka_unit_test(test_keys_file_default_is_legacy_key_while_it_lives),
		cmocka_unit_test(test_keys_file_lists_every_key),
		cmocka_unit_test(test_keys_file_structure),
		cmocka_unit_test(test_keys_file_refuses_empty_ring),
		cmocka_unit_test(test_keys_file_refuses_unsafe_or_empty_secret),
		cmocka_unit_test(test_keys_file_accepts_utf8_and_quotes_free_legacy_secret),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
