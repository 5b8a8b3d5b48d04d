/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "server.h"
#include "util.h"

/* Bytes read per read(2): a few hundred pipelined requests at once. It holds
 * at least one maximal line, so a line never needs a bigger buffer.
 *
 * Memory per idle connection is what limits how many the daemon holds, so
 * connections own no buffer while idle. The loop is single-threaded: every
 * read goes to the server's one read buffer and is processed there; only
 * what is left when the connection stops (an incomplete line, or complete
 * lines held back by backpressure) is copied to a buffer of its own, of
 * just that size, which the next read puts back in front of the new bytes.
 * That copy is at most PROTO_LINE_MAX bytes each way per read, and never
 * happens when a read ends at a line's end, as pipelined batches do. */
#define IN_BUF_SIZE (32U * 1024U)
/* Above this much unsent output a connection's input is not processed any
 * more (backpressure): a client that sends but never reads cannot make the
 * daemon buffer without bound. The bound is soft by at most one answer. */
#define OUT_BUF_HIGH (256U * 1024U)
/* An output buffer is only held while it has unsent bytes. Drained, one of
 * this size goes back to the server as its spare for the next connection
 * with something to say, so a busy loop does not call malloc() per batch. */
#define OUT_BUF_INITIAL (16U * 1024U)
/* Accepts per wakeup, so a connect storm cannot starve connected clients. */
#define ACCEPT_BURST 64
/* Out of file descriptors: stop accepting for a moment instead of spinning on
 * a listening socket that stays readable. */
#define ACCEPT_RETRY_USEC (100 * USEC_PER_MSEC)

#define LISTEN_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)

static const char too_many_connections[] =
    "ERR unavailable too many connections (try again later)\n";

struct Conn {
	unsigned n_ref;
	Server *server; /* NULL once closed */
	int fd;
	sd_event_source *io;
	sd_event_source *resume; /* runs the connection again after a deferred reply */
	uint32_t events;         /* what io waits for; 0 while it is disabled */
	Peer peer;
	Conn *prev, *next;

	/* Input: bytes [in_start, in_end) of in are unprocessed. in is NULL
	 * while there are none, the server's read buffer while it is being
	 * processed (in_shared), or else owned: in_alloc bytes. */
	char *in;
	size_t in_start, in_end, in_alloc;
	bool in_shared;

	/* Output: bytes [out_start, out_end) of out are unsent. */
	char *out;
	size_t out_start, out_end, out_alloc;

	usec_t last_activity; /* CLOCK_MONOTONIC: last request or output progress */

	bool deferred;       /* the handler owes an answer; input waits */
	bool resume_pending; /* resume is enabled and holds a reference */
	bool processing;     /* inside conn_process(): the handler is running */
	bool in_pending;     /* complete lines may wait in the input: don't read */
	bool read_eof;
	bool closing; /* close once the output is flushed (after line-too-long) */
	bool broken;  /* out of memory: close at the next chance */
};

struct Server {
	sd_event *event;
	int fd;
	sd_event_source *listen;
	sd_event_source *listen_retry;
	sd_event_source *sweep;
	bool sweep_armed;
	server_handler_t handler;
	void *userdata;

	unsigned max_connections;
	usec_t idle_timeout; /* 0 or USEC_INFINITY: none */
	char *admin_group;

	Conn *conns;
	unsigned n_conns;

	/* IN_BUF_SIZE bytes that each read goes to; NULL until the first read,
	 * and while a connection that deferred in the middle of it keeps it
	 * (the handler may point into its line). */
	char *read_buf;
	/* A drained OUT_BUF_INITIAL output buffer kept for reuse, or NULL. */
	char *spare_out;

	/* Set when the socket file was bound here, so server_free() removes
	 * it, but only if it is still ours (not one a later instance bound). */
	char *bound_path;
	dev_t bound_dev;
	ino_t bound_ino;

	/* Answers with ERR the server gives itself, before any handler: too
	 * many connections, a line too long. */
	uint64_t n_errors;
};

static usec_t server_now(Server *s)
{
	usec_t t;

	/* The cached time of this event loop iteration: no syscall per line. */
	if (sd_event_now(s->event, CLOCK_MONOTONIC, &t) < 0)
		return now_monotonic();
	return t;
}

