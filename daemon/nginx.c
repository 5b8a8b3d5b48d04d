/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "nginx-dump.h"
#include "nginx-internal.h"
#include "nginx-proc.h"

static char **strv_copy(char *const *l)
{
	_cleanup_strv_free_ char **copy = NULL;
	size_t n = strv_length(l);

	copy = calloc(n + 1, sizeof(char *));
	if (!copy)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(l[i]);
		if (!copy[i])
			return NULL;
	}
	return TAKE_PTR(copy);
}

/* Messages end up in the journal, STATUS JSON and sd_notify STATUS=: one
 * line, no control bytes, bounded length. Text from nginx and from config
 * values is not trusted to be any of that. */
static void sanitize_line(char *s)
{
	size_t n = 0;

	for (char *p = s; *p; p++, n++) {
		unsigned char c = (unsigned char)*p;

		if (n >= MESSAGE_LINE_MAX) {
			*p = '\0';
			break;
		}
		if (c == '\t')
			*p = ' ';
		else if (c < 0x20 || c == 0x7f)
			*p = '?';
	}
}

/* Picks the line of a child's stderr that explains the failure. nginx may
 * print warnings before the error ("[warn] the "user" directive makes sense
 * only if ..."), so a line with an error level wins; else the first line that
 * is not blank. Returns a malloc'd, trimmed line, or NULL when there is none
 * (or no memory). */
