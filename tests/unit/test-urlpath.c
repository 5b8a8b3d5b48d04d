/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "urlpath.h"
#include "util.h"

/* Known answers observed from nginx 1.22.1 (Debian 12's /usr/sbin/nginx, default
 * merge_slashes) with `location / { return 200 "$uri"; }`, each request path sent
 * verbatim (curl --path-as-is, or a raw socket for bytes curl would not send). The
 * expected column is nginx's response body, not our code's output. */
typedef struct {
	const char *in;
	const char *uri; /* nginx's $uri */
} NginxAnswer;

static const NginxAnswer nginx_answers[] = {
	{ "/a%2Fb", "/a/b" },
	{ "/a%2f%2Fb", "/a/b" },
	{ "/a//b", "/a/b" },
	{ "/a%2F%2F%2Fb", "/a/b" },
	{ "/a/%2F/b", "/a/b" },
	{ "/a%2F/%2F/b/", "/a/b/" },
	{ "/a%20b", "/a b" },
	{ "/a+b", "/a+b" },
	{ "/a%2Bb", "/a+b" },
	{ "/a%2bb", "/a+b" },
	{ "/a%25b", "/a%b" },
	{ "/a%2541", "/a%41" },
	{ "/a%252F", "/a%2F" },
	{ "/a%25%32%46", "/a%2F" },
	{ "/a%2541%2F", "/a%41/" },
	{ "/caf%C3%A9", "/caf\xc3\xa9" },
	{ "/a%c3%a9", "/a\xc3\xa9" },
	{ "/caf\xc3\xa9", "/caf\xc3\xa9" },
	{ "/\xff\x80", "/\xff\x80" },
	{ "/%C3%A9%E2%82%AC", "/\xc3\xa9\xe2\x82\xac" },
	{ "/a%3Fb", "/a?b" },
	{ "/a%3fb", "/a?b" },
	{ "/a%23b", "/a#b" },
	{ "/a%3F%23", "/a?#" },
	{ "/a/%3F", "/a/?" },
	{ "/a/", "/a/" },
	{ "/a//", "/a/" },
	{ "/a%2F", "/a/" },
	{ "/", "/" },
	{ "//", "/" },
	{ "/%2F", "/" },
	{ "/a/...", "/a/..." },
	{ "/a/.b", "/a/.b" },
	{ "/a/b.", "/a/b." },
	{ "/a%2E", "/a." },
	{ "/a/.%2E.", "/a/..." },
	{ "/a%01b", "/a\001b" },
	{ "/a%7Fb", "/a\177b" },
	{ "/a%FFb", "/a\377b" },
	{ "/a\\b", "/a\\b" },
	{ "/a\"b<>", "/a\"b<>" },
	{ "/a;b=c&d", "/a;b=c&d" },
	{ "/a%3B", "/a;" },
	{ "/~user/-_.", "/~user/-_." },
	{ "/A%41%61", "/AAa" },
	{ "/%7E%2D%5F%2E", "/~-_." },
};

/* Paths nginx 1.22.1 answered with 400 Bad Request: we must reject them too. */
static const char *const nginx_400[] = {
	"/a%00b", "/a%2", "/a%", "/a%G1", "/a%1G", "/..", "/%2E%2E", "/a\001b", "/a\177b", "/a\tb",
};

/* Paths in which nginx 1.22.1 resolved a "." or ".." segment (observed $uri in the
 * comment): we refuse those rather than sign a path that names another file. */
static const char *const nginx_resolves_dots[] = {
	"/a/./b",        /* /a/b */
	"/a/%2E/b",      /* /a/b */
	"/a/%2e%2E/b",   /* /b */
	"/a/b/..",       /* /a/ */
	"/a/.",          /* /a/ */
	"/a%2F.",        /* /a/ */
	"/a%2F%2E%2E",   /* / */
	"/a/%2E%2E",     /* / */
	"/a/..%2F",      /* / */
	"/a/b%2F..%2Fc", /* /a/c */
};

/* $uri as nginx 1.22.1 resolved "." and ".." segments (GET of the left side
 * from a location answering `return 200 "$uri"`): what VERIFY must hash. */
static const NginxAnswer nginx_resolved[] = {
	{ "/a/./b", "/a/b" },
	{ "/a/../b", "/b" },
	{ "/a/b/..", "/a/" },
	{ "/a/b/.", "/a/b/" },
	{ "/a/%2e%2E/b", "/b" },
	{ "/a/.%2E/b", "/b" },
	{ "/a//..//b", "/b" },
	{ "/...", "/..." },
	{ "/a/..b", "/a/..b" },
	{ "/a%2F..%2Fb", "/b" },
	{ "/./a", "/a" },
	{ "/.", "/" },
	{ "/a/.%2F", "/a/" },
	{ "/a/b/../../c", "/c" },
	{ "/a/%2E/b", "/a/b" },
	{ "/a/..%3Fb", "/a/..?b" },
	{ "/a/..%23/b", "/a/..#/b" },
	{ "/a/.//b/..", "/a/" },
	{ "/a/b/%2E%2E", "/a/" },
	{ "/a/b/%2e", "/a/b/" },
	{ "/a/b/..%2f..%2Fc", "/c" },
	{ "/a/./../b", "/b" },
	{ "/a/b/c/./../../d", "/a/d" },
	/* Plain paths come out as urlpath_decode() has them. */
	{ "/a%20b//c", "/a b/c" },
};

