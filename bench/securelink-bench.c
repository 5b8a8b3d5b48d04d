/* SPDX-License-Identifier: MIT */
/* securelink-bench: measures a running securelinkd over its socket, and the
 * baselines the targets are ratios of, in the same run on the same machine.
 *
 *   securelink-bench socket --socket PATH --dir DIR [--daemon-pid PID] --json FILE
 *                    [--seconds S] [--only PARTS]
 *       rss:       daemon RSS with 1,000 idle connections (needs --daemon-pid)
 *       roundtrip: sequential SIGN (latency percentiles) interleaved with an
 *                  echo ping-pong over a Unix socket in DIR, the echo in a
 *                  thread and in a process, and one that hashes each line
 *                  (MD5), this client on the daemon's CPU and on the other
 *                  in turn; the echo in batches of 256
 *       cliff:     an epoll echo that spins 0..2000 ns per request, this
 *                  client on the echo's CPU and on the other
 *       pipelined: SIGN with 1..1024 requests in flight on one connection;
 *                  then depth 256 in rounds with `openssl speed -bytes 64
 *                  md5` on the daemon's CPU, this client on the same CPU
 *                  (the target) and on the other
 *       clients:   1..256 concurrent clients, one request in flight each
 *       paced:     256 clients asking at a fixed total rate: 5,120/s in
 *                  five rounds (the target), then doubled each step from
 *                  5,120/s; latency percentiles
 *       verify:    VERIFY with 256 in flight
 *       grant:     SIGN of directory grants (path form, cookie form) at
 *                  depth 256 against file SIGN at depth 256, alternating
 *                  in rounds
 *       library:   the C library's sl_client_sign_many()
 *   securelink-bench rotate --socket PATH --count N --activation-delay-ms D --json FILE
 *                    [--nginx-test "CMD ARGS"] [--nginx-pidfile FILE]
 *       N ROTATE round trips; with the nginx options also the test command
 *       alone and a reload alone (SIGHUP, then what securelinkd waits for),
 *       so that the daemon's own part of a rotation can be told apart.
 *
 * With --daemon-pid the daemon runs on CPU 0 while this process (and every
 * thread it starts) runs on CPU 1, except where a part above says it moves
 * to CPU 0, and every echo on CPU 0 too; the daemon's own affinity comes
 * back at the end.
 *
 * bench/run starts nginx and the daemon and calls this; it is never part of
 * the test suite. Numbers go to the JSON file; progress to stderr. Each
 * daemon-side rate comes with the daemon's CPU time per request (from
 * /proc/PID/schedstat), which other load on the machine moves much less. */

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The hashing echo uses MD5 as securelinkd does (see daemon/sign.c). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/md5.h>

#include "securelink-client.h"

#define STRLEN(s)     (sizeof(s) - 1)
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define N_TARGETS     1024U /* distinct request lines; every depth divides it */
/* A typical private file; "SIGN " + this + LF is 53 bytes, the size of the
 * echo baseline's line. */
#define TARGET_FMT "/media/private/docs/quarterly-report-%06u.pdf"
#define IDLE_CONNS 1000U
#define READ_BUF   (64U * 1024U)

