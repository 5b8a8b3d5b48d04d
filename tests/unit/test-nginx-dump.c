/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "nginx-audit.h"
#include "nginx-dump.h"
#include "util.h"

/* The tokenizer follows ngx_conf_read_token(); the accepted inputs below
 * are ones `nginx -t` accepts, the refused ones are ones it refuses. */

static NginxDump *parse_ok(const char *text)
{
	NginxDump *d = NULL;
	char *error = NULL;

	if (nginx_dump_parse(text, strlen(text), &d, &error) < 0)
		fail_msg("refused: %s", error ? error : "?");
	assert_null(error);
	return d;
}

static void assert_refused(const char *text, const char *error_part)
{
	NginxDump *d = NULL;
	char *error = NULL;

	assert_int_equal(nginx_dump_parse(text, strlen(text), &d, &error), -EBADMSG);
	assert_null(d);
	assert_non_null(error);
	if (!strstr(error, error_part))
		fail_msg("error \"%s\" lacks \"%s\"", error, error_part);
	free(error);
}

static void test_parse_splits_files_and_reads_words_quotes_and_blocks(void **state)
{
	NginxDump *d = parse_ok("# configuration file /etc/nginx/nginx.conf:\n"
	                        "events {}\n"
	                        "http {\n"
	                        "  # a comment; with { braces\n"
	                        "  map $arg_k $v { default \"a b\"; 'c' \"d\\\"e\"; }\n"
	                        "  server { if ($x = \"\") { return 403; } return 200 ${a}b; }\n"
	                        "}\n"
	                        "\n"
	                        "# configuration file /etc/nginx/x.conf:\n"
	                        "a\\ b c;\n"
	                        "\n");
	NginxNode *http, *map, *server, *iff;

	assert_int_equal(d->n_files, 2);
	assert_string_equal(d->files[0].name, "/etc/nginx/nginx.conf");
	assert_string_equal(d->files[1].name, "/etc/nginx/x.conf");
	assert_int_equal(d->files[0].root.n_children, 2);
	http = d->files[0].root.children[1];
	assert_string_equal(http->args[0], "http");
	assert_true(http->block);
	assert_int_equal(http->line, 2);
	assert_int_equal(http->n_children, 2);
	map = http->children[0];
	assert_int_equal(map->line, 4);
	assert_int_equal(map->n_args, 3);
	assert_int_equal(map->n_children, 2);
	assert_string_equal(map->children[0]->args[1], "a b");
	assert_string_equal(map->children[1]->args[0], "c");
	assert_string_equal(map->children[1]->args[1], "d\"e");
	server = http->children[1];
	iff = server->children[0];
	/* "if ($x = \"\")": ')' after a quote is a word of its own. */
	assert_int_equal(iff->n_args, 5);
	assert_string_equal(iff->args[3], "");
	assert_string_equal(iff->args[4], ")");
	assert_string_equal(server->children[1]->args[2], "${a}b");
	assert_int_equal(d->files[1].root.n_children, 1);
	/* nginx unescapes only quotes, '\\' and \\t \\r \\n; "\\ " stays. */
	assert_string_equal(d->files[1].root.children[0]->args[0], "a\\ b");
	assert_int_equal(d->files[1].root.children[0]->line, 1);
	nginx_dump_free(d);
}

static void test_parse_refuses_malformed_input(void **state)
{
	NginxDump *d = NULL;
	char *error = NULL;
	char deep[4096] = "# configuration file /n.conf:\n";

	assert_refused("", "printed nothing");
	assert_refused("events {}\n", "does not start with");
	assert_refused("# configuration file /n.conf:\nhttp {\n", "/n.conf:2: unexpected end");
	assert_refused("# configuration file /n.conf:\na b\n", "unexpected end of file");
	assert_refused("# configuration file /n.conf:\n}\n", "/n.conf:1: unexpected \"}\"");
	assert_refused("# configuration file /n.conf:\na { b }\n", "lacks its \";\"");
	assert_refused("# configuration file /n.conf:\n;\n", "unexpected \";\"");
	assert_refused("# configuration file /n.conf:\n{ }\n", "unexpected \"{\"");
	assert_refused("# configuration file /n.conf:\na \"b;\n", "expecting \"");
	assert_refused("# configuration file /n.conf:\na \"b\"c;\n", "runs into the next");
	for (int i = 0; i < 70; i++)
		strcat(deep, "a {");
	assert_refused(deep, "nested deeper");
	assert_int_equal(nginx_dump_parse("# configuration file /n.conf:\0a;", 33, &d, &error),
	                 -EBADMSG);
	assert_non_null(strstr(error, "NUL"));
	free(error);
}

