/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

#include "config.h"

/* The places securelinkd keeps secrets in are trusted: whoever may write
 * there may plant keys, and a FIFO or device in place of a file would block
 * or feed the daemon. Checks, without changing anything, that the snippets'
 * directories (and in local mode the state directory) are absent or
 * directories owned by root or uid that nobody else may write to, and that
 * the files securelinkd writes there are absent or regular files (not
 * symbolic links, FIFOs, ...). Returns 0, or a negative errno with
 * *ret_error set to one line naming the path and the fix. */
int paths_check(const Config *c, uid_t uid, char **ret_error);

/* The user securelinkd.service runs as (sysusers): its directories are
 * trusted as root's are. */
#define PATHS_SERVICE_USER "securelink"
