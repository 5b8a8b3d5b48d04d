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
#include "securelink-client.h"
#include "util.h"
#include "version.h"

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

static const char *arg_socket;
static bool arg_json;

static int fail(int code, const char *format, ...) _printf_(2, 3);
static int fail(int code, const char *format, ...)
{
	va_list ap;

	fputs("securelinkctl: ", stderr);
	va_start(ap, format);
	vfprintf(stderr, format, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* getopt's own messages are off (opterr = 0): one line, ours. */
static int bad_option(const char *verb, char *argv[])
{
	const char *o = argv[optind - 1];

	if (verb)
		return fail(EXIT_USAGE,
		            "%s: option \"%s\" is unknown or lacks its value (see securelinkctl %s "
		            "--help)",
		            verb, o, verb);
	return fail(EXIT_USAGE,
	            "option \"%s\" is unknown or lacks its value (see securelinkctl --help)", o);
}

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

/* Takes a global option wherever it stands; verb is NULL before the
 * command. Returns EXIT_OK, or the exit status for a bad one. --socket
 * given twice is refused, as a command's own options are: one of two paths
 * must not win silently. */
static int global_option(const char *verb, int opt, char *argv[])
{
	switch (opt) {
	case ARG_GLOBAL_SOCKET:
		if (arg_socket)
			return fail(EXIT_USAGE, "--socket given more than once (give it once)");
		if (!*optarg)
			return fail(EXIT_USAGE, "--socket: empty path (give the socket's path)");
		arg_socket = optarg;
		return EXIT_OK;
	case ARG_GLOBAL_JSON:
		arg_json = true;
		return EXIT_OK;
	default:
		return bad_option(verb, argv);
	}
}

/* The protocol refuses a repeated field: an option given twice is refused
 * here too, rather than one of its values silently winning. */
static int repeated_option(const char *verb, const char *option)
{
	return fail(EXIT_USAGE, "%s: %s given more than once (give it once)", verb, option);
}

static const char *socket_path(void)
{
	return sl_client_socket_path(arg_socket);
}

/* For messages: control bytes shown as '?', long items cut, so that an item
 * read from stdin cannot break the one-line-per-error promise. */
static void printable(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 4 < size; s++)
		buf[n++] = ((unsigned char)*s < ' ' || *s == 0x7f) ? '?' : *s;
	if (*s) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

static int exit_for_error(SlError e)
{
	switch (e) {
	case SL_ERROR_NONE:
		return EXIT_OK;
	case SL_ERROR_FORBIDDEN:
		return EXIT_FORBIDDEN;
	case SL_ERROR_UNAVAILABLE:
	case SL_ERROR_INTERNAL:
	case SL_ERROR_UNKNOWN:
	case _SL_ERROR_MAX:
		return EXIT_DAEMON;
	default:
		return EXIT_REFUSED;
	}
}

/* Which of two failures sign reports: the one that needs an admin first. */
static int exit_worse(int a, int b)
{
	static const int rank[] = {
		[EXIT_OK] = 0,     [EXIT_INVALID] = 1,     [EXIT_EXPIRED] = 1,
		[EXIT_USAGE] = 2,  [EXIT_REFUSED] = 3,     [EXIT_FORBIDDEN] = 4,
		[EXIT_DAEMON] = 5, [EXIT_UNREACHABLE] = 6,
	};
	return rank[b] > rank[a] ? b : a;
}

static const char *error_hint(SlError e)
{
	switch (e) {
	case SL_ERROR_FORBIDDEN:
		return "run it as root or as a member of the daemon's admin_group";
	case SL_ERROR_UNAVAILABLE:
		return "see securelinkctl status and journalctl -u securelinkd";
	case SL_ERROR_INTERNAL:
	case SL_ERROR_UNKNOWN:
		return "see journalctl -u securelinkd";
	case SL_ERROR_BAD_TARGET:
		return "give a URL path starting with / or an http(s) URL, without query";
	case SL_ERROR_BAD_TTL:
		return "give a lifetime above 0 or an expiry in the future";
	case SL_ERROR_TTL_TOO_LONG:
		return "the daemon's max_link_ttl is the limit";
	case SL_ERROR_BAD_IP:
		return "give an IPv4 or IPv6 address";
	default:
		return "see securelinkctl --help";
	}
}

/* The daemon's messages usually end with their own "(fix)"; add ours only
 * when they do not. */
static int daemon_fail(const char *what, SlError e, const char *message)
{
	size_t l = message ? strlen(message) : 0;
	char buf[512];

	printable(l ? message : sl_error_to_string(e), buf, sizeof(buf));
	if (l > 0 && message[l - 1] == ')')
		return fail(exit_for_error(e), "%s: %s: %s", what, sl_error_to_string(e), buf);
	return fail(exit_for_error(e), "%s: %s: %s (%s)", what, sl_error_to_string(e), buf,
	            error_hint(e));
}

static int connect_fail(int r)
{
	const char *fix;
	int code = EXIT_UNREACHABLE;

	switch (-r) {
	case ENOENT:
	case ECONNREFUSED:
		fix = "is securelinkd.socket running?";
		break;
	case EACCES:
	case EPERM:
		fix = "add the user to the securelink group, or run it as root";
		code = EXIT_FORBIDDEN;
		break;
	case ENAMETOOLONG:
		fix = "use a socket path shorter than 108 bytes";
		code = EXIT_USAGE;
		break;
	default:
		fix = "check --socket and $SECURELINK_SOCKET";
		break;
	}
	return fail(code, "cannot connect to %s: %s (%s)", socket_path(), strerror(-r), fix);
}

static int transport_fail(int r)
{
	switch (-r) {
	case ETIMEDOUT:
		return fail(EXIT_UNREACHABLE,
		            "no answer from %s: %s (see journalctl -u securelinkd)", socket_path(),
		            strerror(-r));
	case EBADMSG:
	case EMSGSIZE:
		return fail(EXIT_DAEMON,
		            "unexpected answer from %s: %s (is the daemon securelinkd, of the same "
		            "version?)",
		            socket_path(), strerror(-r));
	case ENOMEM:
		return fail(EXIT_DAEMON, "out of memory");
	default:
		return fail(EXIT_UNREACHABLE,
		            "lost the connection to %s: %s (see journalctl -u securelinkd)",
		            socket_path(), strerror(-r));
	}
}

static int client_open(uint64_t timeout, SlClient **ret)
{
	int r = sl_client_connect(arg_socket, ret);

	if (r < 0)
		return connect_fail(r);
	sl_client_set_timeout(*ret, timeout);
	return EXIT_OK;
}

/* One request; returns an exit code, and on success the answer text. */
static int request(const char *what, const char *line, uint64_t timeout, char **ret_answer)
{
	SlClient *c = NULL;
	int r, code;

	code = client_open(timeout, &c);
	if (code != EXIT_OK)
		return code;
	r = sl_client_request(c, line, ret_answer);
	if (r == -EREMOTEIO)
		code = daemon_fail(what, sl_client_last_error(c), sl_client_last_message(c));
	else if (r < 0)
		code = transport_fail(r);
	sl_client_free(c);
	return code;
}

/* A token sent as one field of a request line: no space or control byte. */
static bool token_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

static int json_print_string(FILE *f, const char *s)
{
	_cleanup_free_ char *e = NULL;

	if (json_escape(s, &e) < 0)
		return -ENOMEM;
	fprintf(f, "\"%s\"", e);
	return 0;
}

/* ---- sign ---- */

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
		json_print_string(stdout, target);
		if (url) {
			fputs(",\"url\":", stdout);
			json_print_string(stdout, url);
		} else {
			fprintf(stdout,
			        ",\"error\":\"%s\",\"message\":", sl_error_to_string(error));
			json_print_string(stdout, message ? message : "");
		}
		fputs("}\n", stdout);
	} else
		/* A failed item leaves an empty line: output line N stays the
		 * answer to input item N. */
		printf("%s\n", url ? url : "");

	if (!url) {
		char what[320], name[256];

		printable(target, name, sizeof(name));
		if (it.line > 0)
			snprintf(what, sizeof(what), "sign \"%s\" (stdin line %" PRIu64 ")", name,
			         it.line);
		else
			snprintf(what, sizeof(what), "sign \"%s\"", name);
		x->worst = exit_worse(x->worst, daemon_fail(what, error, message));
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
		json_print_string(stdout, target);
		fprintf(stdout, ",\"error\":\"%s\",\"message\":\"not signed\"}\n", code);
	} else
		fputs("\n", stdout);
}