static void test_parse_error_never_quotes_the_text(void **state)
{
	NginxDump *d = NULL;
	char *error = NULL;
	const char *t = "# configuration file /k.conf:\nmap $a $b { \"1\" \"s3cr3t\"Q; }\n";

	assert_int_equal(nginx_dump_parse(t, strlen(t), &d, &error), -EBADMSG);
	assert_null(strstr(error, "s3cr3t"));
	assert_null(strstr(error, "Q"));
	free(error);
}

static void test_include_names_files_relative_to_the_main_one_and_globs(void **state)
{
	NginxDump *d = parse_ok("# configuration file /etc/nginx/nginx.conf:\n\n"
	                        "# configuration file /etc/nginx/sites/a:\n\n"
	                        "# configuration file /etc/nginx/sites/b:\n\n"
	                        "# configuration file /etc/nginx/sites/sub/c:\n\n");
	const NginxDumpFile *f;
	size_t i = 0;

	f = nginx_dump_next_include(d, "sites/*", &i);
	assert_string_equal(f->name, "/etc/nginx/sites/a");
	f = nginx_dump_next_include(d, "sites/*", &i);
	assert_string_equal(f->name, "/etc/nginx/sites/b");
	/* '*' does not cross '/', as glob(3) in nginx. */
	assert_null(nginx_dump_next_include(d, "sites/*", &i));
	i = 0;
	f = nginx_dump_next_include(d, "/etc/nginx/sites/sub/c", &i);
	assert_string_equal(f->name, "/etc/nginx/sites/sub/c");
	nginx_dump_free(d);
}

static void test_dump_argv_makes_the_test_flag_dump(void **state)
{
	char *a[] = { "/usr/sbin/nginx", "-t", "-q", "-c", "/x.conf", NULL };
	char *b[] = { "nginx", "-qt", "-p/run/", NULL };
	char *c[] = { "nginx", "-c", "-t.conf", "-q", NULL };
	char *e[] = { "nginx", "-p", "/t/", "-tq", NULL };
	char **r = NULL;

	assert_int_equal(nginx_dump_argv(a, &r), 0);
	assert_string_equal(r[1], "-T");
	assert_string_equal(r[4], "/x.conf");
	strv_free(r);
	assert_int_equal(nginx_dump_argv(b, &r), 0);
	assert_string_equal(r[1], "-qT");
	strv_free(r);
	/* -c's value is not an option. */
	assert_int_equal(nginx_dump_argv(c, &r), -ENOENT);
	assert_int_equal(nginx_dump_argv(e, &r), 0);
	assert_string_equal(r[2], "/t/");
	assert_string_equal(r[3], "-Tq");
	strv_free(r);
}

/* ---- the audit ---- */

#define HEAD                                                                                       \
	"# configuration file /n/nginx.conf:\n"                                                    \
	"http {\n"                                                                                 \
	"include /s/keys.conf;\n"
#define KEYS                                                                                       \
	"# configuration file /s/keys.conf:\n"                                                     \
	"map $arg_kid $securelink_secret { default \"\"; \"1\" \"TOPSECRETVALUE\"; }\n"
#define LOCS                                                                                       \
	"# configuration file /s/locations.conf:\n"                                                \
	"location ^~ /media/private/ { alias /m/private/; }\n"                                     \
	"location /media/ { alias /m/; }\n"

