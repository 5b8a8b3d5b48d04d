/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake-daemon.h"
#include "securelink-client.h"
#include "util.h"

/* The client library: signing (pipelined, one by one, with options, grants,
 * streamed), against the fake securelinkd of fake-daemon.c. */

/* ---- signing, pipelined ---- */

/* Like the daemon: answers in order, ERR for targets containing "bad". The
 * server socket's buffers are small and it writes each answer blocking
 * before reading on: a client that wrote all its requests before reading
 * any answer would deadlock with it. */
static void answer_sign(Fake *f, int fd, const char *line)
{
	char buf[SL_CLIENT_LINE_MAX + 64];
	const char *t;
	size_t n;
	int k;

	if (strncmp(line, "SIGN ", 5) != 0) {
		write_all(fd, "ERR unknown-verb not SIGN (fix)\n", 32);
		return;
	}
	t = line + 5;
	n = strcspn(t, " ");
	if (memmem(t, n, "bad", 3))
		k = snprintf(buf, sizeof(buf), "ERR bad-target %.*s is bad (fix it)\n", (int)n, t);
	else
		k = snprintf(buf, sizeof(buf), "OK https://h%.*s?token=tok&expires=9&kid=1\n",
		             (int)n, t);
	write_all(fd, buf, (size_t)k);
}

static void serve_sign_slowly(Fake *f, int fd)
{
	int small = 4096;

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	serve_lines(f, fd, answer_sign);
}

static void serve_sign(Fake *f, int fd)
{
	serve_lines(f, fd, answer_sign);
}

static void test_sign_many_pipelines_thousands_in_order(void **state)
{
	enum {
		N = 20000
	};
	char **targets = calloc(N, sizeof(char *));
	char **urls = calloc(N, sizeof(char *));
	SlError *errors = calloc(N, sizeof(SlError));
	char **messages = calloc(N, sizeof(char *));
	Fake f;
	SlClient *c = NULL;

	assert_non_null(targets);
	assert_non_null(urls);
	assert_non_null(errors);
	assert_non_null(messages);
	for (size_t i = 0; i < N; i++)
		assert_true(asprintf(&targets[i], "/media/private/file-%zu.pdf", i) > 0);

	fake_start(&f, serve_sign_slowly);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	/* A deadlock fails the test instead of hanging it. */
	sl_client_set_timeout(c, 20 * USEC_PER_SEC);
	assert_int_equal(
	    sl_client_sign_many(c, (const char *const *)targets, N, NULL, urls, errors, messages),
	    0);
	for (size_t i = 0; i < N; i++) {
		char want[128];

		snprintf(want, sizeof(want),
		         "https://h/media/private/file-%zu.pdf?token=tok&expires=9&kid=1", i);
		assert_non_null(urls[i]);
		assert_string_equal(urls[i], want);
		assert_int_equal(errors[i], SL_ERROR_NONE);
		assert_null(messages[i]);
		free(urls[i]);
		free(targets[i]);
	}
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, N);
	free(targets);
	free(urls);
	free(errors);
	free(messages);
}

