/* SPDX-License-Identifier: MIT */
#include "log.h"
#include "manager-fleet.h"
#include "manager-verbs.h"

/* mode = derived: recomputes the ring of epochs for now and for what this
 * host's nginx is confirmed to have. The snippets follow the ring: a sync is
 * due after every change (an unchanged file costs one read and no reload).
 *
 * The invariant, as in mode = local: this host signs only with a key its own
 * nginx is confirmed to have (derive_ring() picks the active epoch from
 * rotation.confirmed_kid), and it publishes every epoch that any host of the
 * fleet may sign with, or may have signed a living link with. A reload that
 * fails leaves nginx with the previous file, which holds the next epoch
 * already: signing goes on with the schedule for up to rotate_every +
 * clock_skew, then stays on the newest epoch nginx has, with links capped
 * at that epoch's deadline (sign_reply()), while the retries go on. */
void manager_fleet_refresh(Manager *m)
{
	KeyRing *ring = NULL;
	usec_t now = now_realtime(), until = USEC_INFINITY;
	int r;

	r = derive_ring(m->masters, m->config, now, m->rotation.confirmed_kid, &ring, &until);
	if (r < 0) {
		/* Keep the ring we have (its keys stay valid for a while) and
		 * try again. */
		log_error_errno(r, "Failed to derive the keys of the current epochs, retrying: %m");
		m->ring_until = now + MANAGER_RETRY_MIN;
		return;
	}
	keyring_free(m->ring);
	m->ring = ring;
	m->ring_until = until;
	m->rotation.sync_needed = true;
}

/* mode = derived: the snippets of the epochs of now, before READY=1.
 * Nothing signs until nginx is confirmed to have them: a keys file on disk
 * that matches proves nothing, a test or reload that failed before the
 * restart may have left nginx with older epochs (there is no ring on disk
 * that, as in mode = local, remembers what nginx confirmed). */
int manager_fleet_start(Manager *m)
{
	usec_t until;
	int r;

	m->rotation.confirmed_kid = 0;
	r = derive_ring(m->masters, m->config, now_realtime(), 0, &m->ring, &until);
	if (r < 0)
		return log_error_errno(r, "Failed to derive the keys of the current epochs: %m");
	r = manager_write_snippets(m);
	if (r < 0)
		return r;
	m->rotation.sync_needed = true;
	m->files_unconfirmed = true;
	/* Recompute once nginx confirmed: then an epoch is active. */
	m->ring_until = until;

	r = server_new(m->event, m->config, manager_handle_line, m, &m->server);
	if (r < 0)
		return r;

	manager_step(m);
	return 0;
}

static int copy_string(char **dst, const char *src)
{
	char *s = NULL;

	if (src) {
		s = strdup(src);
		if (!s)
			return -ENOMEM;
	}
	free(*dst);
	*dst = s;
	return 0;
}

static bool streq_null(const char *a, const char *b)
{
	return a && b ? streq(a, b) : a == b;
}

/* The key mode and the masters were read at start-up (a credential is only
 * there then), and in a fleet rotate_every numbers the epochs every host
 * must agree on: these change at the next restart only. */
int manager_fleet_keep_schedule(Manager *m, Config *c)
{
	const Config *old = m->config;
	bool fleet = old->mode == KEY_MODE_DERIVED;

	if (c->mode == old->mode && streq_null(c->master_key_file, old->master_key_file) &&
	    streq_null(c->master_key_file_previous, old->master_key_file_previous) &&
	    c->master_switch == old->master_switch &&
	    (!fleet || c->rotate_every == old->rotate_every))
		return 0;

	log_warning("mode, master_key_file, master_key_file_previous, master_switch%s take effect "
	            "at the next restart (systemctl restart securelinkd), ignoring.",
	            fleet ? " and (with mode = derived) rotate_every" : "");
	c->mode = old->mode;
	c->master_switch = old->master_switch;
	if (fleet)
		c->rotate_every = old->rotate_every;
	if (copy_string(&c->master_key_file, old->master_key_file) < 0 ||
	    copy_string(&c->master_key_file_previous, old->master_key_file_previous) < 0)
		return -ENOMEM;
	return 0;
}
