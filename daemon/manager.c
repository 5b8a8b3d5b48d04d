/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "fileio.h"
#include "link.h"
#include "log.h"
#include "manager.h"
#include "render.h"
#include "status.h"

#define NGINX_TIMEOUT (30 * USEC_PER_SEC)
#define RETRY_MIN     USEC_PER_SEC
#define RETRY_MAX     (60 * USEC_PER_SEC)
#define SNIPPET_MAX   (1024 * 1024)

static void manager_step(Manager *m);
static size_t sign_reply(Manager *m, const Request *req, char *buf, size_t size);

int manager_new(sd_event *e, const char *config_path, Config *config, KeyRing *ring, Manager **ret)
{
	Manager *m;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->event = sd_event_ref(e);
	m->config_path = strdup(config_path);
	if (!m->config_path) {
		manager_free(m);
		return -ENOMEM;
	}
	r = signer_new(&m->signer);
	if (r < 0) {
		manager_free(m);
		return r;
	}
	m->config = config;
	m->ring = ring;
	m->nginx_ok = true;
	*ret = m;
	return 0;
}

static void waiters_fail(Manager *m, ProtoError code, const char *message);

/* Every request answered with ERR counts in STATUS's counters.errors. */
static void reply_error(Manager *m, Conn *c, ProtoError code, const char *message)
{
	m->n_errors++;
	conn_reply_error(c, code, message);
}

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;
	waiters_fail(m, PROTO_UNAVAILABLE, "securelinkd is stopping (try again)");
	free(m->waiters);
	nginx_op_free(m->nginx_op);
	sd_event_source_disable_unref(m->timer);
	server_free(m->server);
	signer_free(m->signer);
	keyring_free(m->ring);
	masters_free(m->masters);
	config_free(m->config);
	free(m->config_path);
	free(m->nginx_error);
	sd_event_unref(m->event);
	free(m);
	return NULL;
}

static uint32_t ring_max_kid(const KeyRing *r)
{
	return r->n_keys > 0 ? r->keys[r->n_keys - 1].kid : 0;
}

static bool derived(const Manager *m)
{
	return m->config->mode == KEY_MODE_DERIVED;
}

static StatusInfo status_info(const Manager *m)
{
	StatusInfo info = {
		.next_rotation = rotation_due(m->ring, m->config),
		.last_reload = m->last_reload,
		.nginx_ok = m->nginx_ok,
		.nginx_error = m->nginx_error,
		.nginx_pending = m->rotation.sync_needed || m->nginx_op,
		.n_signed = m->n_signed,
		.n_errors = m->n_errors + (m->server ? server_errors(m->server) : 0),
		.n_rotations = m->n_rotations,
	};
	DeriveWindow w;

	if (derived(m) && m->masters) {
		if (derive_window(m->config, now_realtime(), &w) >= 0) {
			info.epoch = w.current;
			/* The next switch of the signing epoch, on schedule
			 * (rotation_due() says when the active one began
			 * plus rotate_every, which lags while nginx does). */
			info.next_rotation =
			    derive_epoch_start(m->config, w.signing + 1) + m->config->clock_skew;
		}
		info.master_switch = m->masters->master_switch;
		info.previous_until = derive_previous_until(m->masters, m->config);
	}
	return info;
}

static void notify_status(Manager *m)
{
	StatusInfo info = status_info(m);
	_cleanup_free_ char *line = NULL;

	if (status_format_line(m->ring, &info, &line) >= 0)
		(void)sd_notifyf(false, "STATUS=%s", line);
}

/* Writes one snippet unless the file already holds exactly this text.
 * Returns 1 when written, 0 when unchanged. */
static int write_if_changed(const char *path, const char *text, size_t size, mode_t mode)
{
	_cleanup_free_ char *old = NULL;
	size_t old_size;
	bool same;
	int r;

	r = read_file(path, SNIPPET_MAX, &old, &old_size);
	same = r >= 0 && old_size == size && sodium_memcmp(old, text, size) == 0;
	if (old) {
		/* The old keys file holds secrets too. */
		sodium_memzero(old, old_size);
	}
	if (same)
		return 0;
	r = write_file_atomic(path, text, size, mode, NULL);
	return r < 0 ? r : 1;
}

