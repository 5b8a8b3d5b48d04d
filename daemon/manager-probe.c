/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

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

static void on_probe_done(void *userdata, const ProbeResult *res)
{
	Manager *m = userdata;
	bool gate = m->probe_gates;
	_cleanup_free_ char *url = url_for_people(res->url), *message = NULL;
	_cleanup_free_ char *reason = NULL;
	bool ok = res->key_passed && res->verdict != PROBE_UNREACHABLE;

	m->last_probe = now_realtime();
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
			m->n_probe_failures++;
			log_event(LOG_CRIT, SL_MESSAGE_FAIL_OPEN,
			          "FAIL-OPEN: nginx serves private files without a token: %s (%s)",
			          reason ? reason : "out of memory", url ? url : "");
		}
		set_probe_state(m, -1, reason, url);
		break;
	case PROBE_UNREACHABLE:
		m->n_probe_failures++;
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
		if (res->verdict == PROBE_KEY_REFUSED)
			m->n_probe_failures++;
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

	m->probe = probe_free(m->probe);
	m->probe_gates = false;
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
	m->probe = probe_free(m->probe);
	m->probe_gates = false;
	m->probe_timer = sd_event_source_disable_unref(m->probe_timer);
}
