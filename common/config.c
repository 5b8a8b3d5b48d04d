/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <strings.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "fileio.h"

/* A config file is a few kilobytes; anything this large is the wrong file. */
#define CONFIG_MAX_SIZE (256U * 1024U)
/* Longest line accepted, without its line feed. */
#define CONFIG_LINE_MAX 4096U
/* Longest value echoed back in an error message. */
#define ECHO_MAX 64U
/* No duration needs more than ten years, and the cap keeps sums such as
 * retired + max_link_ttl + clock_skew far from overflowing usec_t. */
#define DURATION_MAX (3650ULL * USEC_PER_DAY)
/* nginx's $arg_NAME: a short identifier. */
#define PARAM_NAME_MAX 64U
#define UNIT_NAME_MAX  255U
#define SUN_PATH_SIZE  sizeof(((struct sockaddr_un *)NULL)->sun_path)

#define DURATION_FIX "use 90s, 15m, 24h, 7d"
#define NGINX_UNSAFE_FIX                                                                           \
	"nginx cannot hold it safely; use one without whitespace, quotes, \\, $, {, }, ; or #"
#define NO_SHELL_FIX                                                                               \
	"commands run without a shell: write the program and its arguments separated by spaces"

typedef struct Parser Parser;
typedef struct KeyDef KeyDef;
typedef int (*KeyParser)(Parser *p, const KeyDef *k, const char *value, void *field);

struct KeyDef {
	const char *section;
	const char *key;
	KeyParser parse;
	size_t offset;     /* of the field in Config */
	const char *shown; /* the default as written in the file, for messages */
	bool allow_empty;  /* an empty value means "none" */
	usec_t min;        /* durations only: smallest value accepted */
};

struct Parser {
	Config *config;
	const char *name; /* what messages call the file */
	const char *text; /* reader position */
	size_t left;
	unsigned line;       /* line the reader handed to inih last */
	unsigned *key_line;  /* per KeyDef: line that set it, 0 for the default */
	char **bare_private; /* private_prefixes as written without a trailing '/' */
	char **bare_public;  /* ditto, public_prefixes */
	int r;               /* first error */
	char *error;
	bool resolve_paths; /* also check media_root containment after symlinks */
};

static const char *const sections[] = { "daemon", "keys", "links", "nginx" };

static const char *const reload_method_table[_RELOAD_METHOD_MAX] = {
	[RELOAD_SYSTEMD] = "systemd",
	[RELOAD_PIDFILE] = "pidfile",
	[RELOAD_EXEC] = "exec",
	[RELOAD_NONE] = "none",
};

static const char *const key_mode_table[_KEY_MODE_MAX] = {
	[KEY_MODE_LOCAL] = "local",
	[KEY_MODE_DERIVED] = "derived",
};

bool config_probe_origin(const Config *c, const char **ret_origin, bool *ret_loopback)
{
	assert(c);
	assert(ret_origin);
	assert(ret_loopback);

	if (c->probe) {
		if (streq(c->probe, "no"))
			return false;
		*ret_origin = c->probe;
		*ret_loopback = false;
		return true;
	}
	if (c->reload == RELOAD_NONE)
		return false;
	if (c->base_url[0] == '\0') {
		*ret_origin = "http://127.0.0.1";
		*ret_loopback = false;
		return true;
	}
	*ret_origin = c->base_url;
	*ret_loopback = true;
	return true;
}

const char *reload_method_to_string(ReloadMethod m)
{
	if ((unsigned)m >= _RELOAD_METHOD_MAX)
		return NULL;
	return reload_method_table[m];
}

static const char *const link_algorithm_table[_LINK_ALGORITHM_MAX] = {
	[LINK_ALGORITHM_MD5] = "md5",
	[LINK_ALGORITHM_HMAC_SHA256] = "hmac-sha256",
};

const char *link_algorithm_to_string(LinkAlgorithm a)
{
	if (a >= _LINK_ALGORITHM_MAX)
		return NULL;
	return link_algorithm_table[a];
}

const char *key_mode_to_string(KeyMode m)
{
	if ((unsigned)m >= _KEY_MODE_MAX)
		return NULL;
	return key_mode_table[m];
}

/* Error reporting */

/* Copies s into buf for a message: printable ASCII and UTF-8 as is, quotes
 * and backslashes escaped, control bytes as \xNN, long values cut with "...".
 * Config values are not secret, but they must not smuggle terminal escapes
 * or line breaks into a one-line error. */
static const char *echo(char *buf, size_t size, const char *s)
{
	size_t n = 0;

	assert(size >= ECHO_MAX + 8);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (n >= ECHO_MAX) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(buf + n, size - n, "\\x%02x", c);
			n += 4;
		} else
			buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return buf;
}

#define ECHO_BUF_SIZE (ECHO_MAX + 8)
#define ECHO(s)       echo((char[ECHO_BUF_SIZE]){ 0 }, ECHO_BUF_SIZE, (s))

/* Records the first error as one line: "name:line: key: message". line 0
 * leaves the line out (a default that conflicts with another key), key NULL
 * leaves the key out. Returns r. */
_printf_(5, 6) static int parser_error(Parser *p, unsigned line, const char *key, int r,
                                       const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	char where[32] = "";
	va_list ap;
	int k;

	assert(r < 0);
	if (p->r < 0)
		return p->r;
	p->r = r;

	va_start(ap, fmt);
	k = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (k < 0) {
		msg = NULL;
		p->r = -ENOMEM;
		return -ENOMEM;
	}

	if (line > 0)
		snprintf(where, sizeof(where), ":%u", line);
	if (asprintf(&p->error, "%s%s: %s%s%s", p->name, where, key ? key : "", key ? ": " : "",
	             msg) < 0) {
		p->error = NULL;
		p->r = -ENOMEM;
		return -ENOMEM;
	}
	return r;
}

/* The common shape: key: "value" what (fix). */
static int value_error(Parser *p, const KeyDef *k, const char *value, const char *what,
                       const char *fix)
{
	return parser_error(p, p->line, k->key, -EINVAL, "\"%s\" %s (%s)", ECHO(value), what, fix);
}

/* Character checks */

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* What the message calls a byte. */
static const char *describe_char(char buf[static 32], unsigned char c)
{
	if (c == ' ')
		return "a space";
	if (c == '\t')
		return "a tab";
	if (is_control(c)) {
		snprintf(buf, 32, "control byte \\x%02x", c);
		return buf;
	}
	snprintf(buf, 16, "'%c'", c);
	return buf;
}

/* Values that end up inside the nginx config (paths, names in locations and
 * includes) are written unquoted or inside double quotes; none of these bytes
 * can appear there without changing what nginx parses. */
static const char *find_nginx_unsafe(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (is_control(c) || isspace(c) || strchr("\"'\\${};#", c))
			return s;
	}
	return NULL;
}

static int check_nginx_safe(Parser *p, const KeyDef *k, const char *value)
{
	const char *bad = find_nginx_unsafe(value);
	char what[64], c[32];

	if (!bad)
		return 0;
	snprintf(what, sizeof(what), "contains %s", describe_char(c, (unsigned char)*bad));
	return value_error(p, k, value, what, NGINX_UNSAFE_FIX);
}

static int check_no_control(Parser *p, const KeyDef *k, const char *value)
{
	for (const char *s = value; *s; s++)
		if (is_control((unsigned char)*s))
			return value_error(p, k, value, "contains a control byte", "remove it");
	return 0;
}

/* Whether path (absolute or relative) has a "." or ".." segment. */
static bool has_dot_segment(const char *path)
{
	for (const char *s = path; *s;) {
		size_t n;

		s += strspn(s, "/");
		n = strcspn(s, "/");
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return true;
		s += n;
	}
	return false;
}

/* Paths */

enum {
	PATH_FILE = 0,            /* no trailing '/' */
	PATH_DIRECTORY = 1,       /* trailing '/' removed */
	PATH_DIRECTORY_SLASH = 2, /* trailing '/' added */
};

