/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "config.h"
#include "util.h"

/* Which link algorithms nginx must check (DESIGN.md, "Algorithms"): the
 * configured one, and after a switch the previous one until its last link
 * has expired (max_link_ttl + clock_skew after signing stopped using it).
 * Kept in state_directory so that a restart keeps checking old links. */
#define ALGORITHM_STATE_FILE "link-algorithm"

typedef struct AlgorithmState {
	LinkAlgorithm signing;  /* what signs links (the configuration's, once confirmed) */
	LinkAlgorithm previous; /* checked too until previous_until */
	usec_t previous_until;  /* 0: none */
} AlgorithmState;

/* Reads the state; -ENOENT when there is none (md5 signs, nothing else is
 * checked: a site that never switched, or from before algorithms), -EBADMSG
 * when it is not what algorithm_state_save() writes, which writes no file
 * for that state. */
int algorithm_state_load(const char *dir, AlgorithmState *ret);
int algorithm_state_save(const char *dir, const AlgorithmState *s);

/* Links of the algorithm "from" stop being signed at now: returns the state
 * that checks them until they have all expired. live: how long after now
 * such a link may still be checked, max_link_ttl + clock_skew (a link
 * signed now may carry expires = now + max_link_ttl, and nginx's clock may
 * lag by clock_skew). */
AlgorithmState algorithm_switch(usec_t live, LinkAlgorithm from, LinkAlgorithm to, usec_t now);

/* The mask of LINK_ALGORITHM_BIT()s nginx checks at now. */
unsigned algorithm_state_checked(const AlgorithmState *s, usec_t now);
