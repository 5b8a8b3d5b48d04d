/* SPDX-License-Identifier: MIT */
/* Pipelined signing: sl_client_sign_stream() and sl_client_sign_many() keep
 * up to WINDOW requests in flight on the connection and hand out the answers
 * in input order. */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "securelink-client.h"
#include "util.h"

/* Pipelining: at most this many requests in flight, and this much request
 * text queued before it is written. Both bound our memory only: the kernel's
 * socket buffers and the daemon's bounded output buffer bound the rest, and
 * since answers are read while requests are written, neither side waits on
 * the other. */
#define WINDOW    4096U
#define OUT_BATCH (256U * 1024U)

static inline void *mfree(void *p)
{
	free(p);
	return NULL;
}

/* One target in flight, or failed here: local is SL_ERROR_NONE for a
 * request sent to the daemon. A probe is our own PING, not a target. */
typedef struct Pending {
	SlError local;
	const char *message;
	bool probe;
} Pending;

typedef struct Stream {
	Pending ring[WINDOW + 1]; /* + 1: room for a probe */
	size_t head, n, n_remote;
	size_t next_index;
	int n_failed;

	/* The connection's first answer, when it is an ERR, is held until the
	 * daemon says more: securelinkd refusing a connection (max_connections)
	 * sends one ERR and hangs up before reading any request. Then the ERR
	 * belongs to no target, and the stream fails with it. */
	bool holding;
	SlError held_error;
	char *held_message;
} Stream;

static Stream *stream_free(Stream *s)
{
	if (s)
		free(s->held_message);
	free(s);
	return NULL;
}

static inline void stream_freep(Stream **s)
{
	*s = stream_free(*s);
}

static void stream_push(Stream *s, SlError local, const char *message, bool probe)
{
	assert(s->n < ELEMENTSOF(s->ring));
	s->ring[(s->head + s->n) % ELEMENTSOF(s->ring)] =
	    (Pending){ .local = local, .message = message, .probe = probe };
	s->n++;
	if (local == SL_ERROR_NONE)
		s->n_remote++;
}

static void stream_pop(Stream *s, SlSignResult on_result, void *userdata, const char *url,
                       SlError error, const char *message)
{
	bool probe;

	assert(s->n > 0);
	probe = s->ring[s->head].probe;
	s->head = (s->head + 1) % ELEMENTSOF(s->ring);
	s->n--;
	if (probe)
		return;
	if (error != SL_ERROR_NONE)
		s->n_failed++;
	on_result(userdata, s->next_index++, url, error, message);
}

/* Items that failed here are answered as soon as everything before them
 * has been: results stay in input order. */
static bool stream_deliver_local(Stream *s, SlSignResult on_result, void *userdata)
{
	bool any = false;

	while (s->n > 0 && s->ring[s->head].local != SL_ERROR_NONE) {
		Pending p = s->ring[s->head];

		stream_pop(s, on_result, userdata, NULL, p.local, p.message);
		any = true;
	}
	return any;
}

static int stream_queue(SlClient *c, Stream *s, const char *target, const char *suffix,
                        size_t suffix_len)
{
	size_t l = target ? strlen(target) : 0;
	int r;

	if (!slc_token_is_sendable(target)) {
		stream_push(s, SL_ERROR_BAD_TARGET,
		            l == 0 ? "empty target (give a URL path or an http(s) URL)"
		                   : "target contains a space or a control character "
		                     "(percent-encode it)",
		            false);
		return 0;
	}
	/* The daemon closes the connection after line-too-long; refusing such
	 * a line here keeps the rest of the batch going. */
	if (STRLEN("SIGN ") + l + suffix_len + 1 > SL_CLIENT_LINE_MAX) {
		stream_push(s, SL_ERROR_LINE_TOO_LONG,
		            "target too long for one request line (at most 8192 bytes)", false);
		return 0;
	}
	r = slc_out_append(c, "SIGN ", STRLEN("SIGN "));
	if (r >= 0)
		r = slc_out_append(c, target, l);
	if (r >= 0)
		r = slc_out_append(c, suffix, suffix_len);
	if (r >= 0)
		r = slc_out_append(c, "\n", 1);
	if (r < 0)
		return r;
	stream_push(s, SL_ERROR_NONE, NULL, false);
	return 0;
}

/* A PING after a held ERR that is the only request in flight: its answer
 * says the connection is alive and the ERR was an answer; an end of file
 * instead says the daemon refused the connection. */
static int stream_queue_probe(SlClient *c, Stream *s)
{
	int r = slc_out_append(c, "PING\n", STRLEN("PING\n"));

	if (r < 0)
		return r;
	stream_push(s, SL_ERROR_NONE, NULL, true);
	return 0;
}

/* Ends the stream on a transport error. With an ERR held, the daemon said
 * why before it hung up: that is the error, -EREMOTEIO. */
static int stream_fail(SlClient *c, Stream *s, int r)
{
	int q;

	if (s->holding && (r == -ECONNRESET || r == -EPIPE)) {
		q = slc_set_last_error(c, s->held_error, s->held_message);
		(void)slc_break(c, r);
		return q < 0 ? q : -EREMOTEIO;
	}
	return slc_break(c, r);
}

