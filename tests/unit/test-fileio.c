/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fileio.h"
#include "util.h"

static int setup_dir(void **state)
{
	char *d = strdup("/tmp/securelink-test-fileio.XXXXXX");

	if (!d || !mkdtemp(d))
		return -1;
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	char *d = *state;
	DIR *dir = opendir(d);
	struct dirent *de;

	while (dir && (de = readdir(dir)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			(void)unlinkat(dirfd(dir), de->d_name, 0);
	if (dir)
		closedir(dir);
	rmdir(d);
	free(d);
	return 0;
}

static char *path_in(void **state, const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", (char *)*state, name) > 0);
	return p;
}

static size_t count_entries(const char *dir_path)
{
	DIR *dir = opendir(dir_path);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(dir);
	while ((de = readdir(dir)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			n++;
	closedir(dir);
	return n;
}

static void test_write_creates_file_with_exact_mode(void **state)
{
	_cleanup_free_ char *p = path_in(state, "a"), *data = NULL;
	struct stat st;
	size_t size;
	mode_t old = umask(0077);

	assert_int_equal(write_file_atomic(p, "hello\n", 6, 0640, NULL), 0);
	umask(old);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(read_file(p, 100, &data, &size), 0);
	assert_int_equal(size, 6);
	assert_string_equal(data, "hello\n");
	/* No temp file left behind. */
	assert_int_equal(count_entries(*state), 1);
}

static void test_write_replaces_and_keeps_prev(void **state)
{
	_cleanup_free_ char *p = path_in(state, "ring"), *prev = path_in(state, "ring.prev");
	_cleanup_free_ char *a = NULL, *b = NULL;

	assert_int_equal(write_file_atomic(p, "one", 3, 0600, prev), 0);
	/* Nothing to keep on the first write. */
	assert_int_equal(access(prev, F_OK), -1);
	assert_int_equal(write_file_atomic(p, "two", 3, 0600, prev), 0);
	assert_int_equal(read_file(p, 100, &a, NULL), 0);
	assert_int_equal(read_file(prev, 100, &b, NULL), 0);
	assert_string_equal(a, "two");
	assert_string_equal(b, "one");
	assert_int_equal(count_entries(*state), 2);
}

static void test_write_into_missing_dir_fails_cleanly(void **state)
{
	_cleanup_free_ char *p = path_in(state, "nope/a");

	assert_int_equal(write_file_atomic(p, "x", 1, 0600, NULL), -ENOENT);
	assert_int_equal(count_entries(*state), 0);
}

static void test_write_failure_leaves_old_file(void **state)
{
	_cleanup_free_ char *p = path_in(state, "a"), *data = NULL;

	assert_int_equal(write_file_atomic(p, "old", 3, 0600, NULL), 0);
	/* A directory that cannot be written to: the temp file cannot be made.
	 * Root ignores permission bits, so make it a directory in the way. */
	_cleanup_free_ char *d = path_in(state, "sub");
	_cleanup_free_ char *q = path_in(state, "sub/x");
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(write_file_atomic(q, "in", 2, 0600, NULL), 0);
	/* Renaming a file over a non-empty directory fails: old content stays. */
	_cleanup_free_ char *over = path_in(state, "sub");
	assert_true(write_file_atomic(over, "new", 3, 0600, NULL) < 0);
	assert_int_equal(read_file(p, 100, &data, NULL), 0);
	assert_string_equal(data, "old");
	assert_int_equal(unlink(q), 0);
	assert_int_equal(rmdir(d), 0);
	/* Only the first file is left: the failed temp file was removed. */
	assert_int_equal(count_entries(*state), 1);
}

static void test_read_file_limits(void **state)
{
	_cleanup_free_ char *p = path_in(state, "big"), *data = NULL;

	assert_int_equal(write_file_atomic(p, "0123456789", 10, 0600, NULL), 0);
	assert_int_equal(read_file(p, 9, &data, NULL), -EFBIG);
	assert_null(data);
	assert_int_equal(read_file(p, 10, &data, NULL), 0);
	assert_string_equal(data, "0123456789");
}

static void test_read_file_refuses_directories_and_missing(void **state)
{
	char *data = NULL;
	_cleanup_free_ char *missing = path_in(state, "missing");

	assert_int_equal(read_file(*state, 100, &data, NULL), -EBADFD);
	assert_int_equal(read_file(missing, 100, &data, NULL), -ENOENT);
	assert_null(data);
}

static void test_stale_temp_files_are_removed_and_nothing_else(void **state)
{
	_cleanup_free_ char *p = path_in(state, "keyring"), *prev = path_in(state, "keyring.prev");
	const char *names[] = { ".keyring.0badf00d.tmp", ".keyring.link.tmp",
		                ".keyring.prev.link.tmp", "keyring.tmp", ".other.0badf00d.tmp" };

	assert_int_equal(write_file_atomic(p, "ring", 4, 0600, prev), 0);
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		_cleanup_free_ char *q = path_in(state, names[i]);

		assert_int_equal(write_file_atomic(q, "x", 1, 0600, NULL), 0);
	}
	/* ".keyring.*.tmp" covers keyring.prev's link temp file too. */
	assert_int_equal(remove_stale_temp_files(p), 3);
	assert_int_equal(remove_stale_temp_files(prev), 0);
	/* keyring, keyring.tmp and the other file's temp file stay. */
	assert_int_equal(count_entries(*state), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_creates_file_with_exact_mode, setup_dir,
		                                teardown_dir),
		cmocka_unit_test_setup_teardown(test_write_replaces_and_keeps_prev, setup_dir,
		                                teardown_dir),
		cmocka_unit_test_setup_teardown(test_write_into_missing_dir_fails_cleanly,
		                                setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_write_failure_leaves_old_file, setup_dir,
		                                teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_file_limits, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_stale_temp_files_are_removed_and_nothing_else,
		                                setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_file_refuses_directories_and_missing,
		                                setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
