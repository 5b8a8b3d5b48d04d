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
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base64url.h"
#include "json.h"
#include "securelink-client.h"
#include "util.h"

/* A fake securelinkd: a thread accepting one connection on a Unix socket in
 * a temporary directory and answering with a scripted behaviour. The test
 * reads what the server saw after fake_stop() has joined the thread. */
typedef struct Fake Fake;
typedef void (*serve_t)(Fake *f, int fd);

struct Fake {
	char dir[64];
	char path[128];
	int listen_fd;
	pthread_t thread;
	serve_t serve;
	int answer_after; /* serve_close_after */
	size_t n_lines;
	char lines[8][SL_CLIENT_LINE_MAX + 1]; /* the first few lines received */
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return; /* the client went away; the test will say what it saw */
		p += k;
		n -= (size_t)k;
	}
}

static void *fake_thread(void *userdata)
{
	Fake *f = userdata;
	int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd >= 0) {
		f->serve(f, fd);
		close(fd);
	}
	return NULL;
}

static void fake_start(Fake *f, serve_t serve)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->serve = serve;
	strcpy(f->dir, "/tmp/test-client-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
	strcpy(sa.sun_path, f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listen_fd, 4), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_thread, f), 0);
}

static void fake_stop(Fake *f)
{
	/* The client has closed its end by now, so every serve function
	 * returns: they all stop at end of file. */
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
}

/* Reads request lines until end of file, calls answer() for each. */
static void serve_lines(Fake *f, int fd, void (*answer)(Fake *f, int fd, const char *line))
{
	FILE *in = fdopen(dup(fd), "r");
	char *line = NULL;
	size_t size = 0;
	ssize_t n;

	assert_non_null(in);
	while ((n = getline(&line, &size, in)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (f->n_lines < ELEMENTSOF(f->lines))
			snprintf(f->lines[f->n_lines], sizeof(f->lines[0]), "%s", line);
		f->n_lines++;
		answer(f, fd, line);
	}
	free(line);
	fclose(in);
}

/* ---- connecting ---- */

static void serve_nothing(Fake *f, int fd)
{
	char c;

	while (read(fd, &c, 1) > 0)
		;
}

static void test_connect_missing_socket_is_enoent(void **state)
{
	SlClient *c = NULL;

	assert_int_equal(sl_client_connect("/nonexistent/securelink-test.sock", &c), -ENOENT);
	assert_null(c);
}

static void test_connect_socket_without_listener_is_econnrefused(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/test-client-XXXXXX";
	SlClient *c = NULL;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* the file stays, nobody listens: a stopped daemon */

	assert_int_equal(sl_client_connect(sa.sun_path, &c), -ECONNREFUSED);
	unlink(sa.sun_path);
	rmdir(dir);
}

static void test_connect_overlong_path_is_enametoolong(void **state)
{
	char path[200];
	SlClient *c = NULL;

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(sl_client_connect(path, &c), -ENAMETOOLONG);
	assert_int_equal(sl_client_connect("", &c), -EINVAL);
}

static void test_connect_without_permission_is_eacces(void **state)
{
	Fake f;
	SlClient *c = NULL;

	if (geteuid() == 0)
		skip(); /* root passes every permission check */
	fake_start(&f, serve_nothing);
	assert_int_equal(chmod(f.path, 0), 0);
	assert_int_equal(sl_client_connect(f.path, &c), -EACCES);
	/* Let the thread's accept() return. */
	assert_int_equal(chmod(f.path, 0600), 0);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	sl_client_free(c);
	fake_stop(&f);
}

static void test_socket_path_order_argument_env_default(void **state)
{
	assert_int_equal(unsetenv("SECURELINK_SOCKET"), 0);
	assert_string_equal(sl_client_socket_path(NULL), "/run/securelink/securelinkd.sock");
	assert_int_equal(setenv("SECURELINK_SOCKET", "", 1), 0);
	assert_string_equal(sl_client_socket_path(NULL), "/run/securelink/securelinkd.sock");
	assert_int_equal(setenv("SECURELINK_SOCKET", "/tmp/env.sock", 1), 0);
	assert_string_equal(sl_client_socket_path(NULL), "/tmp/env.sock");
	assert_string_equal(sl_client_socket_path("/tmp/arg.sock"), "/tmp/arg.sock");
	assert_int_equal(unsetenv("SECURELINK_SOCKET"), 0);
}

static void answer_pong(Fake *f, int fd, const char *line)
{
	if (streq(line, "PING"))
		write_all(fd, "OK pong\n", 8);
	else
		write_all(fd, "ERR unknown-verb what? (try PING)\n", 34);
}

static void serve_pong(Fake *f, int fd)
{
	serve_lines(f, fd, answer_pong);
}

static void test_connect_null_path_uses_env(void **state)
{
	Fake f;
	SlClient *c = NULL;
	char *a = NULL;

	fake_start(&f, serve_pong);
	assert_int_equal(setenv("SECURELINK_SOCKET", f.path, 1), 0);
	assert_int_equal(sl_client_connect(NULL, &c), 0);
	assert_int_equal(unsetenv("SECURELINK_SOCKET"), 0);
	assert_int_equal(sl_client_request(c, "PING", &a), 0);
	assert_string_equal(a, "pong");
	free(a);
	sl_client_free(c);
	fake_stop(&f);
}

/* ---- one request, framing ---- */

static void test_request_returns_ok_text_and_err(void **state)
{
	Fake f;
	SlClient *c = NULL;
	char *a = NULL;

	fake_start(&f, serve_pong);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "PING", &a), 0);
	assert_string_equal(a, "pong");
	free(a);
	a = NULL;
	assert_int_equal(sl_client_last_error(c), SL_ERROR_NONE);
	assert_string_equal(sl_client_last_message(c), "");

	/* ERR keeps the connection: the next request works. */
	assert_int_equal(sl_client_request(c, "HELLO", &a), -EREMOTEIO);
	assert_null(a);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_UNKNOWN_VERB);
	assert_string_equal(sl_client_last_message(c), "what? (try PING)");
	assert_int_equal(sl_client_request(c, "PING", NULL), 0);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_NONE);
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 3);
	assert_string_equal(f.lines[1], "HELLO");
}

