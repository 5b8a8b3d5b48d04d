/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "config.h"
#include "keyring.h"

/* Fleet mode ([keys] mode = derived): every host holds the same master
 * secret and derives the key of epoch e = floor(now / rotate_every) from it,
 * so hosts agree on every key without talking to each other. Everything here
 * is pure except the loading of the master; functions that need the time
 * take `now` (CLOCK_REALTIME). */

/* crypto_kdf's context: exactly 8 bytes, fixed forever (changing it changes
 * every key of every fleet). */
#define DERIVE_CONTEXT "slinkkey"

#define DERIVE_MASTER_CREDENTIAL   "securelink-master"
#define DERIVE_PREVIOUS_CREDENTIAL "securelink-master-previous"

#define DERIVE_MASTER_MIN_BYTES 32   /* openssl rand -base64 32 */
#define DERIVE_MASTER_MAX_BYTES 1024 /* anything longer is the wrong file */
/* Most epochs in one keys file: (max_link_ttl + clock_skew) / rotate_every + 3. */
#define DERIVE_MAX_EPOCHS 256

/* The master secrets, each reduced to a crypto_kdf key in sodium_malloc'd
 * memory that is read-only, and wiped when freed. */
typedef struct Masters {
	unsigned char *current;  /* crypto_kdf_KEYBYTES */
	unsigned char *previous; /* NULL: no master roll in progress */
	usec_t master_switch;    /* with previous: epochs starting before this use it */
} Masters;

Masters *masters_free(Masters *m);
static inline void masters_freep(Masters **m)
{
	masters_free(*m);
}

/* Turns the master file's text (base64 as `openssl rand -base64 N` prints it,
 * N >= 32; whitespace and line breaks ignored) into a crypto_kdf key: a
 * master of exactly 32 bytes is the key itself, a longer one is hashed to 32
 * bytes with BLAKE2b-256. Returns 0 with *ret_key sodium_malloc'd and
 * read-only, -EINVAL when the text is not base64, -ERANGE when it holds fewer
 * than 32 or more than DERIVE_MASTER_MAX_BYTES bytes. */
int derive_master_parse(const char *text, size_t size, unsigned char **ret_key);

/* Reads a master from path, which must be a regular file that neither group
 * nor others may read (-EPERM otherwise). On error returns a negative errno
 * and sets *ret_error to one malloc'd line naming the file and the fix. */
int derive_master_load(const char *path, unsigned char **ret_key, char **ret_error);

/* Loads the masters for c: master_key_file, else the credential
 * securelink-master in credentials_dir ($CREDENTIALS_DIRECTORY, may be NULL);
 * master_key_file_previous, else the credential securelink-master-previous
 * if it exists. A previous master needs master_switch and master_switch
 * needs a previous master. On error returns a negative errno with
 * *ret_error set as above. */
int derive_masters_load(const Config *c, const char *credentials_dir, Masters **ret,
                        char **ret_error);

/* The epochs of the schedule at one moment. */
typedef struct DeriveWindow {
	uint32_t first;     /* oldest epoch whose links may still live */
	uint32_t current;   /* floor(now / rotate_every) */
	uint32_t signing;   /* the epoch links are signed with: clock_skew late */
	uint32_t last;      /* current + 1: published an epoch ahead */
	usec_t next_change; /* when any of the above changes next */
} DeriveWindow;

/* Computes the window at now. Returns 0, or -ERANGE when an epoch does not
 * fit a kid (u32, never 0) or the window holds more than DERIVE_MAX_EPOCHS. */
int derive_window(const Config *c, usec_t now, DeriveWindow *ret);

/* When epoch e starts, and the latest `expires` a link signed with e may
 * carry: e ends (as signing epoch) clock_skew after the next one starts,
 * and a link lives max_link_ttl at most. Past that, nginx drops e. */
usec_t derive_epoch_start(const Config *c, uint32_t e);
usec_t derive_epoch_deadline(const Config *c, uint32_t e);

/* The secret of epoch e under key: base64url (no padding) of
 * crypto_kdf_derive_from_key(32 bytes, subkey_id = e, DERIVE_CONTEXT), into
 * ret (sodium_base64_ENCODED_LEN(32, URLSAFE_NO_PADDING) bytes). */
#define DERIVE_SECRET_SIZE                                                                         \
	sodium_base64_ENCODED_LEN(KEY_SECRET_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
int derive_secret(const unsigned char *key, uint64_t e, char *ret, size_t size);

/* When the previous master's last epoch leaves every nginx: from then on the
 * previous master and master_switch can be removed. 0 without a previous
 * master. */
usec_t derive_previous_until(const Masters *m, const Config *c);

/* Which master derives epoch e: the previous one for epochs that start
 * before master_switch, else the current one. */
const unsigned char *derive_master_for(const Masters *m, const Config *c, uint32_t e);

/* Builds the key ring nginx and the signer see at now: every epoch of the
 * window, kid = epoch. The signing epoch is active once nginx on this host
 * has it: confirmed is the newest epoch its keys file is confirmed to hold (0:
 * none yet); when nginx lags behind the schedule, the newest epoch it has
 * stays active while it is in the window (see derive_epoch_deadline), and
 * with none, no key is active. *ret_until is when the ring changes next.
 * Returns 0, -ERANGE (see derive_window) or -ENOMEM. */
int derive_ring(const Masters *m, const Config *c, usec_t now, uint32_t confirmed, KeyRing **ret,
                usec_t *ret_until);
