/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "server.h"
#include "util.h"

/* Bytes read per read(2): a few hundred pipelined requests at once. It holds
 * at least one maximal line, so a line never needs a bigger buffer.
 *
 * Memory per idle connection is what limits how many the daemon holds, so
 * connections own no input buffer while idle: a read goes to a buffer of
 * this size, and what is left when the connection stops (an incomplete line,
 * or lines held back by backpressure) moves to one of just that size.
 * Requests may carry a secret (IMPORT), so every input buffer is wiped
 * before it is freed. */
#define IN_BUF_SIZE (32U * 1024U)
/* Above this much unsent output a connection's input is not processed any
 * more (backpressure): a client that sends but never reads cannot make the
 * daemon buffer without bound. The bound is soft by at most one answer. */
#define OUT_BUF_HIGH (256U * 1024U)
/* An output buffer is only held while it has unsent bytes. Drained, one of
 * this size goes back to the server as its spare for the next connection
 * with something to say, so a busy loop does not call malloc() per batch. */
#define OUT_BUF_INITIAL (16U * 1024U)
/* Input and output buffered for all connections of one peer uid, and for
 * all connections together. Above either bound the connection holding the
 * most is closed: a client that pipelines without reading (up to
 * OUT_BUF_HIGH and IN_BUF_SIZE each, ~550 KiB) cannot make the daemon hold
 * hundreds of MiB over max_connections, and another uid is still served.
 * A well-behaved client holds a few KiB at most. */
#define UID_BUFFER_MAX    (32U * 1024U * 1024U)
#define SERVER_BUFFER_MAX (64U * 1024U * 1024U)
/* At most one log line per this interval for refused or shed connections;
 * the rest are counted into the next line. */
#define REFUSED_LOG_INTERVAL (5 * USEC_PER_SEC)
/* Accepts per wakeup, so a connect storm cannot starve connected clients.
 * The listening socket has the connections' priority and takes its turn
 * among them: at a lower one it would wait until no connection has input,
 * and clients that keep the daemon busy would lock every newcomer out. */
#define ACCEPT_BURST 64
/* Out of file descriptors: stop accepting for a moment instead of spinning on
 * a listening socket that stays readable. */
#define ACCEPT_RETRY_USEC (100 * USEC_PER_MSEC)

static const char too_many_connections[] =
    "ERR unavailable too many connections (try again later)\n";
static const char evicted_message[] =
    "ERR unavailable too many connections; this one closed for another user's (try again "
    "later)\n";

/* What one peer uid holds: its connections and their buffers. */
typedef struct UidUsage {
	uid_t uid;
	unsigned n_conns;
	size_t bytes;
	struct UidUsage *next;
} UidUsage;

/* A log line at most every REFUSED_LOG_INTERVAL; what happens meanwhile is
 * counted and summed up by a timer when the interval is over. */
typedef struct LogLimit {
	usec_t logged_at;
	unsigned suppressed;
	sd_event_source *timer;
	/* The summary line: "<verb> N more connections in the last Ns<why>:
	 * <detail>". */
	const char *verb, *why;
	/* Appended to the summary: what the limit is and who holds the most. */
	char detail[160];
} LogLimit;

struct Conn {
	unsigned n_ref;
	Server *server; /* NULL once closed */
	int fd;
	sd_event_source *io;
	sd_event_source *resume; /* runs the connection again after a deferred reply */
	uint32_t events;         /* what io waits for; 0 while it is disabled */
	Peer peer;
	UidUsage *usage; /* the peer uid's, shared with its other connections */
	Conn *prev, *next;

	/* Input: bytes [in_start, in_end) of in (in_alloc bytes, or NULL) are
	 * unprocessed; the first in_dirty bytes may hold request bytes and are
	 * wiped before in is freed. */
	char *in;
	size_t in_start, in_end, in_alloc, in_dirty;

	/* Output: bytes [out_start, out_end) of out are unsent. */
	char *out;
	size_t out_start, out_end, out_alloc;

	size_t bytes; /* in_alloc + out_alloc, as counted in usage and the server */

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
	/* admin_group's gid, looked up at start and reload only: never from
	 * the event loop per client (NSS may be LDAP). */
	bool admin_gid_valid;
	gid_t admin_gid;

