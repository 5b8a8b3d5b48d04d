/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"
#include "proto.h"
#include "util.h"

/* The request parser on the input as one line (what the server hands it after
 * cutting at LF), then the answer formatters on the same bytes. */

/* Whether s is valid UTF-8 (RFC 3629), written independently of proto.c's
 * checker: decode each sequence to its code point, then reject overlong
 * forms, surrogates and anything above U+10FFFF. */
static bool valid_utf8(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		uint32_t cp, min;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			n = 4, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (len - i < n)
			return false;
		for (size_t j = 1; j < n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* What json_escape() returns must fit between quotes in a JSON document. */
static void check_json(const char *in, const char *out)
{
	size_t len = strlen(out);

	FUZZ_CHECK(len <= strlen(in) * 6);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];

		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
		FUZZ_CHECK(c != '"');
		if (c == '\\') {
			FUZZ_CHECK(i + 1 < len);
			c = (unsigned char)out[++i];
			FUZZ_CHECK(c == '"' || c == '\\' || c == 'u');
			if (c == 'u') {
				FUZZ_CHECK(i + 4 < len);
				FUZZ_CHECK(strspn(out + i + 1, "0123456789abcdef") >= 4);
				i += 4;
			}
		}
	}
	FUZZ_CHECK(valid_utf8((const unsigned char *)out, len));
}

/* One answer line: "ERR <code> <text>\n", nothing else, no control bytes,
 * and a message cut to fit is not cut inside a UTF-8 sequence. */
static void check_error_line(const char *buf, size_t n, size_t size, ProtoError code,
                             const char *message)
{
	const char *name = proto_error_to_string(code);

	FUZZ_CHECK(name);
	if (size == 0) {
		FUZZ_CHECK(n == 0);
		return;
	}
	FUZZ_CHECK(n == strlen(buf));
	if (n == 0)
		return;
	FUZZ_CHECK(n < size);
	FUZZ_CHECK(strncmp(buf, "ERR ", 4) == 0);
	FUZZ_CHECK(strncmp(buf + 4, name, strlen(name)) == 0);
	FUZZ_CHECK(buf[4 + strlen(name)] == ' ');
	FUZZ_CHECK(buf[n - 1] == '\n');
	for (size_t i = 0; i < n - 1; i++)
		FUZZ_CHECK((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f);
	if (valid_utf8((const unsigned char *)message, strlen(message)))
		FUZZ_CHECK(valid_utf8((const unsigned char *)buf, n));
}

static void check_request(const Request *req)
{
	FUZZ_CHECK((unsigned)req->verb < _VERB_MAX);
	FUZZ_CHECK(verb_to_string(req->verb));
	FUZZ_CHECK(!(req->has_ttl && req->has_expires));
	FUZZ_CHECK(!req->has_expires || req->expires >= 0);

	switch (req->verb) {
	case VERB_SIGN:
	case VERB_VERIFY:
	case VERB_IMPORT:
		FUZZ_CHECK(req->arg && req->arg[0] != '\0');
		FUZZ_CHECK(!strpbrk(req->arg, " \t\r\n"));
		break;
	default:
		FUZZ_CHECK(!req->arg);
		break;
	}
	FUZZ_CHECK(!req->revoke || req->verb == VERB_ROTATE);

	if (req->ip) {
		unsigned char addr[sizeof(struct in6_addr)];

		FUZZ_CHECK(req->ip == req->ip_buf);
		FUZZ_CHECK(strnlen(req->ip_buf, sizeof(req->ip_buf)) < sizeof(req->ip_buf));
		/* The canonical form must itself be an address. */
		FUZZ_CHECK(inet_pton(AF_INET, req->ip, addr) == 1 ||
		           inet_pton(AF_INET6, req->ip, addr) == 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line, *text, *escaped = NULL, buf[PROTO_LINE_MAX];
	const char *message = NULL;
	ProtoError code = _PROTO_ERROR_MAX;
	Request req;
	size_t n;
	int r;

	/* proto_parse_line() writes the NUL at line[size]. */
	line = fuzz_strndup(data, size);
	r = proto_parse_line(line, size, &req, &code, &message);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL);
		FUZZ_CHECK((unsigned)code < _PROTO_ERROR_MAX);
		FUZZ_CHECK(message && message[0] != '\0');
		FUZZ_CHECK(strlen(message) < PROTO_MESSAGE_MAX);
		n = proto_format_error(buf, sizeof(buf), code, message);
		FUZZ_CHECK(n > 0);
		check_error_line(buf, n, sizeof(buf), code, message);
	} else {
		FUZZ_CHECK(r == 0);
		check_request(&req);
	}
	free(line);

	/* The formatters on arbitrary text: the error message may carry
	 * anything, and json_escape() gets nginx's stderr in STATUS. The
	 * first byte picks the buffer size, so cuts land everywhere. */
	text = fuzz_strndup(data, size);
	if (size > 0) {
		size_t room = data[0] % sizeof(buf);
		ProtoError c = (ProtoError)(data[0] % _PROTO_ERROR_MAX);

		n = proto_format_error(buf, room, c, text + 1);
		check_error_line(buf, n, room, c, text + 1);
	}
	r = json_escape(text, &escaped);
	FUZZ_CHECK(r == 0);
	check_json(text, escaped);
	free(escaped);
	free(text);
	return 0;
}
