/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <strings.h>

#include "nginx-audit-internal.h"
#include "regex-bounded.h"

/* With merge_slashes off nginx keeps "//" in $uri: "/media//private/x"
 * matches no private location's prefix, and whatever location answers it
 * instead opens the file unchecked, unless it refuses "//". The probes find
 * that by its effect for one name; this reads, in nginx -T, which location
 * answers and which file it opens, so that a regex location of the site
 * ("\.mp4$"), which the probes' name does not match, is seen too. */

/* Deeper nesting than any configuration has. */
#define NEST_MAX 8
/* The file name asked for under a private directory. */
#define SAMPLE_NAME "securelink-check.txt"

/* A location's own settings that decide what it answers with. */
typedef struct Settings {
	Location *nested; /* its locations, includes read in place */
	size_t n_nested;
	const NginxNode *root, *alias;
	bool access_rules;     /* allow or deny of its own: none inherited */
	bool allowed;          /* an allow before any deny all */
	const NginxNode *deny; /* deny all before any allow: refuses everyone */
	const NginxNode *stop; /* return or a *_pass: no file, not inherited */
} Settings;

/* Where a path ends up: the location that answers it (NULL: the server's
 * own configuration), and the root or alias it opens files with. */
typedef struct Answer {
	Location by;          /* by.node NULL: the server {} itself */
	const NginxNode *dir; /* root or alias, inherited; NULL: nginx's default */
	const char *alias_of; /* dir is an alias that replaces this location path */
	bool alias_in_regex;  /* ... of a regex location: captures, not a prefix */
	bool denied;          /* deny all, inherited unless rules of its own */
	bool refused;         /* no file opened: denied, a return or *_pass, or the
	                       * locations file's (which checks or refuses "//") */
} Answer;

static void visit_location(Audit *a, void *userdata, const NginxNode *n)
{
	static const char *const passes[] = { "proxy_pass", "fastcgi_pass", "uwsgi_pass",
		                              "scgi_pass",  "grpc_pass",    "memcached_pass",
		                              "empty_gif",  "stub_status",  NULL };
	Settings *s = userdata;

	if (is(n, "location", 0) && n->block && n->n_args >= 2)
		PUSH(a, s->nested, s->n_nested, audit_location(a, n));
	else if (is(n, "root", 2))
		s->root = n;
	else if (is(n, "alias", 2))
		s->alias = n;
	else if (is(n, "allow", 2)) {
		s->access_rules = true;
		s->allowed = s->allowed || !s->deny;
	} else if (is(n, "deny", 2)) {
		s->access_rules = true;
		if (streq(n->args[1], "all") && !s->allowed && !s->deny)
			s->deny = n;
	} else if (is(n, "return", 0))
		s->stop = n;
	else
		for (const char *const *p = passes; *p; p++)
			if (is(n, *p, 0))
				s->stop = n;
}

/* l's settings over what it inherits (base). */
static Answer settle(Audit *a, const Location *l, const Answer *base, Settings *s)
{
	Answer r = *base;

	*s = (Settings){};
	audit_walk(a, s, l->node, visit_location, 0);
	r.by = *l;
	if (s->alias) {
		r.dir = s->alias;
		r.alias_of = l->path;
		r.alias_in_regex = *l->modifier == '~';
	} else if (s->root) {
		r.dir = s->root;
		r.alias_of = NULL;
	}
	r.denied = s->access_rules ? s->deny != NULL : base->denied;
	r.refused = l->ours || s->stop || r.denied;
	return r;
}

/* Whether the regex location l surely takes every file under dir, whatever
 * its name: it matches dir, dir + SAMPLE_NAME, and the same with the "//"
 * made "///" (POSIX here, PCRE in nginx; "//" reads alike). */