/* The audit of text for a site whose media_url /media/ is media_root, its
 * private path private_path. */
static NginxAudit *audit_site(const char *text, const char *host, unsigned port, bool tls,
                              const char *media_root, const char *private_path)
{
	char *paths[] = { (char *)private_path, NULL };
	NginxAuditSite site = {
		.keys_file = "/s/keys.conf",
		.locations_file = "/s/locations.conf",
		.host = host,
		.port = port,
		.tls = tls,
		.media_url = "/media/",
		.media_root = media_root,
		.private_paths = paths,
	};
	NginxDump *d = parse_ok(text);
	NginxAudit *a = NULL;
	char *json = NULL;

	assert_int_equal(nginx_audit_run(d, &site, &a), 0);
	assert_int_equal(nginx_audit_json(a, &json), 0);
	/* Nothing of the keys file, ever. */
	assert_null(strstr(json, "TOPSECRETVALUE"));
	free(json);
	nginx_dump_free(d);
	return a;
}

static NginxAudit *audit(const char *text, const char *host, unsigned port)
{
	return audit_site(text, host, port, false, "/m/", "/media/private/");
}

static const char *kinds(const NginxAudit *a)
{
	static char buf[512];

	buf[0] = '\0';
	for (size_t i = 0; i < a->n_findings; i++) {
		strcat(buf, i ? " " : "");
		strcat(buf, a->findings[i].kind);
	}
	return buf;
}

static void test_audit_correct_site_has_no_findings(void **state)
{
	NginxAudit *a = audit(HEAD "server { listen 8080; server_name x;\n"
	                           "include /s/locations.conf;\n"
	                           "location ~ \\.pdf$ { }\n"
	                           "rewrite ^(/media/private/.*)$ $1 last;\n"
	                           "}\n}\n" KEYS LOCS,
	                      "x", 8080);

	assert_string_equal(kinds(a), "");
	assert_int_equal(a->n_keys_included, 1);
	assert_string_equal(a->keys_included[0], "/n/nginx.conf:2");
	assert_int_equal(a->n_servers, 1);
	assert_true(a->servers[0].serves_links);
	assert_string_equal(a->servers[0].locations_included, "/n/nginx.conf:4");
	assert_string_equal(a->servers[0].listen, "8080");
	nginx_audit_free(a);
}

static void test_audit_names_shadowing_locations_and_server_rewrites(void **state)
{
	NginxAudit *a = audit(HEAD "server { listen 127.0.0.1:80;\n"
	                           "rewrite ^/media/(.*)$ /store/$1 break;\n"
	                           "return 301 https://x$request_uri;\n"
	                           "if ($host = y) { return 404; }\n"
	                           "include /s/locations.conf;\n"
	                           "location = /media/private/a { }\n"
	                           "location /media/private/b/ { }\n"
	                           "location ~ ^/media/private/ { }\n"
	                           "}\n}\n" KEYS LOCS,
	                      "x", 80);

	assert_string_equal(kinds(a), "location-shadows location-shadows server-rewrite "
	                              "server-return server-if");
	assert_string_equal(a->findings[0].at, "/n/nginx.conf:8");
	assert_string_equal(a->findings[2].at, "/n/nginx.conf:4");
	nginx_audit_free(a);
}

static void test_audit_finds_the_server_nginx_picks_by_listen_and_name(void **state)
{
	const char *text = HEAD "server { listen 80 default_server; server_name _; }\n"
	                        "server { listen 80; server_name *.example.com;\n"
	                        "include /s/locations.conf; }\n"
	                        "server { listen 10.0.0.1:80; server_name files.example.com; }\n"
	                        "}\n" KEYS LOCS;
	NginxAudit *a = audit(text, "files.example.com", 80);

	/* 10.0.0.1 is not where 127.0.0.1 connects: the wildcard matches. */
	assert_string_equal(kinds(a), "");
	assert_true(a->servers[1].serves_links);
	nginx_audit_free(a);

	a = audit(text, "example.org", 80);
	assert_string_equal(kinds(a), "locations-missing locations-in-other-server");
	assert_true(a->servers[0].serves_links);
	nginx_audit_free(a);

	a = audit(text, "files.example.com", 8443);
	assert_string_equal(kinds(a), "no-server");
	nginx_audit_free(a);
}

