/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "derive.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* The base64 of DERIVE_MASTER_MAX_BYTES with openssl's line breaks fits
 * easily; a larger file is not a master secret. */
#define MASTER_TEXT_MAX 4096

static_assert(sizeof(DERIVE_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES,
              "crypto_kdf's context is exactly 8 bytes");
static_assert(crypto_kdf_KEYBYTES == 32, "a master reduces to a 32-byte kdf key");

static usec_t usec_add(usec_t a, usec_t b)
{
	return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

static usec_t usec_mul(usec_t a, uint64_t b)
{
	usec_t r;

	return __builtin_mul_overflow(a, b, &r) ? USEC_INFINITY : r;
}

static usec_t usec_min(usec_t a, usec_t b)
{
	return a < b ? a : b;
}

static int errno_or(int fallback)
{
	return errno > 0 ? -errno : fallback;
}

/* Puts the key region read-only; frees it on failure. */
static int seal(void *p, void **ret)
{
	if (sodium_mprotect_readonly(p) < 0) {
		int r = errno_or(-EIO);

		sodium_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

Masters *masters_free(Masters *m)
{
	if (!m)
		return NULL;
	sodium_free(m->current); /* wipes; accepts NULL */
	sodium_free(m->previous);
	free(m);
	return NULL;
}

static int decode(const char *text, size_t size, unsigned char *bin, size_t bin_max,
                  size_t *ret_len)
{
	/* openssl prints padded base64 in lines of 64; accept it without the
	 * padding too, which some tools strip. */
	static const int variants[] = { sodium_base64_VARIANT_ORIGINAL,
		                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING };

	for (size_t i = 0; i < ELEMENTSOF(variants); i++)
		if (sodium_base642bin(bin, bin_max, text, size, " \t\r\n", ret_len, NULL,
		                      variants[i]) == 0)
			return 0;
	return -EINVAL;
}

int derive_master_parse(const char *text, size_t size, unsigned char **ret_key)
{
	unsigned char *bin, *key;
	size_t bin_max, len = 0;
	void *sealed;
	int r;

	assert(text || size == 0);
	assert(ret_key);

	if (size > MASTER_TEXT_MAX)
		return -ERANGE;
	/* Room for whatever the text decodes to, so that a long master is
	 * told apart from one that is not base64 at all. */
	bin_max = size / 4 * 3 + 3;
	bin = sodium_malloc(bin_max);
	if (!bin)
		return -ENOMEM;
	r = decode(text, size, bin, bin_max, &len);
	if (r >= 0 && (len < DERIVE_MASTER_MIN_BYTES || len > DERIVE_MASTER_MAX_BYTES))
		r = -ERANGE;
	if (r < 0) {
		sodium_free(bin);
		return r;
	}

	key = sodium_malloc(crypto_kdf_KEYBYTES);
	if (!key) {
		sodium_free(bin);
		return -ENOMEM;
	}
	/* crypto_kdf takes a key of exactly 32 bytes: the usual master is that
	 * key, a longer one is compressed with BLAKE2b (unkeyed, 32 bytes). */
	if (len == crypto_kdf_KEYBYTES)
		memcpy(key, bin, len);
	else
		crypto_generichash(key, crypto_kdf_KEYBYTES, bin, len, NULL, 0);
	sodium_free(bin);

	r = seal(key, &sealed);
	if (r < 0)
		return r;
	*ret_key = sealed;
	return 0;
}

static int fail(char **ret_error, int r, const char *format, ...) _printf_(3, 4);
static int fail(char **ret_error, int r, const char *format, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, format);
		if (vasprintf(ret_error, format, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return r;
}

int derive_master_load(const char *path, unsigned char **ret_key, char **ret_error)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	char *text;
	size_t n = 0;
	int r;

	assert(path);
	assert(ret_key);

	/* O_NONBLOCK: a FIFO in its place must not hang the start; it is
	 * refused below. (No effect on a regular file.) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		return fail(ret_error, r, "%s: cannot open the master secret: %s", path,
		            strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		return fail(ret_error, r, "%s: cannot stat the master secret: %s", path,
		            strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return fail(ret_error, -EINVAL, "%s: the master secret is not a regular file",
		            path);
	/* The master derives every key of the fleet, past and future: a copy
	 * readable by anyone else is a leak, so refuse rather than warn. */
	if (st.st_mode & 0077)
		return fail(ret_error, -EPERM,
		            "%s: the master secret is readable by group or others (mode %04o); "
		            "make it private: chmod 600 %s",
		            path, (unsigned)(st.st_mode & 07777), path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return fail(
		    ret_error, -EPERM,
		    "%s: the master secret belongs to uid %u, neither root nor securelinkd's "
		    "user (chown root %s)",
		    path, (unsigned)st.st_uid, path);
	if (st.st_size > MASTER_TEXT_MAX)
		return fail(ret_error, -EFBIG,
		            "%s: too large for a master secret (make one with: openssl rand "
		            "-base64 32)",
		            path);

	/* The text is the secret itself: keep it out of the ordinary heap. */
	text = sodium_malloc(MASTER_TEXT_MAX + 1);
	if (!text)
		return -ENOMEM;
	for (;;) {
		ssize_t k = read(fd, text + n, MASTER_TEXT_MAX + 1 - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			sodium_free(text);
			return fail(ret_error, r, "%s: cannot read the master secret: %s", path,
			            strerror(-r));
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > MASTER_TEXT_MAX) {
			sodium_free(text);
			return fail(ret_error, -EFBIG, "%s: too large for a master secret", path);
		}
	}

	r = derive_master_parse(text, n, ret_key);
	sodium_free(text);
	if (r == -EINVAL)
		return fail(ret_error, r,
		            "%s: the master secret is not base64 (make one with: openssl rand "
		            "-base64 32)",
		            path);
	if (r == -ERANGE)
		return fail(ret_error, r,
		            "%s: the master secret must be base64 of %d to %d bytes (make one "
		            "with: openssl rand -base64 32)",
		            path, DERIVE_MASTER_MIN_BYTES, DERIVE_MASTER_MAX_BYTES);
	if (r < 0)
		return fail(ret_error, r, "%s: cannot load the master secret: %s", path,
		            strerror(-r));
	return 0;
}

/* Loads the master from file, else from the credential; *ret_key stays NULL
 * when neither exists and optional is set. */
static int load_one(const char *file, const char *credentials_dir, const char *credential,
                    bool optional, unsigned char **ret_key, char **ret_error)
{
	_cleanup_free_ char *path = NULL;

	*ret_key = NULL;
	if (file)
		return derive_master_load(file, ret_key, ret_error);

	if (!credentials_dir || credentials_dir[0] == '\0') {
		if (optional)
			return 0;
		return fail(
		    ret_error, -ENOKEY,
		    "no master secret: master_key_file is not set and $CREDENTIALS_DIRECTORY "
		    "is not either (give securelinkd.service the credential %s with "
		    "LoadCredentialEncrypted=, see securelinkd(8), or set master_key_file)",
		    credential);
	}
	if (asprintf(&path, "%s/%s", credentials_dir, credential) < 0)
		return -ENOMEM;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		if (optional)
			return 0;
		return fail(ret_error, -ENOKEY,
		            "no master secret: master_key_file is not set and there is no "
		            "credential %s in %s (add LoadCredentialEncrypted=%s:... to "
		            "securelinkd.service, see securelinkd(8))",
		            credential, credentials_dir, credential);
	}
	return derive_master_load(path, ret_key, ret_error);
}

int derive_masters_load(const Config *c, const char *credentials_dir, Masters **ret,
                        char **ret_error)
{
	_cleanup_(masters_freep) Masters *m = NULL;
	int r;

	assert(c);
	assert(ret);

	m = calloc(1, sizeof(Masters));
	if (!m)
		return -ENOMEM;

	r = load_one(c->master_key_file, credentials_dir, DERIVE_MASTER_CREDENTIAL, false,
	             &m->current, ret_error);
	if (r < 0)
		return r;
	r = load_one(c->master_key_file_previous, credentials_dir, DERIVE_PREVIOUS_CREDENTIAL, true,
	             &m->previous, ret_error);
	if (r < 0)
		return r;

	/* Both masters derive a key for every epoch, under the same kids:
	 * only an agreed moment tells every host which one an epoch uses. */
	if (m->previous && c->master_switch == 0)
		return fail(ret_error, -EINVAL,
		            "a previous master secret is given but master_switch is not set (set "
		            "it to the moment the new master takes over, the same on every host; "
		            "see securelinkd.conf(5))");
	if (!m->previous && c->master_switch != 0)
		return fail(ret_error, -EINVAL,
		            "master_switch is set but there is no previous master secret "
		            "(master_key_file_previous or the credential %s); once a master "
		            "roll is over, remove master_switch too",
		            DERIVE_PREVIOUS_CREDENTIAL);
	if (m->previous && sodium_memcmp(m->previous, m->current, crypto_kdf_KEYBYTES) == 0)
		return fail(ret_error, -EINVAL,
		            "the previous master secret is the same as the current one (the new "
		            "master goes in master_key_file or %s, the old one in "
		            "master_key_file_previous or %s)",
		            DERIVE_MASTER_CREDENTIAL, DERIVE_PREVIOUS_CREDENTIAL);
	m->master_switch = m->previous ? c->master_switch : 0;

	*ret = TAKE_PTR(m);
	return 0;
}

usec_t derive_epoch_start(const Config *c, uint32_t e)
{
	return usec_mul(c->rotate_every, e);
}

usec_t derive_epoch_deadline(const Config *c, uint32_t e)
{
	return usec_add(usec_add(usec_mul(c->rotate_every, (uint64_t)e + 1), c->clock_skew),
	                c->max_link_ttl);
}

int derive_window(const Config *c, usec_t now, DeriveWindow *ret)
{
	const usec_t R = c->rotate_every, S = c->clock_skew, T = c->max_link_ttl;
	uint64_t current, signing, first;

	assert(c);
	assert(ret);
	assert(R > 0);

	current = now / R;
	/* Epoch e signs only from clock_skew after it started: by then every
	 * host whose clock is within clock_skew has started e as well, and
	 * has published it for a whole epoch already. */
	signing = now >= S ? (now - S) / R : 0;
	/* Epoch e can have signed until clock_skew after e + 1 started, for
	 * max_link_ttl: nginx needs it while (e+1)R + S + T > now. */
	first = now >= S + T ? (now - S - T) / R : 0;
	if (first == 0)
		first = 1; /* kid 0 never exists */

	/* kid 0 never matches a key, and kids (and the ring's next_kid) are
	 * u32. */
	if (signing == 0 || current + 2 > UINT32_MAX)
		return -ERANGE;
	if (current + 1 - first + 1 > DERIVE_MAX_EPOCHS)
		return -ERANGE;

	*ret = (DeriveWindow){
		.first = (uint32_t)first,
		.current = (uint32_t)current,
		.signing = (uint32_t)signing,
		.last = (uint32_t)(current + 1),
		.next_change = usec_min(
		    usec_min(usec_mul(R, current + 1), usec_add(usec_mul(R, signing + 1), S)),
		    derive_epoch_deadline(c, (uint32_t)first)),
	};
	return 0;
}

int derive_secret(const unsigned char *key, uint64_t e, char *ret, size_t size)
{
	unsigned char sub[KEY_SECRET_BYTES];

	assert(key);
	assert(ret);

	if (size < DERIVE_SECRET_SIZE)
		return -ENOBUFS;
	if (crypto_kdf_derive_from_key(sub, sizeof(sub), e, DERIVE_CONTEXT, key) != 0)
		return -EINVAL;
	sodium_bin2base64(ret, size, sub, sizeof(sub), B64_VARIANT);
	sodium_memzero(sub, sizeof(sub));
	return 0;
}

usec_t derive_previous_until(const Masters *m, const Config *c)
{
	uint64_t first_new;

	if (!m->previous)
		return 0;
	/* The first epoch of the new master is the first one that starts at
	 * or after master_switch. */
	first_new =
	    m->master_switch / c->rotate_every + (m->master_switch % c->rotate_every != 0 ? 1 : 0);
	if (first_new == 0 || first_new - 1 > UINT32_MAX)
		return USEC_INFINITY;
	return derive_epoch_deadline(c, (uint32_t)(first_new - 1));
}

const unsigned char *derive_master_for(const Masters *m, const Config *c, uint32_t e)
{
	if (m->previous && derive_epoch_start(c, e) < m->master_switch)
		return m->previous;
	return m->current;
}

static int epoch_secret(const Masters *m, const Config *c, uint32_t e, char **ret)
{
	char *p;
	void *sealed;
	int r;

	p = sodium_malloc(DERIVE_SECRET_SIZE);
	if (!p)
		return -ENOMEM;
	r = derive_secret(derive_master_for(m, c, e), e, p, DERIVE_SECRET_SIZE);
	if (r < 0) {
		sodium_free(p);
		return r;
	}
	r = seal(p, &sealed);
	if (r < 0)
		return r;
	*ret = sealed;
	return 0;
}

int derive_ring(const Masters *m, const Config *c, usec_t now, uint32_t confirmed, KeyRing **ret,
                usec_t *ret_until)
{
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	const usec_t S = c->clock_skew;
	DeriveWindow w;
	uint32_t active = 0;
	int r;

	assert(m);
	assert(c);
	assert(ret);

	r = derive_window(c, now, &w);
	if (r < 0)
		return r;

	/* What this host signs with must be in its own nginx first: the
	 * schedule's epoch once nginx has confirmed it, else, while nginx
	 * lags (reloads failing), the newest epoch it does have, as long as
	 * links may still be signed with it (the manager caps their expiry
	 * at derive_epoch_deadline(), which every nginx honours). Every other
	 * host's nginx published that epoch too: it lies between first and
	 * the schedule's epoch. */
	if (w.signing <= confirmed)
		active = w.signing;
	else if (confirmed >= w.first)
		active = confirmed;

	ring = keyring_new();
	if (!ring)
		return -ENOMEM;
	ring->keys = calloc(w.last - w.first + 1, sizeof(Key));
	if (!ring->keys)
		return -ENOMEM;

	for (uint32_t e = w.first; e <= w.last; e++) {
		Key *k = &ring->keys[ring->n_keys];
		uint32_t cut = active ? active : w.signing;

		r = epoch_secret(m, c, e, &k->secret);
		if (r < 0)
			return r;
		ring->n_keys++;

		k->kid = e;
		/* Times are the schedule's, the same on every host. */
		k->published = e > 1 ? derive_epoch_start(c, e - 1) : derive_epoch_start(c, e);
		if (e < cut) {
			k->state = KEY_RETIRED;
			k->activated = usec_add(derive_epoch_start(c, e), S);
			k->retired = usec_add(derive_epoch_start(c, e + 1), S);
			k->drop_after = derive_epoch_deadline(c, e);
		} else if (e == active) {
			k->state = KEY_ACTIVE;
			k->activated = usec_add(derive_epoch_start(c, e), S);
		} else
			k->state = KEY_PUBLISHED;
	}
	ring->next_kid = w.last + 1;

	*ret = TAKE_PTR(ring);
	if (ret_until)
		*ret_until = w.next_change;
	return 0;
}
