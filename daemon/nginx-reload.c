/* SPDX-License-Identifier: MIT */
/* Reloading nginx by SIGHUP to the master its pid file names, and
 * confirming a reload (for this method and systemd:): nginx's own process
 * tree and signal state in /proc say when the reload that read our files
 * is done. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nginx-internal.h"
#include "nginx-proc.h"

/* Whether the process is still there: through its pidfd when we have one
 * (a reused pid is someone else), else by number. */
static bool op_master_is_alive(const NginxOp *op)
{
	if (op->master_fd >= 0)
		return proc_pidfd_send_signal(op->master_fd, 0, NULL, 0) >= 0 || errno == EPERM;
	return proc_pid_is_alive(op->master);
}

/* ---- confirmation: new workers under the master ---- */

static bool snapshot_contains(const NginxOp *op, pid_t pid)
{
	for (size_t i = 0; i < op->n_snapshot; i++)
		if (op->snapshot[i] == pid)
			return true;
	return false;
}

/* Remembers the master's children before the reload. */
int nginx_op_snapshot(NginxOp *op, pid_t master)
{
	free(op->snapshot);
	op->snapshot = NULL;
	op->n_snapshot = 0;
	op->master = master;
	op->hup_taken = false;
	return proc_read_children(master, &op->snapshot, &op->n_snapshot);
}

/* Whether the reload that followed our SIGHUP is done, the master's
 * children being children[n]. nginx re-reads its files when it handles a
 * SIGHUP, not when it is sent, and handles one at a time, with every
 * signal blocked but in sigsuspend(): while it is still reading for a
 * SIGHUP someone else sent before our files were written (an admin's
 * reload, a securelinkd killed mid-sync), ours stays pending, and the
 * workers that reload starts are new to the snapshot without having our
 * keys. So, besides new workers:
 *  - our SIGHUP was seen taken (not pending) at an earlier poll, and now the
 *    master is idle (SIGHUP not blocked: in sigsuspend()), so the reload
 *    it started, which read our files, has run to its end;
 *  - only one generation of workers accepts connections: nginx starts new
 *    workers, waits 100 ms, then tells the older ones to quit, and an
 *    older generation of workers also new to the snapshot (the other
 *    reload's) must have stopped accepting too. Workers of one generation
 *    start within a few milliseconds of each other. */
#define GENERATION_SPAN_MSEC 50

static bool reload_is_done(NginxOp *op, const pid_t *children, size_t n)
{
	bool new_worker = false, pending, blocked, taken_before = op->hup_taken;
	static uint64_t ticks; /* per second, of the start times */
	uint64_t oldest = UINT64_MAX, newest = 0;

	if (ticks == 0)
		ticks = (uint64_t)sysconf(_SC_CLK_TCK);

	if (proc_read_signal(op->master, SIGHUP, &pending, &blocked) < 0)
		return false; /* gone: the next poll says so */
	if (!pending)
		op->hup_taken = true;
	if (!taken_before || pending || blocked)
		return false;

	for (size_t i = 0; i < n; i++) {
		uint64_t start;

		if (!proc_is_accepting_worker(children[i]))
			continue;
		/* An old worker still accepting: links of a revoked or dropped
		 * key could pass there. Busy with long downloads, old workers
		 * are "shutting down" and accept nothing new. */
		if (snapshot_contains(op, children[i]))
			return false;
		if (proc_read_start_time(children[i], &start) < 0)
			return false;
		new_worker = true;
		if (start < oldest)
			oldest = start;
		if (start > newest)
			newest = start;
	}
	return new_worker && (newest - oldest) * 1000 < GENERATION_SPAN_MSEC * ticks;
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata)
{
	_cleanup_free_ pid_t *children = NULL;
	NginxOp *op = userdata;
	size_t n;
	int r;

	r = proc_read_children(op->master, &children, &n);
	if (r == -ENOENT || (r >= 0 && !op_master_is_alive(op))) {
		nginx_op_fail(
		    op, -ESRCH,
		    "nginx master process %d exited during the reload (see nginx's error log)",
		    (int)op->master);
		return 0;
	}
	if (r < 0) {
		nginx_op_fail(op, r, "cannot read the children of nginx master process %d: %s",
		              (int)op->master, strerror(-r));
		return 0;
	}

	if (reload_is_done(op, children, n)) {
		nginx_op_succeed(op, true, false);
		return 0;
	}

	r = sd_event_source_set_time_relative(s, POLL_INTERVAL_USEC);
	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0)
		nginx_op_fail(op, r, "cannot wait for nginx's new workers: %s", strerror(-r));
	return 0;
}