/* ".." above the root: nginx 1.22.1 answered 400. */
static const char *const nginx_400_above_root[] = {
	"/..", "/../a", "/a/../..", "/a/b/../../../c", "/%2E%2E", "/.%2e/a",
};

static void assert_decodes_to(const char *in, size_t len, const char *want)
{
	_cleanup_free_ char *out = NULL;
	const char *reason = NULL;
	int r;

	r = urlpath_decode(in, len, &out, &reason);
	if (r != 0)
		fail_msg("decoding \"%s\" failed: %s", in, reason ? reason : "(no reason)");
	assert_non_null(out);
	assert_string_equal(out, want);
}

static void assert_rejected(const char *in, size_t len, const char *want_reason)
{
	char *out = NULL;
	const char *reason = NULL;

	assert_int_equal(urlpath_decode(in, len, &out, &reason), -EINVAL);
	assert_null(out);
	assert_non_null(reason);
	if (want_reason)
		assert_string_equal(reason, want_reason);
}

static void test_decode_matches_nginx_uri(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(nginx_answers); i++)
		assert_decodes_to(nginx_answers[i].in, strlen(nginx_answers[i].in),
		                  nginx_answers[i].uri);
}

static void test_decode_rejects_what_nginx_answers_400(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(nginx_400); i++)
		assert_rejected(nginx_400[i], strlen(nginx_400[i]), NULL);
}

static void test_decode_rejects_dot_segment(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(nginx_resolves_dots); i++)
		assert_rejected(nginx_resolves_dots[i], strlen(nginx_resolves_dots[i]),
		                "'.' or '..' segment in path");
	assert_rejected("/.", 2, "'.' or '..' segment in path");
	assert_rejected("/..", 3, "'.' or '..' segment in path");
	assert_rejected("//./a", 5, "'.' or '..' segment in path");
	assert_rejected("/%2e%2e/a", 9, "'.' or '..' segment in path");
}

static void test_resolve_matches_nginx_uri_with_dot_segments(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(nginx_resolved); i++) {
		const char *in = nginx_resolved[i].in;
		_cleanup_free_ char *out = malloc(strlen(in) + 1);
		const char *reason = NULL;
		size_t n = SIZE_MAX;

		assert_non_null(out);
		if (urlpath_resolve_to(in, strlen(in), out, &n, &reason) != 0)
			fail_msg("resolving \"%s\" failed: %s", in, reason ?: "(no reason)");
		assert_int_equal(n, strlen(nginx_resolved[i].uri));
		assert_string_equal(out, nginx_resolved[i].uri);
	}
}

static void test_resolve_rejects_what_nginx_answers_400(void **state)
{
	char out[64];
	size_t n;

	for (size_t i = 0; i < ELEMENTSOF(nginx_400_above_root); i++) {
		const char *reason = NULL;

		assert_int_equal(urlpath_resolve_to(nginx_400_above_root[i],
		                                    strlen(nginx_400_above_root[i]), out, &n,
		                                    &reason),
		                 -EINVAL);
		assert_string_equal(reason, "'..' segment above the root (nginx answers 400)");
	}
	/* Every other 400 stays one, with the decoder's reason. */
	for (size_t i = 0; i < ELEMENTSOF(nginx_400); i++)
		assert_int_equal(
		    urlpath_resolve_to(nginx_400[i], strlen(nginx_400[i]), out, &n, NULL), -EINVAL);
}

static void test_decode_rejects_bad_escape(void **state)
{
	assert_rejected("/a%G1", 5, "bad percent-escape");
	assert_rejected("/a%1G", 5, "bad percent-escape");
	assert_rejected("/a%%41", 6, "bad percent-escape");
	assert_rejected("/a%-1b", 6, "bad percent-escape");
	assert_rejected("/a%", 3, "truncated percent-escape");
	assert_rejected("/a%2", 4, "truncated percent-escape");
	/* The escape is cut by len, even though more bytes follow in memory. */
	assert_rejected("/a%41", 4, "truncated percent-escape");
}

static void test_decode_rejects_decoded_nul(void **state)
{
	assert_rejected("/a%00b", 6, "decoded NUL byte in path");
	assert_rejected("/%00", 4, "decoded NUL byte in path");
}

