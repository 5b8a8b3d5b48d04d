/* SPDX-License-Identifier: MIT */
#pragma once

/* libsecurelink-client: talks to securelinkd over its Unix socket to sign and
 * verify links (DESIGN.md, "Wire protocol"). The library never sees a signing
 * secret and prints nothing.
 *
 * Errors: functions return >= 0 on success and a negative errno on failure.
 * A transport failure (the daemon went away, a malformed answer, a timeout)
 * leaves the SlClient unusable: every later call returns the same error and
 * nothing reconnects behind the caller's back. When the daemon answers
 * "ERR <code> <message>", a call returns -EREMOTEIO and
 * sl_client_last_error() / sl_client_last_message() say why; the connection
 * stays usable.
 *
 * A daemon that refuses a connection (max_connections reached) sends one
 * "ERR unavailable <reason>" and hangs up: calls then return -EREMOTEIO with
 * that code and reason, not a transport error, and the SlClient is unusable
 * afterwards.
 *
 * An SlClient is not thread-safe: use one per thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_CLIENT_DEFAULT_SOCKET "/run/securelink/securelinkd.sock"
#define SL_CLIENT_LINE_MAX       8192 /* longest request line, including the LF */

typedef struct SlClient SlClient;

/* The daemon's error codes, as on the wire. */
typedef enum SlError {
	SL_ERROR_NONE,
	SL_ERROR_BAD_REQUEST,
	SL_ERROR_UNKNOWN_VERB,
	SL_ERROR_LINE_TOO_LONG,
	SL_ERROR_BAD_TARGET,
	SL_ERROR_BAD_TTL,
	SL_ERROR_TTL_TOO_LONG,
	SL_ERROR_BAD_IP,
	SL_ERROR_FORBIDDEN,
	SL_ERROR_UNAVAILABLE,
	SL_ERROR_INTERNAL,
	SL_ERROR_UNKNOWN, /* a code this version of the library does not know */
	_SL_ERROR_MAX,
} SlError;

/* "bad-target", "forbidden", ...: the wire spelling; "ok" for SL_ERROR_NONE,
 * "unknown" for SL_ERROR_UNKNOWN, NULL when out of range. */
const char *sl_error_to_string(SlError e);
/* The inverse: SL_ERROR_UNKNOWN for a code not listed above. */
SlError sl_error_from_string(const char *s);

/* The socket path used for path == NULL: $SECURELINK_SOCKET when set and not
 * empty, else SL_CLIENT_DEFAULT_SOCKET. */
const char *sl_client_socket_path(const char *path);

/* Connects to securelinkd at path (NULL: see sl_client_socket_path()).
 * Returns 0, -ENAMETOOLONG, -ENOMEM, or connect(2)'s error: -ENOENT,
 * -ECONNREFUSED (nobody listening), -EACCES (not in the socket's group). */
int sl_client_connect(const char *path, SlClient **ret);
/* Closes the connection and frees c. Accepts NULL, returns NULL. */
SlClient *sl_client_free(SlClient *c);

/* How long a call may wait without any progress (a byte read or written)
 * before it fails with -ETIMEDOUT; 0 (the default) waits forever. */
void sl_client_set_timeout(SlClient *c, uint64_t usec);

/* One request line (without the LF; no LF or NUL inside, at most
 * SL_CLIENT_LINE_MAX - 1 bytes, else -EINVAL / -EMSGSIZE without sending) and
 * its answer. On "OK <text>" returns 0 and, when ret_answer is not NULL, a
 * malloc'd copy of <text>. On "ERR" returns -EREMOTEIO. */
int sl_client_request(SlClient *c, const char *line, char **ret_answer);

/* The code and message of the last ERR answer (SL_ERROR_NONE and "" when the
 * last request succeeded). The message is valid until the next call on c. */
SlError sl_client_last_error(const SlClient *c);
const char *sl_client_last_message(const SlClient *c);

/* Options of SIGN; a zeroed struct asks for the daemon's default_link_ttl. */
typedef struct SlSignOptions {
	bool has_ttl; /* ttl=<s>: lifetime in seconds */
	int64_t ttl;
	bool has_expires; /* expires=<unix>: exclusive with ttl */
	int64_t expires;
	const char *ip; /* ip=<addr>: the client address the link is bound to, or NULL */
} SlSignOptions;

/* Signs one target (a URL path or an absolute http(s) URL). Returns 0 and a
 * malloc'd URL; -EREMOTEIO when the target was refused, by the daemon or
 * already here when it cannot be sent (see sl_client_last_error()); -EINVAL
 * for options that cannot be sent; or a transport error. Once the connection
 * has answered a request, a call costs one send(2) and one recv(2). */
