/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "derive.h"
#include "keyring.h"
#include "rotation.h"
#include "status.h"

/* Known answers come from Python's hashlib.blake2b, an implementation
 * independent of libsodium, computing what crypto_kdf_derive_from_key() is
 * documented to be: BLAKE2b-256(key = kdf key, salt = LE64(epoch) || 0^8,
 * personal = "slinkkey" || 0^8), e.g. for epoch 20000:
 *   hashlib.blake2b(b"", key=bytes(range(32)), digest_size=32,
 *       salt=struct.pack("<Q", 20000) + bytes(8), person=b"slinkkey" + bytes(8))
 * then base64.urlsafe_b64encode(...).rstrip(b"="). The same construction
 * reproduces libsodium's own test/default/kdf.exp ("KDF test", ids 0, 1). */

/* base64 of the bytes 0x00..0x1f, as `openssl rand -base64 32` prints one. */
#define MASTER_0_31 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
/* base64 of the bytes 100..147 (48 bytes): hashed to the kdf key with
 * hashlib.blake2b(master, digest_size=32). */
#define MASTER_48 "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT\n"
/* Another 32-byte master: base64 of 32 x 0x01. */
#define MASTER_OTHER "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"

#define SEC(x) ((usec_t)(x)*USEC_PER_SEC)

static unsigned char *parse_ok(const char *text)
{
	unsigned char *key = NULL;

	assert_int_equal(derive_master_parse(text, strlen(text), &key), 0);
	assert_non_null(key);
	return key;
}

static void assert_secret(const unsigned char *key, uint64_t e, const char *want)
{
	char got[DERIVE_SECRET_SIZE];

	assert_int_equal(derive_secret(key, e, got, sizeof(got)), 0);
	assert_string_equal(got, want);
}

/* A config with a 10s schedule: rotate_every 10s, clock_skew 3s,
 * max_link_ttl 30s. */
static Config *short_config(void)
{
	Config *c = config_new();

	assert_non_null(c);
	c->mode = KEY_MODE_DERIVED;
	c->rotate_every = SEC(10);
	c->clock_skew = SEC(3);
	c->max_link_ttl = SEC(30);
	return c;
}

/* ---- the key of an epoch ---- */

static void test_secret_matches_blake2b_known_answers(void **state)
{
	unsigned char *key = parse_ok(MASTER_0_31);

	for (size_t i = 0; i < 32; i++)
		assert_int_equal(key[i], i);
	assert_secret(key, 1, "9hm4MyglQqKmzeFQ2MnmS7fGuOOzZBw7GRFPHt0u1ZM");
	assert_secret(key, 20000, "scUqvfI73ZNOUvOieZs148AvvbQVwwTR8KIy4eRkZao");
	assert_secret(key, 179599240, "509AkC5IF7cMITzdFifgMO-iNnhSmPtHdCk7v2ZH4Io");
	assert_secret(key, UINT32_MAX, "FQry9LlL6KnnqAn9741PgBKPKis0_ouSVPbJX5KZHD4");
	sodium_free(key);
}

static void test_secret_of_long_master_uses_its_blake2b_hash(void **state)
{
	unsigned char *key = parse_ok(MASTER_48);

	assert_secret(key, 20000, "K-DcnC3mp0kNK_gespL0DTVt0hn8lTYMBCtaoplMfHw");
	sodium_free(key);
}

static void test_secret_refuses_small_buffer(void **state)
{
	unsigned char *key = parse_ok(MASTER_0_31);
	char small[DERIVE_SECRET_SIZE - 1];

	assert_int_equal(derive_secret(key, 1, small, sizeof(small)), -ENOBUFS);
	sodium_free(key);
}

/* ---- the master's text ---- */

static void test_master_parse_ignores_line_breaks_and_missing_padding(void **state)
{
	static const char *const texts[] = {
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"AAECAwQFBgcICQoLDA0ODxAR\r\nEhMUFRYXGBkaGxwdHh8=\r\n",
		"  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n",
	};

	for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
		unsigned char *key = parse_ok(texts[i]);

		assert_secret(key, 20000, "scUqvfI73ZNOUvOieZs148AvvbQVwwTR8KIy4eRkZao");
		sodium_free(key);
	}
}

