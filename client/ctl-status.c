/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <time.h>

#include "base64url.h"
#include "config.h"
#include "json.h"
#include "proto.h"
#include "nginxconf.h"
#include "ctl.h"
#include "securelink-client.h"
#include "util.h"

static void status_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] status\n"
	       "\n"
	       "Shows the active key, the next rotation, every key with its state and times,\n"
	       "the last nginx reload and the counters; in fleet mode (mode = derived) also the\n"
	       "epoch and a master roll's times. --json prints the daemon's JSON as is.\n"
	       "\n"
	       "  -h, --help   show this help\n");
}

static void format_relative(char *buf, size_t size, uint64_t t, uint64_t now)
{
	static const struct {
		const char *unit;
		uint64_t sec;
	} units[] = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
	uint64_t d = t > now ? t - now : now - t;
	size_t n = 0;
	int shown = 0;

	if (t > now)
		n += (size_t)snprintf(buf, size, "in ");
	if (d == 0)
		n += (size_t)snprintf(buf + n, size - n, "0s");
	/* The two largest units say enough: "in 5h 3m". */
	for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2 && n < size; i++) {
		uint64_t v = d / units[i].sec;

		if (v == 0 && shown == 0)
			continue;
		d -= v * units[i].sec;
		if (v > 0)
			n += (size_t)snprintf(buf + n, size - n, "%s%" PRIu64 "%s",
			                      shown ? " " : "", v, units[i].unit);
		shown++;
	}
	if (t <= now && n < size)
		snprintf(buf + n, size - n, " ago");
}

