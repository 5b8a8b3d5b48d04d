/* SPDX-License-Identifier: MIT */
/* libsecurelink-client: the connection and its buffered transport, single
 * requests (sl_client_request(), sl_client_sign() and its blocking fast
 * path) and grants. Pipelined signing is client-stream.c, the link cache
 * client-cache.c; what they share is client-internal.h. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "securelink-client.h"
#include "util.h"

/* Answers are one line each; STATUS's JSON is the longest. Anything beyond
 * this is not securelinkd talking. */
#define ANSWER_MAX (64U * 1024U)
#define READ_CHUNK (64U * 1024U)

static const char *const error_table[_SL_ERROR_MAX] = {
	[SL_ERROR_NONE] = "ok",
	[SL_ERROR_BAD_REQUEST] = "bad-request",
	[SL_ERROR_UNKNOWN_VERB] = "unknown-verb",
	[SL_ERROR_LINE_TOO_LONG] = "line-too-long",
	[SL_ERROR_BAD_TARGET] = "bad-target",
	[SL_ERROR_BAD_TTL] = "bad-ttl",
	[SL_ERROR_TTL_TOO_LONG] = "ttl-too-long",
	[SL_ERROR_BAD_IP] = "bad-ip",
	[SL_ERROR_FORBIDDEN] = "forbidden",
	[SL_ERROR_UNAVAILABLE] = "unavailable",
	[SL_ERROR_INTERNAL] = "internal",
	[SL_ERROR_UNKNOWN] = "unknown",
};

_public_ const char *sl_error_to_string(SlError e)
{
	if ((unsigned)e >= _SL_ERROR_MAX)
		return NULL;
	return error_table[e];
}

_public_ SlError sl_error_from_string(const char *s)
{
	/* "ok" and "unknown" are our names, not codes the daemon sends. */
	for (unsigned i = SL_ERROR_NONE + 1; i < SL_ERROR_UNKNOWN; i++)
		if (s && streq(s, error_table[i]))
			return (SlError)i;
	return SL_ERROR_UNKNOWN;
}

_public_ const char *sl_client_socket_path(const char *path)
{
	const char *e;

	if (path)
		return path;
	e = getenv("SECURELINK_SOCKET");
	if (e && *e)
		return e;
	return SL_CLIENT_DEFAULT_SOCKET;
}

_public_ int sl_client_connect(const char *path, SlClient **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	SlClient *c;
	size_t l;

	assert(ret);

	path = sl_client_socket_path(path);
	l = strlen(path);
	if (l == 0)
		return -EINVAL;
	if (l >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, l);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Connect blocking: on a Unix socket a non-blocking connect fails with
	 * EAGAIN when the listen backlog is full instead of waiting a moment. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	/* The socket stays blocking: the streams try every send() and recv()
	 * with MSG_DONTWAIT and wait in poll(), while a single SIGN blocks in
	 * send() and recv() (sign_fast()), bounded by SO_SNDTIMEO and
	 * SO_RCVTIMEO, which sl_client_set_timeout() keeps equal to the
	 * client's timeout. */
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = TAKE_FD(fd);
	c->fast_timeouts = true; /* none yet, on either side */
	*ret = c;
	return 0;
}

static void out_wipe(SlClient *c)
{
	/* IMPORT passes a legacy secret through this buffer: no request text
	 * stays in memory once written. */
	if (c->out)
		explicit_bzero(c->out, c->out_size);
	c->out_start = c->out_len = 0;
}

_public_ SlClient *sl_client_free(SlClient *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	out_wipe(c);
	free(c->out);
	free(c->in);
	free(c->last_message);
	slc_cache_free(c);
	free(c);
	return NULL;
}

_public_ void sl_client_set_timeout(SlClient *c, uint64_t usec)
{
	struct timeval tv = {
		.tv_sec = (time_t)(usec / 1000000),
		.tv_usec = (suseconds_t)(usec % 1000000),
	};

	assert(c);
	c->timeout = usec;
	/* For sign_fast()'s blocking send() and recv(); 0 waits forever, as
	 * slc_wait() does. Should the socket refuse them, SIGN takes the
	 * stream, which times out in poll(). */
	c->fast_timeouts = c->fd >= 0 &&
	                   setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) >= 0 &&
	                   setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) >= 0;
}

