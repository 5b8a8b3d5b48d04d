/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "keyring-internal.h"

/* The key ring's file format (text, one line per key, a BLAKE2b checksum
 * line last) and its files in the state directory: keyring, keyring.prev,
 * the revoke mark. The model is in keyring.c. */

#define KEYRING_HEADER   "securelink-keyring 1"
#define CHECKSUM_BYTES   32
#define CHECKSUM_HEX_LEN (CHECKSUM_BYTES * 2)

/* Longest encodings, without NUL. */
#define SECRET_B64_MAX (sodium_base64_ENCODED_LEN(KEY_SECRET_MAX, B64_VARIANT) - 1)
#define U32_DIGITS     10
#define U64_DIGITS     20

/* "key <kid> <state> <legacy> <4 times> <secret>\n" at its longest. */
#define KEY_LINE_MAX                                                                               \
	(STRLEN("key ") + U32_DIGITS + 1 + STRLEN("published") + 1 + 1 + 4 * (1 + U64_DIGITS) +    \
	 1 + SECRET_B64_MAX + 1)
/* The largest file keyring_serialize() can write; anything bigger is not ours. */
#define KEYRING_TEXT_MAX                                                                           \
	(STRLEN(KEYRING_HEADER "\n") + STRLEN("next_kid \n") + U32_DIGITS +                        \
	 KEYRING_MAX_KEYS * KEY_LINE_MAX + STRLEN("checksum \n") + CHECKSUM_HEX_LEN)

#define KEY_LINE_FIELDS 9

static bool keyring_is_valid(const KeyRing *r)
{
	unsigned n_active = 0;

	if (r->next_kid == 0 || r->n_keys > KEYRING_MAX_KEYS || (r->n_keys > 0 && !r->keys))
		return false;
	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *k = &r->keys[i];
		size_t len;

		if (k->kid == 0 || k->kid >= r->next_kid)
			return false;
		if (i > 0 && k->kid <= r->keys[i - 1].kid)
			return false;
		if ((unsigned)k->state >= _KEY_STATE_MAX)
			return false;
		if (k->state == KEY_ACTIVE && ++n_active > 1)
			return false;
		if (k->legacy && k->state != KEY_RETIRED)
			return false;
		if (!k->secret)
			return false;
		len = strnlen(k->secret, KEY_SECRET_MAX + 1);
		if (len == 0 || len > KEY_SECRET_MAX || !key_secret_is_nginx_safe(k->secret, len))
			return false;
	}
	return true;
}

static int checksum_hex(const char *text, size_t size, char ret[static CHECKSUM_HEX_LEN + 1])
{
	unsigned char hash[CHECKSUM_BYTES];

	if (crypto_generichash(hash, sizeof(hash), (const unsigned char *)text, size, NULL, 0) != 0)
		return -EIO;
	sodium_bin2hex(ret, CHECKSUM_HEX_LEN + 1, hash, sizeof(hash));
	return 0;
}

int keyring_serialize(const KeyRing *r, char **ret, size_t *ret_size)
{
	const size_t max = KEYRING_TEXT_MAX + 1;
	size_t n = 0;
	char *t;
	int k, q;

	if (!r || !ret || !ret_size)
		return -EINVAL;
	if (!keyring_is_valid(r))
		return -EINVAL;

	/* The text holds every secret (encoded, not hidden): locked memory,
	 * wiped by keyring_text_free(). */
	t = sodium_malloc(max);
	if (!t)
		return -ENOMEM;

	k = snprintf(t, max, KEYRING_HEADER "\nnext_kid %" PRIu32 "\n", r->next_kid);
	if (k < 0 || (size_t)k >= max)
		goto overflow;
	n = (size_t)k;

	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *key = &r->keys[i];
		size_t len = strlen(key->secret);

		k = snprintf(t + n, max - n,
		             "key %" PRIu32 " %s %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
		             " ",
		             key->kid, key_state_to_string(key->state), key->legacy ? 1 : 0,
		             key->published, key->activated, key->retired, key->drop_after);
		if (k < 0 || (size_t)k >= max - n)
			goto overflow;
		n += (size_t)k;

		if (sodium_base64_ENCODED_LEN(len, B64_VARIANT) + 1 > max - n)
			goto overflow;
		sodium_bin2base64(t + n, max - n, (const unsigned char *)key->secret, len,
		                  B64_VARIANT);
		n += strlen(t + n);
		t[n++] = '\n';
	}

	if (STRLEN("checksum ") + CHECKSUM_HEX_LEN + 2 > max - n)
		goto overflow;
	memcpy(t + n, "checksum ", STRLEN("checksum "));
	q = checksum_hex(t, n, t + n + STRLEN("checksum "));
	if (q < 0) {
		sodium_free(t);
		return q;
	}
	n += STRLEN("checksum ") + CHECKSUM_HEX_LEN;
	t[n++] = '\n';
	t[n] = '\0';

	*ret = t;
	*ret_size = n;
	return 0;

