/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "util.h"

/* securelinkd.conf: an INI file with the sections [daemon], [keys], [links]
 * and [nginx]. Every key has a default; see conf/securelinkd.conf. */

#define CONFIG_DEFAULT_PATH "/etc/securelink/securelinkd.conf"

/* max_url_length bounds a link's path and query, the request target a
 * browser sends. nginx's default large_client_header_buffers (8k) holds
 * "HEAD <target> HTTP/1.1\r\n" in 8192 bytes, so 8176 (GET could have one
 * more). No link is longer than a SIGN answer ("OK <link>\n" in a protocol
 * line), nor shorter than a path and its parameters. */
#define CONFIG_URL_LENGTH_DEFAULT 8176U
#define CONFIG_URL_LENGTH_MIN     64U
#define CONFIG_URL_LENGTH_MAX     8188U

/* The key ring's capacity (mode = local). config_verify() checks that the
 * rotation schedule leaves room in it: the active key, a pending one, a
 * legacy one, and every retired key whose links may still live. */
#define KEYRING_MAX_KEYS 64

/* Directory grants (DESIGN.md, "Directory grants"): the path form's links
 * live under media_url + GRANT_PATH_SEGMENT "/", the cookie form's value is
 * the cookie GRANT_COOKIE_NAME, and a granted directory lies at most
 * GRANT_DEPTH_MAX segments below media_url (nginx cuts the directory off
 * the path with one regular expression per depth). */
#define GRANT_PATH_SEGMENT "_grant"
#define GRANT_COOKIE_NAME  "securelink_grant"
#define GRANT_DEPTH_MAX    16

typedef enum ReloadMethod {
	RELOAD_SYSTEMD, /* systemd:UNIT, sd-bus ReloadOrTryRestartUnit */
	RELOAD_PIDFILE, /* pidfile:PATH, SIGHUP to the master */
	RELOAD_EXEC,    /* exec:CMD ARGS..., run without a shell */
	RELOAD_NONE,
	_RELOAD_METHOD_MAX,
} ReloadMethod;

typedef enum KeyMode {
	KEY_MODE_LOCAL,
	KEY_MODE_DERIVED,
	_KEY_MODE_MAX,
} KeyMode;

/* How link tokens are made and checked (DESIGN.md, "Algorithms"). */
typedef enum LinkAlgorithm {
	LINK_ALGORITHM_MD5,         /* nginx's secure_link_md5 */
	LINK_ALGORITHM_HMAC_SHA256, /* HMAC-SHA256, checked by njs */
	_LINK_ALGORITHM_MAX,
} LinkAlgorithm;

/* A set of algorithms, as a bit mask: what nginx checks. */
#define LINK_ALGORITHM_BIT(a) (1u << (a))