static void sign_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] sign PATH|URL... [--ttl S | "
	       "--expires T] "
	       "[--ip A]\n"
	       "\n"
	       "Signs links. A target is a URL path (/media/private/a.pdf, percent-encoding\n"
	       "allowed) or an absolute http(s) URL. \"-\" reads targets from standard input,\n"
	       "one per line, and signs them pipelined over one connection.\n"
	       "Prints one URL per line in input order; a target that fails gives an empty\n"
	       "line (a JSON object with \"error\" with --json) and a message on stderr.\n"
	       "\n"
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
		return fail(
		    EXIT_USAGE,
		    "sign: --ttl \"%s\" is not a lifetime (give whole seconds above 0: 3600, "
		    "90s, 15m, 24h, 7d)",
		    s);
	o->has_ttl = true;
	o->ttl = (int64_t)(u / USEC_PER_SEC);
	return EXIT_OK;
}

static int verb_sign(int argc, char *argv[])
{
	enum {
		ARG_TTL = 0x100,
		ARG_EXPIRES,
		ARG_IP
	};
	static const struct option options[] = {
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
	uint64_t v;
	int opt, r, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case ARG_TTL:
			if (o.has_ttl)
				return repeated_option("sign", "--ttl");
			code = parse_ttl(optarg, &o);
			if (code != EXIT_OK)
				return code;
			break;
		case ARG_EXPIRES:
			if (o.has_expires)
				return repeated_option("sign", "--expires");
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > INT64_MAX)
				return fail(
				    EXIT_USAGE,
				    "sign: --expires \"%s\" is not a unix time (give seconds "
				    "since 1970, e.g. $(date -d tomorrow +%%s))",
				    optarg);
			o.has_expires = true;
			o.expires = (int64_t)v;
			break;
		case ARG_IP:
			if (o.ip)
				return repeated_option("sign", "--ip");
			if (!token_ok(optarg))
				return fail(
				    EXIT_USAGE,
				    "sign: --ip \"%s\" is not an address (give an IPv4 or IPv6 "
				    "address)",
				    optarg);
			o.ip = optarg;
			break;
		case 'h':
			sign_help();
			return EXIT_OK;
		default:
			code = global_option("sign", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (o.has_ttl && o.has_expires)
		return fail(EXIT_USAGE, "sign: --ttl and --expires exclude each other (give one)");
	if (optind >= argc)
		return fail(EXIT_USAGE, "sign: no target (give a URL path, a URL, or - for stdin)");
	x.args = argv + optind;
	x.n_args = (size_t)(argc - optind);
	for (size_t i = 0; i < x.n_args; i++)
		if (streq(x.args[i], "-"))
			n_stdin++;
	if (n_stdin > 1)
		return fail(EXIT_USAGE, "sign: - given more than once (stdin can be read once)");

	code = client_open(REQUEST_TIMEOUT, &c);
	if (code != EXIT_OK)
		return code;
	for (;;) {
		x.answered = false;
		r = sl_client_sign_stream(c, &o, sign_next, n_stdin ? STDIN_FILENO : -1,
		                          sign_result, &x);
		if (r == -EREMOTEIO) {
			/* The daemon refused the connection and said why
			 * (max_connections): its reason, not "connection lost". */
			code =
			    daemon_fail("sign", sl_client_last_error(c), sl_client_last_message(c));
			x.worst = exit_worse(x.worst, code);
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
			code = client_open(REQUEST_TIMEOUT, &c);
			if (code != EXIT_OK) {
				x.worst = exit_worse(x.worst, code);
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
			code = fail(EXIT_USAGE,
			            "sign: stdin line %" PRIu64
			            " is longer than 1 MiB (give one target "
			            "per line)",
			            x.line_no + 1);
		else if (x.read_error < 0)
			code = fail(EXIT_USAGE, "sign: cannot read standard input: %s",
			            strerror(-x.read_error));
		else
			code = transport_fail(r);
		x.worst = exit_worse(x.worst, code);
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
		x.worst =
		    exit_worse(x.worst, fail(EXIT_DAEMON, "cannot write to standard output: %s",
		                             strerror(errno)));
	return x.worst;
}

/* ---- verify ---- */

static void verify_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] verify URL [--ip A]\n"
	       "\n"
	       "Checks a signed link the way nginx will, and prints the verdict:\n"
	       "\"valid kid=N expires=T\", \"expired kid=N expires=T\", \"invalid REASON\" or\n"
	       "\"public\" (no signature needed). Exit status 0 valid or public, 1 invalid,\n"
	       "2 expired.\n"
	       "\n"
	       "      --ip A   the client address, for links bound to one (bind_ip = yes)\n"
	       "  -h, --help   show this help\n");
}

/* --json form of "valid kid=42 expires=1700000000" and friends. */
static void verify_print_json(const char *answer)
{
	const char *sp = strchr(answer, ' ');
	_cleanup_free_ char *verdict = strndup(answer, sp ? (size_t)(sp - answer) : strlen(answer));

	if (!verdict)
		return;
	fputs("{\"verdict\":", stdout);
	json_print_string(stdout, verdict);
	if (sp && streq(verdict, "invalid")) {
		fputs(",\"reason\":", stdout);
		json_print_string(stdout, sp + 1);
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
				json_print_string(stdout, *f);
				fputc(':', stdout);
				if (parse_u64(eq + 1, &v) >= 0)
					printf("%" PRIu64, v);
				else
					json_print_string(stdout, eq + 1);
			}
	}
	fputs("}\n", stdout);
}