/* Answers in pieces, one byte per write, with CRLF: framing must not depend
 * on how the bytes arrive. */
static void answer_bytewise(Fake *f, int fd, const char *line)
{
	static const char a[] = "OK https://h/x?token=t&expires=1&kid=2\r\n";

	for (size_t i = 0; i + 1 < sizeof(a); i++)
		write_all(fd, a + i, 1);
}

static void serve_bytewise(Fake *f, int fd)
{
	serve_lines(f, fd, answer_bytewise);
}

static void test_request_reassembles_split_answer_and_strips_cr(void **state)
{
	Fake f;
	SlClient *c = NULL;
	char *a = NULL;

	fake_start(&f, serve_bytewise);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "SIGN /x", &a), 0);
	assert_string_equal(a, "https://h/x?token=t&expires=1&kid=2");
	free(a);
	sl_client_free(c);
	fake_stop(&f);
}

static void test_request_refuses_unsendable_lines_without_sending(void **state)
{
	Fake f;
	SlClient *c = NULL;
	char *big = malloc(SL_CLIENT_LINE_MAX + 1);

	assert_non_null(big);
	memset(big, 'a', SL_CLIENT_LINE_MAX);
	big[SL_CLIENT_LINE_MAX] = '\0';

	fake_start(&f, serve_pong);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "PING\nROTATE", NULL), -EINVAL);
	assert_int_equal(sl_client_request(c, "PING\r", NULL), -EINVAL);
	assert_int_equal(sl_client_request(c, big, NULL), -EMSGSIZE);
	/* 8191 bytes plus LF is exactly the limit. */
	big[SL_CLIENT_LINE_MAX - 1] = '\0';
	assert_int_equal(sl_client_request(c, big, NULL), -EREMOTEIO);
	/* Nothing was sent for the refused ones; the connection is fine. */
	assert_int_equal(sl_client_request(c, "PING", NULL), 0);
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 2);
	free(big);
}

