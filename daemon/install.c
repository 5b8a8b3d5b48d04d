/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "fileio.h"
#include "install.h"
#include "keyring.h"
#include "nginxconf.h"
#include "util.h"

#define KEYS_COMMENT     "# written by securelinkd; do not edit"
#define MAP_VALUE        " $securelink_secret {"
#define GRANT_MAP_HEADER "map $securelink_gk $securelink_grant_secret {\n"
/* A keys file: a few header lines and one line per key of a full ring. */
#define KEYS_TEXT_MAX (64 * 1024)
#define LOCATIONS_MAX (1024 * 1024)
#define CONFIG_MAX    (1024 * 1024)
/* Beside the installed locations file: the configuration it was rendered
 * from, so that the transition of a SIGHUP's link format can be checked. */
#define INSTALLED_CONFIG "securelinkd.conf.installed"

static int install_error(char **ret_error, int error, const char *format, ...) _printf_(3, 4);
static int install_error(char **ret_error, int error, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	if (vasprintf(ret_error, format, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return error;
}

int install_staged_paths(const Config *c, char **ret_keys, char **ret_locations)
{
	if (asprintf(ret_keys, "%s/nginx/keys.conf", c->state_directory) < 0)
		return -ENOMEM;
	if (asprintf(ret_locations, "%s/nginx/locations.conf", c->state_directory) < 0) {
		free(*ret_keys);
		*ret_keys = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* "$arg_NAME" at *p, NAME a variable name; advances *p past it. */
static bool take_arg(const char **p, const char *end)
{
	const char *s = *p, *name;
	char buf[64];
	size_t n;

	if ((size_t)(end - s) < STRLEN("$arg_") || memcmp(s, "$arg_", STRLEN("$arg_")) != 0)
		return false;
	name = s + STRLEN("$arg_");
	n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
	if (n == 0 || n >= sizeof(buf) || name + n > end)
		return false;
	memcpy(buf, name, n);
	buf[n] = '\0';
	if (!nginx_param_is_safe(buf))
		return false;
	*p = name + n;
	return true;
}

/* `"SECRET";` at s (the line's rest, up to end): a literal nginx keeps. */
static bool is_quoted_secret_line_end(const char *s, const char *end)
{
	const char *close;

	if (s >= end || *s != '"')
		return false;
	close = memchr(s + 1, '"', (size_t)(end - s - 1));
	if (!close || !key_secret_is_nginx_safe(s + 1, (size_t)(close - s - 1)))
		return false;
	return end - close == 2 && close[1] == ';';
}

/* `\t"KID" "SECRET";` with KID a decimal u32 without leading zeros. */
static bool is_kid_line(const char *s, const char *end)
{
	size_t digits;

	if (end - s < 3 || s[0] != '\t' || s[1] != '"')
		return false;
	s += 2;
	digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 10 || (digits > 1 && s[0] == '0') || s + digits + 2 > end ||
	    s[digits] != '"' || s[digits + 1] != ' ')
		return false;
	if (digits == 10 && strncmp(s, "4294967295", 10) > 0)
		return false;
	return is_quoted_secret_line_end(s + digits + 2, end);
}

int install_check_keys(const char *text, size_t size, size_t *ret_maps_offset, char **ret_error)
{
	const char *p = text, *end = text + size, *body = NULL;
	unsigned line = 0;
	bool have_default = false, closed = false;
	size_t body_size, rest;

	if (size == 0 || text[size - 1] != '\n' || memchr(text, '\0', size))
		return install_error(
		    ret_error, -EBADMSG,
		    "the keys file is empty, holds a NUL byte or does not end in a "
		    "newline");
	while (p < end && !closed) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		bool ok;

		line++;
		if (line == 1)
			ok = (size_t)(eol - p) == STRLEN(KEYS_COMMENT) &&
			     memcmp(p, KEYS_COMMENT, STRLEN(KEYS_COMMENT)) == 0;
		else if (line == 2) {
			const char *s = p + STRLEN("map ");

			ok = eol - p > (ptrdiff_t)STRLEN("map ") && memcmp(p, "map ", 4) == 0 &&
			     take_arg(&s, eol);
			/* While key_param changes, the map reads both names. */
			if (ok && s < eol && *s == '$')
				ok = take_arg(&s, eol);
			ok = ok && (size_t)(eol - s) == STRLEN(MAP_VALUE) &&
			     memcmp(s, MAP_VALUE, STRLEN(MAP_VALUE)) == 0;
			body = eol + 1;
		} else if (line == 3)
			ok = eol - p > (ptrdiff_t)STRLEN("\tdefault ") &&
			     memcmp(p, "\tdefault ", STRLEN("\tdefault ")) == 0 &&
			     is_quoted_secret_line_end(p + STRLEN("\tdefault "), eol);
		else if (eol - p == 1 && *p == '}')
			ok = closed = true;
		else
			ok = is_kid_line(p, eol);
		have_default |= line == 3 && ok;
		if (!ok)
			return install_error(
			    ret_error, -EBADMSG,
			    "line %u of the keys file is not what securelinkd writes "
			    "(one map of kids to literal secrets)",
			    line);
		p = eol + 1;
	}
	if (!closed || !have_default)
		return install_error(ret_error, -EBADMSG,
		                     "the keys file is not one complete map with a default");

	/* The grant map: the same entries (a copy of the body just checked),
	 * then the maps without secrets, exactly as root renders them. */
	body_size = (size_t)(p - body);
	rest = (size_t)(end - p);
	if (rest < STRLEN(GRANT_MAP_HEADER) + body_size ||
	    memcmp(p, GRANT_MAP_HEADER, STRLEN(GRANT_MAP_HEADER)) != 0 ||
	    memcmp(p + STRLEN(GRANT_MAP_HEADER), body, body_size) != 0)
		return install_error(ret_error, -EBADMSG,
		                     "the keys file's grant map (after line %u) is not the same "
		                     "keys as its first map",
		                     line);
	*ret_maps_offset = (size_t)(p - text) + STRLEN(GRANT_MAP_HEADER) + body_size;
	return 0;
}

/* Reads a staged file that must be a regular file of securelinkd's; a
 * symbolic link is never followed into a file of root's. */
static int read_staged(const char *path, size_t max, char **ret, size_t *ret_size, char **ret_error)
{
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return install_error(ret_error, -errno,
		                     "cannot read %s: %s (is securelinkd running?)", path,
		                     strerror(errno));
	if (!S_ISREG(st.st_mode))
		return install_error(ret_error, -EBADFD, "%s is not a regular file: not installed",
		                     path);
	r = read_file(path, max, ret, ret_size);
	if (r < 0)
		return install_error(ret_error, r, "cannot read %s: %s", path, strerror(-r));
	return 0;
}

static bool same_text(const char *a, size_t a_size, const char *b, size_t b_size)
{
	return a && b && a_size == b_size && memcmp(a, b, a_size) == 0;
}

/* Whether the keys file's maps without secrets (text) are what c, the
 * configuration of the last install, or the transition between the two
 * renders (the link format's parameters may change while the locations do
 * not). */
static bool grant_maps_match(const Config *c, const Config *installed, const char *text,
                             size_t size)
{
	const Config *pairs[][2] = { { c, c }, { installed, installed }, { installed, c } };

	/* Whichever algorithms nginx checks: after a switch, the previous one
	 * too for a while (securelinkd's state, not the configuration's). */
	for (size_t i = 0; i < ELEMENTSOF(pairs); i++)
		for (unsigned algs = 1; algs < LINK_ALGORITHM_BIT(_LINK_ALGORITHM_MAX); algs++) {
			_cleanup_free_ char *maps = NULL;
			size_t maps_size = 0;

			if (!pairs[i][0])
				continue;
			if (render_grant_maps_algs(pairs[i][0], pairs[i][1], algs, &maps,
			                           &maps_size) >= 0 &&
			    same_text(text, size, maps, maps_size))
				return true;
		}
	return false;
}

/* Which rendering the staged locations file is: 1 the configuration's own,
 * 2 the last install's (securelinkd not yet reloaded after an edit), 3 the
 * transition between them; 0 none. */
static int locations_match(const Config *c, const Config *installed, const char *staged,
                           size_t staged_size)
{
	const Config *pairs[][2] = { { c, c }, { installed, installed }, { installed, c } };

	/* As grant_maps_match(): for whichever algorithms nginx checks. */
	for (size_t i = 0; i < ELEMENTSOF(pairs); i++)
		for (unsigned algs = 1; algs < LINK_ALGORITHM_BIT(_LINK_ALGORITHM_MAX); algs++) {
			_cleanup_free_ char *text = NULL;
			size_t size = 0;

			if (!pairs[i][0])
				continue;
			if (render_locations_file_algs(pairs[i][0], pairs[i][1], algs, &text,
			                               &size) >= 0 &&
			    same_text(staged, staged_size, text, size))
				return (int)i + 1;
		}
	return 0;
}

/* securelink.js, when the keys file imports it: staged by securelinkd, and
 * installed only when it is exactly the text securelink renders (fixed, no
 * secret, nothing of the configuration). */
static int install_njs(const Config *c, const char *keys, size_t keys_size, char **ret_error)
{
	_cleanup_free_ char *staged = NULL, *text = NULL, *path = NULL;
	const char *want = render_njs_text();
	size_t size = 0;
	int r;

	if (!memmem(keys, keys_size, "\njs_import ", STRLEN("\njs_import ")))
		return 0;
	if (asprintf(&staged, "%s/nginx/" RENDER_NJS_FILE, c->state_directory) < 0)
		return -ENOMEM;
	r = render_njs_path(c, &path);
	if (r < 0)
		return r;
	r = read_staged(staged, LOCATIONS_MAX, &text, &size, ret_error);
	if (r < 0)
		return r;
	if (!same_text(text, size, want, strlen(want)))
		return install_error(ret_error, -EBADMSG,
		                     "%s is not what securelink renders: not installed (systemctl "
		                     "reload securelinkd writes it again)",
		                     staged);
	r = write_file_atomic(path, text, size, 0644, NULL);
	if (r < 0)
		return install_error(ret_error, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

int install_snippets(const Config *c, const char *config_path, char **ret_error)
{
	_cleanup_free_ char *staged_keys = NULL, *staged_locations = NULL, *locations = NULL,
	                    *config_text = NULL, *dir_copy = NULL, *installed_path = NULL,
	                    *installed_text = NULL, *error = NULL;
	char *keys = NULL;
	size_t keys_size = 0, locations_size = 0, config_size = 0, installed_size = 0,
	       maps_offset = 0;
	Config *installed = NULL;
	int r, match;

	r = install_staged_paths(c, &staged_keys, &staged_locations);
	if (r < 0)
		return r;
	dir_copy = strdup(c->locations_file);
	if (!dir_copy || asprintf(&installed_path, "%s/" INSTALLED_CONFIG, dirname(dir_copy)) < 0)
		return -ENOMEM;

	r = read_file(config_path, CONFIG_MAX, &config_text, &config_size);
	if (r < 0)
		return install_error(ret_error, r, "cannot read %s: %s", config_path, strerror(-r));
	/* The last install's configuration is root's own copy; a broken one
	 * only means no transition can be checked. */
	if (read_file(installed_path, CONFIG_MAX, &installed_text, &installed_size) >= 0 &&
	    config_load_string(installed_text, installed_path, &installed, &error) < 0)
		installed = NULL;

	r = read_staged(staged_locations, LOCATIONS_MAX, &locations, &locations_size, ret_error);
	if (r < 0)
		goto out;
	match = locations_match(c, installed, locations, locations_size);
	if (match == 0) {
		r = install_error(ret_error, -EBADMSG,
		                  "%s is not what %s renders: not installed (if you edited it, "
		                  "systemctl reload securelinkd)",
		                  staged_locations, config_path);
		goto out;
	}

	r = read_staged(staged_keys, KEYS_TEXT_MAX, &keys, &keys_size, ret_error);
	if (r < 0)
		goto out;
	r = install_check_keys(keys, keys_size, &maps_offset, ret_error);
	if (r < 0)
		goto out;
	if (!grant_maps_match(c, installed, keys + maps_offset, keys_size - maps_offset)) {
		r = install_error(ret_error, -EBADMSG,
		                  "the maps after the keys in %s are not what %s renders: not "
		                  "installed (if you edited it, systemctl reload securelinkd)",
		                  staged_keys, config_path);
		goto out;
	}

	/* The module before the keys file that imports it. */
	r = install_njs(c, keys, keys_size, ret_error);
	if (r < 0)
		goto out;
	/* Keys first: the locations of a new format name the keys' variables
	 * only once both are in place, and nginx reads both at its next test. */
	r = write_file_atomic(c->keys_file, keys, keys_size, 0600, NULL);
	if (r < 0) {
		r = install_error(ret_error, r, "cannot write %s: %s", c->keys_file, strerror(-r));
		goto out;
	}
	r = write_file_atomic(c->locations_file, locations, locations_size, 0644, NULL);
	if (r < 0) {
		r = install_error(ret_error, r, "cannot write %s: %s", c->locations_file,
		                  strerror(-r));
		goto out;
	}
	if (match == 1 && !same_text(config_text, config_size, installed_text, installed_size)) {
		r = write_file_atomic(installed_path, config_text, config_size, 0644, NULL);
		if (r < 0) {
			r = install_error(ret_error, r, "cannot write %s: %s", installed_path,
			                  strerror(-r));
			goto out;
		}
	}
	r = 0;
out:
	if (keys) {
		sodium_memzero(keys, keys_size);
		free(keys);
	}
	config_free(installed);
	return r;
}
