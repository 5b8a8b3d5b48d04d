/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "urlpath.h"
#include "util.h"

/* What nginx does, and what we must do to hash exactly its $uri.
 *
 * nginx 1.22 builds $uri in ngx_http_parse_complex_uri() (src/http/ngx_http_parse.c)
 * whenever the request path holds '%', "//", "/." or '#'; otherwise $uri is the raw
 * path, which our decoder reproduces trivially (nothing to decode, nothing to merge).
 * The behaviours matched below, each confirmed against the real nginx 1.22.1 binary:
 *
 *  - A %XX escape is decoded and the decoded byte is fed back into the state machine
 *    as if it had been written raw, so a decoded '/' is a path separator (merged with
 *    its neighbours, "/a%2F%2Fb" -> "/a/b") and a decoded '.' counts towards "." and
 *    ".." segments ("/a/%2E%2E/b" -> "/b").
 *  - Except for '%', '#' and '?': nginx writes those three decoded bytes straight into
 *    $uri as ordinary bytes, so "%25" never decodes twice ("/a%252F" -> "/a%2F"),
 *    "%3F" does not start the query and "%23" does not start a fragment. They need no
 *    special treatment here beyond not being separators.
 *  - '+' is an ordinary byte in the path, raw or as %2B (no form decoding).
 *  - A decoded NUL and a bad or truncated escape make nginx answer 400.
 *  - merge_slashes (default on): a '/' directly after a '/' is dropped.
 *  - "." and ".." segments are resolved by nginx; we refuse them instead, so a signed
 *    path always names the file the client asked for, and ".." can never climb out of
 *    a private prefix.
 *  - Every other decoded byte, control bytes and 0x80-0xff included, is copied as is.
 *
 * On the raw side, nginx's request line parser rejects control bytes and DEL, ends the
 * path at a space, starts the query at '?' and truncates $uri at '#'; we reject all of
 * these so that what we hash is what nginx will see. */