static bool idle_timeout_enabled(usec_t t)
{
	return t > 0 && t != USEC_INFINITY;
}

/* --- who is admin ------------------------------------------------------- */

static int lookup_group(const char *name, gid_t *ret)
{
	size_t size = 4096;

	for (;;) {
		_cleanup_free_ char *buf = malloc(size);
		struct group gr, *result = NULL;
		int r;

		if (!buf)
			return -ENOMEM;
		r = getgrnam_r(name, &gr, buf, size, &result);
		if (r == ERANGE && size < 1024 * 1024) {
			size *= 2;
			continue;
		}
		if (r != 0)
			return r > 0 ? -r : -EIO;
		if (!result)
			return -ENOENT;
		*ret = gr.gr_gid;
		return 0;
	}
}

static int uid_in_group(uid_t uid, gid_t gid)
{
	size_t size = 4096;
	_cleanup_free_ char *buf = NULL;
	struct passwd pw, *result = NULL;

	for (;;) {
		int r;

		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		r = getpwuid_r(uid, &pw, buf, size, &result);
		if (r == ERANGE && size < 1024 * 1024) {
			free(buf);
			size *= 2;
			continue;
		}
		if (r != 0)
			return r > 0 ? -r : -EIO;
		if (!result)
			return -ENOENT;
		break;
	}

	if (pw.pw_gid == gid)
		return 1;

	int n = 64;
	for (;;) {
		_cleanup_free_ gid_t *groups = calloc(n, sizeof(gid_t));
		int m = n;

		if (!groups)
			return -ENOMEM;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &m) < 0) {
			/* m now says how many there are. */
			if (m <= n || m > 65536)
				return -EIO;
			n = m;
			continue;
		}
		for (int i = 0; i < m; i++)
			if (groups[i] == gid)
				return 1;
		return 0;
	}
}

/* Any failure to look something up means "not admin": fail closed. */
static bool peer_is_admin(const char *admin_group, const struct ucred *cred)
{
	gid_t gid = (gid_t)-1;

	if (cred->uid == 0)
		return true;
	if (!admin_group || !*admin_group)
		return false;
	/* A missing group means only root is admin. */
	if (lookup_group(admin_group, &gid) < 0)
		return false;
	/* The effective gid (sg, newgrp, a setgid helper) carries the group's
	 * rights as much as membership in the user database does. */
	if (cred->gid == gid)
		return true;
	return uid_in_group(cred->uid, gid) > 0;
}

/* --- connections -------------------------------------------------------- */

static void conn_unref(Conn *c)
{
	assert(c->n_ref > 0);
	if (--c->n_ref > 0)
		return;
	/* The server's own reference goes last, at close. */
	assert(!c->server);
	free(c);
}

static size_t conn_out_len(const Conn *c)
{
	return c->out_end - c->out_start;
}

static void conn_close(Conn *c)
{
	Server *s = c->server;

	if (!s)
		return;

	c->server = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	s->n_conns--;

	c->io = sd_event_source_disable_unref(c->io);
	c->resume = sd_event_source_disable_unref(c->resume);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (!c->in_shared)
		free(c->in);
	c->in = NULL;
	c->in_start = c->in_end = c->in_alloc = 0;
	c->in_shared = false;
	free(c->out);
	c->out = NULL;
	c->out_start = c->out_end = c->out_alloc = 0;

	if (c->resume_pending) {
		c->resume_pending = false;
		conn_unref(c); /* not the last: the server's is still held */
	}
	conn_unref(c); /* the server's reference */
}

/* Returns where n bytes may be written at the end of the output, or NULL
 * when the connection is closed (the answer is dropped) or memory ran out
 * (the connection is marked broken and closed soon). */
