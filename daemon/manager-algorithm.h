/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* The link algorithm across a change of [links] algorithm: which one signs,
 * and until when nginx checks the previous one's links too (the state in
 * ALGORITHM_STATE_FILE, kept by algorithm.c). */

/* The mask of LINK_ALGORITHM_BIT()s nginx is to check now. */
unsigned manager_algorithms(const Manager *m);

/* At start: loads the state and, where the configured algorithm is not the
 * one that signed before the restart, keeps signing in that one (in
 * m->signing_config) until nginx is confirmed to check both. fresh: a first
 * start, where no link of any algorithm can live. Returns 0 or a negative
 * errno. */
int manager_algorithm_start(Manager *m, bool fresh);

/* nginx is confirmed to check m->config's algorithm: if it is another than
 * the one signing, the switch starts (the old one checked for
 * max_link_ttl + clock_skew more) and is saved. */
void manager_algorithm_confirm(Manager *m);

/* Ends the previous algorithm's checking once its last links have expired
 * (a sync follows). Returns the next time to look, or USEC_INFINITY. */
usec_t manager_algorithm_expire(Manager *m, usec_t now);
