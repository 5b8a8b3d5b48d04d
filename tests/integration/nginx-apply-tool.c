/* SPDX-License-Identifier: MIT */
/* Runs nginx_apply() once over a securelinkd.conf, in an sd-event loop, with
 * exactly the code securelinkd uses, so test_reload.py can drive it against a
 * real nginx:
 *
 *   nginx-apply-tool [--timeout=DURATION] [--cancel-after=DURATION] CONF
 *
 * Prints one line, `ok reloaded=1 not_running=0` (exit 0) or
 * `error <message>` (exit 1). With --cancel-after the op is freed after that
 * long; the tool then waits a little more to prove done is not called, and
 * prints `cancelled` (exit 0). Bad usage or config: exit 2. */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "nginx.h"
#include "util.h"

/* How long to keep the loop running after a cancel, for a late done. */
#define AFTER_CANCEL_USEC (300 * USEC_PER_MSEC)

typedef struct Tool {
	sd_event *event;
	NginxOp *op;
	bool cancelled;
	int done_calls;
	int exit_code;
} Tool;

static void on_done(void *userdata, const NginxResult *result)
{
	Tool *t = userdata;

	t->done_calls++;
	if (t->cancelled || t->done_calls > 1) {
		printf("error done called %s\n", t->cancelled ? "after the op was freed" : "twice");
		t->exit_code = 1;
	} else if (result->error == 0) {
		printf("ok reloaded=%d not_running=%d\n", result->reloaded, result->not_running);
		t->exit_code = 0;
	} else {
		printf("error %s\n", result->message ?: strerror(-result->error));
		t->exit_code = 1;
	}
	fflush(stdout);
	/* Freed from inside done, as securelinkd does. */
	t->op = nginx_op_free(t->op);
	(void)sd_event_exit(t->event, 0);
}

static int on_quit(sd_event_source *s, uint64_t usec, void *userdata)
{
	Tool *t = userdata;

	if (t->done_calls == 0) {
		printf("cancelled\n");
		t->exit_code = 0;
	}
	return sd_event_exit(t->event, 0);
}

static int on_cancel(sd_event_source *s, uint64_t usec, void *userdata)
{
	Tool *t = userdata;

	t->op = nginx_op_free(t->op);
	t->cancelled = true;
	return sd_event_add_time_relative(t->event, NULL, CLOCK_MONOTONIC, AFTER_CANCEL_USEC, 0,
	                                  on_quit, t);
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: nginx-apply-tool [--timeout=DURATION] [--cancel-after=DURATION] CONF\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "cancel-after", required_argument, NULL, 'c' },
		{},
	};
	_cleanup_(config_freep) Config *c = NULL;
	_cleanup_free_ char *error = NULL;
	usec_t timeout = 10 * USEC_PER_SEC, cancel_after = 0;
	Tool t = { .exit_code = 1 };
	sigset_t ss;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (opt) {
		case 't':
			if (parse_duration(optarg, &timeout) < 0 || timeout == 0)
				return usage();
			break;
		case 'c':
			if (parse_duration(optarg, &cancel_after) < 0 || cancel_after == 0)
				return usage();
			break;
		default:
			return usage();
		}
	}
	if (optind != argc - 1)
		return usage();

	/* As in securelinkd: sd_event_add_child() needs SIGCHLD blocked. */
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0) {
		perror("sigprocmask");
		return 2;
	}

	r = config_load(argv[optind], &c, &error);
	if (r < 0) {
		fprintf(stderr, "nginx-apply-tool: %s\n", error ?: strerror(-r));
		return 2;
	}

	r = sd_event_default(&t.event);
	if (r < 0) {
		fprintf(stderr, "nginx-apply-tool: sd_event_default: %s\n", strerror(-r));
		return 2;
	}

	r = nginx_apply(t.event, c, timeout, on_done, &t, &t.op);
	if (r < 0) {
		printf("error nginx_apply: %s\n", strerror(-r));
		sd_event_unref(t.event);
		return 1;
	}
	if (cancel_after > 0) {
		r = sd_event_add_time_relative(t.event, NULL, CLOCK_MONOTONIC, cancel_after, 0,
		                               on_cancel, &t);
		if (r < 0) {
			fprintf(stderr, "nginx-apply-tool: timer: %s\n", strerror(-r));
			return 2;
		}
	}

	r = sd_event_loop(t.event);
	if (r < 0) {
		printf("error event loop: %s\n", strerror(-r));
		t.exit_code = 1;
	}
	t.op = nginx_op_free(t.op);
	sd_event_unref(t.event);
	return t.exit_code;
}
