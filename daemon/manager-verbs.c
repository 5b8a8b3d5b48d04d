/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <time.h>

#include "link.h"
#include "log.h"
#include "manager-algorithm.h"
#include "manager-verbs.h"
#include "status.h"

static size_t sign_reply(Manager *m, const Request *req, char *buf, size_t size);

/* Every request answered with ERR counts in STATUS's counters.errors. */
static void reply_error(Manager *m, Conn *c, ProtoError code, const char *message)
{
	manager_count_error(m, code);
	conn_reply_error(c, code, message);
}

/* How long a deferred request may wait: a rotation is a test and reload
 * (each bounded by [nginx] timeout), the delay, and after a revoke one more
 * test and reload; one more for slack. Beyond it something is wrong (a
 * clock stepped back under a pending key, a bug), and the client gets an
 * answer anyway. */
static usec_t waiter_deadline(const Manager *m)
{
	/* No overflow: config.c caps both durations at 3650d. */
	return now_monotonic() + m->config->activation_delay + 3 * m->config->nginx_timeout;
}

/* Whether what w asked for is still on its way (it completes by itself
 * once nginx takes the keys), so its client is told it is queued. */
static const char *waiter_queued(const Manager *m, const Waiter *w)
{
	if (m->stopping)
		return NULL;
	if (w->kind == WAIT_ROTATE && m->revoke_kid)
		return "the revoke";
	if (w->kind == WAIT_ROTATE && m->rotate_queued)
		return "the rotation";
	if (w->kind == WAIT_IMPORT && keyring_find(m->ring, w->kid))
		return "the import";
	return NULL;
}

static void waiter_fail(Manager *m, Waiter *w, ProtoError code, const char *message)
{
	_cleanup_free_ char *text = NULL;
	const char *what = waiter_queued(m, w);
	char line[1024];

	/* What the client must know comes first: the reason may be cut. */
	if (what && asprintf(&text,
	                     "%s is queued and completes once nginx accepts the keys (see "
	                     "securelinkctl status): %s",
	                     what, message ? message : "no details") < 0)
		text = NULL;
	proto_format_error(line, sizeof(line), code, text ? text : message);
	line[strcspn(line, "\n")] = '\0';
	conn_reply_deferred(w->conn, line);
	free(w->line);
	manager_count_error(m, code);
}

/* Answers every waiting ROTATE/IMPORT with an error: the client must not
 * hang while securelinkd retries in the background. */
void manager_waiters_fail(Manager *m, ProtoError code, const char *message)
{
	for (size_t i = 0; i < m->n_waiters; i++)
		waiter_fail(m, &m->waiters[i], code, message);
	m->n_waiters = 0;
}

static void arm_waiter_timer(Manager *m);

static int on_waiter_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	usec_t now = now_monotonic();
	size_t j = 0;

	for (size_t i = 0; i < m->n_waiters; i++) {
		Waiter *w = &m->waiters[i];

		if (w->deadline > now) {
			m->waiters[j++] = *w;
			continue;
		}
		waiter_fail(m, w, PROTO_UNAVAILABLE,
		            "no answer in time (see securelinkctl status and the journal)");
	}
	m->n_waiters = j;
	arm_waiter_timer(m);
	return 0;
}

static void arm_waiter_timer(Manager *m)
{
	usec_t when = USEC_INFINITY;
	int r;

	for (size_t i = 0; i < m->n_waiters; i++)
		if (m->waiters[i].deadline < when)
			when = m->waiters[i].deadline;
	if (when == USEC_INFINITY) {
		if (m->waiter_timer)
			(void)sd_event_source_set_enabled(m->waiter_timer, SD_EVENT_OFF);
		return;
	}
	if (!m->waiter_timer) {
		r = sd_event_add_time(m->event, &m->waiter_timer, CLOCK_MONOTONIC, when,
		                      USEC_PER_SEC, on_waiter_timer, m);
		if (r < 0)
			log_error_errno(r, "Failed to arm the timer for waiting requests: %m");
		return;
	}
	(void)sd_event_source_set_time(m->waiter_timer, when);
	(void)sd_event_source_set_enabled(m->waiter_timer, SD_EVENT_ONESHOT);
}

/* Requests taken earlier are done once their effect is in nginx. */
static void queued_update(Manager *m, const Key *active, bool settled)
{
	if (!settled || !active)
		return;
	if (m->revoke_kid && active->kid == m->revoke_kid)
		m->revoke_kid = 0;
	if (m->rotate_queued && active->kid > m->rotate_after_kid)
		m->rotate_queued = false;
}

