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
#include "keyring.h"
#include "render.h"
#include "util.h"

#define NOW    ((usec_t)1700000000 * USEC_PER_SEC)
#define TTL    (24 * USEC_PER_HOUR)
#define SKEW   (30 * USEC_PER_SEC)
#define LEGACY "secret_xyz"

static Config *load(const char *text)
{
	Config *c = NULL;
	char *error = NULL;
	int r;

	r = config_load_string(text, "test.conf", &c, &error);
	if (r < 0)
		fail_msg("config: %s", error ?: "?");
	free(error);
	return c;
}

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
	_cleanup_(config_freep) Config *c = load("");
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
	_cleanup_(config_freep) Config *c = load("");
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
	_cleanup_(config_freep) Config *c = load("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, true);
	char *text = NULL, def[KEY_SECRET_MAX + 1];
	size_t size = 0;

	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	map_default(text, def, sizeof(def));
	assert_string_equal(def, LEGACY);
	keyring_text_free(text, size);
}

static void test_keys_file_lists_every_key(void **state)
{
	_cleanup_(config_freep) Config *c = load("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, true);
	char *text = NULL, line[KEY_SECRET_MAX + 32];
	size_t size = 0;

	assert_int_equal(r->n_keys, 4);
	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	for (size_t i = 0; i < r->n_keys; i++) {
		snprintf(line, sizeof(line), "\t\"%" PRIu32 "\" \"%s\";\n", r->keys[i].kid,
		         r->keys[i].secret);
		assert_non_null(strstr(text, line));
	}
	/* One map entry per key plus the default, nothing else quoted. */
	assert_int_equal(count(text, "\";\n"), r->n_keys + 1);
	keyring_text_free(text, size);
}

static void test_keys_file_structure(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\nkey_param = key_id\n");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, false);
	char *text = NULL;
	size_t size = 0;
	const char *close;

	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	assert_true(strncmp(text, "# written by securelinkd; do not edit\n", 38) == 0);
	assert_non_null(strstr(text, "\nmap $arg_key_id $securelink_secret {\n"));
	close = strrchr(text, '}');
	assert_non_null(close);
	assert_string_equal(close, "}\n");
	/* Exactly one map, one default. */
	assert_int_equal(count(text, "map "), 1);
	assert_int_equal(count(text, "default"), 1);
	/* nginx-safe: no escape, no variable other than the two in the map
	 * line, every secret quoted. */
	assert_null(strchr(text, '\\'));
	assert_int_equal(count(text, "$"), 2);
	assert_int_equal(count(text, "\"") % 2, 0);
	keyring_text_free(text, size);
}

static void test_keys_file_refuses_empty_ring(void **state)
{
	_cleanup_(config_freep) Config *c = load("");
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
		_cleanup_(config_freep) Config *c = load("");
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
	_cleanup_(config_freep) Config *c = load("");
	_cleanup_(keyring_freep) KeyRing *r = ring_new(true, false);
	char *text = NULL;
	size_t size = 0;

	plant_secret(r, 0, "x'{};# caf\xc3\xa9");
	assert_int_equal(render_keys_file(r, c, &text, &size), 0);
	assert_non_null(strstr(text, "\"1\" \"x'{};# caf\xc3\xa9\";\n"));
	keyring_text_free(text, size);
}

static const char secured_private[] =
    "\nlocation ^~ /media/private/ {\n"
    "\tsecure_link $arg_token,$arg_expires;\n"
    "\tsecure_link_md5 \"$secure_link_expires$uri $securelink_secret\";\n"
    "\tif ($secure_link = \"\")  { return 403; }\n"
    "\tif ($secure_link = \"0\") { return 410; }\n"
    "\talias /srv/media/private/;\n"
    "}\n";

static void test_locations_private_prefixes_only(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\nprivate_prefixes = private/ paid/\n"
	                                         "[nginx]\nmedia_root = /srv/media\n");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_int_equal(strlen(text), size);
	assert_true(strncmp(text, "# written by securelinkd; do not edit\n", 38) == 0);
	assert_non_null(strstr(text, secured_private));
	assert_non_null(strstr(text, "\nlocation ^~ /media/paid/ {\n"));
	assert_non_null(strstr(text, "\talias /srv/media/paid/;\n"));
	/* Only the prefixes: the rest of /media/ is not ours. */
	assert_int_equal(count(text, "\nlocation "), 2);
	assert_int_equal(count(text, "secure_link $arg_token"), 2);
	assert_null(strstr(text, "location ^~ /media/ "));
	/* No secret, not even the map's content. */
	assert_null(strstr(text, "map "));
}

static void test_locations_public_prefixes_only(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\npublic_prefixes = public/ img/\n"
	                                         "[nginx]\nmedia_root = /srv/media/\n");
	_cleanup_free_ char *text = NULL;
	const char *pub;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	/* media_url itself is secured ... */
	assert_non_null(strstr(text, "\nlocation ^~ /media/ {\n\tsecure_link $arg_token,"));
	assert_non_null(strstr(text, "\talias /srv/media/;\n"));
	/* ... and each public prefix plain: no secure_link inside. */
	pub = strstr(text, "\nlocation /media/public/ {\n\talias /srv/media/public/;\n}\n");
	assert_non_null(pub);
	assert_non_null(strstr(text, "\nlocation /media/img/ {\n\talias /srv/media/img/;\n}\n"));
	assert_int_equal(count(text, "\nlocation "), 3);
	assert_int_equal(count(text, "secure_link $arg_token"), 1);
}