/* Checks an absolute file system path and returns a normalised copy:
 * repeated slashes merged, trailing slash as the kind wants. "." and ".."
 * are refused rather than resolved, so that "is it inside media_root"
 * compares what the kernel will open. */
static int make_absolute_path(Parser *p, const KeyDef *k, const char *value, int kind, char **ret)
{
	_cleanup_free_ char *s = NULL;
	size_t n = 0;
	int r;

	r = check_no_control(p, k, value);
	if (r < 0)
		return r;
	if (value[0] != '/')
		return value_error(p, k, value, "is not an absolute path",
		                   "write it starting with '/'");
	if (has_dot_segment(value))
		return value_error(p, k, value, "contains a '.' or '..' segment",
		                   "write the path without them");

	s = malloc(strlen(value) + 2);
	if (!s)
		return -ENOMEM;
	for (const char *i = value; *i; i++)
		if (*i != '/' || n == 0 || s[n - 1] != '/')
			s[n++] = *i;
	if (n > 1 && s[n - 1] == '/')
		n--;
	s[n] = '\0';

	if (kind == PATH_FILE && (streq(s, "/") || value[strlen(value) - 1] == '/'))
		return value_error(p, k, value, "names a directory",
		                   "give the path of a file, without a trailing '/'");
	if (kind == PATH_DIRECTORY_SLASH && !streq(s, "/")) {
		s[n++] = '/';
		s[n] = '\0';
	}

	*ret = TAKE_PTR(s);
	return 0;
}

static void replace_string(void *field, char *s)
{
	char **f = field;

	free(*f);
	*f = s;
}

static int parse_file_path(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;
	int r;

	r = make_absolute_path(p, k, value, PATH_FILE, &s);
	if (r < 0)
		return r;
	replace_string(field, s);
	return 0;
}

static int parse_optional_file_path(Parser *p, const KeyDef *k, const char *value, void *field)
{
	if (value[0] == '\0') {
		replace_string(field, NULL);
		return 0;
	}
	return parse_file_path(p, k, value, field);
}

static int parse_socket_path(Parser *p, const KeyDef *k, const char *value, void *field)
{
	_cleanup_free_ char *s = NULL;
	char fix[64];
	int r;

	r = make_absolute_path(p, k, value, PATH_FILE, &s);
	if (r < 0)
		return r;
	/* sockaddr_un.sun_path holds the path and its NUL. */
	if (strlen(s) >= SUN_PATH_SIZE) {
		snprintf(fix, sizeof(fix), "use a path of at most %zu bytes", SUN_PATH_SIZE - 1);
		return value_error(p, k, value, "is too long for a Unix socket", fix);
	}
	replace_string(field, TAKE_PTR(s));
	return 0;
}

static int parse_directory(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;
	int r;

	r = make_absolute_path(p, k, value, PATH_DIRECTORY, &s);
	if (r < 0)
		return r;
	replace_string(field, s);
	return 0;
}

/* A path nginx reads: keys_file and locations_file in include lines. */
static int parse_nginx_file(Parser *p, const KeyDef *k, const char *value, void *field)
{
	int r;

	r = check_nginx_safe(p, k, value);
	if (r < 0)
		return r;
	return parse_file_path(p, k, value, field);
}

/* media_root, the alias target of every location: always ends with '/', as
 * nginx's alias for a prefix location ending in '/' must. */
static int parse_nginx_directory(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;
	int r;

	r = check_nginx_safe(p, k, value);
	if (r < 0)
		return r;
	r = make_absolute_path(p, k, value, PATH_DIRECTORY_SLASH, &s);
	if (r < 0)
		return r;
	replace_string(field, s);
	return 0;
}

/* [links] */

/* Checks a URL path piece that becomes part of an nginx location: nginx
 * matches locations against the normalised $uri, which never holds "//",
 * "." or "..", so such a location would never match. */
static int check_location_path(Parser *p, const KeyDef *k, const char *whole, const char *piece)
{
	int r;

	r = check_nginx_safe(p, k, whole);
	if (r < 0)
		return r;
	if (strstr(piece, "//"))
		return value_error(p, k, whole, "contains \"//\"",
		                   "nginx merges slashes in $uri; write one '/'");
	if (has_dot_segment(piece))
		return value_error(p, k, whole, "contains a '.' or '..' segment",
		                   "nginx resolves them in $uri; write the path without them");
	return 0;
}

/* Returns a copy of s that ends with '/'. */
static char *with_trailing_slash(const char *s)
{
	size_t n = strlen(s);
	char *t = malloc(n + 2);

	if (!t)
		return NULL;
	memcpy(t, s, n);
	if (n == 0 || s[n - 1] != '/')
		t[n++] = '/';
	t[n] = '\0';
	return t;
}

static int parse_media_url(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;
	int r;

	if (value[0] != '/')
		return value_error(p, k, value, "does not start with '/'",
		                   "write the URL path, e.g. /media/");
	r = check_location_path(p, k, value, value);
	if (r < 0)
		return r;
	s = with_trailing_slash(value);
	if (!s)
		return -ENOMEM;
	replace_string(field, s);
	return 0;
}

static int parse_prefixes(Parser *p, const KeyDef *k, const char *value, void *field)
{
	_cleanup_strv_free_ char **l = NULL;
	char ***f = field;
	size_t i;
	int r;

	r = strv_split(value, &l);
	if (r < 0)
		return r;

	for (i = 0; l[i]; i++) {
		char *s;

		if (l[i][0] == '/') {
			/* The fix shows what they probably meant: the same
			 * prefix without the slash and without media_url. */
			const char *media = p->config->media_url + 1;
			const char *rel = l[i] + strspn(l[i], "/");
			char fix[ECHO_BUF_SIZE + 96];

			if (media[0] != '\0' && strncmp(rel, media, strlen(media)) == 0 &&
			    rel[strlen(media)] != '\0')
				rel += strlen(media);
			snprintf(fix, sizeof(fix),
			         "prefixes are relative to media_url: write \"%s\"", ECHO(rel));
			return value_error(p, k, l[i], "starts with '/'", fix);
		}
		r = check_location_path(p, k, l[i], l[i]);
		if (r < 0)
			return r;

		s = with_trailing_slash(l[i]);
		if (!s)
			return -ENOMEM;
		/* Remembered for a warning once media_url is known: a prefix
		 * here is a directory, django-nginx-secure-links' a string. */
		if (!streq(s, l[i])) {
			r = strv_consume(streq(k->key, "private_prefixes") ? &p->bare_private
			                                                   : &p->bare_public,
			                 strdup(l[i]));
			if (r < 0) {
				free(s);
				return r;
			}
		}
		free(l[i]);
		l[i] = s;

		/* media_url + "_grant/" carries directory grants (path form):
		 * a prefix there would be shadowed by it. */
		if (strncmp(s, GRANT_PATH_SEGMENT "/", STRLEN(GRANT_PATH_SEGMENT "/")) == 0)
			return value_error(p, k, l[i],
			                   "is reserved for directory grants (media_url "
			                   "+ \"" GRANT_PATH_SEGMENT "/\")",
			                   "rename that directory");

		/* Each prefix becomes a location; nginx refuses a config
		 * with the same location twice. */
		for (size_t j = 0; j < i; j++)
			if (streq(l[j], l[i]))
				return value_error(p, k, l[i], "is listed twice", "remove one");
	}

	strv_free(*f);
	*f = TAKE_PTR(l);
	return 0;
}

/* An absolute http(s) URL of scheme://host[:port] only: links are
 * base_url + path, and nginx hashes only the path. */
