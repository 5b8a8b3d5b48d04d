/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "nginx-internal.h"

/* The op's steps over D-Bus: starting the test unit (test_command =
 * systemd:UNIT) and reloading a unit (reload = systemd:UNIT), each waited
 * for by its job's JobRemoved signal. */

void nginx_op_release_bus(NginxOp *op)
{
	op->call_slot = sd_bus_slot_unref(op->call_slot);
	op->match_slot = sd_bus_slot_unref(op->match_slot);
	op->bus = sd_bus_close_unref(op->bus);
}

/* The unit the current D-Bus step is about. */
static const char *op_bus_unit(const NginxOp *op)
{
	return op->stage == STAGE_TEST_SYSTEMD ? op->test_unit : op->reload_target;
}

/* Fails with the D-Bus error when there is one (its message says what
 * systemd or polkit refused), else with r. */
static int op_fail_bus(NginxOp *op, const sd_bus_error *error, int r, const char *what)
{
	const char *unit = op_bus_unit(op);

	if (error && sd_bus_error_is_set(error)) {
		/* A positive errno; EIO for names it does not know. */
		int k = sd_bus_error_get_errno(error);

		return nginx_op_fail(op, k > 0 ? -k : -EIO, "%s %s: %s", what, unit,
		                     error->message ?: error->name);
	}
	if (r >= 0)
		r = -EIO;
	return nginx_op_fail(op, r, "%s %s: %s", what, unit, strerror(-r));
}

/* Reads the answer to a MainPID property Get; on failure the op has failed
 * and a negative errno is returned. */
static int read_main_pid_reply(NginxOp *op, sd_bus_message *m, uint32_t *ret_pid)
{
	int r;

	op->call_slot = sd_bus_slot_unref(op->call_slot);
	if (sd_bus_message_is_method_error(m, NULL))
		return op_fail_bus(op, sd_bus_message_get_error(m), 0,
		                   "cannot read the main PID of");
	r = sd_bus_message_read(m, "v", "u", ret_pid);
	if (r < 0)
		return op_fail_bus(op, NULL, r, "cannot read the main PID of");
	return 0;
}

static int on_main_pid_after(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	uint32_t pid;

	if (read_main_pid_reply(op, m, &pid) < 0)
		return 0;
	if (pid == 0 || pid > INT_MAX) {
		nginx_op_fail(op, -ESRCH,
		              "%s has no main process after its reload (see journalctl -u %s)",
		              op->reload_target, op->reload_target);
		return 0;
	}
	/* Usually the same master; after a restart a new one, whose children
	 * are all new, which is just as good. */
	op->master = (pid_t)pid;
	nginx_op_confirm_start(op);
	return 0;
}

static int op_get_property(NginxOp *op, const char *interface, const char *property,
                           sd_bus_message_handler_t handler)
{
	op->call_slot = sd_bus_slot_unref(op->call_slot);
	return sd_bus_call_method_async(op->bus, &op->call_slot, SYSTEMD_DEST, op->unit_path,
	                                DBUS_PROPERTIES, "Get", handler, op, "ss", interface,
	                                property);
}

/* The test unit's job ended: "done" is nginx -t's exit status 0; anything
 * else fails the op with nginx's own message from the unit's output. */
static void op_test_unit_done(NginxOp *op, const char *result)
{
	_cleanup_free_ char *buf = NULL, *line = NULL;
	size_t size = 0;

	op->match_slot = sd_bus_slot_unref(op->match_slot);
	free(op->job_path);
	op->job_path = NULL;
	if (streq(result, "done")) {
		(void)nginx_op_start_reload(op);
		return;
	}
	/* Only a test that ran and failed wrote this run's message there;
	 * "timeout", "canceled", "dependency" would show an older one. */
	if (streq(result, "failed") &&
	    read_file(NGINX_TEST_OUTPUT, TEST_OUTPUT_MAX, &buf, &size) >= 0)
		line = nginx_pick_line(buf, size);
	if (line)
		nginx_op_fail(op, -EBADMSG, "nginx test failed: %s", line);
	else
		nginx_op_fail(op, -EBADMSG,
		              "nginx test failed: %s ended with \"%s\" (see journalctl -u %s)",
		              op->test_unit, result, op->test_unit);
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	const char *job, *unit, *result;
	uint32_t id;
	int r;

	if ((op->stage != STAGE_SYSTEMD_JOB && op->stage != STAGE_TEST_SYSTEMD) || !op->job_path)
		return 0;
	r = sd_bus_message_read(m, "uoss", &id, &job, &unit, &result);
	if (r < 0) {
		op_fail_bus(op, NULL, r, "cannot read systemd's job result for");
		return 0;
	}
	if (!streq(job, op->job_path))
		return 0;

	if (op->stage == STAGE_TEST_SYSTEMD) {
		op_test_unit_done(op, result);
		return 0;
	}

	if (!streq(result, "done")) {
		nginx_op_fail(
		    op, -EIO,
		    "systemd could not reload %s: job result \"%s\" (see journalctl -u %s)",
		    op->reload_target, result, op->reload_target);
		return 0;
	}

	op->stage = STAGE_CONFIRM;
	/* The job is done when ExecReload returned; nginx's reload is still
	 * asynchronous behind it: find the master and watch its workers. */
	r = op_get_property(op, SYSTEMD_SERVICE, "MainPID", on_main_pid_after);
	if (r < 0)
		op_fail_bus(op, NULL, r, "cannot read the main PID of");
	return 0;
}