static bool takes_all(Audit *a, const Location *l, const char *dir)
{
	_cleanup_free_ char *tripled = NULL;
	const char *spellings[] = { dir, NULL };
	const char *twice = strstr(dir, "//");
	regex_t re;
	bool m = true;

	if (twice && asprintf(&tripled, "%.*s/%s", (int)(twice - dir), dir, twice) < 0) {
		tripled = NULL;
		a->error = -ENOMEM;
		return false;
	}
	spellings[1] = tripled;
	if (regcomp_bounded(&re, l->path,
	                    REG_EXTENDED | REG_NOSUB |
	                        (streq(l->modifier, "~*") ? REG_ICASE : 0)) != 0)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(spellings) && m; i++) {
		_cleanup_free_ char *file = NULL;

		if (!spellings[i])
			continue;
		if (asprintf(&file, "%s" SAMPLE_NAME, spellings[i]) < 0) {
			file = NULL;
			a->error = -ENOMEM;
			m = false;
			break;
		}
		m = regexec(&re, spellings[i], 0, NULL, 0) == 0 &&
		    regexec(&re, file, 0, NULL, 0) == 0;
	}
	regfree(&re);
	return m;
}

/* Whether the regex location l cannot match any path under dir: anchored,
 * one branch, its literal start is not compatible with dir ("^/api/"
 * against "/media//private/"). */
static bool cannot_match_under(const Location *l, const char *dir)
{
	int (*cmp)(const char *, const char *, size_t) =
	    streq(l->modifier, "~*") ? strncasecmp : strncmp;
	const char *p = l->path + 1;
	size_t n, d = strlen(dir);

	if (l->path[0] != '^' || strchr(p, '|'))
		return false;
	n = strcspn(p, ".[]()*+?{}|\\^$");
	if (n > 0 && p[n] && strchr("*?{", p[n]))
		n--; /* "^/ab*": the b may be absent */
	/* Some path under dir starts with those n bytes iff one begins the other. */
	return cmp(dir, p, n < d ? n : d) != 0;
}

static bool opens_private(Audit *a, const Answer *r, const char *dir, const char *private);

typedef enum Picked {
	PICKED_NONE,   /* no location of the level matched */
	PICKED_PREFIX, /* a prefix location, which the level above's regexes may still override */
	PICKED_FINAL,  /* a regex location (or the locations file's): nginx looks no further */
} Picked;

/* nginx's choice among locs (one level) for a file under dir, as
 * ngx_http_core_find_location() makes it: the longest prefix and, in it,
 * its own nested locations; then, unless that prefix is ^~, the regexes in
 * order, each with its nested locations; else the deepest prefix. A regex
 * is taken to match some file under dir (its file name is unknown) unless
 * its anchored start rules that out (cannot_match_under()), so the first
 * that opens a file under private (the private directory) answers, and one
 * that refuses answers only where it matches every file there (takes_all():
 * "location ~ //"). The locations file's own locations check links or
 * refuse "//" first. The answer in *ret. */
static Picked pick(Audit *a, const Location *locs, size_t n, const char *dir, const char *private,
                   const Answer *base, Answer *ret, unsigned depth)
{
	const Location *best = NULL;
	Picked picked = PICKED_NONE;

	for (size_t i = 0; i < n; i++)
		if ((streq(locs[i].modifier, "") || streq(locs[i].modifier, "^~")) &&
		    has_prefix(dir, locs[i].path) &&
		    (!best || strlen(locs[i].path) > strlen(best->path)))
			best = &locs[i];
	if (best) {
		Answer prefix, inner;
		Settings s;
		Picked p = PICKED_NONE;

		prefix = settle(a, best, base, &s);
		if (!best->ours && depth < NEST_MAX)
			p = pick(a, s.nested, s.n_nested, dir, private, &prefix, &inner, depth + 1);
		free(s.nested);
		*ret = p == PICKED_NONE ? prefix : inner;
		if (p == PICKED_FINAL || best->ours)
			return PICKED_FINAL;
		if (streq(best->modifier, "^~"))
			return PICKED_PREFIX;
		picked = PICKED_PREFIX;
	}
	for (size_t i = 0; i < n && a->error >= 0; i++) {
		const Location *l = &locs[i];
		Answer r, inner;
		Settings s;
		Picked p = PICKED_NONE;

		if (*l->modifier != '~' || cannot_match_under(l, dir))
			continue;
		r = settle(a, l, base, &s);
		if (depth < NEST_MAX)
			p = pick(a, s.nested, s.n_nested, dir, private, &r, &inner, depth + 1);
		free(s.nested);
		if (p != PICKED_NONE)
			r = inner;
		if ((r.refused && takes_all(a, l, dir)) ||
		    (!r.refused && opens_private(a, &r, dir, private))) {
			*ret = r;
			return PICKED_FINAL;
		}
	}
	return picked;
}

