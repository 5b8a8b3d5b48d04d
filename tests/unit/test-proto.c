/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "proto.h"
#include "util.h"

/* One parse of one line. The line lives in a buffer of exactly len + 1
 * bytes, so an ASan build catches any read or write past it. */
typedef struct Result {
	char *line;
	size_t len;
	int r;
	Request req;
	ProtoError code;
	const char *message;
} Result;

static void result_freep(Result **p)
{
	if (*p) {
		free((*p)->line);
		free(*p);
	}
}
#define _cleanup_result_ _cleanup_(result_freep)

static Result *parse_n(const char *s, size_t len)
{
	Result *res = calloc(1, sizeof(*res));

	assert_non_null(res);
	res->line = malloc(len + 1);
	assert_non_null(res->line);
	memcpy(res->line, s, len);
	res->line[len] = '\n'; /* what the reader leaves there: not a NUL */
	res->len = len;
	res->code = _PROTO_ERROR_MAX;
	res->r = proto_parse_line(res->line, len, &res->req, &res->code, &res->message);
	return res;
}

static Result *parse(const char *s)
{
	return parse_n(s, strlen(s));
}

static void assert_one_line_message(const char *m)
{
	assert_non_null(m);
	assert_true(m[0] != '\0');
	assert_true(strlen(m) < PROTO_MESSAGE_MAX);
	for (const char *p = m; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

static Result *parse_ok(const char *s)
{
	Result *res = parse(s);

	if (res->r != 0)
		print_error("unexpected failure for \"%s\": %s\n", s,
		            res->message ? res->message : "(null)");
	assert_int_equal(res->r, 0);
	return res;
}

/* Fails unless s is refused with code, and the message is a printable one-liner
 * containing needle (when given). */
static void expect_error(const char *s, ProtoError code, const char *needle)
{
	_cleanup_result_ Result *res = parse(s);

	if (res->r != -EINVAL || res->code != code)
		print_error("\"%s\": r=%d code=%s message=%s\n", s, res->r,
		            proto_error_to_string(res->code) ?: "?",
		            res->message ? res->message : "(null)");
	assert_int_equal(res->r, -EINVAL);
	assert_int_equal(res->code, code);
	assert_one_line_message(res->message);
	if (needle && !strstr(res->message, needle)) {
		print_error("\"%s\": message \"%s\" lacks \"%s\"\n", s, res->message, needle);
		fail();
	}
}

static void test_error_and_verb_names_are_the_wire_spelling(void **state)
{
	/* DESIGN.md, "Error codes" and the verb list. */
	static const char *const errors[] = { "bad-request", "unknown-verb", "line-too-long",
		                              "bad-target",  "bad-ttl",      "ttl-too-long",
		                              "bad-ip",      "forbidden",    "unavailable",
		                              "internal" };
	static const char *const verbs[] = { "PING",   "SIGN",   "VERIFY", "ROTATE",
		                             "IMPORT", "STATUS", "CHECK",  "CACHE" };

	assert_int_equal(ELEMENTSOF(errors), _PROTO_ERROR_MAX);
	for (size_t i = 0; i < ELEMENTSOF(errors); i++)
		assert_string_equal(proto_error_to_string((ProtoError)i), errors[i]);
	assert_int_equal(ELEMENTSOF(verbs), _VERB_MAX);
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		assert_string_equal(verb_to_string((Verb)i), verbs[i]);

	assert_null(proto_error_to_string(_PROTO_ERROR_MAX));
	assert_null(proto_error_to_string((ProtoError)-1));
	assert_null(verb_to_string(_VERB_MAX));
	assert_null(verb_to_string((Verb)-1));
}

static void test_check_parses_alone_and_refuses_arguments(void **state)
{
	_cleanup_result_ Result *check = parse_ok("CHECK");

	assert_int_equal(check->req.verb, VERB_CHECK);
	expect_error("CHECK now", PROTO_BAD_REQUEST, "CHECK takes no arguments");
}

static void test_ping_and_status_parse(void **state)
{
	_cleanup_result_ Result *ping = parse_ok("PING");
	_cleanup_result_ Result *status = parse_ok("STATUS");

	assert_int_equal(ping->req.verb, VERB_PING);
	assert_null(ping->req.arg);
	assert_int_equal(status->req.verb, VERB_STATUS);
	assert_null(status->req.arg);
}

static void test_ping_and_status_reject_arguments(void **state)
{
	expect_error("PING x", PROTO_BAD_REQUEST, "PING takes no arguments");
	expect_error("PING PING", PROTO_BAD_REQUEST, "PING takes no arguments");
	expect_error("STATUS all", PROTO_BAD_REQUEST, "STATUS takes no arguments");
	expect_error("STATUS --json", PROTO_BAD_REQUEST, "STATUS takes no arguments");
	expect_error("CACHE now", PROTO_BAD_REQUEST, "CACHE takes no arguments");
}

static void test_sign_target_only(void **state)
{
	_cleanup_result_ Result *res = parse_ok("SIGN /media/private/a%20b.pdf");

	assert_int_equal(res->req.verb, VERB_SIGN);
	assert_string_equal(res->req.arg, "/media/private/a%20b.pdf");
	assert_ptr_equal(res->req.arg, res->line + 5);
	assert_false(res->req.has_ttl);
	assert_false(res->req.has_expires);
	assert_null(res->req.ip);
	assert_false(res->req.revoke);
}

static void test_sign_absolute_url_and_raw_utf8_target(void **state)
{
	_cleanup_result_ Result *url = parse_ok("SIGN https://cdn.example.com:8443/media/x");
	_cleanup_result_ Result *utf8 = parse_ok("SIGN /media/\xc3\xa9t\xc3\xa9.txt ttl=5");

	assert_string_equal(url->req.arg, "https://cdn.example.com:8443/media/x");
	assert_string_equal(utf8->req.arg, "/media/\xc3\xa9t\xc3\xa9.txt");
	assert_true(utf8->req.has_ttl);
	assert_true(utf8->req.ttl == 5);
}

static void test_sign_options_in_any_order(void **state)
{
	_cleanup_result_ Result *a = parse_ok("SIGN /a ttl=60 ip=192.0.2.7");
	_cleanup_result_ Result *b = parse_ok("SIGN /a ip=192.0.2.7 ttl=60");
	_cleanup_result_ Result *c = parse_ok("SIGN /a expires=1700000000 ip=::1");
	_cleanup_result_ Result *d = parse_ok("SIGN /a ip=::1 expires=1700000000");

	for (Result **r = (Result *[]){ a, b, NULL }; *r; r++) {
		assert_string_equal((*r)->req.arg, "/a");
		assert_true((*r)->req.has_ttl);
		assert_true((*r)->req.ttl == 60);
		assert_false((*r)->req.has_expires);
		assert_string_equal((*r)->req.ip, "192.0.2.7");
	}
	for (Result **r = (Result *[]){ c, d, NULL }; *r; r++) {
		assert_string_equal((*r)->req.arg, "/a");
		assert_false((*r)->req.has_ttl);
		assert_true((*r)->req.has_expires);
		assert_true((*r)->req.expires == 1700000000);
		assert_string_equal((*r)->req.ip, "::1");
	}
}

static void test_sign_grant_and_verify_cookie(void **state)
{
	_cleanup_result_ Result *path = parse_ok("SIGN /m/d/ grant=path ttl=60");
	_cleanup_result_ Result *cookie = parse_ok("SIGN /m/d/ ip=::1 grant=cookie");
	_cleanup_result_ Result *file = parse_ok("SIGN /m/d/");
	_cleanup_result_ Result *verify = parse_ok("VERIFY /m/d/a cookie=1.2.3.abc ip=::1");
	_cleanup_result_ Result *plain = parse_ok("VERIFY /m/d/a");

	assert_int_equal(path->req.grant, GRANT_PATH);
	assert_true(path->req.has_ttl);
	assert_int_equal(cookie->req.grant, GRANT_COOKIE);
	assert_string_equal(cookie->req.ip, "::1");
	assert_int_equal(file->req.grant, GRANT_NONE);
	assert_string_equal(verify->req.cookie, "1.2.3.abc");
	assert_string_equal(verify->req.ip, "::1");
	assert_null(plain->req.cookie);

	expect_error("SIGN /m/d/ grant=file", PROTO_BAD_REQUEST, "grant= takes path or cookie");
	expect_error("SIGN /m/d/ grant=", PROTO_BAD_REQUEST, "grant= takes path or cookie");
	expect_error("SIGN /m/d/ grant=path grant=path", PROTO_BAD_REQUEST, "grant= given twice");
	expect_error("VERIFY /m/d/a cookie=a cookie=b", PROTO_BAD_REQUEST, "cookie= given twice");
	expect_error("VERIFY /m/d/a grant=path", PROTO_BAD_REQUEST, "VERIFY takes ip=, cookie=");
}

static void test_sign_ttl_may_be_zero_or_negative(void **state)
{
	/* The parser only reads the number; the caller answers bad-ttl. */
	static const struct {
		const char *line;
		int64_t ttl;
	} cases[] = {
		{ "SIGN /a ttl=0", 0 },
		{ "SIGN /a ttl=-5", -5 },
		{ "SIGN /a ttl=-0", 0 },
		{ "SIGN /a ttl=007", 7 },
		{ "SIGN /a ttl=9223372036854775807", INT64_MAX },
		{ "SIGN /a ttl=-9223372036854775808", INT64_MIN },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_result_ Result *res = parse_ok(cases[i].line);

		assert_true(res->req.has_ttl);
		assert_true(res->req.ttl == cases[i].ttl);
	}
}

static void test_sign_ttl_rejects_non_numbers(void **state)
{
	static const char *const lines[] = {
		"SIGN /a ttl=",    "SIGN /a ttl=abc", "SIGN /a ttl=1.5",      "SIGN /a ttl=+5",
		"SIGN /a ttl=-",   "SIGN /a ttl=--1", "SIGN /a ttl=0x10",     "SIGN /a ttl=5s",
		"SIGN /a ttl=1e3", "SIGN /a ttl=5=5", "SIGN /a ttl=\xd9\xa5",
	};

	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		expect_error(lines[i], PROTO_BAD_TTL, "not a whole number");
}

static void test_sign_ttl_out_of_int64_range(void **state)
{
	expect_error("SIGN /a ttl=9223372036854775808", PROTO_BAD_TTL, "out of range");
	expect_error("SIGN /a ttl=-9223372036854775809", PROTO_BAD_TTL, "out of range");
	expect_error("SIGN /a ttl=99999999999999999999999999", PROTO_BAD_TTL, "out of range");
}

static void test_sign_expires(void **state)
{
	_cleanup_result_ Result *zero = parse_ok("SIGN /a expires=0");
	_cleanup_result_ Result *max = parse_ok("SIGN /a expires=9223372036854775807");

	assert_true(zero->req.has_expires);
	assert_true(zero->req.expires == 0);
	assert_true(max->req.expires == INT64_MAX);

	expect_error("SIGN /a expires=", PROTO_BAD_TTL, "not a unix time");
	expect_error("SIGN /a expires=-1", PROTO_BAD_TTL, "not a unix time");
	expect_error("SIGN /a expires=+1", PROTO_BAD_TTL, "not a unix time");
	expect_error("SIGN /a expires=tomorrow", PROTO_BAD_TTL, "not a unix time");
	expect_error("SIGN /a expires=17e8", PROTO_BAD_TTL, "not a unix time");
	expect_error("SIGN /a expires=9223372036854775808", PROTO_BAD_TTL, "out of range");
	expect_error("SIGN /a expires=18446744073709551616", PROTO_BAD_TTL, "out of range");
}

static void test_sign_ttl_and_expires_are_exclusive(void **state)
{
	expect_error("SIGN /a ttl=60 expires=1700000000", PROTO_BAD_REQUEST,
	             "ttl= and expires= are exclusive");
	expect_error("SIGN /a expires=1700000000 ttl=60", PROTO_BAD_REQUEST,
	             "ttl= and expires= are exclusive");
	expect_error("SIGN /a expires=1700000000 ip=::1 ttl=60", PROTO_BAD_REQUEST,
	             "ttl= and expires= are exclusive");
}

static void test_sign_rejects_duplicated_options(void **state)
{
	expect_error("SIGN /a ttl=60 ttl=60", PROTO_BAD_REQUEST, "ttl= given twice");
	expect_error("SIGN /a ttl=60 ip=::1 ttl=5", PROTO_BAD_REQUEST, "ttl= given twice");
	expect_error("SIGN /a expires=1 expires=2", PROTO_BAD_REQUEST, "expires= given twice");
	expect_error("SIGN /a ip=::1 ip=::1", PROTO_BAD_REQUEST, "ip= given twice");
	expect_error("VERIFY /a ip=::1 ip=127.0.0.1", PROTO_BAD_REQUEST, "ip= given twice");
}

static void test_sign_unknown_option_is_named(void **state)
{
	expect_error("SIGN /a foo=1", PROTO_BAD_REQUEST, "unknown option \"foo\"");
	/* Option names are lower-case, like the verbs are upper-case. */
	expect_error("SIGN /a TTL=5", PROTO_BAD_REQUEST, "unknown option \"TTL\"");
	expect_error("SIGN /a =5", PROTO_BAD_REQUEST, "unknown option \"\"");
	expect_error("SIGN /a ttl=5 kid=3", PROTO_BAD_REQUEST, "unknown option \"kid\"");
	/* Non-ASCII is not echoed back raw. */
	expect_error("SIGN /a t\xc3\xa9=5", PROTO_BAD_REQUEST, "unknown option \"t??\"");
	/* A long name is cut, so the message stays one short line. */
	expect_error("SIGN /a aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1",
	             PROTO_BAD_REQUEST, "unknown option \"aaaaaaaaaaaaaaaaaaaaaaaa...\"");
}

static void test_unknown_option_value_is_not_echoed(void **state)
{
	_cleanup_result_ Result *res = parse("SIGN /a secret=hunter2");

	assert_int_equal(res->r, -EINVAL);
	assert_int_equal(res->code, PROTO_BAD_REQUEST);
	assert_non_null(strstr(res->message, "\"secret\""));
	assert_null(strstr(res->message, "hunter2"));
}

static void test_sign_extra_argument_is_named(void **state)
{
	expect_error("SIGN /a /b", PROTO_BAD_REQUEST, "unexpected argument \"/b\"");
	expect_error("SIGN /a ttl=5 revoke", PROTO_BAD_REQUEST, "unexpected argument \"revoke\"");
	expect_error("VERIFY /a /b", PROTO_BAD_REQUEST, "unexpected argument \"/b\"");
}

static void test_sign_needs_a_target(void **state)
{
	expect_error("SIGN", PROTO_BAD_REQUEST, "SIGN needs a target");
	expect_error("SIGN ttl=60", PROTO_BAD_REQUEST, "before its options");
	expect_error("SIGN ip=::1 /a", PROTO_BAD_REQUEST, "before its options");
	expect_error("SIGN expires=1", PROTO_BAD_REQUEST, "before its options");
}

static void test_sign_rejects_bad_ip(void **state)
{
	static const char *const lines[] = {
		"SIGN /a ip=",
		"SIGN /a ip=1.2.3",
		"SIGN /a ip=1.2.3.4.5",
		"SIGN /a ip=256.1.1.1",
		/* Leading zeros could be read as octal elsewhere: refused. */
		"SIGN /a ip=001.2.3.4",
		"SIGN /a ip=0x7f.0.0.1",
		"SIGN /a ip=fe80::1%eth0",
		"SIGN /a ip=192.0.2.0/24",
		"SIGN /a ip=[::1]",
		"SIGN /a ip=1:2:3:4:5:6:7:8:9",
		"SIGN /a ip=::ffff:1.2.3",
		"SIGN /a ip=example.com",
		"SIGN /a ip=::1=",
		"VERIFY /a ip=localhost",
	};

	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		expect_error(lines[i], PROTO_BAD_IP, "ip= is not an IPv4 or IPv6 address");
}

static void test_ip_is_stored_as_nginx_prints_remote_addr(void **state)
{
	/* Obtained from nginx 1.22.1 (Debian 12): realip module with
	 * "set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;" and
	 * "return 200 $remote_addr;", queried with curl -H "X-Real-IP: <in>". */
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "192.0.2.7", "192.0.2.7" },
		{ "0:0:0:0:0:0:0:1", "::1" },
		{ "::", "::" },
		{ "1::", "1::" },
		{ "fe80::1", "fe80::1" },
		{ "2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
		{ "2001:db8:0:0:0:0:2:1", "2001:db8::2:1" },
		{ "0001:0db8::00ff", "1:db8::ff" },
		{ "1:0:0:2:0:0:0:3", "1:0:0:2::3" },
		{ "1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0" },
		{ "0:0:1:0:0:1:0:0", "::1:0:0:1:0:0" },
		{ "::ffff:102:304", "::ffff:1.2.3.4" },
		{ "::ffff:1:1", "::ffff:0.1.0.1" },
		{ "::ffff:0:102:304", "::ffff:0:102:304" },
		{ "::0:1.2.3.4", "::1.2.3.4" },
		{ "::1:1", "::0.1.0.1" },
		{ "0:0:0:0:0:0:1:0", "::0.1.0.0" },
		{ "::2", "::2" },
		{ "::101", "::101" },
		/* glibc's inet_ntop prints "::102" here; nginx does not. */
		{ "::102", "::0.0.1.2" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char line[128];
		_cleanup_result_ Result *res = NULL;

		assert_true(snprintf(line, sizeof(line), "SIGN /a ip=%s", cases[i].in) <
		            (int)sizeof(line));
		res = parse_ok(line);
		assert_non_null(res->req.ip);
		if (!streq(res->req.ip, cases[i].out))
			print_error("ip=%s: got %s, nginx prints %s\n", cases[i].in, res->req.ip,
			            cases[i].out);
		assert_string_equal(res->req.ip, cases[i].out);
	}
}

static void test_ip_longest_form_fits(void **state)
{
	_cleanup_result_ Result *res =
	    parse_ok("VERIFY /a ip=FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF");
	_cleanup_result_ Result *v4 = parse_ok("VERIFY /a ip=::ffff:255.255.255.255");

	assert_string_equal(res->req.ip, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_string_equal(v4->req.ip, "::ffff:255.255.255.255");
}

static void test_verify_parses(void **state)
{
	_cleanup_result_ Result *a = parse_ok("VERIFY /media/private/a?token=abc&expires=1&kid=2");
	_cleanup_result_ Result *b =
	    parse_ok("VERIFY https://example.com/m/x?token=abc ip=10.0.0.1");

	assert_int_equal(a->req.verb, VERB_VERIFY);
	assert_string_equal(a->req.arg, "/media/private/a?token=abc&expires=1&kid=2");
	assert_null(a->req.ip);
	assert_int_equal(b->req.verb, VERB_VERIFY);
	assert_string_equal(b->req.arg, "https://example.com/m/x?token=abc");
	assert_string_equal(b->req.ip, "10.0.0.1");
	assert_false(b->req.has_ttl);
	assert_false(b->req.has_expires);
}

static void test_verify_rejects_sign_options_and_missing_url(void **state)
{
	expect_error("VERIFY", PROTO_BAD_REQUEST, "VERIFY needs a URL");
	expect_error("VERIFY ip=::1", PROTO_BAD_REQUEST, "before its options");
	expect_error("VERIFY /a ttl=5", PROTO_BAD_REQUEST, "unknown option \"ttl\"");
	expect_error("VERIFY /a expires=5", PROTO_BAD_REQUEST, "unknown option \"expires\"");
	expect_error("VERIFY /a ip=999.1.1.1", PROTO_BAD_IP, NULL);
}

static void test_rotate(void **state)
{
	_cleanup_result_ Result *plain = parse_ok("ROTATE");
	_cleanup_result_ Result *revoke = parse_ok("ROTATE revoke");

	assert_int_equal(plain->req.verb, VERB_ROTATE);
	assert_false(plain->req.revoke);
	assert_int_equal(revoke->req.verb, VERB_ROTATE);
	assert_true(revoke->req.revoke);

	expect_error("ROTATE now", PROTO_BAD_REQUEST, "ROTATE takes only \"revoke\"");
	expect_error("ROTATE REVOKE", PROTO_BAD_REQUEST, "ROTATE takes only \"revoke\"");
	expect_error("ROTATE revoke revoke", PROTO_BAD_REQUEST, "ROTATE takes only \"revoke\"");
	expect_error("ROTATE revoke=1", PROTO_BAD_REQUEST, "ROTATE takes only \"revoke\"");
}

static void test_import(void **state)
{
	_cleanup_result_ Result *res =
	    parse_ok("IMPORT ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

	assert_int_equal(res->req.verb, VERB_IMPORT);
	assert_string_equal(res->req.arg,
	                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

	expect_error("IMPORT", PROTO_BAD_REQUEST, "IMPORT needs the legacy secret");
	expect_error("IMPORT abc def", PROTO_BAD_REQUEST, "exactly one argument");
	/* Standard base64 and padding are not base64url. */
	expect_error("IMPORT abc+def", PROTO_BAD_REQUEST, "not base64url");
	expect_error("IMPORT abc/def", PROTO_BAD_REQUEST, "not base64url");
	expect_error("IMPORT abcd==", PROTO_BAD_REQUEST, "not base64url");
	expect_error("IMPORT abc\xc3\xa9", PROTO_BAD_REQUEST, "not base64url");
}

static void test_import_never_echoes_the_secret(void **state)
{
	static const char *const lines[] = { "IMPORT s3cr3tVALUE+", "IMPORT s3cr3tVALUE extra",
		                             "IMPORT s3cr3tVALUE=" };

	for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
		_cleanup_result_ Result *res = parse(lines[i]);

		assert_int_equal(res->r, -EINVAL);
		assert_null(strstr(res->message, "s3cr3t"));
	}
}

static void test_verbs_are_case_sensitive_and_exact(void **state)
{
	static const char *const lines[] = {
		"ping", "Ping",   "sign /a",        "Status", "PINGX",
		"PIN",  "HELO x", "GET / HTTP/1.1", "SIGN/a", "\xef\xbb\xbfPING"
	};

	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		expect_error(lines[i], PROTO_UNKNOWN_VERB, "unknown verb");
}

static void test_spacing_must_be_single_spaces(void **state)
{
	expect_error(" PING", PROTO_BAD_REQUEST, "leading space");
	expect_error(" ", PROTO_BAD_REQUEST, "leading space");
	expect_error("PING ", PROTO_BAD_REQUEST, "trailing space");
	expect_error("SIGN /a ", PROTO_BAD_REQUEST, "trailing space");
	expect_error("SIGN ", PROTO_BAD_REQUEST, "trailing space");
	expect_error("SIGN  /a", PROTO_BAD_REQUEST, "two spaces in a row");
	expect_error("SIGN /a  ttl=5", PROTO_BAD_REQUEST, "two spaces in a row");
	expect_error("SIGN\t/a", PROTO_BAD_REQUEST, "tab");
	expect_error("SIGN /a\tttl=5", PROTO_BAD_REQUEST, "tab");
	expect_error("PING\t", PROTO_BAD_REQUEST, "tab");
}

static void test_control_bytes_are_refused_anywhere(void **state)
{
	static const char *const lines[] = { "SIGN /a\x01",   "SIGN /a\x1b[31m",   "SIGN /a\x7f",
		                             "PING\r",        "SIGN /a\rb",        "\x01PING",
		                             "IMPORT ab\x0c", "SIGN /a ip=::1\x0b" };

	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		expect_error(lines[i], PROTO_BAD_REQUEST, "control byte");
}

/* The line check looks at eight bytes at a time: every byte value at every
 * offset of a long line (inside and across words, and in the tail) must get
 * the same verdict as the rule says byte by byte. */
static void test_every_byte_value_at_every_offset(void **state)
{
	const char *base = "SIGN /abcdefghijklmnopqrstuvwxyz0123456";
	size_t len = strlen(base);

	for (size_t pos = STRLEN("SIGN /"); pos < len; pos++)
		for (unsigned b = 0; b < 256; b++) {
			_cleanup_free_ char *line = strdup(base);
			_cleanup_result_ Result *res = NULL;

			if (b == ' ')
				continue; /* the spacing rules, tested above */
			assert_non_null(line);
			line[pos] = (char)b;
			res = parse_n(line, len);
			if (b < 0x20 || b == 0x7f) {
				assert_int_equal(res->r, -EINVAL);
				assert_int_equal(res->code, PROTO_BAD_REQUEST);
				assert_non_null(
				    strstr(res->message, b == '\t' ? "tab" : "control byte"));
			} else {
				assert_int_equal(res->r, 0);
				assert_int_equal(res->req.verb, VERB_SIGN);
			}
		}
}

static void test_embedded_nul_is_refused(void **state)
{
	/* Would otherwise cut the target short: "SIGN /public\0/../private". */
	_cleanup_result_ Result *a = parse_n("SIGN /a\0b", 9);
	_cleanup_result_ Result *b = parse_n("PING\0", 5);
	_cleanup_result_ Result *c = parse_n("\0", 1);

	for (Result **r = (Result *[]){ a, b, c, NULL }; *r; r++) {
		assert_int_equal((*r)->r, -EINVAL);
		assert_int_equal((*r)->code, PROTO_BAD_REQUEST);
		assert_non_null(strstr((*r)->message, "control byte"));
	}
}

static void test_empty_line_is_bad_request(void **state)
{
	expect_error("", PROTO_BAD_REQUEST, "empty request");
}

static void test_line_length_limit(void **state)
{
	_cleanup_free_ char *line = malloc(PROTO_LINE_MAX + 1);
	_cleanup_result_ Result *longest = NULL, *too_long = NULL;

	assert_non_null(line);
	memcpy(line, "SIGN /", 6);
	memset(line + 6, 'a', PROTO_LINE_MAX - 6);
	line[PROTO_LINE_MAX] = '\0';

	/* PROTO_LINE_MAX includes the LF: PROTO_LINE_MAX - 1 bytes of content. */
	longest = parse_n(line, PROTO_LINE_MAX - 1);
	assert_int_equal(longest->r, 0);
	assert_int_equal(strlen(longest->req.arg), PROTO_LINE_MAX - 1 - 5);

	too_long = parse_n(line, PROTO_LINE_MAX);
	assert_int_equal(too_long->r, -EINVAL);
	assert_int_equal(too_long->code, PROTO_LINE_TOO_LONG);
	assert_one_line_message(too_long->message);
	/* Refused before the buffer is touched. */
	assert_int_equal(memcmp(too_long->line, line, PROTO_LINE_MAX), 0);
	assert_int_equal(too_long->line[PROTO_LINE_MAX], '\n');
}

static void test_line_is_terminated_in_place(void **state)
{
	/* The byte after the line (the LF's place) is the NUL: the target does
	 * not run into whatever follows in the read buffer. */
	char buf[] = "SIGN /a ttl=5\nPING\n";
	Request req;
	ProtoError code;
	const char *message;

	assert_int_equal(proto_parse_line(buf, 13, &req, &code, &message), 0);
	assert_string_equal(req.arg, "/a");
	assert_true(req.ttl == 5);
	assert_memory_equal(buf + 14, "PING\n", 5);
}

/* xorshift64*: fixed seed, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void check_random_line(const char *bytes, size_t len)
{
	_cleanup_result_ Result *res = parse_n(bytes, len);

	if (res->r == 0) {
		assert_true(res->req.verb < _VERB_MAX);
		assert_false(res->req.has_ttl && res->req.has_expires);
		if (res->req.arg) {
			assert_true(res->req.arg > res->line);
			assert_true(res->req.arg + strlen(res->req.arg) <= res->line + len);
			assert_true(res->req.arg[0] != '\0');
		}
		if (res->req.ip)
			assert_ptr_equal(res->req.ip, res->req.ip_buf);
		return;
	}
	assert_int_equal(res->r, -EINVAL);
	assert_true(res->code < _PROTO_ERROR_MAX);
	assert_one_line_message(res->message);
}

static void test_random_bytes_never_crash(void **state)
{
	char buf[512];

	for (int i = 0; i < 100000; i++) {
		size_t len = rng() % sizeof(buf);

		for (size_t j = 0; j < len; j++)
			buf[j] = (char)(rng() & 0xff);
		check_random_line(buf, len);
	}
}

static void test_random_token_lines_never_crash(void **state)
{
	/* Pure noise rarely gets past the verb; lines built from protocol
	 * words reach every option parser. */
	static const char *const tokens[] = {
		"PING",      "SIGN",
		"VERIFY",    "ROTATE",
		"IMPORT",    "STATUS",
		"revoke",    "/a",
		"http://x/", "ttl=",
		"ttl=5",     "ttl=-1",
		"expires=",  "expires=9",
		"ip=",       "ip=::1",
		"ip=1.2.",   "=",
		"x=y",       "abc_-",
		"\t",        "\x01",
		"\xc3\xa9",  "9999999999999999999",
		"ffff:",     "::ffff:1.2.3.4",
	};
	char buf[256];

	for (int i = 0; i < 100000; i++) {
		size_t len = 0, n = rng() % 7;

		for (size_t t = 0; t < n; t++) {
			const char *tok = tokens[rng() % ELEMENTSOF(tokens)];
			size_t tl = strlen(tok);

			if (len + tl + 2 > sizeof(buf))
				break;
			memcpy(buf + len, tok, tl);
			len += tl;
			/* Mostly one space, sometimes none or two. */
			switch (rng() % 8) {
			case 0:
				break;
			case 1:
				buf[len++] = ' ';
				buf[len++] = ' ';
				break;
			default:
				if (t + 1 < n)
					buf[len++] = ' ';
			}
		}
		check_random_line(buf, len);
	}
}

static void test_format_error(void **state)
{
	char buf[256];
	size_t n;

	n = proto_format_error(buf, sizeof(buf), PROTO_BAD_TTL, "ttl= is out of range");
	assert_string_equal(buf, "ERR bad-ttl ttl= is out of range\n");
	assert_int_equal(n, strlen(buf));

	n = proto_format_error(buf, sizeof(buf), PROTO_LINE_TOO_LONG, "x");
	assert_string_equal(buf, "ERR line-too-long x\n");
	assert_int_equal(n, strlen(buf));
}

static void test_format_error_replaces_control_bytes(void **state)
{
	char buf[256];
	size_t n;

	n = proto_format_error(buf, sizeof(buf), PROTO_INTERNAL,
	                       "a\nb\rc\x01"
	                       "d\x7f"
	                       "e\tf");
	assert_string_equal(buf, "ERR internal a?b?c?d?e?f\n");
	assert_int_equal(n, strlen(buf));
	/* UTF-8 is not a control byte. */
	n = proto_format_error(buf, sizeof(buf), PROTO_BAD_TARGET, "caf\xc3\xa9");
	assert_string_equal(buf, "ERR bad-target caf\xc3\xa9\n");
}

static void test_format_error_truncates_and_keeps_the_newline(void **state)
{
	char buf[32];
	size_t n;

	/* "ERR bad-request " is 16 bytes; 16 + 14 + LF + NUL = 32. */
	n = proto_format_error(buf, sizeof(buf), PROTO_BAD_REQUEST,
	                       "0123456789abcdefghijklmnopqrstuvwxyz");
	assert_string_equal(buf, "ERR bad-request 0123456789abcd\n");
	assert_int_equal(n, 31);

	/* Exactly fits. */
	n = proto_format_error(buf, sizeof(buf), PROTO_BAD_REQUEST, "0123456789abcd");
	assert_string_equal(buf, "ERR bad-request 0123456789abcd\n");
	assert_int_equal(n, 31);

	/* A cut never splits a UTF-8 sequence: room for 14 bytes, the 14th
	 * would be the first half of "é". */
	n = proto_format_error(buf, sizeof(buf), PROTO_BAD_REQUEST, "0123456789abc\xc3\xa9");
	assert_string_equal(buf, "ERR bad-request 0123456789abc\n");
	assert_int_equal(n, 30);

	/* Room for the prefix and the LF only. */
	n = proto_format_error(buf, 18, PROTO_BAD_REQUEST, "message");
	assert_string_equal(buf, "ERR bad-request \n");
	assert_int_equal(n, 17);
}

static void test_format_error_too_small_buffer(void **state)
{
	char buf[32];

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(proto_format_error(buf, 17, PROTO_BAD_REQUEST, "message"), 0);
	assert_string_equal(buf, "");

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(proto_format_error(buf, 1, PROTO_BAD_REQUEST, "message"), 0);
	assert_int_equal(buf[0], '\0');

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(proto_format_error(buf, 0, PROTO_BAD_REQUEST, "message"), 0);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(proto_format_error(NULL, 0, PROTO_BAD_REQUEST, "message"), 0);
}

static void test_format_error_without_message(void **state)
{
	char buf[64];

	proto_format_error(buf, sizeof(buf), PROTO_UNAVAILABLE, NULL);
	assert_string_equal(buf, "ERR unavailable no details\n");
	proto_format_error(buf, sizeof(buf), PROTO_UNAVAILABLE, "");
	assert_string_equal(buf, "ERR unavailable no details\n");
}

static void test_format_error_of_every_parser_message(void **state)
{
	/* Whatever the parser says fits a normal answer buffer whole. */
	static const char *const lines[] = {
		"",       "x",    " PING",         "PING ",        "PING  x",       "PING\t",
		"PING x", "SIGN", "SIGN /a ttl=x", "SIGN /a ip=x", "SIGN /a zzz=1", "IMPORT a+"
	};
	char buf[256];

	for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
		_cleanup_result_ Result *res = parse(lines[i]);
		size_t n;

		assert_int_equal(res->r, -EINVAL);
		n = proto_format_error(buf, sizeof(buf), res->code, res->message);
		assert_true(n > 0 && n < sizeof(buf) - 1);
		assert_true(strncmp(buf, "ERR ", 4) == 0);
		assert_non_null(strstr(buf, res->message));
		assert_int_equal(buf[n - 1], '\n');
	}
}

static void assert_json_escape(const char *in, const char *expected)
{
	_cleanup_free_ char *out = NULL;

	assert_int_equal(json_escape(in, &out), 0);
	assert_string_equal(out, expected);
}

static void test_json_escape(void **state)
{
	/* RFC 8259 section 7: '"' and '\' must be escaped, and U+0000-U+001F. */
	assert_json_escape("", "");
	assert_json_escape("nginx: [emerg] ok", "nginx: [emerg] ok");
	assert_json_escape("a\"b\\c", "a\\\"b\\\\c");
	assert_json_escape("\n\t\x01\x1f\x7f", "\\u000a\\u0009\\u0001\\u001f\\u007f");
	assert_json_escape("/ stays", "/ stays");
}

static void test_json_escape_passes_utf8_and_replaces_invalid_bytes(void **state)
{
	/* é (2 bytes), € (3), U+1F600 (4), U+10FFFF (highest). */
	assert_json_escape("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
	                   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
	/* Per RFC 3629: a lone continuation, a bad lead byte, a truncated
	 * sequence, an overlong '/', a surrogate, and past U+10FFFF. */
	assert_json_escape("\x80", "\\ufffd");
	assert_json_escape("a\xffz", "a\\ufffdz");
	assert_json_escape("\xc3", "\\ufffd");
	assert_json_escape("\xe2\x82", "\\ufffd\\ufffd");
	assert_json_escape("\xc0\xaf", "\\ufffd\\ufffd");
	assert_json_escape("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd");
	assert_json_escape("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");
	assert_json_escape("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_and_verb_names_are_the_wire_spelling),
		cmocka_unit_test(test_ping_and_status_parse),
		cmocka_unit_test(test_check_parses_alone_and_refuses_arguments),
		cmocka_unit_test(test_ping_and_status_reject_arguments),
		cmocka_unit_test(test_sign_target_only),
		cmocka_unit_test(test_sign_absolute_url_and_raw_utf8_target),
		cmocka_unit_test(test_sign_options_in_any_order),
		cmocka_unit_test(test_sign_grant_and_verify_cookie),
		cmocka_unit_test(test_sign_ttl_may_be_zero_or_negative),
		cmocka_unit_test(test_sign_ttl_rejects_non_numbers),
		cmocka_unit_test(test_sign_ttl_out_of_int64_range),
		cmocka_unit_test(test_sign_expires),
		cmocka_unit_test(test_sign_ttl_and_expires_are_exclusive),
		cmocka_unit_test(test_sign_rejects_duplicated_options),
		cmocka_unit_test(test_sign_unknown_option_is_named),
		cmocka_unit_test(test_unknown_option_value_is_not_echoed),
		cmocka_unit_test(test_sign_extra_argument_is_named),
		cmocka_unit_test(test_sign_needs_a_target),
		cmocka_unit_test(test_sign_rejects_bad_ip),
		cmocka_unit_test(test_ip_is_stored_as_nginx_prints_remote_addr),
		cmocka_unit_test(test_ip_longest_form_fits),
		cmocka_unit_test(test_verify_parses),
		cmocka_unit_test(test_verify_rejects_sign_options_and_missing_url),
		cmocka_unit_test(test_rotate),
		cmocka_unit_test(test_import),
		cmocka_unit_test(test_import_never_echoes_the_secret),
		cmocka_unit_test(test_verbs_are_case_sensitive_and_exact),
		cmocka_unit_test(test_spacing_must_be_single_spaces),
		cmocka_unit_test(test_control_bytes_are_refused_anywhere),
		cmocka_unit_test(test_every_byte_value_at_every_offset),
		cmocka_unit_test(test_embedded_nul_is_refused),
		cmocka_unit_test(test_empty_line_is_bad_request),
		cmocka_unit_test(test_line_length_limit),
		cmocka_unit_test(test_line_is_terminated_in_place),
		cmocka_unit_test(test_random_bytes_never_crash),
		cmocka_unit_test(test_random_token_lines_never_crash),
		cmocka_unit_test(test_format_error),
		cmocka_unit_test(test_format_error_replaces_control_bytes),
		cmocka_unit_test(test_format_error_truncates_and_keeps_the_newline),
		cmocka_unit_test(test_format_error_too_small_buffer),
		cmocka_unit_test(test_format_error_without_message),
		cmocka_unit_test(test_format_error_of_every_parser_message),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_json_escape_passes_utf8_and_replaces_invalid_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