/* What the job of the current stage does, for messages: "cannot start X". */
static const char *op_bus_what(const NginxOp *op)
{
	return op->stage == STAGE_TEST_SYSTEMD ? "nginx test failed: cannot start"
	                                       : "cannot reload";
}

static int on_job_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	const char *job;
	int r;

	op->call_slot = sd_bus_slot_unref(op->call_slot);
	if (sd_bus_message_is_method_error(m, NULL)) {
		op_fail_bus(op, sd_bus_message_get_error(m), 0, op_bus_what(op));
		return 0;
	}
	r = sd_bus_message_read(m, "o", &job);
	if (r < 0) {
		op_fail_bus(op, NULL, r, op_bus_what(op));
		return 0;
	}
	/* systemd sends this reply when it queues the job, and JobRemoved
	 * only later on the same connection, so the path is known in time. */
	free(op->job_path);
	op->job_path = strdup(job);
	if (!op->job_path)
		nginx_op_fail(op, -ENOMEM, "%s %s: out of memory", op_bus_what(op),
		              op_bus_unit(op));
	return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	bool test = op->stage == STAGE_TEST_SYSTEMD;
	int r;

	if (op->stage != STAGE_SYSTEMD_JOB && !test)
		return 0;
	if (sd_bus_message_is_method_error(m, NULL)) {
		op_fail_bus(op, sd_bus_message_get_error(m), 0, "cannot watch systemd's jobs for");
		return 0;
	}

	/* systemd emits JobRemoved on the system bus only while some client
	 * is subscribed; the subscription ends with our connection. */
	r = sd_bus_call_method_async(op->bus, NULL, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
	                             "Subscribe", NULL, NULL, "");
	if (r < 0) {
		op_fail_bus(op, NULL, r, "cannot subscribe to systemd's jobs for");
		return 0;
	}
	r = sd_bus_call_method_async(op->bus, &op->call_slot, SYSTEMD_DEST, SYSTEMD_PATH,
	                             SYSTEMD_MANAGER, test ? "StartUnit" : "ReloadOrTryRestartUnit",
	                             on_job_reply, op, "ss", op_bus_unit(op), "replace");
	if (r < 0)
		op_fail_bus(op, NULL, r, op_bus_what(op));
	return 0;
}

static int on_main_pid_before(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	uint32_t pid;
	int r;

	if (read_main_pid_reply(op, m, &pid) < 0)
		return 0;
	if (pid > INT_MAX) {
		nginx_op_fail(op, -EBADMSG, "systemd reported an invalid main PID for %s",
		              op->reload_target);
		return 0;
	}

	/* Snapshot before the reload is requested, or new workers that come up
	 * fast would be taken for old ones. A unit still starting has no main
	 * PID yet: an empty snapshot, the workers it starts count. */
	if (pid > 0) {
		r = nginx_op_snapshot(op, (pid_t)pid);
		if (r < 0 && r != -ENOENT) {
			nginx_op_fail(
			    op, r, "cannot read the children of %s's main process %" PRIu32 ": %s",
			    op->reload_target, pid, strerror(-r));
			return 0;
		}
	}

	op->stage = STAGE_SYSTEMD_JOB;
	/* The match is in place before the reload is requested, so the
	 * JobRemoved signal cannot slip past us. */
	r = sd_bus_match_signal_async(op->bus, &op->match_slot, SYSTEMD_DEST, SYSTEMD_PATH,
	                              SYSTEMD_MANAGER, "JobRemoved", on_job_removed,
	                              on_match_installed, op);
	if (r < 0)
		op_fail_bus(op, NULL, r, "cannot watch systemd's jobs for");
	return 0;
}

