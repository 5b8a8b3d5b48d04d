/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "algorithm.h"
#include "config.h"
#include "derive.h"
#include "cachepage.h"
#include "keyring.h"
#include "nginx.h"
#include "probe.h"
#include "rotation.h"
#include "server.h"
#include "sign.h"
#include "status.h"

/* securelinkd's state and the glue between the socket server, the key ring,
 * the rotation state machine and nginx. */

typedef enum WaitKind {
	WAIT_ROTATE, /* answered once the new key is active */
	WAIT_IMPORT, /* answered once nginx has the imported key */
	WAIT_SIGN,   /* first start: answered once the first key is active */
} WaitKind;

typedef struct Waiter {
	Conn *conn;
	WaitKind kind;
	uint32_t kid; /* WAIT_IMPORT: the imported key */
	char *line;   /* WAIT_SIGN: a copy of the request line */
	size_t len;
	usec_t deadline; /* CLOCK_MONOTONIC: answered "unavailable" by then at the latest */
} Waiter;

typedef struct Manager {
	sd_event *event;
	char *config_path;
	Config *config;
	/* The configuration whose links nginx is confirmed to check: links are
	 * signed and verified with it. It follows config once a sync of the
	 * snippets rendered from config is confirmed (the same pointer then);
	 * until then a SIGHUP that changed the link format does not reach the
	 * links, so that nginx never gets a link it cannot check. */
	Config *signing_config;
	/* The link algorithms nginx checks besides the configured one: the
	 * previous one while its links live (persisted). */
	AlgorithmState alg;
	KeyRing *ring;     /* mode = derived: the epochs at now, from derive_ring() */
	Masters *masters;  /* mode = derived only */
	usec_t ring_until; /* mode = derived: when the ring must be recomputed */
	Signer *signer;
	Server *server;
	CachePage cache_page; /* clients' link caches check it, see cachepage.h */

	sd_event_source *timer;
	sd_event_source *clock_source; /* a timerfd that fires when the clock is set */
	NginxOp *nginx_op;
	uint32_t syncing_kid;   /* highest kid in the files being applied */
	bool files_unconfirmed; /* snippets written that nginx has not confirmed */
	bool ring_save_failed;  /* the last key ring save failed (STATUS shows it) */
	RotationInput rotation;
	bool revoke_requested;
	bool reload_config_pending; /* SIGHUP arrived while nginx was busy */
	unsigned failures;

	Waiter *waiters;
	size_t n_waiters;
	sd_event_source *waiter_timer; /* fires at the earliest waiter deadline */
	bool stopping;                 /* waiters are answered for good now */

	/* Requests taken and not yet done, kept after their client got
	 * "queued" (nginx failed): they complete by themselves, and STATUS
	 * lists them until then. Imports are the legacy keys nginx has not
	 * confirmed yet. */
	uint32_t revoke_kid; /* the fresh key of a revoke; 0: none */
	usec_t revoke_since;
	bool rotate_queued; /* done once a key above rotate_after_kid is active */
	uint32_t rotate_after_kid;
	usec_t rotate_since;
	bool ring_full_logged; /* a scheduled rotation found the ring full */

	usec_t last_reload;
	/* What the last successful apply proved; _NGINX_CONFIRMATION_MAX
	 * before the first. */
	NginxConfirmation confirmation;
	bool nginx_ok;
	char *nginx_error;
	uint64_t n_signed, n_errors, n_rotations;
	uint64_t n_errors_code[_PROTO_ERROR_MAX]; /* n_errors by code */

	/* The enforcement probes (manager-probe.c). A gating probe follows a
	 * successful apply: the sync counts only once nginx accepted a link
	 * of the newest key (gate_kid); until then nginx is busy. */
	Probe *probe;
	bool probe_gates;
	uint32_t gate_kid;
	bool gate_reloaded, gate_not_running;
	NginxConfirmation gate_confirmation;
	sd_event_source *probe_timer; /* every probe_every */
	int enforcing;                /* as StatusInfo.enforcing */
	char *probe_reason;
	char *probe_url;
	usec_t last_probe;
	uint64_t n_probe_failures, n_reload_failures;
	Conn **check_waiters; /* CHECK requests answered when the probe ends */
	char *check_error;    /* the last probe's failure, JSON-escaped; NULL: none */
	size_t n_check_waiters;
	const char *check_verdict; /* the last probe's, for CHECK */
	/* CHECK's reading of nginx -T (manager-probe.c): dump_fd is its
	 * output's memfd while dump_op runs; check_config the audit's JSON. */
	NginxOp *dump_op;
	int dump_fd;
	char *check_config;
} Manager;