static void test_master_parse_rejects_what_is_not_base64(void **state)
{
	static const char *const texts[] = {
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=x",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=====",
		/* base64url is not what openssl prints; '-' and '_' are refused */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-_",
		"not a master secret at all!",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\0garbage",
	};
	unsigned char *key = NULL;

	for (size_t i = 0; i < ELEMENTSOF(texts); i++)
		assert_int_equal(
		    derive_master_parse(texts[i], strlen(texts[i]) + (i == 4 ? 8 : 0), &key),
		    -EINVAL);
	assert_null(key);
}

static void test_master_parse_rejects_wrong_length(void **state)
{
	/* 31 bytes, empty, whitespace only: too short. */
	static const char *const texts[] = {
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
		"",
		"\n",
	};
	static char big[4097];
	unsigned char *key = NULL;

	for (size_t i = 0; i < ELEMENTSOF(texts); i++)
		assert_int_equal(derive_master_parse(texts[i], strlen(texts[i]), &key), -ERANGE);

	/* 1025 bytes of 'A's decode to more than DERIVE_MASTER_MAX_BYTES. */
	memset(big, 'A', 1368);
	assert_int_equal(derive_master_parse(big, 1368, &key), -ERANGE);
	/* 1024 bytes exactly are fine (1368 chars minus the last group's
	 * worth: 1366 chars and "==" padding). */
	memcpy(big + 1366, "==", 2);
	assert_int_equal(derive_master_parse(big, 1368, &key), 0);
	sodium_free(key);
	key = NULL;
	/* Text beyond 4096 bytes is not looked at. */
	memset(big, 'A', 4097);
	assert_int_equal(derive_master_parse(big, 4097, &key), -ERANGE);
	assert_null(key);
}

/* ---- loading ---- */

typedef struct Dir {
	char path[64];
} Dir;