static int on_active_state(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	const char *state;
	int r;

	op->call_slot = sd_bus_slot_unref(op->call_slot);
	if (sd_bus_message_is_method_error(m, NULL)) {
		op_fail_bus(op, sd_bus_message_get_error(m), 0, "cannot read the state of");
		return 0;
	}
	r = sd_bus_message_read(m, "v", "s", &state);
	if (r < 0) {
		op_fail_bus(op, NULL, r, "cannot read the state of");
		return 0;
	}

	/* "activating" counts as running: nginx may have read the old files
	 * already, and a reload job waits for the start to finish. */
	if (!streq(state, "active") && !streq(state, "reloading") && !streq(state, "activating")) {
		nginx_op_succeed(op, false, true);
		return 0;
	}

	r = op_get_property(op, SYSTEMD_SERVICE, "MainPID", on_main_pid_before);
	if (r < 0)
		op_fail_bus(op, NULL, r, "cannot read the main PID of");
	return 0;
}

static int on_get_unit(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	NginxOp *op = userdata;
	const char *path;
	int r;

	op->call_slot = sd_bus_slot_unref(op->call_slot);
	if (sd_bus_message_is_method_error(m, SYSTEMD_NO_SUCH_UNIT)) {
		/* Not loaded means not running. */
		nginx_op_succeed(op, false, true);
		return 0;
	}
	if (sd_bus_message_is_method_error(m, NULL)) {
		op_fail_bus(op, sd_bus_message_get_error(m), 0, "cannot find");
		return 0;
	}
	r = sd_bus_message_read(m, "o", &path);
	if (r < 0) {
		op_fail_bus(op, NULL, r, "cannot find");
		return 0;
	}
	op->unit_path = strdup(path);
	if (!op->unit_path) {
		nginx_op_fail(op, -ENOMEM, "cannot find %s: out of memory", op->reload_target);
		return 0;
	}

	r = op_get_property(op, SYSTEMD_UNIT, "ActiveState", on_active_state);
	if (r < 0)
		op_fail_bus(op, NULL, r, "cannot read the state of");
	return 0;
}

/* One connection for the op: the test unit's job and the reload's. */
static int op_open_bus(NginxOp *op)
{
	int r;

	if (op->bus)
		return 0;
	r = sd_bus_open_system(&op->bus);
	if (r < 0)
		return r;
	return sd_bus_attach_event(op->bus, op->event, SD_EVENT_PRIORITY_NORMAL);
}

/* test_command = systemd:UNIT: starts the oneshot unit that runs nginx -t
 * with root's rights, and takes its job's result as the verdict. The match
 * is in place before the start, so JobRemoved cannot slip past us. */
int nginx_op_test_systemd(NginxOp *op)
{
	int r;

	op->stage = STAGE_TEST_SYSTEMD;
	r = op_open_bus(op);
	if (r < 0)
		return nginx_op_fail(
		    op, r, "nginx test failed: cannot connect to the system bus to start %s: %s",
		    op->test_unit, strerror(-r));
	r = sd_bus_match_signal_async(op->bus, &op->match_slot, SYSTEMD_DEST, SYSTEMD_PATH,
	                              SYSTEMD_MANAGER, "JobRemoved", on_job_removed,
	                              on_match_installed, op);
	if (r < 0)
		return op_fail_bus(op, NULL, r,
		                   "nginx test failed: cannot watch systemd's jobs for");
	return 0;
}

int nginx_op_reload_systemd(NginxOp *op)
{
	int r;

	op->stage = STAGE_SYSTEMD_QUERY;
	r = op_open_bus(op);
	if (r < 0)
		return nginx_op_fail(op, r, "cannot connect to the system bus to reload %s: %s",
		                     op->reload_target, strerror(-r));

	r = sd_bus_call_method_async(op->bus, &op->call_slot, SYSTEMD_DEST, SYSTEMD_PATH,
	                             SYSTEMD_MANAGER, "GetUnit", on_get_unit, op, "s",
	                             op->reload_target);
	if (r < 0)
		return op_fail_bus(op, NULL, r, "cannot find");
	return 0;
}