static int parse_base_url(Parser *p, const KeyDef *k, const char *value, void *field)
{
	const char *fix =
	    "use scheme://host[:port] such as https://files.example.com, or leave it empty";
	_cleanup_free_ char *s = NULL;
	const char *host, *port;
	size_t n;

	if (value[0] == '\0') {
		s = strdup("");
		if (!s)
			return -ENOMEM;
		replace_string(field, TAKE_PTR(s));
		return 0;
	}

	if (strncasecmp(value, "https://", STRLEN("https://")) == 0)
		host = value + STRLEN("https://");
	else if (strncasecmp(value, "http://", STRLEN("http://")) == 0)
		host = value + STRLEN("http://");
	else
		return value_error(p, k, value, "is not an http:// or https:// URL", fix);

	n = strlen(host);
	while (n > 0 && host[n - 1] == '/')
		n--;
	if (n == 0)
		return value_error(p, k, value, "has no host", fix);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)host[i];

		if (c == '/')
			return value_error(
			    p, k, value, "has a path",
			    "the path comes from media_url; use scheme://host[:port]");
		if (!isalnum(c) && !strchr(".-:[]_", c))
			return value_error(p, k, value,
			                   "has a character not allowed in a host name", fix);
	}

	/* A port after the last ':' outside an IPv6 literal. */
	port = memrchr(host, ':', n);
	if (port && !memchr(port, ']', n - (size_t)(port - host))) {
		char digits[8];
		size_t m = n - (size_t)(port - host) - 1;
		uint64_t v;

		if (m == 0 || m >= sizeof(digits))
			return value_error(p, k, value, "has a bad port", fix);
		memcpy(digits, port + 1, m);
		digits[m] = '\0';
		if (parse_u64(digits, &v) < 0 || v == 0 || v > 65535)
			return value_error(p, k, value, "has a bad port", fix);
		if (port == host)
			return value_error(p, k, value, "has no host", fix);
	}

	s = strndup(value, (size_t)(host - value) + n);
	if (!s)
		return -ENOMEM;
	replace_string(field, TAKE_PTR(s));
	return 0;
}

/* [nginx] probe: empty for the default, no, or an origin as base_url. */
static int parse_probe(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;

	if (value[0] == '\0') {
		replace_string(field, NULL);
		return 0;
	}
	if (parse_boolean(value) == 0) {
		s = strdup("no");
		if (!s)
			return -ENOMEM;
		replace_string(field, s);
		return 0;
	}
	return parse_base_url(p, k, value, field);
}

/* token_param, expires_param, key_param: nginx reads them as $arg_NAME. */
static int parse_param_name(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;

	if (strlen(value) > PARAM_NAME_MAX)
		return value_error(p, k, value, "is too long", "use at most 64 characters");
	for (const char *i = value; *i; i++)
		if (!isalnum((unsigned char)*i) && *i != '_')
			return value_error(
			    p, k, value, "is not a parameter name",
			    "nginx reads it as $arg_NAME: use only A-Z, a-z, 0-9 and _");
	s = strdup(value);
	if (!s)
		return -ENOMEM;
	replace_string(field, s);
	return 0;
}

static int parse_url_length(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char fix[32];
	uint64_t v;
	int r;

	snprintf(fix, sizeof(fix), "use %u to %u", CONFIG_URL_LENGTH_MIN, CONFIG_URL_LENGTH_MAX);
	r = parse_u64(value, &v);
	if (r == -EINVAL)
		return value_error(p, k, value, "is not a number", fix);
	if (r < 0 || v > CONFIG_URL_LENGTH_MAX)
		return value_error(p, k, value, "is longer than a SIGN answer can hold", fix);
	if (v < CONFIG_URL_LENGTH_MIN)
		return value_error(p, k, value, "is too short for a signed link", fix);
	*(unsigned *)field = (unsigned)v;
	return 0;
}

static int parse_bool(Parser *p, const KeyDef *k, const char *value, void *field)
{
	int b = parse_boolean(value);

	if (b < 0)
		return value_error(p, k, value, "is not a boolean", "use yes or no");
	*(bool *)field = b;
	return 0;
}

/* [daemon] and [keys] */

static int parse_group(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char *s;

	/* The portable user/group name set, as useradd(8) accepts it. */
	if (strlen(value) > 32 || value[0] == '-')
		return value_error(p, k, value, "is not a group name",
		                   "use letters, digits, '_', '.' and '-', at most 32");
	for (const char *i = value; *i; i++)
		if (!isalnum((unsigned char)*i) && !strchr("_.-", *i))
			return value_error(p, k, value, "is not a group name",
			                   "use letters, digits, '_', '.' and '-', at most 32");
	s = strdup(value);
	if (!s)
		return -ENOMEM;
	replace_string(field, s);
	return 0;
}

static int parse_connections(Parser *p, const KeyDef *k, const char *value, void *field)
{
	uint64_t v;
	int r;

	r = parse_u64(value, &v);
	if (r == -EINVAL)
		return value_error(p, k, value, "is not a number", "use 1 to 65536");
	if (r < 0 || v < 1 || v > 65536)
		return value_error(p, k, value, "is out of range", "use 1 to 65536");
	*(unsigned *)field = (unsigned)v;
	return 0;
}

static int parse_time(Parser *p, const KeyDef *k, const char *value, void *field)
{
	char fix[64], shown[32];
	usec_t v;
	int r;

	r = parse_duration(value, &v);
	if (r == -EINVAL)
		return value_error(p, k, value, "is not a duration", DURATION_FIX);
	if (r < 0 || v > DURATION_MAX)
		return value_error(p, k, value, "is too long", "use at most 3650d");
	if (v < k->min) {
		if (k->min <= 1)
			snprintf(fix, sizeof(fix), "use more than 0, e.g. %s", k->shown);
		else
			snprintf(fix, sizeof(fix), "use at least %s, e.g. %s",
			         format_duration(shown, sizeof(shown), k->min), k->shown);
		return value_error(p, k, value, "is too short", fix);
	}
	*(usec_t *)field = v;
	return 0;
}

/* An absolute moment: unix seconds, or UTC as 2025-07-01T00:00:00Z or
 * 2025-07-01. Empty: unset (0). */
static int parse_timestamp(Parser *p, const KeyDef *k, const char *value, void *field)
{
	static const char *const formats[] = { "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d" };
	const char *fix = "use unix seconds, or UTC as 2025-07-01T00:00:00Z or 2025-07-01";
	uint64_t v;

	if (value[0] == '\0') {
		*(usec_t *)field = 0;
		return 0;
	}
	if (value[0] >= '0' && value[0] <= '9' && parse_u64(value, &v) >= 0) {
		/* Before 2000 or past 9999 is a typo, not a plan. */
		if (v < 946684800ULL || v > 253402300799ULL)
			return value_error(p, k, value, "is out of range", fix);
		*(usec_t *)field = v * USEC_PER_SEC;
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
		struct tm tm = {};
		const char *end = strptime(value, formats[i], &tm);
		time_t t;

		if (!end || *end != '\0')
			continue;
		t = timegm(&tm);
		if (t < 946684800 || (uint64_t)t > 253402300799ULL)
			return value_error(p, k, value, "is out of range", fix);
		*(usec_t *)field = (usec_t)t * USEC_PER_SEC;
		return 0;
	}
	return value_error(p, k, value, "is not a time", fix);
}

static int parse_mode(Parser *p, const KeyDef *k, const char *value, void *field)
{
	for (unsigned i = 0; i < _KEY_MODE_MAX; i++)
		if (streq(value, key_mode_table[i])) {
			*(KeyMode *)field = (KeyMode)i;
			return 0;
		}
	return value_error(p, k, value, "is not a key mode", "use local or derived");
}

static int parse_algorithm(Parser *p, const KeyDef *k, const char *value, void *field)
{
	for (unsigned i = 0; i < _LINK_ALGORITHM_MAX; i++)
		if (streq(value, link_algorithm_table[i])) {
			*(LinkAlgorithm *)field = (LinkAlgorithm)i;
			return 0;
		}
	return value_error(p, k, value, "is not a link algorithm", "use md5 or hmac-sha256");
}

/* [nginx] commands */

/* Splits a command line on spaces and tabs into argv. There is no shell, so
 * quotes, escapes, variables and redirections would be passed on literally:
 * refuse them rather than run something the admin did not mean. */
