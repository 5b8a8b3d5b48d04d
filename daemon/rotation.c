/* SPDX-License-Identifier: MIT */
#include "rotation.h"

usec_t rotation_due(const KeyRing *r, const Config *c)
{
	const Key *active = keyring_active(r);

	if (!active)
		return USEC_INFINITY;
	if (active->activated > USEC_INFINITY - c->rotate_every)
		return USEC_INFINITY;
	return active->activated + c->rotate_every;
}

static usec_t earliest_drop(const KeyRing *r)
{
	usec_t t = USEC_INFINITY;

	for (size_t i = 0; i < r->n_keys; i++)
		if (r->keys[i].state == KEY_RETIRED && r->keys[i].drop_after < t)
			t = r->keys[i].drop_after;
	return t;
}

static usec_t min_usec(usec_t a, usec_t b)
{
	return a < b ? a : b;
}

RotationAction rotation_next(const KeyRing *r, const Config *c, const RotationInput *in, usec_t now,
                             usec_t *ret_when)
{
	const Key *pending = keyring_pending(r);
	usec_t when = USEC_INFINITY, t;

	/* After a failed save every step would fail the same way at once (a
	 * full disk): back off, whatever is due. */
	if (now < in->hold_until) {
		*ret_when = in->hold_until;
		return ROTATION_WAIT;
	}

	/* A pending key nginx is confirmed to have becomes active after the
	 * delay, whatever else lags: it cannot sign links nginx refuses. */
	if (pending && in->confirmed_kid >= pending->kid) {
		t = in->confirmed_at + c->activation_delay;
		if (in->activate_now || now >= t)
			return ROTATION_ACTIVATE;
		when = t;
	}

	if (in->sync_needed) {
		if (now >= in->retry_at)
			return ROTATION_SYNC;
		when = min_usec(when, in->retry_at);
	}

	/* While a key is on its way into nginx, no other change starts: one
	 * rotation at a time, and its confirmation must be about this ring. */
	if (pending) {
		*ret_when = when;
		return ROTATION_WAIT;
	}

	if (!keyring_active(r) && r->n_keys < KEYRING_MAX_KEYS)
		return ROTATION_PUBLISH;

	t = earliest_drop(r);
	if (now >= t)
		return ROTATION_DROP;
	when = min_usec(when, t);

	if (in->sync_needed) {
		/* Rotating on top of a failing nginx adds nothing but another
		 * unpublished key: wait for the retry. */
		*ret_when = when;
		return ROTATION_WAIT;
	}

	t = rotation_due(r, c);
	if (r->n_keys >= KEYRING_MAX_KEYS) {
		/* No room for a key (the config allows enough for the
		 * schedule; rotations by hand filled it): the next drop
		 * makes room. A revoke makes its own. */
		*ret_when = when;
		return ROTATION_WAIT;
	}
	if (in->rotate_requested || now >= t)
		return ROTATION_PUBLISH;
	when = min_usec(when, t);

	*ret_when = when;
	return ROTATION_WAIT;
}

RotationAction rotation_next_derived(const RotationInput *in, usec_t ring_until, usec_t now,
                                     usec_t *ret_when)
{
	usec_t when = ring_until;

	/* The schedule first: a sync must carry the epochs of now. */
	if (now >= ring_until)
		return ROTATION_DERIVE;
	if (in->sync_needed) {
		if (now >= in->retry_at)
			return ROTATION_SYNC;
		when = min_usec(when, in->retry_at);
	}
	*ret_when = when;
	return ROTATION_WAIT;
}

const char *rotation_action_to_string(RotationAction a)
{
	static const char *const table[_ROTATION_ACTION_MAX] = {
		[ROTATION_WAIT] = "wait",       [ROTATION_SYNC] = "sync",
		[ROTATION_PUBLISH] = "publish", [ROTATION_ACTIVATE] = "activate",
		[ROTATION_DROP] = "drop",       [ROTATION_DERIVE] = "derive",
	};

	return a >= 0 && a < _ROTATION_ACTION_MAX ? table[a] : NULL;
}
