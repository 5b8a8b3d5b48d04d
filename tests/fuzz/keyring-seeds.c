/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "fileio.h"
#include "keyring.h"

/* Writes keyring files made by keyring_serialize() into DIR, as seeds for
 * fuzz-keyring: an empty ring, a ring mid-rotation with a legacy key, and a
 * full ring. Run once by hand; the files are committed. They are inputs for
 * the fuzzer, never expected answers of a test. */

#define NOW  (1700000000ULL * USEC_PER_SEC)
#define TTL  (24 * USEC_PER_HOUR)
#define SKEW (30 * USEC_PER_SEC)

static int save(const KeyRing *r, const char *dir, const char *name)
{
	char *text = NULL, *path = NULL;
	size_t size = 0;
	int q;

	q = keyring_serialize(r, &text, &size);
	if (q < 0)
		return q;
	if (asprintf(&path, "%s/%s", dir, name) < 0) {
		keyring_text_free(text, size);
		return -ENOMEM;
	}
	q = write_file_atomic(path, text, size, 0644, NULL);
	keyring_text_free(text, size);
	free(path);
	return q;
}

int main(int argc, char *argv[])
{
	KeyRing *r;
	uint32_t kid;
	int q;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return EXIT_FAILURE;
	}

	r = keyring_new();
	if (!r || save(r, argv[1], "empty") < 0)
		return EXIT_FAILURE;

	/* legacy import, two rotations, a third key published */
	q = keyring_add_legacy(r, "old-django-secret", NOW, TTL, SKEW, NULL);
	for (int i = 0; q >= 0 && i < 2; i++) {
		q = keyring_add_random(r, NOW + (usec_t)i * TTL, &kid);
		if (q >= 0)
			q = keyring_activate(r, kid, NOW + (usec_t)i * TTL + 2 * USEC_PER_SEC, TTL,
			                     SKEW, false);
	}
	if (q >= 0)
		q = keyring_add_random(r, NOW + 2 * TTL, &kid);
	if (q < 0 || save(r, argv[1], "rotating") < 0)
		return EXIT_FAILURE;

	/* as many keys as a ring holds, the longest legacy secret among them */
	{
		char longest[KEY_SECRET_MAX + 1];

		memset(longest, 'x', KEY_SECRET_MAX);
		longest[KEY_SECRET_MAX] = '\0';
		q = keyring_add_legacy(r, longest, NOW, TTL, SKEW, NULL);
	}
	while (q >= 0 && r->n_keys < KEYRING_MAX_KEYS)
		q = keyring_add_random(r, NOW + 3 * TTL, NULL);
	if (q < 0 || save(r, argv[1], "full") < 0)
		return EXIT_FAILURE;

	keyring_free(r);
	return EXIT_SUCCESS;
}