static int parse_argv(Parser *p, const KeyDef *k, const char *whole, const char *cmd, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	size_t n = 0, i = 0;
	const char *s;

	for (s = cmd; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char what[64], d[32];

		if (c == ' ' || c == '\t')
			continue;
		if (is_control(c))
			return value_error(p, k, whole, "contains a control byte", "remove it");
		if (strchr("\"'\\`$|&;<>", c)) {
			snprintf(what, sizeof(what), "contains %s", describe_char(d, c));
			return value_error(p, k, whole, what, NO_SHELL_FIX);
		}
	}

	for (s = cmd;;) {
		s += strspn(s, " \t");
		if (!*s)
			break;
		n++;
		s += strcspn(s, " \t");
	}
	if (n == 0)
		return value_error(
		    p, k, whole, "has no command",
		    "write the program and its arguments, e.g. /usr/sbin/nginx -s reload");

	l = calloc(n + 1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	for (s = cmd;;) {
		size_t m;

		s += strspn(s, " \t");
		if (!*s)
			break;
		m = strcspn(s, " \t");
		l[i] = strndup(s, m);
		if (!l[i])
			return -ENOMEM;
		i++;
		s += m;
	}

	/* An absolute path, or a bare name looked up in PATH; a relative path
	 * would depend on the daemon's working directory. */
	if (l[0][0] != '/' && strchr(l[0], '/'))
		return value_error(
		    p, k, whole, "runs a relative path",
		    "use an absolute path such as /usr/sbin/nginx, or a bare command name");
	if (l[0][0] == '/' && has_dot_segment(l[0]))
		return value_error(p, k, whole, "contains a '.' or '..' segment",
		                   "write the program's path without them");

	*ret = TAKE_PTR(l);
	return 0;
}

/* "systemd:UNIT" as systemctl takes it: the full unit name in *ret. */
static int parse_unit_name(Parser *p, const KeyDef *k, const char *value, const char *example,
                           char **ret)
{
	const char *arg = value + STRLEN("systemd:");
	char fix[128];
	size_t n;

	snprintf(fix, sizeof(fix), "use e.g. systemd:%s", example);
	arg += strspn(arg, " \t");
	n = strlen(arg);
	if (n == 0 || n > UNIT_NAME_MAX - STRLEN(".service"))
		return value_error(p, k, value, "has no valid unit name", fix);
	for (const char *i = arg; *i; i++)
		if (!isalnum((unsigned char)*i) && !strchr(":_.@\\-", *i))
			return value_error(p, k, value, "has no valid unit name", fix);
	/* D-Bus wants the full unit name; systemctl's habit of completing
	 * "nginx" to "nginx.service" is what admins expect. */
	if (asprintf(ret, "%s%s", arg, strchr(arg, '.') ? "" : ".service") < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* A command line, or systemd:UNIT: a oneshot unit that runs the test with
 * root's rights for a daemon that has none (securelink-nginx-test.service). */
static int parse_test_command(Parser *p, const KeyDef *k, const char *value, void *field)
{
	_cleanup_free_ char *unit = NULL;
	char **l = NULL, ***f = field;
	Config *c = p->config;
	int r;

	if (strncmp(value, "systemd:", STRLEN("systemd:")) == 0)
		r = parse_unit_name(p, k, value, "securelink-nginx-test.service", &unit);
	else
		r = parse_argv(p, k, value, value, &l);
	if (r < 0)
		return r;
	strv_free(*f);
	*f = l;
	free(c->test_unit);
	c->test_unit = TAKE_PTR(unit);
	return 0;
}

static int parse_reload(Parser *p, const KeyDef *k, const char *value, void *field)
{
	const char *fix = "use systemd:nginx.service, pidfile:/run/nginx.pid, "
	                  "exec:/usr/sbin/nginx -s reload or none";
	Config *c = p->config;
	_cleanup_free_ char *target = NULL;
	_cleanup_strv_free_ char **command = NULL;
	ReloadMethod m;
	const char *arg;
	int r;

	if (streq(value, "none"))
		m = RELOAD_NONE;
	else if (strncmp(value, "systemd:", STRLEN("systemd:")) == 0) {
		m = RELOAD_SYSTEMD;
		r = parse_unit_name(p, k, value, "nginx.service", &target);
		if (r < 0)
			return r;
	} else if (strncmp(value, "pidfile:", STRLEN("pidfile:")) == 0) {
		m = RELOAD_PIDFILE;
		arg = value + STRLEN("pidfile:");
		arg += strspn(arg, " \t");
		r = make_absolute_path(p, k, arg, PATH_FILE, &target);
		if (r < 0)
			return r;
	} else if (strncmp(value, "exec:", STRLEN("exec:")) == 0) {
		m = RELOAD_EXEC;
		r = parse_argv(p, k, value, value + STRLEN("exec:"), &command);
		if (r < 0)
			return r;
	} else
		return value_error(p, k, value, "is not a reload method", fix);

	c->reload = m;
	free(c->reload_target);
	c->reload_target = TAKE_PTR(target);
	strv_free(c->reload_command);
	c->reload_command = TAKE_PTR(command);
	return 0;
}

/* The key table */

#define FIELD(f) offsetof(Config, f)
#define KEY(s, k, fn, f, def, ...)                                                                 \
	{                                                                                          \
		.section = (s), .key = (k), .parse = (fn), .offset = FIELD(f), .shown = (def),     \
		__VA_ARGS__                                                                        \
	}

static const KeyDef key_table[] = {
	KEY("daemon", "socket", parse_socket_path, socket, "/run/securelink/securelinkd.sock"),
	KEY("daemon", "state_directory", parse_directory, state_directory, "/var/lib/securelink"),
	KEY("daemon", "admin_group", parse_group, admin_group, "securelink-admin"),
	KEY("daemon", "max_connections", parse_connections, max_connections, "1024"),
	KEY("daemon", "idle_timeout", parse_time, idle_timeout, "60s", .min = 1),

	KEY("keys", "mode", parse_mode, mode, "local"),
	KEY("keys", "master_key_file", parse_optional_file_path, master_key_file, "",
	    .allow_empty = true),
	KEY("keys", "master_key_file_previous", parse_optional_file_path, master_key_file_previous,
	    "", .allow_empty = true),
	KEY("keys", "master_switch", parse_timestamp, master_switch, "", .allow_empty = true),
	KEY("keys", "rotate_every", parse_time, rotate_every, "24h", .min = USEC_PER_SEC),
	KEY("keys", "max_link_ttl", parse_time, max_link_ttl, "24h", .min = USEC_PER_SEC),
	KEY("keys", "default_link_ttl", parse_time, default_link_ttl, "1h", .min = USEC_PER_SEC),
	KEY("keys", "activation_delay", parse_time, activation_delay, "2s"),
	KEY("keys", "clock_skew", parse_time, clock_skew, "30s"),

	KEY("links", "base_url", parse_base_url, base_url, "", .allow_empty = true),
	KEY("links", "media_url", parse_media_url, media_url, "/media/"),
	KEY("links", "private_prefixes", parse_prefixes, private_prefixes, "", .allow_empty = true),
	KEY("links", "public_prefixes", parse_prefixes, public_prefixes, "", .allow_empty = true),
	KEY("links", "token_param", parse_param_name, token_param, "token"),
	KEY("links", "expires_param", parse_param_name, expires_param, "expires"),
	KEY("links", "key_param", parse_param_name, key_param, "kid"),
	KEY("links", "bind_ip", parse_bool, bind_ip, "no"),
	KEY("links", "algorithm", parse_algorithm, algorithm, "md5"),
	KEY("links", "allow_binary_paths", parse_bool, allow_binary_paths, "no"),
	KEY("links", "max_url_length", parse_url_length, max_url_length, "8176"),
	KEY("links", "expires_granularity", parse_time, expires_granularity, "0"),

	KEY("nginx", "keys_file", parse_nginx_file, keys_file, "/etc/nginx/securelink/keys.conf"),
	KEY("nginx", "locations_file", parse_nginx_file, locations_file,
	    "/etc/nginx/securelink/locations.conf"),
	KEY("nginx", "media_root", parse_nginx_directory, media_root, "/var/www/html/media/"),
	KEY("nginx", "serve_public", parse_bool, serve_public, "yes"),
	KEY("nginx", "test_command", parse_test_command, test_command,
	    "systemd:securelink-nginx-test.service"),
	KEY("nginx", "reload", parse_reload, reload, "systemd:nginx.service"),
	KEY("nginx", "probe", parse_probe, probe, "", .allow_empty = true),
	KEY("nginx", "probe_every", parse_time, probe_every, "5m", .min = USEC_PER_SEC),
	KEY("nginx", "timeout", parse_time, nginx_timeout, "30s", .min = USEC_PER_SEC),
};

static const KeyDef *key_lookup(const char *section, const char *key)
{
	for (size_t i = 0; i < ELEMENTSOF(key_table); i++)
		if (streq(key_table[i].key, key) &&
		    (!section || streq(key_table[i].section, section)))
			return key_table + i;
	return NULL;
}

static unsigned key_line(const Parser *p, const char *key)
{
	const KeyDef *k = key_lookup(NULL, key);

	assert(k);
	return p->key_line[k - key_table];
}

static bool section_known(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(sections); i++)
		if (streq(s, sections[i]))
			return true;
	return false;
}

/* Defaults */

Config *config_new(void)
{
	_cleanup_(config_freep) Config *c = NULL;

	c = calloc(1, sizeof(Config));
	if (!c)
		return NULL;

	c->max_connections = 1024;
	c->idle_timeout = 60 * USEC_PER_SEC;
	c->mode = KEY_MODE_LOCAL;
	c->rotate_every = 24 * USEC_PER_HOUR;
	c->max_link_ttl = 24 * USEC_PER_HOUR;
	c->default_link_ttl = USEC_PER_HOUR;
	c->activation_delay = 2 * USEC_PER_SEC;
	c->clock_skew = 30 * USEC_PER_SEC;
	c->bind_ip = false;
	c->algorithm = LINK_ALGORITHM_MD5;
	c->allow_binary_paths = false;
	c->max_url_length = CONFIG_URL_LENGTH_DEFAULT;
	c->reload = RELOAD_SYSTEMD;
	c->serve_public = true;
	c->probe_every = 5 * USEC_PER_MINUTE;
	c->nginx_timeout = 30 * USEC_PER_SEC;

	c->socket = strdup("/run/securelink/securelinkd.sock");
	c->state_directory = strdup("/var/lib/securelink");
	c->admin_group = strdup("securelink-admin");
	c->base_url = strdup("");
	c->media_url = strdup("/media/");
	/* Empty lists are empty arrays, never NULL: callers iterate them. */
	c->private_prefixes = calloc(1, sizeof(char *));
	c->public_prefixes = calloc(1, sizeof(char *));
	c->token_param = strdup("token");
	c->expires_param = strdup("expires");
	c->key_param = strdup("kid");
	c->keys_file = strdup("/etc/nginx/securelink/keys.conf");
	c->locations_file = strdup("/etc/nginx/securelink/locations.conf");
	c->media_root = strdup("/var/www/html/media/");
	c->reload_target = strdup("nginx.service");
	/* As reload = systemd:nginx.service: under systemd, where securelinkd
	 * runs unprivileged and nginx -t needs root. */
	c->test_unit = strdup("securelink-nginx-test.service");
	c->warnings = calloc(1, sizeof(char *));
	if (!c->warnings || !c->socket || !c->state_directory || !c->admin_group || !c->base_url ||
	    !c->media_url || !c->private_prefixes || !c->public_prefixes || !c->token_param ||
	    !c->expires_param || !c->key_param || !c->keys_file || !c->locations_file ||
	    !c->media_root || !c->reload_target || !c->test_unit)
		return NULL;

	return TAKE_PTR(c);
}

Config *config_free(Config *c)
{
	if (!c)
		return NULL;
	free(c->socket);
	free(c->state_directory);
	free(c->admin_group);
	free(c->master_key_file);
	free(c->master_key_file_previous);
	free(c->base_url);
	free(c->media_url);
	strv_free(c->private_prefixes);
	strv_free(c->public_prefixes);
	free(c->token_param);
	free(c->expires_param);
	free(c->key_param);
	free(c->keys_file);
	free(c->locations_file);
	free(c->media_root);
	free(c->probe);
	strv_free(c->test_command);
	free(c->test_unit);
	free(c->reload_target);
	strv_free(c->reload_command);
	strv_free(c->warnings);
	free(c);
	return NULL;
}

static int strv_copy(char *const *l, char ***ret)
{
	_cleanup_strv_free_ char **n = NULL;
	size_t len = strv_length(l);

	if (!l) {
		*ret = NULL;
		return 0;
	}
	n = calloc(len + 1, sizeof(char *));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		n[i] = strdup(l[i]);
		if (!n[i])
			return -ENOMEM;
	}
	*ret = TAKE_PTR(n);
	return 0;
}

static int strdup_or_null(const char *s, char **ret)
{
	*ret = s ? strdup(s) : NULL;
	return s && !*ret ? -ENOMEM : 0;
}

int config_copy(const Config *c, Config **ret)
{
	_cleanup_(config_freep) Config *n = NULL;
	int r = 0;

	n = calloc(1, sizeof(Config));
	if (!n)
		return -ENOMEM;
	*n = *c;
	/* None of c's pointers is n's: a copy that fails half way frees only
	 * its own. */
#define STRINGS(X)                                                                                 \
	X(socket)                                                                                  \
	X(state_directory)                                                                         \
	X(admin_group)                                                                             \
	X(master_key_file)                                                                         \
	X(master_key_file_previous)                                                                \
	X(base_url)                                                                                \
	X(media_url)                                                                               \
	X(token_param)                                                                             \
	X(expires_param)                                                                           \
	X(key_param)                                                                               \
	X(keys_file)                                                                               \
	X(locations_file)                                                                          \
	X(media_root)                                                                              \
	X(probe)                                                                                   \
	X(test_unit)                                                                               \
	X(reload_target)
#define STRVS(X)                                                                                   \
	X(private_prefixes)                                                                        \
	X(public_prefixes)                                                                         \
	X(test_command)                                                                            \
	X(reload_command)                                                                          \
	X(warnings)
#define CLEAR(f) n->f = NULL;
	STRINGS(CLEAR)
	STRVS(CLEAR)
#define COPY_STRING(f)                                                                             \
	if (r >= 0)                                                                                \
		r = strdup_or_null(c->f, &n->f);
#define COPY_STRV(f)                                                                               \
	if (r >= 0)                                                                                \
		r = strv_copy(c->f, &n->f);
	STRINGS(COPY_STRING)
	STRVS(COPY_STRV)
#undef COPY_STRV
#undef COPY_STRING
#undef CLEAR
#undef STRVS
#undef STRINGS
	if (r < 0)
		return r;
	*ret = TAKE_PTR(n);
	return 0;
}

/* Parsing */

/* Section headers never reach the handler, so an empty or misspelt section
 * would pass silently; the reader checks them as it hands lines to inih. */
static int check_section_line(Parser *p, const char *line)
{
	const char *s = line, *end, *rest;
	_cleanup_free_ char *name = NULL;

	if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	s += strspn(s, " \t\r\f\v");
	if (*s != '[')
		return 0;
	end = strchr(s, ']');
	if (!end)
		return parser_error(
		    p, p->line, NULL, -EINVAL,
		    "section header without ']' (write [daemon], [keys], [links] or [nginx])");

	name = strndup(s + 1, (size_t)(end - s - 1));
	if (!name)
		return -ENOMEM;
	if (!section_known(name))
		return parser_error(
		    p, p->line, NULL, -EINVAL,
		    "[%s]: unknown section (use [daemon], [keys], [links] or [nginx])", ECHO(name));

	/* Only whitespace, then maybe a comment: inih ignores anything
	 * after ']', which would hide typos. */
	rest = end + 1;
	rest += strspn(rest, " \t\r\n\f\v");
	if (*rest != '\0' && !(rest > end + 1 && strchr(";#", *rest)))
		return parser_error(
		    p, p->line, NULL, -EINVAL,
		    "[%s]: text after the section header (put comments on their own line)", name);
	return 0;
}

/* fgets() for inih over our buffer, one whole line per call, so p->line is
 * the number of the line inih is working on when it calls the handler. */
static char *config_reader(char *buf, int size, void *userdata)
{
	Parser *p = userdata;
	const char *nl;
	size_t n;

	if (p->r < 0 || p->left == 0)
		return NULL;

	nl = memchr(p->text, '\n', p->left);
	n = nl ? (size_t)(nl - p->text) + 1 : p->left;
	p->line++;

	if (size < 0 || n + 1 > (size_t)size) {
		parser_error(p, p->line, NULL, -EINVAL, "line longer than %u bytes (shorten it)",
		             CONFIG_LINE_MAX);
		return NULL;
	}
	memcpy(buf, p->text, n);
	buf[n] = '\0';
	p->text += n;
	p->left -= n;

	if (check_section_line(p, buf) < 0)
		return NULL;
	return buf;
}

static bool is_quoted(const char *v)
{
	size_t n = strlen(v);

	return n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0];
}