static char *conn_out_reserve(Conn *c, size_t n)
{
	size_t used = conn_out_len(c);

	if (!c->server || c->broken)
		return NULL;
	if (c->out_alloc - c->out_end >= n)
		return c->out + c->out_end;

	if (!c->out && c->server->spare_out && n <= OUT_BUF_INITIAL) {
		c->out = TAKE_PTR(c->server->spare_out);
		c->out_alloc = OUT_BUF_INITIAL;
		c->out_start = c->out_end = 0;
		return c->out;
	}

	/* Move unsent data to the front only when that frees at least as
	 * much as it copies, so appending stays linear overall. */
	if (c->out_start >= used && c->out_alloc - used >= n) {
		memmove(c->out, c->out + c->out_start, used);
		c->out_start = 0;
		c->out_end = used;
		return c->out + c->out_end;
	}

	size_t size = c->out_alloc > 0 ? c->out_alloc : OUT_BUF_INITIAL;
	while (size - used < n) {
		if (size > SIZE_MAX / 2)
			goto fail;
		size *= 2;
	}
	if (size < c->out_alloc * 2 && c->out_alloc <= SIZE_MAX / 2)
		size = c->out_alloc * 2;

	char *p = malloc(size);
	if (!p)
		goto fail;
	if (used > 0)
		memcpy(p, c->out + c->out_start, used);
	free(c->out);
	c->out = p;
	c->out_alloc = size;
	c->out_start = 0;
	c->out_end = used;
	return c->out + c->out_end;

fail:
	c->broken = true;
	return NULL;
}

static bool conn_can_read(const Conn *c)
{
	return c->server && !c->read_eof && !c->closing && !c->deferred && !c->broken &&
	       !c->in_pending && conn_out_len(c) < OUT_BUF_HIGH;
}

/* EPOLLOUT only while output is pending; EPOLLIN only while input would be
 * processed. With neither the source is off: a hung-up peer would otherwise
 * report EPOLLHUP in a loop while the connection waits for a deferred
 * answer. */
static int conn_update_events(Conn *c)
{
	uint32_t want = 0;
	int r;

	if (conn_can_read(c))
		want |= EPOLLIN;
	/* Complete lines left waiting by a pause whose reason went away
	 * meanwhile (the final flush sent everything): EPOLLOUT comes at once
	 * on a writable socket and runs them, after other clients had their
	 * turn. Without it the connection would stall with neither event. */
	if (conn_out_len(c) > 0 || c->broken || (c->in_pending && !c->deferred && !c->closing))
		want |= EPOLLOUT;
	if (want == c->events)
		return 0;

	if (want == 0)
		r = sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
	else {
		r = sd_event_source_set_io_events(c->io, want);
		if (r >= 0 && c->events == 0)
			r = sd_event_source_set_enabled(c->io, SD_EVENT_ON);
	}
	if (r < 0)
		return r;
	c->events = want;
	return 0;
}

/* Gives up the drained output buffer: the server keeps one of the initial
 * size as its spare, a grown one (after backpressure) is freed. */
static void conn_out_release(Conn *c)
{
	Server *s = c->server;

	assert(c->out_start == c->out_end);
	if (c->out && c->out_alloc == OUT_BUF_INITIAL && s && !s->spare_out)
		s->spare_out = c->out;
	else
		free(c->out);
	c->out = NULL;
	c->out_start = c->out_end = c->out_alloc = 0;
}

