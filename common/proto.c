/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

#define SIGN_USAGE   "SIGN <path|url> [ttl=<s>|expires=<unix>] [ip=<addr>] [grant=path|cookie]"
#define VERIFY_USAGE "VERIFY <url> [ip=<addr>] [cookie=<value>]"
#define IMPORT_USAGE "IMPORT <base64url>"
#define VERB_LIST    "PING, SIGN, VERIFY, ROTATE, IMPORT, STATUS, CHECK or CACHE"

/* How much of a bad option's name an error message repeats. */
#define SHOWN_NAME_MAX 24

static const char *const verb_table[_VERB_MAX] = {
	[VERB_PING] = "PING",     [VERB_SIGN] = "SIGN",     [VERB_VERIFY] = "VERIFY",
	[VERB_ROTATE] = "ROTATE", [VERB_IMPORT] = "IMPORT", [VERB_STATUS] = "STATUS",
	[VERB_CHECK] = "CHECK",   [VERB_CACHE] = "CACHE",
};

static const char *const error_table[_PROTO_ERROR_MAX] = {
	[PROTO_BAD_REQUEST] = "bad-request",
	[PROTO_UNKNOWN_VERB] = "unknown-verb",
	[PROTO_LINE_TOO_LONG] = "line-too-long",
	[PROTO_BAD_TARGET] = "bad-target",
	[PROTO_BAD_TTL] = "bad-ttl",
	[PROTO_TTL_TOO_LONG] = "ttl-too-long",
	[PROTO_BAD_IP] = "bad-ip",
	[PROTO_FORBIDDEN] = "forbidden",
	[PROTO_UNAVAILABLE] = "unavailable",
	[PROTO_INTERNAL] = "internal",
};

const char *verb_to_string(Verb v)
{
	if ((unsigned)v >= _VERB_MAX)
		return NULL;
	return verb_table[v];
}

const char *proto_error_to_string(ProtoError e)
{
	if ((unsigned)e >= _PROTO_ERROR_MAX)
		return NULL;
	return error_table[e];
}

typedef struct ParseError {
	ProtoError code;
	const char *message;
} ParseError;

static int fail(ParseError *e, ProtoError code, const char *message)
{
	e->code = code;
	e->message = message;
	return -EINVAL;
}

/* Builds a message that repeats a bad option's name, so the client sees
 * which of its words we did not understand. Only printable ASCII is
 * repeated, and only the name: a value could be anything the caller typed. */
static int fail_naming(Request *req, ParseError *e, const char *what, const char *name,
                       const char *hint)
{
	char shown[SHOWN_NAME_MAX + 1];
	size_t n;

	for (n = 0; name[n] != '\0' && n < SHOWN_NAME_MAX; n++) {
		unsigned char c = (unsigned char)name[n];

		shown[n] = c > 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
	}
	shown[n] = '\0';

	(void)snprintf(req->message_buf, sizeof(req->message_buf), "%s \"%s%s\" (%s)", what, shown,
	               name[n] != '\0' ? "..." : "", hint);
	return fail(e, PROTO_BAD_REQUEST, req->message_buf);
}

/* Bytes check_line() looks at: everything else is ordinary text. One table
 * lookup per byte, since every request passes here. */
enum {
	LINE_TEXT = 0,
	LINE_SPACE,
	LINE_TAB,
	LINE_CONTROL,
};

static const unsigned char line_class[256] = {
	[0x00 ... 0x08] = LINE_CONTROL, ['\t'] = LINE_TAB,
	[0x0a ... 0x1f] = LINE_CONTROL, [' '] = LINE_SPACE,
	[0x7f] = LINE_CONTROL,
};

