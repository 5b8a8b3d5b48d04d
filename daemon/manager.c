/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "fileio.h"
#include "install.h"
#include "log.h"
#include "manager-algorithm.h"
#include "manager-fleet.h"
#include "manager-verbs.h"
#include "manager.h"
#include "nginx-njs.h"
#include "nginxconf.h"
#include "paths.h"
#include "render.h"
#include "status.h"

/* The manager's core: the rotation state machine's steps, the snippets and
 * their publication to nginx, the configuration. The socket's verbs are in
 * manager-verbs.c, mode = derived in manager-fleet.c, the link algorithm's
 * change in manager-algorithm.c, the snippets' files in manager-snippets.c. */

#define RETRY_MAX (60 * USEC_PER_SEC)
/* Ring times this little ahead of the clock are left alone: an NTP step of
 * a few milliseconds back is not a clock that ran ahead. */
#define CLOCK_TOLERANCE USEC_PER_SEC
#define TIME_T_MAX      ((time_t)((UINTMAX_C(1) << (sizeof(time_t) * 8 - 1)) - 1))

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
	m->signing_config = config;
	m->ring = ring;
	m->nginx_ok = true;
	m->confirmation = _NGINX_CONFIRMATION_MAX;
	m->cache_page = CACHE_PAGE_NULL;
	*ret = m;
	return 0;
}

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;
	m->stopping = true;
	manager_waiters_fail(m, PROTO_UNAVAILABLE, "securelinkd is stopping (try again)");
	free(m->waiters);
	sd_event_source_disable_unref(m->waiter_timer);
	nginx_op_free(m->nginx_op);
	manager_probe_stop(m);
	free(m->probe_reason);
	free(m->probe_url);
	sd_event_source_disable_unref(m->timer);
	sd_event_source_disable_unref(m->clock_source);
	server_free(m->server);
	/* After the server: no answer goes out after the last raise. */
	cache_page_close(&m->cache_page);
	signer_free(m->signer);
	keyring_free(m->ring);
	masters_free(m->masters);
	if (m->signing_config != m->config)
		config_free(m->signing_config);
	config_free(m->config);
	free(m->config_path);
	free(m->nginx_error);
	sd_event_unref(m->event);
	free(m);
	return NULL;
}

