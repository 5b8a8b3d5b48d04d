/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake-daemon.h"
#include "securelink-client.h"
#include "util.h"

/* The client library: connecting and single requests, against the fake
 * securelinkd of fake-daemon.c. */

/* ---- connecting ---- */

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
