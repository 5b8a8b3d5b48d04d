/* SPDX-License-Identifier: MIT */
#include <string.h>

#include <sodium.h>

#include "fuzz.h"
#include "keyring.h"
#include "util.h"

/* The keyring parser on the input as a keyring file. A ring that parses must
 * serialise, and the result must parse back into an identical ring: a ring
 * that the daemon loads but cannot save, or saves differently, would lose
 * keys at the next rotation.
 *
 * Almost every mutation breaks the BLAKE2b checksum, which would keep the
 * fuzzer at the checksum line. So each input is parsed twice: as is (the
 * checksum check itself), and with the hex after the first "checksum " at
 * the start of a line replaced by the correct checksum of the bytes before
 * that line, which lets mutations reach every field check behind it. */

#define CHECKSUM_PREFIX "checksum "
#define CHECKSUM_HEX    64

static void check_same_ring(const KeyRing *a, const KeyRing *b)
{
	FUZZ_CHECK(a->next_kid == b->next_kid);
	FUZZ_CHECK(a->n_keys == b->n_keys);
	for (size_t i = 0; i < a->n_keys; i++) {
		const Key *x = &a->keys[i], *y = &b->keys[i];

		FUZZ_CHECK(x->kid == y->kid);
		FUZZ_CHECK(x->state == y->state);
		FUZZ_CHECK(x->legacy == y->legacy);
		FUZZ_CHECK(x->published == y->published);
		FUZZ_CHECK(x->activated == y->activated);
		FUZZ_CHECK(x->retired == y->retired);
		FUZZ_CHECK(x->drop_after == y->drop_after);
		FUZZ_CHECK(x->secret && y->secret);
		FUZZ_CHECK(streq(x->secret, y->secret));
	}
}

static void check_ring(const KeyRing *r)
{
	unsigned n_active = 0;

	FUZZ_CHECK(r->n_keys <= KEYRING_MAX_KEYS);
	FUZZ_CHECK(r->next_kid > 0);
	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *k = &r->keys[i];
		size_t len = strlen(k->secret);

		FUZZ_CHECK(k->kid > 0 && k->kid < r->next_kid);
		FUZZ_CHECK(i == 0 || k->kid > r->keys[i - 1].kid);
		FUZZ_CHECK(len > 0 && len <= KEY_SECRET_MAX);
		FUZZ_CHECK(!k->legacy || k->state == KEY_RETIRED);
		n_active += k->state == KEY_ACTIVE;
		FUZZ_CHECK(keyring_find(r, k->kid) == k);
	}
	FUZZ_CHECK(n_active <= 1);
	FUZZ_CHECK((r->n_keys == 0) == !keyring_default(r));
}

static void parse_one(const char *text, size_t size)
{
	KeyRing *ring = NULL, *again = NULL;
	char *error = NULL, *out = NULL, *out2 = NULL;
	size_t out_size = 0, out2_size = 0;
	int r;

	r = keyring_parse(text, size, &ring, &error);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
		FUZZ_CHECK(!ring);
		FUZZ_CHECK(r != -EBADMSG || (error && !strchr(error, '\n')));
		free(error);
		return;
	}
	FUZZ_CHECK(r == 0 && ring && !error);
	check_ring(ring);

	r = keyring_serialize(ring, &out, &out_size);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(out_size == strlen(out));

	r = keyring_parse(out, out_size, &again, &error);
	if (r < 0)
		fprintf(stderr, "serialised ring does not parse: %s\n", error ? error : "?");
	FUZZ_CHECK(r == 0);
	check_same_ring(ring, again);

	/* The serialised form is canonical: a second round gives the same bytes. */
	r = keyring_serialize(again, &out2, &out2_size);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(out_size == out2_size && memcmp(out, out2, out_size) == 0);

	keyring_text_free(out, out_size);
	keyring_text_free(out2, out2_size);
	keyring_free(again);
	keyring_free(ring);
}

/* Copy of data with a correct checksum after the first line that starts with
 * "checksum " and has room for the hex, or NULL when there is none. */
static char *fix_checksum(const uint8_t *data, size_t size)
{
	unsigned char hash[32];
	char hex[CHECKSUM_HEX + 1];
	char *copy;

	for (size_t i = 0; i < size; i++) {
		if (i > 0 && data[i - 1] != '\n')
			continue;
		if (size - i < STRLEN(CHECKSUM_PREFIX) + CHECKSUM_HEX ||
		    memcmp(data + i, CHECKSUM_PREFIX, STRLEN(CHECKSUM_PREFIX)) != 0)
			continue;

		copy = fuzz_strndup(data, size);
		if (crypto_generichash(hash, sizeof(hash), data, i, NULL, 0) != 0)
			abort();
		sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
		memcpy(copy + i + STRLEN(CHECKSUM_PREFIX), hex, CHECKSUM_HEX);
		return copy;
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *fixed;

	if (sodium_init() < 0)
		abort();

	parse_one((const char *)data, size);

	fixed = fix_checksum(data, size);
	if (fixed) {
		if (memcmp(fixed, data, size) != 0)
			parse_one(fixed, size);
		free(fixed);
	}
	return 0;
}
