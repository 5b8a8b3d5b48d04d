/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if HAVE_PIDFD_WRAPPERS
#include <sys/pidfd.h>
#endif

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "fileio.h"
#include "nginx.h"

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
/* A pid file holds a decimal pid and a newline. */
#define PID_FILE_MAX 64
/* /proc/PID/task/PID/children: pids separated by spaces; nginx has a few
 * workers per CPU, this is plenty. */
#define CHILDREN_MAX (256 * 1024)
#define CMDLINE_MAX  4096
#define STAT_MAX     4096
/* How many stray workers an error message names. */
#define STRAYS_NAMED 4
/* nginx gives no notification when new workers run: poll /proc this often. */
#define POLL_INTERVAL_USEC (10 * USEC_PER_MSEC)

/* nginx on Linux rewrites its command line to these titles
 * (ngx_setproctitle: "nginx: " and the process's role). */
#define NGINX_MASTER_TITLE "nginx: master process"
#define NGINX_WORKER_TITLE "nginx: worker process"

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
	pid_t *snapshot;
	size_t n_snapshot;
	sd_event_source *poll_source;

	/* systemd: */
	sd_bus *bus;
	sd_bus_slot *call_slot;
	sd_bus_slot *match_slot;
	char *unit_path;
	char *job_path;
};

static int op_start_reload(NginxOp *op);
static int op_confirm_start(NginxOp *op);

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
static char *stderr_pick_line(const char *buf, size_t size)
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

static void op_release_bus(NginxOp *op)
{
	op->call_slot = sd_bus_slot_unref(op->call_slot);
	op->match_slot = sd_bus_slot_unref(op->match_slot);
	op->bus = sd_bus_close_unref(op->bus);
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
 * with `return op_fail(...)`, like log_error_errno(): a negative return of a
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

static int op_succeed(NginxOp *op, bool reloaded, bool not_running)
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

static int op_fail(NginxOp *op, int error, const char *format, ...) _printf_(3, 4);
static int op_fail(NginxOp *op, int error, const char *format, ...)
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

/* ---- reading /proc and pid files ---- */

/* Strict pid: decimal, no sign, 1..INT_MAX. */
static int parse_pid(const char *s, pid_t *ret)
{
	uint64_t v;
	int r;

	r = parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v == 0 || v > INT_MAX)
		return -ERANGE;
	*ret = (pid_t)v;
	return 0;
}

/* Reads the pid nginx wrote: "<pid>\n". Returns -ENOENT when the file is
 * missing, -ENODATA when it is empty, -EINVAL when it holds anything else. */
static int read_pid_file(const char *path, pid_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size;
	int r;

	r = read_file(path, PID_FILE_MAX, &buf, &size);
	if (r == -EFBIG)
		return -EINVAL;
	if (r < 0)
		return r;
	if (strlen(buf) != size)
		return -EINVAL;
	/* `nginx -t` creates the pid file of the configuration it checks and
	 * leaves it empty when no nginx runs: that is "not running". */
	if (size == 0)
		return -ENODATA;
	if (buf[size - 1] == '\n')
		buf[--size] = '\0';
	return parse_pid(buf, ret);
}

#if !HAVE_PIDFD_WRAPPERS
static int pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned flags)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags);
}
#endif

/* Whether pid exists: signal 0 checks without sending anything. */
static bool pid_is_alive(pid_t pid)
{
	return kill(pid, 0) >= 0 || errno == EPERM;
}

/* Whether the process is still there: through its pidfd when we have one
 * (a reused pid is someone else), else by number. */
static bool op_master_is_alive(const NginxOp *op)
{
	if (op->master_fd >= 0)
		return pidfd_send_signal(op->master_fd, 0, NULL, 0) >= 0 || errno == EPERM;
	return pid_is_alive(op->master);
}

/* Whether /proc/PID/cmdline starts with title. Returns 1, 0, or -ENOENT when
 * the process is gone. */
static int pid_has_title(pid_t pid, const char *title)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	size_t size;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	r = read_file(path, CMDLINE_MAX, &buf, &size);
	if (r == -EFBIG)
		return 0;
	if (r < 0)
		return r;
	return size >= strlen(title) && memcmp(buf, title, strlen(title)) == 0;
}

