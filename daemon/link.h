/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "config.h"
#include "keyring.h"
#include "proto.h"
#include "sign.h"

/* Signing and verifying whole links: the logic behind SIGN and VERIFY, with
 * no I/O. `now` is CLOCK_REALTIME in seconds. */

/* Signs target (a path, an absolute http(s) URL or a scheme-relative
 * //host URL, see urlpath_split_target)
 * until `expires` (unix seconds, > now) with the active key. A target outside
 * every private prefix is public: the answer is its canonical URL without
 * parameters. The answer is base_url (when the target has no origin) or the
 * target's origin, the canonical percent-encoded path, then
 * "?<token_param>=<t>&<expires_param>=<e>&<key_param>=<kid>".
 * With bind_ip, ip is required (and hashed after the path). A link longer
 * than max_url_length (path and query) is refused, see link_sign_to().
 * Unless allow_binary_paths, a target whose decoded path is not UTF-8 text
 * (urlpath_is_text()) is refused with -EILSEQ, code bad-target.
 * Returns 0 with *ret_url malloc'd, or -EINVAL with *ret_code and *ret_message
 * (static) set; -ENOKEY (code unavailable) when no key is active. */
int link_sign(const Config *c, const KeyRing *r, Signer *s, const char *target, int64_t expires,
              const char *ip, char **ret_url, ProtoError *ret_code, const char **ret_message);

/* link_sign() into buf (size bytes) instead of an allocation: the form SIGN
 * uses. *ret_len is the link's length (a NUL follows it). A link whose path
 * and query are longer than max_url_length (nginx would answer 414), or that
 * does not fit, is refused with code bad-target; the message for the first,
 * and for a path that is not text, is valid until the thread's next call. */
int link_sign_to(const Config *c, const KeyRing *r, Signer *s, const char *target, int64_t expires,
                 const char *ip, char *buf, size_t size, size_t *ret_len, ProtoError *ret_code,
                 const char **ret_message);

/* A directory grant (DESIGN.md, "Directory grants") for target, a directory
 * (ending in '/') inside a private prefix, at most GRANT_DEPTH_MAX segments
 * below media_url, until expires with the active key, into buf as
 * link_sign_to() writes a link. form GRANT_PATH: the base URL
 * "<origin><media_url>_grant/<kid>/<expires>/<token>/<depth>/<dir below
 * media_url>/"; GRANT_COOKIE: the Set-Cookie value
 * "securelink_grant=<kid>.<expires>.<depth>.<token>; Path=<dir>; Expires=...;
 * HttpOnly; SameSite=Lax[; Secure]". The token is MD5 over
 * "<expires>grant:<decoded dir>[<ip>] <secret>". A public directory gets its
 * plain URL. Returns as link_sign_to(). */
int link_grant_to(const Config *c, const KeyRing *r, Signer *s, const char *target, GrantForm form,
                  int64_t expires, const char *ip, char *buf, size_t size, size_t *ret_len,
                  ProtoError *ret_code, const char **ret_message);

/* [links] expires_granularity: expires rounded up to the next multiple of
 * granularity (seconds), so the same target signed again within one window
 * gets the same link. The lifetime asked for is a minimum: when the rounded
 * time would pass limit (the latest expires allowed: max_link_ttl from now,
 * the signing key's drop, the fleet epoch's deadline), expires is returned
 * unrounded, never rounded down. granularity <= 0: off. */
int64_t link_expires_round(int64_t expires, int64_t granularity, int64_t limit);

typedef enum LinkVerdict {
	LINK_VALID,
	LINK_EXPIRED,
	LINK_INVALID,
	LINK_PUBLIC,
	_LINK_VERDICT_MAX,
} LinkVerdict;

/* Checks a link as nginx would at `now`: "." and ".." segments resolved as
 * in $uri (one above the root is -EINVAL, nginx's 400), the kid selects the
 * key (no kid: keyring_default()), the token must match, expires must be >=
 * now; unless allow_binary_paths, a path that is not UTF-8 text is invalid.
 * *ret_kid and *ret_expires are set for valid and expired links, *ret_reason
 * (static, or for the text check valid until the thread's next call) for
 * invalid ones. Returns 0, or -EINVAL with code/message for a
 * URL that cannot be parsed at all. */
/* A path-form grant's URL (media_url + "_grant/...") is checked as nginx's
 * grant location does; a private URL without a token parameter but with
 * cookie (the grant cookie's value, or NULL) as nginx checks the cookie. */
int link_verify(const Config *c, const KeyRing *r, Signer *s, const char *url, const char *ip,
                const char *cookie, int64_t now, LinkVerdict *ret_verdict, uint32_t *ret_kid,
                int64_t *ret_expires, const char **ret_reason, ProtoError *ret_code,
                const char **ret_message);

/* link_verify() as nginx decides while it checks the algorithms algs (a
 * mask of LINK_ALGORITHM_BIT()): a token of 43 base64url digits is an
 * HMAC link, any other an md5 one; one of an algorithm nginx does not
 * check is invalid. link_verify() takes c's algorithm alone. */
int link_verify_algs(const Config *c, unsigned algs, const KeyRing *r, Signer *s, const char *url,
                     const char *ip, const char *cookie, int64_t now, LinkVerdict *ret_verdict,
                     uint32_t *ret_kid, int64_t *ret_expires, const char **ret_reason,
                     ProtoError *ret_code, const char **ret_message);
