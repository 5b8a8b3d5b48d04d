/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* mode = derived: the ring is a function of the time and the fleet's master
 * secret; these keep it, the snippets and the schedule in step. */

/* Recomputes the ring of epochs for now and for what nginx is confirmed to
 * have; a sync follows every change. */
void manager_fleet_refresh(Manager *m);

/* Start-up in mode = derived: the snippets of the epochs of now, the socket,
 * the first step. Returns 0 or a negative errno. */
int manager_fleet_start(Manager *m);

/* SIGHUP: keeps the settings in c that change only at a restart (the key
 * mode, the masters, and in a fleet rotate_every) as the running config has
 * them, with a warning. Returns 0 or -ENOMEM. */
int manager_fleet_keep_schedule(Manager *m, Config *c);