/* A stale pid file may name a pid that was reused by an unrelated process;
 * SIGHUP would kill most programs. Only nginx's own title identifies a
 * master: php-fpm's is "php-fpm: master process (...)", postfix's master
 * is called "master". Returns 1, 0, or -ENOENT when the process is gone. */
static int pid_is_nginx_master(pid_t pid)
{
	return pid_has_title(pid, NGINX_MASTER_TITLE);
}

/* Whether pid is an nginx worker that still accepts connections: its title
 * is "nginx: worker process" until the master tells it to quit, when nginx
 * retitles it "... is shutting down" and closes its listening sockets. A
 * process that is gone accepts nothing. Returns 1 or 0. */
static int pid_is_accepting_worker(pid_t pid)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	size_t size;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (read_file(path, CMDLINE_MAX, &buf, &size) < 0)
		return 0;
	return size >= STRLEN(NGINX_WORKER_TITLE) &&
	       memcmp(buf, NGINX_WORKER_TITLE, STRLEN(NGINX_WORKER_TITLE)) == 0 &&
	       !memmem(buf, size, "shutting down", STRLEN("shutting down"));
}

/* Reads the process group and session of pid from /proc/PID/stat. Returns 0,
 * or a negative errno (-ENOENT when gone, -ESRCH for a zombie). */
static int read_pgrp_session(pid_t pid, pid_t *ret_pgrp, pid_t *ret_session)
{
	_cleanup_free_ char *buf = NULL;
	char path[64], state;
	const char *p;
	int ppid, pgrp, session;
	size_t size;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_file(path, STAT_MAX, &buf, &size);
	if (r < 0)
		return r;
	/* "pid (comm) state ppid pgrp session ...": comm may hold anything,
	 * ')' included, so the fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4)
		return -EBADMSG;
	if (state == 'Z' || state == 'X')
		return -ESRCH;
	*ret_pgrp = pgrp;
	*ret_session = session;
	return 0;
}

/* Finds nginx workers that outlived their master (killed with SIGKILL, it
 * could not stop them): they still accept connections with the keys they
 * loaded. nginx's master leads its own session and process group (it calls
 * setsid() when it daemonizes; systemd starts every service that way), so
 * its workers keep master's pid as their session or group id, and the
 * kernel does not hand that pid out again while they live. Stores up to
 * max pids in ret; returns how many there are, or a negative errno when
 * /proc cannot be read. */
static int find_stray_workers(pid_t master, pid_t *ret, size_t max)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		pid_t pid, pgrp, session;

		if (parse_pid(de->d_name, &pid) < 0 || pid == master)
			continue;
		if (read_pgrp_session(pid, &pgrp, &session) < 0)
			continue;
		if (pgrp != master && session != master)
			continue;
		if (!pid_is_accepting_worker(pid))
			continue;
		if ((size_t)n < max)
			ret[n] = pid;
		n++;
	}
	closedir(d);
	return n;
}

/* Reads the children of pid from /proc (CONFIG_PROC_CHILDREN). nginx's
 * master is single-threaded, so its main thread's list is all of them. */