overflow:
	/* KEYRING_TEXT_MAX is computed from the same limits the ring checks. */
	assert(false);
	sodium_free(t);
	return -ENOBUFS;
}

void keyring_text_free(char *text, size_t size)
{
	(void)size; /* sodium_free() knows the region and wipes all of it */
	sodium_free(text);
}

/* Parsing. */

typedef struct Field {
	const char *p;
	size_t len;
} Field;

static bool field_is(Field f, const char *s)
{
	return f.len == strlen(s) && memcmp(f.p, s, f.len) == 0;
}

static bool field_is_lower_hex(Field f, size_t len)
{
	if (f.len != len)
		return false;
	for (size_t i = 0; i < f.len; i++)
		if (!((f.p[i] >= '0' && f.p[i] <= '9') || (f.p[i] >= 'a' && f.p[i] <= 'f')))
			return false;
	return true;
}

/* Splits a line on single spaces. Returns the number of fields, -EINVAL on an
 * empty field (leading, trailing or doubled space), -E2BIG on more than max. */
static int split_fields(const char *line, size_t len, Field *fields, size_t max)
{
	size_t n = 0;
	const char *p = line, *end = line + len;

	for (;;) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *fe = sp ? sp : end;

		if (fe == p)
			return -EINVAL;
		if (n >= max)
			return -E2BIG;
		fields[n++] = (Field){ p, (size_t)(fe - p) };
		if (!sp)
			return (int)n;
		p = sp + 1;
	}
}

