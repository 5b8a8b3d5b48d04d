/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "urlpath.h"
#include "util.h"

/* The URL path codec: decode the input as a path (exactly size bytes, no NUL
 * terminator, so ASan sees any read past the end); every path the decoder
 * accepts must survive encode + decode unchanged, because that is what a
 * signed link relies on. Then the same bytes as a SIGN/VERIFY target, and
 * the text check on the raw and the decoded bytes. */

static void check_decoded_path(const char *path, size_t in_len)
{
	size_t len = strlen(path);

	FUZZ_CHECK(len > 0 && len <= in_len);
	FUZZ_CHECK(path[0] == '/');
	/* merge_slashes */
	FUZZ_CHECK(!strstr(path, "//"));
	/* No "." or ".." segment, anywhere. */
	for (const char *seg = path; seg; seg = strchr(seg + 1, '/')) {
		size_t n = strcspn(seg + 1, "/");

		FUZZ_CHECK(!(n == 1 && seg[1] == '.'));
		FUZZ_CHECK(!(n == 2 && seg[1] == '.' && seg[2] == '.'));
	}
}

static void check_round_trip(const char *path)
{
	const char *reason = NULL;
	char *encoded = NULL, *again = NULL;
	int r;

	r = urlpath_encode(path, &encoded);
	FUZZ_CHECK(r == 0);
	/* Canonical: only unreserved bytes, '/' and upper-case escapes. */
	for (const char *p = encoded; *p; p++) {
		if (*p == '%') {
			FUZZ_CHECK(strspn(p + 1, "0123456789ABCDEF") >= 2);
			p += 2;
			continue;
		}
		FUZZ_CHECK(strchr(
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/", *p));
	}

	r = urlpath_decode(encoded, strlen(encoded), &again, &reason);
	if (r < 0)
		fprintf(stderr, "decode(encode(path)) failed: %s\n", reason ? reason : "?");
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(streq(path, again));
	free(again);
	free(encoded);
}

static void check_split(const char *target)
{
	char *origin = NULL, *path = NULL;
	const char *reason = NULL;
	size_t lo, lp, lt = strlen(target);
	int r;

	r = urlpath_split_target(target, &origin, &path, &reason);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL);
		FUZZ_CHECK(reason && reason[0] != '\0');
		return;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(origin && path);
	FUZZ_CHECK(!strpbrk(target, "?#"));
	FUZZ_CHECK(path[0] == '/');
	lo = strlen(origin);
	lp = strlen(path);
	if (lo == 0) {
		FUZZ_CHECK(streq(path, target));
	} else {
		FUZZ_CHECK(strncmp(origin, "http://", 7) == 0 ||
		           strncmp(origin, "https://", 8) == 0 || strncmp(origin, "//", 2) == 0);
		/* origin + path is the target, with the scheme lower-cased and
		 * "/" for an empty path. */
		FUZZ_CHECK(strncasecmp(origin, target, lo) == 0);
		if (lo == lt)
			FUZZ_CHECK(streq(path, "/"));
		else {
			FUZZ_CHECK(lo + lp == lt);
			FUZZ_CHECK(streq(path, target + lo));
		}
		/* The host is kept byte for byte. */
		FUZZ_CHECK(strncmp(strstr(origin, "//"), strstr(target, "//"),
		                   lo - (size_t)(strstr(origin, "//") - origin)) == 0);
		/* The host is never empty: "///x" is no path either. */
		FUZZ_CHECK(lo > (size_t)(strstr(origin, "//") - origin) + 2);
	}
	free(origin);
	free(path);
}

/* The allocation-free forms used on the signing hot path must behave exactly
 * like the allocating ones; their buffers are sized exactly as documented, so
 * ASan catches a write past them. */
static bool check_decode_to(const uint8_t *data, size_t size, int r_alloc, const char *path)
{
	const char *reason = NULL;
	bool canonical = false;
	size_t n = SIZE_MAX;
	char *out;
	int r;

	out = malloc(size + 1);
	FUZZ_CHECK(out);
	r = urlpath_decode_to((const char *)data, size, out, &n, &canonical, &reason);
	FUZZ_CHECK(r == r_alloc);
	if (r == 0) {
		FUZZ_CHECK(n == strlen(out));
		FUZZ_CHECK(streq(out, path));
	}
	free(out);
	return r == 0 && canonical;
}

/* Resolving dot segments (VERIFY) agrees with decoding wherever decoding
 * accepts (no dot segment to resolve), and whatever it gives is a path the
 * decoder would give: no "//", no "." or "..", and it round-trips. */
static void check_resolve_to(const uint8_t *data, size_t size, int r_decode, const char *path)
{
	const char *reason = NULL;
	size_t n = SIZE_MAX;
	char *out;
	int r;

	out = malloc(size + 1);
	FUZZ_CHECK(out);
	r = urlpath_resolve_to((const char *)data, size, out, &n, &reason);
	if (r_decode == 0) {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(streq(out, path));
	}
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL);
		FUZZ_CHECK(reason && reason[0] != '\0');
	} else {
		FUZZ_CHECK(n == strlen(out));
		check_decoded_path(out, size);
		check_round_trip(out);
	}
	free(out);
}