static int read_children(pid_t pid, pid_t **ret, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ pid_t *pids = NULL;
	char path[64], *p, *saveptr = NULL;
	size_t size, n = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	r = read_file(path, CHILDREN_MAX, &buf, &size);
	if (r < 0)
		return r;
	if (strlen(buf) != size)
		return -EBADMSG;

	/* "1 2 3 ": at most one pid per two bytes. */
	pids = calloc(size / 2 + 1, sizeof(pid_t));
	if (!pids)
		return -ENOMEM;
	for (p = strtok_r(buf, " \n", &saveptr); p; p = strtok_r(NULL, " \n", &saveptr)) {
		r = parse_pid(p, &pids[n]);
		if (r < 0)
			return -EBADMSG;
		n++;
	}
	*ret = TAKE_PTR(pids);
	*ret_n = n;
	return 0;
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
_Noreturn static void child_exec(char **argv, int null_fd, int stderr_fd)
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
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
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
		line = stderr_pick_line(op->stderr_buf, op->stderr_size);
		if (!line)
			line = child_status_string(op->child_name, si);
	}

	switch (op->stage) {
	case STAGE_TEST:
		if (!ok)
			/* Not EINVAL: that is what callers use for their own bad
			 * arguments; this is nginx refusing the files. */
			return op_fail(op, -EBADMSG, "nginx test failed: %s", line ?: "?");
		return op_start_reload(op);

	case STAGE_RELOAD_EXEC:
		if (!ok)
			return op_fail(op, -EIO, "nginx reload failed: %s", line ?: "?");
		/* Without a pid there is no master to watch: the command's
		 * success ("nginx -s reload" sent the signal) is all we can
		 * know. Use pidfile: or systemd: for a confirmed reload. */
		return op_succeed(op, true, false);

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
		child_exec(argv, null_fd, pipe_w);

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

/* ---- confirmation: new workers under the master ---- */

static bool snapshot_contains(const NginxOp *op, pid_t pid)
{
	for (size_t i = 0; i < op->n_snapshot; i++)
		if (op->snapshot[i] == pid)
			return true;
	return false;
}

/* Remembers the master's children before the reload. */
static int op_snapshot(NginxOp *op, pid_t master)
{
	free(op->snapshot);
	op->snapshot = NULL;
	op->n_snapshot = 0;
	op->master = master;
	return read_children(master, &op->snapshot, &op->n_snapshot);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata)
{
	_cleanup_free_ pid_t *children = NULL;
	NginxOp *op = userdata;
	size_t n;
	int r;

	r = read_children(op->master, &children, &n);
	if (r == -ENOENT || (r >= 0 && !op_master_is_alive(op))) {
		op_fail(op, -ESRCH,
		        "nginx master process %d exited during the reload (see nginx's error log)",
		        (int)op->master);
		return 0;
	}
	if (r < 0) {
		op_fail(op, r, "cannot read the children of nginx master process %d: %s",
		        (int)op->master, strerror(-r));
		return 0;
	}

	/* nginx starts the new workers first, then tells the old ones to quit.
	 * Confirmed: a pid we did not see before (the new configuration is
	 * live) and no old worker still accepting connections (a link of a
	 * revoked or dropped key could otherwise still pass there). Old workers
	 * busy with long downloads are "shutting down" and accept nothing new. */
	bool new_worker = false, old_accepting = false;
	for (size_t i = 0; i < n; i++) {
		if (!snapshot_contains(op, children[i]))
			new_worker = true;
		else if (pid_is_accepting_worker(children[i]))
			old_accepting = true;
	}
	if (new_worker && !old_accepting) {
		op_succeed(op, true, false);
		return 0;
	}

	r = sd_event_source_set_time_relative(s, POLL_INTERVAL_USEC);
	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0)
		op_fail(op, r, "cannot wait for nginx's new workers: %s", strerror(-r));
	return 0;
}

static int op_confirm_start(NginxOp *op)
{
	int r;

	op->stage = STAGE_CONFIRM;
	/* Check at once: nginx may already have started its new workers. */
	/* Accuracy 0 would mean sd-event's default of 250 ms: the poll would
	 * fire a quarter second late and every rotation wait that long. */
	r = sd_event_add_time_relative(op->event, &op->poll_source, CLOCK_MONOTONIC, 0,
	                               USEC_PER_MSEC, on_poll, op);
	if (r < 0)
		return op_fail(op, r, "cannot wait for nginx's new workers: %s", strerror(-r));
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

	n = find_stray_workers(master, strays, ELEMENTSOF(strays));
	if (n < 0)
		return op_fail(op, n,
		               "nginx master process %d (pid file %s) is gone, and /proc cannot be "
		               "read to look for its workers: %s",
		               (int)master, op->reload_target, strerror(-n));
	if (n == 0)
		return op_succeed(op, false, true);

	for (int i = 0; i < n && i < (int)ELEMENTSOF(strays); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i ? " " : "",
		                        (int)strays[i]);
	if (n > (int)ELEMENTSOF(strays))
		(void)snprintf(list + len, sizeof(list) - len, " ...");
	return op_fail(op, -ESRCH,
	               "nginx master process %d (pid file %s) is gone but %d of its worker "
	               "processes still serve with the old keys (pid %s): stop them (kill %s) "
	               "and restart nginx",
	               (int)master, op->reload_target, n, list, list);
}

