/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base64url.h"
#include "json.h"
#include "util.h"

/* ---- securelinkctl helpers ---- */

static void test_base64url_rfc4648_vectors(void **state)
{
	/* RFC 4648, section 10, without the padding; and the two characters
	 * where base64url differs from base64 ("+/8=" there). */
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" },
		{ "f", "Zg" },
		{ "fo", "Zm8" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
		{ "\xfb\xff", "-_8" },
	};
	char out[32];

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		size_t n = strlen(v[i].in);

		assert_int_equal(base64url_length(n), strlen(v[i].out));
		assert_int_equal(base64url_encode(v[i].in, n, out), strlen(v[i].out));
		assert_string_equal(out, v[i].out);
	}
}

static void test_json_parses_status_shape(void **state)
{
	static const char text[] =
	    "{\"active_kid\":42,\"next_rotation\":1700000000,\"mode\":\"local\",\"keys\":["
	    "{\"kid\":41,\"state\":\"retired\",\"legacy\":false,\"published\":1,"
	    "\"activated\":2,\"retired\":3,\"drop_after\":null}],"
	    "\"nginx\":{\"last_reload\":null,\"ok\":false,\"error\":\"nginx: [emerg] \\\"x\\\"\\n"
	    "\\u00e9\\ud83d\\ude00\"},\"counters\":{\"signed\":18446744073709551615,"
	    "\"errors\":0,\"rotations\":1}}";
	_cleanup_(json_freep) Json *j = NULL;
	const Json *keys, *k;
	uint64_t v;

	assert_int_equal(json_parse(text, &j), 0);
	assert_int_equal(json_get_u64(json_get(j, "active_kid"), &v), 0);
	assert_int_equal(v, 42);
	keys = json_get(j, "keys");
	assert_int_equal(keys->type, JSON_ARRAY);
	assert_int_equal(keys->n, 1);
	k = keys->items[0];
	assert_string_equal(json_get(k, "state")->text, "retired");
	assert_int_equal(json_get(k, "legacy")->type, JSON_BOOLEAN);
	assert_false(json_get(k, "legacy")->boolean);
	assert_int_equal(json_get(k, "drop_after")->type, JSON_NULL);
	assert_int_equal(json_get_u64(json_get(k, "drop_after"), &v), -EINVAL);
	/* Escapes, and U+1F600 from a surrogate pair, as UTF-8. */
	assert_string_equal(json_get(json_get(j, "nginx"), "error")->text,
	                    "nginx: [emerg] \"x\"\n\xc3\xa9\xf0\x9f\x98\x80");
	assert_int_equal(json_get_u64(json_get(json_get(j, "counters"), "signed"), &v), 0);
	assert_true(v == UINT64_MAX);
	assert_null(json_get(j, "missing"));
	assert_null(json_get(keys, "kid"));
}

static void test_json_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"{\"a\":}",
		"{\"a\" 1}",
		"{a:1}",
		"[1,]",
		"[1 2]",
		"\"abc",
		"\"\\x\"",
		"\"\\u12\"",
		"\"\\u0000\"",
		"\"\\udc00\"",
		"\"\\ud800\"",
		"\"a\tb\"",
		"01",
		"1.",
		"-",
		"1e",
		"tru",
		"nul",
		"{} x",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	Json *j = NULL;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = json_parse(bad[i], &j);

		if (r != -EINVAL)
			fail_msg("json_parse(\"%s\") = %d, want -EINVAL", bad[i], r);
		assert_null(j);
	}
}

static void test_json_u64_refuses_non_integers(void **state)
{
	static const char *const bad[] = { "-1", "1.5", "1e3", "18446744073709551616", "\"1\"" };
	uint64_t v;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_(json_freep) Json *j = NULL;

		assert_int_equal(json_parse(bad[i], &j), 0);
		assert_true(json_get_u64(j, &v) < 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64url_rfc4648_vectors),
		cmocka_unit_test(test_json_parses_status_shape),
		cmocka_unit_test(test_json_rejects_malformed),
		cmocka_unit_test(test_json_u64_refuses_non_integers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