static void test_sign_many_reports_each_failure_and_continues(void **state)
{
	char *long_target = malloc(9000);
	const char *targets[] = {
		"/a", "/bad1", "/with space", "", "/c", NULL /* long */, "/d\n/e", "/bad2", "/f",
	};
	char *urls[ELEMENTSOF(targets)];
	SlError errors[ELEMENTSOF(targets)];
	char *messages[ELEMENTSOF(targets)];
	Fake f;
	SlClient *c = NULL;

	assert_non_null(long_target);
	long_target[0] = '/';
	memset(long_target + 1, 'l', 8998);
	long_target[8999] = '\0';
	targets[5] = long_target;

	fake_start(&f, serve_sign);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(
	    sl_client_sign_many(c, targets, ELEMENTSOF(targets), NULL, urls, errors, messages), 6);

	assert_string_equal(urls[0], "https://h/a?token=tok&expires=9&kid=1");
	assert_null(urls[1]);
	assert_int_equal(errors[1], SL_ERROR_BAD_TARGET);
	assert_string_equal(messages[1], "/bad1 is bad (fix it)");
	/* Refused here: a space would add a field, an LF a whole request. */
	assert_null(urls[2]);
	assert_int_equal(errors[2], SL_ERROR_BAD_TARGET);
	assert_non_null(messages[2]);
	assert_null(urls[3]);
	assert_int_equal(errors[3], SL_ERROR_BAD_TARGET);
	assert_string_equal(urls[4], "https://h/c?token=tok&expires=9&kid=1");
	assert_null(urls[5]);
	assert_int_equal(errors[5], SL_ERROR_LINE_TOO_LONG);
	assert_null(urls[6]);
	assert_int_equal(errors[6], SL_ERROR_BAD_TARGET);
	assert_null(urls[7]);
	assert_int_equal(errors[7], SL_ERROR_BAD_TARGET);
	assert_string_equal(messages[7], "/bad2 is bad (fix it)");
	assert_string_equal(urls[8], "https://h/f?token=tok&expires=9&kid=1");

	for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
		free(urls[i]);
		free(messages[i]);
	}
	sl_client_free(c);
	fake_stop(&f);
	/* Only the sendable ones reached the server. */
	assert_int_equal(f.n_lines, 5);
	assert_string_equal(f.lines[0], "SIGN /a");
	assert_string_equal(f.lines[2], "SIGN /c");
	assert_string_equal(f.lines[4], "SIGN /f");
	free(long_target);
}

static void test_first_answer_err_on_a_live_connection_is_the_targets(void **state)
{
	const char *targets[] = { "/bad1", "" };
	char *urls[2], *messages[2];
	SlError errors[2];
	Fake f;
	SlClient *c = NULL;
	char *u = NULL;

	fake_start(&f, serve_sign);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	sl_client_set_timeout(c, 20 * USEC_PER_SEC);
	/* One target, refused, the connection's first answer: it could be a
	 * refused connection, so the library asks once more (PING) and, the
	 * connection being alive, gives the target its own error. */
	assert_int_equal(sl_client_sign(c, "/bad0", NULL, &u), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_string_equal(sl_client_last_message(c), "/bad0 is bad (fix it)");
	assert_int_equal(sl_client_sign_many(c, targets, 2, NULL, urls, errors, messages), 2);
	assert_string_equal(messages[0], "/bad1 is bad (fix it)");
	assert_int_equal(errors[1], SL_ERROR_BAD_TARGET);
	assert_int_equal(sl_client_sign(c, "/a", NULL, &u), 0);
	assert_string_equal(u, "https://h/a?token=tok&expires=9&kid=1");
	free(u);
	for (size_t i = 0; i < 2; i++)
		free(messages[i]);
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 4);
	assert_string_equal(f.lines[1], "PING");
	assert_string_equal(f.lines[2], "SIGN /bad1");
}

/* ---- one SIGN at a time, after the connection's first answer ---- */

/* Answers the first request at once; then each in pieces (one byte per
 * write, CRLF), twice, or never, by f->answer_after: 1 bytewise, 2 twice,
 * 3 silent (reads on without answering). */
static void answer_then(Fake *f, int fd, const char *line)
{
	static const char a[] = "OK https://h/x?token=t&expires=1&kid=2\r\n";

	if (f->n_lines == 1 || f->answer_after == 0) {
		write_all(fd, "OK https://h/first\n", 19);
		return;
	}
	switch (f->answer_after) {
	case 1:
		for (size_t i = 0; i + 1 < sizeof(a); i++)
			write_all(fd, a + i, 1);
		break;
	case 2:
		write_all(fd, "OK https://h/one\nOK https://h/two\n", 34);
		break;
	default:
		break;
	}
}

static void serve_answer_then(Fake *f, int fd)
{
	serve_lines(f, fd, answer_then);
}

/* A client whose connection has answered first_target once (with
 * first_url, when given): the state in which sl_client_sign() takes its
 * blocking fast path. */