/* ---- ERR mapping ---- */

static void answer_err_code(Fake *f, int fd, const char *line)
{
	char buf[256];
	int n;

	/* Request "X <code>": answer with that code, or without a message for
	 * "Y <code>". */
	if (line[0] == 'Y')
		n = snprintf(buf, sizeof(buf), "ERR %s\n", line + 2);
	else
		n = snprintf(buf, sizeof(buf), "ERR %s message for %s (fix)\n", line + 2, line + 2);
	write_all(fd, buf, (size_t)n);
}

static void serve_err_code(Fake *f, int fd)
{
	serve_lines(f, fd, answer_err_code);
}

static void test_err_codes_map_to_enum_with_message(void **state)
{
	/* The codes as DESIGN.md spells them on the wire. */
	static const struct {
		const char *code;
		SlError e;
	} table[] = {
		{ "bad-request", SL_ERROR_BAD_REQUEST },
		{ "unknown-verb", SL_ERROR_UNKNOWN_VERB },
		{ "line-too-long", SL_ERROR_LINE_TOO_LONG },
		{ "bad-target", SL_ERROR_BAD_TARGET },
		{ "bad-ttl", SL_ERROR_BAD_TTL },
		{ "ttl-too-long", SL_ERROR_TTL_TOO_LONG },
		{ "bad-ip", SL_ERROR_BAD_IP },
		{ "forbidden", SL_ERROR_FORBIDDEN },
		{ "unavailable", SL_ERROR_UNAVAILABLE },
		{ "internal", SL_ERROR_INTERNAL },
		{ "brand-new-code", SL_ERROR_UNKNOWN },
	};
	Fake f;
	SlClient *c = NULL;

	fake_start(&f, serve_err_code);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		char line[64], message[128];

		snprintf(line, sizeof(line), "X %s", table[i].code);
		snprintf(message, sizeof(message), "message for %s (fix)", table[i].code);
		assert_int_equal(sl_client_request(c, line, NULL), -EREMOTEIO);
		assert_int_equal(sl_client_last_error(c), table[i].e);
		assert_string_equal(sl_client_last_message(c), message);
		if (table[i].e != SL_ERROR_UNKNOWN) {
			assert_string_equal(sl_error_to_string(table[i].e), table[i].code);
			assert_int_equal(sl_error_from_string(table[i].code), table[i].e);
		}
	}
	/* ERR with a code and no message. */
	assert_int_equal(sl_client_request(c, "Y internal", NULL), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_INTERNAL);
	assert_string_equal(sl_client_last_message(c), "");
	sl_client_free(c);
	fake_stop(&f);
}

static void test_error_to_string_edges(void **state)
{
	assert_string_equal(sl_error_to_string(SL_ERROR_NONE), "ok");
	assert_string_equal(sl_error_to_string(SL_ERROR_UNKNOWN), "unknown");
	assert_null(sl_error_to_string(_SL_ERROR_MAX));
	assert_null(sl_error_to_string((SlError)-1));
	/* Our own names are not wire codes. */
	assert_int_equal(sl_error_from_string("ok"), SL_ERROR_UNKNOWN);
	assert_int_equal(sl_error_from_string("unknown"), SL_ERROR_UNKNOWN);
	assert_int_equal(sl_error_from_string(""), SL_ERROR_UNKNOWN);
	assert_int_equal(sl_error_from_string(NULL), SL_ERROR_UNKNOWN);
}

/* ---- protocol violations and transport errors: no reconnect ---- */

static void answer_garbage(Fake *f, int fd, const char *line)
{
	if (f->n_lines == 1)
		write_all(fd, "HELLO there\n", 12);
	else
		write_all(fd, "OK pong\n", 8);
}