static const unsigned depths[] = { 1, 4, 16, 64, 256, 1024 };
static const unsigned client_counts[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "securelink-bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

/* --- latency samples --------------------------------------------------- */

typedef struct Samples {
	uint64_t *v;
	size_t n, size;
} Samples;

static void samples_add(Samples *s, uint64_t x)
{
	if (s->n == s->size) {
		size_t size = s->size ? s->size * 2 : 4096;
		uint64_t *v = realloc(s->v, size * sizeof(uint64_t));

		if (!v)
			die("samples", -ENOMEM);
		s->v = v;
		s->size = size;
	}
	s->v[s->n++] = x;
}

static void samples_append(Samples *s, const Samples *o)
{
	for (size_t i = 0; i < o->n; i++)
		samples_add(s, o->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const Samples *s, double p)
{
	size_t i;

	if (s->n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)s->n + 0.999999);
	if (i == 0)
		i = 1;
	if (i > s->n)
		i = s->n;
	return (double)s->v[i - 1] / 1000.0;
}

static const char *only; /* --only: comma-separated parts, NULL for all */
static pid_t daemon_pid;

static bool want(const char *part)
{
	size_t l = strlen(part);

	if (!only)
		return true;
	for (const char *p = only; *p;) {
		size_t n = strcspn(p, ",");
		if (n == l && strncmp(p, part, l) == 0)
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/* Nanoseconds the daemon has run on a CPU: how much work a request costs
 * it, which other load on the machine does not change much, unlike the
 * rates. 0 without a pid. */
static uint64_t daemon_cpu_ns(void)
{
	char path[64];
	unsigned long long v = 0;
	FILE *f;

	if (daemon_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)daemon_pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* Where the measurements run. A single-threaded server (the daemon, an
 * echo) on one CPU, its client on the other: a VM's two vCPUs differ, and a
 * ping-pong on one CPU costs a fraction of one across two, so a baseline and
 * what it is compared with must be placed alike. */
static int server_cpu(void)
{
	return 0;
}

static int client_cpu(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0;
}

static void set_affinity(pid_t pid, const cpu_set_t *set)
{
	if (sched_setaffinity(pid, sizeof(*set), set) < 0)
		die("sched_setaffinity", -errno);
}

static void pin(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	set_affinity(pid, &set);
}

/* --- requests and answers ----------------------------------------------- */

typedef struct Lines {
	char *buf;
	size_t *off; /* N_TARGETS + 1 offsets into buf */
} Lines;

static Lines lines_new(const char *verb, char *const *args)
{
	Lines l = { .off = calloc(N_TARGETS + 1, sizeof(size_t)) };
	size_t size = 0, len = 0;

	if (!l.off)
		die("lines", -ENOMEM);
	for (unsigned i = 0; i < N_TARGETS; i++) {
		char target[128];
		const char *a = args ? args[i] : target;
		size_t need;

		if (!args)
			snprintf(target, sizeof(target), TARGET_FMT, i);
		need = strlen(verb) + 1 + strlen(a) + 2;
		if (len + need > size) {
			size = (size + need) * 2;
			l.buf = realloc(l.buf, size);
			if (!l.buf)
				die("lines", -ENOMEM);
		}
		l.off[i] = len;
		len += (size_t)sprintf(l.buf + len, "%s %s\n", verb, a);
	}
	l.off[N_TARGETS] = len;
	return l;
}

static void lines_free(Lines *l)
{
	free(l->buf);
	free(l->off);
}

typedef struct Conn {
	int fd;
	char expect;   /* first byte of every good answer */
	bool at_start; /* the next byte read starts an answer */
	uint64_t bad;
	char first_bad[120];
} Conn;

static int unix_connect(const char *path, int *ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret = fd;
	return 0;
}

static Conn conn_open(const char *path, char expect)
{
	Conn c = { .expect = expect, .at_start = true };
	int r = unix_connect(path, &c.fd);

	if (r < 0)
		die(path, r);
	return c;
}

/* Counts the complete answers in buf, checking their first byte. */
static size_t scan(Conn *c, const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;
	size_t lines = 0;

	while (p < end) {
		const char *lf;

		if (c->at_start) {
			if (*p != c->expect && c->bad++ == 0) {
				size_t k = (size_t)(end - p) < sizeof(c->first_bad) - 1
				               ? (size_t)(end - p)
				               : sizeof(c->first_bad) - 1;
				memcpy(c->first_bad, p, k);
				c->first_bad[k] = '\0';
				c->first_bad[strcspn(c->first_bad, "\n")] = '\0';
			}
			c->at_start = false;
		}
		lf = memchr(p, '\n', (size_t)(end - p));
		if (!lf)
			break;
		lines++;
		c->at_start = true;
		p = lf + 1;
	}
	return lines;
}

/* Sends len bytes holding n request lines and reads the n answers, writing
 * and reading at the same time so that neither side can block the other. */
static int exchange(Conn *c, const char *req, size_t len, size_t n)
{
	char buf[READ_BUF];
	size_t sent = 0, got = 0;

	while (sent < len || got < n) {
		bool out_blocked = false, in_blocked = false;
		ssize_t k;

		if (sent < len) {
			k = send(c->fd, req + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k >= 0)
				sent += (size_t)k;
			else if (errno == EAGAIN)
				out_blocked = true;
			else if (errno != EINTR)
				return -errno;
		}
		if (got < n) {
			/* Block in recv() only once everything is sent. */
			k = recv(c->fd, buf, sizeof(buf), sent < len ? MSG_DONTWAIT : 0);
			if (k == 0)
				return -ECONNRESET;
			if (k > 0)
				got += scan(c, buf, (size_t)k);
			else if (errno == EAGAIN)
				in_blocked = true;
			else if (errno != EINTR)
				return -errno;
		} else
			in_blocked = true;
		if (out_blocked && in_blocked) {
			struct pollfd p = { .fd = c->fd,
				            .events = (short)(POLLOUT | (got < n ? POLLIN : 0)) };
			(void)poll(&p, 1, -1);
		}
	}
	return 0;
}

/* One request, its answer as a malloc'd string (without "OK "/LF). */
static int request(int fd, const char *line, char **ret)
{
	size_t len = strlen(line), have = 0, size = 4096;
	char *buf = malloc(size), *lf;

	if (!buf)
		return -ENOMEM;
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		free(buf);
		return -EIO;
	}
	for (;;) {
		ssize_t k = recv(fd, buf + have, size - have - 1, 0);

		if (k <= 0) {
			free(buf);
			return k == 0 ? -ECONNRESET : -errno;
		}
		have += (size_t)k;
		buf[have] = '\0';
		lf = strchr(buf, '\n');
		if (lf)
			break;
		if (have + 1 == size) {
			char *b = realloc(buf, size * 2);
			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
			size *= 2;
		}
	}
	*lf = '\0';
	*ret = buf;
	return 0;
}

static void check_bad(const Conn *c, const char *what)
{
	if (c->bad > 0) {
		fprintf(stderr, "securelink-bench: %s: %" PRIu64 " unexpected answers, first: %s\n",
		        what, c->bad, c->first_bad);
		exit(1);
	}
}

/* Lines per second at batches of depth (a divisor of N_TARGETS): send
 * depth lines, read depth answers, repeat, for `seconds`. */
static double run_batches(const char *path, char expect, const Lines *l, unsigned depth,
                          double seconds, const char *what)
{
	Conn c = conn_open(path, expect);
	uint64_t start, end, deadline, n = 0;
	unsigned i = 0;
	int r;

	/* A short warm-up: first-touch of the daemon's buffers, caches. */
	deadline = now_ns() + 100000000ULL;
	while (now_ns() < deadline) {
		unsigned a = (i * depth) % N_TARGETS;
		r = exchange(&c, l->buf + l->off[a], l->off[a + depth] - l->off[a], depth);
		if (r < 0)
			die(what, r);
		i++;
	}

	start = now_ns();
	deadline = start + (uint64_t)(seconds * 1e9);
	do {
		unsigned a = (i * depth) % N_TARGETS;
		r = exchange(&c, l->buf + l->off[a], l->off[a + depth] - l->off[a], depth);
		if (r < 0)
			die(what, r);
		n += depth;
		i++;
	} while ((end = now_ns()) < deadline);
	check_bad(&c, what);
	close(c.fd);
	return (double)n / ((double)(end - start) / 1e9);
}

/* Lines per second with up to depth requests in flight on one connection:
 * whenever answers have brought the window down to half, it is filled again
 * with one send(), so the daemon and this client work at the same time
 * instead of taking turns. (Refilling at half beat refilling at 3/4 or 7/8:
 * fewer, larger writes, and every syscall and wakeup is dear on this VM.) */
static double run_window(const char *path, char expect, const Lines *l, unsigned depth,
                         double seconds, const char *what)
{
	Conn c = conn_open(path, expect);
	char buf[READ_BUF];
	size_t next = 0, cur = 0, end = 0;
	uint64_t queued = 0, answered = 0, a0 = 0, a1 = 0, t0 = 0, t1 = 0;
	uint64_t low = depth / 2;
	uint64_t warm = now_ns() + 100000000ULL, deadline = UINT64_MAX;
	bool stopping = false;

	if (fcntl(c.fd, F_SETFL, O_NONBLOCK) < 0)
		die(what, -errno);
	for (;;) {
		bool out_blocked = true, in_blocked = true;
		ssize_t k;

		if (cur == end && !stopping && queued - answered <= low) {
			size_t n = depth - (queued - answered);

			if (n > N_TARGETS - next)
				n = N_TARGETS - next;
			cur = l->off[next];
			end = l->off[next + n];
			next = (next + n) % N_TARGETS;
			queued += n;
		}
		if (cur < end) {
			k = send(c.fd, l->buf + cur, end - cur, MSG_NOSIGNAL);
			if (k > 0) {
				cur += (size_t)k;
				out_blocked = false;
			} else if (k < 0 && errno != EAGAIN && errno != EINTR)
				die(what, -errno);
		}
		k = recv(c.fd, buf, sizeof(buf), 0);
		if (k == 0)
			die(what, -ECONNRESET);
		if (k > 0) {
			uint64_t now;

			answered += scan(&c, buf, (size_t)k);
			in_blocked = false;
			now = now_ns();
			if (t0 == 0 && now >= warm) {
				t0 = now;
				a0 = answered;
				deadline = now + (uint64_t)(seconds * 1e9);
			} else if (!stopping && now >= deadline) {
				t1 = now;
				a1 = answered;
				stopping = true;
			}
		} else if (errno != EAGAIN && errno != EINTR)
			die(what, -errno);
		if (stopping && answered == queued && cur == end)
			break;
		if (out_blocked && in_blocked) {
			struct pollfd p = { .fd = c.fd,
				            .events = (short)(POLLIN | (cur < end ? POLLOUT : 0)) };
			(void)poll(&p, 1, -1);
		}
	}
	check_bad(&c, what);
	close(c.fd);
	return (double)(a1 - a0) / ((double)(t1 - t0) / 1e9);
}

/* One request in flight: round trips per second and every latency. */
static double run_sequential(Conn *c, const Lines *l, double seconds, Samples *lat,
                             const char *what)
{
	uint64_t start, t, deadline, n = 0;
	unsigned i = 0;
	int r;

	start = now_ns();
	deadline = start + (uint64_t)(seconds * 1e9);
	t = start;
	do {
		unsigned a = i++ % N_TARGETS;
		uint64_t t1;

		r = exchange(c, l->buf + l->off[a], l->off[a + 1] - l->off[a], 1);
		if (r < 0)
			die(what, r);
		t1 = now_ns();
		samples_add(lat, t1 - t);
		t = t1;
		n++;
	} while (t < deadline);
	return (double)n / ((double)(t - start) / 1e9);
}

/* --- the echo baseline -------------------------------------------------- */

/* Set in the forked "hashing" echo only: it computes the MD5 of each line
 * before answering, the one computation no signer can skip. */
static bool echo_hash;
static volatile unsigned char echo_hash_sink;

static void echo_hash_lines(const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n, *lf;

	while ((lf = memchr(p, '\n', (size_t)(end - p)))) {
		unsigned char digest[MD5_DIGEST_LENGTH];
		MD5_CTX ctx;

		MD5_Init(&ctx);
		MD5_Update(&ctx, p, (size_t)(lf - p));
		MD5_Final(digest, &ctx);
		echo_hash_sink ^= digest[0];
		p = lf + 1;
	}
}

static void *echo_thread(void *arg)
{
	int lfd = *(int *)arg;
	static char buf[READ_BUF];

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* shut down */
		}
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf)), w = 0;

			if (n <= 0)
				break;
			if (echo_hash)
				echo_hash_lines(buf, (size_t)n);
			while (w < n) {
				ssize_t k = write(fd, buf + w, (size_t)(n - w));
				if (k <= 0)
					break;
				w += k;
			}
			if (w < n)
				break;
		}
		close(fd);
	}
	return NULL;
}