static int verb_verify(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *line = NULL, *answer = NULL;
	const char *ip = NULL;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'i':
			if (ip)
				return repeated_option("verify", "--ip");
			if (!token_ok(optarg))
				return fail(
				    EXIT_USAGE,
				    "verify: --ip \"%s\" is not an address (give an IPv4 or IPv6 "
				    "address)",
				    optarg);
			ip = optarg;
			break;
		case 'h':
			verify_help();
			return EXIT_OK;
		default:
			code = global_option("verify", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (argc - optind != 1)
		return fail(EXIT_USAGE,
		            "verify: give exactly one URL (see securelinkctl verify --help)");
	if (!*argv[optind])
		return fail(EXIT_USAGE, "verify: empty URL (give the signed URL to check)");
	if (!token_ok(argv[optind]))
		return fail(
		    EXIT_USAGE,
		    "verify: the URL contains a space or a control character (percent-encode "
		    "it)");
	if (asprintf(&line, "VERIFY %s%s%s", argv[optind], ip ? " ip=" : "", ip ? ip : "") < 0)
		return fail(EXIT_DAEMON, "out of memory");
	if (strlen(line) + 1 > SL_CLIENT_LINE_MAX)
		return fail(EXIT_USAGE,
		            "verify: the URL is too long (at most 8192 bytes per request)");

	code = request("verify", line, REQUEST_TIMEOUT, &answer);
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
	return fail(EXIT_DAEMON,
	            "verify: unexpected verdict from %s (is the daemon of the same "
	            "version?)",
	            socket_path());
}

/* ---- rotate, import-key: answers "kid=<n>" ---- */

static int print_kid(const char *what, const char *answer)
{
	uint64_t kid;

	if (strncmp(answer, "kid=", 4) != 0 || parse_u64(answer + 4, &kid) < 0)
		return fail(EXIT_DAEMON,
		            "%s: unexpected answer from %s (is the daemon of the same "
		            "version?)",
		            what, socket_path());
	if (arg_json)
		printf("{\"kid\":%" PRIu64 "}\n", kid);
	else
		printf("%" PRIu64 "\n", kid);
	return EXIT_OK;
}

static void rotate_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] rotate [--revoke]\n"
	       "\n"
	       "Makes a new signing key: publishes it to nginx, waits until nginx has it and\n"
	       "it signs, then prints its kid. Needs root or the daemon's admin_group.\n"
	       "\n"
	       "      --revoke  after a compromise: the new key signs at once and every older\n"
	       "                key is dropped, so every link signed before stops working\n"
	       "  -h, --help    show this help\n");
}

static int verb_rotate(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "revoke", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *answer = NULL;
	bool revoke = false;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'r':
			revoke = true;
			break;
		case 'h':
			rotate_help();
			return EXIT_OK;
		default:
			code = global_option("rotate", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return fail(EXIT_USAGE,
		            "rotate: unexpected argument \"%s\" (see securelinkctl rotate "
		            "--help)",
		            argv[optind]);

	code = request("rotate", revoke ? "ROTATE revoke" : "ROTATE", 0, &answer);
	if (code != EXIT_OK)
		return code;
	return print_kid("rotate", answer);
}

static void import_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] import-key < SECRET-FILE\n"
	       "\n"
	       "Imports the secret of an existing django-nginx-secure-links deployment\n"
	       "(SECURE_LINK_SECRET_KEY) as a legacy key, so links signed with it keep working\n"
	       "until max_link_ttl after the import. Reads the secret from standard input\n"
	       "(never from the command line, where other users could see it); one trailing\n"
	       "newline is removed; at most 256 bytes. Prints the legacy key's kid once nginx\n"
	       "has it. One legacy key at a time (a second secret is refused).\n"
	       "Needs root or the daemon's admin_group.\n"
	       "\n"
	       "  -h, --help   show this help\n");
}

