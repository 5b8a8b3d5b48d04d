/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>

#include <sodium.h>

#include "link.h"
#include "urlpath.h"
#include "util.h"

#define MD5_LEN 16
/* nginx's secure_link refuses a token longer than this before decoding. */
#define NGINX_TOKEN_MAX 24

/* The longest link max_url_length allows is the longest a SIGN answer holds. */
_Static_assert(CONFIG_URL_LENGTH_MAX == PROTO_LINE_MAX - STRLEN("OK \n"),
               "max_url_length's bound is not a protocol line");

static int fail(ProtoError *ret_code, const char **ret_message, ProtoError code,
                const char *message, int r)
{
	if (ret_code)
		*ret_code = code;
	if (ret_message)
		*ret_message = message;
	return r;
}

/* A basic sanity check: proto_parse_line() already brought ip= into the form
 * nginx's $remote_addr has; this only keeps junk out of the hash input. */
static bool ip_is_valid(const char *ip)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (!ip || strnlen(ip, INET6_ADDRSTRLEN) >= INET6_ADDRSTRLEN)
		return false;
	return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

/* Without bind_ip nginx's expression has no $remote_addr: a link asked for
 * one address would open from any. Refuse it rather than hand it out
 * looking bound. */
static int check_unbound_ip(const Config *c, const char *ip, ProtoError *ret_code,
                            const char **ret_message)
{
	if (!c->bind_ip && ip)
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= given but bind_ip = no: links are not bound to an address (set "
		            "bind_ip = yes in securelinkd.conf, or leave out ip=)",
		            -EINVAL);
	return 0;
}

/* With bind_ip, the address nginx hashes after the path is required. */
static int check_bound_ip(const Config *c, const char *ip, ProtoError *ret_code,
                          const char **ret_message)
{
	if (c->bind_ip && !ip)
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= is required when bind_ip = yes", -EINVAL);
	if (c->bind_ip && !ip_is_valid(ip))
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= must be an IPv4 or IPv6 address", -EINVAL);
	return 0;
}

/* The key a link or grant until expires is signed with: the active one. */
static int signing_key(const Config *c, const KeyRing *r, int64_t expires, const char *ip,
                       const Key **ret, ProtoError *ret_code, const char **ret_message)
{
	/* nginx's module rejects an empty or zero expires: such a link could
	 * never be served. Whether it lies in the past is the caller's call. */
	if (expires <= 0)
		return fail(ret_code, ret_message, PROTO_BAD_TTL,
		            "expires must be a unix time in the future", -EINVAL);

	/* Only the active key signs: a published key may not be in nginx
	 * yet, a retired one is on its way out. */
	*ret = keyring_active(r);
	if (!*ret)
		return fail(ret_code, ret_message, PROTO_UNAVAILABLE,
		            "no active key (is a key rotation still waiting for nginx?)", -ENOKEY);
	return check_bound_ip(c, ip, ret_code, ret_message);
}

/* Splits a target into its origin and its decoded path ($uri as nginx will
 * compute it), without allocating for any target a request line can hold:
 * the decoded path goes into buf (PROTO_LINE_MAX bytes), or into *heap for a
 * longer one, which the caller frees. With resolve, "." and ".." segments
 * are resolved as nginx does (for links someone else wrote), else refused
 * (ret_canonical is then not set). A path that is not text is -EILSEQ
 * unless allow_binary_paths; its message is valid until the thread's next
 * call. */
static int target_decode(const Config *c, const char *target, size_t len, bool resolve,
                         UrlTarget *ret_target, char *buf, char **heap, const char **ret_decoded,
                         size_t *ret_len, bool *ret_canonical, ProtoError *ret_code,
                         const char **ret_message)
{
	static _Thread_local char not_text[320];
	const char *reason = NULL;
	char *out = buf;
	size_t offset;
	int r;

	r = urlpath_parse_target(target, len, ret_target, &reason);
	if (r < 0)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, reason ?: "bad target", r);

	if (ret_target->path_len >= PROTO_LINE_MAX) {
		*heap = malloc(ret_target->path_len + 1);
		if (!*heap)
			return fail(ret_code, ret_message, PROTO_INTERNAL, "out of memory",
			            -ENOMEM);
		out = *heap;
	}
	if (resolve)
		r = urlpath_resolve_to(ret_target->path, ret_target->path_len, out, ret_len,
		                       &reason);
	else
		r = urlpath_decode_to(ret_target->path, ret_target->path_len, out, ret_len,
		                      ret_canonical, &reason);
	if (r < 0)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, reason ?: "bad path", r);

	/* Chosen-prefix MD5 collisions need blocks of arbitrary bytes in the
	 * hashed path: a signer of text only never signs one of a pair. */
	if (!c->allow_binary_paths && !urlpath_is_text(out, *ret_len, &offset, &reason)) {
		snprintf(not_text, sizeof(not_text),
		         "the decoded path is not text at byte %zu (%s): binary paths are refused, "
		         "as MD5 collisions are made of arbitrary bytes (set allow_binary_paths = "
		         "yes in [links] to sign them)",
		         offset, reason);
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, not_text, -EILSEQ);
	}

	*ret_decoded = out;
	return 0;
}