char *nginx_pick_line(const char *buf, size_t size)
{
	static const char *const levels[] = { "[emerg]", "[alert]", "[crit]", "[error]" };
	const char *first = NULL, *chosen = NULL;
	size_t first_len = 0, chosen_len = 0;

	for (size_t i = 0; i < size && !chosen;) {
		const char *line = buf + i, *nl = memchr(line, '\n', size - i);
		size_t len = nl ? (size_t)(nl - line) : size - i;

		i += len + 1;
		/* Trim, treating every control byte (NUL, CR, ...) as space. */
		while (len > 0 && ((unsigned char)line[0] <= ' ' || line[0] == 0x7f)) {
			line++;
			len--;
		}
		while (len > 0 && ((unsigned char)line[len - 1] <= ' ' || line[len - 1] == 0x7f))
			len--;
		if (len == 0)
			continue;
		if (!first) {
			first = line;
			first_len = len;
		}
		for (size_t l = 0; l < ELEMENTSOF(levels); l++)
			if (memmem(line, len, levels[l], strlen(levels[l]))) {
				chosen = line;
				chosen_len = len;
				break;
			}
	}
	if (!chosen) {
		chosen = first;
		chosen_len = first_len;
	}
	if (!chosen)
		return NULL;
	if (chosen_len > MESSAGE_LINE_MAX)
		chosen_len = MESSAGE_LINE_MAX;

	char *s = malloc(chosen_len + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < chosen_len; i++) {
		unsigned char c = (unsigned char)chosen[i];
		s[i] = c == '\t' ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	s[chosen_len] = '\0';
	return s;
}

static void op_release_child(NginxOp *op)
{
	/* The child source owns the process: dropping it before the child
	 * exited sends SIGKILL and reaps it, so nothing outlives the op. */
	op->child_source = sd_event_source_unref(op->child_source);
	op->stderr_source = sd_event_source_disable_unref(op->stderr_source);
	if (op->stderr_fd >= 0) {
		close(op->stderr_fd);
		op->stderr_fd = -1;
	}
}

/* Stops everything that could still fire, except the bus, which may be the
 * one dispatching us right now: it is closed from the defer source. */
static void op_stop(NginxOp *op)
{
	op->stage = STAGE_DONE;
	op->timeout_source = sd_event_source_disable_unref(op->timeout_source);
	op->poll_source = sd_event_source_disable_unref(op->poll_source);
	op_release_child(op);
	op->call_slot = sd_bus_slot_unref(op->call_slot);
	op->match_slot = sd_bus_slot_unref(op->match_slot);
	if (op->master_fd >= 0) {
		close(op->master_fd);
		op->master_fd = -1;
	}
}

/* Ends the op with result fields already set in op->result; done follows
 * from the defer source. Returns op->result.error, so that a step can end
 * with `return nginx_op_fail(...)`, like log_error_errno(): a negative return of a
 * step means it failed and that failure is already the op's result. */
static int op_finish(NginxOp *op)
{
	int r;

	assert(op->stage != STAGE_DONE);
	op_stop(op);
	if (op->result.message)
		sanitize_line(op->result.message);

	r = sd_event_source_set_enabled(op->defer_source, SD_EVENT_ONESHOT);
	/* Enabling an existing defer source does not allocate; it cannot
	 * fail short of a bug. */
	assert(r >= 0);
	(void)r;
	return op->result.error;
}

int nginx_op_succeed(NginxOp *op, bool reloaded, bool not_running)
{
	op->result.error = 0;
	if (not_running)
		op->result.confirmation = NGINX_NOT_RUNNING;
	else if (op->reload == RELOAD_EXEC)
		op->result.confirmation = NGINX_RELOAD_COMMAND;
	else if (op->reload == RELOAD_NONE)
		op->result.confirmation =
		    op->test_command || op->test_unit ? NGINX_TEST_ONLY : NGINX_UNCHECKED;
	else
		op->result.confirmation = NGINX_WORKERS_REPLACED;
	op->result.reloaded = reloaded;
	op->result.not_running = not_running;
	return op_finish(op);
}

int nginx_op_fail(NginxOp *op, int error, const char *format, ...)
{
	va_list ap;

	assert(error < 0);
	op->result.error = error;
	op->result.reloaded = false;
	op->result.not_running = false;
	free(op->result.message);
	/* Out of memory leaves the message NULL; the errno still tells. */
	va_start(ap, format);
	if (vasprintf(&op->result.message, format, ap) < 0)
		op->result.message = NULL;
	va_end(ap);
	return op_finish(op);
}

static const char *timeout_string(const NginxOp *op, char *buf, size_t size)
{
	return format_duration(buf, size, op->timeout);
}

/* ---- child processes ---- */

static int fd_move_above_stdio(int fd)
{
	int copy;

	if (fd > STDERR_FILENO)
		return fd;
	copy = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (copy < 0)
		return -errno;
	close(fd);
	return copy;
}

static void child_write(const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t k = write(STDERR_FILENO, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		s += k;
		n -= (size_t)k;
	}
}

/* Runs in the forked child: only async-signal-safe calls from here on. */
_Noreturn static void child_exec(char **argv, int null_fd, int stdout_fd, int stderr_fd)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t ss;
	int saved;

	/* The daemon blocks SIGCHLD (and may ignore SIGPIPE): a blocked mask
	 * and ignored signals survive exec, nginx must not inherit them. */
	for (int sig = 1; sig < _NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&ss);
	(void)sigprocmask(SIG_SETMASK, &ss, NULL);

	/* The fds are above stdio (fd_move_above_stdio), so dup2 really
	 * duplicates and clears close-on-exec. */
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(stdout_fd, STDOUT_FILENO) < 0 ||
	    dup2(stderr_fd, STDERR_FILENO) < 0)
		_exit(127);
	/* Sockets passed by systemd are not close-on-exec; nginx gets none of
	 * our fds. */
	(void)close_range(STDERR_FILENO + 1, ~0U, 0);

	execvp(argv[0], argv);
	saved = errno;
	child_write("cannot execute ");
	child_write(argv[0]);
	child_write(": ");
	child_write(strerrordesc_np(saved) ?: "unknown error");
	child_write("\n");
	_exit(127);
}

/* Reads what the child wrote to stderr without blocking: keeps the first
 * STDERR_KEEP bytes, discards the rest. Returns 1 at end of file, 0 when
 * the pipe is empty for now. */
static int op_read_stderr(NginxOp *op)
{
	for (;;) {
		char scratch[4096];
		char *to = scratch;
		size_t room = sizeof(scratch);
		ssize_t n;

		if (op->stderr_size < sizeof(op->stderr_buf)) {
			to = op->stderr_buf + op->stderr_size;
			room = sizeof(op->stderr_buf) - op->stderr_size;
		}
		n = read(op->stderr_fd, to, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return 1; /* nothing more will come: treat as the end */
		}
		if (n == 0)
			return 1;
		if (to != scratch)
			op->stderr_size += (size_t)n;
	}
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	NginxOp *op = userdata;

	if (op_read_stderr(op) > 0) {
		/* The child closed stderr (it may still be running); the child
		 * source decides when the step ends. */
		op->stderr_source = sd_event_source_disable_unref(op->stderr_source);
		close(op->stderr_fd);
		op->stderr_fd = -1;
	}
	return 0;
}

