/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "render.h"

/* Both snippets are built in two passes over the same code: the first only
 * counts, the second writes into a buffer of exactly that size. The keys file
 * holds every secret, so it must never pass through realloc() (which would
 * leave copies in freed heap memory): it is written once, straight into
 * sodium_malloc'd memory. */
typedef struct Out {
	char *buf; /* NULL while counting */
	size_t size;
	size_t n;
} Out;

static void out_put(Out *o, const char *s)
{
	size_t l = strlen(s);

	if (o->buf) {
		assert(o->n + l <= o->size);
		memcpy(o->buf + o->n, s, l);
	}
	o->n += l;
}

static void out_put_u32(Out *o, uint32_t v)
{
	char buf[sizeof("4294967295")];

	(void)snprintf(buf, sizeof(buf), "%" PRIu32, v);
	out_put(o, buf);
}

/* A string nginx keeps literally inside double quotes: no '"' or '\\' (which
 * would end or escape the quoting), no '$' (map values and alias are
 * interpolated), no control bytes. Empty is refused too: an empty secret in
 * the map would make a token over "<expires><uri> " valid for anyone. */
static bool secret_is_nginx_safe(const char *s)
{
	size_t n = strnlen(s, KEY_SECRET_MAX + 1);

	if (n == 0 || n > KEY_SECRET_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\' || *p == '$')
			return false;
	return true;
}

/* A path written unquoted into nginx's configuration (location, alias,
 * include): absolute, and nothing that ends a token, starts a comment or a
 * block, escapes, or is interpolated. Raw UTF-8 is fine. */
static bool path_is_nginx_safe(const char *s)
{
	if (!s || s[0] != '/')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("\"'\\${};#", *p))
			return false;
	return true;
}

