/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nginx-audit-internal.h"
#include "nginx-audit.h"
#include "regex-bounded.h"
#include "proto.h"
#include "util.h"

/* Deeper include chains than any configuration has; a cycle ends here. */
#define INCLUDE_DEPTH_MAX 16
/* The file name a probe-like request asks for under a private prefix. */
#define SAMPLE_NAME "securelink-check.txt"

/* The words of l joined by sep, malloc'd. */
static char *strv_join(char *const *l, const char *sep)
{
	size_t n = 1;
	char *s, *p;

	for (char *const *i = l; *i; i++)
		n += strlen(*i) + strlen(sep);
	s = p = malloc(n);
	if (!s)
		return NULL;
	*s = '\0';
	for (char *const *i = l; *i; i++)
		p = stpcpy(stpcpy(p, i == l ? "" : sep), *i);
	return s;
}

static char *node_at(const NginxNode *n)
{
	char *s;

	return asprintf(&s, "%s:%u", n->file, n->line) < 0 ? NULL : s;
}

void audit_finding(Audit *a, const char *kind, const NginxNode *at, const char *format, ...)
{
	NginxFinding f = { .kind = kind };
	va_list ap;
	int r;

	va_start(ap, format);
	r = vasprintf(&f.text, format, ap);
	va_end(ap);
	if (r < 0 || (at && !(f.at = node_at(at)))) {
		if (r >= 0)
			free(f.text);
		a->error = -ENOMEM;
		return;
	}
	PUSH(a, a->out->findings, a->out->n_findings, f);
	if (a->error < 0) {
		free(f.text);
		free(f.at);
	}
}

Location audit_location(const Audit *a, const NginxNode *n)
{
	Location l = { .node = n, .modifier = "", .path = n->args[1] };
	const char *arg = n->args[1];

	if (n->n_args >= 3) {
		l.modifier = n->args[1];
		l.path = n->args[2];
	} else if (arg[0] == '=' && arg[1]) {
		/* nginx also takes the modifier joined to the path. */
		l.modifier = "=";
		l.path = arg + 1;
	} else if (arg[0] == '^' && arg[1] == '~' && arg[2]) {
		l.modifier = "^~";
		l.path = arg + 2;
	} else if (arg[0] == '~') {
		l.modifier = arg[1] == '*' ? "~*" : "~";
		l.path = arg + strlen(l.modifier);
	} else if (arg[0] == '@')
		l.modifier = "@";
	l.ours = streq(n->file, a->site->locations_file);
	return l;
}

/* Which kind of include n is: 'k' the keys file, 'l' the locations file. */
static char include_kind(const Audit *a, const NginxNode *n)
{
	const NginxDumpFile *f;
	size_t i = 0;

	if (!is(n, "include", 2))
		return 0;
	if (streq(n->args[1], a->site->keys_file))
		return 'k';
	if (streq(n->args[1], a->site->locations_file))
		return 'l';
	while ((f = nginx_dump_next_include(a->dump, n->args[1], &i))) {
		if (streq(f->name, a->site->keys_file))
			return 'k';
		if (streq(f->name, a->site->locations_file))
			return 'l';
	}
	return 0;
}

void audit_walk(Audit *a, void *userdata, const NginxNode *block, audit_visit_t visit,
                unsigned depth)
{
	for (size_t i = 0; i < block->n_children && a->error >= 0; i++) {
		const NginxNode *n = block->children[i];
		const NginxDumpFile *f;
		size_t k = 0;

		if (a->visits_left == 0) {
			a->error = -E2BIG;
			return;
		}
		a->visits_left--;
		visit(a, userdata, n);
		if (!is(n, "include", 2) || depth >= INCLUDE_DEPTH_MAX)
			continue;
		while ((f = nginx_dump_next_include(a->dump, n->args[1], &k)))
			if (!streq(f->name, a->site->keys_file))
				audit_walk(a, userdata, &f->root, visit, depth + 1);
	}
}