/* The one byte at i that check_line() found worth a look. */
static int check_byte(const char *line, size_t len, size_t i, ParseError *e)
{
	switch (line_class[(unsigned char)line[i]]) {
	case LINE_TEXT:
		return 0;
	case LINE_TAB:
		return fail(e, PROTO_BAD_REQUEST,
		            "tab in request (separate fields with exactly one space)");
	case LINE_CONTROL:
		return fail(e, PROTO_BAD_REQUEST,
		            "control byte in request (send printable text; "
		            "percent-encode the target)");
	default:
		break;
	}
	if (i == 0)
		return fail(e, PROTO_BAD_REQUEST,
		            "leading space in request (start the line with the verb)");
	if (i == len - 1)
		return fail(e, PROTO_BAD_REQUEST,
		            "trailing space in request (end the line after the last field)");
	if (line[i + 1] == ' ')
		return fail(e, PROTO_BAD_REQUEST,
		            "two spaces in a row (separate fields with exactly one space)");
	return 0;
}

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Whether any byte of w is below 0x21 (space, tab, control bytes) or is
 * 0x7f: the classic "has less than" and "has zero byte" word tricks. Both
 * are exact about whether such a byte exists; bytes >= 0x80 never count. */
static bool word_needs_look(uint64_t w)
{
	uint64_t del = w ^ (ONES * 0x7f);

	return (((w - ONES * 0x21) & ~w) | ((del - ONES) & ~del)) & HIGHS;
}

/* Rejects what would make fields ambiguous or the answer line unsafe to
 * echo: control bytes, and any spacing but single spaces between fields.
 * Every request passes here, so it looks at eight bytes at a time and only
 * byte by byte where a word holds a space or worse. */
