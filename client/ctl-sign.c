/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <time.h>

#include "base64url.h"
#include "config.h"
#include "json.h"
#include "proto.h"
#include "nginxconf.h"
#include "ctl.h"
#include "securelink-client.h"
#include "util.h"

typedef struct Item {
	char *target;
	uint64_t line; /* stdin line number, 0 for an argument */
} Item;

typedef struct SignContext {
	char **args;
	size_t n_args, next_arg;
	bool in_stdin;

	/* stdin, read without blocking once poll() says there is data */
	char *buf;
	size_t start, len, size;
	bool eof;
	uint64_t line_no;

	/* targets in flight, for the messages and --json */
	Item *items;
	size_t head, n_items, items_size;

	/* After a reconnect, the targets in flight are sent again first:
	 * replay_next counts up to replay_end, numbering items as n_done
	 * (those answered) plus their place in the ring. */
	uint64_t n_done, replay_next, replay_end;
	bool answered; /* a result came on the current connection */

	int worst;
	int read_error;
} SignContext;

static int items_push(SignContext *x, const char *target, uint64_t line)
{
	char *t;

	if (x->n_items == x->items_size) {
		size_t size = x->items_size ? x->items_size * 2 : 256;
		Item *items = calloc(size, sizeof(Item));

		if (!items)
			return -ENOMEM;
		for (size_t i = 0; i < x->n_items; i++)
			items[i] = x->items[(x->head + i) % x->items_size];
		free(x->items);
		x->items = items;
		x->items_size = size;
		x->head = 0;
	}
	t = strdup(target);
	if (!t)
		return -ENOMEM;
	x->items[(x->head + x->n_items) % x->items_size] = (Item){ t, line };
	x->n_items++;
	return 0;
}

static int stdin_next(SignContext *x, const char **ret)
{
	for (;;) {
		char *start = x->buf + x->start, *lf;
		size_t avail = x->len - x->start;
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		ssize_t k;

		lf = avail ? memchr(start, '\n', avail) : NULL;
		if (lf || (x->eof && avail > 0)) {
			/* The last line may lack its LF. */
			char *end = lf ? lf : x->buf + x->len;

			*end = '\0';
			if (end > start && end[-1] == '\r')
				end[-1] = '\0';
			x->start = (size_t)(end - x->buf) + (lf ? 1 : 0);
			x->line_no++;
			*ret = start;
			return 1;
		}
		if (x->eof)
			return 0;
		if (avail > STDIN_LINE_MAX) {
			x->read_error = -E2BIG;
			return -E2BIG;
		}

		if (x->start > 0) {
			memmove(x->buf, start, avail);
			x->len = avail;
			x->start = 0;
		}
		/* Always room for a NUL after the data. */
		if (x->size - x->len < 64 * 1024 + 1) {
			size_t size = x->size ? x->size * 2 : 128 * 1024;
			char *b = realloc(x->buf, size);

			if (!b)
				return -ENOMEM;
			x->buf = b;
			x->size = size;
		}

		/* Never block on stdin while answers wait: read only what is
		 * there, and let the results out before waiting. */
		if (poll(&p, 1, 0) == 0) {
			fflush(stdout);
			return -EAGAIN;
		}
		k = read(STDIN_FILENO, x->buf + x->len, x->size - x->len - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				fflush(stdout);
				return -EAGAIN;
			}
			x->read_error = -errno;
			return -errno;
		}
		if (k == 0)
			x->eof = true;
		x->len += (size_t)k;
	}
}