/* Renders both snippets from the ring and config and writes what differs.
 * Returns 1 when something was written, 0 when the files were current. */
static int write_snippets(Manager *m)
{
	char *keys = NULL, *locations = NULL;
	size_t keys_size = 0, locations_size = 0;
	int r, changed = 0;

	r = render_keys_file(m->ring, m->config, &keys, &keys_size);
	if (r < 0)
		return log_error_errno(r, "Failed to render the keys file: %m");
	/* The keys file holds secrets: readable by root and nginx's group only. */
	r = write_if_changed(m->config->keys_file, keys, keys_size, 0640);
	keyring_text_free(keys, keys_size);
	if (r < 0)
		return log_error_errno(r, "Failed to write %s: %m", m->config->keys_file);
	changed |= r;

	r = render_locations_file(m->config, &locations, &locations_size);
	if (r < 0)
		return log_error_errno(r, "Failed to render the locations file: %m");
	r = write_if_changed(m->config->locations_file, locations, locations_size, 0644);
	free(locations);
	if (r < 0)
		return log_error_errno(r, "Failed to write %s: %m", m->config->locations_file);
	changed |= r;

	return changed;
}

static void set_nginx_error(Manager *m, const char *message)
{
	free(m->nginx_error);
	m->nginx_error = message ? strdup(message) : NULL;
	m->nginx_ok = !message;
}

static void schedule_retry(Manager *m, const char *message)
{
	usec_t backoff = RETRY_MIN;

	m->failures++;
	for (unsigned i = 1; i < m->failures && backoff < RETRY_MAX; i++)
		backoff *= 2;
	if (backoff > RETRY_MAX)
		backoff = RETRY_MAX;
	m->rotation.sync_needed = true;
	m->rotation.retry_at = now_realtime() + backoff;
	set_nginx_error(m, message);
	log_event(LOG_ERR, SL_MESSAGE_NGINX_FAILED,
	          "Publishing keys to nginx failed: %s; retrying in %" PRIu64 "s", message,
	          backoff / USEC_PER_SEC);
	notify_status(m);
}

/* Answers every waiting ROTATE/IMPORT with an error: the client must not
 * hang while securelinkd retries in the background. */
static void waiters_fail(Manager *m, ProtoError code, const char *message)
{
	char line[512];

	proto_format_error(line, sizeof(line), code, message);
	line[strcspn(line, "\n")] = '\0';
	for (size_t i = 0; i < m->n_waiters; i++) {
		conn_reply_deferred(m->waiters[i].conn, line);
		free(m->waiters[i].line);
		m->n_errors++;
	}
	m->n_waiters = 0;
}

static void waiters_answer(Manager *m)
{
	const Key *active = keyring_active(m->ring);
	bool settled = !m->rotation.sync_needed && !m->nginx_op;
	char line[PROTO_LINE_MAX + 64];
	size_t j = 0;

	for (size_t i = 0; i < m->n_waiters; i++) {
		Waiter *w = &m->waiters[i];

		if (w->kind == WAIT_IMPORT && m->rotation.confirmed_kid >= w->kid)
			snprintf(line, sizeof(line), "OK kid=%" PRIu32, w->kid);
		else if (w->kind == WAIT_ROTATE && active && active->kid > w->kid && settled)
			/* Done once a key newer than the one active when it was
			 * asked is active and nginx has the ring (after a revoke:
			 * without the old keys). */
			snprintf(line, sizeof(line), "OK kid=%" PRIu32, active->kid);
		else if (w->kind == WAIT_SIGN && active) {
			const char *message;
			ProtoError code;
			Request req;

			if (proto_parse_line(w->line, w->len, &req, &code, &message) < 0) {
				m->n_errors++;
				proto_format_error(line, sizeof(line), code, message);
			} else
				sign_reply(m, &req, line, sizeof(line));
			line[strcspn(line, "\n")] = '\0';
		} else {
			m->waiters[j++] = *w;
			continue;
		}
		conn_reply_deferred(w->conn, line);
		free(w->line);
	}
	m->n_waiters = j;
}