static void serve_garbage(Fake *f, int fd)
{
	serve_lines(f, fd, answer_garbage);
}

static void test_malformed_answer_breaks_connection(void **state)
{
	Fake f;
	SlClient *c = NULL;
	char *u = NULL;

	fake_start(&f, serve_garbage);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "PING", NULL), -EBADMSG);
	/* Later answers could not be matched to requests: the client stays
	 * broken rather than guess, and never reconnects on its own. */
	assert_int_equal(sl_client_request(c, "PING", NULL), -EBADMSG);
	assert_int_equal(sl_client_sign(c, "/x", NULL, &u), -EBADMSG);
	assert_null(u);
	sl_client_free(c);
	fake_stop(&f);
	assert_int_equal(f.n_lines, 1);
}

static void answer_err_without_code(Fake *f, int fd, const char *line)
{
	write_all(fd, "ERR \n", 5);
}

static void serve_err_without_code(Fake *f, int fd)
{
	serve_lines(f, fd, answer_err_without_code);
}

static void test_err_without_code_is_ebadmsg(void **state)
{
	Fake f;
	SlClient *c = NULL;

	fake_start(&f, serve_err_without_code);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "PING", NULL), -EBADMSG);
	sl_client_free(c);
	fake_stop(&f);
}

static void serve_overlong_answer(Fake *f, int fd)
{
	char *a = malloc(70000);
	char buf[64];

	assert_non_null(a);
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	memcpy(a, "OK ", 3);
	memset(a + 3, 'a', 70000 - 4);
	a[70000 - 1] = '\n';
	write_all(fd, a, 70000);
	free(a);
	serve_nothing(f, fd);
}

static void test_overlong_answer_is_emsgsize(void **state)
{
	Fake f;
	SlClient *c = NULL;
	char *a = NULL;

	fake_start(&f, serve_overlong_answer);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "STATUS", &a), -EMSGSIZE);
	assert_null(a);
	sl_client_free(c);
	fake_stop(&f);
}

static void serve_close_after(Fake *f, int fd)
{
	FILE *in = fdopen(dup(fd), "r");
	char *line = NULL;
	size_t size = 0;

	assert_non_null(in);
	for (int i = 0; i < f->answer_after && getline(&line, &size, in) > 0; i++)
		write_all(fd, "OK /x?token=t\n", 14);
	/* Then hang up with requests still in flight, like a daemon that
	 * crashed or was stopped. */
	free(line);
	fclose(in);
}

static void test_daemon_closing_fails_request_and_stays_failed(void **state)
{
	Fake f;
	SlClient *c = NULL;
	int r;

	fake_start(&f, serve_close_after);
	f.answer_after = 1;
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	assert_int_equal(sl_client_request(c, "PING", NULL), 0);
	r = sl_client_request(c, "PING", NULL);
	assert_true(r == -ECONNRESET || r == -EPIPE);
	assert_int_equal(sl_client_request(c, "PING", NULL), r);
	sl_client_free(c);
	fake_stop(&f);
}

static void test_daemon_closing_mid_batch_fails_whole_batch(void **state)
{
	enum {
		N = 5000
	};
	const char **targets = calloc(N, sizeof(char *));
	char **urls = calloc(N, sizeof(char *));
	SlError *errors = calloc(N, sizeof(SlError));
	char **messages = calloc(N, sizeof(char *));
	Fake f;
	SlClient *c = NULL;
	int r;

	assert_non_null(targets);
	assert_non_null(urls);
	assert_non_null(errors);
	assert_non_null(messages);
	for (size_t i = 0; i < N; i++)
		targets[i] = "/media/x.pdf";

	fake_start(&f, serve_close_after);
	f.answer_after = 100;
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	r = sl_client_sign_many(c, targets, N, NULL, urls, errors, messages);
	assert_true(r == -ECONNRESET || r == -EPIPE);
	/* Nothing half-filled comes back. */
	for (size_t i = 0; i < N; i++) {
		assert_null(urls[i]);
		assert_null(messages[i]);
	}
	sl_client_free(c);
	fake_stop(&f);
	free(targets);
	free(urls);
	free(errors);
	free(messages);
}