static int sign_next(void *userdata, const char **ret_target)
{
	SignContext *x = userdata;
	int r;

	if (x->replay_next < x->replay_end) {
		/* Answered in order: the next to send again is still in flight. */
		assert(x->replay_next >= x->n_done);
		*ret_target =
		    x->items[(x->head + (x->replay_next - x->n_done)) % x->items_size].target;
		x->replay_next++;
		return 1;
	}
	for (;;) {
		if (x->in_stdin) {
			r = stdin_next(x, ret_target);
			if (r < 0)
				return r;
			if (r > 0)
				return items_push(x, *ret_target, x->line_no) < 0 ? -ENOMEM : 1;
			x->in_stdin = false;
			continue;
		}
		if (x->next_arg >= x->n_args)
			return 0;
		*ret_target = x->args[x->next_arg++];
		if (streq(*ret_target, "-")) {
			x->in_stdin = true;
			continue;
		}
		return items_push(x, *ret_target, 0) < 0 ? -ENOMEM : 1;
	}
}

static void sign_result(void *userdata, size_t index, const char *url, SlError error,
                        const char *message)
{
	SignContext *x = userdata;
	_cleanup_free_ char *target = NULL;
	Item it;

	assert(x->n_items > 0);
	it = x->items[x->head];
	target = it.target;
	x->head = (x->head + 1) % x->items_size;
	x->n_items--;
	x->n_done++;
	x->answered = true;

	if (arg_json) {
		fputs("{\"target\":", stdout);
		ctl_json_print_string(stdout, target);
		if (url) {
			fputs(",\"url\":", stdout);
			ctl_json_print_string(stdout, url);
		} else {
			fprintf(stdout,
			        ",\"error\":\"%s\",\"message\":", sl_error_to_string(error));
			ctl_json_print_string(stdout, message ? message : "");
		}
		fputs("}\n", stdout);
	} else
		/* A failed item leaves an empty line: output line N stays the
		 * answer to input item N. */
		printf("%s\n", url ? url : "");

	if (!url) {
		char what[320], name[256];

		ctl_printable(target, name, sizeof(name));
		if (it.line > 0)
			snprintf(what, sizeof(what), "sign \"%s\" (stdin line %" PRIu64 ")", name,
			         it.line);
		else
			snprintf(what, sizeof(what), "sign \"%s\"", name);
		x->worst = ctl_exit_worse(x->worst, ctl_daemon_fail(what, error, message));
	}
}

/* A target read but not answered, after signing stopped for a failure that
 * was already reported: its empty line (--json: its object). */
static void sign_result_lost(SignContext *x, const char *code)
{
	_cleanup_free_ char *target = x->items[x->head].target;

	x->head = (x->head + 1) % x->items_size;
	x->n_items--;
	if (arg_json) {
		fputs("{\"target\":", stdout);
		ctl_json_print_string(stdout, target);
		fprintf(stdout, ",\"error\":\"%s\",\"message\":\"not signed\"}\n", code);
	} else
		fputs("\n", stdout);
}

static void sign_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] sign PATH|URL... [--ttl S | "
	       "--expires T] "
	       "[--ip A]\n"
	       "       securelinkctl [--socket PATH] [--json] sign --grant path|cookie DIR/... "
	       "[--ttl S | --expires T] [--ip A]\n"
	       "\n"
	       "Signs links. A target is a URL path (/media/private/a.pdf, percent-encoding\n"
	       "allowed) or an absolute http(s) URL. \"-\" reads targets from standard input,\n"
	       "one per line, and signs them pipelined over one connection.\n"
	       "Prints one URL per line in input order; a target that fails gives an empty\n"
	       "line (a JSON object with \"error\" with --json) and a message on stderr.\n"
	       "\n"
	       "With --grant, each target is a directory ending in / (a stream: a playlist\n"
	       "and its segments) and one grant admits every file under it: \"path\" prints\n"
	       "a base URL to put the file names after, \"cookie\" prints a \"Set-Cookie: \"\n"
	       "line with which the files open at their plain URLs. A public directory\n"
	       "prints its plain URL in both forms.\n"
	       "\n"
	       "      --grant F    sign directories: F is path or cookie\n"
	       "      --ttl S      lifetime: seconds, or 90s, 15m, 24h, 7d (default: the\n"
	       "                   daemon's default_link_ttl)\n"
	       "      --expires T  expiry as a unix time instead\n"
	       "      --ip A       bind the link to this client address (bind_ip = yes)\n"
	       "  -h, --help       show this help\n");
}

