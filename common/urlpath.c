/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
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
 *  - "." and ".." segments are resolved by nginx (a ".." drops the segment before it,
 *    a ".." above the root is 400). Signing refuses them instead, so a signed path
 *    always names the file the client asked for, and ".." can never climb out of a
 *    private prefix; checking a link someone else wrote resolves them as nginx does.
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

/* What the decoder does with each raw byte: one table lookup per byte
 * instead of a chain of comparisons (signing decodes every target). */
enum {
	RAW_OTHER = 0, /* copied, but the encoder would escape it */
	RAW_KEEP,      /* copied, and the encoder keeps it: A-Z a-z 0-9 - . _ ~ */
	RAW_REFUSE,    /* space, control byte, DEL */
	RAW_QUERY,     /* '?' or '#' */
	RAW_ESCAPE,    /* '%' */
	RAW_SLASH,
};

static const unsigned char raw_class[256] = {
	[0x00 ... 0x20] = RAW_REFUSE,
	[0x7f] = RAW_REFUSE,
	['?'] = RAW_QUERY,
	['#'] = RAW_QUERY,
	['%'] = RAW_ESCAPE,
	['/'] = RAW_SLASH,
	['A' ... 'Z'] = RAW_KEEP,
	['a' ... 'z'] = RAW_KEEP,
	['0' ... '9'] = RAW_KEEP,
	['-'] = RAW_KEEP,
	['.'] = RAW_KEEP,
	['_'] = RAW_KEEP,
	['~'] = RAW_KEEP,
};

/* Ends the segment that starts at out[seg] and runs to out[*n]: without
 * resolve a "." or ".." segment is refused; with it, "." is dropped and ".."
 * drops itself and the segment before it, as nginx does to $uri. Returns 0,
 * with *n and *seg where the next byte and segment go, or -EINVAL. */
static int end_segment(char *out, size_t *n, size_t *seg, bool resolve, const char **ret_reason)
{
	if (!is_dot_segment(out + *seg, *n - *seg))
		return 0;
	if (!resolve)
		return fail(ret_reason, "'.' or '..' segment in path");

	if (*n - *seg == 1)
		*n = *seg;
	else {
		/* out[*seg - 1] is the '/' before "..": nginx refuses to go
		 * above the root, and otherwise backs up to the '/' that
		 * starts the segment before. */
		if (*seg <= 1)
			return fail(ret_reason, "'..' segment above the root (nginx answers 400)");
		*n = *seg - 1;
		while (out[*n - 1] != '/')
			(*n)--;
	}
	*seg = *n;
	return 0;
}

static int decode_to(const char *in, size_t len, char *out, size_t *ret_len, bool *ret_canonical,
                     bool resolve, const char **ret_reason)
{
	size_t n = 0, seg = 0;
	bool canonical = true;
	int r;

	assert(in || len == 0);
	assert(out);
	assert(ret_len);

	if (len == 0 || in[0] != '/')
		return fail(ret_reason, "path must start with '/'");
	if (len == SIZE_MAX)
		return fail(ret_reason, "path too long");

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int hi, lo;

		/* Most bytes are kept as they are: copy them in a tight loop. */
		if (raw_class[c] == RAW_KEEP) {
			out[n++] = (char)c;
			while (i + 1 < len && raw_class[(unsigned char)in[i + 1]] == RAW_KEEP)
				out[n++] = in[++i];
			continue;
		}

		switch (raw_class[c]) {
		case RAW_OTHER:
			out[n++] = (char)c;
			canonical = false;
			continue;
		case RAW_REFUSE:
			return fail(ret_reason, "space or control byte in path (encode it as %XX)");
		case RAW_QUERY:
			return fail(
			    ret_reason,
			    "query string or fragment in path (encode '?' as %3F, '#' as %23)");
		case RAW_ESCAPE:
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
			canonical = false;
			/* Every decoded byte but '/' is an ordinary byte, control
			 * bytes, '%', '?' and '#' included (see the top). */
			if (c != '/') {
				out[n++] = (char)c;
				continue;
			}
			break;
		default:
			break;
		}

		/* A raw or decoded '/' ends a segment, where nginx resolves "."
		 * and "..". */
		r = end_segment(out, &n, &seg, resolve, ret_reason);
		if (r < 0)
			return r;
		/* merge_slashes: drop a '/' that follows a '/' (also the one
		 * after a resolved segment: out then ends in '/'). */
		if (n > 0 && out[n - 1] == '/') {
			canonical = false;
			continue;
		}
		out[n++] = '/';
		seg = n;
	}

	/* A trailing "/." or "/.." is resolved by nginx just the same ("/a/." -> "/a/"). */
	r = end_segment(out, &n, &seg, resolve, ret_reason);
	if (r < 0)
		return r;

	out[n] = '\0';
	*ret_len = n;
	if (ret_canonical)
		*ret_canonical = canonical;
	return 0;
}

