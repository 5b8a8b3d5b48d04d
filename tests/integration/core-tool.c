/* SPDX-License-Identifier: MIT */
/* securelink-core-tool: a small command line over the daemon core, so that
 * the integration tests render the nginx snippets and sign links with exactly
 * the code securelinkd uses.
 *
 *   securelink-core-tool render -c CONF
 *   securelink-core-tool rotate -c CONF
 *   securelink-core-tool sign -c CONF TARGET EXPIRES [IP]
 *   securelink-core-tool sign-kid -c CONF KID SECRET TARGET EXPIRES
 *
 * Errors: one line on stderr, exit 1. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "config.h"
#include "fileio.h"
#include "keyring.h"
#include "link.h"
#include "render.h"
#include "sign.h"
#include "urlpath.h"
#include "util.h"

static int die(const char *fmt, ...) _printf_(1, 2);
static int die(const char *fmt, ...)
{
	va_list ap;

	fputs("securelink-core-tool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

static int load_ring(const Config *c, KeyRing **ret)
{
	_cleanup_free_ char *error = NULL;
	bool used_prev = false;
	int r;

	r = keyring_load(c->state_directory, ret, &used_prev, &error);
	if (r == -EBADMSG)
		return die("%s/%s: %s", c->state_directory, KEYRING_FILE,
		           error ?: "corrupt key ring");
	if (r == -ENOENT)
		return die("%s: no key ring (run 'render' first)", c->state_directory);
	if (r < 0)
		return die("%s: cannot load the key ring: %s", c->state_directory, strerror(-r));
	return 0;
}

static int add_and_activate(const Config *c, KeyRing *ring)
{
	usec_t now = now_realtime();
	uint32_t kid;
	int r;

	r = keyring_add_random(ring, now, &kid);
	if (r < 0)
		return die("cannot add a key: %s", strerror(-r));
	r = keyring_activate(ring, kid, now, c->max_link_ttl, c->clock_skew, false);
	if (r < 0)
		return die("cannot activate key %" PRIu32 ": %s", kid, strerror(-r));
	r = keyring_save(ring, c->state_directory);
	if (r < 0)
		return die("%s: cannot save the key ring: %s", c->state_directory, strerror(-r));
	return 0;
}

static int write_snippets(const Config *c, const KeyRing *ring)
{
	_cleanup_free_ char *locations = NULL;
	char *keys = NULL;
	size_t keys_size = 0, locations_size = 0;
	int r;

	r = render_keys_file(ring, c, &keys, &keys_size);
	if (r < 0)
		return die("cannot render the keys file: %s", strerror(-r));
	/* Never world-readable: it holds every secret. */
	r = write_file_atomic(c->keys_file, keys, keys_size, 0640, NULL);
	keyring_text_free(keys, keys_size);
	if (r < 0)
		return die("%s: cannot write: %s", c->keys_file, strerror(-r));

	r = render_locations_file(c, &locations, &locations_size);
	if (r < 0)
		return die("cannot render the locations file: %s", strerror(-r));
	r = write_file_atomic(c->locations_file, locations, locations_size, 0644, NULL);
	if (r < 0)
		return die("%s: cannot write: %s", c->locations_file, strerror(-r));
	return 0;
}

static int cmd_render(const Config *c)
{
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	_cleanup_free_ char *error = NULL;
	bool used_prev = false;
	int r;

	r = keyring_load(c->state_directory, &ring, &used_prev, &error);
	if (r == -ENOENT) {
		/* A first start: one key, published and active at once (the
		 * tests start nginx only after this). */
		ring = keyring_new();
		if (!ring)
			return die("out of memory");
		r = add_and_activate(c, ring);
		if (r != 0)
			return r;
	} else if (r < 0)
		return die("%s: cannot load the key ring: %s", c->state_directory,
		           error ?: strerror(-r));

	return write_snippets(c, ring);
}

static int cmd_rotate(const Config *c)
{
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	int r;

	r = load_ring(c, &ring);
	if (r != 0)
		return r;
	r = add_and_activate(c, ring);
	if (r != 0)
		return r;
	return write_snippets(c, ring);
}