static void format_time(char *buf, size_t size, const Json *j)
{
	uint64_t t;
	time_t tt;
	struct tm tm;

	if (json_get_u64(j, &t) < 0 || t > INT64_MAX) {
		snprintf(buf, size, "-");
		return;
	}
	tt = (time_t)t;
	if (!localtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%" PRIu64, t);
}

static void print_when(const char *label, const Json *j, uint64_t now)
{
	char abs[64], rel[64];
	uint64_t t;

	if (json_get_u64(j, &t) < 0) {
		printf("%-15s -\n", label);
		return;
	}
	format_time(abs, sizeof(abs), j);
	format_relative(rel, sizeof(rel), t, now);
	printf("%-15s %s (%s)\n", label, abs, rel);
}

static void print_u64_field(const char *label, const Json *j)
{
	uint64_t v;

	if (json_get_u64(j, &v) >= 0)
		printf("%-15s %" PRIu64 "\n", label, v);
	else
		printf("%-15s -\n", label);
}

static int status_print_table(const char *text)
{
	_cleanup_(json_freep) Json *j = NULL;
	const Json *keys, *nginx, *counters, *v;
	uint64_t now = now_realtime() / USEC_PER_SEC, a, b, e;
	char buf[256];

	if (json_parse(text, &j) < 0 || j->type != JSON_OBJECT)
		return ctl_fail(EXIT_DAEMON,
		                "status: the daemon's JSON is malformed (try --json to see it)");

	/* Before anything else: links that protect nothing. */
	nginx = json_get(j, "nginx");
	v = json_get(nginx, "enforcing");
	if (v && v->type == JSON_BOOLEAN && !v->boolean) {
		const Json *why = json_get(nginx, "enforcing_reason"),
		           *url = json_get(nginx, "probe_url");
		char reason[1024];

		ctl_printable(why && why->type == JSON_STRING ? why->text : "", reason,
		              sizeof(reason));
		printf("%-15s nginx serves private files WITHOUT A TOKEN: %s\n",
		       "FAIL-OPEN:", reason);
		ctl_printable(url && url->type == JSON_STRING ? url->text : "", buf, sizeof(buf));
		printf("%-15s %s\n", "Probed URL:", buf);
	}

	if (json_get_u64(json_get(j, "active_kid"), &a) >= 0)
		printf("%-15s %" PRIu64 "\n", "Active key:", a);
	else
		printf("%-15s none yet (publishing to nginx)\n", "Active key:");
	print_when("Next rotation:", json_get(j, "next_rotation"), now);
	v = json_get(j, "mode");
	if (v && v->type == JSON_STRING) {
		ctl_printable(v->text, buf, sizeof(buf));
		printf("%-15s %s\n", "Key mode:", buf);
	}
	/* mode = derived: kids are epochs; a master roll has two times. */
	if (json_get_u64(json_get(j, "epoch"), &a) >= 0)
		printf("%-15s %" PRIu64 " (the next one is published ahead)\n", "Epoch:", a);
	if (json_get_u64(json_get(j, "master_switch"), &a) >= 0) {
		print_when("Master switch:", json_get(j, "master_switch"), now);
		print_when("Previous until:", json_get(j, "previous_master_until"), now);
	}

	nginx = json_get(j, "nginx");
	v = json_get(nginx, "ok");
	if (v && v->type == JSON_BOOLEAN)
		printf("%-15s %s\n", "nginx:", v->boolean ? "ok" : "ERROR");
	v = json_get(nginx, "error");
	if (v && v->type == JSON_STRING) {
		ctl_printable(v->text, buf, sizeof(buf));
		printf("%-15s %s\n", "nginx error:", buf);
	}
	v = json_get(nginx, "confirmation");
	if (v && v->type == JSON_STRING) {
		static const struct {
			const char *value, *text;
		} meanings[] = {
			{ "workers-replaced", "nginx runs new workers with the files" },
			{ "not-running",
			  "nginx is not running; it reads the files when it starts" },
			{ "reload-command", "test passed, reload command exited 0 (unconfirmed)" },
			{ "test-only", "test passed; nothing reloaded (reload = none)" },
			{ "unchecked", "files written; no test, no reload" },
		};
		const char *meaning = NULL;

		ctl_printable(v->text, buf, sizeof(buf));
		for (size_t i = 0; i < ELEMENTSOF(meanings); i++)
			if (streq(buf, meanings[i].value))
				meaning = meanings[i].text;
		printf("%-15s %s\n", "Confirmed by:", meaning ?: buf);
	}
	print_when("Last reload:", json_get(nginx, "last_reload"), now);
	v = json_get(nginx, "enforcing");
	if (v && (v->type == JSON_BOOLEAN || v->type == JSON_NULL))
		printf("%-15s %s\n", "Enforcing:",
		       v->type == JSON_NULL ? "unknown (no probe answered yet, or probe = no)"
		       : v->boolean         ? "yes (a private path without a token got 403)"
		                            : "NO (see FAIL-OPEN above)");
	print_when("Last probe:", json_get(nginx, "last_probe"), now);

	/* Requests answered "queued": they complete once nginx takes the keys. */
	v = json_get(j, "queued");
	if (v && v->type == JSON_ARRAY)
		for (size_t i = 0; i < v->n; i++) {
			const Json *q = v->items[i], *what = json_get(q, "request");
			char since[64] = "-", rel[64] = "";
			uint64_t t;

			if (!what || what->type != JSON_STRING)
				continue;
			ctl_printable(what->text, buf, 32);
			if (json_get_u64(json_get(q, "since"), &t) >= 0) {
				format_time(since, sizeof(since), json_get(q, "since"));
				format_relative(rel, sizeof(rel), t, now);
			}
			if (json_get_u64(json_get(q, "kid"), &a) >= 0)
				printf("%-15s %s of key %" PRIu64
				       ", since %s (%s); completes once nginx "
				       "accepts the keys\n",
				       "Queued:", buf, a, since, rel);
			else
				printf("%-15s %s, since %s (%s); completes once nginx accepts the "
				       "keys\n",
				       "Queued:", buf, since, rel);
		}

	counters = json_get(j, "counters");
	if (json_get_u64(json_get(counters, "signed"), &a) >= 0 &&
	    json_get_u64(json_get(counters, "errors"), &b) >= 0 &&
	    json_get_u64(json_get(counters, "rotations"), &e) >= 0)
		printf("%-15s %" PRIu64 " links signed, %" PRIu64 " errors, %" PRIu64
		       " rotations\n",
		       "Counters:", a, b, e);
	else {
		print_u64_field("Signed:", json_get(counters, "signed"));
		print_u64_field("Errors:", json_get(counters, "errors"));
		print_u64_field("Rotations:", json_get(counters, "rotations"));
	}

	keys = json_get(j, "keys");
	if (keys && keys->type == JSON_ARRAY) {
		printf("\n%-10s %-17s %-19s  %-19s  %-19s  %-19s\n", "KID", "STATE", "PUBLISHED",
		       "ACTIVATED", "RETIRED", "DROP AFTER");
		for (size_t i = 0; i < keys->n; i++) {
			const Json *k = keys->items[i], *l;
			char p[32], ac[32], r[32], d[32], kid[24] = "-", state[32] = "?";

			if (json_get_u64(json_get(k, "kid"), &a) >= 0)
				snprintf(kid, sizeof(kid), "%" PRIu64, a);
			v = json_get(k, "state");
			if (v && v->type == JSON_STRING)
				ctl_printable(v->text, state, 16);
			l = json_get(k, "legacy");
			if (l && l->type == JSON_BOOLEAN && l->boolean)
				strncat(state, " (legacy)", sizeof(state) - strlen(state) - 1);
			format_time(p, sizeof(p), json_get(k, "published"));
			format_time(ac, sizeof(ac), json_get(k, "activated"));
			format_time(r, sizeof(r), json_get(k, "retired"));
			format_time(d, sizeof(d), json_get(k, "drop_after"));
			printf("%-10s %-17s %-19s  %-19s  %-19s  %-19s\n", kid, state, p, ac, r, d);
		}
	}
	return EXIT_OK;
}

int verb_status(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *answer = NULL;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			status_help();
			return EXIT_OK;
		default:
			code = ctl_global_option("status", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_USAGE,
		                "status: unexpected argument \"%s\" (see securelinkctl status "
		                "--help)",
		                argv[optind]);

	code = ctl_request("status", "STATUS", REQUEST_TIMEOUT, &answer);
	if (code != EXIT_OK)
		return code;
	if (arg_json) {
		printf("%s\n", answer);
		return EXIT_OK;
	}
	return status_print_table(answer);
}

/* ---- check ---- */

static void check_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] check\n"
	       "\n"
	       "Asks securelinkd to probe nginx now: a random private name without a token\n"
	       "must get 403, and signed with the newest key must pass nginx's check. Prints\n"
	       "the verdict and, when links are not enforced, the cause and the fix. Reads\n"
	       "nginx -T in the daemon and prints which server {} includes the snippets and\n"
	       "what of the site's own takes private paths from the checks. Needs\n"
	       "root or the admin_group. Exit 0: nginx enforces the links; 1: it does not,\n"
	       "or cannot be asked (probe = no); 4 and up as for the other commands.\n"
	       "\n"
	       "  -h, --help   show this help\n");
}