_public_ SlError sl_client_last_error(const SlClient *c)
{
	assert(c);
	return c->last_error;
}

_public_ const char *sl_client_last_message(const SlClient *c)
{
	assert(c);
	return c->last_message ? c->last_message : "";
}

int slc_set_last_error(SlClient *c, SlError e, const char *message)
{
	char *m = NULL;

	if (message) {
		m = strdup(message);
		if (!m)
			return -ENOMEM;
	}
	free(c->last_message);
	c->last_message = m;
	c->last_error = e;
	return 0;
}

/* Marks the connection unusable: after a transport error the answers that
 * may still arrive could not be matched to their requests. */
int slc_break(SlClient *c, int r)
{
	assert(r < 0);
	if (c->broken == 0)
		c->broken = r;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	out_wipe(c);
	c->in_start = c->in_len = 0;
	return c->broken;
}

int slc_out_append(SlClient *c, const char *a, size_t n)
{
	size_t pending = c->out_len - c->out_start;

	if (c->out_len + n > c->out_size) {
		/* Move what is pending to the front first; grow only when the
		 * pending text itself does not fit. The old buffer is wiped
		 * before it is freed: it may hold a secret. */
		if (c->out_start > 0) {
			memmove(c->out, c->out + c->out_start, pending);
			explicit_bzero(c->out + pending, c->out_len - pending);
			c->out_start = 0;
			c->out_len = pending;
		}
		if (pending + n > c->out_size) {
			size_t size = c->out_size ? c->out_size : 4096;
			char *p;

			while (size < pending + n)
				size *= 2;
			p = malloc(size);
			if (!p)
				return -ENOMEM;
			if (c->out) {
				memcpy(p, c->out, pending);
				explicit_bzero(c->out, c->out_size);
				free(c->out);
			}
			c->out = p;
			c->out_size = size;
		}
	}
	memcpy(c->out + c->out_len, a, n);
	c->out_len += n;
	return 0;
}

size_t slc_out_pending(const SlClient *c)
{
	return c->out_len - c->out_start;
}

/* Writes what the socket takes without blocking. Returns 1 when something
 * was written, 0 when nothing could be, or a negative errno. A daemon that
 * hung up is not an error here: the caller reads on, to the end, so that
 * its last words (ERR unavailable too many connections) are not lost. */
int slc_out_flush(SlClient *c)
{
	bool progress = false;

	if (c->write_error) {
		out_wipe(c);
		return 0;
	}
	while (slc_out_pending(c) > 0) {
		/* MSG_NOSIGNAL: a daemon that went away is an error to return,
		 * not a SIGPIPE to kill the application with. */
		ssize_t k = send(c->fd, c->out + c->out_start, slc_out_pending(c),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EPIPE || errno == ECONNRESET) {
				c->write_error = -errno;
				out_wipe(c);
				return 0;
			}
			return -errno;
		}
		c->out_start += (size_t)k;
		progress = true;
	}
	if (slc_out_pending(c) == 0)
		out_wipe(c);
	return progress;
}

/* Reads what is there without blocking (flags MSG_DONTWAIT), or waits for
 * it (flags 0; then SO_RCVTIMEO running out is -ETIMEDOUT). Returns 1 when
 * something was read, 0 when nothing was, -ECONNRESET at end of file, or a
 * negative errno. */
static int in_fill_flags(SlClient *c, int flags)
{
	ssize_t k;

	if (c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
		c->in_len -= c->in_start;
		c->in_start = 0;
	}
	if (c->in_size - c->in_len < READ_CHUNK) {
		size_t size = c->in_len + READ_CHUNK;
		char *p = realloc(c->in, size);

		if (!p)
			return -ENOMEM;
		c->in = p;
		c->in_size = size;
	}
	for (;;) {
		k = recv(c->fd, c->in + c->in_len, c->in_size - c->in_len, flags);
		if (k >= 0 || errno != EINTR)
			break;
	}
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return flags & MSG_DONTWAIT ? 0 : -ETIMEDOUT;
	if (k < 0)
		return -errno;
	if (k == 0)
		return -ECONNRESET;
	c->in_len += (size_t)k;
	return 1;
}

