/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* The page clients cache links against (docs/client-cache.md): a file of one
 * page in the state directory, CACHE_PAGE_FILE, mapped shared by securelinkd
 * and, read-only, by every client it was passed to over the socket
 * (SCM_RIGHTS on the answer to CACHE). It holds a magic and a generation
 * that securelinkd raises whenever a link handed out before may have died
 * before its expires: a revoke (when it starts and when the revoked keys
 * stop signing), a configuration or link format change, a start and a stop.
 * A client hands out a cached link only while the generation is the one it
 * read before asking for the link. Never any secret in it.
 *
 * The file is the same inode across restarts (never replaced), so a client
 * still holding the page of a stopped securelinkd sees the next one's
 * raises. */

#define CACHE_PAGE_FILE  "cache-page"
#define CACHE_PAGE_SIZE  4096
#define CACHE_PAGE_MAGIC "SLCACHE1"

typedef struct CachePage {
	int fd;    /* O_RDWR, kept for the mapping's lifetime */
	int ro_fd; /* O_RDONLY: the one passed to clients */
	void *map;
	uint64_t *generation;
} CachePage;

#define CACHE_PAGE_NULL ((CachePage){ .fd = -1, .ro_fd = -1 })

/* Opens (creating it when missing) state_directory/CACHE_PAGE_FILE, maps it
 * and raises the generation. Returns 0 or a negative errno. */
int cache_page_open(CachePage *p, const char *state_directory);
/* Raises the generation (no-op on a page that is not open). */
void cache_page_bump(CachePage *p);
/* Raises the generation once more and unmaps. */
void cache_page_close(CachePage *p);
