/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keyring.h"
#include "sign.h"

/* The enforcement probes' requests and verdicts, without I/O: which URLs to
 * ask nginx for and what its answers mean. probe.c sends them. */

typedef enum ProbeKind {
	PROBE_UNSIGNED,         /* a private path without a token: must get 403 */
	PROBE_UNSIGNED_DOUBLED, /* the same with "//" after media_url: must get 403
	                         * (a server with merge_slashes off keeps it) */
	PROBE_SIGNED,           /* the same path signed with the newest key: must pass the check */
	PROBE_PUBLIC,           /* a public path: must not get 403 */
	_PROBE_KIND_MAX,
} ProbeKind;

typedef enum ProbeVerdict {
	PROBE_PASS,
	PROBE_FAIL_OPEN,      /* a private path answered without a token */
	PROBE_KEY_REFUSED,    /* a link of the newest key got 403 or 410 */
	PROBE_PUBLIC_REFUSED, /* a public path got 403 */
	PROBE_UNREACHABLE,    /* no HTTP answer at all */
	_PROBE_VERDICT_MAX,
} ProbeVerdict;

typedef struct ProbeRequest {
	ProbeKind kind;
	char *url;    /* absolute: the probe origin, media_url, the path, the query */
	uint32_t kid; /* PROBE_SIGNED: the key it is signed with */
} ProbeRequest;

typedef struct ProbePlan {
	ProbeRequest *requests;
	size_t n_requests;
	uint32_t kid; /* the newest key, whose links the signed probes carry */
} ProbePlan;

void probe_plan_done(ProbePlan *p);

/* Builds the requests for origin: for each private prefix (of c, and of
 * signing, the link format nginx is confirmed to check, while a change
 * passes through) a random name under it unsigned and signed with the
 * ring's newest key until now + 60s, and one public name where c has
 * public paths. ip is what nginx sees as $remote_addr (bind_ip).
 * Returns 0 or a negative errno (-ENOKEY for an empty ring). */
int probe_plan_build(const Config *signing, const Config *c, const KeyRing *r, Signer *s,
                     const char *origin, const char *ip, int64_t now, ProbePlan *ret);

/* What status (0: no HTTP answer) means for a probe of kind. */
ProbeVerdict probe_judge(ProbeKind kind, long status);

const char *probe_verdict_to_string(ProbeVerdict v);
