/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Replaces path with data so that a crash leaves either the old or the new
 * file, never a mix: temp file in the same directory, fsync, rename, fsync of
 * the directory. The new file gets mode (umask ignored). With keep_prev set,
 * the file being replaced is kept as prev_path (hard link, renamed into place)
 * before the new one takes its name, so path always exists.
 * Returns 0; a positive errno when the new file is in place but the directory
 * could not be synced (the rename may not survive a power loss: warn, do not
 * treat as a failure); or a negative errno, and then the old file is
 * untouched. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode,
                      const char *prev_path);

/* Reads a whole regular file of at most max_size bytes. The buffer is
 * NUL-terminated (not counted in ret_size). Never blocks in open() on a FIFO.
 * Returns 0, -EFBIG when larger, -EBADFD when not a regular file, or a
 * negative errno. */
int read_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* Removes what write_file_atomic() leaves behind when the process dies
 * mid-write: its ".<name>.<8 hex digits>.tmp" files beside path, and the
 * ".<name>.link.tmp" of a kept previous copy (call it for the prev_path as
 * well). Nothing else, however similar. They may hold old secrets. Returns
 * how many were removed, or a negative errno when the directory cannot be
 * read. */
int remove_stale_temp_files(const char *path);
