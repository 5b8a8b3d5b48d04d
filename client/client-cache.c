/* SPDX-License-Identifier: MIT */
/* libsecurelink-client's link cache (docs/client-cache.md): CACHE and the
 * daemon's page it maps, and the links sl_client_sign() answers from
 * memory while the page's generation and their lifetime allow. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "securelink-client.h"
#include "util.h"

/* A cached link: key is "<target> <ttl or -> <ip or ->". */
typedef struct CacheEntry {
	char *key;
	char *url;
	int64_t expires;
	uint64_t generation;
} CacheEntry;

/* Open addressing; when this full the cache starts over. */
#define CACHE_SLOTS      8192U
#define CACHE_FILL       (CACHE_SLOTS / 2)
#define CACHE_PAGE_SIZE  4096
#define CACHE_PAGE_MAGIC "SLCACHE1"

static void cache_clear(SlClient *c)
{
	if (!c->cache)
		return;
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		free(c->cache[i].key);
		free(c->cache[i].url);
	}
	memset(c->cache, 0, CACHE_SLOTS * sizeof(CacheEntry));
	c->n_cached = 0;
}

static uint64_t cache_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

/* The slot of key, or the empty one where it would go. */
static CacheEntry *cache_slot(SlClient *c, const char *key)
{
	size_t i = cache_hash(key) & (CACHE_SLOTS - 1);

	while (c->cache[i].key && !streq(c->cache[i].key, key))
		i = (i + 1) & (CACHE_SLOTS - 1);
	return &c->cache[i];
}

static uint64_t cache_generation(const SlClient *c)
{
	/* The daemon raises it with an atomic add; acquire pairs with it. */
	return __atomic_load_n(&c->cache_page[1], __ATOMIC_ACQUIRE);
}

/* The expires parameter of a signed link; -1 for a public one. */
static int64_t link_expires(const char *url, const char *param)
{
	const char *q = strchr(url, '?'), *p;
	size_t l = strlen(param);
	int64_t v = 0;

	if (!q)
		return -1;
	for (p = q; p; p = strchr(p + 1, '&'))
		if (strncmp(p + 1, param, l) == 0 && p[1 + l] == '=') {
			p += l + 2;
			if (*p < '0' || *p > '9')
				return -1;
			for (; *p >= '0' && *p <= '9'; p++) {
				if (v > (INT64_MAX - 9) / 10)
					return -1;
				v = v * 10 + (*p - '0');
			}
			return v;
		}
	return -1;
}

void slc_cache_free(SlClient *c)
{
	cache_clear(c);
	free(c->cache);
	if (c->cache_page)
		(void)munmap((void *)c->cache_page, CACHE_PAGE_SIZE);
}

int slc_cache_lookup(SlClient *c, const char *target, const SlSignOptions *opt, SlCacheProbe *p,
                     char **ret_url)
{
	char *url;
	int r;

	p->slot = NULL;
	/* An explicit expires is never cached, a key that does not fit is
	 * just not. */
	if (c->cache_page && !c->broken && target && (!opt || !opt->has_expires)) {
		int k = snprintf(p->key, sizeof(p->key), "%s %" PRId64 " %s", target,
		                 opt && opt->has_ttl ? opt->ttl : (int64_t)0,
		                 opt && opt->ip ? opt->ip : "-");
		int64_t ttl = opt && opt->has_ttl ? opt->ttl : c->cache_default_ttl;

		if (k > 0 && (size_t)k < sizeof(p->key)) {
			struct timespec now;

			p->slot = cache_slot(c, p->key);
			/* Read before asking: a raise after this makes the
			 * answer stale, one before it is counted in. */
			p->generation = cache_generation(c);
			if (p->slot->key && p->slot->generation == p->generation &&
			    clock_gettime(CLOCK_REALTIME, &now) == 0 &&
			    (int64_t)now.tv_sec + ttl <= p->slot->expires) {
				url = strdup(p->slot->url);
				if (!url)
					return -ENOMEM;
				r = slc_set_last_error(c, SL_ERROR_NONE, NULL);
				if (r < 0) {
					free(url);
					return r;
				}
				*ret_url = url;
				return 1;
			}
		}
	}
	return 0;
}