/* Describes how the child ended when it left nothing on stderr. */
static char *child_status_string(const char *name, const siginfo_t *si)
{
	char *s = NULL;
	int r;

	if (si->si_code == CLD_EXITED)
		r = asprintf(&s, "%s exited with status %d", name, si->si_status);
	else
		r = asprintf(&s, "%s was killed by signal SIG%s", name,
		             sigabbrev_np(si->si_status) ?: "?");
	return r < 0 ? NULL : s;
}

static int op_child_exited(NginxOp *op, const siginfo_t *si)
{
	_cleanup_free_ char *line = NULL;
	bool ok = si->si_code == CLD_EXITED && si->si_status == 0;

	/* The child is gone, so everything it wrote is in the pipe: read it
	 * now rather than waiting for the io source, then stop watching. A
	 * grandchild holding the pipe open does not delay us. */
	if (op->stderr_fd >= 0)
		(void)op_read_stderr(op);
	op_release_child(op);

	if (!ok) {
		line = nginx_pick_line(op->stderr_buf, op->stderr_size);
		if (!line)
			line = child_status_string(op->child_name, si);
	}

	switch (op->stage) {
	case STAGE_TEST:
		if (!ok)
			/* Not EINVAL: that is what callers use for their own bad
			 * arguments; this is nginx refusing the files. */
			return nginx_op_fail(op, -EBADMSG, "nginx test failed: %s", line ?: "?");
		return nginx_op_start_reload(op);

	case STAGE_RELOAD_EXEC:
		if (!ok)
			return nginx_op_fail(op, -EIO, "nginx reload failed: %s", line ?: "?");
		/* Without a pid there is no master to watch: the command's
		 * success ("nginx -s reload" sent the signal) is all we can
		 * know. Use pidfile: or systemd: for a confirmed reload. */
		return nginx_op_succeed(op, true, false);

	default:
		assert(false);
		return -EINVAL;
	}
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	NginxOp *op = userdata;

	op_child_exited(op, si);
	return 0;
}

/* Starts argv as a child of the event loop: stdin and stdout /dev/null,
 * stderr a pipe we read. */
static int op_spawn(NginxOp *op, char **argv)
{
	_cleanup_close_ int null_fd = -1, pipe_r = -1, pipe_w = -1;
	int pipefd[2], r;
	pid_t pid;

	assert(argv && argv[0]);
	assert(!op->child_source);

	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (null_fd < 0)
		return -errno;
	/* The child's end stays blocking: a program writing to a
	 * non-blocking stderr could lose its message on EAGAIN. */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pipe_r = pipefd[0];
	pipe_w = pipefd[1];
	if (fcntl(pipe_r, F_SETFL, O_NONBLOCK) < 0)
		return -errno;

	null_fd = fd_move_above_stdio(null_fd);
	if (null_fd < 0)
		return null_fd;
	pipe_w = fd_move_above_stdio(pipe_w);
	if (pipe_w < 0)
		return pipe_w;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_exec(argv, null_fd, op->stdout_fd >= 0 ? op->stdout_fd : null_fd, pipe_w);

	r = sd_event_add_child(op->event, &op->child_source, pid, WEXITED, on_child, op);
	if (r < 0) {
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		return r;
	}
	/* From here the source owns the process: unref kills and reaps it. */
	r = sd_event_source_set_child_process_own(op->child_source, true);
	if (r < 0) {
		(void)kill(pid, SIGKILL);
		op->child_source = sd_event_source_unref(op->child_source);
		(void)waitpid(pid, NULL, 0);
		return r;
	}

	op->stderr_size = 0;
	op->child_name = argv[0];
	op->stderr_fd = TAKE_FD(pipe_r);
	r = sd_event_add_io(op->event, &op->stderr_source, op->stderr_fd, EPOLLIN, on_stderr, op);
	if (r < 0) {
		op_release_child(op);
		return r;
	}
	return 0;
}

/* ---- the op ---- */