static int conn_flush(Conn *c)
{
	bool progress = false;

	while (c->out_start < c->out_end) {
		size_t len = c->out_end - c->out_start;
		ssize_t n = send(c->fd, c->out + c->out_start, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		c->out_start += (size_t)n;
		progress = true;
		/* A short write means the socket buffer is full: don't pay
		 * a syscall just to hear EAGAIN. */
		if ((size_t)n < len)
			break;
	}
	if (c->out_start == c->out_end)
		conn_out_release(c);
	if (progress)
		c->last_activity = server_now(c->server);
	return 0;
}

/* Frees the connection's own input buffer. A full-size one (kept over a
 * deferral) becomes the server's read buffer again if that is missing. */
static void conn_in_release(Conn *c)
{
	Server *s = c->server;

	assert(!c->in_shared);
	if (c->in && c->in_alloc == IN_BUF_SIZE && s && !s->read_buf)
		s->read_buf = c->in;
	else
		free(c->in);
	c->in = NULL;
	c->in_start = c->in_end = c->in_alloc = 0;
}

/* Makes the server's read buffer the connection's input, with the bytes it
 * held on to (a partial line) in front. */
static int conn_in_attach(Conn *c)
{
	Server *s = c->server;
	size_t len = c->in_end - c->in_start;

	if (c->in_shared)
		return 0;
	if (!s->read_buf) {
		/* A connection that held the read buffer over a deferral
		 * hands it back rather than copying out of it. */
		if (c->in && c->in_alloc == IN_BUF_SIZE) {
			memmove(c->in, c->in + c->in_start, len);
			s->read_buf = TAKE_PTR(c->in);
		} else {
			s->read_buf = malloc(IN_BUF_SIZE);
			if (!s->read_buf)
				return -ENOMEM;
		}
	}
	if (c->in) {
		memcpy(s->read_buf, c->in + c->in_start, len);
		conn_in_release(c);
	}
	c->in = s->read_buf;
	c->in_start = 0;
	c->in_end = len;
	c->in_alloc = IN_BUF_SIZE;
	c->in_shared = true;
	return 0;
}

/* Called whenever the connection stops being processed: the read buffer
 * must be free for the next one. What is left is copied out; a deferred
 * connection keeps the whole buffer instead, since the handler may still
 * point into the deferred line. An owned buffer with nothing left goes. */
static int conn_in_detach(Conn *c)
{
	Server *s = c->server;
	size_t len = c->in_end - c->in_start;

	if (!c->in_shared) {
		if (c->in && len == 0 && !c->deferred)
			conn_in_release(c);
		return 0;
	}

	c->in_shared = false;
	if (c->deferred) {
		s->read_buf = NULL;
		return 0;
	}
	if (len == 0) {
		c->in = NULL;
		c->in_start = c->in_end = c->in_alloc = 0;
		return 0;
	}
	char *p = malloc(len);
	if (!p) {
		c->in = NULL;
		c->in_start = c->in_end = c->in_alloc = 0;
		return -ENOMEM;
	}
	memcpy(p, c->in + c->in_start, len);
	c->in = p;
	c->in_start = 0;
	c->in_end = c->in_alloc = len;
	return 0;
}

static int conn_read(Conn *c)
{
	ssize_t n;
	int r;

	r = conn_in_attach(c);
	if (r < 0)
		return r;
	/* Reading happens only when no complete line waits, and then
	 * conn_process() has moved the partial line (shorter than
	 * PROTO_LINE_MAX) to the front: there is always room. */
	assert(c->in_start == 0 && c->in_end < PROTO_LINE_MAX);

	n = read(c->fd, c->in + c->in_end, IN_BUF_SIZE - c->in_end);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return -errno;
	}
	if (n == 0)
		c->read_eof = true;
	c->in_end += (size_t)n;
	return 0;
}

/* Hands every complete line to the handler, in order, until the input is
 * used up or the connection must pause: a deferred answer, output above the
 * bound, or a fatal line. */
static void conn_process(Conn *c)
{
	Server *s = c->server;
	bool any = false;

	c->processing = true;
	for (;;) {
		if (c->deferred || c->closing || c->broken || conn_out_len(c) >= OUT_BUF_HIGH) {
			c->in_pending = c->in_start < c->in_end;
			break;
		}

		size_t avail = c->in_end - c->in_start;
		if (avail == 0) {
			c->in_pending = false;
			break;
		}
		char *line = c->in + c->in_start;
		char *lf = memchr(line, '\n', avail < PROTO_LINE_MAX ? avail : PROTO_LINE_MAX);

		if (!lf) {
			c->in_pending = false;
			if (avail >= PROTO_LINE_MAX) {
				/* The rest of the stream cannot be framed
				 * reliably any more: answer and close. */
				s->n_errors++;
				conn_reply_error(c, PROTO_LINE_TOO_LONG,
				                 "request line longer than 8192 bytes");
				c->closing = true;
				c->in_start = c->in_end = 0;
			}
			break;
		}

		size_t len = (size_t)(lf - line);
		c->in_start += len + 1;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		/* Writable, and what proto_parse_line() wants there. */
		line[len] = '\0';
		any = true;
		s->handler(s->userdata, c, &c->peer, line, len);
	}
	c->processing = false;

	if (any)
		c->last_activity = server_now(s);

	/* While deferred, the deferred line stays where it is: the handler
	 * may still point into it until conn_reply_deferred(). */
	if (c->deferred)
		return;
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	else if (c->in_start > 0 && !c->in_pending) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
}