void manager_waiters_answer(Manager *m)
{
	const Key *active = keyring_active(m->ring);
	bool settled = !m->rotation.sync_needed && !manager_nginx_busy(m);
	char line[PROTO_LINE_MAX + 64];
	size_t j = 0;

	queued_update(m, active, settled);
	for (size_t i = 0; i < m->n_waiters; i++) {
		Waiter *w = &m->waiters[i];

		if (w->kind == WAIT_IMPORT && !keyring_find(m->ring, w->kid))
			proto_format_error(line, sizeof(line), PROTO_UNAVAILABLE,
			                   "the imported key was removed by a revoke before nginx "
			                   "had it (import it again if the revoke was not meant "
			                   "for it)");
		else if (w->kind == WAIT_IMPORT && m->rotation.confirmed_kid >= w->kid)
			snprintf(line, sizeof(line), "OK kid=%" PRIu32, w->kid);
		else if (w->kind == WAIT_ROTATE && active && active->kid > w->kid && settled &&
		         !m->revoke_kid)
			/* Done once a key newer than the one active when it was
			 * asked is active and nginx has the ring (after a revoke:
			 * without the old keys). */
			snprintf(line, sizeof(line), "OK kid=%" PRIu32, active->kid);
		else if (w->kind == WAIT_SIGN && active) {
			const char *message;
			ProtoError code;
			Request req;

			if (proto_parse_line(w->line, w->len, &req, &code, &message) < 0) {
				manager_count_error(m, code);
				proto_format_error(line, sizeof(line), code, message);
			} else
				sign_reply(m, &req, line, sizeof(line));
		} else {
			m->waiters[j++] = *w;
			continue;
		}
		line[strcspn(line, "\n")] = '\0';
		conn_reply_deferred(w->conn, line);
		free(w->line);
	}
	m->n_waiters = j;
	arm_waiter_timer(m);
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
	m->waiters[m->n_waiters++] = (Waiter){
		.conn = conn_defer(c),
		.kind = kind,
		.kid = kid,
		.line = copy,
		.len = len,
		.deadline = waiter_deadline(m),
	};
	arm_waiter_timer(m);
	return 0;
}

/* The latest expires a rounded link may get: at most max_link_ttl from now
 * (limit), and before the signing key is dropped from nginx (a key being
 * retired) or, in fleet mode, before its epoch's deadline. */
