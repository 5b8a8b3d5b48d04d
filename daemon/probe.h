/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "probe-plan.h"

/* Sends a ProbePlan's requests to nginx with libcurl's multi interface,
 * driven by the event loop's io and timer sources: nothing blocks. */

typedef struct ProbeResult {
	ProbeVerdict verdict; /* the worst of all requests; PROBE_PASS when all passed */
	ProbeKind kind;       /* the request that decided it: its kind, */
	const char *url;      /* its URL (valid during the callback), */
	long status;          /* and its HTTP status, 0 for none */
	const char *error;    /* PROBE_UNREACHABLE: curl's message */
	uint32_t kid;         /* the plan's newest key */
	bool key_passed;      /* every signed request passed */
} ProbeResult;

typedef void (*probe_done_t)(void *userdata, const ProbeResult *result);

typedef struct Probe Probe;

/* Starts the plan's requests (taking ownership of plan) against its URLs;
 * loopback: connect to 127.0.0.1 whatever the host, keeping Host and SNI.
 * done is called once from the event loop unless the probe is freed first.
 * Returns 0 or a negative errno (plan freed, done not called). */
int probe_start(sd_event *e, ProbePlan *plan, bool loopback, usec_t timeout, probe_done_t done,
                void *userdata, Probe **ret);
Probe *probe_free(Probe *p);