/* One round for a connection: send, read, process, send again, then either
 * close it or wait for what it needs next. c may be freed on return. */
static void conn_dispatch(Conn *c, uint32_t revents)
{
	if (c->broken || conn_flush(c) < 0)
		goto close;

	/* First what already waits (after a pause), then new input. */
	conn_process(c);
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_can_read(c)) {
		int r = conn_read(c);

		if (r >= 0)
			conn_process(c);
		if (conn_in_detach(c) < 0 || r < 0)
			goto close;
	} else if (conn_in_detach(c) < 0)
		goto close;

	/* Answer right away rather than after another epoll round trip. */
	if (c->broken || conn_flush(c) < 0)
		goto close;

	if (conn_out_len(c) == 0 && !c->deferred && (c->closing || (c->read_eof && !c->in_pending)))
		goto close;

	if (conn_update_events(c) < 0)
		goto close;
	return;

close:
	conn_close(c);
}

static int on_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	conn_dispatch(userdata, revents);
	return 0;
}

static int on_conn_resume(sd_event_source *es, void *userdata)
{
	Conn *c = userdata;

	/* The pending reference is ours now; the connection may close in
	 * conn_dispatch() but stays allocated until we let go. */
	assert(c->resume_pending);
	c->resume_pending = false;
	if (c->server)
		conn_dispatch(c, 0);
	conn_unref(c);
	return 0;
}

/* --- idle timeout ------------------------------------------------------- */

/* Idle connections are found by one sweep timer for the whole server rather
 * than a timer per connection: a request or output progress then only stores
 * the loop's cached timestamp, where a per-connection timer would re-sort
 * sd-event's timer queue for every batch of requests. A sweep walks the list
 * (max_connections entries at most) no more often than every idle_timeout/4,
 * so connections close between idle_timeout and 1.25 * idle_timeout. */
static void server_arm_sweep(Server *s, usec_t next, usec_t now)
{
	if (!s->sweep)
		return;
	if (!s->conns || next == USEC_INFINITY || !idle_timeout_enabled(s->idle_timeout)) {
		(void)sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
		s->sweep_armed = false;
		return;
	}
	if (next < now + s->idle_timeout / 4)
		next = now + s->idle_timeout / 4;
	if (sd_event_source_set_time(s->sweep, next) < 0 ||
	    sd_event_source_set_enabled(s->sweep, SD_EVENT_ONESHOT) < 0)
		return;
	s->sweep_armed = true;
}

static usec_t deadline_add(usec_t t, usec_t d)
{
	return t > USEC_INFINITY - d ? USEC_INFINITY - 1 : t + d;
}

static int on_sweep(sd_event_source *es, usec_t usec, void *userdata)
{
	Server *s = userdata;
	usec_t now = server_now(s), next = USEC_INFINITY;

	s->sweep_armed = false;
	for (Conn *c = s->conns, *n; c; c = n) {
		usec_t deadline;

		n = c->next;
		/* A deferred connection waits for us, not for its client. */
		if (c->deferred)
			deadline = deadline_add(now, s->idle_timeout);
		else
			deadline = deadline_add(c->last_activity, s->idle_timeout);
		if (deadline <= now) {
			conn_close(c);
			continue;
		}
		if (deadline < next)
			next = deadline;
	}
	server_arm_sweep(s, next, now);
	return 0;
}

static int server_setup_sweep(Server *s)
{
	usec_t accuracy;
	int r;

	if (!idle_timeout_enabled(s->idle_timeout)) {
		server_arm_sweep(s, USEC_INFINITY, 0);
		return 0;
	}

	accuracy = s->idle_timeout / 8;
	if (accuracy < USEC_PER_MSEC)
		accuracy = USEC_PER_MSEC;

	if (!s->sweep) {
		r = sd_event_add_time(s->event, &s->sweep, CLOCK_MONOTONIC, 0, accuracy, on_sweep,
		                      s);
		if (r < 0)
			return r;
		r = sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
		if (r < 0)
			return r;
		s->sweep_armed = false;
	} else {
		r = sd_event_source_set_time_accuracy(s->sweep, accuracy);
		if (r < 0)
			return r;
	}

	/* Limits changed: let the next sweep recompute every deadline. */
	usec_t now = server_now(s);
	server_arm_sweep(s, now, now);
	return 0;
}