static void test_locations_no_prefixes_secure_all_of_media_url(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\nmedia_url = /files/\n"
	                                         "[nginx]\nmedia_root = /srv/files/\n");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_non_null(
	    strstr(text, "\nlocation ^~ /files/ {\n\tsecure_link $arg_token,$arg_expires;\n"));
	assert_non_null(strstr(text, "\talias /srv/files/;\n}\n"));
	assert_int_equal(count(text, "\nlocation "), 1);
}

static void test_locations_bind_ip_hashes_remote_addr(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\nbind_ip = yes\n");
	_cleanup_(config_freep) Config *plain = load("");
	_cleanup_free_ char *text = NULL, *text_plain = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_non_null(strstr(
	    text,
	    "\tsecure_link_md5 \"$secure_link_expires$uri$remote_addr $securelink_secret\";\n"));
	assert_int_equal(render_locations_file(plain, &text_plain, &size), 0);
	assert_null(strstr(text_plain, "$remote_addr"));
}

static void test_locations_use_configured_parameter_names(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\ntoken_param = t\nexpires_param = e\n");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_non_null(strstr(text, "\tsecure_link $arg_t,$arg_e;\n"));
}

/* Replaces a string field of a loaded config, as a caller that bypassed the
 * parser could. */
static void set_field(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
	assert_non_null(*field);
}

static void test_locations_refuse_paths_that_break_nginx_syntax(void **state)
{
	static const char *const bad_roots[] = {
		"/srv/my media/", "/srv/a;b/", "/srv/$x/",   "/srv/a{b/",
		"/srv/a\"b/",     "/srv/a#b/", "srv/media/", "/srv/media",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad_roots); i++) {
		_cleanup_(config_freep) Config *c = load("");
		_cleanup_free_ char *text = NULL;
		size_t size = 0;

		set_field(&c->media_root, bad_roots[i]);
		assert_int_equal(render_locations_file(c, &text, &size), -EINVAL);
		assert_null(text);
	}
}

static void test_locations_refuse_unsafe_prefix_and_param(void **state)
{
	_cleanup_(config_freep) Config *c = load("[links]\nprivate_prefixes = private/\n");
	_cleanup_(config_freep) Config *d = load("");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	set_field(&c->private_prefixes[0], "pri vate/");
	assert_int_equal(render_locations_file(c, &text, &size), -EINVAL);
	set_field(&c->private_prefixes[0], "private");
	assert_int_equal(render_locations_file(c, &text, &size), -EINVAL);
	set_field(&d->token_param, "to-ken");
	assert_int_equal(render_locations_file(d, &text, &size), -EINVAL);
	assert_null(text);
}

static void test_include_lines_name_both_blocks(void **state)
{
	_cleanup_(config_freep) Config *c = load("[nginx]\nkeys_file = /etc/nginx/sl/keys.conf\n"
	                                         "locations_file = /etc/nginx/sl/locations.conf\n");
	_cleanup_free_ char *text = NULL;
	const char *keys, *locs, *http, *server;

	assert_int_equal(render_include_lines(c, &text), 0);
	keys = strstr(text, "\ninclude /etc/nginx/sl/keys.conf;\n");
	locs = strstr(text, "\ninclude /etc/nginx/sl/locations.conf;\n");
	http = strstr(text, "http {}");
	server = strstr(text, "server {}");
	assert_non_null(keys);
	assert_non_null(locs);
	assert_non_null(http);
	assert_non_null(server);
	/* Each comment comes right before its include. */
	assert_true(text[0] == '#' && http < keys && keys < server && server < locs);
	assert_int_equal(count(text, "include "), 2);
}

static void test_include_lines_refuse_unsafe_path(void **state)
{
	_cleanup_(config_freep) Config *c = load("");
	_cleanup_free_ char *text = NULL;

	set_field(&c->keys_file, "/etc/nginx/a b.conf");
	assert_int_equal(render_include_lines(c, &text), -EINVAL);
	assert_null(text);
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
		cmocka_unit_test(test_locations_private_prefixes_only),
		cmocka_unit_test(test_locations_public_prefixes_only),
		cmocka_unit_test(test_locations_no_prefixes_secure_all_of_media_url),
		cmocka_unit_test(test_locations_bind_ip_hashes_remote_addr),
		cmocka_unit_test(test_locations_use_configured_parameter_names),
		cmocka_unit_test(test_locations_refuse_paths_that_break_nginx_syntax),
		cmocka_unit_test(test_locations_refuse_unsafe_prefix_and_param),
		cmocka_unit_test(test_include_lines_name_both_blocks),
		cmocka_unit_test(test_include_lines_refuse_unsafe_path),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
