/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "config.h"
#include "unit-config.h"
#include "util.h"

#ifndef SOURCE_DIR
#error "SOURCE_DIR must name the source tree (see tests/unit/meson.build)"
#endif

/* Helpers */

/* Loads text, which must fail with one line that starts with prefix
 * ("test.conf:LINE: KEY: ") and contains fragment. */
static void expect_error(const char *text, const char *prefix, const char *fragment)
{
	_cleanup_free_ char *error = NULL;
	Config *c = NULL;
	int r;

	r = config_load_string(text, "test.conf", &c, &error);
	if (r >= 0) {
		config_free(c);
		fail_msg("config accepted, expected \"%s...%s\"\n--- config:\n%s", prefix, fragment,
		         text);
	}
	assert_null(c);
	assert_int_equal(r, -EINVAL);
	assert_non_null(error);
	if (strncmp(error, prefix, strlen(prefix)) != 0 || !strstr(error, fragment))
		fail_msg("got      \"%s\"\nexpected \"%s...%s...\"\n--- config:\n%s", error, prefix,
		         fragment, text);
	assert_null(strchr(error, '\n'));
}

static void assert_strv_equal(char **l, const char *const *expected)
{
	size_t i;

	assert_non_null(l);
	for (i = 0; expected[i]; i++) {
		assert_non_null(l[i]);
		assert_string_equal(l[i], expected[i]);
	}
	assert_null(l[i]);
}

/* The defaults as DESIGN.md and config.h document them, written out here
 * rather than taken from config_new(). */
static void assert_documented_defaults(const Config *c)
{
	assert_string_equal(c->socket, "/run/securelink/securelinkd.sock");
	assert_string_equal(c->state_directory, "/var/lib/securelink");
	assert_string_equal(c->admin_group, "securelink-admin");
	assert_int_equal(c->max_connections, 1024);
	assert_true(c->idle_timeout == 60ULL * 1000000ULL);

	assert_int_equal(c->mode, KEY_MODE_LOCAL);
	assert_null(c->master_key_file);
	assert_true(c->rotate_every == 24ULL * 3600ULL * 1000000ULL);
	assert_true(c->max_link_ttl == 24ULL * 3600ULL * 1000000ULL);
	assert_true(c->default_link_ttl == 3600ULL * 1000000ULL);
	assert_true(c->activation_delay == 2ULL * 1000000ULL);
	assert_true(c->clock_skew == 30ULL * 1000000ULL);

	assert_string_equal(c->base_url, "");
	assert_string_equal(c->media_url, "/media/");
	assert_strv_equal(c->private_prefixes, (const char *const[]){ NULL });
	assert_strv_equal(c->public_prefixes, (const char *const[]){ NULL });
	assert_string_equal(c->token_param, "token");
	assert_string_equal(c->expires_param, "expires");
	assert_string_equal(c->key_param, "kid");
	assert_false(c->bind_ip);
	assert_false(c->allow_binary_paths);
	assert_int_equal(c->max_url_length, 8176);

	assert_string_equal(c->keys_file, "/etc/nginx/securelink/keys.conf");
	assert_string_equal(c->locations_file, "/etc/nginx/securelink/locations.conf");
	assert_string_equal(c->media_root, "/var/www/html/media/");
	assert_null(c->test_command);
	assert_string_equal(c->test_unit, "securelink-nginx-test.service");
	assert_int_equal(c->reload, RELOAD_SYSTEMD);
	assert_string_equal(c->reload_target, "nginx.service");
	assert_null(c->reload_command);
	assert_true(c->serve_public);
	assert_null(c->probe);
	assert_true(c->probe_every == 300ULL * 1000000ULL);
	assert_true(c->nginx_timeout == 30ULL * 1000000ULL);
}

/* Every key of DESIGN.md's Configuration section, plus [keys] mode and
 * master_key_file from Fleet mode, and master_key_file_previous and
 * master_switch for rolling its master. */
static const char *const documented_keys[] = {
	"socket",           "state_directory",
	"admin_group",      "max_connections",
	"idle_timeout",     "mode",
	"master_key_file",  "master_key_file_previous",
	"master_switch",    "rotate_every",
	"max_link_ttl",     "default_link_ttl",
	"activation_delay", "clock_skew",
	"base_url",         "media_url",
	"private_prefixes", "public_prefixes",
	"token_param",      "expires_param",
	"key_param",        "bind_ip",
	"max_url_length",   "keys_file",
	"locations_file",   "media_root",
	"test_command",     "reload",
	"serve_public",     "probe",
	"probe_every",      "allow_binary_paths",
	"timeout",
};

static char *make_temp_dir(void)
{
	char *d = strdup("/tmp/test-config-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static char *write_temp_file(const char *dir, const char *name, const void *data, size_t size)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, size, f), size);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Defaults and the shipped file */

static void test_new_holds_documented_defaults(void **state)
{
	_cleanup_(config_freep) Config *c = config_new();

	assert_non_null(c);
	assert_documented_defaults(c);
}

static void test_empty_and_comment_only_files_yield_defaults(void **state)
{
	_cleanup_(config_freep) Config *a = config_or_fail("");
	_cleanup_(config_freep) Config *b =
	    config_or_fail("# nothing\n; at all\n\n[daemon]\n[keys]\n\n[links]\n[nginx]\n");

	assert_documented_defaults(a);
	assert_documented_defaults(b);
}

static void test_shipped_conf_yields_exactly_the_defaults(void **state)
{
	_cleanup_(config_freep) Config *c = NULL;
	_cleanup_free_ char *error = NULL;
	int r;

	r = config_load(SOURCE_DIR "/conf/securelinkd.conf", &c, &error);
	if (r < 0)
		fail_msg("%s", error);
	assert_null(error);
	assert_documented_defaults(c);
}

/* The shipped file documents every key by setting it: if a key were only in
 * a comment, the round trip above would not check its default. */
static void test_shipped_conf_sets_every_documented_key(void **state)
{
	_cleanup_fclose_ FILE *f = fopen(SOURCE_DIR "/conf/securelinkd.conf", "r");
	bool seen[ELEMENTSOF(documented_keys)] = { false };
	char line[1024];

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < ELEMENTSOF(documented_keys); i++) {
			size_t n = strlen(documented_keys[i]);

			if (strncmp(line, documented_keys[i], n) == 0 &&
			    strncmp(line + n, " =", 2) == 0) {
				assert_false(seen[i]);
				seen[i] = true;
			}
		}
	}
	for (size_t i = 0; i < ELEMENTSOF(documented_keys); i++)
		if (!seen[i])
			fail_msg("conf/securelinkd.conf does not set %s", documented_keys[i]);
}

static void test_every_key_is_accepted_in_its_section(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[daemon]\n"
	                   "socket = /run/s/x.sock\n"
	                   "state_directory = /var/lib/s\n"
	                   "admin_group = wheel\n"
	                   "max_connections = 7\n"
	                   "idle_timeout = 5m\n"
	                   "[keys]\n"
	                   "mode = derived\n"
	                   "master_key_file = /etc/securelink/master\n"
	                   "rotate_every = 7d\n"
	                   "max_link_ttl = 2d\n"
	                   "default_link_ttl = 15m\n"
	                   "activation_delay = 300ms\n"
	                   "clock_skew = 0\n"
	                   "[links]\n"
	                   "base_url = https://files.example.com:8443\n"
	                   "media_url = /m/\n"
	                   "private_prefixes = a/, b/c/\n"
	                   "token_param = t\n"
	                   "expires_param = e\n"
	                   "key_param = k_1\n"
	                   "bind_ip = yes\n"
	                   "allow_binary_paths = yes\n"
	                   "max_url_length = 4096\n"
	                   "[nginx]\n"
	                   "keys_file = /etc/n/k.conf\n"
	                   "locations_file = /etc/n/l.conf\n"
	                   "media_root = /srv/media/\n"
	                   "test_command = /usr/sbin/nginx -t\n"
	                   "reload = pidfile:/run/nginx.pid\n");

	assert_string_equal(c->socket, "/run/s/x.sock");
	assert_string_equal(c->state_directory, "/var/lib/s");
	assert_string_equal(c->admin_group, "wheel");
	assert_int_equal(c->max_connections, 7);
	assert_true(c->idle_timeout == 300ULL * 1000000ULL);
	assert_int_equal(c->mode, KEY_MODE_DERIVED);
	assert_string_equal(c->master_key_file, "/etc/securelink/master");
	assert_true(c->rotate_every == 7ULL * 86400ULL * 1000000ULL);
	assert_true(c->max_link_ttl == 2ULL * 86400ULL * 1000000ULL);
	assert_true(c->default_link_ttl == 900ULL * 1000000ULL);
	assert_true(c->activation_delay == 300000ULL);
	assert_true(c->clock_skew == 0);
	assert_string_equal(c->base_url, "https://files.example.com:8443");
	assert_string_equal(c->media_url, "/m/");
	assert_strv_equal(c->private_prefixes, (const char *const[]){ "a/", "b/c/", NULL });
	assert_strv_equal(c->public_prefixes, (const char *const[]){ NULL });
	assert_string_equal(c->token_param, "t");
	assert_string_equal(c->expires_param, "e");
	assert_string_equal(c->key_param, "k_1");
	assert_true(c->bind_ip);
	assert_true(c->allow_binary_paths);
	assert_int_equal(c->max_url_length, 4096);
	assert_string_equal(c->keys_file, "/etc/n/k.conf");
	assert_string_equal(c->locations_file, "/etc/n/l.conf");
	assert_string_equal(c->media_root, "/srv/media/");
	assert_strv_equal(c->test_command, (const char *const[]){ "/usr/sbin/nginx", "-t", NULL });
	assert_int_equal(c->reload, RELOAD_PIDFILE);
	assert_string_equal(c->reload_target, "/run/nginx.pid");
	assert_null(c->reload_command);
}