/* securelinkd at max_connections: one ERR line, then it hangs up without
 * reading a byte. */
static void serve_refuse(Fake *f, int fd)
{
	static const char refusal[] = "ERR unavailable too many connections (try again later)\n";

	write_all(fd, refusal, sizeof(refusal) - 1);
}

static void test_refused_connection_request_gets_the_daemons_reason(void **state)
{
	Fake f;
	SlClient *c = NULL;

	fake_start(&f, serve_refuse);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	/* The daemon has hung up before anything is sent: the write fails
	 * (EPIPE), and the reason is still there to be read. */
	fake_stop(&f);
	assert_int_equal(sl_client_request(c, "STATUS", NULL), -EREMOTEIO);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_UNAVAILABLE);
	assert_string_equal(sl_client_last_message(c), "too many connections (try again later)");
	/* The connection is gone all the same. */
	assert_true(sl_client_request(c, "PING", NULL) < 0);
	sl_client_free(c);
}

static void test_refused_connection_batch_fails_whole_with_the_daemons_reason(void **state)
{
	const char *targets[] = { "/media/a", "/media/b", "/media/c" };
	char *urls[3];
	SlError errors[3];
	Fake f;
	SlClient *c = NULL;

	fake_start(&f, serve_refuse);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	fake_stop(&f);
	/* Not an answer to the first target: the connection was refused, so
	 * no target gets a result, and the reason is the daemon's. */
	assert_int_equal(sl_client_sign_many(c, targets, 3, NULL, urls, errors, NULL), -EREMOTEIO);
	for (size_t i = 0; i < 3; i++)
		assert_null(urls[i]);
	assert_int_equal(sl_client_last_error(c), SL_ERROR_UNAVAILABLE);
	assert_string_equal(sl_client_last_message(c), "too many connections (try again later)");
	sl_client_free(c);
}

static void test_silent_daemon_times_out(void **state)
{
	Fake f;
	SlClient *c = NULL;

	fake_start(&f, serve_nothing);
	assert_int_equal(sl_client_connect(f.path, &c), 0);
	sl_client_set_timeout(c, 50 * 1000);
	assert_int_equal(sl_client_request(c, "STATUS", NULL), -ETIMEDOUT);
	sl_client_free(c);
	fake_stop(&f);
}

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

/* ---- securelinkctl helpers ---- */

static void test_base64url_rfc4648_vectors(void **state)
{
	/* RFC 4648, section 10, without the padding; and the two characters
	 * where base64url differs from base64 ("+/8=" there). */
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" },
		{ "f", "Zg" },
		{ "fo", "Zm8" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
		{ "\xfb\xff", "-_8" },
	};
	char out[32];

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		size_t n = strlen(v[i].in);

		assert_int_equal(base64url_length(n), strlen(v[i].out));
		assert_int_equal(base64url_encode(v[i].in, n, out), strlen(v[i].out));
		assert_string_equal(out, v[i].out);
	}
}