static void test_audit_refuses_regexes_that_would_take_gigabytes(void **state)
{
#define SITE(name)                                                                                 \
	HEAD "server { listen 80 default_server; server_name _; }\n"                               \
	     "server { listen 80; server_name \"~%s\";\n"                                          \
	     "include /s/locations.conf; }\n"                                                      \
	     "}\n" KEYS LOCS,                                                                      \
	    name
	const char *ok[] = { "^files\\.example\\.com$", "^f(il){1,3}es?\\.[a-z]+\\.com$",
		             "^f[]a-z[:digit:]]+\\.example\\.com$" };
	/* glibc copies the repeated part per repeat: 99^4 copies, gigabytes;
	 * a repeat of a repeat, whose meaning POSIX leaves open. */
	const char *refused[] = { "^((((x{99}){99}){99}){99})?files\\.example\\.com$",
		                  "^files+?\\.example\\.com$", "^files\\.example\\.co(m){1}*$" };
	char text[2048];
	NginxAudit *a;

	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		snprintf(text, sizeof(text), SITE(ok[i]));
		a = audit(text, "files.example.com", 80);
		assert_string_equal(kinds(a), "");
		nginx_audit_free(a);
	}
	/* Refused, it matches nothing: the default server answers. */
	for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
		snprintf(text, sizeof(text), SITE(refused[i]));
		a = audit(text, "files.example.com", 80);
		assert_string_equal(kinds(a), "locations-missing locations-in-other-server");
		nginx_audit_free(a);
	}
#undef SITE
}

static void test_audit_without_the_includes(void **state)
{
	NginxAudit *a = audit("# configuration file /n/nginx.conf:\n"
	                      "http { server { location /media/ { } } }\n",
	                      "x", 80);

	assert_string_equal(kinds(a), "keys-missing locations-missing location-serves-private");
	nginx_audit_free(a);
}

/* The locations file of serve_public = no: the private location alone. */
#define LOCS_PRIVATE                                                                               \
	"# configuration file /s/locations.conf:\n"                                                \
	"location ^~ /media/private/ { alias /m/private/; }\n"

