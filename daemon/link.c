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
	size_t tl = 0, el = 0, kl = 0, kidl = 0, origin;
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
		/* "?t=" token "&e=" digits "&k=" digits */
		need += 1 + tl + 1 + SIGN_TOKEN_LEN + 1 + el + 1 + expires_len + 1 + kl + 1 + kidl;
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
		p = append(p, token, SIGN_TOKEN_LEN);
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

int link_sign_to(const Config *c, const KeyRing *r, Signer *s, const char *target, int64_t expires,
                 const char *ip, char *buf, size_t size, size_t *ret_len, ProtoError *ret_code,
                 const char **ret_message)
{
	/* The one message that carries numbers: valid until the next call. */
	static _Thread_local char too_long[256];
	_cleanup_free_ char *heap = NULL;
	char dec[PROTO_LINE_MAX];
	char token[SIGN_TOKEN_LEN + 1];
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

	/* Without bind_ip nginx's expression has no $remote_addr: a link
	 * asked for one address would open from any. Refuse it rather than
	 * hand it out looking bound. */
	if (!c->bind_ip && ip)
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= given but bind_ip = no: links are not bound to an address (set "
		            "bind_ip = yes in securelinkd.conf, or leave out ip=)",
		            -EINVAL);

	q = target_decode(c, target, strlen(target), false, &t, dec, &heap, &decoded, &len,
	                  &canonical, ret_code, ret_message);
	if (q < 0)
		return q;

	/* Public: nginx serves it without any check, a token would only be
	 * noise. */
	if (!config_path_is_private(c, decoded)) {
		n = url_write(c, &t, decoded, len, canonical, NULL, NULL, 0, 0, buf, size,
		              &target_len);
		goto written;
	}

	/* nginx's module rejects an empty or zero expires: such a link could
	 * never be served. Whether it lies in the past is the caller's call. */
	if (expires <= 0)
		return fail(ret_code, ret_message, PROTO_BAD_TTL,
		            "expires must be a unix time in the future", -EINVAL);

	/* Only the active key signs: a published key may not be in nginx
	 * yet, a retired one is on its way out. */
	k = keyring_active(r);
	if (!k)
		return fail(ret_code, ret_message, PROTO_UNAVAILABLE,
		            "no active key (is a key rotation still waiting for nginx?)", -ENOKEY);

	if (c->bind_ip && !ip)
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= is required when bind_ip = yes", -EINVAL);
	if (c->bind_ip && !ip_is_valid(ip))
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= must be an IPv4 or IPv6 address", -EINVAL);

	/* The hash covers the decoded path, which is $uri to nginx, with
	 * expires as the same digits the link carries; the client's address
	 * only when nginx's expression has $remote_addr. */
	dl = format_u64((uint64_t)expires, digits);
	q = signer_token_text(s, digits, dl, decoded, len, c->bind_ip ? ip : NULL, k->secret,
	                      token);
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
	        strlen(c->key_param) + SIGN_TOKEN_LEN + 64;
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

int link_verify(const Config *c, const KeyRing *r, Signer *s, const char *url, const char *ip,
                int64_t now, LinkVerdict *ret_verdict, uint32_t *ret_kid, int64_t *ret_expires,
                const char **ret_reason, ProtoError *ret_code, const char **ret_message)
{
	_cleanup_free_ char *heap = NULL;
	char buf[PROTO_LINE_MAX];
	const char *query = "", *token, *exp, *kid, *decoded, *message = NULL;
	size_t url_len, query_len = 0, token_len = 0, exp_len = 0, kid_len = 0, decoded_len;
	ProtoError code = PROTO_INTERNAL;
	UrlTarget target;
	uint8_t want[NGINX_TOKEN_MAX], got[NGINX_TOKEN_MAX];
	char computed[SIGN_TOKEN_LEN + 1];
	uint64_t expires = 0;
	bool has_kid, known;
	const Key *k;
	const char *p;
	int q, n;

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

	if (!config_path_is_private(c, decoded)) {
		*ret_verdict = LINK_PUBLIC;
		return 0;
	}

	if (c->bind_ip && !ip)
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= is required when bind_ip = yes", -EINVAL);
	if (c->bind_ip && !ip_is_valid(ip))
		return fail(ret_code, ret_message, PROTO_BAD_IP,
		            "ip= must be an IPv4 or IPv6 address", -EINVAL);

	/* An absent parameter is an empty $arg_ to nginx. */
	if (!query_arg(query, query_len, c->token_param, &token, &token_len))
		token_len = 0;
	if (!query_arg(query, query_len, c->expires_param, &exp, &exp_len))
		exp_len = 0;
	has_kid = query_arg(query, query_len, c->key_param, &kid, &kid_len);

	/* nginx splits "$arg_token,$arg_expires" at the first ',': a ',' in
	 * the token spoils the expires; either way no such token decodes. */
	if (token_len == 0)
		return invalid(ret_verdict, ret_reason, "missing token");
	if (exp_len == 0)
		return invalid(ret_verdict, ret_reason, "missing expires");

	/* ngx_atotm(): digits only, no overflow, and > 0. nginx hashes the
	 * expires text as sent; we hash its canonical digits, so a leading
	 * zero is refused here (only a holder of the secret could make such a
	 * link valid for nginx; securelinkd never does). */
	for (size_t i = 0; i < exp_len; i++) {
		if (exp[i] < '0' || exp[i] > '9')
			return invalid(ret_verdict, ret_reason, "bad expires");
		if (expires > ((uint64_t)INT64_MAX - (uint64_t)(exp[i] - '0')) / 10)
			return invalid(ret_verdict, ret_reason, "bad expires");
		expires = expires * 10 + (uint64_t)(exp[i] - '0');
	}
	if (expires == 0 || exp[0] == '0')
		return invalid(ret_verdict, ret_reason, "bad expires");

	if (token_len > NGINX_TOKEN_MAX)
		return invalid(ret_verdict, ret_reason, "bad token");
	n = nginx_base64url_decode(token, token_len, got);
	if (n != MD5_LEN)
		return invalid(ret_verdict, ret_reason, "bad token");

	/* Like nginx's map: the kid's raw text picks a key, anything else
	 * (absent, unknown, "041") falls back to the default key. */
	k = key_for_kid_text(r, has_kid ? kid : "", has_kid ? kid_len : 0, &known);
	if (!k)
		return invalid(ret_verdict, ret_reason, "no key in the ring");

	q = signer_token(s, (int64_t)expires, decoded, c->bind_ip ? ip : NULL, k->secret, computed);
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
	if (q != 0)
		return invalid(ret_verdict, ret_reason,
		               has_kid && kid_len > 0 && !known ? "unknown kid" : "bad token");

	/* nginx: a good token with expires < now is "0" (410); expires == now
	 * still passes. */
	*ret_verdict = (int64_t)expires < now ? LINK_EXPIRED : LINK_VALID;
	if (ret_kid)
		*ret_kid = k->kid;
	if (ret_expires)
		*ret_expires = (int64_t)expires;
	return 0;
}
