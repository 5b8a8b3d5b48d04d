/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* nginx's master reads the snippets as root, and nginx's configuration can do
 * what root does (an access_log names a file the master opens). So under
 * systemd, where securelinkd runs unprivileged (test_command = systemd:UNIT),
 * securelinkd only stages the snippets in its state directory, and the
 * privileged test unit installs them where nginx includes them
 * (`securelinkd --install-snippets`, run as root) after checking that they
 * are what securelink renders: a keys file that is one map of kids to
 * literal secrets, and a locations file that is the rendering of the
 * root-owned configuration. See docs/threat-model.md. */

/* Whether securelinkd stages the snippets for the privileged side to install
 * (a test unit) rather than writing them where nginx includes them. */
static inline bool install_staged(const Config *c)
{
	return c->test_unit != NULL;
}

/* The staged copies: <state_directory>/nginx/keys.conf and locations.conf.
 * Returns 0 or -ENOMEM. */
int install_staged_paths(const Config *c, char **ret_keys, char **ret_locations);

/* Checks that text is a keys file as securelinkd renders it: the comment
 * line, one `map $arg_P[$arg_Q] $securelink_secret {` block, one default
 * and any number of kid entries, each a literal secret nginx keeps between
 * double quotes, and the closing brace; then the grant map
 * `map $securelink_gk $securelink_grant_secret {` with exactly the
 * same entries. *ret_maps_offset is where the maps without secrets begin,
 * which the caller compares with their rendering, so that nothing but map
 * entries and securelink's own maps can reach nginx. Returns 0, or -EBADMSG
 * with *ret_error one line naming the line number (never its content: it
 * holds secrets). */
int install_check_keys(const char *text, size_t size, size_t *ret_maps_offset, char **ret_error);

/* Root's side: reads the staged snippets, checks them (the locations file
 * must be the rendering of c, of the configuration of the last install, or
 * the transition between the two), and writes them to c's keys_file and
 * locations_file. Returns 0, or a negative errno with *ret_error one line for
 * people. */
int install_snippets(const Config *c, const char *config_path, char **ret_error);
