/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "config.h"
#include "keyring.h"
#include "nginxconf.h"

/* The two nginx snippets. The keys file (in http {}) holds the secrets in a
 * map from the kid parameter to the secret; the locations file (in server {})
 * holds no secret. */

/* Renders the keys file for every key of the ring into sodium_malloc'd memory
 * (free with keyring_text_free()). The map's default is keyring_default(),
 * never an empty string. Returns 0, -ENOKEY for an empty ring, or -ENOMEM. */
int render_keys_file(const KeyRing *r, const Config *c, char **ret, size_t *ret_size);

/* The same while the link format changes from old to c: the map reads the
 * kid from either key_param (see render_locations_file_transition()). */
int render_keys_file_transition(const KeyRing *r, const Config *old, const Config *c, char **ret,
                                size_t *ret_size);

/* The same while nginx checks the link algorithms algs (see
 * render_locations_file_algs()). */
int render_keys_file_algs(const KeyRing *r, const Config *old, const Config *c, unsigned algs,
                          char **ret, size_t *ret_size);