static void test_decode_rejects_raw_query_and_fragment(void **state)
{
	/* nginx starts $args at a raw '?' and ends $uri at a raw '#' ("/a?b" and "/a#b"
	 * both gave $uri "/a"), so neither may appear raw in a path we sign. */
	assert_rejected("/a?b", 4, NULL);
	assert_rejected("/a#b", 4, NULL);
	assert_rejected("/a?", 3, NULL);
	assert_rejected("/#", 2, NULL);
}

static void test_decode_rejects_space_and_control_bytes(void **state)
{
	static const char nul_inside[] = "/a\0b";

	assert_rejected("/a b", 4, NULL);
	assert_rejected("/a\x1f", 3, NULL);
	assert_rejected("/a\x7f", 3, NULL);
	assert_rejected("/a\r\n", 4, NULL);
	/* A raw NUL inside the given length is a control byte, not the end. */
	assert_rejected(nul_inside, sizeof(nul_inside) - 1, NULL);
}

static void test_decode_rejects_missing_leading_slash(void **state)
{
	assert_rejected("", 0, "path must start with '/'");
	assert_rejected(NULL, 0, "path must start with '/'");
	assert_rejected("a/b", 3, "path must start with '/'");
	assert_rejected("%2Fa", 4, "path must start with '/'");
	assert_rejected("http://x/a", 10, "path must start with '/'");
}

static void test_decode_honours_len(void **state)
{
	assert_decodes_to("/ab/cd", 3, "/ab");
	assert_decodes_to("/a%41xyz", 5, "/aA");
}

static void test_decode_accepts_null_reason(void **state)
{
	char *out = NULL;

	assert_int_equal(urlpath_decode("/a%", 3, &out, NULL), -EINVAL);
	assert_null(out);
}

/* Encoder. Expected strings follow the rule in urlpath.h: A-Z a-z 0-9 - . _ ~ and '/'
 * stay, everything else is %XX upper-case. */
static void assert_encodes_to(const char *in, const char *want)
{
	_cleanup_free_ char *out = NULL;

	assert_int_equal(urlpath_encode(in, &out), 0);
	assert_string_equal(out, want);
}

static void test_encode_escapes_all_but_unreserved_and_slash(void **state)
{
	assert_encodes_to("/", "/");
	assert_encodes_to("", "");
	assert_encodes_to("/media/private/a-b_c.d~e/F9.txt", "/media/private/a-b_c.d~e/F9.txt");
	assert_encodes_to("/a b+c%d", "/a%20b%2Bc%25d");
	assert_encodes_to("/a?b#c&d=e;f", "/a%3Fb%23c%26d%3De%3Bf");
	assert_encodes_to("/caf\xc3\xa9", "/caf%C3%A9");
	assert_encodes_to("/\x01\x7f\xff", "/%01%7F%FF");
	assert_encodes_to("/\"'<>\\^`{|}", "/%22%27%3C%3E%5C%5E%60%7B%7C%7D");
	assert_encodes_to("/!$()*,:@[]", "/%21%24%28%29%2A%2C%3A%40%5B%5D");
}

/* nginx 1.22.1 answered the request path "/x%01%02...%FF" (every byte but NUL and
 * '/', each escaped) with $uri "/x" followed by those 254 raw bytes. Our encoder must
 * produce exactly that request for that path, and our decoder must read it back. */
static void test_encode_of_all_bytes_is_what_nginx_decodes(void **state)
{
	char path[2 + 255 + 1], enc[2 + 3 * 255 + 1];
	_cleanup_free_ char *out = NULL;
	size_t n = 0, m = 0;

	path[n++] = '/';
	path[n++] = 'x';
	enc[m++] = '/';
	enc[m++] = 'x';
	for (int b = 1; b < 256; b++) {
		if (b == '/')
			continue;
		path[n++] = (char)b;
		if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
		    b == '-' || b == '.' || b == '_' || b == '~')
			enc[m++] = (char)b;
		else
			m += (size_t)snprintf(enc + m, sizeof(enc) - m, "%%%02X", b);
	}
	path[n] = '\0';
	enc[m] = '\0';

	assert_int_equal(urlpath_encode(path, &out), 0);
	assert_string_equal(out, enc);
	assert_decodes_to(out, strlen(out), path);
}

static void assert_round_trip(const char *path)
{
	_cleanup_free_ char *enc = NULL, *dec = NULL, *enc2 = NULL;
	const char *reason = NULL;

	assert_int_equal(urlpath_encode(path, &enc), 0);
	for (const char *p = enc; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("-._~/%", c)))
			fail_msg("encoding of a path left byte 0x%02x raw", c);
	}
	if (urlpath_decode(enc, strlen(enc), &dec, &reason) != 0)
		fail_msg("decode(encode(p)) failed: %s", reason);
	assert_int_equal(strlen(dec), strlen(path));
	assert_memory_equal(dec, path, strlen(path));
	/* And the encoding is canonical: re-encoding gives the same link. */
	assert_int_equal(urlpath_encode(dec, &enc2), 0);
	assert_string_equal(enc2, enc);
}