static int parse_ttl(const char *s, SlSignOptions *o)
{
	usec_t u;

	if (parse_duration(s, &u) < 0 || u % USEC_PER_SEC != 0 || u == 0 ||
	    u / USEC_PER_SEC > INT64_MAX)
		return ctl_fail(
		    EXIT_USAGE,
		    "sign: --ttl \"%s\" is not a lifetime (give whole seconds above 0: 3600, "
		    "90s, 15m, 24h, 7d)",
		    s);
	o->has_ttl = true;
	o->ttl = (int64_t)(u / USEC_PER_SEC);
	return EXIT_OK;
}

/* sign --grant: one SIGN <dir> grant=... per directory, in order. Failures
 * as sign reports them: an empty line (--json: an object with "error") and a
 * message, the most severe exit status. */
static int sign_grants(char **dirs, size_t n, SlGrantForm form, const SlSignOptions *o)
{
	SlClient *c = NULL;
	int worst = EXIT_OK, code, r = 0;
	size_t i = 0;

	code = ctl_client_open(REQUEST_TIMEOUT, &c);
	if (code != EXIT_OK)
		return code;
	for (; i < n; i++) {
		_cleanup_free_ char *answer = NULL;
		bool cookie;

		r = sl_client_grant(c, dirs[i], form, o, &answer);
		if (r < 0 && r != -EREMOTEIO)
			break;
		/* A public directory answers its plain URL: no cookie to set. */
		cookie = r >= 0 && strncmp(answer, SL_GRANT_COOKIE_NAME "=",
		                           STRLEN(SL_GRANT_COOKIE_NAME "=")) == 0;
		if (arg_json) {
			fputs("{\"target\":", stdout);
			ctl_json_print_string(stdout, dirs[i]);
			if (r >= 0) {
				fputs(cookie ? ",\"set_cookie\":" : ",\"url\":", stdout);
				ctl_json_print_string(stdout, answer);
			} else {
				fprintf(stdout, ",\"error\":\"%s\",\"message\":",
				        sl_error_to_string(sl_client_last_error(c)));
				ctl_json_print_string(stdout, sl_client_last_message(c));
			}
			fputs("}\n", stdout);
		} else if (r >= 0)
			printf("%s%s\n", cookie ? "Set-Cookie: " : "", answer);
		else
			fputs("\n", stdout);

		if (r < 0) {
			char what[320], name[256];

			ctl_printable(dirs[i], name, sizeof(name));
			snprintf(what, sizeof(what), "sign --grant \"%s\"", name);
			worst = ctl_exit_worse(worst, ctl_daemon_fail(what, sl_client_last_error(c),
			                                              sl_client_last_message(c)));
			/* The daemon refused the connection: nothing more will
			 * be answered on it. */
			if (sl_client_last_error(c) == SL_ERROR_UNAVAILABLE) {
				i++;
				break;
			}
		}
	}
	if (i < n) {
		/* The connection broke, or the daemon refused it (reported
		 * above): the directories not signed still get their line, so
		 * output line N stays the answer to item N. */
		if (r != -EREMOTEIO)
			worst = ctl_exit_worse(worst, ctl_transport_fail(r));
		for (; i < n; i++) {
			if (arg_json) {
				fputs("{\"target\":", stdout);
				ctl_json_print_string(stdout, dirs[i]);
				fprintf(stdout, ",\"error\":\"%s\",\"message\":\"not signed\"}\n",
				        r == -EREMOTEIO ? "unavailable" : "disconnected");
			} else
				fputs("\n", stdout);
		}
	}
	sl_client_free(c);

	if (fflush(stdout) != 0 || ferror(stdout))
		worst = ctl_exit_worse(
		    worst,
		    ctl_fail(EXIT_DAEMON, "cannot write to standard output: %s", strerror(errno)));
	return worst;
}