static char *append(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Writes the link into buf (size bytes): the target's origin or base_url (no
 * double slash when base_url ends with one), the canonical path, and with a
 * token "?<token_param>=<t>&<expires_param>=<e>&<key_param>=<kid>", then a
 * NUL. A link is made for every SIGN, so this avoids printf, intermediate
 * strings and allocations. Returns the length; or -E2BIG, with the path and
 * query's length in *ret_target_len, when those are longer than
 * max_url_length; or -ENOBUFS when the link does not fit. */
static ssize_t url_write(const Config *c, const UrlTarget *t, const char *decoded, size_t len,
                         bool canonical, const char *token, const char *expires, size_t expires_len,
                         uint32_t kid, char *buf, size_t size, size_t *ret_target_len)
{
	const char *base = t->scheme ? NULL : (c->base_url ?: "");
	size_t bl = base ? strlen(base) : 0, sl = t->scheme ? strlen(t->scheme) : 0;
	size_t pl = canonical ? len : urlpath_encoded_len(decoded, len), need;
	size_t tl = 0, el = 0, kl = 0, kidl = 0, tokl = 0, origin;
	char kid_text[10];
	char *p = buf;

	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	/* Each part is below PROTO_LINE_MAX * 3: no sum can overflow. */
	origin = t->scheme ? sl + (sl ? STRLEN("://") : STRLEN("//")) + t->host_len : bl;
	need = origin + pl;
	if (token) {
		tl = strlen(c->token_param);
		el = strlen(c->expires_param);
		kl = strlen(c->key_param);
		kidl = format_u64(kid, kid_text);
		tokl = strlen(token);
		/* "?t=" token "&e=" digits "&k=" digits */
		need += 1 + tl + 1 + tokl + 1 + el + 1 + expires_len + 1 + kl + 1 + kidl;
	}
	/* The browser sends the path and query in the request line, where
	 * nginx answers 414 beyond its buffer; the origin is not in it. */
	if (need - origin > c->max_url_length) {
		*ret_target_len = need - origin;
		return -E2BIG;
	}
	if (need >= size)
		return -ENOBUFS;

	if (t->scheme) {
		p = append(p, t->scheme, sl);
		p = sl ? append(p, "://", STRLEN("://")) : append(p, "//", STRLEN("//"));
		p = append(p, t->host, t->host_len);
	} else
		p = append(p, base, bl);
	/* A canonical path (the usual case) is its own encoding. */
	if (canonical)
		p = append(p, decoded, len);
	else
		p += urlpath_encode_to(decoded, len, p);
	if (token) {
		*p++ = '?';
		p = append(p, c->token_param, tl);
		*p++ = '=';
		p = append(p, token, tokl);
		*p++ = '&';
		p = append(p, c->expires_param, el);
		*p++ = '=';
		p = append(p, expires, expires_len);
		*p++ = '&';
		p = append(p, c->key_param, kl);
		*p++ = '=';
		p = append(p, kid_text, kidl);
	}
	*p = '\0';
	assert((size_t)(p - buf) == need);
	return (ssize_t)need;
}

/* Whether the decoded path lies in media_url + "_grant/", where nginx
 * checks path-form grants and nothing else. */
static bool in_grant_area(const Config *c, const char *decoded)
{
	size_t ml = strlen(c->media_url);

	return strncmp(decoded, c->media_url, ml) == 0 &&
	       strncmp(decoded + ml, GRANT_PATH_SEGMENT "/", STRLEN(GRANT_PATH_SEGMENT "/")) == 0;
}

/* nginx serves nothing there but path-form grants. */
#define GRANT_AREA_MESSAGE                                                                         \
	"media_url + \"" GRANT_PATH_SEGMENT "/\" is where grants live, not a directory to sign "   \
	"(rename the directory; sign the one the grant is for)"

int link_sign_to(const Config *c, const KeyRing *r, Signer *s, const char *target, int64_t expires,
                 const char *ip, char *buf, size_t size, size_t *ret_len, ProtoError *ret_code,
                 const char **ret_message)
{
	/* The one message that carries numbers: valid until the next call. */
	static _Thread_local char too_long[256];
	_cleanup_free_ char *heap = NULL;
	char dec[PROTO_LINE_MAX];
	char token[SIGN_TOKEN_MAX + 1];
	char digits[20];
	const char *decoded;
	size_t len, dl, target_len = 0;
	UrlTarget t;
	const Key *k;
	bool canonical;
	ssize_t n;
	int q;

	assert(c);
	assert(r);
	assert(s);
	assert(buf);
	assert(ret_len);

	if (!target)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "missing target", -EINVAL);

	q = check_unbound_ip(c, ip, ret_code, ret_message);
	if (q < 0)
		return q;

	q = target_decode(c, target, strlen(target), false, &t, dec, &heap, &decoded, &len,
	                  &canonical, ret_code, ret_message);
	if (q < 0)
		return q;

	if (in_grant_area(c, decoded))
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, GRANT_AREA_MESSAGE, -EINVAL);

	/* Public: nginx serves it without any check, a token would only be
	 * noise. */
	if (!config_path_is_private(c, decoded)) {
		n = url_write(c, &t, decoded, len, canonical, NULL, NULL, 0, 0, buf, size,
		              &target_len);
		goto written;
	}

	q = signing_key(c, r, expires, ip, &k, ret_code, ret_message);
	if (q < 0)
		return q;

	/* The hash covers the decoded path, which is $uri to nginx, with
	 * expires as the same digits the link carries; the client's address
	 * only when nginx's expression has $remote_addr. */
	dl = format_u64((uint64_t)expires, digits);
	q = signer_token_alg(s, c->algorithm, digits, dl, decoded, len, c->bind_ip ? ip : NULL,
	                     k->secret, token);
	if (q == -E2BIG)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "path too long", -EINVAL);
	if (q < 0)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "cannot compute the token", q);

	n = url_write(c, &t, decoded, len, canonical, token, digits, dl, k->kid, buf, size,
	              &target_len);
	sodium_memzero(token, sizeof(token));
