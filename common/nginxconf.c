/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "nginxconf.h"

/* A path written unquoted into nginx's configuration (location, alias,
 * include): absolute, and nothing that ends a token, starts a comment or a
 * block, escapes, or is interpolated. Raw UTF-8 is fine. */
bool nginx_path_is_safe(const char *s)
{
	if (!s || s[0] != '/')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("\"'\\${};#", *p))
			return false;
	return true;
}

/* What follows $arg_ in nginx: a variable name. */
bool nginx_param_is_safe(const char *s)
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

/* "$arg_<name>", and while a link format changes, the old name's argument
 * after it: a link carries one of the two, and the concatenation is then
 * that one's value. A link with both gets their concatenation, which no
 * token or expiry matches: refused, never admitted. */
static void render_arg(Out *o, const char *name, const char *old_name)
{
	out_put(o, "$arg_");
	out_put(o, name);
	if (!streq(name, old_name)) {
		out_put(o, "$arg_");
		out_put(o, old_name);
	}
}

static bool algs_hmac(unsigned algs)
{
	return algs & LINK_ALGORITHM_BIT(LINK_ALGORITHM_HMAC_SHA256);
}

/* What both configurations' algorithms are (a transition checks both). */
static unsigned algs_of(const Config *old, const Config *c)
{
	return LINK_ALGORITHM_BIT(old->algorithm) | LINK_ALGORITHM_BIT(c->algorithm);
}

/* "" is a bad or missing token, "0" a good but expired one: $secure_link's
 * answers, and those of the verdict maps that pick it or securelink.js's
 * (render_hmac_maps()) while nginx checks HMAC links. */
static void render_checks(Out *o, const char *indent, const char *verdict)
{
	out_put(o, indent);
	out_put(o, "if (");
	out_put(o, verdict);
	out_put(o, " = \"\")  { return 403; }\n");
	out_put(o, indent);
	out_put(o, "if (");
	out_put(o, verdict);
	out_put(o, " = \"0\") { return 410; }\n");
}

/* A token in nginx's regexes: 22 base64url digits (md5), or 43 too while
 * nginx checks HMAC links. */
static void render_token_regex(Out *o, unsigned algs)
{
	out_put(o,
	        algs_hmac(algs) ? "[A-Za-z0-9_-]{22}(?:[A-Za-z0-9_-]{21})?" : "[A-Za-z0-9_-]{22}");
}

/* media_url as a literal inside a PCRE: \Q...\E, safe because
 * nginx_path_is_safe() admits no backslash. */
static void render_media_regex(Out *o, const Config *c)
{
	out_put(o, "\\Q");
	out_put(o, c->media_url);
	out_put(o, "\\E");
}

/* A grant's directory in nginx's regexes: "<depth>" + what follows it + the
 * first <depth> whole segments after that, which $securelink_gd captures.
 * One branch-reset group of depths 0 to GRANT_DEPTH_MAX (every alternative
 * sets the same captures), so PCRE picks the depth in one match, where a
 * map of one regex per depth ran one match per depth up to the one taken.
 * Neither another number ("03", "17") nor a path shallower than its depth
 * matches. In the path form the depth is a segment of its own; in the
 * cookie's match it is followed by the token, the ';' and $uri, which
 * begins with media_url. */
static void render_depth_regex(Out *o, const Config *c, unsigned algs, bool cookie)
{
	char repeat[sizeof("(?:[^/]+/){99}")];

	out_put(o, "(?|");
	for (unsigned d = 0; d <= GRANT_DEPTH_MAX; d++) {
		if (d > 0)
			out_put(o, "|");
		out_put_u32(o, d);
		if (cookie) {
			out_put(o, "\\.(?<securelink_gt>");
			render_token_regex(o, algs);
			out_put(o, ");");
			render_media_regex(o, c);
		} else
			out_put(o, "/");
		out_put(o, "(?<securelink_gd>");
		if (d > 0) {
			(void)snprintf(repeat, sizeof(repeat), "(?:[^/]+/){%u}", d);
			out_put(o, repeat);
		}
		out_put(o, ")");
	}
	out_put(o, ")");
}