static int op_reload_pidfile(NginxOp *op)
{
	_cleanup_close_ int pidfd = -1;
	pid_t pid;
	int r;

	r = read_pid_file(op->reload_target, &pid);
	if (r == -ENOENT || r == -ENODATA)
		/* nginx removes its pid file when it exits: not running, and it
		 * reads the files on disk when it starts. */
		return op_succeed(op, false, true);
	if (r < 0)
		return op_fail(op, r == -ENOMEM ? r : -EINVAL, "pid file %s: %s", op->reload_target,
		               r == -EINVAL || r == -ERANGE ? "does not hold a pid" : strerror(-r));

	/* Pin the process first, then look at it: what the pidfd signals is
	 * the process whose title we read, never one that got its number
	 * after it exited (the signal then fails with ESRCH). */
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		r = -errno;
		if (r == -ESRCH)
			return op_master_gone(op, pid);
		return op_fail(op, r, "cannot open nginx master process %d (pid file %s): %s",
		               (int)pid, op->reload_target, strerror(-r));
	}

	r = pid_is_nginx_master(pid);
	if (r == -ENOENT)
		return op_master_gone(op, pid);
	if (r < 0)
		return op_fail(op, r, "cannot read /proc/%d/cmdline: %s", (int)pid, strerror(-r));
	if (r == 0)
		return op_fail(op, -ESRCH,
		               "pid file %s names process %d, which is not an nginx master process "
		               "(its title does not start with \"" NGINX_MASTER_TITLE "\"): no "
		               "signal sent; fix nginx's pid directive or restart nginx",
		               op->reload_target, (int)pid);

	r = op_snapshot(op, pid);
	if (r == -ENOENT && pidfd_send_signal(pidfd, 0, NULL, 0) < 0 && errno == ESRCH)
		return op_master_gone(op, pid);
	if (r < 0)
		return op_fail(op, r,
		               "cannot read the children of nginx master process %d: %s (a kernel "
		               "with CONFIG_PROC_CHILDREN is needed to confirm reloads)",
		               (int)pid, strerror(-r));

	/* SIGHUP makes the master re-read its configuration and, if it is
	 * good, start new workers; if not, it logs why and keeps the old ones. */
	if (pidfd_send_signal(pidfd, SIGHUP, NULL, 0) < 0) {
		r = -errno;
		if (r == -ESRCH)
			return op_master_gone(op, pid);
		return op_fail(op, r, "cannot send SIGHUP to nginx master process %d: %s", (int)pid,
		               strerror(-r));
	}
	op->master_fd = TAKE_FD(pidfd);
	return op_confirm_start(op);
}

