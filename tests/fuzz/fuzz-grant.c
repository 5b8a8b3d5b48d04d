/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "keyring.h"
#include "link.h"
#include "sign.h"
#include "util.h"

/* Directory grants: the input's first byte picks what the rest is.
 *   'p', 'c': a SIGN grant=path|cookie target. Whatever is granted must
 *             pass VERIFY for a file under it, in the same form (the URL
 *             under the base; the cookie with a plain URL under its Path).
 *   'v':      a URL for VERIFY (path-form grants are parsed from it).
 *   'k':      "<url>\n<cookie value>" for VERIFY with cookie=.
 * Nothing may crash, and VERIFY always gives a verdict or an error. */

#define NOW 1700000000

static const char config_text[] = "[links]\nprivate_prefixes = private/ p/\n"
                                  "[nginx]\nmedia_root = /srv/media/\n";

static Config *config;
static KeyRing *ring;
static Signer *signer;

static void setup(void)
{
	char *error = NULL;
	uint32_t kid;

	if (config)
		return;
	if (config_load_string(config_text, "fuzz.conf", &config, &error) < 0 ||
	    !(ring = keyring_new()) || signer_new(&signer) < 0 ||
	    keyring_add_random(ring, (usec_t)NOW * USEC_PER_SEC, &kid) < 0 ||
	    keyring_activate(ring, kid, (usec_t)NOW * USEC_PER_SEC, 3600 * USEC_PER_SEC,
	                     30 * USEC_PER_SEC, false) < 0)
		abort();
}

static LinkVerdict verify(const char *url, const char *cookie)
{
	LinkVerdict verdict = _LINK_VERDICT_MAX;
	const char *reason = NULL, *message = NULL;
	ProtoError code;
	int64_t expires;
	uint32_t kid;

	if (link_verify(config, ring, signer, url, NULL, cookie, NOW, &verdict, &kid, &expires,
	                &reason, &code, &message) < 0) {
		FUZZ_CHECK(message && *message);
		return _LINK_VERDICT_MAX;
	}
	FUZZ_CHECK(verdict < _LINK_VERDICT_MAX);
	FUZZ_CHECK(verdict != LINK_INVALID || (reason && *reason));
	return verdict;
}

static void check_grant(const char *target, GrantForm form)
{
	char buf[PROTO_LINE_MAX + 64];
	const char *message = NULL;
	ProtoError code;
	size_t len;

	if (link_grant_to(config, ring, signer, target, form, NOW + 600, NULL, buf, sizeof(buf),
	                  &len, &code, &message) < 0) {
		FUZZ_CHECK(message && *message);
		return;
	}
	FUZZ_CHECK(len == strlen(buf));
	if (form == GRANT_PATH) {
		char *url;

		FUZZ_CHECK(len > 0 && buf[len - 1] == '/');
		if (!strstr(buf, "/media/_grant/"))
			return; /* a public directory's plain URL */
		url = malloc(len + 2);
		if (!url)
			abort();
		memcpy(url, buf, len);
		memcpy(url + len, "f", 2);
		FUZZ_CHECK(verify(url, NULL) == LINK_VALID);
		free(url);
	} else {
		const char *value, *path;
		char *cookie, *url;
		size_t vl, pl;

		if (strncmp(buf, GRANT_COOKIE_NAME "=", STRLEN(GRANT_COOKIE_NAME "=")) != 0)
			return; /* a public directory's plain URL */
		value = buf + STRLEN(GRANT_COOKIE_NAME "=");
		vl = strcspn(value, ";");
		path = strstr(buf, "; Path=");
		FUZZ_CHECK(path);
		path += STRLEN("; Path=");
		pl = strcspn(path, ";");
		FUZZ_CHECK(strstr(buf, "; HttpOnly; SameSite=Lax"));
		cookie = strndup(value, vl);
		url = malloc(pl + 2);
		if (!cookie || !url)
			abort();
		memcpy(url, path, pl);
		memcpy(url + pl, "f", 2);
		FUZZ_CHECK(verify(url, cookie) == LINK_VALID);
		free(url);
		free(cookie);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *nl;

	setup();
	if (size < 1 || size > PROTO_LINE_MAX)
		return 0;
	s = fuzz_strndup(data + 1, size - 1);
	switch (data[0]) {
	case 'p':
		check_grant(s, GRANT_PATH);
		break;
	case 'c':
		check_grant(s, GRANT_COOKIE);
		break;
	case 'v':
		(void)verify(s, NULL);
		break;
	case 'k':
		nl = strchr(s, '\n');
		if (nl) {
			*nl = '\0';
			(void)verify(s, nl + 1);
		}
		break;
	default:
		break;
	}
	free(s);
	return 0;
}