static int check_line(const char *line, size_t len, ParseError *e)
{
	size_t i = 0;
	int r;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, line + i, sizeof(w));
		if (!word_needs_look(w))
			continue;
		for (size_t j = i; j < i + 8; j++) {
			r = check_byte(line, len, j, e);
			if (r < 0)
				return r;
		}
	}
	for (; i < len; i++) {
		r = check_byte(line, len, i, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Cuts the next space-separated field off *cursor. check_line() has made
 * sure no field is empty. */
static char *next_field(char **cursor)
{
	char *field = *cursor, *space;

	if (!field)
		return NULL;
	space = strchr(field, ' ');
	if (space) {
		*space = '\0';
		*cursor = space + 1;
	} else
		*cursor = NULL;
	return field;
}

/* "ttl=60" given where the target belongs: the client forgot the target. */
static bool looks_like_option(const char *field)
{
	size_t n = 0;

	/* Not strspn(): it builds a lookup table on every call. */
	while (field[n] >= 'a' && field[n] <= 'z')
		n++;
	return n > 0 && field[n] == '=';
}

/* A signed decimal: optional '-', then digits only. strtoll alone would
 * also take leading spaces and '+'. */
static int parse_ttl(const char *s, int64_t *ret)
{
	const char *digits = s[0] == '-' ? s + 1 : s;
	long long v;
	char *end;

	_Static_assert(sizeof(long long) == sizeof(int64_t), "long long is not 64 bits");

	if (digits[0] < '0' || digits[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = (int64_t)v;
	return 0;
}

/* Prints an IPv6 address exactly as nginx's ngx_inet6_ntop() does, since that
 * is the $remote_addr nginx hashes: the first longest run of two or more zero
 * words becomes "::", hex without leading zeros, and the last 32 bits are
 * dotted when the address starts with 5 zero words and ffff, with 6 zero
 * words, or with 7 zero words and a last word whose high byte is not zero and
 * whose low byte is not 1. glibc's inet_ntop() differs on that last case
 * (nginx prints "::0.0.1.2" where glibc prints "::102"), so it is not used
 * for IPv6. */
static void format_ipv6_like_nginx(const struct in6_addr *a, char *buf, size_t size)
{
	const uint8_t *p = a->s6_addr;
	unsigned words[8];
	int zstart = -1, zlen = 1, run = 0, nwords = 8;
	size_t pos = 0;

	assert(size >= INET6_ADDRSTRLEN);

	for (int i = 0; i < 8; i++) {
		words[i] = (unsigned)p[2 * i] << 8 | p[2 * i + 1];
		run = words[i] == 0 ? run + 1 : 0;
		/* Strictly longer: on a tie the first run wins, as in nginx. */
		if (run > zlen) {
			zlen = run;
			zstart = i - run + 1;
		}
	}

	if (zstart == 0) {
		if ((zlen == 5 && words[5] == 0xffff) || zlen == 6 ||
		    (zlen == 7 && p[14] != 0 && p[15] != 1))
			nwords = 6;
		buf[pos++] = ':';
	}

	for (int i = 0; i < nwords; i++) {
		if (i == zstart) {
			buf[pos++] = ':';
			i += zlen - 1;
			continue;
		}
		pos += (size_t)snprintf(buf + pos, size - pos, "%x", words[i]);
		if (i < 7)
			buf[pos++] = ':';
	}

	if (nwords == 6)
		pos += (size_t)snprintf(buf + pos, size - pos, "%u.%u.%u.%u", p[12], p[13], p[14],
		                        p[15]);
	buf[pos] = '\0';
}

static int canonicalise_ip(const char *s, char *buf, size_t size)
{
	struct in_addr a4;
	struct in6_addr a6;

	assert(size >= INET6_ADDRSTRLEN);

	/* inet_pton's AF_INET form is the strict dotted quad (no octal, no
	 * short forms), and inet_ntop prints it as nginx does. */
	if (inet_pton(AF_INET, s, &a4) == 1)
		return inet_ntop(AF_INET, &a4, buf, (socklen_t)size) ? 0 : -EINVAL;
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		format_ipv6_like_nginx(&a6, buf, size);
		return 0;
	}
	return -EINVAL;
}

static int parse_ip_option(const char *value, Request *req, ParseError *e)
{
	if (req->ip)
		return fail(e, PROTO_BAD_REQUEST, "ip= given twice (give it once)");
	if (canonicalise_ip(value, req->ip_buf, sizeof(req->ip_buf)) < 0)
		return fail(e, PROTO_BAD_IP,
		            "ip= is not an IPv4 or IPv6 address "
		            "(use e.g. ip=192.0.2.1 or ip=2001:db8::1)");
	req->ip = req->ip_buf;
	return 0;
}

static int parse_sign_option(const char *name, const char *value, Request *req, ParseError *e)
{
	int r;

	if (streq(name, "ttl")) {
		if (req->has_ttl)
			return fail(e, PROTO_BAD_REQUEST, "ttl= given twice (give it once)");
		if (req->has_expires)
			return fail(e, PROTO_BAD_REQUEST,
			            "ttl= and expires= are exclusive (give one)");
		r = parse_ttl(value, &req->ttl);
		if (r == -ERANGE)
			return fail(e, PROTO_BAD_TTL,
			            "ttl= is out of range (give seconds, e.g. ttl=3600)");
		if (r < 0)
			return fail(e, PROTO_BAD_TTL,
			            "ttl= is not a whole number of seconds (e.g. ttl=3600)");
		req->has_ttl = true;
		return 0;
	}

	if (streq(name, "expires")) {
		if (req->has_expires)
			return fail(e, PROTO_BAD_REQUEST, "expires= given twice (give it once)");
		if (req->has_ttl)
			return fail(e, PROTO_BAD_REQUEST,
			            "ttl= and expires= are exclusive (give one)");
		r = parse_u64_as_i64(value, &req->expires);
		if (r == -ERANGE)
			return fail(e, PROTO_BAD_TTL,
			            "expires= is out of range (give a unix time in seconds)");
		if (r < 0)
			return fail(e, PROTO_BAD_TTL,
			            "expires= is not a unix time "
			            "(give decimal seconds since 1970, e.g. expires=1700000000)");
		req->has_expires = true;
		return 0;
	}

	if (streq(name, "ip"))
		return parse_ip_option(value, req, e);

	if (streq(name, "grant")) {
		if (req->grant != GRANT_NONE)
			return fail(e, PROTO_BAD_REQUEST, "grant= given twice (give it once)");
		if (streq(value, "path"))
			req->grant = GRANT_PATH;
		else if (streq(value, "cookie"))
			req->grant = GRANT_COOKIE;
		else
			return fail(e, PROTO_BAD_REQUEST,
			            "grant= takes path or cookie (e.g. grant=path)");
		return 0;
	}

	return fail_naming(req, e, "unknown option", name,
	                   "SIGN takes ttl=, expires=, ip=, grant=");
}

static int parse_verify_option(const char *name, const char *value, Request *req, ParseError *e)
{
	if (streq(name, "ip"))
		return parse_ip_option(value, req, e);
	if (streq(name, "cookie")) {
		if (req->cookie)
			return fail(e, PROTO_BAD_REQUEST, "cookie= given twice (give it once)");
		req->cookie = value;
		return 0;
	}
	return fail_naming(req, e, "unknown option", name, "VERIFY takes ip=, cookie=");
}

/* SIGN and VERIFY: a target, then options in any order, each at most once. */
static int parse_target_request(Verb verb, char **cursor, Request *req, ParseError *e)
{
	const char *hint = verb == VERB_SIGN
	                       ? "SIGN takes one target, then ttl=, expires=, ip=, grant="
	                       : "VERIFY takes one URL, then ip=, cookie=";
	char *field;
	int r;

	field = next_field(cursor);
	if (!field)
		return fail(e, PROTO_BAD_REQUEST,
		            verb == VERB_SIGN ? "SIGN needs a target (use " SIGN_USAGE ")"
		                              : "VERIFY needs a URL (use " VERIFY_USAGE ")");
	if (looks_like_option(field))
		return fail(e, PROTO_BAD_REQUEST,
		            verb == VERB_SIGN
		                ? "SIGN needs a target before its options (use " SIGN_USAGE ")"
		                : "VERIFY needs a URL before its options (use " VERIFY_USAGE ")");
	req->arg = field;

	while ((field = next_field(cursor))) {
		char *eq = strchr(field, '=');

		if (!eq)
			return fail_naming(req, e, "unexpected argument", field, hint);
		*eq = '\0';

		if (verb == VERB_SIGN)
			r = parse_sign_option(field, eq + 1, req, e);
		else
			r = parse_verify_option(field, eq + 1, req, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_import(char **cursor, Request *req, ParseError *e)
{
	char *field = next_field(cursor);

	if (!field)
		return fail(e, PROTO_BAD_REQUEST,
		            "IMPORT needs the legacy secret (use " IMPORT_USAGE ")");
	if (*cursor)
		return fail(e, PROTO_BAD_REQUEST,
		            "IMPORT takes exactly one argument (use " IMPORT_USAGE ")");
	/* The secret itself never goes into the message. */
	if (field[strspn(
	        field, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")] != '\0')
		return fail(e, PROTO_BAD_REQUEST,
		            "IMPORT secret is not base64url (use A-Z a-z 0-9 - _ only, no '=' "
		            "padding)");
	req->arg = field;
	return 0;
}

static int parse_line(char *line, size_t len, Request *req, ParseError *e)
{
	char *cursor, *word;
	Verb verb;
	int r;

	/* The reader normally closes the connection before this; a direct
	 * caller (fuzzer, tests) must not make us read past PROTO_LINE_MAX. */
	if (len > PROTO_LINE_MAX - 1)
		return fail(e, PROTO_LINE_TOO_LONG,
		            "request line longer than 8191 bytes (shorten the target)");
	if (len == 0)
		return fail(e, PROTO_BAD_REQUEST, "empty request (send a verb: " VERB_LIST ")");

	/* Before anything relies on NUL termination: an embedded NUL is a
	 * control byte and refused here. */
	r = check_line(line, len, e);
	if (r < 0)
		return r;
	line[len] = '\0';

	cursor = line;
	word = next_field(&cursor);
	for (verb = 0; verb < _VERB_MAX; verb++)
		if (streq(word, verb_table[verb]))
			break;
	if (verb == _VERB_MAX)
		return fail(e, PROTO_UNKNOWN_VERB, "unknown verb (use " VERB_LIST ", upper-case)");
	req->verb = verb;

	switch (verb) {
	case VERB_PING:
		if (cursor)
			return fail(e, PROTO_BAD_REQUEST,
			            "PING takes no arguments (send PING alone)");
		return 0;
	case VERB_STATUS:
		if (cursor)
			return fail(e, PROTO_BAD_REQUEST,
			            "STATUS takes no arguments (send STATUS alone)");
		return 0;
	case VERB_CHECK:
		if (cursor)
			return fail(e, PROTO_BAD_REQUEST,
			            "CHECK takes no arguments (send CHECK alone)");
		return 0;
	case VERB_CACHE:
		if (cursor)
			return fail(e, PROTO_BAD_REQUEST,
			            "CACHE takes no arguments (send CACHE alone)");
		return 0;
	case VERB_SIGN:
	case VERB_VERIFY:
		return parse_target_request(verb, &cursor, req, e);
	case VERB_ROTATE:
		word = next_field(&cursor);
		if (!word)
			return 0;
		if (!streq(word, "revoke") || cursor)
			return fail(e, PROTO_BAD_REQUEST,
			            "ROTATE takes only \"revoke\" (send ROTATE or ROTATE revoke)");
		req->revoke = true;
		return 0;
	case VERB_IMPORT:
		return parse_import(&cursor, req, e);
	default:
		assert(!"unreachable verb");
		return fail(e, PROTO_INTERNAL, "internal error");
	}
}

int proto_parse_line(char *line, size_t len, Request *ret, ProtoError *ret_code,
                     const char **ret_message)
{
	ParseError e = {};
	int r;

	assert(line || len == 0);
	assert(ret);
	assert(ret_code);
	assert(ret_message);

	memset(ret, 0, sizeof(*ret));
	r = parse_line(line, len, ret, &e);
	if (r < 0) {
		*ret_code = e.code;
		*ret_message = e.message;
		return r;
	}
	return 0;
}

size_t proto_format_error(char *buf, size_t size, ProtoError code, const char *message)
{
	const char *name = proto_error_to_string(code);
	size_t prefix, room, n, i;

	assert(name);
	assert(buf || size == 0);

	if (!message || message[0] == '\0')
		message = "no details";

	/* "ERR <code> " + message + "\n" + NUL */
	prefix = STRLEN("ERR ") + strlen(name) + 1;
	if (size < prefix + 2) {
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	room = size - prefix - 2;

	n = strlen(message);
	if (n > room) {
		n = room;
		/* Don't leave half a UTF-8 sequence at the cut. */
		while (n > 0 && ((unsigned char)message[n] & 0xc0) == 0x80)
			n--;
	}

	memcpy(buf, "ERR ", STRLEN("ERR "));
	memcpy(buf + STRLEN("ERR "), name, strlen(name));
	buf[prefix - 1] = ' ';
	/* A CR or LF here would end the answer early and desynchronise a
	 * pipelining client. */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)message[i];

		buf[prefix + i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[prefix + n] = '\n';
	buf[prefix + n + 1] = '\0';
	return prefix + n + 1;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0. p[0] >= 0x80. Bytes after p[0]
 * are read only while the previous one was a continuation byte, so the NUL
 * terminator stops it. */
static size_t utf8_sequence_length(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;

	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

int json_escape(const char *s, char **ret)
{
	const unsigned char *p;
	char *out, *o;
	size_t len;

	assert(s);
	assert(ret);

	/* Worst case every byte becomes a six-byte escape. */
	len = strlen(s);
	if (len > (SIZE_MAX - 1) / 6)
		return -ENOMEM;
	out = malloc(len * 6 + 1);
	if (!out)
		return -ENOMEM;

	o = out;
	for (p = (const unsigned char *)s; *p;) {
		size_t n;

		if (*p == '"' || *p == '\\') {
			*o++ = '\\';
			*o++ = (char)*p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			o += sprintf(o, "\\u%04x", *p++);
		} else if (*p < 0x80) {
			*o++ = (char)*p++;
		} else if ((n = utf8_sequence_length(p)) > 0) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			/* Invalid UTF-8 would make the whole STATUS answer
			 * invalid JSON; nginx's stderr can hold any bytes. */
			o = stpcpy(o, "\\ufffd");
			p++;
		}
	}
	*o = '\0';
	*ret = out;
	return 0;
}