int nginx_op_confirm_start(NginxOp *op)
{
	int r;

	op->stage = STAGE_CONFIRM;
	/* Check at once: nginx may already have started its new workers. */
	/* Accuracy 0 would mean sd-event's default of 250 ms: the poll would
	 * fire a quarter second late and every rotation wait that long. */
	r = sd_event_add_time_relative(op->event, &op->poll_source, CLOCK_MONOTONIC, 0,
	                               USEC_PER_MSEC, on_poll, op);
	if (r < 0)
		return nginx_op_fail(op, r, "cannot wait for nginx's new workers: %s",
		                     strerror(-r));
	return 0;
}

/* ---- reload: pid file ---- */

/* The pid file names master, which is gone. Not running, unless workers of
 * it still serve: then the files on disk reach nobody and a new key must not
 * be activated. */
static int op_master_gone(NginxOp *op, pid_t master)
{
	pid_t strays[STRAYS_NAMED];
	char list[STRAYS_NAMED * 12 + 8] = "";
	size_t len = 0;
	int n;

	n = proc_find_stray_workers(master, strays, ELEMENTSOF(strays));
	if (n < 0)
		return nginx_op_fail(
		    op, n,
		    "nginx master process %d (pid file %s) is gone, and /proc cannot be "
		    "read to look for its workers: %s",
		    (int)master, op->reload_target, strerror(-n));
	if (n == 0)
		return nginx_op_succeed(op, false, true);

	for (int i = 0; i < n && i < (int)ELEMENTSOF(strays); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i ? " " : "",
		                        (int)strays[i]);
	if (n > (int)ELEMENTSOF(strays))
		(void)snprintf(list + len, sizeof(list) - len, " ...");
	return nginx_op_fail(
	    op, -ESRCH,
	    "nginx master process %d (pid file %s) is gone but %d of its worker "
	    "processes still serve with the old keys (pid %s): stop them (kill %s) "
	    "and restart nginx",
	    (int)master, op->reload_target, n, list, list);
}

int nginx_op_reload_pidfile(NginxOp *op)
{
	_cleanup_close_ int pidfd = -1;
	pid_t pid;
	int r;

	r = proc_read_pid_file(op->reload_target, &pid);
	if (r == -ENOENT || r == -ENODATA)
		/* nginx removes its pid file when it exits: not running, and it
		 * reads the files on disk when it starts. */
		return nginx_op_succeed(op, false, true);
	if (r < 0)
		return nginx_op_fail(
		    op, r == -ENOMEM ? r : -EINVAL, "pid file %s: %s", op->reload_target,
		    r == -EINVAL || r == -ERANGE ? "does not hold a pid" : strerror(-r));

	/* Pin the process first, then look at it: what the pidfd signals is
	 * the process whose title we read, never one that got its number
	 * after it exited (the signal then fails with ESRCH). */
	pidfd = proc_pidfd_open(pid, 0);
	if (pidfd < 0) {
		r = -errno;
		if (r == -ESRCH)
			return op_master_gone(op, pid);
		return nginx_op_fail(op, r, "cannot open nginx master process %d (pid file %s): %s",
		                     (int)pid, op->reload_target, strerror(-r));
	}

	r = proc_is_nginx_master(pid);
	if (r == -ENOENT)
		return op_master_gone(op, pid);
	if (r < 0)
		return nginx_op_fail(op, r, "cannot read /proc/%d/cmdline: %s", (int)pid,
		                     strerror(-r));
	if (r == 0)
		return nginx_op_fail(
		    op, -ESRCH,
		    "pid file %s names process %d, which is not an nginx master process "
		    "(its title does not start with \"" NGINX_MASTER_TITLE "\"): no "
		    "signal sent; fix nginx's pid directive or restart nginx",
		    op->reload_target, (int)pid);

	r = nginx_op_snapshot(op, pid);
	if (r == -ENOENT && proc_pidfd_send_signal(pidfd, 0, NULL, 0) < 0 && errno == ESRCH)
		return op_master_gone(op, pid);
	if (r < 0)
		return nginx_op_fail(
		    op, r,
		    "cannot read the children of nginx master process %d: %s (a kernel "
		    "with CONFIG_PROC_CHILDREN is needed to confirm reloads)",
		    (int)pid, strerror(-r));

	/* SIGHUP makes the master re-read its configuration and, if it is
	 * good, start new workers; if not, it logs why and keeps the old ones. */
	if (proc_pidfd_send_signal(pidfd, SIGHUP, NULL, 0) < 0) {
		r = -errno;
		if (r == -ESRCH)
			return op_master_gone(op, pid);
		return nginx_op_fail(op, r, "cannot send SIGHUP to nginx master process %d: %s",
		                     (int)pid, strerror(-r));
	}
	op->master_fd = TAKE_FD(pidfd);
	return nginx_op_confirm_start(op);
}
