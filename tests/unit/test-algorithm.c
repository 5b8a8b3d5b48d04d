/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "algorithm.h"
#include "util.h"

/* The state file (daemon/algorithm.c): what securelinkd reads at start to
 * know which algorithm signed before it stopped. */

static int setup_dir(void **state)
{
	char *d = strdup("/tmp/securelink-test-algorithm.XXXXXX");

	if (!d || !mkdtemp(d))
		return -1;
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	_cleanup_free_ char *path = NULL;
	char *d = *state;

	if (asprintf(&path, "%s/" ALGORITHM_STATE_FILE, d) >= 0)
		(void)unlink(path);
	(void)rmdir(d);
	free(d);
	return 0;
}

static void write_state(const char *dir, const char *text, size_t size)
{
	_cleanup_free_ char *path = NULL;
	FILE *f;

	assert_true(asprintf(&path, "%s/" ALGORITHM_STATE_FILE, dir) >= 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, size, f), size);
	assert_int_equal(fclose(f), 0);
}

static int load_text(const char *dir, const char *text, AlgorithmState *s)
{
	write_state(dir, text, strlen(text));
	return algorithm_state_load(dir, s);
}

static void test_no_file_is_enoent(void **state)
{
	AlgorithmState s;

	assert_int_equal(algorithm_state_load(*state, &s), -ENOENT);
}

static void test_valid_files(void **state)
{
	AlgorithmState s;

	assert_int_equal(load_text(*state, "hmac-sha256\n", &s), 0);
	assert_int_equal(s.signing, LINK_ALGORITHM_HMAC_SHA256);
	assert_int_equal(s.previous_until, 0);

	assert_int_equal(load_text(*state, "md5\nhmac-sha256 1796379433\n", &s), 0);
	assert_int_equal(s.signing, LINK_ALGORITHM_MD5);
	assert_int_equal(s.previous, LINK_ALGORITHM_HMAC_SHA256);
	assert_int_equal(s.previous_until, UINT64_C(1796379433) * USEC_PER_SEC);
}

/* Everything that is not what algorithm_state_save() writes. */
static void test_malformed_files_are_ebadmsg(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"md5",                                     /* no newline */
		"sha1\n",                                  /* unknown algorithm */
		"MD5\n",                                   /* names are lower case */
		"md5 \n",                                  /* trailing space */
		"hmac-sha256\nmd5\n",                      /* no time */
		"hmac-sha256\nmd5 \n",                     /* empty time */
		"hmac-sha256\nmd5 0\n",                    /* zero: none is no line */
		"hmac-sha256\nmd5 012\n",                  /* leading zero */
		"hmac-sha256\nmd5 12x\n",                  /* not a number */
		"hmac-sha256\nmd5 -12\n",                  /* negative */
		"hmac-sha256\nmd5 12",                     /* no final newline */
		"hmac-sha256\nmd5 12\nmore\n",             /* a third line */
		"hmac-sha256\nsha1 12\n",                  /* unknown previous algorithm */
		"hmac-sha256\nmd5  12\n",                  /* two spaces */
		"hmac-sha256\nmd5 99999999999999999999\n", /* beyond usec_t */
	};
	AlgorithmState s;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = load_text(*state, bad[i], &s);

		if (r != -EBADMSG)
			fail_msg("\"%s\": got %d, expected -EBADMSG", bad[i], r);
	}
}

static void test_oversized_and_binary_files_are_errors(void **state)
{
	char big[300];
	AlgorithmState s;

	memset(big, 'm', sizeof(big));
	write_state(*state, big, sizeof(big));
	assert_int_equal(algorithm_state_load(*state, &s), -EFBIG);

	write_state(*state, "md5\0\n", 5);
	assert_int_equal(algorithm_state_load(*state, &s), -EBADMSG);
}

static void test_a_directory_in_its_place_is_an_error(void **state)
{
	_cleanup_free_ char *path = NULL;
	AlgorithmState s;
	int r;

	assert_true(asprintf(&path, "%s/" ALGORITHM_STATE_FILE, (char *)*state) >= 0);
	assert_int_equal(mkdir(path, 0700), 0);
	r = algorithm_state_load(*state, &s);
	assert_int_equal(rmdir(path), 0);
	assert_true(r < 0);
	assert_int_not_equal(r, -ENOENT);
}

static void test_save_round_trips(void **state)
{
	_cleanup_free_ char *path = NULL;
	AlgorithmState s = { .signing = LINK_ALGORITHM_MD5,
		             .previous = LINK_ALGORITHM_HMAC_SHA256,
		             .previous_until = UINT64_C(1796379433) * USEC_PER_SEC },
	               t;

	assert_int_equal(algorithm_state_save(*state, &s), 0);
	assert_int_equal(algorithm_state_load(*state, &t), 0);
	assert_int_equal(t.signing, s.signing);
	assert_int_equal(t.previous, s.previous);
	assert_int_equal(t.previous_until, s.previous_until);

	/* md5 alone is no file, as on a site that never switched. */
	s.previous_until = 0;
	assert_int_equal(algorithm_state_save(*state, &s), 0);
	assert_true(asprintf(&path, "%s/" ALGORITHM_STATE_FILE, (char *)*state) >= 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(algorithm_state_load(*state, &t), -ENOENT);
}

/* Whole seconds, as the file keeps them: a restart reads back the same. */
static void test_switch_rounds_up_to_whole_seconds(void **state)
{
	AlgorithmState s =
	    algorithm_switch(13 * USEC_PER_SEC, LINK_ALGORITHM_MD5, LINK_ALGORITHM_HMAC_SHA256,
	                     UINT64_C(1000) * USEC_PER_SEC + 1);

	assert_int_equal(s.signing, LINK_ALGORITHM_HMAC_SHA256);
	assert_int_equal(s.previous, LINK_ALGORITHM_MD5);
	assert_int_equal(s.previous_until, UINT64_C(1014) * USEC_PER_SEC);
	assert_int_equal(algorithm_state_checked(&s, UINT64_C(1014) * USEC_PER_SEC - 1),
	                 LINK_ALGORITHM_BIT(LINK_ALGORITHM_MD5) |
	                     LINK_ALGORITHM_BIT(LINK_ALGORITHM_HMAC_SHA256));
	assert_int_equal(algorithm_state_checked(&s, UINT64_C(1014) * USEC_PER_SEC),
	                 LINK_ALGORITHM_BIT(LINK_ALGORITHM_HMAC_SHA256));

	s = algorithm_switch(13 * USEC_PER_SEC, LINK_ALGORITHM_MD5, LINK_ALGORITHM_MD5,
	                     UINT64_C(1000) * USEC_PER_SEC);
	assert_int_equal(s.previous_until, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_file_is_enoent, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_valid_files, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_malformed_files_are_ebadmsg, setup_dir,
		                                teardown_dir),
		cmocka_unit_test_setup_teardown(test_oversized_and_binary_files_are_errors,
		                                setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_a_directory_in_its_place_is_an_error,
		                                setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_save_round_trips, setup_dir, teardown_dir),
		cmocka_unit_test(test_switch_rounds_up_to_whole_seconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