static const char *json_text(const Json *j, const char *key)
{
	const Json *v = json_get(j, key);

	return v && v->type == JSON_STRING ? v->text : NULL;
}

static int check_print_verdict(const Json *j);

/* CHECK's "config": where the snippets are included, and what of the
 * site's own takes private paths from the checks, each with its fix. */
static void check_print_config(const Json *j)
{
	const Json *c = json_get(j, "config"), *servers, *keys, *findings;
	const char *error;
	char buf[1024], at[512];

	if (!c || c->type != JSON_OBJECT)
		return;
	printf("\nnginx's configuration (nginx -T):\n");
	error = json_text(c, "error");
	if (error) {
		ctl_printable(error, buf, sizeof(buf));
		printf("  not read: %s\n", buf);
		return;
	}
	keys = json_get(c, "keys_included");
	for (size_t i = 0; keys && keys->type == JSON_ARRAY && i < keys->n; i++)
		if (keys->items[i]->type == JSON_STRING) {
			ctl_printable(keys->items[i]->text, at, sizeof(at));
			printf("  the keys file is included in http {} at %s\n", at);
		}
	servers = json_get(c, "servers");
	for (size_t i = 0; servers && servers->type == JSON_ARRAY && i < servers->n; i++) {
		const Json *s = servers->items[i], *serves = json_get(s, "serves_links");
		const char *inc = json_text(s, "locations_included");
		char names[256], listen[256];

		ctl_printable(json_text(s, "at") ?: "?", at, sizeof(at));
		ctl_printable(json_text(s, "server_name") ?: "", names, sizeof(names));
		ctl_printable(json_text(s, "listen") ?: "", listen, sizeof(listen));
		printf("  server {} at %s (server_name %s; listen %s)%s:\n", at,
		       *names ? names : "\"\"", *listen ? listen : "*:80",
		       serves && serves->type == JSON_BOOLEAN && serves->boolean
		           ? ", which serves the links"
		           : "");
		ctl_printable(inc ?: "", buf, sizeof(buf));
		if (inc)
			printf("    includes the locations file at %s\n", buf);
		else
			printf("    does not include the locations file\n");
	}
	findings = json_get(c, "findings");
	if (!findings || findings->type != JSON_ARRAY || findings->n == 0) {
		printf("  Nothing of the site's own takes private paths from the checks.\n");
		return;
	}
	for (size_t i = 0; i < findings->n; i++) {
		const Json *f = findings->items[i];

		ctl_printable(json_text(f, "text") ?: "", buf, sizeof(buf));
		ctl_printable(json_text(f, "at") ?: "", at, sizeof(at));
		printf("  Problem%s%s: %s\n", *at ? " at " : "", at, buf);
	}
}

