/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <systemd/sd-daemon.h>

#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "manager.h"
#include "nginx-audit.h"
#include "proto.h"

/* The enforcement probes' glue: when they run, and what their verdict does
 * to the manager (DESIGN.md, "Enforcement probes"). */

#define PROBE_TIMEOUT (5 * USEC_PER_SEC)
/* nginx -T tests the configuration as nginx -t does, then prints it. */
#define DUMP_TIMEOUT (20 * USEC_PER_SEC)

bool manager_probe_wanted(const Manager *m)
{
	const char *origin;
	bool loopback;

	return config_probe_origin(m->config, &origin, &loopback);
}

/* A URL for messages: without the query, which holds a probe's token. */
static char *url_for_people(const char *url)
{
	return url ? strndup(url, strcspn(url, "?")) : NULL;
}

static void set_probe_state(Manager *m, int enforcing, const char *reason, const char *url)
{
	char *r = reason ? strdup(reason) : NULL, *u = url_for_people(url);

	free(m->probe_reason);
	free(m->probe_url);
	m->probe_reason = r;
	m->probe_url = u;
	m->enforcing = enforcing;
}

/* The answer to CHECK: the verdict, and what STATUS says of it. */
static char *check_answer(const Manager *m, const char *verdict)
{
	_cleanup_free_ char *reason = NULL, *url = NULL;
	char *s;

	if ((m->probe_reason && json_escape(m->probe_reason, &reason) < 0) ||
	    (m->probe_url && json_escape(m->probe_url, &url) < 0))
		return NULL;
	if (asprintf(&s,
	             "OK {\"enforcing\":%s,\"verdict\":\"%s\",\"reason\":%s%s%s,"
	             "\"probe_url\":%s%s%s,\"error\":%s%s%s,\"config\":%s}",
	             m->enforcing == 0  ? "null"
	             : m->enforcing > 0 ? "true"
	                                : "false",
	             verdict, reason ? "\"" : "", reason ? reason : "null", reason ? "\"" : "",
	             url ? "\"" : "", url ? url : "null", url ? "\"" : "",
	             m->check_error ? "\"" : "", m->check_error ? m->check_error : "null",
	             m->check_error ? "\"" : "", m->check_config ? m->check_config : "null") < 0)
		return NULL;
	return s;
}

/* Answers CHECK once both its probe and its reading of nginx -T are over. */
static void check_waiters_answer(Manager *m)
{
	_cleanup_free_ char *line = NULL;

	if (m->n_check_waiters == 0 || m->probe || m->dump_op)
		return;
	line =
	    check_answer(m, manager_probe_wanted(m) && m->check_verdict ? m->check_verdict : "off");
	for (size_t i = 0; i < m->n_check_waiters; i++)
		conn_reply_deferred(m->check_waiters[i],
		                    line ? line : "ERR internal out of memory");
	m->n_check_waiters = 0;
}

