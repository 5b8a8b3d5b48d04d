/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pwd.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keyring.h"
#include "paths.h"
#include "util.h"

static int path_error(char **ret_error, int error, const char *format, ...) _printf_(3, 4);
static int path_error(char **ret_error, int error, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	if (vasprintf(ret_error, format, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return error;
}

static const char *file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	if (S_ISDIR(mode))
		return "a directory";
	return "not a regular file";
}

/* Whether owner may own the directories securelinkd writes to: root, the
 * user it runs as, or the user securelink the shipped unit runs it as (so
 * that `securelinkd --check-config` run by root judges the service's
 * layout, where tmpfiles gives /etc/nginx/securelink to securelink). */
static bool owner_is_trusted(uid_t owner, uid_t uid)
{
	struct passwd pw, *found = NULL;
	char buf[1024];

	if (owner == 0 || owner == uid)
		return true;
	return getpwnam_r(PATHS_SERVICE_USER, &pw, buf, sizeof(buf), &found) == 0 && found &&
	       found->pw_uid == owner;
}

/* A directory securelinkd writes secrets to. Followed if it is a symlink:
 * what matters is who may write into the directory it leads to. */
static int check_dir(const char *key, const char *dir, uid_t uid, char **ret_error)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0; /* created by us (state) or refused when written */
		return path_error(ret_error, -errno, "%s: cannot check %s: %s", key, dir,
		                  strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return path_error(ret_error, -ENOTDIR,
		                  "%s: %s is not a directory (remove it, or set %s elsewhere)", key,
		                  dir, key);
	if (!owner_is_trusted(st.st_uid, uid))
		return path_error(
		    ret_error, -EPERM,
		    "%s: %s is owned by uid %u, who could plant keys there (chown root %s, "
		    "or to the user securelinkd runs as, " PATHS_SERVICE_USER " under systemd)",
		    key, dir, (unsigned)st.st_uid, dir);
	/* The sticky bit does not help: others could still create the file
	 * before we do. */
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return path_error(
		    ret_error, -EPERM,
		    "%s: %s is writable by %s (mode %04o), who could plant keys there "
		    "(chmod go-w %s)",
		    key, dir, st.st_mode & S_IWOTH ? "everyone" : "its group",
		    (unsigned)(st.st_mode & 07777), dir);
	return 0;
}

/* A file securelinkd replaces atomically: absent, or a regular file. Not
 * followed: a symlink would be replaced by a regular file at the next write,
 * and until then read through. */
static int check_file(const char *key, const char *path, char **ret_error)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return path_error(ret_error, -errno, "%s: cannot check %s: %s", key, path,
		                  strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return path_error(
		    ret_error, -ELOOP,
		    "%s: %s is a symbolic link, which securelinkd does not follow where it "
		    "writes (remove %s, or set %s to the real path)",
		    key, path, path, key);
	if (!S_ISREG(st.st_mode))
		return path_error(
		    ret_error, -EBADFD,
		    "%s: %s is %s, not a regular file, and securelinkd writes it (remove %s)", key,
		    path, file_kind(st.st_mode), path);
	return 0;
}

static int check_file_and_dir(const char *key, const char *path, uid_t uid, char **ret_error)
{
	_cleanup_free_ char *copy = strdup(path);
	int r;

	if (!copy)
		return -ENOMEM;
	r = check_dir(key, dirname(copy), uid, ret_error);
	if (r < 0)
		return r;
	return check_file(key, path, ret_error);
}

int paths_check(const Config *c, uid_t uid, char **ret_error)
{
	int r;

	*ret_error = NULL;

	r = check_file_and_dir("keys_file", c->keys_file, uid, ret_error);
	if (r < 0)
		return r;
	r = check_file_and_dir("locations_file", c->locations_file, uid, ret_error);
	if (r < 0)
		return r;

	/* In derived mode there is no ring and the state directory is unused. */
	if (c->mode != KEY_MODE_LOCAL)
		return 0;
	r = check_dir("state_directory", c->state_directory, uid, ret_error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *path = NULL;

		if (asprintf(&path, "%s/%s", c->state_directory,
		             i == 0 ? KEYRING_FILE : KEYRING_PREV_FILE) < 0)
			return -ENOMEM;
		r = check_file("state_directory", path, ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}