/* What follows $arg_ in nginx: a variable name. */
static bool param_is_nginx_safe(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Prefixes are relative to media_url; tolerate a leading '/' all the same so
 * that "private/" and "/private/" name the same location, never "/media//". */
static const char *prefix_relative(const char *prefix)
{
	while (*prefix == '/')
		prefix++;
	return prefix;
}

static void render_keys(Out *o, const KeyRing *r, const Config *c, const Key *def)
{
	out_put(o, "# written by securelinkd; do not edit\n");
	out_put(o, "map $arg_");
	out_put(o, c->key_param);
	out_put(o, " $securelink_secret {\n");
	/* Links without a kid, or with one nginx does not know, are checked
	 * against a real key: never an empty or guessable default. */
	out_put(o, "\tdefault \"");
	out_put(o, def->secret);
	out_put(o, "\";\n");
	/* Every key of the ring: published ones must reach nginx before they
	 * sign, retired and legacy ones while their links may live. */
	for (size_t i = 0; i < r->n_keys; i++) {
		out_put(o, "\t\"");
		out_put_u32(o, r->keys[i].kid);
		out_put(o, "\" \"");
		out_put(o, r->keys[i].secret);
		out_put(o, "\";\n");
	}
	out_put(o, "}\n");
}

int render_keys_file(const KeyRing *r, const Config *c, char **ret, size_t *ret_size)
{
	Out o = {};
	const Key *def;

	assert(r);
	assert(c);
	assert(ret);
	assert(ret_size);

	def = keyring_default(r);
	if (r->n_keys == 0 || !def)
		return -ENOKEY;

	if (!param_is_nginx_safe(c->key_param))
		return -EINVAL;
	/* The keyring refuses such secrets already; a key that slipped through
	 * must still never be written where it would break or weaken nginx. */
	for (size_t i = 0; i < r->n_keys; i++)
		if (!r->keys[i].secret || !secret_is_nginx_safe(r->keys[i].secret))
			return -EINVAL;
	if (!secret_is_nginx_safe(def->secret))
		return -EINVAL;

	render_keys(&o, r, c, def);

	o.size = o.n;
	o.n = 0;
	o.buf = sodium_malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_keys(&o, r, c, def);
	assert(o.n == o.size);
	o.buf[o.n] = '\0';

	*ret = o.buf;
	*ret_size = o.n;
	return 0;
}

/* One location block. secured: checked by secure_link with the keys map;
 * otherwise served plainly. location and alias both end in '/', so the alias
 * never lets "/media/privateX" reach outside the directory. */
static void render_location(Out *o, const Config *c, const char *prefix, bool secured)
{
	const char *rel = prefix_relative(prefix);

	out_put(o, "\nlocation ");
	/* ^~: a regular-expression location elsewhere in the server (say
	 * "location ~ \.pdf$") must not take a private file away from the
	 * secure_link check. Public locations leave regexes their say. */
	if (secured)
		out_put(o, "^~ ");
	out_put(o, c->media_url);
	out_put(o, rel);
	out_put(o, " {\n");
	if (secured) {
		out_put(o, "\tsecure_link $arg_");
		out_put(o, c->token_param);
		out_put(o, ",$arg_");
		out_put(o, c->expires_param);
		out_put(o, ";\n");
		/* $uri is the decoded path: what securelinkd hashes. */
		out_put(o, "\tsecure_link_md5 \"$secure_link_expires$uri");
		if (c->bind_ip)
			out_put(o, "$remote_addr");
		out_put(o, " $securelink_secret\";\n");
		/* "" is a bad or missing token, "0" a good but expired one. */
		out_put(o, "\tif ($secure_link = \"\")  { return 403; }\n");
		out_put(o, "\tif ($secure_link = \"0\") { return 410; }\n");
	}
	out_put(o, "\talias ");
	out_put(o, c->media_root);
	out_put(o, rel);
	out_put(o, ";\n}\n");
}

static bool prefix_seen_before(char *const *l, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (streq(prefix_relative(l[j]), prefix_relative(l[i])))
			return true;
	return false;
}

static void render_locations(Out *o, const Config *c)
{
	bool has_private = c->private_prefixes && c->private_prefixes[0];
	bool has_public = c->public_prefixes && c->public_prefixes[0];

	out_put(o, "# written by securelinkd; do not edit\n");
	out_put(o, "# Locations of ");
	out_put(o, c->media_url);
	out_put(o, "; the secrets are in the keys file, in http {}.\n");

	/* The semantics of config_path_is_private(): only private prefixes ->
	 * those are private, the rest of media_url is not ours; only public
	 * ones -> all of media_url is private except those (the longer public
	 * prefix wins nginx's longest-match); neither -> all of it. */
	if (has_private) {
		for (size_t i = 0; c->private_prefixes[i]; i++)
			if (!prefix_seen_before(c->private_prefixes, i))
				render_location(o, c, c->private_prefixes[i], true);
		return;
	}

	render_location(o, c, "", true);
	if (has_public)
		for (size_t i = 0; c->public_prefixes[i]; i++) {
			/* A public prefix equal to media_url itself would be a
			 * duplicate location; the secured one stands. */
			if (*prefix_relative(c->public_prefixes[i]) == '\0' ||
			    prefix_seen_before(c->public_prefixes, i))
				continue;
			render_location(o, c, c->public_prefixes[i], false);
		}
}

static bool prefixes_are_nginx_safe(char *const *l)
{
	if (!l)
		return true;
	for (size_t i = 0; l[i]; i++) {
		const char *rel = prefix_relative(l[i]);

		/* Checked as the absolute path it becomes; a prefix must end
		 * with '/' like the location and alias it is appended to. */
		if (*rel && rel[strlen(rel) - 1] != '/')
			return false;
		for (const unsigned char *p = (const unsigned char *)rel; *p; p++)
			if (*p <= ' ' || *p == 0x7f || strchr("\"'\\${};#", *p))
				return false;
	}
	return true;
}

int render_locations_file(const Config *c, char **ret, size_t *ret_size)
{
	Out o = {};
	size_t ml, rl;

	assert(c);
	assert(ret);
	assert(ret_size);

	if (!path_is_nginx_safe(c->media_url) || !path_is_nginx_safe(c->media_root) ||
	    !param_is_nginx_safe(c->token_param) || !param_is_nginx_safe(c->expires_param) ||
	    !prefixes_are_nginx_safe(c->private_prefixes) ||
	    !prefixes_are_nginx_safe(c->public_prefixes))
		return -EINVAL;
	/* A location without its trailing slash over an alias with one lets
	 * "/media../" climb out of media_root (the alias off-by-slash). */
	ml = strlen(c->media_url);
	rl = strlen(c->media_root);
	if (c->media_url[ml - 1] != '/' || c->media_root[rl - 1] != '/')
		return -EINVAL;

	render_locations(&o, c);

	o.size = o.n;
	o.n = 0;
	o.buf = malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_locations(&o, c);
	assert(o.n == o.size);
	o.buf[o.n] = '\0';

	*ret = o.buf;
	*ret_size = o.n;
	return 0;
}

static void render_includes(Out *o, const Config *c)
{
	out_put(o, "# in nginx's http {} block (the keys map, holds the secrets):\n");
	out_put(o, "include ");
	out_put(o, c->keys_file);
	out_put(o, ";\n");
	out_put(o, "# in the server {} block that serves ");
	out_put(o, c->media_url);
	out_put(o, " (the locations, no secret):\n");
	out_put(o, "include ");
	out_put(o, c->locations_file);
	out_put(o, ";\n");
}

int render_include_lines(const Config *c, char **ret)
{
	Out o = {};

	assert(c);
	assert(ret);

	if (!path_is_nginx_safe(c->keys_file) || !path_is_nginx_safe(c->locations_file) ||
	    !path_is_nginx_safe(c->media_url))
		return -EINVAL;

	render_includes(&o, c);
	o.size = o.n;
	o.n = 0;
	o.buf = malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_includes(&o, c);
	assert(o.n == o.size);
	o.buf[o.n] = '\0';

	*ret = o.buf;
	return 0;
}
