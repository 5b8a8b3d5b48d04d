/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"

/* Getting nginx to use the files on disk: the test command, then the reload
 * method, then confirmation that the reload really happened (nginx's reload
 * is asynchronous: a signal sent proves nothing). Everything runs as sources
 * of the event loop; nothing here blocks. */

typedef struct NginxResult {
	int error;        /* 0 or a negative errno */
	bool reloaded;    /* a running nginx now uses the new files */
	bool not_running; /* nginx was not running: the files on disk suffice */
	char *message;    /* on error: one line for people (test_command's
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
static inline void nginx_op_freep(NginxOp **op)
{
	nginx_op_free(*op);
}