static void make_dir(Dir *d)
{
	strcpy(d->path, "/tmp/test-derive-XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

static char *put_file(const Dir *d, const char *name, const char *text, mode_t mode)
{
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/%s", d->path, name) > 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void remove_dir(const Dir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

static void expect_load_error(const char *path, int r, const char *fragment)
{
	unsigned char *key = NULL;
	char *error = NULL;

	assert_int_equal(derive_master_load(path, &key, &error), r);
	assert_null(key);
	assert_non_null(error);
	if (!strstr(error, fragment))
		fail_msg("error \"%s\" lacks \"%s\"", error, fragment);
	/* Never the secret, in any form. */
	assert_null(strstr(error, "AAECAw"));
	free(error);
}

static void test_master_load_reads_a_private_file(void **state)
{
	Dir d;
	char *path, *error = NULL;
	unsigned char *key = NULL;

	make_dir(&d);
	path = put_file(&d, "master", MASTER_0_31, 0600);
	assert_int_equal(derive_master_load(path, &key, &error), 0);
	assert_null(error);
	assert_secret(key, 20000, "scUqvfI73ZNOUvOieZs148AvvbQVwwTR8KIy4eRkZao");
	sodium_free(key);
	key = NULL;
	free(path);
	/* 0400, as systemd leaves credentials, is fine too. */
	path = put_file(&d, "cred", MASTER_0_31, 0400);
	assert_int_equal(derive_master_load(path, &key, &error), 0);
	sodium_free(key);
	free(path);
	remove_dir(&d);
}

static void test_master_load_refuses_group_or_world_readable_file(void **state)
{
	static const mode_t modes[] = { 0640, 0604, 0660, 0644, 0610, 0601 };
	Dir d;

	make_dir(&d);
	for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
		char *path = put_file(&d, "master", MASTER_0_31, modes[i]);

		expect_load_error(path, -EPERM, "readable by group or others");
		expect_load_error(path, -EPERM, "chmod 600");
		free(path);
	}
	remove_dir(&d);
}

static void test_master_load_errors_name_the_file_and_fix(void **state)
{
	Dir d;
	char *path, *missing;

	make_dir(&d);
	assert_true(asprintf(&missing, "%s/none", d.path) > 0);
	expect_load_error(missing, -ENOENT, "cannot open the master secret: No such file");
	expect_load_error(missing, -ENOENT, missing);
	expect_load_error(d.path, -EINVAL, "is not a regular file");

	path = put_file(&d, "bad", "secret = hunter2\n", 0600);
	expect_load_error(path, -EINVAL, "is not base64 (make one with: openssl rand -base64 32)");
	free(path);
	path = put_file(&d, "short", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", 0600);
	expect_load_error(path, -ERANGE, "must be base64 of 32 to 1024 bytes");
	free(path);
	path = put_file(&d, "empty", "", 0600);
	expect_load_error(path, -ERANGE, "must be base64 of 32 to 1024 bytes");
	free(path);
	{
		char big[5000];

		memset(big, 'A', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		path = put_file(&d, "big", big, 0600);
		expect_load_error(path, -EFBIG, "too large for a master secret");
		free(path);
	}
	free(missing);
	remove_dir(&d);
}

static void expect_masters_error(const Config *c, const char *creds, int r, const char *fragment)
{
	Masters *m = NULL;
	char *error = NULL;

	assert_int_equal(derive_masters_load(c, creds, &m, &error), r);
	assert_null(m);
	assert_non_null(error);
	if (!strstr(error, fragment))
		fail_msg("error \"%s\" lacks \"%s\"", error, fragment);
	free(error);
}

static void test_masters_come_from_the_credential_without_master_key_file(void **state)
{
	Config *c = short_config();
	Masters *m = NULL;
	char *error = NULL;
	Dir d;

	make_dir(&d);
	free(put_file(&d, DERIVE_MASTER_CREDENTIAL, MASTER_0_31, 0400));
	assert_int_equal(derive_masters_load(c, d.path, &m, &error), 0);
	assert_non_null(m->current);
	assert_null(m->previous);
	assert_int_equal(m->master_switch, 0);
	assert_secret(m->current, 20000, "scUqvfI73ZNOUvOieZs148AvvbQVwwTR8KIy4eRkZao");
	masters_free(m);

	/* master_key_file wins over the credential. */
	c->master_key_file = put_file(&d, "file", MASTER_48, 0600);
	assert_int_equal(derive_masters_load(c, d.path, &m, &error), 0);
	assert_secret(m->current, 20000, "K-DcnC3mp0kNK_gespL0DTVt0hn8lTYMBCtaoplMfHw");
	masters_free(m);
	/* ... and needs no credentials directory at all. */
	assert_int_equal(derive_masters_load(c, NULL, &m, &error), 0);
	masters_free(m);

	config_free(c);
	remove_dir(&d);
}

static void test_masters_missing_credential_says_how_to_provide_it(void **state)
{
	Config *c = short_config();
	Dir d;

	make_dir(&d);
	expect_masters_error(c, d.path, -ENOKEY, "no credential securelink-master in");
	expect_masters_error(c, d.path, -ENOKEY, "LoadCredentialEncrypted=securelink-master");
	expect_masters_error(c, NULL, -ENOKEY, "$CREDENTIALS_DIRECTORY is not either");
	expect_masters_error(c, "", -ENOKEY, "$CREDENTIALS_DIRECTORY is not either");
	free(put_file(&d, DERIVE_MASTER_CREDENTIAL, MASTER_0_31, 0644));
	expect_masters_error(c, d.path, -EPERM, "readable by group or others");
	config_free(c);
	remove_dir(&d);
}

static void test_masters_previous_needs_master_switch_and_back(void **state)
{
	Config *c = short_config();
	Masters *m = NULL;
	char *error = NULL;
	Dir d;

	make_dir(&d);
	free(put_file(&d, DERIVE_MASTER_CREDENTIAL, MASTER_0_31, 0400));
	free(put_file(&d, DERIVE_PREVIOUS_CREDENTIAL, MASTER_OTHER, 0400));
	expect_masters_error(c, d.path, -EINVAL, "master_switch is not set");

	c->master_switch = SEC(1000005);
	assert_int_equal(derive_masters_load(c, d.path, &m, &error), 0);
	assert_non_null(m->previous);
	assert_int_equal(m->master_switch, SEC(1000005));
	masters_free(m);

	/* The previous master as a file. */
	c->master_key_file_previous = put_file(&d, "old", MASTER_OTHER, 0600);
	assert_int_equal(derive_masters_load(c, NULL, &m, &error), -ENOKEY);
	free(error);
	c->master_key_file = put_file(&d, "new", MASTER_0_31, 0600);
	assert_int_equal(derive_masters_load(c, NULL, &m, &error), 0);
	assert_non_null(m->previous);
	masters_free(m);

	/* The same master twice is a mistake in the roll. */
	free(c->master_key_file_previous);
	c->master_key_file_previous = put_file(&d, "same", MASTER_0_31, 0600);
	expect_masters_error(c, NULL, -EINVAL, "the previous master secret is the same");

	/* master_switch left over without a previous master. */
	free(c->master_key_file_previous);
	c->master_key_file_previous = NULL;
	expect_masters_error(c, NULL, -EINVAL, "there is no previous master secret");

	config_free(c);
	remove_dir(&d);
}

/* ---- the schedule ---- */

static void test_window_mid_epoch(void **state)
{
	Config *c = short_config();
	DeriveWindow w;

	/* 5s into epoch 100000. */
	assert_int_equal(derive_window(c, SEC(1000005), &w), 0);
	assert_int_equal(w.current, 100000);
	assert_int_equal(w.signing, 100000);
	assert_int_equal(w.last, 100001);
	/* Epoch 99997 signed until 999983 + 3, links live 30s: 1000013 > now. */
	assert_int_equal(w.first, 99997);
	assert_int_equal(w.next_change, SEC(1000010));
	config_free(c);
}

static void test_window_signs_previous_epoch_until_clock_skew_passed(void **state)
{
	Config *c = short_config();
	DeriveWindow w;

	assert_int_equal(derive_window(c, SEC(1000000), &w), 0);
	assert_int_equal(w.current, 100000);
	assert_int_equal(w.signing, 99999);
	assert_int_equal(w.last, 100001);
	assert_int_equal(w.next_change, SEC(1000003));

	assert_int_equal(derive_window(c, SEC(1000003) - 1, &w), 0);
	assert_int_equal(w.signing, 99999);
	assert_int_equal(derive_window(c, SEC(1000003), &w), 0);
	assert_int_equal(w.signing, 100000);
	config_free(c);
}

static void test_window_refuses_epochs_that_are_no_kid(void **state)
{
	Config *c = short_config();
	DeriveWindow w;

	/* Before clock_skew of the first epoch: epoch 0 is never a kid. */
	assert_int_equal(derive_window(c, SEC(2), &w), -ERANGE);
	/* Epochs beyond u32. */
	c->rotate_every = SEC(1);
	assert_int_equal(derive_window(c, SEC(UINT32_MAX), &w), -ERANGE);
	assert_int_equal(derive_window(c, SEC(UINT32_MAX - 10), &w), 0);
	/* A window far too long for a keys file. */
	c->max_link_ttl = SEC(3600);
	assert_int_equal(derive_window(c, SEC(1000000), &w), -ERANGE);
	config_free(c);
}

static bool in_window(const Config *c, usec_t now, uint32_t e)
{
	DeriveWindow w;

	assert_int_equal(derive_window(c, now, &w), 0);
	return e >= w.first && e <= w.last;
}

/* The fleet's promise, brute-forced: a link signed on a host whose clock is
 * off by a, with any ttl up to max_link_ttl, finds its key in the keys file
 * of every host whose clock is off by b (|a - b| <= clock_skew) at every
 * moment from its signing until it expires on that host's clock; and the
 * epoch is not dropped a moment early, nor published a moment late. */
static void test_window_every_link_finds_its_key_on_every_host(void **state)
{
	Config *c = short_config();
	const int64_t S = 3, T = 30;

	for (int64_t t = 1000000; t < 1000040; t++)
		for (int64_t a = -S; a <= S; a++)
			for (int64_t b = -S; b <= S; b++) {
				DeriveWindow w;
				int64_t expires;

				if (llabs(a - b) > S)
					continue;
				assert_int_equal(derive_window(c, SEC(t + a), &w), 0);
				expires = t + a + T;
				/* On the verifying host, from signing until the
				 * link expires (nginx accepts it at
				 * now == expires). */
				for (int64_t u = t + b; u <= expires; u++)
					if (!in_window(c, SEC(u), w.signing))
						fail_msg("link of epoch %u signed at %" PRId64
						         " (off %" PRId64 ") missing at %" PRId64
						         " (off %" PRId64 ")",
						         w.signing, t, a, u, b);
			}
	config_free(c);
}

static void test_window_holds_exactly_the_epochs_links_may_use(void **state)
{
	Config *c = short_config();

	for (usec_t now = SEC(1000000); now < SEC(1000020); now += 250 * USEC_PER_MSEC) {
		DeriveWindow w;

		assert_int_equal(derive_window(c, now, &w), 0);
		/* The next epoch is published a whole epoch ahead... */
		assert_true(derive_epoch_start(c, w.last) <= now + c->rotate_every);
		assert_true(derive_epoch_start(c, w.last + 1) > now + c->rotate_every);
		/* ... and an old one leaves once its last link expired. */
		assert_true(derive_epoch_deadline(c, w.first) > now);
		assert_true(derive_epoch_deadline(c, w.first - 1) <= now);
		/* The signing epoch started clock_skew ago or more. */
		assert_true(derive_epoch_start(c, w.signing) + c->clock_skew <= now);
		assert_true(derive_epoch_start(c, w.signing + 1) + c->clock_skew > now);
		assert_true(w.next_change > now);
	}
	config_free(c);
}

static void test_epoch_deadline(void **state)
{
	Config *c = short_config();

	/* (e + 1) * rotate_every + clock_skew + max_link_ttl */
	assert_int_equal(derive_epoch_deadline(c, 99997), SEC(999980 + 3 + 30));
	assert_int_equal(derive_epoch_start(c, 99997), SEC(999970));
	/* Saturates instead of wrapping. */
	c->rotate_every = SEC(3650ULL * 86400);
	assert_int_equal(derive_epoch_deadline(c, UINT32_MAX), USEC_INFINITY);
	config_free(c);
}

/* ---- the ring ---- */

static Masters *masters_for(const char *current, const char *previous, usec_t master_switch)
{
	Masters *m = calloc(1, sizeof(Masters));

	assert_non_null(m);
	m->current = parse_ok(current);
	if (previous)
		m->previous = parse_ok(previous);
	m->master_switch = master_switch;
	return m;
}

static void test_ring_holds_every_epoch_of_the_window(void **state)
{
	Config *c = short_config();
	Masters *m = masters_for(MASTER_0_31, NULL, 0);
	KeyRing *r = NULL;
	usec_t until = 0;
	char want[DERIVE_SECRET_SIZE];

	assert_int_equal(derive_ring(m, c, SEC(1000005), 100001, &r, &until), 0);
	assert_int_equal(until, SEC(1000010));
	assert_int_equal(r->n_keys, 5);
	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *k = &r->keys[i];

		assert_int_equal(k->kid, 99997 + i);
		assert_false(k->legacy);
		assert_int_equal(derive_secret(m->current, k->kid, want, sizeof(want)), 0);
		assert_string_equal(k->secret, want);
		assert_int_equal(k->published, derive_epoch_start(c, k->kid - 1));
	}
	assert_int_equal(r->keys[0].state, KEY_RETIRED);
	assert_int_equal(r->keys[0].retired, SEC(999980 + 3));
	assert_int_equal(r->keys[0].drop_after, SEC(999980 + 3 + 30));
	assert_int_equal(r->keys[2].state, KEY_RETIRED);
	assert_int_equal(keyring_active(r)->kid, 100000);
	assert_int_equal(keyring_active(r)->activated, SEC(1000003));
	assert_int_equal(r->keys[4].state, KEY_PUBLISHED);
	/* nginx's default is the newest epoch: a real key, never empty. */
	assert_int_equal(keyring_default(r)->kid, 100001);
	assert_int_equal(r->next_kid, 100002);
	keyring_free(r);
	masters_free(m);
	config_free(c);
}

static void test_ring_of_epoch_is_the_same_on_every_host(void **state)
{
	Config *c = short_config();
	Masters *m = masters_for(MASTER_0_31, NULL, 0);
	KeyRing *a = NULL, *b = NULL;

	/* Two hosts, 3s apart, agree on every key they both hold. */
	assert_int_equal(derive_ring(m, c, SEC(1000005), 100001, &a, NULL), 0);
	assert_int_equal(derive_ring(m, c, SEC(1000008), 100001, &b, NULL), 0);
	for (size_t i = 0; i < a->n_keys; i++) {
		const Key *k = keyring_find(b, a->keys[i].kid);

		if (k)
			assert_string_equal(k->secret, a->keys[i].secret);
	}
	keyring_free(a);
	keyring_free(b);
	masters_free(m);
	config_free(c);
}

static void test_ring_signs_only_with_what_nginx_has(void **state)
{
	Config *c = short_config();
	Masters *m = masters_for(MASTER_0_31, NULL, 0);
	KeyRing *r = NULL;

	/* Nothing confirmed yet (first start): nothing signs, the epochs
	 * wait for nginx. */
	assert_int_equal(derive_ring(m, c, SEC(1000005), 0, &r, NULL), 0);
	assert_null(keyring_active(r));
	assert_non_null(keyring_pending(r));
	keyring_free(r);

	/* nginx lags an epoch behind (reloads failing): its newest epoch
	 * signs, the schedule's waits. */
	assert_int_equal(derive_ring(m, c, SEC(1000005), 99999, &r, NULL), 0);
	assert_int_equal(keyring_active(r)->kid, 99999);
	assert_int_equal(keyring_find(r, 100000)->state, KEY_PUBLISHED);
	assert_int_equal(keyring_find(r, 99998)->state, KEY_RETIRED);
	keyring_free(r);

	/* What nginx has is older than any living link's epoch: nothing. */
	assert_int_equal(derive_ring(m, c, SEC(1000005), 99996, &r, NULL), 0);
	assert_null(keyring_active(r));
	keyring_free(r);
	masters_free(m);
	config_free(c);
}

static void test_ring_uses_previous_master_before_master_switch(void **state)
{
	Config *c = short_config();
	/* The switch falls inside epoch 100000: it started before, so it is
	 * the previous master's; 100001 is the first of the new one. */
	Masters *m = masters_for(MASTER_0_31, MASTER_OTHER, SEC(1000005));
	KeyRing *r = NULL;
	char want[DERIVE_SECRET_SIZE];

	assert_ptr_equal(derive_master_for(m, c, 100000), m->previous);
	assert_ptr_equal(derive_master_for(m, c, 100001), m->current);
	/* Its last links (epoch 100000) leave nginx then. */
	assert_int_equal(derive_previous_until(m, c), SEC(1000010 + 3 + 30));

	assert_int_equal(derive_ring(m, c, SEC(1000012), 100002, &r, NULL), 0);
	assert_int_equal(derive_secret(m->previous, 100000, want, sizeof(want)), 0);
	assert_string_equal(keyring_find(r, 100000)->secret, want);
	assert_int_equal(derive_secret(m->current, 100001, want, sizeof(want)), 0);
	assert_string_equal(keyring_find(r, 100001)->secret, want);
	keyring_free(r);

	/* A switch on an epoch boundary: that epoch is the new master's. */
	m->master_switch = SEC(1000000);
	assert_ptr_equal(derive_master_for(m, c, 99999), m->previous);
	assert_ptr_equal(derive_master_for(m, c, 100000), m->current);
	assert_int_equal(derive_previous_until(m, c), SEC(1000000 + 3 + 30));
	masters_free(m);

	m = masters_for(MASTER_0_31, NULL, 0);
	assert_int_equal(derive_previous_until(m, c), 0);
	assert_ptr_equal(derive_master_for(m, c, 1), m->current);
	masters_free(m);
	config_free(c);
}

static void test_ring_refuses_window_out_of_range(void **state)
{
	Config *c = short_config();
	Masters *m = masters_for(MASTER_0_31, NULL, 0);
	KeyRing *r = NULL;

	assert_int_equal(derive_ring(m, c, SEC(1), 0, &r, NULL), -ERANGE);
	assert_null(r);
	masters_free(m);
	config_free(c);
}

/* ---- STATUS ---- */

static void test_status_shows_mode_epoch_and_master_roll(void **state)
{
	Config *c = short_config();
	Masters *m = masters_for(MASTER_0_31, MASTER_OTHER, SEC(1000005));
	StatusInfo info = {
		.nginx_ok = true,
		.epoch = 100001,
		.master_switch = m->master_switch,
		.previous_until = derive_previous_until(m, c),
	};
	KeyRing *r = NULL;
	char *json = NULL;

	assert_int_equal(derive_ring(m, c, SEC(1000012), 100002, &r, NULL), 0);
	assert_int_equal(status_format_json(r, c, &info, &json), 0);
	assert_non_null(strstr(json, "\"active_kid\":100000,"));
	assert_non_null(strstr(json,
	                       "\"mode\":\"derived\",\"epoch\":100001,\"master_switch\":1000005,"
	                       "\"previous_master_until\":1000043,"));
	assert_non_null(strstr(json, "{\"kid\":100002,\"state\":\"published\""));
	/* No secret of any epoch. */
	for (size_t i = 0; i < r->n_keys; i++)
		assert_null(strstr(json, r->keys[i].secret));
	free(json);

	/* Without a roll the times are null; mode = local has none of it. */
	info.master_switch = info.previous_until = 0;
	assert_int_equal(status_format_json(r, c, &info, &json), 0);
	assert_non_null(strstr(json, "\"master_switch\":null,\"previous_master_until\":null,"));
	free(json);
	c->mode = KEY_MODE_LOCAL;
	assert_int_equal(status_format_json(r, c, &info, &json), 0);
	assert_null(strstr(json, "\"epoch\""));
	assert_null(strstr(json, "master_switch"));
	free(json);

	keyring_free(r);
	masters_free(m);
	config_free(c);
}

/* ---- the state machine's decision ---- */

static void test_next_derived_recomputes_when_the_ring_expires(void **state)
{
	RotationInput in = { .sync_needed = true };
	usec_t when = 0;

	assert_int_equal(rotation_next_derived(&in, SEC(100), SEC(100), &when), ROTATION_DERIVE);
	assert_int_equal(rotation_next_derived(&in, 0, SEC(100), &when), ROTATION_DERIVE);
}

static void test_next_derived_syncs_unless_backing_off(void **state)
{
	RotationInput in = { .sync_needed = true };
	usec_t when = 0;

	assert_int_equal(rotation_next_derived(&in, SEC(110), SEC(100), &when), ROTATION_SYNC);
	in.retry_at = SEC(105);
	assert_int_equal(rotation_next_derived(&in, SEC(110), SEC(100), &when), ROTATION_WAIT);
	assert_int_equal(when, SEC(105));
	in.retry_at = SEC(120);
	assert_int_equal(rotation_next_derived(&in, SEC(110), SEC(100), &when), ROTATION_WAIT);
	assert_int_equal(when, SEC(110));
	in.sync_needed = false;
	in.retry_at = 0;
	assert_int_equal(rotation_next_derived(&in, SEC(110), SEC(100), &when), ROTATION_WAIT);
	assert_int_equal(when, SEC(110));
	assert_string_equal(rotation_action_to_string(ROTATION_DERIVE), "derive");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_matches_blake2b_known_answers),
		cmocka_unit_test(test_secret_of_long_master_uses_its_blake2b_hash),
		cmocka_unit_test(test_secret_refuses_small_buffer),
		cmocka_unit_test(test_master_parse_ignores_line_breaks_and_missing_padding),
		cmocka_unit_test(test_master_parse_rejects_what_is_not_base64),
		cmocka_unit_test(test_master_parse_rejects_wrong_length),
		cmocka_unit_test(test_master_load_reads_a_private_file),
		cmocka_unit_test(test_master_load_refuses_group_or_world_readable_file),
		cmocka_unit_test(test_master_load_errors_name_the_file_and_fix),
		cmocka_unit_test(test_masters_come_from_the_credential_without_master_key_file),
		cmocka_unit_test(test_masters_missing_credential_says_how_to_provide_it),
		cmocka_unit_test(test_masters_previous_needs_master_switch_and_back),
		cmocka_unit_test(test_window_mid_epoch),
		cmocka_unit_test(test_window_signs_previous_epoch_until_clock_skew_passed),
		cmocka_unit_test(test_window_refuses_epochs_that_are_no_kid),
		cmocka_unit_test(test_window_every_link_finds_its_key_on_every_host),
		cmocka_unit_test(test_window_holds_exactly_the_epochs_links_may_use),
		cmocka_unit_test(test_epoch_deadline),
		cmocka_unit_test(test_ring_holds_every_epoch_of_the_window),
		cmocka_unit_test(test_ring_of_epoch_is_the_same_on_every_host),
		cmocka_unit_test(test_ring_signs_only_with_what_nginx_has),
		cmocka_unit_test(test_ring_uses_previous_master_before_master_switch),
		cmocka_unit_test(test_ring_refuses_window_out_of_range),
		cmocka_unit_test(test_status_shows_mode_epoch_and_master_roll),
		cmocka_unit_test(test_next_derived_recomputes_when_the_ring_expires),
		cmocka_unit_test(test_next_derived_syncs_unless_backing_off),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