/* A decimal number in canonical form (no sign, no leading zeros) <= max. */
static int field_u64(Field f, uint64_t max, uint64_t *ret)
{
	char buf[U64_DIGITS + 1];
	uint64_t v;
	int r;

	if (f.len == 0 || f.len > U64_DIGITS) {
		for (size_t i = 0; i < f.len; i++)
			if (f.p[i] < '0' || f.p[i] > '9')
				return -EINVAL;
		return f.len == 0 ? -EINVAL : -ERANGE;
	}
	if (f.len > 1 && f.p[0] == '0')
		return -EINVAL;
	memcpy(buf, f.p, f.len);
	buf[f.len] = '\0';
	r = parse_u64(buf, &v);
	if (r < 0)
		return r;
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static int parse_error(char **ret_error, unsigned line, const char *fmt, ...) _printf_(3, 4);
static int parse_error(char **ret_error, unsigned line, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int k;

	if (!ret_error)
		return -EBADMSG;
	va_start(ap, fmt);
	k = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;
	if (asprintf(ret_error, "line %u: %s", line, msg) < 0) {
		*ret_error = NULL;
		return -ENOMEM;
	}
	return -EBADMSG;
}

static int parse_number(Field f, uint64_t min, uint64_t max, const char *name, unsigned line,
                        uint64_t *ret, char **ret_error)
{
	int r;

	r = field_u64(f, max, ret);
	if (r == -ERANGE || (r >= 0 && *ret < min))
		return parse_error(ret_error, line, "%s is out of range (%" PRIu64 "..%" PRIu64 ")",
		                   name, min, max);
	if (r < 0)
		return parse_error(ret_error, line, "%s is not a plain decimal number", name);
	return 0;
}

static void wipe_secret_buf(unsigned char (*buf)[KEY_SECRET_MAX])
{
	sodium_memzero(*buf, sizeof(*buf));
}

static int parse_key_line(KeyRing *ring, const char *line, size_t len, unsigned lineno,
                          unsigned *n_active, char **ret_error)
{
	_cleanup_(wipe_secret_buf) unsigned char secret[KEY_SECRET_MAX];
	static const char *const time_names[] = { "published", "activated", "retired",
		                                  "drop_after" };
	usec_t *times[ELEMENTSOF(time_names)];
	Field f[KEY_LINE_FIELDS + 1];
	Key k = {};
	const char *b64_end = NULL;
	size_t secret_len = 0;
	uint64_t v;
	Key *keys;
	int n, r;

	n = split_fields(line, len, f, ELEMENTSOF(f));
	if (n == -E2BIG)
		return parse_error(ret_error, lineno, "a key record has %d fields, found more",
		                   KEY_LINE_FIELDS);
	if (n < 0)
		return parse_error(ret_error, lineno, "fields must be separated by single spaces");
	if (n != KEY_LINE_FIELDS)
		return parse_error(ret_error, lineno, "a key record has %d fields, found %d",
		                   KEY_LINE_FIELDS, n);
	if (ring->n_keys >= KEYRING_MAX_KEYS)
		return parse_error(ret_error, lineno, "more than %d keys", KEYRING_MAX_KEYS);

	r = parse_number(f[1], 1, UINT32_MAX, "kid", lineno, &v, ret_error);
	if (r < 0)
		return r;
	k.kid = (uint32_t)v;
	if (ring->n_keys > 0 && k.kid <= ring->keys[ring->n_keys - 1].kid)
		return parse_error(ret_error, lineno,
		                   "kid %" PRIu32 " is not greater than the previous kid %" PRIu32,
		                   k.kid, ring->keys[ring->n_keys - 1].kid);
	if (k.kid >= ring->next_kid)
		return parse_error(ret_error, lineno,
		                   "kid %" PRIu32 " is not below next_kid %" PRIu32, k.kid,
		                   ring->next_kid);

	for (k.state = 0; k.state < _KEY_STATE_MAX; k.state++)
		if (field_is(f[2], key_state_to_string(k.state)))
			break;
	if (k.state == _KEY_STATE_MAX)
		return parse_error(ret_error, lineno, "state must be published, active or retired");

	if (field_is(f[3], "0"))
		k.legacy = false;
	else if (field_is(f[3], "1"))
		k.legacy = true;
	else
		return parse_error(ret_error, lineno, "legacy flag must be 0 or 1");

	times[0] = &k.published;
	times[1] = &k.activated;
	times[2] = &k.retired;
	times[3] = &k.drop_after;
	for (size_t i = 0; i < ELEMENTSOF(time_names); i++) {
		r = parse_number(f[4 + i], 0, UINT64_MAX, time_names[i], lineno, times[i],
		                 ret_error);
		if (r < 0)
			return r;
	}

	if (k.state == KEY_ACTIVE) {
		if (k.legacy)
			return parse_error(ret_error, lineno, "a legacy key cannot be active");
		if (++*n_active > 1)
			return parse_error(ret_error, lineno,
			                   "kid %" PRIu32 " is a second active key", k.kid);
	}
	if (k.legacy && k.state != KEY_RETIRED)
		return parse_error(ret_error, lineno, "a legacy key must be retired");

	if (f[8].len > SECRET_B64_MAX)
		return parse_error(ret_error, lineno, "secret is longer than %d bytes",
		                   KEY_SECRET_MAX);
	if (sodium_base642bin(secret, sizeof(secret), f[8].p, f[8].len, NULL, &secret_len, &b64_end,
	                      B64_VARIANT) != 0 ||
	    b64_end != f[8].p + f[8].len)
		return parse_error(ret_error, lineno, "secret is not unpadded base64url");
	if (secret_len == 0)
		return parse_error(ret_error, lineno, "secret is empty");
	if (!key_secret_is_nginx_safe(secret, secret_len))
		return parse_error(ret_error, lineno,
		                   "secret contains a byte nginx cannot hold inside double quotes "
		                   "('\"', '\\', '$' or a control byte)");

	keys = reallocarray(ring->keys, ring->n_keys + 1, sizeof(Key));
	if (!keys)
		return -ENOMEM;
	ring->keys = keys;
	r = key_secret_new(secret, secret_len, &k.secret);
	if (r < 0)
		return r;
	ring->keys[ring->n_keys++] = k;
	return 0;
}

int keyring_parse(const char *text, size_t size, KeyRing **ret, char **ret_error)
{
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	enum {
		HEADER,
		NEXT_KID,
		KEYS,
		DONE
	} expect = HEADER;
	const char *p, *end;
	unsigned lineno = 0, n_active = 0;
	int r;

	if (ret_error)
		*ret_error = NULL;
	if (!text && size > 0)
		return -EINVAL;

	ring = keyring_new();
	if (!ring)
		return errno_or(-ENOMEM);

	if (size == 0)
		return parse_error(ret_error, 1, "the file is empty");

	for (p = text, end = text + size; p < end;) {
		const char *nl, *line = p;
		size_t len;
		Field f[3];
		int n;

		lineno++;
		if (expect == DONE)
			return parse_error(ret_error, lineno,
			                   "unexpected data after the checksum line");

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return parse_error(
			    ret_error, lineno,
			    "the last line does not end in a newline (truncated file?)");
		len = (size_t)(nl - p);
		p = nl + 1;

		if (memchr(line, '\0', len))
			return parse_error(ret_error, lineno, "contains a NUL byte");
		if (len + 1 > KEY_LINE_MAX)
			return parse_error(ret_error, lineno, "line is too long");

		switch (expect) {
		case HEADER:
			if (len != STRLEN(KEYRING_HEADER) || memcmp(line, KEYRING_HEADER, len) != 0)
				return parse_error(
				    ret_error, lineno,
				    "not a securelink keyring version 1 (expected \"" KEYRING_HEADER
				    "\")");
			expect = NEXT_KID;
			break;

		case NEXT_KID: {
			uint64_t v;

			n = split_fields(line, len, f, ELEMENTSOF(f));
			if (n != 2 || !field_is(f[0], "next_kid"))
				return parse_error(ret_error, lineno,
				                   "expected \"next_kid <number>\"");
			r = parse_number(f[1], 1, UINT32_MAX, "next_kid", lineno, &v, ret_error);
			if (r < 0)
				return r;
			ring->next_kid = (uint32_t)v;
			expect = KEYS;
			break;
		}

		case KEYS:
			if (len >= STRLEN("key ") && memcmp(line, "key ", STRLEN("key ")) == 0) {
				r = parse_key_line(ring, line, len, lineno, &n_active, ret_error);
				if (r < 0)
					return r;
				break;
			}

			if (len >= STRLEN("checksum ") &&
			    memcmp(line, "checksum ", STRLEN("checksum ")) == 0) {
				char expected[CHECKSUM_HEX_LEN + 1];

				n = split_fields(line, len, f, ELEMENTSOF(f));
				if (n != 2 || !field_is_lower_hex(f[1], CHECKSUM_HEX_LEN))
					return parse_error(
					    ret_error, lineno,
					    "checksum must be %d lower-case hex digits",
					    CHECKSUM_HEX_LEN);
				/* Covers every byte before this line. */
				r = checksum_hex(text, (size_t)(line - text), expected);
				if (r < 0)
					return r;
				if (sodium_memcmp(expected, f[1].p, CHECKSUM_HEX_LEN) != 0)
					return parse_error(ret_error, lineno,
					                   "checksum does not match (the file was "
					                   "changed or truncated)");
				expect = DONE;
				break;
			}

			return parse_error(ret_error, lineno,
			                   "unknown record (expected \"key\" or \"checksum\")");

		case DONE:
			assert(false);
		}
	}

	if (expect != DONE)
		return parse_error(ret_error, lineno + 1,
		                   "the checksum line is missing (truncated file?)");

	if (ret)
		*ret = TAKE_PTR(ring);
	return 0;
}

/* Loading and saving. */

/* Reads a keyring file into locked memory. Not read_file(): its buffer is
 * plain malloc'd and may be reallocated while growing, which would leave
 * copies of key material behind that nobody wipes. */
static int read_secret_file(const char *path, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	const size_t max = KEYRING_TEXT_MAX + 1;
	struct stat st;
	size_t n = 0;
	char *buf;

	/* Only a regular file in our own directory: a symlink is not followed
	 * (-ELOOP), and a FIFO must not block the start (O_NONBLOCK, then
	 * refused). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;

	buf = sodium_malloc(max);
	if (!buf)
		return -ENOMEM;
	/* Read one byte more than the limit, to tell "exactly the limit"
	 * from "larger". */
	while (n < max) {
		ssize_t k = read(fd, buf + n, max - n);

		if (k < 0) {
			int r = -errno;

			if (r == -EINTR)
				continue;
			sodium_free(buf);
			return r;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n >= max) {
		sodium_free(buf);
		return -EFBIG;
	}
	buf[n] = '\0';

	*ret = buf;
	*ret_size = n;
	return 0;
}

/* Returns 0, -ENOENT, -EBADMSG with *ret_reason, or another negative errno. */
static int load_one(const char *path, KeyRing **ret, char **ret_reason)
{
	char *text = NULL;
	size_t size = 0;
	int r;

	r = read_secret_file(path, &text, &size);
	if (r == -EFBIG) {
		if (asprintf(ret_reason, "larger than %zu bytes, so not a keyring",
		             (size_t)KEYRING_TEXT_MAX) < 0) {
			*ret_reason = NULL;
			return -ENOMEM;
		}
		return -EBADMSG;
	}
	if (r < 0)
		return r;

	r = keyring_parse(text, size, ret, ret_reason);
	keyring_text_free(text, size);
	return r;
}

/* Something else than a ring file stands where one belongs: not corrupt
 * data to fall back from, but a planted object (a FIFO, device, directory or
 * symlink) a human has to look at. */
static int not_a_regular_file(const char *path, int r, char **ret_error)
{
	if (ret_error && asprintf(ret_error,
	                          "%s is %s: remove it (securelinkd keeps its key ring in regular "
	                          "files only)",
	                          path,
	                          r == -ELOOP ? "a symbolic link, which securelinkd does not follow"
	                                      : "not a regular file") < 0) {
		*ret_error = NULL;
		return -ENOMEM;
	}
	return r;
}

int keyring_load(const char *dir, KeyRing **ret, bool *ret_used_prev, char **ret_error)
{
	_cleanup_free_ char *path = NULL, *prev_path = NULL, *reason = NULL, *prev_reason = NULL;
	KeyRing *ring = NULL;
	int r, r_prev;

	if (ret_error)
		*ret_error = NULL;
	if (ret_used_prev)
		*ret_used_prev = false;
	if (!dir || !*dir || !ret)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;

	if (asprintf(&path, "%s/" KEYRING_FILE, dir) < 0) {
		path = NULL;
		return -ENOMEM;
	}
	if (asprintf(&prev_path, "%s/" KEYRING_PREV_FILE, dir) < 0) {
		prev_path = NULL;
		return -ENOMEM;
	}

	r = load_one(path, &ring, &reason);
	if (r == -ELOOP || r == -EBADFD)
		return not_a_regular_file(path, r, ret_error);
	if (r >= 0) {
		*ret = ring;
		if (ret_used_prev)
			*ret_used_prev = false;
		return 0;
	}
	if (r != -ENOENT && r != -EBADMSG)
		return r;

	/* A missing keyring with a present keyring.prev is a crash between
	 * the two renames of a save; a corrupt one is a disk or a hand edit.
	 * Either way the previous copy still holds every published key. */
	r_prev = load_one(prev_path, &ring, &prev_reason);
	if (r_prev == -ELOOP || r_prev == -EBADFD)
		return not_a_regular_file(prev_path, r_prev, ret_error);
	if (r_prev >= 0) {
		/* Say why the keyring itself was not used. */
		if (ret_error && asprintf(ret_error, "%s: %s", path,
		                          r == -ENOENT ? "does not exist" : reason) < 0) {
			*ret_error = NULL;
			keyring_free(ring);
			return -ENOMEM;
		}
		*ret = ring;
		if (ret_used_prev)
			*ret_used_prev = true;
		return 0;
	}
	if (r_prev != -ENOENT && r_prev != -EBADMSG)
		return r_prev;
	if (r == -ENOENT && r_prev == -ENOENT)
		return -ENOENT;

	/* Never start over with a fresh key here: every link already handed
	 * out would stop working. A human has to decide. */
	if (ret_error &&
	    asprintf(ret_error,
	             "%s: %s; %s: %s. No good copy of the key ring is left: restore %s from a "
	             "backup. securelinkd never replaces a corrupt key ring by itself, since new "
	             "keys would invalidate every link already handed out.",
	             path, r == -ENOENT ? "does not exist" : reason, prev_path,
	             r_prev == -ENOENT ? "does not exist" : prev_reason, path) < 0) {
		*ret_error = NULL;
		return -ENOMEM;
	}
	return -EBADMSG;
}

/* dir/name, or NULL when out of memory. */
static char *dir_file(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* Serialises the ring and writes it (0600: it holds every secret) to each
 * of names in dir, in that order; with keep_prev, the file a name replaces
 * is kept as keyring.prev. Returns as write_file_atomic(). */
static int save_as(const KeyRing *r, const char *dir, const char *const *names, bool keep_prev)
{
	_cleanup_free_ char *prev_path = NULL;
	char *text = NULL;
	size_t size = 0;
	int q;

	if (!r || !dir || !*dir)
		return -EINVAL;
	if (keep_prev && !(prev_path = dir_file(dir, KEYRING_PREV_FILE)))
		return -ENOMEM;
	q = keyring_serialize(r, &text, &size);
	if (q < 0)
		return q;
	for (const char *const *n = names; *n && q >= 0; n++) {
		_cleanup_free_ char *path = dir_file(dir, *n);

		q = path ? write_file_atomic(path, text, size, 0600, prev_path) : -ENOMEM;
	}
	keyring_text_free(text, size);
	return q;
}

int keyring_save(const KeyRing *r, const char *dir)
{
	return save_as(r, dir, (const char *const[]){ KEYRING_FILE, NULL }, true);
}

int keyring_save_prev(const KeyRing *r, const char *dir)
{
	return save_as(r, dir, (const char *const[]){ KEYRING_PREV_FILE, NULL }, false);
}

int keyring_save_revoked(const KeyRing *r, const char *dir)
{
	_cleanup_free_ char *corrupt_path = NULL;
	int q;

	/* The keyring first: a crash between the two writes leaves the new
	 * ring in keyring, which is what a start loads, and every start
	 * rewrites keyring.prev from it (keyring_save_prev()). The other
	 * order would bring the revoked keys back at that start. */
	q = save_as(r, dir, (const char *const[]){ KEYRING_FILE, KEYRING_PREV_FILE, NULL }, false);
	if (q < 0)
		return q;
	/* A ring set aside as unreadable may hold the revoked keys too. */
	corrupt_path = dir_file(dir, KEYRING_CORRUPT_FILE);
	if (!corrupt_path)
		return -ENOMEM;
	if (unlink(corrupt_path) < 0 && errno != ENOENT)
		return -errno;
	return q;
}

int keyring_revoke_mark(const char *dir, uint32_t kid)
{
	_cleanup_free_ char *path = NULL;
	char text[16];
	int n;

	path = dir_file(dir, KEYRING_REVOKE_FILE);
	if (!path)
		return -ENOMEM;
	n = snprintf(text, sizeof(text), "%" PRIu32 "\n", kid);
	return write_file_atomic(path, text, (size_t)n, 0600, NULL);
}

int keyring_revoke_marked(const char *dir, uint32_t *ret_kid)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	uint64_t kid;
	size_t size;
	int r;

	path = dir_file(dir, KEYRING_REVOKE_FILE);
	if (!path)
		return -ENOMEM;
	r = read_file(path, 16, &text, &size);
	if (r < 0)
		return r == -EFBIG ? -EBADMSG : r;
	if (size == 0 || text[size - 1] != '\n' || strlen(text) != size)
		return -EBADMSG;
	text[size - 1] = '\0';
	if (parse_u64(text, &kid) < 0 || kid == 0 || kid > UINT32_MAX)
		return -EBADMSG;
	*ret_kid = (uint32_t)kid;
	return 0;
}

int keyring_revoke_unmark(const char *dir)
{
	_cleanup_free_ char *path = NULL;

	path = dir_file(dir, KEYRING_REVOKE_FILE);
	if (!path)
		return -ENOMEM;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}