static int verb_import_key(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	/* The secret passes through these buffers only; they are wiped before
	 * return, whatever happens. */
	char secret[SECRET_MAX + 1];
	char line[STRLEN("IMPORT ") + (SECRET_MAX / 3 + 1) * 4 + 1];
	_cleanup_free_ char *answer = NULL;
	size_t n = 0;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			import_help();
			return EXIT_OK;
		default:
			code = global_option("import-key", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return fail(EXIT_USAGE,
		            "import-key: unexpected argument (give the secret on standard input, "
		            "never on the command line)");

	while (n < sizeof(secret)) {
		ssize_t k = read(STDIN_FILENO, secret + n, sizeof(secret) - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			code = fail(EXIT_USAGE, "import-key: cannot read standard input: %s",
			            strerror(errno));
			goto finish;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > SECRET_MAX) {
		code =
		    fail(EXIT_USAGE,
		         "import-key: the secret on standard input is longer than %u bytes (give "
		         "only the secret)",
		         SECRET_MAX);
		goto finish;
	}
	if (n > 0 && secret[n - 1] == '\n')
		n--;
	if (n == 0) {
		code =
		    fail(EXIT_USAGE, "import-key: no secret on standard input (echo \"$SECRET\" | "
		                     "securelinkctl import-key)");
		goto finish;
	}

	memcpy(line, "IMPORT ", STRLEN("IMPORT "));
	base64url_encode(secret, n, line + STRLEN("IMPORT "));
	code = request("import-key", line, 0, &answer);
	if (code == EXIT_OK)
		code = print_kid("import-key", answer);

finish:
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(line, sizeof(line));
	return code;
}

/* ---- status ---- */

static void status_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] status\n"
	       "\n"
	       "Shows the active key, the next rotation, every key with its state and times,\n"
	       "the last nginx reload and the counters; in fleet mode (mode = derived) also the\n"
	       "epoch and a master roll's times. --json prints the daemon's JSON as is.\n"
	       "\n"
	       "  -h, --help   show this help\n");
}

static void format_relative(char *buf, size_t size, uint64_t t, uint64_t now)
{
	static const struct {
		const char *unit;
		uint64_t sec;
	} units[] = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
	uint64_t d = t > now ? t - now : now - t;
	size_t n = 0;
	int shown = 0;

	if (t > now)
		n += (size_t)snprintf(buf, size, "in ");
	if (d == 0)
		n += (size_t)snprintf(buf + n, size - n, "0s");
	/* The two largest units say enough: "in 5h 3m". */
	for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2 && n < size; i++) {
		uint64_t v = d / units[i].sec;

		if (v == 0 && shown == 0)
			continue;
		d -= v * units[i].sec;
		if (v > 0)
			n += (size_t)snprintf(buf + n, size - n, "%s%" PRIu64 "%s",
			                      shown ? " " : "", v, units[i].unit);
		shown++;
	}
	if (t <= now && n < size)
		snprintf(buf + n, size - n, " ago");
}