static void test_audit_names_what_serves_doubled_slashes_under_merge_slashes_off(void **state)
{
	/* Each: the servers (in http {}, after the keys include), the locations
	 * file, media_root, the private path, and what the finding names (NULL:
	 * no finding): nginx 1.22's answer to the layout. */
	static const struct {
		const char *servers, *locs, *media_root, *private_path, *names;
		bool tls; /* port 443, https: SNI picks the server */
	} t[] = {
		/* http {}'s off; the site serves media_url itself. */
		{ "merge_slashes off;\nserver { listen 80; include /s/locations.conf;\n"
		  "location /media/ { alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "/media//private/..., a private", false },
		/* Its location refuses "//" first, as the locations file's does. */
		{ "merge_slashes off;\nserver { listen 80; include /s/locations.conf;\n"
		  "location /media/ { location ~ // { return 403; } alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", NULL, false },
		/* A "//" location that refuses nothing inherits the alias. */
		{ "merge_slashes off;\nserver { listen 80; include /s/locations.conf;\n"
		  "location /media/ { location ~ // { } alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "location ~ // (at /n/nginx.conf:5)",
		  false },
		/* An earlier nested regex answers the files it matches. */
		{ "merge_slashes off;\nserver { listen 80; include /s/locations.conf;\n"
		  "location /media/ { location ~ \\.txt$ { } location ~ // { return 403; }\n"
		  "alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "location ~ \\.txt$", false },
		/* The refusal in a nested prefix location of the site's. */
		{ "merge_slashes off;\nserver { listen 80; include /s/locations.conf;\n"
		  "location / { location /media/ { location ~ // { return 403; } alias /m/; } } "
		  "}\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", NULL, false },
		/* nginx parses the request line with the default server {}'s. */
		{ "server { listen 80 default_server; merge_slashes off; }\n"
		  "server { listen 80; server_name x; include /s/locations.conf;\n"
		  "location /media/ { alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "location /media/ (at /n/nginx.conf:5)",
		  false },
		{ "server { listen 80 default_server; }\n"
		  "server { listen 80; server_name x; merge_slashes off;\n"
		  "include /s/locations.conf; location /media/ { alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", NULL, false },
		{ "merge_slashes OFF;\nserver { listen 80; include /s/locations.conf;\n"
		  "location ^~/media/ { alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "location ^~ /media/", false },
		/* The locations file's plain location refuses "//"; "//media/"
		 * reaches the site's root, which is not media_root. */
		{ "server { listen 80; merge_slashes off; root /w; include /s/locations.conf;\n"
		  "location / { } }\n",
		  LOCS, "/m/", "/media/private/", NULL, false },
		/* Unless media_root lies under it. */
		{ "server { listen 80; merge_slashes off; root /w; include /s/locations.conf;\n"
		  "location / { } }\n",
		  LOCS, "/w/media/", "/media/private/", "//media/private/..., a private path",
		  false },
		/* No location at all: the server {}'s own root. */
		{ "server { listen 80; merge_slashes off; root /w; include /s/locations.conf; }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", "the server {}'s own root", false },
		/* A regex location of the site opens what it matches. */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~* \\.mp4$ { root /w; } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", "location ~* \\.mp4$", false },
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~* \\.mp4$ { proxy_pass http://app; } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", NULL, false },
		/* One anchored elsewhere cannot match; "^/+" and a branch may. */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~ ^/api/ { root /w; } }\n",
		  LOCS, "/w/media/", "/media/private/", NULL, false },
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~* ^/+media/ { root /w; } }\n",
		  LOCS, "/w/media/", "/media/private/", "location ~* ^/+media/", false },
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~ ^/api/|\\.pdf$ { root /w; } }\n",
		  LOCS, "/w/media/", "/media/private/", "location ~ ^/api/|\\.pdf$", false },
		/* A nested prefix does not end the search: the server's regexes
		 * still run after it. */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location / { proxy_pass http://app; location /media/ { deny all; } }\n"
		  "location ~ ^/media/.+\\.pdf$ { root /w; } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", "location ~ ^/media/.+\\.pdf$",
		  false },
		/* A regex location's own nested locations answer for it. */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~ /media/ { return 404; location ~ \\.pdf$ { root /w; } } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", "location ~ \\.pdf$", false },
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location ~* \\.pdf$ { location ~ // { return 403; } root /w; } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", NULL, false },
		/* allow before deny all lets someone in; deny all first, nobody. */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location /media/ { root /w; allow 127.0.0.1; deny all; } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", "location /media/", false },
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location /media/ { root /w; deny all; allow 127.0.0.1; } }\n",
		  LOCS_PRIVATE, "/w/media/", "/media/private/", NULL, false },
		/* A refusal of exactly "//" leaves "///". */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location /media/ { location ~ ^/media//[^/] { return 403; } alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "location /media/", false },
		/* Over https the server SNI picked reads the request line. */
		{ "server { listen 443 ssl default_server; }\n"
		  "server { listen 443 ssl; server_name x; merge_slashes off;\n"
		  "include /s/locations.conf; location /media/ { alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", "location /media/", true },
		{ "server { listen 443 ssl default_server; merge_slashes off; }\n"
		  "server { listen 443 ssl; server_name x;\n"
		  "include /s/locations.conf; location /media/ { alias /m/; } }\n",
		  LOCS_PRIVATE, "/m/", "/media/private/", NULL, true },
		/* A "//" inside the private path: a parent location of the site's. */
		{ "server { listen 80; merge_slashes off; include /s/locations.conf;\n"
		  "location /media/private/ { alias /m/private/; } }\n",
		  "# configuration file /s/locations.conf:\n"
		  "location ^~ /media/private/docs/ { alias /m/private/docs/; }\n",
		  "/m/", "/media/private/docs/", "/media/private//docs/...", false },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		char text[2048];
		NginxAudit *a;

		snprintf(text, sizeof(text), "%s%s}\n%s%s", HEAD, t[i].servers, KEYS, t[i].locs);
		a = audit_site(text, "x", t[i].tls ? 443 : 80, t[i].tls, t[i].media_root,
		               t[i].private_path);
		if (!t[i].names)
			assert_string_equal(kinds(a), "");
		else {
			assert_string_equal(kinds(a), "merge-slashes-off");
			if (!strstr(a->findings[0].text, t[i].names))
				fail_msg("layout %zu: \"%s\" not in \"%s\"", i, t[i].names,
				         a->findings[0].text);
		}
		nginx_audit_free(a);
	}
}

