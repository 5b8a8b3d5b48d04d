/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "fileio.h"
#include "derive.h"
#include "install.h"
#include "keyring.h"
#include "log.h"
#include "manager.h"
#include "nginx-njs.h"
#include "nginx.h"
#include "paths.h"
#include "version.h"

/* Exit codes, as in sysexits.h: systemd shows them, the docs list them. */
#define EXIT_USAGE   64
#define EXIT_DATAERR 65 /* the key ring is corrupt and has no good copy */
#define EXIT_CONFIG  78

static const char *arg_config = CONFIG_DEFAULT_PATH;
static bool arg_check_config;
static bool arg_install_snippets;

static void help(void)
{
	printf("Usage: securelinkd [-c FILE] [--check-config|--install-snippets] [--version]\n"
	       "\n"
	       "Owns the signing keys of nginx's secure_link module: rotates them, writes the\n"
	       "nginx snippets, reloads nginx, and signs links on a Unix socket.\n"
	       "\n"
	       "  -c, --config FILE  configuration file (default %s)\n"
	       "      --check-config check the configuration and exit\n"
	       "      --install-snippets\n"
	       "                     as root: check the snippets securelinkd staged and install\n"
	       "                     them where nginx includes them, then exit\n"
	       "  -h, --help         show this help\n"
	       "      --version      show the version\n"
	       "\n"
	       "See securelinkd(8) and securelinkd.conf(5).\n",
	       CONFIG_DEFAULT_PATH);
}

static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_CHECK_CONFIG = 0x100,
		ARG_INSTALL_SNIPPETS,
		ARG_VERSION
	};
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
		{ "install-snippets", no_argument, NULL, ARG_INSTALL_SNIPPETS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	int c;

	/* One line per error: getopt's own message would be a second one. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			arg_config = optarg;
			break;
		case ARG_CHECK_CONFIG:
			arg_check_config = true;
			break;
		case ARG_INSTALL_SNIPPETS:
			arg_install_snippets = true;
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("securelinkd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			if (c == ':')
				fprintf(stderr, "securelinkd: %s needs an argument (try --help)\n",
				        argv[optind - 1]);
			else if (optopt)
				fprintf(stderr, "securelinkd: unknown option '-%c' (try --help)\n",
				        optopt);
			else
				fprintf(stderr, "securelinkd: unknown option '%s' (try --help)\n",
				        argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (arg_check_config && arg_install_snippets) {
		fprintf(stderr,
		        "securelinkd: --check-config and --install-snippets exclude each other "
		        "(give one)\n");
		return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "securelinkd: unexpected argument '%s' (try --help)\n",
		        argv[optind]);
		return -EINVAL;
	}
	return 1;
}

static const char *format_utc(char *buf, size_t size, usec_t t)
{
	time_t tt = (time_t)(t / USEC_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "?");
	return buf;
}

/* mode = derived: the masters, and a schedule whose window fits. Returns an
 * exit code, EXIT_SUCCESS when fine. */
static int load_masters(const Config *config, Masters **ret)
{
	_cleanup_free_ char *error = NULL;
	DeriveWindow w;
	usec_t now = now_realtime(), until;
	Masters *m;
	int r;

	if (derive_window(config, now, &w) < 0) {
		fprintf(stderr,
		        "securelinkd: %s: with mode = derived, (max_link_ttl + clock_skew) / "
		        "rotate_every must stay below %d, and rotate_every must number the epochs "
		        "within 32 bits (raise rotate_every)\n",
		        arg_config, DERIVE_MAX_EPOCHS - 3);
		return EXIT_CONFIG;
	}
	r = derive_masters_load(config, getenv("CREDENTIALS_DIRECTORY"), &m, &error);
	if (r < 0) {
		fprintf(stderr, "securelinkd: %s\n", error ? error : strerror(-r));
		return EXIT_CONFIG;
	}

	until = derive_previous_until(m, config);
	if (m->previous && now >= until)
		log_notice("The previous master's last links have expired; remove "
		           "master_key_file_previous (or the credential %s) and master_switch.",
		           DERIVE_PREVIOUS_CREDENTIAL);
	else if (m->previous) {
		/* The first epoch of the new master is published one epoch
		 * before it starts: hosts without the new master by then
		 * publish it with the old one. */
		usec_t publish =
		    until - config->max_link_ttl - config->clock_skew - config->rotate_every;

		if (now + config->clock_skew >= publish)
			log_notice("Master roll in progress: the new master's keys are published; "
			           "the previous master is needed until %s.",
			           format_utc((char[32]){}, 32, until));
		else
			log_notice("Master roll: every host must have the new master before %s, "
			           "when its first keys are published.",
			           format_utc((char[32]){}, 32, publish));
	}
	*ret = m;
	return EXIT_SUCCESS;
}

/* A write cut short by a crash leaves its temp file beside the file it was
 * to replace: an old ring or keys file, secrets of revoked keys or long-gone
 * epochs included, or a queued revoke's. Removed at every start, in both
 * modes (fleet mode has no ring, but its keys file is rewritten every
 * epoch). */
static void remove_stale_temp_files_of(const Config *config)
{
	const char *names[] = { KEYRING_FILE, KEYRING_PREV_FILE, KEYRING_REVOKE_FILE };
	const char *files[] = { config->keys_file, config->locations_file };

	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		int r = remove_stale_temp_files(files[i]);

		if (r < 0 && r != -ENOENT)
			log_warning_errno(r,
			                  "Failed to look for stale temp files beside %s: %m, "
			                  "ignoring.",
			                  files[i]);
	}
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		_cleanup_free_ char *path = NULL;
		int r;

		if (asprintf(&path, "%s/%s", config->state_directory, names[i]) < 0) {
			log_warning("Out of memory looking for stale temp files, ignoring.");
			return;
		}
		r = remove_stale_temp_files(path);
		if (r < 0 && r != -ENOENT)
			log_warning_errno(r,
			                  "Failed to look for stale temp files beside %s: %m, "
			                  "ignoring.",
			                  path);
	}
}

