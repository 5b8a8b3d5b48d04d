/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nginxconf.h"
#include "render.h"

static bool secret_is_nginx_safe(const char *s)
{
	return key_secret_is_nginx_safe(s, strnlen(s, KEY_SECRET_MAX + 1));
}

/* The body of a map of kids to secrets, after its first line. */
static void render_key_map(Out *o, const KeyRing *r, const Key *def)
{
	/* Links without a kid, or with one nginx does not know, are checked
	 * against a real key: never an empty or guessable default. */
	out_put(o, "\tdefault \"");
	out_put(o, def->secret);
	out_put(o, "\";\n");
	/* Every key of the ring: published ones must reach nginx before they
	 * sign, retired and legacy ones while their links may live. */
	for (size_t i = 0; i < r->n_keys; i++) {
		out_put(o, "\t\"");
		out_put_u32(o, r->keys[i].kid);
		out_put(o, "\" \"");
		out_put(o, r->keys[i].secret);
		out_put(o, "\";\n");
	}
	out_put(o, "}\n");
}

static void render_keys(Out *o, const KeyRing *r, const char *key_param, const char *old_key_param,
                        const Key *def, const char *grant_maps)
{
	out_put(o, "# written by securelinkd; do not edit\n");
	out_put(o, "map $arg_");
	out_put(o, key_param);
	/* While key_param changes, links carry either name: the map reads
	 * both (one of them is empty). */
	if (!streq(key_param, old_key_param)) {
		out_put(o, "$arg_");
		out_put(o, old_key_param);
	}
	out_put(o, " $securelink_secret {\n");
	render_key_map(o, r, def);
	/* The same keys for directory grants, whose kid is in the path or
	 * the cookie: the grant location's regex or the cookie map
	 * (render_grant_maps()) sets $securelink_gk. */
	out_put(o, "map $securelink_gk $securelink_grant_secret {\n");
	render_key_map(o, r, def);
	out_put(o, grant_maps);
}

int render_keys_file(const KeyRing *r, const Config *c, char **ret, size_t *ret_size)
{
	return render_keys_file_transition(r, c, c, ret, ret_size);
}

int render_keys_file_transition(const KeyRing *r, const Config *old, const Config *c, char **ret,
                                size_t *ret_size)
{
	return render_keys_file_algs(
	    r, old, c, LINK_ALGORITHM_BIT(old->algorithm) | LINK_ALGORITHM_BIT(c->algorithm), ret,
	    ret_size);
}

int render_keys_file_algs(const KeyRing *r, const Config *old, const Config *c, unsigned algs,
                          char **ret, size_t *ret_size)
{
	_cleanup_free_ char *grant_maps = NULL;
	const char *old_key_param;
	size_t grant_maps_size;
	Out o = {};
	const Key *def;
	int q;

	assert(r);
	assert(old);
	assert(c);
	assert(ret);
	assert(ret_size);

	def = keyring_default(r);
	if (r->n_keys == 0 || !def)
		return -ENOKEY;

	old_key_param = render_transition_possible(old, c) ? old->key_param : c->key_param;
	if (!nginx_param_is_safe(c->key_param) || !nginx_param_is_safe(old_key_param))
		return -EINVAL;
	/* The keyring refuses such secrets already; a key that slipped through
	 * must still never be written where it would break or weaken nginx. */
	for (size_t i = 0; i < r->n_keys; i++)
		if (!r->keys[i].secret || !secret_is_nginx_safe(r->keys[i].secret))
			return -EINVAL;
	if (!secret_is_nginx_safe(def->secret))
		return -EINVAL;

	q = render_grant_maps_algs(old, c, algs, &grant_maps, &grant_maps_size);
	if (q < 0)
		return q;

	render_keys(&o, r, c->key_param, old_key_param, def, grant_maps);

	o.size = o.n;
	o.n = 0;
	o.buf = sodium_malloc(o.size + 1);
	if (!o.buf)
		return -ENOMEM;
	render_keys(&o, r, c->key_param, old_key_param, def, grant_maps);
	assert(o.n == o.size);
	o.buf[o.n] = '\0';

	*ret = o.buf;
	*ret_size = o.n;
	return 0;
}
