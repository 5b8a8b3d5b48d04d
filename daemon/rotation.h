/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "keyring.h"

/* The rotation state machine's decisions, without I/O: given the ring, what
 * nginx is known to have, and the time, what is the next step and when.
 * The manager carries the steps out and asks again. */

typedef enum RotationAction {
	ROTATION_WAIT,     /* nothing to do before *ret_when (USEC_INFINITY: never) */
	ROTATION_SYNC,     /* write the snippets from the ring, test, reload, confirm */
	ROTATION_PUBLISH,  /* add a new key (first start, schedule or request) */
	ROTATION_ACTIVATE, /* the pending key is confirmed in nginx, and the delay passed */
	ROTATION_DROP,     /* some keys are past drop_after */
	ROTATION_DERIVE,   /* mode = derived: recompute the epochs' ring (the schedule moved) */
	_ROTATION_ACTION_MAX,
} RotationAction;

typedef struct RotationInput {
	bool sync_needed;       /* the snippets on disk or in nginx lag the ring */
	usec_t retry_at;        /* after a failed sync: not before this; 0 = now */
	uint32_t confirmed_kid; /* every kid up to this one is confirmed in nginx */
	usec_t confirmed_at;    /* when that confirmation came (CLOCK_REALTIME) */
	bool rotate_requested;  /* ROTATE asked for a new key */
	bool activate_now;      /* ROTATE revoke: no activation_delay */
	usec_t hold_until;      /* a key ring save failed: no step before this */
} RotationInput;

/* Decides the next step at now. ret_when is set for ROTATION_WAIT. */
RotationAction rotation_next(const KeyRing *r, const Config *c, const RotationInput *in, usec_t now,
                             usec_t *ret_when);

/* When the next scheduled rotation is due: the active key's activation plus
 * rotate_every (so restarts never reset the schedule); USEC_INFINITY when
 * there is no active key. */
usec_t rotation_due(const KeyRing *r, const Config *c);

/* mode = derived: there is nothing to publish, activate or drop by hand;
 * the ring is a function of the time (derive_ring()), recomputed at
 * ring_until, and the snippets follow it. Returns ROTATION_DERIVE,
 * ROTATION_SYNC or ROTATION_WAIT (ret_when set). */
RotationAction rotation_next_derived(const RotationInput *in, usec_t ring_until, usec_t now,
                                     usec_t *ret_when);

const char *rotation_action_to_string(RotationAction a);