int slc_in_fill(SlClient *c)
{
	return in_fill_flags(c, MSG_DONTWAIT);
}

/* Takes the next complete answer line out of the input buffer, NUL-terminated
 * in place without LF (and a CR before it). Returns 1 and *ret_line, 0 when
 * no complete line is buffered, -EMSGSIZE for an overlong one. The line is
 * valid until the next slc_in_fill(). */
int slc_in_next_line(SlClient *c, char **ret_line)
{
	char *start = c->in + c->in_start, *lf;
	size_t avail = c->in_len - c->in_start;

	if (avail == 0)
		return 0;
	lf = memchr(start, '\n', avail);
	if (!lf)
		return avail >= ANSWER_MAX ? -EMSGSIZE : 0;
	if ((size_t)(lf - start) + 1 > ANSWER_MAX)
		return -EMSGSIZE;
	*lf = '\0';
	if (lf > start && lf[-1] == '\r')
		lf[-1] = '\0';
	c->in_start += (size_t)(lf - start) + 1;
	*ret_line = start;
	return 1;
}

/* Splits an answer line. "OK <text>": *ret_error = SL_ERROR_NONE and
 * *ret_text = text. "ERR <code> <message>": the code and *ret_text = message
 * ("" when absent). Anything else is -EBADMSG. */
int slc_answer_parse(char *line, SlError *ret_error, const char **ret_text)
{
	if (streq(line, "OK")) {
		*ret_error = SL_ERROR_NONE;
		*ret_text = "";
		return 0;
	}
	if (strncmp(line, "OK ", 3) == 0) {
		*ret_error = SL_ERROR_NONE;
		*ret_text = line + 3;
		return 0;
	}
	if (strncmp(line, "ERR ", 4) == 0) {
		char *code = line + 4, *sp = strchr(code, ' ');

		if (code[0] == '\0' || code[0] == ' ')
			return -EBADMSG;
		if (sp)
			*sp = '\0';
		*ret_error = sl_error_from_string(code);
		*ret_text = sp ? sp + 1 : "";
		return 0;
	}
	return -EBADMSG;
}

/* Waits until the socket (events) or extra_fd (POLLIN) is ready. Returns a
 * bit mask: 1 socket ready, 2 extra_fd ready; -ETIMEDOUT when the socket was
 * waited for and nothing happened for the client's timeout. */
int slc_wait(SlClient *c, short events, int extra_fd)
{
	struct pollfd p[2] = {
		{ .fd = events ? c->fd : -1, .events = events },
		{ .fd = extra_fd, .events = POLLIN },
	};
	int timeout = -1, r, mask = 0;

	/* Time out only on the daemon: a slow input is the caller's business. */
	if (events && c->timeout > 0)
		timeout =
		    c->timeout / 1000 > INT32_MAX ? INT32_MAX : (int)((c->timeout + 999) / 1000);
	for (;;) {
		r = poll(p, 2, timeout);
		if (r >= 0 || errno != EINTR)
			break;
	}
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (p[0].revents)
		mask |= 1;
	if (p[1].revents)
		mask |= 2;
	return mask;
}

/* A request token must not contain what ends a field or a line: a space
 * would add a field, an LF a whole request whose answer would then be
 * attributed to the next target. Raw UTF-8 (bytes >= 0x80) is fine. */
