/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe-plan.h"

/* A name no site holds: the probe must meet nginx's verdict on the path,
 * never a file, so a signed probe that passes gets 404. */
#define PROBE_NAME_PREFIX ".securelink-probe-"

void probe_plan_done(ProbePlan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_requests; i++)
		free(p->requests[i].url);
	free(p->requests);
	*p = (ProbePlan){};
}

static const char *relative(const char *prefix)
{
	while (*prefix == '/')
		prefix++;
	return prefix;
}

static int add(ProbePlan *p, ProbeKind kind, char *url, uint32_t kid)
{
	ProbeRequest *n;

	if (!url)
		return -ENOMEM;
	n = realloc(p->requests, (p->n_requests + 1) * sizeof(ProbeRequest));
	if (!n) {
		free(url);
		return -ENOMEM;
	}
	p->requests = n;
	p->requests[p->n_requests++] = (ProbeRequest){ .kind = kind, .url = url, .kid = kid };
	return 0;
}

static char *join(const char *a, const char *b, const char *c, const char *d)
{
	char *s;

	if (asprintf(&s, "%s%s%s%s", a, b, c, d) < 0)
		return NULL;
	return s;
}

/* A private directory probed: checked by nginx under both formats. */
static int add_private(ProbePlan *p, const Config *signing, const Config *c, const Key *k,
                       Signer *s, const char *origin, const char *ip, int64_t now, const char *rel,
                       const char *name)
{
	char token[SIGN_TOKEN_MAX + 1], tail[256], digits[20];
	_cleanup_free_ char *path = NULL;
	int64_t expires = now + 60;
	int r;

	path = join(c->media_url, rel, name, "");
	if (!path)
		return -ENOMEM;
	if (!config_path_is_private(c, path) || !config_path_is_private(signing, path))
		return 0;
	r = add(p, PROBE_UNSIGNED, join(origin, path, "", ""), 0);
	if (r < 0)
		return r;
	/* The same path with a second '/' at each '/' from media_url's last
	 * to the directory's last, which the private location's prefix still
	 * matches: a server with merge_slashes off keeps it, no private
	 * location's prefix matches, and a location of the site's own for
	 * media_url would serve the file. Not before media_url's end: there a
	 * 404 cannot tell the site's root, which may not hold media_root, from
	 * a file served unchecked (securelinkctl check reads that). */
	for (size_t i = strlen(c->media_url) - 1; i + 1 < strlen(c->media_url) + strlen(rel); i++) {
		char *u;

		if (path[i] != '/')
			continue;
		if (asprintf(&u, "%s%.*s/%s", origin, (int)i, path, path + i) < 0)
			return -ENOMEM;
		r = add(p, PROBE_UNSIGNED_DOUBLED, u, 0);
		if (r < 0)
			return r;
	}
	/* The name is hex: the path is its own encoding, as SIGN makes it. */
	/* In the algorithm links are signed in once c is confirmed: nginx
	 * checks it from c's snippets on. */
	r = signer_token_alg(s, c->algorithm, digits, format_u64((uint64_t)expires, digits), path,
	                     strlen(path), c->bind_ip ? ip : NULL, k->secret, token);
	if (r < 0)
		return r;
	(void)snprintf(tail, sizeof(tail), "?%s=%s&%s=%" PRId64 "&%s=%" PRIu32, c->token_param,
	               token, c->expires_param, expires, c->key_param, k->kid);
	return add(p, PROBE_SIGNED, join(origin, path, tail, ""), k->kid);
}

int probe_plan_build(const Config *signing, const Config *c, const KeyRing *r, Signer *s,
                     const char *origin, const char *ip, int64_t now, ProbePlan *ret)
{
	char name[sizeof(PROBE_NAME_PREFIX) + 32];
	unsigned char rnd[16];
	ProbePlan p = {};
	const Key *k = NULL;
	int q = 0;

	assert(signing && c && r && s && origin && ret);

	for (size_t i = 0; i < r->n_keys; i++)
		if (!k || r->keys[i].kid > k->kid)
			k = r->keys + i;
	if (!k)
		return -ENOKEY;
	p.kid = k->kid;

	randombytes_buf(rnd, sizeof(rnd));
	memcpy(name, PROBE_NAME_PREFIX, STRLEN(PROBE_NAME_PREFIX));
	sodium_bin2hex(name + STRLEN(PROBE_NAME_PREFIX), 33, rnd, sizeof(rnd));

	if (c->private_prefixes[0]) {
		for (size_t i = 0; c->private_prefixes[i] && q >= 0; i++)
			q = add_private(&p, signing, c, k, s, origin, ip, now,
			                relative(c->private_prefixes[i]), name);
		/* The rest of media_url is public. */
		if (q >= 0) {
			_cleanup_free_ char *path = join(c->media_url, name, "", "");

			if (!path)
				q = -ENOMEM;
			else if (!config_path_is_private(c, path) &&
			         !config_path_is_private(signing, path))
				q = add(&p, PROBE_PUBLIC, join(origin, path, "", ""), 0);
		}
	} else {
		q = add_private(&p, signing, c, k, s, origin, ip, now, "", name);
		if (q >= 0 && c->public_prefixes[0]) {
			_cleanup_free_ char *path =
			    join(c->media_url, relative(c->public_prefixes[0]), name, "");

			if (!path)
				q = -ENOMEM;
			else if (!config_path_is_private(c, path) &&
			         !config_path_is_private(signing, path))
				q = add(&p, PROBE_PUBLIC, join(origin, path, "", ""), 0);
		}
	}
	if (q < 0) {
		probe_plan_done(&p);
		return q;
	}
	*ret = p;
	return 0;
}

ProbeVerdict probe_judge(ProbeKind kind, long status)
{
	if (status <= 0)
		return PROBE_UNREACHABLE;
	switch (kind) {
	case PROBE_UNSIGNED:
	case PROBE_UNSIGNED_DOUBLED:
		/* secure_link without a token: "" -> return 403. Anything
		 * else, a 404 included, means no check ran. */
		return status == 403 ? PROBE_PASS : PROBE_FAIL_OPEN;
	case PROBE_SIGNED:
		/* The random name is missing: 404 once the token passed. */
		return status == 403 || status == 410 ? PROBE_KEY_REFUSED : PROBE_PASS;
	case PROBE_PUBLIC:
		return status == 403 ? PROBE_PUBLIC_REFUSED : PROBE_PASS;
	default:
		assert(false);
		return PROBE_UNREACHABLE;
	}
}

const char *probe_verdict_to_string(ProbeVerdict v)
{
	static const char *const t[_PROBE_VERDICT_MAX] = {
		[PROBE_PASS] = "pass",
		[PROBE_FAIL_OPEN] = "fail-open",
		[PROBE_KEY_REFUSED] = "key-refused",
		[PROBE_PUBLIC_REFUSED] = "public-refused",
		[PROBE_UNREACHABLE] = "unreachable",
	};

	return v >= 0 && v < _PROBE_VERDICT_MAX ? t[v] : NULL;
}