static void format_time(char *buf, size_t size, const Json *j)
{
	uint64_t t;
	time_t tt;
	struct tm tm;

	if (json_get_u64(j, &t) < 0 || t > INT64_MAX) {
		snprintf(buf, size, "-");
		return;
	}
	tt = (time_t)t;
	if (!localtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%" PRIu64, t);
}

static void print_when(const char *label, const Json *j, uint64_t now)
{
	char abs[64], rel[64];
	uint64_t t;

	if (json_get_u64(j, &t) < 0) {
		printf("%-15s -\n", label);
		return;
	}
	format_time(abs, sizeof(abs), j);
	format_relative(rel, sizeof(rel), t, now);
	printf("%-15s %s (%s)\n", label, abs, rel);
}

static void print_u64_field(const char *label, const Json *j)
{
	uint64_t v;

	if (json_get_u64(j, &v) >= 0)
		printf("%-15s %" PRIu64 "\n", label, v);
	else
		printf("%-15s -\n", label);
}

static int status_print_table(const char *text)
{
	_cleanup_(json_freep) Json *j = NULL;
	const Json *keys, *nginx, *counters, *v;
	uint64_t now = now_realtime() / USEC_PER_SEC, a, b, e;
	char buf[256];

	if (json_parse(text, &j) < 0 || j->type != JSON_OBJECT)
		return fail(EXIT_DAEMON,
		            "status: the daemon's JSON is malformed (try --json to see it)");

	/* Before anything else: links that protect nothing. */
	nginx = json_get(j, "nginx");
	v = json_get(nginx, "enforcing");
	if (v && v->type == JSON_BOOLEAN && !v->boolean) {
		const Json *why = json_get(nginx, "enforcing_reason"),
		           *url = json_get(nginx, "probe_url");
		char reason[1024];

		printable(why && why->type == JSON_STRING ? why->text : "", reason, sizeof(reason));
		printf("%-15s nginx serves private files WITHOUT A TOKEN: %s\n",
		       "FAIL-OPEN:", reason);
		printable(url && url->type == JSON_STRING ? url->text : "", buf, sizeof(buf));
		printf("%-15s %s\n", "Probed URL:", buf);
	}

	if (json_get_u64(json_get(j, "active_kid"), &a) >= 0)
		printf("%-15s %" PRIu64 "\n", "Active key:", a);
	else
		printf("%-15s none yet (publishing to nginx)\n", "Active key:");
	print_when("Next rotation:", json_get(j, "next_rotation"), now);
	v = json_get(j, "mode");
	if (v && v->type == JSON_STRING) {
		printable(v->text, buf, sizeof(buf));
		printf("%-15s %s\n", "Key mode:", buf);
	}
	/* mode = derived: kids are epochs; a master roll has two times. */
	if (json_get_u64(json_get(j, "epoch"), &a) >= 0)
		printf("%-15s %" PRIu64 " (the next one is published ahead)\n", "Epoch:", a);
	if (json_get_u64(json_get(j, "master_switch"), &a) >= 0) {
		print_when("Master switch:", json_get(j, "master_switch"), now);
		print_when("Previous until:", json_get(j, "previous_master_until"), now);
	}

	nginx = json_get(j, "nginx");
	v = json_get(nginx, "ok");
	if (v && v->type == JSON_BOOLEAN)
		printf("%-15s %s\n", "nginx:", v->boolean ? "ok" : "ERROR");
	v = json_get(nginx, "error");
	if (v && v->type == JSON_STRING) {
		printable(v->text, buf, sizeof(buf));
		printf("%-15s %s\n", "nginx error:", buf);
	}
	v = json_get(nginx, "confirmation");
	if (v && v->type == JSON_STRING) {
		static const struct {
			const char *value, *text;
		} meanings[] = {
			{ "workers-replaced", "nginx runs new workers with the files" },
			{ "not-running",
			  "nginx is not running; it reads the files when it starts" },
			{ "reload-command", "test passed, reload command exited 0 (unconfirmed)" },
			{ "test-only", "test passed; nothing reloaded (reload = none)" },
			{ "unchecked", "files written; no test, no reload" },
		};
		const char *meaning = NULL;

		printable(v->text, buf, sizeof(buf));
		for (size_t i = 0; i < ELEMENTSOF(meanings); i++)
			if (streq(buf, meanings[i].value))
				meaning = meanings[i].text;
		printf("%-15s %s\n", "Confirmed by:", meaning ?: buf);
	}
	print_when("Last reload:", json_get(nginx, "last_reload"), now);
	v = json_get(nginx, "enforcing");
	if (v && (v->type == JSON_BOOLEAN || v->type == JSON_NULL))
		printf("%-15s %s\n", "Enforcing:",
		       v->type == JSON_NULL ? "unknown (no probe answered yet, or probe = no)"
		       : v->boolean         ? "yes (a private path without a token got 403)"
		                            : "NO (see FAIL-OPEN above)");
	print_when("Last probe:", json_get(nginx, "last_probe"), now);

	/* Requests answered "queued": they complete once nginx takes the keys. */
	v = json_get(j, "queued");
	if (v && v->type == JSON_ARRAY)
		for (size_t i = 0; i < v->n; i++) {
			const Json *q = v->items[i], *what = json_get(q, "request");
			char since[64] = "-", rel[64] = "";
			uint64_t t;

			if (!what || what->type != JSON_STRING)
				continue;
			printable(what->text, buf, 32);
			if (json_get_u64(json_get(q, "since"), &t) >= 0) {
				format_time(since, sizeof(since), json_get(q, "since"));
				format_relative(rel, sizeof(rel), t, now);
			}
			if (json_get_u64(json_get(q, "kid"), &a) >= 0)
				printf("%-15s %s of key %" PRIu64
				       ", since %s (%s); completes once nginx "
				       "accepts the keys\n",
				       "Queued:", buf, a, since, rel);
			else
				printf("%-15s %s, since %s (%s); completes once nginx accepts the "
				       "keys\n",
				       "Queued:", buf, since, rel);
		}

	counters = json_get(j, "counters");
	if (json_get_u64(json_get(counters, "signed"), &a) >= 0 &&
	    json_get_u64(json_get(counters, "errors"), &b) >= 0 &&
	    json_get_u64(json_get(counters, "rotations"), &e) >= 0)
		printf("%-15s %" PRIu64 " links signed, %" PRIu64 " errors, %" PRIu64
		       " rotations\n",
		       "Counters:", a, b, e);
	else {
		print_u64_field("Signed:", json_get(counters, "signed"));
		print_u64_field("Errors:", json_get(counters, "errors"));
		print_u64_field("Rotations:", json_get(counters, "rotations"));
	}

	keys = json_get(j, "keys");
	if (keys && keys->type == JSON_ARRAY) {
		printf("\n%-10s %-17s %-19s  %-19s  %-19s  %-19s\n", "KID", "STATE", "PUBLISHED",
		       "ACTIVATED", "RETIRED", "DROP AFTER");
		for (size_t i = 0; i < keys->n; i++) {
			const Json *k = keys->items[i], *l;
			char p[32], ac[32], r[32], d[32], kid[24] = "-", state[32] = "?";

			if (json_get_u64(json_get(k, "kid"), &a) >= 0)
				snprintf(kid, sizeof(kid), "%" PRIu64, a);
			v = json_get(k, "state");
			if (v && v->type == JSON_STRING)
				printable(v->text, state, 16);
			l = json_get(k, "legacy");
			if (l && l->type == JSON_BOOLEAN && l->boolean)
				strncat(state, " (legacy)", sizeof(state) - strlen(state) - 1);
			format_time(p, sizeof(p), json_get(k, "published"));
			format_time(ac, sizeof(ac), json_get(k, "activated"));
			format_time(r, sizeof(r), json_get(k, "retired"));
			format_time(d, sizeof(d), json_get(k, "drop_after"));
			printf("%-10s %-17s %-19s  %-19s  %-19s  %-19s\n", kid, state, p, ac, r, d);
		}
	}
	return EXIT_OK;
}

static int verb_status(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_free_ char *answer = NULL;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			status_help();
			return EXIT_OK;
		default:
			code = global_option("status", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return fail(EXIT_USAGE,
		            "status: unexpected argument \"%s\" (see securelinkctl status "
		            "--help)",
		            argv[optind]);

	code = request("status", "STATUS", REQUEST_TIMEOUT, &answer);
	if (code != EXIT_OK)
		return code;
	if (arg_json) {
		printf("%s\n", answer);
		return EXIT_OK;
	}
	return status_print_table(answer);
}

/* ---- check ---- */

static void check_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] check\n"
	       "\n"
	       "Asks securelinkd to probe nginx now: a random private name without a token\n"
	       "must get 403, and signed with the newest key must pass nginx's check. Prints\n"
	       "the verdict and, when links are not enforced, the cause and the fix. Needs\n"
	       "root or the admin_group. Exit 0: nginx enforces the links; 1: it does not,\n"
	       "or cannot be asked (probe = no); 4 and up as for the other commands.\n"
	       "\n"
	       "  -h, --help   show this help\n");
}

