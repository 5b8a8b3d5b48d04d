/* SPDX-License-Identifier: MIT */
#pragma once

/* A fake securelinkd for the client tests (test-client, test-client-sign): a
 * thread accepting one connection on a Unix socket in a temporary directory
 * and answering with a scripted behaviour. The test reads what the server
 * saw after fake_stop() has joined the thread. */

#include <pthread.h>
#include <stddef.h>

#include "securelink-client.h"

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

/* Writes all of p, retrying on EINTR; stops quietly when the client went away. */
void write_all(int fd, const char *p, size_t n);

/* Starts the thread, listening on f->path; serve() gets the one connection. */
void fake_start(Fake *f, serve_t serve);

/* Joins the thread and removes the socket and its directory. */
void fake_stop(Fake *f);

/* Reads request lines until end of file, calls answer() for each. */
void serve_lines(Fake *f, int fd, void (*answer)(Fake *f, int fd, const char *line));

/* Reads until end of file, answering nothing. */
void serve_nothing(Fake *f, int fd);

/* Answers f->answer_after requests with OK, then hangs up. */
void serve_close_after(Fake *f, int fd);