void slc_cache_store(SlClient *c, SlCacheProbe *p, const char *url)
{
	CacheEntry *slot = p->slot;
	int64_t expires;
	char *k, *u;

	if (!slot)
		return;
	expires = link_expires(url, c->cache_expires_param);
	if (expires <= 0)
		return;
	if (!slot->key && c->n_cached >= CACHE_FILL) {
		cache_clear(c);
		slot = cache_slot(c, p->key);
	}
	k = slot->key ? slot->key : strdup(p->key);
	u = strdup(url);
	if (k && u) {
		if (!slot->key)
			c->n_cached++;
		free(slot->url);
		*slot = (CacheEntry){
			.key = k, .url = u, .expires = expires, .generation = p->generation
		};
	} else {
		/* No memory for the cache: the link is still good. */
		if (k != slot->key)
			free(k);
		free(u);
	}
}

_public_ int sl_client_cache(SlClient *c)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	char buf[512], *answer = NULL;
	size_t len = 0;
	int fd = -1, r;
	const char *text;
	SlError e;
	void *map;

	assert(c);
	if (c->broken)
		return c->broken;
	if (c->cache_page)
		return 1;
	/* The descriptor comes with the answer's first byte: nothing else may
	 * be in flight. */
	if (slc_out_pending(c) > 0 || c->in_len > c->in_start)
		return -EBUSY;
	r = slc_out_append(c, "CACHE\n", 6);
	if (r < 0)
		return r;
	while (slc_out_pending(c) > 0) {
		r = slc_out_flush(c);
		if (r < 0)
			return slc_break(c, r);
		if (c->write_error)
			break;
		if (slc_out_pending(c) > 0) {
			r = slc_wait(c, POLLOUT, -1);
			if (r < 0)
				return slc_break(c, r);
		}
	}
	for (;;) {
		struct iovec iov = { .iov_base = buf + len, .iov_len = sizeof(buf) - 1 - len };
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};
		ssize_t k;

		if (iov.iov_len == 0)
			r = -EBADMSG;
		else {
			k = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				r = slc_wait(c, POLLIN, -1);
				if (r >= 0)
					continue;
			} else if (k < 0)
				r = -errno;
			else if (k == 0)
				r = -ECONNRESET;
			else {
				for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
				     cm = CMSG_NXTHDR(&mh, cm))
					if (cm->cmsg_level == SOL_SOCKET &&
					    cm->cmsg_type == SCM_RIGHTS &&
					    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
						if (fd >= 0)
							close(fd);
						memcpy(&fd, CMSG_DATA(cm), sizeof(int));
					}
				len += (size_t)k;
				buf[len] = '\0';
				answer = memchr(buf, '\n', len);
				if (!answer)
					continue;
				r = answer + 1 == buf + len ? 0 : -EBADMSG;
				*answer = '\0';
			}
		}
		break;
	}
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return slc_break(c, r);
	}
	c->n_answers++;
	r = slc_answer_parse(buf, &e, &text);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return slc_break(c, r);
	}
	if (e != SL_ERROR_NONE) {
		if (fd >= 0)
			close(fd);
		/* A daemon without CACHE: no cache. */
		if (e == SL_ERROR_UNKNOWN_VERB)
			return 0;
		r = slc_set_last_error(c, e, text);
		return r < 0 ? r : -EREMOTEIO;
	}
	{
		unsigned long long g = 0, ttl = 0;
		char param[sizeof(c->cache_expires_param)] = "";

		if (sscanf(text, "granularity=%llu default_ttl=%llu expires_param=%64s", &g, &ttl,
		           param) != 3 ||
		    g == 0 || ttl == 0 || ttl > INT64_MAX || fd < 0) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		map = mmap(NULL, CACHE_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (map == MAP_FAILED)
			return -errno;
		if (memcmp(map, CACHE_PAGE_MAGIC, 8) != 0) {
			(void)munmap(map, CACHE_PAGE_SIZE);
			return slc_break(c, -EBADMSG);
		}
		if (!c->cache) {
			c->cache = calloc(CACHE_SLOTS, sizeof(CacheEntry));
			if (!c->cache) {
				(void)munmap(map, CACHE_PAGE_SIZE);
				return -ENOMEM;
			}
		}
		c->cache_page = map;
		c->cache_default_ttl = (int64_t)ttl;
		memcpy(c->cache_expires_param, param, sizeof(param));
	}
	return 1;
}
