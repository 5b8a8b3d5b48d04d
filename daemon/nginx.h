/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"

/* Getting nginx to use the files on disk: the test command, then the reload
 * method, then confirmation that the reload really happened (nginx's reload
 * is asynchronous: a signal sent proves nothing). Everything runs as sources
 * of the event loop; nothing here blocks. */

/* What a successful apply proves; STATUS shows it as nginx.confirmation. */
typedef enum NginxConfirmation {
	NGINX_WORKERS_REPLACED, /* systemd:, pidfile: the master runs new workers */
	NGINX_NOT_RUNNING,      /* no nginx runs: it reads the files when it starts */
	NGINX_RELOAD_COMMAND,   /* exec: the test passed and the command exited 0 */
	NGINX_TEST_ONLY,        /* none: the test passed; nothing was reloaded */
	NGINX_UNCHECKED,        /* none, without test_command: files written */
	_NGINX_CONFIRMATION_MAX,
} NginxConfirmation;

const char *nginx_confirmation_to_string(NginxConfirmation c);

typedef struct NginxResult {
	int error;                      /* 0 or a negative errno */
	NginxConfirmation confirmation; /* on success */
	bool reloaded;                  /* a running nginx now uses the new files */
	bool not_running;               /* nginx was not running: the files on disk suffice */
	char *message;                  /* on error: one line for people (test_command's
	                                 * stderr, the D-Bus error, the timeout) */
} NginxResult;

typedef void (*nginx_done_t)(void *userdata, const NginxResult *result);

typedef struct NginxOp NginxOp;

/* Starts test_command, then reloads with the configured method and waits for
 * the confirmation, or fails at timeout. done is called exactly once, from
 * the event loop, unless the op is freed first (which cancels it, killing a
 * child it started). Returns 0 or a negative errno (done is not called then). */
int nginx_apply(sd_event *e, const Config *c, usec_t timeout, nginx_done_t done, void *userdata,
                NginxOp **ret);
NginxOp *nginx_op_free(NginxOp *op);

/* Where securelink-nginx-test.service writes `nginx -T` (its standard
 * output): a root-owned directory, the file securelinkd's alone. */
#define NGINX_DUMP_FILE "/run/securelink/nginx-dump.conf"

/* Runs the test alone, as `nginx -T`, for securelinkctl check: test_command
 * with its -t made -T writes to stdout_fd; test_command = systemd:UNIT
 * starts the unit, which writes NGINX_DUMP_FILE. done as for nginx_apply().
 * Returns -ENOENT without a test command or when it has no -t. */
int nginx_dump_config(sd_event *e, const Config *c, usec_t timeout, int stdout_fd,
                      nginx_done_t done, void *userdata, NginxOp **ret);

/* The pid of an nginx master process running on this host (as far as /proc
 * shows), 0 when there is none. */
pid_t nginx_find_master(void);
static inline void nginx_op_freep(NginxOp **op)
{
	nginx_op_free(*op);
}