static int check_print(const char *text)
{
	_cleanup_(json_freep) Json *j = NULL;
	int code;

	if (json_parse(text, &j) < 0 || j->type != JSON_OBJECT || !json_text(j, "verdict"))
		return ctl_fail(EXIT_DAEMON,
		                "check: the daemon's JSON is malformed (try --json to see it)");
	code = check_print_verdict(j);
	check_print_config(j);
	return code;
}

static int check_print_verdict(const Json *j)
{
	const char *verdict, *reason, *url, *error;
	char buf[1024];

	verdict = json_text(j, "verdict");
	reason = json_text(j, "reason");
	url = json_text(j, "probe_url");
	error = json_text(j, "error");

	if (streq(verdict, "pass") || streq(verdict, "public-refused")) {
		printf("nginx enforces the links: a private path without a token got 403, and a\n"
		       "link of the newest key passed the check.\n");
		if (streq(verdict, "public-refused"))
			printf("But a public path got 403: files SIGN answers unsigned are "
			       "refused (serve_public = yes, or serve media_url's public part).\n");
		return EXIT_OK;
	}
	if (streq(verdict, "off")) {
		printf("The probes are off ([nginx] probe = no, or reload = none without probe):\n"
		       "securelinkd cannot tell whether nginx checks the links. Set [nginx] probe\n"
		       "to the origin nginx serves links on (e.g. http://127.0.0.1).\n");
		return 1;
	}
	if (streq(verdict, "fail-open")) {
		ctl_printable(reason ? reason : "", buf, sizeof(buf));
		printf("FAIL-OPEN: nginx serves private files WITHOUT A TOKEN.\n%s\n", buf);
		ctl_printable(url ? url : "", buf, sizeof(buf));
		printf("Probed URL: %s\n", buf);
		printf("Fix: include the locations file in the server {} that serves base_url\n"
		       "(securelinkctl nginx-config prints the line), remove the site's own\n"
		       "location for media_url and any rewrite or return that takes the path\n"
		       "first, then reload nginx and run securelinkctl check again.\n");
		return 1;
	}
	ctl_printable(error ? error : verdict, buf, sizeof(buf));
	printf("nginx does not check links with securelinkd's keys: %s\n", buf);
	return 1;
}