/* --- JSON out ------------------------------------------------------------ */

static FILE *json;
static bool json_first = true;

static void json_key(const char *key)
{
	fprintf(json, "%s\n  \"%s\": ", json_first ? "" : ",", key);
	json_first = false;
}

static void json_num(const char *key, double v)
{
	json_key(key);
	fprintf(json, "%.6g", v);
}

/* --- daemon memory ------------------------------------------------------- */

static long status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void bench_rss(const char *path, pid_t pid)
{
	static int fds[IDLE_CONNS];
	long before = status_kb(pid, "VmRSS"), with;
	char buf[64];

	fprintf(stderr, "  daemon RSS with %u idle connections\n", IDLE_CONNS);
	for (unsigned i = 0; i < IDLE_CONNS; i++) {
		int r = unix_connect(path, &fds[i]);
		if (r < 0)
			die("idle connection", r);
		/* One request each: the connection's buffers exist, as they
		 * would for an app that signed once and keeps the socket. */
		if (send(fds[i], "PING\n", 5, MSG_NOSIGNAL) != 5)
			die("idle PING", -EIO);
	}
	for (unsigned i = 0; i < IDLE_CONNS; i++) {
		ssize_t k = recv(fds[i], buf, sizeof(buf) - 1, 0);
		if (k <= 0 || strncmp(buf, "OK pong", 7) != 0)
			die("idle PING answer", k < 0 ? -errno : -EPROTO);
	}
	with = status_kb(pid, "VmRSS");
	json_key("rss");
	fprintf(json, "{\"connections\": %u, \"before_kib\": %ld, \"with_kib\": %ld}", IDLE_CONNS,
	        before, with);
	for (unsigned i = 0; i < IDLE_CONNS; i++)
		close(fds[i]);
}

/* --- concurrent clients -------------------------------------------------- */

typedef struct Client {
	pthread_t thread;
	const char *path;
	const Lines *lines;
	unsigned offset;
	pthread_barrier_t *barrier;
	const uint64_t *deadline;
	Samples lat;
	uint64_t n;
} Client;

static void *client_thread(void *arg)
{
	Client *cl = arg;
	Conn c = conn_open(cl->path, 'O');
	unsigned i = cl->offset;
	uint64_t t;

	pthread_barrier_wait(cl->barrier);
	t = now_ns();
	while (t < *cl->deadline) {
		unsigned a = i++ % N_TARGETS;
		uint64_t t1;
		int r = exchange(&c, cl->lines->buf + cl->lines->off[a],
		                 cl->lines->off[a + 1] - cl->lines->off[a], 1);

		if (r < 0)
			die("client", r);
		t1 = now_ns();
		samples_add(&cl->lat, t1 - t);
		t = t1;
		cl->n++;
	}
	check_bad(&c, "concurrent clients");
	close(c.fd);
	return NULL;
}

static void bench_clients(const char *path, const Lines *l, double seconds)
{
	json_key("clients");
	fputc('[', json);
	for (size_t k = 0; k < sizeof(client_counts) / sizeof(client_counts[0]); k++) {
		unsigned n = client_counts[k];
		Client *cls = calloc(n, sizeof(Client));
		pthread_barrier_t barrier;
		uint64_t deadline = UINT64_MAX, total = 0, start;
		Samples all = {};

		if (!cls)
			die("clients", -ENOMEM);
		pthread_barrier_init(&barrier, NULL, n + 1);
		for (unsigned i = 0; i < n; i++) {
			cls[i] = (Client){ .path = path,
				           .lines = l,
				           .offset = i * 37,
				           .barrier = &barrier,
				           .deadline = &deadline };
			if (pthread_create(&cls[i].thread, NULL, client_thread, &cls[i]) != 0)
				die("pthread_create", -EAGAIN);
		}
		/* Every client is connected before the clock starts. */
		uint64_t cpu = daemon_cpu_ns();
		start = now_ns();
		__atomic_store_n(&deadline, start + (uint64_t)(seconds * 1e9), __ATOMIC_SEQ_CST);
		pthread_barrier_wait(&barrier);
		for (unsigned i = 0; i < n; i++) {
			pthread_join(cls[i].thread, NULL);
			total += cls[i].n;
			samples_append(&all, &cls[i].lat);
			free(cls[i].lat.v);
		}
		double elapsed = (double)(now_ns() - start) / 1e9;
		double cpu_us = (double)(daemon_cpu_ns() - cpu) / 1e3 / (double)(total ? total : 1);
		qsort(all.v, all.n, sizeof(uint64_t), cmp_u64);
		fprintf(json,
		        "%s\n    {\"clients\": %u, \"rate\": %.6g, \"p50_us\": %.4g, \"p99_us\": "
		        "%.4g, \"p999_us\": %.4g, \"daemon_cpu_us\": %.4g}",
		        k ? "," : "", n, (double)total / elapsed, pct_us(&all, 50),
		        pct_us(&all, 99), pct_us(&all, 99.9), cpu_us);
		fprintf(stderr,
		        "  %3u clients: %9.0f/s  p50 %7.1f us  p99 %7.1f us  (daemon CPU %.2f us "
		        "each)\n",
		        n, (double)total / elapsed, pct_us(&all, 50), pct_us(&all, 99), cpu_us);
		pthread_barrier_destroy(&barrier);
		free(all.v);
		free(cls);
	}
	fputs("\n  ]", json);
}

/* --- paced clients -------------------------------------------------------- */

/* Apps do not sign in a tight loop: 256 connected clients each asking for
 * one link every period, staggered; first every 50 ms (5,120 links/s in
 * all), then twice as often each step until p99 passes 1 ms: the load up to
 * which 256 clients are served within 1 ms. One thread drives all 256
 * connections with epoll, so that the measurement is not about how this
 * machine schedules 256 threads. Latency is counted twice: from when a
 * request was sent (what the daemon costs), and from when it was due, which
 * also charges this thread waking late (no coordinated omission). */
#define PACED_CLIENTS   256U
#define PACED_PERIOD_NS 50000000ULL
#define PACED_STEPS     6U
#define PACED_QUEUE     8U /* requests one connection may have in flight */

typedef struct PacedConn {
	Conn c;
	uint64_t next_due;
	uint64_t due[PACED_QUEUE]; /* FIFO of the due times in flight */
	uint64_t sent[PACED_QUEUE];
	unsigned head, n;
	unsigned k;
} PacedConn;