static int cmd_sign(const Config *c, const char *target, const char *expires_text, const char *ip)
{
	_cleanup_(keyring_freep) KeyRing *ring = NULL;
	_cleanup_(signer_freep) Signer *s = NULL;
	_cleanup_free_ char *url = NULL;
	const char *message = NULL;
	ProtoError code = PROTO_INTERNAL;
	int64_t expires;
	int r;

	if (parse_u64_as_i64(expires_text, &expires) < 0)
		return die("\"%s\" is not a unix time", expires_text);

	r = load_ring(c, &ring);
	if (r != 0)
		return r;
	r = signer_new(&s);
	if (r < 0)
		return die("cannot set up MD5: %s", strerror(-r));

	r = link_sign(c, ring, s, target, expires, ip, &url, &code, &message);
	if (r < 0)
		return die("%s: %s", proto_error_to_string(code), message ?: strerror(-r));
	puts(url);
	return 0;
}

static int cmd_sign_kid(const char *kid_text, const char *secret, const char *target,
                        const char *expires_text)
{
	_cleanup_(signer_freep) Signer *s = NULL;
	_cleanup_free_ char *origin = NULL, *path = NULL, *decoded = NULL;
	char token[SIGN_TOKEN_LEN + 1];
	const char *reason = NULL;
	uint64_t kid;
	int64_t expires;
	int r;

	/* The kid only names the key the test pretends to use; it is not
	 * hashed. */
	if (parse_u64(kid_text, &kid) < 0 || kid > UINT32_MAX)
		return die("\"%s\" is not a kid", kid_text);
	if (parse_u64_as_i64(expires_text, &expires) < 0)
		return die("\"%s\" is not a unix time", expires_text);

	r = urlpath_split_target(target, &origin, &path, &reason);
	if (r >= 0)
		r = urlpath_decode(path, strlen(path), &decoded, &reason);
	if (r < 0)
		return die("%s: %s", target, reason ?: strerror(-r));

	r = signer_new(&s);
	if (r < 0)
		return die("cannot set up MD5: %s", strerror(-r));

	/* Any secret, the empty one included: signer_token() refuses "", so
	 * build that hash input here the way nginx would. */
	if (*secret == '\0') {
		_cleanup_free_ char *input = NULL;
		unsigned char digest[16];
		char line[SIGN_TOKEN_LEN + 1];

		if (asprintf(&input, "%" PRId64 "%s ", expires, decoded) < 0)
			return die("out of memory");
		if (!EVP_Digest(input, strlen(input), digest, NULL, EVP_md5(), NULL))
			return die("MD5 failed");
		sodium_bin2base64(line, sizeof(line), digest, sizeof(digest),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		puts(line);
		return 0;
	}

	r = signer_token(s, expires, decoded, NULL, secret, token);
	if (r < 0)
		return die("cannot compute the token: %s", strerror(-r));
	puts(token);
	return 0;
}

static int usage(void)
{
	return die("usage: securelink-core-tool render|rotate -c CONF | "
	           "sign -c CONF TARGET EXPIRES [IP] | "
	           "sign-kid -c CONF KID SECRET TARGET EXPIRES");
}

int main(int argc, char *argv[])
{
	_cleanup_(config_freep) Config *c = NULL;
	_cleanup_free_ char *error = NULL;
	const char *verb;
	char **args;
	int nargs, r;

	if (argc < 4 || !streq(argv[2], "-c"))
		return usage();
	verb = argv[1];
	args = argv + 4;
	nargs = argc - 4;

	if (sodium_init() < 0)
		return die("cannot initialise libsodium");

	r = config_load(argv[3], &c, &error);
	if (r < 0)
		return die("%s", error ?: strerror(-r));

	if (streq(verb, "render") && nargs == 0)
		return cmd_render(c);
	if (streq(verb, "rotate") && nargs == 0)
		return cmd_rotate(c);
	if (streq(verb, "sign") && (nargs == 2 || nargs == 3))
		return cmd_sign(c, args[0], args[1], nargs == 3 ? args[2] : NULL);
	if (streq(verb, "sign-kid") && nargs == 4)
		return cmd_sign_kid(args[0], args[1], args[2], args[3]);
	return usage();
}
