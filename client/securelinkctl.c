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
#include "version.h"

static int print_kid(const char *what, const char *answer)
{
	uint64_t kid;

	if (strncmp(answer, "kid=", 4) != 0 || parse_u64(answer + 4, &kid) < 0)
		return ctl_fail(EXIT_DAEMON,
		                "%s: unexpected answer from %s (is the daemon of the same "
		                "version?)",
		                what, ctl_socket_path());
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
			code = ctl_global_option("rotate", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_USAGE,
		                "rotate: unexpected argument \"%s\" (see securelinkctl rotate "
		                "--help)",
		                argv[optind]);

	code = ctl_request("rotate", revoke ? "ROTATE revoke" : "ROTATE", 0, &answer);
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
			code = ctl_global_option("import-key", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return ctl_fail(
		    EXIT_USAGE,
		    "import-key: unexpected argument (give the secret on standard input, "
		    "never on the command line)");

	while (n < sizeof(secret)) {
		ssize_t k = read(STDIN_FILENO, secret + n, sizeof(secret) - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			code = ctl_fail(EXIT_USAGE, "import-key: cannot read standard input: %s",
			                strerror(errno));
			goto finish;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > SECRET_MAX) {
		code = ctl_fail(
		    EXIT_USAGE,
		    "import-key: the secret on standard input is longer than %u bytes (give "
		    "only the secret)",
		    SECRET_MAX);
		goto finish;
	}
	if (n > 0 && secret[n - 1] == '\n')
		n--;
	if (n == 0) {
		code = ctl_fail(EXIT_USAGE,
		                "import-key: no secret on standard input (echo \"$SECRET\" | "
		                "securelinkctl import-key)");
		goto finish;
	}

	memcpy(line, "IMPORT ", STRLEN("IMPORT "));
	base64url_encode(secret, n, line + STRLEN("IMPORT "));
	code = ctl_request("import-key", line, 0, &answer);
	if (code == EXIT_OK)
		code = print_kid("import-key", answer);

finish:
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(line, sizeof(line));
	return code;
}

/* ---- status ---- */

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
			code = ctl_global_option("nginx-config", opt, argv);
			if (code != EXIT_OK)
				return code;
			break;
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_USAGE,
		                "nginx-config: unexpected argument \"%s\" (give the file "
		                "with -c)",
		                argv[optind]);

	r = config_load(path, &config, &error);
	if (r < 0)
		return ctl_fail(EXIT_USAGE, "%s", error ? error : strerror(-r));
	for (char **w = config->warnings; *w; w++)
		fprintf(stderr, "securelinkctl: warning: %s\n", *w);

	r = render_locations_file(config, &locations, &size);
	if (r >= 0)
		r = render_include_lines(config, &includes);
	if (r == -EINVAL)
		return ctl_fail(
		    EXIT_USAGE,
		    "nginx-config: %s: a path or parameter name cannot be written into nginx's "
		    "configuration (no spaces, quotes, ;, {, }, $ or #; paths end with /)",
		    path);
	if (r < 0)
		return ctl_fail(EXIT_DAEMON, "nginx-config: %s", strerror(-r));

	printf("%s\n# securelinkd writes the locations below to %s:\n\n%s", includes,
	       config->locations_file, locations);
	if (fflush(stdout) != 0)
		return ctl_fail(EXIT_DAEMON, "cannot write to standard output: %s",
		                strerror(errno));
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
	       "  sign PATH|URL... [--ttl S | --expires T] [--ip A] [--grant path|cookie]\n"
	       "                      sign links (- reads targets from stdin, one per line;\n"
	       "                      --grant: directories, for streams)\n"
	       "  verify URL [--ip A] [--cookie VALUE]\n"
	       "                      check a link: exit 0 valid, 1 invalid, 2 expired\n"
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
			int code = ctl_global_option(NULL, opt, argv);

			if (code != EXIT_OK)
				return code;
			break;
		}
		}
	}
	if (optind >= argc)
		return ctl_fail(EXIT_USAGE, "no command (see securelinkctl --help)");

	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name))
			return verbs[i].run(argc - optind, argv + optind);

	return ctl_fail(EXIT_USAGE, "unknown command \"%s\" (see securelinkctl --help)",
	                argv[optind]);
}