written:
	if (n == -E2BIG) {
		snprintf(
		    too_long, sizeof(too_long),
		    "the link would be %zu bytes, longer than max_url_length = %u (nginx answers "
		    "414 to a longer request line; shorten the target, or raise "
		    "large_client_header_buffers in nginx and max_url_length with it)",
		    target_len, c->max_url_length);
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, too_long, -EINVAL);
	}
	if (n < 0)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET,
		            "the signed link would be longer than a protocol line (shorten the "
		            "target)",
		            (int)n);
	*ret_len = (size_t)n;
	return 0;
}

/* ---- directory grants (DESIGN.md, "Directory grants") ---- */

/* The number of segments of a decoded directory (ending in '/') below
 * media_url: what nginx's maps cut off the path. */
static size_t grant_depth(const Config *c, const char *dir, size_t len)
{
	size_t depth = 0;

	for (size_t i = strlen(c->media_url); i < len; i++)
		depth += dir[i] == '/';
	return depth;
}

/* "grant:" and the directory: what a grant's token hashes before the
 * address and the secret (a file's token hashes its path, which starts with
 * '/', there). buf holds len + STRLEN("grant:") + 1 bytes. */
static const char *grant_subject(char *buf, const char *dir, size_t len)
{
	memcpy(buf, "grant:", STRLEN("grant:"));
	memcpy(buf + STRLEN("grant:"), dir, len);
	buf[STRLEN("grant:") + len] = '\0';
	return buf;
}

/* "Tue, 14 Nov 2023 22:13:20 GMT" (RFC 9110's IMF-fixdate, which cookies'
 * Expires takes), in English whatever the locale. */
static int format_http_date(int64_t t, char *buf, size_t size)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	int n;

	if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999)
		return -EINVAL;
	n = snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
	             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return n > 0 && (size_t)n < size ? 0 : -EINVAL;
}

/* Writes a grant's answer: the path form's base URL, or the cookie form's
 * Set-Cookie value. dir is the decoded directory (media_url included). Like
 * url_write(), without printf or allocation: a grant is made per SIGN.
 * Returns 0, -E2BIG when the base URL's path leaves no room under
 * max_url_length, or -ENOBUFS when the answer does not fit. */
static int grant_write(const Config *c, const UrlTarget *t, GrantForm form, const char *dir,
                       size_t len, size_t depth, const char *token, const char *expires,
                       size_t expires_len, int64_t expires_value, uint32_t kid, char *buf,
                       size_t size, size_t *ret_len)
{
	const char *base = t->scheme ? NULL : (c->base_url ?: "");
	size_t ml = strlen(c->media_url), bl = base ? strlen(base) : 0, sl = 0, origin = 0;
	size_t pl = urlpath_encoded_len(dir, len), kidl, depthl, need, tokl = strlen(token);
	char kid_text[10], depth_text[20], date[64];
	bool secure = false;
	char *p = buf;

	kidl = format_u64(kid, kid_text);
	depthl = format_u64(depth, depth_text);
	if (form == GRANT_COOKIE) {
		secure = t->scheme ? streq(t->scheme, "https")
		                   : strncmp(base, "https://", STRLEN("https://")) == 0;
		if (format_http_date(expires_value, date, sizeof(date)) < 0)
			return -EINVAL;
		/* name=kid.expires.depth.token; Path=dir; Expires=date; ... */
		need = STRLEN(GRANT_COOKIE_NAME "=") + kidl + 1 + expires_len + 1 + depthl + 1 +
		       tokl + STRLEN("; Path=") + pl + STRLEN("; Expires=") + strlen(date) +
		       STRLEN("; HttpOnly; SameSite=Lax") + (secure ? STRLEN("; Secure") : 0);
		if (need >= size)
			return -ENOBUFS;
		p = append(p, GRANT_COOKIE_NAME "=", STRLEN(GRANT_COOKIE_NAME "="));
		p = append(p, kid_text, kidl);
		*p++ = '.';
		p = append(p, expires, expires_len);
		*p++ = '.';
		p = append(p, depth_text, depthl);
		*p++ = '.';
		p = append(p, token, tokl);
		p = append(p, "; Path=", STRLEN("; Path="));
		p += urlpath_encode_to(dir, len, p);
		p = append(p, "; Expires=", STRLEN("; Expires="));
		p = append(p, date, strlen(date));
		p = append(p, "; HttpOnly; SameSite=Lax", STRLEN("; HttpOnly; SameSite=Lax"));
		if (secure)
			p = append(p, "; Secure", STRLEN("; Secure"));
	} else {
		while (bl > 0 && base[bl - 1] == '/')
			bl--;
		if (t->scheme)
			sl = strlen(t->scheme);
		origin = t->scheme ? sl + (sl ? STRLEN("://") : STRLEN("//")) + t->host_len : bl;
		/* <media_url>_grant/<kid>/<expires>/<token>/<depth><rest of dir>,
		 * the rest keeping media_url's last '/'; pl counts that '/'
		 * in both encoded parts, hence no separate 1 for it. */
		need = origin + pl + STRLEN(GRANT_PATH_SEGMENT "/") + kidl + 1 + expires_len + 1 +
		       tokl + 1 + depthl + 1;
		/* The player appends file names: the base itself must leave
		 * room under max_url_length (nginx's 414). */
		if (need - origin >= c->max_url_length)
			return -E2BIG;
		if (need >= size)
			return -ENOBUFS;
		if (t->scheme) {
			p = append(p, t->scheme, sl);
			p = sl ? append(p, "://", STRLEN("://")) : append(p, "//", STRLEN("//"));
			p = append(p, t->host, t->host_len);
		} else
			p = append(p, base, bl);
		/* media_url as the canonical encoding of its decoded form, as
		 * links spell every path. */
		p += urlpath_encode_to(dir, ml, p);
		p = append(p, GRANT_PATH_SEGMENT "/", STRLEN(GRANT_PATH_SEGMENT "/"));
		p = append(p, kid_text, kidl);
		*p++ = '/';
		p = append(p, expires, expires_len);
		*p++ = '/';
		p = append(p, token, tokl);
		*p++ = '/';
		p = append(p, depth_text, depthl);
		p += urlpath_encode_to(dir + ml - 1, len - ml + 1, p);
	}
	*p = '\0';
	assert((size_t)(p - buf) == need);
	*ret_len = need;
	return 0;
}

