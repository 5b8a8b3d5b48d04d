/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "config.h"
#include "server.h"
#include "util.h"

/* The server runs its sd-event loop in a second thread; the test is the
 * client, with blocking sockets and a receive timeout, in the main thread.
 * Nothing is shared between the threads while the loop runs except through
 * the sockets (and a semaphore for the HOLD request). */

#define CLIENT_TIMEOUT_SEC 10

typedef struct TestServer {
	char dir[64];
	char path[128];
	Config *config;
	sd_event *event;
	Server *server;
	pthread_t thread;
	bool running;
	int exit_fd;
	sd_event_source *exit_source;
	sem_t held;
	Conn *held_conn;
	Conn *kept_conn;
	const char *kept_line;
	size_t kept_len;
} TestServer;

typedef struct Deferred {
	Conn *conn;
	char answer[64];
} Deferred;

static int on_deferred_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Deferred *d = userdata;

	conn_reply_deferred(d->conn, d->answer);
	free(d);
	return 0;
}

static bool has_prefix(const char *line, size_t len, const char *prefix)
{
	size_t l = strlen(prefix);

	return len >= l && memcmp(line, prefix, l) == 0;
}

/* An echo server with a few test verbs:
 *   DEFER x     answered "OK deferred x" 20 ms later from a timer
 *   DEFERLONG x the same, 600 ms later
 *   SYNCDEFER   deferred and answered inside the handler
 *   HOLD        deferred and never answered by the loop (the test does it)
 *   KEEP x      deferred, keeping only the pointer to its line
 *   RELEASE     answers the KEEP with the line it points to: "OK kept <line>"
 *   BUFS        server_connection_buffer_bytes(), asked inside the loop
 *   LEN ...     "OK len=<bytes the handler got>"
 *   PEER        the credentials
 *   ROTATE, IMPORT x, ROTATEX  "OK <line> admin=<peer->admin>"
 *   COUNT       server_n_connections()
 *   LIMIT1      applies a config with max_connections = 1
 *   ERROR       a bad-request error
 *   anything    "OK <line>" */
static void test_handler(void *userdata, Conn *c, const Peer *peer, char *line, size_t len)
{
	TestServer *t = userdata;

	if (has_prefix(line, len, "DEFER ") || has_prefix(line, len, "DEFERLONG ")) {
		bool slow = has_prefix(line, len, "DEFERLONG ");
		Deferred *d = calloc(1, sizeof(Deferred));

		assert_non_null(d);
		snprintf(d->answer, sizeof(d->answer), "OK deferred %s", strchr(line, ' ') + 1);
		d->conn = conn_defer(c);
		assert_int_equal(sd_event_add_time_relative(t->event, NULL, CLOCK_MONOTONIC,
		                                            (slow ? 600 : 20) * USEC_PER_MSEC, 1,
		                                            on_deferred_timer, d),
		                 0);
	} else if (len == 9 && streq(line, "SYNCDEFER")) {
		Conn *d = conn_defer(c);

		conn_reply_deferred(d, "OK sync");
	} else if (len == 4 && streq(line, "HOLD")) {
		t->held_conn = conn_defer(c);
		sem_post(&t->held);
	} else if (has_prefix(line, len, "KEEP ")) {
		t->kept_conn = conn_defer(c);
		t->kept_line = line;
		t->kept_len = len;
		sem_post(&t->held);
	} else if (len == 7 && streq(line, "RELEASE")) {
		char answer[128];

		assert_non_null(t->kept_conn);
		snprintf(answer, sizeof(answer), "OK kept %.*s", (int)t->kept_len, t->kept_line);
		conn_reply_deferred(TAKE_PTR(t->kept_conn), answer);
		conn_reply(c, "OK released");
	} else if (len == 4 && streq(line, "BUFS"))
		/* This connection's own output is drained (its client read
		 * every answer); its input buffer is counted. */
		conn_replyf(c, "OK %zu", server_connection_buffer_bytes(t->server));
	else if (has_prefix(line, len, "LEN"))
		conn_replyf(c, "OK len=%zu", len);
	else if (has_prefix(line, len, "ROTATE") || has_prefix(line, len, "IMPORT"))
		conn_replyf(c, "OK %s admin=%d", line, peer->admin);
	else if (len == 4 && streq(line, "PEER"))
		conn_replyf(c, "OK pid=%d uid=%u gid=%u admin=%d", (int)peer->pid,
		            (unsigned)peer->uid, (unsigned)peer->gid, peer->admin);
	else if (len == 5 && streq(line, "COUNT"))
		conn_replyf(c, "OK %u", server_n_connections(t->server));
	else if (len == 6 && streq(line, "LIMIT1")) {
		t->config->max_connections = 1;
		server_set_config(t->server, t->config);
		conn_reply(c, "OK");
	} else if (len == 5 && streq(line, "ERROR"))
		conn_reply_error(c, PROTO_BAD_REQUEST, "test error");
	else
		conn_replyf(c, "OK %.*s", (int)len, line);
}

