/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyring-internal.h"

#define RANDOM_SECRET_LEN (sodium_base64_ENCODED_LEN(KEY_SECRET_BYTES, B64_VARIANT) - 1)

static const char *const key_state_table[_KEY_STATE_MAX] = {
	[KEY_PUBLISHED] = "published",
	[KEY_ACTIVE] = "active",
	[KEY_RETIRED] = "retired",
};

const char *key_state_to_string(KeyState s)
{
	if ((unsigned)s >= _KEY_STATE_MAX)
		return NULL;
	return key_state_table[s];
}

static usec_t usec_add(usec_t a, usec_t b)
{
	/* Saturate: a drop time of "never" is safer than one in 1970. */
	return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

bool key_secret_is_nginx_safe(const void *secret, size_t len)
{
	const unsigned char *p = secret;

	if (len == 0 || len > KEY_SECRET_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '"' || p[i] == '\\' || p[i] == '$')
			return false;
	return true;
}

int key_secret_new(const void *data, size_t len, char **ret)
{
	char *p;

	assert(len > 0 && len <= KEY_SECRET_MAX);

	p = sodium_malloc(len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, data, len);
	p[len] = '\0';
	if (sodium_mprotect_readonly(p) < 0) {
		int r = errno_or(-EIO);

		sodium_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

/* A fresh random secret: base64url of KEY_SECRET_BYTES random bytes, written
 * straight into its own protected region. */
static int secret_new_random(char **ret)
{
	unsigned char raw[KEY_SECRET_BYTES];
	char *p;
	int r = 0;

	p = sodium_malloc(RANDOM_SECRET_LEN + 1);
	if (!p)
		return -ENOMEM;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(p, RANDOM_SECRET_LEN + 1, raw, sizeof(raw), B64_VARIANT);
	sodium_memzero(raw, sizeof(raw));

	if (sodium_mprotect_readonly(p) < 0) {
		r = errno_or(-EIO);
		sodium_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

static void key_done(Key *k)
{
	sodium_free(k->secret); /* wipes; accepts NULL */
	k->secret = NULL;
}

KeyRing *keyring_new(void)
{
	KeyRing *r;

	/* Idempotent, and needed before sodium_malloc() or randombytes_buf(). */
	if (sodium_init() < 0) {
		errno = EIO;
		return NULL;
	}

	r = calloc(1, sizeof(KeyRing));
	if (!r)
		return NULL;
	/* kid 0 is never handed out, so "kid=0" can never match a key. */
	r->next_kid = 1;
	return r;
}

KeyRing *keyring_free(KeyRing *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_keys; i++)
		key_done(&r->keys[i]);
	free(r->keys);
	free(r);
	return NULL;
}

uint32_t keyring_max_kid(const KeyRing *r)
{
	return r->n_keys > 0 ? r->keys[r->n_keys - 1].kid : 0;
}

Key *keyring_find(const KeyRing *r, uint32_t kid)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_keys; i++)
		if (r->keys[i].kid == kid)
			return &r->keys[i];
	return NULL;
}

Key *keyring_active(const KeyRing *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_keys; i++)
		if (r->keys[i].state == KEY_ACTIVE)
			return &r->keys[i];
	return NULL;
}

Key *keyring_pending(const KeyRing *r)
{
	if (!r)
		return NULL;
	/* Keys are ordered by kid, so the last match is the newest. */
	for (size_t i = r->n_keys; i > 0; i--)
		if (r->keys[i - 1].state == KEY_PUBLISHED)
			return &r->keys[i - 1];
	return NULL;
}

const Key *keyring_default(const KeyRing *r)
{
	const Key *k;

	if (!r || r->n_keys == 0)
		return NULL;

	/* Links from before the import carry no kid: while the legacy key is
	 * in the ring they must keep verifying, so it stays the default. New
	 * links always carry a kid and never depend on the default. */
	for (size_t i = r->n_keys; i > 0; i--)
		if (r->keys[i - 1].legacy)
			return &r->keys[i - 1];

	/* The newest key that is not retired: a pending key before the active
	 * one. Activation then leaves the rendered snippet unchanged, so it
	 * needs no second reload; either is a real secret nobody outside
	 * securelinkd knows. */
	k = keyring_pending(r);
	if (k)
		return k;
	k = keyring_active(r);
	if (k)
		return k;
	/* Only retired keys (a hand-made ring): still never an empty default. */
	return &r->keys[r->n_keys - 1];
}

/* Appends k with the next kid; on success the ring owns k's secret. */
static int keyring_append(KeyRing *r, Key *k, uint32_t *ret_kid)
{
	Key *keys;

	if (r->n_keys >= KEYRING_MAX_KEYS)
		return -E2BIG;
	/* kid must stay below next_kid, which is itself a u32. */
	if (r->next_kid == UINT32_MAX)
		return -EOVERFLOW;

	keys = reallocarray(r->keys, r->n_keys + 1, sizeof(Key));
	if (!keys)
		return -ENOMEM;
	r->keys = keys;

	k->kid = r->next_kid++;
	r->keys[r->n_keys++] = *k;
	if (ret_kid)
		*ret_kid = k->kid;
	return 0;
}

static void keyring_remove_at(KeyRing *r, size_t i)
{
	assert(i < r->n_keys);
	key_done(&r->keys[i]);
	memmove(&r->keys[i], &r->keys[i + 1], (r->n_keys - i - 1) * sizeof(Key));
	r->n_keys--;
}

int keyring_add_random(KeyRing *r, usec_t now, uint32_t *ret_kid)
{
	Key k = {
		.state = KEY_PUBLISHED,
		.published = now,
	};
	int q;

	if (!r)
		return -EINVAL;
	if (r->n_keys >= KEYRING_MAX_KEYS)
		return -E2BIG;

	q = secret_new_random(&k.secret);
	if (q < 0)
		return q;
	q = keyring_append(r, &k, ret_kid);
	if (q < 0)
		key_done(&k);
	return q;
}

int keyring_add_legacy(KeyRing *r, const char *secret, usec_t now, usec_t max_link_ttl,
                       usec_t clock_skew, uint32_t *ret_kid)
{
	Key k = {
		.state = KEY_RETIRED,
		.legacy = true,
		.published = now,
		.retired = now,
		/* Links signed with it before the import live at most
		 * max_link_ttl from now, give or take the clock skew. */
		.drop_after = usec_add(usec_add(now, max_link_ttl), clock_skew),
	};
	size_t len;
	int q;

	if (!r || !secret)
		return -EINVAL;
	len = strnlen(secret, KEY_SECRET_MAX + 1);
	if (len > KEY_SECRET_MAX)
		return -EMSGSIZE;
	if (len == 0 || !key_secret_is_nginx_safe(secret, len))
		return -EINVAL;
	if (r->n_keys >= KEYRING_MAX_KEYS)
		return -E2BIG;

	q = key_secret_new(secret, len, &k.secret);
	if (q < 0)
		return q;
	q = keyring_append(r, &k, ret_kid);
	if (q < 0)
		key_done(&k);
	return q;
}

int keyring_activate(KeyRing *r, uint32_t kid, usec_t now, usec_t max_link_ttl, usec_t clock_skew,
                     bool revoke)
{
	Key *k, *old;

	if (!r)
		return -EINVAL;
	k = keyring_find(r, kid);
	if (!k)
		return -ENOENT;
	/* Only a key nginx already has may sign, and a legacy secret never
	 * signs: it may be weak or known to the old deployment. */
	if (k->legacy || k->state != KEY_PUBLISHED)
		return -EINVAL;

	old = keyring_active(r);
	if (old) {
		old->state = KEY_RETIRED;
		old->retired = now;
		/* Its last link expires at most max_link_ttl from now. */
		old->drop_after = usec_add(usec_add(now, max_link_ttl), clock_skew);
	}
	k->state = KEY_ACTIVE;
	k->activated = now;

	if (revoke)
		/* Compromise: every link signed with another key must stop
		 * working with the next reload. */
		for (size_t i = r->n_keys; i > 0; i--)
			if (r->keys[i - 1].kid != kid)
				keyring_remove_at(r, i - 1);

	return 0;
}

usec_t keyring_rebase_future(KeyRing *r, usec_t now, usec_t tolerance)
{
	usec_t latest = 0, limit = usec_add(now, tolerance);

	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *k = &r->keys[i];
		const usec_t t[] = { k->published, k->activated, k->retired };

		for (size_t j = 0; j < ELEMENTSOF(t); j++)
			if (t[j] > latest)
				latest = t[j];
	}
	if (latest <= limit)
		return 0;

	for (size_t i = 0; i < r->n_keys; i++) {
		Key *k = &r->keys[i];

		if (k->retired > now) {
			usec_t shift = k->retired - now;

			k->drop_after = k->drop_after > shift ? k->drop_after - shift : now;
			k->retired = now;
		}
		if (k->activated > now)
			k->activated = now;
		if (k->published > now)
			k->published = now;
	}
	return latest - now;
}

int keyring_revoke_all_but_active(KeyRing *r)
{
	int n = 0;

	if (!r)
		return -EINVAL;
	for (size_t i = r->n_keys; i > 0; i--)
		if (r->keys[i - 1].state != KEY_ACTIVE) {
			keyring_remove_at(r, i - 1);
			n++;
		}
	return n;
}

int keyring_drop_expired(KeyRing *r, usec_t now)
{
	int n = 0;

	if (!r)
		return -EINVAL;
	for (size_t i = r->n_keys; i > 0; i--) {
		const Key *k = &r->keys[i - 1];

		/* Only retired keys have a drop time; the active key and a
		 * published one waiting for activation always stay. */
		if (k->state == KEY_RETIRED && k->drop_after != 0 && k->drop_after <= now) {
			keyring_remove_at(r, i - 1);
			n++;
		}
	}
	return n;
}

/* What keyring_parse() accepts, as a yes/no: serialising a ring that the
 * parser would then refuse would leave an unloadable file behind. */