/* [nginx] probe: where the enforcement probes go */

static void test_probe_defaults_to_base_url_over_loopback(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\nbase_url = https://files.example.com\n");
	const char *origin = NULL;
	bool loopback = false;

	assert_true(config_probe_origin(c, &origin, &loopback));
	assert_string_equal(origin, "https://files.example.com");
	assert_true(loopback);
}

static void test_probe_defaults_to_local_http_without_base_url(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("");
	const char *origin = NULL;
	bool loopback = true;

	assert_true(config_probe_origin(c, &origin, &loopback));
	assert_string_equal(origin, "http://127.0.0.1");
	assert_false(loopback);
}

static void test_probe_is_off_with_no_and_by_default_with_reload_none(void **state)
{
	_cleanup_(config_freep) Config *no = config_or_fail("[nginx]\nprobe = no\n");
	_cleanup_(config_freep) Config *none = config_or_fail("[nginx]\nreload = none\n");
	_cleanup_(config_freep) Config *set =
	    config_or_fail("[nginx]\nreload = none\nprobe = http://127.0.0.1:8080\n");
	const char *origin = NULL;
	bool loopback = true;

	assert_false(config_probe_origin(no, &origin, &loopback));
	assert_false(config_probe_origin(none, &origin, &loopback));
	assert_true(config_probe_origin(set, &origin, &loopback));
	assert_string_equal(origin, "http://127.0.0.1:8080");
	assert_false(loopback);
}

static void test_probe_with_a_path_is_refused_naming_the_fix(void **state)
{
	_cleanup_free_ char *error = NULL;
	Config *c = NULL;

	assert_int_equal(config_load_string("[nginx]\nprobe = http://h/x\n", "t.conf", &c, &error),
	                 -EINVAL);
	assert_null(c);
	assert_non_null(strstr(error, "t.conf:2: probe:"));
	assert_non_null(strstr(error, "has a path"));
}

/* Loading files */

static void test_load_missing_file_names_path_and_strerror(void **state)
{
	_cleanup_free_ char *dir = make_temp_dir(), *path = NULL, *error = NULL;
	Config *c = NULL;

	assert_true(asprintf(&path, "%s/absent.conf", dir) > 0);
	assert_int_equal(config_load(path, &c, &error), -ENOENT);
	assert_null(c);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	assert_non_null(strstr(error, strerror(ENOENT)));
	assert_int_equal(rmdir(dir), 0);
}

static void test_load_directory_is_refused(void **state)
{
	_cleanup_free_ char *dir = make_temp_dir(), *error = NULL;
	Config *c = NULL;

	assert_true(config_load(dir, &c, &error) < 0);
	assert_null(c);
	assert_non_null(error);
	assert_non_null(strstr(error, dir));
	assert_non_null(strstr(error, "not a regular file"));
	assert_int_equal(rmdir(dir), 0);
}