int nginx_op_start_reload(NginxOp *op)
{
	int r;

	switch (op->reload) {
	case RELOAD_PIDFILE:
		return nginx_op_reload_pidfile(op);

	case RELOAD_EXEC:
		op->stage = STAGE_RELOAD_EXEC;
		r = op_spawn(op, op->reload_command);
		if (r < 0)
			return nginx_op_fail(op, r, "cannot run %s: %s", op->reload_command[0],
			                     strerror(-r));
		return 0;

	case RELOAD_SYSTEMD:
		return nginx_op_reload_systemd(op);

	case RELOAD_NONE:
		/* Someone else reloads nginx; the files are written and tested. */
		return nginx_op_succeed(op, false, false);

	default:
		assert(false);
		return -EINVAL;
	}
}

static int op_start(NginxOp *op)
{
	int r;

	if (op->test_unit)
		return nginx_op_test_systemd(op);
	if (!op->test_command || !op->test_command[0])
		return nginx_op_start_reload(op);

	op->stage = STAGE_TEST;
	r = op_spawn(op, op->test_command);
	if (r < 0)
		return nginx_op_fail(op, r, "nginx test failed: cannot run %s: %s",
		                     op->test_command[0], strerror(-r));
	return 0;
}

static int on_defer(sd_event_source *s, void *userdata)
{
	NginxOp *op = userdata;
	NginxResult result;

	if (op->stage == STAGE_START) {
		(void)op_start(op);
		return 0;
	}

	assert(op->stage == STAGE_DONE);
	/* Outside any bus dispatch now: the connection can go. */
	nginx_op_release_bus(op);
	result = op->result;
	op->result.message = NULL;
	/* done may free the op: touch nothing of it afterwards. */
	op->done(op->userdata, &result);
	free(result.message);
	return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	NginxOp *op = userdata;
	char buf[32];

	/* nginx_op_fail() stops everything: a child still running is killed and
	 * reaped at once, not when the caller frees the op. */
	switch (op->stage) {
	case STAGE_START:
	case STAGE_TEST:
		nginx_op_fail(op, -ETIMEDOUT, "nginx test timed out after %s: %s was killed",
		              timeout_string(op, buf, sizeof(buf)),
		              op->test_command ? op->test_command[0] : "?");
		break;
	case STAGE_TEST_SYSTEMD:
		nginx_op_fail(
		    op, -ETIMEDOUT,
		    "nginx test timed out after %s: %s did not finish (see journalctl -u %s)",
		    timeout_string(op, buf, sizeof(buf)), op->test_unit, op->test_unit);
		break;
	case STAGE_RELOAD_EXEC:
		nginx_op_fail(op, -ETIMEDOUT, "nginx reload timed out after %s: %s was killed",
		              timeout_string(op, buf, sizeof(buf)), op->reload_command[0]);
		break;
	case STAGE_SYSTEMD_QUERY:
	case STAGE_SYSTEMD_JOB:
		nginx_op_fail(
		    op, -ETIMEDOUT, "systemd did not reload %s within %s (see journalctl -u %s)",
		    op->reload_target, timeout_string(op, buf, sizeof(buf)), op->reload_target);
		break;
	case STAGE_CONFIRM:
		nginx_op_fail(
		    op, -ETIMEDOUT,
		    "nginx master process %d started no new workers within %s: it probably "
		    "rejected the new configuration (see nginx's error log)",
		    (int)op->master, timeout_string(op, buf, sizeof(buf)));
		break;
	default:
		assert(false);
	}
	return 0;
}

NginxOp *nginx_op_free(NginxOp *op)
{
	if (!op)
		return NULL;

	op->timeout_source = sd_event_source_disable_unref(op->timeout_source);
	op->poll_source = sd_event_source_disable_unref(op->poll_source);
	op->defer_source = sd_event_source_disable_unref(op->defer_source);
	op_release_child(op);
	nginx_op_release_bus(op);
	if (op->master_fd >= 0)
		close(op->master_fd);
	if (op->stdout_fd >= 0)
		close(op->stdout_fd);
	sd_event_unref(op->event);

	strv_free(op->test_command);
	free(op->test_unit);
	free(op->reload_target);
	strv_free(op->reload_command);
	free(op->result.message);
	free(op->snapshot);
	free(op->unit_path);
	free(op->job_path);
	free(op);
	return NULL;
}

