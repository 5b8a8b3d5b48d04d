/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "install.h"
#include "log.h"
#include "manager-algorithm.h"
#include "manager.h"
#include "render.h"

/* The nginx snippets' files: rendered from the ring and the configuration,
 * written (or staged for the privileged test unit) where they differ. */

#define SNIPPET_MAX (1024 * 1024)

/* Writes one snippet unless the file already holds exactly this text.
 * Returns 1 when written, 0 when unchanged. */
static int write_if_changed(const char *path, const char *text, size_t size, mode_t mode)
{
	_cleanup_free_ char *old = NULL;
	struct stat st;
	size_t old_size;
	bool same;
	int r;

	r = read_file(path, SNIPPET_MAX, &old, &old_size);
	same = r >= 0 && old_size == size && sodium_memcmp(old, text, size) == 0;
	/* A mode changed by hand (a keys file made group-readable) is put back,
	 * and a file of another owner (root's, from a securelinkd that ran as
	 * root) becomes ours. */
	if (same && (stat(path, &st) < 0 || (st.st_mode & 07777) != mode || st.st_uid != geteuid()))
		same = false;
	if (old) {
		/* The old keys file holds secrets too. */
		sodium_memzero(old, old_size);
	}
	if (same)
		return 0;
	r = write_file_atomic(path, text, size, mode, NULL);
	if (r < 0)
		return r;
	if (r > 0)
		log_warning_errno(
		    -r,
		    "Wrote %s, but could not sync its directory: %m; a power loss may "
		    "undo it, ignoring.",
		    path);
	return 1;
}

/* securelink.js, beside the locations file (staged under systemd), while
 * nginx checks HMAC links: the keys file imports it. Left in place after:
 * nothing imports it then, and a stale copy holds no secret. */
static int manager_write_njs(Manager *m, unsigned algs)
{
	_cleanup_free_ char *path = NULL;
	const char *text = render_njs_text();
	int r;

	if (!(algs & LINK_ALGORITHM_BIT(LINK_ALGORITHM_HMAC_SHA256)))
		return 0;
	if (install_staged(m->config))
		r = asprintf(&path, "%s/nginx/" RENDER_NJS_FILE, m->config->state_directory) < 0
		        ? -ENOMEM
		        : 0;
	else
		r = render_njs_path(m->config, &path);
	if (r < 0)
		return log_error_errno(r, "Failed to render the path of " RENDER_NJS_FILE ": %m");
	r = write_if_changed(path, text, strlen(text), 0644);
	if (r < 0)
		return log_error_errno(r, "Failed to write %s: %m", path);
	return r;
}

/* Renders both snippets from the ring and config and writes what differs.
 * Returns 1 when something was written, 0 when the files were current. */
int manager_write_snippets(Manager *m)
{
	_cleanup_free_ char *staged_keys = NULL, *staged_locations = NULL, *staged_dir = NULL;
	const char *keys_path = m->config->keys_file, *locations_path = m->config->locations_file;
	char *keys = NULL, *locations = NULL;
	size_t keys_size = 0, locations_size = 0;
	unsigned algs = manager_algorithms(m);
	int r, changed = 0;

	/* Under systemd the privileged test unit installs what is staged here,
	 * after checking it: nginx's master never reads a file of ours. */
	if (install_staged(m->config)) {
		r = install_staged_paths(m->config, &staged_keys, &staged_locations);
		if (r < 0 || asprintf(&staged_dir, "%s/nginx", m->config->state_directory) < 0)
			return log_error_errno(-ENOMEM, "Failed to stage the nginx snippets: %m");
		if (mkdir(staged_dir, 0700) < 0 && errno != EEXIST)
			return log_error_errno(errno, "Failed to create %s: %m", staged_dir);
		keys_path = staged_keys;
		locations_path = staged_locations;
	}

	/* While a SIGHUP's new link format is not confirmed in nginx, the
	 * snippets check links of both formats: signing switches to the new one
	 * only then, and links of either pass whichever worker, old or new,
	 * takes them (nginx runs both for a moment during a reload). */
	r = manager_write_njs(m, algs);
	if (r < 0)
		return r;
	changed |= r;
	r = render_keys_file_algs(m->ring, m->signing_config, m->config, algs, &keys, &keys_size);
	if (r < 0)
		return log_error_errno(r, "Failed to render the keys file: %m");
	/* The keys file holds secrets: nginx's master reads it as root, and
	 * securelinkd's group is the applications', so not even the group. */
	r = write_if_changed(keys_path, keys, keys_size, 0600);
	keyring_text_free(keys, keys_size);
	if (r < 0)
		return log_error_errno(r, "Failed to write %s: %m", keys_path);
	changed |= r;

	r = render_locations_file_algs(m->signing_config, m->config, algs, &locations,
	                               &locations_size);
	if (r < 0)
		return log_error_errno(r, "Failed to render the locations file: %m");
	r = write_if_changed(locations_path, locations, locations_size, 0644);
	free(locations);
	if (r < 0)
		return log_error_errno(r, "Failed to write %s: %m", locations_path);
	changed |= r;

	return changed;
}
