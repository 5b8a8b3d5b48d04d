/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "nginx-audit.h"
#include "nginx-dump.h"

/* nginx -T's output as the daemon reads it: any bytes either parse into a
 * tree the audit walks, or are refused with a message that names a place
 * and never holds the input's secret. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *paths[] = { "/media/private/", NULL };
	NginxAuditSite site = {
		.keys_file = "/s/keys.conf",
		.locations_file = "/s/locations.conf",
		.host = "x",
		.port = 80,
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
		FUZZ_CHECK(!error || !strstr(error, "TOPSECRET"));
		free(error);
		return 0;
	}
	FUZZ_CHECK(!error && d && d->n_files > 0);
	FUZZ_CHECK(nginx_audit_run(d, &site, &a) == 0);
	FUZZ_CHECK(nginx_audit_json(a, &json) == 0);
	/* The seeds' keys file holds this secret. */
	FUZZ_CHECK(!strstr(json, "TOPSECRET"));
	free(json);
	nginx_audit_free(a);
	nginx_dump_free(d);
	return 0;
}