int nginx_apply(sd_event *e, const Config *c, usec_t timeout, nginx_done_t done, void *userdata,
                NginxOp **ret)
{
	_cleanup_(nginx_op_freep) NginxOp *op = NULL;
	sigset_t ss;
	int r;

	assert(e);
	assert(c);
	assert(done);
	assert(ret);

	if (timeout == 0)
		return -EINVAL;
	if ((unsigned)c->reload >= _RELOAD_METHOD_MAX)
		return -EINVAL;
	if ((c->reload == RELOAD_PIDFILE || c->reload == RELOAD_SYSTEMD) && !c->reload_target)
		return -EINVAL;
	if (c->reload == RELOAD_EXEC && (!c->reload_command || !c->reload_command[0]))
		return -EINVAL;

	/* sd_event_add_child() needs SIGCHLD blocked; fail here, where the
	 * caller sees it, rather than later from the loop. */
	if ((c->test_command && c->test_command[0]) || c->reload == RELOAD_EXEC) {
		if (sigprocmask(SIG_SETMASK, NULL, &ss) < 0)
			return -errno;
		if (!sigismember(&ss, SIGCHLD))
			return -EBUSY;
	}

	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->event = sd_event_ref(e);
	op->stderr_fd = -1;
	op->master_fd = -1;
	op->stdout_fd = -1;
	op->done = done;
	op->userdata = userdata;
	op->timeout = timeout;
	op->stage = STAGE_START;
	op->reload = c->reload;

	if (c->test_unit) {
		op->test_unit = strdup(c->test_unit);
		if (!op->test_unit)
			return -ENOMEM;
	} else if (c->test_command && c->test_command[0]) {
		op->test_command = strv_copy(c->test_command);
		if (!op->test_command)
			return -ENOMEM;
	}
	if (c->reload == RELOAD_PIDFILE || c->reload == RELOAD_SYSTEMD) {
		op->reload_target = strdup(c->reload_target);
		if (!op->reload_target)
			return -ENOMEM;
	}
	if (c->reload == RELOAD_EXEC) {
		op->reload_command = strv_copy(c->reload_command);
		if (!op->reload_command)
			return -ENOMEM;
	}

	/* Never start (or finish) from inside nginx_apply(): the caller gets
	 * its op before any callback runs. */
	r = sd_event_add_defer(e, &op->defer_source, on_defer, op);
	if (r < 0)
		return r;
	if (timeout != USEC_INFINITY) {
		r = sd_event_add_time_relative(e, &op->timeout_source, CLOCK_MONOTONIC, timeout, 0,
		                               on_timeout, op);
		if (r < 0)
			return r;
	}

	*ret = TAKE_PTR(op);
	return 0;
}

int nginx_dump_config(sd_event *e, const Config *c, usec_t timeout, int stdout_fd,
                      nginx_done_t done, void *userdata, NginxOp **ret)
{
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_(nginx_op_freep) NginxOp *op = NULL;
	Config copy = *c;
	int r;

	/* A test and nothing after it: the test unit writes the dump itself;
	 * a test command runs with -T, its standard output to stdout_fd. */
	copy.reload = RELOAD_NONE;
	if (!c->test_unit) {
		if (!c->test_command || !c->test_command[0])
			return -ENOENT;
		r = nginx_dump_argv(c->test_command, &argv);
		if (r < 0)
			return r;
		copy.test_command = argv;
	}
	r = nginx_apply(e, &copy, timeout, done, userdata, &op);
	if (r < 0)
		return r;
	if (!c->test_unit) {
		op->stdout_fd = fcntl(stdout_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		if (op->stdout_fd < 0)
			return -errno;
	}
	*ret = TAKE_PTR(op);
	return 0;
}

const char *nginx_confirmation_to_string(NginxConfirmation c)
{
	static const char *const table[_NGINX_CONFIRMATION_MAX] = {
		[NGINX_WORKERS_REPLACED] = "workers-replaced",
		[NGINX_NOT_RUNNING] = "not-running",
		[NGINX_RELOAD_COMMAND] = "reload-command",
		[NGINX_TEST_ONLY] = "test-only",
		[NGINX_UNCHECKED] = "unchecked",
	};

	return c >= 0 && c < _NGINX_CONFIRMATION_MAX ? table[c] : NULL;
}