static inline void manager_count_error(Manager *m, ProtoError code)
{
	m->n_errors++;
	if (code >= 0 && code < _PROTO_ERROR_MAX)
		m->n_errors_code[code]++;
}

/* An apply or its gating probe runs: the state machine waits for it. */
static inline bool manager_nginx_busy(const Manager *m)
{
	return m->nginx_op || (m->probe && m->probe_gates);
}

/* Takes ownership of config and ring. Returns 0 or a negative errno. */
int manager_new(sd_event *e, const char *config_path, Config *config, KeyRing *ring, Manager **ret);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m)
{
	manager_free(*m);
}

/* Writes the snippets if they differ from the ring's rendering (so they exist
 * before READY=1), binds or takes the socket, and starts the state machine. */
int manager_start(Manager *m);

/* SIGHUP: re-reads the config; a bad one is reported and the old one kept. */
void manager_reload_config(Manager *m);

/* What manager.c offers manager-verbs.c and manager-fleet.c. */

#define MANAGER_RETRY_MIN USEC_PER_SEC

static inline bool manager_derived(const Manager *m)
{
	return m->config->mode == KEY_MODE_DERIVED;
}

/* Runs the state machine until it has to wait for time or for nginx, then
 * answers what can be answered now. */
void manager_step(Manager *m);

/* STATUS's and sd_notify's view of the manager. */
StatusInfo manager_status_info(const Manager *m);
void manager_notify_status(Manager *m);

/* Renders both snippets from the ring and config and writes what differs.
 * Returns 1 when something was written, 0 when the files were current. */
int manager_write_snippets(Manager *m);

/* Persists the ring; on failure the ring in memory goes back to what is on
 * disk. Returns 0 or a negative errno. */
int manager_save_ring(Manager *m);
/* The same after keys were revoked: no copy of them stays on disk
 * (keyring_save_revoked()). */
int manager_save_ring_revoked(Manager *m);

/* ROTATE revoke: drops every key but the active one (a pending key too:
 * it has been in keys.conf since it was published) and makes a fresh key,
 * which signs as soon as nginx has it; then the active one goes too.
 * Returns 0; -ENOKEY when the other keys are revoked (saved) but no fresh
 * key could be made; another negative errno with the ring as it is on disk. */
int manager_start_revoke(Manager *m);

/* What STATUS says about nginx: NULL clears the error. */
void manager_set_nginx_error(Manager *m, const char *message);

/* The gating probe's end: ok confirms the apply that started it, else
 * message fails it as a failed reload would. */
void manager_gate_done(Manager *m, bool ok, const char *message);

/* manager-probe.c: whether probes are configured; starts one (gate: it
 * confirms the apply that just succeeded). Returns 0, or -EBUSY while one
 * runs, or a negative errno. */
bool manager_probe_wanted(const Manager *m);
int manager_probe_start(Manager *m, bool gate);
/* CHECK: runs the probes now (or joins the running one) and answers with
 * their verdict as JSON. */
void manager_handle_check(Manager *m, Conn *c);
/* (Re)arms the probe_every timer. */
void manager_probe_arm(Manager *m);
void manager_probe_stop(Manager *m);

/* Marks a failed sync: retry with back-off, report it. */
void manager_schedule_retry(Manager *m, const char *message);
