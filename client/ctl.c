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

const char *arg_socket;
bool arg_json;

int ctl_fail(int code, const char *format, ...)
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
int ctl_bad_option(const char *verb, char *argv[])
{
	const char *o = argv[optind - 1];

	if (verb)
		return ctl_fail(
		    EXIT_USAGE,
		    "%s: option \"%s\" is unknown or lacks its value (see securelinkctl %s "
		    "--help)",
		    verb, o, verb);
	return ctl_fail(EXIT_USAGE,
	                "option \"%s\" is unknown or lacks its value (see securelinkctl --help)",
	                o);
}

/* Takes a global option wherever it stands; verb is NULL before the
 * command. Returns EXIT_OK, or the exit status for a bad one. --socket
 * given twice is refused, as a command's own options are: one of two paths
 * must not win silently. */
int ctl_global_option(const char *verb, int opt, char *argv[])
{
	switch (opt) {
	case ARG_GLOBAL_SOCKET:
		if (arg_socket)
			return ctl_fail(EXIT_USAGE, "--socket given more than once (give it once)");
		if (!*optarg)
			return ctl_fail(EXIT_USAGE,
			                "--socket: empty path (give the socket's path)");
		arg_socket = optarg;
		return EXIT_OK;
	case ARG_GLOBAL_JSON:
		arg_json = true;
		return EXIT_OK;
	default:
		return ctl_bad_option(verb, argv);
	}
}

/* The protocol refuses a repeated field: an option given twice is refused
 * here too, rather than one of its values silently winning. */
int ctl_repeated_option(const char *verb, const char *option)
{
	return ctl_fail(EXIT_USAGE, "%s: %s given more than once (give it once)", verb, option);
}

const char *ctl_socket_path(void)
{
	return sl_client_socket_path(arg_socket);
}

/* For messages: control bytes shown as '?', long items cut, so that an item
 * read from stdin cannot break the one-line-per-error promise. */
void ctl_printable(const char *s, char *buf, size_t size)
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

int ctl_exit_for_error(SlError e)
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
int ctl_exit_worse(int a, int b)
{
	static const int rank[] = {
		[EXIT_OK] = 0,     [EXIT_INVALID] = 1,     [EXIT_EXPIRED] = 1,
		[EXIT_USAGE] = 2,  [EXIT_REFUSED] = 3,     [EXIT_FORBIDDEN] = 4,
		[EXIT_DAEMON] = 5, [EXIT_UNREACHABLE] = 6,
	};
	return rank[b] > rank[a] ? b : a;
}

const char *ctl_error_hint(SlError e)
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
int ctl_daemon_fail(const char *what, SlError e, const char *message)
{
	size_t l = message ? strlen(message) : 0;
	char buf[512];

	ctl_printable(l ? message : sl_error_to_string(e), buf, sizeof(buf));
	if (l > 0 && message[l - 1] == ')')
		return ctl_fail(ctl_exit_for_error(e), "%s: %s: %s", what, sl_error_to_string(e),
		                buf);
	return ctl_fail(ctl_exit_for_error(e), "%s: %s: %s (%s)", what, sl_error_to_string(e), buf,
	                ctl_error_hint(e));
}

int ctl_connect_fail(int r)
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
	return ctl_fail(code, "cannot connect to %s: %s (%s)", ctl_socket_path(), strerror(-r),
	                fix);
}

int ctl_transport_fail(int r)
{
	switch (-r) {
	case ETIMEDOUT:
		return ctl_fail(EXIT_UNREACHABLE,
		                "no answer from %s: %s (see journalctl -u securelinkd)",
		                ctl_socket_path(), strerror(-r));
	case EBADMSG:
	case EMSGSIZE:
		return ctl_fail(
		    EXIT_DAEMON,
		    "unexpected answer from %s: %s (is the daemon securelinkd, of the same "
		    "version?)",
		    ctl_socket_path(), strerror(-r));
	case ENOMEM:
		return ctl_fail(EXIT_DAEMON, "out of memory");
	default:
		return ctl_fail(EXIT_UNREACHABLE,
		                "lost the connection to %s: %s (see journalctl -u securelinkd)",
		                ctl_socket_path(), strerror(-r));
	}
}

int ctl_client_open(uint64_t timeout, SlClient **ret)
{
	int r = sl_client_connect(arg_socket, ret);

	if (r < 0)
		return ctl_connect_fail(r);
	sl_client_set_timeout(*ret, timeout);
	return EXIT_OK;
}

/* One request; returns an exit code, and on success the answer text. */
int ctl_request(const char *what, const char *line, uint64_t timeout, char **ret_answer)
{
	SlClient *c = NULL;
	int r, code;

	code = ctl_client_open(timeout, &c);
	if (code != EXIT_OK)
		return code;
	r = sl_client_request(c, line, ret_answer);
	if (r == -EREMOTEIO)
		code = ctl_daemon_fail(what, sl_client_last_error(c), sl_client_last_message(c));
	else if (r < 0)
		code = ctl_transport_fail(r);
	sl_client_free(c);
	return code;
}

/* A token sent as one field of a request line: no space or control byte. */
bool ctl_token_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

int ctl_json_print_string(FILE *f, const char *s)
{
	_cleanup_free_ char *e = NULL;

	if (json_escape(s, &e) < 0)
		return -ENOMEM;
	fprintf(f, "\"%s\"", e);
	return 0;
}

/* ---- sign ---- */
