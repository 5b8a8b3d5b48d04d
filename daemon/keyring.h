/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"
#include "util.h"

/* The key ring: the model, its decisions (pure: every function that needs the
 * time takes `now`), and its file format. Secrets live in sodium_malloc'd
 * memory that is read-only except while it is written, and wiped when freed. */

#define KEYRING_FILE        "keyring"
#define KEYRING_PREV_FILE   "keyring.prev"
#define KEYRING_REVOKE_FILE "revoke"
/* An unreadable keyring, set aside at start for a post-mortem. */
#define KEYRING_CORRUPT_FILE "keyring.corrupt"
#define KEY_SECRET_BYTES     32 /* random bytes; the secret is their base64url */
#define KEY_SECRET_MAX       PROTO_IMPORT_SECRET_MAX /* longest secret, legacy ones included */

typedef enum KeyState {
	KEY_PUBLISHED, /* in the nginx snippet, not yet signing */
	KEY_ACTIVE,    /* signing; exactly one at a time once the ring has run */
	KEY_RETIRED,   /* no longer signing; kept until drop_after */
	_KEY_STATE_MAX,
} KeyState;

typedef struct Key {
	uint32_t kid;
	KeyState state;
	bool legacy;      /* imported secret: the map's default while it lives */
	usec_t published; /* CLOCK_REALTIME; 0 = not yet */
	usec_t activated;
	usec_t retired;
	usec_t drop_after;
	char *secret; /* sodium_malloc'd, NUL-terminated, read-only */
} Key;

typedef struct KeyRing {
	uint32_t next_kid; /* kids increase and are never reused */
	size_t n_keys;
	Key *keys; /* ordered by kid */
} KeyRing;

KeyRing *keyring_new(void);
KeyRing *keyring_free(KeyRing *r);
static inline void keyring_freep(KeyRing **r)
{
	keyring_free(*r);
}

/* Whether nginx keeps secret literally between double quotes in the keys
 * map: 1 to KEY_SECRET_MAX bytes, no '"' or '\\' (they would end or escape
 * the string), no '$' (a variable), no control bytes (the config parser
 * drops them). Never empty: an empty secret would make a token over
 * "<expires><uri> " valid for anyone. */
bool key_secret_is_nginx_safe(const void *secret, size_t len);

/* The active key, or NULL. */
Key *keyring_active(const KeyRing *r);
Key *keyring_find(const KeyRing *r, uint32_t kid);
/* The highest kid in the ring, 0 for an empty ring. */
uint32_t keyring_max_kid(const KeyRing *r);
/* The newest key in state published (a rotation in progress), or NULL. */
Key *keyring_pending(const KeyRing *r);
/* The key nginx uses for links without a kid: a living legacy key, else the
 * newest key that is not retired (a pending key before the active one, so
 * that activating it does not change the keys file); NULL only for an empty
 * ring. */
const Key *keyring_default(const KeyRing *r);

/* Adds a key with 32 fresh random bytes in state published at now.
 * Returns 0 with *ret_kid set, -E2BIG when the ring is full. */
int keyring_add_random(KeyRing *r, usec_t now, uint32_t *ret_kid);

/* Adds an imported legacy secret as a retired key that nginx keeps as its
 * default until now + max_link_ttl + clock_skew. Returns -EMSGSIZE for a
 * secret longer than KEY_SECRET_MAX bytes, -EINVAL for an empty one or one
 * nginx cannot hold literally inside double quotes ('"', '\\', '$', control
 * bytes), -E2BIG when the ring is full. */
int keyring_add_legacy(KeyRing *r, const char *secret, usec_t now, usec_t max_link_ttl,
                       usec_t clock_skew, uint32_t *ret_kid);

/* Makes kid (published) the active key at now; the previous active key is
 * retired with drop_after = now + max_link_ttl + clock_skew. With revoke, every
 * other key is removed instead. Returns 0 or -ENOENT / -EINVAL. */
int keyring_activate(KeyRing *r, uint32_t kid, usec_t now, usec_t max_link_ttl, usec_t clock_skew,
                     bool revoke);

/* A clock that ran ahead (a bad RTC before NTP) leaves published, activated
 * and retired times in the future, and with them the next rotation and every
 * drop. Moves each such time more than tolerance ahead of now back to now,
 * and each key's drop_after by as much as its retired time moved: the ring's
 * events keep their order, each key its links' lifetime. Returns how far the
 * latest of them lay ahead of now (0: none beyond tolerance, nothing changed). */
usec_t keyring_rebase_future(KeyRing *r, usec_t now, usec_t tolerance);

/* ROTATE revoke: removes every key but the active one (pending, retired and
 * legacy keys). Returns how many were removed. */
int keyring_revoke_all_but_active(KeyRing *r);

/* Removes keys whose drop_after has passed. Returns how many were removed. */
int keyring_drop_expired(KeyRing *r, usec_t now);

/* Serialises the ring into its file format, in sodium_malloc'd memory: the
 * caller frees it with keyring_text_free(). */
int keyring_serialize(const KeyRing *r, char **ret, size_t *ret_size);
void keyring_text_free(char *text, size_t size);

/* Parses the file format, checksum and every field checked. On error returns
 * -EBADMSG with *ret_error one malloc'd line naming the line and what is
 * wrong (never any secret). */
int keyring_parse(const char *text, size_t size, KeyRing **ret, char **ret_error);

/* Loads dir/keyring, falling back to dir/keyring.prev when it is missing or
 * corrupt (*ret_used_prev is set then, and *ret_error says why keyring was
 * not used). Returns -ENOENT when neither exists (a first start), -EBADMSG
 * with *ret_error when no good copy exists, -ELOOP or -EBADFD with
 * *ret_error when either is a symlink or not a regular file (never
 * followed, never blocked on). */
int keyring_load(const char *dir, KeyRing **ret, bool *ret_used_prev, char **ret_error);

/* Saves atomically as dir/keyring (mode 0600), keeping the replaced file as
 * dir/keyring.prev. */
int keyring_save(const KeyRing *r, const char *dir);

/* Saves the ring as dir/keyring.prev only: at start, so that keyring.prev
 * holds no key the loaded keyring does not (a crash inside
 * keyring_save_revoked() may have left revoked keys there). */
int keyring_save_prev(const KeyRing *r, const char *dir);

/* A revoke waits for nginx to take its fresh key; a restart meanwhile must
 * not turn it into a plain rotation that leaves the old active key's links
 * valid. dir/revoke names the fresh key's kid while the revoke is under way.
 * keyring_revoke_mark() writes it (atomically, 0600); keyring_revoke_marked()
 * reads it: 0 with *ret_kid, -ENOENT when no revoke is under way, -EBADMSG
 * for a file that holds no kid; keyring_revoke_unmark() removes it. */
int keyring_revoke_mark(const char *dir, uint32_t kid);
int keyring_revoke_marked(const char *dir, uint32_t *ret_kid);
int keyring_revoke_unmark(const char *dir);

/* Saves after a revoke: dir/keyring and dir/keyring.prev both become this
 * ring, and dir/keyring.corrupt goes, so that no copy of a revoked key is
 * left for a fallback to bring back. */
int keyring_save_revoked(const KeyRing *r, const char *dir);

const char *key_state_to_string(KeyState s);