/* --- accepting ---------------------------------------------------------- */

static void server_add_conn(Server *s, int fd_in)
{
	_cleanup_close_ int fd = fd_in;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	Conn *c;

	if (s->n_conns >= s->max_connections) {
		s->n_errors++;
		/* Best effort: a fresh socket's buffer is empty, so this
		 * short line fits unless the client is already gone. */
		(void)send(fd, too_many_connections, sizeof(too_many_connections) - 1,
		           MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}

	/* Without credentials nothing can be authorised: refuse. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
		return;

	c = calloc(1, sizeof(Conn));
	if (!c)
		return;
	c->n_ref = 1;
	c->fd = -1;
	c->peer = (Peer){
		.pid = cred.pid,
		.uid = cred.uid,
		.gid = cred.gid,
		.admin = peer_is_admin(s->admin_group, &cred),
	};

	if (sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_conn_io, c) < 0) {
		free(c);
		return;
	}
	c->events = EPOLLIN;
	c->fd = TAKE_FD(fd);
	c->server = s;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;

	usec_t now = server_now(s);
	c->last_activity = now;
	/* An armed sweep is due no later than this connection's deadline. */
	if (!s->sweep_armed)
		server_arm_sweep(s, deadline_add(now, s->idle_timeout), now);
}

static int on_listen_retry(sd_event_source *es, usec_t usec, void *userdata)
{
	Server *s = userdata;

	(void)sd_event_source_set_enabled(s->listen, SD_EVENT_ON);
	return 0;
}

static void server_pause_accept(Server *s)
{
	usec_t when = server_now(s) + ACCEPT_RETRY_USEC;
	int r;

	if (!s->listen_retry)
		r = sd_event_add_time(s->event, &s->listen_retry, CLOCK_MONOTONIC, when, 0,
		                      on_listen_retry, s);
	else {
		r = sd_event_source_set_time(s->listen_retry, when);
		if (r >= 0)
			r = sd_event_source_set_enabled(s->listen_retry, SD_EVENT_ONESHOT);
	}
	/* Without a retry timer keep listening: spinning beats going deaf. */
	if (r >= 0)
		(void)sd_event_source_set_enabled(s->listen, SD_EVENT_OFF);
}

static int on_listen(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	Server *s = userdata;

	for (unsigned i = 0; i < ACCEPT_BURST; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			switch (errno) {
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
				/* That client is gone; others may wait. */
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				server_pause_accept(s);
				break;
			default:
				break;
			}
			break;
		}
		server_add_conn(s, cfd);
	}
	return 0;
}

/* --- the listening socket ----------------------------------------------- */

static int socket_address(const char *path, struct sockaddr_un *ret, socklen_t *ret_len)
{
	size_t l;

	if (!path || !*path)
		return -EINVAL;
	l = strlen(path);
	if (l >= sizeof(ret->sun_path))
		return -ENAMETOOLONG;
	memset(ret, 0, sizeof(*ret));
	ret->sun_family = AF_UNIX;
	memcpy(ret->sun_path, path, l + 1);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + 1);
	return 0;
}

/* Creates the missing directories above path, mode 0755 whatever the umask. */
static int mkdir_parents(const char *path)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *sl = strchr(p + 1, '/'); sl; sl = strchr(sl + 1, '/')) {
		*sl = '\0';
		if (mkdir(p, 0755) >= 0) {
			if (chmod(p, 0755) < 0)
				return -errno;
		} else if (errno != EEXIST)
			return -errno;
		*sl = '/';
	}
	return 0;
}

/* 1 when something accepts connections at the address, 0 when the socket
 * file is stale (or gone), else a negative errno. */
static int socket_is_live(const struct sockaddr_un *sa, socklen_t len)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, len) >= 0)
		return 1;
	switch (errno) {
	case EAGAIN: /* listening, backlog full */
	case EINPROGRESS:
		return 1;
	case ECONNREFUSED:
	case ENOENT:
		return 0;
	default:
		return -errno;
	}
}