typedef struct PacedResult {
	double offered, achieved;
	double p50, p99, p999, max; /* from due, us */
	double sent_p50, sent_p99, sent_p999;
} PacedResult;

static PacedResult paced_run(const char *path, const Lines *l, double seconds, uint64_t period)
{
	PacedConn *pc = calloc(PACED_CLIENTS, sizeof(PacedConn));
	struct epoll_event ev[64];
	Samples lat = {}, service = {};
	uint64_t start, end, sent = 0, done = 0;
	char buf[READ_BUF];
	int ep;

	if (!pc)
		die("paced", -ENOMEM);
	/* Wake when due, not up to 50 us later (the default timer slack). */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll", -errno);
	start = now_ns() + 10000000ULL;
	end = start + (uint64_t)(seconds * 1e9);
	for (unsigned i = 0; i < PACED_CLIENTS; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		pc[i].c = conn_open(path, 'O');
		pc[i].next_due = start + (uint64_t)i * period / PACED_CLIENTS;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, pc[i].c.fd, &e) < 0)
			die("epoll_ctl", -errno);
	}

	for (;;) {
		uint64_t now = now_ns(), next = UINT64_MAX;
		struct timespec ts;
		int n;

		for (unsigned i = 0; i < PACED_CLIENTS; i++) {
			PacedConn *p = &pc[i];

			while (p->next_due <= now && p->next_due < end && p->n < PACED_QUEUE) {
				unsigned a = (i * 37 + p->k++) % N_TARGETS;
				size_t len = l->off[a + 1] - l->off[a];

				if (send(p->c.fd, l->buf + l->off[a], len, MSG_NOSIGNAL) !=
				    (ssize_t)len)
					die("paced send", -EIO);
				p->due[(p->head + p->n) % PACED_QUEUE] = p->next_due;
				p->sent[(p->head + p->n++) % PACED_QUEUE] = now_ns();
				p->next_due += period;
				sent++;
			}
			if (p->next_due < end && p->next_due < next)
				next = p->next_due;
		}
		if (next == UINT64_MAX && done == sent)
			break;

		now = now_ns();
		if (next == UINT64_MAX || next <= now)
			ts = (struct timespec){ .tv_sec = next == UINT64_MAX ? 1 : 0 };
		else
			ts = (struct timespec){ .tv_sec = (time_t)((next - now) / 1000000000ULL),
				                .tv_nsec = (long)((next - now) % 1000000000ULL) };
		n = epoll_pwait2(ep, ev, 64, &ts, NULL);
		if (n < 0 && errno != EINTR)
			die("epoll_pwait2", -errno);
		now = now_ns();
		for (int e = 0; e < n; e++) {
			PacedConn *p = &pc[ev[e].data.u32];
			ssize_t k = recv(p->c.fd, buf, sizeof(buf), MSG_DONTWAIT);
			size_t answers;

			if (k <= 0) {
				if (k < 0 && errno == EAGAIN)
					continue;
				die("paced recv", k < 0 ? -errno : -ECONNRESET);
			}
			answers = scan(&p->c, buf, (size_t)k);
			for (size_t a = 0; a < answers && p->n > 0; a++) {
				samples_add(&lat, now - p->due[p->head]);
				samples_add(&service, now - p->sent[p->head]);
				p->head = (p->head + 1) % PACED_QUEUE;
				p->n--;
				done++;
			}
		}
	}
	for (unsigned i = 0; i < PACED_CLIENTS; i++) {
		check_bad(&pc[i].c, "paced clients");
		close(pc[i].c.fd);
	}
	close(ep);
	free(pc);

	qsort(lat.v, lat.n, sizeof(uint64_t), cmp_u64);
	qsort(service.v, service.n, sizeof(uint64_t), cmp_u64);
	PacedResult r = {
		.offered = PACED_CLIENTS * 1e9 / (double)period,
		.achieved = (double)done / (seconds > 0 ? seconds : 1),
		.p50 = pct_us(&lat, 50),
		.p99 = pct_us(&lat, 99),
		.p999 = pct_us(&lat, 99.9),
		.max = pct_us(&lat, 100),
		.sent_p50 = pct_us(&service, 50),
		.sent_p99 = pct_us(&service, 99),
		.sent_p999 = pct_us(&service, 99.9),
	};
	free(service.v);
	free(lat.v);
	return r;
}

#define PACED_ROUNDS 5U

static void bench_paced(const char *path, const Lines *l, double seconds)
{
	uint64_t period = PACED_PERIOD_NS;

	/* A warm-up at the first rate: fresh connections, first timers. */
	(void)paced_run(path, l, 0.3, period);
	/* The target's rate in rounds of its own: on this VM one stall of the
	 * whole machine for a few milliseconds holds 1 % of a round's requests,
	 * and moves that round's p99, not the median of the rounds'. */
	json_key("paced_target_rounds");
	fputc('[', json);
	for (unsigned k = 0; k < PACED_ROUNDS; k++) {
		PacedResult r = paced_run(path, l, seconds, period);

		fprintf(json,
		        "%s{\"offered_per_s\": %.6g, \"sent_p99_us\": %.4g, \"p99_us\": %.4g}",
		        k ? ", " : "", r.offered, r.sent_p99, r.p99);
		fprintf(stderr,
		        "  %u paced clients, %.0f/s offered, round %u: p99 from send %.1f us\n",
		        PACED_CLIENTS, r.offered, k + 1, r.sent_p99);
	}
	fputc(']', json);
	json_key("paced");
	fputc('[', json);
	for (unsigned k = 0; k < PACED_STEPS; k++, period /= 2) {
		PacedResult r = paced_run(path, l, seconds, period);

		fprintf(json,
		        "%s\n    {\"clients\": %u, \"offered_per_s\": %.6g, \"achieved_per_s\": "
		        "%.6g, \"p50_us\": %.4g, \"p99_us\": %.4g, \"p999_us\": %.4g, \"max_us\": "
		        "%.4g, \"sent_p50_us\": %.4g, \"sent_p99_us\": %.4g, \"sent_p999_us\": "
		        "%.4g}",
		        k ? "," : "", PACED_CLIENTS, r.offered, r.achieved, r.p50, r.p99, r.p999,
		        r.max, r.sent_p50, r.sent_p99, r.sent_p999);
		fprintf(stderr,
		        "  %u paced clients, %.0f/s offered: from due p50 %.1f p99 %.1f us; from "
		        "send p50 %.1f p99 %.1f p99.9 %.1f us\n",
		        PACED_CLIENTS, r.offered, r.p50, r.p99, r.sent_p50, r.sent_p99,
		        r.sent_p999);
		/* Past the target by far: the next step only measures a queue. */
		if (r.p99 > 10000)
			break;
	}
	fputs("\n  ]", json);
}

/* --- VERIFY --------------------------------------------------------------- */