/* Directory grants, path form (DESIGN.md, "Directory grants"):
 * media_url + "_grant/<kid>/<expires>/<token>/<depth>/<dir><rest>". One
 * match of the location's regex takes every field and cuts the first
 * <depth> segments below them as the signed directory; what is served is
 * that directory and the rest of the very same path, so the file always
 * lies inside the directory hashed. The capture names are those the keys
 * file's cookie maps declare too (render_grant_maps()), so the keys file
 * never reads a variable only this file defines. ^~ keeps regex locations
 * of the site away; anything not of this shape is refused. */
static void render_grant_location(Out *o, const Config *c, unsigned algs)
{
	out_put(o, "\n# Directory grants (path form): ");
	out_put(o, c->media_url);
	out_put(o, GRANT_PATH_SEGMENT "/<kid>/<expires>/<token>/<depth>/<directory>/...\n");
	out_put(o, "location ^~ ");
	out_put(o, c->media_url);
	out_put(o, GRANT_PATH_SEGMENT "/ {\n");
	out_put(o, "\tlocation ~ \"^");
	render_media_regex(o, c);
	out_put(o, GRANT_PATH_SEGMENT
	        "/(?<securelink_gk>[0-9]+)/(?<securelink_ge>[0-9]+)/(?<securelink_gt>");
	render_token_regex(o, algs);
	out_put(o, ")/");
	render_depth_regex(o, c, algs, false);
	out_put(o, "(?<securelink_gr>.*)$\" {\n");
	out_put(o, "\t\tsecure_link $securelink_gt,$securelink_ge;\n");
	out_put(o, "\t\tsecure_link_md5 \"${secure_link_expires}grant:");
	out_put(o, c->media_url);
	out_put(o, "$securelink_gd");
	if (c->bind_ip)
		out_put(o, "$remote_addr");
	out_put(o, " $securelink_grant_secret\";\n");
	render_checks(o, "\t\t", algs_hmac(algs) ? "$securelink_grant_verdict" : "$secure_link");
	out_put(o, "\t\talias ");
	out_put(o, c->media_root);
	out_put(o, "$securelink_gd$securelink_gr;\n\t}\n\treturn 403;\n}\n");
}

/* One location block. secured: checked by secure_link with the keys map;
 * otherwise served plainly. location and alias both end in '/', so the alias
 * never lets "/media/privateX" reach outside the directory. Which
 * parameters a secured location reads is the keys file's business
 * (render_grant_maps()): while the link format changes, both names. */
static void render_location(Out *o, const Config *c, unsigned algs, const char *prefix,
                            bool secured)
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
		/* The keys file's maps pick a file link's token parameter
		 * when the request has one, else the grant cookie's fields
		 * (render_grant_maps()). $uri is the decoded path: what
		 * securelinkd hashes. */
		out_put(o, "\tsecure_link $securelink_link_pair;\n");
		out_put(o, "\tsecure_link_md5 $securelink_link_md5;\n");
		render_checks(o, "\t", algs_hmac(algs) ? "$securelink_verdict" : "$secure_link");
	} else
		/* A server with "merge_slashes off" keeps "//" in $uri:
		 * "/media//private/x" misses every private prefix, lands
		 * here, and the alias opens media_root/private/x all the
		 * same. A plain location serves no path with "//". */
		out_put(o, "\tlocation ~ // { return 403; }\n");
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

/* Whether c's locations file serves media_url itself plainly: with private
 * prefixes and serve_public, unless a private prefix is media_url itself. */
static bool serves_public_rest(const Config *c)
{
	if (!c->serve_public || !c->private_prefixes || !c->private_prefixes[0])
		return false;
	for (size_t i = 0; c->private_prefixes[i]; i++)
		if (*prefix_relative(c->private_prefixes[i]) == '\0')
			return false;
	return true;
}