static int waiter_add(Manager *m, Conn *c, WaitKind kind, uint32_t kid, const char *line,
                      size_t len)
{
	Waiter *w = reallocarray(m->waiters, m->n_waiters + 1, sizeof(Waiter));
	char *copy = NULL;

	if (!w)
		return -ENOMEM;
	m->waiters = w;
	if (line) {
		copy = memdup(line, len + 1);
		if (!copy)
			return -ENOMEM;
	}
	m->waiters[m->n_waiters++] =
	    (Waiter){ .conn = conn_defer(c), .kind = kind, .kid = kid, .line = copy, .len = len };
	return 0;
}

/* Persists the ring. On failure the in-memory ring goes back to what is on
 * disk: nothing may be published or signed that a restart would not know. */
static int save_ring(Manager *m)
{
	_cleanup_free_ char *error = NULL;
	KeyRing *old = NULL;
	bool used_prev;
	int r, k;

	r = keyring_save(m->ring, m->config->state_directory);
	if (r >= 0) {
		if (m->ring_save_failed) {
			/* The error STATUS shows was this one: it is over. */
			m->ring_save_failed = false;
			m->failures = 0;
			set_nginx_error(m, NULL);
		}
		return 0;
	}
	m->ring_save_failed = true;

	log_error_errno(r, "Failed to save the key ring in %s: %m", m->config->state_directory);
	k = keyring_load(m->config->state_directory, &old, &used_prev, &error);
	if (k >= 0) {
		keyring_free(m->ring);
		m->ring = old;
	} else
		log_error("Failed to re-read the key ring after a failed save: %s",
		          error ? error : strerror(-k));
	return r;
}

static void manager_apply_config(Manager *m);

static void on_nginx_done(void *userdata, const NginxResult *result)
{
	Manager *m = userdata;
	uint32_t kid = m->syncing_kid;

	m->nginx_op = nginx_op_free(m->nginx_op);

	if (result->error < 0) {
		schedule_retry(m, result->message ? result->message : strerror(-result->error));
		waiters_fail(m, PROTO_UNAVAILABLE, m->nginx_error);
	} else {
		m->failures = 0;
		m->files_unconfirmed = false;
		m->rotation.retry_at = 0;
		m->rotation.confirmed_kid = kid;
		m->rotation.confirmed_at = now_realtime();
		if (result->reloaded)
			m->last_reload = m->rotation.confirmed_at;
		set_nginx_error(m, NULL);
		if (result->not_running)
			log_info("nginx is not running; it reads the keys from %s when it starts",
			         m->config->keys_file);
		log_event(LOG_INFO, SL_MESSAGE_KEY_PUBLISHED,
		          "Keys up to %" PRIu32 " are published to nginx%s", kid,
		          result->reloaded ? " (reload confirmed)" : "");
		/* mode = derived: which epoch signs depends on what nginx
		 * has; recompute the ring with the new confirmation. */
		m->ring_until = 0;
	}

	if (m->reload_config_pending)
		manager_apply_config(m);
	manager_step(m);
}

