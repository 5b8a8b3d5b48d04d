/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* The socket's verbs, and the requests that wait for the ring or nginx. */

/* The socket server's handler. */
void manager_handle_line(void *userdata, Conn *c, const Peer *peer, char *line, size_t len);

/* Answers what waits and can be answered now (a rotation done, an import
 * confirmed, a first key active). */
void manager_waiters_answer(Manager *m);

/* Answers every waiting request with an error: the client must not hang
 * while securelinkd retries in the background. */
void manager_waiters_fail(Manager *m, ProtoError code, const char *message);
