/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#if HAVE_PIDFD_WRAPPERS
#include <sys/pidfd.h>
#endif

#include "fileio.h"
#include "nginx.h"
#include "nginx-proc.h"

/* A pid file holds a decimal pid and a newline. */
#define PID_FILE_MAX 64
/* /proc/PID/task/PID/children: pids separated by spaces; nginx has a few
 * workers per CPU, this is plenty. */
#define CHILDREN_MAX (256 * 1024)
#define CMDLINE_MAX  4096
#define STAT_MAX     4096
#define STATUS_MAX   16384

/* Strict pid: decimal, no sign, 1..INT_MAX. */
int proc_parse_pid(const char *s, pid_t *ret)
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
int proc_read_pid_file(const char *path, pid_t *ret)
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
	return proc_parse_pid(buf, ret);
}

int proc_pidfd_open(pid_t pid, unsigned flags)
{
#if HAVE_PIDFD_WRAPPERS
	return pidfd_open(pid, flags);
#else
	return (int)syscall(SYS_pidfd_open, pid, flags);
#endif
}

int proc_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned flags)
{
#if HAVE_PIDFD_WRAPPERS
	return pidfd_send_signal(pidfd, sig, info, flags);
#else
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags);
#endif
}

/* Whether pid exists: signal 0 checks without sending anything. */
bool proc_pid_is_alive(pid_t pid)
{
	return kill(pid, 0) >= 0 || errno == EPERM;
}

/* Whether /proc/PID/cmdline starts with title. Returns 1, 0, or -ENOENT when
 * the process is gone. */
int proc_has_title(pid_t pid, const char *title)
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
 * is called "master". Returns 1, 0, or -ENOENT when the process is gone,
 * a zombie included: a master killed with SIGKILL stays one until its
 * parent reaps it, with an empty title. */
int proc_is_nginx_master(pid_t pid)
{
	pid_t pgrp, session;
	int r = proc_has_title(pid, NGINX_MASTER_TITLE);

	if (r == 0 && proc_read_pgrp_session(pid, &pgrp, &session) == -ESRCH)
		return -ENOENT;
	return r;
}

/* Whether pid is an nginx worker that still accepts connections: its title
 * is "nginx: worker process" until the master tells it to quit, when nginx
 * retitles it "... is shutting down" and closes its listening sockets. A
 * process that is gone accepts nothing. Returns 1 or 0. */
int proc_is_accepting_worker(pid_t pid)
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

/* One "Name:\t<hex mask>" line of /proc/PID/status. */
static int status_mask(const char *buf, const char *name, uint64_t *ret)
{
	size_t n = strlen(name);

	for (const char *line = buf; line;) {
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			return sscanf(line + n + 1, " %" SCNx64, ret) == 1 ? 0 : -EBADMSG;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -EBADMSG;
}

int proc_read_signal(pid_t pid, int sig, bool *ret_pending, bool *ret_blocked)
{
	_cleanup_free_ char *buf = NULL;
	uint64_t bit = UINT64_C(1) << (sig - 1), thread, process, blocked;
	char path[64];
	size_t size;
	int r;

	assert(sig >= 1 && sig <= 64);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = read_file(path, STATUS_MAX, &buf, &size);
	if (r < 0)
		return r;
	if (strlen(buf) != size)
		return -EBADMSG;
	r = status_mask(buf, "SigPnd", &thread);
	if (r >= 0)
		r = status_mask(buf, "ShdPnd", &process);
	if (r >= 0)
		r = status_mask(buf, "SigBlk", &blocked);
	if (r < 0)
		return r;
	*ret_pending = (thread | process) & bit;
	*ret_blocked = blocked & bit;
	return 0;
}

/* Reads /proc/PID/stat into *ret_buf; *ret_fields points after "pid (comm)",
 * at the state: comm may hold anything, ')' included, so the fields start
 * after the last ')'. Returns 0, or a negative errno (-ENOENT when gone). */
static int read_stat(pid_t pid, char **ret_buf, const char **ret_fields)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	const char *p;
	size_t size;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_file(path, STAT_MAX, &buf, &size);
	if (r < 0)
		return r;
	p = strrchr(buf, ')');
	if (!p)
		return -EBADMSG;
	*ret_fields = p + 1;
	*ret_buf = TAKE_PTR(buf);
	return 0;
}

int proc_read_start_time(pid_t pid, uint64_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	const char *fields;
	int r;

	r = read_stat(pid, &buf, &fields);
	if (r < 0)
		return r;
	/* Fields 3 to 21, then starttime (proc(5)). */
	if (sscanf(fields,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
	           "%" SCNu64,
	           ret) != 1)
		return -EBADMSG;
	return 0;
}

/* Reads the process group and session of pid from /proc/PID/stat. Returns 0,
 * or a negative errno (-ENOENT when gone, -ESRCH for a zombie). */
int proc_read_pgrp_session(pid_t pid, pid_t *ret_pgrp, pid_t *ret_session)
{
	_cleanup_free_ char *buf = NULL;
	const char *fields;
	int ppid, pgrp, session;
	char state;
	int r;

	r = read_stat(pid, &buf, &fields);
	if (r < 0)
		return r;
	if (sscanf(fields, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4)
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
int proc_find_stray_workers(pid_t master, pid_t *ret, size_t max)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		pid_t pid, pgrp, session;

		if (proc_parse_pid(de->d_name, &pid) < 0 || pid == master)
			continue;
		if (proc_read_pgrp_session(pid, &pgrp, &session) < 0)
			continue;
		if (pgrp != master && session != master)
			continue;
		if (!proc_is_accepting_worker(pid))
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
int proc_read_children(pid_t pid, pid_t **ret, size_t *ret_n)
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
		r = proc_parse_pid(p, &pids[n]);
		if (r < 0)
			return -EBADMSG;
		n++;
	}
	*ret = TAKE_PTR(pids);
	*ret_n = n;
	return 0;
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

		if (proc_parse_pid(de->d_name, &pid) < 0)
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