static void bench_verify(const char *path, double seconds)
{
	char *urls[N_TARGETS];
	Lines l;
	int fd, r;

	r = unix_connect(path, &fd);
	if (r < 0)
		die(path, r);
	for (unsigned i = 0; i < N_TARGETS; i++) {
		char line[128], *answer;

		snprintf(line, sizeof(line), "SIGN " TARGET_FMT "\n", i);
		r = request(fd, line, &answer);
		if (r < 0)
			die("SIGN for VERIFY", r);
		if (strncmp(answer, "OK ", 3) != 0) {
			fprintf(stderr, "securelink-bench: SIGN answered: %s\n", answer);
			exit(1);
		}
		urls[i] = strdup(answer + 3);
		free(answer);
		if (!urls[i])
			die("VERIFY", -ENOMEM);
	}
	/* Once in full: every link must be valid, not just answered. */
	{
		char line[512], *answer;

		snprintf(line, sizeof(line), "VERIFY %s\n", urls[0]);
		r = request(fd, line, &answer);
		if (r < 0)
			die("VERIFY", r);
		if (strncmp(answer, "OK valid", 8) != 0) {
			fprintf(stderr, "securelink-bench: VERIFY answered: %s\n", answer);
			exit(1);
		}
		free(answer);
	}
	close(fd);

	l = lines_new("VERIFY", urls);
	double rate = run_window(path, 'O', &l, 256, seconds, "VERIFY");
	json_num("verify_pipelined_256", rate);
	fprintf(stderr, "  VERIFY pipelined (256): %.0f/s\n", rate);
	lines_free(&l);
	for (unsigned i = 0; i < N_TARGETS; i++)
		free(urls[i]);
}

/* --- the C library -------------------------------------------------------- */

static void bench_library(const char *path, double seconds)
{
	static char targets_buf[N_TARGETS][64];
	const char *targets[N_TARGETS];
	char *urls[N_TARGETS];
	SlClient *c;
	uint64_t start, end, deadline, n = 0;
	int r;

	for (unsigned i = 0; i < N_TARGETS; i++) {
		snprintf(targets_buf[i], sizeof(targets_buf[i]), TARGET_FMT, i);
		targets[i] = targets_buf[i];
	}
	r = sl_client_connect(path, &c);
	if (r < 0)
		die("sl_client_connect", r);
	start = now_ns();
	deadline = start + (uint64_t)(seconds * 1e9);
	do {
		r = sl_client_sign_many(c, targets, N_TARGETS, NULL, urls, NULL, NULL);
		if (r != 0)
			die("sl_client_sign_many", r < 0 ? r : -EPROTO);
		for (unsigned i = 0; i < N_TARGETS; i++)
			free(urls[i]);
		n += N_TARGETS;
	} while ((end = now_ns()) < deadline);
	sl_client_free(c);
	double rate = (double)n / ((double)(end - start) / 1e9);
	json_num("library_sign_many_1024", rate);
	fprintf(stderr, "  sl_client_sign_many (1024 per call): %.0f/s\n", rate);
}

/* --- the socket phase ------------------------------------------------------ */

/* The echo thread's socket, for the baselines. */
static void echo_start(const char *dir, char *path, size_t size, int *ret_lfd, pthread_t *ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if ((size_t)snprintf(path, size, "%s/echo.sock", dir) >= size ||
	    strlen(path) >= sizeof(sa.sun_path))
		die("echo socket path", -ENAMETOOLONG);
	strcpy(sa.sun_path, path);
	(void)unlink(path);
	*ret_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*ret_lfd < 0 || bind(*ret_lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(*ret_lfd, 16) < 0)
		die("echo socket", -errno);
	if (pthread_create(ret, NULL, echo_thread, ret_lfd) != 0)
		die("echo thread", -EAGAIN);
	{
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(server_cpu(), &set);
		if (pthread_setaffinity_np(*ret, sizeof(set), &set) != 0)
			die("pthread_setaffinity_np", -EINVAL);
	}
}

static void echo_stop(const char *path, int lfd, pthread_t thread)
{
	shutdown(lfd, SHUT_RDWR);
	pthread_join(thread, NULL);
	close(lfd);
	(void)unlink(path);
}

/* A child process for a baseline server, on the server CPU, gone with this
 * process. Returns 0 in the child, as fork() does. */
static pid_t fork_server(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin(0, server_cpu());
	}
	return pid;
}

/* The same echo loop in a child process: a daemon is a process of its own,
 * and on some machines (this VM) switching between processes costs far more
 * than between threads of one. */