static void test_round_trip_every_byte_value(void **state)
{
	for (int b = 1; b < 256; b++) {
		char p[8];

		if (b == '/') {
			assert_round_trip("/a/b/");
			continue;
		}
		/* The byte at the start, middle and end of a segment, and doubled ('.' alone
		 * would be a dot segment, which no decoded path holds). */
		snprintf(p, sizeof(p), "/%cx", b);
		assert_round_trip(p);
		snprintf(p, sizeof(p), "/x%c/", b);
		assert_round_trip(p);
		snprintf(p, sizeof(p), "/x%cy", b);
		assert_round_trip(p);
		snprintf(p, sizeof(p), "/%c%c%c", b, b, b);
		assert_round_trip(p);
	}
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Builds a random path of the shape urlpath_decode() produces: starts with '/', no
 * empty segment except possibly after a trailing '/', no NUL, no "." or ".." segment. */
static void random_decoded_path(uint64_t *seed, char *buf, size_t size)
{
	size_t n = 0, nseg = xorshift(seed) % 6;

	buf[n++] = '/';
	for (size_t s = 0; s < nseg; s++) {
		size_t seglen = 1 + xorshift(seed) % 12, start = n;

		if (n + seglen + 2 >= size)
			break;
		for (size_t i = 0; i < seglen; i++) {
			uint64_t r = xorshift(seed);
			unsigned char c;

			/* Bias towards the bytes with special meaning. */
			if (r % 4 == 0)
				c = (unsigned char)"%.+?#~ \\"[(r >> 8) % 8];
			else
				c = (unsigned char)(1 + (r >> 8) % 255);
			if (c == '/')
				c = '.';
			buf[n++] = (char)c;
		}
		if ((n - start == 1 && buf[start] == '.') ||
		    (n - start == 2 && buf[start] == '.' && buf[start + 1] == '.'))
			buf[n++] = 'z';
		if (s + 1 < nseg || xorshift(seed) % 3 == 0)
			buf[n++] = '/';
	}
	buf[n] = '\0';
}

static void test_round_trip_generated_paths(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	char buf[128];

	for (int i = 0; i < 100000; i++) {
		random_decoded_path(&seed, buf, sizeof(buf));
		assert_round_trip(buf);
	}
}

static void test_decode_is_idempotent_through_encode(void **state)
{
	/* For every input nginx accepted, encoding our decoded path gives a link nginx
	 * maps to the same $uri. */
	for (size_t i = 0; i < ELEMENTSOF(nginx_answers); i++)
		assert_round_trip(nginx_answers[i].uri);
}

/* urlpath_split_target */
static void assert_split(const char *target, const char *want_origin, const char *want_path)
{
	_cleanup_free_ char *origin = NULL, *path = NULL;
	const char *reason = NULL;

	if (urlpath_split_target(target, &origin, &path, &reason) != 0)
		fail_msg("splitting \"%s\" failed: %s", target, reason ? reason : "(no reason)");
	assert_string_equal(origin, want_origin);
	assert_string_equal(path, want_path);
}

static void assert_split_rejected(const char *target, const char *want_reason)
{
	char *origin = NULL, *path = NULL;
	const char *reason = NULL;

	assert_int_equal(urlpath_split_target(target, &origin, &path, &reason), -EINVAL);
	assert_null(origin);
	assert_null(path);
	assert_non_null(reason);
	if (want_reason)
		assert_string_equal(reason, want_reason);
}

static void test_split_path_has_empty_origin(void **state)
{
	assert_split("/media/private/a%20b.txt", "", "/media/private/a%20b.txt");
	assert_split("/", "", "/");
}

/* A browser reads "//host/x" as host "host", path "/x" (RFC 3986 4.2, a
 * network-path reference), and Django's MEDIA_URL may be written so: the
 * origin is kept as written, like scheme://host, never taken as a path. */
static void test_split_scheme_relative_url_keeps_its_host(void **state)
{
	assert_split("//files.example.com/media/a.txt", "//files.example.com", "/media/a.txt");
	assert_split("//host/x", "//host", "/x");
	assert_split("//Files.Example.COM:8443/a//b", "//Files.Example.COM:8443", "/a//b");
	assert_split("//h:81", "//h:81", "/");
	assert_split("//[::1]:8080/a", "//[::1]:8080", "/a");

	assert_split_rejected("//", "missing host in target");
	assert_split_rejected("///media/a.txt", "missing host in target");
	assert_split_rejected("//:80/a", "missing host in target");
	assert_split_rejected("//user@h/a", "bad host in target");
	assert_split_rejected("//h_x/a", "bad host in target");
	assert_split_rejected("//h:0/a", "bad port in target (use 1-65535)");
	assert_split_rejected("//h/a?x", "query string or fragment in target");
}

static void test_split_absolute_url(void **state)
{
	assert_split("http://example.com/media/a.txt", "http://example.com", "/media/a.txt");
	assert_split("https://Example.COM:8443/a", "https://Example.COM:8443", "/a");
	assert_split("HTTPS://cdn-1.example.com", "https://cdn-1.example.com", "/");
	assert_split("HtTp://127.0.0.1:1/", "http://127.0.0.1:1", "/");
	assert_split("http://h:65535/x/y/", "http://h:65535", "/x/y/");
	assert_split("http://[::1]:8080/a", "http://[::1]:8080", "/a");
	assert_split("https://[2001:db8::a:192.0.2.1]", "https://[2001:db8::a:192.0.2.1]", "/");
}

static void test_split_rejects_query_and_fragment(void **state)
{
	assert_split_rejected("/a?b=c", "query string or fragment in target");
	assert_split_rejected("/a#frag", "query string or fragment in target");
	assert_split_rejected("https://h/a?x", "query string or fragment in target");
	assert_split_rejected("https://h?x", "query string or fragment in target");
	assert_split_rejected("https://h#x", "query string or fragment in target");
}

static void test_split_rejects_other_schemes_and_relative(void **state)
{
	const char *want = "target must be a path starting with '/' or an http(s) URL";

	assert_split_rejected("", want);
	assert_split_rejected("media/a.txt", want);
	assert_split_rejected("ftp://h/a", want);
	assert_split_rejected("http:/h/a", want);
	assert_split_rejected("httpx://h/a", want);
}

static void test_split_rejects_bad_host(void **state)
{
	assert_split_rejected("http:///a", "missing host in target");
	assert_split_rejected("http://", "missing host in target");
	assert_split_rejected("http://:80/a", "missing host in target");
	assert_split_rejected("http://user@h/a", "bad host in target");
	assert_split_rejected("http://h_x/a", "bad host in target");
	assert_split_rejected("http://h%41/a", "bad host in target");
	assert_split_rejected("http://h\\a", "bad host in target");
	assert_split_rejected("http://[::1]x/a", "bad host in target");
	assert_split_rejected("http://[]/a", "bad IPv6 literal in target");
	assert_split_rejected("http://[::1/a", "bad IPv6 literal in target");
	assert_split_rejected("http://[127.0.0.1]/a", "bad IPv6 literal in target");
	assert_split_rejected("http://[fe80::1%25eth0]/a", "bad IPv6 literal in target");
}

static void test_split_rejects_bad_port(void **state)
{
	const char *want = "bad port in target (use 1-65535)";

	assert_split_rejected("http://h:/a", want);
	assert_split_rejected("http://h:0/a", want);
	assert_split_rejected("http://h:080/a", want);
	assert_split_rejected("http://h:65536/a", want);
	assert_split_rejected("http://h:99999/a", want);
	assert_split_rejected("http://h:123456/a", want);
	assert_split_rejected("http://h:18446744073709551617/a", want);
	assert_split_rejected("http://h:-1/a", want);
	assert_split_rejected("http://[::1]:/a", want);
	assert_split_rejected("http://h:8x/a", "bad host in target");
}

static void test_split_accepts_null_reason(void **state)
{
	char *origin = NULL, *path = NULL;

	assert_int_equal(urlpath_split_target("ftp://h/", &origin, &path, NULL), -EINVAL);
	assert_null(origin);
	assert_null(path);
}

/* The allocation-free decoder used when signing must agree with
 * urlpath_decode() everywhere, and when it says "canonical", encoding the
 * result must give the input back (it may say no for some inputs that do
 * come back, such as "/a%25b": the signer then encodes, which is only slower). */
static void test_decode_to_agrees_with_decode_and_canonical_means_encode_is_identity(void **state)
{
	static const char *const extra[] = {
		"/media/private/docs/report-000001.pdf",
		"/A-Z_a.z~09",
		"/%41",
		"/a%2Fb",
		"/a//b",
		"/a+b",
		"/a!b",
		"/a:b@c",
		"/caf\xc3\xa9",
		"/a/",
		"/",
		"//",
	};

	for (size_t i = 0; i < ELEMENTSOF(nginx_answers) + ELEMENTSOF(extra); i++) {
		const char *in = i < ELEMENTSOF(nginx_answers)
		                     ? nginx_answers[i].in
		                     : extra[i - ELEMENTSOF(nginx_answers)];
		size_t len = strlen(in), n = 0;
		_cleanup_free_ char *want = NULL, *encoded = NULL, *out = malloc(len + 1);
		bool canonical = false;

		assert_non_null(out);
		assert_int_equal(urlpath_decode(in, len, &want, NULL), 0);
		assert_int_equal(urlpath_decode_to(in, len, out, &n, &canonical, NULL), 0);
		assert_string_equal(out, want);
		assert_int_equal(n, strlen(want));
		assert_int_equal(urlpath_encode(want, &encoded), 0);
		if (canonical)
			assert_string_equal(encoded, in);
		assert_int_equal(urlpath_encoded_len(want, n), strlen(encoded));
	}
}

static void test_decode_to_canonical_only_for_plain_paths(void **state)
{
	static const struct {
		const char *in;
		bool canonical;
	} cases[] = {
		{ "/media/private/a.pdf", true },
		{ "/A-Z_a.z~09/", true },
		{ "/", true },
		{ "/%41", false },
		{ "/a%2Fb", false },
		{ "/a//b", false },
		{ "/a+b", false },
		{ "/a b", false },
		{ "/caf\xc3\xa9", false },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char out[64];
		size_t n;
		bool canonical = !cases[i].canonical;
		int r =
		    urlpath_decode_to(cases[i].in, strlen(cases[i].in), out, &n, &canonical, NULL);

		if (strchr(cases[i].in, ' ')) {
			/* Not a path at all: refused, flag untouched. */
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(canonical, cases[i].canonical);
	}
}

static void test_parse_target_honours_len(void **state)
{
	const char *t = "http://h:81/a/b?query";
	const char *reason = NULL;
	UrlTarget u;

	/* Only the first len bytes count: the '?' after them is not seen. */
	assert_int_equal(urlpath_parse_target(t, strlen("http://h:81/a/b"), &u, NULL), 0);
	assert_string_equal(u.scheme, "http");
	assert_int_equal(u.host_len, strlen("h:81"));
	assert_memory_equal(u.host, "h:81", u.host_len);
	assert_int_equal(u.path_len, strlen("/a/b"));
	assert_memory_equal(u.path, "/a/b", u.path_len);

	/* Cut after the host: the path is "/". */
	assert_int_equal(urlpath_parse_target(t, strlen("http://h:81"), &u, NULL), 0);
	assert_int_equal(u.path_len, 1);
	assert_memory_equal(u.path, "/", 1);

	/* Cut inside the port: "8" is a port on its own. */
	assert_int_equal(urlpath_parse_target(t, strlen("http://h:8"), &u, NULL), 0);
	assert_int_equal(u.host_len, strlen("h:8"));

	/* Cut inside an IPv6 literal: never a valid host. */
	assert_int_equal(urlpath_parse_target("http://[::1]/", strlen("http://[::1"), &u, &reason),
	                 -EINVAL);
	assert_string_equal(reason, "bad IPv6 literal in target");

	/* A scheme-relative target has an empty scheme and its host. */
	assert_int_equal(urlpath_parse_target("//h:81/a", strlen("//h:81/a"), &u, NULL), 0);
	assert_non_null(u.scheme);
	assert_string_equal(u.scheme, "");
	assert_int_equal(u.host_len, strlen("h:81"));
	assert_memory_equal(u.host, "h:81", u.host_len);
	assert_int_equal(u.path_len, strlen("/a"));

	/* A path target has no scheme. */
	assert_int_equal(urlpath_parse_target("/x", 2, &u, NULL), 0);
	assert_null(u.scheme);
	assert_int_equal(u.path_len, 2);
	assert_int_equal(urlpath_parse_target("/x", 0, &u, &reason), -EINVAL);
}

/* urlpath_is_text: vectors written for this test after the Unicode
 * standard's table 3-7 (well-formed UTF-8 byte sequences) and the kinds of
 * case in Markus Kuhn's UTF-8 decoder stress test: boundaries of each
 * sequence length, overlong forms, surrogates, beyond U+10FFFF, stray and
 * missing continuation bytes. */

#define R_CONTROL   "control character (U+0000-U+001F or U+007F)"
#define R_C1        "C1 control character (U+0080-U+009F)"
#define R_STRAY     "invalid UTF-8: continuation byte without a lead byte"
#define R_OVERLONG  "invalid UTF-8: overlong encoding"
#define R_SURROGATE "invalid UTF-8: UTF-16 surrogate (U+D800-U+DFFF)"
#define R_BEYOND    "invalid UTF-8: code point above U+10FFFF"
#define R_NEVER     "invalid UTF-8: byte 0xF5-0xFF"
#define R_TRUNCATED "invalid UTF-8: truncated sequence"

static const char *const text_vectors[] = {
	"",
	"/media/private/report.pdf",
	" !\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~", /* every ASCII kind but controls */
	"\xc2\xa0",                                          /* U+00A0, the first after C1 */
	"\xc2\xbf",                                          /* U+00BF */
	"\xc3\xa9",                                          /* U+00E9 */
	"\xdf\xbf",                                          /* U+07FF, the last of 2 bytes */
	"\xe0\xa0\x80",                                      /* U+0800, the first of 3 bytes */
	"\xe2\x82\xac",                                      /* U+20AC */
	"\xed\x9f\xbf",                                      /* U+D7FF, below the surrogates */
	"\xee\x80\x80",                                      /* U+E000, above them */
	"\xef\xbf\xbd",                                      /* U+FFFD */
	"\xef\xbf\xbf",                                      /* U+FFFF, a noncharacter but text */
	"\xf0\x90\x80\x80",                                  /* U+10000, the first of 4 bytes */
	"\xf0\x9f\x98\x80",                                  /* U+1F600 */
	"\xf4\x8f\xbf\xbf",                                  /* U+10FFFF, the last */
	"/\xe6\x97\xa5\xe6\x9c\xac/caf\xc3\xa9 \xf0\x9f\x93\x84.txt",
};

typedef struct {
	const char *in;
	size_t len; /* 0: strlen(in) */
	size_t offset;
	const char *reason;
} NotText;

static const NotText not_text_vectors[] = {
	/* C0 controls and DEL: terminals and logs act on them. */
	{ "\x01", 0, 0, R_CONTROL },
	{ "/a\tb", 0, 2, R_CONTROL },
	{ "/a\nb", 0, 2, R_CONTROL },
	{ "/a\rb", 0, 2, R_CONTROL },
	{ "/a\x1b[31m", 0, 2, R_CONTROL },
	{ "/a\x1f", 0, 2, R_CONTROL },
	{ "/a\x7f", 0, 2, R_CONTROL },
	{ "/a\0b", 4, 2, R_CONTROL },
	/* C1 controls, as UTF-8: U+0085 NEL ends a line, U+009B is CSI. */
	{ "/\xc2\x80", 0, 1, R_C1 },
	{ "/\xc2\x85", 0, 1, R_C1 },
	{ "/\xc2\x9b", 0, 1, R_C1 },
	{ "/\xc2\x9f", 0, 1, R_C1 },
	/* A continuation byte where a character must start. */
	{ "\x80", 0, 0, R_STRAY },
	{ "/a\xbf", 0, 2, R_STRAY },
	{ "\xc3\xa9\xa9", 0, 2, R_STRAY },
	{ "\xe2\x82\xac\x80", 0, 3, R_STRAY },
	/* Overlong forms, the classic '/' among them. */
	{ "\xc0\x80", 0, 0, R_OVERLONG },
	{ "/\xc0\xaf", 0, 1, R_OVERLONG },
	{ "\xc1\xbf", 0, 0, R_OVERLONG },
	{ "\xe0\x80\xaf", 0, 0, R_OVERLONG },
	{ "\xe0\x9f\xbf", 0, 0, R_OVERLONG },
	{ "\xf0\x80\x80\xaf", 0, 0, R_OVERLONG },
	{ "\xf0\x8f\xbf\xbf", 0, 0, R_OVERLONG },
	/* UTF-16 surrogates encoded one by one (CESU-8), alone or paired. */
	{ "\xed\xa0\x80", 0, 0, R_SURROGATE },
	{ "\xed\xad\xbf", 0, 0, R_SURROGATE },
	{ "\xed\xb0\x80", 0, 0, R_SURROGATE },
	{ "/x\xed\xbf\xbf", 0, 2, R_SURROGATE },
	{ "\xed\xa0\xbd\xed\xb8\x80", 0, 0, R_SURROGATE },
	/* Beyond Unicode. */
	{ "\xf4\x90\x80\x80", 0, 0, R_BEYOND },
	{ "\xf4\xbf\xbf\xbf", 0, 0, R_BEYOND },
	/* Bytes no UTF-8 holds: the old 4-byte forms above U+13FFFF, 5- and
	 * 6-byte forms, and 0xFE/0xFF (UTF-16's byte order marks). */
	{ "\xf5\x80\x80\x80", 0, 0, R_NEVER },
	{ "\xf7\xbf\xbf\xbf", 0, 0, R_NEVER },
	{ "\xf8\x88\x80\x80\x80", 0, 0, R_NEVER },
	{ "\xfc\x84\x80\x80\x80\x80", 0, 0, R_NEVER },
	{ "\xfe", 0, 0, R_NEVER },
	{ "\xff\xfe", 0, 0, R_NEVER },
	/* The issue's example: what a collision block looks like. */
	{ "/media/private/\xff\xfe\xc0", 0, 15, R_NEVER },
	/* Sequences cut short: by the end, by ASCII, by another lead byte. */
	{ "\xc3", 0, 0, R_TRUNCATED },
	{ "/\xe2\x82", 0, 1, R_TRUNCATED },
	{ "\xf0\x9f\x98", 0, 0, R_TRUNCATED },
	{ "\xc3"
	  "a",
	  0, 0, R_TRUNCATED },
	{ "\xe2\x82/", 0, 0, R_TRUNCATED },
	{ "\xe2\xc3\xa9", 0, 0, R_TRUNCATED },
	{ "\xf0\x9f\x98\xf0\x9f\x98\x80", 0, 0, R_TRUNCATED },
	{ "\xe0", 0, 0, R_TRUNCATED },
	{ "\xed", 0, 0, R_TRUNCATED },
	{ "\xf4", 0, 0, R_TRUNCATED },
	/* len bounds the check: the sequence's end lies beyond it. */
	{ "\xe2\x82\xac", 2, 0, R_TRUNCATED },
	{ "\xc3\xa9", 1, 0, R_TRUNCATED },
};

static void test_is_text_accepts_utf8_without_controls(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(text_vectors); i++) {
		const char *reason = NULL;
		size_t offset = SIZE_MAX;

		if (!urlpath_is_text(text_vectors[i], strlen(text_vectors[i]), &offset, &reason))
			fail_msg("vector %zu refused: %s at %zu", i, reason ?: "?", offset);
		assert_null(reason);
	}
	/* Only len bytes count: what follows them is not looked at. */
	assert_true(urlpath_is_text("/a\xff", 2, NULL, NULL));
	assert_true(urlpath_is_text("\xc3\xa9\x01", 2, NULL, NULL));
	assert_true(urlpath_is_text(NULL, 0, NULL, NULL));
}

static void test_is_text_refuses_bad_utf8_and_controls_at_their_offset(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(not_text_vectors); i++) {
		const NotText *v = not_text_vectors + i;
		size_t len = v->len ?: strlen(v->in), offset = SIZE_MAX;
		const char *reason = NULL;

		if (urlpath_is_text(v->in, len, &offset, &reason))
			fail_msg("vector %zu accepted", i);
		if (!reason || strcmp(reason, v->reason) != 0 || offset != v->offset)
			fail_msg("vector %zu: %s at %zu, expected %s at %zu", i, reason ?: "(null)",
			         offset, v->reason, v->offset);
		/* The out-parameters are optional. */
		assert_false(urlpath_is_text(v->in, len, NULL, NULL));
	}
}