static void on_probe_done(void *userdata, const ProbeResult *res)
{
	Manager *m = userdata;
	bool gate = m->probe_gates;
	_cleanup_free_ char *url = url_for_people(res->url), *message = NULL;
	_cleanup_free_ char *reason = NULL;
	bool ok = res->key_passed && res->verdict != PROBE_UNREACHABLE;

	m->last_probe = now_realtime();
	if (res->verdict != PROBE_PASS && res->verdict != PROBE_PUBLIC_REFUSED)
		m->n_probe_failures++;
	switch (res->verdict) {
	case PROBE_FAIL_OPEN:
		if (res->kind == PROBE_UNSIGNED_DOUBLED
		        ? asprintf(
		              &reason,
		              "a private path spelled with \"//\" answered HTTP %ld without a "
		              "token: the server keeps doubled slashes (merge_slashes off) and a "
		              "location of the site's own serves them (%s); make it refuse them "
		              "(location ~ // { return 403; }) or turn merge_slashes on",
		              res->status, url ? url : "the probe URL") < 0
		        : asprintf(
		              &reason,
		              "a private path answered HTTP %ld without a token: locations.conf "
		              "is not what serves it (not included in the server {} of %s, or a "
		              "location, rewrite or return of the site's own takes the path "
		              "first; securelinkctl check names it)",
		              res->status, url ? url : "the probe URL") < 0)
			reason = NULL;
		if (m->enforcing >= 0) {
			log_event(LOG_CRIT, SL_MESSAGE_FAIL_OPEN,
			          "FAIL-OPEN: nginx serves private files without a token: %s (%s)",
			          reason ? reason : "out of memory", url ? url : "");
		}
		set_probe_state(m, -1, reason, url);
		break;
	case PROBE_UNREACHABLE:
		log_warning("The enforcement probe got no answer from %s: %s (set [nginx] probe "
		            "to the origin nginx serves links on, or probe = no)",
		            url ? url : "nginx", res->error ? res->error : "");
		if (m->enforcing < 0)
			/* Still fail-open, as far as we know. */
			break;
		set_probe_state(m, 0, NULL, NULL);
		break;
	default:
		if (m->enforcing < 0)
			log_notice("nginx enforces the links again: a private path without a "
			           "token got 403");
		set_probe_state(m, 1, NULL, NULL);
		if (res->verdict == PROBE_PUBLIC_REFUSED)
			log_warning(
			    "A public path got HTTP 403 from nginx (%s): public files SIGN "
			    "answers unsigned are refused (include locations.conf with "
			    "serve_public = yes, or serve media_url's public part), ignoring.",
			    url ? url : "");
		break;
	}
	if (!ok && res->verdict != PROBE_UNREACHABLE &&
	    asprintf(&message,
	             "nginx refused a link signed with key %" PRIu32 " (HTTP %ld for %s): it "
	             "does not check links with the keys file securelinkd wrote (keys.conf "
	             "not included in http {}, or locations.conf not in the server {} that "
	             "serves links)",
	             res->kid, res->status, url ? url : "the probe URL") < 0)
		message = NULL;
	else if (!ok && res->verdict == PROBE_UNREACHABLE &&
	         asprintf(&message,
	                  "the enforcement probe got no answer from %s: %s (set [nginx] probe "
	                  "to the origin nginx serves links on, or probe = no)",
	                  url ? url : "nginx", res->error ? res->error : "") < 0)
		message = NULL;

	free(m->check_error);
	m->check_error = NULL;
	if (!ok && message && json_escape(message, &m->check_error) < 0)
		m->check_error = NULL;
	m->probe = probe_free(m->probe);
	m->probe_gates = false;
	m->check_verdict = probe_verdict_to_string(res->verdict);
	check_waiters_answer(m);
	if (gate)
		manager_gate_done(m, ok, message ? message : "the enforcement probe failed");
	else
		manager_notify_status(m);
}

int manager_probe_start(Manager *m, bool gate)
{
	_cleanup_(probe_plan_done) ProbePlan plan = {};
	const char *origin;
	bool loopback;
	int r;

	if (m->probe) {
		if (!gate || m->probe_gates)
			return -EBUSY;
		/* A gating probe supersedes a periodic one. */
		m->probe = probe_free(m->probe);
	}
	if (!config_probe_origin(m->config, &origin, &loopback))
		return -ENOTCONN;
	r = probe_plan_build(m->signing_config, m->config, m->ring, m->signer, origin, "127.0.0.1",
	                     (int64_t)(now_realtime() / USEC_PER_SEC), &plan);
	if (r < 0)
		return r;
	if (plan.n_requests == 0)
		return -ENOENT;
	r = probe_start(m->event, &plan, loopback, PROBE_TIMEOUT, on_probe_done, m, &m->probe);
	if (r < 0)
		return r;
	m->probe_gates = gate;
	return 0;
}

/* CHECK's "config": {"error": ...} when nginx's configuration cannot be read. */
static void set_check_config_error(Manager *m, const char *error)
{
	_cleanup_free_ char *e = NULL;

	free(m->check_config);
	m->check_config = NULL;
	if (json_escape(error, &e) < 0 || asprintf(&m->check_config, "{\"error\":\"%s\"}", e) < 0)
		m->check_config = NULL;
}