static void render_locations(Out *o, const Config *c, unsigned algs)
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
				render_location(o, c, algs, c->private_prefixes[i], true);
		render_grant_location(o, c, algs);
		/* The rest of media_url is public: SIGN answers it unsigned, so
		 * it is served here too, as django-nginx-secure-links' own
		 * block does. A plain prefix location: the private ones (^~,
		 * longer) still win for their paths. */
		if (serves_public_rest(c))
			render_location(o, c, algs, "", false);
		return;
	}

	render_location(o, c, algs, "", true);
	render_grant_location(o, c, algs);
	if (has_public)
		for (size_t i = 0; c->public_prefixes[i]; i++) {
			/* A public prefix equal to media_url itself would be a
			 * duplicate location; the secured one stands. */
			if (*prefix_relative(c->public_prefixes[i]) == '\0' ||
			    prefix_seen_before(c->public_prefixes, i))
				continue;
			render_location(o, c, algs, c->public_prefixes[i], false);
		}
}

/* config_path_is_private() for the directory media_url + rel. */
static bool prefix_is_private(const Config *c, const char *rel)
{
	if (c->private_prefixes && c->private_prefixes[0]) {
		for (char *const *i = c->private_prefixes; *i; i++)
			if (strncmp(rel, prefix_relative(*i), strlen(prefix_relative(*i))) == 0)
				return true;
		return false;
	}
	for (char *const *i = c->public_prefixes; i && *i; i++)
		if (strncmp(rel, prefix_relative(*i), strlen(prefix_relative(*i))) == 0)
			return false;
	return true;
}

/* Appends the prefixes whose locations c's locations file holds ("" for
 * media_url itself) to list at n; returns the new n. */
static size_t rendered_prefixes(const Config *c, const char **list, size_t n)
{
	if (c->private_prefixes && c->private_prefixes[0]) {
		for (size_t i = 0; c->private_prefixes[i]; i++)
			list[n++] = prefix_relative(c->private_prefixes[i]);
		if (serves_public_rest(c))
			list[n++] = "";
		return n;
	}
	list[n++] = "";
	for (size_t i = 0; c->public_prefixes && c->public_prefixes[i]; i++)
		list[n++] = prefix_relative(c->public_prefixes[i]);
	return n;
}

static bool renders_prefix(const Config *c, const char *rel)
{
	if (c->private_prefixes && c->private_prefixes[0]) {
		for (size_t i = 0; c->private_prefixes[i]; i++)
			if (streq(prefix_relative(c->private_prefixes[i]), rel))
				return true;
		return !*rel && serves_public_rest(c);
	}
	if (!*rel)
		return true;
	for (size_t i = 0; c->public_prefixes && c->public_prefixes[i]; i++)
		if (streq(prefix_relative(c->public_prefixes[i]), rel))
			return true;
	return false;
}

/* While the link format changes from old to c: a link of either format
 * passes. Parameter names are checked as either name (render_grant_maps()); a
 * path is checked only where both formats sign it, served plainly where
 * one of them answers it unsigned, so a prefix that turns private stays
 * public until links for it are signed, and one that turns public is
 * public at once. Every location of either file is there, except public
 * ones of c alone (the site serves those as before). */
static void render_locations_transition(Out *o, const Config *old, const Config *c, unsigned algs,
                                        const char **list, size_t n)
{
	out_put(o, "# written by securelinkd; do not edit\n");
	out_put(o, "# Locations of ");
	out_put(o, c->media_url);
	out_put(o, " while the link format changes; the secrets are in the keys file.\n");
	for (size_t i = 0; i < n; i++) {
		bool secured = prefix_is_private(old, list[i]) && prefix_is_private(c, list[i]);
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = streq(list[j], list[i]);
		if (seen || (!secured && !renders_prefix(old, list[i])))
			continue;
		render_location(o, c, algs, list[i], secured);
	}
	/* Both configurations sign grants under the same media_url (a
	 * transition needs it unchanged). */
	render_grant_location(o, c, algs);
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
	return render_locations_file_algs(c, c, LINK_ALGORITHM_BIT(c->algorithm), ret, ret_size);
}