static int64_t expires_limit(Manager *m, const Key *active, int64_t limit)
{
	usec_t until = USEC_INFINITY;

	if (active && active->drop_after != 0)
		until = active->drop_after;
	if (manager_derived(m) && active && derive_epoch_deadline(m->config, active->kid) < until)
		until = derive_epoch_deadline(m->config, active->kid);
	/* nginx serves a link until its expires second has passed: it must
	 * end strictly before the key goes. */
	if (until != USEC_INFINITY && (int64_t)(until / USEC_PER_SEC) - 1 < limit)
		limit = (int64_t)(until / USEC_PER_SEC) - 1;
	return limit;
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
	if (manager_derived(m) && active &&
	    (usec_t)expires * USEC_PER_SEC >= derive_epoch_deadline(cfg, active->kid)) {
		code = PROTO_UNAVAILABLE;
		message =
		    "nginx on this host has not loaded the current keys, and links of the keys "
		    "it has cannot live that long (ask for a shorter ttl; see securelinkctl "
		    "status)";
		goto fail;
	}

	/* An explicit expires= is the caller's exact time: only lifetimes are
	 * rounded to the window. */
	if (cfg->expires_granularity > 0 && !req->has_expires)
		expires =
		    link_expires_round(expires, (int64_t)(cfg->expires_granularity / USEC_PER_SEC),
		                       expires_limit(m, active, now + max_ttl));

	/* Straight into the answer: this is the hot path of every SIGN. */
	assert(size > STRLEN("OK "));
	memcpy(buf, "OK ", STRLEN("OK "));
	/* The link format nginx is confirmed to check, which lags a SIGHUP
	 * until nginx has the new snippets; the ttl limits are the config's. */
	if (req->grant != GRANT_NONE)
		r = link_grant_to(m->signing_config, m->ring, m->signer, req->arg, req->grant,
		                  expires, req->ip, buf + STRLEN("OK "), size - STRLEN("OK "),
		                  &url_len, &code, &message);
	else
		r = link_sign_to(m->signing_config, m->ring, m->signer, req->arg, expires, req->ip,
		                 buf + STRLEN("OK "), size - STRLEN("OK "), &url_len, &code,
		                 &message);
	if (r < 0)
		goto fail;
	m->n_signed++;
	return STRLEN("OK ") + url_len;
fail:
	manager_count_error(m, code);
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

/* CACHE: whether clients may cache links (expires_granularity set) and, if
 * so, the page they check before each hit, passed with the answer. */
static void handle_cache(Manager *m, Conn *c)
{
	const Config *cfg = m->config;
	char line[256];
	int r;

	if (cfg->expires_granularity == 0 || m->cache_page.ro_fd < 0) {
		conn_reply(c, "OK granularity=0");
		return;
	}
	snprintf(line, sizeof(line),
	         "OK granularity=%" PRIu64 " default_ttl=%" PRIu64 " expires_param=%s",
	         cfg->expires_granularity / USEC_PER_SEC, cfg->default_link_ttl / USEC_PER_SEC,
	         m->signing_config->expires_param);
	r = conn_reply_fd(c, line, m->cache_page.ro_fd);
	if (r == -EBUSY)
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "CACHE must wait for the answers before it (send it first)");
	else if (r < 0)
		reply_error(m, c, PROTO_UNAVAILABLE, "cannot pass the cache page now (try again)");
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

	/* Links of each algorithm nginx checks, as it checks them. */
	r = link_verify_algs(m->signing_config, manager_algorithms(m), m->ring, m->signer, req->arg,
	                     req->ip, req->cookie, (int64_t)(now_realtime() / USEC_PER_SEC),
	                     &verdict, &kid, &expires, &reason, &code, &message);
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

/* A ring with no room for a key: when its oldest key goes, as a one-line
 * reason with the way out. */
static void format_ring_full(const Manager *m, char *buf, size_t size)
{
	usec_t drop = USEC_INFINITY;
	char when[64] = "when its links have expired";

	for (size_t i = 0; i < m->ring->n_keys; i++)
		if (m->ring->keys[i].state == KEY_RETIRED && m->ring->keys[i].drop_after < drop)
			drop = m->ring->keys[i].drop_after;
	if (drop != USEC_INFINITY) {
		time_t t = (time_t)(drop / USEC_PER_SEC);
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "at %Y-%m-%d %H:%M:%S UTC", &tm);
	}
	snprintf(buf, size,
	         "the key ring is full (%d keys, the most it holds) and its oldest key is "
	         "dropped %s; rotate --revoke drops every older key and always works",
	         KEYRING_MAX_KEYS, when);
}

static void handle_rotate(Manager *m, Conn *c, const Request *req)
{
	/* The kid, not the Key: a revoke changes the ring under it. */
	const Key *active = keyring_active(m->ring);
	uint32_t active_kid = active ? active->kid : 0;
	char message[256];
	int r;

	if (manager_derived(m)) {
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "ROTATE does not apply with mode = derived: every host changes keys "
		            "every rotate_every on its own; after a leak, roll a new master "
		            "secret (see securelinkd(8), FLEET MODE)");
		return;
	}

	/* Refused at once, not held: no key can be made until a drop. */
	if (!req->revoke && !keyring_pending(m->ring) && m->ring->n_keys >= KEYRING_MAX_KEYS) {
		format_ring_full(m, message, sizeof(message));
		reply_error(m, c, PROTO_UNAVAILABLE, message);
		return;
	}

	if (req->revoke) {
		/* Always a fresh key: a pending one has been in keys.conf
		 * since it was published, and whoever took a copy holds it. */
		r = manager_start_revoke(m);
		if (r == -ENOKEY) {
			reply_error(
			    m, c, PROTO_INTERNAL,
			    "every key but the active one is revoked, but no fresh key could be "
			    "created (see the journal): run rotate --revoke again");
			manager_step(m);
			return;
		}
		if (r < 0) {
			reply_error(m, c, PROTO_INTERNAL,
			            "cannot save the key ring or create a key (disk full? see the "
			            "journal); the revoke was not done");
			manager_step(m);
			return;
		}
	} else {
		/* A rotation already on its way serves this request too. */
		if (!keyring_pending(m->ring))
			m->rotation.rotate_requested = true;
		if (!m->rotate_queued) {
			m->rotate_queued = true;
			m->rotate_after_kid = active_kid;
			m->rotate_since = now_realtime();
		}
	}
	if (waiter_add(m, c, WAIT_ROTATE, active_kid, NULL, 0) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "out of memory");
		return;
	}
	/* A request after a failure means: try now. */
	m->rotation.retry_at = 0;
	log_info("Rotation%s requested over the socket", req->revoke ? " with revoke" : "");
	manager_step(m);
}