static void check_encode_to(const char *path, const uint8_t *data, size_t size, bool canonical)
{
	size_t len = strlen(path), n;
	char *encoded = NULL, *out;

	FUZZ_CHECK(urlpath_encode(path, &encoded) == 0);
	n = urlpath_encoded_len(path, len);
	FUZZ_CHECK(n == strlen(encoded));
	out = malloc(n ? n : 1);
	FUZZ_CHECK(out);
	FUZZ_CHECK(urlpath_encode_to(path, len, out) == n);
	FUZZ_CHECK(memcmp(out, encoded, n) == 0);
	/* "Canonical" lets the signer send the input as the encoded path. */
	if (canonical)
		FUZZ_CHECK(n == size && memcmp(encoded, data, size) == 0);
	free(out);
	free(encoded);
}

static void check_parse_target(const uint8_t *data, size_t size, const char *target)
{
	char *origin = NULL, *path = NULL;
	const char *reason = NULL;
	UrlTarget t = {};
	int r, r_alloc;

	/* Exactly size bytes, no terminator. */
	r = urlpath_parse_target((const char *)data, size, &t, &reason);
	if (memchr(data, '\0', size))
		return; /* the C-string form sees a shorter target */
	r_alloc = urlpath_split_target(target, &origin, &path, &reason);
	FUZZ_CHECK(r == r_alloc);
	if (r == 0) {
		FUZZ_CHECK(t.path && t.path_len == strlen(path));
		FUZZ_CHECK(memcmp(t.path, path, t.path_len) == 0);
		if (!t.scheme)
			FUZZ_CHECK(origin[0] == '\0');
		else {
			size_t ls = strlen(t.scheme);
			size_t lsep = ls > 0 ? 3 : 2; /* "://" or "//" */

			FUZZ_CHECK(streq(t.scheme, "http") || streq(t.scheme, "https") ||
			           streq(t.scheme, ""));
			FUZZ_CHECK(strlen(origin) == ls + lsep + t.host_len);
			FUZZ_CHECK(strncmp(origin, t.scheme, ls) == 0);
			FUZZ_CHECK(memcmp(origin + ls + lsep, t.host, t.host_len) == 0);
		}
		free(origin);
		free(path);
	}
}

/* A second, deliberately different reading of "text": decode each code
 * point by its bit pattern, then require the shortest encoding, the
 * Unicode scalar range and no control character (C0, DEL, C1). */
static bool reference_is_text(const uint8_t *p, size_t len, size_t *ret_offset)
{
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n;

		*ret_offset = i;
		if ((p[i] & 0x80) == 0)
			n = 1, cp = p[i];
		else if ((p[i] & 0xe0) == 0xc0)
			n = 2, cp = p[i] & 0x1f;
		else if ((p[i] & 0xf0) == 0xe0)
			n = 3, cp = p[i] & 0x0f;
		else if ((p[i] & 0xf8) == 0xf0)
			n = 4, cp = p[i] & 0x07;
		else
			return false;
		if (n > len - i)
			return false;
		for (size_t j = 1; j < n; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
			return false;
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += n;
	}
	return true;
}

static void check_is_text(const uint8_t *data, size_t size)
{
	const char *reason = NULL;
	size_t offset = SIZE_MAX, ref_offset = SIZE_MAX;
	bool text = urlpath_is_text((const char *)data, size, &offset, &reason);

	FUZZ_CHECK(text == reference_is_text(data, size, &ref_offset));
	if (text)
		return;
	FUZZ_CHECK(reason && reason[0] != '\0');
	/* Both stop at the same sequence, and all before it is text. */
	FUZZ_CHECK(offset == ref_offset);
	FUZZ_CHECK(urlpath_is_text((const char *)data, offset, NULL, NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *reason = NULL;
	char *path = NULL, *target;
	bool canonical;
	int r;

	r = urlpath_decode((const char *)data, size, &path, &reason);
	canonical = check_decode_to(data, size, r, path);
	check_resolve_to(data, size, r, path);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL);
		FUZZ_CHECK(reason && reason[0] != '\0');
	} else {
		FUZZ_CHECK(r == 0);
		check_decoded_path(path, size);
		check_round_trip(path);
		check_encode_to(path, data, size, canonical);
		check_is_text((const uint8_t *)path, strlen(path));
		free(path);
	}

	check_is_text(data, size);

	target = fuzz_strndup(data, size);
	check_split(target);
	check_parse_target(data, size, target);
	free(target);
	return 0;
}