int urlpath_decode_to(const char *in, size_t len, char *out, size_t *ret_len, bool *ret_canonical,
                      const char **ret_reason)
{
	return decode_to(in, len, out, ret_len, ret_canonical, false, ret_reason);
}

int urlpath_resolve_to(const char *in, size_t len, char *out, size_t *ret_len,
                       const char **ret_reason)
{
	return decode_to(in, len, out, ret_len, NULL, true, ret_reason);
}

int urlpath_decode(const char *in, size_t len, char **ret, const char **ret_reason)
{
	_cleanup_free_ char *out = NULL;
	size_t n;
	int r;

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
	r = urlpath_decode_to(in, len, out, &n, NULL, ret_reason);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(out);
	return 0;
}

/* 1 for the bytes the encoder keeps raw: RFC 3986 unreserved, and '/', which
 * is the separator in the decoded path too; nginx decodes every escape we
 * write back to the same byte (see the comment at the top). */
static const unsigned char keep_raw[256] = {
	['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['0' ... '9'] = 1, ['-'] = 1,
	['.'] = 1,         ['_'] = 1,         ['~'] = 1,         ['/'] = 1,
};

/* Where a path stops being text, and why. The second byte of a multi-byte
 * sequence has a narrower range after some lead bytes (the Unicode
 * standard's table 3-7, "well-formed UTF-8 byte sequences"); a byte outside
 * it says what the sequence would have been. */
static const char *not_text(const unsigned char *p, size_t left, size_t *ret_seq_len)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	const char *narrow = NULL;
	size_t n;

	if (c < 0x20 || c == 0x7f)
		return "control character (U+0000-U+001F or U+007F)";
	if (c < 0x80) {
		*ret_seq_len = 1;
		return NULL;
	}
	if (c < 0xc0)
		return "invalid UTF-8: continuation byte without a lead byte";
	if (c < 0xc2)
		return "invalid UTF-8: overlong encoding"; /* U+0000-U+007F in two bytes */
	if (c < 0xe0)
		n = 2;
	else if (c < 0xf0) {
		n = 3;
		if (c == 0xe0) {
			lo = 0xa0;
			narrow = "invalid UTF-8: overlong encoding";
		} else if (c == 0xed) {
			hi = 0x9f;
			narrow = "invalid UTF-8: UTF-16 surrogate (U+D800-U+DFFF)";
		}
	} else if (c < 0xf5) {
		n = 4;
		if (c == 0xf0) {
			lo = 0x90;
			narrow = "invalid UTF-8: overlong encoding";
		} else if (c == 0xf4) {
			hi = 0x8f;
			narrow = "invalid UTF-8: code point above U+10FFFF";
		}
	} else
		return "invalid UTF-8: byte 0xF5-0xFF";

	for (size_t i = 1; i < n; i++) {
		if (i >= left || p[i] < 0x80 || p[i] > 0xbf)
			return "invalid UTF-8: truncated sequence";
		if (i == 1 && narrow && (p[i] < lo || p[i] > hi))
			return narrow;
	}
	/* U+0080-U+009F: C2 80 to C2 9F. */
	if (c == 0xc2 && p[1] < 0xa0)
		return "C1 control character (U+0080-U+009F)";
	*ret_seq_len = n;
	return NULL;
}

bool urlpath_is_text(const char *path, size_t len, size_t *ret_offset, const char **ret_reason)
{
	const unsigned char *p = (const unsigned char *)path;

	assert(path || len == 0);

	for (size_t i = 0; i < len;) {
		const char *reason;
		size_t n = 0;

		/* Most paths are ASCII: skip it without the decoder. */
		if (p[i] >= 0x20 && p[i] < 0x7f) {
			i++;
			continue;
		}
		reason = not_text(p + i, len - i, &n);
		if (reason) {
			if (ret_offset)
				*ret_offset = i;
			if (ret_reason)
				*ret_reason = reason;
			return false;
		}
		i += n;
	}
	return true;
}

size_t urlpath_encoded_len(const char *path, size_t len)
{
	size_t n = len;

	assert(path || len == 0);
	for (size_t i = 0; i < len; i++)
		if (!keep_raw[(unsigned char)path[i]])
			n += 2;
	return n;
}