/* s with every run of '/' made one, malloc'd. */
static char *squeeze(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++)
		if (*s != '/' || o == out || o[-1] != '/')
			*o++ = *s;
	*o = '\0';
	return out;
}

/* Whether the answer r opens, for a file under dir, a file under private
 * (media_root's private directory); a root or alias with a variable, a
 * relative one or an alias in a regex location cannot be told, and counts.
 * nginx's default root (its prefix's html/) does not. */
static bool opens_private(Audit *a, const Answer *r, const char *dir, const char *private)
{
	_cleanup_free_ char *file = NULL, *f = NULL, *p = NULL;
	const char *d = r->dir ? r->dir->args[1] : NULL;

	if (!d)
		return false;
	if (strchr(d, '$') || d[0] != '/' || (r->alias_of && r->alias_in_regex))
		return true;
	if (asprintf(&file, "%s/%s", d, r->alias_of ? dir + strlen(r->alias_of) : dir) < 0) {
		file = NULL;
		a->error = -ENOMEM;
		return false;
	}
	f = squeeze(file);
	p = squeeze(private);
	if (!f || !p)
		a->error = -ENOMEM;
	return f && p && has_prefix(f, p);
}

/* Where the answer is: "location /media/", or the server {}'s root. */
static char *answer_desc(const Answer *r)
{
	char *s;

	if (!r->by.node)
		return strdup("the server {}'s own root");
	if (asprintf(&s, "location %s%s%s", r->by.modifier, *r->by.modifier ? " " : "",
	             r->by.path) < 0)
		return NULL;
	return s;
}

/* The spelling of the private directory p with a second '/' at its k-th
 * byte (a '/'). */
static char *doubled_at(const char *p, size_t k)
{
	char *s;

	return asprintf(&s, "%.*s/%s", (int)k, p, p + k) < 0 ? NULL : s;
}

void audit_check_merge_slashes(Audit *a, const Server *serving, const Server *deflt)
{
	/* Over TLS the server name (SNI) picks the server before the request
	 * line is read; over plain HTTP nginx reads it with the default one. */
	const Server *reads = a->site->tls ? serving : deflt;
	const NginxNode *ms =
	    reads && reads->merge_slashes ? reads->merge_slashes : a->http_merge_slashes;
	const char *media = a->site->media_url, *root = a->site->media_root;
	Answer base = { .dir = serving->root ? serving->root : a->http_root };

	if (!ms || strcasecmp(ms->args[1], "off") != 0 || !media || !root)
		return;
	for (char *const *p = a->site->private_paths; p && *p && a->error >= 0; p++) {
		_cleanup_free_ char *private = NULL;

		if (!has_prefix(*p, media))
			continue;
		if (asprintf(&private, "%s%s", root, *p + strlen(media)) < 0) {
			private = NULL;
			a->error = -ENOMEM;
			return;
		}
		/* A "//" at each '/' but the last, which the private location's
		 * own prefix still matches. */
		for (size_t k = 0; (*p)[k] && (*p)[k + 1]; k++) {
			_cleanup_free_ char *dir = NULL, *where = NULL;
			Answer r = base;

			if ((*p)[k] != '/')
				continue;
			dir = doubled_at(*p, k);
			if (!dir) {
				a->error = -ENOMEM;
				return;
			}
			if (pick(a, serving->locations, serving->n_locations, dir, private, &base,
			         &r, 0) == PICKED_NONE)
				r = base;
			if (r.refused || !opens_private(a, &r, dir, private))
				continue;
			where = answer_desc(&r);
			if (!where) {
				a->error = -ENOMEM;
				return;
			}
			audit_finding(
			    a, "merge-slashes-off", ms,
			    "merge_slashes off keeps \"//\" in paths: %s..., a private path "
			    "spelled so, misses the private locations, and %s (at %s:%u) "
			    "opens the private files under %s with it, without any "
			    "secure_link check. Fix: turn merge_slashes on here%s.",
			    dir, where, r.by.node ? r.by.node->file : serving->node->file,
			    r.by.node ? r.by.node->line : serving->node->line, private,
			    r.by.node ? ", or make \"location ~ // { return 403; }\" the first "
			                "location inside that one"
			              : "");
			return;
		}
	}
}