static int render_locations_file_one(const Config *c, unsigned algs, char **ret, size_t *ret_size)
{
	Out o = {};
	size_t ml, rl;

	assert(c);
	assert(ret);
	assert(ret_size);

	if (!nginx_path_is_safe(c->media_url) || !nginx_path_is_safe(c->media_root) ||
	    !nginx_param_is_safe(c->token_param) || !nginx_param_is_safe(c->expires_param) ||
	    !prefixes_are_nginx_safe(c->private_prefixes) ||
	    !prefixes_are_nginx_safe(c->public_prefixes))
		return -EINVAL;
	/* A location without its trailing slash over an alias with one lets
	 * "/media../" climb out of media_root (the alias off-by-slash). */
	ml = strlen(c->media_url);
	rl = strlen(c->media_root);
	if (c->media_url[ml - 1] != '/' || c->media_root[rl - 1] != '/')
		return -EINVAL;

	render_locations(&o, c, algs);

	o.size = o.n;
	o.n = 0;
	o.buf = malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_locations(&o, c, algs);
	assert(o.n == o.size);
	o.buf[o.n] = '\0';

	*ret = o.buf;
	*ret_size = o.n;
	return 0;
}

bool render_transition_possible(const Config *old, const Config *c)
{
	return streq(old->media_url, c->media_url) && streq(old->media_root, c->media_root) &&
	       old->bind_ip == c->bind_ip;
}

int render_locations_file_transition(const Config *old, const Config *c, char **ret,
                                     size_t *ret_size)
{
	return render_locations_file_algs(old, c, algs_of(old, c), ret, ret_size);
}

int render_locations_file_algs(const Config *old, const Config *c, unsigned algs, char **ret,
                               size_t *ret_size)
{
	_cleanup_free_ const char **list = NULL;
	size_t n;
	Out o = {};
	int r;

	assert(old);
	assert(c);
	algs |= LINK_ALGORITHM_BIT(c->algorithm);
	if (old == c || !render_transition_possible(old, c))
		return render_locations_file_one(c, algs, ret, ret_size);
	/* Everything c renders must be safe, and old's names and prefixes are
	 * written too. */
	r = render_locations_file_one(old, algs, ret, ret_size);
	if (r < 0)
		return r;
	free(*ret);
	r = render_locations_file_one(c, algs, ret, ret_size);
	if (r < 0)
		return r;
	free(*ret);
	*ret = NULL;

	list = calloc(strv_length(old->private_prefixes) + strv_length(old->public_prefixes) +
	                  strv_length(c->private_prefixes) + strv_length(c->public_prefixes) + 4,
	              sizeof(char *));
	if (!list)
		return -ENOMEM;
	n = rendered_prefixes(old, list, 0);
	n = rendered_prefixes(c, list, n);

	render_locations_transition(&o, old, c, algs, list, n);
	o.size = o.n;
	o.n = 0;
	o.buf = malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_locations_transition(&o, old, c, algs, list, n);
	assert(o.n == o.size);
	o.buf[o.n] = '\0';

	*ret = o.buf;
	*ret_size = o.n;
	return 0;
}

/* The grant cookie's value "<kid>.<expires>.<depth>.<token>" and the
 * directory it admits for this request, in one match over the cookie, a
 * ';' and $uri: every field, and the first
 * <depth> whole segments of the path below media_url as the signed
 * directory, under the path form's capture names (the forms never meet in
 * one request: the path form's location matches no plain path). The depth
 * leads each alternative of one branch-reset group, as in the path form;
 * neither another number ("03", "17") nor a path shallower than its depth
 * matches, and then the token is "" and secure_link refuses. The
 * separator is one the value cannot hold: the client writes the cookie,
 * and a '|' after the token and a directory would pose as the path, but
 * nginx ends a cookie's value at the first ';' (and a header's at its
 * end). Two maps, one for the cookie and one for the directory, ran two
 * matches and two map lookups over the same text. */