static SlClient *connect_answered(Fake *f, serve_t serve, int answer_after, uint64_t timeout,
                                  const char *first_target, const char *first_url)
{
	SlClient *c = NULL;
	char *u = NULL;

	fake_start(f, serve);
	f->answer_after = answer_after;
	assert_int_equal(sl_client_connect(f->path, &c), 0);
	sl_client_set_timeout(c, timeout);
	assert_int_equal(sl_client_sign(c, first_target, NULL, &u), 0);
	if (first_url)
		assert_string_equal(u, first_url);
	free(u);
	return c;
}

static void test_sign_one_by_one_reassembles_split_answer(void **state)
{
	Fake f;
	SlClient *c = connect_answered(&f, serve_answer_then, 1, 20 * USEC_PER_SEC, "/first",
	                               "https://h/first");
	char *u = NULL;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(sl_client_sign(c, "/x", NULL, &u), 0);
		assert_string_equal(u, "https://h/x?token=t&expires=1&kid=2");
		free(u);
	}
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 4);
	assert_string_equal(f.lines[3], "SIGN /x");
}

static void test_sign_one_by_one_times_out_and_stays_failed(void **state)
{
	Fake f;
	SlClient *c = connect_answered(&f, serve_answer_then, 3, 50 * 1000, "/first", NULL);
	char *u = NULL;

	assert_int_equal(sl_client_sign(c, "/x", NULL, &u), -ETIMEDOUT);
	assert_null(u);
	assert_int_equal(sl_client_sign(c, "/y", NULL, &u), -ETIMEDOUT);
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 2); /* nothing sent on a failed connection */
}

static void test_sign_one_by_one_two_answers_to_one_request_is_ebadmsg(void **state)
{
	Fake f;
	SlClient *c = connect_answered(&f, serve_answer_then, 2, 20 * USEC_PER_SEC, "/first", NULL);
	char *u = NULL;

	/* Both answers come in one write, so both are read at once. */
	assert_int_equal(sl_client_sign(c, "/x", NULL, &u), -EBADMSG);
	assert_null(u);
	assert_int_equal(sl_client_sign(c, "/y", NULL, &u), -EBADMSG);
	sl_client_free(c);
	fake_stop(&f);
}

static void test_sign_one_by_one_daemon_closing_fails_and_stays_failed(void **state)
{
	Fake f;
	SlClient *c =
	    connect_answered(&f, serve_close_after, 1, 20 * USEC_PER_SEC, "/a", "/x?token=t");
	char *u = NULL;
	int r;

	r = sl_client_sign(c, "/b", NULL, &u);
	assert_true(r == -ECONNRESET || r == -EPIPE);
	assert_null(u);
	assert_int_equal(sl_client_sign(c, "/c", NULL, &u), r);
	sl_client_free(c);
	fake_stop(&f);
}

static void test_sign_one_by_one_err_is_the_targets_and_keeps_the_connection(void **state)
{
	SlSignOptions bad_ip = { .ip = "1.2.3.4 x" };
	Fake f;
	SlClient *c = connect_answered(&f, serve_sign, 0, 20 * USEC_PER_SEC, "/a", NULL);
	char *u = NULL;

	assert_int_equal(sl_client_sign(c, "/bad", NULL, &u), -EREMOTEIO);
	assert_null(u);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_string_equal(sl_client_last_message(c), "/bad is bad (fix it)");
	/* Refused here, never sent: as from the stream. */
	assert_int_equal(sl_client_sign(c, "/a b", NULL, &u), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_int_equal(sl_client_sign(c, "/c", &bad_ip, &u), -EINVAL);
	assert_int_equal(sl_client_sign(c, "/b", NULL, &u), 0);
	assert_string_equal(u, "https://h/b?token=tok&expires=9&kid=1");
	assert_int_equal(sl_client_last_error(c), SL_ERROR_NONE);
	free(u);
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 3);
}