static void visit_server(Audit *a, void *userdata, const NginxNode *n)
{
	Server *s = userdata;
	char kind = include_kind(a, n);

	if (kind == 'l' && !s->locations_include)
		s->locations_include = n;
	else if (kind == 'k')
		PUSH(a, a->keys_elsewhere, a->n_keys_elsewhere, n);
	else if (is(n, "server_name", 0)) {
		for (size_t i = 1; i < n->n_args && a->error >= 0; i++) {
			char *name = strdup(n->args[i]);

			if (!name || strv_consume(&s->names, name) < 0)
				a->error = -ENOMEM;
		}
	} else if (is(n, "listen", 0) && n->n_args >= 2)
		PUSH(a, s->listens, s->n_listens, n);
	else if (is(n, "location", 0) && n->block && n->n_args >= 2)
		PUSH(a, s->locations, s->n_locations, audit_location(a, n));
	else if (is(n, "rewrite", 0) || is(n, "return", 0) || (is(n, "if", 0) && n->block))
		PUSH(a, s->rewrites, s->n_rewrites, n);
	else if (is(n, "merge_slashes", 2))
		s->merge_slashes = n;
	else if (is(n, "root", 2))
		s->root = n;
}

static void visit_http(Audit *a, void *unused, const NginxNode *n)
{
	char kind = include_kind(a, n);
	char *at;

	if (kind == 'k') {
		at = node_at(n);
		if (!at || strv_consume(&a->out->keys_included, at) < 0)
			a->error = -ENOMEM;
		else
			a->out->n_keys_included++;
	} else if (kind == 'l')
		PUSH(a, a->locations_elsewhere, a->n_locations_elsewhere, n);
	else if (is(n, "merge_slashes", 2))
		a->http_merge_slashes = n;
	else if (is(n, "root", 2))
		a->http_root = n;
	else if (is(n, "server", 1) && n->block) {
		Server s = { .node = n };

		/* Locations nested in locations are not walked: ours are at
		 * server level, where nginx's longest-prefix match runs. */
		audit_walk(a, &s, n, visit_server, 0);
		/* Pushed only whole: what failed is freed here, once. */
		if (a->error >= 0)
			PUSH(a, a->servers, a->n_servers, s);
		if (a->error < 0) {
			strv_free(s.names);
			free(s.listens);
			free(s.locations);
			free(s.rewrites);
		}
	}
}

static void visit_main(Audit *a, void *unused, const NginxNode *n)
{
	char kind = include_kind(a, n);

	if (kind == 'k')
		PUSH(a, a->keys_elsewhere, a->n_keys_elsewhere, n);
	else if (kind == 'l')
		PUSH(a, a->locations_elsewhere, a->n_locations_elsewhere, n);
	else if (is(n, "http", 1) && n->block)
		audit_walk(a, NULL, n, visit_http, 0);
}

/* ---- which server {} serves base_url's host ---- */

typedef enum ListenKind {
	LISTEN_NONE,
	LISTEN_ANY,
	LISTEN_LOOPBACK
} ListenKind;

/* How a listen line's address takes a connection to 127.0.0.1:port. */
static ListenKind listen_kind(const NginxNode *n, unsigned port)
{
	const char *a = n->args[1], *colon;
	_cleanup_free_ char *addr = NULL;
	unsigned long p = 80;
	char *end;

	if (strncmp(a, "unix:", 5) == 0 || a[0] == '[')
		return LISTEN_NONE; /* the probe connects over IPv4 */
	colon = strrchr(a, ':');
	if (!colon && a[strspn(a, "0123456789")] == '\0') {
		p = strtoul(a, &end, 10);
		addr = strdup("*");
	} else if (colon) {
		p = strtoul(colon + 1, &end, 10);
		if (*end || end == colon + 1)
			return LISTEN_NONE;
		addr = strndup(a, (size_t)(colon - a));
	} else
		addr = strdup(a);
	if (!addr || p != port)
		return LISTEN_NONE;
	if (streq(addr, "*") || streq(addr, "0.0.0.0"))
		return LISTEN_ANY;
	if (streq(addr, "127.0.0.1") || strcasecmp(addr, "localhost") == 0)
		return LISTEN_LOOPBACK;
	return LISTEN_NONE;
}

static ListenKind server_listen_kind(const Server *s, unsigned port, bool *ret_default)
{
	ListenKind best = LISTEN_NONE;

	*ret_default = false;
	if (s->n_listens == 0) /* nginx's default: *:80 */
		return port == 80 ? LISTEN_ANY : LISTEN_NONE;
	for (size_t i = 0; i < s->n_listens; i++) {
		ListenKind k = listen_kind(s->listens[i], port);

		if (k == LISTEN_NONE)
			continue;
		if (k > best)
			best = k;
		for (size_t j = 2; j < s->listens[i]->n_args; j++)
			if (streq(s->listens[i]->args[j], "default_server") ||
			    streq(s->listens[i]->args[j], "default"))
				*ret_default = true;
	}
	return best;
}