/* mode = local: the key ring from state_directory, a new one at the first
 * start. Returns an exit code, EXIT_SUCCESS when fine. */
static int load_keyring(const Config *config, KeyRing **ret)
{
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	_cleanup_free_ char *error = NULL;
	bool used_prev = false;
	int r;

	if (mkdir(config->state_directory, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create %s: %m", config->state_directory),
		       EXIT_FAILURE;

	r = keyring_load(config->state_directory, &ring, &used_prev, &error);
	if (r == -ENOENT) {
		ring = keyring_new();
		if (!ring)
			return log_error("Out of memory"), EXIT_FAILURE;
		log_info("No key ring in %s yet; creating the first key", config->state_directory);
	} else if (r < 0) {
		/* Never replace a ring that cannot be read: every live link
		 * depends on it. */
		log_error("Refusing to start: %s", error ? error : strerror(-r));
		return EXIT_DATAERR;
	} else if (used_prev) {
		_cleanup_free_ char *bad = NULL, *aside = NULL;

		log_event(LOG_WARNING, SL_MESSAGE_KEYRING_FALLBACK,
		          "The key ring was unreadable (%s); using keyring.prev",
		          error ? error : "no reason given");
		/* Keep the unreadable file for a post-mortem, and out of the way:
		 * the next save would otherwise push it over the good
		 * keyring.prev. */
		if (asprintf(&bad, "%s/" KEYRING_FILE, config->state_directory) < 0 ||
		    asprintf(&aside, "%s/" KEYRING_CORRUPT_FILE, config->state_directory) < 0)
			return log_error("Out of memory"), EXIT_FAILURE;
		if (rename(bad, aside) < 0 && errno != ENOENT)
			log_warning_errno(errno, "Failed to move %s aside, ignoring: %m", bad);
		r = keyring_save(ring, config->state_directory);
		if (r < 0)
			return log_error_errno(r, "Failed to save the recovered key ring: %m"),
			       EXIT_FAILURE;
		if (r > 0)
			log_warning_errno(
			    r,
			    "Saved the recovered key ring, but could not sync %s: %m; "
			    "a power loss may undo the save, ignoring.",
			    config->state_directory);
	} else {
		/* A crash in the middle of a revoke's save may have left the
		 * revoked keys in keyring.prev: it becomes this ring. */
		r = keyring_save_prev(ring, config->state_directory);
		if (r < 0)
			log_warning_errno(r, "Failed to rewrite keyring.prev in %s, ignoring: %m",
			                  config->state_directory);
	}

	*ret = TAKE_PTR(ring);
	return EXIT_SUCCESS;
}

/* systemd starts services with a soft RLIMIT_NOFILE of 1024 and a far higher
 * hard limit. max_connections (default 1024) clients plus the daemon's own
 * descriptors do not fit under 1024: accept() would fail with EMFILE and the
 * last clients would hang in the listen backlog instead of being served or
 * told "too many connections". securelinkd uses epoll, never select(), so the
 * hard limit is safe to use, as systemd recommends for such programs. */
static void raise_nofile_limit(unsigned max_connections)
{
	/* The listening socket, sd-event's epoll, signal and timer fds, the
	 * journal, a child's pipe, files being written: a few dozen at most. */
	const rlim_t need = (rlim_t)max_connections + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		log_warning("RLIMIT_NOFILE is %llu, too low for max_connections = %u; clients "
		            "beyond the limit wait unanswered (raise LimitNOFILE=)",
		            (unsigned long long)rl.rlim_cur, max_connections);
}

/* reload = none on a host where nginx runs: securelinkd only tests the
 * files, and nginx has new keys only when something else reloads it. */
static void warn_unreloaded_nginx(const Config *config)
{
	pid_t pid;

	if (config->reload != RELOAD_NONE)
		return;
	pid = nginx_find_master();
	if (pid > 0)
		log_warning(
		    "reload = none, but an nginx master process runs on this host (pid %d): "
		    "securelinkd never reloads it, so a new key is used once the test "
		    "passes, whether or not nginx has loaded it (use reload = "
		    "systemd:nginx.service or pidfile:/run/nginx.pid)",
		    (int)pid);
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)sd_notify(false, "STOPPING=1");
	log_info("Stopping on signal %u", si->ssi_signo);
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	manager_reload_config(userdata);
	return 0;
}

/* What the loop stops and reloads on; SIGCHLD is sd-event's own, per child. */
static const struct {
	int signo;
	const char *name;
	sd_event_signal_handler_t handler;
} watched_signals[] = {
	{ SIGTERM, "SIGTERM", on_sigterm },
	{ SIGINT, "SIGINT", on_sigterm },
	{ SIGHUP, "SIGHUP", on_sighup },
};

static int run(int argc, char *argv[])
{
	_cleanup_(manager_freep) Manager *m = NULL;
	_cleanup_(config_freep) Config *config = NULL;
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	_cleanup_(masters_freep) Masters *masters = NULL;
	_cleanup_free_ char *error = NULL;
	sd_event *e = NULL;
	sigset_t mask;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;

	log_open();

	r = config_load(arg_config, &config, &error);
	if (r >= 0)
		r = config_check_commands(config, arg_config, &error);
	/* Links nginx could not check: refused before anything signs them. */
	if (r >= 0 && !arg_install_snippets)
		r = nginx_njs_check(config, &error);
	if (r < 0) {
		fprintf(stderr, "securelinkd: %s\n", error ?: strerror(-r));
		return EXIT_CONFIG;
	}
	for (char **w = config->warnings; *w; w++)
		log_warning("warning: %s", *w);
	/* Before anything is opened: a FIFO in place of a snippet would block
	 * the start, a directory others may write to would let them plant keys. */
	r = paths_check(config, geteuid(), &error);
	if (r < 0) {
		fprintf(stderr, "securelinkd: %s\n", error ? error : strerror(-r));
		return EXIT_CONFIG;
	}
	if (arg_install_snippets) {
		/* Root's side of the snippets: nothing of the daemon runs. */
		r = install_snippets(config, arg_config, &error);
		if (r < 0) {
			fprintf(stderr, "securelinkd: %s\n", error ? error : strerror(-r));
			return EXIT_FAILURE;
		}
		return EXIT_SUCCESS;
	}
	if (arg_check_config) {
		/* The credential is only there when systemd starts the
		 * service; a master file can be checked from a shell. */
		if (config->mode == KEY_MODE_DERIVED &&
		    (config->master_key_file || getenv("CREDENTIALS_DIRECTORY"))) {
			if (sodium_init() < 0)
				return log_error("Failed to initialise libsodium"), EXIT_FAILURE;
			r = load_masters(config, &masters);
			if (r != EXIT_SUCCESS)
				return r;
			printf("securelinkd: %s: configuration and master secret OK\n", arg_config);
		} else if (config->mode == KEY_MODE_DERIVED)
			printf("securelinkd: %s: configuration OK (the master secret comes from "
			       "the credential %s, which only the service sees)\n",
			       arg_config, DERIVE_MASTER_CREDENTIAL);
		else
			printf("securelinkd: %s: configuration OK\n", arg_config);
		return EXIT_SUCCESS;
	}

	raise_nofile_limit(config->max_connections);
	warn_unreloaded_nginx(config);

	/* Key material must not end up in a core dump, nor be readable through
	 * ptrace by another process of the same uid. */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return log_error_errno(errno, "Failed to make the process undumpable: %m"),
		       EXIT_FAILURE;
	if (sodium_init() < 0)
		return log_error("Failed to initialise libsodium"), EXIT_FAILURE;

	remove_stale_temp_files_of(config);

	if (config->mode == KEY_MODE_DERIVED) {
		/* No key ring: every key comes from the master and the clock,
		 * and state_directory is not used. */
		r = load_masters(config, &masters);
		if (r != EXIT_SUCCESS)
			return r;
		ring = keyring_new();
		if (!ring)
			return log_error("Out of memory"), EXIT_FAILURE;
		log_info("Fleet mode: keys derive from the master secret, a new epoch every %s",
		         format_duration((char[32]){}, 32, config->rotate_every));
	} else {
		r = load_keyring(config, &ring);
		if (r != EXIT_SUCCESS)
			return r;
	}

	/* sd-event handles these signals; child processes need SIGCHLD blocked.
	 * sigemptyset/sigaddset fail only for an invalid signal number. */
	if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGTERM) < 0 ||
	    sigaddset(&mask, SIGINT) < 0 || sigaddset(&mask, SIGHUP) < 0 ||
	    sigaddset(&mask, SIGCHLD) < 0 || sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno,
		                       "Failed to block SIGTERM, SIGINT, SIGHUP and SIGCHLD: %m"),
		       EXIT_FAILURE;
	/* A client that hangs up must not kill us in the middle of a write. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return log_error_errno(errno, "Failed to ignore SIGPIPE: %m"), EXIT_FAILURE;

	/* A private loop rather than sd_event_default(): the default one checks
	 * the calling thread (a gettid() system call) on every iteration. */
	r = sd_event_new(&e);
	if (r < 0)
		return log_error_errno(r, "Failed to create the event loop: %m"), EXIT_FAILURE;

	r = manager_new(e, arg_config, TAKE_PTR(config), TAKE_PTR(ring), &m);
	if (r < 0) {
		sd_event_unref(e);
		return log_error_errno(r, "Failed to set up: %m"), EXIT_FAILURE;
	}
	m->masters = TAKE_PTR(masters);

	/* Without these the signals stay blocked: SIGTERM would never stop
	 * us and systemd would have to SIGKILL mid-write. */
	for (size_t i = 0; i < ELEMENTSOF(watched_signals); i++) {
		r = sd_event_add_signal(e, NULL, watched_signals[i].signo,
		                        watched_signals[i].handler, m);
		if (r < 0) {
			sd_event_unref(e);
			return log_error_errno(r, "Failed to watch %s: %m",
			                       watched_signals[i].name),
			       EXIT_FAILURE;
		}
	}
	/* WATCHDOG=1 from the event loop itself: a stuck loop stops it. Without
	 * WatchdogSec= this is a no-op returning 0. */
	r = sd_event_set_watchdog(e, true);
	if (r < 0)
		log_warning_errno(r, "Failed to set up the watchdog: %m, ignoring.");

	r = manager_start(m);
	if (r < 0) {
		sd_event_unref(e);
		return log_error_errno(r, "Failed to start: %m"), EXIT_FAILURE;
	}

	/* Ready once the snippets exist and the socket is served. Not later:
	 * a reload of nginx.service waits for our start job (nginx is ordered
	 * after us), so waiting for it here would deadlock until the timeout.
	 * STATUS "pending" tells when nginx has caught up. */
	(void)sd_notify(false, "READY=1");
	log_info("Listening on %s", m->config->socket);

	r = sd_event_loop(e);
	if (r < 0)
		log_error_errno(r, "The event loop failed: %m");
	m = manager_free(m);
	sd_event_unref(e);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char *argv[])
{
	return run(argc, argv);
}
