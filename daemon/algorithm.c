/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "algorithm.h"
#include "fileio.h"

#define STATE_MAX 256

static int parse_algorithm(const char *s, size_t n, LinkAlgorithm *ret)
{
	for (unsigned a = 0; a < _LINK_ALGORITHM_MAX; a++) {
		const char *name = link_algorithm_to_string((LinkAlgorithm)a);

		if (strlen(name) == n && memcmp(s, name, n) == 0) {
			*ret = (LinkAlgorithm)a;
			return 0;
		}
	}
	return -EBADMSG;
}

/* "<signing>\n", then "<previous> <until, unix seconds>\n" while the
 * previous one is checked. */
int algorithm_state_load(const char *dir, AlgorithmState *ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	AlgorithmState s = {};
	size_t size = 0, n;
	const char *p, *eol;
	uint64_t until = 0;
	int r;

	if (asprintf(&path, "%s/" ALGORITHM_STATE_FILE, dir) < 0)
		return -ENOMEM;
	r = read_file(path, STATE_MAX, &text, &size);
	if (r < 0)
		return r;
	eol = memchr(text, '\n', size);
	if (!eol)
		return -EBADMSG;
	r = parse_algorithm(text, (size_t)(eol - text), &s.signing);
	if (r < 0)
		return r;
	p = eol + 1;
	if (p < text + size) {
		eol = memchr(p, '\n', (size_t)(text + size - p));
		n = strcspn(p, " ");
		if (!eol || eol + 1 != text + size || p + n >= eol)
			return -EBADMSG;
		r = parse_algorithm(p, n, &s.previous);
		if (r < 0)
			return r;
		p += n + 1;
		if (p == eol || *p == '0')
			return -EBADMSG;
		for (; p < eol; p++) {
			if (*p < '0' || *p > '9' || until > (UINT64_MAX / USEC_PER_SEC - 9) / 10)
				return -EBADMSG;
			until = until * 10 + (uint64_t)(*p - '0');
		}
		s.previous_until = until * USEC_PER_SEC;
	}
	*ret = s;
	return 0;
}

int algorithm_state_save(const char *dir, const AlgorithmState *s)
{
	_cleanup_free_ char *path = NULL;
	char text[STATE_MAX];
	int n;

	if (asprintf(&path, "%s/" ALGORITHM_STATE_FILE, dir) < 0)
		return -ENOMEM;
	/* md5 alone is what no file says: a site that never switched has
	 * none, as before there were algorithms. */
	if (s->signing == LINK_ALGORITHM_MD5 && s->previous_until == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (s->previous_until > 0)
		n = snprintf(text, sizeof(text), "%s\n%s %" PRIu64 "\n",
		             link_algorithm_to_string(s->signing),
		             link_algorithm_to_string(s->previous),
		             (s->previous_until + USEC_PER_SEC - 1) / USEC_PER_SEC);
	else
		n = snprintf(text, sizeof(text), "%s\n", link_algorithm_to_string(s->signing));
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	return write_file_atomic(path, text, (size_t)n, 0644, NULL);
}

AlgorithmState algorithm_switch(usec_t live, LinkAlgorithm from, LinkAlgorithm to, usec_t now)
{
	/* Whole seconds, as the state file keeps it: a restart checks the same
	 * links until the same time. */
	usec_t until = (now + live + USEC_PER_SEC - 1) / USEC_PER_SEC * USEC_PER_SEC;

	return (AlgorithmState){
		.signing = to,
		.previous = from,
		.previous_until = from == to ? 0 : until,
	};
}

unsigned algorithm_state_checked(const AlgorithmState *s, usec_t now)
{
	unsigned algs = LINK_ALGORITHM_BIT(s->signing);

	if (s->previous_until > now)
		algs |= LINK_ALGORITHM_BIT(s->previous);
	return algs;
}