typedef struct Config {
	/* [daemon] */
	char *socket;             /* /run/securelink/securelinkd.sock */
	char *state_directory;    /* /var/lib/securelink */
	char *admin_group;        /* securelink-admin */
	unsigned max_connections; /* 1024 */
	usec_t idle_timeout;      /* 60s */

	/* [keys] */
	KeyMode mode;                   /* local */
	char *master_key_file;          /* NULL: systemd credential securelink-master */
	char *master_key_file_previous; /* NULL: credential securelink-master-previous, if any */
	usec_t master_switch;           /* CLOCK_REALTIME when the new master takes over; 0: none */
	usec_t rotate_every;            /* 24h */
	usec_t max_link_ttl;            /* 24h */
	usec_t default_link_ttl;        /* 1h */
	usec_t activation_delay;        /* 2s */
	usec_t clock_skew;              /* 30s */

	/* [links] */
	char *base_url;          /* "" (answers are paths) */
	char *media_url;         /* /media/ ; always starts and ends with '/' */
	char **private_prefixes; /* relative to media_url, each ends with '/'; NULL-terminated */
	char **public_prefixes;  /* ditto */
	char *token_param;       /* token */
	char *expires_param;     /* expires */
	char *key_param;         /* kid */
	bool bind_ip;            /* no */
	LinkAlgorithm algorithm; /* md5 */
	bool allow_binary_paths; /* no: refuse targets whose decoded path is not UTF-8 text */
	unsigned max_url_length; /* 8176: nginx's default request line, see CONFIG_URL_LENGTH_* */
	usec_t expires_granularity; /* 0: off; whole seconds, at most max_link_ttl */

	/* [nginx] */
	char *keys_file;       /* /etc/nginx/securelink/keys.conf */
	char *locations_file;  /* /etc/nginx/securelink/locations.conf */
	char *media_root;      /* /var/www/html/media/ ; ends with '/' */
	bool serve_public;     /* yes: locations_file serves the rest of media_url plainly */
	char **test_command;   /* argv; NULL with test_unit */
	char *test_unit;       /* systemd:securelink-nginx-test.service; NULL with test_command */
	ReloadMethod reload;   /* systemd:nginx.service */
	char *reload_target;   /* unit name or pid file; NULL otherwise */
	char **reload_command; /* argv for exec:, NULL otherwise */
	char *probe;           /* NULL: the default (config_probe_origin()); "no"; or an origin */
	usec_t probe_every;    /* 5m */
	usec_t nginx_timeout;  /* 30s: one test and reload; deferred requests get 3 of them */

	/* What a valid file may still not mean what it seems to, one line each
	 * ("securelinkd.conf:7: private_prefixes: ..."), for the program to show
	 * when it loads the file; NULL-terminated, never NULL. */
	char **warnings;
} Config;

/* Returns a Config holding every default, or NULL when out of memory. */
Config *config_new(void);
Config *config_free(Config *c);
static inline void config_freep(Config **c)
{
	config_free(*c);
}

/* A deep copy of c (config_copy() knows every pointer field of Config: a new
 * one goes there too). -ENOMEM, or 0 and *ret. */
int config_copy(const Config *c, Config **ret);

/* Loads path over the defaults. On error returns a negative errno and sets
 * *ret_error to one malloc'd line naming the file, the line and the key, and
 * the fix: `securelinkd.conf:14: max_link_ttl: "3x" is not a duration (use
 * 90s, 15m, 24h, 7d)`. A file that does not exist is an error too. Paths that
 * must stay out of media_root are checked after resolving symlinks too. */
int config_load(const char *path, Config **ret, char **ret_error);

/* Same, from a string; name is what error messages call the file. Touches
 * no file: the media_root checks are on the paths as written. */
int config_load_string(const char *text, const char *name, Config **ret, char **ret_error);

/* Whether the decoded URL path needs a signed link, following
 * django-nginx-secure-links: only private prefixes -> those are private; only
 * public prefixes -> everything under media_url except those is private;
 * neither -> everything under media_url is private. Paths outside media_url
 * are public. */
bool config_path_is_private(const Config *c, const char *path);

/* Whether the programs of test_command and of reload = exec: exist and are
 * executable, looked up as execvp() will (a bare name in $PATH). Otherwise
 * returns -ENOENT (or -EACCES) with *ret_error one malloc'd line naming the
 * file, the key, the program and the fix: a test that can never run would
 * keep every new key from activating. */
int config_check_commands(const Config *c, const char *name, char **ret_error);

/* Whether a and b make the same links and the same nginx checks: media_url,
 * the prefixes, the parameter names and bind_ip. */
bool config_link_format_equal(const Config *a, const Config *b);

/* Where the enforcement probes go: *ret_origin (scheme://host[:port], owned
 * by c) and whether the connection goes to 127.0.0.1 whatever the host
 * (Host and SNI kept). Returns false when probes are off: probe = no, or
 * by default with reload = none (an app server without nginx). */
bool config_probe_origin(const Config *c, const char **ret_origin, bool *ret_loopback);

const char *reload_method_to_string(ReloadMethod m);
const char *key_mode_to_string(KeyMode m);
const char *link_algorithm_to_string(LinkAlgorithm a);
