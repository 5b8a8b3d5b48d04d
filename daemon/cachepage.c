/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachepage.h"
#include "util.h"

int cache_page_open(CachePage *p, const char *state_directory)
{
	_cleanup_close_ int fd = -1, ro = -1, dfd = -1;
	struct stat st;
	void *map;

	*p = CACHE_PAGE_NULL;
	dfd = open(state_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* 0600: clients get the page as an fd, never by its name. */
	fd = openat(dfd, CACHE_PAGE_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
	            0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	/* Never truncated or replaced while it exists: a client of an earlier
	 * securelinkd maps this inode and must see the raises. */
	if (st.st_size < CACHE_PAGE_SIZE && ftruncate(fd, CACHE_PAGE_SIZE) < 0)
		return -errno;
	ro = openat(dfd, CACHE_PAGE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (ro < 0)
		return -errno;
	map = mmap(NULL, CACHE_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	if (memcmp(map, CACHE_PAGE_MAGIC, 8) != 0)
		memcpy(map, CACHE_PAGE_MAGIC, 8);
	p->map = map;
	p->generation = (uint64_t *)((char *)map + 8);
	p->fd = TAKE_FD(fd);
	p->ro_fd = TAKE_FD(ro);
	/* Whatever happened while no securelinkd ran (a keyring put back from
	 * a backup) is a reason too. */
	cache_page_bump(p);
	return 0;
}

void cache_page_bump(CachePage *p)
{
	if (p->generation)
		/* Release: what made the links die (the ring without the
		 * revoked keys) is in place before a client can see the
		 * raise. */
		__atomic_add_fetch(p->generation, 1, __ATOMIC_SEQ_CST);
}

void cache_page_close(CachePage *p)
{
	cache_page_bump(p);
	if (p->map)
		(void)munmap(p->map, CACHE_PAGE_SIZE);
	if (p->fd >= 0)
		close(p->fd);
	if (p->ro_fd >= 0)
		close(p->ro_fd);
	*p = CACHE_PAGE_NULL;
}