/* base_url's host and port (the probe's when base_url is empty), and the
 * private paths, for the audit. */
static int audit_site(const Manager *m, NginxAuditSite *site, char **ret_host, char ***ret_paths)
{
	const Config *c = m->config;
	const char *origin = c->base_url;
	_cleanup_strv_free_ char **paths = NULL;
	bool loopback;
	char *p;
	int r;

	if (!*origin && !config_probe_origin(c, &origin, &loopback))
		origin = "http://127.0.0.1";
	r = nginx_audit_origin(origin, ret_host, &site->port);
	if (r < 0)
		return r;
	site->tls = strncasecmp(origin, "https://", 8) == 0;
	for (size_t i = 0; c->private_prefixes && c->private_prefixes[i]; i++) {
		if (asprintf(&p, "%s%s", c->media_url,
		             c->private_prefixes[i] + strspn(c->private_prefixes[i], "/")) < 0 ||
		    strv_consume(&paths, p) < 0)
			return -ENOMEM;
	}
	/* Without private prefixes all of media_url is private. */
	if (!paths && ((p = strdup(c->media_url)) == NULL || strv_consume(&paths, p) < 0))
		return -ENOMEM;
	site->keys_file = c->keys_file;
	site->locations_file = c->locations_file;
	site->host = *ret_host;
	site->media_url = c->media_url;
	site->media_root = c->media_root;
	site->private_paths = paths;
	*ret_paths = TAKE_PTR(paths);
	return 0;
}

/* Reads and audits the dump; the JSON into m->check_config. */
static void audit_dump(Manager *m, const char *path)
{
	_cleanup_(nginx_dump_freep) NginxDump *d = NULL;
	_cleanup_(nginx_audit_freep) NginxAudit *a = NULL;
	_cleanup_free_ char *buf = NULL, *error = NULL, *msg = NULL, *host = NULL;
	_cleanup_strv_free_ char **paths = NULL;
	NginxAuditSite site = {};
	size_t size;
	int r;

	r = read_file(path, NGINX_DUMP_MAX, &buf, &size);
	if (r < 0) {
		log_warning_errno(r, "Failed to read nginx -T's output %s: %m", path);
		if (asprintf(&msg, "cannot read nginx -T's output %s: %s", path,
		             r == -EFBIG ? "over 16 MiB" : strerror(-r)) >= 0)
			set_check_config_error(m, msg);
		return;
	}
	r = nginx_dump_parse(buf, size, &d, &error);
	if (r < 0) {
		if (asprintf(&msg, "cannot parse nginx -T's output: %s",
		             error ? error : strerror(-r)) >= 0)
			set_check_config_error(m, msg);
		return;
	}
	r = audit_site(m, &site, &host, &paths);
	if (r >= 0)
		r = nginx_audit_run(d, &site, &a);
	free(m->check_config);
	m->check_config = NULL;
	if (r >= 0)
		r = nginx_audit_json(a, &m->check_config);
	if (r == -E2BIG) {
		if (asprintf(&msg,
		             "cannot audit nginx's configuration: its includes, read in place, "
		             "hold over %u directives (files that include each other?)",
		             AUDIT_VISITS_MAX) >= 0)
			set_check_config_error(m, msg);
	} else if (r < 0)
		set_check_config_error(m, "cannot audit nginx's configuration: out of memory");
}

static void on_dump_done(void *userdata, const NginxResult *res)
{
	Manager *m = userdata;
	char path[64];

	if (res->error < 0) {
		/* nginx's message may quote the keys file: the journal gets it,
		 * the client does not. */
		log_warning("securelinkctl check: nginx -T failed: %s",
		            res->message ? res->message : strerror(-res->error));
		set_check_config_error(m, "nginx -T failed, so nginx's configuration cannot be "
		                          "read (see the journal, and securelinkctl status)");
	} else if (m->dump_fd < 0)
		audit_dump(m, NGINX_DUMP_FILE);
	else {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", m->dump_fd);
		audit_dump(m, path);
	}
	if (m->dump_fd >= 0)
		close(m->dump_fd);
	m->dump_fd = -1;
	m->dump_op = nginx_op_free(m->dump_op);
	check_waiters_answer(m);
}

