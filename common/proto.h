/* SPDX-License-Identifier: MIT */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The line protocol spoken on securelinkd's Unix socket (DESIGN.md, "Wire
 * protocol"). This module only parses requests and formats answers; it
 * never sees a secret. */

#define PROTO_LINE_MAX    8192 /* including the LF */
#define PROTO_MESSAGE_MAX 128  /* longest error message, including the NUL */
/* Longest legacy secret IMPORT takes, in bytes before its base64url: the
 * client checks it before sending, the daemon again. */
#define PROTO_IMPORT_SECRET_MAX 256

typedef enum Verb {
	VERB_PING,
	VERB_SIGN,
	VERB_VERIFY,
	VERB_ROTATE,
	VERB_IMPORT,
	VERB_STATUS,
	VERB_CHECK,
	VERB_CACHE,
	_VERB_MAX,
} Verb;

typedef enum ProtoError {
	PROTO_BAD_REQUEST,
	PROTO_UNKNOWN_VERB,
	PROTO_LINE_TOO_LONG,
	PROTO_BAD_TARGET,
	PROTO_BAD_TTL,
	PROTO_TTL_TOO_LONG,
	PROTO_BAD_IP,
	PROTO_FORBIDDEN,
	PROTO_UNAVAILABLE,
	PROTO_INTERNAL,
	_PROTO_ERROR_MAX,
} ProtoError;

/* SIGN grant=: a directory grant's form (DESIGN.md, "Directory grants"). */
typedef enum GrantForm {
	GRANT_NONE, /* a file link */
	GRANT_PATH,
	GRANT_COOKIE,
} GrantForm;

typedef struct Request {
	Verb verb;
	/* SIGN: the target; VERIFY: the URL; IMPORT: the base64url secret.
	 * Points into the parsed line. */
	const char *arg;
	bool has_ttl; /* SIGN ttl=<s>: seconds, may be <= 0 (caller says bad-ttl) */
	int64_t ttl;
	bool has_expires; /* SIGN expires=<unix> */
	int64_t expires;
	const char *ip;  /* ip=<addr>, canonical text form, or NULL */
	GrantForm grant; /* SIGN grant=path|cookie */
	/* VERIFY cookie=<value>: a grant cookie's value sent with the URL, or
	 * NULL. Points into the parsed line. */
	const char *cookie;
	bool revoke; /* ROTATE revoke */
	/* Storage owned by the Request: ip points into ip_buf, and an error
	 * message naming a bad option into message_buf. Do not use ip or such
	 * a message from a by-value copy of the Request. */
	char ip_buf[INET6_ADDRSTRLEN];
	char message_buf[PROTO_MESSAGE_MAX];
} Request;

/* Parses one request line in place (line is modified; the LF and an optional
 * CR before it must already be stripped, len excludes them; line[len] must be
 * writable, it becomes the NUL). On success fills *ret and returns 0. On a bad
 * line returns -EINVAL and sets *ret_code and *ret_message (one line, names the
 * fix; static, or in ret->message_buf when it names a bad option). ttl= and
 * expires= are exclusive; ip= must be an IPv4 or IPv6 address and is stored in
 * the form nginx's $remote_addr has. */
int proto_parse_line(char *line, size_t len, Request *ret, ProtoError *ret_code,
                     const char **ret_message);

/* "bad-request", "unknown-verb", ... as on the wire. */
const char *proto_error_to_string(ProtoError e);
const char *verb_to_string(Verb v);

/* Formats "ERR <code> <message>\n" into buf (message cut to fit, control bytes
 * replaced by '?'). Returns the length written, excluding the NUL; 0 with an
 * empty string when size cannot hold even "ERR <code> \n". */
size_t proto_format_error(char *buf, size_t size, ProtoError code, const char *message);

/* JSON-escapes s (no quotes added; invalid UTF-8 -> \ufffd): 0 and malloc'd *ret, or -ENOMEM. */
int json_escape(const char *s, char **ret);