static void render_cookie_map(Out *o, const Config *c, unsigned algs)
{
	out_put(o, "map \"$cookie_" GRANT_COOKIE_NAME ";$uri\" $securelink_cookie_token {\n");
	out_put(o, "\t\"~^(?<securelink_gk>[0-9]+)\\.(?<securelink_ge>[0-9]+)\\.");
	render_depth_regex(o, c, algs, true);
	out_put(o, "\" $securelink_gt;\n\tdefault \"\";\n}\n");
}

/* A map over the token parameter (both names while they change): a file
 * link's value when the request has a token, the grant cookie's when not.
 * The file's value is "$arg_<file_param>" when file_param is set, else
 * file_value. */
static void render_link_map(Out *o, const Config *old, const Config *c, const char *var,
                            const char *cookie_value, const char *file_param,
                            const char *old_file_param, const char *file_value)
{
	out_put(o, "map ");
	render_arg(o, c->token_param, old->token_param);
	out_put(o, " ");
	out_put(o, var);
	out_put(o, " {\n\t\"\" ");
	out_put(o, cookie_value);
	out_put(o, ";\n\tdefault ");
	if (file_param)
		render_arg(o, file_param, old_file_param);
	else
		out_put(o, file_value);
	out_put(o, ";\n}\n");
}

/* While nginx checks HMAC links: securelink.js and what it reads (the key
 * from the key maps, never in the .js file), and the verdict maps that
 * send a token of 43 base64url digits to it and any other to
 * $secure_link, or to "" (403) once md5 links are checked no more. */
static void render_hmac_maps(Out *o, const Config *old, const Config *c, unsigned algs,
                             const char *js_path)
{
	const char *md5 = algs & LINK_ALGORITHM_BIT(LINK_ALGORITHM_MD5) ? "$secure_link" : "\"\"";

	out_put(o, "# HMAC-SHA256 links (no secret): securelink.js checks them.\n");
	out_put(o, "js_import securelink from ");
	out_put(o, js_path);
	out_put(o, ";\njs_set $securelink_hmac securelink.link;\n");
	out_put(o, "js_set $securelink_grant_hmac securelink.path_grant;\n");
	/* The fields securelink.js reads one by one, chosen as the two
	 * maps above choose them. */
	render_link_map(o, old, c, "$securelink_link_token", "$securelink_cookie_token",
	                c->token_param, old->token_param, NULL);
	render_link_map(o, old, c, "$securelink_link_expires", "$securelink_ge", c->expires_param,
	                old->expires_param, NULL);
	render_link_map(o, old, c, "$securelink_link_secret", "$securelink_grant_secret", NULL,
	                NULL, "$securelink_secret");
	/* What a file link or the grant cookie signs: its kind and path. */
	out_put(o, "map ");
	render_arg(o, c->token_param, old->token_param);
	out_put(o, " $securelink_hmac_kind {\n\t\"\" grant;\n\tdefault file;\n}\n");
	out_put(o, "map ");
	render_arg(o, c->token_param, old->token_param);
	out_put(o, " $securelink_hmac_path {\n\t\"\" \"");
	out_put(o, c->media_url);
	out_put(o, "$securelink_gd\";\n\tdefault $uri;\n}\n");
	out_put(o, "map $securelink_gd $securelink_hmac_grant_path {\n\tdefault \"");
	out_put(o, c->media_url);
	out_put(o, "$securelink_gd\";\n}\n");
	out_put(o, "map $uri $securelink_hmac_ip {\n\tdefault ");
	out_put(o, c->bind_ip ? "$remote_addr" : "\"\"");
	out_put(o, ";\n}\n");
	out_put(o, "map $securelink_link_token $securelink_verdict {\n");
	out_put(o, "\t\"~^[A-Za-z0-9_-]{43}$\" $securelink_hmac;\n\tdefault ");
	out_put(o, md5);
	out_put(o, ";\n}\n");
	out_put(o, "map $securelink_gt $securelink_grant_verdict {\n");
	out_put(o, "\t\"~^[A-Za-z0-9_-]{43}$\" $securelink_grant_hmac;\n\tdefault ");
	out_put(o, md5);
	out_put(o, ";\n}\n");
}