static int config_handler(void *userdata, const char *section, const char *name, const char *value)
{
	Parser *p = userdata;
	const KeyDef *k;
	unsigned *line;

	if (p->r < 0)
		return 0;

	if (name[0] == '\0') {
		parser_error(p, p->line, NULL, -EINVAL,
		             "line without a key before '=' (write key = value)");
		return 0;
	}

	k = key_lookup(section, name);
	if (!k) {
		const KeyDef *other = key_lookup(NULL, name);

		if (section[0] == '\0' || !section_known(section)) {
			if (other)
				parser_error(p, p->line, name, -EINVAL,
				             "outside any section (put it under [%s])",
				             other->section);
			else
				parser_error(p, p->line, ECHO(name), -EINVAL,
				             "unknown key outside any section (keys go under "
				             "[daemon], [keys], [links] or [nginx])");
		} else if (other)
			parser_error(p, p->line, name, -EINVAL,
			             "belongs in [%s], not [%s] (move it there)", other->section,
			             section);
		else {
			char known[512] = "";

			for (size_t i = 0; i < ELEMENTSOF(key_table); i++)
				if (streq(key_table[i].section, section)) {
					if (known[0])
						strncat(known, ", ",
						        sizeof(known) - strlen(known) - 1);
					strncat(known, key_table[i].key,
					        sizeof(known) - strlen(known) - 1);
				}
			parser_error(p, p->line, ECHO(name), -EINVAL,
			             "unknown key in [%s] (known keys there: %s)", section, known);
		}
		return 0;
	}

	line = &p->key_line[k - key_table];
	if (*line > 0) {
		parser_error(p, p->line, k->key, -EINVAL,
		             "set twice, first on line %u (keep one of them)", *line);
		return 0;
	}

	if (value[0] == '\0' && !k->allow_empty) {
		parser_error(
		    p, p->line, k->key, -EINVAL,
		    "empty value (write a value such as %s, or remove the line for the default)",
		    k->shown);
		return 0;
	}
	if (is_quoted(value)) {
		value_error(p, k, value, "is quoted", "write the value without quotes");
		return 0;
	}

	if (k->parse(p, k, value, (uint8_t *)p->config + k->offset) < 0) {
		/* Out of memory is the only failure that comes without a
		 * message of its own. */
		if (p->r == 0)
			p->r = -ENOMEM;
		return 0;
	}
	*line = p->line;
	return 1;
}

