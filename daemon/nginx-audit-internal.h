/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nginx-audit.h"
#include "util.h"

/* The audit's reading of the dump, shared by nginx-audit.c (servers,
 * includes, locations, rewrites) and nginx-audit-slashes.c (merge_slashes). */

typedef struct Location {
	const NginxNode *node;
	const char *modifier; /* "", "=", "^~", "~", "~*", "@" */
	const char *path;
	bool ours; /* from the locations file */
} Location;

typedef struct Server {
	const NginxNode *node;
	char **names;
	const NginxNode **listens;
	size_t n_listens;
	const NginxNode *locations_include;
	Location *locations; /* at server level, includes read in place */
	size_t n_locations;
	const NginxNode **rewrites; /* server-level rewrite, return and if, in order */
	size_t n_rewrites;
	const NginxNode *merge_slashes; /* its own, or NULL */
	const NginxNode *root;          /* its own, or NULL */
} Server;

typedef struct Audit {
	const NginxDump *dump;
	const NginxAuditSite *site;
	NginxAudit *out;
	Server *servers;
	size_t n_servers;
	const NginxNode **locations_elsewhere; /* includes outside any server {} */
	size_t n_locations_elsewhere;
	const NginxNode **keys_elsewhere;
	size_t n_keys_elsewhere;
	const NginxNode *http_merge_slashes; /* http {}'s, which servers inherit */
	const NginxNode *http_root;
	size_t visits_left; /* directives audit_walk() may still visit */
	int error;
} Audit;

/* Room for element n of an array that PUSH() alone grows: its capacity is
 * n rounded up to a power of two, doubled when n reaches one (a push costs
 * O(1) on average; one realloc per push was quadratic in the servers of a
 * large configuration). */
static inline void *audit_grow(void *p, size_t n, size_t size, int *error)
{
	void *q;

	if (p && (n & (n - 1)) != 0)
		return p;
	q = reallocarray(p, n ? 2 * n : 1, size);
	if (!q)
		*error = -ENOMEM;
	return q;
}

/* Appends value to array (n elements); on failure sets a->error. */
#define PUSH(a, array, n, value)                                                                   \
	do {                                                                                       \
		__typeof__(array) _q = audit_grow((array), (n), sizeof(*(array)), &(a)->error);    \
		if (_q) {                                                                          \
			(array) = _q;                                                              \
			(array)[(n)++] = (value);                                                  \
		}                                                                                  \
	} while (0)

static inline bool is(const NginxNode *n, const char *name, size_t n_args)
{
	return streq(n->args[0], name) && (n_args == 0 || n->n_args == n_args);
}

static inline bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Adds a finding of kind at the place of at (NULL: none): its text, one
 * sentence and its fix. On failure sets a->error. */
_printf_(4, 5) void audit_finding(Audit *a, const char *kind, const NginxNode *at,
                                  const char *format, ...);

typedef void (*audit_visit_t)(Audit *a, void *userdata, const NginxNode *n);

/* Calls visit for each directive of block, with the files its includes
 * name read in place, as nginx reads them. The keys file is never entered:
 * nothing of it is needed, and nothing of it may reach a finding. Past
 * AUDIT_VISITS_MAX directives in all (includes that include each other
 * several times over) it stops with a->error = -E2BIG. */
void audit_walk(Audit *a, void *userdata, const NginxNode *block, audit_visit_t visit,
                unsigned depth);

/* A location directive n (a block with at least one argument) read as
 * nginx reads it: "location ~* x", also "location ~*x". */
Location audit_location(const Audit *a, const NginxNode *n);

/* merge-slashes-off: with merge_slashes off in the server {} nginx parses
 * the request line with (over http deflt, before Host picks one; over
 * https serving, which SNI picked) or http {}, which location of serving
 * answers a private path spelled with "//". */
void audit_check_merge_slashes(Audit *a, const Server *serving, const Server *deflt);
