/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "nginx-njs.h"
#include "util.h"

#define CONF_MAX (1024 * 1024)

/* The conf path test_command names ("-c FILE", "-p PREFIX"), malloc'd. */
static char *main_conf_path(const Config *c)
{
	const char *conf = NULL, *prefix = NULL;
	char *ret = NULL;

	for (size_t i = 0; c->test_command && c->test_command[i]; i++) {
		if (streq(c->test_command[i], "-c") && c->test_command[i + 1])
			conf = c->test_command[i + 1];
		else if (streq(c->test_command[i], "-p") && c->test_command[i + 1])
			prefix = c->test_command[i + 1];
	}
	if (!conf)
		return strdup(NGINX_NJS_DEFAULT_CONF);
	if (conf[0] == '/' || !prefix)
		return strdup(conf);
	if (asprintf(&ret, "%s%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/", conf) <
	    0)
		return NULL;
	return ret;
}

/* The next word of nginx's syntax at *p: a run up to white space, ';', '{'
 * or '}' (each of those a word of its own), quotes taken off; comments
 * skipped. Returns its length, 0 at the end. */
static size_t next_word(const char **p, char *buf, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (*s != '#')
			break;
		s += strcspn(s, "\n");
	}
	if (!*s) {
		*p = s;
		return 0;
	}
	if (strchr(";{}", *s)) {
		buf[n++] = *s++;
	} else if (*s == '"' || *s == '\'') {
		char q = *s++;

		while (*s && *s != q) {
			if (n + 1 < size)
				buf[n++] = *s;
			s++;
		}
		if (*s)
			s++;
	} else
		while (*s && !strchr(" \t\r\n;{}#", *s)) {
			if (n + 1 < size)
				buf[n++] = *s;
			s++;
		}
	buf[n] = '\0';
	*p = s;
	return n ? n : 1;
}

/* Whether path's top level (outside every block) has "load_module <...>/
 * ngx_http_js_module.so" of a file that exists; includes there are
 * followed once (depth). */
static bool loads_njs(const char *path, unsigned depth)
{
	_cleanup_free_ char *text = NULL, *dir_copy = NULL;
	char word[4096], last[4096] = "";
	const char *p;
	unsigned level = 0;
	size_t size = 0, argc = 0;
	bool found = false;

	if (read_file(path, CONF_MAX, &text, &size) < 0)
		return false;
	dir_copy = strdup(path);
	if (!dir_copy)
		return false;
	p = text;
	while (!found && next_word(&p, word, sizeof(word)) > 0) {
		if (streq(word, "{")) {
			level++;
			argc = 0;
		} else if (streq(word, "}")) {
			if (level > 0)
				level--;
			argc = 0;
		} else if (streq(word, ";")) {
			argc = 0;
		} else if (level == 0 && argc++ == 1) {
			/* The first argument of a top-level directive. */
			if (streq(last, "load_module")) {
				const char *base =
				    strrchr(word, '/') ? strrchr(word, '/') + 1 : word;

				found = streq(base, NGINX_NJS_MODULE) && access(word, R_OK) == 0;
			} else if (streq(last, "include") && depth > 0) {
				_cleanup_free_ char *pattern = NULL;
				glob_t g = {};

				if (word[0] != '/' &&
				    asprintf(&pattern, "%s/%s", dirname(dir_copy), word) < 0)
					return false;
				if (glob(pattern ? pattern : word, 0, NULL, &g) == 0)
					for (size_t i = 0; i < g.gl_pathc && !found; i++)
						found = loads_njs(g.gl_pathv[i], depth - 1);
				globfree(&g);
				free(dir_copy);
				dir_copy = strdup(path);
				if (!dir_copy)
					return false;
			}
		}
		if (argc == 1)
			snprintf(last, sizeof(last), "%s", word);
	}
	return found;
}

int nginx_njs_check(const Config *c, char **ret_error)
{
	_cleanup_free_ char *conf = NULL;

	if (c->algorithm != LINK_ALGORITHM_HMAC_SHA256)
		return 0;
	conf = main_conf_path(c);
	if (!conf)
		return -ENOMEM;
	if (loads_njs(conf, 2))
		return 0;
	if (asprintf(ret_error,
	             "[links] algorithm = hmac-sha256 needs nginx's njs module, which %s does not "
	             "load (install " NGINX_NJS_PACKAGE
	             ", whose load_module line goes into /etc/nginx/modules-enabled/, or add "
	             "load_module .../" NGINX_NJS_MODULE "; or set algorithm = md5)",
	             conf) < 0)
		*ret_error = NULL;
	return -ENOPKG;
}