/* Starts reading nginx -T for CHECK; a failure to start is its answer. */
static void check_dump_start(Manager *m)
{
	int fd = -1, r;

	if (!m->config->test_unit) {
		fd = memfd_create("nginx-dump", MFD_CLOEXEC);
		if (fd < 0) {
			set_check_config_error(m, "cannot run nginx -T: no memory file");
			return;
		}
	}
	r = nginx_dump_config(m->event, m->config, DUMP_TIMEOUT, fd, on_dump_done, m, &m->dump_op);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		set_check_config_error(
		    m, r == -ENOENT ? "nginx's configuration is not read: test_command is not "
		                      "\"nginx -t ...\" (its -t is made -T to dump it)"
		                    : "cannot run nginx -T (see the journal)");
		if (r != -ENOENT)
			log_warning_errno(r, "Failed to run nginx -T for CHECK: %m");
		return;
	}
	m->dump_fd = fd;
}

void manager_handle_check(Manager *m, Conn *c)
{
	Conn **w;
	int r;

	if (m->nginx_op) {
		conn_reply_error(c, PROTO_UNAVAILABLE,
		                 "nginx is being tested and reloaded; the probes follow (try "
		                 "again in a moment)");
		return;
	}
	w = reallocarray(m->check_waiters, m->n_check_waiters + 1, sizeof(Conn *));
	if (!w) {
		conn_reply_error(c, PROTO_INTERNAL, "out of memory");
		return;
	}
	m->check_waiters = w;
	if (!m->probe && manager_probe_wanted(m)) {
		r = manager_probe_start(m, false);
		if (r < 0) {
			log_warning_errno(r, "Failed to start the enforcement probe for CHECK: %m");
			conn_reply_error(c, PROTO_INTERNAL,
			                 "cannot start the enforcement probe (see the journal)");
			return;
		}
	}
	if (!m->dump_op)
		check_dump_start(m);
	m->check_waiters[m->n_check_waiters++] = conn_defer(c);
	check_waiters_answer(m);
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	int r;

	if (!m->probe && !manager_nginx_busy(m) && manager_probe_wanted(m)) {
		r = manager_probe_start(m, false);
		if (r < 0 && r != -ENOENT)
			log_warning_errno(r, "Failed to start the enforcement probe, ignoring: %m");
	}
	manager_probe_arm(m);
	return 0;
}

void manager_probe_arm(Manager *m)
{
	int r;

	if (!m->probe_timer) {
		r = sd_event_add_time_relative(m->event, &m->probe_timer, CLOCK_MONOTONIC,
		                               m->config->probe_every, USEC_PER_SEC, on_probe_timer,
		                               m);
		if (r < 0)
			log_warning_errno(r, "Failed to arm the probe timer, ignoring: %m");
		return;
	}
	(void)sd_event_source_set_time_relative(m->probe_timer, m->config->probe_every);
	(void)sd_event_source_set_enabled(m->probe_timer, SD_EVENT_ONESHOT);
}

void manager_probe_stop(Manager *m)
{
	for (size_t i = 0; i < m->n_check_waiters; i++)
		conn_reply_deferred(m->check_waiters[i],
		                    "ERR unavailable securelinkd is stopping (try again)");
	m->n_check_waiters = 0;
	free(m->check_waiters);
	m->check_waiters = NULL;
	free(m->check_error);
	m->check_error = NULL;
	if (m->dump_op && m->dump_fd >= 0)
		close(m->dump_fd);
	m->dump_op = nginx_op_free(m->dump_op);
	free(m->check_config);
	m->check_config = NULL;
	m->probe = probe_free(m->probe);
	m->probe_gates = false;
	m->probe_timer = sd_event_source_disable_unref(m->probe_timer);
}