static const char *json_text(const Json *j, const char *key)
{
	const Json *v = json_get(j, key);

	return v && v->type == JSON_STRING ? v->text : NULL;
}

static int check_print(const char *text)
{
	_cleanup_(json_freep) Json *j = NULL;
	const char *verdict, *reason, *url, *error;
	char buf[1024];

	if (json_parse(text, &j) < 0 || j->type != JSON_OBJECT || !json_text(j, "verdict"))
		return fail(EXIT_DAEMON,
		            "check: the daemon's JSON is malformed (try --json to see it)");
	verdict = json_text(j, "verdict");
	reason = json_text(j, "reason");
	url = json_text(j, "probe_url");
	error = json_text(j, "error");

	if (streq(verdict, "pass") || streq(verdict, "public-refused")) {
		printf("nginx enforces the links: a private path without a token got 403, and a\n"
		       "link of the newest key passed the check.\n");
		if (streq(verdict, "public-refused"))
			printf("But a public path got 403: files SIGN answers unsigned are "
			       "refused (serve_public = yes, or serve media_url's public part).\n");
		return EXIT_OK;
	}
	if (streq(verdict, "off")) {
		printf("The probes are off ([nginx] probe = no, or reload = none without probe):\n"
		       "securelinkd cannot tell whether nginx checks the links. Set [nginx] probe\n"
		       "to the origin nginx serves links on (e.g. http://127.0.0.1).\n");
		return 1;
	}
	if (streq(verdict, "fail-open")) {
		printable(reason ? reason : "", buf, sizeof(buf));
		printf("FAIL-OPEN: nginx serves private files WITHOUT A TOKEN.\n%s\n", buf);
		printable(url ? url : "", buf, sizeof(buf));
		printf("Probed URL: %s\n", buf);
		printf("Fix: include the locations file in the server {} that serves base_url\n"
		       "(securelinkctl nginx-config prints the line), remove the site's own\n"
		       "location for media_url and any rewrite or return that takes the path\n"
		       "first, then reload nginx and run securelinkctl check again.\n");
		return 1;
	}
	printable(error ? error : verdict, buf, sizeof(buf));
	printf("nginx does not check links with securelinkd's keys: %s\n", buf);
	return 1;
}

static int verb_check(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_free_ char *answer = NULL;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			check_help();
			return EXIT_OK;
		default:
			return bad_option("check", argv);
		}
	}
	if (optind < argc)
		return fail(EXIT_USAGE,
		            "check: unexpected argument \"%s\" (see securelinkctl check --help)",
		            argv[optind]);

	code = request("check", "CHECK", REQUEST_TIMEOUT, &answer);
	if (code != EXIT_OK)
		return code;
	if (arg_json) {
		_cleanup_(json_freep) Json *j = NULL;
		const char *v;

		printf("%s\n", answer);
		if (json_parse(answer, &j) < 0 || !(v = json_text(j, "verdict")))
			return EXIT_DAEMON;
		return streq(v, "pass") || streq(v, "public-refused") ? EXIT_OK : 1;
	}
	return check_print(answer);
}

/* ---- metrics ---- */

