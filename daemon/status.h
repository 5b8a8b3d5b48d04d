/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "keyring.h"

/* What STATUS reports besides the ring. */
typedef struct StatusInfo {
	usec_t next_rotation; /* USEC_INFINITY: none scheduled */
	usec_t last_reload;   /* 0: never */
	bool nginx_ok;
	const char *nginx_error; /* NULL when ok */
	bool nginx_pending;      /* files not yet confirmed in nginx, or an apply running */
	/* What the last successful publication proved (nginx_confirmation_to_
	 * string()); NULL before the first. */
	const char *nginx_confirmation;
	/* The enforcement probes: 0 unknown (off, or none answered yet), -1 a
	 * private path answered without a token (fail-open), 1 enforced. */
	int enforcing;
	const char *probe_reason; /* NULL when enforced or unknown */
	const char *probe_url;    /* the request that showed it */
	usec_t last_probe;        /* 0: never */
	uint64_t n_signed;
	uint64_t n_errors;
	uint64_t n_rotations;
	uint64_t n_errors_code[_PROTO_ERROR_MAX];
	uint64_t n_reload_failures; /* failed syncs: test, reload or a refused probe link */
	uint64_t n_probe_failures;  /* probes that found fail-open, a refused key, no answer */
	/* Requests taken and not yet done ("queued"): a revoke (its fresh
	 * key), a rotation, and imports (legacy keys above confirmed_kid). */
	uint32_t confirmed_kid;
	uint32_t revoke_kid; /* 0: none */
	usec_t revoke_since;
	bool rotate_queued;
	usec_t rotate_since;
	/* The link algorithms: what signs, and what nginx checks (a mask of
	 * LINK_ALGORITHM_BIT()s) until algorithm_until (0: no other). */
	LinkAlgorithm algorithm;
	unsigned algorithms_checked;
	usec_t algorithm_previous_until;
	/* mode = derived only: */
	uint32_t epoch;        /* the schedule's epoch at now (kids are epochs) */
	usec_t master_switch;  /* 0: no master roll in progress */
	usec_t previous_until; /* the previous master's last epoch is dropped then */
} StatusInfo;

/* Formats STATUS's one-line JSON (DESIGN.md field names; times in unix
 * seconds, null when unset). Never includes a secret. Returns 0 or -ENOMEM. */
int status_format_json(const KeyRing *r, const Config *c, const StatusInfo *info, char **ret);

/* The one-line sd_notify STATUS= text: active kid, next rotation, nginx. */
int status_format_line(const KeyRing *r, const StatusInfo *info, char **ret);
