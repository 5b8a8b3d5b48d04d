/* SPDX-License-Identifier: MIT */
#pragma once

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

/* nginx configuration text that holds no secret: the locations snippet and
 * the include lines. Shared by securelinkd, which writes them, and
 * securelinkctl nginx-config, which prints them. */

/* Renders the locations file: one location per private prefix with
 * secure_link, public prefixes plain. Returns 0, -EINVAL for a path or
 * parameter name that would break nginx's syntax, or -ENOMEM. */
int render_locations_file(const Config *c, char **ret, size_t *ret_size);

/* Whether a link format change from old to c can pass through locations
 * that check links of both: media_url, media_root and bind_ip unchanged. */
bool render_transition_possible(const Config *old, const Config *c);

/* The locations file while the link format changes from old (what nginx
 * checks and links are signed in now) to c: a link of either format passes
 * (see nginxconf.c). With old == c, or a change that cannot be bridged
 * (render_transition_possible()), c's own locations file. Returns as
 * render_locations_file(). */
int render_locations_file_transition(const Config *old, const Config *c, char **ret,
                                     size_t *ret_size);

/* The keys file's maps that hold no secret (they follow the key maps): which
 * token, expiry, hashed text and key every secured location checks, for a
 * file link's parameters or a directory grant's path or cookie. old as for
 * render_locations_file_transition(). Returns as render_locations_file(). */
int render_grant_maps(const Config *old, const Config *c, char **ret, size_t *ret_size);

/* The same while nginx checks the link algorithms algs (a mask of
 * LINK_ALGORITHM_BIT(), c's own always among them): with hmac-sha256, the
 * locations test the verdict maps of render_grant_maps_algs(). The
 * functions above check the algorithms of old and c. */
int render_locations_file_algs(const Config *old, const Config *c, unsigned algs, char **ret,
                               size_t *ret_size);
int render_grant_maps_algs(const Config *old, const Config *c, unsigned algs, char **ret,
                           size_t *ret_size);

/* The njs module that checks HMAC-SHA256 links, written beside the
 * locations file as RENDER_NJS_FILE while nginx checks such links: fixed
 * text, no secret. render_njs_path() gives its path for c. */
#define RENDER_NJS_FILE "securelink.js"
const char *render_njs_text(void);
int render_njs_path(const Config *c, char **ret);

/* The include lines an admin adds to nginx's http {} and server {}. */
int render_include_lines(const Config *c, char **ret);

/* A path written unquoted into nginx's configuration: absolute, and nothing
 * that ends a token, starts a comment or a block, escapes, or is
 * interpolated. */
bool nginx_path_is_safe(const char *s);

/* What follows $arg_ in nginx: a variable name. */
bool nginx_param_is_safe(const char *s);

/* Both snippets are built in two passes over the same code: the first only
 * counts, the second writes into a buffer of exactly that size. The keys file
 * holds every secret, so it must never pass through realloc() (which would
 * leave copies in freed heap memory): it is written once, straight into
 * sodium_malloc'd memory. */
typedef struct Out {
	char *buf; /* NULL while counting */
	size_t size;
	size_t n;
} Out;

static inline void out_put(Out *o, const char *s)
{
	size_t l = strlen(s);

	if (o->buf) {
		assert(o->n + l <= o->size);
		memcpy(o->buf + o->n, s, l);
	}
	o->n += l;
}

static inline void out_put_u32(Out *o, uint32_t v)
{
	char buf[sizeof("4294967295")];

	(void)snprintf(buf, sizeof(buf), "%" PRIu32, v);
	out_put(o, buf);
}