static int fail(const char **ret_reason, const char *reason)
{
	if (ret_reason)
		*ret_reason = reason;
	return -EINVAL;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_dot_segment(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

int urlpath_decode(const char *in, size_t len, char **ret, const char **ret_reason)
{
	_cleanup_free_ char *out = NULL;
	size_t n = 0, seg = 0;

	assert(in || len == 0);
	assert(ret);

	if (len == 0 || in[0] != '/')
		return fail(ret_reason, "path must start with '/'");
	if (len == SIZE_MAX)
		return fail(ret_reason, "path too long");

	/* Decoding and merging only ever shrink the path. */
	out = malloc(len + 1);
	if (!out)
		return -ENOMEM;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= ' ' || c == 0x7f)
			return fail(ret_reason, "space or control byte in path (encode it as %XX)");
		if (c == '?' || c == '#')
			return fail(
			    ret_reason,
			    "query string or fragment in path (encode '?' as %3F, '#' as %23)");

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return fail(ret_reason, "truncated percent-escape");
			hi = unhex(in[i + 1]);
			lo = unhex(in[i + 2]);
			if (hi < 0 || lo < 0)
				return fail(ret_reason, "bad percent-escape");
			c = (unsigned char)(hi << 4 | lo);
			/* nginx answers 400 to a decoded NUL; it would also end our C string. */
			if (c == 0)
				return fail(ret_reason, "decoded NUL byte in path");
			i += 2;
		}

		if (c == '/') {
			/* A raw or decoded '/' ends a segment; nginx would resolve "." and
			 * ".." here, we refuse them. */
			if (is_dot_segment(out + seg, n - seg))
				return fail(ret_reason, "'.' or '..' segment in path");
			/* merge_slashes: drop a '/' that follows a '/'. */
			if (n > 0 && out[n - 1] == '/')
				continue;
			out[n++] = '/';
			seg = n;
			continue;
		}

		out[n++] = (char)c;
	}

	/* A trailing "/." or "/.." is resolved by nginx just the same ("/a/." -> "/a/"). */
	if (is_dot_segment(out + seg, n - seg))
		return fail(ret_reason, "'.' or '..' segment in path");

	out[n] = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int urlpath_encode(const char *path, char **ret)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len, n = 0;
	char *out;

	assert(path);
	assert(ret);

	len = strlen(path);
	if (len > (SIZE_MAX - 1) / 3)
		return -ENOMEM;

	out = malloc(len * 3 + 1);
	if (!out)
		return -ENOMEM;

	/* '/' stays raw: it is the separator in the decoded path too, and nginx decodes
	 * every escape we write back to the same byte (see the comment at the top). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];

		if (c == '/' || is_unreserved(c)) {
			out[n++] = (char)c;
			continue;
		}
		out[n++] = '%';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 0xf];
	}
	out[n] = '\0';

	*ret = out;
	return 0;
}

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

static bool is_ipv6_char(char c)
{
	return unhex(c) >= 0 || c == ':' || c == '.';
}

int urlpath_split_target(const char *target, char **ret_origin, char **ret_path,
                         const char **ret_reason)
{
	_cleanup_free_ char *origin = NULL, *path = NULL;
	const char *scheme, *host, *p;
	size_t scheme_len;

	assert(target);
	assert(ret_origin);
	assert(ret_path);

	/* The link's query string is ours (token, expires, kid); and nginx never puts a
	 * query or fragment into $uri, so there is nothing in them we could sign. */
	if (strpbrk(target, "?#"))
		return fail(ret_reason, "query string or fragment in target");

	if (target[0] == '/') {
		origin = strdup("");
		path = strdup(target);
		if (!origin || !path)
			return -ENOMEM;
		goto done;
	}

	if (strncasecmp(target, "http://", STRLEN("http://")) == 0) {
		scheme = "http";
		host = target + STRLEN("http://");
	} else if (strncasecmp(target, "https://", STRLEN("https://")) == 0) {
		scheme = "https";
		host = target + STRLEN("https://");
	} else
		return fail(ret_reason,
		            "target must be a path starting with '/' or an http(s) URL");
	scheme_len = strlen(scheme);

	p = host;
	if (*p == '[') {
		/* IPv6 literal: hex digits, ':' and '.' (embedded IPv4); no zone id. */
		p++;
		while (is_ipv6_char(*p))
			p++;
		if (*p != ']' || p == host + 1 || !memchr(host + 1, ':', (size_t)(p - host - 1)))
			return fail(ret_reason, "bad IPv6 literal in target");
		p++;
	} else {
		while (is_host_char(*p))
			p++;
		if (p == host)
			return fail(ret_reason, "missing host in target");
	}

	if (*p == ':') {
		const char *digits = ++p;
		uint32_t port = 0;

		/* At most five digits, no leading zero, so "port" has one spelling. */
		while (*p >= '0' && *p <= '9' && p - digits < 5) {
			port = port * 10 + (uint32_t)(*p - '0');
			p++;
		}
		if (p == digits || *digits == '0' || (*p >= '0' && *p <= '9') || port > 65535)
			return fail(ret_reason, "bad port in target (use 1-65535)");
	}

	if (*p != '\0' && *p != '/')
		return fail(ret_reason, "bad host in target");

	origin = malloc(scheme_len + (size_t)(p - host) + STRLEN("://") + 1);
	if (!origin)
		return -ENOMEM;
	memcpy(origin, scheme, scheme_len);
	memcpy(origin + scheme_len, "://", STRLEN("://"));
	memcpy(origin + scheme_len + STRLEN("://"), host, (size_t)(p - host));
	origin[scheme_len + STRLEN("://") + (size_t)(p - host)] = '\0';

	path = strdup(*p ? p : "/");
	if (!path)
		return -ENOMEM;

done:
	*ret_origin = TAKE_PTR(origin);
	*ret_path = TAKE_PTR(path);
	return 0;
}