static int server_bind(Server *s, const char *path)
{
	struct sockaddr_un sa;
	socklen_t salen;
	struct stat st;
	mode_t old_umask;
	int r;

	r = socket_address(path, &sa, &salen);
	if (r < 0)
		return r;
	r = mkdir_parents(path);
	if (r < 0)
		return r;

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	if (lstat(path, &st) >= 0) {
		/* Only ever remove a socket nobody serves: never a regular
		 * file a typo in the config pointed at, never a running
		 * daemon's socket. */
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		r = socket_is_live(&sa, salen);
		if (r < 0)
			return r;
		if (r > 0)
			return -EADDRINUSE;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	} else if (errno != ENOENT)
		return -errno;

	/* The socket file must never exist with wider permissions than 0660,
	 * not even between bind() and chmod(). The daemon is single-threaded
	 * at start-up, so the process-wide umask may be borrowed. */
	old_umask = umask(0117);
	r = bind(fd, (const struct sockaddr *)&sa, salen);
	if (r < 0)
		r = -errno;
	umask(old_umask);
	if (r < 0)
		return r;

	if (lstat(path, &st) < 0)
		return -errno;
	s->bound_path = strdup(path);
	if (!s->bound_path) {
		(void)unlink(path);
		return -ENOMEM;
	}
	s->bound_dev = st.st_dev;
	s->bound_ino = st.st_ino;

	/* From here on server_free() unlinks the path on failure. */
	if (chmod(path, 0660) < 0)
		return -errno;
	if (listen(fd, SOMAXCONN) < 0)
		return -errno;

	s->fd = TAKE_FD(fd);
	return 0;
}

static int server_take_listen_fd(Server *s, int fd)
{
	int flags, r;

	r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOTSOCK;

	/* accept4() in a loop needs a non-blocking listener. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	s->fd = fd;
	return 0;
}

static int server_apply_config(Server *s, const Config *c)
{
	char *group = NULL;

	if (c->admin_group) {
		group = strdup(c->admin_group);
		if (!group)
			return -ENOMEM;
	}
	free(s->admin_group);
	s->admin_group = group;
	s->max_connections = c->max_connections;
	s->idle_timeout = c->idle_timeout;
	return 0;
}

int server_new(sd_event *e, const Config *c, server_handler_t handler, void *userdata, Server **ret)
{
	_cleanup_(server_freep) Server *s = NULL;
	int n, r;

	assert(e);
	assert(c);
	assert(handler);
	assert(ret);

	s = calloc(1, sizeof(Server));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->event = sd_event_ref(e);
	s->handler = handler;
	s->userdata = userdata;

	r = server_apply_config(s, c);
	if (r < 0)
		return r;

	n = sd_listen_fds(1);
	if (n < 0)
		return n;
	if (n > 1)
		/* securelinkd.socket has one ListenStream=; anything else is
		 * a unit file mistake, not something to guess around. */
		return -EINVAL;
	if (n == 1)
		r = server_take_listen_fd(s, SD_LISTEN_FDS_START);
	else
		r = server_bind(s, c->socket);
	if (r < 0)
		return r;

	r = sd_event_add_io(e, &s->listen, s->fd, EPOLLIN, on_listen, s);
	if (r < 0)
		return r;
	/* Serve connected clients (and notice closed ones, which frees slots
	 * under max_connections) before accepting new ones. */
	r = sd_event_source_set_priority(s->listen, LISTEN_PRIORITY);
	if (r < 0)
		return r;

	r = server_setup_sweep(s);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(s);
	return 0;
}