static pid_t echo_fork(const char *dir, const char *name, bool hash, char *path, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd;
	pid_t pid;

	if ((size_t)snprintf(path, size, "%s/%s.sock", dir, name) >= size ||
	    strlen(path) >= sizeof(sa.sun_path))
		die("echo socket path", -ENAMETOOLONG);
	strcpy(sa.sun_path, path);
	(void)unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0)
		die("echo socket", -errno);
	pid = fork_server();
	if (pid == 0) {
		echo_hash = hash;
		echo_thread(&lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

/* Where this client sits for a round trip: on the server's CPU, where a
 * round trip is two switches on one vCPU, or on the other, where each
 * direction also wakes a halted vCPU (on this VM: a wake-up whose cost jumps
 * with how long the other side took, see bench_cliff()). */
#define PLACEMENTS 2U
static const char *const placement_name[PLACEMENTS] = { "same_cpu", "other_cpu" };

static int placement_cpu(unsigned p)
{
	return p == 0 ? server_cpu() : client_cpu();
}

typedef struct Pingpong {
	const char *name;
	Conn c;
	Samples lat[PLACEMENTS];
	double time[PLACEMENTS];
} Pingpong;

/* Sequential SIGN against the echo ping-pong: the echo in a thread of this
 * process and in a process of its own (the daemon's like: an app and the
 * daemon are two processes, and on this VM a switch between processes
 * costs far more than one between threads), and a third echo in a process
 * that hashes each line with MD5 before answering, the one computation no
 * signer can skip. Every server runs on the daemon's CPU; this client on the
 * same CPU and on the other, in turn. The four alternate in slices of
 * 100 ms, in both placements, so that whatever else the machine does at the
 * time falls on all alike; the ratios within a slice are what counts. */
#define PINGPONGS 4U

static void bench_roundtrip(const char *path, const char *dir, const Lines *sign, double seconds)
{
	char echo_path[108], proc_path[108], hash_path[108];
	pthread_t echo;
	pid_t proc, hash_proc;
	int lfd;
	uint64_t cpu[PLACEMENTS] = {};
	unsigned slices = seconds > 0.15 ? (unsigned)(seconds / 0.1 + 0.5) : 1;
	Pingpong pp[PINGPONGS] = {
		{ .name = "echo_pingpong" },
		{ .name = "echo_process_pingpong" },
		{ .name = "echo_md5_pingpong" },
		{ .name = "sign_sequential" },
	};
	const unsigned sign_k = PINGPONGS - 1;

	echo_start(dir, echo_path, sizeof(echo_path), &lfd, &echo);
	proc = echo_fork(dir, "echo-process", false, proc_path, sizeof(proc_path));
	hash_proc = echo_fork(dir, "echo-md5", true, hash_path, sizeof(hash_path));
	pp[0].c = conn_open(echo_path, 'S');
	pp[1].c = conn_open(proc_path, 'S');
	pp[2].c = conn_open(hash_path, 'S');
	pp[3].c = conn_open(path, 'O');
	for (unsigned p = 0; p < PLACEMENTS; p++) {
		pin(0, placement_cpu(p));
		for (unsigned k = 0; k < PINGPONGS; k++) {
			/* Warm-up. */
			(void)run_sequential(&pp[k].c, sign, 0.05, &pp[k].lat[p], pp[k].name);
			pp[k].lat[p].n = 0;
		}
	}

	/* Each slice's rates, for the ratios within each slice: a stall of the
	 * whole machine moves one slice, not the median of the ratios. */
	double(*slice_rates)[PLACEMENTS][PINGPONGS] = calloc(slices, sizeof(*slice_rates));

	if (!slice_rates)
		die("slices", -ENOMEM);
	for (unsigned i = 0; i < slices; i++)
		for (unsigned p = 0; p < PLACEMENTS; p++) {
			pin(0, placement_cpu(p));
			for (unsigned k = 0; k < PINGPONGS; k++) {
				Samples *lat = &pp[k].lat[p];
				size_t n = lat->n;
				uint64_t c0 = daemon_cpu_ns();
				double rate = run_sequential(&pp[k].c, sign, 0.1, lat, pp[k].name);

				if (k == sign_k)
					cpu[p] += daemon_cpu_ns() - c0;
				pp[k].time[p] += (double)(lat->n - n) / rate;
				slice_rates[i][p][k] = rate;
			}
		}
	pin(0, client_cpu());

	json_key("roundtrip");
	fputc('{', json);
	for (unsigned p = 0; p < PLACEMENTS; p++) {
		fprintf(json, "%s\n    \"%s\": {\"client_cpu\": %d, \"server_cpu\": %d,",
		        p ? "," : "", placement_name[p], placement_cpu(p), server_cpu());
		fprintf(stderr, "  client on %s (CPU %d), servers on CPU %d:\n", placement_name[p],
		        placement_cpu(p), server_cpu());
		for (unsigned k = 0; k < PINGPONGS; k++) {
			Samples *lat = &pp[k].lat[p];
			double rate = (double)lat->n / pp[k].time[p];

			qsort(lat->v, lat->n, sizeof(uint64_t), cmp_u64);
			fprintf(json,
			        "\n      \"%s\": {\"rate\": %.6g, \"n\": %zu, \"p50_us\": %.4g, "
			        "\"p99_us\": %.4g, \"p999_us\": %.4g, \"max_us\": %.4g},",
			        pp[k].name, rate, lat->n, pct_us(lat, 50), pct_us(lat, 99),
			        pct_us(lat, 99.9), pct_us(lat, 100));
			fprintf(
			    stderr, "    %-22s %6.0f/s  p50 %.1f us  p99 %.1f us  p99.9 %.1f us\n",
			    pp[k].name, rate, pct_us(lat, 50), pct_us(lat, 99), pct_us(lat, 99.9));
		}
		fprintf(json, "\n      \"sign_daemon_cpu_us\": %.4g,",
		        (double)cpu[p] / 1e3 / (double)pp[sign_k].lat[p].n);
		fprintf(stderr, "    (daemon CPU per sequential SIGN: %.2f us)\n",
		        (double)cpu[p] / 1e3 / (double)pp[sign_k].lat[p].n);
		fputs("\n      \"slices\": [", json);
		for (unsigned i = 0; i < slices; i++) {
			fprintf(json, "%s[", i ? ", " : "");
			for (unsigned k = 0; k < PINGPONGS; k++)
				fprintf(json, "%s%.6g", k ? ", " : "", slice_rates[i][p][k]);
			fputc(']', json);
		}
		fputs("]}", json);
	}
	fputs("\n  }", json);
	free(slice_rates);

	for (unsigned k = 0; k < PINGPONGS; k++) {
		check_bad(&pp[k].c, pp[k].name);
		close(pp[k].c.fd);
		for (unsigned p = 0; p < PLACEMENTS; p++)
			free(pp[k].lat[p].v);
	}

	{
		double rate = run_batches(echo_path, 'S', sign, 256, seconds, "echo pipelined");
		json_num("echo_pipelined_256", rate);
		fprintf(stderr, "  echo pipelined (batches of 256): %.0f/s\n", rate);
	}
	echo_stop(echo_path, lfd, echo);
	(void)kill(proc, SIGTERM);
	(void)kill(hash_proc, SIGTERM);
	(void)waitpid(proc, NULL, 0);
	(void)waitpid(hash_proc, NULL, 0);
	(void)unlink(proc_path);
	(void)unlink(hash_path);
}

/* --- the wakeup cliff ------------------------------------------------------ */

/* An epoll echo in a process on the daemon's CPU that spins for a given time
 * before answering each read: how a sequential round trip grows with the
 * server's work per request, with this client on the same CPU and on the
 * other. On the same CPU it grows smoothly. Across the two vCPUs of this VM
 * it does not, in some runs: it jumps by several microseconds once the work
 * passes a few hundred nanoseconds, which SIGN's own work (parse, MD5, the
 * link) cannot stay under. */
static const unsigned cliff_spin_ns[] = { 0, 100, 200, 300, 500, 1000, 2000 };

static void cliff_server(int fd, uint64_t spin_ns)
{
	static char buf[READ_BUF];
	struct epoll_event e = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
		_exit(1);
	for (;;) {
		struct epoll_event ev;
		ssize_t n;

		if (epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR)
			_exit(1);
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			_exit(0);
		for (uint64_t t0 = now_ns(); now_ns() - t0 < spin_ns;)
			;
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			_exit(1);
	}
}

static void bench_cliff(const Lines *sign, double seconds)
{
	json_key("cliff");
	fputc('[', json);
	for (unsigned p = 0; p < PLACEMENTS; p++) {
		pin(0, placement_cpu(p));
		for (size_t k = 0; k < ELEMENTSOF(cliff_spin_ns); k++) {
			Conn c = { .expect = 'S', .at_start = true };
			Samples lat = {};
			int sv[2];
			pid_t pid;
			double rate;

			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
				die("socketpair", -errno);
			pid = fork_server();
			if (pid == 0) {
				close(sv[0]);
				cliff_server(sv[1], cliff_spin_ns[k]);
			}
			close(sv[1]);
			c.fd = sv[0];
			(void)run_sequential(&c, sign, 0.05, &lat, "cliff");
			lat.n = 0;
			rate = run_sequential(&c, sign, seconds / 3, &lat, "cliff");
			check_bad(&c, "cliff");
			close(c.fd);
			(void)waitpid(pid, NULL, 0);
			qsort(lat.v, lat.n, sizeof(uint64_t), cmp_u64);
			fprintf(json,
			        "%s\n    {\"client\": \"%s\", \"spin_ns\": %u, \"rate\": %.6g, "
			        "\"p50_us\": %.4g}",
			        p || k ? "," : "", placement_name[p], cliff_spin_ns[k], rate,
			        pct_us(&lat, 50));
			fprintf(
			    stderr,
			    "  epoll echo spinning %4u ns, client on %s: %6.0f/s  p50 %.1f us\n",
			    cliff_spin_ns[k], placement_name[p], rate, pct_us(&lat, 50));
			free(lat.v);
		}
	}
	pin(0, client_cpu());
	fputs("\n  ]", json);
}

/* --- the pipelined target: pairs against openssl speed --------------------- */

#define MD5_PAIRS 5U

/* Runs `openssl speed -bytes 64 -seconds 1 md5` on one CPU: MD5 hashes of
 * 64 bytes per second, the baseline the issue names. */
static double openssl_md5_rate(int cpu)
{
	char out[4096];
	size_t have = 0;
	int fds[2], status;
	pid_t pid;
	double rate = 0;

	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe", -errno);
	pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		cpu_set_t set;
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0 || dup2(fds[1], 1) < 0 ||
		    null < 0 || dup2(null, 2) < 0)
			_exit(127);
		execlp("openssl", "openssl", "speed", "-bytes", "64", "-seconds", "1", "md5",
		       (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t k = read(fds[0], out + have, sizeof(out) - 1 - have);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		have += (size_t)k;
	}
	close(fds[0]);
	out[have] = '\0';
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("openssl speed -bytes 64 -seconds 1 md5", -EIO);
	/* The result line: "md5   228611.51k" (bytes per second, in 1000s). */
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *end;

		if (strncmp(line, "md5 ", 4) != 0)
			continue;
		rate = strtod(line + 4, &end);
		if (end == line + 4 || *end != 'k')
			rate = 0;
	}
	if (rate <= 0)
		die("openssl speed: no md5 result line", -EIO);
	return rate * 1000 / 64;
}

/* Pipelined SIGN at depth 256 against the single-core MD5 rate. The daemon
 * is single-threaded: openssl runs on its CPU, and SIGN is measured twice,
 * with this client on the same CPU (the target: everything that makes the
 * links on the one core openssl hashes on) and on the other one. They
 * alternate with openssl in rounds of one second each, so that what else the
 * machine does at the time (its two vCPUs differ, and drift by tens of
 * percent within seconds) falls on both sides of every ratio; the target is
 * the median of the rounds' ratios. Across two vCPUs each batch also waits
 * for wakeups from the other one, which this VM makes dear and erratic. */
static void bench_pipelined_target(const char *path, const Lines *sign, double seconds)
{
	int daemon_cpu = server_cpu(), own_cpu = client_cpu();
	double md5[MD5_PAIRS], same[MD5_PAIRS], across[MD5_PAIRS];
	double t = seconds < 1 ? seconds : 1.0;

	for (unsigned i = 0; i < MD5_PAIRS; i++) {
		md5[i] = openssl_md5_rate(daemon_cpu);
		pin(0, daemon_cpu);
		same[i] = run_window(path, 'O', sign, 256, t, "SIGN pipelined");
		pin(0, own_cpu);
		across[i] = run_window(path, 'O', sign, 256, t, "SIGN pipelined");
		fprintf(stderr,
		        "  round %u: openssl md5 %.0f/s; SIGN depth 256, client on the same CPU "
		        "%.0f/s (%.3f), on the other %.0f/s (%.3f)\n",
		        i + 1, md5[i], same[i], same[i] / md5[i], across[i], across[i] / md5[i]);
	}
	json_key("sign_pipelined_256_rounds");
	fputc('[', json);
	for (unsigned i = 0; i < MD5_PAIRS; i++)
		fprintf(json, "%s[%.6g, %.6g, %.6g]", i ? ", " : "", md5[i], same[i], across[i]);
	fputc(']', json);
	json_num("pipelined_daemon_cpu", daemon_cpu);
	json_num("pipelined_client_cpu", own_cpu);
}

static void bench_pipelined(const char *path, const Lines *sign, double seconds)
{
	json_key("sign_pipelined");
	fputc('[', json);
	for (size_t k = 0; k < sizeof(depths) / sizeof(depths[0]); k++) {
		uint64_t cpu = daemon_cpu_ns(), t = now_ns();
		double rate = run_window(path, 'O', sign, depths[k], seconds, "SIGN pipelined");
		double n = rate * (double)(now_ns() - t) / 1e9; /* about: includes the warm-up */
		double cpu_us = (double)(daemon_cpu_ns() - cpu) / 1e3 / n;

		fprintf(json, "%s\n    {\"depth\": %u, \"rate\": %.6g, \"daemon_cpu_us\": %.4g}",
		        k ? "," : "", depths[k], rate, daemon_pid > 0 ? cpu_us : 0);
		fprintf(stderr, "  SIGN pipelined, depth %4u: %9.0f/s  (daemon CPU %.2f us each)\n",
		        depths[k], rate, cpu_us);
	}
	fputs("\n  ]", json);

	bench_pipelined_target(path, sign, seconds);
}

/* --- directory grants: SIGN grant= against file SIGN ------------------------ */

#define GRANT_ROUNDS 5U
/* A stream's directory, 3 segments below media_url as an app names them. */
#define GRANT_DIR_FMT "/media/private/videos/%06u/ grant=%s"

static Lines grant_lines(const char *form)
{
	char *args[N_TARGETS];
	Lines l;

	for (unsigned i = 0; i < N_TARGETS; i++)
		if (asprintf(&args[i], GRANT_DIR_FMT, i, form) < 0)
			die("grant lines", -ENOMEM);
	l = lines_new("SIGN", args);
	for (unsigned i = 0; i < N_TARGETS; i++)
		free(args[i]);
	return l;
}

/* SIGN of a grant, pipelined at depth 256, against file SIGN pipelined the
 * same way, in rounds of (at most) one second each: file, path grant and
 * cookie grant in turn, the order rotated every round so that the machine's
 * drift falls on every side. The target is the median of the rounds'
 * ratios. */
static void bench_grant(const char *path, const Lines *sign, double seconds)
{
	Lines path_form = grant_lines("path"), cookie_form = grant_lines("cookie");
	const Lines *kinds[] = { sign, &path_form, &cookie_form };
	static const char *const names[] = { "file", "grant=path", "grant=cookie" };
	double rate[GRANT_ROUNDS][3];
	double t = seconds < 1 ? seconds : 1.0;

	for (unsigned i = 0; i < GRANT_ROUNDS; i++) {
		for (unsigned k = 0; k < 3; k++) {
			unsigned j = (i + k) % 3;
			rate[i][j] = run_window(path, 'O', kinds[j], 256, t, names[j]);
		}
		fprintf(stderr,
		        "  round %u: SIGN depth 256: file %.0f/s, grant=path %.0f/s (%.3f), "
		        "grant=cookie %.0f/s (%.3f)\n",
		        i + 1, rate[i][0], rate[i][1], rate[i][1] / rate[i][0], rate[i][2],
		        rate[i][2] / rate[i][0]);
	}
	json_key("grant_pipelined_256_rounds");
	fputc('[', json);
	for (unsigned i = 0; i < GRANT_ROUNDS; i++)
		fprintf(json, "%s[%.6g, %.6g, %.6g]", i ? ", " : "", rate[i][0], rate[i][1],
		        rate[i][2]);
	fputc(']', json);
	lines_free(&path_form);
	lines_free(&cookie_form);
}

static void cmd_socket(const char *path, const char *dir, double seconds)
{
	Lines sign = lines_new("SIGN", NULL);
	cpu_set_t daemon_set;

	/* The daemon on one CPU, this process (and every thread it starts) on
	 * the other, for every measurement. */
	if (daemon_pid > 0) {
		if (sched_getaffinity(daemon_pid, sizeof(daemon_set), &daemon_set) < 0)
			die("sched_getaffinity", -errno);
		pin(daemon_pid, server_cpu());
	}
	pin(0, client_cpu());

	/* Memory first, on a daemon no benchmark has grown yet. */
	if (daemon_pid > 0 && want("rss"))
		bench_rss(path, daemon_pid);
	if (want("roundtrip"))
		bench_roundtrip(path, dir, &sign, seconds);
	if (want("cliff"))
		bench_cliff(&sign, seconds);
	if (want("pipelined"))
		bench_pipelined(path, &sign, seconds);
	if (want("clients"))
		bench_clients(path, &sign, seconds);
	if (want("paced"))
		bench_paced(path, &sign, seconds);
	if (want("verify"))
		bench_verify(path, seconds);
	if (want("grant"))
		bench_grant(path, &sign, seconds);
	if (want("library"))
		bench_library(path, seconds);

	if (daemon_pid > 0) {
		json_num("rss_end_kib", (double)status_kb(daemon_pid, "VmRSS"));
		json_num("rss_peak_kib", (double)status_kb(daemon_pid, "VmHWM"));
		set_affinity(daemon_pid, &daemon_set);
	}
	json_num("server_cpu", server_cpu());
	json_num("client_cpu", client_cpu());
	lines_free(&sign);
}

/* --- rotation ---------------------------------------------------------------- */

static int run_command(char *const *argv)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* The children of pid, as /proc/PID/task/PID/children lists them. */
static size_t read_children(pid_t pid, pid_t *out, size_t max)
{
	char path[64];
	size_t n = 0;
	long v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (n < max && fscanf(f, "%ld", &v) == 1)
		out[n++] = (pid_t)v;
	fclose(f);
	return n;
}

/* Whether pid is an nginx worker that still accepts connections: its title
 * is "nginx: worker process" until it is told to quit, then "... is shutting
 * down". */
static bool accepting_worker(pid_t pid)
{
	char path[64], buf[256];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strncmp(buf, "nginx: worker process", STRLEN("nginx: worker process")) == 0 &&
	       !strstr(buf, "shutting down");
}

/* SIGHUP to the nginx master, then wait for what securelinkd waits for to
 * confirm a reload: a worker pid that was not there before, and no old
 * worker still accepting connections. Polled every 100 us here so that the
 * poll itself adds next to nothing: this is nginx's own reload time. */
static int time_reload(pid_t master, uint64_t *ret_ns)
{
	pid_t before[64], now[64];
	size_t nb = read_children(master, before, 64);
	uint64_t t0 = now_ns();

	if (kill(master, SIGHUP) < 0)
		return -errno;
	for (;;) {
		size_t nn = read_children(master, now, 64);
		bool fresh = false, old_accepting = false;

		for (size_t i = 0; i < nn; i++) {
			bool seen = false;

			for (size_t j = 0; j < nb; j++)
				seen = seen || now[i] == before[j];
			if (!seen)
				fresh = true;
			else if (accepting_worker(now[i]))
				old_accepting = true;
		}
		if (fresh && !old_accepting) {
			*ret_ns = now_ns() - t0;
			return 0;
		}
		if (now_ns() - t0 > 10000000000ULL)
			return -ETIMEDOUT;
		usleep(100);
	}
}

static double median_ms(Samples *s)
{
	qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
	return pct_us(s, 50) / 1000.0;
}

static void cmd_rotate(const char *path, unsigned count, double delay_ms, char *test_cmd,
                       const char *pidfile)
{
	Samples rtt = {}, test = {}, reload = {};
	char *argv[32];
	size_t argc = 0;
	int fd, r;

	r = unix_connect(path, &fd);
	if (r < 0)
		die(path, r);
	for (unsigned i = 0; i < count; i++) {
		char *answer;
		uint64_t t0 = now_ns();

		r = request(fd, "ROTATE\n", &answer);
		if (r < 0)
			die("ROTATE", r);
		samples_add(&rtt, now_ns() - t0);
		if (strncmp(answer, "OK kid=", 7) != 0) {
			fprintf(stderr, "securelink-bench: ROTATE answered: %s\n", answer);
			exit(1);
		}
		free(answer);
	}
	close(fd);

	/* What nginx itself costs, timed alone, the same way the daemon runs it. */
	if (test_cmd) {
		for (char *tok = strtok(test_cmd, " "); tok && argc < 31; tok = strtok(NULL, " "))
			argv[argc++] = tok;
		argv[argc] = NULL;
		for (unsigned i = 0; i < 5; i++) {
			uint64_t t0 = now_ns();
			r = run_command(argv);
			if (r < 0)
				die("test command", r);
			samples_add(&test, now_ns() - t0);
		}
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "re");
		long master = 0;

		if (!f || fscanf(f, "%ld", &master) != 1 || master <= 0)
			die(pidfile, -EINVAL);
		fclose(f);
		for (unsigned i = 0; i < 5; i++) {
			uint64_t ns = 0;
			r = time_reload((pid_t)master, &ns);
			if (r < 0)
				die("nginx reload", r);
			samples_add(&reload, ns);
			usleep(50000); /* let the old workers go */
		}
	}

	double rtt_med = median_ms(&rtt), rtt_max = (double)rtt.v[rtt.n - 1] / 1e6;
	double test_med = test.n ? median_ms(&test) : 0,
	       reload_med = reload.n ? median_ms(&reload) : 0;
	double own = rtt_med - delay_ms - test_med - reload_med;

	json_key("rotation");
	fprintf(json,
	        "{\"count\": %u, \"rtt_median_ms\": %.4g, \"rtt_max_ms\": %.4g, "
	        "\"activation_delay_ms\": %.4g, \"test_median_ms\": %.4g, \"reload_median_ms\": "
	        "%.4g, \"own_ms\": %.4g, \"rtt_ms\": [",
	        count, rtt_med, rtt_max, delay_ms, test_med, reload_med, own);
	for (size_t i = 0; i < rtt.n; i++)
		fprintf(json, "%s%.4g", i ? ", " : "", (double)rtt.v[i] / 1e6);
	fputs("]}", json);
	fprintf(stderr,
	        "  ROTATE x%u: median %.1f ms (delay %.0f, test %.1f, reload %.1f) -> own %.1f "
	        "ms\n",
	        count, rtt_med, delay_ms, test_med, reload_med, own);
	free(rtt.v);
	free(test.v);
	free(reload.v);
}