static void test_json_parses_status_shape(void **state)
{
	static const char text[] =
	    "{\"active_kid\":42,\"next_rotation\":1700000000,\"mode\":\"local\",\"keys\":["
	    "{\"kid\":41,\"state\":\"retired\",\"legacy\":false,\"published\":1,"
	    "\"activated\":2,\"retired\":3,\"drop_after\":null}],"
	    "\"nginx\":{\"last_reload\":null,\"ok\":false,\"error\":\"nginx: [emerg] \\\"x\\\"\\n"
	    "\\u00e9\\ud83d\\ude00\"},\"counters\":{\"signed\":18446744073709551615,"
	    "\"errors\":0,\"rotations\":1}}";
	_cleanup_(json_freep) Json *j = NULL;
	const Json *keys, *k;
	uint64_t v;

	assert_int_equal(json_parse(text, &j), 0);
	assert_int_equal(json_get_u64(json_get(j, "active_kid"), &v), 0);
	assert_int_equal(v, 42);
	keys = json_get(j, "keys");
	assert_int_equal(keys->type, JSON_ARRAY);
	assert_int_equal(keys->n, 1);
	k = keys->items[0];
	assert_string_equal(json_get(k, "state")->text, "retired");
	assert_int_equal(json_get(k, "legacy")->type, JSON_BOOLEAN);
	assert_false(json_get(k, "legacy")->boolean);
	assert_int_equal(json_get(k, "drop_after")->type, JSON_NULL);
	assert_int_equal(json_get_u64(json_get(k, "drop_after"), &v), -EINVAL);
	/* Escapes, and U+1F600 from a surrogate pair, as UTF-8. */
	assert_string_equal(json_get(json_get(j, "nginx"), "error")->text,
	                    "nginx: [emerg] \"x\"\n\xc3\xa9\xf0\x9f\x98\x80");
	assert_int_equal(json_get_u64(json_get(json_get(j, "counters"), "signed"), &v), 0);
	assert_true(v == UINT64_MAX);
	assert_null(json_get(j, "missing"));
	assert_null(json_get(keys, "kid"));
}

static void test_json_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"{\"a\":}",
		"{\"a\" 1}",
		"{a:1}",
		"[1,]",
		"[1 2]",
		"\"abc",
		"\"\\x\"",
		"\"\\u12\"",
		"\"\\u0000\"",
		"\"\\udc00\"",
		"\"\\ud800\"",
		"\"a\tb\"",
		"01",
		"1.",
		"-",
		"1e",
		"tru",
		"nul",
		"{} x",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	Json *j = NULL;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = json_parse(bad[i], &j);

		if (r != -EINVAL)
			fail_msg("json_parse(\"%s\") = %d, want -EINVAL", bad[i], r);
		assert_null(j);
	}
}

static void test_json_u64_refuses_non_integers(void **state)
{
	static const char *const bad[] = { "-1", "1.5", "1e3", "18446744073709551616", "\"1\"" };
	uint64_t v;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_(json_freep) Json *j = NULL;

		assert_int_equal(json_parse(bad[i], &j), 0);
		assert_true(json_get_u64(j, &v) < 0);
	}
}

int main(void)
{
	/* The fake server may write to a client that already hung up. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_missing_socket_is_enoent),
		cmocka_unit_test(test_connect_socket_without_listener_is_econnrefused),
		cmocka_unit_test(test_connect_overlong_path_is_enametoolong),
		cmocka_unit_test(test_connect_without_permission_is_eacces),
		cmocka_unit_test(test_socket_path_order_argument_env_default),
		cmocka_unit_test(test_connect_null_path_uses_env),
		cmocka_unit_test(test_request_returns_ok_text_and_err),
		cmocka_unit_test(test_request_reassembles_split_answer_and_strips_cr),
		cmocka_unit_test(test_request_refuses_unsendable_lines_without_sending),
		cmocka_unit_test(test_err_codes_map_to_enum_with_message),
		cmocka_unit_test(test_error_to_string_edges),
		cmocka_unit_test(test_malformed_answer_breaks_connection),
		cmocka_unit_test(test_err_without_code_is_ebadmsg),
		cmocka_unit_test(test_overlong_answer_is_emsgsize),
		cmocka_unit_test(test_daemon_closing_fails_request_and_stays_failed),
		cmocka_unit_test(test_daemon_closing_mid_batch_fails_whole_batch),
		cmocka_unit_test(test_refused_connection_request_gets_the_daemons_reason),
		cmocka_unit_test(test_refused_connection_batch_fails_whole_with_the_daemons_reason),
		cmocka_unit_test(test_silent_daemon_times_out),
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
		cmocka_unit_test(test_base64url_rfc4648_vectors),
		cmocka_unit_test(test_json_parses_status_shape),
		cmocka_unit_test(test_json_rejects_malformed),
		cmocka_unit_test(test_json_u64_refuses_non_integers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
