/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "proto.h"
#include "log.h"
#include "manager.h"

/* The enforcement probes' glue: when they run, and what their verdict does
 * to the manager (DESIGN.md, "Enforcement probes"). */

#define PROBE_TIMEOUT (5 * USEC_PER_SEC)

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
	             "\"probe_url\":%s%s%s,\"error\":%s%s%s}",
	             m->enforcing == 0  ? "null"
	             : m->enforcing > 0 ? "true"
	                                : "false",
	             verdict, reason ? "\"" : "", reason ? reason : "null", reason ? "\"" : "",
	             url ? "\"" : "", url ? url : "null", url ? "\"" : "",
	             m->check_error ? "\"" : "", m->check_error ? m->check_error : "null",
	             m->check_error ? "\"" : "") < 0)
		return NULL;
	return s;
}

static void check_waiters_answer(Manager *m, const char *verdict)
{
	_cleanup_free_ char *line = check_answer(m, verdict);

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
		if (asprintf(&reason,
		             "a private path answered HTTP %ld without a token: locations.conf is "
		             "not what serves it (not included in the server {} of %s, or a "
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
	check_waiters_answer(m, probe_verdict_to_string(res->verdict));
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

void manager_handle_check(Manager *m, Conn *c)
{
	Conn **w;
	int r;

	if (!manager_probe_wanted(m)) {
		conn_reply(c, "OK {\"enforcing\":null,\"verdict\":\"off\",\"reason\":null,"
		              "\"probe_url\":null,\"error\":null}");
		return;
	}
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
	if (!m->probe) {
		r = manager_probe_start(m, false);
		if (r < 0) {
			log_warning_errno(r, "Failed to start the enforcement probe for CHECK: %m");
			conn_reply_error(c, PROTO_INTERNAL,
			                 "cannot start the enforcement probe (see the journal)");
			return;
		}
	}
	m->check_waiters[m->n_check_waiters++] = conn_defer(c);
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
	m->probe = probe_free(m->probe);
	m->probe_gates = false;
	m->probe_timer = sd_event_source_disable_unref(m->probe_timer);
}