/* The living legacy key, or NULL: nginx has one default for links without a
 * kid, so there is at most one. */
static const Key *legacy_key(const KeyRing *r)
{
	for (size_t i = 0; i < r->n_keys; i++)
		if (r->keys[i].legacy)
			return &r->keys[i];
	return NULL;
}

static void handle_import(Manager *m, Conn *c, const Request *req)
{
	size_t arg_len = strlen(req->arg), secret_len = 0;
	unsigned char *secret;
	const Key *legacy;
	char message[320];
	uint32_t kid;
	int r;

	/* A legacy secret imported on one host would be unknown to the rest of
	 * the fleet, and there is no key ring to keep it in. */
	if (manager_derived(m)) {
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

	/* nginx checks links without a kid against one default key: a second
	 * legacy key would take it over and break the first one's links. */
	legacy = legacy_key(m->ring);
	if (legacy) {
		bool same = strlen(legacy->secret) == secret_len &&
		            sodium_memcmp(legacy->secret, secret, secret_len) == 0;

		sodium_free(secret);
		if (!same) {
			snprintf(message, sizeof(message),
			         "a legacy key is already imported (kid %" PRIu32
			         "), and nginx has one default key for links without a kid; import "
			         "the next one after kid %" PRIu32
			         " is dropped (see securelinkctl status)",
			         legacy->kid, legacy->kid);
			reply_error(m, c, PROTO_BAD_REQUEST, message);
			return;
		}
		/* The same secret again: the same import, answered as it was. */
		kid = legacy->kid;
		goto wait;
	}

	r = keyring_add_legacy(m->ring, (const char *)secret, now_realtime(),
	                       m->config->max_link_ttl, m->config->clock_skew, &kid);
	sodium_free(secret);
	if (r == -EMSGSIZE) {
		snprintf(message, sizeof(message),
		         "the legacy secret is longer than %d bytes, the most securelinkd imports; "
		         "it was not imported",
		         KEY_SECRET_MAX);
		reply_error(m, c, PROTO_BAD_REQUEST, message);
		return;
	}
	if (r == -EINVAL) {
		reply_error(m, c, PROTO_BAD_REQUEST,
		            "the legacy secret holds a '\"', '\\', '$' or control byte nginx "
		            "cannot quote; it was not imported (rotate links instead)");
		return;
	}
	if (r == -E2BIG) {
		format_ring_full(m, message, sizeof(message));
		reply_error(m, c, PROTO_UNAVAILABLE, message);
		return;
	}
	if (r < 0) {
		reply_error(m, c, PROTO_INTERNAL, "cannot add the key (see the journal)");
		return;
	}
	if (manager_save_ring(m) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "cannot save the key ring (disk full?)");
		return;
	}
	log_event(LOG_NOTICE, SL_MESSAGE_KEY_IMPORTED,
	          "Imported a legacy key as %" PRIu32
	          "; it serves links without kid until it is dropped",
	          kid);

wait:
	if (m->rotation.confirmed_kid >= kid && !m->rotation.sync_needed &&
	    !manager_nginx_busy(m)) {
		conn_replyf(c, "OK kid=%" PRIu32, kid);
		return;
	}
	if (waiter_add(m, c, WAIT_IMPORT, kid, NULL, 0) < 0) {
		reply_error(m, c, PROTO_INTERNAL, "out of memory");
		return;
	}
	m->rotation.sync_needed = true;
	m->rotation.retry_at = 0;
	manager_step(m);
}

static void handle_status(Manager *m, Conn *c)
{
	StatusInfo info = manager_status_info(m);
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
	if (manager_derived(m) && now_realtime() >= m->ring_until)
		manager_step(m);

	/* The parser works in place; a SIGN held until the first key is
	 * active needs the line as it came. Only SIGN is copied: an IMPORT
	 * line holds a secret, which must not outlive the server's wiped
	 * buffer in a copy. */
	if (!keyring_active(m->ring) && keyring_pending(m->ring) && len > STRLEN("SIGN ") &&
	    memcmp(line, "SIGN ", STRLEN("SIGN ")) == 0)
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
	case VERB_CHECK:
		if (!peer->admin) {
			reply_error(m, c, PROTO_FORBIDDEN, "CHECK needs root or the admin_group");
			break;
		}
		manager_handle_check(m, c);
		break;
	case VERB_CACHE:
		handle_cache(m, c);
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
