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

/* Linked with -Wl,--wrap=fsync: fsync() of a directory can be made to fail,
 * as it does on a disk error after the rename went through. */
int __real_fsync(int fd);
int __wrap_fsync(int fd);
static int fail_dir_fsync;

int __wrap_fsync(int fd)
{
	struct stat st;

	if (fail_dir_fsync && fstat(fd, &st) >= 0 && S_ISDIR(st.st_mode)) {
		errno = fail_dir_fsync;
		return -1;
	}
	return __real_fsync(fd);
}

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

static void test_read_file_does_not_block_on_a_fifo(void **state)
{
	_cleanup_free_ char *p = path_in(state, "keys.conf");
	char *data = NULL;

	/* Opening a FIFO for reading waits for a writer: securelinkd would
	 * hang at start, before its socket is served. */
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(read_file(p, 100, &data, NULL), -EBADFD);
	assert_null(data);
}

static void test_stale_temp_files_are_removed_and_nothing_else(void **state)
{
	_cleanup_free_ char *p = path_in(state, "keyring"), *prev = path_in(state, "keyring.prev");
	/* Ours: ".<name>.<8 hex digits>.tmp" and ".<name>.link.tmp". Not ours:
	 * anything else, however close. */
	const char *ours[] = { ".keyring.0badf00d.tmp", ".keyring.link.tmp" };
	const char *prev_ours[] = { ".keyring.prev.link.tmp", ".keyring.prev.12345678.tmp" };
	const char *others[] = { "keyring.tmp",           ".other.0badf00d.tmp",
		                 ".keyring.orig.tmp",     ".keyring.0badf00d.tmp.bak",
		                 ".keyring.0BADF00D.tmp", ".keyring.0badf00.tmp",
		                 ".keyring.0badf00d0.tmp" };

	assert_int_equal(write_file_atomic(p, "ring", 4, 0600, prev), 0);
	for (size_t i = 0; i < ELEMENTSOF(ours); i++) {
		_cleanup_free_ char *q = path_in(state, ours[i]);

		assert_int_equal(write_file_atomic(q, "x", 1, 0600, NULL), 0);
	}
	for (size_t i = 0; i < ELEMENTSOF(prev_ours); i++) {
		_cleanup_free_ char *q = path_in(state, prev_ours[i]);

		assert_int_equal(write_file_atomic(q, "x", 1, 0600, NULL), 0);
	}
	for (size_t i = 0; i < ELEMENTSOF(others); i++) {
		_cleanup_free_ char *q = path_in(state, others[i]);

		assert_int_equal(write_file_atomic(q, "x", 1, 0600, NULL), 0);
	}
	assert_int_equal(remove_stale_temp_files(p), (int)ELEMENTSOF(ours));
	assert_int_equal(remove_stale_temp_files(prev), (int)ELEMENTSOF(prev_ours));
	/* keyring and every file that is not ours stay. */
	assert_int_equal(count_entries(*state), 1 + ELEMENTSOF(others));
}

static void test_stale_temp_file_name_is_taken_literally(void **state)
{
	/* A name holding glob characters matches only itself. */
	_cleanup_free_ char *p = path_in(state, "k*");
	_cleanup_free_ char *q = path_in(state, ".key.0badf00d.tmp");
	_cleanup_free_ char *t = path_in(state, ".k*.0badf00d.tmp");

	assert_int_equal(write_file_atomic(q, "x", 1, 0600, NULL), 0);
	assert_int_equal(write_file_atomic(t, "x", 1, 0600, NULL), 0);
	assert_int_equal(remove_stale_temp_files(p), 1);
	assert_int_equal(access(q, F_OK), 0);
	assert_int_equal(access(t, F_OK), -1);
}

static void test_failed_directory_sync_after_rename_reports_the_new_file(void **state)
{
	_cleanup_free_ char *p = path_in(state, "ring"), *prev = path_in(state, "ring.prev");
	_cleanup_free_ char *a = NULL, *b = NULL;
	int r;

	assert_int_equal(write_file_atomic(p, "old", 3, 0600, prev), 0);

	fail_dir_fsync = EIO;
	r = write_file_atomic(p, "new", 3, 0600, prev);
	fail_dir_fsync = 0;

	/* The rename happened: the new file is in place, so this is no
	 * failure (a caller would believe the old file is still there), but
	 * it is told apart from a durable write, with the errno. */
	assert_int_equal(r, EIO);
	assert_int_equal(read_file(p, 100, &a, NULL), 0);
	assert_string_equal(a, "new");
	assert_int_equal(read_file(prev, 100, &b, NULL), 0);
	assert_string_equal(b, "old");
	assert_int_equal(count_entries(*state), 2);
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
		cmocka_unit_test_setup_teardown(test_read_file_does_not_block_on_a_fifo, setup_dir,
		                                teardown_dir),
		cmocka_unit_test_setup_teardown(test_stale_temp_file_name_is_taken_literally,
		                                setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_failed_directory_sync_after_rename_reports_the_new_file, setup_dir,
		    teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