/* Names the key a conflict is reported on: the one set later in the file,
 * since that is the line the admin most likely just edited. */
static const char *later_key(const Parser *p, const char *a, const char *b)
{
	return key_line(p, b) > key_line(p, a) ? b : a;
}

static int fail_on(Parser *p, const char *key, const char *fmt, ...) _printf_(3, 4);
static int fail_on(Parser *p, const char *key, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;
	return parser_error(p, key_line(p, key), key, -EINVAL, "%s", msg);
}

static bool path_inside(const char *path, const char *dir_slash)
{
	return strncmp(path, dir_slash, strlen(dir_slash)) == 0;
}

/* Whether dir (no trailing slash) is the directory dir_slash names. */
static bool dir_is(const char *dir, const char *dir_slash)
{
	size_t n = strlen(dir);

	return strncmp(dir, dir_slash, n) == 0 && streq(dir_slash + n, "/");
}

/* One warning per prefix written without a trailing '/': the file is valid,
 * but "private" covers /media/private/ only, while django-nginx-secure-links
 * (startswith) also covers /media/privatefoo.pdf; an admin moving over from
 * it would not see the difference otherwise. */
static int warn_bare_prefixes(Parser *p, const char *key, char **bare, const char *there)
{
	const Config *c = p->config;

	for (char **i = bare; i && *i; i++) {
		char *w;

		if (asprintf(&w,
		             "%s:%u: %s: \"%s\" is read as \"%s/\": it covers %s%s/... but not "
		             "%s%sfoo.pdf, which django-nginx-secure-links would %s (write \"%s/\" "
		             "to silence this warning)",
		             p->name, key_line(p, key), key, ECHO(*i), ECHO(*i), c->media_url,
		             ECHO(*i), c->media_url, ECHO(*i), there, ECHO(*i)) < 0)
			return -ENOMEM;
		if (strv_consume(&p->config->warnings, w) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* realpath() of the longest prefix of path that exists, with the rest
 * appended as written: what the kernel will open once the rest is created.
 * Returns 0, or a negative errno when a part exists but cannot be resolved
 * (no permission, a symlink loop). */
static int path_resolve_existing(const char *path, char **ret)
{
	_cleanup_free_ char *head = strdup(path);

	if (!head)
		return -ENOMEM;
	for (;;) {
		_cleanup_free_ char *real = realpath(head, NULL);
		char *slash;

		if (real) {
			/* head is a prefix of path; what follows it starts with '/',
			 * unless head is "/" itself. */
			const char *rest = path + strlen(head);

			rest += strspn(rest, "/");
			if (!*rest) {
				*ret = TAKE_PTR(real);
				return 0;
			}
			if (asprintf(ret, "%s%s%s", real, streq(real, "/") ? "" : "/", rest) < 0)
				return -ENOMEM;
			return 0;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		slash = strrchr(head, '/');
		if (!slash || streq(head, "/"))
			return -ENOENT;
		if (slash == head)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
}

/* The containment checks again, after symlinks: nginx follows them, so a
 * state directory that is a symlink into media_root is served all the same.
 * Parts that do not exist yet are taken as written; parts that cannot be
 * resolved (permissions, when --check-config runs as another user) leave
 * the textual check as the only one. */
static int config_verify_resolved(Parser *p)
{
	const Config *c = p->config;
	_cleanup_free_ char *media = NULL, *media_slash = NULL;
	const struct {
		const char *key;
		const char *path;
		bool dir;
		const char *what;
	} paths[] = {
		{ "keys_file", c->keys_file, false, "the keys" },
		{ "master_key_file", c->master_key_file, false, "it" },
		{ "master_key_file_previous", c->master_key_file_previous, false, "it" },
		{ "state_directory", c->state_directory, true, "the keyring" },
	};
	int r;

	r = path_resolve_existing(c->media_root, &media);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	if (asprintf(&media_slash, "%s%s", media, streq(media, "/") ? "" : "/") < 0)
		return -ENOMEM;

	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		_cleanup_free_ char *real = NULL;

		if (!paths[i].path)
			continue;
		r = path_resolve_existing(paths[i].path, &real);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		if (path_inside(real, media_slash) || (paths[i].dir && dir_is(real, media_slash)))
			return fail_on(
			    p, later_key(p, paths[i].key, "media_root"),
			    "%s %s resolves (through symbolic links) to %s, inside media_root "
			    "%s (%s): nginx would serve %s (move it out)",
			    paths[i].key, paths[i].path, real, c->media_root, media, paths[i].what);
	}
	return 0;
}

static usec_t round_up(usec_t v, usec_t unit)
{
	return (v + unit - 1) / unit * unit;
}

/* mode = local: a key retires every rotate_every and stays in the ring
 * until its last link expires (max_link_ttl + clock_skew later), beside the
 * active, a pending and a legacy key. That must fit KEYRING_MAX_KEYS. */
static int verify_ring_room(Parser *p)
{
	const Config *c = p->config;
	const usec_t room = KEYRING_MAX_KEYS - 3;
	usec_t life = c->max_link_ttl + c->clock_skew, min_rotate, max_ttl;
	uint64_t retired = (life + c->rotate_every - 1) / c->rotate_every;
	char a[32], b[32], x[32], y[32];

	if (c->mode != KEY_MODE_LOCAL || retired <= room)
		return 0;
	/* What would fit, in round figures. */
	min_rotate = (life + room - 1) / room;
	min_rotate =
	    round_up(min_rotate, min_rotate >= USEC_PER_HOUR ? USEC_PER_HOUR : USEC_PER_SEC);
	max_ttl = room * c->rotate_every - c->clock_skew;
	if (max_ttl >= USEC_PER_HOUR)
		max_ttl = max_ttl / USEC_PER_HOUR * USEC_PER_HOUR;
	else
		max_ttl = max_ttl / USEC_PER_SEC * USEC_PER_SEC;
	return fail_on(p, later_key(p, "rotate_every", "max_link_ttl"),
	               "rotate_every %s with max_link_ttl %s keeps up to %" PRIu64
	               " keys in the key ring, more than the %d it holds (raise rotate_every to "
	               "at least %s, or lower max_link_ttl to at most %s)",
	               format_duration(a, sizeof(a), c->rotate_every),
	               format_duration(b, sizeof(b), c->max_link_ttl), retired + 3,
	               KEYRING_MAX_KEYS, format_duration(x, sizeof(x), min_rotate),
	               max_ttl >= USEC_PER_SEC ? format_duration(y, sizeof(y), max_ttl) : "-");
}

/* Checks between keys, once the whole file is read. */
static int config_verify(Parser *p)
{
	static const struct {
		const char *key;
		size_t offset;
	} params[] = {
		{ "token_param", FIELD(token_param) },
		{ "expires_param", FIELD(expires_param) },
		{ "key_param", FIELD(key_param) },
	};
	const Config *c = p->config;
	char a[32], b[32];
	const char *key;
	int r;

	if (c->private_prefixes[0] && c->public_prefixes[0]) {
		key = later_key(p, "private_prefixes", "public_prefixes");
		return fail_on(p, key,
		               "cannot be combined with %s (set only one: private_prefixes lists "
		               "what needs a signed link, public_prefixes what does not)",
		               streq(key, "private_prefixes") ? "public_prefixes"
		                                              : "private_prefixes");
	}

	if (c->default_link_ttl > c->max_link_ttl) {
		key = later_key(p, "max_link_ttl", "default_link_ttl");
		return fail_on(p, key, "default_link_ttl %s is longer than max_link_ttl %s (%s)",
		               format_duration(a, sizeof(a), c->default_link_ttl),
		               format_duration(b, sizeof(b), c->max_link_ttl),
		               "lower default_link_ttl or raise max_link_ttl");
	}

	/* expires is a unix time in seconds: a window of 1.5s has no
	 * multiples there. Longer than max_link_ttl, no rounded link would
	 * ever be allowed. */
	if (c->expires_granularity % USEC_PER_SEC != 0)
		return fail_on(p, "expires_granularity",
		               "%s is not a whole number of seconds (use e.g. 5m, or 0 for off)",
		               format_duration(a, sizeof(a), c->expires_granularity));
	if (c->expires_granularity > c->max_link_ttl) {
		key = later_key(p, "max_link_ttl", "expires_granularity");
		return fail_on(p, key, "expires_granularity %s is longer than max_link_ttl %s (%s)",
		               format_duration(a, sizeof(a), c->expires_granularity),
		               format_duration(b, sizeof(b), c->max_link_ttl),
		               "lower expires_granularity or raise max_link_ttl");
	}

	/* A key must be live in nginx before it signs, so the next rotation
	 * cannot come before the current key has been activated. */
	if (c->activation_delay >= c->rotate_every) {
		key = later_key(p, "rotate_every", "activation_delay");
		return fail_on(p, key,
		               "activation_delay %s is not shorter than rotate_every %s (%s)",
		               format_duration(a, sizeof(a), c->activation_delay),
		               format_duration(b, sizeof(b), c->rotate_every),
		               "lower activation_delay or raise rotate_every");
	}

	r = verify_ring_room(p);
	if (r < 0)
		return r;

	/* In a fleet every host must derive the same keys; a master key with
	 * mode = local would silently give each host its own. */
	if (c->master_key_file && c->mode != KEY_MODE_DERIVED)
		return fail_on(
		    p, "master_key_file",
		    "is set but mode is local (set mode = derived, or remove master_key_file)");
	if (c->master_key_file_previous && c->mode != KEY_MODE_DERIVED)
		return fail_on(p, "master_key_file_previous",
		               "is set but mode is local (set mode = derived, or remove "
		               "master_key_file_previous)");
	if (c->master_switch && c->mode != KEY_MODE_DERIVED)
		return fail_on(p, "master_switch",
		               "is set but mode is local (set mode = derived, or remove "
		               "master_switch)");
	/* Which master an epoch uses is decided by master_switch alone: with
	 * a previous master file it must be given (a previous credential is
	 * only seen at start-up; derive_masters_load() checks that one). */
	if (c->master_key_file_previous && !c->master_switch)
		return fail_on(p, "master_key_file_previous",
		               "is set but master_switch is not (set master_switch to when the new "
		               "master takes over, the same on every host)");
	if (c->master_key_file_previous && c->master_key_file &&
	    streq(c->master_key_file_previous, c->master_key_file))
		return fail_on(p, later_key(p, "master_key_file", "master_key_file_previous"),
		               "master_key_file and master_key_file_previous are the same file "
		               "(the new master goes in master_key_file, the old one in "
		               "master_key_file_previous)");

	for (size_t i = 0; i < ELEMENTSOF(params); i++)
		for (size_t j = i + 1; j < ELEMENTSOF(params); j++) {
			const char *x = *(char *const *)((const uint8_t *)c + params[i].offset);
			const char *y = *(char *const *)((const uint8_t *)c + params[j].offset);
			bool later_i;

			if (strcasecmp(x, y) != 0)
				continue;
			key = later_key(p, params[i].key, params[j].key);
			later_i = key == params[i].key;
			if (streq(x, y))
				return fail_on(
				    p, key,
				    "same parameter name as %s (give each parameter its own name)",
				    later_i ? params[j].key : params[i].key);
			/* nginx's $arg_NAME finds the first parameter whose
			 * name matches in any case: both would read one value,
			 * and every link would be 403. */
			return fail_on(p, key,
			               "\"%s\" is the same parameter as %s \"%s\" to nginx, which "
			               "compares $arg_ names without regard to case (give each "
			               "parameter a name of its own)",
			               later_i ? x : y, later_i ? params[j].key : params[i].key,
			               later_i ? y : x);
		}

	if (streq(c->keys_file, c->locations_file))
		return fail_on(
		    p, later_key(p, "keys_file", "locations_file"),
		    "keys_file and locations_file are the same file (give each its own path)");

	/* nginx serves everything under media_root: a secret in there would be
	 * one request away from anyone. (Symlinks: config_verify_resolved().) */
	if (path_inside(c->keys_file, c->media_root))
		return fail_on(p, later_key(p, "keys_file", "media_root"),
		               "keys_file %s is inside media_root %s, nginx would serve the keys "
		               "(move it, e.g. to /etc/nginx/securelink/)",
		               c->keys_file, c->media_root);
	if (c->master_key_file && path_inside(c->master_key_file, c->media_root))
		return fail_on(p, later_key(p, "master_key_file", "media_root"),
		               "master_key_file %s is inside media_root %s, nginx would serve it "
		               "(move it out)",
		               c->master_key_file, c->media_root);
	if (c->master_key_file_previous && path_inside(c->master_key_file_previous, c->media_root))
		return fail_on(p, later_key(p, "master_key_file_previous", "media_root"),
		               "master_key_file_previous %s is inside media_root %s, nginx would "
		               "serve it (move it out)",
		               c->master_key_file_previous, c->media_root);
	if (path_inside(c->state_directory, c->media_root) ||
	    dir_is(c->state_directory, c->media_root))
		return fail_on(p, later_key(p, "state_directory", "media_root"),
		               "state_directory %s is inside media_root %s, nginx would serve the "
		               "keyring (move it out)",
		               c->state_directory, c->media_root);
	if (p->resolve_paths)
		return config_verify_resolved(p);
	return 0;
}

static int config_parse(const char *text, const char *name, bool resolve_paths, Config **ret,
                        char **ret_error)
{
	_cleanup_(config_freep) Config *c = NULL;
	unsigned key_lines[ELEMENTSOF(key_table)] = { 0 };
	Parser p = {
		.name = name ?: "<string>",
		.text = text,
		.left = strlen(text),
		.key_line = key_lines,
		.resolve_paths = resolve_paths,
	};
	int r;

	assert(text);
	assert(ret);

	c = config_new();
	if (!c)
		return -ENOMEM;
	p.config = c;

	/* Debian builds inih with its options as process-wide globals (so
	 * loading is not thread-safe). Set every one we rely on, each time:
	 * multi-line values would let an indented line silently extend the
	 * previous key; inline comments count only after whitespace (inih's
	 * rule), so "a;b" stays one value. The line buffer is on the heap and
	 * exactly our limit: the reader hands over whole lines and refuses
	 * longer ones, so inih never splits a line in two. */
	ini_allow_multiline = false;
	ini_allow_bom = true;
	ini_start_comment_prefixes = (char *)";#";
	ini_allow_inline_comments = true;
	ini_inline_comment_prefixes = (char *)";#";
	ini_use_stack = false;
	ini_max_line = CONFIG_LINE_MAX + 2; /* line feed and NUL */
	ini_initial_alloc = CONFIG_LINE_MAX + 2;
	ini_allow_realloc = false;
	ini_stop_on_first_error = true;
	ini_allow_no_value = false;

	r = ini_parse_stream(config_reader, &p, config_handler, &p);
	if (p.r == 0) {
		if (r == -2)
			p.r = -ENOMEM;
		else if (r != 0)
			parser_error(
			    &p, (unsigned)r, NULL, -EINVAL,
			    "not a \"key = value\" line, [section] or comment (write key = value)");
		else if (config_verify(&p) >= 0) {
			r = warn_bare_prefixes(&p, "private_prefixes", p.bare_private, "also sign");
			if (r >= 0)
				r = warn_bare_prefixes(&p, "public_prefixes", p.bare_public,
				                       "also leave unsigned");
			if (r < 0)
				p.r = r;
		}
	}
	strv_free(p.bare_private);
	strv_free(p.bare_public);

	if (p.r < 0) {
		if (ret_error)
			*ret_error = TAKE_PTR(p.error);
		free(p.error);
		return p.r;
	}

	*ret = TAKE_PTR(c);
	if (ret_error)
		*ret_error = NULL;
	return 0;
}

int config_load_string(const char *text, const char *name, Config **ret, char **ret_error)
{
	return config_parse(text, name, false, ret, ret_error);
}

int config_load(const char *path, Config **ret, char **ret_error)
{
	_cleanup_free_ char *text = NULL;
	const char *base;
	size_t size;
	int r;

	assert(path);
	assert(ret);

	r = read_file(path, CONFIG_MAX_SIZE, &text, &size);
	if (r < 0) {
		const char *why = r == -EBADFD ? "not a regular file" : strerror(-r);

		if (ret_error && asprintf(ret_error, "%s: cannot read config: %s", path, why) < 0)
			*ret_error = NULL;
		return r;
	}

	/* read_file() stops at nothing: a NUL inside the file would cut the
	 * text short, so find it here and say where. */
	if (memchr(text, '\0', size)) {
		unsigned line = 1;

		for (const char *s = text; *s; s++)
			line += *s == '\n';
		if (ret_error &&
		    asprintf(ret_error, "%s:%u: contains a NUL byte (is this a text file?)",
		             strrchr(path, '/') ? strrchr(path, '/') + 1 : path, line) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}

	/* Messages name the file as the admin knows it, without the directory. */
	base = strrchr(path, '/');
	base = base && base[1] ? base + 1 : path;
	return config_parse(text, base, true, ret, ret_error);
}

bool config_path_is_private(const Config *c, const char *path)
{
	size_t n;

	assert(c);
	assert(path);

	n = strlen(c->media_url);
	if (strncmp(path, c->media_url, n) != 0)
		return false;
	path += n;

	/* Prefixes end with '/', so "private/" covers "private/a.pdf" but not
	 * "private2/a.pdf": a location per prefix matches the same way. */
	if (c->private_prefixes[0]) {
		for (char **i = c->private_prefixes; *i; i++)
			if (strncmp(path, *i, strlen(*i)) == 0)
				return true;
		return false;
	}
	for (char **i = c->public_prefixes; *i; i++)
		if (strncmp(path, *i, strlen(*i)) == 0)
			return false;
	return true;
}

static bool strv_equal(char *const *a, char *const *b)
{
	size_t n = strv_length(a);

	if (n != strv_length(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!streq(a[i], b[i]))
			return false;
	return true;
}

bool config_link_format_equal(const Config *a, const Config *b)
{
	return streq(a->media_url, b->media_url) &&
	       strv_equal(a->private_prefixes, b->private_prefixes) &&
	       strv_equal(a->public_prefixes, b->public_prefixes) &&
	       streq(a->token_param, b->token_param) && streq(a->expires_param, b->expires_param) &&
	       streq(a->key_param, b->key_param) && a->bind_ip == b->bind_ip &&
	       a->algorithm == b->algorithm;
}

/* Whether argv0 names an executable file, as execvp() finds it. */
static int find_program(const char *argv0)
{
	_cleanup_free_ char *path = NULL;
	const char *search;
	int r = -ENOENT;

	if (strchr(argv0, '/'))
		return access(argv0, X_OK) < 0 ? -errno : 0;
	search = getenv("PATH");
	if (!search)
		search = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = search;; p++) {
		const char *end = strchrnul(p, ':');
		int n = (int)(end - p);

		free(path);
		path = NULL;
		/* An empty element is the current directory, as for execvp(). */
		if (asprintf(&path, "%.*s%s%s", n, p, n ? "/" : "", argv0) < 0)
			return -ENOMEM;
		if (access(path, X_OK) >= 0)
			return 0;
		if (errno == EACCES)
			r = -EACCES;
		if (!*end)
			return r;
		p = end;
	}
}

int config_check_commands(const Config *c, const char *name, char **ret_error)
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	const struct {
		const char *key, *prefix;
		char *const *argv;
	} commands[] = {
		{ "test_command", "", c->test_command },
		{ "reload", "exec:", c->reload == RELOAD_EXEC ? c->reload_command : NULL },
	};
	int r;

	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		const char *argv0 = commands[i].argv ? commands[i].argv[0] : NULL;

		if (!argv0)
			continue;
		r = find_program(argv0);
		if (r == -ENOMEM)
			return r;
		if (r >= 0)
			continue;
		if (strchr(argv0, '/'))
			r = asprintf(
			    ret_error,
			    "%s: %s: %s%s: %s (install it, or give the program's full path; "
			    "on a host without nginx: test_command = /bin/true and reload = "
			    "none)",
			    base, commands[i].key, commands[i].prefix, argv0, strerror(-r));
		else
			r = asprintf(
			    ret_error,
			    "%s: %s: %s\"%s\" is not an executable file in PATH (%s) (install "
			    "it, or give the program's full path; on a host without nginx: "
			    "test_command = /bin/true and reload = none)",
			    base, commands[i].key, commands[i].prefix, argv0,
			    getenv("PATH") ?: "unset");
		if (r < 0)
			return -ENOMEM;
		return -ENOENT;
	}
	return 0;
}