size_t urlpath_encode_to(const char *path, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	assert(path || len == 0);
	assert(out);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];

		if (keep_raw[c]) {
			out[n++] = (char)c;
			continue;
		}
		out[n++] = '%';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 0xf];
	}
	return n;
}

int urlpath_encode(const char *path, char **ret)
{
	size_t len, n;
	char *out;

	assert(path);
	assert(ret);

	len = strlen(path);
	if (len > (SIZE_MAX - 1) / 3)
		return -ENOMEM;

	out = malloc(urlpath_encoded_len(path, len) + 1);
	if (!out)
		return -ENOMEM;
	n = urlpath_encode_to(path, len, out);
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

static bool has_prefix_nocase(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

int urlpath_parse_target(const char *target, size_t len, UrlTarget *ret, const char **ret_reason)
{
	const char *end = target + len, *scheme, *host, *p;

	assert(target || len == 0);
	assert(ret);

	/* The link's query string is ours (token, expires, kid); and nginx never puts a
	 * query or fragment into $uri, so there is nothing in them we could sign. */
	if (memchr(target, '?', len) || memchr(target, '#', len))
		return fail(ret_reason, "query string or fragment in target");

	/* "//host/x" is a network-path reference (RFC 3986 4.2): a browser
	 * fetches /x from host, so it is an origin like scheme://host, never
	 * the path "//host/x" (Django's MEDIA_URL may be written so). */
	if (len >= 2 && target[0] == '/' && target[1] == '/') {
		scheme = "";
		host = target + 2;
	} else if (len > 0 && target[0] == '/') {
		*ret = (UrlTarget){ .host = "", .path = target, .path_len = len };
		return 0;
	} else if (has_prefix_nocase(target, len, "http://")) {
		scheme = "http";
		host = target + STRLEN("http://");
	} else if (has_prefix_nocase(target, len, "https://")) {
		scheme = "https";
		host = target + STRLEN("https://");
	} else
		return fail(ret_reason,
		            "target must be a path starting with '/' or an http(s) URL");

	p = host;
	if (p < end && *p == '[') {
		/* IPv6 literal: hex digits, ':' and '.' (embedded IPv4); no zone id. */
		p++;
		while (p < end && is_ipv6_char(*p))
			p++;
		if (p == end || *p != ']' || p == host + 1 ||
		    !memchr(host + 1, ':', (size_t)(p - host - 1)))
			return fail(ret_reason, "bad IPv6 literal in target");
		p++;
	} else {
		while (p < end && is_host_char(*p))
			p++;
		if (p == host)
			return fail(ret_reason, "missing host in target");
	}

	if (p < end && *p == ':') {
		const char *digits = ++p;
		uint32_t port = 0;

		/* At most five digits, no leading zero, so "port" has one spelling. */
		while (p < end && *p >= '0' && *p <= '9' && p - digits < 5) {
			port = port * 10 + (uint32_t)(*p - '0');
			p++;
		}
		if (p == digits || *digits == '0' || (p < end && *p >= '0' && *p <= '9') ||
		    port > 65535)
			return fail(ret_reason, "bad port in target (use 1-65535)");
	}

	if (p < end && *p != '/')
		return fail(ret_reason, "bad host in target");

	*ret = (UrlTarget){
		.scheme = scheme,
		.host = host,
		.host_len = (size_t)(p - host),
		.path = p < end ? p : "/",
		.path_len = p < end ? (size_t)(end - p) : 1,
	};
	return 0;
}

int urlpath_split_target(const char *target, char **ret_origin, char **ret_path,
                         const char **ret_reason)
{
	_cleanup_free_ char *origin = NULL, *path = NULL;
	UrlTarget t;
	int r;

	assert(target);
	assert(ret_origin);
	assert(ret_path);

	r = urlpath_parse_target(target, strlen(target), &t, ret_reason);
	if (r < 0)
		return r;

	if (t.scheme) {
		if (asprintf(&origin, "%s%s%.*s", t.scheme, t.scheme[0] ? "://" : "//",
		             (int)t.host_len, t.host) < 0) {
			origin = NULL;
			return -ENOMEM;
		}
	} else {
		origin = strdup("");
		if (!origin)
			return -ENOMEM;
	}
	path = strndup(t.path, t.path_len);
	if (!path)
		return -ENOMEM;

	*ret_origin = TAKE_PTR(origin);
	*ret_path = TAKE_PTR(path);
	return 0;
}