static void metrics_help(void)
{
	printf("Usage: securelinkctl [--socket PATH] metrics [-o FILE]\n"
	       "\n"
	       "Prints securelinkd's counters and times in the Prometheus text format that\n"
	       "node_exporter's textfile collector reads: links signed, errors by code,\n"
	       "rotations, reload and probe failures, whether nginx enforces the links (1, 0,\n"
	       "NaN before a probe answered), the active key's age, the seconds to the next\n"
	       "rotation and to each key's drop. securelink-metrics.timer writes it to\n"
	       "/var/lib/prometheus/node-exporter/securelink.prom.\n"
	       "\n"
	       "  -o, --output FILE  write FILE (through FILE.tmp and a rename) instead of\n"
	       "                     standard output; when securelinkd cannot be asked,\n"
	       "                     FILE says securelink_up 0 and the exit status the cause\n"
	       "  -h, --help         show this help\n");
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(FILE *f, const char *name, const char *type, const char *help, const Json *v)
{
	uint64_t n;

	if (json_get_u64(v, &n) < 0)
		return;
	metric_head(f, name, type, help);
	fprintf(f, "%s %" PRIu64 "\n", name, n);
}

/* Seconds from now to t (negative when past); nothing for a null time. */
static bool seconds_to(const Json *t, uint64_t now, int64_t *ret)
{
	uint64_t v;

	if (json_get_u64(t, &v) < 0)
		return false;
	*ret = (int64_t)v - (int64_t)now;
	return true;
}

static int metrics_print(FILE *f, const char *text)
{
	_cleanup_(json_freep) Json *j = NULL;
	const Json *counters, *nginx, *keys, *by_code, *v;
	uint64_t now = now_realtime() / USEC_PER_SEC, kid;
	int64_t s;

	if (json_parse(text, &j) < 0 || j->type != JSON_OBJECT)
		return fail(EXIT_DAEMON, "metrics: the daemon's STATUS JSON is malformed");
	counters = json_get(j, "counters");
	nginx = json_get(j, "nginx");
	keys = json_get(j, "keys");

	metric_head(f, "securelink_up", "gauge", "Whether securelinkd answered.");
	fprintf(f, "securelink_up 1\n");
	metric_u64(f, "securelink_links_signed_total", "counter",
	           "Links signed since securelinkd started.", json_get(counters, "signed"));
	by_code = json_get(counters, "errors_by_code");
	if (by_code && by_code->type == JSON_OBJECT) {
		metric_head(
		    f, "securelink_errors_total", "counter",
		    "Requests answered with ERR, by error code, since securelinkd started.");
		for (size_t i = 0; i < by_code->n; i++) {
			uint64_t n;

			/* Codes are the daemon's fixed names: [a-z-]. */
			if (json_get_u64(by_code->items[i], &n) >= 0 &&
			    strspn(by_code->keys[i], "abcdefghijklmnopqrstuvwxyz-") ==
			        strlen(by_code->keys[i]))
				fprintf(f, "securelink_errors_total{code=\"%s\"} %" PRIu64 "\n",
				        by_code->keys[i], n);
		}
	}
	metric_u64(f, "securelink_rotations_total", "counter",
	           "Keys activated since securelinkd started.", json_get(counters, "rotations"));
	metric_u64(f, "securelink_reload_failures_total", "counter",
	           "Failed publications to nginx (test, reload, or a key nginx refused).",
	           json_get(counters, "reload_failures"));
	metric_u64(f, "securelink_probe_failures_total", "counter",
	           "Enforcement probes that failed (fail-open, key refused, no answer).",
	           json_get(counters, "probe_failures"));

	v = json_get(nginx, "enforcing");
	metric_head(f, "securelink_enforcing", "gauge",
	            "1 when a private path without a token got 403 from nginx, 0 when not "
	            "(FAIL-OPEN), NaN before a probe answered or with probes off.");
	fprintf(f, "securelink_enforcing %s\n",
	        v && v->type == JSON_BOOLEAN ? (v->boolean ? "1" : "0") : "NaN");
	v = json_get(nginx, "ok");
	if (v && v->type == JSON_BOOLEAN) {
		metric_head(f, "securelink_nginx_ok", "gauge",
		            "1 when the last publication to nginx succeeded.");
		fprintf(f, "securelink_nginx_ok %d\n", v->boolean ? 1 : 0);
	}

	for (size_t i = 0; keys && keys->type == JSON_ARRAY && i < keys->n; i++) {
		const Json *k = keys->items[i], *state = json_get(k, "state");

		if (state && state->type == JSON_STRING && streq(state->text, "active") &&
		    seconds_to(json_get(k, "activated"), now, &s)) {
			metric_head(f, "securelink_active_key_age_seconds", "gauge",
			            "Seconds since the active key was activated.");
			fprintf(f, "securelink_active_key_age_seconds %" PRId64 "\n", -s);
		}
	}
	if (seconds_to(json_get(j, "next_rotation"), now, &s)) {
		metric_head(f, "securelink_next_rotation_seconds", "gauge",
		            "Seconds to the next scheduled rotation (negative: overdue).");
		fprintf(f, "securelink_next_rotation_seconds %" PRId64 "\n", s);
	}
	metric_head(f, "securelink_key_drop_seconds", "gauge",
	            "Seconds until a retired key is dropped from nginx, by kid.");
	for (size_t i = 0; keys && keys->type == JSON_ARRAY && i < keys->n; i++) {
		const Json *k = keys->items[i];

		if (json_get_u64(json_get(k, "kid"), &kid) >= 0 &&
		    seconds_to(json_get(k, "drop_after"), now, &s))
			fprintf(f, "securelink_key_drop_seconds{kid=\"%" PRIu64 "\"} %" PRId64 "\n",
			        kid, s);
	}
	return EXIT_OK;
}

/* Writes text to path through path.tmp and a rename: node_exporter's
 * collector never reads half a file. */
static int metrics_write_file(const char *path, const char *text, size_t len)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return fail(EXIT_DAEMON, "metrics: out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return fail(EXIT_DAEMON, "metrics: cannot create %s: %m (is the directory there?)",
		            tmp);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;

		(void)unlink(tmp);
		errno = e;
		return fail(EXIT_DAEMON, "metrics: cannot write %s: %m", path);
	}
	return EXIT_OK;
}

static int verb_metrics(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "output", required_argument, NULL, 'o' },
		{},
	};
	_cleanup_free_ char *answer = NULL, *text = NULL;
	const char *output = NULL;
	size_t len = 0;
	FILE *f;
	int opt, code, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "ho:", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			metrics_help();
			return EXIT_OK;
		case 'o':
			if (output)
				return repeated_option("metrics", "--output");
			output = optarg;
			break;
		default:
			return bad_option("metrics", argv);
		}
	}
	if (optind < argc)
		return fail(
		    EXIT_USAGE,
		    "metrics: unexpected argument \"%s\" (see securelinkctl metrics --help)",
		    argv[optind]);
	code = request("metrics", "STATUS", REQUEST_TIMEOUT, &answer);
	f = open_memstream(&text, &len);
	if (!f)
		return fail(EXIT_DAEMON, "metrics: out of memory");
	if (code == EXIT_OK)
		r = metrics_print(f, answer);
	else {
		/* The collector keeps the last file: say that it is stale. */
		metric_head(f, "securelink_up", "gauge", "Whether securelinkd answered.");
		fprintf(f, "securelink_up 0\n");
		r = code;
	}
	if (fclose(f) != 0)
		return fail(EXIT_DAEMON, "metrics: out of memory");
	if (output) {
		code = metrics_write_file(output, text, len);
		return code != EXIT_OK ? code : r;
	}
	if (r != EXIT_OK)
		return r;
	if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
		return fail(EXIT_DAEMON, "metrics: cannot write to standard output: %m");
	return EXIT_OK;
}