int link_grant_to(const Config *c, const KeyRing *r, Signer *s, const char *target, GrantForm form,
                  int64_t expires, const char *ip, char *buf, size_t size, size_t *ret_len,
                  ProtoError *ret_code, const char **ret_message)
{
	static _Thread_local char too_deep[160];
	_cleanup_free_ char *heap = NULL;
	char dec[PROTO_LINE_MAX], subject[PROTO_LINE_MAX + STRLEN("grant:") + 1];
	char token[SIGN_TOKEN_MAX + 1], digits[20];
	const char *decoded;
	size_t len, dl, depth;
	bool canonical;
	UrlTarget t;
	const Key *k;
	int q;

	assert(c);
	assert(r);
	assert(s);
	assert(buf);
	assert(ret_len);
	assert(form == GRANT_PATH || form == GRANT_COOKIE);

	if (!target)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "missing target", -EINVAL);
	q = check_unbound_ip(c, ip, ret_code, ret_message);
	if (q < 0)
		return q;

	q = target_decode(c, target, strlen(target), false, &t, dec, &heap, &decoded, &len,
	                  &canonical, ret_code, ret_message);
	if (q < 0)
		return q;
	if (decoded[len - 1] != '/')
		return fail(ret_code, ret_message, PROTO_BAD_TARGET,
		            "a grant's target is a directory: end it in '/' (e.g. "
		            "/media/private/videos/42/)",
		            -EINVAL);

	if (in_grant_area(c, decoded))
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, GRANT_AREA_MESSAGE, -EINVAL);
	/* A public directory needs no grant: its plain URL, as SIGN answers a
	 * public file. */
	if (!config_path_is_private(c, decoded)) {
		size_t target_len = 0;
		ssize_t n = url_write(c, &t, decoded, len, canonical, NULL, NULL, 0, 0, buf, size,
		                      &target_len);

		if (n < 0)
			return fail(ret_code, ret_message, PROTO_BAD_TARGET,
			            "the directory's URL is too long (shorten the target)",
			            -EINVAL);
		*ret_len = (size_t)n;
		return 0;
	}
	/* nginx's maps match a directory segment by segment, with "." for the
	 * rest of the path: a control byte there would never match. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)decoded[i] < 0x20 || decoded[i] == 0x7f)
			return fail(ret_code, ret_message, PROTO_BAD_TARGET,
			            "a grant's directory must not hold control bytes (rename the "
			            "directory)",
			            -EINVAL);
	depth = grant_depth(c, decoded, len);
	if (depth > GRANT_DEPTH_MAX) {
		snprintf(too_deep, sizeof(too_deep),
		         "the directory is %zu levels below media_url, grants reach %d (grant a "
		         "directory higher up)",
		         depth, GRANT_DEPTH_MAX);
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, too_deep, -EINVAL);
	}

	q = signing_key(c, r, expires, ip, &k, ret_code, ret_message);
	if (q < 0)
		return q;
	if (len >= PROTO_LINE_MAX)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "path too long", -EINVAL);

	dl = format_u64((uint64_t)expires, digits);
	q = signer_token_alg(s, c->algorithm, digits, dl, grant_subject(subject, decoded, len),
	                     STRLEN("grant:") + len, c->bind_ip ? ip : NULL, k->secret, token);
	if (q == -E2BIG)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "path too long", -EINVAL);
	if (q < 0)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "cannot compute the token", q);

	q = grant_write(c, &t, form, decoded, len, depth, token, digits, dl, expires, k->kid, buf,
	                size, ret_len);
	sodium_memzero(token, sizeof(token));
	if (q == -ENOMEM)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "out of memory", q);
	if (q == -E2BIG)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET,
		            "the grant's base URL leaves no room under max_url_length (nginx "
		            "answers 414 beyond it; grant a shorter directory)",
		            -EINVAL);
	if (q < 0)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET,
		            "the grant would be longer than a protocol line (shorten the target)",
		            q);
	return 0;
}

int64_t link_expires_round(int64_t expires, int64_t granularity, int64_t limit)
{
	int64_t up;

	if (granularity <= 0 || expires <= 0 || expires % granularity == 0)
		return expires;
	if (expires > INT64_MAX - granularity)
		return expires;
	up = (expires / granularity + 1) * granularity;
	/* Rounding down would cut the lifetime the caller asked for; past
	 * limit the link would outlive its key or max_link_ttl. Neither: the
	 * link keeps its own expires and is just not shared. */
	return up <= limit ? up : expires;
}

