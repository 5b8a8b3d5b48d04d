/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util.h"

static void test_parse_u64_accepts_plain_decimal(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_parse_u64_rejects_sign_space_and_junk(void **state)
{
	uint64_t v = 7;

	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_u64("+1", &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", &v), -EINVAL);
	assert_int_equal(parse_u64("1 ", &v), -EINVAL);
	assert_int_equal(parse_u64("12x", &v), -EINVAL);
	assert_int_equal(parse_u64("0x10", &v), -EINVAL);
	assert_int_equal(parse_u64(NULL, &v), -EINVAL);
	assert_int_equal(v, 7);
}

static void test_parse_u64_rejects_overflow(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
}

static void test_parse_u64_as_i64_bounds(void **state)
{
	int64_t v;

	assert_int_equal(parse_u64_as_i64("9223372036854775807", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(parse_u64_as_i64("9223372036854775808", &v), -ERANGE);
	assert_int_equal(parse_u64_as_i64("-1", &v), -EINVAL);
}

static void check_format_u64(uint64_t v)
{
	char out[20], want[32];
	size_t n = format_u64(v, out);

	snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
	if (n != strlen(want) || memcmp(out, want, n) != 0)
		fail_msg("format_u64(%s) wrote \"%.*s\"", want, (int)n, out);
}

static void test_format_u64_matches_printf(void **state)
{
	const uint64_t values[] = { 0, 7, 10, 99, 100, 1599214310, UINT64_MAX };
	uint64_t p = 1;

	for (size_t i = 0; i < ELEMENTSOF(values); i++)
		check_format_u64(values[i]);
	/* Every length, at both ends. */
	for (unsigned d = 1; d < 20; d++) {
		p *= 10;
		check_format_u64(p - 1);
		check_format_u64(p);
		check_format_u64(p + 1);
	}
	/* And a spread of values in between, against printf. */
	for (uint64_t x = 0x9e3779b97f4a7c15ULL, i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		check_format_u64(x >> (x & 63));
	}
}

static void test_parse_duration_units(void **state)
{
	usec_t d;

	assert_int_equal(parse_duration("300ms", &d), 0);
	assert_true(d == 300 * USEC_PER_MSEC);
	assert_int_equal(parse_duration("90s", &d), 0);
	assert_true(d == 90 * USEC_PER_SEC);
	assert_int_equal(parse_duration("15m", &d), 0);
	assert_true(d == 900 * USEC_PER_SEC);
	assert_int_equal(parse_duration("24h", &d), 0);
	assert_true(d == 86400 * USEC_PER_SEC);
	assert_int_equal(parse_duration("7d", &d), 0);
	assert_true(d == 7 * 86400 * USEC_PER_SEC);
	assert_int_equal(parse_duration("45", &d), 0);
	assert_true(d == 45 * USEC_PER_SEC);
}

static void test_parse_duration_rejects_bad_forms(void **state)
{
	usec_t d;

	assert_int_equal(parse_duration("3x", &d), -EINVAL);
	assert_int_equal(parse_duration("", &d), -EINVAL);
	assert_int_equal(parse_duration("h", &d), -EINVAL);
	assert_int_equal(parse_duration("1 h", &d), -EINVAL);
	assert_int_equal(parse_duration("-1s", &d), -EINVAL);
	assert_int_equal(parse_duration("1.5h", &d), -EINVAL);
	assert_int_equal(parse_duration("1hh", &d), -EINVAL);
	assert_int_equal(parse_duration("99999999999999999999d", &d), -ERANGE);
	assert_int_equal(parse_duration("999999999999d", &d), -ERANGE);
}

static void test_format_duration_is_read_back(void **state)
{
	char buf[32];
	const usec_t values[] = { 0,
		                  300 * USEC_PER_MSEC,
		                  90 * USEC_PER_SEC,
		                  15 * USEC_PER_MINUTE,
		                  24 * USEC_PER_HOUR,
		                  7 * USEC_PER_DAY,
		                  1500 * USEC_PER_MSEC };

	assert_string_equal(format_duration(buf, sizeof(buf), 24 * USEC_PER_HOUR), "1d");
	assert_string_equal(format_duration(buf, sizeof(buf), 90 * USEC_PER_SEC), "90s");
	assert_string_equal(format_duration(buf, sizeof(buf), 2 * USEC_PER_HOUR), "2h");
	for (size_t i = 0; i < ELEMENTSOF(values); i++) {
		usec_t d;

		assert_int_equal(parse_duration(format_duration(buf, sizeof(buf), values[i]), &d),
		                 0);
		assert_true(d == values[i]);
	}
}

static void test_parse_boolean(void **state)
{
	assert_int_equal(parse_boolean("yes"), 1);
	assert_int_equal(parse_boolean("On"), 1);
	assert_int_equal(parse_boolean("1"), 1);
	assert_int_equal(parse_boolean("no"), 0);
	assert_int_equal(parse_boolean("FALSE"), 0);
	assert_int_equal(parse_boolean("maybe"), -EINVAL);
	assert_int_equal(parse_boolean(""), -EINVAL);
}

static void test_strv_split_on_spaces_and_commas(void **state)
{
	_cleanup_strv_free_ char **l = NULL;

	assert_int_equal(strv_split("  a, b,,c\td ", &l), 0);
	assert_int_equal(strv_length(l), 4);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_string_equal(l[2], "c");
	assert_string_equal(l[3], "d");
	assert_null(l[4]);
}

static void test_strv_split_empty(void **state)
{
	_cleanup_strv_free_ char **l = NULL;

	assert_int_equal(strv_split(" , ", &l), 0);
	assert_int_equal(strv_length(l), 0);
}

static void test_strv_consume_appends_and_takes_over(void **state)
{
	_cleanup_strv_free_ char **l = NULL;

	assert_int_equal(strv_consume(&l, strdup("a")), 0);
	assert_int_equal(strv_consume(&l, strdup("b")), 0);
	assert_int_equal(strv_length(l), 2);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_null(l[2]);
	/* A failed strdup() arrives as NULL: out of memory, l unchanged. */
	assert_int_equal(strv_consume(&l, NULL), -ENOMEM);
	assert_int_equal(strv_length(l), 2);
}

static void test_clocks_advance(void **state)
{
	usec_t a = now_monotonic(), b = now_monotonic();

	assert_true(b >= a);
	/* Any real clock is past 2020-01-01. */
	assert_true(now_realtime() > 1577836800ULL * USEC_PER_SEC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64_accepts_plain_decimal),
		cmocka_unit_test(test_parse_u64_rejects_sign_space_and_junk),
		cmocka_unit_test(test_parse_u64_rejects_overflow),
		cmocka_unit_test(test_parse_u64_as_i64_bounds),
		cmocka_unit_test(test_format_u64_matches_printf),
		cmocka_unit_test(test_parse_duration_units),
		cmocka_unit_test(test_parse_duration_rejects_bad_forms),
		cmocka_unit_test(test_format_duration_is_read_back),
		cmocka_unit_test(test_parse_boolean),
		cmocka_unit_test(test_strv_split_on_spaces_and_commas),
		cmocka_unit_test(test_strv_split_empty),
		cmocka_unit_test(test_strv_consume_appends_and_takes_over),
		cmocka_unit_test(test_clocks_advance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