int verb_check(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *answer = NULL;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			check_help();
			return EXIT_OK;
		default:
			code = ctl_global_option("check", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return ctl_fail(
		    EXIT_USAGE,
		    "check: unexpected argument \"%s\" (see securelinkctl check --help)",
		    argv[optind]);

	code = ctl_request("check", "CHECK", REQUEST_TIMEOUT, &answer);
	if (code != EXIT_OK)
		return code;
	if (arg_json) {
		_cleanup_(json_freep) Json *j = NULL;
		const char *v;

		printf("%s\n", answer);
		if (json_parse(answer, &j) < 0 || !(v = json_text(j, "verdict")))
			return EXIT_DAEMON;
		return streq(v, "pass") || streq(v, "public-refused") ? EXIT_OK : 1;
	}
	return check_print(answer);
}

/* ---- metrics ---- */

static void metrics_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] metrics [-o FILE]\n"
	       "\n"
	       "Prints securelinkd's counters and times in the Prometheus text format that\n"
	       "node_exporter's textfile collector reads: links signed, errors by code,\n"
	       "rotations, reload and probe failures, whether nginx enforces the links (1, 0,\n"
	       "NaN before a probe answered), the active key's age, the seconds to the next\n"
	       "rotation and to each key's drop. securelink-metrics.timer writes it to\n"
	       "/var/lib/prometheus/node-exporter/securelink.prom.\n"
	       "\n"
	       "  -o, --output FILE  write FILE (through FILE.tmp and a rename) instead of\n"
	       "                     standard output; when securelinkd cannot be asked,\n"
	       "                     FILE says securelink_up 0 and the exit status the cause\n"
	       "  -h, --help         show this help\n");
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(FILE *f, const char *name, const char *type, const char *help, const Json *v)
{
	uint64_t n;

	if (json_get_u64(v, &n) < 0)
		return;
	metric_head(f, name, type, help);
	fprintf(f, "%s %" PRIu64 "\n", name, n);
}

/* Seconds from now to t (negative when past); nothing for a null time. */
static bool seconds_to(const Json *t, uint64_t now, int64_t *ret)
{
	uint64_t v;

	if (json_get_u64(t, &v) < 0)
		return false;
	*ret = (int64_t)v - (int64_t)now;
	return true;
}

static int metrics_print(FILE *f, const char *text)
{
	_cleanup_(json_freep) Json *j = NULL;
	const Json *counters, *nginx, *keys, *by_code, *v;
	uint64_t now = now_realtime() / USEC_PER_SEC, kid;
	int64_t s;

	if (json_parse(text, &j) < 0 || j->type != JSON_OBJECT)
		return ctl_fail(EXIT_DAEMON, "metrics: the daemon's STATUS JSON is malformed");
	counters = json_get(j, "counters");
	nginx = json_get(j, "nginx");
	keys = json_get(j, "keys");

	metric_head(f, "securelink_up", "gauge", "Whether securelinkd answered.");
	fprintf(f, "securelink_up 1\n");
	metric_u64(f, "securelink_links_signed_total", "counter",
	           "Links signed since securelinkd started.", json_get(counters, "signed"));
	by_code = json_get(counters, "errors_by_code");
	if (by_code && by_code->type == JSON_OBJECT) {
		metric_head(
		    f, "securelink_errors_total", "counter",
		    "Requests answered with ERR, by error code, since securelinkd started.");
		for (size_t i = 0; i < by_code->n; i++) {
			uint64_t n;

			/* Codes are the daemon's fixed names: [a-z-]. */
			if (json_get_u64(by_code->items[i], &n) >= 0 &&
			    strspn(by_code->keys[i], "abcdefghijklmnopqrstuvwxyz-") ==
			        strlen(by_code->keys[i]))
				fprintf(f, "securelink_errors_total{code=\"%s\"} %" PRIu64 "\n",
				        by_code->keys[i], n);
		}
	}
	metric_u64(f, "securelink_rotations_total", "counter",
	           "Keys activated since securelinkd started.", json_get(counters, "rotations"));
	metric_u64(f, "securelink_reload_failures_total", "counter",
	           "Failed publications to nginx (test, reload, or a key nginx refused).",
	           json_get(counters, "reload_failures"));
	metric_u64(f, "securelink_probe_failures_total", "counter",
	           "Enforcement probes that failed (fail-open, key refused, no answer).",
	           json_get(counters, "probe_failures"));

	v = json_get(nginx, "enforcing");
	metric_head(f, "securelink_enforcing", "gauge",
	            "1 when a private path without a token got 403 from nginx, 0 when not "
	            "(FAIL-OPEN), NaN before a probe answered or with probes off.");
	fprintf(f, "securelink_enforcing %s\n",
	        v && v->type == JSON_BOOLEAN ? (v->boolean ? "1" : "0") : "NaN");
	v = json_get(nginx, "ok");
	if (v && v->type == JSON_BOOLEAN) {
		metric_head(f, "securelink_nginx_ok", "gauge",
		            "1 when the last publication to nginx succeeded.");
		fprintf(f, "securelink_nginx_ok %d\n", v->boolean ? 1 : 0);
	}

	for (size_t i = 0; keys && keys->type == JSON_ARRAY && i < keys->n; i++) {
		const Json *k = keys->items[i], *state = json_get(k, "state");

		if (state && state->type == JSON_STRING && streq(state->text, "active") &&
		    seconds_to(json_get(k, "activated"), now, &s)) {
			metric_head(f, "securelink_active_key_age_seconds", "gauge",
			            "Seconds since the active key was activated.");
			fprintf(f, "securelink_active_key_age_seconds %" PRId64 "\n", -s);
		}
	}
	if (seconds_to(json_get(j, "next_rotation"), now, &s)) {
		metric_head(f, "securelink_next_rotation_seconds", "gauge",
		            "Seconds to the next scheduled rotation (negative: overdue).");
		fprintf(f, "securelink_next_rotation_seconds %" PRId64 "\n", s);
	}
	metric_head(f, "securelink_key_drop_seconds", "gauge",
	            "Seconds until a retired key is dropped from nginx, by kid.");
	for (size_t i = 0; keys && keys->type == JSON_ARRAY && i < keys->n; i++) {
		const Json *k = keys->items[i];

		if (json_get_u64(json_get(k, "kid"), &kid) >= 0 &&
		    seconds_to(json_get(k, "drop_after"), now, &s))
			fprintf(f, "securelink_key_drop_seconds{kid=\"%" PRIu64 "\"} %" PRId64 "\n",
			        kid, s);
	}
	return EXIT_OK;
}