int verb_sign(int argc, char *argv[])
{
	enum {
		ARG_TTL = 0x100,
		ARG_EXPIRES,
		ARG_IP,
		ARG_GRANT
	};
	static const struct option options[] = {
		{ "grant", required_argument, NULL, ARG_GRANT },
		{ "ttl", required_argument, NULL, ARG_TTL },
		{ "expires", required_argument, NULL, ARG_EXPIRES },
		{ "ip", required_argument, NULL, ARG_IP },
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	SignContext x = { .worst = EXIT_OK };
	SlSignOptions o = {};
	SlClient *c = NULL;
	const char *lost = "disconnected";
	size_t n_stdin = 0;
	int grant = -1;
	uint64_t v;
	int opt, r, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case ARG_TTL:
			if (o.has_ttl)
				return ctl_repeated_option("sign", "--ttl");
			code = parse_ttl(optarg, &o);
			if (code != EXIT_OK)
				return code;
			break;
		case ARG_EXPIRES:
			if (o.has_expires)
				return ctl_repeated_option("sign", "--expires");
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > INT64_MAX)
				return ctl_fail(
				    EXIT_USAGE,
				    "sign: --expires \"%s\" is not a unix time (give seconds "
				    "since 1970, e.g. $(date -d tomorrow +%%s))",
				    optarg);
			o.has_expires = true;
			o.expires = (int64_t)v;
			break;
		case ARG_IP:
			if (o.ip)
				return ctl_repeated_option("sign", "--ip");
			if (!ctl_token_ok(optarg))
				return ctl_fail(
				    EXIT_USAGE,
				    "sign: --ip \"%s\" is not an address (give an IPv4 or IPv6 "
				    "address)",
				    optarg);
			o.ip = optarg;
			break;
		case ARG_GRANT:
			if (grant >= 0)
				return ctl_repeated_option("sign", "--grant");
			if (streq(optarg, "path"))
				grant = SL_GRANT_PATH;
			else if (streq(optarg, "cookie"))
				grant = SL_GRANT_COOKIE;
			else
				return ctl_fail(
				    EXIT_USAGE,
				    "sign: --grant \"%s\" is not a grant form (give path "
				    "or cookie)",
				    optarg);
			break;
		case 'h':
			sign_help();
			return EXIT_OK;
		default:
			code = ctl_global_option("sign", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (o.has_ttl && o.has_expires)
		return ctl_fail(EXIT_USAGE,
		                "sign: --ttl and --expires exclude each other (give one)");
	if (optind >= argc)
		return ctl_fail(EXIT_USAGE,
		                "sign: no target (give a URL path, a URL, or - for stdin)");
	x.args = argv + optind;
	x.n_args = (size_t)(argc - optind);
	for (size_t i = 0; i < x.n_args; i++)
		if (streq(x.args[i], "-"))
			n_stdin++;
	if (n_stdin > 1)
		return ctl_fail(EXIT_USAGE,
		                "sign: - given more than once (stdin can be read once)");
	if (grant >= 0) {
		if (n_stdin > 0)
			return ctl_fail(EXIT_USAGE,
			                "sign: --grant takes directories as arguments, not - "
			                "(give each DIR/ on the command line)");
		return sign_grants(x.args, x.n_args, (SlGrantForm)grant, &o);
	}

	code = ctl_client_open(REQUEST_TIMEOUT, &c);
	if (code != EXIT_OK)
		return code;
	for (;;) {
		x.answered = false;
		r = sl_client_sign_stream(c, &o, sign_next, n_stdin ? STDIN_FILENO : -1,
		                          sign_result, &x);
		if (r == -EREMOTEIO) {
			/* The daemon refused the connection and said why
			 * (max_connections): its reason, not "connection lost". */
			code = ctl_daemon_fail("sign", sl_client_last_error(c),
			                       sl_client_last_message(c));
			x.worst = ctl_exit_worse(x.worst, code);
			lost = sl_error_to_string(sl_client_last_error(c));
			break;
		}
		/* The daemon closed the connection: idle_timeout while stdin
		 * paused, or a restart. Every request is idempotent, so open a
		 * new one and send what was in flight again, as the Python client
		 * does; but only after this connection answered something, so a
		 * daemon that drops every connection is reported, not retried. */
		if ((r == -ECONNRESET || r == -EPIPE) && x.answered && x.read_error == 0) {
			sl_client_free(c);
			c = NULL;
			code = ctl_client_open(REQUEST_TIMEOUT, &c);
			if (code != EXIT_OK) {
				x.worst = ctl_exit_worse(x.worst, code);
				break;
			}
			x.replay_next = x.n_done;
			x.replay_end = x.n_done + x.n_items;
			continue;
		}
		break;
	}
	sl_client_free(c);

	if (r < 0 && r != -EREMOTEIO && code == EXIT_OK) {
		if (x.read_error == -E2BIG)
			code = ctl_fail(EXIT_USAGE,
			                "sign: stdin line %" PRIu64
			                " is longer than 1 MiB (give one target "
			                "per line)",
			                x.line_no + 1);
		else if (x.read_error < 0)
			code = ctl_fail(EXIT_USAGE, "sign: cannot read standard input: %s",
			                strerror(-x.read_error));
		else
			code = ctl_transport_fail(r);
		x.worst = ctl_exit_worse(x.worst, code);
	}
	/* Every target read gets its line, also when signing stopped: output
	 * line N stays the answer to input item N. */
	while (x.n_items > 0)
		sign_result_lost(&x, lost);
	for (size_t i = 0; i < x.n_items; i++)
		free(x.items[(x.head + i) % x.items_size].target);
	free(x.items);
	free(x.buf);

	if (fflush(stdout) != 0 || ferror(stdout))
		x.worst = ctl_exit_worse(
		    x.worst,
		    ctl_fail(EXIT_DAEMON, "cannot write to standard output: %s", strerror(errno)));
	return x.worst;
}

/* ---- verify ---- */

static void verify_help(void)
{
	printf(
	    "Usage: securelinkctl [--socket PATH] [--json] verify URL [--ip A] [--cookie "
	    "VALUE]\n"
	    "\n"
	    "Checks a signed link the way nginx will, and prints the verdict:\n"
	    "\"valid kid=N expires=T\", \"expired kid=N expires=T\", \"invalid REASON\" or\n"
	    "\"public\" (no signature needed). Exit status 0 valid or public, 1 invalid,\n"
	    "2 expired. A path grant's URL is checked as it is; a plain URL with\n"
	    "--cookie as nginx checks it requested with that grant cookie.\n"
	    "\n"
	    "      --ip A          the client address, for links bound to one (bind_ip = yes)\n"
	    "      --cookie VALUE  the securelink_grant cookie's value (KID.EXPIRES.DEPTH.TOKEN)\n"
	    "  -h, --help          show this help\n");
}

/* --json form of "valid kid=42 expires=1700000000" and friends. */
static void verify_print_json(const char *answer)
{
	const char *sp = strchr(answer, ' ');
	_cleanup_free_ char *verdict = strndup(answer, sp ? (size_t)(sp - answer) : strlen(answer));

	if (!verdict)
		return;
	fputs("{\"verdict\":", stdout);
	ctl_json_print_string(stdout, verdict);
	if (sp && streq(verdict, "invalid")) {
		fputs(",\"reason\":", stdout);
		ctl_json_print_string(stdout, sp + 1);
	} else if (sp) {
		_cleanup_strv_free_ char **fields = NULL;

		if (strv_split(sp + 1, &fields) >= 0)
			for (char **f = fields; *f; f++) {
				char *eq = strchr(*f, '=');
				uint64_t v;

				if (!eq)
					continue;
				*eq = '\0';
				fputc(',', stdout);
				ctl_json_print_string(stdout, *f);
				fputc(':', stdout);
				if (parse_u64(eq + 1, &v) >= 0)
					printf("%" PRIu64, v);
				else
					ctl_json_print_string(stdout, eq + 1);
			}
	}
	fputs("}\n", stdout);
}

int verb_verify(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "cookie", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *line = NULL, *answer = NULL;
	const char *ip = NULL, *cookie = NULL;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'i':
			if (ip)
				return ctl_repeated_option("verify", "--ip");
			if (!ctl_token_ok(optarg))
				return ctl_fail(
				    EXIT_USAGE,
				    "verify: --ip \"%s\" is not an address (give an IPv4 or IPv6 "
				    "address)",
				    optarg);
			ip = optarg;
			break;
		case 'c':
			if (cookie)
				return ctl_repeated_option("verify", "--cookie");
			/* As a browser's cookie list shows it, or the value alone. */
			cookie = optarg;
			if (strncmp(cookie, SL_GRANT_COOKIE_NAME "=",
			            STRLEN(SL_GRANT_COOKIE_NAME "=")) == 0)
				cookie += STRLEN(SL_GRANT_COOKIE_NAME "=");
			/* Not echoed: the value is a credential. */
			if (!ctl_token_ok(cookie) || strchr(cookie, ';'))
				return ctl_fail(
				    EXIT_USAGE,
				    "verify: --cookie is not a grant cookie's value (give "
				    "KID.EXPIRES.DEPTH.TOKEN, without \"; Path=...\")");
			break;
		case 'h':
			verify_help();
			return EXIT_OK;
		default:
			code = ctl_global_option("verify", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (argc - optind != 1)
		return ctl_fail(EXIT_USAGE,
		                "verify: give exactly one URL (see securelinkctl verify --help)");
	if (!*argv[optind])
		return ctl_fail(EXIT_USAGE, "verify: empty URL (give the signed URL to check)");
	if (!ctl_token_ok(argv[optind]))
		return ctl_fail(
		    EXIT_USAGE,
		    "verify: the URL contains a space or a control character (percent-encode "
		    "it)");
	if (asprintf(&line, "VERIFY %s%s%s%s%s", argv[optind], ip ? " ip=" : "", ip ? ip : "",
	             cookie ? " cookie=" : "", cookie ? cookie : "") < 0)
		return ctl_fail(EXIT_DAEMON, "out of memory");
	if (strlen(line) + 1 > SL_CLIENT_LINE_MAX)
		return ctl_fail(EXIT_USAGE,
		                "verify: the URL is too long (at most 8192 bytes per request)");

	code = ctl_request("verify", line, REQUEST_TIMEOUT, &answer);
	if (code != EXIT_OK)
		return code;

	if (arg_json)
		verify_print_json(answer);
	else
		printf("%s\n", answer);

	if (strncmp(answer, "valid", 5) == 0 && (answer[5] == ' ' || answer[5] == '\0'))
		return EXIT_OK;
	if (streq(answer, "public"))
		return EXIT_OK;
	if (strncmp(answer, "expired", 7) == 0 && (answer[7] == ' ' || answer[7] == '\0'))
		return EXIT_EXPIRED;
	if (strncmp(answer, "invalid", 7) == 0 && (answer[7] == ' ' || answer[7] == '\0'))
		return EXIT_INVALID;
	return ctl_fail(EXIT_DAEMON,
	                "verify: unexpected verdict from %s (is the daemon of the same "
	                "version?)",
	                ctl_socket_path());
}

/* ---- rotate, import-key: answers "kid=<n>" ---- */