int link_sign(const Config *c, const KeyRing *r, Signer *s, const char *target, int64_t expires,
              const char *ip, char **ret_url, ProtoError *ret_code, const char **ret_message)
{
	_cleanup_free_ char *url = NULL;
	size_t size, extra, len;
	int q;

	assert(c);
	assert(ret_url);

	if (!target)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "missing target", -EINVAL);

	/* Room for any link of this target: its origin, or base_url, and
	 * every byte of its path as %XX, and the parameters. */
	size = strlen(target);
	extra = strlen(c->base_url ?: "") + strlen(c->token_param) + strlen(c->expires_param) +
	        strlen(c->key_param) + SIGN_TOKEN_MAX + 64;
	if (size > (SIZE_MAX - extra) / 3)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "out of memory", -ENOMEM);
	size = size * 3 + extra;
	url = malloc(size);
	if (!url)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "out of memory", -ENOMEM);
	q = link_sign_to(c, r, s, target, expires, ip, url, size, &len, ret_code, ret_message);
	if (q < 0)
		return q;
	*ret_url = TAKE_PTR(url);
	return 0;
}

/* nginx's $arg_<name> (ngx_http_arg()): the first "name=" that starts the
 * query or follows a '&', the name compared case-insensitively; the value
 * runs to the next '&' and is NOT percent-decoded. ';' separates nothing.
 * Returns false when the parameter is absent. */
static bool query_arg(const char *query, size_t len, const char *name, const char **ret_value,
                      size_t *ret_len)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i + nl < len; i++) {
		const char *amp;

		if (i > 0 && query[i - 1] != '&')
			continue;
		if (strncasecmp(query + i, name, nl) != 0 || query[i + nl] != '=')
			continue;

		*ret_value = query + i + nl + 1;
		amp = memchr(*ret_value, '&', len - (i + nl + 1));
		*ret_len = amp ? (size_t)(amp - *ret_value) : len - (i + nl + 1);
		return true;
	}
	return false;
}

/* nginx's ngx_decode_base64url(): base64url digits up to the first '='
 * (anything after it is ignored), leftover bits of the last digit ignored.
 * nginx also refuses 4n+1 digits; those never decode to MD5_LEN bytes here
 * either. out must hold len * 3 / 4 bytes. Returns the decoded length or
 * -EINVAL. */