/* Every byte value alone: ASCII but controls is text, nothing else is. */
static void test_is_text_of_every_single_byte(void **state)
{
	for (unsigned b = 0; b < 256; b++) {
		char c = (char)b;
		bool want = b >= 0x20 && b < 0x7f;

		if (urlpath_is_text(&c, 1, NULL, NULL) != want)
			fail_msg("byte 0x%02x: expected %s", b, want ? "text" : "not text");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_matches_nginx_uri),
		cmocka_unit_test(test_decode_rejects_what_nginx_answers_400),
		cmocka_unit_test(test_decode_rejects_dot_segment),
		cmocka_unit_test(test_resolve_matches_nginx_uri_with_dot_segments),
		cmocka_unit_test(test_resolve_rejects_what_nginx_answers_400),
		cmocka_unit_test(test_decode_rejects_bad_escape),
		cmocka_unit_test(test_decode_rejects_decoded_nul),
		cmocka_unit_test(test_decode_rejects_raw_query_and_fragment),
		cmocka_unit_test(test_decode_rejects_space_and_control_bytes),
		cmocka_unit_test(test_decode_rejects_missing_leading_slash),
		cmocka_unit_test(test_decode_honours_len),
		cmocka_unit_test(test_decode_accepts_null_reason),
		cmocka_unit_test(test_encode_escapes_all_but_unreserved_and_slash),
		cmocka_unit_test(test_encode_of_all_bytes_is_what_nginx_decodes),
		cmocka_unit_test(test_round_trip_every_byte_value),
		cmocka_unit_test(test_round_trip_generated_paths),
		cmocka_unit_test(test_decode_is_idempotent_through_encode),
		cmocka_unit_test(test_split_path_has_empty_origin),
		cmocka_unit_test(test_split_absolute_url),
		cmocka_unit_test(test_split_scheme_relative_url_keeps_its_host),
		cmocka_unit_test(test_split_rejects_query_and_fragment),
		cmocka_unit_test(test_split_rejects_other_schemes_and_relative),
		cmocka_unit_test(test_split_rejects_bad_host),
		cmocka_unit_test(test_split_rejects_bad_port),
		cmocka_unit_test(test_split_accepts_null_reason),
		cmocka_unit_test(
		    test_decode_to_agrees_with_decode_and_canonical_means_encode_is_identity),
		cmocka_unit_test(test_decode_to_canonical_only_for_plain_paths),
		cmocka_unit_test(test_parse_target_honours_len),
		cmocka_unit_test(test_is_text_accepts_utf8_without_controls),
		cmocka_unit_test(test_is_text_refuses_bad_utf8_and_controls_at_their_offset),
		cmocka_unit_test(test_is_text_of_every_single_byte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