/* ---- nginx-config ---- */

static void nginx_config_help(void)
{
	printf("Usage: securelinkctl nginx-config [-c FILE]\n"
	       "\n"
	       "Prints, for a securelinkd configuration, the location blocks securelinkd\n"
	       "writes to locations_file (no secret in them) and the two include lines to\n"
	       "add to nginx, once: one in http {}, one in the server {} serving media_url.\n"
	       "Needs no running daemon.\n"
	       "\n"
	       "  -c, --config FILE  configuration file (default %s)\n"
	       "  -h, --help         show this help\n",
	       CONFIG_DEFAULT_PATH);
}

static int verb_nginx_config(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		GLOBAL_OPTIONS,
		{},
	};
	_cleanup_(config_freep) Config *config = NULL;
	_cleanup_free_ char *error = NULL, *locations = NULL, *includes = NULL;
	const char *path = CONFIG_DEFAULT_PATH;
	size_t size;
	int opt, code, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			nginx_config_help();
			return EXIT_OK;
		default:
			code = global_option("nginx-config", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return fail(EXIT_USAGE,
		            "nginx-config: unexpected argument \"%s\" (give the file "
		            "with -c)",
		            argv[optind]);

	r = config_load(path, &config, &error);
	if (r < 0)
		return fail(EXIT_USAGE, "%s", error ? error : strerror(-r));
	for (char **w = config->warnings; *w; w++)
		fprintf(stderr, "securelinkctl: warning: %s\n", *w);

	r = render_locations_file(config, &locations, &size);
	if (r >= 0)
		r = render_include_lines(config, &includes);
	if (r == -EINVAL)
		return fail(
		    EXIT_USAGE,
		    "nginx-config: %s: a path or parameter name cannot be written into nginx's "
		    "configuration (no spaces, quotes, ;, {, }, $ or #; paths end with /)",
		    path);
	if (r < 0)
		return fail(EXIT_DAEMON, "nginx-config: %s", strerror(-r));

	printf("%s\n# securelinkd writes the locations below to %s:\n\n%s", includes,
	       config->locations_file, locations);
	if (fflush(stdout) != 0)
		return fail(EXIT_DAEMON, "cannot write to standard output: %s", strerror(errno));
	return EXIT_OK;
}

/* ---- main ---- */

static const struct {
	const char *name;
	int (*run)(int argc, char *argv[]);
} verbs[] = {
	{ "sign", verb_sign },
	{ "verify", verb_verify },
	{ "rotate", verb_rotate },
	{ "status", verb_status },
	{ "check", verb_check },
	{ "metrics", verb_metrics },
	{ "nginx-config", verb_nginx_config },
	{ "import-key", verb_import_key },
};

static void help(void)
{
	printf("Usage: securelinkctl [--socket PATH] [--json] COMMAND [ARGS...]\n"
	       "\n"
	       "Talks to securelinkd, which signs links for nginx's secure_link module.\n"
	       "\n"
	       "Commands:\n"
	       "  sign PATH|URL... [--ttl S | --expires T] [--ip A]\n"
	       "                      sign links (- reads targets from stdin, one per line)\n"
	       "  verify URL [--ip A] check a link: exit 0 valid, 1 invalid, 2 expired\n"
	       "  rotate [--revoke]   make a new signing key, print its kid\n"
	       "  status              keys, next rotation, nginx, counters\n"
	       "  check               probe nginx now: exit 0 links enforced, 1 not\n"
	       "  metrics [-o FILE]   counters and times for Prometheus (node_exporter)\n"
	       "  nginx-config [-c FILE]\n"
	       "                      print the nginx include lines and location blocks\n"
	       "  import-key          import a django-nginx-secure-links secret from stdin\n"
	       "\n"
	       "Options:\n"
	       "      --socket PATH   the daemon's socket (default $SECURELINK_SOCKET, else\n"
	       "                      %s)\n"
	       "      --json          machine-readable output\n"
	       "                      (--socket and --json may also follow the command)\n"
	       "  -h, --help          show this help (COMMAND --help: that command's)\n"
	       "      --version       show the version\n"
	       "\n"
	       "Exit status:\n"
	       "  0  success (verify: the link is valid, or public)\n"
	       "  1  verify: the link is invalid; check: links not enforced\n"
	       "  2  verify: the link has expired\n"
	       "  3  bad usage or arguments\n"
	       "  4  the daemon cannot be reached, or the connection was lost\n"
	       "  5  forbidden: socket permissions (securelink group) or admin_group\n"
	       "  6  the daemon refused the input (bad-target, bad-ttl, ttl-too-long, ...)\n"
	       "  7  the daemon failed (internal, unavailable), refused the connection\n"
	       "     (too many connections), or a local failure\n"
	       "sign reports the most severe failure of all its targets (4, 7, 5, 6 in\n"
	       "that order).\n"
	       "\n"
	       "See securelinkctl(1).\n",
	       SL_CLIENT_DEFAULT_SOCKET);
}

int main(int argc, char *argv[])
{
	enum {
		ARG_VERSION = 0x100,
	};
	static const struct option options[] = {
		GLOBAL_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	int opt;

	opterr = 0;
	/* "+": stop at the command; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (opt) {
		case 'h':
			help();
			return EXIT_OK;
		case ARG_VERSION:
			printf("securelinkctl %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		default: {
			int code = global_option(NULL, opt, argv);

			if (code != EXIT_OK)
				return code;
			break;
		}
		}
	}
	if (optind >= argc)
		return fail(EXIT_USAGE, "no command (see securelinkctl --help)");

	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name))
			return verbs[i].run(argc - optind, argv + optind);

	return fail(EXIT_USAGE, "unknown command \"%s\" (see securelinkctl --help)", argv[optind]);
}