int sl_client_sign(SlClient *c, const char *target, const SlSignOptions *opt, char **ret_url);

/* The two forms of a directory grant (DESIGN.md, "Directory grants"). */
typedef enum SlGrantForm {
	SL_GRANT_PATH,   /* a base URL ending in "/", the token in its path */
	SL_GRANT_COOKIE, /* the value of one Set-Cookie header */
	_SL_GRANT_FORM_MAX,
} SlGrantForm;

/* The name of the cookie a SL_GRANT_COOKIE answer sets. */
#define SL_GRANT_COOKIE_NAME "securelink_grant"

/* Signs a directory for streaming: dir is a target as sl_client_sign() takes
 * it, ending in "/" (SIGN <dir> grant=path|cookie). Returns 0 and a malloc'd
 * answer in *ret: for SL_GRANT_PATH a base URL ending in "/" under which
 * every file of the directory opens (a player fetching <base>master.m3u8
 * resolves its relative URLs under it); for SL_GRANT_COOKIE the value of a
 * Set-Cookie header, "securelink_grant=...; Path=...; Expires=...;
 * HttpOnly; SameSite=Lax[; Secure]". A public directory needs neither: its
 * plain URL comes back in both forms (a cookie answer always starts with
 * SL_GRANT_COOKIE_NAME "="). Errors as sl_client_sign(): -EREMOTEIO when
 * the daemon refused dir (a missing trailing "/" is its bad-target) or it
 * cannot be sent; -EINVAL for a form or options that cannot be sent. */
int sl_client_grant(SlClient *c, const char *dir, SlGrantForm form, const SlSignOptions *opt,
                    char **ret);

/* Turns on the link cache of sl_client_sign() when the daemon rounds expiry
 * times ([links] expires_granularity): asks CACHE, which must be the only
 * request in flight (else -EBUSY), and maps the page the daemon passes with
 * its answer. From then on sl_client_sign() without expires hands out a
 * link it signed before, from memory and without a system call, while the
 * link still has the lifetime asked for and the page's generation is the
 * one read before asking for it: after `securelinkctl rotate --revoke` has
 * returned, no cached link of a revoked key is handed out (see
 * docs/client-cache.md). The mapping and the cache survive fork(). Returns
 * 1 when the cache is on, 0 when the daemon does not round expiry times (or
 * knows no CACHE), or a negative errno. */
int sl_client_cache(SlClient *c);

/* Signs n targets over one connection, pipelined: requests go out in large
 * batches while answers are read, so neither side blocks on a full buffer.
 * ret_urls[i] receives a malloc'd URL, or NULL when item i failed; then
 * ret_errors[i] (if not NULL) says why and ret_messages[i] (if not NULL) gets
 * a malloc'd message (NULL for items that succeeded). A target that cannot be
 * sent (a space, a control byte, too long) fails locally with
 * SL_ERROR_BAD_TARGET / SL_ERROR_LINE_TOO_LONG and does not stop the batch.
 * Returns the number of failed items, or a negative errno for a transport
 * error, in which case nothing is returned in the arrays (all set to NULL);
 * -EREMOTEIO when the daemon refused the connection (see the top of this
 * file and sl_client_last_error()). */
int sl_client_sign_many(SlClient *c, const char *const *targets, size_t n, const SlSignOptions *opt,
                        char **ret_urls, SlError *ret_errors, char **ret_messages);

/* The streaming form of sl_client_sign_many(), for an input of unknown
 * length. next() supplies the next target: returns 1 and sets *ret_target
 * (valid until the next call of next()), 0 at the end of the input, -EAGAIN
 * when no target is ready yet (the stream then waits until source_fd is
 * readable, or answers arrive, and asks again; source_fd must be >= 0 for
 * this), or a negative errno, which ends the stream with that error.
 * on_result() is called once per target, in input order, with index counting
 * from 0: url on success, else NULL with the error code and message (valid
 * only during the call). Returns the number of failed items or a negative
 * errno (transport, or next()'s error; -EREMOTEIO: the daemon refused the
 * connection, see sl_client_last_error()). After an error, the targets
 * handed out by next() but not answered got no on_result(); the caller may
 * send them again on a new connection (every SIGN is idempotent). */
typedef int (*SlTargetSource)(void *userdata, const char **ret_target);
typedef void (*SlSignResult)(void *userdata, size_t index, const char *url, SlError error,
                             const char *message);
int sl_client_sign_stream(SlClient *c, const SlSignOptions *opt, SlTargetSource next, int source_fd,
                          SlSignResult on_result, void *userdata);

#ifdef __cplusplus
}
#endif