static void render_grant_maps_text(Out *o, const Config *old, const Config *c, unsigned algs,
                                   const char *js_path)
{
	out_put(o, "# Directory grants and file links (no secret): the token, expiry,\n");
	out_put(o, "# directory and key each request is checked with.\n");
	render_cookie_map(o, c, algs);

	/* What secure_link reads, in two maps over the token parameter:
	 * "<token>,<expires>" and the string it hashes, "<subject>
	 * <secret>" (two lookups a request, where a map per field made
	 * four). A file link's parameters and $uri when the request has a
	 * token; the cookie's fields when not, all from the one match that
	 * gave its token, which secure_link reads before the string it
	 * hashes: without a match there is no token, and secure_link
	 * refuses before it reads the directory. "grant:" after the digits
	 * keeps the two kinds of token apart. */
	out_put(o, "map ");
	render_arg(o, c->token_param, old->token_param);
	out_put(o, " $securelink_link_pair {\n\t\"\" \"$securelink_cookie_token,$securelink_ge\";\n"
	           "\tdefault \"");
	render_arg(o, c->token_param, old->token_param);
	out_put(o, ",");
	render_arg(o, c->expires_param, old->expires_param);
	out_put(o, "\";\n}\n");
	out_put(o, "map ");
	render_arg(o, c->token_param, old->token_param);
	out_put(o, " $securelink_link_md5 {\n\t\"\" \"${secure_link_expires}grant:");
	out_put(o, c->media_url);
	out_put(o, "$securelink_gd");
	if (c->bind_ip)
		out_put(o, "$remote_addr");
	out_put(o, " $securelink_grant_secret\";\n\tdefault \"$secure_link_expires$uri");
	if (c->bind_ip)
		out_put(o, "$remote_addr");
	out_put(o, " $securelink_secret\";\n}\n");
	if (algs_hmac(algs))
		render_hmac_maps(o, old, c, algs, js_path);
}

int render_grant_maps(const Config *old, const Config *c, char **ret, size_t *ret_size)
{
	return render_grant_maps_algs(old, c, algs_of(old, c), ret, ret_size);
}

