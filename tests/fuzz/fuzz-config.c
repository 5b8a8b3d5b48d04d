/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "nginxconf.h"
#include "util.h"

/* The config parser on the input as securelinkd.conf. A file that loads must
 * hold the invariants config.h promises, and render to nginx configuration
 * without error: securelinkd writes that snippet from exactly this Config. */

static void check_prefixes(char **l)
{
	FUZZ_CHECK(l);
	for (; *l; l++) {
		size_t n = strlen(*l);

		FUZZ_CHECK(n > 0 && (*l)[n - 1] == '/');
	}
}

static void check_config(const Config *c)
{
	size_t n;
	char *text = NULL;
	size_t size = 0;
	int r;

	FUZZ_CHECK(c->socket && c->state_directory && c->admin_group);
	FUZZ_CHECK(c->media_url && c->media_root && c->keys_file && c->locations_file);
	FUZZ_CHECK(c->token_param && c->expires_param && c->key_param && c->base_url);
	n = strlen(c->media_url);
	FUZZ_CHECK(n > 0 && c->media_url[0] == '/' && c->media_url[n - 1] == '/');
	n = strlen(c->media_root);
	FUZZ_CHECK(n > 0 && c->media_root[n - 1] == '/');
	FUZZ_CHECK((unsigned)c->mode < _KEY_MODE_MAX);
	FUZZ_CHECK((unsigned)c->reload < _RELOAD_METHOD_MAX);
	FUZZ_CHECK(reload_method_to_string(c->reload));
	FUZZ_CHECK(key_mode_to_string(c->mode));
	FUZZ_CHECK(c->max_connections > 0);
	FUZZ_CHECK(c->default_link_ttl <= c->max_link_ttl);
	check_prefixes(c->private_prefixes);
	check_prefixes(c->public_prefixes);
	FUZZ_CHECK(!(c->private_prefixes[0] && c->public_prefixes[0]));
	/* Exactly one way to test nginx: a command line or a unit. */
	FUZZ_CHECK(!c->test_command != !c->test_unit);
	FUZZ_CHECK(!c->test_command || c->test_command[0]);
	FUZZ_CHECK(!c->test_unit || c->test_unit[0]);
	FUZZ_CHECK(c->reload != RELOAD_EXEC || (c->reload_command && c->reload_command[0]));

	/* Whatever media_url is, a path outside it is public. */
	FUZZ_CHECK(!config_path_is_private(c, ""));
	(void)config_path_is_private(c, c->media_url);
	if (c->private_prefixes[0]) {
		char *p = NULL;

		FUZZ_CHECK(asprintf(&p, "%s%sx", c->media_url, c->private_prefixes[0]) > 0);
		FUZZ_CHECK(config_path_is_private(c, p));
		free(p);
	}

	r = render_locations_file(c, &text, &size);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(strlen(text) == size);
	free(text);
	text = NULL;
	r = render_include_lines(c, &text);
	FUZZ_CHECK(r == 0);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Config *c = NULL;
	char *text, *error = NULL;
	int r;

	text = fuzz_strndup(data, size);
	r = config_load_string(text, "fuzz.conf", &c, &error);
	if (r < 0) {
		FUZZ_CHECK(!c);
		/* Every refusal but out of memory says why, on one line. */
		FUZZ_CHECK(r == -ENOMEM || error);
		if (error) {
			FUZZ_CHECK(!strchr(error, '\n'));
			FUZZ_CHECK(strncmp(error, "fuzz.conf", STRLEN("fuzz.conf")) == 0);
		}
	} else {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(c && !error);
		check_config(c);
	}
	config_free(c);
	free(error);
	free(text);
	return 0;
}