_public_ int sl_client_sign_stream(SlClient *c, const SlSignOptions *opt, SlTargetSource next,
                                   int source_fd, SlSignResult on_result, void *userdata)
{
	_cleanup_(stream_freep) Stream *s = NULL;
	char suffix[128];
	size_t suffix_len;
	bool eof = false, waiting = false;
	int r;

	assert(c);
	assert(next);
	assert(on_result);

	if (c->broken)
		return c->broken;
	r = slc_sign_suffix(opt, suffix, sizeof(suffix), &suffix_len);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;

/* Room for one more target; none once the daemon stopped reading. */
#define CAN_QUEUE()                                                                                \
	(!eof && !waiting && !c->write_error && s->n < WINDOW && slc_out_pending(c) < OUT_BATCH)

	for (;;) {
		bool delivered = false;
		int progress = 0;
		short events = 0;

		/* Queue targets while there is room. */
		while (CAN_QUEUE()) {
			const char *t = NULL;

			r = next(userdata, &t);
			if (r == -EAGAIN) {
				if (source_fd < 0)
					return slc_break(c, -EINVAL);
				waiting = true;
			} else if (r < 0)
				return slc_break(c, r);
			else if (r == 0)
				eof = true;
			else {
				r = stream_queue(c, s, t, suffix, suffix_len);
				if (r < 0)
					return slc_break(c, r);
			}
		}

		/* Hand out every answer already read. */
		for (;;) {
			char *answer;
			const char *text;
			SlError e;

			if (stream_deliver_local(s, on_result, userdata))
				delivered = true;
			r = slc_in_next_line(c, &answer);
			if (r < 0)
				return stream_fail(c, s, r);
			if (r == 0)
				break;
			if (s->n_remote <= (size_t)s->holding)
				return stream_fail(c, s, -EBADMSG);
			r = slc_answer_parse(answer, &e, &text);
			if (r < 0)
				return stream_fail(c, s, r);
			if (c->n_answers++ == 0 && e != SL_ERROR_NONE) {
				s->held_message = strdup(text);
				if (!s->held_message)
					return slc_break(c, -ENOMEM);
				s->held_error = e;
				s->holding = true;
				if (s->n_remote == 1) {
					r = stream_queue_probe(c, s);
					if (r < 0)
						return slc_break(c, r);
				}
				continue;
			}
			if (s->holding) {
				/* More came: the held ERR was the first target's
				 * answer. */
				s->holding = false;
				s->n_remote--;
				stream_pop(s, on_result, userdata, NULL, s->held_error,
				           s->held_message);
				s->held_message = mfree(s->held_message);
				(void)stream_deliver_local(s, on_result, userdata);
			}
			s->n_remote--;
			stream_pop(s, on_result, userdata, e == SL_ERROR_NONE ? text : NULL, e,
			           e == SL_ERROR_NONE ? NULL : text);
			delivered = true;
		}
		if (eof && s->n == 0)
			break;
		/* The daemon stopped reading and answered all it read: the rest
		 * cannot be sent. */
		if (c->write_error && s->n_remote == 0)
			return stream_fail(c, s, c->write_error);
		/* Results were handed out: ask the source again, so a caller
		 * that flushes its output when it has no input ready gets the
		 * chance to do so. */
		if (delivered)
			waiting = false;

		r = slc_out_flush(c);
		if (r < 0)
			return stream_fail(c, s, r);
		progress |= r;
		if (s->n_remote > 0) {
			r = slc_in_fill(c);
			if (r < 0)
				return stream_fail(c, s, r);
			progress |= r;
		}
		if (progress || CAN_QUEUE())
			continue;

		if (s->n_remote > 0)
			events |= POLLIN;
		if (slc_out_pending(c) > 0)
			events |= POLLOUT;
		r = slc_wait(c, events, waiting && s->n < WINDOW ? source_fd : -1);
		if (r < 0)
			return stream_fail(c, s, r);
		if (r & 2)
			waiting = false;
	}
#undef CAN_QUEUE

	return s->n_failed;
}

typedef struct ManyState {
	const char *const *targets;
	size_t n, i;
	char **urls;
	SlError *errors;
	char **messages;
	bool oom;
} ManyState;

static int many_next(void *userdata, const char **ret_target)
{
	ManyState *m = userdata;

	if (m->i >= m->n)
		return 0;
	*ret_target = m->targets[m->i++];
	return 1;
}

static void many_result(void *userdata, size_t index, const char *url, SlError error,
                        const char *message)
{
	ManyState *m = userdata;

	assert(index < m->n);
	if (m->errors)
		m->errors[index] = error;
	if (url) {
		m->urls[index] = strdup(url);
		if (!m->urls[index])
			m->oom = true;
	} else if (m->messages) {
		m->messages[index] = strdup(message ? message : "");
		if (!m->messages[index])
			m->oom = true;
	}
}

static void many_clear(ManyState *m)
{
	for (size_t i = 0; i < m->n; i++) {
		m->urls[i] = mfree(m->urls[i]);
		if (m->messages)
			m->messages[i] = mfree(m->messages[i]);
		if (m->errors)
			m->errors[i] = SL_ERROR_NONE;
	}
}

_public_ int sl_client_sign_many(SlClient *c, const char *const *targets, size_t n,
                                 const SlSignOptions *opt, char **ret_urls, SlError *ret_errors,
                                 char **ret_messages)
{
	ManyState m = {
		.targets = targets,
		.n = n,
		.urls = ret_urls,
		.errors = ret_errors,
		.messages = ret_messages,
	};
	int r;

	assert(c);
	assert(targets || n == 0);
	assert(ret_urls || n == 0);

	for (size_t i = 0; i < n; i++) {
		ret_urls[i] = NULL;
		if (ret_messages)
			ret_messages[i] = NULL;
		if (ret_errors)
			ret_errors[i] = SL_ERROR_NONE;
	}

	r = sl_client_sign_stream(c, opt, many_next, -1, many_result, &m);
	if (r >= 0 && m.oom)
		r = -ENOMEM;
	if (r < 0)
		many_clear(&m);
	return r;
}