static void test_load_errors_name_the_file_without_directory(void **state)
{
	static const char text[] = "[keys]\n# comment\nmax_link_ttl = 3x\n";
	_cleanup_free_ char *dir = make_temp_dir(), *error = NULL;
	_cleanup_free_ char *path = write_temp_file(dir, "securelinkd.conf", text, strlen(text));
	Config *c = NULL;

	assert_int_equal(config_load(path, &c, &error), -EINVAL);
	assert_null(c);
	/* The example from STYLE.md, word for word. */
	assert_string_equal(
	    error,
	    "securelinkd.conf:3: max_link_ttl: \"3x\" is not a duration (use 90s, 15m, 24h, 7d)");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_load_resolves_symlinks_into_media_root(void **state)
{
	_cleanup_free_ char *dir = make_temp_dir(), *error = NULL, *error2 = NULL;
	_cleanup_free_ char *media = NULL, *inside = NULL, *link = NULL, *text = NULL;
	_cleanup_free_ char *path = NULL, *expected = NULL;
	Config *c = NULL;

	assert_true(asprintf(&media, "%s/media", dir) > 0);
	assert_true(asprintf(&inside, "%s/media/hidden", dir) > 0);
	assert_true(asprintf(&link, "%s/outside", dir) > 0);
	assert_int_equal(mkdir(media, 0755), 0);
	assert_int_equal(mkdir(inside, 0700), 0);
	assert_int_equal(symlink(inside, link), 0);

	/* A state directory below the link that does not exist yet: the
	 * existing part resolves into media_root, the rest follows it. */
	assert_true(asprintf(&text,
	                     "[daemon]\nstate_directory = %s/state/\n[nginx]\nmedia_root = %s/\n",
	                     link, media) > 0);
	path = write_temp_file(dir, "securelinkd.conf", text, strlen(text));
	assert_int_equal(config_load(path, &c, &error), -EINVAL);
	assert_null(c);
	assert_true(asprintf(&expected,
	                     "resolves (through symbolic links) to %s/state, inside "
	                     "media_root",
	                     inside) > 0);
	assert_non_null(strstr(error, expected));
	assert_non_null(strstr(error, "securelinkd.conf:4: media_root: state_directory "));

	/* The same text from a string touches no file: only the written
	 * paths are compared. */
	assert_int_equal(config_load_string(text, "x.conf", &c, &error2), 0);
	config_free(c);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(rmdir(inside), 0);
	assert_int_equal(rmdir(media), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_load_refuses_nul_byte_with_its_line(void **state)
{
	static const char text[] = "[keys]\nmode = local\nclock_skew = 1\0s\n";
	_cleanup_free_ char *dir = make_temp_dir(), *error = NULL;
	_cleanup_free_ char *path = write_temp_file(dir, "nul.conf", text, sizeof(text) - 1);
	Config *c = NULL;

	assert_int_equal(config_load(path, &c, &error), -EINVAL);
	assert_null(c);
	assert_non_null(error);
	assert_non_null(strstr(error, "nul.conf:3: "));
	assert_non_null(strstr(error, "NUL byte"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_load_accepts_null_error_pointer(void **state)
{
	Config *c = NULL;

	assert_int_equal(config_load_string("[keys]\nmode = x\n", "t", &c, NULL), -EINVAL);
	assert_null(c);
	assert_int_equal(config_load("/nonexistent/securelinkd.conf", &c, NULL), -ENOENT);
}

/* Syntax */

static void test_syntax_line_without_equals_is_refused(void **state)
{
	expect_error("[daemon]\n\nsocket /run/x.sock\n", "test.conf:3: ", "not a \"key = value\"");
}

static void test_syntax_multiline_values_are_refused(void **state)
{
	/* With inih's Python-style continuation lines, the indented line
	 * would quietly become part of rotate_every. */
	expect_error("[keys]\nrotate_every = 24h\n    12h\n",
	             "test.conf:3: ", "not a \"key = value\"");
}

static void test_syntax_section_without_bracket_is_refused(void **state)
{
	expect_error("# x\n[daemon\nsocket = /run/x.sock\n", "test.conf:2: ", "without ']'");
}

static void test_syntax_unknown_section_is_refused_even_when_empty(void **state)
{
	expect_error("[daemon]\n[deamon]\n[keys]\n", "test.conf:2: [deamon]: ", "unknown section");
	expect_error("[]\n", "test.conf:1: []: ", "unknown section");
	expect_error("[Daemon]\nsocket = /run/x.sock\n",
	             "test.conf:1: [Daemon]: ", "unknown section");
}

static void test_syntax_text_after_section_header_is_refused(void **state)
{
	expect_error("[daemon] socket = /x\n", "test.conf:1: [daemon]: ", "text after");
	expect_error("[daemon];x\n", "test.conf:1: [daemon]: ", "text after");
	/* A comment after whitespace is fine. */
	config_free(config_or_fail("[daemon] # the daemon\n[keys]\t; keys\n"));
}

static void test_syntax_known_key_outside_section_names_its_section(void **state)
{
	expect_error("rotate_every = 1h\n",
	             "test.conf:1: rotate_every: ", "outside any section (put it under [keys])");
}

static void test_syntax_unknown_key_outside_section_is_refused(void **state)
{
	expect_error("\nfoo = 1\n", "test.conf:2: foo: ", "unknown key outside any section");
}

static void test_syntax_unknown_key_lists_the_section_keys(void **state)
{
	expect_error("[keys]\nrotate_evry = 1h\n", "test.conf:2: rotate_evry: ",
	             "unknown key in [keys] (known keys there: mode, master_key_file, "
	             "master_key_file_previous, master_switch, rotate_every, max_link_ttl, "
	             "default_link_ttl, activation_delay, clock_skew)");
	/* Keys are spelled exactly. */
	expect_error("[keys]\nRotate_Every = 1h\n", "test.conf:2: Rotate_Every: ", "unknown key");
	/* An odd key name is echoed escaped, on one line. */
	expect_error("[keys]\nx\x1b[31m = 1\n", "test.conf:2: x\\x1b[31m: ", "unknown key");
}

static void test_syntax_key_in_wrong_section_names_the_right_one(void **state)
{
	expect_error("[daemon]\nrotate_every = 1h\n",
	             "test.conf:2: rotate_every: ", "belongs in [keys], not [daemon]");
}

static void test_syntax_duplicate_key_names_both_lines(void **state)
{
	expect_error("[keys]\nrotate_every = 1h\nclock_skew = 1s\nrotate_every = 2h\n",
	             "test.conf:4: rotate_every: ", "set twice, first on line 2");
	/* Also across two [keys] sections. */
	expect_error("[keys]\nmode = local\n[daemon]\n[keys]\nmode = local\n",
	             "test.conf:5: mode: ", "set twice, first on line 2");
}

static void test_syntax_line_without_key_is_refused(void **state)
{
	expect_error("[keys]\n= 1h\n", "test.conf:2: ", "without a key");
}

static void test_syntax_empty_value_is_refused_where_not_allowed(void **state)
{
	static const struct {
		const char *text, *prefix;
	} cases[] = {
		{ "[daemon]\nsocket =\n", "test.conf:2: socket: " },
		{ "[daemon]\nstate_directory =\n", "test.conf:2: state_directory: " },
		{ "[daemon]\nadmin_group =\n", "test.conf:2: admin_group: " },
		{ "[daemon]\nmax_connections =\n", "test.conf:2: max_connections: " },
		{ "[daemon]\nidle_timeout =\n", "test.conf:2: idle_timeout: " },
		{ "[keys]\nmode =\n", "test.conf:2: mode: " },
		{ "[keys]\nrotate_every =\n", "test.conf:2: rotate_every: " },
		{ "[keys]\nmax_link_ttl =\n", "test.conf:2: max_link_ttl: " },
		{ "[keys]\ndefault_link_ttl =\n", "test.conf:2: default_link_ttl: " },
		{ "[keys]\nactivation_delay =\n", "test.conf:2: activation_delay: " },
		{ "[keys]\nclock_skew = ; none\n", "test.conf:2: clock_skew: " },
		{ "[links]\nmedia_url =\n", "test.conf:2: media_url: " },
		{ "[links]\ntoken_param =\n", "test.conf:2: token_param: " },
		{ "[links]\nexpires_param =\n", "test.conf:2: expires_param: " },
		{ "[links]\nkey_param =\n", "test.conf:2: key_param: " },
		{ "[links]\nbind_ip =\n", "test.conf:2: bind_ip: " },
		{ "[nginx]\nkeys_file =\n", "test.conf:2: keys_file: " },
		{ "[nginx]\nlocations_file =\n", "test.conf:2: locations_file: " },
		{ "[nginx]\nmedia_root =\n", "test.conf:2: media_root: " },
		{ "[nginx]\ntest_command =   \n", "test.conf:2: test_command: " },
		{ "[nginx]\nreload =\n", "test.conf:2: reload: " },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		expect_error(cases[i].text, cases[i].prefix, "empty value");
}

static void test_syntax_empty_value_is_accepted_where_documented(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[keys]\nmaster_key_file =\n"
	                   "[links]\nbase_url =\nprivate_prefixes =\n"
	                   "public_prefixes =\n");

	assert_documented_defaults(c);
}

static void test_syntax_quoted_value_is_refused(void **state)
{
	expect_error("[links]\nmedia_url = \"/media/\"\n",
	             "test.conf:2: media_url: ", "is quoted (write the value without quotes)");
	expect_error("[keys]\nmode = 'local'\n", "test.conf:2: mode: ", "is quoted");
	expect_error("[links]\nbase_url = \"\"\n", "test.conf:2: base_url: ", "is quoted");
}

static void test_syntax_long_line_is_refused(void **state)
{
	_cleanup_free_ char *text = NULL;
	char path[5000];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_true(asprintf(&text, "[daemon]\n\nstate_directory = %s\n", path) > 0);
	expect_error(text, "test.conf:3: ", "line longer than 4096 bytes");
}

static void test_syntax_line_just_under_limit_is_read_whole(void **state)
{
	_cleanup_(config_freep) Config *c = NULL;
	_cleanup_free_ char *text = NULL;
	char path[4096 - STRLEN("state_directory = ") + 1];

	/* 4096 bytes before the line feed: accepted, and not cut. */
	memset(path, 'b', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_true(asprintf(&text, "[daemon]\nstate_directory = %s\n", path) > 0);
	c = config_or_fail(text);
	assert_string_equal(c->state_directory, path);
}

static void test_syntax_comments_bom_and_crlf(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("\xEF\xBB\xBF# comment\r\n"
	                   "[keys]\r\n"
	                   "  ; indented comment\r\n"
	                   "rotate_every = 12h # twice a day\r\n"
	                   "clock_skew = 5s\t; tab, then comment\r\n"
	                   "max_link_ttl: 2d\r\n");

	assert_true(c->rotate_every == 12ULL * 3600ULL * 1000000ULL);
	assert_true(c->clock_skew == 5ULL * 1000000ULL);
	assert_true(c->max_link_ttl == 2ULL * 86400ULL * 1000000ULL);
}

static void test_syntax_comment_sign_without_space_is_part_of_value(void **state)
{
	expect_error("[links]\ntoken_param = tok#en\n",
	             "test.conf:2: token_param: ", "\"tok#en\" is not a parameter name");
	expect_error("[keys]\nclock_skew = 5s;x\n",
	             "test.conf:2: clock_skew: ", "\"5s;x\" is not a duration");
}

/* [daemon] */

static void test_daemon_socket(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[daemon]\nsocket = /run//s/x.sock\n");
	_cleanup_free_ char *text = NULL;
	char too_long[120];

	assert_string_equal(c->socket, "/run/s/x.sock");

	expect_error("[daemon]\nsocket = run/x.sock\n", "test.conf:2: socket: ",
	             "\"run/x.sock\" is not an absolute path (write it starting with '/')");
	expect_error("[daemon]\nsocket = /run/x/\n", "test.conf:2: socket: ", "names a directory");
	expect_error("[daemon]\nsocket = /run/../x.sock\n",
	             "test.conf:2: socket: ", "'.' or '..' segment");
	expect_error("[daemon]\nsocket = /run/\x01x.sock\n",
	             "test.conf:2: socket: ", "\"/run/\\x01x.sock\" contains a control byte");

	/* sun_path is 108 bytes with its NUL: 107 fit, 108 do not. */
	memset(too_long, 'x', sizeof(too_long));
	too_long[0] = '/';
	too_long[108] = '\0';
	assert_true(asprintf(&text, "[daemon]\nsocket = %s\n", too_long) > 0);
	expect_error(text, "test.conf:2: socket: ",
	             "too long for a Unix socket (use a path of at most 107 bytes)");
	free(text);
	too_long[107] = '\0';
	assert_true(asprintf(&text, "[daemon]\nsocket = %s\n", too_long) > 0);
	config_free(config_or_fail(text));
}

static void test_daemon_state_directory(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[daemon]\nstate_directory = /var//lib/securelink/\n");

	assert_string_equal(c->state_directory, "/var/lib/securelink");
	expect_error("[daemon]\nstate_directory = var/lib\n",
	             "test.conf:2: state_directory: ", "is not an absolute path");
	expect_error("[daemon]\nstate_directory = /var/lib/./s\n",
	             "test.conf:2: state_directory: ", "'.' or '..' segment");
}

static void test_daemon_admin_group(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[daemon]\nadmin_group = ops_team-2.x\n");

	assert_string_equal(c->admin_group, "ops_team-2.x");
	expect_error("[daemon]\nadmin_group = ops team\n",
	             "test.conf:2: admin_group: ", "\"ops team\" is not a group name");
	expect_error("[daemon]\nadmin_group = -x\n",
	             "test.conf:2: admin_group: ", "is not a group name");
	expect_error("[daemon]\nadmin_group = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	             "test.conf:2: admin_group: ", "is not a group name");
}

static void test_daemon_max_connections(void **state)
{
	Config *c;

	c = config_or_fail("[daemon]\nmax_connections = 1\n");
	assert_int_equal(c->max_connections, 1);
	config_free(c);
	c = config_or_fail("[daemon]\nmax_connections = 65536\n");
	assert_int_equal(c->max_connections, 65536);
	config_free(c);

	expect_error("[daemon]\nmax_connections = 0\n",
	             "test.conf:2: max_connections: ", "\"0\" is out of range (use 1 to 65536)");
	expect_error("[daemon]\nmax_connections = 65537\n",
	             "test.conf:2: max_connections: ", "is out of range");
	expect_error("[daemon]\nmax_connections = 99999999999999999999999\n",
	             "test.conf:2: max_connections: ", "is out of range");
	expect_error("[daemon]\nmax_connections = -1\n",
	             "test.conf:2: max_connections: ", "\"-1\" is not a number");
	expect_error("[daemon]\nmax_connections = 1k\n",
	             "test.conf:2: max_connections: ", "is not a number");
}

static void test_daemon_idle_timeout(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[daemon]\nidle_timeout = 500ms\n");

	assert_true(c->idle_timeout == 500000ULL);
	expect_error("[daemon]\nidle_timeout = 0\n", "test.conf:2: idle_timeout: ",
	             "\"0\" is too short (use more than 0, e.g. 60s)");
	expect_error("[daemon]\nidle_timeout = 1 m\n",
	             "test.conf:2: idle_timeout: ", "is not a duration (use 90s, 15m, 24h, 7d)");
}

/* [keys] */

static void test_keys_mode(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[keys]\nmode = derived\n");

	assert_int_equal(c->mode, KEY_MODE_DERIVED);
	/* Fleet mode without master_key_file uses the systemd credential. */
	assert_null(c->master_key_file);
	expect_error("[keys]\nmode = fleet\n",
	             "test.conf:2: mode: ", "\"fleet\" is not a key mode (use local or derived)");
	expect_error("[keys]\nmode = Local\n", "test.conf:2: mode: ", "is not a key mode");
}

static void test_keys_master_key_file(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail(
	    "[keys]\nmaster_key_file = /etc/securelink/master.key\nmode = derived\n");

	assert_string_equal(c->master_key_file, "/etc/securelink/master.key");
	expect_error("[keys]\nmode = derived\nmaster_key_file = master.key\n",
	             "test.conf:3: master_key_file: ", "is not an absolute path");
	/* A master key with mode = local would give each host its own keys. */
	expect_error("[keys]\n\nmaster_key_file = /etc/securelink/master.key\n",
	             "test.conf:3: master_key_file: ", "is set but mode is local");
	expect_error("[keys]\nmode = derived\nmaster_key_file = /var/www/html/media/m.key\n",
	             "test.conf:3: master_key_file: ", "is inside media_root");
}

static void test_keys_master_roll_keys(void **state)
{
	Config *c = config_or_fail("[keys]\nmode = derived\n"
	                           "master_key_file_previous = /etc/securelink/old.key\n"
	                           "master_switch = 2025-07-01T00:00:00Z\n");

	assert_string_equal(c->master_key_file_previous, "/etc/securelink/old.key");
	/* date -u -d 2025-07-01T00:00:00Z +%s */
	assert_int_equal(c->master_switch, 1751328000ULL * USEC_PER_SEC);
	config_free(c);

	/* A previous master can also come as a credential: master_switch
	 * alone is fine here (securelinkd checks the pair at start-up). */
	c = config_or_fail("[keys]\nmode = derived\nmaster_switch = 1751373015\n");
	assert_null(c->master_key_file_previous);
	assert_int_equal(c->master_switch, 1751373015ULL * USEC_PER_SEC);
	config_free(c);
	c = config_or_fail("[keys]\nmode = derived\nmaster_switch = 2025-07-01\n");
	assert_int_equal(c->master_switch, 1751328000ULL * USEC_PER_SEC);
	config_free(c);
	c = config_or_fail("[keys]\nmaster_switch =\nmaster_key_file_previous =\n");
	assert_int_equal(c->master_switch, 0);
	assert_null(c->master_key_file_previous);
	config_free(c);

	expect_error(
	    "[keys]\nmode = derived\nmaster_switch = tomorrow\n",
	    "test.conf:3: master_switch: ", "\"tomorrow\" is not a time (use unix seconds");
	expect_error("[keys]\nmode = derived\nmaster_switch = 2025-07-01 00:00\n",
	             "test.conf:3: master_switch: ", "is not a time");
	expect_error("[keys]\nmode = derived\nmaster_switch = 2025-13-01\n",
	             "test.conf:3: master_switch: ", "is not a time");
	expect_error("[keys]\nmode = derived\nmaster_switch = 12\n",
	             "test.conf:3: master_switch: ", "is out of range");
	expect_error("[keys]\nmode = derived\nmaster_switch = 99999999999999999999\n",
	             "test.conf:3: master_switch: ", "is not a time");
	expect_error("[keys]\nmode = derived\nmaster_switch = 1751328000s\n",
	             "test.conf:3: master_switch: ", "is not a time");
	expect_error("[keys]\nmaster_switch = 2025-07-01\n",
	             "test.conf:2: master_switch: ", "is set but mode is local");
	expect_error("[keys]\nmaster_key_file_previous = /etc/securelink/old.key\n"
	             "master_switch = 2025-07-01\n",
	             "test.conf:2: master_key_file_previous: ", "is set but mode is local");
	expect_error("[keys]\nmode = derived\nmaster_key_file_previous = /etc/securelink/old.key\n",
	             "test.conf:3: master_key_file_previous: ", "master_switch is not");
	expect_error("[keys]\nmode = derived\nmaster_key_file_previous = old.key\n",
	             "test.conf:3: master_key_file_previous: ", "is not an absolute path");
	expect_error("[keys]\nmode = derived\nmaster_switch = 2025-07-01\n"
	             "master_key_file = /etc/securelink/m.key\n"
	             "master_key_file_previous = /etc/securelink/m.key\n",
	             "test.conf:5: master_key_file_previous: ", "are the same file");
	expect_error("[keys]\nmode = derived\nmaster_switch = 2025-07-01\n"
	             "master_key_file_previous = /var/www/html/media/old.key\n",
	             "test.conf:4: master_key_file_previous: ", "is inside media_root");
}

static void test_keys_durations_parse_every_unit(void **state)
{
	_cleanup_(config_freep) Config *c = config_or_fail("[keys]\n"
	                                                   "rotate_every = 3d\n"
	                                                   "max_link_ttl = 90\n"
	                                                   "default_link_ttl = 90s\n"
	                                                   "activation_delay = 300ms\n"
	                                                   "clock_skew = 15m\n");

	assert_true(c->rotate_every == 3ULL * 86400ULL * 1000000ULL);
	assert_true(c->max_link_ttl == 90ULL * 1000000ULL);
	assert_true(c->default_link_ttl == 90ULL * 1000000ULL);
	assert_true(c->activation_delay == 300000ULL);
	assert_true(c->clock_skew == 900ULL * 1000000ULL);
}

static void test_keys_durations_refuse_bad_values(void **state)
{
	static const char *const keys[] = { "rotate_every", "max_link_ttl", "default_link_ttl",
		                            "activation_delay", "clock_skew" };

	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		_cleanup_free_ char *prefix = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL;

		assert_true(asprintf(&prefix, "test.conf:3: %s: ", keys[i]) > 0);
		assert_true(asprintf(&t1, "[keys]\n\n%s = 3x\n", keys[i]) > 0);
		assert_true(asprintf(&t2, "[keys]\n\n%s = 3651d\n", keys[i]) > 0);
		assert_true(asprintf(&t3, "[keys]\n\n%s = 99999999999999999999d\n", keys[i]) > 0);
		expect_error(t1, prefix, "\"3x\" is not a duration (use 90s, 15m, 24h, 7d)");
		expect_error(t2, prefix, "\"3651d\" is too long (use at most 3650d)");
		expect_error(t3, prefix, "is too long");
	}
}

static void test_keys_zero_rotation_and_ttls_are_refused(void **state)
{
	expect_error("[keys]\nrotate_every = 0\n", "test.conf:2: rotate_every: ",
	             "\"0\" is too short (use at least 1s, e.g. 24h)");
	expect_error("[keys]\nmax_link_ttl = 0s\n", "test.conf:2: max_link_ttl: ",
	             "\"0s\" is too short (use at least 1s, e.g. 24h)");
	expect_error("[keys]\ndefault_link_ttl = 0\n", "test.conf:2: default_link_ttl: ",
	             "\"0\" is too short (use at least 1s, e.g. 1h)");
	/* nginx's expires has whole seconds: a shorter link is already dead. */
	expect_error("[keys]\ndefault_link_ttl = 999ms\n",
	             "test.conf:2: default_link_ttl: ", "is too short");
}

static void test_keys_zero_delay_and_skew_are_allowed(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[keys]\nactivation_delay = 0\nclock_skew = 0ms\n");

	assert_true(c->activation_delay == 0);
	assert_true(c->clock_skew == 0);
}

static void test_keys_default_ttl_longer_than_max_is_refused(void **state)
{
	/* Reported on the key set later in the file; a default has no line. */
	expect_error("[keys]\nmax_link_ttl = 30m\n", "test.conf:2: max_link_ttl: ",
	             "default_link_ttl 1h is longer than max_link_ttl 30m");
	expect_error("[keys]\ndefault_link_ttl = 2d\n", "test.conf:2: default_link_ttl: ",
	             "default_link_ttl 2d is longer than max_link_ttl 1d");
	expect_error(
	    "[keys]\ndefault_link_ttl = 2d\nmax_link_ttl = 1d\n",
	    "test.conf:3: max_link_ttl: ", "(lower default_link_ttl or raise max_link_ttl)");
	config_free(config_or_fail("[keys]\ndefault_link_ttl = 24h\n"));
}

static void test_links_expires_granularity(void **state)
{
	_cleanup_(config_freep) Config *off = config_or_fail("");
	_cleanup_(config_freep) Config *on = config_or_fail("[links]\nexpires_granularity = 5m\n");

	assert_true(off->expires_granularity == 0);
	assert_true(on->expires_granularity == 300 * USEC_PER_SEC);
	/* expires is whole seconds: a window of 1.5s has no multiples. */
	expect_error("[links]\nexpires_granularity = 1500ms\n",
	             "test.conf:2: expires_granularity: ",
	             "1500ms is not a whole number of seconds (use e.g. 5m, or 0 for off)");
	/* No rounded link could ever be allowed. */
	expect_error("[keys]\nmax_link_ttl = 1h\ndefault_link_ttl = 5m\n[links]\n"
	             "expires_granularity = 2h\n",
	             "test.conf:5: expires_granularity: ",
	             "expires_granularity 2h is longer than max_link_ttl 1h (lower "
	             "expires_granularity or raise max_link_ttl)");
}

static void test_keys_activation_delay_must_be_shorter_than_rotation(void **state)
{
	expect_error("[keys]\nrotate_every = 2s\n", "test.conf:2: rotate_every: ",
	             "activation_delay 2s is not shorter than rotate_every 2s");
	expect_error("[keys]\nrotate_every = 1m\n\nactivation_delay = 5m\n",
	             "test.conf:4: activation_delay: ", "is not shorter than rotate_every");
}

static void test_keys_schedule_must_fit_the_key_ring(void **state)
{
	/* 7d + 30s of links at one retired key per hour: 169 retired keys,
	 * plus the active, a pending and a legacy one. */
	expect_error("[keys]\nrotate_every = 1h\nmax_link_ttl = 7d\n",
	             "test.conf:3: max_link_ttl: ",
	             "rotate_every 1h with max_link_ttl 7d keeps up to 172 keys in the key ring, "
	             "more than the 64 it holds (raise rotate_every to at least 3h, or lower "
	             "max_link_ttl to at most 60h)");
	expect_error("[keys]\nmax_link_ttl = 61h\nrotate_every = 1h\n",
	             "test.conf:3: rotate_every: ", "more than the 64 it holds");
	/* 60h + 30s is 61 retired keys at most: it fits. */
	config_free(config_or_fail("[keys]\nrotate_every = 1h\nmax_link_ttl = 60h\n"));
	/* mode = derived has no ring of its own to fill (derive_window() has
	 * its own limit). */
	config_free(config_or_fail("[keys]\nmode = derived\nmaster_key_file = /k\nrotate_every = "
	                           "1h\nmax_link_ttl = 7d\n"));
}

/* [links] */

static void test_links_base_url(void **state)
{
	static const struct {
		const char *value, *expected;
	} good[] = {
		{ "https://files.example.com", "https://files.example.com" },
		{ "http://files.example.com/", "http://files.example.com" },
		{ "https://files.example.com:8443", "https://files.example.com:8443" },
		{ "https://[::1]:8443", "https://[::1]:8443" },
		{ "https://[::1]", "https://[::1]" },
	};

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		_cleanup_free_ char *text = NULL;
		Config *c;

		assert_true(asprintf(&text, "[links]\nbase_url = %s\n", good[i].value) > 0);
		c = config_or_fail(text);
		assert_string_equal(c->base_url, good[i].expected);
		config_free(c);
	}

	expect_error("[links]\nbase_url = ftp://x\n",
	             "test.conf:2: base_url: ", "\"ftp://x\" is not an http:// or https:// URL");
	expect_error("[links]\nbase_url = files.example.com\n",
	             "test.conf:2: base_url: ", "is not an http:// or https:// URL");
	expect_error("[links]\nbase_url = https://\n", "test.conf:2: base_url: ", "has no host");
	expect_error("[links]\nbase_url = https://:80\n", "test.conf:2: base_url: ", "has no host");
	expect_error("[links]\nbase_url = https://x.org/media\n",
	             "test.conf:2: base_url: ", "has a path");
	expect_error("[links]\nbase_url = https://x.org?a=b\n",
	             "test.conf:2: base_url: ", "not allowed in a host name");
	expect_error("[links]\nbase_url = https://u@x.org\n",
	             "test.conf:2: base_url: ", "not allowed in a host name");
	expect_error("[links]\nbase_url = https://x.org:0\n",
	             "test.conf:2: base_url: ", "has a bad port");
	expect_error("[links]\nbase_url = https://x.org:65536\n",
	             "test.conf:2: base_url: ", "has a bad port");
	expect_error("[links]\nbase_url = https://x.org:\n",
	             "test.conf:2: base_url: ", "has a bad port");
}

static void test_links_media_url(void **state)
{
	Config *c;

	c = config_or_fail("[links]\nmedia_url = /files\n");
	assert_string_equal(c->media_url, "/files/");
	config_free(c);
	c = config_or_fail("[links]\nmedia_url = /\n");
	assert_string_equal(c->media_url, "/");
	config_free(c);

	expect_error("[links]\nmedia_url = media/\n",
	             "test.conf:2: media_url: ", "\"media/\" does not start with '/'");
	expect_error("[links]\nmedia_url = /a//b/\n",
	             "test.conf:2: media_url: ", "contains \"//\"");
	expect_error("[links]\nmedia_url = /a/../b/\n",
	             "test.conf:2: media_url: ", "'.' or '..' segment");
}

/* Each byte nginx would parse differently inside a location, alias or
 * include, for every key whose value ends up in the nginx config. */
static void test_values_for_nginx_refuse_unsafe_bytes(void **state)
{
	static const struct {
		const char *section, *key, *before, *after;
	} keys[] = {
		{ "links", "media_url", "/me", "dia/" },
		{ "links", "private_prefixes", "pri", "vate/" },
		{ "links", "public_prefixes", "pub", "lic/" },
		{ "nginx", "media_root", "/srv/me", "dia/" },
		{ "nginx", "keys_file", "/etc/nginx/k", "eys.conf" },
		{ "nginx", "locations_file", "/etc/nginx/l", "oc.conf" },
	};
	static const struct {
		const char *byte, *named;
	} bytes[] = {
		{ "\"", "'\"'" },
		{ "'", "'''" },
		{ "\\", "'\\'" },
		{ "$", "'$'" },
		{ "{", "'{'" },
		{ "}", "'}'" },
		{ ";", "';'" },
		{ "#", "'#'" },
		{ "\x01", "control byte \\x01" },
		{ "\x7f", "control byte \\x7f" },
		{ "\t", "a tab" },
	};

	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		for (size_t j = 0; j < ELEMENTSOF(bytes); j++) {
			_cleanup_free_ char *text = NULL, *prefix = NULL, *what = NULL;

			/* Lists split on tabs. */
			if (strstr(keys[i].key, "prefixes") && streq(bytes[j].byte, "\t"))
				continue;
			assert_true(asprintf(&text, "[%s]\n%s = %s%s%s\n", keys[i].section,
			                     keys[i].key, keys[i].before, bytes[j].byte,
			                     keys[i].after) > 0);
			assert_true(asprintf(&prefix, "test.conf:2: %s: ", keys[i].key) > 0);
			assert_true(asprintf(&what, "contains %s (nginx cannot hold it safely",
			                     bytes[j].named) > 0);
			expect_error(text, prefix, what);
		}

	/* A space inside a value. */
	expect_error("[links]\nmedia_url = /my media/\n",
	             "test.conf:2: media_url: ", "contains a space");
	expect_error("[nginx]\nmedia_root = /srv/my media/\n",
	             "test.conf:2: media_root: ", "contains a space");
	expect_error("[nginx]\nkeys_file = /etc/my keys.conf\n",
	             "test.conf:2: keys_file: ", "contains a space");
}

static void test_links_prefixes_are_normalised(void **state)
{
	Config *c;

	c = config_or_fail("[links]\nprivate_prefixes = private, secret/  a/b\n");
	assert_strv_equal(c->private_prefixes,
	                  (const char *const[]){ "private/", "secret/", "a/b/", NULL });
	assert_strv_equal(c->public_prefixes, (const char *const[]){ NULL });
	config_free(c);

	c = config_or_fail("[links]\npublic_prefixes = ,public,,\tthumbs/ ,\n");
	assert_strv_equal(c->public_prefixes, (const char *const[]){ "public/", "thumbs/", NULL });
	assert_strv_equal(c->private_prefixes, (const char *const[]){ NULL });
	config_free(c);
}

/* django-nginx-secure-links matches prefixes with startswith; ours are
 * directories. A prefix written without its '/' is valid, with one warning
 * line that says the difference, naming the file, line and key. */
static void test_links_prefix_without_slash_warns_what_it_means(void **state)
{
	Config *c;

	c = config_or_fail(
	    "[links]\nprivate_prefixes = private, secret/ a/b\nmedia_url = /files/\n");
	assert_strv_equal(c->private_prefixes,
	                  (const char *const[]){ "private/", "secret/", "a/b/", NULL });
	assert_non_null(c->warnings);
	assert_int_equal(strv_length(c->warnings), 2);
	assert_string_equal(
	    c->warnings[0],
	    "test.conf:2: private_prefixes: \"private\" is read as \"private/\": it "
	    "covers /files/private/... but not /files/privatefoo.pdf, which "
	    "django-nginx-secure-links would also sign (write \"private/\" to "
	    "silence this warning)");
	assert_non_null(strstr(c->warnings[1], "test.conf:2: private_prefixes: \"a/b\" is read as "
	                                       "\"a/b/\": it covers /files/a/b/... but not "
	                                       "/files/a/bfoo.pdf"));
	config_free(c);

	c = config_or_fail("[links]\n\npublic_prefixes = pub\n");
	assert_int_equal(strv_length(c->warnings), 1);
	assert_non_null(strstr(c->warnings[0], "test.conf:3: public_prefixes: \"pub\" is read as "
	                                       "\"pub/\""));
	assert_non_null(strstr(c->warnings[0], "would also leave unsigned"));
	config_free(c);

	c = config_or_fail("[links]\nprivate_prefixes = private/ a/b/\n");
	assert_non_null(c->warnings);
	assert_null(c->warnings[0]);
	config_free(c);
}

static void test_links_prefix_with_leading_slash_suggests_relative(void **state)
{
	expect_error("[links]\nprivate_prefixes = /media/private/\n",
	             "test.conf:2: private_prefixes: ",
	             "\"/media/private/\" starts with '/' (prefixes are relative to media_url: "
	             "write \"private/\")");
	expect_error("[links]\nmedia_url = /files/\npublic_prefixes = ok/ /files/pub\n",
	             "test.conf:3: public_prefixes: ", "write \"pub\")");
	expect_error("[links]\nprivate_prefixes = /private/\n",
	             "test.conf:2: private_prefixes: ", "write \"private/\")");
}

static void test_links_prefixes_refuse_bad_paths(void **state)
{
	expect_error("[links]\nprivate_prefixes = a/ b/ a\n",
	             "test.conf:2: private_prefixes: ", "\"a/\" is listed twice");
	expect_error("[links]\nprivate_prefixes = a//b/\n",
	             "test.conf:2: private_prefixes: ", "contains \"//\"");
	expect_error("[links]\npublic_prefixes = ../up/\n",
	             "test.conf:2: public_prefixes: ", "'.' or '..' segment");
	expect_error("[links]\npublic_prefixes = a/./b\n",
	             "test.conf:2: public_prefixes: ", "'.' or '..' segment");
	/* Where path-form directory grants live. */
	expect_error("[links]\nprivate_prefixes = private/ _grant/x/\n",
	             "test.conf:2: private_prefixes: ", "reserved for directory grants");
	expect_error("[links]\npublic_prefixes = _grant\n",
	             "test.conf:2: public_prefixes: ", "reserved for directory grants");
	config_free(config_or_fail("[links]\nprivate_prefixes = _grants/ x_grant/\n"));
}

static void test_links_private_and_public_together_are_refused(void **state)
{
	expect_error("[links]\nprivate_prefixes = private/\n\npublic_prefixes = public/\n",
	             "test.conf:4: public_prefixes: ", "cannot be combined with private_prefixes");
	expect_error("[links]\npublic_prefixes = public/\nprivate_prefixes = private/\n",
	             "test.conf:3: private_prefixes: ", "cannot be combined with public_prefixes");
	/* Both keys present but one empty is fine. */
	config_free(config_or_fail("[links]\nprivate_prefixes = private/\npublic_prefixes =\n"));
}

static void test_links_param_names(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[links]\ntoken_param = st\nexpires_param = e_2\nkey_param = KEY\n");
	char longname[66];

	assert_string_equal(c->token_param, "st");
	assert_string_equal(c->expires_param, "e_2");
	assert_string_equal(c->key_param, "KEY");

	expect_error("[links]\ntoken_param = tok-en\n", "test.conf:2: token_param: ",
	             "\"tok-en\" is not a parameter name (nginx reads it as $arg_NAME: use only "
	             "A-Z, a-z, 0-9 and _)");
	expect_error("[links]\nexpires_param = e.x\n",
	             "test.conf:2: expires_param: ", "is not a parameter name");
	expect_error("[links]\nkey_param = k$\n",
	             "test.conf:2: key_param: ", "is not a parameter name");
	expect_error("[links]\nkey_param = ключ\n",
	             "test.conf:2: key_param: ", "is not a parameter name");

	memset(longname, 'p', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	_cleanup_free_ char *text = NULL;
	assert_true(asprintf(&text, "[links]\ntoken_param = %s\n", longname) > 0);
	expect_error(text, "test.conf:2: token_param: ", "is too long (use at most 64");
}

static void test_links_param_names_must_differ(void **state)
{
	expect_error("[links]\nkey_param = token\n",
	             "test.conf:2: key_param: ", "same parameter name as token_param");
	expect_error("[links]\nexpires_param = kid\n",
	             "test.conf:2: expires_param: ", "same parameter name as key_param");
	expect_error("[links]\ntoken_param = x\n\nexpires_param = x\n",
	             "test.conf:4: expires_param: ", "same parameter name as token_param");
}

/* nginx's $arg_NAME (ngx_http_arg()) finds the name without regard to case:
 * with token=Expires and expires=expires, $arg_token and $arg_expires read
 * the same parameter and every link is 403. */
static void test_links_param_names_must_differ_in_more_than_case(void **state)
{
	expect_error("[links]\ntoken_param = Expires\n", "test.conf:2: token_param: ",
	             "\"Expires\" is the same parameter as expires_param \"expires\" to nginx, "
	             "which compares $arg_ names without regard to case (give each parameter a "
	             "name of its own)");
	expect_error("[links]\nkey_param = TOKEN\n",
	             "test.conf:2: key_param: ", "same parameter as token_param \"token\"");
	expect_error("[links]\nkey_param = Sig\ntoken_param = sIG\n",
	             "test.conf:3: token_param: ", "same parameter as key_param \"Sig\"");
}

/* The longest request target nginx takes with its default
 * large_client_header_buffers (8k): "HEAD <target> HTTP/1.1\r\n" in 8192
 * bytes (nginx 1.22.1: 8176 served, 8177 is 414 for HEAD, 8178 for GET). */
static void test_links_max_url_length(void **state)
{
	Config *c;

	c = config_or_fail("[links]\nmax_url_length = 2000\n");
	assert_int_equal(c->max_url_length, 2000);
	config_free(c);
	c = config_or_fail("[links]\nmax_url_length = 8188\n");
	assert_int_equal(c->max_url_length, 8188);
	config_free(c);

	expect_error("[links]\nmax_url_length = 8189\n", "test.conf:2: max_url_length: ",
	             "\"8189\" is longer than a SIGN answer can hold (use 64 to 8188)");
	expect_error("[links]\nmax_url_length = 63\n", "test.conf:2: max_url_length: ",
	             "\"63\" is too short for a signed link (use 64 to 8188)");
	expect_error("[links]\nmax_url_length = 8k\n",
	             "test.conf:2: max_url_length: ", "\"8k\" is not a number (use 64 to 8188)");
	expect_error("[links]\nmax_url_length = 99999999999999999999\n",
	             "test.conf:2: max_url_length: ", "is longer than a SIGN answer can hold");
}

static void test_links_bind_ip(void **state)
{
	Config *c;

	c = config_or_fail("[links]\nbind_ip = yes\n");
	assert_true(c->bind_ip);
	config_free(c);
	c = config_or_fail("[links]\nbind_ip = off\n");
	assert_false(c->bind_ip);
	config_free(c);
	expect_error("[links]\nbind_ip = maybe\n",
	             "test.conf:2: bind_ip: ", "\"maybe\" is not a boolean (use yes or no)");
}

static void test_links_allow_binary_paths(void **state)
{
	Config *c;

	c = config_or_fail("[links]\nallow_binary_paths = yes\n");
	assert_true(c->allow_binary_paths);
	config_free(c);
	c = config_or_fail("[links]\nallow_binary_paths = no\n");
	assert_false(c->allow_binary_paths);
	config_free(c);
	expect_error(
	    "[links]\nallow_binary_paths = sometimes\n",
	    "test.conf:2: allow_binary_paths: ", "\"sometimes\" is not a boolean (use yes or no)");
	/* A [links] key, not a [nginx] one. */
	expect_error("[nginx]\nallow_binary_paths = yes\n",
	             "test.conf:2: allow_binary_paths: ", "belongs in [links], not [nginx]");
}

/* [nginx] */

static void test_nginx_files(void **state)
{
	_cleanup_(config_freep) Config *c =
	    config_or_fail("[nginx]\nkeys_file = /etc/nginx//k.conf\n"
	                   "locations_file = /etc/nginx/l.conf\n"
	                   "media_root = /srv/media\n");

	assert_string_equal(c->keys_file, "/etc/nginx/k.conf");
	assert_string_equal(c->locations_file, "/etc/nginx/l.conf");
	assert_string_equal(c->media_root, "/srv/media/");

	expect_error("[nginx]\nkeys_file = keys.conf\n",
	             "test.conf:2: keys_file: ", "is not an absolute path");
	expect_error("[nginx]\nlocations_file = /etc/nginx/\n",
	             "test.conf:2: locations_file: ", "names a directory");
	expect_error("[nginx]\nmedia_root = srv/media/\n",
	             "test.conf:2: media_root: ", "is not an absolute path");
	expect_error("[nginx]\nmedia_root = /srv/../media/\n",
	             "test.conf:2: media_root: ", "'.' or '..' segment");
}

static void test_nginx_keys_and_locations_file_must_differ(void **state)
{
	expect_error("[nginx]\nlocations_file = /etc/nginx/securelink/keys.conf\n",
	             "test.conf:2: locations_file: ", "are the same file");
}

static void test_nginx_secrets_outside_media_root(void **state)
{
	expect_error("[nginx]\nkeys_file = /var/www/html/media/keys.conf\n",
	             "test.conf:2: keys_file: ", "is inside media_root");
	expect_error("[nginx]\nmedia_root = /etc/nginx/\n", "test.conf:2: media_root: ",
	             "keys_file /etc/nginx/securelink/keys.conf is inside media_root /etc/nginx/");
	expect_error("[nginx]\nmedia_root = /\n",
	             "test.conf:2: media_root: ", "is inside media_root");
	expect_error("[daemon]\nstate_directory = /srv/m/state\n[nginx]\nmedia_root = /srv/m\n",
	             "test.conf:4: media_root: ", "state_directory /srv/m/state is inside");
	expect_error("[daemon]\nstate_directory = /srv/m\n[nginx]\nmedia_root = /srv/m/\n",
	             "test.conf:4: media_root: ", "state_directory /srv/m is inside");
	/* A sibling with a common name prefix is not inside. */
	config_free(config_or_fail("[daemon]\nstate_directory = /srv/media2\n"
	                           "[nginx]\nmedia_root = /srv/media\n"));
}

static void test_nginx_test_command_is_split_on_whitespace(void **state)
{
	Config *c;

	c = config_or_fail(
	    "[nginx]\ntest_command = /usr/sbin/nginx  -t\t-q -c /etc/nginx/a,b.conf\n");
	/* Commas belong to arguments; only spaces and tabs separate. */
	assert_strv_equal(c->test_command,
	                  (const char *const[]){ "/usr/sbin/nginx", "-t", "-q", "-c",
	                                         "/etc/nginx/a,b.conf", NULL });
	config_free(c);
	c = config_or_fail("[nginx]\ntest_command = true\n");
	assert_strv_equal(c->test_command, (const char *const[]){ "true", NULL });
	config_free(c);
}

static void test_nginx_test_command_systemd_unit_replaces_the_command(void **state)
{
	Config *c;

	c = config_or_fail("[nginx]\ntest_command = systemd:my-nginx-test\n");
	assert_string_equal(c->test_unit, "my-nginx-test.service");
	assert_null(c->test_command);
	config_free(c);
	/* A command line replaces the default unit. */
	c = config_or_fail("[nginx]\ntest_command = nginx -t -q\n");
	assert_null(c->test_unit);
	assert_strv_equal(c->test_command, (const char *const[]){ "nginx", "-t", "-q", NULL });
	config_free(c);
	expect_error("[nginx]\ntest_command = systemd:\n", "test.conf:2: test_command: ",
	             "has no valid unit name (use e.g. systemd:securelink-nginx-test.service)");
	expect_error("[nginx]\ntest_command = systemd:a;b\n",
	             "test.conf:2: test_command: ", "has no valid unit name");
}

static void test_nginx_test_command_refuses_shell_syntax(void **state)
{
	expect_error("[nginx]\ntest_command = nginx -g 'daemon off'\n",
	             "test.conf:2: test_command: ", "contains ''' (commands run without a shell");
	expect_error("[nginx]\ntest_command = nginx -t \"-q\"\n",
	             "test.conf:2: test_command: ", "contains '\"'");
	expect_error("[nginx]\ntest_command = nginx -t | logger\n",
	             "test.conf:2: test_command: ", "contains '|'");
	expect_error("[nginx]\ntest_command = nginx -t >/dev/null\n",
	             "test.conf:2: test_command: ", "contains '>'");
	expect_error("[nginx]\ntest_command = $NGINX -t\n",
	             "test.conf:2: test_command: ", "contains '$'");
	expect_error("[nginx]\ntest_command = nginx -t &&true\n",
	             "test.conf:2: test_command: ", "contains '&'");
	expect_error("[nginx]\ntest_command = nginx\\ -t\n",
	             "test.conf:2: test_command: ", "contains '\\'");
	expect_error("[nginx]\ntest_command = nginx -t\x02\n",
	             "test.conf:2: test_command: ", "contains a control byte");
}

static void test_nginx_test_command_refuses_relative_program(void **state)
{
	expect_error("[nginx]\ntest_command = sbin/nginx -t\n",
	             "test.conf:2: test_command: ", "runs a relative path");
	expect_error("[nginx]\ntest_command = ./nginx -t\n",
	             "test.conf:2: test_command: ", "runs a relative path");
	expect_error("[nginx]\ntest_command = /usr/../sbin/nginx -t\n",
	             "test.conf:2: test_command: ", "'.' or '..' segment");
}

static void test_nginx_reload_methods(void **state)
{
	Config *c;

	c = config_or_fail("[nginx]\nreload = none\n");
	assert_int_equal(c->reload, RELOAD_NONE);
	assert_null(c->reload_target);
	assert_null(c->reload_command);
	config_free(c);

	c = config_or_fail("[nginx]\nreload = systemd:nginx\n");
	assert_int_equal(c->reload, RELOAD_SYSTEMD);
	assert_string_equal(c->reload_target, "nginx.service");
	config_free(c);

	c = config_or_fail("[nginx]\nreload = systemd:nginx@edge.service\n");
	assert_string_equal(c->reload_target, "nginx@edge.service");
	config_free(c);

	c = config_or_fail("[nginx]\nreload = pidfile:/run//nginx.pid\n");
	assert_int_equal(c->reload, RELOAD_PIDFILE);
	assert_string_equal(c->reload_target, "/run/nginx.pid");
	assert_null(c->reload_command);
	config_free(c);

	c = config_or_fail("[nginx]\nreload = exec:/usr/sbin/nginx -s reload\n");
	assert_int_equal(c->reload, RELOAD_EXEC);
	assert_null(c->reload_target);
	assert_strv_equal(c->reload_command,
	                  (const char *const[]){ "/usr/sbin/nginx", "-s", "reload", NULL });
	config_free(c);

	c = config_or_fail("[nginx]\nreload = exec:  nginx -s reload\n");
	assert_strv_equal(c->reload_command,
	                  (const char *const[]){ "nginx", "-s", "reload", NULL });
	config_free(c);
}

static void test_nginx_reload_refuses_bad_values(void **state)
{
	expect_error("[nginx]\nreload = restart\n", "test.conf:2: reload: ",
	             "\"restart\" is not a reload method (use systemd:nginx.service, "
	             "pidfile:/run/nginx.pid, exec:/usr/sbin/nginx -s reload or none)");
	expect_error("[nginx]\nreload = Systemd:nginx.service\n",
	             "test.conf:2: reload: ", "is not a reload method");
	expect_error("[nginx]\nreload = systemd:\n",
	             "test.conf:2: reload: ", "has no valid unit name");
	expect_error("[nginx]\nreload = systemd:ng/inx\n",
	             "test.conf:2: reload: ", "has no valid unit name");
	expect_error("[nginx]\nreload = pidfile:run/nginx.pid\n",
	             "test.conf:2: reload: ", "is not an absolute path");
	expect_error("[nginx]\nreload = pidfile:\n",
	             "test.conf:2: reload: ", "is not an absolute path");
	expect_error("[nginx]\nreload = exec:\n", "test.conf:2: reload: ", "has no command");
	expect_error("[nginx]\nreload = exec:nginx -s 'reload'\n",
	             "test.conf:2: reload: ", "commands run without a shell");
	expect_error("[nginx]\nreload = exec:bin/nginx -s reload\n",
	             "test.conf:2: reload: ", "runs a relative path");
}

/* Long values are cut in messages, and nothing but the first error is
 * reported. */
static void test_error_echo_is_bounded_and_first_error_wins(void **state)
{
	_cleanup_free_ char *error = NULL;
	char value[300];
	Config *c = NULL;

	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	_cleanup_free_ char *text = NULL;
	assert_true(asprintf(&text, "[keys]\nmode = %s\nclock_skew = bad\n", value) > 0);
	assert_int_equal(config_load_string(text, "t.conf", &c, &error), -EINVAL);
	assert_non_null(error);
	assert_true(strlen(error) < 200);
	assert_non_null(strstr(error, "...\" is not a key mode"));
	assert_null(strstr(error, "clock_skew"));
}

/* Prefix semantics, after django-nginx-secure-links' FileStorage: private
 * prefixes only -> those are private; public only -> all else private;
 * neither -> everything private; paths outside media_url are public. */
static void test_path_is_private_table(void **state)
{
	static const struct {
		const char *config, *path;
		bool private;
	} table[] = {
		/* neither: everything under media_url is private */
		{ "", "/media/sample1.pdf", true },
		{ "", "/media/private/sample1.pdf", true },
		{ "", "/media/", true },
		{ "", "/static/app.css", false },
		{ "", "/media", false },
		{ "", "/mediafoo/x", false },
		{ "", "/", false },
		/* private only (django's test_storage_prefixes: "{p}/sample1.pdf"
		 * hashed, "not_{p}/sample1.pdf" not) */
		{ "private_prefixes = private/", "/media/private/sample1.pdf", true },
		{ "private_prefixes = private/", "/media/not_private/sample1.pdf", false },
		{ "private_prefixes = private/", "/media/sample1.pdf", false },
		{ "private_prefixes = private/", "/media/private", false },
		{ "private_prefixes = private", "/media/private2/a.pdf", false },
		{ "private_prefixes = private", "/media/private/a.pdf", true },
		{ "private_prefixes = private/", "/other/private/a.pdf", false },
		{ "private_prefixes = a/b/, c/", "/media/a/b/x", true },
		{ "private_prefixes = a/b/, c/", "/media/a/x", false },
		{ "private_prefixes = a/b/, c/", "/media/c/d/e", true },
		{ "private_prefixes = private/", "/media/Private/a.pdf", false },
		/* public only */
		{ "public_prefixes = public/", "/media/public/sample1.pdf", false },
		{ "public_prefixes = public/", "/media/not_public/sample1.pdf", true },
		{ "public_prefixes = public/", "/media/sample1.pdf", true },
		{ "public_prefixes = public/", "/static/x", false },
		{ "public_prefixes = public thumbs", "/media/thumbs/a.png", false },
		{ "public_prefixes = public thumbs", "/media/thumbsup/a.png", true },
		/* media_url "/" covers every path */
		{ "media_url = /\nprivate_prefixes = private/", "/private/a", true },
		{ "media_url = /\nprivate_prefixes = private/", "/public/a", false },
		{ "media_url = /\n", "/anything", true },
		{ "media_url = /files\n", "/files/a", true },
		{ "media_url = /files\n", "/media/a", false },
	};

	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		_cleanup_free_ char *text = NULL;
		Config *c;
		bool p;

		assert_true(asprintf(&text, "[links]\n%s\n", table[i].config) > 0);
		c = config_or_fail(text);
		p = config_path_is_private(c, table[i].path);
		if (p != table[i].private)
			fail_msg("%s with \"%s\": got %s, expected %s", table[i].path,
			         table[i].config, p ? "private" : "public",
			         table[i].private ? "private" : "public");
		config_free(c);
	}
}

static void test_enum_names(void **state)
{
	assert_string_equal(reload_method_to_string(RELOAD_SYSTEMD), "systemd");
	assert_string_equal(reload_method_to_string(RELOAD_PIDFILE), "pidfile");
	assert_string_equal(reload_method_to_string(RELOAD_EXEC), "exec");
	assert_string_equal(reload_method_to_string(RELOAD_NONE), "none");
	assert_null(reload_method_to_string(_RELOAD_METHOD_MAX));
	assert_string_equal(key_mode_to_string(KEY_MODE_LOCAL), "local");
	assert_string_equal(key_mode_to_string(KEY_MODE_DERIVED), "derived");
	assert_null(key_mode_to_string(_KEY_MODE_MAX));
}

static void test_free_accepts_null(void **state)
{
	assert_null(config_free(NULL));
}

/* A copy owns every string: it outlives the original and frees cleanly. */
static void test_copy_is_deep(void **state)
{
	static const char text[] = "[links]\n"
	                           "private_prefixes = a/ b/\n"
	                           "algorithm = hmac-sha256\n"
	                           "[nginx]\n"
	                           "test_command = /bin/true -t\n"
	                           "reload = exec:/bin/true reload\n";
	_cleanup_free_ char *error = NULL;
	Config *c = NULL, *copy = NULL;

	assert_int_equal(config_load_string(text, "t.conf", &c, &error), 0);
	assert_int_equal(config_copy(c, &copy), 0);
	assert_ptr_not_equal(copy->media_url, c->media_url);
	assert_ptr_not_equal(copy->private_prefixes, c->private_prefixes);
	assert_ptr_not_equal(copy->private_prefixes[0], c->private_prefixes[0]);
	assert_true(config_link_format_equal(c, copy));
	config_free(c);
	assert_string_equal(copy->media_url, "/media/");
	assert_strv_equal(copy->private_prefixes, (const char *const[]){ "a/", "b/", NULL });
	assert_strv_equal(copy->test_command, (const char *const[]){ "/bin/true", "-t", NULL });
	assert_strv_equal(copy->reload_command,
	                  (const char *const[]){ "/bin/true", "reload", NULL });
	assert_null(copy->test_unit);
	assert_null(copy->master_key_file);
	assert_int_equal(copy->algorithm, LINK_ALGORITHM_HMAC_SHA256);
	config_free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_holds_documented_defaults),
		cmocka_unit_test(test_empty_and_comment_only_files_yield_defaults),
		cmocka_unit_test(test_shipped_conf_yields_exactly_the_defaults),
		cmocka_unit_test(test_shipped_conf_sets_every_documented_key),
		cmocka_unit_test(test_every_key_is_accepted_in_its_section),
		cmocka_unit_test(test_probe_defaults_to_base_url_over_loopback),
		cmocka_unit_test(test_probe_defaults_to_local_http_without_base_url),
		cmocka_unit_test(test_probe_is_off_with_no_and_by_default_with_reload_none),
		cmocka_unit_test(test_probe_with_a_path_is_refused_naming_the_fix),
		cmocka_unit_test(test_load_missing_file_names_path_and_strerror),
		cmocka_unit_test(test_load_directory_is_refused),
		cmocka_unit_test(test_load_errors_name_the_file_without_directory),
		cmocka_unit_test(test_load_resolves_symlinks_into_media_root),
		cmocka_unit_test(test_load_refuses_nul_byte_with_its_line),
		cmocka_unit_test(test_load_accepts_null_error_pointer),
		cmocka_unit_test(test_syntax_line_without_equals_is_refused),
		cmocka_unit_test(test_syntax_multiline_values_are_refused),
		cmocka_unit_test(test_syntax_section_without_bracket_is_refused),
		cmocka_unit_test(test_syntax_unknown_section_is_refused_even_when_empty),
		cmocka_unit_test(test_syntax_text_after_section_header_is_refused),
		cmocka_unit_test(test_syntax_known_key_outside_section_names_its_section),
		cmocka_unit_test(test_syntax_unknown_key_outside_section_is_refused),
		cmocka_unit_test(test_syntax_unknown_key_lists_the_section_keys),
		cmocka_unit_test(test_syntax_key_in_wrong_section_names_the_right_one),
		cmocka_unit_test(test_syntax_duplicate_key_names_both_lines),
		cmocka_unit_test(test_syntax_line_without_key_is_refused),
		cmocka_unit_test(test_syntax_empty_value_is_refused_where_not_allowed),
		cmocka_unit_test(test_syntax_empty_value_is_accepted_where_documented),
		cmocka_unit_test(test_syntax_quoted_value_is_refused),
		cmocka_unit_test(test_syntax_long_line_is_refused),
		cmocka_unit_test(test_syntax_line_just_under_limit_is_read_whole),
		cmocka_unit_test(test_syntax_comments_bom_and_crlf),
		cmocka_unit_test(test_syntax_comment_sign_without_space_is_part_of_value),
		cmocka_unit_test(test_daemon_socket),
		cmocka_unit_test(test_daemon_state_directory),
		cmocka_unit_test(test_daemon_admin_group),
		cmocka_unit_test(test_daemon_max_connections),
		cmocka_unit_test(test_daemon_idle_timeout),
		cmocka_unit_test(test_keys_mode),
		cmocka_unit_test(test_keys_master_key_file),
		cmocka_unit_test(test_keys_master_roll_keys),
		cmocka_unit_test(test_keys_durations_parse_every_unit),
		cmocka_unit_test(test_keys_durations_refuse_bad_values),
		cmocka_unit_test(test_keys_zero_rotation_and_ttls_are_refused),
		cmocka_unit_test(test_keys_zero_delay_and_skew_are_allowed),
		cmocka_unit_test(test_keys_default_ttl_longer_than_max_is_refused),
		cmocka_unit_test(test_links_expires_granularity),
		cmocka_unit_test(test_keys_activation_delay_must_be_shorter_than_rotation),
		cmocka_unit_test(test_keys_schedule_must_fit_the_key_ring),
		cmocka_unit_test(test_links_base_url),
		cmocka_unit_test(test_links_media_url),
		cmocka_unit_test(test_values_for_nginx_refuse_unsafe_bytes),
		cmocka_unit_test(test_links_prefixes_are_normalised),
		cmocka_unit_test(test_links_prefix_without_slash_warns_what_it_means),
		cmocka_unit_test(test_links_prefix_with_leading_slash_suggests_relative),
		cmocka_unit_test(test_links_prefixes_refuse_bad_paths),
		cmocka_unit_test(test_links_private_and_public_together_are_refused),
		cmocka_unit_test(test_links_param_names),
		cmocka_unit_test(test_links_param_names_must_differ),
		cmocka_unit_test(test_links_param_names_must_differ_in_more_than_case),
		cmocka_unit_test(test_links_max_url_length),
		cmocka_unit_test(test_links_bind_ip),
		cmocka_unit_test(test_links_allow_binary_paths),
		cmocka_unit_test(test_nginx_files),
		cmocka_unit_test(test_nginx_keys_and_locations_file_must_differ),
		cmocka_unit_test(test_nginx_secrets_outside_media_root),
		cmocka_unit_test(test_nginx_test_command_is_split_on_whitespace),
		cmocka_unit_test(test_nginx_test_command_systemd_unit_replaces_the_command),
		cmocka_unit_test(test_nginx_test_command_refuses_shell_syntax),
		cmocka_unit_test(test_nginx_test_command_refuses_relative_program),
		cmocka_unit_test(test_nginx_reload_methods),
		cmocka_unit_test(test_nginx_reload_refuses_bad_values),
		cmocka_unit_test(test_error_echo_is_bounded_and_first_error_wins),
		cmocka_unit_test(test_path_is_private_table),
		cmocka_unit_test(test_enum_names),
		cmocka_unit_test(test_free_accepts_null),
		cmocka_unit_test(test_copy_is_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
