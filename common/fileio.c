/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>

#include "fileio.h"
#include "util.h"

static int write_all(int fd, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

static int open_parent_dir(const char *path, char **ret_base)
{
	_cleanup_free_ char *d = strdup(path), *b = strdup(path);
	int fd;

	if (!d || !b)
		return -ENOMEM;
	fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_base = strdup(basename(b));
	if (!*ret_base) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

static int make_temp(int dir_fd, const char *base, mode_t mode, char **ret_name)
{
	/* O_EXCL with a random-ish name: a leftover from a crash is not reused,
	 * and nobody can have planted a symlink under this name for us. */
	for (unsigned attempt = 0; attempt < 16; attempt++) {
		char *name;
		int fd;

		if (asprintf(&name, ".%s.%08lx.tmp", base,
		             (unsigned long)random() ^ (unsigned long)getpid()) < 0)
			return -ENOMEM;
		fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		            mode);
		if (fd >= 0) {
			*ret_name = name;
			return fd;
		}
		free(name);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode,
                      const char *prev_path)
{
	_cleanup_free_ char *base = NULL, *tmp = NULL, *prev_tmp = NULL;
	_cleanup_close_ int dir_fd = -1, fd = -1;
	int r;

	dir_fd = open_parent_dir(path, &base);
	if (dir_fd < 0)
		return dir_fd;

	fd = make_temp(dir_fd, base, mode, &tmp);
	if (fd < 0)
		return fd;

	/* The mode given is the mode meant: no umask in between. */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto fail;
	}
	r = write_all(fd, data, size);
	if (r < 0)
		goto fail;
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (close(TAKE_FD(fd)) < 0) {
		r = -errno;
		goto fail;
	}

	if (prev_path) {
		/* Keep the current file as prev_path by linking it under a temp
		 * name and renaming that over prev_path: path never disappears,
		 * and prev_path is always a complete file. */
		_cleanup_free_ char *prev_dir = strdup(prev_path), *prev_base = strdup(prev_path);

		if (!prev_dir || !prev_base) {
			r = -ENOMEM;
			goto fail;
		}
		if (asprintf(&prev_tmp, "%s/.%s.link.tmp", dirname(prev_dir), basename(prev_base)) <
		    0) {
			prev_tmp = NULL;
			r = -ENOMEM;
			goto fail;
		}
		(void)unlink(prev_tmp);
		if (link(path, prev_tmp) < 0) {
			if (errno != ENOENT) {
				r = -errno;
				goto fail;
			}
		} else if (rename(prev_tmp, prev_path) < 0) {
			r = -errno;
			(void)unlink(prev_tmp);
			goto fail;
		}
	}

	if (renameat(dir_fd, tmp, dir_fd, base) < 0) {
		r = -errno;
		goto fail;
	}
	/* The rename is durable only once the directory is on disk. If that
	 * fails, the new file is in place all the same: a failure here would
	 * make the caller believe the old one is still there. */
	if (fsync(dir_fd) < 0)
		return errno;
	return 0;

fail:
	(void)unlinkat(dir_fd, tmp, 0);
	return r;
}

int read_file(const char *path, size_t max_size, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t size = 0;
	int r = 0;

	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer (a
	 * FIFO named keys.conf would hang the daemon's start). It is refused
	 * right after; on a regular file the flag changes nothing. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if ((uint64_t)st.st_size > max_size)
		return -EFBIG;

	buf = malloc(max_size + 1);
	if (!buf)
		return -ENOMEM;

	/* Read until EOF rather than trusting st_size: the file may change. */
	for (;;) {
		ssize_t n;

		if (size > max_size)
			break;
		n = read(fd, buf + size, max_size + 1 - size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		size += (size_t)n;
	}
	if (r == 0 && size > max_size)
		r = -EFBIG;
	if (r < 0) {
		/* What was read may be a keys file: no copy outlives the call. */
		explicit_bzero(buf, size);
		return r;
	}

	buf[size] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = size;
	return 0;
}

/* Whether name is one of the temp names write_file_atomic() makes for a file
 * called base: ".<base>.<8 hex digits>.tmp" (make_temp) or ".<base>.link.tmp"
 * (the hard link of a kept previous copy). */
static bool is_temp_name_of(const char *name, const char *base)
{
	size_t n = strlen(base);

	if (name[0] != '.' || strncmp(name + 1, base, n) != 0 || name[n + 1] != '.')
		return false;
	name += n + 2;
	if (streq(name, "link.tmp"))
		return true;
	for (size_t i = 0; i < 8; i++)
		if (name[i] == '\0' || !strchr("0123456789abcdef", name[i]))
			return false;
	return streq(name + 8, ".tmp");
}

int remove_stale_temp_files(const char *path)
{
	_cleanup_free_ char *base = NULL;
	_cleanup_close_ int dir_fd = -1;
	struct dirent *de;
	DIR *d;
	int n = 0;

	dir_fd = open_parent_dir(path, &base);
	if (dir_fd < 0)
		return dir_fd;
	d = fdopendir(TAKE_FD(dir_fd));
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (is_temp_name_of(de->d_name, base) && unlinkat(dirfd(d), de->d_name, 0) >= 0)
			n++;
	closedir(d);
	return n;
}