static void test_sign_sends_options_as_fields(void **state)
{
	SlSignOptions ttl = { .has_ttl = true, .ttl = 60, .ip = "192.0.2.1" };
	SlSignOptions expires = { .has_expires = true, .expires = 1700000000 };
	SlSignOptions both = { .has_ttl = true, .ttl = 1, .has_expires = true, .expires = 2 };
	SlSignOptions bad_ip = { .ip = "1.2.3.4 ttl=99" };
	SlSignOptions negative = { .has_ttl = true, .ttl = -5 };
	Fake f;
	SlClient *c = NULL;
	char *u = NULL;

	fake_start(&f, serve_sign);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_sign(c, "/a", &ttl, &u), 0);
	free(u);
	assert_int_equal(sl_client_sign(c, "/b", &expires, &u), 0);
	free(u);
	u = NULL;
	assert_int_equal(sl_client_sign(c, "/c", &both, &u), -EINVAL);
	assert_int_equal(sl_client_sign(c, "/c", &bad_ip, &u), -EINVAL);
	assert_null(u);
	/* The daemon judges the ttl: a negative one is sent as is. */
	assert_int_equal(sl_client_sign(c, "/d", &negative, &u), 0);
	free(u);
	assert_int_equal(sl_client_sign(c, "/bad", NULL, &u), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_string_equal(sl_client_last_message(c), "/bad is bad (fix it)");
	assert_int_equal(sl_client_sign(c, "/e f", NULL, &u), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	sl_client_free(c);
	fake_stop(&f);

	assert_int_equal(f.n_lines, 4);
	assert_string_equal(f.lines[0], "SIGN /a ttl=60 ip=192.0.2.1");
	assert_string_equal(f.lines[1], "SIGN /b expires=1700000000");
	assert_string_equal(f.lines[2], "SIGN /d ttl=-5");
	assert_string_equal(f.lines[3], "SIGN /bad");
}

/* ---- directory grants ---- */

/* Like the daemon: a grant target must end in "/"; the cookie answer has
 * spaces in it, and the whole line after "OK " is the answer. */
static void answer_grant(Fake *f, int fd, const char *line)
{
	char buf[SL_CLIENT_LINE_MAX + 128];
	const char *t = line + 5;
	size_t n = strcspn(t, " ");
	int k;

	if (strncmp(line, "SIGN ", 5) != 0 || n == 0)
		k = snprintf(buf, sizeof(buf), "ERR bad-request not a SIGN (fix)\n");
	else if (t[n - 1] != '/')
		k = snprintf(buf, sizeof(buf),
		             "ERR bad-target %.*s: a grant is for a directory (end it in /)\n",
		             (int)n, t);
	else if (strstr(t + n, " grant=cookie"))
		k = snprintf(buf, sizeof(buf),
		             "OK securelink_grant=1.9.2.tok; Path=%.*s; Expires=Thu, 01 Jan "
		             "1970 00:00:09 GMT; HttpOnly; SameSite=Lax\n",
		             (int)n, t);
	else
		k = snprintf(buf, sizeof(buf), "OK /m/_grant/1/9/tok/2%.*s\n", (int)n - 2, t + 2);
	write_all(fd, buf, (size_t)k);
}

static void serve_grant(Fake *f, int fd)
{
	serve_lines(f, fd, answer_grant);
}

static void test_grant_sends_the_form_and_options_and_returns_the_whole_answer(void **state)
{
	SlSignOptions ttl = { .has_ttl = true, .ttl = 60, .ip = "192.0.2.1" };
	SlSignOptions expires = { .has_expires = true, .expires = 1700000000 };
	Fake f;
	SlClient *c = NULL;
	char *a = NULL;

	fake_start(&f, serve_grant);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	sl_client_set_timeout(c, 20 * USEC_PER_SEC);
	assert_int_equal(sl_client_grant(c, "/m/p/d/", SL_GRANT_PATH, NULL, &a), 0);
	assert_string_equal(a, "/m/_grant/1/9/tok/2/p/d/");
	free(a);
	assert_int_equal(sl_client_grant(c, "/m/p/d/", SL_GRANT_COOKIE, &ttl, &a), 0);
	/* Spaces and all: the Set-Cookie value is one answer. */
	assert_string_equal(a, "securelink_grant=1.9.2.tok; Path=/m/p/d/; Expires=Thu, 01 Jan "
	                       "1970 00:00:09 GMT; HttpOnly; SameSite=Lax");
	assert_true(strncmp(a, SL_GRANT_COOKIE_NAME "=", strlen(SL_GRANT_COOKIE_NAME) + 1) == 0);
	free(a);
	assert_int_equal(sl_client_grant(c, "https://h/m/p/d/", SL_GRANT_PATH, &expires, &a), 0);
	free(a);
	sl_client_free(c);
	fake_stop(&f);

	assert_int_equal(f.n_lines, 3);
	assert_string_equal(f.lines[0], "SIGN /m/p/d/ grant=path");
	assert_string_equal(f.lines[1], "SIGN /m/p/d/ grant=cookie ttl=60 ip=192.0.2.1");
	assert_string_equal(f.lines[2], "SIGN https://h/m/p/d/ grant=path expires=1700000000");
}

static void test_grant_refuses_what_cannot_be_sent_and_reports_the_daemons_error(void **state)
{
	SlSignOptions both = { .has_ttl = true, .ttl = 1, .has_expires = true, .expires = 2 };
	SlSignOptions bad_ip = { .ip = "1.2.3.4 grant=path" };
	char *long_dir = malloc(SL_CLIENT_LINE_MAX);
	Fake f;
	SlClient *c = NULL;
	char *a = NULL;

	assert_non_null(long_dir);
	long_dir[0] = '/';
	memset(long_dir + 1, 'l', SL_CLIENT_LINE_MAX - 3);
	long_dir[SL_CLIENT_LINE_MAX - 2] = '/';
	long_dir[SL_CLIENT_LINE_MAX - 1] = '\0';

	fake_start(&f, serve_grant);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	sl_client_set_timeout(c, 20 * USEC_PER_SEC);
	assert_int_equal(sl_client_grant(c, "/m/p/d/", (SlGrantForm)2, NULL, &a), -EINVAL);
	assert_int_equal(sl_client_grant(c, "/m/p/d/", (SlGrantForm)-1, NULL, &a), -EINVAL);
	assert_int_equal(sl_client_grant(c, "/m/p/d/", SL_GRANT_PATH, &both, &a), -EINVAL);
	assert_int_equal(sl_client_grant(c, "/m/p/d/", SL_GRANT_PATH, &bad_ip, &a), -EINVAL);
	/* A space would add a field (" grant=cookie" smuggled in), an LF a
	 * whole request: refused here, as sl_client_sign() refuses them. */
	assert_int_equal(sl_client_grant(c, "/m/p/d/ grant=cookie", SL_GRANT_PATH, NULL, &a),
	                 -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_string_not_equal(sl_client_last_message(c), "");
	assert_int_equal(sl_client_grant(c, "/m/p/d/\nSIGN /x/", SL_GRANT_PATH, NULL, &a),
	                 -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_int_equal(sl_client_grant(c, "", SL_GRANT_PATH, NULL, &a), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_int_equal(sl_client_grant(c, long_dir, SL_GRANT_COOKIE, NULL, &a), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_LINE_TOO_LONG);
	assert_null(a);

	/* The daemon's refusal, code and message; the connection stays usable. */
	assert_int_equal(sl_client_grant(c, "/m/p/d", SL_GRANT_PATH, NULL, &a), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_BAD_TARGET);
	assert_string_equal(sl_client_last_message(c),
	                    "/m/p/d: a grant is for a directory (end it in /)");
	assert_null(a);
	assert_int_equal(sl_client_grant(c, "/m/p/e/", SL_GRANT_PATH, NULL, &a), 0);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_NONE);
	assert_string_equal(a, "/m/_grant/1/9/tok/2/p/e/");
	free(a);
	sl_client_free(c);
	fake_stop(&f);
	free(long_dir);

	/* Only the two sendable requests reached the server. */
	assert_int_equal(f.n_lines, 2);
	assert_string_equal(f.lines[0], "SIGN /m/p/d grant=path");
	assert_string_equal(f.lines[1], "SIGN /m/p/e/ grant=path");
}

/* A source with nothing ready at first: the stream waits on its fd. */
typedef struct PipeSource {
	int fd;
	int calls, eagain;
	size_t results;
	char target[32];
} PipeSource;

static int pipe_next(void *userdata, const char **ret_target)
{
	PipeSource *s = userdata;
	char ch;
	ssize_t k;

	s->calls++;
	k = read(s->fd, &ch, 1);
	if (k < 0 && errno == EAGAIN) {
		s->eagain++;
		return -EAGAIN;
	}
	if (k <= 0)
		return 0;
	snprintf(s->target, sizeof(s->target), "/%c", ch);
	*ret_target = s->target;
	return 1;
}

static void pipe_result(void *userdata, size_t index, const char *url, SlError e,
                        const char *message)
{
	PipeSource *s = userdata;
	char want[64];

	assert_int_equal(index, s->results);
	snprintf(want, sizeof(want), "https://h/%c?token=tok&expires=9&kid=1", (int)('a' + index));
	assert_non_null(url);
	assert_string_equal(url, want);
	s->results++;
}

static int always_eagain(void *userdata, const char **ret_target)
{
	return -EAGAIN;
}

static void *pipe_writer(void *userdata)
{
	int fd = *(int *)userdata;
	struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

	/* Late on purpose: the stream must be waiting on the fd by then. */
	nanosleep(&ts, NULL);
	write_all(fd, "ab", 2);
	nanosleep(&ts, NULL);
	write_all(fd, "c", 1);
	close(fd);
	return NULL;
}

static void test_sign_stream_waits_on_source_fd(void **state)
{
	PipeSource s = {};
	pthread_t t;
	int p[2];
	Fake f;
	SlClient *c = NULL;

	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	s.fd = p[0];
	assert_int_equal(pthread_create(&t, NULL, pipe_writer, &p[1]), 0);

	fake_start(&f, serve_sign);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	sl_client_set_timeout(c, 10 * USEC_PER_SEC);
	assert_int_equal(sl_client_sign_stream(c, NULL, pipe_next, s.fd, pipe_result, &s), 0);
	assert_int_equal(s.results, 3);
	assert_true(s.eagain >= 1);
	assert_int_equal(pthread_join(t, NULL), 0);

	/* -EAGAIN without an fd to wait on is a caller bug. */
	assert_int_equal(sl_client_sign_stream(c, NULL, always_eagain, -1, pipe_result, &s),
	                 -EINVAL);
	sl_client_free(c);
	fake_stop(&f);
	close(p[0]);
}

int main(void)
{
	/* The fake server may write to a client that already hung up. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_many_pipelines_thousands_in_order),
		cmocka_unit_test(test_sign_many_reports_each_failure_and_continues),
		cmocka_unit_test(test_first_answer_err_on_a_live_connection_is_the_targets),
		cmocka_unit_test(test_sign_one_by_one_reassembles_split_answer),
		cmocka_unit_test(test_sign_one_by_one_times_out_and_stays_failed),
		cmocka_unit_test(test_sign_one_by_one_two_answers_to_one_request_is_ebadmsg),
		cmocka_unit_test(test_sign_one_by_one_daemon_closing_fails_and_stays_failed),
		cmocka_unit_test(test_sign_one_by_one_err_is_the_targets_and_keeps_the_connection),
		cmocka_unit_test(test_sign_sends_options_as_fields),
		cmocka_unit_test(test_sign_stream_waits_on_source_fd),
		cmocka_unit_test(
		    test_grant_sends_the_form_and_options_and_returns_the_whole_answer),
		cmocka_unit_test(
		    test_grant_refuses_what_cannot_be_sent_and_reports_the_daemons_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
