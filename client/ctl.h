/* SPDX-License-Identifier: MIT */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "securelink-client.h"
#include "util.h"

/* What securelinkctl's commands share: exit codes, the global options,
 * messages and the request to the daemon. The commands are in
 * securelinkctl.c (rotate, import-key, nginx-config, main), ctl-sign.c
 * (sign, verify) and ctl-status.c (status, check, metrics). */

/* Exit codes: interface, listed in --help and securelinkctl(1). */
#define EXIT_OK          0
#define EXIT_INVALID     1 /* verify: the link is not valid */
#define EXIT_EXPIRED     2 /* verify: the link has expired */
#define EXIT_USAGE       3 /* bad usage or arguments */
#define EXIT_UNREACHABLE 4 /* the daemon cannot be reached, or went away */
#define EXIT_FORBIDDEN   5 /* not allowed: socket permissions or admin_group */
#define EXIT_REFUSED     6 /* the daemon refused the input */
#define EXIT_DAEMON      7 /* the daemon failed (internal, unavailable), or a local failure */

/* No-progress timeout for quick requests. ROTATE and IMPORT wait for nginx
 * to test, reload and confirm, which the daemon bounds itself. */
#define REQUEST_TIMEOUT (60 * USEC_PER_SEC)

#define STDIN_LINE_MAX (1024U * 1024U)
#define SECRET_MAX     ((unsigned)PROTO_IMPORT_SECRET_MAX)

/* The global options, accepted after the command too, as users type them
 * ("securelinkctl status --json", "securelinkctl sign --socket PATH X").
 * Their values are above every command's own. */
enum {
	ARG_GLOBAL_SOCKET = 0x200,
	ARG_GLOBAL_JSON,
};

#define GLOBAL_OPTIONS                                                                             \
	{ "socket", required_argument, NULL, ARG_GLOBAL_SOCKET },                                  \
	{                                                                                          \
		"json", no_argument, NULL, ARG_GLOBAL_JSON                                         \
	}

/* --socket and --json, wherever they are given. */
extern const char *arg_socket;
extern bool arg_json;

/* Prints "securelinkctl: <message>" to stderr; returns code. */
int ctl_fail(int code, const char *format, ...) _printf_(2, 3);
/* getopt's failures and the global options after the command. */
int ctl_bad_option(const char *verb, char *argv[]);
int ctl_global_option(const char *verb, int opt, char *argv[]);
int ctl_repeated_option(const char *verb, const char *option);
const char *ctl_socket_path(void);
/* s with control bytes escaped, cut to size, for messages. */
void ctl_printable(const char *s, char *buf, size_t size);
/* The exit code for a daemon's ERR code, and the worse of two codes. */
int ctl_exit_for_error(SlError e);
int ctl_exit_worse(int a, int b);
const char *ctl_error_hint(SlError e);
int ctl_daemon_fail(const char *what, SlError e, const char *message);
int ctl_connect_fail(int r);
int ctl_transport_fail(int r);
int ctl_client_open(uint64_t timeout, SlClient **ret);
/* One request line; *ret_answer is what follows "OK ". Returns an exit code. */
int ctl_request(const char *what, const char *line, uint64_t timeout, char **ret_answer);
bool ctl_token_ok(const char *s);
int ctl_json_print_string(FILE *f, const char *s);

int verb_sign(int argc, char *argv[]);
int verb_verify(int argc, char *argv[]);
int verb_status(int argc, char *argv[]);
int verb_check(int argc, char *argv[]);
int verb_metrics(int argc, char *argv[]);