static void start_sync(Manager *m)
{
	int r;

	/* Only this sync's outcome may clear the flag; a change made while it
	 * runs sets it again. */
	m->rotation.sync_needed = false;

	r = write_snippets(m);
	if (r < 0) {
		schedule_retry(m, "cannot write the nginx snippets (see the journal)");
		waiters_fail(m, PROTO_UNAVAILABLE, m->nginx_error);
		return;
	}
	m->syncing_kid = ring_max_kid(m->ring);
	if (r > 0)
		m->files_unconfirmed = true;

	/* Unchanged files are not enough after a failed apply: the files on
	 * disk may be ones nginx never loaded (a revoke whose reload failed
	 * would otherwise leave the revoked keys in nginx). */
	if (!m->files_unconfirmed && m->syncing_kid <= m->rotation.confirmed_kid) {
		/* nginx already has exactly these files. */
		m->rotation.confirmed_kid = m->syncing_kid;
		return;
	}

	r = nginx_apply(m->event, m->config, NGINX_TIMEOUT, on_nginx_done, m, &m->nginx_op);
	if (r < 0) {
		log_error_errno(r, "Failed to start the nginx test: %m");
		schedule_retry(m, "cannot run the nginx test command");
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	manager_step(userdata);
	return 0;
}

static void arm_timer(Manager *m, usec_t when)
{
	int r;

	if (when == USEC_INFINITY) {
		if (m->timer)
			(void)sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
		return;
	}
	if (!m->timer) {
		r = sd_event_add_time(m->event, &m->timer, CLOCK_REALTIME, when, 10 * USEC_PER_MSEC,
		                      on_timer, m);
		if (r < 0) {
			log_error_errno(r, "Failed to arm the rotation timer: %m");
			return;
		}
		return;
	}
	(void)sd_event_source_set_time(m->timer, when);
	(void)sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

static void do_publish(Manager *m)
{
	uint32_t kid;
	int r;

	r = keyring_add_random(m->ring, now_realtime(), &kid);
	if (r < 0) {
		log_error_errno(r, "Failed to create a new key: %m");
		schedule_retry(m, "cannot create a new key (see the journal)");
		return;
	}
	r = save_ring(m);
	if (r < 0) {
		schedule_retry(m, "cannot save the key ring (disk full?)");
		m->rotation.hold_until = m->rotation.retry_at;
		waiters_fail(m, PROTO_UNAVAILABLE, m->nginx_error);
		return;
	}
	m->rotation.rotate_requested = false;
	m->rotation.sync_needed = true;
	log_info("Created key %" PRIu32 "; publishing it to nginx", kid);
}

static void do_activate(Manager *m)
{
	Key *pending = keyring_pending(m->ring);
	uint32_t kid = pending->kid;
	bool revoke = m->revoke_requested;
	int r;

	r = keyring_activate(m->ring, kid, now_realtime(), m->config->max_link_ttl,
	                     m->config->clock_skew, revoke);
	if (r < 0) {
		log_error_errno(r, "Failed to activate key %" PRIu32 ": %m", kid);
		return;
	}
	r = save_ring(m);
	if (r < 0) {
		schedule_retry(m, "cannot save the key ring (disk full?)");
		m->rotation.hold_until = m->rotation.retry_at;
		return;
	}
	m->revoke_requested = false;
	m->rotation.activate_now = false;
	m->n_rotations++;
	if (revoke)
		/* The older keys left the ring: they must leave nginx now. */
		m->rotation.sync_needed = true;
	log_event(LOG_INFO, SL_MESSAGE_KEY_ACTIVATED, "Key %" PRIu32 " is active%s", kid,
	          revoke ? "; every older key is revoked" : "");
}

static void do_drop(Manager *m)
{
	int n, r;

	n = keyring_drop_expired(m->ring, now_realtime());
	r = save_ring(m);
	if (r < 0) {
		schedule_retry(m, "cannot save the key ring (disk full?)");
		m->rotation.hold_until = m->rotation.retry_at;
		return;
	}
	m->rotation.sync_needed = true;
	log_event(LOG_INFO, SL_MESSAGE_KEY_DROPPED,
	          "Dropped %d key(s) whose links have all expired", n);
}

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
static void derived_refresh(Manager *m)
{
	KeyRing *ring = NULL;
	usec_t now = now_realtime(), until = USEC_INFINITY;
	int r;

	r = derive_ring(m->masters, m->config, now, m->rotation.confirmed_kid, &ring, &until);
	if (r < 0) {
		/* Keep the ring we have (its keys stay valid for a while) and
		 * try again. */
		log_error_errno(r, "Failed to derive the keys of the current epochs, retrying: %m");
		m->ring_until = now + RETRY_MIN;
		return;
	}
	keyring_free(m->ring);
	m->ring = ring;
	m->ring_until = until;
	m->rotation.sync_needed = true;
}

/* Runs the state machine until it has to wait for time or for nginx, then
 * answers what can be answered now. In mode = local nothing steps while
 * nginx works on the files; in mode = derived the ring follows the clock
 * (DERIVE) even then, since signing must keep to the schedule without
 * waiting for nginx. A state machine that kept stepping without settling is
 * a bug; never spin on it, and never stop either: look again in a second. */
static void manager_step(Manager *m)
{
	bool settled = false;

	for (unsigned guard = 0; guard < 16 && !settled; guard++) {
		usec_t when = USEC_INFINITY, now = now_realtime();
		RotationAction a;

		if (!derived(m) && m->nginx_op)
			break;
		a = derived(m) ? rotation_next_derived(&m->rotation, m->ring_until, now, &when)
		               : rotation_next(m->ring, m->config, &m->rotation, now, &when);
		switch (a) {
		case ROTATION_DERIVE:
			derived_refresh(m);
			continue;
		case ROTATION_SYNC:
			if (m->nginx_op) {
				/* mode = derived: on_nginx_done() steps again. */
				arm_timer(m, m->ring_until);
				settled = true;
				break;
			}
			start_sync(m);
			continue;
		case ROTATION_PUBLISH:
			do_publish(m);
			continue;
		case ROTATION_ACTIVATE:
			do_activate(m);
			continue;
		case ROTATION_DROP:
			do_drop(m);
			continue;
		case ROTATION_WAIT:
		default:
			arm_timer(m, when);
			settled = true;
			break;
		}
	}
	if (!settled && !m->nginx_op) {
		log_warning("Rotation did not settle, looking again in 1s.");
		arm_timer(m, now_realtime() + RETRY_MIN);
	}
	waiters_answer(m);
	notify_status(m);
}

/* mode = derived: the snippets of the epochs of now, before READY=1. Files
 * already holding exactly them are taken as what nginx has (as in mode =
 * local); otherwise nothing signs until nginx confirms the new ones. */
static int derived_start(Manager *m)
{
	usec_t until;
	int r;

	m->rotation.confirmed_kid = 0;
	r = derive_ring(m->masters, m->config, now_realtime(), 0, &m->ring, &until);
	if (r < 0)
		return log_error_errno(r, "Failed to derive the keys of the current epochs: %m");
	r = write_snippets(m);
	if (r < 0)
		return r;
	if (r == 0)
		m->rotation.confirmed_kid = ring_max_kid(m->ring);
	/* As in local mode: nginx may not have loaded what is on disk. */
	m->rotation.sync_needed = true;
	m->files_unconfirmed = true;
	/* Recompute at once: with the confirmation an epoch is active. */
	m->ring_until = 0;

	r = server_new(m->event, m->config, manager_handle_line, m, &m->server);
	if (r < 0)
		return r;

	manager_step(m);
	return 0;
}

int manager_start(Manager *m)
{
	const Key *pending;
	int r;

	if (derived(m)) {
		keyring_free(m->ring);
		m->ring = NULL;
		return derived_start(m);
	}

	/* A first start: the snippets must hold a real key before READY=1, so
	 * the first key is created (not yet active) before anything is written. */
	if (m->ring->n_keys == 0) {
		uint32_t kid;

		r = keyring_add_random(m->ring, now_realtime(), &kid);
		if (r < 0)
			return log_error_errno(r, "Failed to create the first key: %m");
		r = keyring_save(m->ring, m->config->state_directory);
		if (r < 0)
			return log_error_errno(r, "Failed to save the key ring in %s: %m",
			                       m->config->state_directory);
		log_info("Created the first key %" PRIu32 "; publishing it to nginx", kid);
	}
	pending = keyring_pending(m->ring);

	r = write_snippets(m);
	if (r < 0)
		return r;
	/* A key that was published before a restart may never have reached
	 * nginx: the daemon may have died between writing and reloading. */
	m->rotation.confirmed_kid = pending ? pending->kid - 1 : ring_max_kid(m->ring);
	/* Test and reload at every start, even when the files on disk are
	 * current: the daemon may have died after writing them and before
	 * nginx loaded them (a revoke would then never reach nginx). */
	m->rotation.sync_needed = true;
	m->files_unconfirmed = true;

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
static int keep_running_schedule(Manager *m, Config *c)
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

static void manager_apply_config(Manager *m)
{
	_cleanup_free_ char *error = NULL;
	Config *c = NULL;
	int r;

	m->reload_config_pending = false;
	r = config_load(m->config_path, &c, &error);
	if (r < 0) {
		log_error("Configuration not reloaded, keeping the running one: %s", error);
		return;
	}
	/* The socket and the state directory belong to the running process. */
	if (!streq(c->socket, m->config->socket) ||
	    !streq(c->state_directory, m->config->state_directory)) {
		log_warning("socket and state_directory changes take effect at the next restart, "
		            "ignoring.");
		free(c->socket);
		free(c->state_directory);
		c->socket = strdup(m->config->socket);
		c->state_directory = strdup(m->config->state_directory);
		if (!c->socket || !c->state_directory) {
			config_free(c);
			log_error("Out of memory while reloading the configuration, keeping the "
			          "running one.");
			return;
		}
	}
	r = keep_running_schedule(m, c);
	if (r < 0) {
		config_free(c);
		log_error(
		    "Out of memory while reloading the configuration, keeping the running one.");
		return;
	}
	if (c->mode == KEY_MODE_DERIVED) {
		DeriveWindow w;

		if (derive_window(c, now_realtime(), &w) < 0) {
			log_error(
			    "Configuration not reloaded, keeping the running one: with mode = "
			    "derived, (max_link_ttl + clock_skew) / rotate_every must stay below "
			    "%d (raise rotate_every)",
			    DERIVE_MAX_EPOCHS - 3);
			config_free(c);
			return;
		}
		/* max_link_ttl and clock_skew move the window. */
		m->ring_until = 0;
	}
	config_free(m->config);
	m->config = c;
	server_set_config(m->server, c);
	m->rotation.sync_needed = true;
	m->rotation.retry_at = 0;
	log_info("Configuration reloaded from %s", m->config_path);
}

void manager_reload_config(Manager *m)
{
	(void)sd_notify(false, "RELOADING=1");
	if (m->nginx_op)
		/* The running nginx operation uses the current config. */
		m->reload_config_pending = true;
	else {
		manager_apply_config(m);
		manager_step(m);
	}
	(void)sd_notify(false, "READY=1");
}

/* Formats the answer to SIGN into buf (without LF, NUL-terminated): "OK " and
 * the link, or the error. Returns its length. */
static size_t sign_reply(Manager *m, const Request *req, char *buf, size_t size)
{
	const Config *cfg = m->config;
	int64_t now = (int64_t)(now_realtime() / USEC_PER_SEC), expires;
	int64_t max_ttl = (int64_t)(cfg->max_link_ttl / USEC_PER_SEC);
	const Key *active;
	const char *message;
	ProtoError code;
	size_t url_len;
	int r;

	if (req->has_expires)
		expires = req->expires;
	else if (req->has_ttl) {
		/* nginx refuses an empty or zero expires: links that never
		 * expire cannot exist. */
		if (req->ttl <= 0) {
			code = PROTO_BAD_TTL;
			message = "ttl must be a positive number of seconds";
			goto fail;
		}
		if (req->ttl > max_ttl) {
			code = PROTO_TTL_TOO_LONG;
			message = "ttl is longer than max_link_ttl (ask for less)";
			goto fail;
		}
		expires = now + req->ttl;
	} else
		expires = now + (int64_t)(cfg->default_link_ttl / USEC_PER_SEC);

	if (expires <= now) {
		code = PROTO_BAD_TTL;
		message = "expires is not in the future (give a later unix time, or ttl=)";
		goto fail;
	}
	if (expires - now > max_ttl) {
		code = PROTO_TTL_TOO_LONG;
		message = "expires is further away than max_link_ttl (ask for less)";
		goto fail;
	}

	/* mode = derived: every nginx drops an epoch at its deadline; a link
	 * must not outlive its key there. On schedule this never bites (the
	 * deadline is more than max_link_ttl away); it does while this host's
	 * nginx lags and an older epoch signs. */
	active = keyring_active(m->ring);
	if (derived(m) && active &&
	    (usec_t)expires * USEC_PER_SEC >= derive_epoch_deadline(cfg, active->kid)) {
		code = PROTO_UNAVAILABLE;
		message =
		    "nginx on this host has not loaded the current keys, and links of the keys "
		    "it has cannot live that long (ask for a shorter ttl; see securelinkctl "
		    "status)";
		goto fail;
	}

	/* Straight into the answer: this is the hot path of every SIGN. */
	assert(size > STRLEN("OK "));
	memcpy(buf, "OK ", STRLEN("OK "));
	r = link_sign_to(cfg, m->ring, m->signer, req->arg, expires, req->ip, buf + STRLEN("OK "),
	                 size - STRLEN("OK "), &url_len, &code, &message);
	if (r < 0)
		goto fail;
	m->n_signed++;
	return STRLEN("OK ") + url_len;
fail:
	m->n_errors++;
	proto_format_error(buf, size, code, message);
	buf[strcspn(buf, "\n")] = '\0';
	return strlen(buf);
}

static void handle_sign(Manager *m, Conn *c, const Request *req, const char *line, size_t len)
{
	char buf[PROTO_LINE_MAX + 64];

	/* At the very first start no key is active until nginx has the first
	 * one: hold the request (and the connection's later ones) until then,
	 * rather than failing a client that came a moment early. */
	if (line && waiter_add(m, c, WAIT_SIGN, 0, line, len) >= 0)
		return;
	conn_reply_len(c, buf, sign_reply(m, req, buf, sizeof(buf)));
}

static void handle_verify(Manager *m, Conn *c, const Request *req)
{
	static const char *const verdicts[_LINK_VERDICT_MAX] = {
		[LINK_VALID] = "valid",
		[LINK_EXPIRED] = "expired",
	};
	const char *reason = NULL, *message = NULL;
	LinkVerdict verdict;
	uint32_t kid = 0;
	int64_t expires = 0;
	ProtoError code;
	int r;

	r = link_verify(m->config, m->ring, m->signer, req->arg, req->ip,
	                (int64_t)(now_realtime() / USEC_PER_SEC), &verdict, &kid, &expires, &reason,
	                &code, &message);
	if (r < 0) {
		reply_error(m, c, code, message);
		return;
	}
	switch (verdict) {
	case LINK_VALID:
	case LINK_EXPIRED:
		conn_replyf(c, "OK %s kid=%" PRIu32 " expires=%" PRId64, verdicts[verdict], kid,
		            expires);
		break;
	case LINK_PUBLIC:
		conn_reply(c, "OK public");
		break;
	default:
		conn_replyf(c, "OK invalid %s", reason ? reason : "bad token");
		break;
	}
}

static void handle_rotate(Manager *m, Conn *c, const Request *req)
{
	const Key *active = keyring_active(m->ring);

	if (derived(m)) {
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "ROTATE does not apply with mode = derived: every host changes keys "
		            "every rotate_every on its own; after a leak, roll a new master "
		            "secret (see securelinkd(8), FLEET MODE)");
		return;
	}

	if (waiter_add(m, c, WAIT_ROTATE, active ? active->kid : 0, NULL, 0) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "out of memory");
		return;
	}
	/* A rotation already on its way serves this request too. */
	if (!keyring_pending(m->ring))
		m->rotation.rotate_requested = true;
	if (req->revoke) {
		m->revoke_requested = true;
		m->rotation.activate_now = true;
	}
	/* A request after a failure means: try now. */
	m->rotation.retry_at = 0;
	log_info("Rotation%s requested over the socket", req->revoke ? " with revoke" : "");
	manager_step(m);
}

static void handle_import(Manager *m, Conn *c, const Request *req)
{
	size_t arg_len = strlen(req->arg), secret_len = 0;
	unsigned char *secret;
	uint32_t kid;
	int r;

	/* A legacy secret imported on one host would be unknown to the rest of
	 * the fleet, and there is no key ring to keep it in. */
	if (derived(m)) {
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "IMPORT does not apply with mode = derived: migrate with mode = "
		            "local first (see securelinkd(8), FLEET MODE)");
		return;
	}

	secret = sodium_malloc(arg_len + 1);
	if (!secret) {
		reply_error(m, c, PROTO_INTERNAL, "out of memory");
		return;
	}
	r = sodium_base642bin(secret, arg_len, req->arg, arg_len, NULL, &secret_len, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (r < 0 || secret_len == 0) {
		sodium_free(secret);
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "IMPORT takes the legacy secret as unpadded base64url");
		return;
	}
	secret[secret_len] = '\0';
	if (memchr(secret, '\0', secret_len)) {
		sodium_free(secret);
		reply_error(m, c, PROTO_BAD_REQUEST, "the legacy secret contains a NUL byte");
		return;
	}

	r = keyring_add_legacy(m->ring, (const char *)secret, now_realtime(),
	                       m->config->max_link_ttl, m->config->clock_skew, &kid);
	sodium_free(secret);
	if (r == -EINVAL) {
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "the legacy secret holds a '\"', '\\', '$' or control byte nginx "
		            "cannot quote; it was not imported (rotate links instead)");
		return;
	}
	if (r < 0) {
		reply_error(m, c, PROTO_INTERNAL, "cannot add the key (the ring is full?)");
		return;
	}
	if (save_ring(m) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "cannot save the key ring (disk full?)");
		return;
	}
	if (waiter_add(m, c, WAIT_IMPORT, kid, NULL, 0) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "out of memory");
		return;
	}
	m->rotation.sync_needed = true;
	m->rotation.retry_at = 0;
	log_event(LOG_NOTICE, SL_MESSAGE_KEY_IMPORTED,
	          "Imported a legacy key as %" PRIu32
	          "; it serves links without kid until it is dropped",
	          kid);
	manager_step(m);
}

