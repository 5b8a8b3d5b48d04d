/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "nginx-dump.h"

/* What `securelinkctl check` says of nginx's configuration: which server {}
 * blocks include the snippets, which one serves base_url's host, and what
 * of the site's own takes private paths away from the checks. Findings name
 * places (FILE:LINE), server names, listen addresses, location paths and
 * directives; nothing of the keys file is ever read or copied. */

typedef struct NginxAuditSite {
	const char *keys_file;
	const char *locations_file;
	const char *host; /* base_url's host, as a Host header names it */
	unsigned port;
	bool tls;                   /* base_url is https: the server is picked by SNI */
	const char *media_url;      /* ending in '/' */
	const char *media_root;     /* ending in '/': where media_url's files are */
	char *const *private_paths; /* media_url + private prefix, each ending '/' */
} NginxAuditSite;

typedef struct NginxAuditServer {
	char *at;                 /* FILE:LINE of "server {" */
	char *names;              /* server_name's words, space-separated */
	char *listen;             /* its listen lines, "; "-separated */
	char *locations_included; /* FILE:LINE of its include, or NULL */
	bool serves_links;        /* the one base_url's host reaches */
} NginxAuditServer;

typedef struct NginxFinding {
	const char *kind; /* documented in docs/protocol.md */
	char *at;         /* FILE:LINE, or NULL */
	char *text;       /* one sentence and its fix */
} NginxFinding;

typedef struct NginxAudit {
	char **keys_included; /* FILE:LINE of each include in http {} */
	size_t n_keys_included;
	NginxAuditServer *servers;
	size_t n_servers;
	NginxFinding *findings;
	size_t n_findings;
} NginxAudit;

/* At most this many directives are read in all, includes read in place:
 * a configuration has thousands; includes that include each other several
 * times over would take exponential time. */
#define AUDIT_VISITS_MAX (1U << 18)

/* Audits a parsed dump for site. Returns 0, -E2BIG past AUDIT_VISITS_MAX,
 * or -ENOMEM. */
int nginx_audit_run(const NginxDump *d, const NginxAuditSite *site, NginxAudit **ret);
NginxAudit *nginx_audit_free(NginxAudit *a);
static inline void nginx_audit_freep(NginxAudit **a)
{
	nginx_audit_free(*a);
}

/* The audit as the JSON object of CHECK's "config" field. */
int nginx_audit_json(const NginxAudit *a, char **ret);

/* The host and port of an origin or URL ("https://h:8443/x" -> h, 8443;
 * the scheme's port when none is given). Returns 0 or -EINVAL. */
int nginx_audit_origin(const char *url, char **ret_host, unsigned *ret_port);
