/* SPDX-License-Identifier: MIT */
#pragma once

/* What client.c (the connection, single requests), client-stream.c
 * (pipelined signing) and client-cache.c (the link cache) share inside
 * libsecurelink-client:
 * the client's state and its buffered transport. Nothing here is exported
 * from the shared library; the slc_ prefix keeps the static library's
 * symbols out of an application's way. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "securelink-client.h"

#define _public_ __attribute__((visibility("default")))

struct SlClient {
	int fd;
	int broken; /* 0, or the negative errno every later call returns */
	uint64_t timeout;

	/* Request bytes not yet written: out[out_start..out_len). */
	char *out;
	size_t out_start, out_len, out_size;

	/* Answer bytes read and not yet consumed: in[in_start..in_len). */
	char *in;
	size_t in_start, in_len, in_size;

	/* The daemon stopped reading (EPIPE, ECONNRESET on send): nothing
	 * more is written, but what it said before hanging up is still read. */
	int write_error;
	/* Answer lines read on this connection: the first one may be the
	 * daemon refusing the connection rather than an answer. */
	uint64_t n_answers;
	/* The socket's SO_SNDTIMEO and SO_RCVTIMEO are the timeout above. */
	bool fast_timeouts;

	SlError last_error;
	char *last_message;

	/* The link cache (sl_client_cache(), docs/client-cache.md): the
	 * daemon's page, mapped read-only ([1] is the generation), or NULL. */
	const uint64_t *cache_page;
	int64_t cache_default_ttl;
	char cache_expires_param[72];
	struct CacheEntry *cache;
	size_t n_cached;
};

/* The transport and request helpers, in client.c (each described there). */
int slc_set_last_error(SlClient *c, SlError e, const char *message);
int slc_break(SlClient *c, int r);
int slc_out_append(SlClient *c, const char *a, size_t n);
size_t slc_out_pending(const SlClient *c);
int slc_out_flush(SlClient *c);
int slc_in_fill(SlClient *c);
int slc_in_next_line(SlClient *c, char **ret_line);
int slc_answer_parse(char *line, SlError *ret_error, const char **ret_text);
int slc_wait(SlClient *c, short events, int extra_fd);
bool slc_token_is_sendable(const char *s);
int slc_sign_suffix(const SlSignOptions *opt, char *buf, size_t size, size_t *ret_len);

/* The link cache, in client-cache.c. A sign's look into it: the key, its
 * slot (NULL: not cacheable) and the generation read before asking. */
typedef struct SlCacheProbe {
	char key[SL_CLIENT_LINE_MAX + 64];
	struct CacheEntry *slot;
	uint64_t generation;
} SlCacheProbe;

/* 1 and *ret_url (last error cleared) when a live link is cached; 0 when
 * the daemon must be asked, with p ready for slc_cache_store(). */
int slc_cache_lookup(SlClient *c, const char *target, const SlSignOptions *opt, SlCacheProbe *p,
                     char **ret_url);
/* Keeps url, the daemon's answer for p, when it is a signed link. */
void slc_cache_store(SlClient *c, SlCacheProbe *p, const char *url);
void slc_cache_free(SlClient *c);