/* How well name (a server_name word) matches host, nginx's order: exact,
 * then the longest leading wildcard, the longest trailing one, a regex. */
static size_t name_score(const char *name, const char *host)
{
	size_t nl = strlen(name), hl = strlen(host);

	if (strcasecmp(name, host) == 0)
		return 4000000;
	if (name[0] == '.' &&
	    (strcasecmp(name + 1, host) == 0 || (hl > nl && strcasecmp(host + hl - nl, name) == 0)))
		return 3000000 + nl;
	if (name[0] == '*' && name[1] == '.' && hl > nl - 1 &&
	    strcasecmp(host + hl - (nl - 1), name + 1) == 0)
		return 3000000 + nl;
	if (nl >= 2 && name[nl - 1] == '*' && name[nl - 2] == '.' && hl > nl - 1 &&
	    strncasecmp(host, name, nl - 1) == 0)
		return 2000000 + nl;
	if (name[0] == '~') {
		regex_t re;
		bool match;

		/* PCRE in nginx; POSIX here, which reads the usual patterns
		 * alike. One that does not compile matches nothing. */
		if (regcomp_bounded(&re, name + 1, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
			return 0;
		match = regexec(&re, host, 0, NULL, 0) == 0;
		regfree(&re);
		return match ? 1 : 0;
	}
	return 0;
}

/* Which servers see connections to 127.0.0.1:port: those listening on
 * 127.0.0.1 there; the wildcard ones only when none does. */
static ListenKind wanted_listen(const Audit *a)
{
	ListenKind want = LISTEN_NONE;

	for (size_t i = 0; i < a->n_servers; i++) {
		bool d;
		ListenKind k = server_listen_kind(&a->servers[i], a->site->port, &d);

		if (k > want)
			want = k;
	}
	return want;
}

/* The next server {} from *i on that sees those connections (of kind
 * want), and whether it is their default_server. */
static Server *next_listening(Audit *a, ListenKind want, size_t *i, bool *ret_default)
{
	while (*i < a->n_servers) {
		Server *s = &a->servers[(*i)++];

		if (server_listen_kind(s, a->site->port, ret_default) == want)
			return s;
	}
	return NULL;
}

/* The default server {} of those connections: the one nginx parses the
 * request line with, before the Host header picks one. */
static Server *default_server(Audit *a)
{
	ListenKind want = wanted_listen(a);
	Server *s, *first = NULL;
	bool d;

	if (want == LISTEN_NONE)
		return NULL;
	for (size_t i = 0; (s = next_listening(a, want, &i, &d));) {
		if (d)
			return s;
		if (!first)
			first = s;
	}
	return first;
}

static Server *serving_server(Audit *a)
{
	ListenKind want = wanted_listen(a);
	Server *s, *best = NULL;
	size_t best_score = 0;
	bool d;

	if (want == LISTEN_NONE)
		return NULL;
	for (size_t i = 0; (s = next_listening(a, want, &i, &d));)
		for (char **n = s->names; n && *n; n++) {
			size_t score = name_score(*n, a->site->host);

			/* Among regexes the first wins: strictly greater. */
			if (score > best_score) {
				best_score = score;
				best = s;
			}
		}
	return best ? best : default_server(a);
}

/* ---- what takes private paths away ---- */

static bool is_private(const Audit *a, const char *path)
{
	for (char *const *p = a->site->private_paths; p && *p; p++)
		if (has_prefix(path, *p))
			return true;
	return false;
}

static void check_locations(Audit *a, const Server *s, bool included)
{
	for (size_t i = 0; i < s->n_locations; i++) {
		const Location *l = &s->locations[i];

		if (l->ours)
			continue;
		for (char *const *p = a->site->private_paths; p && *p; p++) {
			bool prefix = streq(l->modifier, "") || streq(l->modifier, "^~");

			/* An exact match wins over every prefix; a longer prefix
			 * wins over ours. Regexes lose to our ^~. */
			if ((streq(l->modifier, "=") && has_prefix(l->path, *p)) ||
			    (prefix && has_prefix(l->path, *p) && !streq(l->path, *p))) {
				audit_finding(
				    a, "location-shadows", l->node,
				    "location %s%s%s takes %s away from the secure_link "
				    "check of %s: nginx prefers it to the locations file's. "
				    "Fix: remove it; the locations file serves every file "
				    "under %s.",
				    l->modifier, *l->modifier ? " " : "", l->path,
				    streq(l->modifier, "=") ? "that path" : "the paths under it",
				    *p, *p);
				break;
			}
			if (!included && prefix && has_prefix(*p, l->path)) {
				audit_finding(
				    a, "location-serves-private", l->node,
				    "location %s%s%s serves %s without any secure_link check. "
				    "Fix: include the locations file in this server {} and "
				    "remove this location; the locations file serves media_url.",
				    l->modifier, *l->modifier ? " " : "", l->path, *p);
				break;
			}
		}
	}
}

/* rewrite's replacement with $1..$9 of the match; NULL when it names any
 * other variable, which cannot be known here. */
static char *rewrite_result(const char *repl, const char *subject, const regmatch_t *m)
{
	_cleanup_free_ char *out = NULL;
	size_t n = 0;

	out = malloc(strlen(repl) + strlen(subject) * 10 + 1);
	if (!out)
		return NULL;
	for (const char *p = repl; *p; p++) {
		if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
			const regmatch_t *g = &m[p[1] - '0'];

			if (g->rm_so >= 0) {
				memcpy(out + n, subject + g->rm_so, (size_t)(g->rm_eo - g->rm_so));
				n += (size_t)(g->rm_eo - g->rm_so);
			}
			p++;
			continue;
		}
		if (*p == '$')
			return NULL;
		out[n++] = *p;
	}
	out[n] = '\0';
	return TAKE_PTR(out);
}

static void check_rewrite(Audit *a, const NginxNode *n)
{
	const char *flag = n->n_args >= 4 ? n->args[3] : "";
	regex_t re;
	int r;

	if (n->n_args < 3)
		return;
	r = regcomp_bounded(&re, n->args[1], REG_EXTENDED);
	if (r != 0) {
		audit_finding(a, "server-rewrite", n,
		              "rewrite %s at server level runs before any location, the checks "
		              "of the locations file included, and may take private paths away "
		              "from them. Fix: move it into the location it is for, or make its "
		              "pattern spare media_url.",
		              n->args[1]);
		return;
	}
	for (char *const *p = a->site->private_paths; p && *p && a->error >= 0; p++) {
		_cleanup_free_ char *subject = NULL, *result = NULL;
		regmatch_t m[10];

		if (asprintf(&subject, "%s" SAMPLE_NAME, *p) < 0) {
			a->error = -ENOMEM;
			break;
		}
		if (regexec(&re, subject, 10, m, 0) != 0)
			continue;
		result = rewrite_result(n->args[2], subject, m);
		/* Where the URI goes next: a location lookup, unless the rewrite
		 * redirects. One that stays under a private prefix is still
		 * checked there. */
		if (result && !streq(flag, "redirect") && !streq(flag, "permanent") &&
		    result[0] == '/') {
			result[strcspn(result, "?")] = '\0';
			if (is_private(a, result))
				continue;
		}
		audit_finding(a, "server-rewrite", n,
		              "rewrite %s at server level runs before any location and takes %s "
		              "away from the secure_link check (a private file is served, or "
		              "redirected, without its token being checked). Fix: move it into "
		              "the location it is for, or make its pattern spare %s.",
		              n->args[1], *p, *p);
		break;
	}
	regfree(&re);
}

static bool if_changes_path(const NginxNode *n)
{
	for (size_t i = 0; i < n->n_children; i++)
		if (is(n->children[i], "rewrite", 0) || is(n->children[i], "return", 0))
			return true;
	return false;
}

static void check_rewrites(Audit *a, const Server *s)
{
	for (size_t i = 0; i < s->n_rewrites && a->error >= 0; i++) {
		const NginxNode *n = s->rewrites[i];

		if (is(n, "return", 0))
			audit_finding(a, "server-return", n,
			              "return at server level answers every request to this server "
			              "{} before any location, the checks of the locations file "
			              "included. Fix: move it into a location, or into an if that "
			              "spares media_url.");
		else if (is(n, "rewrite", 0))
			check_rewrite(a, n);
		else if (if_changes_path(n))
			audit_finding(
			    a, "server-if", n,
			    "if at server level returns or rewrites before any location "
			    "runs: check that it spares media_url's private prefixes. Fix: "
			    "move it into the location it is for.");
	}
}

static char *server_desc(const Server *s)
{
	_cleanup_free_ char *names = NULL;
	char *desc;

	names = s->names ? strv_join(s->names, " ") : strdup("");
	if (!names || asprintf(&desc, "server {} at %s:%u (server_name %s)", s->node->file,
	                       s->node->line, *names ? names : "\"\"") < 0)
		return NULL;
	return desc;
}

static void check_servers(Audit *a)
{
	Server *serving = serving_server(a);
	_cleanup_free_ char *desc = NULL;
	const char *keys = a->site->keys_file, *locs = a->site->locations_file;

	if (a->out->n_keys_included == 0 && a->n_keys_elsewhere == 0)
		audit_finding(a, "keys-missing", NULL,
		              "the keys file %s is not included: nginx has no secrets to check "
		              "links with. Fix: add \"include %s;\" to http {}.",
		              keys, keys);
	for (size_t i = 0; i < a->n_keys_elsewhere; i++)
		audit_finding(a, "keys-outside-http", a->keys_elsewhere[i],
		              "the keys file is included outside http {}. Fix: include it in "
		              "http {} itself.");
	for (size_t i = 0; i < a->n_locations_elsewhere; i++)
		audit_finding(a, "locations-outside-server", a->locations_elsewhere[i],
		              "the locations file is included outside any server {}. Fix: "
		              "include it in the server {} that serves base_url.");

	if (!serving) {
		audit_finding(a, "no-server", NULL,
		              "no server {} listens on 127.0.0.1 or all addresses, port %u, where "
		              "links to %s go. Fix: give the server {} that serves them that "
		              "listen line, or set [nginx] probe and base_url to its origin.",
		              a->site->port, a->site->host);
		return;
	}
	desc = server_desc(serving);
	if (!desc) {
		a->error = -ENOMEM;
		return;
	}
	if (!serving->locations_include) {
		audit_finding(a, "locations-missing", serving->node,
		              "the %s serves %s:%u, and does not include the locations file %s: "
		              "its private files have no check. Fix: add \"include %s;\" to that "
		              "server {}.",
		              desc, a->site->host, a->site->port, locs, locs);
		for (size_t i = 0; i < a->n_servers; i++) {
			_cleanup_free_ char *other = NULL;

			if (!a->servers[i].locations_include)
				continue;
			other = server_desc(&a->servers[i]);
			if (!other) {
				a->error = -ENOMEM;
				return;
			}
			audit_finding(a, "locations-in-other-server",
			              a->servers[i].locations_include,
			              "the locations file is included in the %s, which does not "
			              "serve %s:%u (the %s does). Fix: move the include into that "
			              "server {}, or give this one base_url's host as server_name.",
			              other, a->site->host, a->site->port, desc);
		}
	}
	check_locations(a, serving, serving->locations_include);
	check_rewrites(a, serving);
	audit_check_merge_slashes(a, serving, default_server(a));
}

/* ---- the result ---- */

static int export_servers(Audit *a)
{
	Server *serving = serving_server(a);

	a->out->servers = calloc(a->n_servers ? a->n_servers : 1, sizeof(NginxAuditServer));
	if (!a->out->servers)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_servers; i++) {
		const Server *s = &a->servers[i];
		NginxAuditServer *o = &a->out->servers[a->out->n_servers++];
		_cleanup_strv_free_ char **listens = NULL;

		o->serves_links = s == serving;
		o->at = node_at(s->node);
		o->names = s->names ? strv_join(s->names, " ") : strdup("");
		for (size_t j = 0; j < s->n_listens; j++) {
			char *l = strv_join(s->listens[j]->args + 1, " ");

			if (!l || strv_consume(&listens, l) < 0)
				return -ENOMEM;
		}
		o->listen = listens ? strv_join(listens, "; ") : strdup("");
		if (s->locations_include &&
		    !(o->locations_included = node_at(s->locations_include)))
			return -ENOMEM;
		if (!o->at || !o->names || !o->listen)
			return -ENOMEM;
	}
	return 0;
}

