/* SPDX-License-Identifier: MIT */
/* common/nginxconf.c: the secret-free nginx locations file and the include
 * lines, which securelinkd writes and securelinkctl nginx-config prints. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "unit-config.h"
#include "nginxconf.h"
#include "util.h"

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static const char secured_private[] = "\nlocation ^~ /media/private/ {\n"
                                      "\tsecure_link $securelink_link_pair;\n"
                                      "\tsecure_link_md5 $securelink_link_md5;\n"
                                      "\tif ($secure_link = \"\")  { return 403; }\n"
                                      "\tif ($secure_link = \"0\") { return 410; }\n"
                                      "\talias /srv/media/private/;\n"
                                      "}\n";

static void test_locations_private_prefixes_only(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\nprivate_prefixes = private/ paid/\n"
	                   "[nginx]\nmedia_root = /srv/media\n");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_int_equal(strlen(text), size);
	assert_true(strncmp(text, "# written by securelinkd; do not edit\n", 38) == 0);
	assert_non_null(strstr(text, secured_private));
	assert_non_null(strstr(text, "\nlocation ^~ /media/paid/ {\n"));
	assert_non_null(strstr(text, "\talias /srv/media/paid/;\n"));
	/* The prefixes checked, the rest of /media/ served plainly (what SIGN
	 * answers unsigned), without ^~ so the private ones keep theirs. */
	/* And the directory grants' location. */
	assert_int_equal(count(text, "\nlocation "), 4);
	assert_int_equal(count(text, "secure_link $securelink_link_pair;"), 2);
	assert_int_equal(count(text, "\nlocation ^~ /media/_grant/ {\n"), 1);
	assert_non_null(strstr(
	    text,
	    "\nlocation /media/ {\n\tlocation ~ // { return 403; }\n\talias /srv/media/;\n}\n"));
	assert_null(strstr(text, "location ^~ /media/ "));
	/* No secret, not even the map's content. */
	assert_null(strstr(text, "map "));
}

static void test_locations_serve_public_no_leaves_the_rest_to_the_site(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\nprivate_prefixes = private/\n"
	                   "[nginx]\nmedia_root = /srv/media\nserve_public = no\n");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_non_null(strstr(text, secured_private));
	assert_int_equal(count(text, "\nlocation "), 2);
}

static void test_locations_public_prefixes_only(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\npublic_prefixes = public/ img/\n"
	                   "[nginx]\nmedia_root = /srv/media/\n");
	_cleanup_free_ char *text = NULL;
	const char *pub;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	/* media_url itself is secured ... */
	assert_non_null(
	    strstr(text, "\nlocation ^~ /media/ {\n\tsecure_link $securelink_link_pair;\n"));
	assert_non_null(strstr(text, "\talias /srv/media/;\n"));
	/* ... and each public prefix plain: no secure_link inside. */
	pub = strstr(text, "\nlocation /media/public/ {\n\tlocation ~ // { return 403; }\n\talias "
	                   "/srv/media/public/;\n}\n");
	assert_non_null(pub);
	assert_non_null(strstr(text, "\nlocation /media/img/ {\n\tlocation ~ // { return 403; "
	                             "}\n\talias /srv/media/img/;\n}\n"));
	assert_int_equal(count(text, "\nlocation "), 4);
	assert_int_equal(count(text, "secure_link $securelink_link_pair;"), 1);
}

static void test_locations_no_prefixes_secure_all_of_media_url(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nmedia_url = /files/\n"
	                                                   "[nginx]\nmedia_root = /srv/files/\n");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_non_null(strstr(text, "\nlocation ^~ /files/ {\n\tsecure_link "
	                             "$securelink_link_pair;\n"));
	assert_non_null(strstr(text, "\talias /srv/files/;\n}\n"));
	assert_non_null(strstr(text, "\nlocation ^~ /files/_grant/ {\n"));
	assert_non_null(strstr(text, "\t\talias /srv/files/$securelink_gd$securelink_gr;\n"));
	assert_int_equal(count(text, "\nlocation "), 2);
}

static void test_locations_bind_ip_hashes_remote_addr(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nbind_ip = yes\n");
	_cleanup_(config_freep) Config *plain = config_or_fail("");
	_cleanup_free_ char *text = NULL, *maps = NULL, *text_plain = NULL, *maps_plain = NULL;
	size_t size = 0;

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_int_equal(render_grant_maps(c, c, &maps, &size), 0);
	/* A file link's hash, a cookie grant's and a path grant's. */
	assert_non_null(strstr(
	    maps, "\tdefault \"$secure_link_expires$uri$remote_addr $securelink_secret\";\n"));
	assert_non_null(strstr(maps, "\t\"\" \"${secure_link_expires}grant:/media/"
	                             "$securelink_gd$remote_addr $securelink_grant_secret\";\n"));
	assert_non_null(strstr(text, "\t\tsecure_link_md5 \"${secure_link_expires}grant:/media/"
	                             "$securelink_gd$remote_addr $securelink_grant_secret\";\n"));
	assert_int_equal(render_locations_file(plain, &text_plain, &size), 0);
	assert_int_equal(render_grant_maps(plain, plain, &maps_plain, &size), 0);
	assert_null(strstr(text_plain, "$remote_addr"));
	assert_null(strstr(maps_plain, "$remote_addr"));
}