static int on_exit_request(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *loop_thread(void *userdata)
{
	TestServer *t = userdata;

	assert_true(sd_event_loop(t->event) >= 0);
	return NULL;
}

static int setup(void **state)
{
	TestServer *t = calloc(1, sizeof(TestServer));

	assert_non_null(t);
	strcpy(t->dir, "/tmp/test-server-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/s.sock", t->dir);

	t->config = config_new();
	assert_non_null(t->config);
	free(t->config->socket);
	t->config->socket = strdup(t->path);
	free(t->config->admin_group);
	t->config->admin_group = strdup("securelink-test-no-such-group");
	t->config->max_connections = 16;
	t->config->idle_timeout = 30 * USEC_PER_SEC;

	assert_int_equal(sd_event_new(&t->event), 0);
	t->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(t->exit_fd >= 0);
	assert_int_equal(
	    sd_event_add_io(t->event, &t->exit_source, t->exit_fd, EPOLLIN, on_exit_request, t), 0);
	assert_int_equal(sem_init(&t->held, 0, 0), 0);
	*state = t;
	return 0;
}

/* Creates the server on t->config (the caller adjusts it first). */
static int server_start(TestServer *t)
{
	return server_new(t->event, t->config, test_handler, t, &t->server);
}

static void loop_start(TestServer *t)
{
	assert_int_equal(pthread_create(&t->thread, NULL, loop_thread, t), 0);
	t->running = true;
}

static void server_start_running(TestServer *t)
{
	assert_int_equal(server_start(t), 0);
	loop_start(t);
}

static void loop_stop(TestServer *t)
{
	uint64_t one = 1;

	if (!t->running)
		return;
	assert_int_equal(write(t->exit_fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(pthread_join(t->thread, NULL), 0);
	t->running = false;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	TestServer *t = *state;

	loop_stop(t);
	t->server = server_free(t->server);
	sd_event_source_unref(t->exit_source);
	sd_event_unref(t->event);
	close(t->exit_fd);
	sem_destroy(&t->held);
	config_free(t->config);
	(void)nftw(t->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

/* --- client side -------------------------------------------------------- */

static int client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_SEC };
	int fd;

	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

typedef struct Reader {
	int fd;
	size_t start, end;
	char buf[65536];
} Reader;

static Reader *reader_new(int fd)
{
	Reader *r = calloc(1, sizeof(Reader));

	assert_non_null(r);
	r->fd = fd;
	return r;
}

/* Reads one line without its LF into line. Returns its length, -1 at EOF,
 * or a negative errno (-EAGAIN: the receive timeout expired). */
static ssize_t read_line(Reader *r, char *line, size_t size)
{
	for (;;) {
		char *lf = memchr(r->buf + r->start, '\n', r->end - r->start);

		if (lf) {
			size_t l = (size_t)(lf - (r->buf + r->start));

			assert_true(l < size);
			memcpy(line, r->buf + r->start, l);
			line[l] = '\0';
			r->start += l + 1;
			return (ssize_t)l;
		}
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
		assert_true(r->end < sizeof(r->buf));

		ssize_t n = recv(r->fd, r->buf + r->end, sizeof(r->buf) - r->end, 0);
		if (n < 0)
			return -errno;
		if (n == 0)
			return r->end > 0 ? -EPROTO : -1;
		r->end += (size_t)n;
	}
}

static void expect_line(Reader *r, const char *expected)
{
	char line[16384];

	assert_true(read_line(r, line, sizeof(line)) >= 0);
	assert_string_equal(line, expected);
}

/* The server closed the connection: EOF, or ECONNRESET when it closed with
 * our bytes still unread in its socket. Never the receive timeout. */
static void expect_closed(Reader *r)
{
	char line[16384];
	ssize_t n = read_line(r, line, sizeof(line));

	if (n >= 0)
		fail_msg("expected the connection to be closed, got \"%s\"", line);
	assert_true(n == -1 || n == -ECONNRESET);
}

/* Sends req while reading answers (a client that sends its whole batch
 * before reading would deadlock against the server's backpressure), then
 * shuts down its sending side when shut is set, and reads until EOF or
 * until want_lines answers arrived. */
static char *exchange(int fd, const char *req, size_t len, bool shut, size_t want_lines,
                      size_t *ret_len)
{
	size_t sent = 0, got = 0, lines = 0, alloc = 1 << 20;
	char *out = malloc(alloc);
	bool eof = false, shut_done = false;

	assert_non_null(out);
	while (!eof && (want_lines == 0 || lines < want_lines)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (sent < len)
			p.events |= POLLOUT;
		else if (shut && !shut_done) {
			assert_int_equal(shutdown(fd, SHUT_WR), 0);
			shut_done = true;
		}
		assert_int_equal(poll(&p, 1, CLIENT_TIMEOUT_SEC * 1000), 1);

		if (p.revents & POLLOUT) {
			ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0)
				assert_int_equal(errno, EAGAIN);
			else
				sent += (size_t)n;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (got == alloc) {
				alloc *= 2;
				out = realloc(out, alloc);
				assert_non_null(out);
			}
			ssize_t n = recv(fd, out + got, alloc - got, MSG_DONTWAIT);
			if (n < 0)
				assert_int_equal(errno, EAGAIN);
			else if (n == 0)
				eof = true;
			else {
				for (ssize_t i = 0; i < n; i++)
					lines += out[got + (size_t)i] == '\n';
				got += (size_t)n;
			}
		}
	}
	assert_int_equal(sent, len);
	*ret_len = got;
	return out;
}

/* --- pipelining and framing --------------------------------------------- */

static void test_pipelined_requests_answered_in_order(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *req = malloc(2000 * 16);
	size_t len = 0;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	for (int i = 0; i < 2000; i++)
		len += (size_t)sprintf(req + len, "PING %d\n", i);
	send_all(fd, req, len);

	_cleanup_free_ Reader *r = reader_new(fd);
	for (int i = 0; i < 2000; i++) {
		char expected[32];

		snprintf(expected, sizeof(expected), "OK PING %d", i);
		expect_line(r, expected);
	}
	close(fd);
}

static void test_half_close_batch_gets_every_answer(void **state)
{
	TestServer *t = *state;
	/* Far more answers than the output bound holds, so the batch passes
	 * through backpressure pauses as `securelinkctl sign -` would. */
	const int n = 100000;
	_cleanup_free_ char *req = malloc((size_t)n * 16);
	_cleanup_free_ char *resp = NULL;
	size_t len = 0, resp_len, pos = 0;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	for (int i = 0; i < n; i++)
		len += (size_t)sprintf(req + len, "S %d\n", i);
	resp = exchange(fd, req, len, true, 0, &resp_len);

	for (int i = 0; i < n; i++) {
		char expected[32];
		int l = snprintf(expected, sizeof(expected), "OK S %d\n", i);

		assert_true(pos + (size_t)l <= resp_len);
		assert_memory_equal(resp + pos, expected, (size_t)l);
		pos += (size_t)l;
	}
	/* Everything answered, then EOF: nothing more. */
	assert_int_equal(pos, resp_len);
	close(fd);
}

static void test_half_close_drops_trailing_partial_line(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *resp = NULL;
	size_t resp_len;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	resp = exchange(fd, "A\nB\nPART", 8, true, 0, &resp_len);
	assert_int_equal(resp_len, strlen("OK A\nOK B\n"));
	assert_memory_equal(resp, "OK A\nOK B\n", resp_len);
	close(fd);
}

static void test_crlf_is_stripped(void **state)
{
	TestServer *t = *state;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_str(fd, "PING\r\nLEN abc\r\nLEN a\rb\n\r\n");
	expect_line(r, "OK PING");
	expect_line(r, "OK len=7");
	/* Only a CR right before the LF goes. */
	expect_line(r, "OK len=7");
	expect_line(r, "OK ");
	close(fd);
}

static void test_nul_byte_reaches_handler_with_length(void **state)
{
	TestServer *t = *state;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_all(fd, "LEN a\0b\nPING\n", 13);
	expect_line(r, "OK len=7");
	expect_line(r, "OK PING");
	close(fd);
}

static void test_error_reply_keeps_connection_usable(void **state)
{
	TestServer *t = *state;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_str(fd, "ERROR\nPING\n");
	expect_line(r, "ERR bad-request test error");
	expect_line(r, "OK PING");
	close(fd);
}

static void test_line_of_8192_bytes_with_lf_is_accepted(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *req = malloc(PROTO_LINE_MAX * 2);
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	/* 8191 bytes + LF: exactly the limit. */
	memcpy(req, "LEN", 3);
	memset(req + 3, 'x', PROTO_LINE_MAX - 1 - 3);
	req[PROTO_LINE_MAX - 1] = '\n';
	send_all(fd, req, PROTO_LINE_MAX);
	expect_line(r, "OK len=8191");

	/* 8190 bytes + CR + LF: also 8192 on the wire. */
	req[PROTO_LINE_MAX - 2] = '\r';
	send_all(fd, req, PROTO_LINE_MAX);
	expect_line(r, "OK len=8190");
	close(fd);
}

static void test_line_too_long_closes_after_error(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *req = malloc(PROTO_LINE_MAX * 2);
	size_t len = 0;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	/* 8192 bytes + LF: one byte over. Answers before it still come. */
	len += (size_t)sprintf(req, "PING 1\n");
	memset(req + len, 'x', PROTO_LINE_MAX);
	len += PROTO_LINE_MAX;
	len += (size_t)sprintf(req + len, "\nPING 2\n");
	send_all(fd, req, len);

	expect_line(r, "OK PING 1");
	expect_line(r, "ERR line-too-long request line longer than 8192 bytes");
	expect_closed(r);
	close(fd);
}

static void test_line_too_long_without_lf_closes(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *req = malloc(20000);
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	memset(req, 'y', 20000);
	send_all(fd, req, 20000);
	expect_line(r, "ERR line-too-long request line longer than 8192 bytes");
	expect_closed(r);
	close(fd);
}

static void test_errors_on_one_connection_leave_others_alone(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *req = malloc(PROTO_LINE_MAX + 1);
	int a, b;

	server_start_running(t);
	a = client_connect(t->path);
	b = client_connect(t->path);
	_cleanup_free_ Reader *ra = reader_new(a);
	_cleanup_free_ Reader *rb = reader_new(b);

	send_str(b, "B1\n");
	memset(req, 'z', PROTO_LINE_MAX + 1);
	send_all(a, req, PROTO_LINE_MAX + 1);
	expect_line(ra, "ERR line-too-long request line longer than 8192 bytes");
	expect_closed(ra);
	send_str(b, "B2\n");
	expect_line(rb, "OK B1");
	expect_line(rb, "OK B2");
	send_str(b, "COUNT\n");
	expect_line(rb, "OK 1");
	close(a);
	close(b);
}

/* --- deferred answers --------------------------------------------------- */

static void test_deferred_reply_keeps_order(void **state)
{
	TestServer *t = *state;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_str(fd, "A\nDEFER b\nC\nDEFER d\nDEFER e\nF\n");
	expect_line(r, "OK A");
	expect_line(r, "OK deferred b");
	expect_line(r, "OK C");
	expect_line(r, "OK deferred d");
	expect_line(r, "OK deferred e");
	expect_line(r, "OK F");
	close(fd);
}

static void test_deferred_reply_inside_handler_keeps_order(void **state)
{
	TestServer *t = *state;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_str(fd, "SYNCDEFER\nX\nSYNCDEFER\n");
	expect_line(r, "OK sync");
	expect_line(r, "OK X");
	expect_line(r, "OK sync");
	close(fd);
}

static void test_half_close_waits_for_deferred_reply(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *resp = NULL;
	size_t resp_len;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	resp = exchange(fd, "A\nDEFER b\nC\n", 12, true, 0, &resp_len);
	assert_int_equal(resp_len, strlen("OK A\nOK deferred b\nOK C\n"));
	assert_memory_equal(resp, "OK A\nOK deferred b\nOK C\n", resp_len);
	close(fd);
}

static void test_deferred_reply_after_close_is_dropped(void **state)
{
	TestServer *t = *state;
	struct timespec ts;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_str(fd, "HOLD\n");
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	ts.tv_sec += CLIENT_TIMEOUT_SEC;
	assert_int_equal(sem_timedwait(&t->held, &ts), 0);

	/* The server goes away with the answer still owed. */
	loop_stop(t);
	t->server = server_free(t->server);
	expect_closed(r);

	/* The Conn is still valid; the answer goes nowhere and the last
	 * reference is released (ASan would see a use after free or leak). */
	assert_non_null(t->held_conn);
	conn_reply_deferred(t->held_conn, "OK late");
	close(fd);
}

static void test_deferred_line_stays_valid_while_others_read(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *req = malloc(2000 * 48);
	_cleanup_free_ char *resp = NULL;
	struct timespec ts;
	size_t len = 0, resp_len;
	int a, b;

	server_start_running(t);
	a = client_connect(t->path);
	b = client_connect(t->path);
	_cleanup_free_ Reader *ra = reader_new(a);
	_cleanup_free_ Reader *rb = reader_new(b);

	send_str(a, "KEEP hello\n");
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	ts.tv_sec += CLIENT_TIMEOUT_SEC;
	assert_int_equal(sem_timedwait(&t->held, &ts), 0);

	/* Far more than one read's worth through the server meanwhile: the
	 * handler's pointer into the KEEP line must not see these bytes. */
	for (int i = 0; i < 2000; i++)
		len += (size_t)sprintf(req + len, "PING zzzzzzzzzzzzzzzzzzzzzzzzzzzzz %d\n", i);
	resp = exchange(b, req, len, false, 2000, &resp_len);
	assert_int_equal(resp_len, len + 2000 * strlen("OK "));

	send_str(b, "RELEASE\n");
	expect_line(rb, "OK released");
	expect_line(ra, "OK kept KEEP hello");
	send_str(a, "PING 2\n");
	expect_line(ra, "OK PING 2");
	close(a);
	close(b);
}

/* --- memory ------------------------------------------------------------- */

#define N_IDLE 200
/* What 200 idle connections may hold in buffers of their own, together:
 * far less than one page each (each held a 32 KiB read and a 16 KiB write
 * buffer for good once it had sent a request). */
#define IDLE_BUFFER_BOUND (N_IDLE * 64U)
/* The asking connection's own input buffer, held while its request is
 * processed (server.c's IN_BUF_SIZE). */
#define ASKER_IN_BUF (32U * 1024U)

static size_t ask_buffer_bytes(int fd, Reader *r)
{
	char line[64], *end;
	unsigned long long v;

	send_str(fd, "BUFS\n");
	assert_true(read_line(r, line, sizeof(line)) > 3);
	assert_memory_equal(line, "OK ", 3);
	errno = 0;
	v = strtoull(line + 3, &end, 10);
	assert_int_equal(errno, 0);
	assert_true(end != line + 3 && *end == '\0');
	return (size_t)v;
}

static void test_idle_connections_hold_no_buffers(void **state)
{
	TestServer *t = *state;
	/* 7000 bytes of a request held back: most of a maximal line. */
	const size_t part = 7000;
	_cleanup_free_ char *req = malloc(part + 16);
	int fds[N_IDLE], q, p;
	size_t idle, partial, len;

	t->config->max_connections = N_IDLE + 2;
	server_start_running(t);
	for (int i = 0; i < N_IDLE; i++) {
		char line[32];

		fds[i] = client_connect(t->path);
		snprintf(line, sizeof(line), "PING %d\n", i);
		send_str(fds[i], line);
	}
	for (int i = 0; i < N_IDLE; i++) {
		char expected[32];
		_cleanup_free_ Reader *r = reader_new(fds[i]);

		snprintf(expected, sizeof(expected), "OK PING %d", i);
		expect_line(r, expected);
	}

	q = client_connect(t->path);
	_cleanup_free_ Reader *rq = reader_new(q);
	idle = ask_buffer_bytes(q, rq);
	assert_true(idle < IDLE_BUFFER_BOUND + ASKER_IN_BUF);

	/* A partial line costs about its own size, and still works. The
	 * answer to PING proves the server read the rest of the send. */
	p = client_connect(t->path);
	_cleanup_free_ Reader *rp = reader_new(p);
	len = (size_t)sprintf(req, "PING\nLEN ");
	memset(req + len, 'x', part - 4);
	len += part - 4;
	send_all(p, req, len);
	expect_line(rp, "OK PING");
	partial = ask_buffer_bytes(q, rq);
	assert_true(partial >= idle + part);
	assert_true(partial < idle + part + 1024);

	send_str(p, "yz\n");
	expect_line(rp, "OK len=7002");
	assert_true(ask_buffer_bytes(q, rq) <= idle);

	/* The idle ones are all still served. */
	for (int i = 0; i < N_IDLE; i += 50) {
		_cleanup_free_ Reader *r = reader_new(fds[i]);

		send_str(fds[i], "AGAIN\n");
		expect_line(r, "OK AGAIN");
	}
	for (int i = 0; i < N_IDLE; i++)
		close(fds[i]);
	close(p);
	close(q);
}

/* --- limits ------------------------------------------------------------- */

static void test_max_connections_enforced_with_err_line(void **state)
{
	TestServer *t = *state;
	int a, b, c, d;

	t->config->max_connections = 2;
	server_start_running(t);
	a = client_connect(t->path);
	b = client_connect(t->path);
	_cleanup_free_ Reader *ra = reader_new(a);
	_cleanup_free_ Reader *rb = reader_new(b);
	/* Answers prove both were accepted before the third arrives. */
	send_str(a, "A\n");
	expect_line(ra, "OK A");
	send_str(b, "B\n");
	expect_line(rb, "OK B");

	c = client_connect(t->path);
	_cleanup_free_ Reader *rc = reader_new(c);
	expect_line(rc, "ERR unavailable too many connections (try again later)");
	expect_closed(rc);

	send_str(b, "COUNT\n");
	expect_line(rb, "OK 2");

	/* A slot freed is a slot usable again. */
	close(a);
	d = client_connect(t->path);
	_cleanup_free_ Reader *rd = reader_new(d);
	send_str(d, "D\n");
	expect_line(rd, "OK D");
	close(b);
	close(c);
	close(d);
}

static void test_set_config_applies_new_connection_limit(void **state)
{
	TestServer *t = *state;
	int a, b;

	server_start_running(t);
	a = client_connect(t->path);
	_cleanup_free_ Reader *ra = reader_new(a);
	send_str(a, "LIMIT1\n");
	expect_line(ra, "OK");

	b = client_connect(t->path);
	_cleanup_free_ Reader *rb = reader_new(b);
	expect_line(rb, "ERR unavailable too many connections (try again later)");
	expect_closed(rb);

	/* The connection already there is kept. */
	send_str(a, "A\n");
	expect_line(ra, "OK A");
	close(a);
	close(b);
}

static void test_idle_timeout_closes_half_line_client(void **state)
{
	TestServer *t = *state;
	int fd;

	t->config->idle_timeout = 200 * USEC_PER_MSEC;
	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	/* Bytes, but never a complete request: not activity. */
	send_str(fd, "PIN");
	expect_closed(r);
	close(fd);
}

static void test_idle_timeout_spares_connection_waiting_for_deferred_answer(void **state)
{
	TestServer *t = *state;
	int fd;

	t->config->idle_timeout = 200 * USEC_PER_MSEC;
	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	/* The answer takes three idle timeouts; the client waits for us. */
	send_str(fd, "DEFERLONG x\n");
	expect_line(r, "OK deferred x");
	close(fd);
}

/* Sends PING lines without reading until the socket is full. Returns how
 * many complete lines went out. */
static size_t fill_until_blocked(int fd, size_t limit_bytes)
{
	static const char chunk[] = "PING\nPING\nPING\nPING\nPING\nPING\nPING\nPING\n";
	size_t sent = 0;

	for (;;) {
		ssize_t n = send(fd, chunk, sizeof(chunk) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		sent += (size_t)n;
		/* Without backpressure the server would read forever. */
		assert_true(sent < limit_bytes);
	}
	/* Finish the line a short send cut, so every line is whole. */
	while (sent % 5 != 0) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		size_t rest = 5 - sent % 5;

		assert_int_equal(poll(&p, 1, CLIENT_TIMEOUT_SEC * 1000), 1);
		ssize_t n = send(fd, "PING\n" + (5 - rest), rest, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			sent += (size_t)n;
	}
	return sent / 5;
}

static void test_backpressure_stops_reading_and_resumes(void **state)
{
	TestServer *t = *state;
	_cleanup_free_ char *resp = NULL;
	size_t n_lines, resp_len;
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	n_lines = fill_until_blocked(fd, 64U * 1024U * 1024U);
	assert_true(n_lines > 0);

	/* Now read: every request sent gets its answer, in order. */
	resp = exchange(fd, "", 0, true, 0, &resp_len);
	assert_int_equal(resp_len, n_lines * strlen("OK PING\n"));
	for (size_t i = 0; i < n_lines; i++)
		assert_memory_equal(resp + i * 8, "OK PING\n", 8);
	close(fd);
}

static void test_client_that_never_reads_is_closed_after_idle_timeout(void **state)
{
	TestServer *t = *state;
	struct pollfd p;
	int fd;

	t->config->idle_timeout = 200 * USEC_PER_MSEC;
	server_start_running(t);
	fd = client_connect(t->path);
	(void)fill_until_blocked(fd, 64U * 1024U * 1024U);

	/* Our receive queue is full of answers, so POLLIN says nothing; the
	 * server closing shows as POLLHUP. */
	p = (struct pollfd){ .fd = fd, .events = 0 };
	assert_int_equal(poll(&p, 1, CLIENT_TIMEOUT_SEC * 1000), 1);
	assert_true(p.revents & (POLLHUP | POLLERR));
	close(fd);
}

/* --- credentials -------------------------------------------------------- */

static void test_peer_credentials_match_client(void **state)
{
	TestServer *t = *state;
	char expected[128];
	int fd;

	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	/* admin is looked up for ROTATE and IMPORT only. */
	send_str(fd, "PEER\n");
	snprintf(expected, sizeof(expected), "OK pid=%d uid=%u gid=%u admin=0", (int)getpid(),
	         (unsigned)getuid(), (unsigned)getgid());
	expect_line(r, expected);
	/* admin_group does not exist: only root is admin. */
	send_str(fd, "ROTATE\n");
	snprintf(expected, sizeof(expected), "OK ROTATE admin=%d", getuid() == 0);
	expect_line(r, expected);
	close(fd);
}

static void test_member_of_admin_group_is_admin(void **state)
{
	TestServer *t = *state;
	struct group *gr = getgrgid(getgid());
	char expected[128];
	int fd;

	if (!gr)
		skip();
	free(t->config->admin_group);
	t->config->admin_group = strdup(gr->gr_name);
	server_start_running(t);
	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);

	send_str(fd, "ROTATE revoke\nIMPORT x\nROTATEX\nIMPORTED x\nPEER\n");
	expect_line(r, "OK ROTATE revoke admin=1");
	expect_line(r, "OK IMPORT x admin=1");
	/* Not the verbs: not looked up, not left over from the line before. */
	expect_line(r, "OK ROTATEX admin=0");
	expect_line(r, "OK IMPORTED x admin=0");
	snprintf(expected, sizeof(expected), "OK pid=%d uid=%u gid=%u admin=0", (int)getpid(),
	         (unsigned)getuid(), (unsigned)getgid());
	expect_line(r, expected);
	close(fd);
}

/* --- the socket file ---------------------------------------------------- */

static void test_socket_mode_is_0660_and_unlinked_on_free(void **state)
{
	TestServer *t = *state;
	struct stat st;

	/* Whatever the umask says. */
	mode_t old = umask(0);
	assert_int_equal(server_start(t), 0);
	umask(old);

	assert_int_equal(lstat(t->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	t->server = server_free(t->server);
	assert_int_equal(lstat(t->path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_missing_parent_directory_is_created_0755(void **state)
{
	TestServer *t = *state;
	char path[320], dir[256];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/run/securelink", t->dir);
	snprintf(path, sizeof(path), "%s/securelinkd.sock", dir);
	free(t->config->socket);
	t->config->socket = strdup(path);

	mode_t old = umask(077);
	assert_int_equal(server_start(t), 0);
	umask(old);

	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
}

static int bind_socket(const char *path, bool do_listen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static void test_stale_socket_file_is_replaced(void **state)
{
	TestServer *t = *state;
	struct stat before, after;
	int fd;

	/* A daemon that died: its socket file stays, nobody listens. */
	close(bind_socket(t->path, true));
	/* A mode the server would never set marks the old file. */
	assert_int_equal(chmod(t->path, 0604), 0);
	assert_int_equal(lstat(t->path, &before), 0);

	server_start_running(t);
	assert_int_equal(lstat(t->path, &after), 0);
	assert_true(S_ISSOCK(after.st_mode));
	assert_int_equal(before.st_mode & 07777, 0604);
	assert_int_equal(after.st_mode & 07777, 0660);

	fd = client_connect(t->path);
	_cleanup_free_ Reader *r = reader_new(fd);
	send_str(fd, "PING\n");
	expect_line(r, "OK PING");
	close(fd);
}

static void test_live_socket_is_eaddrinuse(void **state)
{
	TestServer *t = *state;
	int live = bind_socket(t->path, true);
	int fd;

	assert_int_equal(server_start(t), -EADDRINUSE);
	assert_null(t->server);

	/* The other server's socket is still there and still works. */
	fd = client_connect(t->path);
	close(fd);
	close(live);
}

static void test_regular_file_at_path_is_eexist_and_untouched(void **state)
{
	TestServer *t = *state;
	char buf[64] = { 0 };
	struct stat st;
	int fd;

	fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0640), 0);
	assert_int_equal(write(fd, "keep me\n", 8), 8);
	close(fd);

	assert_int_equal(server_start(t), -EEXIST);
	assert_null(t->server);

	assert_int_equal(lstat(t->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	fd = open(t->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "keep me\n");
	close(fd);
}

static void test_socket_path_too_long_is_enametoolong(void **state)
{
	TestServer *t = *state;
	char path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	free(t->config->socket);
	t->config->socket = strdup(path);
	assert_int_equal(server_start(t), -ENAMETOOLONG);
}

static void test_free_leaves_socket_file_another_server_bound(void **state)
{
	TestServer *t = *state;
	struct stat st;
	int other;

	assert_int_equal(server_start(t), 0);
	/* Someone replaced our socket file meanwhile. */
	assert_int_equal(unlink(t->path), 0);
	other = bind_socket(t->path, true);

	t->server = server_free(t->server);
	assert_int_equal(lstat(t->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	close(other);
}

/* --- socket activation -------------------------------------------------- */

/* fd 3 (SD_LISTEN_FDS_START) is held by a placeholder from main() on, so
 * that the fixtures' own descriptors (the event loop's epoll fd) never land
 * there; the socket activation tests swap it for the socket to pass. */
static bool fd3_reserved;

static void fd3_reserve(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	if (fd != SD_LISTEN_FDS_START) {
		assert_int_equal(dup2(fd, SD_LISTEN_FDS_START), SD_LISTEN_FDS_START);
		close(fd);
	}
}

static bool fd3_is_free(void)
{
	return fcntl(SD_LISTEN_FDS_START, F_GETFD) < 0 && errno == EBADF;
}

static void set_listen_env(void)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_int_equal(setenv("LISTEN_PID", pid, 1), 0);
	assert_int_equal(setenv("LISTEN_FDS", "1", 1), 0);
}

static void test_socket_activation_uses_passed_socket(void **state)
{
	TestServer *t = *state;
	char passed[256];
	struct stat st;
	int fd, lfd;

	if (!fd3_reserved)
		skip();
	snprintf(passed, sizeof(passed), "%s/passed.sock", t->dir);
	lfd = bind_socket(passed, true);
	assert_int_equal(dup2(lfd, SD_LISTEN_FDS_START), SD_LISTEN_FDS_START);
	close(lfd);
	set_listen_env();

	server_start_running(t);
	/* The environment is consumed, and the configured path untouched. */
	assert_null(getenv("LISTEN_FDS"));
	assert_int_equal(lstat(t->path, &st), -1);

	fd = client_connect(passed);
	_cleanup_free_ Reader *r = reader_new(fd);
	send_str(fd, "PING\n");
	expect_line(r, "OK PING");
	close(fd);

	/* The server owns the passed socket and closes it. */
	loop_stop(t);
	t->server = server_free(t->server);
	assert_true(fd3_is_free());
	fd3_reserve();
}

static void test_socket_activation_rejects_non_socket(void **state)
{
	TestServer *t = *state;
	int p[2];

	if (!fd3_reserved)
		skip();
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(dup2(p[0], SD_LISTEN_FDS_START), SD_LISTEN_FDS_START);
	set_listen_env();

	assert_int_equal(server_start(t), -ENOTSOCK);
	/* Not ours to close on failure: the daemon exits anyway. */
	assert_false(fd3_is_free());
	fd3_reserve();
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_pipelined_requests_answered_in_order),
		T(test_half_close_batch_gets_every_answer),
		T(test_half_close_drops_trailing_partial_line),
		T(test_crlf_is_stripped),
		T(test_nul_byte_reaches_handler_with_length),
		T(test_error_reply_keeps_connection_usable),
		T(test_line_of_8192_bytes_with_lf_is_accepted),
		T(test_line_too_long_closes_after_error),
		T(test_line_too_long_without_lf_closes),
		T(test_errors_on_one_connection_leave_others_alone),
		T(test_deferred_reply_keeps_order),
		T(test_deferred_reply_inside_handler_keeps_order),
		T(test_half_close_waits_for_deferred_reply),
		T(test_deferred_reply_after_close_is_dropped),
		T(test_deferred_line_stays_valid_while_others_read),
		T(test_idle_connections_hold_no_buffers),
		T(test_max_connections_enforced_with_err_line),
		T(test_set_config_applies_new_connection_limit),
		T(test_idle_timeout_closes_half_line_client),
		T(test_idle_timeout_spares_connection_waiting_for_deferred_answer),
		T(test_backpressure_stops_reading_and_resumes),
		T(test_client_that_never_reads_is_closed_after_idle_timeout),
		T(test_peer_credentials_match_client),
		T(test_member_of_admin_group_is_admin),
		T(test_socket_mode_is_0660_and_unlinked_on_free),
		T(test_missing_parent_directory_is_created_0755),
		T(test_stale_socket_file_is_replaced),
		T(test_live_socket_is_eaddrinuse),
		T(test_regular_file_at_path_is_eexist_and_untouched),
		T(test_socket_path_too_long_is_enametoolong),
		T(test_free_leaves_socket_file_another_server_bound),
		T(test_socket_activation_uses_passed_socket),
		T(test_socket_activation_rejects_non_socket),
#undef T
	};

	if (fd3_is_free()) {
		fd3_reserve();
		fd3_reserved = true;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