int nginx_audit_run(const NginxDump *d, const NginxAuditSite *site, NginxAudit **ret)
{
	Audit a = { .dump = d, .site = site, .visits_left = AUDIT_VISITS_MAX };
	int r;

	a.out = calloc(1, sizeof(NginxAudit));
	if (!a.out)
		return -ENOMEM;
	if (d->n_files > 0)
		audit_walk(&a, NULL, &d->files[0].root, visit_main, 0);
	if (a.error >= 0)
		check_servers(&a);
	r = a.error >= 0 ? export_servers(&a) : a.error;

	for (size_t i = 0; i < a.n_servers; i++) {
		strv_free(a.servers[i].names);
		free(a.servers[i].listens);
		free(a.servers[i].locations);
		free(a.servers[i].rewrites);
	}
	free(a.servers);
	free(a.locations_elsewhere);
	free(a.keys_elsewhere);
	if (r < 0) {
		nginx_audit_free(a.out);
		return r;
	}
	*ret = a.out;
	return 0;
}

NginxAudit *nginx_audit_free(NginxAudit *a)
{
	if (!a)
		return NULL;
	strv_free(a->keys_included);
	for (size_t i = 0; i < a->n_servers; i++) {
		free(a->servers[i].at);
		free(a->servers[i].names);
		free(a->servers[i].listen);
		free(a->servers[i].locations_included);
	}
	free(a->servers);
	for (size_t i = 0; i < a->n_findings; i++) {
		free(a->findings[i].at);
		free(a->findings[i].text);
	}
	free(a->findings);
	free(a);
	return NULL;
}