bool slc_token_is_sendable(const char *s)
{
	if (!s || !*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

_public_ int sl_client_request(SlClient *c, const char *line, char **ret_answer)
{
	size_t l;
	int r;

	assert(c);
	assert(line);

	if (c->broken)
		return c->broken;
	l = strlen(line);
	if (strpbrk(line, "\r\n"))
		return -EINVAL;
	if (l + 1 > SL_CLIENT_LINE_MAX)
		return -EMSGSIZE;
	r = slc_set_last_error(c, SL_ERROR_NONE, NULL);
	if (r < 0)
		return r;

	r = slc_out_append(c, line, l);
	if (r >= 0)
		r = slc_out_append(c, "\n", 1);
	if (r < 0) {
		out_wipe(c);
		return r;
	}

	for (;;) {
		char *answer;
		const char *text;
		SlError e;

		r = slc_in_next_line(c, &answer);
		if (r < 0)
			return slc_break(c, r);
		if (r > 0) {
			if (slc_out_pending(c) > 0)
				/* An answer before the whole request was sent:
				 * not a conversation we can follow. */
				return slc_break(c, -EBADMSG);
			r = slc_answer_parse(answer, &e, &text);
			if (r < 0)
				return slc_break(c, r);
			c->n_answers++;
			if (e != SL_ERROR_NONE) {
				r = slc_set_last_error(c, e, text);
				return r < 0 ? r : -EREMOTEIO;
			}
			if (ret_answer) {
				char *a = strdup(text);
				if (!a)
					return -ENOMEM;
				*ret_answer = a;
			}
			return 0;
		}

		r = slc_out_flush(c);
		if (r < 0)
			return slc_break(c, r);
		r = slc_in_fill(c);
		if (r < 0)
			return slc_break(c, r);
		if (r > 0)
			continue;
		r = slc_wait(c, POLLIN | (slc_out_pending(c) > 0 ? POLLOUT : 0), -1);
		if (r < 0)
			return slc_break(c, r);
	}
}

/* " ttl=60", " expires=1700000000", " ip=192.0.2.1": the part of every
 * SIGN line after the target. */
int slc_sign_suffix(const SlSignOptions *opt, char *buf, size_t size, size_t *ret_len)
{
	size_t n = 0;
	int k;

	buf[0] = '\0';
	if (!opt) {
		*ret_len = 0;
		return 0;
	}
	if (opt->has_ttl && opt->has_expires)
		return -EINVAL;
	if (opt->has_ttl)
		k = snprintf(buf, size, " ttl=%" PRId64, opt->ttl);
	else if (opt->has_expires)
		k = snprintf(buf, size, " expires=%" PRId64, opt->expires);
	else
		k = 0;
	if (k < 0 || (size_t)k >= size)
		return -EINVAL;
	n = (size_t)k;
	if (opt->ip) {
		if (!slc_token_is_sendable(opt->ip))
			return -EINVAL;
		k = snprintf(buf + n, size - n, " ip=%s", opt->ip);
		if (k < 0 || (size_t)k >= size - n)
			return -EINVAL;
		n += (size_t)k;
	}
	*ret_len = n;
	return 0;
}

/* One SIGN the way most applications ask, one link at a time: one blocking
 * send() and one recv() (more only for an answer that arrives in pieces),
 * where the stream would try both without blocking first and then poll().
 * Taken only on a connection that has answered before (its first answer
 * may be securelinkd refusing the connection, which the stream tells from
 * an answer) with nothing else in flight; a target the stream would refuse
 * here is left to it. Returns 1 with the result as sl_client_sign_many()
 * gives it for one target, 0 when the stream is to be taken, or a negative
 * errno, with the same transport errors as the stream. */
static int sign_fast(SlClient *c, const char *target, const char *suffix, size_t suffix_len,
                     char **ret_url, SlError *ret_error, char **ret_message)
{
	char line[SL_CLIENT_LINE_MAX];
	size_t l, n = 0;
	int r;

	if (c->broken || !c->fast_timeouts || c->n_answers == 0 || c->write_error ||
	    slc_out_pending(c) > 0 || c->in_len > c->in_start || !slc_token_is_sendable(target))
		return 0;
	l = strlen(target);
	if (STRLEN("SIGN ") + l + suffix_len + 1 > sizeof(line))
		return 0;
	memcpy(line, "SIGN ", STRLEN("SIGN "));
	n += STRLEN("SIGN ");
	memcpy(line + n, target, l);
	n += l;
	memcpy(line + n, suffix, suffix_len);
	n += suffix_len;
	line[n++] = '\n';

	for (size_t sent = 0; sent < n;) {
		ssize_t k = send(c->fd, line + sent, n - sent, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			/* The daemon hung up: what it said before is still
			 * read, as the stream does. */
			if (errno == EPIPE || errno == ECONNRESET) {
				c->write_error = -errno;
				break;
			}
			return slc_break(c, errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT
			                                                            : -errno);
		}
		sent += (size_t)k;
	}

	for (;;) {
		char *answer, *dup;
		const char *text;
		SlError e;

		r = slc_in_next_line(c, &answer);
		if (r < 0)
			return slc_break(c, r);
		if (r == 0) {
			r = in_fill_flags(c, 0);
			if (r < 0)
				return slc_break(c, r);
			continue;
		}
		r = slc_answer_parse(answer, &e, &text);
		if (r < 0)
			return slc_break(c, r);
		c->n_answers++;
		dup = strdup(text);
		if (!dup)
			return slc_break(c, -ENOMEM);
		/* A second whole answer to one request: out of step. */
		if (memchr(c->in + c->in_start, '\n', c->in_len - c->in_start)) {
			free(dup);
			return slc_break(c, -EBADMSG);
		}
		*ret_error = e;
		if (e == SL_ERROR_NONE)
			*ret_url = dup;
		else
			*ret_message = dup;
		return 1;
	}
}

_public_ int sl_client_sign(SlClient *c, const char *target, const SlSignOptions *opt,
                            char **ret_url)
{
	_cleanup_free_ char *message = NULL;
	char *url = NULL;
	SlError e = SL_ERROR_NONE;
	int r;

	SlCacheProbe probe;

	assert(c);
	assert(ret_url);

	r = slc_cache_lookup(c, target, opt, &probe, ret_url);
	if (r != 0)
		return r < 0 ? r : 0;

	{
		char suffix[128];
		size_t suffix_len;

		/* The stream's own checks, in its order. */
		if (c->broken)
			return c->broken;
		r = slc_sign_suffix(opt, suffix, sizeof(suffix), &suffix_len);
		if (r < 0)
			return r;
		r = sign_fast(c, target, suffix, suffix_len, &url, &e, &message);
	}
	if (r == 0)
		r = sl_client_sign_many(c, &target, 1, opt, &url, &e, &message);
	else if (r > 0)
		r = e != SL_ERROR_NONE;
	if (r < 0)
		return r;
	if (r > 0) {
		r = slc_set_last_error(c, e, message);
		return r < 0 ? r : -EREMOTEIO;
	}
	r = slc_set_last_error(c, SL_ERROR_NONE, NULL);
	if (r < 0) {
		free(url);
		return r;
	}
	slc_cache_store(c, &probe, url);
	*ret_url = url;
	return 0;
}

/* Refuses dir here, as the daemon would, with its code: for what cannot be
 * sent at all. Returns -EREMOTEIO (or -ENOMEM). */
static int grant_refuse(SlClient *c, SlError e, const char *message)
{
	int r = slc_set_last_error(c, e, message);

	return r < 0 ? r : -EREMOTEIO;
}

_public_ int sl_client_grant(SlClient *c, const char *dir, SlGrantForm form,
                             const SlSignOptions *opt, char **ret)
{
	static const char *const forms[_SL_GRANT_FORM_MAX] = {
		[SL_GRANT_PATH] = "path",
		[SL_GRANT_COOKIE] = "cookie",
	};
	_cleanup_free_ char *line = NULL;
	char suffix[128], *answer = NULL;
	size_t suffix_len;
	int r;

	assert(c);
	assert(ret);

	if (c->broken)
		return c->broken;
	if ((unsigned)form >= _SL_GRANT_FORM_MAX)
		return -EINVAL;
	r = slc_sign_suffix(opt, suffix, sizeof(suffix), &suffix_len);
	if (r < 0)
		return r;
	/* A space in dir would add a field (a second grant=, an ip=), an LF a
	 * whole request. A missing trailing "/" is sendable: the daemon says
	 * why it refuses it (bad-target), and so does no client guess. */
	if (!slc_token_is_sendable(dir))
		return grant_refuse(c, SL_ERROR_BAD_TARGET,
		                    !dir || !*dir
		                        ? "empty directory (give a URL path or an http(s) URL "
		                          "ending in /)"
		                        : "directory contains a space or a control character "
		                          "(percent-encode it)");
	if (asprintf(&line, "SIGN %s grant=%s%s", dir, forms[form], suffix) < 0)
		return -ENOMEM;
	/* The daemon closes the connection after line-too-long. */
	if (strlen(line) + 1 > SL_CLIENT_LINE_MAX)
		return grant_refuse(c, SL_ERROR_LINE_TOO_LONG,
		                    "directory too long for one request line (at most 8192 bytes)");

	r = sl_client_request(c, line, &answer);
	if (r < 0)
		return r;
	*ret = answer;
	return 0;
}