/* ---- reload: systemd over D-Bus ---- */

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

		return op_fail(op, k > 0 ? -k : -EIO, "%s %s: %s", what, unit,
		               error->message ?: error->name);
	}
	if (r >= 0)
		r = -EIO;
	return op_fail(op, r, "%s %s: %s", what, unit, strerror(-r));
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
		op_fail(op, -ESRCH,
		        "%s has no main process after its reload (see journalctl -u %s)",
		        op->reload_target, op->reload_target);
		return 0;
	}
	/* Usually the same master; after a restart a new one, whose children
	 * are all new, which is just as good. */
	op->master = (pid_t)pid;
	op_confirm_start(op);
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
		(void)op_start_reload(op);
		return;
	}
	/* Only a test that ran and failed wrote this run's message there;
	 * "timeout", "canceled", "dependency" would show an older one. */
	if (streq(result, "failed") &&
	    read_file(NGINX_TEST_OUTPUT, TEST_OUTPUT_MAX, &buf, &size) >= 0)
		line = stderr_pick_line(buf, size);
	if (line)
		op_fail(op, -EBADMSG, "nginx test failed: %s", line);
	else
		op_fail(op, -EBADMSG,
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
		op_fail(op, -EIO,
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
		op_fail(op, -ENOMEM, "%s %s: out of memory", op_bus_what(op), op_bus_unit(op));
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
		op_fail(op, -EBADMSG, "systemd reported an invalid main PID for %s",
		        op->reload_target);
		return 0;
	}

	/* Snapshot before the reload is requested, or new workers that come up
	 * fast would be taken for old ones. A unit still starting has no main
	 * PID yet: an empty snapshot, the workers it starts count. */
	if (pid > 0) {
		r = op_snapshot(op, (pid_t)pid);
		if (r < 0 && r != -ENOENT) {
			op_fail(op, r,
			        "cannot read the children of %s's main process %" PRIu32 ": %s",
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
		op_succeed(op, false, true);
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
		op_succeed(op, false, true);
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
		op_fail(op, -ENOMEM, "cannot find %s: out of memory", op->reload_target);
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
static int op_test_systemd(NginxOp *op)
{
	int r;

	op->stage = STAGE_TEST_SYSTEMD;
	r = op_open_bus(op);
	if (r < 0)
		return op_fail(
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

static int op_reload_systemd(NginxOp *op)
{
	int r;

	op->stage = STAGE_SYSTEMD_QUERY;
	r = op_open_bus(op);
	if (r < 0)
		return op_fail(op, r, "cannot connect to the system bus to reload %s: %s",
		               op->reload_target, strerror(-r));

	r = sd_bus_call_method_async(op->bus, &op->call_slot, SYSTEMD_DEST, SYSTEMD_PATH,
	                             SYSTEMD_MANAGER, "GetUnit", on_get_unit, op, "s",
	                             op->reload_target);
	if (r < 0)
		return op_fail_bus(op, NULL, r, "cannot find");
	return 0;
}

/* ---- the op ---- */

static int op_start_reload(NginxOp *op)
{
	int r;

	switch (op->reload) {
	case RELOAD_PIDFILE:
		return op_reload_pidfile(op);

	case RELOAD_EXEC:
		op->stage = STAGE_RELOAD_EXEC;
		r = op_spawn(op, op->reload_command);
		if (r < 0)
			return op_fail(op, r, "cannot run %s: %s", op->reload_command[0],
			               strerror(-r));
		return 0;

	case RELOAD_SYSTEMD:
		return op_reload_systemd(op);

	case RELOAD_NONE:
		/* Someone else reloads nginx; the files are written and tested. */
		return op_succeed(op, false, false);

	default:
		assert(false);
		return -EINVAL;
	}
}

static int op_start(NginxOp *op)
{
	int r;

	if (op->test_unit)
		return op_test_systemd(op);
	if (!op->test_command || !op->test_command[0])
		return op_start_reload(op);

	op->stage = STAGE_TEST;
	r = op_spawn(op, op->test_command);
	if (r < 0)
		return op_fail(op, r, "nginx test failed: cannot run %s: %s", op->test_command[0],
		               strerror(-r));
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
	op_release_bus(op);
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

	/* op_fail() stops everything: a child still running is killed and
	 * reaped at once, not when the caller frees the op. */
	switch (op->stage) {
	case STAGE_START:
	case STAGE_TEST:
		op_fail(op, -ETIMEDOUT, "nginx test timed out after %s: %s was killed",
		        timeout_string(op, buf, sizeof(buf)),
		        op->test_command ? op->test_command[0] : "?");
		break;
	case STAGE_TEST_SYSTEMD:
		op_fail(op, -ETIMEDOUT,
		        "nginx test timed out after %s: %s did not finish (see journalctl -u %s)",
		        timeout_string(op, buf, sizeof(buf)), op->test_unit, op->test_unit);
		break;
	case STAGE_RELOAD_EXEC:
		op_fail(op, -ETIMEDOUT, "nginx reload timed out after %s: %s was killed",
		        timeout_string(op, buf, sizeof(buf)), op->reload_command[0]);
		break;
	case STAGE_SYSTEMD_QUERY:
	case STAGE_SYSTEMD_JOB:
		op_fail(op, -ETIMEDOUT,
		        "systemd did not reload %s within %s (see journalctl -u %s)",
		        op->reload_target, timeout_string(op, buf, sizeof(buf)), op->reload_target);
		break;
	case STAGE_CONFIRM:
		op_fail(op, -ETIMEDOUT,
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
	op_release_bus(op);
	if (op->master_fd >= 0)
		close(op->master_fd);
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

pid_t nginx_find_master(void)
{
	struct dirent *de;
	pid_t found = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		_cleanup_free_ char *buf = NULL;
		char path[64];
		size_t size;
		pid_t pid;

		if (parse_pid(de->d_name, &pid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		if (read_file(path, CMDLINE_MAX, &buf, &size) < 0)
			continue;
		/* The title nginx gives its master on Linux. */
		if (size >= STRLEN(NGINX_MASTER_TITLE) &&
		    memcmp(buf, NGINX_MASTER_TITLE, STRLEN(NGINX_MASTER_TITLE)) == 0)
			found = pid;
	}
	closedir(d);
	return found;
}