static int nginx_base64url_decode(const char *s, size_t len, uint8_t *out)
{
	uint8_t v[4];
	size_t n = 0, d = 0;

	for (n = 0; n < len && s[n] != '='; n++) {
		char ch = s[n];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return -EINVAL;
	}

	for (size_t i = 0; i < n; i += 4) {
		size_t m = n - i < 4 ? n - i : 4;

		for (size_t j = 0; j < m; j++) {
			char ch = s[i + j];

			v[j] = ch >= 'A' && ch <= 'Z'   ? (uint8_t)(ch - 'A')
			       : ch >= 'a' && ch <= 'z' ? (uint8_t)(ch - 'a' + 26)
			       : ch >= '0' && ch <= '9' ? (uint8_t)(ch - '0' + 52)
			       : ch == '-'              ? 62
			                                : 63;
		}
		if (m > 1)
			out[d++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (m > 2)
			out[d++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (m > 3)
			out[d++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	return (int)d;
}

/* The key nginx's map picks for the kid parameter's raw text: an exact map
 * entry (the decimal kid), else the default. */
static const Key *key_for_kid_text(const KeyRing *r, const char *text, size_t len, bool *ret_known)
{
	char buf[sizeof("4294967295")];

	for (size_t i = 0; i < r->n_keys; i++) {
		int k = snprintf(buf, sizeof(buf), "%" PRIu32, r->keys[i].kid);

		if ((size_t)k == len && memcmp(buf, text, len) == 0) {
			*ret_known = true;
			return &r->keys[i];
		}
	}
	*ret_known = false;
	return keyring_default(r);
}

static int invalid(LinkVerdict *ret_verdict, const char **ret_reason, const char *reason)
{
	*ret_verdict = LINK_INVALID;
	if (ret_reason)
		*ret_reason = reason;
	return 0;
}

static bool is_base64url(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* What nginx's verdict map sends to the njs check: a token of exactly
 * SIGN_HMAC_TOKEN_LEN base64url digits, while nginx checks HMAC links. */
static bool is_hmac_token(const char *t, size_t n, unsigned algs)
{
	return (algs & LINK_ALGORITHM_BIT(LINK_ALGORITHM_HMAC_SHA256)) &&
	       n == SIGN_HMAC_TOKEN_LEN && is_base64url(t, n);
}

/* A link's fields as nginx reads them, raw text. */
typedef struct LinkFields {
	const char *token, *exp, *kid;
	size_t token_len, exp_len, kid_len;
	bool has_kid;
} LinkFields;

/* What nginx's secure_link decides for the fields f over subject (the
 * text hashed after the expiry: $uri, or "grant:" and a directory). */
static int check_token(const KeyRing *r, Signer *s, unsigned algs, const char *subject,
                       const char *ip, int64_t now, const LinkFields *f, LinkVerdict *ret_verdict,
                       uint32_t *ret_kid, int64_t *ret_expires, const char **ret_reason,
                       ProtoError *ret_code, const char **ret_message)
{
	/* Decoded tokens: an HMAC's 32 bytes, or what NGINX_TOKEN_MAX digits
	 * make. */
	uint8_t want[SIGN_HMAC_BYTES], got[SIGN_HMAC_BYTES];
	_Static_assert(NGINX_TOKEN_MAX * 3 / 4 <= SIGN_HMAC_BYTES, "room for a decoded token");
	char computed[SIGN_TOKEN_MAX + 1];
	uint64_t expires = 0;
	bool known, hmac = is_hmac_token(f->token, f->token_len, algs);
	const Key *k;
	int q, n;

	/* nginx splits "$arg_token,$arg_expires" at the first ',': a ',' in
	 * the token spoils the expires; either way no such token decodes. */
	if (f->token_len == 0)
		return invalid(ret_verdict, ret_reason, "missing token");
	if (f->exp_len == 0)
		return invalid(ret_verdict, ret_reason, "missing expires");

	/* ngx_atotm(): digits only, no overflow, and > 0. nginx hashes the
	 * expires text as sent; we hash its canonical digits, so a leading
	 * zero is refused here (only a holder of the secret could make such a
	 * link valid for nginx; securelinkd never does). */
	for (size_t i = 0; i < f->exp_len; i++) {
		if (f->exp[i] < '0' || f->exp[i] > '9')
			return invalid(ret_verdict, ret_reason, "bad expires");
		if (expires > ((uint64_t)INT64_MAX - (uint64_t)(f->exp[i] - '0')) / 10)
			return invalid(ret_verdict, ret_reason, "bad expires");
		expires = expires * 10 + (uint64_t)(f->exp[i] - '0');
	}
	if (expires == 0 || f->exp[0] == '0')
		return invalid(ret_verdict, ret_reason, "bad expires");

	/* nginx's verdict map answers "" (403) for what neither check takes. */
	if (!hmac && !(algs & LINK_ALGORITHM_BIT(LINK_ALGORITHM_MD5)))
		return invalid(ret_verdict, ret_reason, "bad token (md5 links are not checked)");
	if (!hmac) {
		if (f->token_len > NGINX_TOKEN_MAX)
			return invalid(ret_verdict, ret_reason, "bad token");
		n = nginx_base64url_decode(f->token, f->token_len, got);
		if (n != MD5_LEN)
			return invalid(ret_verdict, ret_reason, "bad token");
	}

	/* Like nginx's map: the kid's raw text picks a key, anything else
	 * (absent, unknown, "041") falls back to the default key. */
	k = key_for_kid_text(r, f->has_kid ? f->kid : "", f->has_kid ? f->kid_len : 0, &known);
	if (!k)
		return invalid(ret_verdict, ret_reason, "no key in the ring");

	if (hmac) {
		/* securelink.js: the HMAC over the expiry's text as sent (no
		 * leading zero, checked above). */
		q = signer_token_alg(s, LINK_ALGORITHM_HMAC_SHA256, f->exp, f->exp_len, subject,
		                     strlen(subject), ip, k->secret, computed);
		if (q == -E2BIG)
			return fail(ret_code, ret_message, PROTO_BAD_TARGET, "path too long",
			            -EINVAL);
		if (q < 0)
			return fail(ret_code, ret_message, PROTO_INTERNAL,
			            "cannot compute the token", q);
		/* As bytes, as securelink.js compares them: the 2 bits the
		 * last digit carries beyond 32 bytes do not count. */
		n = nginx_base64url_decode(computed, SIGN_HMAC_TOKEN_LEN, want);
		sodium_memzero(computed, sizeof(computed));
		assert(n == SIGN_HMAC_BYTES);
		n = nginx_base64url_decode(f->token, f->token_len, got);
		assert(n == SIGN_HMAC_BYTES);
		q = sodium_memcmp(want, got, SIGN_HMAC_BYTES);
		sodium_memzero(want, sizeof(want));
		goto compared;
	}

	q = signer_token(s, (int64_t)expires, subject, ip, k->secret, computed);
	if (q == -E2BIG)
		return fail(ret_code, ret_message, PROTO_BAD_TARGET, "path too long", -EINVAL);
	if (q < 0)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "cannot compute the token", q);
	n = nginx_base64url_decode(computed, SIGN_TOKEN_LEN, want);
	sodium_memzero(computed, sizeof(computed));
	assert(n == MD5_LEN);

	/* Compared as bytes, like nginx: "...g" and "...h" may decode alike. */
	q = sodium_memcmp(want, got, MD5_LEN);
	sodium_memzero(want, sizeof(want));
compared:
	if (q != 0)
		return invalid(ret_verdict, ret_reason,
		               f->has_kid && f->kid_len > 0 && !known ? "unknown kid"
		                                                      : "bad token");

	/* nginx: a good token with expires < now is "0" (410); expires == now
	 * still passes. */
	*ret_verdict = (int64_t)expires < now ? LINK_EXPIRED : LINK_VALID;
	if (ret_kid)
		*ret_kid = k->kid;
	if (ret_expires)
		*ret_expires = (int64_t)expires;
	return 0;
}

/* A run of 1 or more digits at *p (nginx's "[0-9]+"), then end. Advances
 * *p past both; false when there is none. */
static bool take_digits(const char **p, const char *end, char stop, const char **ret,
                        size_t *ret_len)
{
	size_t n = 0;

	while (*p + n < end && (*p)[n] >= '0' && (*p)[n] <= '9')
		n++;
	if (n == 0 || *p + n >= end || (*p)[n] != stop)
		return false;
	*ret = *p;
	*ret_len = n;
	*p += n + 1;
	return true;
}

/* The token lengths nginx's grant regexes take: 22 base64url digits, and
 * 43 while nginx checks HMAC links. */
static bool grant_token_len_ok(size_t n, unsigned algs)
{
	return n == SIGN_TOKEN_LEN || (n == SIGN_HMAC_TOKEN_LEN &&
	                               (algs & LINK_ALGORITHM_BIT(LINK_ALGORITHM_HMAC_SHA256)));
}

/* A grant's token: base64url digits of a length grant_token_len_ok()
 * takes, then stop. */
static bool take_token(const char **p, const char *end, char stop, unsigned algs, const char **ret,
                       size_t *ret_len)
{
	const char *s = *p;
	size_t n = 0;

	while (s + n < end && is_base64url(s + n, 1))
		n++;
	if (s + n >= end || s[n] != stop || !grant_token_len_ok(n, algs))
		return false;
	*ret = s;
	*ret_len = n;
	*p += n + 1;
	return true;
}

/* nginx's grant-directory map: "<depth>/<path>" -> the first <depth>
 * whole segments of path (each "[^/]+/"), for depth "0" or "1".."16"
 * exactly as written. Sets *ret_len (the directory's length in path) or
 * returns false, as the map's default "!" (which no token signs) does. */
static bool grant_cut(const char *depth, size_t depth_len, const char *path, size_t len,
                      size_t *ret_len)
{
	unsigned d = 0;
	size_t i = 0;

	if (depth_len == 0 || depth_len > 2 || (depth_len == 2 && depth[0] == '0'))
		return false;
	for (size_t j = 0; j < depth_len; j++)
		d = d * 10 + (unsigned)(depth[j] - '0');
	if (d > GRANT_DEPTH_MAX)
		return false;
	/* The map's source is cut by ".*": a newline ends what it sees. */
	if (memchr(path, '\n', len))
		return false;
	for (unsigned seg = 0; seg < d; seg++) {
		size_t start = i;

		while (i < len && path[i] != '/')
			i++;
		if (i == start || i == len)
			return false;
		i++;
	}
	*ret_len = i;
	return true;
}

/* "grant:" + media_url + the len bytes of dir, into a new string. */
static char *grant_subject_new(const Config *c, const char *dir, size_t len)
{
	size_t ml = strlen(c->media_url);
	char *s = malloc(STRLEN("grant:") + ml + len + 1);

	if (!s)
		return NULL;
	memcpy(s, "grant:", STRLEN("grant:"));
	memcpy(s + STRLEN("grant:"), c->media_url, ml);
	memcpy(s + STRLEN("grant:") + ml, dir, len);
	s[STRLEN("grant:") + ml + len] = '\0';
	return s;
}

/* A path-form grant: decoded is $uri, inside media_url + "_grant/". */
static int verify_path_grant(const Config *c, const KeyRing *r, Signer *s, unsigned algs,
                             const char *decoded, size_t len, const char *ip, int64_t now,
                             LinkVerdict *ret_verdict, uint32_t *ret_kid, int64_t *ret_expires,
                             const char **ret_reason, ProtoError *ret_code,
                             const char **ret_message)
{
	_cleanup_free_ char *subject = NULL;
	const char *end = decoded + len, *p, *depth;
	size_t depth_len, dir_len;
	LinkFields f = { .has_kid = true };

	p = decoded + strlen(c->media_url) + STRLEN(GRANT_PATH_SEGMENT "/");
	/* nginx's location: "<kid>/<expires>/<token>/<depth>/" then the path. */
	if (!take_digits(&p, end, '/', &f.kid, &f.kid_len) ||
	    !take_digits(&p, end, '/', &f.exp, &f.exp_len) ||
	    !take_token(&p, end, '/', algs, &f.token, &f.token_len) ||
	    !take_digits(&p, end, '/', &depth, &depth_len) || memchr(p, '\n', (size_t)(end - p)))
		return invalid(ret_verdict, ret_reason, "not a grant's path");
	if (!grant_cut(depth, depth_len, p, (size_t)(end - p), &dir_len))
		return invalid(ret_verdict, ret_reason, "bad grant depth");
	subject = grant_subject_new(c, p, dir_len);
	if (!subject)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "out of memory", -ENOMEM);
	return check_token(r, s, algs, subject, ip, now, &f, ret_verdict, ret_kid, ret_expires,
	                   ret_reason, ret_code, ret_message);
}

/* A private path asked for with the grant cookie and no token parameter:
 * the cookie's "<kid>.<expires>.<depth>.<token>" (all or nothing, as
 * nginx's maps read it) and the first <depth> segments of the path. */
static int verify_cookie_grant(const Config *c, const KeyRing *r, Signer *s, unsigned algs,
                               const char *decoded, size_t len, const char *cookie, const char *ip,
                               int64_t now, LinkVerdict *ret_verdict, uint32_t *ret_kid,
                               int64_t *ret_expires, const char **ret_reason, ProtoError *ret_code,
                               const char **ret_message)
{
	_cleanup_free_ char *subject = NULL;
	size_t cl = strlen(cookie), ml = strlen(c->media_url), depth_len, dir_len;
	const char *p = cookie, *end = cookie + cl, *depth;
	LinkFields f = { .has_kid = true };

	/* The token runs to the end of the value: a stop byte past it. */
	if (!take_digits(&p, end, '.', &f.kid, &f.kid_len) ||
	    !take_digits(&p, end, '.', &f.exp, &f.exp_len) ||
	    !take_digits(&p, end, '.', &depth, &depth_len) ||
	    !grant_token_len_ok((size_t)(end - p), algs) || !is_base64url(p, (size_t)(end - p)))
		return invalid(ret_verdict, ret_reason, "missing token");
	f.token = p;
	f.token_len = (size_t)(end - p);
	if (!grant_cut(depth, depth_len, decoded + ml, len - ml, &dir_len))
		return invalid(ret_verdict, ret_reason, "the cookie's directory is not the path's");
	subject = grant_subject_new(c, decoded + ml, dir_len);
	if (!subject)
		return fail(ret_code, ret_message, PROTO_INTERNAL, "out of memory", -ENOMEM);
	return check_token(r, s, algs, subject, ip, now, &f, ret_verdict, ret_kid, ret_expires,
	                   ret_reason, ret_code, ret_message);
}

int link_verify(const Config *c, const KeyRing *r, Signer *s, const char *url, const char *ip,
                const char *cookie, int64_t now, LinkVerdict *ret_verdict, uint32_t *ret_kid,
                int64_t *ret_expires, const char **ret_reason, ProtoError *ret_code,
                const char **ret_message)
{
	return link_verify_algs(c, LINK_ALGORITHM_BIT(c->algorithm), r, s, url, ip, cookie, now,
	                        ret_verdict, ret_kid, ret_expires, ret_reason, ret_code,
	                        ret_message);
}

int link_verify_algs(const Config *c, unsigned algs, const KeyRing *r, Signer *s, const char *url,
                     const char *ip, const char *cookie, int64_t now, LinkVerdict *ret_verdict,
                     uint32_t *ret_kid, int64_t *ret_expires, const char **ret_reason,
                     ProtoError *ret_code, const char **ret_message)
{
	_cleanup_free_ char *heap = NULL;
	char buf[PROTO_LINE_MAX];
	const char *query = "", *decoded;
	size_t url_len, query_len = 0, decoded_len;
	UrlTarget target;
	LinkFields f = {};
	const char *p;
	int q;
	const char *message = NULL;
	ProtoError code = PROTO_INTERNAL;

	assert(c);
	assert(r);
	assert(s);
	assert(ret_verdict);

	if (!url)
		return fail(ret_code, ret_message, PROTO_BAD_REQUEST, "missing URL", -EINVAL);

	/* A client never sends the fragment; nginx sees the path up to the
	 * first '?' and the rest as $args. */
	url_len = strcspn(url, "#");
	p = memchr(url, '?', url_len);
	if (p) {
		query = p + 1;
		query_len = url_len - (size_t)(query - url);
		url_len = (size_t)(p - url);
	}

	/* nginx resolves "." and ".." in $uri before it picks the location
	 * and hashes: "/media/private/x/../a.pdf" is served as
	 * "/media/private/a.pdf", so that is the path to judge. */
	q = target_decode(c, url, url_len, true, &target, buf, &heap, &decoded, &decoded_len, NULL,
	                  &code, &message);
	/* A link securelinkd would not sign is not one it vouches for. */
	if (q == -EILSEQ)
		return invalid(ret_verdict, ret_reason, message);
	if (q < 0)
		return fail(ret_code, ret_message, code, message, q);

	if (!in_grant_area(c, decoded) && !config_path_is_private(c, decoded)) {
		*ret_verdict = LINK_PUBLIC;
		return 0;
	}

	q = check_bound_ip(c, ip, ret_code, ret_message);
	if (q < 0)
		return q;
	if (!c->bind_ip)
		ip = NULL;

	if (in_grant_area(c, decoded))
		return verify_path_grant(c, r, s, algs, decoded, decoded_len, ip, now, ret_verdict,
		                         ret_kid, ret_expires, ret_reason, ret_code, ret_message);

	/* An absent parameter is an empty $arg_ to nginx. */
	if (!query_arg(query, query_len, c->token_param, &f.token, &f.token_len))
		f.token_len = 0;
	if (!query_arg(query, query_len, c->expires_param, &f.exp, &f.exp_len))
		f.exp_len = 0;
	f.has_kid = query_arg(query, query_len, c->key_param, &f.kid, &f.kid_len);

	/* Without a token parameter, nginx checks the grant cookie. */
	if (f.token_len == 0 && cookie)
		return verify_cookie_grant(c, r, s, algs, decoded, decoded_len, cookie, ip, now,
		                           ret_verdict, ret_kid, ret_expires, ret_reason, ret_code,
		                           ret_message);

	return check_token(r, s, algs, decoded, ip, now, &f, ret_verdict, ret_kid, ret_expires,
	                   ret_reason, ret_code, ret_message);
}