/* Writes text to path through path.tmp and a rename: node_exporter's
 * collector never reads half a file. */
static int metrics_write_file(const char *path, const char *text, size_t len)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return ctl_fail(EXIT_DAEMON, "metrics: out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return ctl_fail(EXIT_DAEMON,
		                "metrics: cannot create %s: %m (is the directory there?)", tmp);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;

		(void)unlink(tmp);
		errno = e;
		return ctl_fail(EXIT_DAEMON, "metrics: cannot write %s: %m", path);
	}
	return EXIT_OK;
}

int verb_metrics(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "output", required_argument, NULL, 'o' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *answer = NULL, *text = NULL;
	const char *output = NULL;
	size_t len = 0;
	FILE *f;
	int opt, code, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "ho:", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			metrics_help();
			return EXIT_OK;
		case 'o':
			if (output)
				return ctl_repeated_option("metrics", "--output");
			output = optarg;
			break;
		default:
			code = ctl_global_option("metrics", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return ctl_fail(
		    EXIT_USAGE,
		    "metrics: unexpected argument \"%s\" (see securelinkctl metrics --help)",
		    argv[optind]);
	code = ctl_request("metrics", "STATUS", REQUEST_TIMEOUT, &answer);
	f = open_memstream(&text, &len);
	if (!f)
		return ctl_fail(EXIT_DAEMON, "metrics: out of memory");
	if (code == EXIT_OK)
		r = metrics_print(f, answer);
	else {
		/* The collector keeps the last file: say that it is stale. */
		metric_head(f, "securelink_up", "gauge", "Whether securelinkd answered.");
		fprintf(f, "securelink_up 0\n");
		r = code;
	}
	if (fclose(f) != 0)
		return ctl_fail(EXIT_DAEMON, "metrics: out of memory");
	if (output) {
		code = metrics_write_file(output, text, len);
		return code != EXIT_OK ? code : r;
	}
	if (r != EXIT_OK)
		return r;
	if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
		return ctl_fail(EXIT_DAEMON, "metrics: cannot write to standard output: %m");
	return EXIT_OK;
}

/* ---- nginx-config ---- */