/* --- main ------------------------------------------------------------------- */

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(void)
{
	fputs("usage: securelink-bench socket --socket PATH --dir DIR [--daemon-pid PID] --json "
	      "FILE [--seconds S] [--only PARTS]\n"
	      "       securelink-bench rotate --socket PATH --count N --activation-delay-ms D "
	      "--json FILE [--nginx-test CMD] [--nginx-pidfile FILE]\n",
	      stderr);
	exit(2);
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "daemon-pid", required_argument, NULL, 'p' },
		{ "json", required_argument, NULL, 'j' },
		{ "seconds", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "activation-delay-ms", required_argument, NULL, 'a' },
		{ "nginx-test", required_argument, NULL, 'T' },
		{ "nginx-pidfile", required_argument, NULL, 'P' },
		{ "only", required_argument, NULL, 'o' },
		{},
	};
	const char *sock = NULL, *dir = NULL, *json_path = NULL, *pidfile = NULL, *cmd;
	char *test_cmd = NULL, *end;
	double seconds = 1.5, delay_ms = 0;
	unsigned long count = 5;
	long pid = 0;
	int c;

	if (argc < 2)
		usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		errno = 0;
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'p':
			pid = strtol(optarg, &end, 10);
			if (errno || *end || pid <= 0)
				usage();
			break;
		case 'j':
			json_path = optarg;
			break;
		case 't':
			seconds = strtod(optarg, &end);
			if (errno || *end || seconds <= 0 || seconds > 60)
				usage();
			break;
		case 'n':
			count = strtoul(optarg, &end, 10);
			if (errno || *end || count == 0 || count > 60)
				usage();
			break;
		case 'a':
			delay_ms = strtod(optarg, &end);
			if (errno || *end || delay_ms < 0)
				usage();
			break;
		case 'T':
			test_cmd = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		default:
			usage();
		}
	}
	if (!sock || !json_path || optind != argc)
		usage();

	raise_fd_limit();
	json = fopen(json_path, "we");
	if (!json)
		die(json_path, -errno);
	fputc('{', json);

	if (strcmp(cmd, "socket") == 0) {
		if (!dir)
			usage();
		daemon_pid = (pid_t)pid;
		cmd_socket(sock, dir, seconds);
	} else if (strcmp(cmd, "rotate") == 0)
		cmd_rotate(sock, (unsigned)count, delay_ms, test_cmd, pidfile);
	else
		usage();

	fputs("\n}\n", json);
	if (fclose(json) != 0)
		die(json_path, -errno);
	return 0;
}
