/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "nginx-audit.h"
#include "nginx-dump.h"

/* nginx -T's output as the daemon reads it: any bytes either parse into a
 * tree the audit walks, or are refused with a message that names a place
 * and never holds the input's secret. */

/* Whether the secret is in the input outside the keys file's contents: in a
 * file's name or another file, which an error or the audit may quote. Only
 * what the keys file holds must never come out. */
static bool secret_outside_keys_file(const char *s, size_t size)
{
	static const char marker[] = "# configuration file ", keys[] = "/s/keys.conf:\n";
	const char *end = s + size, *p = s;
	bool in_keys = false;

	while (p < end) {
		const char *eol = memchr(p, '\n', end - p), *next = eol ? eol + 1 : end;

		if ((size_t)(end - p) >= strlen(marker) && memcmp(p, marker, strlen(marker)) == 0) {
			const char *name = p + strlen(marker);

			in_keys = (size_t)(next - name) == strlen(keys) &&
			          memcmp(name, keys, strlen(keys)) == 0;
			if (memmem(p, next - p, "TOPSECRET", strlen("TOPSECRET")))
				return true;
		} else if (!in_keys && memmem(p, next - p, "TOPSECRET", strlen("TOPSECRET")))
			return true;
		p = next;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *paths[] = { "/media/private/", NULL };
	NginxAuditSite site = {
		.keys_file = "/s/keys.conf",
		.locations_file = "/s/locations.conf",
		.host = "x",
		.port = 80,
		.media_url = "/media/",
		.media_root = "/m/",
		.private_paths = paths,
	};
	NginxDump *d = NULL;
	NginxAudit *a = NULL;
	char *error = NULL, *json = NULL;
	int r;

	r = nginx_dump_parse((const char *)data, size, &d, &error);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -EFBIG || r == -ENOMEM);
		FUZZ_CHECK(r != -EBADMSG || (error && error[0]));
		FUZZ_CHECK(!error || !strstr(error, "TOPSECRET") ||
		           secret_outside_keys_file((const char *)data, size));
		free(error);
		return 0;
	}
	FUZZ_CHECK(!error && d && d->n_files > 0);
	r = nginx_audit_run(d, &site, &a);
	/* Includes that include each other several times over: refused. */
	if (r == -E2BIG) {
		nginx_dump_free(d);
		return 0;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(nginx_audit_json(a, &json) == 0);
	/* The seeds' keys file holds this secret. */
	FUZZ_CHECK(!strstr(json, "TOPSECRET") ||
	           secret_outside_keys_file((const char *)data, size));
	free(json);
	nginx_audit_free(a);
	nginx_dump_free(d);
	return 0;
}