static void test_locations_use_configured_parameter_names(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\ntoken_param = t\nexpires_param = e\n");
	_cleanup_(config_freep) Config *old = config_or_fail("");
	_cleanup_free_ char *maps = NULL, *both = NULL;
	size_t size = 0;

	assert_int_equal(render_grant_maps(c, c, &maps, &size), 0);
	assert_int_equal(strlen(maps), size);
	assert_non_null(strstr(maps, "map $arg_t $securelink_link_pair {\n"
	                             "\t\"\" \"$securelink_cookie_token,$securelink_ge\";\n"
	                             "\tdefault \"$arg_t,$arg_e\";\n}\n"));
	assert_non_null(strstr(maps, "map $arg_t $securelink_link_md5 {\n"));
	/* While the names change, links of either pass. */
	assert_int_equal(render_grant_maps(old, c, &both, &size), 0);
	assert_non_null(strstr(both, "map $arg_t$arg_token $securelink_link_pair {\n"
	                             "\t\"\" \"$securelink_cookie_token,$securelink_ge\";\n"
	                             "\tdefault \"$arg_t$arg_token,$arg_e$arg_expires\";\n}\n"));
	assert_non_null(strstr(both, "map $arg_t$arg_token $securelink_link_md5 {\n"));
}

static void test_grant_maps_cut_each_depth_and_read_the_cookie(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[links]\nmedia_url = /a.b/\n"
	                                                   "[nginx]\nmedia_root = /srv/m/\n");
	_cleanup_free_ char *maps = NULL, *text = NULL;
	size_t size = 0;
	char line[256];

	assert_int_equal(render_grant_maps(c, c, &maps, &size), 0);
	/* One match over the cookie, ';' and $uri: media_url is a literal
	 * inside the regex ('.' is not "any"); one alternative per depth,
	 * each setting the same captures. */
	assert_non_null(
	    strstr(maps, "map \"$cookie_securelink_grant;$uri\" $securelink_cookie_token {\n"
	                 "\t\"~^(?<securelink_gk>[0-9]+)\\.(?<securelink_ge>[0-9]+)\\.(?|"
	                 "0\\.(?<securelink_gt>[A-Za-z0-9_-]{22});\\Q/a.b/\\E(?<securelink_gd>)|"));
	for (unsigned d = 1; d <= GRANT_DEPTH_MAX; d++) {
		snprintf(line, sizeof(line),
		         "|%u\\.(?<securelink_gt>[A-Za-z0-9_-]{22});\\Q/a.b/\\E"
		         "(?<securelink_gd>(?:[^/]+/){%u})%s",
		         d, d,
		         d == GRANT_DEPTH_MAX ? ")\" $securelink_gt;\n\tdefault \"\";\n}\n" : "|");
		assert_non_null(strstr(maps, line));
	}
	assert_int_equal(count(maps, "(?<securelink_gd>"), GRANT_DEPTH_MAX + 1);
	/* No secret here: those maps are the keys file's first two. */
	assert_null(strstr(maps, "$securelink_secret {"));
	assert_null(strstr(maps, "$securelink_grant_secret {"));

	assert_int_equal(render_locations_file(c, &text, &size), 0);
	assert_non_null(strstr(text, "\tlocation ~ \"^\\Q/a.b/\\E_grant/(?<securelink_gk>[0-9]+)/"
	                             "(?<securelink_ge>[0-9]+)/(?<securelink_gt>[A-Za-z0-9_-]{22})/"
	                             "(?|0/(?<securelink_gd>)|1/(?<securelink_gd>(?:[^/]+/){1})|"));
	snprintf(line, sizeof(line),
	         "|%u/(?<securelink_gd>(?:[^/]+/){%u}))(?<securelink_gr>.*)$\" {\n",
	         GRANT_DEPTH_MAX, GRANT_DEPTH_MAX);
	assert_non_null(strstr(text, line));
	assert_int_equal(count(text, "(?<securelink_gd>"), GRANT_DEPTH_MAX + 1);
	assert_non_null(strstr(
	    text, "\t\talias /srv/m/$securelink_gd$securelink_gr;\n\t}\n\treturn 403;\n}\n"));
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
		_cleanup_(config_freep) Config *c = config_or_fail("");
		_cleanup_free_ char *text = NULL;
		size_t size = 0;

		set_field(&c->media_root, bad_roots[i]);
		assert_int_equal(render_locations_file(c, &text, &size), -EINVAL);
		assert_null(text);
	}
}

static void test_locations_refuse_unsafe_prefix_and_param(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\nprivate_prefixes = private/\n");
	_cleanup_(config_freep) Config *d = config_or_fail("");
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
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[nginx]\nkeys_file = /etc/nginx/sl/keys.conf\n"
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
	_cleanup_(config_freep) Config *c = config_or_fail("");
	_cleanup_free_ char *text = NULL;

	set_field(&c->keys_file, "/etc/nginx/a b.conf");
	assert_int_equal(render_include_lines(c, &text), -EINVAL);
	assert_null(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locations_private_prefixes_only),
		cmocka_unit_test(test_locations_serve_public_no_leaves_the_rest_to_the_site),
		cmocka_unit_test(test_locations_public_prefixes_only),
		cmocka_unit_test(test_locations_no_prefixes_secure_all_of_media_url),
		cmocka_unit_test(test_locations_bind_ip_hashes_remote_addr),
		cmocka_unit_test(test_locations_use_configured_parameter_names),
		cmocka_unit_test(test_grant_maps_cut_each_depth_and_read_the_cookie),
		cmocka_unit_test(test_locations_refuse_paths_that_break_nginx_syntax),
		cmocka_unit_test(test_locations_refuse_unsafe_prefix_and_param),
		cmocka_unit_test(test_include_lines_name_both_blocks),
		cmocka_unit_test(test_include_lines_refuse_unsafe_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