Server *server_free(Server *s)
{
	struct stat st;

	if (!s)
		return NULL;

	while (s->conns)
		conn_close(s->conns);

	s->listen = sd_event_source_disable_unref(s->listen);
	s->listen_retry = sd_event_source_disable_unref(s->listen_retry);
	s->sweep = sd_event_source_disable_unref(s->sweep);

	/* Unlink before close: clients then see "no such file" rather than a
	 * refused connection. */
	if (s->bound_path && lstat(s->bound_path, &st) >= 0 && st.st_dev == s->bound_dev &&
	    st.st_ino == s->bound_ino)
		(void)unlink(s->bound_path);
	free(s->bound_path);
	if (s->fd >= 0)
		close(s->fd);

	free(s->read_buf);
	free(s->spare_out);
	free(s->admin_group);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

void server_set_config(Server *s, const Config *c)
{
	usec_t old_idle = s->idle_timeout;

	/* On ENOMEM the old limits stay, like any other bad reload. */
	if (server_apply_config(s, c) < 0)
		return;
	if (s->idle_timeout != old_idle && server_setup_sweep(s) < 0)
		/* No timer: keep sweeping with the old one's schedule. */
		s->idle_timeout = old_idle;
}

unsigned server_n_connections(const Server *s)
{
	return s->n_conns;
}

uint64_t server_errors(const Server *s)
{
	return s->n_errors;
}

size_t server_connection_buffer_bytes(const Server *s)
{
	size_t n = 0;

	for (const Conn *c = s->conns; c; c = c->next) {
		if (c->in && !c->in_shared)
			n += c->in_alloc;
		n += c->out_alloc;
	}
	return n;
}

/* --- answers ------------------------------------------------------------ */

/* Answers given outside a handler (not the usual case) still need the
 * connection to wait for EPOLLOUT. */
static void conn_appended(Conn *c)
{
	if (!c->processing && c->server && conn_update_events(c) < 0)
		c->broken = true;
}

void conn_reply(Conn *c, const char *line)
{
	conn_reply_len(c, line, strlen(line));
}

void conn_reply_len(Conn *c, const char *line, size_t len)
{
	char *p = conn_out_reserve(c, len + 1);

	if (!p)
		return;
	memcpy(p, line, len);
	p[len] = '\n';
	c->out_end += len + 1;
	conn_appended(c);
}

void conn_replyf(Conn *c, const char *format, ...)
{
	va_list ap;
	char *p;
	int n;

	/* Format straight into the output buffer; only an answer longer
	 * than the free space is formatted twice. */
	p = conn_out_reserve(c, 256);
	if (!p)
		return;
	va_start(ap, format);
	n = vsnprintf(p, c->out_alloc - c->out_end, format, ap);
	va_end(ap);
	if (n < 0) {
		c->broken = true;
		return;
	}
	if ((size_t)n + 1 > c->out_alloc - c->out_end) {
		p = conn_out_reserve(c, (size_t)n + 1);
		if (!p)
			return;
		va_start(ap, format);
		n = vsnprintf(p, c->out_alloc - c->out_end, format, ap);
		va_end(ap);
		if (n < 0) {
			c->broken = true;
			return;
		}
	}
	/* The NUL's place takes the LF. */
	p[n] = '\n';
	c->out_end += (size_t)n + 1;
	conn_appended(c);
}

void conn_reply_error(Conn *c, ProtoError code, const char *message)
{
	const char *name = proto_error_to_string(code);
	/* proto_format_error() says the same for an empty message. */
	const char *shown = message && *message ? message : "no details";
	size_t need = STRLEN("ERR ") + (name ? strlen(name) : 0) + 1 + strlen(shown) + 2;
	char *p = conn_out_reserve(c, need);

	if (!p)
		return;
	c->out_end += proto_format_error(p, need, code, shown);
	conn_appended(c);
}

Conn *conn_defer(Conn *c)
{
	assert(c);
	assert(!c->deferred);

	c->deferred = true;
	c->n_ref++;
	return c;
}

void conn_reply_deferred(Conn *c, const char *line)
{
	assert(c);
	assert(c->deferred);

	c->deferred = false;
	if (!c->server) {
		/* Closed meanwhile: the answer has nobody to go to. */
		conn_unref(c);
		return;
	}

	conn_reply(c, line);
	c->last_activity = server_now(c->server);

	/* Answered from inside the handler: conn_process() goes on by
	 * itself. Already queued to resume: that holds a reference. */
	if (c->processing || c->resume_pending) {
		conn_unref(c);
		return;
	}

	/* Resume from the event loop, not from here: the caller may be in the
	 * middle of another connection's handler, which must not be
	 * re-entered. The deferral's reference passes to resume. */
	int r;
	if (!c->resume)
		r = sd_event_add_defer(c->server->event, &c->resume, on_conn_resume, c);
	else
		r = sd_event_source_set_enabled(c->resume, SD_EVENT_ONESHOT);
	if (r < 0) {
		c->broken = true;
		(void)conn_update_events(c);
		conn_unref(c);
		return;
	}
	c->resume_pending = true;
}
