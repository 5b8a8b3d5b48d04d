/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "nginx.h"
#include "util.h"

/* What nginx.c (the op: test, reload, confirmation) and nginx-bus.c (its
 * steps over D-Bus) share. */

/* Child processes are watched with sd_event_add_child(), which requires
 * SIGCHLD to be blocked in the calling thread (and therefore in the whole
 * single-threaded daemon): securelinkd blocks it at start, before creating
 * the event loop. nginx_apply() checks and returns -EBUSY otherwise. */

/* How much of a child's stderr is kept for the error report; the rest is
 * read and thrown away so a chatty child never blocks on a full pipe. */
#define STDERR_KEEP 4096
/* The test unit's output file: nginx -t -q prints a line or two. */
#define TEST_OUTPUT_MAX (64 * 1024)
/* Longest line of a message people read. */
#define MESSAGE_LINE_MAX 512
/* How many stray workers an error message names. */
#define STRAYS_NAMED 4
/* nginx gives no notification when new workers run: poll /proc this often. */
#define POLL_INTERVAL_USEC (10 * USEC_PER_MSEC)

#define SYSTEMD_DEST         "org.freedesktop.systemd1"
#define SYSTEMD_PATH         "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER      "org.freedesktop.systemd1.Manager"
#define SYSTEMD_UNIT         "org.freedesktop.systemd1.Unit"
#define SYSTEMD_SERVICE      "org.freedesktop.systemd1.Service"
#define DBUS_PROPERTIES      "org.freedesktop.DBus.Properties"
#define SYSTEMD_NO_SUCH_UNIT "org.freedesktop.systemd1.NoSuchUnit"

/* Where securelink-nginx-test.service writes nginx's output (its
 * StandardOutput=truncate:): a root-owned directory, readable by the
 * unprivileged daemon, which need not read the system journal for it. */
#define NGINX_TEST_OUTPUT "/run/securelink/nginx-test.log"

typedef enum Stage {
	STAGE_START,
	STAGE_TEST,
	STAGE_TEST_SYSTEMD,
	STAGE_RELOAD_EXEC,
	STAGE_SYSTEMD_QUERY,
	STAGE_SYSTEMD_JOB,
	STAGE_CONFIRM,
	STAGE_DONE,
} Stage;

struct NginxOp {
	sd_event *event;
	nginx_done_t done;
	void *userdata;
	usec_t timeout;
	Stage stage;

	/* Copied from the Config: the caller may reload its config while we run. */
	char **test_command;
	char *test_unit;
	ReloadMethod reload;
	char *reload_target;
	char **reload_command;

	/* Starts the work, and later delivers the result: done is always
	 * called from here, never from inside nginx_apply() nor from inside a
	 * child or D-Bus callback. */
	sd_event_source *defer_source;
	sd_event_source *timeout_source;
	NginxResult result;

	/* The child running test_command or reload_command. */
	const char *child_name;
	sd_event_source *child_source;
	sd_event_source *stderr_source;
	int stderr_fd;
	char stderr_buf[STDERR_KEEP];
	size_t stderr_size;

	/* Confirmation: the master and the children it had before the reload.
	 * With reload = pidfile:, master_fd is a pidfd of the master, so a pid
	 * reused after the master died is never taken for it. */
	pid_t master;
	int master_fd;
	/* nginx_dump_config(): where the test's standard output goes. */
	int stdout_fd;
	pid_t *snapshot;
	size_t n_snapshot;
	sd_event_source *poll_source;
	/* A poll saw the master's SIGHUP taken (no longer pending). */
	bool hup_taken;

	/* systemd: */
	sd_bus *bus;
	sd_bus_slot *call_slot;
	sd_bus_slot *match_slot;
	char *unit_path;
	char *job_path;
};

/* Ends the op with its result; done follows from the defer source. Return
 * op->result.error, so that a step can end with `return nginx_op_fail(...)`. */
int nginx_op_fail(NginxOp *op, int error, const char *format, ...) _printf_(3, 4);
int nginx_op_succeed(NginxOp *op, bool reloaded, bool not_running);

/* After a passed test: the configured reload method. */
int nginx_op_start_reload(NginxOp *op);
/* nginx-reload.c: reload = pidfile:PATH, and the confirmation of a reload. */
int nginx_op_reload_pidfile(NginxOp *op);
/* Remembers master's children, then polls for new ones. */
int nginx_op_snapshot(NginxOp *op, pid_t master);
int nginx_op_confirm_start(NginxOp *op);

/* The line of a child's output that explains its failure, malloc'd. */
char *nginx_pick_line(const char *buf, size_t size);

/* nginx-bus.c: test_command = systemd:UNIT, reload = systemd:UNIT. */
int nginx_op_test_systemd(NginxOp *op);
int nginx_op_reload_systemd(NginxOp *op);
void nginx_op_release_bus(NginxOp *op);