static void test_audit_refuses_includes_that_multiply(void **state)
{
	/* A file listed three times that includes itself: 3^16 readings at
	 * the depth bound. Refused after AUDIT_VISITS_MAX, in well under a
	 * second (seen taking minutes before: the fuzzer's timeout). */
	NginxDump *d = parse_ok(HEAD "server { listen 80; include /s/l.conf; }\n}\n" KEYS
	                             "# configuration file /s/l.conf:\ninclude /s/l.conf;\n"
	                             "# configuration file /s/l.conf:\ninclude /s/l.conf;\n"
	                             "# configuration file /s/l.conf:\ninclude /s/l.conf;\n");
	char *paths[] = { "/media/private/", NULL };
	NginxAuditSite site = { .keys_file = "/s/keys.conf",
		                .locations_file = "/s/locations.conf",
		                .host = "x",
		                .port = 80,
		                .private_paths = paths };
	NginxAudit *a = NULL;

	assert_int_equal(nginx_audit_run(d, &site, &a), -E2BIG);
	assert_null(a);
	nginx_dump_free(d);
}

static void test_audit_origin(void **state)
{
	char *host = NULL;
	unsigned port = 0;

	assert_int_equal(nginx_audit_origin("https://Files.example:8443/x", &host, &port), 0);
	assert_string_equal(host, "Files.example");
	assert_int_equal(port, 8443);
	free(host);
	assert_int_equal(nginx_audit_origin("http://[::1]", &host, &port), 0);
	assert_string_equal(host, "[::1]");
	assert_int_equal(port, 80);
	free(host);
	assert_int_equal(nginx_audit_origin("https://h", &host, &port), 0);
	assert_int_equal(port, 443);
	free(host);
	assert_int_equal(nginx_audit_origin("h:80", &host, &port), -EINVAL);
	assert_int_equal(nginx_audit_origin("http://h:99999", &host, &port), -EINVAL);
	assert_int_equal(nginx_audit_origin("http://:80", &host, &port), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_splits_files_and_reads_words_quotes_and_blocks),
		cmocka_unit_test(test_parse_refuses_malformed_input),
		cmocka_unit_test(test_parse_error_never_quotes_the_text),
		cmocka_unit_test(test_include_names_files_relative_to_the_main_one_and_globs),
		cmocka_unit_test(test_dump_argv_makes_the_test_flag_dump),
		cmocka_unit_test(test_audit_correct_site_has_no_findings),
		cmocka_unit_test(test_audit_names_shadowing_locations_and_server_rewrites),
		cmocka_unit_test(test_audit_finds_the_server_nginx_picks_by_listen_and_name),
		cmocka_unit_test(test_audit_refuses_regexes_that_would_take_gigabytes),
		cmocka_unit_test(test_audit_without_the_includes),
		cmocka_unit_test(
		    test_audit_names_what_serves_doubled_slashes_under_merge_slashes_off),
		cmocka_unit_test(test_audit_refuses_includes_that_multiply),
		cmocka_unit_test(test_audit_origin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
