/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "regex-bounded.h"

/* glibc's regcomp() copies a repeated part once per repetition ("a+" is
 * "aa*", "a{3}" "aaa"), so a short pattern of nested repeats ("a+++++...",
 * "((a{99}){99}){99}") takes gigabytes and minutes to compile. The nodes it
 * would build, counted that way and capped: above REGEX_COST_MAX a pattern
 * is refused instead (nginx's PCRE does not copy, but no sane site's
 * server_name or rewrite comes near). So is a repeat of a repeat ("a+?",
 * "a{2}*"): POSIX leaves its meaning undefined, PCRE reads it as lazy or
 * possessive, and glibc builds it as one more copy. */
#define REGEX_COST_MAX  10000U
#define REGEX_DEPTH_MAX 32

static size_t cost_cap(size_t n)
{
	return n > REGEX_COST_MAX ? REGEX_COST_MAX + 1 : n;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The decimal number at *p (capped), *p moved past it. */
static size_t read_number(const char **p)
{
	size_t n = 0;

	while (is_digit(**p))
		n = cost_cap(n * 10 + (size_t)(*(*p)++ - '0'));
	return n;
}

/* A bound such as "{2,5}" at p: how many copies it makes (its largest
 * number, plus one), its end in *end; 0 if it is no bound, so "{" is a
 * character. */
static size_t regex_bound(const char *p, const char **end)
{
	const char *q = p + 1;
	size_t lo, hi;

	if (!is_digit(*q))
		return 0;
	hi = lo = read_number(&q);
	if (*q == ',') {
		q++;
		/* "{m,}": m copies and a star; "{m,n}": n copies. */
		hi = is_digit(*q) ? read_number(&q) : lo + 1;
	}
	if (*q != '}')
		return 0;
	*end = q + 1;
	return (hi > lo ? hi : lo) + 1;
}

static size_t regex_cost(const char *p)
{
	/* Per open group: its nodes so far, and the last atom's, which a
	 * repeat copies. */
	size_t sum[REGEX_DEPTH_MAX + 1] = { 0 }, last[REGEX_DEPTH_MAX + 1] = { 0 }, depth = 0;
	bool repeated = false; /* the last thing read was a repeat */

	while (*p) {
		const char *end = p + 1;
		size_t copies, atom = 1;

		switch (*p) {
		case '(':
			if (depth == REGEX_DEPTH_MAX)
				return REGEX_COST_MAX + 1;
			repeated = false;
			depth++;
			sum[depth] = last[depth] = 0;
			p++;
			continue;
		case ')':
			if (depth == 0)
				break;
			atom = cost_cap(sum[depth] + 1);
			depth--;
			break;
		case '|':
			repeated = false;
			last[depth] = 0;
			p++;
			continue;
		case '*':
		case '?':
			if (repeated)
				return REGEX_COST_MAX + 1;
			repeated = true;
			sum[depth] = cost_cap(sum[depth] + 1);
			last[depth] = cost_cap(last[depth] + 1);
			p++;
			continue;
		case '+':
		case '{':
			copies = *p == '+' ? 2 : regex_bound(p, &end);
			if (copies == 0)
				break; /* a "{" that is a character */
			if (repeated)
				return REGEX_COST_MAX + 1;
			repeated = true;
			sum[depth] = cost_cap(sum[depth] + last[depth] * (copies - 1) + 1);
			last[depth] = cost_cap(last[depth] * copies + 1);
			p = end;
			continue;
		case '\\':
			if (p[1])
				end = p + 2;
			break;
		case '[':
			/* A bracket expression: "]" first is a member, as are
			 * "[:alpha:]" and the like. */
			end = p + 1;
			if (*end == '^')
				end++;
			if (*end == ']')
				end++;
			while (*end && *end != ']') {
				if (*end == '[' &&
				    (end[1] == ':' || end[1] == '.' || end[1] == '=')) {
					const char *close = strchr(end + 2, end[1]);

					while (close && close[1] != ']')
						close = strchr(close + 1, end[1]);
					end = close ? close + 2 : end + 1;
				} else
					end++;
			}
			if (*end)
				end++;
			break;
		default:
			break;
		}
		repeated = false;
		sum[depth] = cost_cap(sum[depth] + atom);
		last[depth] = atom;
		if (sum[depth] > REGEX_COST_MAX)
			return REGEX_COST_MAX + 1;
		p = end;
	}
	/* Groups left open: regcomp() refuses them, the count holds. */
	for (; depth > 0; depth--)
		sum[depth - 1] = cost_cap(sum[depth - 1] + sum[depth]);
	return sum[0];
}

int regcomp_bounded(regex_t *re, const char *pattern, int flags)
{
	if (regex_cost(pattern) > REGEX_COST_MAX)
		return REG_ESPACE;
	return regcomp(re, pattern, flags);
}