/* fputs of a JSON string, or null. */
static int put_string(FILE *f, const char *s)
{
	_cleanup_free_ char *e = NULL;

	if (!s)
		return fputs("null", f) < 0 ? -EIO : 0;
	if (json_escape(s, &e) < 0)
		return -ENOMEM;
	return fprintf(f, "\"%s\"", e) < 0 ? -EIO : 0;
}

int nginx_audit_json(const NginxAudit *a, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;
	int r = 0;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fputs("{\"keys_included\":[", f);
	for (size_t i = 0; i < a->n_keys_included && r >= 0; i++) {
		if (i)
			fputc(',', f);
		r = put_string(f, a->keys_included[i]);
	}
	fputs("],\"servers\":[", f);
	for (size_t i = 0; i < a->n_servers && r >= 0; i++) {
		const NginxAuditServer *s = &a->servers[i];

		fputs(i ? ",{\"at\":" : "{\"at\":", f);
		if ((r = put_string(f, s->at)) < 0 || fputs(",\"server_name\":", f) < 0 ||
		    (r = put_string(f, s->names)) < 0 || fputs(",\"listen\":", f) < 0 ||
		    (r = put_string(f, s->listen)) < 0 ||
		    fputs(",\"locations_included\":", f) < 0 ||
		    (r = put_string(f, s->locations_included)) < 0)
			break;
		fprintf(f, ",\"serves_links\":%s}", s->serves_links ? "true" : "false");
	}
	fputs("],\"findings\":[", f);
	for (size_t i = 0; i < a->n_findings && r >= 0; i++) {
		const NginxFinding *x = &a->findings[i];

		fprintf(f, "%s{\"kind\":\"%s\",\"at\":", i ? "," : "", x->kind);
		if ((r = put_string(f, x->at)) < 0 || fputs(",\"text\":", f) < 0 ||
		    (r = put_string(f, x->text)) < 0)
			break;
		fputc('}', f);
	}
	fputs("]}", f);
	if (fclose(f) != 0 && r >= 0)
		r = -ENOMEM;
	if (r < 0)
		return r;
	*ret = TAKE_PTR(buf);
	return 0;
}

int nginx_audit_origin(const char *url, char **ret_host, unsigned *ret_port)
{
	const char *p = strstr(url, "://"), *host, *end;
	unsigned long port;
	char *e;

	if (!p)
		return -EINVAL;
	port = strncasecmp(url, "https", 5) == 0 ? 443 : 80;
	host = p + 3;
	if (*host == '[') {
		end = strchr(host, ']');
		if (!end)
			return -EINVAL;
		end++;
	} else
		end = host + strcspn(host, ":/?#");
	if (end == host)
		return -EINVAL;
	if (*end == ':') {
		port = strtoul(end + 1, &e, 10);
		if (e == end + 1 || (*e && !strchr("/?#", *e)) || port == 0 || port > 65535)
			return -EINVAL;
	}
	*ret_host = strndup(host, (size_t)(end - host));
	if (!*ret_host)
		return -ENOMEM;
	*ret_port = (unsigned)port;
	return 0;
}
