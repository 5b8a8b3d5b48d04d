/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "proto.h"

/* The Unix socket server: the listening socket (passed by systemd or bound
 * here), non-blocking client connections, line framing, pipelining with
 * answers in request order, a bounded output buffer, idle timeouts and the
 * connection limit. What a request means is the handler's business. */

typedef struct Server Server;
typedef struct Conn Conn;

typedef struct Peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	/* uid 0, or admin_group among the peer's gid and supplementary groups
	 * as they were at connect (SO_PEERCRED, SO_PEERGROUPS). Set only for
	 * ROTATE and IMPORT lines, just before the handler sees them. */
	bool admin;
} Peer;

/* Called once per complete request line, in order. The handler either
 * answers at once with conn_reply() (one line, without LF) and returns 0, or
 * calls conn_defer() and answers later with conn_reply_deferred(): input on
 * that connection is not read on until then, so answers stay in order. */
typedef void (*server_handler_t)(void *userdata, Conn *c, const Peer *peer, char *line, size_t len);

/* Sets up the server on the socket systemd passed (sd_listen_fds), or binds
 * c->socket itself (mode 0660; a stale socket file there is replaced, a live
 * one is an error). Returns 0 or a negative errno. */
int server_new(sd_event *e, const Config *c, server_handler_t handler, void *userdata,
               Server **ret);
Server *server_free(Server *s);
static inline void server_freep(Server **s)
{
	server_free(*s);
}

/* Applies a reloaded config's limits (max_connections, idle_timeout,
 * admin_group); the socket itself is kept. */
void server_set_config(Server *s, const Config *c);
unsigned server_n_connections(const Server *s);
/* Requests the server answered with ERR itself (too many connections, line
 * too long). */
uint64_t server_errors(const Server *s);
/* The same, of one code: line-too-long, unavailable (refused), else 0. */
uint64_t server_errors_code(const Server *s, ProtoError code);
/* Bytes held in open connections' own input and output buffers (0 when idle). */
size_t server_connection_buffer_bytes(const Server *s);

/* Queues one answer line (LF added). */
void conn_reply(Conn *c, const char *line);
/* conn_reply() of len bytes at line (no LF among them). */
void conn_reply_len(Conn *c, const char *line, size_t len);
void conn_replyf(Conn *c, const char *format, ...) _printf_(2, 3);
void conn_reply_error(Conn *c, ProtoError code, const char *message);
/* Sends one answer line (LF added) with fd attached (SCM_RIGHTS) to its
 * first byte, at once: the descriptor must travel with these bytes, so the
 * answer cannot wait behind earlier ones. Returns 0; -EBUSY while earlier
 * answers are still unsent, -EAGAIN when the socket takes nothing now (the
 * caller answers with an error instead); other negative errnos. */
int conn_reply_fd(Conn *c, const char *line, int fd);

/* Pauses reading requests on c until conn_reply_deferred(). Takes a
 * reference: a connection closed meanwhile stays valid (its answer is
 * dropped) until the deferred reply releases it. */
Conn *conn_defer(Conn *c);
void conn_reply_deferred(Conn *c, const char *line);