	Conn *conns;
	unsigned n_conns;
	UidUsage *usages;
	size_t bytes; /* all connections' buffers */

	LogLimit refused; /* connections refused at max_connections */
	LogLimit shed;    /* connections closed for the buffer bounds */
	LogLimit evicted; /* connections closed for another uid's at max_connections */

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
	uint64_t n_line_too_long, n_refused; /* n_errors by code */
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

/* 1 when the peer of fd had gid among its supplementary groups when it
 * connected (SO_PEERGROUPS: the kernel's record, no user database), 0 when
 * not, or a negative errno. */
static int peer_has_group(int fd, gid_t gid)
{
	gid_t small[64];
	_cleanup_free_ gid_t *big = NULL;
	gid_t *groups = small;
	socklen_t len = sizeof(small);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		/* len now says how much the list needs. */
		if (errno != ERANGE || len <= sizeof(small))
			return -errno;
		big = malloc(len);
		if (!big)
			return -ENOMEM;
		groups = big;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			return -errno;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/* uid 0, or admin_group as the peer's gid or one of its supplementary
 * groups, all as they were when it connected: the rights of the process,
 * like a file's permissions, not what the user database says now. Any
 * failure means "not admin": fail closed. */
static bool conn_is_admin(const Conn *c)
{
	const Server *s = c->server;

	if (c->peer.uid == 0)
		return true;
	/* No such group: only root is admin. */
	if (!s->admin_gid_valid)
		return false;
	/* The effective gid (sg, newgrp, a setgid helper) carries the group's
	 * rights as much as a supplementary group does. */
	if (c->peer.gid == s->admin_gid)
		return true;
	return peer_has_group(c->fd, s->admin_gid) > 0;
}

/* Whether the line's verb is one that needs admin rights (ROTATE, IMPORT,
 * CHECK), spelled as proto_parse_line() takes verbs: exactly, up to a
 * space. */
static bool line_needs_admin(const char *line, size_t len)
{
	if (len >= 5 && (len == 5 || line[5] == ' ') && memcmp(line, "CHECK", 5) == 0)
		return true;
	if (len < 6 || (len > 6 && line[6] != ' '))
		return false;
	return memcmp(line, "ROTATE", 6) == 0 || memcmp(line, "IMPORT", 6) == 0;
}

/* --- rate-limited log lines ---------------------------------------------- */

static int on_log_limit(sd_event_source *es, usec_t usec, void *userdata)
{
	LogLimit *l = userdata;

	if (l->suppressed > 0)
		log_warning("%s %u more connections in the last %us%s: %s", l->verb, l->suppressed,
		            (unsigned)(REFUSED_LOG_INTERVAL / USEC_PER_SEC), l->why, l->detail);
	l->suppressed = 0;
	l->logged_at = usec;
	return 0;
}

/* True when a line may be logged now; else counts it for the summary the
 * timer logs at the end of the interval. */
static bool log_limit_pass(Server *s, LogLimit *l)
{
	usec_t now = server_now(s), when;
	int r;

	if (l->logged_at == 0 || now >= l->logged_at + REFUSED_LOG_INTERVAL) {
		l->logged_at = now;
		return true;
	}
	if (l->suppressed++ > 0)
		return false;
	when = l->logged_at + REFUSED_LOG_INTERVAL;
	if (!l->timer)
		r = sd_event_add_time(s->event, &l->timer, CLOCK_MONOTONIC, when, 0, on_log_limit,
		                      l);
	else {
		r = sd_event_source_set_time(l->timer, when);
		if (r >= 0)
			r = sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
	}
	if (r < 0)
		/* Without the timer: log this one now rather than lose it. */
		l->suppressed--;
	return r < 0;
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

/* Counts a change of the connection's buffers into its uid's and the
 * server's totals. Call after every change of in_alloc or out_alloc. */
static void conn_account(Conn *c)
{
	size_t bytes = c->in_alloc + c->out_alloc;

	if (!c->server)
		return;
	c->server->bytes = c->server->bytes - c->bytes + bytes;
	c->usage->bytes = c->usage->bytes - c->bytes + bytes;
	c->bytes = bytes;
}

/* Wipes the input buffer (it may hold an IMPORT line) and frees it. */
static void conn_in_free(Conn *c)
{
	if (c->in) {
		sodium_memzero(c->in, c->in_dirty);
		free(c->in);
	}
	c->in = NULL;
	c->in_start = c->in_end = c->in_alloc = c->in_dirty = 0;
	conn_account(c);
}

/* Moves the unprocessed input to a new buffer of size bytes, at its start;
 * the old one is wiped and freed. */
static int conn_in_resize(Conn *c, size_t size)
{
	size_t len = c->in_end - c->in_start;
	char *p;

	assert(size >= len && size > 0);
	p = malloc(size);
	if (!p)
		return -ENOMEM;
	if (len > 0)
		memcpy(p, c->in + c->in_start, len);
	conn_in_free(c);
	c->in = p;
	c->in_end = c->in_dirty = len;
	c->in_alloc = size;
	conn_account(c);
	return 0;
}

static UidUsage *server_find_usage(const Server *s, uid_t uid)
{
	for (UidUsage *u = s->usages; u; u = u->next)
		if (u->uid == uid)
			return u;
	return NULL;
}

static void server_put_usage(Server *s, UidUsage *u)
{
	assert(u->n_conns > 0);
	if (--u->n_conns > 0)
		return;
	assert(u->bytes == 0);
	for (UidUsage **p = &s->usages; *p; p = &(*p)->next)
		if (*p == u) {
			*p = u->next;
			break;
		}
	free(u);
}

static void conn_close(Conn *c)
{
	Server *s = c->server;

	if (!s)
		return;

	conn_in_free(c);
	free(c->out);
	c->out = NULL;
	c->out_start = c->out_end = c->out_alloc = 0;
	conn_account(c);
	server_put_usage(s, c->usage);
	c->usage = NULL;

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
		conn_account(c);
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
	conn_account(c);
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
	conn_account(c);
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

/* Called whenever the connection stops being processed: a drained input
 * buffer goes, what is left (an incomplete line, or lines held back by
 * backpressure) moves to a buffer of just its size. A deferred connection
 * keeps its buffer as it is: the handler may still point into the line. */
static int conn_in_detach(Conn *c)
{
	size_t len = c->in_end - c->in_start;

	if (!c->in || c->deferred)
		return 0;
	if (len == 0) {
		conn_in_free(c);
		return 0;
	}
	if (len == c->in_alloc)
		return 0;
	return conn_in_resize(c, len);
}

static int conn_read(Conn *c)
{
	ssize_t n;
	int r;

	if (c->in_alloc < IN_BUF_SIZE) {
		r = conn_in_resize(c, IN_BUF_SIZE);
		if (r < 0)
			return r;
	}
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
	if (c->in_end > c->in_dirty)
		c->in_dirty = c->in_end;
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
				s->n_line_too_long++;
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
		/* Asked only when needed: the handler reads peer.admin for
		 * ROTATE and IMPORT alone. */
		c->peer.admin = line_needs_admin(line, len) && conn_is_admin(c);
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

/* The connection of u's uid (or of any uid, for u NULL) holding the most;
 * of those the longest idle. */
static Conn *server_worst_conn(Server *s, const UidUsage *u)
{
	Conn *worst = NULL;

	for (Conn *c = s->conns; c; c = c->next) {
		if (u && c->usage != u)
			continue;
		if (!worst || c->bytes > worst->bytes ||
		    (c->bytes == worst->bytes && c->last_activity < worst->last_activity))
			worst = c;
	}
	return worst;
}

/* Closes the connections holding the most while uid's or all connections'
 * buffers are above their bounds. The client closed this way stopped
 * reading its answers long ago (or holds many connections that did): it
 * gets no answer, the log says why. */
static void server_shed(Server *s, uid_t uid)
{
	for (;;) {
		UidUsage *u = server_find_usage(s, uid);
		const char *what;
		Conn *worst;

		if (u && u->bytes > UID_BUFFER_MAX) {
			worst = server_worst_conn(s, u);
			what = "per-uid";
		} else if (s->bytes > SERVER_BUFFER_MAX) {
			worst = server_worst_conn(s, NULL);
			what = "total";
		} else
			return;
		assert(worst);

		u = worst->usage;
		(void)snprintf(s->shed.detail, sizeof(s->shed.detail),
		               "last: uid %u, %u connections holding %zu KiB", (unsigned)u->uid,
		               u->n_conns, u->bytes / 1024);
		if (log_limit_pass(s, &s->shed))
			log_warning(
			    "Closed a connection of uid %u (pid %d) holding %zu KiB of unread "
			    "answers and requests: the %s bound on buffered bytes (%u MiB per "
			    "uid, %u MiB in total) is reached; uid %u has %u connections holding "
			    "%zu KiB (a client pipelines requests without reading the answers)",
			    (unsigned)worst->peer.uid, (int)worst->peer.pid, worst->bytes / 1024,
			    what, UID_BUFFER_MAX >> 20, SERVER_BUFFER_MAX >> 20, (unsigned)u->uid,
			    u->n_conns, u->bytes / 1024);
		conn_close(worst);
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
	/* Last: this may close c. */
	if (c->usage->bytes > UID_BUFFER_MAX || c->server->bytes > SERVER_BUFFER_MAX)
		server_shed(c->server, c->peer.uid);
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

/* The uid with the most connections. */
static UidUsage *server_top_usage(const Server *s)
{
	UidUsage *top = NULL;

	for (UidUsage *u = s->usages; u; u = u->next)
		if (!top || u->n_conns > top->n_conns)
			top = u;
	return top;
}

/* At max_connections, a newcomer whose uid holds at least two connections
 * fewer than the uid holding the most gets one of that uid's: one client
 * opening every slot cannot lock the others out, and the shares converge
 * without ping-pong. Returns whether a slot came free. */
static bool server_make_room(Server *s, const struct ucred *cred)
{
	UidUsage *top = server_top_usage(s), *mine = server_find_usage(s, cred->uid);
	Conn *victim;

	if (!top || top == mine || top->n_conns < (mine ? mine->n_conns : 0) + 2)
		return false;
	victim = server_worst_conn(s, top);
	assert(victim);

	(void)snprintf(s->evicted.detail, sizeof(s->evicted.detail),
	               "last: uid %u held %u of max_connections=%u", (unsigned)top->uid,
	               top->n_conns, s->max_connections);
	if (log_limit_pass(s, &s->evicted))
		log_warning("Closed a connection of uid %u (pid %d) for one of uid %u: "
		            "max_connections=%u reached, uid %u holds %u of them (raise "
		            "max_connections in securelinkd.conf, or stop the client holding them)",
		            (unsigned)victim->peer.uid, (int)victim->peer.pid, (unsigned)cred->uid,
		            s->max_connections, (unsigned)top->uid, top->n_conns);
	/* Between answers the client can be told why; in the middle of
	 * them it could not tell this line from an answer. */
	if (conn_out_len(victim) == 0 && !victim->deferred)
		(void)send(victim->fd, evicted_message, sizeof(evicted_message) - 1,
		           MSG_NOSIGNAL | MSG_DONTWAIT);
	conn_close(victim);
	return true;
}

static void server_refuse(Server *s, int fd, const struct ucred *cred)
{
	UidUsage *top = server_top_usage(s);

	s->n_errors++;
	s->n_refused++;
	/* Best effort: a fresh socket's buffer is empty, so this short line
	 * fits unless the client is already gone. */
	(void)send(fd, too_many_connections, sizeof(too_many_connections) - 1,
	           MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)snprintf(s->refused.detail, sizeof(s->refused.detail),
	               "max_connections=%u reached; uid %u holds %u of them", s->max_connections,
	               top ? (unsigned)top->uid : 0, top ? top->n_conns : 0);
	if (log_limit_pass(s, &s->refused))
		log_warning(
		    "Refused a connection from uid %u (pid %d): %s (raise max_connections in "
		    "securelinkd.conf, or stop the client holding them)",
		    (unsigned)cred->uid, (int)cred->pid, s->refused.detail);
}

static void server_add_conn(Server *s, int fd_in)
{
	_cleanup_close_ int fd = fd_in;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	UidUsage *usage;
	Conn *c;

	/* Without credentials nothing can be authorised: refuse. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
		return;

	if (s->n_conns >= s->max_connections && !server_make_room(s, &cred)) {
		server_refuse(s, fd, &cred);
		return;
	}

	usage = server_find_usage(s, cred.uid);
	if (!usage) {
		usage = calloc(1, sizeof(UidUsage));
		if (!usage)
			return;
		usage->uid = cred.uid;
		usage->next = s->usages;
		s->usages = usage;
	}
	/* Counted at once: server_put_usage() frees it on failure below. */
	usage->n_conns++;

	c = calloc(1, sizeof(Conn));
	if (!c) {
		server_put_usage(s, usage);
		return;
	}
	c->n_ref = 1;
	c->fd = -1;
	c->usage = usage;
	/* admin is looked up when a line needs it (ROTATE, IMPORT). */
	c->peer = (Peer){
		.pid = cred.pid,
		.uid = cred.uid,
		.gid = cred.gid,
	};

	if (sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_conn_io, c) < 0) {
		server_put_usage(s, usage);
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
	gid_t gid = (gid_t)-1;
	int r = -ENOENT;

	/* The one user database lookup: here, at start and reload, not per
	 * client. A group created later counts from the next reload. */
	if (c->admin_group && *c->admin_group) {
		r = lookup_group(c->admin_group, &gid);
		if (r == -ENOMEM)
			return r;
		if (r == -ENOENT)
			log_notice("admin_group \"%s\" does not exist: only root may ROTATE and "
			           "IMPORT (create the group, then reload securelinkd), ignoring.",
			           c->admin_group);
		else if (r < 0)
			log_warning_errno(r,
			                  "Cannot look up admin_group \"%s\": %m; only root may "
			                  "ROTATE and IMPORT until the next reload, ignoring.",
			                  c->admin_group);
	}
	s->admin_gid_valid = r >= 0;
	s->admin_gid = gid;
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
	s->refused.verb = "Refused";
	s->refused.why = "";
	s->shed.verb = "Closed";
	s->shed.why = " to keep other clients served";
	s->evicted.verb = "Closed";
	s->evicted.why = " to make room for other uids";

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

	assert(!s->usages);
	s->refused.timer = sd_event_source_disable_unref(s->refused.timer);
	s->shed.timer = sd_event_source_disable_unref(s->shed.timer);
	s->evicted.timer = sd_event_source_disable_unref(s->evicted.timer);
	free(s->spare_out);
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

uint64_t server_errors_code(const Server *s, ProtoError code)
{
	return code == PROTO_LINE_TOO_LONG ? s->n_line_too_long
	       : code == PROTO_UNAVAILABLE ? s->n_refused
	                                   : 0;
}

size_t server_connection_buffer_bytes(const Server *s)
{
	return s->bytes;
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

int conn_reply_fd(Conn *c, const char *line, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control = {};
	size_t len = strlen(line);
	struct iovec iov[2] = {
		{ .iov_base = (void *)line, .iov_len = len },
		{ .iov_base = (void *)"\n", .iov_len = 1 },
	};
	struct msghdr mh = {
		.msg_iov = iov,
		.msg_iovlen = 2,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	ssize_t n;
	char *p;

	assert(c);
	assert(fd >= 0);
	if (!c->server || c->broken)
		return -ENOTCONN;
	if (c->out_end > c->out_start)
		return -EBUSY;
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	c->last_activity = server_now(c->server);
	if ((size_t)n == len + 1)
		return 0;
	/* The descriptor went with the first bytes; the rest waits as any
	 * answer does. */
	p = conn_out_reserve(c, len + 1 - (size_t)n);
	if (!p)
		return -ENOMEM;
	if ((size_t)n < len)
		memcpy(p, line + n, len - (size_t)n);
	p[len - (size_t)n] = '\n';
	c->out_end += len + 1 - (size_t)n;
	conn_appended(c);
	return 0;
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