StatusInfo manager_status_info(const Manager *m)
{
	StatusInfo info = {
		.next_rotation = rotation_due(m->ring, m->config),
		.last_reload = m->last_reload,
		.nginx_ok = m->nginx_ok,
		.nginx_error = m->nginx_error,
		.nginx_pending = m->rotation.sync_needed || manager_nginx_busy(m),
		.enforcing = m->enforcing,
		.probe_reason = m->probe_reason,
		.probe_url = m->probe_url,
		.last_probe = m->last_probe,
		.nginx_confirmation = nginx_confirmation_to_string(m->confirmation),
		.n_signed = m->n_signed,
		.n_errors = m->n_errors + (m->server ? server_errors(m->server) : 0),
		.n_rotations = m->n_rotations,
		.n_reload_failures = m->n_reload_failures,
		.n_probe_failures = m->n_probe_failures,
		.confirmed_kid = m->rotation.confirmed_kid,
		.revoke_kid = m->revoke_kid,
		.revoke_since = m->revoke_since,
		.rotate_queued = m->rotate_queued,
		.rotate_since = m->rotate_since,
		.algorithm = m->signing_config->algorithm,
		.algorithms_checked = manager_algorithms(m),
		.algorithm_previous_until = m->alg.previous_until,
	};
	DeriveWindow w;

	for (int i = 0; i < _PROTO_ERROR_MAX; i++)
		info.n_errors_code[i] =
		    m->n_errors_code[i] +
		    (m->server ? server_errors_code(m->server, (ProtoError)i) : 0);
	if (manager_derived(m) && m->masters) {
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

void manager_notify_status(Manager *m)
{
	StatusInfo info = manager_status_info(m);
	_cleanup_free_ char *line = NULL;

	if (status_format_line(m->ring, &info, &line) >= 0)
		(void)sd_notifyf(false, "STATUS=%s", line);
}

void manager_set_nginx_error(Manager *m, const char *message)
{
	free(m->nginx_error);
	m->nginx_error = message ? strdup(message) : NULL;
	m->nginx_ok = !message;
}

void manager_schedule_retry(Manager *m, const char *message)
{
	usec_t backoff = MANAGER_RETRY_MIN;

	m->failures++;
	for (unsigned i = 1; i < m->failures && backoff < RETRY_MAX; i++)
		backoff *= 2;
	if (backoff > RETRY_MAX)
		backoff = RETRY_MAX;
	m->rotation.sync_needed = true;
	m->rotation.retry_at = now_realtime() + backoff;
	manager_set_nginx_error(m, message);
	log_event(LOG_ERR, SL_MESSAGE_NGINX_FAILED,
	          "Publishing keys to nginx failed: %s; retrying in %" PRIu64 "s", message,
	          backoff / USEC_PER_SEC);
	manager_notify_status(m);
}

/* Persists the ring. On failure the in-memory ring goes back to what is on
 * disk: nothing may be published or signed that a restart would not know. */
static int save_ring(Manager *m, bool revoked)
{
	_cleanup_free_ char *error = NULL;
	KeyRing *old = NULL;
	bool used_prev;
	int r, k;

	r = revoked ? keyring_save_revoked(m->ring, m->config->state_directory)
	            : keyring_save(m->ring, m->config->state_directory);
	if (r > 0)
		log_warning_errno(-r,
		                  "Saved the key ring, but could not sync %s: %m; a power loss may "
		                  "undo it, ignoring.",
		                  m->config->state_directory);
	if (r >= 0) {
		if (m->ring_save_failed) {
			/* The error STATUS shows was this one: it is over. */
			m->ring_save_failed = false;
			m->failures = 0;
			manager_set_nginx_error(m, NULL);
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

int manager_save_ring(Manager *m)
{
	return save_ring(m, false);
}

int manager_save_ring_revoked(Manager *m)
{
	return save_ring(m, true);
}

int manager_start_revoke(Manager *m)
{
	uint32_t kid = 0;
	int n, r, k;

	/* Marked before the ring changes: a restart before nginx has the fresh
	 * key must still revoke, not rotate (the fresh key is next_kid). */
	r = keyring_revoke_mark(m->config->state_directory, m->ring->next_kid);
	if (r < 0)
		return log_error_errno(r, "Failed to record the revoke in %s: %m",
		                       m->config->state_directory);

	n = keyring_revoke_all_but_active(m->ring);
	/* Links of the keys just removed may sit in clients' caches. */
	cache_page_bump(&m->cache_page);
	/* There is room now: the ring holds the active key at most. */
	k = keyring_add_random(m->ring, now_realtime(), &kid);
	/* Saved even without a new key: the keys removed are revoked. */
	r = manager_save_ring_revoked(m);
	if (r < 0 || k < 0)
		/* No fresh key will come under this kid: the mark must not make a
		 * later rotation's key a revoke. */
		(void)keyring_revoke_unmark(m->config->state_directory);
	if (r < 0)
		return r;
	m->rotation.sync_needed = true;
	m->rotation.retry_at = 0;
	if (k < 0) {
		log_error_errno(k, "Failed to create a key for the revoke: %m");
		return -ENOKEY;
	}

	m->revoke_requested = true;
	m->revoke_kid = kid;
	m->revoke_since = now_realtime();
	m->rotation.activate_now = true;
	/* The revoke's key serves every rotation asked for. */
	m->rotation.rotate_requested = false;
	log_event(LOG_NOTICE, SL_MESSAGE_KEY_PUBLISHED,
	          "Revoke: removed %d key(s) besides the active one, created key %" PRIu32
	          "; publishing it to nginx",
	          n, kid);
	return 0;
}

static void manager_apply_config(Manager *m);

/* nginx is confirmed to have the snippets rendered from m->config: its link
 * format may sign from now on. */
static void confirm_signing_config(Manager *m)
{
	if (m->signing_config == m->config)
		return;
	manager_algorithm_confirm(m);
	if (!config_link_format_equal(m->signing_config, m->config)) {
		log_info("nginx checks the new link format; links are signed in it from now on");
		/* The snippets nginx has check both formats: now the old one
		 * goes. */
		m->rotation.sync_needed = true;
	}
	config_free(m->signing_config);
	m->signing_config = m->config;
	/* Cached links of the old format may be ones nginx checks no more. */
	cache_page_bump(&m->cache_page);
}

/* The apply of the files up to kid succeeded (and its gating probe, if
 * any, accepted a link of the newest key). */
static void sync_succeeded(Manager *m, uint32_t kid, bool reloaded, bool not_running,
                           NginxConfirmation confirmation)
{
	m->failures = 0;
	m->files_unconfirmed = false;
	m->rotation.retry_at = 0;
	m->rotation.confirmed_kid = kid;
	m->rotation.confirmed_at = now_realtime();
	/* A SIGHUP waits for the op (reload_config_pending): the
	 * files nginx confirmed are m->config's. */
	confirm_signing_config(m);
	if (reloaded)
		m->last_reload = m->rotation.confirmed_at;
	m->confirmation = confirmation;
	manager_set_nginx_error(m, NULL);
	if (not_running)
		log_info("nginx is not running; it reads the keys from %s when it starts",
		         m->config->keys_file);
	log_event(LOG_INFO, SL_MESSAGE_KEY_PUBLISHED,
	          "Keys up to %" PRIu32 " are published to nginx%s", kid,
	          reloaded ? " (reload confirmed)" : "");
	/* mode = derived: which epoch signs depends on what nginx
	 * has; recompute the ring with the new confirmation. */
	m->ring_until = 0;
}

static void sync_failed(Manager *m, const char *message)
{
	m->n_reload_failures++;
	manager_schedule_retry(m, message);
	manager_waiters_fail(m, PROTO_UNAVAILABLE, m->nginx_error);
}

static void sync_finished(Manager *m)
{
	if (m->reload_config_pending)
		manager_apply_config(m);
	manager_step(m);
}

void manager_gate_done(Manager *m, bool ok, const char *message)
{
	if (ok)
		sync_succeeded(m, m->gate_kid, m->gate_reloaded, m->gate_not_running,
		               m->gate_confirmation);
	else
		sync_failed(m, message);
	sync_finished(m);
}

static void on_nginx_done(void *userdata, const NginxResult *result)
{
	Manager *m = userdata;
	uint32_t kid = m->syncing_kid;
	int r;

	m->nginx_op = nginx_op_free(m->nginx_op);

	if (result->error < 0)
		sync_failed(m, result->message ? result->message : strerror(-result->error));
	else if (!result->not_running && manager_probe_wanted(m)) {
		/* Worker replacement proves nginx re-read its files, not
		 * that it checks links with the new key: ask it. */
		m->gate_kid = kid;
		m->gate_reloaded = result->reloaded;
		m->gate_not_running = result->not_running;
		m->gate_confirmation = result->confirmation;
		r = manager_probe_start(m, true);
		if (r >= 0)
			return;
		log_error_errno(r, "Failed to start the enforcement probe: %m");
		sync_failed(m, "cannot start the enforcement probe (see the journal)");
	} else
		sync_succeeded(m, kid, result->reloaded, result->not_running, result->confirmation);
	sync_finished(m);
}

static void start_sync(Manager *m)
{
	int r;

	/* Only this sync's outcome may clear the flag; a change made while it
	 * runs sets it again. */
	m->rotation.sync_needed = false;

	r = manager_write_snippets(m);
	if (r < 0) {
		manager_schedule_retry(m, "cannot write the nginx snippets (see the journal)");
		manager_waiters_fail(m, PROTO_UNAVAILABLE, m->nginx_error);
		return;
	}
	m->syncing_kid = keyring_max_kid(m->ring);
	if (r > 0)
		m->files_unconfirmed = true;

	/* Unchanged files are not enough after a failed apply: the files on
	 * disk may be ones nginx never loaded (a revoke whose reload failed
	 * would otherwise leave the revoked keys in nginx). */
	if (!m->files_unconfirmed && m->syncing_kid <= m->rotation.confirmed_kid) {
		/* nginx already has exactly these files. */
		m->rotation.confirmed_kid = m->syncing_kid;
		confirm_signing_config(m);
		return;
	}

	r = nginx_apply(m->event, m->config, m->config->nginx_timeout, on_nginx_done, m,
	                &m->nginx_op);
	if (r < 0) {
		log_error_errno(r, "Failed to start the nginx test: %m");
		manager_schedule_retry(m, "cannot run the nginx test command");
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
		manager_schedule_retry(m, "cannot create a new key (see the journal)");
		return;
	}
	r = manager_save_ring(m);
	if (r < 0) {
		manager_schedule_retry(m, "cannot save the key ring (disk full?)");
		m->rotation.hold_until = m->rotation.retry_at;
		manager_waiters_fail(m, PROTO_UNAVAILABLE, m->nginx_error);
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
	/* The revoked active key signs no more: a client's link cached
	 * before this moment may carry it. Raised before the ROTATE revoke
	 * is answered, which waits for nginx. */
	if (revoke)
		cache_page_bump(&m->cache_page);
	r = revoke ? manager_save_ring_revoked(m) : manager_save_ring(m);
	if (r < 0) {
		manager_schedule_retry(m, "cannot save the key ring (disk full?)");
		m->rotation.hold_until = m->rotation.retry_at;
		return;
	}
	m->revoke_requested = false;
	m->rotation.activate_now = false;
	m->n_rotations++;
	if (revoke) {
		/* The older keys left the ring: they must leave nginx now. The
		 * ring on disk holds no revoked key any more: the revoke is done. */
		m->rotation.sync_needed = true;
		r = keyring_revoke_unmark(m->config->state_directory);
		if (r < 0)
			log_warning_errno(
			    r, "Failed to remove %s/" KEYRING_REVOKE_FILE ", ignoring: %m",
			    m->config->state_directory);
	}
	log_event(LOG_INFO, SL_MESSAGE_KEY_ACTIVATED, "Key %" PRIu32 " is active%s", kid,
	          revoke ? "; every older key is revoked" : "");
}

static void do_drop(Manager *m)
{
	int n, r;

	n = keyring_drop_expired(m->ring, now_realtime());
	r = manager_save_ring(m);
	if (r < 0) {
		manager_schedule_retry(m, "cannot save the key ring (disk full?)");
		m->rotation.hold_until = m->rotation.retry_at;
		return;
	}
	m->rotation.sync_needed = true;
	log_event(LOG_INFO, SL_MESSAGE_KEY_DROPPED,
	          "Dropped %d key(s) whose links have all expired", n);
}

/* A full ring holds back a scheduled rotation (rotation_next() waits for
 * the next drop): say so once, as what it is, not as an nginx failure. */
static void check_ring_full(Manager *m)
{
	bool full = m->ring->n_keys >= KEYRING_MAX_KEYS && !keyring_pending(m->ring);

	if (full && !m->ring_full_logged && now_realtime() >= rotation_due(m->ring, m->config)) {
		log_warning("The key ring is full (%d keys, the most it holds): the scheduled "
		            "rotation waits until the oldest key is dropped (securelinkctl rotate "
		            "--revoke drops every older key; see securelinkd.conf(5), KEY RING)",
		            KEYRING_MAX_KEYS);
		m->ring_full_logged = true;
	} else if (!full)
		m->ring_full_logged = false;
}

/* Runs the state machine until it has to wait for time or for nginx, then
 * answers what can be answered now. In mode = local nothing steps while
 * nginx works on the files; in mode = derived the ring follows the clock
 * (DERIVE) even then, since signing must keep to the schedule without
 * waiting for nginx. A state machine that kept stepping without settling is
 * a bug; never spin on it, and never stop either: look again in a second. */
void manager_step(Manager *m)
{
	bool settled = false;

	for (unsigned guard = 0; guard < 16 && !settled; guard++) {
		usec_t when = USEC_INFINITY, now = now_realtime();
		usec_t alg_when = manager_algorithm_expire(m, now);
		RotationAction a;

		if (!manager_derived(m) && manager_nginx_busy(m))
			break;
		a = manager_derived(m)
		        ? rotation_next_derived(&m->rotation, m->ring_until, now, &when)
		        : rotation_next(m->ring, m->config, &m->rotation, now, &when);
		switch (a) {
		case ROTATION_DERIVE:
			manager_fleet_refresh(m);
			continue;
		case ROTATION_SYNC:
			if (manager_nginx_busy(m)) {
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
			arm_timer(m, when < alg_when ? when : alg_when);
			settled = true;
			break;
		}
	}
	if (!settled && !manager_nginx_busy(m)) {
		log_warning("Rotation did not settle, looking again in 1s.");
		arm_timer(m, now_realtime() + MANAGER_RETRY_MIN);
	}
	if (!manager_derived(m))
		check_ring_full(m);
	manager_waiters_answer(m);
	manager_notify_status(m);
}
/* A clock that ran ahead (a bad RTC before NTP) stamped the future into the
 * ring: the next rotation and every drop would wait for it. Re-base those
 * times to now and persist them. mode = derived has no stamps; its ring is
 * recomputed for the clock as it is now. */
static void manager_rebase_clock(Manager *m)
{
	usec_t jump, now = now_realtime();
	char buf[32];

	if (manager_derived(m)) {
		m->ring_until = 0;
		return;
	}
	/* Not in the ring, but as stuck: a pending key activates
	 * activation_delay after nginx's confirmation, and the retries wait
	 * for their time. A future stamped there waits for the excursion's
	 * length (a rotation under way and every other one behind it). */
	if (m->rotation.confirmed_at > now + CLOCK_TOLERANCE) {
		log_warning("nginx's last confirmation is stamped %s ahead of the clock; counting "
		            "activation_delay from now",
		            format_duration(buf, sizeof(buf),
		                            (m->rotation.confirmed_at - now) / USEC_PER_SEC *
		                                USEC_PER_SEC));
		m->rotation.confirmed_at = now;
	}
	if (m->rotation.retry_at > now + RETRY_MAX)
		m->rotation.retry_at = now;
	if (m->rotation.hold_until > now + RETRY_MAX)
		m->rotation.hold_until = now;

	jump = keyring_rebase_future(m->ring, now, CLOCK_TOLERANCE);
	if (jump == 0)
		return;
	/* Whole seconds: the times come from clock reads microseconds apart. */
	log_warning("The key ring holds times up to %s ahead of the clock (it ran ahead, e.g. "
	            "a bad RTC before NTP); moved them back to now: the next rotation and the "
	            "drops count from now",
	            format_duration(buf, sizeof(buf), jump / USEC_PER_SEC * USEC_PER_SEC));
	/* On failure the ring goes back to what is on disk, future times and
	 * all; the next clock change or start tries again. */
	(void)manager_save_ring(m);
}

/* Never expires: only a change of CLOCK_REALTIME (a step by settimeofday or
 * NTP, not slewing) cancels it, which wakes us. sd-event's own realtime
 * timers follow the new clock but do not say that it changed. */
static int clock_watch_arm(int fd)
{
	const struct itimerspec its = { .it_value.tv_sec = TIME_T_MAX };

	if (timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) < 0)
		return -errno;
	return 0;
}

static int on_clock_change(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;
	uint64_t expirations;
	int r;

	/* ECANCELED is the news; the read consumes it. */
	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != ECANCELED &&
	    errno != EAGAIN)
		log_warning_errno(errno, "Failed to read the clock watch, ignoring: %m");
	r = clock_watch_arm(fd);
	if (r < 0) {
		log_warning_errno(r,
		                  "Failed to re-arm the clock watch, ignoring clock changes: %m");
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	}
	log_info("The system clock was set; checking the key ring's times");
	manager_rebase_clock(m);
	manager_step(m);
	return 0;
}

static void manager_watch_clock(Manager *m)
{
	int fd, r;

	fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0) {
		log_warning_errno(errno, "Failed to watch the clock, ignoring: %m");
		return;
	}
	r = clock_watch_arm(fd);
	if (r >= 0)
		r = sd_event_add_io(m->event, &m->clock_source, fd, EPOLLIN, on_clock_change, m);
	if (r >= 0)
		r = sd_event_source_set_io_fd_own(m->clock_source, true);
	if (r < 0) {
		m->clock_source = sd_event_source_disable_unref(m->clock_source);
		close(fd);
		log_warning_errno(r, "Failed to watch the clock, ignoring: %m");
	}
}

/* A revoke that was under way when the daemon stopped goes on: its fresh
 * key, once nginx has it, activates at once and removes every other key.
 * Without its key (a stop between the mark and the ring's save) it starts
 * again; with its key active already, only the mark is left to remove. */
static int resume_revoke(Manager *m)
{
	const char *dir = m->config->state_directory;
	const Key *k;
	uint32_t kid;
	int r;

	r = keyring_revoke_marked(dir, &kid);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		/* Unreadable: a revoke may have been under way, so revoke. */
		log_warning_errno(
		    r, "%s/" KEYRING_REVOKE_FILE " is unreadable (%m); revoking again", dir);
		return manager_start_revoke(m);
	}
	k = keyring_find(m->ring, kid);
	if (k && k->state == KEY_ACTIVE) {
		/* cache_page_open() raised the generation already. */
		if (keyring_revoke_all_but_active(m->ring) > 0) {
			r = manager_save_ring_revoked(m);
			if (r < 0)
				return r;
		}
		return keyring_revoke_unmark(dir);
	}
	if (!k || k->state != KEY_PUBLISHED) {
		log_notice("A revoke was under way when securelinkd stopped; starting it again");
		return manager_start_revoke(m);
	}
	m->revoke_requested = true;
	m->revoke_kid = kid;
	m->revoke_since = now_realtime();
	m->rotation.activate_now = true;
	log_notice("A revoke was under way when securelinkd stopped: key %" PRIu32
	           " becomes active as soon as nginx has it, and every other key is removed",
	           kid);
	return 0;
}

int manager_start(Manager *m)
{
	const Key *pending;
	int r;

	manager_watch_clock(m);
	/* mode = derived has keys from its first start on. */
	r = manager_algorithm_start(m, !manager_derived(m) && m->ring->n_keys == 0);
	if (r < 0)
		return r;
	/* Without it clients just do not cache (CACHE answers granularity=0). */
	r = cache_page_open(&m->cache_page, m->config->state_directory);
	if (r < 0)
		log_warning_errno(r,
		                  "Failed to open %s/" CACHE_PAGE_FILE
		                  ", clients will not cache links, ignoring: %m",
		                  m->config->state_directory);
	if (manager_derived(m)) {
		keyring_free(m->ring);
		m->ring = NULL;
		return manager_fleet_start(m);
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
	manager_rebase_clock(m);
	r = resume_revoke(m);
	if (r < 0)
		return r;
	pending = keyring_pending(m->ring);

	r = manager_write_snippets(m);
	if (r < 0)
		return r;
	/* A key that was published before a restart may never have reached
	 * nginx: the daemon may have died between writing and reloading. */
	m->rotation.confirmed_kid = pending ? pending->kid - 1 : keyring_max_kid(m->ring);
	/* Test and reload at every start, even when the files on disk are
	 * current: the daemon may have died after writing them and before
	 * nginx loaded them (a revoke would then never reach nginx). */
	m->rotation.sync_needed = true;
	m->files_unconfirmed = true;

	r = server_new(m->event, m->config, manager_handle_line, m, &m->server);
	if (r < 0)
		return r;

	manager_probe_arm(m);
	manager_step(m);
	return 0;
}

static void manager_apply_config(Manager *m)
{
	_cleanup_free_ char *error = NULL;
	Config *c = NULL;
	int r;

	m->reload_config_pending = false;
	r = config_load(m->config_path, &c, &error);
	if (r >= 0) {
		r = config_check_commands(c, m->config_path, &error);
		/* As at start: a snippet directory others may write to, or a
		 * FIFO in place of a snippet, is refused before it is used. */
		if (r >= 0)
			r = paths_check(c, geteuid(), &error);
		if (r < 0)
			c = config_free(c);
	}
	if (r < 0) {
		log_error("Configuration not reloaded, keeping the running one: %s",
		          error ?: strerror(-r));
		return;
	}
	if (r >= 0)
		r = nginx_njs_check(c, &error);
	if (r < 0) {
		log_error("Configuration not reloaded, keeping the running one: %s",
		          error ?: strerror(-r));
		config_free(c);
		return;
	}
	for (char **w = c->warnings; *w; w++)
		log_warning("warning: %s", *w);
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
	r = manager_fleet_keep_schedule(m, c);
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
	if (!config_link_format_equal(m->signing_config, c))
		log_info("The link format changed (media_url, prefixes, parameter names or "
		         "bind_ip): links keep the running format until nginx is confirmed to "
		         "check the new one");
	/* A config that never reached nginx (two SIGHUPs during a failing
	 * sync) is not kept; the one nginx checks is, until the new one is
	 * confirmed. */
	if (m->config != m->signing_config)
		config_free(m->config);
	m->config = c;
	server_set_config(m->server, c);
	/* default_link_ttl, max_link_ttl, prefixes: a cached link may not be
	 * what SIGN now answers. */
	cache_page_bump(&m->cache_page);
	m->rotation.sync_needed = true;
	m->rotation.retry_at = 0;
	log_info("Configuration reloaded from %s", m->config_path);
}

void manager_reload_config(Manager *m)
{
	(void)sd_notify(false, "RELOADING=1");
	if (manager_nginx_busy(m))
		/* The running nginx operation uses the current config. */
		m->reload_config_pending = true;
	else {
		manager_apply_config(m);
		manager_step(m);
	}
	(void)sd_notify(false, "READY=1");
}