int render_grant_maps_algs(const Config *old, const Config *c, unsigned algs, char **ret,
                           size_t *ret_size)
{
	_cleanup_free_ char *js_path = NULL;
	Out o = {};
	int r;

	assert(old);
	assert(c);
	assert(ret);
	assert(ret_size);

	if (!render_transition_possible(old, c))
		old = c;
	algs |= LINK_ALGORITHM_BIT(c->algorithm);
	if (!nginx_path_is_safe(c->media_url) || !nginx_param_is_safe(c->token_param) ||
	    !nginx_param_is_safe(c->expires_param) || !nginx_param_is_safe(old->token_param) ||
	    !nginx_param_is_safe(old->expires_param))
		return -EINVAL;
	r = render_njs_path(c, &js_path);
	if (r < 0)
		return r;

	render_grant_maps_text(&o, old, c, algs, js_path);
	o.size = o.n;
	o.n = 0;
	o.buf = malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_grant_maps_text(&o, old, c, algs, js_path);
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

	if (!nginx_path_is_safe(c->keys_file) || !nginx_path_is_safe(c->locations_file) ||
	    !nginx_path_is_safe(c->media_url))
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

int render_njs_path(const Config *c, char **ret)
{
	const char *slash;

	assert(c);
	assert(ret);
	/* Beside the locations file, whose path is nginx-safe (config.c). */
	slash = strrchr(c->locations_file, '/');
	if (!slash || !nginx_path_is_safe(c->locations_file))
		return -EINVAL;
	if (asprintf(ret, "%.*s/" RENDER_NJS_FILE, (int)(slash - c->locations_file),
	             c->locations_file) < 0)
		return -ENOMEM;
	return 0;
}

/* The njs module for HMAC-SHA256 links (DESIGN.md, "Algorithms"). Fixed
 * text: the key comes from the keys file's map of the link's kid, per
 * request; nothing in here depends on the configuration. The path is read
 * as bytes (r.rawVariables): $uri is the decoded path, which need not be
 * UTF-8; the other fields are ASCII when they can be valid. */
static const char njs_text[] =
    "// written by securelinkd; do not edit\n"
    "// HMAC-SHA256 links: the token is base64url(HMAC-SHA256(key,\n"
    "// kind NUL expires NUL path [NUL ip])), kind \"file\" or \"grant\". The key is\n"
    "// the kid's, from the keys file's maps; it is never written here.\n"
    "// Answers as nginx's $secure_link: \"\" bad (403), \"0\" expired (410), \"1\".\n"
    "var crypto = require('crypto');\n"
    "\n"
    "// Whether the byte arrays a and b are equal, in a time that depends on\n"
    "// their lengths only (public: every token has one), never on where they\n"
    "// differ: every byte of a is looked at and the differences OR-ed together,\n"
    "// four bytes at a time (njs runs a loop of 8 much faster than one of 32).\n"
    "function equal(a, b) {\n"
    "    var d = a.length ^ b.length, i;\n"
    "\n"
    "    for (i = 0; i + 4 <= a.length; i += 4)\n"
    "        d |= a.readUInt32BE(i) ^ (i + 4 <= b.length ? b.readUInt32BE(i) : 0);\n"
    "    for (; i < a.length; i++)\n"
    "        d |= a[i] ^ (i < b.length ? b[i] : 0);\n"
    "    return d === 0;\n"
    "}\n"
    "\n"
    "// token: 43 base64url digits (the keys file's verdict map sends no other\n"
    "// here); expires: canonical digits; path: bytes ($uri is the decoded path,\n"
    "// which need not be UTF-8); ip: \"\" unless links are bound to it.\n"
    "function check(token, expires, kind, path, ip, key) {\n"
    "    var h;\n"
    "\n"
    "    // An empty key would be a forgery anyone can make: the maps never\n"
    "    // give one, and this refuses it all the same.\n"
    "    if (token.length != 43 || !/^[1-9][0-9]{0,18}$/.test(expires) || key.length == 0 ||\n"
    "        !path)\n"
    "        return '';\n"
    "    h = crypto.createHmac('sha256', key).update(kind + '\\0' + expires + "
    "'\\0').update(path);\n"
    "    if (ip.length > 0)\n"
    "        h.update('\\0' + ip);\n"
    "    // Compared as bytes, as nginx compares md5 tokens.\n"
    "    if (!equal(h.digest(), Buffer.from(token, 'base64url')))\n"
    "        return '';\n"
    "    return +expires < Math.floor(Date.now() / 1000) ? '0' : '1';\n"
    "}\n"
    "\n"
    "// A file link, or the grant cookie when the request has no token.\n"
    "function link(r) {\n"
    "    var v = r.variables;\n"
    "\n"
    "    return check(v.securelink_link_token, v.securelink_link_expires, v.securelink_hmac_kind,\n"
    "                 r.rawVariables.securelink_hmac_path, v.securelink_hmac_ip,\n"
    "                 v.securelink_link_secret);\n"
    "}\n"
    "\n"
    "// A path-form grant: the fields its location captured.\n"
    "function path_grant(r) {\n"
    "    var v = r.variables;\n"
    "\n"
    "    return check(v.securelink_gt, v.securelink_ge, 'grant',\n"
    "                 r.rawVariables.securelink_hmac_grant_path, v.securelink_hmac_ip,\n"
    "                 v.securelink_grant_secret);\n"
    "}\n"
    "\n"
    "export default {link, path_grant, equal};\n";

const char *render_njs_text(void)
{
	return njs_text;
}
