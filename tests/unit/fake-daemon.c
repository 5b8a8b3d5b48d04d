/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake-daemon.h"
#include "util.h"

/* The fake securelinkd the client tests share: see fake-daemon.h. */

void write_all(int fd, const char *p, size_t n)
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

void fake_start(Fake *f, serve_t serve)
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

void fake_stop(Fake *f)
{
	/* The client has closed its end by now, so every serve function
	 * returns: they all stop at end of file. */
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
}

/* Reads request lines until end of file, calls answer() for each. */
void serve_lines(Fake *f, int fd, void (*answer)(Fake *f, int fd, const char *line))
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

void serve_nothing(Fake *f, int fd)
{
	char c;

	while (read(fd, &c, 1) > 0)
		;
}

void serve_close_after(Fake *f, int fd)
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