static void handle_status(Manager *m, Conn *c)
{
	StatusInfo info = status_info(m);
	_cleanup_free_ char *json = NULL;

	if (status_format_json(m->ring, m->config, &info, &json) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "out of memory");
		return;
	}
	conn_replyf(c, "OK %s", json);
}

void manager_handle_line(void *userdata, Conn *c, const Peer *peer, char *line, size_t len)
{
	Manager *m = userdata;
	_cleanup_free_ char *line_copy = NULL;
	const char *message;
	ProtoError code;
	Request req;

	/* mode = derived: the epochs move with the clock; a timer a little
	 * late must not make this request sign with the previous one. */
	if (derived(m) && now_realtime() >= m->ring_until)
		manager_step(m);

	/* The parser works in place; a request held until the first key is
	 * active needs the line as it came. */
	if (!keyring_active(m->ring) && keyring_pending(m->ring))
		line_copy = memdup(line, len + 1);

	if (proto_parse_line(line, len, &req, &code, &message) < 0) {
		reply_error(m, c, code, message);
		return;
	}

	switch (req.verb) {
	case VERB_PING:
		conn_reply(c, "OK pong");
		break;
	case VERB_SIGN:
		handle_sign(m, c, &req, line_copy, len);
		break;
	case VERB_VERIFY:
		handle_verify(m, c, &req);
		break;
	case VERB_STATUS:
		handle_status(m, c);
		break;
	case VERB_ROTATE:
	case VERB_IMPORT:
		if (!peer->admin) {
			reply_error(m, c, PROTO_FORBIDDEN,
			            req.verb == VERB_ROTATE
			                ? "ROTATE needs root or the admin_group"
			                : "IMPORT needs root or the admin_group");
			break;
		}
		if (req.verb == VERB_ROTATE)
			handle_rotate(m, c, &req);
		else
			handle_import(m, c, &req);
		break;
	default:
		reply_error(m, c, PROTO_INTERNAL, "unhandled verb");
		break;
	}
}
